/* engine.h - loaded models and text generation sessions: the API that
 * `spoke run`, `spoke bench` and the server use.
 *
 * A struct engine_model owns the mapped GGUF, the weights bound for the chosen
 * backend, the tokenizer and the chat template; it is immutable after load and
 * shareable across threads. It owns one model state (the KV cache shared by
 * all its sequences, one thread pool) and a step loop thread that decodes every
 * running generation together (continuous batching, sched.c). A struct
 * engine_ctx is one generation slot (sampler, token buffers; no allocation per
 * token); one thread uses a ctx at a time, and its generation runs as one
 * sequence of the step loop. The server creates max_concurrency contexts per
 * model.
 * (Admission control / queues for the server live in engine/admit.h.) */
#ifndef SPOKE_ENGINE_H
#define SPOKE_ENGINE_H

#include "base/base.h"

struct engine_model;
struct engine_ctx;
struct tok_span;
struct sample_bias;
struct grammar;

struct engine_load_opts {
    const char *path;   /* GGUF file (first shard of a split set) */
    int n_ctx;          /* context tokens per ctx; 0 = min(model's, 4096) */
    int n_threads;      /* 0 = number of online CPUs */
    int n_parallel;     /* sequences decoded together (max concurrency); 0 = 1 */
    int kv_tokens;      /* KV cache budget in tokens, shared by the sequences; 0 = n_ctx * n_parallel
                           (at least n_ctx) */
    int step_tokens;    /* tokens per step of the step loop (decode tokens + prompt chunks); 0 = 256 */
    bool kv_f32;        /* KV cache in F32 instead of F16 */
    bool skip_mem_check;/* do not refuse a model that exceeds available memory */
    const char *chat_template; /* NULL = the model's tokenizer.chat_template; else a family
                                  name (chatml, llama3...), Jinja text, or a template file path */
};

/* Load and validate a model. Fails with SP_ERR_FORMAT/UNSUPPORTED (bad file,
 * unknown arch/type), SP_ERR_MEMORY (footprint would not fit: message names the
 * sizes and suggests a smaller quantization), SP_ERR_IO. */
enum sp_status engine_model_load(const struct engine_load_opts *opts, struct engine_model **out,
                                 struct sp_err *err) SP_MUST_USE;
void engine_model_free(struct engine_model *m); /* NULL is a no-op */

struct engine_model_info {
    const char *arch;      /* "llama", "qwen2" */
    const char *name;      /* general.name or file stem */
    const char *backend;   /* "cpu" */
    int n_ctx;             /* context of one sequence (after the cap) */
    int n_seq;             /* sequences decoded together */
    int kv_tokens;         /* KV cache budget (cells) */
    int max_step_seqs;     /* most sequences one step has decoded together so far */
    int64_t prompt_evaluated; /* prompt tokens evaluated by the step loop since the load (cached
                                 prefixes and n > 1 choices sharing a prompt are not counted) */
    int n_ctx_train;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv;
    size_t weight_bytes;   /* bytes of tensor data */
    size_t footprint_bytes;/* estimated RAM: weights + KV budget + scratch */
    double load_ms;
};
void engine_model_get_info(const struct engine_model *m, struct engine_model_info *out);
/* The model's file(s) changed under it since the load (gg_split_changed: a
 * SIGBUS absorbed in the mapping, removed, replaced, resized, modified); why
 * gets one line. A stat per shard: call it per request, not per token.
 * engine_model_faulted is the per-step check (one atomic load): true once a
 * read of the mapping faulted, so whatever was computed since is garbage.
 * Thread-safe. */
bool engine_model_file_changed(const struct engine_model *m, char *why, size_t whysz);
bool engine_model_faulted(const struct engine_model *m);

/* ---- chat */
struct engine_chat_msg {
    const char *role;    /* "system" | "user" | "assistant" */
    const char *content; /* UTF-8 */
};
/* Render messages with the model's chat template (chatml when it has none),
 * ending with the assistant prefix when add_generation_prompt. *out is
 * allocated with sp_malloc. */
enum sp_status engine_chat_render(const struct engine_model *m, const struct engine_chat_msg *msgs,
                                  size_t n_msgs, bool add_generation_prompt, char **out,
                                  struct sp_err *err) SP_MUST_USE;

