/* cpu_dev.c - the "cpu" kind's device: weights bound as copies on huge pages
 * (repacked where the kernels have a layout) or views, backends as thread
 * pools.
 *
 * A bind first fills a struct backend_weight view (type, row size and the
 * kernels' table for the type, checked to have a matmul and an activation
 * quantizer). A weight a matmul reads then gets an owned copy from
 * huge pages (2 MiB aligned and THP-advised, so a matmul streaming it
 * takes one TLB miss per 2 MiB instead of one per 4 KiB page of the file
 * mapping): sp_huge_alloc's own mapping from SP_HUGE_BYTES up, the device's
 * arena (sp_arena_alloc: packed into shared 32 MiB chunks) below. A type
 * whose kernels have a load-time layout (ops->rp: Q4_0, Q5_0, Q4_K; Q8_0,
 * Q6_K on AVX-512) is packed group by group of interleaved rows; any other
 * of at least CPU_COPY_MIN_BYTES is copied as it is (decode streamed 7-14 %
 * faster with the large ones on huge pages, 2-6 % more with the small ones
 * too, docs/ARCHITECTURE.md); smaller row-layout matrices stay views.
 * Release frees the copy; the loader drops the mapped pages it read (no
 * second resident copy) and seals the device once every weight is bound
 * (the arena's last chunk gives back what it did not fill). Weights no
 * matmul reads (BACKEND_USE_ROWS alone: an untied embedding, only whose
 * looked-up rows become resident) stay views. SPOKE_REPACK=0 keeps every
 * weight a view (read once per process; for comparing the layouts). The
 * device holds struct backend_device and the arena: each context's compute
 * backend is a backend_cpu_new pool. */
#include "backend/cpu/cpu_impl.h"
#include "base/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* row-layout matrices below this stay views: a few pages, one TLB reach */
#define CPU_COPY_MIN_BYTES ((size_t)256 << 10)

struct cpu_device {
    struct backend_device base;
    struct sp_arena arena; /* the copies below SP_HUGE_BYTES */
};

static bool g_repack = true;
static pthread_once_t g_repack_once = PTHREAD_ONCE_INIT;

static void repack_env(void)
{
    const char *e = getenv("SPOKE_REPACK");
    g_repack = !(e && strcmp(e, "0") == 0);
}

/* Whether binds repack the types that can be (SPOKE_REPACK). */
static bool repack_enabled(void)
{
    pthread_once(&g_repack_once, repack_env);
    return g_repack;
}

enum sp_status backend_cpu_weight_view(struct backend_weight *w, enum gg_type type, int64_t k, int64_t rows,
                                       const void *host, struct sp_err *err)
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
    w->data = host;
    w->ops = ops;
    return SP_OK;
}

static enum sp_status cpu_dev_bind(struct backend_device *dev, struct backend_weight *w, enum gg_type type,
                                   int64_t k, int64_t rows, const void *host, unsigned use, struct sp_err *err)
{
    struct cpu_device *cd = (struct cpu_device *)dev;
    enum sp_status result = backend_cpu_weight_view(w, type, k, rows, host, err);
    const struct kern_repack *rp = w->ops ? w->ops->rp : NULL;
    if (result != SP_OK || rows < 1 || !(use & BACKEND_USE_MATMUL) || !repack_enabled())
        return result;
    /* the copy: packed group by group where the kernels have a layout, as it
     * is otherwise (row layout, from CPU_COPY_MIN_BYTES up) */
    const int64_t ng = rp ? (rows + rp->rows - 1) / rp->rows : rows;
    const size_t gb = rp ? rp->group_bytes(k) : w->row_bytes;
    size_t bytes;
    if (!sp_mul_size((size_t)ng, gb, &bytes))
        return rp ? sp_err_set(err, SP_ERR_FORMAT, "a %lld x %lld weight is too large to repack", (long long)rows,
                               (long long)k)
                  : result;
    if (!rp && bytes < CPU_COPY_MIN_BYTES)
        return result;
    void *dst = sp_arena_alloc(&cd->arena, bytes); /* its own mapping from SP_HUGE_BYTES up */
    if (!dst)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory %s a %s weight (%zu bytes)", rp ? "repacking" : "copying",
                          gg_type_name(type), bytes);
    if (rp) {
        for (int64_t g = 0; g < ng; g++) {
            const int64_t r = g * rp->rows;
            rp->pack((const char *)host + (size_t)r * w->row_bytes, w->row_bytes,
                     SP_MIN((int64_t)rp->rows, rows - r), k, (char *)dst + (size_t)g * gb);
        }
        w->grp_rows = rp->rows;
        w->grp_bytes = gb;
    } else {
        memcpy(dst, host, bytes);
    }
    w->data = dst;
    w->owned = dst;
    w->owned_bytes = bytes;
    return SP_OK;
}

static void cpu_dev_release(struct backend_device *dev, struct backend_weight *w)
{
    (void)dev;
    sp_huge_free(w->owned); /* NULL for a view: the mapping belongs to the model's file */
}

static enum sp_status cpu_dev_backend_new(struct backend_device *dev, int n_threads, int64_t max_k,
                                          int64_t max_batch, struct backend **out, struct sp_err *err)
{
    (void)dev;
    return backend_cpu_new(n_threads, max_k, max_batch, out, err);
}

static void cpu_dev_seal(struct backend_device *dev) { sp_arena_seal(&((struct cpu_device *)dev)->arena); }

static void cpu_dev_free(struct backend_device *dev)
{
    cpu_dev_seal(dev); /* blocks still bound keep their chunk (backend_device_free warns) */
    sp_free(dev);
}

static const struct backend_device_ops cpu_dev_ops = {
    .name = "cpu",
    .bind = cpu_dev_bind,
    .release = cpu_dev_release,
    .backend_new = cpu_dev_backend_new,
    .seal = cpu_dev_seal,
    .free = cpu_dev_free,
};

enum sp_status backend_cpu_device_new(struct backend_device **out, struct sp_err *err)
{
    *out = NULL;
    struct cpu_device *cd = sp_calloc(1, sizeof(*cd));
    if (!cd)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating the cpu device");
    cd->base.ops = &cpu_dev_ops;
    cd->base.kind = BACKEND_CPU;
    *out = &cd->base;
    return SP_OK;
}
