/* test_arch_load.c - the architecture table on small synthetic GGUFs written
 * in memory: what each family requires and accepts (fused phi3 tensors as row
 * views, separate q/k/v for phi3, qwen3 head size from key_length and its
 * required q/k norms, gemma3's sliding-window layer pattern (period or
 * per-layer flags) and RoPE bases,
 * tied or untied output), the unknown-family message, and effects that must
 * show in the logits: rope factors of 1 change nothing, other factors do;
 * phi3's long factors only when the context exceeds the original one; a
 * sliding window hides tokens outside it; soft-capping bounds the logits. */
#include "gguf/gguf.h"
#include "model/model.h"
#include "test.h"

#include <math.h>
#include <string.h>

enum { E = 32, F = 64, NH = 4, NV = 40, MAXT = 32 };

struct tdef {
    const char *name; /* "blk.%d." prefix added when per_layer */
    int64_t ne0, ne1;
    bool per_layer;
    float fill;       /* 0: pseudo-random data, else this constant */
};

struct mspec {
    const char *arch;
    int n_layer;
    struct {
        const char *k;
        uint32_t v;
    } u32[6];
    struct {
        const char *k;
        float v;
    } f32[4];
    struct tdef t[MAXT];
    const uint8_t *swa_layers; /* attention.sliding_window_pattern as a bool per layer, or NULL */
};

static float g_rand[F * NV * 4];

/* The llama-style tensor set for E/F/NH (q/k/v/o, gate/up/down, norms). */
#define T_BASE                                                                                              \
    {"token_embd.weight", E, NV, false, 0}, {"output_norm.weight", E, 1, false, 1},                        \
        {"attn_norm.weight", E, 1, true, 1}, {"ffn_norm.weight", E, 1, true, 1},                           \
        {"attn_output.weight", E, E, true, 0}, {"ffn_down.weight", F, E, true, 0}
#define T_QKV {"attn_q.weight", E, E, true, 0}, {"attn_k.weight", E, E, true, 0}, {"attn_v.weight", E, E, true, 0}
#define T_GATE_UP {"ffn_gate.weight", E, F, true, 0}, {"ffn_up.weight", E, F, true, 0}

static void *build(const struct mspec *sp, size_t *size)
{
    struct gg_writer *w = gg_writer_new();
    char key[128];
    static float consts[MAXT][F * NV];
    const int nl = sp->n_layer ? sp->n_layer : 1;
#define K(s) (snprintf(key, sizeof(key), "%s.%s", sp->arch, s), key)
    bool ok = w && gg_writer_add_kv_str(w, "general.architecture", sp->arch) == SP_OK &&
              gg_writer_add_kv_u32(w, K("embedding_length"), E) == SP_OK &&
              gg_writer_add_kv_u32(w, K("feed_forward_length"), F) == SP_OK &&
              gg_writer_add_kv_u32(w, K("block_count"), (uint32_t)nl) == SP_OK &&
              gg_writer_add_kv_u32(w, K("attention.head_count"), NH) == SP_OK;
    for (int i = 0; ok && i < 6 && sp->u32[i].k; i++)
        ok = gg_writer_add_kv_u32(w, K(sp->u32[i].k), sp->u32[i].v) == SP_OK;
    for (int i = 0; ok && i < 4 && sp->f32[i].k; i++)
        ok = gg_writer_add_kv_f32(w, K(sp->f32[i].k), sp->f32[i].v) == SP_OK;
    if (ok && sp->swa_layers)
        ok = gg_writer_add_kv_arr(w, K("attention.sliding_window_pattern"), GG_VAL_BOOL, sp->swa_layers,
                                  (uint64_t)nl) == SP_OK;
#undef K
    for (int i = 0; ok && i < MAXT && sp->t[i].name; i++) {
        const struct tdef *t = &sp->t[i];
        const float *data = g_rand;
        if (t->fill != 0) {
            for (int64_t j = 0; j < t->ne0 * t->ne1; j++)
                consts[i][j] = t->fill;
            data = consts[i];
        }
        int64_t ne[2] = {t->ne0, t->ne1};
        for (int l = 0; ok && l < (t->per_layer ? nl : 1); l++) {
            char name[96];
            if (t->per_layer)
                snprintf(name, sizeof(name), "blk.%d.%s", l, t->name);
            else
                snprintf(name, sizeof(name), "%s", t->name);
            ok = gg_writer_add_tensor(w, name, GG_TYPE_F32, t->ne1 > 1 ? 2 : 1, ne, data) == SP_OK;
        }
    }
    void *out = NULL;
    if (!ok || gg_writer_write_mem(w, NULL, NULL, &out, size, NULL) != SP_OK)
        out = NULL;
    gg_writer_free(w);
    return out;
}

