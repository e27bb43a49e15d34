/*
 * test_slots: unit tests of lib/slots.c: key slots (as CLUSTER KEYSLOT
 * gives them), the slot map, and reading CLUSTER SLOTS replies, well formed
 * or not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "slots.h"
#include "reply.h"

static unsigned slot(const char *k)
{
    return slots_key_slot(k, strlen(k));
}

static void test_key_slot(void **state)
{
    (void)state;
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("hello"), 866);
    assert_int_equal(slot("123456789"), 0x31c3 & 16383);
    /* hash tags: the first {...} that is not empty */
    assert_int_equal(slot("{bar}foo"), 5061);
    assert_int_equal(slot("idem:{bar}"), 5061);
    assert_int_equal(slot("foo{bar}{zap}"), 5061);
    assert_int_equal(slot("foo{}{bar}"), slots_key_slot("foo{}{bar}", 10));
    assert_true(slot("foo{}{bar}") != 5061);
    assert_int_equal(slot("zap{{bar}}"), slot("{bar"));
    assert_int_equal(slot("foo{bar"), slots_key_slot("foo{bar", 7));
    assert_int_equal(slots_key_slot("", 0), 0);
    /* not NUL-terminated: only len bytes count */
    assert_int_equal(slots_key_slot("foox", 3), 12182);
}

static void test_map(void **state)
{
    (void)state;
    struct slots_map *m = malloc(sizeof(*m));
    slots_clear(m);
    assert_int_equal(slots_covered(m), 0);
    for (int s = 0; s < SLOTS_N; s++)
        m->node[s] = (uint16_t)(s % 3);
    assert_int_equal(slots_covered(m), 1);
    m->node[SLOTS_N - 1] = SLOTS_NONE;
    assert_int_equal(slots_covered(m), 0);
    free(m);
}

struct seen {
    int n;
    int start[8], end[8], port[8];
    char host[8][64];
};

static int collect(void *arg, int start, int end, const char *host, size_t hostlen, int port)
{
    struct seen *s = arg;
    if (s->n == 8)
        return 7;
    s->start[s->n] = start;
    s->end[s->n] = end;
    s->port[s->n] = port;
    snprintf(s->host[s->n], sizeof(s->host[0]), "%.*s", (int)hostlen, host);
    s->n++;
    return 0;
}

/* A range in RESP: start, end, master, one replica */
#define RANGE(a, b, h, p) "*4\r\n:" a "\r\n:" b "\r\n*3\r\n$" h "\r\n:" p "\r\n$2\r\nid\r\n" \
    "*3\r\n$1\r\nr\r\n:1\r\n$2\r\nid\r\n"

static void test_parse(void **state)
{
    (void)state;
    char why[256];
    struct seen s = { 0 };
    redisReply *r = reply_of("*3\r\n" RANGE("0", "5460", "9\r\n127.0.0.1", "7000")
                             RANGE("5461", "10922", "0\r\n", "7001")
                             RANGE("10923", "16383", "1\r\n?", "7002"), 0);
    assert_non_null(r);
    assert_int_equal(slots_parse(r, collect, &s, why, sizeof(why)), 0);
    assert_int_equal(s.n, 2);                 /* "?": an unknown endpoint, unmapped */
    assert_int_equal(s.start[0], 0);
    assert_int_equal(s.end[0], 5460);
    assert_string_equal(s.host[0], "127.0.0.1");
    assert_int_equal(s.port[0], 7000);
    assert_string_equal(s.host[1], "");       /* "": the node that answered */
    assert_int_equal(s.port[1], 7001);
    freeReplyObject(r);

    /* a callback's refusal is returned */
    memset(&s, 0, sizeof(s));
    s.n = 8;
    r = reply_of("*1\r\n" RANGE("0", "1", "1\r\nh", "1"), 0);
    assert_int_equal(slots_parse(r, collect, &s, why, sizeof(why)), 7);
    freeReplyObject(r);

    /* malformed: nothing is called */
    static const char *const bad[] = {
        "$3\r\nfoo\r\n",
        "*0\r\n",
        "-ERR This instance has cluster support disabled\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",
        "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:-1\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",
        "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na b\r\n:1\r\n",
        "*2\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n:5\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&s, 0, sizeof(s));
        r = reply_of(bad[i], 0);
        assert_non_null(r);
        if (slots_parse(r, collect, &s, why, sizeof(why)) != -1 || s.n != 0)
            fail_msg("accepted bad reply %zu", i);
        assert_true(why[0] != '\0');
        freeReplyObject(r);
    }
    assert_int_equal(slots_parse(NULL, collect, &s, why, sizeof(why)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slot),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
