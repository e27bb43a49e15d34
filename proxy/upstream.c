/*
 * upstream.c: the pool of keep-alive connections to the upstream, the
 * HTTP/1.1 answer parser, and one call (request, whole-request timer,
 * result) through them.
 *
 * Why not evhttp's client: measured with callgrind, evhttp_make_request,
 * its header list and its response parser cost about a third of a
 * pass-through request (a printf and three allocations per header line),
 * and its connection switches read interest off and on around every
 * request (two epoll_ctl each). Here a connection keeps one persistent
 * read event from connect to close, the request is written with one
 * writev in the turn it is made, and the answer's head is parsed in place.
 *
 * How the outcome is told apart:
 *  - no connection (connect refused, or not up within the timeout), or a
 *    reused connection that the upstream had closed so the write failed
 *    before a byte of the request left: the request never left, so the
 *    caller may release its claim (UP_REFUSED; a failed write on a reused
 *    connection is first tried once more on a new one);
 *  - the request (or part of it) left and then no full answer came back:
 *    the outcome is unknown (UP_RESET, UP_TIMEOUT).
 *
 * Answer framing (RFC 9112 6.3): no body after HEAD, 1xx, 204 and 304;
 * chunked if Transfer-Encoding says so (trailers are read and dropped;
 * any other transfer coding is refused, as nothing here undoes it); else
 * Content-Length; else the body ends when the upstream closes. 1xx interim
 * answers are skipped. An answer's head is at most 64 KB. A connection is
 * reused only after a whole, length-framed answer to a whole request,
 * from an HTTP/1.1 upstream (or 1.0 with keep-alive) that did not say
 * close; an idle one is closed after upstream_timeout.
 *
 * An answer that is not HTTP counts as "outcome unknown" (UP_RESET), as
 * with libevent's client before.
 */
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>

#include "http.h"
#include "upstream.h"

#define HEAD_MAX   (64 * 1024)     /* an answer's head, or its trailers */
#define LINE_MAX_  1024            /* a chunk-size line */
#define READ_SIZE  (16384 - 64) /* a full read fits one 16 KB evbuffer chain,
                                   * header included */

enum pc_state {
    PC_DOWN,        /* no socket */
    PC_CONNECTING,  /* connect() in progress; a call is waiting on it */
    PC_IDLE,        /* connected, in up->idle */
    PC_BUSY         /* a call's request is being written or answered */
};

enum rd_state {
    RD_HEAD,        /* status line and headers */
    RD_LENGTH,      /* body of Content-Length bytes */
    RD_CLOSE,       /* body until the upstream closes */
    RD_CHUNK_SIZE,  /* a chunk-size line */
    RD_CHUNK_DATA,  /* a chunk's bytes */
    RD_CHUNK_END,   /* the CRLF after a chunk's bytes */
    RD_TRAILER      /* trailer lines up to the empty one */
};

struct pconn {
    struct upstream *up;
    enum pc_state state;
    evutil_socket_t fd;
    struct event *rev;             /* EV_READ|EV_PERSIST, connect to close */
    struct event *wev;             /* connect, and writes the socket did not take */
    struct evbuffer *in;           /* read, not parsed yet */
    struct upstream_call *call;    /* while CONNECTING or BUSY */
    TAILQ_ENTRY(pconn) link;       /* in up->idle or up->down */
    /* the answer being read */
    enum rd_state rd;
    int64_t left;                  /* RD_LENGTH, RD_CHUNK_DATA: bytes to come */
    size_t scanned;                /* RD_HEAD, RD_TRAILER: bytes without an end */
    char *head;                    /* the head, parsed in place */
    size_t head_cap;
    struct upstream_header *hv;
    int hv_cap;
    struct upstream_resp resp;
    unsigned reuse:1;              /* the answer allows another request */
    unsigned full_read:1;          /* the last read filled its buffer */
    struct timeval idle_at;        /* the loop turn it went idle (cached time) */
};

