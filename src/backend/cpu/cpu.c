/* cpu.c - the CPU backend: a persistent pthread pool and the batched matmul.
 *
 * Pool: n_threads - 1 workers plus the calling thread, no barriers. A task
 * is (fn, ud, n items, grain) with the items cut into one contiguous segment
 * per thread (equal counts, or a matmul's cost-balanced chunk ranges).
 * Each thread claims `grain` items at a time from the front of its own
 * segment, then steals from the back of the others' (a segment is one
 * atomic word, front | back << 32, changed by compare-exchange), and adds
 * what it finished to a done counter; the caller claims too and returns
 * once done == n. A thread's claims are consecutive, so its matmul streams
 * one run of weight memory per call (the hardware prefetcher keeps going
 * across its chunk boundaries; claims from one shared counter interleaved
 * the threads' chunks, and decode was 5-15 % slower, docs/ARCHITECTURE.md),
 * and a worker that the OS has descheduled (2 cores shared by many
 * processes) delays nothing unless it is in the middle of a chunk: the
 * others take the rest of its segment.
 * Posting is a seqlock on the generation counter: odd while the caller
 * rewrites the task fields (after waiting until no worker is active on the
 * previous task), even when ready; a worker marks itself active and then
 * re-checks the generation, so it never runs a half-written task (both sides
 * use seq_cst atomics: Dekker-style). Idle workers spin ~2 ms (no syscall
 * on the hot path), then sleep on a condition variable; the caller signals
 * only when someone sleeps. When the caller keeps waiting for workers that
 * the OS does not schedule (over half of recent task time), the next 256
 * tasks run on the caller alone, then threads are tried again.
 *
 * Matmul: the activation rows are quantized once per distinct vec_dot_type
 * of the weights (rows split across threads when there are several), then
 * the rows of all the weights of that group are cut into one segment per
 * thread of equal cost (weight bytes) and each segment into chunks (guided:
 * smaller towards its end, so the chunks stolen last are small and no core
 * idles through a large one) handed to the kernels' batched gemm,
 * which streams each weight row once for the whole batch (batches of
 * KERN_GEMM_WS_MIN_BATCH rows or more go to the panel gemm, ops->gemm_ws,
 * with the claiming thread's workspace). A weight the device repacked at
 * load (w->grp_rows > 0: Q4_0, Q5_0, Q8_0 on AVX-512) has one gemm, of one order, for
 * every batch size, decode included (ops->rp->gemm), cut in whole groups. */
#include "backend/cpu/cpu_impl.h"
#include "obs/log.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define CPU_SPIN_NS 2000000ull /* idle spin before sleeping */
/* Matmul chunks (cost-guided, see mm_make_chunks): whole groups of rows
 * (the decode kernels take 4 rows per pass, the batch panels 8 or 16), at
 * least CPU_MIN_CHUNK_BYTES of weights each, at most CPU_MAX_CHUNKS per call. */
#define CPU_ROW_ALIGN_VEC 4
#define CPU_ROW_ALIGN_BATCH 16
#define CPU_MIN_CHUNK_BYTES (16.0 * 1024)
#define CPU_MAX_CHUNKS 256
/* threads owning a segment of a task (more threads share them) */
#define CPU_MAX_SEGS 64

/* Spin iterations between sched_yield calls while idle (power of two - 1):
 * on a quiet machine sched_yield returns at once; on an oversubscribed one
 * it hands the core to a thread with real work (measured on 2 shared cores:
 * 2 threads went from half the speed of 1 thread to 1.5-2x faster). */
static const unsigned g_yield_mask = 63u;

struct cpu_backend;

struct cpu_worker {
    struct cpu_backend *cb;
    int ith;
    pthread_t thread;
    bool started;
};

