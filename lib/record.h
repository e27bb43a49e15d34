/*
 * record: the versioned layout of a stored answer, as the Redis hash holds it.
 *
 * One Redis hash per (route, scope, key), readable with redis-cli HGETALL:
 *   v        "1"                       layout version
 *   state    "inflight" | "done" | "unstored"
 *   owner    token of the claiming process (inflight only matters)
 *   fp       32 hex digits, XXH3-128 fingerprint of the first request
 *   created  unix time in milliseconds of the claim
 *   status   "201"                     (done)
 *   headers  "Name: value\r\n" lines   (done) end-to-end headers only
 *   body     raw bytes                 (done)
 * Owns: encoding the headers field, decoding it back, which response headers
 * are stored (not hop-by-hop, not Date, Set-Cookie only when allowed).
 */
#ifndef IDEM_RECORD_H
#define IDEM_RECORD_H

#include <stddef.h>

#define RECORD_VERSION "1"

/*
 * 1 if a response header of this name is stored and replayed: not
 * hop-by-hop (RFC 9110 7.6.1: Connection, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate), not Date, not
 * Content-Length (recomputed), Set-Cookie only when allow_set_cookie.
 */
int record_header_stored(const char *name, int allow_set_cookie);

/*
 * Append "name: value\r\n" to buf (size cap, *len used). -1 if it does not
 * fit or name/value hold CR or LF.
 */
int record_headers_add(char *buf, size_t cap, size_t *len, const char *name,
                       const char *value);

/*
 * Walk an encoded headers field. Start with *pos = 0; each call returns 1
 * and points name/value into buf (not NUL-terminated), 0 at the end, -1 if
 * the field is malformed.
 */
int record_headers_next(const char *buf, size_t len, size_t *pos,
                        const char **name, size_t *namelen,
                        const char **value, size_t *valuelen);

/* "201" -> 201; -1 unless a 3-digit status 100..599 */
int record_status_parse(const char *s, size_t len);

#endif
