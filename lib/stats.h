/*
 * stats: counters and histograms, and their Prometheus text. The list of
 * outcomes is declared once (STATS_OUTCOMES); metrics, logs and tests read it.
 */
#ifndef IDEM_STATS_H
#define IDEM_STATS_H

#include <stdint.h>
#include <stdio.h>

#define STATS_OUTCOMES(X) \
    X(first)          \
    X(replay)         \
    X(mismatch)       \
    X(in_flight)      \
    X(key_missing)    \
    X(key_invalid)    \
    X(scope_missing)  \
    X(bad_request)    \
    X(too_large)      \
    X(store_error)    \
    X(upstream_error) \
    X(not_stored)     \
    X(passthrough)

enum stats_outcome {
#define X(n) OUT_##n,
    STATS_OUTCOMES(X)
#undef X
    OUT__COUNT
};

const char *stats_outcome_name(enum stats_outcome o);

#define STATS_MAX_ROUTES 65
#define STATS_BUCKETS 16    /* 0.5ms 1 2.5 5 10 25 50 100 250 500 ms, 1 2.5 5 10 30 s, +Inf */

/*
 * Each worker thread writes only its own struct stats; the admin thread
 * reads them all and sums them (stats_merge) for /metrics. So a writer
 * stores with STAT_ADD (a relaxed atomic load and store: a plain add on
 * x86, no lock, since there is one writer) and the reader loads with
 * STAT_GET. Route names are written by the admin thread only.
 */
#define STAT_GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STAT_ADD(x, v) \
    __atomic_store_n(&(x), STAT_GET(x) + (v), __ATOMIC_RELAXED)
#define STAT_SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

struct histogram {
    uint64_t bucket[STATS_BUCKETS]; /* cumulative is computed on render */
    uint64_t count;
    uint64_t sum_us;                /* microseconds */
};

struct stats {
    char route[STATS_MAX_ROUTES][64];  /* "" unused; index 0 is "_unrouted" */
    int n_routes;
    uint64_t requests[STATS_MAX_ROUTES][OUT__COUNT];
    /* observe mode: what enforcement would have answered */
    uint64_t observed[STATS_MAX_ROUTES][OUT__COUNT];
    struct histogram upstream;          /* upstream request seconds */
    struct histogram redis;             /* Redis round trip seconds */
    int64_t in_flight;                  /* requests being handled now */
    int64_t oldest_us;                  /* start (monotonic us) of the oldest, 0: none */
    uint64_t redis_reconnects;
    uint64_t redis_errors;
    uint64_t redis_restarts;            /* run_id changed between connections */
};

void stats_init(struct stats *s);
/* Index of a route name, added if new; 0 (_unrouted) when full. */
int stats_route(struct stats *s, const char *name);
void stats_count(struct stats *s, int route, enum stats_outcome o);
/* observe mode: count what enforcement would have done */
void stats_count_observed(struct stats *s, int route, enum stats_outcome o);
void stats_observe(struct histogram *h, double seconds);
/* Add a worker's counters into a total (names are not touched). The
 * oldest start is the minimum of the non-zero ones. */
void stats_merge(struct stats *into, const struct stats *from);
/* Prometheus text exposition format 0.0.4; now_us (monotonic) ages the
 * oldest request in flight. */
void stats_render(const struct stats *s, int64_t now_us, FILE *out);

#endif
