/*
 * openapi: the protected routes of a config as an OpenAPI 3.0 fragment.
 * Owns: which answers idemproxy makes on a route (statuses, codes, when,
 * Retry-After, content type), as proxy/req.c and proxy/server.c make them;
 * how a route's path becomes an OpenAPI path; routes that can never match
 * because an earlier route takes all their requests.
 * Does not own: the messages (lib/errcode.c), matching (lib/route.c).
 *
 * Layout of the document:
 *   paths./v1/orders.post          one operation per route and method:
 *     parameters                   Idempotency-Key (+ the scope header)
 *     responses.default            the API's answer + Idempotent-Replayed
 *     responses.400, 409, ...      idemproxy's own answers, one example per code
 *   components.schemas             IdempotencyError, IdempotencyProblem
 *   components.headers             Idempotent-Replayed, Retry-After
 */
#include "openapi.h"
#include "errcode.h"
#include "route.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#define REF_ERROR   "#/components/schemas/IdempotencyError"
#define REF_PROBLEM "#/components/schemas/IdempotencyProblem"
#define REF_REPLAY  "#/components/headers/Idempotent-Replayed"
#define REF_RETRY   "#/components/headers/Retry-After"

/* Building state: one failed allocation fails the whole document. */
struct oa {
    const struct config *c;
    bool failed;
};

/* One answer idemproxy may make on a route. */
struct answer {
    int status;
    const char *code;
    char when[512];                /* for people: when it is sent, what it means */
    bool retry_after;              /* carries Retry-After */
    bool plain;                    /* always application/json: the framing checks
                                      run before the route is known */
};

#define MAX_ANSWERS 32

static void oa_set(struct oa *oa, json_t *obj, const char *key, json_t *v)
{
    if (json_object_set_new(obj, key, v) != 0)
        oa->failed = true;
}

static void oa_push(struct oa *oa, json_t *arr, json_t *v)
{
    if (json_array_append_new(arr, v) != 0)
        oa->failed = true;
}

/* A JSON string of s. A json:FIELD scope name may hold any byte, and a
 * text cut at its buffer's end may end inside a character: what is not
 * UTF-8 has its bytes outside ASCII written as '?'. */
