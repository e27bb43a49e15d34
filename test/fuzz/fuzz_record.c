/*
 * fuzz_record: the stored-answer layout (lib/record.c) on arbitrary bytes.
 * The headers field comes back from Redis, so the decoder must take anything.
 *
 * Properties:
 *  - record_headers_next walks the input without reading outside it: each
 *    pair lies inside the buffer, the name is non-empty with no ':', CR, LF
 *    or NUL, the value has no CR, LF or NUL and no leading SP/HT, and the
 *    position only moves forward, to the end (0) or to an error (-1);
 *  - round trip: the pairs decoded, encoded again with record_headers_add,
 *    decode to the same pairs, and encoding those gives the same bytes;
 *  - encoder: the input read as NUL-separated name, value, name, value...
 *    is refused by record_headers_add exactly for an empty name, CR/LF/':'
 *    in the name, CR/LF in the value, or no room; what it accepts decodes to
 *    the same name and value (leading SP/HT of a value dropped: HTTP field
 *    values have none);
 *  - record_status_parse and record_header_stored agree
 *    with simple reference definitions;
 *  - record_decode_string (a layout-2 record, as SET GET returns it) reads
 *    any bytes without leaving them: a record it accepts has its headers
 *    and body inside the input, end to end, a valid status when done, a
 *    32-character fingerprint, and a kind that agrees with the state and
 *    the fingerprint it was given.
 */
#include "fuzz.h"
#include "record.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_MAX_PAIRS 512

struct fuzz_pair {
    const char *name, *value;
    size_t nl, vl;
};

/* Decodes buf fully into p (at most FUZZ_MAX_PAIRS); returns the count, or -1
 * if the field is malformed (the pairs before the error are in p). */
static int fuzz_decode(const char *buf, size_t len, struct fuzz_pair *p, int *n)
{
    size_t pos = 0;
    *n = 0;
    for (;;) {
        size_t before = pos;
        struct fuzz_pair x;
        int rc = record_headers_next(buf, len, &pos, &x.name, &x.nl, &x.value, &x.vl);
        if (rc == 0) {
            FUZZ_CHECK(pos == len && before == len);
            return *n;
        }
        if (rc < 0) {
            FUZZ_CHECK(rc == -1 && pos == before);
            return -1;
        }
        FUZZ_CHECK(rc == 1 && pos > before && pos <= len);
        FUZZ_CHECK(x.name == buf + before && x.nl > 0);
        FUZZ_CHECK(x.value >= x.name + x.nl + 1 && x.value + x.vl + 2 == buf + pos);
        FUZZ_CHECK(buf[pos - 2] == '\r' && buf[pos - 1] == '\n');
        FUZZ_CHECK(x.name[x.nl] == ':');
        for (size_t i = 0; i < x.nl; i++)
            FUZZ_CHECK(!strchr(":\r\n", x.name[i]) && x.name[i] != '\0');
        for (size_t i = 0; i < x.vl; i++)
            FUZZ_CHECK(x.value[i] != '\r' && x.value[i] != '\n' && x.value[i] != '\0');
        FUZZ_CHECK(x.vl == 0 || (x.value[0] != ' ' && x.value[0] != '\t'));
        if (*n < FUZZ_MAX_PAIRS)
            p[(*n)++] = x;
        else
            return *n;          /* enough to compare */
    }
}

/* Encodes pairs with record_headers_add into a new buffer of exactly cap. */
static char *fuzz_encode(const struct fuzz_pair *p, int n, size_t cap, size_t *len)
{
    char *buf = malloc(cap ? cap : 1);
    if (!buf)
        abort();
    *len = 0;
    for (int i = 0; i < n; i++) {
        char *name = strndup(p[i].name, p[i].nl), *value = strndup(p[i].value, p[i].vl);
        if (!name || !value)
            abort();
        FUZZ_CHECK(record_headers_add(buf, cap, len, name, value) == 0);
        free(name);
        free(value);
    }
    return buf;
}

static void fuzz_roundtrip(const uint8_t *data, size_t size)
{
    static struct fuzz_pair a[FUZZ_MAX_PAIRS], b[FUZZ_MAX_PAIRS];
    int na, nb;
    /* an exact-size heap copy: a read past the end is an ASan report */
    char *in = malloc(size ? size : 1);
    if (!in)
        abort();
    memcpy(in, data, size);
    fuzz_decode(in, size, a, &na);

    size_t cap = 0, len, len2;
    for (int i = 0; i < na; i++)
        cap += a[i].nl + 2 + a[i].vl + 2;
    char *enc = fuzz_encode(a, na, cap, &len);
    FUZZ_CHECK(len == cap);
    FUZZ_CHECK(fuzz_decode(enc, len, b, &nb) == na && nb == na);
    for (int i = 0; i < na; i++) {
        FUZZ_CHECK(a[i].nl == b[i].nl && memcmp(a[i].name, b[i].name, a[i].nl) == 0);
        FUZZ_CHECK(a[i].vl == b[i].vl && memcmp(a[i].value, b[i].value, a[i].vl) == 0);
    }
    char *enc2 = fuzz_encode(b, nb, cap, &len2);
    FUZZ_CHECK(len2 == len && memcmp(enc, enc2, len) == 0);
    free(enc2);
    free(enc);
    free(in);
}

