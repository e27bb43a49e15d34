/*
 * tunnel.c: bytes both ways between two sockets (see tunnel.h).
 *
 * Side 0 is the client, side 1 the upstream. s[i].out holds what the other
 * side sent, to be written to side i. An EOF from side i is passed on as a
 * shutdown of side 1-i's writing once its output is written; when both
 * directions have ended that way, the tunnel closes. Idle: each read event
 * carries client_timeout; when it fires the tunnel closes unless a byte
 * moved either way within that time (the cached loop time of the last one).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "netio.h"
#include "proxy.h"
#include "tunnel.h"

struct side {
    struct tunnel *t;
    evutil_socket_t fd;
    struct event rev;              /* reading this side */
    struct event wev;              /* writing out to it, while bytes wait */
    struct evbuffer *out;          /* bytes for this side */
    unsigned eof:1;                /* this side sent its last byte */
    unsigned shut:1;               /* its writing was shut down */
    unsigned reading:1;
};

struct tunnel {
    struct proxy *px;
    struct side s[2];
    time_t last;                   /* loop time a byte last moved */
    unsigned dead:1;
    unsigned in_cb:1;
    TAILQ_ENTRY(tunnel) link;
};

static void side_on_read(evutil_socket_t fd, short what, void *arg);
static void side_on_write(evutil_socket_t fd, short what, void *arg);

static struct side *other(struct side *s)
{
    return s == &s->t->s[0] ? &s->t->s[1] : &s->t->s[0];
}

static void tunnel_free(struct tunnel *t)
{
    for (int i = 0; i < 2; i++) {
        event_del(&t->s[i].rev);
        event_del(&t->s[i].wev);
        evutil_closesocket(t->s[i].fd);
        evbuffer_free(t->s[i].out);
    }
    TAILQ_REMOVE(&t->px->tunnels, t, link);
    t->px->n_tunnels--;
    STAT_SET(t->px->stats.tunnels, t->px->n_tunnels);
    free(t);
}

static void tunnel_close(struct tunnel *t)
{
    t->dead = 1;
    if (!t->in_cb)
        tunnel_free(t);
}

static void touch(struct tunnel *t)
{
    t->last = proxy_now_sec(t->px);
}

static void side_read_on(struct side *s, int on)
{
    if (on && !s->reading && !s->eof) {
        event_add(&s->rev, s->t->px->tv_idle);
        s->reading = 1;
    } else if (!on && s->reading) {
        event_del(&s->rev);
        s->reading = 0;
    }
}

/* Write what waits for s; pass an EOF on once it is written. */
static void side_flush(struct side *s)
{
    struct tunnel *t = s->t;
    if (evbuffer_get_length(s->out) > 0) {
        int n = evbuffer_write(s->out, s->fd);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            tunnel_close(t);
            return;
        }
        if (n > 0)
            touch(t);
    }
    if (evbuffer_get_length(s->out) > 0) {
        event_add(&s->wev, t->px->tv_send);
    } else {
        event_del(&s->wev);
        struct side *o = other(s);
        if (o->eof && !s->shut) {
            shutdown(s->fd, SHUT_WR);
            s->shut = 1;
        }
        if (s->shut && o->shut)
            tunnel_close(t);
    }
    /* room again for what the other side sends */
    if (!t->dead && evbuffer_get_length(s->out) <= NETIO_WINDOW / 4)
        side_read_on(other(s), 1);
}

static void side_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct side *s = arg;
    struct tunnel *t = s->t;
    struct side *o = other(s);
    t->in_cb = 1;
    if (what & EV_TIMEOUT) {
        time_t now = proxy_now_sec(t->px);
        if (now - t->last >= (time_t)((t->px->cfg->c->client_timeout_ms + 999) / 1000))
            tunnel_close(t);
        else
            event_add(&s->rev, t->px->tv_idle);
    } else {
        int full = 0;
        int n = netio_read(fd, o->out, NULL, 65536, &full);
        if (n > 0) {
            touch(t);
            side_flush(o);
            if (!t->dead && evbuffer_get_length(o->out) >= NETIO_WINDOW)
                side_read_on(s, 0);
        } else if (n == 0) {
            s->eof = 1;
            side_read_on(s, 0);
            side_flush(o);        /* passes the EOF on when o's output is out */
        } else if (n == -1) {
            tunnel_close(t);
        }
    }
    t->in_cb = 0;
    if (t->dead)
        tunnel_free(t);
}

static void side_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct side *s = arg;
    struct tunnel *t = s->t;
    (void)fd;
    t->in_cb = 1;
    if (what & EV_TIMEOUT)
        tunnel_close(t);          /* send_timeout without progress */
    else
        side_flush(s);
    t->in_cb = 0;
    if (t->dead)
        tunnel_free(t);
}

int tunnel_new(struct proxy *px, evutil_socket_t cfd, struct evbuffer *c_in,
               struct evbuffer *c_out, evutil_socket_t ufd, struct evbuffer *u_early)
{
    struct tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    t->s[0].out = evbuffer_new();
    t->s[1].out = evbuffer_new();
    if (t->s[0].out == NULL || t->s[1].out == NULL) {
        if (t->s[0].out)
            evbuffer_free(t->s[0].out);
        if (t->s[1].out)
            evbuffer_free(t->s[1].out);
        free(t);
        return -1;
    }
    t->px = px;
    evutil_socket_t fds[2] = { cfd, ufd };
    for (int i = 0; i < 2; i++) {
        struct side *s = &t->s[i];
        s->t = t;
        s->fd = fds[i];
        event_assign(&s->rev, px->base, s->fd, EV_READ | EV_PERSIST, side_on_read, s);
        event_assign(&s->wev, px->base, s->fd, EV_WRITE | EV_PERSIST, side_on_write, s);
    }
    evbuffer_add_buffer(t->s[0].out, c_out);
    evbuffer_add_buffer(t->s[0].out, u_early);
    evbuffer_add_buffer(t->s[1].out, c_in);
    TAILQ_INSERT_TAIL(&px->tunnels, t, link);
    px->n_tunnels++;
    STAT_SET(px->stats.tunnels, px->n_tunnels);
    touch(t);
    t->in_cb = 1;
    side_read_on(&t->s[0], 1);
    side_read_on(&t->s[1], 1);
    side_flush(&t->s[0]);
    if (!t->dead)
        side_flush(&t->s[1]);
    t->in_cb = 0;
    if (t->dead)
        tunnel_free(t);           /* (failed at once: the sockets are closed) */
    return 0;
}

void tunnel_free_all(struct proxy *px)
{
    struct tunnel *t;
    while ((t = TAILQ_FIRST(&px->tunnels)) != NULL)
        tunnel_free(t);
}
