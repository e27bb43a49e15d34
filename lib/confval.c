/*
 * confval: one option's value read from its text: durations and sizes
 * with their units (and back, for messages and the man page), integers,
 * the upstream URL, method lists, route paths, scopes, fingerprinted
 * headers, release codes. Pure functions: text in, a field out, or a
 * message saying what is wrong and what is allowed.
 * Does not own: which option a value belongs to, its bounds, defaults or
 * file and line (lib/config.c, the table).
 */
#include "confval.h"
#include "addr.h"
#include "http.h"
#include "route.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void conf_fmt_duration(int64_t ms, char *out, size_t n)
{
    if (ms == 0) snprintf(out, n, "0");
    else if (ms % MS_H == 0) snprintf(out, n, "%lldh", (long long)(ms / MS_H));
    else if (ms % MS_M == 0) snprintf(out, n, "%lldm", (long long)(ms / MS_M));
    else if (ms % MS_S == 0) snprintf(out, n, "%llds", (long long)(ms / MS_S));
    else snprintf(out, n, "%lldms", (long long)ms);
}

void conf_fmt_size(int64_t b, char *out, size_t n)
{
    if (b != 0 && b % MB == 0) snprintf(out, n, "%lldm", (long long)(b / MB));
    else if (b != 0 && b % KB == 0) snprintf(out, n, "%lldk", (long long)(b / KB));
    else snprintf(out, n, "%lld", (long long)b);
}

/* Leading decimal digits of s as an int64; *end after them. -1: none/overflow */
static int conf_digits(const char *s, int64_t *v, const char **end)
{
    int64_t n = 0;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (n > (INT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (*p - '0');
    }
    *v = n;
    *end = p;
    return 0;
}

/* A number and one of units' suffixes (NULL-terminated); its value. */
struct conf_unit {
    const char *suffix;
    int64_t mul;
};

static int conf_parse_unit(const char *s, const struct conf_unit *units, int64_t *v)
{
    int64_t n;
    const char *u;
    if (!s || conf_digits(s, &n, &u) < 0)
        return -1;
    for (; units->suffix != NULL; units++) {
        if (strcmp(u, units->suffix) != 0)
            continue;
        if (n > INT64_MAX / units->mul)
            return -1;
        *v = n * units->mul;
        return 0;
    }
    return -1;
}

int conf_parse_duration(const char *s, int64_t *ms)
{
    static const struct conf_unit units[] = {
        { "ms", 1 }, { "s", MS_S }, { "m", MS_M }, { "h", MS_H }, { NULL, 0 },
    };
    if (s && s[0] != '\0' && s[strspn(s, "0")] == '\0') {
        *ms = 0;                  /* a unit is required, except for 0 */
        return 0;
    }
    return conf_parse_unit(s, units, ms);
}

int conf_parse_size(const char *s, int64_t *bytes)
{
    static const struct conf_unit units[] = {
        { "", 1 }, { "k", KB }, { "K", KB }, { "m", MB }, { "M", MB }, { NULL, 0 },
    };
    return conf_parse_unit(s, units, bytes);
}

int conf_parse_int(const char *s, int64_t *v)
{
    const char *end;
    bool neg = (*s == '-');
    if (conf_digits(s + neg, v, &end) < 0 || *end)
        return -1;
    if (neg)
        *v = -*v;
    return 0;
}

int conf_set_upstream(const char *v, char *host, int *port, char *why, size_t wn)
{
    char hp[512];
    if (strncmp(v, "http://", 7) != 0) {
        snprintf(why, wn, "\"%s\": only http://host:port is supported", v);
        return -1;
    }
    const char *s = v + 7;
    size_t len = strcspn(s, "/?#");
    if (s[len] && strcmp(s + len, "/") != 0) {
        snprintf(why, wn, "\"%s\": a path is not supported, use http://host:port", v);
        return -1;
    }
    if (len >= sizeof(hp)) {
        snprintf(why, wn, "the address is too long");
        return -1;
    }
    memcpy(hp, s, len);
    hp[len] = '\0';
    if (strchr(hp, '@')) {
        snprintf(why, wn, "\"%s\": credentials in the upstream URL are not supported", v);
        return -1;
    }
    return addr_hostport(hp, host, 256, port, 80, why, wn);
}

/* The next word of a list separated by commas and blanks, from *p on:
 * its start (and *len), *p moved past it; NULL at the end. */
static const char *conf_word(const char **p, size_t *len)
{
    *p += strspn(*p, ", \t");
    *len = strcspn(*p, ", \t");
    if (*len == 0)
        return NULL;
    const char *w = *p;
    *p += *len;
    return w;
}

/* The methods a route may list (lib/http.c's routable ones), as
 * "GET POST ..." for a message. */
void conf_method_words(char *out, size_t n, const char *sep)
{
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < http_n_methods && k < n; i++)
        if (http_methods[i].routable)
            k += (size_t)snprintf(out + k, n - k, "%s%s", k ? sep : "", http_methods[i].name);
}

