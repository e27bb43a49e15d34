/*
 * test_resp: unit tests of lib/resp.c: arguments, heads and whole commands
 * as RESP (read back with hiredis's reader, as Redis would), and the
 * meaning of error replies (MOVED/ASK with their address, the others).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "resp.h"
#include "reply.h"

static void test_args_and_head(void **state)
{
    (void)state;
    struct resp_buf b = { 0 };
    assert_int_equal(resp_arg_str(&b, "1"), 0);
    assert_int_equal(resp_arg(&b, "a\r\nb", 4), 0);
    assert_int_equal(resp_arg_int(&b, -42), 0);
    assert_int_equal(resp_arg_int(&b, 0), 0);
    char *room = resp_arg_room(&b, 3);
    assert_non_null(room);
    memcpy(room, "xyz", 3);
    assert_int_equal(resp_arg(&b, "", 0), 0);
    assert_int_equal(b.argc, 6);
    char head[128];
    size_t hl = resp_head(head, sizeof(head), b.argc, "ECHOS", "sha", 3);
    assert_true(hl > 0);
    assert_memory_equal(head, "*8\r\n$5\r\nECHOS\r\n$3\r\nsha\r\n", hl);
    /* the whole command, as a server reads it: an array of 8 strings */
    char all[512];
    memcpy(all, head, hl);
    memcpy(all + hl, b.p, b.len);
    redisReply *r = reply_of(all, hl + b.len);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 8);
    assert_string_equal(r->element[3]->str, "a\r\nb");
    assert_string_equal(r->element[4]->str, "-42");
    assert_string_equal(r->element[5]->str, "0");
    assert_string_equal(r->element[6]->str, "xyz");
    assert_int_equal(r->element[7]->len, 0);
    freeReplyObject(r);
    assert_int_equal(resp_head(head, 20, 1, "EVALSHA", "0123456789", 10), 0);   /* no room */
    resp_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.argc, 0);
    resp_free(&b);
    assert_null(b.p);
}

static void test_command(void **state)
{
    (void)state;
    struct resp_buf b = { 0 };
    const char *argv[] = { "AUTH", "user", "p w" };
    assert_int_equal(resp_command(&b, 3, argv), 0);
    assert_int_equal(b.len, strlen("*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$3\r\np w\r\n"));
    assert_memory_equal(b.p, "*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$3\r\np w\r\n", b.len);
    const char *one[] = { "PING" };
    assert_int_equal(resp_command(&b, 1, one), 0);            /* reset first */
    assert_memory_equal(b.p, "*1\r\n$4\r\nPING\r\n", b.len);
    resp_free(&b);
}

static enum resp_err kind(const char *s, struct resp_redirect *to)
{
    return resp_error_kind(s, strlen(s), to);
}

static void test_errors(void **state)
{
    (void)state;
    struct resp_redirect to;
    assert_int_equal(kind("MOVED 3999 127.0.0.1:6381", &to), RESP_ERR_MOVED);
    assert_int_equal(to.slot, 3999);
    assert_string_equal(to.host, "127.0.0.1");
    assert_int_equal(to.port, 6381);
    assert_int_equal(kind("ASK 16383 ::1:7000", &to), RESP_ERR_ASK);
    assert_int_equal(to.slot, 16383);
    assert_string_equal(to.host, "::1");
    assert_int_equal(to.port, 7000);
    assert_int_equal(kind("MOVED 1 :7000", &to), RESP_ERR_MOVED);   /* the same host */
    assert_string_equal(to.host, "");
    static const char *const bad[] = {
        "MOVED", "MOVED ", "MOVED 16384 h:1", "MOVED x h:1", "MOVED 1 h", "MOVED 1 h:0",
        "MOVED 1 h:70000", "MOVED 1 h:1x", "MOVED 1  h:1", "ASK 1 h:", "MOVEDX 1 h:1",
        "MOVED 1 h\x01:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (kind(bad[i], &to) != RESP_ERR_OTHER)
            fail_msg("%s is not a redirect", bad[i]);
    assert_int_equal(kind("NOSCRIPT No matching script.", &to), RESP_ERR_NOSCRIPT);
    assert_int_equal(kind("READONLY You can't write against a read only replica.", &to),
                     RESP_ERR_READONLY);
    assert_int_equal(kind("TRYAGAIN Multiple keys request during rehashing of slot", &to),
                     RESP_ERR_TRYAGAIN);
    assert_int_equal(kind("CLUSTERDOWN The cluster is down", &to), RESP_ERR_CLUSTERDOWN);
    assert_int_equal(kind("LOADING Redis is loading the dataset in memory", &to), RESP_ERR_LOADING);
    assert_int_equal(kind("MASTERDOWN Link with MASTER is down", &to), RESP_ERR_MASTERDOWN);
    assert_int_equal(kind("OOM command not allowed when used memory > 'maxmemory'.", &to),
                     RESP_ERR_OOM);
    assert_int_equal(kind("WRONGPASS invalid username-password pair", &to), RESP_ERR_AUTH);
    assert_int_equal(kind("NOAUTH Authentication required.", &to), RESP_ERR_AUTH);
    assert_int_equal(kind("NOPERM this user has no permissions", &to), RESP_ERR_AUTH);
    assert_int_equal(kind("BUSY Redis is busy running a script.", &to), RESP_ERR_BUSY);
    assert_int_equal(kind("ERR unknown command", &to), RESP_ERR_OTHER);
    assert_int_equal(kind("OOMX", &to), RESP_ERR_OTHER);
    assert_int_equal(kind("", &to), RESP_ERR_OTHER);
    assert_int_equal(resp_error_kind(NULL, 0, &to), RESP_ERR_OTHER);
}

static void test_reader_bounds(void **state)
{
    (void)state;
    redisReader *rd = resp_reader_new();
    void *r = NULL;
    const char ok[] = "*3\r\n$1\r\na\r\n:5\r\n*1\r\n$-1\r\n";
    assert_int_equal(redisReaderFeed(rd, ok, sizeof(ok) - 1), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    redisReply *rep = r;
    assert_non_null(rep);
    assert_int_equal(rep->elements, 3);
    assert_string_equal(rep->element[0]->str, "a");
    assert_int_equal(rep->element[1]->integer, 5);
    assert_int_equal(rep->element[2]->element[0]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    /* an array header past the bound fails instead of allocating it */
    const char huge[] = "*2147483647\r\n";
    assert_int_equal(redisReaderFeed(rd, huge, sizeof(huge) - 1), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_ERR);
    redisReaderFree(rd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_and_head),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_reader_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
