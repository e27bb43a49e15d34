/*
 * key: the Idempotency-Key header, the scope, the fingerprint and the Redis
 * key name of a record. Pure functions; no sockets.
 */
#ifndef IDEM_KEY_H
#define IDEM_KEY_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "config.h"
#include "h1.h"

enum key_status { KEY_OK, KEY_EMPTY, KEY_TOO_LONG, KEY_BAD_BYTES };

/*
 * Validate a raw header value and write the key to out (NUL-terminated,
 * outsize >= maxlen + 1). A structured-field string "abc" (with \" and \\
 * escapes) is the same key as abc. Bytes must be printable ASCII 0x20-0x7e.
 */
enum key_status key_parse(const char *raw, size_t maxlen, char *out,
                          size_t outsize, size_t *outlen);

/*
 * Scope from a top-level field of a parsed JSON object: a string, or an
 * integer written in decimal. Returns 0 and writes out, -1 if missing or of
 * another type.
 */
int key_scope_json(const json_t *body, const char *field, char *out,
                   size_t outsize);

/* A 128-bit fingerprint, built incrementally. */
struct fp { uint64_t lo, hi; };
struct fp_state;   /* opaque, XXH3 state */
struct fp_state *fp_new(void);
void fp_free(struct fp_state *s);
void fp_reset(struct fp_state *s);
/* Each field is length-prefixed, so ("ab","c") and ("a","bc") differ. */
void fp_field(struct fp_state *s, const void *data, size_t len);
/* Absent (NULL) differs from empty. */
void fp_field_opt(struct fp_state *s, const char *str);
struct fp fp_digest(struct fp_state *s);
/* 32 lowercase hex digits + NUL */
void fp_hex(struct fp f, char out[33]);

/*
 * The Redis key of (route, scope, key): "<prefix>{<32 hex>}", hash-tagged
 * for Redis Cluster. Returns the length written (NUL-terminated), or -1 if
 * outsize is too small. hash_out (33 bytes), if not NULL, gets the hex hash:
 * that is what logs show, never the key.
 */
int key_record_name(const char *prefix, const char *route, const char *scope,
                    const char *key, size_t keylen, char *out, size_t outsize,
                    char hash_out[33]);

/* What a request's fingerprint and scope are taken from. */
struct key_req {
    const char *method;            /* as sent: "POST" */
    size_t method_len;
    const char *target;            /* as sent: "/v1/orders?x=1" */
    const struct h1_header *h;     /* its header fields */
    int nh;
    const char *body;              /* the whole body */
    size_t body_len;
};

enum key_req_rc {
    KEY_REQ_OK,
    KEY_REQ_NOMEM,                 /* out of memory */
    KEY_REQ_BAD_JSON,              /* the route reads JSON and this is not */
    KEY_REQ_TWO_SCOPES,            /* the scope header is there twice */
    KEY_REQ_NO_SCOPE               /* the scope is missing, empty or too long */
};

/*
 * The scope of a request on route rt (into scope[scope_size]: the header's
 * value, the JSON field's, or "" with scope = none) and its fingerprint
 * (32 hex digits into fp): XXH3-128 of the method, the target as sent, the
 * scope, each of the route's fingerprint_headers (every value of it, in
 * order, joined by ", "; absent differs from empty) and the body, raw or
 * in canonical JSON. s is a reusable hashing state.
 */
enum key_req_rc key_request(struct fp_state *s, const struct route *rt,
                            const struct key_req *in, char *scope, size_t scope_size,
                            char fp[33]);

/*
 * The first value of header `name` (case-insensitive) in h[0..nh), or
 * NULL; *count: how many times it is there.
 */
const char *key_header(const struct h1_header *h, int nh, const char *name, int *count);

#endif