/* A word of `methods`, in any case: "post" is POST. 0 if not routable. */
static unsigned conf_method_bit(const char *p, size_t n)
{
    char up[16];
    if (n >= sizeof(up))
        return 0;
    for (size_t i = 0; i < n; i++)
        up[i] = (char)toupper((unsigned char)p[i]);
    const struct http_method *m = http_method_named(up, n);
    return m != NULL && m->routable ? m->bit : 0;
}

int conf_set_methods(const char *v, unsigned *out, char *why, size_t wn)
{
    unsigned bits = 0;
    const char *p = v, *w;
    size_t n;
    char words[64];
    conf_method_words(words, sizeof(words), " ");
    while ((w = conf_word(&p, &n)) != NULL) {
        unsigned bit = conf_method_bit(w, n);
        if (!bit) {
            snprintf(why, wn, "\"%.*s\" is not a method, use %s", (int)n, w, words);
            return -1;
        }
        bits |= bit;
    }
    if (!bits) {
        snprintf(why, wn, "no methods given, list some of %s", words);
        return -1;
    }
    *out = bits;
    return 0;
}

static bool conf_is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
            return false;
    return true;
}

int conf_set_path(struct route *r, const char *v, char *why, size_t wn)
{
    size_t n = strlen(v);
    if (v[0] != '/') {
        snprintf(why, wn, "\"%s\" must start with '/', e.g. /v1/orders or /v1/orders/*", v);
        return -1;
    }
    bool prefix = n >= 2 && strcmp(v + n - 2, "/*") == 0;
    if (prefix)
        n -= 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#' || ch == '*') {
            snprintf(why, wn, "\"%s\": bad character '%c'; a path has no query, no spaces, "
                     "and '*' only as a final \"/*\"", v, ch > ' ' && ch < 0x7f ? ch : '?');
            return -1;
        }
    }
    if (n >= sizeof(r->path)) {
        snprintf(why, wn, "the path is longer than %zu characters", sizeof(r->path) - 1);
        return -1;
    }
    /* requests are matched decoded and normalised (route_path_normalize):
     * a path that is not in that form could never match */
    if (memchr(v, '%', n) != NULL) {
        snprintf(why, wn, "\"%s\": write the path without percent-encoding (requests are "
                 "matched after decoding theirs)", v);
        return -1;
    }
    char norm[sizeof(r->path)];
    size_t nlen = 0;
    if (route_path_normalize(v, n, norm, &nlen) != 0 || nlen != n || memcmp(norm, v, n) != 0) {
        snprintf(why, wn, "\"%s\": repeated '/' or a '.' or '..' segment; requests are matched "
                 "with those merged and resolved, so write \"%.*s%s\"", v, (int)nlen, norm,
                 prefix ? "/*" : "");
        return -1;
    }
    memcpy(r->path, v, n);
    r->path[n] = '\0';
    r->prefix = prefix;
    return 0;
}

