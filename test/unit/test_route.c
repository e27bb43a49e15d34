/*
 * test_route: unit tests of lib/route.c: exact and prefix path
 * matching, method filtering, first match wins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "route.h"

static void test_route_add(struct config *c, const char *name,
                           const char *path, int prefix, unsigned methods)
{
    struct route *r = &c->routes[c->n_routes++];
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->prefix = prefix ? 1 : 0;
    r->methods = methods;
}

static int test_route_setup(void **state)
{
    struct config *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    test_route_add(c, "orders-exact", "/v1/orders", 0, M_POST);
    test_route_add(c, "orders-below", "/v1/orders", 1, M_POST | M_PUT | M_PATCH);
    test_route_add(c, "pay", "/v1/pay", 0, M_POST);
    test_route_add(c, "pay-any", "/v1/pay", 0, M_POST | M_DELETE);
    *state = c;
    return 0;
}

static int test_route_teardown(void **state)
{
    free(*state);
    return 0;
}

static const char *test_route_name(const struct config *c, unsigned m,
                                   const char *path)
{
    const struct route *r = route_match(c, m, path, strlen(path));
    return r ? r->name : "(none)";
}

static void test_route_exact(void **state)
{
    const struct config *c = *state;
    assert_string_equal(test_route_name(c, M_POST, "/v1/orders"), "orders-exact");
    assert_string_equal(test_route_name(c, M_POST, "/v1/order"), "(none)");
    assert_string_equal(test_route_name(c, M_POST, "/v1/ordersx"), "(none)");
    assert_string_equal(test_route_name(c, M_POST, "/V1/orders"), "(none)");
    assert_string_equal(test_route_name(c, M_POST, "/v1/pay"), "pay");
    assert_string_equal(test_route_name(c, M_POST, "/v1/pay/"), "(none)");
    assert_string_equal(test_route_name(c, M_POST, ""), "(none)");
}

static void test_route_prefix(void **state)
{
    const struct config *c = *state;
    assert_string_equal(test_route_name(c, M_POST, "/v1/orders/7"), "orders-below");
    assert_string_equal(test_route_name(c, M_PUT, "/v1/orders/7/items"), "orders-below");
    /* the prefix itself and the bare slash are not below it */
    assert_string_equal(test_route_name(c, M_PUT, "/v1/orders"), "(none)");
    assert_string_equal(test_route_name(c, M_PUT, "/v1/orders/"), "(none)");
    assert_string_equal(test_route_name(c, M_PUT, "/v1/ordersx/7"), "(none)");
}

static void test_route_methods(void **state)
{
    const struct config *c = *state;
    assert_string_equal(test_route_name(c, M_GET, "/v1/orders"), "(none)");
    assert_string_equal(test_route_name(c, M_GET, "/v1/orders/7"), "(none)");
    assert_string_equal(test_route_name(c, M_PATCH, "/v1/orders/7"), "orders-below");
    /* first match wins; a later route picks up other methods */
    assert_string_equal(test_route_name(c, M_DELETE, "/v1/pay"), "pay-any");
    assert_string_equal(test_route_name(c, M_POST, "/v1/pay"), "pay");
    assert_string_equal(test_route_name(c, 0, "/v1/pay"), "(none)");
}

static void test_route_pathlen(void **state)
{
    const struct config *c = *state;
    const char *p = "/v1/orders?x=1";
    const struct route *r = route_match(c, M_POST, p, 10);
    assert_non_null(r);
    assert_string_equal(r->name, "orders-exact");
    /* not NUL-terminated at pathlen: a prefix match still needs a byte */
    r = route_match(c, M_POST, "/v1/orders/7", 11);
    assert_null(r);
    r = route_match(c, M_POST, "/v1/orders/7", 12);
    assert_non_null(r);
    assert_string_equal(r->name, "orders-below");
}

static void norm(const char *in, const char *want)
{
    char out[256];
    size_t n = 0;
    assert_int_equal(route_path_normalize(in, strlen(in), out, &n), 0);
    out[n] = '\0';
    assert_string_equal(out, want);
    /* the shortcut never skips a change */
    if (route_path_is_normal(in, strlen(in)))
        assert_string_equal(in, want);
    /* in place, as the config check and req_start may use it */
    char buf[256];
    strcpy(buf, in);
    assert_int_equal(route_path_normalize(buf, strlen(buf), buf, &n), 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void test_route_path_normalize(void **state)
{
    (void)state;
    norm("/v1/orders", "/v1/orders");
    norm("/v1/orders/", "/v1/orders/");            /* a trailing slash stays */
    norm("//v1/orders", "/v1/orders");
    norm("/v1//orders", "/v1/orders");
    norm("/v1///orders//", "/v1/orders/");
    norm("/v1/./orders", "/v1/orders");
    norm("/v1/x/../orders", "/v1/orders");
    norm("/v1/x/y/../../orders", "/v1/orders");
    norm("/../v1/orders", "/v1/orders");           /* never above the root */
    norm("/v1/orders/.", "/v1/orders/");
    norm("/v1/orders/..", "/v1/");
    norm("/..", "/");
    norm("/", "/");
    norm("", "");
    norm("/v1/%6Frders", "/v1/orders");            /* decoded first */
    norm("/v1/%2E%2E/v2/orders", "/v2/orders");
    norm("/v1/%2Forders", "/v1/orders");           /* %2F is a slash then */
    norm("/v1/a%zz/%4", "/v1/a%zz/%4");            /* malformed: kept */
    norm("/v1/.../orders", "/v1/.../orders");      /* not a dot segment */
    norm("/v1/..x/.x", "/v1/..x/.x");
    char out[8];
    size_t n;
    assert_int_equal(route_path_normalize("/a%00b", 6, out, &n), -1);
    assert_true(route_path_is_normal("/v1/orders", 10));
    assert_true(route_path_is_normal("/v1/orders/", 11));
    assert_false(route_path_is_normal("/v1/%6Frders", 12));
    assert_false(route_path_is_normal("//v1", 4));
    assert_false(route_path_is_normal("/.well-known", 12));   /* (checked the long way) */
}

static void test_route_empty_config(void **state)
{
    struct config *c = calloc(1, sizeof(*c));
    (void)state;
    assert_non_null(c);
    assert_null(route_match(c, M_POST, "/v1/orders", 10));
    /* a root prefix route ("/ *") stored as "" matches every sub path */
    test_route_add(c, "root", "", 1, M_POST);
    assert_string_equal(test_route_name(c, M_POST, "/x"), "root");
    assert_string_equal(test_route_name(c, M_POST, "/"), "(none)");
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_route_exact, test_route_setup, test_route_teardown),
        cmocka_unit_test_setup_teardown(test_route_prefix, test_route_setup, test_route_teardown),
        cmocka_unit_test_setup_teardown(test_route_methods, test_route_setup, test_route_teardown),
        cmocka_unit_test_setup_teardown(test_route_pathlen, test_route_setup, test_route_teardown),
        cmocka_unit_test(test_route_path_normalize),
        cmocka_unit_test(test_route_empty_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
