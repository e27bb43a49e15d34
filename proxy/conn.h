/*
 * conn: one client connection, on its worker's event loop.
 *
 * Owns: the socket; reading and the request framing (lib/h1: where a head
 * ends, the head parsed, the body by Content-Length or chunked); the
 * timeouts a slow client meets (client_header_timeout for a head,
 * client_body_timeout between reads of a body, send_timeout between
 * writes of an answer, client_timeout idle between requests); the answer's
 * framing towards the client (Content-Length, chunked, or until close for
 * HTTP/1.0); a bounded output window; pipelining (one exchange at a time,
 * answers in order); the refusal of what the framing rules refuse (400,
 * 413, 414, 431, 501, 505 in idemproxy's error shape, then a lingering
 * close so the client can read it); handing the socket to a tunnel after
 * an upgrade.
 *
 * Does not own: what a request means. Each parsed request goes to px->dispatch
 * (req_start, set by server.c), which attaches an exchange (req.c) that
 * reads the body and writes the answer through the functions below.
 *
 * Callbacks into the exchange (struct conn_ops) are made only from the
 * connection's own events, never from within a conn_* call the exchange
 * made; after `gone` the exchange must not touch the connection again.
 */
#ifndef IDEM_CONN_H
#define IDEM_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "h1.h"
#include "netio.h"

struct proxy;
struct conn;
struct evbuffer;

/* The output window: an exchange stops adding once conn_out_full() says
 * so, and is told (drained) when the client has taken it down to a quarter. */
#define CONN_WINDOW NETIO_WINDOW

struct conn_ops {
    /* body bytes, decoded (chunk framing removed): take them all */
    void (*body)(void *x, struct evbuffer *data);
    /* the body is complete (called once, also for a request without one) */
    void (*body_end)(void *x);
    /* the output window has room again */
    void (*drained)(void *x);
    /* the client left, failed or timed out: the connection is no longer
     * the exchange's (it closes when this returns) */
    void (*gone)(void *x);
};

/* What a parsed request hands to its exchange. The head buffer (and so
 * every pointer of req) belongs to the exchange from px->dispatch on:
 * it frees it with conn_head_free. */
struct conn_request {
    struct h1_request req;
    char *head;                    /* the head's bytes, parsed in place */
};

/* Accept: the connection starts reading. NULL without memory (fd closed). */
struct conn *conn_new(struct proxy *px, evutil_socket_t fd,
                      const struct sockaddr *sa, int salen);
/* The client's address, for X-Forwarded-For ("unknown" if none). */
const char *conn_peer(const struct conn *c);
/* The request's HTTP minor version (0 or 1). */
int conn_minor(const struct conn *c);

void conn_head_free(struct conn_request *cr);

/*
 * The exchange takes the request: ops and x receive its body and events.
 * The body is read when px->dispatch has returned (with "100 Continue"
 * first when the client asked for it), body_end after it, also when there
 * is none. A limit on the body is the exchange's to keep (it answers 413).
 */
void conn_attach(struct conn *c, const struct conn_ops *ops, void *x);
/* Stop (1) or restart (0) handing the exchange body bytes. */
void conn_pause_body(struct conn *c, int pause);

/* ---- the answer ---- */

enum conn_body {
    CONN_BODY_LENGTH,              /* length bytes follow (Content-Length) */
    CONN_BODY_STREAM,              /* an unknown length: chunked to an HTTP/1.1
                                      client, until close to an HTTP/1.0 one */
    CONN_BODY_NONE                 /* no body (HEAD, 1xx, 204, 304): a
                                      Content-Length given as a header is kept */
};

/* An answer's head, built on the stack and added to the output at once. */
struct conn_head {
    struct conn *c;
    struct netio_gather g;        /* into the connection's output */
    int status;
    int has_date;
};

void conn_head_begin(struct conn_head *h, struct conn *c, int status);
/* One field; the caller has dropped hop-by-hop ones. */
void conn_head_add(struct conn_head *h, const char *name, size_t nlen,
                   const char *value, size_t vlen);
/*
 * The framing fields (Content-Length, Transfer-Encoding: chunked, or
 * Connection: close), a Date unless one was added, the empty line. length:
 * for CONN_BODY_LENGTH.
 */
void conn_head_end(struct conn_head *h, enum conn_body body, int64_t length);

/* Body bytes of the answer (all of data is taken; chunk-framed if the
 * answer is chunked), written as far as the socket takes them. */
void conn_send_body(struct conn *c, struct evbuffer *data);
void conn_send_bytes(struct conn *c, const void *p, size_t n);
/* The answer is complete: written as far as the socket takes it; the
 * exchange is detached, and the connection goes on to the next request
 * (or closes, when the request or answer said so). */
void conn_done(struct conn *c);
/* Close the connection after this answer, whatever the request said. */
void conn_close_after(struct conn *c);
/* The answer cannot be completed (the upstream failed after its head was
 * sent): the exchange is detached and the connection closed, so the
 * client sees a cut answer, not a whole one. */
void conn_abort(struct conn *c);
/* The output holds a window's worth or more. */
int conn_out_full(const struct conn *c);

/*
 * After a 101 head was written: the connection becomes a tunnel to the
 * upstream's socket fd (taken over), with `early` the bytes the upstream
 * sent after its head. The exchange is detached.
 */
void conn_tunnel(struct conn *c, evutil_socket_t fd, struct evbuffer *early);

/*
 * An answer of idemproxy's own error shape (errcode.h), with a Date and,
 * if retry_after > 0, a Retry-After; problem: RFC 9457 problem details.
 * HEAD gets the head only. Then conn_done.
 */
void conn_error(struct conn *c, int status, const char *code, int problem,
                long retry_after, int head_only);

/* ---- the worker's connections ---- */

/* Close every connection that has no exchange (idle ones, tunnels): on
 * drain. Answers in progress end with Connection: close. */
void conn_drain_all(struct proxy *px);
/* Free every connection (the worker is exiting). */
void conn_free_all(struct proxy *px);

#endif
