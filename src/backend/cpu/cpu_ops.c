/* cpu_ops.c - the CPU backend's element-wise ops of the forward pass, in
 * ggml's CPU arithmetic order so results match llama.cpp bit for bit where
 * ggml is deterministic: embedding rows dequantized by the type's to_float
 * (then ggml_scale), RMSNorm (sum of squares in double, mean rounded to
 * float, two roundings with the weight), SiLU through the kernels'
 * ggml_vec_silu_f32 chunking then ggml_mul, GELU through ggml's F16 table
 * (ggml_vec_geglu_f32 with its +-10 clamps; the table is built once per
 * process), soft-capping as ggml_scale, ggml_tanh, ggml_scale. Row ops are
 * split by rows over the pool (parallel_for) with explicit task structs. */
#include "backend/cpu/cpu_impl.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---- GELU table: F16(gelu_tanh(h)) for every F16 input h, in float
 * arithmetic as ggml computes it (the inner 1 + a*x*x fused, as gcc does).
 * Built once; read-only afterwards. */
static uint16_t g_gelu_f16[65536];
static pthread_once_t g_gelu_once = PTHREAD_ONCE_INIT;

static void gelu_table_fill(void)
{
    const float coef_a = 0.044715f, sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    for (uint32_t i = 0; i < 65536u; i++) {
        const float x = kern_fp16_to_fp32((uint16_t)i);
        const float inner = fmaf(coef_a * x, x, 1.0f);
        const float y = 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * inner));
        g_gelu_f16[i] = kern_fp32_to_fp16(y);
    }
}

const uint16_t *backend_cpu_gelu_table(void)
{
    pthread_once(&g_gelu_once, gelu_table_fill);
    return g_gelu_f16;
}

void backend_cpu_rmsnorm_row(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

void backend_cpu_get_rows(struct backend *be, const struct backend_weight *w, const int32_t *ids, int64_t n,
                          float *out, size_t out_stride, float scale)
{
    SP_UNUSED(be);
    for (int64_t i = 0; i < n; i++) {
        float *o = out + (size_t)i * out_stride;
        if (w->grp_rows > 0) /* repacked: the row's lane of its group */
            w->ops->rp->row_to_float((const char *)w->data + (size_t)(ids[i] / w->grp_rows) * w->grp_bytes,
                                     ids[i] % w->grp_rows, o, w->k);
        else
            w->ops->to_float((const char *)w->data + (size_t)ids[i] * w->row_bytes, o, w->k);
        if (scale != 1.0f)
            for (int64_t d = 0; d < w->k; d++)
                o[d] *= scale;
    }
}

bool backend_weight_has_rows(const struct backend_weight *w)
{
    return w->ops && w->ops->to_float;
}

static void norm_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    SP_UNUSED(ith);
    const struct backend_norm *a = ud;
    for (int64_t i = i0; i < i1; i++) {
        float *x = a->x + (size_t)i * a->stride;
        if (a->add) {
            const float *y = a->add + (size_t)i * a->stride;
            for (int64_t d = 0; d < a->dim; d++)
                x[d] += y[d];
        }
        if (a->bias)
            for (int64_t d = 0; d < a->dim; d++)
                x[d] += a->bias[d];
        if (a->w)
            backend_cpu_rmsnorm_row(a->out + (size_t)i * a->stride, x, a->w, a->dim, a->eps);
    }
}

void backend_cpu_rms_norm(struct backend *be, const struct backend_norm *a)
{
    backend_cpu_parallel_for(be, norm_range, (void *)a, a->n, 1, (double)a->n * (double)a->dim * 6.0);
}

struct glu_task {
    enum backend_act act;
    float *a;
    const float *b;
    int64_t dim;
    size_t stride;
};

static void glu_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    SP_UNUSED(ith);
    const struct glu_task *t = ud;
    for (int64_t r = i0; r < i1; r++) {
        float *a = t->a + (size_t)r * t->stride;
        const float *b = t->b + (size_t)r * t->stride;
        if (t->act == BACKEND_ACT_GELU) {
            for (int64_t i = 0; i < t->dim; i++) {
                if (a[i] <= -10.0f)
                    a[i] = 0.0f;
                else if (a[i] >= 10.0f)
                    a[i] = a[i] * b[i];
                else
                    a[i] = kern_fp16_to_fp32(g_gelu_f16[kern_fp32_to_fp16(a[i])]) * b[i];
            }
        } else {
            kern_silu_row(t->dim, a, a); /* per row: the SIMD chunking restarts */
            for (int64_t i = 0; i < t->dim; i++)
                a[i] *= b[i];
        }
    }
}

void backend_cpu_glu(struct backend *be, enum backend_act act, float *a, const float *b, int64_t n, int64_t dim,
                     size_t stride)
{
    if (act == BACKEND_ACT_GELU)
        pthread_once(&g_gelu_once, gelu_table_fill);
    struct glu_task t = {act, a, b, dim, stride};
    backend_cpu_parallel_for(be, glu_range, &t, n, 1, (double)n * (double)dim * 20.0);
}

void backend_cpu_softcap(struct backend *be, float *x, int64_t n, float cap)
{
    SP_UNUSED(be);
    const float inv = 1.0f / cap;
    for (int64_t i = 0; i < n; i++)
        x[i] = tanhf(x[i] * inv) * cap;
}

enum sp_status backend_cpu_buf_alloc(struct backend *be, size_t bytes, void **out, struct sp_err *err)
{
    SP_UNUSED(be);
    *out = sp_huge_alloc(SP_MAX(bytes, (size_t)64));
    if (!*out)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory allocating %zu MiB of backend storage", bytes >> 20);
    memset(*out, 0, bytes);
    return SP_OK;
}

void backend_cpu_buf_free(struct backend *be, void *p)
{
    SP_UNUSED(be);
    sp_huge_free(p);
}

enum sp_status backend_to_f32(enum gg_type type, const void *src, float *dst, int64_t n, struct sp_err *err)
{
    if (type == GG_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return SP_OK;
    }
    const struct kern_type_ops *ops = kern_ops(type);
    if (!ops || !ops->to_float)
        return sp_err_set(err, SP_ERR_UNSUPPORTED, "no conversion from %s to F32", gg_type_name(type));
    struct gg_type_info ti;
    if (!gg_type_info(type, &ti) || n % ti.blck_size != 0)
        return sp_err_set(err, SP_ERR_FORMAT, "%lld elements are not a whole number of %s blocks", (long long)n,
                          gg_type_name(type));
    ops->to_float(src, dst, n);
    return SP_OK;
}
