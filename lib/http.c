/*
 * http.c: the method table, token characters, token lists, hop-by-hop
 * header names.
 */
#include <string.h>
#include <strings.h>

#include "h1.h"
#include "http.h"

const struct http_method http_methods[] = {
    { "GET",     M_GET,     1 << 0, 1 },
    { "POST",    M_POST,    1 << 1, 1 },
    { "PUT",     M_PUT,     1 << 3, 1 },
    { "PATCH",   M_PATCH,   1 << 8, 1 },
    { "DELETE",  M_DELETE,  1 << 4, 1 },
    { "HEAD",    M_HEAD,    1 << 2, 0 },
    { "OPTIONS", M_OPTIONS, 1 << 5, 0 },
};
const size_t http_n_methods = sizeof(http_methods) / sizeof(http_methods[0]);

const struct http_method *http_method_named(const char *name, size_t n)
{
    for (size_t i = 0; i < http_n_methods; i++)
        if (strlen(http_methods[i].name) == n && memcmp(name, http_methods[i].name, n) == 0)
            return &http_methods[i];
    return NULL;
}

const struct http_method *http_method_of(unsigned bit)
{
    for (size_t i = 0; i < http_n_methods; i++)
        if (http_methods[i].bit == bit)
            return &http_methods[i];
    return NULL;
}

const unsigned char http_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

int http_is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!http_tchar[(unsigned char)s[i]])
            return 0;
    return 1;
}

size_t http_next_token(const char **p, const char **tok)
{
    const char *q = *p;
    while (*q == ' ' || *q == '\t' || *q == ',')
        q++;
    *tok = q;
    while (*q && *q != ',' && *q != ' ' && *q != '\t')
        q++;
    *p = q;
    return (size_t)(q - *tok);
}

int http_token_in_list(const char *list, const char *name, size_t n)
{
    const char *p = list, *s;
    size_t k;
    while ((k = http_next_token(&p, &s)) > 0)
        if (k == n && strncasecmp(s, name, n) == 0)
            return 1;
    return 0;
}

int http_name_in(const char *name, size_t n, const struct http_name *set, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (set[i].len == n && strncasecmp(name, set[i].name, n) == 0)
            return 1;
    return 0;
}

int http_header_is_hop(const char *name)
{
    /* by length first: most names of a message are none of these lengths */
    size_t n = strlen(name);
    switch (n) {
    case 2: return HTTP_IS(name, n, "TE");
    case 7: return HTTP_IS(name, n, "Trailer") || HTTP_IS(name, n, "Upgrade");
    case 10: return HTTP_IS(name, n, "Connection") || HTTP_IS(name, n, "Keep-Alive");
    case 14: return HTTP_IS(name, n, "Content-Length");
    case 16: return HTTP_IS(name, n, "Proxy-Connection");
    case 17: return HTTP_IS(name, n, "Transfer-Encoding");
    case 18: return HTTP_IS(name, n, "Proxy-Authenticate");
    case 19: return HTTP_IS(name, n, "Proxy-Authorization");
    }
    return 0;
}

/* A Connection value that names no field but hop-by-hop ones anyway
 * ("close", "keep-alive", "upgrade": nearly every message's): nothing to
 * look up per field. */
static int names_only_fixed(const char *v)
{
    const char *p = v, *s;
    size_t n;
    while ((n = http_next_token(&p, &s)) > 0)
        if (!HTTP_IS(s, n, "close") && !HTTP_IS(s, n, "keep-alive") &&
            !HTTP_IS(s, n, "upgrade"))
            return 0;
    return 1;
}

void http_hop_init(struct http_hop *f, const struct h1_header *h, int nh)
{
    f->h = h;
    f->nh = nh;
    f->n_conn = 0;
    f->many = 0;
    for (int i = 0; i < nh; i++)
        if (HTTP_IS(h[i].name, h[i].name_len, "Connection") && !names_only_fixed(h[i].value)) {
            if (f->n_conn == 8)
                f->many = 1;
            else
                f->conn[f->n_conn++] = h[i].value;
        }
}

int http_hop_drops(const struct http_hop *f, const char *name, size_t n)
{
    if (http_header_is_hop(name))
        return 1;
    if (f->many) {
        for (int i = 0; i < f->nh; i++)
            if (HTTP_IS(f->h[i].name, f->h[i].name_len, "Connection") &&
                http_token_in_list(f->h[i].value, name, n))
                return 1;
        return 0;
    }
    for (int i = 0; i < f->n_conn; i++)
        if (http_token_in_list(f->conn[i], name, n))
            return 1;
    return 0;
}
