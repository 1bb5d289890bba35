/* panel_k_avx512.c - the AVX-512 panel gemm (ops->gemm_ws, prefill) of the
 * K-quants: AVX2's exact panel (q_k.c) with two weight rows per register.
 * Weight rows are unpacked once per call by the AVX2 builder (kp_panel.h)
 * and paired: per super-block and 32-element chunk one 64-byte vector holds
 * the chunk's quants of row 0 then row 1, another the two rows' int16 madd
 * multipliers. Against the activation chunk broadcast to both halves,
 * vpmaddubsw + vpdpwssd give each row the 8 int32 lanes that AVX2's
 * maddubs + madd + add give it; then per super-block the same float
 * operations per half (one FMA with fl(d * d_y), the min term's FNMADD or
 * the offset subtracted in the integers) and AVX2's 8-lane hsum at the end.
 * So every output has the AVX2 panel's bits, which are vec_dot's
 * (ws_exact; test_kernels and test_panel_emu compare them by memcmp). Tiles
 * of 2 row pairs x up to 4 activation rows. */
#include "kernels/x86/avx2/kp_panel.h"
#include "kernels/x86/avx512/avx512_pair.h" /* not avx512_util.h: test_panel_emu emulates what this file uses */

#define K2_NA 4            /* activation rows per tile */
#define K2_MAX_PAIRS 16    /* 32 weight rows per panel at most */
#define K2_MIN_BATCH 16

struct k2_sb {
    uint8_t q[8][64];  /* chunk c: row 0's 32 quants, row 1's */
    int16_t sc[8][32]; /* chunk c: row 0's 16 multipliers, row 1's */
    int16_t mc[32];    /* bsum coefficients: row 0's 16, row 1's */
    float d[16];       /* d of row 0 in lanes 0..7, of row 1 in 8..15 */
    float dm[16];      /* the same for dm */
};
static_assert(sizeof(struct k2_sb) % 64 == 0, "k2_sb keeps 64-byte alignment");

/* one super-block of two rows (blocks b0, b1) into p */
static void k2_build(kp_build_fn build, const void *b0, const void *b1, struct k2_sb *p)
{
    _Alignas(64) struct kp_sb t[2];
    build(b0, &t[0], 1);
    build(b1, &t[1], 1);
    for (int h = 0; h < 2; h++) {
        for (int c = 0; c < 8; c++) {
            memcpy(&p->q[c][32 * h], t[h].q + 32 * c, 32);
            memcpy(&p->sc[c][16 * h], t[h].sc[c], 32);
        }
        memcpy(&p->mc[16 * h], t[h].mc, 32);
        for (int l = 0; l < 8; l++) {
            p->d[8 * h + l] = t[h].d;
            p->dm[8 * h + l] = t[h].dm;
        }
    }
}

/* 2 row pairs x na (1..K2_NA) activation rows; o[i][j]: pair i's 16 lanes
 * (row 2i in 0..7, row 2i+1 in 8..15) for activation row j, not yet summed */
