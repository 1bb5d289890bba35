/* model.h - transformer models: hyper-parameters, weight binding, forward pass,
 * footprint estimate.
 *
 * A struct model binds the weights of an opened GGUF file on a backend
 * device (struct backend_device, one per loaded model: on "cpu" views into
 * the read-only mapping, nothing copied; a GPU kind would upload them) and
 * keeps the small norm/bias vectors as F32 copies. model_free releases every
 * bound weight on that device. It is immutable after model_load and may be
 * shared by any number of states/threads; each state's backend comes from
 * the model's device. A struct model_state is one
 * evaluation context for up to n_seq sequences at once: the shared KV cache
 * (kv.h: one span of cells per sequence), the backend (one thread pool) and
 * all scratch, sized at creation; model_decode allocates nothing.
 *
 * Architectures come from one table (arch.c): llama (Llama 1/2/3 with
 * rope_freqs factors, Mistral, SmolLM, TinyLlama), qwen2 (attention biases,
 * NeoX RoPE), qwen3 (per-head q/k RMSNorm), gemma3 (GELU, post-norms,
 * embedding scale, sliding-window layers with their own RoPE base) and phi3
 * (fused qkv and gate+up, long/short RoPE factors); bert (an encoder for
 * embeddings only, bert.c). The loader and the
 * forward pass read the family's description and the per-layer fields below,
 * never the family name.
 * The arithmetic follows llama.cpp's CPU path (activations quantized once per
 * matmul to the weight type's vec_dot_type, RMSNorm sums in double, F16 KV
 * with the query and the attention weights rounded to F16 for the dot
 * products) so greedy outputs match llama.cpp's. */
#ifndef SPOKE_MODEL_H
#define SPOKE_MODEL_H

#include "backend/backend.h"
#include "gguf/gguf.h"
#include "kv/kv.h"

enum model_arch {
    MODEL_ARCH_LLAMA = 0,
    MODEL_ARCH_QWEN2,
    MODEL_ARCH_QWEN3,
    MODEL_ARCH_GEMMA3,
    MODEL_ARCH_PHI3,
    MODEL_ARCH_BERT,
};

/* How an embedding is pooled from the last hidden states of one input
 * (GGUF <arch>.pooling_type, llama.cpp's numbering): NONE = the model gives
 * no sentence embedding (generation-only), MEAN = the mean over the input's
 * tokens, CLS = its first token, LAST = its last token. */
enum model_pooling { MODEL_POOL_NONE = 0, MODEL_POOL_MEAN = 1, MODEL_POOL_CLS = 2, MODEL_POOL_LAST = 3 };

enum model_act { MODEL_ACT_SILU = 0, MODEL_ACT_GELU }; /* GELU: tanh approximation */

/* One architecture family as llama.cpp builds it (arch.c holds the table).
 * Adding a family = one entry here plus any op it lacks. */
struct model_arch_desc {
    const char *name;        /* general.architecture */
    enum model_arch arch;
    bool rope_neox;          /* NeoX (half-split) rotary layout, else adjacent pairs */
    bool qkv_bias;           /* attn_q/k/v.bias required (else optional) */
    bool qk_norm;            /* attn_q_norm / attn_k_norm [head_dim] required */
    bool post_norms;         /* post_attention_norm / post_ffw_norm [n_embd] required */
    bool fused_qkv;          /* attn_qkv [E, Dq+2Dkv] accepted in place of q/k/v */
    bool fused_gate_up;      /* ffn_up [E, 2F] holds gate then up (no ffn_gate) */
    enum model_act act;      /* gated FFN activation */
    bool embd_scale;         /* embeddings multiplied by sqrt(n_embd) */
    bool q_scale;            /* q multiplied by the attention scale before K.q (scale 1 there) */
    bool swa;                /* attention.sliding_window with a layer pattern */
    int swa_pattern;         /* default pattern: every n-th layer global (0 = all) */
    bool rope_long_short;    /* rope_factors_long / rope_factors_short (phi3) */
    bool encoder;            /* bert: absolute positions, LayerNorm, non-causal attention,
                                embeddings only (bert.c), no KV cache or logits */
};

/* The description of general.architecture = name (len bytes), or NULL. */
const struct model_arch_desc *model_arch_find(const char *name, size_t len);
/* "llama, mistral, qwen2, ..." for error messages. */
const char *model_arch_supported(void);

