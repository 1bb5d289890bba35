/* test_bind.c - weights bound and released through the backend device
 * (struct backend_device): every weight matrix of a loaded model is bound
 * once on the model's device and released once by model_free, on the "cpu"
 * kind (views into the mapping, nothing owned) and on a test-only "copy"
 * kind defined here whose bind owns a copy of the rows (the owned-storage
 * path a repacking CPU bind or a GPU upload takes): with the file's tensor
 * data overwritten after the load, a model bound on "copy" still gives the
 * logits / embeddings of the untouched file bit for bit (the forward pass
 * reads the bound storage, not the mapping), while one bound on "cpu" does
 * not; the model's states get their backend from the device; a load that
 * fails half way releases what it bound; the engine binds on the device of
 * the kind backend_choose picked.
 * stories260K.gguf from ../shared (the test exits 77, ctest's skip code, when
 * it is absent, after the synthetic-model tests) and a synthetic bert. */
#include "engine/engine_impl.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "test.h"

#include <stdio.h>

/* ---- the test-only "copy" kind: binds own a copy of the rows */

#define COPY_MAX 256

struct copy_dev {
    struct backend_device base;
    int n_bind, n_release, n_backend;
    int n_rows_only, n_rows_matmul; /* binds whose use was BACKEND_USE_ROWS alone / ROWS | MATMUL */
    int fail_at;                  /* the fail_at-th bind fails with SP_ERR_NOMEM (0: never) */
    void *live[COPY_MAX];         /* owned copies bound and not yet released */
};

static enum sp_status copy_bind(struct backend_device *dev, struct backend_weight *w, enum gg_type type, int64_t k,
                                int64_t rows, const void *host, unsigned use, struct sp_err *err)
{
    struct copy_dev *cd = (struct copy_dev *)dev;
    if (cd->fail_at > 0 && cd->n_bind + 1 == cd->fail_at)
        return sp_err_set(err, SP_ERR_NOMEM, "copy device: bind %d refused", cd->fail_at);
    cd->n_rows_only += use == BACKEND_USE_ROWS;
    cd->n_rows_matmul += use == (BACKEND_USE_ROWS | BACKEND_USE_MATMUL);
    enum sp_status st = backend_cpu_weight_view(w, type, k, rows, host, err);
    if (st != SP_OK)
        return st;
    size_t n = (size_t)rows * w->row_bytes;
    void *p = sp_aligned_alloc(64, n);
    int slot = 0;
    while (slot < COPY_MAX && cd->live[slot])
        slot++;
    if (!p || slot == COPY_MAX) {
        sp_aligned_free(p);
        return sp_err_set(err, SP_ERR_NOMEM, "copy device: no room for %zu bytes", n);
    }
    memcpy(p, host, n);
    cd->live[slot] = p;
    w->data = p;
    w->owned = p;
    w->owned_bytes = n;
    cd->n_bind++;
    return SP_OK;
}

static void copy_release(struct backend_device *dev, struct backend_weight *w)
{
    struct copy_dev *cd = (struct copy_dev *)dev;
    cd->n_release++;
    for (int i = 0; i < COPY_MAX; i++)
        if (cd->live[i] && cd->live[i] == w->owned) {
            cd->live[i] = NULL;
            sp_aligned_free(w->owned);
            return;
        }
    cd->n_release += 1000; /* released something this device never bound (or twice) */
}

static enum sp_status copy_backend_new(struct backend_device *dev, int n_threads, int64_t max_k, int64_t max_batch,
                                       struct backend **out, struct sp_err *err)
{
    ((struct copy_dev *)dev)->n_backend++;
    return backend_cpu_new(n_threads, max_k, max_batch, out, err);
}

static void copy_free(struct backend_device *dev) { (void)dev; /* on the test's stack */ }

static const struct backend_device_ops copy_ops = {
    .name = "copy",
    .bind = copy_bind,
    .release = copy_release,
    .backend_new = copy_backend_new,
    .free = copy_free,
};

static void copy_init(struct copy_dev *cd)
{
    memset(cd, 0, sizeof(*cd));
    cd->base.ops = &copy_ops;
    cd->base.kind = BACKEND_CPU;
}

/* Weight matrices in f: the 2-D tensors (everything else is a vector). */
static int n_matrices(const struct gg_file *f)
{
    int n = 0;
    for (size_t i = 0; i < gg_tensor_count(f); i++)
        n += gg_tensor_at(f, i)->ne[1] > 1;
    return n;
}

