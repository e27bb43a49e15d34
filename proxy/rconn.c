/*
 * rconn.c: a Redis connection of our own, so that TLS, ACL users, Sentinel
 * and Cluster all run on one transport (hiredis 0.14's async API has none
 * of them); hiredis's reader still parses every reply.
 *
 * Plain TCP is a socket with a persistent read event, and writes made at
 * the end of the loop turn, all of that turn's commands in one write (an
 * EV_WRITE only when the kernel buffer is full). TLS is a
 * bufferevent_openssl on the same socket once TCP is up.
 *
 * Commands are answered in the order sent (Redis answers a connection's
 * commands in order), so the callbacks wait in a ring. The oldest
 * unanswered command bounds the connection: past timeout_ms the
 * connection is dropped, since a Redis that does not answer one command
 * will not answer the next.
 *
 * Freeing or dropping inside a callback is deferred until the callbacks on
 * the stack return (in_cb), as hiredis's async.c does with REDIS_IN_CALLBACK.
 */
#include "rconn.h"
#include "resolve.h"
#include "tls.h"
#include "resp.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <hiredis.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

enum rc_state {
    RC_IDLE,          /* not connected; a retry may be scheduled */
    RC_CONNECTING,    /* TCP connect in progress */
    RC_HANDSHAKE,     /* TLS handshake in progress */
    RC_UP,            /* connected, AUTH and the owner's setup sent */
    RC_READY          /* the owner's setup answered */
};

struct rcmd {
    rconn_cb cb;
    void *arg;
    double t;                       /* when queued, monotonic ms */
};

struct rconn {
    struct event_base *base;
    const struct rconn_hooks *h;
    void *owner;
    char host[256];
    int port;
    SSL_CTX *tls;
    char server_name[256];
    char user[128];
    char pass[256];
    int db;
    int64_t timeout_ms, setup_ms;
    const char *what;
    enum rc_state state;
    int fd;                         /* plain, or TCP before TLS; -1 */
    struct bufferevent *bev;        /* TLS, owns fd then */
    struct event *rev, *wev;        /* plain read; write (or connect) */
    struct evbuffer *out;           /* this turn's commands */
    redisReader *reader;
    struct rcmd *q;                 /* ring of callbacks */
    size_t qhead, qlen, qcap;
    struct event *timer;            /* the oldest command's bound */
    struct event *setup_timer;
    struct event *retry;
    struct event *flush_ev;
    int backoff_ms;
    struct addrinfo *ai, *ai_next;  /* addresses being tried */
    struct resolve *lookup;         /* the host's name being resolved */
    int in_cb;                      /* callbacks on the stack */
    unsigned flush_pending:1;
    unsigned subscribed:1;
    unsigned free_pending:1;
    unsigned drop_pending:1;
    char drop_why[320];
    char last_err[320];             /* why the last attempt failed; "" once ready */
    char status[700];
};

static double rconn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static struct timeval rconn_tv(double ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((long long)ms % 1000) * 1000 };
    return tv;
}

static void rconn_connect(struct rconn *c);
static void rconn_teardown(struct rconn *c, const char *why);
static void rconn_after_cb(struct rconn *c);

static void rconn_say(struct rconn *c, const char *why)
{
    snprintf(c->last_err, sizeof(c->last_err), "%.300s", why);
    snprintf(c->status, sizeof(c->status), "%s at %s:%d: %s", c->what, c->host, c->port,
             c->last_err);
}

/* Where an attempt is, and why the one before failed: /readyz keeps
 * saying what is wrong while the next attempt is under way. */
static void rconn_progress(struct rconn *c, const char *what)
{
    if (c->last_err[0] != '\0')
        snprintf(c->status, sizeof(c->status), "%s at %s:%d: %s (the last attempt: %s)",
                 c->what, c->host, c->port, what, c->last_err);
    else
        snprintf(c->status, sizeof(c->status), "%s at %s:%d: %s", c->what, c->host, c->port,
                 what);
}