struct loaded {
    void *buf;
    struct gg_file *f;
    struct model *m;
};

static enum sp_status load(const struct mspec *sp, struct loaded *L, struct sp_err *err)
{
    size_t size = 0;
    memset(L, 0, sizeof(*L));
    L->buf = build(sp, &size);
    if (!L->buf)
        return SP_ERR_INTERNAL;
    enum sp_status st = gg_open_memory(L->buf, size, &L->f, err);
    if (st == SP_OK)
        st = model_load(L->f, &L->m, err);
    return st;
}

static void unload(struct loaded *L)
{
    model_free(L->m);
    gg_close(L->f);
    sp_free(L->buf);
}

/* Logits of the last of n tokens evaluated as one batch in a fresh state. */
static bool run(const struct model *m, int n_ctx, const int32_t *toks, int n, float *logits)
{
    struct model_state_opts o = {.n_ctx = n_ctx, .n_threads = 2, .kv_type = KV_F32};
    struct model_state *s = NULL;
    bool ok = model_state_new(m, &o, &s, NULL) == SP_OK && model_eval(s, toks, n, 0, logits, NULL) == SP_OK;
    model_state_free(s);
    return ok;
}

static const int32_t toks6[6] = {3, 17, 5, 29, 11, 8};

TEST(unknown_family_lists_supported)
{
    struct mspec sp = {.arch = "gpt2", .t = {T_BASE, T_QKV, T_GATE_UP}};
    struct loaded L;
    struct sp_err err = {0};
    CHECK_EQ_INT(load(&sp, &L, &err), SP_ERR_UNSUPPORTED);
    unload(&L);
    CHECK(strstr(err.msg, "'gpt2'") && strstr(err.msg, "qwen3") && strstr(err.msg, "gemma3") &&
          strstr(err.msg, "phi3") && strstr(err.msg, "mistral"));
}

TEST(phi3_fused_tensors_are_row_views)
{
    struct mspec sp = {.arch = "phi3",
                       .t = {T_BASE, {"attn_qkv.weight", E, 3 * E, true, 0}, {"ffn_up.weight", E, 2 * F, true, 0}}};
    struct loaded L;
    struct sp_err err = {0};
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    const struct model_layer *ly = &L.m->layers[0];
    const char *qkv = gg_tensor_find(L.f, "blk.0.attn_qkv.weight")->data;
    const char *up = gg_tensor_find(L.f, "blk.0.ffn_up.weight")->data;
    bool views = ly->wq.data == qkv && ly->wk.data == qkv + E * 4 * E && ly->wv.data == qkv + 2 * E * 4 * E &&
                 ly->wq.rows == E && ly->w_gate.data == up && ly->w_up.data == up + (size_t)F * E * 4 &&
                 ly->w_up.rows == F && L.m->hp.rope_neox && L.m->hp.q_scale;
    float logits[NV];
    bool ran = run(L.m, 8, toks6, 3, logits) && isfinite(logits[0]);
    unload(&L);
    CHECK(views);
    CHECK(ran);
    /* separate q/k/v are accepted too; a missing fused ffn_up is named */
    struct mspec sep = {.arch = "phi3", .t = {T_BASE, T_QKV, {"ffn_up.weight", E, 2 * F, true, 0}}};
    CHECK_EQ_INT(load(&sep, &L, &err), SP_OK);
    unload(&L);
    struct mspec bad = {.arch = "phi3", .t = {T_BASE, T_QKV, T_GATE_UP}};
    CHECK_EQ_INT(load(&bad, &L, &err), SP_ERR_FORMAT);
    unload(&L);
    CHECK(strstr(err.msg, "ffn_up") && strstr(err.msg, "shape"));
}

