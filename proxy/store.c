/*
 * store.c: Redis through hiredis's async API and its libevent adapter.
 *
 * A record's life is four Lua scripts, each one round trip, loaded once
 * with SCRIPT LOAD on connect and called with EVALSHA (EVAL again on
 * NOSCRIPT). Complete, mark-unstored and release are compare-and-set on the
 * owner token, so a late finisher never overwrites a newer claim.
 *
 * hiredis 0.14 has no command timeout: every op carries a timer. When it
 * fires the caller is answered SR_ERROR and the op is detached (op->cb =
 * NULL); the op itself is freed by hiredis's callback, which always runs
 * (with NULL on disconnect). A timeout also drops the connection, since a
 * Redis that does not answer one command will not answer the next.
 *
 * Out of memory fails the one op, never the process: its caller is
 * answered SR_ERROR (SR_OOM for a complete, so the request marks its
 * record "executed, not stored") on the next turn, or at once when not
 * even the op could be allocated (store.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include <async.h>
#include <adapters/libevent.h>
#include <event2/buffer.h>

#include "clock.h"
#include "fmt.h"
#include "log.h"
#include "record.h"
#include "store.h"

enum { SCRIPT_CLAIM, SCRIPT_COMPLETE, SCRIPT_UNSTORED, SCRIPT_RELEASE,
       SCRIPT_INSPECT, SCRIPT_FORGET, SCRIPT__N };

static const char *const script_src[SCRIPT__N] = {
    /* KEYS[1] record; ARGV token, fp, lease_ms, created_ms. One HMGET: a
     * replay is the hot path. A key of another type, or a record of
     * another layout version, is answered "unreadable" and left alone:
     * it is somebody's record, so it is neither claimed over nor (with
     * on_store_error = pass) forwarded around. */
    "local st = redis.pcall('HMGET', KEYS[1], 'state', 'fp', 'status', 'headers', 'body', 'v')\n"
    "if st.err then return {'unreadable', 'the key is not a hash'} end\n"
    "if st[6] and st[6] ~= '" RECORD_VERSION "' then return {'unreadable', 'layout version ' .. st[6]} end\n"
    "if not st[1] then\n"
    "  redis.call('HSET', KEYS[1], 'v', '" RECORD_VERSION "', 'state', 'inflight',"
    " 'owner', ARGV[1], 'fp', ARGV[2], 'created', ARGV[4])\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "  return {'claimed'}\n"
    "end\n"
    "if st[2] ~= ARGV[2] then return {'mismatch'} end\n"
    "if st[1] == 'inflight' then return {'inflight', redis.call('PTTL', KEYS[1])} end\n"
    "if st[1] == 'done' then return {'done', st[3], st[4], st[5]} end\n"
    "if st[1] == 'unstored' then return {'unstored'} end\n"
    "return {'unreadable', 'state ' .. st[1]}\n",
    /* KEYS[1]; ARGV token, status, headers, body, ttl_ms */
    "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2],"
    " 'headers', ARGV[3], 'body', ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "return 1\n",
    /* KEYS[1]; ARGV token, ttl_ms. Allowed under maxmemory: it is tiny, and
     * it is what keeps an executed request from running again. */
    "#!lua flags=allow-oom\n"
    "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'unstored')\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n",
    /* KEYS[1]; ARGV token */
    "if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n",
    /* KEYS[1]: the admin API's look at a record */
    "local r = redis.pcall('HMGET', KEYS[1], 'v', 'state', 'fp', 'created',"
    " 'status', 'headers', 'body')\n"
    "if r.err then return {'unreadable', 'the key is not a hash'} end\n"
    "if not r[2] then return {'none'} end\n"
    "return {'record', r[1] or '', r[2], r[3] or '', r[4] or '', r[5] or '',"
    " r[6] or '', r[7] or '', redis.call('PTTL', KEYS[1])}\n",
    /* KEYS[1]: the admin API's delete; allowed under maxmemory */
    "#!lua flags=allow-oom\n"
    "return redis.call('DEL', KEYS[1])\n",
};

/* room before an op's arguments for "*N $7 EVALSHA $40 <sha>" (66 bytes) */
enum { ARGS_AT = 80 };

