/* cmd_run.c - `spoke run MODEL|FILE.gguf ["prompt"] [options]`: one-shot
 * generation in the terminal. Loads the model through the engine, streams the
 * generated text to stdout as it is produced, and prints the statistics
 * (load ms, prompt tokens/s, decode tokens/s) to stderr at the end. The prompt
 * comes from the argument or, when absent, from piped stdin; with no prompt
 * and stdin a terminal it starts a conversation (cmd_run_chat.c). Ctrl-C
 * stops the generation at the next token (exit 130). */
#include "app/app.h"
#include "app/pull.h"
#include "app/run_chat.h"
#include "engine/engine.h"
#include "obs/log.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t run_interrupted;

static void run_on_sigint(int sig)
{
    SP_UNUSED(sig);
    run_interrupted = 1;
}

static void run_usage(FILE *fp)
{
    fprintf(fp,
            "usage: spoke run MODEL|FILE.gguf [\"prompt\"] [options]\n"
            "  -n, --max-tokens N   tokens to generate (default 256)\n"
            "  --temp T             temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K            top-k (default 40; 0 = off)\n"
            "  --top-p P            top-p (default 0.95)\n"
            "  --min-p P            min-p (default 0.05)\n"
            "  --repeat-penalty R   repetition penalty (default 1.0 = off)\n"
            "  --seed S             RNG seed (default 0)\n"
            "  --chat               wrap the prompt as a user message in the model's chat template\n"
            "  --system TEXT        system message (with --chat)\n"
            "  -t, --threads T      threads (default: all CPUs)\n"
            "  -c, --ctx N          context size (default min(trained, 4096))\n"
            "  --kv-f32             keep the KV cache in F32 (default F16)\n"
            "  --no-mem-check       load even if the model may not fit in memory\n"
            "  --verbose            (conversation) token counts and tokens/s after each reply\n"
            "The prompt is read from stdin when not given; on a terminal, with no prompt,\n"
            "spoke run starts a conversation (/help lists its commands, /bye ends it).\n");
}

struct run_args {
    const char *model, *prompt, *system;
    int max_tokens, threads, ctx;
    bool chat, kv_f32, no_mem_check, verbose, max_tokens_set;
    struct engine_sampling sampling;
};

static bool arg_int(const char *s, int64_t lo, int64_t hi, int *out)
{
    int64_t v;
    if (!s || !sp_parse_i64(s, lo, hi, &v))
        return false;
    *out = (int)v;
    return true;
}

static bool arg_float(const char *s, float *out)
{
    double v;
    if (!s || !sp_parse_double(s, &v))
        return false;
    *out = (float)v;
    return true;
}

/* Returns 0 on success, else an exit code. */
static int run_parse(int argc, char **argv, struct run_args *a)
{
    memset(a, 0, sizeof(*a));
    a->max_tokens = 256;
    engine_sampling_default(&a->sampling);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true, used = true;
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            run_usage(stdout);
            return -1;
        } else if (strcmp(o, "-n") == 0 || strcmp(o, "--max-tokens") == 0) {
            ok = arg_int(v, 1, 1 << 24, &a->max_tokens);
            a->max_tokens_set = true;
        } else if (strcmp(o, "--temp") == 0) {
            ok = arg_float(v, &a->sampling.temperature);
        } else if (strcmp(o, "--top-k") == 0) {
            ok = arg_int(v, 0, 1 << 24, &a->sampling.top_k);
        } else if (strcmp(o, "--top-p") == 0) {
            ok = arg_float(v, &a->sampling.top_p);
        } else if (strcmp(o, "--min-p") == 0) {
            ok = arg_float(v, &a->sampling.min_p);
        } else if (strcmp(o, "--repeat-penalty") == 0) {
            ok = arg_float(v, &a->sampling.repeat_penalty);
        } else if (strcmp(o, "--seed") == 0) {
            uint64_t s;
            ok = v && sp_parse_u64(v, UINT64_MAX, &s);
            a->sampling.seed = ok ? s : 0;
        } else if (strcmp(o, "-t") == 0 || strcmp(o, "--threads") == 0) {
            ok = arg_int(v, 1, 256, &a->threads);
        } else if (strcmp(o, "-c") == 0 || strcmp(o, "--ctx") == 0) {
            ok = arg_int(v, 1, 1 << 24, &a->ctx);
        } else if (strcmp(o, "--system") == 0) {
            ok = v != NULL;
            a->system = v;
        } else {
            used = false;
            if (strcmp(o, "--chat") == 0) {
                a->chat = true;
            } else if (strcmp(o, "--kv-f32") == 0) {
                a->kv_f32 = true;
            } else if (strcmp(o, "--verbose") == 0 || strcmp(o, "-v") == 0) {
                a->verbose = true;
            } else if (strcmp(o, "--no-mem-check") == 0) {
                a->no_mem_check = true;
            } else if (o[0] == '-' && o[1] != 0) {
                fprintf(stderr, "spoke: run: unknown option %s (see spoke run --help)\n", o);
                return APP_EXIT_USAGE;
            } else if (!a->model) {
                a->model = o;
            } else if (!a->prompt) {
                a->prompt = o;
            } else {
                fprintf(stderr, "spoke: run: unexpected argument '%s' (quote the prompt)\n", o);
                return APP_EXIT_USAGE;
            }
        }
        if (!ok) {
            fprintf(stderr, "spoke: run: option %s needs a valid value\n", o);
            return APP_EXIT_USAGE;
        }
        if (used)
            i++;
    }
    if (!a->model) {
        run_usage(stderr);
        return APP_EXIT_USAGE;
    }
    return 0;
}

