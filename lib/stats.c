/*
 * stats.c owns the metric values (per-route outcome counters, the upstream
 * and Redis latency histograms, the in-flight gauge, Redis counters) and
 * their rendering as Prometheus text exposition format 0.0.4. Every route x
 * outcome series is rendered, zeros included, so dashboards see them all.
 */
#include "stats.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

static const char *const stats_names[] = {
#define X(n) #n,
    STATS_OUTCOMES(X)
#undef X
};

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double stats_bounds[STATS_BUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
    2.5, 5, 10, 30,     /* upstream_timeout defaults to 30s */
};
static const char *const stats_le[STATS_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf",
};

const char *stats_outcome_name(enum stats_outcome o)
{
    if ((int)o < 0 || o >= OUT__COUNT)
        return "unknown";
    return stats_names[o];
}

void stats_init(struct stats *s)
{
    memset(s, 0, sizeof *s);
    strcpy(s->route[0], "_unrouted");
    s->n_routes = 1;
}

/* Names longer than 63 bytes are cut to 63 (both when stored and looked up). */
int stats_route(struct stats *s, const char *name)
{
    const size_t max = sizeof s->route[0] - 1;
    if (!name || !*name)
        return 0;
    for (int i = 0; i < s->n_routes; i++)
        if (strncmp(s->route[i], name, max) == 0)
            return i;
    if (s->n_routes >= STATS_MAX_ROUTES)
        return 0;
    int i = s->n_routes++;
    strncpy(s->route[i], name, max);
    s->route[i][max] = '\0';
    return i;
}

void stats_count(struct stats *s, int route, enum stats_outcome o)
{
    if (route < 0 || route >= STATS_MAX_ROUTES)
        route = 0;
    if ((int)o < 0 || o >= OUT__COUNT)
        return;
    STAT_ADD(s->requests[route][o], 1);
}

void stats_count_observed(struct stats *s, int route, enum stats_outcome o)
{
    if (route < 0 || route >= STATS_MAX_ROUTES)
        route = 0;
    if ((int)o < 0 || o >= OUT__COUNT)
        return;
    STAT_ADD(s->observed[route][o], 1);
}

/* NaN is ignored; negative values land in the first bucket. */
void stats_observe(struct histogram *h, double seconds)
{
    if (isnan(seconds))
        return;
    int b = 0;
    while (b < STATS_BUCKETS - 1 && seconds > stats_bounds[b])
        b++;
    STAT_ADD(h->bucket[b], 1);
    STAT_ADD(h->count, 1);
    STAT_ADD(h->sum_us, seconds > 0 ? (uint64_t)(seconds * 1e6 + 0.5) : 0);
}

static void stats_merge_histogram(struct histogram *into, const struct histogram *from)
{
    for (int b = 0; b < STATS_BUCKETS; b++)
        into->bucket[b] += STAT_GET(from->bucket[b]);
    into->count += STAT_GET(from->count);
    into->sum_us += STAT_GET(from->sum_us);
}

void stats_merge(struct stats *into, const struct stats *from)
{
    for (int r = 0; r < STATS_MAX_ROUTES; r++)
        for (int o = 0; o < OUT__COUNT; o++) {
            into->requests[r][o] += STAT_GET(from->requests[r][o]);
            into->observed[r][o] += STAT_GET(from->observed[r][o]);
        }
    stats_merge_histogram(&into->upstream, &from->upstream);
    stats_merge_histogram(&into->redis, &from->redis);
    into->in_flight += STAT_GET(from->in_flight);
    int64_t oldest = STAT_GET(from->oldest_us);
    if (oldest != 0 && (into->oldest_us == 0 || oldest < into->oldest_us))
        into->oldest_us = oldest;
    into->redis_reconnects += STAT_GET(from->redis_reconnects);
    into->redis_errors += STAT_GET(from->redis_errors);
    into->redis_restarts += STAT_GET(from->redis_restarts);
}

