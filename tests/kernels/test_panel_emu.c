/* test_panel_emu.c - the AVX-512 panel gemms (src/kernels/x86/avx512/
 * panel_avx512.c) compiled over avx512_emu.h (each AVX-512 intrinsic in C,
 * checked against AVX2 hardware half by half), so that their arithmetic is
 * tested on every AVX2 machine, not only on AVX-512 ones: the emulated
 * Q4_0/Q5_0 and K-quant panels (panel_avx512.c, panel_k16_avx512.c) give
 * the AVX2 panels' bits (q_simple.c, panel_k8.c; memcmp), for batches around
 * the tile size, partial groups of 16 rows, odd row ranges, one block and
 * odd block counts, activations at the int8 ends and a large weight scale;
 * where the CPU has AVX-512, the native panel is compared with the emulated
 * one as well. Exits 77 (skipped) without AVX2. */
#include "kernels/avx512_emu.h"
#define kern_avx512_fill_panel emu_avx512_fill_panel
#include "kernels/x86/avx512/panel_avx512.c"
#define kern_avx512_fill_panel_k16 emu_avx512_fill_panel_k16
#include "kernels/x86/avx512/panel_k16_avx512.c"

#include "base/base.h"
#include "kernels/kern_impl.h"
#include "test.h"

static void *g_ws;
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static void fill(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = ((float)(test_rand_u32(&g_rng) & 0xFFFF) / 32768.0f - 1.0f) * scale;
}

static void check_type(enum gg_type type)
{
    const int blk = type == GG_TYPE_Q4_0 || type == GG_TYPE_Q5_0 ? 32 : 256;
    const struct kern_type_ops *a2 = kern_ops_isa(KERN_ISA_AVX2, type);
    CHECK(a2 && a2->gemm_ws);
    if (!a2 || !a2->gemm_ws)
        return;
    struct kern_type_ops emu = *a2;
    if (blk == 32)
        emu_avx512_fill_panel(&emu, type);
    else
        emu_avx512_fill_panel_k16(&emu, type);
    CHECK(emu.gemm_ws && emu.gemm_ws != a2->gemm_ws && emu.isa == KERN_ISA_AVX512);
    const struct kern_type_ops *nat = kern_ops_isa(KERN_ISA_AVX512, type);
    const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, a2->vec_dot_type);
    const int64_t ks[] = {blk, blk * (blk == 32 ? 13 : 3), blk * (blk == 32 ? 40 : 9)};
    static const int64_t nbs[] = {1, 8, 9, 17};
    enum { ROWS = 37, MAXB = 17 };
    for (size_t ki = 0; ki < SP_ARRAY_LEN(ks); ki++) {
        const int64_t k = ks[ki];
        size_t wrb = 0, xrb = 0;
        CHECK(gg_row_size(type, k, &wrb) && gg_row_size(a2->vec_dot_type, k, &xrb));
        const size_t ys = ROWS + 3;
        float *f = sp_malloc((size_t)k * sizeof(float));
        char *w = sp_malloc(wrb * ROWS), *x = sp_malloc(xrb * MAXB);
        float *y1 = sp_malloc(sizeof(float) * ys * MAXB),
              *y2 = sp_malloc(sizeof(float) * ys * MAXB);
        CHECK(f && w && x && y1 && y2);
        for (int r = 0; r < ROWS; r++) {
            fill(f, k, r == 5 ? 1e3f : 0.05f);
            a2->from_float(f, w + (size_t)r * wrb, k);
        }
        for (int b = 0; b < MAXB; b++) {
            fill(f, k, 1.0f);
            if (b % 5 == 2) /* each block's max: quants +-127 */
                for (int64_t j = 0; j < k; j += 7)
                    f[j] = (j / 7) % 2 ? 40.0f : -40.0f;
            ra->quantize_act(f, x + (size_t)b * xrb, k);
        }
        for (size_t ni = 0; ni < SP_ARRAY_LEN(nbs); ni++) {
            const int64_t nb = nbs[ni];
            const int r0 = (int)(nb % 3), r1 = ROWS - (int)(nb % 2);
            for (size_t j = 0; j < ys * MAXB; j++)
                y1[j] = y2[j] = -12345.0f;
            a2->gemm_ws(k, r0, r1, nb, w, wrb, x, xrb, y1, ys, g_ws);
            emu.gemm_ws(k, r0, r1, nb, w, wrb, x, xrb, y2, ys, g_ws);
            CHECK_MSG(memcmp(y1, y2, sizeof(float) * ys * MAXB) == 0,
                      "%s emulated k=%lld n_batch=%lld", gg_type_name(type), (long long)k,
                      (long long)nb);
            if (nat && nat->gemm_ws && nat->isa == KERN_ISA_AVX512) {
                for (size_t j = 0; j < ys * MAXB; j++)
                    y1[j] = -12345.0f;
                nat->gemm_ws(k, r0, r1, nb, w, wrb, x, xrb, y1, ys, g_ws);
                CHECK_MSG(memcmp(y1, y2, sizeof(float) * ys * MAXB) == 0,
                          "%s native k=%lld n_batch=%lld", gg_type_name(type), (long long)k,
                          (long long)nb);
            }
        }
        sp_free(f);
        sp_free(w);
        sp_free(x);
        sp_free(y1);
        sp_free(y2);
    }
    fprintf(stderr, "  %s: the emulated AVX-512 panel equals the AVX2 panel%s\n",
            gg_type_name(type), nat && nat->isa == KERN_ISA_AVX512 ? " and the native one" : "");
}

TEST(q4_0_panel)
{
    check_type(GG_TYPE_Q4_0);
}
TEST(q5_0_panel)
{
    check_type(GG_TYPE_Q5_0);
}
TEST(q2_K_panel)
{
    check_type(GG_TYPE_Q2_K);
}
TEST(q3_K_panel)
{
    check_type(GG_TYPE_Q3_K);
}
TEST(q4_K_panel)
{
    check_type(GG_TYPE_Q4_K);
}
TEST(q5_K_panel)
{
    check_type(GG_TYPE_Q5_K);
}
TEST(q6_K_panel)
{
    check_type(GG_TYPE_Q6_K);
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
    RUN(q4_0_panel);
    RUN(q5_0_panel);
    RUN(q2_K_panel);
    RUN(q3_K_panel);
    RUN(q4_K_panel);
    RUN(q5_K_panel);
    RUN(q6_K_panel);
    sp_aligned_free(g_ws);
    return test_summary();
}
