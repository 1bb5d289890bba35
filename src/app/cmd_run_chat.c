/* cmd_run_chat.c - `spoke run MODEL` on a terminal with no prompt: an
 * interactive conversation. Each turn appends the user's message to the
 * history, renders the whole conversation with the model's chat template
 * and generates on one engine context, whose KV cache keeps the previous
 * turns (the engine reuses the cached prefix, so only the new message is
 * evaluated). When the conversation outgrows the context the oldest turns
 * are dropped (the system message stays).
 * Input: one line per message; a message that starts with """ continues
 * until a line that ends with """. Commands: /bye, /clear, /set PARAM VALUE
 * (temperature, top_k, top_p, min_p, repeat_penalty, seed, num_predict,
 * system, verbose, quiet), /system TEXT, /help.
 * Ctrl-C stops the reply being generated (the partial reply stays in the
 * history) and, at the prompt, only prints a hint; Ctrl-D or /bye ends.
 * With verbose, each reply is followed by its token counts and speeds. */
#include "app/run_chat.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define CHAT_MAX_INPUT (1u << 20)

static volatile sig_atomic_t chat_sigint;

static void chat_on_sigint(int sig)
{
    SP_UNUSED(sig);
    chat_sigint = 1;
}

struct chat_msg {
    char *role;    /* static string: "system" | "user" | "assistant" */
    char *content; /* sp_malloc'd */
};

struct chat {
    struct engine_model *m;
    struct engine_ctx *c;
    struct run_chat_opts o;
    struct chat_msg *msgs;
    size_t n, cap;
    char *system; /* sp_malloc'd or NULL */
};

static void chat_clear(struct chat *ch)
{
    for (size_t i = 0; i < ch->n; i++)
        sp_free(ch->msgs[i].content);
    ch->n = 0;
}

static enum sp_status chat_push(struct chat *ch, const char *role, const char *text, size_t len)
{
    if (ch->n == ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 16;
        struct chat_msg *nm = sp_realloc(ch->msgs, cap * sizeof *nm);
        if (!nm)
            return SP_ERR_NOMEM;
        ch->msgs = nm;
        ch->cap = cap;
    }
    char *copy = sp_strndup(text, len);
    if (!copy)
        return SP_ERR_NOMEM;
    ch->msgs[ch->n].role = (char *)role;
    ch->msgs[ch->n].content = copy;
    ch->n++;
    return SP_OK;
}

/* drop message i */
static void chat_drop(struct chat *ch, size_t i)
{
    sp_free(ch->msgs[i].content);
    memmove(&ch->msgs[i], &ch->msgs[i + 1], (ch->n - i - 1) * sizeof *ch->msgs);
    ch->n--;
}

/* One line from stdin into line (without the newline): 1 = a line, 0 = end
 * of input, -1 = interrupted by Ctrl-C. */
static int read_line(struct sp_buf *line)
{
    sp_buf_reset(line);
    char chunk[4096];
    for (;;) {
        chat_sigint = 0;
        if (!fgets(chunk, sizeof chunk, stdin)) {
            if (ferror(stdin) && (errno == EINTR || chat_sigint)) {
                clearerr(stdin);
                return -1;
            }
            return line->len ? 1 : 0;
        }
        size_t n = strlen(chunk);
        bool nl = n && chunk[n - 1] == '\n';
        if (sp_buf_append(line, chunk, nl ? n - 1 : n) != 0)
            return 0;
        if (nl)
            return 1;
    }
}

static bool ends_with_quotes(const char *s, size_t n) { return n >= 3 && !memcmp(s + n - 3, "\"\"\"", 3); }

/* Read one message (multi-line between """ ... """): 1, 0 (EOF), -1 (^C). */
static int read_message(struct sp_buf *msg)
{
    struct sp_buf line = {0};
    line.limit = CHAT_MAX_INPUT;
    sp_buf_reset(msg);
    fputs(">>> ", stdout);
    fflush(stdout);
    int rc = read_line(&line);
    if (rc <= 0)
        goto out;
    const char *t = line.data ? line.data : "";
    if (strncmp(t, "\"\"\"", 3) != 0) {
        rc = sp_buf_append(msg, t, line.len) == 0 ? 1 : 0;
        goto out;
    }
    /* """ multi-line: text after the opening quotes, up to a line ending in """ */
    t += 3;
    size_t n = line.len - 3;
    for (;;) {
        bool last = ends_with_quotes(t, n);
        if (sp_buf_append(msg, t, last ? n - 3 : n) != 0) {
            rc = 0;
            goto out;
        }
        if (last)
            break;
        if (sp_buf_appends(msg, "\n") != 0) {
            rc = 0;
            goto out;
        }
        fputs("... ", stdout);
        fflush(stdout);
        rc = read_line(&line);
        if (rc <= 0)
            goto out;
        t = line.data ? line.data : "";
        n = line.len;
    }
    rc = 1;
out:
    sp_buf_free(&line);
    return rc;
}

struct reply {
    struct sp_buf text;
};

