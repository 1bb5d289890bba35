/* test_backend.c - the CPU backend: every item of a range task runs exactly
 * once across the pool (also after the workers went to sleep), small tasks
 * run inline, matmul (several weights sharing
 * one input, mixed vec_dot types, batches) equals a scalar reference and is
 * identical for 1 and 3 threads, cost-guided chunks cover every row once
 * (any row count, decode and batches), a Q8_0 weight bound on the cpu
 * device (repacked on AVX-512) equals vec_dot for every batch and gives its
 * rows back; device choice logs why CUDA/Metal were
 * skipped (SPOKE_CUDA_LIB points at a missing library). */
#include "backend/backend.h"
#include "kernels/kernels.h"
#include "kv/kv.h"
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
        CHECK(backend_cpu_weight_view(&w[m], types[m], K, R, wq[m], NULL) == SP_OK);
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
    CHECK(backend_cpu_weight_view(&bad, GG_TYPE_Q4_0, 33, 4, x, NULL) == SP_ERR_FORMAT);
}

/* The KV cache's storage comes from the backend (buf_alloc): zeroed, usable
 * by the cache's store/load, released by kv_cache_free before the backend. */
TEST(kv_storage_from_backend)
{
    struct backend *be = NULL;
    struct kv_cache *kv = NULL;
    CHECK(backend_cpu_new(2, 64, 4, &be, NULL) == SP_OK);
    CHECK(kv_cache_new_on(be, 2, 40, 8, KV_F32, 4, &kv, NULL) == SP_OK);
    if (kv) {
        CHECK(kv->be == be);
        float k[8], v[8], out[8];
        bool zero = true;
        for (int l = 0; l < 2; l++)
            for (int c = 0; c < 40; c++) {
                kv_cache_load_k(kv, l, c, out);
                for (int d = 0; d < 8; d++)
                    zero &= out[d] == 0.0f;
                kv_cache_load_v(kv, l, c, out);
                for (int d = 0; d < 8; d++)
                    zero &= out[d] == 0.0f;
            }
        CHECK(zero);
        for (int d = 0; d < 8; d++) {
            k[d] = (float)d + 0.5f;
            v[d] = -(float)d;
        }
        kv_cache_store(kv, 1, 39, k, v);
        kv_cache_load_k(kv, 1, 39, out);
        CHECK(memcmp(out, k, sizeof(k)) == 0);
        kv_cache_load_v(kv, 1, 39, out);
        CHECK(memcmp(out, v, sizeof(v)) == 0);
    }
    kv_cache_free(kv);
    backend_free(be);
}

/* The cost-guided chunking covers every row of every weight exactly once,
 * with row counts that are not multiples of the row groups, weights of
 * different row costs in one call, decode (1 row) and batches: each output
 * equals the kernel's own gemm over the whole matrix, for 1, 2 and 3 threads,
 * and nothing outside the rows is written. */
/* The pool's segments: each thread claims its own (items [n t / T, n (t+1)
 * / T)) front to back, one run of consecutive items, and takes the rest of
 * a thread that stalls from the back of its segment. */
struct pseg {
    _Atomic int item[1000];
    _Atomic int by[1000]; /* the thread that ran item i, + 1 */
    int64_t next_own[2];  /* per thread: where its next own claim must start */
    _Atomic int order_bad;
};

static void seg_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    struct pseg *p = ud;
    const int64_t lo = 500 * ith, hi = lo + 500;
    if (i0 >= lo && i0 < hi) { /* its own segment: exactly where the last own claim ended */
        if (i0 != p->next_own[ith])
            atomic_store(&p->order_bad, 1);
        p->next_own[ith] = i1;
    }
    for (int64_t i = i0; i < i1; i++) {
        atomic_fetch_add(&p->item[i], 1);
        atomic_store(&p->by[i], ith + 1);
    }
    if (ith == 1)
        sp_sleep_ms(2); /* the stalled thread: 500 items alone would take a second */
}

