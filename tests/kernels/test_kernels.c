/* test_kernels.c - tests for src/kernels: block layouts (known answers),
 * fp16/bf16 conversion, quantize->dequantize error bounds per type,
 * quantizer determinism, reference dot products against float dots of the
 * dequantized data, and every ISA variant (vec_dot, gemm with n_batch 1..7
 * and odd row ranges, activation quantizers) against the reference. */
#include "base/base.h"
#include "kernels/kern_impl.h"
#include "test.h"

static bool g_asan;
static void *g_ws; /* KERN_GEMM_WS_BYTES for gemm_ws */

/* ---- deterministic random data */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd_u32(void) { return test_rand_u32(&g_rng); }
static float rnd_uniform(void) { return (float)((rnd_u32() & 0xFFFFFF) / 16777216.0); }
static float rnd_normal(void)
{
    float s = 0;
    for (int i = 0; i < 6; i++)
        s += rnd_uniform();
    return (s - 3.0f) * 1.41421356f;
}
/* weights-like data: normal, with a few outliers and an occasional offset */
static void fill_data(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++) {
        float v = rnd_normal() * scale;
        if ((rnd_u32() % 97) == 0)
            v *= 4.0f;
        x[i] = v;
    }
}

struct tinfo {
    enum gg_type type;
    const char *name;
    int blk;
    size_t bsz;
    double max_rel_rmse; /* quantize->dequantize RMSE / RMS of the data */
};

static const struct tinfo k_types[] = {
    { GG_TYPE_F32, "F32", 1, 4, 0.0 },
    { GG_TYPE_F16, "F16", 1, 2, 0.0005 },
    { GG_TYPE_BF16, "BF16", 1, 2, 0.004 },
    { GG_TYPE_Q8_0, "Q8_0", 32, sizeof(block_q8_0), 0.0075 },
    { GG_TYPE_Q8_1, "Q8_1", 32, sizeof(block_q8_1), 0.0075 },
    { GG_TYPE_Q5_0, "Q5_0", 32, sizeof(block_q5_0), 0.06 },
    { GG_TYPE_Q5_1, "Q5_1", 32, sizeof(block_q5_1), 0.05 },
    { GG_TYPE_Q4_0, "Q4_0", 32, sizeof(block_q4_0), 0.12 },
    { GG_TYPE_Q4_1, "Q4_1", 32, sizeof(block_q4_1), 0.10 },
    { GG_TYPE_Q8_K, "Q8_K", 256, sizeof(block_q8_K), 0.0125 },
    { GG_TYPE_Q6_K, "Q6_K", 256, sizeof(block_q6_K), 0.025 },
    { GG_TYPE_Q5_K, "Q5_K", 256, sizeof(block_q5_K), 0.048 },
    { GG_TYPE_Q4_K, "Q4_K", 256, sizeof(block_q4_K), 0.092 },
    { GG_TYPE_Q3_K, "Q3_K", 256, sizeof(block_q3_K), 0.20 },
    { GG_TYPE_Q2_K, "Q2_K", 256, sizeof(block_q2_K), 0.38 },
    { GG_TYPE_IQ4_NL, "IQ4_NL", 32, sizeof(block_iq4_nl), 0.10 },
    { GG_TYPE_IQ4_XS, "IQ4_XS", 256, sizeof(block_iq4_xs), 0.10 },
};

static const struct tinfo *tinfo_of(enum gg_type t)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(k_types); i++)
        if (k_types[i].type == t)
            return &k_types[i];
    return NULL;
}

static size_t row_bytes(enum gg_type t, int64_t n)
{
    const struct tinfo *ti = tinfo_of(t);
    return (size_t)(n / ti->blk) * ti->bsz;
}

/* ---- known answers */
TEST(block_layout_known_answers)
{
    /* Q4_0: d = 0.5, nibbles j -> j (low) and 15-j (high) */
    block_q4_0 b;
    b.d = kern_fp32_to_fp16(0.5f);
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float out[32];
    kern_ref_to_float_q4_0(&b, out, 32);
    for (int j = 0; j < 16; j++) {
        CHECK(out[j] == 0.5f * (float)(j - 8));
        CHECK(out[j + 16] == 0.5f * (float)(7 - j));
    }
    /* Q8_0 */
    block_q8_0 c;
    c.d = kern_fp32_to_fp16(0.25f);
    for (int j = 0; j < 32; j++)
        c.qs[j] = (int8_t)(j - 16);
    kern_ref_to_float_q8_0(&c, out, 32);
    for (int j = 0; j < 32; j++)
        CHECK(out[j] == 0.25f * (float)(j - 16));
    /* Q5_0: qh bit j is the 5th bit of element j */
    block_q5_0 q5;
    q5.d = kern_fp32_to_fp16(1.0f);
    uint32_t qh = 0x80000001u; /* element 0 and element 31 have the high bit */
    memcpy(q5.qh, &qh, 4);
    memset(q5.qs, 0, 16);
    kern_ref_to_float_q5_0(&q5, out, 32);
    CHECK(out[0] == 0.0f && out[31] == 0.0f && out[1] == -16.0f && out[16] == -16.0f);
    /* Q4_K: d=1, dmin=1, scale 2 / min 1 for sub-block 0, quants all 3 */
    block_q4_K k4;
    memset(&k4, 0, sizeof k4);
    k4.d = kern_fp32_to_fp16(1.0f);
    k4.dmin = kern_fp32_to_fp16(1.0f);
    k4.scales[0] = 2;
    k4.scales[4] = 1;
    memset(k4.qs, 0x33, sizeof k4.qs);
    float o256[256];
    kern_ref_to_float_q4_K(&k4, o256, 256);
    CHECK(o256[0] == 2.0f * 3 - 1.0f);
    CHECK(o256[31] == 5.0f);
    CHECK(o256[32] == 0.0f); /* sub-block 1: scale 0, min 0 */
    /* Q6_K: all quants 32 (zero), scales 1 -> zeros; one quant 33 -> d */
    block_q6_K k6;
    memset(&k6, 0, sizeof k6);
    k6.d = kern_fp32_to_fp16(0.5f);
    for (int i = 0; i < 16; i++)
        k6.scales[i] = 1;
    memset(k6.qh, 0xAA, sizeof k6.qh); /* high bits 2 -> 32 */
    k6.ql[0] = 1;                      /* element 0 = 33 */
    kern_ref_to_float_q6_K(&k6, o256, 256);
    CHECK(o256[0] == 0.5f);
    CHECK(o256[1] == 0.0f && o256[255] == 0.0f);
    /* IQ4_NL: d = 0.5, indices j (low nibble) and 15 - j (high) into the table */
    static const int8_t lv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    block_iq4_nl nl;
    nl.d = kern_fp32_to_fp16(0.5f);
    for (int j = 0; j < 16; j++)
        nl.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    kern_ref_to_float_iq4_nl(&nl, out, 32);
    for (int j = 0; j < 16; j++) {
        CHECK(out[j] == 0.5f * (float)lv[j]);
        CHECK(out[j + 16] == 0.5f * (float)lv[15 - j]);
    }
    /* IQ4_XS: 6-bit scales minus 32, low nibbles in scales_l, high 2 bits in
     * scales_h: sub-block 0 scale 33 (+1), 1..6 scale 0 (-32), 7 scale 63 (+31) */
    block_iq4_xs xs;
    memset(&xs, 0, sizeof xs);
    xs.d = kern_fp32_to_fp16(1.0f);
    xs.scales_l[0] = 0x01;
    xs.scales_l[3] = 0xF0;
    xs.scales_h = (uint16_t)(2u | (3u << 14));
    memset(xs.qs, 0x98, sizeof xs.qs); /* low nibble 8 -> 1, high 9 -> 13 */
    kern_ref_to_float_iq4_xs(&xs, o256, 256);
    CHECK(o256[0] == 1.0f && o256[15] == 1.0f && o256[16] == 13.0f && o256[31] == 13.0f);
    CHECK(o256[32] == -32.0f && o256[63] == -32.0f * 13.0f && o256[223] == -32.0f * 13.0f);
    CHECK(o256[224] == 31.0f && o256[255] == 31.0f * 13.0f);
}

