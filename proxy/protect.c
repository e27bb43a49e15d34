/*
 * protect.c: what a protected route adds to a request (see req.h).
 *
 * Owns: the checks before anything runs (an Upgrade, the key, its
 * syntax, the body's size, the scope), the fingerprint, the claim and its
 * outcomes (replay, mismatch, in flight: reject or wait, unreadable
 * record, store down), and what follows the upstream's answer: stored
 * before it is sent, released (a status that may be retried), or marked
 * "executed, not stored" and then streamed (larger than max_store, or
 * Redis refused it). Observe mode counts what enforcement would have done
 * and forwards as if the route were not protected.
 * Does not own: talking to the upstream (forward.c) or to Redis (store.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "clock.h"
#include "fmt.h"
#include "http.h"
#include "key.h"
#include "log.h"
#include "record.h"
#include "req.h"

static void req_claim(struct req *r);

/* ---- refusals ---- */

int req_observed(struct req *r, enum stats_outcome would)
{
    if (r->route == NULL || r->route->mode != MODE_OBSERVE)
        return 0;
    stats_count_observed(&r->px->stats, r->stats_idx, would);
    r->observed = 1;
    r->would = would;
    r->protected_ = 0;
    r->outcome = OUT_passthrough;
    req_forward(r);
    return 1;
}

void req_refuse(struct req *r, int status, const char *code,
                enum stats_outcome outcome, long retry_after)
{
    if (!req_observed(r, outcome))
        req_error(r, status, code, outcome, retry_after);
}

/* ---- before the body ---- */

int req_protect_start(struct req *r)
{
    const struct route *rt = r->route;
    if (r->cr.req.upgrade) {
        req_refuse(r, 400, "UPGRADE_NOT_ALLOWED", OUT_bad_request, 0);
        return 1;
    }
    const char *raw = req_header(r, "Idempotency-Key", NULL);
    if (raw == NULL) {
        if (rt->require_key) {
            req_refuse(r, 400, "IDEMPOTENCY_KEY_REQUIRED", OUT_key_missing, 0);
            return 1;
        }
        req_forward(r);           /* row 2: unprotected, untouched */
        return 1;
    }
    if (key_parse(raw, (size_t)rt->key_max_len, r->key, sizeof(r->key),
                  &r->keylen) != KEY_OK) {
        req_refuse(r, 400, "IDEMPOTENCY_KEY_INVALID", OUT_key_invalid, 0);
        return 1;
    }
    if (r->cr.req.body == H1_BODY_LENGTH && r->cr.req.length > rt->max_body) {
        req_refuse(r, 413, "PAYLOAD_TOO_LARGE", OUT_too_large, 0);
        return 1;
    }
    return 0;
}

/* ---- the body is whole: fingerprint and claim ---- */

void req_protect_body_end(struct req *r)
{
    const struct route *rt = r->route;
    size_t blen = evbuffer_get_length(r->body);
    const char *bytes = blen ? (const char *)evbuffer_pullup(r->body, -1) : "";
    if (bytes == NULL) {
        req_log_say(r, LOG_ERROR, "out of memory reading a body", NULL);
        req_refuse(r, 503, "STORE_UNAVAILABLE", OUT_store_error, 1);
        return;
    }
    struct key_req in = {
        r->cr.req.method, r->cr.req.method_len, r->cr.req.target,
        r->cr.req.h, r->cr.req.nh, bytes, blen
    };
    switch (key_request(r->px->fp, rt, &in, r->scope, sizeof(r->scope), r->fp)) {
    case KEY_REQ_OK:
        break;
    case KEY_REQ_NOMEM:
        req_log_say(r, LOG_ERROR, "out of memory fingerprinting a request", NULL);
        req_refuse(r, 503, "STORE_UNAVAILABLE", OUT_store_error, 1);
        return;
    case KEY_REQ_BAD_JSON:
        req_refuse(r, 400, "INVALID_JSON_BODY", OUT_bad_request, 0);
        return;
    case KEY_REQ_TWO_SCOPES:
        req_refuse(r, 400, "BAD_REQUEST", OUT_bad_request, 0);
        return;
    case KEY_REQ_NO_SCOPE:
        req_refuse(r, 400, "SCOPE_REQUIRED", OUT_scope_missing, 0);
        return;
    }
    key_record_name(r->cfg->c->key_prefix, rt->name, r->scope, r->key, r->keylen,
                    r->rkey, sizeof(r->rkey), r->rhash);
    r->protected_ = 1;
    req_set_state(r, RS_CLAIMING);
    req_claim(r);
}

