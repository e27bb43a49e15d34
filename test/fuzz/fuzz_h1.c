/*
 * fuzz_h1: lib/h1.c on arbitrary bytes.
 *
 * Input: byte 0 picks the split size (1..32, or 0 for one piece) used to
 * feed the incremental parts; the rest is a message.
 *
 * Properties:
 *  - h1_scan gives the same verdict and head length fed in one piece or in
 *    pieces of any size;
 *  - a head it accepts has no bare LF, NUL or obs-fold; h1_parse_request on
 *    it either refuses with a status and a reason, or yields a method that
 *    is a token, a target without blanks or control bytes, header names
 *    that are tokens and values without control bytes but tab, all inside
 *    the buffer; a chunked body never comes with a Content-Length, an
 *    HTTP/1.1 request never without Host;
 *  - the chunked decoder reads the bytes after the head the same way in
 *    one piece or in pieces, and never reports more data than it was fed;
 *  - h1_parse_response never reads outside what h1_response_end delimited.
 */
#include "fuzz.h"
#include "h1.h"
#include "http.h"

#include <stdlib.h>
#include <string.h>

#define MAXH 2048

static int scan(const char *p, size_t n, size_t step, size_t *head, int *status)
{
    struct h1_scan s;
    struct h1_error err = { 0, NULL };
    h1_scan_init(&s);
    size_t at = 0;
    while (at < n) {
        size_t k = step == 0 || n - at < step ? n - at : step, used = 0;
        enum h1_scan_rc rc = h1_scan(&s, p + at, k, MAXH, &used, &err);
        if (rc == H1_SCAN_DONE) {
            FUZZ_CHECK(used <= k);
            *head = at + used;
            FUZZ_CHECK(s.len == *head);
            return 1;
        }
        if (rc == H1_SCAN_ERROR) {
            FUZZ_CHECK(err.status >= 400 && err.why != NULL);
            *status = err.status;
            return -1;
        }
        FUZZ_CHECK(used == k);
        at += k;
    }
    return 0;
}

/* data bytes of a chunked body, or -1 on error; *end where it ended (0: not) */
static long dechunk(const char *p, size_t n, size_t step, char *out, size_t *end,
                    int lenient)
{
    struct h1_chunked c;
    h1_chunked_init(&c, 256);
    c.lenient = lenient != 0;
    size_t at = 0, got = 0;
    *end = 0;
    while (at < n) {
        size_t lim = step == 0 || n - at < step ? n - at : step, used;
        enum h1_chunk_rc rc = h1_chunked_parse(&c, p + at, lim, &used);
        FUZZ_CHECK(used <= lim);
        at += used;
        if (rc == H1_CHUNK_DATA) {
            size_t avail = step == 0 || n - at < step ? n - at : step;
            size_t take = c.left < avail ? (size_t)c.left : avail;
            memcpy(out + got, p + at, take);
            got += take;
            at += take;
            h1_chunked_took(&c, take);
            continue;
        }
        if (rc == H1_CHUNK_DONE) {
            *end = at;
            return (long)got;
        }
        if (rc == H1_CHUNK_ERROR) {
            FUZZ_CHECK(c.why != NULL);
            return -1;
        }
    }
    return (long)got;
}

static void check_request(const char *data, size_t head)
{
    char *h = malloc(head + 1);
    memcpy(h, data, head);
    h[head] = 0;
    for (size_t i = 0; i < head; i++) {
        FUZZ_CHECK(h[i] != '\0');
        if (h[i] == '\n')
            FUZZ_CHECK(i > 0 && h[i - 1] == '\r');
    }
    struct h1_request r;
    struct h1_header hdr[32];
    struct h1_error err = { 0, NULL };
    if (h1_parse_request(h, head, &r, hdr, 32, &err) != 0) {
        FUZZ_CHECK(err.status >= 400 && err.status <= 505 && err.why != NULL);
        free(h);
        return;
    }
    FUZZ_CHECK(http_is_token(r.method, r.method_len) && strlen(r.method) == r.method_len);
    FUZZ_CHECK(strlen(r.target) == r.target_len && r.target_len > 0);
    for (size_t i = 0; i < r.target_len; i++)
        FUZZ_CHECK((unsigned char)r.target[i] > 0x20 && r.target[i] != 0x7f);
    for (int i = 0; i < r.nh; i++) {
        const struct h1_header *f = &hdr[i];
        FUZZ_CHECK(f->name >= h && f->value + f->value_len <= h + head);
        FUZZ_CHECK(http_is_token(f->name, f->name_len) && strlen(f->name) == f->name_len);
        FUZZ_CHECK(strlen(f->value) == f->value_len);
        for (size_t k = 0; k < f->value_len; k++) {
            unsigned char c = (unsigned char)f->value[k];
            FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (f->value_len > 0)
            FUZZ_CHECK(f->value[0] != ' ' && f->value[f->value_len - 1] != ' ');
    }
    if (r.body == H1_BODY_LENGTH)
        FUZZ_CHECK(r.length > 0);
    if (r.body == H1_BODY_CHUNKED)
        FUZZ_CHECK(r.minor == 1);
    if (r.minor == 1)
        FUZZ_CHECK(r.has_host);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] % 33;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;

    size_t head1 = 0, head2 = 0;
    int st1 = 0, st2 = 0;
    int a = scan(p, n, 0, &head1, &st1), b = scan(p, n, step, &head2, &st2);
    FUZZ_CHECK(a == b && head1 == head2 && st1 == st2);
    if (a == 1) {
        check_request(p, head1);
        char *out1 = malloc(n + 1), *out2 = malloc(n + 1);
        size_t e1, e2;
        int lenient = data[0] & 0x80;
        long d1 = dechunk(p + head1, n - head1, 0, out1, &e1, lenient);
        long d2 = dechunk(p + head1, n - head1, step, out2, &e2, lenient);
        FUZZ_CHECK(d1 == d2 && e1 == e2);
        FUZZ_CHECK(d1 <= (long)(n - head1));
        if (d1 > 0)
            FUZZ_CHECK(memcmp(out1, out2, (size_t)d1) == 0);
        free(out1);
        free(out2);
    }

    size_t end = h1_response_end(p, n, 0);
    if (end > 0) {
        char *h = malloc(end);
        memcpy(h, p, end);
        struct h1_response r;
        struct h1_header hdr[32];
        if (h1_parse_response(h, end, step & 1, &r, hdr, 32) == 0) {
            FUZZ_CHECK(r.status >= 100 && r.status <= 599 && r.nh <= 32);
            for (int i = 0; i < r.nh; i++)
                FUZZ_CHECK(hdr[i].name >= h && hdr[i].value + hdr[i].value_len <= h + end);
        }
        free(h);
    }
    return 0;
}