TAILQ_HEAD(pconnq, pconn);

struct upstream_call {
    struct upstream *up;
    struct pconn *conn;            /* while CONNECTING or BUSY */
    struct event timer;
    struct evbuffer *out;          /* the request; drained as it is written */
    size_t out_len;                /* its whole length */
    upstream_cb cb;
    void *arg;
    unsigned head:1;               /* a HEAD request */
    unsigned retried:1;            /* already re-sent on a new connection */
    TAILQ_ENTRY(upstream_call) next; /* waiting for a connection */
};

TAILQ_HEAD(callq, upstream_call);

struct upstream {
    struct event_base *base;
    char host[256];
    int port;
    const struct timeval *timeout; /* a common timeout of the base */
    int64_t timeout_ms;            /* the same, for upstream_call_send */
    struct timeval fallback_tv;
    int64_t max_response;
    int max_conns;
    int n_conns;
    struct pconnq idle;            /* connected, free; most recent first */
    struct pconnq down;            /* free, no socket */
    struct pconn **all;
    struct callq waiting;
    char rbuf[READ_SIZE];          /* reads that are not a large body's (pc_read) */
};

static void call_dispatch(struct upstream_call *call, struct pconn *pc);
static void pc_on_read(evutil_socket_t fd, short what, void *arg);
static void pc_on_write(evutil_socket_t fd, short what, void *arg);

/* ---- connections ---- */

static void pc_close(struct pconn *pc)
{
    if (pc->state == PC_DOWN)
        return;
    if (pc->state == PC_IDLE)
        TAILQ_REMOVE(&pc->up->idle, pc, link);
    event_free(pc->rev);
    event_free(pc->wev);
    pc->rev = pc->wev = NULL;
    evutil_closesocket(pc->fd);
    pc->fd = -1;
    evbuffer_drain(pc->in, evbuffer_get_length(pc->in));
    if (pc->state == PC_IDLE)
        TAILQ_INSERT_TAIL(&pc->up->down, pc, link);
    pc->state = PC_DOWN;
}

/* Start a connection for pc's call. 0: connecting; -1: failed at once. */
static int pc_connect(struct pconn *pc)
{
    struct upstream *up = pc->up;
    struct evutil_addrinfo hints, *ai = NULL;
    char port[8];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV | EVUTIL_AI_ADDRCONFIG;
    snprintf(port, sizeof(port), "%d", up->port);
    if (evutil_getaddrinfo(up->host, port, &hints, &ai) != 0 || ai == NULL)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        evutil_freeaddrinfo(ai);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    pc->rev = event_new(up->base, fd, EV_READ | EV_PERSIST, pc_on_read, pc);
    pc->wev = event_new(up->base, fd, EV_WRITE, pc_on_write, pc);
    if (pc->rev == NULL || pc->wev == NULL || event_add(pc->wev, NULL) != 0) {
        if (pc->rev) event_free(pc->rev);
        if (pc->wev) event_free(pc->wev);
        pc->rev = pc->wev = NULL;
        close(fd);
        return -1;
    }
    pc->fd = fd;
    pc->state = PC_CONNECTING;
    return 0;
}

static int pc_quiet(const struct pconn *pc);