struct store_op {
    struct store *st;
    store_cb cb;                  /* NULL once answered (timeout) */
    void *arg;
    struct event *timer;
    int script;                   /* SCRIPT_* or -1 for INFO */
    int argc;                     /* arguments after the sha or script */
    char *args;                   /* those arguments, RESP-encoded, from */
    size_t args_len, args_cap;    /* ARGS_AT: room for the command before */
    double t0;
    unsigned in_redis:1;          /* hiredis will call us back */
    unsigned retried:1;           /* already sent again as EVAL */
    unsigned nomem:1;             /* its command could not be built */
};

struct store {
    struct event_base *base;
    struct stats *stats;
    redisAsyncContext *ac;
    struct event *reconnect;
    struct event *setup_timer;    /* connect and setup, bounded */
    struct event *kick;           /* writes this turn's commands */
    char host[256];
    int port, db;
    char password[256];
    int64_t timeout_ms;
    int backoff_ms;
    char sha[SCRIPT__N][41];
    char *cmd;                    /* a command being formatted (op_send) */
    size_t cmd_cap;
    int shas_loaded;
    char run_id[41];              /* of the Redis last connected to */
    int *ready_out;               /* published readiness, or NULL */
    unsigned watch_restarts:1;    /* this connection reports Redis restarts */
    unsigned connected:1;
    unsigned closing:1;
    char status[512];
};

static void store_connect(struct store *st);
static void store_publish(struct store *st);
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata);
#define SETUP_INFO (-2)

int store_ready(const struct store *st)
{
    return st->connected && st->shas_loaded == SCRIPT__N;
}

void store_watch_restarts(struct store *st)
{
    st->watch_restarts = 1;
    if (st->ac != NULL)          /* already connecting: ask this time too */
        redisAsyncCommand(st->ac, on_setup_reply, (void *)(intptr_t)SETUP_INFO, "INFO");
}

void store_publish_ready(struct store *st, int *flag)
{
    st->ready_out = flag;
    store_publish(st);
}

/* For another thread's /readyz; called wherever readiness may change. */
static void store_publish(struct store *st)
{
    if (st->ready_out != NULL)
        __atomic_store_n(st->ready_out, store_ready(st), __ATOMIC_RELAXED);
}

const char *store_status(const struct store *st)
{
    return store_ready(st) ? "connected" : st->status;
}

void store_set_timeout(struct store *st, int64_t ms)
{
    st->timeout_ms = ms;
}

static void op_free(struct store_op *op)
{
    free(op->args);
    if (op->timer != NULL)
        event_free(op->timer);
    free(op);
}

/* Answer the caller once. */
static void op_answer(struct store_op *op, const struct store_result *res)
{
    store_cb cb = op->cb;
    if (cb == NULL || op->st->closing)
        return;
    op->cb = NULL;
    evtimer_del(op->timer);
    if (res->kind == SR_ERROR)
        STAT_ADD(op->st->stats->redis_errors, 1);
    else
        stats_observe(&op->st->stats->redis, (now_ms() - op->t0) / 1e3);
    cb(op->arg, res);
}

static void op_fail(struct store_op *op, const char *why)
{
    struct store_result res = { .kind = SR_ERROR, .err = why };
    op_answer(op, &res);
}

/* The answer to an op that memory ran out for: a complete gets SR_OOM,
 * as when Redis refuses the write. */
static struct store_result nomem_result(int script)
{
    log_say(LOG_ERROR, "out of memory for a redis command; that request fails", NULL);
    struct store_result res = { .kind = script == SCRIPT_COMPLETE ? SR_OOM : SR_ERROR,
                                .err = "out of memory" };
    return res;
}

/* Drop the connection; hiredis answers every pending op with NULL. */
static void store_drop(struct store *st, const char *why)
{
    if (st->ac == NULL)
        return;
    snprintf(st->status, sizeof(st->status), "%s", why);
    redisAsyncContext *ac = st->ac;
    redisAsyncFree(ac);        /* runs on_disconnect, which clears st->ac */
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    store_connect(arg);
}

static void schedule_reconnect(struct store *st)
{
    if (st->closing)
        return;
    struct timeval tv = conf_ms_tv(st->backoff_ms);
    evtimer_add(st->reconnect, &tv);
    st->backoff_ms = st->backoff_ms * 2 > 2000 ? 2000 : st->backoff_ms * 2;
}

