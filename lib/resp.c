/*
 * resp: owns writing RESP2 commands (arguments, heads, whole commands) and
 * the meaning of Redis's error replies (MOVED/ASK with their address,
 * NOSCRIPT, READONLY, ...). Parsing replies is hiredis's reader's.
 */
#include "resp.h"
#include "fmt.h"

#include <stdlib.h>
#include <string.h>
#include <hiredis.h>

void resp_reset(struct resp_buf *b)
{
    b->len = 0;
    b->argc = 0;
}

void resp_free(struct resp_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* "<type><n>\r\n" at p; returns its length (at most 23) */
static size_t resp_line(char *p, char type, size_t n)
{
    p[0] = type;
    size_t len = 1 + fmt_dec(p + 1, n);
    p[len++] = '\r';
    p[len++] = '\n';
    return len;
}

char *resp_arg_room(struct resp_buf *b, size_t n)
{
    if (n > ((size_t)-1) / 2 - b->len - 32)
        return NULL;
    size_t need = b->len + n + 32;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return NULL;
        b->p = p;
        b->cap = cap;
    }
    b->len += resp_line(b->p + b->len, '$', n);
    char *at = b->p + b->len;
    b->len += n;
    memcpy(b->p + b->len, "\r\n", 2);
    b->len += 2;
    b->argc++;
    return at;
}

int resp_arg(struct resp_buf *b, const void *s, size_t n)
{
    char *at = resp_arg_room(b, n);
    if (at == NULL)
        return -1;
    if (n > 0)
        memcpy(at, s, n);
    return 0;
}

int resp_arg_str(struct resp_buf *b, const char *s)
{
    return resp_arg(b, s, strlen(s));
}

