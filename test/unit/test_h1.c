/*
 * test_h1: unit tests of lib/h1.c: where a request head ends, the request
 * and answer heads, body framing, the chunked decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "h1.h"

#define MAXH 65536

/* Scan s in pieces of `step` bytes. Returns the rc; *used: the head's length. */
static enum h1_scan_rc scan_in(const char *s, size_t n, size_t step, size_t max,
                               size_t *headlen, struct h1_error *err)
{
    struct h1_scan sc;
    h1_scan_init(&sc);
    size_t at = 0;
    while (at < n) {
        size_t k = n - at < step ? n - at : step, used = 0;
        enum h1_scan_rc rc = h1_scan(&sc, s + at, k, max, &used, err);
        if (rc == H1_SCAN_DONE) {
            *headlen = at + used;
            assert_int_equal(sc.len, at + used);
            return rc;
        }
        if (rc == H1_SCAN_ERROR)
            return rc;
        at += k;
    }
    return H1_SCAN_MORE;
}

static void test_scan_finds_the_end_in_any_pieces(void **state)
{
    (void)state;
    const char *s = "\r\nPOST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
    size_t head = strstr(s, "abc") - s;
    for (size_t step = 1; step < strlen(s); step++) {
        size_t len = 0;
        struct h1_error err;
        assert_int_equal(scan_in(s, strlen(s), step, MAXH, &len, &err), H1_SCAN_DONE);
        assert_int_equal(len, head);
    }
}

static void expect_scan_error(const char *s, size_t n, int status, const char *why)
{
    size_t len;
    struct h1_error err = { 0, NULL };
    assert_int_equal(scan_in(s, n, n, MAXH, &len, &err), H1_SCAN_ERROR);
    assert_int_equal(err.status, status);
    assert_non_null(strstr(err.why, why));
}

static void test_scan_refuses(void **state)
{
    (void)state;
    expect_scan_error("GET / HTTP/1.1\nHost: a\n\n", 24, 400, "LF without CR");
    expect_scan_error("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 29, 400, "CR not followed");
    expect_scan_error("GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n", 31, 400, "obs-fold");
    expect_scan_error("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26, 400, "NUL");
}

static void test_scan_limits(void **state)
{
    (void)state;
    char big[300];
    size_t len;
    struct h1_error err;
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    /* no end of the request line within the limit: 414 */
    assert_int_equal(scan_in(big, sizeof(big), 7, 100, &len, &err), H1_SCAN_ERROR);
    assert_int_equal(err.status, 414);
    /* the request line ends, the fields go on: 431 */
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(scan_in(big, sizeof(big), 7, 100, &len, &err), H1_SCAN_ERROR);
    assert_int_equal(err.status, 431);
    /* exactly at the limit passes */
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(scan_in(s, strlen(s), 3, strlen(s), &len, &err), H1_SCAN_DONE);
    assert_int_equal(scan_in(s, strlen(s), 3, strlen(s) - 1, &len, &err), H1_SCAN_ERROR);
    assert_int_equal(err.status, 431);
}

/* Parse a head given as a string (copied: parsing writes into it). */
static int parse(const char *s, struct h1_request *req, struct h1_header *hdr, int cap,
                 struct h1_error *err, char **keep)
{
    size_t n = strlen(s);
    char *h = malloc(n + 1);
    memcpy(h, s, n + 1);
    *keep = h;
    return h1_parse_request(h, n, req, hdr, cap, err);
}

static void test_parse_request(void **state)
{
    (void)state;
    struct h1_request r;
    struct h1_header h[8];
    struct h1_error err;
    char *buf;
    assert_int_equal(parse("\r\nPOST /v1/orders?x=1 HTTP/1.1\r\nHost: api\r\n"
                           "Content-Length:\t 12 \r\nX-Empty:\r\nIdempotency-Key:  k1\t\r\n\r\n",
                           &r, h, 8, &err, &buf), 0);
    assert_string_equal(r.method, "POST");
    assert_int_equal(r.method_len, 4);
    assert_string_equal(r.target, "/v1/orders?x=1");
    assert_int_equal(r.minor, 1);
    assert_int_equal(r.nh, 4);
    assert_string_equal(h[1].name, "Content-Length");
    assert_string_equal(h[1].value, "12");
    assert_int_equal(h[1].value_len, 2);
    assert_string_equal(h[2].value, "");
    assert_string_equal(h[3].value, "k1");
    assert_int_equal(r.body, H1_BODY_LENGTH);
    assert_int_equal(r.length, 12);
    assert_true(r.keep_alive);
    assert_true(r.has_host);
    free(buf);

    /* chunked, tab before the value; 1.0 keep-alive; upgrade; expect */
    assert_int_equal(parse("PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n"
                           "Expect: 100-Continue\r\n\r\n", &r, h, 8, &err, &buf), 0);
    assert_int_equal(r.body, H1_BODY_CHUNKED);
    assert_true(r.expect_continue);
    free(buf);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                           &r, h, 8, &err, &buf), 0);
    assert_int_equal(r.minor, 0);
    assert_true(r.keep_alive);
    assert_int_equal(r.body, H1_BODY_NONE);
    free(buf);
    assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &r, h, 8, &err, &buf), 0);
    assert_false(r.keep_alive);
    assert_false(r.has_host);         /* HTTP/1.0 needs none */
    free(buf);
    assert_int_equal(parse("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                           "Upgrade: websocket\r\n\r\n", &r, h, 8, &err, &buf), 0);
    assert_true(r.upgrade);
    free(buf);
    assert_int_equal(parse("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
                           &r, h, 8, &err, &buf), 0);
    assert_false(r.upgrade);          /* not named in Connection */
    free(buf);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                           &r, h, 8, &err, &buf), 0);
    assert_false(r.keep_alive);
    free(buf);
    /* any method token, a GET with a body, 1.2 read as 1.1 */
    assert_int_equal(parse("PROPFIND /x HTTP/1.2\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                           &r, h, 8, &err, &buf), 0);
    assert_string_equal(r.method, "PROPFIND");
    assert_int_equal(r.minor, 1);
    assert_int_equal(r.body, H1_BODY_NONE);
    free(buf);
    assert_int_equal(parse("GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n",
                           &r, h, 8, &err, &buf), 0);
    assert_int_equal(r.body, H1_BODY_LENGTH);
    free(buf);
    /* obs-text in a value */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n",
                           &r, h, 8, &err, &buf), 0);
    free(buf);
}

