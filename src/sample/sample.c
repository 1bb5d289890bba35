/* sample.c - the sampler chain over a candidate array.
 *
 * Candidates (id, logit) are copied from the logits, penalised (counts of the
 * history window kept in a per-vocabulary array that is cleared again after
 * use), then narrowed (without a bias, penalty or mask the logits are read
 * in place: greedy is their argmax, top-k selects from them; no copy of the
 * vocabulary per token): top-k by a bounded min-heap (O(n log k)), top-p over
 * the candidates sorted by logit (when top-k is off, candidates more than 30
 * nats below the best are dropped first: they cannot matter; a radix sort
 * then gives qsort's order), min-p as a logit threshold. The survivors are divided by the temperature, softmaxed
 * in double, and one is drawn with the seeded RNG. */
#include "sample/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cand {
    int32_t id;
    float logit;
};

struct sampler {
    struct sample_params p;
    struct sample_rng rng;
    int n_vocab;
    struct cand *c;    /* [n_vocab] */
    struct cand *tmp;  /* [n_vocab] the radix sort's other buffer */
    int32_t *count;    /* [n_vocab] occurrences in the penalty window */
    double *prob;      /* [n_vocab] */
};

void sample_params_default(struct sample_params *p)
{
    memset(p, 0, sizeof(*p));
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sample_rng_seed(struct sample_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sample_rng_next(struct sample_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sample_rng_uniform(struct sample_rng *r) { return (double)(sample_rng_next(r) >> 11) * 0x1.0p-53; }

enum sp_status sample_new(int n_vocab, const struct sample_params *p, struct sampler **out, struct sp_err *err)
{
    *out = NULL;
    if (n_vocab < 1)
        return sp_err_set(err, SP_ERR_INVALID, "sampler needs a vocabulary (got %d tokens)", n_vocab);
    struct sampler *s = sp_calloc(1, sizeof(*s));
    if (!s)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a sampler");
    s->n_vocab = n_vocab;
    s->c = sp_calloc((size_t)n_vocab, sizeof(*s->c));
    s->tmp = sp_calloc((size_t)n_vocab, sizeof(*s->tmp));
    s->count = sp_calloc((size_t)n_vocab, sizeof(*s->count));
    s->prob = sp_calloc((size_t)n_vocab, sizeof(*s->prob));
    if (!s->c || !s->tmp || !s->count || !s->prob) {
        sample_free(s);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a sampler");
    }
    sample_reset(s, p);
    *out = s;
    return SP_OK;
}

void sample_free(struct sampler *s)
{
    if (!s)
        return;
    sp_free(s->c);
    sp_free(s->tmp);
    sp_free(s->count);
    sp_free(s->prob);
    sp_free(s);
}

void sample_reset(struct sampler *s, const struct sample_params *p)
{
    s->p = *p;
    sample_rng_seed(&s->rng, p->seed);
}

/* The first index of the largest logit; NaNs never win, and a NaN at 0
 * gives 0 (what `if (l[i] > l[best]) best = i` from best = 0 gives). The
 * maximum is found on 8 independent lanes (no loop-carried index), then its
 * first index: the server samples every running sequence between two steps
 * while the thread pool waits, so this is on the step's critical path. */
int32_t sample_argmax(const float *logits, int n_vocab)
{
    const float first = logits[0];
    if (n_vocab < 2 || first != first)
        return 0;
    float m[8] = {first, first, first, first, first, first, first, first};
    int i = 1;
    for (; i + 8 <= n_vocab; i += 8)
        for (int k = 0; k < 8; k++)
            m[k] = logits[i + k] > m[k] ? logits[i + k] : m[k];
    for (; i < n_vocab; i++)
        m[0] = logits[i] > m[0] ? logits[i] : m[0];
    float mx = m[0];
    for (int k = 1; k < 8; k++)
        mx = m[k] > mx ? m[k] : mx;
    for (i = 0; i < n_vocab; i++)
        if (logits[i] == mx)
            break;
    return i;
}

static int cand_cmp_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* A key whose ascending order is the logits' descending order (-0 as +0). */
static uint32_t desc_key(float f)
{
    uint32_t b;
    if (f == 0.0f)
        f = 0.0f;
    memcpy(&b, &f, sizeof(b));
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u); /* ascending as the floats */
    return ~b;
}

/* Sort c[0..n) (ids ascending, no NaN) exactly as qsort with cand_cmp_desc
 * does: logit descending, ties by id ascending. Short runs are qsorted;
 * longer ones (top-p without top-k sorts up to the whole vocabulary: 6.5 ms
 * a token for 49,152 by qsort) take a stable LSD radix sort on the keys,
 * 4 passes of 8 bits through tmp, which keeps the ids' order within ties. */
static void sort_desc(struct cand *c, struct cand *tmp, size_t n)
{
    if (n <= 64) {
        qsort(c, n, sizeof(*c), cand_cmp_desc);
        return;
    }
    struct cand *src = c, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        size_t at[257] = {0};
        for (size_t i = 0; i < n; i++)
            at[((desc_key(src[i].logit) >> shift) & 255u) + 1]++;
        for (int b = 0; b < 256; b++)
            at[b + 1] += at[b];
        for (size_t i = 0; i < n; i++)
            dst[at[(desc_key(src[i].logit) >> shift) & 255u]++] = src[i];
        struct cand *t = src;
        src = dst;
        dst = t;
    } /* an even number of passes: the result is in c */
}

/* Keep the k largest of the candidates in c[0..k), sorted descending: of
 * c[0..n) itself, or (logits not NULL) of (i, logits[i]) for i < n, read
 * in place rather than copied into c first (the same candidates in the same
 * order, so the same result). */
static size_t top_k_select(struct cand *c, const float *logits, size_t n, size_t k)
{
    if (logits)
        for (size_t i = 0; i < SP_MIN(k, n); i++) {
            c[i].id = (int32_t)i;
            c[i].logit = logits[i];
        }
    if (k >= n) {
        qsort(c, n, sizeof(*c), cand_cmp_desc);
        return n;
    }
    /* min-heap of size k at c[0..k) ordered by (logit, -id): root = worst kept */
    for (size_t i = 1; i < k; i++) {
        size_t j = i;
        while (j > 0) {
            size_t par = (j - 1) / 2;
            if (cand_cmp_desc(&c[j], &c[par]) > 0) {
                struct cand t = c[j];
                c[j] = c[par];
                c[par] = t;
                j = par;
            } else {
                break;
            }
        }
    }
    for (size_t i = k; i < n; i++) {
        struct cand x = logits ? (struct cand){(int32_t)i, logits[i]} : c[i];
        if (cand_cmp_desc(&x, &c[0]) >= 0)
            continue; /* not better than the worst kept */
        c[0] = x;
        size_t j = 0;
        for (;;) {
            size_t l = 2 * j + 1, r = l + 1, w = j;
            if (l < k && cand_cmp_desc(&c[l], &c[w]) > 0)
                w = l;
            if (r < k && cand_cmp_desc(&c[r], &c[w]) > 0)
                w = r;
            if (w == j)
                break;
            struct cand t = c[j];
            c[j] = c[w];
            c[w] = t;
            j = w;
        }
    }
    qsort(c, k, sizeof(*c), cand_cmp_desc);
    return k;
}

static bool penalties_off(const struct sample_params *p, size_t n_hist)
{
    return (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f) ||
           p->repeat_last_n == 0 || n_hist == 0;
}

static void apply_penalties(struct sampler *s, const int32_t *hist, size_t n_hist)
{
    const struct sample_params *p = &s->p;
    if (penalties_off(p, n_hist))
        return;
    size_t w = p->repeat_last_n < 0 ? n_hist : SP_MIN(n_hist, (size_t)p->repeat_last_n);
    const int32_t *h = hist + (n_hist - w);
    for (size_t i = 0; i < w; i++)
        if (h[i] >= 0 && h[i] < s->n_vocab)
            s->count[h[i]]++;
    for (size_t i = 0; i < w; i++) {
        int32_t t = h[i];
        if (t < 0 || t >= s->n_vocab || s->count[t] == 0)
            continue;
        float *lg = &s->c[t].logit;
        if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f)
            *lg = *lg > 0 ? *lg / p->repeat_penalty : *lg * p->repeat_penalty;
        *lg -= (float)s->count[t] * p->frequency_penalty + p->presence_penalty;
        s->count[t] = 0; /* each distinct token once; also clears the array */
    }
}

