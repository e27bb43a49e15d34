/*
 * route: which protected route (if any) a request belongs to.
 * Owns: matching method + path (query excluded) against the config's routes.
 */
#ifndef IDEM_ROUTE_H
#define IDEM_ROUTE_H

#include "config.h"

/* Method name ("POST") to its M_* bit; 0 if unknown. */
unsigned route_method_bit(const char *method);

/*
 * The first route of c whose methods include `method` (M_* bit) and whose
 * path matches `path` (no query string; an exact match, or for a prefix
 * route anything strictly below it: "/v1/orders/ *" matches "/v1/orders/7",
 * not "/v1/orders"). NULL when none does. Borrowed from c.
 */
const struct route *route_match(const struct config *c, unsigned method,
                                const char *path, size_t pathlen);

#endif
