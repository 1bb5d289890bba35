/* order_simd.h - llama.cpp's float orders (ref/order.c) written once over a
 * 16-lane vector type, instantiated per ISA. The including file defines V16
 * and the lane-wise operations below (AVX-512: one zmm; AVX2: two ymm), plus
 * ORD(name) to prefix the internal names, ORD_PUBLIC(name) for the exported
 * fill_order, softmax_exp and silu_row (declared in kern_impl.h), and the tinyBLAS tile ORD_RW weight
 * rows x ORD_RB activation rows, and ORD_SET_VD (whether fill_float installs
 * the vec_dot-order kernels); every operation is exact lane-wise
 * IEEE arithmetic, so each instantiation equals the reference bit for bit.
 *
 *   V16 v_zero(void), v_set1(float), v_ld(const float *), v_ldh(const uint16_t *)
 *   void v_st(float *, V16); float v_reduce(V16)       (kern_reduce16's tree)
 *   V16 v_add, v_sub, v_mul, v_div (a, b); V16 v_fma(a, b, c) = a*b + c,
 *   V16 v_fnma(a, b, c) = c - a*b (both one rounding)
 *   V16 v_exp_finish(V16 j, V16 n)  (j * 2^n, and v_expf's |n| > 192 lanes) */
#ifndef SPOKE_KERN_ORDER_SIMD_H
#define SPOKE_KERN_ORDER_SIMD_H

KERN_AI V16 ORD(v_expf)(V16 x)
{
    const V16 r = v_set1(0x1.8p23f);
    const V16 z = v_fma(x, v_set1(0x1.715476p+0f), r);
    const V16 n = v_sub(z, r);
    const V16 b = v_fnma(n, v_set1(0x1.7f7d1cp-20f), v_fnma(n, v_set1(0x1.62e4p-1f), x));
    const V16 u = v_mul(b, b);
    const V16 j = v_fma(v_fma(v_fma(v_set1(0x1.0e4020p-7f), b, v_set1(0x1.573e2ep-5f)), u,
                              v_fma(v_set1(0x1.555e66p-3f), b, v_set1(0x1.fffdb6p-2f))),
                        u, v_fma(v_set1(0x1.ffffecp-1f), b, v_set1(1.0f)));
    return v_exp_finish(j, n);
}

double ORD_PUBLIC(softmax_exp)(int64_t n, float *y, const float *x, float max)
{
    double sum = 0.0;
    int64_t i = 0;
    const V16 vm = v_set1(max);
    for (; i + 15 < n; i += 16) {
        const V16 v = ORD(v_expf)(v_sub(v_ld(x + i), vm));
        v_st(y + i, v);
        sum += (double)v_reduce(v);
    }
    return kern_softmax_tail(i, n, y, x, max, sum);
}

void ORD_PUBLIC(silu_row)(int64_t n, float *y, const float *x)
{
    int64_t i = 0;
    for (; i + 15 < n; i += 16) {
        const V16 v = v_ld(x + i);
        v_st(y + i, v_div(v, v_add(v_set1(1.0f), ORD(v_expf)(v_sub(v_zero(), v)))));
    }
    kern_silu_tail(i, n, y, x);
}

/* ggml_vec_dot order, one weight row against one activation row. */
#define ORD_VD(NAME, LD, TAIL)                                                                   \
    static inline void ORD(NAME)(int64_t n, float *s, const void *vx, const void *vy)              \
    {                                                                                              \
        const int64_t np = n & ~(int64_t)63;                                                       \
        V16 a0 = v_zero(), a1 = v_zero(), a2 = v_zero(), a3 = v_zero();                            \
        for (int64_t i = 0; i < np; i += 64) {                                                     \
            a0 = v_fma(LD(vx, i), LD(vy, i), a0);                                                  \
            a1 = v_fma(LD(vx, i + 16), LD(vy, i + 16), a1);                                        \
            a2 = v_fma(LD(vx, i + 32), LD(vy, i + 32), a2);                                        \
            a3 = v_fma(LD(vx, i + 48), LD(vy, i + 48), a3);                                        \
        }                                                                                          \
        *s = TAIL(v_reduce(v_add(v_add(a0, a2), v_add(a1, a3))), np, n, vx, vy);                 \
    }

KERN_AI V16 ord_ld_f32(const void *p, int64_t i) { return v_ld((const float *)p + i); }
KERN_AI V16 ord_ld_f16(const void *p, int64_t i) { return v_ldh((const uint16_t *)p + i); }