static json_t *oa_str(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *oa_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *oa_fmt(const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return oa_str(buf);
}

static json_t *oa_ref(const char *ref)
{
    return json_pack("{s:s}", "$ref", ref);
}

/* ---- what idemproxy answers on a route ---- */

static struct answer *add(struct answer *a, int *n, int status, const char *code)
{
    struct answer *x = &a[(*n)++];
    memset(x, 0, sizeof(*x));
    x->status = status;
    x->code = code;
    return x;
}

/* "the Authorization header", "the X-A and X-B headers", "no header" */
static void fp_headers_text(const struct route *rt, char *out, size_t n)
{
    size_t k = 0;
    out[0] = '\0';
    if (rt->n_fp_headers == 0) {
        snprintf(out, n, "no header");
        return;
    }
    k += snprintf(out + k, n - k, "the ");
    for (int i = 0; i < rt->n_fp_headers && k < n; i++)
        k += snprintf(out + k, n - k, "%s%s",
                      i == 0 ? "" : i == rt->n_fp_headers - 1 ? " and " : ", ",
                      rt->fp_headers[i]);
    if (k < n)
        snprintf(out + k, n - k, " header%s", rt->n_fp_headers > 1 ? "s" : "");
}

/* release[] as written in a file: "5xx 408 425 429", or "none" */
static void release_text(const struct route *rt, char *out, size_t n)
{
    size_t k = 0;
    out[0] = '\0';
    for (int base = 400; base <= 500; base += 100) {
        int all = 1;
        for (int s = base; s < base + 100; s++)
            all &= rt->release[s];
        if (all && k < n)
            k += snprintf(out + k, n - k, "%s%dxx", k ? " " : "", base / 100);
    }
    for (int base = 400; base <= 500; base += 100) {
        int all = 1;
        for (int s = base; s < base + 100; s++)
            all &= rt->release[s];
        for (int s = base; s < base + 100 && !all; s++)
            if (rt->release[s] && k < n)
                k += snprintf(out + k, n - k, "%s%d", k ? " " : "", s);
    }
    if (k == 0)
        snprintf(out, n, "none");
}

/* The answers of route rt, in status order. Returns how many. */
static int route_answers(const struct config *c, const struct route *rt, struct answer *a)
{
    int n = 0;
    char lease[32], wait[32], ttl[32], store[32], body[32], up[32], redis[32];
    char text[256];
    struct answer *x;
    bool observe = rt->mode == MODE_OBSERVE;

    conf_fmt_duration(rt->lease_ms, lease, sizeof(lease));
    conf_fmt_duration(rt->wait_timeout_ms, wait, sizeof(wait));
    conf_fmt_duration(rt->ttl_ms, ttl, sizeof(ttl));
    conf_fmt_size(rt->max_store, store, sizeof(store));
    conf_fmt_size(rt->max_body, body, sizeof(body));
    conf_fmt_duration(c->upstream_timeout_ms, up, sizeof(up));
    conf_fmt_duration(c->redis_timeout_ms, redis, sizeof(redis));

    if (!observe && rt->require_key)
        snprintf(add(a, &n, 400, "IDEMPOTENCY_KEY_REQUIRED")->when, sizeof(a->when),
                 "the request has no Idempotency-Key header; nothing was forwarded");
    if (!observe) {
        snprintf(add(a, &n, 400, "IDEMPOTENCY_KEY_INVALID")->when, sizeof(a->when),
                 "the Idempotency-Key is empty, longer than %d characters, or has "
                 "characters outside printable ASCII; nothing was forwarded", rt->key_max_len);
        if (rt->scope == SCOPE_HEADER)
            snprintf(add(a, &n, 400, "SCOPE_REQUIRED")->when, sizeof(a->when),
                     "the %s header, which keys are scoped by, is missing or empty; "
                     "nothing was forwarded", rt->scope_name);
        else if (rt->scope == SCOPE_JSON)
            snprintf(add(a, &n, 400, "SCOPE_REQUIRED")->when, sizeof(a->when),
                     "the body has no top-level string or integer field \"%s\", which keys "
                     "are scoped by; nothing was forwarded", rt->scope_name);
        if (rt->fingerprint_body == FP_BODY_JSON || rt->scope == SCOPE_JSON)
            snprintf(add(a, &n, 400, "INVALID_JSON_BODY")->when, sizeof(a->when),
                     "the body is not JSON (this route %s); nothing was forwarded",
                     rt->scope == SCOPE_JSON ? "reads the scope from it"
                                             : "compares bodies as canonical JSON");
    }
    x = add(a, &n, 400, "BAD_REQUEST");
    snprintf(x->when, sizeof(x->when),
             "framing that could smuggle a request (Content-Length with "
             "Transfer-Encoding, two Content-Lengths, a Content-Length or chunk size that "
             "is not plain digits, a line that ends in LF alone, Transfer-Encoding on "
             "HTTP/1.0, two Idempotency-Key headers, a header name that is not a token, a "
             "control byte in a header value); the connection is closed and nothing was "
             "forwarded");
    snprintf(add(a, &n, 408, "REQUEST_TIMEOUT")->when, sizeof(a->when),
             "the request head did not arrive within client_header_timeout, or its body "
             "paused longer than client_body_timeout; nothing was claimed");
    snprintf(add(a, &n, 414, "URI_TOO_LONG")->when, sizeof(a->when),
             "the request line alone is longer than max_headers");
    snprintf(add(a, &n, 431, "HEADER_FIELDS_TOO_LARGE")->when, sizeof(a->when),
             "the request head is longer than max_headers");
    snprintf(add(a, &n, 501, "NOT_IMPLEMENTED")->when, sizeof(a->when),
             "the body has a transfer coding other than chunked");
    snprintf(add(a, &n, 505, "HTTP_VERSION_NOT_SUPPORTED")->when, sizeof(a->when),
             "the request is not HTTP/1.0 or HTTP/1.1");
    if (!observe)
        snprintf(add(a, &n, 400, "UPGRADE_NOT_ALLOWED")->when, sizeof(a->when),
                 "the request asks for a protocol upgrade (WebSocket), which a protected "
                 "route does not carry; nothing was forwarded");

    if (!observe) {
        x = add(a, &n, 409, "REQUEST_PROCESSING");
        x->retry_after = true;
        if (rt->in_flight == IN_FLIGHT_WAIT)
            snprintf(x->when, sizeof(x->when),
                     "a request with this key and the same fingerprint was still running after "
                     "this one waited %s for it (in_flight = wait); Retry-After: 1", wait);
        else
            snprintf(x->when, sizeof(x->when),
                     "a request with this key and the same fingerprint is still running "
                     "(in_flight = reject); Retry-After is what is left of the route's "
                     "usual upstream time, at least 1 s and at most the time left on "
                     "the running request's lease (%s)", lease);
        fp_headers_text(rt, text, sizeof(text));
        snprintf(add(a, &n, rt->mismatch_status, "IDEMPOTENCY_KEY_MISMATCH")->when,
                 sizeof(a->when),
                 "this key was already used with a different request: the fingerprint "
                 "covers the method, the path with its query, %s%s, and the body %s; "
                 "the API was not called",
                 rt->scope != SCOPE_NONE ? "the scope, " : "", text,
                 rt->fingerprint_body == FP_BODY_JSON
                     ? "as canonical JSON (key order and white space do not matter)"
                     : "byte for byte");
        snprintf(add(a, &n, 409, "RESPONSE_NOT_STORED")->when, sizeof(a->when),
                 "the request with this key was executed, but its answer could not be "
                 "stored (a body over %s, max_store, which was streamed to the first caller "
                 "in full, or Redis out of memory); it is not executed again with this key "
                 "for %s", store, ttl);
        snprintf(add(a, &n, 413, "PAYLOAD_TOO_LARGE")->when, sizeof(a->when),
                 "the body is over %s (max_body); nothing was claimed or forwarded", body);
        snprintf(add(a, &n, 500, "STORE_UNAVAILABLE")->when, sizeof(a->when),
                 "the stored answer for this key could not be read (a damaged record)");
    }

    snprintf(add(a, &n, 502, "UPSTREAM_UNAVAILABLE")->when, sizeof(a->when),
             "the API refused the connection: the request was not executed%s",
             observe ? "" : ", and a retry with the same key executes it");
    /* what an unknown outcome means for retries on an enforcing route */
    char unknown[160] = "";
    if (!observe)
        snprintf(unknown, sizeof(unknown), ", retries with this key get 409 "
                 "REQUEST_PROCESSING until the lease (%s) ends, then execute again", lease);
    snprintf(add(a, &n, 502, "UPSTREAM_ERROR")->when, sizeof(a->when),
             "the connection to the API failed after the request was sent: the outcome "
             "is unknown%s", unknown);
    if (!observe && rt->on_store_error == STORE_ERROR_REJECT) {
        x = add(a, &n, 503, "STORE_UNAVAILABLE");
        x->retry_after = true;
        snprintf(x->when, sizeof(x->when),
                 "Redis is unreachable or slower than %s ([redis] timeout); nothing was "
                 "forwarded (on_store_error = reject); Retry-After: 1", redis);
    }
    snprintf(add(a, &n, 504, "UPSTREAM_TIMEOUT")->when, sizeof(a->when),
             "the API did not answer within %s (upstream_timeout): the outcome is "
             "unknown%s", up, unknown);
    return n;
}

/* The body idemproxy sends for code, in the route's format. */
static json_t *example_body(const struct answer *x, bool problem)
{
    const char *msg = errcode_message(x->code);
    if (problem && !x->plain)
        return json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", "about:blank",
                         "title", x->code, "status", x->status, "detail", msg,
                         "code", x->code);
    return json_pack("{s:{s:s, s:s}}", "error", "code", x->code, "message", msg);
}

