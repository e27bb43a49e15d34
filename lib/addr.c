/*
 * addr: owns the syntax of host:port, of lists of them and of Redis URLs,
 * and the messages that say what is wrong with one. The config (lib/config.c)
 * calls these for its options; nothing here looks a name up.
 */
#include "addr.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Decimal 1..65535, the whole of s. */
static int addr_port(const char *s, int *port)
{
    long v = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    for (; isdigit((unsigned char)*s); s++) {
        v = v * 10 + (*s - '0');
        if (v > 65535)
            return -1;
    }
    if (*s != '\0' || v < 1)
        return -1;
    *port = (int)v;
    return 0;
}

int addr_hostport(const char *s, char *host, size_t hostsize, int *port,
                  int default_port, char *why, size_t wn)
{
    const char *h = s, *he, *p;
    if (*s == '[') {
        h = s + 1;
        he = strchr(h, ']');
        if (!he) {
            snprintf(why, wn, "\"%s\": missing ']' after an IPv6 address", s);
            return -1;
        }
        p = he + 1;
        if (*p && *p != ':') {
            snprintf(why, wn, "\"%s\": expected ':port' after ']'", s);
            return -1;
        }
    } else {
        he = strchr(s, ':');
        if (!he)
            he = s + strlen(s);
        p = he;
        if (*he && strchr(he + 1, ':')) {
            snprintf(why, wn, "\"%s\": write an IPv6 address as [addr]:port", s);
            return -1;
        }
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0) {
        snprintf(why, wn, "\"%s\": the host is missing, use host:port (e.g. 0.0.0.0:8080)", s);
        return -1;
    }
    if (hl >= hostsize) {
        snprintf(why, wn, "the host is longer than %zu characters", hostsize - 1);
        return -1;
    }
    for (size_t i = 0; i < hl; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '/' || ch == '@' || ch == ',' ||
            ch == '[' || ch == ']' || (ch == ':' && *s != '[')) {
            snprintf(why, wn, "\"%s\": bad character in the host", s);
            return -1;
        }
    }
    int pv;
    if (*p == '\0') {
        if (default_port <= 0) {
            snprintf(why, wn, "\"%s\": the port is missing, use host:port (e.g. 0.0.0.0:8080)", s);
            return -1;
        }
        pv = default_port;
    } else if (addr_port(p + 1, &pv) < 0) {
        snprintf(why, wn, "\"%s\": bad port, a port is 1-65535", s);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = pv;
    return 0;
}

int addr_list(const char *s, int default_port, struct addr_nodes *out,
              char *why, size_t wn)
{
    struct addr_nodes l;
    l.n = 0;
    const char *p = s;
    for (;;) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        char one[ADDR_HOST_MAX + 16];
        if (n >= sizeof(one)) {
            snprintf(why, wn, "\"%.40s...\": an address is at most %zu characters", p,
                     sizeof(one) - 1);
            return -1;
        }
        memcpy(one, p, n);
        one[n] = '\0';
        if (l.n == ADDR_MAX_NODES) {
            snprintf(why, wn, "more than %d addresses", ADDR_MAX_NODES);
            return -1;
        }
        struct addr_node *nd = &l.v[l.n];
        if (addr_hostport(one, nd->host, sizeof(nd->host), &nd->port, default_port, why, wn) < 0)
            return -1;
        for (int i = 0; i < l.n; i++)
            if (l.v[i].port == nd->port && strcmp(l.v[i].host, nd->host) == 0) {
                snprintf(why, wn, "\"%s\" is listed twice", one);
                return -1;
            }
        l.n++;
        p += n;
    }
    if (l.n == 0) {
        snprintf(why, wn, "no address given, list host:port, separated by commas");
        return -1;
    }
    *out = l;
    return 0;
}

static int addr_hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into out (size cap, NUL-terminated). -1 on a bad
 * escape, a decoded NUL, or no room. */
static int addr_unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = addr_hexval((unsigned char)s[i + 1]);
            int lo = addr_hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

int addr_redis_url(const char *url, struct addr_redis *out, char *why, size_t wn)
{
    static const char syntax[] = "redis://[[user][:password]@]host[:port][/db] or rediss:// for TLS";
    struct addr_redis r;
    memset(&r, 0, sizeof(r));
    const char *s;
    if (strncmp(url, "redis://", 8) == 0) {
        s = url + 8;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        s = url + 9;
        r.tls = 1;
    } else {
        snprintf(why, wn, "not a Redis URL, use %s", syntax);
        return -1;
    }
    /* the userinfo ends at the last '@' (a password may hold one) */
    const char *at = strrchr(s, '@');
    const char *hp = s;
    if (at != NULL) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        size_t ul = colon ? (size_t)(colon - s) : (size_t)(at - s);
        if (addr_unescape(s, ul, r.user, sizeof(r.user)) < 0) {
            snprintf(why, wn, "the user name is longer than %zu characters or has a bad %%-escape",
                     sizeof(r.user) - 1);
            return -1;
        }
        if (colon != NULL &&
            addr_unescape(colon + 1, (size_t)(at - colon - 1), r.password, sizeof(r.password)) < 0) {
            snprintf(why, wn, "the password in the URL is longer than %zu characters or has a "
                     "bad %%-escape", sizeof(r.password) - 1);
            return -1;
        }
        hp = at + 1;
    }
    char buf[ADDR_HOST_MAX + 16];
    size_t hl = strcspn(hp, "/?#");
    if (hl >= sizeof(buf)) {
        snprintf(why, wn, "the host is longer than %d characters", ADDR_HOST_MAX - 1);
        return -1;
    }
    memcpy(buf, hp, hl);
    buf[hl] = '\0';
    const char *rest = hp + hl;
    if (*rest == '?' || *rest == '#') {
        snprintf(why, wn, "a query or fragment is not supported, use %s", syntax);
        return -1;
    }
    if (*rest == '/' && rest[1] != '\0') {
        int db = 0;
        const char *d = rest + 1;
        size_t dl = strlen(d);
        for (size_t i = 0; i < dl; i++)
            if (!isdigit((unsigned char)d[i]) || i >= 3)
                dl = 0;
        for (size_t i = 0; i < dl; i++)
            db = db * 10 + (d[i] - '0');
        if (dl == 0 || db > 255) {
            snprintf(why, wn, "bad database number \"/%.10s\", use /0 to /255", d);
            return -1;
        }
        r.db = db;
    }
    if (addr_hostport(buf, r.host, sizeof(r.host), &r.port, 6379, why, wn) < 0)
        return -1;
    *out = r;
    return 0;
}
