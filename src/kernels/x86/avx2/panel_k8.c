/* panel_k8.c - the AVX2 prefill panel (ops->gemm_ws) of the K-quants in the
 * one-accumulator order of the AVX-512 panel (avx512/panel_k16_avx512.c),
 * with 8 weight rows per register: a group of 8 rows is unpacked once per
 * call (kp_panel.h's builder) into unsigned quants interleaved in 4-byte
 * units, each row's scale per 16-element half chunk as an int16 pair, the
 * bsum coefficients as int16 pairs and d, dm. Per super-block and
 * activation row: pmaddubsw of vector g against a broadcast of 4 activation
 * bytes gives every row's two pair sums; RUN of them (the run of groups
 * under one scale that int16 holds and the registers fit: 4, or 2 for Q6_K) are added in int16,
 * then one pmaddwd by the scale adds scale x dot into the row's int32 lane: the exact integer sum
 * of vec_dot. The min or offset term is pmaddwd of the coefficient pairs with the bsum pairs. Then
 * the same float operations as the AVX-512 panel (one accumulator per
 * output: an FMA with fl(d*dy), an FNMADD with fl(dm*dy) for a min type, the
 * offset subtracted in the integers for Q3_K/Q6_K), so both ISAs give the
 * same bits (test_kernels compares them); the order differs from vec_dot's
 * (ws_exact false, docs/PARITY.md). */
#include "kernels/x86/avx2/avx2_util.h"
#include "kernels/x86/avx2/kp_panel.h"

#define K8_ROWS 8
#define K8_NA 4         /* activation rows per tile */
#define K8_MIN_BATCH 32 /* bench_kernels: the row gemm was faster at 16 */

struct k8_sb {
    uint8_t v[8][8][32];  /* [chunk][g]: 8 rows x elements 4g..4g+3 */
    int16_t sc[8][2][16]; /* [chunk][half]: each row's scale, twice */
    int16_t mc[8][16];    /* [bsum pair i]: the rows' coefficients 2i, 2i+1 */
    float d[8], dm[8];
};
static_assert(sizeof(struct k8_sb) % 32 == 0, "k8_sb keeps 32-byte alignment");

static void k8_build(kp_build_fn build, const char *const *rows, size_t bsz, int64_t ib,
                     struct k8_sb *p)
{
    for (int r = 0; r < K8_ROWS; r++) {
        _Alignas(32) struct kp_sb t;
        build(rows[r] + (size_t)ib * bsz, &t, 1);
        for (int c = 0; c < 8; c++) {
            for (int g = 0; g < 8; g++)
                memcpy(&p->v[c][g][4 * r], t.q + 32 * c + 4 * g, 4);
            p->sc[c][0][2 * r] = p->sc[c][0][2 * r + 1] = t.sc[c][0]; /* elements 0..15 */
            p->sc[c][1][2 * r] = p->sc[c][1][2 * r + 1] = t.sc[c][8]; /* 16..31 */
        }
        for (int i = 0; i < 8; i++) {
            p->mc[i][2 * r] = t.mc[2 * i];
            p->mc[i][2 * r + 1] = t.mc[2 * i + 1];
        }
        p->d[r] = t.d;
        p->dm[r] = t.dm;
    }
}

/* 8 panel rows x na (1..K8_NA) activation rows; run: groups added in int16
 * before a pmaddwd (8, 4 or 2); off: an offset type */