/* IQ4 quantizers: a block whose values are exactly levels times a scale
 * (ties and the sign of the largest value included) comes back exactly, and
 * values at a midpoint between two levels take the upper one, as ggml's
 * best_index_int8 does. */
TEST(iq4_quantizer_known_answers)
{
    static const int8_t lv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    float x[256], y[256];
    for (int j = 0; j < 256; j++)
        x[j] = 0.25f * (float)lv[(j * 7 + j / 32) % 16];
    block_iq4_nl nl[8];
    kern_ref_from_float_iq4_nl(x, nl, 256);
    kern_ref_to_float_iq4_nl(nl, y, 256);
    for (int j = 0; j < 256; j++)
        CHECK_MSG(y[j] == x[j], "IQ4_NL level %d: %g vs %g", j, (double)y[j], (double)x[j]);
    block_iq4_xs xs;
    kern_ref_from_float_iq4_xs(x, &xs, 256);
    kern_ref_to_float_iq4_xs(&xs, y, 256);
    double e2 = 0, x2 = 0;
    for (int j = 0; j < 256; j++) {
        e2 += ((double)y[j] - x[j]) * ((double)y[j] - x[j]);
        x2 += (double)x[j] * x[j];
    }
    CHECK_MSG(sqrt(e2 / x2) < 0.01, "IQ4_XS on levels: rel rmse %g", sqrt(e2 / x2));
    /* one block: -127 (sets the scale 1.0) and the midpoint of 1 and 13 (7) */
    float m[32];
    for (int j = 0; j < 32; j++)
        m[j] = (float)lv[j % 16];
    m[5] = 7.0f;
    kern_ref_from_float_iq4_nl(m, nl, 32);
    kern_ref_to_float_iq4_nl(nl, y, 32);
    CHECK(kern_fp16_to_fp32(nl[0].d) == 1.0f);
    CHECK(y[5] == 13.0f);
    CHECK(y[0] == -127.0f && y[31] == 113.0f);
}

TEST(fp16_bf16_conversion)
{
    /* every finite half round-trips exactly */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu))
            continue; /* nan */
        float f = kern_fp16_to_fp32((uint16_t)h);
        CHECK_EQ_INT(kern_fp32_to_fp16(f), h);
    }
    CHECK(kern_fp16_to_fp32(0x3c00) == 1.0f);
    CHECK(kern_fp16_to_fp32(0xc000) == -2.0f);
    CHECK(kern_fp16_to_fp32(0x0001) == 5.9604644775390625e-08f);
    CHECK_EQ_INT(kern_fp32_to_fp16(65504.0f), 0x7bff);
    CHECK_EQ_INT(kern_fp32_to_fp16(65520.0f), 0x7c00);  /* ties to even -> inf */
    CHECK_EQ_INT(kern_fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00); /* tie -> even */
    CHECK_EQ_INT(kern_fp32_to_fp16(1.0f + 3.0f / 2048), 0x3c02); /* tie -> even */
    CHECK_EQ_INT(kern_fp32_to_fp16(2.9802322387695312e-08f), 0x0000); /* 2^-25 tie -> 0 */
    CHECK_EQ_INT(kern_fp32_to_fp16(3.0e-08f), 0x0001);
    CHECK_EQ_INT(kern_fp32_to_fp16(1e10f), 0x7c00);
    CHECK_EQ_INT(kern_fp32_to_fp16(-1e10f), 0xfc00);
    CHECK((kern_fp32_to_fp16(NAN) & 0x7e00) == 0x7e00);
    /* rounding: midpoints between adjacent halves go to the even one */
    for (int i = 0; i < 2000; i++) {
        uint16_t h = (uint16_t)(rnd_u32() % 0x7bff);
        float a = kern_fp16_to_fp32(h), b = kern_fp16_to_fp32((uint16_t)(h + 1));
        float mid = (float)(((double)a + (double)b) / 2);
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : h;
        CHECK_EQ_INT(kern_fp32_to_fp16(mid), want);
        float q1 = (float)((double)a + ((double)b - a) * 0.25);
        CHECK_EQ_INT(kern_fp32_to_fp16(q1), h);
    }
    /* row versions (SIMD) equal the scalar ones, tails included */
    {
        float f[67], g[67];
        uint16_t h1[67], h2[67];
        fill_data(f, 67, 100.0f);
        f[5] = 1e-7f; /* subnormal half */
        f[6] = 70000.0f; /* inf */
        kern_fp32_to_fp16_row(f, h1, 67);
        for (int i = 0; i < 67; i++)
            h2[i] = kern_fp32_to_fp16(f[i]);
        CHECK(memcmp(h1, h2, sizeof h1) == 0);
        kern_fp16_to_fp32_row(h1, g, 67);
        for (int i = 0; i < 67; i++)
            CHECK(g[i] == kern_fp16_to_fp32(h1[i]));
    }
    CHECK(kern_bf16_to_fp32(0x3f80) == 1.0f);
    CHECK_EQ_INT(kern_fp32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(kern_fp32_to_bf16(1.00390625f), 0x3f80); /* tie -> even */
    CHECK_EQ_INT(kern_fp32_to_bf16(1.01171875f), 0x3f82); /* tie -> even */
    CHECK((kern_fp32_to_bf16(NAN) & 0x7fc0) == 0x7fc0);
}

TEST(ops_table_complete)
{
    static const struct {
        enum gg_type t, vdt;
    } want[] = {
        { GG_TYPE_F32, GG_TYPE_F32 },   { GG_TYPE_F16, GG_TYPE_F16 },
        { GG_TYPE_BF16, GG_TYPE_BF16 }, { GG_TYPE_Q4_0, GG_TYPE_Q8_0 },
        { GG_TYPE_Q4_1, GG_TYPE_Q8_1 }, { GG_TYPE_Q5_0, GG_TYPE_Q8_0 },
        { GG_TYPE_Q5_1, GG_TYPE_Q8_1 }, { GG_TYPE_Q8_0, GG_TYPE_Q8_0 },
        { GG_TYPE_Q2_K, GG_TYPE_Q8_K }, { GG_TYPE_Q3_K, GG_TYPE_Q8_K },
        { GG_TYPE_Q4_K, GG_TYPE_Q8_K }, { GG_TYPE_Q5_K, GG_TYPE_Q8_K },
        { GG_TYPE_Q6_K, GG_TYPE_Q8_K }, { GG_TYPE_IQ4_NL, GG_TYPE_Q8_0 },
        { GG_TYPE_IQ4_XS, GG_TYPE_Q8_K },
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(want); i++) {
        const struct kern_type_ops *o = kern_ops(want[i].t);
        CHECK(o != NULL);
        CHECK(o->type == want[i].t && o->vec_dot_type == want[i].vdt);
        CHECK(o->to_float && o->from_float && o->vec_dot && o->gemm);
        const struct kern_type_ops *a = kern_ops(o->vec_dot_type);
        CHECK(a != NULL && a->quantize_act != NULL);
    }
    CHECK(kern_ops((enum gg_type)4) == NULL);
    CHECK(kern_ops((enum gg_type)39) == NULL);
    CHECK(kern_ops_isa(KERN_ISA_REF, GG_TYPE_Q4_0) != NULL);
    CHECK_EQ_STR(kern_isa_name(KERN_ISA_AVX2), "avx2");
    fprintf(stderr, "  best isa: %s\n", kern_isa_name(kern_isa_best()));
}