static bool chat_on_token(void *ud, const struct engine_token_event *ev)
{
    struct reply *r = ud;
    if (ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
        if (sp_buf_append(&r->text, ev->text, ev->text_len) != 0)
            return false;
    }
    return !chat_sigint;
}

static void print_help(void)
{
    printf("Commands:\n"
           "  /set temperature T | top_k K | top_p P | min_p P | repeat_penalty R | seed S | num_predict N\n"
           "  /set system TEXT   (or /system TEXT) set the system message\n"
           "  /set verbose       show token counts and tokens/s after each reply (/set quiet: stop)\n"
           "  /clear             forget the conversation (keeps the system message)\n"
           "  /bye               exit (also Ctrl-D)\n"
           "Ctrl-C stops a reply. Start a message with \"\"\" to write several lines, end it with \"\"\".\n");
}

static bool parse_float(const char *v, float lo, float hi, float *out)
{
    double d;
    if (!v || !sp_parse_double(v, &d) || d < lo || d > hi)
        return false;
    *out = (float)d;
    return true;
}

static enum sp_status set_system(struct chat *ch, const char *text)
{
    sp_free(ch->system);
    ch->system = text && text[0] ? sp_strdup(text) : NULL;
    if (text && text[0] && !ch->system)
        return SP_ERR_NOMEM;
    if (ch->n && !strcmp(ch->msgs[0].role, "system"))
        chat_drop(ch, 0);
    if (!ch->system)
        return SP_OK;
    /* insert in front */
    enum sp_status st = chat_push(ch, "system", ch->system, strlen(ch->system));
    if (st != SP_OK)
        return st;
    struct chat_msg sys = ch->msgs[ch->n - 1];
    memmove(&ch->msgs[1], &ch->msgs[0], (ch->n - 1) * sizeof *ch->msgs);
    ch->msgs[0] = sys;
    return SP_OK;
}

/* A /command. Returns false when the chat should end. */
static bool run_command(struct chat *ch, char *cmd)
{
    char *arg = strchr(cmd, ' ');
    if (arg) {
        *arg++ = 0;
        while (*arg == ' ')
            arg++;
    }
    if (!strcmp(cmd, "/bye") || !strcmp(cmd, "/exit"))
        return false;
    if (!strcmp(cmd, "/help") || !strcmp(cmd, "/?")) {
        print_help();
    } else if (!strcmp(cmd, "/clear")) {
        chat_clear(ch);
        if (ch->system && chat_push(ch, "system", ch->system, strlen(ch->system)) != SP_OK)
            return false;
        printf("Cleared the conversation.\n");
    } else if (!strcmp(cmd, "/system")) {
        if (set_system(ch, arg ? arg : "") != SP_OK)
            return false;
        printf("Set the system message.\n");
    } else if (!strcmp(cmd, "/set")) {
        char *val = arg ? strchr(arg, ' ') : NULL;
        if (val) {
            *val++ = 0;
            while (*val == ' ')
                val++;
        }
        const char *p = arg ? arg : "";
        struct engine_sampling *s = &ch->o.sampling;
        bool ok = true;
        int64_t iv;
        uint64_t uv;
        if (!strcmp(p, "verbose") || !strcmp(p, "quiet")) {
            ch->o.verbose = p[0] == 'v';
            printf("Set '%s' mode.\n", p);
            return true;
        } else if (!strcmp(p, "system")) {
            if (set_system(ch, val ? val : "") != SP_OK)
                return false;
            printf("Set the system message.\n");
            return true;
        } else if (!strcmp(p, "temperature")) {
            ok = parse_float(val, 0, 100, &s->temperature);
        } else if (!strcmp(p, "top_p")) {
            ok = parse_float(val, 0, 1, &s->top_p);
        } else if (!strcmp(p, "min_p")) {
            ok = parse_float(val, 0, 1, &s->min_p);
        } else if (!strcmp(p, "repeat_penalty")) {
            ok = parse_float(val, 0, 10, &s->repeat_penalty);
        } else if (!strcmp(p, "top_k")) {
            ok = val && sp_parse_i64(val, 0, 1 << 20, &iv);
            if (ok)
                s->top_k = (int)iv;
        } else if (!strcmp(p, "seed")) {
            ok = val && sp_parse_u64(val, UINT64_MAX, &uv);
            if (ok)
                s->seed = uv;
        } else if (!strcmp(p, "num_predict")) {
            ok = val && sp_parse_i64(val, 1, 1 << 24, &iv);
            if (ok)
                ch->o.max_tokens = (int)iv;
        } else {
            printf("Unknown parameter '%s' (see /help).\n", p);
            return true;
        }
        if (ok)
            printf("Set parameter '%s' to '%s'.\n", p, val);
        else
            printf("Invalid value for '%s': '%s'.\n", p, val ? val : "");
    } else {
        printf("Unknown command '%s'. Type /help for the commands.\n", cmd);
    }
    return true;
}

