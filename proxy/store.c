/*
 * store.c: a record's operations, sent to the node that serves the key.
 *
 *   store_claim() ─ op ─ topo_route(slot) ─ node ready? ── EVALSHA ──> Redis
 *                         │                   └ connecting: wait (bounded)
 *                         └ none / down: SR_ERROR on the next loop turn
 *   reply: MOVED → map updated, sent again │ ASK → ASKING + sent there once
 *          NOSCRIPT → EVAL │ READONLY, CLUSTERDOWN → topology looked at again
 *          answer → lib/record decodes it → the caller's callback
 *
 * replicas_ack = N: a claim, a stored answer or an "unstored" mark joins its
 * node's batch of this loop turn; when the node's commands are written, one
 * WAIT N replicas_ack_timeout follows them (rconn's flush hook). WAIT
 * covers every write before it on the connection, so one per turn is
 * enough, and a slow replica holds one turn's writes, not each in turn.
 * The write's own reply is held until the WAIT's: a claim short of N is
 * released and answered SR_ERROR; a stored answer short of N is answered
 * SR_OK, counted and logged. A reply that wrote nothing (a replay, a
 * conflict) is answered at once.
 *
 * Each op has a timer from the call: whatever happens to its node, the
 * caller is answered by [redis] timeout. An op is freed once answered and
 * no connection holds a callback on it (refs); store_close frees the rest.
 *
 * Out of memory fails the one op, never the process: its caller is
 * answered SR_ERROR (SR_OOM for a complete, so the request marks its
 * record "executed, not stored") on the next turn, or at once when not
 * even the op could be allocated (store.h).
 *
 * storenode.c holds the store's side of a node (its setup, the ops waiting
 * for it to be ready, readiness) and store_open/store_close; store_int.h
 * is what the two share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>

#include "clock.h"
#include "fmt.h"
#include "log.h"
#include "rconn.h"
#include "slots.h"
#include "store_int.h"

/* ---- an op's life ---- */

void store_op_free(struct store_op *op)
{
    TAILQ_REMOVE(&op->st->live, op, all);
    evtimer_del(&op->timer);
    resp_free(&op->args);
    if (op->info != NULL)
        evbuffer_free(op->info);
    free(op);
}

static void op_maybe_free(struct store_op *op)
{
    if (op->answered && op->refs == 0)
        store_op_free(op);
}

/* Out of a node's queue and a batch. */
static void op_unlink(struct store_op *op)
{
    if (op->waiting != NULL) {
        struct snode *sn = op->waiting->user;
        TAILQ_REMOVE(&sn->waitq, op, link);
        op->waiting = NULL;
    }
    if (op->batch != NULL) {
        TAILQ_REMOVE(&op->batch->ops, op, link);
        op->batch = NULL;
    }
}

/* Answer the caller once; the op is freed when nothing points at it. */
static void op_answer(struct store_op *op, const struct store_result *res)
{
    struct store *st = op->st;
    if (op->answered)
        return;
    op->answered = 1;
    op_unlink(op);
    evtimer_del(&op->timer);
    if (!st->closing) {
        if (res->kind == SR_ERROR)
            STAT_ADD(st->stats->redis_errors, 1);
        else
            stats_observe(&st->stats->redis, (now_ms() - op->t0) / 1e3);
        op->cb(op->arg, res);
    }
    op_maybe_free(op);
}

void store_op_fail(struct store_op *op, const char *why)
{
    struct store_result res = { .kind = SR_ERROR, .err = why };
    op_answer(op, &res);
}

/* Answered SR_ERROR on the next loop turn: never before the call returns. */
static void op_fail_later(struct store_op *op, const char *why)
{
    op_unlink(op);
    snprintf(op->why, sizeof(op->why), "%s", why ? why : "redis unavailable");
    struct timeval zero = { 0, 0 };
    evtimer_add(&op->timer, &zero);
}

static void op_release_quietly(struct store_op *op);

/* The answer to an op that memory ran out for: a complete gets SR_OOM,
 * as when Redis refuses the write. */
static struct store_result nomem_result(int which)
{
    log_say(LOG_ERROR, "out of memory for a redis command; that request fails", NULL);
    struct store_result res = { .kind = which == RECORD_COMPLETE ? SR_OOM : SR_ERROR,
                                .err = "out of memory" };
    return res;
}

