/* q_simple.c - AVX2 dot products of the 32-element block types (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0) against Q8_0/Q8_1 activations, and the fast Q8_0/Q8_1
 * activation quantizers. Each weight block is unpacked to 32 int8 once and
 * multiplied (maddubs) with up to 4 activation rows; per-block integer sums
 * are scaled in float with one FMA per block and row. */
#include <math.h>

#include "kernels/x86/avx2/avx2_util.h"
#include "kernels/x86/avx2/tile_s8.h"

#define NRMAX 4

/* Signed int8 weights of one block against Q8_0 activations: |q| maddubs
 * sign(y, q), one FMA per block and row. */
#define SIGNED_KERN(NAME, BT, LOADQ)                                                               \
    KERN_AI void NAME##_kern(int nr, int64_t nb, const void *vw, const void *const *vx, float *out) \
    {                                                                                              \
        const BT *w = vw;                                                                          \
        const block_q8_0 *x[NRMAX];                                                                \
        __m256 acc[NRMAX];                                                                         \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                                 \
            x[i] = vx[i];                                                                          \
            acc[i] = _mm256_setzero_ps();                                                          \
        }                                                                                          \
        for (int64_t ib = 0; ib < nb; ib++) {                                                      \
            const __m256i q = LOADQ(&w[ib]);                                                       \
            const __m256i aq = _mm256_sign_epi8(q, q);                                             \
            const float dw = avx2_h2f(w[ib].d);                                                    \
            KERN_UNROLL for (int i = 0; i < nr; i++) {                                             \
                const __m256i y = _mm256_loadu_si256((const __m256i *)x[i][ib].qs);                \
                const __m256i p = avx2_dot_us8(aq, _mm256_sign_epi8(y, q));                        \
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * avx2_h2f(x[i][ib].d)),                \
                                         _mm256_cvtepi32_ps(p), acc[i]);                           \
            }                                                                                      \
        }                                                                                          \
        KERN_UNROLL for (int i = 0; i < nr; i++)                                                   \
            out[i] = avx2_hsum_ps(acc[i]);                                                         \
    }                                                                                              \
    KERN_AVX2_DRIVER(NAME, NAME##_kern, KERN_QK)

/* Two weight rows x nr activation rows per pass (the gemm for batches): each
 * activation block is loaded once for both rows, each weight block unpacked
 * once for all nr rows, and both activation and weight scales converted once.
 * Every output keeps its own 8-lane accumulator with one FMA per block and the
 * same hsum: bit-identical to NAME_kern (and to llama.cpp's tinyBLAS tiles). */
#define SIGNED_KERN2(NAME, BT, LOADQ)                                                              \
    KERN_AI void NAME##_kern2(int nr, int64_t nb, const void *vw0, const void *vw1,                \
                              const void *const *vx, float *o0, float *o1)                         \
    {                                                                                              \
        const BT *w0 = vw0, *w1 = vw1;                                                             \
        const block_q8_0 *x[NRMAX];                                                                \
        __m256 acc0[NRMAX], acc1[NRMAX];                                                           \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                                 \
            x[i] = vx[i];                                                                          \
            acc0[i] = _mm256_setzero_ps();                                                         \
            acc1[i] = _mm256_setzero_ps();                                                         \
        }                                                                                          \
        for (int64_t ib = 0; ib < nb; ib++) {                                                      \
            const __m256i q0 = LOADQ(&w0[ib]), q1 = LOADQ(&w1[ib]);                                \
            const __m256i aq0 = _mm256_sign_epi8(q0, q0), aq1 = _mm256_sign_epi8(q1, q1);          \
            const float d0 = avx2_h2f(w0[ib].d), d1 = avx2_h2f(w1[ib].d);                          \
            KERN_UNROLL for (int i = 0; i < nr; i++) {                                             \
                const __m256i y = _mm256_loadu_si256((const __m256i *)x[i][ib].qs);                \
                const float dy = avx2_h2f(x[i][ib].d);                                             \
                const __m256i p0 = avx2_dot_us8(aq0, _mm256_sign_epi8(y, q0));                     \
                const __m256i p1 = avx2_dot_us8(aq1, _mm256_sign_epi8(y, q1));                     \
                acc0[i] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * dy), _mm256_cvtepi32_ps(p0), acc0[i]); \
                acc1[i] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * dy), _mm256_cvtepi32_ps(p1), acc1[i]); \
            }                                                                                      \
        }                                                                                          \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                                 \
            o0[i] = avx2_hsum_ps(acc0[i]);                                                         \
            o1[i] = avx2_hsum_ps(acc1[i]);                                                         \
        }                                                                                          \
    }                                                                                              \
    KERN_DRIVER2(NAME, NAME##_kern2, KERN_QK)

/* Unsigned weights (d * q + m) against Q8_1 activations: plus m * s per block. */
#define UNSIGNED_KERN(NAME, BT, LOADQ)                                                             \
    KERN_AI void NAME##_kern(int nr, int64_t nb, const void *vw, const void *const *vx, float *out) \
    {                                                                                              \
        const BT *w = vw;                                                                          \
        const block_q8_1 *x[NRMAX];                                                                \
        __m256 acc[NRMAX];                                                                         \
        float summs[NRMAX];                                                                        \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                                 \
            x[i] = vx[i];                                                                          \
            acc[i] = _mm256_setzero_ps();                                                          \
            summs[i] = 0;                                                                          \
        }                                                                                          \
        for (int64_t ib = 0; ib < nb; ib++) {                                                      \
            const __m256i q = LOADQ(&w[ib]);                                                       \
            const float dw = avx2_h2f(w[ib].d), mw = avx2_h2f(w[ib].m);                            \
            KERN_UNROLL for (int i = 0; i < nr; i++) {                                             \
                const __m256i y = _mm256_loadu_si256((const __m256i *)x[i][ib].qs);                \
                const __m256i p = avx2_dot_us8(q, y);                                              \
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * avx2_h2f(x[i][ib].d)),                \
                                         _mm256_cvtepi32_ps(p), acc[i]);                           \
                summs[i] += mw * avx2_h2f(x[i][ib].s);                                             \
            }                                                                                      \
        }                                                                                          \
        KERN_UNROLL for (int i = 0; i < nr; i++)                                                   \
            out[i] = avx2_hsum_ps(acc[i]) + summs[i];                                              \
    }                                                                                              \
    KERN_AVX2_DRIVER(NAME, NAME##_kern, KERN_QK)

/* the 32 weights of one block as int8 */
KERN_AI __m256i q4_0_q(const block_q4_0 *b) { return _mm256_sub_epi8(avx2_nibbles(b->qs), _mm256_set1_epi8(8)); }
KERN_AI __m256i q8_0_q(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }
/* Q5_0: value-16 = nibble | (bit ? 0 : 0xF0) as int8 */
KERN_AI __m256i q5_0_q(const block_q5_0 *b)
{
    return _mm256_or_si256(avx2_nibbles(b->qs),
                           _mm256_andnot_si256(avx2_bits_to_bytes(b->qh), _mm256_set1_epi8((char)0xF0)));
}
KERN_AI __m256i q4_1_q(const block_q4_1 *b) { return avx2_nibbles(b->qs); }
KERN_AI __m256i q5_1_q(const block_q5_1 *b)
{
    return _mm256_or_si256(avx2_nibbles(b->qs), _mm256_and_si256(avx2_bits_to_bytes(b->qh), _mm256_set1_epi8(0x10)));
}

SIGNED_KERN(q4_0, block_q4_0, q4_0_q)
SIGNED_KERN(q8_0, block_q8_0, q8_0_q)
SIGNED_KERN(q5_0, block_q5_0, q5_0_q)
SIGNED_KERN2(q4_0, block_q4_0, q4_0_q)
SIGNED_KERN2(q8_0, block_q8_0, q8_0_q)
SIGNED_KERN2(q5_0, block_q5_0, q5_0_q)
UNSIGNED_KERN(q4_1, block_q4_1, q4_1_q)
UNSIGNED_KERN(q5_1, block_q5_1, q5_1_q)

/* ---- decode (n_batch 1, ops->gemm): DEC_ROWS weight rows against the one
 * activation row per pass. Each row keeps the 1-row kernel's arithmetic: the
 * same exact int32 lanes (elements 4j..4j+3 in lane j), the same fl(dw * dy)
 * scale, one FMA per block into its own 8-lane accumulator, the same hsum, so
 * the results are bit-identical to vec_dot. What changes: the rows' FMA chains
 * run side by side (one row alone waits on the FMA latency every block), the
 * activation block and its scale are loaded once for all rows, and Q4_0/Q5_0
 * multiply their unsigned quants u = q + OFF directly (maddubs u8 x s8, no
 * sign trick) and subtract OFF x the activation's pair sums in int16 (exact:
 * the difference is the int16 pair sum of q * y), computed once per block.
 * DEC_PREFETCH: rows are contiguous, and one row alone streams through memory
 * as one long run that the hardware prefetcher follows; 4 rows read side by
 * side are 4 short runs (a row of k = 2048 is 18 cache lines) that it never
 * picks up, so each pass prefetches the next 4 rows in step with its own
 * progress (prefetches past the matrix's end are harmless). */
#define DEC_ROWS 4

/* 16 bytes of nibbles as bytes 0..15 (low) and 16..31 (high), one broadcast load */
KERN_AI __m256i nib_u(const uint8_t *qs)
{
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi64(t, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
}
KERN_AI __m256i q4_0_u(const block_q4_0 *b) { return nib_u(b->qs); }
/* Q5_0: nibble | 0x10 where the fifth bit is set (q + 16) */
KERN_AI __m256i q5_0_u(const block_q5_0 *b)
{
    return _mm256_or_si256(nib_u(b->qs),
                           _mm256_and_si256(avx2_bits_to_bytes(b->qh), _mm256_set1_epi8(0x10)));
}
KERN_AI __m256i q8_0_u(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }

#define DEC_KERN(NAME, BT, UNPACK, OFF)                                                                         \
    KERN_AI void NAME##_dec_kern(int nw, int64_t nb, const char *w, size_t w_stride, const block_q8_0 *x,       \
                                 float *out)                                                                    \
    {                                                                                                           \
        const BT *wr[DEC_ROWS];                                                                                 \
        __m256 acc[DEC_ROWS];                                                                                   \
        KERN_UNROLL for (int r = 0; r < nw; r++) {                                                              \
            wr[r] = (const BT *)(const void *)(w + (size_t)r * w_stride);                                       \
            acc[r] = _mm256_setzero_ps();                                                                       \
        }                                                                                                       \
        const __m256i ones = _mm256_set1_epi16(1);                                                              \
        /* the next nw rows, nw blocks' bytes per block step (DEC_PREFETCH) */                                   \
        const char *pf = w + (size_t)nw * w_stride;                                                             \
        for (int64_t ib = 0; ib < nb; ib++) {                                                                   \
            KERN_UNROLL for (size_t o = 0; o < (size_t)nw * sizeof(BT); o += 64)                                \
                _mm_prefetch(pf + (size_t)ib * (size_t)nw * sizeof(BT) + o, _MM_HINT_T0);                       \
            const __m256i y = _mm256_loadu_si256((const __m256i *)x[ib].qs);                                    \
            const __m256 dy = _mm256_set1_ps(avx2_h2f(x[ib].d));                                                \
            const __m256i ys = _mm256_maddubs_epi16(_mm256_set1_epi8(OFF), y);                                  \
            KERN_UNROLL for (int r = 0; r < nw; r++) {                                                          \
                const __m256i u = UNPACK(&wr[r][ib]);                                                           \
                const __m256i p16 = (OFF) ? _mm256_sub_epi16(_mm256_maddubs_epi16(u, y), ys)                    \
                                          : _mm256_maddubs_epi16(_mm256_sign_epi8(u, u), _mm256_sign_epi8(y, u)); \
                const __m256i p = _mm256_madd_epi16(p16, ones);                                                 \
                /* fl(dw * dy) in every lane: the half broadcast, then converted (no scalar round trip) */     \
                const __m256 dw = _mm256_cvtph_ps(_mm_set1_epi16((short)wr[r][ib].d));                          \
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dy), _mm256_cvtepi32_ps(p), acc[r]);                 \
            }                                                                                                   \
        }                                                                                                       \
        KERN_UNROLL for (int r = 0; r < nw; r++) out[r] = avx2_hsum_ps(acc[r]);                                \
    }                                                                                                           \
    static void NAME##_dec4(int64_t nb, const char *w, size_t ws, const block_q8_0 *x, float *o)               \
    {                                                                                                           \
        NAME##_dec_kern(4, nb, w, ws, x, o);                                                                    \
    }                                                                                                           \
    static void NAME##_dec2(int64_t nb, const char *w, size_t ws, const block_q8_0 *x, float *o)               \
    {                                                                                                           \
        NAME##_dec_kern(2, nb, w, ws, x, o);                                                                    \
    }                                                                                                           \
    static void NAME##_dec1(int64_t nb, const char *w, size_t ws, const block_q8_0 *x, float *o)               \
    {                                                                                                           \
        NAME##_dec_kern(1, nb, w, ws, x, o);                                                                    \
    }                                                                                                           \
    /* ops->gemm: decode rows in groups of DEC_ROWS, batches through NAME_gemm2 */                              \
    static void NAME##_gemmd(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride, \
                             const void *x, size_t x_stride, float *y, size_t y_stride)                         \
    {                                                                                                           \
        if (n_batch != 1) {                                                                                     \
            NAME##_gemm2(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);                            \
            return;                                                                                             \
        }                                                                                                       \
        const int64_t nb = k / KERN_QK;                                                                         \
        int64_t r = r0;                                                                                         \
        for (; r + 4 <= r1; r += 4)                                                                             \
            NAME##_dec4(nb, (const char *)w + (size_t)r * w_stride, w_stride, x, y + r);                        \
        for (; r + 2 <= r1; r += 2)                                                                             \
            NAME##_dec2(nb, (const char *)w + (size_t)r * w_stride, w_stride, x, y + r);                        \
        if (r < r1)                                                                                             \
            NAME##_dec1(nb, (const char *)w + (size_t)r * w_stride, w_stride, x, y + r);                        \
    }

