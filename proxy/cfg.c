/*
 * cfg.c: a loaded config's lifetime (see cfg.h).
 */
#include <stdlib.h>

#include "cfg.h"

struct cfgset *cfgset_new(struct config *c, struct stats *names, int refs)
{
    struct cfgset *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return NULL;
    set->c = c;
    set->refs = refs;
    for (int i = 0; i < c->n_routes; i++)
        set->stats_idx[i] = stats_route(names, c->routes[i].name);
    return set;
}

void cfgset_put(struct cfgset *set)
{
    if (__atomic_sub_fetch(&set->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    conf_free(set->c);
    free(set);
}

/* Takes over one reference to set. */
struct cfgref *cfgref_new(struct cfgset *set)
{
    struct cfgref *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->set = set;
    r->c = set->c;
    r->stats_idx = set->stats_idx;
    r->refs = 1;
    return r;
}

struct cfgref *cfgref_get(struct cfgref *r)
{
    r->refs++;
    return r;
}

void cfgref_put(struct cfgref *r)
{
    if (--r->refs > 0)
        return;
    cfgset_put(r->set);
    free(r);
}