KERN_AI void k8_tile(int na, int run, bool off, int64_t nsb, const struct k8_sb *p,
                     const block_q8_K *const *x, __m256 *out)
{
    __m256 f[K8_NA];
    KERN_UNROLL for (int j = 0; j < na; j++) f[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nsb; ib++) {
        const struct k8_sb *s = p + ib;
        __m256i isum[K8_NA];
        KERN_UNROLL for (int j = 0; j < na; j++) isum[j] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            KERN_UNROLL for (int g0 = 0; g0 < 8; g0 += run)
            {
                const __m256i sc = _mm256_load_si256((const __m256i *)s->sc[c][g0 / 4]);
                __m256i s16[K8_NA];
                KERN_UNROLL for (int g = g0; g < g0 + run; g++)
                {
                    const __m256i v = _mm256_load_si256((const __m256i *)s->v[c][g]);
                    KERN_UNROLL for (int j = 0; j < na; j++)
                    {
                        int32_t y4;
                        memcpy(&y4, x[j][ib].qs + 32 * c + 4 * g, 4);
                        const __m256i m = _mm256_maddubs_epi16(v, _mm256_set1_epi32(y4));
                        s16[j] = g == g0 ? m : _mm256_add_epi16(s16[j], m);
                        avx2_pin(&s16[j]); /* a chain, not a tree (avx2_pin) */
                    }
                }
                KERN_UNROLL for (int j = 0; j < na; j++) isum[j] =
                    _mm256_add_epi32(isum[j], _mm256_madd_epi16(s16[j], sc));
            }
        }
        const __m256 d = _mm256_load_ps(s->d);
        KERN_UNROLL for (int j = 0; j < na; j++)
        {
            __m256i m = _mm256_setzero_si256();
            KERN_UNROLL for (int i = 0; i < 8; i++)
            {
                int32_t b2;
                memcpy(&b2, &x[j][ib].bsums[2 * i], 4);
                m = _mm256_add_epi32(m,
                                     _mm256_madd_epi16(_mm256_load_si256((const __m256i *)s->mc[i]),
                                                       _mm256_set1_epi32(b2)));
            }
            const __m256 dy = _mm256_set1_ps(x[j][ib].d);
            if (off)
                isum[j] = _mm256_sub_epi32(isum[j], m);
            f[j] = _mm256_fmadd_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(isum[j]), f[j]);
            if (!off)
                f[j] = _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_load_ps(s->dm), dy),
                                        _mm256_cvtepi32_ps(m), f[j]);
        }
    }
    KERN_UNROLL for (int j = 0; j < na; j++) out[j] = f[j];
}

typedef void (*k8_tile_fn)(int64_t nsb, const struct k8_sb *p, const block_q8_K *const *x,
                           __m256 *out);
#define K8_TILE_N(N, RUN, OFF, SFX)                                                                \
    static void k8_tile_##N##SFX(int64_t nsb, const struct k8_sb *p, const block_q8_K *const *x,   \
                                 __m256 *out)                                                      \
    {                                                                                              \
        k8_tile(N, RUN, OFF, nsb, p, x, out);                                                      \
    }
#define K8_TILES(RUN, OFF, SFX)                                                                    \
    K8_TILE_N(1, RUN, OFF, SFX)                                                                    \
    K8_TILE_N(2, RUN, OFF, SFX)                                                                    \
    K8_TILE_N(3, RUN, OFF, SFX)                                                                    \
    K8_TILE_N(4, RUN, OFF, SFX)                                                                    \
    static const k8_tile_fn k8_tiles##SFX[K8_NA] = {k8_tile_1##SFX, k8_tile_2##SFX,                \
                                                    k8_tile_3##SFX, k8_tile_4##SFX};
/* int16 sums: 2 x 31 x 128 x 4 (Q4_K, Q5_K), 2 x 63 x 128 x 2 (Q6_K) stay below
 * 2^15; Q2_K's and Q3_K's halves have their own scales. (Q4_K could add all 8
 * groups, 2 x 15 x 128 x 8 < 2^15, but its tile then spilled: slower.) */
K8_TILES(4, false, _min4)
K8_TILES(4, true, _off4)
K8_TILES(2, true, _q6)

