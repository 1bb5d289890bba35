/* test_iq4.c - the IQ4_NL / IQ4_XS kernels of one ISA (argv[1]: avx2 or
 * avx512) equal the scalar reference bit for bit: vec_dot and gemm (batches
 * 1..9, 16 and 17, odd row ranges, odd block counts for IQ4_NL's scalar tail,
 * activations at the int8 extremes) and the panel gemm_ws, all of which follow
 * ggml's x86 summation order. Exits 77 (ctest SKIP_RETURN_CODE) when the CPU
 * lacks the ISA or the ISA has no IQ4 kernels of its own, so such a run shows
 * as skipped, never as passed.
 * Built a second time with SPOKE_IQ4_EMU (test_iq4_emu): the AVX-512 kernel
 * file is compiled here over avx512_emu.h (each AVX-512 intrinsic in C,
 * checked against AVX2 hardware half by half), so its lane arithmetic is
 * tested on every AVX2 machine, not only on the AVX-512 ones. */
#ifdef SPOKE_IQ4_EMU
#include "kernels/avx512_emu.h"
#define kern_avx512_fill_iq4 emu_avx512_fill_iq4
#include "kernels/x86/avx512/q_iq4_avx512.c"
#endif
#include "base/base.h"
#include "kernels/kern_impl.h"
#include "test.h"

static enum kern_isa g_isa;
static void *g_ws; /* KERN_GEMM_WS_BYTES for gemm_ws */
static uint64_t g_rng = 0x2545F4914F6CDD1Dull;

static float rnd_normal(void)
{
    float s = 0;
    for (int i = 0; i < 6; i++)
        s += (float)((test_rand_u32(&g_rng) & 0xFFFFFF) / 16777216.0);
    return (s - 3.0f) * 1.41421356f;
}

static void fill(float *x, int64_t n, float scale, bool extreme)
{
    for (int64_t i = 0; i < n; i++) {
        float v = rnd_normal() * scale;
        if (test_rand_u32(&g_rng) % 97 == 0)
            v *= 4.0f;
        if (extreme) /* every activation block at +-amax: int8 values +-127 */
            v = (test_rand_u32(&g_rng) & 1) ? scale : -scale;
        x[i] = v;
    }
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* the ops entry under test: this ISA's, or in the emulation build the AVX2
 * entry with the emulated AVX-512 fill applied (NULL: no variant) */
static const struct kern_type_ops *variant(enum gg_type type)
{
#ifdef SPOKE_IQ4_EMU
    static struct kern_type_ops emu[GG_TYPE_COUNT];
    const struct kern_type_ops *a = kern_ops_isa(KERN_ISA_AVX2, type);
    if (!a)
        return NULL;
    emu[type] = *a;
    emu_avx512_fill_iq4(&emu[type], type);
    return emu[type].isa == KERN_ISA_AVX512 ? &emu[type] : NULL;
#else
    return kern_ops_isa(g_isa, type);
#endif
}

static void check_type(enum gg_type type, const int64_t *sizes, int nsizes)
{
    const struct kern_type_ops *v = variant(type);
    const struct kern_type_ops *r = kern_ops_isa(KERN_ISA_REF, type);
    if (!v) /* this level runs the level below's kernels (checked there) */
        SKIP("%s has no %s kernel of its own", kern_isa_name(g_isa), gg_type_name(type));
    const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, r->vec_dot_type);
    enum { ROWS = 11, MAXB = 17 };
    static const int batches[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17};
    for (int si = 0; si < nsizes; si++) {
        for (int extreme = 0; extreme < 2; extreme++) {
            const int64_t k = sizes[si];
            size_t wrb = 0, xrb = 0;
            CHECK(gg_row_size(type, k, &wrb) && gg_row_size(r->vec_dot_type, k, &xrb));
            const size_t ws = wrb + 2, xs = xrb + 8, ys = ROWS + 3; /* strides past the rows on purpose */
            float *f = sp_malloc((size_t)k * sizeof(float));
            char *w = sp_malloc(ws * ROWS), *x = sp_malloc(xs * MAXB);
            float *want = sp_malloc(sizeof(float) * ROWS * MAXB), *y = sp_malloc(sizeof(float) * ys * MAXB);
            CHECK(f && w && x && want && y);
            for (int rr = 0; rr < ROWS; rr++) {
                fill(f, k, 0.05f, false);
                r->from_float(f, w + (size_t)rr * ws, k);
            }
            for (int b = 0; b < MAXB; b++) {
                fill(f, k, 1.0f, extreme != 0);
                ra->quantize_act(f, x + (size_t)b * xs, k);
            }
            for (int rr = 0; rr < ROWS; rr++) {
                for (int b = 0; b < MAXB; b++) {
                    float got;
                    r->vec_dot(k, &want[rr * MAXB + b], w + (size_t)rr * ws, x + (size_t)b * xs);
                    v->vec_dot(k, &got, w + (size_t)rr * ws, x + (size_t)b * xs);
                    CHECK_MSG(same_bits(got, want[rr * MAXB + b]), "%s %s vec_dot k=%lld row %d b %d: %.9g vs %.9g",
                              kern_isa_name(g_isa), gg_type_name(type), (long long)k, rr, b, (double)got,
                              (double)want[rr * MAXB + b]);
                }
            }
            for (int bi = 0; bi < (int)SP_ARRAY_LEN(batches) * 2; bi++) {
                const int nb = batches[bi / 2], panel = bi % 2; /* panel: gemm_ws */
                const int r0 = nb % 3, r1 = ROWS - (nb % 2);
                if (panel && !v->gemm_ws)
                    continue;
                for (size_t j = 0; j < ys * MAXB; j++)
                    y[j] = -12345.0f;
                if (panel)
                    v->gemm_ws(k, r0, r1, nb, w, ws, x, xs, y, ys, g_ws);
                else
                    v->gemm(k, r0, r1, nb, w, ws, x, xs, y, ys);
                for (int b = 0; b < MAXB; b++) {
                    for (int rr = 0; rr < (int)ys; rr++) {
                        const float g = y[(size_t)b * ys + (size_t)rr];
                        if (b >= nb || rr < r0 || rr >= r1) {
                            CHECK_MSG(g == -12345.0f, "%s gemm wrote outside", gg_type_name(type));
                            continue;
                        }
                        CHECK_MSG(same_bits(g, want[rr * MAXB + b]), "%s %s %s k=%lld nb=%d row %d b %d",
                                  kern_isa_name(g_isa), gg_type_name(type), panel ? "gemm_ws" : "gemm",
                                  (long long)k, nb, rr, b);
                    }
                }
            }
            sp_free(f);
            sp_free(w);
            sp_free(x);
            sp_free(want);
            sp_free(y);
        }
    }
    fprintf(stderr, "  %s%s %s: vec_dot, gemm%s bit-identical to the reference (%d row lengths)\n",
            kern_isa_name(g_isa),
#ifdef SPOKE_IQ4_EMU
            " (emulated)",
#else
            "",
#endif
            gg_type_name(type), v->gemm_ws ? " and gemm_ws" : "", nsizes);
}

