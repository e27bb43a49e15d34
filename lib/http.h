/*
 * http: HTTP/1.1 names shared by the client side (server.c, req.c) and the
 * upstream side (upstream.c). Owns: what a token is (a field name), token
 * lists (Connection), and which header names are hop-by-hop.
 */
#ifndef IDEM_HTTP_H
#define IDEM_HTTP_H

#include <stddef.h>
#include <strings.h>

/* RFC 9110 5.6.2: 1 for the characters of a token. */
extern const unsigned char http_tchar[256];

/* s[0..n) is a token: non-empty, token characters only. */
int http_is_token(const char *s, size_t n);

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

#endif
