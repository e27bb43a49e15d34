/*
 * store: the hiredis async connection to Redis on the proxy's event loop.
 * Owns: connecting (AUTH, SELECT, SCRIPT LOAD), reconnecting with backoff,
 * the Lua scripts of a record's life (claim-or-fetch, complete, mark
 * unstored, release), and a timeout on every command, since hiredis 0.14
 * has none. Does not own: what a request does with the answer.
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
#include <event2/event.h>

#include "config.h"
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
    /* inspect */
    int version;
    const char *state, *fp;
    long long created_ms;
};

typedef void (*store_cb)(void *arg, const struct store_result *res);

struct store *store_open(struct event_base *base, const struct config *c,
                         struct stats *stats);
void store_close(struct store *st);
/* 1 when connected and the scripts are loaded */
int store_ready(const struct store *st);
/* This connection (one per process) counts and logs Redis restarts. */
void store_watch_restarts(struct store *st);
/* Keep *flag equal to store_ready() (atomically), for another thread. */
void store_publish_ready(struct store *st, int *flag);
/* the reason it is not ready, for /readyz and logs */
const char *store_status(const struct store *st);
void store_set_timeout(struct store *st, int64_t ms);

void store_claim(struct store *st, const char *rkey, const char *token,
                 const char *fp, int64_t lease_ms, store_cb cb, void *arg);
void store_complete(struct store *st, const char *rkey, const char *token,
                    int status, const char *headers, size_t hlen,
                    struct evbuffer *body, int64_t ttl_ms,
                    store_cb cb, void *arg);
void store_mark_unstored(struct store *st, const char *rkey,
                         const char *token, int64_t ttl_ms, store_cb cb,
                         void *arg);
void store_release(struct store *st, const char *rkey, const char *token,
                   store_cb cb, void *arg);
void store_info(struct store *st, store_cb cb, void *arg);
/* The admin API: a record's fields (SR_RECORD / SR_NONE), and its removal
 * (SR_OK deleted, SR_LOST there was none). */
void store_inspect(struct store *st, const char *rkey, store_cb cb, void *arg);
void store_forget(struct store *st, const char *rkey, store_cb cb, void *arg);

#endif
