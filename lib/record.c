/*
 * record: owns the stored-answer layout: its Lua scripts, the arguments of
 * each operation and the meaning of each answer; which response headers are stored and replayed; the "Name: value\r\n" encoding
 * of the headers field and its decoding; status parsing. A change of
 * layout (a string record claimed with SET NX GET, say) is a change here.
 */
#include "record.h"
#include "fmt.h"
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>

int record_header_stored(const char *name, int allow_set_cookie)
{
    /* not http_header_is_hop's set: Date is dropped here, and a
     * Proxy-Authorization an upstream sends back is stored; an upstream's
     * own Idempotent-Replayed is not (a replay says its own) */
    static const struct http_name dropped[] = {
        HTTP_NAME("Connection"), HTTP_NAME("Keep-Alive"), HTTP_NAME("Proxy-Connection"),
        HTTP_NAME("TE"), HTTP_NAME("Trailer"), HTTP_NAME("Transfer-Encoding"),
        HTTP_NAME("Upgrade"), HTTP_NAME("Proxy-Authenticate"), HTTP_NAME("Date"),
        HTTP_NAME("Content-Length"), HTTP_NAME("Idempotent-Replayed"),
    };

    if (!name || !*name)
        return 0;
    size_t n = strlen(name);
    if (http_name_in(name, n, dropped, sizeof(dropped) / sizeof(dropped[0])))
        return 0;
    if (HTTP_IS(name, n, "Set-Cookie"))
        return allow_set_cookie ? 1 : 0;
    return 1;
}

