/*
 * test_log: JSON log lines from lib/log.c, read back through a pipe put in
 * place of stderr and parsed with jansson: fields, escaping, level
 * filtering, truncation, the level names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int fds[2];
static int saved_stderr = -1;

/* The log writes to fd 2: a pipe takes its place during a test (cmocka
 * reports on stdout). */
static int setup(void **state)
{
    (void)state;
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    saved_stderr = dup(STDERR_FILENO);
    if (saved_stderr < 0 || dup2(fds[1], STDERR_FILENO) < 0)
        return -1;
    log_set_level(LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    log_set_level(LOG_INFO);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

/* Everything written so far; "" if nothing. */
static char *drain(void)
{
    static char buf[8192];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    return buf;
}

/* Reads one line, checks it is a single ASCII JSON object ending in \n. */
static json_t *read_json(void)
{
    char *s = drain();
    size_t n = strlen(s);
    assert_true(n > 0);
    assert_int_equal(s[n - 1], '\n');
    assert_ptr_equal(strchr(s, '\n'), s + n - 1); /* one line */
    for (size_t i = 0; i < n; i++)
        assert_true((unsigned char)s[i] < 0x80);
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    if (!j)
        fail_msg("invalid JSON: %s: %s", err.text, s);
    assert_true(json_is_object(j));
    return j;
}

static void test_fields(void **state)
{
    (void)state;
    struct logline l;
    log_begin(&l, LOG_WARN, "upstream slow");
    log_str(&l, "route", "orders");
    log_strn(&l, "part", "abcdef", 3);
    log_int(&l, "status", 502);
    log_int(&l, "neg", -42);
    log_ms(&l, "took_ms", 12.3456);
    log_end(&l);

    json_t *j = read_json();
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    /* 2026-11-23T14:20:01.123Z */
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[4], '-');
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "upstream slow");
    assert_string_equal(json_string_value(json_object_get(j, "route")), "orders");
    assert_string_equal(json_string_value(json_object_get(j, "part")), "abc");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 502);
    assert_int_equal(json_integer_value(json_object_get(j, "neg")), -42);
    assert_true(json_is_real(json_object_get(j, "took_ms")));
    assert_float_equal(json_real_value(json_object_get(j, "took_ms")), 12.346, 1e-9);
    assert_null(json_object_get(j, "truncated"));
    json_decref(j);
}

static void test_ms_text(void **state)
{
    (void)state;
    struct logline l;
    log_begin(&l, LOG_INFO, "m");
    log_ms(&l, "ms", 1.5);
    log_end(&l);
    assert_non_null(strstr(drain(), ",\"ms\":1.500}\n"));
}

static void test_escaping(void **state)
{
    (void)state;
    const char raw[] = "q\"b\\n\nr\rt\tc\x01\x1f" "d\x7f" "e\xc3\xa9" "f\xff";
    struct logline l;
    log_begin(&l, LOG_ERROR, "say \"hi\"\n");
    log_str(&l, "v", raw);
    log_strn(&l, "z", "a\0b", 3);
    log_end(&l);

    char *s = drain();
    assert_non_null(strstr(s, "\"msg\":\"say \\\"hi\\\"\\n\""));
    assert_non_null(strstr(s,
        "\"v\":\"q\\\"b\\\\n\\nr\\rt\\tc\\u0001\\u001fd\\u007fe\\u00c3\\u00a9f\\u00ff\""));
    assert_non_null(strstr(s, "\"z\":\"a\\u0000b\""));

    /* And it parses back to the same code points (bytes as U+00XX). */
    json_error_t err;
    json_t *j = json_loads(s, JSON_ALLOW_NUL, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "say \"hi\"\n");
    const char *v = json_string_value(json_object_get(j, "v"));
    assert_non_null(v);
    assert_non_null(strstr(v, "q\"b\\n\nr\rt\tc\x01\x1f" "d\x7f"));
    assert_non_null(strstr(v, "e\xc3\x83\xc2\xa9" "f\xc3\xbf")); /* U+00C3 U+00A9 U+00FF */
    size_t zn = json_string_length(json_object_get(j, "z"));
    assert_int_equal(zn, 3);
    json_decref(j);
}

