/* cpu_dev.c - the "cpu" kind's device: weights bound as views, backends as
 * thread pools.
 *
 * The CPU reads the weights where the GGUF mapping has them: a bind fills a
 * struct backend_weight view (type, row size and the kernels' table for the
 * type, checked to have a matmul and an activation quantizer) and allocates
 * nothing, so release has nothing to free. A kind that repacks or uploads
 * starts from the same view (backend_cpu_weight_view) and puts its own copy
 * in w->owned. The device holds no state beyond struct backend_device: each
 * context's compute backend is a backend_cpu_new pool. */
#include "backend/cpu/cpu_impl.h"

#include <string.h>

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
                                   int64_t k, int64_t rows, const void *host, struct sp_err *err)
{
    (void)dev;
    return backend_cpu_weight_view(w, type, k, rows, host, err);
}

static void cpu_dev_release(struct backend_device *dev, struct backend_weight *w)
{
    (void)dev;
    (void)w; /* a view: the mapping belongs to the model's file */
}

static enum sp_status cpu_dev_backend_new(struct backend_device *dev, int n_threads, int64_t max_k,
                                          int64_t max_batch, struct backend **out, struct sp_err *err)
{
    (void)dev;
    return backend_cpu_new(n_threads, max_k, max_batch, out, err);
}

static void cpu_dev_free(struct backend_device *dev) { sp_free(dev); }

static const struct backend_device_ops cpu_dev_ops = {
    .name = "cpu",
    .bind = cpu_dev_bind,
    .release = cpu_dev_release,
    .backend_new = cpu_dev_backend_new,
    .free = cpu_dev_free,
};

enum sp_status backend_cpu_device_new(struct backend_device **out, struct sp_err *err)
{
    *out = NULL;
    struct backend_device *dev = sp_calloc(1, sizeof(*dev));
    if (!dev)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating the cpu device");
    dev->ops = &cpu_dev_ops;
    dev->kind = BACKEND_CPU;
    *out = dev;
    return SP_OK;
}
