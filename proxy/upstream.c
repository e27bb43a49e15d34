/*
 * upstream.c: the pool of keep-alive connections to the upstream, and one
 * call (request out, answer in, timeout, result) through them.
 *
 * Why not evhttp's client: measured with callgrind, evhttp_make_request,
 * its header list and its response parser cost about a third of a
 * pass-through request (a printf and three allocations per header line),
 * and its connection switches read interest off and on around every
 * request (two epoll_ctl each). Here a connection keeps one persistent
 * read event from connect to close, the request is written with one
 * writev in the turn it is made (its head and what the client sent of its
 * body by then), and the answer's head is parsed in place (lib/h1).
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
 * Answer framing (RFC 9112 6.3, lib/h1): no body after HEAD, 1xx, 204 and
 * 304; chunked if Transfer-Encoding says so (trailers are read and
 * dropped); else Content-Length; else the body ends when the upstream
 * closes. 1xx interim answers are skipped, but a 101 to an upgrade. An
 * answer's head is at most 64 KB. A connection is reused only after a
 * whole, length-framed answer to a whole request, from an upstream that
 * allows it; an idle one is closed after upstream_timeout.
 *
 * Backpressure: the caller pauses the reading of the answer while its
 * client is slow (upstream_call_pause), and stops giving request bytes
 * while upstream_call_full() (told by `drained` when to go on).
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
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>

#include "clock.h"
#include "log.h"
#include "netio.h"
#include "resolve.h"
#include "upstream.h"

#define HEAD_MAX   (64 * 1024)     /* an answer's head, or its trailers */
#define BIG_READ   (64 * 1024)     /* a read of a body being streamed */

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
    RD_CHUNKED,     /* a chunked body */
    RD_DONE         /* the whole answer is in */
};

struct pconn {
    struct upstream *up;
    enum pc_state state;
    evutil_socket_t fd;
    struct event rev;              /* EV_READ|EV_PERSIST, connect to close */
    struct event wev;              /* connect, and writes the socket did not take */
    struct evbuffer *in;           /* read, not parsed yet */
    struct upstream_call *call;    /* while CONNECTING or BUSY */
    TAILQ_ENTRY(pconn) link;       /* in up->idle or up->down */
    /* the answer being read */
    enum rd_state rd;
    int64_t left;                  /* RD_LENGTH: bytes to come */
    size_t scanned;                /* RD_HEAD: bytes without an end */
    struct h1_chunked chunk;
    char *head;                    /* the head, parsed in place */
    size_t head_cap;
    struct h1_header *hv;
    int hv_cap;
    unsigned reuse:1;              /* the answer allows another request */
    unsigned full_read:1;          /* the last read filled its buffer */
    unsigned events:1;             /* rev and wev are assigned */
    struct timeval idle_at;        /* when it went idle (the loop's cached, coarse time) */
};

TAILQ_HEAD(pconnq, pconn);

struct upstream_call {
    struct upstream *up;
    struct pconn *conn;            /* while CONNECTING or BUSY */
    struct event timer;
    struct timeval tv;             /* its timeout */
    const struct timeval *tvp;     /* &tv, or the same as a common timeout */
    struct evbuffer *out;          /* the request; drained as it is written */
    size_t sent;                   /* bytes of it written */
    const struct upstream_ops *ops;
    void *arg;
    unsigned flags;                /* UPC_* */
    unsigned ended:1;              /* all of the request was given */
    unsigned retried:1;            /* already sent again on a new connection */
    unsigned paused:1;             /* the caller reads no answer now */
    unsigned want_drained:1;
    unsigned refused_now:1;        /* answer UP_REFUSED from the timer */
    unsigned in_cb:1;              /* a callback of the caller is running */
    unsigned aborted:1;            /* free it when that callback returns */
    unsigned detached:1;           /* its socket was taken (101) */
    TAILQ_ENTRY(upstream_call) next; /* waiting for a connection */
};

TAILQ_HEAD(callq, upstream_call);

struct upstream {
    struct event_base *base;
    char host[256];
    int port;
    const struct timeval *idle_tv; /* a common timeout: idle connections */
    struct timeval fallback_tv;
    int64_t timeout_ms;
    int max_conns;
    int n_conns;
    struct pconnq idle;            /* connected, free; most recent first */
    struct pconnq down;            /* free, no socket */
    struct pconn **all;
    struct callq waiting;
    struct evbuffer *scratch;      /* body bytes on their way to a caller */
    char rbuf[NETIO_READ];         /* reads that are not a large body's */
    struct upstream_addr addr;     /* where connections go */
    struct resolve *lookup;        /* the name being looked up again */
    double looked_at;              /* when that last began (now_ms) */
};

