/*
 * admin.c: the admin listener (loopback by default): /healthz (the process
 * answers), /readyz (every worker's Redis ready, and every master's
 * maxmemory-policy noeviction, since an evicting Redis silently forgets
 * claims; what is wrong named: the node or sentinel, TLS, authentication),
 * /metrics
 * (Prometheus text), /records (look up or delete one record by route,
 * scope and key; behind [admin] token when set).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "key.h"
#include "log.h"

#include "clock.h"
#include "errcode.h"
#include "admin.h"
#include "proxy.h"
#include "store.h"

static void reply(struct evhttp_request *er, int status, const char *type,
                  const char *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(er), "Content-Type", type);
    evbuffer_add(evhttp_request_get_output_buffer(er), body, strlen(body));
    evhttp_send_reply(er, status, NULL, NULL);
}

static void json_text(char *out, size_t n, const char *text);

static void not_ready(struct evhttp_request *er, const char *why)
{
    char text[800], buf[900];
    json_text(text, sizeof(text), why);
    snprintf(buf, sizeof(buf), "{\"ready\":false,\"reason\":\"%s\"}", text);
    reply(er, 503, "application/json", buf);
}

/* One JSON string value: the text with what would break JSON blanked. */
static void json_text(char *out, size_t n, const char *text)
{
    snprintf(out, n, "%s", text);
    for (char *p = out; *p; p++)
        if (*p == '\\' || *p == '"' || (unsigned char)*p < 0x20)
            *p = ' ';
}

static void ready(struct evhttp_request *er, struct proc *pc)
{
    char problems[600], text[600], body[700];
    store_problems(pc->store, problems, sizeof(problems));
    if (problems[0] == '\0') {
        reply(er, 200, "application/json", "{\"ready\":true}");
        return;
    }
    json_text(text, sizeof(text), problems);
    snprintf(body, sizeof(body), "{\"ready\":true,\"warning\":\"%s\"}", text);
    reply(er, 200, "application/json", body);
}

struct info_call {
    struct evhttp_request *er;
    struct proc *pc;
};

/* Every master's INFO (after its "# node host:port" line) must say
 * maxmemory_policy:noeviction. */
static void on_info(void *arg, const struct store_result *res)
{
    struct info_call *ic = arg;
    struct evhttp_request *er = ic->er;
    struct proc *pc = ic->pc;
    free(ic);
    if (res->kind != SR_INFO) {
        not_ready(er, res->err ? res->err : "redis did not answer INFO");
        return;
    }
    const char *p = res->body, *end = res->body + res->body_len;
    int nodes = 0;
    while (p < end) {
        const char *node = memmem(p, (size_t)(end - p), "# node ", 7);
        if (node == NULL)
            break;
        node += 7;
        size_t nl = 0;
        while (node + nl < end && node[nl] != '\r' && node[nl] != '\n')
            nl++;
        const char *next = memmem(node, (size_t)(end - node), "# node ", 7);
        const char *stop = next ? next : end;
        const char *pol = memmem(node, (size_t)(stop - node), "maxmemory_policy:", 17);
        char why[240];
        if (pol == NULL) {
            snprintf(why, sizeof(why), "redis at %.*s: INFO has no maxmemory_policy",
                     (int)(nl < 80 ? nl : 80), node);
            not_ready(er, why);
            return;
        }
        pol += 17;
        size_t n = 0;
        while (pol + n < stop && pol[n] != '\r' && pol[n] != '\n')
            n++;
        if (n != 10 || memcmp(pol, "noeviction", 10) != 0) {
            snprintf(why, sizeof(why), "redis at %.*s: maxmemory-policy is %.*s; set it to "
                     "noeviction, or claims can be evicted", (int)(nl < 80 ? nl : 80), node,
                     (int)(n < 40 ? n : 40), pol);
            not_ready(er, why);
            return;
        }
        nodes++;
        p = stop;
    }
    if (nodes == 0) {
        not_ready(er, "redis INFO has no maxmemory_policy");
        return;
    }
    ready(er, pc);
}

/* ---- the record API: GET / DELETE /records?route=R&key=K[&scope=S][&body=1] ---- */

struct rec_call {
    struct evhttp_request *er;
    int want_body;
    char route[64];
    char rhash[33];
};

static void reply_json(struct evhttp_request *er, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(doc);
    reply(er, status, "application/json", text ? text : "{}");
    free(text);
}

static void reply_error(struct evhttp_request *er, int status, const char *code,
                        const char *message)
{
    char body[1024];
    errcode_body(body, sizeof(body), 0, status, code, message);
    reply(er, status, errcode_content_type(0), body);
}