/* Render a chat request with the model's template (Jinja; the fixed family
 * renderer when the template failed to parse). ctx_json is the template's
 * variables as a JSON object: "messages" (OpenAI message objects: role,
 * content string, tool_calls with arguments as objects, tool_call_id...),
 * optional "tools", "add_generation_prompt" and extra flags; bos_token and
 * eos_token come from the vocabulary. out->spans lists the bytes that came
 * from messages/tools (to be tokenized as text). The template's own errors
 * (raise_exception: "roles must alternate") are SP_ERR_INVALID with its
 * message; SP_ERR_LIMIT when the prompt would pass max_out bytes. */
struct tok_rendered;
enum sp_status engine_chat_render_ctx(const struct engine_model *m, const char *ctx_json, size_t len,
                                      size_t max_out, struct tok_rendered *out,
                                      struct sp_err *err) SP_MUST_USE;
/* "jinja" when the model renders with a Jinja template, else the fixed family's name. */
const char *engine_chat_template_kind(const struct engine_model *m);
/* The tool-call syntax the model's chat template teaches (found from its
 * markers at load): Hermes/Qwen <tool_call>{"name", "arguments"}</tool_call>,
 * Llama 3.x a bare {"name", "parameters"} object (templates with
 * <|python_tag|> or the ipython role), Mistral [TOOL_CALLS][{"name",
 * "arguments"}] (the marker is a control token, so the array alone), else a
 * generic {"name", "arguments"} object. */
enum engine_tool_syntax { ENGINE_TOOLS_GENERIC = 0, ENGINE_TOOLS_HERMES, ENGINE_TOOLS_LLAMA3, ENGINE_TOOLS_MISTRAL };
enum engine_tool_syntax engine_chat_tool_syntax(const struct engine_model *m);

/* ---- generation */
struct engine_sampling {
    float temperature;       /* <= 0: greedy */
    float top_p;             /* 1 = off */
    int top_k;               /* 0 = off */
    float min_p;             /* 0 = off */
    float repeat_penalty;    /* 1 = off */
    int repeat_last_n;       /* window for the penalties (64 default) */
    float presence_penalty;  /* OpenAI semantics, 0 = off */
    float frequency_penalty; /* OpenAI semantics, 0 = off */
    uint64_t seed;           /* same seed + same inputs = same output */
    const struct sample_bias *logit_bias; /* token id -> added logit (borrowed; -100 bans) */
    size_t n_logit_bias;
};
/* Defaults: temperature 0.8, top_p 0.95, top_k 40, min_p 0.05, penalties off, seed 0. */
void engine_sampling_default(struct engine_sampling *s);

struct engine_gen_params {
    const char *prompt;         /* UTF-8 */
    bool add_bos;               /* add BOS if the vocabulary asks for it (true for raw prompts) */
    bool parse_special;         /* treat special-token text in prompt as control tokens (chat) */
    const struct tok_span *text_spans; /* with parse_special: byte ranges of prompt that stay text */
    size_t n_text_spans;        /* (request data of a rendered chat: sorted, disjoint) */
    int max_tokens;             /* > 0; generation also stops at the context end */
    const char *const *stop;    /* stop strings (not included in the output) */
    size_t n_stop;
    int n_top_logprobs;         /* 0..20: alternatives reported per token */
    bool want_logprobs;         /* fill logprob fields in events */
    struct engine_sampling sampling;
    const struct grammar *grammar; /* constrained output (borrowed; NULL = none): every sampled
                                      token keeps the text a prefix of the grammar's language; the
                                      generation stops (STOP) when the grammar is complete */
};

struct engine_token_event {
    int index;          /* choice (engine_generate_n), 0 for engine_generate */
    int32_t token;
    const char *text;   /* UTF-8 text released by this step (may be "" while a
                           partial UTF-8 sequence or a possible stop string is held back) */
    size_t text_len;
    float logprob;      /* natural log prob of the chosen token (if want_logprobs) */
    int n_top;
    const int32_t *top_tokens;
    const float *top_logprobs;
};
/* Called once per generated token (and possibly once more at the end with
 * token -1 to flush held-back text). Return false to cancel. */
typedef bool (*engine_token_cb)(void *userdata, const struct engine_token_event *ev);

enum engine_finish { ENGINE_FINISH_STOP = 0, ENGINE_FINISH_LENGTH, ENGINE_FINISH_CANCELLED };

