/*
 * addr: the network addresses a config names: "host:port" (or
 * "[v6]:port"), lists of them (the sentinels, a cluster's seed nodes), and
 * Redis URLs: redis:// or rediss:// (TLS), with an ACL user and password.
 * Pure functions; no sockets, no name lookups.
 */
#ifndef IDEM_ADDR_H
#define IDEM_ADDR_H

#include <stddef.h>

#define ADDR_HOST_MAX 256          /* host buffers, the NUL included */
#define ADDR_MAX_NODES 16          /* longest list of nodes */

struct addr_node {
    char host[ADDR_HOST_MAX];
    int port;
};

/* A list of nodes, as a config holds it. */
struct addr_nodes {
    int n;
    struct addr_node v[ADDR_MAX_NODES];
};

/*
 * "host:port" or "[v6]:port" into host (hostsize) and *port (1..65535); a
 * missing port is default_port, or an error when that is 0. -1 with why.
 */
int addr_hostport(const char *s, char *host, size_t hostsize, int *port,
                  int default_port, char *why, size_t wn);

/*
 * A list of host:port separated by commas and/or white space, at least one,
 * at most ADDR_MAX_NODES, no node twice. 0, or -1 with why (out untouched).
 */
int addr_list(const char *s, int default_port, struct addr_nodes *out,
              char *why, size_t wn);

/* A Redis URL, parsed. */
struct addr_redis {
    char host[ADDR_HOST_MAX];
    int port;                      /* default 6379 */
    int db;                        /* 0..255, default 0 */
    int tls;                       /* 1 for rediss:// */
    char user[128];                /* "" when none */
    char password[256];            /* "" when none */
};

/*
 * redis[s]://[[user][:password]@]host[:port][/db]; user and password may be
 * percent-encoded (%40 for '@'). 0, or -1 with why (out untouched). why
 * never quotes the password.
 */
int addr_redis_url(const char *url, struct addr_redis *out, char *why, size_t wn);

#endif