/* Label value escaping per the text format: \\ \" \n. */
static void stats_label(FILE *out, const char *v)
{
    for (; *v; v++) {
        switch (*v) {
        case '\\': fputs("\\\\", out); break;
        case '"':  fputs("\\\"", out); break;
        case '\n': fputs("\\n", out); break;
        default:   fputc(*v, out);
        }
    }
}

static void stats_histogram(FILE *out, const char *name, const char *help,
                            const struct histogram *h)
{
    uint64_t cum = 0;
    fprintf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int b = 0; b < STATS_BUCKETS; b++) {
        cum += h->bucket[b];
        fprintf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, stats_le[b], cum);
    }
    /* exact decimal seconds from microseconds, trailing zeros dropped */
    char frac[8];
    int n = snprintf(frac, sizeof(frac), "%06" PRIu64, h->sum_us % 1000000);
    while (n > 0 && frac[n - 1] == '0')
        frac[--n] = '\0';
    fprintf(out, "%s_sum %" PRIu64 "%s%s\n", name, h->sum_us / 1000000,
            n ? "." : "", frac);
    fprintf(out, "%s_count %" PRIu64 "\n", name, h->count);
}

static void stats_outcome_counter(FILE *out, const struct stats *s,
                                  const char *name, const char *label,
                                  const uint64_t (*v)[OUT__COUNT])
{
    for (int r = 0; r < s->n_routes; r++) {
        for (int o = 0; o < OUT__COUNT; o++) {
            fprintf(out, "%s{route=\"", name);
            stats_label(out, s->route[r]);
            fprintf(out, "\",%s=\"%s\"} %" PRIu64 "\n", label, stats_names[o], v[r][o]);
        }
    }
}

void stats_render(const struct stats *s, int64_t now_us, FILE *out)
{
    fputs("# HELP idemproxy_requests_total Requests handled, by route and outcome.\n"
          "# TYPE idemproxy_requests_total counter\n", out);
    stats_outcome_counter(out, s, "idemproxy_requests_total", "outcome", s->requests);
    fputs("# HELP idemproxy_observed_total Observe mode: what enforcement would have answered, by route.\n"
          "# TYPE idemproxy_observed_total counter\n", out);
    stats_outcome_counter(out, s, "idemproxy_observed_total", "would", s->observed);
    stats_histogram(out, "idemproxy_upstream_duration_seconds",
                    "Upstream request duration in seconds.", &s->upstream);
    stats_histogram(out, "idemproxy_redis_duration_seconds",
                    "Redis round trip duration in seconds.", &s->redis);
    fprintf(out, "# HELP idemproxy_requests_in_flight Requests being handled now.\n"
                 "# TYPE idemproxy_requests_in_flight gauge\n"
                 "idemproxy_requests_in_flight %" PRId64 "\n", s->in_flight);
    double age = s->oldest_us != 0 && now_us > s->oldest_us
                 ? (double)(now_us - s->oldest_us) / 1e6 : 0;
    fprintf(out, "# HELP idemproxy_oldest_request_age_seconds Age of the oldest request being handled (0: none).\n"
                 "# TYPE idemproxy_oldest_request_age_seconds gauge\n"
                 "idemproxy_oldest_request_age_seconds %.3f\n", age);
    fprintf(out, "# HELP idemproxy_redis_reconnects_total Redis reconnections.\n"
                 "# TYPE idemproxy_redis_reconnects_total counter\n"
                 "idemproxy_redis_reconnects_total %" PRIu64 "\n", s->redis_reconnects);
    fprintf(out, "# HELP idemproxy_redis_restarts_total Redis restarts seen (its run_id changed); claims not persisted before are lost.\n"
                 "# TYPE idemproxy_redis_restarts_total counter\n"
                 "idemproxy_redis_restarts_total %" PRIu64 "\n", s->redis_restarts);
    fprintf(out, "# HELP idemproxy_redis_errors_total Redis command errors.\n"
                 "# TYPE idemproxy_redis_errors_total counter\n"
                 "idemproxy_redis_errors_total %" PRIu64 "\n", s->redis_errors);
}
