/*
 * reply.h: for the unit tests, a redisReply from RESP text, parsed by
 * hiredis's reader exactly as the proxy parses what Redis sends.
 */
#ifndef TEST_REPLY_H
#define TEST_REPLY_H

#include <string.h>
#include <hiredis.h>

/* The reply to the RESP bytes s (len, or strlen when 0); NULL when they are
 * incomplete or malformed. Free with freeReplyObject. */
static inline redisReply *reply_of(const char *s, size_t len)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;
    if (redisReaderFeed(rd, s, len ? len : strlen(s)) != REDIS_OK ||
        redisReaderGetReply(rd, &r) != REDIS_OK)
        r = NULL;
    redisReaderFree(rd);
    return r;
}

#endif
