/* test_arch.c - the model families of ../shared/models/arch against llama.cpp.
 *
 * For every file of the table below and both reference traces (F32 KV cache
 * <file>.json, F16 KV cache <file>.kvf16.json; llama.cpp 3f545bec, see the
 * kit's README): the prompt ids are evaluated as one batch, then the
 * reference's generated ids are fed one by one (teacher forcing) so every
 * step is compared. The cut-off of a run is the reference's first step whose
 * top-2 logprob margin is under 0.02 nats (llama.cpp's own near-ties; all 32
 * steps where there is none), computed from the trace as the README does.
 * The references come from ggml's AVX2 build, so the test runs spoke with
 * SPOKE_ORDER=avx2 (kernels.h: F32/F16 dots, softmax and SiLU in that
 * build's float order). Required:
 *   F32 files: argmax equals the reference up to the cut-off with both KV
 *   types, and the top-5 logprobs are within 1e-4 there with both caches
 *   (the issue asks 1e-3 with the F32 cache; measured <= 1e-6, the
 *   references' 6 printed decimals);
 *   quantized files: they load and run, and their agreement (steps matching
 *   before the first difference, per prompt) is at least the level measured
 *   when the table was written (on the AVX2 kernels, the ISA of the
 *   reference build), so a regression fails. Quantized kernels of other ISAs
 *   (SPOKE_ISA=ref, AVX-512) sum in their own float order, and on these
 *   random networks a last-bit difference flips an activation's rounding and
 *   ends the agreement early (measured with ref: down to 2 steps), so there
 *   the agreement is printed and the first step must match (unless the
 *   reference itself has a near-tie there). The F32
 *   path is bit-identical on every ISA, so F32 files are held to the cut-off
 *   everywhere.
 * With SPOKE_ARCH_DEFAULT_ORDER set (test_arch_default) the F32 files run in
 * spoke's default order (production's), held to the cut-off and looser
 * logprob bounds (below).
 * A table (file, KV type, matching steps / cut-off, worst logprob difference
 * before the cut-off) is printed (SPOKE_GOLDEN_VERBOSE=1 adds every logprob
 * off by more than 1e-4, SPOKE_ARCH_ONLY=<file> runs one file). Adding a file
 * is one line of `all_cases`.
 * Missing ../shared files skip the test. */
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "sample/sample.h"
#include "test.h"

#include <jansson.h>

#define N_PROMPTS 3
#define MAX_TOK 128

struct arch_case {
    const char *file;
    bool f32;                    /* F32 weights: cut-off and logprobs are required */
    double max_lp;               /* F32 weights: bound on the top-5 logprob difference */
    int min_agree[2][N_PROMPTS]; /* quantized: required matching steps, [F32 KV, F16 KV][prompt] */
};

