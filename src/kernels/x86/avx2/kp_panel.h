/* kp_panel.h - the unpacked K-quant super-block (built by q_k.c's AVX2
 * code) that both prefill panels, avx2/panel_k8.c and
 * avx512/panel_k16_avx512.c, interleave from: per super-block 256 unsigned
 * quants, the int16 madd multiplier of each 32-element chunk, the 16 bsum
 * coefficients of the min/offset term and the float factors. */
#ifndef SPOKE_KERN_KP_PANEL_H
#define SPOKE_KERN_KP_PANEL_H

#include <stdbool.h>

#include "kernels/kern_impl.h"

struct kp_sb {
    uint8_t q[KERN_QK_K]; /* unsigned quants, element order */
    int16_t sc[8][16];    /* per 32-chunk madd multipliers (16 lanes = 16 pairs) */
    int16_t mc[16];       /* coefficients of the 16 bsums (min or offset) */
    float d, dm;          /* factor of sumi, factor of mc . bsums */
    uint8_t pad[24];
};
static_assert(sizeof(struct kp_sb) % 32 == 0, "kp_sb keeps 32-byte alignment");

/* unpacks nsb super-blocks of one weight row (p 32-byte aligned) */
typedef void (*kp_build_fn)(const void *w, struct kp_sb *p, int64_t nsb);

/* What the prefill panels need of a K-quant type (Q2_K..Q6_K): its slot
 * (0..KP_NTYPES-1, in that order), the AVX2 builder, the bytes of a block
 * and whether it is an offset type (Q3_K, Q6_K: the term is subtracted in
 * the integers, mc = m16 << shift, dm = d) rather than a min type (a second
 * FMA with dm). False for other types. The builder needs AVX2. */
#define KP_NTYPES 5
struct kp_type {
    int slot;
    kp_build_fn build;
    size_t bsz;
    bool off;
};
bool kern_avx2_kp_type(enum gg_type type, struct kp_type *t);

#endif
