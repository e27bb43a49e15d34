/*
 * netio.c: one read of a socket into an evbuffer (see netio.h).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "h1.h"
#include "netio.h"

/* Up to n bytes straight into buf's chains. */
static ssize_t read_direct(evutil_socket_t fd, struct evbuffer *buf, size_t n, int *full)
{
    struct evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(buf, (ev_ssize_t)n, v, 2);
    if (nv <= 0) {
        errno = ENOMEM;
        return -1;
    }
    struct iovec iov[2];
    size_t room = 0;
    for (int i = 0; i < nv; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
        room += v[i].iov_len;
    }
    ssize_t got = readv(fd, iov, nv);
    *full = got > 0 && (size_t)got == room;
    if (got <= 0) {
        int e = errno;
        evbuffer_commit_space(buf, v, 0);
        errno = e;
        return got;
    }
    size_t left = (size_t)got;
    for (int i = 0; i < nv; i++) {
        v[i].iov_len = left < v[i].iov_len ? left : v[i].iov_len;
        left -= v[i].iov_len;
    }
    evbuffer_commit_space(buf, v, nv);
    return got;
}

void netio_untime(struct event *ev)
{
    if (event_pending(ev, EV_TIMEOUT, NULL)) {
        event_del(ev);
        event_add(ev, NULL);
    }
}

int netio_read(evutil_socket_t fd, struct evbuffer *buf, char *scratch, size_t big,
               int *full)
{
    ssize_t n;
    if (big > 0) {
        n = read_direct(fd, buf, big, full);
    } else {
        n = read(fd, scratch, NETIO_READ);
        *full = n == NETIO_READ;
        if (n > 0 && evbuffer_add(buf, scratch, (size_t)n) != 0) {
            errno = ENOMEM;
            return -1;
        }
    }
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -2 : -1;
    return (int)n;
}

enum h1_chunk_rc netio_chunked_step(struct h1_chunked *c, struct evbuffer *buf, size_t *data)
{
    struct evbuffer_iovec v;
    *data = 0;
    if (evbuffer_get_length(buf) == 0 || evbuffer_peek(buf, -1, NULL, &v, 1) < 1)
        return H1_CHUNK_DATA;
    size_t used;
    enum h1_chunk_rc rc = h1_chunked_parse(c, v.iov_base, v.iov_len, &used);
    evbuffer_drain(buf, used);
    if (rc == H1_CHUNK_DATA) {
        size_t k = evbuffer_get_length(buf);
        *data = (uint64_t)k > c->left ? (size_t)c->left : k;
    }
    return rc;
}

void netio_gather_put(struct netio_gather *g, const void *p, size_t n)
{
    if (n > sizeof(g->b) - g->n) {
        netio_gather_flush(g);
        if (n > sizeof(g->b)) {
            evbuffer_add(g->to, p, n);
            return;
        }
    }
    memcpy(g->b + g->n, p, n);
    g->n += n;
}

void netio_gather_flush(struct netio_gather *g)
{
    if (g->n > 0)
        evbuffer_add(g->to, g->b, g->n);
    g->n = 0;
}
