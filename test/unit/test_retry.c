/*
 * test_retry: lib/retry.c: the moving estimate of a route's upstream time
 * and the Retry-After hint made from it.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "retry.h"

static void test_estimate(void **state)
{
    (void)state;
    struct retry_estimate e = { 0 };
    retry_observe(&e, 1000);             /* the first sample sets it */
    assert_float_equal(e.ms, 1000, 1e-9);
    retry_observe(&e, 2000);             /* then a fifth of the way */
    assert_float_equal(e.ms, 1200, 1e-9);
    retry_observe(&e, -5);               /* not durations: ignored */
    retry_observe(&e, NAN);
    assert_float_equal(e.ms, 1200, 1e-9);
    for (int i = 0; i < 60; i++)         /* follows a lasting change */
        retry_observe(&e, 100);
    assert_float_equal(e.ms, 100, 0.01);
}

static void test_hint(void **state)
{
    (void)state;
    struct retry_estimate none = { 0 }, e = { 0 };
    /* nothing seen yet: 1 s, not the lease left */
    assert_int_equal(retry_after_in_flight(&none, 60000, 59000), 1);
    retry_observe(&e, 4200);
    /* the first request ran 1 s of an expected 4.2: 4 s (3.2 rounded up) */
    assert_int_equal(retry_after_in_flight(&e, 60000, 59000), 4);
    /* just started: 5 */
    assert_int_equal(retry_after_in_flight(&e, 60000, 60000), 5);
    /* it ran longer than expected: 1, not 0 or less */
    assert_int_equal(retry_after_in_flight(&e, 60000, 50000), 1);
    /* never more than the lease left, rounded up */
    assert_int_equal(retry_after_in_flight(&e, 60000, 2500), 1);   /* ran 57.5 s */
    retry_observe(&e, 100000);
    assert_int_equal(retry_after_in_flight(&e, 10000, 9000), 9);   /* lease left 9 s */
    assert_int_equal(retry_after_in_flight(&e, 10000, 8500), 9);   /* 8.5 s: 9 */
    /* no lease left or none known (PTTL -1 / -2): 1 */
    assert_int_equal(retry_after_in_flight(&e, 10000, 0), 1);
    assert_int_equal(retry_after_in_flight(&e, 10000, -1), 1);
    assert_int_equal(retry_after_in_flight(&e, 10000, -2), 1);
    /* a lease shortened by a reload: ran counts as 0 */
    assert_int_equal(retry_after_in_flight(&e, 1000, 5000), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate),
        cmocka_unit_test(test_hint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
