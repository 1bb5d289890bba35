/* cmd_serve.c - `spoke serve [-c spoke.yaml] [--host H] [--port P]
 * [--model FILE] [--history PATH|--no-history]`: reads the config (or uses
 * the bundled demo model when there is none), resolves models through the
 * hub's app_pull / app_model_locate on the server's loader threads, starts
 * the HTTP server, prints the bound URL and a curl example, then waits for
 * SIGTERM/SIGINT and shuts down gracefully (exit 0). */
#include "app/app.h"
#include "app/config.h"
#include "app/pull.h"
#include "gguf/gguf.h"
#include "obs/log.h"
#include "server/server.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct pull_progress {
    struct server *srv;
    const char *model;
    uint64_t last;
    const char *last_file;
};

static void on_progress(void *ud, const char *file, uint64_t done, uint64_t total)
{
    SP_UNUSED(total);
    struct pull_progress *p = ud;
    if (p->last_file != file) {
        p->last_file = file;
        p->last = 0;
    }
    if (done > p->last) {
        server_count_download(p->srv, p->model, done - p->last);
        p->last = done;
    }
}

/* server_resolve_fn: spec -> local GGUF path (downloads through the hub) */
static enum sp_status resolve_model(void *ud, struct server *srv, const struct server_model_spec *spec,
                                    char **path_out, struct sp_err *err)
{
    SP_UNUSED(ud);
    enum sp_status result;
    struct app_pulled pulled;
    memset(&pulled, 0, sizeof pulled);
    if (!strncmp(spec->from, "file:", 5)) {
        const char *p = spec->from + 5;
        if (!strncmp(p, "//", 2))
            p += 2;
        struct stat st;
        if (stat(p, &st) != 0)
            return sp_err_setc(err, SP_ERR_NOT_FOUND, p, "model file %s: %s", p, strerror(errno));
        *path_out = sp_strdup(p);
        return *path_out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    if (spec->n_files > 0) {
        struct pull_progress pp = {srv, spec->name, 0, NULL};
        struct app_pull_opts o = {.model = spec->from,
                                  .files = (const char *const *)spec->files,
                                  .n_files = spec->n_files,
                                  .token = spec->token,
                                  .progress = on_progress,
                                  .progress_ud = &pp};
        result = app_pull(&o, &pulled, err);
    } else {
        result = app_model_locate(spec->from, spec->token, &pulled, err);
    }
    if (result == SP_OK) {
        *path_out = pulled.path ? sp_strdup(pulled.path) : NULL;
        if (!*path_out)
            result = sp_err_set(err, SP_ERR_NOT_FOUND, "model %s: no GGUF file found", spec->from);
    }
    app_pulled_free(&pulled);
    return result;
}

/* Ollama's tag after ':' names a quantization (hf.co/org/repo:Q4_K_M) when
 * it looks like one; otherwise it is a revision. */
static bool tag_is_quant(const char *t)
{
    if ((t[0] == 'I' || t[0] == 'i') && (t[1] == 'Q' || t[1] == 'q'))
        t++;
    if ((t[0] == 'Q' || t[0] == 'q') && t[1] >= '0' && t[1] <= '9')
        return true;
    return !strcasecmp(t, "F16") || !strcasecmp(t, "BF16") || !strcasecmp(t, "F32");
}

/* server_pull_fn (POST /api/pull): an Ollama-style name -> app_pull */
static enum sp_status pull_model(void *ud, const char *model, server_pull_progress_fn progress, void *progress_ud,
                                 char **from_out, struct sp_err *err)
{
    SP_UNUSED(ud);
    char id[600], quant[64] = "";
    const char *m = model;
    if (!strncmp(m, "hf.co/", 6))
        m += 6;
    sp_strlcpy(id, m, sizeof id);
    char *colon = strrchr(id, ':');
    char *slash = strchr(id, '/');
    if (colon && slash && colon > slash) {
        if (tag_is_quant(colon + 1)) {
            sp_strlcpy(quant, colon + 1, sizeof quant);
            *colon = 0;
        } else if (!strcmp(colon + 1, "latest")) {
            *colon = 0;
        }
    }
    struct app_pulled pulled;
    memset(&pulled, 0, sizeof pulled);
    struct app_pull_opts o = {.model = id, .quant = quant[0] ? quant : NULL, .progress = progress,
                              .progress_ud = progress_ud};
    enum sp_status result = app_pull(&o, &pulled, err);
    if (result == SP_OK && !pulled.path)
        result = sp_err_set(err, SP_ERR_NOT_FOUND, "%s: no GGUF file in the repository", model);
    if (result == SP_OK) {
        struct sp_buf b = {0};
        if (sp_buf_printf(&b, "file:%s", pulled.path) != 0)
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        *from_out = sp_buf_take(&b);
    }
    app_pulled_free(&pulled);
    return result;
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* models/stories260K.gguf next to the executable (build/spoke -> ../models) or in cwd */
static bool find_demo_model(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, n, "%.3900s/../models/stories260K.gguf", exe);
            if (file_exists(out))
                return true;
            snprintf(out, n, "%.3900s/models/stories260K.gguf", exe);
            if (file_exists(out))
                return true;
        }
    }
    snprintf(out, n, "models/stories260K.gguf");
    return file_exists(out);
}

