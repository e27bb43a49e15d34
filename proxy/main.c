/*
 * main.c: the command line (-c, -t, -T, -V, -h), the workers and their
 * lifetimes, signals (SIGTERM/SIGINT: every worker drains, then exit 0;
 * SIGHUP: reload, handed to each worker through its mailbox), and the
 * config's lifetime (cfgset shared by the workers, cfgref per worker:
 * requests keep the config they started under).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "key.h"
#include "log.h"
#include "openapi.h"
#include "admin.h"
#include "cfg.h"
#include "proxy.h"
#include "req.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "upstream.h"

/* ---- a worker, on its own thread ---- */

static void worker_exit_now(struct proxy *px)
{
    event_base_loopexit(px->base, NULL);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *px = arg;
    (void)fd; (void)what;
    struct logline l;
    log_begin(&l, LOG_WARN, "drain timeout, exiting with requests in flight");
    log_int(&l, "worker", px->id);
    log_int(&l, "in_flight", px->inflight);
    log_end(&l);
    event_base_loopexit(px->base, NULL);
}

static void worker_drain(struct proxy *px)
{
    if (px->draining)
        return;
    px->draining = 1;
    server_stop_accepting(px);
    if (px->inflight == 0 && px->n_conns == 0) {
        worker_exit_now(px);
        return;
    }
    struct timeval tv = conf_ms_tv(px->cfg->c->drain_timeout_ms);
    px->drain_timer = evtimer_new(px->base, on_drain_timeout, px);
    evtimer_add(px->drain_timer, &tv);
}

static void worker_apply(struct proxy *px, struct cfgset *set)
{
    struct cfgref *r = cfgref_new(set);
    if (r == NULL) {
        cfgset_put(set);
        log_say(LOG_ERROR, "reload not applied by a worker: out of memory", NULL);
        return;
    }
    cfgref_put(px->cfg);
    px->cfg = r;
    server_apply_limits(px);
    upstream_apply(px->up, r->c);
    store_apply(px->store, r->c);
}

/* The main thread posted something. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *px = arg;
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_say(LOG_ERROR, "worker mailbox read failed", strerror(errno));
    pthread_mutex_lock(&px->mbox_lock);
    struct cfgset *set = px->mbox_cfg;
    px->mbox_cfg = NULL;
    pthread_mutex_unlock(&px->mbox_lock);
    if (set != NULL)
        worker_apply(px, set);
    if (__atomic_load_n(&px->mbox_drain, __ATOMIC_ACQUIRE))
        worker_drain(px);
}

static void wake(int fd)
{
    uint64_t one = 1;
    if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_say(LOG_ERROR, "eventfd write failed", strerror(errno));
}

static void *worker_main(void *arg)
{
    struct proxy *px = arg;
    event_base_dispatch(px->base);

    server_close(px);           /* connections: their requests let go */
    req_free_all(px);           /* orphans still waiting on Redis or the upstream */
    store_close(px->store);     /* (it answers nobody once closing) */
    upstream_free(px->up);
    req_spares_free(px);
    px->up = NULL;
    px->store = NULL;
    wake(px->proc->done_fd);
    return NULL;
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

static struct event_base *new_base(void)
{
    struct event_config *ecfg = event_config_new();
    if (ecfg == NULL)
        return NULL;
    /* one thread per base: no locks. No epoll changelist: the request path
     * changes no event per request (one persistent read event a socket),
     * and deferring a closed socket's EPOLL_CTL_DEL to the end of the turn
     * lets it land on the same number reused by another worker's accept
     * (harmless for the kernel, but a race on the fd for ThreadSanitizer).
     * Not EVENT_BASE_FLAG_PRECISE_TIMER: it would tell loop turns apart
     * by their cached time (upstream.c looks at a connection reused within
     * the same coarse tick, a recv), but epoll then arms a timerfd, which
     * cost as many syscalls per request under load as the looks it saved */
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
    struct event_base *b = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    return b;
}

/* Everything but the thread; on the main thread, so startup errors are
 * reported before anything runs. */
