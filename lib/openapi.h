/*
 * openapi: a config's protected routes as an OpenAPI 3.0 fragment
 * (`idemproxy -T openapi`), to merge into the API's own document: per route
 * and method the Idempotency-Key header parameter, the Idempotent-Replayed
 * response header, and the error answers idemproxy itself makes there.
 * Owns: describing what proxy/req.c does on a route; it must agree with it.
 * Does not own: the API's own operations, bodies and answers.
 */
#ifndef IDEM_OPENAPI_H
#define IDEM_OPENAPI_H

#include <stdio.h>
#include <jansson.h>

#include "config.h"

#define OPENAPI_VERSION "3.0.3"

/*
 * The document for c: a new reference (the caller json_decref()s it), or
 * NULL when out of memory. version goes to info.version.
 */
json_t *openapi_build(const struct config *c, const char *version);

/* openapi_build() written to f as indented JSON and a newline. 0, or -1. */
int openapi_write(const struct config *c, const char *version, FILE *f);

#endif
