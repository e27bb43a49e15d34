/*
 * slots: Redis Cluster's key space: the hash slot of a key (CRC16 of its
 * hash tag, mod 16384), the map from slots to the masters that serve them,
 * and the CLUSTER SLOTS reply that fills it. Pure functions; no sockets.
 */
#ifndef IDEM_SLOTS_H
#define IDEM_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#define SLOTS_N 16384
#define SLOTS_NONE 0xffff          /* no node serves the slot */

struct redisReply;

/* The slot of a key: of its hash tag ({...}, when not empty) or the whole key. */
unsigned slots_key_slot(const char *key, size_t len);

/* A slot map: for each slot, a node index (the caller's) or SLOTS_NONE. */
struct slots_map {
    uint16_t node[SLOTS_N];
};

void slots_clear(struct slots_map *m);
/* 1 when every slot has a node. */
int slots_covered(const struct slots_map *m);

/* One range of a CLUSTER SLOTS reply: its master. host is not
 * NUL-terminated; an empty host means the node that answered. */
typedef int (*slots_range_cb)(void *arg, int start, int end, const char *host,
                              size_t hostlen, int port);

/*
 * Walk a CLUSTER SLOTS reply: each range [start, end] with its master
 * (the first address; the replicas after it are ignored). The reply is
 * checked whole first: cb runs only for a well-formed one, and not for a
 * range whose endpoint is unknown (it stays unmapped). Returns 0, the
 * first non-zero cb result, or -1 with why for a malformed reply.
 */
int slots_parse(const struct redisReply *r, slots_range_cb cb, void *arg,
                char *why, size_t wn);

#endif