static void call_dispatch(struct upstream_call *call, struct pconn *pc);
static void call_refuse_later(struct upstream_call *call);
static void pc_on_read(evutil_socket_t fd, short what, void *arg);
static void pc_on_write(evutil_socket_t fd, short what, void *arg);
static void call_arm(struct upstream_call *call);

/* ---- the address ---- */

/* The first of ai's addresses is where connections go; ai is freed. */
static void addr_take(struct upstream_addr *a, struct addrinfo *ai)
{
    if (ai->ai_addrlen <= sizeof(a->ss)) {
        memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
    }
    freeaddrinfo(ai);
}

void upstream_addr_lookup(const struct config *c, struct upstream_addr *a)
{
    struct addrinfo *ai = NULL;
    memset(a, 0, sizeof(*a));
    if (resolve_numeric(c->upstream_host, c->upstream_port, &ai) == 0) {
        addr_take(a, ai);
        return;
    }
    a->named = 1;
    int e = resolve_now(c->upstream_host, c->upstream_port, AI_ADDRCONFIG, &ai);
    if (e == 0)
        addr_take(a, ai);
    else                          /* it may come up later: looked up again then */
        log_say(LOG_WARN, "upstream host not resolved at start", gai_strerror(e));
}

static void on_up_resolved(void *arg, struct addrinfo *ai, int err)
{
    struct upstream *up = arg;
    up->lookup = NULL;
    if (ai != NULL)
        addr_take(&up->addr, ai);
    else if (up->addr.len == 0)
        log_say(LOG_WARN, "upstream host not resolved", gai_strerror(err));
}

/* A connection to the address failed, or none is known: the name (if it
 * is one) looked up again, off the loop, at most once a second; the
 * connections meanwhile use the address they had. */
static void up_relookup(struct upstream *up)
{
    double now = now_ms();
    if (!up->addr.named || up->lookup != NULL ||
        (up->looked_at > 0 && now - up->looked_at < 1000))
        return;
    up->looked_at = now;
    up->lookup = resolve_start(up->base, up->host, up->port, AI_ADDRCONFIG, on_up_resolved, up);
}

/* ---- connections ---- */

static void pc_close(struct pconn *pc)
{
    if (pc->state == PC_DOWN)
        return;
    if (pc->state == PC_IDLE)
        TAILQ_REMOVE(&pc->up->idle, pc, link);
    event_del(&pc->rev);
    event_del(&pc->wev);
    if (pc->fd >= 0)
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
    if (up->addr.len == 0) {
        up_relookup(up);
        return -1;
    }
    int fd = socket(up->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, (const struct sockaddr *)&up->addr.ss, up->addr.len);
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        up_relookup(up);
        return -1;
    }
    event_assign(&pc->rev, up->base, fd, EV_READ | EV_PERSIST, pc_on_read, pc);
    event_assign(&pc->wev, up->base, fd, EV_WRITE, pc_on_write, pc);
    if (event_add(&pc->wev, NULL) != 0) {
        close(fd);
        return -1;
    }
    pc->fd = fd;
    pc->state = PC_CONNECTING;
    return 0;
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