TEST(qwen3_head_size_and_norms)
{
    /* head size 16 != E / NH = 8: q is NH * 16 wide */
    struct mspec sp = {.arch = "qwen3",
                       .u32 = {{"attention.key_length", 16}, {"attention.value_length", 16}},
                       .t = {{"token_embd.weight", E, NV, false, 0},
                             {"output_norm.weight", E, 1, false, 1},
                             {"attn_norm.weight", E, 1, true, 1},
                             {"ffn_norm.weight", E, 1, true, 1},
                             {"attn_q.weight", E, NH * 16, true, 0},
                             {"attn_k.weight", E, NH * 16, true, 0},
                             {"attn_v.weight", E, NH * 16, true, 0},
                             {"attn_q_norm.weight", 16, 1, true, 1},
                             {"attn_k_norm.weight", 16, 1, true, 1},
                             {"attn_output.weight", NH * 16, E, true, 0},
                             {"ffn_down.weight", F, E, true, 0},
                             T_GATE_UP}};
    struct loaded L;
    struct sp_err err = {0};
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    bool ok = L.m->hp.head_dim == 16 && L.m->layers[0].q_norm && L.m->layers[0].k_norm && L.m->tied_output &&
              fabsf(L.m->hp.attn_scale - 0.25f) < 1e-7f;
    float logits[NV];
    bool ran = run(L.m, 8, toks6, 4, logits) && isfinite(logits[1]);
    unload(&L);
    CHECK(ok);
    CHECK(ran);
    sp.t[8].name = "attn_k_normx.weight"; /* drop the k norm */
    CHECK_EQ_INT(load(&sp, &L, &err), SP_ERR_FORMAT);
    unload(&L);
    CHECK(strstr(err.msg, "blk.0.attn_k_norm.weight") != NULL);
}

#define T_GEMMA                                                                                              \
    T_BASE, T_QKV, T_GATE_UP, {"attn_q_norm.weight", 8, 1, true, 1}, {"attn_k_norm.weight", 8, 1, true, 1}, \
        {"post_attention_norm.weight", E, 1, true, 1}, {"post_ffw_norm.weight", E, 1, true, 1}

TEST(gemma3_window_pattern_and_bases)
{
    struct mspec sp = {.arch = "gemma3",
                       .n_layer = 7,
                       .u32 = {{"attention.sliding_window", 4}},
                       .f32 = {{"rope.freq_base", 1e6f}, {"rope.freq_base_swa", 5000.0f}},
                       .t = {T_GEMMA}};
    struct loaded L;
    struct sp_err err = {0};
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    /* default pattern 6: layers 5 (and 11, ...) are global */
    int n_swa = 0;
    for (int l = 0; l < 7; l++)
        n_swa += L.m->layers[l].swa;
    bool ok = n_swa == 6 && !L.m->layers[5].swa && L.m->layers[5].rope_base == 1e6f &&
              L.m->layers[0].rope_base == 5000.0f && L.m->hp.n_swa == 4 &&
              L.m->hp.embd_scale == sqrtf((float)E) && L.m->hp.act == MODEL_ACT_GELU &&
              L.m->layers[0].attn_post_norm && L.m->layers[0].ffn_post_norm;
    unload(&L);
    CHECK(ok);
    sp.u32[1].k = "attention.sliding_window_pattern";
    sp.u32[1].v = 2;
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    ok = L.m->layers[0].swa && !L.m->layers[1].swa && L.m->layers[2].swa && !L.m->layers[3].swa;
    unload(&L);
    CHECK(ok);
    /* the pattern as one flag per layer (llama.cpp's array form) */
    const uint8_t flags[7] = {1, 1, 0, 1, 0, 0, 1};
    struct mspec arr = sp;
    arr.u32[1].k = NULL;
    arr.swa_layers = flags;
    CHECK_EQ_INT(load(&arr, &L, &err), SP_OK);
    ok = true;
    for (int l = 0; l < 7; l++)
        ok = ok && L.m->layers[l].swa == (flags[l] != 0);
    unload(&L);
    CHECK(ok);
    /* no window: no SWA layer, one RoPE base */
    sp.u32[0].k = "context_length";
    sp.u32[0].v = 64;
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    ok = !L.m->layers[0].swa && L.m->layers[0].rope_base == 1e6f;
    unload(&L);
    CHECK(ok);
    /* post-norms are required */
    sp.t[14].name = "post_ffw_normx.weight";
    CHECK_EQ_INT(load(&sp, &L, &err), SP_ERR_FORMAT);
    unload(&L);
    CHECK(strstr(err.msg, "post_ffw_norm") != NULL);
}

