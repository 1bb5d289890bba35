/* test_swa.c - sliding-window layers keep only their window (kv.h rings).
 *
 * On the shared gemma3-f32.gguf (8-position window on layers 0 and 2):
 * - a state with rings (context 512, batch 16: rings of 128 positions)
 *   gives bit-identical logits to one that keeps every position
 *   (swa_full) over a 400-position run (prompt chunks of 16, then one token
 *   at a time), which wraps each ring three times, with F32 and F16 caches;
 * - three sequences batched together (chunks of one mixed with decode tokens
 *   of the others) give the bits each gives alone;
 * - prefix reuse: a cached sequence is taken over while its ring still
 *   holds the window before the reused prefix (and the continuation equals
 *   a fresh run bit for bit); once the ring moved past it, nothing is reused;
 * - the KV bytes (model_state_kv_bytes, the footprint's KV part) count the
 *   window layers at their rings' size.
 * Skips without ../shared. */
#include "gguf/gguf.h"
#include "model/model.h"
#include "test.h"

#include <string.h>

#define NCTX 512
#define NB 16
#define NPOS 400

/* under ASan (SPOKE_ASAN=1, -O0) the runs are shorter: they still wrap the
 * 128-position rings at least once, and the F32 cache is left to the
 * optimised build */
static bool g_asan;

static struct gg_file *g_file;
static struct model *g_model;

/* every test needs the model: skipped (as the load) when it is absent */
#define NEED_MODEL()                            \
    do {                                        \
        if (!g_model)                           \
            SKIP("gemma3-f32.gguf not loaded"); \
    } while (0)

static int32_t tok_at(int seq, int p) { return (int32_t)(3 + (uint32_t)(p * 131 + seq * 977 + (p * p) % 61) % 509u); }

/* One sequence alone: positions [0, npos) with tokens tok_at(seq, p), the
 * first n_prompt in chunks of NB, then one per call; the logits of every
 * evaluated step's last token go to out[p] (rows of n_vocab). */
static bool run_one(struct model_state *st, int seq, int n_prompt, int npos, float *out)
{
    const int nv = g_model->hp.n_vocab;
    int32_t t[NB];
    for (int p = 0; p < npos;) {
        int n = p < n_prompt ? SP_MIN(NB, n_prompt - p) : 1;
        for (int i = 0; i < n; i++)
            t[i] = tok_at(seq, p + i);
        if (model_eval(st, t, n, p, out + (size_t)(p + n - 1) * nv, NULL) != SP_OK)
            return false;
        p += n;
    }
    return true;
}

static struct model_state *state(enum kv_type kt, bool full, int n_seq)
{
    struct model_state_opts o = {.n_ctx = NCTX, .n_batch = NB, .n_threads = 2, .kv_type = kt, .n_seq = n_seq,
                                 .swa_full = full};
    struct model_state *st = NULL;
    return model_state_new(g_model, &o, &st, NULL) == SP_OK ? st : NULL;
}

/* Compare the logits rows written for the steps of a run (rows whose
 * position got logits): every one must be bit-identical. */
static int differing_rows(const float *a, const float *b, int n_prompt, int npos)
{
    const size_t nv = (size_t)g_model->hp.n_vocab;
    int bad = 0;
    for (int p = 0; p < npos; p++) {
        bool has = p >= n_prompt - 1 || (p + 1) % NB == 0;
        if (has && memcmp(a + p * nv, b + p * nv, nv * sizeof(float)) != 0)
            bad++;
    }
    return bad;
}

TEST(ring_equals_full)
{
    NEED_MODEL();
    const size_t nv = (size_t)g_model->hp.n_vocab;
    const int npos = g_asan ? 200 : NPOS;
    for (int kt = g_asan ? 1 : 0; kt < 2; kt++) {
        float *a = sp_calloc(NPOS * nv, sizeof(float)), *b = sp_calloc(NPOS * nv, sizeof(float));
        struct model_state *sr = state(kt ? KV_F16 : KV_F32, false, 1), *sf = state(kt ? KV_F16 : KV_F32, true, 1);
        CHECK(a && b && sr && sf);
        if (a && b && sr && sf) {
            CHECK(model_state_kv(sr)->ring == 128 && model_state_kv(sf)->ring == 0);
            CHECK(run_one(sr, 0, 45, npos, a));
            CHECK(run_one(sf, 0, 45, npos, b));
            int bad = differing_rows(a, b, 45, npos);
            CHECK_MSG(bad == 0, "kv %s: %d of the steps differ between rings and full length", kt ? "f16" : "f32",
                      bad);
        }
        model_state_free(sr);
        model_state_free(sf);
        sp_free(a);
        sp_free(b);
    }
}

