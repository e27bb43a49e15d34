/*
 * forward.c: a request's exchange with the upstream (see req.h).
 *
 * Owns: the request framed for the upstream (its method and target as
 * sent, its end-to-end headers, X-Forwarded-For/-Proto, an X-Request-Id
 * if it had none, the body's framing), the body streamed as it arrives or
 * given whole, the answer's head filtered for the client (hop-by-hop
 * fields dropped, Idempotent-Replayed ours, Access-Control-Expose-Headers
 * naming it), the answer's body streamed to the client with backpressure
 * both ways, or kept for protect.c to store, and the tunnel after a 101.
 * Does not own: what a protected route decides (protect.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "clock.h"
#include "fmt.h"
#include "http.h"
#include "log.h"
#include "record.h"
#include "req.h"

/* ---- the request, to the upstream ---- */

/* The upstream request's bytes, gathered on the stack (netio_gather). */
static void wb_put(struct netio_gather *w, const char *s, size_t n)
{
    netio_gather_put(w, s, n);
}

static void wb_str(struct netio_gather *w, const char *s)
{
    wb_put(w, s, strlen(s));
}

static void wb_header(struct netio_gather *w, const char *name, size_t nlen, const char *value,
                      size_t vlen)
{
    wb_put(w, name, nlen);
    wb_put(w, ": ", 2);
    wb_put(w, value, vlen);
    wb_put(w, "\r\n", 2);
}

static void wb_length(struct netio_gather *w, uint64_t n)
{
    char buf[48] = "Content-Length: ";
    size_t k = 16 + fmt_dec(buf + 16, n);
    buf[k++] = '\r';
    buf[k++] = '\n';
    wb_put(w, buf, k);
}

/* The request line and headers for the upstream. */
static void write_head(struct req *r, struct netio_gather *w, int whole)
{
    const struct h1_request *q = &r->cr.req;
    int n_xff = 0, has_host = 0, has_rid = 0;
    struct http_hop hop;

    wb_put(w, q->method, q->method_len);
    wb_put(w, " ", 1);
    wb_put(w, q->target, q->target_len);
    wb_str(w, " HTTP/1.1\r\n");
    http_hop_init(&hop, q->h, q->nh);
    for (int i = 0; i < q->nh; i++) {
        const struct h1_header *f = &q->h[i];
        size_t kn = f->name_len;
        if (q->upgrade && HTTP_IS(f->name, kn, "Upgrade")) {
            wb_header(w, f->name, kn, f->value, f->value_len);
            continue;             /* the one hop-by-hop field carried */
        }
        if (http_hop_drops(&hop, f->name, kn))
            continue;
        if (HTTP_IS(f->name, kn, "X-Forwarded-For")) {
            n_xff++;              /* all of them, below */
            continue;
        }
        if (HTTP_IS(f->name, kn, "X-Forwarded-Proto") || HTTP_IS(f->name, kn, "Expect"))
            continue;
        has_host |= HTTP_IS(f->name, kn, "Host");
        has_rid |= HTTP_IS(f->name, kn, "X-Request-Id");
        wb_header(w, f->name, kn, f->value, f->value_len);
    }
    if (q->upgrade)
        wb_str(w, "Connection: Upgrade\r\n");
    if (!has_host)
        wb_str(w, "Host: localhost\r\n");
    /* repeated fields are one list (RFC 9110 5.3): every hop so far, then
     * this client */
    wb_str(w, "X-Forwarded-For: ");
    if (n_xff > 0)
        for (int i = 0; i < q->nh; i++)
            if (HTTP_IS(q->h[i].name, q->h[i].name_len, "X-Forwarded-For")) {
                wb_put(w, q->h[i].value, q->h[i].value_len);
                wb_put(w, ", ", 2);
            }
    wb_str(w, r->peer);
    wb_str(w, "\r\nX-Forwarded-Proto: http\r\n");
    if (!has_rid)
        wb_header(w, "X-Request-Id", 12, r->rid, strlen(r->rid));
    int wants_length = strcmp(q->method, "POST") == 0 || strcmp(q->method, "PUT") == 0 ||
                       strcmp(q->method, "PATCH") == 0;
    if (whole) {
        size_t blen = r->body != NULL ? evbuffer_get_length(r->body) : 0;
        if (blen > 0 || wants_length)
            wb_length(w, blen);
    } else if (q->body == H1_BODY_LENGTH) {
        wb_length(w, (uint64_t)q->length);
    } else if (q->body == H1_BODY_CHUNKED) {
        wb_str(w, "Transfer-Encoding: chunked\r\n");
        r->up_chunked = 1;
    } else if (wants_length) {
        wb_length(w, 0);
    }
    wb_put(w, "\r\n", 2);
    netio_gather_flush(w);
}

