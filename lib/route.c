/*
 * route: owns matching a request (method bit + path without query) to the
 * first protected route of the config, exact or prefix ("/x/ *").
 */
#include "route.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decoding (a malformed '%' stays as it is, as evhttp_uridecode
 * leaves it), then repeated slashes merged and "." and ".." segments
 * resolved (RFC 3986 5.2.4; ".." never climbs above the root). out has
 * room for n bytes and may be in itself.
 */
int route_path_normalize(const char *in, size_t n, char *out, size_t *outlen)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        int hi, lo;
        if (c == '%' && i + 2 < n &&
            (hi = hexval((unsigned char)in[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)in[i + 2])) >= 0) {
            c = (unsigned char)(hi * 16 + lo);
            if (c == 0)
                return -1;
            i += 2;
        }
        out[m++] = (char)c;
    }
    size_t r = 0, w = 0;
    while (r < m) {
        if (out[r] != '/') {
            out[w++] = out[r++];
            continue;
        }
        while (r + 1 < m && out[r + 1] == '/')
            r++;
        size_t s = r + 1, e = s;
        while (e < m && out[e] != '/')
            e++;
        size_t len = e - s;
        int dot = len == 1 && out[s] == '.';
        int dotdot = len == 2 && out[s] == '.' && out[s + 1] == '.';
        if (dotdot) {
            while (w > 0 && out[w - 1] != '/')
                w--;
            if (w > 0)
                w--;
        }
        if (dot || dotdot) {
            if (e == m)
                out[w++] = '/';
            r = e;
            continue;
        }
        out[w++] = '/';
        memmove(out + w, out + s, len);
        w += len;
        r = e;
    }
    *outlen = w;
    return 0;
}

int route_path_is_normal(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%')
            return 0;
        if (p[i] == '/' && i + 1 < n && (p[i + 1] == '/' || p[i + 1] == '.'))
            return 0;
    }
    return 1;
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

const struct route *route_for(const struct config *c, const char *method,
                              const char *target, int *bad)
{
    *bad = 0;
    if (c->n_routes == 0 || target == NULL)
        return NULL;
    const char *path = target;
    if (target[0] != '/') {
        /* absolute form: the path starts after scheme://authority */
        const char *s = strstr(target, "://");
        if (s == NULL || (strncasecmp(target, "http", 4) != 0))
            return NULL;
        path = strchr(s + 3, '/');
        if (path == NULL)
            path = "/";
    }
    size_t plen = strcspn(path, "?#");
    const struct http_method *hm = method ? http_method_named(method, strlen(method)) : NULL;
    unsigned mbit = hm != NULL ? hm->bit : 0;
    if (route_path_is_normal(path, plen))
        return route_match(c, mbit, path, plen);
    char stack[512];
    char *norm = plen <= sizeof(stack) ? stack : malloc(plen);
    size_t nlen = 0;
    const struct route *rt = NULL;
    if (norm == NULL || route_path_normalize(path, plen, norm, &nlen) != 0)
        *bad = 1;                 /* %00, or no memory: refused */
    else
        rt = route_match(c, mbit, norm, nlen);
    if (norm != stack)
        free(norm);
    return rt;
}