static struct pconn *pool_get(struct upstream *up)
{
    struct pconn *pc = TAILQ_FIRST(&up->idle);
    if (pc != NULL) {
        TAILQ_REMOVE(&up->idle, pc, link);
        pc->state = PC_BUSY;
        event_add(pc->rev, NULL);      /* no idle timeout while busy */
        /* kept in this very turn (the loop's cached time is the turn's):
         * pc_on_read has not seen what came with its answer, a FIN or
         * stray bytes, so look; then the call connects anew */
        struct timeval now;
        event_base_gettimeofday_cached(up->base, &now);
        if (evutil_timercmp(&now, &pc->idle_at, ==) && !pc_quiet(pc))
            pc_close(pc);
        return pc;
    }
    pc = TAILQ_FIRST(&up->down);
    if (pc != NULL) {
        TAILQ_REMOVE(&up->down, pc, link);
        return pc;
    }
    if (up->n_conns >= up->max_conns)
        return NULL;
    pc = calloc(1, sizeof(*pc));
    if (pc == NULL)
        return NULL;
    pc->in = evbuffer_new();
    pc->resp.body = evbuffer_new();
    if (pc->in == NULL || pc->resp.body == NULL) {
        if (pc->in) evbuffer_free(pc->in);
        if (pc->resp.body) evbuffer_free(pc->resp.body);
        free(pc);
        return NULL;
    }
    pc->up = up;
    pc->fd = -1;
    pc->state = PC_DOWN;
    up->all[up->n_conns++] = pc;
    return pc;
}

/*
 * Nothing waiting in the socket: no FIN, no bytes nobody asked for. An
 * idle connection is watched by pc_on_read, which closes it on either; a
 * kept one that is reused before the loop reads the socket again (in the
 * same turn) needs this look (one recv with MSG_PEEK).
 */
static int pc_quiet(const struct pconn *pc)
{
    char c;
    ssize_t n = recv(pc->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* pc has no call any more: give it to the first waiting call, or keep it. */
static void pool_put(struct upstream *up, struct pconn *pc)
{
    struct upstream_call *call = TAILQ_FIRST(&up->waiting);
    if (call != NULL) {
        TAILQ_REMOVE(&up->waiting, call, next);
        if (pc->state == PC_IDLE)
            pc->state = PC_BUSY;
        /* handed over in this turn, so not yet past pc_on_read: the
         * upstream may have closed it (or sent more) right after its
         * answer; then the call gets a new connection */
        if (pc->state == PC_BUSY && !pc_quiet(pc))
            pc_close(pc);
        call_dispatch(call, pc);
        return;
    }
    if (pc->state == PC_BUSY) {
        pc->state = PC_IDLE;
        event_base_gettimeofday_cached(up->base, &pc->idle_at);
        TAILQ_INSERT_HEAD(&up->idle, pc, link);
        event_add(pc->rev, up->timeout);  /* closed after that long idle */
    } else {
        TAILQ_INSERT_TAIL(&up->down, pc, link);
    }
}

/* ---- calls ---- */

static void call_free(struct upstream_call *call)
{
    event_del(&call->timer);
    evbuffer_free(call->out);
    free(call);
}

/* The call's one result: detach it from its connection, tell the caller,
 * free it, and put the connection back (closed unless reusable). */
static void call_finish(struct upstream_call *call, const struct upstream_resp *resp,
                        enum upstream_err err)
{
    struct upstream *up = call->up;
    struct pconn *pc = call->conn;

    if (pc != NULL) {
        pc->call = NULL;
        /* (kept: then nothing is left to write, so its write event is off) */
        /* after a read that filled its buffer, the socket may hold more
         * than the answer: bytes nobody asked for close it, as they would
         * an idle one, before a request could take them for its answer */
        if (err != UP_OK || !pc->reuse || evbuffer_get_length(call->out) > 0 ||
            evbuffer_get_length(pc->in) > 0 || (pc->full_read && !pc_quiet(pc)))
            pc_close(pc);
    }
    call->cb(call->arg, resp, err);
    call_free(call);
    if (pc != NULL) {
        evbuffer_drain(pc->resp.body, evbuffer_get_length(pc->resp.body));
        pool_put(up, pc);
    }
}

static void call_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct upstream_call *call = arg;
    (void)fd; (void)what;
    if (call->conn == NULL) {          /* still waiting for a connection */
        TAILQ_REMOVE(&call->up->waiting, call, next);
        call_finish(call, NULL, UP_REFUSED);
        return;
    }
    call_finish(call, NULL, call->conn->state == PC_CONNECTING ? UP_REFUSED
                                                                 : UP_TIMEOUT);
}

struct upstream_call *upstream_call_new(struct upstream *up, upstream_cb cb,
                                        void *arg)
{
    struct upstream_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return NULL;
    call->out = evbuffer_new();
    if (call->out == NULL) {
        free(call);
        return NULL;
    }
    call->up = up;
    call->cb = cb;
    call->arg = arg;
    evtimer_assign(&call->timer, up->base, call_on_timeout, call);
    return call;
}

struct evbuffer *upstream_call_buffer(struct upstream_call *call)
{
    return call->out;
}

/* Write what the socket takes of the request; the rest when it is writable. */
static void pc_write(struct pconn *pc)
{
    struct upstream_call *call = pc->call;
    size_t before = evbuffer_get_length(call->out);
    int n = evbuffer_write(call->out, pc->fd);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        if (before == call->out_len && !call->retried) {
            /* nothing of it left: a reused connection the upstream had
             * closed. Once more, on a new connection. */
            call->retried = 1;
            pc_close(pc);
            call_dispatch(call, pc);
            return;
        }
        if (before == call->out_len) {
            call_finish(call, NULL, UP_REFUSED);
            return;
        }
        /* part of it left: the upstream may have answered early and
         * closed (a 413 before the whole body). Stop writing; the read
         * side finishes the call with that answer, or with the reset. */
        return;
    }
    if (evbuffer_get_length(call->out) > 0)
        event_add(pc->wev, NULL);
}

