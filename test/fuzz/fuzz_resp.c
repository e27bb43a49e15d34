/*
 * fuzz_resp: what Redis (or anything posing as Redis) sends, through
 * hiredis's reader and every reading of a reply in lib/: the record
 * operations' answers (lib/record.c), CLUSTER SLOTS (lib/slots.c), the
 * sentinels' answers and messages and ROLE (lib/sentinel.c), and error
 * replies (lib/resp.c). The proxy never crashes on a reply: each of these
 * must take any reply hiredis builds.
 *
 * Input: byte 0 says where to cut the rest into two feeds (the reader gets
 * a reply in pieces, as from a socket); the rest is RESP, read by
 * resp_reader_new()'s reader, as the proxy reads it (an array header over
 * RESP_MAX_ELEMENTS is an error, not an allocation of that size).
 * Properties:
 *  - record_decode: a known kind; every pointer it gives lies inside the
 *    reply's strings (the length from that string), and a DONE status is
 *    100..599 or -1;
 *  - slots_parse: calls back only for a reply it accepts (0), each range
 *    0 <= start <= end < 16384 with a port 1..65535 and a printable host of
 *    fewer than 256 bytes; -1 with a message otherwise, and no call;
 *  - sentinel_parse_addr: 0 gives a printable, non-empty host and a port;
 *    sentinel_parse_push: 1 gives a channel and a payload inside the reply,
 *    and sentinel_parse_switch on that payload, 1 a host and port;
 *  - resp_error_kind on an error reply: MOVED/ASK give a slot < 16384, a
 *    port 1..65535 and a printable host.
 */
#include "fuzz.h"
#include "record.h"
#include "resp.h"
#include "sentinel.h"
#include "slots.h"

#include <string.h>
#include <hiredis.h>

static int fuzz_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* p (n bytes) lies inside some string of the reply tree r */
static int fuzz_inside(const redisReply *r, const char *p, size_t n)
{
    if (r == NULL)
        return 0;
    if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
         r->type == REDIS_REPLY_ERROR) && p >= r->str && p + n <= r->str + r->len)
        return 1;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            if (fuzz_inside(r->element[i], p, n))
                return 1;
    return 0;
}

/* the reply carries a layout-2 record: a bare string (SET NX GET) or a
 * script's {'string', value, ...} */
static int fuzz_string_form(const redisReply *r)
{
    if (r->type == REDIS_REPLY_STRING)
        return 1;
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0] != NULL &&
           r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len == 6 &&
           memcmp(r->element[0]->str, "string", 6) == 0;
}

static int fuzz_calls;

static int fuzz_range(void *arg, int start, int end, const char *host, size_t hostlen, int port)
{
    (void)arg;
    fuzz_calls++;
    FUZZ_CHECK(0 <= start && start <= end && end < SLOTS_N);
    FUZZ_CHECK(port >= 1 && port <= 65535);
    FUZZ_CHECK(hostlen < 256 && fuzz_printable(host, hostlen));
    return 0;
}

static void fuzz_one(const redisReply *r)
{
    for (int op = 0; op < RECORD_OPS; op++) {
        struct record_reply rr;
        record_decode(op, r, "0123456789abcdef0123456789abcdef", &rr);
        FUZZ_CHECK(rr.kind >= RK_BAD && rr.kind <= RK_NONE);
        if (rr.headers != NULL)
            FUZZ_CHECK(fuzz_inside(r, rr.headers, rr.headers_len));
        if (rr.body != NULL)
            FUZZ_CHECK(fuzz_inside(r, rr.body, rr.body_len));
        if (rr.kind == RK_DONE)
            FUZZ_CHECK(rr.status == -1 || (rr.status >= 100 && rr.status <= 599));
        /* a hash record's fields are whatever the hash holds (its "v" may
         * say anything); a string record's fingerprint is read whole */
        if (rr.kind == RK_RECORD && !fuzz_string_form(r)) {
            FUZZ_CHECK(fuzz_inside(r, rr.state, strlen(rr.state)));
            FUZZ_CHECK(strlen(rr.fp) <= 32);
        }
        if (rr.kind == RK_RECORD && fuzz_string_form(r))
            FUZZ_CHECK(strlen(rr.fp) == 32);
    }
    char why[256];
    fuzz_calls = 0;
    int rc = slots_parse(r, fuzz_range, NULL, why, sizeof(why));
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == -1)
        FUZZ_CHECK(fuzz_calls == 0 && why[0] != '\0');

    char host[256];
    int port = 0;
    if (sentinel_parse_addr(r, host, sizeof(host), &port) == 0)
        FUZZ_CHECK(host[0] && fuzz_printable(host, strlen(host)) && port >= 1 && port <= 65535);
    const char *ch, *msg;
    size_t cl, ml;
    if (sentinel_parse_push(r, &ch, &cl, &msg, &ml) == 1) {
        FUZZ_CHECK(fuzz_inside(r, ch, cl) && fuzz_inside(r, msg, ml));
        for (int k = 0; k < 2; k++) {
            int s = sentinel_parse_switch(msg, ml, k ? "mymaster" : "", host, sizeof(host), &port);
            FUZZ_CHECK(s >= -1 && s <= 1);
            if (s == 1)
                FUZZ_CHECK(host[0] && port >= 1 && port <= 65535);
        }
    }
    enum sentinel_role role = sentinel_parse_role(r);
    FUZZ_CHECK(role >= ROLE_UNKNOWN && role <= ROLE_SENTINEL);
    if (r->type == REDIS_REPLY_ERROR) {
        struct resp_redirect to;
        enum resp_err e = resp_error_kind(r->str, r->len, &to);
        if (e == RESP_ERR_MOVED || e == RESP_ERR_ASK) {
            FUZZ_CHECK(to.slot >= 0 && to.slot < SLOTS_N);
            FUZZ_CHECK(to.port >= 1 && to.port <= 65535);
            FUZZ_CHECK(strlen(to.host) < sizeof(to.host));
            FUZZ_CHECK(fuzz_printable(to.host, strlen(to.host)));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cut = data[0] % size;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    if (cut > n)
        cut = n;
    redisReader *rd = resp_reader_new();
    if (rd == NULL)
        return 0;
    const char *part[2] = { in, in + cut };
    size_t len[2] = { cut, n - cut };
    for (int p = 0; p < 2; p++) {
        if (len[p] > 0 && redisReaderFeed(rd, part[p], len[p]) != REDIS_OK)
            break;
        for (int k = 0; k < 64; k++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
                break;
            fuzz_one(reply);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
    return 0;
}
