/*
 * storenode.c: the store's side of each Redis node topo.c keeps: setting it
 * up when connected (the record scripts loaded, INFO read to tell a Redis
 * restart without AOF), the operations waiting for it to be ready,
 * readiness published for /readyz, and the store's open and close.
 * Owns: struct snode (n->user) and the store's lifetime.
 * Does not own: the connections and the topology (topo.c, rconn.c), nor
 * what an operation sends and how its reply is read (store.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include <openssl/evp.h>

#include "log.h"
#include "rconn.h"
#include "store_int.h"

/* ---- readiness ---- */

int store_ready(const struct store *st)
{
    return topo_ready(st->topo);
}

const char *store_status(const struct store *st)
{
    return topo_status(st->topo);
}

void store_problems(const struct store *st, char *buf, size_t n)
{
    topo_problems(st->topo, buf, n);
}

void store_render_nodes(const struct store *st, const char *name, FILE *f)
{
    topo_render_nodes(st->topo, name, f);
}

/* For another thread's /readyz; called wherever readiness may change. */
static void store_publish(struct store *st)
{
    if (st->ready_out != NULL)
        __atomic_store_n(st->ready_out, store_ready(st), __ATOMIC_RELAXED);
}

void store_publish_ready(struct store *st, int *flag)
{
    st->ready_out = flag;
    store_publish(st);
}

void store_watch_restarts(struct store *st)
{
    st->watch_restarts = 1;
}

void store_apply(struct store *st, const struct config *c)
{
    st->timeout_ms = c->redis_timeout_ms;
    st->replicas_ack = c->replicas_ack;
    st->replicas_ack_timeout_ms = c->replicas_ack_timeout_ms;
    st->layout = c->record_layout;
    topo_apply(st->topo, c);
}

/* ---- setting a node up ---- */

/* Value of "name:" in INFO text, into out; 0 if found. */
static int info_field(const char *info, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    const char *p = info;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            size_t len = strcspn(p + n + 1, "\r\n");
            if (len >= outlen)
                return -1;
            memcpy(out, p + n + 1, len);
            out[len] = '\0';
            return 0;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/*
 * A changed run_id at the same address means Redis restarted while we were
 * away. With AOF the claims and records come back; without persistence
 * every claim taken before is gone, so a retry of a request that was in
 * flight executes again. Say so loudly, once per restart.
 */
static void check_restart(struct store *st, struct node *n, const char *info)
{
    struct snode *sn = n->user;
    char run_id[41], aof[8] = "?", loading[8] = "0", name[300];
    /* while Redis is still loading its AOF, INFO says aof_enabled:0; the
     * next connection (this one's setup fails with LOADING) asks again */
    info_field(info, "loading", loading, sizeof(loading));
    if (strcmp(loading, "0") != 0)
        return;
    if (info_field(info, "run_id", run_id, sizeof(run_id)) != 0)
        return;
    info_field(info, "aof_enabled", aof, sizeof(aof));
    topo_node_name(n, name, sizeof(name));
    if (sn->run_id[0] != '\0' && strcmp(sn->run_id, run_id) != 0) {
        STAT_ADD(st->stats->redis_restarts, 1);
        struct logline l;
        log_begin(&l, strcmp(aof, "1") == 0 ? LOG_WARN : LOG_ERROR,
                  strcmp(aof, "1") == 0
                  ? "redis restarted (run_id changed); AOF is on, records reloaded"
                  : "redis restarted (run_id changed) without AOF: claims and records from before are lost");
        log_str(&l, "node", name);
        log_str(&l, "aof_enabled", aof);
        log_end(&l);
    } else if (sn->run_id[0] == '\0' && strcmp(aof, "1") != 0) {
        log_say(LOG_WARN, "redis has AOF off: a Redis restart loses claims and records", name);
    }
    memcpy(sn->run_id, run_id, sizeof(run_id));
}

static void on_setup_reply(void *arg, struct rconn *c, const redisReply *r)
{
    struct node *n = arg;
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        log_say(strncmp(r->str, "LOADING", 7) == 0 ? LOG_WARN : LOG_ERROR,
                "redis setup failed", r->str);
        rconn_refused(c, r, "refused setup");
        return;
    }
    topo_setup_done(n, NULL);
}

