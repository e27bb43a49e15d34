/*
 * test_sentinel: unit tests of lib/sentinel.c: the master's address from a
 * sentinel, subscribed-connection messages, +switch-master and ROLE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sentinel.h"
#include "reply.h"

static void test_addr(void **state)
{
    (void)state;
    char host[64];
    int port = 0;
    redisReply *r = reply_of("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n", 0);
    assert_int_equal(sentinel_parse_addr(r, host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6380);
    freeReplyObject(r);
    r = reply_of("*-1\r\n", 0);
    assert_int_equal(sentinel_parse_addr(r, host, sizeof(host), &port), 1);
    freeReplyObject(r);
    r = reply_of("$-1\r\n", 0);
    assert_int_equal(sentinel_parse_addr(r, host, sizeof(host), &port), 1);
    freeReplyObject(r);
    static const char *const bad[] = {
        "-NOAUTH Authentication required.\r\n", "*1\r\n$1\r\nh\r\n",
        "*2\r\n$1\r\nh\r\n:6379\r\n", "*2\r\n$1\r\nh\r\n$1\r\n0\r\n",
        "*2\r\n$1\r\nh\r\n$6\r\n123456\r\n", "*2\r\n$0\r\n\r\n$1\r\n1\r\n",
        "*2\r\n$3\r\na b\r\n$1\r\n1\r\n", "*3\r\n$1\r\nh\r\n$1\r\n1\r\n$1\r\n1\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = reply_of(bad[i], 0);
        assert_non_null(r);
        if (sentinel_parse_addr(r, host, sizeof(host), &port) != -1)
            fail_msg("accepted %zu", i);
        freeReplyObject(r);
    }
    r = reply_of("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n", 0);
    assert_int_equal(sentinel_parse_addr(r, host, 9, &port), -1);    /* no room */
    freeReplyObject(r);
}

static void test_push_and_switch(void **state)
{
    (void)state;
    const char *ch, *msg;
    size_t cl, ml;
    redisReply *r = reply_of("*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n"
                             "$38\r\nidem 127.0.0.1 6379 127.0.0.1 6380 x-y\r\n", 0);
    assert_int_equal(sentinel_parse_push(r, &ch, &cl, &msg, &ml), 1);
    assert_int_equal(cl, 14);
    assert_memory_equal(ch, "+switch-master", 14);
    char host[64];
    int port;
    /* six fields: malformed */
    assert_int_equal(sentinel_parse_switch(msg, ml, "idem", host, sizeof(host), &port), -1);
    assert_int_equal(sentinel_parse_switch(msg, 34, "idem", host, sizeof(host), &port), 1);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6380);
    assert_int_equal(sentinel_parse_switch(msg, 34, "other", host, sizeof(host), &port), 0);
    assert_int_equal(sentinel_parse_switch(msg, 34, "ide", host, sizeof(host), &port), 0);
    freeReplyObject(r);
    static const char *const bad[] = {
        "", "idem", "idem a 1 b", "idem a 1 b 0", "idem a 1 b 1x", "idem  a 1 b 2",
        "idem a 1 b 2 ", "idem a 1 b 99999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sentinel_parse_switch(bad[i], strlen(bad[i]), "idem", host, sizeof(host), &port) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    r = reply_of("*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n", 0);
    assert_int_equal(sentinel_parse_push(r, &ch, &cl, &msg, &ml), 0);
    freeReplyObject(r);
    r = reply_of("*2\r\n$4\r\npong\r\n$0\r\n\r\n", 0);
    assert_int_equal(sentinel_parse_push(r, &ch, &cl, &msg, &ml), 0);
    freeReplyObject(r);
    r = reply_of("*3\r\n$7\r\nmessage\r\n:1\r\n$1\r\nx\r\n", 0);
    assert_int_equal(sentinel_parse_push(r, &ch, &cl, &msg, &ml), -1);
    freeReplyObject(r);
    r = reply_of("+OK\r\n", 0);
    assert_int_equal(sentinel_parse_push(r, &ch, &cl, &msg, &ml), -1);
    freeReplyObject(r);
}

static void test_role(void **state)
{
    (void)state;
    redisReply *r = reply_of("*3\r\n$6\r\nmaster\r\n:3129659\r\n*0\r\n", 0);
    assert_int_equal(sentinel_parse_role(r), ROLE_MASTER);
    freeReplyObject(r);
    r = reply_of("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9999\r\n$9\r\nconnected\r\n:1\r\n", 0);
    assert_int_equal(sentinel_parse_role(r), ROLE_REPLICA);
    freeReplyObject(r);
    r = reply_of("*2\r\n$8\r\nsentinel\r\n*0\r\n", 0);
    assert_int_equal(sentinel_parse_role(r), ROLE_SENTINEL);
    freeReplyObject(r);
    static const char *const other[] = { "*0\r\n", "+master\r\n", "*1\r\n:1\r\n",
                                         "*1\r\n$7\r\nmasters\r\n", "-ERR unknown\r\n" };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        r = reply_of(other[i], 0);
        assert_int_equal(sentinel_parse_role(r), ROLE_UNKNOWN);
        freeReplyObject(r);
    }
    assert_int_equal(sentinel_parse_role(NULL), ROLE_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_push_and_switch),
        cmocka_unit_test(test_role),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