KERN_AI float ord_h2f(kern_half h) { return _cvtsh_ss(h); }
#define ORD_TAIL_F32(R, NP, N, X, Y) kern_vd_tail_f32(R, NP, N, (const float *)(X), (const float *)(Y))
#define ORD_TAIL_F16(R, NP, N, X, Y) \
    kern_vd_tail_f16(R, NP, N, (const kern_half *)(X), (const kern_half *)(Y), ord_h2f)

ORD_VD(vec_dot_f32, ord_ld_f32, ORD_TAIL_F32)
ORD_VD(vec_dot_f16, ord_ld_f16, ORD_TAIL_F16)

/* tinyBLAS order: one accumulator per output; a tile of ORD_RW weight rows
 * x ORD_RB activation rows shares every load (missing rows of a partial tile
 * repeat the last one and are not stored). k % 16 == 0. */
#define ORD_TB(NAME, LD)                                                                            \
    static void ORD(NAME)(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,       \
                          size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride) \
    {                                                                                              \
        for (int64_t r = r0; r < r1; r += ORD_RW) {                                                \
            const int nw = (int)SP_MIN(ORD_RW, r1 - r);                                            \
            const char *wr[ORD_RW];                                                                \
            for (int p = 0; p < ORD_RW; p++)                                                       \
                wr[p] = (const char *)w + (size_t)(r + (p < nw ? p : nw - 1)) * w_stride;          \
            for (int64_t b0 = 0; b0 < n_batch; b0 += ORD_RB) {                                     \
                const int nb = (int)SP_MIN(ORD_RB, n_batch - b0);                                  \
                const char *xr[ORD_RB];                                                            \
                V16 acc[ORD_RW][ORD_RB];                                                           \
                for (int q = 0; q < ORD_RB; q++)                                                   \
                    xr[q] = (const char *)x + (size_t)(b0 + (q < nb ? q : nb - 1)) * x_stride;     \
                KERN_UNROLL for (int p = 0; p < ORD_RW; p++)                                       \
                    KERN_UNROLL for (int q = 0; q < ORD_RB; q++) acc[p][q] = v_zero();             \
                for (int64_t i = 0; i < k; i += 16) {                                              \
                    V16 xv[ORD_RB];                                                                \
                    KERN_UNROLL for (int q = 0; q < ORD_RB; q++) xv[q] = LD(xr[q], i);             \
                    KERN_UNROLL for (int p = 0; p < ORD_RW; p++) {                                 \
                        const V16 wv = LD(wr[p], i);                                               \
                        KERN_UNROLL for (int q = 0; q < ORD_RB; q++) acc[p][q] = v_fma(wv, xv[q], acc[p][q]); \
                    }                                                                              \
                }                                                                                  \
                if (ORD_TB_REDUCE16) {                                                             \
                    ORD_TB_STORE16(acc, y, y_stride, b0, r, nw, nb);                               \
                    continue;                                                                      \
                }                                                                                  \
                for (int p = 0; p < nw; p++)                                                       \
                    for (int q = 0; q < nb; q++)                                                   \
                        y[(size_t)(b0 + q) * y_stride + (size_t)(r + p)] = v_reduce(acc[p][q]);    \
            }                                                                                      \
        }                                                                                          \
    }

/* A 4 x 4 tile reduced by ORD_REDUCE16 (where the ISA defines it; a partial
 * tile's repeated rows are reduced too and not stored): the same tree per
 * output as v_reduce. */
#ifdef ORD_REDUCE16
static_assert(ORD_RW == 4 && ORD_RB == 4, "ORD_REDUCE16 reduces 4 x 4 tiles");
#define ORD_TB_REDUCE16 true
#define ORD_TB_STORE16(acc, y, y_stride, b0, r, nw, nb)                                            \
    do {                                                                                           \
        V16 a16[16];                                                                               \
        float o16[16];                                                                             \
        KERN_UNROLL for (int p = 0; p < 4; p++)                                                    \
            KERN_UNROLL for (int q = 0; q < 4; q++)                                                \
                a16[4 * q + p] = acc[p][q];                                                        \
        ORD_REDUCE16(a16, o16);                                                                    \
        for (int q = 0; q < (nb); q++)                                                             \
            memcpy(y + (size_t)((b0) + q) * (y_stride) + (size_t)(r), o16 + 4 * q,                 \
                   (size_t)(nw) * sizeof(float));                                                  \
    } while (0)