int record_headers_add(char *buf, size_t cap, size_t *len, const char *name,
                       const char *value)
{
    size_t nl, vl, need;

    if (!buf || !len || !name || !value || *len > cap)
        return -1;
    nl = strlen(name);
    vl = strlen(value);
    if (nl == 0 || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -1;
    need = nl + 2 + vl + 2;
    if (need > cap - *len)
        return -1;
    memcpy(buf + *len, name, nl);
    memcpy(buf + *len + nl, ": ", 2);
    memcpy(buf + *len + nl + 2, value, vl);
    memcpy(buf + *len + nl + 2 + vl, "\r\n", 2);
    *len += need;
    return 0;
}

int record_headers_next(const char *buf, size_t len, size_t *pos,
                        const char **name, size_t *namelen,
                        const char **value, size_t *valuelen)
{
    size_t p, i, colon = 0, eol = 0;
    int have_colon = 0, have_eol = 0;

    if (!pos || *pos > len || (len > 0 && !buf))
        return -1;
    p = *pos;
    if (p == len)
        return 0;
    for (i = p; i < len; i++) {
        if (buf[i] == '\r') {
            if (i + 1 >= len || buf[i + 1] != '\n')
                return -1;
            eol = i;
            have_eol = 1;
            break;
        }
        if (buf[i] == '\n' || buf[i] == '\0')
            return -1;
        if (buf[i] == ':' && !have_colon) {
            colon = i;
            have_colon = 1;
        }
    }
    if (!have_eol || !have_colon || colon == p)
        return -1;
    i = colon + 1;
    while (i < eol && (buf[i] == ' ' || buf[i] == '\t'))
        i++;
    if (name)
        *name = buf + p;
    if (namelen)
        *namelen = colon - p;
    if (value)
        *value = buf + i;
    if (valuelen)
        *valuelen = eol - i;
    *pos = eol + 2;
    return 1;
}

int record_status_parse(const char *s, size_t len)
{
    int v = 0;
    size_t i;

    if (!s || len != 3)
        return -1;
    for (i = 0; i < 3; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return (v >= 100 && v <= 599) ? v : -1;
}

/* ---- the operations ---- */

/*
 * Layout 2 in Lua: the owner of a string record knows its whole value
 * while it is in flight ("2 i <owner> <fp> <created>\n", record_claim_value)
 * and sends it: the record is still its claim exactly when GET returns that
 * value, and then it is replaced by the new one, whole (no parsing in
 * Lua). A key of layout 1 makes GET fail (WRONGTYPE), and the hash is
 * handled as it always was; a hash's token never equals a string's value,
 * so a claim made in one layout never finishes a record of the other.
 */
#define L2_SWAP                                                         \
    "if v ~= ARGV[1] then return 0 end\n"                               \
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"              \
    "return 1\n"

static const char *const record_scripts[RECORD_OPS] = {
    /* KEYS[1] record; ARGV token, fp, lease_ms, created_ms. Claims in
     * layout 1, and reads either: a string is a record of layout 2, handed
     * back whole for the client to read ({'string', value}). A key of
     * another type, or a hash of another layout version, is answered
     * "unreadable" and left alone: it is somebody's record, so it is
     * neither claimed over nor (with on_store_error = pass) forwarded
     * around. */
    [RECORD_CLAIM] = (
    "local st = redis.pcall('HMGET', KEYS[1], 'state', 'fp', 'status', 'headers', 'body', 'v')\n"
    "if st.err then\n"
    "  local v = redis.pcall('GET', KEYS[1])\n"
    "  if type(v) == 'string' then return {'string', v} end\n"
    "  return {'unreadable', 'the key is neither a hash nor a string'}\n"
    "end\n"
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
    "return {'unreadable', 'state ' .. st[1]}\n"),
    /* KEYS[1]; a hash's ARGV: token, status, headers, body, ttl_ms; a
     * string's: the claim's value, the record's new value, ttl_ms */
    [RECORD_COMPLETE] = (
    "local v = redis.pcall('GET', KEYS[1])\n"
    "if type(v) == 'table' then\n"
    "  if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end\n"
    "  redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2],"
    " 'headers', ARGV[3], 'body', ARGV[4])\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "  return 1\n"
    "end\n"
    L2_SWAP),
    /* KEYS[1]; a hash's ARGV: token, ttl_ms; a string's: the claim's
     * value, the new value, ttl_ms. Allowed under maxmemory: it is tiny,
     * and it is what keeps an executed request from running again. */
    [RECORD_UNSTORED] = (
    "#!lua flags=allow-oom\n"
    "local v = redis.pcall('GET', KEYS[1])\n"
    "if type(v) == 'table' then\n"
    "  if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end\n"
    "  redis.call('HSET', KEYS[1], 'state', 'unstored')\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    L2_SWAP),
    /* KEYS[1]; a hash's ARGV: token; a string's: the claim's value */
    [RECORD_RELEASE] = (
    "local v = redis.pcall('GET', KEYS[1])\n"
    "if type(v) == 'table' then\n"
    "  if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then\n"
    "    return redis.call('DEL', KEYS[1])\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "if v == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n"),
    /* KEYS[1]: the admin API's look at a record, of either layout */
    [RECORD_INSPECT] = (
    "local r = redis.pcall('HMGET', KEYS[1], 'v', 'state', 'fp', 'created',"
    " 'status', 'headers', 'body')\n"
    "if r.err then\n"
    "  local v = redis.pcall('GET', KEYS[1])\n"
    "  if type(v) == 'string' then return {'string', v, redis.call('PTTL', KEYS[1])} end\n"
    "  return {'unreadable', 'the key is neither a hash nor a string'}\n"
    "end\n"
    "if not r[2] then return {'none'} end\n"
    "return {'record', r[1] or '', r[2], r[3] or '', r[4] or '', r[5] or '',"
    " r[6] or '', r[7] or '', redis.call('PTTL', KEYS[1])}\n"),
    /* KEYS[1]: the admin API's delete; allowed under maxmemory */
    [RECORD_FORGET] = (
    "#!lua flags=allow-oom\n"
    "return redis.call('DEL', KEYS[1])\n"),
};

const char *record_script(enum record_op op)
{
    return (unsigned)op < RECORD_OPS ? record_scripts[op] : NULL;
}

const char *record_op_name(enum record_op op)
{
    static const char *const names[RECORD_OPS] = {
        "claim", "complete", "unstored", "release", "inspect", "forget",
    };
    return (unsigned)op < RECORD_OPS ? names[op] : "unknown";
}

int record_op_acked(enum record_op op)
{
    return op == RECORD_CLAIM || op == RECORD_COMPLETE || op == RECORD_UNSTORED;
}

/* numkeys 1 and the key */
static int record_key(struct resp_buf *b, const char *rkey)
{
    return resp_arg(b, "1", 1) | resp_arg_str(b, rkey);
}

int record_args_claim(struct resp_buf *b, const char *rkey, const char *token,
                      const char *fp, int64_t lease_ms, int64_t now_ms)
{
    return record_key(b, rkey) | resp_arg_str(b, token) | resp_arg_str(b, fp) |
           resp_arg_int(b, lease_ms) | resp_arg_int(b, now_ms);
}

/*
 * "2 <state> <token> <fp> <created>" at p (room for RECORD_CLAIM_VALUE_MAX
 * bytes; not terminated); its length, or -1 for a claim that is not
 * whole. Without printf: it is built twice per first request and once per
 * replay.
 */
static int record_line(const struct record_claim *cl, char state, char *p)
{
    size_t tl = strnlen(cl->token, sizeof(cl->token));
    size_t fl = strnlen(cl->fp, sizeof(cl->fp));
    if (tl == sizeof(cl->token) || fl == sizeof(cl->fp) || cl->created_ms < 0)
        return -1;
    char *e = p;
    *e++ = '2';
    *e++ = ' ';
    *e++ = state;
    *e++ = ' ';
    memcpy(e, cl->token, tl);
    e += tl;
    *e++ = ' ';
    memcpy(e, cl->fp, fl);
    e += fl;
    *e++ = ' ';
    e += fmt_dec(e, (unsigned long long)cl->created_ms);
    return (int)(e - p);
}

/* "2 i <token> <fp> <created>\n": what a string claim wrote, into v; its length, or -1 */
static int record_claim_value(const struct record_claim *cl, char v[RECORD_CLAIM_VALUE_MAX])
{
    int n = record_line(cl, 'i', v);
    if (n < 0)
        return -1;
    v[n] = '\n';
    return n + 1;
}

/*
 * The claim's value as ARGV[1], then the start of ARGV[2], the new value:
 * "2 <state> <token> <fp> <created>" and tail's tn bytes and "\n", then
 * room for extra bytes, at *at.
 */
static int record_args_swap(struct resp_buf *b, const char *rkey, const struct record_claim *cl,
                            char state, const char *tail, size_t tn, size_t extra, char **at)
{
    char v[RECORD_CLAIM_VALUE_MAX];
    int vn = record_claim_value(cl, v);
    if (vn < 0 || (record_key(b, rkey) | resp_arg(b, v, (size_t)vn)) != 0)
        return -1;
    size_t ln = (size_t)vn + tn;             /* the same line, its state, tail, "\n" */
    char *p = resp_arg_room(b, ln + extra);
    if (p == NULL)
        return -1;
    memcpy(p, v, (size_t)vn - 1);
    p[2] = state;
    memcpy(p + vn - 1, tail, tn);
    p[ln - 1] = '\n';
    *at = p + ln;
    return 0;
}

int record_args_complete(struct resp_buf *b, const char *rkey, const struct record_claim *cl,
                         int status, const char *headers, size_t hlen,
                         size_t body_len, int64_t ttl_ms, size_t *body_at)
{
    if (cl->layout == RECORD_LAYOUT_STRING) {
        char tail[48], *at;
        size_t tn = 0;
        tail[tn++] = ' ';
        tn += fmt_dec(tail + tn, (unsigned)(status < 0 ? 0 : status));
        tail[tn++] = ' ';
        tn += fmt_dec(tail + tn, hlen);
        if (record_args_swap(b, rkey, cl, 'd', tail, tn, hlen + body_len, &at) != 0)
            return -1;
        if (hlen > 0)
            memcpy(at, headers, hlen);
        *body_at = (size_t)(at + hlen - b->p);
        return resp_arg_int(b, ttl_ms);
    }
    if ((record_key(b, rkey) | resp_arg_str(b, cl->token) | resp_arg_int(b, status) |
         resp_arg(b, headers, hlen)) != 0)
        return -1;
    char *at = resp_arg_room(b, body_len);
    if (at == NULL)
        return -1;
    *body_at = (size_t)(at - b->p);
    return resp_arg_int(b, ttl_ms);
}

int record_args_unstored(struct resp_buf *b, const char *rkey, const struct record_claim *cl,
                         int64_t ttl_ms)
{
    if (cl->layout == RECORD_LAYOUT_STRING) {
        char *at;
        return record_args_swap(b, rkey, cl, 'u', "", 0, 0, &at) | resp_arg_int(b, ttl_ms);
    }
    return record_key(b, rkey) | resp_arg_str(b, cl->token) | resp_arg_int(b, ttl_ms);
}

int record_args_release(struct resp_buf *b, const char *rkey, const struct record_claim *cl)
{
    if (cl->layout == RECORD_LAYOUT_STRING) {
        char v[RECORD_CLAIM_VALUE_MAX];
        int vn = record_claim_value(cl, v);
        return vn < 0 ? -1 : record_key(b, rkey) | resp_arg(b, v, (size_t)vn);
    }
    return record_key(b, rkey) | resp_arg_str(b, cl->token);
}

int record_args_key(struct resp_buf *b, const char *rkey)
{
    return record_key(b, rkey);
}

int record_cmd_claim_string(struct resp_buf *b, const char *rkey,
                            const struct record_claim *cl, int64_t lease_ms)
{
    char v[RECORD_CLAIM_VALUE_MAX];
    int n = record_claim_value(cl, v);
    if (n < 0)
        return -1;
    return resp_arg(b, "SET", 3) | resp_arg_str(b, rkey) | resp_arg(b, v, (size_t)n) |
           resp_arg(b, "NX", 2) | resp_arg(b, "GET", 3) | resp_arg(b, "PX", 2) |
           resp_arg_int(b, lease_ms);
}

/* ---- what the answers mean ---- */

static int record_is_str(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_STRING;
}

static int record_word(const redisReply *r, const char *w)
{
    size_t n = strlen(w);
    return record_is_str(r) && r->len == n && memcmp(r->str, w, n) == 0;
}

/* A decimal integer of at most 18 digits, the whole string; def otherwise. */
static long long record_num(const redisReply *r, long long def)
{
    if (!record_is_str(r) || r->len == 0 || r->len > 18)
        return def;
    long long v = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9')
            return def;
        v = v * 10 + (r->str[i] - '0');
    }
    return v;
}

/* A decimal number of at most 18 digits at *p (up to end, a space or a
 * newline); *p after it. -1 if none. */
static long long take_num(const char **p, const char *end)
{
    const char *q = *p;
    long long v = 0;
    int n = 0;
    while (q < end && *q >= '0' && *q <= '9' && n < 18) {
        v = v * 10 + (*q++ - '0');
        n++;
    }
    if (n == 0 || (q < end && *q != ' ' && *q != '\n'))
        return -1;
    *p = q;
    return v;
}

/* A word of the first line at *p (up to a space or newline); *p after it. */
static size_t take_word(const char **p, const char *end, const char **w)
{
    const char *q = *p;
    *w = q;
    while (q < end && *q != ' ' && *q != '\n')
        q++;
    *p = q;
    return (size_t)(q - *w);
}

/* w[0..n) is printable ASCII without a space (an owner token), or, hex
 * set, lower-case hex digits (a fingerprint). */
static int word_ok(const char *w, size_t n, int hex)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w[i];
        if (hex ? !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) : (c <= 0x20 || c >= 0x7f))
            return 0;
    }
    return 1;
}

