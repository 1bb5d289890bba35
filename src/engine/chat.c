/* chat.c - the engine's seam to the chat templates. The tokenizer layer owns
 * template detection and rendering (tok_chat_*); until its renderer is in
 * the tree this file renders ChatML for every model, which is what the
 * tokenizer does for models without a recognised template. */
#include "engine/engine_impl.h"

#include <string.h>

enum tok_chat_family engine_chat_detect(const char *jinja_template)
{
    SP_UNUSED(jinja_template);
    return TOK_CHAT_CHATML;
}

const char *engine_chat_family_name(enum tok_chat_family f)
{
    SP_UNUSED(f);
    return "chatml";
}

enum sp_status engine_chat_render_family(enum tok_chat_family f, const struct tok_chat_msg *msgs, size_t n,
                                         bool add_generation_prompt, const char *bos_text, const char *eos_text,
                                         struct sp_buf *out, struct sp_err *err)
{
    SP_UNUSED(f);
    SP_UNUSED(bos_text);
    SP_UNUSED(eos_text);
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role ? msgs[i].role : "";
        if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0)
            return sp_err_set(err, SP_ERR_INVALID, "unknown chat role '%.32s' (use system, user or assistant)", r);
        if (sp_buf_printf(out, "<|im_start|>%s\n%s<|im_end|>\n", r, msgs[i].content ? msgs[i].content : "") != SP_OK)
            return sp_err_set(err, SP_ERR_LIMIT, "chat prompt too large");
    }
    if (add_generation_prompt && sp_buf_appends(out, "<|im_start|>assistant\n") != SP_OK)
        return sp_err_set(err, SP_ERR_LIMIT, "chat prompt too large");
    return SP_OK;
}
