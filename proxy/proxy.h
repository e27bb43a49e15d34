/*
 * proxy.h: what the event-loop modules share.
 *
 * One process runs N workers (threads). A worker (struct proxy) owns an
 * event base, its own listener on the shared port (SO_REUSEPORT), its own
 * Redis connection, upstream pool and counters: nothing on the request
 * path is shared between threads, so nothing there takes a lock. The main
 * thread (struct proc) owns signals, the admin listener, config reloads
 * and the workers' lifetimes; it talks to a worker only through the
 * worker's mailbox (an eventfd and a pointer under a mutex).
 */
#ifndef IDEM_PROXY_H
#define IDEM_PROXY_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <sys/queue.h>
#include <event2/event.h>
#include <event2/http.h>

#include "clock.h"
#include "config.h"
#include "retry.h"
#include "stats.h"

#define IDEMPROXY_VERSION "0.2.0"
#define PROXY_MAX_WORKERS 256

struct store;
struct upstream;
struct fp_state;
struct req;
struct proc;

/*
 * A loaded config, shared read-only by every worker. refs is atomic: each
 * worker holds one reference (through its cfgref) and the main thread one.
 */
struct cfgset {
    struct config *c;
    int refs;                         /* __atomic */
    int stats_idx[CONF_MAX_ROUTES];   /* stats route index of c->routes[i] */
};

/* A worker's handle on a cfgset: requests keep the config they started
 * under (SIGHUP swaps it). refs is the worker's own, not atomic. */
struct cfgref {
    const struct config *c;
    const int *stats_idx;
    struct cfgset *set;
    int refs;
};

TAILQ_HEAD(reqq, req);

/* One worker: an event loop and everything a request needs. */
struct proxy {
    struct proc *proc;
    int id;
    struct event_base *base;
    struct cfgref *cfg;                 /* current config */
    struct evhttp *http;                /* client listener */
    struct evhttp_bound_socket *bound;  /* NULL once draining */
    struct head_check **heads;          /* by client fd (server.c) */
    struct req *spare;                  /* freed requests kept for reuse */
    int n_spare;
    int n_heads;
    struct store *store;
    struct upstream *up;
    struct fp_state *fp;                /* reused for every fingerprint */
    struct stats stats;                 /* written here only; summed by admin */
    struct retry_estimate up_time[STATS_MAX_ROUTES]; /* by stats route index:
                                           its upstream time, for Retry-After */
    struct reqq owners;                 /* requests holding a claim here */
    struct reqq live;                   /* every request, oldest first */
    int64_t inflight;                   /* client requests being handled */
    int64_t unsent;                     /* answers handed to libevent, not yet written */
    char token_prefix[17];              /* random per worker */
    uint64_t token_seq;
    uint64_t rid_seq;
    time_t date_sec;                    /* date: the Date header of that second */
    char date[32];
    unsigned draining:1;
    struct event *drain_timer;
    int store_ready;                    /* __atomic: published for /readyz */
    /* mailbox from the main thread */
    int wake_fd;                        /* eventfd */
    struct event *wake_ev;
    pthread_mutex_t mbox_lock;
    struct cfgset *mbox_cfg;            /* a reload to apply, or NULL */
    int mbox_drain;                     /* __atomic: stop accepting and drain */
    pthread_t thread;
    int started;
};

/* The process: main thread state. */
struct proc {
    struct event_base *base;
    const char *conf_path;
    struct cfgset *cfg;                 /* current config */
    struct stats names;                 /* route names for /metrics */
    struct stats admin_stats;           /* the admin's own Redis connection */
    struct evhttp *admin;               /* NULL when [admin] listen = off */
    struct store *store;                /* admin's: /readyz INFO, record API */
    struct proxy *workers;
    int n_workers;
    int running;                        /* workers not yet exited */
    unsigned draining:1;
    int done_fd;                        /* eventfd: a worker exited */
    struct event *done_ev;
    struct event *sig_term, *sig_int, *sig_hup;
};

/* config lifetime */
struct cfgset *cfgset_new(struct config *c, struct stats *names, int refs);
void cfgset_put(struct cfgset *set);
struct cfgref *cfgref_new(struct cfgset *set);
struct cfgref *cfgref_get(struct cfgref *r);
void cfgref_put(struct cfgref *r);

/* server.c: a worker's client listener */
/* Fails (with a message) when another process holds the port. */
int server_check_port(const struct config *c, char *err, size_t errlen);
int server_open(struct proxy *px, char *err, size_t errlen);
void server_apply_limits(struct proxy *px);
/* An answer counted in px->unsent is being written (1) or was (0): if the
 * connection fails first, its close does the count. */
void server_reply_pending(struct proxy *px, struct evhttp_request *er, int pending);
/* Keep a client connection reading while its request is handled (no
 * epoll_ctl per request); undone before its answer. */
void server_keep_reading(struct proxy *px, struct evhttp_request *er);
void server_reading_done(struct proxy *px, struct evhttp_connection *conn);
/* Write an answer evhttp just queued now, not on the next loop turn. */
void evcon_write_now(struct evhttp_connection *evcon);
void server_stop_accepting(struct proxy *px);
void server_close(struct proxy *px);

/* req.c: one client request through its state machine */
void req_start(struct proxy *px, struct evhttp_request *er);
void req_spares_free(struct proxy *px);
/* Called by req.c when a request is gone or its answer written (drain check). */
void proxy_request_done(struct proxy *px);

/* admin.c: the admin listener, on the main thread */
int admin_open(struct proc *pc, char *err, size_t errlen);
void admin_close(struct proc *pc);

#endif