/* ---- replies from the store ---- */

static void req_replay(struct req *r, const struct store_result *res)
{
    size_t pos = 0;
    const char *name, *value;
    size_t nlen, vlen;
    int rc;
    /* the record is checked whole before a byte goes out */
    while ((rc = record_headers_next(res->headers, res->headers_len, &pos,
                                     &name, &nlen, &value, &vlen)) == 1)
        ;
    if (rc < 0 || res->status < 100 || res->status > 599) {
        req_log_say(r, LOG_ERROR, "stored record has malformed headers", NULL);
        req_error(r, 500, "STORE_UNAVAILABLE", OUT_store_error, 0);
        return;
    }
    int status = r->route->replay_status ? r->route->replay_status : res->status;
    r->outcome = OUT_replay;
    if (r->conn != NULL) {
        struct conn_head h;
        conn_head_begin(&h, r->conn, status);
        pos = 0;
        while (record_headers_next(res->headers, res->headers_len, &pos,
                                   &name, &nlen, &value, &vlen) == 1) {
            /* (records stored before it was dropped may hold an upstream's own) */
            if (HTTP_IS(name, nlen, "Idempotent-Replayed"))
                continue;
            req_head_add(r, &h, name, nlen, value, vlen);
        }
        conn_head_add(&h, "Idempotent-Replayed", 19, "true", 4);
        req_count(r);
        int bodiless = status < 200 || status == 204 || status == 304;
        conn_head_end(&h, bodiless ? CONN_BODY_NONE : CONN_BODY_LENGTH,
                      (int64_t)res->body_len);
        if (!bodiless && !r->head)
            conn_send_bytes(r->conn, res->body, res->body_len);
        conn_done(r->conn);
    }
    req_finish(r, status);
}

static struct req *find_owner(struct proxy *px, const char *rkey)
{
    struct req *o;
    TAILQ_FOREACH(o, &px->owners, owners_link)
        if (strcmp(o->rkey, rkey) == 0)
            return o;
    return NULL;
}

static void on_wait_timer(evutil_socket_t fd, short what, void *arg)
{
    struct req *r = arg;
    (void)fd; (void)what;
    if (r->owner != NULL) {
        TAILQ_REMOVE(&r->owner->waiters, r, waiters_link);
        r->owner = NULL;
    }
    if (now_ms() >= r->wait_deadline) {
        req_error(r, 409, "REQUEST_PROCESSING", OUT_in_flight, 1);
        return;
    }
    req_set_state(r, RS_CLAIMING);
    req_claim(r);
}

/* in_flight = wait: until the local owner finishes, or polling Redis. */
static void req_wait(struct req *r)
{
    struct proxy *px = r->px;
    double now = now_ms();
    req_set_state(r, RS_WAITING);
    if (r->wait_timer == NULL) {
        r->wait_timer = evtimer_new(px->base, on_wait_timer, r);
        if (r->wait_timer == NULL) {
            req_error(r, 409, "REQUEST_PROCESSING", OUT_in_flight, 1);
            return;
        }
        r->wait_deadline = now + (double)r->route->wait_timeout_ms;
        r->wait_backoff_ms = 25;
    }
    double left = r->wait_deadline - now;
    double delay;
    struct req *o = find_owner(px, r->rkey);
    if (o != NULL) {                   /* the owner wakes us when it is done */
        r->owner = o;
        TAILQ_INSERT_TAIL(&o->waiters, r, waiters_link);
        delay = left;
    } else {                           /* owned elsewhere: ask again, backing off */
        delay = r->wait_backoff_ms < left ? r->wait_backoff_ms : left;
        r->wait_backoff_ms = r->wait_backoff_ms * 2 > 500 ? 500 : r->wait_backoff_ms * 2;
    }
    if (delay < 0)
        delay = 0;
    struct timeval tv = conf_ms_tv((int64_t)delay);
    evtimer_add(r->wait_timer, &tv);
}

