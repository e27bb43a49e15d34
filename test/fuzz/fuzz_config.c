/*
 * fuzz_config: conf_load (lib/config.c) on arbitrary file content.
 *
 * conf_load takes a path, so the input is written to a memfd and loaded as
 * /proc/self/fd/N: the parser runs unchanged, file reading included.
 * Properties, besides "no crash, no leak, no undefined behaviour":
 *  - exactly one of: a config, or an error message;
 *  - an error reads "<path>:<line>: ..." with 1 <= line <= the number of
 *    lines in the input (a message must point into the file);
 *  - a file with a NUL byte is refused (fgets used to hide one: the rest of
 *    the line was dropped silently; test/fuzz/regress/fuzz_config/);
 *  - a config holds what validation promises: bounds, NUL-terminated
 *    strings, lease > upstream_timeout, unique route names, paths that start
 *    with '/'; one Redis deployment (url, sentinels or cluster_nodes) with
 *    what goes with it (sentinel_master, TLS files only with TLS, a client
 *    certificate with its key, a user with a password, replicas_ack_timeout
 *    below timeout);
 *  - its OpenAPI document (lib/openapi.c) is built, and every route and
 *    method in it is either one operation with the Idempotency-Key
 *    parameter or listed as shadowed by an earlier route.
 */
#include "fuzz.h"
#include "config.h"
#include "openapi.h"
#include "route.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fuzz_fd = -1;
static char fuzz_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_fd = memfd_create("fuzz_config", 0);
    if (fuzz_fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
    /* ${NAME} substitution has something to find (see fuzz_config.dict). */
    setenv("IDEM_FUZZ_PORT", "8080", 1);
    setenv("IDEM_FUZZ_PASSWORD", "s3cret", 1);
    setenv("IDEM_FUZZ_EMPTY", "", 1);
    return 0;
}

static int fuzz_terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static void fuzz_check_route(const struct config *c, int i)
{
    const struct route *r = &c->routes[i];
    FUZZ_CHECK(fuzz_terminated(r->name, sizeof(r->name)) && r->name[0]);
    FUZZ_CHECK(fuzz_terminated(r->path, sizeof(r->path)));
    FUZZ_CHECK(r->path[0] == '/' || (r->prefix && r->path[0] == '\0'));
    /* in the form requests are matched in, so that it can match at all */
    size_t pl = strlen(r->path), nl = 0;
    char norm[sizeof(r->path)];
    FUZZ_CHECK(strchr(r->path, '%') == NULL);
    FUZZ_CHECK(route_path_normalize(r->path, pl, norm, &nl) == 0 && nl == pl &&
               memcmp(norm, r->path, pl) == 0);
    FUZZ_CHECK(r->methods != 0 &&
               (r->methods & ~(unsigned)(M_GET | M_POST | M_PUT | M_PATCH | M_DELETE)) == 0);
    FUZZ_CHECK(r->ttl_ms >= 1000 && r->ttl_ms <= 8760LL * 3600 * 1000);
    FUZZ_CHECK(r->lease_ms >= 1000 && r->lease_ms > c->upstream_timeout_ms);
    FUZZ_CHECK(r->wait_timeout_ms >= 1);
    FUZZ_CHECK(fuzz_terminated(r->scope_name, sizeof(r->scope_name)));
    FUZZ_CHECK(r->scope == SCOPE_NONE ? r->scope_name[0] == '\0' : r->scope_name[0] != '\0');
    FUZZ_CHECK(r->n_fp_headers >= 0 && r->n_fp_headers <= CONF_MAX_FP_HEADERS);
    for (int h = 0; h < r->n_fp_headers; h++)
        FUZZ_CHECK(fuzz_terminated(r->fp_headers[h], sizeof(r->fp_headers[h])) &&
                   r->fp_headers[h][0]);
    FUZZ_CHECK(r->replay_status == 0 || (r->replay_status >= 100 && r->replay_status <= 599));
    FUZZ_CHECK(r->mismatch_status == 409 || r->mismatch_status == 422);
    FUZZ_CHECK(r->max_body >= 0 && r->max_store >= 0);
    for (int s = 0; s < 400; s++)
        FUZZ_CHECK(r->release[s] == 0);
    FUZZ_CHECK(r->key_max_len >= 1 && r->key_max_len <= 1024);
    for (int j = 0; j < i; j++)
        FUZZ_CHECK(strcmp(c->routes[j].name, r->name) != 0);
}

