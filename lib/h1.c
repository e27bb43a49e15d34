/*
 * h1.c: HTTP/1.1 heads and chunked bodies (see h1.h for the rules).
 */
#include <string.h>
#include <strings.h>

#include "h1.h"
#include "http.h"

#define LENGTH_MAX   ((int64_t)1 << 62)
#define CHUNK_MAX    ((uint64_t)1 << 60)
#define CHUNK_LINE_MAX 4096        /* a chunk-size line with its extensions */

static int refuse(struct h1_error *err, int status, const char *why)
{
    if (err != NULL) {
        err->status = status;
        err->why = why;
    }
    return -1;
}

/* ---- finding the end of a request head ---- */

enum { S_START, S_LINE, S_CR, S_CR_EMPTY, S_DONE, S_BAD };

/* bytes that end a run of line content */
static const unsigned char line_end[256] = { ['\0'] = 1, ['\r'] = 1, ['\n'] = 1 };

void h1_scan_init(struct h1_scan *s)
{
    memset(s, 0, sizeof(*s));
    s->state = S_START;
}

static enum h1_scan_rc scan_bad(struct h1_scan *s, struct h1_error *err, int status,
                                const char *why)
{
    s->state = S_BAD;
    refuse(err, status, why);
    return H1_SCAN_ERROR;
}

/* Over the limit: 414 while the request line is longer than it, else 431. */
static enum h1_scan_rc scan_too_large(struct h1_scan *s, struct h1_error *err, size_t max)
{
    if (s->first_line == 0 || s->first_line - s->skip > max)
        return scan_bad(s, err, 414, "a request line too long");
    return scan_bad(s, err, 431, "request header fields too large");
}

enum h1_scan_rc h1_scan(struct h1_scan *s, const char *buf, size_t n, size_t max,
                        size_t *used, struct h1_error *err)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + n;
    if (s->state == S_BAD)
        return scan_bad(s, err, 400, "a malformed request head");
    /* the bytes up to the limit are scanned, and one more: the verdict on a
     * head past it is the same however the bytes arrived */
    const unsigned char *stop;
#define SCAN_STOP() (stop = s->skip + max + 1 - s->len < n ? \
                     (const unsigned char *)buf + (s->skip + max + 1 - s->len) : end)
    SCAN_STOP();
    while (p < stop) {
        unsigned char ch = *p++;
        switch (s->state) {
        case S_LINE:
            while (!line_end[ch] && p < stop)
                ch = *p++;
            if (ch == '\r')
                s->state = S_CR;
            else if (ch == '\n')
                return scan_bad(s, err, 400, "a line that ends in LF without CR");
            else if (ch == '\0')
                return scan_bad(s, err, 400, "a NUL byte in the request head");
            break;
        case S_START:
            if (ch == '\r')
                s->state = S_CR_EMPTY;
            else if (ch == '\n')
                return scan_bad(s, err, 400, "a line that ends in LF without CR");
            else if (ch == '\0')
                return scan_bad(s, err, 400, "a NUL byte in the request head");
            else if ((ch == ' ' || ch == '\t') && s->lines > 0)
                return scan_bad(s, err, 400,
                                "a header line folded onto the previous one (obs-fold)");
            else {
                s->state = S_LINE;
                s->lines++;
            }
            break;
        case S_CR:
        case S_CR_EMPTY:
            if (ch != '\n')
                return scan_bad(s, err, 400, "a CR not followed by LF");
            if (s->state == S_CR) {
                if (s->lines == 1 && s->first_line == 0)
                    s->first_line = s->len + (size_t)(p - (const unsigned char *)buf);
                s->state = S_START;
            } else if (s->lines == 0) {
                s->state = S_START;    /* an empty line before the request line */
                s->skip = s->len + (size_t)(p - (const unsigned char *)buf);
                SCAN_STOP();
            } else {
                s->state = S_DONE;
            }
            break;
        }
        if (s->state == S_DONE) {
            size_t k = (size_t)(p - (const unsigned char *)buf);
            s->len += k;
            *used = k;
            if (s->len - s->skip > max)
                return scan_too_large(s, err, max);
            return H1_SCAN_DONE;
        }
    }
#undef SCAN_STOP
    s->len += (size_t)(p - (const unsigned char *)buf);
    if (s->len - s->skip > max)
        return scan_too_large(s, err, max);
    *used = n;
    return H1_SCAN_MORE;
}

/* ---- header lines ---- */