/* Out of memory for op: answered (nomem_result) on the next loop turn. */
static void op_nomem(struct store_op *op)
{
    op->nomem = 1;
    op_fail_later(op, "out of memory");
}

static void op_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct store_op *op = arg;
    (void)fd; (void)what;
    if (op->nomem) {
        struct store_result res = nomem_result(op->op);
        op_answer(op, &res);
        return;
    }
    if (op->why[0] != '\0') {
        store_op_fail(op, op->why);
        return;
    }
    /* claimed, and the WAIT not back yet: nothing runs, so let it go */
    if (op->held == RK_CLAIMED && op->op == RECORD_CLAIM)
        op_release_quietly(op);
    struct logline l;
    log_begin(&l, LOG_WARN, "redis timeout");
    log_str(&l, "op", op->op == OP_INFO ? "info" : record_op_name(op->op));
    log_int(&l, "timeout_ms", op->st->timeout_ms);
    log_end(&l);
    store_op_fail(op, "redis did not answer within [redis] timeout");
}

/* A new op, its timer running; NULL when there is no memory for it: the
 * caller was answered then, at once (the one exception store.h allows). */
static struct store_op *op_new(struct store *st, int which, store_cb cb, void *arg)
{
    struct store_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        struct store_result res = nomem_result(which);
        cb(arg, &res);
        return NULL;
    }
    op->st = st;
    op->cb = cb;
    op->arg = arg;
    op->op = which;
    op->held = RK_BAD;
    op->t0 = now_ms();
    evtimer_assign(&op->timer, st->base, op_timeout, op);
    struct timeval tv = conf_ms_tv(st->timeout_ms);
    evtimer_add(&op->timer, &tv);
    TAILQ_INSERT_TAIL(&st->live, op, all);
    return op;
}

/* ---- sending ---- */

static void on_op_reply(void *arg, struct rconn *c, const redisReply *r);
static void op_send_head(struct store_op *op, struct node *n, const char *head, size_t hl);

static void on_asking(void *arg, struct rconn *c, const redisReply *r)
{
    (void)arg; (void)c; (void)r;  /* +OK; the command after it says the rest */
}

/* The batch of acknowledged writes on n not covered by a WAIT yet; NULL
 * out of memory. */
static struct wait_batch *batch_of(struct node *n)
{
    struct snode *sn = n->user;
    if (sn->batch == NULL) {
        sn->batch = calloc(1, sizeof(*sn->batch));
        if (sn->batch == NULL)
            return NULL;
        TAILQ_INIT(&sn->batch->ops);
        sn->batch->node = n;
    }
    return sn->batch;
}

/* EVALSHA (or EVAL) of op's script, on n, which is ready. */
static void op_send(struct store_op *op, struct node *n)
{
    struct store *st = op->st;
    if (op->native) {             /* the arguments are the whole command */
        char h[24];
        size_t hl = 1;
        h[0] = '*';
        hl += fmt_dec(h + hl, (unsigned)op->args.argc);
        memcpy(h + hl, "\r\n", 2);
        op_send_head(op, n, h, hl + 2);
        return;
    }
    const char *code = op->eval ? record_script(op->op) : st->sha[op->op];
    size_t code_len = strlen(code), need = code_len + 128;
    char small[192];
    char *head = small;
    if (need > sizeof(small)) {
        if (need > st->head_cap) {
            char *h = realloc(st->head, need);
            if (h == NULL) {
                op_nomem(op);
                return;
            }
            st->head = h;
            st->head_cap = need;
        }
        head = st->head;
    }
    size_t hl = resp_head(head, need, op->args.argc, op->eval ? "EVAL" : "EVALSHA", code,
                          code_len);
    if (hl == 0) {
        op_fail_later(op, "internal error: a command head");
        return;
    }
    op_send_head(op, n, head, hl);
}