static char *default_history_path(void)
{
    const char *home = getenv("SPOKE_HOME");
    char dir[PATH_MAX];
    if (home && home[0])
        snprintf(dir, sizeof dir, "%s", home);
    else
        snprintf(dir, sizeof dir, "%s/.spoke", getenv("HOME") ? getenv("HOME") : ".");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) /* the history holds prompts: owner only */
        return NULL;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/task_history.db", dir);
    return sp_strdup(path);
}

static char *model_name_from_path(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char name[129];
    sp_strlcpy(name, b, sizeof name);
    char *dot = strstr(name, ".gguf");
    if (dot && dot != name)
        *dot = 0;
    for (char *c = name; *c; c++)
        if ((unsigned char)*c < 0x21 || *c == '"' || *c == '\\' || (unsigned char)*c >= 0x7f)
            *c = '_';
    return sp_strdup(name);
}

#define SERVE_USAGE                                                                                            \
    "usage: spoke serve [-c spoke.yaml] [--host H] [--port P] [--model FILE]\n"                                  \
    "                   [--history PATH | --no-history] [--api-key KEY]... [--insecure-no-auth]\n"          \
    "                   [--check-config]\n"

/* --check-config: what would be served, without loading or binding anything */
static int check_config(const struct server_opts *o, const char *model)
{
    const char *host = o->host ? o->host : "127.0.0.1";
    if (!server_host_is_loopback(host) && !o->auth.n_api_keys && !o->auth.insecure_no_auth) {
        fprintf(stderr, "spoke: serve: host %s is not loopback and no API key is set (server.api_keys, --api-key, "
                        "SPOKE_API_KEY); refusing, as serve would\n", host);
        return APP_EXIT_USAGE;
    }
    if (!o->n_models && !model)
        printf("spoke: config OK: no models configured (serve would use the bundled demo model)");
    else
        printf("spoke: config OK: %zu model(s):", o->n_models + (model ? 1 : 0));
    for (size_t i = 0; i < o->n_models; i++)
        printf(" %s (%s, max_concurrency %d%s)", o->models[i].name, o->models[i].from, o->models[i].max_concurrency,
               o->models[i].initial_load ? ", initial_load" : "");
    if (model)
        printf(" %s", model);
    printf("\nspoke: would listen on %s:%d with %zu API key(s); task history %s%s\n", host, o->port,
           o->auth.n_api_keys,
           !o->history.enabled ? "off" : o->history.path ? o->history.path : "$SPOKE_HOME/task_history.db",
           o->history.sql_endpoint ? " (POST /v1/sql on)" : "");
    return APP_EXIT_OK;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "spoke: serve: %s\n" SERVE_USAGE, msg);
    return APP_EXIT_USAGE;
}

