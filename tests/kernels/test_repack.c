/* test_repack.c - weights repacked at load (struct kern_repack): Q8_0
 * (src/kernels/ref/repack_q8.c, x86/avx512/rp_q8_avx512.c) and Q4_0
 * and Q5_0 (ref/repack_q4.c, x86/avx2/rp_q4.c, x86/avx512/rp_q4_avx512.c), Q4_K
 * and Q6_K (ref/repack_qk.c, x86/avx512/rp_qk_avx512.c; Q4_K also x86/avx2/rp_qk.c). The
 * packed groups give back each original row (row_to_float == to_float,
 * padded lanes zero), and every gemm over them - the reference, AVX2's, the
 * AVX-512 kernels compiled over tests/kernels/avx512_emu.h (so AVX2-only
 * machines test their arithmetic) and, where the CPU has AVX-512, the native
 * ones - gives each output exactly its order's value (memcmp): Q8_0
 * kern_ref_vec_dot_q8_0 of the original row (ggml's order), Q4_0, Q5_0 and
 * the K-quants the AVX2 panel gemm's (ops->gemm_ws) result; for batches of 1..17 rows, row ranges
 * starting and ending inside groups of 16, one and odd block counts, quants
 * at their ends and a large weight scale; rows outside the range are not
 * written. Exits 77 (skipped) without AVX2. */
#include "kernels/avx512_emu.h"
#define kern_avx512_fill_repack emu_avx512_fill_repack
#include "kernels/x86/avx512/rp_q8_avx512.c"
#define kern_avx512_fill_repack_q4 emu_avx512_fill_repack_q4
#include "kernels/x86/avx512/rp_q4_avx512.c"
#define kern_avx512_fill_repack_qk emu_avx512_fill_repack_qk
#include "kernels/x86/avx512/rp_qk_avx512.c"

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

/* ROWS weight rows of type (row 5 with a large scale; Q8_0 row 9 with -128
 * quants) and MAXB Q8_0 activation rows (every 5th at +-127) of k elements,
 * the rows packed, and want[b][r]: the order's value of each output */
struct data {
    enum gg_type type;
    int64_t k;
    size_t wrb, xrb, grp;
    char *w, *x;
    void *packed;
    float *want;
};

/* the reference layout functions of a type (gemm: the reference gemm) */
static const struct kern_repack *ref_rp(enum gg_type type)
{
    switch (type) {
    case GG_TYPE_Q8_0: return &kern_ref_q8_0_rp;
    case GG_TYPE_Q4_0: return &kern_ref_q4_0_rp;
    case GG_TYPE_Q5_0: return &kern_ref_q5_0_rp;
    case GG_TYPE_Q4_K: return &kern_ref_q4_K_rp;
    default: return &kern_ref_q6_K_rp;
    }
}

static bool make_data(struct data *d, enum gg_type type, int64_t k)
{
    memset(d, 0, sizeof(*d));
    d->type = type;
    d->k = k;
    const struct kern_type_ops *ref = kern_ops_isa(KERN_ISA_REF, type), *a2 = kern_ops_isa(KERN_ISA_AVX2, type);
    const bool q8 = type == GG_TYPE_Q8_0;
    const enum gg_type xt = ref->vec_dot_type;
    if (!gg_row_size(type, k, &d->wrb) || !gg_row_size(xt, k, &d->xrb))
        return false;
    const struct kern_repack *rf = ref_rp(type);
    d->grp = rf->group_bytes(k);
    float *f = sp_malloc((size_t)k * sizeof(float));
    d->w = sp_malloc(d->wrb * ROWS);
    d->x = sp_malloc(d->xrb * MAXB);
    d->want = sp_malloc(sizeof(float) * ROWS * MAXB);
    d->packed = sp_aligned_alloc(64, d->grp * ((ROWS + 15) / 16));
    if (!f || !d->w || !d->x || !d->want || !d->packed) {
        sp_free(f);
        return false;
    }
    for (int r = 0; r < ROWS; r++) {
        fill(f, k, r == 5 ? 1e3f : 0.05f);
        ref->from_float(f, d->w + (size_t)r * d->wrb, k);
    }
    if (q8) {
        block_q8_0 *r9 = (block_q8_0 *)(d->w + 9 * d->wrb);
        for (int64_t ib = 0; ib < k / KERN_QK; ib++)
            for (int j = 0; j < KERN_QK; j += 3)
                r9[ib].qs[j] = -128;
    }
    for (int b = 0; b < MAXB; b++) {
        fill(f, k, 1.0f);
        if (b % 5 == 2)
            for (int64_t j = 0; j < k; j += 7)
                f[j] = (j / 7) % 2 ? 40.0f : -40.0f;
        kern_ops_isa(KERN_ISA_REF, xt)->from_float(f, d->x + (size_t)b * d->xrb, k);
    }
    sp_free(f);
    for (int64_t g = 0; g * 16 < ROWS; g++)
        rf->pack(d->w + (size_t)(g * 16) * d->wrb, d->wrb, SP_MIN((int64_t)16, ROWS - g * 16), k,
                 (char *)d->packed + (size_t)g * d->grp);
    if (q8) {
        for (int b = 0; b < MAXB; b++)
            for (int r = 0; r < ROWS; r++)
                kern_ref_vec_dot_q8_0(k, &d->want[b * ROWS + r], d->w + (size_t)r * d->wrb, d->x + (size_t)b * d->xrb);
    } else {
        a2->gemm_ws(k, 0, ROWS, MAXB, d->w, d->wrb, d->x, d->xrb, d->want, ROWS, g_ws);
    }
    return true;
}