struct mm_group {
    const struct backend_mm *mms[4];
    kern_gemm_fn gemm[4]; /* per mm: the kernel llama.cpp's rule picks (kern_pick_gemm) */
    kern_gemm_ws_fn gemm_ws[4]; /* per mm: the panel gemm for large batches, or NULL */
    struct mm_chunk {
        int32_t mm;
        int64_t r0, r1;
    } chunk[CPU_MAX_CHUNKS];
    size_t n;
    const void *qx;
    size_t qstride;
    int64_t k, n_batch;
    /* quantization phase */
    const float *x;
    size_t x_stride;
    enum gg_type vdt;
    bool hx; /* F16 weights: the activations as F32 halves (kern_hx_gemm) */
    size_t q_row_bytes;
};

struct cpu_backend {
    struct backend base;
    struct cpu_worker *workers; /* n_threads - 1 */
    /* the posted task (stable while gen is even and a worker is active) */
    backend_range_fn fn;
    void *ud;
    int64_t grain;
    struct cpu_seg {
        _Atomic uint64_t fb; /* front | back << 32: the items [front, back) not yet claimed */
        char pad[64 - sizeof(uint64_t)];
    } seg[CPU_MAX_SEGS];
    _Atomic int64_t done;
    _Atomic uint64_t gen;
    _Atomic int active;
    _Atomic int n_sleeping;
    _Atomic bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_ok;
    /* oversubscription guard: moving average of the fraction of a task the
     * caller spent waiting for workers; above 1/2 tasks run on the caller
     * alone for a while (the OS is not giving the workers a CPU) */
    double wait_ema;
    int solo_left;
    /* matmul scratch: quantized activations */
    void *qbuf;
    size_t qbuf_bytes;
    void *ws; /* n_threads x KERN_GEMM_WS_BYTES: per-thread gemm panels */
    struct mm_group grp;
    struct cpu_attn_scratch *attn; /* attention scratch (cpu_attn.c), or NULL */
};

/* The segments a task is cut into: one per thread, up to CPU_MAX_SEGS. */
static int cpu_n_segs(const struct backend *be) { return SP_MIN(be->n_threads, CPU_MAX_SEGS); }

/* Claims up to grain items of segment sg, from its front or its back; false
 * when it is empty. */
static bool seg_claim(struct cpu_seg *sg, int64_t grain, bool back, int64_t *i0, int64_t *i1)
{
    uint64_t v = atomic_load(&sg->fb);
    for (;;) {
        const int64_t f = (int64_t)(v & 0xFFFFFFFFu), b = (int64_t)(v >> 32);
        if (f >= b)
            return false;
        const int64_t a = back ? SP_MAX(f, b - grain) : f, z = back ? b : SP_MIN(b, f + grain);
        const uint64_t nv = back ? (uint64_t)f | (uint64_t)a << 32 : (uint64_t)z | (uint64_t)b << 32;
        if (atomic_compare_exchange_weak(&sg->fb, &v, nv)) {
            *i0 = a;
            *i1 = z;
            return true;
        }
    }
}

/* The own segment front to back, then the others' from their backs (a
 * segment never refills, so one pass over them finds every item left). */
static void run_chunks(struct cpu_backend *cb, backend_range_fn fn, void *ud, int ith, int64_t grain)
{
    const int ns = cpu_n_segs(&cb->base), own = ith % ns;
    int64_t i0, i1;
    for (int d = 0; d < ns; d++) {
        struct cpu_seg *sg = &cb->seg[(own + d) % ns];
        while (seg_claim(sg, grain, d > 0, &i0, &i1)) {
            fn(ud, ith, i0, i1);
            atomic_fetch_add(&cb->done, i1 - i0);
        }
    }
}

