/*
 * fuzz_route: route_match (lib/route.c) against a reference matcher written
 * here, on a fixed config of exact and "/prefix/ *" routes (as conf_load
 * leaves them: prefix routes stored without the "/ *", "/ *" itself as the
 * empty path), arbitrary method bits and arbitrary path bytes (NUL and
 * non-ASCII included; the length is passed, the path is not NUL-terminated).
 *
 * Also route_path_normalize's promises on the same path bytes (below).
 *
 * Input: bytes 0..1 are the method bits (any of 16, unknown bits included),
 * the rest is the path. Also http_method_named (lib/http.c) on the whole
 * input, against the list of method names written here.
 * Reference: the first route, in file order, that shares a method bit with
 * the request and whose path equals the request path (exact), or for which
 * the request path is the route path, then '/', then at least one byte
 * (prefix).
 */
#include "fuzz.h"
#include "http.h"
#include "route.h"

#include <stdlib.h>
#include <string.h>

static struct config *fuzz_cfg;

static void fuzz_add(const char *name, const char *written, unsigned methods)
{
    struct route *r = &fuzz_cfg->routes[fuzz_cfg->n_routes++];
    size_t n = strlen(written);
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->prefix = n >= 2 && strcmp(written + n - 2, "/*") == 0;
    snprintf(r->path, sizeof(r->path), "%.*s", (int)(r->prefix ? n - 2 : n), written);
    r->methods = methods;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_cfg = calloc(1, sizeof(*fuzz_cfg));
    if (!fuzz_cfg)
        abort();
    fuzz_add("orders", "/v1/orders", M_POST);
    fuzz_add("orders-below", "/v1/orders/*", M_POST | M_PUT | M_PATCH);
    fuzz_add("payments", "/v1/payments", M_POST | M_DELETE);
    fuzz_add("jobs-below", "/jobs/*", M_POST);
    fuzz_add("jobs", "/jobs", M_POST | M_PUT);
    fuzz_add("deep", "/a/b/c/*", M_GET | M_POST | M_PUT | M_PATCH | M_DELETE);
    fuzz_add("utf8", "/caf\xc3\xa9", M_POST);
    fuzz_add("root-exact", "/", M_PATCH);
    fuzz_add("all-below", "/*", M_DELETE);
    return 0;
}

/* Written independently of lib/route.c: what the README promises. */
static const struct route *fuzz_reference(unsigned method, const char *path, size_t len)
{
    for (int i = 0; i < fuzz_cfg->n_routes; i++) {
        const struct route *r = &fuzz_cfg->routes[i];
        if (!(r->methods & method))
            continue;
        char want[sizeof(r->path) + 1];
        size_t wl = (size_t)snprintf(want, sizeof(want), "%s%s", r->path,
                                     r->prefix ? "/" : "");
        if (r->prefix ? len > wl && memcmp(path, want, wl) == 0
                      : len == wl && memcmp(path, want, wl) == 0)
            return r;
    }
    return NULL;
}

static const char *const fuzz_methods[] = {
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
};
static const unsigned fuzz_bits[] = {
    M_GET, M_POST, M_PUT, M_PATCH, M_DELETE, M_HEAD, M_OPTIONS,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned method = (unsigned)data[0] | (unsigned)data[1] << 8;
    size_t len = size - 2;
    char *path = malloc(len ? len : 1);     /* exact size, not terminated */
    if (!path)
        abort();
    memcpy(path, data + 2, len);
    const struct route *got = route_match(fuzz_cfg, method, path, len);
    FUZZ_CHECK(got == fuzz_reference(method, path, len));

    /* route_path_normalize: never longer; a %00 refused; otherwise no NUL
     * but one decoded from nothing, no "//", no "." or ".." segment after
     * a slash, the leading '/' kept; and normalising again changes nothing
     * but what a second decoding does (a '%' that came from "%25") */
    char *norm = malloc(len ? len : 1);
    if (!norm)
        abort();
    size_t nl = 0;
    int rc = route_path_normalize(path, len, norm, &nl);
    if (rc == 0) {
        FUZZ_CHECK(nl <= len);
        if (route_path_is_normal(path, len))
            FUZZ_CHECK(nl == len && memcmp(norm, path, len) == 0);
        if (len > 0 && path[0] == '/')
            FUZZ_CHECK(nl > 0 && norm[0] == '/');
        for (size_t i = 0; i + 1 < nl; i++)
            FUZZ_CHECK(!(norm[i] == '/' && norm[i + 1] == '/'));
        for (size_t i = 0; i < nl; i++) {
            if (norm[i] != '/')
                continue;
            size_t e = i + 1;
            while (e < nl && norm[e] != '/')
                e++;
            size_t sl = e - i - 1;
            FUZZ_CHECK(!(sl == 1 && norm[i + 1] == '.'));
            FUZZ_CHECK(!(sl == 2 && norm[i + 1] == '.' && norm[i + 2] == '.'));
        }
        if (memchr(norm, '%', nl) == NULL) {
            char *again = malloc(nl ? nl : 1);
            size_t al = 0;
            if (!again)
                abort();
            FUZZ_CHECK(route_path_normalize(norm, nl, again, &al) == 0);
            FUZZ_CHECK(al == nl && memcmp(again, norm, nl) == 0);
            free(again);
        }
    } else {
        FUZZ_CHECK(rc == -1 && !route_path_is_normal(path, len));
    }
    free(norm);
    free(path);

    const struct http_method *m = http_method_named((const char *)data, size);
    unsigned want = 0;
    for (unsigned i = 0; i < sizeof(fuzz_methods) / sizeof(fuzz_methods[0]); i++)
        if (strlen(fuzz_methods[i]) == size && memcmp(data, fuzz_methods[i], size) == 0)
            want = fuzz_bits[i];
    FUZZ_CHECK(want ? m != NULL && m->bit == want && http_method_of(want) == m : m == NULL);
    return 0;
}
