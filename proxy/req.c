/*
 * req.c: one client request, from evhttp's callback to its one answer.
 *
 *   client ──> checks (key, size, scope, fingerprint)
 *                 │ no route: PASS ──────────────────────────┐
 *                 v                                           v
 *             CLAIMING ── Redis: claim-or-fetch ──> done ──> REPLY (replay)
 *                 │ claimed        │ in flight (wait) ──> WAITING ─┘ (claim again)
 *                 v                └ mismatch / in flight ──> REPLY (409)
 *             FORWARDING ── upstream ──> STORING (complete / unstored /
 *                 │                        release) ──> REPLY (answer)
 *                 └ refused ──> RELEASING ──> REPLY (502)
 *
 * The client may leave at any time: libevent then detaches the
 * evhttp_request (evcon == NULL) and frees it in our evhttp_send_reply, so
 * the request goes on, stores the answer, and "sends" it to nobody.
 * req_finish() sends exactly once and frees once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "errcode.h"
#include "fmt.h"
#include "http.h"
#include "jcanon.h"
#include "key.h"
#include "log.h"
#include "proxy.h"
#include "record.h"
#include "route.h"
#include "store.h"
#include "upstream.h"

enum req_state {
    RS_NEW,        /* checks not done yet */
    RS_CLAIMING,   /* claim-or-fetch sent to Redis */
    RS_WAITING,    /* in_flight = wait: waiting for the owner's answer */
    RS_FORWARDING, /* sent upstream */
    RS_STORING,    /* upstream answered; complete/unstored/release sent */
    RS_DONE        /* answer sent; about to be freed */
};

static const char *const state_name[] = {
    "new", "claiming", "waiting", "forwarding", "storing", "done"
};

struct req {
    struct proxy *px;
    struct req *next_spare;          /* in px->spare */
    struct cfgref *cfg;              /* keeps route alive */
    const struct route *route;       /* NULL: pass-through */
    int stats_idx;
    struct evhttp_request *er;       /* client's; never touched after send */
    enum req_state state;
    enum stats_outcome outcome;
    int status;                      /* answer status, for the log */
    char rid[40];
    char peer[48];                   /* the client's address, for X-Forwarded-For */
    char key[1025];
    size_t keylen;
    char scope[256];
    char fp[33];
    char rkey[128];
    char rhash[33];
    char token[33];
    double t0, t_redis, redis_ms, t_up, upstream_ms;
    unsigned claimed:1;              /* we hold the claim */
    unsigned protected_:1;           /* this request was claimed or checked */
    unsigned observed:1;             /* observe mode: `would` is set */
    enum stats_outcome would;        /* what enforcement would have answered */
    /* the upstream's answer, between FORWARDING and the reply */
    int up_status;
    struct evbuffer *up_body;
    char *up_headers;
    size_t up_hlen;
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

static void req_claim(struct req *r);
static void req_forward(struct req *r);

#ifdef IDEM_FAULT_POINTS
/*
 * Test builds only (make FAULTS=1): IDEMPROXY_CRASH_AT=<point> aborts the
 * process at that point, so the fault suite can kill it exactly there.
 */
static void fault_point(const char *name)
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
    fault_point(arg);
}

/* after_send: 100 ms after the request was handed to the upstream, so its
 * bytes have left (the test upstream is told to be slower than that). */
static void fault_point_later(struct proxy *px, const char *name)
{
    const char *at = getenv("IDEMPROXY_CRASH_AT");
    if (at != NULL && strcmp(at, name) == 0) {
        struct timeval tv = { 0, 100 * 1000 };
        event_base_once(px->base, -1, EV_TIMEOUT, on_fault_timer, (void *)name, &tv);
    }
}
#else
#define fault_point(name) ((void)0)
#define fault_point_later(px, name) ((void)0)
#endif

