/* allocsweep.c - allocation-failure sweeps of every parser, for
 * `make reliability` (tools/reliability.py; not part of ctest).
 *
 * For each parser and each input of its seed corpus (tests/fuzz/corpus/<h>/),
 * the n-th allocation is made to fail (sp_mem_fail_after), for n = 1, 2, ...
 * until a run completes without reaching the failure; once with every later
 * allocation failing too (sticky) and once with only the n-th failing. Each
 * run must return SP_OK or SP_ERR_NOMEM (a parser that turns an allocation
 * failure into another status, or succeeds with a partial result, is a
 * failure), and must give back every byte it allocated (sp_mem_in_use). A
 * crash ends the program (the runner counts it). Prints one line per parser:
 *   SWEEP <parser> <inputs> <runs> <failures> <worst_ms>
 * Usage: allocsweep SRC_DIR [MAX_RUNS_PER_INPUT [PARSER [plain-json]]]: PARSER
 * limits the run to one parser (the runner runs each in its own process, so a
 * crash is charged to its parser); plain-json leaves jansson on the C
 * allocator (spoke serve routes it through sp_malloc, as the default here
 * does). ALLOCSWEEP_VERBOSE=1 prints each injected failure before the run. */
#include "app/config.h"
#include "cache/cache.h"
#include "gguf/gguf.h"
#include "hub/hub.h"
#include "server/server_req.h"
#include "tok/tok.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum sp_status (*parse_fn)(const char *data, size_t n);

static struct tok_vocab *g_vocab;

static enum sp_status p_gguf(const char *d, size_t n)
{
    struct gg_file *f = NULL;
    enum sp_status st = gg_open_memory(d, n, &f, NULL);
    if (st == SP_OK) {
        struct tok_vocab *v = NULL;
        enum sp_status vs = tok_vocab_load(f, &v, NULL);
        tok_vocab_free(v);
        if (vs == SP_ERR_NOMEM)
            st = vs;
    }
    gg_close(f);
    return st == SP_ERR_NOMEM || st == SP_OK ? st : SP_OK; /* a bad input is fine: not an alloc problem */
}

static enum sp_status p_request(const char *d, size_t n)
{
    struct server_opts o;
    server_opts_default(&o);
    enum sp_status worst = SP_OK;
    for (int chat = 0; chat < 2; chat++) {
        struct server_request r;
        memset(&r, 0, sizeof r);
        enum sp_status st = server_request_parse(d, n, chat != 0, &o.limits, &r, NULL);
        server_request_free(&r);
        if (st == SP_ERR_NOMEM)
            worst = st;
    }
    server_opts_clear(&o);
    return worst;
}

static enum sp_status p_hubjson(const char *d, size_t n)
{
    struct hub_revision *r = NULL;
    struct cache_meta *m = NULL;
    enum sp_status a = hub_revision_parse(d, n, &r, NULL);
    hub_revision_free(r);
    enum sp_status b = cache_meta_parse(d, n, &m, NULL);
    cache_meta_free(m);
    return a == SP_ERR_NOMEM || b == SP_ERR_NOMEM ? SP_ERR_NOMEM : SP_OK;
}

static enum sp_status p_config(const char *d, size_t n)
{
    struct app_config c;
    enum sp_status st = app_config_parse(d, n, "sweep.yaml", &c, NULL);
    app_config_free(&c);
    return st == SP_ERR_NOMEM ? st : SP_OK;
}

static enum sp_status p_modelid(const char *d, size_t n)
{
    struct hub_id id;
    enum sp_status st = hub_id_parse(d, n, &id, NULL);
    return st == SP_ERR_NOMEM ? st : SP_OK;
}

static enum sp_status p_tok(const char *d, size_t n)
{
    if (!g_vocab)
        return SP_OK;
    size_t cap = n + 8, got = 0;
    int32_t *ids = sp_malloc(cap * sizeof *ids);
    if (!ids)
        return SP_ERR_NOMEM;
    enum sp_status st = tok_encode(g_vocab, d, n, true, true, ids, cap, &got, NULL);
    if (st == SP_OK) {
        struct sp_buf out = {0};
        st = tok_decode(g_vocab, ids, got, false, &out);
        sp_buf_free(&out);
    }
    sp_free(ids);
    return st == SP_ERR_NOMEM ? st : SP_OK;
}

