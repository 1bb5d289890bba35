/* metrics.h - a small metrics registry (counters, gauges, histograms with at
 * most one label) and its Prometheus text exposition (format 0.0.4, with
 * # HELP and # TYPE lines).
 *
 * Threading: registration and series lookup take the registry mutex (do them
 * once per model and keep the returned struct metric *); updates of a series
 * are lock-free atomics; rendering takes the mutex only to walk the lists.
 * Series and families live until metrics_free. Names and label values are
 * copied; label values are escaped on output. */
#ifndef SPOKE_OBS_METRICS_H
#define SPOKE_OBS_METRICS_H

#include "base/base.h"

struct metrics;        /* the registry */
struct metric_family;  /* one name + type + help */
struct metric;         /* one series (a label value) of a family */

enum metric_type { METRIC_COUNTER = 0, METRIC_GAUGE, METRIC_HISTOGRAM };

/* Create / destroy a registry. metrics_new returns NULL on allocation failure. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *r); /* NULL is a no-op; invalidates every handle */

/* Register a family (or return the existing one with the same name; the type
 * must then match, else NULL). label: the label name ("model") or NULL for an
 * unlabelled family. For histograms, bounds are the upper bucket bounds,
 * strictly increasing, at most 32 (+Inf is implicit); ignored otherwise.
 * Returns NULL on allocation failure or misuse. */
struct metric_family *metrics_family(struct metrics *r, enum metric_type type, const char *name,
                                     const char *help, const char *label, const double *bounds,
                                     size_t n_bounds);

/* A gauge whose value is computed at render time by fn(ud) (e.g. allocator
 * bytes in use, dropped spans). Unlabelled. fn must be thread-safe. */
typedef double (*metric_value_fn)(void *ud);
bool metrics_gauge_fn(struct metrics *r, const char *name, const char *help, metric_value_fn fn,
                      void *ud, bool is_counter);

/* Find or create the series of family f for label_value (NULL or "" for an
 * unlabelled family). NULL if f is NULL or on allocation failure; every
 * update function accepts NULL and does nothing, so callers need not check. */
struct metric *metric_series(struct metric_family *f, const char *label_value);

void metric_inc(struct metric *m);              /* counter/gauge += 1 */
void metric_add(struct metric *m, double v);    /* counter (v >= 0) / gauge += v */
void metric_set(struct metric *m, double v);    /* gauge = v */
void metric_observe(struct metric *m, double v);/* histogram sample */
double metric_value(const struct metric *m);    /* counter/gauge value; histogram: count */
/* Histogram sum of samples (0 for other types). */
double metric_sum(const struct metric *m);

/* Append the whole registry in Prometheus text format to out. Families in
 * registration order, series in creation order. SP_ERR_NOMEM/LIMIT from out. */
enum sp_status metrics_render(struct metrics *r, struct sp_buf *out) SP_MUST_USE;

#endif