TEST(pool_segments_run_in_order_and_are_stolen)
{
    struct backend *be = NULL;
    struct sp_err err = {0};
    CHECK(backend_cpu_new(2, 64, 4, &be, &err) == SP_OK);
    CHECK_EQ_INT(be->n_threads, 2);
    static struct pseg p;
    p.next_own[0] = 0;
    p.next_own[1] = 500;
    be->ops->parallel_for(be, seg_range, &p, 1000, 1, 1e9);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(atomic_load(&p.item[i]), 1);
    CHECK_EQ_INT(atomic_load(&p.order_bad), 0);
    /* the caller finished its half and took the slow thread's tail, from the back */
    CHECK_EQ_INT(atomic_load(&p.by[0]), 1);
    CHECK_EQ_INT(atomic_load(&p.by[999]), 1);
    int stolen = 0;
    for (int i = 500; i < 1000; i++)
        stolen += atomic_load(&p.by[i]) == 1;
    CHECK(stolen > 250);
    backend_free(be);
}

TEST(matmul_chunks_cover_every_row)
{
    enum { K = 512, NW = 3, YS = 1201 };
    static const int rows[NW] = {1001, 37, 1199};
    static const enum gg_type types[NW] = {GG_TYPE_Q4_0, GG_TYPE_Q8_0, GG_TYPE_Q5_0}; /* one Q8_0 group */
    float *wf = sp_malloc(sizeof(float) * K * YS), *x = sp_malloc(sizeof(float) * K * 9);
    float *y = sp_malloc(sizeof(float) * YS * 9 * NW), *want = sp_malloc(sizeof(float) * YS * 9 * NW);
    void *xq = sp_malloc((size_t)K * 2 * 9);
    CHECK(wf && x && y && want && xq);
    uint64_t s = 7;
    for (int i = 0; i < K * YS; i++) {
        s = s * 6364136223846793005ull + 1;
        wf[i] = (float)((int)(s >> 33) % 2001 - 1000) / 1000.0f;
    }
    for (int i = 0; i < K * 9; i++)
        x[i] = cosf((float)i * 0.11f);
    void *wq[NW];
    size_t rb[NW];
    struct backend_weight w[NW];
    for (int m = 0; m < NW; m++) {
        quantize_rows(types[m], wf, rows[m], K, &wq[m], &rb[m]);
        CHECK(backend_cpu_weight_view(&w[m], types[m], K, rows[m], wq[m], NULL) == SP_OK);
    }
    const int batches[] = {1, 3, 9};
    for (size_t ci = 0; ci < 2 * SP_ARRAY_LEN(batches); ci++) {
        /* n_solo 0: prompt rows, which a panel takes from its batch size on;
         * n_solo nb: decode rows, which only a panel of vec_dot's order takes */
        const int nb = batches[ci / 2], n_solo = ci % 2 ? nb : 0;
        size_t qrb;
        CHECK(gg_row_size(GG_TYPE_Q8_0, K, &qrb));
        for (int b = 0; b < nb; b++)
            kern_ops(GG_TYPE_Q8_0)->quantize_act(x + (size_t)b * K, (char *)xq + (size_t)b * qrb, K);
        for (int m = 0; m < NW; m++) {
            for (size_t i = 0; i < (size_t)YS * nb; i++)
                want[(size_t)m * YS * 9 + i] = -7.0f;
            const struct kern_type_ops *o = kern_ops(types[m]);
            if (kern_use_ws(o, nb) && (n_solo == 0 || o->ws_exact)) { /* the backend's rule */
                void *ws = sp_aligned_alloc(64, KERN_GEMM_WS_BYTES);
                CHECK(ws != NULL);
                o->gemm_ws(K, 0, rows[m], nb, wq[m], rb[m], xq, qrb, want + (size_t)m * YS * 9, YS, ws);
                sp_aligned_free(ws);
            } else {
                o->gemm(K, 0, rows[m], nb, wq[m], rb[m], xq, qrb, want + (size_t)m * YS * 9, YS);
            }
        }
        for (int nth = 1; nth <= 3; nth++) {
            struct backend *be = NULL;
            struct sp_err err = {0};
            CHECK(backend_cpu_new(nth, K, 9, &be, &err) == SP_OK);
            for (size_t i = 0; i < (size_t)YS * 9 * NW; i++)
                y[i] = -7.0f;
            struct backend_mm mm[NW];
            for (int m = 0; m < NW; m++)
                mm[m] = (struct backend_mm){&w[m], y + (size_t)m * YS * 9, YS};
            be->ops->matmul(be, mm, NW, x, nb, n_solo, K);
            for (int m = 0; m < NW; m++)
                for (size_t i = 0; i < (size_t)YS * nb; i++)
                    CHECK_MSG(memcmp(&y[(size_t)m * YS * 9 + i], &want[(size_t)m * YS * 9 + i], sizeof(float)) == 0,
                              "threads %d batch %d n_solo %d weight %d output %zu: %g vs %g", nth, nb, n_solo, m, i,
                              (double)y[(size_t)m * YS * 9 + i], (double)want[(size_t)m * YS * 9 + i]);
            backend_free(be);
        }
    }
    for (int m = 0; m < NW; m++)
        sp_free(wq[m]);
    sp_free(wf);
    sp_free(x);
    sp_free(y);
    sp_free(want);
    sp_free(xq);
}