static void *cpu_worker_main(void *arg)
{
    struct cpu_worker *w = arg;
    struct cpu_backend *cb = w->cb;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = atomic_load(&cb->gen);
        if (g == seen || (g & 1)) {
            uint64_t t0 = sp_now_ns();
            unsigned spins = 0;
            while (((g = atomic_load(&cb->gen)) == seen || (g & 1)) && !atomic_load(&cb->stop)) {
                CPU_RELAX();
                if ((++spins & g_yield_mask) == 0)
                    sched_yield(); /* give the CPU away if someone else is runnable */
                if ((spins & 255u) == 0 && sp_now_ns() - t0 > CPU_SPIN_NS) {
                    pthread_mutex_lock(&cb->mu);
                    atomic_fetch_add(&cb->n_sleeping, 1);
                    while (atomic_load(&cb->gen) == seen && !atomic_load(&cb->stop))
                        pthread_cond_wait(&cb->cv, &cb->mu);
                    atomic_fetch_sub(&cb->n_sleeping, 1);
                    pthread_mutex_unlock(&cb->mu);
                    t0 = sp_now_ns();
                }
            }
        }
        if (atomic_load(&cb->stop))
            break;
        atomic_fetch_add(&cb->active, 1);
        if (atomic_load(&cb->gen) != g) {
            atomic_fetch_sub(&cb->active, 1);
            continue;
        }
        seen = g;
        run_chunks(cb, cb->fn, cb->ud, w->ith, cb->grain);
        atomic_fetch_sub(&cb->active, 1);
    }
    return NULL;
}

/* Runs fn over items [0, n) on the pool; bounds (cpu_n_segs + 1 entries, from 0
 * to n) cuts them into the threads' segments, NULL: equal counts. */
static void pool_run(struct cpu_backend *cb, backend_range_fn fn, void *ud, int64_t n, int64_t grain, double work,
                     const int64_t *bounds)
{
    struct backend *be = &cb->base;
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    if (be->n_threads == 1 || work < BACKEND_MIN_PARALLEL_WORK || n <= grain || cb->solo_left > 0 ||
        n > (int64_t)INT32_MAX) {
        if (cb->solo_left > 0 && work >= BACKEND_MIN_PARALLEL_WORK)
            cb->solo_left--;
        fn(ud, 0, 0, n);
        return;
    }
    /* seqlock: odd = writing; wait for stragglers of the previous task */
    atomic_fetch_add(&cb->gen, 1);
    unsigned spins = 0;
    while (atomic_load(&cb->active) != 0)
        if ((++spins & 1023u) == 0)
            sched_yield();
    cb->fn = fn;
    cb->ud = ud;
    cb->grain = grain;
    const int ns = cpu_n_segs(be);
    for (int t = 0; t < ns; t++) {
        const int64_t f = bounds ? bounds[t] : n * t / ns, b = bounds ? bounds[t + 1] : n * (t + 1) / ns;
        atomic_store(&cb->seg[t].fb, (uint64_t)f | (uint64_t)b << 32);
    }
    atomic_store(&cb->done, 0);
    atomic_fetch_add(&cb->gen, 1);
    if (atomic_load(&cb->n_sleeping) > 0) {
        pthread_mutex_lock(&cb->mu);
        pthread_cond_broadcast(&cb->cv);
        pthread_mutex_unlock(&cb->mu);
    }
    uint64_t t0 = sp_now_ns();
    run_chunks(cb, fn, ud, 0, grain);
    uint64_t t1 = sp_now_ns();
    spins = 0;
    while (atomic_load(&cb->done) < n) {
        CPU_RELAX();
        if ((++spins & 255u) == 0)
            sched_yield(); /* a worker holding a chunk was descheduled */
    }
    if (spins > 0) {
        uint64_t t2 = sp_now_ns();
        double frac = (double)(t2 - t1) / (double)(t2 - t0 + 1);
        cb->wait_ema = 0.9 * cb->wait_ema + 0.1 * frac;
    } else {
        cb->wait_ema *= 0.9;
    }
    if (cb->wait_ema > 0.5) {
        cb->solo_left = 256;
        cb->wait_ema = 0;
        LOG_DEBUG("backend", "workers are not getting a CPU; running single-threaded for a while");
    }
}