static const struct {
    const char *name;
    const char *corpus;
    parse_fn fn;
} parsers[] = {
    {"gguf+vocab", "fuzz_gguf", p_gguf},     {"request_json", "fuzz_request", p_request},
    {"hub_json+meta", "fuzz_hubjson", p_hubjson}, {"config_yaml", "fuzz_config", p_config},
    {"model_id", "fuzz_modelid", p_modelid}, {"tokenizer", "fuzz_tok", p_tok},
};

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct sp_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (sp_buf_append(&b, chunk, k) != SP_OK)
            break;
    fclose(f);
    *n = b.len;
    return b.data ? sp_buf_take(&b) : sp_strdup("");
}

/* One sweep of fn over data: returns failures, adds runs and the worst time. */
static int sweep(parse_fn fn, const char *data, size_t n, long max_runs, long *runs, double *worst_ms)
{
    int failures = 0;
    for (int sticky = 1; sticky >= 0; sticky--) {
        for (long k = 1; k <= max_runs; k++) {
            size_t base = sp_mem_in_use();
            uint64_t before = sp_mem_alloc_count();
            double t0 = sp_now_ms();
            if (getenv("ALLOCSWEEP_VERBOSE"))
                fprintf(stderr, "  allocation %ld fails (sticky %d)\n", k, sticky);
            sp_mem_fail_after(k, sticky);
            enum sp_status st = fn(data, n);
            sp_mem_fail_after(0, 0);
            double dt = sp_now_ms() - t0;
            uint64_t used = sp_mem_alloc_count() - before;
            (*runs)++;
            if (dt > *worst_ms)
                *worst_ms = dt;
            if (st != SP_OK && st != SP_ERR_NOMEM) {
                failures++;
                fprintf(stderr, "  status %s with allocation %ld failing\n", sp_status_name(st), k);
            }
            if (sp_mem_in_use() != base) {
                failures++;
                fprintf(stderr, "  leak of %zu bytes with allocation %ld failing (sticky %d)\n",
                        sp_mem_in_use() - base, k, sticky);
            }
            if (st == SP_OK && used < (uint64_t)k)
                break; /* the injected failure was never reached: swept */
        }
    }
    return failures;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: allocsweep SRC_DIR [MAX_RUNS_PER_INPUT]\n");
        return 2;
    }
    int64_t max_runs = 100000;
    if (argc > 2 && !sp_parse_i64(argv[2], 1, 100000000, &max_runs))
        return 2;
    const char *only = argc > 3 ? argv[3] : NULL;
    if (!(argc > 4 && !strcmp(argv[4], "plain-json")))
        json_set_alloc_funcs(sp_malloc, sp_free);
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", argv[1]);
    size_t vn = 0;
    char *vdata = read_all(path, &vn);
    struct gg_file *vf = NULL;
    if (vdata && gg_open_memory(vdata, vn, &vf, NULL) == SP_OK && tok_vocab_load(vf, &g_vocab, NULL) != SP_OK)
        g_vocab = NULL;
    int total_fail = 0;
    for (size_t p = 0; p < SP_ARRAY_LEN(parsers); p++) {
        if (only && strcmp(only, parsers[p].name) != 0)
            continue;
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", argv[1], parsers[p].corpus);
        DIR *d = opendir(path);
        long runs = 0;
        int inputs = 0, failures = 0;
        double worst = 0;
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char file[8192];
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            size_t n = 0;
            char *data = read_all(file, &n);
            if (!data)
                continue;
            inputs++;
            int f = sweep(parsers[p].fn, data, n, (long)max_runs, &runs, &worst);
            if (f)
                fprintf(stderr, "%s: %s: %d failure(s)\n", parsers[p].name, e->d_name, f);
            failures += f;
            sp_free(data);
        }
        if (d)
            closedir(d);
        printf("SWEEP %s %d %ld %d %.3f\n", parsers[p].name, inputs, runs, failures, worst);
        fflush(stdout);
        total_fail += failures;
    }
    tok_vocab_free(g_vocab);
    gg_close(vf);
    sp_free(vdata);
    return total_fail ? 1 : 0;
}
