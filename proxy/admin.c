/*
 * admin.c: the admin listener (loopback by default): /healthz (the process
 * answers), /readyz (Redis connected and its maxmemory-policy is
 * noeviction, since an evicting Redis silently forgets claims), /metrics
 * (Prometheus text).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>

#include "proxy.h"
#include "store.h"

static void reply(struct evhttp_request *er, int status, const char *type,
                  const char *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(er), "Content-Type", type);
    evbuffer_add(evhttp_request_get_output_buffer(er), body, strlen(body));
    evhttp_send_reply(er, status, NULL, NULL);
}

static void not_ready(struct evhttp_request *er, const char *why)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "{\"ready\":false,\"reason\":\"%.400s\"}", why);
    size_t start = strlen("{\"ready\":false,\"reason\":\"");
    size_t end = strlen(buf) - 2;        /* the closing "} */
    for (size_t i = start; i < end; i++)   /* keep the JSON valid */
        if (buf[i] == '\\' || buf[i] == '"' || (unsigned char)buf[i] < 0x20)
            buf[i] = ' ';
    reply(er, 503, "application/json", buf);
}

static void on_info(void *arg, const struct store_result *res)
{
    struct evhttp_request *er = arg;
    if (res->kind != SR_INFO) {
        not_ready(er, res->err ? res->err : "redis did not answer INFO");
        return;
    }
    const char *p = memmem(res->body, res->body_len, "maxmemory_policy:", 17);
    if (p == NULL) {
        not_ready(er, "redis INFO has no maxmemory_policy");
        return;
    }
    p += 17;
    size_t n = 0;
    while (p + n < res->body + res->body_len && p[n] != '\r' && p[n] != '\n')
        n++;
    if (n != 10 || memcmp(p, "noeviction", 10) != 0) {
        char why[160];
        snprintf(why, sizeof(why),
                 "redis maxmemory-policy is %.*s; set it to noeviction, or claims can be evicted",
                 (int)(n < 40 ? n : 40), p);
        not_ready(er, why);
        return;
    }
    reply(er, 200, "application/json", "{\"ready\":true}");
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
    stats_render(&total, (int64_t)(now_ms() * 1e3), f);
}

static void on_admin(struct evhttp_request *er, void *arg)
{
    struct proc *pc = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(er));
    if (path == NULL)
        path = "";
    if (strcmp(path, "/healthz") == 0) {
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
        store_info(pc->store, on_info, er);
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
              "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"Try /healthz, /readyz or /metrics.\"}}");
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
    evhttp_set_allowed_methods(pc->admin, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
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
