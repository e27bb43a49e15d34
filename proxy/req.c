/*
 * req.c: a client request's life (see req.h for how the request files
 * share the work).
 *
 *   client ──> req_start: route? ── none ──────────────> FORWARDING (body streamed)
 *                 │ protected: key, size, upgrade checks         │ answer head
 *                 v                                              v
 *              READING (whole body) ──> fingerprint ──>      STREAMING ──> DONE
 *                 CLAIMING ── Redis: claim-or-fetch ── done ──> replay ──> DONE
 *                    │ claimed    │ in flight (wait) ──> WAITING ─┘ (claim again)
 *                    v            └ mismatch / in flight ──> 409 ──> DONE
 *                 FORWARDING ── whole answer ──> STORING (complete / release)
 *                    │                              └──> answer ──> DONE
 *                    ├ answer over max_store ──> STORING (mark unstored) ──> STREAMING
 *                    └ refused ──> STORING (release) ──> 502 ──> DONE
 *
 * The client may leave at any time (conn's `gone`): the request is
 * orphaned (r->conn = NULL). A protected one goes on and stores its
 * answer; a pass-through one stops its upstream call. req_finish() counts,
 * logs and frees once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "clock.h"
#include "fmt.h"
#include "key.h"
#include "log.h"
#include "req.h"
#include "route.h"

#ifdef IDEM_FAULT_POINTS
void req_fault_point(const char *name)
{
    const char *at = getenv("IDEMPROXY_CRASH_AT");
    if (at != NULL && strcmp(at, name) == 0) {
        log_say(LOG_ERROR, "fault point reached, aborting", name);
        abort();
    }
}

static void on_fault_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    req_fault_point(arg);
}

/* after_send: 100 ms after the request was handed to the upstream, so its
 * bytes have left (the test upstream is told to be slower than that). */
void req_fault_point_later(struct proxy *px, const char *name)
{
    const char *at = getenv("IDEMPROXY_CRASH_AT");
    if (at != NULL && strcmp(at, name) == 0) {
        struct timeval tv = { 0, 100 * 1000 };
        event_base_once(px->base, -1, EV_TIMEOUT, on_fault_timer, (void *)name, &tv);
    }
}
#endif

static void req_free(struct req *r);

static const char *const state_name[] = {
    "new", "reading", "claiming", "waiting", "forwarding", "storing", "streaming", "done"
};

/* The one place a request changes state; an illegal move is a bug. */
void req_set_state(struct req *r, enum req_state to)
{
    static const unsigned allowed[] = {
        [RS_NEW] = 1u << RS_READING | 1u << RS_FORWARDING | 1u << RS_DONE,
        [RS_READING] = 1u << RS_CLAIMING | 1u << RS_FORWARDING | 1u << RS_DONE,
        [RS_CLAIMING] = 1u << RS_FORWARDING | 1u << RS_WAITING | 1u << RS_DONE,
        [RS_WAITING] = 1u << RS_CLAIMING | 1u << RS_DONE,
        [RS_FORWARDING] = 1u << RS_STORING | 1u << RS_STREAMING | 1u << RS_DONE,
        [RS_STORING] = 1u << RS_STREAMING | 1u << RS_DONE,
        [RS_STREAMING] = 1u << RS_DONE,
        [RS_DONE] = 0,
    };
    if (!(allowed[r->state] & (1u << to))) {
        struct logline l;
        log_begin(&l, LOG_ERROR, "illegal request state change");
        log_str(&l, "from", state_name[r->state]);
        log_str(&l, "to", state_name[to]);
        log_end(&l);
        abort();
    }
    r->state = to;
}

void req_set_claimed(struct req *r, int claimed)
{
    if (r->claimed == (unsigned)(claimed != 0))
        return;
    r->claimed = claimed != 0;
    if (claimed)
        TAILQ_INSERT_TAIL(&r->px->owners, r, owners_link);
    else
        TAILQ_REMOVE(&r->px->owners, r, owners_link);
}

/* The oldest request's start, for idemproxy_oldest_request_age_seconds. */
static void publish_oldest(struct proxy *px)
{
    struct req *first = TAILQ_FIRST(&px->live);
    STAT_SET(px->stats.oldest_us, first ? (int64_t)(first->t0 * 1e3) : 0);
}

/*
 * A struct req is 2 KB (most of it the key buffer): glibc serves that
 * from its large bins and first consolidates the small chunks other frees
 * leave behind, once per request. A worker keeps a few freed ones instead.
 */
enum { SPARE_MAX = 64 };

static struct req *req_get(struct proxy *px)
{
    struct req *r = px->spare;
    if (r == NULL)
        return calloc(1, sizeof(*r));
    px->spare = r->next_spare;
    px->n_spare--;
    memset(r, 0, sizeof(*r));
    return r;
}

static void req_put(struct req *r)
{
    struct proxy *px = r->px;
#ifdef __SANITIZE_ADDRESS__
    free(r);                    /* so ASan still sees a use after free */
    return;
#endif
    if (px->n_spare >= SPARE_MAX) {
        free(r);
        return;
    }
    r->next_spare = px->spare;
    px->spare = r;
    px->n_spare++;
}

