/*
 * upstream: an HTTP/1.1 client for the one upstream, over a bounded pool of
 * keep-alive connections. One connection carries one call at a time; the
 * pool grows to the concurrency up to [proxy] upstream_connections and
 * queues calls beyond it. Owns: connecting, writing the request (whole, or
 * its body as it arrives), reading the answer (lib/h1) and handing it on
 * as it arrives, the call's timeout, and telling "never sent" apart from
 * "outcome unknown".
 *
 * The caller (req.c) writes the request head itself and gets the answer
 * in pieces: its head, its body bytes (de-chunked), its end.
 */
#ifndef IDEM_UPSTREAM_H
#define IDEM_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "config.h"
#include "h1.h"

struct evbuffer;

enum upstream_err {
    UP_OK,         /* the whole answer came */
    UP_REFUSED,    /* no connection (refused, or none within the timeout), or
                    * a kept one the upstream had closed, twice: the request
                    * never left */
    UP_TIMEOUT,    /* no answer (or no progress) within upstream_timeout:
                    * the outcome is unknown */
    UP_RESET,      /* the connection failed after the request left, or the
                    * answer was not HTTP: the outcome is unknown */
    UP_TOO_LARGE   /* an answer head (or trailer section) over 64 KB: the
                    * upstream answered, so it executed */
};

struct upstream_ops {
    /* The final answer's head (1xx interim answers are skipped; a 101 is
     * final only for an UPC_UPGRADE call, which must then take the socket
     * with upstream_call_detach). resp is valid during the call only. */
    void (*head)(void *arg, const struct h1_response *resp);
    /* Body bytes, de-chunked: take them all. */
    void (*body)(void *arg, struct evbuffer *data);
    /* The end, exactly once, last: UP_OK after the whole body, or why not
     * (also after the head). The call is freed when it returns. */
    void (*done)(void *arg, enum upstream_err err);
    /* The request's bytes waiting to be written fell to a quarter of the
     * window (after upstream_call_pending said it was full). */
    void (*drained)(void *arg);
};

enum {
    UPC_HEAD = 1,        /* a HEAD request: the answer has no body */
    UPC_MORE = 2,        /* body bytes follow: upstream_call_write, then _end */
    UPC_UPGRADE = 4,     /* the request asks for a protocol switch */
    UPC_WHOLE = 8        /* the timeout bounds the whole call, not each wait */
};

/*
 * The upstream's address as the start found it: every worker's pool begins
 * with it. A name is looked up once, blocking, on the main thread before
 * any loop runs (as nginx does); one that does not resolve then is logged
 * and looked up again, off the loop, when a connection is wanted. A pool
 * looks its name up again, off the loop and at most once a second, when a
 * connection to the address fails or is not up within upstream_timeout.
 */
struct upstream_addr {
    struct sockaddr_storage ss;
    socklen_t len;                 /* 0: none (yet) */
    int named;                     /* the host is a name, not an address */
};
void upstream_addr_lookup(const struct config *c, struct upstream_addr *a);

struct upstream;
struct upstream *upstream_new(struct event_base *base, const struct config *c,
                              const struct upstream_addr *a, char *err, size_t errlen);
void upstream_free(struct upstream *up);
void upstream_apply(struct upstream *up, const struct config *c);

/*
 * A call: upstream_call_new gives a buffer to write the request into (its
 * head, and its whole body unless UPC_MORE); upstream_call_send hands it to
 * the pool. timeout_ms: with UPC_WHOLE, the whole call's bound (the
 * upstream_timeout of the config the request started under, whose lease
 * its claim has); without, the longest wait for the upstream (to connect,
 * to take the request, for the answer's head, between two reads of it).
 *
 * Callbacks never run within an upstream_call_* function, and until
 * `done` the call is the caller's to write to, pause or abort.
 */
struct upstream_call;
struct upstream_call *upstream_call_new(struct upstream *up,
                                        const struct upstream_ops *ops, void *arg);
struct evbuffer *upstream_call_buffer(struct upstream_call *call);
void upstream_call_send(struct upstream_call *call, unsigned flags, int64_t timeout_ms);
/* More of the request (UPC_MORE): all of data is taken. */
void upstream_call_write(struct upstream_call *call, struct evbuffer *data);
/* The request is complete (UPC_MORE). */
void upstream_call_end(struct upstream_call *call);
/* The request's bytes not yet written hold a window's worth or more. */
int upstream_call_full(const struct upstream_call *call);
/* Stop (1) or restart (0) reading the answer. */
void upstream_call_pause(struct upstream_call *call, int pause);
/* From now the timeout bounds each wait, not the whole call. */
void upstream_call_each_wait(struct upstream_call *call);
/* The caller is gone: the connection is closed, no callback follows. */
void upstream_call_abort(struct upstream_call *call);
/*
 * In the head callback of a 101: take the socket (the caller closes it)
 * and, into rest, what the upstream sent after its head. The call ends
 * there: no done callback.
 */
evutil_socket_t upstream_call_detach(struct upstream_call *call, struct evbuffer *rest);

#endif
