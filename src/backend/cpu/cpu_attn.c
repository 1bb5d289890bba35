/* cpu_attn.c - the CPU backend's attention ops: per-token q/k preparation
 * with the KV store (attn_store) and attention over each token's own
 * sequence cells (attention), in llama.cpp's CPU order so results match it
 * bit for bit where ggml is deterministic (docs/PARITY.md).
 *
 * attn_store is split by tokens: biases, per-head RMSNorm, the RoPE angle
 * cache (ggml_rope_cache_init: repeated multiplication by base^(-2/n_rot),
 * frequency factors dividing the angle) and the kernels' rotation, q
 * scaling, the store into the token's cell (F16 through the kernels'
 * round-to-nearest-even conversion); then V padding is zeroed.
 * attention is split by (token, heads) items: an item is one token and
 * `per` query heads sharing one KV head, the whole group, or single heads
 * when there are too few groups to keep the threads busy (decode with few KV
 * heads). Per item: scores = K . q (gemm over the cells, from the 64-aligned
 * block below a sliding window: the skipped terms were exact zeros, so every
 * sum keeps its lanes and tail), masked softmax with ggml's exponentials,
 * padding to 32 cells, then V^T . p (over an F16 cache q and p go to the
 * gemms as F32 halves, kern_hx_gemm). Scratch is per thread, reserved once
 * (attn_reserve). */
#include "backend/cpu/cpu_impl.h"

#include <assert.h>
#include <math.h>
#include <string.h>

struct cpu_attn_scratch {
    int max_ctx, max_group, head_dim, n_rot, n_threads;
    float *scores;  /* [n_threads][max_group][max_ctx] */
    uint16_t *p16;  /* [n_threads][max_group][max_ctx] */
    void *qx;       /* [n_threads][max_group][head_dim]: q as F16, or as F32 halves for gemm_tb_hx */
    float *rope;    /* [n_threads][n_rot + 2] cos/sin cache */
    void *arena;
};

#define ALIGN_UP(x) (((x) + 63u) & ~(size_t)63u)

static bool attn_sizes(int nth, int max_ctx, int group, int hd, int n_rot, size_t sz[4])
{
    size_t a, b;
    if (nth < 1 || max_ctx < 1 || group < 1 || hd < 1 || n_rot < 0)
        return false;
    if (!sp_mul_size((size_t)nth, (size_t)group, &a) || !sp_mul_size(a, (size_t)max_ctx, &b))
        return false;
    if (!sp_mul_size(b, 4, &sz[0]) || !sp_mul_size(b, 2, &sz[1]))
        return false;
    if (!sp_mul_size(a, (size_t)hd, &b) || !sp_mul_size(b, 4, &sz[2]))
        return false;
    if (!sp_mul_size((size_t)nth, (size_t)n_rot + 2, &b) || !sp_mul_size(b, 4, &sz[3]))
        return false;
    return true;
}

size_t backend_cpu_attn_bytes(int n_threads, int max_ctx, int max_group, int head_dim, int n_rot)
{
    size_t sz[4], total = sizeof(struct cpu_attn_scratch);
    if (!attn_sizes(n_threads, max_ctx, max_group, head_dim, n_rot, sz))
        return SIZE_MAX;
    for (int i = 0; i < 4; i++)
        if (!sp_add_size(total, ALIGN_UP(sz[i]), &total))
            return SIZE_MAX;
    return total;
}

void backend_cpu_attn_free(struct cpu_attn_scratch *a)
{
    if (!a)
        return;
    sp_aligned_free(a->arena);
    sp_free(a);
}

enum sp_status backend_cpu_attn_reserve(struct backend *be, int max_ctx, int max_group, int head_dim, int n_rot,
                                        struct sp_err *err)
{
    enum sp_status result;
    struct cpu_attn_scratch **slot = backend_cpu_attn_slot(be);
    size_t sz[4], total = 0, off[4];
    if (!attn_sizes(be->n_threads, max_ctx, max_group, head_dim, n_rot, sz))
        return sp_err_set(err, SP_ERR_RANGE, "attention scratch size overflows (context %d)", max_ctx);
    for (int i = 0; i < 4; i++) {
        off[i] = total;
        if (!sp_add_size(total, ALIGN_UP(sz[i]), &total))
            return sp_err_set(err, SP_ERR_RANGE, "attention scratch size overflows (context %d)", max_ctx);
    }
    struct cpu_attn_scratch *a = sp_calloc(1, sizeof(*a));
    if (!a)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory reserving attention scratch");
    a->arena = sp_aligned_alloc(64, total);
    if (!a->arena) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory allocating %zu MiB of attention scratch",
                            total >> 20);
        goto fail;
    }
    memset(a->arena, 0, total);
    char *p = a->arena;
    a->scores = (float *)(void *)(p + off[0]);
    a->p16 = (uint16_t *)(void *)(p + off[1]);
    a->qx = p + off[2];
    a->rope = (float *)(void *)(p + off[3]);
    a->max_ctx = max_ctx;
    a->max_group = max_group;
    a->head_dim = head_dim;
    a->n_rot = n_rot;
    a->n_threads = be->n_threads;
    backend_cpu_attn_free(*slot);
    *slot = a;
    return SP_OK;
