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
