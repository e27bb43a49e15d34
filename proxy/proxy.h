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
#include <sys/time.h>
#include <sys/queue.h>
#include <event2/event.h>

#include "clock.h"
#include "cfg.h"
#include "config.h"
#include "log.h"
#include "netio.h"
#include "retry.h"
#include "stats.h"

#define IDEMPROXY_VERSION "0.2.0"
#define PROXY_MAX_WORKERS 256

struct store;
struct upstream;
struct fp_state;
struct req;
struct proc;
struct conn;
struct conn_request;
struct tunnel;
struct h1_request;
struct evbuffer;
struct evconnlistener;

TAILQ_HEAD(reqq, req);
TAILQ_HEAD(connq, conn);
TAILQ_HEAD(tunnelq, tunnel);

/* One worker: an event loop and everything a request needs. */
struct proxy {
    struct proc *proc;
    int id;
    struct event_base *base;
    struct cfgref *cfg;                 /* current config */
    /* what a parsed request goes to (req_start; set by server_open) */
    void (*dispatch)(struct proxy *px, struct conn *c, struct conn_request *cr);
    struct evconnlistener *listener;    /* NULL once draining */
    struct connq conns;                 /* client connections (conn.c) */
    int n_conns;
    struct tunnelq tunnels;             /* upgraded connections (tunnel.c) */
    int n_tunnels;
    /* the config's client timeouts, as common timeouts of the base */
    const struct timeval *tv_header, *tv_body, *tv_send, *tv_idle, *tv_linger;
    struct evbuffer *scratch;           /* body bytes on their way (conn.c) */
    struct evbuffer *scratch2;          /* framing on its way (forward.c) */
    struct log_limit refusals;          /* "request refused" lines a second */
    char rbuf[NETIO_READ];              /* reads of heads and small bodies */
    struct req *spare;                  /* freed requests kept for reuse */
    int n_spare;
    struct store *store;
    struct upstream *up;
    struct fp_state *fp;                /* reused for every fingerprint */
    struct stats stats;                 /* written here only; summed by admin */
    struct retry_estimate up_time[STATS_MAX_ROUTES]; /* by stats route index:
                                           its upstream time, for Retry-After */
    struct reqq owners;                 /* requests holding a claim here */
    struct reqq live;                   /* every request, oldest first */
    int64_t inflight;                   /* client requests being handled */
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
    struct ssl_ctx_st *tls;             /* [redis] TLS context (proxy/tls.c), or NULL */
    struct proxy *workers;
    int n_workers;
    int running;                        /* workers not yet exited */
    unsigned draining:1;
    int done_fd;                        /* eventfd: a worker exited */
    struct event *done_ev;
    struct event *sig_term, *sig_int, *sig_hup;
};

/* The loop's cached time, in seconds. */
static inline time_t proxy_now_sec(struct proxy *px)
{
    struct timeval tv;
    if (event_base_gettimeofday_cached(px->base, &tv) != 0)
        gettimeofday(&tv, NULL);
    return tv.tv_sec;
}

/* The Date field's value for this second, formatted once a second. */
static inline const char *proxy_date(struct proxy *px)
{
    time_t now = proxy_now_sec(px);
    if (now != px->date_sec) {
        struct tm tm;
        if (gmtime_r(&now, &tm) != NULL &&
            strftime(px->date, sizeof(px->date), "%a, %d %b %Y %H:%M:%S GMT", &tm) != 0)
            px->date_sec = now;
    }
    return px->date;
}

/*
 * Called when a request is gone or a connection closed: a draining worker
 * is done when no request is handled and every answer was written (it
 * closes each connection after its answer).
 */
static inline void proxy_request_done(struct proxy *px)
{
    if (px->draining && px->inflight == 0 && px->n_conns == 0)
        event_base_loopexit(px->base, NULL);
}

#endif