static const struct arch_case all_cases[] = {
    {"llama3-f32.gguf", true, 1e-4, {{0}}},
    {"qwen3-f32.gguf", true, 1e-4, {{0}}},
    {"gemma3-f32.gguf", true, 1e-4, {{0}}},
    {"phi3-f32.gguf", true, 1e-4, {{0}}},
    /* quantized: matching steps measured on the AVX2 kernels with the AVX2
     * order (all 32 except qwen3-q4_k_m [17 32 32] [32 8 23], gemma3-q4_k_m
     * [32 32 32] [32 10 32], phi3-q4_k_m [32 32 32] [22 32 32], gemma3-iq4_nl
     * [32 21 7] [32 32 18] (cut-offs [32 21 3]), gemma3-iq4_xs [32 32 32]
     * [20 32 31]) minus 2. Q4_K is repacked at load on AVX2 since 2026-12-03
     * and sums in the panels' order for every batch (docs/PARITY.md); with
     * the row kernels' order the Q4_K_M files matched llama3 [32 32 32] [4 32
     * 32], qwen3 [32 17 32] [32 8 23], gemma3 all 32, phi3 [32 32 32] [22 25
     * 32]: 675 steps in all then, 688 now. Q8_0 files match to 1e-6 on every
     * step. */
    {"llama3-q8_0.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"qwen3-q8_0.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"gemma3-q8_0.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"phi3-q8_0.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"llama3-q4_k_m.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"qwen3-q4_k_m.gguf", false, 0, {{15, 30, 30}, {30, 6, 21}}},
    {"gemma3-q4_k_m.gguf", false, 0, {{30, 30, 30}, {30, 8, 30}}},
    {"phi3-q4_k_m.gguf", false, 0, {{30, 30, 30}, {20, 30, 30}}},
    {"llama3-iq4_nl.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"qwen3-iq4_nl.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"gemma3-iq4_nl.gguf", false, 0, {{30, 19, 5}, {30, 30, 16}}},
    {"phi3-iq4_nl.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"llama3-iq4_xs.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"qwen3-iq4_xs.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
    {"gemma3-iq4_xs.gguf", false, 0, {{30, 30, 30}, {18, 30, 29}}},
    {"phi3-iq4_xs.gguf", false, 0, {{30, 30, 30}, {30, 30, 30}}},
};

static int total_fail;

/* The reference's cut-off: first step whose top-2 margin is < 0.02. */
static int ref_cutoff(json_t *top)
{
    size_t n = json_array_size(top);
    for (size_t s = 0; s < n; s++) {
        json_t *st = json_array_get(top, s);
        double a = json_number_value(json_array_get(json_array_get(st, 0), 1));
        double b = json_number_value(json_array_get(json_array_get(st, 1), 1));
        if (a - b < 0.02)
            return (int)s;
    }
    return (int)n;
}

/* Teacher-forced run of one prompt. Returns the steps matching before the
 * first argmax difference (-1 on an evaluation error); *lp_err = worst
 * top-5 logprob difference over the steps before cut. */
static int run_prompt(const struct model *m, enum kv_type kvt, json_t *run, int cut, double *lp_err)
{
    json_t *pids = json_object_get(run, "prompt_ids");
    json_t *gids = json_object_get(run, "generated_ids");
    json_t *top = json_object_get(run, "top");
    size_t np = json_array_size(pids), ng = json_array_size(gids);
    *lp_err = 0;
    if (np < 1 || np > MAX_TOK / 2 || ng > MAX_TOK / 2 || json_array_size(top) != ng)
        return -1;
    /* llama.cpp's context 512; batch 64: gemma3's window layers then keep
     * rings of 192 positions (kv.h), not the context */
    struct model_state_opts o = {.n_ctx = 512, .n_batch = MAX_TOK / 2, .n_threads = 2, .kv_type = kvt};
    struct model_state *st = NULL;
    struct sp_err err = {0};
    float *logits = sp_calloc((size_t)m->hp.n_vocab, sizeof(float));
    int agree = -1;
    int32_t toks[MAX_TOK];
    if (!logits || model_state_new(m, &o, &st, &err) != SP_OK)
        goto out;
    for (size_t i = 0; i < np; i++)
        toks[i] = (int32_t)json_integer_value(json_array_get(pids, i));
    if (model_eval(st, toks, (int)np, 0, logits, &err) != SP_OK)
        goto out;
    agree = 0;
    bool differs = false;
    for (size_t s = 0; s < ng; s++) {
        int32_t ref = (int32_t)json_integer_value(json_array_get(gids, s));
        if (sample_argmax(logits, m->hp.n_vocab) != ref)
            differs = true;
        if (!differs)
            agree++;
        json_t *step = json_array_get(top, s);
        for (size_t k = 0; (int)s < cut && k < json_array_size(step); k++) {
            json_t *pair = json_array_get(step, k);
            int32_t id = (int32_t)json_integer_value(json_array_get(pair, 0));
            double rlp = json_number_value(json_array_get(pair, 1));
            int32_t dummy[1];
            float dlp[1];
            const double mine = sample_logprobs(logits, m->hp.n_vocab, id, 0, dummy, dlp);
            const double e = fabs(mine - rlp);
            if (getenv("SPOKE_GOLDEN_VERBOSE") && e > 1e-4)
                fprintf(stderr, "    step %zu token %d: logprob %.6f, reference %.6f\n", s, id, mine, rlp);
            if (e > *lp_err)
                *lp_err = e;
        }
        if (s + 1 < ng && model_eval(st, &ref, 1, (int)(np + s), logits, &err) != SP_OK) {
            agree = -1;
            goto out;
        }
    }
out:
    if (agree < 0)
        fprintf(stderr, "  eval: %s\n", err.msg);
    sp_free(logits);
    model_state_free(st);
    return agree;
}

static void run_case(const struct arch_case *c, int kvi)
{
    const enum kv_type kvt = kvi == 0 ? KV_F32 : KV_F16;
    char path[1024], ref[1024];
    snprintf(path, sizeof(path), "%s/models/arch/%s", test_shared_path(), c->file);
    snprintf(ref, sizeof(ref), "%s/models/arch/reference/%s%s", test_shared_path(), c->file,
             kvi == 0 ? ".json" : ".kvf16.json");
    if (access(path, R_OK) != 0 || access(ref, R_OK) != 0) {
        printf("%-20s SKIP: file or reference missing\n", c->file);
        return;
    }
    json_error_t jerr;
    json_t *root = json_load_file(ref, 0, &jerr);
    struct gg_file *f = NULL;
    struct model *m = NULL;
    struct sp_err err = {0};
    if (!root) {
        printf("%-20s FAIL: bad json %s: %s\n", c->file, ref, jerr.text);
        total_fail++;
        return;
    }
    if (gg_open(path, &f, &err) != SP_OK || model_load(f, &m, &err) != SP_OK) {
        printf("%-20s FAIL: load: %s\n", c->file, err.msg);
        total_fail++;
        goto out;
    }
    json_t *runs = json_object_get(root, "runs");
    if (json_array_size(runs) != N_PROMPTS) {
        printf("%-20s FAIL: %zu runs in %s\n", c->file, json_array_size(runs), ref);
        total_fail++;
        goto out;
    }
    for (size_t i = 0; i < N_PROMPTS; i++) {
        json_t *run = json_array_get(runs, i);
        const int cut = ref_cutoff(json_object_get(run, "top"));
        double lp_err = 0;
        const int agree = run_prompt(m, kvt, run, cut, &lp_err);
        bool ok;
        int need;
        if (c->f32) {
            need = cut;
            ok = agree >= cut && lp_err <= c->max_lp;
        } else {
            need = kern_isa_best() == KERN_ISA_AVX2 ? c->min_agree[kvi][i] : SP_MIN(1, cut);
            ok = agree >= need;
        }
        printf("%-20s kv=%s prompt %zu: %2d steps match (cut-off %2d, required %2d), top-5 logprob diff before "
               "the cut-off %.1e",
               c->file, kvt == KV_F32 ? "f32" : "f16", i, agree, cut, need, lp_err);
        if (c->f32)
            printf(" [<= %.0e]", c->max_lp);
        printf(" %s\n", ok ? "ok" : "FAIL");
        if (!ok)
            total_fail++;
    }
out:
    model_free(m);
    gg_close(f);
    json_decref(root);
}

/* SPOKE_ARCH_DEFAULT_ORDER=1 (ctest's test_arch_default): spoke's default
 * float order, the one production runs (the AVX-512 build's, which the
 * stories260K references need), on the F32 files: ids to the cut-off with
 * both caches, top-5 logprobs within 2e-3 with the F32 cache and 1e-2 with
 * the F16 one (measured: 1.2e-3 for gemma3, whose GELU rounds its input to
 * F16 so a last-bit difference becomes an F16 step; <= 8.4e-5 for the other
 * families; up to 5.0e-3 with F16). */
static bool default_order;

TEST(arch_files)
{
    char path[1024];
    if (!test_shared_file(path, sizeof(path), "models/arch/README.md"))
        SKIP("../shared/models/arch not found (set SPOKE_SHARED)");
    total_fail = 0;
    const char *only = getenv("SPOKE_ARCH_ONLY"); /* debugging: one file */
    for (size_t i = 0; i < SP_ARRAY_LEN(all_cases); i++)
        for (int kvi = 0; kvi < 2; kvi++)
            if ((!only || strcmp(only, all_cases[i].file) == 0) && (!default_order || all_cases[i].f32)) {
                struct arch_case c = all_cases[i];
                if (default_order)
                    c.max_lp = kvi == 0 ? 2e-3 : 1e-2;
                run_case(&c, kvi);
            }
    CHECK_EQ_INT(total_fail, 0);
}

int main(void)
{
    default_order = getenv("SPOKE_ARCH_DEFAULT_ORDER") != NULL;
    if (!default_order)
        setenv("SPOKE_ORDER", "avx2", 1); /* the references' build; read at the first kernel call */
    RUN(arch_files);
    return test_summary();
}