/* ---- stories260K */

static bool g_have_stories;

/* models/<name> of ../shared read into memory (a buffer the test may overwrite); NULL if absent. */
static void *read_model(const char *name, size_t *size)
{
    char path[1024], rel[256];
    snprintf(rel, sizeof(rel), "models/%s", name);
    if (!test_shared_file(path, sizeof(path), rel))
        return NULL;
    g_have_stories = true;
    FILE *fp = fopen(path, "rb");
    void *buf = NULL;
    long n = -1;
    if (fp && fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) > 0 && fseek(fp, 0, SEEK_SET) == 0 &&
        (buf = sp_malloc((size_t)n)) != NULL && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        sp_free(buf);
        buf = NULL;
    }
    if (fp)
        fclose(fp);
    *size = (size_t)n;
    return buf;
}

/* stories260K.gguf (F32) read into memory; NULL if absent. */
static void *read_stories(size_t *size) { return read_model("stories260K.gguf", size); }

static const int32_t g_toks[6] = {1, 403, 407, 261, 378, 300};

/* Logits of the last of g_toks on a fresh state of m (false on any error). */
static bool stories_logits(const struct model *m, float *logits)
{
    struct model_state_opts o = {.n_ctx = 32, .n_threads = 2, .kv_type = KV_F32};
    struct model_state *s = NULL;
    bool ok = model_state_new(m, &o, &s, NULL) == SP_OK && model_eval(s, g_toks, 6, 0, logits, NULL) == SP_OK;
    model_state_free(s);
    return ok;
}

/* Overwrite the tensor data of the file in buf (0xff bytes: NaN for F32). */
static void poison(const struct gg_file *f, void *buf, size_t size)
{
    size_t off = (size_t)gg_data_offset(f);
    memset((char *)buf + off, 0xff, size - off);
}

/* On "cpu": one bind per matrix, each a view into the mapping, nothing
 * owned; model_free releases them all. */
TEST(cpu_binds_views)
{
    size_t size = 0;
    void *buf = read_stories(&size);
    if (!buf)
        SKIP("stories260K.gguf not found");
    struct gg_file *f = NULL;
    struct model *m = NULL;
    struct backend_device *dev = NULL;
    struct sp_err err = {0};
    CHECK(backend_device_new(NULL, &dev, &err) == SP_OK);
    CHECK_EQ_STR(dev->ops->name, "cpu");
    CHECK(gg_open_memory(buf, size, &f, NULL) == SP_OK);
    CHECK(model_load_on(dev, f, &m, &err) == SP_OK);
    CHECK(m->dev == dev && !m->dev_owned);
    CHECK_EQ_INT(n_matrices(f), 2 + 7 * 5); /* token_embd, output, 7 per layer */
    CHECK_EQ_INT(dev->n_bound, n_matrices(f));
    CHECK_EQ_INT(dev->owned_bytes, 0);
    const char *lo = buf, *hi = lo + size;
    const struct backend_weight *ws[2 + 7 * 5];
    int n = 0;
    ws[n++] = &m->tok_embd;
    ws[n++] = &m->output;
    for (int l = 0; l < m->hp.n_layer; l++) {
        struct model_layer *L = &m->layers[l];
        const struct backend_weight *lw[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < SP_ARRAY_LEN(lw); i++)
            ws[n++] = lw[i];
    }
    for (int i = 0; i < n; i++) {
        const char *d = ws[i]->data;
        CHECK(ws[i]->owned == NULL && ws[i]->owned_bytes == 0);
        CHECK(d >= lo && d + (size_t)ws[i]->rows * ws[i]->row_bytes <= hi);
    }
    static float ref[512], after[512];
    CHECK(stories_logits(m, ref));
    /* the control for copy_owns_storage: a view reads the overwritten file */
    poison(f, buf, size);
    CHECK(stories_logits(m, after));
    CHECK(memcmp(ref, after, sizeof ref) != 0);
    model_free(m);
    CHECK_EQ_INT(dev->n_bound, 0);
    backend_device_free(dev);
    gg_close(f);
    sp_free(buf);
}

/* On the "copy" kind: every matrix bound once with its own storage, the
 * state's backend made by the device, the logits those of the untouched
 * file after the mapping is overwritten, every bind released once. */