/* The one place a request changes state; an illegal move is a bug. */
static void req_set_state(struct req *r, enum req_state to)
{
    static const unsigned allowed[] = {
        [RS_NEW] = 1u << RS_CLAIMING | 1u << RS_FORWARDING | 1u << RS_DONE,
        [RS_CLAIMING] = 1u << RS_FORWARDING | 1u << RS_WAITING | 1u << RS_DONE,
        [RS_WAITING] = 1u << RS_CLAIMING | 1u << RS_DONE,
        [RS_FORWARDING] = 1u << RS_STORING | 1u << RS_DONE,
        [RS_STORING] = 1u << RS_DONE,
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

/* The oldest request's start, for idemproxy_oldest_request_age_seconds. */
static void publish_oldest(struct proxy *px)
{
    struct req *first = TAILQ_FIRST(&px->live);
    STAT_SET(px->stats.oldest_us, first ? (int64_t)(first->t0 * 1e3) : 0);
}

/*
 * A struct req is 1.8 KB (most of it the key buffer): glibc serves that
 * from its large bins and first consolidates the small chunks evhttp's
 * frees leave behind, once per request. A worker keeps a few freed ones
 * instead.
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
    int was_oldest = TAILQ_FIRST(&r->px->live) == r;
    TAILQ_REMOVE(&r->px->live, r, live_link);
    if (was_oldest)
        publish_oldest(r->px);
    if (r->claimed)
        TAILQ_REMOVE(&r->px->owners, r, owners_link);
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
    if (r->up_body != NULL)
        evbuffer_free(r->up_body);
    free(r->up_headers);
    cfgref_put(r->cfg);
    req_put(r);
}

/* evhttp's method as a row of lib/http.c's method table; NULL for one
 * idemproxy does not serve (server.c lets none of those through). */
static const struct http_method *req_http_method(struct evhttp_request *er)
{
    switch (evhttp_request_get_command(er)) {
    case EVHTTP_REQ_GET: return http_method_of(M_GET);
    case EVHTTP_REQ_POST: return http_method_of(M_POST);
    case EVHTTP_REQ_HEAD: return http_method_of(M_HEAD);
    case EVHTTP_REQ_PUT: return http_method_of(M_PUT);
    case EVHTTP_REQ_DELETE: return http_method_of(M_DELETE);
    case EVHTTP_REQ_OPTIONS: return http_method_of(M_OPTIONS);
    case EVHTTP_REQ_PATCH: return http_method_of(M_PATCH);
    default: return NULL;
    }
}

static const char *method_name(struct evhttp_request *er)
{
    const struct http_method *m = req_http_method(er);
    return m != NULL ? m->name : "OTHER";
}

static void req_log(struct req *r)
{
    struct logline l;
    int level = r->status >= 500 ? LOG_WARN : LOG_INFO;
    if (!log_enabled(level))
        return;
    const char *m = method_name(r->er);
    log_begin(&l, level, "request");
    log_str(&l, "rid", r->rid);
    log_str(&l, "route", r->route ? r->route->name : "");
    log_str(&l, "method", m);
    log_str(&l, "outcome", stats_outcome_name(r->outcome));
    if (r->observed)
        log_str(&l, "would", stats_outcome_name(r->would));
    log_int(&l, "status", r->status);
    if (r->rhash[0])
        log_strn(&l, "key_hash", r->rhash, 12);
    if (evhttp_request_get_connection(r->er) == NULL)
        log_str(&l, "client", "gone");
    log_ms(&l, "ms", now_ms() - r->t0);
    if (r->redis_ms > 0)
        log_ms(&l, "redis_ms", r->redis_ms);
    if (r->upstream_ms > 0)
        log_ms(&l, "upstream_ms", r->upstream_ms);
    log_end(&l);
}

/* libevent wrote the whole answer: a draining process may exit after it. */
static void on_sent(struct evhttp_request *er, void *arg)
{
    struct proxy *px = arg;
    server_reply_pending(px, er, 0);
    px->unsent--;
    proxy_request_done(px);
}

/*
 * The Content-Length of an answer with a body, written here with fmt_dec:
 * evhttp would add the same header, formatted with snprintf (about 700
 * instructions per answer). Where evhttp writes none (HEAD, 1xx, 204, 304)
 * neither does this.
 */
static void req_add_length(struct req *r, int status)
{
    if (status < 200 || status == 204 || status == 304 ||
        evhttp_request_get_command(r->er) == EVHTTP_REQ_HEAD)
        return;
    char n[24];
    n[fmt_dec(n, evbuffer_get_length(evhttp_request_get_output_buffer(r->er)))] = '\0';
    evhttp_add_header(evhttp_request_get_output_headers(r->er), "Content-Length", n);
}

/* Send the answer (output headers and buffer already filled), count, free. */
static void req_finish(struct req *r, int status)
{
    struct proxy *px = r->px;
    req_set_state(r, RS_DONE);
    r->status = status;
    stats_count(&px->stats, r->stats_idx, r->outcome);
    req_log(r);
    struct evhttp_connection *conn = evhttp_request_get_connection(r->er);
    if (conn != NULL) {
        server_reading_done(px, conn);
        if (px->draining)
            evhttp_add_header(evhttp_request_get_output_headers(r->er),
                              "Connection", "close");
        evhttp_request_set_on_complete_cb(r->er, on_sent, px);
        px->unsent++;
        server_reply_pending(px, r->er, 1);
    }
    req_add_length(r, status);
    evhttp_send_reply(r->er, status, NULL, NULL);
    if (conn != NULL)
        evcon_write_now(conn);  /* may run on_sent; r->er is gone after it */
    STAT_ADD(px->stats.in_flight, -1);
    px->inflight--;
    req_free(r);
    proxy_request_done(px);
}

/*
 * A Date header on an answer idemproxy writes itself (a replay: the record
 * keeps no Date; an error). evhttp would add one too, formatting the time
 * for every answer (about 3,400 instructions); this is formatted once a
 * second per worker.
 */
static void req_add_date(struct req *r)
{
    struct proxy *px = r->px;
    struct timeval tv;
    if (event_base_gettimeofday_cached(px->base, &tv) != 0)
        return;                 /* evhttp adds its own */
    if (tv.tv_sec != px->date_sec) {
        struct tm tm;
        if (gmtime_r(&tv.tv_sec, &tm) == NULL ||
            strftime(px->date, sizeof(px->date), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
            return;
        px->date_sec = tv.tv_sec;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->er), "Date", px->date);
}

/* An answer idemproxy makes itself, in the route's error format. */
static void req_error(struct req *r, int status, const char *code,
                      enum stats_outcome outcome, long retry_after)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->er);
    struct evbuffer *b = evhttp_request_get_output_buffer(r->er);
    const char *msg = errcode_message(code);

    evbuffer_drain(b, evbuffer_get_length(b));
    evhttp_clear_headers(h);
    if (r->route != NULL && r->route->error_format == ERROR_FORMAT_PROBLEM) {
        evhttp_add_header(h, "Content-Type", "application/problem+json");
        evbuffer_add_printf(b, "{\"type\":\"about:blank\",\"title\":\"%s\","
                            "\"status\":%d,\"detail\":\"%s\",\"code\":\"%s\"}",
                            code, status, msg, code);
    } else {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                            code, msg);
    }
    if (retry_after > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%ld", retry_after);
        evhttp_add_header(h, "Retry-After", ra);
    }
    /* evhttp would send it after a HEAD too, where the client reads the
     * bytes as the start of its next answer */
    if (evhttp_request_get_command(r->er) == EVHTTP_REQ_HEAD)
        evbuffer_drain(b, evbuffer_get_length(b));
    req_add_date(r);
    r->outcome = outcome;
    req_finish(r, status);
}

