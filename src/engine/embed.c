/* embed.c - sentence embeddings: tokenize an input, run many inputs through
 * one forward pass, pool and L2-normalise.
 *
 * Encoder models (bert) have their own embedding state (model_bert_embed,
 * guarded by embd_mu); their inputs are packed into batches of whole inputs.
 * Decoder models with a pooling type run on the model's one model_state:
 * engine_embed takes the step loop's locks (as the bench helpers do), so
 * the loop pauses between two steps; each input gets its own KV sequence,
 * opened just for the call and freed after it (never kept for prefix reuse),
 * and its tokens are fed through model_decode in batches that mix several
 * inputs (an input longer than the batch is fed in chunks). model_decode's
 * model_decode_embd returns the output-normed hidden states of the
 * rows that pooling needs (every row for mean, the first for CLS, the last
 * for last), summed per input in double. */
#include "engine/engine_impl.h"
#include "obs/log.h"

#include <math.h>
#include <string.h>

enum engine_pooling engine_model_pooling(const struct engine_model *m)
{
    switch (m->model->hp.pooling) {
    case MODEL_POOL_MEAN: return ENGINE_POOL_MEAN;
    case MODEL_POOL_CLS: return ENGINE_POOL_CLS;
    case MODEL_POOL_LAST: return ENGINE_POOL_LAST;
    default: return ENGINE_POOL_NONE;
    }
}

const char *engine_pooling_name(enum engine_pooling p)
{
    static const char *const names[] = {"none", "mean", "cls", "last"};
    return (unsigned)p < SP_ARRAY_LEN(names) ? names[p] : "none";
}

bool engine_model_is_encoder(const struct engine_model *m) { return m->bert != NULL; }

enum sp_status engine_embed_tokenize(const struct engine_model *m, const char *text, size_t len, int32_t *out,
                                     size_t cap, size_t *n, struct sp_err *err)
{
    return tok_encode(m->vocab, text, len, true, false, out, cap, n, err);
}

static void l2_normalise(float *v, int n)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    if (ss <= 0.0)
        return;
    const float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < n; i++)
        v[i] *= inv;
}

static enum sp_status check_inputs(const struct engine_model *m, const int32_t *tokens, const int32_t *start,
                                   int n_inputs, struct sp_err *err)
{
    if (engine_model_pooling(m) == ENGINE_POOL_NONE)
        return sp_err_set(err, SP_ERR_INVALID,
                          "model '%s' gives no embeddings: it has no pooling type (%s.pooling_type)", m->name,
                          m->model->hp.arch_name);
    if (n_inputs < 1 || !tokens || !start || start[0] != 0)
        return sp_err_set(err, SP_ERR_INVALID, "no inputs to embed");
    const int n_vocab = m->model->hp.n_vocab;
    for (int i = 0; i < n_inputs; i++) {
        const int n = start[i + 1] - start[i];
        if (n < 1 || n > m->n_ctx)
            return sp_err_set(err, SP_ERR_LIMIT, "input %d has %d tokens; the model's context is %d", i, n, m->n_ctx);
        for (int r = start[i]; r < start[i + 1]; r++)
            if (tokens[r] < 0 || tokens[r] >= n_vocab)
                return sp_err_set(err, SP_ERR_INVALID, "input %d: token id %d is out of range (vocabulary %d)", i,
                                  tokens[r], n_vocab);
    }
    return SP_OK;
}

/* Encoder: whole inputs packed into batches of at most the state's batch. */
static enum sp_status embed_encoder(struct engine_model *m, const int32_t *tokens, const int32_t *start, int n_inputs,
                                    float *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    const int B = model_bert_state_n_batch(m->bert);
    int32_t *rel = sp_malloc(((size_t)n_inputs + 1) * sizeof(int32_t));
    if (!rel)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory embedding %d inputs", n_inputs);
    pthread_mutex_lock(&m->embd_mu);
    for (int i0 = 0; i0 < n_inputs && result == SP_OK;) {
        int i1 = i0 + 1;
        while (i1 < n_inputs && start[i1 + 1] - start[i0] <= B)
            i1++;
        for (int i = i0; i <= i1; i++)
            rel[i - i0] = start[i] - start[i0];
        result = model_bert_embed(m->bert, tokens + start[i0], rel, i1 - i0,
                                  out + (size_t)i0 * m->model->hp.n_embd, err);
        i0 = i1;
    }
    pthread_mutex_unlock(&m->embd_mu);
    sp_free(rel);
    return result;
}

/* Decoder: inputs stream through model_decode batches, each input on its
 * own KV sequence while it is being fed. */
struct dec_slot {
    int input;  /* -1 = free */
    int seq;    /* KV sequence */
    int next;   /* next position to feed */
};