/* One turn: the history ends with the user's message. */
static void chat_turn(struct chat *ch)
{
    struct reply r = {{0}};
    r.text.limit = 64u << 20;
    char *prompt = NULL;
    struct sp_err err;
    for (;;) {
        sp_err_clear(&err);
        sp_free(prompt);
        prompt = NULL;
        struct engine_chat_msg *em = sp_calloc(ch->n, sizeof *em);
        if (!em) {
            fprintf(stderr, "spoke: out of memory\n");
            goto out;
        }
        for (size_t i = 0; i < ch->n; i++)
            em[i] = (struct engine_chat_msg){ch->msgs[i].role, ch->msgs[i].content};
        enum sp_status st = engine_chat_render(ch->m, em, ch->n, true, &prompt, &err);
        sp_free(em);
        if (st != SP_OK) {
            fprintf(stderr, "spoke: %s\n", err.msg);
            chat_drop(ch, ch->n - 1);
            goto out;
        }
        struct engine_gen_params gp;
        memset(&gp, 0, sizeof gp);
        gp.prompt = prompt;
        gp.add_bos = true;
        gp.parse_special = true;
        gp.max_tokens = ch->o.max_tokens;
        gp.sampling = ch->o.sampling;
        struct engine_gen_result res;
        chat_sigint = 0;
        st = engine_generate(ch->c, &gp, chat_on_token, &r, &res, &err);
        if (st == SP_ERR_LIMIT) {
            /* the conversation outgrew the context: forget the oldest turn */
            size_t first = ch->n && !strcmp(ch->msgs[0].role, "system") ? 1 : 0;
            if (ch->n - first <= 1) {
                fprintf(stderr, "spoke: %s\n", err.msg);
                chat_drop(ch, ch->n - 1);
                goto out;
            }
            chat_drop(ch, first);
            if (ch->n - first > 1 && strcmp(ch->msgs[first].role, "user") != 0)
                chat_drop(ch, first);
            continue;
        }
        if (st != SP_OK) {
            fprintf(stderr, "\nspoke: %s\n", err.msg);
            chat_drop(ch, ch->n - 1);
            goto out;
        }
        bool stopped = res.finish == ENGINE_FINISH_CANCELLED;
        printf(stopped ? " [stopped]\n\n" : "\n\n");
        fflush(stdout);
        if (chat_push(ch, "assistant", r.text.data ? r.text.data : "", r.text.len) != SP_OK)
            fprintf(stderr, "spoke: out of memory keeping the reply\n");
        if (ch->o.verbose) {
            int n_dec = res.n_completion_tokens > 1 ? res.n_completion_tokens - 1 : 0;
            fprintf(stderr,
                    "prompt: %d tokens, %.1f ms, %.1f tokens/s | reply: %d tokens, %.1f tokens/s | "
                    "first token after %.0f ms\n\n",
                    res.n_prompt_tokens, res.prompt_ms,
                    res.prompt_ms > 0 ? res.n_prompt_tokens * 1000.0 / res.prompt_ms : 0.0,
                    res.n_completion_tokens, res.decode_ms > 0 ? n_dec * 1000.0 / res.decode_ms : 0.0,
                    res.ttft_ms);
        }
        break;
    }
out:
    sp_free(prompt);
    sp_buf_free(&r.text);
}

int run_chat(struct engine_model *m, struct engine_ctx *c, const struct run_chat_opts *o)
{
    struct chat ch;
    memset(&ch, 0, sizeof ch);
    ch.m = m;
    ch.c = c;
    ch.o = *o;
    struct sp_buf msg = {0};
    msg.limit = CHAT_MAX_INPUT;
    int exit_code = APP_EXIT_OK;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = chat_on_sigint; /* no SA_RESTART: Ctrl-C interrupts a read */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    if (o->system && set_system(&ch, o->system) != SP_OK) {
        exit_code = APP_EXIT_MEMORY;
        goto out;
    }
    struct engine_model_info info;
    engine_model_get_info(m, &info);
    fprintf(stderr, "spoke: chatting with %s (context %d tokens). Type /help for commands, /bye to exit.\n",
            info.name, info.n_ctx);
    for (;;) {
        int rc = read_message(&msg);
        if (rc == 0) {
            fputc('\n', stdout);
            break;
        }
        if (rc < 0) {
            printf("\n(Ctrl-C stops a reply; use /bye or Ctrl-D to exit)\n");
            continue;
        }
        char *text = msg.data ? msg.data : "";
        if (!msg.len)
            continue;
        if (text[0] == '/' && !strchr(text, '\n')) {
            if (!run_command(&ch, text))
                break;
            continue;
        }
        if (chat_push(&ch, "user", text, msg.len) != SP_OK) {
            exit_code = APP_EXIT_MEMORY;
            break;
        }
        chat_turn(&ch);
    }
out:
    sigaction(SIGINT, &old, NULL);
    chat_clear(&ch);
    sp_free(ch.msgs);
    sp_free(ch.system);
    sp_buf_free(&msg);
    return exit_code;
}