/* A value byte RFC 9110 5.5 allows: VCHAR, obs-text, SP, HTAB (not DEL). */
#define R16(b) [b] = 1, [b + 1] = 1, [b + 2] = 1, [b + 3] = 1, [b + 4] = 1, \
    [b + 5] = 1, [b + 6] = 1, [b + 7] = 1, [b + 8] = 1, [b + 9] = 1, [b + 10] = 1, \
    [b + 11] = 1, [b + 12] = 1, [b + 13] = 1, [b + 14] = 1, [b + 15] = 1
static const unsigned char value_ok[256] = {
    ['\t'] = 1,
    R16(0x20), R16(0x30), R16(0x40), R16(0x50), R16(0x60),
    [0x70] = 1, [0x71] = 1, [0x72] = 1, [0x73] = 1, [0x74] = 1, [0x75] = 1,
    [0x76] = 1, [0x77] = 1, [0x78] = 1, [0x79] = 1, [0x7a] = 1, [0x7b] = 1,
    [0x7c] = 1, [0x7d] = 1, [0x7e] = 1,
    R16(0x80), R16(0x90), R16(0xa0), R16(0xb0), R16(0xc0), R16(0xd0),
    R16(0xe0), R16(0xf0),
};
#undef R16

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* p at a hex digit: its value; else -1 */
static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int h1_parse_length(const char *v, size_t n, int64_t *out)
{
    int64_t x = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        if (x > LENGTH_MAX / 10)
            return -1;
        x = x * 10 + (v[i] - '0');
        if (x > LENGTH_MAX)
            return -1;
    }
    *out = x;
    return 0;
}

/* Connection's tokens that matter here. */
enum { CONN_CLOSE = 1, CONN_KEEP_ALIVE = 2, CONN_UPGRADE = 4 };

static int connection_tokens(const char *v)
{
    int f = 0;
    if (http_token_in_list(v, "close", 5))
        f |= CONN_CLOSE;
    if (http_token_in_list(v, "keep-alive", 10))
        f |= CONN_KEEP_ALIVE;
    if (http_token_in_list(v, "upgrade", 7))
        f |= CONN_UPGRADE;
    return f;
}

/* ---- the request head ---- */

/*
 * The request line at p (up to its CR): method SP target SP HTTP/1.x.
 * Terminates method and target in place. 0, or -1 with err.
 */
static int parse_request_line(char *p, char *eol, struct h1_request *req,
                              struct h1_error *err)
{
    char *m = p;
    while (p < eol && http_tchar[(unsigned char)*p])
        p++;
    if (p == m || p == eol || *p != ' ')
        return refuse(err, 400, "a malformed request line");
    req->method = m;
    req->method_len = (size_t)(p - m);
    *p++ = '\0';
    char *t = p;
    while (p < eol && (unsigned char)*p > 0x20 && (unsigned char)*p != 0x7f)
        p++;
    if (p == t || p == eol || *p != ' ')
        return refuse(err, 400, "a malformed request line");
    req->target = t;
    req->target_len = (size_t)(p - t);
    *p++ = '\0';
    if (eol - p != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' ||
        p[6] != '.' || p[7] < '0' || p[7] > '9')
        return refuse(err, 400, "a malformed request line");
    if (p[5] != '1')
        return refuse(err, 505, "an HTTP version other than 1.x");
    req->minor = p[7] == '0' ? 0 : 1;   /* 1.2 and later read as 1.1 */
    return 0;
}

int h1_parse_request(char *h, size_t len, struct h1_request *req,
                     struct h1_header *hdr, int cap, struct h1_error *err)
{
    char *p = h, *end = h + len;
    memset(req, 0, sizeof(*req));
    req->h = hdr;
    req->length = -1;
    while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2;                       /* empty lines before the request line */
    char *eol = memchr(p, '\r', (size_t)(end - p));
    if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
        return refuse(err, 400, "a malformed request head");
    if (parse_request_line(p, eol, req, err) != 0)
        return -1;
    p = eol + 2;

