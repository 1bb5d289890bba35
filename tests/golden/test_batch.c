/* test_batch.c - results do not depend on batching (model_decode).
 *
 * On the shared stories260K F32, F16 and Q8_0 files, N = 4 and N = 8
 * sequences with different random prompts (2..90 tokens), generation lengths
 * and start steps run greedily together in one model state (shared KV cache,
 * one thread pool): each step batches the next token of every generating
 * sequence with prompt chunks of the others, up to a small token budget so
 * prompts are split into chunks of different sizes. Each sequence must give
 * exactly the tokens it gives when run alone in a fresh state (its prompt in
 * one chunk), and the log-probability of each chosen token must agree: the
 * issue asks for 1e-4 on F32; spoke's batching keeps every token's arithmetic
 * identical to its run alone (docs/PARITY.md), so all three files are held
 * to bit-identical logits. Also: sequences that finish free their cells for
 * sequences that start later (the budget is smaller than N contexts). */
#include "gguf/gguf.h"
#include "model/model.h"
#include "sample/sample.h"
#include "test.h"

#include <math.h>
#include <string.h>

#define MAXN 8
#define MAXP 90
#define MAXG 40
#define NCTX 160

struct seq_spec {
    int n_prompt, n_gen, start;
    int32_t prompt[MAXP];
};

struct seq_out {
    int32_t tok[MAXG];
    float lp[MAXG];
    float logit_sum[MAXG]; /* sum of all logits of the step (bit-identity witness) */
};

static void make_specs(struct seq_spec *sp, int n, int n_vocab, uint64_t seed)
{
    static const int plen[MAXN] = {2, 37, 90, 9, 64, 3, 50, 17};
    static const int glen[MAXN] = {40, 25, 12, 33, 20, 40, 8, 30};
    static const int start[MAXN] = {0, 0, 3, 5, 1, 9, 14, 22};
    for (int i = 0; i < n; i++) {
        sp[i].n_prompt = plen[i];
        sp[i].n_gen = glen[i];
        sp[i].start = start[i];
        sp[i].prompt[0] = 1; /* BOS */
        for (int k = 1; k < plen[i]; k++)
            sp[i].prompt[k] = 3 + (int32_t)(test_rand_u32(&seed) % (uint32_t)(n_vocab - 3));
    }
}

static void record(struct seq_out *o, int step, const float *logits, int n_vocab)
{
    int32_t ids[1];
    float tl[1];
    o->tok[step] = sample_argmax(logits, n_vocab);
    o->lp[step] = sample_logprobs(logits, n_vocab, o->tok[step], 0, ids, tl);
    float s = 0;
    for (int v = 0; v < n_vocab; v++)
        s += logits[v];
    o->logit_sum[step] = s;
}

/* Each sequence alone in a fresh state: prompt in one chunk, then decode. */
static int run_alone(const struct model *m, const struct seq_spec *sp, struct seq_out *out)
{
    struct model_state_opts o = {.n_ctx = NCTX, .n_threads = 2, .kv_type = KV_F16};
    struct model_state *st = NULL;
    const int nv = m->hp.n_vocab;
    float *logits = sp_calloc((size_t)nv, sizeof(float));
    int rc = -1;
    if (!logits || model_state_new(m, &o, &st, NULL) != SP_OK)
        goto out;
    if (model_eval(st, sp->prompt, sp->n_prompt, 0, logits, NULL) != SP_OK)
        goto out;
    for (int g = 0; g < sp->n_gen; g++) {
        record(out, g, logits, nv);
        if (g + 1 < sp->n_gen && model_eval(st, &out->tok[g], 1, sp->n_prompt + g, logits, NULL) != SP_OK)
            goto out;
    }
    rc = 0;
out:
    model_state_free(st);
    sp_free(logits);
    return rc;
}

