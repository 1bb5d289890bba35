/* arch.c - the table of supported architecture families.
 *
 * Each entry says how llama.cpp builds that family's graph: which tensors it
 * has (biases, per-head q/k norms, post-norms, fused qkv or gate+up), the
 * activation, the RoPE layout, embedding and query scaling, sliding-window
 * layers and their pattern. load.c reads the entry to bind the tensors and
 * fill the hyper-parameters; forward.c reads only those. Adding a family is
 * one entry here plus any op it lacks. */
#include "model/model.h"

#include <string.h>

static const struct model_arch_desc arch_table[] = {
    /* Llama 1/2/3 (rope_freqs when present), SmolLM, TinyLlama, Mistral */
    {.name = "llama", .arch = MODEL_ARCH_LLAMA},
    /* Mistral files converted with arch "mistral" are the llama graph */
    {.name = "mistral", .arch = MODEL_ARCH_LLAMA},
    {.name = "qwen2", .arch = MODEL_ARCH_QWEN2, .rope_neox = true, .qkv_bias = true},
    {.name = "qwen3", .arch = MODEL_ARCH_QWEN3, .rope_neox = true, .qk_norm = true},
    /* gemma3: every 6th layer global unless attention.sliding_window_pattern says otherwise */
    {.name = "gemma3",
     .arch = MODEL_ARCH_GEMMA3,
     .rope_neox = true,
     .qk_norm = true,
     .post_norms = true,
     .act = MODEL_ACT_GELU,
     .embd_scale = true,
     .q_scale = true,
     .swa = true,
     .swa_pattern = 6},
    /* Phi-3, Phi-3.5, Phi-4 */
    {.name = "phi3",
     .arch = MODEL_ARCH_PHI3,
     .rope_neox = true,
     .fused_qkv = true,
     .fused_gate_up = true,
     .q_scale = true,
     .rope_long_short = true},
    /* BERT encoders (all-MiniLM, bge, e5...): embeddings only (bert.c) */
    {.name = "bert", .arch = MODEL_ARCH_BERT, .act = MODEL_ACT_GELU, .encoder = true},
};

const struct model_arch_desc *model_arch_find(const char *name, size_t len)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(arch_table); i++)
        if (strlen(arch_table[i].name) == len && memcmp(arch_table[i].name, name, len) == 0)
            return &arch_table[i];
    return NULL;
}

const char *model_arch_supported(void)
{
    return "llama, mistral, qwen2, qwen3, gemma3, phi3, bert";
}
