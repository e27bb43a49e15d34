/*
 * config: the INI file (libinih) turned into a struct config.
 * Owns: the one table of options (section, name, type, offset, bounds,
 * default) below; the value parsers every option goes through (defaults
 * included); ${ENV} substitution; error messages "file:line: key: what is
 * wrong, what is allowed"; the checks across options after parsing.
 * Does not own: sockets, Redis, anything on the event loop.
 */
#include "config.h"
#include "addr.h"
#include "route.h"
#include "log.h"
#include "table.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ini.h>
#include <jansson.h>

_Static_assert(LOG_DEBUG == 0 && LOG_INFO == 1 && LOG_WARN == 2 &&
               LOG_ERROR == 3, "log level enum order is the [log] level table");

enum conf_sect { SECT_NONE, SECT_PROXY, SECT_REDIS, SECT_ADMIN, SECT_LOG,
                 SECT_ROUTE, SECT_BAD };

enum conf_type {
    T_STRING,    /* char[max] at off */
    T_LISTEN,    /* host:port -> char[256] at off, int at off2; flag: "off" */
    T_UPSTREAM,  /* http://host[:port] -> char[256] at off, int at off2 */
    T_REDIS_URL, /* redis://[:pw@]host[:port][/db] -> redis_* fields */
    T_DURATION,  /* int64_t ms at off */
    T_SIZE,      /* int64_t bytes at off */
    T_BOOL,      /* a bit field of struct route, off2 = CONF_BIT_*; off2 0: int at off */
    T_ENUM,      /* int at off, index into names */
    T_INT,       /* int at off */
    T_METHODS,   /* unsigned M_* bits at off */
    T_PATH,      /* route path + prefix bit */
    T_SCOPE,     /* route scope + scope_name */
    T_STATUS,    /* int at off: "original" (0) or min..max */
    T_MISMATCH,  /* int at off: 409 or 422 */
    T_HEADERS,   /* route fp_headers */
    T_RELEASE,   /* route release[] */
    T_NODES,     /* host:port, ... -> struct addr_nodes at off; off2: the default port */
    T_FILE,      /* a readable file's path -> char[max] at off; "" none */
};

enum { CONF_BIT_REQUIRE_KEY = 1, CONF_BIT_STORE_SET_COOKIE };
#define CONF_ALLOW_OFF 1          /* T_LISTEN: "off" means port 0 */
#define CONF_RESTART   2          /* a reload keeps the running value (restart to change) */

struct conf_opt {
    enum conf_sect sect;
    const char *name;
    enum conf_type type;
    size_t off, off2;
    int64_t min, max;             /* bounds; T_STRING: max is the buffer size */
    const char *def;              /* NULL: computed after parsing */
    const char *const *names;     /* T_ENUM */
    int flags;
};

#define MS_S   1000LL
#define MS_M   (60 * MS_S)
#define MS_H   (60 * MS_M)
#define KB     1024LL
#define MB     (1024 * KB)
#define GB     (1024 * MB)

static const char *const conf_names_fp_body[] = { "raw", "json", NULL };
static const char *const conf_names_in_flight[] = { "reject", "wait", NULL };
static const char *const conf_names_store_err[] = { "reject", "pass", NULL };
static const char *const conf_names_err_fmt[] = { "json", "problem", NULL };
static const char *const conf_names_mode[] = { "enforce", "observe", NULL };

#define C(f) offsetof(struct config, f)
#define R(f) offsetof(struct route, f)