static void on_claim(void *arg, const struct store_result *res)
{
    struct req *r = arg;
    const struct route *rt = r->route;
    r->redis_ms += now_ms() - r->t_redis;

    switch (res->kind) {
    case SR_CLAIMED:
        r->claim = *res->claim;
        req_set_claimed(r, 1);
        r->outcome = OUT_first;
        if (rt->mode == MODE_OBSERVE) {
            stats_count_observed(&r->px->stats, r->stats_idx, OUT_first);
            r->observed = 1;
            r->would = OUT_first;
        }
        req_fault_point("after_claim");
        req_forward(r);
        return;
    case SR_DONE:
        if (!req_observed(r, OUT_replay))
            req_replay(r, res);
        return;
    case SR_MISMATCH:
        req_refuse(r, rt->mismatch_status, "IDEMPOTENCY_KEY_MISMATCH", OUT_mismatch, 0);
        return;
    case SR_UNSTORED:
        req_refuse(r, 409, "RESPONSE_NOT_STORED", OUT_not_stored, 0);
        return;
    case SR_UNREADABLE:
        /* Redis answered, and the key holds something this version cannot
         * use: a newer layout, another type, a state it does not know. It
         * may be a record of a request that ran, so it is never forwarded
         * around, whatever on_store_error says. */
        req_log_say(r, LOG_ERROR, "record unreadable by this version, request refused",
                    res->err);
        req_refuse(r, 503, "STORE_UNAVAILABLE", OUT_store_error, 1);
        return;
    case SR_INFLIGHT:
        if (req_observed(r, OUT_in_flight))
            return;
        if (rt->in_flight == IN_FLIGHT_WAIT) {
            req_wait(r);
            return;
        }
        req_error(r, 409, "REQUEST_PROCESSING", OUT_in_flight,
                  retry_after_in_flight(&r->px->up_time[r->stats_idx], rt->lease_ms,
                                        res->pttl_ms));
        return;
    default:
        if (req_observed(r, OUT_store_error))
            return;
        if (rt->on_store_error == STORE_ERROR_PASS) {
            req_log_say(r, LOG_WARN, "store unavailable, forwarding unprotected", res->err);
            stats_count(&r->px->stats, r->stats_idx, OUT_store_error);
            r->protected_ = 0;
            r->outcome = OUT_passthrough;
            req_forward(r);
            return;
        }
        req_error(r, 503, "STORE_UNAVAILABLE", OUT_store_error, 1);
        return;
    }
}

static void req_claim(struct req *r)
{
    /* a fresh owner token for every claim attempt: the worker's 16
     * characters, then 16 hex digits */
    char *t = r->claim.token;
    memcpy(t, r->px->token_prefix, 16);
    t[16 + fmt_hex(t + 16, ++r->px->token_seq, 16)] = '\0';
    r->t_redis = now_ms();
    store_claim(r->px->store, r->rkey, t, r->fp, r->route->lease_ms, on_claim, r);
}

/* ---- after the upstream's answer ---- */

/*
 * After a release or an unstored mark: the kept answer goes to the client,
 * whole if the upstream is done, else its head and what came so far, the
 * rest streamed.
 */
static void req_pass_kept(struct req *r)
{
    if (r->up_finished) {
        if (r->up_err != UP_OK) {
            /* cut short while Redis was asked: it ran, the answer is lost */
            req_error(r, 502, "UPSTREAM_ERROR", OUT_upstream_error, 0);
            return;
        }
        req_send_kept(r, 1);
        req_finish(r, r->up_status);
        return;
    }
    if (r->conn == NULL) {            /* to nobody: the record is marked */
        upstream_call_abort(r->call);
        r->call = NULL;
        req_finish(r, r->up_status);
        return;
    }
    req_send_kept(r, 0);
    r->keep = 0;
    req_set_state(r, RS_STREAMING);
    upstream_call_pause(r->call, 0);
}

