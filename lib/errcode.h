/*
 * errcode: the answers idemproxy makes itself: their stable codes and the
 * message for people each one carries. proxy/req.c answers with them,
 * lib/openapi.c documents them; one table, so the two cannot differ.
 * Does not own: which status goes with a code (that depends on the route:
 * mismatch_status) or when a code is sent (proxy/req.c).
 */
#ifndef IDEM_ERRCODE_H
#define IDEM_ERRCODE_H

#include <stddef.h>

struct errcode {
    const char *code;              /* e.g. "IDEMPOTENCY_KEY_MISMATCH" */
    const char *message;           /* one sentence, no details of the fault */
};

/* The message for code; "Internal error." for a code not in the table. */
const char *errcode_message(const char *code);

/*
 * The body of an answer with code: {"error":{"code":...,"message":...}}, or
 * RFC 9457 problem details when problem is set (type about:blank, title and
 * code the code, detail the message). message: NULL for the table's. Into
 * buf[cap], terminated; returns its length. Every error idemproxy answers,
 * the proxy's, the framing checks' and the admin listener's, is built here.
 */
size_t errcode_body(char *buf, size_t cap, int problem, int status, const char *code,
                    const char *message);
/* Its Content-Type. */
const char *errcode_content_type(int problem);

/* The table itself, n entries; static, never freed. */
const struct errcode *errcode_all(int *n);

#endif
