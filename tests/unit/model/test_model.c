/* test_model.c - model loading: hyper-parameters and their defaults (rope
 * base 10000, eps 1e-5, n_head_kv = n_head, rope dims = head size, linear
 * rope scaling), tied embeddings, and clear errors for an unsupported
 * architecture, a missing tensor, a wrong shape, bad head counts; the
 * memory check's message; shared stories260K hyper-parameters; stale
 * (even non-finite) values in the KV cache's attention padding do not leak
 * into a new sequence's logits. */
#include "gguf/gguf.h"
#include "model/model.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { E = 32, F = 64, NH = 4, NV = 40 };

struct spec {
    const char *arch;
    bool tied, drop_q, bad_shape, kv3, scaling;
};

static float g_data[F * NV * 4];

static void *build(const struct spec *sp, size_t *size)
{
    struct gg_writer *w = gg_writer_new();
    char key[96];
#define K(s) (snprintf(key, sizeof(key), "%s.%s", sp->arch, s), key)
    bool ok = w && gg_writer_add_kv_str(w, "general.architecture", sp->arch) == SP_OK &&
              gg_writer_add_kv_u32(w, K("embedding_length"), E) == SP_OK &&
              gg_writer_add_kv_u32(w, K("feed_forward_length"), F) == SP_OK &&
              gg_writer_add_kv_u32(w, K("block_count"), 1) == SP_OK &&
              gg_writer_add_kv_u32(w, K("attention.head_count"), NH) == SP_OK;
    if (ok && sp->kv3)
        ok = gg_writer_add_kv_u32(w, K("attention.head_count_kv"), 3) == SP_OK;
    if (ok && sp->scaling)
        ok = gg_writer_add_kv_str(w, K("rope.scaling.type"), "linear") == SP_OK &&
             gg_writer_add_kv_f32(w, K("rope.scaling.factor"), 4.0f) == SP_OK &&
             gg_writer_add_kv_f32(w, K("rope.freq_base"), 500000.0f) == SP_OK;
#undef K
    struct {
        const char *name;
        int64_t ne0, ne1;
    } t[] = {{"token_embd.weight", E, NV},     {"output_norm.weight", E, 1}, {"output.weight", E, NV},
             {"blk.0.attn_norm.weight", E, 1}, {"blk.0.ffn_norm.weight", E, 1},
             {"blk.0.attn_q.weight", E, E},    {"blk.0.attn_k.weight", E, E}, {"blk.0.attn_v.weight", E, E},
             {"blk.0.attn_output.weight", E, E}, {"blk.0.ffn_gate.weight", E, F}, {"blk.0.ffn_up.weight", E, F},
             {"blk.0.ffn_down.weight", F, E},  {"blk.0.attn_q.bias", E, 1},  {"blk.0.attn_k.bias", E, 1},
             {"blk.0.attn_v.bias", E, 1}};
    size_t n = SP_ARRAY_LEN(t);
    if (strcmp(sp->arch, "qwen2") != 0)
        n -= 3;
    for (size_t i = 0; ok && i < n; i++) {
        if (sp->tied && strcmp(t[i].name, "output.weight") == 0)
            continue;
        if (sp->drop_q && strcmp(t[i].name, "blk.0.attn_q.weight") == 0)
            continue;
        int64_t ne[2] = {t[i].ne0, t[i].ne1};
        if (sp->bad_shape && strcmp(t[i].name, "blk.0.ffn_up.weight") == 0)
            ne[1] = F + 1;
        ok = gg_writer_add_tensor(w, t[i].name, GG_TYPE_F32, t[i].ne1 > 1 ? 2 : 1, ne, g_data) == SP_OK;
    }
    void *out = NULL;
    if (!ok || gg_writer_write_mem(w, NULL, NULL, &out, size, NULL) != SP_OK)
        out = NULL;
    gg_writer_free(w);
    return out;
}

