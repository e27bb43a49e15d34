/*
 * test_openapi: unit tests of lib/openapi.c (`idemproxy -T openapi`) and
 * lib/errcode.c: the shipped config's document, then one config with every
 * setting that changes what idemproxy answers (require_key, mode,
 * mismatch_status, error_format, scope, on_store_error, in_flight, prefix
 * paths, braces, shadowed routes). Run from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "errcode.h"
#include "openapi.h"

/* root[k1][k2]..., NULL-terminated keys; NULL when a key is missing. */
static json_t *at(json_t *root, ...)
{
    va_list ap;
    va_start(ap, root);
    for (const char *k; root != NULL && (k = va_arg(ap, const char *)) != NULL;)
        root = json_object_get(root, k);
    va_end(ap);
    return root;
}

static struct config *load_text(const char *text)
{
    char path[] = "/tmp/test_openapi_XXXXXX", err[1024];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct config *c = conf_load(path, err, sizeof(err));
    unlink(path);
    if (c == NULL)
        fail_msg("%s", err);
    return c;
}

/* The Idempotency-Key parameter of an operation; fails if it has none. */
static json_t *key_param(json_t *op)
{
    json_t *p;
    size_t i;
    json_array_foreach(json_object_get(op, "parameters"), i, p)
        if (strcmp(json_string_value(json_object_get(p, "name")), "Idempotency-Key") == 0) {
            assert_string_equal(json_string_value(json_object_get(p, "in")), "header");
            return p;
        }
    fail_msg("no Idempotency-Key parameter");
    return NULL;
}

/* The example for code in response `status` of op, under content type ct. */
static json_t *example(json_t *op, const char *status, const char *ct, const char *code)
{
    return at(op, "responses", status, "content", ct, "examples", code, "value", NULL);
}

/* Every {"$ref": "#/a/b"} in v resolves in doc. */
static void check_refs(json_t *doc, json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_t *ref = json_object_get(v, "$ref");
        if (ref != NULL) {
            char buf[256], *save = NULL;
            snprintf(buf, sizeof(buf), "%s", json_string_value(ref));
            assert_true(strncmp(buf, "#/", 2) == 0);
            json_t *target = doc;
            for (char *t = strtok_r(buf + 2, "/", &save); t; t = strtok_r(NULL, "/", &save))
                target = json_object_get(target, t);
            if (target == NULL)
                fail_msg("$ref %s does not resolve", json_string_value(ref));
        }
        json_object_foreach(v, k, x)
            check_refs(doc, x);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
            check_refs(doc, x);
    }
}

/* Every example's code is in the schema's enum and carries its message. */
static void check_examples(json_t *doc)
{
    json_t *codes = at(doc, "components", "schemas", "IdempotencyError", "properties", "error",
                       "properties", "code", "enum", NULL);
    assert_non_null(codes);
    const char *path, *method, *status, *ct, *code;
    json_t *item, *op, *resp, *media, *ex;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
        json_object_foreach(item, method, op) {
            if (strcmp(method, "parameters") == 0 || strcmp(method, "description") == 0)
                continue;
            json_object_foreach(json_object_get(op, "responses"), status, resp)
                json_object_foreach(json_object_get(resp, "content"), ct, media)
                    json_object_foreach(json_object_get(media, "examples"), code, ex) {
                        json_t *v = json_object_get(ex, "value");
                        int problem = strcmp(ct, "application/problem+json") == 0;
                        const char *got = json_string_value(
                            problem ? json_object_get(v, "code") : at(v, "error", "code", NULL));
                        const char *msg = json_string_value(
                            problem ? json_object_get(v, "detail")
                                    : at(v, "error", "message", NULL));
                        assert_string_equal(got, code);
                        assert_string_equal(msg, errcode_message(code));
                        if (problem)
                            assert_int_equal(json_integer_value(json_object_get(v, "status")),
                                             atoi(status));
                        int found = 0;
                        size_t i;
                        json_t *e;
                        json_array_foreach(codes, i, e)
                            found |= strcmp(json_string_value(e), code) == 0;
                        if (!found)
                            fail_msg("%s %s %s: %s not in the enum", path, method, status, code);
                        assert_non_null(strstr(json_string_value(
                                                   json_object_get(resp, "description")), code));
                    }
        }
}

