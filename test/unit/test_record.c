/*
 * test_record: unit tests of lib/record.c: which headers are stored,
 * the headers field encoding and decoding, status parsing, the operations'
 * scripts and arguments, and what each answer means (well formed or not).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "record.h"
#include "reply.h"

static void test_record_header_stored(void **state)
{
    static const char *const hop[] = {
        "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Date",
        "Content-Length", "connection", "TRANSFER-ENCODING", "date", "te",
        "Idempotent-Replayed", "idempotent-replayed",
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        assert_int_equal(record_header_stored(hop[i], 0), 0);
        assert_int_equal(record_header_stored(hop[i], 1), 0);
    }
    assert_int_equal(record_header_stored("Set-Cookie", 0), 0);
    assert_int_equal(record_header_stored("set-cookie", 0), 0);
    assert_int_equal(record_header_stored("Set-Cookie", 1), 1);
    assert_int_equal(record_header_stored("SET-COOKIE", 1), 1);
    assert_int_equal(record_header_stored("Content-Type", 0), 1);
    assert_int_equal(record_header_stored("Location", 0), 1);
    assert_int_equal(record_header_stored("ETag", 0), 1);
    assert_int_equal(record_header_stored("Dates", 0), 1);
    assert_int_equal(record_header_stored("Content-Length-X", 0), 1);
    /* not the hop-by-hop set: an upstream's Proxy-Authorization is stored */
    assert_int_equal(record_header_stored("Proxy-Authorization", 0), 1);
}

static void test_record_headers_roundtrip(void **state)
{
    char buf[256];
    size_t len = 0, pos = 0, nl, vl;
    const char *n, *v;
    (void)state;
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "Content-Type",
                                        "application/json"), 0);
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "X-Empty", ""), 0);
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "Location",
                                        "/v1/orders/7: ok"), 0);
    assert_int_equal(len, strlen("Content-Type: application/json\r\n"
                                 "X-Empty: \r\nLocation: /v1/orders/7: ok\r\n"));
    assert_memory_equal(buf, "Content-Type: application/json\r\nX-Empty: \r\n"
                             "Location: /v1/orders/7: ok\r\n", len);

    assert_int_equal(record_headers_next(buf, len, &pos, &n, &nl, &v, &vl), 1);
    assert_int_equal(nl, 12);
    assert_memory_equal(n, "Content-Type", 12);
    assert_int_equal(vl, 16);
    assert_memory_equal(v, "application/json", 16);
    assert_int_equal(record_headers_next(buf, len, &pos, &n, &nl, &v, &vl), 1);
    assert_int_equal(nl, 7);
    assert_memory_equal(n, "X-Empty", 7);
    assert_int_equal(vl, 0);
    assert_int_equal(record_headers_next(buf, len, &pos, &n, &nl, &v, &vl), 1);
    assert_int_equal(nl, 8);
    assert_memory_equal(n, "Location", 8);
    assert_int_equal(vl, 16);
    assert_memory_equal(v, "/v1/orders/7: ok", 16);
    assert_int_equal(record_headers_next(buf, len, &pos, &n, &nl, &v, &vl), 0);
    assert_int_equal(record_headers_next(buf, len, &pos, &n, &nl, &v, &vl), 0);

    /* empty field: no headers */
    pos = 0;
    assert_int_equal(record_headers_next(buf, 0, &pos, &n, &nl, &v, &vl), 0);
}