/* Send op to n: head (the command's start), then its arguments. */
static void op_send_head(struct store_op *op, struct node *n, const char *head, size_t hl)
{
    struct store *st = op->st;
    /* the batch first: a write sent must be covered by a WAIT */
    struct wait_batch *b = NULL;
    if (st->replicas_ack > 0 && record_op_acked(op->op) && (b = batch_of(n)) == NULL) {
        op_nomem(op);
        return;
    }
    if (op->ask != NULL) {
        static const char *const asking[] = { "ASKING" };
        rconn_sendv(n->c, on_asking, NULL, 1, asking);
        op->ask = NULL;
    }
    if (rconn_send(n->c, head, hl, op->args.p, op->args.len, on_op_reply, op) != 0) {
        op_fail_later(op, topo_node_status(n));
        return;
    }
    op->refs++;
    op->sent_to = n;
    if (b != NULL) {
        TAILQ_INSERT_TAIL(&b->ops, op, link);
        op->batch = b;
    }
}

/* Where op goes now: sent, queued until its node is ready, or failed. */
void store_op_dispatch(struct store_op *op)
{
    struct store *st = op->st;
    const char *why = "redis unavailable";
    struct node *n = op->ask != NULL ? op->ask : topo_route(st->topo, op->slot, &why);
    if (n == NULL) {
        op_fail_later(op, why);
        return;
    }
    if (n->ready) {
        op_send(op, n);
        return;
    }
    if (n->down) {                /* the last attempt failed: row 10 now */
        op_fail_later(op, topo_node_status(n));
        return;
    }
    struct snode *sn = n->user;   /* connecting: wait, within the op's timer */
    TAILQ_INSERT_TAIL(&sn->waitq, op, link);
    op->waiting = n;
}

/* ---- replies ---- */

static enum store_kind store_kind_of(enum record_kind k)
{
    switch (k) {
    case RK_CLAIMED: return SR_CLAIMED;
    case RK_DONE: return SR_DONE;
    case RK_INFLIGHT: return SR_INFLIGHT;
    case RK_MISMATCH: return SR_MISMATCH;
    case RK_UNSTORED: return SR_UNSTORED;
    case RK_UNREADABLE: return SR_UNREADABLE;
    case RK_OK: return SR_OK;
    case RK_LOST: return SR_LOST;
    case RK_RECORD: return SR_RECORD;
    case RK_NONE: return SR_NONE;
    case RK_BAD: break;
    }
    return SR_ERROR;
}

static void op_answer_record(struct store_op *op, const struct record_reply *rr)
{
    if (rr->kind == RK_CLAIMED) {
        struct store_result res = { .kind = SR_CLAIMED, .claim = &op->claim };
        op_answer(op, &res);
        return;
    }
    struct store_result res = {
        .kind = store_kind_of(rr->kind), .status = rr->status,
        .headers = rr->headers, .headers_len = rr->headers_len,
        .body = rr->body, .body_len = rr->body_len, .pttl_ms = rr->pttl_ms,
        .err = rr->err, .version = rr->version, .state = rr->state, .fp = rr->fp,
        .created_ms = rr->created_ms,
    };
    op_answer(op, &res);
}

/* The short hash of a record key "<prefix>{<hash>}", for logs. */
static void rkey_hash(const char *rkey, char out[13])
{
    const char *b = strchr(rkey, '{');
    snprintf(out, 13, "%.12s", b != NULL ? b + 1 : "");
    char *e = strchr(out, '}');
    if (e != NULL)
        *e = '\0';
}

static void on_quiet(void *arg, const struct store_result *res)
{
    (void)arg; (void)res;         /* a failed release leaves the claim to its lease */
}

/* Release the claim op took (not acknowledged, or given up on). */
static void op_release_quietly(struct store_op *op)
{
    struct store_op *rel = op_new(op->st, RECORD_RELEASE, on_quiet, NULL);
    if (rel == NULL)
        return;                   /* the claim expires with its lease */
    rel->slot = op->slot;
    if (record_args_release(&rel->args, op->rkey, &op->claim) != 0) {
        op_nomem(rel);
        return;
    }
    store_op_dispatch(rel);
}