static void pc_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct pconn *pc = arg;
    (void)what;
    if (pc->state == PC_CONNECTING) {
        int e = 0;
        socklen_t elen = sizeof(e);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
            e = errno;
        if (e != 0) {
            call_finish(pc->call, NULL, UP_REFUSED);
            return;
        }
        if (event_add(pc->rev, NULL) != 0) {
            call_finish(pc->call, NULL, UP_REFUSED);
            return;
        }
        pc->state = PC_BUSY;
    }
    if (pc->call != NULL)
        pc_write(pc);
}

static void call_dispatch(struct upstream_call *call, struct pconn *pc)
{
    call->conn = pc;
    pc->call = call;
    pc->rd = RD_HEAD;
    pc->scanned = 0;
    pc->reuse = 0;
    if (pc->state != PC_DOWN)
        pc_write(pc);
    else if (pc_connect(pc) != 0)
        call_finish(call, NULL, UP_REFUSED);
    /* (else the request goes when connected) */
}

void upstream_call_send(struct upstream_call *call, int head, int64_t timeout_ms)
{
    struct upstream *up = call->up;

    call->head = head ? 1 : 0;
    call->out_len = evbuffer_get_length(call->out);
    if (timeout_ms == up->timeout_ms) {
        event_add(&call->timer, up->timeout);
    } else {                    /* a request from before a reload */
        struct timeval tv = conf_ms_tv(timeout_ms);
        event_add(&call->timer, &tv);
    }
    struct pconn *pc = pool_get(up);
    if (pc == NULL) {
        TAILQ_INSERT_TAIL(&up->waiting, call, next);
        return;
    }
    call_dispatch(call, pc);
}

/* ---- the answer ---- */

/* The end of the first empty line at or after from, or 0. */
static size_t find_blank_line(const char *p, size_t len, size_t from)
{
    const char *q = p + from, *end = p + len;
    while (q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
        if (q + 1 < end && q[1] == '\n')
            return (size_t)(q + 2 - p);
        if (q + 2 < end && q[1] == '\r' && q[2] == '\n')
            return (size_t)(q + 3 - p);
        q++;
    }
    return 0;
}

static int hv_push(struct pconn *pc, int n, const char *name, size_t name_len,
                   const char *value)
{
    if (n == pc->hv_cap) {
        int cap = pc->hv_cap ? pc->hv_cap * 2 : 32;
        void *p = realloc(pc->hv, (size_t)cap * sizeof(*pc->hv));
        if (p == NULL)
            return -1;
        pc->hv = p;
        pc->hv_cap = cap;
    }
    pc->hv[n].name = name;
    pc->hv[n].name_len = name_len;
    pc->hv[n].value = value;
    return 0;
}