static struct pconn *pool_get(struct upstream *up)
{
    struct pconn *pc = TAILQ_FIRST(&up->idle);
    if (pc != NULL) {
        TAILQ_REMOVE(&up->idle, pc, link);
        pc->state = PC_BUSY;
        /* (its idle timeout may still fire while it is busy: pc_on_read
         * ignores it then; taking it off would cost two epoll_ctl) */
        /* kept in this very turn: pc_on_read has not seen what came with
         * its answer, a FIN or stray bytes, so look; then the call
         * connects anew. The loop's cached time is the turn's, but coarse
         * (a few ms): a connection kept in an earlier turn of the same
         * tick is looked at too (a recv; see new_base in main.c) */
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
    if (pc->in == NULL) {
        free(pc);
        return NULL;
    }
    pc->up = up;
    pc->fd = -1;
    pc->state = PC_DOWN;
    up->all[up->n_conns++] = pc;
    return pc;
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
        event_add(&pc->rev, up->idle_tv);  /* closed after that long idle */
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

/* Take the call off its connection; put the connection back (closed
 * unless reusable). */
static void call_unlink(struct upstream_call *call, enum upstream_err err)
{
    struct pconn *pc = call->conn;
    call->conn = NULL;
    if (pc == NULL)
        return;
    pc->call = NULL;
    /* after a read that filled its buffer, the socket may hold more than
     * the answer: bytes nobody asked for close it, as they would an idle
     * one, before a request could take them for its answer */
    if (err != UP_OK || !pc->reuse || !call->ended || evbuffer_get_length(call->out) > 0 ||
        evbuffer_get_length(pc->in) > 0 || pc->rd != RD_DONE ||
        (pc->full_read && !pc_quiet(pc)))
        pc_close(pc);
    pool_put(call->up, pc);
}

/* The call's one result: tell the caller, free the call, put the
 * connection back. */
static void call_finish(struct upstream_call *call, enum upstream_err err)
{
    call_unlink(call, err);
    call->in_cb = 1;
    call->ops->done(call->arg, err);
    call_free(call);
}

static void call_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct upstream_call *call = arg;
    (void)fd; (void)what;
    if (call->refused_now) {
        call_finish(call, UP_REFUSED);
        return;
    }
    if (call->conn == NULL) {          /* still waiting for a connection */
        TAILQ_REMOVE(&call->up->waiting, call, next);
        call_finish(call, UP_REFUSED);
        return;
    }
    if (call->conn->state == PC_CONNECTING) {
        up_relookup(call->up);     /* the address may have moved on */
        call_finish(call, UP_REFUSED);
        return;
    }
    call_finish(call, UP_TIMEOUT);
}

/* No connection could be had: UP_REFUSED, from the loop (never within the
 * caller's own call). */
static void call_refuse_later(struct upstream_call *call)
{
    call->refused_now = 1;
    event_active(&call->timer, EV_TIMEOUT, 1);
}

struct upstream_call *upstream_call_new(struct upstream *up,
                                        const struct upstream_ops *ops, void *arg)
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
    call->ops = ops;
    call->arg = arg;
    evtimer_assign(&call->timer, up->base, call_on_timeout, call);
    return call;
}

struct evbuffer *upstream_call_buffer(struct upstream_call *call)
{
    return call->out;
}

/*
 * The timer: with UPC_WHOLE it was set once, at send. Otherwise it runs
 * while the call waits on the upstream (bytes to write, or the answer,
 * which the caller is not holding back), and restarts on each move.
 */
static void call_arm(struct upstream_call *call)
{
    if (call->flags & UPC_WHOLE || call->refused_now)
        return;
    struct pconn *pc = call->conn;
    int waiting = pc == NULL || pc->state == PC_CONNECTING ||
                  evbuffer_get_length(call->out) > 0 || (call->ended && !call->paused);
    if (waiting)
        event_add(&call->timer, call->tvp);
    else
        event_del(&call->timer);
}

/*
 * Write what the socket takes of the request; the rest when it is
 * writable. notify: from the connection's own event, so `drained` may be
 * told (never within a call of the caller's).
 */
static void pc_write(struct pconn *pc, int notify)
{
    struct upstream_call *call = pc->call;
    if (evbuffer_get_length(call->out) == 0)
        return;
    int n = evbuffer_write(call->out, pc->fd);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        if (call->sent == 0 && !call->retried) {
            /* nothing of it left: a reused connection the upstream had
             * closed. Once more, on a new connection. */
            call->retried = 1;
            pc_close(pc);
            call_dispatch(call, pc);
            return;
        }
        if (call->sent == 0) {
            call_unlink(call, UP_REFUSED);
            call_refuse_later(call);
            return;
        }
        /* part of it left: the upstream may have answered early and
         * closed (a 413 before the whole body). Stop writing; the read
         * side finishes the call with that answer, or with the reset. */
        evbuffer_drain(call->out, evbuffer_get_length(call->out));
        call->ended = 1;
        return;
    }
    if (n > 0)
        call->sent += (size_t)n;
    if (evbuffer_get_length(call->out) > 0)
        event_add(&pc->wev, NULL);
    call_arm(call);
    if (notify && call->want_drained && evbuffer_get_length(call->out) <= NETIO_WINDOW / 4 &&
        !call->ended) {
        call->want_drained = 0;
        call->in_cb = 1;
        call->ops->drained(call->arg);
        call->in_cb = 0;
        if (call->aborted)
            call_free(call);
    }
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
        if (e != 0 || event_add(&pc->rev, NULL) != 0) {
            if (e != 0)
                up_relookup(pc->up);
            call_finish(pc->call, UP_REFUSED);
            return;
        }
        pc->state = PC_BUSY;
    }
    if (pc->call != NULL)
        pc_write(pc, 1);
}

