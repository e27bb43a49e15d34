/*
 * stats.c owns the metric values (the list in stats.h: per-route outcome
 * counters, latency histograms, gauges, Redis counters), their merging
 * across workers and their rendering as Prometheus text exposition format
 * 0.0.4. Every route x outcome series is rendered, zeros included, so
 * dashboards see them all.
 */
#include "stats.h"
#include "table.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *const stats_names[] = {
#define X(n) #n,
    STATS_OUTCOMES(X)
#undef X
};

/* STATS_METRICS as a table: where each metric lives in struct stats. */
static const struct stats_desc {
    const char *name;
    enum stats_kind kind;
    const char *help;
    size_t off;
} stats_metrics[] = {
#define X(field, kind, name, help) \
    { #name, STATS_##kind, help, offsetof(struct stats, field) },
    STATS_METRICS(X)
#undef X
};
#define STATS_N_METRICS (sizeof(stats_metrics) / sizeof(stats_metrics[0]))

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

static void stats_count_in(uint64_t (*v)[OUT__COUNT], int route, enum stats_outcome o)
{
    if (route < 0 || route >= STATS_MAX_ROUTES)
        route = 0;
    if ((int)o < 0 || o >= OUT__COUNT)
        return;
    STAT_ADD(v[route][o], 1);
}

void stats_count(struct stats *s, int route, enum stats_outcome o)
{
    stats_count_in(s->requests, route, o);
}

void stats_count_observed(struct stats *s, int route, enum stats_outcome o)
{
    stats_count_in(s->observed, route, o);
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

/* the member of metric m in s */
#define STATS_AT(type, s, m) ((type)((char *)(s) + (m)->off))
#define STATS_AT_C(type, s, m) ((const type)((const char *)(s) + (m)->off))

static void stats_merge_one(struct stats *into, const struct stats *from,
                            const struct stats_desc *m)
{
    switch (m->kind) {
    case STATS_COUNTER:
        *STATS_AT(uint64_t *, into, m) += STAT_GET(*STATS_AT_C(uint64_t *, from, m));
        break;
    case STATS_GAUGE:
        *STATS_AT(int64_t *, into, m) += STAT_GET(*STATS_AT_C(int64_t *, from, m));
        break;
    case STATS_OLDEST: {
        int64_t *to = STATS_AT(int64_t *, into, m);
        int64_t t = STAT_GET(*STATS_AT_C(int64_t *, from, m));
        if (t != 0 && (*to == 0 || t < *to))
            *to = t;
        break;
    }
    case STATS_HISTOGRAM: {
        struct histogram *to = STATS_AT(struct histogram *, into, m);
        const struct histogram *h = STATS_AT_C(struct histogram *, from, m);
        for (int b = 0; b < STATS_BUCKETS; b++)
            to->bucket[b] += STAT_GET(h->bucket[b]);
        to->count += STAT_GET(h->count);
        to->sum_us += STAT_GET(h->sum_us);
        break;
    }
    case STATS_BY_OUTCOME:
    case STATS_BY_WOULD: {
        uint64_t (*to)[OUT__COUNT] = STATS_AT(uint64_t (*)[OUT__COUNT], into, m);
        const uint64_t (*v)[OUT__COUNT] = STATS_AT_C(uint64_t (*)[OUT__COUNT], from, m);
        for (int r = 0; r < STATS_MAX_ROUTES; r++)
            for (int o = 0; o < OUT__COUNT; o++)
                to[r][o] += STAT_GET(v[r][o]);
        break;
    }
    case STATS_NODE_UP:
        break;                     /* not kept in struct stats */
    }
}

void stats_merge(struct stats *into, const struct stats *from)
{
    for (size_t i = 0; i < STATS_N_METRICS; i++)
        stats_merge_one(into, from, &stats_metrics[i]);
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

static void stats_histogram(FILE *out, const char *name, const struct histogram *h)
{
    uint64_t cum = 0;
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

int stats_metric(int i, struct stats_metric_info *out)
{
    static const char *const types[] = {
        [STATS_COUNTER] = "counter", [STATS_GAUGE] = "gauge", [STATS_OLDEST] = "gauge",
        [STATS_HISTOGRAM] = "histogram", [STATS_BY_OUTCOME] = "counter",
        [STATS_BY_WOULD] = "counter", [STATS_NODE_UP] = "gauge",
    };
    if (i < 0 || (size_t)i >= STATS_N_METRICS)
        return -1;
    const struct stats_desc *m = &stats_metrics[i];
    out->name = m->name;
    out->type = types[m->kind];
    out->label = m->kind == STATS_BY_OUTCOME ? "outcome"
               : m->kind == STATS_BY_WOULD ? "would" : NULL;
    out->help = m->help;
    return 0;
}

void stats_render(const struct stats *s, int64_t now_us, FILE *out,
                  void (*nodes)(void *arg, const char *name, FILE *out), void *arg)
{
    struct stats_metric_info info;
    for (int i = 0; stats_metric(i, &info) == 0; i++) {
        const struct stats_desc *m = &stats_metrics[i];
        fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, info.type);
        switch (m->kind) {
        case STATS_COUNTER:
            fprintf(out, "%s %" PRIu64 "\n", m->name, *STATS_AT_C(uint64_t *, s, m));
            break;
        case STATS_GAUGE:
            fprintf(out, "%s %" PRId64 "\n", m->name, *STATS_AT_C(int64_t *, s, m));
            break;
        case STATS_OLDEST: {
            int64_t t = *STATS_AT_C(int64_t *, s, m);
            double age = t != 0 && now_us > t ? (double)(now_us - t) / 1e6 : 0;
            fprintf(out, "%s %.3f\n", m->name, age);
            break;
        }
        case STATS_HISTOGRAM:
            stats_histogram(out, m->name, STATS_AT_C(struct histogram *, s, m));
            break;
        case STATS_BY_OUTCOME:
        case STATS_BY_WOULD:
            stats_outcome_counter(out, s, m->name, info.label,
                                  STATS_AT_C(uint64_t (*)[OUT__COUNT], s, m));
            break;
        case STATS_NODE_UP:
            if (nodes != NULL)
                nodes(arg, m->name, out);
            break;
        }
    }
}

/* Labels of a metric: route, then info->label with every outcome name;
 * node and role for a NODE_UP. */
static json_t *stats_labels(int i, const struct stats_metric_info *info)
{
    json_t *labels = json_array();
    if (labels != NULL && stats_metrics[i].kind == STATS_NODE_UP) {
        static const char *const roles[] = {
#define X(r) #r,
            STATS_ROLES(X)
#undef X
        };
        json_t *values = json_array();
        for (size_t r = 0; values != NULL && r < sizeof(roles) / sizeof(roles[0]); r++)
            json_array_append_new(values, json_string(roles[r]));
        json_array_append_new(labels, json_pack("{s:s, s:[]}", "name", "node", "values"));
        json_array_append_new(labels, json_pack("{s:s, s:o*}", "name", "role", "values", values));
        return labels;
    }
    if (info->label == NULL || labels == NULL)
        return labels;
    json_t *values = json_array();
    for (int o = 0; values != NULL && o < OUT__COUNT; o++)
        json_array_append_new(values, json_string(stats_names[o]));
    json_array_append_new(labels, json_pack("{s:s, s:[]}", "name", "route", "values"));
    json_array_append_new(labels, json_pack("{s:s, s:o*}", "name", info->label,
                                            "values", values));
    return labels;
}

/* Metric i as a row of -T metrics. */
static json_t *stats_metric_row(int i)
{
    struct stats_metric_info info;
    if (stats_metric(i, &info) != 0)
        return NULL;
    return json_pack("{s:s, s:s, s:o*, s:s}", "name", info.name, "type", info.type,
                     "labels", stats_labels(i, &info), "help", info.help);
}

int stats_write_metrics(FILE *f)
{
    return table_write(f, (int)STATS_N_METRICS, stats_metric_row);
}