void req_free_all(struct proxy *px)
{
    struct req *r;
    while ((r = TAILQ_FIRST(&px->live)) != NULL) {
        r->conn = NULL;
        STAT_ADD(px->stats.in_flight, -1);
        px->inflight--;
        req_free(r);
    }
}

void req_spares_free(struct proxy *px)
{
    struct req *r;
    while ((r = px->spare) != NULL) {
        px->spare = r->next_spare;
        free(r);
    }
    px->n_spare = 0;
}

static void req_free(struct req *r)
{
    struct proxy *px = r->px;
    int was_oldest = TAILQ_FIRST(&px->live) == r;
    TAILQ_REMOVE(&px->live, r, live_link);
    if (was_oldest)
        publish_oldest(px);
    req_set_claimed(r, 0);
    if (r->owner != NULL)
        TAILQ_REMOVE(&r->owner->waiters, r, waiters_link);
    /* waiters claim again now: the answer is stored, or the key is free */
    struct req *w;
    while ((w = TAILQ_FIRST(&r->waiters)) != NULL) {
        TAILQ_REMOVE(&r->waiters, w, waiters_link);
        w->owner = NULL;
        struct timeval zero = { 0, 0 };
        evtimer_add(w->wait_timer, &zero);
    }
    if (r->wait_timer != NULL)
        event_free(r->wait_timer);
    if (r->call != NULL)
        upstream_call_abort(r->call);
    if (r->body != NULL)
        evbuffer_free(r->body);
    if (r->up_body != NULL)
        evbuffer_free(r->up_body);
    free(r->up_headers);
    free(r->fwd_headers);
    conn_head_free(&r->cr);
    cfgref_put(r->cfg);
    req_put(r);
}

const char *req_header(const struct req *r, const char *name, int *count)
{
    return key_header(r->cr.req.h, r->cr.req.nh, name, count);
}

static void req_log(struct req *r)
{
    struct logline l;
    int level = r->status >= 500 ? LOG_WARN : LOG_INFO;
    if (!log_enabled(level))
        return;
    log_begin(&l, level, "request");
    log_str(&l, "rid", r->rid);
    log_str(&l, "route", r->route ? r->route->name : "");
    log_str(&l, "method", r->cr.req.method);
    log_str(&l, "outcome", r->outcome == OUT__COUNT ? "incomplete"
                                                    : stats_outcome_name(r->outcome));
    if (r->observed)
        log_str(&l, "would", stats_outcome_name(r->would));
    log_int(&l, "status", r->status);
    if (r->rhash[0])
        log_strn(&l, "key_hash", r->rhash, 12);
    if (r->conn == NULL)
        log_str(&l, "client", "gone");
    log_ms(&l, "ms", now_ms() - r->t0);
    if (r->redis_ms > 0)
        log_ms(&l, "redis_ms", r->redis_ms);
    if (r->upstream_ms > 0)
        log_ms(&l, "upstream_ms", r->upstream_ms);
    log_end(&l);
}

void req_log_say(const struct req *r, int level, const char *msg, const char *detail)
{
    struct logline l;
    if (!log_enabled(level))
        return;
    log_begin(&l, level, msg);
    log_str(&l, "rid", r->rid);
    if (r->rhash[0])
        log_strn(&l, "key_hash", r->rhash, 12);
    if (detail != NULL)
        log_str(&l, "detail", detail);
    log_end(&l);
}

void req_count(struct req *r)
{
    if (r->counted || r->outcome == OUT__COUNT)  /* (a request never whole is not) */
        return;
    r->counted = 1;
    stats_count(&r->px->stats, r->stats_idx, r->outcome);
}

void req_finish(struct req *r, int status)
{
    struct proxy *px = r->px;
    req_set_state(r, RS_DONE);
    r->status = status;
    req_count(r);
    req_log(r);
    STAT_ADD(px->stats.in_flight, -1);
    px->inflight--;
    req_free(r);
    proxy_request_done(px);
}

void req_error(struct req *r, int status, const char *code,
               enum stats_outcome outcome, long retry_after)
{
    r->outcome = outcome;
    req_count(r);
    if (r->conn != NULL) {
        int problem = r->route != NULL && r->route->error_format == ERROR_FORMAT_PROBLEM;
        conn_error(r->conn, status, code, problem, retry_after, r->head);
    }
    req_finish(r, status);
}

/* ---- the connection's callbacks ---- */

static void on_body(void *x, struct evbuffer *data)
{
    struct req *r = x;
    r->body_seen += (int64_t)evbuffer_get_length(data);
    if (r->state != RS_READING) {
        req_forward_body(r, data);
        return;
    }
    if (r->body_seen > r->route->max_body) {
        evbuffer_drain(data, evbuffer_get_length(data));
        req_refuse(r, 413, "PAYLOAD_TOO_LARGE", OUT_too_large, 0);
        return;
    }
    if (evbuffer_add_buffer(r->body, data) != 0) {
        evbuffer_drain(data, evbuffer_get_length(data));
        req_log_say(r, LOG_ERROR, "out of memory reading a body", NULL);
        req_refuse(r, 503, "STORE_UNAVAILABLE", OUT_store_error, 1);
    }
}