/* An error reply to op from n. */
static void op_error(struct store_op *op, struct node *n, const redisReply *r)
{
    struct store *st = op->st;
    struct resp_redirect to;
    enum resp_err k = resp_error_kind(r->str, r->len, &to);
    op_unlink(op);                /* nothing was written: no WAIT for it */
    switch (k) {
    case RESP_ERR_MOVED:
    case RESP_ERR_ASK: {
        if (k == RESP_ERR_MOVED)
            STAT_ADD(st->stats->redis_moved, 1);
        else
            STAT_ADD(st->stats->redis_ask, 1);
        struct node *m = ++op->redirects > OP_MAX_REDIRECTS ? NULL
                         : k == RESP_ERR_MOVED ? topo_moved(st->topo, to.slot, to.host, to.port, n)
                         : topo_node_at(st->topo, to.host, to.port, n);
        if (m == NULL) {
            store_op_fail(op, "redis cluster: too many redirections");
            return;
        }
        op->ask = k == RESP_ERR_ASK ? m : NULL;
        store_op_dispatch(op);
        return;
    }
    case RESP_ERR_NOSCRIPT:
        if (!op->eval) {
            op->eval = 1;
            store_op_dispatch(op);
            return;
        }
        break;
    case RESP_ERR_WRONGTYPE:
        if (op->native) {
            /* a record of layout 1: its claim script reads it */
            op->native = 0;
            op->claim.layout = RECORD_LAYOUT_HASH;
            resp_reset(&op->args);
            if (record_args_claim(&op->args, op->rkey, op->claim.token, op->claim.fp,
                                  op->lease_ms, op->claim.created_ms) != 0) {
                op_nomem(op);
                return;
            }
            store_op_dispatch(op);
            return;
        }
        break;
    case RESP_ERR_READONLY:
    case RESP_ERR_CLUSTERDOWN:
    case RESP_ERR_MASTERDOWN:
        topo_stale(st->topo, n, r->str);
        store_op_fail(op, k == RESP_ERR_READONLY ? "redis master was demoted (READONLY)" : r->str);
        return;
    case RESP_ERR_OOM:
        if (op->op == RECORD_COMPLETE) {
            struct store_result res = { .kind = SR_OOM, .err = "redis is out of memory" };
            op_answer(op, &res);
            return;
        }
        break;
    case RESP_ERR_TRYAGAIN:
    case RESP_ERR_LOADING:
    case RESP_ERR_BUSY:
        store_op_fail(op, r->str);
        return;
    default:
        break;
    }
    struct logline l;
    char name[300];
    log_begin(&l, LOG_WARN, "redis error");
    log_str(&l, "node", topo_node_name(n, name, sizeof(name)));
    log_str(&l, "op", record_op_name(op->op));
    log_strn(&l, "detail", r->str, r->len);
    log_end(&l);
    store_op_fail(op, "redis answered an error");
}

static void on_op_reply(void *arg, struct rconn *c, const redisReply *r)
{
    struct store_op *op = arg;
    (void)c;
    op->refs--;
    if (op->answered) {
        op_maybe_free(op);
        return;
    }
    struct node *n = op->sent_to;
    op->sent_to = NULL;
    if (r == NULL) {
        store_op_fail(op, "redis connection lost");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        op_error(op, n, r);
        return;
    }
    struct record_reply rr;
    if (op->native)
        record_decode_string_claim(r, op->claim.fp, &rr);
    else
        record_decode(op->op, r, op->claim.fp, &rr);
    if (rr.kind == RK_INFLIGHT && rr.pttl_ms < 0) {
        /* layout 2 says when it was claimed, not what is left of its
         * lease: this route's lease, less the time since (clocks of two
         * pods may differ a little: it is a hint, for Retry-After) */
        int64_t left = op->lease_ms - (op->claim.created_ms - rr.created_ms);
        rr.pttl_ms = left < 0 ? 0 : left > op->lease_ms ? op->lease_ms : left;
    }
    if (op->batch != NULL) {
        int wrote = (op->op == RECORD_CLAIM && rr.kind == RK_CLAIMED) ||
                    (op->op != RECORD_CLAIM && rr.kind == RK_OK);
        if (wrote) {
            op->held = rr.kind;   /* (no pointers into r are kept) */
            return;
        }
        op_unlink(op);
    }
    op_answer_record(op, &rr);
}

/*
 * One WAIT for the writes not covered yet, unless one is out: WAIT blocks
 * the connection, so a second one behind it would wait its own timeout
 * after the first's. The writes sent meanwhile get the next WAIT, sent when
 * the first is answered: a missing replica costs each write at most two
 * replicas_ack_timeout, however many there are.
 */
static void on_wait(void *arg, struct rconn *c, const redisReply *r);

