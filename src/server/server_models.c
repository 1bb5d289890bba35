/* server_models.c - the server's model registry: a deep copy of each
 * configured spec, its state machine (idle -> loading -> ready | failed),
 * a loader thread per load (resolve/pull through the app's callback, then
 * engine_model_load and max_concurrency engine contexts handed to an admit
 * object), per-model metric handles, the /v1/models JSON, and shutdown
 * (close admission, grace period, cancel, wait, free).
 *
 * A model whose file changes on disk while it is served (checked with a stat
 * and the SIGBUS guard's fault count at each request: see gguf.h) goes to
 * error with a message saying so (503); its requests in flight fail (the
 * engine checks the fault count at each step). The next request (or SIGHUP: server_reload) reloads it when the
 * file differs from the last attempt: the reload closes the old admission,
 * cancels what runs, waits until no request uses the old model (`users`),
 * frees it and loads the file again. */
#include "server/server_int.h"
#include "obs/log.h"

#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const double DURATION_MS_BOUNDS[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000};
static const double TTFT_S_BOUNDS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double ITL_S_BOUNDS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
static const double TPS_BOUNDS[] = {1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};

static const char *state_name(enum srv_model_state st)
{
    static const char *const names[] = {"not_loaded", "loading", "ready", "error"};
    return names[st];
}

struct srv_model *srv_model_find(struct server *s, const char *name)
{
    for (size_t i = 0; name && i < s->n_models; i++)
        if (!strcmp(s->models[i].spec.name, name))
            return &s->models[i];
    return NULL;
}

static enum sp_status spec_copy(struct server_model_spec *dst, const struct server_model_spec *src)
{
    *dst = *src;
    dst->name = sp_strdup(src->name ? src->name : "");
    dst->from = sp_strdup(src->from ? src->from : "");
    dst->token = src->token ? sp_strdup(src->token) : NULL;
    dst->chat_template = src->chat_template ? sp_strdup(src->chat_template) : NULL;
    dst->files = src->n_files ? sp_calloc(src->n_files, sizeof *dst->files) : NULL;
    dst->n_files = 0;
    if (!dst->name || !dst->from || (src->token && !dst->token) || (src->n_files && !dst->files) ||
        (src->chat_template && !dst->chat_template))
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < src->n_files; i++) {
        dst->files[i] = sp_strdup(src->files[i]);
        if (!dst->files[i])
            return SP_ERR_NOMEM;
        dst->n_files++;
    }
    if (dst->max_concurrency < 1)
        dst->max_concurrency = 1;
    if (dst->queue_size < 0)
        dst->queue_size = 16;
    return SP_OK;
}

static void metrics_for(struct server *s, struct srv_model *m)
{
    struct metrics *r = s->metrics;
    const char *n = m->spec.name;
    struct srv_model_metrics *h = &m->m;
#define FAM(type, name, help, b, nb) metric_series(metrics_family(r, type, name, help, "model", b, nb), n)
    h->requests = FAM(METRIC_COUNTER, "llm_requests_total", "Completion requests received (llm_requests).", NULL, 0);
    h->failures = FAM(METRIC_COUNTER, "llm_failures_total",
                      "Completion requests that failed (errors, rejections; llm_failures).", NULL, 0);
    h->duration_ms = FAM(METRIC_HISTOGRAM, "llm_internal_request_duration_ms",
                         "Completion request duration in milliseconds.", DURATION_MS_BOUNDS,
                         SP_ARRAY_LEN(DURATION_MS_BOUNDS));
    h->prompt_tokens = FAM(METRIC_COUNTER, "llm_prompt_tokens_total", "Prompt tokens processed.", NULL, 0);
    h->completion_tokens = FAM(METRIC_COUNTER, "llm_completion_tokens_total", "Completion tokens generated.", NULL, 0);
    h->cached_tokens = FAM(METRIC_COUNTER, "llm_prompt_cached_tokens_total",
                           "Prompt tokens reused from the KV cache (prefix reuse) instead of being evaluated.", NULL, 0);
    h->ttft_s = FAM(METRIC_HISTOGRAM, "llm_time_to_first_token_seconds", "Time from request to first token.",
                    TTFT_S_BOUNDS, SP_ARRAY_LEN(TTFT_S_BOUNDS));
    h->inter_token_s = FAM(METRIC_HISTOGRAM, "llm_inter_token_latency_seconds", "Time between generated tokens.",
                           ITL_S_BOUNDS, SP_ARRAY_LEN(ITL_S_BOUNDS));
    h->tps = FAM(METRIC_HISTOGRAM, "llm_decode_tokens_per_second", "Decode speed per request (tokens/s).", TPS_BOUNDS,
                 SP_ARRAY_LEN(TPS_BOUNDS));
    h->queue_depth = FAM(METRIC_GAUGE, "llm_queue_depth", "Requests waiting for a generation slot.", NULL, 0);
    h->in_flight = FAM(METRIC_GAUGE, "llm_in_flight", "Requests holding a generation slot.", NULL, 0);
    h->rejected = FAM(METRIC_COUNTER, "llm_rejected_total", "Requests refused with 429 (queue full).", NULL, 0);
    h->load_s = FAM(METRIC_GAUGE, "llm_model_load_seconds", "Seconds the last model load took (pull + load).", NULL, 0);
    h->ready = FAM(METRIC_GAUGE, "llm_model_ready", "1 when the model is loaded and serving.", NULL, 0);
    m->load_waits = FAM(METRIC_COUNTER, "llm_load_waits_total",
                        "Requests that had to wait for the model to download/load (initial_load: false).", NULL, 0);
#undef FAM
}

