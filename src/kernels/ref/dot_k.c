/* dot_k.c - scalar reference dot products of the K-quants against Q8_K
 * activations, in ggml's generic order: weights expanded to int8 per
 * super-block, integer products scaled by the 6/8-bit sub-block scales into
 * eight int32 lanes, one float multiply-add per lane per super-block; mins
 * (Q2_K/Q4_K/Q5_K) through the activation's 16-element sums (bsums). */
#include "kernels/kern_impl.h"

#define QK_K KERN_QK_K

void kern_ref_vec_dot_q2_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q2_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    float sumf = 0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q2 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        const uint8_t *sc = x[i].scales;
        int summs = 0;
        for (int j = 0; j < 16; ++j)
            summs += y[i].bsums[j] * (sc[j] >> 4);
        const float dall = y[i].d * kern_f16(x[i].d);
        const float dmin = y[i].d * kern_f16(x[i].dmin);
        int isum = 0, is = 0;
        for (int k = 0; k < QK_K / 128; ++k) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                int d = sc[is++] & 0xF;
                int isuml = 0;
                for (int l = 0; l < 16; ++l)
                    isuml += q8[l] * ((q2[l] >> shift) & 3);
                isum += d * isuml;
                d = sc[is++] & 0xF;
                isuml = 0;
                for (int l = 16; l < 32; ++l)
                    isuml += q8[l] * ((q2[l] >> shift) & 3);
                isum += d * isuml;
                shift += 2;
                q8 += 32;
            }
            q2 += 32;
        }
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    *s = sumf;
}

/* Accumulate 16-element groups: aux32[l] += scale * a[l] * q8[l] (8 lanes). */
static void acc_group16(int32_t *aux32, int scale, const int8_t *a, const int8_t *q8)
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 8; ++l)
            aux32[l] += scale * (int16_t)(q8[8 * h + l] * a[8 * h + l]);
}

