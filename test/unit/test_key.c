/*
 * test_key: unit tests of lib/key.c: Idempotency-Key parsing (SF strings,
 * bytes, lengths), JSON scope, fingerprints and record names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "jcanon.h"
#include "key.h"

static enum key_status test_key_p(const char *raw, char *out, size_t *n)
{
    return key_parse(raw, 255, out, 256, n);
}

static void test_key_plain(void **state)
{
    char out[256];
    size_t n = 99;
    (void)state;
    assert_int_equal(test_key_p("abc-123", out, &n), KEY_OK);
    assert_string_equal(out, "abc-123");
    assert_int_equal(n, 7);
    assert_int_equal(test_key_p(" \tabc def\t ", out, &n), KEY_OK);
    assert_string_equal(out, "abc def");
    assert_int_equal(n, 7);
}

static void test_key_sf_string(void **state)
{
    char out[256];
    size_t n;
    (void)state;
    assert_int_equal(test_key_p("\"abc\"", out, &n), KEY_OK);
    assert_string_equal(out, "abc");
    assert_int_equal(n, 3);
    assert_int_equal(test_key_p("  \"abc\"\t", out, &n), KEY_OK);
    assert_string_equal(out, "abc");
    assert_int_equal(test_key_p("\"a\\\"b\\\\c\"", out, &n), KEY_OK);
    assert_string_equal(out, "a\"b\\c");
    assert_int_equal(n, 5);
    assert_int_equal(test_key_p("\" x \"", out, &n), KEY_OK);
    assert_string_equal(out, " x ");
}

static void test_key_sf_malformed(void **state)
{
    char out[256];
    size_t n;
    (void)state;
    assert_int_equal(test_key_p("\"abc", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("\"", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("\"abc\"x", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("\"a\"b\"", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("\"a\\nb\"", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("\"abc\\\"", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("\"\\\"", out, &n), KEY_BAD_BYTES);
}

static void test_key_empty(void **state)
{
    char out[256];
    size_t n;
    (void)state;
    assert_int_equal(test_key_p("", out, &n), KEY_EMPTY);
    assert_int_equal(test_key_p("  \t ", out, &n), KEY_EMPTY);
    assert_int_equal(test_key_p("\"\"", out, &n), KEY_EMPTY);
    assert_int_equal(test_key_p(" \"\" ", out, &n), KEY_EMPTY);
}

static void test_key_bytes(void **state)
{
    char out[256];
    size_t n;
    (void)state;
    assert_int_equal(test_key_p("ab\x01" "c", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("a\tb", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("ab\x7f", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("caf\xc3\xa9", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("\"a\x7f\"", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("\"a\x01\"", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p("a\rb", out, &n), KEY_BAD_BYTES);
    assert_int_equal(test_key_p(" ~!", out, &n), KEY_OK);
    assert_string_equal(out, "~!");
}

static void test_key_length(void **state)
{
    char raw[300], q[310], out[256];
    size_t n;
    (void)state;
    memset(raw, 'k', 255);
    raw[255] = '\0';
    assert_int_equal(test_key_p(raw, out, &n), KEY_OK);
    assert_int_equal(n, 255);
    assert_int_equal(strlen(out), 255);
    raw[255] = 'k';
    raw[256] = '\0';
    assert_int_equal(test_key_p(raw, out, &n), KEY_TOO_LONG);
    /* quoted: the unquoted length counts */
    q[0] = '"';
    memset(q + 1, 'q', 255);
    q[256] = '"';
    q[257] = '\0';
    assert_int_equal(test_key_p(q, out, &n), KEY_OK);
    assert_int_equal(n, 255);
    /* maxlen from the route */
    assert_int_equal(key_parse("abcd", 3, out, sizeof(out), &n), KEY_TOO_LONG);
    assert_int_equal(key_parse("abc", 3, out, sizeof(out), &n), KEY_OK);
    /* out too small */
    assert_int_equal(key_parse("abcd", 255, out, 4, &n), KEY_TOO_LONG);
    assert_int_equal(key_parse("abc", 255, out, 4, &n), KEY_OK);
    assert_string_equal(out, "abc");
}

static void test_key_scope(void **state)
{
    char out[16];
    json_t *o = json_pack("{s:s, s:I, s:b, s:f, s:n, s:s}", "t", "acme",
                          "n", (json_int_t)-42, "b", 1, "f", 1.5, "z",
                          "long", "0123456789abcdefXYZ");
    (void)state;
    assert_non_null(o);
    assert_int_equal(key_scope_json(o, "t", out, sizeof(out)), 0);
    assert_string_equal(out, "acme");
    assert_int_equal(key_scope_json(o, "n", out, sizeof(out)), 0);
    assert_string_equal(out, "-42");
    assert_int_equal(key_scope_json(o, "b", out, sizeof(out)), -1);
    assert_int_equal(key_scope_json(o, "f", out, sizeof(out)), -1);
    assert_int_equal(key_scope_json(o, "z", out, sizeof(out)), -1);
    assert_int_equal(key_scope_json(o, "missing", out, sizeof(out)), -1);
    assert_int_equal(key_scope_json(o, "long", out, sizeof(out)), -1);
    json_t *arr = json_array();
    assert_int_equal(key_scope_json(arr, "t", out, sizeof(out)), -1);
    json_decref(arr);
    json_decref(o);
}

