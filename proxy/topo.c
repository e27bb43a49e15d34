/*
 * topo.c: the nodes of one event loop and which of them serves a key.
 *
 * One server: one node, for ever. Sentinel: one connection to a sentinel
 * (the first that answers, then the next when it is lost) asks where the
 * master is and subscribes to +switch-master; the master's node is set up
 * with ROLE, and a master that is lost, answers READONLY or says it is a
 * replica makes it ask again. Cluster: a node per master, and the slot map
 * from CLUSTER SLOTS of any ready node (at first the seeds), fetched again
 * after MOVED, a lost master, CLUSTERDOWN, and every 10 seconds.
 *
 * Nodes leave (a master replaced, a seed that is not a master) through a
 * deferred sweep, never inside a connection's callback: the commands
 * still on them are answered NULL by rconn_free, and the store's
 * retries route past them.
 */
#include "topo.h"
#include "rconn.h"
#include "log.h"
#include "sentinel.h"
#include "slots.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis.h>

#define TOPO_MAX_NODES 64
#define TOPO_REFRESH_SOON_MS 200
#define TOPO_REFRESH_EVERY_MS 10000

struct topo {
    struct event_base *base;
    const struct topo_hooks *h;
    void *owner;
    struct stats *stats;
    enum redis_mode mode;
    SSL_CTX *tls;
    char server_name[256];
    char user[128], pass[256], spass[256];
    int db;
    int64_t timeout_ms;
    struct node *nodes[TOPO_MAX_NODES];   /* by index; NULL holes */
    struct event *sweep;                  /* frees nodes that are gone */
    /* one server, or the sentinels' master */
    struct node *master;
    /* sentinel */
    struct addr_nodes sentinels;
    char sentinel_master[128];
    struct rconn *sc;                     /* to sentinels.v[s_idx] */
    int s_idx;
    char s_status[ADDR_MAX_NODES][320];   /* why each sentinel failed; "" fine */
    struct event *s_again;                /* ask a sentinel (again) */
    struct event *s_ping;
    unsigned s_keep:1;                    /* s_again: the same sentinel */
    /* cluster */
    struct addr_nodes seeds;
    struct slots_map *map;
    struct event *refresh;
    struct event *refresh_every;
    unsigned refreshing:1;
    unsigned map_known:1;
    char status[900];
};

const char *topo_node_name(const struct node *n, char *buf, size_t len)
{
    snprintf(buf, len, strchr(n->host, ':') ? "[%s]:%d" : "%s:%d", n->host, n->port);
    return buf;
}

static void topo_refresh_soon(struct topo *t, int ms);
static void sentinel_again(struct topo *t, int same, int ms);

/* ---- nodes ---- */

static int node_index(const struct node *n)
{
    for (int i = 0; i < TOPO_MAX_NODES; i++)
        if (n->t->nodes[i] == n)
            return i;
    return -1;
}

static void on_node_up(void *owner, struct rconn *c);
static void on_node_down(void *owner, struct rconn *c);
static void on_node_flush(void *owner, struct rconn *c);

static const struct rconn_hooks node_hooks = {
    .up = on_node_up, .down = on_node_down, .flush = on_node_flush, .push = NULL,
};

static int64_t topo_setup_ms(const struct topo *t)
{
    return t->timeout_ms * 2 > 1000 ? t->timeout_ms * 2 : 1000;
}

/* The node at host:port, made (and connecting) if new; NULL when full. */
static struct node *node_get(struct topo *t, const char *host, int port)
{
    int free_at = -1;
    for (int i = 0; i < TOPO_MAX_NODES; i++) {
        struct node *n = t->nodes[i];
        if (n == NULL) {
            if (free_at < 0)
                free_at = i;
            continue;
        }
        if (!n->gone && n->port == port && strcmp(n->host, host) == 0)
            return n;
    }
    if (free_at < 0) {
        log_say(LOG_ERROR, "redis: too many nodes", host);
        return NULL;
    }
    struct node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->t = t;
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    struct rconn_opts o = {
        .host = host, .port = port, .tls = t->tls, .tls_server_name = t->server_name,
        .username = t->user, .password = t->pass,
        .db = t->mode == REDIS_CLUSTER ? 0 : t->db,
        .timeout_ms = t->timeout_ms, .setup_ms = topo_setup_ms(t), .what = "redis",
    };
    if (t->h->node_new(t->owner, n) != 0) {
        free(n);
        return NULL;
    }
    n->c = rconn_new(t->base, &o, &node_hooks, n);
    if (n->c == NULL) {
        t->h->node_free(t->owner, n);
        free(n);
        return NULL;                /* the next refresh or ask tries again */
    }
    t->nodes[free_at] = n;
    return n;
}

