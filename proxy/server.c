/*
 * server.c: the client listener. Owns binding, evhttp's limits, and the
 * framing checks that are stricter than libevent's parser (request
 * smuggling): both Content-Length and Transfer-Encoding, two
 * Content-Lengths, a Transfer-Encoding other than "chunked", two
 * Idempotency-Key headers. Those get 400 and a closed connection and are
 * never forwarded. Everything else goes to req_start().
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "proxy.h"

static const char *framing_error(struct evhttp_request *er)
{
    struct evkeyval *kv;
    int n_cl = 0, n_te = 0, n_key = 0;
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(er), next) {
        if (evutil_ascii_strcasecmp(kv->key, "Content-Length") == 0)
            n_cl++;
        else if (evutil_ascii_strcasecmp(kv->key, "Transfer-Encoding") == 0) {
            n_te++;
            if (evutil_ascii_strcasecmp(kv->value, "chunked") != 0)
                return "unsupported Transfer-Encoding";
        } else if (evutil_ascii_strcasecmp(kv->key, "Idempotency-Key") == 0)
            n_key++;
    }
    if (n_cl > 1)
        return "more than one Content-Length";
    if (n_te > 1)
        return "more than one Transfer-Encoding";
    if (n_cl && n_te)
        return "both Content-Length and Transfer-Encoding";
    if (n_key > 1)
        return "more than one Idempotency-Key";
    /* libevent reads a body only for these; any other would be parsed as
     * the next request */
    enum evhttp_cmd_type m = evhttp_request_get_command(er);
    if (m != EVHTTP_REQ_POST && m != EVHTTP_REQ_PUT && m != EVHTTP_REQ_PATCH) {
        const char *cl = evhttp_find_header(evhttp_request_get_input_headers(er),
                                            "Content-Length");
        if (n_te || (cl != NULL && strcmp(cl, "0") != 0))
            return "a body on a method that takes none";
    }
    return NULL;
}

static void on_request(struct evhttp_request *er, void *arg)
{
    struct proxy *px = arg;
    const char *why = framing_error(er);
    if (why != NULL) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(er);
        evhttp_add_header(h, "Content-Type", "application/json");
        evhttp_add_header(h, "Connection", "close");
        evbuffer_add_printf(evhttp_request_get_output_buffer(er),
            "{\"error\":{\"code\":\"BAD_REQUEST\",\"message\":\"Malformed request: %s.\"}}",
            why);
        stats_count(&px->stats, 0, OUT_bad_request);
        log_say(LOG_WARN, "request refused", why);
        evhttp_send_reply(er, 400, NULL, NULL);
        return;
    }
    req_start(px, er);
}

/*
 * evhttp's own limit is twice the largest body any route accepts (plus
 * 64k): req.c answers bodies over a limit but under that with the JSON 413;
 * beyond it libevent refuses with its own 413 page before reading the body,
 * so memory stays bounded (libevent 2.1 has no hook to shape that answer).
 */
void server_apply_limits(struct proxy *px)
{
    const struct config *c = px->cfg->c;
    int64_t max_body = c->max_body;
    for (int i = 0; i < c->n_routes; i++)
        if (c->routes[i].max_body > max_body)
            max_body = c->routes[i].max_body;
    evhttp_set_max_body_size(px->http, (ev_ssize_t)(2 * max_body + 65536));
    evhttp_set_max_headers_size(px->http, (ev_ssize_t)c->max_headers);
    evhttp_set_timeout(px->http, (int)((c->client_timeout_ms + 999) / 1000));
}

int server_open(struct proxy *px, char *err, size_t errlen)
{
    const struct config *c = px->cfg->c;
    px->http = evhttp_new(px->base);
    if (px->http == NULL) {
        snprintf(err, errlen, "cannot create the HTTP server");
        return -1;
    }
    evhttp_set_allowed_methods(px->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
        EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(px->http, NULL);
    server_apply_limits(px);
    evhttp_set_gencb(px->http, on_request, px);
    px->bound = evhttp_bind_socket_with_handle(px->http, c->listen_host,
                                               (ev_uint16_t)c->listen_port);
    if (px->bound == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", c->listen_host,
                 c->listen_port, strerror(errno));
        return -1;
    }
    return 0;
}

void server_stop_accepting(struct proxy *px)
{
    if (px->bound != NULL) {
        evhttp_del_accept_socket(px->http, px->bound);
        px->bound = NULL;
    }
}

void server_close(struct proxy *px)
{
    if (px->http != NULL)
        evhttp_free(px->http);
    px->http = NULL;
}
