/*
 * errcode: the table of idemproxy's own error codes and their messages.
 * Messages are for people; codes are stable (SPEC: errors idemproxy makes).
 */
#include "errcode.h"

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