TEST(sliding_window_hides_old_tokens)
{
    /* one layer, every layer SWA (pattern 0), window 2: the last position
     * sees only itself and the one before */
    struct mspec sp = {.arch = "gemma3",
                       .u32 = {{"attention.sliding_window", 2}, {"attention.sliding_window_pattern", 0}},
                       .t = {T_GEMMA}};
    struct loaded L;
    struct sp_err err = {0};
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    const int32_t a[5] = {3, 17, 5, 29, 11}, b[5] = {7, 2, 33, 29, 11};
    float la[NV], lb[NV];
    bool ran = run(L.m, 8, a, 5, la) && run(L.m, 8, b, 5, lb);
    double diff = 0;
    for (int i = 0; i < NV; i++)
        diff = fmax(diff, fabs((double)la[i] - lb[i]));
    if (!ran || diff != 0)
        unload(&L);
    CHECK(ran);
    CHECK_MSG(diff == 0, "window 2: diff %g", diff);
    /* far into the context (positions past 64, where the attention skips
     * whole blocks before the window): still exactly the window */
    int32_t la100[100], lb100[100];
    for (int i = 0; i < 100; i++) {
        la100[i] = (int32_t)((i * 7 + 1) % NV);
        lb100[i] = i < 98 ? (int32_t)((i * 11 + 3) % NV) : la100[i];
    }
    ran = run(L.m, 128, la100, 100, la) && run(L.m, 128, lb100, 100, lb);
    bool equal = ran && memcmp(la, lb, sizeof(la)) == 0;
    lb100[98] = (la100[98] + 1) % NV; /* inside the window: it matters */
    ran = ran && run(L.m, 128, lb100, 100, lb);
    bool seen = ran && memcmp(la, lb, sizeof(la)) != 0;
    unload(&L);
    CHECK(equal);
    CHECK(seen);
    /* a window of 8 sees the differing tokens */
    sp.u32[0].v = 8;
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    ran = run(L.m, 8, a, 5, la) && run(L.m, 8, b, 5, lb);
    diff = 0;
    for (int i = 0; i < NV; i++)
        diff = fmax(diff, fabs((double)la[i] - lb[i]));
    unload(&L);
    CHECK(ran);
    CHECK(diff > 1e-3);
}

static bool same(const float *a, const float *b) { return memcmp(a, b, NV * sizeof(float)) == 0; }

TEST(rope_factors)
{
    /* llama rope_freqs: all 1 = none, bit for bit; 4 changes the logits */
    struct mspec sp = {.arch = "llama", .t = {T_BASE, T_QKV, T_GATE_UP}};
    struct loaded L;
    struct sp_err err = {0};
    float ref[NV], got[NV];
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    bool ran = run(L.m, 8, toks6, 6, ref);
    unload(&L);
    CHECK(ran);
    sp.t[11] = (struct tdef){"rope_freqs.weight", 4, 1, false, 1.0f};
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    ran = L.m->layers[0].rope_factors && run(L.m, 8, toks6, 6, got);
    unload(&L);
    CHECK(ran && same(ref, got));
    sp.t[11].fill = -1.0f; /* factors must be positive */
    CHECK_EQ_INT(load(&sp, &L, &err), SP_ERR_FORMAT);
    unload(&L);
    CHECK(strstr(err.msg, "factor") != NULL);
    sp.t[11].fill = 4.0f;
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    ran = run(L.m, 8, toks6, 6, got);
    unload(&L);
    CHECK(ran && !same(ref, got));
}