/* matmul's n_solo rows sum in the 1-row order: on the weight types with a
 * second order (F32/F16's tinyBLAS order; the panels of Q4_0, Q5_0 and the
 * K-quants) each decode row equals the row evaluated alone, bit for bit, and
 * the prompt rows after them equal a prompt-only call, whether the prompt
 * part is below a panel's batch size (one shared pass in the 1-row order) or
 * reaches it (two passes). */
TEST(matmul_solo_rows_equal_alone)
{
    enum { K = 512, R = 40, MAXB = 40 };
    static const enum gg_type types[] = {GG_TYPE_F32, GG_TYPE_F16, GG_TYPE_Q4_0, GG_TYPE_Q5_0, GG_TYPE_Q4_K};
    /* batch, decode rows: prompt parts below and at the panels' sizes (8 AVX2, 16 AVX-512, 32
     * K-quants), and whole batches past them with the prompt part below */
    static const int cases[][2] = {{6, 2}, {12, 4}, {12, 5}, {20, 3}, {20, 6}, {40, 3}, {40, 9}};
    float *x = sp_malloc(sizeof(float) * MAXB * K), *src = sp_malloc(sizeof(float) * R * K);
    float *mixed = sp_malloc(sizeof(float) * MAXB * R), *ref = sp_malloc(sizeof(float) * MAXB * R);
    CHECK(x && src && mixed && ref);
    uint64_t seed = 5;
    for (int i = 0; i < MAXB * K; i++)
        x[i] = (float)(test_rand_u32(&seed) % 2001) / 1000.0f - 1.0f;
    for (int i = 0; i < R * K; i++)
        src[i] = (float)(test_rand_u32(&seed) % 2001) / 1000.0f - 1.0f;
    struct backend *be = NULL;
    CHECK(backend_cpu_new(2, K, MAXB, &be, NULL) == SP_OK);
    for (size_t t = 0; t < SP_ARRAY_LEN(types) && be; t++) {
        size_t rb;
        void *w = NULL;
        quantize_rows(types[t], src, R, K, &w, &rb);
        struct backend_weight bw;
        CHECK(backend_cpu_weight_view(&bw, types[t], K, R, w, NULL) == SP_OK);
        for (size_t c = 0; c < SP_ARRAY_LEN(cases); c++) {
            const int nb = cases[c][0], solo = cases[c][1];
            struct backend_mm mm = {&bw, mixed, R}, one = {&bw, ref, R};
            be->ops->matmul(be, &mm, 1, x, nb, solo, K);
            int bad = 0;
            for (int b = 0; b < solo; b++) {
                be->ops->matmul(be, &one, 1, x + b * K, 1, 0, K);
                bad += memcmp(ref, mixed + b * R, sizeof(float) * R) != 0;
            }
            be->ops->matmul(be, &one, 1, x + solo * K, nb - solo, 0, K);
            bad += memcmp(ref, mixed + solo * R, sizeof(float) * R * (size_t)(nb - solo)) != 0;
            CHECK_MSG(bad == 0, "%s batch %d with %d decode rows: %d mismatches", gg_type_name(types[t]), nb, solo,
                      bad);
        }
        sp_free(w);
    }
    backend_free(be);
    sp_free(x);
    sp_free(src);
    sp_free(mixed);
    sp_free(ref);
}

/* A Q8_0 weight bound on the cpu device: repacked (owned, groups of 16
 * interleaved rows) exactly where the kernels have a load-time layout
 * (AVX-512), and either way each output of every batch and decode/prompt
 * split equals ggml's vec_dot of the original row (the reference kernel,
 * memcmp), and get_rows gives back the original rows. */
