/*
 * jcanon.c: canonical JSON text in one pass (see jcanon.h).
 *
 * The parser writes each value's canonical text as it reads it (into buf).
 * An object's members are written in the order they come, each remembered
 * with its decoded key. If the keys were not already in strictly increasing
 * order, the object is remembered with its members' pieces of text in key
 * order, a repeated key keeping its last value (as json_object_set does).
 * When any object was, the text is written once more (into out), each such
 * object with its members in that order: every byte is copied once however
 * deep the objects nest.
 *
 * What is accepted follows jansson's lexer (load.c): white space is space,
 * tab, CR and LF; strings hold valid UTF-8 and no control characters, their
 * escapes are JSON's, a \u escape may not be a lone surrogate or \u0000;
 * numbers have no leading zeros, an integer must fit in 64 bits, a real may
 * not overflow (it may underflow to 0); nesting is at most 2048 deep.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jcanon.h"

struct jp {
    const unsigned char *s, *end;
    struct jcanon *jc;
    int err;
};

static int fail(struct jp *p, int err)
{
    if (p->err == JCANON_OK)
        p->err = err;
    return -1;
}

/* Make room for need elements of size elem in *buf (capacity *cap),
 * which starts as the inline array fixed. */
static int grow(void **buf, size_t *cap, size_t need, size_t elem, void *fixed)
{
    size_t ncap = *cap;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 4 / elem)
            return -1;
        ncap *= 2;
    }
    void *nb;
    if (*buf == fixed) {
        nb = malloc(ncap * elem);
        if (nb != NULL)
            memcpy(nb, *buf, *cap * elem);
    } else {
        nb = realloc(*buf, ncap * elem);
    }
    if (nb == NULL)
        return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

/* b[0..n) at the end of *to (length *len, capacity *cap, inline fixed) */
static int append(struct jp *p, char **to, size_t *len, size_t *cap, char *fixed,
                  const void *b, size_t n)
{
    if (*len + n > *cap && grow((void **)to, cap, *len + n, 1, fixed) != 0)
        return fail(p, JCANON_NOMEM);
    memcpy(*to + *len, b, n);
    *len += n;
    return 0;
}

static int put(struct jp *p, const void *b, size_t n)
{
    struct jcanon *jc = p->jc;
    return append(p, &jc->buf, &jc->buf_len, &jc->buf_cap, jc->buf0, b, n);
}

static int put1(struct jp *p, char c)
{
    struct jcanon *jc = p->jc;
    if (jc->buf_len < jc->buf_cap) {
        jc->buf[jc->buf_len++] = c;
        return 0;
    }
    return put(p, &c, 1);
}

/* bytes of an object key as decoded, for sorting */
static int put_key(struct jp *p, const void *b, size_t n)
{
    struct jcanon *jc = p->jc;
    return append(p, &jc->keys, &jc->keys_len, &jc->keys_cap, jc->keys0, b, n);
}

static void skip_ws(struct jp *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* One or more digits at s: where they end, or NULL if there are none. */
static const unsigned char *digits(const unsigned char *s, const unsigned char *end)
{
    const unsigned char *from = s;
    while (s < end && is_digit(*s))
        s++;
    return s > from ? s : NULL;
}

/* Length of the valid UTF-8 sequence of two to four bytes at s, or 0. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *end)
{
    size_t n;
    uint32_t cp;
    if (*s >= 0xC2 && *s <= 0xDF) {
        n = 2;
        cp = *s & 0x1F;
    } else if (*s >= 0xE0 && *s <= 0xEF) {
        n = 3;
        cp = *s & 0x0F;
    } else if (*s >= 0xF0 && *s <= 0xF4) {
        n = 4;
        cp = *s & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
        (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
        return 0;
    return n;
}

static int hex4(const unsigned char *s, const unsigned char *end, uint32_t *out)
{
    uint32_t v = 0;
    if (end - s < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int c = s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* A code point from an escape, written as the canonical text writes it:
 * the short escapes, \u00XX for other control characters, else UTF-8. */
static int put_cp(struct jp *p, uint32_t cp, int is_key)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (is_key && put_key(p, u, n) != 0)
        return -1;
    if (cp >= 0x20 && cp != '"' && cp != '\\')
        return put(p, u, n);
    switch (cp) {
    case '"': return put(p, "\\\"", 2);
    case '\\': return put(p, "\\\\", 2);
    case '\b': return put(p, "\\b", 2);
    case '\f': return put(p, "\\f", 2);
    case '\n': return put(p, "\\n", 2);
    case '\r': return put(p, "\\r", 2);
    case '\t': return put(p, "\\t", 2);
    }
    static const char hex[] = "0123456789ABCDEF";
    char e[6] = { '\\', 'u', '0', '0', hex[cp >> 4], hex[cp & 0xF] };
    return put(p, e, 6);
}