static void op_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct store_op *op = arg;
    struct store *st = op->st;
    (void)fd; (void)what;
    if (!op->in_redis) {           /* never sent: answered on the next turn */
        if (op->nomem) {
            struct store_result res = nomem_result(op->script);
            op_answer(op, &res);
        } else {
            op_fail(op, st->status);
        }
        op_free(op);
        return;
    }
    op_fail(op, "redis timeout");
    struct logline l;
    log_begin(&l, LOG_WARN, "redis timeout");
    log_int(&l, "timeout_ms", st->timeout_ms);
    log_end(&l);
    store_drop(st, "redis did not answer within the timeout");
}

static void fill_record(redisReply *r, struct store_result *res)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "none") == 0) {
        res->kind = SR_NONE;
        return;
    }
    if (strcmp(r->element[0]->str, "unreadable") == 0) {
        res->kind = SR_UNREADABLE;
        res->err = "the key is not a hash";
        return;
    }
    if (r->elements != 9 || r->element[8]->type != REDIS_REPLY_INTEGER)
        return;
    for (int i = 1; i < 8; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return;
    res->kind = SR_RECORD;
    res->version = atoi(r->element[1]->str);
    res->state = r->element[2]->str;
    res->fp = r->element[3]->str;
    res->created_ms = atoll(r->element[4]->str);
    res->status = record_status_parse(r->element[5]->str, r->element[5]->len);
    res->headers = r->element[6]->str;
    res->headers_len = r->element[6]->len;
    res->body = r->element[7]->str;
    res->body_len = r->element[7]->len;
    res->pttl_ms = r->element[8]->integer;
}

static void fill_result(struct store_op *op, redisReply *r,
                        struct store_result *res)
{
    memset(res, 0, sizeof(*res));
    res->kind = SR_ERROR;
    res->err = "unexpected reply from redis";
    if (op->script == -1) {
        if (r->type == REDIS_REPLY_STRING) {
            res->kind = SR_INFO;
            res->body = r->str;
            res->body_len = r->len;
        }
        return;
    }
    if (op->script == SCRIPT_INSPECT) {
        fill_record(r, res);
        return;
    }
    if (op->script != SCRIPT_CLAIM) {
        if (r->type == REDIS_REPLY_INTEGER)
            res->kind = r->integer == 1 ? SR_OK : SR_LOST;
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *k = r->element[0]->str;
    if (strcmp(k, "claimed") == 0) {
        res->kind = SR_CLAIMED;
    } else if (strcmp(k, "mismatch") == 0) {
        res->kind = SR_MISMATCH;
    } else if (strcmp(k, "inflight") == 0) {
        res->kind = SR_INFLIGHT;
        if (r->elements > 1 && r->element[1]->type == REDIS_REPLY_INTEGER)
            res->pttl_ms = r->element[1]->integer;
    } else if (strcmp(k, "unstored") == 0) {
        res->kind = SR_UNSTORED;
    } else if (strcmp(k, "unreadable") == 0) {
        res->kind = SR_UNREADABLE;
        res->err = r->elements > 1 && r->element[1]->type == REDIS_REPLY_STRING
                   ? r->element[1]->str : "unreadable";
    } else if (strcmp(k, "done") == 0 && r->elements == 4) {
        redisReply *s = r->element[1], *h = r->element[2], *b = r->element[3];
        if (s->type != REDIS_REPLY_STRING || h->type != REDIS_REPLY_STRING ||
            b->type != REDIS_REPLY_STRING) {
            res->kind = SR_UNREADABLE;
            res->err = "a done record without its answer";
            return;
        }
        res->kind = SR_DONE;
        res->status = record_status_parse(s->str, s->len);
        res->headers = h->str;
        res->headers_len = h->len;
        res->body = b->str;
        res->body_len = b->len;
    } else {
        res->err = "unexpected claim answer from redis";
    }
}

static int op_send(struct store_op *op, int as_eval);

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct store_op *op = privdata;
    redisReply *r = reply;
    (void)ac;

    if (r == NULL) {
        op_fail(op, "redis connection lost");
        op_free(op);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOSCRIPT", 8) == 0 && !op->retried && op->cb) {
            op->retried = 1;
            if (op_send(op, 1) == 0)
                return;
        }
        if (op->script == SCRIPT_COMPLETE && strncmp(r->str, "OOM", 3) == 0) {
            struct store_result res = { .kind = SR_OOM, .err = "redis is out of memory" };
            op_answer(op, &res);
        } else {
            struct logline l;
            log_begin(&l, LOG_WARN, "redis error");
            log_strn(&l, "detail", r->str, r->len);
            log_end(&l);
            op_fail(op, "redis answered an error");
        }
        op_free(op);
        return;
    }
    struct store_result res;
    fill_result(op, r, &res);
    op_answer(op, &res);
    op_free(op);
}

