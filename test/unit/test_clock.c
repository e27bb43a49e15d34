/*
 * test_clock: lib/clock.c's now_ms never goes back and counts in
 * milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "clock.h"

static void test_never_goes_back(void **state)
{
    (void)state;
    double prev = now_ms();
    for (int i = 0; i < 100000; i++) {
        double t = now_ms();
        assert_true(t >= prev);
        prev = t;
    }
}

static void test_counts_milliseconds(void **state)
{
    (void)state;
    double t0 = now_ms();
    struct timespec ts = { 0, 20 * 1000 * 1000 };     /* 20 ms */
    while (nanosleep(&ts, &ts) != 0)
        ;
    double waited = now_ms() - t0;
    assert_true(waited >= 20.0);                      /* not seconds or microseconds */
    assert_true(waited < 20000.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_goes_back),
        cmocka_unit_test(test_counts_milliseconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