static void test_record_headers_add_rejects(void **state)
{
    char buf[32];
    size_t len = 0;
    (void)state;
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "X", "a\r\nSet-Cookie: x"), -1);
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "X", "a\nb"), -1);
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "X", "a\rb"), -1);
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "X\r\nY", "v"), -1);
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "X\n", "v"), -1);
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "", "v"), -1);
    assert_int_equal(record_headers_add(buf, sizeof(buf), &len, "X:Y", "v"), -1);
    assert_int_equal(len, 0);
    /* capacity: "AB: cd\r\n" is 8 bytes */
    assert_int_equal(record_headers_add(buf, 7, &len, "AB", "cd"), -1);
    assert_int_equal(len, 0);
    assert_int_equal(record_headers_add(buf, 8, &len, "AB", "cd"), 0);
    assert_int_equal(len, 8);
    assert_int_equal(record_headers_add(buf, 15, &len, "AB", "cd"), -1);
    assert_int_equal(len, 8);
    assert_int_equal(record_headers_add(buf, 16, &len, "AB", "cd"), 0);
    assert_int_equal(len, 16);
}

static int test_record_decode_all(const char *s)
{
    size_t pos = 0, nl, vl, len = strlen(s);
    const char *n, *v;
    int r, count = 0;
    while ((r = record_headers_next(s, len, &pos, &n, &nl, &v, &vl)) == 1)
        count++;
    return r < 0 ? -1 : count;
}

static void test_record_headers_malformed(void **state)
{
    size_t pos = 0, nl, vl;
    const char *n, *v;
    (void)state;
    assert_int_equal(test_record_decode_all("A: b\r\n"), 1);
    assert_int_equal(test_record_decode_all("A:b\r\nC:\t d\r\n"), 2);
    assert_int_equal(test_record_decode_all("A:\r\n"), 1);
    assert_int_equal(test_record_decode_all("no colon\r\n"), -1);
    assert_int_equal(test_record_decode_all("A: b"), -1);
    assert_int_equal(test_record_decode_all("A: b\r\nC: d"), -1);
    assert_int_equal(test_record_decode_all("A: b\n"), -1);
    assert_int_equal(test_record_decode_all("A: b\r"), -1);
    assert_int_equal(test_record_decode_all("A: b\rc\r\n"), -1);
    assert_int_equal(test_record_decode_all(": b\r\n"), -1);
    assert_int_equal(test_record_decode_all("\r\n"), -1);
    assert_int_equal(test_record_decode_all("A: b\r\n\r\n"), -1);
    /* value is trimmed on the left only; name kept as is */
    assert_int_equal(record_headers_next("Xy:  \tv v\r\n", 11, &pos, &n, &nl, &v, &vl), 1);
    assert_int_equal(nl, 2);
    assert_memory_equal(n, "Xy", 2);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "v v", 3);
    assert_int_equal(pos, 11);
    /* pos past the end */
    pos = 12;
    assert_int_equal(record_headers_next("Xy:  \tv v\r\n", 11, &pos, &n, &nl, &v, &vl), -1);
}

static void test_record_status(void **state)
{
    (void)state;
    assert_int_equal(record_status_parse("201", 3), 201);
    assert_int_equal(record_status_parse("100", 3), 100);
    assert_int_equal(record_status_parse("599", 3), 599);
    assert_int_equal(record_status_parse("2010", 3), 201);
    assert_int_equal(record_status_parse("099", 3), -1);
    assert_int_equal(record_status_parse("600", 3), -1);
    assert_int_equal(record_status_parse("20", 2), -1);
    assert_int_equal(record_status_parse("2010", 4), -1);
    assert_int_equal(record_status_parse("2x1", 3), -1);
    assert_int_equal(record_status_parse(" 20", 3), -1);
    assert_int_equal(record_status_parse("", 0), -1);
}


/* The arguments read back as a server reads them (after "*N EVALSHA sha"). */
static redisReply *args_back(const struct resp_buf *b)
{
    char head[128];
    size_t hl = resp_head(head, sizeof(head), b->argc, "EVALSHA", "s", 1);
    char *all = malloc(hl + b->len);
    memcpy(all, head, hl);
    memcpy(all + hl, b->p, b->len);
    redisReply *r = reply_of(all, hl + b->len);
    free(all);
    assert_non_null(r);
    return r;
}