/* ---- the upstream's answer to the client, and to Redis ---- */

/* The answer carries idemproxy's own Idempotent-Replayed (not in observe
 * mode, nor when forwarded unprotected); an upstream's is dropped then. */
static int req_says_replayed(const struct req *r)
{
    return r->protected_ && r->route->mode != MODE_OBSERVE;
}

/*
 * A header named in one of the message's Connection headers is hop-by-hop
 * too. The Connection values are found once per message (not once per
 * header), from evhttp's list (a client's request) or the upstream's answer.
 */
struct hop_filter {
    const char **conn;          /* the Connection values */
    int n_conn, cap;
    const char *fixed[8];
};

static void hop_filter_init(struct hop_filter *f)
{
    f->conn = f->fixed;
    f->n_conn = 0;
    f->cap = 8;
}

static void hop_filter_note(struct hop_filter *f, const char *name, const char *value)
{
    if (!HTTP_IS(name, strlen(name), "Connection"))
        return;
    if (f->n_conn == f->cap) {
        const char **p = malloc((size_t)f->cap * 2 * sizeof(*p));
        if (p == NULL)
            return;         /* then this value's names are forwarded */
        memcpy(p, f->conn, (size_t)f->n_conn * sizeof(*p));
        if (f->conn != f->fixed)
            free(f->conn);
        f->conn = p;
        f->cap *= 2;
    }
    f->conn[f->n_conn++] = value;
}

static void hop_filter_done(struct hop_filter *f)
{
    if (f->conn != f->fixed)
        free(f->conn);
}

/* Is this header hop-by-hop in the filter's message (so not forwarded)? */
static int hop_filter_drops(const struct hop_filter *f, const char *name)
{
    if (http_header_is_hop(name))
        return 1;
    if (f->n_conn == 0)
        return 0;
    size_t n = strlen(name);
    for (int i = 0; i < f->n_conn; i++)
        if (http_token_in_list(f->conn[i], name, n))
            return 1;
    return 0;
}

/* Copy the upstream answer's headers to the client, and encode the stored ones. */
static void req_take_answer(struct req *r, const struct upstream_resp *resp)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->er);
    size_t cap = 0;
    struct hop_filter hop;

    hop_filter_init(&hop);
    for (int i = 0; i < resp->nh; i++) {
        cap += strlen(resp->h[i].name) + strlen(resp->h[i].value) + 4;
        hop_filter_note(&hop, resp->h[i].name, resp->h[i].value);
    }
    if (r->claimed) {
        r->up_headers = malloc(cap + 1);
        r->up_hlen = 0;
    }
    /* the answer's own size where no body is sent (RFC 9110 8.6) */
    int keep_length = resp->status == 304 ||
                      evhttp_request_get_command(r->er) == EVHTTP_REQ_HEAD;
    int ours = req_says_replayed(r);
    for (int i = 0; i < resp->nh; i++) {
        const char *k = resp->h[i].name, *v = resp->h[i].value;
        size_t kn = resp->h[i].name_len;
        if (keep_length && HTTP_IS(k, kn, "Content-Length")) {
            evhttp_add_header(out, k, v);
            continue;
        }
        if (hop_filter_drops(&hop, k) ||
            (ours && HTTP_IS(k, kn, "Idempotent-Replayed")))
            continue;
        evhttp_add_header(out, k, v);
        if (r->up_headers != NULL && record_header_stored(k, r->route->store_set_cookie))
            record_headers_add(r->up_headers, cap + 1, &r->up_hlen, k, v);
    }
    hop_filter_done(&hop);
    r->up_status = resp->status;
    if (r->claimed) {           /* kept until it is stored */
        r->up_body = evbuffer_new();
        evbuffer_add_buffer(r->up_body, resp->body);
    } else {
        evbuffer_add_buffer(evhttp_request_get_output_buffer(r->er), resp->body);
    }
}

