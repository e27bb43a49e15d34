/*
 * route: which protected route (if any) a request belongs to.
 * Owns: matching method + path (query excluded) against the config's routes.
 */
#ifndef IDEM_ROUTE_H
#define IDEM_ROUTE_H

#include "config.h"

/*
 * The first route of c whose methods include `method` (M_* bit) and whose
 * path matches `path` (no query string; an exact match, or for a prefix
 * route anything strictly below it: "/v1/orders/ *" matches "/v1/orders/7",
 * not "/v1/orders"). NULL when none does. Borrowed from c.
 */
/* The path routes are matched against: percent-decoded, with repeated
 * slashes merged and dot segments resolved, as upstreams commonly see it,
 * so that a variant of a protected path is not let through unprotected.
 * Writes at most n bytes to out (which may be in); -1 on a %00. */
int route_path_normalize(const char *in, size_t n, char *out, size_t *outlen);
/* 1: route_path_normalize would leave p as it is (no '%', "//" or "/."),
 * the common case, checked without a copy. */
int route_path_is_normal(const char *p, size_t n);

const struct route *route_match(const struct config *c, unsigned method,
                                const char *path, size_t pathlen);

/*
 * The route of a request as it was sent: its method ("POST") and its
 * request-target, in origin form ("/v1/orders?x=1", path up to '?' or '#')
 * or absolute form ("http://host/v1/orders"); other forms ("*", host:port)
 * have no path and match nothing. The path is matched as is when it is
 * normal, else normalised (route_path_normalize). NULL when none matches;
 * *bad is set (and NULL returned) for a path holding %00.
 */
const struct route *route_for(const struct config *c, const char *method,
                              const char *target, int *bad);

#endif
