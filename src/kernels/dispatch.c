/* dispatch.c - builds the per-ISA ops tables once (pthread_once): the
 * reference table for every type, then the AVX2 table (reference entries
 * overridden by kern_avx2_fill), then the AVX-512 table (AVX2 entries
 * overridden by kern_avx512_fill). CPU features come from
 * __builtin_cpu_supports (which also checks OS support of the register
 * state); SPOKE_ISA=ref|avx2|avx512 caps the level used by kern_ops. */
#include <pthread.h>
#include <stdlib.h>

#include "kernels/kern_impl.h"
#include "obs/log.h"

static struct kern_type_ops g_tables[KERN_ISA_COUNT][GG_TYPE_COUNT];
static bool g_valid[GG_TYPE_COUNT];
static enum kern_isa g_cpu_isa = KERN_ISA_REF; /* what the CPU supports */
static enum kern_isa g_best = KERN_ISA_REF;    /* after the SPOKE_ISA cap */
static double (*g_softmax_exp)(int64_t, float *, const float *, float) = kern_ref_softmax_exp;
static void (*g_silu_row)(int64_t, float *, const float *) = kern_ref_silu_row;
static void (*g_rope)(float *, const float *, int, bool) = kern_ref_rope;
static void (*g_f32_to_f16_row)(const float *, uint16_t *, int64_t);
static float (*g_scale_max_row)(float *, int64_t, float) = kern_ref_scale_max_row;
static void (*g_scale_row)(float *, int64_t, float) = kern_ref_scale_row;
static void (*g_f16_to_f32_row)(const uint16_t *, float *, int64_t);
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
bool kern_dec_pf;
static enum kern_order g_order = KERN_ORDER_AVX512;

static void ref_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n)
{
    kern_ref_from_float_f16(src, dst, n);
}

static void ref_f16_to_f32_row(const uint16_t *src, float *dst, int64_t n)
{
    kern_ref_to_float_f16(src, dst, n);
}

/* gemm wrappers over the reference vec_dot of each type (prefix ref or ref256) */
#define GEMM_OVER(p, t)                                                                  \
    static void p##_gemm_##t(int64_t k, int64_t r0, int64_t r1, int64_t n_batch,         \
                             const void *w, size_t w_stride, const void *x, size_t x_stride, \
                             float *y, size_t y_stride)                                  \
    {                                                                                    \
        kern_gemm_generic(kern_##p##_vec_dot_##t, k, r0, r1, n_batch, w, w_stride, x,    \
                          x_stride, y, y_stride);                                        \
    }
#define REF_GEMM(t) GEMM_OVER(ref, t)
REF_GEMM(f32)
REF_GEMM(f16)
REF_GEMM(tb_f32)
REF_GEMM(tb_f16)
GEMM_OVER(ref256, f32)
GEMM_OVER(ref256, f16)
GEMM_OVER(ref256, tb_f32)
GEMM_OVER(ref256, tb_f16)
REF_GEMM(bf16)
REF_GEMM(q4_0)
REF_GEMM(q4_1)
REF_GEMM(q5_0)
REF_GEMM(q5_1)
REF_GEMM(q8_0)
REF_GEMM(q2_K)
REF_GEMM(q3_K)
REF_GEMM(q4_K)
REF_GEMM(q5_K)
REF_GEMM(q6_K)
REF_GEMM(iq4_nl)
REF_GEMM(iq4_xs)
#undef REF_GEMM
#undef GEMM_OVER

static void ref_set(enum gg_type type, enum gg_type vdt, kern_to_float_fn to_float,
                    kern_from_float_fn from_float, kern_from_float_fn quantize_act,
                    kern_vec_dot_fn vec_dot, kern_gemm_fn gemm)
{
    struct kern_type_ops *o = &g_tables[KERN_ISA_REF][type];
    o->type = type;
    o->vec_dot_type = vdt;
    o->to_float = to_float;
    o->from_float = from_float;
    o->quantize_act = quantize_act;
    o->vec_dot = vec_dot;
    o->gemm = gemm;
    o->isa = KERN_ISA_REF;
    g_valid[type] = true;
}