/* Send what the upstream said (headers already copied), with its body. */
static void req_send_answer(struct req *r)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->er);
    if (req_says_replayed(r))
        evhttp_add_header(out, "Idempotent-Replayed", "false");
    if (r->up_body != NULL)
        evbuffer_add_buffer(evhttp_request_get_output_buffer(r->er), r->up_body);
    req_finish(r, r->up_status);
}

static void on_stored(void *arg, const struct store_result *res);

static void on_unstored(void *arg, const struct store_result *res)
{
    struct req *r = arg;
    r->redis_ms += now_ms() - r->t_redis;
    if (res->kind != SR_OK) {
        struct logline l;
        log_begin(&l, LOG_ERROR, "answer not stored and not marked; a retry after the lease executes again");
        log_str(&l, "rid", r->rid);
        log_strn(&l, "key_hash", r->rhash, 12);
        log_str(&l, "detail", res->err ? res->err : "claim lost");
        log_end(&l);
    }
    r->outcome = OUT_not_stored;
    if (r->up_body == NULL) {       /* no answer to pass on: it was too large */
        req_error(r, 502, "UPSTREAM_ERROR", OUT_not_stored, 0);
        return;
    }
    req_send_answer(r);
}

static void req_mark_unstored(struct req *r)
{
    r->t_redis = now_ms();
    store_mark_unstored(r->px->store, r->rkey, r->token, r->route->ttl_ms,
                        on_unstored, r);
}

static void on_stored(void *arg, const struct store_result *res)
{
    struct req *r = arg;
    r->redis_ms += now_ms() - r->t_redis;
    switch (res->kind) {
    case SR_OK:
        fault_point("after_store");
        break;
    case SR_OOM:
        req_mark_unstored(r);
        return;
    case SR_LOST: {
        struct logline l;
        log_begin(&l, LOG_WARN, "claim lost before the answer was stored (lease too short?)");
        log_str(&l, "rid", r->rid);
        log_strn(&l, "key_hash", r->rhash, 12);
        log_end(&l);
        r->outcome = OUT_not_stored;
        break;
    }
    default: {
        struct logline l;
        log_begin(&l, LOG_ERROR, "answer not stored");
        log_str(&l, "rid", r->rid);
        log_strn(&l, "key_hash", r->rhash, 12);
        log_str(&l, "detail", res->err);
        log_end(&l);
        r->outcome = OUT_not_stored;
        break;
    }
    }
    req_send_answer(r);
}

static void on_released(void *arg, const struct store_result *res)
{
    struct req *r = arg;
    (void)res;   /* a failed release leaves the claim to expire with its lease */
    r->redis_ms += now_ms() - r->t_redis;
    r->claimed = 0;
    TAILQ_REMOVE(&r->px->owners, r, owners_link);
    if (r->up_body == NULL)
        req_error(r, 502, "UPSTREAM_UNAVAILABLE", OUT_upstream_error, 0);
    else
        req_send_answer(r);
}

static void req_release(struct req *r)
{
    r->t_redis = now_ms();
    store_release(r->px->store, r->rkey, r->token, on_released, r);
}

static void on_upstream(void *arg, const struct upstream_resp *resp, enum upstream_err err)
{
    struct req *r = arg;
    r->upstream_ms = now_ms() - r->t_up;
    stats_observe(&r->px->stats.upstream, r->upstream_ms / 1e3);
    if (err == UP_OK && r->route != NULL)
        retry_observe(&r->px->up_time[r->stats_idx], r->upstream_ms);
    req_set_state(r, RS_STORING);

    if (err != UP_OK) {
        if (!r->claimed) {
            req_error(r, err == UP_REFUSED ? 502 : err == UP_TIMEOUT ? 504 : 502,
                      err == UP_REFUSED ? "UPSTREAM_UNAVAILABLE"
                      : err == UP_TIMEOUT ? "UPSTREAM_TIMEOUT" : "UPSTREAM_ERROR",
                      OUT_upstream_error, 0);
        } else if (err == UP_REFUSED) {
            req_release(r);                    /* never left: a retry executes */
        } else if (err == UP_TOO_LARGE) {
            req_mark_unstored(r);              /* it executed */
        } else {
            /* unknown outcome: keep the claim until its lease ends */
            req_error(r, err == UP_TIMEOUT ? 504 : 502,
                      err == UP_TIMEOUT ? "UPSTREAM_TIMEOUT" : "UPSTREAM_ERROR",
                      OUT_upstream_error, 0);
        }
        return;
    }
    req_take_answer(r, resp);
    if (r->claimed)
        fault_point("after_answer");
    if (!r->claimed) {
        req_send_answer(r);
        return;
    }
    const struct route *rt = r->route;
    if (r->up_status < 600 && rt->release[r->up_status]) {
        r->outcome = OUT_upstream_error;
        req_release(r);
        return;
    }
    if ((int64_t)evbuffer_get_length(r->up_body) > rt->max_store) {
        req_mark_unstored(r);
        return;
    }
    r->t_redis = now_ms();
    store_complete(r->px->store, r->rkey, r->token, r->up_status,
                   r->up_headers ? r->up_headers : "", r->up_hlen,
                   r->up_body, rt->ttl_ms, on_stored, r);
}

