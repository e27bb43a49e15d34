/*
 * conn.c: a client connection (see conn.h for what it owns).
 *
 *   accept ──> HEAD ── head scanned (h1_scan), parsed (h1_parse_request)
 *               ^  │      └ refused: 400/414/431/501/505 ──> CLOSING
 *               │  v
 *               │ px->dispatch (req_start): an exchange attaches ──> BODY ──> BUSY
 *               │                                   (body bytes to the exchange)
 *               └── conn_done (keep-alive) ──────────────────────────┘
 *                   conn_done (close) ──> CLOSING: written, shutdown,
 *                                         input read and dropped until EOF
 *                                         or the linger time, closed
 *
 * One read event (persistent, EV_READ) is registered from accept to close;
 * its timeout is the one the state calls for. The write event is added
 * only while output waits for the socket. Answers are written in the turn
 * they are made; what the socket does not take waits in c->out, whose size
 * the exchange keeps under CONN_WINDOW (backpressure).
 *
 * A connection is freed only at the end of one of its own event callbacks
 * (c->in_cb) or from a deferred write event, never inside a call an
 * exchange made: the exchange may still be on the stack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "conn.h"
#include "errcode.h"
#include "fmt.h"
#include "http.h"
#include "log.h"
#include "netio.h"
#include "proxy.h"
#include "route.h"
#include "tunnel.h"

enum cstate {
    CS_HEAD,      /* between requests, or reading a head */
    CS_BODY,      /* an exchange is attached; its body is being read */
    CS_BUSY,      /* an exchange is attached; its body is whole */
    CS_CLOSING,   /* the last answer is being written, then the linger */
    CS_LINGER     /* written and shut down: input dropped until EOF */
};

/* Bytes kept from a client that sends on while its request is handled
 * (pipelined requests); past it, reading stops until the answer is done. */
#define PIPELINE_MAX (64 * 1024)

struct conn {
    struct proxy *px;
    evutil_socket_t fd;
    struct event rev;              /* EV_READ|EV_PERSIST, accept to close */
    struct event wev;              /* EV_WRITE|EV_PERSIST while output waits */
    struct evbuffer *in;           /* read, not consumed */
    struct evbuffer *out;          /* to write */
    TAILQ_ENTRY(conn) link;        /* in px->conns */
    const struct conn_ops *ops;    /* the exchange, while attached */
    void *x;
    struct h1_scan scan;
    size_t scanned;                /* bytes of in fed to scan */
    struct h1_chunked chunk;
    int64_t body_left;             /* a length-framed body: bytes to come */
    enum h1_body body;             /* the body being read */
    enum cstate state;
    unsigned minor:1;              /* the request's HTTP/1.minor */
    unsigned keep_alive:1;         /* the request allows another */
    unsigned expect:1;             /* 100-continue not answered yet */
    unsigned head_sent:1;          /* the answer's head is in out */
    unsigned chunked:1;            /* the answer is chunked */
    unsigned close_delim:1;        /* the answer ends when the connection does */
    unsigned body_paused:1;        /* the exchange wants no body bytes now */
    unsigned body_done:1;          /* the whole body was handed over */
    unsigned told_end:1;           /* and body_end called */
    unsigned reading:1;            /* rev is added */
    unsigned eof:1;                /* the client will send nothing more */
    unsigned failed:1;             /* a write failed: close */
    unsigned served:1;             /* a request was read (for the timeout) */
    unsigned in_cb:1;              /* inside one of its own callbacks */
    unsigned dead:1;               /* free at the end of the callback */
    unsigned want_drained:1;       /* tell the exchange when the window empties */
    unsigned problem:1;            /* the request's route answers problem+json */
    char peer[48];
};

static void conn_on_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_write(evutil_socket_t fd, short what, void *arg);
static void conn_process(struct conn *c);
static void conn_error_msg(struct conn *c, int status, const char *code, int problem,
                           const char *message);

/* ---- life ---- */