/*
 * Parse the head h[0..len) in place (names and values are NUL-terminated
 * where they end). Sets resp, the body framing and reuse. 1: a final
 * answer; 0: an interim 1xx to skip; -1: not HTTP.
 */
static int parse_head(struct pconn *pc, char *h, size_t len)
{
    char *p = h, *end = h + len;
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
        p[8] != ' ' || p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' ||
        p[11] < '0' || p[11] > '9')
        return -1;
    int minor = p[7] - '0';
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (status == 101)
        return -1;                 /* no protocol switch through a proxy */
    char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL || (eol - p > 12 && p[12] != ' ' && p[12] != '\r'))
        return -1;
    p = eol + 1;

    int n = 0, has_close = 0, has_ka = 0, has_te = 0;
    int64_t clen = -1;
    char *prev_end = NULL;         /* where the last value was cut */
    while (p < end) {
        eol = memchr(p, '\n', (size_t)(end - p));
        char *le = eol;            /* line end, before any CR */
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p)
            break;                 /* the empty line */
        if (*p == ' ' || *p == '\t') {
            /* obs-fold: the line continues the previous value, joined
             * by one space (RFC 9112 5.2) */
            if (prev_end == NULL)
                return -1;
            char *c = p;
            while (c < le && (*c == ' ' || *c == '\t'))
                c++;
            char *dst = prev_end;
            if (c < le && dst > pc->hv[n - 1].value)
                *dst++ = ' ';
            memmove(dst, c, (size_t)(le - c));
            le = dst + (le - c);
        } else {
            char *colon = memchr(p, ':', (size_t)(le - p));
            if (colon == NULL)
                return -1;
            char *ne = colon;
            while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
                ne--;          /* a proxy removes blanks before the colon */
            if (ne == p)
                return -1;
            for (char *q = p; q < ne; q++)
                if (!http_tchar[(unsigned char)*q])
                    return -1;
            *ne = '\0';
            char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            if (hv_push(pc, n, p, (size_t)(ne - p), v) != 0)
                return -1;
            n++;
        }
        const char *vs = pc->hv[n - 1].value;
        char *ve = le;
        while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        *ve = '\0';
        prev_end = ve;
        for (const char *q = pc->hv[n - 1].value; q < ve; q++)
            if (*q == '\0' || *q == '\r')
                return -1;          /* a NUL or bare CR inside a value */
        p = eol + 1;
    }
    if (status < 200)
        return 0;
    if (status > 599)
        return -1;

    for (int i = 0; i < n; i++) {
        const char *k = pc->hv[i].name, *v = pc->hv[i].value;
        size_t kn = pc->hv[i].name_len;
        if (HTTP_IS(k, kn, "Content-Length")) {
            char *e;
            if (*v < '0' || *v > '9')
                return -1;
            errno = 0;
            long long x = strtoll(v, &e, 10);
            if (*e != '\0' || errno != 0 || (clen >= 0 && clen != x))
                return -1;
            clen = x;
        } else if (HTTP_IS(k, kn, "Transfer-Encoding")) {
            /* only chunked is read (no coding is undone here), and
             * HTTP/1.0 has no transfer codings (RFC 9112 6.1) */
            if (has_te || minor == 0 || evutil_ascii_strcasecmp(v, "chunked") != 0)
                return -1;
            has_te = 1;
        } else if (HTTP_IS(k, kn, "Connection")) {
            has_close |= http_token_in_list(v, "close", 5);
            has_ka |= http_token_in_list(v, "keep-alive", 10);
        }
    }
    pc->resp.status = status;
    pc->resp.nh = n;
    pc->resp.h = pc->hv;
    pc->reuse = !has_close && (minor == 1 || has_ka);
    if (pc->call->head || status == 204 || status == 304) {
        pc->left = 0;
        pc->rd = RD_LENGTH;
    } else if (has_te) {
        pc->rd = RD_CHUNK_SIZE;
        if (clen >= 0)
            pc->reuse = 0;         /* RFC 9112 6.3: close after both */
    } else if (clen >= 0) {
        pc->left = clen;
        pc->rd = RD_LENGTH;
    } else {
        pc->rd = RD_CLOSE;
        pc->reuse = 0;
    }
    return 1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Move up to n bytes of input to the body. */