fail:
    backend_cpu_attn_free(a);
    return result;
}

/* Cells the attention of a token at position pos reads: its causal span
 * padded to 32 (llama.cpp's KV padding), capped at the context. */
static int attn_pad(const struct backend_tokens *t, int pos) { return SP_MIN(t->n_ctx, (pos + 1 + 31) / 32 * 32); }

static void rope_cache(float *cache, int n_rot, float pos, float freq_base, float freq_scale, const float *factors,
                       float mscale)
{
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float theta = pos;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float ff = factors ? factors[i0 / 2] : 1.0f;
        const float t = freq_scale * (theta / ff);
        cache[i0] = cosf(t) * mscale;
        cache[i0 + 1] = sinf(t) * mscale;
        theta *= theta_scale;
    }
}

/* k and v (kv_dim floats) into cell c of the layer: K row, V column. */
static void kv_put(const struct backend_kv *kv, int c, const float *k, const float *v)
{
    const size_t n = (size_t)kv->kv_dim;
    if (kv->type == GG_TYPE_F32) {
        float *kd = (float *)kv->k + (size_t)c * n, *vd = (float *)kv->v;
        memcpy(kd, k, n * sizeof(float));
        for (size_t d = 0; d < n; d++)
            vd[d * (size_t)kv->n_cells + (size_t)c] = v[d];
        return;
    }
    uint16_t *kd = (uint16_t *)kv->k + (size_t)c * n, *vd = (uint16_t *)kv->v;
    const struct kern_type_ops *f16 = kern_ops(GG_TYPE_F16);
    if (f16 && f16->quantize_act) {
        f16->quantize_act(k, kd, (int64_t)n); /* SIMD, round to nearest even */
    } else {
        for (size_t i = 0; i < n; i++)
            kd[i] = kern_fp32_to_fp16(k[i]);
    }
    for (size_t d = 0; d < n; d++)
        vd[d * (size_t)kv->n_cells + (size_t)c] = kern_fp32_to_fp16(v[d]);
}

struct store_task {
    const struct backend_attn_store *a;
    struct cpu_attn_scratch *sc;
};

static void store_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    const struct store_task *t = ud;
    const struct backend_attn_store *a = t->a;
    const struct backend_tokens *tok = a->tok;
    const int hd = a->head_dim, Dq = a->n_head * hd, Dkv = a->n_head_kv * hd;
    float *rc = t->sc->rope + (size_t)ith * (t->sc->n_rot + 2);
    for (int64_t i = i0; i < i1; i++) {
        float *q = a->q + (size_t)i * Dq, *k = a->k + (size_t)i * Dkv, *v = a->v + (size_t)i * Dkv;
        if (a->bq)
            for (int d = 0; d < Dq; d++)
                q[d] += a->bq[d];
        if (a->bk)
            for (int d = 0; d < Dkv; d++)
                k[d] += a->bk[d];
        if (a->bv)
            for (int d = 0; d < Dkv; d++)
                v[d] += a->bv[d];
        if (a->q_norm)
            for (int h = 0; h < a->n_head; h++)
                backend_cpu_rmsnorm_row(q + (size_t)h * hd, q + (size_t)h * hd, a->q_norm, hd, a->eps);
        if (a->k_norm)
            for (int h = 0; h < a->n_head_kv; h++)
                backend_cpu_rmsnorm_row(k + (size_t)h * hd, k + (size_t)h * hd, a->k_norm, hd, a->eps);
        if (a->n_rot > 0) {
            rope_cache(rc, a->n_rot, (float)tok->pos[i], a->freq_base, a->freq_scale, a->factors, a->attn_factor);
            for (int h = 0; h < a->n_head; h++)
                kern_rope(q + (size_t)h * hd, rc, a->n_rot, a->neox);
            for (int h = 0; h < a->n_head_kv; h++)
                kern_rope(k + (size_t)h * hd, rc, a->n_rot, a->neox);
        }
        if (a->q_scale != 1.0f) /* ggml_scale of q before the attention (gemma3, phi3) */
            for (int d = 0; d < Dq; d++)
                q[d] *= a->q_scale;
        if (tok->ring > 0) { /* both copies of the ring slot */
            const int c = tok->cell0[i] + tok->pos[i] % tok->ring;
            kv_put(&a->kv, c, k, v);
            kv_put(&a->kv, c + tok->ring, k, v);
        } else {
            kv_put(&a->kv, tok->cell0[i] + tok->pos[i], k, v);
        }
    }
}