struct engine_gen_result {
    int n_prompt_tokens;
    int n_completion_tokens;
    enum engine_finish finish;
    double prompt_ms;  /* prefill time */
    double decode_ms;  /* time after the first token */
    double ttft_ms;    /* start of call to first token */
    int n_cached_tokens; /* prompt tokens reused from the KV cache (prefix reuse) */
};

enum sp_status engine_ctx_new(struct engine_model *m, struct engine_ctx **out,
                              struct sp_err *err) SP_MUST_USE;
void engine_ctx_free(struct engine_ctx *c);

/* Generate. Tokenizes the prompt; a prompt that leaves no room in the context
 * fails with SP_ERR_LIMIT ("prompt has N tokens, context is M"). The generation
 * is queued to the model's step loop (it waits there while n_parallel others
 * run or the KV budget has no room for it) and runs batched with the others;
 * cb is called on the calling thread. Returns SP_OK with finish = CANCELLED
 * when cb returned false or engine_ctx_cancel was called (no event is
 * delivered after that; the sequence stops at the loop's next step). A prompt
 * that starts with tokens still cached from a finished generation of this
 * model reuses them (n_cached_tokens). */
enum sp_status engine_generate(struct engine_ctx *c, const struct engine_gen_params *p,
                               engine_token_cb cb, void *userdata, struct engine_gen_result *res,
                               struct sp_err *err) SP_MUST_USE;
/* n > 1 choices of one prompt: ctxs[0..n) are distinct idle contexts of one
 * model (n <= its n_parallel, and n spans of the KV budget, else
 * SP_ERR_LIMIT). The prompt is tokenized and evaluated once, on ctxs[0];
 * when its last position is done, its cells are copied into the other
 * choices' spans (kv_seq_copy) and every choice samples its first token from
 * the same logits with its own sampler: choice i uses seed + i (greedy
 * choices are all equal to a lone generation's). The n sequences are
 * admitted together (they wait for n free sequences and n spans). Events
 * carry their choice (ev->index), delivered on this thread; res[i] is choice
 * i's result (n_prompt_tokens each; n_cached_tokens on res[0]). A callback
 * returning false, or cancelling ctxs[0]'s generation, stops every choice;
 * engine_ctx_generation_id(ctxs[0]) names the group. */
enum sp_status engine_generate_n(struct engine_ctx *const *ctxs, int n, const struct engine_gen_params *p,
                                 engine_token_cb cb, void *userdata, struct engine_gen_result *res,
                                 struct sp_err *err) SP_MUST_USE;
/* KV cells one sequence of n_prompt tokens plus max_tokens (0: to the
 * context end) reserves (n choices need n times this within kv_tokens). */
int engine_kv_cells(const struct engine_model *m, int n_prompt, int max_tokens);
/* Thread-safe: ask the running engine_generate on c to stop at its next step.
 * (It targets the generation running now, or the last one if none runs: a
 * cancel between two calls never stops the next one.) */
void engine_ctx_cancel(struct engine_ctx *c);

/* Count tokens of text (for usage/limits), same tokenization as generate
 * (spans as engine_gen_params.text_spans; NULL/0 for none). */
enum sp_status engine_tokenize_count(const struct engine_model *m, const char *text, bool add_bos,
                                     bool parse_special, int *n_tokens, struct sp_err *err) SP_MUST_USE;
enum sp_status engine_tokenize_count_spans(const struct engine_model *m, const char *text, bool add_bos,
                                           bool parse_special, const struct tok_span *spans, size_t n_spans,
                                           int *n_tokens, struct sp_err *err) SP_MUST_USE;

/* Text of one token (for logprobs): the bytes it stands for (SPM's U+2581 is a
 * space, BPE's byte map reversed, byte tokens their byte, control tokens their
 * own text); a pointer valid while m lives, its length in *len ("" for an id
 * outside the vocabulary). */
const char *engine_token_text(const struct engine_model *m, int32_t token, size_t *len);

/* ---- embeddings (embed.c) */
enum engine_pooling { ENGINE_POOL_NONE = 0, ENGINE_POOL_MEAN, ENGINE_POOL_CLS, ENGINE_POOL_LAST };
/* The model's pooling type (GGUF <arch>.pooling_type): NONE = it gives no
 * sentence embeddings (a generation-only model). */