/* The string at p->s (on its opening quote); is_key: also keep its
 * decoded bytes in jc->keys. */
static int jp_string(struct jp *p, int is_key)
{
    const unsigned char *s = p->s + 1, *end = p->end;
    if (put1(p, '"') != 0)
        return -1;
    for (;;) {
        const unsigned char *run = s;
        for (;;) {                  /* characters written as they are */
            if (s >= end)
                return fail(p, JCANON_INVALID);
            if (*s == '"' || *s == '\\' || *s < 0x20)
                break;
            if (*s < 0x80) {
                s++;
            } else {
                size_t k = utf8_seq(s, end);
                if (k == 0)
                    return fail(p, JCANON_INVALID);
                s += k;
            }
        }
        if (s > run) {
            if (put(p, run, (size_t)(s - run)) != 0 ||
                (is_key && put_key(p, run, (size_t)(s - run)) != 0))
                return -1;
        }
        if (*s == '"')
            break;
        if (*s < 0x20 || end - s < 2)
            return fail(p, JCANON_INVALID);   /* a raw control character */
        uint32_t cp;
        int c = s[1];
        s += 2;
        switch (c) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (hex4(s, end, &cp) != 0)
                return fail(p, JCANON_INVALID);
            s += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (end - s < 6 || s[0] != '\\' || s[1] != 'u' ||
                    hex4(s + 2, end, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, JCANON_INVALID);
                s += 6;
                cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
            } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
                return fail(p, JCANON_INVALID);   /* lone low surrogate; NUL */
            }
            break;
        default:
            return fail(p, JCANON_INVALID);
        }
        if (put_cp(p, cp, is_key) != 0)
            return -1;
    }
    p->s = s + 1;
    return put1(p, '"');
}

/* jansson reads one byte past a number or a literal and puts it back;
 * a NUL byte put back is lost (its stream buffer is NUL-terminated), so it
 * accepts "1\0" as 1. Kept: a body it accepted is accepted here too. */
static const unsigned char *skip_lookahead_nul(const unsigned char *s,
                                               const unsigned char *end)
{
    return s < end && *s == '\0' ? s + 1 : s;
}

/* A real as jansson 2.14 writes it: %.17g, ".0" added to what looks like an
 * integer, the exponent without '+' or leading zeros. */
static int put_real(struct jp *p, double v)
{
    char b[40];
    int n = snprintf(b, sizeof(b) - 2, "%.17g", v);
    if (n < 0 || n >= (int)sizeof(b) - 2)
        return fail(p, JCANON_INVALID);
    if (memchr(b, '.', (size_t)n) == NULL && memchr(b, 'e', (size_t)n) == NULL) {
        b[n++] = '.';
        b[n++] = '0';
        b[n] = '\0';
    }
    char *e = memchr(b, 'e', (size_t)n);
    if (e != NULL) {
        char *start = e + 1, *rest = start + 1;
        if (*start == '-')
            start++;
        while (*rest == '0')
            rest++;
        if (rest != start) {
            memmove(start, rest, (size_t)(n - (rest - b)));
            n -= (int)(rest - start);
        }
    }
    return put(p, b, (size_t)n);
}

/* noinline, like jp_sort_members: their buffers stay off the frames of the
 * nesting recursion (jp_value, jp_array, jp_object: 2048 deep) */