static void call_dispatch(struct upstream_call *call, struct pconn *pc)
{
    call->conn = pc;
    pc->call = call;
    pc->rd = RD_HEAD;
    pc->scanned = 0;
    pc->reuse = 0;
    if (pc->state == PC_DOWN && pc_connect(pc) != 0) {
        call_unlink(call, UP_REFUSED);
        call_refuse_later(call);
        return;
    }
    call_arm(call);
    /* The request leaves from the connection's own event, later in this
     * loop turn (when connected, if connecting): the body a client sent
     * with its head is handed over (upstream_call_write) after the caller
     * returns, and goes with the head in one writev, not two. */
    if (pc->state != PC_CONNECTING)
        event_active(&pc->wev, EV_WRITE, 1);
}

void upstream_call_send(struct upstream_call *call, unsigned flags, int64_t timeout_ms)
{
    struct upstream *up = call->up;

    call->flags = flags;
    call->ended = !(flags & UPC_MORE);
    call->tv = conf_ms_tv(timeout_ms);
    /* the usual timeout is a common one: a queue, not the timer heap */
    call->tvp = timeout_ms == up->timeout_ms ? up->idle_tv : &call->tv;
    if (flags & UPC_WHOLE)
        event_add(&call->timer, call->tvp);
    struct pconn *pc = pool_get(up);
    if (pc == NULL) {
        TAILQ_INSERT_TAIL(&up->waiting, call, next);
        if (!(flags & UPC_WHOLE))
            event_add(&call->timer, call->tvp);
        return;
    }
    call->in_cb = 1;              /* nothing calls back from here */
    call_dispatch(call, pc);
    call->in_cb = 0;
}

void upstream_call_write(struct upstream_call *call, struct evbuffer *data)
{
    if (call->ended) {            /* the upstream stopped taking it */
        evbuffer_drain(data, evbuffer_get_length(data));
        return;
    }
    evbuffer_add_buffer(call->out, data);
    if (call->conn != NULL && call->conn->state == PC_BUSY &&
        !event_pending(&call->conn->wev, EV_WRITE, NULL))
        pc_write(call->conn, 0);
    if (upstream_call_full(call))
        call->want_drained = 1;
}

void upstream_call_end(struct upstream_call *call)
{
    call->ended = 1;
    call_arm(call);
}

int upstream_call_full(const struct upstream_call *call)
{
    return evbuffer_get_length(call->out) >= NETIO_WINDOW;
}

void upstream_call_each_wait(struct upstream_call *call)
{
    call->flags &= ~(unsigned)UPC_WHOLE;
    call_arm(call);
}

void upstream_call_pause(struct upstream_call *call, int pause)
{
    if (call->paused == (unsigned)(pause != 0))
        return;
    call->paused = pause != 0;
    struct pconn *pc = call->conn;
    if (pc != NULL && pc->state == PC_BUSY) {
        if (pause)
            event_del(&pc->rev);
        else
            event_add(&pc->rev, NULL);
        /* what is already read goes on the next turn */
        if (!pause && evbuffer_get_length(pc->in) > 0)
            event_active(&pc->rev, EV_READ, 1);
    }
    call_arm(call);
}

void upstream_call_abort(struct upstream_call *call)
{
    struct pconn *pc = call->conn;
    if (pc != NULL) {
        pc->call = NULL;
        call->conn = NULL;
        pc_close(pc);
        pool_put(call->up, pc);
    } else if (!call->detached && !call->refused_now) {
        TAILQ_REMOVE(&call->up->waiting, call, next);
    }
    if (call->in_cb) {
        call->aborted = 1;
        event_del(&call->timer);
        return;
    }
    call_free(call);
}

evutil_socket_t upstream_call_detach(struct upstream_call *call, struct evbuffer *rest)
{
    struct pconn *pc = call->conn;
    evutil_socket_t fd = pc->fd;
    event_del(&pc->rev);
    event_del(&pc->wev);
    evbuffer_add_buffer(rest, pc->in);
    pc->fd = -1;
    pc->state = PC_DOWN;
    pc->call = NULL;
    call->conn = NULL;
    call->detached = 1;
    pool_put(call->up, pc);
    return fd;
}