static void test_record_ops(void **state)
{
    (void)state;
    for (int op = 0; op < RECORD_OPS; op++) {
        assert_non_null(record_script(op));
        /* every script touches KEYS[1] only: one slot in a cluster */
        assert_null(strstr(record_script(op), "KEYS[2]"));
        assert_string_not_equal(record_op_name(op), "unknown");
    }
    assert_null(record_script(RECORD_OPS));
    assert_string_equal(record_op_name(RECORD_OPS), "unknown");
    assert_int_equal(record_op_acked(RECORD_CLAIM), 1);
    assert_int_equal(record_op_acked(RECORD_COMPLETE), 1);
    assert_int_equal(record_op_acked(RECORD_UNSTORED), 1);
    assert_int_equal(record_op_acked(RECORD_RELEASE), 0);
    assert_int_equal(record_op_acked(RECORD_INSPECT), 0);

    struct resp_buf b = { 0 };
    assert_int_equal(record_args_claim(&b, "idem:{ab}", "tok", "fp", 60000, 1700000000000LL), 0);
    redisReply *r = args_back(&b);
    assert_int_equal(r->elements, 8);
    assert_string_equal(r->element[2]->str, "1");
    assert_string_equal(r->element[3]->str, "idem:{ab}");
    assert_string_equal(r->element[4]->str, "tok");
    assert_string_equal(r->element[5]->str, "fp");
    assert_string_equal(r->element[6]->str, "60000");
    assert_string_equal(r->element[7]->str, "1700000000000");
    freeReplyObject(r);

    resp_reset(&b);
    size_t at = 0;
    const struct record_claim hash = { .token = "tok", .fp = "fp", .created_ms = 1,
                                       .layout = RECORD_LAYOUT_HASH };
    assert_int_equal(record_args_complete(&b, "k", &hash, 201, "A: b\r\n", 6, 5, 3600000, &at), 0);
    memcpy(b.p + at, "hello", 5);
    r = args_back(&b);
    assert_int_equal(r->elements, 9);
    assert_string_equal(r->element[5]->str, "201");
    assert_string_equal(r->element[6]->str, "A: b\r\n");
    assert_string_equal(r->element[7]->str, "hello");
    assert_string_equal(r->element[8]->str, "3600000");
    freeReplyObject(r);

    resp_reset(&b);
    assert_int_equal(record_args_unstored(&b, "k", &hash, 5), 0);
    assert_int_equal(b.argc, 4);
    resp_reset(&b);
    assert_int_equal(record_args_release(&b, "k", &hash), 0);
    assert_int_equal(b.argc, 3);
    resp_reset(&b);
    assert_int_equal(record_args_key(&b, "k"), 0);
    assert_int_equal(b.argc, 2);
    resp_free(&b);
}

static struct record_reply decode(enum record_op op, const char *resp)
{
    struct record_reply rr;
    redisReply *r = reply_of(resp, 0);
    assert_non_null(r);
    record_decode(op, r, "0123456789abcdef0123456789abcdef", &rr);
    /* pointers into r: only kinds and numbers are looked at after this */
    freeReplyObject(r);
    rr.headers = rr.body = rr.err = rr.state = NULL;
    return rr;
}