static void cpu_parallel_for(struct backend *be, backend_range_fn fn, void *ud, int64_t n, int64_t grain, double work)
{
    pool_run((struct cpu_backend *)be, fn, ud, n, grain, work, NULL);
}

static void mm_quant_range(void *ud, int ith, int64_t b0, int64_t b1)
{
    SP_UNUSED(ith);
    struct cpu_backend *cb = ud;
    const struct mm_group *g = &cb->grp;
    const struct kern_type_ops *qo = kern_ops(g->vdt);
    for (int64_t b = b0; b < b1; b++) {
        void *dst = (char *)cb->qbuf + b * g->q_row_bytes;
        if (g->hx)
            kern_round_fp16_row(g->x + b * g->x_stride, dst, g->k);
        else
            qo->quantize_act(g->x + b * g->x_stride, dst, g->k);
    }
}

static void mm_gemm_range(void *ud, int ith, int64_t c0, int64_t c1)
{
    struct cpu_backend *cb = ud;
    const struct mm_group *g = &cb->grp;
    for (int64_t c = c0; c < c1; c++) {
        const size_t j = (size_t)g->chunk[c].mm;
        const struct backend_mm *mm = g->mms[j];
        const struct backend_weight *w = mm->w;
        const int64_t r0 = g->chunk[c].r0, r1 = g->chunk[c].r1;
        if (r1 > r0 && g->gemm_ws[j])
            g->gemm_ws[j](g->k, r0, r1, g->n_batch, w->data, w->grp_rows > 0 ? w->grp_bytes : w->row_bytes, g->qx,
                          g->qstride, mm->y, mm->y_stride, (char *)cb->ws + (size_t)ith * KERN_GEMM_WS_BYTES);
        else if (r1 > r0)
            g->gemm[j](g->k, r0, r1, g->n_batch, w->data, w->row_bytes, g->qx, g->qstride, mm->y, mm->y_stride);
    }
}

/* Cuts the group's rows into n_segs segments of equal cost (weight bytes;
 * every row meets the same activations), one per thread, and each segment
 * into chunks: each takes half of the segment's cost still left after it
 * (guided: ever smaller chunks towards the segment's end, which is where
 * other threads steal, so whoever takes the last chunk finishes soon after
 * the others), at most 1/(4 n_segs) of the total (a worker the OS
 * deschedules while it holds a chunk delays the call by at most that), at
 * least CPU_MIN_CHUNK_BYTES (or 1/64 of the total when that is larger,
 * which bounds the count) and whole row groups; chunks do not span matrices.
 * bounds[s] is segment s's first chunk, bounds[n_segs] the count
 * (<= CPU_MAX_CHUNKS), which it returns. */
static int64_t mm_make_chunks(struct mm_group *g, int n_segs, int64_t *bounds)
{
    double total = 0;
    for (size_t j = 0; j < g->n; j++)
        total += (double)g->mms[j]->w->rows * (double)g->mms[j]->w->row_bytes;
    const double min_cost = SP_MAX(CPU_MIN_CHUNK_BYTES, total / 64.0);
    const double max_cost = total / (4.0 * n_segs);
    double pos = 0, seg_end = total / n_segs;
    int seg = 0;
    int64_t n = 0;
    bounds[0] = 0;
    for (size_t j = 0; j < g->n; j++) {
        const struct backend_weight *w = g->mms[j]->w;
        /* whole groups of a repacked weight */
        const int64_t align = w->grp_rows > 0 ? w->grp_rows
                                              : g->n_batch == 1 ? CPU_ROW_ALIGN_VEC : CPU_ROW_ALIGN_BATCH;
        const double rb = (double)SP_MAX(w->row_bytes, (size_t)1);
        for (int64_t r = 0; r < w->rows;) {
            while (seg < n_segs - 1 && pos >= seg_end) {
                bounds[++seg] = n;
                seg_end = total * (seg + 1) / n_segs;
            }
            const double left = seg_end - pos;
            const double want = SP_MAX(SP_MIN(left / 2.0, max_cost), min_cost);
            int64_t nr = (int64_t)(want / rb) + 1;
            nr = (nr + align - 1) / align * align;
            if (seg < n_segs - 1) { /* end at the segment's end (rounded up to a group), not past it */
                const int64_t to_end = ((int64_t)(left / rb) + 1 + align - 1) / align * align;
                nr = SP_MIN(nr, to_end);
            }
            /* keep a slot for every later matrix: the last free one takes the rest */
            if (n + (int64_t)(g->n - j) >= CPU_MAX_CHUNKS || nr > w->rows - r)
                nr = w->rows - r;
            g->chunk[n].mm = (int32_t)j;
            g->chunk[n].r0 = r;
            g->chunk[n].r1 = r + nr;
            n++;
            r += nr;
            pos += (double)nr * rb;
        }
    }
    while (seg < n_segs - 1)
        bounds[++seg] = n;
    bounds[n_segs] = n;
    return n;
}