static void batch_send(struct store *st, struct node *n)
{
    struct snode *sn = n->user;
    struct wait_batch *b = sn->batch;
    if (b == NULL || sn->waiting)
        return;
    sn->batch = NULL;
    if (TAILQ_EMPTY(&b->ops)) {
        free(b);
        return;
    }
    char need[16], ms[24];
    snprintf(need, sizeof(need), "%d", st->replicas_ack);
    snprintf(ms, sizeof(ms), "%lld", (long long)st->replicas_ack_timeout_ms);
    const char *argv[] = { "WAIT", need, ms };
    b->need = st->replicas_ack;
    if (rconn_sendv(n->c, on_wait, b, 3, argv) != 0) {
        /* (not on a connection that is up; a lost one answered its
         * commands NULL, and so took them out of the batch) */
        struct store_op *op;
        while ((op = TAILQ_FIRST(&b->ops)) != NULL)
            store_op_fail(op, "redis connection lost");
        free(b);
        return;
    }
    sn->waiting = 1;
}

/* n's commands of this turn are about to be written: a WAIT after them. */
void store_node_flush(void *owner, struct node *n)
{
    batch_send(owner, n);
}

static void on_wait(void *arg, struct rconn *c, const redisReply *r)
{
    struct wait_batch *b = arg;
    struct node *n = b->node;
    struct snode *sn = n->user;
    long long acks = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    struct store_op *op;
    (void)c;
    sn->waiting = 0;
    while ((op = TAILQ_FIRST(&b->ops)) != NULL) {
        struct store *st = op->st;
        enum record_kind held = op->held;
        op_unlink(op);
        op->held = RK_BAD;
        if (acks >= b->need) {
            struct record_reply rr = { .kind = held };
            op_answer_record(op, &rr);
            continue;
        }
        char h[13], why[200];
        rkey_hash(op->rkey, h);
        snprintf(why, sizeof(why), "not acknowledged by %d replica%s within %lldms (%s)",
                 b->need, b->need == 1 ? "" : "s", (long long)st->replicas_ack_timeout_ms,
                 r == NULL ? "connection lost" : acks >= 0 ? "WAIT fell short" : "WAIT failed");
        struct logline l;
        if (op->op == RECORD_CLAIM) {
            STAT_ADD(st->stats->redis_unacked_claims, 1);
            log_begin(&l, LOG_WARN, "claim not acknowledged by replicas: released, answered 503");
            log_strn(&l, "key_hash", h, strlen(h));
            log_int(&l, "acks", acks);
            log_int(&l, "replicas_ack", b->need);
            log_end(&l);
            op_release_quietly(op);
            store_op_fail(op, why);
        } else {
            STAT_ADD(st->stats->redis_unacked_answers, 1);
            log_begin(&l, LOG_WARN, "stored answer not acknowledged by replicas: a failover "
                      "now could lose it");
            log_str(&l, "op", record_op_name(op->op));
            log_int(&l, "acks", acks);
            log_int(&l, "replicas_ack", b->need);
            log_end(&l);
            struct record_reply rr = { .kind = held };
            op_answer_record(op, &rr);
        }
    }
    free(b);
    if (r != NULL)
        batch_send(sn->st, n);    /* the writes sent while it was out */
}

/* ---- the operations ---- */

/* A keyed op: its slot (cluster only), then on its way. op NULL: op_new
 * answered it already; built not 0: no memory for its arguments. */
static void op_start(struct store_op *op, const char *rkey, int built)
{
    if (op == NULL)
        return;
    if (built != 0) {
        op_nomem(op);
        return;
    }
    if (op->st->cluster)
        op->slot = slots_key_slot(rkey, strlen(rkey));
    store_op_dispatch(op);
}

/* src into dst (size n), cut to fit and terminated (snprintf's "%s",
 * without its cost on every claim) */
static void copy_str(char *dst, size_t n, const char *src)
{
    size_t l = strnlen(src, n - 1);
    memcpy(dst, src, l);
    dst[l] = '\0';
}