static enum sp_status try_load(const struct spec *sp, struct model_hparams *hp, bool *tied, struct sp_err *err)
{
    size_t size = 0;
    void *buf = build(sp, &size);
    if (!buf)
        return SP_ERR_INTERNAL;
    struct gg_file *f = NULL;
    struct model *m = NULL;
    enum sp_status st = gg_open_memory(buf, size, &f, err);
    if (st == SP_OK)
        st = model_load(f, &m, err);
    if (st == SP_OK) {
        *hp = m->hp;
        *tied = m->tied_output;
        /* it also runs */
        struct model_state_opts o = {.n_ctx = 8, .n_threads = 2, .kv_type = KV_F16};
        struct model_state *s = NULL;
        static float logits[NV];
        int32_t toks[3] = {1, 2, 39};
        if (model_state_new(m, &o, &s, err) == SP_OK) {
            if (model_eval(s, toks, 3, 0, logits, err) != SP_OK)
                st = SP_ERR_INTERNAL;
            toks[0] = NV; /* out of range */
            if (model_eval(s, toks, 1, 3, logits, NULL) != SP_ERR_INVALID)
                st = SP_ERR_INTERNAL;
            if (model_eval(s, toks + 1, 1, 8, logits, NULL) != SP_ERR_INVALID) /* past the context */
                st = SP_ERR_INTERNAL;
        } else {
            st = SP_ERR_INTERNAL;
        }
        model_state_free(s);
    }
    model_free(m);
    gg_close(f);
    sp_free(buf);
    return st;
}

TEST(hparams_and_defaults)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(g_data); i++)
        g_data[i] = (float)((int)(i % 17) - 8) * 0.01f;
    struct model_hparams hp;
    bool tied = false;
    struct sp_err err = {0};
    struct spec sp = {.arch = "llama", .tied = true};
    CHECK_EQ_INT(try_load(&sp, &hp, &tied, &err), SP_OK);
    CHECK(tied);
    CHECK_EQ_INT(hp.n_head_kv, NH);
    CHECK_EQ_INT(hp.head_dim, E / NH);
    CHECK_EQ_INT(hp.n_rot, E / NH);
    CHECK_EQ_INT(hp.n_vocab, NV);
    CHECK_NEAR(hp.rope_freq_base, 10000.0, 0);
    CHECK_NEAR(hp.rms_eps, 1e-5, 1e-12);
    CHECK_NEAR(hp.rope_freq_scale, 1.0, 0);
    CHECK(!hp.rope_neox);
    struct spec q = {.arch = "qwen2", .scaling = true};
    CHECK_EQ_INT(try_load(&q, &hp, &tied, &err), SP_OK);
    CHECK(!tied && hp.rope_neox && hp.arch == MODEL_ARCH_QWEN2);
    CHECK_NEAR(hp.rope_freq_scale, 0.25, 1e-7);
    CHECK_NEAR(hp.rope_freq_base, 500000.0, 0);
}

TEST(load_errors_are_clear)
{
    struct model_hparams hp;
    bool tied;
    struct sp_err err = {0};
    struct spec a = {.arch = "gpt2"};
    CHECK_EQ_INT(try_load(&a, &hp, &tied, &err), SP_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "gpt2") && strstr(err.msg, "llama"));
    struct spec b = {.arch = "llama", .drop_q = true};
    CHECK_EQ_INT(try_load(&b, &hp, &tied, &err), SP_ERR_FORMAT);
    CHECK(strstr(err.msg, "blk.0.attn_q.weight") != NULL);
    struct spec c = {.arch = "llama", .bad_shape = true};
    CHECK_EQ_INT(try_load(&c, &hp, &tied, &err), SP_ERR_FORMAT);
    CHECK(strstr(err.msg, "ffn_up") && strstr(err.msg, "shape"));
    struct spec d = {.arch = "llama", .kv3 = true};
    CHECK_EQ_INT(try_load(&d, &hp, &tied, &err), SP_ERR_FORMAT);
    CHECK(strstr(err.msg, "head_count_kv") != NULL);
}

TEST(mem_check_message)
{
    struct sp_err err = {0};
    setenv("SPOKE_MEM_AVAILABLE", "1048576000", 1); /* 1000 MiB */
    CHECK_EQ_INT(model_mem_check(700u << 20, 100u << 20, "m.gguf", &err), SP_OK);
    CHECK_EQ_INT(model_mem_check(900u << 20, 100u << 20, "m.gguf", &err), SP_ERR_MEMORY);
    CHECK(strstr(err.msg, "1100 MiB") && strstr(err.msg, "900 MiB") && strstr(err.msg, "1000 MiB"));
    CHECK(strstr(err.msg, "smaller quantization") != NULL);
    CHECK_EQ_INT(model_mem_available(), 1048576000);
    unsetenv("SPOKE_MEM_AVAILABLE");
    CHECK(model_mem_available() > 0);
}