    int n_cl = 0, n_te = 0, n_host = 0, conn = 0, has_upgrade = 0, te_other = 0;
    for (;;) {
        if (p >= end)
            return refuse(err, 400, "a malformed request head");
        if (*p == '\r')
            break;                    /* the empty line */
        char *name = p;
        while (p < end && http_tchar[(unsigned char)*p])
            p++;
        if (p >= end || *p != ':' || p == name)
            return refuse(err, 400, p < end && (*p == ' ' || *p == '\t')
                          ? "a header name followed by a blank before its colon"
                          : "a header name that is not a token");
        size_t name_len = (size_t)(p - name);
        *p++ = '\0';
        while (p < end && is_blank(*p))
            p++;
        char *v = p;
        while (p < end && *p != '\r') {
            if (!value_ok[(unsigned char)*p])
                return refuse(err, 400, "a control character in a header value");
            p++;
        }
        if (end - p < 2 || p[1] != '\n')
            return refuse(err, 400, "a malformed request head");
        char *ve = p;
        while (ve > v && is_blank(ve[-1]))
            ve--;
        *ve = '\0';
        p += 2;
        if (req->nh == cap)
            return refuse(err, 431, "too many header fields");
        struct h1_header *f = &hdr[req->nh++];
        f->name = name;
        f->name_len = name_len;
        f->value = v;
        f->value_len = (size_t)(ve - v);

        if (HTTP_IS(name, name_len, "Content-Length")) {
            n_cl++;
            if (h1_parse_length(v, f->value_len, &req->length) != 0)
                return refuse(err, 400, "a Content-Length that is not a number");
        } else if (HTTP_IS(name, name_len, "Transfer-Encoding")) {
            n_te++;
            if (!HTTP_IS(v, f->value_len, "chunked"))
                te_other = 1;
        } else if (HTTP_IS(name, name_len, "Host")) {
            n_host++;
        } else if (HTTP_IS(name, name_len, "Connection")) {
            conn |= connection_tokens(v);
        } else if (HTTP_IS(name, name_len, "Upgrade")) {
            has_upgrade = 1;
        } else if (HTTP_IS(name, name_len, "Expect")) {
            if (HTTP_IS(v, f->value_len, "100-continue"))
                req->expect_continue = 1;
        }
    }
    if (n_cl > 1)
        return refuse(err, 400, "more than one Content-Length");
    if (n_te > 0 && req->minor == 0)
        return refuse(err, 400, "Transfer-Encoding on an HTTP/1.0 request");
    if (n_te > 1)
        return refuse(err, 400, "more than one Transfer-Encoding");
    if (n_te && n_cl)
        return refuse(err, 400, "both Content-Length and Transfer-Encoding");
    if (te_other)
        return refuse(err, 501, "a transfer coding other than chunked");
    if (n_host > 1)
        return refuse(err, 400, "more than one Host");
    if (n_host == 0 && req->minor == 1)
        return refuse(err, 400, "an HTTP/1.1 request without Host");
    req->has_host = n_host == 1;
    if (n_te)
        req->body = H1_BODY_CHUNKED;
    else if (n_cl && req->length > 0)
        req->body = H1_BODY_LENGTH;
    else
        req->body = H1_BODY_NONE;
    if (req->minor == 0)
        req->keep_alive = (conn & CONN_KEEP_ALIVE) && !(conn & CONN_CLOSE);
    else
        req->keep_alive = !(conn & CONN_CLOSE);
    req->upgrade = req->minor == 1 && has_upgrade && (conn & CONN_UPGRADE);
    return 0;
}

/* ---- the answer head ---- */

size_t h1_response_end(const char *p, size_t len, size_t from)
{
    const char *q = p + (from > 2 ? from - 2 : 0), *end = p + len;
    while (q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
        if (q + 1 < end && q[1] == '\n')
            return (size_t)(q + 2 - p);
        if (q + 2 < end && q[1] == '\r' && q[2] == '\n')
            return (size_t)(q + 3 - p);
        q++;
    }
    return 0;
}

