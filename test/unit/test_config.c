/*
 * test_config: unit tests of lib/config.c, confopts.c and confval.c (parsing, defaults, bounds,
 * ${ENV}, error lines, cross checks, the shipped conf/idemproxy.conf).
 * Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "config.h"
#include "log.h"

/* Writes text to a new temp file; path in out (caller unlinks). */
static void write_tmp(const char *text, char out[64])
{
    strcpy(out, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(out);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static struct config *load_text(const char *text, char *err, size_t errlen)
{
    char path[64];
    write_tmp(text, path);
    err[0] = '\0';
    struct config *c = conf_load(path, err, errlen);
    unlink(path);
    return c;
}

/* Loading must fail; err must contain ":line:" and each of the needles. */
static void expect_error(const char *text, int line, const char *needle)
{
    char err[1024], want[32];
    struct config *c = load_text(text, err, sizeof(err));
    if (c)
        fail_msg("loaded, expected an error at line %d:\n%s", line, text);
    snprintf(want, sizeof(want), ":%d: ", line);
    if (!strstr(err, want) || (needle && !strstr(err, needle)))
        fail_msg("err \"%s\" lacks \"%s\" / \"%s\"", err, want, needle ? needle : "");
    assert_true(strncmp(err, "/tmp/test_config_", 17) == 0);
}

static void test_durations_sizes(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(conf_parse_duration("30s", &v), 0); assert_int_equal(v, 30000);
    assert_int_equal(conf_parse_duration("250ms", &v), 0); assert_int_equal(v, 250);
    assert_int_equal(conf_parse_duration("2m", &v), 0); assert_int_equal(v, 120000);
    assert_int_equal(conf_parse_duration("24h", &v), 0); assert_int_equal(v, 86400000);
    assert_int_equal(conf_parse_duration("0", &v), 0); assert_int_equal(v, 0);
    assert_int_equal(conf_parse_duration("30", &v), -1);
    assert_int_equal(conf_parse_duration("7d", &v), -1);
    assert_int_equal(conf_parse_duration("", &v), -1);
    assert_int_equal(conf_parse_duration("-1s", &v), -1);
    assert_int_equal(conf_parse_duration("1.5s", &v), -1);
    assert_int_equal(conf_parse_duration("99999999999999999999h", &v), -1);
    assert_int_equal(conf_parse_size("1m", &v), 0); assert_int_equal(v, 1048576);
    assert_int_equal(conf_parse_size("64k", &v), 0); assert_int_equal(v, 65536);
    assert_int_equal(conf_parse_size("100", &v), 0); assert_int_equal(v, 100);
    assert_int_equal(conf_parse_size("0", &v), 0); assert_int_equal(v, 0);
    assert_int_equal(conf_parse_size("1g", &v), -1);
    assert_int_equal(conf_parse_size("k", &v), -1);
    assert_int_equal(conf_parse_size("1 m", &v), -1);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[1024];
    struct config *c = load_text("[route a]\npath = /a\n", err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(c->listen_host, "0.0.0.0");
    assert_int_equal(c->listen_port, 8080);
    assert_string_equal(c->upstream_host, "127.0.0.1");
    assert_int_equal(c->upstream_port, 9000);
    assert_int_equal(c->upstream_timeout_ms, 30000);
    assert_int_equal(c->client_timeout_ms, 60000);
    assert_int_equal(c->drain_timeout_ms, 30000);
    assert_int_equal(c->max_body, 1 << 20);
    assert_int_equal(c->max_headers, 64 << 10);
    assert_int_equal(c->passthrough_max_body, 0);
    assert_int_equal(c->client_header_timeout_ms, 10000);
    assert_int_equal(c->client_body_timeout_ms, 30000);
    assert_int_equal(c->send_timeout_ms, 30000);
    assert_int_equal(c->upstream_connections, 256);
    assert_string_equal(c->redis_host, "127.0.0.1");
    assert_int_equal(c->redis_port, 6379);
    assert_int_equal(c->redis_db, 0);
    assert_string_equal(c->redis_password, "");
    assert_string_equal(c->key_prefix, "idem:");
    assert_int_equal(c->redis_timeout_ms, 1000);
    assert_string_equal(c->admin_host, "127.0.0.1");
    assert_int_equal(c->admin_port, 9901);
    assert_int_equal(c->log_level, LOG_INFO);
    assert_int_equal(c->n_routes, 1);
    const struct route *r = &c->routes[0];
    assert_string_equal(r->name, "a");
    assert_string_equal(r->path, "/a");
    assert_int_equal(r->prefix, 0);
    assert_int_equal(r->methods, M_POST);
    assert_int_equal(r->require_key, 1);
    assert_int_equal(r->store_set_cookie, 0);
    assert_int_equal(r->ttl_ms, 24 * 3600000LL);
    assert_int_equal(r->lease_ms, 60000);
    assert_int_equal(r->wait_timeout_ms, 30000);
    assert_int_equal(r->scope, SCOPE_NONE);
    assert_int_equal(r->fingerprint_body, FP_BODY_RAW);
    assert_int_equal(r->n_fp_headers, 1);
    assert_string_equal(r->fp_headers[0], "Authorization");
    assert_int_equal(r->replay_status, 0);
    assert_int_equal(r->mismatch_status, 409);
    assert_int_equal(r->in_flight, IN_FLIGHT_REJECT);
    assert_int_equal(r->on_store_error, STORE_ERROR_REJECT);
    assert_int_equal(r->error_format, ERROR_FORMAT_JSON);
    assert_int_equal(r->max_body, 1 << 20);
    assert_int_equal(r->max_store, 1 << 20);
    assert_int_equal(r->key_max_len, 255);
    assert_true(r->release[500] && r->release[599] && r->release[408] &&
                r->release[425] && r->release[429]);
    assert_false(r->release[200] || r->release[409] || r->release[499]);
    conf_free(c);

    c = load_text("", err, sizeof(err));      /* no routes: valid */
    assert_non_null(c);
    assert_int_equal(c->n_routes, 0);
    conf_free(c);
}

static void test_every_type(void **state)
{
    (void)state;
    char err[1024];
    struct config *c = load_text(
        "# comment\n"
        "[proxy]\n"
        "listen = [::1]:8081 ; inline comment\n"
        "upstream = http://backend.local:8000/\n"
        "upstream_timeout = 1500ms\n"
        "drain_timeout = 0\n"
        "max_body = 2m\n"
        "max_headers = 8k\n"
        "passthrough_max_body = 1048576\n"
        "client_header_timeout = 2s\n"
        "send_timeout = 1m\n"
        "upstream_connections = 10\n"
        "[redis]\n"
        "url = redis://:s3cret@redis.local:6380/3\n"
        "key_prefix = x:\n"
        "timeout = 250ms\n"
        "[admin]\n"
        "listen = off\n"
        "[log]\n"
        "level = debug\n"
        "[route r1]\n"
        "path = /v1/orders/*\n"
        "methods = post, PUT PATCH,DELETE\n"
        "require_key = no\n"
        "store_set_cookie = true\n"
        "ttl = 1h\n"
        "lease = 2s\n"
        "wait_timeout = 5s\n"
        "scope = header:X-Tenant-Id\n"
        "fingerprint_body = json\n"
        "fingerprint_headers = Authorization, X-User ,Cookie\n"
        "replay_status = 200\n"
        "mismatch_status = 422\n"
        "in_flight = wait\n"
        "on_store_error = pass\n"
        "error_format = problem\n"
        "max_store = 10k\n"
        "release_on = 4xx,503\n"
        "key_max_length = 1024\n"
        "[route r2]\n"
        "path = /jobs\n"
        "scope = json:tenantId\n"
        "max_body = 5\n"
        "methods = GET\n"
        "fingerprint_headers = none\n"
        "release_on = none\n",
        err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    assert_string_equal(c->listen_host, "::1");
    assert_int_equal(c->listen_port, 8081);
    assert_string_equal(c->upstream_host, "backend.local");
    assert_int_equal(c->upstream_port, 8000);
    assert_int_equal(c->upstream_timeout_ms, 1500);
    assert_int_equal(c->drain_timeout_ms, 0);
    assert_int_equal(c->max_body, 2 << 20);
    assert_int_equal(c->max_headers, 8192);
    assert_int_equal(c->passthrough_max_body, 1048576);
    assert_int_equal(c->client_header_timeout_ms, 2000);
    assert_int_equal(c->send_timeout_ms, 60000);
    assert_int_equal(c->upstream_connections, 10);
    assert_string_equal(c->redis_host, "redis.local");
    assert_int_equal(c->redis_port, 6380);
    assert_int_equal(c->redis_db, 3);
    assert_string_equal(c->redis_password, "s3cret");
    assert_string_equal(c->key_prefix, "x:");
    assert_int_equal(c->redis_timeout_ms, 250);
    assert_int_equal(c->admin_port, 0);
    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_int_equal(c->n_routes, 2);
    const struct route *r = &c->routes[0];
    assert_string_equal(r->path, "/v1/orders");
    assert_int_equal(r->prefix, 1);
    assert_int_equal(r->methods, M_POST | M_PUT | M_PATCH | M_DELETE);
    assert_int_equal(r->require_key, 0);
    assert_int_equal(r->store_set_cookie, 1);
    assert_int_equal(r->ttl_ms, 3600000);
    assert_int_equal(r->lease_ms, 2000);
    assert_int_equal(r->wait_timeout_ms, 5000);
    assert_int_equal(r->scope, SCOPE_HEADER);
    assert_string_equal(r->scope_name, "X-Tenant-Id");
    assert_int_equal(r->fingerprint_body, FP_BODY_JSON);
    assert_int_equal(r->n_fp_headers, 3);
    assert_string_equal(r->fp_headers[1], "X-User");
    assert_string_equal(r->fp_headers[2], "Cookie");
    assert_int_equal(r->replay_status, 200);
    assert_int_equal(r->mismatch_status, 422);
    assert_int_equal(r->in_flight, IN_FLIGHT_WAIT);
    assert_int_equal(r->on_store_error, STORE_ERROR_PASS);
    assert_int_equal(r->error_format, ERROR_FORMAT_PROBLEM);
    assert_int_equal(r->max_body, 2 << 20);      /* from [proxy], set earlier */
    assert_int_equal(r->max_store, 10240);
    assert_int_equal(r->key_max_len, 1024);
    r = &c->routes[1];
    assert_string_equal(r->path, "/jobs");
    assert_int_equal(r->prefix, 0);
    assert_int_equal(r->scope, SCOPE_JSON);
    assert_string_equal(r->scope_name, "tenantId");
    assert_int_equal(r->max_body, 5);
    assert_int_equal(r->methods, M_GET);
    assert_int_equal(r->n_fp_headers, 0);
    for (int i = 0; i < 600; i++)
        assert_int_equal(r->release[i], 0);
    conf_free(c);
}

static void test_release_list(void **state)
{
    (void)state;
    char err[1024];
    struct config *c = load_text("[route a]\npath = /a\nrelease_on = 5xx 408, 425 429\n"
                                 "[route b]\npath = /b\nrelease_on = 4XX\n", err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    const struct route *r = &c->routes[0];
    for (int i = 0; i < 600; i++) {
        int want = (i >= 500 && i <= 599) || i == 408 || i == 425 || i == 429;
        assert_int_equal(r->release[i], want);
    }
    r = &c->routes[1];
    for (int i = 0; i < 600; i++)
        assert_int_equal(r->release[i], i >= 400 && i <= 499);
    conf_free(c);
    expect_error("[route a]\npath = /a\nrelease_on = 5xx 200\n", 3, "release_on");
    expect_error("[route a]\npath = /a\nrelease_on = 3xx\n", 3, "4xx/5xx");
    expect_error("[route a]\npath = /a\nrelease_on = 600\n", 3, "400-599");
}

static void test_prefix_path(void **state)
{
    (void)state;
    char err[1024];
    struct config *c = load_text("[route a]\npath = /v1/*\n[route b]\npath = /v1/x/\n",
                                 err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    assert_string_equal(c->routes[0].path, "/v1");
    assert_int_equal(c->routes[0].prefix, 1);
    assert_string_equal(c->routes[1].path, "/v1/x/");
    assert_int_equal(c->routes[1].prefix, 0);
    conf_free(c);
    expect_error("[route a]\npath = v1\n", 2, "must start with '/'");
    expect_error("[route a]\npath = /v1/*/x\n", 2, "'*'");
    expect_error("[route a]\npath = /v1?x=1\n", 2, "path");
    /* requests are matched decoded and normalised: such a path never matched */
    expect_error("[route a]\npath = //v1/orders\n", 2, "write \"/v1/orders\"");
    expect_error("[route a]\npath = /v1/./orders/*\n", 2, "write \"/v1/orders/*\"");
    expect_error("[route a]\npath = /v1/x/../orders\n", 2, "write \"/v1/orders\"");
    expect_error("[route a]\npath = /v1/caf%C3%A9\n", 2, "without percent-encoding");
    /* an empty ${VAR} must not drop Authorization from the fingerprint */
    expect_error("[route a]\npath = /a\nfingerprint_headers =\n", 3, "write none");
    expect_error("[route a]\npath = /a\nfingerprint_headers = , ,\n", 3, "write none");
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_error("[proxy]\nlisten = 8080\n", 2, "[proxy] listen");
    expect_error("[proxy]\n\nlisten = host:70000\n", 3, "1-65535");
    expect_error("[proxy]\nupstream = https://x:1\n", 2, "http://");
    expect_error("[proxy]\nupstream = http://x:1/api\n", 2, "path");
    expect_error("[proxy]\nupstream_timeout = 30\n", 2, "ms, s, m or h");
    expect_error("[proxy]\nupstream_timeout = 0\n", 2, "out of bounds");
    expect_error("[proxy]\nmax_body = 1x\n", 2, "not a size");
    expect_error("[proxy]\nmax_headers = 10\n", 2, "out of bounds");
    expect_error("[proxy]\nupstream_connections = 0\n", 2, "1 to 65535");
    expect_error("[proxy]\nupstream_connections = many\n", 2, "whole number");
    expect_error("[redis]\nurl = http://x\n", 2, "redis://");
    expect_error("[redis]\nurl = redis://u:p%zz@x\n", 2, "%-escape");
    expect_error("[redis]\nurl = redis://x?db=1\n", 2, "query");
    expect_error("[redis]\nurl = redis://x/abc\n", 2, "database");
    expect_error("[redis]\nurl = redis://:a@x\npassword = b\n", 3, "one place");
    expect_error("[redis]\npassword = b\nurl = redis://:a@x\n", 3, "one place");
    expect_error("[redis]\nkey_prefix = a{b}\n", 2, "key_prefix");
    expect_error("[admin]\nlisten = on\n", 2, "or off");
    expect_error("[log]\nlevel = loud\n", 2, "debug or info or warn or error");
    expect_error("[route a]\npath = /a\nmethods = FETCH\n", 3, "GET POST PUT PATCH DELETE");
    expect_error("[route a]\npath = /a\nmethods = ,\n", 3, "no methods");
    expect_error("[route a]\npath = /a\nrequire_key = maybe\n", 3, "on or off");
    expect_error("[route a]\npath = /a\nttl = 7d\n", 3, "[route a] ttl");
    expect_error("[route a]\npath = /a\nscope = cookie:x\n", 3, "header:NAME");
    expect_error("[route a]\npath = /a\nscope = header:\n", 3, "header name");
    expect_error("[route a]\npath = /a\nscope = json:\n", 3, "json:FIELD");
    expect_error("[route a]\npath = /a\nfingerprint_body = xml\n", 3, "raw or json");
    expect_error("[route a]\npath = /a\nfingerprint_headers = A B, C:D\n", 3, "header name");
    expect_error("[route a]\npath = /a\nreplay_status = 99\n", 3, "original");
    expect_error("[route a]\npath = /a\nmismatch_status = 400\n", 3, "409 or 422");
    expect_error("[route a]\npath = /a\nin_flight = queue\n", 3, "reject or wait");
    expect_error("[route a]\npath = /a\non_store_error = ignore\n", 3, "reject or pass");
    expect_error("[route a]\npath = /a\nerror_format = xml\n", 3, "json or problem");
    expect_error("[route a]\npath = /a\nkey_max_length = 2000\n", 3, "1 to 1024");
    expect_error("[route a]\npath = /a\nstore_set_cookie = 2\n", 3, "on or off");
}

static void test_structure_errors(void **state)
{
    (void)state;
    expect_error("[proxy]\nlisten = 1.2.3.4:1\n[proxi]\nx = 1\n", 3, "unknown section");
    expect_error("[proxy]\nlisten = 1.2.3.4:1\nlistn = 1.2.3.4:2\n", 3, "unknown key");
    expect_error("[route a]\npath = /a\nttl_ms = 1s\n", 3, "unknown key");
    expect_error("[proxy]\nmax_response = 16m\n", 2, "no longer used");
    expect_error("[proxy]\nlisten = 1.2.3.4:1\n\nlisten = 1.2.3.4:2\n", 4,
                 "duplicate key, already set on line 2");
    expect_error("[proxy]\nmax_body = 1k\n[redis]\n[proxy]\nmax_body = 2k\n", 5, "duplicate");
    expect_error("[route a]\npath = /a\n[route a]\npath = /b\n", 3, "duplicate route name");
    expect_error("[route a]\npath = /a\n[route b]\nttl = 1h\n", 3, "path is required");
    expect_error("[route a]\n[route b]\npath = /b\n", 1, "path is required");
    expect_error("[route]\npath = /b\n", 1, "needs a name");
    expect_error("listen = 1.2.3.4:1\n", 1, "outside any section");
    expect_error("[proxy]\nthis is not ini\n", 2, "syntax error");
    expect_error("[proxy\nlisten = 1.2.3.4:1\n", 1, "syntax error");
    expect_error("[route a]\npath = /a\n  /b\n", 3, "indented");
    char big[400];
    snprintf(big, sizeof(big), "[proxy]\nkey_prefix = %0300d\n", 1);
    expect_error(big, 2, "line longer");

    char text[CONF_MAX_ROUTES * 40 + 100];
    size_t n = 0;
    for (int i = 0; i <= CONF_MAX_ROUTES; i++)
        n += snprintf(text + n, sizeof(text) - n, "[route r%d]\npath = /r%d\n", i, i);
    expect_error(text, 2 * CONF_MAX_ROUTES + 1, "too many routes");
}

/* Loading n bytes (NUL bytes included) must fail at line with needle. */
static void expect_error_bytes(const char *bytes, size_t n, int line, const char *needle)
{
    char path[64], err[1024], want[32];
    strcpy(path, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, n), (ssize_t)n);
    close(fd);
    err[0] = '\0';
    struct config *c = conf_load(path, err, sizeof(err));
    unlink(path);
    if (c)
        fail_msg("loaded, expected an error at line %d", line);
    snprintf(want, sizeof(want), ":%d: ", line);
    if (!strstr(err, want) || !strstr(err, needle))
        fail_msg("err \"%s\" lacks \"%s\" / \"%s\"", err, want, needle);
}

/* fuzz_config found it (test/fuzz/regress/fuzz_config/): fgets hid a NUL
 * byte, so the rest of the line was dropped silently, or, in a line longer
 * than inih's buffer, read as a line of its own (an error on a line that
 * does not exist). A NUL byte is now an error on its own line. */
static void test_nul_byte(void **state)
{
    (void)state;
    static const char tail[] = "[proxy]\nlisten = 1.2.3.4:80\0garbage\n";
    expect_error_bytes(tail, sizeof(tail) - 1, 2, "NUL byte");
    static const char path[] = "[route a]\npath = /v1/orders\0/*\n";
    expect_error_bytes(path, sizeof(path) - 1, 2, "NUL byte");
    static const char last[] = "[route a]\npath = /a\n; c\0";
    expect_error_bytes(last, sizeof(last) - 1, 3, "NUL byte");
    char one[300];
    memset(one, 'x', sizeof(one));
    memcpy(one, "[proxy]\0", 8);
    one[sizeof(one) - 1] = '\n';
    expect_error_bytes(one, sizeof(one), 1, "");
}

static void test_env(void **state)
{
    (void)state;
    char err[1024];
    setenv("IDEM_TEST_PORT", "7001", 1);
    setenv("IDEM_TEST_PW", "pw", 1);
    struct config *c = load_text("[proxy]\nlisten = 127.0.0.1:${IDEM_TEST_PORT}\n"
                                 "[redis]\npassword = ${IDEM_TEST_PW}-x$y\n",
                                 err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->listen_port, 7001);
    assert_string_equal(c->redis_password, "pw-x$y");
    conf_free(c);
    unsetenv("IDEM_TEST_UNSET");
    expect_error("[proxy]\n\nupstream = http://${IDEM_TEST_UNSET}:1\n", 3,
                 "${IDEM_TEST_UNSET}: the environment variable is not set");
    expect_error("[proxy]\nupstream = http://${IDEM_TEST_PORT\n", 2, "closing");
}

static void test_lease_vs_upstream_timeout(void **state)
{
    (void)state;
    expect_error("[route a]\npath = /a\nlease = 10s\n", 3,
                 "lease (10s) must exceed [proxy] upstream_timeout (30s)");
    expect_error("[route a]\npath = /a\nlease = 30s\n", 3, "must exceed");
    expect_error("[route a]\npath = /a\n[proxy]\nupstream_timeout = 2m\n", 1,
                 "lease (1m) must exceed [proxy] upstream_timeout (2m)");
    char err[1024];
    struct config *c = load_text("[route a]\npath = /a\nlease = 31s\n", err, sizeof(err));
    assert_non_null(c);
    conf_free(c);
}

static void test_route_max_body_from_proxy(void **state)
{
    (void)state;
    char err[1024];
    struct config *c = load_text("[route a]\npath = /a\n[route b]\npath = /b\nmax_body = 3k\n"
                                 "[proxy]\nmax_body = 4m\n", err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->routes[0].max_body, 4 << 20);
    assert_int_equal(c->routes[1].max_body, 3072);
    conf_free(c);
}

static void test_open_error(void **state)
{
    (void)state;
    char err[256];
    assert_null(conf_load("/nonexistent/idem.conf", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/idem.conf: cannot open"));
}

static void test_shipped_config(void **state)
{
    (void)state;
    char err[1024];
    struct config *c = conf_load("conf/idemproxy.conf", err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_int_equal(c->upstream_port, 9000);
    assert_int_equal(c->redis_port, 6379);
    assert_int_equal(c->admin_port, 9901);
    assert_int_equal(c->n_routes, 4);
    assert_string_equal(c->routes[0].name, "orders");
    assert_string_equal(c->routes[0].path, "/v1/orders");
    assert_int_equal(c->routes[0].scope, SCOPE_NONE);
    assert_int_equal(c->routes[0].fingerprint_body, FP_BODY_JSON);
    assert_int_equal(c->routes[0].ttl_ms, 72 * 3600000LL);
    assert_string_equal(c->routes[1].path, "/v1/payments");
    assert_string_equal(c->routes[2].name, "jobs");
    assert_int_equal(c->routes[2].scope, SCOPE_JSON);
    assert_string_equal(c->routes[2].scope_name, "tenantId");
    assert_int_equal(c->routes[2].replay_status, 200);
    assert_int_equal(c->routes[3].ttl_ms, 168 * 3600000LL);
    conf_free(c);
}

/* The option table as `idemproxy -T options` and the man page see it. */
static const struct conf_opt_info *find_opt(const char *section, const char *name)
{
    static struct conf_opt_info o;
    for (int i = 0; conf_option(i, &o) == 0; i++)
        if (strcmp(o.section, section) == 0 && strcmp(o.name, name) == 0)
            return &o;
    fail_msg("no option [%s] %s", section, name);
    return NULL;
}

static void test_option_table(void **state)
{
    (void)state;
    struct conf_opt_info o;
    int n = 0;
    while (conf_option(n, &o) == 0) {
        assert_non_null(o.section);
        assert_true(o.name[0] != '\0');
        assert_true(o.type[0] != '\0');
        n++;
    }
    assert_true(n >= 35);
    assert_int_equal(conf_option(-1, &o), -1);
    assert_int_equal(conf_option(n, &o), -1);

    const struct conf_opt_info *p = find_opt("proxy", "upstream_timeout");
    assert_string_equal(p->type, "duration");
    assert_string_equal(p->def, "30s");
    assert_string_equal(p->min, "1ms");
    assert_string_equal(p->max, "24h");
    p = find_opt("proxy", "max_body");
    assert_string_equal(p->type, "size");
    assert_string_equal(p->min, "0");
    assert_string_equal(p->max, "1024m");        /* a size takes k or m, not g */
    p = find_opt("proxy", "workers");
    assert_string_equal(p->def, "0");
    assert_string_equal(p->min, "0");
    assert_string_equal(p->max, "256");
    p = find_opt("redis", "key_prefix");
    assert_string_equal(p->type, "string");
    assert_string_equal(p->max, "63");
    p = find_opt("admin", "listen");
    assert_string_equal(p->values, "off");
    p = find_opt("admin", "token");
    assert_string_equal(p->def, "");
    p = find_opt("log", "level");
    assert_string_equal(p->values, "debug|info|warn|error");
    p = find_opt("route", "path");
    assert_null(p->def);
    p = find_opt("route", "methods");
    assert_string_equal(p->values, "GET|POST|PUT|PATCH|DELETE");
    p = find_opt("route", "mode");
    assert_string_equal(p->def, "enforce");
    assert_string_equal(p->values, "enforce|observe");
    p = find_opt("route", "replay_status");
    assert_string_equal(p->values, "original");
    assert_string_equal(p->min, "100");
    p = find_opt("route", "max_body");
    assert_null(p->def);                          /* [proxy] max_body */

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(conf_write_options(f), 0);
    fclose(f);
    int lines = 0;
    for (char *q = buf; *q; q++)
        lines += *q == '\n';
    assert_int_equal(lines, n + 2);               /* "[", one per option, "]" */
    json_error_t e;
    json_t *all = json_loads(buf, 0, &e);
    if (all == NULL)
        fail_msg("not JSON: %s", e.text);
    assert_int_equal(json_array_size(all), n);
    json_t *path = NULL, *pw = NULL, *level = NULL, *url = NULL, *timeout = NULL;
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_t *row = json_array_get(all, i);
        const char *sect = json_string_value(json_object_get(row, "section"));
        const char *name = json_string_value(json_object_get(row, "name"));
        if (strcmp(sect, "route") == 0 && strcmp(name, "path") == 0) path = row;
        if (strcmp(sect, "redis") == 0 && strcmp(name, "password") == 0) pw = row;
        if (strcmp(sect, "redis") == 0 && strcmp(name, "url") == 0) url = row;
        if (strcmp(sect, "redis") == 0 && strcmp(name, "timeout") == 0) timeout = row;
        if (strcmp(sect, "log") == 0 && strcmp(name, "level") == 0) level = row;
    }
    assert_non_null(path);
    assert_non_null(pw);
    assert_non_null(level);
    assert_true(json_is_true(json_object_get(url, "restart")));
    assert_true(json_is_false(json_object_get(timeout, "restart")));
    assert_true(json_is_false(json_object_get(pw, "restart")));
    assert_string_equal(json_string_value(json_object_get(path, "name")), "path");
    assert_true(json_is_null(json_object_get(path, "default")));
    assert_string_equal(json_string_value(json_object_get(pw, "name")), "password");
    assert_string_equal(json_string_value(json_object_get(pw, "default")), "");
    assert_true(json_is_null(json_object_get(pw, "min")));
    assert_string_equal(json_string_value(json_object_get(pw, "max")), "255");
    assert_int_equal(json_array_size(json_object_get(level, "values")), 4);
    assert_string_equal(json_string_value(json_array_get(json_object_get(level, "values"), 3)),
                        "error");
    json_decref(all);
    free(buf);
}


/* [redis]: the URL's forms, ACL users, TLS, sentinels and cluster_nodes. */
static void test_redis_deployments(void **state)
{
    (void)state;
    char err[1024], path[64];
    struct config *c = load_text("[redis]\nurl = rediss://idem:p%40ss@redis.internal:6380/2\n",
                                 err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    assert_string_equal(c->redis_host, "redis.internal");
    assert_int_equal(c->redis_port, 6380);
    assert_int_equal(c->redis_db, 2);
    assert_int_equal(c->redis_tls, 1);
    assert_string_equal(c->redis_username, "idem");
    assert_string_equal(c->redis_password, "p@ss");
    assert_int_equal(c->redis_mode, REDIS_SINGLE);
    conf_free(c);

    c = load_text("[redis]\nurl = rediss://idem@h\npassword = pw\n", err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    assert_string_equal(c->redis_username, "idem");
    assert_string_equal(c->redis_password, "pw");
    conf_free(c);

    c = load_text("[redis]\nsentinels = 10.0.0.1, 10.0.0.2:26380 [::1]:5\n"
                  "sentinel_master = idem\nsentinel_password = sp\nusername = u\npassword = p\n"
                  "tls = on\nreplicas_ack = 1\nreplicas_ack_timeout = 50ms\n", err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->redis_mode, REDIS_SENTINEL);
    assert_int_equal(c->sentinels.n, 3);
    assert_string_equal(c->sentinels.v[0].host, "10.0.0.1");
    assert_int_equal(c->sentinels.v[0].port, 26379);
    assert_int_equal(c->sentinels.v[1].port, 26380);
    assert_string_equal(c->sentinels.v[2].host, "::1");
    assert_string_equal(c->sentinel_master, "idem");
    assert_int_equal(c->redis_tls, 1);
    assert_int_equal(c->replicas_ack, 1);
    assert_int_equal(c->replicas_ack_timeout_ms, 50);
    assert_int_equal(conf_line(c, "redis", "sentinel_master"), 3);
    assert_int_equal(conf_line(c, "redis", "url"), 0);
    conf_free(c);

    c = load_text("[redis]\ncluster_nodes = a:7000,b:7001\n", err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->redis_mode, REDIS_CLUSTER);
    assert_int_equal(c->cluster_nodes.n, 2);
    assert_string_equal(c->cluster_nodes.v[1].host, "b");
    assert_int_equal(c->cluster_nodes.v[1].port, 7001);
    assert_int_equal(c->replicas_ack_timeout_ms, 100);
    conf_free(c);

    /* one of url, sentinels, cluster_nodes: the later line is named */
    expect_error("[redis]\nurl = redis://h\nsentinels = a\nsentinel_master = m\n", 3,
                 "[redis] sentinels: url is also set (line 2)");
    expect_error("[redis]\ncluster_nodes = a\n\nurl = redis://h\n", 4,
                 "[redis] url: cluster_nodes is also set (line 2)");
    expect_error("[redis]\ncluster_nodes = a\nsentinels = b\nsentinel_master = m\n", 3,
                 "one of url, sentinels or cluster_nodes");
    expect_error("[redis]\nsentinels = a\n", 2, "sentinel_master is required");
    expect_error("[redis]\nsentinel_master = m\n", 2, "only with sentinels");
    expect_error("[redis]\ncluster_nodes = a\nsentinel_password = x\n", 3, "only with sentinels");
    expect_error("[redis]\nsentinels = a, a:26379\n", 2, "listed twice");
    expect_error("[redis]\ncluster_nodes = ,\n", 2, "no address");
    /* TLS */
    expect_error("[redis]\nurl = rediss://h\ntls = off\n", 3, "rediss://");
    expect_error("[redis]\ntls_server_name = x\n", 2, "TLS is off");
    expect_error("[redis]\ntls = on\ntls_ca_file = /nonexistent/ca.pem\n", 3, "cannot read");
    write_tmp("not a certificate", path);
    char text[512];
    snprintf(text, sizeof(text), "[redis]\ntls = on\ntls_cert_file = %s\n", path);
    expect_error(text, 3, "needs both tls_cert_file and tls_key_file");
    snprintf(text, sizeof(text), "[redis]\ntls_ca_file = %s\n", path);
    expect_error(text, 2, "TLS is off");
    unlink(path);
    /* users, passwords, replicas */
    expect_error("[redis]\nusername = idem\n", 2, "needs its password");
    expect_error("[redis]\nurl = redis://idem@h\n", 2, "needs its password");
    expect_error("[redis]\nurl = redis://a:b@h\nusername = c\n", 3, "one place");
    expect_error("[redis]\nusername = c\nurl = redis://a:b@h\n", 3, "one place");
    expect_error("[redis]\nreplicas_ack = 1\nreplicas_ack_timeout = 1s\n", 3,
                 "less than [redis] timeout");
    expect_error("[redis]\nreplicas_ack = 17\n", 2, "0 to 16");
}

/* A reload keeps the restart-only options and says which changed. */
static void test_restart_options(void **state)
{
    (void)state;
    char err[1024], out[512];
    struct config *a = load_text("[proxy]\nworkers = 2\nupstream_connections = 8\n"
                                 "[redis]\nurl = redis://h:1\npassword = one\ntimeout = 1s\n"
                                 "key_prefix = p:\n", err, sizeof(err));
    struct config *b = load_text("[proxy]\nworkers = 3\nupstream_connections = 9\n"
                                 "[redis]\nurl = redis://h:2\npassword = two\ntimeout = 2s\n"
                                 "key_prefix = p:\n", err, sizeof(err));
    struct config *same = load_text("[proxy]\nworkers = 2\nupstream_connections = 8\n"
                                    "[redis]\npassword = three\nurl = redis://h:1\n"
                                    "key_prefix = p:\n", err, sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(same);
    assert_int_equal(conf_restart_changes(a, b, out, sizeof(out)), 3);
    assert_string_equal(out, "[proxy] upstream_connections, [proxy] workers, [redis] url");
    assert_int_equal(conf_restart_changes(a, same, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    conf_keep_restart(b, a);
    assert_int_equal(b->workers, 2);
    assert_int_equal(b->upstream_connections, 8);
    assert_int_equal(b->redis_port, 1);
    assert_string_equal(b->redis_password, "two");      /* applies: next connection */
    assert_int_equal(b->redis_timeout_ms, 2000);        /* applies */
    assert_int_equal(conf_restart_changes(a, b, out, sizeof(out)), 0);
    /* a string left longer in the buffer by its default is not a change */
    struct config *pre = load_text("[redis]\nkey_prefix = ab\n", err, sizeof(err));
    struct config *pre2 = load_text("[redis]\nkey_prefix = ab\n", err, sizeof(err));
    assert_non_null(pre);
    memcpy(pre2->key_prefix, "ab\0m:", 6);
    assert_int_equal(conf_restart_changes(pre, pre2, out, sizeof(out)), 0);
    conf_free(a);
    conf_free(b);
    conf_free(same);
    conf_free(pre);
    conf_free(pre2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations_sizes),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_release_list),
        cmocka_unit_test(test_prefix_path),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_lease_vs_upstream_timeout),
        cmocka_unit_test(test_route_max_body_from_proxy),
        cmocka_unit_test(test_open_error),
        cmocka_unit_test(test_shipped_config),
        cmocka_unit_test(test_option_table),
        cmocka_unit_test(test_redis_deployments),
        cmocka_unit_test(test_restart_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