/* ---- the queue of callbacks ---- */

static int rconn_push_cmd(struct rconn *c, rconn_cb cb, void *arg)
{
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? c->qcap * 2 : 64;
        struct rcmd *q = malloc(cap * sizeof(*q));
        if (q == NULL)
            return -1;
        for (size_t i = 0; i < c->qlen; i++)
            q[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = q;
        c->qcap = cap;
        c->qhead = 0;
    }
    struct rcmd *e = &c->q[(c->qhead + c->qlen) % c->qcap];
    e->cb = cb;
    e->arg = arg;
    e->t = rconn_now();
    c->qlen++;
    if (!evtimer_pending(c->timer, NULL)) {
        struct timeval tv = rconn_tv((double)c->timeout_ms);
        evtimer_add(c->timer, &tv);
    }
    return 0;
}

static struct rcmd rconn_pop_cmd(struct rconn *c)
{
    struct rcmd e = c->q[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    return e;
}

static void on_cmd_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    (void)fd; (void)what;
    if (c->qlen == 0 || c->in_cb > 0)
        return;
    double age = rconn_now() - c->q[c->qhead].t;
    if (age >= (double)c->timeout_ms) {
        char why[128];
        snprintf(why, sizeof(why), "did not answer within %lldms", (long long)c->timeout_ms);
        rconn_drop(c, why);
        return;
    }
    struct timeval tv = rconn_tv((double)c->timeout_ms - age);
    evtimer_add(c->timer, &tv);
}

/* ---- replies ---- */

static int rconn_is_message(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0] == NULL ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    const redisReply *k = r->element[0];
    return (k->len == 7 && memcmp(k->str, "message", 7) == 0) ||
           (k->len == 8 && memcmp(k->str, "pmessage", 8) == 0);
}

static void rconn_dispatch(struct rconn *c, redisReply *r)
{
    if (c->subscribed && rconn_is_message(r)) {
        if (c->h->push != NULL)
            c->h->push(c->owner, c, r);
        return;
    }
    if (c->qlen == 0) {
        rconn_drop(c, "sent a reply nobody asked for");
        return;
    }
    struct rcmd e = rconn_pop_cmd(c);
    e.cb(e.arg, c, r);
}

/* Feed bytes to the reader and answer every complete reply. */
static void rconn_feed(struct rconn *c, const char *buf, size_t n)
{
    if (redisReaderFeed(c->reader, buf, n) != REDIS_OK) {
        rconn_drop(c, "out of memory reading a reply");
        return;
    }
    while (!c->drop_pending && !c->free_pending && c->state >= RC_UP) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            char why[200];
            snprintf(why, sizeof(why), "protocol error: %.150s", c->reader->errstr);
            rconn_drop(c, why);
            break;
        }
        if (reply == NULL)
            break;
        rconn_dispatch(c, reply);
        freeReplyObject(reply);
    }
}

/* Every entry from libevent runs its body between these two: what the
 * callbacks it makes ask for (drop, free) happens after them. */
static void rconn_enter(struct rconn *c)
{
    c->in_cb++;
}

static void rconn_leave(struct rconn *c)
{
    c->in_cb--;
    rconn_after_cb(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    char buf[16384];
    (void)what;
    rconn_enter(c);
    /* a large answer (a replayed body) in a few turns, not one per 16 KB */
    for (int i = 0; i < 16 && c->state >= RC_UP && !c->drop_pending && !c->free_pending; i++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            rconn_feed(c, buf, (size_t)n);
            if ((size_t)n < sizeof(buf))
                break;
            continue;
        }
        if (n == 0)
            rconn_drop(c, "closed the connection");
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            rconn_drop(c, strerror(errno));
        break;
    }
    rconn_leave(c);
}