static void cpu_matmul_order(struct backend *be, const struct backend_mm *mms, size_t n_mm, const float *x,
                             int64_t n_batch, size_t x_stride, bool vec_order)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    if (n_mm == 0 || n_batch <= 0)
        return;
    n_mm = SP_MIN(n_mm, (size_t)4);
    const int64_t k = mms[0].w->k;
    bool done[4] = {false, false, false, false};
    for (size_t i = 0; i < n_mm; i++) {
        if (done[i])
            continue;
        struct mm_group *g = &cb->grp;
        memset(g, 0, sizeof(*g));
        g->vdt = mms[i].w->ops->vec_dot_type;
        g->k = k;
        g->n_batch = n_batch;
        double work = 0;
        for (size_t j = i; j < n_mm; j++) {
            if (done[j] || mms[j].w->ops->vec_dot_type != g->vdt)
                continue;
            done[j] = true;
            g->gemm[g->n] = vec_order ? mms[j].w->ops->gemm
                                      : kern_pick_gemm(mms[j].w->ops, mms[j].w->rows, k, n_batch);
            /* the panel gemm may sum in another order: not for vec_order
             * unless it gives the gemm's bits; a repacked weight has one
             * gemm, of one order, for every row */
            const struct kern_type_ops *o = mms[j].w->ops;
            if (mms[j].w->grp_rows > 0)
                g->gemm_ws[g->n] = o->rp->gemm;
            else
                g->gemm_ws[g->n] = (!vec_order || o->ws_exact) && kern_use_ws(o, n_batch) ? o->gemm_ws : NULL;
            g->mms[g->n++] = &mms[j];
            work += (double)mms[j].w->rows * (double)k * (double)n_batch;
        }
        /* F16 weights (every matrix of the group): the same sums from the
         * activations' F32 halves, converted once here instead of in every
         * tile or row (gemm_tb_hx, gemm_hx) */
        kern_gemm_fn hxg[SP_ARRAY_LEN(g->gemm)];
        g->hx = g->vdt == GG_TYPE_F16;
        for (size_t j = 0; j < g->n; j++) {
            hxg[j] = kern_hx_gemm(g->mms[j]->w->ops, g->gemm[j]);
            g->hx &= g->gemm_ws[j] == NULL && hxg[j] != NULL;
        }
        for (size_t j = 0; g->hx && j < g->n; j++)
            g->gemm[j] = hxg[j];
        /* quantize the activations once for this vec_dot_type */
        if (g->vdt == GG_TYPE_F32) {
            g->qx = x;
            g->qstride = x_stride * sizeof(float);
        } else {
            g->x = x;
            g->x_stride = x_stride;
            if (g->hx)
                g->q_row_bytes = (size_t)k * sizeof(float);
            else
                (void)gg_row_size(g->vdt, k, &g->q_row_bytes);
            cpu_parallel_for(be, mm_quant_range, cb, n_batch, 1, (double)n_batch * (double)k * 4.0);
            g->qx = cb->qbuf;
            g->qstride = g->q_row_bytes;
        }
        int64_t bounds[CPU_MAX_SEGS + 1];
        const int64_t nchunks = mm_make_chunks(g, cpu_n_segs(be), bounds);
        pool_run(cb, mm_gemm_range, cb, nchunks, 1, work, bounds);
    }
}

