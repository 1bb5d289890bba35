/* config.c - spoke.yaml reader. libyaml loads the document into a node
 * tree (with line marks); a schema-driven walk then fills struct app_config:
 * every key is looked up in a small table per section, unknown keys warn,
 * and type/value errors stop with "name:line: key.path: what was expected".
 * Scalars go through ${secrets:NAME} / ${env:NAME} expansion. Bounded: the
 * input is capped at 1 MiB, models at 256, files per model at 64, and nesting
 * at CFG_MAX_DEPTH levels: an event pass checks the depth before the tree is
 * loaded (libyaml's scanner is quadratic in the nesting depth: 40,000 levels
 * of "[" took 9.7 s), stopping at the first event past the cap. */
#include "app/config.h"
#include "hub/hub.h"
#include "obs/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define CFG_MAX_BYTES (1u << 20)
#define CFG_MAX_MODELS 256
#define CFG_MAX_FILES 64
#define CFG_MAX_DEPTH 64 /* nested sequences/mappings; spoke.yaml needs about 6 */

struct walk {
    yaml_document_t *doc;
    const char *name;
    struct app_config *cfg;
    struct sp_err *err;
};

static int node_line(const yaml_node_t *n) { return n ? (int)n->start_mark.line + 1 : 0; }

static enum sp_status fail_at(struct walk *w, const yaml_node_t *n, const char *key, const char *fmt, ...)
    SP_PRINTF(4, 5);
static enum sp_status fail_at(struct walk *w, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sp_err_setc(w->err, SP_ERR_INVALID, key, "%s:%d: %s: %s", w->name, node_line(n), key, what);
}

static void warn_at(struct walk *w, const yaml_node_t *n, const char *key, const char *what)
{
    w->cfg->n_warnings++;
    LOG_WARN("config", "%s:%d: %s: %s", w->name, node_line(n), key, what);
}

static yaml_node_t *node_get(struct walk *w, int index) { return yaml_document_get_node(w->doc, index); }

/* Expand ${secrets:NAME} and ${env:NAME} into a new sp_malloc'd string. */
static enum sp_status expand(struct walk *w, const yaml_node_t *n, const char *key, const char *s, char **out)
{
    struct sp_buf b = {0};
    b.limit = 64 * 1024;
    *out = NULL;
    const char *p = s;
    while (*p) {
        const char *d = strstr(p, "${");
        if (!d) {
            if (sp_buf_appends(&b, p))
                goto nomem;
            break;
        }
        if (sp_buf_append(&b, p, (size_t)(d - p)))
            goto nomem;
        const char *close = strchr(d, '}');
        if (!close) {
            sp_buf_free(&b);
            return fail_at(w, n, key, "unterminated ${...} (use ${secrets:NAME} or ${env:NAME})");
        }
        const char *inner = d + 2;
        size_t ilen = (size_t)(close - inner);
        const char *var = NULL;
        if (ilen > 8 && strncmp(inner, "secrets:", 8) == 0)
            var = inner + 8;
        else if (ilen > 4 && strncmp(inner, "env:", 4) == 0)
            var = inner + 4;
        if (!var) {
            sp_buf_free(&b);
            return fail_at(w, n, key, "unknown substitution ${%.*s} (use ${secrets:NAME} or ${env:NAME})",
                           (int)SP_MIN(ilen, 64), inner);
        }
        char vname[128];
        size_t vlen = (size_t)(close - var);
        if (vlen >= sizeof vname) {
            sp_buf_free(&b);
            return fail_at(w, n, key, "variable name too long");
        }
        memcpy(vname, var, vlen);
        vname[vlen] = 0;
        const char *val = getenv(vname);
        if (!val) {
            char msg[200];
            snprintf(msg, sizeof msg, "environment variable %s is not set; using an empty value", vname);
            warn_at(w, n, key, msg);
            val = "";
        }
        if (sp_buf_appends(&b, val))
            goto nomem;
        p = close + 1;
    }
    *out = sp_buf_take(&b);
    if (!*out)
        goto nomem;
    return SP_OK;
nomem:
    sp_buf_free(&b);
    return sp_err_set(w->err, SP_ERR_NOMEM, "out of memory reading config");
}