#define REF_W(T, t, V)                                                                   \
    ref_set(GG_TYPE_##T, GG_TYPE_##V, kern_ref_to_float_##t, kern_ref_from_float_##t, NULL, \
            kern_ref_vec_dot_##t, ref_gemm_##t)

static void fill_ref(void)
{
    ref_set(GG_TYPE_F32, GG_TYPE_F32, kern_ref_to_float_f32, kern_ref_from_float_f32,
            kern_ref_from_float_f32, kern_ref_vec_dot_f32, ref_gemm_f32);
    ref_set(GG_TYPE_F16, GG_TYPE_F16, kern_ref_to_float_f16, kern_ref_from_float_f16,
            kern_ref_from_float_f16, kern_ref_vec_dot_f16, ref_gemm_f16);
    g_tables[KERN_ISA_REF][GG_TYPE_F32].gemm_tb = ref_gemm_tb_f32;
    g_tables[KERN_ISA_REF][GG_TYPE_F16].gemm_tb = ref_gemm_tb_f16;
    ref_set(GG_TYPE_BF16, GG_TYPE_BF16, kern_ref_to_float_bf16, kern_ref_from_float_bf16,
            kern_ref_from_float_bf16, kern_ref_vec_dot_bf16, ref_gemm_bf16);
    REF_W(Q4_0, q4_0, Q8_0);
    REF_W(Q4_1, q4_1, Q8_1);
    REF_W(Q5_0, q5_0, Q8_0);
    REF_W(Q5_1, q5_1, Q8_1);
    ref_set(GG_TYPE_Q8_0, GG_TYPE_Q8_0, kern_ref_to_float_q8_0, kern_ref_from_float_q8_0,
            kern_ref_from_float_q8_0, kern_ref_vec_dot_q8_0, ref_gemm_q8_0);
    /* Q8_1 and Q8_K are activation types only: no vec_dot of their own */
    ref_set(GG_TYPE_Q8_1, GG_TYPE_Q8_1, kern_ref_to_float_q8_1, kern_ref_from_float_q8_1,
            kern_ref_from_float_q8_1, NULL, NULL);
    REF_W(Q2_K, q2_K, Q8_K);
    REF_W(Q3_K, q3_K, Q8_K);
    REF_W(Q4_K, q4_K, Q8_K);
    REF_W(Q5_K, q5_K, Q8_K);
    REF_W(Q6_K, q6_K, Q8_K);
    REF_W(IQ4_NL, iq4_nl, Q8_0);
    REF_W(IQ4_XS, iq4_xs, Q8_K);
    ref_set(GG_TYPE_Q8_K, GG_TYPE_Q8_K, kern_ref_to_float_q8_K, kern_ref_from_float_q8_K,
            kern_ref_from_float_q8_K, NULL, NULL);
}

/* SPOKE_ORDER=avx2: every ISA's F32/F16 dots and gemms, softmax and SiLU
 * become the AVX2-build order's reference kernels. */
static void use_avx2_order(void)
{
    for (int isa = KERN_ISA_REF; isa <= (int)g_cpu_isa; isa++) {
        struct kern_type_ops *f = &g_tables[isa][GG_TYPE_F32], *h = &g_tables[isa][GG_TYPE_F16];
        f->vec_dot = kern_ref256_vec_dot_f32;
        f->gemm = ref256_gemm_f32;
        f->gemm_tb = ref256_gemm_tb_f32;
        h->vec_dot = kern_ref256_vec_dot_f16;
        h->gemm = ref256_gemm_f16;
        h->gemm_tb = ref256_gemm_tb_f16;
        h->gemm_tb_hx = h->gemm_hx = NULL;
        f->gemm_ws = h->gemm_ws = NULL;
        f->isa = h->isa = KERN_ISA_REF;
    }
    g_softmax_exp = kern_ref256_softmax_exp;
    g_silu_row = kern_ref256_silu_row;
    g_order = KERN_ORDER_AVX2;
}

static enum kern_isa detect_isa(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return KERN_ISA_REF;
    /* F16C has no __builtin_cpu_supports name in older compilers; every AVX2
     * CPU has it. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni"))
        return KERN_ISA_AVX512;
    return KERN_ISA_AVX2;
#else
    return KERN_ISA_REF;
#endif
}

static void init_once(void)
{
    fill_ref();
    g_cpu_isa = detect_isa();
#if defined(__x86_64__) || defined(__i386__)
    kern_dec_pf = __builtin_cpu_is("intel");
#endif
    for (int isa = KERN_ISA_AVX2; isa <= (int)g_cpu_isa; isa++) {
        for (int t = 0; t < GG_TYPE_COUNT; t++) {
            if (!g_valid[t])
                continue;
            g_tables[isa][t] = g_tables[isa - 1][t];
            if (isa == KERN_ISA_AVX2)
                kern_avx2_fill(&g_tables[isa][t], (enum gg_type)t);
            else
                kern_avx512_fill(&g_tables[isa][t], (enum gg_type)t);
            /* the AVX2 panel gemm stays only beside the row kernels it was
             * measured against, unless the AVX-512 fill chose a panel itself */
            if (isa == KERN_ISA_AVX512 && g_tables[isa][t].gemm != g_tables[isa - 1][t].gemm &&
                g_tables[isa][t].gemm_ws == g_tables[isa - 1][t].gemm_ws)
                g_tables[isa][t].gemm_ws = NULL;
        }
    }
    enum kern_isa cap = KERN_ISA_AVX512;
    const char *env = getenv("SPOKE_ISA");
    if (env && *env) {
        if (strcmp(env, "ref") == 0)
            cap = KERN_ISA_REF;
        else if (strcmp(env, "avx2") == 0)
            cap = KERN_ISA_AVX2;
        else if (strcmp(env, "avx512") == 0)
            cap = KERN_ISA_AVX512;
        else
            LOG_WARN("kernels", "SPOKE_ISA=%s not understood (use ref, avx2 or avx512); ignored",
                     env);
    }
    g_best = g_cpu_isa < cap ? g_cpu_isa : cap;
    g_f32_to_f16_row = ref_f32_to_f16_row;
    g_f16_to_f32_row = ref_f16_to_f32_row;
    if (g_best >= KERN_ISA_AVX2) {
        g_f32_to_f16_row = kern_avx2_fp32_to_fp16_row;
        g_f16_to_f32_row = kern_avx2_fp16_to_fp32_row;
        g_scale_max_row = kern_avx2_scale_max_row;
        g_scale_row = kern_avx2_scale_row;
    }
    if (g_best >= KERN_ISA_AVX2)
        g_rope = kern_avx2_rope; /* AVX-512 has nothing to add to a few pairs */
    if (g_best >= KERN_ISA_AVX512) {
        g_softmax_exp = kern_avx512_softmax_exp;
        g_silu_row = kern_avx512_silu_row;
    } else if (g_best >= KERN_ISA_AVX2) {
        g_softmax_exp = kern_avx2_softmax_exp;
        g_silu_row = kern_avx2_silu_row;
    }
    const char *ord = getenv("SPOKE_ORDER");
    if (ord && strcmp(ord, "avx2") == 0)
        use_avx2_order();
    else if (ord && *ord && strcmp(ord, "avx512") != 0)
        LOG_WARN("kernels", "SPOKE_ORDER=%s not understood (use avx2 or avx512); ignored", ord);
    LOG_DEBUG("kernels", "cpu isa %s, using %s, %s-build float order", kern_isa_name(g_cpu_isa),
              kern_isa_name(g_best), g_order == KERN_ORDER_AVX2 ? "avx2" : "avx512");
}