static void expect_refused(const char *s, int status, const char *why)
{
    struct h1_request r;
    struct h1_header h[4];
    struct h1_error err = { 0, NULL };
    char *buf;
    int rc = parse(s, &r, h, 4, &err, &buf);
    free(buf);
    if (rc != -1 || err.status != status || strstr(err.why, why) == NULL)
        fail_msg("%s: got %d %d %s", s, rc, err.status, err.why ? err.why : "-");
}

static void test_parse_request_refuses(void **state)
{
    (void)state;
    expect_refused("GET  / HTTP/1.1\r\n\r\n", 400, "request line");
    expect_refused("GET / HTTP/1.1 \r\n\r\n", 400, "request line");
    expect_refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "version");
    expect_refused("GET / FOO/1.1\r\n\r\n", 400, "request line");
    expect_refused("G@T / HTTP/1.1\r\n\r\n", 400, "request line");
    expect_refused("GET /a\x7f HTTP/1.1\r\n\r\n", 400, "request line");
    expect_refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "blank before its colon");
    expect_refused("GET / HTTP/1.1\r\n: a\r\n\r\n", 400, "not a token");
    expect_refused("GET / HTTP/1.1\r\nX\"y: a\r\n\r\n", 400, "not a token");
    expect_refused("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", 400, "control character");
    expect_refused("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400, "control character");
    expect_refused("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400, "not a number");
    expect_refused("POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n", 400, "not a number");
    expect_refused("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400, "not a number");
    expect_refused("POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n", 400, "not a number");
    expect_refused("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "not a number");
    expect_refused("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                   400, "not a number");
    expect_refused("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                   400, "more than one Content-Length");
    expect_refused("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                   400, "both");
    expect_refused("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n", 400, "more than one Transfer");
    expect_refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0");
    expect_refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
                   "other than chunked");
    expect_refused("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 501,
                   "other than chunked");
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host");
    expect_refused("GET / HTTP/1.1\r\nX: a\r\n\r\n", 400, "HTTP/1.1 request without Host");
    expect_refused("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", 431,
                   "too many");
}

static void test_parse_length(void **state)
{
    (void)state;
    int64_t x = -7;
    assert_int_equal(h1_parse_length("0", 1, &x), 0);
    assert_int_equal(x, 0);
    assert_int_equal(h1_parse_length("4611686018427387904", 19, &x), 0);  /* 2^62 */
    assert_int_equal(x, (int64_t)1 << 62);
    assert_int_equal(h1_parse_length("4611686018427387905", 19, &x), -1);
    assert_int_equal(h1_parse_length("", 0, &x), -1);
    assert_int_equal(h1_parse_length(" 1", 2, &x), -1);
}

static int parse_resp(const char *s, int head, struct h1_response *r, struct h1_header *h,
                      int cap, char **keep)
{
    size_t n = strlen(s);
    char *b = malloc(n + 1);
    memcpy(b, s, n + 1);
    *keep = b;
    size_t end = h1_response_end(b, n, 0);
    assert_int_equal(end, n);
    return h1_parse_response(b, n, head, r, h, cap);
}

static void test_parse_response(void **state)
{
    (void)state;
    struct h1_response r;
    struct h1_header h[8];
    char *b;
    assert_int_equal(parse_resp("HTTP/1.1 201 Created\r\nLocation: /o/1\r\nX-F: a\r\n"
                                "  b\r\nContent-Length: 5\r\n\r\n", 0, &r, h, 8, &b), 0);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.nh, 3);
    assert_string_equal(h[1].value, "a b");           /* obs-fold joined */
    assert_int_equal(r.body, H1_BODY_LENGTH);
    assert_int_equal(r.length, 5);
    assert_true(r.keep_alive);
    free(b);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n", 0,
                                &r, h, 8, &b), 0);
    assert_int_equal(r.body, H1_BODY_CHUNKED);
    free(b);
    assert_int_equal(parse_resp("HTTP/1.0 200 OK\r\n\r\n", 0, &r, h, 8, &b), 0);
    assert_int_equal(r.body, H1_BODY_CLOSE);
    assert_false(r.keep_alive);
    free(b);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 1,
                                &r, h, 8, &b), 0);
    assert_int_equal(r.body, H1_BODY_NONE);           /* after HEAD */
    free(b);
    assert_int_equal(parse_resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\n\r\n", 0, &r, h, 8, &b), 0);
    assert_int_equal(r.status, 101);
    assert_int_equal(r.body, H1_BODY_NONE);
    free(b);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                "Content-Length: 6\r\n\r\n", 0, &r, h, 8, &b), -1);
    free(b);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
                                &r, h, 8, &b), -1);
    free(b);
    assert_int_equal(parse_resp("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
                                &r, h, 8, &b), -1);
    free(b);
    assert_int_equal(parse_resp("HTTP/1.1 600 X\r\n\r\n", 0, &r, h, 8, &b), -1);
    free(b);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", 0, &r, h, 1, &b),
                     -1);                             /* more than cap */
    free(b);
}