/* ---- forwarding ---- */

static enum evhttp_cmd_type req_method(struct req *r)
{
    return evhttp_request_get_command(r->er);
}

/* Bytes for the upstream request, gathered on the stack and added to the
 * call's buffer in a few copies rather than one per piece. */
struct wbuf {
    struct evbuffer *to;
    size_t n;
    char b[4096];
};

static void wb_put(struct wbuf *w, const char *s, size_t n)
{
    if (n > sizeof(w->b) - w->n) {
        evbuffer_add(w->to, w->b, w->n);
        w->n = 0;
        if (n > sizeof(w->b)) {
            evbuffer_add(w->to, s, n);
            return;
        }
    }
    memcpy(w->b + w->n, s, n);
    w->n += n;
}

static void wb_str(struct wbuf *w, const char *s)
{
    wb_put(w, s, strlen(s));
}

static void wb_header(struct wbuf *w, const char *name, const char *value)
{
    wb_str(w, name);
    wb_put(w, ": ", 2);
    wb_str(w, value);
    wb_put(w, "\r\n", 2);
}

/*
 * Frame the client's request for the upstream: its method and URI as
 * received, its end-to-end headers, X-Forwarded-For/-Proto, an
 * X-Request-Id if it had none, a Content-Length for the body evhttp read.
 */
static void req_forward(struct req *r)
{
    struct proxy *px = r->px;
    struct upstream_call *call = upstream_call_new(px->up, on_upstream, r);
    if (call == NULL) {
        req_error(r, 502, "UPSTREAM_UNAVAILABLE", OUT_upstream_error, 0);
        return;
    }
    enum evhttp_cmd_type m = req_method(r);
    struct evkeyvalq *in = evhttp_request_get_input_headers(r->er);
    struct evkeyval *kv;
    int n_xff = 0, has_host = 0, has_rid = 0;
    struct wbuf w;
    w.to = upstream_call_buffer(call);
    w.n = 0;

    wb_str(&w, method_name(r->er));
    wb_put(&w, " ", 1);
    wb_str(&w, evhttp_request_get_uri(r->er));
    wb_str(&w, " HTTP/1.1\r\n");

    struct hop_filter hop;
    hop_filter_init(&hop);
    TAILQ_FOREACH(kv, in, next)
        hop_filter_note(&hop, kv->key, kv->value);
    TAILQ_FOREACH(kv, in, next) {
        if (hop_filter_drops(&hop, kv->key))
            continue;
        size_t kn = strlen(kv->key);
        if (HTTP_IS(kv->key, kn, "X-Forwarded-For")) {
            n_xff++;            /* all of them, below */
            continue;
        }
        if (HTTP_IS(kv->key, kn, "X-Forwarded-Proto") || HTTP_IS(kv->key, kn, "Expect"))
            continue;
        has_host |= HTTP_IS(kv->key, kn, "Host");
        has_rid |= HTTP_IS(kv->key, kn, "X-Request-Id");
        wb_header(&w, kv->key, kv->value);
    }
    if (!has_host)
        wb_header(&w, "Host", "localhost");
    /* repeated fields are one list (RFC 9110 5.3): every hop so far, then
     * this client */
    wb_str(&w, "X-Forwarded-For: ");
    if (n_xff > 0)
        TAILQ_FOREACH(kv, in, next)
            if (HTTP_IS(kv->key, strlen(kv->key), "X-Forwarded-For") &&
                !hop_filter_drops(&hop, kv->key)) {
                wb_str(&w, kv->value);
                wb_put(&w, ", ", 2);
            }
    hop_filter_done(&hop);
    wb_str(&w, r->peer);
    wb_str(&w, "\r\nX-Forwarded-Proto: http\r\n");
    if (!has_rid)
        wb_header(&w, "X-Request-Id", r->rid);
    struct evbuffer *body = evhttp_request_get_input_buffer(r->er);
    size_t blen = evbuffer_get_length(body);
    if (blen > 0 || m == EVHTTP_REQ_POST || m == EVHTTP_REQ_PUT || m == EVHTTP_REQ_PATCH) {
        char buf[48] = "Content-Length: ";
        size_t n = 16 + fmt_dec(buf + 16, blen);
        buf[n++] = '\r';
        buf[n++] = '\n';
        wb_put(&w, buf, n);
    }
    wb_put(&w, "\r\n", 2);
    evbuffer_add(w.to, w.b, w.n);
    evbuffer_add_buffer(w.to, body);

    req_set_state(r, RS_FORWARDING);
    r->t_up = now_ms();
    int claimed = r->claimed;   /* r is freed if the call fails at once */
    upstream_call_send(call, m == EVHTTP_REQ_HEAD, r->cfg->c->upstream_timeout_ms);
    if (claimed)
        fault_point_later(px, "after_send");
}

/* ---- replies from the store ---- */