static void free_data(struct data *d)
{
    sp_free(d->w);
    sp_free(d->x);
    sp_free(d->want);
    sp_aligned_free(d->packed);
}

static const int64_t g_ks[] = {32, 32 * 13, 32 * 64};
static const int64_t g_ks_k[] = {256, 256 * 3, 256 * 11};
/* k of test case ki (the K-quants' rows are whole super-blocks) */
static int64_t case_k(enum gg_type type, size_t ki)
{
    return type == GG_TYPE_Q4_K || type == GG_TYPE_Q6_K ? g_ks_k[ki] : g_ks[ki];
}

static void check_pack(enum gg_type type)
{
    const struct kern_type_ops *ref = kern_ops_isa(KERN_ISA_REF, type);
    for (size_t ki = 0; ki < SP_ARRAY_LEN(g_ks); ki++) {
        struct data d;
        CHECK(make_data(&d, type, case_k(type, ki)));
        float *a = sp_malloc(sizeof(float) * (size_t)d.k), *b = sp_malloc(sizeof(float) * (size_t)d.k);
        CHECK(a && b);
        int ok = 1;
        for (int r = 0; r < 48; r++) { /* 3 groups: rows 37..47 are padding */
            const char *grp = (const char *)d.packed + (size_t)(r / 16) * d.grp;
            ref_rp(type)->row_to_float(grp, r % 16, a, d.k);
            if (r < ROWS)
                ref->to_float(d.w + (size_t)r * d.wrb, b, d.k);
            else
                memset(b, 0, sizeof(float) * (size_t)d.k);
            ok &= memcmp(a, b, sizeof(float) * (size_t)d.k) == 0;
        }
        sp_free(a);
        sp_free(b);
        free_data(&d);
        CHECK_MSG(ok, "%s k=%lld", gg_type_name(type), (long long)case_k(type, ki));
    }
}

TEST(pack_gives_back_rows)
{
    check_pack(GG_TYPE_Q8_0);
    check_pack(GG_TYPE_Q4_0);
    check_pack(GG_TYPE_Q5_0);
    check_pack(GG_TYPE_Q4_K);
    check_pack(GG_TYPE_Q6_K);
}

