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

/*
 * One step of a chunked body in buf: the framing bytes at its start are
 * read (lib/h1) and drained. H1_CHUNK_DATA with *data > 0: that many data
 * bytes are next in buf, for the caller to take (and report with
 * h1_chunked_took); with *data 0, or H1_CHUNK_MORE, more input is needed
 * (MORE: call again at once, framing was used up). H1_CHUNK_DONE,
 * H1_CHUNK_ERROR as h1_chunked_parse.
 */
enum h1_chunk_rc;
struct h1_chunked;
enum h1_chunk_rc netio_chunked_step(struct h1_chunked *c, struct evbuffer *buf, size_t *data);

/* Bytes gathered on the stack and added to an evbuffer in a few copies
 * rather than one per piece (a request or answer head). */
struct netio_gather {
    struct evbuffer *to;
    size_t n;
    char b[4096];
};

void netio_gather_put(struct netio_gather *g, const void *p, size_t n);
/* What is gathered, to the evbuffer. */
void netio_gather_flush(struct netio_gather *g);

#endif
