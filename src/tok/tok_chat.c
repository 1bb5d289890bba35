/* tok_chat.c - chat templates: recognises the family of a Jinja
 * tokenizer.chat_template by distinctive markers (as llama.cpp's
 * llm_chat_detect_template does) and renders messages in that family's
 * format with plain string building (no Jinja interpreter).
 *
 * Contents are trimmed where the reference templates trim them (llama2,
 * llama3, gemma). The rendered prompt never starts with BOS: tokenize it with add_special
 * (which adds BOS when the vocab wants it) and parse_special (so the markers
 * become control tokens). qwen3 is chatml whose assistant turns are split at
 * </think>: turns before the last user message keep only the answer, later
 * ones (and the last) are written as <think>\nreasoning\n</think>\n\nanswer,
 * as Qwen3's template does; tool results go into a user turn as
 * <tool_response> blocks. Templates that repeat BOS/EOS inside the history
 * (llama2, mistral, zephyr) use bos_text/eos_text. */
#include <string.h>

#include "tok/tok.h"

static const char *const chat_names[] = {
    [TOK_CHAT_CHATML] = "chatml", [TOK_CHAT_LLAMA2] = "llama2", [TOK_CHAT_LLAMA3] = "llama3",
    [TOK_CHAT_MISTRAL] = "mistral", [TOK_CHAT_ZEPHYR] = "zephyr", [TOK_CHAT_PHI3] = "phi3",
    [TOK_CHAT_GEMMA] = "gemma", [TOK_CHAT_QWEN3] = "qwen3", [TOK_CHAT_PHI4] = "phi4",
};

const char *tok_chat_family_name(enum tok_chat_family f)
{
    if ((size_t)f < SP_ARRAY_LEN(chat_names))
        return chat_names[f];
    return "chatml";
}

enum tok_chat_family tok_chat_detect(const char *t)
{
    if (!t || !*t)
        return TOK_CHAT_CHATML;
    for (size_t i = 0; i < SP_ARRAY_LEN(chat_names); i++)
        if (strcmp(t, chat_names[i]) == 0)
            return (enum tok_chat_family)i;
    if (strstr(t, "<|im_start|>"))
        return strstr(t, "<|im_sep|>") ? TOK_CHAT_PHI4 : strstr(t, "<think>") ? TOK_CHAT_QWEN3 : TOK_CHAT_CHATML;
    if (strstr(t, "<|start_header_id|>") && strstr(t, "<|end_header_id|>"))
        return TOK_CHAT_LLAMA3;
    if (strstr(t, "[INST]"))
        return strstr(t, "<<SYS>>") ? TOK_CHAT_LLAMA2 : TOK_CHAT_MISTRAL;
    if (strstr(t, "<start_of_turn>"))
        return TOK_CHAT_GEMMA;
    if (strstr(t, "<|assistant|>") && strstr(t, "<|end|>"))
        return TOK_CHAT_PHI3;
    if (strstr(t, "<|user|>"))
        return TOK_CHAT_ZEPHYR;
    return TOK_CHAT_CHATML;
}

enum chat_role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_OTHER };

static enum chat_role chat_role_of(const char *r)
{
    if (strcmp(r, "system") == 0)
        return ROLE_SYSTEM;
    if (strcmp(r, "user") == 0)
        return ROLE_USER;
    if (strcmp(r, "assistant") == 0)
        return ROLE_ASSISTANT;
    return ROLE_OTHER;
}

/* Roles are short lowercase identifiers (they are written into the prompt). */
static bool chat_role_ok(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || r[i] == '_'))
            return false;
    return true;
}

#define PUT(s)                                  \
    do {                                        \
        if (sp_buf_appends(out, (s)) != 0)      \
            goto nomem;                         \
    } while (0)

/* Append s without leading/trailing ASCII whitespace (Jinja's trim / strip(),
 * which the llama2, llama3 and gemma templates apply to message contents). */
#define PUT_TRIM(s)                                         \
    do {                                                    \
        const char *_b = (s), *_e = _b + strlen(_b);        \
        while (_b < _e && chat_is_space(*_b))               \
            _b++;                                           \
        while (_e > _b && chat_is_space(_e[-1]))            \
            _e--;                                           \
        if (sp_buf_append(out, _b, (size_t)(_e - _b)) != 0) \
            goto nomem;                                     \
    } while (0)

