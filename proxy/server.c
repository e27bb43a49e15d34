/*
 * server.c: the client listener. Owns binding, evhttp's limits, and the
 * framing checks that are stricter than libevent's parser (request
 * smuggling): both Content-Length and Transfer-Encoding, two
 * Content-Lengths, a Transfer-Encoding other than "chunked", two
 * Idempotency-Key headers, a header name that is not a token (a space
 * before the colon). Those get 400 and a closed connection and are
 * never forwarded. Everything else goes to req_start().
 *
 * Some malformations leave no trace in what evhttp parses: it ends a C
 * string at a NUL (so "ab<NUL>cd" reads as "ab"), joins obs-folded lines
 * and accepts bare LF line ends. So the raw bytes of every request head
 * (request line to the empty line) are checked as they arrive, before
 * evhttp parses them, and on_request() refuses a request whose head
 * failed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "http.h"
#include "log.h"
#include "proxy.h"

/*
 * Write what evhttp just queued on a client connection (an answer after
 * evhttp_send_reply) now, instead of on the next turn of the loop when the
 * socket reports writable; then tell evhttp it was written. Saves a loop
 * turn and, with the epoll changelist, the epoll_ctl pair that turns write
 * interest on and off. Whatever the socket does not take now is written by
 * the bufferevent as before.
 */