static void on_bev_read(struct bufferevent *bev, void *arg)
{
    struct rconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    rconn_enter(c);                      /* (no teardown until the end) */
    while (evbuffer_get_length(in) > 0 && c->state >= RC_UP && !c->drop_pending &&
           !c->free_pending) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t n = v.iov_len;
        rconn_feed(c, v.iov_base, n);    /* the reader copies what it is fed */
        evbuffer_drain(in, n);
    }
    rconn_leave(c);
}

/* ---- writing ---- */

static void rconn_write_plain(struct rconn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(c->wev, NULL);
                return;
            }
            if (errno == EINTR)
                continue;
            rconn_drop(c, strerror(errno));
            return;
        }
    }
    event_del(c->wev);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    (void)fd; (void)what;
    rconn_enter(c);
    rconn_write_plain(c);
    rconn_leave(c);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    (void)fd; (void)what;
    rconn_enter(c);
    /* flush_pending stays set through the hook: what it sends goes now */
    if (c->state >= RC_UP && !c->drop_pending && c->h->flush != NULL)
        c->h->flush(c->owner, c);
    c->flush_pending = 0;
    if (c->state >= RC_UP && !c->drop_pending) {
        if (c->bev != NULL) {
            if (bufferevent_write_buffer(c->bev, c->out) != 0)
                rconn_drop(c, "out of memory writing");
        } else {
            rconn_write_plain(c);
        }
    }
    rconn_leave(c);
}

int rconn_send(struct rconn *c, const char *head, size_t hlen, const char *body,
               size_t blen, rconn_cb cb, void *arg)
{
    if (c->state < RC_UP || c->drop_pending || c->free_pending)
        return -1;
    if ((hlen > 0 && evbuffer_add(c->out, head, hlen) != 0) ||
        (blen > 0 && evbuffer_add(c->out, body, blen) != 0) ||
        rconn_push_cmd(c, cb, arg) != 0) {
        rconn_drop(c, "out of memory queueing a command");
        return -1;
    }
    if (!c->flush_pending) {
        c->flush_pending = 1;
        event_active(c->flush_ev, EV_WRITE, 1);
    }
    return 0;
}

int rconn_sendv(struct rconn *c, rconn_cb cb, void *arg, int argc, const char *const *argv)
{
    struct resp_buf b = { 0 };
    int rc = -1;
    if (resp_command(&b, argc, argv) == 0)
        rc = rconn_send(c, b.p, b.len, NULL, 0, cb, arg);
    resp_free(&b);
    return rc;
}

/* ---- connecting ---- */

int rconn_refused(struct rconn *c, const redisReply *r, const char *what)
{
    if (r == NULL || r->type != REDIS_REPLY_ERROR)
        return 0;
    char why[300];
    snprintf(why, sizeof(why), "%.60s: %.200s", what, r->str);
    rconn_drop(c, why);
    return 1;
}

static void on_auth(void *arg, struct rconn *c, const redisReply *r)
{
    (void)arg;
    rconn_refused(c, r, "authentication failed");
}

static void on_select(void *arg, struct rconn *c, const redisReply *r)
{
    (void)arg;
    rconn_refused(c, r, "SELECT failed");
}

/* TCP (and TLS) up: AUTH, SELECT, then the owner's setup. */
static void rconn_up(struct rconn *c)
{
    c->state = RC_UP;
    if (c->ai != NULL) {
        freeaddrinfo(c->ai);
        c->ai = c->ai_next = NULL;
    }
    if (c->pass[0] != '\0') {
        const char *argv[3] = { "AUTH", c->user, c->pass };
        if (c->user[0] != '\0')
            rconn_sendv(c, on_auth, NULL, 3, argv);
        else {
            argv[1] = c->pass;
            rconn_sendv(c, on_auth, NULL, 2, argv);
        }
    }
    if (c->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", c->db);
        const char *argv[2] = { "SELECT", db };
        rconn_sendv(c, on_select, NULL, 2, argv);
    }
    rconn_progress(c, "connected, setting up");
    if (c->h->up != NULL)
        c->h->up(c->owner, c);
}