static void on_script_loaded(void *arg, struct rconn *c, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_STRING && r->len != 40) {
        topo_setup_done(arg, "answered SCRIPT LOAD with something else than a sha");
        return;
    }
    on_setup_reply(arg, c, r);
}

static void on_setup_info(void *arg, struct rconn *c, const redisReply *r)
{
    struct node *n = arg;
    struct snode *sn = n->user;
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        check_restart(sn->st, n, r->str);
    on_setup_reply(arg, c, r);
}

static void store_node_up(void *owner, struct node *n)
{
    struct store *st = owner;
    for (int i = 0; i < RECORD_OPS; i++) {
        const char *argv[] = { "SCRIPT", "LOAD", record_script(i) };
        if (rconn_sendv(n->c, on_script_loaded, n, 3, argv) == 0)
            topo_setup_expect(n, 1);
    }
    if (st->watch_restarts) {
        static const char *const info[] = { "INFO" };
        if (rconn_sendv(n->c, on_setup_info, n, 1, info) == 0)
            topo_setup_expect(n, 1);
    }
}

static void store_node_ready(void *owner, struct node *n)
{
    struct store *st = owner;
    struct snode *sn = n->user;
    struct opq q;
    struct store_op *op;
    TAILQ_INIT(&q);
    TAILQ_CONCAT(&q, &sn->waitq, link);
    while ((op = TAILQ_FIRST(&q)) != NULL) {
        TAILQ_REMOVE(&q, op, link);
        op->waiting = NULL;
        store_op_dispatch(op);
    }
    store_publish(st);
}

static void store_node_down(void *owner, struct node *n)
{
    struct store *st = owner;
    struct snode *sn = n->user;
    struct store_op *op;
    while ((op = TAILQ_FIRST(&sn->waitq)) != NULL)
        store_op_fail(op, topo_node_status(n));
    store_publish(st);
}

static int store_node_new(void *owner, struct node *n)
{
    struct snode *sn = calloc(1, sizeof(*sn));
    if (sn == NULL)
        return -1;
    sn->st = owner;
    TAILQ_INIT(&sn->waitq);
    n->user = sn;
    return 0;
}

static void store_node_free(void *owner, struct node *n)
{
    struct snode *sn = n->user;
    struct store_op *op;
    (void)owner;
    while ((op = TAILQ_FIRST(&sn->waitq)) != NULL)
        store_op_fail(op, "redis node left the topology");
    free(sn->batch);             /* empty: its ops were answered with the connection */
    free(sn);
    n->user = NULL;
}

static void store_changed(void *owner)
{
    store_publish(owner);
}

static const struct topo_hooks store_hooks = {
    .node_new = store_node_new, .node_free = store_node_free, .node_up = store_node_up,
    .node_ready = store_node_ready, .node_down = store_node_down,
    .node_flush = store_node_flush, .changed = store_changed,
};

/* The SHA1 of s in hex, as Redis names a loaded script; -1 on failure. */
static int sha1_hex(const char *s, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";
    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return -1;
    for (unsigned i = 0; i < 20; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
    return 0;
}

struct store *store_open(struct event_base *base, const struct config *c,
                         struct stats *stats, SSL_CTX *tls)
{
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->base = base;
    st->stats = stats;
    st->cluster = c->redis_mode == REDIS_CLUSTER;
    TAILQ_INIT(&st->live);
    for (int i = 0; i < RECORD_OPS; i++)
        if (sha1_hex(record_script(i), st->sha[i]) != 0) {
            free(st);             /* no memory at start: the caller says so */
            return NULL;
        }
    st->timeout_ms = c->redis_timeout_ms;
    st->replicas_ack = c->replicas_ack;
    st->replicas_ack_timeout_ms = c->replicas_ack_timeout_ms;
    st->layout = c->record_layout;
    st->topo = topo_open(base, c, tls, stats, &store_hooks, st);
    if (st->topo == NULL) {
        free(st);
        return NULL;
    }
    return st;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    st->closing = 1;
    topo_close(st->topo);         /* every command on a connection: NULL */
    struct store_op *op;
    while ((op = TAILQ_FIRST(&st->live)) != NULL) {
        op->answered = 1;
        op->refs = 0;
        store_op_free(op);
    }
    free(st->head);
    free(st);
}