DEC_KERN(q4_0, block_q4_0, q4_0_u, 8)
DEC_KERN(q5_0, block_q5_0, q5_0_u, 16)
DEC_KERN(q8_0, block_q8_0, q8_0_u, 0)

/* ---- Q8_0 batches (n_batch >= 3): tile_s8.h's 3 x 3 register tile, in
 * vec_dot's float order (bit-identical); n_batch 1 takes the decode rows,
 * 2 the 2 x 2 kernel (SIGNED_KERN2; the tile measured no faster there). */
S8T_CORE(q8_0, block_q8_0, q8_0_q)
KERN_AI void q8_0_s8tile(int nr, int nc, int64_t nb, const block_q8_0 *const *w, const block_q8_0 *const *x,
                         const float *const *dw, const float *const *dy, float *o)
{
    __m256 acc[S8T_R][S8T_C];
    q8_0_s8t(nr, nc, nb, 1, w, x, dw, dy, acc);
    KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) o[r * S8T_C + c] =
        avx2_hsum_ps(acc[r][c]);
}
S8T_GEMM(q8_0, block_q8_0, q8_0_s8tile, false)

static void q8_0_gemmq(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride);
S8P_UNPACKER(q8_0, block_q8_0, q8_0_q, false)
/* ops->gemm_ws: the same tile from aligned copies (tile_s8.c) */
static void q8_0_gemm_ws(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    if (!kern_avx2_s8p_gemm(q8_0_s8p_row, false, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws))
        q8_0_gemmq(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
}

static void q8_0_gemmq(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride)
{
    if (n_batch == 1)
        q8_0_gemmd(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
    else if (n_batch == 2 || !q8_0_gemmt(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride))
        q8_0_gemm2(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride); /* 2 rows: as fast (measured) */
}

/* ---- panel gemm for Q4_0 and Q5_0 (prefill): groups of 8 weight rows are
 * unpacked once per call into unsigned quants u = q + OFF (OFF 8 or 16) and
 * interleaved in 4-byte units: vector g of a block holds elements 4g..4g+3 of
 * each of the 8 rows. Against a broadcast of 4 activation bytes, maddubs
 * gives every row's pair sums, added in int16 (GRP vectors at a time, no
 * overflow: 8 x 15 x 128 x 2 < 2^15, 4 x 31 x 128 x 2 < 2^15) and widened once,
 * so one vector holds the whole block dot of 8 rows; minus OFF * sum(y), one
 * FMA with the 8 rows' scales x the activation's scale. The float order
 * differs from vec_dot's (one accumulator per output over blocks instead of 8
 * lanes; docs/PARITY.md). */
#define Q0P_ROWS 8
#define Q0P_MAX_ROWS 64
#define Q0P_YS_BYTES ((size_t)16 << 10) /* end of the workspace: OFF * sum(y) per block */

struct q0p_blk {
    uint8_t v[8][32]; /* vector g: rows 0..7, 4 bytes each */
    float d[8];       /* the rows' scales */
};

typedef void (*q0p_unpack_fn)(const void *blk, uint8_t u[32], float *d);

KERN_AI void q0p_build(q0p_unpack_fn unpack, size_t bsz, const char *const *rows, int64_t nb, struct q0p_blk *p)
{
    for (int64_t ib = 0; ib < nb; ib++) {
        uint8_t u[Q0P_ROWS][32];
        for (int r = 0; r < Q0P_ROWS; r++)
            unpack(rows[r] + (size_t)ib * bsz, u[r], &p[ib].d[r]);
        for (int g = 0; g < 8; g++)
            for (int r = 0; r < Q0P_ROWS; r++)
                memcpy(&p[ib].v[g][4 * r], &u[r][4 * g], 4);
    }
}

static void q4_0_unpack(const void *vb, uint8_t u[32], float *d)
{
    const block_q4_0 *b = vb;
    _mm256_storeu_si256((__m256i *)u, avx2_nibbles(b->qs));
    *d = avx2_h2f(b->d);
}

static void q5_0_unpack(const void *vb, uint8_t u[32], float *d)
{
    const block_q5_0 *b = vb;
    _mm256_storeu_si256((__m256i *)u, _mm256_add_epi8(q5_0_q(b), _mm256_set1_epi8(16)));
    *d = avx2_h2f(b->d);
}

/* 8 panel rows x nr (1..4) activation rows; ys[j][ib] = OFF * sum of block ib
 * of activation row j. out[j] = the 8 rows' results for activation row j. */
KERN_AI void q0p_tile(int nr, int grp, int64_t nb, const struct q0p_blk *p, const block_q8_0 *const *x,
                      const int32_t *const *ys, __m256 *out)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[NRMAX];
    KERN_UNROLL for (int j = 0; j < nr; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256i s32[NRMAX];
        KERN_UNROLL for (int j = 0; j < nr; j++) s32[j] = _mm256_setzero_si256();
        for (int g0 = 0; g0 < 8; g0 += grp) {
            __m256i s16[NRMAX];
            KERN_UNROLL for (int j = 0; j < nr; j++) s16[j] = _mm256_setzero_si256();
            KERN_UNROLL for (int g = g0; g < g0 + grp; g++) {
                const __m256i v = _mm256_load_si256((const __m256i *)p[ib].v[g]);
                KERN_UNROLL for (int j = 0; j < nr; j++) {
                    int32_t y4;
                    memcpy(&y4, x[j][ib].qs + 4 * g, 4);
                    s16[j] = _mm256_add_epi16(s16[j], _mm256_maddubs_epi16(v, _mm256_set1_epi32(y4)));
                }
            }
            KERN_UNROLL for (int j = 0; j < nr; j++) s32[j] = _mm256_add_epi32(s32[j], _mm256_madd_epi16(s16[j], ones));
        }
        const __m256 dw = _mm256_load_ps(p[ib].d);
        KERN_UNROLL for (int j = 0; j < nr; j++) {
            const __m256i si = _mm256_sub_epi32(s32[j], _mm256_set1_epi32(ys[j][ib]));
            acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(avx2_h2f(x[j][ib].d))), _mm256_cvtepi32_ps(si),
                                     acc[j]);
        }
    }
    KERN_UNROLL for (int j = 0; j < nr; j++) out[j] = acc[j];
}

