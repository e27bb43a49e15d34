/*
 * key: owns the Idempotency-Key header parsing (structured-field string
 * unquoting, length and byte checks), the scope taken from a JSON body, the
 * XXH3-128 request fingerprint and the Redis key name of a record.
 * Pure functions; no sockets, no globals.
 */
#include "key.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "jcanon.h"
#define XXH_STATIC_LINKING_ONLY     /* XXH3_state_t on the stack */
#include <xxhash.h>

struct fp_state {
    XXH3_state_t *st;
};

static int key_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

enum key_status key_parse(const char *raw, size_t maxlen, char *out,
                          size_t outsize, size_t *outlen)
{
    size_t b = 0, e, n = 0, i;
    int quoted = 0;

    if (outlen)
        *outlen = 0;
    if (out && outsize > 0)
        out[0] = '\0';
    if (!raw)
        return KEY_EMPTY;
    e = strlen(raw);
    while (b < e && key_is_ows(raw[b]))
        b++;
    while (e > b && key_is_ows(raw[e - 1]))
        e--;

    /* pass 1: structure and unquoted length */
    if (b < e && raw[b] == '"') {
        quoted = 1;
        if (e - b < 2 || raw[e - 1] != '"')
            return KEY_BAD_BYTES;
        for (i = b + 1; i < e - 1; i++) {
            if (raw[i] == '\\') {
                if (i + 1 >= e - 1 || (raw[i + 1] != '"' && raw[i + 1] != '\\'))
                    return KEY_BAD_BYTES;
                i++;
            } else if (raw[i] == '"') {
                return KEY_BAD_BYTES; /* closing quote before the end */
            }
            n++;
        }
        b++;
        e--;
    } else {
        n = e - b;
    }

    if (n == 0)
        return KEY_EMPTY;
    if (n > maxlen || !out || n + 1 > outsize)
        return KEY_TOO_LONG;

    /* pass 2: copy, checking bytes */
    n = 0;
    for (i = b; i < e; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (quoted && c == '\\')
            c = (unsigned char)raw[++i];
        if (c < 0x20 || c > 0x7e) {
            out[0] = '\0';
            return KEY_BAD_BYTES;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    if (outlen)
        *outlen = n;
    return KEY_OK;
}

int key_scope_json(const json_t *body, const char *field, char *out,
                   size_t outsize)
{
    const json_t *v;
    int w;

    if (!body || !field || !out || outsize == 0 || !json_is_object(body))
        return -1;
    v = json_object_get(body, field);
    if (json_is_string(v)) {
        size_t l = json_string_length(v);
        if (l + 1 > outsize)
            return -1;
        memcpy(out, json_string_value(v), l);
        out[l] = '\0';
        return 0;
    }
    if (json_is_integer(v)) {
        w = snprintf(out, outsize, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        if (w < 0 || (size_t)w >= outsize) {
            out[0] = '\0';
            return -1;
        }
        return 0;
    }
    return -1;
}

struct fp_state *fp_new(void)
{
    struct fp_state *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->st = XXH3_createState();
    if (!s->st) {
        free(s);
        return NULL;
    }
    XXH3_128bits_reset(s->st);
    return s;
}

void fp_free(struct fp_state *s)
{
    if (!s)
        return;
    XXH3_freeState(s->st);
    free(s);
}

void fp_reset(struct fp_state *s)
{
    XXH3_128bits_reset(s->st);
}

static void fp_len(struct fp_state *s, uint64_t len)
{
    unsigned char b[8];
    int i;
    for (i = 0; i < 8; i++)
        b[i] = (unsigned char)(len >> (8 * i));
    XXH3_128bits_update(s->st, b, sizeof(b));
}

void fp_field(struct fp_state *s, const void *data, size_t len)
{
    fp_len(s, (uint64_t)len);
    if (len > 0)
        XXH3_128bits_update(s->st, data, len);
}

void fp_field_opt(struct fp_state *s, const char *str)
{
    if (!str)
        fp_len(s, UINT64_MAX); /* absent marker; no field is that long */
    else
        fp_field(s, str, strlen(str));
}

struct fp fp_digest(struct fp_state *s)
{
    XXH128_hash_t h = XXH3_128bits_digest(s->st);
    struct fp f = { h.low64, h.high64 };
    return f;
}

void fp_hex(struct fp f, char out[33])
{
    static const char digit[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = digit[(f.hi >> (60 - 4 * i)) & 0xf];
        out[16 + i] = digit[(f.lo >> (60 - 4 * i)) & 0xf];
    }
    out[32] = '\0';
}

int key_record_name(const char *prefix, const char *route, const char *scope,
                    const char *key, size_t keylen, char *out, size_t outsize,
                    char hash_out[33])
{
    XXH3_state_t st;            /* once per request: not from the heap */
    struct fp_state s = { &st };
    char hex[33];

    if (!out || !key)
        return -1;
    XXH3_INITSTATE(&st);
    XXH3_128bits_reset(&st);
    fp_field_opt(&s, route ? route : "");
    fp_field_opt(&s, scope);
    fp_field(&s, key, keylen);
    fp_hex(fp_digest(&s), hex);

    if (hash_out)
        memcpy(hash_out, hex, 33);
    size_t plen = prefix ? strlen(prefix) : 0;
    if (plen + 34 >= outsize) {     /* prefix, {, 32 hex, }, NUL */
        if (outsize > 0)
            out[0] = '\0';
        return -1;
    }
    if (plen > 0)
        memcpy(out, prefix, plen);
    out[plen] = '{';
    memcpy(out + plen + 1, hex, 32);
    out[plen + 33] = '}';
    out[plen + 34] = '\0';
    return (int)(plen + 34);
}

const char *key_header(const struct h1_header *h, int nh, const char *name, int *count)
{
    const char *first = NULL;
    size_t len = strlen(name);
    int n = 0;
    for (int i = 0; i < nh; i++)
        if (h[i].name_len == len && strncasecmp(h[i].name, name, len) == 0 && n++ == 0)
            first = h[i].value;
    if (count != NULL)
        *count = n;
    return first;
}

/* Every value of a fingerprinted header, joined as one list (RFC 9110
 * 5.3); one value as it is, an absent header as absent. -1: no memory. */
static int fp_header(struct fp_state *s, const struct key_req *in, const char *name)
{
    int n;
    const char *first = key_header(in->h, in->nh, name, &n);
    if (n <= 1) {
        fp_field_opt(s, first);
        return 0;
    }
    size_t total = 0;
    for (int i = 0; i < in->nh; i++)
        if (strcasecmp(in->h[i].name, name) == 0)
            total += in->h[i].value_len + 2;
    char *list = malloc(total);
    if (list == NULL)
        return -1;
    size_t at = 0;
    for (int i = 0; i < in->nh; i++)
        if (strcasecmp(in->h[i].name, name) == 0) {
            if (at > 0) {
                memcpy(list + at, ", ", 2);
                at += 2;
            }
            memcpy(list + at, in->h[i].value, in->h[i].value_len);
            at += in->h[i].value_len;
        }
    fp_field(s, list, at);
    free(list);
    return 0;
}

/* The scope from the body's JSON or a header into scope[size]. */
static enum key_req_rc req_scope(const struct route *rt, const struct key_req *in,
                                 char *scope, size_t size)
{
    scope[0] = '\0';
    if (rt->scope == SCOPE_JSON) {
        json_error_t jerr;
        json_t *doc = json_loadb(in->body, in->body_len, JSON_DECODE_ANY, &jerr);
        if (doc == NULL)
            return KEY_REQ_BAD_JSON;
        int rc = json_is_object(doc) ? key_scope_json(doc, rt->scope_name, scope, size) : -1;
        json_decref(doc);
        return rc == 0 ? KEY_REQ_OK : KEY_REQ_NO_SCOPE;
    }
    if (rt->scope == SCOPE_HEADER) {
        int n;
        const char *v = key_header(in->h, in->nh, rt->scope_name, &n);
        /* twice: which one is the tenant? the upstream may read the other
         * (or both, joined): refused, as two Idempotency-Keys are */
        if (n > 1)
            return KEY_REQ_TWO_SCOPES;
        size_t vl = v != NULL ? strlen(v) : 0;
        if (vl == 0 || vl >= size)
            return KEY_REQ_NO_SCOPE;
        memcpy(scope, v, vl + 1);
    }
    return KEY_REQ_OK;
}

enum key_req_rc key_request(struct fp_state *s, const struct route *rt,
                            const struct key_req *in, char *scope, size_t scope_size,
                            char fp[33])
{
    int canon = rt->fingerprint_body == FP_BODY_JSON;
    struct jcanon jc;
    const char *body = in->body_len ? in->body : "";
    if (canon) {
        int jrc = jcanon(&jc, body, in->body_len);
        if (jrc != JCANON_OK) {
            jcanon_done(&jc);
            return jrc == JCANON_NOMEM ? KEY_REQ_NOMEM : KEY_REQ_BAD_JSON;
        }
    }
    enum key_req_rc rc = req_scope(rt, in, scope, scope_size);
    if (rc == KEY_REQ_OK) {
        char m[16];
        /* the method as its number in lib/http.c's table: what the first
         * versions hashed, so records stored before stay replayable */
        const struct http_method *hm = http_method_named(in->method, in->method_len);
        int ml = snprintf(m, sizeof(m), "%u", hm != NULL ? hm->fp : 0u);
        fp_reset(s);
        fp_field(s, m, (size_t)ml);
        fp_field(s, in->target, strlen(in->target));
        fp_field(s, scope, strlen(scope));
        for (int i = 0; i < rt->n_fp_headers && rc == KEY_REQ_OK; i++)
            if (fp_header(s, in, rt->fp_headers[i]) != 0)
                rc = KEY_REQ_NOMEM;
        if (rc == KEY_REQ_OK) {
            if (canon)
                fp_field(s, jc.text, jc.len);
            else
                fp_field(s, body, in->body_len);
            fp_hex(fp_digest(s), fp);
        }
    }
    if (canon)
        jcanon_done(&jc);
    return rc;
}
