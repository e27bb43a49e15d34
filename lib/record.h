/*
 * record: the versioned layout of a stored answer in Redis. One key per
 * (route, scope, key), in one of two layouts (doc/record.md):
 *
 * Layout 1, a hash, readable with redis-cli HGETALL:
 *   v        "1"                       layout version
 *   state    "inflight" | "done" | "unstored"
 *   owner    token of the claiming process (inflight only matters)
 *   fp       32 hex digits, XXH3-128 fingerprint of the first request
 *   created  unix time in milliseconds of the claim
 *   status   "201"                     (done)
 *   headers  "Name: value\r\n" lines   (done) end-to-end headers only
 *   body     raw bytes                 (done)
 *
 * Layout 2, a string, readable with redis-cli GET: one line of fields
 * separated by single spaces, then (done) the headers and the body:
 *   "2 i <owner> <fp> <created>\n"                                in flight
 *   "2 d <owner> <fp> <created> <status> <hlen>\n<headers><body>"  done
 *   "2 u <owner> <fp> <created>\n"                                unstored
 * claimed with Redis's own SET NX GET PX (no script): one command both
 * claims an absent key and returns the record of a present one.
 *
 * Every version that writes layout 2 reads both; which one it writes for a
 * new claim is [redis] record_layout (the switch an operator flips once
 * every pod runs a version that reads both). A claim is finished
 * (complete, unstored, release) in the layout it was made in, by the same
 * scripts: each acts on the layout the key has, and a record of the other
 * layout is not the caller's. Inspect reads either.
 * Owns: the layout above and everything that depends on it: the Lua scripts
 * of a record's life (claim-or-fetch, complete, mark unstored, release, and
 * the admin API's look and delete), the arguments each operation sends,
 * and what each answer means; encoding the headers field, decoding it
 * back, which response headers are stored (not hop-by-hop, not Date,
 * Set-Cookie only when allowed). Does not own: sending, connections,
 * clusters (proxy/store.c sends what is built here, as EVALSHA).
 *
 * Each script touches only KEYS[1], the record, so it runs on the one
 * node (and slot) that holds it in a Redis Cluster.
 */
#ifndef IDEM_RECORD_H
#define IDEM_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "resp.h"

struct redisReply;

#define RECORD_VERSION "1"           /* layout 1's v field */

enum record_layout {
    RECORD_LAYOUT_HASH = 1,
    RECORD_LAYOUT_STRING = 2
};

/*
 * 1 if a response header of this name is stored and replayed: not
 * hop-by-hop (RFC 9110 7.6.1: Connection, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate), not Date, not
 * Content-Length (recomputed), Set-Cookie only when allow_set_cookie.
 */
int record_header_stored(const char *name, int allow_set_cookie);

/*
 * Append "name: value\r\n" to buf (size cap, *len used). -1 if it does not
 * fit or name/value hold CR or LF.
 */
int record_headers_add(char *buf, size_t cap, size_t *len, const char *name,
                       const char *value);

/*
 * Walk an encoded headers field. Start with *pos = 0; each call returns 1
 * and points name/value into buf (not NUL-terminated), 0 at the end, -1 if
 * the field is malformed.
 */
int record_headers_next(const char *buf, size_t len, size_t *pos,
                        const char **name, size_t *namelen,
                        const char **value, size_t *valuelen);

/* "201" -> 201; -1 unless a 3-digit status 100..599 */
int record_status_parse(const char *s, size_t len);

/* ---- the operations on a record, as Redis commands ---- */

enum record_op {
    RECORD_CLAIM,      /* claim the key, or fetch what holds it */
    RECORD_COMPLETE,   /* store the answer (owner only) */
    RECORD_UNSTORED,   /* mark "executed, answer not stored" (owner only) */
    RECORD_RELEASE,    /* delete the claim (owner only) */
    RECORD_INSPECT,    /* the admin API: the record's fields */
    RECORD_FORGET,     /* the admin API: delete it */
    RECORD_OPS
};

/* The Lua source of op's script (static). */
const char *record_script(enum record_op op);
/* Its name for logs and metrics: "claim", "complete", ... */
const char *record_op_name(enum record_op op);
/* 1 for the writes replicas_ack waits for: a claim that took the key, a
 * stored answer, an "unstored" mark. */
