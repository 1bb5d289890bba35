/* server_ollama.c - the Ollama-compatible API, so tools written for Ollama
 * (its npm/python clients, Open WebUI, editor plugins) work with spoke:
 *   GET  /api/version, /api/tags, /api/ps
 *   POST /api/show, /api/chat, /api/generate, /api/pull
 * /api/chat and /api/generate run through the same generation path as the
 * OpenAI routes (srv_generate in server_gen.c) with an Ollama "dialect":
 * requests read by server_ollama_req.c, NDJSON lines out (one object per
 * piece of text, then a final one with done: true, done_reason and the
 * timing fields in nanoseconds), errors as {"error": "message"}. Model names
 * may carry Ollama's ":latest" tag. /api/pull runs the app's pull callback
 * on a worker thread and streams Ollama's progress lines (pulling manifest,
 * pulling <file> with total/completed bytes, verifying, writing manifest,
 * success); the pulled model is then registered and loads on first use.
 * Other /api routes answer 501 with the reason. */
#include "server/server_int.h"
#include "server/server_embd.h"
#include "server/server_ollama.h"
#include "obs/log.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

/* Append j (stolen) as one compact JSON text (+ "\n" when line). */
static int put_json(struct sp_buf *b, json_t *j, bool line)
{
    int rc = j ? json_dump_callback(j, dump_cb, b, JSON_COMPACT | JSON_PRESERVE_ORDER) : -1;
    json_decref(j);
    if (!rc && line)
        rc = sp_buf_appends(b, "\n") ? -1 : 0;
    return rc;
}

/* RFC 3339 UTC time of a Unix time in milliseconds */
static void rfc3339(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03dZ", base, (int)(ms % 1000));
}

static json_t *now_json(void)
{
    char ts[48];
    rfc3339(sp_wall_ms(), ts, sizeof ts);
    return json_string(ts);
}

/* ---- errors: {"error": "message"} */

static enum MHD_Result ollama_error(struct MHD_Connection *c, unsigned status, const char *msg, const char *param,
                                    const char *code, const char *retry_after)
{
    SP_UNUSED(code);
    struct sp_buf b = {0};
    char full[700];
    if (param && param[0] && msg && !strstr(msg, param))
        snprintf(full, sizeof full, "%s (%s)", msg, param);
    else
        snprintf(full, sizeof full, "%s", msg ? msg : "error");
    enum MHD_Result ret;
    if (put_json(&b, json_pack("{s:s}", "error", full), false) == 0)
        ret = srv_respond(c, status, "application/json", b.data, b.len, retry_after);
    else
        ret = srv_respond(c, status, "text/plain", "error\n", 6, retry_after);
    sp_buf_free(&b);
    return ret;
}

static int ollama_stream_error(const char *msg, struct sp_buf *out)
{
    return put_json(out, json_pack("{s:s}", "error", msg), true);
}

/* ---- the generation dialects */

static struct srv_model *ollama_find(struct server *s, const char *name)
{
    struct srv_model *m = srv_model_find(s, name);
    size_t n = strlen(name);
    if (!m && n > 7 && !strcmp(name + n - 7, ":latest")) {
        char *base = sp_strndup(name, n - 7);
        m = base ? srv_model_find(s, base) : NULL;
        sp_free(base);
    }
    return m;
}

static json_t *head_json(const struct srv_gen_view *v)
{
    return json_pack("{s:s,s:o}", "model", v->model, "created_at", now_json());
}

static int chat_chunk(const struct srv_gen_view *v, const char *text, size_t len, struct sp_buf *out)
{
    json_t *j = head_json(v);
    if (j) {
        json_object_set_new(j, "message", json_pack("{s:s,s:o}", "role", "assistant", "content", srv_json_text(text, len)));
        json_object_set_new(j, "done", json_false());
    }
    return put_json(out, j, true);
}

static int gen_chunk(const struct srv_gen_view *v, const char *text, size_t len, struct sp_buf *out)
{
    json_t *j = head_json(v);
    if (j) {
        json_object_set_new(j, "response", srv_json_text(text, len));
        json_object_set_new(j, "done", json_false());
    }
    return put_json(out, j, true);
}

static json_int_t ns(double ms) { return (json_int_t)(ms * 1e6); }

