/*
 * confopts: the one table of options (section, name, type, offset,
 * bounds, default, whether a reload applies it), and what is derived from
 * the table alone: its description (`idemproxy -T options`, the man page,
 * the docs check) and, on reload, which options changed that only a
 * restart applies.
 * Does not own: reading a file or a value (lib/config.c, lib/confval.c).
 */
#include "config.h"
#include "confopts.h"
#include "confval.h"
#include "addr.h"
#include "log.h"
#include "table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

static const char *const conf_names_fp_body[] = { "raw", "json", NULL };
static const char *const conf_names_in_flight[] = { "reject", "wait", NULL };
static const char *const conf_names_store_err[] = { "reject", "pass", NULL };
static const char *const conf_names_err_fmt[] = { "json", "problem", NULL };
static const char *const conf_names_mode[] = { "enforce", "observe", NULL };

#define C(f) offsetof(struct config, f)
#define R(f) offsetof(struct route, f)

const struct conf_opt conf_opts[] = {
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

const int conf_nopts = (int)(sizeof(conf_opts) / sizeof(conf_opts[0]));
_Static_assert(sizeof(conf_opts) / sizeof(conf_opts[0]) <= CONF_MAX_OPTS, "struct config's line[] is too short for the table");
/* the url's fields, compared and kept as one span on reload */
_Static_assert(offsetof(struct config, redis_port) > offsetof(struct config, redis_host) &&
               offsetof(struct config, redis_db) > offsetof(struct config, redis_port) &&
               offsetof(struct config, redis_url_tls) > offsetof(struct config, redis_db),
               "redis_host, redis_port, redis_db, redis_url_tls are declared in that order");

const char *conf_sect_name(enum conf_sect s)
{
    switch (s) {
    case SECT_PROXY: return "proxy";
    case SECT_REDIS: return "redis";
    case SECT_ADMIN: return "admin";
    case SECT_LOG: return "log";
    default: return "route";
    }
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
