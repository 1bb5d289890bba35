/* test_order.c - llama.cpp's float orders (src/kernels/ref/order.c): known
 * answers that pin the reference's summation structure and v_expf, and every
 * SIMD variant (F32/F16 vec_dot, vec_dot-order gemm, tinyBLAS-order gemm,
 * softmax exponentials, SiLU, RoPE) equal to the reference BIT FOR BIT on random
 * and extreme data. Golden agreement with llama.cpp rests on this. */
#include <math.h>

#include "base/base.h"
#include "kernels/kern_impl.h"
#include "test.h"

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd_u32(void) { return test_rand_u32(&g_rng); }
static float rnd_sym(float scale) { return ((float)(rnd_u32() & 0xFFFFFF) / 8388608.0f - 1.0f) * scale; }

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)); }

TEST(reference_structure_known_answers)
{
    /* the 16-lane tree: ((v[i]+v[i+8]) + (..+4)) then (0+2)+(1+3) */
    float v[16] = {0};
    v[0] = 1e8f;
    v[8] = -1e8f;
    v[1] = 1.0f; /* would be lost if added to 1e8 first */
    CHECK(kern_reduce16(v) == 1.0f);
    float w[16] = {0};
    w[0] = 1e8f;
    w[4] = 1.0f;
    w[2] = -1e8f; /* q0 = 1e8 + 1 (rounds to 1e8), q2 = -1e8: 0 */
    CHECK(kern_reduce16(w) == 0.0f);

    /* F32 vec_dot: 64-element body then tail; the last n % 8 tail products
     * are fused. With n = 1 the result is fmaf(x, y, 0) = x*y rounded once. */
    float x[72], y[72], s;
    for (int i = 0; i < 72; i++)
        x[i] = y[i] = 0;
    x[64] = 1.0f + 0x1p-11f;
    y[64] = 1.0f;
    x[65] = -(1.0f + 0x1p-12f);
    y[65] = 1.0f + 0x1p-12f; /* (1+2^-11) - (1+2^-12)^2 = -2^-24, lost unless fused */
    kern_ref_vec_dot_f32(66, &s, x, y);
    CHECK(s == -0x1p-24f);
    /* the first 8 tail products are not fused: the same pair there gives 0 */
    float x2[8] = {1.0f + 0x1p-11f, -(1.0f + 0x1p-12f)}, y2[8] = {1.0f, 1.0f + 0x1p-12f};
    kern_ref_vec_dot_f32(8, &s, x2, y2);
    CHECK(s == 0.0f);
    kern_ref_vec_dot_f32(2, &s, x2, y2);
    CHECK(s == -0x1p-24f);

    /* v_expf: the polynomial is within 2 ulp of expf over its range, flushes
     * at the documented limits, and is exact at 0 */
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        const float a = rnd_sym(87.0f);
        const float e = kern_ref_v_expf(a), r = expf(a);
        const double ulp = (double)nextafterf(r, INFINITY) - (double)r;
        const double err = fabs((double)e - (double)r) / ulp;
        worst = err > worst ? err : worst;
    }
    printf("  v_expf vs expf: worst %.2f ulp over [-87, 87]\n", worst);
    CHECK(worst <= 2.5);
    CHECK(kern_ref_v_expf(0.0f) == 1.0f);
    CHECK(kern_ref_v_expf(-INFINITY) == 0.0f);
    CHECK(kern_ref_v_expf(-200.0f) == 0.0f);
    CHECK(isinf(kern_ref_v_expf(200.0f)));
    CHECK(isnan(kern_ref_v_expf(NAN)));
    /* subnormal results keep a single rounding */
    CHECK(kern_ref_v_expf(-100.0f) > 0.0f && kern_ref_v_expf(-100.0f) < 0x1p-126f);
}

/* interesting inputs for exp: random at several scales plus the edges */
static void fill_exp_inputs(float *x, int n, int mode)
{
    static const float special[] = {0.0f, -0.0f, -INFINITY, INFINITY, NAN, 88.3f, 88.8f, -87.3f, -103.9f, -104.0f,
                                    -133.0f, -140.0f, -150.0f, 133.0f, 0x1p-140f, -0x1p-140f, 1e-30f, -5.5f};
    for (int i = 0; i < n; i++) {
        switch (mode) {
        case 0:
            x[i] = rnd_sym(10.0f);
            break;
        case 1:
            x[i] = rnd_sym(160.0f);
            break;
        default:
            x[i] = (rnd_u32() % 3) ? special[rnd_u32() % SP_ARRAY_LEN(special)] : rnd_sym(1.0f);
            break;
        }
    }
}

