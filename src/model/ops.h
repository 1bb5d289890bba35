/* ops.h - model-internal element-wise ops of the forward pass, each in
 * ggml's CPU arithmetic order (see ops.c). Not part of the public API. */
#ifndef SPOKE_MODEL_OPS_H
#define SPOKE_MODEL_OPS_H

#include "model/model.h"

/* out = rmsnorm(x) * w over n elements (out may equal x). */
void model_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
/* cos/sin pairs for n_rot/2 rotary frequencies at position pos; factors
 * (n_rot/2 divisors of the frequencies) may be NULL; mscale multiplies
 * cos and sin (1 = none). */
void model_rope_cache(float *cache, int n_rot, float pos, float freq_base, float freq_scale, const float *factors,
                      float mscale);
/* x *= s. */
void model_scale(float *x, int64_t n, float s);

#endif
