/*
 * req.h: one client request, shared by the three files that handle it.
 *
 *   req.c      its life: made when a head is parsed (req_start), the state
 *              machine (req_set_state, which also keeps the claim's
 *              bookkeeping), the end (req_finish: counted, logged, freed
 *              once), the request id and the log helper; the connection's
 *              callbacks (body, body_end, drained, gone).
 *   forward.c  the exchange with the upstream: the request framed for it,
 *              its body streamed or given whole, the answer's head
 *              filtered, its body streamed to the client or kept to be
 *              stored, the tunnel after a 101.
 *   protect.c  what a protected route adds: the checks, the fingerprint,
 *              the claim, waiting, storing, releasing, replaying.
 *
 * A request belongs to its worker (struct proxy) and is freed exactly once,
 * by req_finish. Its connection may go at any time (req->conn = NULL, the
 * request is "orphaned"): a protected request goes on, stores its answer
 * and sends it to nobody; a pass-through one stops.
 */
#ifndef IDEM_REQ_H
#define IDEM_REQ_H

#include <stdint.h>
#include <sys/queue.h>

#include "conn.h"
#include "proxy.h"
#include "stats.h"
#include "store.h"
#include "upstream.h"

enum req_state {
    RS_NEW,        /* head parsed; checks not done yet */
    RS_READING,    /* protected: its whole body being read */
    RS_CLAIMING,   /* claim-or-fetch sent to Redis */
    RS_WAITING,    /* in_flight = wait: waiting for the owner's answer */
    RS_FORWARDING, /* going (gone) upstream; no answer head sent yet */
    RS_STORING,    /* protected: complete, mark-unstored or release sent */
    RS_STREAMING,  /* the answer's head was sent; its body is on its way */
    RS_DONE        /* answered (or handed to a tunnel); being freed */
};

struct req {
    struct proxy *px;
    struct req *next_spare;          /* in px->spare */
    struct conn *conn;               /* NULL once the client left */
    struct conn_request cr;          /* the parsed head (owned) */
    struct cfgref *cfg;              /* keeps route alive */
    const struct route *route;       /* NULL: not a protected route */
    int stats_idx;
    enum req_state state;
    enum stats_outcome outcome;
    int status;                      /* answer status, for the log */
    char rid[40];
    char peer[48];                   /* the client's address (X-Forwarded-For) */
    /* protected */
    char key[1025];
    size_t keylen;
    char scope[256];
    char fp[33];
    char rkey[128];
    char rhash[33];
    struct record_claim claim;       /* its token from the claim on; as the store
                                        made it once claimed: what finishes it */
    double t0, t_redis, redis_ms, t_up, upstream_ms;
    unsigned claimed:1;              /* we hold the claim (in px->owners) */
    unsigned protected_:1;           /* this request was claimed or checked */
    unsigned observed:1;             /* observe mode: `would` is set */
    unsigned head:1;                 /* a HEAD request */
    unsigned whole:1;                /* the body is read whole (r->body) */
    unsigned keep:1;                 /* the answer is kept to be stored */
    unsigned up_chunked:1;           /* the request body goes chunked */
    unsigned body_ended:1;           /* the client's body is whole */
    unsigned counted:1;              /* its outcome is in the counters */
    unsigned up_finished:1;          /* the upstream call ended (up_err) */
    enum upstream_err up_err;
    enum stats_outcome would;        /* what enforcement would have answered */
    struct evbuffer *body;           /* the request body, when read whole */
    int64_t body_seen;               /* bytes of body seen (the limit) */
    struct upstream_call *call;
    /* the upstream's answer, while kept */
    int up_status;
    int64_t up_length;               /* its Content-Length, -1 if none */
    enum h1_body up_body_kind;
    struct evbuffer *up_body;
    char *up_headers;                /* the stored headers, record-encoded */
    size_t up_hlen;
    char *fwd_headers;               /* every forwarded one, the same way */
    size_t fwd_hlen;
    /* waiting */
    struct event *wait_timer;
    double wait_deadline;
    int wait_backoff_ms;
    struct req *owner;               /* local owner we wait on */
    TAILQ_ENTRY(req) owners_link;    /* in px->owners while claimed */
    TAILQ_ENTRY(req) live_link;      /* in px->live until freed */
    TAILQ_ENTRY(req) waiters_link;   /* in owner->waiters */
    struct reqq waiters;
};