void evcon_write_now(struct evhttp_connection *evcon)
{
    if (evcon == NULL)
        return;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
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

static const char *framing_error(struct evhttp_request *er)
{
    struct evkeyval *kv;
    int n_cl = 0, n_te = 0, n_key = 0;
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(er), next) {
        /* "Name : value" (RFC 9112 5.1: must be refused) is kept by
         * libevent as the name "Name "; forwarded, a server that stops
         * reading headers there would take the body as a second request */
        size_t kn = strlen(kv->key);
        if (!http_is_token(kv->key, kn))
            return "a header name that is not a token";
        if (HTTP_IS(kv->key, kn, "Content-Length"))
            n_cl++;
        else if (HTTP_IS(kv->key, kn, "Transfer-Encoding")) {
            n_te++;
            if (evutil_ascii_strcasecmp(kv->value, "chunked") != 0)
                return "unsupported Transfer-Encoding";
        } else if (HTTP_IS(kv->key, kn, "Idempotency-Key"))
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

/*
 * The raw-head check: a callback on the connection's input buffer scans
 * each head's bytes as they are read, before evhttp's read callback runs.
 * It cannot tell where a body ends, so it stops at the empty line and
 * on_request() restarts it on the bytes left over, which are the next
 * request's: evhttp has consumed exactly one request and reads no more
 * until this one is answered. The check is made on a connection's first
 * bytes (a connection that sends nothing costs nothing) and freed by the
 * connection's close callback, which nothing else on a client connection
 * sets. A chunked body's trailer section is not scanned, on purpose:
 * evhttp reads and drops trailer fields, and idemproxy forwards bodies
 * with a Content-Length, so no trailer byte reaches the upstream.
 */
enum { H_START, H_LINE, H_CR, H_CR_EMPTY, H_BODY, H_BAD };

struct head_check {
    struct proxy *px;
    struct bufferevent *bev;
    struct evbuffer_cb_entry *cb;
    int fd;                     /* its slot in px->heads */
    int state;
    int lines;                  /* non-empty lines of this head */
    const char *bad;            /* why the head is refused, or NULL */
    int reply_pending;          /* an answer counted in px->unsent */
    struct event *keeper;       /* see keeper_on_read */
};

/* bevcb and the first-bytes callback run on the worker's own thread */
static __thread struct proxy *this_worker;

static void head_refuse(struct head_check *h, const char *why)
{
    h->bad = why;
    h->state = H_BAD;
}

/* the bytes that end a run of line content */
static const unsigned char line_end[256] = { ['\0'] = 1, ['\r'] = 1, ['\n'] = 1 };

static void head_bytes(struct head_check *h, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    while (p < end && h->state < H_BODY) {
        unsigned char ch = *p++;
        if (ch == '\0') {
            head_refuse(h, "a NUL byte in the request head");
            return;
        }
        switch (h->state) {
        case H_LINE:
            while (!line_end[ch] && p < end)
                ch = *p++;
            if (ch == '\0') {
                head_refuse(h, "a NUL byte in the request head");
                return;
            }
            if (ch == '\r')
                h->state = H_CR;
            else if (ch == '\n')
                head_refuse(h, "a line that ends in LF without CR");
            break;
        case H_START:
            if (ch == '\r')
                h->state = H_CR_EMPTY;
            else if (ch == '\n')
                head_refuse(h, "a line that ends in LF without CR");
            else if (ch == ' ' || ch == '\t')
                head_refuse(h, "a header line folded onto the previous one (obs-fold)");
            else {
                h->state = H_LINE;
                h->lines++;
            }
            break;
        case H_CR:
        case H_CR_EMPTY:
            if (ch != '\n')
                head_refuse(h, "a CR not followed by LF");
            else if (h->state == H_CR || h->lines == 0)
                h->state = H_START;     /* (empty lines before a request line) */
            else
                h->state = H_BODY;
            break;
        }
    }
}

/* Scan buf from offset `from` until the head ends or the bytes do. */
static void head_scan(struct head_check *h, struct evbuffer *buf, size_t from)
{
    struct evbuffer_ptr at;
    struct evbuffer_iovec v[8];
    if (evbuffer_ptr_set(buf, &at, from, EVBUFFER_PTR_SET) != 0)
        return;
    while (h->state < H_BODY) {
        int n = evbuffer_peek(buf, -1, &at, v, 8);
        size_t seen = 0;
        for (int i = 0; i < n && i < 8; i++) {
            head_bytes(h, v[i].iov_base, v[i].iov_len);
            seen += v[i].iov_len;
        }
        if (n <= 8 || evbuffer_ptr_set(buf, &at, seen, EVBUFFER_PTR_ADD) != 0)
            return;
    }
}

/* Between heads the callback is removed (not just disabled: any callback
 * on the buffer makes each of evhttp's many drains walk the list). */
static void head_scan_new(struct head_check *h, struct evbuffer *buf, size_t from)
{
    head_scan(h, buf, from);
    if (h->state >= H_BODY && h->cb != NULL) {
        evbuffer_remove_cb_entry(buf, h->cb);
        h->cb = NULL;
    }
}

static void head_on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                          void *arg)
{
    struct head_check *h = arg;
    if (info->n_added > 0)
        head_scan_new(h, buf, evbuffer_get_length(buf) - info->n_added);
}

#define KEEP_READ_MAX (256 * 1024)

/*
 * A second read event on each client socket, so that evhttp turning its
 * own read event off and on (around every request, see
 * server_keep_reading) never reaches epoll: the socket's registration
 * stays as it is while any event on it wants to read. It does nothing
 * while the bufferevent reads (whose callback takes the bytes in the same
 * turn); when the bufferevent does not (a refused request, a client
 * sending past the watermark), it steps aside so it cannot spin on a
 * level-triggered socket, and server_keep_reading puts it back.
 */
static void keeper_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct head_check *h = arg;
    (void)fd; (void)what;
    if ((bufferevent_get_enabled(h->bev) & EV_READ) &&
        evbuffer_get_length(bufferevent_get_input(h->bev)) < KEEP_READ_MAX)
        return;
    event_del(h->keeper);
}

static void head_on_close(struct evhttp_connection *conn, void *arg)
{
    struct head_check *h = arg;
    struct proxy *px = h->px;
    (void)conn;
    if (h->keeper != NULL)
        event_free(h->keeper);
    /* evhttp may drain the input after this; nothing must call back */
    if (h->cb != NULL)
        evbuffer_remove_cb_entry(bufferevent_get_input(h->bev), h->cb);
    if (px->heads[h->fd] == h)
        px->heads[h->fd] = NULL;
    int pending = h->reply_pending;
    free(h);
    if (!pending)
        return;
    /* the connection failed while its answer was being written: libevent
     * drops the request without its completion callback */
    px->unsent--;
    proxy_request_done(px);
}