static void on_record(void *arg, const struct store_result *res)
{
    struct rec_call *rc = arg;
    struct evhttp_request *er = rc->er;
    if (res->kind == SR_NONE) {
        reply_error(er, 404, "NOT_FOUND", "No record for this route, scope and key.");
    } else if (res->kind != SR_RECORD) {
        reply_error(er, 503, "STORE_UNAVAILABLE", res->err ? res->err : "redis did not answer");
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        json_t *doc = json_pack("{s:s,s:s,s:i,s:s,s:s,s:I,s:I}",
            "route", rc->route, "key_hash", rc->rhash, "version", res->version,
            "state", res->state, "fingerprint", res->fp,
            "body_bytes", (json_int_t)res->body_len,
            "headers_bytes", (json_int_t)res->headers_len);
        if (res->status > 0)
            json_object_set_new(doc, "status", json_integer(res->status));
        if (res->created_ms > 0)
            json_object_set_new(doc, "age_seconds",
                                json_real((double)(now - res->created_ms) / 1e3));
        json_object_set_new(doc, "expires_in_seconds",
                            json_real(res->pttl_ms > 0 ? (double)res->pttl_ms / 1e3 : 0));
        if (rc->want_body) {
            json_t *b = json_stringn(res->body, res->body_len);
            json_object_set_new(doc, "body", b ? b : json_null());
            if (b == NULL)
                json_object_set_new(doc, "body_note", json_string("not UTF-8 text"));
            json_t *h = json_stringn(res->headers, res->headers_len);
            json_object_set_new(doc, "headers", h ? h : json_null());
        }
        reply_json(er, 200, doc);
    }
    free(rc);
}

static void on_forget(void *arg, const struct store_result *res)
{
    struct rec_call *rc = arg;
    if (res->kind == SR_OK) {
        struct logline l;
        log_begin(&l, LOG_WARN, "record deleted through the admin API");
        log_str(&l, "route", rc->route);
        log_strn(&l, "key_hash", rc->rhash, 12);
        log_end(&l);
        reply_json(rc->er, 200, json_pack("{s:b,s:s}", "deleted", 1, "key_hash", rc->rhash));
    } else if (res->kind == SR_LOST) {
        reply_error(rc->er, 404, "NOT_FOUND", "No record for this route, scope and key.");
    } else {
        reply_error(rc->er, 503, "STORE_UNAVAILABLE", res->err ? res->err : "redis did not answer");
    }
    free(rc);
}

/* Constant time in the token's length: no timing hint of how much matched. */
static int token_ok(const char *given, const char *want)
{
    size_t n = strlen(want), m = strlen(given);
    unsigned diff = (unsigned)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < m ? given[i] : 0);
    return diff == 0;
}

static void on_records(struct proc *pc, struct evhttp_request *er)
{
    const struct config *c = pc->cfg->c;
    enum evhttp_cmd_type m = evhttp_request_get_command(er);
    if (c->admin_token[0] != '\0') {
        const char *auth = evhttp_find_header(evhttp_request_get_input_headers(er),
                                              "Authorization");
        if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 ||
            !token_ok(auth + 7, c->admin_token)) {
            evhttp_add_header(evhttp_request_get_output_headers(er),
                              "WWW-Authenticate", "Bearer");
            reply_error(er, 401, "UNAUTHORIZED", "The record API needs Authorization: Bearer <[admin] token>.");
            return;
        }
    }
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_DELETE) {
        reply_error(er, 405, "METHOD_NOT_ALLOWED", "Use GET to look a record up, DELETE to remove it.");
        return;
    }
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(er));
    if (query == NULL || evhttp_parse_query_str(query, &q) != 0) {
        evhttp_clear_headers(&q);
        reply_error(er, 400, "BAD_REQUEST", "Give ?route=NAME&key=KEY, and &scope=VALUE on a scoped route.");
        return;
    }
    const char *rname = evhttp_find_header(&q, "route");
    const char *raw = evhttp_find_header(&q, "key");
    const char *scope = evhttp_find_header(&q, "scope");
    const char *body = evhttp_find_header(&q, "body");
    const struct route *rt = NULL;
    for (int i = 0; rname != NULL && i < c->n_routes; i++)
        if (strcmp(c->routes[i].name, rname) == 0)
            rt = &c->routes[i];
    char key[1025];
    size_t keylen;
    const char *bad = NULL;
    if (rname == NULL || raw == NULL)
        bad = "Give ?route=NAME&key=KEY, and &scope=VALUE on a scoped route.";
    else if (rt == NULL)
        bad = "No route by that name in the running config.";
    else if (key_parse(raw, (size_t)rt->key_max_len, key, sizeof(key), &keylen) != KEY_OK)
        bad = "Not a valid Idempotency-Key for this route.";
    else if (rt->scope != SCOPE_NONE && (scope == NULL || *scope == '\0'))
        bad = "This route scopes keys: give &scope=VALUE (the tenant or credential).";
    else if (rt->scope == SCOPE_NONE && scope != NULL && *scope != '\0')
        bad = "This route has no scope: leave scope out.";
    if (bad != NULL) {
        evhttp_clear_headers(&q);
        reply_error(er, 400, "BAD_REQUEST", bad);
        return;
    }
    struct rec_call *rc = calloc(1, sizeof(*rc));
    char rkey[128];
    if (rc == NULL || key_record_name(c->key_prefix, rt->name, scope ? scope : "",
                                      key, keylen, rkey, sizeof(rkey), rc->rhash) < 0) {
        free(rc);
        evhttp_clear_headers(&q);
        reply_error(er, 500, "INTERNAL", "Internal error.");
        return;
    }
    rc->er = er;
    rc->want_body = body != NULL && strcmp(body, "1") == 0;
    snprintf(rc->route, sizeof(rc->route), "%s", rt->name);
    evhttp_clear_headers(&q);
    if (m == EVHTTP_REQ_DELETE)
        store_forget(pc->store, rkey, on_forget, rc);
    else
        store_inspect(pc->store, rkey, on_record, rc);
}

