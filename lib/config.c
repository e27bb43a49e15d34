/*
 * config: the INI file (libinih) turned into a struct config.
 * Owns: walking the file against the option table (lib/confopts.c), each
 * value through its parser (lib/confval.c), defaults included; ${ENV}
 * substitution; error messages "file:line: key: what is wrong, what is
 * allowed"; the checks across options after parsing.
 * Does not own: sockets, Redis, anything on the event loop.
 */
#include "config.h"
#include "confval.h"
#include "confopts.h"
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

/* Parsing state, one per conf_load. */
struct conf_ctx {
    FILE *f;
    struct config *c;
    int line;                     /* the line inih is looking at */
    bool indented;                /* that line starts with white space */
    enum conf_sect sect;
    int route;                    /* index of the current route, SECT_ROUTE */
    char sect_name[80];           /* for messages: "proxy", "route orders" */
    int gline[CONF_MAX_OPTS];        /* line each global option was set on */
    int rline[CONF_MAX_ROUTES][CONF_MAX_OPTS];
    int route_line[CONF_MAX_ROUTES];
    int url_pw_line, pw_line;     /* redis password from url / `password` */
    int url_user_line;            /* a user in the url */
    int last_key_line;
    char last_key[64];
    int err_line;                 /* 0: no error yet */
    char err[1024];
};

static int conf_opt_index(enum conf_sect s, const char *name);

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