static enum sp_status get_string(struct walk *w, const yaml_node_t *n, const char *key, char **out)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return fail_at(w, n, key, "expected a string");
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length)
        return fail_at(w, n, key, "string contains a NUL byte");
    char *s = NULL;
    enum sp_status result = expand(w, n, key, v, &s);
    if (result != SP_OK)
        return result;
    sp_free(*out);
    *out = s;
    return SP_OK;
}

/* A filesystem path: like get_string, and a leading "~/" becomes $HOME/. */
static enum sp_status get_path(struct walk *w, const yaml_node_t *n, const char *key, char **out)
{
    enum sp_status result = get_string(w, n, key, out);
    if (result != SP_OK || strncmp(*out, "~/", 2) != 0)
        return result;
    const char *home = getenv("HOME");
    if (!home || !*home)
        return fail_at(w, n, key, "'~' used but HOME is not set");
    struct sp_buf b = {0};
    if (sp_buf_printf(&b, "%s/%s", home, *out + 2) != SP_OK) {
        sp_buf_free(&b);
        return fail_at(w, n, key, "out of memory");
    }
    sp_free(*out);
    *out = sp_buf_take(&b);
    return *out ? SP_OK : fail_at(w, n, key, "out of memory");
}

static enum sp_status get_i64(struct walk *w, const yaml_node_t *n, const char *key, int64_t min, int64_t max,
                              int64_t *out)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return fail_at(w, n, key, "expected an integer %lld..%lld", (long long)min, (long long)max);
    const char *v = (const char *)n->data.scalar.value;
    char *exp = NULL;
    if (strstr(v, "${")) { /* ${env:PORT} in a number field */
        enum sp_status r = expand(w, n, key, v, &exp);
        if (r != SP_OK)
            return r;
        v = exp;
    }
    bool ok = sp_parse_i64(v, min, max, out);
    enum sp_status result = SP_OK;
    if (!ok)
        result = fail_at(w, n, key, "expected an integer %lld..%lld, got '%.40s'", (long long)min, (long long)max, v);
    sp_free(exp);
    return result;
}

static enum sp_status get_int(struct walk *w, const yaml_node_t *n, const char *key, int min, int max, int *out)
{
    int64_t v = 0;
    enum sp_status result = get_i64(w, n, key, min, max, &v);
    if (result == SP_OK)
        *out = (int)v;
    return result;
}

static enum sp_status get_double(struct walk *w, const yaml_node_t *n, const char *key, double min, double max,
                                 double *out)
{
    double v = 0;
    if (!n || n->type != YAML_SCALAR_NODE || !sp_parse_double((const char *)n->data.scalar.value, &v) || v < min ||
        v > max)
        return fail_at(w, n, key, "expected a number %g..%g", min, max);
    *out = v;
    return SP_OK;
}

static enum sp_status get_bool(struct walk *w, const yaml_node_t *n, const char *key, bool *out)
{
    if (n && n->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)n->data.scalar.value;
        if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE") || !strcmp(v, "yes")) {
            *out = true;
            return SP_OK;
        }
        if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE") || !strcmp(v, "no")) {
            *out = false;
            return SP_OK;
        }
    }
    return fail_at(w, n, key, "expected true or false");
}

bool app_config_parse_duration(const char *s, int64_t *seconds)
{
    if (!s || !*s)
        return false;
    size_t n = strlen(s);
    int64_t mul = 1;
    char num[32];
    char last = s[n - 1];
    if (last == 's' || last == 'm' || last == 'h' || last == 'd' || last == 'w') {
        mul = last == 's' ? 1 : last == 'm' ? 60 : last == 'h' ? 3600 : last == 'd' ? 86400 : 604800;
        n--;
    }
    if (n == 0 || n >= sizeof num)
        return false;
    memcpy(num, s, n);
    num[n] = 0;
    int64_t v;
    if (!sp_parse_i64(num, 0, INT64_MAX / 604800, &v))
        return false;
    *seconds = v * mul;
    return true;
}