/* idemproxy_redis_node_up's samples: the admin's own connections. */
static void render_nodes(void *arg, const char *name, FILE *f)
{
    struct proc *pc = arg;
    store_render_nodes(pc->store, name, f);
}

/* Every worker's counters, summed, with the route names. */
static void render_metrics(struct proc *pc, FILE *f)
{
    static struct stats total;      /* large; the admin is single-threaded */
    memset(&total, 0, sizeof(total));
    memcpy(total.route, pc->names.route, sizeof(total.route));
    total.n_routes = pc->names.n_routes;
    stats_merge(&total, &pc->admin_stats);
    for (int i = 0; i < pc->n_workers; i++)
        stats_merge(&total, &pc->workers[i].stats);
    stats_render(&total, (int64_t)(now_ms() * 1e3), f, render_nodes, pc);
}

static void on_admin(struct evhttp_request *er, void *arg)
{
    struct proc *pc = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(er));
    if (path == NULL)
        path = "";
    if (strcmp(path, "/records") == 0) {
        on_records(pc, er);
    } else if (strcmp(path, "/healthz") == 0) {
        reply(er, 200, "application/json", "{\"status\":\"ok\"}");
    } else if (strcmp(path, "/readyz") == 0) {
        if (pc->draining) {
            not_ready(er, "shutting down");
            return;
        }
        if (!store_ready(pc->store)) {
            not_ready(er, store_status(pc->store));
            return;
        }
        for (int i = 0; i < pc->n_workers; i++) {
            if (!__atomic_load_n(&pc->workers[i].store_ready, __ATOMIC_RELAXED)) {
                char why[128];
                snprintf(why, sizeof(why), "worker %d: redis not connected yet", i);
                not_ready(er, why);
                return;
            }
        }
        struct info_call *ic = malloc(sizeof(*ic));
        if (ic == NULL) {
            not_ready(er, "out of memory");
            return;
        }
        ic->er = er;
        ic->pc = pc;
        store_info(pc->store, on_info, ic);
    } else if (strcmp(path, "/metrics") == 0) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (f == NULL) {
            evhttp_send_error(er, 500, NULL);
            return;
        }
        render_metrics(pc, f);
        fclose(f);
        evhttp_add_header(evhttp_request_get_output_headers(er), "Content-Type",
                          "text/plain; version=0.0.4");
        evbuffer_add(evhttp_request_get_output_buffer(er), text, len);
        free(text);
        evhttp_send_reply(er, 200, NULL, NULL);
    } else {
        reply(er, 404, "application/json",
              "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"Try /healthz, /readyz, /metrics or /records.\"}}");
    }
}

int admin_open(struct proc *pc, char *err, size_t errlen)
{
    const struct config *c = pc->cfg->c;
    if (c->admin_port == 0)
        return 0;
    pc->admin = evhttp_new(pc->base);
    if (pc->admin == NULL) {
        snprintf(err, errlen, "cannot create the admin server");
        return -1;
    }
    evhttp_set_allowed_methods(pc->admin, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_DELETE);
    evhttp_set_gencb(pc->admin, on_admin, pc);
    if (evhttp_bind_socket(pc->admin, c->admin_host, (ev_uint16_t)c->admin_port) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d for [admin]: %s",
                 c->admin_host, c->admin_port, strerror(errno));
        return -1;
    }
    return 0;
}

void admin_close(struct proc *pc)
{
    if (pc->admin != NULL)
        evhttp_free(pc->admin);
    pc->admin = NULL;
}
