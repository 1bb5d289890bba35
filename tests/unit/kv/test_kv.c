/* test_kv.c - KV cache: sizes, F16 and F32 round trips, the transposed V
 * layout, rows of different layers/positions not overlapping, bad shapes,
 * kv_seq_copy with sliding-window rings. */
#include "kv/kv.h"
#include "test.h"

#include <string.h>

TEST(kv_roundtrip)
{
    for (int ty = 0; ty < 2; ty++) {
        enum kv_type t = ty ? KV_F32 : KV_F16;
        struct kv_cache *kv = NULL;
        struct sp_err err = {0};
        CHECK(kv_cache_new(3, 10, 8, t, 4, &kv, &err) == SP_OK);
        CHECK_EQ_INT(kv_cache_bytes(3, 10, 8, t), 3 * 10 * 8 * (t == KV_F32 ? 4 : 2) * 2);
        float k[8], v[8], o[8];
        for (int l = 0; l < 3; l++)
            for (int p = 0; p < 10; p++) {
                for (int d = 0; d < 8; d++) {
                    k[d] = (float)(l * 100 + p * 10 + d) * 0.25f;
                    v[d] = -k[d];
                }
                kv_cache_store(kv, l, p, k, v);
            }
        for (int l = 0; l < 3; l++)
            for (int p = 0; p < 10; p++) {
                kv_cache_load_k(kv, l, p, o);
                for (int d = 0; d < 8; d++)
                    CHECK_NEAR(o[d], (float)(l * 100 + p * 10 + d) * 0.25f, 0.25);
                kv_cache_load_v(kv, l, p, o);
                for (int d = 0; d < 8; d++)
                    CHECK_NEAR(o[d], -(float)(l * 100 + p * 10 + d) * 0.25f, 0.25);
            }
        /* V is transposed: row (layer 1, dim 2) holds positions 0..9 */
        if (t == KV_F32) {
            const float *row = kv_cache_v(kv, 1, 2);
            for (int p = 0; p < 10; p++)
                CHECK_NEAR(row[p], -(float)(100 + p * 10 + 2) * 0.25f, 0);
        }
        kv_cache_free(kv);
    }
    kv_cache_free(NULL);
}

TEST(kv_bad_shapes)
{
    struct kv_cache *kv = NULL;
    CHECK(kv_cache_new(0, 10, 8, KV_F16, 4, &kv, NULL) == SP_ERR_INVALID && !kv);
    CHECK(kv_cache_new(1, -1, 8, KV_F16, 4, &kv, NULL) == SP_ERR_INVALID && !kv);
    CHECK(kv_cache_new(1 << 30, 1 << 30, 1 << 30, KV_F32, 4, &kv, NULL) != SP_OK && !kv);
    CHECK_EQ_INT(kv_cache_bytes(1 << 30, 1 << 30, 1 << 30, KV_F32), 0);
}

/* Spans: first fit, BUSY when live spans hold the cells, closed spans
 * cached for prefix reuse (in place, or moved when they must grow), LRU
 * eviction of cached spans. */