void kern_ref_vec_dot_q3_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q3_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    int8_t aux8[QK_K];
    int32_t aux32[8];
    float sums[8] = { 0 };
    uint32_t auxs[4];
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q3 = x[i].qs, *hm = x[i].hmask;
        const int8_t *q8 = y[i].qs;
        memset(aux32, 0, sizeof aux32);
        int8_t *a = aux8;
        uint8_t m = 1;
        for (int j = 0; j < QK_K; j += 128) {
            for (int sh = 0; sh < 8; sh += 2) {
                for (int l = 0; l < 32; ++l)
                    a[l] = (int8_t)(((q3[l] >> sh) & 3) - (hm[l] & m ? 0 : 4));
                a += 32;
                m = (uint8_t)(m << 1);
            }
            q3 += 32;
        }
        memcpy(auxs, x[i].scales, 12);
        uint32_t tmp = auxs[2];
        auxs[2] = ((auxs[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
        auxs[3] = ((auxs[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
        auxs[0] = (auxs[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
        auxs[1] = (auxs[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
        int8_t scales[16];
        memcpy(scales, auxs, 16);
        a = aux8;
        for (int j = 0; j < QK_K / 16; ++j) {
            acc_group16(aux32, scales[j] - 32, a, q8);
            q8 += 16;
            a += 16;
        }
        const float d = kern_f16(x[i].d) * y[i].d;
        for (int l = 0; l < 8; ++l)
            sums[l] += d * (float)aux32[l];
    }
    float sumf = 0;
    for (int l = 0; l < 8; ++l)
        sumf += sums[l];
    *s = sumf;
}

/* Unpack Q4_K/Q5_K 6-bit scales and mins (8 each). */
static void k4_scales_mins(const uint8_t *src, uint8_t *scales, uint8_t *mins)
{
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    uint32_t utmp[4];
    memcpy(utmp, src, 12);
    utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4);
    const uint32_t uaux = utmp[1] & kmask1;
    utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4);
    utmp[2] = uaux;
    utmp[0] &= kmask1;
    memcpy(scales, &utmp[0], 8);
    memcpy(mins, &utmp[2], 8);
}

/* Shared tail of Q4_K/Q5_K: aux8 holds the 256 unsigned quants. */
static void k4_accumulate(const int8_t *aux8, const uint8_t *scales, const uint8_t *mins,
                          const block_q8_K *y, float dx, float dminx, float *sums, float *sumf)
{
    int32_t aux32[8] = { 0 };
    int sumi = 0;
    for (int j = 0; j < QK_K / 16; ++j)
        sumi += y->bsums[j] * mins[j / 2];
    const int8_t *a = aux8, *q8 = y->qs;
    for (int j = 0; j < QK_K / 32; ++j) {
        acc_group16(aux32, scales[j], a, q8);
        acc_group16(aux32, scales[j], a + 16, q8 + 16);
        q8 += 32;
        a += 32;
    }
    const float d = dx * y->d;
    for (int l = 0; l < 8; ++l)
        sums[l] += d * (float)aux32[l];
    *sumf -= dminx * y->d * (float)sumi;
}

void kern_ref_vec_dot_q4_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    int8_t aux8[QK_K];
    float sums[8] = { 0 };
    float sumf = 0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q4 = x[i].qs;
        int8_t *a = aux8;
        for (int j = 0; j < QK_K / 64; ++j) {
            for (int l = 0; l < 32; ++l)
                a[l] = (int8_t)(q4[l] & 0xF);
            a += 32;
            for (int l = 0; l < 32; ++l)
                a[l] = (int8_t)(q4[l] >> 4);
            a += 32;
            q4 += 32;
        }
        uint8_t scales[8], mins[8];
        k4_scales_mins(x[i].scales, scales, mins);
        k4_accumulate(aux8, scales, mins, &y[i], kern_f16(x[i].d), kern_f16(x[i].dmin), sums,
                      &sumf);
    }
    for (int l = 0; l < 8; ++l)
        sumf += sums[l];
    *s = sumf;
}

void kern_ref_vec_dot_q5_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    int8_t aux8[QK_K];
    float sums[8] = { 0 };
    float sumf = 0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q4 = x[i].qs, *hm = x[i].qh;
        int8_t *a = aux8;
        uint8_t m = 1;
        for (int j = 0; j < QK_K / 64; ++j) {
            for (int l = 0; l < 32; ++l)
                a[l] = (int8_t)((q4[l] & 0xF) + (hm[l] & m ? 16 : 0));
            a += 32;
            m = (uint8_t)(m << 1);
            for (int l = 0; l < 32; ++l)
                a[l] = (int8_t)((q4[l] >> 4) + (hm[l] & m ? 16 : 0));
            a += 32;
            m = (uint8_t)(m << 1);
            q4 += 32;
        }
        uint8_t scales[8], mins[8];
        k4_scales_mins(x[i].scales, scales, mins);
        k4_accumulate(aux8, scales, mins, &y[i], kern_f16(x[i].d), kern_f16(x[i].dmin), sums,
                      &sumf);
    }
    for (int l = 0; l < 8; ++l)
        sumf += sums[l];
    *s = sumf;
}

void kern_ref_vec_dot_q6_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    int8_t aux8[QK_K];
    int32_t aux32[8];
    float sums[8] = { 0 };
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q4 = x[i].ql, *qh = x[i].qh;
        const int8_t *q8 = y[i].qs;
        memset(aux32, 0, sizeof aux32);
        int8_t *a = aux8;
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                a[l + 0] = (int8_t)(((q4[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                a[l + 32] = (int8_t)(((q4[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                a[l + 64] = (int8_t)(((q4[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                a[l + 96] = (int8_t)(((q4[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
            a += 128;
            q4 += 64;
            qh += 32;
        }
        a = aux8;
        for (int j = 0; j < QK_K / 16; ++j) {
            acc_group16(aux32, x[i].scales[j], a, q8);
            q8 += 16;
            a += 16;
        }
        const float d = kern_f16(x[i].d) * y[i].d;
        for (int l = 0; l < 8; ++l)
            sums[l] += d * (float)aux32[l];
    }
    float sumf = 0;
    for (int l = 0; l < 8; ++l)
        sumf += sums[l];
    *s = sumf;
}
