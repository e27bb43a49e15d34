/*
 * http: HTTP/1.1 names shared by the client side (server.c, req.c) and the
 * upstream side (upstream.c). Owns: the methods idemproxy serves (the one
 * method table), what a token is (a field name), token lists (Connection),
 * and which header names are hop-by-hop.
 */
#ifndef IDEM_HTTP_H
#define IDEM_HTTP_H

#include <stddef.h>
#include <strings.h>

/* Method bits: what a route protects (route->methods) and what a request
 * is matched with (route_match). */
enum {
    M_GET = 1 << 0, M_POST = 1 << 1, M_PUT = 1 << 2, M_PATCH = 1 << 3,
    M_DELETE = 1 << 4, M_HEAD = 1 << 5, M_OPTIONS = 1 << 6
};

/*
 * The methods idemproxy serves, one row each. The config's `methods`
 * (lib/config.c), the OpenAPI operations (lib/openapi.c), a request's
 * method name in its log line and upstream request line and its method in
 * the fingerprint (proxy/req.c) are all read from here.
 */
struct http_method {
    const char *name;           /* as on the request line: "POST" */
    unsigned bit;               /* M_POST */
    unsigned fp;                /* what a fingerprint hashes for it: libevent's
                                   evhttp_cmd_type value, which every stored
                                   fingerprint holds; never change it */
    unsigned routable:1;        /* a route may protect it (`methods`) */
};

extern const struct http_method http_methods[];
extern const size_t http_n_methods;

/* The row of the method called name[0..n) (exact case, as RFC 9110 9.1
 * compares methods), or NULL. */
const struct http_method *http_method_named(const char *name, size_t n);

/* The row of an M_* bit, or NULL for no one bit of the table. */
const struct http_method *http_method_of(unsigned bit);

/* RFC 9110 5.6.2: 1 for the characters of a token. */
extern const unsigned char http_tchar[256];

/* s[0..n) is a token: non-empty, token characters only. */
int http_is_token(const char *s, size_t n);

/* The next comma- or blank-separated token of a list at *p: its start in
 * *tok, its length returned (0: none left); *p moves past it. */
size_t http_next_token(const char **p, const char **tok);

/* name[0..n) is one of the comma- or blank-separated tokens of list
 * (case-insensitive), as in a Connection header. */
int http_token_in_list(const char *list, const char *name, size_t n);

/* name[0..n) is the string literal lit, case-insensitively. The lengths are
 * compared first, so a name of another length costs one comparison. */
#define HTTP_IS(name, n, lit) \
    ((n) == sizeof(lit) - 1 && strncasecmp((name), (lit), sizeof(lit) - 1) == 0)

/* A set of header names, each with its length: a lookup compares only the
 * names of the same length (it runs for every header of every message). */
struct http_name {
    const char *name;
    size_t len;
};
#define HTTP_NAME(s) { s, sizeof(s) - 1 }

/* name[0..n) is in set[0..count), case-insensitively. */
int http_name_in(const char *name, size_t n, const struct http_name *set, size_t count);

/* A hop-by-hop header (RFC 9110 7.6.1; and Content-Length, which
 * idemproxy always writes itself), never forwarded or stored. */
int http_header_is_hop(const char *name);

/*
 * Which headers of a message are hop-by-hop: the fixed ones, and those its
 * Connection headers name (RFC 9110 7.6.1). The Connection values are
 * found once per message.
 */
struct h1_header;
struct http_hop {
    const struct h1_header *h;
    int nh;
    const char *conn[8];           /* the Connection values */
    int n_conn;
    int many;                      /* more than 8: each lookup scans h */
};
void http_hop_init(struct http_hop *f, const struct h1_header *h, int nh);
/* name[0..n) is hop-by-hop in that message. */
int http_hop_drops(const struct http_hop *f, const char *name, size_t n);

#endif