TEST(kv_sequences)
{
    struct kv_cache *kv = NULL;
    CHECK(kv_cache_new(1, 110, 2, KV_F32, 4, &kv, NULL) == SP_OK);
    int a, b, c, d, r;
    CHECK(kv_seq_open(kv, 0, NULL, 0, 0, &a, &r) == SP_ERR_INVALID);
    CHECK(kv_seq_open(kv, 111, NULL, 0, 0, &a, &r) == SP_ERR_INVALID);
    CHECK(kv_seq_open(kv, 40, NULL, 0, 0, &a, &r) == SP_OK && r == 0);
    CHECK(kv_seq_open(kv, 40, NULL, 0, 0, &b, &r) == SP_OK);
    CHECK_EQ_INT(kv_seq_get(kv, a)->base, 0);
    CHECK_EQ_INT(kv_seq_get(kv, b)->base, 40);
    CHECK_EQ_INT(kv_cells_available(kv), 30);
    CHECK(kv_seq_open(kv, 31, NULL, 0, 0, &c, &r) == SP_ERR_BUSY);
    /* a holds tokens 0..9 with K = token id */
    int32_t toks[10];
    float k[2], v[2];
    for (int i = 0; i < 10; i++) {
        toks[i] = 100 + i;
        k[0] = k[1] = v[0] = v[1] = (float)toks[i];
        kv_cache_store(kv, 0, kv_seq_get(kv, a)->base + i, k, v);
    }
    kv_seq_set_tokens(kv, a, 0, toks, 10);
    CHECK_EQ_INT(kv_seq_get(kv, a)->len, 10);
    kv_seq_close(kv, a, true);
    CHECK_EQ_INT(kv_cells_available(kv), 70);
    /* a prompt sharing 6 tokens takes a's cells over in place */
    int32_t p[8] = {100, 101, 102, 103, 104, 105, 7, 8};
    CHECK(kv_seq_open(kv, 30, p, 8, 7, &c, &r) == SP_OK);
    CHECK_EQ_INT(r, 6);
    CHECK_EQ_INT(kv_seq_get(kv, c)->base, 0);
    CHECK_EQ_INT(kv_seq_get(kv, c)->len, 6);
    /* c = [0,30), b = [40,80): growing c to 35 cells fits in place */
    kv_seq_close(kv, c, true);
    CHECK(kv_seq_open(kv, 35, p, 8, 7, &c, &r) == SP_OK && r == 6);
    CHECK_EQ_INT(kv_seq_get(kv, c)->base, 0);
    kv_seq_close(kv, c, true);
    kv_seq_close(kv, b, false);
    CHECK(kv_seq_open(kv, 30, NULL, 0, 0, &b, &r) == SP_OK); /* b = [35,65) */
    CHECK_EQ_INT(kv_seq_get(kv, b)->base, 35);
    /* growing to 35 + 1: the kept cells move to the free gap [65,110) */
    CHECK(kv_seq_open(kv, 35, p, 8, 7, &d, &r) == SP_OK);
    CHECK_EQ_INT(r, 6);
    int base = kv_seq_get(kv, d)->base;
    CHECK_EQ_INT(base, 0); /* still fits in place: [0,35) */
    kv_seq_close(kv, d, true);
    CHECK(kv_seq_open(kv, 36, p, 8, 7, &d, &r) == SP_OK);
    CHECK_EQ_INT(r, 6);
    base = kv_seq_get(kv, d)->base;
    CHECK_EQ_INT(base, 65);
    float o[2];
    kv_cache_load_k(kv, 0, base + 5, o);
    CHECK_NEAR(o[0], 105.0, 0);
    kv_seq_close(kv, d, false);
    kv_seq_close(kv, b, true);
    /* cached b is evicted when nothing else fits */
    CHECK(kv_seq_open(kv, 110, NULL, 0, 0, &a, &r) == SP_OK);
    CHECK_EQ_INT(kv_cells_available(kv), 0);
    kv_seq_close(kv, a, false);
    kv_cache_free(kv);
}

/* A prompt sharing less than half of a cached sequence's tokens gets a copy
 * of the common prefix in a fresh span while one fits without evicting, so
 * the cached sequence stays for its own continuation; with no room it is
 * taken over as before. */
TEST(kv_short_prefix_copies)
{
    struct kv_cache *kv = NULL;
    CHECK(kv_cache_new(1, 110, 2, KV_F32, 4, &kv, NULL) == SP_OK);
    int a, b, c, r;
    CHECK(kv_seq_open(kv, 40, NULL, 0, 0, &a, &r) == SP_OK);
    int32_t toks[10];
    for (int i = 0; i < 10; i++) {
        toks[i] = 100 + i;
        const float k[2] = {(float)toks[i], (float)toks[i]};
        kv_cache_store(kv, 0, kv_seq_get(kv, a)->base + i, k, k);
    }
    kv_seq_set_tokens(kv, a, 0, toks, 10);
    const int base_a = kv_seq_get(kv, a)->base;
    kv_seq_close(kv, a, true);
    const int32_t p2[5] = {100, 101, 7, 7, 7}; /* shares 2 of a's 10 */
    CHECK(kv_seq_open(kv, 30, p2, 5, 4, &c, &r) == SP_OK);
    CHECK_EQ_INT(r, 2);
    CHECK(c != a);
    CHECK(kv_seq_get(kv, c)->base != base_a);
    CHECK_EQ_INT(kv_seq_get(kv, c)->len, 2);
    float o[2];
    kv_cache_load_k(kv, 0, kv_seq_get(kv, c)->base + 1, o);
    CHECK_NEAR(o[0], 101.0, 0);
    kv_seq_close(kv, c, false);
    /* a is still cached whole: a prompt sharing 8 of its tokens takes it over */
    const int32_t p3[9] = {100, 101, 102, 103, 104, 105, 106, 107, 7};
    CHECK(kv_seq_open(kv, 30, p3, 9, 8, &c, &r) == SP_OK);
    CHECK_EQ_INT(r, 8);
    CHECK_EQ_INT(c, a);
    kv_seq_set_tokens(kv, c, 0, toks, 10);
    kv_seq_close(kv, c, true);
    /* no room for a fresh span (b holds the rest): the short prefix takes a over */
    CHECK(kv_seq_open(kv, 80, NULL, 0, 0, &b, &r) == SP_OK);
    CHECK(kv_seq_open(kv, 30, p2, 5, 4, &c, &r) == SP_OK);
    CHECK_EQ_INT(r, 2);
    CHECK_EQ_INT(c, a);
    kv_seq_close(kv, c, false);
    kv_seq_close(kv, b, false);
    kv_cache_free(kv);
}