TEST(simd_softmax_silu_bit_exact)
{
    struct {
        enum kern_isa isa;
        double (*softmax)(int64_t, float *, const float *, float);
        void (*silu)(int64_t, float *, const float *);
    } v[] = {{KERN_ISA_AVX2, kern_avx2_softmax_exp, kern_avx2_silu_row},
             {KERN_ISA_AVX512, kern_avx512_softmax_exp, kern_avx512_silu_row}};
    int checked = 0;
    for (size_t k = 0; k < SP_ARRAY_LEN(v); k++) {
        if (kern_ops_isa(v[k].isa, GG_TYPE_F32) == NULL || kern_ops_isa(v[k].isa, GG_TYPE_F32)->isa != v[k].isa) {
            printf("  %s: not available on this CPU\n", kern_isa_name(v[k].isa));
            continue;
        }
        float x[200], y1[200], y2[200];
        int bad = 0;
        for (int rep = 0; rep < 300; rep++) {
            const int n = rep % 2 ? (int)(rnd_u32() % 200) : (int)(rnd_u32() % 40);
            fill_exp_inputs(x, n, rep % 3);
            float mx = -INFINITY;
            for (int i = 0; i < n; i++)
                mx = x[i] > mx ? x[i] : mx;
            if (rep % 5 == 0)
                mx = 0.0f;
            const double s1 = kern_ref_softmax_exp(n, y1, x, mx), s2 = v[k].softmax(n, y2, x, mx);
            bad += !(memcmp(&s1, &s2, sizeof s1) == 0 || (isnan(s1) && isnan(s2)));
            for (int i = 0; i < n; i++)
                bad += !same_bits(y1[i], y2[i]);
            kern_ref_silu_row(n, y1, x);
            v[k].silu(n, y2, x);
            for (int i = 0; i < n; i++)
                bad += !same_bits(y1[i], y2[i]);
            checked++;
        }
        printf("  %s softmax/silu: %d mismatches in 300 rows\n", kern_isa_name(v[k].isa), bad);
        CHECK_EQ_INT(bad, 0);
    }
    printf("  %d rows checked\n", checked);
}