TEST(batched_equals_alone)
{
    NEED_MODEL();
    enum { NS = 3, MAXLEN = 220 };
    const int LEN = g_asan ? 140 : MAXLEN;
    static const int np[NS] = {37, 5, 90}, start[NS] = {0, 20, 41};
    const size_t nv = (size_t)g_model->hp.n_vocab;
    float *alone = sp_calloc((size_t)NS * MAXLEN * nv, sizeof(float)),
          *bat = sp_calloc((size_t)NS * MAXLEN * nv, sizeof(float));
    float *lg = sp_calloc((size_t)NB * nv, sizeof(float));
    struct model_state *st = state(KV_F16, false, NS);
    CHECK(alone && bat && lg && st);
    if (!alone || !bat || !lg || !st)
        goto out;
    for (int i = 0; i < NS; i++) {
        struct model_state *s1 = state(KV_F16, false, 1);
        CHECK(s1 && run_one(s1, i, np[i], LEN, alone + (size_t)i * LEN * nv));
        model_state_free(s1);
    }
    struct kv_cache *kv = model_state_kv(st);
    int id[NS], done[NS] = {0}, reused;
    for (int i = 0; i < NS; i++)
        CHECK(kv_seq_open(kv, NCTX, NULL, 0, 0, &id[i], &reused) == SP_OK);
    int32_t tok[NB], pos[NB], seq[NB];
    bool want[NB];
    for (int step = 0; step < 2000; step++) {
        /* one token for each decoding sequence that has started, then a prompt chunk */
        int n = 0;
        for (int i = 0; i < NS && n < NB; i++)
            if (step >= start[i] && done[i] >= np[i] && done[i] < LEN) {
                tok[n] = tok_at(i, done[i]), pos[n] = done[i], seq[n] = id[i], want[n] = true;
                n++;
            }
        for (int i = 0; i < NS && n < NB - 1; i++)
            if (step >= start[i] && done[i] < np[i]) {
                int c = SP_MIN(np[i] - done[i], NB - n);
                if (np[i] - done[i] - c == 1)
                    c--; /* never leave a 1-token chunk: alone it was part of a chunk */
                for (int k = 0; k < c; k++) {
                    tok[n] = tok_at(i, done[i] + k), pos[n] = done[i] + k, seq[n] = id[i];
                    want[n] = (done[i] + k + 1) % NB == 0 || done[i] + k == np[i] - 1;
                    n++;
                }
                break;
            }
        if (n == 0)
            break;
        struct model_batch b = {n, tok, pos, seq, want};
        if (model_decode(st, &b, lg, NULL) != SP_OK) {
            CHECK(!"model_decode failed");
            goto out;
        }
        int o = 0;
        for (int r = 0; r < n; r++) {
            int i = 0;
            while (id[i] != seq[r])
                i++;
            if (want[r])
                memcpy(bat + ((size_t)i * LEN + pos[r]) * nv, lg + (size_t)o++ * nv, nv * sizeof(float));
            done[i] = pos[r] + 1;
        }
    }
    for (int i = 0; i < NS; i++) {
        CHECK(done[i] == LEN);
        int bad = differing_rows(alone + (size_t)i * LEN * nv, bat + (size_t)i * LEN * nv, np[i], LEN);
        CHECK_MSG(bad == 0, "sequence %d: %d steps differ batched vs alone", i, bad);
    }
out:
    model_state_free(st);
    sp_free(alone);
    sp_free(bat);
    sp_free(lg);
}

