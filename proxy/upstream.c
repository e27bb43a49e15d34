/*
 * upstream.c: the pool of evhttp connections to the upstream, and one call
 * (request, whole-request timer, result) through it.
 *
 * How the outcome is told apart (libevent 2.1 http.c):
 *  - connect refused: the request callback runs with the request, response
 *    code 0 and no error callback (evhttp_connection_cb_cleanup): the
 *    request never left, so the caller may release its claim;
 *  - any failure after the connection was up: the error callback first,
 *    then the request callback with NULL: the outcome is unknown;
 *  - our own timer: evhttp_cancel_request, which frees the request and
 *    runs only the error callback; the timer finishes the call itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "upstream.h"

struct pconn {
    struct evhttp_connection *evcon;
    struct pconn *next_idle;
};

struct upstream_call {
    struct upstream *up;
    struct evhttp_request *out;    /* owned by us until sent, then libevent */
    struct pconn *conn;            /* while sent */
    struct event *timer;
    upstream_cb cb;
    void *arg;
    enum evhttp_cmd_type method;
    char *uri;
    enum evhttp_request_error error;
    unsigned errored:1;            /* the error callback ran */
    unsigned timed_out:1;
    unsigned done:1;
    TAILQ_ENTRY(upstream_call) next; /* waiting for a connection */
};

TAILQ_HEAD(callq, upstream_call);

struct upstream {
    struct event_base *base;
    char host[256];
    int port;
    int64_t timeout_ms;
    int64_t max_response;
    int max_conns;
    int n_conns;
    struct pconn *idle;
    struct pconn **all;
    struct callq waiting;
};

static void call_dispatch(struct upstream_call *call, struct pconn *pc);

static struct pconn *pool_get(struct upstream *up)
{
    struct pconn *pc = up->idle;
    if (pc != NULL) {
        up->idle = pc->next_idle;
        return pc;
    }
    if (up->n_conns >= up->max_conns)
        return NULL;
    pc = calloc(1, sizeof(*pc));
    if (pc == NULL)
        return NULL;
    pc->evcon = evhttp_connection_base_new(up->base, NULL, up->host,
                                           (unsigned short)up->port);
    if (pc->evcon == NULL) {
        free(pc);
        return NULL;
    }
    evhttp_connection_set_timeout(pc->evcon, (int)((up->timeout_ms + 999) / 1000));
    evhttp_connection_set_max_body_size(pc->evcon, (ev_ssize_t)up->max_response);
    up->all[up->n_conns++] = pc;
    return pc;
}

/* A connection is free again: give it to the first waiting call. */
static void pool_put(struct upstream *up, struct pconn *pc)
{
    struct upstream_call *call = TAILQ_FIRST(&up->waiting);
    if (call != NULL) {
        TAILQ_REMOVE(&up->waiting, call, next);
        call_dispatch(call, pc);
        return;
    }
    pc->next_idle = up->idle;
    up->idle = pc;
}

struct upstream *upstream_new(struct event_base *base, const struct config *c,
                              char *err, size_t errlen)
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
    TAILQ_INIT(&up->waiting);
    if (up->all == NULL) {
        free(up);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    upstream_apply(up, c);
    return up;
}

/* Timeouts and limits may change on SIGHUP; the address and pool size not. */
void upstream_apply(struct upstream *up, const struct config *c)
{
    up->timeout_ms = c->upstream_timeout_ms;
    up->max_response = c->max_response;
    for (int i = 0; i < up->n_conns; i++) {
        evhttp_connection_set_timeout(up->all[i]->evcon,
                                      (int)((up->timeout_ms + 999) / 1000));
        evhttp_connection_set_max_body_size(up->all[i]->evcon,
                                            (ev_ssize_t)up->max_response);
    }
}

void upstream_free(struct upstream *up)
{
    if (up == NULL)
        return;
    struct upstream_call *call;
    while ((call = TAILQ_FIRST(&up->waiting)) != NULL) {
        TAILQ_REMOVE(&up->waiting, call, next);
        evhttp_request_free(call->out);
        event_free(call->timer);
        free(call->uri);
        free(call);
    }
    for (int i = 0; i < up->n_conns; i++) {
        evhttp_connection_free(up->all[i]->evcon);
        free(up->all[i]);
    }
    free(up->all);
    free(up);
}