static void req_replay(struct req *r, const struct store_result *res)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->er);
    size_t pos = 0;
    const char *name, *value;
    size_t nlen, vlen;
    int rc;

    while ((rc = record_headers_next(res->headers, res->headers_len, &pos,
                                     &name, &nlen, &value, &vlen)) == 1) {
        /* (records stored before it was dropped may hold an upstream's own) */
        if (HTTP_IS(name, nlen, "Idempotent-Replayed"))
            continue;
        /* name and value, each terminated, on the stack unless long */
        char buf[1280];
        char *nv = nlen + vlen + 2 <= sizeof(buf) ? buf : malloc(nlen + vlen + 2);
        if (nv == NULL) {
            log_say(LOG_ERROR, "out of memory replaying a record", r->rhash);
            req_error(r, 503, "STORE_UNAVAILABLE", OUT_store_error, 1);
            return;
        }
        memcpy(nv, name, nlen);
        nv[nlen] = '\0';
        memcpy(nv + nlen + 1, value, vlen);
        nv[nlen + 1 + vlen] = '\0';
        evhttp_add_header(out, nv, nv + nlen + 1);
        if (nv != buf)
            free(nv);
    }
    if (rc < 0 || res->status < 100 || res->status > 599) {
        log_say(LOG_ERROR, "stored record has malformed headers", r->rhash);
        req_error(r, 500, "STORE_UNAVAILABLE", OUT_store_error, 0);
        return;
    }
    evhttp_add_header(out, "Idempotent-Replayed", "true");
    req_add_date(r);
    evbuffer_add(evhttp_request_get_output_buffer(r->er), res->body, res->body_len);
    r->outcome = OUT_replay;
    req_finish(r, r->route->replay_status ? r->route->replay_status : res->status);
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