/* The response object for every answer of a[] with this status. */
static json_t *status_response(struct oa *oa, const struct route *rt, const struct answer *a,
                               int n, int status)
{
    bool problem = rt->error_format == ERROR_FORMAT_PROBLEM;
    char desc[4096];
    size_t k = snprintf(desc, sizeof(desc), "Answered by idemproxy, not the API.");
    json_t *resp = json_object(), *content = json_object(), *headers = NULL;
    json_t *ex_main = json_object(), *ex_plain = json_object();

    for (int i = 0; i < n; i++) {
        const struct answer *x = &a[i];
        if (x->status != status)
            continue;
        if (k < sizeof(desc))
            k += snprintf(desc + k, sizeof(desc) - k, " %s: %s.", x->code, x->when);
        oa_set(oa, problem && !x->plain ? ex_main : (problem ? ex_plain : ex_main), x->code,
               json_pack("{s:o}", "value", example_body(x, problem)));
        if (x->retry_after && headers == NULL) {
            headers = json_object();
            oa_set(oa, headers, "Retry-After", oa_ref(REF_RETRY));
        }
    }
    oa_set(oa, resp, "description", oa_str(desc));
    if (headers != NULL)
        oa_set(oa, resp, "headers", headers);
    if (json_object_size(ex_main) > 0)
        oa_set(oa, content, problem ? "application/problem+json" : "application/json",
               json_pack("{s:o, s:O}", "schema", oa_ref(problem ? REF_PROBLEM : REF_ERROR),
                         "examples", ex_main));
    if (json_object_size(ex_plain) > 0)
        oa_set(oa, content, "application/json",
               json_pack("{s:o, s:O}", "schema", oa_ref(REF_ERROR), "examples", ex_plain));
    json_decref(ex_main);
    json_decref(ex_plain);
    oa_set(oa, resp, "content", content);
    return resp;
}