static int worker_init(struct proc *pc, struct proxy *px, int id,
                       const struct upstream_addr *ua, char *err, size_t errlen)
{
    px->proc = pc;
    px->id = id;
    TAILQ_INIT(&px->owners);
    TAILQ_INIT(&px->live);
    TAILQ_INIT(&px->conns);
    TAILQ_INIT(&px->tunnels);
    px->scratch = evbuffer_new();
    px->scratch2 = evbuffer_new();
    pthread_mutex_init(&px->mbox_lock, NULL);
    make_token_prefix(px->token_prefix);
    stats_init(&px->stats);
    px->base = new_base();
    px->fp = fp_new();
    px->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    __atomic_add_fetch(&pc->cfg->refs, 1, __ATOMIC_RELAXED);
    px->cfg = cfgref_new(pc->cfg);
    if (px->base == NULL || px->fp == NULL || px->wake_fd < 0 || px->cfg == NULL ||
        px->scratch == NULL || px->scratch2 == NULL) {
        snprintf(err, errlen, "cannot start worker %d: out of memory or file descriptors", id);
        return -1;
    }
    px->wake_ev = event_new(px->base, px->wake_fd, EV_READ | EV_PERSIST, on_wake, px);
    event_add(px->wake_ev, NULL);
    const struct config *c = px->cfg->c;
    px->up = upstream_new(px->base, c, ua, err, errlen);
    if (px->up == NULL || server_open(px, err, errlen) != 0)
        return -1;
    px->store = store_open(px->base, c, &px->stats, pc->tls);
    if (px->store == NULL) {
        snprintf(err, errlen, "cannot start worker %d: out of memory", id);
        return -1;
    }
    store_publish_ready(px->store, &px->store_ready);
    return 0;
}

static void worker_free(struct proxy *px)
{
    if (px->base != NULL)
        server_close(px);
    req_free_all(px);
    store_close(px->store);
    upstream_free(px->up);
    req_spares_free(px);
    if (px->scratch != NULL)
        evbuffer_free(px->scratch);
    if (px->scratch2 != NULL)
        evbuffer_free(px->scratch2);
    if (px->drain_timer != NULL)
        event_free(px->drain_timer);
    if (px->wake_ev != NULL)
        event_free(px->wake_ev);
    if (px->wake_fd >= 0)
        close(px->wake_fd);
    pthread_mutex_lock(&px->mbox_lock);
    if (px->mbox_cfg != NULL)
        cfgset_put(px->mbox_cfg);
    pthread_mutex_unlock(&px->mbox_lock);
    pthread_mutex_destroy(&px->mbox_lock);
    fp_free(px->fp);
    if (px->cfg != NULL)
        cfgref_put(px->cfg);
    if (px->base != NULL)
        event_base_free(px->base);
}

/* ---- the main thread ---- */