static void req_wait(struct req *r)
{
    struct proxy *px = r->px;
    double now = now_ms();
    req_set_state(r, RS_WAITING);
    if (r->wait_timer == NULL) {
        r->wait_timer = evtimer_new(px->base, on_wait_timer, r);
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

/*
 * mode = observe: count (and log) what enforcement would have answered,
 * then forward the request as if the route were not protected. Returns 1
 * when it did, 0 on an enforcing route (the caller answers).
 */
static int req_observed(struct req *r, enum stats_outcome would)
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

static void on_claim(void *arg, const struct store_result *res)
{
    struct req *r = arg;
    const struct route *rt = r->route;
    r->redis_ms += now_ms() - r->t_redis;

    switch (res->kind) {
    case SR_CLAIMED:
        r->claimed = 1;
        TAILQ_INSERT_TAIL(&r->px->owners, r, owners_link);
        r->outcome = OUT_first;
        if (rt->mode == MODE_OBSERVE) {
            stats_count_observed(&r->px->stats, r->stats_idx, OUT_first);
            r->observed = 1;
            r->would = OUT_first;
        }
        fault_point("after_claim");
        req_forward(r);
        return;
    case SR_DONE:
        if (!req_observed(r, OUT_replay))
            req_replay(r, res);
        return;
    case SR_MISMATCH:
        if (!req_observed(r, OUT_mismatch))
            req_error(r, rt->mismatch_status, "IDEMPOTENCY_KEY_MISMATCH", OUT_mismatch, 0);
        return;
    case SR_UNSTORED:
        if (!req_observed(r, OUT_not_stored))
            req_error(r, 409, "RESPONSE_NOT_STORED", OUT_not_stored, 0);
        return;
    case SR_UNREADABLE: {
        /* Redis answered, and the key holds something this version cannot
         * use: a newer layout, another type, a state it does not know. It
         * may be a record of a request that ran, so it is never forwarded
         * around, whatever on_store_error says. */
        struct logline l;
        log_begin(&l, LOG_ERROR, "record unreadable by this version, request refused");
        log_str(&l, "rid", r->rid);
        log_strn(&l, "key_hash", r->rhash, 12);
        log_str(&l, "detail", res->err);
        log_end(&l);
        if (!req_observed(r, OUT_store_error))
            req_error(r, 503, "STORE_UNAVAILABLE", OUT_store_error, 1);
        return;
    }
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
            struct logline l;
            log_begin(&l, LOG_WARN, "store unavailable, forwarding unprotected");
            log_str(&l, "rid", r->rid);
            log_str(&l, "detail", res->err);
            log_end(&l);
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

/* src into dst[size], cut to fit, always terminated (snprintf's "%s") */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void req_claim(struct req *r)
{
    /* a fresh owner token for every claim attempt: the worker's 16
     * characters, then 16 hex digits */
    memcpy(r->token, r->px->token_prefix, 16);
    r->token[16 + fmt_hex(r->token + 16, ++r->px->token_seq, 16)] = '\0';
    r->t_redis = now_ms();
    store_claim(r->px->store, r->rkey, r->token, r->fp, r->route->lease_ms,
                on_claim, r);
}

/* ---- checks before any Redis traffic ---- */

/* Memory ran out while a body was read for its fingerprint: nothing has
 * run, so a retry is safe (observe mode forwards it as it is). */
static void req_body_oom(struct req *r, const char *what)
{
    log_say(LOG_ERROR, what, r->rid);
    if (!req_observed(r, OUT_store_error))
        req_error(r, 503, "STORE_UNAVAILABLE", OUT_store_error, 1);
}

/* How many times name is in the headers; *first: its first value;
 * *total (if not NULL): the length of all its values. */
static int header_count(struct evkeyvalq *in, const char *name, const char **first,
                        size_t *total)
{
    struct evkeyval *kv;
    int n = 0;
    *first = NULL;
    if (total != NULL)
        *total = 0;
    TAILQ_FOREACH(kv, in, next)
        if (strcasecmp(kv->key, name) == 0) {
            if (n++ == 0)
                *first = kv->value;
            if (total != NULL)
                *total += strlen(kv->value);
        }
    return n;
}

/*
 * A fingerprinted header: every value, in order, joined as one list (RFC
 * 9110 5.3), so that a second Authorization changes the fingerprint; one
 * value hashes as it always did, an absent header as absent. -1: out of
 * memory.
 */
static int fp_header(struct fp_state *s, struct evkeyvalq *in, const char *name)
{
    const char *first;
    size_t total;
    int n = header_count(in, name, &first, &total);
    if (n <= 1) {
        fp_field_opt(s, first);
        return 0;
    }
    struct evkeyval *kv;
    char *list = malloc(total + 2 * (size_t)(n - 1));
    if (list == NULL)
        return -1;
    size_t at = 0;
    TAILQ_FOREACH(kv, in, next)
        if (strcasecmp(kv->key, name) == 0) {
            if (at > 0) {
                memcpy(list + at, ", ", 2);
                at += 2;
            }
            size_t vl = strlen(kv->value);
            memcpy(list + at, kv->value, vl);
            at += vl;
        }
    fp_field(s, list, at);
    free(list);
    return 0;
}

/* The fingerprint and scope. 0 ok, else the request was answered. */
static int req_fingerprint(struct req *r)
{
    const struct route *rt = r->route;
    struct evbuffer *body = evhttp_request_get_input_buffer(r->er);
    size_t blen = evbuffer_get_length(body);
    const char *bytes = blen ? (const char *)evbuffer_pullup(body, -1) : "";
    if (bytes == NULL) {
        req_body_oom(r, "out of memory reading a body");
        return -1;
    }
    enum { FP_OK, FP_NOMEM, FP_BAD_JSON, FP_TWO_SCOPES, FP_NO_SCOPE } why = FP_OK;
    const char *oom = "out of memory reading a JSON body";
    int canon = rt->fingerprint_body == FP_BODY_JSON;
    struct jcanon jc;
    json_t *doc = NULL;
    int jrc = canon ? jcanon(&jc, bytes, blen) : JCANON_OK;

    if (jrc == JCANON_NOMEM) {
        why = FP_NOMEM;
    } else if (jrc != JCANON_OK) {
        why = FP_BAD_JSON;
    } else if (rt->scope == SCOPE_JSON) {
        json_error_t jerr;
        doc = json_loadb(bytes, blen, JSON_DECODE_ANY, &jerr);
        if (doc == NULL)
            why = FP_BAD_JSON;
        else if (!json_is_object(doc) ||
                 key_scope_json(doc, rt->scope_name, r->scope, sizeof(r->scope)) != 0)
            why = FP_NO_SCOPE;
        json_decref(doc);
    } else if (rt->scope == SCOPE_HEADER) {
        const char *v;
        int n = header_count(evhttp_request_get_input_headers(r->er), rt->scope_name,
                             &v, NULL);
        /* twice: which one is the tenant? the upstream may read the other
         * (or both, joined): refused, as two Idempotency-Keys are */
        if (n > 1)
            why = FP_TWO_SCOPES;
        else if (v == NULL || *v == '\0' || strlen(v) >= sizeof(r->scope))
            why = FP_NO_SCOPE;
        else
            copy_str(r->scope, sizeof(r->scope), v);
    }

    if (why == FP_OK) {
        struct fp_state *s = r->px->fp;
        struct evkeyvalq *in = evhttp_request_get_input_headers(r->er);
        const char *uri = evhttp_request_get_uri(r->er);
        const struct http_method *hm = req_http_method(r->er);
        char m[16];
        m[fmt_dec(m, hm != NULL ? hm->fp : 0)] = '\0';
        fp_reset(s);
        fp_field(s, m, strlen(m));
        fp_field(s, uri, strlen(uri));
        fp_field(s, r->scope, strlen(r->scope));
        for (int i = 0; i < rt->n_fp_headers && why == FP_OK; i++)
            if (fp_header(s, in, rt->fp_headers[i]) != 0) {
                why = FP_NOMEM;
                oom = "out of memory fingerprinting a header";
            }
        if (why == FP_OK) {
            if (canon)
                fp_field(s, jc.text, jc.len);
            else
                fp_field(s, bytes, blen);
            fp_hex(fp_digest(s), r->fp);
        }
    }
    if (canon)
        jcanon_done(&jc);

    switch (why) {
    case FP_OK:
        return 0;
    case FP_NOMEM:
        req_body_oom(r, oom);
        break;
    case FP_BAD_JSON:
        if (!req_observed(r, OUT_bad_request))
            req_error(r, 400, "INVALID_JSON_BODY", OUT_bad_request, 0);
        break;
    case FP_TWO_SCOPES:
        if (!req_observed(r, OUT_bad_request))
            req_error(r, 400, "BAD_REQUEST", OUT_bad_request, 0);
        break;
    case FP_NO_SCOPE:
        if (!req_observed(r, OUT_scope_missing))
            req_error(r, 400, "SCOPE_REQUIRED", OUT_scope_missing, 0);
        break;
    }
    return -1;
}

static void req_make_rid(struct req *r)
{
    const char *given = evhttp_find_header(evhttp_request_get_input_headers(r->er),
                                           "X-Request-Id");
    if (given != NULL && strlen(given) < sizeof(r->rid)) {
        int ok = 1;
        for (const char *p = given; *p; p++)
            if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
                ok = 0;
        if (ok && *given) {
            copy_str(r->rid, sizeof(r->rid), given);
            return;
        }
    }
    memcpy(r->rid, r->px->token_prefix, 8);
    r->rid[8 + fmt_hex(r->rid + 8, ++r->px->rid_seq, 8)] = '\0';
}

void req_start(struct proxy *px, struct evhttp_request *er)
{
    struct req *r = req_get(px);
    if (r == NULL) {
        evhttp_send_error(er, 503, NULL);
        return;
    }
    r->px = px;
    r->er = er;
    r->cfg = cfgref_get(px->cfg);
    r->t0 = now_ms();
    r->state = RS_NEW;
    r->outcome = OUT_passthrough;
    TAILQ_INIT(&r->waiters);
    px->inflight++;
    STAT_ADD(px->stats.in_flight, 1);
    TAILQ_INSERT_TAIL(&px->live, r, live_link);
    if (TAILQ_FIRST(&px->live) == r)
        publish_oldest(px);
    req_make_rid(r);
    /* now, while the connection is sure to be there: a client that leaves
     * while its request waits on Redis is still forwarded with it */
    char *peer = NULL;
    ev_uint16_t port;
    struct evhttp_connection *cc = evhttp_request_get_connection(er);
    if (cc != NULL)
        evhttp_connection_get_peer(cc, &peer, &port);
    copy_str(r->peer, sizeof(r->peer), peer ? peer : "unknown");

    const struct config *c = r->cfg->c;
    /* the path of an origin-form target as sent: libevent parses
     * "//v1/orders" as a host "v1" and a path "/orders" */
    const char *target = evhttp_request_get_uri(er);
    const char *path = NULL;
    size_t plen = 0;
    if (target != NULL && target[0] == '/') {
        path = target;
        plen = strcspn(target, "?#");
    } else {
        const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(er);
        path = u ? evhttp_uri_get_path(u) : NULL;
        plen = path ? strlen(path) : 0;
    }
    const struct http_method *hm = req_http_method(er);
    unsigned mbit = hm != NULL ? hm->bit : 0;
    if (path != NULL && route_path_is_normal(path, plen)) {
        r->route = route_match(c, mbit, path, plen);
    } else if (path != NULL) {
        /* matched decoded and normalised (route_path_normalize) */
        char stack[512];
        char *norm = plen <= sizeof(stack) ? stack : malloc(plen);
        size_t nlen = 0;
        if (norm == NULL || route_path_normalize(path, plen, norm, &nlen) != 0) {
            if (norm != stack)
                free(norm);
            req_error(r, 400, "BAD_REQUEST", OUT_bad_request, 0);   /* %00, or no memory */
            return;
        }
        r->route = route_match(c, mbit, norm, nlen);
        if (norm != stack)
            free(norm);
    }
    size_t blen = evbuffer_get_length(evhttp_request_get_input_buffer(er));
    if (r->route == NULL) {
        r->stats_idx = 0;
        if ((int64_t)blen > c->max_body) {
            req_error(r, 413, "PAYLOAD_TOO_LARGE", OUT_too_large, 0);
            return;
        }
        req_forward(r);
        return;
    }
    const struct route *rt = r->route;
    r->stats_idx = r->cfg->stats_idx[rt - c->routes];

    const char *raw = evhttp_find_header(evhttp_request_get_input_headers(er),
                                         "Idempotency-Key");
    if (raw == NULL) {
        if (rt->require_key) {
            if (!req_observed(r, OUT_key_missing))
                req_error(r, 400, "IDEMPOTENCY_KEY_REQUIRED", OUT_key_missing, 0);
            return;
        }
        req_forward(r);
        return;
    }
    if (key_parse(raw, (size_t)rt->key_max_len, r->key, sizeof(r->key),
                  &r->keylen) != KEY_OK) {
        if (!req_observed(r, OUT_key_invalid))
            req_error(r, 400, "IDEMPOTENCY_KEY_INVALID", OUT_key_invalid, 0);
        return;
    }
    if ((int64_t)blen > rt->max_body) {
        if (!req_observed(r, OUT_too_large))
            req_error(r, 413, "PAYLOAD_TOO_LARGE", OUT_too_large, 0);
        return;
    }
    if (req_fingerprint(r) != 0)
        return;
    key_record_name(c->key_prefix, rt->name, r->scope, r->key, r->keylen,
                    r->rkey, sizeof(r->rkey), r->rhash);
    r->protected_ = 1;
    req_set_state(r, RS_CLAIMING);
    req_claim(r);
}