void store_claim(struct store *st, const char *rkey, const char *token,
                 const char *fp, int64_t lease_ms, store_cb cb, void *arg)
{
    struct store_op *op = op_new(st, RECORD_CLAIM, cb, arg);
    struct timespec ts;
    if (op == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    copy_str(op->rkey, sizeof(op->rkey), rkey);
    copy_str(op->claim.token, sizeof(op->claim.token), token);
    copy_str(op->claim.fp, sizeof(op->claim.fp), fp);
    op->claim.created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    op->claim.layout = st->layout;
    op->lease_ms = lease_ms;
    if (st->layout == RECORD_LAYOUT_STRING) {
        op->native = 1;
        op_start(op, rkey, record_cmd_claim_string(&op->args, rkey, &op->claim, lease_ms));
        return;
    }
    op_start(op, rkey, record_args_claim(&op->args, rkey, token, fp, lease_ms,
                                         op->claim.created_ms));
}

void store_complete(struct store *st, const char *rkey, const struct record_claim *cl,
                    int status, const char *headers, size_t hlen,
                    struct evbuffer *body, int64_t ttl_ms,
                    store_cb cb, void *arg)
{
    struct store_op *op = op_new(st, RECORD_COMPLETE, cb, arg);
    size_t blen = evbuffer_get_length(body), at = 0;
    if (op == NULL)
        return;
    int rc = record_args_complete(&op->args, rkey, cl, status, headers, hlen, blen,
                                  ttl_ms, &at);
    if (rc == 0 && blen > 0)
        evbuffer_copyout(body, op->args.p + at, blen);
    op_start(op, rkey, rc);
}

void store_mark_unstored(struct store *st, const char *rkey, const struct record_claim *cl,
                         int64_t ttl_ms, store_cb cb, void *arg)
{
    struct store_op *op = op_new(st, RECORD_UNSTORED, cb, arg);
    op_start(op, rkey, op != NULL ? record_args_unstored(&op->args, rkey, cl, ttl_ms) : 0);
}

void store_release(struct store *st, const char *rkey, const struct record_claim *cl,
                   store_cb cb, void *arg)
{
    struct store_op *op = op_new(st, RECORD_RELEASE, cb, arg);
    op_start(op, rkey, op != NULL ? record_args_release(&op->args, rkey, cl) : 0);
}

void store_inspect(struct store *st, const char *rkey, store_cb cb, void *arg)
{
    struct store_op *op = op_new(st, RECORD_INSPECT, cb, arg);
    op_start(op, rkey, op != NULL ? record_args_key(&op->args, rkey) : 0);
}

void store_forget(struct store *st, const char *rkey, store_cb cb, void *arg)
{
    struct store_op *op = op_new(st, RECORD_FORGET, cb, arg);
    op_start(op, rkey, op != NULL ? record_args_key(&op->args, rkey) : 0);
}

/* ---- INFO of every master ---- */

static void on_info_reply(void *arg, struct rconn *c, const redisReply *r)
{
    struct store_op *op = arg;
    op->refs--;
    if (op->answered) {
        op_maybe_free(op);
        return;
    }
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        store_op_fail(op, r == NULL ? "redis connection lost" : "redis did not answer INFO");
        return;
    }
    evbuffer_add_printf(op->info, "# node %s:%d\r\n", rconn_host(c), rconn_port(c));
    evbuffer_add(op->info, r->str, r->len);
    if (--op->info_left > 0)
        return;
    struct store_result res = { .kind = SR_INFO };
    res.body_len = evbuffer_get_length(op->info);
    res.body = (const char *)evbuffer_pullup(op->info, -1);
    op_answer(op, &res);
}

static void info_send(void *arg, struct node *n)
{
    struct store_op *op = arg;
    static const char *const cmd[] = { "INFO", "memory" };
    if (op->why[0] != '\0')
        return;
    if (!n->ready || rconn_sendv(n->c, on_info_reply, op, 2, cmd) != 0) {
        op_fail_later(op, topo_node_status(n));
        return;
    }
    op->refs++;
    op->info_left++;
}

void store_info(struct store *st, store_cb cb, void *arg)
{
    struct store_op *op = op_new(st, OP_INFO, cb, arg);
    if (op == NULL)
        return;
    op->info = evbuffer_new();
    if (op->info == NULL) {
        op_nomem(op);
        return;
    }
    topo_each_master(st->topo, info_send, op);
    if (op->info_left == 0 && op->why[0] == '\0')
        op_fail_later(op, topo_status(st->topo));
}