static enum sp_status get_duration(struct walk *w, const yaml_node_t *n, const char *key, int64_t *out)
{
    if (!n || n->type != YAML_SCALAR_NODE || !app_config_parse_duration((const char *)n->data.scalar.value, out))
        return fail_at(w, n, key, "expected a duration such as 3600, 90s, 15m, 8h, 7d");
    return SP_OK;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* One key of a mapping: ks its name, v its value, key the dotted path for
 * messages ("server.limits.max_tokens"), ctx what the field is stored in. */
typedef enum sp_status (*field_fn)(struct walk *w, void *ctx, const yaml_node_t *k, const char *ks, yaml_node_t *v,
                                   const char *key);

/* Walk the mapping at path (expect: the message when it is not one), calling
 * fn for every key in order; non-string keys and fn's errors stop the walk. */
static enum sp_status walk_mapping(struct walk *w, yaml_node_t *map, const char *path, const char *expect,
                                   field_fn fn, void *ctx)
{
    char key[256];
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(w, map, path, "%s", expect);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_get(w, p->key), *v = node_get(w, p->value);
        const char *ks = scalar(k);
        if (!ks)
            return fail_at(w, k, path, "keys must be strings");
        snprintf(key, sizeof key, "%.120s.%.100s", path, ks);
        enum sp_status r = fn(w, ctx, k, ks, v, key);
        if (r != SP_OK)
            return r;
    }
    return SP_OK;
}

/* ---- models */

static enum sp_status param_field(struct walk *w, void *ctx, const yaml_node_t *k, const char *ks, yaml_node_t *v,
                                  const char *key)
{
    struct server_model_spec *m = ctx;
    enum sp_status r = SP_OK;
    double d = 0;
    if (!strcmp(ks, "hf_token") || !strcmp(ks, "token")) {
        char *tok = NULL;
        r = get_string(w, v, key, &tok);
        if (r == SP_OK) {
            /* hf_token wins over token */
            if (tok[0] && (!m->token || !strcmp(ks, "hf_token"))) {
                sp_free(m->token);
                m->token = tok;
            } else {
                sp_free(tok);
            }
        }
    } else if (!strcmp(ks, "chat_template")) { r = get_string(w, v, key, &m->chat_template); /* name/Jinja/file */
    } else if (!strcmp(ks, "max_concurrency")) {
        r = get_int(w, v, key, 1, 1024, &m->max_concurrency);
    } else if (!strcmp(ks, "kv_budget") || !strcmp(ks, "kv_tokens")) {
        r = get_int(w, v, key, 0, 1 << 26, &m->kv_tokens);
    } else if (!strcmp(ks, "step_tokens") || !strcmp(ks, "batch_tokens")) {
        r = get_int(w, v, key, 0, 1 << 16, &m->step_tokens);
    } else if (!strcmp(ks, "queue_size") || !strcmp(ks, "max_queue")) {
        r = get_int(w, v, key, 0, 100000, &m->queue_size);
    } else if (!strcmp(ks, "initial_load")) {
        r = get_bool(w, v, key, &m->initial_load);
    } else if (!strcmp(ks, "context_size") || !strcmp(ks, "n_ctx") || !strcmp(ks, "context_length") ||
               !strcmp(ks, "ctx_size")) {
        r = get_int(w, v, key, 0, 1 << 20, &m->n_ctx);
    } else if (!strcmp(ks, "threads") || !strcmp(ks, "n_threads")) {
        r = get_int(w, v, key, 0, 1024, &m->n_threads);
    } else if (!strcmp(ks, "max_tokens") || !strcmp(ks, "max_completion_tokens")) {
        r = get_int(w, v, key, 1, 1 << 20, &m->default_max_tokens);
    } else if (!strcmp(ks, "temperature")) {
        r = get_double(w, v, key, 0, 2, &d);
        m->sampling.temperature = (float)d;
        m->has_sampling = true;
    } else if (!strcmp(ks, "top_p")) {
        r = get_double(w, v, key, 0, 1, &d);
        m->sampling.top_p = (float)d;
        m->has_sampling = true;
    } else if (!strcmp(ks, "min_p")) {
        r = get_double(w, v, key, 0, 1, &d);
        m->sampling.min_p = (float)d;
        m->has_sampling = true;
    } else if (!strcmp(ks, "top_k")) {
        r = get_int(w, v, key, 0, 1 << 20, &m->sampling.top_k);
        m->has_sampling = true;
    } else if (!strcmp(ks, "repeat_penalty")) {
        r = get_double(w, v, key, 0, 10, &d);
        m->sampling.repeat_penalty = (float)d;
        m->has_sampling = true;
    } else if (!strcmp(ks, "presence_penalty")) {
        r = get_double(w, v, key, -2, 2, &d);
        m->sampling.presence_penalty = (float)d;
        m->has_sampling = true;
    } else if (!strcmp(ks, "frequency_penalty")) {
        r = get_double(w, v, key, -2, 2, &d);
        m->sampling.frequency_penalty = (float)d;
        m->has_sampling = true;
    } else if (!strcmp(ks, "seed")) {
        int64_t s = 0;
        r = get_i64(w, v, key, 0, INT64_MAX, &s);
        m->sampling.seed = (uint64_t)s;
        m->has_sampling = true;
    } else {
        warn_at(w, k, key, "unknown parameter (ignored)");
    }
    return r;
}