struct model_hparams {
    enum model_arch arch;
    const char *arch_name;  /* the family's name (general.architecture) */
    const struct model_arch_desc *desc;
    int n_vocab;
    int n_embd;             /* model width */
    int n_layer;
    int n_head;             /* query heads */
    int n_head_kv;          /* key/value heads (GQA: n_head % n_head_kv == 0) */
    int head_dim;           /* elements per head (attention.key_length) */
    int n_ff;               /* feed-forward width */
    int n_rot;              /* rotary dimensions per head (<= head_dim, even) */
    int n_ctx_train;        /* context length the model was trained with */
    int n_ctx_orig;         /* rope.scaling.original_context_length (phi3 long/short rule) */
    float rope_freq_base;   /* default 10000 */
    float rope_freq_scale;  /* 1 / linear scaling factor (1 = none) */
    float rope_freq_base_swa;  /* sliding-window layers' RoPE base */
    float rope_attn_factor; /* cos/sin multiplier (rope.scaling.attn_factor, 1 = none) */
    float rms_eps;          /* default 1e-5 */
    bool rope_neox;         /* NeoX (half-split) rotary layout */
    enum model_act act;
    float embd_scale;       /* embedding multiplier (1 = none) */
    float attn_scale;       /* softmax scale of K.q (1/sqrt(head_dim) by default) */
    bool q_scale;           /* attn_scale applied to q before the dot (kq scale 1) */
    int n_swa;              /* sliding window (positions) of SWA layers; 0 = none */
    int swa_pattern;        /* layer l is SWA when l % pattern < pattern - 1 (0: every layer) */
    float logit_softcap;    /* final_logit_softcapping; 0 = none */
    enum model_pooling pooling; /* <arch>.pooling_type (NONE when absent) */
    float norm_eps;         /* LayerNorm epsilon (encoder: attention.layer_norm_epsilon, 1e-12) */
};

struct model_layer {
    const float *attn_norm;          /* [n_embd] */
    const float *ffn_norm;           /* [n_embd] */
    const float *attn_post_norm;     /* [n_embd] or NULL (gemma3 post_attention_norm) */
    const float *ffn_post_norm;      /* [n_embd] or NULL (gemma3 post_ffw_norm) */
    const float *q_norm, *k_norm;    /* [head_dim] per-head RMSNorm weights or NULL */
    const float *bq, *bk, *bv;       /* attention biases or NULL */
    const float *bo;                 /* [n_embd] attn_output bias or NULL */
    const float *b_gate, *b_up;      /* [n_ff] FFN gate / up biases or NULL (halves of a fused ffn_up.bias) */
    const float *b_down;             /* [n_embd] ffn_down bias or NULL */
    const float *rope_factors;       /* [n_rot/2] frequency divisors or NULL (llama3 rope_freqs);
                                      * phi3's long/short pair is chosen per state */
    bool swa;                        /* sliding-window layer (attends to the last n_swa positions) */
    float rope_base, rope_scale;     /* this layer's RoPE base and frequency scale */
    struct backend_weight wq, wk, wv, wo;          /* wq/wk/wv may be row views of a fused attn_qkv */
    struct backend_weight w_gate, w_up, w_down;    /* w_gate/w_up may be views of a fused ffn_up */
};

struct model {
    struct model_hparams hp;
    const struct gg_file *file;      /* not owned */
    struct backend_weight tok_embd;  /* [n_vocab rows of n_embd] */
    const float *output_norm;        /* [n_embd] */
    struct backend_weight output;    /* [n_vocab rows of n_embd]; = tok_embd when tied */
    bool tied_output;
    struct model_layer *layers;      /* n_layer */
    const float *rope_long, *rope_short; /* [n_rot/2] phi3 factors or NULL */
    float *owned;                    /* F32 copies of the norm/bias/factor vectors */
    size_t weight_bytes;             /* bytes of tensor data in the file */
    struct model_bert *bert;         /* encoder weights (bert.c) or NULL */
    struct backend_device *dev;      /* binds the weights, makes the states' backends */
    bool dev_owned;                  /* dev made by model_load(_split) itself */
};

/* Read hyper-parameters and bind every weight matrix of f (which must
 * outlive the model) on dev (backend_weight_bind: a view on "cpu", an
 * upload on a GPU kind); dev must outlive the model, and every state of the
 * model gets its backend from dev (backend_new_on). Errors:
 * SP_ERR_UNSUPPORTED (architecture, tensor type without kernels),
 * SP_ERR_FORMAT (missing tensor, wrong shape, bad metadata), SP_ERR_NOMEM. */
enum sp_status model_load_on(struct backend_device *dev, const struct gg_file *f, struct model **out,
                             struct sp_err *err) SP_MUST_USE;
/* The same over the shards of a split GGUF (metadata from the first shard,
 * tensors from any); the set must outlive the model. */
enum sp_status model_load_split_on(struct backend_device *dev, const struct gg_split *s, struct model **out,
                                   struct sp_err *err) SP_MUST_USE;
