/* ops.c - element-wise ops of the forward pass in ggml's CPU order, so the
 * results match llama.cpp's bit for bit where ggml is deterministic:
 * RMSNorm (sum of squares in double, mean rounded to float, two roundings
 * with the weight), the RoPE angle cache (repeated multiplication by
 * base^(-2/n_rot), frequency factors dividing the angle, as
 * ggml_rope_cache_init), scaling as ggml_scale. */
#include "model/ops.h"

#include <math.h>

void model_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

void model_rope_cache(float *cache, int n_rot, float pos, float freq_base, float freq_scale, const float *factors,
                      float mscale)
{
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float theta = pos;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float ff = factors ? factors[i0 / 2] : 1.0f;
        const float t = freq_scale * (theta / ff);
        cache[i0] = cosf(t) * mscale;
        cache[i0 + 1] = sinf(t) * mscale;
        theta *= theta_scale;
    }
}

void model_scale(float *x, int64_t n, float s)
{
    for (int64_t i = 0; i < n; i++)
        x[i] *= s;
}