TEST(roundtrip_error_and_determinism)
{
    const int64_t n = g_asan ? 1024 : 8192;
    float *x = sp_malloc((size_t)n * sizeof(float));
    float *y = sp_malloc((size_t)n * sizeof(float));
    void *q1 = sp_malloc((size_t)n * 4 + 64), *q2 = sp_malloc((size_t)n * 4 + 64);
    CHECK(x && y && q1 && q2);
    fill_data(x, n, 0.02f);
    for (size_t i = 0; i < SP_ARRAY_LEN(k_types); i++) {
        const struct tinfo *ti = &k_types[i];
        const struct kern_type_ops *o = kern_ops_isa(KERN_ISA_REF, ti->type);
        CHECK(o != NULL);
        size_t rb = row_bytes(ti->type, n);
        memset(q1, 0xA5, rb);
        memset(q2, 0x5A, rb);
        o->from_float(x, q1, n);
        o->from_float(x, q2, n);
        CHECK_MSG(memcmp(q1, q2, rb) == 0, "%s quantizer not deterministic", ti->name);
        o->to_float(q1, y, n);
        double se = 0, ss = 0;
        for (int64_t j = 0; j < n; j++) {
            se += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
            ss += (double)x[j] * x[j];
        }
        double rel = sqrt(se / ss);
        fprintf(stderr, "  %-6s rel rmse %.5f (bound %.4f)\n", ti->name, rel, ti->max_rel_rmse);
        CHECK_MSG(rel <= ti->max_rel_rmse, "%s rel rmse %g > %g", ti->name, rel,
                  ti->max_rel_rmse);
        /* all-zero input quantizes to zeros */
        memset(y, 0, (size_t)n * sizeof(float));
        o->from_float(y, q1, ti->blk * 2 > 512 ? ti->blk * 2 : 512);
        o->to_float(q1, y, ti->blk * 2 > 512 ? ti->blk * 2 : 512);
        for (int j = 0; j < 512; j++)
            CHECK_MSG(y[j] == 0.0f, "%s zero block", ti->name);
    }
    sp_free(x);
    sp_free(y);
    sp_free(q1);
    sp_free(q2);
}

static const enum gg_type k_wtypes[] = {
    GG_TYPE_F32,  GG_TYPE_F16,  GG_TYPE_BF16, GG_TYPE_Q4_0, GG_TYPE_Q4_1,
    GG_TYPE_Q5_0, GG_TYPE_Q5_1, GG_TYPE_Q8_0, GG_TYPE_Q2_K, GG_TYPE_Q3_K,
    GG_TYPE_Q4_K, GG_TYPE_Q5_K, GG_TYPE_Q6_K, GG_TYPE_IQ4_NL, GG_TYPE_IQ4_XS,
};

/* The reference vec_dot equals the float dot of the dequantized operands. */
TEST(ref_vec_dot_matches_dequantized)
{
    const int64_t n = g_asan ? 512 : 4096;
    float *w = sp_malloc((size_t)n * 4), *x = sp_malloc((size_t)n * 4);
    float *wd = sp_malloc((size_t)n * 4), *xd = sp_malloc((size_t)n * 4);
    void *wq = sp_malloc((size_t)n * 4), *xq = sp_malloc((size_t)n * 4);
    CHECK(w && x && wd && xd && wq && xq);
    fill_data(w, n, 0.05f);
    fill_data(x, n, 1.0f);
    for (size_t i = 0; i < SP_ARRAY_LEN(k_wtypes); i++) {
        const struct kern_type_ops *o = kern_ops_isa(KERN_ISA_REF, k_wtypes[i]);
        const struct kern_type_ops *a = kern_ops_isa(KERN_ISA_REF, o->vec_dot_type);
        o->from_float(w, wq, n);
        a->quantize_act(x, xq, n);
        o->to_float(wq, wd, n);
        a->to_float(xq, xd, n);
        double want = 0, mag = 0;
        for (int64_t j = 0; j < n; j++) {
            want += (double)wd[j] * xd[j];
            mag += fabs((double)wd[j] * xd[j]);
        }
        float got;
        o->vec_dot(n, &got, wq, xq);
        /* Q8_1's s is rounded to fp16: allow that too */
        double tol = 1e-5 * mag + (o->vec_dot_type == GG_TYPE_Q8_1 ? 2e-3 * mag : 0);
        CHECK_MSG(fabs(got - want) <= tol, "%s: %g vs %g (tol %g)", tinfo_of(k_wtypes[i])->name,
                  (double)got, want, tol);
    }
    sp_free(w);
    sp_free(x);
    sp_free(wd);
    sp_free(xd);
    sp_free(wq);
    sp_free(xq);
}

/* Every ISA variant of vec_dot and gemm against the reference. */
TEST(isa_variants_match_reference)
{
    /* odd block counts, float tails, and sizes typical of real rows */
    const int64_t sizes_f[] = { 7, 250, 2049, 576 };
    const int64_t sizes_q[] = { 32, 224, 2080, 576 };
    const int64_t sizes_k[] = { 256, 768, 2304, 512 };
    const int nsizes = g_asan ? 2 : 4;
    const int rows = 13, maxb = 7;
    int checked = 0;
    for (int isa = KERN_ISA_AVX2; isa < KERN_ISA_COUNT; isa++) {
        for (size_t ti = 0; ti < SP_ARRAY_LEN(k_wtypes); ti++) {
            const struct kern_type_ops *v = kern_ops_isa((enum kern_isa)isa, k_wtypes[ti]);
            const struct kern_type_ops *r = kern_ops_isa(KERN_ISA_REF, k_wtypes[ti]);
            if (!v)
                continue;
            const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, r->vec_dot_type);
            const char *name = tinfo_of(k_wtypes[ti])->name;
            const int blk = tinfo_of(k_wtypes[ti])->blk;
            const int64_t *sizes = blk == 1 ? sizes_f : blk == 32 ? sizes_q : sizes_k;
            for (int si = 0; si < nsizes; si++) {
                const int64_t k = sizes[si];
                size_t wrb = row_bytes(k_wtypes[ti], k), xrb = row_bytes(r->vec_dot_type, k);
                size_t wstride = wrb + 16, xstride = xrb + 8; /* odd strides on purpose */
                float *f = sp_malloc((size_t)k * 4);
                char *w = sp_malloc(wstride * rows), *x = sp_malloc(xstride * maxb);
                float *want = sp_malloc(sizeof(float) * rows * maxb);
                float *y = sp_malloc(sizeof(float) * (rows + 3) * maxb);
                float *mag = sp_malloc(sizeof(float) * rows * maxb);
                CHECK(f && w && x && want && y && mag);
                for (int rr = 0; rr < rows; rr++) {
                    fill_data(f, k, 0.05f);
                    r->from_float(f, w + (size_t)rr * wstride, k);
                }
                for (int b = 0; b < maxb; b++) {
                    fill_data(f, k, 1.0f);
                    ra->quantize_act(f, x + (size_t)b * xstride, k);
                }
                float *wd = sp_malloc((size_t)k * 4), *xd = sp_malloc((size_t)k * 4);
                CHECK(wd && xd);
                for (int rr = 0; rr < rows; rr++) {
                    r->to_float(w + (size_t)rr * wstride, wd, k);
                    for (int b = 0; b < maxb; b++) {
                        ra->to_float(x + (size_t)b * xstride, xd, k);
                        double m = 0;
                        for (int64_t j = 0; j < k; j++)
                            m += fabs((double)wd[j] * xd[j]);
                        mag[rr * maxb + b] = (float)m;
                        r->vec_dot(k, &want[rr * maxb + b], w + (size_t)rr * wstride,
                                   x + (size_t)b * xstride);
                    }
                }
                sp_free(wd);
                sp_free(xd);
                /* vec_dot */
                for (int rr = 0; rr < rows; rr++) {
                    for (int b = 0; b < maxb; b++) {
                        float got;
                        v->vec_dot(k, &got, w + (size_t)rr * wstride, x + (size_t)b * xstride);
                        double tol = 2e-6 * mag[rr * maxb + b] + 1e-6;
                        CHECK_MSG(fabs(got - want[rr * maxb + b]) <= tol,
                                  "%s %s vec_dot k=%lld row %d b %d: %g vs %g",
                                  kern_isa_name((enum kern_isa)isa), name, (long long)k, rr, b,
                                  (double)got, (double)want[rr * maxb + b]);
                    }
                }
                /* gemm (and gemm_ws): n_batch 1..7, odd row ranges, y_stride > rows */
                const size_t ys = rows + 3;
                for (int pass = 0; pass < (v->gemm_ws ? 2 : 1); pass++)
                for (int nb = 1; nb <= maxb; nb++) {
                    int r0 = nb % 3, r1 = rows - (nb % 2);
                    for (size_t j = 0; j < ys * maxb; j++)
                        y[j] = -12345.0f;
                    if (pass == 0)
                        v->gemm(k, r0, r1, nb, w, wstride, x, xstride, y, ys);
                    else
                        v->gemm_ws(k, r0, r1, nb, w, wstride, x, xstride, y, ys, g_ws);
                    for (int b = 0; b < maxb; b++) {
                        for (int rr = 0; rr < (int)ys; rr++) {
                            float g = y[(size_t)b * ys + rr];
                            if (b >= nb || rr < r0 || rr >= r1) {
                                CHECK_MSG(g == -12345.0f, "%s %s gemm wrote outside", name,
                                          kern_isa_name((enum kern_isa)isa));
                                continue;
                            }
                            double tol = 2e-6 * mag[rr * maxb + b] + 1e-6;
                            CHECK_MSG(fabs(g - want[rr * maxb + b]) <= tol,
                                      "%s %s gemm k=%lld nb=%d row %d b %d: %g vs %g",
                                      kern_isa_name((enum kern_isa)isa), name, (long long)k, nb,
                                      rr, b, (double)g, (double)want[rr * maxb + b]);
                        }
                    }
                }
                sp_free(f);
                sp_free(w);
                sp_free(x);
                sp_free(want);
                sp_free(y);
                sp_free(mag);
            }
            checked++;
            fprintf(stderr, "  %s %s ok\n", kern_isa_name((enum kern_isa)isa), name);
        }
    }
    if (checked == 0)
        SKIP("no SIMD variants on this CPU (or none built)");
}