TEST(simd_float_gemm_bit_exact)
{
    /* 2048: gemm_tb_hx's F32 weight blocks hold 16 rows of it (two blocks);
     * 16400: too long for its F32 buffer (rows from F16 in the tiles) */
    const int64_t sizes[] = {1, 7, 8, 15, 16, 17, 44, 63, 64, 65, 100, 128, 172, 200, 256, 1000, 2048, 16400};
    const int rows = 21, maxb = 9; /* 4-row groups of gemm_vd_f16 (8-row groups of gemm_tb_hx) and a rest */
    int checked = 0, hx_checked = 0, vdx_checked = 0;
    for (int isa = KERN_ISA_AVX2; isa < KERN_ISA_COUNT; isa++) {
        for (int t = 0; t < 2; t++) {
            const enum gg_type type = t ? GG_TYPE_F16 : GG_TYPE_F32;
            const struct kern_type_ops *o = kern_ops_isa((enum kern_isa)isa, type);
            const struct kern_type_ops *r = kern_ops_isa(KERN_ISA_REF, type);
            if (!o || (int)o->isa != isa)
                continue;
            CHECK(o->gemm_tb != NULL && r->gemm_tb != NULL);
            for (size_t si = 0; si < SP_ARRAY_LEN(sizes); si++) {
                const int64_t k = sizes[si];
                const size_t elt = t ? 2 : 4, rb = (size_t)k * elt + 32; /* padded strides */
                char *w = sp_calloc(rows, rb), *x = sp_calloc(maxb, rb);
                float *f = sp_malloc((size_t)k * 4), *y1 = sp_calloc(rows * maxb, 4), *y2 = sp_calloc(rows * maxb, 4);
                const size_t hxs = (size_t)k * 4 + 16; /* gemm_tb_hx's F32 rows of the F16 activations */
                float *hx = sp_calloc(maxb, hxs);
                CHECK(w && x && f && y1 && y2 && hx);
                for (int i = 0; i < rows + maxb; i++) {
                    for (int64_t e = 0; e < k; e++)
                        f[e] = rnd_sym(e % 9 == 0 ? 30.0f : 1.0f);
                    char *dst = i < rows ? w + (size_t)i * rb : x + (size_t)(i - rows) * rb;
                    if (t)
                        kern_fp32_to_fp16_row(f, (uint16_t *)(void *)dst, k);
                    else
                        memcpy(dst, f, (size_t)k * 4);
                    if (t && i >= rows)
                        kern_round_fp16_row(f, (float *)(void *)((char *)hx + (size_t)(i - rows) * hxs), k);
                }
                for (int nb = 1; nb <= maxb; nb++) {
                    int bad = 0;
                    r->gemm(k, 0, rows, nb, w, rb, x, rb, y1, rows);
                    o->gemm(k, 1, rows, nb, w, rb, x, rb, y2, rows); /* odd row range */
                    o->gemm(k, 0, 1, nb, w, rb, x, rb, y2, rows);
                    for (int i = 0; i < rows * nb; i++)
                        bad += !same_bits(y1[i], y2[i]);
                    for (int i = 0; i < rows; i++) {
                        float s;
                        o->vec_dot(k, &s, w + (size_t)i * rb, x);
                        bad += !same_bits(s, y1[i]);
                    }
                    if (t && o->gemm_hx) { /* vec_dot order from the F32 form of x */
                        memset(y2, 0, (size_t)rows * (size_t)nb * 4);
                        o->gemm_hx(k, 1, rows, nb, w, rb, hx, hxs, y2, rows);
                        o->gemm_hx(k, 0, 1, nb, w, rb, hx, hxs, y2, rows);
                        for (int i = 0; i < rows * nb; i++)
                            bad += !same_bits(y1[i], y2[i]);
                        vdx_checked++;
                    }
                    if (k % 16 == 0) {
                        r->gemm_tb(k, 0, rows, nb, w, rb, x, rb, y1, rows);
                        o->gemm_tb(k, 0, rows, nb, w, rb, x, rb, y2, rows);
                        for (int i = 0; i < rows * nb; i++)
                            bad += !same_bits(y1[i], y2[i]);
                        if (t && o->gemm_tb_hx) { /* the same bits from the F32 form of x */
                            memset(y2, 0, (size_t)rows * (size_t)nb * 4);
                            o->gemm_tb_hx(k, 1, rows, nb, w, rb, hx, hxs, y2, rows); /* odd row range */
                            o->gemm_tb_hx(k, 0, 1, nb, w, rb, hx, hxs, y2, rows);
                            for (int i = 0; i < rows * nb; i++)
                                bad += !same_bits(y1[i], y2[i]);
                            hx_checked++;
                        }
                    }
                    if (bad)
                        printf("  FAIL %s %s k=%lld nb=%d: %d mismatches\n", kern_isa_name((enum kern_isa)isa),
                               t ? "f16" : "f32", (long long)k, nb, bad);
                    CHECK_EQ_INT(bad, 0);
                    checked++;
                }
                sp_free(w);
                sp_free(x);
                sp_free(f);
                sp_free(y1);
                sp_free(y2);
                sp_free(hx);
            }
        }
    }
    printf("  %d (isa, type, k, batch) cases bit-exact, %d of them also gemm_tb_hx, %d gemm_hx\n", checked,
           hx_checked, vdx_checked);
    CHECK(checked == 0 || (hx_checked > 0 && vdx_checked > 0));
}

/* Attention's row scaling: the dispatched kernel (AVX2 where present) gives
 * the reference's products bit for bit and the same maximum (NaNs skipped,
 * -inf, +-0 and ties included). */
TEST(scale_max_row_exact)
{
    const int64_t sizes[] = {0, 1, 7, 8, 9, 31, 64, 100, 257};
    int bad = 0, checked = 0;
    for (size_t si = 0; si < SP_ARRAY_LEN(sizes); si++) {
        for (int v = 0; v < 6; v++) {
            const int64_t n = sizes[si];
            float a[257], b[257], c[257];
            for (int64_t i = 0; i < n; i++) {
                a[i] = rnd_sym(8.0f);
                if (v == 1 && i % 5 == 0)
                    a[i] = NAN;
                if (v == 2)
                    a[i] = -INFINITY;
                if (v == 3 && i % 3 == 0)
                    a[i] = (i % 2) ? 0.0f : -0.0f;
                if (v == 4)
                    a[i] = (float)(int)(a[i]); /* ties */
                if (v == 5)
                    a[i] = NAN;
            }
            memcpy(b, a, (size_t)n * 4);
            memcpy(c, a, (size_t)n * 4);
            const float s = v == 3 ? -0.125f : 0.125f;
            const float m1 = kern_ref_scale_max_row(a, n, s), m2 = kern_scale_max_row(b, n, s);
            kern_scale_row(c, n, s);
            for (int64_t i = 0; i < n; i++)
                bad += !same_bits(a[i], b[i]) || !same_bits(a[i], c[i]);
            bad += !(m1 == m2); /* +0 and -0 compare equal; neither is NaN */
            checked++;
        }
    }
    printf("  %d rows, %d mismatches\n", checked, bad);
    CHECK_EQ_INT(bad, 0);
}

