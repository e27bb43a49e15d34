/*
 * route: owns matching a request (method bit + path without query) to the
 * first protected route of the config, exact or prefix ("/x/ *").
 */
#include "route.h"

#include <string.h>

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