static enum sp_status parse_params(struct walk *w, yaml_node_t *map, const char *path, struct server_model_spec *m)
{
    return walk_mapping(w, map, path, "expected a mapping of parameters", param_field, m);
}

static enum sp_status parse_files(struct walk *w, yaml_node_t *seq, const char *path, struct server_model_spec *m)
{
    char key[256];
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail_at(w, seq, path, "expected a list of {path: FILE}");
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n > CFG_MAX_FILES)
        return fail_at(w, seq, path, "too many files (max %d)", CFG_MAX_FILES);
    m->files = sp_calloc(n ? n : 1, sizeof *m->files);
    if (!m->files)
        return sp_err_set(w->err, SP_ERR_NOMEM, "out of memory reading config");
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = node_get(w, seq->data.sequence.items.start[i]);
        snprintf(key, sizeof key, "%.200s[%zu]", path, i);
        yaml_node_t *pv = NULL;
        if (it && it->type == YAML_SCALAR_NODE) {
            pv = it;
        } else if (it && it->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *p = it->data.mapping.pairs.start; p < it->data.mapping.pairs.top; p++) {
                yaml_node_t *k = node_get(w, p->key);
                const char *ks = scalar(k);
                if (ks && !strcmp(ks, "path"))
                    pv = node_get(w, p->value);
                else if (!ks || (strcmp(ks, "name") && strcmp(ks, "type")))
                    warn_at(w, k, key, "unknown key in files entry (ignored)");
            }
            if (!pv)
                return fail_at(w, it, key, "missing required field 'path'");
        } else {
            return fail_at(w, it, key, "expected {path: FILE}");
        }
        char pk[300];
        snprintf(pk, sizeof pk, "%.256s.path", key);
        enum sp_status r = get_string(w, pv, pk, &m->files[m->n_files]);
        if (r != SP_OK)
            return r;
        if (!m->files[m->n_files][0]) {
            sp_free(m->files[m->n_files]);
            m->files[m->n_files] = NULL;
            return fail_at(w, pv, pk, "empty path");
        }
        m->n_files++;
    }
    return SP_OK;
}

static enum sp_status model_field(struct walk *w, void *ctx, const yaml_node_t *k, const char *ks, yaml_node_t *v,
                                  const char *key)
{
    struct server_model_spec *m = ctx;
    if (!strcmp(ks, "from"))
        return get_string(w, v, key, &m->from);
    if (!strcmp(ks, "name"))
        return get_string(w, v, key, &m->name);
    if (!strcmp(ks, "files"))
        return m->files ? fail_at(w, k, key, "duplicate key") : parse_files(w, v, key, m);
    if (!strcmp(ks, "params"))
        return parse_params(w, v, key, m);
    if (!strcmp(ks, "description") || !strcmp(ks, "dependsOn") || !strcmp(ks, "metadata"))
        return SP_OK; /* Spice fields with no meaning here */
    warn_at(w, k, key, "unknown key (ignored)");
    return SP_OK;
}

