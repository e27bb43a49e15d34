/*
 * resolve: a host name turned into addresses without blocking the event
 * loop. getaddrinfo (the system's resolver: /etc/hosts, resolv.conf's
 * search list and ndots, nsswitch) runs on a short-lived thread of its own;
 * its answer is delivered on the loop that asked. A numeric address needs
 * no thread: resolve_numeric answers it at once.
 * Owns: the thread and the hand-over of its answer.
 * Does not own: what is done with the addresses (rconn.c connects).
 */
#ifndef IDEM_RESOLVE_H
#define IDEM_RESOLVE_H

#include <netdb.h>
#include <event2/event.h>

struct resolve;

/* ai: the addresses (the callee frees them with freeaddrinfo), or NULL
 * with err, a getaddrinfo error (gai_strerror). */
typedef void (*resolve_cb)(void *arg, struct addrinfo *ai, int err);

/* host as an IP address, v4 or v6: 0 and *ai; -1 when it is a name. */
int resolve_numeric(const char *host, int port, struct addrinfo **ai);
/* The lookup itself, blocking: for the start only, before a loop runs.
 * 0 and *ai, or a getaddrinfo error. */
int resolve_now(const char *host, int port, int ai_flags, struct addrinfo **ai);

/*
 * Resolve host:port (a stream socket's addresses; ai_flags: getaddrinfo's,
 * e.g. AI_ADDRCONFIG); cb runs later on base's loop, never inside this call.
 * NULL when no thread could be started (out of memory or threads, or 64
 * lookups already in flight in the process): cb is not called.
 */
struct resolve *resolve_start(struct event_base *base, const char *host, int port,
                              int ai_flags, resolve_cb cb, void *arg);
/* The answer is no longer wanted: cb is not called. r must not have
 * answered yet. The thread, if still asking, frees what it holds itself. */
void resolve_cancel(struct resolve *r);

#endif