static struct fp test_key_fp2(const char *a, size_t al, const char *b,
                              size_t bl)
{
    struct fp_state *s = fp_new();
    struct fp f;
    assert_non_null(s);
    fp_field(s, a, al);
    fp_field(s, b, bl);
    f = fp_digest(s);
    fp_free(s);
    return f;
}

static int test_key_fp_eq(struct fp a, struct fp b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

static void test_key_fp_fields(void **state)
{
    struct fp a, b;
    (void)state;
    a = test_key_fp2("POST", 4, "/v1/x", 5);
    b = test_key_fp2("POST", 4, "/v1/x", 5);
    assert_true(test_key_fp_eq(a, b));
    b = test_key_fp2("POST", 4, "/v1/y", 5);
    assert_false(test_key_fp_eq(a, b));
    b = test_key_fp2("PUT", 3, "/v1/x", 5);
    assert_false(test_key_fp_eq(a, b));
    /* field boundaries */
    a = test_key_fp2("ab", 2, "c", 1);
    b = test_key_fp2("a", 1, "bc", 2);
    assert_false(test_key_fp_eq(a, b));
    /* embedded NUL bytes count */
    a = test_key_fp2("a\0b", 3, "", 0);
    b = test_key_fp2("a\0c", 3, "", 0);
    assert_false(test_key_fp_eq(a, b));
}

static void test_key_fp_opt_reset(void **state)
{
    struct fp_state *s = fp_new();
    struct fp absent, empty, again;
    (void)state;
    fp_field_opt(s, NULL);
    absent = fp_digest(s);
    fp_reset(s);
    fp_field_opt(s, "");
    empty = fp_digest(s);
    assert_false(test_key_fp_eq(absent, empty));
    fp_reset(s);
    fp_field(s, "", 0);
    again = fp_digest(s);
    assert_true(test_key_fp_eq(empty, again));
    fp_reset(s);
    fp_field_opt(s, NULL);
    again = fp_digest(s);
    assert_true(test_key_fp_eq(absent, again));
    /* no fields at all differs from one empty field */
    fp_reset(s);
    again = fp_digest(s);
    assert_false(test_key_fp_eq(empty, again));
    fp_free(s);
}

/* the fingerprint field of a JSON body, as req.c builds it */
static struct fp test_key_fp_json(const char *txt)
{
    struct jcanon jc;
    struct fp_state *s = fp_new();
    struct fp f;
    assert_int_equal(jcanon(&jc, txt, strlen(txt)), JCANON_OK);
    fp_field(s, jc.text, jc.len);
    jcanon_done(&jc);
    f = fp_digest(s);
    fp_free(s);
    return f;
}

static void test_key_fp_json_canon(void **state)
{
    (void)state;
    assert_true(test_key_fp_eq(test_key_fp_json("{\"a\":1, \"b\":2}"),
                               test_key_fp_json("{\"b\":2,\"a\":1}")));
    assert_true(test_key_fp_eq(
        test_key_fp_json("{\"o\":{\"y\":[1, 2],\"x\":\"s\"},\"a\":null}"),
        test_key_fp_json(" { \"a\" : null ,\n \"o\" : {\"x\":\"s\",\"y\":[1,2]} } ")));
    assert_false(test_key_fp_eq(test_key_fp_json("{\"a\":1,\"b\":2}"),
                                test_key_fp_json("{\"a\":1,\"b\":3}")));
    assert_false(test_key_fp_eq(test_key_fp_json("[1,2]"),
                                test_key_fp_json("[2,1]")));
    assert_false(test_key_fp_eq(test_key_fp_json("{\"a\":1}"),
                                test_key_fp_json("{\"a\":\"1\"}")));
    assert_true(test_key_fp_eq(test_key_fp_json("\"s\""),
                               test_key_fp_json(" \"s\" ")));
    struct jcanon jc;
    assert_int_equal(jcanon(&jc, "{\"a\":1", 6), JCANON_INVALID);
    jcanon_done(&jc);
}

/* The JSON field is the canonical text (sorted keys, compact), whether it
 * fits jcanon's inline buffer or not: fingerprints stored by one version
 * must match the next one's. */
static void test_key_fp_json_is_canonical_text(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 10, 2026, 2027, 2028, 9000 };
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = lens[i];
        /* {"z":[1,true],"a":"xxx..."} canonical: {"a":"xxx...","z":[1,true]} */
        char *in = malloc(n + 64), *canon = malloc(n + 64);
        assert_non_null(in);
        assert_non_null(canon);
        memcpy(in, "{ \"z\": [1, true], \"a\": \"", 24);
        memset(in + 24, 'x', n);
        memcpy(in + 24 + n, "\" }", 4);
        memcpy(canon, "{\"a\":\"", 6);
        memset(canon + 6, 'x', n);
        memcpy(canon + 6 + n, "\",\"z\":[1,true]}", 16);
        size_t clen = 6 + n + 15;   /* 2048 (the buffer) at n = 2027 */
        struct fp_state *s = fp_new();
        fp_field(s, canon, clen);
        struct fp want = fp_digest(s);
        fp_free(s);
        assert_true(test_key_fp_eq(test_key_fp_json(in), want));
        free(in);
        free(canon);
    }
}

