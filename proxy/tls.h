/*
 * tls: the client side of TLS to Redis (OpenSSL): one context per process,
 * built from [redis] tls_ca_file (or the system store), tls_cert_file and
 * tls_key_file (mutual TLS); one session per connection, with SNI and the
 * name or address verified (tls_server_name, or the host connected to).
 * Does not own: sockets (proxy/rconn.c runs the handshake on a bufferevent).
 */
#ifndef IDEM_TLS_H
#define IDEM_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

#include "config.h"

/*
 * The context for c's [redis] TLS settings, shared read-only by every
 * thread; NULL when TLS is off (and err empty) or on error, with "file:line:
 * [redis] key: what is wrong" in err. Free with tls_context_free.
 */
SSL_CTX *tls_context_new(const struct config *c, char *err, size_t errlen);
void tls_context_free(SSL_CTX *ctx);

/* A session to host: SNI (unless an address) and the name or address that
 * the certificate must carry: server_name when not empty, else host. NULL
 * when out of memory. */
SSL *tls_session_new(SSL_CTX *ctx, const char *server_name, const char *host);

/* Why a handshake on ssl failed (err from bufferevent_get_openssl_error,
 * or 0), for logs and /readyz: "certificate verify failed (...)" when the
 * server was not verified. */
void tls_failure(SSL *ssl, unsigned long err, char *buf, size_t n);

#endif