static void test_errcode(void **state)
{
    (void)state;
    int n;
    const struct errcode *all = errcode_all(&n);
    assert_true(n >= 13);
    for (int i = 0; i < n; i++) {
        assert_true(strlen(all[i].message) > 10);
        assert_ptr_equal(errcode_message(all[i].code), all[i].message);
    }
    assert_string_equal(errcode_message("NO_SUCH_CODE"), "Internal error.");
}

static void test_shipped_config(void **state)
{
    (void)state;
    char err[1024];
    struct config *c = conf_load("conf/idemproxy.conf", err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    json_t *doc = openapi_build(c, "9.9.9");
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    assert_string_equal(json_string_value(at(doc, "info", "version", NULL)), "9.9.9");
    assert_int_equal(json_object_size(json_object_get(doc, "paths")), c->n_routes);
    assert_null(json_object_get(doc, "x-idemproxy-unreachable"));
    for (int i = 0; i < c->n_routes; i++) {
        json_t *op = at(doc, "paths", c->routes[i].path, "post", NULL);
        if (op == NULL)
            fail_msg("no POST %s", c->routes[i].path);
        json_t *p = key_param(op);
        assert_true(json_is_true(json_object_get(p, "required")));
        assert_int_equal(json_integer_value(at(p, "schema", "maxLength", NULL)), 255);
        assert_string_equal(json_string_value(json_object_get(op, "x-idemproxy-route")),
                            c->routes[i].name);
        assert_string_equal(json_string_value(json_object_get(op, "x-idemproxy-mode")),
                            "enforce");
        assert_non_null(at(op, "responses", "default", "headers", "Idempotent-Replayed", NULL));
        static const char *const want[] = {
            "400", "409", "413", "500", "502", "503", "504",
        };
        for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++)
            if (at(op, "responses", want[k], NULL) == NULL)
                fail_msg("%s: no %s", c->routes[i].path, want[k]);
        assert_null(at(op, "responses", "422", NULL));
        assert_non_null(example(op, "400", "application/json", "IDEMPOTENCY_KEY_REQUIRED"));
        assert_non_null(example(op, "409", "application/json", "IDEMPOTENCY_KEY_MISMATCH"));
        assert_non_null(example(op, "409", "application/json", "REQUEST_PROCESSING"));
        assert_non_null(example(op, "409", "application/json", "RESPONSE_NOT_STORED"));
        assert_non_null(example(op, "413", "application/json", "PAYLOAD_TOO_LARGE"));
        assert_non_null(example(op, "503", "application/json", "STORE_UNAVAILABLE"));
        assert_non_null(at(op, "responses", "409", "headers", "Retry-After", NULL));
    }
    /* jobs: scope json:tenantId, canonical JSON; orders: JSON body */
    json_t *jobs = at(doc, "paths", "/jobs", "post", NULL);
    assert_non_null(example(jobs, "400", "application/json", "SCOPE_REQUIRED"));
    assert_non_null(example(jobs, "400", "application/json", "INVALID_JSON_BODY"));
    assert_null(example(at(doc, "paths", "/v1/payments", "post", NULL), "400",
                        "application/json", "INVALID_JSON_BODY"));
    check_refs(doc, doc);
    check_examples(doc);
    json_decref(doc);
    conf_free(c);
}