static int body_take(struct pconn *pc, int64_t n)
{
    if ((int64_t)evbuffer_get_length(pc->resp.body) + n > pc->up->max_response)
        return -1;
    evbuffer_remove_buffer(pc->in, pc->resp.body, (size_t)n);
    return 0;
}

/* Move what is there of the pc->left bytes still to come to the body. */
static int body_take_left(struct pconn *pc, size_t avail)
{
    int64_t n = pc->left < (int64_t)avail ? pc->left : (int64_t)avail;
    if (n > 0 && body_take(pc, n) != 0)
        return -1;
    pc->left -= n;
    return 0;
}

/*
 * Parse what has been read. 1: the answer is whole; 0: more to read;
 * or the error to finish the call with.
 */
static int pc_parse(struct pconn *pc)
{
    for (;;) {
        size_t avail = evbuffer_get_length(pc->in);
        switch (pc->rd) {
        case RD_HEAD: {
            if (avail == 0)
                return 0;
            const char *p = (const char *)evbuffer_pullup(pc->in, -1);
            size_t from = pc->scanned > 2 ? pc->scanned - 2 : 0;
            size_t end = find_blank_line(p, avail, from);
            if (end == 0) {
                pc->scanned = avail;
                return avail > HEAD_MAX ? -UP_TOO_LARGE : 0;
            }
            if (end > HEAD_MAX)
                return -UP_TOO_LARGE;
            if (pc->head_cap < end + 1) {
                char *h = realloc(pc->head, end + 1);
                if (h == NULL)
                    return -UP_RESET;
                pc->head = h;
                pc->head_cap = end + 1;
            }
            memcpy(pc->head, p, end);
            pc->head[end] = '\0';
            evbuffer_drain(pc->in, end);
            pc->scanned = 0;
            int rc = parse_head(pc, pc->head, end);
            if (rc < 0)
                return -UP_RESET;
            if (rc == 0)
                continue;          /* 1xx: the final answer follows */
            if (pc->rd == RD_LENGTH && pc->left > pc->up->max_response)
                return -UP_TOO_LARGE;
            continue;
        }
        case RD_LENGTH:
            if (body_take_left(pc, avail) != 0)
                return -UP_TOO_LARGE;
            return pc->left == 0 ? 1 : 0;
        case RD_CLOSE:
            if (avail > 0 && body_take(pc, (int64_t)avail) != 0)
                return -UP_TOO_LARGE;
            return 0;              /* whole at EOF */
        case RD_CHUNK_SIZE: {
            size_t eol_len;
            struct evbuffer_ptr e = evbuffer_search_eol(pc->in, NULL, &eol_len,
                                                        EVBUFFER_EOL_CRLF);
            if (e.pos < 0)
                return avail > LINE_MAX_ ? -UP_RESET : 0;
            if (e.pos > LINE_MAX_)
                return -UP_RESET;
            char line[LINE_MAX_ + 1];
            evbuffer_remove(pc->in, line, (size_t)e.pos);
            evbuffer_drain(pc->in, eol_len);
            line[e.pos] = '\0';
            if (memchr(line, '\0', (size_t)e.pos) != NULL)
                return -UP_RESET;
            int64_t size = 0;
            const char *q = line;
            int d = hex_digit(*q);
            if (d < 0)
                return -UP_RESET;
            for (; (d = hex_digit(*q)) >= 0; q++) {
                if (size > (INT64_MAX >> 4))
                    return -UP_TOO_LARGE;
                size = size * 16 + d;
            }
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q != '\0' && *q != ';')
                return -UP_RESET;      /* only extensions after the size */
            if (size == 0) {
                pc->rd = RD_TRAILER;
                pc->scanned = 0;
                continue;
            }
            if (size > pc->up->max_response - (int64_t)evbuffer_get_length(pc->resp.body))
                return -UP_TOO_LARGE;
            pc->left = size;
            pc->rd = RD_CHUNK_DATA;
            continue;
        }
        case RD_CHUNK_DATA:
            if (body_take_left(pc, avail) != 0)
                return -UP_TOO_LARGE;
            if (pc->left > 0)
                return 0;
            pc->rd = RD_CHUNK_END;
            continue;
        case RD_CHUNK_END: {
            unsigned char crlf[2];
            if (avail < 1)
                return 0;
            evbuffer_copyout(pc->in, crlf, avail < 2 ? 1 : 2);
            if (crlf[0] == '\n') {
                evbuffer_drain(pc->in, 1);
            } else if (crlf[0] == '\r') {
                if (avail < 2)
                    return 0;
                if (crlf[1] != '\n')
                    return -UP_RESET;
                evbuffer_drain(pc->in, 2);
            } else {
                return -UP_RESET;
            }
            pc->rd = RD_CHUNK_SIZE;
            continue;
        }
        case RD_TRAILER: {
            /* trailer fields, dropped: up to and with the empty line */
            size_t eol_len;
            struct evbuffer_ptr e = evbuffer_search_eol(pc->in, NULL, &eol_len,
                                                        EVBUFFER_EOL_CRLF);
            if (e.pos < 0)
                return pc->scanned + avail > HEAD_MAX ? -UP_TOO_LARGE : 0;
            evbuffer_drain(pc->in, (size_t)e.pos + eol_len);
            pc->scanned += (size_t)e.pos + eol_len;
            if (pc->scanned > HEAD_MAX)
                return -UP_TOO_LARGE;
            if (e.pos == 0)
                return 1;
            continue;
        }
        }
    }
}