static void on_bev_event(struct bufferevent *bev, short what, void *arg)
{
    struct rconn *c = arg;
    (void)bev;
    rconn_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        rconn_up(c);
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        char why[300];
        if (c->state == RC_HANDSHAKE) {
            unsigned long e = bufferevent_get_openssl_error(c->bev);
            tls_failure(bufferevent_openssl_get_ssl(c->bev), e, why, sizeof(why));
        } else {
            snprintf(why, sizeof(why), "%s", (what & BEV_EVENT_EOF) ? "closed the connection"
                     : errno ? strerror(errno) : "TLS error");
            ERR_clear_error();
        }
        rconn_drop(c, why);
    }
    rconn_leave(c);
}

static void rconn_start_tls(struct rconn *c)
{
    SSL *ssl = tls_session_new(c->tls, c->server_name, c->host);
    if (ssl == NULL) {
        rconn_drop(c, "cannot start TLS (out of memory, or a bad tls_server_name)");
        return;
    }
    c->bev = bufferevent_openssl_socket_new(c->base, c->fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        SSL_free(ssl);
        rconn_drop(c, "cannot start TLS: out of memory");
        return;
    }
    c->fd = -1;                        /* the bufferevent's now */
    c->state = RC_HANDSHAKE;
    bufferevent_setcb(c->bev, on_bev_read, NULL, on_bev_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void rconn_try_next(struct rconn *c, const char *why);

static void rconn_connected(struct rconn *c, int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        rconn_try_next(c, strerror(err));
        return;
    }
    event_free(c->wev);
    c->wev = NULL;
    if (c->tls != NULL) {
        rconn_start_tls(c);
        return;
    }
    c->wev = event_new(c->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
    c->rev = event_new(c->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    if (c->wev == NULL || c->rev == NULL) {
        rconn_drop(c, "out of memory");
        return;
    }
    event_add(c->rev, NULL);
    rconn_up(c);
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    (void)what;
    rconn_enter(c);
    rconn_connected(c, fd);
    rconn_leave(c);
}

/* The plain socket and its events, if any, closed and freed. */
static void rconn_close_socket(struct rconn *c)
{
    if (c->rev != NULL) {
        event_free(c->rev);
        c->rev = NULL;
    }
    if (c->wev != NULL) {
        event_free(c->wev);
        c->wev = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* Connect to the next address of c->ai; when none is left, fail with why. */
static void rconn_try_next(struct rconn *c, const char *why)
{
    rconn_close_socket(c);
    while (c->ai_next != NULL) {
        struct addrinfo *a = c->ai_next;
        c->ai_next = a->ai_next;
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        a->ai_protocol);
        if (fd < 0) {
            why = strerror(errno);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            why = strerror(errno);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->wev = event_new(c->base, fd, EV_WRITE, on_connected, c);
        if (c->wev == NULL) {
            rconn_drop(c, "out of memory");
            return;
        }
        event_add(c->wev, NULL);
        return;
    }
    rconn_drop(c, why);
}

static void on_setup_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    (void)fd; (void)what;
    if (c->state == RC_READY || c->state == RC_IDLE)
        return;
    rconn_drop(c, c->lookup != NULL ? "cannot resolve the host: no answer in time"
                  : c->state == RC_CONNECTING ? "did not accept the connection in time"
                  : c->state == RC_HANDSHAKE ? "did not finish the TLS handshake in time"
                  : "did not answer its setup in time");
}

/* The host's addresses came (resolve.c, on the loop): tried in turn, or,
 * when the attempt that asked was dropped meanwhile (its setup time ran
 * out), kept for the next attempt. */
static void on_resolved(void *arg, struct addrinfo *ai, int err)
{
    struct rconn *c = arg;
    rconn_enter(c);
    c->lookup = NULL;
    if (ai == NULL) {
        char why[300];
        snprintf(why, sizeof(why), "cannot resolve the host: %s", gai_strerror(err));
        if (c->state == RC_CONNECTING)
            rconn_drop(c, why);
        else
            rconn_say(c, why);        /* between attempts: the next asks again */
    } else if (c->state != RC_CONNECTING) {
        c->ai = c->ai_next = ai;      /* (none kept: a lookup runs only without) */
    } else {
        c->ai = c->ai_next = ai;
        rconn_try_next(c, "no address");
    }
    rconn_leave(c);
}

/* An address is used at once; a name is resolved off the loop (a slow DNS
 * server must not hold every request of the worker), bounded by the setup
 * timer like the rest of the connection. One lookup at a time: one still
 * under way from an attempt before is waited for, not asked again. */
static void rconn_connect(struct rconn *c)
{
    struct addrinfo *ai = NULL;
    rconn_progress(c, "connecting");
    c->state = RC_CONNECTING;
    struct timeval tv = rconn_tv((double)c->setup_ms);
    evtimer_add(c->setup_timer, &tv);
    if (c->ai != NULL) {                /* came after its attempt was dropped */
        c->ai_next = c->ai;
        rconn_try_next(c, "no address");
        return;
    }
    if (resolve_numeric(c->host, c->port, &ai) == 0) {
        c->ai = c->ai_next = ai;
        rconn_try_next(c, "no address");
        return;
    }
    rconn_progress(c, "resolving the host");
    if (c->lookup == NULL)
        c->lookup = resolve_start(c->base, c->host, c->port, 0, on_resolved, c);
    if (c->lookup == NULL)
        rconn_drop(c, "cannot resolve the host: no lookup thread (too many in flight, "
                      "or none could start)");
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    (void)fd; (void)what;
    rconn_enter(c);
    rconn_connect(c);
    rconn_leave(c);
}

/* ---- lifetime ---- */

/* Close the transport, answer everything NULL, tell the owner, and
 * (unless being freed) retry after the backoff. */
static void rconn_teardown(struct rconn *c, const char *why)
{
    enum rc_state was = c->state;
    c->drop_pending = 0;
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    rconn_close_socket(c);
    if (c->lookup != NULL && c->free_pending) {    /* else the next attempt waits for it */
        resolve_cancel(c->lookup);
        c->lookup = NULL;
    }
    if (c->ai != NULL) {
        freeaddrinfo(c->ai);
        c->ai = c->ai_next = NULL;
    }
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    redisReaderFree(c->reader);
    c->reader = resp_reader_new();
    c->subscribed = 0;
    c->state = RC_IDLE;
    evtimer_del(c->timer);
    evtimer_del(c->setup_timer);
    if (why != NULL)
        rconn_say(c, why);
    c->in_cb++;
    while (c->qlen > 0) {
        struct rcmd e = rconn_pop_cmd(c);
        e.cb(e.arg, c, NULL);
    }
    if (was >= RC_CONNECTING && c->h->down != NULL && !c->free_pending)
        c->h->down(c->owner, c);
    c->in_cb--;
    c->drop_pending = 0;                 /* a drop asked for while dropping is done */
    if (!c->free_pending) {
        struct timeval tv = rconn_tv(c->backoff_ms);
        evtimer_add(c->retry, &tv);
        c->backoff_ms = c->backoff_ms * 2 > 2000 ? 2000 : c->backoff_ms * 2;
    }
}

static void rconn_destroy(struct rconn *c)
{
    c->free_pending = 1;
    rconn_teardown(c, NULL);
    event_free(c->timer);
    event_free(c->setup_timer);
    event_free(c->retry);
    event_free(c->flush_ev);
    evbuffer_free(c->out);
    redisReaderFree(c->reader);
    free(c->q);
    free(c);
}

/* After callbacks return: what they asked for. */
static void rconn_after_cb(struct rconn *c)
{
    if (c->in_cb > 0)
        return;
    if (c->drop_pending && !c->free_pending)
        rconn_teardown(c, c->drop_why);     /* its callbacks may free c */
    if (c->free_pending)
        rconn_destroy(c);
}

void rconn_drop(struct rconn *c, const char *why)
{
    if (c->in_cb > 0) {
        if (!c->drop_pending)
            snprintf(c->drop_why, sizeof(c->drop_why), "%.300s", why);
        c->drop_pending = 1;
        return;
    }
    if (c->state == RC_IDLE && c->qlen == 0) {
        rconn_say(c, why);               /* already down: just say why */
        return;
    }
    rconn_teardown(c, why);
    if (c->free_pending)                 /* freed by a callback of the teardown */
        rconn_destroy(c);
}

void rconn_free(struct rconn *c)
{
    if (c == NULL)
        return;
    if (c->in_cb > 0) {
        c->free_pending = 1;
        return;
    }
    rconn_destroy(c);
}

struct rconn *rconn_new(struct event_base *base, const struct rconn_opts *o,
                        const struct rconn_hooks *h, void *owner)
{
    struct rconn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->base = base;
    c->h = h;
    c->owner = owner;
    snprintf(c->host, sizeof(c->host), "%s", o->host);
    c->port = o->port;
    c->tls = o->tls;
    snprintf(c->server_name, sizeof(c->server_name), "%s",
             o->tls_server_name ? o->tls_server_name : "");
    rconn_set_auth(c, o->username, o->password);
    c->db = o->db;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 1000;
    c->setup_ms = o->setup_ms > 0 ? o->setup_ms : 2000;
    c->what = o->what ? o->what : "redis";
    c->fd = -1;
    c->backoff_ms = 100;
    c->out = evbuffer_new();
    c->reader = resp_reader_new();
    c->timer = evtimer_new(base, on_cmd_timer, c);
    c->setup_timer = evtimer_new(base, on_setup_timeout, c);
    c->retry = evtimer_new(base, on_retry, c);
    c->flush_ev = event_new(base, -1, 0, on_flush, c);
    if (c->out == NULL || c->reader == NULL || c->timer == NULL || c->setup_timer == NULL ||
        c->retry == NULL || c->flush_ev == NULL) {
        if (c->reader)
            redisReaderFree(c->reader);
        if (c->out)
            evbuffer_free(c->out);
        if (c->timer) event_free(c->timer);
        if (c->setup_timer) event_free(c->setup_timer);
        if (c->retry) event_free(c->retry);
        if (c->flush_ev) event_free(c->flush_ev);
        free(c);
        return NULL;
    }
    snprintf(c->status, sizeof(c->status), "%s at %s:%d: connecting", c->what, c->host, c->port);
    struct timeval now = { 0, 0 };
    evtimer_add(c->retry, &now);        /* on the loop: the owner has c by then */
    return c;
}

void rconn_ready(struct rconn *c)
{
    if (c->state != RC_UP)
        return;
    c->state = RC_READY;
    c->backoff_ms = 100;
    c->last_err[0] = '\0';
    evtimer_del(c->setup_timer);
    snprintf(c->status, sizeof(c->status), "%s at %s:%d: ready", c->what, c->host, c->port);
}

void rconn_subscribed(struct rconn *c)
{
    c->subscribed = 1;
}

void rconn_set_auth(struct rconn *c, const char *username, const char *password)
{
    snprintf(c->user, sizeof(c->user), "%s", username ? username : "");
    snprintf(c->pass, sizeof(c->pass), "%s", password ? password : "");
}

void rconn_set_timeout(struct rconn *c, int64_t timeout_ms)
{
    if (timeout_ms > 0)
        c->timeout_ms = timeout_ms;
}

int rconn_is_ready(const struct rconn *c)
{
    return c->state == RC_READY && !c->drop_pending;
}

int rconn_is_up(const struct rconn *c)
{
    return c->state >= RC_UP && !c->drop_pending;
}

const char *rconn_status(const struct rconn *c)
{
    return c->status;
}

const char *rconn_host(const struct rconn *c)
{
    return c->host;
}

int rconn_port(const struct rconn *c)
{
    return c->port;
}

size_t rconn_pending(const struct rconn *c)
{
    return c->qlen;
}