__attribute__((noinline)) static int jp_number(struct jp *p)
{
    const unsigned char *s = p->s, *end = p->end, *start = s;
    int neg = 0, real = 0;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    if (s < end && *s == '0') {
        s++;
        if (s < end && is_digit(*s))
            return fail(p, JCANON_INVALID);   /* a leading zero */
    } else if ((s = digits(s, end)) == NULL) {
        return fail(p, JCANON_INVALID);
    }
    if (s < end && *s == '.') {
        if ((s = digits(s + 1, end)) == NULL)
            return fail(p, JCANON_INVALID);
        real = 1;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < end && (*s == '+' || *s == '-'))
            s++;
        if ((s = digits(s, end)) == NULL)
            return fail(p, JCANON_INVALID);
        real = 1;
    }
    size_t n = (size_t)(s - start);
    p->s = skip_lookahead_nul(s, end);

    if (!real) {
        /* a 64-bit integer, written back as it came (no leading zeros, so
         * that is %lld), except -0 */
        size_t digits = n - (size_t)neg;
        if (digits > 19 || (digits == 19 &&
            memcmp(start + neg, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0))
            return fail(p, JCANON_INVALID);
        if (digits == 1 && start[neg] == '0')
            return put1(p, '0');
        return put(p, start, n);
    }

    char small[64], *b = small;
    if (n >= sizeof(small) && (b = malloc(n + 1)) == NULL)
        return fail(p, JCANON_NOMEM);
    memcpy(b, start, n);
    b[n] = '\0';
    errno = 0;
    double v = strtod(b, NULL);
    int overflow = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    if (b != small)
        free(b);
    if (overflow)
        return fail(p, JCANON_INVALID);
    return put_real(p, v);
}

static int jp_literal(struct jp *p)
{
    const unsigned char *s = p->s;
    while (s < p->end && ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        s++;
    size_t n = (size_t)(s - p->s);
    if (!((n == 4 && memcmp(p->s, "true", 4) == 0) ||
          (n == 5 && memcmp(p->s, "false", 5) == 0) ||
          (n == 4 && memcmp(p->s, "null", 4) == 0)))
        return fail(p, JCANON_INVALID);
    const unsigned char *w = p->s;
    p->s = skip_lookahead_nul(s, p->end);
    return put(p, w, n);
}

static int jp_value(struct jp *p);

/* At an array's or object's opening: it written, white space skipped.
 * 1: empty (its close read, not written); 0: an element follows; -1. */
static int jp_open(struct jp *p, char open, char close)
{
    p->s++;
    if (put1(p, open) != 0)
        return -1;
    skip_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        return 1;
    }
    return 0;
}

/* After an element: a ',' (written, white space after it skipped): 0,
 * another follows; the close (read, not written): 1; else -1. */
static int jp_next(struct jp *p, char close)
{
    skip_ws(p);
    if (p->s < p->end && *p->s == ',') {
        p->s++;
        if (put1(p, ',') != 0)
            return -1;
        skip_ws(p);
        return 0;
    }
    if (p->s < p->end && *p->s == close) {
        p->s++;
        return 1;
    }
    return fail(p, JCANON_INVALID);
}

static int jp_array(struct jp *p)
{
    int r = jp_open(p, '[', ']');
    while (r == 0) {
        if (jp_value(p) != 0)
            return -1;
        r = jp_next(p, ']');
    }
    return r < 0 ? -1 : put1(p, ']');
}

/* Key order: bytewise, then shorter first (jansson's compare_keys). */
static int key_cmp(const char *keys, const struct jc_member *a, const struct jc_member *b)
{
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int r = memcmp(keys + a->koff, keys + b->koff, n);
    if (r != 0)
        return r;
    return a->klen < b->klen ? -1 : a->klen > b->klen;
}

/* Key order; a repeated key's members in the order they came. */
static int member_cmp(const char *keys, const struct jc_member *a, const struct jc_member *b)
{
    int r = key_cmp(keys, a, b);
    if (r != 0)
        return r;
    return a->toff < b->toff ? -1 : a->toff > b->toff;
}

static int member_qcmp(const void *a, const void *b, void *keys)
{
    return member_cmp(keys, a, b);
}

/* The object at buf[open..close] (members m0.. of jc->mem) came out of key
 * order: remember it, with its members' texts sorted, each key once with
 * its last value. */