static enum sp_status embed_decoder(struct engine_model *m, const int32_t *tokens, const int32_t *start, int n_inputs,
                                    float *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    const int E = m->model->hp.n_embd, B = model_state_n_batch(m->st);
    const enum engine_pooling pool = engine_model_pooling(m);
    const int n_slots = SP_MIN(B, 64);
    int32_t *ibuf = sp_malloc((size_t)B * 4 * sizeof(int32_t));
    bool *want = sp_malloc((size_t)B * sizeof(bool));
    float *rows = sp_malloc((size_t)B * E * sizeof(float));
    double *acc = sp_calloc((size_t)n_slots * E, sizeof(double));
    struct dec_slot *slots = sp_malloc((size_t)n_slots * sizeof(*slots));
    if (!ibuf || !want || !rows || !acc || !slots) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory embedding %d inputs", n_inputs);
        goto done;
    }
    int32_t *tok = ibuf, *pos = tok + B, *seq = pos + B, *slot_of = seq + B;
    for (int k = 0; k < n_slots; k++)
        slots[k].input = -1;
    struct kv_cache *kv = model_state_kv(m->st);
    pthread_mutex_lock(&m->sched.mu);
    pthread_mutex_lock(&m->sched.decode_mu);
    int next_input = 0, n_done = 0;
    while (n_done < n_inputs && result == SP_OK) {
        /* open sequences for waiting inputs while slots and cells allow */
        for (int k = 0; k < n_slots && next_input < n_inputs; k++) {
            if (slots[k].input >= 0)
                continue;
            const int len = start[next_input + 1] - start[next_input];
            int id, reused;
            if (kv_seq_open(kv, model_seq_cells(m->st, len), NULL, 0, 0, &id, &reused) != SP_OK)
                break;
            slots[k] = (struct dec_slot){next_input++, id, 0};
            memset(acc + (size_t)k * E, 0, (size_t)E * sizeof(double));
        }
        /* one batch: the next tokens of the open inputs, in slot order */
        int nb = 0;
        for (int k = 0; k < n_slots && nb < B; k++) {
            const struct dec_slot *sl = &slots[k];
            if (sl->input < 0)
                continue;
            const int len = start[sl->input + 1] - start[sl->input], left = len - sl->next;
            int take = SP_MIN(left, B - nb);
            /* as the step loop: never a 1-token chunk of a longer input (attention
             * sums a 1-token chunk in another order), so a chunked input gets the
             * arithmetic it gets alone */
            if (left - take == 1 && take > 1)
                take--;
            if (take == 1 && left > 1 && nb > 0)
                take = 0;
            for (int j = 0; j < take; j++, nb++) {
                const int p = sl->next + j;
                tok[nb] = tokens[start[sl->input] + p];
                pos[nb] = p;
                seq[nb] = sl->seq;
                slot_of[nb] = k;
                want[nb] = pool == ENGINE_POOL_MEAN || (pool == ENGINE_POOL_CLS && p == 0) ||
                           (pool == ENGINE_POOL_LAST && p == len - 1);
            }
        }
        if (nb == 0) {
            result = sp_err_set(err, SP_ERR_BUSY,
                                "no room in the KV cache for an embedding input now (generations hold it); retry");
            break;
        }
        bool any = false;
        for (int r = 0; r < nb; r++)
            any |= want[r];
        struct model_batch b = {nb, tok, pos, seq, want};
        if ((result = any ? model_decode_embd(m->st, &b, rows, err) : model_decode(m->st, &b, NULL, err)) != SP_OK)
            break;
        if (engine_model_faulted(m)) {
            result = sp_err_set(err, SP_ERR_CANCELLED, "the model file changed while embedding");
            break;
        }
        int w = 0;
        for (int r = 0; r < nb; r++) {
            if (!want[r])
                continue;
            double *a = acc + (size_t)slot_of[r] * E;
            const float *x = rows + (size_t)w++ * E;
            for (int d = 0; d < E; d++)
                a[d] += (double)x[d];
        }
        /* advance; finish the inputs fed completely */
        for (int r = 0; r < nb; r++)
            slots[slot_of[r]].next = pos[r] + 1;
        for (int k = 0; k < n_slots; k++) {
            struct dec_slot *sl = &slots[k];
            if (sl->input < 0 || sl->next < start[sl->input + 1] - start[sl->input])
                continue;
            const int len = start[sl->input + 1] - start[sl->input];
            const double div = pool == ENGINE_POOL_MEAN ? (double)len : 1.0;
            float *o = out + (size_t)sl->input * E;
            for (int d = 0; d < E; d++)
                o[d] = (float)(acc[(size_t)k * E + d] / div);
            kv_seq_close(kv, sl->seq, false);
            sl->input = -1;
            n_done++;
        }
    }
    for (int k = 0; k < n_slots; k++)
        if (slots[k].input >= 0)
            kv_seq_close(kv, slots[k].seq, false);
    pthread_mutex_unlock(&m->sched.decode_mu);
    pthread_mutex_unlock(&m->sched.mu);
done:
    sp_free(ibuf);
    sp_free(want);
    sp_free(rows);
    sp_free(acc);
    sp_free(slots);
    return result;
}

enum sp_status engine_embed(struct engine_model *m, const int32_t *tokens, const int32_t *start, int n_inputs,
                            float *out, struct sp_err *err)
{
    enum sp_status result = check_inputs(m, tokens, start, n_inputs, err);
    if (result != SP_OK)
        return result;
    result = m->bert ? embed_encoder(m, tokens, start, n_inputs, out, err)
                     : embed_decoder(m, tokens, start, n_inputs, out, err);
    if (result != SP_OK)
        return result;
    if (engine_model_faulted(m))
        return sp_err_set(err, SP_ERR_CANCELLED, "the model file changed while embedding");
    for (int i = 0; i < n_inputs; i++)
        l2_normalise(out + (size_t)i * m->model->hp.n_embd, m->model->hp.n_embd);
    return SP_OK;
}
