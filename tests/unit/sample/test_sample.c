/* test_sample.c - sampler semantics: greedy, seed reproducibility, top-k,
 * top-p, min-p, temperature extremes, repetition / presence / frequency
 * penalties, logprobs and top-n ordering, the RNG's range; argmax's NaN /
 * tie / signed-zero rules and the in-place fast paths (no bias, penalty or
 * mask) drawing exactly what the copying path draws; top-p without top-k
 * (a radix sort for long runs) drawing what a qsort reference draws. */
#include "sample/sample.h"
#include "test.h"

#define NV 100

static void logits_ramp(float *l)
{
    for (int i = 0; i < NV; i++)
        l[i] = (float)i * 0.1f; /* token 99 most likely */
}

static struct sampler *mk(struct sample_params *p)
{
    struct sampler *s = NULL;
    struct sp_err err = {0};
    if (sample_new(NV, p, &s, &err) != SP_OK)
        return NULL;
    return s;
}

TEST(greedy_is_argmax)
{
    struct sample_params p;
    sample_params_default(&p);
    p.temperature = 0;
    struct sampler *s = mk(&p);
    CHECK(s);
    float l[NV];
    logits_ramp(l);
    l[42] = 100;
    CHECK_EQ_INT(sample_token(s, l, NULL, 0), 42);
    CHECK_EQ_INT(sample_argmax(l, NV), 42);
    sample_free(s);
    struct sampler *bad = NULL;
    CHECK(sample_new(0, &p, &bad, NULL) == SP_ERR_INVALID && bad == NULL);
    sample_free(NULL);
}

TEST(seed_reproducible)
{
    struct sample_params p;
    sample_params_default(&p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 7;
    float l[NV];
    for (int i = 0; i < NV; i++)
        l[i] = 0; /* uniform */
    struct sampler *a = mk(&p), *b = mk(&p);
    CHECK(a && b);
    int32_t sa[64], sb[64];
    bool all_same = true;
    for (int i = 0; i < 64; i++) {
        sa[i] = sample_token(a, l, NULL, 0);
        sb[i] = sample_token(b, l, NULL, 0);
        CHECK_EQ_INT(sa[i], sb[i]);
        all_same = all_same && sa[i] == sa[0];
    }
    CHECK(!all_same);
    p.seed = 8;
    sample_reset(b, &p);
    int diff = 0;
    for (int i = 0; i < 64; i++)
        diff += sample_token(b, l, NULL, 0) != sa[i];
    CHECK(diff > 10);
    /* reset with the first seed replays */
    p.seed = 7;
    sample_reset(b, &p);
    for (int i = 0; i < 64; i++)
        CHECK_EQ_INT(sample_token(b, l, NULL, 0), sa[i]);
    sample_free(a);
    sample_free(b);
}

TEST(top_k_top_p_min_p)
{
    struct sample_params p;
    sample_params_default(&p);
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.top_k = 3;
    float l[NV];
    logits_ramp(l);
    struct sampler *s = mk(&p);
    CHECK(s);
    int seen[NV] = {0};
    for (int i = 0; i < 2000; i++)
        seen[sample_token(s, l, NULL, 0)]++;
    for (int i = 0; i < 97; i++)
        CHECK_EQ_INT(seen[i], 0);
    CHECK(seen[97] > 0 && seen[98] > 0 && seen[99] > 0);
    /* top-p: two tokens hold 0.5 + 0.45 of the mass; top_p 0.9 keeps them only */
    for (int i = 0; i < NV; i++)
        l[i] = -30;
    l[10] = logf(0.5f);
    l[20] = logf(0.45f);
    l[30] = logf(0.05f);
    p.top_k = 0;
    p.top_p = 0.9f;
    sample_reset(s, &p);
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < 2000; i++)
        seen[sample_token(s, l, NULL, 0)]++;
    CHECK(seen[10] > 0 && seen[20] > 0);
    CHECK_EQ_INT(seen[30], 0);
    CHECK_EQ_INT(seen[10] + seen[20], 2000);
    /* min-p 0.2: 0.05 < 0.2 * 0.5 is dropped, 0.45 kept */
    p.top_p = 1.0f;
    p.min_p = 0.2f;
    sample_reset(s, &p);
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < 2000; i++)
        seen[sample_token(s, l, NULL, 0)]++;
    CHECK_EQ_INT(seen[30], 0);
    CHECK(seen[20] > 0);
    /* very low temperature behaves greedily */
    p.min_p = 0;
    p.temperature = 1e-4f;
    sample_reset(s, &p);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(sample_token(s, l, NULL, 0), 10);
    sample_free(s);
}

