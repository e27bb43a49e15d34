/*
 * sentinel: the replies that say where a Sentinel-managed master is: the
 * answer to SENTINEL get-master-addr-by-name, a +switch-master message,
 * and ROLE. Pure functions over hiredis's redisReply; no sockets.
 */
#ifndef IDEM_SENTINEL_H
#define IDEM_SENTINEL_H

#include <stddef.h>

struct redisReply;

/*
 * SENTINEL get-master-addr-by-name: [host, port]. 0 with host (hostsize)
 * and *port; 1 when the sentinel does not know the name (nil); -1 when the
 * reply is malformed (an error reply included).
 */
int sentinel_parse_addr(const struct redisReply *r, char *host, size_t hostsize, int *port);

/*
 * A reply on a subscribed connection. 1 for a message, ["message", channel,
 * payload], with channel and payload pointing into r; 0 for anything else
 * a subscribed connection answers (subscribe confirmations, pongs); -1 when
 * malformed.
 */
int sentinel_parse_push(const struct redisReply *r, const char **channel, size_t *clen,
                        const char **payload, size_t *plen);

/*
 * A +switch-master payload: "<name> <old-ip> <old-port> <new-ip> <new-port>".
 * 1 when it is about master `name`, with the new address in host and
 * *port; 0 when it is about another master; -1 when malformed.
 */
int sentinel_parse_switch(const char *msg, size_t len, const char *name,
                          char *host, size_t hostsize, int *port);

enum sentinel_role { ROLE_UNKNOWN, ROLE_MASTER, ROLE_REPLICA, ROLE_SENTINEL };

/* ROLE's first element: "master", "slave", "sentinel"; ROLE_UNKNOWN otherwise. */
enum sentinel_role sentinel_parse_role(const struct redisReply *r);

#endif