static char *read_stdin(void)
{
    struct sp_buf b = {0};
    b.limit = 16u << 20;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (sp_buf_append(&b, chunk, n) != SP_OK)
            break;
    if (!b.data && sp_buf_append(&b, "", 0) != SP_OK)
        return NULL;
    return sp_buf_take(&b);
}

static bool run_on_token(void *ud, const struct engine_token_event *ev)
{
    SP_UNUSED(ud);
    if (ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
    }
    return !run_interrupted;
}

/* Resolve MODEL to a GGUF path: a file, a cached name or a Hub id (pulled on
 * first use, through the hub's app_model_locate). */
static enum sp_status run_locate(const char *spec, char **path, struct sp_err *err)
{
    struct app_pulled pulled;
    memset(&pulled, 0, sizeof(pulled));
    enum sp_status result = app_model_locate(spec, NULL, &pulled, err);
    if (result == SP_OK) {
        *path = pulled.path;
        pulled.path = NULL;
        if (!*path)
            result = sp_err_set(err, SP_ERR_NOT_FOUND, "model '%s' has no GGUF file", spec);
    }
    app_pulled_free(&pulled);
    return result;
}

int cmd_run(int argc, char **argv)
{
    struct run_args a;
    int rc = run_parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? APP_EXIT_OK : rc;
    struct sp_err err = {0};
    char *path = NULL, *stdin_prompt = NULL, *rendered = NULL;
    struct engine_model *m = NULL;
    struct engine_ctx *c = NULL;
    int exit_code = APP_EXIT_OK;
    if (run_locate(a.model, &path, &err) != SP_OK)
        goto fail;
    bool converse = !a.prompt && isatty(0);
    if (!a.prompt && !converse) {
        stdin_prompt = read_stdin();
        a.prompt = stdin_prompt ? stdin_prompt : "";
    }
    struct engine_load_opts lo = {.path = path, .n_ctx = a.ctx, .n_threads = a.threads, .n_parallel = 1,
                                  .kv_f32 = a.kv_f32, .skip_mem_check = a.no_mem_check};
    if (engine_model_load(&lo, &m, &err) != SP_OK)
        goto fail;
    if (engine_ctx_new(m, &c, &err) != SP_OK)
        goto fail;
    if (converse) {
        struct run_chat_opts co = {.system = a.system,
                                   .max_tokens = a.max_tokens_set ? a.max_tokens : 1 << 24,
                                   .verbose = a.verbose,
                                   .sampling = a.sampling};
        exit_code = run_chat(m, c, &co);
        goto out;
    }
    struct engine_gen_params gp;
    memset(&gp, 0, sizeof(gp));
    gp.prompt = a.prompt;
    gp.add_bos = true;
    gp.max_tokens = a.max_tokens;
    gp.sampling = a.sampling;
    if (a.chat) {
        struct engine_chat_msg msgs[2];
        size_t n = 0;
        if (a.system)
            msgs[n++] = (struct engine_chat_msg){"system", a.system};
        msgs[n++] = (struct engine_chat_msg){"user", a.prompt};
        if (engine_chat_render(m, msgs, n, true, &rendered, &err) != SP_OK)
            goto fail;
        gp.prompt = rendered;
        gp.parse_special = true;
    }
    run_interrupted = 0;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = run_on_sigint;
    sigaction(SIGINT, &sa, &old);
    struct engine_gen_result res;
    enum sp_status st = engine_generate(c, &gp, run_on_token, NULL, &res, &err);
    sigaction(SIGINT, &old, NULL);
    if (st != SP_OK)
        goto fail;
    fputc('\n', stdout);
    fflush(stdout);
    struct engine_model_info info;
    engine_model_get_info(m, &info);
    double pps = res.prompt_ms > 0 ? res.n_prompt_tokens * 1000.0 / res.prompt_ms : 0;
    int n_dec = res.n_completion_tokens > 1 ? res.n_completion_tokens - 1 : 0;
    double dps = res.decode_ms > 0 ? n_dec * 1000.0 / res.decode_ms : 0;
    fprintf(stderr,
            "\nspoke: %s | load %.0f ms | prompt %d tokens, %.1f ms, %.1f t/s | decode %d tokens, %.1f ms, %.1f t/s "
            "| finish %s\n",
            info.name, info.load_ms, res.n_prompt_tokens, res.prompt_ms, pps, res.n_completion_tokens,
            res.decode_ms, dps,
            res.finish == ENGINE_FINISH_STOP ? "stop" : res.finish == ENGINE_FINISH_LENGTH ? "length" : "cancelled");
    if (res.finish == ENGINE_FINISH_CANCELLED)
        exit_code = APP_EXIT_INTERRUPTED;
    goto out;
fail:
    exit_code = app_fail("run", &err);
out:
    engine_ctx_free(c);
    engine_model_free(m);
    sp_free(rendered);
    sp_free(stdin_prompt);
    sp_free(path);
    return exit_code;
}