static void up_on_head(void *arg, const struct h1_response *resp);
static void up_on_body(void *arg, struct evbuffer *data);
static void up_on_done(void *arg, enum upstream_err err);
static void up_on_drained(void *arg);
static const struct upstream_ops up_ops = { up_on_head, up_on_body, up_on_done, up_on_drained };

/* Body bytes for the upstream, chunk-framed if the request goes chunked. */
static void give_upstream(struct req *r, struct evbuffer *data)
{
    size_t n = evbuffer_get_length(data);
    if (n == 0)
        return;
    if (r->up_chunked) {
        char line[24];
        struct evbuffer *b = r->px->scratch2;
        evbuffer_add(b, line, h1_chunk_size_line(line, n));
        evbuffer_add_buffer(b, data);
        evbuffer_add(b, "\r\n", 2);
        upstream_call_write(r->call, b);
    } else {
        upstream_call_write(r->call, data);
    }
}

void req_forward(struct req *r)
{
    struct proxy *px = r->px;
    /* the body is sent whole when it was read whole (a protected route);
     * else it follows as it comes, what was already read first */
    int whole = r->whole && r->body_ended;
    r->call = upstream_call_new(px->up, &up_ops, r);
    if (r->call == NULL) {
        req_error(r, 502, "UPSTREAM_UNAVAILABLE", OUT_upstream_error, 0);
        return;
    }
    struct netio_gather w;
    w.to = upstream_call_buffer(r->call);
    w.n = 0;
    write_head(r, &w, whole);
    unsigned flags = r->head ? UPC_HEAD : 0;
    if (r->claimed)
        flags |= UPC_WHOLE;       /* the lease was sized for the whole call */
    if (r->cr.req.upgrade && r->route == NULL)
        flags |= UPC_UPGRADE;
    if (whole) {
        evbuffer_add_buffer(w.to, r->body);
    } else {
        if (r->cr.req.body != H1_BODY_NONE && !r->body_ended)
            flags |= UPC_MORE;
        if (r->body != NULL && evbuffer_get_length(r->body) > 0) {
            struct evbuffer *b = r->body;
            r->body = NULL;       /* what was read: first */
            if (r->up_chunked) {
                char line[24];
                evbuffer_add(w.to, line, h1_chunk_size_line(line, evbuffer_get_length(b)));
                evbuffer_add_buffer(w.to, b);
                evbuffer_add(w.to, "\r\n", 2);
            } else {
                evbuffer_add_buffer(w.to, b);
            }
            evbuffer_free(b);
        }
        if (r->body_ended && r->up_chunked)
            evbuffer_add(w.to, "0\r\n\r\n", 5);
    }
    req_set_state(r, RS_FORWARDING);
    r->t_up = now_ms();
    upstream_call_send(r->call, flags, r->cfg->c->upstream_timeout_ms);
    req_attach(r);                /* (if not yet: a pass-through's body) */
    if (r->claimed)
        req_fault_point_later(px, "after_send");
}