TEST(phi3_long_factors_only_past_the_original_context)
{
    struct mspec sp = {.arch = "phi3",
                       .u32 = {{"rope.scaling.original_context_length", 16}},
                       .t = {T_BASE, {"attn_qkv.weight", E, 3 * E, true, 0}, {"ffn_up.weight", E, 2 * F, true, 0}}};
    struct loaded L;
    struct sp_err err = {0};
    float ref[NV], short_ctx[NV], long_ctx[NV];
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    bool ran = run(L.m, 16, toks6, 6, ref);
    unload(&L);
    CHECK(ran);
    sp.t[8] = (struct tdef){"rope_factors_short.weight", 4, 1, false, 1.0f};
    sp.t[9] = (struct tdef){"rope_factors_long.weight", 4, 1, false, 4.0f};
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    ran = run(L.m, 16, toks6, 6, short_ctx) && run(L.m, 32, toks6, 6, long_ctx);
    unload(&L);
    CHECK(ran);
    CHECK(same(ref, short_ctx));
    CHECK(!same(ref, long_ctx));
}

TEST(softcap_bounds_logits)
{
    struct mspec sp = {.arch = "gemma3", .f32 = {{"final_logit_softcapping", 0.5f}}, .t = {T_GEMMA}};
    struct loaded L;
    struct sp_err err = {0};
    float logits[NV];
    CHECK_EQ_INT(load(&sp, &L, &err), SP_OK);
    bool ran = run(L.m, 8, toks6, 3, logits);
    unload(&L);
    CHECK(ran);
    for (int i = 0; i < NV; i++)
        CHECK(fabsf(logits[i]) <= 0.5f);
}

/* Logits of toks6 for sp with tensor extra (or none) added after its tensors. */
static bool logits_with(struct mspec sp, const struct tdef *extra, float *out, enum sp_status *st)
{
    struct loaded L;
    struct sp_err err = {0};
    int n = 0;
    while (n < MAXT - 1 && sp.t[n].name)
        n++;
    if (extra)
        sp.t[n] = *extra;
    *st = load(&sp, &L, &err);
    bool ran = *st == SP_OK && run(L.m, 8, toks6, 6, out);
    unload(&L);
    return ran;
}

TEST(every_present_bias_is_applied)
{
    /* llama (attention and FFN biases optional, as llama.cpp's loader) and
     * phi3 (fused attn_qkv.bias and gate+up ffn_up.bias): each bias alone
     * loads and moves the logits; a constant bias on the FFN down
     * projection moves them too */
    struct mspec ll = {.arch = "llama", .t = {T_BASE, T_QKV, T_GATE_UP}};
    const struct tdef lb[] = {
        {"attn_q.bias", E, 1, true, 0},   {"attn_k.bias", E, 1, true, 0},   {"attn_v.bias", E, 1, true, 0},
        {"attn_output.bias", E, 1, true, 0}, {"ffn_gate.bias", F, 1, true, 0}, {"ffn_up.bias", F, 1, true, 0},
        {"ffn_down.bias", E, 1, true, 0.25f},
    };
    float ref[NV], got[NV];
    enum sp_status st;
    CHECK(logits_with(ll, NULL, ref, &st));
    for (size_t i = 0; i < SP_ARRAY_LEN(lb); i++) {
        bool ran = logits_with(ll, &lb[i], got, &st);
        CHECK_MSG(ran && !same(ref, got), "llama %s: status %d, ran %d, logits %s", lb[i].name, (int)st, ran,
                  ran ? "unchanged" : "-");
    }
    struct mspec ph = {.arch = "phi3",
                       .t = {T_BASE, {"attn_qkv.weight", E, 3 * E, true, 0}, {"ffn_up.weight", E, 2 * F, true, 0}}};
    const struct tdef pb[] = {{"attn_qkv.bias", 3 * E, 1, true, 0}, {"ffn_up.bias", 2 * F, 1, true, 0}};
    CHECK(logits_with(ph, NULL, ref, &st));
    for (size_t i = 0; i < SP_ARRAY_LEN(pb); i++) {
        bool ran = logits_with(ph, &pb[i], got, &st);
        CHECK_MSG(ran && !same(ref, got), "phi3 %s: status %d", pb[i].name, (int)st);
    }
    /* the fused biases are split like their weights */
    struct loaded L;
    struct sp_err err = {0};
    ph.t[8] = pb[0];
    ph.t[9] = pb[1];
    CHECK_EQ_INT(load(&ph, &L, &err), SP_OK);
    if (L.m) {
        const struct model_layer *ly = &L.m->layers[0];
        CHECK(ly->bq && ly->bk == ly->bq + E && ly->bv == ly->bq + 2 * E);
        CHECK(ly->b_gate && ly->b_up == ly->b_gate + F);
        CHECK(ly->bq[E] == g_rand[E] && ly->b_up[0] == g_rand[F]);
    }
    unload(&L);
    /* a bias of the wrong length is named */
    const struct tdef wrong = {"ffn_down.bias", F, 1, true, 0};
    CHECK(!logits_with(ll, &wrong, got, &st) && st == SP_ERR_FORMAT);
}