int record_op_acked(enum record_op op);

/*
 * A claim as its owner knows it, what finishes it (complete, unstored,
 * release) again: the token, the request's fingerprint, when it was
 * claimed, and which layout the claim wrote. A string record is still the
 * owner's claim while its value is exactly "2 i <token> <fp> <created>\n"
 * (Redis compares the whole value: no parsing in Lua); a hash while its
 * owner field is the token.
 */
struct record_claim {
    char token[33];
    char fp[33];
    int64_t created_ms;
    enum record_layout layout;
};

/* room for a claim's value: "2 i " token, fp, created and "\n" */
#define RECORD_CLAIM_VALUE_MAX 96

/*
 * The arguments of op's script, after the script itself: numkeys, the
 * record's key, then ARGV, appended to b (in the claim's layout for the
 * three that finish a claim). 0, or -1 out of memory.
 * record_args_complete leaves room for the body (body_len bytes) and
 * stores its offset in b->p in *body_at, for the caller to copy it in.
 */
int record_args_claim(struct resp_buf *b, const char *rkey, const char *token,
                      const char *fp, int64_t lease_ms, int64_t now_ms);
int record_args_complete(struct resp_buf *b, const char *rkey, const struct record_claim *cl,
                         int status, const char *headers, size_t hlen,
                         size_t body_len, int64_t ttl_ms, size_t *body_at);
int record_args_unstored(struct resp_buf *b, const char *rkey, const struct record_claim *cl,
                         int64_t ttl_ms);
int record_args_release(struct resp_buf *b, const char *rkey, const struct record_claim *cl);
/* inspect and forget: the key alone */
int record_args_key(struct resp_buf *b, const char *rkey);

/*
 * Layout 2's claim, a command of its own (not a script): SET rkey
 * "2 i <token> <fp> <created>\n" NX GET PX lease_ms, the whole command (its
 * name first) into b. A key of layout 1 answers it WRONGTYPE: then the
 * claim script (RECORD_CLAIM) reads it. 0, or -1 out of memory.
 */
int record_cmd_claim_string(struct resp_buf *b, const char *rkey,
                            const struct record_claim *cl, int64_t lease_ms);

/* What an operation's answer means. */
enum record_kind {
    RK_BAD,            /* not an answer this operation gives: err */
    RK_CLAIMED,        /* claim: the key is ours now */
    RK_DONE,           /* claim: a completed record (status, headers, body) */
    RK_INFLIGHT,       /* claim: another request holds it (pttl_ms) */
    RK_MISMATCH,       /* claim: the record has another fingerprint */
    RK_UNSTORED,       /* claim: executed, answer not stored */
    RK_UNREADABLE,     /* claim, inspect: a record this version cannot use: err */
    RK_OK,             /* complete/unstored/release/forget: done */
    RK_LOST,           /* complete/unstored/release: not the owner; forget: none */
    RK_RECORD,         /* inspect: the record's fields */
    RK_NONE            /* inspect: no such record */
};

/* Pointers into the reply: valid while it is. */
struct record_reply {
    enum record_kind kind;
    int status;
    const char *headers; size_t headers_len;
    const char *body; size_t body_len;
    long long pttl_ms;
    const char *err;
    /* inspect; and a layout-2 record in flight: when it was claimed
     * (pttl_ms is then -1: SET GET does not tell) */
    int version;
    const char *state;
    long long created_ms;
    char fp[33];                   /* its fingerprint (a copy: the struct may be copied) */
};

/*
 * Read op's answer r (not an error reply: the caller handles those). fp:
 * the claiming request's fingerprint (a layout-2 record is compared with
 * it here; layout 1's script compares it in Redis).
 */
void record_decode(enum record_op op, const struct redisReply *r, const char *fp,
                   struct record_reply *out);
/* The answer to record_cmd_claim_string: nil (claimed) or the record. */
void record_decode_string_claim(const struct redisReply *r, const char *fp,
                                struct record_reply *out);
/* A layout-2 record v[0..n) as a claim's answer for fingerprint fp. */
void record_decode_string(const char *v, size_t n, const char *fp, struct record_reply *out);

#endif