/* Fast activation quantizers against the reference quantizers. */
TEST(isa_activation_quantizers)
{
    static const enum gg_type acts[] = { GG_TYPE_Q8_0, GG_TYPE_Q8_1, GG_TYPE_Q8_K, GG_TYPE_F16,
                                         GG_TYPE_BF16, GG_TYPE_F32 };
    const int64_t n = 1024;
    float *f = sp_malloc(n * 4);
    char *a = sp_malloc(n * 4), *b = sp_malloc(n * 4);
    float *fa = sp_malloc(n * 4), *fb = sp_malloc(n * 4);
    CHECK(f && a && b && fa && fb);
    fill_data(f, n, 1.0f);
    for (int isa = KERN_ISA_AVX2; isa < KERN_ISA_COUNT; isa++) {
        for (size_t i = 0; i < SP_ARRAY_LEN(acts); i++) {
            const struct kern_type_ops *v = kern_ops_isa((enum kern_isa)isa, acts[i]);
            const struct kern_type_ops *r = kern_ops_isa(KERN_ISA_REF, acts[i]);
            if (!v || v->quantize_act == r->quantize_act)
                continue;
            v->quantize_act(f, a, n);
            r->quantize_act(f, b, n);
            r->to_float(a, fa, n);
            r->to_float(b, fb, n);
            /* same scales; each value off by at most one quantization step */
            const struct tinfo *ti = tinfo_of(acts[i]);
            for (int64_t j = 0; j < n; j += ti->blk) {
                float amax = 0;
                for (int l = 0; l < ti->blk; l++)
                    amax = fmaxf(amax, fabsf(f[j + l]));
                float step = ti->blk > 1 ? amax / 127.0f * 1.001f : 0.0f;
                for (int l = 0; l < ti->blk; l++)
                    CHECK_MSG(fabsf(fa[j + l] - fb[j + l]) <= step, "%s %s act quant at %lld",
                              kern_isa_name((enum kern_isa)isa), ti->name, (long long)(j + l));
            }
            if (acts[i] == GG_TYPE_Q8_K || acts[i] == GG_TYPE_F16) /* identical to the reference */
                CHECK_MSG(memcmp(a, b, (size_t)row_bytes(acts[i], n)) == 0, "%s %s differs from ref",
                          kern_isa_name((enum kern_isa)isa), ti->name);
            if (acts[i] == GG_TYPE_Q8_K) { /* bsums consistent with qs */
                const block_q8_K *q = (const block_q8_K *)a;
                for (int64_t bl = 0; bl < n / 256; bl++)
                    for (int g = 0; g < 16; g++) {
                        int s = 0;
                        for (int l = 0; l < 16; l++)
                            s += q[bl].qs[g * 16 + l];
                        CHECK(s == q[bl].bsums[g]);
                    }
            }
            if (acts[i] == GG_TYPE_Q8_1) { /* s = d * sum(qs) */
                const block_q8_1 *q = (const block_q8_1 *)a;
                for (int64_t bl = 0; bl < n / 32; bl++) {
                    int s = 0;
                    for (int l = 0; l < 32; l++)
                        s += q[bl].qs[l];
                    float want = kern_fp16_to_fp32(kern_fp32_to_fp16(kern_fp16_to_fp32(q[bl].d) * (float)s));
                    CHECK(fabsf(kern_fp16_to_fp32(q[bl].s) - want) <= fabsf(want) * 2e-3f + 1e-6f);
                }
            }
        }
    }
    sp_free(f);
    sp_free(a);
    sp_free(b);
    sp_free(fa);
    sp_free(fb);
}

/* gemm with batches larger than the internal tile equals the same ISA's
 * vec_dot (bit for bit with n_batch 1; batched paths may reorder the float
 * arithmetic: within 2e-6 of the magnitude). */
TEST(gemm_large_batch_equals_vec_dot)
{
    const int64_t nbatch = g_asan ? 37 : 75, rows = 5, k = 512;
    for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
        for (size_t ti = 0; ti < SP_ARRAY_LEN(k_wtypes); ti++) {
            const struct kern_type_ops *v = kern_ops_isa((enum kern_isa)isa, k_wtypes[ti]);
            if (!v)
                continue;
            const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, v->vec_dot_type);
            size_t wrb = row_bytes(k_wtypes[ti], k), xrb = row_bytes(v->vec_dot_type, k);
            float *f = sp_malloc((size_t)k * 4);
            char *w = sp_malloc(wrb * rows), *x = sp_malloc(xrb * (size_t)nbatch);
            float *y = sp_malloc(sizeof(float) * (size_t)(rows * nbatch));
            CHECK(f && w && x && y);
            for (int64_t r = 0; r < rows; r++) {
                fill_data(f, k, 0.05f);
                v->from_float(f, w + r * wrb, k);
            }
            for (int64_t b = 0; b < nbatch; b++) {
                fill_data(f, k, 1.0f);
                ra->quantize_act(f, x + b * xrb, k);
            }
            const struct kern_type_ops *r0 = kern_ops_isa(KERN_ISA_REF, k_wtypes[ti]);
            float *wd = sp_malloc((size_t)k * 4), *xd = sp_malloc((size_t)k * 4);
            CHECK(wd && xd);
            v->gemm(k, 0, rows, nbatch, w, wrb, x, xrb, y, rows);
            for (int64_t b = 0; b < nbatch; b++) {
                ra->to_float(x + b * xrb, xd, k);
                for (int64_t r = 0; r < rows; r++) {
                    float want, one;
                    v->vec_dot(k, &want, w + r * wrb, x + b * xrb);
                    r0->to_float(w + r * wrb, wd, k);
                    double mag = 1e-6;
                    for (int64_t j = 0; j < k; j++)
                        mag += fabs((double)wd[j] * xd[j]);
                    CHECK_MSG(fabs(want - y[b * rows + r]) <= 2e-6 * mag, "%s %s b=%lld r=%lld",
                              kern_isa_name((enum kern_isa)isa), tinfo_of(k_wtypes[ti])->name,
                              (long long)b, (long long)r);
                    v->gemm(k, 0, 1, 1, w + r * wrb, wrb, x + b * xrb, xrb, &one, 1);
                    CHECK_MSG(want == one, "%s %s gemm n_batch 1 != vec_dot",
                              kern_isa_name((enum kern_isa)isa), tinfo_of(k_wtypes[ti])->name);
                }
            }
            sp_free(wd);
            sp_free(xd);
            sp_free(f);
            sp_free(w);
            sp_free(x);
            sp_free(y);
        }
    }
}