/* gemm over the packed rows == the order's value of every output, bit for bit */
static void check_gemm(enum gg_type type, const char *what, kern_gemm_ws_fn gemm)
{
    static const int64_t nbs[] = {1, 2, 3, 4, 7, 17};
    static const int64_t ranges[][2] = {{0, ROWS}, {16, ROWS}, {32, 33}, {0, 16}, {16, 32}, {0, 9}};
    const size_t ys = ROWS + 3;
    float *y = sp_malloc(sizeof(float) * ys * MAXB);
    CHECK(y);
    for (size_t ki = 0; ki < SP_ARRAY_LEN(g_ks); ki++) {
        struct data d;
        CHECK(make_data(&d, type, case_k(type, ki)));
        int bad = -1;
        int64_t nb = 0, r0 = 0, r1 = 0;
        for (size_t ni = 0; ni < SP_ARRAY_LEN(nbs) && bad < 0; ni++)
            for (size_t ri = 0; ri < SP_ARRAY_LEN(ranges) && bad < 0; ri++) {
                nb = nbs[ni], r0 = ranges[ri][0], r1 = ranges[ri][1];
                for (size_t j = 0; j < ys * MAXB; j++)
                    y[j] = -12345.0f;
                gemm(d.k, r0, r1, nb, d.packed, d.grp, d.x, d.xrb, y, ys, g_ws);
                for (int64_t b = 0; b < MAXB && bad < 0; b++)
                    for (int64_t r = 0; r < (int64_t)ys && bad < 0; r++) {
                        const float want = b < nb && r >= r0 && r < r1 ? d.want[b * ROWS + r] : -12345.0f;
                        if (memcmp(&want, &y[(size_t)b * ys + (size_t)r], sizeof(float)) != 0)
                            bad = (int)(b * 1000 + r);
                    }
            }
        free_data(&d);
        if (bad >= 0)
            sp_free(y);
        CHECK_MSG(bad < 0, "%s %s: k=%lld n_batch=%lld rows [%lld, %lld): batch row %d, row %d differs",
                  gg_type_name(type), what, (long long)case_k(type, ki), (long long)nb, (long long)r0, (long long)r1,
                  bad / 1000, bad % 1000);
    }
    sp_free(y);
}

TEST(q8_0_gemms_are_vec_dot)
{
    check_gemm(GG_TYPE_Q8_0, "reference", kern_ref_q8r_gemm);
    struct kern_type_ops emu = {0};
    emu_avx512_fill_repack(&emu, GG_TYPE_Q8_0);
    CHECK(emu.rp && emu.rp->rows == 16 && emu.rp->group_bytes == kern_q8r_group_bytes);
    check_gemm(GG_TYPE_Q8_0, "emulated AVX-512", emu.rp->gemm);
    const struct kern_type_ops *nat = kern_ops_isa(KERN_ISA_AVX512, GG_TYPE_Q8_0);
    if (nat) {
        CHECK(nat->rp && nat->rp->gemm != kern_ref_q8r_gemm);
        check_gemm(GG_TYPE_Q8_0, "native AVX-512", nat->rp->gemm);
    }
    fprintf(stderr, "  Q8_0: the reference, the emulated AVX-512 gemm%s equal vec_dot\n", nat ? " and the native one" : "");
    /* only the AVX-512 table repacks Q8_0 (AVX2 keeps its row kernels) */
    CHECK(kern_ops_isa(KERN_ISA_REF, GG_TYPE_Q8_0)->rp == NULL);
    CHECK(kern_ops_isa(KERN_ISA_AVX2, GG_TYPE_Q8_0)->rp == NULL);
}

static void check_panel_type(enum gg_type type)
{
    check_gemm(type, "reference", ref_rp(type)->gemm);
    const struct kern_type_ops *a2 = kern_ops_isa(KERN_ISA_AVX2, type);
    const bool kq = type == GG_TYPE_Q4_K || type == GG_TYPE_Q6_K;
    if (type == GG_TYPE_Q6_K) { /* AVX2 keeps Q6_K's views (docs/PARITY.md) */
        CHECK(a2->rp == NULL);
    } else {
        CHECK(a2->rp && a2->rp->rows == 16 && a2->rp->group_bytes == ref_rp(type)->group_bytes);
        check_gemm(type, "AVX2", a2->rp->gemm);
    }
    struct kern_type_ops emu = {0};
    if (kq)
        emu_avx512_fill_repack_qk(&emu, type);
    else
        emu_avx512_fill_repack_q4(&emu, type);
    CHECK(emu.rp && (!a2->rp || emu.rp->gemm != a2->rp->gemm));
    check_gemm(type, "emulated AVX-512", emu.rp->gemm);
    const struct kern_type_ops *nat = kern_ops_isa(KERN_ISA_AVX512, type);
    if (nat) {
        CHECK(nat->rp && (!a2->rp || nat->rp->gemm != a2->rp->gemm));
        check_gemm(type, "native AVX-512", nat->rp->gemm);
    }
    fprintf(stderr, "  %s: the reference, %semulated AVX-512 gemms%s equal the AVX2 panel\n", gg_type_name(type),
            a2->rp ? "AVX2 and " : "", nat ? " and the native one" : "");
    CHECK(kern_ops_isa(KERN_ISA_REF, type)->rp == NULL);
}