#define Q0P_TILES(NAME, GRP)                                                                                     \
    static void NAME##_p1(int64_t nb, const struct q0p_blk *p, const block_q8_0 *const *x, const int32_t *const *ys, \
                          __m256 *o)                                                                             \
    {                                                                                                            \
        q0p_tile(1, GRP, nb, p, x, ys, o);                                                                       \
    }                                                                                                            \
    static void NAME##_p2(int64_t nb, const struct q0p_blk *p, const block_q8_0 *const *x, const int32_t *const *ys, \
                          __m256 *o)                                                                             \
    {                                                                                                            \
        q0p_tile(2, GRP, nb, p, x, ys, o);                                                                       \
    }                                                                                                            \
    static void NAME##_p3(int64_t nb, const struct q0p_blk *p, const block_q8_0 *const *x, const int32_t *const *ys, \
                          __m256 *o)                                                                             \
    {                                                                                                            \
        q0p_tile(3, GRP, nb, p, x, ys, o);                                                                       \
    }                                                                                                            \
    static void NAME##_p4(int64_t nb, const struct q0p_blk *p, const block_q8_0 *const *x, const int32_t *const *ys, \
                          __m256 *o)                                                                             \
    {                                                                                                            \
        q0p_tile(4, GRP, nb, p, x, ys, o);                                                                       \
    }

