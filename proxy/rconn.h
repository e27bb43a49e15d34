/*
 * rconn: one connection to one Redis node (or sentinel) on a worker's
 * event loop: TCP or TLS (a bufferevent_openssl), AUTH (ACL user and
 * password) and SELECT, commands written as RESP by the caller and
 * pipelined in FIFO order, replies parsed by hiredis's reader, a bound on
 * the oldest unanswered command, and reconnecting with backoff.
 * Owns: the socket, its bytes both ways, and the queue of callbacks.
 * Does not own: what the commands are (the owner's setup, store ops) nor
 * which node to talk to (proxy/topo.c).
 *
 * Every command sent is answered exactly once: with its reply, or with
 * NULL when the connection is lost or dropped (then rconn_status says why).
 * A reply is valid only during its callback. Callbacks run on the loop,
 * never inside rconn_send.
 */
#ifndef IDEM_RCONN_H
#define IDEM_RCONN_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <openssl/ssl.h>

struct rconn;
struct redisReply;

/* r is the reply, or NULL: the connection was lost before it came. */
typedef void (*rconn_cb)(void *arg, struct rconn *c, const struct redisReply *r);

struct rconn_opts {
    const char *host;              /* copied */
    int port;
    SSL_CTX *tls;                  /* NULL: plain TCP */
    const char *tls_server_name;   /* "" or NULL: the host */
    const char *username;          /* "": AUTH password alone; copied */
    const char *password;          /* "": no AUTH; copied */
    int db;                        /* SELECT when not 0 */
    int64_t timeout_ms;            /* the oldest unanswered command's bound */
    int64_t setup_ms;              /* connect, TLS, AUTH and the owner's setup */
    const char *what;              /* "redis" or "sentinel", for messages */
};

struct rconn_hooks {
    /* Connected and AUTH sent: queue your setup commands now (they follow
     * AUTH and SELECT), then call rconn_ready() once they are answered. */
    void (*up)(void *owner, struct rconn *c);
    /* Lost (rconn_status says why); every command was answered NULL. It
     * reconnects on its own unless freed. May be NULL. */
    void (*down)(void *owner, struct rconn *c);
    /* This turn's commands are about to be written: a last one may be
     * added (the store's WAIT). May be NULL. */
    void (*flush)(void *owner, struct rconn *c);
    /* A message on a subscribed connection (see rconn_subscribed). */
    void (*push)(void *owner, struct rconn *c, const struct redisReply *r);
};

struct rconn *rconn_new(struct event_base *base, const struct rconn_opts *o,
                        const struct rconn_hooks *h, void *owner);
/* Every unanswered command is answered NULL first. Safe inside a callback
 * (the free waits until the callback returns). */
void rconn_free(struct rconn *c);

/*
 * Queue a command: head then body (either may be empty), written at the end
 * of this loop turn. 0, or -1 when not connected (cb is not called).
 */
int rconn_send(struct rconn *c, const char *head, size_t hlen, const char *body,
               size_t blen, rconn_cb cb, void *arg);
/* A whole command from its arguments (setup and topology commands). */
int rconn_sendv(struct rconn *c, rconn_cb cb, void *arg, int argc, const char *const *argv);

/* The owner's setup is answered: ready for its traffic. */
void rconn_ready(struct rconn *c);
/* Close it now, answering everything NULL, and reconnect after a pause.
 * why goes to rconn_status. Safe inside a callback. */
void rconn_drop(struct rconn *c, const char *why);
/* 1 when r is an error reply: c is dropped, "what: <the error>" saying why
 * (a setup command refused). 0 otherwise (NULL included). */
int rconn_refused(struct rconn *c, const struct redisReply *r, const char *what);
/* From now on a pubsub message goes to the push hook. */
void rconn_subscribed(struct rconn *c);

/* Used from the next connection on. */
void rconn_set_auth(struct rconn *c, const char *username, const char *password);
void rconn_set_timeout(struct rconn *c, int64_t timeout_ms);

int rconn_is_ready(const struct rconn *c);
/* Connected (setup maybe still running). */
int rconn_is_up(const struct rconn *c);
/* "ready", "connecting", or why it is down ("connection refused", "certificate
 * verify failed (...)", "authentication failed: WRONGPASS ..."). */
const char *rconn_status(const struct rconn *c);
const char *rconn_host(const struct rconn *c);
int rconn_port(const struct rconn *c);
/* Commands sent and not answered yet. */
size_t rconn_pending(const struct rconn *c);

#endif
