/*
 * slots: owns Redis Cluster's slot arithmetic (CRC16-CCITT/XMODEM of the
 * hash tag, as cluster.c keyHashSlot does), the slot map's plain data, and
 * reading a CLUSTER SLOTS reply, which may be anything a peer sends.
 */
#include "slots.h"

#include <stdio.h>
#include <string.h>
#include <hiredis.h>

static uint16_t slots_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned slots_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t s = (size_t)(open - key) + 1;
        const char *close = memchr(key + s, '}', len - s);
        if (close != NULL && close > key + s)
            return slots_crc16(key + s, (size_t)(close - key - s)) & (SLOTS_N - 1);
    }
    return slots_crc16(key, len) & (SLOTS_N - 1);
}

void slots_clear(struct slots_map *m)
{
    for (int i = 0; i < SLOTS_N; i++)
        m->node[i] = SLOTS_NONE;
}

int slots_covered(const struct slots_map *m)
{
    for (int i = 0; i < SLOTS_N; i++)
        if (m->node[i] == SLOTS_NONE)
            return 0;
    return 1;
}

/* A range entry: [start, end, [host, port, ...], replicas...]. 0 if well formed. */
static int slots_range(const redisReply *e, int *start, int *end, const redisReply **host,
                       int *port)
{
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 3)
        return -1;
    const redisReply *a = e->element[0], *b = e->element[1], *m = e->element[2];
    if (a == NULL || b == NULL || m == NULL || a->type != REDIS_REPLY_INTEGER ||
        b->type != REDIS_REPLY_INTEGER || a->integer < 0 || b->integer >= SLOTS_N ||
        a->integer > b->integer)
        return -1;
    if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 || m->element[0] == NULL ||
        m->element[1] == NULL || m->element[1]->type != REDIS_REPLY_INTEGER ||
        m->element[1]->integer < 1 || m->element[1]->integer > 65535)
        return -1;
    /* the preferred endpoint: a string ("" the node asked, "?" unknown), or nil (unknown) */
    const redisReply *h = m->element[0];
    if (h->type != REDIS_REPLY_STRING && h->type != REDIS_REPLY_NIL)
        return -1;
    if (h->type == REDIS_REPLY_STRING) {
        if (h->len >= 256)
            return -1;
        for (size_t i = 0; i < h->len; i++)
            if ((unsigned char)h->str[i] <= ' ' || (unsigned char)h->str[i] >= 0x7f)
                return -1;
    }
    *start = (int)a->integer;
    *end = (int)b->integer;
    *host = h;
    *port = (int)m->element[1]->integer;
    return 0;
}

int slots_parse(const struct redisReply *r, slots_range_cb cb, void *arg,
                char *why, size_t wn)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        snprintf(why, wn, "CLUSTER SLOTS did not answer an array");
        return -1;
    }
    if (r->elements == 0) {
        snprintf(why, wn, "CLUSTER SLOTS answered no slots (is the cluster created?)");
        return -1;
    }
    int start, end, port;
    const redisReply *host;
    for (size_t i = 0; i < r->elements; i++)
        if (slots_range(r->element[i], &start, &end, &host, &port) < 0) {
            snprintf(why, wn, "CLUSTER SLOTS answered a malformed range (entry %zu)", i);
            return -1;
        }
    for (size_t i = 0; i < r->elements; i++) {
        slots_range(r->element[i], &start, &end, &host, &port);
        /* an unknown endpoint (nil, or "?"): the range stays unmapped */
        if (host->type == REDIS_REPLY_NIL || (host->len == 1 && host->str[0] == '?'))
            continue;
        int rc = cb(arg, start, end, host->str, host->len, port);
        if (rc != 0)
            return rc;
    }
    return 0;
}