static const struct conf_opt conf_opts[] = {
    { SECT_PROXY, "listen", T_LISTEN, C(listen_host), C(listen_port), 0, 0, "0.0.0.0:8080", NULL, CONF_RESTART },
    { SECT_PROXY, "upstream", T_UPSTREAM, C(upstream_host), C(upstream_port), 0, 0, "http://127.0.0.1:9000", NULL, CONF_RESTART },
    { SECT_PROXY, "upstream_timeout", T_DURATION, C(upstream_timeout_ms), 0, 1, 24 * MS_H, "30s", NULL, 0 },
    { SECT_PROXY, "client_timeout", T_DURATION, C(client_timeout_ms), 0, 1, 24 * MS_H, "60s", NULL, 0 },
    { SECT_PROXY, "client_header_timeout", T_DURATION, C(client_header_timeout_ms), 0, 1, 24 * MS_H, "10s", NULL, 0 },
    { SECT_PROXY, "client_body_timeout", T_DURATION, C(client_body_timeout_ms), 0, 1, 24 * MS_H, "30s", NULL, 0 },
    { SECT_PROXY, "send_timeout", T_DURATION, C(send_timeout_ms), 0, 1, 24 * MS_H, "30s", NULL, 0 },
    { SECT_PROXY, "drain_timeout", T_DURATION, C(drain_timeout_ms), 0, 0, 24 * MS_H, "30s", NULL, 0 },
    { SECT_PROXY, "max_body", T_SIZE, C(max_body), 0, 0, GB, "1m", NULL, 0 },
    { SECT_PROXY, "max_headers", T_SIZE, C(max_headers), 0, KB, 16 * MB, "64k", NULL, 0 },
    { SECT_PROXY, "passthrough_max_body", T_SIZE, C(passthrough_max_body), 0, 0, 1024 * GB, "0", NULL, 0 },
    { SECT_PROXY, "upstream_connections", T_INT, C(upstream_connections), 0, 1, 65535, "256", NULL, CONF_RESTART },
    { SECT_PROXY, "workers", T_INT, C(workers), 0, 0, 256, "0", NULL, CONF_RESTART },

    /* the address, scheme and database of the url need a restart; a user
     * or password in it, like `username` and `password`, is used from the
     * next connection on */
    { SECT_REDIS, "url", T_REDIS_URL, 0, 0, 0, 0, "redis://127.0.0.1:6379/0", NULL, CONF_RESTART },
    { SECT_REDIS, "username", T_STRING, C(redis_username), 0, 0, sizeof(((struct config *)0)->redis_username), "", NULL, 0 },
    { SECT_REDIS, "password", T_STRING, C(redis_password), 0, 0, sizeof(((struct config *)0)->redis_password), "", NULL, 0 },
    { SECT_REDIS, "key_prefix", T_STRING, C(key_prefix), 0, 0, sizeof(((struct config *)0)->key_prefix), "idem:", NULL, CONF_RESTART },
    { SECT_REDIS, "timeout", T_DURATION, C(redis_timeout_ms), 0, 1, 60 * MS_S, "1s", NULL, 0 },
    { SECT_REDIS, "tls", T_BOOL, C(redis_tls), 0, 0, 0, "off", NULL, CONF_RESTART },
    { SECT_REDIS, "tls_ca_file", T_FILE, C(tls_ca_file), 0, 0, sizeof(((struct config *)0)->tls_ca_file), "", NULL, CONF_RESTART },
    { SECT_REDIS, "tls_cert_file", T_FILE, C(tls_cert_file), 0, 0, sizeof(((struct config *)0)->tls_cert_file), "", NULL, CONF_RESTART },
    { SECT_REDIS, "tls_key_file", T_FILE, C(tls_key_file), 0, 0, sizeof(((struct config *)0)->tls_key_file), "", NULL, CONF_RESTART },
    { SECT_REDIS, "tls_server_name", T_STRING, C(tls_server_name), 0, 0, sizeof(((struct config *)0)->tls_server_name), "", NULL, CONF_RESTART },
    { SECT_REDIS, "sentinels", T_NODES, C(sentinels), 26379, 0, 0, NULL, NULL, CONF_RESTART },
    { SECT_REDIS, "sentinel_master", T_STRING, C(sentinel_master), 0, 0, sizeof(((struct config *)0)->sentinel_master), "", NULL, CONF_RESTART },
    { SECT_REDIS, "sentinel_password", T_STRING, C(sentinel_password), 0, 0, sizeof(((struct config *)0)->sentinel_password), "", NULL, 0 },
    { SECT_REDIS, "cluster_nodes", T_NODES, C(cluster_nodes), 6379, 0, 0, NULL, NULL, CONF_RESTART },
    { SECT_REDIS, "replicas_ack", T_INT, C(replicas_ack), 0, 0, 16, "0", NULL, 0 },
    { SECT_REDIS, "record_layout", T_INT, C(record_layout), 0, 1, 2, "1", NULL, 0 },
    { SECT_REDIS, "replicas_ack_timeout", T_DURATION, C(replicas_ack_timeout_ms), 0, 1, 60 * MS_S, "100ms", NULL, 0 },

    { SECT_ADMIN, "listen", T_LISTEN, C(admin_host), C(admin_port), 0, 0, "127.0.0.1:9901", NULL, CONF_ALLOW_OFF | CONF_RESTART },
    { SECT_ADMIN, "token", T_STRING, C(admin_token), 0, 0, sizeof(((struct config *)0)->admin_token), "", NULL, 0 },

    { SECT_LOG, "level", T_ENUM, C(log_level), 0, 0, 0, "info", log_level_names, 0 },

    { SECT_ROUTE, "path", T_PATH, 0, 0, 0, 0, NULL, NULL, 0 },
    { SECT_ROUTE, "methods", T_METHODS, R(methods), 0, 0, 0, "POST", NULL, 0 },
    { SECT_ROUTE, "require_key", T_BOOL, 0, CONF_BIT_REQUIRE_KEY, 0, 0, "on", NULL, 0 },
    { SECT_ROUTE, "ttl", T_DURATION, R(ttl_ms), 0, MS_S, 8760 * MS_H, "24h", NULL, 0 },
    { SECT_ROUTE, "lease", T_DURATION, R(lease_ms), 0, MS_S, 24 * MS_H, "60s", NULL, 0 },
    { SECT_ROUTE, "wait_timeout", T_DURATION, R(wait_timeout_ms), 0, 1, 24 * MS_H, "30s", NULL, 0 },
    { SECT_ROUTE, "scope", T_SCOPE, 0, 0, 0, 0, "none", NULL, 0 },
    { SECT_ROUTE, "fingerprint_body", T_ENUM, R(fingerprint_body), 0, 0, 0, "raw", conf_names_fp_body, 0 },
    { SECT_ROUTE, "fingerprint_headers", T_HEADERS, 0, 0, 0, 0, "Authorization", NULL, 0 },
    { SECT_ROUTE, "replay_status", T_STATUS, R(replay_status), 0, 100, 599, "original", NULL, 0 },
    { SECT_ROUTE, "mismatch_status", T_MISMATCH, R(mismatch_status), 0, 0, 0, "409", NULL, 0 },
    { SECT_ROUTE, "in_flight", T_ENUM, R(in_flight), 0, 0, 0, "reject", conf_names_in_flight, 0 },
    { SECT_ROUTE, "on_store_error", T_ENUM, R(on_store_error), 0, 0, 0, "reject", conf_names_store_err, 0 },
    { SECT_ROUTE, "mode", T_ENUM, R(mode), 0, 0, 0, "enforce", conf_names_mode, 0 },
    { SECT_ROUTE, "error_format", T_ENUM, R(error_format), 0, 0, 0, "json", conf_names_err_fmt, 0 },
    { SECT_ROUTE, "max_body", T_SIZE, R(max_body), 0, 0, GB, NULL, NULL, 0 },
    { SECT_ROUTE, "max_store", T_SIZE, R(max_store), 0, 0, GB, "1m", NULL, 0 },
    { SECT_ROUTE, "release_on", T_RELEASE, 0, 0, 0, 0, "5xx 408 425 429", NULL, 0 },
    { SECT_ROUTE, "store_set_cookie", T_BOOL, 0, CONF_BIT_STORE_SET_COOKIE, 0, 0, "off", NULL, 0 },
    { SECT_ROUTE, "key_max_length", T_INT, R(key_max_len), 0, 1, 1024, "255", NULL, 0 },
};