static const char every_setting[] =
    "[proxy]\n"
    "upstream_timeout = 5s\n"
    "[route strict]\n"
    "path = /v1/pay\n"
    "methods = POST PUT\n"
    "lease = 10s\n"
    "mismatch_status = 422\n"
    "error_format = problem\n"
    "scope = header:X-Tenant-Id\n"
    "in_flight = wait\n"
    "key_max_length = 64\n"
    "[route loose]\n"
    "path = /v1/loose\n"
    "lease = 10s\n"
    "require_key = off\n"
    "on_store_error = pass\n"
    "[route watch]\n"
    "path = /v1/watch/*\n"
    "methods = POST PATCH\n"
    "lease = 10s\n"
    "mode = observe\n"
    "[route braces]\n"
    "path = /v1/a{b}\n"
    "lease = 10s\n"
    "scope = header:Authorization\n"
    "[route under-watch]\n"           /* shadowed by watch for POST, not for PUT */
    "path = /v1/watch/x\n"
    "methods = POST PUT\n"
    "lease = 10s\n"
    "[route watch-deeper]\n"          /* a subtree of watch: shadowed */
    "path = /v1/watch/y/*\n"
    "lease = 10s\n"
    "[route again]\n"                 /* the same path and method as strict */
    "path = /v1/pay\n"
    "lease = 10s\n"
    "[route all]\n"
    "path = /*\n"
    "methods = DELETE\n"
    "lease = 10s\n";

static void test_every_setting(void **state)
{
    (void)state;
    struct config *c = load_text(every_setting);
    json_t *doc = openapi_build(c, "1");
    assert_non_null(doc);

    /* strict: 422, problem+json (BAD_REQUEST stays plain JSON), scope header */
    for (int k = 0; k < 2; k++) {
        json_t *op = at(doc, "paths", "/v1/pay", k ? "put" : "post", NULL);
        assert_non_null(op);
        assert_string_equal(json_string_value(json_object_get(op, "x-idemproxy-route")),
                            "strict");
        assert_int_equal(json_integer_value(at(key_param(op), "schema", "maxLength", NULL)), 64);
        json_t *mm = example(op, "422", "application/problem+json", "IDEMPOTENCY_KEY_MISMATCH");
        assert_non_null(mm);
        assert_int_equal(json_integer_value(json_object_get(mm, "status")), 422);
        assert_string_equal(json_string_value(json_object_get(mm, "type")), "about:blank");
        assert_null(example(op, "409", "application/problem+json", "IDEMPOTENCY_KEY_MISMATCH"));
        assert_non_null(example(op, "409", "application/problem+json", "REQUEST_PROCESSING"));
        assert_non_null(strstr(json_string_value(at(op, "responses", "409", "description", NULL)),
                               "in_flight = wait"));
        assert_non_null(example(op, "400", "application/problem+json", "SCOPE_REQUIRED"));
        /* the framing checks answer in the route's format too */
        assert_non_null(example(op, "400", "application/problem+json", "BAD_REQUEST"));
        assert_null(example(op, "400", "application/json", "BAD_REQUEST"));
        assert_null(at(op, "responses", "400", "content", "application/json", "examples",
                       "SCOPE_REQUIRED", NULL));
        json_t *scope = json_array_get(json_object_get(op, "parameters"), 1);
        assert_string_equal(json_string_value(json_object_get(scope, "name")), "X-Tenant-Id");
        assert_true(json_is_true(json_object_get(scope, "required")));
    }
    assert_null(at(doc, "paths", "/v1/pay", "get", NULL));

    /* loose: key optional, no 503 (on_store_error = pass), no KEY_REQUIRED */
    json_t *op = at(doc, "paths", "/v1/loose", "post", NULL);
    assert_true(json_is_false(json_object_get(key_param(op), "required")));
    assert_null(at(op, "responses", "503", NULL));
    assert_null(example(op, "400", "application/json", "IDEMPOTENCY_KEY_REQUIRED"));
    assert_non_null(example(op, "400", "application/json", "IDEMPOTENCY_KEY_INVALID"));
    assert_null(example(op, "400", "application/json", "SCOPE_REQUIRED"));
    assert_null(example(op, "400", "application/json", "INVALID_JSON_BODY"));

    /* watch: a prefix route in observe mode */
    json_t *item = at(doc, "paths", "/v1/watch/{subpath}", NULL);
    assert_non_null(item);
    json_t *sub = json_array_get(json_object_get(item, "parameters"), 0);
    assert_string_equal(json_string_value(json_object_get(sub, "name")), "subpath");
    assert_string_equal(json_string_value(json_object_get(sub, "in")), "path");
    assert_true(json_is_true(json_object_get(sub, "required")));
    for (int k = 0; k < 2; k++) {
        op = json_object_get(item, k ? "patch" : "post");
        assert_non_null(op);
        assert_string_equal(json_string_value(json_object_get(op, "x-idemproxy-mode")),
                            "observe");
        assert_true(json_is_false(json_object_get(key_param(op), "required")));
        assert_null(at(op, "responses", "default", "headers", NULL));
        const char *status;
        json_t *resp;
        json_object_foreach(json_object_get(op, "responses"), status, resp)
            /* besides the framing refusals every path gets: 400 408 414 431 501 505 */
            if (strcmp(status, "default") && strcmp(status, "400") && strcmp(status, "502") &&
                strcmp(status, "504") && strcmp(status, "408") && strcmp(status, "414") &&
                strcmp(status, "431") && strcmp(status, "501") && strcmp(status, "505"))
                fail_msg("observe route answers %s", status);
        assert_null(example(op, "400", "application/json", "IDEMPOTENCY_KEY_REQUIRED"));
        assert_non_null(example(op, "400", "application/json", "BAD_REQUEST"));
    }

    /* braces are not a template; Authorization is not a declarable parameter */
    op = at(doc, "paths", "/v1/a%7Bb%7D", "post", NULL);
    assert_non_null(op);
    assert_int_equal(json_array_size(json_object_get(op, "parameters")), 1);
    assert_non_null(example(op, "400", "application/json", "SCOPE_REQUIRED"));

    /* shadowed: under-watch POST, watch-deeper, again; under-watch PUT is not */
    assert_null(at(doc, "paths", "/v1/watch/x", "post", NULL));
    assert_non_null(at(doc, "paths", "/v1/watch/x", "put", NULL));
    assert_null(at(doc, "paths", "/v1/watch/y/{subpath}", NULL));
    json_t *un = json_object_get(doc, "x-idemproxy-unreachable");
    assert_int_equal(json_array_size(un), 3);
    static const char *const shadow[][3] = {
        { "under-watch", "POST", "watch" },
        { "watch-deeper", "POST", "watch" },
        { "again", "POST", "strict" },
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(un, i);
        assert_string_equal(json_string_value(json_object_get(e, "route")), shadow[i][0]);
        assert_string_equal(json_string_value(json_object_get(e, "method")), shadow[i][1]);
        assert_string_equal(json_string_value(json_object_get(e, "shadowed_by")), shadow[i][2]);
    }
    assert_non_null(at(doc, "paths", "/{subpath}", "delete", NULL));

    check_refs(doc, doc);
    check_examples(doc);
    json_decref(doc);
    conf_free(c);
}