/* ---- one operation ---- */

static json_t *key_parameter(struct oa *oa, const struct route *rt)
{
    char ttl[32];
    conf_fmt_duration(rt->ttl_ms, ttl, sizeof(ttl));
    bool observe = rt->mode == MODE_OBSERVE;
    bool required = !observe && rt->require_key;
    json_t *p = json_pack("{s:s, s:s, s:b}", "name", "Idempotency-Key", "in", "header",
                          "required", required);
    const char *how = observe
        ? "Not enforced on this route (mode = observe): idemproxy claims and fingerprints "
          "the key and counts what it would have answered, but forwards every request; "
          "the key is not required"
        : required
        ? "Required: without it idemproxy answers 400 IDEMPOTENCY_KEY_REQUIRED"
        : "Optional (require_key = off): a request without it is forwarded unprotected";
    oa_set(oa, p, "description",
           oa_fmt("Makes the request idempotent: the first request with a key runs once, "
                  "and a retry with the same key and the same request gets its answer "
                  "again for %s, with Idempotent-Replayed: true. %s. 1 to %d printable "
                  "ASCII characters; a structured-field string (\"abc\") is the key abc.",
                  ttl, how, rt->key_max_len));
    oa_set(oa, p, "schema",
           json_pack("{s:s, s:i, s:i, s:s}", "type", "string", "minLength", 1,
                     "maxLength", rt->key_max_len, "pattern", "^[ -~]+$"));
    return p;
}

/* The scope header as a parameter; NULL when there is none to declare
 * (OpenAPI 3.0 ignores header parameters named Accept, Content-Type and
 * Authorization). */
static json_t *scope_parameter(struct oa *oa, const struct route *rt)
{
    static const char *const reserved[] = {
        "Accept", "Content-Type", "Authorization", "Idempotency-Key",
    };
    if (rt->scope != SCOPE_HEADER)
        return NULL;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcasecmp(rt->scope_name, reserved[i]) == 0)
            return NULL;
    bool observe = rt->mode == MODE_OBSERVE;
    json_t *p = json_pack("{s:s, s:s, s:b}", "name", rt->scope_name, "in", "header",
                          "required", !observe && rt->require_key);
    oa_set(oa, p, "description",
           oa_fmt("Idempotency keys are scoped by this header: the same key under another "
                  "value is another key. %s",
                  observe ? "Not enforced (mode = observe)."
                          : "A request with an Idempotency-Key and without this header gets "
                            "400 SCOPE_REQUIRED."));
    oa_set(oa, p, "schema", json_pack("{s:s, s:i}", "type", "string", "minLength", 1));
    return p;
}