/* Decode (gemm with n_batch 1 over many rows: the kernels take several
 * weight rows per pass) equals the same ISA's vec_dot bit for bit, on every
 * row of a range whose start and length leave groups of 4, 2 and 1 rows; the
 * activations include the extremes +-127 of Q8 quants, the rows odd block
 * counts. */
TEST(gemm_decode_bit_equals_vec_dot)
{
    const int64_t rows = 23;
    for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
        for (size_t ti = 0; ti < SP_ARRAY_LEN(k_wtypes); ti++) {
            const struct kern_type_ops *v = kern_ops_isa((enum kern_isa)isa, k_wtypes[ti]);
            if (!v)
                continue;
            /* an odd number of 32-blocks where the type allows it (IQ4_NL's tail) */
            const int64_t k = (g_asan ? 512 : 2304) + (tinfo_of(k_wtypes[ti])->blk == 32 ? 32 : 0);
            const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, v->vec_dot_type);
            size_t wrb = row_bytes(k_wtypes[ti], k), xrb = row_bytes(v->vec_dot_type, k);
            float *f = sp_malloc((size_t)k * 4);
            char *w = sp_malloc(wrb * rows), *x = sp_malloc(xrb);
            float *y = sp_malloc(sizeof(float) * (size_t)rows);
            CHECK(f && w && x && y);
            for (int64_t r = 0; r < rows; r++) {
                fill_data(f, k, r == 3 ? 1e3f : 0.05f);
                v->from_float(f, w + r * wrb, k);
            }
            fill_data(f, k, 1.0f);
            for (int64_t j = 0; j < k; j += 7)
                f[j] = (j / 7) % 2 ? 40.0f : -40.0f; /* each block's max: quants +-127 */
            ra->quantize_act(f, x, k);
            for (int start = 0; start < 3; start++) {
                const int64_t r0 = start, r1 = rows - start;
                for (int64_t r = 0; r < rows; r++)
                    y[r] = -12345.0f;
                v->gemm(k, r0, r1, 1, w, wrb, x, xrb, y, (size_t)rows);
                for (int64_t r = 0; r < rows; r++) {
                    float want = -12345.0f;
                    if (r >= r0 && r < r1)
                        v->vec_dot(k, &want, w + r * wrb, x);
                    CHECK_MSG(memcmp(&want, &y[r], sizeof want) == 0, "%s %s row %lld of [%lld,%lld): %.9g vs %.9g",
                              kern_isa_name((enum kern_isa)isa), tinfo_of(k_wtypes[ti])->name, (long long)r,
                              (long long)r0, (long long)r1, (double)y[r], (double)want);
                }
            }
            sp_free(f);
            sp_free(w);
            sp_free(x);
            sp_free(y);
        }
    }
}

/* Batches (gemm with n_batch 2..17: batched decode and short prompts) equal
 * the same ISA's vec_dot bit for bit on every output, and so does the panel
 * gemm where the type declares it exact (ws_exact): a sequence's results do
 * not depend on how many others share its matmul. */
TEST(gemm_batch_every_type_bit_equals_vec_dot)
{
    static const int64_t nbs[] = {2, 3, 4, 5, 7, 8, 9, 16, 17};
    const int64_t rows = 13;
    for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
        for (size_t ti = 0; ti < SP_ARRAY_LEN(k_wtypes); ti++) {
            const struct kern_type_ops *v = kern_ops_isa((enum kern_isa)isa, k_wtypes[ti]);
            if (!v)
                continue;
            const int64_t k = (g_asan ? 512 : 1280) + (tinfo_of(k_wtypes[ti])->blk == 32 ? 32 : 0);
            const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, v->vec_dot_type);
            const int64_t nmax = nbs[SP_ARRAY_LEN(nbs) - 1];
            size_t wrb = row_bytes(k_wtypes[ti], k), xrb = row_bytes(v->vec_dot_type, k);
            float *f = sp_malloc((size_t)k * 4);
            char *w = sp_malloc(wrb * rows), *x = sp_malloc(xrb * (size_t)nmax);
            float *y = sp_malloc(sizeof(float) * (size_t)(rows * nmax));
            CHECK(f && w && x && y);
            for (int64_t r = 0; r < rows; r++) {
                fill_data(f, k, r == 3 ? 1e3f : 0.05f);
                v->from_float(f, w + r * wrb, k);
            }
            for (int64_t b = 0; b < nmax; b++) {
                fill_data(f, k, 1.0f);
                if (b == 1)
                    for (int64_t j = 0; j < k; j += 7)
                        f[j] = (j / 7) % 2 ? 40.0f : -40.0f; /* quants +-127 */
                ra->quantize_act(f, x + b * xrb, k);
            }
            for (size_t ni = 0; ni < SP_ARRAY_LEN(nbs); ni++) {
                for (int pass = 0; pass < (v->gemm_ws && v->ws_exact ? 2 : 1); pass++) {
                    const int64_t nb = nbs[ni], r0 = 1, r1 = rows - (int64_t)(ni % 3);
                    for (int64_t i = 0; i < rows * nb; i++)
                        y[i] = -12345.0f;
                    if (pass == 1)
                        v->gemm_ws(k, r0, r1, nb, w, wrb, x, xrb, y, (size_t)rows, g_ws);
                    else
                        v->gemm(k, r0, r1, nb, w, wrb, x, xrb, y, (size_t)rows);
                    for (int64_t b = 0; b < nb; b++) {
                        for (int64_t r = 0; r < rows; r++) {
                            float want = -12345.0f;
                            if (r >= r0 && r < r1)
                                v->vec_dot(k, &want, w + r * wrb, x + b * xrb);
                            CHECK_MSG(memcmp(&want, &y[b * rows + r], sizeof want) == 0,
                                      "%s %s %s n_batch %lld b=%lld r=%lld: %.9g vs %.9g",
                                      kern_isa_name((enum kern_isa)isa), tinfo_of(k_wtypes[ti])->name,
                                      pass ? "gemm_ws" : "gemm", (long long)nb, (long long)b, (long long)r,
                                      (double)y[b * rows + r], (double)want);
                        }
                    }
                }
            }
            sp_free(f);
            sp_free(w);
            sp_free(x);
            sp_free(y);
        }
    }
}

/* The panel gemm (gemm_ws) against the same ISA's gemm: several panels of
 * rows (more rows than one panel holds, odd counts), batches that are not a
 * multiple of the tile, and a row too long for the workspace (fallback). */