static bool k8_gemm(kp_build_fn build, size_t bsz, const k8_tile_fn *tiles, int64_t k, int64_t r0,
                    int64_t r1, int64_t n_batch, const void *w, size_t w_stride, const void *x,
                    size_t x_stride, float *y, size_t y_stride, void *ws)
{
    const int64_t nsb = k / KERN_QK_K;
    const size_t grp_bytes = (size_t)nsb * sizeof(struct k8_sb);
    const int64_t ngrp = (int64_t)(KERN_GEMM_WS_BYTES / grp_bytes);
    if (ngrp < 1)
        return false;
    struct k8_sb *panel = ws;
    for (int64_t p0 = r0; p0 < r1; p0 += ngrp * K8_ROWS) {
        const int64_t np = SP_MIN(ngrp * K8_ROWS, r1 - p0), ng = (np + K8_ROWS - 1) / K8_ROWS;
        for (int64_t gi = 0; gi < ng; gi++) {
            const char *rows[K8_ROWS];
            for (int r = 0; r < K8_ROWS; r++) /* a short last group repeats its last row */
                rows[r] =
                    (const char *)w + (size_t)(p0 + SP_MIN(gi * K8_ROWS + r, np - 1)) * w_stride;
            for (int64_t ib = 0; ib < nsb; ib++)
                k8_build(build, rows, bsz, ib, panel + gi * nsb + ib);
        }
        for (int64_t b = 0; b < n_batch; b += K8_NA) {
            const int64_t na = SP_MIN(K8_NA, n_batch - b);
            const block_q8_K *xp[K8_NA];
            for (int64_t j = 0; j < na; j++)
                xp[j] = (const block_q8_K *)((const char *)x + (size_t)(b + j) * x_stride);
            for (int64_t gi = 0; gi < ng; gi++) {
                __m256 o[K8_NA];
                tiles[na - 1](nsb, panel + gi * nsb, xp, o);
                const int64_t rr = p0 + gi * K8_ROWS, nv = SP_MIN(K8_ROWS, np - gi * K8_ROWS);
                for (int64_t j = 0; j < na; j++)
                    avx2_store_n(y + (size_t)(b + j) * y_stride + (size_t)rr, o[j], nv);
            }
        }
    }
    return true;
}

static struct {
    struct kp_type t;
    const k8_tile_fn *tiles;
    kern_gemm_fn rows;
} g_k8[KP_NTYPES];

#define K8_GEMM(NAME, SLOT)                                                                        \
    static void NAME##_gemm_ws8(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, \
                                size_t w_stride, const void *x, size_t x_stride, float *y,         \
                                size_t y_stride, void *ws)                                         \
    {                                                                                              \
        if (!k8_gemm(g_k8[SLOT].t.build, g_k8[SLOT].t.bsz, g_k8[SLOT].tiles, k, r0, r1, n_batch,   \
                     w, w_stride, x, x_stride, y, y_stride, ws))                                   \
            g_k8[SLOT].rows(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);            \
    }
K8_GEMM(q2_K, 0)
K8_GEMM(q3_K, 1)
K8_GEMM(q4_K, 2)
K8_GEMM(q5_K, 3)
K8_GEMM(q6_K, 4)

/* Called by kern_avx2_fill after the K-quant row kernels' fill. */
void kern_avx2_fill_panel_k8(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_panel_k8(struct kern_type_ops *ops, enum gg_type type)
{
    static const kern_gemm_ws_fn fns[KP_NTYPES] = {q2_K_gemm_ws8, q3_K_gemm_ws8, q4_K_gemm_ws8,
                                                   q5_K_gemm_ws8, q6_K_gemm_ws8};
    static const k8_tile_fn *const tiles[KP_NTYPES] = {k8_tiles_min4, k8_tiles_off4, k8_tiles_min4,
                                                       k8_tiles_min4, k8_tiles_q6};
    struct kp_type t;
    if (!kern_avx2_kp_type(type, &t) || !ops->gemm)
        return;
    const int slot = t.slot;
    g_k8[slot].t = t;
    g_k8[slot].tiles = tiles[slot];
    g_k8[slot].rows = ops->gemm;
    ops->gemm_ws = fns[slot];
    ops->ws_exact = false; /* one accumulator per output (docs/PARITY.md) */
    ops->ws_min_batch = K8_MIN_BATCH;
}