static void add_stats(json_t *j, const struct srv_gen_view *v)
{
    const struct engine_gen_result *r = v->res;
    json_object_set_new(j, "done", json_true());
    json_object_set_new(j, "done_reason", json_string(r->finish == ENGINE_FINISH_LENGTH ? "length" : "stop"));
    json_object_set_new(j, "total_duration", json_integer(ns(v->total_ms)));
    json_object_set_new(j, "load_duration", json_integer(ns(v->load_ms)));
    json_object_set_new(j, "prompt_eval_count", json_integer(r->n_prompt_tokens));
    json_object_set_new(j, "prompt_eval_duration", json_integer(ns(r->prompt_ms)));
    json_object_set_new(j, "eval_count", json_integer(r->n_completion_tokens));
    /* decode_ms counts from the first token; add the first token's own step */
    double first = r->ttft_ms > r->prompt_ms ? r->ttft_ms - r->prompt_ms : 0;
    json_object_set_new(j, "eval_duration", json_integer(ns(r->decode_ms + first)));
}

static int chat_end(const struct srv_gen_view *v, bool stream, struct sp_buf *out)
{
    json_t *j = head_json(v);
    if (j) {
        json_object_set_new(j, "message", json_pack("{s:s,s:o}", "role", "assistant", "content",
                                                    stream ? json_string("") : srv_json_text(v->text, v->len)));
        add_stats(j, v);
    }
    return put_json(out, j, stream);
}

static int gen_end(const struct srv_gen_view *v, bool stream, struct sp_buf *out)
{
    json_t *j = head_json(v);
    if (j) {
        json_object_set_new(j, "response", stream ? json_string("") : srv_json_text(v->text, v->len));
        add_stats(j, v);
    }
    return put_json(out, j, stream);
}

static const struct srv_dialect OLLAMA_CHAT = {
    .parse = server_ollama_parse,
    .find = ollama_find,
    .models_route = "/api/tags",
    .stream_type = "application/x-ndjson",
    .chunk = chat_chunk,
    .end = chat_end,
    .stream_error = ollama_stream_error,
    .error = ollama_error,
};

static const struct srv_dialect OLLAMA_GENERATE = {
    .parse = server_ollama_parse,
    .find = ollama_find,
    .models_route = "/api/tags",
    .stream_type = "application/x-ndjson",
    .chunk = gen_chunk,
    .end = gen_end,
    .stream_error = ollama_stream_error,
    .error = ollama_error,
};

/* ---- model descriptions */

static enum MHD_Result respond_json(struct MHD_Connection *c, json_t *j)
{
    struct sp_buf b = {0};
    enum MHD_Result ret;
    if (put_json(&b, j, false) == 0)
        ret = srv_respond(c, 200, "application/json", b.data, b.len, NULL);
    else
        ret = ollama_error(c, 500, "out of memory", NULL, NULL, NULL);
    sp_buf_free(&b);
    return ret;
}

/* "260K", "1.5B" */
static void param_size(size_t n, char *out, size_t cap)
{
    if (n >= 1000000000u)
        snprintf(out, cap, "%.1fB", (double)n / 1e9);
    else if (n >= 1000000u)
        snprintf(out, cap, "%.1fM", (double)n / 1e6);
    else
        snprintf(out, cap, "%zuK", (n + 500) / 1000);
}

/* An identity for the model's file (path, size, mtime): 64 hex digits as
 * Ollama's digest field expects. Not the file's sha256 (that would mean
 * reading gigabytes on every /api/tags). */
static void file_identity(const char *path, char out[65])
{
    struct stat st;
    uint64_t sz = 0, mt = 0;
    if (path && stat(path, &st) == 0) {
        sz = (uint64_t)st.st_size;
        mt = (uint64_t)st.st_mtime;
    }
    for (int k = 0; k < 4; k++) {
        uint64_t h = 1469598103934665603ull ^ (uint64_t)(k * 0x9E3779B97F4A7C15ull);
        for (const char *p = path ? path : ""; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ sz) * 1099511628211ull;
        h = (h ^ mt) * 1099511628211ull;
        snprintf(out + 16 * k, 17, "%016llx", (unsigned long long)h);
    }
}

struct model_snap {
    bool ready;
    const char *state;
    const char *path;       /* resolved file (ready) or the from path */
    struct engine_model_info info;
    size_t n_params;
    const char *ftype;
    int64_t file_bytes;
};