static void test_write(void **state)
{
    (void)state;
    struct config *c = load_text("[route r]\npath = /r\n");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(openapi_write(c, "1", f), 0);
    fclose(f);
    assert_true(len > 100 && buf[len - 1] == '\n');
    json_error_t e;
    json_t *doc = json_loads(buf, 0, &e);
    assert_non_null(doc);
    assert_non_null(at(doc, "paths", "/r", "post", NULL));
    json_decref(doc);
    free(buf);
    conf_free(c);

    /* a json:FIELD name may hold any byte; the text stays UTF-8 (found by
     * fuzz_config: test/fuzz/regress/fuzz_config/scope-not-utf8) */
    c = load_text("[route r]\npath = /r\nscope = json:t\212x\n");
    doc = openapi_build(c, "1");
    assert_non_null(doc);
    const char *d = json_string_value(at(doc, "paths", "/r", "post", "description", NULL));
    assert_non_null(strstr(d, "the body's \"t?x\" field"));
    json_decref(doc);
    conf_free(c);

    c = load_text("[proxy]\n");          /* no routes: an empty paths object */
    doc = openapi_build(c, "1");
    assert_int_equal(json_object_size(json_object_get(doc, "paths")), 0);
    json_decref(doc);
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errcode),
        cmocka_unit_test(test_shipped_config),
        cmocka_unit_test(test_every_setting),
        cmocka_unit_test(test_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
