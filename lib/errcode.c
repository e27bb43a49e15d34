/*
 * errcode: the table of idemproxy's own error codes and their messages.
 * Messages are for people; codes are stable (SPEC: errors idemproxy makes).
 */
#include "errcode.h"

#include <stdio.h>
#include <string.h>

static const struct errcode errcodes[] = {
    { "IDEMPOTENCY_KEY_REQUIRED", "This endpoint requires an Idempotency-Key header." },
    { "IDEMPOTENCY_KEY_INVALID", "The Idempotency-Key must be 1 to the configured maximum of printable ASCII characters." },
    { "PAYLOAD_TOO_LARGE", "The request body is larger than this endpoint accepts." },
    { "SCOPE_REQUIRED", "The request does not carry the tenant or credential this endpoint scopes keys by." },
    { "INVALID_JSON_BODY", "The request body must be valid JSON on this endpoint." },
    { "IDEMPOTENCY_KEY_MISMATCH", "This Idempotency-Key was already used with a different request." },
    { "REQUEST_PROCESSING", "A request with this Idempotency-Key is still being processed; retry later." },
    { "RESPONSE_NOT_STORED", "The request with this Idempotency-Key was executed, but its response could not be stored; it will not be executed again." },
    { "STORE_UNAVAILABLE", "The idempotency store is unavailable; retry later." },
    { "UPSTREAM_UNAVAILABLE", "The service is unavailable; the request was not executed." },
    { "UPSTREAM_TIMEOUT", "The service did not answer in time; the outcome is unknown. Retry with the same Idempotency-Key." },
    { "UPSTREAM_ERROR", "The connection to the service failed; the outcome is unknown. Retry with the same Idempotency-Key." },
    { "BAD_REQUEST", "The request is malformed." },
    { "UPGRADE_NOT_ALLOWED", "A protocol upgrade is not allowed on an endpoint that enforces Idempotency-Key." },
    { "REQUEST_TIMEOUT", "The request did not arrive in time." },
    { "URI_TOO_LONG", "The request line is longer than this service accepts." },
    { "HEADER_FIELDS_TOO_LARGE", "The request header fields are larger than this service accepts." },
    { "NOT_IMPLEMENTED", "The request uses a transfer coding this service does not implement." },
    { "HTTP_VERSION_NOT_SUPPORTED", "Only HTTP/1.0 and HTTP/1.1 are supported." },
};

const char *errcode_message(const char *code)
{
    for (size_t i = 0; i < sizeof(errcodes) / sizeof(errcodes[0]); i++)
        if (strcmp(errcodes[i].code, code) == 0)
            return errcodes[i].message;
    return "Internal error.";
}

const struct errcode *errcode_all(int *n)
{
    *n = (int)(sizeof(errcodes) / sizeof(errcodes[0]));
    return errcodes;
}

/* s into p (at most n bytes), JSON-escaped; returns the length written. */
static size_t put_escaped(char *p, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s && k + 2 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            p[k++] = '\\';
            p[k++] = (char)ch;
        } else if (ch >= 0x20 && ch < 0x7f) {
            p[k++] = (char)ch;
        }
    }
    return k;
}

const char *errcode_content_type(int problem)
{
    return problem ? "application/problem+json" : "application/json";
}

size_t errcode_body(char *buf, size_t cap, int problem, int status, const char *code,
                    const char *message)
{
    char msg[512];
    size_t m = put_escaped(msg, sizeof(msg), message != NULL ? message : errcode_message(code));
    msg[m] = '\0';
    int n;
    if (problem)
        n = snprintf(buf, cap, "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,"
                     "\"detail\":\"%s\",\"code\":\"%s\"}", code, status, msg, code);
    else
        n = snprintf(buf, cap, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}