/* Decode a chunked body fed in pieces of `step`; the data into out. */
static enum h1_chunk_rc dechunk(const char *s, size_t n, size_t step, char *out,
                                size_t *outlen, size_t *consumed, const char **why)
{
    struct h1_chunked c;
    h1_chunked_init(&c, 1024);
    size_t at = 0;
    *outlen = 0;
    while (at < n) {
        size_t k = n - at < step ? n - at : step, used;
        enum h1_chunk_rc rc = h1_chunked_parse(&c, s + at, k, &used);
        at += used;
        if (rc == H1_CHUNK_DATA) {
            size_t avail = n - at < step ? n - at : step;
            size_t take = c.left < avail ? (size_t)c.left : avail;
            memcpy(out + *outlen, s + at, take);
            *outlen += take;
            at += take;
            h1_chunked_took(&c, take);
            continue;
        }
        if (rc == H1_CHUNK_DONE) {
            *consumed = at;
            return rc;
        }
        if (rc == H1_CHUNK_ERROR) {
            *why = c.why;
            return rc;
        }
    }
    *consumed = at;
    return H1_CHUNK_MORE;
}

static void test_chunked(void **state)
{
    (void)state;
    const char *s = "3;ext=1\r\nabc\r\n"
                    "A ; name=\"quoted ; value\"\r\n0123456789\r\n"
                    "0\r\nTrailer-A: x\r\n\r\nNEXT";
    size_t n = strlen(s), body = strstr(s, "NEXT") - s;
    for (size_t step = 1; step <= n; step++) {
        char out[64];
        size_t outlen, consumed;
        const char *why = NULL;
        assert_int_equal(dechunk(s, n, step, out, &outlen, &consumed, &why), H1_CHUNK_DONE);
        assert_int_equal(consumed, body);
        assert_int_equal(outlen, 13);
        assert_memory_equal(out, "abc0123456789", 13);
    }
}