static void head_on_first_input(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                                void *arg)
{
    struct bufferevent *bev = arg;
    struct proxy *px = this_worker;
    void *conn = NULL;
    if (info->n_added == 0)
        return;
    evbuffer_remove_cb(buf, head_on_first_input, bev);
    int fd = (int)bufferevent_getfd(bev);
    bufferevent_getcb(bev, NULL, NULL, NULL, &conn);  /* evhttp's: the connection */
    if (fd < 0 || conn == NULL)
        return;
    if (fd >= px->n_heads) {
        int n = px->n_heads ? px->n_heads : 256;
        while (n <= fd)
            n *= 2;
        struct head_check **t = realloc(px->heads, (size_t)n * sizeof(*t));
        if (t == NULL)
            return;                     /* on_request() refuses */
        memset(t + px->n_heads, 0, (size_t)(n - px->n_heads) * sizeof(*t));
        px->heads = t;
        px->n_heads = n;
    }
    struct head_check *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->cb = evbuffer_add_cb(buf, head_on_input, h)) == NULL) {
        free(h);
        return;
    }
    h->px = px;
    h->bev = bev;
    h->fd = fd;
    h->keeper = event_new(bufferevent_get_base(bev), fd, EV_READ | EV_PERSIST,
                          keeper_on_read, h);
    if (h->keeper != NULL)
        event_add(h->keeper, NULL);
    px->heads[fd] = h;
    evhttp_connection_set_closecb(conn, head_on_close, h);
    head_scan_new(h, buf, evbuffer_get_length(buf) - info->n_added);
}

static struct bufferevent *make_client_bev(struct event_base *base, void *arg)
{
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    this_worker = arg;
    if (bev != NULL && evbuffer_add_cb(bufferevent_get_input(bev), head_on_first_input,
                                       bev) == NULL) {
        bufferevent_free(bev);
        bev = NULL;     /* evhttp makes its own; on_request() refuses */
    }
    return bev;
}

/* The connection's head check (NULL only without memory). */
static struct head_check *head_of(struct proxy *px, struct evhttp_request *er)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(er);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    int fd = bev != NULL ? (int)bufferevent_getfd(bev) : -1;
    struct head_check *h = fd >= 0 && fd < px->n_heads ? px->heads[fd] : NULL;
    return h != NULL && h->bev == bev ? h : NULL;
}

/* The check's verdict on this request's head (NULL: clean), and the
 * start of the check on the next request's. */
static const char *head_verdict(struct head_check *h)
{
    const char *why = h->state == H_BODY ? NULL :
                      h->bad != NULL ? h->bad : "an incomplete request head";
    struct evbuffer *in = bufferevent_get_input(h->bev);
    h->state = H_START;
    h->lines = 0;
    h->bad = NULL;
    if (h->cb == NULL && (h->cb = evbuffer_add_cb(in, head_on_input, h)) == NULL)
        head_refuse(h, "out of memory for its check");  /* the next request */
    head_scan_new(h, in, 0);
    return why;
}

void server_reply_pending(struct proxy *px, struct evhttp_request *er, int pending)
{
    struct head_check *h = head_of(px, er);
    if (h == NULL)
        return;
    h->reply_pending = pending;
    /* written: evhttp reads the next request now, the watermark goes (it
     * stayed on while the answer was written, when evhttp reads with no
     * read callback too) */
    if (!pending)
        bufferevent_setwatermark(h->bev, EV_READ, 0, 0);
}