TEST(copy_owns_storage)
{
    size_t size = 0;
    void *buf = read_stories(&size);
    if (!buf)
        SKIP("stories260K.gguf not found");
    struct gg_file *f = NULL;
    struct model *m = NULL;
    CHECK(gg_open_memory(buf, size, &f, NULL) == SP_OK);
    static float ref[512], got[512];
    CHECK(model_load(f, &m, NULL) == SP_OK && m->dev_owned);
    CHECK(stories_logits(m, ref));
    model_free(m);
    m = NULL;
    static struct copy_dev cd;
    copy_init(&cd);
    struct sp_err err = {0};
    CHECK(model_load_on(&cd.base, f, &m, &err) == SP_OK);
    const int nm = n_matrices(f);
    CHECK_EQ_INT(cd.n_bind, nm);
    CHECK_EQ_INT(cd.base.n_bound, nm);
    size_t bytes = 0;
    for (size_t i = 0; i < gg_tensor_count(f); i++)
        if (gg_tensor_at(f, i)->ne[1] > 1)
            bytes += gg_tensor_at(f, i)->nbytes;
    CHECK_EQ_INT(cd.base.owned_bytes, bytes);
    CHECK(m->tok_embd.owned != NULL && m->tok_embd.data == m->tok_embd.owned);
    /* untied: the embedding is bound for row lookups alone, every other matrix for matmul */
    CHECK_EQ_INT(cd.n_rows_only, 1);
    CHECK_EQ_INT(cd.n_rows_matmul, 0);
    poison(f, buf, size);
    CHECK(stories_logits(m, got));
    CHECK_EQ_INT(cd.n_backend, 1);
    CHECK(memcmp(ref, got, sizeof ref) == 0);
    model_free(m);
    CHECK_EQ_INT(cd.n_release, nm);
    CHECK_EQ_INT(cd.base.n_bound, 0);
    CHECK_EQ_INT(cd.base.owned_bytes, 0);
    for (int i = 0; i < COPY_MAX; i++)
        CHECK(cd.live[i] == NULL);
    gg_close(f);
    sp_free(buf);
}

/* A model without output.weight (tied): its embedding is bound once, for
 * row lookups and the output matmul both. stories260K with output.weight
 * renamed in place (the loader warns of the unused tensor). */
TEST(tied_embedding_binds_for_matmul)
{
    size_t size = 0;
    char *buf = read_stories(&size);
    if (!buf)
        SKIP("stories260K.gguf not found");
    static const char name[] = "output.weight";
    char *at = memmem(buf, size, name, sizeof(name) - 1);
    CHECK(at != NULL);
    if (!at) {
        sp_free(buf);
        return;
    }
    at[sizeof(name) - 2] = 'z'; /* "output.weighz" */
    struct gg_file *f = NULL;
    struct model *m = NULL;
    CHECK(gg_open_memory(buf, size, &f, NULL) == SP_OK);
    static struct copy_dev cd;
    copy_init(&cd);
    struct sp_err err = {0};
    CHECK(model_load_on(&cd.base, f, &m, &err) == SP_OK);
    CHECK(m && m->tied_output && m->output.data == m->tok_embd.data);
    CHECK_EQ_INT(cd.n_rows_only, 0);
    CHECK_EQ_INT(cd.n_rows_matmul, 1);
    CHECK_EQ_INT(cd.n_bind, 1 + 7 * 5);
    static float got[512];
    CHECK(m && stories_logits(m, got) && isfinite(got[0]));
    model_free(m);
    gg_close(f);
    sp_free(buf);
}

/* On "cpu" with a type the kernels repack at load (Q4_0): the block
 * matrices are owned repacked copies, while the untied Q4_0 embedding, read
 * only by row lookups, stays a view into the file (no resident copy of rows
 * no token reads); the logits are those of the same file with every weight a plain
 * copy in the file's row layout (the repacked gemm keeps the row kernels' bits). */
