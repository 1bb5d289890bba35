/* fill.c - AVX-512 entry point: wires the AVX-512 (VNNI) kernels (IQ4 ones
 * with the AVX2 entry for batches) and the
 * F32/F16 ones of order_avx512.c into an ops entry, and Q8_0's load-time
 * repacking (rp_q8_avx512.c), Q4_0's and Q5_0's (rp_q4_avx512.c) and Q4_K's and Q6_K's
 * (rp_qk_avx512.c). Compiled with the
 * AVX-512 flags; the panels of panel_avx512.c (Q4_0/Q5_0) and panel_k16_avx512.c (K-quants) last; reached only after dispatch.c checked the CPU. */
#include <immintrin.h>

#include "kernels/kern_impl.h"

void kern_avx512_fill_q(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_q2(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_iq4(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_panel(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_panel_k16(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_repack(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_repack_q4(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_repack_qk(struct kern_type_ops *ops, enum gg_type type);

void kern_avx512_fill(struct kern_type_ops *ops, enum gg_type type)
{
    kern_avx512_fill_q(ops, type);
    kern_avx512_fill_q2(ops, type);
    kern_avx512_fill_iq4(ops, type);
    kern_avx512_fill_order(ops, type);
    kern_avx512_fill_panel(ops, type); /* last: keep the row gemm chosen above */
    kern_avx512_fill_panel_k16(ops, type);
    kern_avx512_fill_repack(ops, type);
    kern_avx512_fill_repack_q4(ops, type);
    kern_avx512_fill_repack_qk(ops, type);
    if (type == GG_TYPE_F32 || type == GG_TYPE_F16)
        ops->isa = KERN_ISA_AVX512;
}