/* kv_seq_copy: the span's cells of full layers, and the whole ring of
 * sliding-window layers, into the other live sequence */
TEST(kv_seq_copy_rings)
{
    const bool ring_layers[2] = {false, true};
    struct kv_cache *kv = NULL;
    CHECK(kv_cache_new_ring(NULL, 2, 512, 4, KV_F32, 4, ring_layers, 64, 8, 2, &kv, NULL) == SP_OK);
    if (!kv)
        return;
    int a, b, ra, rb;
    CHECK(kv_seq_open(kv, 100, NULL, 0, 0, &a, &ra) == SP_OK);
    CHECK(kv_seq_open(kv, 100, NULL, 0, 0, &b, &rb) == SP_OK);
    const int base_a = kv_seq_get(kv, a)->base, base_b = kv_seq_get(kv, b)->base;
    const int ra0 = kv_seq_ring_cell0(kv, a), rb0 = kv_seq_ring_cell0(kv, b);
    CHECK(ra0 != rb0);
    int32_t toks[70];
    float k[4], v[4], got[4];
    for (int p = 0; p < 70; p++) {
        toks[p] = 100 + p;
        for (int i = 0; i < 4; i++)
            k[i] = (float)(p * 10 + i), v[i] = -(float)(p * 10 + i);
        kv_cache_store(kv, 0, base_a + p, k, v);
        kv_cache_store(kv, 1, ra0 + p % 64, k, v); /* the ring: p % ring and p % ring + ring */
        kv_cache_store(kv, 1, ra0 + p % 64 + 64, k, v);
    }
    kv_seq_set_tokens(kv, a, 0, toks, 70);
    kv_seq_copy(kv, b, a, 70);
    CHECK_EQ_INT(kv_seq_get(kv, b)->len, 70);
    int bad = 0;
    for (int p = 0; p < 70; p++) {
        kv_cache_load_k(kv, 0, base_b + p, got);
        bad += got[3] != (float)(p * 10 + 3);
        kv_cache_load_v(kv, 0, base_b + p, got);
        bad += got[1] != -(float)(p * 10 + 1);
        bad += kv->cell_tok[base_b + p] != 100 + p;
    }
    for (int c = 0; c < 128; c++) {
        float ka[4], kb[4];
        kv_cache_load_k(kv, 1, ra0 + c, ka);
        kv_cache_load_k(kv, 1, rb0 + c, kb);
        bad += memcmp(ka, kb, sizeof ka) != 0;
        kv_cache_load_v(kv, 1, ra0 + c, ka);
        kv_cache_load_v(kv, 1, rb0 + c, kb);
        bad += memcmp(ka, kb, sizeof ka) != 0;
    }
    kv_cache_load_k(kv, 1, rb0 + 69 % 64, got);
    bad += got[0] != 690.0f; /* position 69 sits at 5 (and 69) of the ring */
    CHECK_EQ_INT(bad, 0);
    kv_seq_close(kv, a, false);
    kv_seq_close(kv, b, false);
    kv_cache_free(kv);
}

int main(void)
{
    RUN(kv_sequences);
    RUN(kv_roundtrip);
    RUN(kv_bad_shapes);
    RUN(kv_seq_copy_rings);
    RUN(kv_short_prefix_copies);
    return test_summary();
}
