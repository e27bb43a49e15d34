/*
 * store: a record's operations on Redis, for one event loop: claim,
 * complete, mark unstored, release, and the admin API's look, delete and
 * INFO. Owns: sending each operation (as EVALSHA of lib/record's script,
 * EVAL again on NOSCRIPT) to the node that serves its key (proxy/topo.c),
 * following MOVED and ASK, waiting for replicas (replicas_ack: one WAIT per
 * node per loop turn, after that turn's writes), the bound on every call,
 * and setting each node up (SCRIPT LOAD, INFO for Redis restarts).
 * Does not own: what a request does with the answer, connections
 * (proxy/rconn.c), where keys live (proxy/topo.c), the record layout
 * (lib/record.c).
 *
 * Every call answers through its callback exactly once, at the latest
 * after [redis] timeout, and never before the call returns, but in one
 * case: when memory for the call itself (a few hundred bytes) runs out,
 * it is answered SR_ERROR (SR_OOM for a complete) at once. So a caller
 * makes the store call the last thing it does with what the callback may
 * free.
 */
#ifndef IDEM_STORE_H
#define IDEM_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "record.h"
#include "stats.h"

struct evbuffer;

enum store_kind {
    SR_ERROR,      /* Redis down, slow, or answered an error: see err */
    SR_CLAIMED,    /* claim: the key is ours now */
    SR_DONE,       /* claim: a completed record (status, headers, body) */
    SR_INFLIGHT,   /* claim: another request holds it (pttl_ms) */
    SR_MISMATCH,   /* claim: the record has another fingerprint */
    SR_UNSTORED,   /* claim: executed, answer not stored */
    SR_UNREADABLE, /* claim: a record this version cannot use (another
                      type, layout version or state, or incomplete): err */
    SR_OK,         /* complete/unstored/release: done by the owner */
    SR_LOST,       /* complete/unstored/release: we no longer own it */
    SR_OOM,        /* complete: Redis refused the write (maxmemory), or
                      idemproxy had no memory to send it */
    SR_INFO,       /* info: body holds the INFO text */
    SR_RECORD,     /* inspect: the record's fields */
    SR_NONE        /* inspect: no such record */
};

/* Valid only during the callback: copy what you keep. */
struct store_result {
    enum store_kind kind;
    int status;
    const char *headers; size_t headers_len;
    const char *body; size_t body_len;
    long long pttl_ms;
    const char *err;
    /* claim, SR_CLAIMED: the claim as made (its layout), for what finishes it */
    const struct record_claim *claim;
    /* inspect */
    int version;
    const char *state, *fp;
    long long created_ms;
};

typedef void (*store_cb)(void *arg, const struct store_result *res);

/* tls: the process's TLS context (proxy/tls.c), or NULL for plain TCP. */
struct store *store_open(struct event_base *base, const struct config *c,
                         struct stats *stats, SSL_CTX *tls);
/* Pending calls are dropped unanswered: only when the loop stops. */
void store_close(struct store *st);
/* 1 when connected and the scripts are loaded */
int store_ready(const struct store *st);
/* This connection (one per process) counts and logs Redis restarts. */
void store_watch_restarts(struct store *st);
/* Keep *flag equal to store_ready() (atomically), for another thread. */
void store_publish_ready(struct store *st, int *flag);
/* the reason it is not ready, for /readyz and logs */
const char *store_status(const struct store *st);
/* What else is wrong while ready (a sentinel down), into buf ("" none). */
void store_problems(const struct store *st, char *buf, size_t n);
/* The samples of a node gauge (idemproxy_redis_node_up) named name, for
 * /metrics: name{node="h:p",role="master"} 1 per node and sentinel. */
void store_render_nodes(const struct store *st, const char *name, FILE *f);
/* Reload: timeout and replicas_ack now, credentials from the next connection. */
void store_apply(struct store *st, const struct config *c);

void store_claim(struct store *st, const char *rkey, const char *token,
                 const char *fp, int64_t lease_ms, store_cb cb, void *arg);
/* cl: the claim as SR_CLAIMED gave it (the layout it was made in) */
void store_complete(struct store *st, const char *rkey, const struct record_claim *cl,
                    int status, const char *headers, size_t hlen,
                    struct evbuffer *body, int64_t ttl_ms,
                    store_cb cb, void *arg);
void store_mark_unstored(struct store *st, const char *rkey,
                         const struct record_claim *cl, int64_t ttl_ms, store_cb cb,
                         void *arg);
void store_release(struct store *st, const char *rkey, const struct record_claim *cl,
                   store_cb cb, void *arg);
/* INFO memory of every master: SR_INFO, body the texts, each after a line
 * "# node host:port". */
void store_info(struct store *st, store_cb cb, void *arg);
/* The admin API: a record's fields (SR_RECORD / SR_NONE), and its removal
 * (SR_OK deleted, SR_LOST there was none). */
void store_inspect(struct store *st, const char *rkey, store_cb cb, void *arg);
void store_forget(struct store *st, const char *rkey, store_cb cb, void *arg);

#endif
