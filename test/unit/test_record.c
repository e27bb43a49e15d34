/*
 * test_record: unit tests of lib/record.c: which headers are stored,
 * the headers field encoding and decoding, status parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "record.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_header_stored),
        cmocka_unit_test(test_record_headers_roundtrip),
        cmocka_unit_test(test_record_headers_add_rejects),
        cmocka_unit_test(test_record_headers_malformed),
        cmocka_unit_test(test_record_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
