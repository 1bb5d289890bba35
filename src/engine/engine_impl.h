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
#include "sample/grammar.h"
#include "sample/sample.h"

#include <pthread.h>
#include <stdatomic.h>

/* One event produced by the step loop for the generation's caller. */
struct engine_ev {
    int32_t token;          /* -1: final flush of held-back text */
    float logprob;
    int n_top;
    int32_t top_ids[20];
    float top_lp[20];
    size_t text_off, text_len; /* bytes in the queue's text buffer */
};

/* Events not yet handed to the caller (guarded by the scheduler's mutex). */
struct engine_evq {
    struct engine_ev *ev;
    size_t n, cap;
    struct sp_buf text;
};

/* The per-model step loop (sched.c): one thread that owns the model state
 * (KV cache, backend) and runs every step; generations are queued to it. */
struct engine_sched {
    pthread_t thread;
    bool started, stop;
    pthread_mutex_t mu;           /* waiting list, running set, event queues, done flags */
    pthread_cond_t cv;            /* wakes the step loop */
    pthread_mutex_t decode_mu;    /* held around each step (and by the bench helpers) */
    struct engine_ctx *wait_head, *wait_tail; /* submitted, no cells yet (FIFO) */
    struct engine_ctx **running;  /* [n_seq] admitted, in admission order */
    int n_running;
    int step_tokens;              /* token budget of one step */
    int max_step_seqs;            /* most running sequences in one step so far */
    int64_t prompt_evaluated;     /* prompt tokens evaluated so far */
    double ms_decode;             /* moving average: ms of a step with decode tokens only */
    int ms_decode_n;              /* ... of that many decode tokens */
    int mixed_steps;              /* steps with prompt tokens since the last decode-only one */
    double ms_prompt_tok;         /* moving average: extra ms per prompt token in a step */
    /* step scratch (step loop only) */
    int32_t *tok, *pos, *seq;     /* [n_batch] */
    bool *want;                   /* [n_batch] */
    struct engine_ctx **who;      /* [n_batch] */
    float *logits;                /* [n_seq][n_vocab] */
};

struct engine_model {
    struct gg_split *split;      /* the model's file(s) */
    const struct gg_file *file;  /* its first shard: metadata */
    struct model *model;
    struct tok_vocab *vocab;
    enum tok_chat_family chat;   /* fixed renderer (used when tmpl is NULL) */
    struct tok_tmpl *tmpl;       /* the Jinja chat template, or NULL */
    struct tok_tmpl *tmpl_tools; /* tokenizer.chat_template.tool_use: for requests with tools, or NULL */
    int tool_syntax;             /* enum engine_tool_syntax, from the (tool-use) template's markers */
    char tmpl_desc[96];          /* for logs: "jinja (model)", "chatml (fixed: parse error)"... */
    struct backend_choice backend; /* backend_choose's pick */
    struct backend_device *dev;    /* of that kind: holds the model's weights, makes its backend */
    char *name;
    char *bos_text, *eos_text;
    char *pieces;          /* engine_token_text: the text of every token, concatenated */
    uint32_t *piece_off;   /* [n_vocab + 1] offsets into pieces */
    int n_ctx;             /* most positions of one sequence */
    int n_threads;
    int n_seq;             /* sequences decoded together (max concurrency) */
    int n_cells;           /* KV budget in tokens */
    enum kv_type kv_type;
    size_t footprint;      /* file + state (KV budget + scratch) */
    double load_ms;
    struct model_state *st; /* the one state: shared KV cache + thread pool */
    pthread_mutex_t gv_mu;  /* guards gvocab */
    bool gv_mu_ok;
    struct grammar_vocab *gvocab; /* token trie for grammars, built at the first use */
    struct engine_sched sched;
    struct model_bert_state *bert; /* encoder models: the embedding state (no st, no step loop) */
    pthread_mutex_t embd_mu;       /* guards bert */
    bool embd_mu_ok;
};

/* ENGINE_SHARE: an admitted choice (n > 1) waiting for its leader's prompt
 * to be evaluated, whose cells are then copied into its span */
enum engine_phase { ENGINE_IDLE = 0, ENGINE_WAITING, ENGINE_PREFILL, ENGINE_SHARE, ENGINE_DECODE, ENGINE_DONE };

/* A generation slot: one sequence at a time. Fields marked (loop) belong to
 * the step loop while the generation runs. */
struct engine_ctx {
    struct engine_model *m;
    struct sampler *smp;
    struct grammar_matcher *gm; /* this generation's grammar state, NULL without one (loop) */
    uint8_t *allow;             /* [n_vocab] the grammar's mask (loop) */
    int32_t *tokens;       /* [n_ctx + 1] prompt + generated tokens (loop) */
    int n_tokens;          /* tokens in tokens[] (loop) */
    int n_prompt;
    int n_eval;            /* positions evaluated into the KV cache (loop) */
    int n_reused;          /* prompt tokens taken from the cache */
    int kv_seq;            /* KV sequence id while admitted */
    enum engine_phase phase;
    struct engine_ctx *next_wait;
    /* n choices of one prompt (engine_generate_n): the leader (choice 0) is
     * queued and prefills; the others ride along (leader set) */
    struct engine_ctx *leader;         /* NULL for a leader / a lone generation */
    struct engine_ctx **followers;     /* [n_followers] (leader only, during the call) */
    int n_followers;
    const struct engine_gen_params *p; /* while running */
    struct engine_gen_result r;        /* (loop) */
    enum sp_status status;             /* (loop) */
    struct sp_err err;                 /* (loop) */
    double t_start, t_first;
    int n_top;
    struct tok_stream ts;  /* (loop) */
    struct sp_buf held;    /* decoded text not yet released (possible stop prefix) (loop) */
    struct sp_buf emit;    /* text released by the current event (loop) */
    struct engine_evq q;   /* produced by the loop, drained by the caller */
    struct engine_evq q2;  /* the caller's swapped-out copy */
    pthread_cond_t cv;     /* wakes the caller */
    bool cv_ok;
    _Atomic uint64_t gen_id;     /* id of the running / last generation (0 = none yet) */
    _Atomic uint64_t cancel_id;  /* generation asked to stop (0 = none) */
};

/* The model's grammar vocabulary, built on first use (thread-safe). */
enum sp_status engine_grammar_vocab(struct engine_model *m, const struct grammar_vocab **out, struct sp_err *err);

/* sched.c */
enum sp_status engine_sched_start(struct engine_model *m, struct sp_err *err);
void engine_sched_stop(struct engine_model *m);
/* Queue c (prompt tokenized into c->tokens) and wake the loop. */
void engine_sched_submit(struct engine_model *m, struct engine_ctx *c);

/* Chat templates (chat.c): choose the template at load (config override,
 * the model's tokenizer.chat_template, built-in chatml), fixed-family
 * fallback with a warning when a template does not parse. */
enum sp_status engine_chat_setup(struct engine_model *em, const char *override, struct sp_err *err);


#endif