/* Read up to READ_SIZE bytes straight into pc->in's chains. */
static ssize_t pc_read_direct(struct pconn *pc)
{
    struct evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(pc->in, READ_SIZE, v, 2);
    if (nv <= 0)
        return -1;
    struct iovec iov[2];
    for (int i = 0; i < nv; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
    }
    ssize_t n = readv(pc->fd, iov, nv);
    pc->full_read = n > 0 && (size_t)n == iov[0].iov_len + (nv > 1 ? iov[1].iov_len : 0);
    if (n <= 0) {
        int e = errno;
        evbuffer_commit_space(pc->in, v, 0);
        errno = e;
        return n;
    }
    size_t left = (size_t)n;
    for (int i = 0; i < nv; i++) {
        v[i].iov_len = left < v[i].iov_len ? left : v[i].iov_len;
        left -= v[i].iov_len;
    }
    evbuffer_commit_space(pc->in, v, nv);
    return n;
}

/*
 * Read what is there, without asking how much (no FIONREAD). >0 read,
 * 0 the upstream closed, -1 error, -2 nothing now. The bytes of a large
 * body go straight into pc->in. The rest (a head, a small answer) lands
 * in the worker's rbuf and is copied in at its size: a 16 KB chain per
 * small answer, held while its completion waits on Redis and freed after,
 * made malloc trim and regrow its heap on every first request.
 */