void kern_init(void) { pthread_once(&g_once, init_once); }

enum kern_order kern_order_used(void)
{
    kern_init();
    return g_order;
}

enum kern_isa kern_isa_best(void)
{
    kern_init();
    return g_best;
}

const char *kern_isa_name(enum kern_isa isa)
{
    switch (isa) {
    case KERN_ISA_REF:
        return "ref";
    case KERN_ISA_AVX2:
        return "avx2";
    case KERN_ISA_AVX512:
        return "avx512";
    default:
        return "?";
    }
}

const struct kern_type_ops *kern_ops(enum gg_type type)
{
    kern_init();
    if ((int)type < 0 || type >= GG_TYPE_COUNT || !g_valid[type])
        return NULL;
    return &g_tables[g_best][type];
}

const struct kern_type_ops *kern_ops_isa(enum kern_isa isa, enum gg_type type)
{
    kern_init();
    if ((int)type < 0 || type >= GG_TYPE_COUNT || !g_valid[type])
        return NULL;
    if ((int)isa < 0 || isa > g_cpu_isa)
        return NULL;
    if (isa == KERN_ISA_REF)
        return &g_tables[KERN_ISA_REF][type];
    /* a variant exists when this ISA's fill provided something new */
    const struct kern_type_ops *o = &g_tables[isa][type];
    const struct kern_type_ops *prev = &g_tables[isa - 1][type];
    if (o->vec_dot == prev->vec_dot && o->gemm == prev->gemm &&
        o->quantize_act == prev->quantize_act && o->gemm_tb == prev->gemm_tb &&
        o->gemm_tb_hx == prev->gemm_tb_hx && o->gemm_hx == prev->gemm_hx && o->gemm_ws == prev->gemm_ws)
        return NULL;
    return o;
}

