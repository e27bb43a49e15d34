/*
 * fuzz_addr: addresses and Redis URLs (lib/addr.c) on arbitrary bytes; the
 * config reads them from a file anyone may have written.
 *
 * Input: split at the first NUL: the text before is parsed as host:port,
 * as a list of nodes and as a Redis URL; the byte after the NUL (if any)
 * picks the default port.
 * Properties:
 *  - addr_hostport: 0 gives a non-empty host that fits, without spaces,
 *    controls, '/', '@', ',', '[' or ']', and a port 1..65535; the default port is
 *    taken exactly when the text has no port;
 *  - addr_list: 0 gives 1..ADDR_MAX_NODES nodes, each as addr_hostport
 *    gives it, none twice; -1 leaves the list untouched;
 *  - addr_redis_url: 0 gives a host as above, a port, db 0..255, tls 1
 *    exactly for rediss://; writing the result back as a URL (user and
 *    password percent-encoded) and parsing it gives the same fields; -1
 *    leaves out untouched and its message never holds the URL's password.
 */
#include "fuzz.h"
#include "addr.h"

#include <stdlib.h>
#include <string.h>

static void fuzz_host_ok(const char *host, int port)
{
    size_t n = strlen(host);
    FUZZ_CHECK(n > 0 && n < ADDR_HOST_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        FUZZ_CHECK(c > ' ' && c < 0x7f && c != '/' && c != '@' && c != ',' && c != '[' &&
                   c != ']');
    }
    FUZZ_CHECK(port >= 1 && port <= 65535);
}

/* %-encode everything but letters and digits */
static size_t fuzz_escape(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t tl = strlen(s);
    int defport = tl + 1 < size ? (unsigned char)data[tl + 1] * 300 : 0;
    if (defport > 65535)
        defport = 65535;
    char why[512], host[ADDR_HOST_MAX];
    int port = -1;

    if (addr_hostport(s, host, sizeof(host), &port, defport, why, sizeof(why)) == 0) {
        fuzz_host_ok(host, port);
        const char *last = strrchr(s, ':');
        int has_port = s[0] == '[' ? strstr(s, "]:") != NULL : last != NULL;
        if (!has_port)
            FUZZ_CHECK(port == defport);
    }

    struct addr_nodes l, keep;
    memset(&l, 0x5a, sizeof(l));
    keep = l;
    if (addr_list(s, defport, &l, why, sizeof(why)) == 0) {
        FUZZ_CHECK(l.n >= 1 && l.n <= ADDR_MAX_NODES);
        for (int i = 0; i < l.n; i++) {
            fuzz_host_ok(l.v[i].host, l.v[i].port);
            for (int j = 0; j < i; j++)
                FUZZ_CHECK(l.v[j].port != l.v[i].port || strcmp(l.v[j].host, l.v[i].host) != 0);
        }
    } else {
        FUZZ_CHECK(memcmp(&l, &keep, sizeof(l)) == 0);
    }

    struct addr_redis u, u2, before;
    memset(&u, 0x5a, sizeof(u));
    before = u;
    if (addr_redis_url(s, &u, why, sizeof(why)) == 0) {
        fuzz_host_ok(u.host, u.port);
        FUZZ_CHECK(u.db >= 0 && u.db <= 255);
        FUZZ_CHECK(u.tls == (strncmp(s, "rediss://", 9) == 0));
        char *url = malloc(3 * sizeof(u.user) + 3 * sizeof(u.password) + ADDR_HOST_MAX + 64);
        char *e = url;
        e += strlen(strcpy(e, u.tls ? "rediss://" : "redis://"));
        if (u.user[0] || u.password[0]) {
            e += fuzz_escape(u.user, e);
            if (u.password[0]) {
                *e++ = ':';
                e += fuzz_escape(u.password, e);
            }
            *e++ = '@';
        }
        sprintf(e, strchr(u.host, ':') ? "[%s]:%d/%d" : "%s:%d/%d", u.host, u.port, u.db);
        FUZZ_CHECK(addr_redis_url(url, &u2, why, sizeof(why)) == 0);
        FUZZ_CHECK(strcmp(u.host, u2.host) == 0 && u.port == u2.port && u.db == u2.db &&
                   u.tls == u2.tls && strcmp(u.user, u2.user) == 0 &&
                   strcmp(u.password, u2.password) == 0);
        free(url);
    } else {
        FUZZ_CHECK(memcmp(&u, &before, sizeof(u)) == 0);
        /* the password: between the userinfo's first ':' and its last '@' */
        const char *at = strrchr(s, '@');
        const char *sep = strncmp(s, "redis://", 8) == 0 || strncmp(s, "rediss://", 9) == 0
                          ? strstr(s, "://") : NULL;
        const char *colon = sep && at && at > sep + 3 ? memchr(sep + 3, ':', (size_t)(at - sep - 3))
                                                      : NULL;
        if (colon != NULL && at - colon - 1 >= 6) {
            char pw[64];
            size_t pl = (size_t)(at - colon - 1) < sizeof(pw) - 1 ? (size_t)(at - colon - 1)
                                                                    : sizeof(pw) - 1;
            memcpy(pw, colon + 1, pl);
            pw[pl] = '\0';
            /* (unless the same text is also outside the password) */
            static const char syntax[] = "redis://[[user][:password]@]host[:port][/db] or "
                                         "rediss:// for TLS, /0 to /255, 1-65535";
            /* (nor when the message is the one the URL without its
             * userinfo gets: it then quotes the host part, whose quotes may
             * complete the password's text) */
            char hostwhy[sizeof(why)] = "";
            char *nouser = malloc(strlen(at + 1) + 16);
            struct addr_redis u3;
            sprintf(nouser, "%.*s%s", (int)(sep + 3 - s), s, at + 1);
            int hostbad = addr_redis_url(nouser, &u3, hostwhy, sizeof(hostwhy)) < 0;
            free(nouser);
            /* (nor when the message's own wording holds that text: the
             * same URL with the password's letters and digits changed,
             * %-escapes left as they are, gets a message that still holds
             * it) */
            char *alt = strdup(s), *end = alt + (at - s);
            for (char *p = alt + (colon + 1 - s); p < end; p++) {
                if (*p == '%') {
                    p += end - p > 2 ? 2 : end - p - 1;
                    continue;
                }
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
                    *p ^= 0x20;
                else if (*p >= '0' && *p <= '9')
                    *p = (char)('0' + (*p - '0' + 1) % 10);
            }
            char altwhy[sizeof(why)] = "";
            struct addr_redis u4;
            addr_redis_url(alt, &u4, altwhy, sizeof(altwhy));
            free(alt);
            if (strstr(at + 1, pw) == NULL && memmem(s, (size_t)(colon + 1 - s), pw, pl) == NULL &&
                strstr(syntax, pw) == NULL && !(hostbad && strcmp(why, hostwhy) == 0) &&
                strstr(altwhy, pw) == NULL)
                FUZZ_CHECK(strstr(why, pw) == NULL);
        }
    }
    free(s);
    return 0;
}