static void test_record_decode(void **state)
{
    (void)state;
    struct record_reply rr;
    assert_int_equal(decode(RECORD_CLAIM, "*1\r\n$7\r\nclaimed\r\n").kind, RK_CLAIMED);
    assert_int_equal(decode(RECORD_CLAIM, "*1\r\n$8\r\nmismatch\r\n").kind, RK_MISMATCH);
    assert_int_equal(decode(RECORD_CLAIM, "*1\r\n$8\r\nunstored\r\n").kind, RK_UNSTORED);
    rr = decode(RECORD_CLAIM, "*2\r\n$8\r\ninflight\r\n:1500\r\n");
    assert_int_equal(rr.kind, RK_INFLIGHT);
    assert_int_equal(rr.pttl_ms, 1500);
    rr = decode(RECORD_CLAIM, "*4\r\n$4\r\ndone\r\n$3\r\n201\r\n$0\r\n\r\n$2\r\nok\r\n");
    assert_int_equal(rr.kind, RK_DONE);
    assert_int_equal(rr.status, 201);
    assert_int_equal(rr.body_len, 2);
    rr = decode(RECORD_CLAIM, "*4\r\n$4\r\ndone\r\n$3\r\nabc\r\n$0\r\n\r\n$0\r\n\r\n");
    assert_int_equal(rr.kind, RK_DONE);
    assert_int_equal(rr.status, -1);              /* the request path refuses it */
    assert_int_equal(decode(RECORD_CLAIM, "*4\r\n$4\r\ndone\r\n$-1\r\n$0\r\n\r\n$0\r\n\r\n").kind,
                     RK_UNREADABLE);
    assert_int_equal(decode(RECORD_CLAIM, "*2\r\n$10\r\nunreadable\r\n$3\r\nwhy\r\n").kind,
                     RK_UNREADABLE);
    static const char *const bad_claim[] = {
        "*0\r\n", ":1\r\n", "*1\r\n:1\r\n", "*1\r\n$5\r\nother\r\n", "*2\r\n$4\r\ndone\r\n$1\r\n1\r\n",
        "$7\r\nclaimed\r\n", "*1\r\n$8\r\nclaimed!\r\n",
    };
    for (size_t i = 0; i < sizeof(bad_claim) / sizeof(bad_claim[0]); i++)
        assert_int_equal(decode(RECORD_CLAIM, bad_claim[i]).kind, RK_BAD);
    assert_int_equal(decode(RECORD_COMPLETE, ":1\r\n").kind, RK_OK);
    assert_int_equal(decode(RECORD_COMPLETE, ":0\r\n").kind, RK_LOST);
    assert_int_equal(decode(RECORD_RELEASE, ":1\r\n").kind, RK_OK);
    assert_int_equal(decode(RECORD_FORGET, ":0\r\n").kind, RK_LOST);
    assert_int_equal(decode(RECORD_UNSTORED, "$1\r\n1\r\n").kind, RK_BAD);
    assert_int_equal(decode(RECORD_INSPECT, "*1\r\n$4\r\nnone\r\n").kind, RK_NONE);
    rr = decode(RECORD_INSPECT, "*9\r\n$6\r\nrecord\r\n$1\r\n1\r\n$4\r\ndone\r\n$2\r\nfp\r\n"
                "$13\r\n1700000000000\r\n$3\r\n201\r\n$0\r\n\r\n$1\r\nb\r\n:99\r\n");
    assert_int_equal(rr.kind, RK_RECORD);
    assert_int_equal(rr.version, 1);
    assert_int_equal(rr.created_ms, 1700000000000LL);
    assert_int_equal(rr.status, 201);
    assert_int_equal(rr.pttl_ms, 99);
    assert_int_equal(decode(RECORD_INSPECT, "*9\r\n$6\r\nrecord\r\n$1\r\n1\r\n$4\r\ndone\r\n"
                            "$2\r\nfp\r\n$1\r\n1\r\n$3\r\n201\r\n$0\r\n\r\n:1\r\n:99\r\n").kind,
                     RK_BAD);
    record_decode(RECORD_CLAIM, NULL, NULL, &rr);
    assert_int_equal(rr.kind, RK_BAD);
}

#define FP "0123456789abcdef0123456789abcdef"
#define OTHER "fedcba9876543210fedcba9876543210"

static struct record_reply string_of(const char *v, const char *fp)
{
    struct record_reply rr;
    memset(&rr, 0, sizeof(rr));
    record_decode_string(v, strlen(v), fp, &rr);
    return rr;
}

/* rr is a stored answer: status, headers and body */
static void assert_answer(const struct record_reply *rr, int status, const char *headers,
                          size_t hlen, const char *body, size_t blen)
{
    assert_int_equal(rr->kind, RK_DONE);
    assert_int_equal(rr->status, status);
    assert_int_equal(rr->headers_len, hlen);
    assert_memory_equal(rr->headers, headers, hlen);
    assert_int_equal(rr->body_len, blen);
    assert_memory_equal(rr->body, body, blen);
}

