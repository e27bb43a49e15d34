/*
 * table.c: a JSON array written one row per line.
 */
#include "table.h"

#include <stdlib.h>

int table_write(FILE *f, int n, table_row_fn row)
{
    int rc = fputs("[\n", f) < 0 ? -1 : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        json_t *r = row(i);
        char *text = r ? json_dumps(r, 0) : NULL;
        if (text == NULL || fprintf(f, "%s%s", i ? ",\n" : "", text) < 0)
            rc = -1;
        free(text);
        json_decref(r);
    }
    if (rc == 0 && fputs("\n]\n", f) < 0)
        rc = -1;
    return rc == 0 && fflush(f) == 0 && !ferror(f) ? 0 : -1;
}
