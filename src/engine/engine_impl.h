/* engine_impl.h - internals shared by the engine's .c files (not a public
 * header: only src/engine includes it). */
#ifndef SPOKE_ENGINE_IMPL_H
#define SPOKE_ENGINE_IMPL_H

#include "engine/engine.h"
#include "gguf/gguf.h"
#include "backend/backend.h"
#include "kv/kv.h"
#include "model/model.h"
#include "tok/tok.h"
#include "sample/sample.h"

#include <stdatomic.h>

struct engine_model {
    struct gg_split *split;      /* the model's file(s) */
    const struct gg_file *file;  /* its first shard: metadata */
    struct model *model;
    struct tok_vocab *vocab;
    enum tok_chat_family chat;
    struct backend_choice backend;
    char *name;
    char *bos_text, *eos_text;
    char byte_chars[256];  /* engine_token_text for byte tokens */
    int n_ctx;
    int n_threads;
    enum kv_type kv_type;
    size_t footprint;      /* file + one context */
    double load_ms;
};

struct engine_ctx {
    struct engine_model *m;
    struct model_state *st;
    struct sampler *smp;
    float *logits;         /* [n_vocab] of the last evaluated token */
    int32_t *tokens;       /* [n_ctx + 1] tokens whose K/V are in the cache */
    int n_tokens;
    int32_t *prompt;       /* [n_ctx + 1] tokenization scratch */
    struct sp_buf held;    /* decoded text not yet released (possible stop prefix) */
    struct sp_buf emit;    /* text released by the current event */
    _Atomic uint64_t gen_id;     /* id of the running / last generation (0 = none yet) */
    _Atomic uint64_t cancel_id;  /* generation asked to stop (0 = none) */
    int32_t top_ids[20];
    float top_lp[20];
};

/* Chat templates: forwarded to tok_chat_* (chat.c); chatml until the
 * tokenizer's template renderer is available. */
enum tok_chat_family engine_chat_detect(const char *jinja_template);
const char *engine_chat_family_name(enum tok_chat_family f);
enum sp_status engine_chat_render_family(enum tok_chat_family f, const struct tok_chat_msg *msgs, size_t n,
                                         bool add_generation_prompt, const char *bos_text, const char *eos_text,
                                         struct sp_buf *out, struct sp_err *err);

#endif