TEST(q8_0_bound_weight_is_vec_dot)
{
    enum { K = 320, R = 37, MAXB = 20 };
    static const int cases[][2] = {{1, 0}, {1, 1}, {3, 0}, {7, 2}, {20, 0}, {20, 5}};
    float *x = sp_malloc(sizeof(float) * MAXB * K), *src = sp_malloc(sizeof(float) * R * K);
    float *y = sp_malloc(sizeof(float) * MAXB * K), *row = sp_malloc(sizeof(float) * K);
    size_t rb = 0;
    CHECK(x && src && y && row && gg_row_size(GG_TYPE_Q8_0, K, &rb));
    char *xq = sp_malloc(rb * MAXB);
    CHECK(xq);
    uint64_t seed = 11;
    for (int i = 0; i < MAXB * K; i++)
        x[i] = (float)(test_rand_u32(&seed) % 2001) / 1000.0f - 1.0f;
    for (int i = 0; i < R * K; i++)
        src[i] = (float)(test_rand_u32(&seed) % 2001) / 1000.0f - 1.0f;
    void *w = NULL;
    quantize_rows(GG_TYPE_Q8_0, src, R, K, &w, &rb);
    const struct kern_type_ops *ops = kern_ops(GG_TYPE_Q8_0), *ref = kern_ops_isa(KERN_ISA_REF, GG_TYPE_Q8_0);
    for (int b = 0; b < MAXB; b++)
        ref->quantize_act(x + (size_t)b * K, xq + (size_t)b * rb, K);
    struct backend_device *dev = NULL;
    struct backend *be = NULL;
    struct backend_weight bw;
    CHECK(backend_device_new(NULL, &dev, NULL) == SP_OK);
    CHECK(backend_weight_bind(dev, &bw, GG_TYPE_Q8_0, K, R, w, BACKEND_USE_MATMUL, NULL) == SP_OK);
    const char *env = getenv("SPOKE_REPACK");
    const bool repack = ops->rp != NULL && !(env && strcmp(env, "0") == 0);
    CHECK_MSG(repack == (bw.grp_rows > 0) && repack == (bw.owned != NULL) && dev->owned_bytes == bw.owned_bytes,
              "kernels %s, grp_rows %d", kern_isa_name(ops->isa), bw.grp_rows);
    fprintf(stderr, "  Q8_0 on %s: %s\n", kern_isa_name(ops->isa), repack ? "repacked" : "a view");
    CHECK(backend_new_on(dev, 2, K, MAXB, &be, NULL) == SP_OK);
    /* the AVX-512 row kernel (SPOKE_REPACK=0) sums in its own order */
    const bool exact = repack || ops->isa != KERN_ISA_AVX512;
    int bad = 0;
    for (size_t c = 0; c < SP_ARRAY_LEN(cases) && exact; c++) {
        const int nb = cases[c][0], solo = cases[c][1];
        struct backend_mm mm = {&bw, y, R};
        be->ops->matmul(be, &mm, 1, x, nb, solo, K);
        for (int b = 0; b < nb; b++)
            for (int r = 0; r < R; r++) {
                float want;
                ref->vec_dot(K, &want, (const char *)w + (size_t)r * rb, xq + (size_t)b * rb);
                bad += memcmp(&want, &y[b * R + r], sizeof want) != 0;
            }
    }
    CHECK_MSG(bad == 0, "%d outputs differ from vec_dot", bad);
    const int32_t ids[] = {0, 15, 16, 36, 17};
    be->ops->get_rows(be, &bw, ids, 5, y, K, 1.0f);
    for (int i = 0; i < 5; i++) {
        ref->to_float((const char *)w + (size_t)ids[i] * rb, row, K);
        bad += memcmp(row, y + (size_t)i * K, sizeof(float) * K) != 0;
    }
    CHECK_MSG(bad == 0, "%d rows of get_rows differ", bad);
    backend_free(be);
    backend_weight_release(dev, &bw);
    CHECK(dev->n_bound == 0 && dev->owned_bytes == 0);
    backend_device_free(dev);
    sp_free(w);
    sp_free(xq);
    sp_free(x);
    sp_free(src);
    sp_free(y);
    sp_free(row);
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
    RUN(pool_segments_run_in_order_and_are_stolen);
    RUN(matmul_matches_reference);
    RUN(matmul_solo_rows_equal_alone);
    RUN(q8_0_bound_weight_is_vec_dot);
    RUN(kv_storage_from_backend);
    RUN(matmul_chunks_cover_every_row);
    RUN(device_choice_logs_reasons);
    return test_summary();
}
