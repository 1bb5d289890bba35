/* test_kv.c - KV cache: sizes, F16 and F32 round trips, the transposed V
 * layout, rows of different layers/positions not overlapping, bad shapes. */
#include "kv/kv.h"
#include "test.h"

TEST(kv_roundtrip)
{
    for (int ty = 0; ty < 2; ty++) {
        enum kv_type t = ty ? KV_F32 : KV_F16;
        struct kv_cache *kv = NULL;
        struct sp_err err = {0};
        CHECK(kv_cache_new(3, 10, 8, t, &kv, &err) == SP_OK);
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
    CHECK(kv_cache_new(0, 10, 8, KV_F16, &kv, NULL) == SP_ERR_INVALID && !kv);
    CHECK(kv_cache_new(1, -1, 8, KV_F16, &kv, NULL) == SP_ERR_INVALID && !kv);
    CHECK(kv_cache_new(1 << 30, 1 << 30, 1 << 30, KV_F32, &kv, NULL) != SP_OK && !kv);
    CHECK_EQ_INT(kv_cache_bytes(1 << 30, 1 << 30, 1 << 30, KV_F32), 0);
}

int main(void)
{
    RUN(kv_roundtrip);
    RUN(kv_bad_shapes);
    return test_summary();
}
