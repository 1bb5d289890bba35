/* tile_s8.c - the panel gemm (ops->gemm_ws) of Q8_0 and IQ4_NL on AVX2:
 * tile_s8.h's register tile and float order (bit-identical to vec_dot), run
 * from a workspace copy of the weight rows and activation rows as aligned
 * 32-byte int8 blocks in the order the tile walks, with float scales.
 * Compiled with -mavx2 -mfma -mf16c. */
#include "kernels/x86/avx2/avx2_util.h"
#include "kernels/x86/avx2/tile_s8.h"

/* ---- the panel gemm (ops->gemm_ws, batches of >= KERN_GEMM_WS_MIN_BATCH):
 * the same tile and float order, from a workspace copy where every block is
 * 32 aligned int8 (IQ4_NL: its levels, unpacked once per panel instead of
 * once per tile), stored in the order the tile walks (s8t_row_scales's), with
 * the scales as floats beside them. Weight rows: a panel of up to S8P_ROWS;
 * activation rows: an L1-sized group, copied once per panel. The tile then
 * runs from aligned loads only (the blocks of the files are 34 and 18 bytes,
 * so about half of their 32-byte loads straddle a cache line). */
#define S8P_ROWS 48

/* One unpacked row: nb blocks of 32 int8, then nb + 8 scales (32-byte multiple). */
static inline size_t s8p_row_bytes(int64_t nb) { return (size_t)nb * 32 + (size_t)((nb + 8 + 7) & ~7) * 4; }

static __m256i s8p_q8_0(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }
S8P_UNPACKER(act, block_q8_0, s8p_q8_0, false)
S8P_UNPACKER(actp, block_q8_0, s8p_q8_0, true)

KERN_AI void s8p_core(int nr, int nc, int64_t n, const int8_t *const *w, const int8_t *const *x,
                      const float *const *dw, const float *const *dy, __m256 acc[S8T_R][S8T_C])
{
    const __m256i ones = _mm256_set1_epi16(1);
    KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t i0 = 0; i0 < n; i0 += 8) {
        const int n8 = n - i0 < 8 ? (int)(n - i0) : 8;
        _Alignas(32) float sc[S8T_R * S8T_C][8];
        KERN_UNROLL for (int r = 0; r < nr; r++) {
            const __m256 d = _mm256_loadu_ps(dw[r] + i0); /* lanes >= n8: the row's padding, unused */
            KERN_UNROLL for (int c = 0; c < nc; c++)
                _mm256_store_ps(sc[r * S8T_C + c], _mm256_mul_ps(d, _mm256_loadu_ps(dy[c] + i0)));
        }
        for (int i = 0; i < n8; i++) {
            const int64_t ib = i0 + i;
            KERN_UNROLL for (int r = 0; r < nr; r++) {
                const __m256i q = _mm256_load_si256((const __m256i *)(const void *)(w[r] + 32 * ib));
                const __m256i aq = _mm256_sign_epi8(q, q);
                KERN_UNROLL for (int c = 0; c < nc; c++) {
                    const __m256i y = _mm256_load_si256((const __m256i *)(const void *)(x[c] + 32 * ib));
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(y, q)), ones);
                    acc[r][c] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[r * S8T_C + c][i]), _mm256_cvtepi32_ps(p),
                                                acc[r][c]);
                }
            }
        }
    }
}

/* nr x nc finished outputs from unpacked rows: one pass (pairs false) or
 * IQ4_NL's even pass + odd pass + scalar tail. */
KERN_AI void s8p_tile(int nr, int nc, bool pairs, int64_t nb, const int8_t *const *w, const int8_t *const *x,
                      float *o)
{
    const float *dw[S8T_R], *dy[S8T_C];
    KERN_UNROLL for (int r = 0; r < nr; r++) dw[r] = (const float *)(const void *)(w[r] + 32 * nb);
    KERN_UNROLL for (int c = 0; c < nc; c++) dy[c] = (const float *)(const void *)(x[c] + 32 * nb);
    __m256 a1[S8T_R][S8T_C];
    if (!pairs) {
        s8p_core(nr, nc, nb, w, x, dw, dy, a1);
        KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) o[r * S8T_C + c] =
            avx2_hsum_ps(a1[r][c]);
        return;
    }
    const int64_t np = nb / 2;
    const int8_t *w1[S8T_R], *x1[S8T_C];
    const float *dw1[S8T_R], *dy1[S8T_C];
    KERN_UNROLL for (int r = 0; r < nr; r++) {
        w1[r] = w[r] + 32 * np;
        dw1[r] = dw[r] + np;
    }
    KERN_UNROLL for (int c = 0; c < nc; c++) {
        x1[c] = x[c] + 32 * np;
        dy1[c] = dy[c] + np;
    }
    __m256 a2[S8T_R][S8T_C];
    s8p_core(nr, nc, np, w, x, dw, dy, a1);
    s8p_core(nr, nc, np, w1, x1, dw1, dy1, a2);
    KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) o[r * S8T_C + c] =
        avx2_hsum_ps(_mm256_add_ps(a1[r][c], a2[r][c]));
    if (nb & 1) { /* odd block count: ggml's scalar tail, one fma */
        const int64_t ib = nb - 1;
        KERN_UNROLL for (int r = 0; r < nr; r++) {
            const __m256i q = _mm256_load_si256((const __m256i *)(const void *)(w[r] + 32 * ib));
            const __m256i aq = _mm256_sign_epi8(q, q);
            KERN_UNROLL for (int c = 0; c < nc; c++) {
                const __m256i y = _mm256_load_si256((const __m256i *)(const void *)(x[c] + 32 * ib));
                const int sumi = avx2_hsum_epi32(avx2_dot_us8(aq, _mm256_sign_epi8(y, q)));
                o[r * S8T_C + c] = fmaf(dy[c][ib] * dw[r][ib], (float)sumi, o[r * S8T_C + c]);
            }
        }
    }
}