int h1_parse_response(char *h, size_t len, int head, struct h1_response *resp,
                      struct h1_header *hdr, int cap)
{
    char *p = h, *end = h + len;
    memset(resp, 0, sizeof(*resp));
    resp->h = hdr;
    resp->length = -1;
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] < '0' || p[7] > '9') ||
        p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
        p[11] < '0' || p[11] > '9')
        return -1;
    resp->minor = p[7] == '0' ? 0 : 1;
    resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL || (eol - p > 12 && p[12] != ' ' && p[12] != '\r'))
        return -1;
    p = eol + 1;

    int n = 0, conn = 0, has_te = 0;
    char *prev_end = NULL;            /* where the last value was cut */
    while (p < end) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            return -1;
        char *le = eol;               /* line end, before any CR */
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p)
            break;                    /* the empty line */
        if (is_blank(*p)) {
            /* obs-fold: the line continues the previous value, joined by
             * one space (RFC 9112 5.2) */
            if (prev_end == NULL)
                return -1;
            char *c = p;
            while (c < le && is_blank(*c))
                c++;
            char *dst = prev_end;
            if (c < le && dst > hdr[n - 1].value)
                *dst++ = ' ';
            memmove(dst, c, (size_t)(le - c));
            le = dst + (le - c);
        } else {
            char *colon = memchr(p, ':', (size_t)(le - p));
            if (colon == NULL)
                return -1;
            char *ne = colon;
            while (ne > p && is_blank(ne[-1]))
                ne--;                 /* a proxy removes blanks before the colon */
            if (ne == p || !http_is_token(p, (size_t)(ne - p)) || n == cap)
                return -1;
            *ne = '\0';
            char *v = colon + 1;
            while (v < le && is_blank(*v))
                v++;
            hdr[n].name = p;
            hdr[n].name_len = (size_t)(ne - p);
            hdr[n].value = v;
            n++;
        }
        const char *vs = hdr[n - 1].value;
        char *ve = le;
        while (ve > vs && is_blank(ve[-1]))
            ve--;
        *ve = '\0';
        hdr[n - 1].value_len = (size_t)(ve - vs);
        prev_end = ve;
        for (const char *q = vs; q < ve; q++)
            if (*q == '\0' || *q == '\r')
                return -1;            /* a NUL or bare CR inside a value */
        p = eol + 1;
    }
    resp->nh = n;
    for (int i = 0; i < n; i++) {
        const char *k = hdr[i].name, *v = hdr[i].value;
        size_t kn = hdr[i].name_len;
        if (HTTP_IS(k, kn, "Content-Length")) {
            int64_t x;
            if (h1_parse_length(v, hdr[i].value_len, &x) != 0 ||
                (resp->length >= 0 && resp->length != x))
                return -1;
            resp->length = x;
        } else if (HTTP_IS(k, kn, "Transfer-Encoding")) {
            /* only chunked is read (no coding is undone here), and HTTP/1.0
             * has no transfer codings (RFC 9112 6.1) */
            if (has_te || resp->minor == 0 || !HTTP_IS(v, hdr[i].value_len, "chunked"))
                return -1;
            has_te = 1;
        } else if (HTTP_IS(k, kn, "Connection")) {
            conn |= connection_tokens(v);
        }
    }
    resp->keep_alive = !(conn & CONN_CLOSE) && (resp->minor == 1 || (conn & CONN_KEEP_ALIVE));
    if (head || resp->status < 200 || resp->status == 204 || resp->status == 304) {
        resp->body = H1_BODY_NONE;
    } else if (has_te) {
        resp->body = H1_BODY_CHUNKED;
        if (resp->length >= 0)
            resp->keep_alive = 0;     /* RFC 9112 6.3: close after both */
        resp->length = -1;
    } else if (resp->length >= 0) {
        resp->body = resp->length > 0 ? H1_BODY_LENGTH : H1_BODY_NONE;
    } else {
        resp->body = H1_BODY_CLOSE;
        resp->keep_alive = 0;
    }
    return 0;
}

/* ---- chunked bodies ---- */

enum {
    C_SIZE_START, C_SIZE, C_SIZE_BWS, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR,
    C_DATA_LF, C_TRAILER_START, C_TRAILER_NAME, C_TRAILER_VALUE, C_TRAILER_LF,
    C_END_LF, C_DONE, C_BAD
};

void h1_chunked_init(struct h1_chunked *c, size_t trailer_max)
{
    memset(c, 0, sizeof(*c));
    c->state = C_SIZE_START;
    c->trailer_max = trailer_max;
}

static enum h1_chunk_rc chunk_bad(struct h1_chunked *c, const char *why)
{
    c->state = C_BAD;
    c->why = why;
    return H1_CHUNK_ERROR;
}

static enum h1_chunk_rc chunk_limit(struct h1_chunked *c, const char *why)
{
    c->too_large = 1;
    return chunk_bad(c, why);
}