/* Zero V of cells [c0, c1) (below hwm: cells never written are still zero). */
static void zero_v(const struct backend_kv *kv, int c0, int c1)
{
    const size_t elt = kv->type == GG_TYPE_F32 ? 4 : 2;
    c1 = SP_MIN(c1, kv->hwm);
    if (c0 >= c1)
        return;
    for (int d = 0; d < kv->kv_dim; d++)
        memset((char *)kv->v + ((size_t)d * (size_t)kv->n_cells + (size_t)c0) * elt, 0, (size_t)(c1 - c0) * elt);
}

void backend_cpu_attn_store(struct backend *be, const struct backend_attn_store *a)
{
    const struct backend_tokens *tok = a->tok;
    const struct backend_kv *kv = &a->kv;
    const int64_t n = tok->n;
    struct store_task t = {a, *backend_cpu_attn_slot(be)};
    const double work = (double)n * (double)(a->n_head + a->n_head_kv) * a->head_dim * 8.0;
    backend_cpu_parallel_for(be, store_range, &t, n, 1, work);
    /* zero V in each sequence's padding after its last token (cells never
     * written, >= hwm, are still zero); in a ring, position by position (the
     * ring is sized so that these slots hold no position a window reads) */
    for (int64_t r = 0; r < n; r++) {
        if (r + 1 < n && tok->cell0[r + 1] == tok->cell0[r] && tok->pos[r + 1] == tok->pos[r] + 1)
            continue;
        const int p_end = attn_pad(tok, tok->pos[r]);
        if (tok->ring == 0) {
            zero_v(kv, tok->cell0[r] + tok->pos[r] + 1, tok->cell0[r] + p_end);
            continue;
        }
        for (int p = tok->pos[r] + 1; p < p_end; p++) {
            const int c = tok->cell0[r] + p % tok->ring;
            zero_v(kv, c, c + 1);
            zero_v(kv, c + tok->ring, c + tok->ring + 1);
        }
    }
}

struct attn_task {
    const struct backend_attention *a;
    struct cpu_attn_scratch *sc;
    int per; /* query heads per item */
};