/* Rows [0, n_solo) in the 1-row order: a weight type with a second (batch)
 * order (F32/F16's tinyBLAS order, or a panel gemm that sums in another
 * order: Q4_0/Q5_0, the K-quants) gets the two row ranges in
 * two passes; the others one pass. The panel takes the prompt rows from its
 * ws_min_batch on, not fewer: forcing it on every prompt row (so a prompt's
 * bits would not depend on its chunking) made the small chunks that the
 * scheduler feeds beside running streams 2-5x slower per token (the panel's
 * per-call unpacking is amortized over few rows), and a 2000-token prompt
 * beside 4 streams took 177 s instead of 51 s (bench/serve.sh). */
static void cpu_matmul(struct backend *be, const struct backend_mm *mms, size_t n_mm, const float *x,
                       int64_t n_batch, int64_t n_solo, size_t x_stride)
{
    bool two_orders = false;
    n_mm = SP_MIN(n_mm, (size_t)4);
    const int64_t n_prompt = n_batch - SP_MAX(n_solo, (int64_t)0);
    for (size_t i = 0; i < n_mm; i++) {
        const struct kern_type_ops *o = mms[i].w->ops;
        /* a panel of its own order splits the rows only when the prompt rows
         * reach its batch size: below it they take the row kernels, whose
         * bits are vec_dot's, so decode and prompt rows share one pass over
         * the weight (a mixed step with a small prompt chunk streamed every
         * weight twice) */
        two_orders |= mms[i].w->grp_rows == 0 &&
                      (o->gemm_tb != NULL || (o->gemm_ws && !o->ws_exact && kern_use_ws(o, n_prompt)));
    }
    if (!two_orders || n_solo <= 0) {
        /* with decode rows in the pass, the 1-row order (no panel of another
         * order even if the whole batch reaches its size) */
        cpu_matmul_order(be, mms, n_mm, x, n_batch, x_stride, n_solo > 0);
        return;
    }
    n_solo = SP_MIN(n_solo, n_batch);
    cpu_matmul_order(be, mms, n_mm, x, n_solo, x_stride, true);
    if (n_solo == n_batch)
        return;
    struct backend_mm part[4];
    for (size_t i = 0; i < n_mm; i++) {
        part[i] = mms[i];
        part[i].y += (size_t)n_solo * mms[i].y_stride;
    }
    cpu_matmul_order(be, part, n_mm, x + (size_t)n_solo * x_stride, n_batch - n_solo, x_stride, false);
}

struct cpu_attn_scratch **backend_cpu_attn_slot(struct backend *be)
{
    return &((struct cpu_backend *)be)->attn;
}

void backend_cpu_parallel_for(struct backend *be, backend_range_fn fn, void *ud, int64_t n, int64_t grain,
                              double work)
{
    cpu_parallel_for(be, fn, ud, n, grain, work);
}

static void cpu_free(struct backend *be)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    if (cb->workers) {
        while (atomic_load(&cb->active) != 0)
            sched_yield();
        atomic_store(&cb->stop, true);
        pthread_mutex_lock(&cb->mu);
        pthread_cond_broadcast(&cb->cv);
        pthread_mutex_unlock(&cb->mu);
        for (int i = 0; i < be->n_threads - 1; i++)
            if (cb->workers[i].started)
                pthread_join(cb->workers[i].thread, NULL);
        sp_free(cb->workers);
    }
    if (cb->sync_ok) {
        pthread_cond_destroy(&cb->cv);
        pthread_mutex_destroy(&cb->mu);
    }
    sp_aligned_free(cb->qbuf);
    sp_aligned_free(cb->ws);
    backend_cpu_attn_free(cb->attn);
    sp_free(cb);
}