static void test_levels(void **state)
{
    (void)state;
    struct logline l;
    log_set_level(LOG_INFO);
    assert_false(log_enabled(LOG_DEBUG));
    assert_true(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_ERROR));

    log_begin(&l, LOG_DEBUG, "hidden");
    log_end(&l);
    log_say(LOG_DEBUG, "hidden too", "x");
    assert_string_equal(drain(), "");

    log_set_level(LOG_DEBUG);
    log_say(LOG_DEBUG, "shown", NULL);
    json_t *j = read_json();
    assert_string_equal(json_string_value(json_object_get(j, "level")), "debug");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "shown");
    assert_null(json_object_get(j, "detail"));
    json_decref(j);

    log_set_level(LOG_ERROR);
    log_say(LOG_WARN, "dropped", "x");
    assert_string_equal(drain(), "");
    log_say(LOG_ERROR, "kept", "why");
    j = read_json();
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "why");
    json_decref(j);
}

static void test_truncation(void **state)
{
    (void)state;
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char ctl[800];
    memset(ctl, '\x01', sizeof ctl); /* 6 bytes each when escaped */

    struct logline l;
    log_begin(&l, LOG_INFO, "big");
    log_str(&l, "a", big);
    log_str(&l, "b", big);
    log_str(&l, "c", big);
    log_strn(&l, "d", ctl, sizeof ctl); /* does not fit */
    log_int(&l, "e", 1);                /* dropped after truncation */
    log_end(&l);
    assert_true(l.truncated);
    assert_true(l.len <= sizeof l.buf);

    json_t *j = read_json();
    assert_string_equal(json_string_value(json_object_get(j, "a")), big);
    assert_string_equal(json_string_value(json_object_get(j, "c")), big);
    assert_null(json_object_get(j, "d"));
    assert_null(json_object_get(j, "e"));
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
}

static void test_truncation_edges(void **state)
{
    (void)state;
    /* Fill to every length near the end of the buffer, and a huge msg. */
    char fill[2100];
    memset(fill, '\x7f', sizeof fill);
    for (size_t n = 1900; n < 2100; n += 1) {
        struct logline l;
        log_begin(&l, LOG_INFO, "edge");
        log_strn(&l, "f", fill, n / 6);
        log_strn(&l, "g", fill, n % 97);
        log_ms(&l, "h", 1e300);
        log_int(&l, "i", -9223372036854775807LL);
        log_end(&l);
        assert_true(l.len <= sizeof l.buf);
        json_decref(read_json());
    }
    char msg[3000];
    memset(msg, '"', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    struct logline l;
    log_begin(&l, LOG_WARN, msg);
    log_str(&l, "after", "x");
    log_end(&l);
    assert_true(l.len <= sizeof l.buf);
    json_t *j = read_json();
    assert_true(json_is_true(json_object_get(j, "truncated")));
    const char *m = json_string_value(json_object_get(j, "msg"));
    assert_non_null(m);
    assert_true(strlen(m) > 900);
    assert_null(json_object_get(j, "after"));
    json_decref(j);
}

/* The names by level, which the config's [log] level takes (test_config
 * loads them), are the names the lines carry. */
static void test_level_names(void **state)
{
    (void)state;
    static const char *const want[] = { "debug", "info", "warn", "error" };
    for (int level = LOG_DEBUG; level <= LOG_ERROR; level++) {
        assert_string_equal(log_level_names[level], want[level]);
        struct logline l;
        log_set_level(LOG_DEBUG);
        log_begin(&l, level, "x");
        log_end(&l);
        json_t *j = read_json();
        assert_string_equal(json_string_value(json_object_get(j, "level")), want[level]);
        json_decref(j);
    }
    assert_null(log_level_names[LOG_ERROR + 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ms_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