TEST(unapplied_bias_is_refused)
{
    /* a bias the graph has no place for is an error, never ignored */
    struct mspec ll = {.arch = "llama", .t = {T_BASE, T_QKV, T_GATE_UP}};
    const struct tdef stray[] = {{"output.bias", NV, 1, false, 0}, {"attn_norm.bias", E, 1, true, 0}};
    for (size_t i = 0; i < SP_ARRAY_LEN(stray); i++) {
        struct loaded L;
        struct sp_err err = {0};
        ll.t[11] = stray[i];
        CHECK_EQ_INT(load(&ll, &L, &err), SP_ERR_UNSUPPORTED);
        unload(&L);
        CHECK_MSG(strstr(err.msg, stray[i].name) && strstr(err.msg, "bias"), "message: %s", err.msg);
    }
    /* phi3's separate attention biases next to a fused one are ambiguous */
    struct mspec ph = {.arch = "phi3",
                       .t = {T_BASE, {"attn_qkv.weight", E, 3 * E, true, 0}, {"ffn_up.weight", E, 2 * F, true, 0},
                             {"attn_qkv.bias", 3 * E, 1, true, 0}, {"attn_q.bias", E, 1, true, 0}}};
    struct loaded L;
    struct sp_err err = {0};
    CHECK_EQ_INT(load(&ph, &L, &err), SP_ERR_FORMAT);
    unload(&L);
}

TEST(tied_output_and_missing_rope_freqs)
{
    /* no output.weight: the output is the embedding (tied); no rope_freqs:
     * no factors; both load and run */
    struct mspec ll = {.arch = "llama", .t = {T_BASE, T_QKV, T_GATE_UP}};
    struct loaded L;
    struct sp_err err = {0};
    float got[NV];
    CHECK_EQ_INT(load(&ll, &L, &err), SP_OK);
    CHECK(L.m && L.m->tied_output && L.m->output.data == L.m->tok_embd.data && !L.m->layers[0].rope_factors);
    CHECK(L.m && run(L.m, 8, toks6, 6, got) && isfinite(got[0]));
    unload(&L);
    ll.t[11] = (struct tdef){"output.weight", E, NV, false, 0.5f};
    CHECK_EQ_INT(load(&ll, &L, &err), SP_OK);
    CHECK(L.m && !L.m->tied_output);
    unload(&L);
}

int main(void)
{
    uint64_t st = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < SP_ARRAY_LEN(g_rand); i++)
        g_rand[i] = ((float)(test_rand_u32(&st) % 2001) - 1000.0f) * 3e-4f;
    RUN(unknown_family_lists_supported);
    RUN(phi3_fused_tensors_are_row_views);
    RUN(qwen3_head_size_and_norms);
    RUN(gemma3_window_pattern_and_bases);
    RUN(sliding_window_hides_old_tokens);
    RUN(rope_factors);
    RUN(phi3_long_factors_only_past_the_original_context);
    RUN(softcap_bounds_logits);
    RUN(every_present_bias_is_applied);
    RUN(unapplied_bias_is_refused);
    RUN(tied_output_and_missing_rope_freqs);
    return test_summary();
}