__attribute__((noinline)) static int jp_sort_members(struct jp *p, size_t open,
                                                     size_t close, size_t m0)
{
    struct jcanon *jc = p->jc;
    struct jc_member *m = jc->mem + m0;
    size_t count = jc->n_mem - m0;

    if (count <= 16) {
        for (size_t i = 1; i < count; i++) {
            struct jc_member x = m[i];
            size_t j = i;
            while (j > 0 && member_cmp(jc->keys, &x, &m[j - 1]) < 0) {
                m[j] = m[j - 1];
                j--;
            }
            m[j] = x;
        }
    } else {
        qsort_r(m, count, sizeof(*m), member_qcmp, jc->keys);
    }
    if (jc->n_obj == jc->obj_cap &&
        grow((void **)&jc->obj, &jc->obj_cap, jc->n_obj + 1, sizeof(*jc->obj), jc->obj0) != 0)
        return fail(p, JCANON_NOMEM);
    if (jc->n_spans + count > jc->spans_cap &&
        grow((void **)&jc->spans, &jc->spans_cap, jc->n_spans + count, sizeof(*jc->spans),
             jc->spans0) != 0)
        return fail(p, JCANON_NOMEM);
    struct jc_object *ob = &jc->obj[jc->n_obj++];
    ob->open = open;
    ob->close = close;
    ob->s0 = jc->n_spans;
    for (size_t i = 0; i < count; i++) {
        if (i + 1 < count && key_cmp(jc->keys, &m[i], &m[i + 1]) == 0)
            continue;               /* a later value for this key follows */
        jc->spans[jc->n_spans].off = m[i].toff;
        jc->spans[jc->n_spans].len = m[i].tlen;
        jc->n_spans++;
    }
    ob->n = jc->n_spans - ob->s0;
    return 0;
}

static int jp_object(struct jp *p)
{
    struct jcanon *jc = p->jc;
    size_t open = jc->buf_len, m0 = jc->n_mem, k0 = jc->keys_len;
    int in_order = 1;

    int r = jp_open(p, '{', '}');
    while (r == 0) {
        if (p->s >= p->end || *p->s != '"')
            return fail(p, JCANON_INVALID);
        struct jc_member me = { jc->keys_len, 0, jc->buf_len, 0 };
        if (jp_string(p, 1) != 0)
            return -1;
        me.klen = jc->keys_len - me.koff;
        skip_ws(p);
        if (p->s >= p->end || *p->s != ':')
            return fail(p, JCANON_INVALID);
        p->s++;
        if (put1(p, ':') != 0)
            return -1;
        skip_ws(p);
        if (jp_value(p) != 0)
            return -1;
        me.tlen = jc->buf_len - me.toff;
        if (jc->n_mem > m0 && key_cmp(jc->keys, &jc->mem[jc->n_mem - 1], &me) >= 0)
            in_order = 0;
        if (jc->n_mem == jc->mem_cap &&
            grow((void **)&jc->mem, &jc->mem_cap, jc->n_mem + 1, sizeof(*jc->mem), jc->mem0) != 0)
            return fail(p, JCANON_NOMEM);
        jc->mem[jc->n_mem++] = me;
        r = jp_next(p, '}');
    }
    if (r < 0)
        return -1;
    /* the keys compared equal or descending somewhere: sort */
    if (!in_order && jp_sort_members(p, open, jc->buf_len, m0) != 0)
        return -1;
    jc->n_mem = m0;
    jc->keys_len = k0;
    return put1(p, '}');
}

static int jp_value(struct jp *p)
{
    if (p->s >= p->end)
        return fail(p, JCANON_INVALID);
    if (++p->jc->depth > JCANON_MAX_DEPTH)
        return fail(p, JCANON_INVALID);
    int r, c = *p->s;
    if (c == '{')
        r = jp_object(p);
    else if (c == '[')
        r = jp_array(p);
    else if (c == '"')
        r = jp_string(p, 0);
    else if (c == '-' || is_digit(c))
        r = jp_number(p);
    else
        r = jp_literal(p);
    if (r == 0)
        p->jc->depth--;
    return r;
}

static int obj_open_cmp(const void *a, const void *b)
{
    const struct jc_object *x = a, *y = b;
    return x->open < y->open ? -1 : x->open > y->open;
}