/* ---- the answer ---- */

/* Hand n bytes of input to the caller as body. */
static void give_body(struct pconn *pc, size_t n)
{
    struct upstream_call *call = pc->call;
    struct evbuffer *b = pc->up->scratch;
    evbuffer_remove_buffer(pc->in, b, n);
    call->in_cb = 1;
    call->ops->body(call->arg, b);
    call->in_cb = 0;
    evbuffer_drain(b, evbuffer_get_length(b));
}

/* The head ends at `end` bytes of input: parse it. 1: a final answer
 * (its head told), 0: an interim one skipped, -1: not HTTP. */
static int take_head(struct pconn *pc, size_t end)
{
    struct upstream_call *call = pc->call;
    if (pc->head_cap < end + 1) {
        char *h = realloc(pc->head, end + 1);
        if (h == NULL)
            return -1;
        pc->head = h;
        pc->head_cap = end + 1;
    }
    evbuffer_remove(pc->in, pc->head, end);
    pc->head[end] = '\0';
    int lines = 0;
    for (const char *q = pc->head; (q = memchr(q, '\n', (size_t)(pc->head + end - q))) != NULL;
         q++)
        lines++;
    if (lines > pc->hv_cap) {
        void *p = realloc(pc->hv, (size_t)lines * sizeof(*pc->hv));
        if (p == NULL)
            return -1;
        pc->hv = p;
        pc->hv_cap = lines;
    }
    struct h1_response resp;
    if (h1_parse_response(pc->head, end, (call->flags & UPC_HEAD) != 0, &resp,
                          pc->hv, pc->hv_cap) != 0)
        return -1;
    if (resp.status == 101) {
        if (!(call->flags & UPC_UPGRADE))
            return -1;             /* a switch nobody asked for */
    } else if (resp.status < 200) {
        return 0;                  /* 1xx: the final answer follows */
    }
    pc->reuse = resp.keep_alive;
    switch (resp.body) {
    case H1_BODY_NONE:
        pc->rd = RD_DONE;
        break;
    case H1_BODY_LENGTH:
        pc->rd = RD_LENGTH;
        pc->left = resp.length;
        break;
    case H1_BODY_CHUNKED:
        pc->rd = RD_CHUNKED;
        h1_chunked_init(&pc->chunk, HEAD_MAX);
        pc->chunk.lenient = 1;        /* read as a recipient may (RFC 9112 2.2) */
        break;
    case H1_BODY_CLOSE:
        pc->rd = RD_CLOSE;
        break;
    }
    call->in_cb = 1;
    call->ops->head(call->arg, &resp);
    call->in_cb = 0;
    if (resp.status == 101 && !call->detached && !call->aborted)
        return -1;                 /* the caller did not take the socket */
    return 1;
}

/*
 * Parse what has been read and hand it on, while the caller reads. 1: the
 * answer is whole; 0: more to read (or paused); or -error.
 */
static int pc_parse(struct pconn *pc)
{
    struct upstream_call *call = pc->call;
    for (;;) {
        if (call->aborted || call->detached)
            return 0;
        size_t avail = evbuffer_get_length(pc->in);
        switch (pc->rd) {
        case RD_HEAD: {
            if (avail == 0)
                return 0;
            size_t look = avail < HEAD_MAX + 4 ? avail : HEAD_MAX + 4;
            const char *p = (const char *)evbuffer_pullup(pc->in, (ev_ssize_t)look);
            avail = look;
            size_t end = h1_response_end(p, avail, pc->scanned);
            if (end == 0) {
                pc->scanned = avail;
                return avail > HEAD_MAX ? -UP_TOO_LARGE : 0;
            }
            if (end > HEAD_MAX)
                return -UP_TOO_LARGE;
            pc->scanned = 0;
            int rc = take_head(pc, end);
            if (rc < 0)
                return -UP_RESET;
            continue;
        }
        case RD_DONE:
            return 1;
        case RD_LENGTH: {
            if (pc->left == 0) {
                pc->rd = RD_DONE;
                continue;
            }
            if (avail == 0 || call->paused)
                return 0;
            size_t k = (int64_t)avail < pc->left ? avail : (size_t)pc->left;
            pc->left -= (int64_t)k;
            give_body(pc, k);
            continue;
        }
        case RD_CLOSE:
            if (avail == 0 || call->paused)
                return 0;
            give_body(pc, avail);
            continue;
        case RD_CHUNKED: {
            if (avail == 0 || call->paused)
                return 0;
            size_t k;
            enum h1_chunk_rc rc = netio_chunked_step(&pc->chunk, pc->in, &k);
            if (rc == H1_CHUNK_ERROR)
                return pc->chunk.too_large ? -UP_TOO_LARGE : -UP_RESET;
            if (rc == H1_CHUNK_DONE)
                pc->rd = RD_DONE;
            if (rc == H1_CHUNK_DATA) {
                if (k == 0)
                    return 0;
                h1_chunked_took(&pc->chunk, k);
                give_body(pc, k);
            }
            continue;
        }
        }
    }
}

