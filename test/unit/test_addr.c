/*
 * test_addr: unit tests of lib/addr.c: host:port, lists of nodes, Redis URLs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "addr.h"

static void test_hostport(void **state)
{
    (void)state;
    char host[256], why[256];
    int port;
    assert_int_equal(addr_hostport("a.b:1", host, sizeof(host), &port, 0, why, sizeof(why)), 0);
    assert_string_equal(host, "a.b");
    assert_int_equal(port, 1);
    assert_int_equal(addr_hostport("[::1]:65535", host, sizeof(host), &port, 0, why, sizeof(why)), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 65535);
    assert_int_equal(addr_hostport("h", host, sizeof(host), &port, 6379, why, sizeof(why)), 0);
    assert_int_equal(port, 6379);
    assert_int_equal(addr_hostport("h", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "port is missing"));
    assert_int_equal(addr_hostport("h:0", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    assert_int_equal(addr_hostport("h:65536", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    assert_int_equal(addr_hostport("h:1x", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    assert_int_equal(addr_hostport("::1:5", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "[addr]:port"));
    assert_int_equal(addr_hostport("[::1", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    assert_int_equal(addr_hostport(":5", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    assert_int_equal(addr_hostport("a b:5", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    assert_int_equal(addr_hostport("a@b:5", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    /* a bracket is no part of a host: "[[]" would be the host "[", which
     * written back as "[:6379" no longer reads */
    assert_int_equal(addr_hostport("[[]", host, sizeof(host), &port, 6379, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "bad character"));
    assert_int_equal(addr_hostport("a]b:5", host, sizeof(host), &port, 0, why, sizeof(why)), -1);
    assert_int_equal(addr_hostport("abcd:5", host, 4, &port, 0, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than 3"));
}

static void test_list(void **state)
{
    (void)state;
    struct addr_nodes l;
    char why[256];
    assert_int_equal(addr_list(" a:1, b ,[::1]:3\tc:4 ", 26379, &l, why, sizeof(why)), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.v[0].host, "a");
    assert_int_equal(l.v[1].port, 26379);
    assert_string_equal(l.v[2].host, "::1");
    assert_int_equal(l.v[3].port, 4);
    l.n = 99;
    assert_int_equal(addr_list("", 1, &l, why, sizeof(why)), -1);
    assert_int_equal(l.n, 99);                   /* untouched on error */
    assert_int_equal(addr_list(" , ", 1, &l, why, sizeof(why)), -1);
    assert_int_equal(addr_list("a:1,a:1", 1, &l, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "twice"));
    assert_int_equal(addr_list("a,b:0", 1, &l, why, sizeof(why)), -1);
    char many[512] = "";
    for (int i = 0; i <= ADDR_MAX_NODES; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "h%d ", i);
    assert_int_equal(addr_list(many, 1, &l, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "more than"));
    many[strlen(many) - 4] = '\0';                /* ADDR_MAX_NODES of them */
    assert_int_equal(addr_list(many, 1, &l, why, sizeof(why)), 0);
    assert_int_equal(l.n, ADDR_MAX_NODES);
}

static void test_redis_url(void **state)
{
    (void)state;
    struct addr_redis u;
    char why[256];
    assert_int_equal(addr_redis_url("redis://h", &u, why, sizeof(why)), 0);
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(u.tls, 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");
    assert_int_equal(addr_redis_url("rediss://us%3Aer:p%40%3Ass:w@h:6380/255", &u, why,
                                    sizeof(why)), 0);
    assert_int_equal(u.tls, 1);
    assert_string_equal(u.user, "us:er");
    assert_string_equal(u.password, "p@:ss:w");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 255);
    assert_int_equal(addr_redis_url("redis://:pw@h/", &u, why, sizeof(why)), 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "pw");
    assert_int_equal(addr_redis_url("redis://a@b@h", &u, why, sizeof(why)), 0);
    assert_string_equal(u.user, "a@b");          /* the last '@' ends the userinfo */
    assert_int_equal(addr_redis_url("redis://[::1]:7/1", &u, why, sizeof(why)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.db, 1);
    static const char *const bad[] = {
        "http://h", "redis:/h", "redis://", "redis://h/256", "redis://h/1x", "redis://h/0001",
        "redis://h?x", "redis://h#x", "redis://u:p%2@h", "redis://u:p%00@h", "redis://h:0",
        "rediss://:%zz@h",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (addr_redis_url(bad[i], &u, why, sizeof(why)) != -1)
            fail_msg("accepted %s", bad[i]);
    /* a password never shows in the message */
    assert_int_equal(addr_redis_url("redis://u:secret@h:99999", &u, why, sizeof(why)), -1);
    assert_null(strstr(why, "secret"));
    assert_int_equal(addr_redis_url("redis://u:secret%zz@h", &u, why, sizeof(why)), -1);
    assert_null(strstr(why, "secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_redis_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
