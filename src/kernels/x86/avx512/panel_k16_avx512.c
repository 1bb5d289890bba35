/* panel_k16_avx512.c - the AVX-512 VNNI prefill panel (ops->gemm_ws) of the
 * K-quants in the one-accumulator order: 16 weight rows per register. A
 * group of 16 rows is unpacked once per call (through the AVX2 builder,
 * kp_panel.h) into unsigned quants interleaved in 4-byte units (vector g of
 * a 32-element chunk holds elements 4g..4g+3 of each row), the rows' scale
 * of each 16-element half chunk as int32 lanes, their bsum coefficients as
 * int16 pairs and d, dm. Per super-block and activation row: vpdpbusd
 * against broadcasts of 4 activation bytes gives every row's 4-element dot,
 * summed per half chunk, times the half's scale (vpmulld) into the exact
 * integer sum of the super-block; vpdpwssd of the coefficient pairs with the
 * activation's bsum pairs gives the exact min/offset term. Then per output
 * one float accumulator over super-blocks: an offset type (Q3_K, Q6_K)
 * subtracts the term in the integers and adds fl(d*dy) * isum with one FMA;
 * a min type adds fl(d*dy) * isum, then subtracts fl(dm*dy) * msum (FNMADD).
 * The integers are vec_dot's, the float order is not (one accumulator per
 * output instead of 8 lanes): ws_exact false, so decode rows keep the row
 * kernels (docs/PARITY.md). */
#include "kernels/x86/avx2/kp_panel.h"
#include "kernels/x86/avx512/avx512_pair.h" /* not avx512_util.h: test_panel_emu emulates what this file uses */

#define K16_ROWS 16
#define K16_NA 6         /* activation rows per tile */
#define K16_MIN_BATCH 32 /* as panel_k8.c, so both ISAs give a batch the same bits */

struct k16_sb {
    uint8_t v[8][8][64];  /* [chunk][g]: 16 rows x elements 4g..4g+3 */
    int32_t sc[8][2][16]; /* [chunk][half]: the rows' scale */
    int16_t mc[8][32];    /* [bsum pair i]: the rows' coefficients 2i, 2i+1 */
    float d[16], dm[16];
};
static_assert(sizeof(struct k16_sb) % 64 == 0, "k16_sb keeps 64-byte alignment");

/* super-block ib of 16 rows into p */
static void k16_build(kp_build_fn build, const char *const *rows, size_t bsz, int64_t ib,
                      struct k16_sb *p)
{
    for (int r = 0; r < K16_ROWS; r++) {
        _Alignas(64) struct kp_sb t;
        build(rows[r] + (size_t)ib * bsz, &t, 1);
        for (int c = 0; c < 8; c++) {
            for (int g = 0; g < 8; g++)
                memcpy(&p->v[c][g][4 * r], t.q + 32 * c + 4 * g, 4);
            p->sc[c][0][r] = t.sc[c][0]; /* pair 0: elements 0, 1 */
            p->sc[c][1][r] = t.sc[c][8]; /* pair 8: elements 16, 17 */
        }
        for (int i = 0; i < 8; i++) {
            p->mc[i][2 * r] = t.mc[2 * i];
            p->mc[i][2 * r + 1] = t.mc[2 * i + 1];
        }
        p->d[r] = t.d;
        p->dm[r] = t.dm;
    }
}

/* 16 panel rows x na (1..K16_NA) activation rows; halves: the two halves of
 * a chunk may have different scales (else one product per chunk); off: an
 * offset type. out[j]: the 16 rows' results for activation row j. */