/* model_load_on / model_load_split_on with a "cpu" device of the model's own. */
enum sp_status model_load(const struct gg_file *f, struct model **out, struct sp_err *err) SP_MUST_USE;
enum sp_status model_load_split(const struct gg_split *s, struct model **out, struct sp_err *err) SP_MUST_USE;
/* NULL is a no-op; releases every bound weight on the model's device (and
 * frees the device when the model made it). */
void model_free(struct model *m);

/* Tokens per model_decode call unless the caller says: the activation
 * scratch is sized by it (about 90 KiB per token for a 1B llama: 23 MiB at
 * 256). 256 prefills as fast as 512 with the repacked gemm (the tiles reuse
 * each weight span over up to 8 rows whatever the batch; bench numbers in
 * docs/ARCHITECTURE.md) and matches the step loop's default token budget. */
#define MODEL_BATCH_DEFAULT 256

struct model_state_opts {
    int n_ctx;          /* most positions of one sequence (>= 1) */
    int n_batch;        /* most tokens per model_decode call (0 = MODEL_BATCH_DEFAULT; at most n_cells) */
    int n_threads;      /* >= 1 */
    enum kv_type kv_type;
    int n_seq;          /* most sequences decoded together (0 = 1) */
    int n_cells;        /* KV cache cells, the token budget of all sequences
                           (0 = n_ctx * n_seq; at least n_ctx) */
    bool swa_full;      /* sliding-window layers keep every position too (llama.cpp's
                           --swa-full); else they keep one ring per sequence of the
                           window + n_batch + 96 positions (rounded up to 64) when
                           that is under half the context */
};

struct model_state;

/* Bytes a state would allocate (KV cache + activations + matmul scratch). */
size_t model_state_bytes(const struct model *m, const struct model_state_opts *o);
/* The KV cache's part of that (sliding-window layers counted at their
 * rings' size); SIZE_MAX on overflow. */
size_t model_state_kv_bytes(const struct model *m, const struct model_state_opts *o);
enum sp_status model_state_new(const struct model *m, const struct model_state_opts *o,
                               struct model_state **out, struct sp_err *err) SP_MUST_USE;
void model_state_free(struct model_state *s); /* NULL is a no-op */
int model_state_n_ctx(const struct model_state *s);
int model_state_n_batch(const struct model_state *s);
/* The state's KV cache: sequences are opened and closed there
 * (kv_seq_open / kv_seq_close) by the state's single user thread. */
struct kv_cache *model_state_kv(struct model_state *s);

/* Cells a sequence needs to hold n_pos positions: attention reads each
 * token's span padded to 32 cells, so min(n_ctx, n_pos rounded up to 32).
 * Open sequences with at least this cap (kv_seq_open). */
int model_seq_cells(const struct model_state *s, int n_pos);

/* A batch of tokens from one or more sequences. The tokens of one sequence
 * are consecutive in the batch with consecutive positions p0, p0+1, ...
 * where p0 <= the sequence's length (p0 < length rewinds it) and the last
 * position < min(n_ctx, the sequence's cap). A batch may mix prompt chunks of
 * some sequences with single decode tokens of others. */
struct model_batch {
    int n;                 /* tokens, 1..n_batch */
    const int32_t *tokens; /* [n] token ids */
    const int32_t *pos;    /* [n] position of each token in its sequence */
    const int32_t *seq;    /* [n] KV sequence id (live, from kv_seq_open) */
    const bool *logits;    /* [n] whether the token's logits are wanted; NULL = the last token of each sequence */
};

/* Evaluate a batch: every matmul is one pass over its weight for all the
 * tokens; each token attends to its own sequence's cells up to its position.
 * K/V of every token are written to its sequence's cells. logits (may be
 * NULL when none are wanted) receives n_vocab floats for each token whose
 * logits are wanted, in batch order. A sequence's results do not depend on
 * what else is in the batch (docs/PARITY.md): each token gets the arithmetic
 * of its sequence evaluated alone with the same chunk. Errors: SP_ERR_INVALID
 * (token id out of range, bad positions, sequence not live or interleaved).
 * Not thread-safe per state. */
enum sp_status model_decode(struct model_state *s, const struct model_batch *b, float *logits,
                            struct sp_err *err) SP_MUST_USE;

/* model_decode for embeddings: instead of logits, embd receives n_embd floats
 * for each token whose "logits" are wanted (in batch order): its hidden
 * state after the output norm, what embeddings pool. */
enum sp_status model_decode_embd(struct model_state *s, const struct model_batch *b, float *embd,
                                 struct sp_err *err) SP_MUST_USE;

