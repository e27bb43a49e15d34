/*
 * resolve.c: getaddrinfo on a thread, its answer on the loop.
 *
 *   loop: resolve_start ─ eventfd, read event ─ pthread_create (detached)
 *   thread: getaddrinfo ─ answer stored, done (release) ─ eventfd written
 *   loop: read event ─ done (acquire) ─ cb(ai) ─ its reference dropped
 *
 * Two references: the loop's and the thread's. Whichever drops the last
 * frees the request (the addresses too if nobody took them), so a cancel
 * while the thread still waits on a slow DNS server costs nothing on the
 * loop: the thread frees everything when it is done. An rconn keeps one
 * lookup at a time (across its retries), but a cancelled one lives until
 * getaddrinfo returns (tens of seconds against a dead DNS server), so the
 * threads in flight are capped for the process: past RESOLVE_MAX, a
 * lookup fails at once and is tried again with the connection.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "resolve.h"

#define RESOLVE_MAX 64            /* lookup threads in flight, per process */

static int resolve_threads;       /* atomic */

struct resolve {
    char host[256];
    int port;
    int flags;                    /* getaddrinfo's ai_flags */
    int efd;
    struct event *ev;             /* the loop's; NULL once it let go */
    resolve_cb cb;
    void *arg;
    struct addrinfo *ai;          /* the thread's answer, until taken */
    int err;
    int done;                     /* atomic: ai and err are written */
    int refs;                     /* atomic */
};

static void resolve_put(struct resolve *r)
{
    if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (r->ai != NULL)
        freeaddrinfo(r->ai);
    close(r->efd);
    free(r);
}

static struct addrinfo resolve_hints(int flags)
{
    struct addrinfo h;
    memset(&h, 0, sizeof(h));
    h.ai_family = AF_UNSPEC;
    h.ai_socktype = SOCK_STREAM;
    h.ai_flags = AI_NUMERICSERV | flags;
    return h;
}

int resolve_now(const char *host, int port, int ai_flags, struct addrinfo **ai)
{
    struct addrinfo h = resolve_hints(ai_flags);
    char p[8];
    snprintf(p, sizeof(p), "%d", port);
    *ai = NULL;
    int err = getaddrinfo(host, p, &h, ai);
    if (err == 0 && *ai == NULL)
        err = EAI_NONAME;
    return err;
}

int resolve_numeric(const char *host, int port, struct addrinfo **ai)
{
    return resolve_now(host, port, AI_NUMERICHOST, ai) == 0 ? 0 : -1;
}

#ifdef IDEM_FAULT_POINTS
/* The fault build's slow DNS server: IDEMPROXY_RESOLVE_DELAY_MS. */
static void resolve_fault_delay(void)
{
    const char *d = getenv("IDEMPROXY_RESOLVE_DELAY_MS");
    long ms = d != NULL ? strtol(d, NULL, 10) : 0;
    if (ms > 0) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}
#endif

static void *resolve_thread(void *arg)
{
    struct resolve *r = arg;
#ifdef IDEM_FAULT_POINTS
    resolve_fault_delay();
#endif
    struct addrinfo *ai = NULL;
    int err = resolve_now(r->host, r->port, r->flags, &ai);
    r->ai = ai;
    r->err = err;
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    uint64_t one = 1;
    ssize_t w = write(r->efd, &one, sizeof(one));
    (void)w;                      /* an eventfd write of 1 cannot fill it */
    resolve_put(r);
    __atomic_sub_fetch(&resolve_threads, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void on_resolved(evutil_socket_t fd, short what, void *arg)
{
    struct resolve *r = arg;
    (void)fd; (void)what;
    if (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE))
        return;                   /* (not written yet: cannot happen) */
    struct addrinfo *ai = r->ai;
    int err = r->err;
    r->ai = NULL;
    event_free(r->ev);
    r->ev = NULL;
    resolve_cb cb = r->cb;
    void *cb_arg = r->arg;
    resolve_put(r);
    cb(cb_arg, ai, err);
}

struct resolve *resolve_start(struct event_base *base, const char *host, int port,
                              int ai_flags, resolve_cb cb, void *arg)
{
    struct resolve *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    snprintf(r->host, sizeof(r->host), "%s", host);
    r->port = port;
    r->flags = ai_flags;
    r->cb = cb;
    r->arg = arg;
    r->refs = 2;
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        free(r);
        return NULL;
    }
    r->ev = event_new(base, r->efd, EV_READ, on_resolved, r);
    if (r->ev == NULL || event_add(r->ev, NULL) != 0)
        goto fail;
    if (__atomic_add_fetch(&resolve_threads, 1, __ATOMIC_RELAXED) > RESOLVE_MAX) {
        __atomic_sub_fetch(&resolve_threads, 1, __ATOMIC_RELAXED);
        goto fail;
    }
    pthread_attr_t at;
    pthread_t t;
    int rc = pthread_attr_init(&at);
    if (rc == 0) {
        /* signals are the main thread's: the thread starts with them all
         * blocked (it inherits the mask it was created under) */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&t, &at, resolve_thread, r);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&at);
    }
    if (rc != 0) {
        __atomic_sub_fetch(&resolve_threads, 1, __ATOMIC_RELAXED);
        goto fail;
    }
    return r;
fail:
    if (r->ev != NULL)
        event_free(r->ev);
    close(r->efd);
    free(r);
    return NULL;
}

void resolve_cancel(struct resolve *r)
{
    if (r == NULL || r->ev == NULL)
        return;
    event_free(r->ev);
    r->ev = NULL;
    resolve_put(r);
}