/*
 * hiredis asks libevent to say when the socket is writable and writes a
 * command on the next turn of the loop. The kick runs once at the end of
 * this turn instead (the commands queued in it go out in one write), and
 * hiredis drops its write interest in the same turn: with the epoll
 * changelist that is no epoll_ctl, and a turn less for every command.
 */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;
    (void)fd;
    (void)what;
    if (st->ac != NULL && st->connected)
        redisAsyncHandleWrite(st->ac);
}

static void store_kick(struct store *st)
{
    if (st->connected)
        event_active(st->kick, EV_WRITE, 1);
}

/* A RESP line: <type><n>\r\n at p; returns its length. */
static size_t put_resp_len(char *p, char type, size_t n)
{
    p[0] = type;
    size_t len = 1 + fmt_dec(p + 1, n);
    p[len++] = '\r';
    p[len++] = '\n';
    return len;
}

/* Send through hiredis. 0 sent, -1 not (caller answers). */
static int op_send(struct store_op *op, int as_eval)
{
    struct store *st = op->st;
    if (st->ac == NULL)
        return -1;
    if (op->script == -1) {
        if (redisAsyncCommand(st->ac, on_reply, op, "INFO memory") != REDIS_OK)
            return -1;
        op->in_redis = 1;
        store_kick(st);
        return 0;
    }
    /* the command, EVALSHA sha (or EVAL script), then the op's arguments,
     * in one buffer for hiredis (which copies it). EVALSHA goes into the
     * room left before the arguments, so a stored body is not copied once
     * more; the script of an EVAL (after NOSCRIPT) does not fit there. */
    if (op->args == NULL)
        return -1;              /* (every script op has its record name) */
    const char *name = as_eval ? "EVAL" : "EVALSHA";
    const char *code = as_eval ? script_src[op->script] : st->sha[op->script];
    size_t name_len = strlen(name), code_len = strlen(code);
    size_t args_len = op->args_len - ARGS_AT;
    char head[ARGS_AT];
    size_t hl = put_resp_len(head, '*', (size_t)op->argc + 2);
    hl += put_resp_len(head + hl, '$', name_len);
    memcpy(head + hl, name, name_len);
    hl += name_len;
    memcpy(head + hl, "\r\n", 2);
    hl += 2;
    hl += put_resp_len(head + hl, '$', code_len);
    const char *cmd;
    size_t len;
    if (hl + code_len + 2 <= ARGS_AT) {
        char *at = op->args + ARGS_AT - (hl + code_len + 2);
        memcpy(at, head, hl);
        memcpy(at + hl, code, code_len);
        memcpy(at + hl + code_len, "\r\n", 2);
        cmd = at;
        len = hl + code_len + 2 + args_len;
    } else {
        size_t need = hl + code_len + 2 + args_len;
        if (need > st->cmd_cap) {
            char *c = realloc(st->cmd, need);
            if (c == NULL) {
                op->nomem = 1;
                return -1;
            }
            st->cmd = c;
            st->cmd_cap = need;
        }
        memcpy(st->cmd, head, hl);
        memcpy(st->cmd + hl, code, code_len);
        memcpy(st->cmd + hl + code_len, "\r\n", 2);
        memcpy(st->cmd + hl + code_len + 2, op->args + ARGS_AT, args_len);
        cmd = st->cmd;
        len = need;
    }
    if (redisAsyncFormattedCommand(st->ac, on_reply, op, cmd, len) != REDIS_OK)
        return -1;
    op->in_redis = 1;
    store_kick(st);
    return 0;
}

static struct store_op *op_new(struct store *st, int script, store_cb cb, void *arg)
{
    struct store_op *op = calloc(1, sizeof(*op));
    if (op != NULL)
        op->timer = evtimer_new(st->base, op_timeout, op);
    if (op == NULL || op->timer == NULL) {
        free(op);               /* nothing to answer on the next turn with */
        struct store_result res = nomem_result(script);
        cb(arg, &res);
        return NULL;
    }
    op->st = st;
    op->cb = cb;
    op->arg = arg;
    op->script = script;
    op->t0 = now_ms();
    return op;
}