/* One-sequence use (tests, tools): evaluate n tokens (1 <= n <= n_batch) at
 * positions pos0 .. pos0+n-1 (pos0 + n <= n_ctx, pos0 <= what was evaluated
 * before) of the state's own sequence (opened on first use with n_ctx cells),
 * attending to its cached positions before pos0. If logits is non-NULL it
 * receives the n_vocab logits of the last token. Errors: SP_ERR_INVALID (token
 * id out of range, bad n/pos), SP_ERR_BUSY (no cells left for the sequence). */
enum sp_status model_eval(struct model_state *s, const int32_t *tokens, int n, int pos0, float *logits,
                          struct sp_err *err) SP_MUST_USE;

/* ---- embeddings
 * A batch of inputs, each evaluated on its own (its tokens attend only to
 * each other), pooled by the model's pooling type into n_embd floats per
 * input (not normalised). Decoder models (pooling set in the metadata) run
 * through model_decode_embd; encoder models (bert)
 * through a struct model_bert_state. */
struct model_bert_state;
/* Scratch for batches of up to n_batch tokens (each input at most the
 * trained context) on n_threads threads. Errors: SP_ERR_INVALID (not an
 * encoder model), SP_ERR_NOMEM. */
enum sp_status model_bert_state_new(const struct model *m, int n_batch, int n_threads,
                                    struct model_bert_state **out, struct sp_err *err) SP_MUST_USE;
void model_bert_state_free(struct model_bert_state *s); /* NULL is a no-op */
size_t model_bert_state_bytes(const struct model *m, int n_batch, int n_threads);
int model_bert_state_n_batch(const struct model_bert_state *s);
/* Evaluate n_inputs inputs whose tokens are concatenated in tokens (input i
 * is tokens[start[i] .. start[i+1]), start has n_inputs + 1 entries, every
 * input 1..n_ctx_train tokens, the total at most n_batch) in ONE forward pass
 * and write the pooled vectors to out[i * n_embd ..]. An input's vector does
 * not depend on the other inputs (bit for bit except with K-quant weights,
 * whose panel gemm may differ in the last bits). Errors: SP_ERR_INVALID (token
 * id out of range, bad lengths). Not thread-safe per state. */
enum sp_status model_bert_embed(struct model_bert_state *s, const int32_t *tokens, const int32_t *start,
                                int n_inputs, float *out, struct sp_err *err) SP_MUST_USE;
/* (load.c, for bert.c too) The first n values of tensor t (named name) as
 * F32 into out; SP_ERR_FORMAT when n is not a whole number of blocks,
 * SP_ERR_UNSUPPORTED for a type with no conversion. */
enum sp_status model_vec_to_f32(const struct gg_tensor *t, const char *name, int64_t n, float *out,
                                struct sp_err *err) SP_MUST_USE;
/* (load.c -> bert.c) Bind the encoder's tensors; tensors found by find
 * (the file or a split set); drop(src, p, n) lets the mapped bytes [p, p + n)
 * go once the device holds its own copy of them. */
typedef const struct gg_tensor *(*model_tensor_find_fn)(const void *src, const char *name);
typedef void (*model_tensor_drop_fn)(const void *src, const void *p, size_t n);
enum sp_status model_bert_load(struct model *m, model_tensor_find_fn find, model_tensor_drop_fn drop, const void *src,
                               size_t *n_used, struct sp_err *err) SP_MUST_USE;
void model_bert_free(struct model_bert *b, struct backend_device *dev); /* NULL is a no-op; releases its weights on dev */
/* (load.c, for load.c and bert.c) Bind host as a [k, rows] matrix of type on
 * dev for use; an error's context names the tensor; when the device keeps a
 * copy of its own, drop(src, host, bytes) lets the mapped pages go. */
enum sp_status model_bind_host(struct backend_device *dev, model_tensor_drop_fn drop, const void *src,
                               const char *name, enum gg_type type, int64_t k, int64_t rows, const void *host,
                               unsigned use, struct backend_weight *w, struct sp_err *err) SP_MUST_USE;

/* ---- memory */
/* Bytes of memory this process may still use: min(MemAvailable, cgroup
 * memory.max - memory.current (v2) or limit - usage (v1)); SIZE_MAX if
 * unknown. SPOKE_MEM_AVAILABLE=<bytes> overrides (tests). */
size_t model_mem_available(void);
/* Refuse (SP_ERR_MEMORY) when need (+10 % headroom) exceeds the available
 * memory; the message names the sizes of the parts and suggests a smaller
 * quantization or context. */
enum sp_status model_mem_check(size_t weights, size_t kv_and_scratch, const char *what,
                               struct sp_err *err) SP_MUST_USE;

#endif
