/*
 * main.c: the command line (-c, -t, -V, -h), the event base, signals
 * (SIGTERM/SIGINT drain and exit 0, SIGHUP reload), and the config's
 * lifetime (cfgref: requests keep the config they started under).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <event2/event.h>
#include <event2/http.h>

#include "key.h"
#include "log.h"
#include "proxy.h"
#include "store.h"
#include "upstream.h"

struct cfgref *cfgref_new(struct config *c, struct stats *s)
{
    struct cfgref *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->c = c;
    r->refs = 1;
    for (int i = 0; i < c->n_routes; i++)
        r->stats_idx[i] = stats_route(s, c->routes[i].name);
    return r;
}

struct cfgref *cfgref_get(struct cfgref *r)
{
    r->refs++;
    return r;
}

void cfgref_put(struct cfgref *r)
{
    if (--r->refs > 0)
        return;
    conf_free(r->c);
    free(r);
}

static void proxy_exit_now(struct proxy *px)
{
    log_say(LOG_INFO, "stopped", NULL);
    event_base_loopexit(px->base, NULL);
}

void proxy_request_done(struct proxy *px)
{
    if (px->draining && px->inflight == 0 && px->unsent == 0)
        proxy_exit_now(px);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *px = arg;
    (void)fd; (void)what;
    struct logline l;
    log_begin(&l, LOG_WARN, "drain timeout, exiting with requests in flight");
    log_int(&l, "in_flight", px->inflight);
    log_end(&l);
    event_base_loopexit(px->base, NULL);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct proxy *px = arg;
    (void)what;
    if (px->draining)
        return;
    px->draining = 1;
    struct logline l;
    log_begin(&l, LOG_INFO, "stopping: no new connections, finishing requests in flight");
    log_str(&l, "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    log_int(&l, "in_flight", px->inflight);
    log_end(&l);
    server_stop_accepting(px);
    if (px->inflight == 0 && px->unsent == 0) {
        proxy_exit_now(px);
        return;
    }
    int64_t ms = px->cfg->c->drain_timeout_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    px->drain_timer = evtimer_new(px->base, on_drain_timeout, px);
    evtimer_add(px->drain_timer, &tv);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct proxy *px = arg;
    char err[1024];
    (void)sig; (void)what;
    struct config *c = conf_load(px->conf_path, err, sizeof(err));
    if (c == NULL) {
        log_say(LOG_ERROR, "reload refused, keeping the running config", err);
        return;
    }
    const struct config *old = px->cfg->c;
    if (strcmp(c->listen_host, old->listen_host) || c->listen_port != old->listen_port ||
        strcmp(c->upstream_host, old->upstream_host) || c->upstream_port != old->upstream_port ||
        strcmp(c->redis_host, old->redis_host) || c->redis_port != old->redis_port ||
        c->redis_db != old->redis_db || strcmp(c->key_prefix, old->key_prefix) ||
        c->admin_port != old->admin_port || strcmp(c->admin_host, old->admin_host))
        log_say(LOG_WARN, "reload: listen, upstream, redis and admin addresses and key_prefix change only on restart", NULL);
    /* keep what only a restart changes, so the running parts match */
    memcpy(c->listen_host, old->listen_host, sizeof(c->listen_host));
    c->listen_port = old->listen_port;
    memcpy(c->upstream_host, old->upstream_host, sizeof(c->upstream_host));
    c->upstream_port = old->upstream_port;
    memcpy(c->redis_host, old->redis_host, sizeof(c->redis_host));
    c->redis_port = old->redis_port;
    c->redis_db = old->redis_db;
    memcpy(c->key_prefix, old->key_prefix, sizeof(c->key_prefix));
    c->upstream_connections = old->upstream_connections;
    struct cfgref *r = cfgref_new(c, &px->stats);
    if (r == NULL) {
        conf_free(c);
        log_say(LOG_ERROR, "reload refused: out of memory", NULL);
        return;
    }
    cfgref_put(px->cfg);
    px->cfg = r;
    log_set_level(c->log_level);
    server_apply_limits(px);
    upstream_apply(px->up, c);
    store_set_timeout(px->store, c->redis_timeout_ms);
    struct logline l;
    log_begin(&l, LOG_INFO, "config reloaded");
    log_str(&l, "file", px->conf_path);
    log_int(&l, "routes", c->n_routes);
    log_end(&l);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: idemproxy [-c FILE] [-t] [-V] [-h]\n"
        "  -c FILE  config file (default /etc/idemproxy/idemproxy.conf)\n"
        "  -t       check the config and exit: 0 if good, 1 with file:line: reason\n"
        "  -V       print the version and exit\n"
        "  -h       this help\n"
        "signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the config\n");
}

static void make_token_prefix(char out[17])
{
    unsigned char b[8];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long x = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)getpid() << 32);
        memcpy(b, &x, sizeof(b));
    }
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int main(int argc, char **argv)
{
    const char *path = "/etc/idemproxy/idemproxy.conf";
    int check = 0, opt;
    char err[1024];

    while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': check = 1; break;
        case 'V': printf("idemproxy %s\n", IDEMPROXY_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    struct config *c = conf_load(path, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check) {
        printf("%s: ok, %d route%s\n", path, c->n_routes, c->n_routes == 1 ? "" : "s");
        conf_free(c);
        return 0;
    }
    log_set_level(c->log_level);
    signal(SIGPIPE, SIG_IGN);

    struct proxy px;
    memset(&px, 0, sizeof(px));
    TAILQ_INIT(&px.owners);
    px.conf_path = path;
    make_token_prefix(px.token_prefix);
    stats_init(&px.stats);
    struct event_config *ecfg = event_config_new();
    px.base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    px.cfg = cfgref_new(c, &px.stats);
    px.fp = fp_new();
    if (px.base == NULL || px.cfg == NULL || px.fp == NULL) {
        log_say(LOG_ERROR, "cannot start", "out of memory");
        return 1;
    }
    px.up = upstream_new(px.base, c, err, sizeof(err));
    if (px.up == NULL || server_open(&px, err, sizeof(err)) != 0 ||
        admin_open(&px, err, sizeof(err)) != 0) {
        log_say(LOG_ERROR, "cannot start", err);
        fprintf(stderr, "idemproxy: %s\n", err);
        return 1;
    }
    px.store = store_open(px.base, c, &px.stats);

    px.sig_term = evsignal_new(px.base, SIGTERM, on_stop, &px);
    px.sig_int = evsignal_new(px.base, SIGINT, on_stop, &px);
    px.sig_hup = evsignal_new(px.base, SIGHUP, on_reload, &px);
    event_add(px.sig_term, NULL);
    event_add(px.sig_int, NULL);
    event_add(px.sig_hup, NULL);

    struct logline l;
    log_begin(&l, LOG_INFO, "started");
    log_str(&l, "version", IDEMPROXY_VERSION);
    log_str(&l, "config", path);
    log_str(&l, "listen", c->listen_host);
    log_int(&l, "port", c->listen_port);
    log_str(&l, "upstream", c->upstream_host);
    log_int(&l, "upstream_port", c->upstream_port);
    log_int(&l, "routes", c->n_routes);
    log_end(&l);

    event_base_dispatch(px.base);

    store_close(px.store);     /* before the servers: no reply to freed requests */
    server_close(&px);
    admin_close(&px);
    upstream_free(px.up);
    event_free(px.sig_term);
    event_free(px.sig_int);
    event_free(px.sig_hup);
    if (px.drain_timer != NULL)
        event_free(px.drain_timer);
    fp_free(px.fp);
    cfgref_put(px.cfg);
    event_base_free(px.base);
    return 0;
}
