/*
 * test_http: unit tests of lib/http.c: the method table, tokens, token
 * lists (Connection), hop-by-hop header names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "h1.h"
#include "http.h"

static const struct http_method *named(const char *s)
{
    return http_method_named(s, strlen(s));
}

static void test_http_methods(void **state)
{
    (void)state;
    /* the fingerprint codes every stored fingerprint holds (libevent's
     * evhttp_cmd_type values): a change would turn every retry of a stored
     * request into a mismatch */
    static const struct { const char *name; unsigned bit, fp; int routable; } want[] = {
        { "GET", M_GET, 1, 1 }, { "POST", M_POST, 2, 1 }, { "PUT", M_PUT, 8, 1 },
        { "PATCH", M_PATCH, 256, 1 }, { "DELETE", M_DELETE, 16, 1 },
        { "HEAD", M_HEAD, 4, 0 }, { "OPTIONS", M_OPTIONS, 32, 0 },
    };
    assert_int_equal(http_n_methods, sizeof(want) / sizeof(want[0]));
    unsigned seen = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct http_method *m = named(want[i].name);
        assert_non_null(m);
        assert_string_equal(m->name, want[i].name);
        assert_int_equal(m->bit, want[i].bit);
        assert_int_equal(m->fp, want[i].fp);
        assert_int_equal(m->routable, want[i].routable);
        assert_ptr_equal(http_method_of(want[i].bit), m);
        assert_int_equal(seen & m->bit, 0);             /* one bit, one row */
        seen |= m->bit;
    }
    assert_null(named("post"));                 /* methods are case-sensitive */
    assert_null(named("POSTX"));
    assert_null(named("POS"));
    assert_null(named(""));
    assert_null(named("TRACE"));
    assert_null(http_method_named("POST\0", 5));
    assert_null(http_method_of(0));
    assert_null(http_method_of(M_GET | M_POST));
    assert_null(http_method_of(1u << 12));
}

static int tok(const char *s)
{
    return http_is_token(s, strlen(s));
}

static void test_http_is_token(void **state)
{
    (void)state;
    assert_int_equal(tok("Content-Type"), 1);
    assert_int_equal(tok("X-Odd!#$%&'*+-.^_`|~09az"), 1);
    assert_int_equal(tok(""), 0);
    assert_int_equal(tok("X-Foo "), 0);      /* a space before the colon */
    assert_int_equal(tok("X Foo"), 0);
    assert_int_equal(tok("X:Foo"), 0);
    assert_int_equal(tok("X\"Foo"), 0);
    assert_int_equal(tok("X-F\xc3\xa9"), 0);  /* non-ASCII */
    assert_int_equal(http_is_token("ab\0cd", 5), 0);
    assert_int_equal(http_is_token("ab\0cd", 2), 1);
}

static int in(const char *list, const char *name)
{
    return http_token_in_list(list, name, strlen(name));
}

static void test_http_token_in_list(void **state)
{
    (void)state;
    assert_int_equal(in("close", "close"), 1);
    assert_int_equal(in("Keep-Alive, X-Foo", "x-foo"), 1);
    assert_int_equal(in("keep-alive,X-Foo", "keep-alive"), 1);
    assert_int_equal(in(" ,\tX-Foo , ", "X-Foo"), 1);
    assert_int_equal(in("X-Foo-Bar", "X-Foo"), 0);   /* whole tokens only */
    assert_int_equal(in("X-Fo", "X-Foo"), 0);
    assert_int_equal(in("", "close"), 0);
    assert_int_equal(in("closed, reclose", "close"), 0);
}

static void test_http_name_in(void **state)
{
    (void)state;
    static const struct http_name set[] = { HTTP_NAME("TE"), HTTP_NAME("Upgrade") };
    assert_int_equal(http_name_in("te", 2, set, 2), 1);
    assert_int_equal(http_name_in("UPGRADE", 7, set, 2), 1);
    assert_int_equal(http_name_in("TEX", 2, set, 2), 1);   /* n bytes only */
    assert_int_equal(http_name_in("TEX", 3, set, 2), 0);
    assert_int_equal(http_name_in("Upgrad", 6, set, 2), 0);
    assert_int_equal(http_name_in("TE", 2, set, 0), 0);
}

static void test_http_is(void **state)
{
    (void)state;
    assert_true(HTTP_IS("content-length", 14, "Content-Length"));
    assert_true(HTTP_IS("CONTENT-LENGTH", 14, "Content-Length"));
    assert_true(HTTP_IS("Content-LengthX", 14, "Content-Length"));  /* n bytes only */
    assert_false(HTTP_IS("Content-LengthX", 15, "Content-Length"));
    assert_false(HTTP_IS("Content-Lengt", 13, "Content-Length"));
    assert_false(HTTP_IS("Content-Lengtx", 14, "Content-Length"));
    assert_false(HTTP_IS("Content_Length", 14, "Content-Length"));
    assert_false(HTTP_IS("", 0, "Host"));
    assert_true(HTTP_IS("", 0, ""));
}

static void test_http_header_is_hop(void **state)
{
    static const char *const hop[] = {
        "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Proxy-Authenticate",
        "Proxy-Authorization", "Content-Length", "connection", "te",
        "TRANSFER-ENCODING",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        assert_int_equal(http_header_is_hop(hop[i]), 1);
    assert_int_equal(http_header_is_hop("Content-Type"), 0);
    assert_int_equal(http_header_is_hop("Date"), 0);
    assert_int_equal(http_header_is_hop("TEE"), 0);
    assert_int_equal(http_header_is_hop("Connections"), 0);
    assert_int_equal(http_header_is_hop(""), 0);
}

static struct h1_header hdr(const char *name, const char *value)
{
    struct h1_header h = { name, strlen(name), value, strlen(value) };
    return h;
}

/* A message's hop-by-hop fields: the fixed ones, and what its Connection
 * fields name, however many there are. */
static void test_http_hop(void **state)
{
    (void)state;
    struct http_hop f;
    struct h1_header h[12];
    h[0] = hdr("Connection", "keep-alive");
    h[1] = hdr("X-Foo", "1");
    http_hop_init(&f, h, 2);
    assert_int_equal(http_hop_drops(&f, "X-Foo", 5), 0);
    assert_int_equal(http_hop_drops(&f, "Keep-Alive", 10), 1);
    assert_int_equal(http_hop_drops(&f, "Content-Length", 14), 1);
    assert_int_equal(http_hop_drops(&f, "Content-Type", 12), 0);
    h[0] = hdr("Connection", "close, x-foo");
    http_hop_init(&f, h, 2);
    assert_int_equal(http_hop_drops(&f, "X-Foo", 5), 1);
    assert_int_equal(http_hop_drops(&f, "X-Bar", 5), 0);
    /* more Connection fields than the filter keeps: each lookup scans */
    for (int i = 0; i < 10; i++)
        h[i] = hdr("Connection", "keep-alive, x-a");
    h[10] = hdr("connection", "x-bar");
    http_hop_init(&f, h, 11);
    assert_int_equal(http_hop_drops(&f, "X-Bar", 5), 1);
    assert_int_equal(http_hop_drops(&f, "X-A", 3), 1);
    assert_int_equal(http_hop_drops(&f, "X-C", 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_methods),
        cmocka_unit_test(test_http_is_token),
        cmocka_unit_test(test_http_token_in_list),
        cmocka_unit_test(test_http_name_in),
        cmocka_unit_test(test_http_is),
        cmocka_unit_test(test_http_header_is_hop),
        cmocka_unit_test(test_http_hop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
