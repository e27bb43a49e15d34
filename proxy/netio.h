/*
 * netio: reading a socket into an evbuffer, shared by the client side
 * (conn.c, tunnel.c) and the upstream side (upstream.c).
 */
#ifndef IDEM_NETIO_H
#define IDEM_NETIO_H

#include <stddef.h>
#include <event2/util.h>

struct evbuffer;
struct event;

/* The output window: the bytes a side may hold waiting to be written
 * before the other side's reading stops (backpressure), on the client
 * side (conn.c), the upstream side (upstream.c) and in a tunnel. */
#define NETIO_WINDOW (128 * 1024)

/* How much one read takes: a 16 KB evbuffer chain, its header included. */
#define NETIO_READ (16384 - 64)

/*
 * Keep ev (added, persistent) as it is but without a timeout. libevent's
 * event_add(ev, NULL) leaves a pending timeout in place, so the event is
 * deleted and added again: two epoll_ctl, so only off the per-request
 * path (a stale timer that fired, a paused upload).
 */
void netio_untime(struct event *ev);

/*
 * Read what the socket has, without asking how much (no FIONREAD).
 * big: a body is being read, so read up to `big` bytes straight into buf's
 * chains; else read into scratch (NETIO_READ bytes) and copy what came, so
 * a small message does not hold a 16 KB chain. Returns the bytes read, 0
 * at EOF, -1 on an error (errno), -2 when there is nothing now. *full: the
 * read filled what it was given (more may wait).
 */
int netio_read(evutil_socket_t fd, struct evbuffer *buf, char *scratch, size_t big,
               int *full);

#endif