void kern_fp32_to_fp16_row(const float *src, uint16_t *dst, int64_t n)
{
    kern_init();
    g_f32_to_f16_row(src, dst, n);
}

void kern_fp16_to_fp32_row(const uint16_t *src, float *dst, int64_t n)
{
    kern_init();
    g_f16_to_f32_row(src, dst, n);
}

float kern_scale_max_row(float *x, int64_t n, float s)
{
    kern_init();
    return g_scale_max_row(x, n, s);
}

void kern_scale_row(float *x, int64_t n, float s)
{
    kern_init();
    g_scale_row(x, n, s);
}

void kern_round_fp16_row(const float *src, float *dst, int64_t n)
{
    kern_init();
    uint16_t h[256];
    for (int64_t i = 0; i < n; i += 256) {
        const int64_t m = SP_MIN((int64_t)256, n - i);
        g_f32_to_f16_row(src + i, h, m);
        g_f16_to_f32_row(h, dst + i, m);
    }
}

kern_gemm_fn kern_pick_gemm(const struct kern_type_ops *ops, int64_t m, int64_t k, int64_t n_batch)
{
    if (ops->gemm_tb && n_batch >= 2 && k % (g_order == KERN_ORDER_AVX2 ? 8 : 16) == 0 && m % 4 == 0)
        return ops->gemm_tb;
    return ops->gemm;
}

kern_gemm_fn kern_hx_gemm(const struct kern_type_ops *ops, kern_gemm_fn gemm)
{
    if (ops->type != GG_TYPE_F16 || gemm == NULL)
        return NULL;
    if (gemm == ops->gemm_tb)
        return ops->gemm_tb_hx;
    return gemm == ops->gemm ? ops->gemm_hx : NULL;
}

double kern_softmax_exp(int64_t n, float *y, const float *x, float max)
{
    kern_init();
    return g_softmax_exp(n, y, x, max);
}

void kern_silu_row(int64_t n, float *y, const float *x)
{
    kern_init();
    g_silu_row(n, y, x);
}

void kern_rope(float *v, const float *cache, int n_rot, bool neox)
{
    kern_init();
    g_rope(v, cache, n_rot, neox);
}
