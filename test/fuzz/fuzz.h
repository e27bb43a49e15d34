/*
 * fuzz.h: what the libFuzzer targets in test/fuzz/ share: the entry point's
 * prototype and FUZZ_CHECK, which stops the run on a property violation with
 * the file, line and condition (libFuzzer then saves the input).
 */
#ifndef IDEM_FUZZ_H
#define IDEM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__,      \
                    __LINE__, #cond);                                        \
            __builtin_trap();                                                \
        }                                                                    \
    } while (0)

#endif