static const struct backend_ops cpu_ops = {
    .name = "cpu",
    .parallel_for = cpu_parallel_for,
    .matmul = cpu_matmul,
    .get_rows = backend_cpu_get_rows,
    .rms_norm = backend_cpu_rms_norm,
    .glu = backend_cpu_glu,
    .softcap = backend_cpu_softcap,
    .layer_norm = backend_cpu_layer_norm,
    .gelu = backend_cpu_gelu,
    .enc_attention = backend_cpu_enc_attention,
    .attn_store = backend_cpu_attn_store,
    .attention = backend_cpu_attention,
    .attn_reserve = backend_cpu_attn_reserve,
    .buf_alloc = backend_cpu_buf_alloc,
    .buf_free = backend_cpu_buf_free,
    .free = cpu_free,
};

size_t backend_cpu_scratch_bytes(int64_t max_k, int64_t max_batch)
{
    /* the widest activation row is F16 weights' F32 halves (gemm_tb_hx): 4
     * bytes per element (F16/BF16 2, Q8_x < 1.2); only what a batch writes
     * becomes resident */
    size_t n;
    if (max_k <= 0 || max_batch <= 0 || !sp_mul_size((size_t)max_k, (size_t)max_batch, &n) ||
        !sp_mul_size(n, 4, &n))
        return 64;
    return n + 64;
}

enum sp_status backend_cpu_new(int n_threads, int64_t max_k, int64_t max_batch, struct backend **out,
                               struct sp_err *err)
{
    enum sp_status result = SP_OK;
    *out = NULL;
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > 256)
        n_threads = 256;
    kern_init();
    struct cpu_backend *cb = sp_calloc(1, sizeof(*cb));
    if (!cb)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating the cpu backend");
    cb->base.ops = &cpu_ops;
    cb->base.n_threads = 1; /* raised once the workers exist */
    cb->qbuf_bytes = backend_cpu_scratch_bytes(max_k, max_batch);
    cb->qbuf = sp_aligned_alloc(64, cb->qbuf_bytes);
    if (!cb->qbuf) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory allocating %zu bytes of matmul scratch",
                            cb->qbuf_bytes);
        goto fail;
    }
    cb->ws = sp_aligned_alloc(64, (size_t)n_threads * KERN_GEMM_WS_BYTES);
    if (!cb->ws) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory allocating %d gemm workspaces", n_threads);
        goto fail;
    }
    if (pthread_mutex_init(&cb->mu, NULL) != 0) {
        result = sp_err_set(err, SP_ERR_INTERNAL, "pthread_mutex_init failed");
        goto fail;
    }
    if (pthread_cond_init(&cb->cv, NULL) != 0) {
        pthread_mutex_destroy(&cb->mu);
        result = sp_err_set(err, SP_ERR_INTERNAL, "pthread_cond_init failed");
        goto fail;
    }
    cb->sync_ok = true;
    if (n_threads > 1) {
        cb->workers = sp_calloc((size_t)n_threads - 1, sizeof(*cb->workers));
        if (!cb->workers) {
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory creating %d threads", n_threads);
            goto fail;
        }
        cb->base.n_threads = n_threads;
        for (int i = 0; i < n_threads - 1; i++) {
            cb->workers[i].cb = cb;
            cb->workers[i].ith = i + 1;
            if (pthread_create(&cb->workers[i].thread, NULL, cpu_worker_main, &cb->workers[i]) != 0) {
                result = sp_err_set(err, SP_ERR_INTERNAL, "could not start worker thread %d of %d", i + 1,
                                    n_threads);
                goto fail;
            }
            cb->workers[i].started = true;
        }
    }
    *out = &cb->base;
    return SP_OK;
fail:
    cpu_free(&cb->base);
    return result;
}

void backend_free(struct backend *be)
{
    if (be)
        be->ops->free(be);
}