/* All sequences in one state with a per-step token budget. */
static int run_batched(const struct model *m, const struct seq_spec *sp, int n, int budget, struct seq_out *out,
                       int *max_live)
{
    struct model_state_opts o = {.n_ctx = NCTX, .n_threads = 2, .kv_type = KV_F16, .n_seq = n,
                                 .n_cells = NCTX * 3, .n_batch = 64};
    struct model_state *st = NULL;
    const int nv = m->hp.n_vocab;
    float *logits = sp_calloc((size_t)nv * MAXN, sizeof(float));
    int id[MAXN], fed[MAXN], gen[MAXN], rc = -1;
    bool open[MAXN] = {false}, done[MAXN] = {false};
    int32_t tok[64], pos[64], seq[64];
    bool want[64];
    int who[64];
    if (!logits || model_state_new(m, &o, &st, NULL) != SP_OK)
        goto out;
    struct kv_cache *kv = model_state_kv(st);
    *max_live = 0;
    for (int step = 0; step < 1000; step++) {
        int n_done = 0, live = 0;
        for (int i = 0; i < n; i++) {
            n_done += done[i];
            if (!open[i] && !done[i] && step >= sp[i].start) {
                int reused;
                int cap = model_seq_cells(st, sp[i].n_prompt + sp[i].n_gen);
                if (kv_seq_open(kv, cap, NULL, 0, 0, &id[i], &reused) == SP_OK) {
                    open[i] = true;
                    fed[i] = gen[i] = 0;
                }
            }
            live += open[i];
        }
        if (n_done == n)
            break;
        *max_live = SP_MAX(*max_live, live);
        int nb = 0;
        /* decode tokens first, then prompt chunks (never leaving a single token behind) */
        for (int i = 0; i < n; i++) {
            if (!open[i] || fed[i] < sp[i].n_prompt)
                continue;
            tok[nb] = out[i].tok[gen[i] - 1];
            pos[nb] = sp[i].n_prompt + gen[i] - 1;
            seq[nb] = id[i];
            want[nb] = true;
            who[nb++] = i;
        }
        for (int i = 0; i < n && nb < budget; i++) {
            if (!open[i] || fed[i] >= sp[i].n_prompt)
                continue;
            int left = sp[i].n_prompt - fed[i], c = SP_MIN(left, budget - nb);
            if (left - c == 1)
                c--;
            if (c < 2 && left >= 2)
                continue;
            for (int k = 0; k < c; k++) {
                tok[nb] = sp[i].prompt[fed[i] + k];
                pos[nb] = fed[i] + k;
                seq[nb] = id[i];
                want[nb] = fed[i] + k == sp[i].n_prompt - 1;
                who[nb++] = i;
            }
            fed[i] += c;
        }
        if (nb == 0)
            continue;
        struct model_batch b = {nb, tok, pos, seq, want};
        if (model_decode(st, &b, logits, NULL) != SP_OK)
            goto out;
        int row = 0;
        for (int k = 0; k < nb; k++) {
            if (!want[k])
                continue;
            int i = who[k];
            record(&out[i], gen[i], logits + (size_t)row++ * nv, nv);
            if (++gen[i] == sp[i].n_gen) {
                kv_seq_close(kv, id[i], false);
                open[i] = false;
                done[i] = true;
            }
        }
    }
    rc = 0;
    for (int i = 0; i < n; i++)
        if (!done[i])
            rc = -1;
out:
    model_state_free(st);
    sp_free(logits);
    return rc;
}

static void check_file(const char *file, int n, int budget)
{
    char path[256];
    snprintf(path, sizeof path, "models/%s", file);
    char full[1400];
    if (!test_shared_file(full, sizeof full, path)) {
        fprintf(stderr, "  SKIP %s: not found\n", full);
        t_cur_skipped = 1;
        return;
    }
    struct gg_file *f = NULL;
    struct model *m = NULL;
    CHECK(gg_open(full, &f, NULL) == SP_OK && model_load(f, &m, NULL) == SP_OK);
    if (!m) {
        gg_close(f);
        return;
    }
    struct seq_spec sp[MAXN];
    static struct seq_out alone[MAXN], batched[MAXN];
    memset(batched, 0, sizeof batched);
    make_specs(sp, n, m->hp.n_vocab, 0x5eed + (uint64_t)n);
    for (int i = 0; i < n; i++)
        CHECK(run_alone(m, &sp[i], &alone[i]) == 0);
    int max_live = 0;
    CHECK(run_batched(m, sp, n, budget, batched, &max_live) == 0);
    int tok_bad = 0, bits_bad = 0, total = 0;
    double lp_err = 0;
    for (int i = 0; i < n; i++)
        for (int g = 0; g < sp[i].n_gen; g++) {
            total++;
            tok_bad += alone[i].tok[g] != batched[i].tok[g];
            bits_bad += memcmp(&alone[i].logit_sum[g], &batched[i].logit_sum[g], sizeof(float)) != 0 ||
                        memcmp(&alone[i].lp[g], &batched[i].lp[g], sizeof(float)) != 0;
            lp_err = fmax(lp_err, fabs((double)alone[i].lp[g] - batched[i].lp[g]));
        }
    fprintf(stderr, "  %-22s N=%d budget %2d (up to %d live): %d/%d tokens equal, max |dlogprob| %.1e, %d steps not bit-identical\n",
            file, n, budget, max_live, total - tok_bad, total, lp_err, bits_bad);
    CHECK_EQ_INT(tok_bad, 0);
    CHECK(lp_err <= 1e-4);
    CHECK_EQ_INT(bits_bad, 0);
    model_free(m);
    gg_close(f);
}

/* The ASan build (SPOKE_ASAN, ~20x slower) runs one case per file. */
static bool g_asan;
TEST(batched_equals_alone_f32)
{
    check_file("stories260K.gguf", 4, 24);
    if (!g_asan)
        check_file("stories260K.gguf", 8, 40);
}
TEST(batched_equals_alone_f16)
{
    if (!g_asan)
        check_file("stories260K-f16.gguf", 4, 24);
    check_file("stories260K-f16.gguf", 8, 40);
}
TEST(batched_equals_alone_q8_0)
{
    if (!g_asan) {
        check_file("stories260K-q8_0.gguf", 4, 24);
        check_file("stories260K-q8_0.gguf", 8, 40);
    }
}

/* Q4_0 and Q5_0 have a panel gemm of another float order for batches of >=
 * 8 rows: decode rows must still get their 1-row order (cpu_matmul) */
TEST(batched_equals_alone_q4_0_q5_0)
{
    if (!g_asan) {
        check_file("stories260K-q4_0.gguf", 4, 24);
        check_file("stories260K-q4_0.gguf", 8, 40);
        check_file("stories260K-q5_0.gguf", 4, 24);
        check_file("stories260K-q5_0.gguf", 8, 40);
    }
}

int main(void)
{
    g_asan = getenv("SPOKE_ASAN") != NULL;
    RUN(batched_equals_alone_f32);
    RUN(batched_equals_alone_f16);
    RUN(batched_equals_alone_q8_0);
    RUN(batched_equals_alone_q4_0_q5_0);
    return test_summary();
}
