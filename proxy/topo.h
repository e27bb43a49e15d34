/*
 * topo: where a record's key lives, for one event loop: the nodes it
 * talks to (one connection each), and which of them is the master for a
 * slot. Three deployments: one server ([redis] url), a master found and
 * followed through sentinels (sentinels), or a Redis Cluster whose slot
 * map is learnt from cluster_nodes and kept current (cluster_nodes).
 * Owns: the nodes and their connections, the sentinel connection (SENTINEL
 * get-master-addr-by-name, +switch-master, ROLE), the slot map (CLUSTER
 * SLOTS on start, after MOVED, a lost master or CLUSTERDOWN, and now and
 * then), failover and map-change logs and counters, what is wrong for
 * /readyz. Does not own: the record operations, their retries and WAIT
 * (proxy/store.c), which sets each node up through the hooks below.
 */
#ifndef IDEM_TOPO_H
#define IDEM_TOPO_H

#include <stdio.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "stats.h"

struct topo;
struct rconn;

/* A data node: a master, or (cluster) a seed not placed in the map yet. */
struct node {
    struct topo *t;
    struct rconn *c;
    char host[256];
    int port;
    void *user;                    /* the store's per-node state */
    char said[320];                /* the failure last logged: said once */
    int setup_left;                /* setup replies still to come */
    unsigned ready:1;              /* connected and set up: takes operations */
    unsigned down:1;               /* the last attempt failed: fail fast */
    unsigned gone:1;               /* out of the topology, freed soon */
    unsigned seed:1;               /* cluster: from cluster_nodes */
    unsigned role_checked:1;       /* sentinel: ROLE said master */
};

struct topo_hooks {
    /* A node was created (-1: no memory for the owner's state, the node is
     * not made) or is being freed: the owner's state in n->user. */
    int (*node_new)(void *owner, struct node *n);
    void (*node_free)(void *owner, struct node *n);
    /* n is connected: queue the owner's setup, then topo_setup_done() for
     * each reply that completes it (see topo_setup_expect). */
    void (*node_up)(void *owner, struct node *n);
    /* n is ready for operations, or lost (its commands were answered). */
    void (*node_ready)(void *owner, struct node *n);
    void (*node_down)(void *owner, struct node *n);
    /* n's commands of this turn are about to be written */
    void (*node_flush)(void *owner, struct node *n);
    /* the master or the slot map changed: readiness may have */
    void (*changed)(void *owner);
};

/* NULL when out of memory. */
struct topo *topo_open(struct event_base *base, const struct config *c, SSL_CTX *tls,
                       struct stats *stats, const struct topo_hooks *h, void *owner);
void topo_close(struct topo *t);

/*
 * The node serving slot (0..16383; ignored but for a cluster), or NULL with
 * *why saying what is wrong (no master known, switching, slot unserved).
 */
struct node *topo_route(struct topo *t, unsigned slot, const char **why);
/* MOVED slot host:port (host "": the node that answered, from): the map
 * says so from now on, and is fetched again soon. The node, or NULL. */
struct node *topo_moved(struct topo *t, unsigned slot, const char *host, int port,
                        struct node *from);
/* ASK: the node at host:port (created if new), not put in the map. */
struct node *topo_node_at(struct topo *t, const char *host, int port, struct node *from);
/* n answered READONLY (a demoted master) or CLUSTERDOWN: look again. */
void topo_stale(struct topo *t, struct node *n, const char *why);

/* The owner's setup of n takes `count` replies more; each reply calls
 * topo_setup_done(n, NULL), or with why to refuse the node (dropped and
 * retried). */
void topo_setup_expect(struct node *n, int count);
void topo_setup_done(struct node *n, const char *why);

/* Every master (every node for one server or a sentinel master). */
void topo_each_master(struct topo *t, void (*fn)(void *arg, struct node *n), void *arg);
int topo_n_masters(struct topo *t);

/* 1 when every slot (or the one master) has a ready node. */
int topo_ready(const struct topo *t);
/* Why not ready, for /readyz and logs: "redis at h:p: connection refused". */
const char *topo_status(const struct topo *t);
/* What else is wrong while ready (a sentinel unreachable), "; "-separated,
 * into buf; "" when nothing. */
void topo_problems(const struct topo *t, char *buf, size_t n);
/* Prometheus samples name{node,role} 1|0 for every node and sentinel. */
void topo_render_nodes(const struct topo *t, const char *name, FILE *f);

/* Reload: credentials for the next connections, and the command bound. */
void topo_apply(struct topo *t, const struct config *c);

/* Why n is not ready ("redis at h:p: connection refused"). */
const char *topo_node_status(const struct node *n);

/* "host:port" of n, for logs */
const char *topo_node_name(const struct node *n, char *buf, size_t len);

#endif