#undef C
#undef R

#define CONF_NOPTS ((int)(sizeof(conf_opts) / sizeof(conf_opts[0])))
_Static_assert(CONF_NOPTS <= CONF_MAX_OPTS, "struct config's line[] is too short for the table");
/* the url's fields, compared and kept as one span on reload */
_Static_assert(offsetof(struct config, redis_port) > offsetof(struct config, redis_host) &&
               offsetof(struct config, redis_db) > offsetof(struct config, redis_port) &&
               offsetof(struct config, redis_url_tls) > offsetof(struct config, redis_db),
               "redis_host, redis_port, redis_db, redis_url_tls are declared in that order");

/* Parsing state, one per conf_load. */
struct conf_ctx {
    FILE *f;
    struct config *c;
    int line;                     /* the line inih is looking at */
    bool indented;                /* that line starts with white space */
    enum conf_sect sect;
    int route;                    /* index of the current route, SECT_ROUTE */
    char sect_name[80];           /* for messages: "proxy", "route orders" */
    int gline[CONF_NOPTS];        /* line each global option was set on */
    int rline[CONF_MAX_ROUTES][CONF_NOPTS];
    int route_line[CONF_MAX_ROUTES];
    int url_pw_line, pw_line;     /* redis password from url / `password` */
    int url_user_line;            /* a user in the url */
    int last_key_line;
    char last_key[64];
    int err_line;                 /* 0: no error yet */
    char err[1024];
};

static int conf_opt_index(enum conf_sect s, const char *name);

static const char *conf_sect_name(enum conf_sect s)
{
    switch (s) {
    case SECT_PROXY: return "proxy";
    case SECT_REDIS: return "redis";
    case SECT_ADMIN: return "admin";
    case SECT_LOG: return "log";
    default: return "route";
    }
}

/* Keep the first error: "file:line: what" */
static void conf_err(struct conf_ctx *x, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conf_err(struct conf_ctx *x, int line, const char *fmt, ...)
{
    if (x->err_line)
        return;
    int n = snprintf(x->err, sizeof(x->err), "%s:%d: ", x->c->path, line);
    if (n < 0 || (size_t)n >= sizeof(x->err))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err + n, sizeof(x->err) - n, fmt, ap);
    va_end(ap);
    x->err_line = line ? line : -1;
}

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

static int conf_parse_int(const char *s, int64_t *v)
{
    const char *end;
    bool neg = (*s == '-');
    if (conf_digits(s + neg, v, &end) < 0 || *end)
        return -1;
    if (neg)
        *v = -*v;
    return 0;
}

static int conf_set_upstream(const char *v, char *host, int *port, char *why, size_t wn)
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