static void expect_chunk_error(const char *s, const char *why)
{
    char out[64];
    size_t outlen, consumed;
    const char *got = NULL;
    if (dechunk(s, strlen(s), strlen(s), out, &outlen, &consumed, &got) != H1_CHUNK_ERROR ||
        strstr(got, why) == NULL)
        fail_msg("%s: not refused for %s (%s)", s, why, got ? got : "-");
}

static void test_chunked_refuses(void **state)
{
    (void)state;
    expect_chunk_error("+3\r\nabc\r\n0\r\n\r\n", "not hex");
    expect_chunk_error("0x3\r\nabc\r\n0\r\n\r\n", "not hex");
    expect_chunk_error(" 3\r\nabc\r\n0\r\n\r\n", "not hex");
    expect_chunk_error("3 \r\nabc\r\n0\r\n\r\n", "without an extension");
    expect_chunk_error("3\nabc\r\n0\r\n\r\n", "LF without CR");
    expect_chunk_error("3;x\nabc\r\n0\r\n\r\n", "LF without CR");
    expect_chunk_error("3\r\nabcX\r\n0\r\n\r\n", "not followed by CRLF");
    expect_chunk_error("3\r\nabc\n0\r\n\r\n", "not followed by CRLF");
    expect_chunk_error("3;a\x01\r\nabc\r\n0\r\n\r\n", "control character");
    expect_chunk_error("10000000000000000\r\n", "too large");
    expect_chunk_error("0\r\nBad Name: x\r\n\r\n", "trailer");
    expect_chunk_error("0\r\n x\r\n\r\n", "trailer");
    expect_chunk_error("0\r\nA: x\n\r\n", "trailer");
    char big[1100];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "0\r\nA: ", 6);
    expect_chunk_error(big, "too large");
}

/* An upstream's answer is read leniently: bare LF line ends, blanks after
 * a size; the request rules stay strict. */
static void test_chunked_lenient(void **state)
{
    (void)state;
    const char *s = "3 \nabc\n2;x\nde\r\n0\nT: 1\n\nNEXT";
    struct h1_chunked c;
    h1_chunked_init(&c, 1024);
    c.lenient = 1;
    size_t at = 0, n = strlen(s), used;
    char out[16];
    size_t got = 0;
    enum h1_chunk_rc rc;
    while ((rc = h1_chunked_parse(&c, s + at, n - at, &used)) == H1_CHUNK_DATA) {
        at += used;
        memcpy(out + got, s + at, (size_t)c.left);
        got += (size_t)c.left;
        at += (size_t)c.left;
        h1_chunked_took(&c, c.left);
    }
    assert_int_equal(rc, H1_CHUNK_DONE);
    assert_int_equal(at + used, strstr(s, "NEXT") - s);
    assert_int_equal(got, 5);
    assert_memory_equal(out, "abcde", 5);
    h1_chunked_init(&c, 1024);         /* strict: the same is refused */
    assert_int_equal(h1_chunked_parse(&c, s, n, &used), H1_CHUNK_ERROR);
}

static void test_chunk_size_line_and_reason(void **state)
{
    (void)state;
    char b[24];
    assert_int_equal(h1_chunk_size_line(b, 0), 3);
    assert_memory_equal(b, "0\r\n", 3);
    assert_int_equal(h1_chunk_size_line(b, 0x1a2b), 6);
    assert_memory_equal(b, "1a2b\r\n", 6);
    assert_string_equal(h1_reason(201), "Created");
    assert_string_equal(h1_reason(431), "Request Header Fields Too Large");
    assert_string_equal(h1_reason(599), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_finds_the_end_in_any_pieces),
        cmocka_unit_test(test_scan_refuses),
        cmocka_unit_test(test_scan_limits),
        cmocka_unit_test(test_parse_request),
        cmocka_unit_test(test_parse_request_refuses),
        cmocka_unit_test(test_parse_length),
        cmocka_unit_test(test_parse_response),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_chunked_refuses),
        cmocka_unit_test(test_chunked_lenient),
        cmocka_unit_test(test_chunk_size_line_and_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
