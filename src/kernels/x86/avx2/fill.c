/* fill.c - AVX2 entry points: wires the AVX2 kernels into an ops entry (the F32/F16
 * dot products come from order_avx2.c; Q4_0's and Q5_0's load-time layouts from rp_q4.c, Q4_K's from rp_qk.c). Compiled with -mavx2 -mfma -mf16c; reached only
 * after dispatch.c checked the CPU. */
#include <immintrin.h>

#include "kernels/kern_impl.h"

void kern_avx2_fill_simple(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_k(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_panel_k8(struct kern_type_ops *ops, enum gg_type type); /* panel_k8.c */
void kern_avx2_fill_float(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_iq4(struct kern_type_ops *ops, enum gg_type type); /* q_iq4.c */
void kern_avx2_fill_repack(struct kern_type_ops *ops, enum gg_type type); /* rp_q4.c */
void kern_avx2_fill_repack_qk(struct kern_type_ops *ops, enum gg_type type); /* rp_qk.c */

void kern_avx2_fill(struct kern_type_ops *ops, enum gg_type type)
{
    kern_avx2_fill_simple(ops, type);
    kern_avx2_fill_k(ops, type);
    kern_avx2_fill_panel_k8(ops, type);
    kern_avx2_fill_float(ops, type);
    kern_avx2_fill_iq4(ops, type);
    kern_avx2_fill_order(ops, type);
    kern_avx2_fill_repack(ops, type);
    kern_avx2_fill_repack_qk(ops, type);
    if (type == GG_TYPE_F32 || type == GG_TYPE_F16)
        ops->isa = KERN_ISA_AVX2;
}