static int conf_set_redis(struct conf_ctx *x, const char *v, char *why, size_t wn)
{
    struct config *c = x->c;
    struct addr_redis u;
    if (addr_redis_url(v, &u, why, wn) < 0)
        return -1;
    if (u.password[0] && x->pw_line) {
        snprintf(why, wn, "the password is also set with `password` on line %d, set it in one place",
                 x->pw_line);
        return -1;
    }
    int i_user = conf_opt_index(SECT_REDIS, "username");
    if (u.user[0] && x->gline[i_user]) {
        snprintf(why, wn, "the user is also set with `username` on line %d, set it in one place",
                 x->gline[i_user]);
        return -1;
    }
    strcpy(c->redis_host, u.host);
    c->redis_port = u.port;
    c->redis_db = u.db;
    c->redis_url_tls = u.tls;
    if (u.password[0]) {
        strcpy(c->redis_password, u.password);
        x->url_pw_line = x->line;
    }
    if (u.user[0]) {
        strcpy(c->redis_username, u.user);
        x->url_user_line = x->line;
    }
    return 0;
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
static void conf_method_words(char *out, size_t n, const char *sep)
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

static int conf_set_methods(const char *v, unsigned *out, char *why, size_t wn)
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

static int conf_set_path(struct route *r, const char *v, char *why, size_t wn)
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

static int conf_set_scope(struct route *r, const char *v, char *why, size_t wn)
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

static int conf_set_headers(struct route *r, const char *v, char *why, size_t wn)
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

static int conf_set_release(struct route *r, const char *v, char *why, size_t wn)
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

/*
 * Set one option from the text v. base is the struct config or the struct
 * route. On error why says what is wrong and what is allowed.
 */
static int conf_set(struct conf_ctx *x, const struct conf_opt *o, void *base,
                    const char *v, char *why, size_t wn)
{
    char *b = base;
    struct route *r = base;
    int64_t n;
    char lo[32], hi[32];

    switch (o->type) {
    case T_STRING:
        if (strlen(v) >= (size_t)o->max) {
            snprintf(why, wn, "longer than %lld characters", (long long)o->max - 1);
            return -1;
        }
        if (o->off == offsetof(struct config, key_prefix) && strpbrk(v, "{} \t")) {
            snprintf(why, wn, "\"%s\": '{', '}' and spaces are not allowed", v);
            return -1;
        }
        if (o->off == offsetof(struct config, redis_password) && v[0] && x->url_pw_line) {
            snprintf(why, wn, "the password is also in [redis] url on line %d, set it in one place",
                     x->url_pw_line);
            return -1;
        }
        if (o->off == offsetof(struct config, redis_username) && v[0] && x->url_user_line) {
            snprintf(why, wn, "the user is also in [redis] url on line %d, set it in one place",
                     x->url_user_line);
            return -1;
        }
        strcpy(b + o->off, v);
        return 0;
    case T_FILE:
        if (strlen(v) >= (size_t)o->max) {
            snprintf(why, wn, "longer than %lld characters", (long long)o->max - 1);
            return -1;
        }
        if (v[0] && access(v, R_OK) != 0) {
            snprintf(why, wn, "\"%s\": cannot read it: %s", v, strerror(errno));
            return -1;
        }
        strcpy(b + o->off, v);
        return 0;
    case T_NODES:
        return addr_list(v, (int)o->off2, (struct addr_nodes *)(b + o->off), why, wn);
    case T_LISTEN:
        if ((o->flags & CONF_ALLOW_OFF) && strcmp(v, "off") == 0) {
            b[o->off] = '\0';
            *(int *)(b + o->off2) = 0;
            return 0;
        }
        if (addr_hostport(v, b + o->off, 256, (int *)(b + o->off2), 0, why, wn) < 0) {
            if (o->flags & CONF_ALLOW_OFF)
                snprintf(why + strlen(why), wn - strlen(why), ", or off");
            return -1;
        }
        return 0;
    case T_UPSTREAM:
        return conf_set_upstream(v, b + o->off, (int *)(b + o->off2), why, wn);
    case T_REDIS_URL:
        return conf_set_redis(x, v, why, wn);
    case T_DURATION:
    case T_SIZE: {
        int dur = o->type == T_DURATION;
        (dur ? conf_fmt_duration : conf_fmt_size)(o->min, lo, sizeof(lo));
        (dur ? conf_fmt_duration : conf_fmt_size)(o->max, hi, sizeof(hi));
        if ((dur ? conf_parse_duration : conf_parse_size)(v, &n) < 0) {
            snprintf(why, wn, "\"%s\" is not a %s, use %s, between %s and %s", v,
                     dur ? "duration" : "size",
                     dur ? "a number with ms, s, m or h (e.g. 30s)"
                         : "bytes or a number with k or m (e.g. 64k)", lo, hi);
            return -1;
        }
        if (n < o->min || n > o->max) {
            snprintf(why, wn, "%s is out of bounds, allowed %s to %s", v, lo, hi);
            return -1;
        }
        *(int64_t *)(b + o->off) = n;
        return 0;
    }
    case T_BOOL: {
        int on;
        if (!strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
            !strcmp(v, "1"))
            on = 1;
        else if (!strcasecmp(v, "off") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
                 !strcmp(v, "0"))
            on = 0;
        else {
            snprintf(why, wn, "\"%s\" is not a boolean, use on or off", v);
            return -1;
        }
        if (o->off2 == 0)
            *(int *)(b + o->off) = on;
        else if (o->off2 == CONF_BIT_REQUIRE_KEY)
            r->require_key = on;
        else
            r->store_set_cookie = on;
        return 0;
    }
    case T_ENUM: {
        for (int i = 0; o->names[i]; i++)
            if (strcmp(v, o->names[i]) == 0) {
                *(int *)(b + o->off) = i;
                return 0;
            }
        int k = snprintf(why, wn, "\"%s\" is not allowed, use", v);
        for (int i = 0; o->names[i] && k > 0 && (size_t)k < wn; i++)
            k += snprintf(why + k, wn - k, "%s %s", i ? " or" : "", o->names[i]);
        return -1;
    }
    case T_INT:
        if (conf_parse_int(v, &n) < 0) {
            snprintf(why, wn, "\"%s\" is not a whole number, use %lld to %lld", v,
                     (long long)o->min, (long long)o->max);
            return -1;
        }
        if (n < o->min || n > o->max) {
            snprintf(why, wn, "%s is out of bounds, allowed %lld to %lld", v,
                     (long long)o->min, (long long)o->max);
            return -1;
        }
        *(int *)(b + o->off) = (int)n;
        return 0;
    case T_METHODS:
        return conf_set_methods(v, (unsigned *)(b + o->off), why, wn);
    case T_PATH:
        return conf_set_path(r, v, why, wn);
    case T_SCOPE:
        return conf_set_scope(r, v, why, wn);
    case T_STATUS:
        if (strcmp(v, "original") == 0) {
            *(int *)(b + o->off) = 0;
            return 0;
        }
        if (conf_parse_int(v, &n) < 0 || n < o->min || n > o->max) {
            snprintf(why, wn, "\"%s\" is not allowed, use original or a status %lld-%lld", v,
                     (long long)o->min, (long long)o->max);
            return -1;
        }
        *(int *)(b + o->off) = (int)n;
        return 0;
    case T_MISMATCH:
        if (conf_parse_int(v, &n) < 0 || (n != 409 && n != 422)) {
            snprintf(why, wn, "\"%s\" is not allowed, use 409 or 422", v);
            return -1;
        }
        *(int *)(b + o->off) = (int)n;
        return 0;
    case T_HEADERS:
        return conf_set_headers(r, v, why, wn);
    case T_RELEASE:
        return conf_set_release(r, v, why, wn);
    }
    snprintf(why, wn, "internal error: unknown option type");
    return -1;
}

/* Apply the table's defaults for section kind `sect` to base. */
static int conf_defaults(struct conf_ctx *x, bool route, void *base)
{
    char why[512];
    for (int i = 0; i < CONF_NOPTS; i++) {
        const struct conf_opt *o = &conf_opts[i];
        if ((o->sect == SECT_ROUTE) != route || !o->def)
            continue;
        if (conf_set(x, o, base, o->def, why, sizeof(why)) < 0) {
            conf_err(x, 0, "[%s] %s: bad built-in default: %s", conf_sect_name(o->sect),
                     o->name, why);
            return -1;
        }
    }
    return 0;
}

/* ${NAME} from the environment. -1 with why on error. */
static int conf_subst_env(const char *v, char *out, size_t outsize, char *why, size_t wn)
{
    size_t o = 0;
    for (const char *p = v; *p;) {
        const char *add = p;
        size_t len = 1;
        if (p[0] == '$' && p[1] == '{') {
            const char *e = strchr(p + 2, '}');
            if (!e) {
                snprintf(why, wn, "\"${\" without a closing '}', write ${NAME}");
                return -1;
            }
            char name[128];
            size_t nl = (size_t)(e - p - 2);
            if (nl == 0 || nl >= sizeof(name)) {
                snprintf(why, wn, "bad ${NAME}: the name is empty or too long");
                return -1;
            }
            memcpy(name, p + 2, nl);
            name[nl] = '\0';
            for (size_t i = 0; i < nl; i++)
                if (!(isalnum((unsigned char)name[i]) || name[i] == '_')) {
                    snprintf(why, wn, "${%s}: an environment variable name is letters, "
                             "digits and '_'", name);
                    return -1;
                }
            add = getenv(name);
            if (!add) {
                snprintf(why, wn, "${%s}: the environment variable is not set", name);
                return -1;
            }
            len = strlen(add);
            p = e + 1;
        } else {
            p++;
        }
        if (o + len >= outsize) {
            snprintf(why, wn, "the value is longer than %zu characters", outsize - 1);
            return -1;
        }
        memcpy(out + o, add, len);
        o += len;
    }
    out[o] = '\0';
    return 0;
}

/* A "[...]" line: start a section. Called by the reader, before inih sees it. */
static void conf_section(struct conf_ctx *x, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    snprintf(x->sect_name, sizeof(x->sect_name), "%.*s", (int)n, s);
    x->sect = SECT_BAD;
    static const struct { const char *n; enum conf_sect s; } fixed[] = {
        { "proxy", SECT_PROXY }, { "redis", SECT_REDIS }, { "admin", SECT_ADMIN },
        { "log", SECT_LOG },
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (strlen(fixed[i].n) == n && strncmp(s, fixed[i].n, n) == 0) {
            x->sect = fixed[i].s;
            return;
        }
    if (n < 5 || strncmp(s, "route", 5) != 0 || (n > 5 && !isspace((unsigned char)s[5]))) {
        conf_err(x, x->line, "[%.*s]: unknown section, use [proxy], [redis], [admin], "
                 "[log] or [route NAME]", (int)n, s);
        return;
    }
    const char *name = s + 5;
    size_t nl = n - 5;
    while (nl && isspace((unsigned char)*name)) name++, nl--;
    if (!nl) {
        conf_err(x, x->line, "[route]: the route needs a name, write [route NAME]");
        return;
    }
    struct config *c = x->c;
    if (nl >= sizeof(c->routes[0].name)) {
        conf_err(x, x->line, "[%.*s]: the route name is longer than %zu characters", (int)n, s,
                 sizeof(c->routes[0].name) - 1);
        return;
    }
    for (size_t i = 0; i < nl; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i])) {
            conf_err(x, x->line, "[%.*s]: a route name is letters, digits, '_', '-' and '.'",
                     (int)n, s);
            return;
        }
    for (int i = 0; i < c->n_routes; i++)
        if (strlen(c->routes[i].name) == nl && strncmp(c->routes[i].name, name, nl) == 0) {
            conf_err(x, x->line, "[%.*s]: duplicate route name, first defined on line %d",
                     (int)n, s, x->route_line[i]);
            return;
        }
    if (c->n_routes == CONF_MAX_ROUTES) {
        conf_err(x, x->line, "[%.*s]: too many routes, at most %d", (int)n, s, CONF_MAX_ROUTES);
        return;
    }
    struct route *r = &c->routes[c->n_routes];
    memcpy(r->name, name, nl);
    r->name[nl] = '\0';
    if (conf_defaults(x, true, r) < 0)
        return;
    x->route = c->n_routes;
    x->route_line[c->n_routes] = x->line;
    c->n_routes++;
    x->sect = SECT_ROUTE;
}