static int take_char(const char **p, const char *end, char c)
{
    if (*p >= end || **p != c)
        return -1;
    (*p)++;
    return 0;
}

void record_decode_string(const char *v, size_t n, const char *fp, struct record_reply *out)
{
    const char *p = v, *end = v + n, *owner, *f;
    out->kind = RK_UNREADABLE;
    out->err = "a string record this version cannot read";
    if (n < 4 || v[0] != '2' || v[1] != ' ')
        return;
    char state = v[2];
    p = v + 3;
    size_t on;
    if (take_char(&p, end, ' ') != 0 || (on = take_word(&p, end, &owner)) == 0 ||
        !word_ok(owner, on, 0) || take_char(&p, end, ' ') != 0 ||
        take_word(&p, end, &f) != 32 || !word_ok(f, 32, 1) || take_char(&p, end, ' ') != 0)
        return;
    long long created = take_num(&p, end);
    if (created < 0)
        return;
    int status = 0;
    long long hlen = 0;
    if (state == 'd') {
        if (take_char(&p, end, ' ') != 0)
            return;
        const char *s = p;
        long long st = take_num(&p, end);
        if (st < 0 || (status = record_status_parse(s, (size_t)(p - s))) < 0 ||
            take_char(&p, end, ' ') != 0 || (hlen = take_num(&p, end)) < 0)
            return;
    }
    if (take_char(&p, end, '\n') != 0)
        return;
    memcpy(out->fp, f, 32);
    out->fp[32] = '\0';
    out->created_ms = created;
    out->version = 2;
    switch (state) {
    case 'i':
    case 'u':
        if (p != end)
            return;
        out->state = state == 'i' ? "inflight" : "unstored";
        break;
    case 'd':
        if ((long long)(end - p) < hlen)
            return;
        out->state = "done";
        out->status = status;
        out->headers = p;
        out->headers_len = (size_t)hlen;
        out->body = p + hlen;
        out->body_len = (size_t)(end - p - hlen);
        break;
    default:
        return;
    }
    out->err = NULL;
    if (fp == NULL) {
        out->kind = RK_RECORD;            /* inspect */
    } else if (memcmp(f, fp, 32) != 0) {
        out->kind = RK_MISMATCH;
    } else if (state == 'i') {
        out->kind = RK_INFLIGHT;
        out->pttl_ms = -1;                /* from created_ms and the lease */
    } else if (state == 'u') {
        out->kind = RK_UNSTORED;
    } else {
        out->kind = RK_DONE;
    }
}