static void on_body_end(void *x)
{
    struct req *r = x;
    r->body_ended = 1;
    if (r->state == RS_READING)
        req_protect_body_end(r);
    else
        req_forward_body_end(r);
}

static void on_drained(void *x)
{
    req_forward_drained(x);
}

static void on_gone(void *x)
{
    struct req *r = x;
    r->conn = NULL;
    switch (r->state) {
    case RS_NEW:
    case RS_READING:
        /* it left before its body was whole: nothing was claimed or
         * forwarded, and there is no outcome to count */
        r->outcome = OUT__COUNT;
        req_finish(r, 499);
        return;
    case RS_FORWARDING:
    case RS_STREAMING:
        req_forward_gone(r);
        return;
    default:
        return;                   /* orphaned: it goes on, and stores */
    }
}

static const struct conn_ops req_conn_ops = { on_body, on_body_end, on_drained, on_gone };

void req_attach(struct req *r)
{
    if (r->conn != NULL)
        conn_attach(r->conn, &req_conn_ops, r);
}

/* ---- the start ---- */

static void copy_rid(struct req *r)
{
    const char *given = req_header(r, "X-Request-Id", NULL);
    if (given != NULL && strlen(given) < sizeof(r->rid) && *given) {
        int ok = 1;
        for (const char *p = given; *p; p++)
            if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
                ok = 0;
        if (ok) {
            memcpy(r->rid, given, strlen(given) + 1);
            return;
        }
    }
    memcpy(r->rid, r->px->token_prefix, 8);
    r->rid[8 + fmt_hex(r->rid + 8, ++r->px->rid_seq, 8)] = '\0';
}

/*
 * Content on GET, HEAD, DELETE or TRACE has no defined meaning, and an
 * upstream that does not read it takes it for the next request on its
 * connection (one idemproxy may reuse for another client): refused, as RFC
 * 9110 9.3.1 allows, with the connection closed.
 */
static int takes_no_body(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "DELETE") == 0 ||
           strcmp(m, "TRACE") == 0;
}

void req_start(struct proxy *px, struct conn *c, struct conn_request *cr)
{
    struct req *r = req_get(px);
    if (r == NULL) {
        conn_head_free(cr);
        log_say(LOG_ERROR, "request refused: out of memory", conn_peer(c));
        conn_error(c, 503, "STORE_UNAVAILABLE", 0, 1, 0);
        return;
    }
    r->px = px;
    r->conn = c;
    r->cr = *cr;
    r->cfg = cfgref_get(px->cfg);
    r->t0 = now_ms();
    r->state = RS_NEW;
    r->outcome = OUT_passthrough;
    r->up_length = -1;
    r->head = strcmp(cr->req.method, "HEAD") == 0;
    /* kept: a client that leaves while its claim waits is still forwarded
     * with its address */
    snprintf(r->peer, sizeof(r->peer), "%s", conn_peer(c));
    TAILQ_INIT(&r->waiters);
    px->inflight++;
    STAT_ADD(px->stats.in_flight, 1);
    TAILQ_INSERT_TAIL(&px->live, r, live_link);
    if (TAILQ_FIRST(&px->live) == r)
        publish_oldest(px);
    copy_rid(r);

    const struct config *cf = r->cfg->c;
    int n_keys = 0;
    req_header(r, "Idempotency-Key", &n_keys);
    if (n_keys > 1) {
        /* which one is the key? another proxy may take the other: refused
         * on every path, never forwarded */
        conn_close_after(c);
        req_error(r, 400, "BAD_REQUEST", OUT_bad_request, 0);
        return;
    }
    if (cr->req.body != H1_BODY_NONE && takes_no_body(cr->req.method)) {
        conn_close_after(c);
        req_error(r, 400, "BAD_REQUEST", OUT_bad_request, 0);
        return;
    }
    int bad = 0;
    r->route = route_for(cf, cr->req.method, cr->req.target, &bad);
    if (bad) {
        req_error(r, 400, "BAD_REQUEST", OUT_bad_request, 0);
        return;
    }
    if (r->route == NULL) {
        if (cf->passthrough_max_body > 0 && cr->req.body == H1_BODY_LENGTH &&
            cr->req.length > cf->passthrough_max_body) {
            req_error(r, 413, "PAYLOAD_TOO_LARGE", OUT_too_large, 0);
            return;
        }
        req_forward(r);
        return;
    }
    r->stats_idx = r->cfg->stats_idx[r->route - cf->routes];
    if (req_protect_start(r) != 0)
        return;
    r->whole = 1;
    r->body = evbuffer_new();
    if (r->body == NULL) {
        req_log_say(r, LOG_ERROR, "out of memory reading a body", NULL);
        req_refuse(r, 503, "STORE_UNAVAILABLE", OUT_store_error, 1);
        return;
    }
    req_set_state(r, RS_READING);
    req_attach(r);
}