static void call_finish(struct upstream_call *call, struct evhttp_request *resp,
                        enum upstream_err err)
{
    struct upstream *up = call->up;
    struct pconn *pc = call->conn;

    call->done = 1;
    event_free(call->timer);
    call->cb(call->arg, resp, err);
    free(call->uri);
    free(call);
    if (pc != NULL)
        pool_put(up, pc);
}

static void call_on_error(enum evhttp_request_error error, void *arg)
{
    struct upstream_call *call = arg;
    call->errored = 1;
    call->error = error;
}

static void call_on_response(struct evhttp_request *resp, void *arg)
{
    struct upstream_call *call = arg;
    enum upstream_err err;

    if (call->timed_out)
        err = UP_TIMEOUT;
    else if (call->errored)
        err = call->error == EVREQ_HTTP_TIMEOUT ? UP_TIMEOUT
            : call->error == EVREQ_HTTP_DATA_TOO_LONG ? UP_TOO_LARGE
            : UP_RESET;
    else if (resp == NULL || evhttp_request_get_response_code(resp) == 0)
        err = resp != NULL ? UP_REFUSED : UP_RESET;
    else if (evhttp_request_get_response_code(resp) < 200 ||
             evhttp_request_get_response_code(resp) > 599)
        err = UP_RESET;            /* not a final answer we can pass on */
    else
        err = UP_OK;
    call_finish(call, err == UP_OK ? resp : NULL, err);
}

static void call_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct upstream_call *call = arg;
    (void)fd; (void)what;
    if (call->conn == NULL) {          /* still waiting for a connection */
        TAILQ_REMOVE(&call->up->waiting, call, next);
        evhttp_request_free(call->out);
        call_finish(call, NULL, UP_REFUSED);
        return;
    }
    call->timed_out = 1;
    /* frees the request and runs only the error callback (cb is dropped
     * for a cancel), so the call is finished here */
    evhttp_cancel_request(call->out);
    call->out = NULL;
    call_finish(call, NULL, UP_TIMEOUT);
}

struct upstream_call *upstream_call_new(struct upstream *up, upstream_cb cb,
                                        void *arg)
{
    struct upstream_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return NULL;
    call->up = up;
    call->cb = cb;
    call->arg = arg;
    call->out = evhttp_request_new(call_on_response, call);
    call->timer = evtimer_new(up->base, call_on_timeout, call);
    if (call->out == NULL || call->timer == NULL) {
        if (call->out != NULL)
            evhttp_request_free(call->out);
        if (call->timer != NULL)
            event_free(call->timer);
        free(call);
        return NULL;
    }
    evhttp_request_set_error_cb(call->out, call_on_error);
    return call;
}

struct evhttp_request *upstream_call_request(struct upstream_call *call)
{
    return call->out;
}

void evcon_write_now(struct evhttp_connection *evcon)
{
    if (evcon == NULL)
        return;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    /* (empty while a new connection is still connecting: evhttp writes
     * the request once it is up) */
    if (fd < 0 || evbuffer_get_length(out) == 0)
        return;
    /* a bufferevent keeps its output's start frozen except while it
     * writes; this is such a write */
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    if (n > 0 && evbuffer_get_length(out) == 0)
        bufferevent_trigger(bev, EV_WRITE, 0);  /* evhttp's "all written" */
}

static void call_dispatch(struct upstream_call *call, struct pconn *pc)
{
    struct upstream *up = call->up;
    call->conn = pc;
    if (evhttp_make_request(pc->evcon, call->out, call->method, call->uri) != 0) {
        /* libevent freed the request on failure */
        call->conn = NULL;
        call_finish(call, NULL, UP_REFUSED);
        pool_put(up, pc);
        return;
    }
    evcon_write_now(pc->evcon);
}

void upstream_call_send(struct upstream_call *call, enum evhttp_cmd_type method,
                        const char *uri)
{
    struct upstream *up = call->up;
    struct timeval tv = { (time_t)(up->timeout_ms / 1000),
                          (suseconds_t)(up->timeout_ms % 1000) * 1000 };

    call->method = method;
    call->uri = strdup(uri);
    evtimer_add(call->timer, &tv);
    struct pconn *pc = pool_get(up);
    if (pc == NULL) {
        TAILQ_INSERT_TAIL(&up->waiting, call, next);
        return;
    }
    call_dispatch(call, pc);
}