typedef void (*s8p_tile_fn)(int64_t nb, const int8_t *const *w, const int8_t *const *x, float *o);
#define S8P_INST(P, R, C)                                                                                          \
    static void s8p_t##P##R##C(int64_t nb, const int8_t *const *w, const int8_t *const *x, float *o)               \
    {                                                                                                              \
        s8p_tile(R, C, P, nb, w, x, o);                                                                            \
    }
#define S8P_INST_P(P)                                                                                              \
    S8P_INST(P, 1, 1)                                                                                              \
    S8P_INST(P, 1, 2)                                                                                              \
    S8P_INST(P, 1, 3)                                                                                              \
    S8P_INST(P, 2, 1)                                                                                              \
    S8P_INST(P, 2, 2)                                                                                              \
    S8P_INST(P, 2, 3)                                                                                              \
    S8P_INST(P, 3, 1)                                                                                              \
    S8P_INST(P, 3, 2)                                                                                              \
    S8P_INST(P, 3, 3)
S8P_INST_P(0)
S8P_INST_P(1)
static const s8p_tile_fn s8p_tiles[2][S8T_R][S8T_C] = {
    {{s8p_t011, s8p_t012, s8p_t013}, {s8p_t021, s8p_t022, s8p_t023}, {s8p_t031, s8p_t032, s8p_t033}},
    {{s8p_t111, s8p_t112, s8p_t113}, {s8p_t121, s8p_t122, s8p_t123}, {s8p_t131, s8p_t132, s8p_t133}}};

bool kern_avx2_s8p_gemm(s8p_unpack_fn unpack_row, bool pairs, int64_t k, int64_t r0, int64_t r1, int64_t n_batch,
                        const void *w, size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride,
                        void *ws)
{
    const int64_t nb = k / KERN_QK;
    const size_t rb = s8p_row_bytes(nb);
    int64_t tile = (int64_t)((24u << 10) / rb) / S8T_C * S8T_C;
    tile = tile < S8T_C ? S8T_C : tile > 24 ? 24 : tile;
    int64_t prow = (size_t)tile * rb < KERN_GEMM_WS_BYTES ? (int64_t)((KERN_GEMM_WS_BYTES - (size_t)tile * rb) / rb) : 0;
    prow = prow > S8P_ROWS ? S8P_ROWS : prow;
    if (prow < S8T_R)
        return false;
    char *const xa = ws, *const wa = (char *)ws + (size_t)tile * rb;
    for (int64_t p0 = r0; p0 < r1; p0 += prow) {
        const int64_t np = r1 - p0 < prow ? r1 - p0 : prow;
        for (int64_t i = 0; i < np; i++)
            unpack_row((const char *)w + (size_t)(p0 + i) * w_stride, nb, wa + (size_t)i * rb);
        for (int64_t b0 = 0; b0 < n_batch; b0 += tile) {
            const int64_t b1 = n_batch - b0 < tile ? n_batch : b0 + tile;
            for (int64_t b = b0; b < b1; b++) {
                const char *xr = (const char *)x + (size_t)b * x_stride;
                if (pairs)
                    actp_s8p_row(xr, nb, xa + (size_t)(b - b0) * rb);
                else
                    act_s8p_row(xr, nb, xa + (size_t)(b - b0) * rb);
            }
            const int64_t nrg = (np + S8T_R - 1) / S8T_R, ncg = (b1 - b0 + S8T_C - 1) / S8T_C;
            for (int64_t r = 0, gr = 0; gr < nrg; gr++) {
                const int nr = (int)(np / nrg + (gr < np % nrg));
                const int8_t *wp[S8T_R];
                for (int i = 0; i < nr; i++)
                    wp[i] = (const int8_t *)(wa + (size_t)(r + i) * rb);
                for (int64_t b = b0, gc = 0; gc < ncg; gc++) {
                    const int nc = (int)((b1 - b0) / ncg + (gc < (b1 - b0) % ncg));
                    const int8_t *xp[S8T_C];
                    float o[S8T_R * S8T_C];
                    for (int j = 0; j < nc; j++)
                        xp[j] = (const int8_t *)(xa + (size_t)(b + j - b0) * rb);
                    s8p_tiles[pairs][nr - 1][nc - 1](nb, wp, xp, o);
                    for (int j = 0; j < nc; j++)
                        for (int i = 0; i < nr; i++)
                            y[(size_t)(b + j) * y_stride + (size_t)(p0 + r + i)] = o[i * S8T_C + j];
                    b += nc;
                }
                r += nr;
            }
        }
    }
    return true;
}