static void refuse(struct proxy *px, struct evhttp_request *er, const char *why)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(er);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Connection", "close");
    evbuffer_add_printf(evhttp_request_get_output_buffer(er),
        "{\"error\":{\"code\":\"BAD_REQUEST\",\"message\":\"Malformed request: %s.\"}}",
        why);
    stats_count(&px->stats, 0, OUT_bad_request);
    log_say(LOG_WARN, "request refused", why);
    struct evhttp_connection *conn = evhttp_request_get_connection(er);
    evhttp_send_reply(er, 400, NULL, NULL);
    evcon_write_now(conn);
}

static void on_request(struct evhttp_request *er, void *arg)
{
    struct proxy *px = arg;
    struct head_check *h = head_of(px, er);
    if (h == NULL) {
        log_say(LOG_ERROR, "request refused", "out of memory for its head check");
        evhttp_send_error(er, 503, NULL);
        return;
    }
    const char *why = head_verdict(h);
    if (why == NULL)
        why = framing_error(er);
    if (why != NULL) {
        refuse(px, er, why);
        return;
    }
    server_keep_reading(px, er);
    req_start(px, er);
}

/*
 * evhttp turns a client connection's reading off while its request is
 * handled and on again when the answer goes out: an epoll_ctl each way,
 * per request. Reading stays on instead, as evhttp itself has it while it
 * writes an answer: no read callback (bytes that arrive are kept for the
 * next request; an EOF is left for the answer's write to find, an error
 * detaches the request, which goes on and stores its answer), no read
 * timeout (the request's own timers bound it) and a high watermark, so a
 * client that sends on cannot fill memory. server_reading_done() puts the
 * timeout back before the answer; the watermark stays until the answer is
 * written (server_reply_pending).
 */
static struct timeval client_tv(const struct proxy *px)
{
    /* what evhttp_set_timeout() gave the connection: whole seconds */
    struct timeval tv = { (time_t)((px->cfg->c->client_timeout_ms + 999) / 1000), 0 };
    return tv;
}

/* The connection's event callback while its request is handled. An EOF
 * (the client closed, or only shut down its sending side) is left for the
 * answer's write to find, as when evhttp stops reading: a client that
 * half-closes still gets its answer. Errors go to evhttp, which detaches
 * the request. */
static __thread bufferevent_event_cb evhttp_event_cb;  /* evhttp's, one for all */

static void keep_on_event(struct bufferevent *bev, short what, void *arg)
{
    if ((what & BEV_EVENT_READING) && (what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR))
        return;             /* (the bufferevent stopped reading) */
    evhttp_event_cb(bev, what, arg);
}

void server_keep_reading(struct proxy *px, struct evhttp_request *er)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(er);
    struct head_check *h = head_of(px, er);
    if (conn == NULL || h == NULL || h->keeper == NULL)
        return;             /* evhttp's way, then */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    bufferevent_data_cb wcb;
    bufferevent_event_cb ecb;
    void *arg;
    struct timeval tv = client_tv(px);
    /* The callbacks share one argument, and it must stay evhttp's
     * connection: its write callback is left in place and can run while
     * the request is handled (a "100 Continue" still queued on a socket
     * that was not writable). evhttp_write_buffer() sets its own
     * callbacks again for the answer. */
    bufferevent_getcb(bev, NULL, &wcb, &ecb, &arg);
    if (ecb != keep_on_event)
        evhttp_event_cb = ecb;
    bufferevent_setcb(bev, NULL, wcb, keep_on_event, arg);
    bufferevent_set_timeouts(bev, NULL, &tv);
    bufferevent_setwatermark(bev, EV_READ, 0, KEEP_READ_MAX);
    bufferevent_enable(bev, EV_READ);
    if (!event_pending(h->keeper, EV_READ, NULL))
        event_add(h->keeper, NULL);
}

void server_reading_done(struct proxy *px, struct evhttp_connection *conn)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    struct timeval tv = client_tv(px);
    bufferevent_set_timeouts(bev, &tv, &tv);
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
    evhttp_set_bevcb(px->http, make_client_bev, px);

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
        evhttp_free(px->http);     /* closes connections: frees their head checks */
    px->http = NULL;
    free(px->heads);
    px->heads = NULL;
    px->n_heads = 0;
}
