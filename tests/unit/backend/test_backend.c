/* test_backend.c - the CPU backend: every item of a range task runs exactly
 * once across the pool (also after the workers went to sleep), small tasks
 * run inline, matmul (several weights sharing
 * one input, mixed vec_dot types, batches) equals a scalar reference and is
 * identical for 1 and 3 threads; device choice logs why CUDA/Metal were
 * skipped (SPOKE_CUDA_LIB points at a missing library). */
#include "backend/backend.h"
#include "kernels/kernels.h"
#include "obs/log.h"
#include "test.h"

#include <stdatomic.h>
#include <stdlib.h>

struct pcount {
    _Atomic int item[1000];
    _Atomic int by_thread[8];
    int bad;
};

static void count_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    struct pcount *p = ud;
    if (ith < 0 || ith >= 8 || i0 >= i1)
        p->bad = 1;
    for (int64_t i = i0; i < i1; i++)
        atomic_fetch_add(&p->item[i], 1);
    atomic_fetch_add(&p->by_thread[ith], 1);
}

TEST(pool_runs_every_item_once)
{
    struct backend *be = NULL;
    struct sp_err err = {0};
    CHECK(backend_cpu_new(3, 64, 4, &be, &err) == SP_OK);
    CHECK_EQ_INT(be->n_threads, 3);
    static struct pcount p;
    for (int rep = 0; rep < 300; rep++)
        be->ops->parallel_for(be, count_range, &p, 1000, 7, 1e9);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(atomic_load(&p.item[i]), 300);
    CHECK_EQ_INT(p.bad, 0);
    CHECK(atomic_load(&p.by_thread[0]) > 0);
    /* a small task runs on the caller only, as one range */
    int before = atomic_load(&p.by_thread[0]);
    be->ops->parallel_for(be, count_range, &p, 1000, 7, 10);
    CHECK_EQ_INT(atomic_load(&p.by_thread[0]), before + 1);
    CHECK_EQ_INT(atomic_load(&p.item[999]), 301);
    /* idle long enough for the workers to sleep, then wake them */
    sp_sleep_ms(20);
    be->ops->parallel_for(be, count_range, &p, 1000, 1, 1e9);
    CHECK_EQ_INT(atomic_load(&p.item[500]), 302);
    backend_free(be);
    backend_free(NULL);
}

static void quantize_rows(enum gg_type t, const float *src, int rows, int k, void **out, size_t *rb)
{
    CHECK_MSG(gg_row_size(t, k, rb), "row size");
    *out = sp_malloc(*rb * (size_t)rows);
    for (int r = 0; r < rows; r++)
        kern_ops(t)->from_float(src + (size_t)r * k, (char *)*out + (size_t)r * *rb, k);
}

static void run_mm(int nth, const struct backend_weight *w, int n_w, const float *x, int nb, int k, float *y)
{
    struct backend *be = NULL;
    struct sp_err err = {0};
    if (backend_cpu_new(nth, k, nb, &be, &err) != SP_OK)
        return;
    struct backend_mm mm[4];
    for (int i = 0; i < n_w; i++)
        mm[i] = (struct backend_mm){&w[i], y + (size_t)i * 64 * nb, 64};
    be->ops->matmul(be, mm, (size_t)n_w, x, nb, 0, (size_t)k);
    backend_free(be);
}

TEST(matmul_matches_reference)
{
    enum { K = 256, R = 64, NB = 5 };
    static float wf[3][R * K], x[NB * K], y1[3 * 64 * NB], y3[3 * 64 * NB];
    uint64_t s = 99;
    for (int m = 0; m < 3; m++)
        for (int i = 0; i < R * K; i++) {
            s = s * 6364136223846793005ull + 1;
            wf[m][i] = (float)((int)(s >> 33) % 2001 - 1000) / 1000.0f;
        }
    for (int i = 0; i < NB * K; i++)
        x[i] = sinf((float)i * 0.37f);
    enum gg_type types[3] = {GG_TYPE_F32, GG_TYPE_Q8_0, GG_TYPE_Q4_K}; /* F32, Q8_0 and Q8_K activations */
    void *wq[3];
    size_t rb[3];
    struct backend_weight w[3];
    for (int m = 0; m < 3; m++) {
        quantize_rows(types[m], wf[m], R, K, &wq[m], &rb[m]);
        CHECK(backend_weight_bind(&w[m], types[m], K, R, wq[m], NULL) == SP_OK);
    }
    run_mm(1, w, 3, x, NB, K, y1);
    run_mm(3, w, 3, x, NB, K, y3);
    CHECK(memcmp(y1, y3, sizeof(y1)) == 0);
    /* against dequantized weights times float activations */
    static const double tol[3] = {1e-4, 0.25, 0.5}; /* activations quantized to 8 bits */
    for (int m = 0; m < 3; m++) {
        float row[K];
        for (int r = 0; r < R; r++) {
            kern_ops(types[m])->to_float((char *)wq[m] + (size_t)r * rb[m], row, K);
            for (int b = 0; b < NB; b++) {
                double ref = 0;
                for (int i = 0; i < K; i++)
                    ref += (double)row[i] * x[b * K + i];
                CHECK_NEAR(y1[(size_t)m * 64 * NB + (size_t)b * 64 + r], ref, tol[m]);
            }
        }
        sp_free(wq[m]);
    }
    struct backend_weight bad;
    CHECK(backend_weight_bind(&bad, GG_TYPE_Q4_0, 33, 4, x, NULL) == SP_ERR_FORMAT);
}

static char g_log[2048];
static void sink(void *ud, enum log_level lv, const char *mod, const char *msg)
{
    SP_UNUSED(ud);
    SP_UNUSED(lv);
    if (strcmp(mod, "backend") == 0)
        snprintf(g_log, sizeof(g_log), "%s", msg);
}

TEST(device_choice_logs_reasons)
{
    setenv("SPOKE_CUDA_LIB", "/nonexistent/libcuda.so.1", 1);
    log_set_sink(sink, NULL);
    struct backend_choice c;
    backend_choose(&c);
    log_set_sink(NULL, NULL);
    unsetenv("SPOKE_CUDA_LIB");
    CHECK_EQ_INT(c.kind, BACKEND_CPU);
    CHECK_EQ_STR(c.name, "cpu");
    CHECK(strstr(c.cuda_note, "CUDA: no driver found") != NULL);
    CHECK(strstr(c.metal_note, "Metal") != NULL);
    CHECK(strstr(g_log, "cpu backend") && strstr(g_log, "CUDA: no driver found") && strstr(g_log, "Metal"));
    CHECK(backend_cpu_count() >= 1);
}

int main(void)
{
    RUN(pool_runs_every_item_once);
    RUN(matmul_matches_reference);
    RUN(device_choice_logs_reasons);
    return test_summary();
}
