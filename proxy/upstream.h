/*
 * upstream: evhttp's client and a bounded pool of keep-alive connections to
 * the one upstream. One evhttp_connection carries one request at a time;
 * the pool grows to the concurrency up to [proxy] upstream_connections and
 * queues beyond it. Owns the whole-request timeout.
 */
#ifndef IDEM_UPSTREAM_H
#define IDEM_UPSTREAM_H

#include <event2/event.h>
#include <event2/http.h>

#include "config.h"

enum upstream_err {
    UP_OK,         /* a full answer: resp is valid during the callback */
    UP_REFUSED,    /* connect refused: the request never left */
    UP_TIMEOUT,    /* no full answer within upstream_timeout: outcome unknown */
    UP_RESET,      /* connection lost after the request left: unknown */
    UP_TOO_LARGE   /* answer over [proxy] max_response: it executed */
};

/* resp belongs to libevent and is valid only during the callback. */
typedef void (*upstream_cb)(void *arg, struct evhttp_request *resp,
                            enum upstream_err err);

struct upstream;
struct upstream *upstream_new(struct event_base *base, const struct config *c,
                              char *err, size_t errlen);
void upstream_free(struct upstream *up);
void upstream_apply(struct upstream *up, const struct config *c);

/*
 * A call: upstream_call_new gives a request to fill (headers, body) with
 * evhttp_request_get_output_headers/_buffer; upstream_call_send hands it to
 * the pool, which owns it from then on. cb runs exactly once: normally
 * after upstream_call_send returns, but within it (UP_REFUSED) when the
 * request cannot be handed to libevent at all.
 */
struct upstream_call;
struct upstream_call *upstream_call_new(struct upstream *up, upstream_cb cb,
                                        void *arg);
struct evhttp_request *upstream_call_request(struct upstream_call *call);
void upstream_call_send(struct upstream_call *call,
                        enum evhttp_cmd_type method, const char *uri);

/*
 * Write what evhttp just queued on a connection (an answer after
 * evhttp_send_reply, a request after evhttp_make_request) now, instead of
 * on the next turn of the loop when the socket reports writable; then tell
 * evhttp it was written. Saves a loop turn and, with the epoll changelist,
 * the epoll_ctl pair that turns write interest on and off. Whatever the
 * socket does not take now is written by the bufferevent as before.
 */
void evcon_write_now(struct evhttp_connection *evcon);

#endif
