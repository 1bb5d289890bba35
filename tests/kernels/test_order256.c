/* test_order256.c - the AVX2-build float order (src/kernels/ref/order_avx2build.c,
 * SPOKE_ORDER=avx2): known answers that pin its 8-lane reductions (vec_dot's
 * hadd order differs from tinyBLAS's hsum order), its v_expf (error bound
 * and the |n| > 126 / > 192 paths), and that the dispatcher switches every
 * F32/F16 entry, the softmax and SiLU, and tinyBLAS's k % 8 rule. The
 * end-to-end check is test_arch: llama.cpp's AVX2 traces bit for bit. */
#include <math.h>
#include <stdlib.h>

#include "base/base.h"
#include "kernels/kern_impl.h"
#include "test.h"

TEST(reductions_known_answers)
{
    /* vec_dot: t = lo + hi, then (t0 + t1) + (t2 + t3); tinyBLAS: h = hi + lo,
     * then (h0 + h2) + (h1 + h3). Lane 0 = 2^24, lanes 2 and 3 = 1: vec_dot
     * adds the ones together first (2^24 + 2, exact), tinyBLAS adds each to
     * 2^24 ((2^24 + 1) rounds to even: both lost). */
    float x[32] = {0}, y[32], s = 0;
    for (int i = 0; i < 32; i++)
        y[i] = 1.0f;
    x[0] = 0x1p24f;
    x[2] = 1.0f;
    x[3] = 1.0f;
    kern_ref256_vec_dot_f32(32, &s, x, y);
    CHECK(s == 0x1p24f + 2.0f);
    kern_ref256_vec_dot_tb_f32(8, &s, x, y);
    CHECK(s == 0x1p24f);
    /* the 4 accumulators (elements 0, 8, 16, 24 are lane 0 of acc0..acc3)
     * combine (0+2), (1+3), then (0+1): the ones in acc2 and acc3 are added
     * to 2^24 separately and lost ((2+3) first would keep both) */
    float z[32] = {0};
    z[0] = 0x1p24f;
    z[16] = 1.0f;
    z[24] = 1.0f;
    kern_ref256_vec_dot_f32(32, &s, z, y);
    CHECK(s == 0x1p24f);
    /* F16: same structure, exact halves */
    kern_half hx[32], hy[32];
    for (int i = 0; i < 32; i++) {
        hx[i] = kern_fp32_to_fp16(i % 3 == 0 ? 0.5f : -0.25f);
        hy[i] = kern_fp32_to_fp16((float)(i % 5));
    }
    float ref = 0;
    for (int i = 0; i < 32; i++)
        ref += kern_fp16_to_fp32(hx[i]) * kern_fp16_to_fp32(hy[i]);
    kern_ref256_vec_dot_f16(32, &s, hx, hy);
    CHECK(s == ref); /* small exact values: every order agrees */
    kern_ref256_vec_dot_tb_f16(32, &s, hx, hy);
    CHECK(s == ref);
}

TEST(v_expf_bounds)
{
    /* ggml's AVX2 v_expf: within 2 ulp of expf over the normal range */
    for (float v = -87.0f; v <= 88.0f; v += 0.0137f) {
        const float a = kern_ref256_v_expf(v), b = expf(v);
        CHECK_MSG(fabsf(a - b) <= 2.5e-7f * b, "v_expf(%g) = %.9g, expf %.9g", (double)v, (double)a, (double)b);
    }
    /* the scaled path (|n| in (126, 192]) keeps subnormal results close */
    CHECK(kern_ref256_v_expf(-95.0f) > 0.0f);
    CHECK_NEAR(kern_ref256_v_expf(-95.0f) / expf(-95.0f), 1.0, 1e-3);
    CHECK(kern_ref256_v_expf(-200.0f) == 0.0f);
    CHECK(kern_ref256_v_expf(-INFINITY) == 0.0f); /* masked softmax entries */
    CHECK(isinf(kern_ref256_v_expf(200.0f)));
    CHECK(kern_ref256_v_expf(0.0f) == 1.0f);
}

TEST(dispatch_switches)
{
    CHECK(kern_order_used() == KERN_ORDER_AVX2);
    const struct kern_type_ops *f = kern_ops(GG_TYPE_F32), *h = kern_ops(GG_TYPE_F16);
    CHECK(f->vec_dot == kern_ref256_vec_dot_f32);
    CHECK(h->vec_dot == kern_ref256_vec_dot_f16);
    CHECK(f->gemm_ws == NULL && h->gemm_ws == NULL);
    /* tinyBLAS takes k % 8 == 0 in this order */
    CHECK(kern_pick_gemm(f, 4, 24, 2) == f->gemm_tb);
    CHECK(kern_pick_gemm(f, 4, 20, 2) == f->gemm);
    CHECK(kern_pick_gemm(f, 4, 24, 1) == f->gemm);
    /* softmax: 8-wide chunks summed as hsum, the tail with expf */
    float x[13], y[13], y2[13];
    for (int i = 0; i < 13; i++)
        x[i] = -0.37f * (float)i;
    const double sum = kern_softmax_exp(13, y, x, 0.0f);
    double want = 0;
    float v[8];
    for (int i = 0; i < 8; i++)
        y2[i] = v[i] = kern_ref256_v_expf(x[i]);
    want += (double)(((v[4] + v[0]) + (v[6] + v[2])) + ((v[5] + v[1]) + (v[7] + v[3])));
    for (int i = 8; i < 13; i++) {
        y2[i] = expf(x[i]);
        want += (double)y2[i];
    }
    CHECK(sum == want);
    CHECK(memcmp(y, y2, sizeof y) == 0);
    kern_silu_row(13, y, x);
    for (int i = 0; i < 13; i++)
        CHECK(y[i] == x[i] / (1.0f + (i < 8 ? kern_ref256_v_expf(0.0f - x[i]) : expf(-x[i]))));
}

int main(void)
{
    setenv("SPOKE_ORDER", "avx2", 1); /* read once, at the first kernel call */
    RUN(reductions_known_answers);
    RUN(v_expf_bounds);
    RUN(dispatch_switches);
    return test_summary();
}