/* Append one argument, as RESP: $<len>\r\n<bytes>\r\n, its bytes from s,
 * or (s NULL) from the evbuffer b without linearizing it first. Nothing
 * for an op that is NULL or out of memory (op_new, op_start answer it). */
static void op_arg_from(struct store_op *op, const char *s, struct evbuffer *b,
                        size_t len)
{
    if (op == NULL || op->nomem)
        return;
    if (op->args_len < ARGS_AT)
        op->args_len = ARGS_AT;
    size_t need = op->args_len + len + 32;
    if (need > op->args_cap) {
        size_t cap = op->args_cap ? op->args_cap : 256;
        while (cap < need)
            cap *= 2;
        char *a = realloc(op->args, cap);
        if (a == NULL) {
            op->nomem = 1;
            return;
        }
        op->args = a;
        op->args_cap = cap;
    }
    op->args_len += put_resp_len(op->args + op->args_len, '$', len);
    if (s != NULL)
        memcpy(op->args + op->args_len, s, len);
    else if (len > 0)
        evbuffer_copyout(b, op->args + op->args_len, len);
    op->args_len += len;
    memcpy(op->args + op->args_len, "\r\n", 2);
    op->args_len += 2;
    op->argc++;
}

static void op_arg(struct store_op *op, const char *s, size_t len)
{
    op_arg_from(op, s, NULL, len);
}