static json_t *operation(struct oa *oa, const struct route *rt, const char *method_upper)
{
    const struct config *c = oa->c;
    struct answer a[MAX_ANSWERS];
    int n = route_answers(c, rt, a);
    bool observe = rt->mode == MODE_OBSERVE;
    char ttl[32], wait[32], scope[200], dup[160], release[128];
    conf_fmt_duration(rt->ttl_ms, ttl, sizeof(ttl));
    conf_fmt_duration(rt->wait_timeout_ms, wait, sizeof(wait));
    release_text(rt, release, sizeof(release));
    if (rt->in_flight == IN_FLIGHT_WAIT)
        snprintf(dup, sizeof(dup), "waits up to %s for its answer (in_flight = wait)", wait);
    else
        snprintf(dup, sizeof(dup), "gets 409 REQUEST_PROCESSING (in_flight = reject)");
    if (rt->scope == SCOPE_HEADER)
        snprintf(scope, sizeof(scope), "Keys are scoped by the %s header.", rt->scope_name);
    else if (rt->scope == SCOPE_JSON)
        snprintf(scope, sizeof(scope), "Keys are scoped by the body's \"%s\" field.",
                 rt->scope_name);
    else
        snprintf(scope, sizeof(scope), "Keys are not scoped.");

    json_t *op = json_object();
    if (observe)
        oa_set(oa, op, "description",
               oa_fmt("Observed by idemproxy (route %s, %s %s%s, mode = observe): keys are "
                      "claimed and fingerprinted and what enforcement would have answered is "
                      "counted (idemproxy_observed_total), but every request is forwarded "
                      "and none is answered from the store or refused for its key.",
                      rt->name, method_upper, rt->path, rt->prefix ? "/*" : ""));
    else
        oa_set(oa, op, "description",
               oa_fmt("Protected by idemproxy (route %s, %s %s%s): a request with an "
                      "Idempotency-Key runs once; a retry with the same key and the same "
                      "request gets the first answer again for %s. %s A duplicate while the "
                      "first still runs %s. Answers with a status in %s are not stored: "
                      "the key is released and a retry runs again.",
                      rt->name, method_upper, rt->path, rt->prefix ? "/*" : "", ttl, scope,
                      dup, release));
    oa_set(oa, op, "x-idemproxy-route", json_string(rt->name));
    oa_set(oa, op, "x-idemproxy-mode", json_string(observe ? "observe" : "enforce"));

    json_t *params = json_array();
    oa_push(oa, params, key_parameter(oa, rt));
    json_t *sp = scope_parameter(oa, rt);
    if (sp != NULL)
        oa_push(oa, params, sp);
    oa_set(oa, op, "parameters", params);

    json_t *responses = json_object();
    if (observe)
        oa_set(oa, responses, "default",
               json_pack("{s:s}", "description",
                         "The API's own answer, passed on unchanged (mode = observe: nothing "
                         "is replayed, and there is no Idempotent-Replayed header)."));
    else {
        char status[64];
        if (rt->replay_status)
            snprintf(status, sizeof(status), "with status %d (replay_status)",
                     rt->replay_status);
        else
            snprintf(status, sizeof(status), "with its original status");
        json_t *def = json_object();
        oa_set(oa, def, "description",
               oa_fmt("The API's own answer, passed on. Idempotent-Replayed: false: the API "
                      "ran this request now. Idempotent-Replayed: true: the stored answer of "
                      "the first request with this key, replayed %s, headers and body, "
                      "without calling the API.", status));
        oa_set(oa, def, "headers", json_pack("{s:o}", "Idempotent-Replayed", oa_ref(REF_REPLAY)));
        oa_set(oa, responses, "default", def);
    }
    static const int statuses[] = { 400, 408, 409, 413, 414, 422, 431, 500, 501, 502, 503,
                                    504, 505 };
    for (size_t s = 0; s < sizeof(statuses) / sizeof(statuses[0]); s++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= a[i].status == statuses[s];
        if (!found)
            continue;
        char key[8];
        snprintf(key, sizeof(key), "%d", statuses[s]);
        oa_set(oa, responses, key, status_response(oa, rt, a, n, statuses[s]));
    }
    oa_set(oa, op, "responses", responses);
    return op;
}