static void fuzz_check_config(const struct config *c)
{
    FUZZ_CHECK(strcmp(c->path, fuzz_path) == 0);
    FUZZ_CHECK(fuzz_terminated(c->listen_host, sizeof(c->listen_host)) && c->listen_host[0]);
    FUZZ_CHECK(c->listen_port >= 1 && c->listen_port <= 65535);
    FUZZ_CHECK(fuzz_terminated(c->upstream_host, sizeof(c->upstream_host)) &&
               c->upstream_host[0]);
    FUZZ_CHECK(c->upstream_port >= 1 && c->upstream_port <= 65535);
    FUZZ_CHECK(c->upstream_timeout_ms >= 1 && c->client_timeout_ms >= 1 &&
               c->drain_timeout_ms >= 0);
    FUZZ_CHECK(c->upstream_connections >= 1 && c->upstream_connections <= 65535);
    FUZZ_CHECK(fuzz_terminated(c->redis_host, sizeof(c->redis_host)) && c->redis_host[0]);
    FUZZ_CHECK(c->redis_port >= 1 && c->redis_port <= 65535);
    FUZZ_CHECK(c->redis_db >= 0 && c->redis_db <= 255);
    FUZZ_CHECK(fuzz_terminated(c->redis_password, sizeof(c->redis_password)));
    FUZZ_CHECK(fuzz_terminated(c->key_prefix, sizeof(c->key_prefix)));
    FUZZ_CHECK(strpbrk(c->key_prefix, "{} \t") == NULL);
    FUZZ_CHECK(c->redis_timeout_ms >= 1 && c->redis_timeout_ms <= 60000);
    /* the deployment: one of url, sentinels, cluster_nodes, and what goes with it */
    FUZZ_CHECK(fuzz_terminated(c->redis_username, sizeof(c->redis_username)));
    FUZZ_CHECK(c->redis_username[0] == '\0' || c->redis_password[0] != '\0');
    FUZZ_CHECK(!(c->sentinels.n && c->cluster_nodes.n));
    FUZZ_CHECK(c->redis_mode == (c->sentinels.n ? REDIS_SENTINEL : c->cluster_nodes.n
                                 ? REDIS_CLUSTER : REDIS_SINGLE));
    FUZZ_CHECK(c->sentinels.n <= ADDR_MAX_NODES && c->cluster_nodes.n <= ADDR_MAX_NODES);
    FUZZ_CHECK(c->redis_mode != REDIS_SENTINEL || c->sentinel_master[0] != '\0');
    FUZZ_CHECK(!c->redis_url_tls || c->redis_tls);
    FUZZ_CHECK((c->tls_cert_file[0] != '\0') == (c->tls_key_file[0] != '\0'));
    FUZZ_CHECK(c->redis_tls || (!c->tls_ca_file[0] && !c->tls_cert_file[0] &&
                                !c->tls_server_name[0]));
    FUZZ_CHECK(c->replicas_ack >= 0 && c->replicas_ack <= 16);
    FUZZ_CHECK(c->replicas_ack == 0 || c->replicas_ack_timeout_ms < c->redis_timeout_ms);
    FUZZ_CHECK(fuzz_terminated(c->admin_host, sizeof(c->admin_host)));
    FUZZ_CHECK(c->admin_port >= 0 && c->admin_port <= 65535);
    FUZZ_CHECK((c->admin_port == 0) == (c->admin_host[0] == '\0'));
    FUZZ_CHECK(c->log_level >= 0 && c->log_level <= 3);
    FUZZ_CHECK(c->n_routes >= 0 && c->n_routes <= CONF_MAX_ROUTES);
    for (int i = 0; i < c->n_routes; i++)
        fuzz_check_route(c, i);
}

/* "<path>:<line>: what" with the line inside the input. */
static void fuzz_check_openapi(const struct config *c)
{
    json_t *doc = openapi_build(c, "0");
    FUZZ_CHECK(doc != NULL);
    size_t want = 0, ops = 0;
    for (int i = 0; i < c->n_routes; i++)
        want += (size_t)__builtin_popcount(c->routes[i].methods &
                                           (M_GET | M_POST | M_PUT | M_PATCH | M_DELETE));
    const char *path, *key;
    json_t *item, *op;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        FUZZ_CHECK(path[0] == '/');
        json_object_foreach(item, key, op) {
            if (!strcmp(key, "parameters") || !strcmp(key, "description"))
                continue;
            json_t *p = json_array_get(json_object_get(op, "parameters"), 0);
            FUZZ_CHECK(!strcmp(json_string_value(json_object_get(p, "name")),
                               "Idempotency-Key"));
            ops++;
        }
    }
    FUZZ_CHECK(ops + json_array_size(json_object_get(doc, "x-idemproxy-unreachable")) == want);
    json_decref(doc);
}

static void fuzz_check_error(const char *err, const uint8_t *data, size_t size)
{
    size_t pl = strlen(fuzz_path), lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (size > 0 && data[size - 1] != '\n')
        lines++;
    FUZZ_CHECK(strncmp(err, fuzz_path, pl) == 0 && err[pl] == ':');
    char *end;
    long line = strtol(err + pl + 1, &end, 10);
    FUZZ_CHECK(end != err + pl + 1 && end[0] == ':' && end[1] == ' ' && end[2] != '\0');
    FUZZ_CHECK(line >= 1 && (size_t)line <= lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];

    if (ftruncate(fuzz_fd, 0) != 0 ||
        (size > 0 && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size)) {
        perror("memfd write");
        abort();
    }
    err[0] = '\0';
    struct config *c = conf_load(fuzz_path, err, sizeof(err));
    if (c) {
        FUZZ_CHECK(memchr(data, '\0', size) == NULL);
        fuzz_check_config(c);
        fuzz_check_openapi(c);
        conf_free(c);
    } else {
        fuzz_check_error(err, data, size);
    }
    return 0;
}