TEST(cpu_embedding_stays_a_view)
{
    size_t size = 0;
    char *buf = read_model("stories260K-q4_0.gguf", &size);
    if (!buf)
        SKIP("stories260K-q4_0.gguf not found");
    struct gg_file *f = NULL;
    struct model *m = NULL;
    CHECK(gg_open_memory(buf, size, &f, NULL) == SP_OK);
    CHECK(model_load(f, &m, NULL) == SP_OK);
    CHECK(m && !m->tied_output && m->tok_embd.type == GG_TYPE_Q4_0 && m->layers[0].wq.type == GG_TYPE_Q4_0);
    CHECK(m && m->tok_embd.owned == NULL && m->tok_embd.grp_rows == 0);
    CHECK(m && (const char *)m->tok_embd.data > buf && (const char *)m->tok_embd.data < buf + size);
    CHECK(m && m->layers[0].wq.owned != NULL && m->layers[0].wq.grp_rows > 0);
    static float a[512], b[512];
    CHECK(m && stories_logits(m, a));
    model_free(m);
    m = NULL;
    /* the same file on "copy" (owned copies in the file's row layout) */
    static struct copy_dev cd;
    copy_init(&cd);
    CHECK(model_load_on(&cd.base, f, &m, NULL) == SP_OK);
    CHECK(m && stories_logits(m, b) && memcmp(a, b, sizeof a) == 0);
    model_free(m);
    gg_close(f);
    sp_free(buf);
}

/* A bind refused half way: the load fails with the device's error and
 * releases exactly the binds that succeeded. */
TEST(failed_load_releases)
{
    size_t size = 0;
    void *buf = read_stories(&size);
    if (!buf)
        SKIP("stories260K.gguf not found");
    struct gg_file *f = NULL;
    CHECK(gg_open_memory(buf, size, &f, NULL) == SP_OK);
    const int nm = n_matrices(f);
    static const int at[] = {1, 2, 3, 20, 2 + 7 * 5};
    for (size_t i = 0; i < SP_ARRAY_LEN(at); i++) {
        static struct copy_dev cd;
        copy_init(&cd);
        cd.fail_at = at[i];
        struct model *m = NULL;
        struct sp_err err = {0};
        CHECK_EQ_INT(model_load_on(&cd.base, f, &m, &err), SP_ERR_NOMEM);
        CHECK(m == NULL && strstr(err.msg, "refused") != NULL);
        CHECK_EQ_INT(cd.n_bind, at[i] - 1);
        CHECK_EQ_INT(cd.n_release, at[i] - 1);
        CHECK_EQ_INT(cd.base.n_bound, 0);
    }
    CHECK(nm == 2 + 7 * 5);
    gg_close(f);
    sp_free(buf);
}

/* The engine binds on the device of the kind backend_choose picked (cpu in
 * this build) and releases on unload: the model's device is that kind. */
TEST(engine_uses_chosen_kind)
{
    char path[1024];
    if (!test_shared_file(path, sizeof(path), "models/stories260K.gguf"))
        SKIP("stories260K.gguf not found");
    struct engine_load_opts o = {.path = path, .n_ctx = 64, .n_threads = 1, .skip_mem_check = true};
    struct engine_model *em = NULL;
    struct sp_err err = {0};
    CHECK(engine_model_load(&o, &em, &err) == SP_OK);
    const struct model *m = em->model;
    struct backend_choice c;
    backend_choose(&c);
    CHECK(m->dev == em->dev && !m->dev_owned);
    CHECK_EQ_INT(m->dev->kind, c.kind);
    CHECK_EQ_STR(m->dev->ops->name, c.name);
    CHECK_EQ_INT(m->dev->n_bound, 2 + 7 * 5);
    engine_model_free(em);
}

/* A kind this build has no backend for is refused by name. */
TEST(device_unsupported_kind)
{
    struct backend_choice c = {.kind = BACKEND_CUDA, .name = "cuda"};
    struct backend_device *dev = (struct backend_device *)&c;
    struct sp_err err = {0};
    CHECK_EQ_INT(backend_device_new(&c, &dev, &err), SP_ERR_UNSUPPORTED);
    CHECK(dev == NULL && strstr(err.msg, "cuda") != NULL);
    backend_device_free(NULL);
    struct backend_weight w = {0};
    CHECK(backend_device_new(NULL, &dev, NULL) == SP_OK);
    backend_weight_release(dev, &w); /* unbound: nothing to release */
    CHECK_EQ_INT(dev->n_bound, 0);
    CHECK_EQ_INT(backend_weight_bind(dev, &w, GG_TYPE_Q4_0, 33, 2, "x", BACKEND_USE_MATMUL, NULL), SP_ERR_FORMAT);
    CHECK(w.data == NULL && dev->n_bound == 0);
    backend_device_free(dev);
}