/* with m->mu held */
static void snap_locked(struct srv_model *m, struct model_snap *sn)
{
    memset(sn, 0, sizeof *sn);
    sn->ready = m->state == SRV_MODEL_READY;
    sn->path = m->path ? m->path : !strncmp(m->spec.from, "file:", 5) ? m->spec.from + 5 : NULL;
    if (sn->ready) {
        sn->info = m->info;
        sn->n_params = engine_model_n_params(m->em);
        sn->ftype = engine_model_ftype(m->em);
    }
    struct stat st;
    if (sn->path && stat(sn->path, &st) == 0)
        sn->file_bytes = (int64_t)st.st_size;
}

static json_t *details_json(const struct model_snap *sn)
{
    char ps[32] = "";
    if (sn->ready)
        param_size(sn->n_params, ps, sizeof ps);
    const char *fam = sn->ready && sn->info.arch ? sn->info.arch : "";
    return json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format", "gguf", "family", fam, "families",
                     fam, "parameter_size", ps, "quantization_level", sn->ready && sn->ftype ? sn->ftype : "");
}

static json_t *tag_json(struct srv_model *m, bool ps)
{
    struct model_snap sn;
    pthread_mutex_lock(&m->mu);
    snap_locked(m, &sn);
    char digest[65], ts[48];
    file_identity(sn.path, digest);
    rfc3339(m->created_s * 1000, ts, sizeof ts);
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", m->spec.name, "model", m->spec.name, "modified_at", ts,
                          "size", (json_int_t)(ps && sn.ready ? (int64_t)sn.info.footprint_bytes : sn.file_bytes),
                          "digest", digest, "details", details_json(&sn));
    if (j && ps) {
        json_object_set_new(j, "expires_at", json_string("9999-12-31T23:59:59Z")); /* loaded until shutdown */
        json_object_set_new(j, "size_vram", json_integer(0));
        json_object_set_new(j, "context_length", json_integer(sn.info.n_ctx));
    }
    pthread_mutex_unlock(&m->mu);
    return j;
}

static enum MHD_Result route_tags(struct server *s, struct MHD_Connection *c, bool ps)
{
    json_t *a = json_array();
    size_t n = atomic_load(&s->n_models);
    for (size_t i = 0; i < n; i++) {
        struct srv_model *m = &s->models[i];
        if (ps) {
            pthread_mutex_lock(&m->mu);
            bool ready = m->state == SRV_MODEL_READY;
            pthread_mutex_unlock(&m->mu);
            if (!ready)
                continue;
        }
        json_array_append_new(a, tag_json(m, ps));
    }
    return respond_json(c, json_pack("{s:o}", "models", a));
}

static bool conn_gone(void *ud) { return srv_client_gone(ud, true); }

/* The model a request body names, loaded (waiting for the load, as Ollama
 * does) and in use (the caller ends the use with srv_model_leave). NULL when
 * the request has been answered here (400 bad body, 404 unknown model, 503
 * load failed) or the client left (*ret = MHD_NO); *load_ms (may be NULL)
 * receives the time spent making it ready. */
static struct srv_model *ollama_ready_model(struct server *s, struct MHD_Connection *c, struct srv_conn *cc,
                                            double *load_ms, enum MHD_Result *ret)
{
    char *name = NULL;
    struct sp_err err;
    sp_err_clear(&err);
    if (server_ollama_model_name(cc->body.data, cc->body.len, &name, NULL, &err) != SP_OK) {
        *ret = ollama_error(c, 400, err.msg, err.context, NULL, NULL);
        return NULL;
    }
    struct srv_model *m = ollama_find(s, name);
    if (!m) {
        char msg[700];
        snprintf(msg, sizeof msg, "model '%.500s' not found (see GET /api/tags)", name);
        *ret = ollama_error(c, 404, msg, NULL, NULL, NULL);
        sp_free(name);
        return NULL;
    }
    sp_free(name);
    double t0 = sp_now_ms();
    enum sp_status st = srv_model_ensure(m, true, conn_gone, cc, &err);
    if (load_ms)
        *load_ms = sp_now_ms() - t0;
    if (st == SP_OK)
        return m;
    *ret = st == SP_ERR_CANCELLED ? MHD_NO : ollama_error(c, 503, err.msg, NULL, NULL, "5");
    return NULL;
}