/*
 * fgets for inih that counts lines, sees section headers, long lines and NUL
 * bytes. It reads byte by byte because fgets hides a NUL: the rest of the
 * line would be dropped silently, or (in a long line) read as the next line.
 */
static char *conf_read_line(char *str, int num, void *stream)
{
    struct conf_ctx *x = stream;
    int len = 0, ch;
    bool nul = false;
    while (len < num - 1 && (ch = getc(x->f)) != EOF) {
        str[len++] = (char)ch;
        nul |= ch == '\0';
        if (ch == '\n')
            break;
    }
    if (len == 0)
        return NULL;
    str[len] = '\0';
    x->line++;
    bool too_long = len == num - 1 && str[len - 1] != '\n' && !feof(x->f);
    if (too_long || nul) {
        if (str[len - 1] != '\n')
            while ((ch = getc(x->f)) != EOF && ch != '\n')
                ;
        if (too_long)
            conf_err(x, x->line, "line longer than %d characters", num - 2);
        else
            conf_err(x, x->line, "a NUL byte: the file must be text");
        strcpy(str, "\n");
        return str;
    }
    char *p = str;
    if (x->line == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3;
    x->indented = (*p == ' ' || *p == '\t');
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '[') {
        char *e = strchr(p, ']');
        if (e)
            conf_section(x, p + 1, (size_t)(e - p - 1));
        else
            x->sect = SECT_BAD;   /* inih reports the line */
    }
    return str;
}