enum sp_status srv_models_init(struct server *s, const struct server_opts *o, struct sp_err *err)
{
    /* download bytes are counted by the resolver through this family */
    metrics_family(s->metrics, METRIC_COUNTER, "spoke_download_bytes_total", "Bytes downloaded from the Hub.",
                   "model", NULL, 0);
    s->cap_models = o->n_models + SRV_MAX_PULLED;
    s->models = sp_calloc(s->cap_models, sizeof *s->models);
    if (!s->models)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < o->n_models; i++) {
        struct srv_model *m = &s->models[i];
        pthread_mutex_init(&m->mu, NULL);
        pthread_cond_init(&m->cv, NULL);
        m->srv = s;
        s->n_models = i + 1;
        if (spec_copy(&m->spec, &o->models[i]) != SP_OK)
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        if (!m->spec.name[0])
            return sp_err_set(err, SP_ERR_INVALID, "model %zu has no name", i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->models[j].spec.name, m->spec.name))
                return sp_err_setc(err, SP_ERR_INVALID, m->spec.name, "duplicate model name '%s'", m->spec.name);
        m->created_s = (int64_t)time(NULL);
        metrics_for(s, m);
    }
    return SP_OK;
}

enum sp_status srv_model_add(struct server *s, const char *name, const char *from, struct srv_model **out,
                             struct sp_err *err)
{
    enum sp_status result = SP_OK;
    pthread_mutex_lock(&s->add_mu);
    *out = srv_model_find(s, name);
    if (*out)
        goto done;
    size_t i = s->n_models;
    if (i >= s->cap_models) {
        result = sp_err_set(err, SP_ERR_LIMIT, "this server already serves %zu pulled models (the limit)", i);
        goto done;
    }
    struct srv_model *m = &s->models[i];
    struct server_model_spec spec;
    server_model_spec_default(&spec);
    spec.name = (char *)name;
    spec.from = (char *)from;
    spec.initial_load = false;
    if (spec_copy(&m->spec, &spec) != SP_OK) {
        server_model_spec_clear(&m->spec);
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto done;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->srv = s;
    m->created_s = (int64_t)time(NULL);
    metrics_for(s, m);
    atomic_store(&s->n_models, i + 1); /* publish the complete entry */
    *out = m;
done:
    pthread_mutex_unlock(&s->add_mu);
    return result;
}

static enum sp_status resolve_path(struct srv_model *m, char **path, struct sp_err *err)
{
    struct server *s = m->srv;
    if (s->opts.resolve)
        return s->opts.resolve(s->opts.resolve_ud, s, &m->spec, path, err);
    const char *p = m->spec.from;
    if (!strncmp(p, "file:", 5))
        p += 5;
    *path = sp_strdup(p);
    return *path ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

static void cancel_ctx(void *obj, void *ud)
{
    SP_UNUSED(ud);
    if (obj)
        engine_ctx_cancel(obj);
}

/* Reload: wait until no request uses the loaded generation (its admission
 * was closed and its generations cancelled by start_reload_locked), then free
 * it. False when it stays in use (or the server shuts down): left as it is. */
static bool retire_old(struct srv_model *m, struct sp_err *err)
{
    double deadline = sp_now_ms() + 60000;
    while (atomic_load(&m->users) > 0 && sp_now_ms() < deadline && !atomic_load(&m->srv->shutting_down))
        sp_sleep_ms(5);
    pthread_mutex_lock(&m->mu);
    bool ok = atomic_load(&m->users) == 0 && !atomic_load(&m->srv->shutting_down);
    if (ok) {
        for (int i = 0; m->admit && i < admit_n_slots(m->admit); i++)
            engine_ctx_free(admit_slot_get(m->admit, i));
        admit_free(m->admit);
        engine_model_free(m->em);
        m->admit = NULL;
        m->em = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    if (!ok)
        sp_err_set(err, SP_ERR_STATE, "the old model is still in use (%d requests)", atomic_load(&m->users));
    return ok;
}

static void *loader_main(void *arg)
{
    struct srv_model *m = arg;
    struct sp_err err;
    sp_err_clear(&err);
    double t0 = sp_now_ms();
    char *path = NULL;
    struct engine_model *em = NULL;
    struct admit *ad = NULL;
    if (m->srv->test_load_delay_ms)
        sp_sleep_ms((uint64_t)m->srv->test_load_delay_ms);
    enum sp_status st = m->reload && !retire_old(m, &err) ? SP_ERR_STATE : SP_OK;
    if (st == SP_OK)
        st = resolve_path(m, &path, &err);
    if (st == SP_OK) {
        LOG_INFO("server", "model %s: loading %s", m->spec.name, path);
        struct engine_load_opts lo = {.path = path,
                                      .n_ctx = m->spec.n_ctx,
                                      .n_threads = m->spec.n_threads,
                                      .n_parallel = m->spec.max_concurrency,
                                      .kv_tokens = m->spec.kv_tokens,
                                      .step_tokens = m->spec.step_tokens,
                                      .chat_template = m->spec.chat_template};
        st = engine_model_load(&lo, &em, &err);
    }
    if (st == SP_OK) {
        ad = admit_new(m->spec.max_concurrency, m->spec.queue_size);
        if (!ad)
            st = sp_err_set(&err, SP_ERR_NOMEM, "out of memory creating %d slots", m->spec.max_concurrency);
        for (int i = 0; st == SP_OK && i < m->spec.max_concurrency; i++) {
            struct engine_ctx *ctx = NULL;
            st = engine_ctx_new(em, &ctx, &err);
            admit_slot_set(ad, i, ctx);
        }
    }
    double secs = (sp_now_ms() - t0) / 1000.0;
    pthread_mutex_lock(&m->mu);
    if (st == SP_OK) {
        m->em = em;
        m->admit = ad;
        sp_free(m->path);
        m->path = path;
        engine_model_get_info(em, &m->info);
        m->max_token_bytes = 0;
        for (int t = 0; t < m->info.n_vocab; t++) {
            size_t len = 0;
            if (engine_token_text(em, t, &len) && len > (size_t)m->max_token_bytes)
                m->max_token_bytes = (int)SP_MIN(len, (size_t)1 << 20);
        }
        m->state = SRV_MODEL_READY;
        if (m->reload)
            LOG_INFO("server", "model %s: reloaded", m->spec.name);
        m->reload = m->file_changed = m->tried_set = false;
        LOG_INFO("server", "model %s: ready (%s, %s, ctx %d, %d slot%s) in %.2f s", m->spec.name, m->info.arch,
                 m->info.backend, m->info.n_ctx, m->spec.max_concurrency, m->spec.max_concurrency == 1 ? "" : "s",
                 secs);
    } else {
        for (int i = 0; ad && i < admit_n_slots(ad); i++)
            engine_ctx_free(admit_slot_get(ad, i));
        admit_free(ad);
        engine_model_free(em);
        sp_free(path);
        m->load_err = err;
        if (m->load_err.code == SP_OK)
            m->load_err.code = st;
        if (!m->load_err.msg[0])
            snprintf(m->load_err.msg, sizeof m->load_err.msg, "load failed (%s)", sp_status_name(st));
        if (m->file_changed) {
            char was[sizeof m->load_err.msg];
            sp_strlcpy(was, m->load_err.msg, sizeof was);
            snprintf(m->load_err.msg, sizeof m->load_err.msg,
                     "the model file %.150s changed on disk and reloading it failed: %.230s; it is "
                     "reloaded when the file changes again (or on SIGHUP)",
                     m->path ? m->path : "", was);
        }
        m->reload = false;
        m->state = SRV_MODEL_FAILED;
        LOG_ERROR("server", "model %s: %s", m->spec.name, m->load_err.msg);
    }
    metric_set(m->m.load_s, secs);
    metric_set(m->m.ready, st == SP_OK ? 1 : 0);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* with m->mu held */
static bool start_load_locked(struct srv_model *m)
{
    if (m->state != SRV_MODEL_IDLE)
        return true;
    if (atomic_load(&m->srv->shutting_down))
        return false;
    m->state = SRV_MODEL_LOADING;
    if (pthread_create(&m->loader, NULL, loader_main, m) != 0) {
        m->state = SRV_MODEL_FAILED;
        sp_err_set(&m->load_err, SP_ERR_INTERNAL, "cannot start a loader thread");
        return false;
    }
    m->loader_started = true;
    return true;
}

static char *public_text(const struct srv_model *m, const char *text);

static bool file_ident(const char *path, uint64_t *dev, uint64_t *ino, uint64_t *size, int64_t *mtime_ns)
{
    struct stat st;
    if (!path || stat(path, &st) != 0)
        return false;
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    *size = (uint64_t)st.st_size;
    *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    return true;
}

/* with m->mu held: the loaded model's file changed underneath: error state */
static void note_changed_locked(struct srv_model *m, const char *why)
{
    if (m->state != SRV_MODEL_READY)
        return;
    m->state = SRV_MODEL_FAILED;
    m->file_changed = true;
    m->tried_set = false; /* the next request tries a reload */
    sp_err_clear(&m->load_err);
    sp_err_set(&m->load_err, SP_ERR_STATE,
               "the model file changed on disk while it was served: %.400s; it is reloaded on the next "
               "request once the file is a valid GGUF again (or on SIGHUP)",
               why);
    metric_set(m->m.ready, 0);
    LOG_ERROR("server", "model %s: %s", m->spec.name, m->load_err.msg);
}

/* with m->mu held: is the changed file worth another load (it differs from
 * what the last attempt saw)? Records what it sees. */
static bool reload_due_locked(struct srv_model *m)
{
    uint64_t dev, ino, size;
    int64_t mt;
    if (!file_ident(m->path, &dev, &ino, &size, &mt))
        return false;
    bool due = !m->tried_set || dev != m->tried.dev || ino != m->tried.ino || size != m->tried.size ||
               mt != m->tried.mtime_ns;
    m->tried_set = true;
    m->tried.dev = dev;
    m->tried.ino = ino;
    m->tried.size = size;
    m->tried.mtime_ns = mt;
    return due;
}

/* with m->mu held: replace the loaded generation (if any) by a fresh load */
static void start_reload_locked(struct srv_model *m)
{
    if (m->state == SRV_MODEL_LOADING || atomic_load(&m->srv->shutting_down))
        return;
    if (m->loader_started) {
        pthread_join(m->loader, NULL); /* it has finished: the state is not LOADING */
        m->loader_started = false;
    }
    admit_close(m->admit);
    admit_foreach_busy(m->admit, cancel_ctx, NULL);
    m->reload = true;
    m->state = SRV_MODEL_LOADING;
    metric_set(m->m.ready, 0);
    LOG_INFO("server", "model %s: reloading", m->spec.name);
    if (pthread_create(&m->loader, NULL, loader_main, m) != 0) {
        m->state = SRV_MODEL_FAILED;
        m->reload = false;
        sp_err_set(&m->load_err, SP_ERR_INTERNAL, "cannot start a loader thread");
        return;
    }
    m->loader_started = true;
}

void server_reload(struct server *s)
{
    char why[600];
    for (size_t i = 0; s && i < s->n_models; i++) {
        struct srv_model *m = &s->models[i];
        pthread_mutex_lock(&m->mu);
        if (m->state == SRV_MODEL_READY && engine_model_file_changed(m->em, why, sizeof why))
            note_changed_locked(m, why);
        if (m->state == SRV_MODEL_FAILED) {
            reload_due_locked(m);
            start_reload_locked(m);
        }
        pthread_mutex_unlock(&m->mu);
    }
}

void srv_model_leave(struct srv_model *m)
{
    if (m)
        atomic_fetch_sub(&m->users, 1);
}

void srv_models_start_initial(struct server *s)
{
    for (size_t i = 0; i < s->n_models; i++) {
        struct srv_model *m = &s->models[i];
        if (!m->spec.initial_load)
            continue;
        pthread_mutex_lock(&m->mu);
        start_load_locked(m);
        pthread_mutex_unlock(&m->mu);
    }
}

/* A local path in "from" shows only its file name unless the server has API
 * keys (only key holders see it then): the layout of the host's disk is not
 * for anonymous callers. Hub ids are shown as they are. */
static bool from_is_local(const char *from)
{
    return !strncmp(from, "file:", 5) || from[0] == '/' || from[0] == '.' || from[0] == '~';
}

static char *public_text(const struct srv_model *m, const char *text)
{
    const char *from = m->spec.from;
    if (m->srv->opts.auth.n_api_keys || !from_is_local(from))
        return sp_strdup(text);
    const char *path = !strncmp(from, "file:", 5) ? from + 5 : from;
    if (!strncmp(path, "//", 2))
        path += 2;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    /* replace every occurrence of the path (and its directory) with the base name */
    struct sp_buf b = {0};
    size_t plen = strlen(path), dlen = (size_t)(base - path);
    for (const char *p = text; *p;) {
        if (plen && !strncmp(p, path, plen)) {
            if (sp_buf_appends(&b, base))
                break;
            p += plen;
        } else if (dlen > 1 && !strncmp(p, path, dlen)) {
            p += dlen;
        } else {
            if (sp_buf_append(&b, p, 1))
                break;
            p++;
        }
    }
    return sp_buf_take(&b);
}

enum sp_status srv_model_ensure(struct srv_model *m, bool wait, bool (*gone)(void *), void *ud, struct sp_err *err)
{
    char why[600];
    pthread_mutex_lock(&m->mu);
    if (m->state == SRV_MODEL_READY && engine_model_file_changed(m->em, why, sizeof why))
        note_changed_locked(m, why); /* this request gets the 503 */
    else if (m->state == SRV_MODEL_FAILED && m->file_changed && reload_due_locked(m))
        start_reload_locked(m);
    if (m->state == SRV_MODEL_IDLE)
        start_load_locked(m);
    bool waited = wait && m->state == SRV_MODEL_LOADING;
    double t0 = sp_now_ms();
    while (wait && m->state == SRV_MODEL_LOADING && !atomic_load(&m->srv->shutting_down)) {
        sp_cond_wait_ms(&m->cv, &m->mu, 50);
        if (m->state == SRV_MODEL_LOADING && gone && gone(ud)) {
            pthread_mutex_unlock(&m->mu);
            metric_inc(m->load_waits);
            return sp_err_set(err, SP_ERR_CANCELLED, "client disconnected");
        }
    }
    if (waited) {
        /* the guide's "first request extremely slow" row: say why, once */
        metric_inc(m->load_waits);
        if (!m->load_wait_logged) {
            m->load_wait_logged = true;
            LOG_WARN("server",
                     "model %s: a request waited %.1f s for the model to download/load; set initial_load: true "
                     "(or run spoke pull beforehand) to load it at startup instead", m->spec.name,
                     (sp_now_ms() - t0) / 1000.0);
        }
    }
    enum sp_status result = SP_OK;
    switch (m->state) {
    case SRV_MODEL_READY:
        atomic_fetch_add(&m->users, 1); /* until srv_model_leave */
        break;
    case SRV_MODEL_FAILED: {
        char *pub = public_text(m, m->load_err.msg);
        result = sp_err_set(err, m->load_err.code == SP_OK ? SP_ERR_STATE : m->load_err.code,
                            m->file_changed ? "model '%s': %s" : "model '%s' failed to load: %s",
                            m->spec.name, pub ? pub : m->load_err.msg);
        sp_free(pub);
        if (err)
            err->http_status = 503;
        break;
    }
    default:
        result = sp_err_set(err, SP_ERR_STATE, "model '%s' is loading; retry shortly", m->spec.name);
        if (err)
            err->http_status = 503;
        break;
    }
    pthread_mutex_unlock(&m->mu);
    return result;
}

void srv_models_refresh_gauges(struct server *s)
{
    for (size_t i = 0; i < s->n_models; i++) {
        struct srv_model *m = &s->models[i];
        pthread_mutex_lock(&m->mu);
        struct admit *ad = m->state == SRV_MODEL_READY ? m->admit : NULL;
        pthread_mutex_unlock(&m->mu);
        metric_set(m->m.in_flight, ad ? admit_in_flight(ad) : 0);
        metric_set(m->m.queue_depth, ad ? admit_queued(ad) : 0);
    }
}

void *srv_model_json(struct srv_model *m)
{
    pthread_mutex_lock(&m->mu);
    char *from = public_text(m, m->spec.from);
    if (from && from_is_local(m->spec.from) && !m->srv->opts.auth.n_api_keys && strncmp(from, "file:", 5) != 0) {
        struct sp_buf b = {0};
        if (sp_buf_printf(&b, "file:%s", from) == 0) {
            sp_free(from);
            from = sp_buf_take(&b);
        } else {
            sp_buf_free(&b);
        }
    }
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "id", m->spec.name, "object", "model", "created",
                          (json_int_t)m->created_s, "owned_by", "spoke", "status", state_name(m->state), "from",
                          from ? from : "");
    sp_free(from);
    if (j && m->state == SRV_MODEL_FAILED) {
        char *e = public_text(m, m->load_err.msg);
        json_object_set_new(j, "error", json_string(e ? e : "load failed"));
        sp_free(e);
    }
    if (j && m->state == SRV_MODEL_READY) {
        json_object_set_new(j, "arch", json_string(m->info.arch ? m->info.arch : ""));
        json_object_set_new(j, "backend", json_string(m->info.backend ? m->info.backend : ""));
        json_object_set_new(j, "context_length", json_integer(m->info.n_ctx));
        json_object_set_new(j, "max_concurrency", json_integer(m->spec.max_concurrency));
        json_object_set_new(j, "kv_tokens", json_integer(m->info.kv_tokens));
        json_object_set_new(j, "in_flight", json_integer(admit_in_flight(m->admit)));
        json_object_set_new(j, "queued", json_integer(admit_queued(m->admit)));
        /* for the console's models view */
        json_object_set_new(j, "quantization", json_string(engine_model_ftype(m->em)));
        json_object_set_new(j, "parameters", json_integer((json_int_t)engine_model_n_params(m->em)));
        json_object_set_new(j, "footprint_bytes", json_integer((json_int_t)m->info.footprint_bytes));
    }
    pthread_mutex_unlock(&m->mu);
    return j;
}

void srv_models_shutdown(struct server *s, int grace_ms)
{
    /* refuse new work and queued waiters */
    for (size_t i = 0; i < s->n_models; i++) {
        struct srv_model *m = &s->models[i];
        pthread_mutex_lock(&m->mu);
        admit_close(m->admit);
        pthread_mutex_unlock(&m->mu);
    }
    double deadline = sp_now_ms() + grace_ms;
    for (size_t i = 0; i < s->n_models; i++) {
        double left = deadline - sp_now_ms();
        admit_wait_idle(s->models[i].admit, left > 0 ? (int)left : 0);
    }
    for (size_t i = 0; i < s->n_models; i++)
        admit_foreach_busy(s->models[i].admit, cancel_ctx, NULL);
    for (size_t i = 0; i < s->n_models; i++) {
        if (!admit_wait_idle(s->models[i].admit, 10000))
            LOG_WARN("server", "model %s: requests still running after cancel", s->models[i].spec.name);
    }
}

void srv_models_free(struct server *s)
{
    for (size_t i = 0; i < s->n_models; i++) {
        struct srv_model *m = &s->models[i];
        if (m->loader_started)
            pthread_join(m->loader, NULL);
        for (int k = 0; m->admit && k < admit_n_slots(m->admit); k++)
            engine_ctx_free(admit_slot_get(m->admit, k));
        admit_free(m->admit);
        engine_model_free(m->em);
        sp_free(m->path);
        server_model_spec_clear(&m->spec);
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->cv);
    }
    sp_free(s->models);
    s->models = NULL;
    s->n_models = 0;
}

void server_count_download(struct server *s, const char *model, uint64_t bytes)
{
    if (!s || !bytes)
        return;
    struct metric_family *f =
        metrics_family(s->metrics, METRIC_COUNTER, "spoke_download_bytes_total", "Bytes downloaded from the Hub.",
                       "model", NULL, 0);
    metric_add(metric_series(f, model), (double)bytes);
}