/* The first sorted object that starts at pos or after. */
static size_t obj_from(const struct jcanon *jc, size_t pos)
{
    size_t lo = 0, hi = jc->n_obj;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (jc->obj[mid].open < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void emit_object(struct jcanon *jc, size_t i);

/* buf[from..to) into out, each sorted object in it written sorted. Objects
 * nested in a sorted object are its own to write: the search goes on after
 * its end. */
static void emit_span(struct jcanon *jc, size_t from, size_t to)
{
    for (size_t i = obj_from(jc, from); i < jc->n_obj && jc->obj[i].open < to;
         i = obj_from(jc, from)) {
        memcpy(jc->out + jc->len, jc->buf + from, jc->obj[i].open - from);
        jc->len += jc->obj[i].open - from;
        emit_object(jc, i);
        from = jc->obj[i].close + 1;
    }
    memcpy(jc->out + jc->len, jc->buf + from, to - from);
    jc->len += to - from;
}

static void emit_object(struct jcanon *jc, size_t i)
{
    const struct jc_object *ob = &jc->obj[i];
    jc->out[jc->len++] = '{';
    for (size_t k = 0; k < ob->n; k++) {
        if (k > 0)
            jc->out[jc->len++] = ',';
        const struct jc_span *sp = &jc->spans[ob->s0 + k];
        emit_span(jc, sp->off, sp->off + sp->len);
    }
    jc->out[jc->len++] = '}';
}

int jcanon(struct jcanon *jc, const char *in, size_t n)
{
    jc->buf = jc->buf0;
    jc->buf_cap = sizeof(jc->buf0);
    jc->buf_len = 0;
    jc->out = jc->out0;
    jc->out_cap = sizeof(jc->out0);
    jc->keys = jc->keys0;
    jc->keys_cap = sizeof(jc->keys0);
    jc->keys_len = 0;
    jc->mem = jc->mem0;
    jc->mem_cap = sizeof(jc->mem0) / sizeof(jc->mem0[0]);
    jc->n_mem = 0;
    jc->spans = jc->spans0;
    jc->spans_cap = sizeof(jc->spans0) / sizeof(jc->spans0[0]);
    jc->n_spans = 0;
    jc->obj = jc->obj0;
    jc->obj_cap = sizeof(jc->obj0) / sizeof(jc->obj0[0]);
    jc->n_obj = 0;
    jc->depth = 0;
    jc->text = jc->buf;
    jc->len = 0;

    struct jp p = { (const unsigned char *)in, (const unsigned char *)in + n, jc, JCANON_OK };
    skip_ws(&p);
    if (jp_value(&p) == 0) {
        skip_ws(&p);
        if (p.s != p.end)
            fail(&p, JCANON_INVALID);   /* more after the document */
    }
    if (p.err != JCANON_OK)
        return p.err;
    if (jc->n_obj == 0) {               /* every object was in key order */
        jc->text = jc->buf;
        jc->len = jc->buf_len;
        return JCANON_OK;
    }
    /* Written again: no longer than buf (repeated keys only drop text).
     * Objects were remembered as they closed, inner ones first. */
    if (jc->buf_len > jc->out_cap) {
        jc->out = malloc(jc->buf_len);
        if (jc->out == NULL) {
            jc->out = jc->out0;
            return JCANON_NOMEM;
        }
        jc->out_cap = jc->buf_len;
    }
    if (jc->n_obj > 1)
        qsort(jc->obj, jc->n_obj, sizeof(*jc->obj), obj_open_cmp);
    jc->len = 0;
    emit_span(jc, 0, jc->buf_len);
    jc->text = jc->out;
    return JCANON_OK;
}

void jcanon_done(struct jcanon *jc)
{
    if (jc->buf != jc->buf0)
        free(jc->buf);
    if (jc->out != jc->out0)
        free(jc->out);
    if (jc->keys != jc->keys0)
        free(jc->keys);
    if (jc->mem != jc->mem0)
        free(jc->mem);
    if (jc->spans != jc->spans0)
        free(jc->spans);
    if (jc->obj != jc->obj0)
        free(jc->obj);
    jc->buf = jc->buf0;
    jc->out = jc->out0;
    jc->keys = jc->keys0;
    jc->mem = jc->mem0;
    jc->spans = jc->spans0;
    jc->obj = jc->obj0;
    jc->text = jc->buf0;
    jc->len = 0;
}