static void on_unstored(void *arg, const struct store_result *res)
{
    struct req *r = arg;
    r->redis_ms += now_ms() - r->t_redis;
    if (res->kind != SR_OK)
        req_log_say(r, LOG_ERROR,
                    "answer not stored and not marked; a retry after the lease executes again",
                    res->err ? res->err : "claim lost");
    r->outcome = OUT_not_stored;
    req_pass_kept(r);
}

static void req_mark_unstored(struct req *r)
{
    r->t_redis = now_ms();
    store_mark_unstored(r->px->store, r->rkey, &r->claim, r->route->ttl_ms, on_unstored, r);
}

static void on_released(void *arg, const struct store_result *res)
{
    struct req *r = arg;
    (void)res;   /* a failed release leaves the claim to expire with its lease */
    r->redis_ms += now_ms() - r->t_redis;
    req_set_claimed(r, 0);
    if (!r->keep) {                   /* refused: the request never left */
        req_error(r, 502, "UPSTREAM_UNAVAILABLE", OUT_upstream_error, 0);
        return;
    }
    req_pass_kept(r);
}

static void req_release(struct req *r)
{
    r->t_redis = now_ms();
    store_release(r->px->store, r->rkey, &r->claim, on_released, r);
}

void req_protect_too_large(struct req *r)
{
    const struct route *rt = r->route;
    if (r->call != NULL) {
        upstream_call_pause(r->call, 1);
        upstream_call_each_wait(r->call);  /* no longer bounded by the lease */
    }
    req_set_state(r, RS_STORING);
    if (r->up_status < 600 && rt->release[r->up_status]) {
        r->outcome = OUT_upstream_error;
        req_release(r);
        return;
    }
    req_mark_unstored(r);
}

static void on_stored(void *arg, const struct store_result *res)
{
    struct req *r = arg;
    r->redis_ms += now_ms() - r->t_redis;
    switch (res->kind) {
    case SR_OK:
        req_fault_point("after_store");
        break;
    case SR_OOM:
        req_mark_unstored(r);         /* Redis refused it: it ran */
        return;
    case SR_LOST:
        req_log_say(r, LOG_WARN, "claim lost before the answer was stored (lease too short?)",
                    NULL);
        r->outcome = OUT_not_stored;
        break;
    default:
        req_log_say(r, LOG_ERROR, "answer not stored", res->err);
        r->outcome = OUT_not_stored;
        break;
    }
    req_send_kept(r, 1);
    req_finish(r, r->up_status);
}

void req_protect_answer(struct req *r, enum upstream_err err)
{
    if (r->state == RS_STORING) {     /* a release or mark is under way */
        r->up_finished = 1;
        r->up_err = err;
        return;
    }
    req_set_state(r, RS_STORING);
    if (err == UP_REFUSED) {
        req_release(r);               /* never left: a retry executes */
        return;
    }
    if (err == UP_TOO_LARGE) {
        /* it answered, so it ran; an answer that cannot be read is lost */
        r->up_finished = 1;
        r->up_err = err;
        req_mark_unstored(r);
        return;
    }
    if (err != UP_OK) {
        /* unknown outcome: keep the claim until its lease ends */
        req_error(r, err == UP_TIMEOUT ? 504 : 502,
                  err == UP_TIMEOUT ? "UPSTREAM_TIMEOUT" : "UPSTREAM_ERROR",
                  OUT_upstream_error, 0);
        return;
    }
    r->up_finished = 1;
    r->t_redis = now_ms();
    store_complete(r->px->store, r->rkey, &r->claim, r->up_status,
                   r->up_headers ? r->up_headers : "", r->up_hlen,
                   r->up_body, r->route->ttl_ms, on_stored, r);
}
