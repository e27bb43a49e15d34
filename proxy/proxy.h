/*
 * proxy.h: what the event-loop modules share. One struct proxy per process
 * owns the event base, the listeners, the Redis store, the upstream pool,
 * the counters and the current config. Nothing here is global: every
 * module is handed the proxy it works for.
 */
#ifndef IDEM_PROXY_H
#define IDEM_PROXY_H

#include <stdint.h>
#include <sys/queue.h>
#include <event2/event.h>
#include <event2/http.h>

#include "config.h"
#include "stats.h"

#define IDEMPROXY_VERSION "0.1.0"

struct store;
struct upstream;
struct fp_state;
struct req;

/* A config shared by the requests that started under it (SIGHUP swaps it). */
struct cfgref {
    struct config *c;
    int refs;
    int stats_idx[CONF_MAX_ROUTES];   /* stats route index of c->routes[i] */
};

TAILQ_HEAD(reqq, req);

struct proxy {
    struct event_base *base;
    const char *conf_path;
    struct cfgref *cfg;                 /* current config */
    struct evhttp *http;                /* client listener */
    struct evhttp_bound_socket *bound;  /* NULL once draining */
    struct evhttp *admin;               /* NULL when [admin] listen = off */
    struct store *store;
    struct upstream *up;
    struct fp_state *fp;                /* reused for every fingerprint */
    struct stats stats;
    struct reqq owners;                 /* requests holding a claim here */
    int64_t inflight;                   /* client requests being handled */
    int64_t unsent;                     /* answers handed to libevent, not yet written */
    char token_prefix[17];              /* random per process */
    uint64_t token_seq;
    uint64_t rid_seq;
    unsigned draining:1;
    struct event *sig_term, *sig_int, *sig_hup, *drain_timer;
};

/* cfgref lifetime */
struct cfgref *cfgref_new(struct config *c, struct stats *s);
struct cfgref *cfgref_get(struct cfgref *r);
void cfgref_put(struct cfgref *r);

/* server.c: the client listener */
int server_open(struct proxy *px, char *err, size_t errlen);
void server_apply_limits(struct proxy *px);
void server_stop_accepting(struct proxy *px);
void server_close(struct proxy *px);

/* req.c: one client request through its state machine */
void req_start(struct proxy *px, struct evhttp_request *er);
/* Called by req.c when a request is gone or its answer written (drain check). */
void proxy_request_done(struct proxy *px);

/* admin.c */
int admin_open(struct proxy *px, char *err, size_t errlen);
void admin_close(struct proxy *px);

/* monotonic milliseconds */
double now_ms(void);

#endif
