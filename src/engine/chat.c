/* chat.c - the engine's seam to the chat templates: detection and rendering
 * belong to the tokenizer layer (tok_chat_*); this file only forwards, so a
 * different template engine can be swapped in at one place. */
#include "engine/engine_impl.h"

enum tok_chat_family engine_chat_detect(const char *jinja_template) { return tok_chat_detect(jinja_template); }

const char *engine_chat_family_name(enum tok_chat_family f) { return tok_chat_family_name(f); }

enum sp_status engine_chat_render_family(enum tok_chat_family f, const struct tok_chat_msg *msgs, size_t n,
                                         bool add_generation_prompt, const char *bos_text, const char *eos_text,
                                         struct sp_buf *out, struct sp_err *err)
{
    return tok_chat_render(f, msgs, n, add_generation_prompt, bos_text, eos_text, out, err);
}
