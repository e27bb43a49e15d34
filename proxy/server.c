/*
 * server.c: a worker's client listener. Owns binding (the shared port,
 * SO_REUSEPORT), accepting (a conn per client, conn.c), the client-side
 * timeouts and limits as the config sets them, handing each parsed
 * request to a new req (req.c), and the Date field of answers.
 * Does not own: reading or framing (conn.c), what a request means (req.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "conn.h"
#include "log.h"
#include "proxy.h"
#include "req.h"
#include "server.h"
#include "tunnel.h"

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct proxy *px = arg;
    (void)lev;
    if (conn_new(px, fd, sa, salen) == NULL)
        log_say(LOG_ERROR, "connection refused: out of memory", NULL);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)lev;
    (void)arg;
    /* EMFILE and the like: the listener goes on; the client waits in the
     * backlog or is refused by the kernel */
    log_say(LOG_ERROR, "accept failed", strerror(errno));
}

static const struct timeval *common_tv(struct proxy *px, int64_t ms, struct timeval *fallback)
{
    struct timeval tv = conf_ms_tv(ms);
    const struct timeval *t = event_base_init_common_timeout(px->base, &tv);
    if (t != NULL)
        return t;
    *fallback = tv;
    return fallback;
}

void server_apply_limits(struct proxy *px)
{
    const struct config *c = px->cfg->c;
    static __thread struct timeval fb[5];
    px->tv_header = common_tv(px, c->client_header_timeout_ms, &fb[0]);
    px->tv_body = common_tv(px, c->client_body_timeout_ms, &fb[1]);
    px->tv_send = common_tv(px, c->send_timeout_ms, &fb[2]);
    px->tv_idle = common_tv(px, c->client_timeout_ms, &fb[3]);
    /* how long a closing connection reads on, so the client reads its
     * last answer before the close (not reset under it) */
    px->tv_linger = common_tv(px, c->client_header_timeout_ms < 5000
                                  ? c->client_header_timeout_ms : 5000, &fb[4]);
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
    struct sockaddr_storage ss;
    int sslen;
    server_apply_limits(px);
    px->dispatch = req_start;
    if (listen_addr(c, &ss, &sslen, err, errlen) != 0)
        return -1;
    /* a backlog for bursts of new connections, not the historic 128 */
    px->listener = evconnlistener_new_bind(px->base, on_accept, px,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
        LEV_OPT_REUSEABLE_PORT, 4096, (struct sockaddr *)&ss, sslen);
    if (px->listener == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", c->listen_host,
                 c->listen_port, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(px->listener, on_accept_error);
    return 0;
}

void server_stop_accepting(struct proxy *px)
{
    if (px->listener != NULL) {
        evconnlistener_free(px->listener);
        px->listener = NULL;
    }
    conn_drain_all(px);
}

void server_close(struct proxy *px)
{
    server_stop_accepting(px);
    conn_free_all(px);
    tunnel_free_all(px);
}