static bool chat_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* One qwen3 assistant turn: content split at the last </think> into the
 * reasoning (after the <think> before it, newlines stripped) and the answer
 * (leading newlines stripped); the reasoning is kept only for turns after
 * the last user message that are the last turn or have reasoning. */
static int qwen3_assistant(const char *c, bool after_last_user, bool last, struct sp_buf *out)
{
    const char *end = NULL;
    for (const char *p = strstr(c, "</think>"); p; p = strstr(p + 1, "</think>"))
        end = p;
    const char *ans = c, *rb = c, *re = c;
    if (end) {
        ans = end + strlen("</think>");
        rb = c;
        for (const char *p = strstr(c, "<think>"); p && p < end; p = strstr(p + 1, "<think>"))
            rb = p + strlen("<think>");
        re = end;
        while (rb < re && *rb == '\n')
            rb++;
        while (re > rb && re[-1] == '\n')
            re--;
    }
    while (*ans == '\n')
        ans++;
    if (after_last_user && (last || re > rb)) {
        if (sp_buf_appends(out, "<think>\n") != 0 || sp_buf_append(out, rb, (size_t)(re - rb)) != 0 ||
            sp_buf_appends(out, "\n</think>\n\n") != 0)
            return -1;
    }
    return sp_buf_appends(out, ans);
}