/* ---- paths ---- */

/* The OpenAPI path of rt: the path with '{' and '}' percent-encoded (they
 * would read as a template), and "/{subpath}" for a prefix route. */
static void route_template(const struct route *rt, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = rt->path; *p && k + 4 < n; p++) {
        if (*p == '{' || *p == '}')
            k += snprintf(out + k, n - k, "%%%02X", (unsigned char)*p);
        else
            out[k++] = *p;
    }
    out[k] = '\0';
    if (rt->prefix)
        snprintf(out + k, n - k, "/{subpath}");
}

/*
 * The earlier route that takes every request route i would get for method
 * bit m, or NULL. An exact route is shadowed when route_match() finds
 * another route for its path; a prefix route when an earlier prefix route
 * with the method covers its whole subtree.
 */
static const struct route *shadowed_by(const struct config *c, int i, unsigned m)
{
    const struct route *rt = &c->routes[i];
    if (!rt->prefix) {
        const struct route *eff = route_match(c, m, rt->path, strlen(rt->path));
        return eff != rt ? eff : NULL;
    }
    for (int j = 0; j < i; j++) {
        const struct route *e = &c->routes[j];
        size_t el = strlen(e->path);
        if (e->prefix && (e->methods & m) && strncmp(rt->path, e->path, el) == 0 &&
            (rt->path[el] == '\0' || rt->path[el] == '/'))
            return e;
    }
    return NULL;
}

static json_t *paths(struct oa *oa, json_t *unreachable)
{
    const struct config *c = oa->c;
    json_t *ps = json_object();
    for (int i = 0; i < c->n_routes; i++) {
        const struct route *rt = &c->routes[i];
        char tpl[sizeof(rt->path) * 3 + 16];
        route_template(rt, tpl, sizeof(tpl));
        for (size_t k = 0; k < http_n_methods; k++) {
            const struct http_method *hm = &http_methods[k];
            unsigned m = hm->bit;
            if (!hm->routable || !(rt->methods & m))
                continue;
            const struct route *by = shadowed_by(c, i, m);
            if (by != NULL) {
                oa_push(oa, unreachable,
                        json_pack("{s:s, s:s, s:s}", "route", rt->name,
                                  "method", hm->name, "shadowed_by", by->name));
                continue;
            }
            json_t *item = json_object_get(ps, tpl);
            if (item == NULL) {
                item = json_object();
                if (rt->prefix) {
                    oa_set(oa, item, "description",
                           oa_fmt("idemproxy matches %s/* as a prefix: every path below "
                                  "%s/, one segment or several. {subpath} stands for all of "
                                  "it (an OpenAPI path template matches one segment).",
                                  rt->path, rt->path));
                    json_t *sub = json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", "subpath",
                                            "in", "path", "required", 1, "schema",
                                            "type", "string");
                    oa_set(oa, sub, "description",
                           oa_fmt("Everything after %s/, slashes included.", rt->path));
                    oa_set(oa, item, "parameters", json_pack("[o]", sub));
                }
                oa_set(oa, ps, tpl, item);
                if (oa->failed)
                    break;
            }
            char key[16];           /* an OpenAPI path item names it in lower case */
            size_t kl = 0;
            for (; hm->name[kl] != '\0' && kl < sizeof(key) - 1; kl++)
                key[kl] = (char)tolower((unsigned char)hm->name[kl]);
            key[kl] = '\0';
            oa_set(oa, item, key, operation(oa, rt, hm->name));
        }
    }
    return ps;
}

/* ---- components ---- */