/* Parse, hand on, and finish the call if the answer is whole or broken. */
static void pc_parse_and_deliver(struct pconn *pc)
{
    struct upstream_call *call = pc->call;
    int rc = pc_parse(pc);
    if (call->aborted) {
        call_free(call);
        return;
    }
    if (call->detached) {
        call_free(call);
        return;
    }
    if (rc == 0) {
        call_arm(call);
        return;
    }
    if (rc < 0) {
        pc->reuse = 0;
        call_finish(call, (enum upstream_err)-rc);
        return;
    }
    call_finish(call, UP_OK);
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
    struct upstream_call *call = pc->call;
    int big = call != NULL && (pc->rd == RD_CLOSE || pc->rd == RD_CHUNKED ||
                               (pc->rd == RD_LENGTH && pc->left >= NETIO_READ));
    int n = -2, full = 0;
    if (call == NULL || !call->paused) {
        n = netio_read(pc->fd, pc->in, pc->up->rbuf, big ? BIG_READ : 0, &full);
        pc->full_read = full;
    }
    if (n == -2 && (call == NULL || evbuffer_get_length(pc->in) == 0))
        return;
    if (pc->state != PC_BUSY) {
        /* idle: the upstream closed it, or says what nobody asked */
        pc_close(pc);
        return;
    }
    if (n == -1) {
        call_finish(call, UP_RESET);
        return;
    }
    if (n == 0) {
        int rc = pc_parse(pc);     /* what came before the close */
        if (call->aborted || call->detached) {
            call_free(call);
            return;
        }
        if (rc > 0) {
            call_finish(call, UP_OK);
            return;
        }
        if (rc == 0 && pc->rd == RD_CLOSE && !call->paused &&
            evbuffer_get_length(pc->in) == 0) {
            pc->rd = RD_DONE;      /* the body ends here */
            pc->reuse = 0;
            call_finish(call, UP_OK);
            return;
        }
        if (rc == 0 && call->paused) {
            /* the rest waits for the caller; the close is seen again */
            event_del(&pc->rev);
            return;
        }
        call_finish(call, rc < 0 ? (enum upstream_err)-rc : UP_RESET);
        return;
    }
    pc_parse_and_deliver(pc);
}

/* ---- the pool ---- */

struct upstream *upstream_new(struct event_base *base, const struct config *c,
                              const struct upstream_addr *a, char *err, size_t errlen)
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
    up->scratch = evbuffer_new();
    TAILQ_INIT(&up->idle);
    TAILQ_INIT(&up->down);
    TAILQ_INIT(&up->waiting);
    if (up->all == NULL || up->scratch == NULL) {
        free(up->all);
        if (up->scratch)
            evbuffer_free(up->scratch);
        free(up);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    upstream_apply(up, c);
    up->addr = *a;
    return up;
}

/* Timeouts may change on SIGHUP (the idle timeout at once; each call has
 * its request's upstream_timeout); the address and pool size not. */
void upstream_apply(struct upstream *up, const struct config *c)
{
    struct timeval tv = conf_ms_tv(c->upstream_timeout_ms);
    up->idle_tv = event_base_init_common_timeout(up->base, &tv);
    if (up->idle_tv == NULL) {
        up->fallback_tv = tv;
        up->idle_tv = &up->fallback_tv;
    }
    up->timeout_ms = c->upstream_timeout_ms;
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
            event_del(&pc->rev);
            event_del(&pc->wev);
            evutil_closesocket(pc->fd);
        }
        evbuffer_free(pc->in);
        free(pc->head);
        free(pc->hv);
        free(pc);
    }
    resolve_cancel(up->lookup);
    evbuffer_free(up->scratch);
    free(up->all);
    free(up);
}