enum sp_status tok_chat_render(enum tok_chat_family f, const struct tok_chat_msg *msgs, size_t n,
                               bool add_generation_prompt, const char *bos_text,
                               const char *eos_text, struct sp_buf *out, struct sp_err *err)
{
    if (!out || (!msgs && n))
        return sp_err_set(err, SP_ERR_INVALID, "tok_chat_render: NULL argument");
    const char *bos = bos_text ? bos_text : "";
    const char *eos = eos_text ? eos_text : "";
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return sp_err_set(err, SP_ERR_INVALID, "message %zu has no role or content", i);
        if (!chat_role_ok(msgs[i].role))
            return sp_err_set(err, SP_ERR_INVALID,
                              "message %zu: role must be system, user, assistant or another "
                              "lowercase name", i);
        bool generic = f == TOK_CHAT_CHATML || f == TOK_CHAT_LLAMA3 || f == TOK_CHAT_ZEPHYR ||
                       f == TOK_CHAT_PHI3 || f == TOK_CHAT_QWEN3 || f == TOK_CHAT_PHI4;
        if (!generic && chat_role_of(msgs[i].role) == ROLE_OTHER)
            return sp_err_set(err, SP_ERR_INVALID,
                              "message %zu: role '%s' is not supported by the %s template "
                              "(use system, user or assistant)", i, msgs[i].role,
                              tok_chat_family_name(f));
    }

    switch (f) {
    case TOK_CHAT_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            PUT("<|start_header_id|>");
            PUT(msgs[i].role);
            PUT("<|end_header_id|>\n\n");
            PUT_TRIM(msgs[i].content);
            PUT("<|eot_id|>");
        }
        if (add_generation_prompt)
            PUT("<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case TOK_CHAT_LLAMA2: {
        /* [INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U2 [/INST] */
        bool in_turn = true;
        PUT("[INST] ");
        for (size_t i = 0; i < n; i++) {
            enum chat_role r = chat_role_of(msgs[i].role);
            if (!in_turn) {
                in_turn = true;
                PUT(bos);
                PUT("[INST] ");
            }
            if (r == ROLE_SYSTEM) {
                PUT("<<SYS>>\n");
                PUT_TRIM(msgs[i].content);
                PUT("\n<</SYS>>\n\n");
            } else if (r == ROLE_USER) {
                PUT_TRIM(msgs[i].content);
                PUT(" [/INST]");
            } else {
                PUT(" ");
                PUT_TRIM(msgs[i].content);
                PUT(" ");
                PUT(eos);
                in_turn = false;
            }
        }
        break;
    }
    case TOK_CHAT_MISTRAL: {
        /* [INST] S\n\nU [/INST]A</s>[INST] U2 [/INST] (system joins the next user turn) */
        const char *sys = NULL;
        for (size_t i = 0; i < n; i++) {
            enum chat_role r = chat_role_of(msgs[i].role);
            if (r == ROLE_SYSTEM) {
                sys = msgs[i].content;
            } else if (r == ROLE_USER) {
                PUT("[INST] ");
                if (sys) {
                    PUT(sys);
                    PUT("\n\n");
                    sys = NULL;
                }
                PUT(msgs[i].content);
                PUT(" [/INST]");
            } else {
                PUT(msgs[i].content);
                PUT(eos);
            }
        }
        break;
    }
    case TOK_CHAT_ZEPHYR:
    case TOK_CHAT_PHI3: {
        const char *end = f == TOK_CHAT_PHI3 ? "<|end|>" : (*eos ? eos : "</s>");
        for (size_t i = 0; i < n; i++) {
            PUT("<|");
            PUT(msgs[i].role);
            PUT("|>\n");
            PUT(msgs[i].content);
            PUT(end);
            PUT("\n");
        }
        if (add_generation_prompt)
            PUT("<|assistant|>\n");
        break;
    }
    case TOK_CHAT_GEMMA: {
        /* no system role: it is prepended to the first user turn */
        const char *sys = NULL;
        for (size_t i = 0; i < n; i++) {
            enum chat_role r = chat_role_of(msgs[i].role);
            if (r == ROLE_SYSTEM) {
                sys = msgs[i].content;
                continue;
            }
            PUT("<start_of_turn>");
            PUT(r == ROLE_ASSISTANT ? "model" : "user");
            PUT("\n");
            if (sys && r == ROLE_USER) {
                PUT(sys);
                PUT("\n\n");
                sys = NULL;
            }
            PUT_TRIM(msgs[i].content);
            PUT("<end_of_turn>\n");
        }
        if (add_generation_prompt)
            PUT("<start_of_turn>model\n");
        break;
    }
    case TOK_CHAT_QWEN3: {
        size_t last_user = 0;
        for (size_t i = 0; i < n; i++)
            if (chat_role_of(msgs[i].role) == ROLE_USER)
                last_user = i;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(msgs[i].role, "tool") == 0) { /* consecutive results share one user turn */
                if (i == 0 || strcmp(msgs[i - 1].role, "tool") != 0)
                    PUT("<|im_start|>user");
                PUT("\n<tool_response>\n");
                PUT(msgs[i].content);
                PUT("\n</tool_response>");
                if (i + 1 == n || strcmp(msgs[i + 1].role, "tool") != 0)
                    PUT("<|im_end|>\n");
                continue;
            }
            PUT("<|im_start|>");
            PUT(msgs[i].role);
            PUT("\n");
            if (chat_role_of(msgs[i].role) == ROLE_ASSISTANT) {
                if (qwen3_assistant(msgs[i].content, i > last_user, i + 1 == n, out) != 0)
                    goto nomem;
            } else {
                PUT(msgs[i].content);
            }
            PUT("<|im_end|>\n");
        }
        if (add_generation_prompt)
            PUT("<|im_start|>assistant\n");
        break;
    }
    case TOK_CHAT_PHI4:
        for (size_t i = 0; i < n; i++) {
            PUT("<|im_start|>");
            PUT(msgs[i].role);
            PUT("<|im_sep|>");
            PUT(msgs[i].content);
            PUT("<|im_end|>");
        }
        if (add_generation_prompt)
            PUT("<|im_start|>assistant<|im_sep|>");
        break;
    case TOK_CHAT_CHATML:
    default:
        for (size_t i = 0; i < n; i++) {
            PUT("<|im_start|>");
            PUT(msgs[i].role);
            PUT("\n");
            PUT(msgs[i].content);
            PUT("<|im_end|>\n");
        }
        if (add_generation_prompt)
            PUT("<|im_start|>assistant\n");
        break;
    }
    return SP_OK;
nomem:
    return sp_err_set(err, SP_ERR_NOMEM, "out of memory (or over the limit) rendering the chat prompt");
}
