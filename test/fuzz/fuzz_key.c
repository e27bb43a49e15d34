/*
 * fuzz_key: the Idempotency-Key header, the JSON scope and the record name
 * (lib/key.c) on arbitrary bytes.
 *
 * Input: byte 0 picks key_max_length (1..1024) and byte 1 the size of the
 * output buffers, the rest is split at NUL bytes into fields:
 *   key_parse       field 0 is the raw header value;
 *   key_scope_json  field 0 is the JSON field name, the bytes after the first
 *                   NUL the JSON body (parsed as the proxy does);
 *   key_record_name fields 0..3 are prefix, route, scope and key.
 * Output buffers are malloc'ed at their exact size, so AddressSanitizer sees
 * any write past the size the function was given.
 * Properties:
 *  - key_parse: KEY_OK gives 1..maxlen printable ASCII bytes, NUL-terminated,
 *    outlen = strlen(out); an unquoted value gives itself minus surrounding
 *    SP/HT; a key sent again as a structured-field string ("..." with \" and
 *    \\) gives the same key; any other status leaves out empty.
 *  - key_scope_json: 0 only for a string or integer field that fits, and out
 *    then holds exactly that string or that integer in decimal.
 *  - key_record_name: "<prefix>{<32 lowercase hex>}", its length returned,
 *    hash_out = the hex, the same hash again for the same input, -1 exactly
 *    when the buffer is too small.
 */
#include "fuzz.h"
#include "key.h"

#include <stdlib.h>
#include <string.h>

/* The fields of the input: pointers into a NUL-terminated copy. */
struct fuzz_fields {
    char *copy;
    const char *f[4];
    size_t len[4];
    const char *json;   /* after the first NUL */
    size_t jsonlen;
};

static void fuzz_split(const uint8_t *data, size_t size, struct fuzz_fields *ff)
{
    ff->copy = malloc(size + 1);
    if (!ff->copy)
        abort();
    memcpy(ff->copy, data, size);
    ff->copy[size] = '\0';
    size_t p = 0;
    for (int i = 0; i < 4; i++) {
        ff->f[i] = ff->copy + p;
        ff->len[i] = strlen(ff->copy + p);
        p += ff->len[i];
        if (p < size)
            p++;       /* skip the NUL */
    }
    size_t j = strlen(ff->copy);
    ff->json = j < size ? ff->copy + j + 1 : ff->copy + size;
    ff->jsonlen = j < size ? size - j - 1 : 0;
}

static int fuzz_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void fuzz_key_parse(const char *raw, size_t rawlen, size_t maxlen, size_t outsize)
{
    char *out = malloc(outsize);
    size_t outlen = 12345;
    if (!out)
        abort();
    enum key_status st = key_parse(raw, maxlen, out, outsize, &outlen);
    if (st != KEY_OK) {
        FUZZ_CHECK(st == KEY_EMPTY || st == KEY_TOO_LONG || st == KEY_BAD_BYTES);
        FUZZ_CHECK(outlen == 0 && out[0] == '\0');
        free(out);
        return;
    }
    FUZZ_CHECK(outlen >= 1 && outlen <= maxlen && outlen < outsize);
    FUZZ_CHECK(memchr(out, '\0', outsize) != NULL && strlen(out) == outlen);
    for (size_t i = 0; i < outlen; i++)
        FUZZ_CHECK(out[i] >= 0x20 && out[i] <= 0x7e);

    size_t b = 0, e = rawlen;
    while (b < e && fuzz_is_ows(raw[b]))
        b++;
    while (e > b && fuzz_is_ows(raw[e - 1]))
        e--;
    if (raw[b] != '"')
        FUZZ_CHECK(e - b == outlen && memcmp(raw + b, out, outlen) == 0);

    /* The same key as a structured-field string parses to itself. */
    char *q = malloc(2 * outlen + 3), *again = malloc(outsize);
    size_t n = 0, againlen;
    if (!q || !again)
        abort();
    q[n++] = '"';
    for (size_t i = 0; i < outlen; i++) {
        if (out[i] == '"' || out[i] == '\\')
            q[n++] = '\\';
        q[n++] = out[i];
    }
    q[n++] = '"';
    q[n] = '\0';
    FUZZ_CHECK(key_parse(q, maxlen, again, outsize, &againlen) == KEY_OK);
    FUZZ_CHECK(againlen == outlen && memcmp(again, out, outlen + 1) == 0);
    free(q);
    free(again);
    free(out);
}