static enum sp_status parse_model(struct walk *w, yaml_node_t *map, size_t idx, struct server_model_spec *m)
{
    char path[64];
    snprintf(path, sizeof path, "models[%zu]", idx);
    enum sp_status r = walk_mapping(w, map, path, "expected a mapping with from/name", model_field, m);
    if (r != SP_OK)
        return r;
    if (!m->from || !m->from[0])
        return fail_at(w, map, path, "missing required field 'from'");
    if (!m->name || !m->name[0])
        return fail_at(w, map, path, "missing required field 'name'");
    /* A Hub id with a bad org/name/revision (e.g. "@../../etc") is a config
     * error at startup, before any request (DESIGN.md s5): without this the
     * server started and only the model's loader failed. */
    if (!strncmp(m->from, "huggingface:", 12) || !strncmp(m->from, "hf:", 3)) {
        struct hub_id id;
        struct sp_err iderr = {0};
        if (hub_id_parse(m->from, strlen(m->from), &id, &iderr) != SP_OK)
            return fail_at(w, map, path, "from: %s", iderr.msg);
    }
    for (const char *c = m->name; *c; c++) {
        if ((unsigned char)*c < 0x21 || *c == '/' || *c == '"' || *c == '\\' || (unsigned char)*c >= 0x7f)
            return fail_at(w, map, path, "name '%.64s' may contain only printable ASCII without '/', quotes or spaces",
                           m->name);
    }
    if (strlen(m->name) > 128)
        return fail_at(w, map, path, "name is longer than 128 characters");
    return SP_OK;
}

static enum sp_status parse_models(struct walk *w, yaml_node_t *seq)
{
    struct server_opts *o = &w->cfg->server;
    if (seq->type == YAML_SCALAR_NODE && seq->data.scalar.length == 0)
        return SP_OK; /* "models:" with nothing */
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail_at(w, seq, "models", "expected a list of models");
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n > CFG_MAX_MODELS)
        return fail_at(w, seq, "models", "too many models (max %d)", CFG_MAX_MODELS);
    if (n == 0)
        return SP_OK;
    o->models = sp_calloc(n, sizeof *o->models);
    if (!o->models)
        return sp_err_set(w->err, SP_ERR_NOMEM, "out of memory reading config");
    for (size_t i = 0; i < n; i++) {
        struct server_model_spec *m = &o->models[i];
        server_model_spec_default(m);
        o->n_models = i + 1;
        enum sp_status r = parse_model(w, node_get(w, seq->data.sequence.items.start[i]), i, m);
        if (r != SP_OK)
            return r;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(o->models[j].name, m->name))
                return fail_at(w, node_get(w, seq->data.sequence.items.start[i]), "models",
                               "duplicate model name '%s'", m->name);
    }
    return SP_OK;
}

/* ---- server / runtime */