/* 1 when the map gives n a slot */
static int node_serves(const struct node *n)
{
    const struct topo *t = n->t;
    int idx = node_index(n);
    if (!t->map_known || idx < 0)
        return 0;
    for (int s = 0; s < SLOTS_N; s++)
        if (t->map->node[s] == idx)
            return 1;
    return 0;
}

const char *topo_node_status(const struct node *n)
{
    return rconn_status(n->c);
}

/* Out of the topology; freed by the sweep. */
static void node_leave(struct node *n)
{
    struct topo *t = n->t;
    if (n->gone)
        return;
    n->gone = 1;
    n->ready = 0;
    if (t->master == n)
        t->master = NULL;
    if (t->map != NULL) {
        int idx = node_index(n);
        for (int s = 0; s < SLOTS_N; s++)
            if (t->map->node[s] == idx)
                t->map->node[s] = SLOTS_NONE;
    }
    event_active(t->sweep, EV_TIMEOUT, 1);
}

static void node_free(struct node *n)
{
    struct topo *t = n->t;
    rconn_free(n->c);              /* its commands are answered NULL now */
    t->h->node_free(t->owner, n);
    free(n);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct topo *t = arg;
    (void)fd; (void)what;
    for (int i = 0; i < TOPO_MAX_NODES; i++) {
        struct node *n = t->nodes[i];
        if (n != NULL && n->gone) {
            t->nodes[i] = NULL;
            node_free(n);
        }
    }
}

static void on_role(void *arg, struct rconn *c, const redisReply *r)
{
    struct node *n = arg;
    (void)c;
    if (r == NULL)
        return;
    if (sentinel_parse_role(r) == ROLE_MASTER) {
        n->role_checked = 1;
        topo_setup_done(n, NULL);
        return;
    }
    topo_setup_done(n, r->type == REDIS_REPLY_ERROR ? "refused ROLE"
                       : "is not a master (ROLE says otherwise): asking the sentinels again");
    sentinel_again(n->t, 1, 500);
}

static void on_node_up(void *owner, struct rconn *c)
{
    struct node *n = owner;
    struct topo *t = n->t;
    (void)c;
    n->down = 0;
    n->ready = 0;
    n->role_checked = 0;
    n->setup_left = 1;             /* held until the hooks below have queued theirs */
    if (t->mode == REDIS_SENTINEL) {
        static const char *const role[] = { "ROLE" };
        if (rconn_sendv(n->c, on_role, n, 1, role) == 0)
            n->setup_left++;
    }
    t->h->node_up(t->owner, n);
    topo_setup_done(n, NULL);
}

void topo_setup_expect(struct node *n, int count)
{
    n->setup_left += count;
}

void topo_setup_done(struct node *n, const char *why)
{
    struct topo *t = n->t;
    if (why != NULL) {
        rconn_drop(n->c, why);
        return;
    }
    if (n->setup_left <= 0 || --n->setup_left > 0 || !rconn_is_up(n->c))
        return;
    rconn_ready(n->c);
    n->ready = 1;
    n->said[0] = '\0';
    struct logline l;
    char name[300];
    log_begin(&l, LOG_INFO, "redis ready");
    log_str(&l, "node", topo_node_name(n, name, sizeof(name)));
    log_end(&l);
    t->h->node_ready(t->owner, n);
    if (t->mode == REDIS_CLUSTER && (!t->map_known || !slots_covered(t->map)))
        topo_refresh_soon(t, 0);
}

