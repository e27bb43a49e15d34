/*
 * oomshim: LD_PRELOAD'ed by test_oom.py. Once the file named by
 * OOMSHIM_ARM exists, every malloc, calloc or realloc of OOMSHIM_MIN bytes
 * or more fails with ENOMEM; smaller ones, and all of them before, succeed.
 * Built by the test itself (cc -shared -fPIC).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static int refuse(size_t n)
{
    static size_t min;
    static const char *arm;
    if (min == 0) {
        const char *m = getenv("OOMSHIM_MIN");
        min = m ? strtoul(m, NULL, 10) : (size_t)-1;
        arm = getenv("OOMSHIM_ARM");
    }
    if (n < min || arm == NULL || access(arm, F_OK) != 0)
        return 0;
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t n)
{
    return refuse(n) ? NULL : __libc_malloc(n);
}

void *calloc(size_t k, size_t n)
{
    return refuse(k * n) ? NULL : __libc_calloc(k, n);
}

void *realloc(void *p, size_t n)
{
    return refuse(n) ? NULL : __libc_realloc(p, n);
}