static enum sp_status limit_field(struct walk *w, void *ctx, const yaml_node_t *k, const char *ks, yaml_node_t *v,
                                  const char *key)
{
    struct server_limits *l = ctx;
    enum sp_status r = SP_OK;
    int64_t x = 0;
    int iv = 0;
    if (!strcmp(ks, "max_body_bytes")) {
        r = get_i64(w, v, key, 1024, 1LL << 30, &x);
        l->max_body_bytes = (size_t)x;
    } else if (!strcmp(ks, "max_tokens")) {
        r = get_int(w, v, key, 1, 1 << 20, &l->max_tokens);
    } else if (!strcmp(ks, "default_max_tokens")) {
        r = get_int(w, v, key, 1, 1 << 20, &l->default_max_tokens);
    } else if (!strcmp(ks, "max_connections")) {
        r = get_int(w, v, key, 4, 65536, &iv);
        l->max_connections = (unsigned)iv;
    } else if (!strcmp(ks, "timeout_s") || !strcmp(ks, "connection_timeout_s")) {
        r = get_int(w, v, key, 1, 3600, &iv);
        l->conn_timeout_s = (unsigned)iv;
    } else if (!strcmp(ks, "shutdown_grace_ms")) {
        r = get_int(w, v, key, 0, 600000, &l->shutdown_grace_ms);
    } else if (!strcmp(ks, "sql_max_rows")) {
        r = get_i64(w, v, key, 1, 1000000, &x);
        l->sql_max_rows = (size_t)x;
    } else if (!strcmp(ks, "sql_time_ms")) {
        r = get_int(w, v, key, 1, 600000, &l->sql_time_ms);
    } else if (!strcmp(ks, "max_messages")) {
        r = get_int(w, v, key, 1, 100000, &l->max_messages);
    } else if (!strcmp(ks, "max_connections_per_client")) {
        r = get_int(w, v, key, 1, 65536, &iv);
        l->max_connections_per_client = (unsigned)iv;
    } else if (!strcmp(ks, "request_timeout_s")) {
        r = get_int(w, v, key, 1, 3600, &iv);
        l->request_timeout_s = (unsigned)iv;
    } else if (!strcmp(ks, "write_timeout_s")) {
        r = get_int(w, v, key, 1, 3600, &iv);
        l->write_timeout_s = (unsigned)iv;
    } else if (!strcmp(ks, "max_parsing")) {
        r = get_int(w, v, key, 1, 1024, &l->max_parsing);
    } else if (!strcmp(ks, "max_buffered_bytes")) {
        r = get_i64(w, v, key, 1 << 20, 1LL << 34, &x);
        l->max_buffered_bytes = (size_t)x;
    } else if (!strcmp(ks, "sql_max_bytes")) {
        r = get_i64(w, v, key, 1024, 1LL << 30, &x);
        l->sql_max_bytes = (size_t)x;
    } else {
        warn_at(w, k, key, "unknown key (ignored)");
    }
    return r;
}

static enum sp_status history_field(struct walk *w, void *ctx, const yaml_node_t *k, const char *ks, yaml_node_t *v,
                                    const char *key)
{
    struct server_history *h = ctx;
    enum sp_status r = SP_OK;
    int64_t x = 0;
    if (!strcmp(ks, "enabled")) {
        r = get_bool(w, v, key, &h->enabled);
    } else if (!strcmp(ks, "path")) {
        r = get_path(w, v, key, &h->path);
        w->cfg->history_path_set = true;
    } else if (!strcmp(ks, "retention") || !strcmp(ks, "retention_period")) {
        r = get_duration(w, v, key, &h->retention_s);
    } else if (!strcmp(ks, "capture") || !strcmp(ks, "captured_output")) {
        const char *s = scalar(v);
        if (!s || !trace_capture_parse(s, &h->capture))
            r = fail_at(w, v, key, "expected none, truncated or full");
    } else if (!strcmp(ks, "truncate_bytes")) {
        r = get_i64(w, v, key, 16, 1 << 24, &x);
        h->truncate_bytes = (size_t)x;
    } else if (!strcmp(ks, "sql_endpoint")) {
        r = get_bool(w, v, key, &h->sql_endpoint);
    } else if (!strcmp(ks, "retention_check_interval")) {
        ; /* Spice: the writer checks every minute */
    } else {
        warn_at(w, k, key, "unknown key (ignored)");
    }
    return r;
}

static enum sp_status parse_history(struct walk *w, yaml_node_t *map, const char *path)
{
    return walk_mapping(w, map, path, "expected a mapping", history_field, &w->cfg->server.history);
}

/* A list of strings (a single string is a list of one); ${...} expanded,
 * empty entries refused (an unset ${env:KEY} must not become an empty key). */