static int conf_handler(void *user, const char *section, const char *name,
                        const char *value)
{
    struct conf_ctx *x = user;
    (void)section;   /* the reader tracks sections, including empty ones */
    char key[160], v[1024], why[512];
    bool cont = x->indented && x->last_key_line && x->last_key_line < x->line &&
                strcmp(name, x->last_key) == 0;
    snprintf(x->last_key, sizeof(x->last_key), "%s", name);
    x->last_key_line = x->line;

    if (x->sect == SECT_BAD)
        return 1;     /* already reported at the section line */
    if (x->sect == SECT_NONE) {
        conf_err(x, x->line, "%s: a key outside any section, put it under [proxy], [redis], "
                 "[admin], [log] or [route NAME]", name);
        return 0;
    }
    if (x->sect == SECT_ROUTE)
        snprintf(key, sizeof(key), "[route %s] %s", x->c->routes[x->route].name, name);
    else
        snprintf(key, sizeof(key), "[%s] %s", x->sect_name, name);
    if (cont) {
        conf_err(x, x->line, "%s: an indented line continues the previous value; "
                 "remove the indentation", key);
        return 0;
    }
    int i;
    for (i = 0; i < CONF_NOPTS; i++)
        if (conf_opts[i].sect == x->sect && strcmp(conf_opts[i].name, name) == 0)
            break;
    if (i == CONF_NOPTS && x->sect == SECT_PROXY && strcmp(name, "max_response") == 0) {
        conf_err(x, x->line, "%s: no longer used: answers are streamed, and a protected "
                 "route stores answers up to its max_store; remove it", key);
        return 0;
    }
    if (i == CONF_NOPTS) {
        char known[512];
        size_t k = 0;
        known[0] = '\0';
        for (int j = 0; j < CONF_NOPTS && k < sizeof(known); j++)
            if (conf_opts[j].sect == x->sect)
                k += snprintf(known + k, sizeof(known) - k, "%s%s", k ? ", " : "",
                              conf_opts[j].name);
        conf_err(x, x->line, "%s: unknown key, [%s] knows: %s", key,
                 x->sect == SECT_ROUTE ? "route" : x->sect_name, known);
        return 0;
    }
    int *seen = x->sect == SECT_ROUTE ? &x->rline[x->route][i] : &x->gline[i];
    if (*seen) {
        conf_err(x, x->line, "%s: duplicate key, already set on line %d", key, *seen);
        return 0;
    }
    *seen = x->line;
    if (conf_subst_env(value, v, sizeof(v), why, sizeof(why)) < 0) {
        conf_err(x, x->line, "%s: %s", key, why);
        return 0;
    }
    void *base = x->sect == SECT_ROUTE ? (void *)&x->c->routes[x->route] : (void *)x->c;
    if (conf_set(x, &conf_opts[i], base, v, why, sizeof(why)) < 0) {
        conf_err(x, x->line, "%s: %s", key, why);
        return 0;
    }
    if (conf_opts[i].off == offsetof(struct config, redis_password) &&
        conf_opts[i].type == T_STRING && v[0])
        x->pw_line = x->line;
    return 1;
}

static int conf_opt_index(enum conf_sect s, const char *name)
{
    for (int i = 0; i < CONF_NOPTS; i++)
        if (conf_opts[i].sect == s && strcmp(conf_opts[i].name, name) == 0)
            return i;
    return -1;
}

/* The line of global option `name` of [redis], 0 if not set. */
static int conf_rline(struct conf_ctx *x, const char *name)
{
    return x->gline[conf_opt_index(SECT_REDIS, name)];
}

/* The [redis] options that go together, or do not. */
static void conf_finish_redis(struct conf_ctx *x)
{
    struct config *c = x->c;
    static const char *const modes[] = { "url", "sentinels", "cluster_nodes" };
    int first = -1;
    for (int i = 0; i < 3; i++) {
        int line = conf_rline(x, modes[i]);
        if (line == 0)
            continue;
        if (first >= 0) {
            int l0 = conf_rline(x, modes[first]);
            conf_err(x, line > l0 ? line : l0, "[redis] %s: %s is also set (line %d); "
                     "give one of url, sentinels or cluster_nodes",
                     line > l0 ? modes[i] : modes[first], line > l0 ? modes[first] : modes[i],
                     line > l0 ? l0 : line);
            return;
        }
        first = i;
    }
    c->redis_mode = c->sentinels.n ? REDIS_SENTINEL : c->cluster_nodes.n ? REDIS_CLUSTER
                    : REDIS_SINGLE;
    if (c->redis_mode == REDIS_SENTINEL && c->sentinel_master[0] == '\0')
        conf_err(x, conf_rline(x, "sentinels"), "[redis] sentinels: sentinel_master is "
                 "required, the master's name at the sentinels (e.g. sentinel_master = mymaster)");
    static const char *const sentinel_only[] = { "sentinel_master", "sentinel_password" };
    for (int i = 0; i < 2; i++)
        if (c->redis_mode != REDIS_SENTINEL && conf_rline(x, sentinel_only[i]))
            conf_err(x, conf_rline(x, sentinel_only[i]), "[redis] %s: only with sentinels; "
                     "list the sentinels (sentinels = host:port, ...)", sentinel_only[i]);
    /* TLS: rediss:// or tls = on; never both on and off */
    int tls_line = conf_rline(x, "tls");
    if (c->redis_url_tls && tls_line && !c->redis_tls)
        conf_err(x, tls_line, "[redis] tls: off, but the url is rediss:// (TLS); "
                 "use redis:// or remove tls = off");
    if (c->redis_url_tls)
        c->redis_tls = 1;
    static const char *const tls_only[] = { "tls_ca_file", "tls_cert_file", "tls_key_file",
                                            "tls_server_name" };
    for (int i = 0; i < 4; i++)
        if (!c->redis_tls && conf_rline(x, tls_only[i]) &&
            *((const char *)c + conf_opts[conf_opt_index(SECT_REDIS, tls_only[i])].off))
            conf_err(x, conf_rline(x, tls_only[i]), "[redis] %s: TLS is off; set tls = on "
                     "or use a rediss:// url", tls_only[i]);
    if ((c->tls_cert_file[0] != '\0') != (c->tls_key_file[0] != '\0')) {
        const char *set = c->tls_cert_file[0] ? "tls_cert_file" : "tls_key_file";
        conf_err(x, conf_rline(x, set), "[redis] %s: mutual TLS needs both tls_cert_file "
                 "and tls_key_file", set);
    }
    if (c->redis_username[0] && c->redis_password[0] == '\0') {
        int line = conf_rline(x, "username") ? conf_rline(x, "username") : x->url_user_line;
        conf_err(x, line, "[redis] username: an ACL user needs its password (password = "
                 "${REDIS_PASSWORD}, or user:password@ in the url)");
    }
    if (c->replicas_ack > 0 && c->replicas_ack_timeout_ms >= c->redis_timeout_ms) {
        char a[32], t[32];
        conf_fmt_duration(c->replicas_ack_timeout_ms, a, sizeof(a));
        conf_fmt_duration(c->redis_timeout_ms, t, sizeof(t));
        int line = conf_rline(x, "replicas_ack_timeout") ? conf_rline(x, "replicas_ack_timeout")
                   : conf_rline(x, "replicas_ack");
        conf_err(x, line, "[redis] replicas_ack_timeout: %s must be less than [redis] timeout "
                 "(%s): WAIT holds the connection that long, and every command behind it", a, t);
    }
}

