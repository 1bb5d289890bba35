/* tile_s8.h - the register tile of the batched gemm for 32-blocks of signed
 * int8 weights (Q8_0, IQ4_NL levels) against Q8_0 activations, in vec_dot's
 * float order (include only from AVX2 files, after avx2_util.h).
 *
 * One call computes S8T_R weight rows x S8T_C activation rows (or fewer, nr x
 * nc constant after inlining) over the blocks first, first + step, ... (n of
 * them): every output keeps its own 8-lane accumulator with one FMA per block,
 * fl(d_w * d_y) x the exact int32 lanes (elements 4j..4j+3 in lane j), as the
 * 1-row kernels and llama.cpp's vec_dot / tinyBLAS Q0 tiles, so the sums are
 * bit-identical to vec_dot. What the tile saves against 1 x 4 row kernels:
 * - the weight block's |q| is formed once for all nc activation rows, the
 *   activation block loaded once for all nr weight rows (3 x 3 outputs keep
 *   9 accumulators + 3 |q| + 3 temporaries in the 16 ymm registers);
 * - the F16 scales of 8 blocks are converted with one vcvtph2ps per row, the
 *   nr x nc scale products of 8 blocks formed with one vmulps each (the same
 *   single-rounded products as the scalar fl(d_w * d_y)) and stored, so each
 *   block's FMA takes its factor with a broadcast load instead of a scalar
 *   convert + multiply + broadcast per output. */
#ifndef SPOKE_KERN_TILE_S8_H
#define SPOKE_KERN_TILE_S8_H

#define S8T_R 3
#define S8T_C 3

/* The F16 scales (first field of the block) of up to 8 blocks p, p + step,
 * ... as floats (lanes >= n repeat the last valid block: read, never used).
 * Built with inserts in registers: 8 narrow stores and a wide load would
 * stall on store forwarding. */
KERN_AI __m256 s8t_scales8(const char *p, size_t step, int n)
{
    uint16_t h[8];
    KERN_UNROLL for (int i = 0; i < 8; i++) memcpy(&h[i], p + (size_t)(i < n ? i : n - 1) * step, sizeof h[i]);
    return _mm256_cvtph_ps(_mm_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3], (short)h[4],
                                          (short)h[5], (short)h[6], (short)h[7]));
}

/* dst[i] = the scale of block i * step (i < n) of the blocks at p (bsz bytes
 * each), 8 at a time; writes up to 7 floats past dst[n - 1]. */
static inline void s8t_conv(const char *p, size_t bsz, int64_t step, int64_t n, float *dst)
{
    for (int64_t i = 0; i < n; i += 8)
        _mm256_storeu_ps(dst + i, s8t_scales8(p + (size_t)(i * step) * bsz, (size_t)step * bsz,
                                              n - i < 8 ? (int)(n - i) : 8));
}

/* The scales of a row of nb blocks in the order the tile walks them: in
 * order (pairs false), or (pairs true, IQ4_NL) the even blocks of the pairs,
 * the odd ones, then an odd last block. dst holds nb + 8 floats. */
static inline void s8t_row_scales(const void *row, size_t bsz, int64_t nb, bool pairs, float *dst)
{
    const char *p = row;
    if (!pairs) {
        s8t_conv(p, bsz, 1, nb, dst);
        return;
    }
    const int64_t np = nb / 2;
    if (np > 0) {
        s8t_conv(p, bsz, 2, np, dst);
        s8t_conv(p + bsz, bsz, 2, np, dst + np);
    }
    if (nb & 1)
        dst[nb - 1] = avx2_h2f(*(const kern_half *)(const void *)(p + (size_t)(nb - 1) * bsz));
}

/* S8T_CORE(NAME, BT, LOADQ): NAME_s8t(nr, nc, n, step, w, x, dw, dy, acc):
 * acc[r][c] (8 lanes each) over the n blocks 0, step, 2 step, ... of w[r]
 * (type BT, LOADQ(const BT *) -> the 32 int8 weights) and x[c] (Q8_0), whose
 * scales as floats are dw[r][i] and dy[c][i] for the i-th of these blocks. */