static enum sp_status get_strlist(struct walk *w, yaml_node_t *v, const char *key, char ***list, size_t *n)
{
    char item[300];
    if (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0)
        return SP_OK;
    size_t count = v->type == YAML_SEQUENCE_NODE ? (size_t)(v->data.sequence.items.top - v->data.sequence.items.start)
                   : v->type == YAML_SCALAR_NODE ? 1 : 0;
    if (v->type == YAML_MAPPING_NODE)
        return fail_at(w, v, key, "expected a list of strings");
    if (count > 256)
        return fail_at(w, v, key, "too many entries (max 256)");
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = v->type == YAML_SEQUENCE_NODE ? node_get(w, v->data.sequence.items.start[i]) : v;
        snprintf(item, sizeof item, "%.280s[%zu]", key, i);
        char *str = NULL;
        enum sp_status r = get_string(w, it, item, &str);
        if (r != SP_OK)
            return r;
        if (!str[0]) {
            sp_free(str);
            return fail_at(w, it, item, "empty value (is its ${env:...} / ${secrets:...} variable set?)");
        }
        r = server_strlist_add(list, n, str);
        memset(str, 0, strlen(str));
        sp_free(str);
        if (r != SP_OK)
            return sp_err_set(w->err, SP_ERR_NOMEM, "out of memory reading config");
    }
    return SP_OK;
}

static enum sp_status server_field(struct walk *w, void *ctx, const yaml_node_t *k, const char *ks, yaml_node_t *v,
                                   const char *key)
{
    struct server_opts *o = ctx;
    enum sp_status r = SP_OK;
    if (!strcmp(ks, "host")) {
        r = get_string(w, v, key, &o->host);
        w->cfg->server_host_set = true;
    } else if (!strcmp(ks, "port")) {
        r = get_int(w, v, key, 0, 65535, &o->port);
        w->cfg->server_port_set = true;
    } else if (!strcmp(ks, "limits")) {
        r = walk_mapping(w, v, "server.limits", "expected a mapping", limit_field, &w->cfg->server.limits);
    } else if (!strcmp(ks, "task_history")) {
        r = parse_history(w, v, "server.task_history");
    } else if (!strcmp(ks, "api_keys") || !strcmp(ks, "api_key")) {
        r = get_strlist(w, v, key, &o->auth.api_keys, &o->auth.n_api_keys);
    } else if (!strcmp(ks, "allowed_hosts")) {
        r = get_strlist(w, v, key, &o->auth.allowed_hosts, &o->auth.n_allowed_hosts);
    } else if (!strcmp(ks, "cors_origins")) {
        r = get_strlist(w, v, key, &o->auth.cors_origins, &o->auth.n_cors_origins);
    } else if (!strcmp(ks, "metrics_public")) {
        r = get_bool(w, v, key, &o->auth.metrics_public);
    } else {
        warn_at(w, k, key, "unknown key (ignored)");
    }
    return r;
}

static enum sp_status parse_server(struct walk *w, yaml_node_t *map)
{
    return walk_mapping(w, map, "server", "expected a mapping", server_field, &w->cfg->server);
}

static enum sp_status parse_runtime(struct walk *w, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(w, map, "runtime", "expected a mapping");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_get(w, p->key), *v = node_get(w, p->value);
        const char *ks = scalar(k);
        if (ks && !strcmp(ks, "task_history")) {
            enum sp_status r = parse_history(w, v, "runtime.task_history");
            if (r != SP_OK)
                return r;
        } else {
            warn_at(w, k, "runtime", "unknown or unsupported runtime key (ignored)");
        }
    }
    return SP_OK;
}

static enum sp_status parse_root(struct walk *w, yaml_node_t *root)
{
    if (!root)
        return SP_OK; /* empty document: defaults */
    if (root->type != YAML_MAPPING_NODE)
        return fail_at(w, root, "(top level)", "expected a mapping with models: and server:");
    bool seen_models = false;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_get(w, p->key), *v = node_get(w, p->value);
        const char *ks = scalar(k);
        if (!ks)
            return fail_at(w, k, "(top level)", "keys must be strings");
        enum sp_status r = SP_OK;
        if (!strcmp(ks, "models")) {
            if (seen_models)
                return fail_at(w, k, "models", "duplicate key");
            seen_models = true;
            r = parse_models(w, v);
        } else if (!strcmp(ks, "server")) {
            r = parse_server(w, v);
        } else if (!strcmp(ks, "runtime")) {
            r = parse_runtime(w, v);
        } else if (!strcmp(ks, "version") || !strcmp(ks, "kind") || !strcmp(ks, "name") ||
                   !strcmp(ks, "metadata")) {
            ; /* spicepod header */
        } else {
            warn_at(w, k, ks, "unknown top-level key (ignored)");
        }
        if (r != SP_OK)
            return r;
    }
    return SP_OK;
}