/* The input as NUL-separated name, value pairs, through the encoder. */
static void fuzz_encoder(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    size_t cap = (size_t)data[0] * 4;
    char *copy = malloc(size), *buf = malloc(cap ? cap : 1);
    if (!copy || !buf)
        abort();
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    size_t len = 0, pos = 0;
    const char *p = copy, *end = copy + size - 1;
    while (p < end) {
        const char *name = p;
        const char *value = name + strlen(name) + 1;
        if (value > end)
            value = end;          /* the terminating NUL: an empty value */
        p = value + strlen(value) + 1;
        size_t nl = strlen(name), vl = strlen(value), before = len;
        int bad = nl == 0 || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n");
        int fits = nl + vl + 4 <= cap - len;
        int rc = record_headers_add(buf, cap, &len, name, value);
        if (bad || !fits) {
            FUZZ_CHECK(rc == -1 && len == before);
            continue;
        }
        FUZZ_CHECK(rc == 0 && len == before + nl + vl + 4);
        const char *dn, *dv;
        size_t dnl, dvl;
        FUZZ_CHECK(record_headers_next(buf, len, &pos, &dn, &dnl, &dv, &dvl) == 1);
        FUZZ_CHECK(pos == len);
        size_t skip = strspn(value, " \t");
        FUZZ_CHECK(dnl == nl && memcmp(dn, name, nl) == 0);
        FUZZ_CHECK(dvl == vl - skip && memcmp(dv, value + skip, dvl) == 0);
    }
    FUZZ_CHECK(record_headers_next(buf, len, &pos, NULL, NULL, NULL, NULL) == 0);
    free(buf);
    free(copy);
}

static void fuzz_small_parsers(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    int st = record_status_parse(s, size);
    if (size == 3 && s[0] >= '1' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' &&
        s[2] >= '0' && s[2] <= '9')
        FUZZ_CHECK(st == (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0'));
    else
        FUZZ_CHECK(st == -1);

    char *name = strndup(s, size);
    if (!name)
        abort();
    static const char *const dropped[] = {
        "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Date", "Content-Length",
        "Idempotent-Replayed",     /* idemproxy says its own; an upstream's is not stored */
    };
    int drop = name[0] == '\0';
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        drop |= strcasecmp(name, dropped[i]) == 0;
    int cookie = strcasecmp(name, "Set-Cookie") == 0;
    FUZZ_CHECK(record_header_stored(name, 0) == !(drop || cookie));
    FUZZ_CHECK(record_header_stored(name, 1) == !drop);
    free(name);
}

static void fuzz_string_record(const uint8_t *data, size_t size)
{
    static const char fp[] = "0123456789abcdef0123456789abcdef";
    const char *v = (const char *)data;
    for (int withfp = 0; withfp < 2; withfp++) {
        struct record_reply rr;
        memset(&rr, 0, sizeof(rr));
        record_decode_string(v, size, withfp ? fp : NULL, &rr);
        if (rr.kind == RK_UNREADABLE) {
            FUZZ_CHECK(rr.err != NULL);
            continue;
        }
        FUZZ_CHECK(size >= 4 && v[0] == '2' && v[1] == ' ');
        FUZZ_CHECK(strlen(rr.fp) == 32);
        if (rr.body != NULL) {
            FUZZ_CHECK(rr.headers >= v && rr.headers + rr.headers_len == rr.body);
            FUZZ_CHECK(rr.body + rr.body_len == v + size);
            FUZZ_CHECK(rr.status >= 100 && rr.status <= 599);
            FUZZ_CHECK(v[2] == 'd');
        }
        if (!withfp) {
            FUZZ_CHECK(rr.kind == RK_RECORD);
        } else if (memcmp(rr.fp, fp, 32) != 0) {
            FUZZ_CHECK(rr.kind == RK_MISMATCH);
        } else {
            FUZZ_CHECK(rr.kind == (v[2] == 'd' ? RK_DONE : v[2] == 'i' ? RK_INFLIGHT
                                                                      : RK_UNSTORED));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_string_record(data, size);
    fuzz_roundtrip(data, size);
    fuzz_encoder(data, size);
    fuzz_small_parsers(data, size);
    return 0;
}