int cmd_serve(int argc, char **argv)
{
    const char *config = NULL, *host = NULL, *model = NULL, *history = NULL;
    int64_t port = -1;
    bool no_history = false, insecure = false, check_only = false;
    const char *keys[16];
    size_t n_keys = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && has_val)
            config = argv[++i];
        else if (!strcmp(a, "--host") && has_val)
            host = argv[++i];
        else if ((!strcmp(a, "--port") || !strcmp(a, "-p")) && has_val) {
            if (!sp_parse_i64(argv[++i], 0, 65535, &port))
                return usage_error("--port must be 0..65535 (0 = any free port)");
        } else if ((!strcmp(a, "--model") || !strcmp(a, "-m")) && has_val)
            model = argv[++i];
        else if (!strcmp(a, "--history") && has_val)
            history = argv[++i];
        else if (!strcmp(a, "--no-history"))
            no_history = true;
        else if (!strcmp(a, "--api-key") && has_val) {
            if (n_keys == SP_ARRAY_LEN(keys))
                return usage_error("at most 16 --api-key options");
            keys[n_keys++] = argv[++i];
        } else if (!strcmp(a, "--insecure-no-auth"))
            insecure = true;
        else if (!strcmp(a, "--check-config"))
            check_only = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf(SERVE_USAGE
                   "Serves an OpenAI-compatible API (default http://127.0.0.1:8090). With no config and\n"
                   "no --model it serves the bundled demo model models/stories260K.gguf.\n"
                   "API keys (server.api_keys, --api-key, SPOKE_API_KEY) make every route except /health\n"
                   "and /v1/ready require 'Authorization: Bearer KEY'. A --host other than loopback needs\n"
                   "keys, or --insecure-no-auth. --check-config reads the config (and the variables\n"
                   "it names), prints a summary and exits: 0 when it would serve, 2 when not.\n");
            return APP_EXIT_OK;
        } else {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%.100s'", a);
            return usage_error(msg);
        }
    }
    json_set_alloc_funcs(sp_malloc, sp_free);