enum engine_pooling engine_model_pooling(const struct engine_model *m);
/* "mean", "cls", "last" or "none". */
const char *engine_pooling_name(enum engine_pooling p);
/* True for an encoder (bert) model: embeddings only, engine_generate refuses it. */
bool engine_model_is_encoder(const struct engine_model *m);
/* Tokenize one embedding input as llama.cpp does (the vocabulary's BOS/EOS or
 * CLS/SEP added, control-token text kept as text). Writes up to cap ids to
 * out; *n = the number of tokens (SP_ERR_LIMIT when more than cap). */
enum sp_status engine_embed_tokenize(const struct engine_model *m, const char *text, size_t len, int32_t *out,
                                     size_t cap, size_t *n, struct sp_err *err) SP_MUST_USE;
/* Embed n_inputs inputs (input i = tokens[start[i] .. start[i+1]), each 1..n_ctx
 * tokens, ids in the vocabulary) into out[i * n_embd ..], each vector pooled
 * by the model's pooling type and L2-normalised. As many inputs as fit go
 * through one forward pass (each attends only to its own tokens; a vector
 * does not depend on the others in the batch: bit for bit for F32, F16 and
 * Q8_0 weights, within the last bits for K-quants). Decoder models run on the
 * model's step loop state (the step loop pauses meanwhile). Thread-safe.
 * Errors: SP_ERR_INVALID (pooling none, bad input), SP_ERR_BUSY (no KV room
 * while generations hold it), SP_ERR_NOMEM, SP_ERR_CANCELLED (the file
 * faulted under it: see engine_model_faulted). */
enum sp_status engine_embed(struct engine_model *m, const int32_t *tokens, const int32_t *start, int n_inputs,
                            float *out, struct sp_err *err) SP_MUST_USE;

/* ---- additions (model helper) */
struct tok_vocab;
/* The model's tokenizer (valid while m lives). */
const struct tok_vocab *engine_model_vocab(const struct engine_model *m);
/* Id of the generation running on c, or of the last one started (0 before
 * the first). Read it from the token callback to name "this" generation. */
uint64_t engine_ctx_generation_id(const struct engine_ctx *c);
/* Thread-safe: stop generation `id` if it is still running; no effect on any
 * later generation of c (safe to call late, e.g. from a response-free hook
 * after the ctx went back to the pool and started another request). */
void engine_ctx_cancel_id(struct engine_ctx *c, uint64_t id);
/* Number of weight elements (parameters). */
size_t engine_model_n_params(const struct engine_model *m);
/* Quantization name: from general.file_type ("Q4_K_M", "Q8_0", ...), else
 * the type holding most of the weight bytes. Static string. */
const char *engine_model_ftype(const struct engine_model *m);
/* Online CPUs (the default thread count). */
int engine_cpu_count(void);
/* Benchmarks (`spoke bench`): evaluate n_tokens synthetic prompt tokens from
 * position 0 in batches (prefill), or n_tokens single-token steps from
 * position 0 (decode, greedy feedback). *ms = wall time. They drop the model's
 * cached prefixes and hold the step loop meanwhile. SP_ERR_LIMIT if n_tokens
 * does not fit the context. */
enum sp_status engine_bench_prefill(struct engine_ctx *c, int n_tokens, double *ms,
                                    struct sp_err *err) SP_MUST_USE;
enum sp_status engine_bench_decode(struct engine_ctx *c, int n_tokens, double *ms,
                                   struct sp_err *err) SP_MUST_USE;
/* Batched decode (llama-batched-bench's shape): n_seq sequences with
 * n_prompt synthetic prompt tokens each, prefilled together (as many whole
 * prompts per batch as fit), then n_gen tokens each (the first from the
 * prefill's logits, then n_gen - 1 steps of n_seq tokens, greedy).
 * n_seq <= the model's n_parallel. */
struct engine_bench_par {
    double prefill_ms;   /* all prompts */
    double decode_ms;    /* the n_gen - 1 batched steps */
    int64_t n_decoded;   /* tokens evaluated by those steps (n_seq * (n_gen - 1)) */
};
enum sp_status engine_bench_parallel(struct engine_model *m, int n_seq, int n_prompt, int n_gen,
                                     struct engine_bench_par *out, struct sp_err *err) SP_MUST_USE;

#endif
