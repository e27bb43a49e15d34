/*
 * test_stats: lib/stats.c counters, histograms and their Prometheus text,
 * rendered into an open_memstream buffer and checked line by line; the
 * metric list (STATS_METRICS) as /metrics and `-T metrics` show it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

static char *rendered;
static size_t rendered_len;

/* A node gauge's samples, as the admin's store writes them. */
static void one_node(void *arg, const char *name, FILE *out)
{
    (void)arg;
    fprintf(out, "%s{node=\"127.0.0.1:6379\",role=\"master\"} 1\n", name);
}

/* The text of stats_render(s) at time now_us; the caller frees it. */
static char *render_at(const struct stats *s, int64_t now_us)
{
    rendered = NULL;
    rendered_len = 0;
    FILE *f = open_memstream(&rendered, &rendered_len);
    assert_non_null(f);
    stats_render(s, now_us, f, one_node, NULL);
    fclose(f);
    assert_non_null(rendered);
    return rendered;
}

static char *render(const struct stats *s)
{
    return render_at(s, 0);
}

/* True if text holds line as a whole line. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

#define assert_line(text, line) \
    do { if (!has_line(text, line)) fail_msg("missing line: %s", line); } while (0)

static void test_init_and_routes(void **state)
{
    (void)state;
    static struct stats s;
    stats_init(&s);
    assert_int_equal(s.n_routes, 1);
    assert_string_equal(s.route[0], "_unrouted");
    assert_int_equal(stats_route(&s, "_unrouted"), 0);
    assert_int_equal(stats_route(&s, "orders"), 1);
    assert_int_equal(stats_route(&s, "payments"), 2);
    assert_int_equal(stats_route(&s, "orders"), 1);
    assert_int_equal(s.n_routes, 3);

    char name[32];
    for (int i = 3; i < STATS_MAX_ROUTES; i++) {
        snprintf(name, sizeof name, "r%d", i);
        assert_int_equal(stats_route(&s, name), i);
    }
    assert_int_equal(s.n_routes, STATS_MAX_ROUTES);
    assert_int_equal(stats_route(&s, "one-too-many"), 0); /* full */
    assert_int_equal(s.n_routes, STATS_MAX_ROUTES);
    assert_int_equal(stats_route(&s, "r10"), 10);         /* still found */
}

static void test_counts(void **state)
{
    (void)state;
    static struct stats s;
    stats_init(&s);
    int r = stats_route(&s, "orders");
    stats_count(&s, r, OUT_first);
    stats_count(&s, r, OUT_first);
    stats_count(&s, r, OUT_first);
    stats_count(&s, r, OUT_replay);
    stats_count(&s, 0, OUT_key_missing);
    s.in_flight = 4;
    s.redis_reconnects = 2;
    s.redis_restarts = 1;
    s.redis_errors = 7;

    char *t = render(&s);
    assert_line(t, "# HELP idemproxy_requests_total Requests handled, by route and outcome.");
    assert_line(t, "# TYPE idemproxy_requests_total counter");
    assert_line(t, "idemproxy_requests_total{route=\"orders\",outcome=\"first\"} 3");
    assert_line(t, "idemproxy_requests_total{route=\"orders\",outcome=\"replay\"} 1");
    assert_line(t, "idemproxy_requests_total{route=\"orders\",outcome=\"mismatch\"} 0");
    assert_line(t, "idemproxy_requests_total{route=\"_unrouted\",outcome=\"key_missing\"} 1");
    assert_line(t, "idemproxy_requests_total{route=\"_unrouted\",outcome=\"first\"} 0");
    assert_line(t, "# TYPE idemproxy_requests_in_flight gauge");
    assert_line(t, "idemproxy_requests_in_flight 4");
    assert_line(t, "# TYPE idemproxy_redis_reconnects_total counter");
    assert_line(t, "idemproxy_redis_reconnects_total 2");
    assert_line(t, "idemproxy_redis_restarts_total 1");
    assert_line(t, "# TYPE idemproxy_redis_errors_total counter");
    assert_line(t, "idemproxy_redis_errors_total 7");

    /* Every route x every outcome appears, zeros included. */
    char line[256];
    const char *routes[] = { "_unrouted", "orders" };
    for (int i = 0; i < 2; i++)
        for (int o = 0; o < OUT__COUNT; o++) {
            snprintf(line, sizeof line,
                     "idemproxy_requests_total{route=\"%s\",outcome=\"%s\"} ",
                     routes[i], stats_outcome_name((enum stats_outcome)o));
            assert_non_null(strstr(t, line));
        }
    int n = 0;
    for (const char *p = t; (p = strstr(p, "\nidemproxy_requests_total{")) != NULL; p++)
        n++;
    assert_int_equal(n, 2 * OUT__COUNT);
    free(t);
}