KERN_AI void k2_tile(int na, bool off, int64_t nsb, const struct k2_sb *p0, const struct k2_sb *p1,
                     const block_q8_K *const *x, __m512 o[2][K2_NA])
{
    __m512 f[2][K2_NA];
    KERN_UNROLL for (int j = 0; j < na; j++) f[0][j] = f[1][j] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nsb; ib++) {
        const struct k2_sb *pp[2] = {p0 + ib, p1 + ib};
        __m512i a[2][K2_NA];
        KERN_UNROLL for (int j = 0; j < na; j++) a[0][j] = a[1][j] = _mm512_setzero_si512();
        /* not unrolled: the chunk loop would hoist every product */
        for (int c = 0; c < 8; c++) {
            __m512i y[K2_NA];
            KERN_UNROLL for (int j = 0; j < na; j++)
                y[j] = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[j][ib].qs + 32 * c)));
            KERN_UNROLL for (int i = 0; i < 2; i++) {
                const __m512i q = _mm512_load_si512(pp[i]->q[c]);
                const __m512i s = _mm512_load_si512(pp[i]->sc[c]);
                KERN_UNROLL for (int j = 0; j < na; j++)
                    a[i][j] = _mm512_dpwssd_epi32(a[i][j], _mm512_maddubs_epi16(q, y[j]), s);
            }
        }
        KERN_UNROLL for (int i = 0; i < 2; i++) {
            const __m512i mc = _mm512_load_si512(pp[i]->mc);
            const __m512 d = _mm512_load_ps(pp[i]->d);
            KERN_UNROLL for (int j = 0; j < na; j++) {
                const __m512i bs = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x[j][ib].bsums));
                const __m512 dy = _mm512_set1_ps(x[j][ib].d);
                const __m512i m = _mm512_madd_epi16(bs, mc);
                if (off)
                    a[i][j] = _mm512_sub_epi32(a[i][j], m);
                f[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(a[i][j]), f[i][j]);
                if (!off)
                    f[i][j] = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_load_ps(pp[i]->dm), dy), _mm512_cvtepi32_ps(m),
                                               f[i][j]);
            }
        }
    }
    KERN_UNROLL for (int j = 0; j < na; j++) {
        o[0][j] = f[0][j];
        o[1][j] = f[1][j];
    }
}

typedef void (*k2_tile_fn)(int64_t nsb, const struct k2_sb *p0, const struct k2_sb *p1, const block_q8_K *const *x,
                           __m512 o[2][K2_NA]);
#define K2_TILE_N(N, OFF, SFX)                                                                                   \
    static void k2_tile_##N##SFX(int64_t nsb, const struct k2_sb *p0, const struct k2_sb *p1,                  \
                                 const block_q8_K *const *x, __m512 o[2][K2_NA])                                \
    {                                                                                                            \
        k2_tile(N, OFF, nsb, p0, p1, x, o);                                                                      \
    }
K2_TILE_N(1, false, _min)
K2_TILE_N(2, false, _min)
K2_TILE_N(3, false, _min)
K2_TILE_N(4, false, _min)
K2_TILE_N(1, true, _off)
K2_TILE_N(2, true, _off)
K2_TILE_N(3, true, _off)
K2_TILE_N(4, true, _off)
static const k2_tile_fn k2_tiles_min[K2_NA] = {k2_tile_1_min, k2_tile_2_min, k2_tile_3_min, k2_tile_4_min};
static const k2_tile_fn k2_tiles_off[K2_NA] = {k2_tile_1_off, k2_tile_2_off, k2_tile_3_off, k2_tile_4_off};