TEST(gemm_ws_panels)
{
    static const struct {
        int64_t k, rows, nbatch;
    } cases[] = {{2304, 37, 11}, {512, 150, 9}, {256, 3, 5}, {256 * 240, 3, 2}};
    int checked = 0;
    for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
        for (size_t ti = 0; ti < SP_ARRAY_LEN(k_wtypes); ti++) {
            const struct kern_type_ops *v = kern_ops_isa((enum kern_isa)isa, k_wtypes[ti]);
            if (!v || !v->gemm_ws)
                continue;
            const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, v->vec_dot_type);
            for (size_t ci = 0; ci < SP_ARRAY_LEN(cases); ci++) {
                const int64_t k = cases[ci].k, rows = cases[ci].rows, nbatch = cases[ci].nbatch;
                if (g_asan && k > 4096)
                    continue;
                size_t wrb = row_bytes(k_wtypes[ti], k), xrb = row_bytes(v->vec_dot_type, k);
                float *f = sp_malloc((size_t)k * 4);
                char *w = sp_malloc(wrb * (size_t)rows), *x = sp_malloc(xrb * (size_t)nbatch);
                float *y1 = sp_malloc(sizeof(float) * (size_t)(rows * nbatch));
                float *y2 = sp_malloc(sizeof(float) * (size_t)(rows * nbatch));
                float *wd = sp_malloc((size_t)k * 4), *xd = sp_malloc((size_t)k * 4);
                CHECK(f && w && x && y1 && y2 && wd && xd);
                for (int64_t r = 0; r < rows; r++) {
                    fill_data(f, k, 0.05f);
                    v->from_float(f, w + r * wrb, k);
                }
                for (int64_t b = 0; b < nbatch; b++) {
                    fill_data(f, k, 1.0f);
                    ra->quantize_act(f, x + b * xrb, k);
                }
                v->gemm(k, 0, rows, nbatch, w, wrb, x, xrb, y1, (size_t)rows);
                v->gemm_ws(k, 0, rows, nbatch, w, wrb, x, xrb, y2, (size_t)rows, g_ws);
                for (int64_t b = 0; b < nbatch; b++) {
                    ra->to_float(x + b * xrb, xd, k);
                    for (int64_t r = 0; r < rows; r++) {
                        v->to_float(w + r * wrb, wd, k);
                        double mag = 1e-6;
                        for (int64_t j = 0; j < k; j++)
                            mag += fabs((double)wd[j] * xd[j]);
                        CHECK_MSG(fabs(y1[b * rows + r] - y2[b * rows + r]) <= 2e-6 * mag,
                                  "%s %s gemm_ws k=%lld b=%lld r=%lld: %g vs %g", kern_isa_name((enum kern_isa)isa),
                                  tinfo_of(k_wtypes[ti])->name, (long long)k, (long long)b, (long long)r,
                                  (double)y2[b * rows + r], (double)y1[b * rows + r]);
                    }
                }
                sp_free(f);
                sp_free(w);
                sp_free(x);
                sp_free(y1);
                sp_free(y2);
                sp_free(wd);
                sp_free(xd);
            }
            checked++;
        }
    }
    if (checked == 0)
        SKIP("no panel gemm on this CPU");
}

/* rows weight rows of k (quantized by v from fill_data; row big_row with a
 * 1e3 scale) and n activation rows (ra's quantizer; rows b % mod == rem hold
 * +-40 every step-th element, so their blocks' quants reach +-127) */
static void make_weights(const struct kern_type_ops *v, char *w, size_t wrb, int64_t rows, int64_t k,
                         int64_t big_row, float *f)
{
    for (int64_t r = 0; r < rows; r++) {
        fill_data(f, k, r == big_row ? 1e3f : 0.05f);
        v->from_float(f, w + r * wrb, k);
    }
}

static void make_acts(const struct kern_type_ops *ra, char *x, size_t xrb, int64_t n, int64_t k, int64_t mod,
                      int64_t rem, int64_t step, float *f)
{
    for (int64_t b = 0; b < n; b++) {
        fill_data(f, k, 1.0f);
        if (b % mod == rem)
            for (int64_t j = 0; j < k; j += step)
                f[j] = (j / step) % 2 ? 40.0f : -40.0f;
        ra->quantize_act(f, x + b * xrb, k);
    }
}

/* The panel gemm of every type and ISA gives each output the same bits
 * whatever the batch holds: row b of a batch of n equals the same activation
 * row alone (n_batch 1) and in other batches, over other weight-row ranges.
 * So a prompt row's bits in a panel call depend only on its own row, not
 * on the other rows of the step (only whether the call reaches the panel's
 * batch size does: docs/PARITY.md). */
TEST(gemm_ws_rows_independent_of_batch)
{
    static const int64_t nbs[] = {1, 2, 5, 8, 13, 16, 33, 40};
    const int64_t rows = 37, nmax = 40;
    int checked = 0;
    for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
        for (size_t ti = 0; ti < SP_ARRAY_LEN(k_wtypes); ti++) {
            const struct kern_type_ops *v = kern_ops_isa((enum kern_isa)isa, k_wtypes[ti]);
            if (!v || !v->gemm_ws)
                continue;
            const int64_t k = (g_asan ? 512 : 2304) + (tinfo_of(k_wtypes[ti])->blk == 32 ? 32 : 0);
            const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, v->vec_dot_type);
            const size_t wrb = row_bytes(k_wtypes[ti], k), xrb = row_bytes(v->vec_dot_type, k);
            float *f = sp_malloc((size_t)k * 4);
            char *w = sp_malloc(wrb * (size_t)rows), *x = sp_malloc(xrb * (size_t)nmax);
            float *alone = sp_malloc(sizeof(float) * (size_t)(rows * nmax));
            float *y = sp_malloc(sizeof(float) * (size_t)(rows * nmax));
            CHECK(f && w && x && alone && y);
            make_weights(v, w, wrb, rows, k, 3, f);
            make_acts(ra, x, xrb, nmax, k, 7, 1, 7, f);
            for (int64_t b = 0; b < nmax; b++) /* each activation row alone, all rows */
                v->gemm_ws(k, 0, rows, 1, w, wrb, x + b * xrb, xrb, alone + b * rows, (size_t)rows, g_ws);
            for (size_t ni = 0; ni < SP_ARRAY_LEN(nbs); ni++) {
                const int64_t nb = nbs[ni], b0 = nmax - nb, r0 = (int64_t)(ni % 3), r1 = rows - (int64_t)(ni % 2);
                for (int64_t i = 0; i < rows * nmax; i++)
                    y[i] = -12345.0f;
                v->gemm_ws(k, r0, r1, nb, w, wrb, x + b0 * xrb, xrb, y, (size_t)rows, g_ws);
                for (int64_t b = 0; b < nb; b++)
                    for (int64_t r = r0; r < r1; r++) {
                        const float g = y[b * rows + r], e = alone[(b0 + b) * rows + r];
                        CHECK_MSG(memcmp(&g, &e, sizeof g) == 0,
                                  "%s %s gemm_ws n_batch %lld rows [%lld,%lld) b=%lld r=%lld: %.9g vs %.9g alone",
                                  kern_isa_name((enum kern_isa)isa), tinfo_of(k_wtypes[ti])->name, (long long)nb,
                                  (long long)r0, (long long)r1, (long long)b, (long long)r, (double)g, (double)e);
                    }
            }
            sp_free(f);
            sp_free(w);
            sp_free(x);
            sp_free(alone);
            sp_free(y);
            checked++;
        }
    }
    if (checked == 0)
        SKIP("no panel gemm on this CPU");
}

/* the quant q (value = d * q) of element j of a 32-block of Q4_0/Q5_0 */
static int block32_q(enum gg_type t, const void *blk, int j)
{
    if (t == GG_TYPE_Q4_0) {
        const block_q4_0 *b = blk;
        return (j < 16 ? b->qs[j] & 15 : b->qs[j - 16] >> 4) - 8;
    }
    const block_q5_0 *b = blk;
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    const int lo = j < 16 ? b->qs[j] & 15 : b->qs[j - 16] >> 4;
    return (lo | (int)((qh >> j) & 1) << 4) - 16;
}

/* The 32-block panels that sum in their own order (ws_exact false: Q4_0,
 * Q5_0 on AVX2 and AVX-512) keep one float per output:
 * acc = fma(fl(d_w * d_x), (float)sum_j q_j y_j, acc) block after block (the
 * block's integer dot is exact). A scalar loop in that order gives their
 * bits, so they equal each other and the order docs/PARITY.md states. */