void app_config_init(struct app_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    server_opts_default(&cfg->server);
}

void app_config_free(struct app_config *cfg)
{
    if (!cfg)
        return;
    server_opts_clear(&cfg->server);
    memset(cfg, 0, sizeof *cfg);
}

/* Read the events of text and fail at the first one nested deeper than
 * CFG_MAX_DEPTH (before the scanner's per-level cost adds up). Syntax errors
 * are left to the load that follows, which reports them with their line. */
static enum sp_status check_depth(const char *text, size_t len, const char *name, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    yaml_parser_t parser;
    yaml_event_t ev;
    unsigned depth = 0;
    if (!yaml_parser_initialize(&parser))
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory reading config");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev))
            break; /* a syntax error: the load reports it */
        yaml_event_type_t t = ev.type;
        int line = (int)ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (++depth > CFG_MAX_DEPTH) {
                result = sp_err_set(err, SP_ERR_INVALID, "%s:%d: YAML nested deeper than %u levels",
                                    name, line, CFG_MAX_DEPTH);
                break;
            }
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (t == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&parser);
    return result;
}

enum sp_status app_config_parse(const char *text, size_t len, const char *name, struct app_config *cfg,
                                struct sp_err *err)
{
    enum sp_status result = SP_OK;
    yaml_parser_t parser;
    yaml_document_t doc;
    bool parser_ok = false, doc_ok = false;
    app_config_init(cfg);
    if (!name)
        name = "config";
    if (len > CFG_MAX_BYTES)
        return sp_err_set(err, SP_ERR_LIMIT, "%s: config larger than %u bytes", name, CFG_MAX_BYTES);
    result = check_depth(text, len, name, err);
    if (result != SP_OK)
        return result;
    if (!yaml_parser_initialize(&parser))
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory reading config");
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        result = sp_err_set(err, SP_ERR_INVALID, "%s:%d:%d: YAML error: %s%s%s", name,
                            (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                            parser.problem ? parser.problem : "malformed YAML", parser.context ? " " : "",
                            parser.context ? parser.context : "");
        goto fail;
    }
    doc_ok = true;
    struct walk w = {&doc, name, cfg, err};
    result = parse_root(&w, yaml_document_get_root_node(&doc));
fail:
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    if (result != SP_OK) {
        int warnings = cfg->n_warnings;
        app_config_free(cfg);
        app_config_init(cfg);
        cfg->n_warnings = warnings;
    }
    return result;
}

enum sp_status app_config_load(const char *path, struct app_config *cfg, struct sp_err *err)
{
    app_config_init(cfg);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sp_err_setc(err, errno == ENOENT ? SP_ERR_NOT_FOUND : SP_ERR_IO, path, "cannot open config %s: %s",
                           path, strerror(errno));
    struct sp_buf b = {0};
    b.limit = CFG_MAX_BYTES;
    char chunk[8192];
    size_t n;
    enum sp_status result = SP_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        int rc = sp_buf_append(&b, chunk, n);
        if (rc) {
            result = sp_err_setc(err, rc == SP_ERR_LIMIT ? SP_ERR_LIMIT : SP_ERR_NOMEM, path,
                                 "config %s is larger than %u bytes", path, CFG_MAX_BYTES);
            break;
        }
    }
    if (result == SP_OK && ferror(f))
        result = sp_err_setc(err, SP_ERR_IO, path, "cannot read config %s", path);
    fclose(f);
    if (result == SP_OK)
        result = app_config_parse(b.data ? b.data : "", b.len, path, cfg, err);
    sp_buf_free(&b);
    return result;
}