static json_t *components(struct oa *oa)
{
    int n;
    const struct errcode *codes = errcode_all(&n);
    json_t *enum_codes = json_array();
    for (int i = 0; i < n; i++)
        oa_push(oa, enum_codes, json_string(codes[i].code));

    json_t *err = json_pack(
        "{s:s, s:s, s:[s], s:{s:{s:s, s:[s,s], s:{s:{s:s, s:s, s:O}, s:{s:s, s:s}}}}}",
        "description", "An answer idemproxy makes itself (application/json). The code is "
                       "stable: branch on it; the message is for people.",
        "type", "object", "required", "error",
        "properties", "error", "type", "object", "required", "code", "message",
        "properties",
        "code", "type", "string", "description", "Stable error code.", "enum", enum_codes,
        "message", "type", "string", "description", "For people; may change.");
    json_t *problem = json_pack(
        "{s:s, s:s, s:[s,s,s,s,s], s:{s:{s:s, s:[s]}, s:{s:s, s:s}, s:{s:s}, s:{s:s},"
        " s:{s:s, s:s, s:O}}}",
        "description", "An answer idemproxy makes itself on a route with error_format = "
                       "problem: RFC 9457 problem details (application/problem+json), "
                       "with the same stable code.",
        "type", "object", "required", "type", "title", "status", "detail", "code",
        "properties",
        "type", "type", "string", "enum", "about:blank",
        "title", "type", "string", "description", "The code.",
        "status", "type", "integer",
        "detail", "type", "string",
        "code", "type", "string", "description", "Stable error code.", "enum", enum_codes);
    json_decref(enum_codes);

    json_t *replayed = json_pack(
        "{s:s, s:{s:s, s:[s,s]}}",
        "description", "true: the stored answer of an earlier request with the same "
                       "Idempotency-Key, replayed (the API did not run this request); false: "
                       "the API ran this request now. Absent when idemproxy did not protect "
                       "the request: no key on a route with require_key = off, Redis down on "
                       "a route with on_store_error = pass, or mode = observe.",
        "schema", "type", "string", "enum", "true", "false");
    json_t *retry = json_pack(
        "{s:s, s:{s:s, s:i}}",
        "description", "Seconds to wait before retrying. On 409 REQUEST_PROCESSING with "
                       "in_flight = reject: the route's usual upstream time less what the "
                       "running request has already taken, at least 1 and at most the time "
                       "left on its lease. Otherwise 1.",
        "schema", "type", "integer", "minimum", 1);
    return json_pack("{s:{s:o, s:o}, s:{s:o, s:o}}",
                     "schemas", "IdempotencyError", err, "IdempotencyProblem", problem,
                     "headers", "Idempotent-Replayed", replayed, "Retry-After", retry);
}

/* ---- the document ---- */

json_t *openapi_build(const struct config *c, const char *version)
{
    struct oa oa = { c, false };
    json_t *unreachable = json_array();
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}}", "openapi", OPENAPI_VERSION,
        "info", "title", "idemproxy: protected routes", "version", version,
        "description", "Generated by `idemproxy -T openapi` from its config. Merge it into "
                       "the API's own document: idemproxy adds the Idempotency-Key "
                       "parameter, the Idempotent-Replayed header and the answers it makes "
                       "itself; the API's own answers are the `default` response here.");
    oa_set(&oa, doc, "paths", paths(&oa, unreachable));
    oa_set(&oa, doc, "components", components(&oa));
    if (json_array_size(unreachable) > 0)
        oa_set(&oa, doc, "x-idemproxy-unreachable", json_incref(unreachable));
    json_decref(unreachable);
    if (oa.failed || doc == NULL) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int openapi_write(const struct config *c, const char *version, FILE *f)
{
    json_t *doc = openapi_build(c, version);
    if (doc == NULL)
        return -1;
    int rc = json_dumpf(doc, f, JSON_INDENT(2));
    json_decref(doc);
    if (rc != 0 || fputc('\n', f) == EOF || fflush(f) != 0 || ferror(f))
        return -1;
    return 0;
}
