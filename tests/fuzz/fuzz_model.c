/* fuzz_model.c - libFuzzer harness for the model loader and the family
 * table. Input: the bytes of a GGUF file. gg_open_memory and model_load
 * must accept it or refuse it with a status; an accepted model (of any
 * family: llama, qwen2, qwen3, gemma3, phi3...) gets a small state (when its
 * scratch is small) and evaluates a 3-token batch and one decode step, which
 * must return a status, never crash (NaN logits are allowed: weights are
 * arbitrary); a model with a pooling type also gives the hidden states of a
 * second sequence (model_decode_embd), an encoder (bert) embeds two inputs
 * in one pass instead. Seeds in corpus/fuzz_model: tiny models of each family with
 * its optional tensors and keys (rope factors, sliding-window pattern as a
 * period and as per-layer flags, soft-capping, fused phi3 tensors, bert, a decoder with pooling). */
#include "gguf/gguf.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static volatile float sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *buf = sp_malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct gg_file *f = NULL;
    struct model *m = NULL;
    struct model_state *s = NULL;
    float *logits = NULL;
    if (gg_open_memory(buf, size, &f, NULL) != SP_OK || model_load(f, &m, NULL) != SP_OK)
        goto out;
    if (m->bert) { /* encoder: two inputs through one embedding pass */
        struct model_bert_state *bs = NULL;
        float *v = sp_calloc(2 * (size_t)m->hp.n_embd, sizeof(float));
        int32_t btoks[3] = {0, (int32_t)(size % (size_t)m->hp.n_vocab), m->hp.n_vocab - 1}, start[3] = {0, 1, 3};
        if (v && m->hp.n_ctx_train >= 2 && model_bert_state_bytes(m, 4, 1) <= (64u << 20) &&
            model_bert_state_new(m, 4, 1, &bs, NULL) == SP_OK && model_bert_embed(bs, btoks, start, 2, v, NULL) == SP_OK)
            sink += v[0];
        model_bert_state_free(bs);
        sp_free(v);
        goto out;
    }
    struct model_state_opts o = {.n_ctx = 8, .n_batch = 4, .n_threads = 1, .kv_type = KV_F16};
    if (model_state_bytes(m, &o) > (64u << 20) || model_state_new(m, &o, &s, NULL) != SP_OK)
        goto out;
    logits = sp_calloc((size_t)m->hp.n_vocab, sizeof(float));
    if (!logits)
        goto out;
    int32_t toks[3] = {0, (int32_t)(size % (size_t)m->hp.n_vocab), m->hp.n_vocab - 1};
    if (model_eval(s, toks, 3, 0, logits, NULL) == SP_OK && model_eval(s, toks + 1, 1, 3, logits, NULL) == SP_OK)
        sink += logits[0];
    if (m->hp.pooling != MODEL_POOL_NONE) { /* embeddings: hidden states of a second sequence */
        struct kv_cache *kv = model_state_kv(s);
        int id, reused;
        int32_t pos[2] = {0, 1}, seq[2];
        bool want[2] = {true, true};
        if (kv_seq_open(kv, model_seq_cells(s, 2), NULL, 0, 0, &id, &reused) == SP_OK) {
            seq[0] = seq[1] = id;
            struct model_batch b = {2, toks, pos, seq, want};
            if ((size_t)m->hp.n_embd * 2 <= (size_t)m->hp.n_vocab && model_decode_embd(s, &b, logits, NULL) == SP_OK)
                sink += logits[0];
            kv_seq_close(kv, id, false);
        }
    }
out:
    sp_free(logits);
    model_state_free(s);
    model_free(m);
    gg_close(f);
    sp_free(buf);
    return 0;
}