int resp_arg_int(struct resp_buf *b, long long v)
{
    char buf[24];
    size_t n = 0;
    if (v < 0)
        buf[n++] = '-';
    n += fmt_dec(buf + n, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
    return resp_arg(b, buf, n);
}

size_t resp_head(char *out, size_t cap, int argc_after, const char *name,
                 const char *first, size_t first_len)
{
    size_t nl = strlen(name);
    if (argc_after < 0 || cap < 3 * 24 + nl + first_len + 4)
        return 0;
    size_t n = resp_line(out, '*', (size_t)argc_after + 2);
    n += resp_line(out + n, '$', nl);
    memcpy(out + n, name, nl);
    n += nl;
    memcpy(out + n, "\r\n", 2);
    n += 2;
    n += resp_line(out + n, '$', first_len);
    memcpy(out + n, first, first_len);
    n += first_len;
    memcpy(out + n, "\r\n", 2);
    return n + 2;
}

int resp_command(struct resp_buf *b, int argc, const char *const *argv)
{
    struct resp_buf args = { 0 };
    char head[24];
    int rc = -1;
    resp_reset(b);
    for (int i = 0; i < argc; i++)
        if (resp_arg_str(&args, argv[i]) < 0)
            goto out;
    size_t hl = resp_line(head, '*', (size_t)argc);
    /* the head, then the arguments: one more argument's room is enough */
    if (resp_arg_room(b, hl + args.len) == NULL)
        goto out;
    b->len = 0;
    memcpy(b->p, head, hl);
    memcpy(b->p + hl, args.p, args.len);
    b->len = hl + args.len;
    b->argc = argc;
    rc = 0;
out:
    resp_free(&args);
    return rc;
}

/* s starts with the word w followed by a space or its end */
static int resp_word(const char *s, size_t len, const char *w)
{
    size_t n = strlen(w);
    return len >= n && memcmp(s, w, n) == 0 && (len == n || s[n] == ' ');
}

/* "<slot> <host>:<port>" after MOVED/ASK; 0 or -1 */
static int resp_parse_redirect(const char *s, size_t len, struct resp_redirect *to)
{
    size_t i = 0;
    long slot = 0;
    if (i >= len || s[i] < '0' || s[i] > '9')
        return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        slot = slot * 10 + (s[i] - '0');
        if (slot > 16383)
            return -1;
    }
    if (i >= len || s[i] != ' ')
        return -1;
    const char *a = s + i + 1;
    size_t alen = len - i - 1;
    const char *colon = NULL;
    for (size_t k = 0; k < alen; k++)        /* the last ':' (an IPv6 host has some) */
        if (a[k] == ':')
            colon = a + k;
    if (colon == NULL)
        return -1;
    size_t hl = (size_t)(colon - a);
    if (hl >= sizeof(to->host))
        return -1;
    for (size_t k = 0; k < hl; k++)
        if ((unsigned char)a[k] <= ' ' || (unsigned char)a[k] >= 0x7f)
            return -1;
    long port = 0;
    size_t pl = alen - hl - 1;
    if (pl == 0 || pl > 5)
        return -1;
    for (size_t k = 0; k < pl; k++) {
        char c = colon[1 + k];
        if (c < '0' || c > '9')
            return -1;
        port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    to->slot = (int)slot;
    memcpy(to->host, a, hl);
    to->host[hl] = '\0';
    to->port = (int)port;
    return 0;
}

enum resp_err resp_error_kind(const char *s, size_t len, struct resp_redirect *to)
{
    static const struct { const char *w; enum resp_err e; } words[] = {
        { "TRYAGAIN", RESP_ERR_TRYAGAIN }, { "CLUSTERDOWN", RESP_ERR_CLUSTERDOWN },
        { "NOSCRIPT", RESP_ERR_NOSCRIPT }, { "READONLY", RESP_ERR_READONLY },
        { "LOADING", RESP_ERR_LOADING }, { "MASTERDOWN", RESP_ERR_MASTERDOWN },
        { "OOM", RESP_ERR_OOM }, { "NOAUTH", RESP_ERR_AUTH }, { "WRONGPASS", RESP_ERR_AUTH },
        { "NOPERM", RESP_ERR_AUTH }, { "BUSY", RESP_ERR_BUSY },
        { "WRONGTYPE", RESP_ERR_WRONGTYPE },
    };
    if (s == NULL)
        return RESP_ERR_OTHER;
    if (resp_word(s, len, "MOVED") && len > 6)
        return resp_parse_redirect(s + 6, len - 6, to) == 0 ? RESP_ERR_MOVED : RESP_ERR_OTHER;
    if (resp_word(s, len, "ASK") && len > 4)
        return resp_parse_redirect(s + 4, len - 4, to) == 0 ? RESP_ERR_ASK : RESP_ERR_OTHER;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (resp_word(s, len, words[i].w))
            return words[i].e;
    return RESP_ERR_OTHER;
}

/* ---- a reader with bounds: hiredis's reply objects, made here ---- */

/* r into its parent array (the slot the reader is filling), if any. */
static void *resp_attach(const redisReadTask *task, redisReply *r)
{
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *resp_new_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->type = task->type;
    r->str = malloc(len + 1);
    if (r->str == NULL) {
        free(r);
        return NULL;
    }
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return resp_attach(task, r);
}

static void *resp_new_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > RESP_MAX_ELEMENTS)
        return NULL;             /* the reader says "out of memory": dropped */
    redisReply *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->type = REDIS_REPLY_ARRAY;
    if (elements > 0) {
        r->element = calloc((size_t)elements, sizeof(redisReply *));
        if (r->element == NULL) {
            free(r);
            return NULL;
        }
    }
    r->elements = (size_t)elements;
    return resp_attach(task, r);
}

static void *resp_new_integer(const redisReadTask *task, long long value)
{
    redisReply *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->type = REDIS_REPLY_INTEGER;
    r->integer = value;
    return resp_attach(task, r);
}

static void *resp_new_nil(const redisReadTask *task)
{
    redisReply *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->type = REDIS_REPLY_NIL;
    return resp_attach(task, r);
}

static redisReplyObjectFunctions resp_functions = {
    resp_new_string, resp_new_array, resp_new_integer, resp_new_nil, freeReplyObject,
};

struct redisReader *resp_reader_new(void)
{
    return redisReaderCreateWithFunctions(&resp_functions);
}