static enum MHD_Result route_show(struct server *s, struct MHD_Connection *c, struct srv_conn *cc)
{
    enum MHD_Result ret;
    /* describing a model needs its file's metadata: load it (as Ollama does) */
    struct srv_model *m = ollama_ready_model(s, c, cc, NULL, &ret);
    if (!m)
        return ret;
    struct model_snap sn;
    pthread_mutex_lock(&m->mu);
    snap_locked(m, &sn);
    struct server_model_spec *sp = &m->spec;
    struct engine_sampling smp;
    engine_sampling_default(&smp);
    if (sp->has_sampling)
        smp = sp->sampling;
    char params[256], modelfile[1200], key[96];
    snprintf(params, sizeof params, "temperature %g\ntop_k %d\ntop_p %g\nmin_p %g\nnum_ctx %d\n",
             (double)smp.temperature, smp.top_k, (double)smp.top_p, (double)smp.min_p, sn.info.n_ctx);
    /* file names only: local paths are not shown to clients (as in /v1/models) */
    const char *file = sn.path ? strrchr(sn.path, '/') : NULL;
    file = file ? file + 1 : sn.path ? sn.path : "";
    bool local = !strncmp(sp->from, "file:", 5) || sp->from[0] == '/';
    snprintf(modelfile, sizeof modelfile, "# spoke serves %.500s\nFROM %.500s\n", local ? file : sp->from, file);
    const char *arch = sn.info.arch ? sn.info.arch : "llama";
    json_t *mi = json_pack("{s:s,s:I,s:s}", "general.architecture", arch, "general.parameter_count",
                           (json_int_t)sn.n_params, "general.name", sn.info.name ? sn.info.name : sp->name);
    struct { const char *suffix; int v; } kv[] = {
        {"context_length", sn.info.n_ctx_train}, {"embedding_length", sn.info.n_embd},
        {"block_count", sn.info.n_layer},       {"attention.head_count", sn.info.n_head},
        {"attention.head_count_kv", sn.info.n_head_kv}, {"vocab_size", sn.info.n_vocab},
    };
    for (size_t i = 0; mi && i < SP_ARRAY_LEN(kv); i++) {
        snprintf(key, sizeof key, "%.40s.%s", arch, kv[i].suffix);
        json_object_set_new(mi, key, json_integer(kv[i].v));
    }
    char ts[48];
    rfc3339(m->created_s * 1000, ts, sizeof ts);
    json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:o,s:[s],s:s}", "modelfile", modelfile, "parameters", params,
                          "template", "", "details", details_json(&sn), "model_info", mi, "capabilities",
                          "completion", "modified_at", ts);
    pthread_mutex_unlock(&m->mu);
    srv_model_leave(m); /* the use srv_model_ensure began */
    return respond_json(c, j);
}

/* ---- /api/pull */

struct pull_job {
    struct server *s;
    char *model;
    bool stream;
    pthread_t th;
    bool th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sp_buf out;           /* NDJSON not yet handed to microhttpd */
    size_t off;
    bool done;
    const char *last_file;       /* file of the last progress line */
    double last_ms;
    enum sp_status st;
    struct sp_err err;
};

static void pull_line(struct pull_job *p, json_t *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->stream && put_json(&p->out, j, true) != 0)
        LOG_WARN("server", "pull %s: progress line dropped (out of memory)", p->model);
    else if (!p->stream)
        json_decref(j);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void pull_progress(void *ud, const char *file, uint64_t done, uint64_t total)
{
    struct pull_job *p = ud;
    double now = sp_now_ms();
    bool fin = total && done >= total;
    if (p->last_file == file && now - p->last_ms < 100 && !fin)
        return;
    p->last_file = file;
    p->last_ms = now;
    char status[300];
    snprintf(status, sizeof status, "pulling %.250s", file ? file : "");
    json_t *j = json_pack("{s:s,s:s,s:I,s:I}", "status", status, "digest", file ? file : "", "total",
                          (json_int_t)total, "completed", (json_int_t)done);
    pull_line(p, j);
}

