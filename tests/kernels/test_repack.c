/* test_repack.c - Q8_0 weights repacked at load (struct kern_repack;
 * src/kernels/ref/repack_q8.c, x86/avx512/rp_q8_avx512.c): the packed
 * groups give back each original row (row_to_float == to_float, padded lanes
 * zero), and every gemm over them - the reference, the AVX-512 kernel
 * compiled over tests/kernels/avx512_emu.h (so AVX2-only machines test its
 * arithmetic) and, where the CPU has AVX-512, the native one - gives each
 * output exactly kern_ref_vec_dot_q8_0 of the original row (ggml's order;
 * memcmp) for batches of 1..17 rows, row ranges starting and ending inside
 * groups of 16, one and odd block counts, quants at -128/+127 and a large
 * weight scale; rows outside the range are not written. Exits 77 (skipped)
 * without AVX2. */
#include "kernels/avx512_emu.h"
#define kern_avx512_fill_repack emu_avx512_fill_repack
#include "kernels/x86/avx512/rp_q8_avx512.c"

#include "base/base.h"
#include "kernels/kern_impl.h"
#include "test.h"

enum { ROWS = 37, MAXB = 17 };

static void *g_ws;
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static void fill(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = ((float)(test_rand_u32(&g_rng) & 0xFFFF) / 32768.0f - 1.0f) * scale;
}

/* ROWS weight rows (row 5 with a large scale, row 9 with -128 quants) and
 * MAXB activation rows (every 5th at +-127) of k elements */
struct data {
    int64_t k;
    size_t wrb, grp;
    block_q8_0 *w, *x;
    void *packed;
};

static bool make_data(struct data *d, int64_t k)
{
    memset(d, 0, sizeof(*d));
    d->k = k;
    d->wrb = (size_t)(k / KERN_QK) * sizeof(block_q8_0);
    d->grp = kern_q8r_group_bytes(k);
    float *f = sp_malloc((size_t)k * sizeof(float));
    d->w = sp_malloc(d->wrb * ROWS);
    d->x = sp_malloc(d->wrb * MAXB);
    d->packed = sp_aligned_alloc(64, d->grp * ((ROWS + 15) / 16));
    if (!f || !d->w || !d->x || !d->packed) {
        sp_free(f);
        return false;
    }
    for (int r = 0; r < ROWS; r++) {
        fill(f, k, r == 5 ? 1e3f : 0.05f);
        kern_ref_from_float_q8_0(f, (char *)d->w + (size_t)r * d->wrb, k);
    }
    block_q8_0 *r9 = (block_q8_0 *)((char *)d->w + 9 * d->wrb);
    for (int64_t ib = 0; ib < k / KERN_QK; ib++)
        for (int j = 0; j < KERN_QK; j += 3)
            r9[ib].qs[j] = -128;
    for (int b = 0; b < MAXB; b++) {
        fill(f, k, 1.0f);
        if (b % 5 == 2)
            for (int64_t j = 0; j < k; j += 7)
                f[j] = (j / 7) % 2 ? 40.0f : -40.0f;
        kern_ref_from_float_q8_0(f, (char *)d->x + (size_t)b * d->wrb, k);
    }
    sp_free(f);
    for (int64_t g = 0; g * 16 < ROWS; g++)
        kern_q8r_pack((const char *)d->w + (size_t)(g * 16) * d->wrb, d->wrb, SP_MIN((int64_t)16, ROWS - g * 16), k,
                      (char *)d->packed + (size_t)g * d->grp);
    return true;
}

static void free_data(struct data *d)
{
    sp_free(d->w);
    sp_free(d->x);
    sp_aligned_free(d->packed);
}

static const int64_t g_ks[] = {32, 32 * 13, 32 * 64};

TEST(pack_gives_back_rows)
{
    for (size_t ki = 0; ki < SP_ARRAY_LEN(g_ks); ki++) {
        struct data d;
        CHECK(make_data(&d, g_ks[ki]));
        float *a = sp_malloc(sizeof(float) * (size_t)d.k), *b = sp_malloc(sizeof(float) * (size_t)d.k);
        CHECK(a && b);
        int ok = 1;
        for (int r = 0; r < 48; r++) { /* 3 groups: rows 37..47 are padding */
            kern_q8r_row_to_float((const char *)d.packed + (size_t)(r / 16) * d.grp, r % 16, a, d.k);
            if (r < ROWS)
                kern_ref_to_float_q8_0((const char *)d.w + (size_t)r * d.wrb, b, d.k);
            else
                memset(b, 0, sizeof(float) * (size_t)d.k);
            ok &= memcmp(a, b, sizeof(float) * (size_t)d.k) == 0;
        }
        sp_free(a);
        sp_free(b);
        free_data(&d);
        CHECK_MSG(ok, "k=%lld", (long long)g_ks[ki]);
    }
}