static void on_worker_done(evutil_socket_t fd, short what, void *arg)
{
    struct proc *pc = arg;
    uint64_t n = 0;
    (void)what;
    if (read(fd, &n, sizeof(n)) < 0)
        return;
    pc->running -= (int)n;
    if (pc->running <= 0) {
        log_say(LOG_INFO, "stopped", NULL);
        event_base_loopexit(pc->base, NULL);
    }
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct proc *pc = arg;
    (void)what;
    if (pc->draining)
        return;
    pc->draining = 1;
    int64_t in_flight = 0;
    for (int i = 0; i < pc->n_workers; i++)
        in_flight += STAT_GET(pc->workers[i].stats.in_flight);
    struct logline l;
    log_begin(&l, LOG_INFO, "stopping: no new connections, finishing requests in flight");
    log_str(&l, "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    log_int(&l, "in_flight", in_flight);
    log_end(&l);
    for (int i = 0; i < pc->n_workers; i++) {
        __atomic_store_n(&pc->workers[i].mbox_drain, 1, __ATOMIC_RELEASE);
        wake(pc->workers[i].wake_fd);
    }
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct proc *pc = arg;
    char err[1024];
    (void)sig; (void)what;
    struct config *c = conf_load(pc->conf_path, err, sizeof(err));
    if (c == NULL) {
        log_say(LOG_ERROR, "reload refused, keeping the running config", err);
        return;
    }
    /* what only a restart changes keeps its running value, said in one line */
    char kept[1024];
    if (conf_restart_changes(pc->cfg->c, c, kept, sizeof(kept)) > 0) {
        struct logline l;
        log_begin(&l, LOG_WARN, "reload: these options change only on restart, "
                  "they keep their running values");
        log_str(&l, "options", kept);
        log_end(&l);
    }
    conf_keep_restart(c, pc->cfg->c);
    /* one reference for the main thread, one per worker */
    struct cfgset *set = cfgset_new(c, &pc->names, 1 + pc->n_workers);
    if (set == NULL) {
        conf_free(c);
        log_say(LOG_ERROR, "reload refused: out of memory", NULL);
        return;
    }
    cfgset_put(pc->cfg);
    pc->cfg = set;
    log_set_level(c->log_level);
    store_apply(pc->store, c);
    for (int i = 0; i < pc->n_workers; i++) {
        struct proxy *px = &pc->workers[i];
        pthread_mutex_lock(&px->mbox_lock);
        struct cfgset *stale = px->mbox_cfg;   /* a reload not yet taken */
        px->mbox_cfg = set;
        pthread_mutex_unlock(&px->mbox_lock);
        if (stale != NULL)
            cfgset_put(stale);
        wake(px->wake_fd);
    }
    struct logline l;
    log_begin(&l, LOG_INFO, "config reloaded");
    log_str(&l, "file", pc->conf_path);
    log_int(&l, "routes", c->n_routes);
    log_end(&l);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: idemproxy [-c FILE] [-t] [-T openapi] [-V] [-h]\n"
        "  -c FILE     config file (default /etc/idemproxy/idemproxy.conf)\n"
        "  -t          check the config and exit: 0 if good, 1 with file:line: reason\n"
        "  -T openapi  print an OpenAPI 3.0 fragment (JSON) for the config's protected\n"
        "              routes and exit: 0, or 1 with file:line: reason\n"
        "  -V          print the version and exit\n"
        "  -h          this help\n"
        "signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the config\n");
}

/* The number of CPUs this process may run on. */
static int cpus_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Exits from inside run(), so what was built is still reachable (no leak
 * report under the sanitizers) and nothing half-started has to be undone. */
static int start_failed(const char *err)
{
    log_say(LOG_ERROR, "cannot start", err);
    fprintf(stderr, "idemproxy: %s\n", err);
    exit(1);
}