TEST(iq4_nl_bit_identical)
{
    static const int64_t sizes[] = {32, 64, 96, 384, 2080, 4128};
    check_type(GG_TYPE_IQ4_NL, sizes, (int)SP_ARRAY_LEN(sizes));
}

TEST(iq4_xs_bit_identical)
{
    static const int64_t sizes[] = {256, 512, 768, 2304, 4096};
    check_type(GG_TYPE_IQ4_XS, sizes, (int)SP_ARRAY_LEN(sizes));
}

int main(int argc, char **argv)
{
#ifdef SPOKE_IQ4_EMU
    (void)argc;
    (void)argv;
    g_isa = KERN_ISA_AVX512;
    /* the emulation runs the kernel's AVX2 parts on the hardware */
    if (!kern_ops_isa(KERN_ISA_AVX2, GG_TYPE_F32)) {
        printf("SKIP: this CPU has no avx2\n");
        return 77;
    }
    const char *bad = avx512_emu_selfcheck(0x9E3779B97F4A7C15ull);
    if (bad) {
        fprintf(stderr, "FAIL: the emulated %s differs from the AVX2 hardware\n", bad);
        return 1;
    }
    fprintf(stderr, "  the emulated AVX-512 operations equal AVX2's on each half\n");
#else
    if (argc < 2 || (strcmp(argv[1], "avx2") != 0 && strcmp(argv[1], "avx512") != 0)) {
        fprintf(stderr, "usage: test_iq4 avx2|avx512\n");
        return 2;
    }
    g_isa = strcmp(argv[1], "avx2") == 0 ? KERN_ISA_AVX2 : KERN_ISA_AVX512;
    /* F32 has a variant on every ISA level, so this is NULL exactly when the
     * CPU (not SPOKE_ISA) lacks the level */
    if (!kern_ops_isa(g_isa, GG_TYPE_F32)) {
        printf("SKIP: this CPU has no %s\n", argv[1]);
        return 77;
    }
#endif
    g_ws = sp_aligned_alloc(64, KERN_GEMM_WS_BYTES);
    if (!g_ws)
        return 1;
    RUN(iq4_nl_bit_identical);
    RUN(iq4_xs_bit_identical);
    sp_aligned_free(g_ws);
    if (t_passed == 0 && t_failed == 0) {
        printf("SKIP: no %s IQ4 kernels\n", kern_isa_name(g_isa));
        return 77;
    }
    return test_summary();
}