static void on_node_down(void *owner, struct rconn *c)
{
    struct node *n = owner;
    struct topo *t = n->t;
    int was_ready = n->ready;
    n->ready = 0;
    n->down = 1;
    STAT_ADD(t->stats->redis_reconnects, 1);
    /* each failure once, not once per retry */
    if (was_ready || strcmp(n->said, rconn_status(c)) != 0) {
        struct logline l;
        char name[300];
        log_begin(&l, LOG_WARN, was_ready ? "redis disconnected, reconnecting"
                                          : "redis connect failed, retrying");
        log_str(&l, "node", topo_node_name(n, name, sizeof(name)));
        log_str(&l, "detail", rconn_status(c));
        log_end(&l);
        snprintf(n->said, sizeof(n->said), "%s", rconn_status(c));
    }
    t->h->node_down(t->owner, n);
    if (n->gone)
        return;
    if (t->mode == REDIS_SENTINEL && n == t->master)
        sentinel_again(t, 1, 250);
    else if (t->mode == REDIS_CLUSTER)
        topo_refresh_soon(t, TOPO_REFRESH_SOON_MS);
}

static void on_node_flush(void *owner, struct rconn *c)
{
    struct node *n = owner;
    (void)c;
    if (n->t->h->node_flush != NULL)
        n->t->h->node_flush(n->t->owner, n);
}

