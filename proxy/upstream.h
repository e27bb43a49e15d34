/*
 * upstream: an HTTP/1.1 client for the one upstream, over a bounded pool of
 * keep-alive connections. One connection carries one request at a time; the
 * pool grows to the concurrency up to [proxy] upstream_connections and
 * queues beyond it. Owns the whole-request timeout.
 *
 * The caller writes the request itself (request line, headers, body; see
 * req_forward) and gets the answer parsed: status, headers, body.
 */
#ifndef IDEM_UPSTREAM_H
#define IDEM_UPSTREAM_H

#include <event2/event.h>

#include "config.h"

enum upstream_err {
    UP_OK,         /* a full answer: resp is valid during the callback */
    UP_REFUSED,    /* no connection (refused, or none within the timeout):
                    * the request never left */
    UP_TIMEOUT,    /* no full answer within upstream_timeout: outcome unknown */
    UP_RESET,      /* connection lost after the request left, or an answer
                    * that is not HTTP: outcome unknown */
    UP_TOO_LARGE   /* answer over [proxy] max_response: it executed */
};

struct upstream_header {
    const char *name;              /* NUL-terminated, as the upstream spelled it */
    size_t name_len;
    const char *value;             /* NUL-terminated, surrounding blanks trimmed */
};

/* The upstream's final answer. Valid only during the callback; the callback
 * may take the body's contents (evbuffer_add_buffer). */
struct upstream_resp {
    int status;                    /* 200..599 */
    int nh;
    const struct upstream_header *h;
    struct evbuffer *body;         /* de-chunked */
};

typedef void (*upstream_cb)(void *arg, const struct upstream_resp *resp,
                            enum upstream_err err);

struct upstream;
struct upstream *upstream_new(struct event_base *base, const struct config *c,
                              char *err, size_t errlen);
void upstream_free(struct upstream *up);
void upstream_apply(struct upstream *up, const struct config *c);

/*
 * A call: upstream_call_new gives a buffer to write the whole request into
 * (upstream_call_buffer: "METHOD uri HTTP/1.1", headers with a
 * Content-Length if there is a body, the empty line, the body);
 * upstream_call_send hands it to the pool, which owns it from then on.
 * head: it is a HEAD request (its answer has no body). timeout_ms bounds
 * the whole call: the upstream_timeout of the config the request started
 * under, whose lease its claim has (a reload does not stretch it past
 * that lease). cb runs exactly
 * once: normally after upstream_call_send returns, but within it
 * (UP_REFUSED) when no connection can be opened at all.
 */
struct upstream_call;
struct upstream_call *upstream_call_new(struct upstream *up, upstream_cb cb,
                                        void *arg);
struct evbuffer *upstream_call_buffer(struct upstream_call *call);
void upstream_call_send(struct upstream_call *call, int head, int64_t timeout_ms);

#endif
