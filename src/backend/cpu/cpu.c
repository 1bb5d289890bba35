/* cpu.c - the CPU backend: a persistent pthread pool and the batched matmul.
 *
 * Pool: n_threads - 1 workers plus the calling thread. A task is posted by
 * storing (fn, ud) and bumping an atomic generation counter; workers spin on
 * the counter for a while (no syscall on the hot path) and only after ~2 ms of
 * idleness sleep on a condition variable (the poster signals only when a
 * worker sleeps: n_sleeping is read after the generation bump, both seq_cst,
 * so a wake-up cannot be lost). The caller runs ith = 0 and then spins until
 * every worker has reported done. backend_barrier is a sense-reversing spin
 * barrier (phase counter) usable inside tasks.
 *
 * Matmul: the activation rows are quantized once per distinct vec_dot_type of
 * the weights (rows split across threads), a barrier, then each weight's rows
 * are split across the threads in chunks of 16 and handed to the kernels'
 * batched gemm, which streams each weight row once for the whole batch. */
#include "backend/backend.h"
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
#define CPU_ROW_CHUNK 16

struct cpu_backend;

struct cpu_worker {
    struct cpu_backend *cb;
    int ith;
    pthread_t thread;
    bool started;
};

struct mm_task {
    const struct backend_mm *mms;
    size_t n_mm;
    const float *x;
    int64_t n_batch;
    size_t x_stride;
};

struct cpu_backend {
    struct backend base;
    struct cpu_worker *workers; /* n_threads - 1 */
    /* task posting */
    backend_task_fn fn;
    void *ud;
    _Atomic uint32_t gen;
    _Atomic int n_done;
    _Atomic int n_sleeping;
    _Atomic bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_ok;
    /* barrier */
    int cur_nth; /* threads of the running task */
    _Atomic int bar_count;
    _Atomic uint32_t bar_phase;
    /* matmul scratch: quantized activations */
    void *qbuf;
    size_t qbuf_bytes;
    struct mm_task mm;
};

static void *cpu_worker_main(void *arg)
{
    struct cpu_worker *w = arg;
    struct cpu_backend *cb = w->cb;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = atomic_load(&cb->gen);
        if (g == seen && !atomic_load(&cb->stop)) {
            uint64_t t0 = sp_now_ns();
            unsigned spins = 0;
            while ((g = atomic_load(&cb->gen)) == seen && !atomic_load(&cb->stop)) {
                CPU_RELAX();
                if ((++spins & 255u) == 0 && sp_now_ns() - t0 > CPU_SPIN_NS) {
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
        seen = g;
        cb->fn(cb->ud, w->ith, cb->base.n_threads);
        atomic_fetch_add(&cb->n_done, 1);
    }
    return NULL;
}

static void cpu_parallel(struct backend *be, backend_task_fn fn, void *ud, double work)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    int nth = be->n_threads;
    if (nth == 1 || work < BACKEND_MIN_PARALLEL_WORK) {
        cb->cur_nth = 1;
        fn(ud, 0, 1);
        return;
    }
    cb->cur_nth = nth;
    cb->fn = fn;
    cb->ud = ud;
    atomic_store(&cb->n_done, 0);
    atomic_fetch_add(&cb->gen, 1);
    if (atomic_load(&cb->n_sleeping) > 0) {
        pthread_mutex_lock(&cb->mu);
        pthread_cond_broadcast(&cb->cv);
        pthread_mutex_unlock(&cb->mu);
    }
    fn(ud, 0, nth);
    unsigned spins = 0;
    while (atomic_load(&cb->n_done) != nth - 1) {
        CPU_RELAX();
        if ((++spins & 4095u) == 0)
            sched_yield(); /* oversubscribed machine: let the workers run */
    }
}

void backend_barrier(struct backend *be)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    int nth = cb->cur_nth;
    if (nth <= 1)
        return;
    uint32_t phase = atomic_load(&cb->bar_phase);
    if (atomic_fetch_add(&cb->bar_count, 1) + 1 == nth) {
        atomic_store(&cb->bar_count, 0);
        atomic_fetch_add(&cb->bar_phase, 1);
        return;
    }
    unsigned spins = 0;
    while (atomic_load(&cb->bar_phase) == phase) {
        CPU_RELAX();
        if ((++spins & 4095u) == 0)
            sched_yield();
    }
}