TEST(panel_q0_order_is_one_fma_per_block)
{
    static const enum gg_type types[] = {GG_TYPE_Q4_0, GG_TYPE_Q5_0};
    const int64_t rows = 21, nbatch = 19, k = 32 * 41;
    int checked = 0;
    for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
        for (size_t ti = 0; ti < SP_ARRAY_LEN(types); ti++) {
            const struct kern_type_ops *v = kern_ops_isa((enum kern_isa)isa, types[ti]);
            if (!v || !v->gemm_ws || v->ws_exact)
                continue;
            const size_t wrb = row_bytes(types[ti], k), xrb = row_bytes(GG_TYPE_Q8_0, k);
            const size_t bsz = wrb / (size_t)(k / 32);
            float *f = sp_malloc((size_t)k * 4), *y = sp_malloc(sizeof(float) * (size_t)(rows * nbatch));
            char *w = sp_malloc(wrb * (size_t)rows), *x = sp_malloc(xrb * (size_t)nbatch);
            CHECK(f && y && w && x);
            make_weights(v, w, wrb, rows, k, 4, f);
            make_acts(kern_ops_isa(KERN_ISA_REF, GG_TYPE_Q8_0), x, xrb, nbatch, k, 4, 1, 5, f);
            v->gemm_ws(k, 0, rows, nbatch, w, wrb, x, xrb, y, (size_t)rows, g_ws);
            int bad = 0;
            for (int64_t b = 0; b < nbatch; b++)
                for (int64_t r = 0; r < rows; r++) {
                    float acc = 0.0f;
                    for (int64_t ib = 0; ib < k / 32; ib++) {
                        const char *wb = w + r * wrb + (size_t)ib * bsz;
                        const block_q8_0 *xb = (const block_q8_0 *)(const void *)(x + b * xrb) + ib;
                        int32_t isum = 0;
                        for (int j = 0; j < 32; j++)
                            isum += block32_q(types[ti], wb, j) * xb->qs[j];
                        kern_half dh;
                        memcpy(&dh, wb, sizeof dh); /* d is every block's first field */
                        const float dd = kern_fp16_to_fp32(dh) * kern_fp16_to_fp32(xb->d);
                        acc = fmaf(dd, (float)isum, acc);
                    }
                    const float g = y[b * rows + r];
                    bad += memcmp(&g, &acc, sizeof g) != 0;
                    if (bad == 1 && memcmp(&g, &acc, sizeof g) != 0)
                        fprintf(stderr, "  %s %s b=%lld r=%lld: %.9g vs scalar %.9g\n",
                                kern_isa_name((enum kern_isa)isa), tinfo_of(types[ti])->name, (long long)b,
                                (long long)r, (double)g, (double)acc);
                }
            CHECK_EQ_INT(bad, 0);
            sp_free(f);
            sp_free(y);
            sp_free(w);
            sp_free(x);
            checked++;
        }
    }
    if (checked == 0)
        SKIP("no 32-block panel of its own order on this CPU");
}

/* The AVX2 batched gemm (n_batch >= 2) of the types whose batches keep
 * vec_dot's float order (docs/PARITY.md: Q8_0, IQ4_NL, IQ4_XS with gemm and
 * gemm_ws, Q4_0/Q5_0 with gemm) equals vec_dot bit for bit: n_batch 1..9, 17
 * and 64, row ranges that leave partial register tiles, odd block counts (and a
 * count of 8-block groups with a remainder), y_stride > rows, activations at
 * the int8 extremes in some rows and a weight row with a large scale. */
TEST(gemm_batch_bit_equals_vec_dot)
{
    static const struct {
        enum gg_type type;
        bool ws; /* gemm_ws (when the type has one) keeps the order too */
    } types[] = {{GG_TYPE_Q8_0, true},   {GG_TYPE_IQ4_NL, true}, {GG_TYPE_IQ4_XS, true},
                 {GG_TYPE_Q4_0, false},  {GG_TYPE_Q5_0, false}};
    static const int64_t nbs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 64};
    const int rows = 14, maxb = 64;
    int checked = 0;
    for (size_t ti = 0; ti < SP_ARRAY_LEN(types); ti++) {
        const struct kern_type_ops *v = kern_ops_isa(KERN_ISA_AVX2, types[ti].type);
        if (!v)
            continue;
        const int blk = tinfo_of(types[ti].type)->blk;
        /* 1 block, an odd count with a partial 8-group, a long row */
        const int64_t ks[] = {blk, blk * (blk == 32 ? 13 : 3), blk * (blk == 32 ? 65 : 9)};
        const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, v->vec_dot_type);
        for (size_t ki = 0; ki < (g_asan ? 2 : SP_ARRAY_LEN(ks)); ki++) {
            const int64_t k = ks[ki];
            const size_t wrb = row_bytes(types[ti].type, k), xrb = row_bytes(v->vec_dot_type, k);
            const size_t wst = wrb + 4, xst = xrb + 8, ys = (size_t)rows + 5; /* odd, keeping 4-byte alignment */
            float *f = sp_malloc((size_t)k * 4), *want = sp_malloc(sizeof(float) * (size_t)(rows * maxb));
            char *w = sp_malloc(wst * (size_t)rows), *x = sp_malloc(xst * (size_t)maxb);
            float *y = sp_malloc(sizeof(float) * ys * (size_t)maxb);
            CHECK(f && want && w && x && y);
            for (int r = 0; r < rows; r++) {
                fill_data(f, k, r == 5 ? 1e3f : 0.05f);
                v->from_float(f, w + (size_t)r * wst, k);
            }
            for (int b = 0; b < maxb; b++) {
                fill_data(f, k, 1.0f);
                if (b % 5 == 2) /* each block's max: quants +-127 */
                    for (int64_t j = 0; j < k; j += 7)
                        f[j] = (j / 7) % 2 ? 40.0f : -40.0f;
                ra->quantize_act(f, x + (size_t)b * xst, k);
            }
            for (int r = 0; r < rows; r++)
                for (int b = 0; b < maxb; b++)
                    v->vec_dot(k, &want[r * maxb + b], w + (size_t)r * wst, x + (size_t)b * xst);
            for (int pass = 0; pass < (types[ti].ws && v->gemm_ws ? 2 : 1); pass++) {
                for (size_t ni = 0; ni < SP_ARRAY_LEN(nbs); ni++) {
                    const int64_t nb = nbs[ni];
                    const int r0 = (int)(nb % 3), r1 = rows - (int)(nb % 2);
                    for (size_t j = 0; j < ys * (size_t)maxb; j++)
                        y[j] = -12345.0f;
                    if (pass == 0)
                        v->gemm(k, r0, r1, nb, w, wst, x, xst, y, ys);
                    else
                        v->gemm_ws(k, r0, r1, nb, w, wst, x, xst, y, ys, g_ws);
                    for (int b = 0; b < maxb; b++) {
                        for (int r = 0; r < (int)ys; r++) {
                            const float g = y[(size_t)b * ys + (size_t)r];
                            if (b >= nb || r < r0 || r >= r1) {
                                CHECK_MSG(g == -12345.0f, "%s gemm wrote outside", tinfo_of(types[ti].type)->name);
                                continue;
                            }
                            const float e = want[r * maxb + b];
                            CHECK_MSG(memcmp(&g, &e, sizeof g) == 0, "%s %s k=%lld n_batch=%lld row %d b %d: %.9g vs %.9g",
                                      tinfo_of(types[ti].type)->name, pass ? "gemm_ws" : "gemm", (long long)k,
                                      (long long)nb, r, b, (double)g, (double)e);
                        }
                    }
                }
            }
            sp_free(f);
            sp_free(want);
            sp_free(w);
            sp_free(x);
            sp_free(y);
        }
        checked++;
    }
    if (checked == 0)
        SKIP("no AVX2 on this CPU");
}

/* The AVX-512 panel gemms (16 rows per register: Q4_0/Q5_0, the K-quants)
 * keep the AVX2 panels' integers and float operations: the same bits for
 * every output (batches from the panel's size, partial row groups and tiles,
 * odd row ranges, one block and an odd block count, activations at the int8
 * ends, a row with a large scale), so prefill gives the same bits on both. */
