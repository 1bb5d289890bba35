/* cpu_enc.c - the CPU backend's encoder ops (bert): LayerNorm with bias in
 * ggml_norm's order (mean, then the variance of the centred row, each summed
 * in double; then the weight and the bias as two roundings), ungated GELU
 * through ggml's F16 table (ggml_vec_gelu_f32 with its +-10 clamps), and
 * non-causal attention of F32 rows within segments (one per input; F32
 * dot products, softmax with the max subtracted and the sum in double).
 * Each op splits its rows (attention: its (row, head) items) over the pool
 * with parallel_for; per-thread attention scores live in the caller's
 * scratch. */
#include "backend/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

static void lnorm_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    SP_UNUSED(ith);
    const struct backend_lnorm *a = ud;
    const int64_t n = a->dim;
    for (int64_t i = i0; i < i1; i++) {
        float *x = a->x + (size_t)i * a->stride, *y = a->out + (size_t)i * a->stride;
        if (a->add) {
            const float *r = a->add + (size_t)i * a->stride;
            for (int64_t d = 0; d < n; d++)
                x[d] += r[d];
        }
        if (a->bias)
            for (int64_t d = 0; d < n; d++)
                x[d] += a->bias[d];
        double sum = 0.0;
        for (int64_t d = 0; d < n; d++)
            sum += (double)x[d];
        const float mean = (float)(sum / (double)n);
        double sum2 = 0.0;
        for (int64_t d = 0; d < n; d++) {
            const float v = x[d] - mean;
            y[d] = v; /* y may be x or add: x[d] and add[d] are not read again */
            sum2 += (double)(v * v);
        }
        const float scale = 1.0f / sqrtf((float)(sum2 / (double)n) + a->eps);
        for (int64_t d = 0; d < n; d++)
            y[d] = (y[d] * scale) * a->w[d];
        if (a->b)
            for (int64_t d = 0; d < n; d++)
                y[d] += a->b[d];
    }
}

void backend_cpu_layer_norm(struct backend *be, const struct backend_lnorm *a)
{
    backend_cpu_parallel_for(be, lnorm_range, (void *)(uintptr_t)a, a->n, 1, (double)a->n * a->dim * 8.0);
}

struct gelu_task {
    float *a;
    int64_t dim;
    size_t stride;
    const uint16_t *tab;
};

static void gelu_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    SP_UNUSED(ith);
    const struct gelu_task *t = ud;
    for (int64_t r = i0; r < i1; r++) {
        float *a = t->a + (size_t)r * t->stride;
        for (int64_t i = 0; i < t->dim; i++) {
            if (a[i] <= -10.0f)
                a[i] = 0.0f;
            else if (a[i] < 10.0f)
                a[i] = kern_fp16_to_fp32(t->tab[kern_fp32_to_fp16(a[i])]);
        }
    }
}

void backend_cpu_gelu(struct backend *be, float *a, int64_t n, int64_t dim, size_t stride)
{
    struct gelu_task t = {a, dim, stride, backend_cpu_gelu_table()};
    backend_cpu_parallel_for(be, gelu_range, &t, n, 1, (double)n * dim * 4.0);
}

static void enc_attn_range(void *ud, int ith, int64_t it0, int64_t it1)
{
    const struct backend_enc_attention *a = ud;
    const int hd = a->head_dim, nh = a->n_head, group = a->n_head / a->n_head_kv;
    const int64_t Dq = (int64_t)nh * hd, Dkv = (int64_t)a->n_head_kv * hd;
    float *sc = a->scratch + (size_t)ith * (size_t)a->max_len;
    for (int64_t it = it0; it < it1; it++) {
        const int64_t r = it / nh;
        const int h = (int)(it % nh), g = h / group;
        const int64_t j0 = a->seg0[r], j1 = a->seg1[r];
        const float *q = a->q + r * Dq + (int64_t)h * hd;
        float mx = -INFINITY;
        for (int64_t j = j0; j < j1; j++) {
            const float *k = a->k + j * Dkv + (int64_t)g * hd;
            float dot = 0.0f;
            for (int d = 0; d < hd; d++)
                dot += q[d] * k[d];
            sc[j - j0] = dot * a->scale;
            mx = sc[j - j0] > mx ? sc[j - j0] : mx;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < j1 - j0; j++) {
            sc[j] = expf(sc[j] - mx);
            sum += (double)sc[j];
        }
        const float inv = (float)(1.0 / sum);
        float *o = a->out + r * Dq + (int64_t)h * hd;
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int64_t j = j0; j < j1; j++) {
            const float p = sc[j - j0] * inv;
            const float *v = a->v + j * Dkv + (int64_t)g * hd;
            for (int d = 0; d < hd; d++)
                o[d] += p * v[d];
        }
    }
}

void backend_cpu_enc_attention(struct backend *be, const struct backend_enc_attention *a)
{
    double work = 0;
    for (int64_t i = 0; i < a->n; i++)
        work += (double)(a->seg1[i] - a->seg0[i]) * a->n_head * a->head_dim * 4.0;
    backend_cpu_parallel_for(be, enc_attn_range, (void *)(uintptr_t)a, a->n * a->n_head, 1, work);
}