void req_forward_body(struct req *r, struct evbuffer *data)
{
    const struct config *c = r->cfg->c;
    if (r->call == NULL) {        /* the upstream answered and is done */
        evbuffer_drain(data, evbuffer_get_length(data));
        return;
    }
    if (r->route == NULL && c->passthrough_max_body > 0 &&
        r->body_seen > c->passthrough_max_body) {
        /* a chunked body past the bound (a length over it was refused) */
        evbuffer_drain(data, evbuffer_get_length(data));
        upstream_call_abort(r->call);
        r->call = NULL;
        if (r->state == RS_FORWARDING) {
            req_error(r, 413, "PAYLOAD_TOO_LARGE", OUT_too_large, 0);
        } else {
            conn_abort(r->conn);
            r->conn = NULL;
            r->outcome = OUT_too_large;
            req_finish(r, r->status);
        }
        return;
    }
    give_upstream(r, data);
    if (upstream_call_full(r->call) && r->conn != NULL)
        conn_pause_body(r->conn, 1);
}

void req_forward_body_end(struct req *r)
{
    r->body_ended = 1;
    if (r->call == NULL || r->state == RS_READING)
        return;
    if (r->up_chunked) {
        struct evbuffer *b = r->px->scratch2;
        evbuffer_add(b, "0\r\n\r\n", 5);
        upstream_call_write(r->call, b);
    }
    upstream_call_end(r->call);
}

static void up_on_drained(void *arg)
{
    struct req *r = arg;
    if (r->conn != NULL)
        conn_pause_body(r->conn, 0);
}

void req_forward_drained(struct req *r)
{
    if (r->call != NULL)
        upstream_call_pause(r->call, 0);
}

void req_forward_gone(struct req *r)
{
    if ((r->claimed || r->keep) && r->state == RS_FORWARDING)
        return;                   /* protected: the answer is still stored */
    if (r->call != NULL) {
        upstream_call_abort(r->call);
        r->call = NULL;
    }
    if (r->outcome == OUT_passthrough && r->status == 0)
        r->status = 499;
    req_finish(r, r->status);
}

/* ---- the answer, to the client ---- */

/* The answer carries idemproxy's own Idempotent-Replayed (not in observe
 * mode, nor when forwarded unprotected); an upstream's is dropped then. */
int req_says_replayed(const struct req *r)
{
    return r->protected_ && r->route->mode != MODE_OBSERVE;
}

void req_head_add(const struct req *r, struct conn_head *h, const char *name, size_t nlen,
                  const char *value, size_t vlen)
{
    /* a page on another origin reads the answer's fields only where the
     * upstream exposes them: Idempotent-Replayed is exposed with them.
     * (value need not end in a NUL: a kept answer's points into its
     * encoded list; the list is looked at in a terminated copy) */
    char buf[1024];
    if (req_says_replayed(r) && HTTP_IS(name, nlen, "Access-Control-Expose-Headers") &&
        vlen + 22 <= sizeof(buf)) {
        memcpy(buf, value, vlen);
        buf[vlen] = '\0';
        if (!http_token_in_list(buf, "Idempotent-Replayed", 19) &&
            !http_token_in_list(buf, "*", 1)) {
            size_t n = vlen;
            if (n > 0) {
                memcpy(buf + n, ", ", 2);
                n += 2;
            }
            memcpy(buf + n, "Idempotent-Replayed", 19);
            conn_head_add(h, name, nlen, buf, n + 19);
            return;
        }
    }
    conn_head_add(h, name, nlen, value, vlen);
}

/* Every field of an encoded list ("Name: value\r\n") onto the head. */
static void head_add_encoded(const struct req *r, struct conn_head *h, const char *list,
                             size_t len)
{
    size_t pos = 0;
    const char *name, *value;
    size_t nlen, vlen;
    while (record_headers_next(list, len, &pos, &name, &nlen, &value, &vlen) == 1)
        req_head_add(r, h, name, nlen, value, vlen);
}

/* An answer of this status to this request has no body (RFC 9110 6.4.1):
 * its head is sent with the upstream's Content-Length, if any, and no
 * framing of our own. */
static int bodiless(const struct req *r, int status)
{
    return r->head || status < 200 || status == 204 || status == 304;
}

/* How the client's answer is framed for what the upstream sent. */
static enum conn_body answer_framing(const struct req *r, int status, enum h1_body b)
{
    if (bodiless(r, status))
        return CONN_BODY_NONE;
    switch (b) {
    case H1_BODY_NONE:                /* Content-Length: 0 */
    case H1_BODY_LENGTH: return CONN_BODY_LENGTH;
    default: return CONN_BODY_STREAM;
    }
}