static void fuzz_scope_json(const char *field, const char *json, size_t jsonlen,
                            size_t outsize)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, jsonlen, JSON_DECODE_ANY, &jerr);
    if (!doc)
        return;
    char *out = malloc(outsize);
    if (!out)
        abort();
    int rc = key_scope_json(doc, field, out, outsize);
    json_t *v = json_is_object(doc) ? json_object_get(doc, field) : NULL;
    if (rc == 0) {
        FUZZ_CHECK(json_is_string(v) || json_is_integer(v));
        FUZZ_CHECK(memchr(out, '\0', outsize) != NULL);
        if (json_is_string(v)) {
            FUZZ_CHECK(json_string_length(v) < outsize &&
                       memcmp(out, json_string_value(v), json_string_length(v) + 1) == 0);
        } else {
            char *end;
            long long n = strtoll(out, &end, 10);
            FUZZ_CHECK(*end == '\0' && n == (long long)json_integer_value(v));
        }
    } else {
        FUZZ_CHECK(rc == -1);
        /* Refused: missing, another type, or too long for out. */
        if (json_is_string(v))
            FUZZ_CHECK(json_string_length(v) + 1 > outsize);
        else if (json_is_integer(v)) {
            char num[32];
            int w = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            FUZZ_CHECK((size_t)w >= outsize);
        }
    }
    free(out);
    json_decref(doc);
}

static int fuzz_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void fuzz_record_name(const struct fuzz_fields *ff, size_t outsize)
{
    const char *prefix = ff->f[0], *route = ff->f[1], *scope = ff->f[2];
    const char *key = ff->f[3];
    size_t keylen = ff->len[3];
    char *out = malloc(outsize), hash[33], hash2[33];
    if (!out)
        abort();
    size_t need = ff->len[0] + 34;   /* prefix { 32 hex } */
    int w = key_record_name(prefix, route, scope, key, keylen, out, outsize, hash);
    if (need + 1 > outsize) {
        FUZZ_CHECK(w == -1);
        FUZZ_CHECK(outsize == 0 || out[0] == '\0');
    } else {
        FUZZ_CHECK(w >= 0 && (size_t)w == need && strlen(out) == need);
        FUZZ_CHECK(memcmp(out, prefix, ff->len[0]) == 0);
        FUZZ_CHECK(out[ff->len[0]] == '{' && out[need - 1] == '}');
        FUZZ_CHECK(fuzz_is_hex(out + ff->len[0] + 1, 32));
        FUZZ_CHECK(hash[32] == '\0' && memcmp(hash, out + ff->len[0] + 1, 32) == 0);
    }
    /* The hash depends only on (route, scope, key), not on the buffer. */
    char *big = malloc(need + 1);
    if (!big)
        abort();
    FUZZ_CHECK(key_record_name(prefix, route, scope, key, keylen, big, need + 1,
                               hash2) == (int)need);
    if (need + 1 <= outsize)
        FUZZ_CHECK(memcmp(hash, hash2, 33) == 0);
    /* No scope (NULL) is not the empty scope. */
    char h3[33];
    FUZZ_CHECK(key_record_name(prefix, route, NULL, key, keylen, big, need + 1,
                               h3) == (int)need);
    FUZZ_CHECK(memcmp(h3, hash2, 32) != 0);
    free(big);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 2048)
        return 0;
    size_t maxlen = 1 + (size_t)data[0] * 4;           /* 1..1021 */
    size_t outsize = (size_t)data[1] * 5;               /* 0..1275 */
    struct fuzz_fields ff;
    fuzz_split(data + 2, size - 2, &ff);

    if (outsize > 0)    /* key_parse needs somewhere to write the NUL */
        fuzz_key_parse(ff.f[0], ff.len[0], maxlen, outsize);
    fuzz_key_parse(ff.f[0], ff.len[0], maxlen, maxlen + 1);  /* what the proxy gives */
    if (outsize > 0)
        fuzz_scope_json(ff.f[0], ff.json, ff.jsonlen, outsize);
    fuzz_record_name(&ff, outsize);
    free(ff.copy);
    return 0;
}