static int pc_read(struct pconn *pc)
{
    ssize_t n;
    int big = pc->rd == RD_CLOSE ||
              ((pc->rd == RD_LENGTH || pc->rd == RD_CHUNK_DATA) && pc->left >= READ_SIZE);
    if (big) {
        n = pc_read_direct(pc);
    } else {
        n = read(pc->fd, pc->up->rbuf, sizeof pc->up->rbuf);
        pc->full_read = n == (ssize_t)sizeof pc->up->rbuf;
        if (n > 0 && evbuffer_add(pc->in, pc->up->rbuf, (size_t)n) != 0)
            return -1;
    }
    if (n <= 0) {
        if (n == 0)
            return 0;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -2 : -1;
    }
    return (int)n;
}

static void pc_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct pconn *pc = arg;
    (void)fd;
    if (what & EV_TIMEOUT) {
        /* idle for upstream_timeout: closed before the upstream's own
         * keep-alive timeout closes it under a request (if that is longer) */
        if (pc->state == PC_IDLE)
            pc_close(pc);
        return;
    }
    int n = pc_read(pc);
    if (n == -2)
        return;
    if (pc->state != PC_BUSY) {
        /* idle: the upstream closed it, or says what nobody asked */
        pc_close(pc);
        return;
    }
    struct upstream_call *call = pc->call;
    if (n < 0) {
        call_finish(call, NULL, UP_RESET);
        return;
    }
    if (n == 0) {
        if (pc->rd == RD_CLOSE) {   /* the body ends here */
            pc->reuse = 0;
            call_finish(call, &pc->resp, UP_OK);
            return;
        }
        call_finish(call, NULL, UP_RESET);
        return;
    }
    int rc = pc_parse(pc);
    if (rc == 0)
        return;
    if (rc < 0) {
        pc->reuse = 0;
        call_finish(call, NULL, (enum upstream_err)-rc);
        return;
    }
    call_finish(call, &pc->resp, UP_OK);
}

/* ---- the pool ---- */

struct upstream *upstream_new(struct event_base *base, const struct config *c,
                              char *err, size_t errlen)
{
    struct upstream *up = calloc(1, sizeof(*up));
    if (up == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    up->base = base;
    snprintf(up->host, sizeof(up->host), "%s", c->upstream_host);
    up->port = c->upstream_port;
    up->max_conns = c->upstream_connections;
    up->all = calloc((size_t)up->max_conns, sizeof(*up->all));
    TAILQ_INIT(&up->idle);
    TAILQ_INIT(&up->down);
    TAILQ_INIT(&up->waiting);
    if (up->all == NULL) {
        free(up);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    upstream_apply(up, c);
    return up;
}

/* Timeouts and limits may change on SIGHUP (the idle timeout and
 * max_response at once; each call has its request's upstream_timeout);
 * the address and pool size not. */
void upstream_apply(struct upstream *up, const struct config *c)
{
    struct timeval tv = conf_ms_tv(c->upstream_timeout_ms);
    /* every call of a worker has the same timeout: a common timeout keeps
     * them in a queue instead of the timer heap */
    up->timeout = event_base_init_common_timeout(up->base, &tv);
    if (up->timeout == NULL) {
        up->fallback_tv = tv;
        up->timeout = &up->fallback_tv;
    }
    up->timeout_ms = c->upstream_timeout_ms;
    up->max_response = c->max_response;
}

void upstream_free(struct upstream *up)
{
    if (up == NULL)
        return;
    struct upstream_call *call;
    while ((call = TAILQ_FIRST(&up->waiting)) != NULL) {
        TAILQ_REMOVE(&up->waiting, call, next);
        call_free(call);
    }
    for (int i = 0; i < up->n_conns; i++) {
        struct pconn *pc = up->all[i];
        if (pc->call != NULL)
            call_free(pc->call);
        if (pc->state != PC_DOWN) {
            event_free(pc->rev);
            event_free(pc->wev);
            evutil_closesocket(pc->fd);
        }
        evbuffer_free(pc->in);
        evbuffer_free(pc->resp.body);
        free(pc->head);
        free(pc->hv);
        free(pc);
    }
    free(up->all);
    free(up);
}