/* Open and load ../shared's stories260K.gguf: 1 loaded, 0 absent, -1 failed
 * (nothing left open). */
static int load_stories(struct gg_file **f, struct model **m)
{
    char path[1024];
    *f = NULL;
    *m = NULL;
    if (!test_shared_file(path, sizeof(path), "models/stories260K.gguf"))
        return 0;
    if (gg_open(path, f, NULL) == SP_OK && model_load(*f, m, NULL) == SP_OK)
        return 1;
    gg_close(*f);
    *f = NULL;
    return -1;
}

TEST(stories260k_hparams)
{
    struct gg_file *f;
    struct model *m;
    int st = load_stories(&f, &m);
    if (st == 0)
        SKIP("stories260K.gguf not found");
    CHECK_EQ_INT(st, 1);
    CHECK_EQ_INT(m->hp.n_embd, 64);
    CHECK_EQ_INT(m->hp.n_head, 8);
    CHECK_EQ_INT(m->hp.n_head_kv, 4);
    CHECK_EQ_INT(m->hp.n_layer, 5);
    CHECK_EQ_INT(m->hp.n_ff, 172);
    CHECK_EQ_INT(m->hp.n_vocab, 512);
    CHECK_EQ_INT(m->hp.n_ctx_train, 2048);
    CHECK(!m->tied_output);
    struct model_state_opts o = {.n_ctx = 2048, .n_threads = 2, .kv_type = KV_F16};
    CHECK(model_state_bytes(m, &o) > (size_t)5 * 2048 * 32 * 2 * 2);
    model_free(m);
    gg_close(f);
}

/* Attention reads the cache padded to 32 positions with zero weights (as
 * llama.cpp does); values left there by an earlier, longer sequence must not
 * matter, not even an overflowed (inf) entry: a new 5-token sequence gives
 * bit-identical logits to a fresh state's. */
TEST(stale_kv_padding_is_inert)
{
    struct gg_file *f;
    struct model *m;
    int st = load_stories(&f, &m);
    if (st == 0)
        SKIP("stories260K.gguf not found");
    CHECK_EQ_INT(st, 1);
    struct model_state_opts o = {.n_ctx = 64, .n_threads = 2, .kv_type = KV_F16};
    struct model_state *fresh = NULL, *used = NULL;
    CHECK(model_state_new(m, &o, &fresh, NULL) == SP_OK);
    CHECK(model_state_new(m, &o, &used, NULL) == SP_OK);
    int32_t a[40], b[5] = {1, 403, 407, 261, 378};
    for (int i = 0; i < 40; i++)
        a[i] = 3 + (i * 37) % 500;
    static float l1[512], l2[512];
    CHECK(model_eval(fresh, b, 5, 0, l1, NULL) == SP_OK);
    CHECK(model_eval(used, a, 40, 0, NULL, NULL) == SP_OK);
    struct kv_cache *kv = model_state_kv(used);
    for (int l = 0; l < kv->n_layer; l++)
        for (int d = 0; d < kv->kv_dim; d++)
            for (int p = 10; p < 20; p++)
                ((uint16_t *)kv_cache_v(kv, l, d))[p] = 0x7c00; /* +inf */
    CHECK(model_eval(used, b, 5, 0, l2, NULL) == SP_OK);
    int finite = 0;
    for (int i = 0; i < 512; i++)
        finite += isfinite(l2[i]) != 0;
    CHECK_EQ_INT(finite, 512);
    CHECK(memcmp(l1, l2, sizeof l1) == 0);
    model_state_free(fresh);
    model_state_free(used);
    model_free(m);
    gg_close(f);
}

int main(void)
{
    RUN(hparams_and_defaults);
    RUN(load_errors_are_clear);
    RUN(mem_check_message);
    RUN(stories260k_hparams);
    RUN(stale_kv_padding_is_inert);
    return test_summary();
}