typedef void (*q0p_tile_fn)(int64_t nb, const struct q0p_blk *p, const block_q8_0 *const *x,
                            const int32_t *const *ys, __m256 *o);

static bool q0p_gemm(q0p_unpack_fn unpack, size_t bsz, int off, const q0p_tile_fn tiles[4], int64_t k, int64_t r0,
                     int64_t r1, int64_t n_batch, const void *w, size_t w_stride, const void *x, size_t x_stride,
                     float *y, size_t y_stride, void *ws)
{
    const int64_t nb = k / KERN_QK;
    const size_t grp_bytes = (size_t)nb * sizeof(struct q0p_blk);
    if ((size_t)nb * NRMAX * sizeof(int32_t) > Q0P_YS_BYTES)
        return false;
    int64_t ngrp = (int64_t)((KERN_GEMM_WS_BYTES - Q0P_YS_BYTES) / grp_bytes);
    if (ngrp > Q0P_MAX_ROWS / Q0P_ROWS)
        ngrp = Q0P_MAX_ROWS / Q0P_ROWS;
    if (ngrp < 1)
        return false;
    struct q0p_blk *panel = ws;
    int32_t *ysum = (int32_t *)((char *)ws + KERN_GEMM_WS_BYTES - Q0P_YS_BYTES);
    for (int64_t p0 = r0; p0 < r1; p0 += ngrp * Q0P_ROWS) {
        const int64_t np = SP_MIN(ngrp * Q0P_ROWS, r1 - p0), ng = (np + Q0P_ROWS - 1) / Q0P_ROWS;
        for (int64_t gi = 0; gi < ng; gi++) {
            const char *rows[Q0P_ROWS];
            for (int r = 0; r < Q0P_ROWS; r++) /* a short last group repeats its last row */
                rows[r] = (const char *)w + (size_t)(p0 + SP_MIN(gi * Q0P_ROWS + r, np - 1)) * w_stride;
            q0p_build(unpack, bsz, rows, nb, panel + gi * nb);
        }
        for (int64_t b = 0; b < n_batch; b += NRMAX) {
            const int64_t nr = SP_MIN(NRMAX, n_batch - b);
            const block_q8_0 *xp[NRMAX];
            const int32_t *ysp[NRMAX];
            for (int64_t j = 0; j < nr; j++) {
                xp[j] = (const block_q8_0 *)((const char *)x + (size_t)(b + j) * x_stride);
                int32_t *yj = ysum + j * nb;
                ysp[j] = yj;
                for (int64_t ib = 0; ib < nb; ib++)
                    yj[ib] = off * avx2_sum_i8x32(xp[j][ib].qs);
            }
            for (int64_t gi = 0; gi < ng; gi++) {
                __m256 o[NRMAX];
                tiles[nr - 1](nb, panel + gi * nb, xp, ysp, o);
                const int64_t rr = p0 + gi * Q0P_ROWS, nv = SP_MIN(Q0P_ROWS, np - gi * Q0P_ROWS);
                for (int64_t j = 0; j < nr; j++)
                    avx2_store_n(y + (size_t)(b + j) * y_stride + (size_t)rr, o[j], nv);
            }
        }
    }
    return true;
}