/* Workers count into their own stats; /metrics shows the sum. */
static void test_merge_and_observed(void **state)
{
    (void)state;
    static struct stats names, w1, w2;
    stats_init(&names);
    stats_init(&w1);
    stats_init(&w2);
    int r = stats_route(&names, "orders");
    stats_count(&w1, r, OUT_first);
    stats_count(&w2, r, OUT_first);
    stats_count(&w2, r, OUT_replay);
    stats_count_observed(&w1, r, OUT_mismatch);
    stats_observe(&w1.upstream, 0.002);
    stats_observe(&w2.upstream, 0.5);
    w1.in_flight = 2;
    w2.in_flight = 1;
    w1.oldest_us = 5000000;
    w2.oldest_us = 3000000;        /* the older one wins */
    w2.redis_restarts = 1;

    stats_merge(&names, &w1);
    stats_merge(&names, &w2);
    char *t = render_at(&names, 4500000);
    assert_line(t, "idemproxy_requests_total{route=\"orders\",outcome=\"first\"} 2");
    assert_line(t, "idemproxy_requests_total{route=\"orders\",outcome=\"replay\"} 1");
    assert_line(t, "idemproxy_observed_total{route=\"orders\",would=\"mismatch\"} 1");
    assert_line(t, "idemproxy_observed_total{route=\"orders\",would=\"first\"} 0");
    assert_line(t, "idemproxy_upstream_duration_seconds_count 2");
    assert_line(t, "idemproxy_upstream_duration_seconds_sum 0.502");
    assert_line(t, "idemproxy_requests_in_flight 3");
    assert_line(t, "idemproxy_oldest_request_age_seconds 1.500");
    assert_line(t, "idemproxy_redis_restarts_total 1");
    free(t);

    /* nothing in flight: age 0, not the age of the process */
    static struct stats idle;
    stats_init(&idle);
    t = render_at(&idle, 4500000);
    assert_line(t, "idemproxy_oldest_request_age_seconds 0.000");
    free(t);
}

static void test_outcome_names(void **state)
{
    (void)state;
    assert_string_equal(stats_outcome_name(OUT_first), "first");
    assert_string_equal(stats_outcome_name(OUT_in_flight), "in_flight");
    assert_string_equal(stats_outcome_name(OUT_passthrough), "passthrough");
#define X(n) assert_string_equal(stats_outcome_name(OUT_##n), #n);
    STATS_OUTCOMES(X)
#undef X
}

static void test_histogram(void **state)
{
    (void)state;
    static struct stats s;
    stats_init(&s);
    stats_observe(&s.upstream, 0.0001);  /* le 0.0005 */
    stats_observe(&s.upstream, 0.0005);  /* le 0.0005: bound is inclusive */
    stats_observe(&s.upstream, 0.003);   /* le 0.005 */
    stats_observe(&s.upstream, 0.2);     /* le 0.25 */
    stats_observe(&s.upstream, 1.0);     /* le 1 */
    stats_observe(&s.upstream, 7.5);     /* le 10 */
    stats_observe(&s.upstream, 45);      /* +Inf only */
    assert_int_equal(s.upstream.bucket[0], 2);
    assert_int_equal(s.upstream.bucket[3], 1);
    assert_int_equal(s.upstream.bucket[8], 1);
    assert_int_equal(s.upstream.bucket[10], 1);
    assert_int_equal(s.upstream.bucket[13], 1);
    assert_int_equal(s.upstream.bucket[15], 1);
    assert_int_equal(s.upstream.count, 7);
    stats_observe(&s.redis, 0.002);

    char *t = render(&s);
    const char *u = "idemproxy_upstream_duration_seconds";
    assert_line(t, "# HELP idemproxy_upstream_duration_seconds Upstream request duration in seconds.");
    assert_line(t, "# TYPE idemproxy_upstream_duration_seconds histogram");
    const char *want[][2] = {
        { "0.0005", "2" }, { "0.001", "2" }, { "0.0025", "2" }, { "0.005", "3" },
        { "0.01", "3" }, { "0.025", "3" }, { "0.05", "3" }, { "0.1", "3" },
        { "0.25", "4" }, { "0.5", "4" }, { "1", "5" }, { "2.5", "5" },
        { "5", "5" }, { "10", "6" }, { "30", "6" }, { "+Inf", "7" },
    };
    char line[256];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(line, sizeof line, "%s_bucket{le=\"%s\"} %s", u, want[i][0], want[i][1]);
        assert_line(t, line);
    }
    assert_line(t, "idemproxy_upstream_duration_seconds_count 7");
    const char *sum = strstr(t, "idemproxy_upstream_duration_seconds_sum ");
    assert_non_null(sum);
    assert_float_equal(strtod(sum + strlen("idemproxy_upstream_duration_seconds_sum "),
                              NULL), 53.7036, 1e-9);

    assert_line(t, "# TYPE idemproxy_redis_duration_seconds histogram");
    assert_line(t, "idemproxy_redis_duration_seconds_bucket{le=\"0.001\"} 0");
    assert_line(t, "idemproxy_redis_duration_seconds_bucket{le=\"0.0025\"} 1");
    assert_line(t, "idemproxy_redis_duration_seconds_bucket{le=\"+Inf\"} 1");
    assert_line(t, "idemproxy_redis_duration_seconds_count 1");
    assert_line(t, "idemproxy_redis_duration_seconds_sum 0.002");
    free(t);
}