static void attention_range(void *ud, int ith, int64_t it0, int64_t it1)
{
    const struct attn_task *t = ud;
    const struct backend_attention *a = t->a;
    const struct backend_tokens *tok = a->tok;
    const struct backend_kv *kv = &a->kv;
    const struct cpu_attn_scratch *scr = t->sc;
    const int hd = a->head_dim, Dq = a->n_head * hd, Dkv = a->n_head_kv * hd;
    const bool f16 = kv->type == GG_TYPE_F16;
    const size_t elt = f16 ? 2 : 4;
    const int group = a->n_head / a->n_head_kv;
    const size_t nc = (size_t)scr->max_ctx;
    float *sc = scr->scores + (size_t)ith * scr->max_group * nc;     /* [group][max_ctx] */
    uint16_t *p16 = scr->p16 + (size_t)ith * scr->max_group * nc;    /* [group][max_ctx] */
    float *qx = (float *)scr->qx + (size_t)ith * scr->max_group * hd; /* [group][hd] */
    const struct kern_type_ops *ops = kern_ops(f16 ? GG_TYPE_F16 : GG_TYPE_F32);
    const size_t kstride = (size_t)Dkv * elt, vstride = (size_t)kv->n_cells * elt;
    const int per = t->per;
    const int items_per_tok = a->n_head / per;
    for (int64_t item = it0; item < it1; item++) {
        const int64_t i = item / items_per_tok;
        const int h0 = (int)(item % items_per_tok) * per, g = h0 / group;
        const int n_kv = tok->pos[i] + 1, n_pad = attn_pad(tok, tok->pos[i]), cell0 = tok->cell0[i];
        /* sliding window: positions p of the sequence with pos - p >= n_swa are masked */
        const int lo = a->n_swa > 0 ? SP_MAX(0, n_kv - a->n_swa) : 0;
        /* and are skipped from j0 (a multiple of 64 below lo): every sum keeps
         * its lanes and tail, the skipped terms were exact zeros, so a local
         * layer costs its window, not the context, with the same bits */
        const int j0 = lo / 64 * 64;
        /* llama.cpp's KQ is [n_pad rows of K] x q, its KQV [hd rows of V^T] x kq,
         * for the tokens of this sequence's chunk */
        /* with an F32 cache K.q is always in vec_dot order: ggml hands tinyBLAS
         * only a contiguous q (its permuted q is copied contiguous only when
         * the cache type differs from F32) */
        const kern_gemm_fn gemm_k = f16 ? kern_pick_gemm(ops, n_pad, hd, tok->cnt[i]) : ops->gemm;
        const kern_gemm_fn gemm_v = kern_pick_gemm(ops, hd, n_pad, tok->cnt[i]);
        /* over an F16 cache q and p go as F32 halves, the same bits (kern_hx_gemm) */
        const kern_gemm_fn k_hx = f16 ? kern_hx_gemm(ops, gemm_k) : NULL;
        const kern_gemm_fn v_hx = f16 ? kern_hx_gemm(ops, gemm_v) : NULL;
        const float *q = a->q + (size_t)i * Dq + (size_t)h0 * hd;
        float *out = a->out + (size_t)i * Dq + (size_t)h0 * hd;
        /* the cell of position j0: positions [j0, n_pad) are contiguous from
         * there (in a ring too: n_pad - j0 <= window + 94 <= ring) */
        assert(tok->ring == 0 || n_pad - j0 <= tok->ring);
        const int cs = cell0 + (tok->ring > 0 ? j0 % tok->ring : j0);
        const char *kg = (const char *)kv->k + ((size_t)cs * (size_t)Dkv + (size_t)g * hd) * elt;
        const char *vg = (const char *)kv->v + ((size_t)g * hd * (size_t)kv->n_cells + (size_t)cs) * elt;
        /* scores[b][j] = K[j] . q_b for j in [j0, n_kv) (one dot per output:
         * the same bits whatever row the call starts at) */
        if (k_hx) {
            kern_round_fp16_row(q, qx, (int64_t)per * hd);
            k_hx(hd, 0, n_kv - j0, per, kg, kstride, qx, (size_t)hd * 4, sc + j0, nc);
        } else if (f16) {
            uint16_t *q16 = (uint16_t *)(void *)qx;
            kern_fp32_to_fp16_row(q, q16, (int64_t)per * hd);
            gemm_k(hd, 0, n_kv - j0, per, kg, kstride, q16, (size_t)hd * 2, sc + j0, nc);
        } else {
            gemm_k(hd, 0, n_kv - j0, per, kg, kstride, q, (size_t)hd * 4, sc + j0, nc);
        }
        for (int b = 0; b < per; b++) {
            float *row = sc + (size_t)b * nc;
            float mx = -INFINITY;
            for (int j = j0; j < lo; j++)
                row[j] = -INFINITY;
            if (n_kv > lo)
                mx = kern_scale_max_row(row + lo, n_kv - lo, a->scale);
            for (int j = n_kv; j < n_pad; j++)
                row[j] = -INFINITY; /* causal mask and padding */
            const float inv = (float)(1.0 / kern_softmax_exp(n_pad - j0, row + j0, row + j0, mx));
            kern_scale_row(row + j0, n_pad - j0, inv);
            if (v_hx)
                kern_round_fp16_row(row + j0, row + j0, n_pad - j0);
            else if (f16)
                kern_fp32_to_fp16_row(row + j0, p16 + (size_t)b * nc + j0, n_pad - j0);
        }
        /* out_b[d] = V^T[d] . p_b over the (padded) positions */
        if (v_hx)
            v_hx(n_pad - j0, 0, hd, per, vg, vstride, sc + j0, nc * 4, out, (size_t)hd);
        else if (f16)
            gemm_v(n_pad - j0, 0, hd, per, vg, vstride, p16 + j0, nc * 2, out, (size_t)hd);
        else
            gemm_v(n_pad - j0, 0, hd, per, vg, vstride, sc + j0, nc * 4, out, (size_t)hd);
    }
}

void backend_cpu_attention(struct backend *be, const struct backend_attention *a)
{
    const struct backend_tokens *tok = a->tok;
    const int group = a->n_head / a->n_head_kv;
    const int per = tok->n * a->n_head_kv >= 4 * (int64_t)be->n_threads ? group : 1;
    struct attn_task t = {a, *backend_cpu_attn_slot(be), per};
    double work = 0;
    for (int64_t r = 0; r < tok->n; r++)
        work += (double)a->n_head * (tok->pos[r] + 1) * a->head_dim * 4.0;
    backend_cpu_parallel_for(be, attention_range, &t, tok->n * (a->n_head / per), 1, work);
}
