/*
 * table: a table of the binary's own (the options of -T options, the
 * metrics of -T metrics) written as a JSON array, one row per line, for
 * scripts/gen-docs and the docs check. Owns only the writing; each module
 * makes its rows.
 */
#ifndef IDEM_TABLE_H
#define IDEM_TABLE_H

#include <stdio.h>
#include <jansson.h>

/* Row i of n as a JSON object (a new reference), or NULL when out of
 * memory. */
typedef json_t *(*table_row_fn)(int i);

/* "[\n" row ",\n" row ... "\n]\n" to f. 0, or -1 when a row could not be
 * made or written. */
int table_write(FILE *f, int n, table_row_fn row);

#endif
