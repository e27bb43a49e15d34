/*
 * tls: owns the OpenSSL client context (CA, client certificate, TLS 1.2 at
 * least, peer always verified) and each connection's SSL (SNI, the name or
 * IP address checked), and the words a failed handshake is reported with.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/* "file:line: [redis] key: " for err */
static int tls_where(const struct config *c, const char *key, char *err, size_t errlen)
{
    int n = snprintf(err, errlen, "%s:%d: [redis] %s: ", c->path, conf_line(c, "redis", key), key);
    return n < 0 || (size_t)n >= errlen ? (int)errlen - 1 : n;
}

/* The newest OpenSSL error, in words, after "what". */
static void tls_openssl_error(char *out, size_t n, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(out, n, "%s: %s", what, buf);
    ERR_clear_error();
}

SSL_CTX *tls_context_new(const struct config *c, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!c->redis_tls)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "%s: cannot create a TLS context: out of memory", c->path);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    int n;
    if (c->tls_ca_file[0] != '\0') {
        if (SSL_CTX_load_verify_locations(ctx, c->tls_ca_file, NULL) != 1) {
            n = tls_where(c, "tls_ca_file", err, errlen);
            tls_openssl_error(err + n, errlen - n, "not a PEM file of CA certificates");
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        n = tls_where(c, "tls", err, errlen);
        tls_openssl_error(err + n, errlen - n, "cannot load the system's CA certificates");
        goto fail;
    }
    if (c->tls_cert_file[0] != '\0') {
        if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file) != 1) {
            n = tls_where(c, "tls_cert_file", err, errlen);
            tls_openssl_error(err + n, errlen - n, "not a PEM certificate");
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key_file, SSL_FILETYPE_PEM) != 1) {
            int mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
            n = tls_where(c, "tls_key_file", err, errlen);
            tls_openssl_error(err + n, errlen - n, mismatch ? "does not match tls_cert_file"
                                                            : "not a PEM private key");
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            n = tls_where(c, "tls_key_file", err, errlen);
            tls_openssl_error(err + n, errlen - n, "does not match tls_cert_file");
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_context_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

static int tls_is_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *tls_session_new(SSL_CTX *ctx, const char *server_name, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    const char *name = server_name != NULL && server_name[0] != '\0' ? server_name : host;
    int ok;
    if (tls_is_address(name)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

void tls_failure(SSL *ssl, unsigned long err, char *buf, size_t n)
{
    long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (v != X509_V_OK) {
        snprintf(buf, n, "certificate verify failed (%s)", X509_verify_cert_error_string(v));
    } else if (err != 0) {
        char e[256];
        ERR_error_string_n(err, e, sizeof(e));
        snprintf(buf, n, "TLS handshake failed: %s", e);
    } else {
        snprintf(buf, n, "TLS handshake failed (connection closed)");
    }
    ERR_clear_error();
}
