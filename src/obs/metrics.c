/* metrics.c - metrics registry and Prometheus text exposition.
 *
 * Families and series are individually allocated and linked in creation
 * order, so handles stay valid while the registry lives. Values are doubles
 * stored as bit patterns in _Atomic uint64_t and updated with CAS loops;
 * histogram buckets are atomic counters (non-cumulative internally, summed
 * into cumulative buckets when rendering). The registry mutex guards only the
 * lists (registration, lookup, rendering walk). */
#include "obs/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define METRICS_MAX_BOUNDS 32

struct metric {
    struct metric *next;
    struct metric_family *fam;
    char *label_value;               /* NULL for unlabelled */
    _Atomic uint64_t value;          /* double bits (counter/gauge); histogram sum */
    _Atomic uint64_t count;          /* histogram sample count */
    _Atomic uint64_t buckets[METRICS_MAX_BOUNDS + 1]; /* per-bucket (non-cumulative); last = +Inf */
};

struct metric_family {
    struct metric_family *next;
    struct metrics *reg;
    enum metric_type type;
    char *name, *help, *label;
    double bounds[METRICS_MAX_BOUNDS];
    size_t n_bounds;
    metric_value_fn fn;              /* callback gauge/counter when non-NULL */
    void *fn_ud;
    struct metric *series, *series_tail;
};