TEST(penalties)
{
    struct sample_params p;
    sample_params_default(&p);
    p.temperature = 0;
    float l[NV];
    for (int i = 0; i < NV; i++)
        l[i] = 0;
    l[5] = 2.0f;
    l[6] = 1.9f;
    struct sampler *s = mk(&p);
    CHECK(s);
    int32_t hist[] = {5, 5, 5};
    CHECK_EQ_INT(sample_token(s, l, hist, 3), 5); /* no penalty */
    p.repeat_penalty = 1.1f; /* 2.0 / 1.1 = 1.82 < 1.9 */
    sample_reset(s, &p);
    CHECK_EQ_INT(sample_token(s, l, hist, 3), 6);
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.2f; /* 2.0 - 0.2 < 1.9 */
    sample_reset(s, &p);
    CHECK_EQ_INT(sample_token(s, l, hist, 3), 6);
    p.presence_penalty = 0;
    p.frequency_penalty = 0.05f; /* 2.0 - 3 * 0.05 = 1.85 < 1.9 */
    sample_reset(s, &p);
    CHECK_EQ_INT(sample_token(s, l, hist, 3), 6);
    int32_t hist1[] = {5};
    CHECK_EQ_INT(sample_token(s, l, hist1, 1), 5); /* 1.95 > 1.9 */
    /* the window: token 5 outside the last 2 tokens is not penalised */
    p.frequency_penalty = 0;
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 2;
    sample_reset(s, &p);
    int32_t hist2[] = {5, 7, 8};
    CHECK_EQ_INT(sample_token(s, l, hist2, 3), 5);
    /* negative logits are multiplied */
    for (int i = 0; i < NV; i++)
        l[i] = -5;
    l[3] = -1.0f;
    l[4] = -1.5f;
    int32_t hist3[] = {3};
    CHECK_EQ_INT(sample_token(s, l, hist3, 1), 4); /* -1 * 2 = -2 < -1.5 */
    sample_free(s);
}

TEST(logprobs_top_n)
{
    float l[NV];
    logits_ramp(l);
    int32_t ids[5];
    float lp[5];
    float x = sample_logprobs(l, NV, 99, 5, ids, lp);
    CHECK_EQ_INT(ids[0], 99);
    CHECK_EQ_INT(ids[4], 95);
    CHECK_NEAR(x, lp[0], 1e-6);
    double sum = 0;
    for (int i = 0; i < NV; i++)
        sum += exp(sample_logprobs(l, NV, i, 0, ids, lp));
    CHECK_NEAR(sum, 1.0, 1e-5);
    for (int i = 1; i < 5; i++)
        CHECK(lp[i] <= lp[i - 1]);
    struct sample_rng r;
    sample_rng_seed(&r, 1);
    for (int i = 0; i < 1000; i++) {
        double u = sample_rng_uniform(&r);
        CHECK(u >= 0 && u < 1);
    }
}

/* The reference argmax: the first index of the largest, NaNs never win. */
static int32_t argmax_ref(const float *l, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

TEST(argmax_rules)
{
    float l[37];
    for (int n = 1; n <= 37; n++) {
        for (int i = 0; i < n; i++)
            l[i] = (float)((i * 7) % 5); /* ties: the first 4 wins */
        CHECK_EQ_INT(sample_argmax(l, n), argmax_ref(l, n));
        l[n - 1] = 9;
        CHECK_EQ_INT(sample_argmax(l, n), n - 1);
        l[0] = NAN; /* a NaN first: 0, as the reference */
        CHECK_EQ_INT(sample_argmax(l, n), argmax_ref(l, n));
        CHECK_EQ_INT(sample_argmax(l, n), 0);
        for (int i = 0; i < n; i++)
            l[i] = i % 3 == 1 ? NAN : -INFINITY; /* NaNs never win, -inf ties: the first */
        CHECK_EQ_INT(sample_argmax(l, n), argmax_ref(l, n));
        for (int i = 0; i < n; i++)
            l[i] = i % 2 ? 0.0f : -0.0f; /* +0 == -0: the first */
        CHECK_EQ_INT(sample_argmax(l, n), 0);
    }
}

TEST(fast_paths_match)
{
    /* a zero logit bias changes no logit but takes the copying path */
    enum { nv = 1000 };
    static float l[nv];
    struct sample_bias zero = {3, 0.0f};
    uint32_t x = 12345;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < nv; i++) {
            x = x * 1664525u + 1013904223u;
            l[i] = (float)(x >> 8) / (float)(1u << 24) * 12.0f - 6.0f;
            if (round % 4 == 1)
                l[i] = (float)((int)l[i]); /* many ties */
        }
        struct sample_params p;
        sample_params_default(&p);
        p.seed = (uint64_t)round;
        p.temperature = round % 5 == 0 ? 0.0f : 0.3f + 0.1f * (float)(round % 7);
        p.top_k = round % 3 == 0 ? 0 : 1 + round * 3;
        p.top_p = round % 2 ? 0.9f : 1.0f;
        p.min_p = round % 4 == 3 ? 0.0f : 0.05f;
        struct sampler *a = NULL, *b = NULL;
        struct sp_err err = {0};
        CHECK(sample_new(nv, &p, &a, &err) == SP_OK);
        struct sample_params q = p;
        q.bias = &zero;
        q.n_bias = 1;
        CHECK(sample_new(nv, &q, &b, &err) == SP_OK);
        for (int k = 0; a && b && k < 20; k++)
            CHECK_EQ_INT(sample_token(a, l, NULL, 0), sample_token(b, l, NULL, 0));
        sample_free(a);
        sample_free(b);
    }
}

