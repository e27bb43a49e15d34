/*
 * h1: HTTP/1.1 message framing (RFC 9112), as pure functions over bytes.
 * Owns: finding the end of a request head as its bytes arrive, parsing a
 * request head and an upstream answer head in place, the body framing a
 * head announces (Content-Length, chunked, none, until close), and the
 * chunked decoder. Does not own: sockets, buffers, what a header means to
 * idemproxy (http.c: hop-by-hop; req.c: Idempotency-Key).
 *
 * Requests are parsed strictly, since what idemproxy forwards must mean to
 * the upstream what it meant here (request smuggling): CRLF line ends only,
 * no NUL or other control byte but tab in a value, no obs-fold, a header
 * name directly followed by its colon, one Content-Length of digits only,
 * Transfer-Encoding only "chunked", only on HTTP/1.1 and never with a
 * Content-Length, chunk sizes of hex digits only. What RFC 9112 allows is
 * accepted: empty lines before the request line, blanks around a value,
 * chunk extensions, trailer fields (read and dropped).
 *
 * Answers from the upstream are read as a recipient may (RFC 9112 5.2):
 * obs-fold joined by a space, blanks before the colon dropped, a bare LF
 * line end.
 */
#ifndef IDEM_H1_H
#define IDEM_H1_H

#include <stddef.h>
#include <stdint.h>

/* A header field, pointing into the parsed head; name and value are
 * NUL-terminated there, the value without surrounding blanks. */
struct h1_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* How a message's body is delimited. */
enum h1_body {
    H1_BODY_NONE,                  /* no body */
    H1_BODY_LENGTH,                /* Content-Length bytes (length) */
    H1_BODY_CHUNKED,               /* chunked */
    H1_BODY_CLOSE                  /* until the connection closes (answers only) */
};

/* Why a request is refused: the status to answer and a reason for people. */
struct h1_error {
    int status;                    /* 400, 413, 414, 431, 501, 505 */
    const char *why;               /* static: "a line that ends in LF without CR" */
};

/* ---- the request head, as it arrives ---- */

/* Finds where a request head ends, fed its bytes in any pieces. */
struct h1_scan {
    int state;
    int lines;                     /* non-empty lines seen */
    size_t len;                    /* bytes of this head so far */
    size_t skip;                   /* empty lines before the request line */
    size_t first_line;             /* length of the request line once seen, else 0 */
};

enum h1_scan_rc {
    H1_SCAN_MORE,                  /* all of p used, the head goes on */
    H1_SCAN_DONE,                  /* the head ends within p: *used bytes of it */
    H1_SCAN_ERROR                  /* refused: err says why */
};

void h1_scan_init(struct h1_scan *s);
/*
 * Scan the next n bytes. max: the largest head allowed (431, or 414 while
 * the request line is not complete). H1_SCAN_DONE sets *used to the bytes
 * of p that belong to the head (the rest is its body or the next request);
 * s->len is then the whole head's length, s->skip the empty lines before
 * its request line.
 */
enum h1_scan_rc h1_scan(struct h1_scan *s, const char *p, size_t n, size_t max,
                        size_t *used, struct h1_error *err);

/* ---- the request head, parsed ---- */

struct h1_request {
    const char *method;            /* NUL-terminated, as sent */
    size_t method_len;
    const char *target;            /* NUL-terminated, as sent */
    size_t target_len;
    int minor;                     /* HTTP/1.minor: 0 or 1 */
    struct h1_header *h;           /* the caller's array */
    int nh;
    /* what the headers say */
    enum h1_body body;
    int64_t length;                /* H1_BODY_LENGTH */
    unsigned keep_alive:1;         /* the connection may carry another request */
    unsigned expect_continue:1;    /* Expect: 100-continue */
    unsigned upgrade:1;            /* Upgrade, named in Connection */
    unsigned has_host:1;
};

/*
 * Parse a whole head in place (h[0..len), as h1_scan delimited it, empty
 * lines before the request line included). Names and values are
 * NUL-terminated where they end, so h must stay alive as long as req.
 * hdr[0..cap) receives the headers; more than cap is 431. 0, or -1 with
 * err set.
 */
int h1_parse_request(char *h, size_t len, struct h1_request *req,
                     struct h1_header *hdr, int cap, struct h1_error *err);

/* ---- the upstream's answer head ---- */

struct h1_response {
    int status;                    /* 100..599 */
    int minor;
    struct h1_header *h;
    int nh;
    enum h1_body body;
    int64_t length;
    unsigned keep_alive:1;         /* the upstream allows another request */
};

/* The end of the answer head in p[0..len) (the byte after its empty
 * line), or 0 when it has not ended. from: where a previous call stopped. */
size_t h1_response_end(const char *p, size_t len, size_t from);

/*
 * Parse an answer head in place (status line to the empty line). head: it
 * answers a HEAD request (no body whatever it says). hdr[0..cap) as for
 * requests. 0, or -1 when it is not HTTP/1.x or its framing is broken
 * (two different lengths, a transfer coding other than chunked).
 */
int h1_parse_response(char *h, size_t len, int head, struct h1_response *resp,
                      struct h1_header *hdr, int cap);

/* ---- chunked bodies ---- */

struct h1_chunked {
    int state;
    uint64_t left;                 /* data bytes of the current chunk to come */
    size_t line;                   /* bytes of the current size or trailer line */
    size_t trailer;                /* bytes of the trailer section */
    size_t trailer_max;            /* its bound (the head limit) */
    const char *why;               /* H1_CHUNK_ERROR */
    unsigned too_large:1;          /* the error is a limit (line, trailers, size) */
    unsigned lenient:1;            /* an answer's: a bare LF ends a line, blanks
                                      may follow a size (set after init) */
};

enum h1_chunk_rc {
    H1_CHUNK_MORE,                 /* framing bytes used up; feed more */
    H1_CHUNK_DATA,                 /* c->left data bytes come next */
    H1_CHUNK_DONE,                 /* the body (and its trailers) ended */
    H1_CHUNK_ERROR                 /* malformed: c->why */
};

void h1_chunked_init(struct h1_chunked *c, size_t trailer_max);
/*
 * Read framing bytes (sizes, extensions, CRLFs, trailers) from p[0..n);
 * *used says how many. Stops before data bytes (H1_CHUNK_DATA: the caller
 * takes up to c->left of them and reports it with h1_chunked_took) and
 * after the last CRLF of the body (H1_CHUNK_DONE).
 */
enum h1_chunk_rc h1_chunked_parse(struct h1_chunked *c, const char *p, size_t n,
                                  size_t *used);
/* k data bytes (at most c->left) were taken. */
void h1_chunked_took(struct h1_chunked *c, uint64_t k);

/* "1a2b\r\n" for a chunk of n bytes into out (at least 19 bytes); returns
 * its length. */
size_t h1_chunk_size_line(char *out, uint64_t n);

/* ---- names ---- */

/* The reason phrase of a status ("Created"), "" for one without. */
const char *h1_reason(int status);

/* Parse a Content-Length value: digits only, at most 2^62. 0 or -1. */
int h1_parse_length(const char *v, size_t n, int64_t *out);

#endif
