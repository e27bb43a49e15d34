/*
 * server.c: the client listener. Owns binding, evhttp's limits, and the
 * framing checks that are stricter than libevent's parser (request
 * smuggling): both Content-Length and Transfer-Encoding, two
 * Content-Lengths, a Transfer-Encoding other than "chunked", two
 * Idempotency-Key headers, a header name that is not a token (a space
 * before the colon). Those get 400 and a closed connection and are
 * never forwarded. Everything else goes to req_start().
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "log.h"
#include "proxy.h"

/* RFC 9110 5.1: a field name is a token. */
static int is_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z') || strchr(extra, ch) != NULL))
            return 0;
    }
    return 1;
}

static const char *framing_error(struct evhttp_request *er)
{
    struct evkeyval *kv;
    int n_cl = 0, n_te = 0, n_key = 0;
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(er), next) {
        /* "Name : value" (RFC 9112 5.1: must be refused) is kept by
         * libevent as the name "Name "; forwarded, a server that stops
         * reading headers there would take the body as a second request */
        if (!is_token(kv->key))
            return "a header name that is not a token";
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

/* host:port as a socket address; 0 or -1 with a message. */
static int listen_addr(const struct config *c, struct sockaddr_storage *ss,
                       int *sslen, char *err, size_t errlen)
{
    char spec[300];
    snprintf(spec, sizeof(spec), strchr(c->listen_host, ':') ? "[%s]:%d" : "%s:%d",
             c->listen_host, c->listen_port);
    *sslen = (int)sizeof(*ss);
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)ss, sslen) != 0) {
        snprintf(err, errlen, "cannot listen on %s: not a numeric address", spec);
        return -1;
    }
    return 0;
}

/*
 * Workers share the port through SO_REUSEPORT, which would also let a
 * second idemproxy (or anything else) bind it silently and take half the
 * connections. So first bind once without it: if the port is taken, say so.
 */
int server_check_port(const struct config *c, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen;
    if (listen_addr(c, &ss, &sslen, err, errlen) != 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 || listen(fd, 1) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", c->listen_host,
                 c->listen_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
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

    struct sockaddr_storage ss;
    int sslen;
    if (listen_addr(c, &ss, &sslen, err, errlen) != 0)
        return -1;
    /* a backlog for bursts of new connections, not the historic 128 */
    struct evconnlistener *lev = evconnlistener_new_bind(px->base, NULL, NULL,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
        LEV_OPT_REUSEABLE_PORT, 4096,
        (struct sockaddr *)&ss, sslen);
    if (lev == NULL || (px->bound = evhttp_bind_listener(px->http, lev)) == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", c->listen_host,
                 c->listen_port, strerror(errno));
        if (lev != NULL)
            evconnlistener_free(lev);
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
