/*
 * route: owns matching a request (method bit + path without query) to the
 * first protected route of the config, exact or prefix ("/x/ *").
 */
#include "route.h"

#include <string.h>

unsigned route_method_bit(const char *method)
{
    static const struct { const char *name; unsigned bit; } methods[] = {
        { "GET", M_GET }, { "POST", M_POST }, { "PUT", M_PUT },
        { "PATCH", M_PATCH }, { "DELETE", M_DELETE }, { "HEAD", M_HEAD },
        { "OPTIONS", M_OPTIONS },
    };
    size_t i;

    if (!method)
        return 0;
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(method, methods[i].name) == 0)
            return methods[i].bit;
    return 0;
}

static int route_path_matches(const struct route *r, const char *path,
                              size_t pathlen)
{
    size_t rl = strnlen(r->path, sizeof(r->path));

    if (r->prefix)
        return pathlen > rl + 1 && memcmp(path, r->path, rl) == 0 &&
               path[rl] == '/';
    return pathlen == rl && memcmp(path, r->path, rl) == 0;
}

const struct route *route_match(const struct config *c, unsigned method,
                                const char *path, size_t pathlen)
{
    int i;

    if (!c || !path || method == 0)
        return NULL;
    for (i = 0; i < c->n_routes && i < CONF_MAX_ROUTES; i++) {
        const struct route *r = &c->routes[i];
        if ((r->methods & method) && route_path_matches(r, path, pathlen))
            return r;
    }
    return NULL;
}
