/*
 * store_int.h: what store.c (a record's operations) and storenode.c (the
 * store's side of a node: its setup, the operations waiting for it,
 * readiness) share. Private to those two files; the store's interface is
 * store.h.
 */
#ifndef IDEM_STORE_INT_H
#define IDEM_STORE_INT_H

#include <stdint.h>
#include <sys/queue.h>
#include <event2/buffer.h>
#include <event2/event_struct.h>

#include "record.h"
#include "resp.h"
#include "store.h"
#include "topo.h"

#define OP_INFO RECORD_OPS        /* store_info, next to the record operations */
#define OP_MAX_REDIRECTS 5

struct wait_batch;

struct store_op {
    struct store *st;
    store_cb cb;
    void *arg;
    struct event timer;           /* the call's bound, or "answer next turn" */
    int op;                       /* enum record_op, or OP_INFO */
    struct resp_buf args;         /* numkeys, key, ARGV (after the script) */
    unsigned slot;                /* of the key (cluster) */
    char rkey[128];               /* claim: kept for a release */
    struct record_claim claim;    /* claim: what it writes (a layout-2 record is
                                     compared with its fp; its script after a
                                     WRONGTYPE; a release) */
    int64_t lease_ms;
    struct node *ask;             /* send there next, after ASKING */
    struct node *waiting;         /* in this node's queue until it is ready */
    struct node *sent_to;         /* where its command is (refs > 0) */
    struct wait_batch *batch;     /* in this WAIT batch */
    struct evbuffer *info;        /* OP_INFO: the texts so far */
    int info_left;                /* OP_INFO: replies to come */
    int refs;                     /* connection callbacks still to come */
    int redirects;
    double t0;
    enum record_kind held;        /* the reply held for the WAIT */
    char why[300];                /* answered SR_ERROR with this next turn */
    unsigned answered:1;
    unsigned nomem:1;             /* out of memory for it: answered so next turn */
    unsigned eval:1;              /* send the script itself (after NOSCRIPT) */
    unsigned native:1;            /* a command of its own (layout 2's SET NX GET) */
    TAILQ_ENTRY(store_op) link;   /* node queue or batch */
    TAILQ_ENTRY(store_op) all;    /* every live op */
};

TAILQ_HEAD(opq, store_op);

/* One WAIT and the writes it covers. */
struct wait_batch {
    struct opq ops;
    struct node *node;
    int need;                     /* replicas_ack when sent */
};

/* The store's state of a node. */
struct snode {
    struct store *st;
    struct opq waitq;             /* waiting for it to be ready */
    struct wait_batch *batch;     /* writes not covered by a WAIT yet */
    unsigned waiting:1;           /* a WAIT is out: the next one after it */
    char run_id[41];              /* of the Redis last connected to there */
};

struct store {
    struct event_base *base;
    struct stats *stats;
    struct topo *topo;
    int64_t timeout_ms;
    int replicas_ack;
    int64_t replicas_ack_timeout_ms;
    int layout;                   /* record_layout: what a new claim writes */
    char sha[RECORD_OPS][41];
    char *head;                   /* EVAL's head (the script's source) */
    size_t head_cap;
    struct opq live;
    int *ready_out;               /* published readiness, or NULL */
    unsigned cluster:1;
    unsigned watch_restarts:1;    /* this store reports Redis restarts */
    unsigned closing:1;
};

/* store.c: an op sent to the node that serves its key, or queued there */
void store_op_dispatch(struct store_op *op);
/* store.c: answer op SR_ERROR with why (unless answered); frees it when
 * no connection holds a callback on it */
void store_op_fail(struct store_op *op, const char *why);
void store_op_free(struct store_op *op);
/* store.c: n's commands of this turn are about to be written (the WAIT) */
void store_node_flush(void *owner, struct node *n);

#endif