TEST(prefix_reuse_needs_the_window)
{
    NEED_MODEL();
    const size_t nv = (size_t)g_model->hp.n_vocab;
    float *a = sp_calloc(NPOS * nv, sizeof(float)), *b = sp_calloc(NPOS * nv, sizeof(float));
    struct model_state *st = state(KV_F32, false, 2), *fresh = state(KV_F32, false, 1);
    CHECK(a && b && st && fresh);
    if (!a || !b || !st || !fresh)
        goto out;
    struct kv_cache *kv = model_state_kv(st);
    /* B runs to plen positions: past 100 + 8 + 128 - 32, so position 100's window left its ring */
    const int plen = g_asan ? 220 : 300;
    int32_t prompt[300];
    for (int p = 0; p < 300; p++)
        prompt[p] = tok_at(0, p);
    /* sequence A: 40 positions (chunks of 16, 16, 8), then cached */
    int ida, idb, reused;
    CHECK(kv_seq_open(kv, NCTX, NULL, 0, 0, &ida, &reused) == SP_OK);
    int32_t pos[NB], seq[NB];
    for (int p = 0; p < 40; p += 16) {
        int n = SP_MIN(16, 40 - p);
        for (int i = 0; i < n; i++)
            pos[i] = p + i, seq[i] = ida;
        struct model_batch bt = {n, prompt + p, pos, seq, NULL};
        CHECK(model_decode(st, &bt, a, NULL) == SP_OK);
    }
    kv_seq_close(kv, ida, true);
    /* B continues A's first 32 positions: the ring holds them (and more) */
    CHECK(kv_seq_open(kv, NCTX, prompt, 64, 32, &idb, &reused) == SP_OK);
    CHECK_EQ_INT(reused, 32);
    for (int p = 32; p < 64; p += 16) {
        for (int i = 0; i < 16; i++)
            pos[i] = p + i, seq[i] = idb;
        struct model_batch bt = {16, prompt + p, pos, seq, NULL};
        CHECK(model_decode(st, &bt, a, NULL) == SP_OK);
    }
    /* the same 64 positions fresh, in the same chunks */
    CHECK(run_one(fresh, 0, 64, 64, b));
    CHECK(memcmp(a, b + 63 * nv, nv * sizeof(float)) == 0);
    /* B runs on to plen positions and is cached: a prompt sharing its first
     * 100 tokens cannot reuse them (the ring moved past position 100) */
    for (int p = 64; p < plen; p += 16) {
        int n = SP_MIN(16, plen - p);
        for (int i = 0; i < n; i++)
            pos[i] = p + i, seq[i] = idb;
        struct model_batch bt = {n, prompt + p, pos, seq, NULL};
        CHECK(model_decode(st, &bt, a, NULL) == SP_OK);
    }
    kv_seq_close(kv, idb, true);
    CHECK(kv_seq_open(kv, NCTX, prompt, 100, 100, &ida, &reused) == SP_OK);
    CHECK_EQ_INT(reused, 0);
    kv_seq_close(kv, ida, false);
    /* a prefix ending 10 positions before its end is still in the ring: reusable */
    CHECK(kv_seq_open(kv, NCTX, prompt, plen, plen - 10, &ida, &reused) == SP_OK);
    CHECK_EQ_INT(reused, plen - 10);
out:
    model_state_free(st);
    model_state_free(fresh);
    sp_free(a);
    sp_free(b);
}

TEST(kv_bytes_count_rings)
{
    NEED_MODEL();
    /* 4 layers, window layers 0 and 2, kv_dim 64 (1 KV head of 64), F16:
     * full layers 2 x 1024 cells, ring layers 2 x (2 sequences x 2 x 128) */
    struct model_state_opts o = {.n_ctx = NCTX, .n_batch = NB, .n_threads = 2, .kv_type = KV_F16, .n_seq = 2};
    CHECK_EQ_INT((int)model_state_kv_bytes(g_model, &o), 2 * 1024 * 64 * 2 * 2 + 2 * 512 * 64 * 2 * 2);
    o.swa_full = true;
    CHECK_EQ_INT((int)model_state_kv_bytes(g_model, &o), 4 * 1024 * 64 * 2 * 2);
    /* a ring no smaller than half the context is not used */
    o.swa_full = false;
    o.n_ctx = 256;
    CHECK_EQ_INT((int)model_state_kv_bytes(g_model, &o), 4 * 512 * 64 * 2 * 2);
    /* and the state's total follows */
    o.n_ctx = NCTX;
    size_t ring_total = model_state_bytes(g_model, &o);
    o.swa_full = true;
    CHECK(model_state_bytes(g_model, &o) - ring_total == (size_t)2 * 512 * 64 * 2 * 2);
}

TEST(load_gemma3)
{
    char path[1024];
    if (!test_shared_file(path, sizeof(path), "models/arch/gemma3-f32.gguf"))
        SKIP("../shared/models/arch/gemma3-f32.gguf not found (set SPOKE_SHARED)");
    CHECK(gg_open(path, &g_file, NULL) == SP_OK && model_load(g_file, &g_model, NULL) == SP_OK);
}


int main(void)
{
    g_asan = getenv("SPOKE_ASAN") != NULL;
    RUN(load_gemma3);
    RUN(kv_bytes_count_rings);
    RUN(ring_equals_full);
    RUN(batched_equals_alone);
    RUN(prefix_reuse_needs_the_window);
    model_free(g_model);
    gg_close(g_file);
    return test_summary();
}
