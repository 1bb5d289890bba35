/* sample.h - token samplers: greedy, temperature, top-k, top-p, min-p,
 * repetition / frequency / presence penalties, seeded RNG; logprobs.
 *
 * The chain is llama.cpp's default order: penalties -> top-k -> top-p ->
 * min-p -> temperature -> draw. temperature <= 0 means greedy (argmax after
 * penalties). A sampler owns its scratch (sized for the vocabulary at
 * creation; sampling allocates nothing) and its RNG: the same seed and the
 * same logits give the same tokens. One thread per sampler. */
#ifndef SPOKE_SAMPLE_H
#define SPOKE_SAMPLE_H

#include "base/base.h"

struct sample_params {
    float temperature;       /* <= 0: greedy */
    int top_k;               /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off; > 1 discourages repeats (llama.cpp semantics) */
    int repeat_last_n;       /* tokens of history the penalties look at (0: none, -1: all) */
    float presence_penalty;  /* OpenAI: subtract once per token present */
    float frequency_penalty; /* OpenAI: subtract per occurrence */
    uint64_t seed;
    const struct sample_bias *bias; /* OpenAI logit_bias: added to the logits before the
                                       penalties; <= -100 bans the token (borrowed) */
    size_t n_bias;
};
struct sample_bias {
    int32_t id;   /* ids outside the vocabulary are ignored */
    float bias;
};

/* Defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, penalties off
 * (repeat 1.0 over the last 64), seed 0. */
void sample_params_default(struct sample_params *p);

struct sampler;

/* Errors: SP_ERR_INVALID (n_vocab < 1), SP_ERR_NOMEM. */
enum sp_status sample_new(int n_vocab, const struct sample_params *p, struct sampler **out,
                          struct sp_err *err) SP_MUST_USE;
void sample_free(struct sampler *s); /* NULL is a no-op */
/* Replace the parameters and reseed the RNG from p->seed. */
void sample_reset(struct sampler *s, const struct sample_params *p);

/* Pick the next token from n_vocab logits (not modified). hist holds the
 * previous tokens (prompt + generated, oldest first) for the penalties. */
int32_t sample_token(struct sampler *s, const float *logits, const int32_t *hist, size_t n_hist);

/* The same with a mask: tokens with allow[i] == 0 get -inf logits after the
 * bias and penalties, before top-k and the rest (constrained output). At
 * least one token must be allowed. allow NULL = no mask. */
int32_t sample_token_masked(struct sampler *s, const float *logits, const uint8_t *allow, const int32_t *hist,
                            size_t n_hist);

/* Natural-log probability of token under softmax(logits) (the model's own
 * distribution), and the n_top (<= 20) most likely tokens with theirs,
 * most likely first. Returns the logprob of token. */
float sample_logprobs(const float *logits, int n_vocab, int32_t token, int n_top, int32_t *top_ids,
                      float *top_lp);

/* Index of the largest logit (lowest index on ties). */
int32_t sample_argmax(const float *logits, int n_vocab);

/* The RNG (xoshiro256** seeded by splitmix64), exposed for tests. */
struct sample_rng {
    uint64_t s[4];
};
void sample_rng_seed(struct sample_rng *r, uint64_t seed);
uint64_t sample_rng_next(struct sample_rng *r);
double sample_rng_uniform(struct sample_rng *r); /* [0, 1) */

#endif