struct metrics {
    pthread_mutex_t mu;
    struct metric_family *head, *tail;
};

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    for (;;) {
        uint64_t nw = d2u(u2d(old) + v);
        if (atomic_compare_exchange_weak_explicit(a, &old, nw, memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

struct metrics *metrics_new(void)
{
    struct metrics *r = sp_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void family_free(struct metric_family *f)
{
    struct metric *s = f->series;
    while (s) {
        struct metric *n = s->next;
        sp_free(s->label_value);
        sp_free(s);
        s = n;
    }
    sp_free(f->name);
    sp_free(f->help);
    sp_free(f->label);
    sp_free(f);
}

void metrics_free(struct metrics *r)
{
    if (!r)
        return;
    struct metric_family *f = r->head;
    while (f) {
        struct metric_family *n = f->next;
        family_free(f);
        f = n;
    }
    pthread_mutex_destroy(&r->mu);
    sp_free(r);
}

static struct metric_family *family_find(struct metrics *r, const char *name)
{
    for (struct metric_family *f = r->head; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static struct metric_family *family_add(struct metrics *r, enum metric_type type, const char *name,
                                        const char *help, const char *label)
{
    struct metric_family *f = sp_calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->reg = r;
    f->type = type;
    f->name = sp_strdup(name);
    f->help = sp_strdup(help ? help : name);
    f->label = label ? sp_strdup(label) : NULL;
    if (!f->name || !f->help || (label && !f->label)) {
        family_free(f);
        return NULL;
    }
    if (r->tail)
        r->tail->next = f;
    else
        r->head = f;
    r->tail = f;
    return f;
}

struct metric_family *metrics_family(struct metrics *r, enum metric_type type, const char *name,
                                     const char *help, const char *label, const double *bounds,
                                     size_t n_bounds)
{
    if (!r || !name)
        return NULL;
    if (type == METRIC_HISTOGRAM) {
        if (n_bounds > METRICS_MAX_BOUNDS)
            return NULL;
        for (size_t i = 1; i < n_bounds; i++)
            if (!(bounds[i] > bounds[i - 1]))
                return NULL;
    }
    pthread_mutex_lock(&r->mu);
    struct metric_family *f = family_find(r, name);
    if (f) {
        if (f->type != type || f->fn)
            f = NULL;
        pthread_mutex_unlock(&r->mu);
        return f;
    }
    f = family_add(r, type, name, help, label);
    if (f && type == METRIC_HISTOGRAM) {
        if (n_bounds)
            memcpy(f->bounds, bounds, n_bounds * sizeof *bounds);
        f->n_bounds = n_bounds;
    }
    pthread_mutex_unlock(&r->mu);
    return f;
}

bool metrics_gauge_fn(struct metrics *r, const char *name, const char *help, metric_value_fn fn,
                      void *ud, bool is_counter)
{
    if (!r || !name || !fn)
        return false;
    pthread_mutex_lock(&r->mu);
    bool ok = false;
    if (!family_find(r, name)) {
        struct metric_family *f = family_add(r, is_counter ? METRIC_COUNTER : METRIC_GAUGE, name, help, NULL);
        if (f) {
            f->fn = fn;
            f->fn_ud = ud;
            ok = true;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

struct metric *metric_series(struct metric_family *f, const char *label_value)
{
    if (!f || f->fn)
        return NULL;
    if (label_value && !label_value[0])
        label_value = NULL;
    if (!f->label)
        label_value = NULL;
    else if (!label_value)
        label_value = "";
    struct metrics *r = f->reg;
    pthread_mutex_lock(&r->mu);
    struct metric *s;
    for (s = f->series; s; s = s->next) {
        if ((!s->label_value && !label_value) ||
            (s->label_value && label_value && strcmp(s->label_value, label_value) == 0))
            goto out;
    }
    s = sp_calloc(1, sizeof *s);
    if (!s)
        goto out;
    s->fam = f;
    if (label_value) {
        s->label_value = sp_strdup(label_value);
        if (!s->label_value) {
            sp_free(s);
            s = NULL;
            goto out;
        }
    }
    atomic_init(&s->value, d2u(0.0));
    if (f->series_tail)
        f->series_tail->next = s;
    else
        f->series = s;
    f->series_tail = s;
out:
    pthread_mutex_unlock(&r->mu);
    return s;
}

void metric_inc(struct metric *m) { metric_add(m, 1.0); }

void metric_add(struct metric *m, double v)
{
    if (!m || m->fam->type == METRIC_HISTOGRAM || !isfinite(v))
        return;
    if (m->fam->type == METRIC_COUNTER && v < 0)
        return;
    atomic_add_double(&m->value, v);
}

void metric_set(struct metric *m, double v)
{
    if (!m || m->fam->type != METRIC_GAUGE)
        return;
    atomic_store_explicit(&m->value, d2u(v), memory_order_relaxed);
}

void metric_observe(struct metric *m, double v)
{
    if (!m || m->fam->type != METRIC_HISTOGRAM || isnan(v))
        return;
    size_t i = 0;
    while (i < m->fam->n_bounds && v > m->fam->bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&m->value, v);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
}

double metric_value(const struct metric *m)
{
    if (!m)
        return 0;
    if (m->fam->type == METRIC_HISTOGRAM)
        return (double)atomic_load_explicit(&((struct metric *)m)->count, memory_order_relaxed);
    return u2d(atomic_load_explicit(&((struct metric *)m)->value, memory_order_relaxed));
}

double metric_sum(const struct metric *m)
{
    if (!m || m->fam->type != METRIC_HISTOGRAM)
        return 0;
    return u2d(atomic_load_explicit(&((struct metric *)m)->value, memory_order_relaxed));
}

/* ---- exposition */

static int put_escaped(struct sp_buf *out, const char *s, bool label)
{
    int rc = 0;
    for (; *s && !rc; s++) {
        if (*s == '\\')
            rc = sp_buf_appends(out, "\\\\");
        else if (*s == '\n')
            rc = sp_buf_appends(out, "\\n");
        else if (*s == '"' && label)
            rc = sp_buf_appends(out, "\\\"");
        else
            rc = sp_buf_append(out, s, 1);
    }
    return rc;
}

static int put_number(struct sp_buf *out, double v)
{
    if (isnan(v))
        return sp_buf_appends(out, "NaN");
    if (isinf(v))
        return sp_buf_appends(out, v > 0 ? "+Inf" : "-Inf");
    if (v == floor(v) && fabs(v) < 1e15)
        return sp_buf_printf(out, "%.0f", v);
    return sp_buf_printf(out, "%.17g", v);
}

/* name{label="value"[,le="b"]} */
static int put_sample_name(struct sp_buf *out, const struct metric_family *f, const struct metric *s,
                           const char *suffix, const char *le)
{
    int rc = sp_buf_appends(out, f->name);
    if (!rc && suffix)
        rc = sp_buf_appends(out, suffix);
    bool lab = f->label && s && s->label_value;
    if (!rc && (lab || le)) {
        rc = sp_buf_appends(out, "{");
        if (!rc && lab) {
            rc = sp_buf_printf(out, "%s=\"", f->label);
            if (!rc)
                rc = put_escaped(out, s->label_value, true);
            if (!rc)
                rc = sp_buf_appends(out, "\"");
        }
        if (!rc && le)
            rc = sp_buf_printf(out, "%sle=\"%s\"", lab ? "," : "", le);
        if (!rc)
            rc = sp_buf_appends(out, "}");
    }
    if (!rc)
        rc = sp_buf_appends(out, " ");
    return rc;
}

static int render_family(struct sp_buf *out, const struct metric_family *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    int rc = sp_buf_printf(out, "# HELP %s ", f->name);
    if (!rc)
        rc = put_escaped(out, f->help, false);
    if (!rc)
        rc = sp_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    if (rc)
        return rc;
    if (f->fn) {
        rc = put_sample_name(out, f, NULL, NULL, NULL);
        if (!rc)
            rc = put_number(out, f->fn(f->fn_ud));
        return rc ? rc : sp_buf_appends(out, "\n");
    }
    for (const struct metric *s = f->series; s && !rc; s = s->next) {
        struct metric *ms = (struct metric *)s;
        if (f->type != METRIC_HISTOGRAM) {
            rc = put_sample_name(out, f, s, NULL, NULL);
            if (!rc)
                rc = put_number(out, metric_value(s));
            if (!rc)
                rc = sp_buf_appends(out, "\n");
            continue;
        }
        uint64_t cum = 0;
        for (size_t i = 0; i <= f->n_bounds && !rc; i++) {
            char le[48];
            if (i < f->n_bounds) {
                if (f->bounds[i] == floor(f->bounds[i]) && fabs(f->bounds[i]) < 1e15)
                    snprintf(le, sizeof le, "%.0f", f->bounds[i]);
                else
                    snprintf(le, sizeof le, "%.17g", f->bounds[i]);
            } else {
                sp_strlcpy(le, "+Inf", sizeof le);
            }
            cum += atomic_load_explicit(&ms->buckets[i], memory_order_relaxed);
            rc = put_sample_name(out, f, s, "_bucket", le);
            if (!rc)
                rc = sp_buf_printf(out, "%llu\n", (unsigned long long)cum);
        }
        if (!rc)
            rc = put_sample_name(out, f, s, "_sum", NULL);
        if (!rc)
            rc = put_number(out, metric_sum(s));
        if (!rc)
            rc = sp_buf_appends(out, "\n");
        if (!rc)
            rc = put_sample_name(out, f, s, "_count", NULL);
        if (!rc)
            rc = sp_buf_printf(out, "%llu\n", (unsigned long long)cum);
    }
    return rc;
}

enum sp_status metrics_render(struct metrics *r, struct sp_buf *out)
{
    if (!r || !out)
        return SP_ERR_INVALID;
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    for (const struct metric_family *f = r->head; f && !rc; f = f->next)
        rc = render_family(out, f);
    pthread_mutex_unlock(&r->mu);
    return (enum sp_status)rc;
}