struct conn *conn_new(struct proxy *px, evutil_socket_t fd, const struct sockaddr *sa,
                      int salen)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->in = evbuffer_new()) == NULL || (c->out = evbuffer_new()) == NULL) {
        if (c != NULL && c->in != NULL)
            evbuffer_free(c->in);
        free(c);
        evutil_closesocket(fd);
        return NULL;
    }
    c->px = px;
    c->fd = fd;
    c->state = CS_HEAD;
    c->minor = 1;
    h1_scan_init(&c->scan);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const char *p = NULL;
    if (sa != NULL && sa->sa_family == AF_INET && salen >= (int)sizeof(struct sockaddr_in))
        p = inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer,
                      sizeof(c->peer));
    else if (sa != NULL && sa->sa_family == AF_INET6 &&
             salen >= (int)sizeof(struct sockaddr_in6))
        p = inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer,
                      sizeof(c->peer));
    if (p == NULL)
        snprintf(c->peer, sizeof(c->peer), "unknown");
    event_assign(&c->rev, px->base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
    event_assign(&c->wev, px->base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
    TAILQ_INSERT_TAIL(&px->conns, c, link);
    px->n_conns++;
    STAT_SET(px->stats.connections, px->n_conns);
    event_add(&c->rev, px->tv_header);
    c->reading = 1;
    return c;
}

static void conn_free(struct conn *c)
{
    struct proxy *px = c->px;
    event_del(&c->rev);
    event_del(&c->wev);
    if (c->fd >= 0)
        evutil_closesocket(c->fd);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    TAILQ_REMOVE(&px->conns, c, link);
    px->n_conns--;
    STAT_SET(px->stats.connections, px->n_conns);
    free(c);
    proxy_request_done(px);
}

/* Close now, or as soon as no callback of its own is on the stack. */
static void conn_kill(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    if (!c->in_cb)
        event_active(&c->wev, EV_WRITE, 1);    /* conn_on_write frees it */
}

/* The client is gone (EOF mid-request, an error, a timeout): the exchange
 * is told, and the connection closed. */
static void conn_lost(struct conn *c)
{
    const struct conn_ops *ops = c->ops;
    void *x = c->x;
    c->ops = NULL;
    c->x = NULL;
    if (ops != NULL)
        ops->gone(x);
    conn_kill(c);
}

const char *conn_peer(const struct conn *c)
{
    return c->peer;
}

int conn_minor(const struct conn *c)
{
    return c->minor;
}

void conn_head_free(struct conn_request *cr)
{
    free(cr->head);
    cr->head = NULL;
}

/* ---- reading ---- */

/* Set the read event's timeout for the state, and reading on or off. */
static void conn_arm_read(struct conn *c, const struct timeval *tv)
{
    if (c->eof)
        return;
    event_add(&c->rev, tv);
    c->reading = 1;
}

static void conn_stop_reading(struct conn *c)
{
    if (c->reading) {
        event_del(&c->rev);
        c->reading = 0;
    }
}

static const struct timeval *idle_tv(const struct conn *c)
{
    return c->served ? c->px->tv_idle : c->px->tv_header;
}

/*
 * Refuse what the framing rules refuse: count it, log it (at most a few
 * lines a second), answer in the error shape unless an answer has begun,
 * and close. format: the matched route's error format, when the request
 * line was read.
 */
static void conn_refuse(struct conn *c, int status, const char *why, int problem)
{
    struct proxy *px = c->px;
    static const struct { int status; const char *code; } codes[] = {
        { 400, "BAD_REQUEST" }, { 408, "REQUEST_TIMEOUT" }, { 413, "PAYLOAD_TOO_LARGE" },
        { 414, "URI_TOO_LONG" }, { 431, "HEADER_FIELDS_TOO_LARGE" },
        { 501, "NOT_IMPLEMENTED" }, { 505, "HTTP_VERSION_NOT_SUPPORTED" },
    };
    const char *code = "BAD_REQUEST";
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].status == status)
            code = codes[i].code;
    stats_count(&px->stats, 0, status == 413 ? OUT_too_large : OUT_bad_request);
    unsigned long dropped;
    if (log_limit_pass(&px->refusals, (long)proxy_now_sec(px), 10, &dropped)) {
        struct logline l;
        log_begin(&l, LOG_WARN, "request refused");
        log_int(&l, "status", status);
        log_str(&l, "why", why);
        log_str(&l, "client", c->peer);
        if (dropped > 0)
            log_int(&l, "refusals_not_logged", (long long)dropped);
        log_end(&l);
    }
    if (c->ops != NULL) {         /* the exchange lets go */
        const struct conn_ops *ops = c->ops;
        void *x = c->x;
        c->ops = NULL;
        c->x = NULL;
        ops->gone(x);
    }
    if (c->head_sent) {
        conn_kill(c);             /* an answer has begun: it is cut */
        return;
    }
    c->keep_alive = 0;            /* answered, then closed */
    char msg[256];
    snprintf(msg, sizeof(msg), "%s: %s.", status == 400 ? "The request is malformed" :
             status == 408 ? "The request did not arrive in time" : "The request is refused",
             why);
    conn_error_msg(c, status, code, problem, msg);
}

