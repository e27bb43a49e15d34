/*
 * fmt.h: numbers into text without printf, for the per-request paths
 * (snprintf costs ~800 instructions a call). Neither terminates.
 */
#ifndef IDEM_FMT_H
#define IDEM_FMT_H

#include <stddef.h>

/* v in decimal at p; returns the length (at most 20) */
static inline size_t fmt_dec(char *p, unsigned long long v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* v in lower-case hex, at least min digits (at most 16), at p; returns
 * the length */
static inline size_t fmt_hex(char *p, unsigned long long v, int min)
{
    static const char digit[] = "0123456789abcdef";
    char tmp[16];
    int n = 0;
    if (min > 16)
        min = 16;
    do {
        tmp[n++] = digit[v & 0xf];
        v >>= 4;
    } while (v != 0 || n < min);
    for (int i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return (size_t)n;
}

#endif