void record_decode_string_claim(const redisReply *r, const char *fp, struct record_reply *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = RK_BAD;
    out->err = "unexpected claim answer from redis";
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_NIL) {
        out->kind = RK_CLAIMED;
        out->err = NULL;
    } else if (r->type == REDIS_REPLY_STRING) {
        record_decode_string(r->str, r->len, fp, out);
    }
}

static void record_decode_claim(const redisReply *r, const char *fp,
                                struct record_reply *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !record_is_str(r->element[0])) {
        out->err = "unexpected claim answer from redis";
        return;
    }
    const redisReply *k = r->element[0];
    if (record_word(k, "claimed")) {
        out->kind = RK_CLAIMED;
    } else if (record_word(k, "mismatch")) {
        out->kind = RK_MISMATCH;
    } else if (record_word(k, "inflight")) {
        out->kind = RK_INFLIGHT;
        if (r->elements > 1 && r->element[1] != NULL &&
            r->element[1]->type == REDIS_REPLY_INTEGER)
            out->pttl_ms = r->element[1]->integer;
    } else if (record_word(k, "unstored")) {
        out->kind = RK_UNSTORED;
    } else if (record_word(k, "string") && r->elements == 2 && record_is_str(r->element[1]) &&
               fp != NULL) {
        record_decode_string(r->element[1]->str, r->element[1]->len, fp, out);
    } else if (record_word(k, "unreadable")) {
        out->kind = RK_UNREADABLE;
        out->err = r->elements > 1 && record_is_str(r->element[1]) ? r->element[1]->str
                                                                   : "unreadable";
    } else if (record_word(k, "done") && r->elements == 4) {
        const redisReply *st = r->element[1], *h = r->element[2], *b = r->element[3];
        if (!record_is_str(st) || !record_is_str(h) || !record_is_str(b)) {
            out->kind = RK_UNREADABLE;
            out->err = "a done record without its answer";
            return;
        }
        out->kind = RK_DONE;
        out->status = record_status_parse(st->str, st->len);
        out->headers = h->str;
        out->headers_len = h->len;
        out->body = b->str;
        out->body_len = b->len;
    } else {
        out->err = "unexpected claim answer from redis";
    }
}