/* Checks across options, once the whole file is read. */
static void conf_finish(struct conf_ctx *x)
{
    struct config *c = x->c;
    int i_path = conf_opt_index(SECT_ROUTE, "path");
    int i_body = conf_opt_index(SECT_ROUTE, "max_body");
    int i_lease = conf_opt_index(SECT_ROUTE, "lease");
    int i_ut = conf_opt_index(SECT_PROXY, "upstream_timeout");
    conf_finish_redis(x);
    for (int r = 0; r < c->n_routes; r++) {
        struct route *rt = &c->routes[r];
        if (!x->rline[r][i_path])
            conf_err(x, x->route_line[r], "[route %s]: path is required, e.g. path = /v1/orders",
                     rt->name);
        if (!x->rline[r][i_body])
            rt->max_body = c->max_body;
        if (rt->lease_ms <= c->upstream_timeout_ms) {
            char l[32], u[32];
            conf_fmt_duration(rt->lease_ms, l, sizeof(l));
            conf_fmt_duration(c->upstream_timeout_ms, u, sizeof(u));
            int line = x->rline[r][i_lease] ? x->rline[r][i_lease] : x->route_line[r];
            conf_err(x, line, "[route %s] lease: lease (%s) must exceed [proxy] "
                     "upstream_timeout (%s)%s, or a claim can expire while its request still runs",
                     rt->name, l, u,
                     x->gline[i_ut] ? "" : " (the default)");
        }
    }
}

struct config *conf_load(const char *path, char *err, size_t errlen)
{
    struct conf_ctx *x = calloc(1, sizeof(*x));
    struct config *c = calloc(1, sizeof(*c));
    if (!x || !c) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(x);
        free(c);
        return NULL;
    }
    x->c = c;
    if (strlen(path) >= sizeof(c->path)) {
        snprintf(err, errlen, "%.100s...: the file name is too long", path);
        goto fail_early;
    }
    strcpy(c->path, path);
    x->f = fopen(path, "r");
    if (!x->f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail_early;
    }
    if (conf_defaults(x, false, c) < 0)
        goto fail;
    int rc = ini_parse_stream(conf_read_line, x, conf_handler, x);
    if (ferror(x->f))
        conf_err(x, x->line, "read error");
    fclose(x->f);
    x->f = NULL;
    if (rc == -2) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail_early;
    }
    if (rc > 0 && (!x->err_line || rc < x->err_line)) {
        x->err_line = 0;
        conf_err(x, rc, "syntax error: expected [section], key = value, or a comment "
                 "starting with ; or #");
    }
    if (!x->err_line)
        conf_finish(x);
    if (x->err_line)
        goto fail;
    for (int i = 0; i < CONF_NOPTS; i++)
        c->line[i] = conf_opts[i].sect == SECT_ROUTE ? 0 : x->gline[i];
    free(x);
    return c;
fail:
    snprintf(err, errlen, "%s", x->err);
fail_early:
    if (x->f)
        fclose(x->f);
    free(x);
    free(c);
    return NULL;
}

void conf_free(struct config *c)
{
    free(c);
}

/* ---- the table, described (`idemproxy -T options`, the man page) ---- */

/* Append word to a '|'-separated list in out. */
static void conf_add_word(char *out, size_t n, const char *word)
{
    size_t k = strlen(out);
    snprintf(out + k, n - k, "%s%s", k ? "|" : "", word);
}

int conf_option(int i, struct conf_opt_info *out)
{
    static const char *const type_names[] = {
        [T_STRING] = "string", [T_LISTEN] = "address", [T_UPSTREAM] = "url",
        [T_REDIS_URL] = "url", [T_DURATION] = "duration", [T_SIZE] = "size",
        [T_BOOL] = "bool", [T_ENUM] = "enum", [T_INT] = "int",
        [T_METHODS] = "methods", [T_PATH] = "path", [T_SCOPE] = "scope",
        [T_STATUS] = "status", [T_MISMATCH] = "status", [T_HEADERS] = "headers",
        [T_RELEASE] = "statuses", [T_NODES] = "addresses", [T_FILE] = "file",
    };
    if (i < 0 || i >= CONF_NOPTS)
        return -1;
    const struct conf_opt *o = &conf_opts[i];
    memset(out, 0, sizeof(*out));
    out->section = conf_sect_name(o->sect);
    out->name = o->name;
    out->type = type_names[o->type];
    out->def = o->def;
    out->restart = (o->flags & CONF_RESTART) != 0;
    switch (o->type) {
    case T_DURATION:
        conf_fmt_duration(o->min, out->min, sizeof(out->min));
        conf_fmt_duration(o->max, out->max, sizeof(out->max));
        break;
    case T_SIZE:
        conf_fmt_size(o->min, out->min, sizeof(out->min));
        conf_fmt_size(o->max, out->max, sizeof(out->max));
        break;
    case T_INT:
    case T_STATUS:
        snprintf(out->min, sizeof(out->min), "%lld", (long long)o->min);
        snprintf(out->max, sizeof(out->max), "%lld", (long long)o->max);
        if (o->type == T_STATUS)
            conf_add_word(out->values, sizeof(out->values), "original");
        break;
    case T_STRING:
    case T_FILE:
        snprintf(out->max, sizeof(out->max), "%lld", (long long)o->max - 1);
        break;
    case T_NODES:
        snprintf(out->max, sizeof(out->max), "%d", ADDR_MAX_NODES);
        break;
    case T_ENUM:
        for (int k = 0; o->names[k]; k++)
            conf_add_word(out->values, sizeof(out->values), o->names[k]);
        break;
    case T_LISTEN:
        if (o->flags & CONF_ALLOW_OFF)
            snprintf(out->values, sizeof(out->values), "off");
        break;
    case T_METHODS:
        conf_method_words(out->values, sizeof(out->values), "|");
        break;
    case T_RELEASE:
        snprintf(out->min, sizeof(out->min), "400");
        snprintf(out->max, sizeof(out->max), "599");
        break;
    default:
        break;
    }
    /* the words of the types whose words are fixed */
    static const char *const words[] = {
        [T_BOOL] = "on|off", [T_SCOPE] = "none|header:NAME|json:FIELD",
        [T_MISMATCH] = "409|422", [T_HEADERS] = "none", [T_RELEASE] = "4xx|5xx|none",
    };
    if ((size_t)o->type < sizeof(words) / sizeof(words[0]) && words[o->type] != NULL)
        snprintf(out->values, sizeof(out->values), "%s", words[o->type]);
    return 0;
}

