/*
 * test_fmt: unit tests of lib/fmt.h, checked against snprintf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fmt.h"

static const unsigned long long vals[] = {
    0, 1, 9, 10, 15, 16, 99, 100, 255, 256, 4095, 65535, 1000000,
    0xffffffffULL, 0x100000000ULL, 12345678901234567ULL, UINT64_MAX - 1, UINT64_MAX,
};

static void test_fmt_dec(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char got[32], want[32];
        memset(got, '#', sizeof(got));
        size_t n = fmt_dec(got, vals[i]);
        int w = snprintf(want, sizeof(want), "%llu", vals[i]);
        assert_int_equal(n, (size_t)w);
        assert_memory_equal(got, want, n);
        assert_int_equal(got[n], '#');      /* not terminated, nothing past */
    }
}

static void test_fmt_hex(void **state)
{
    (void)state;
    static const int mins[] = { 1, 8, 16 };
    for (size_t m = 0; m < sizeof(mins) / sizeof(mins[0]); m++)
        for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
            char got[32], want[32];
            memset(got, '#', sizeof(got));
            size_t n = fmt_hex(got, vals[i], mins[m]);
            int w = snprintf(want, sizeof(want), "%0*llx", mins[m], vals[i]);
            assert_int_equal(n, (size_t)w);
            assert_memory_equal(got, want, n);
            assert_int_equal(got[n], '#');
        }
}

static void test_fmt_hex_min_capped(void **state)
{
    (void)state;
    char got[32];
    memset(got, '#', sizeof(got));
    assert_int_equal(fmt_hex(got, 0xabcULL, 40), 16);   /* at most 16 digits */
    assert_memory_equal(got, "0000000000000abc#", 17);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_dec),
        cmocka_unit_test(test_fmt_hex),
        cmocka_unit_test(test_fmt_hex_min_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