static void op_arg_int(struct store_op *op, long long v)
{
    char buf[24];
    size_t n = 0;
    if (v < 0)
        buf[n++] = '-';
    n += fmt_dec(buf + n, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
    op_arg(op, buf, n);
}

/* Start an op: sent now, or answered SR_ERROR on the next loop turn.
 * NULL: op_new answered it already. */
static void op_start(struct store_op *op)
{
    if (op == NULL)
        return;
    struct store *st = op->st;
    if (!op->nomem && store_ready(st) && op_send(op, 0) == 0) {
        struct timeval tv = conf_ms_tv(st->timeout_ms);
        evtimer_add(op->timer, &tv);
        return;
    }
    struct timeval zero = { 0, 0 };
    evtimer_add(op->timer, &zero);
}

static struct store_op *script_op(struct store *st, int script, const char *rkey,
                                  store_cb cb, void *arg)
{
    struct store_op *op = op_new(st, script, cb, arg);
    op_arg(op, "1", 1);         /* (NULL-safe, as every op_arg) */
    op_arg(op, rkey, strlen(rkey));
    return op;
}

void store_claim(struct store *st, const char *rkey, const char *token,
                 const char *fp, int64_t lease_ms, store_cb cb, void *arg)
{
    struct store_op *op = script_op(st, SCRIPT_CLAIM, rkey, cb, arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    op_arg(op, token, strlen(token));
    op_arg(op, fp, strlen(fp));
    op_arg_int(op, lease_ms);
    op_arg_int(op, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    op_start(op);
}

void store_complete(struct store *st, const char *rkey, const char *token,
                    int status, const char *headers, size_t hlen,
                    struct evbuffer *body, int64_t ttl_ms,
                    store_cb cb, void *arg)
{
    struct store_op *op = script_op(st, SCRIPT_COMPLETE, rkey, cb, arg);
    op_arg(op, token, strlen(token));
    op_arg_int(op, status);
    op_arg(op, headers, hlen);
    op_arg_from(op, NULL, body, evbuffer_get_length(body));
    op_arg_int(op, ttl_ms);
    op_start(op);
}

void store_mark_unstored(struct store *st, const char *rkey, const char *token,
                         int64_t ttl_ms, store_cb cb, void *arg)
{
    struct store_op *op = script_op(st, SCRIPT_UNSTORED, rkey, cb, arg);
    op_arg(op, token, strlen(token));
    op_arg_int(op, ttl_ms);
    op_start(op);
}

void store_release(struct store *st, const char *rkey, const char *token,
                   store_cb cb, void *arg)
{
    struct store_op *op = script_op(st, SCRIPT_RELEASE, rkey, cb, arg);
    op_arg(op, token, strlen(token));
    op_start(op);
}

void store_inspect(struct store *st, const char *rkey, store_cb cb, void *arg)
{
    op_start(script_op(st, SCRIPT_INSPECT, rkey, cb, arg));
}

void store_forget(struct store *st, const char *rkey, store_cb cb, void *arg)
{
    op_start(script_op(st, SCRIPT_FORGET, rkey, cb, arg));
}

void store_info(struct store *st, store_cb cb, void *arg)
{
    op_start(op_new(st, -1, cb, arg));
}

/* ---- connection ---- */

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
 * A changed run_id means Redis restarted while we were away. With AOF the
 * claims and records come back; without persistence every claim taken
 * before is gone, so a retry of a request that was in flight executes
 * again. Say so loudly, once per restart.
 */
static void check_restart(struct store *st, const char *info)
{
    char run_id[41], aof[8] = "?";
    char loading[8] = "0";
    if (!st->watch_restarts)
        return;
    /* while Redis is still loading its AOF, INFO says aof_enabled:0; the
     * next connection (this one's setup fails with LOADING) asks again */
    info_field(info, "loading", loading, sizeof(loading));
    if (strcmp(loading, "0") != 0)
        return;
    if (info_field(info, "run_id", run_id, sizeof(run_id)) != 0)
        return;
    info_field(info, "aof_enabled", aof, sizeof(aof));
    if (st->run_id[0] != '\0' && strcmp(st->run_id, run_id) != 0) {
        STAT_ADD(st->stats->redis_restarts, 1);
        struct logline l;
        log_begin(&l, strcmp(aof, "1") == 0 ? LOG_WARN : LOG_ERROR,
                  strcmp(aof, "1") == 0
                  ? "redis restarted (run_id changed); AOF is on, records reloaded"
                  : "redis restarted (run_id changed) without AOF: claims and records from before are lost");
        log_str(&l, "aof_enabled", aof);
        log_end(&l);
    } else if (st->run_id[0] == '\0' && strcmp(aof, "1") != 0) {
        log_say(LOG_WARN, "redis has AOF off: a Redis restart loses claims and records",
                NULL);
    }
    memcpy(st->run_id, run_id, sizeof(run_id));
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct store *st = ac->data;
    redisReply *r = reply;
    intptr_t which = (intptr_t)privdata;

    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        if (st->shas_loaded < 0)        /* said once per connection */
            return;
        snprintf(st->status, sizeof(st->status), "redis refused setup: %.200s", r->str);
        log_say(strncmp(r->str, "LOADING", 7) == 0 ? LOG_WARN : LOG_ERROR,
                "redis setup failed", r->str);
        st->connected = 0;
        st->shas_loaded = -SCRIPT__N;   /* never ready on this connection */
        store_publish(st);
        /* not from inside hiredis's callback: on the next loop turn */
        redisAsyncDisconnect(ac);
        return;
    }
    if (which == SETUP_INFO && r->type == REDIS_REPLY_STRING) {
        check_restart(st, r->str);
        return;
    }
    if (which >= 0 && which < SCRIPT__N && r->type == REDIS_REPLY_STRING &&
        r->len == 40) {
        memcpy(st->sha[which], r->str, 40);
        st->sha[which][40] = '\0';
        ++st->shas_loaded;
        store_publish(st);
        if (st->shas_loaded == SCRIPT__N && st->connected) {
            evtimer_del(st->setup_timer);
            st->backoff_ms = 100;
            log_say(LOG_INFO, "redis ready", NULL);
        }
    }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct store *st = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        snprintf(st->status, sizeof(st->status), "redis at %s:%d: %s",
                 st->host, st->port, ac->errstr);
        log_say(LOG_WARN, "redis connect failed, retrying", st->status);
        st->ac = NULL;
        STAT_ADD(st->stats->redis_reconnects, 1);
        schedule_reconnect(st);
        return;
    }
    st->connected = 1;
    store_publish(st);
    if (st->shas_loaded == SCRIPT__N)
        st->backoff_ms = 100;
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct store *st = ac->data;
    (void)status;
    if (st->ac == ac) {
        st->ac = NULL;
        st->connected = 0;
        st->shas_loaded = 0;
        store_publish(st);
        if (!st->closing) {
            if (strcmp(st->status, "connecting") == 0 || st->status[0] == '\0')
                snprintf(st->status, sizeof(st->status), "redis connection lost");
            log_say(LOG_WARN, "redis disconnected, reconnecting", st->status);
            STAT_ADD(st->stats->redis_reconnects, 1);
            schedule_reconnect(st);
        }
    }
}

/*
 * The adapter's read event is one-shot: after every reply libevent drops
 * it and hiredis adds it back, and with the epoll changelist that pair is
 * an epoll_ctl per reply. Reading stays on for the connection's whole
 * life, so make the event persistent (hiredis's later adds are no-ops;
 * its cleanup frees it as before). The adapter is header-only and its
 * struct part of that header.
 */
static void persistent_read(redisAsyncContext *ac, struct event_base *base)
{
    redisLibeventEvents *e = ac->ev.data;
    if (e == NULL || e->rev == NULL)
        return;
    event_del(e->rev);
    event_assign(e->rev, base, ac->c.fd, EV_READ | EV_PERSIST, redisLibeventReadEvent, e);
    event_add(e->rev, NULL);
}

static void on_setup_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;
    (void)fd; (void)what;
    if (st->ac == NULL || store_ready(st))
        return;
    redisAsyncContext *ac = st->ac;
    snprintf(st->status, sizeof(st->status), "redis at %s:%d did not %s in time",
             st->host, st->port, st->connected ? "answer its setup" : "accept the connection");
    log_say(LOG_WARN, "redis setup timed out, reconnecting", st->status);
    /* hiredis calls on_disconnect only for a connected context; either
     * way this one is forgotten first, so that callback does nothing */
    st->ac = NULL;
    st->connected = 0;
    st->shas_loaded = 0;
    store_publish(st);
    STAT_ADD(st->stats->redis_reconnects, 1);
    schedule_reconnect(st);
    redisAsyncFree(ac);
}