/* ---- for the worker (server.c, main.c) ---- */

/* A parsed request, from conn.c (px->dispatch): a new request takes it. */
void req_start(struct proxy *px, struct conn *c, struct conn_request *cr);
/* The freed requests a worker keeps for reuse, freed. */
void req_spares_free(struct proxy *px);
/* Free the requests still alive (the worker is exiting). */
void req_free_all(struct proxy *px);

/* ---- between req.c, forward.c and protect.c ---- */

/* req.c */
void req_set_state(struct req *r, enum req_state to);
/* The claim is ours (1) or not any more (0): the bit and px->owners. */
void req_set_claimed(struct req *r, int claimed);
/* Count its outcome now, before the answer's last bytes go out (so a
 * client that reads the answer and then /metrics sees it counted). */
void req_count(struct req *r);
/* Count (if not yet), log and free (the answer, if any, was written). */
void req_finish(struct req *r, int status);
/* An answer of idemproxy's own, then req_finish. */
void req_error(struct req *r, int status, const char *code,
               enum stats_outcome outcome, long retry_after);
/* A log line about this request: msg, its rid, its key hash, detail. */
void req_log_say(const struct req *r, int level, const char *msg, const char *detail);
/* The request's header (first value), or NULL; *count (if not NULL):
 * how many times it is there. */
const char *req_header(const struct req *r, const char *name, int *count);
/* The connection hands this request its body and events (once). */
void req_attach(struct req *r);

#ifdef IDEM_FAULT_POINTS
/* Test builds only (make FAULTS=1): IDEMPROXY_CRASH_AT=<point> aborts the
 * process there (now, or 100 ms later), for the fault suite. */
void req_fault_point(const char *name);
void req_fault_point_later(struct proxy *px, const char *name);
#else
#define req_fault_point(name) ((void)0)
#define req_fault_point_later(px, name) ((void)0)
#endif

/* forward.c */
/* Send the request upstream: its body whole (r->whole) or as it comes. */
void req_forward(struct req *r);
void req_forward_body(struct req *r, struct evbuffer *data);
void req_forward_body_end(struct req *r);
void req_forward_drained(struct req *r);
/* The client left: a pass-through exchange stops. */
void req_forward_gone(struct req *r);
/* Write the kept answer (head and body so far) to the client; done: it
 * is whole, and the connection goes on. */
void req_send_kept(struct req *r, int done);
/* This answer carries idemproxy's own Idempotent-Replayed. */
int req_says_replayed(const struct req *r);
/* A field of an answer carrying ours: Access-Control-Expose-Headers
 * names Idempotent-Replayed too. */
void req_head_add(const struct req *r, struct conn_head *h, const char *name, size_t nlen,
                  const char *value, size_t vlen);

/* protect.c */
/* The checks before any body is read; 0: read the body, else answered. */
int req_protect_start(struct req *r);
/* The body is whole: fingerprint, claim. */
void req_protect_body_end(struct req *r);
/* The upstream's answer is whole (UP_OK) or failed, while kept. */
void req_protect_answer(struct req *r, enum upstream_err err);
/* The kept answer went past max_store: mark it unstored, then stream. */
void req_protect_too_large(struct req *r);
/* mode = observe: count `would`, forward unprotected. 1 if it did. */
int req_observed(struct req *r, enum stats_outcome would);
/* An answer a protected route refuses with (observe mode forwards). */
void req_refuse(struct req *r, int status, const char *code,
                enum stats_outcome outcome, long retry_after);

#endif
