/* test_golden.c - agreement of the forward pass with llama.cpp.
 *
 * For every model in ../shared/models with a reference-outputs/<file>.greedy.json,
 * the reference prompt token ids are evaluated (batched prefill) and then the
 * reference's generated tokens are fed one by one (teacher forcing), so every
 * step is compared: our argmax must equal the reference token, and for the
 * F32 and F16 files the top-3 logprobs must be within 1e-3 of the
 * reference's at EVERY step. spoke reproduces llama.cpp's float arithmetic
 * (kernels/ref/order.c: summation orders, v_expf softmax and SiLU, padded
 * attention over the F16 cache, fused RoPE), so on every ISA these agree to
 * the reference's printing precision (4 decimals: measured <= 5.1e-5).
 * Q8_0 is held to the same bound (its reference and AVX2 kernels sum blocks
 * in ggml's x86 order; the AVX-512 one pairs blocks but agrees here too).
 * Greedy free-running output equals the reference exactly when
 * every teacher-forced argmax does.
 * Required agreement per file (greedy steps before the first disagreement):
 *   F32, F16, Q8_0, Q4_0, Q5_0, llama-2-tiny-random: all steps;
 *   Q5_1: 42 and 38 of 48, the least measured over SPOKE_ISA=ref, avx2 and
 *   avx512 (avx2 agrees at all 48; docs/PARITY.md), so a kernel or forward
 *   pass change that loses agreement fails here.
 * A table of agreement is printed (SPOKE_GOLDEN_VERBOSE=1 adds every logprob
 * off by more than 1e-4). Runs with 2 threads and 1 thread, and with an F32
 * KV cache (tokens only: the reference used an F16 cache). */
#include "gguf/gguf.h"
#include "model/model.h"
#include "sample/sample.h"
#include "test.h"

#include <jansson.h>

struct golden_case {
    const char *file;
    bool check_logprobs;
    int min_steps[2]; /* required agreeing steps per prompt; -1 = all */
};

static const struct golden_case cases[] = {
    {"stories260K.gguf", true, {-1, -1}},
    {"stories260K-f16.gguf", true, {-1, -1}},
    {"stories260K-q8_0.gguf", true, {-1, -1}},
    {"stories260K-q5_0.gguf", false, {-1, -1}},
    {"stories260K-q5_1.gguf", false, {42, 38}},
    {"stories260K-q4_0.gguf", false, {-1, -1}},
    {"llama-2-tiny-random.gguf", true, {-1, -1}},
};

static int total_fail;

/* Returns the number of steps (from 0) whose argmax agrees before the first
 * disagreement; *max_lp_err = worst top-3 logprob error over all steps. */
static int run_prompt(const struct model *m, int n_threads, enum kv_type kvt, json_t *res, double *max_lp_err,
                      double *early_lp_err, int *n_agree_total)
{
    json_t *ptoks = json_object_get(res, "prompt_tokens_with_bos");
    json_t *gtoks = json_object_get(res, "generated_tokens");
    json_t *top3 = json_object_get(res, "top3_logprobs_per_step");
    size_t np = json_array_size(ptoks), ng = json_array_size(gtoks);
    struct model_state_opts o = {.n_ctx = 128, .n_batch = 0, .n_threads = n_threads, .kv_type = kvt};
    struct model_state *st = NULL;
    struct sp_err err = {0};
    if (model_state_new(m, &o, &st, &err) != SP_OK) {
        fprintf(stderr, "  state: %s\n", err.msg);
        return -1;
    }
    int32_t toks[128];
    for (size_t i = 0; i < np && i < 128; i++)
        toks[i] = (int32_t)json_integer_value(json_array_get(ptoks, i));
    float *logits = sp_calloc((size_t)m->hp.n_vocab, sizeof(float));
    int first_bad = -1, agree = 0;
    *max_lp_err = 0;
    *early_lp_err = 0;
    if (model_eval(st, toks, (int)np, 0, logits, &err) != SP_OK) {
        fprintf(stderr, "  eval: %s\n", err.msg);
        first_bad = 0;
        goto out;
    }
    for (size_t s = 0; s < ng; s++) {
        int32_t ref = (int32_t)json_integer_value(json_array_get(gtoks, s));
        int32_t got = sample_argmax(logits, m->hp.n_vocab);
        if (got == ref)
            agree++;
        else if (first_bad < 0)
            first_bad = (int)s;
        int32_t ids[3];
        float lp[3];
        sample_logprobs(logits, m->hp.n_vocab, ref, 3, ids, lp);
        json_t *step = json_array_get(top3, s);
        for (size_t k = 0; k < 3 && k < json_array_size(step); k++) {
            json_t *pair = json_array_get(step, k);
            int32_t rid = (int32_t)json_integer_value(json_array_get(pair, 0));
            double rlp = json_number_value(json_array_get(pair, 1));
            /* compare by token id (order may swap on near-ties) */
            double mine = NAN;
            for (int q = 0; q < 3; q++)
                if (ids[q] == rid)
                    mine = lp[q];
            if (isnan(mine)) {
                float all[1];
                int32_t dummy[1];
                mine = sample_logprobs(logits, m->hp.n_vocab, rid, 0, dummy, all);
            }
            double e = fabs(mine - rlp);
            if (getenv("SPOKE_GOLDEN_VERBOSE") && e > 1e-4)
                fprintf(stderr, "    step %zu token %d: logprob %.5f, reference %.4f (err %.1e)\n", s, rid, mine,
                        rlp, e);
            if (e > *max_lp_err)
                *max_lp_err = e;
            if (s < 8 && e > *early_lp_err)
                *early_lp_err = e;
        }
        if (s + 1 < ng) {
            int32_t t = ref;
            if (model_eval(st, &t, 1, (int)(np + s), logits, &err) != SP_OK) {
                fprintf(stderr, "  eval: %s\n", err.msg);
                if (first_bad < 0)
                    first_bad = (int)s;
                break;
            }
        }
    }
out:
    sp_free(logits);
    model_state_free(st);
    *n_agree_total = agree;
    return first_bad < 0 ? (int)ng : first_bad;
}