#else
#define ORD_TB_REDUCE16 false
#define ORD_TB_STORE16(acc, y, y_stride, b0, r, nw, nb) ((void)0)
#endif

ORD_TB(gemm_tb_f32, ord_ld_f32)
ORD_TB(gemm_tb_f16, ord_ld_f16)

/* gemm_tb_f16 with the activations given as F32 rows holding F16 values (the
 * exact conversions of the rows gemm_tb_f16 would take): every output takes
 * the same FMAs and reduction, so the same bits, but an activation vector is
 * loaded instead of converted in every tile that reads it (vcvtph2ps competes
 * with the FMAs for the same ports). Blocks of weight rows take every batch
 * tile in turn: a tile's activation rows stay in L1 while the block's weights
 * come from L2. Each block is converted to F32 once (ORD_XFLOATS floats on
 * the stack, exact) and its tiles are ORD_FRW weight rows x nb <= ORD_FRB
 * activation rows, weights and activations both loaded; rows too long for two
 * tile rows in the buffer take ORD_XWBYTES blocks of F16 rows converted in
 * the tiles, ORD_XRW_OF(nb) weight rows x nb <= ORD_XRB activation rows.
 * Tiles are compiled per nb (a partial batch tile computes no repeated rows;
 * a partial weight tile repeats its last row and does not store it, as
 * ORD_TB). */
#ifndef ORD_XRB
#define ORD_XRB ORD_RB
#define ORD_XRW_OF(nb) ORD_RW
#define ORD_XRW_MAX ORD_RW
#endif
#ifndef ORD_FRB
#define ORD_FRB ORD_XRB
#define ORD_FRW ORD_XRW_MAX
#endif
#define ORD_TRB (ORD_FRB > ORD_XRB ? ORD_FRB : ORD_XRB)
#define ORD_TRW (ORD_FRW > ORD_XRW_MAX ? ORD_FRW : ORD_XRW_MAX)
#if defined(__clang__)
#define ORD_UNROLL4 _Pragma("unroll 4")
#else
#define ORD_UNROLL4 _Pragma("GCC unroll 4")
#endif
#ifndef ORD_XWBYTES
#define ORD_XWBYTES (128 * 1024)
#endif
#ifndef ORD_XFLOATS
#define ORD_XFLOATS (64 * 1024)
#endif
KERN_AI void ORD(tbx_tile)(const int rw, const int nb, const bool wf, int64_t k, const char *const *wr,
                           const float *const *xr, V16 acc[ORD_TRW][ORD_TRB])
{
    KERN_UNROLL for (int p = 0; p < rw; p++)
        KERN_UNROLL for (int q = 0; q < nb; q++) acc[p][q] = v_zero();
    ORD_UNROLL4 for (int64_t i = 0; i < k; i += 16) {
        V16 xv[ORD_TRB];
#ifdef ORD_FSTEP
        if (wf) { /* the ISA's own order of loads (16 ymm registers) */
            ORD_FSTEP(rw, nb, wr, xr, i, acc);
            continue;
        }
#endif
        KERN_UNROLL for (int q = 0; q < nb; q++) xv[q] = v_ld(xr[q] + i);
        KERN_UNROLL for (int p = 0; p < rw; p++) {
            const V16 wv = wf ? v_ld((const float *)(const void *)wr[p] + i) : ord_ld_f16(wr[p], i);
            KERN_UNROLL for (int q = 0; q < nb; q++) acc[p][q] = v_fma(wv, xv[q], acc[p][q]);
        }
    }
}
#ifdef ORD_XRED8
/* a tile, its outputs half reduced into pend[q][np + p] (all indices known
 * at compile time but np: the accumulators stay in registers) */
KERN_AI void ORD(tbx_step)(const int rw, const int nb, const bool wf, int nw, int np, int64_t k,
                           const char *const *wr, const float *const *xr, ORD_XRED_T pend[ORD_TRB][8])
{
    V16 acc[ORD_TRW][ORD_TRB];
    ORD(tbx_tile)(rw, nb, wf, k, wr, xr, acc);
    KERN_UNROLL for (int p = 0; p < rw; p++)
        if (p < nw)
            KERN_UNROLL for (int q = 0; q < nb; q++) pend[q][np + p] = ORD_XRED_H(acc[p][q]);
}
#define ORD_TBX_CALL(NB) ORD(tbx_step)(wf ? ORD_FRW : ORD_XRW_OF(NB), NB, wf, nw, np, k, wr, xr, pend)
#else
#define ORD_TBX_CALL(NB) ORD(tbx_tile)(wf ? ORD_FRW : ORD_XRW_OF(NB), NB, wf, k, wr, xr, acc)
#endif
#define ORD_TBX_CASE(NB) case NB: ORD_TBX_CALL(NB); break