static int ref_cmp(const void *a, const void *b)
{
    const float *x = a, *y = b; /* {logit, id} */
    if (x[0] != y[0])
        return x[0] < y[0] ? 1 : -1;
    return x[1] < y[1] ? -1 : (x[1] > y[1]);
}

/* The top-p (no top-k) chain with qsort: what sample_token drew before the
 * radix sort; same RNG use (one uniform per draw). */
static int32_t ref_top_p(const float *l, int n, const struct sample_params *p, struct sample_rng *rng)
{
    static float c[4096][2];
    static double prob[4096];
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = l[i] > mx ? l[i] : mx;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (l[i] >= mx - 30.0f) {
            c[m][0] = l[i];
            c[m++][1] = (float)i;
        }
    qsort(c, (size_t)m, sizeof(c[0]), ref_cmp);
    double sum = 0, cum = 0;
    for (int i = 0; i < m; i++)
        sum += prob[i] = exp((double)c[i][0] - (double)mx);
    int keep = m;
    for (int i = 0; i < m; i++) {
        cum += prob[i] / sum;
        if (cum >= (double)p->top_p) {
            keep = i + 1;
            break;
        }
    }
    m = keep;
    if (p->min_p > 0.0f && m > 1) {
        float thr = mx + logf(p->min_p);
        int k = 0;
        for (int i = 0; i < m; i++)
            if (c[i][0] >= thr) {
                c[k][0] = c[i][0];
                c[k++][1] = c[i][1];
            }
        m = k ? k : 1;
    }
    sum = 0;
    for (int i = 0; i < m; i++)
        sum += prob[i] = exp(((double)c[i][0] - (double)mx) / (double)p->temperature);
    double u = sample_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < m; i++) {
        acc += prob[i];
        if (u < acc)
            return (int32_t)c[i][1];
    }
    for (int i = m; i-- > 0;)
        if (prob[i] > 0)
            return (int32_t)c[i][1];
    return (int32_t)c[0][1];
}

TEST(top_p_sort_matches_qsort)
{
    enum { nv = 3000 };
    static float l[nv];
    uint32_t x = 777;
    for (int round = 0; round < 24; round++) {
        for (int i = 0; i < nv; i++) {
            x = x * 1664525u + 1013904223u;
            float v = (float)(x >> 8) / (float)(1u << 24) * 40.0f - 30.0f;
            l[i] = round % 3 == 0 ? (float)(int)(v / 4) : v; /* many ties, and -0 beside +0 */
            if (l[i] == 0.0f && i % 2)
                l[i] = -0.0f;
            if (i % 97 == 5)
                l[i] = -INFINITY;
        }
        struct sample_params p;
        sample_params_default(&p);
        p.seed = (uint64_t)round * 31u;
        p.top_k = 0;
        p.top_p = round % 2 ? 0.99f : 0.9f;
        p.min_p = round % 4 < 2 ? 0.0f : 0.01f;
        p.temperature = round % 5 == 4 ? 3.0f : 1.0f;
        struct sampler *s = NULL;
        struct sp_err err = {0};
        CHECK(sample_new(nv, &p, &s, &err) == SP_OK);
        struct sample_rng rng;
        sample_rng_seed(&rng, p.seed);
        for (int k = 0; s && k < 10; k++)
            CHECK_EQ_INT(sample_token(s, l, NULL, 0), ref_top_p(l, nv, &p, &rng));
        sample_free(s);
    }
}

int main(void)
{
    RUN(greedy_is_argmax);
    RUN(seed_reproducible);
    RUN(top_k_top_p_min_p);
    RUN(penalties);
    RUN(logprobs_top_n);
    RUN(argmax_rules);
    RUN(fast_paths_match);
    RUN(top_p_sort_matches_qsort);
    return test_summary();
}