static void record_decode_inspect(const redisReply *r, struct record_reply *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !record_is_str(r->element[0]))
        return;
    if (record_word(r->element[0], "none")) {
        out->kind = RK_NONE;
        return;
    }
    if (record_word(r->element[0], "unreadable")) {
        out->kind = RK_UNREADABLE;
        out->err = "the key is neither a hash nor a string";
        return;
    }
    if (record_word(r->element[0], "string") && r->elements == 3 &&
        record_is_str(r->element[1]) && r->element[2] != NULL &&
        r->element[2]->type == REDIS_REPLY_INTEGER) {
        record_decode_string(r->element[1]->str, r->element[1]->len, NULL, out);
        out->pttl_ms = r->element[2]->integer;
        return;
    }
    if (!record_word(r->element[0], "record") || r->elements != 9 || r->element[8] == NULL ||
        r->element[8]->type != REDIS_REPLY_INTEGER)
        return;
    for (int i = 1; i < 8; i++)
        if (!record_is_str(r->element[i]))
            return;
    out->kind = RK_RECORD;
    out->version = (int)record_num(r->element[1], 0);
    out->state = r->element[2]->str;
    snprintf(out->fp, sizeof(out->fp), "%.*s", (int)(r->element[3]->len < 32 ? r->element[3]->len : 32),
             r->element[3]->str);
    out->created_ms = record_num(r->element[4], 0);
    out->status = (int)record_num(r->element[5], 0);
    out->headers = r->element[6]->str;
    out->headers_len = r->element[6]->len;
    out->body = r->element[7]->str;
    out->body_len = r->element[7]->len;
    out->pttl_ms = r->element[8]->integer;
}

void record_decode(enum record_op op, const struct redisReply *r, const char *fp,
                   struct record_reply *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = RK_BAD;
    out->err = "unexpected reply from redis";
    if (r == NULL)
        return;
    switch (op) {
    case RECORD_CLAIM:
        record_decode_claim(r, fp, out);
        return;
    case RECORD_INSPECT:
        record_decode_inspect(r, out);
        return;
    case RECORD_COMPLETE:
    case RECORD_UNSTORED:
    case RECORD_RELEASE:
    case RECORD_FORGET:
        if (r->type == REDIS_REPLY_INTEGER)
            out->kind = r->integer == 1 ? RK_OK : RK_LOST;
        return;
    case RECORD_OPS:
        break;
    }
}