/* A row-layout matrix a matmul reads is copied onto huge pages: its own
 * 2 MiB-aligned mapping when it fills one (SP_HUGE_BYTES), the device's arena
 * when smaller (from 256 KiB); a tiny one, or one bound for row lookups
 * alone, stays a view. */
TEST(cpu_copies_row_weights)
{
    const int64_t k = 1024, big = (int64_t)(SP_HUGE_BYTES / 4096) + 3, small = 100;
    float *host = sp_malloc((size_t)(k * big) * sizeof(float));
    CHECK(host != NULL);
    if (!host)
        return;
    for (int64_t i = 0; i < k * big; i++)
        host[i] = (float)(i % 977) * 0.25f;
    struct backend_device *dev = NULL;
    CHECK(backend_device_new(NULL, &dev, NULL) == SP_OK);
    struct backend_weight w[4] = {{0}};
    CHECK(backend_weight_bind(dev, &w[0], GG_TYPE_F32, k, big, host, BACKEND_USE_MATMUL, NULL) == SP_OK);
    CHECK(backend_weight_bind(dev, &w[1], GG_TYPE_F32, k, big, host, BACKEND_USE_ROWS, NULL) == SP_OK);
    CHECK(backend_weight_bind(dev, &w[2], GG_TYPE_F32, k, small, host, BACKEND_USE_MATMUL, NULL) == SP_OK);
    CHECK(backend_weight_bind(dev, &w[3], GG_TYPE_F32, k, 16, host, BACKEND_USE_MATMUL, NULL) == SP_OK);
    CHECK(w[3].owned == NULL && w[3].data == (const void *)host);
    const size_t bytes = (size_t)(k * big) * sizeof(float);
    CHECK(w[0].owned != NULL && w[0].data == w[0].owned && w[0].data != (const void *)host);
    CHECK(w[0].owned_bytes == bytes && ((uintptr_t)w[0].data % SP_HUGE_BYTES) == 0);
    CHECK(w[0].grp_rows == 0 && w[0].row_bytes == (size_t)k * sizeof(float));
    CHECK(memcmp(w[0].data, host, bytes) == 0);
    CHECK(w[1].owned == NULL && w[1].data == (const void *)host);
    /* a smaller one is a copy too, from the device's arena (64-byte aligned) */
    const size_t sbytes = (size_t)(k * small) * sizeof(float);
    CHECK(w[2].owned != NULL && w[2].data == w[2].owned && w[2].data != (const void *)host);
    CHECK(w[2].owned_bytes == sbytes && ((uintptr_t)w[2].data % 64) == 0);
    CHECK(memcmp(w[2].data, host, sbytes) == 0);
    CHECK(dev->owned_bytes == bytes + sbytes);
    backend_device_seal(dev);
    CHECK(memcmp(w[2].data, host, sbytes) == 0);
    for (int i = 0; i < 4; i++)
        backend_weight_release(dev, &w[i]);
    CHECK_EQ_INT(dev->n_bound, 0);
    backend_device_free(dev);
    sp_free(host);
}

/* ---- a synthetic bert (encoder): its own tensor set binds the same way */

enum { BE = 32, BF = 64, BH = 4, BL = 2, BV = 40, BCTX = 16 };

static float g_bdata[BF * BV];