/* Layout 2: the one line of fields, the headers and the body. */
static void test_record_string(void **state)
{
    (void)state;
    const char *done = "2 d owner-1 " FP " 1700000000000 201 16\nLocation: /o/1\r\n{\"id\":1}";
    struct record_reply rr = string_of(done, FP);
    assert_answer(&rr, 201, "Location: /o/1\r\n", 16, "{\"id\":1}", 8);
    assert_int_equal(rr.created_ms, 1700000000000LL);
    assert_int_equal(string_of(done, OTHER).kind, RK_MISMATCH);
    rr = string_of("2 i owner-1 " FP " 1700000000000\n", FP);
    assert_int_equal(rr.kind, RK_INFLIGHT);
    assert_int_equal(rr.pttl_ms, -1);
    assert_int_equal(rr.created_ms, 1700000000000LL);
    assert_int_equal(string_of("2 i owner-1 " FP " 1\n", OTHER).kind, RK_MISMATCH);
    assert_int_equal(string_of("2 u owner-1 " FP " 1\n", FP).kind, RK_UNSTORED);
    rr = string_of("2 d owner-1 " FP " 5 204 0\n", NULL);       /* inspect */
    assert_int_equal(rr.kind, RK_RECORD);
    assert_string_equal(rr.state, "done");
    assert_string_equal(rr.fp, FP);
    assert_int_equal(rr.body_len, 0);
    static const char *const bad[] = {
        "", "2", "1 d owner " FP " 1 201 0\n", "2 x owner " FP " 1\n",
        "2 d owner " FP " 1 201\n", "2 d owner " FP " 1 201 5\nabc",   /* hlen past the end */
        "2 d owner " FP " 1 2010 0\n", "2 d owner " FP " 1 99 0\n",
        "2 i owner " FP " 1\nextra", "2 i owner " FP "\n", "2 i owner " FP " x\n",
        "2 i owner short 1\n", "2 i  " FP " 1\n", "2 i owner " FP " 1", "2 i owner " FP "  1\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (string_of(bad[i], FP).kind != RK_UNREADABLE)
            fail_msg("read as a record: %s", bad[i]);
}

/*
 * What finishes a string claim: ARGV[1] is exactly the value the claim
 * wrote, ARGV[2] the record's new value, which reads back as the answer
 * (done) or the mark (unstored) for the same fingerprint.
 */
static void test_record_string_finish(void **state)
{
    (void)state;
    const struct record_claim cl = { .token = "tok", .fp = FP, .created_ms = 1700000000000LL,
                                     .layout = RECORD_LAYOUT_STRING };
    const char *claimed = "2 i tok " FP " 1700000000000\n";
    struct resp_buf b = { 0 };
    size_t at = 0;
    assert_int_equal(record_args_complete(&b, "k", &cl, 201, "A: b\r\n", 6, 5, 3600000, &at), 0);
    memcpy(b.p + at, "hello", 5);
    redisReply *r = args_back(&b);
    assert_int_equal(r->elements, 7);         /* (script) numkeys key claimed new ttl */
    assert_string_equal(r->element[4]->str, claimed);
    assert_string_equal(r->element[6]->str, "3600000");
    struct record_reply rr;
    record_decode_string(r->element[5]->str, r->element[5]->len, FP, &rr);
    assert_answer(&rr, 201, "A: b\r\n", 6, "hello", 5);
    record_decode_string(r->element[5]->str, r->element[5]->len, OTHER, &rr);
    assert_int_equal(rr.kind, RK_MISMATCH);
    freeReplyObject(r);

    resp_reset(&b);
    assert_int_equal(record_args_unstored(&b, "k", &cl, 5000), 0);
    r = args_back(&b);
    assert_int_equal(r->elements, 7);
    assert_string_equal(r->element[4]->str, claimed);
    record_decode_string(r->element[5]->str, r->element[5]->len, FP, &rr);
    assert_int_equal(rr.kind, RK_UNSTORED);
    assert_string_equal(r->element[6]->str, "5000");
    freeReplyObject(r);

    resp_reset(&b);
    assert_int_equal(record_args_release(&b, "k", &cl), 0);
    r = args_back(&b);
    assert_int_equal(r->elements, 5);
    assert_string_equal(r->element[4]->str, claimed);
    freeReplyObject(r);

    /* the longest claim there is fits: a whole token, fingerprint and time */
    struct record_claim big = cl;
    memset(big.token, 'x', sizeof(big.token) - 1);
    big.token[sizeof(big.token) - 1] = '\0';
    big.created_ms = INT64_MAX;
    resp_reset(&b);
    assert_int_equal(record_args_release(&b, "k", &big), 0);
    r = args_back(&b);
    assert_int_equal(r->element[4]->len, 4 + 32 + 1 + 32 + 1 + 19 + 1);
    freeReplyObject(r);
    /* a token that is not terminated is refused, not read past */
    memset(big.token, 'x', sizeof(big.token));
    resp_reset(&b);
    assert_int_equal(record_args_release(&b, "k", &big), -1);
    resp_free(&b);
}

/* The claims: SET NX GET (layout 2), the script's answer for a string. */
static void test_record_string_claim(void **state)
{
    (void)state;
    struct resp_buf b = { 0 };
    const struct record_claim cl = { .token = "tok", .fp = FP, .created_ms = 1700000000000LL,
                                     .layout = RECORD_LAYOUT_STRING };
    assert_int_equal(record_cmd_claim_string(&b, "idem:{k}", &cl, 60000), 0);
    assert_int_equal(b.argc, 7);             /* SET key value NX GET PX ms */
    static const char *const parts[] = {
        "$3\r\nSET\r\n$8\r\nidem:{k}\r\n", "2 i tok " FP " 1700000000000\n",
        "$2\r\nNX\r\n$3\r\nGET\r\n$2\r\nPX\r\n$5\r\n60000\r\n",
    };
    for (size_t i = 0; i < 3; i++)
        assert_non_null(memmem(b.p, b.len, parts[i], strlen(parts[i])));
    resp_free(&b);
    struct record_reply rr;
    redisReply *r = reply_of("$-1\r\n", 0);
    record_decode_string_claim(r, FP, &rr);
    assert_int_equal(rr.kind, RK_CLAIMED);
    freeReplyObject(r);
    r = reply_of("$43\r\n2 u tok " FP " 1\n\r\n", 0);
    record_decode_string_claim(r, FP, &rr);
    assert_int_equal(rr.kind, RK_UNSTORED);
    freeReplyObject(r);
    r = reply_of(":1\r\n", 0);
    record_decode_string_claim(r, FP, &rr);
    assert_int_equal(rr.kind, RK_BAD);
    freeReplyObject(r);
    /* the claim script hands a string record back whole */
    assert_int_equal(decode(RECORD_CLAIM, "*2\r\n$6\r\nstring\r\n$43\r\n2 u tok " FP
                            " 1\n\r\n").kind, RK_UNSTORED);
    assert_int_equal(decode(RECORD_INSPECT, "*3\r\n$6\r\nstring\r\n$43\r\n2 u tok " FP
                            " 1\n\r\n:500\r\n").kind, RK_RECORD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_header_stored),
        cmocka_unit_test(test_record_headers_roundtrip),
        cmocka_unit_test(test_record_headers_add_rejects),
        cmocka_unit_test(test_record_headers_malformed),
        cmocka_unit_test(test_record_status),
        cmocka_unit_test(test_record_ops),
        cmocka_unit_test(test_record_decode),
        cmocka_unit_test(test_record_string),
        cmocka_unit_test(test_record_string_claim),
        cmocka_unit_test(test_record_string_finish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