#define Q0P_GEMM(NAME, BT, GRP, OFF)                                                                              \
    Q0P_TILES(NAME, GRP)                                                                                          \
    static void NAME##_gemm_ws(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,                \
                               size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride,        \
                               void *ws)                                                                          \
    {                                                                                                             \
        static const q0p_tile_fn tiles[4] = {NAME##_p1, NAME##_p2, NAME##_p3, NAME##_p4};                         \
        if (!q0p_gemm(NAME##_unpack, sizeof(BT), OFF, tiles, k, r0, r1, n_batch, w, w_stride, x, x_stride, y,     \
                      y_stride, ws))                                                                              \
            NAME##_gemm2(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);                              \
    }
Q0P_GEMM(q4_0, block_q4_0, 8, 8)
Q0P_GEMM(q5_0, block_q5_0, 4, 16)

/* ---- activation quantizers (ggml's AVX2 formulas: round half to even) */
KERN_AI __m256i q8_block(const float *x, float *d_out)
{
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_andnot_ps(sign, v0);
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v1));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v2));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v3));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    *d_out = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    const __m256 mul = _mm256_set1_ps(id);
    v0 = _mm256_round_ps(_mm256_mul_ps(v0, mul), _MM_ROUND_NEAREST);
    v1 = _mm256_round_ps(_mm256_mul_ps(v1, mul), _MM_ROUND_NEAREST);
    v2 = _mm256_round_ps(_mm256_mul_ps(v2, mul), _MM_ROUND_NEAREST);
    v3 = _mm256_round_ps(_mm256_mul_ps(v3, mul), _MM_ROUND_NEAREST);
    __m256i i0 = _mm256_cvtps_epi32(v0), i1 = _mm256_cvtps_epi32(v1);
    __m256i i2 = _mm256_cvtps_epi32(v2), i3 = _mm256_cvtps_epi32(v3);
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    /* undo the lane interleave of the packs */
    return _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void quantize_q8_0(const float *x, void *vy, int64_t n)
{
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / KERN_QK; i++) {
        float d;
        const __m256i q = q8_block(x + i * KERN_QK, &d);
        y[i].d = (kern_half)_cvtss_sh(d, 0);
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
    }
}

