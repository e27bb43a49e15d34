/*
 * record: owns the stored-answer layout helpers: which response headers
 * are stored and replayed, the "Name: value\r\n" encoding of the headers
 * field and its decoding, and status parsing.
 */
#include "record.h"
#include "http.h"

#include <string.h>

int record_header_stored(const char *name, int allow_set_cookie)
{
    /* not http_header_is_hop's set: Date is dropped here, and a
     * Proxy-Authorization an upstream sends back is stored; an upstream's
     * own Idempotent-Replayed is not (a replay says its own) */
    static const struct http_name dropped[] = {
        HTTP_NAME("Connection"), HTTP_NAME("Keep-Alive"), HTTP_NAME("Proxy-Connection"),
        HTTP_NAME("TE"), HTTP_NAME("Trailer"), HTTP_NAME("Transfer-Encoding"),
        HTTP_NAME("Upgrade"), HTTP_NAME("Proxy-Authenticate"), HTTP_NAME("Date"),
        HTTP_NAME("Content-Length"), HTTP_NAME("Idempotent-Replayed"),
    };

    if (!name || !*name)
        return 0;
    size_t n = strlen(name);
    if (http_name_in(name, n, dropped, sizeof(dropped) / sizeof(dropped[0])))
        return 0;
    if (HTTP_IS(name, n, "Set-Cookie"))
        return allow_set_cookie ? 1 : 0;
    return 1;
}

int record_headers_add(char *buf, size_t cap, size_t *len, const char *name,
                       const char *value)
{
    size_t nl, vl, need;

    if (!buf || !len || !name || !value || *len > cap)
        return -1;
    nl = strlen(name);
    vl = strlen(value);
    if (nl == 0 || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -1;
    need = nl + 2 + vl + 2;
    if (need > cap - *len)
        return -1;
    memcpy(buf + *len, name, nl);
    memcpy(buf + *len + nl, ": ", 2);
    memcpy(buf + *len + nl + 2, value, vl);
    memcpy(buf + *len + nl + 2 + vl, "\r\n", 2);
    *len += need;
    return 0;
}

int record_headers_next(const char *buf, size_t len, size_t *pos,
                        const char **name, size_t *namelen,
                        const char **value, size_t *valuelen)
{
    size_t p, i, colon = 0, eol = 0;
    int have_colon = 0, have_eol = 0;

    if (!pos || *pos > len || (len > 0 && !buf))
        return -1;
    p = *pos;
    if (p == len)
        return 0;
    for (i = p; i < len; i++) {
        if (buf[i] == '\r') {
            if (i + 1 >= len || buf[i + 1] != '\n')
                return -1;
            eol = i;
            have_eol = 1;
            break;
        }
        if (buf[i] == '\n' || buf[i] == '\0')
            return -1;
        if (buf[i] == ':' && !have_colon) {
            colon = i;
            have_colon = 1;
        }
    }
    if (!have_eol || !have_colon || colon == p)
        return -1;
    i = colon + 1;
    while (i < eol && (buf[i] == ' ' || buf[i] == '\t'))
        i++;
    if (name)
        *name = buf + p;
    if (namelen)
        *namelen = colon - p;
    if (value)
        *value = buf + i;
    if (valuelen)
        *valuelen = eol - i;
    *pos = eol + 2;
    return 1;
}

int record_status_parse(const char *s, size_t len)
{
    int v = 0;
    size_t i;

    if (!s || len != 3)
        return -1;
    for (i = 0; i < 3; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return (v >= 100 && v <= 599) ? v : -1;
}
