/*
 * stats: every counter, gauge and histogram idemproxy keeps, declared once
 * (STATS_METRICS), and their Prometheus text. The outcomes a request is
 * counted under are declared once too (STATS_OUTCOMES); the metrics page,
 * the request log lines, `idemproxy -T metrics` and the docs check read
 * both lists.
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
 * Every metric, once: X(field, kind, name, help) is the member of struct
 * stats, its kind, its name on /metrics and its HELP text. struct stats,
 * stats_merge, stats_render and `-T metrics` (the docs check) are written
 * from this list, in this order. A new counter is one line here, then a
 * STAT_ADD where it happens. Kinds:
 *   COUNTER     uint64_t, only goes up; the workers' values are summed
 *   GAUGE       int64_t, a level; the workers' values are summed
 *   OLDEST      int64_t, a start (monotonic us, 0: none); the earliest of
 *               the workers', shown as the seconds since it
 *   HISTOGRAM   struct histogram of seconds (STATS_BUCKETS buckets)
 *   BY_OUTCOME  uint64_t [route][outcome], labels route and outcome
 *   BY_WOULD    the same, labels route and would (observe mode)
 *   NODE_UP     a gauge per Redis node, labels node and role (STATS_ROLES):
 *               not kept here (the member is a placeholder); the admin's
 *               store renders its samples (stats_render's nodes callback)
 */
#define STATS_METRICS(X)                                                       \
    X(requests, BY_OUTCOME, idemproxy_requests_total,                          \
      "Requests handled, by route and outcome.")                               \
    X(observed, BY_WOULD, idemproxy_observed_total,                            \
      "Observe mode: what enforcement would have answered, by route.")         \
    X(upstream, HISTOGRAM, idemproxy_upstream_duration_seconds,                \
      "Upstream request duration in seconds.")                                 \
    X(redis, HISTOGRAM, idemproxy_redis_duration_seconds,                      \
      "Redis round trip duration in seconds.")                                 \
    X(in_flight, GAUGE, idemproxy_requests_in_flight,                          \
      "Requests being handled now.")                                           \
    X(oldest_us, OLDEST, idemproxy_oldest_request_age_seconds,                 \
      "Age of the oldest request being handled (0: none).")                    \
    X(connections, GAUGE, idemproxy_client_connections,                        \
      "Client connections open now (idle, reading or being answered).")        \
    X(tunnels, GAUGE, idemproxy_tunnels,                                       \
      "Upgraded connections (WebSocket and others) carried now.")              \
    X(redis_reconnects, COUNTER, idemproxy_redis_reconnects_total,             \
      "Redis reconnections.")                                                  \
    X(redis_restarts, COUNTER, idemproxy_redis_restarts_total,                 \
      "Redis restarts seen (its run_id changed); claims not persisted before are lost.") \
    X(redis_errors, COUNTER, idemproxy_redis_errors_total,                     \
      "Redis command errors.")                                                 \
    X(redis_failovers, COUNTER, idemproxy_redis_failovers_total,               \
      "Redis masters seen replaced: a sentinel switch, or a cluster master's slots taken over by a promoted replica.") \
    X(redis_slot_map_changes, COUNTER, idemproxy_redis_slot_map_changes_total, \
      "Redis Cluster slot maps learnt or changed.")                            \
    X(redis_moved, COUNTER, idemproxy_redis_moved_total,                       \
      "Redis Cluster MOVED redirections followed (the slot map updated, the command sent again).") \
    X(redis_ask, COUNTER, idemproxy_redis_ask_total,                           \
      "Redis Cluster ASK redirections followed (sent once more after ASKING).") \
    X(redis_unacked_claims, COUNTER, idemproxy_redis_unacked_claims_total,     \
      "replicas_ack: claims fewer replicas acknowledged in time; released, answered 503.") \
    X(redis_unacked_answers, COUNTER, idemproxy_redis_unacked_answers_total,   \
      "replicas_ack: stored answers fewer replicas acknowledged in time; passed on.") \
    X(redis_node_up, NODE_UP, idemproxy_redis_node_up,                         \
      "Redis nodes and sentinels the admin's connections use: 1 connected and set up, 0 not.")

/* The roles a node is listed under (idemproxy_redis_node_up's role). */
#define STATS_ROLES(X) X(master) X(seed) X(sentinel)

enum stats_kind {
    STATS_COUNTER, STATS_GAUGE, STATS_OLDEST, STATS_HISTOGRAM,
    STATS_BY_OUTCOME, STATS_BY_WOULD, STATS_NODE_UP
};

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

/* the member each kind declares */
#define STATS_MEMBER_COUNTER(f)    uint64_t f
#define STATS_MEMBER_GAUGE(f)      int64_t f
#define STATS_MEMBER_OLDEST(f)     int64_t f
#define STATS_MEMBER_HISTOGRAM(f)  struct histogram f
#define STATS_MEMBER_BY_OUTCOME(f) uint64_t f[STATS_MAX_ROUTES][OUT__COUNT]
#define STATS_MEMBER_BY_WOULD(f)   uint64_t f[STATS_MAX_ROUTES][OUT__COUNT]
#define STATS_MEMBER_NODE_UP(f)    unsigned char f   /* (rendered by the admin) */

struct stats {
    char route[STATS_MAX_ROUTES][64];  /* "" unused; index 0 is "_unrouted" */
    int n_routes;
#define X(field, kind, name, help) STATS_MEMBER_##kind(field);
    STATS_METRICS(X)                   /* one member per metric */
#undef X
};

void stats_init(struct stats *s);
/* Index of a route name, added if new; 0 (_unrouted) when full. */
int stats_route(struct stats *s, const char *name);
void stats_count(struct stats *s, int route, enum stats_outcome o);
/* observe mode: count what enforcement would have done */
void stats_count_observed(struct stats *s, int route, enum stats_outcome o);
void stats_observe(struct histogram *h, double seconds);
/* Add a worker's metrics into a total (names are not touched): sums, and
 * for an OLDEST the earliest non-zero start. */
void stats_merge(struct stats *into, const struct stats *from);
/* Prometheus text exposition format 0.0.4; now_us (monotonic) ages an
 * OLDEST. nodes (may be NULL) writes a NODE_UP metric's samples, name
 "{node=\"h:p\",role=\"master\"} 1" lines, after its HELP and TYPE. */
void stats_render(const struct stats *s, int64_t now_us, FILE *out,
                  void (*nodes)(void *arg, const char *name, FILE *out), void *arg);

/* One metric of STATS_METRICS described, for `-T metrics` and the docs. */
struct stats_metric_info {
    const char *name;              /* idemproxy_requests_total */
    const char *type;              /* Prometheus: counter, gauge, histogram */
    const char *label;             /* outcome, would; NULL: no labels but le */
    const char *help;
};
/* The i-th metric: 0, or -1 past the last. */
int stats_metric(int i, struct stats_metric_info *out);
/* Every metric as JSON (name, type, labels with the outcome names, help):
 * `idemproxy -T metrics`. 0, or -1 on a write error. */
int stats_write_metrics(FILE *f);

#endif