/* wf: the rows go through wbuf (ORD_XFLOATS floats) as F32 */
KERN_AI void ORD(tbx_gemm)(const bool wf, int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,
                          size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride, float *wbuf)
{
    const int rwm = wf ? ORD_FRW : ORD_XRW_MAX, trb = wf ? ORD_FRB : ORD_XRB;
    const int64_t rblk = wf ? (int64_t)(ORD_XFLOATS / k) / rwm * rwm
                            : SP_MAX((int64_t)rwm, (int64_t)(ORD_XWBYTES / ((size_t)k * 2)) / rwm * rwm);
    for (int64_t rb = r0; rb < r1; rb += rblk) {
        const int64_t re = SP_MIN(r1, rb + rblk);
        if (wf) /* F16 -> F32 is exact */
            for (int64_t r = rb; r < re; r++)
                for (int64_t i = 0; i < k; i += 16)
                    v_st(wbuf + (size_t)((r - rb) * k + i), ord_ld_f16((const char *)w + (size_t)r * w_stride, i));
        for (int64_t b0 = 0; b0 < n_batch; b0 += trb) {
            const int nb = (int)SP_MIN(trb, n_batch - b0), rw = wf ? ORD_FRW : ORD_XRW_OF(nb);
            const float *xr[ORD_TRB];
            for (int q = 0; q < nb; q++)
                xr[q] = (const float *)(const void *)((const char *)x + (size_t)(b0 + q) * x_stride);
#ifdef ORD_XRED8
            /* the outputs of 8 consecutive weight rows per activation row,
             * half reduced, then finished together (ORD_XRED8: v_reduce's
             * tree for each, in fewer shuffles) and stored as one vector */
            ORD_XRED_T pend[ORD_TRB][8];
            int np = 0;
#endif
            for (int64_t r = rb; r < re; r += rw) {
                const int nw = (int)SP_MIN(rw, re - r);
                const char *wr[ORD_TRW];
                for (int p = 0; p < rw; p++) {
                    const int64_t rr = r + (p < nw ? p : nw - 1);
                    wr[p] = wf ? (const char *)(wbuf + (size_t)((rr - rb) * k))
                               : (const char *)w + (size_t)rr * w_stride;
                }
#ifndef ORD_XRED8
                V16 acc[ORD_TRW][ORD_TRB];
#endif
                switch (nb) {
#if ORD_TRB > 5
                    ORD_TBX_CASE(6);
                    ORD_TBX_CASE(5);
#endif
#if ORD_TRB > 3
                    ORD_TBX_CASE(4);
#endif
#if ORD_TRB > 2
                    ORD_TBX_CASE(3);
#endif
                    ORD_TBX_CASE(2);
                default: ORD_TBX_CALL(1); break;
                }
#ifdef ORD_XRED8
                np += nw;
                if (np == 8) { /* rows r + nw - 8 .. r + nw - 1 (8 % rw == 0) */
                    for (int q = 0; q < nb; q++)
                        ORD_XRED8(pend[q], y + (size_t)(b0 + q) * y_stride + (size_t)(r + nw - 8));
                    np = 0;
                }
#else
#if defined(ORD_REDUCE16) && ORD_TRW == 4 && ORD_TRB == 4
                if (nb == 4 && rw == 4) {
                    ORD_TB_STORE16(acc, y, y_stride, b0, r, nw, nb);
                    continue;
                }
#endif
                for (int p = 0; p < nw; p++)
                    for (int q = 0; q < nb; q++)
                        y[(size_t)(b0 + q) * y_stride + (size_t)(r + p)] = v_reduce(acc[p][q]);
#endif
            }
#ifdef ORD_XRED8
            for (int j = 0; j < np; j++) /* the block's last rows, one at a time */
                for (int q = 0; q < nb; q++)
                    y[(size_t)(b0 + q) * y_stride + (size_t)(re - np + j)] = ORD_XRED_1(pend[q][j]);
#endif
        }
    }
}