#define S8T_CORE(NAME, BT, LOADQ)                                                                                 \
    KERN_AI void NAME##_s8t(int nr, int nc, int64_t n, int64_t step, const BT *const *w,                           \
                            const block_q8_0 *const *x, const float *const *dw, const float *const *dy,            \
                            __m256 acc[S8T_R][S8T_C])                                                              \
    {                                                                                                              \
        const __m256i ones = _mm256_set1_epi16(1);                                                                 \
        KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) acc[r][c] =              \
            _mm256_setzero_ps();                                                                                   \
        for (int64_t i0 = 0; i0 < n; i0 += 8) {                                                                    \
            const int n8 = n - i0 < 8 ? (int)(n - i0) : 8;                                                         \
            _Alignas(32) float sc[S8T_R * S8T_C][8];                                                               \
            if (n8 == 8) {                                                                                         \
                KERN_UNROLL for (int r = 0; r < nr; r++) {                                                         \
                    const __m256 d = _mm256_loadu_ps(dw[r] + i0);                                                  \
                    KERN_UNROLL for (int c = 0; c < nc; c++)                                                       \
                        _mm256_store_ps(sc[r * S8T_C + c], _mm256_mul_ps(d, _mm256_loadu_ps(dy[c] + i0)));         \
                }                                                                                                  \
            } else {                                                                                               \
                KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) for (int i = 0;  \
                                                                                                  i < n8; i++)     \
                    sc[r * S8T_C + c][i] = dw[r][i0 + i] * dy[c][i0 + i];                                          \
            }                                                                                                      \
            for (int i = 0; i < n8; i++) {                                                                         \
                const int64_t ib = (i0 + i) * step;                                                                \
                KERN_UNROLL for (int r = 0; r < nr; r++) {                                                         \
                    const __m256i q = LOADQ(&w[r][ib]), aq = _mm256_sign_epi8(q, q);                               \
                    KERN_UNROLL for (int c = 0; c < nc; c++) {                                                     \
                        const __m256i y = _mm256_loadu_si256((const __m256i *)x[c][ib].qs);                        \
                        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(y, q)), ones); \
                        acc[r][c] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[r * S8T_C + c][i]),                    \
                                                    _mm256_cvtepi32_ps(p), acc[r][c]);                             \
                    }                                                                                              \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
    }

/* S8T_GEMM(NAME, BT, TILE, PAIRS): the batched gemm NAME_gemmt (false when
 * the scales of a row do not fit the stack buffer: the caller then uses its
 * older kernel) over the tile function TILE(nr, nc, nb, w[nr], x[nc], dw[nr],
 * dy[nc], out[r * S8T_C + c]) (KERN_AI, all blocks, finished outputs; dw/dy
 * the rows' block scales as floats, in s8t_row_scales's order for PAIRS). Activation rows go
 * in L1-sized groups (kern_gemm_tile, but at least 8 rows, so that a decode
 * batch streams each weight row from memory once; groups of even sizes) whose
 * scales are converted once; within
 * a group every S8T_R weight rows (scales converted once per group) pass over
 * its rows S8T_C at a time, the weight rows from L1 after the first pass. */
#define S8T_BUF 8192 /* floats of scales on the stack (32 KB) */
#define S8T_INST(NAME, BT, TILE, R, C)                                                                            \
    static void NAME##_t##R##C(int64_t nb, const BT *const *w, const block_q8_0 *const *x,                        \
                               const float *const *dw, const float *const *dy, float *o)                          \
    {                                                                                                              \
        TILE(R, C, nb, w, x, dw, dy, o);                                                                           \
    }
