/* tok_heap.c - the merge-candidate queue shared by the SPM and BPE encoders:
 * a binary max-heap of struct tok_bigram in a growable array, ordered by key
 * (higher first), then by left symbol (smaller first). */
#include "tok/tok_internal.h"

static bool heap_before(const struct tok_bigram *a, const struct tok_bigram *b)
{
    if (a->key != b->key)
        return a->key > b->key;
    return a->left < b->left;
}

enum sp_status tok_heap_push(struct tok_heap *h, struct tok_bigram b)
{
    if (h->n == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 64;
        struct tok_bigram *nv = sp_realloc(h->v, ncap * sizeof(*nv));
        if (!nv)
            return SP_ERR_NOMEM;
        h->v = nv;
        h->cap = ncap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_before(&b, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return SP_OK;
}

struct tok_bigram tok_heap_pop(struct tok_heap *h)
{
    struct tok_bigram top = h->v[0];
    struct tok_bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct tok_bigram *best = &last;
        if (l < h->n && heap_before(&h->v[l], best)) {
            m = l;
            best = &h->v[l];
        }
        if (r < h->n && heap_before(&h->v[r], best))
            m = r;
        if (m == i)
            break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}