/* gemm_tb_hx through F32 weight blocks (the buffer on the stack only here);
 * attention's K.q rows are one head (64 or 128): compiled for those lengths
 * too, the tile's few steps unrolled */
static void ORD(gemm_tb_hxf)(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                             const void *x, size_t x_stride, float *y, size_t y_stride)
{
    _Alignas(64) float wbuf[ORD_XFLOATS];
    if (k == 64)
        ORD(tbx_gemm)(true, 64, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, wbuf);
    else if (k == 128)
        ORD(tbx_gemm)(true, 128, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, wbuf);
    else
        ORD(tbx_gemm)(true, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, wbuf);
}

static void ORD(gemm_tb_hx)(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                            const void *x, size_t x_stride, float *y, size_t y_stride)
{
    /* small batches: converting the rows once costs as much as the tiles' conversions */
    if (n_batch >= ORD_FMIN_NB && k * ORD_FRW <= ORD_XFLOATS)
        ORD(gemm_tb_hxf)(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
    else if (k == 64)
        ORD(tbx_gemm)(false, 64, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, NULL);
    else if (k == 128)
        ORD(tbx_gemm)(false, 128, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, NULL);
    else
        ORD(tbx_gemm)(false, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, NULL);
}

/* vec_dot order over rows x batch */
#define ORD_VD_GEMM(NAME, DOT)                                                                 \
    static void ORD(NAME)(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,        \
                          size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride)  \
    {                                                                                               \
        for (int64_t b = 0; b < n_batch; b++) {                                                     \
            const char *xb = (const char *)x + (size_t)b * x_stride;                                \
            float *yb = y + (size_t)b * y_stride;                                                   \
            for (int64_t r = r0; r < r1; r++)                                                       \
                ORD(DOT)(k, &yb[r], (const char *)w + (size_t)r * w_stride, xb);                    \
        }                                                                                           \
    }

ORD_VD_GEMM(gemm_vd_f32, vec_dot_f32)

/* F16 in vec_dot order, ORD_VD_ROWS weight rows per pass: each row's 64-wide
 * body and then its tail (k % 64 elements, a serial chain of double adds in
 * kern_vd_tail_f16) exactly as vec_dot_f16, but the rows' tail chains side by
 * side, so the core overlaps their add latencies (attention's V rows have a
 * 32-element tail whenever the padded context is an odd multiple of 32; one
 * chain at a time was a visible share of short-context decode). Same
 * operations per row, so the same bits. */
#define ORD_VD_ROWS 4
#ifndef ORD_PREFETCH
#define ORD_PREFETCH(p) ((void)(p))
#endif
#ifndef ORD_VD_PF
#define ORD_VD_PF 1024 /* bytes ahead in the weight stream of gemm_vd_hx */
#endif
/* vec_dot_f16's 64-wide body of one row: x as F16, or as F32 halves (hx:
 * gemm_vd_hx, which also prefetches the weights) */
KERN_AI V16 ORD(vd_acc)(int64_t np, const kern_half *w, const void *x, const bool hx)
{
    V16 a[4] = {v_zero(), v_zero(), v_zero(), v_zero()};
    for (int64_t i = 0; i < np; i += 64) {
        if (hx)
            ORD_PREFETCH((const char *)(w + i) + ORD_VD_PF);
        KERN_UNROLL for (int j = 0; j < 4; j++) {
            const V16 xv = hx ? v_ld((const float *)x + i + 16 * j) : ord_ld_f16(x, i + 16 * j);
            a[j] = v_fma(ord_ld_f16(w, i + 16 * j), xv, a[j]);
        }
    }
    return v_add(v_add(a[0], a[2]), v_add(a[1], a[3]));
}
KERN_AI float ORD(vd_body)(int64_t np, const kern_half *w, const void *x, const bool hx)
{
    return v_reduce(ORD(vd_acc)(np, w, x, hx));
}
/* an activation element as float: F16 converted, or already an F32 half */
KERN_AI float ORD(vd_x)(const void *x, int64_t i, const bool hx)
{
    return hx ? ((const float *)x)[i] : ord_h2f(((const kern_half *)x)[i]);
}
/* gemm_vd_f16 (x as F16) and gemm_vd_hx (x as F32 halves): full groups of
 * ORD_VD_ROWS rows when there is a tail, the other rows one at a time */
KERN_AI void ORD(vd_gemm)(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t y_stride, const bool hx)
{
    const int64_t np = k & ~(int64_t)63;
    int64_t rs = r0; /* the rows left to the loops below */
#ifdef ORD_XRED8
    /* no tail (attention's K.q, k = head_dim): 8 rows at a time, each
     * activation row against them while they are in L1, the 8 outputs
     * finished together by ORD_XRED8 (v_reduce's tree, fewer shuffles);
     * (float)(double)f is f, so the same bits as one row at a time */
    if (np == k) {
        for (; rs + 8 <= r1; rs += 8) {
            const kern_half *wr[8];
            for (int p = 0; p < 8; p++)
                wr[p] = (const kern_half *)(const void *)((const char *)w + (size_t)(rs + p) * w_stride);
            for (int64_t b = 0; b < n_batch; b++) {
                const void *xb = (const char *)x + (size_t)b * x_stride;
                ORD_XRED_T h[8];
                KERN_UNROLL for (int p = 0; p < 8; p++) h[p] = ORD_XRED_H(ORD(vd_acc)(np, wr[p], xb, hx));
                ORD_XRED8(h, y + (size_t)b * y_stride + (size_t)rs);
            }
        }
    }
#endif
    for (int64_t b = 0; b < n_batch; b++) {
        const void *xb = (const char *)x + (size_t)b * x_stride;
        float *yb = y + (size_t)b * y_stride;
        int64_t r = rs;
        for (; np < k && r + ORD_VD_ROWS <= r1; r += ORD_VD_ROWS) {
            const kern_half *wr[ORD_VD_ROWS];
            double sd[ORD_VD_ROWS];
            for (int p = 0; p < ORD_VD_ROWS; p++) {
                wr[p] = (const kern_half *)(const void *)((const char *)w + (size_t)(r + p) * w_stride);
                sd[p] = (double)ORD(vd_body)(np, wr[p], xb, hx);
            }
            for (int64_t i = np; i < k; i++) {
                const float xi = ORD(vd_x)(xb, i, hx);
                KERN_UNROLL for (int p = 0; p < ORD_VD_ROWS; p++) sd[p] += (double)(ord_h2f(wr[p][i]) * xi);
            }
            for (int p = 0; p < ORD_VD_ROWS; p++)
                yb[r + p] = (float)sd[p];
        }
        for (; r < r1; r++) { /* vec_dot_f16's operations */
            const kern_half *wr = (const kern_half *)(const void *)((const char *)w + (size_t)r * w_stride);
            double sd = (double)ORD(vd_body)(np, wr, xb, hx);
            for (int64_t i = np; i < k; i++)
                sd += (double)(ord_h2f(wr[i]) * ORD(vd_x)(xb, i, hx));
            yb[r] = (float)sd;
        }
    }
}
static void ORD(gemm_vd_f16)(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                             const void *x, size_t x_stride, float *y, size_t y_stride)
{
    ORD(vd_gemm)(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, false);
}

#if ORD_SET_VD
/* gemm_vd_f16 with the activations as F32 halves (gemm_tb_hx's form): the
 * same operations per output, without converting an activation vector for
 * every row that reads it (F16 decode, attention's dots in vec_dot order) */
static void ORD(gemm_vd_hx)(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                            const void *x, size_t x_stride, float *y, size_t y_stride)
{
    ORD(vd_gemm)(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, true);
}
#endif

/* Wire the float types (the vec_dot-order kernels only when ORD_SET_VD). */
void ORD_PUBLIC(fill_order)(struct kern_type_ops *ops, enum gg_type type)
{
    if (type == GG_TYPE_F32) {
        if (ORD_SET_VD) {
            ops->vec_dot = ORD(vec_dot_f32);
            ops->gemm = ORD(gemm_vd_f32);
        }
        ops->gemm_tb = ORD(gemm_tb_f32);
    } else if (type == GG_TYPE_F16) {
        if (ORD_SET_VD) {
            ops->vec_dot = ORD(vec_dot_f16);
            ops->gemm = ORD(gemm_vd_f16);
#if ORD_SET_VD
            ops->gemm_hx = ORD(gemm_vd_hx);
#endif
        }
        ops->gemm_tb = ORD(gemm_tb_f16);
        ops->gemm_tb_hx = ORD(gemm_tb_hx);
    }
}

#endif