#define S8T_GEMM(NAME, BT, TILE, PAIRS)                                                                           \
    S8T_INST(NAME, BT, TILE, 1, 1)                                                                                 \
    S8T_INST(NAME, BT, TILE, 1, 2)                                                                                 \
    S8T_INST(NAME, BT, TILE, 1, 3)                                                                                 \
    S8T_INST(NAME, BT, TILE, 2, 1)                                                                                 \
    S8T_INST(NAME, BT, TILE, 2, 2)                                                                                 \
    S8T_INST(NAME, BT, TILE, 2, 3)                                                                                 \
    S8T_INST(NAME, BT, TILE, 3, 1)                                                                                 \
    S8T_INST(NAME, BT, TILE, 3, 2)                                                                                 \
    S8T_INST(NAME, BT, TILE, 3, 3)                                                                                 \
    static bool NAME##_gemmt(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,  \
                             const void *x, size_t x_stride, float *y, size_t y_stride)                            \
    {                                                                                                              \
        typedef void (*tile_fn)(int64_t, const BT *const *, const block_q8_0 *const *, const float *const *,       \
                                const float *const *, float *);                                                    \
        static const tile_fn tiles[S8T_R][S8T_C] = {{NAME##_t11, NAME##_t12, NAME##_t13},                          \
                                                    {NAME##_t21, NAME##_t22, NAME##_t23},                          \
                                                    {NAME##_t31, NAME##_t32, NAME##_t33}};                         \
        const int64_t nb = k / KERN_QK, nbp = nb + 8; /* floats per row's scales */                                \
        /* at least 8 rows per group: a batch of up to 8 reads each weight row once */                            \
        int64_t tile = kern_gemm_tile(x_stride);                                                                   \
        tile = tile < 8 ? 8 : tile;                                                                                \
        if (tile > S8T_BUF / nbp - S8T_R)                                                                          \
            tile = S8T_BUF / nbp - S8T_R;                                                                          \
        if (tile < S8T_C)                                                                                          \
            return false;                                                                                          \
        float sbuf[S8T_BUF];                                                                                       \
        float *const wsc = sbuf, *const xsc = sbuf + S8T_R * nbp;                                                   \
        const int64_t ntg = (n_batch + tile - 1) / tile; /* groups of even sizes */                                \
        for (int64_t tg = 0; tg < ntg; tg++) {                                                                     \
            const int64_t b0 = n_batch * tg / ntg, b1 = n_batch * (tg + 1) / ntg;                                  \
            for (int64_t b = b0; b < b1; b++)                                                                      \
                s8t_row_scales((const char *)x + (size_t)b * x_stride, sizeof(block_q8_0), nb, PAIRS,               \
                               xsc + (b - b0) * nbp);                                                              \
            const int64_t nrg = (r1 - r0 + S8T_R - 1) / S8T_R; /* row groups, sizes as even as possible */        \
            for (int64_t r = r0, gr = 0; gr < nrg; gr++) {                                                         \
                const int nr = (int)((r1 - r0) / nrg + (gr < (r1 - r0) % nrg));                                    \
                const BT *wp[S8T_R];                                                                               \
                const float *dw[S8T_R];                                                                            \
                for (int i = 0; i < nr; i++) {                                                                     \
                    wp[i] = (const BT *)(const void *)((const char *)w + (size_t)(r + i) * w_stride);              \
                    dw[i] = wsc + i * nbp;                                                                         \
                    s8t_row_scales(wp[i], sizeof(BT), nb, PAIRS, wsc + i * nbp);                                   \
                }                                                                                                  \
                const int64_t ncg = (b1 - b0 + S8T_C - 1) / S8T_C;                                                 \
                for (int64_t b = b0, gc = 0; gc < ncg; gc++) {                                                     \
                    const int nc = (int)((b1 - b0) / ncg + (gc < (b1 - b0) % ncg));                                \
                    const block_q8_0 *xp[S8T_C];                                                                   \
                    const float *dy[S8T_C];                                                                        \
                    float o[S8T_R * S8T_C];                                                                        \
                    for (int j = 0; j < nc; j++) {                                                                 \
                        xp[j] = (const block_q8_0 *)(const void *)((const char *)x + (size_t)(b + j) * x_stride);  \
                        dy[j] = xsc + (b + j - b0) * nbp;                                                          \
                    }                                                                                              \
                    tiles[nr - 1][nc - 1](nb, wp, xp, dw, dy, o);                                                  \
                    for (int j = 0; j < nc; j++)                                                                   \
                        for (int i = 0; i < nr; i++)                                                               \
                            y[(size_t)(b + j) * y_stride + (size_t)(r + i)] = o[i * S8T_C + j];                    \
                    b += nc;                                                                                       \
                }                                                                                                  \
                r += nr;                                                                                           \
            }                                                                                                      \
        }                                                                                                          \
        return true;                                                                                               \
    }

/* ---- the panel gemm (tile_s8.c; ops->gemm_ws of Q8_0 and IQ4_NL): the
 * same tile and float order from a workspace copy of aligned int8 blocks.
 * unpack_row(row, nb, dst) writes a weight row's nb blocks as 32 int8 each
 * in the tile's order (S8P_UNPACKER) and its scales after them; pairs selects
 * IQ4_NL's even/odd order. False when 3 weight and 3 activation rows do not
 * fit the workspace (the caller then uses ops->gemm). */
typedef void (*s8p_unpack_fn)(const char *row, int64_t nb, char *dst);
bool kern_avx2_s8p_gemm(s8p_unpack_fn unpack_row, bool pairs, int64_t k, int64_t r0, int64_t r1, int64_t n_batch,
                        const void *w, size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride,
                        void *ws);

/* S8P_UNPACKER(NAME, BT, LEVELS, PAIRS): NAME_s8p_row, the unpack_row of
 * blocks BT whose 32 int8 are LEVELS(const BT *) (inlined: one call per row). */
#define S8P_UNPACKER(NAME, BT, LEVELS, PAIRS)                                                                     \
    static void NAME##_s8p_row(const char *row, int64_t nb, char *dst)                                            \
    {                                                                                                              \
        const BT *b = (const BT *)(const void *)row;                                                               \
        __m256i *q = (__m256i *)(void *)dst;                                                                       \
        if (!(PAIRS)) {                                                                                            \
            for (int64_t i = 0; i < nb; i++)                                                                       \
                _mm256_store_si256(q + i, LEVELS(&b[i]));                                                          \
        } else {                                                                                                   \
            const int64_t np = nb / 2;                                                                             \
            for (int64_t i = 0; i < np; i++) {                                                                     \
                _mm256_store_si256(q + i, LEVELS(&b[2 * i]));                                                      \
                _mm256_store_si256(q + np + i, LEVELS(&b[2 * i + 1]));                                             \
            }                                                                                                      \
            if (nb & 1)                                                                                            \
                _mm256_store_si256(q + nb - 1, LEVELS(&b[nb - 1]));                                                \
        }                                                                                                          \
        s8t_row_scales(row, sizeof(BT), nb, PAIRS, (float *)(void *)(dst + 32 * nb));                              \
    }

#endif
