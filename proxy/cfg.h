/*
 * cfg: a loaded config's lifetime across threads. A cfgset is shared
 * read-only by every worker; each worker holds it through a cfgref, and
 * each request holds its worker's cfgref, so SIGHUP swaps the config
 * without changing it under a running request.
 */
#ifndef IDEM_CFG_H
#define IDEM_CFG_H

#include "config.h"
#include "stats.h"

/*
 * A loaded config, shared read-only by every worker. refs is atomic: each
 * worker holds one reference (through its cfgref) and the main thread one.
 */
struct cfgset {
    struct config *c;
    int refs;                         /* __atomic */
    int stats_idx[CONF_MAX_ROUTES];   /* stats route index of c->routes[i] */
};

/* A worker's handle on a cfgset: requests keep the config they started
 * under (SIGHUP swaps it). refs is the worker's own, not atomic. */
struct cfgref {
    const struct config *c;
    const int *stats_idx;
    struct cfgset *set;
    int refs;
};

/* A set of c (taken over) with refs references; its routes' stats indexes
 * from names. NULL without memory. */
struct cfgset *cfgset_new(struct config *c, struct stats *names, int refs);
void cfgset_put(struct cfgset *set);
/* A worker's handle; takes over one reference to set. */
struct cfgref *cfgref_new(struct cfgset *set);
struct cfgref *cfgref_get(struct cfgref *r);
void cfgref_put(struct cfgref *r);

#endif