TEST(q4_0_gemms_are_the_panel)
{
    check_panel_type(GG_TYPE_Q4_0);
}

TEST(q5_0_gemms_are_the_panel)
{
    check_panel_type(GG_TYPE_Q5_0);
}

TEST(q4_K_gemms_are_the_panel)
{
    check_panel_type(GG_TYPE_Q4_K);
}

TEST(q6_K_gemms_are_the_panel)
{
    check_panel_type(GG_TYPE_Q6_K);
}

/* a batch whose sums outgrow the workspace (the driver then makes them per
 * tile, for every span): 300 activation rows (row b = data row b % MAXB) of
 * Q6_K with k = 2816 (11 super-blocks x 80 bytes of sums per row: 264,000
 * bytes > KERN_GEMM_WS_BYTES) */
/* n_batch rows of type's activations whose per-row sums (xs_bytes per
 * super-block) do not fit the workspace: the drivers' per-tile sums path */
static void check_big_batch(enum gg_type type, int nb, size_t xs_bytes, const char *what, kern_gemm_ws_fn gemm)
{
    struct data d;
    CHECK(make_data(&d, type, 256 * 11));
    CHECK((size_t)11 * (size_t)nb * xs_bytes > KERN_GEMM_WS_BYTES);
    char *x = sp_malloc(d.xrb * (size_t)nb);
    float *y = sp_malloc(sizeof(float) * ROWS * (size_t)nb);
    CHECK(x && y);
    for (int b = 0; b < nb; b++)
        memcpy(x + (size_t)b * d.xrb, d.x + (size_t)(b % MAXB) * d.xrb, d.xrb);
    gemm(d.k, 0, ROWS, nb, d.packed, d.grp, x, d.xrb, y, ROWS, g_ws);
    int bad = -1;
    for (int b = 0; b < nb && bad < 0; b++)
        for (int r = 0; r < ROWS && bad < 0; r++)
            if (memcmp(&d.want[(b % MAXB) * ROWS + r], &y[(size_t)b * ROWS + (size_t)r], sizeof(float)) != 0)
                bad = b * 1000 + r;
    sp_free(x);
    sp_free(y);
    free_data(&d);
    CHECK_MSG(bad < 0, "%s %s: n_batch %d: batch row %d, row %d differs", gg_type_name(type), what, nb, bad / 1000,
              bad % 1000);
}

TEST(batch_beyond_the_workspace)
{
    struct kern_type_ops emu = {0};
    emu_avx512_fill_repack_qk(&emu, GG_TYPE_Q6_K);
    check_big_batch(GG_TYPE_Q6_K, 300, sizeof(struct q6kr_x), "emulated AVX-512", emu.rp->gemm);
    const struct kern_type_ops *nat = kern_ops_isa(KERN_ISA_AVX512, GG_TYPE_Q6_K);
    if (nat)
        check_big_batch(GG_TYPE_Q6_K, 300, sizeof(struct q6kr_x), "native AVX-512", nat->rp->gemm);
    /* Q4_K: 32 bytes per super-block, so 800 rows (the AVX2 driver's and the AVX-512 one's) */
    const struct kern_type_ops *a2 = kern_ops_isa(KERN_ISA_AVX2, GG_TYPE_Q4_K);
    check_big_batch(GG_TYPE_Q4_K, 800, sizeof(struct kern_q4kr_x), "AVX2", a2->rp->gemm);
    struct kern_type_ops emu4 = {0};
    emu_avx512_fill_repack_qk(&emu4, GG_TYPE_Q4_K);
    check_big_batch(GG_TYPE_Q4_K, 800, sizeof(struct kern_q4kr_x), "emulated AVX-512", emu4.rp->gemm);
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
    RUN(q8_0_gemms_are_vec_dot);
    RUN(q4_0_gemms_are_the_panel);
    RUN(q5_0_gemms_are_the_panel);
    RUN(q4_K_gemms_are_the_panel);
    RUN(q6_K_gemms_are_the_panel);
    RUN(batch_beyond_the_workspace);
    sp_aligned_free(g_ws);
    return test_summary();
}