static int error_format(struct proxy *px, const struct h1_request *req);

/*
 * The error format of the route the request line names, for a head refused
 * before it was parsed (too large, too slow): 0 until that line is whole.
 * The head starts at the front of c->in, its request line after s.skip
 * empty lines and before the CRLF at s.first_line.
 */
static int head_error_format(struct conn *c)
{
    size_t from = c->scan.skip, end = c->scan.first_line;
    if (end < from + 2)
        return 0;
    size_t n = end - from - 2;
    char *line = malloc(n + 1);
    if (line == NULL)
        return 0;
    struct evbuffer_ptr at;
    evbuffer_ptr_set(c->in, &at, from, EVBUFFER_PTR_SET);
    ev_ssize_t got = evbuffer_copyout_from(c->in, &at, line, n);
    line[got > 0 ? (size_t)got : 0] = '\0';
    int problem = 0;
    char *sp = strchr(line, ' '), *sp2 = sp != NULL ? strchr(sp + 1, ' ') : NULL;
    if (sp2 != NULL) {
        struct h1_request req;
        memset(&req, 0, sizeof(req));
        *sp = *sp2 = '\0';
        req.method = line;
        req.method_len = (size_t)(sp - line);
        req.target = sp + 1;
        req.target_len = (size_t)(sp2 - sp - 1);
        problem = error_format(c->px, &req);
    }
    free(line);
    return problem;
}

/* Move n bytes of input to the exchange. */
static void give_body(struct conn *c, size_t n)
{
    struct evbuffer *b = c->px->scratch;
    evbuffer_remove_buffer(c->in, b, n);
    c->ops->body(c->x, b);
    /* the exchange takes them all; what it left would reach the next one */
    evbuffer_drain(b, evbuffer_get_length(b));
}

static void body_complete(struct conn *c)
{
    c->body_done = 1;
    c->told_end = 1;
    c->state = CS_BUSY;
    c->ops->body_end(c->x);
}

/* Hand the exchange what there is of its body. 0: go on; 1: wait. */
static int conn_read_body(struct conn *c)
{
    while (c->state == CS_BODY && c->ops != NULL && !c->body_paused) {
        size_t avail = evbuffer_get_length(c->in);
        if (c->body == H1_BODY_NONE) {
            body_complete(c);
            continue;
        }
        if (c->body == H1_BODY_LENGTH) {
            if (avail == 0)
                return 1;
            size_t k = (int64_t)avail < c->body_left ? avail : (size_t)c->body_left;
            c->body_left -= (int64_t)k;
            give_body(c, k);
            if (c->body_left == 0 && c->state == CS_BODY && c->ops != NULL)
                body_complete(c);
            continue;
        }
        /* chunked */
        if (avail == 0)
            return 1;
        size_t k;
        switch (netio_chunked_step(&c->chunk, c->in, &k)) {
        case H1_CHUNK_MORE:
            continue;
        case H1_CHUNK_DATA:
            if (k == 0)
                return 1;
            h1_chunked_took(&c->chunk, k);
            give_body(c, k);
            continue;
        case H1_CHUNK_DONE:
            body_complete(c);
            continue;
        case H1_CHUNK_ERROR:
            conn_refuse(c, 400, c->chunk.why, c->problem);
            return 1;
        }
    }
    return 1;
}

/* 1 when the route the request line names answers errors as problem
 * details (the head was refused after its request line was read). */
static int error_format(struct proxy *px, const struct h1_request *req)
{
    int bad;
    const struct route *rt = route_for(px->cfg->c, req->method, req->target, &bad);
    return rt != NULL && rt->error_format == ERROR_FORMAT_PROBLEM;
}

