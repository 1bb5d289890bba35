/* test_metrics.c - metrics registry: counters/gauges/histograms, labels,
 * escaping, concurrent updates, and `promtool check metrics` on the output
 * (skipped when promtool is not installed). */
#include "obs/metrics.h"
#include "test.h"

#include <pthread.h>

static double one(void *ud) { SP_UNUSED(ud); return 42.0; }

TEST(basic_render)
{
    struct metrics *r = metrics_new();
    CHECK(r);
    struct metric_family *req = metrics_family(r, METRIC_COUNTER, "llm_requests_total", "Requests.", "model", NULL, 0);
    struct metric_family *g = metrics_family(r, METRIC_GAUGE, "llm_in_flight", "In flight.", "model", NULL, 0);
    double b[] = {1, 5, 10};
    struct metric_family *h = metrics_family(r, METRIC_HISTOGRAM, "llm_x_seconds", "Hist.", "model", b, 3);
    CHECK(req && g && h);
    CHECK(metrics_family(r, METRIC_GAUGE, "llm_requests_total", "x", NULL, NULL, 0) == NULL); /* type clash */
    CHECK(metrics_family(r, METRIC_COUNTER, "llm_requests_total", "x", "model", NULL, 0) == req);
    CHECK(metrics_gauge_fn(r, "spoke_fn", "Fn.", one, NULL, false));
    struct metric *a = metric_series(req, "a"), *a2 = metric_series(req, "a"), *q = metric_series(req, "q\"\\\n");
    CHECK(a && a == a2 && q);
    metric_inc(a);
    metric_add(a, 2);
    metric_add(a, -5); /* ignored for counters */
    metric_inc(q);
    struct metric *gs = metric_series(g, "a");
    metric_set(gs, 3);
    metric_add(gs, -1);
    struct metric *hs = metric_series(h, "a");
    metric_observe(hs, 0.5);
    metric_observe(hs, 5);
    metric_observe(hs, 100);
    CHECK_NEAR(metric_value(a), 3, 1e-9);
    CHECK_NEAR(metric_value(gs), 2, 1e-9);
    CHECK_NEAR(metric_value(hs), 3, 1e-9);
    CHECK_NEAR(metric_sum(hs), 105.5, 1e-9);
    metric_inc(NULL); /* no-op */
    struct sp_buf out = {0};
    CHECK(metrics_render(r, &out) == SP_OK);
    CHECK(strstr(out.data, "# HELP llm_requests_total Requests.\n# TYPE llm_requests_total counter\n"));
    CHECK(strstr(out.data, "llm_requests_total{model=\"a\"} 3\n"));
    CHECK(strstr(out.data, "llm_requests_total{model=\"q\\\"\\\\\\n\"} 1\n"));
    CHECK(strstr(out.data, "llm_in_flight{model=\"a\"} 2\n"));
    CHECK(strstr(out.data, "llm_x_seconds_bucket{model=\"a\",le=\"1\"} 1\n"));
    CHECK(strstr(out.data, "llm_x_seconds_bucket{model=\"a\",le=\"5\"} 2\n"));
    CHECK(strstr(out.data, "llm_x_seconds_bucket{model=\"a\",le=\"+Inf\"} 3\n"));
    CHECK(strstr(out.data, "llm_x_seconds_sum{model=\"a\"} 105.5\n"));
    CHECK(strstr(out.data, "llm_x_seconds_count{model=\"a\"} 3\n"));
    CHECK(strstr(out.data, "spoke_fn 42\n"));
    /* promtool, if present */
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/spoke_metrics_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        CHECK(write(fd, out.data, out.len) == (ssize_t)out.len);
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
        int rc = system(cmd);
        unlink(path);
        CHECK_MSG(rc == 0, "promtool check metrics failed (rc %d)", rc);
    } else {
        fprintf(stderr, "  note: promtool not installed; exposition not linted\n");
    }
    sp_buf_free(&out);
    metrics_free(r);
    metrics_free(NULL);
}

struct th { struct metric *c, *h; };
static void *hammer(void *p)
{
    struct th *t = p;
    for (int i = 0; i < 20000; i++) {
        metric_inc(t->c);
        metric_observe(t->h, 1.0);
    }
    return NULL;
}

TEST(concurrent)
{
    struct metrics *r = metrics_new();
    double b[] = {0.5, 2};
    struct th t = {metric_series(metrics_family(r, METRIC_COUNTER, "c_total", "c", NULL, NULL, 0), NULL),
                   metric_series(metrics_family(r, METRIC_HISTOGRAM, "h_seconds", "h", NULL, b, 2), NULL)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, &t);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_NEAR(metric_value(t.c), 80000, 0);
    CHECK_NEAR(metric_value(t.h), 80000, 0);
    CHECK_NEAR(metric_sum(t.h), 80000, 0);
    metrics_free(r);
}

int main(void)
{
    RUN(basic_render);
    RUN(concurrent);
    return test_summary();
}