/* Option i as a row of -T options. */
static json_t *conf_option_row(int i)
{
    struct conf_opt_info o;
    if (conf_option(i, &o) != 0)
        return NULL;
    json_t *values = json_array();
    for (char *w = o.values, *end; *w; w = *end ? end + 1 : end) {
        end = w + strcspn(w, "|");
        json_array_append_new(values, json_stringn(w, (size_t)(end - w)));
    }
    return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:o*, s:b}", "section", o.section,
                     "name", o.name, "type", o.type, "default", o.def,
                     "min", o.min[0] ? o.min : NULL, "max", o.max[0] ? o.max : NULL,
                     "values", values, "restart", o.restart);
}

int conf_write_options(FILE *f)
{
    return table_write(f, CONF_NOPTS, conf_option_row);
}

/* ---- reload: what only a restart changes ---- */

int conf_line(const struct config *c, const char *section, const char *name)
{
    for (int i = 0; i < CONF_NOPTS; i++)
        if (conf_opts[i].sect != SECT_ROUTE && strcmp(conf_sect_name(conf_opts[i].sect), section) == 0 &&
            strcmp(conf_opts[i].name, name) == 0)
            return c->line[i];
    return 0;
}

/*
 * The bytes of a global option's value: up to two spans of struct config,
 * and whether they hold strings (compared up to their NUL: a buffer may
 * hold leftovers of a longer default past it).
 */
struct conf_span { size_t off, len; bool str; };

static int conf_spans(const struct conf_opt *o, struct conf_span sp[2])
{
    switch (o->type) {
    case T_LISTEN:
    case T_UPSTREAM:
        sp[0] = (struct conf_span){ o->off, 256, true };
        sp[1] = (struct conf_span){ o->off2, sizeof(int), false };
        return 2;
    case T_REDIS_URL:
        sp[0] = (struct conf_span){ offsetof(struct config, redis_host), 256, true };
        sp[1] = (struct conf_span){ offsetof(struct config, redis_port),
                                    offsetof(struct config, redis_url_tls) + sizeof(int) -
                                    offsetof(struct config, redis_port), false };
        return 2;
    case T_STRING:
    case T_FILE:
        sp[0] = (struct conf_span){ o->off, (size_t)o->max, true };
        return 1;
    case T_DURATION:
    case T_SIZE:
        sp[0] = (struct conf_span){ o->off, sizeof(int64_t), false };
        return 1;
    case T_NODES:
        sp[0] = (struct conf_span){ o->off, sizeof(struct addr_nodes), false };
        return 1;
    case T_INT:
    case T_ENUM:
    case T_BOOL:
        sp[0] = (struct conf_span){ o->off, sizeof(int), false };
        return 1;
    default:
        return 0;                 /* route options: all apply on reload */
    }
}

int conf_restart_changes(const struct config *old, const struct config *new,
                         char *out, size_t n)
{
    const char *a = (const char *)old, *b = (const char *)new;
    int count = 0;
    size_t len = 0;
    if (n > 0)
        out[0] = '\0';
    for (int i = 0; i < CONF_NOPTS; i++) {
        const struct conf_opt *o = &conf_opts[i];
        struct conf_span sp[2];
        if (o->sect == SECT_ROUTE || !(o->flags & CONF_RESTART))
            continue;
        int k = conf_spans(o, sp), differ = 0;
        for (int j = 0; j < k; j++)
            differ |= sp[j].str ? strcmp(a + sp[j].off, b + sp[j].off) != 0
                                : memcmp(a + sp[j].off, b + sp[j].off, sp[j].len) != 0;
        if (!differ)
            continue;
        count++;
        if (len < n) {
            int w = snprintf(out + len, n - len, "%s[%s] %s", len ? ", " : "",
                             conf_sect_name(o->sect), o->name);
            len += w > 0 ? (size_t)w : 0;
        }
    }
    return count;
}

void conf_keep_restart(struct config *new, const struct config *old)
{
    for (int i = 0; i < CONF_NOPTS; i++) {
        const struct conf_opt *o = &conf_opts[i];
        struct conf_span sp[2];
        if (o->sect == SECT_ROUTE || !(o->flags & CONF_RESTART))
            continue;
        int k = conf_spans(o, sp);
        for (int j = 0; j < k; j++)
            memcpy((char *)new + sp[j].off, (const char *)old + sp[j].off, sp[j].len);
    }
    /* follows from the url, sentinels and cluster_nodes kept above */
    new->redis_mode = old->redis_mode;
}