static void run_case(const struct golden_case *gc, int n_threads, enum kv_type kvt)
{
    char path[1024], ref[1024];
    if (!test_shared_file(path, sizeof(path), "models/") ) {
        fprintf(stderr, "  SKIP %s: ../shared/models not found\n", gc->file);
        return;
    }
    snprintf(path, sizeof(path), "%s/models/%s", test_shared_path(), gc->file);
    snprintf(ref, sizeof(ref), "%s/models/reference-outputs/%s.greedy.json", test_shared_path(), gc->file);
    if (access(path, R_OK) != 0 || access(ref, R_OK) != 0) {
        fprintf(stderr, "  SKIP %s: file or reference missing\n", gc->file);
        return;
    }
    json_error_t jerr;
    json_t *root = json_load_file(ref, 0, &jerr);
    struct gg_file *f = NULL;
    struct model *m = NULL;
    struct sp_err err = {0};
    if (!root) {
        fprintf(stderr, "  FAIL %s: bad json: %s\n", ref, jerr.text);
        total_fail++;
        return;
    }
    if (gg_open(path, &f, &err) != SP_OK || model_load(f, &m, &err) != SP_OK) {
        fprintf(stderr, "  FAIL %s: load: %s\n", gc->file, err.msg);
        total_fail++;
        goto out;
    }
    json_t *results = json_object_get(root, "results");
    for (size_t i = 0; i < json_array_size(results); i++) {
        json_t *r = json_array_get(results, i);
        size_t ng = json_array_size(json_object_get(r, "generated_tokens"));
        double lp_err = 0, early = 0;
        int agree_total = 0;
        int prefix = run_prompt(m, n_threads, kvt, r, &lp_err, &early, &agree_total);
        int need = gc->min_steps[i < 2 ? i : 1];
        if (need < 0)
            need = (int)ng;
        bool check = gc->check_logprobs && kvt == KV_F16;
        bool lp_ok = !check || lp_err <= 1e-3;
        bool ok = prefix >= need && lp_ok;
        printf("%-26s t=%d kv=%s prompt %zu: greedy agrees %2d/%zu steps, teacher-forced %2d/%zu, required %2d, "
               "top3 logprob err max %.1e (steps<8: %.1e)%s %s\n",
               gc->file, n_threads, kvt == KV_F16 ? "f16" : "f32", i, prefix, ng, agree_total, ng, need, lp_err,
               early, check ? " [<= 1e-3 required]" : "", ok ? "ok" : "FAIL");
        if (!ok)
            total_fail++;
    }
out:
    model_free(m);
    gg_close(f);
    json_decref(root);
}

TEST(golden_all_files)
{
    char path[1024];
    if (!test_shared_file(path, sizeof(path), "models/stories260K.gguf"))
        SKIP("../shared/models not found (set SPOKE_SHARED)");
    total_fail = 0;
    for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++)
        run_case(&cases[i], 2, KV_F16);
    /* single-threaded and F32 KV on the F32 file */
    run_case(&cases[0], 1, KV_F16);
    run_case(&cases[0], 2, KV_F32);
    CHECK_EQ_INT(total_fail, 0);
}

int main(void)
{
    RUN(golden_all_files);
    return test_summary();
}