TEST(gemm_ws_avx512_equals_avx2)
{
    static const enum gg_type types[] = {GG_TYPE_Q4_0, GG_TYPE_Q5_0, GG_TYPE_Q2_K, GG_TYPE_Q3_K,
                                         GG_TYPE_Q4_K, GG_TYPE_Q5_K, GG_TYPE_Q6_K};
    static const int64_t nbs[] = {8, 9, 15, 16, 17, 40};
    const int rows = 37, maxb = 40;
    int checked = 0;
    for (size_t ti = 0; ti < SP_ARRAY_LEN(types); ti++) {
        const struct kern_type_ops *a2 = kern_ops_isa(KERN_ISA_AVX2, types[ti]);
        const struct kern_type_ops *a5 = kern_ops_isa(KERN_ISA_AVX512, types[ti]);
        if (!a2 || !a5 || !a2->gemm_ws || !a5->gemm_ws || a2->gemm_ws == a5->gemm_ws)
            continue;
        const int blk = tinfo_of(types[ti])->blk;
        const int64_t ks[] = {blk, blk * (blk == 32 ? 13 : 3), blk * (blk == 32 ? 65 : 9)};
        const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, a2->vec_dot_type);
        for (size_t ki = 0; ki < SP_ARRAY_LEN(ks); ki++) {
            const int64_t k = ks[ki];
            const size_t wrb = row_bytes(types[ti], k), xrb = row_bytes(a2->vec_dot_type, k);
            const size_t ys = (size_t)rows + 3;
            float *f = sp_malloc((size_t)k * 4);
            char *w = sp_malloc(wrb * (size_t)rows), *x = sp_malloc(xrb * (size_t)maxb);
            float *y1 = sp_malloc(sizeof(float) * ys * (size_t)maxb), *y2 = sp_malloc(sizeof(float) * ys * (size_t)maxb);
            CHECK(f && w && x && y1 && y2);
            for (int r = 0; r < rows; r++) {
                fill_data(f, k, r == 5 ? 1e3f : 0.05f);
                a2->from_float(f, w + (size_t)r * wrb, k);
            }
            for (int b = 0; b < maxb; b++) {
                fill_data(f, k, 1.0f);
                if (b % 5 == 2)
                    for (int64_t j = 0; j < k; j += 7)
                        f[j] = (j / 7) % 2 ? 40.0f : -40.0f;
                ra->quantize_act(f, x + (size_t)b * xrb, k);
            }
            for (size_t ni = 0; ni < SP_ARRAY_LEN(nbs); ni++) {
                const int64_t nb = nbs[ni];
                const int r0 = (int)(nb % 3), r1 = rows - (int)(nb % 2);
                for (size_t j = 0; j < ys * (size_t)maxb; j++)
                    y1[j] = y2[j] = -12345.0f;
                a2->gemm_ws(k, r0, r1, nb, w, wrb, x, xrb, y1, ys, g_ws);
                a5->gemm_ws(k, r0, r1, nb, w, wrb, x, xrb, y2, ys, g_ws);
                CHECK_MSG(memcmp(y1, y2, sizeof(float) * ys * (size_t)maxb) == 0, "%s k=%lld n_batch=%lld",
                          tinfo_of(types[ti])->name, (long long)k, (long long)nb);
            }
            sp_free(f);
            sp_free(w);
            sp_free(x);
            sp_free(y1);
            sp_free(y2);
        }
        checked++;
    }
    if (checked == 0)
        SKIP("no AVX-512 panel on this CPU");
}

/* The K-quant row kernels keep one float order on every SIMD level: the
 * AVX-512 vec_dot (and so its gemm and panel, compared above) gives the AVX2
 * vec_dot's bits, so a model's K-quant results do not depend on the CPU. */
TEST(k_quants_same_bits_avx2_avx512)
{
    static const enum gg_type types[] = {GG_TYPE_Q2_K, GG_TYPE_Q3_K, GG_TYPE_Q4_K, GG_TYPE_Q5_K, GG_TYPE_Q6_K};
    int checked = 0;
    for (size_t ti = 0; ti < SP_ARRAY_LEN(types); ti++) {
        const struct kern_type_ops *a2 = kern_ops_isa(KERN_ISA_AVX2, types[ti]);
        const struct kern_type_ops *a5 = kern_ops_isa(KERN_ISA_AVX512, types[ti]);
        if (!a2 || !a5 || a5->isa != KERN_ISA_AVX512)
            continue;
        const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, a2->vec_dot_type);
        const int64_t k = 256 * 11;
        const size_t wrb = row_bytes(types[ti], k), xrb = row_bytes(a2->vec_dot_type, k);
        float *f = sp_malloc((size_t)k * 4);
        char *w = sp_malloc(wrb), *x = sp_malloc(xrb);
        CHECK(f && w && x);
        for (int t = 0; t < 20; t++) {
            fill_data(f, k, t == 3 ? 1e3f : 0.05f);
            a2->from_float(f, w, k);
            fill_data(f, k, 1.0f);
            if (t % 4 == 1)
                for (int64_t j = 0; j < k; j += 7)
                    f[j] = (j / 7) % 2 ? 40.0f : -40.0f;
            ra->quantize_act(f, x, k);
            float s2 = 0, s5 = 1;
            a2->vec_dot(k, &s2, w, x);
            a5->vec_dot(k, &s5, w, x);
            CHECK_MSG(memcmp(&s2, &s5, sizeof s2) == 0, "%s: avx512 %.9g vs avx2 %.9g", tinfo_of(types[ti])->name,
                      (double)s5, (double)s2);
        }
        sp_free(f);
        sp_free(w);
        sp_free(x);
        checked++;
    }
    if (checked == 0)
        SKIP("no AVX-512 K-quant kernels on this CPU");
}

/* Non-finite input (a corrupt file) quantizes without undefined behaviour
 * (UBSan would stop here) and without touching bytes past the row. */
TEST(quantize_nonfinite_input)
{
    float x[512];
    fill_data(x, 512, 1.0f);
    x[3] = NAN;
    x[40] = INFINITY;
    x[300] = -INFINITY;
    x[301] = NAN;
    char *q = sp_malloc(512 * 4 + 16);
    float *y = sp_malloc(512 * 4);
    CHECK(q && y);
    for (size_t i = 0; i < SP_ARRAY_LEN(k_types); i++) {
        const struct kern_type_ops *o = kern_ops_isa(KERN_ISA_REF, k_types[i].type);
        size_t rb = row_bytes(k_types[i].type, 512);
        memset(q + rb, 0x77, 16);
        o->from_float(x, q, 512);
        o->to_float(q, y, 512);
        for (int j = 0; j < 16; j++)
            CHECK(q[rb + (size_t)j] == 0x77);
        const struct kern_type_ops *a = kern_ops(k_types[i].type);
        if (a->quantize_act) {
            a->quantize_act(x, q, 512);
            for (int j = 0; j < 16; j++)
                CHECK(q[rb + (size_t)j] == 0x77);
        }
    }
    sp_free(q);
    sp_free(y);
}


int main(void)
{
    g_asan = getenv("SPOKE_ASAN") != NULL;
    g_ws = sp_aligned_alloc(64, KERN_GEMM_WS_BYTES);
    RUN(block_layout_known_answers);
    RUN(fp16_bf16_conversion);
    RUN(iq4_quantizer_known_answers);
    RUN(ops_table_complete);
    RUN(roundtrip_error_and_determinism);
    RUN(ref_vec_dot_matches_dequantized);
    RUN(isa_variants_match_reference);
    RUN(isa_activation_quantizers);
    RUN(gemm_large_batch_equals_vec_dot);
    RUN(gemm_decode_bit_equals_vec_dot);
    RUN(gemm_batch_every_type_bit_equals_vec_dot);
    RUN(gemm_ws_panels);
    RUN(gemm_batch_bit_equals_vec_dot);
    RUN(gemm_ws_rows_independent_of_batch);
    RUN(panel_q0_order_is_one_fma_per_block);
    RUN(gemm_ws_avx512_equals_avx2);
    RUN(k_quants_same_bits_avx2_avx512);
    RUN(quantize_nonfinite_input);
    sp_aligned_free(g_ws);
    return test_summary();
}