static void test_empty_render(void **state)
{
    (void)state;
    static struct stats s;
    stats_init(&s);
    char *t = render(&s);
    assert_line(t, "idemproxy_upstream_duration_seconds_bucket{le=\"+Inf\"} 0");
    assert_line(t, "idemproxy_upstream_duration_seconds_sum 0");
    assert_line(t, "idemproxy_upstream_duration_seconds_count 0");
    assert_line(t, "idemproxy_requests_in_flight 0");
    /* Every line is a comment or "name{...} value" / "name value". */
    for (char *p = t; *p; ) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(nl > p);
        p = nl + 1;
    }
    free(t);
}

static void test_label_escaping(void **state)
{
    (void)state;
    static struct stats s;
    stats_init(&s);
    int r = stats_route(&s, "a\\b\"c\nd");
    assert_int_equal(r, 1);
    stats_count(&s, r, OUT_mismatch);
    char *t = render(&s);
    assert_line(t, "idemproxy_requests_total{route=\"a\\\\b\\\"c\\nd\",outcome=\"mismatch\"} 1");
    free(t);
}

/* Every metric of the list has its HELP and TYPE lines and its samples. */
static void test_every_metric_rendered(void **state)
{
    (void)state;
    static struct stats s;
    stats_init(&s);
    char *t = render(&s);
    struct stats_metric_info m;
    char line[512];
    int n = 0;
    for (; stats_metric(n, &m) == 0; n++) {
        snprintf(line, sizeof line, "# HELP %s %s", m.name, m.help);
        assert_line(t, line);
        snprintf(line, sizeof line, "# TYPE %s %s", m.name, m.type);
        assert_line(t, line);
        snprintf(line, sizeof line, "\n%s%s", m.name,
                 m.label ? "{route=\"_unrouted\"," : strcmp(m.type, "histogram") == 0
                 ? "_count " : strcmp(m.name, "idemproxy_redis_node_up") == 0
                 ? "{node=\"127.0.0.1:6379\",role=\"master\"} 1" : " ");
        assert_non_null(strstr(t, line));
    }
    assert_int_equal(n, 18);
    assert_int_equal(stats_metric(n, &m), -1);
    assert_int_equal(stats_metric(-1, &m), -1);
    free(t);
}

/* `idemproxy -T metrics`: the same list as JSON, one metric a line. */
static void test_metrics_json(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(stats_write_metrics(f), 0);
    fclose(f);
    json_error_t err;
    json_t *all = json_loads(text, 0, &err);
    assert_non_null(all);
    struct stats_metric_info m;
    size_t i;
    json_t *row;
    json_array_foreach(all, i, row) {
        assert_int_equal(stats_metric((int)i, &m), 0);
        assert_string_equal(json_string_value(json_object_get(row, "name")), m.name);
        assert_string_equal(json_string_value(json_object_get(row, "type")), m.type);
        assert_string_equal(json_string_value(json_object_get(row, "help")), m.help);
        json_t *labels = json_object_get(row, "labels");
        if (strcmp(m.name, "idemproxy_redis_node_up") == 0) {
            /* node (any), role (STATS_ROLES) */
            assert_string_equal(json_string_value(json_object_get(json_array_get(labels, 0),
                                                                  "name")), "node");
            json_t *roles = json_object_get(json_array_get(labels, 1), "values");
            assert_int_equal(json_array_size(roles), 3);
            assert_string_equal(json_string_value(json_array_get(roles, 2)), "sentinel");
            continue;
        }
        if (m.label == NULL) {
            assert_int_equal(json_array_size(labels), 0);
            continue;
        }
        assert_string_equal(json_string_value(json_object_get(json_array_get(labels, 0),
                                                              "name")), "route");
        json_t *l = json_array_get(labels, 1);
        assert_string_equal(json_string_value(json_object_get(l, "name")), m.label);
        json_t *values = json_object_get(l, "values");
        assert_int_equal(json_array_size(values), OUT__COUNT);
        for (int o = 0; o < OUT__COUNT; o++)
            assert_string_equal(json_string_value(json_array_get(values, (size_t)o)),
                                stats_outcome_name((enum stats_outcome)o));
    }
    assert_int_equal(stats_metric((int)json_array_size(all), &m), -1);
    json_decref(all);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_and_routes),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test(test_merge_and_observed),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_empty_render),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_every_metric_rendered),
        cmocka_unit_test(test_metrics_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
