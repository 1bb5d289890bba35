/* device.c - the kind-independent side of struct backend_device: creating
 * the device of the kind backend_choose picked, binding and releasing
 * weights through its ops with the count of what is bound, and creating
 * the model's compute backends on it.
 *
 * A bind starts on a zeroed weight and leaves it zeroed when it fails, and a
 * release zeroes it, so a zeroed weight means "nothing bound": a model whose
 * load stopped half way releases every weight field and only the bound ones
 * reach the kind. n_bound / owned_bytes say what the model holds on the
 * device; freeing a device with weights still bound logs it (a leak). */
#include "backend/backend.h"
#include "obs/log.h"

#include <string.h>

enum sp_status backend_device_new(const struct backend_choice *c, struct backend_device **out,
                                  struct sp_err *err)
{
    *out = NULL;
    enum backend_kind kind = c ? c->kind : BACKEND_CPU;
    if (kind != BACKEND_CPU)
        return sp_err_set(err, SP_ERR_UNSUPPORTED, "this build has no %s backend",
                          c && c->name ? c->name : "such");
    return backend_cpu_device_new(out, err);
}

void backend_device_free(struct backend_device *dev)
{
    if (!dev)
        return;
    if (dev->n_bound > 0)
        LOG_WARN("backend", "%s device freed with %zu weights still bound (%zu bytes)", dev->ops->name,
                 dev->n_bound, dev->owned_bytes);
    dev->ops->free(dev);
}

void backend_device_seal(struct backend_device *dev)
{
    if (dev && dev->ops->seal)
        dev->ops->seal(dev);
}

enum sp_status backend_weight_bind(struct backend_device *dev, struct backend_weight *w, enum gg_type type,
                                   int64_t k, int64_t rows, const void *host, unsigned use, struct sp_err *err)
{
    memset(w, 0, sizeof(*w));
    enum sp_status result = dev->ops->bind(dev, w, type, k, rows, host, use, err);
    if (result == SP_OK && !w->data) {
        dev->ops->release(dev, w);
        result = sp_err_set(err, SP_ERR_INTERNAL, "the %s device bound no data", dev->ops->name);
    }
    if (result != SP_OK) {
        memset(w, 0, sizeof(*w));
        return result;
    }
    dev->n_bound++;
    dev->owned_bytes += w->owned_bytes;
    return SP_OK;
}

void backend_weight_release(struct backend_device *dev, struct backend_weight *w)
{
    if (!w->data)
        return;
    dev->n_bound--;
    dev->owned_bytes -= w->owned_bytes;
    dev->ops->release(dev, w);
    memset(w, 0, sizeof(*w));
}

enum sp_status backend_new_on(struct backend_device *dev, int n_threads, int64_t max_k, int64_t max_batch,
                              struct backend **out, struct sp_err *err)
{
    *out = NULL;
    return dev->ops->backend_new(dev, n_threads, max_k, max_batch, out, err);
}