enum h1_chunk_rc h1_chunked_parse(struct h1_chunked *c, const char *buf, size_t n,
                                  size_t *used)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + n;
    *used = 0;
    if (c->state == C_BAD)
        return H1_CHUNK_ERROR;
    if (c->state == C_DONE)
        return H1_CHUNK_DONE;
    if (c->state == C_DATA)
        return H1_CHUNK_DATA;
    while (p < end) {
        unsigned char ch = *p++;
        if (c->state >= C_TRAILER_START && ++c->trailer > c->trailer_max)
            return chunk_limit(c, "chunked trailer fields too large");
        if (c->state <= C_EXT && ++c->line > CHUNK_LINE_MAX)
            return chunk_limit(c, "a chunk-size line too long");
        switch (c->state) {
        case C_SIZE_START:
        case C_SIZE: {
            int d = hex_val(ch);
            if (d >= 0) {
                if (c->left > (CHUNK_MAX >> 4))
                    return chunk_limit(c, "a chunk size too large");
                c->left = c->left * 16 + (uint64_t)d;
                c->state = C_SIZE;
            } else if (c->state == C_SIZE_START) {
                return chunk_bad(c, "a chunk size that is not hex digits");
            } else if (ch == ';') {
                c->state = C_EXT;
            } else if (ch == ' ' || ch == '\t') {
                c->state = C_SIZE_BWS;
            } else if (ch == '\r') {
                c->state = C_SIZE_LF;
            } else if (ch == '\n' && c->lenient) {
                goto size_line_end;
            } else if (ch == '\n') {
                return chunk_bad(c, "a chunk line that ends in LF without CR");
            } else {
                return chunk_bad(c, "a chunk size that is not hex digits");
            }
            break;
        }
        case C_SIZE_BWS:
            if (ch == ';')
                c->state = C_EXT;
            else if (c->lenient && ch == '\r')
                c->state = C_SIZE_LF;
            else if (c->lenient && ch == '\n')
                goto size_line_end;
            else if (ch != ' ' && ch != '\t')
                return chunk_bad(c, "a blank after a chunk size without an extension");
            break;
        case C_EXT:
            if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (ch == '\n' && c->lenient)
                goto size_line_end;
            else if (ch == '\n')
                return chunk_bad(c, "a chunk line that ends in LF without CR");
            else if (!value_ok[ch])
                return chunk_bad(c, "a control character in a chunk extension");
            break;
        case C_SIZE_LF:
            if (ch != '\n')
                return chunk_bad(c, "a CR not followed by LF");
        size_line_end:
            c->line = 0;
            if (c->left == 0) {
                c->state = C_TRAILER_START;
                break;
            }
            c->state = C_DATA;
            *used = (size_t)(p - (const unsigned char *)buf);
            return H1_CHUNK_DATA;
        case C_DATA_CR:
            if (ch == '\n' && c->lenient)
                c->state = C_SIZE_START;
            else if (ch != '\r')
                return chunk_bad(c, "chunk data not followed by CRLF");
            else
                c->state = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (ch != '\n')
                return chunk_bad(c, "chunk data not followed by CRLF");
            c->state = C_SIZE_START;
            break;
        case C_TRAILER_START:
            if (ch == '\r')
                c->state = C_END_LF;
            else if (ch == '\n' && c->lenient)
                goto body_end;
            else if (http_tchar[ch])
                c->state = C_TRAILER_NAME;
            else
                return chunk_bad(c, "a malformed trailer field");
            break;
        case C_TRAILER_NAME:
            if (ch == ':')
                c->state = C_TRAILER_VALUE;
            else if (!http_tchar[ch])
                return chunk_bad(c, "a malformed trailer field");
            break;
        case C_TRAILER_VALUE:
            if (ch == '\r')
                c->state = C_TRAILER_LF;
            else if (ch == '\n' && c->lenient)
                c->state = C_TRAILER_START;
            else if (!value_ok[ch])
                return chunk_bad(c, "a control character in a trailer field");
            break;
        case C_TRAILER_LF:
        case C_END_LF:
            if (ch != '\n')
                return chunk_bad(c, "a CR not followed by LF");
            if (c->state == C_END_LF) {
        body_end:
                c->state = C_DONE;
                *used = (size_t)(p - (const unsigned char *)buf);
                return H1_CHUNK_DONE;
            }
            c->state = C_TRAILER_START;
            break;
        }
    }
    *used = n;
    return H1_CHUNK_MORE;
}

void h1_chunked_took(struct h1_chunked *c, uint64_t k)
{
    c->left -= k;
    if (c->left == 0 && c->state == C_DATA)
        c->state = C_DATA_CR;
}

size_t h1_chunk_size_line(char *out, uint64_t n)
{
    static const char digit[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = digit[n & 0xf];
        n >>= 4;
    } while (n != 0);
    for (size_t i = 0; i < k; i++)
        out[i] = tmp[k - 1 - i];
    out[k++] = '\r';
    out[k++] = '\n';
    return k;
}

const char *h1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "";
}