int32_t sample_token(struct sampler *s, const float *logits, const int32_t *hist, size_t n_hist)
{
    return sample_token_masked(s, logits, NULL, hist, n_hist);
}

int32_t sample_token_masked(struct sampler *s, const float *logits, const uint8_t *allow, const int32_t *hist,
                            size_t n_hist)
{
    const struct sample_params *p = &s->p;
    size_t n = (size_t)s->n_vocab;
    /* no bias, penalty or mask: the candidates are the logits as they are,
     * read in place (greedy is their argmax; top-k picks from them) */
    const bool plain = p->n_bias == 0 && !allow && penalties_off(p, n_hist);
    if (plain && p->temperature <= 0.0f)
        return sample_argmax(logits, (int)n);
    const bool top_k = p->top_k > 0 && (size_t)p->top_k < n;
    float mx = -INFINITY;
    if (!plain || !top_k) {
        for (size_t i = 0; i < n; i++) {
            s->c[i].id = (int32_t)i;
            s->c[i].logit = logits[i];
        }
        for (size_t i = 0; i < p->n_bias; i++)
            if (p->bias[i].id >= 0 && (size_t)p->bias[i].id < n)
                s->c[p->bias[i].id].logit = p->bias[i].bias <= -100.0f ? -INFINITY
                                                                       : s->c[p->bias[i].id].logit + p->bias[i].bias;
        apply_penalties(s, hist, n_hist);
        if (allow) /* constrained output: the grammar's mask, before everything else narrows */
            for (size_t i = 0; i < n; i++)
                if (!allow[i])
                    s->c[i].logit = -INFINITY;
        if (p->temperature <= 0.0f) {
            size_t best = 0;
            for (size_t i = 1; i < n; i++)
                if (s->c[i].logit > s->c[best].logit)
                    best = i;
            return s->c[best].id;
        }
        for (size_t i = 0; i < n; i++)
            mx = s->c[i].logit > mx ? s->c[i].logit : mx;
    } else {
        for (size_t i = 0; i < n; i++)
            mx = logits[i] > mx ? logits[i] : mx;
    }
    bool sorted = false;
    if (top_k) {
        n = top_k_select(s->c, plain ? logits : NULL, n, (size_t)p->top_k);
        sorted = true;
    }
    if (p->top_p < 1.0f && n > 1) {
        if (!sorted) {
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (s->c[i].logit >= mx - 30.0f)
                    s->c[m++] = s->c[i];
            n = m;
            sort_desc(s->c, s->tmp, n);
            sorted = true;
        }
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += s->prob[i] = exp((double)s->c[i].logit - (double)mx);
        double cum = 0;
        size_t keep = n;
        for (size_t i = 0; i < n; i++) {
            cum += s->prob[i] / sum;
            if (cum >= (double)p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0.0f && n > 1) {
        float thr = mx + logf(p->min_p);
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (s->c[i].logit >= thr)
                s->c[m++] = s->c[i];
        n = m ? m : 1; /* the best always passes; keep one regardless */
    }
    /* temperature + draw */
    double sum = 0;
    double inv_t = 1.0 / (double)p->temperature;
    for (size_t i = 0; i < n; i++)
        sum += s->prob[i] = exp(((double)s->c[i].logit - (double)mx) * inv_t);
    double u = sample_rng_uniform(&s->rng) * sum, acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += s->prob[i];
        if (u < acc)
            return s->c[i].id;
    }
    for (size_t i = n; i-- > 0;) /* rounding: the last candidate with any weight */
        if (s->prob[i] > 0)
            return s->c[i].id;
    return s->c[0].id;
}

float sample_logprobs(const float *logits, int n_vocab, int32_t token, int n_top, int32_t *top_ids, float *top_lp)
{
    float mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - (double)mx);
    const double lse = (double)mx + log(sum);
    n_top = SP_MAX(0, SP_MIN(n_top, SP_MIN(20, n_vocab)));
    int have = 0;
    for (int i = 0; i < n_vocab && n_top > 0; i++) {
        float v = logits[i];
        if (have == n_top && v <= logits[top_ids[have - 1]])
            continue;
        int j = have < n_top ? have++ : have - 1;
        while (j > 0 && logits[top_ids[j - 1]] < v) {
            top_ids[j] = top_ids[j - 1];
            j--;
        }
        top_ids[j] = i;
    }
    for (int i = 0; i < n_top; i++)
        top_lp[i] = (float)((double)logits[top_ids[i]] - lse);
    if (token < 0 || token >= n_vocab)
        return -INFINITY;
    return (float)((double)logits[token] - lse);
}