static void *pull_main(void *arg)
{
    struct pull_job *p = arg;
    char *from = NULL;
    sp_err_clear(&p->err);
    pull_line(p, json_pack("{s:s}", "status", "pulling manifest"));
    p->st = p->s->opts.pull(p->s->opts.pull_ud, p->model, pull_progress, p, &from, &p->err);
    struct srv_model *m = NULL;
    if (p->st == SP_OK) {
        pull_line(p, json_pack("{s:s}", "status", "verifying sha256 digest"));
        pull_line(p, json_pack("{s:s}", "status", "writing manifest"));
        p->st = srv_model_add(p->s, p->model, from, &m, &p->err);
    }
    if (p->st == SP_OK) {
        LOG_INFO("server", "pulled %s (%s); it loads on first use", p->model, from);
        pull_line(p, json_pack("{s:s}", "status", "success"));
    } else {
        LOG_WARN("server", "pull %s failed: %s", p->model, p->err.msg);
        pull_line(p, json_pack("{s:s}", "error", p->err.msg[0] ? p->err.msg : sp_status_name(p->st)));
    }
    sp_free(from);
    pthread_mutex_lock(&p->mu);
    p->done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pull_free(struct pull_job *p)
{
    if (!p)
        return;
    if (p->th_started)
        pthread_join(p->th, NULL); /* a pull cannot be interrupted; the file's lock keeps others waiting */
    sp_free(p->model);
    sp_buf_free(&p->out);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    sp_free(p);
}

static ssize_t pull_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    SP_UNUSED(pos);
    struct pull_job *p = cls;
    pthread_mutex_lock(&p->mu);
    while (p->out.len == p->off && !p->done)
        sp_cond_wait_ms(&p->cv, &p->mu, 1000);
    size_t avail = p->out.len - p->off;
    ssize_t n = MHD_CONTENT_READER_END_OF_STREAM;
    if (avail) {
        size_t k = SP_MIN(avail, max);
        memcpy(buf, p->out.data + p->off, k);
        p->off += k;
        if (p->off == p->out.len) {
            sp_buf_reset(&p->out);
            p->off = 0;
        }
        n = (ssize_t)k;
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void pull_reader_free(void *cls) { pull_free(cls); }

static enum MHD_Result route_pull(struct server *s, struct MHD_Connection *c, struct srv_conn *cc)
{
    struct sp_err err;
    sp_err_clear(&err);
    char *name = NULL;
    bool stream = true;
    if (server_ollama_model_name(cc->body.data, cc->body.len, &name, &stream, &err) != SP_OK)
        return ollama_error(c, 400, err.msg, err.context, NULL, NULL);
    struct srv_model *m = ollama_find(s, name);
    if (m || !s->opts.pull) {
        sp_free(name);
        if (!m)
            return ollama_error(c, 501, "this server cannot pull models (no Hub access configured)", NULL, NULL,
                                NULL);
        /* already served: nothing to download */
        if (!stream)
            return respond_json(c, json_pack("{s:s}", "status", "success"));
        const char *body = "{\"status\":\"pulling manifest\"}\n{\"status\":\"success\"}\n";
        return srv_respond(c, 200, "application/x-ndjson", body, strlen(body), NULL);
    }
    struct pull_job *p = sp_calloc(1, sizeof *p);
    if (!p) {
        sp_free(name);
        return ollama_error(c, 500, "out of memory", NULL, NULL, NULL);
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->s = s;
    p->model = name;
    p->stream = stream;
    if (!stream) {
        pull_main(p); /* on this connection's own thread */
        unsigned code = p->st == SP_ERR_INVALID ? 400 : p->st == SP_ERR_NOT_FOUND ? 404 : 502;
        enum MHD_Result ret = p->st == SP_OK ? respond_json(c, json_pack("{s:s}", "status", "success"))
                                             : ollama_error(c, code, p->err.msg, NULL, NULL, NULL);
        pull_free(p);
        return ret;
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, pull_reader, p,
                                                               pull_reader_free);
    if (!r) {
        pull_free(p);
        return ollama_error(c, 500, "out of memory", NULL, NULL, NULL);
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
    srv_decorate(c, r);
    if (pthread_create(&p->th, NULL, pull_main, p) == 0) {
        p->th_started = true;
    } else {
        pull_line(p, json_pack("{s:s}", "error", "cannot start a pull thread"));
        p->done = true;
    }
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- load-only requests: Ollama loads a model when /api/generate has no
 * prompt or /api/chat an empty messages array (clients use it to preload) */

static bool is_load_only(const struct srv_conn *cc, bool chat)
{
    json_t *root = cc->body.len ? json_loadb(cc->body.data, cc->body.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const json_t *v = json_object_get(root, chat ? "messages" : "prompt");
    bool load = json_is_object(root) &&
                (chat ? json_is_array(v) && json_array_size(v) == 0
                      : (!v || (json_is_string(v) && json_string_length(v) == 0)) &&
                            !json_object_get(root, "system") && !json_is_true(json_object_get(root, "raw")));
    json_decref(root);
    return load;
}

static enum MHD_Result route_load(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, bool chat)
{
    enum MHD_Result ret;
    double load_ms = 0;
    struct srv_model *m = ollama_ready_model(s, c, cc, &load_ms, &ret);
    if (!m)
        return ret;
    json_t *j = json_pack("{s:s,s:o}", "model", m->spec.name, "created_at", now_json());
    if (j) {
        if (chat)
            json_object_set_new(j, "message", json_pack("{s:s,s:s}", "role", "assistant", "content", ""));
        else
            json_object_set_new(j, "response", json_string(""));
        json_object_set_new(j, "done", json_true());
        json_object_set_new(j, "done_reason", json_string("load"));
        json_object_set_new(j, "load_duration", json_integer(ns(load_ms)));
    }
    srv_model_leave(m); /* the use srv_model_ensure began */
    return respond_json(c, j);
}

/* ---- dispatch */

enum MHD_Result srv_ollama_dispatch(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, const char *url,
                                    const char *method)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");
    const char *r = url + 5; /* after "/api/" */
    if (!strcmp(r, "version"))
        return get ? respond_json(c, json_pack("{s:s}", "version", SERVER_VERSION))
                   : ollama_error(c, 405, "use GET", NULL, NULL, NULL);
    if (!strcmp(r, "tags") || !strcmp(r, "ps"))
        return get ? route_tags(s, c, r[0] == 'p') : ollama_error(c, 405, "use GET", NULL, NULL, NULL);
    bool chat = !strcmp(r, "chat");
    if (chat || !strcmp(r, "generate") || !strcmp(r, "show") || !strcmp(r, "pull")) {
        if (!post)
            return ollama_error(c, 405, "use POST", NULL, NULL, NULL);
        if (atomic_load(&s->shutting_down))
            return ollama_error(c, 503, "server is shutting down", NULL, NULL, "5");
        if (!strcmp(r, "show"))
            return route_show(s, c, cc);
        if (!strcmp(r, "pull"))
            return route_pull(s, c, cc);
        if (is_load_only(cc, chat))
            return route_load(s, c, cc, chat);
        return srv_generate(s, c, cc, chat, chat ? &OLLAMA_CHAT : &OLLAMA_GENERATE);
    }
    if (!strcmp(r, "embed") || !strcmp(r, "embeddings")) { /* server_embd.c */
        if (!post)
            return ollama_error(c, 405, "use POST", NULL, NULL, NULL);
        if (atomic_load(&s->shutting_down))
            return ollama_error(c, 503, "server is shutting down", NULL, NULL, "5");
        return srv_embeddings(s, c, cc, r[5] ? SRV_EMBD_OLLAMA_OLD : SRV_EMBD_OLLAMA);
    }
    static const char *const unsupported[] = {"create", "copy", "delete", "push", "blobs/"};
    for (size_t i = 0; i < SP_ARRAY_LEN(unsupported); i++) {
        size_t n = strlen(unsupported[i]);
        if (!strncmp(r, unsupported[i], n) && (r[n] == 0 || unsupported[i][n - 1] == '/')) {
            char msg[200];
            snprintf(msg, sizeof msg, "/api/%.60s is not supported by spoke (models come from spoke.yaml, "
                                      "`spoke pull` or /api/pull)", unsupported[i]);
            return ollama_error(c, 501, msg, NULL, NULL, NULL);
        }
    }
    char msg[300];
    snprintf(msg, sizeof msg, "no route for %.8s %.200s", method, url);
    return ollama_error(c, 404, msg, NULL, NULL, NULL);
}