/* The line ends in the first len bytes of b. */
static int count_lines(struct evbuffer *b, size_t len)
{
    struct evbuffer_iovec v[16];
    int n = evbuffer_peek(b, (ev_ssize_t)len, NULL, v, 16), lines = 0;
    if (n > 16)
        return (int)(len / 2) + 1;    /* a head in many pieces: a safe bound */
    for (int i = 0; i < n && len > 0; i++) {
        const char *p = v[i].iov_base;
        size_t k = v[i].iov_len < len ? v[i].iov_len : len;
        const char *e = p + k;
        while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
            lines++;
            p++;
        }
        len -= k;
    }
    return lines;
}

/* The head in c->in (h1_scan found its end) to the exchange. */
static void conn_take_head(struct conn *c)
{
    struct proxy *px = c->px;
    size_t len = c->scan.len;
    struct conn_request cr;
    struct h1_error err = { 400, "a malformed request head" };
    int lines = count_lines(c->in, len);    /* a bound of its fields */
    size_t hsize = (size_t)lines * sizeof(struct h1_header);
    cr.head = malloc(hsize + len);
    if (cr.head == NULL) {
        evbuffer_drain(c->in, len);
        c->scanned = 0;
        h1_scan_init(&c->scan);
        log_say(LOG_ERROR, "request refused: out of memory for its head", c->peer);
        c->keep_alive = 0;
        c->body_done = 1;
        conn_error(c, 503, "STORE_UNAVAILABLE", 0, 1, 0);
        return;
    }
    struct h1_header *hv = (struct h1_header *)cr.head;
    char *h = cr.head + hsize;
    evbuffer_remove(c->in, h, len);
    c->scanned = 0;
    h1_scan_init(&c->scan);
    c->served = 1;
    if (h1_parse_request(h, len, &cr.req, hv, lines, &err) != 0) {
        int problem = cr.req.target != NULL ? error_format(px, &cr.req) : 0;
        c->problem = 0;
        free(cr.head);
        c->minor = 1;
        conn_refuse(c, err.status, err.why, problem);
        return;
    }
    /* (the pointers of cr.req are into h, which cr.head holds) */
    c->problem = error_format(px, &cr.req) != 0;   /* for refusals of its body */
    c->minor = (unsigned)cr.req.minor;
    c->keep_alive = cr.req.keep_alive;
    c->expect = cr.req.expect_continue && cr.req.body != H1_BODY_NONE;
    c->body = cr.req.body;
    c->body_left = cr.req.body == H1_BODY_LENGTH ? cr.req.length : 0;
    if (c->body == H1_BODY_CHUNKED)
        h1_chunked_init(&c->chunk, (size_t)px->cfg->c->max_headers);
    c->head_sent = 0;
    c->chunked = 0;
    c->close_delim = 0;
    c->body_paused = 0;
    c->want_drained = 0;
    c->body_done = c->body == H1_BODY_NONE;
    c->told_end = 0;
    c->state = CS_BODY;           /* body_end is told even without a body */
    px->dispatch(px, c, &cr);     /* attaches an exchange, or answers */
}

/*
 * What there is of input, as the state says. Runs in the connection's own
 * callbacks only.
 */