static void store_connect(struct store *st)
{
    redisAsyncContext *ac = redisAsyncConnect(st->host, st->port);
    if (ac == NULL || ac->err) {
        snprintf(st->status, sizeof(st->status), "redis at %s:%d: %s", st->host,
                 st->port, ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(st);
        return;
    }
    ac->data = st;
    st->ac = ac;
    st->connected = 0;
    st->shas_loaded = 0;
    store_publish(st);
    snprintf(st->status, sizeof(st->status), "connecting");
    /* no op is sent before the setup is answered, so no op timer can
     * notice a connection that never answers it (half-open, a Redis
     * that died without a reset): this one does */
    struct timeval tv = conf_ms_tv(st->timeout_ms * 2 > 1000 ? st->timeout_ms * 2 : 1000);
    evtimer_add(st->setup_timer, &tv);
    redisLibeventAttach(ac, st->base);
    persistent_read(ac, st->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* queued by hiredis, written once connected, answered in order */
    if (st->password[0] != '\0')
        redisAsyncCommand(ac, on_setup_reply, (void *)(intptr_t)-1, "AUTH %s",
                          st->password);
    if (st->db != 0)
        redisAsyncCommand(ac, on_setup_reply, (void *)(intptr_t)-1, "SELECT %d",
                          st->db);
    for (int i = 0; i < SCRIPT__N; i++)
        redisAsyncCommand(ac, on_setup_reply, (void *)(intptr_t)i,
                          "SCRIPT LOAD %s", script_src[i]);
    if (st->watch_restarts)
        redisAsyncCommand(ac, on_setup_reply, (void *)(intptr_t)SETUP_INFO, "INFO");
}

struct store *store_open(struct event_base *base, const struct config *c,
                         struct stats *stats)
{
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->base = base;
    st->stats = stats;
    snprintf(st->host, sizeof(st->host), "%s", c->redis_host);
    st->port = c->redis_port;
    st->db = c->redis_db;
    snprintf(st->password, sizeof(st->password), "%s", c->redis_password);
    st->timeout_ms = c->redis_timeout_ms;
    st->backoff_ms = 100;
    st->reconnect = evtimer_new(base, on_reconnect, st);
    st->setup_timer = evtimer_new(base, on_setup_timeout, st);
    st->kick = event_new(base, -1, 0, on_kick, st);
    if (st->reconnect == NULL || st->setup_timer == NULL || st->kick == NULL) {
        struct event *made[] = { st->reconnect, st->setup_timer, st->kick };
        for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
            if (made[i] != NULL)
                event_free(made[i]);
        free(st);                 /* no memory at start: the caller says so */
        return NULL;
    }
    snprintf(st->status, sizeof(st->status), "connecting");
    store_connect(st);
    return st;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    st->closing = 1;
    if (st->ac != NULL)
        redisAsyncFree(st->ac);
    event_free(st->reconnect);
    event_free(st->setup_timer);
    event_free(st->kick);
    free(st->cmd);
    free(st);
}
