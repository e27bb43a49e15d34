/*
 * confval.h: one option's value read from its text (lib/confval.c), for
 * the loader (lib/config.c). Private to those two files. Each setter
 * returns 0, or -1 with why saying what is wrong and what is allowed.
 */
#ifndef IDEM_CONFVAL_H
#define IDEM_CONFVAL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define MS_S   1000LL
#define MS_M   (60 * MS_S)
#define MS_H   (60 * MS_M)
#define KB     1024LL
#define MB     (1024 * KB)
#define GB     (1024 * MB)

/* A decimal integer, optionally negative, nothing after it. */
int conf_parse_int(const char *s, int64_t *v);
/* http://host[:port][/] into host (256 bytes) and port. */
int conf_set_upstream(const char *v, char *host, int *port, char *why, size_t wn);
/* The methods a route may list, as "GET<sep>POST..." for a message. */
void conf_method_words(char *out, size_t n, const char *sep);
/* A list of methods, in any case, into M_* bits. */
int conf_set_methods(const char *v, unsigned *out, char *why, size_t wn);
/* A route's path: normal, no query, a star only as its last segment. */
int conf_set_path(struct route *r, const char *v, char *why, size_t wn);
/* none, header:NAME or json:FIELD. */
int conf_set_scope(struct route *r, const char *v, char *why, size_t wn);
/* Header names to fingerprint, or none. */
int conf_set_headers(struct route *r, const char *v, char *why, size_t wn);
/* Status codes 400-599 and 4xx/5xx that release a claim, or none. */
int conf_set_release(struct route *r, const char *v, char *why, size_t wn);

#endif