static void quantize_q8_1(const float *x, void *vy, int64_t n)
{
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / KERN_QK; i++) {
        float d;
        const __m256i q = q8_block(x + i * KERN_QK, &d);
        y[i].d = (kern_half)_cvtss_sh(d, 0);
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
        const int sum = avx2_hsum_epi32(avx2_dot_ss8(_mm256_set1_epi8(1), q));
        y[i].s = (kern_half)_cvtss_sh(d * (float)sum, 0);
    }
}

void kern_avx2_fill_simple(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_simple(struct kern_type_ops *ops, enum gg_type type)
{
    switch (type) {
    case GG_TYPE_Q4_0:
        ops->vec_dot = q4_0_vec_dot;
        ops->gemm = q4_0_gemmd;
        ops->gemm_ws = q4_0_gemm_ws;
        break;
    case GG_TYPE_Q4_1:
        ops->vec_dot = q4_1_vec_dot;
        ops->gemm = q4_1_gemm;
        break;
    case GG_TYPE_Q5_0:
        ops->vec_dot = q5_0_vec_dot;
        ops->gemm = q5_0_gemmd;
        ops->gemm_ws = q5_0_gemm_ws;
        break;
    case GG_TYPE_Q5_1:
        ops->vec_dot = q5_1_vec_dot;
        ops->gemm = q5_1_gemm;
        break;
    case GG_TYPE_Q8_0:
        ops->vec_dot = q8_0_vec_dot;
        ops->gemm = q8_0_gemmq;
        ops->gemm_ws = q8_0_gemm_ws;
        ops->ws_exact = true; /* vec_dot's bits: decode rows may take it */
        ops->quantize_act = quantize_q8_0;
        break;
    case GG_TYPE_Q8_1:
        ops->quantize_act = quantize_q8_1;
        break;
    default:
        return;
    }
    ops->isa = KERN_ISA_AVX2;
}