/* The master is now host:port (single and sentinel modes). */
static void topo_set_master(struct topo *t, const char *host, int port, const char *via)
{
    struct node *old = t->master;
    if (old != NULL && old->port == port && strcmp(old->host, host) == 0)
        return;
    char a[300], b[300];
    if (old != NULL) {
        STAT_ADD(t->stats->redis_failovers, 1);
        struct logline l;
        log_begin(&l, LOG_WARN, "redis master changed");
        log_str(&l, "from", topo_node_name(old, a, sizeof(a)));
        snprintf(b, sizeof(b), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
        log_str(&l, "to", b);
        log_str(&l, "via", via);
        log_end(&l);
        node_leave(old);
    } else if (t->mode == REDIS_SENTINEL) {
        struct logline l;
        snprintf(b, sizeof(b), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
        log_begin(&l, LOG_INFO, "redis master found");
        log_str(&l, "master", b);
        log_str(&l, "via", via);
        log_end(&l);
    }
    t->master = node_get(t, host, port);
    t->h->changed(t->owner);
}

/* ---- sentinel ---- */

static void on_sentinel_up(void *owner, struct rconn *c);
static void on_sentinel_down(void *owner, struct rconn *c);
static void on_sentinel_push(void *owner, struct rconn *c, const redisReply *r);

static const struct rconn_hooks sentinel_hooks = {
    .up = on_sentinel_up, .down = on_sentinel_down, .flush = NULL, .push = on_sentinel_push,
};

static void sentinel_connect(struct topo *t)
{
    const struct addr_node *s = &t->sentinels.v[t->s_idx];
    struct rconn_opts o = {
        .host = s->host, .port = s->port, .tls = t->tls, .tls_server_name = t->server_name,
        .username = "", .password = t->spass, .db = 0,
        .timeout_ms = t->timeout_ms, .setup_ms = topo_setup_ms(t), .what = "sentinel",
    };
    t->sc = rconn_new(t->base, &o, &sentinel_hooks, t);
    if (t->sc == NULL)
        sentinel_again(t, 1, 1000);   /* out of memory: try again later */
}

static void on_sentinel_again(evutil_socket_t fd, short what, void *arg)
{
    struct topo *t = arg;
    (void)fd; (void)what;
    if (t->sc != NULL) {
        rconn_free(t->sc);
        t->sc = NULL;
    }
    if (!t->s_keep)
        t->s_idx = (t->s_idx + 1) % t->sentinels.n;
    t->s_keep = 0;
    sentinel_connect(t);
}

/* Ask a sentinel again: the same one (same) or the next, after ms. */
static void sentinel_again(struct topo *t, int same, int ms)
{
    if (t->mode != REDIS_SENTINEL || evtimer_pending(t->s_again, NULL))
        return;
    t->s_keep = same;
    struct timeval tv = conf_ms_tv(ms);
    evtimer_add(t->s_again, &tv);
}

static void on_master_addr(void *arg, struct rconn *c, const redisReply *r)
{
    struct topo *t = arg;
    char host[256], why[400];
    int port;
    if (r == NULL)
        return;
    int rc = sentinel_parse_addr(r, host, sizeof(host), &port);
    if (rc == 0) {
        topo_set_master(t, host, port, "sentinel");
        return;
    }
    if (rc == 1)
        snprintf(why, sizeof(why), "does not know a master named \"%s\" (sentinel_master)",
                 t->sentinel_master);
    else
        snprintf(why, sizeof(why), "did not say where the master is: %.200s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "a malformed answer");
    rconn_drop(c, why);
}

static void on_subscribed(void *arg, struct rconn *c, const redisReply *r)
{
    struct topo *t = arg;
    if (r == NULL || rconn_refused(c, r, "refused SUBSCRIBE +switch-master"))
        return;
    rconn_ready(c);
    t->s_status[t->s_idx][0] = '\0';
}

static void on_pong(void *arg, struct rconn *c, const redisReply *r)
{
    (void)arg; (void)c; (void)r;     /* its absence is noticed by the timeout */
}

static void on_sentinel_ping(evutil_socket_t fd, short what, void *arg)
{
    struct topo *t = arg;
    (void)fd; (void)what;
    static const char *const ping[] = { "PING" };
    if (t->sc != NULL && rconn_is_ready(t->sc))
        rconn_sendv(t->sc, on_pong, t, 1, ping);
}

static void on_sentinel_up(void *owner, struct rconn *c)
{
    struct topo *t = owner;
    const char *ask[] = { "SENTINEL", "get-master-addr-by-name", t->sentinel_master };
    const char *sub[] = { "SUBSCRIBE", "+switch-master" };
    rconn_sendv(c, on_master_addr, t, 3, ask);
    rconn_sendv(c, on_subscribed, t, 2, sub);
    rconn_subscribed(c);
}

static void on_sentinel_down(void *owner, struct rconn *c)
{
    struct topo *t = owner;
    snprintf(t->s_status[t->s_idx], sizeof(t->s_status[0]), "%s", rconn_status(c));
    struct logline l;
    log_begin(&l, LOG_WARN, "sentinel unreachable, asking the next");
    log_str(&l, "detail", rconn_status(c));
    log_end(&l);
    sentinel_again(t, t->sentinels.n == 1, 200);
}

static void on_sentinel_push(void *owner, struct rconn *c, const redisReply *r)
{
    struct topo *t = owner;
    const char *ch, *msg;
    size_t cl, ml;
    char host[256];
    int port;
    (void)c;
    if (sentinel_parse_push(r, &ch, &cl, &msg, &ml) != 1 || cl != 14 ||
        memcmp(ch, "+switch-master", 14) != 0)
        return;
    if (sentinel_parse_switch(msg, ml, t->sentinel_master, host, sizeof(host), &port) == 1)
        topo_set_master(t, host, port, "+switch-master");
}

/* ---- cluster ---- */

struct slots_fill {
    struct topo *t;
    struct node *from;
    struct slots_map *map;
};

static int slots_fill_range(void *arg, int start, int end, const char *host, size_t hostlen,
                            int port)
{
    struct slots_fill *f = arg;
    char h[256];
    if (hostlen == 0)
        snprintf(h, sizeof(h), "%s", f->from->host);
    else
        snprintf(h, sizeof(h), "%.*s", (int)hostlen, host);
    struct node *n = node_get(f->t, h, port);
    if (n == NULL)
        return 1;
    int idx = node_index(n);
    for (int s = start; s <= end; s++)
        f->map->node[s] = (uint16_t)idx;
    return 0;
}

/*
 * Master old served slots and serves none in the new map m: when a node
 * that served none before serves its first slot now, a replica took over
 * (a failover, by Redis or by hand): say so and count it. (A resharding
 * moves slots between masters that were masters before.)
 */
static void topo_replaced(struct topo *t, struct node *old, const struct slots_map *m)
{
    int oi = node_index(old);
    for (int s = 0; s < SLOTS_N; s++) {
        if (t->map->node[s] != oi)
            continue;
        uint16_t ni = m->node[s];
        if (ni == SLOTS_NONE || t->nodes[ni] == NULL)
            return;
        for (int k = 0; k < SLOTS_N; k++)
            if (t->map->node[k] == ni)
                return;           /* a master before: a resharding */
        char a[300], b[300];
        STAT_ADD(t->stats->redis_failovers, 1);
        struct logline l;
        log_begin(&l, LOG_WARN, "redis master changed");
        log_str(&l, "from", topo_node_name(old, a, sizeof(a)));
        log_str(&l, "to", topo_node_name(t->nodes[ni], b, sizeof(b)));
        log_str(&l, "via", "CLUSTER SLOTS");
        log_end(&l);
        return;
    }
}

static void on_slots(void *arg, struct rconn *c, const redisReply *r)
{
    struct node *from = arg;
    struct topo *t = from->t;
    char why[300];
    (void)c;
    t->refreshing = 0;
    if (r == NULL) {
        topo_refresh_soon(t, TOPO_REFRESH_SOON_MS);
        return;
    }
    struct slots_map *m = malloc(sizeof(*m));
    if (m == NULL) {
        topo_refresh_soon(t, 1000);
        return;
    }
    slots_clear(m);
    struct slots_fill f = { t, from, m };
    int rc = r->type == REDIS_REPLY_ERROR ? -1 : slots_parse(r, slots_fill_range, &f, why, sizeof(why));
    if (rc != 0) {
        struct logline l;
        char name[300];
        log_begin(&l, LOG_WARN, "redis cluster slot map not read");
        log_str(&l, "node", topo_node_name(from, name, sizeof(name)));
        log_str(&l, "detail", r->type == REDIS_REPLY_ERROR ? r->str
                              : rc > 0 ? "too many nodes" : why);
        log_end(&l);
        free(m);
        topo_refresh_soon(t, 1000);
        return;
    }
    /* who served slots before and serves none now: replaced, or moved out */
    int changed = !t->map_known, masters = 0, moved = 0;
    unsigned char had[TOPO_MAX_NODES] = { 0 }, has[TOPO_MAX_NODES] = { 0 };
    for (int s = 0; s < SLOTS_N; s++) {
        if (t->map_known && t->map->node[s] != m->node[s]) {
            changed = 1;
            moved++;
        }
        if (t->map_known && t->map->node[s] != SLOTS_NONE)
            had[t->map->node[s]] = 1;
        if (m->node[s] != SLOTS_NONE)
            has[m->node[s]] = 1;
    }
    for (int i = 0; i < TOPO_MAX_NODES; i++) {
        masters += has[i];
        struct node *n = t->nodes[i];
        if (n != NULL && has[i])
            n->seed = 0;
        if (n == NULL || has[i])
            continue;
        if (had[i])
            topo_replaced(t, n, m);
        node_leave(n);        /* not a master: a replaced one, or a seed */
    }
    free(t->map);
    t->map = m;
    t->map_known = 1;
    if (changed) {
        STAT_ADD(t->stats->redis_slot_map_changes, 1);
        struct logline l;
        log_begin(&l, LOG_INFO, moved ? "redis cluster slot map changed" : "redis cluster slot map learnt");
        log_int(&l, "masters", masters);
        log_int(&l, "slots_moved", moved);
        log_int(&l, "covered", slots_covered(m));
        log_end(&l);
    }
    /* a slot unserved, or served by a master that is down: a failover
     * may be under way, so look again soon */
    int lost = !slots_covered(m);
    for (int i = 0; i < TOPO_MAX_NODES && !lost; i++)
        lost = has[i] && t->nodes[i] != NULL && t->nodes[i]->down;
    if (lost)
        topo_refresh_soon(t, 500);
    t->h->changed(t->owner);
}

/* Any ready node, masters first. */
static struct node *topo_any_ready(struct topo *t)
{
    struct node *seed = NULL;
    for (int i = 0; i < TOPO_MAX_NODES; i++) {
        struct node *n = t->nodes[i];
        if (n == NULL || n->gone || !n->ready)
            continue;
        if (!n->seed)
            return n;
        if (seed == NULL)
            seed = n;
    }
    return seed;
}

static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
    struct topo *t = arg;
    (void)fd; (void)what;
    if (t->refreshing)
        return;
    struct node *n = topo_any_ready(t);
    if (n == NULL) {
        /* nothing reachable: the seeds again (node_get keeps ones there) */
        for (int i = 0; i < t->seeds.n; i++) {
            struct node *s = node_get(t, t->seeds.v[i].host, t->seeds.v[i].port);
            if (s != NULL && !node_serves(s))
                s->seed = 1;
        }
        return;                   /* a node that becomes ready asks */
    }
    static const char *const cmd[] = { "CLUSTER", "SLOTS" };
    if (rconn_sendv(n->c, on_slots, n, 2, cmd) == 0)
        t->refreshing = 1;
}

static void topo_refresh_soon(struct topo *t, int ms)
{
    if (t->mode != REDIS_CLUSTER || evtimer_pending(t->refresh, NULL))
        return;
    struct timeval tv = conf_ms_tv(ms);
    evtimer_add(t->refresh, &tv);
}

static void on_refresh_every(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    topo_refresh_soon(arg, 0);
}

/* ---- the API ---- */

struct node *topo_route(struct topo *t, unsigned slot, const char **why)
{
    if (t->mode != REDIS_CLUSTER) {
        if (t->master == NULL)
            *why = t->mode == REDIS_SENTINEL ? "no master known yet: asking the sentinels"
                                             : "no redis node";
        return t->master;
    }
    uint16_t idx = t->map_known ? t->map->node[slot & (SLOTS_N - 1)] : SLOTS_NONE;
    if (idx == SLOTS_NONE || t->nodes[idx] == NULL) {
        *why = t->map_known ? "redis cluster: no node serves the key's slot"
                            : "redis cluster: slot map not known yet";
        topo_refresh_soon(t, TOPO_REFRESH_SOON_MS);
        return NULL;
    }
    return t->nodes[idx];
}

struct node *topo_moved(struct topo *t, unsigned slot, const char *host, int port,
                        struct node *from)
{
    struct node *n = topo_node_at(t, host, port, from);
    if (n == NULL || t->mode != REDIS_CLUSTER)
        return n;
    if (t->map_known)
        t->map->node[slot & (SLOTS_N - 1)] = (uint16_t)node_index(n);
    topo_refresh_soon(t, TOPO_REFRESH_SOON_MS);
    return n;
}

struct node *topo_node_at(struct topo *t, const char *host, int port, struct node *from)
{
    if (t->mode != REDIS_CLUSTER)
        return NULL;             /* only a cluster redirects */
    return node_get(t, host[0] ? host : from->host, port);
}

void topo_stale(struct topo *t, struct node *n, const char *why)
{
    char name[300];
    if (strcmp(n->said, why) != 0) {          /* once, not once per request */
        struct logline l;
        log_begin(&l, LOG_WARN, "redis topology changed under us, looking again");
        log_str(&l, "node", topo_node_name(n, name, sizeof(name)));
        log_str(&l, "detail", why);
        log_end(&l);
        snprintf(n->said, sizeof(n->said), "%s", why);
    }
    if (t->mode == REDIS_SENTINEL) {
        rconn_drop(n->c, why);   /* a demoted master: never used again as is */
        sentinel_again(t, 1, 0);
    } else {
        topo_refresh_soon(t, 0);
    }
}

void topo_each_master(struct topo *t, void (*fn)(void *arg, struct node *n), void *arg)
{
    if (t->mode != REDIS_CLUSTER) {
        if (t->master != NULL)
            fn(arg, t->master);
        return;
    }
    for (int i = 0; i < TOPO_MAX_NODES; i++) {
        struct node *n = t->nodes[i];
        if (n != NULL && !n->gone && !n->seed)
            fn(arg, n);
    }
}

static void topo_count(void *arg, struct node *n)
{
    (void)n;
    ++*(int *)arg;
}

int topo_n_masters(struct topo *t)
{
    int k = 0;
    topo_each_master(t, topo_count, &k);
    return k;
}

int topo_ready(const struct topo *t)
{
    if (t->mode != REDIS_CLUSTER)
        return t->master != NULL && t->master->ready;
    if (!t->map_known)
        return 0;
    for (int s = 0; s < SLOTS_N; s++) {
        uint16_t idx = t->map->node[s];
        if (idx == SLOTS_NONE || t->nodes[idx] == NULL || !t->nodes[idx]->ready)
            return 0;
    }
    return 1;
}

/* The sentinels' failures, "; "-separated, after what is in buf. */
static void topo_sentinel_errors(const struct topo *t, char *buf, size_t n)
{
    size_t k = strlen(buf);
    for (int i = 0; i < t->sentinels.n && k < n; i++) {
        if (t->s_status[i][0] == '\0')
            continue;
        int w = snprintf(buf + k, n - k, "%s%s", k ? "; " : "", t->s_status[i]);
        k += w > 0 ? (size_t)w : 0;
    }
}

const char *topo_status(const struct topo *t)
{
    struct topo *w = (struct topo *)t;       /* the buffer is ours */
    char *s = w->status;
    size_t n = sizeof(w->status);
    s[0] = '\0';
    if (t->mode != REDIS_CLUSTER) {
        if (t->master != NULL) {
            snprintf(s, n, "%s", t->master->ready ? "connected" : rconn_status(t->master->c));
            return s;
        }
        if (t->mode == REDIS_SENTINEL) {
            snprintf(s, n, "no master known yet for \"%s\"", t->sentinel_master);
            if (t->sc != NULL && !rconn_is_ready(t->sc))
                snprintf(s + strlen(s), n - strlen(s), ": %s", rconn_status(t->sc));
            char errs[600] = "";
            topo_sentinel_errors(t, errs, sizeof(errs));
            if (errs[0] && strlen(s) < n)
                snprintf(s + strlen(s), n - strlen(s), "; %s", errs);
        }
        return s;
    }
    if (!t->map_known) {
        snprintf(s, n, "redis cluster: slot map not known yet");
        for (int i = 0; i < TOPO_MAX_NODES && strlen(s) < n; i++)
            if (t->nodes[i] != NULL && !t->nodes[i]->ready)
                snprintf(s + strlen(s), n - strlen(s), "; %s", rconn_status(t->nodes[i]->c));
        return s;
    }
    int unserved = 0;
    for (int sl = 0; sl < SLOTS_N; sl++) {
        uint16_t idx = t->map->node[sl];
        if (idx == SLOTS_NONE || t->nodes[idx] == NULL) {
            unserved++;
        } else if (!t->nodes[idx]->ready && s[0] == '\0') {
            snprintf(s, n, "%s", rconn_status(t->nodes[idx]->c));
        }
    }
    if (unserved)
        snprintf(s + strlen(s), n - strlen(s), "%sredis cluster: %d of %d slots served by no node",
                 s[0] ? "; " : "", unserved, SLOTS_N);
    if (s[0] == '\0')
        snprintf(s, n, "connected");
    return s;
}

void topo_problems(const struct topo *t, char *buf, size_t n)
{
    if (n == 0)
        return;
    buf[0] = '\0';
    if (t->mode == REDIS_SENTINEL)
        topo_sentinel_errors(t, buf, n);
}

static void topo_node_line(FILE *f, const char *name, const char *host, int port,
                           const char *role, int up)
{
    fprintf(f, strchr(host, ':') ? "%s{node=\"[%s]:%d\",role=\"%s\"} %d\n"
                                 : "%s{node=\"%s:%d\",role=\"%s\"} %d\n",
            name, host, port, role, up);
}

void topo_render_nodes(const struct topo *t, const char *name, FILE *f)
{
    for (int i = 0; i < TOPO_MAX_NODES; i++) {
        const struct node *n = t->nodes[i];
        if (n != NULL && !n->gone)
            topo_node_line(f, name, n->host, n->port, n->seed ? "seed" : "master", n->ready);
    }
    for (int i = 0; i < t->sentinels.n; i++) {
        int current = t->sc != NULL && i == t->s_idx;
        if (current || t->s_status[i][0] != '\0')
            topo_node_line(f, name, t->sentinels.v[i].host, t->sentinels.v[i].port, "sentinel",
                           current && rconn_is_ready(t->sc));
    }
}

void topo_apply(struct topo *t, const struct config *c)
{
    snprintf(t->user, sizeof(t->user), "%s", c->redis_username);
    snprintf(t->pass, sizeof(t->pass), "%s", c->redis_password);
    snprintf(t->spass, sizeof(t->spass), "%s", c->sentinel_password);
    t->timeout_ms = c->redis_timeout_ms;
    for (int i = 0; i < TOPO_MAX_NODES; i++)
        if (t->nodes[i] != NULL) {
            rconn_set_auth(t->nodes[i]->c, t->user, t->pass);
            rconn_set_timeout(t->nodes[i]->c, t->timeout_ms);
        }
    if (t->sc != NULL) {
        rconn_set_auth(t->sc, "", t->spass);
        rconn_set_timeout(t->sc, t->timeout_ms);
    }
}

struct topo *topo_open(struct event_base *base, const struct config *c, SSL_CTX *tls,
                       struct stats *stats, const struct topo_hooks *h, void *owner)
{
    struct topo *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->base = base;
    t->h = h;
    t->owner = owner;
    t->stats = stats;
    t->mode = c->redis_mode;
    t->tls = tls;
    snprintf(t->server_name, sizeof(t->server_name), "%s", c->tls_server_name);
    t->db = c->redis_db;
    t->sweep = event_new(base, -1, 0, on_sweep, t);
    t->s_again = evtimer_new(base, on_sentinel_again, t);
    t->s_ping = event_new(base, -1, EV_PERSIST, on_sentinel_ping, t);
    t->refresh = evtimer_new(base, on_refresh, t);
    t->refresh_every = event_new(base, -1, EV_PERSIST, on_refresh_every, t);
    if (t->sweep == NULL || t->s_again == NULL || t->s_ping == NULL || t->refresh == NULL ||
        t->refresh_every == NULL) {
        topo_close(t);
        return NULL;
    }
    topo_apply(t, c);
    switch (t->mode) {
    case REDIS_SINGLE:
        t->master = node_get(t, c->redis_host, c->redis_port);
        break;
    case REDIS_SENTINEL: {
        t->sentinels = c->sentinels;
        snprintf(t->sentinel_master, sizeof(t->sentinel_master), "%s", c->sentinel_master);
        sentinel_connect(t);
        struct timeval sec = { 1, 0 };
        event_add(t->s_ping, &sec);
        break;
    }
    case REDIS_CLUSTER: {
        t->seeds = c->cluster_nodes;
        t->map = malloc(sizeof(*t->map));
        if (t->map == NULL) {
            topo_close(t);
            return NULL;
        }
        slots_clear(t->map);
        for (int i = 0; i < t->seeds.n; i++) {
            struct node *n = node_get(t, t->seeds.v[i].host, t->seeds.v[i].port);
            if (n != NULL)
                n->seed = 1;
        }
        struct timeval every = conf_ms_tv(TOPO_REFRESH_EVERY_MS);
        event_add(t->refresh_every, &every);
        break;
    }
    }
    return t;
}

void topo_close(struct topo *t)
{
    if (t == NULL)
        return;
    if (t->sc != NULL)
        rconn_free(t->sc);
    t->sc = NULL;
    for (int i = 0; i < TOPO_MAX_NODES; i++)
        if (t->nodes[i] != NULL) {
            struct node *n = t->nodes[i];
            t->nodes[i] = NULL;
            node_free(n);
        }
    struct event *evs[] = { t->sweep, t->s_again, t->s_ping, t->refresh, t->refresh_every };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    free(t->map);
    free(t);
}