int conf_set_scope(struct route *r, const char *v, char *why, size_t wn)
{
    const char *name = NULL;
    enum scope_kind k;
    if (strcmp(v, "none") == 0) {
        r->scope = SCOPE_NONE;
        r->scope_name[0] = '\0';
        return 0;
    }
    if (strncmp(v, "header:", 7) == 0) {
        k = SCOPE_HEADER;
        name = v + 7;
        if (!conf_is_token(name, strlen(name))) {
            snprintf(why, wn, "\"%s\": bad header name, use header:NAME (e.g. header:X-Tenant-Id)", v);
            return -1;
        }
    } else if (strncmp(v, "json:", 5) == 0) {
        k = SCOPE_JSON;
        name = v + 5;
        if (!*name) {
            snprintf(why, wn, "\"%s\": the JSON field is missing, use json:FIELD", v);
            return -1;
        }
    } else {
        snprintf(why, wn, "\"%s\" is not a scope, use none, header:NAME or json:FIELD", v);
        return -1;
    }
    if (strlen(name) >= sizeof(r->scope_name)) {
        snprintf(why, wn, "the name is longer than %zu characters", sizeof(r->scope_name) - 1);
        return -1;
    }
    r->scope = k;
    strcpy(r->scope_name, name);
    return 0;
}

int conf_set_headers(struct route *r, const char *v, char *why, size_t wn)
{
    char hs[CONF_MAX_FP_HEADERS][64];
    int n = 0;
    const char *p = strcmp(v, "none") == 0 ? "" : v;
    size_t len;
    for (const char *w; (w = conf_word(&p, &len)) != NULL; ) {
        if (!conf_is_token(w, len)) {
            snprintf(why, wn, "\"%.*s\" is not a header name", (int)len, w);
            return -1;
        }
        if (len >= sizeof(hs[0])) {
            snprintf(why, wn, "\"%.*s\": a header name is at most %zu characters",
                     (int)len, w, sizeof(hs[0]) - 1);
            return -1;
        }
        if (n == CONF_MAX_FP_HEADERS) {
            snprintf(why, wn, "more than %d headers", CONF_MAX_FP_HEADERS);
            return -1;
        }
        memcpy(hs[n], w, len);
        hs[n][len] = '\0';
        n++;
    }
    if (n == 0 && strcmp(v, "none") != 0) {
        /* an empty ${VAR} would otherwise drop Authorization silently */
        snprintf(why, wn, "no header named; list the headers, or write none to "
                 "fingerprint no header");
        return -1;
    }
    memcpy(r->fp_headers, hs, sizeof(hs));
    r->n_fp_headers = n;
    return 0;
}

int conf_set_release(struct route *r, const char *v, char *why, size_t wn)
{
    unsigned char rel[sizeof(r->release)];
    memset(rel, 0, sizeof(rel));
    const char *p = strcmp(v, "none") == 0 ? "" : v;
    size_t len;
    for (const char *w; (w = conf_word(&p, &len)) != NULL; ) {
        int64_t code;
        char tok[16];
        const char *end;
        snprintf(tok, sizeof(tok), "%.*s", (int)(len < 15 ? len : 15), w);
        if (len == 3 && (w[0] == '4' || w[0] == '5') && (w[1] == 'x' || w[1] == 'X') &&
            (w[2] == 'x' || w[2] == 'X')) {
            int base = (w[0] - '0') * 100;
            memset(rel + base, 1, 100);
        } else if (len <= 3 && conf_digits(tok, &code, &end) == 0 && *end == '\0' &&
                   code >= 400 && code <= 599) {
            rel[code] = 1;
        } else {
            snprintf(why, wn, "\"%.*s\" is not allowed, list status codes 400-599 or 4xx/5xx",
                     (int)len, w);
            return -1;
        }
    }
    memcpy(r->release, rel, sizeof(rel));
    return 0;
}