KERN_AI void k16_tile(int na, bool halves, bool off, int64_t nsb, const struct k16_sb *p,
                      const block_q8_K *const *x, __m512 *out)
{
    __m512 f[K16_NA];
    KERN_UNROLL for (int j = 0; j < na; j++) f[j] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nsb; ib++) {
        const struct k16_sb *s = p + ib;
        __m512i isum[K16_NA];
        KERN_UNROLL for (int j = 0; j < na; j++) isum[j] = _mm512_setzero_si512();
        /* not unrolled: the chunk loop would hoist every weight vector */
        for (int c = 0; c < 8; c++) {
            __m512i v[8];
            KERN_UNROLL for (int g = 0; g < 8; g++) v[g] = _mm512_load_si512(s->v[c][g]);
            KERN_UNROLL for (int j = 0; j < na; j++)
            {
                const int8_t *q = x[j][ib].qs + 32 * c;
                __m512i t = _mm512_setzero_si512();
                KERN_UNROLL for (int g = 0; g < 8; g++)
                {
                    int32_t y4;
                    memcpy(&y4, q + 4 * g, 4);
                    t = _mm512_dpbusd_epi32(t, v[g], _mm512_set1_epi32(y4));
                    if (halves && g == 3) {
                        isum[j] = _mm512_add_epi32(
                            isum[j], _mm512_mullo_epi32(t, _mm512_load_si512(s->sc[c][0])));
                        t = _mm512_setzero_si512();
                    }
                }
                isum[j] = _mm512_add_epi32(
                    isum[j], _mm512_mullo_epi32(t, _mm512_load_si512(s->sc[c][halves])));
            }
        }
        const __m512 d = _mm512_load_ps(s->d);
        KERN_UNROLL for (int j = 0; j < na; j++)
        {
            __m512i m = _mm512_setzero_si512();
            KERN_UNROLL for (int i = 0; i < 8; i++)
            {
                int32_t b2;
                memcpy(&b2, &x[j][ib].bsums[2 * i], 4);
                m = _mm512_dpwssd_epi32(m, _mm512_load_si512(s->mc[i]), _mm512_set1_epi32(b2));
            }
            const __m512 dy = _mm512_set1_ps(x[j][ib].d);
            if (off)
                isum[j] = _mm512_sub_epi32(isum[j], m);
            f[j] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(isum[j]), f[j]);
            if (!off)
                f[j] = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_load_ps(s->dm), dy),
                                        _mm512_cvtepi32_ps(m), f[j]);
        }
    }
    KERN_UNROLL for (int j = 0; j < na; j++) out[j] = f[j];
}

typedef void (*k16_tile_fn)(int64_t nsb, const struct k16_sb *p, const block_q8_K *const *x,
                            __m512 *out);
#define K16_TILE_N(N, HALVES, OFF, SFX)                                                            \
    static void k16_tile_##N##SFX(int64_t nsb, const struct k16_sb *p, const block_q8_K *const *x, \
                                  __m512 *out)                                                     \
    {                                                                                              \
        k16_tile(N, HALVES, OFF, nsb, p, x, out);                                                  \
    }
#define K16_TILES(HALVES, OFF, SFX)                                                                \
    K16_TILE_N(1, HALVES, OFF, SFX)                                                                \
    K16_TILE_N(2, HALVES, OFF, SFX)                                                                \
    K16_TILE_N(3, HALVES, OFF, SFX)                                                                \
    K16_TILE_N(4, HALVES, OFF, SFX)                                                                \
    K16_TILE_N(5, HALVES, OFF, SFX)                                                                \
    K16_TILE_N(6, HALVES, OFF, SFX)                                                                \
    static const k16_tile_fn k16_tiles##SFX[K16_NA] = {k16_tile_1##SFX, k16_tile_2##SFX,           \
                                                       k16_tile_3##SFX, k16_tile_4##SFX,           \
                                                       k16_tile_5##SFX, k16_tile_6##SFX};
K16_TILES(false, false, _min32) /* Q4_K, Q5_K: a scale and a min per 32 */
K16_TILES(true, false, _min16)  /* Q2_K: per 16 */
K16_TILES(true, true, _off16)   /* Q3_K, Q6_K: a scale per 16, an offset */