static void *build_bert(size_t *size)
{
    uint64_t r = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < SP_ARRAY_LEN(g_bdata); i++)
        g_bdata[i] = (float)(test_rand_u32(&r) % 2001) / 1000.0f - 1.0f;
    struct gg_writer *w = gg_writer_new();
    bool ok = w && gg_writer_add_kv_str(w, "general.architecture", "bert") == SP_OK &&
              gg_writer_add_kv_u32(w, "bert.embedding_length", BE) == SP_OK &&
              gg_writer_add_kv_u32(w, "bert.feed_forward_length", BF) == SP_OK &&
              gg_writer_add_kv_u32(w, "bert.block_count", BL) == SP_OK &&
              gg_writer_add_kv_u32(w, "bert.context_length", BCTX) == SP_OK &&
              gg_writer_add_kv_u32(w, "bert.attention.head_count", BH) == SP_OK &&
              gg_writer_add_kv_u32(w, "bert.pooling_type", 1) == SP_OK;
    struct {
        const char *name;
        int64_t ne0, ne1;
    } t[] = {{"token_embd.weight", BE, BV},       {"position_embd.weight", BE, BCTX},
             {"token_types.weight", BE, 2},       {"token_embd_norm.weight", BE, 1},
             {"token_embd_norm.bias", BE, 1}};
    for (size_t i = 0; ok && i < SP_ARRAY_LEN(t); i++) {
        int64_t ne[2] = {t[i].ne0, t[i].ne1};
        ok = gg_writer_add_tensor(w, t[i].name, GG_TYPE_F32, t[i].ne1 > 1 ? 2 : 1, ne, g_bdata) == SP_OK;
    }
    static char names[BL][12][48];
    static const struct {
        const char *s;
        int64_t ne0, ne1;
    } lt[] = {{"attn_q.weight", BE, BE},         {"attn_k.weight", BE, BE},       {"attn_v.weight", BE, BE},
              {"attn_output.weight", BE, BE},    {"ffn_up.weight", BE, BF},       {"ffn_down.weight", BF, BE},
              {"attn_q.bias", BE, 1},            {"attn_output_norm.weight", BE, 1},
              {"attn_output_norm.bias", BE, 1},  {"layer_output_norm.weight", BE, 1},
              {"layer_output_norm.bias", BE, 1}, {"ffn_down.bias", BE, 1}};
    for (int l = 0; ok && l < BL; l++)
        for (size_t i = 0; ok && i < SP_ARRAY_LEN(lt); i++) {
            snprintf(names[l][i], sizeof(names[l][i]), "blk.%d.%s", l, lt[i].s);
            int64_t ne[2] = {lt[i].ne0, lt[i].ne1};
            ok = gg_writer_add_tensor(w, names[l][i], GG_TYPE_F32, lt[i].ne1 > 1 ? 2 : 1, ne, g_bdata) == SP_OK;
        }
    void *out = NULL;
    if (!ok || gg_writer_write_mem(w, NULL, NULL, &out, size, NULL) != SP_OK)
        out = NULL;
    gg_writer_free(w);
    return out;
}

/* Pooled vectors of two inputs on a fresh embedding state of m. */
static bool bert_embed(const struct model *m, float *out)
{
    static const int32_t toks[7] = {2, 5, 7, 11, 3, 13, 17};
    static const int32_t start[3] = {0, 4, 7};
    struct model_bert_state *s = NULL;
    bool ok = model_bert_state_new(m, 16, 2, &s, NULL) == SP_OK &&
              model_bert_embed(s, toks, start, 2, out, NULL) == SP_OK;
    model_bert_state_free(s);
    return ok;
}

TEST(bert_binds_through_device)
{
    size_t size = 0;
    void *buf = build_bert(&size);
    CHECK(buf != NULL);
    struct gg_file *f = NULL;
    struct model *m = NULL;
    CHECK(gg_open_memory(buf, size, &f, NULL) == SP_OK);
    static float ref[2 * BE], got[2 * BE];
    CHECK(model_load(f, &m, NULL) == SP_OK);
    CHECK_EQ_INT(m->dev->n_bound, 2 + 6 * BL); /* token_embd, position_embd, 6 per layer */
    CHECK(bert_embed(m, ref));
    model_free(m);
    m = NULL;
    static struct copy_dev cd;
    copy_init(&cd);
    CHECK(model_load_on(&cd.base, f, &m, NULL) == SP_OK);
    CHECK_EQ_INT(cd.n_bind, 2 + 6 * BL);
    poison(f, buf, size);
    CHECK(bert_embed(m, got));
    CHECK_EQ_INT(cd.n_backend, 1);
    CHECK(memcmp(ref, got, sizeof ref) == 0);
    model_free(m);
    CHECK_EQ_INT(cd.n_release, 2 + 6 * BL);
    CHECK_EQ_INT(cd.base.n_bound, 0);
    gg_close(f);
    sp_free(buf);
}

int main(void)
{
    RUN(device_unsupported_kind);
    RUN(bert_binds_through_device);
    RUN(cpu_binds_views);
    RUN(copy_owns_storage);
    RUN(tied_embedding_binds_for_matmul);
    RUN(cpu_embedding_stays_a_view);
    RUN(cpu_copies_row_weights);
    RUN(failed_load_releases);
    RUN(engine_uses_chosen_kind);
    int rc = test_summary();
    return rc == 0 && !g_have_stories ? 77 : rc;
}
