/*
 * sentinel: owns reading what sentinels and ROLE answer. Every reply may be
 * anything a peer sends: a malformed one is -1 (or ROLE_UNKNOWN), never a
 * crash.
 */
#include "sentinel.h"

#include <string.h>
#include <hiredis.h>

static int sentinel_is(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == n && memcmp(r->str, s, n) == 0;
}

/* host (text, no spaces or controls) and port (1..65535), both of given
 * lengths, into host/port. 0 or -1. */
static int sentinel_addr(const char *h, size_t hl, const char *p, size_t pl,
                         char *host, size_t hostsize, int *port)
{
    if (hl == 0 || hl >= hostsize || pl == 0 || pl > 5)
        return -1;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)h[i] <= ' ' || (unsigned char)h[i] >= 0x7f)
            return -1;
    long v = 0;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}

int sentinel_parse_addr(const struct redisReply *r, char *host, size_t hostsize, int *port)
{
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_NIL)
        return 1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return -1;
    const redisReply *h = r->element[0], *p = r->element[1];
    if (h == NULL || p == NULL || h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING)
        return -1;
    return sentinel_addr(h->str, h->len, p->str, p->len, host, hostsize, port);
}

int sentinel_parse_push(const struct redisReply *r, const char **channel, size_t *clen,
                        const char **payload, size_t *plen)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return -1;
    if (r->elements == 3 && sentinel_is(r->element[0], "message")) {
        const redisReply *c = r->element[1], *m = r->element[2];
        if (c == NULL || m == NULL || c->type != REDIS_REPLY_STRING ||
            m->type != REDIS_REPLY_STRING)
            return -1;
        *channel = c->str;
        *clen = c->len;
        *payload = m->str;
        *plen = m->len;
        return 1;
    }
    if (r->elements >= 1 && (sentinel_is(r->element[0], "subscribe") ||
                             sentinel_is(r->element[0], "pong")))
        return 0;
    return -1;
}

int sentinel_parse_switch(const char *msg, size_t len, const char *name,
                          char *host, size_t hostsize, int *port)
{
    const char *f[5];
    size_t fl[5];
    size_t i = 0;
    for (int k = 0; k < 5; k++) {
        if (k > 0) {
            if (i >= len || msg[i] != ' ')
                return -1;
            i++;
        }
        f[k] = msg + i;
        while (i < len && msg[i] != ' ')
            i++;
        fl[k] = (size_t)(msg + i - f[k]);
        if (fl[k] == 0)
            return -1;
    }
    if (i != len)
        return -1;
    char h[256];
    int p;
    if (sentinel_addr(f[3], fl[3], f[4], fl[4], h, sizeof(h), &p) < 0)
        return -1;
    if (fl[0] != strlen(name) || memcmp(f[0], name, fl[0]) != 0)
        return 0;
    if (strlen(h) >= hostsize)
        return -1;
    strcpy(host, h);
    *port = p;
    return 1;
}

enum sentinel_role sentinel_parse_role(const struct redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return ROLE_UNKNOWN;
    if (sentinel_is(r->element[0], "master"))
        return ROLE_MASTER;
    if (sentinel_is(r->element[0], "slave"))
        return ROLE_REPLICA;
    if (sentinel_is(r->element[0], "sentinel"))
        return ROLE_SENTINEL;
    return ROLE_UNKNOWN;
}