static void split_rows(int64_t rows, int ith, int nth, int64_t *r0, int64_t *r1)
{
    int64_t chunks = (rows + CPU_ROW_CHUNK - 1) / CPU_ROW_CHUNK;
    int64_t c0 = chunks * ith / nth, c1 = chunks * (ith + 1) / nth;
    *r0 = SP_MIN(rows, c0 * CPU_ROW_CHUNK);
    *r1 = SP_MIN(rows, c1 * CPU_ROW_CHUNK);
}

static void cpu_mm_task(void *ud, int ith, int nth)
{
    struct cpu_backend *cb = ud;
    const struct mm_task *t = &cb->mm;
    int64_t k = t->mms[0].w->k;
    bool done[4] = {false, false, false, false};
    for (size_t i = 0; i < t->n_mm; i++) {
        if (done[i])
            continue;
        enum gg_type vdt = t->mms[i].w->ops->vec_dot_type;
        const void *qx = t->x;
        size_t qstride = t->x_stride * sizeof(float);
        if (vdt != GG_TYPE_F32) {
            const struct kern_type_ops *qo = kern_ops(vdt);
            size_t rb = 0;
            (void)gg_row_size(vdt, k, &rb);
            for (int64_t b = ith; b < t->n_batch; b += nth)
                qo->quantize_act(t->x + b * t->x_stride, (char *)cb->qbuf + b * rb, k);
            qx = cb->qbuf;
            qstride = rb;
            backend_barrier(&cb->base);
        }
        for (size_t j = i; j < t->n_mm; j++) {
            const struct backend_weight *w = t->mms[j].w;
            if (done[j] || w->ops->vec_dot_type != vdt)
                continue;
            done[j] = true;
            int64_t r0, r1;
            split_rows(w->rows, ith, nth, &r0, &r1);
            if (r1 > r0)
                w->ops->gemm(k, r0, r1, t->n_batch, w->data, w->row_bytes, qx, qstride, t->mms[j].y,
                             t->mms[j].y_stride);
        }
        if (vdt != GG_TYPE_F32)
            backend_barrier(&cb->base); /* qbuf is reused by the next group */
    }
}

static void cpu_matmul(struct backend *be, const struct backend_mm *mms, size_t n_mm, const float *x,
                       int64_t n_batch, size_t x_stride)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    if (n_mm == 0 || n_batch <= 0)
        return;
    cb->mm = (struct mm_task){mms, SP_MIN(n_mm, (size_t)4), x, n_batch, x_stride};
    double work = 0;
    for (size_t i = 0; i < cb->mm.n_mm; i++)
        work += (double)mms[i].w->rows * (double)mms[i].w->k * (double)n_batch;
    cpu_parallel(be, cpu_mm_task, cb, work);
}

static void cpu_free(struct backend *be)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    if (cb->workers) {
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
    sp_free(cb);
}

static const struct backend_ops cpu_ops = {
    .name = "cpu",
    .parallel = cpu_parallel,
    .matmul = cpu_matmul,
    .free = cpu_free,
};

size_t backend_cpu_scratch_bytes(int64_t max_k, int64_t max_batch)
{
    /* the widest vec_dot_type row is F16/BF16: 2 bytes per element (Q8_x < 1.2) */
    size_t n;
    if (max_k <= 0 || max_batch <= 0 || !sp_mul_size((size_t)max_k, (size_t)max_batch, &n) ||
        !sp_mul_size(n, 2, &n))
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

enum sp_status backend_weight_bind(struct backend_weight *w, enum gg_type type, int64_t k, int64_t rows,
                                   const void *data, struct sp_err *err)
{
    memset(w, 0, sizeof(*w));
    const struct kern_type_ops *ops = kern_ops(type);
    if (!ops || !ops->gemm)
        return sp_err_set(err, SP_ERR_UNSUPPORTED, "tensor type %s has no matmul kernel", gg_type_name(type));
    if (ops->vec_dot_type != GG_TYPE_F32) {
        const struct kern_type_ops *q = kern_ops(ops->vec_dot_type);
        if (!q || !q->quantize_act)
            return sp_err_set(err, SP_ERR_UNSUPPORTED, "activation type %s for %s has no quantizer",
                              gg_type_name(ops->vec_dot_type), gg_type_name(type));
    }
    size_t rb;
    if (!gg_row_size(type, k, &rb))
        return sp_err_set(err, SP_ERR_FORMAT, "row of %lld elements is not a whole number of %s blocks",
                          (long long)k, gg_type_name(type));
    w->type = type;
    w->k = k;
    w->rows = rows;
    w->row_bytes = rb;
    w->data = data;
    w->ops = ops;
    return SP_OK;
}