void req_send_kept(struct req *r, int done)
{
    struct conn_head h;
    r->status = r->up_status;
    if (r->conn == NULL)
        return;
    conn_head_begin(&h, r->conn, r->up_status);
    head_add_encoded(r, &h, r->fwd_headers, r->fwd_hlen);
    if (req_says_replayed(r))
        conn_head_add(&h, "Idempotent-Replayed", 19, "false", 5);
    size_t have = r->up_body ? evbuffer_get_length(r->up_body) : 0;
    if (done && !bodiless(r, r->up_status))
        conn_head_end(&h, CONN_BODY_LENGTH, (int64_t)have);
    else
        conn_head_end(&h, answer_framing(r, r->up_status, r->up_body_kind),
                      r->up_length > 0 ? r->up_length : 0);
    if (done)
        req_count(r);
    if (have > 0)
        conn_send_body(r->conn, r->up_body);
    if (done)
        conn_done(r->conn);
}

/* The upstream's fields, filtered, encoded into the request (kept until
 * the answer is stored), the stored ones also into up_headers. */
static int keep_head(struct req *r, const struct h1_response *resp, const struct http_hop *hop)
{
    size_t cap = 1;
    for (int i = 0; i < resp->nh; i++)
        cap += resp->h[i].name_len + resp->h[i].value_len + 4;
    r->fwd_headers = malloc(cap);
    r->up_headers = malloc(cap);
    r->up_body = evbuffer_new();
    if (r->fwd_headers == NULL || r->up_headers == NULL || r->up_body == NULL)
        return -1;
    int keep_length = resp->status == 304 || r->head;
    for (int i = 0; i < resp->nh; i++) {
        const char *k = resp->h[i].name, *v = resp->h[i].value;
        size_t kn = resp->h[i].name_len;
        if (keep_length && HTTP_IS(k, kn, "Content-Length")) {
            record_headers_add(r->fwd_headers, cap, &r->fwd_hlen, k, v);
            continue;
        }
        if (http_hop_drops(hop, k, kn) ||
            (req_says_replayed(r) && HTTP_IS(k, kn, "Idempotent-Replayed")))
            continue;
        record_headers_add(r->fwd_headers, cap, &r->fwd_hlen, k, v);
        if (record_header_stored(k, r->route->store_set_cookie))
            record_headers_add(r->up_headers, cap, &r->up_hlen, k, v);
    }
    return 0;
}

/* The head to the client now, the body to follow as it comes. */
static void send_head(struct req *r, const struct h1_response *resp, const struct http_hop *hop)
{
    struct conn_head h;
    conn_head_begin(&h, r->conn, resp->status);
    int keep_length = resp->status == 304 || r->head;
    for (int i = 0; i < resp->nh; i++) {
        const char *k = resp->h[i].name, *v = resp->h[i].value;
        size_t kn = resp->h[i].name_len;
        if (keep_length && HTTP_IS(k, kn, "Content-Length")) {
            conn_head_add(&h, k, kn, v, resp->h[i].value_len);
            continue;
        }
        if (http_hop_drops(hop, k, kn) ||
            (req_says_replayed(r) && HTTP_IS(k, kn, "Idempotent-Replayed")))
            continue;
        req_head_add(r, &h, k, kn, v, resp->h[i].value_len);
    }
    if (req_says_replayed(r))
        conn_head_add(&h, "Idempotent-Replayed", 19, "false", 5);
    conn_head_end(&h, answer_framing(r, resp->status, resp->body),
                  resp->length > 0 ? resp->length : 0);
}

/* A 101 to an upgrade: its head as it is, then a tunnel. */
static void switch_protocols(struct req *r, const struct h1_response *resp)
{
    struct conn_head h;
    conn_head_begin(&h, r->conn, 101);
    for (int i = 0; i < resp->nh; i++)
        conn_head_add(&h, resp->h[i].name, resp->h[i].name_len, resp->h[i].value,
                      resp->h[i].value_len);
    conn_head_end(&h, CONN_BODY_NONE, 0);
    struct evbuffer *early = r->px->scratch2;
    evutil_socket_t fd = upstream_call_detach(r->call, early);
    r->call = NULL;
    conn_tunnel(r->conn, fd, early);
    evbuffer_drain(early, evbuffer_get_length(early));
    /* (r->conn is the tunnel's now, and never touched again) */
    req_set_state(r, RS_STREAMING);
    req_finish(r, 101);
}