/* false when one group of 16 rows of k does not fit the workspace */
static bool k16_gemm(kp_build_fn build, size_t bsz, const k16_tile_fn *tiles, int64_t k, int64_t r0,
                     int64_t r1, int64_t n_batch, const void *w, size_t w_stride, const void *x,
                     size_t x_stride, float *y, size_t y_stride, void *ws)
{
    const int64_t nsb = k / KERN_QK_K;
    const size_t grp_bytes = (size_t)nsb * sizeof(struct k16_sb);
    const int64_t ngrp = (int64_t)(KERN_GEMM_WS_BYTES / grp_bytes);
    if (ngrp < 1)
        return false;
    struct k16_sb *panel = ws;
    for (int64_t p0 = r0; p0 < r1; p0 += ngrp * K16_ROWS) {
        const int64_t np = SP_MIN(ngrp * K16_ROWS, r1 - p0), ng = (np + K16_ROWS - 1) / K16_ROWS;
        for (int64_t gi = 0; gi < ng; gi++) {
            const char *rows[K16_ROWS];
            for (int r = 0; r < K16_ROWS; r++) /* a short last group repeats its last row */
                rows[r] =
                    (const char *)w + (size_t)(p0 + SP_MIN(gi * K16_ROWS + r, np - 1)) * w_stride;
            for (int64_t ib = 0; ib < nsb; ib++)
                k16_build(build, rows, bsz, ib, panel + gi * nsb + ib);
        }
        for (int64_t b = 0; b < n_batch; b += K16_NA) {
            const int64_t na = SP_MIN(K16_NA, n_batch - b);
            const block_q8_K *xp[K16_NA];
            for (int64_t j = 0; j < na; j++)
                xp[j] = (const block_q8_K *)((const char *)x + (size_t)(b + j) * x_stride);
            for (int64_t gi = 0; gi < ng; gi++) {
                __m512 o[K16_NA];
                tiles[na - 1](nsb, panel + gi * nsb, xp, o);
                const int64_t rr = p0 + gi * K16_ROWS, nv = SP_MIN(K16_ROWS, np - gi * K16_ROWS);
                const __mmask16 m = (__mmask16)((1u << nv) - 1);
                for (int64_t j = 0; j < na; j++)
                    _mm512_mask_storeu_ps(y + (size_t)(b + j) * y_stride + (size_t)rr, m, o[j]);
            }
        }
    }
    return true;
}

/* per type: the AVX2 builder, the tiles, and the row gemm the AVX-512 fill
 * chose (for rows too long for the workspace) */
static struct {
    struct kp_type t;
    const k16_tile_fn *tiles;
    kern_gemm_fn rows;
} g_k16[KP_NTYPES];

#define K16_GEMM(NAME, SLOT)                                                                       \
    static void NAME##_gemm_ws16(int64_t k, int64_t r0, int64_t r1, int64_t n_batch,               \
                                 const void *w, size_t w_stride, const void *x, size_t x_stride,   \
                                 float *y, size_t y_stride, void *ws)                              \
    {                                                                                              \
        if (!k16_gemm(g_k16[SLOT].t.build, g_k16[SLOT].t.bsz, g_k16[SLOT].tiles, k, r0, r1,        \
                      n_batch, w, w_stride, x, x_stride, y, y_stride, ws))                         \
            g_k16[SLOT].rows(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);           \
    }
K16_GEMM(q2_K, 0)
K16_GEMM(q3_K, 1)
K16_GEMM(q4_K, 2)
K16_GEMM(q5_K, 3)
K16_GEMM(q6_K, 4)

/* Called by kern_avx512_fill after the row kernels' fills. */
void kern_avx512_fill_panel_k16(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_panel_k16(struct kern_type_ops *ops, enum gg_type type)
{
    static const kern_gemm_ws_fn fns[KP_NTYPES] = {q2_K_gemm_ws16, q3_K_gemm_ws16, q4_K_gemm_ws16,
                                                   q5_K_gemm_ws16, q6_K_gemm_ws16};
    static const k16_tile_fn *const tiles[KP_NTYPES] = {
        k16_tiles_min16, k16_tiles_off16, k16_tiles_min32, k16_tiles_min32, k16_tiles_off16};
    struct kp_type t;
    if (!kern_avx2_kp_type(type, &t) || !ops->gemm)
        return;
    const int slot = t.slot;
    g_k16[slot].t = t;
    g_k16[slot].tiles = tiles[slot];
    g_k16[slot].rows = ops->gemm;
    ops->gemm_ws = fns[slot];
    ops->ws_exact = false; /* one accumulator per output (docs/PARITY.md) */
    ops->ws_min_batch = K16_MIN_BATCH;
    ops->isa = KERN_ISA_AVX512;
}