/* false when one pair of rows of k does not fit the workspace */
static bool k2_gemm(kp_build_fn build, size_t bsz, bool off, int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,
                    size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    const int64_t nsb = k / KERN_QK_K;
    int64_t npair = (int64_t)(KERN_GEMM_WS_BYTES / ((size_t)nsb * sizeof(struct k2_sb)));
    npair = SP_MIN(npair, K2_MAX_PAIRS) & ~(int64_t)1; /* tiles take 2 pairs */
    if (npair < 2)
        return false;
    const k2_tile_fn *tiles = off ? k2_tiles_off : k2_tiles_min;
    struct k2_sb *panel = ws;
    for (int64_t pr0 = r0; pr0 < r1; pr0 += 2 * npair) {
        const int64_t np = SP_MIN(2 * npair, r1 - pr0), npp = (np + 1) / 2;
        for (int64_t i = 0; i < npp; i++) {
            /* a short last pair repeats its row */
            const char *w0 = (const char *)w + (size_t)(pr0 + 2 * i) * w_stride;
            const char *w1 = (const char *)w + (size_t)(pr0 + SP_MIN(2 * i + 1, np - 1)) * w_stride;
            for (int64_t ib = 0; ib < nsb; ib++)
                k2_build(build, w0 + (size_t)ib * bsz, w1 + (size_t)ib * bsz, panel + i * nsb + ib);
        }
        for (int64_t b = 0; b < n_batch; b += K2_NA) {
            const int64_t na = SP_MIN(K2_NA, n_batch - b);
            const block_q8_K *xp[K2_NA];
            for (int64_t j = 0; j < na; j++)
                xp[j] = (const block_q8_K *)((const char *)x + (size_t)(b + j) * x_stride);
            for (int64_t i = 0; i < npp; i += 2) {
                const int64_t i1 = SP_MIN(i + 1, npp - 1);
                __m512 o[2][K2_NA];
                tiles[na - 1](nsb, panel + i * nsb, panel + i1 * nsb, xp, o);
                for (int h = 0; h < 2 && i + h < npp; h++) {
                    for (int64_t j = 0; j < na; j++) {
                        float *dst = y + (size_t)(b + j) * y_stride + (size_t)pr0;
                        const int64_t row = 2 * (i + h);
                        dst[row] = avx2_hsum_ps(_mm512_castps512_ps256(o[h][j]));
                        if (row + 1 < np)
                            dst[row + 1] = avx2_hsum_ps(_mm512_extractf32x8_ps(o[h][j], 1));
                    }
                }
            }
        }
    }
    return true;
}

/* per type: the AVX2 builder, and the row gemm the AVX-512 fill chose */
static struct {
    kp_build_fn build;
    size_t bsz; /* bytes per super-block */
    bool off;
    kern_gemm_fn rows;
} g_k2[5];

#define K2_GEMM(NAME, SLOT)                                                                                      \
    static void NAME##_gemm_ws512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,            \
                                  size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride,    \
                                  void *ws)                                                                      \
    {                                                                                                            \
        if (!k2_gemm(g_k2[SLOT].build, g_k2[SLOT].bsz, g_k2[SLOT].off, k, r0, r1, n_batch, w, w_stride, x, x_stride, y,          \
                     y_stride, ws))                                                                              \
            g_k2[SLOT].rows(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);                          \
    }
K2_GEMM(q2_K, 0)
K2_GEMM(q3_K, 1)
K2_GEMM(q4_K, 2)
K2_GEMM(q5_K, 3)
K2_GEMM(q6_K, 4)

/* Called by kern_avx512_fill after the row kernels' fills. */
void kern_avx512_fill_panel_k(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_panel_k(struct kern_type_ops *ops, enum gg_type type)
{
    static const kern_gemm_ws_fn fns[5] = {q2_K_gemm_ws512, q3_K_gemm_ws512, q4_K_gemm_ws512, q5_K_gemm_ws512,
                                           q6_K_gemm_ws512};
    static const enum gg_type types[5] = {GG_TYPE_Q2_K, GG_TYPE_Q3_K, GG_TYPE_Q4_K, GG_TYPE_Q5_K, GG_TYPE_Q6_K};
    int slot = -1;
    for (int i = 0; i < 5; i++)
        if (types[i] == type)
            slot = i;
    if (slot < 0 || !ops->gemm)
        return;
    bool off = false;
    const kp_build_fn build = kern_avx2_kp_builder(type, &off);
    if (!build)
        return;
    g_k2[slot].build = build;
    g_k2[slot].off = off;
    static const size_t bszs[5] = {sizeof(block_q2_K), sizeof(block_q3_K), sizeof(block_q4_K), sizeof(block_q5_K),
                                   sizeof(block_q6_K)};
    g_k2[slot].bsz = bszs[slot];
    g_k2[slot].rows = ops->gemm;
    ops->gemm_ws = fns[slot];
    ops->ws_exact = true; /* the AVX2 panel's bits, which are vec_dot's */
    ops->ws_min_batch = K2_MIN_BATCH;
    ops->isa = KERN_ISA_AVX512;
}