static void up_on_head(void *arg, const struct h1_response *resp)
{
    struct req *r = arg;
    struct http_hop hop;
    r->upstream_ms = now_ms() - r->t_up;
    stats_observe(&r->px->stats.upstream, r->upstream_ms / 1e3);
    if (resp->status == 101) {
        if (r->conn == NULL) {
            upstream_call_abort(r->call);
            r->call = NULL;
            req_finish(r, 499);
            return;
        }
        switch_protocols(r, resp);
        return;
    }
    http_hop_init(&hop, resp->h, resp->nh);
    r->up_status = resp->status;
    r->up_length = resp->length;
    r->up_body_kind = resp->body;
    r->status = resp->status;
    if (r->claimed) {
        req_fault_point("after_answer");
        r->keep = 1;
        if (keep_head(r, resp, &hop) != 0) {
            req_log_say(r, LOG_ERROR, "out of memory keeping an answer", NULL);
            req_protect_too_large(r);     /* passed on, never run twice */
            return;
        }
        const struct route *rt = r->route;
        if ((resp->status < 600 && rt->release[resp->status]) ||
            (resp->body == H1_BODY_LENGTH && resp->length > rt->max_store))
            req_protect_too_large(r);     /* decided now: released or unstored */
        return;
    }
    if (r->conn == NULL) {
        upstream_call_abort(r->call);
        r->call = NULL;
        req_finish(r, resp->status);
        return;
    }
    send_head(r, resp, &hop);
    req_set_state(r, RS_STREAMING);
}

static void up_on_body(void *arg, struct evbuffer *data)
{
    struct req *r = arg;
    if (r->keep) {
        evbuffer_add_buffer(r->up_body, data);
        if ((int64_t)evbuffer_get_length(r->up_body) > r->route->max_store &&
            r->state == RS_FORWARDING)
            req_protect_too_large(r);
        return;
    }
    if (r->conn == NULL) {
        evbuffer_drain(data, evbuffer_get_length(data));
        return;
    }
    conn_send_body(r->conn, data);
    if (conn_out_full(r->conn))
        upstream_call_pause(r->call, 1);  /* until the client takes it */
}

static void up_on_done(void *arg, enum upstream_err err)
{
    struct req *r = arg;
    r->call = NULL;
    if (r->upstream_ms == 0) {
        r->upstream_ms = now_ms() - r->t_up;
        stats_observe(&r->px->stats.upstream, r->upstream_ms / 1e3);
    }
    /* how long this route's answers take, for Retry-After on a duplicate */
    if (err == UP_OK && r->route != NULL)
        retry_observe(&r->px->up_time[r->stats_idx], now_ms() - r->t_up);
    if (r->state == RS_STREAMING) {
        /* the head went to the client: the body ends, or is cut */
        if (err != UP_OK) {
            req_log_say(r, LOG_WARN, "upstream answer cut short",
                        err == UP_TIMEOUT ? "timeout" : "reset");
            if (!r->protected_)
                r->outcome = OUT_upstream_error;
        }
        req_count(r);
        if (r->conn != NULL) {
            if (err == UP_OK)
                conn_done(r->conn);
            else
                conn_abort(r->conn);
        }
        req_finish(r, r->status);
        return;
    }
    if (r->claimed || r->keep) {
        req_protect_answer(r, err);
        return;
    }
    /* no answer head came: nothing was sent to the client yet */
    req_error(r, err == UP_TIMEOUT ? 504 : 502,
              err == UP_REFUSED ? "UPSTREAM_UNAVAILABLE"
              : err == UP_TIMEOUT ? "UPSTREAM_TIMEOUT" : "UPSTREAM_ERROR",
              OUT_upstream_error, 0);
}