static void test_key_fp_hex(void **state)
{
    char hex[33];
    struct fp f = { 0x0123456789abcdefULL, 0xfedcba9876543210ULL };
    (void)state;
    fp_hex(f, hex);
    assert_string_equal(hex, "fedcba98765432100123456789abcdef");
    f.lo = 1;
    f.hi = 0;
    fp_hex(f, hex);
    assert_string_equal(hex, "00000000000000000000000000000001");
}

static int test_key_is_hex32(const char *s)
{
    size_t i;
    if (strlen(s) != 32)
        return 0;
    for (i = 0; i < 32; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void test_key_record_name(void **state)
{
    char a[128], b[128], h[33];
    int n;
    (void)state;
    n = key_record_name("idem:", "orders", "acme", "k1", 2, a, sizeof(a), h);
    assert_int_equal(n, 5 + 1 + 32 + 1);
    assert_int_equal(strlen(a), (size_t)n);
    assert_memory_equal(a, "idem:{", 6);
    assert_int_equal(a[n - 1], '}');
    assert_true(test_key_is_hex32(h));
    assert_memory_equal(a + 6, h, 32);
    /* the key itself never appears */
    assert_null(strstr(a, "k1"));

    /* pinned: records written by an earlier version keep their names
     * (a change here orphans every stored record on upgrade) */
    assert_string_equal(a, "idem:{153a95167373dd89d1d0f6c11a56edaa}");
    key_record_name("idem:", "orders", NULL, "k1", 2, b, sizeof(b), NULL);
    assert_string_equal(b, "idem:{72dd621958b27b5cb2adbd7907afc4ab}");

    n = key_record_name("idem:", "orders", "acme", "k1", 2, b, sizeof(b), NULL);
    assert_string_equal(a, b);
    key_record_name("idem:", "orders", "other", "k1", 2, b, sizeof(b), NULL);
    assert_string_not_equal(a, b);
    key_record_name("idem:", "payments", "acme", "k1", 2, b, sizeof(b), NULL);
    assert_string_not_equal(a, b);
    key_record_name("idem:", "orders", "acme", "k2", 2, b, sizeof(b), NULL);
    assert_string_not_equal(a, b);
    /* keylen is honoured */
    key_record_name("idem:", "orders", "acme", "k1XYZ", 2, b, sizeof(b), NULL);
    assert_string_equal(a, b);
    /* no scope vs empty scope */
    key_record_name("idem:", "orders", NULL, "k1", 2, a, sizeof(a), NULL);
    key_record_name("idem:", "orders", "", "k1", 2, b, sizeof(b), NULL);
    assert_string_not_equal(a, b);
    /* boundary between route and scope */
    key_record_name("idem:", "ab", "c", "k", 1, a, sizeof(a), NULL);
    key_record_name("idem:", "a", "bc", "k", 1, b, sizeof(b), NULL);
    assert_string_not_equal(a, b);
    /* other prefix */
    n = key_record_name("x", "r", NULL, "k", 1, a, sizeof(a), NULL);
    assert_int_equal(n, 35);
    assert_int_equal(a[0], 'x');
    assert_int_equal(a[1], '{');
    /* too small */
    assert_int_equal(key_record_name("idem:", "r", NULL, "k", 1, a, 39, NULL), -1);
    assert_int_equal(key_record_name("idem:", "r", NULL, "k", 1, a, 40, NULL), 39);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_plain),
        cmocka_unit_test(test_key_sf_string),
        cmocka_unit_test(test_key_sf_malformed),
        cmocka_unit_test(test_key_empty),
        cmocka_unit_test(test_key_bytes),
        cmocka_unit_test(test_key_length),
        cmocka_unit_test(test_key_scope),
        cmocka_unit_test(test_key_fp_fields),
        cmocka_unit_test(test_key_fp_opt_reset),
        cmocka_unit_test(test_key_fp_json_canon),
        cmocka_unit_test(test_key_fp_json_is_canonical_text),
        cmocka_unit_test(test_key_fp_hex),
        cmocka_unit_test(test_key_record_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