static int run(const char *path, struct config *c)
{
    char err[1024];
    struct proc pc;
    memset(&pc, 0, sizeof(pc));
    pc.conf_path = path;
    stats_init(&pc.names);
    stats_init(&pc.admin_stats);
    pc.n_workers = c->workers > 0 ? c->workers : cpus_available();
    if (pc.n_workers > PROXY_MAX_WORKERS)
        pc.n_workers = PROXY_MAX_WORKERS;
    pc.base = new_base();
    pc.cfg = cfgset_new(c, &pc.names, 1);
    pc.workers = calloc((size_t)pc.n_workers, sizeof(*pc.workers));
    pc.done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pc.base == NULL || pc.cfg == NULL || pc.workers == NULL || pc.done_fd < 0)
        return start_failed("out of memory or file descriptors");
    pc.tls = tls_context_new(c, err, sizeof(err));
    if (pc.tls == NULL && err[0] != '\0')
        return start_failed(err);
    for (int i = 0; i < pc.n_workers; i++)
        pc.workers[i].wake_fd = -1;

    if (server_check_port(c, err, sizeof(err)) != 0 || admin_open(&pc, err, sizeof(err)) != 0)
        return start_failed(err);
    struct upstream_addr ua;
    upstream_addr_lookup(c, &ua);   /* once, not once per worker */
    for (int i = 0; i < pc.n_workers; i++)
        if (worker_init(&pc, &pc.workers[i], i, &ua, err, sizeof(err)) != 0)
            return start_failed(err);
    pc.store = store_open(pc.base, c, &pc.admin_stats, pc.tls);
    if (pc.store == NULL)
        return start_failed("out of memory");
    store_watch_restarts(pc.store);

    pc.done_ev = event_new(pc.base, pc.done_fd, EV_READ | EV_PERSIST, on_worker_done, &pc);
    pc.sig_term = evsignal_new(pc.base, SIGTERM, on_stop, &pc);
    pc.sig_int = evsignal_new(pc.base, SIGINT, on_stop, &pc);
    pc.sig_hup = evsignal_new(pc.base, SIGHUP, on_reload, &pc);
    event_add(pc.done_ev, NULL);
    event_add(pc.sig_term, NULL);
    event_add(pc.sig_int, NULL);
    event_add(pc.sig_hup, NULL);

    /* workers never take signals: the main thread's event loop does */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < pc.n_workers; i++) {
        if (pthread_create(&pc.workers[i].thread, NULL, worker_main, &pc.workers[i]) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return start_failed("cannot create a worker thread");
        }
        pc.workers[i].started = 1;
        pc.running++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    struct logline l;
    log_begin(&l, LOG_INFO, "started");
    log_str(&l, "version", IDEMPROXY_VERSION);
    log_str(&l, "config", path);
    log_str(&l, "listen", c->listen_host);
    log_int(&l, "port", c->listen_port);
    log_str(&l, "upstream", c->upstream_host);
    log_int(&l, "upstream_port", c->upstream_port);
    log_int(&l, "routes", c->n_routes);
    log_int(&l, "workers", pc.n_workers);
    log_end(&l);

    event_base_dispatch(pc.base);

    for (int i = 0; i < pc.n_workers; i++) {
        if (pc.workers[i].started)
            pthread_join(pc.workers[i].thread, NULL);
        worker_free(&pc.workers[i]);
    }
    store_close(pc.store);
    admin_close(&pc);
    event_free(pc.done_ev);
    event_free(pc.sig_term);
    event_free(pc.sig_int);
    event_free(pc.sig_hup);
    close(pc.done_fd);
    free(pc.workers);
    cfgset_put(pc.cfg);
    event_base_free(pc.base);
    tls_context_free(pc.tls);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = "/etc/idemproxy/idemproxy.conf";
    const char *tell = NULL;   /* -T: openapi; options or metrics (the tables, for the docs) */
    int check = 0, opt;
    char err[1024];

    while ((opt = getopt(argc, argv, "c:tT:Vh")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': check = 1; break;
        case 'T':
            if (strcmp(optarg, "openapi") != 0 && strcmp(optarg, "options") != 0 &&
                strcmp(optarg, "metrics") != 0) {
                fprintf(stderr, "idemproxy: -T %s: unknown, use -T openapi\n", optarg);
                usage(stderr);
                return 2;
            }
            tell = optarg;
            break;
        case 'V': printf("idemproxy %s\n", IDEMPROXY_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (tell != NULL && strcmp(tell, "options") == 0)
        return conf_write_options(stdout) == 0 ? 0 : 1;
    if (tell != NULL && strcmp(tell, "metrics") == 0)
        return stats_write_metrics(stdout) == 0 ? 0 : 1;
    struct config *c = conf_load(path, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (tell != NULL) {
        int rc = openapi_write(c, IDEMPROXY_VERSION, stdout);
        if (rc != 0)
            fprintf(stderr, "idemproxy: -T openapi: out of memory or write error\n");
        conf_free(c);
        return rc == 0 ? 0 : 1;
    }
    if (check) {
        /* the TLS files are read as a start would read them */
        SSL_CTX *tls = tls_context_new(c, err, sizeof(err));
        tls_context_free(tls);
        if (tls == NULL && err[0] != '\0') {
            fprintf(stderr, "%s\n", err);
            conf_free(c);
            return 1;
        }
        printf("%s: ok, %d route%s\n", path, c->n_routes, c->n_routes == 1 ? "" : "s");
        conf_free(c);
        return 0;
    }
    log_set_level(c->log_level);
    signal(SIGPIPE, SIG_IGN);
    return run(path, c);
}