/* RoPE's fused rotation: the AVX2 build (hardware FMA) equals the reference. */
TEST(rope_bit_exact)
{
    if (kern_ops_isa(KERN_ISA_AVX2, GG_TYPE_F32) == NULL) {
        printf("  avx2: not available on this CPU\n");
        return;
    }
    int bad = 0, checked = 0;
    for (int n_rot = 2; n_rot <= 128; n_rot += 6) {
        for (int neox = 0; neox < 2; neox++) {
            float v1[128], v2[128], cache[128];
            for (int i = 0; i < n_rot; i++) {
                v1[i] = v2[i] = rnd_sym(3.0f);
                cache[i] = rnd_sym(1.0f);
            }
            kern_ref_rope(v1, cache, n_rot, neox);
            kern_avx2_rope(v2, cache, n_rot, neox);
            for (int i = 0; i < n_rot; i++)
                bad += !same_bits(v1[i], v2[i]);
            checked++;
        }
    }
    printf("  %d rope rows, %d mismatches\n", checked, bad);
    CHECK_EQ_INT(bad, 0);
}

/* Q8_0 x Q8_0 follows ggml's x86 order (8 lanes of 4-product integer sums,
 * fma per block, hsum_float_8) in the reference and the AVX2 kernel. (The
 * AVX-512 VNNI kernel takes two blocks per zmm, so its lanes chain even and
 * odd blocks apart: equal within test_kernels' tolerance, not bit for bit.) */
TEST(q8_0_bit_exact)
{
    const struct kern_type_ops *r = kern_ops_isa(KERN_ISA_REF, GG_TYPE_Q8_0);
    int checked = 0;
    for (int isa = KERN_ISA_AVX2; isa <= KERN_ISA_AVX2; isa++) {
        const struct kern_type_ops *o = kern_ops_isa((enum kern_isa)isa, GG_TYPE_Q8_0);
        if (!o)
            continue;
        for (int64_t k = 32; k <= 2048; k *= 4) {
            float f[2048];
            static char w[4][2048 / 32 * 34], x[3][2048 / 32 * 34];
            for (int i = 0; i < 7; i++) {
                for (int64_t e = 0; e < k; e++)
                    f[e] = rnd_sym(e % 7 == 0 ? 5.0f : 1.0f);
                r->from_float(f, i < 4 ? w[i] : x[i - 4], k);
            }
            float y1[12], y2[12];
            for (int nb = 1; nb <= 3; nb++) {
                r->gemm(k, 0, 4, nb, w, sizeof w[0], x, sizeof x[0], y1, 4);
                o->gemm(k, 0, 4, nb, w, sizeof w[0], x, sizeof x[0], y2, 4);
                int bad = 0;
                for (int i = 0; i < 4 * nb; i++)
                    bad += !same_bits(y1[i], y2[i]);
                if (bad)
                    printf("  FAIL %s q8_0 k=%lld nb=%d: %d mismatches\n", kern_isa_name((enum kern_isa)isa),
                           (long long)k, nb, bad);
                CHECK_EQ_INT(bad, 0);
                checked++;
            }
        }
    }
    printf("  %d q8_0 cases bit-exact\n", checked);
}

TEST(pick_gemm_follows_llamafile_rule)
{
    const struct kern_type_ops *f32 = kern_ops(GG_TYPE_F32), *q8 = kern_ops(GG_TYPE_Q8_0);
    CHECK(kern_pick_gemm(f32, 64, 64, 2) == f32->gemm_tb);
    CHECK(kern_pick_gemm(f32, 64, 64, 1) == f32->gemm);   /* decode: vec_dot order */
    CHECK(kern_pick_gemm(f32, 64, 172, 5) == f32->gemm);  /* k % 16 != 0 */
    CHECK(kern_pick_gemm(f32, 66, 64, 5) == f32->gemm);   /* m % 4 != 0 */
    CHECK(kern_pick_gemm(q8, 64, 64, 5) == q8->gemm);     /* quantized: own kernels */
}

int main(void)
{
    RUN(reference_structure_known_answers);
    RUN(simd_softmax_silu_bit_exact);
    RUN(simd_float_gemm_bit_exact);
    RUN(scale_max_row_exact);
    RUN(rope_bit_exact);
    RUN(q8_0_bit_exact);
    RUN(pick_gemm_follows_llamafile_rule);
    return test_summary();
}