#ifdef M_ARENA_MAX
    /* One thread per connection: glibc would give each of many threads an
     * arena that keeps what a parse freed, so peak RSS grew with the number
     * of connections rather than with max_parsing. Few arenas, and large
     * blocks (bodies, prompts) mapped and unmapped instead of kept. */
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif

    struct app_config cfg;
    struct sp_err err;
    sp_err_clear(&err);
    if (config) {
        if (app_config_load(config, &cfg, &err) != SP_OK) {
            app_config_free(&cfg);
            return app_fail("serve", &err);
        }
    } else {
        app_config_init(&cfg);
    }
    struct server_opts *o = &cfg.server;
    if (host) {
        sp_free(o->host);
        o->host = sp_strdup(host);
    }
    if (port >= 0)
        o->port = (int)port;
    const char *env_key = getenv("SPOKE_API_KEY");
    for (size_t i = 0; i <= n_keys; i++) {
        const char *k = i < n_keys ? keys[i] : env_key;
        if (!k || (i == n_keys && !k[0]))
            continue;
        if (!k[0]) {
            app_config_free(&cfg);
            return usage_error("--api-key must not be empty");
        }
        if (server_strlist_add(&o->auth.api_keys, &o->auth.n_api_keys, k) != SP_OK) {
            app_config_free(&cfg);
            return APP_EXIT_MEMORY;
        }
    }
    if (insecure)
        o->auth.insecure_no_auth = true;
    if (check_only) {
        int rc = check_config(o, model);
        app_config_free(&cfg);
        return rc;
    }
    char demo[PATH_MAX];
    const char *model_path = model;
    if (!model_path && o->n_models == 0) {
        if (!find_demo_model(demo, sizeof demo)) {
            fprintf(stderr, "spoke: serve: no models configured and the demo model models/stories260K.gguf was not "
                            "found; pass -c spoke.yaml or --model FILE.gguf\n");
            app_config_free(&cfg);
            return APP_EXIT_NOT_FOUND;
        }
        model_path = demo;
    }
    if (model_path) {
        /* --model adds a model (named after the file) in front of the configured ones */
        struct server_model_spec *ms = sp_calloc(o->n_models + 1, sizeof *ms);
        if (!ms) {
            app_config_free(&cfg);
            return APP_EXIT_MEMORY;
        }
        server_model_spec_default(&ms[0]);
        ms[0].name = model_name_from_path(model_path);
        struct stat st;
        bool local = stat(model_path, &st) == 0;
        struct sp_buf from = {0};
        if (sp_buf_printf(&from, "%s%s", local ? "file:" : "", model_path) != 0) {
            sp_free(ms);
            app_config_free(&cfg);
            return APP_EXIT_MEMORY;
        }
        ms[0].from = sp_buf_take(&from);
        for (size_t i = 0; i < o->n_models; i++)
            ms[i + 1] = o->models[i];
        sp_free(o->models);
        o->models = ms;
        o->n_models++;
    }
    if (no_history) {
        o->history.enabled = false;
    } else if (history) {
        sp_free(o->history.path);
        o->history.path = sp_strdup(history);
    } else if (!o->history.path) {
        o->history.path = default_history_path();
        if (!o->history.path)
            LOG_WARN("serve", "cannot create the task history directory; task history disabled");
    }
    o->resolve = resolve_model;
    o->pull = pull_model;

    /* signals: handled by sigwait on this thread; every thread created from
     * here on inherits the blocked mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* a served .gguf truncated or rewritten underneath must not kill the
     * server (SIGBUS): the model goes to error instead (gguf.h) */
    if (gg_guard_install(&err) != SP_OK)
        LOG_WARN("serve", "%s: a model file changed underneath will crash the server", err.msg);
    struct server *srv = NULL;
    if (server_new(o, &srv, &err) != SP_OK || server_start(srv, &err) != SP_OK) {
        server_free(srv);
        app_config_free(&cfg);
        return app_fail("serve", &err);
    }
    const char *h = o->host ? o->host : "127.0.0.1";
    bool v6 = strchr(h, ':') != NULL;
    char url[320];
    snprintf(url, sizeof url, "http://%s%s%s:%d", v6 ? "[" : "", h, v6 ? "]" : "", server_port(srv));
    printf("spoke: listening on %s\n", url);
    printf("spoke: models:");
    for (size_t i = 0; i < o->n_models; i++)
        printf(" %s", o->models[i].name);
    printf("\n");
    if (o->history.enabled && o->history.path)
        printf("spoke: task history: %s (query with: spoke sql \"SELECT * FROM task_history\")\n", o->history.path);
    if (o->auth.n_api_keys)
        printf("spoke: API keys: %zu (send Authorization: Bearer KEY)\n", o->auth.n_api_keys);
    printf("try:\n  curl %s/v1/chat/completions -H 'Content-Type: application/json' %s\\\n"
           "    -d '{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}]}'\n",
           url, o->auth.n_api_keys ? "-H \"Authorization: Bearer $SPOKE_API_KEY\" " : "",
           o->n_models ? o->models[0].name : "MODEL");
    fflush(stdout);

    int sig = 0;
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            LOG_INFO("serve", "SIGHUP received: reloading models that are in error or whose file changed");
            server_reload(srv);
            continue;
        }
        break;
    }
    LOG_INFO("serve", "%s received: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_shutdown(srv);
    server_free(srv);
    app_config_free(&cfg);
    printf("spoke: stopped\n");
    return APP_EXIT_OK;
}