/* gemm over the packed rows == vec_dot of the original rows, bit for bit */
static void check_gemm(const char *what, kern_gemm_ws_fn gemm)
{
    static const int64_t nbs[] = {1, 2, 3, 4, 7, 17};
    static const int64_t ranges[][2] = {{0, ROWS}, {16, ROWS}, {32, 33}, {0, 16}, {16, 32}};
    const size_t ys = ROWS + 3;
    float *y = sp_malloc(sizeof(float) * ys * MAXB);
    CHECK(y);
    for (size_t ki = 0; ki < SP_ARRAY_LEN(g_ks); ki++) {
        struct data d;
        CHECK(make_data(&d, g_ks[ki]));
        for (size_t ni = 0; ni < SP_ARRAY_LEN(nbs); ni++)
            for (size_t ri = 0; ri < SP_ARRAY_LEN(ranges); ri++) {
                const int64_t nb = nbs[ni], r0 = ranges[ri][0], r1 = ranges[ri][1];
                for (size_t j = 0; j < ys * MAXB; j++)
                    y[j] = -12345.0f;
                gemm(d.k, r0, r1, nb, d.packed, d.grp, d.x, d.wrb, y, ys, g_ws);
                int bad = -1;
                for (int64_t b = 0; b < MAXB && bad < 0; b++)
                    for (int64_t r = 0; r < (int64_t)ys && bad < 0; r++) {
                        float want = -12345.0f;
                        if (b < nb && r >= r0 && r < r1)
                            kern_ref_vec_dot_q8_0(d.k, &want, (const char *)d.w + (size_t)r * d.wrb,
                                                  (const char *)d.x + (size_t)b * d.wrb);
                        if (memcmp(&want, &y[(size_t)b * ys + (size_t)r], sizeof(float)) != 0)
                            bad = (int)(b * 1000 + r);
                    }
                if (bad >= 0) {
                    free_data(&d);
                    sp_free(y);
                }
                CHECK_MSG(bad < 0, "%s: k=%lld n_batch=%lld rows [%lld, %lld): batch row %d, row %d differs", what,
                          (long long)g_ks[ki], (long long)nb, (long long)r0, (long long)r1, bad / 1000, bad % 1000);
            }
        free_data(&d);
    }
    sp_free(y);
}

TEST(ref_gemm_is_vec_dot)
{
    check_gemm("reference", kern_ref_q8r_gemm);
}

TEST(avx512_gemm_is_vec_dot)
{
    struct kern_type_ops emu = {0};
    emu_avx512_fill_repack(&emu, GG_TYPE_Q8_0);
    CHECK(emu.rp && emu.rp->rows == 16 && emu.rp->group_bytes == kern_q8r_group_bytes);
    check_gemm("emulated AVX-512", emu.rp->gemm);
    const struct kern_type_ops *nat = kern_ops_isa(KERN_ISA_AVX512, GG_TYPE_Q8_0);
    if (nat) {
        CHECK(nat->rp && nat->rp->gemm != kern_ref_q8r_gemm);
        check_gemm("native AVX-512", nat->rp->gemm);
    }
    fprintf(stderr, "  the emulated AVX-512 gemm%s equals vec_dot\n", nat ? " and the native one" : "");
    /* only the AVX-512 table repacks (the others keep their row kernels) */
    CHECK(kern_ops_isa(KERN_ISA_REF, GG_TYPE_Q8_0)->rp == NULL);
    CHECK(kern_ops_isa(KERN_ISA_AVX2, GG_TYPE_Q8_0)->rp == NULL);
}

int main(void)
{
    if (!kern_ops_isa(KERN_ISA_AVX2, GG_TYPE_F32)) {
        printf("SKIP: this CPU has no avx2\n");
        return 77;
    }
    const char *bad = avx512_emu_selfcheck(0x2545F4914F6CDD1Dull);
    if (bad) {
        fprintf(stderr, "FAIL: the emulated %s differs from the AVX2 hardware\n", bad);
        return 1;
    }
    g_ws = sp_aligned_alloc(64, KERN_GEMM_WS_BYTES);
    if (!g_ws)
        return 1;
    RUN(pack_gives_back_rows);
    RUN(ref_gemm_is_vec_dot);
    RUN(avx512_gemm_is_vec_dot);
    sp_aligned_free(g_ws);
    return test_summary();
}