static void conn_process(struct conn *c)
{
    struct proxy *px = c->px;
    for (;;) {
        if (c->dead)
            return;
        switch (c->state) {
        case CS_HEAD: {
            size_t avail = evbuffer_get_length(c->in);
            if (avail == c->scanned) {
                if (c->eof) {
                    conn_kill(c);     /* closed between requests */
                    return;
                }
                if (avail == 0 && px->draining) {
                    conn_kill(c);
                    return;
                }
                return;
            }
            int started = c->scan.len > 0;
            struct evbuffer_ptr at;
            struct evbuffer_iovec v[4];
            evbuffer_ptr_set(c->in, &at, c->scanned, EVBUFFER_PTR_SET);
            int n = evbuffer_peek(c->in, -1, &at, v, 4);
            if (n > 4)
                n = 4;
            struct h1_error err;
            for (int i = 0; i < n; i++) {
                size_t used = 0;
                enum h1_scan_rc rc = h1_scan(&c->scan, v[i].iov_base, v[i].iov_len,
                                             (size_t)px->cfg->c->max_headers, &used, &err);
                c->scanned += used;
                if (rc == H1_SCAN_ERROR) {
                    conn_refuse(c, err.status, err.why, head_error_format(c));
                    return;
                }
                if (rc == H1_SCAN_DONE) {
                    conn_take_head(c);
                    goto next;
                }
            }
            if (c->scanned < evbuffer_get_length(c->in))
                continue;             /* more pieces than one peek */
            if (c->eof) {
                conn_kill(c);         /* a head cut short */
                return;
            }
            if (!started)             /* the whole head within the header timeout */
                conn_arm_read(c, px->tv_header);
            return;
        }
        case CS_BODY:
            if (c->expect && c->ops != NULL && !c->body_paused) {
                c->expect = 0;        /* the exchange reads: the client may send */
                if (evbuffer_get_length(c->in) == 0)
                    conn_send_bytes(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            }
            conn_read_body(c);
            if (c->dead)
                return;
            if (c->state == CS_BODY && c->ops != NULL) {
                if (c->eof) {
                    conn_lost(c);     /* the body will never be whole */
                    return;
                }
                if (c->body_paused) {
                    /* the upstream is slow to take it: its timeout runs,
                     * not the client's */
                    if (evbuffer_get_length(c->in) >= PIPELINE_MAX)
                        conn_stop_reading(c);
                    else if (c->reading)
                        netio_untime(&c->rev);
                } else {
                    conn_arm_read(c, px->tv_body);
                }
                return;
            }
            break;
        case CS_BUSY:
            /* pipelined bytes wait for the answer; a client that sends on
             * is not read past a bound. An EOF now is a half-close: the
             * answer is still written. */
            if (evbuffer_get_length(c->in) >= PIPELINE_MAX)
                conn_stop_reading(c);
            return;
        case CS_CLOSING:
        case CS_LINGER:
            evbuffer_drain(c->in, evbuffer_get_length(c->in));
            if (c->eof && c->state == CS_LINGER)
                conn_kill(c);
            return;
        }
    next:;
    }
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct proxy *px = c->px;
    c->in_cb = 1;
    if (what & EV_TIMEOUT) {
        switch (c->state) {
        case CS_HEAD:
            if (c->scan.len > 0)
                conn_refuse(c, 408, "the request head did not arrive in time",
                            head_error_format(c));
            else
                conn_kill(c);         /* idle */
            break;
        case CS_BODY:
            conn_refuse(c, 408, "the request body stopped arriving", c->problem);
            break;
        case CS_BUSY:
        case CS_CLOSING:
            /* a timer of the state before (the head's): the exchange's
             * own timers bound this one, and send_timeout the writing.
             * Left running until now saves an event_add per request. */
            netio_untime(&c->rev);
            break;
        case CS_LINGER:
            conn_kill(c);             /* the linger is over */
            break;
        }
    } else {
        int full = 0;
        size_t big = c->state == CS_BODY && (c->body == H1_BODY_CHUNKED ||
                                             c->body_left >= NETIO_READ) ? 65536 : 0;
        int n = netio_read(fd, c->in, px->rbuf, big, &full);
        if (n == 0 || (n == -1 && !c->eof)) {
            c->eof = 1;
            conn_stop_reading(c);
            if (n == -1 && (c->ops != NULL || c->state == CS_BUSY)) {
                conn_lost(c);         /* reset: the answer cannot be written */
            }
        }
        if (!c->dead)
            conn_process(c);      /* also what was read before (pipelined) */
    }
    c->in_cb = 0;
    if (c->dead)
        conn_free(c);
}

/* ---- writing ---- */

/* Start the end: shut the sending side and read until the client closes. */
static void conn_linger(struct conn *c)
{
    c->state = CS_LINGER;
    if (c->eof) {
        conn_kill(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    conn_arm_read(c, c->px->tv_linger);
}

/*
 * Write what waits, as far as the socket takes it. A failure is acted on
 * in the connection's own callback (conn_on_write), never here.
 */
static void conn_flush(struct conn *c)
{
    if (c->failed || c->dead)
        return;
    if (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            c->failed = 1;
            event_active(&c->wev, EV_WRITE, 1);
            return;
        }
        if (evbuffer_get_length(c->out) > 0) {
            /* a write that moved bytes restarts the send timeout */
            if (n > 0 || !event_pending(&c->wev, EV_WRITE, NULL))
                event_add(&c->wev, c->px->tv_send);
            return;
        }
    }
    if (event_pending(&c->wev, EV_WRITE, NULL))
        event_del(&c->wev);
    if (c->state == CS_CLOSING)
        conn_linger(c);
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    c->in_cb = 1;
    if (c->dead) {
        /* conn_kill's deferred close */
    } else if (c->failed || (what & EV_TIMEOUT)) {
        if (c->ops != NULL)
            conn_lost(c);
        else
            conn_kill(c);
    } else {
        conn_flush(c);
        if (!c->failed && !c->dead && c->want_drained && c->ops != NULL &&
            evbuffer_get_length(c->out) <= CONN_WINDOW / 4) {
            c->want_drained = 0;
            c->ops->drained(c->x);
        }
        if (c->failed) {
            if (c->ops != NULL)
                conn_lost(c);
            else
                conn_kill(c);
        }
    }
    c->in_cb = 0;
    if (c->dead)
        conn_free(c);
}

int conn_out_full(const struct conn *c)
{
    return evbuffer_get_length(c->out) >= CONN_WINDOW;
}

/* ---- the exchange ---- */

void conn_attach(struct conn *c, const struct conn_ops *ops, void *x)
{
    c->ops = ops;
    c->x = x;
    /* the body (and body_end) follow from conn_process, which called
     * px->dispatch and goes on with CS_BODY when it returns */
}

void conn_pause_body(struct conn *c, int pause)
{
    if (c->body_paused == (unsigned)(pause != 0))
        return;
    c->body_paused = pause != 0;
    if (!pause && c->state == CS_BODY && !c->dead) {
        conn_arm_read(c, c->px->tv_body);
        if (evbuffer_get_length(c->in) > 0 || c->expect)
            event_active(&c->rev, EV_READ, 1);    /* conn_process, next turn */
    }
}

/* ---- the answer ---- */

static void head_put(struct conn_head *h, const void *p, size_t n)
{
    netio_gather_put(&h->g, p, n);
}

void conn_head_begin(struct conn_head *h, struct conn *c, int status)
{
    h->c = c;
    h->g.to = c->out;
    h->g.n = 0;
    h->status = status;
    h->has_date = 0;
    char line[64];
    memcpy(line, "HTTP/1.1 ", 9);
    size_t n = 9 + fmt_dec(line + 9, (unsigned)status);
    line[n++] = ' ';
    const char *reason = h1_reason(status);
    size_t rl = strlen(reason);
    head_put(h, line, n);
    head_put(h, reason, rl);
    head_put(h, "\r\n", 2);
}

void conn_head_add(struct conn_head *h, const char *name, size_t nlen,
                   const char *value, size_t vlen)
{
    if (HTTP_IS(name, nlen, "Date"))
        h->has_date = 1;
    head_put(h, name, nlen);
    head_put(h, ": ", 2);
    head_put(h, value, vlen);
    head_put(h, "\r\n", 2);
}

void conn_head_end(struct conn_head *h, enum conn_body body, int64_t length)
{
    struct conn *c = h->c;
    struct proxy *px = c->px;
    int closing = !c->keep_alive || px->draining || !c->body_done || c->eof;
    if (!h->has_date) {
        const char *d = proxy_date(px);
        head_put(h, "Date: ", 6);
        head_put(h, d, strlen(d));
        head_put(h, "\r\n", 2);
    }
    if (h->status >= 200) {
        if (body == CONN_BODY_LENGTH) {
            char n[48] = "Content-Length: ";
            size_t k = 16 + fmt_dec(n + 16, (unsigned long long)length);
            n[k++] = '\r';
            n[k++] = '\n';
            head_put(h, n, k);
        } else if (body == CONN_BODY_STREAM) {
            if (c->minor == 1) {
                head_put(h, "Transfer-Encoding: chunked\r\n", 28);
                c->chunked = 1;
            } else {
                c->close_delim = 1;
                closing = 1;
            }
        }
        if (closing) {
            head_put(h, "Connection: close\r\n", 19);
            c->keep_alive = 0;
        } else if (c->minor == 0) {
            head_put(h, "Connection: keep-alive\r\n", 24);
        }
        c->head_sent = 1;
    }
    head_put(h, "\r\n", 2);
    netio_gather_flush(&h->g);
}

void conn_send_body(struct conn *c, struct evbuffer *data)
{
    size_t n = evbuffer_get_length(data);
    if (n == 0)
        return;
    if (c->chunked) {
        char line[24];
        evbuffer_add(c->out, line, h1_chunk_size_line(line, n));
        evbuffer_add_buffer(c->out, data);
        evbuffer_add(c->out, "\r\n", 2);
    } else {
        evbuffer_add_buffer(c->out, data);
    }
    conn_flush(c);
    if (conn_out_full(c))
        c->want_drained = 1;
}

void conn_send_bytes(struct conn *c, const void *p, size_t n)
{
    evbuffer_add(c->out, p, n);
    conn_flush(c);
}

void conn_done(struct conn *c)
{
    struct proxy *px = c->px;
    if (c->chunked)
        evbuffer_add(c->out, "0\r\n\r\n", 5);
    c->ops = NULL;
    c->x = NULL;
    c->chunked = 0;
    c->want_drained = 0;
    if (!c->keep_alive || c->close_delim || !c->body_done || px->draining || c->eof) {
        c->state = CS_CLOSING;
        conn_flush(c);
        return;
    }
    c->state = CS_HEAD;
    c->head_sent = 0;
    conn_flush(c);
    if (c->dead || c->failed)
        return;
    if (!c->reading)
        conn_arm_read(c, idle_tv(c));
    else
        event_add(&c->rev, idle_tv(c));
    /* a pipelined request: on the next turn (or now, by the loop of the
     * conn_process this runs under) */
    if (evbuffer_get_length(c->in) > 0 && !c->in_cb)
        event_active(&c->rev, EV_READ, 1);
}

void conn_close_after(struct conn *c)
{
    c->keep_alive = 0;
}

void conn_abort(struct conn *c)
{
    c->ops = NULL;
    c->x = NULL;
    conn_kill(c);
}

static void conn_error_with(struct conn *c, int status, const char *code, int problem,
                            long retry_after, int head_only, const char *message)
{
    char body[1024];
    size_t n = errcode_body(body, sizeof(body), problem, status, code, message);
    struct conn_head h;
    conn_head_begin(&h, c, status);
    const char *type = errcode_content_type(problem);
    conn_head_add(&h, "Content-Type", 12, type, strlen(type));
    if (retry_after > 0) {
        char ra[24];
        conn_head_add(&h, "Retry-After", 11, ra, fmt_dec(ra, (unsigned long)retry_after));
    }
    conn_head_end(&h, CONN_BODY_LENGTH, (int64_t)n);
    if (!head_only)
        evbuffer_add(c->out, body, n);
    conn_done(c);
}

void conn_error(struct conn *c, int status, const char *code, int problem,
                long retry_after, int head_only)
{
    conn_error_with(c, status, code, problem, retry_after, head_only, NULL);
}

static void conn_error_msg(struct conn *c, int status, const char *code, int problem,
                           const char *message)
{
    conn_error_with(c, status, code, problem, 0, 0, message);
}

/* ---- the tunnel ---- */

void conn_tunnel(struct conn *c, evutil_socket_t fd, struct evbuffer *early)
{
    struct proxy *px = c->px;
    c->ops = NULL;
    c->x = NULL;
    conn_flush(c);
    /* the client's socket and what it sent after the head, the upstream's
     * socket and what it sent after its 101 */
    if (tunnel_new(px, c->fd, c->in, c->out, fd, early) != 0) {
        evutil_closesocket(fd);
        conn_kill(c);
        return;
    }
    c->fd = -1;                   /* the tunnel's now */
    conn_kill(c);
}

/* ---- the worker ---- */

void conn_drain_all(struct proxy *px)
{
    struct conn *c, *next;
    for (c = TAILQ_FIRST(&px->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->ops == NULL && c->state == CS_HEAD && c->scan.len == 0 &&
            evbuffer_get_length(c->out) == 0)
            conn_kill(c);
    }
}

void conn_free_all(struct proxy *px)
{
    struct conn *c;
    while ((c = TAILQ_FIRST(&px->conns)) != NULL) {
        if (c->ops != NULL) {
            const struct conn_ops *ops = c->ops;
            void *x = c->x;
            c->ops = NULL;
            ops->gone(x);
        }
        conn_free(c);
    }
}
