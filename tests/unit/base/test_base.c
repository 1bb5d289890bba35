/* test_base.c - unit tests for src/base: allocator counters and fault
 * injection, bounded buffers, strict parsers, UTF-8 validation, errors. */
#include "base/base.h"
#include "obs/log.h"
#include "test.h"

#include <sys/mman.h>

TEST(mem_counts_and_frees)
{
    size_t before = sp_mem_in_use();
    char *p = sp_malloc(1000);
    CHECK(p != NULL);
    CHECK(sp_mem_in_use() == before + 1000);
    p = sp_realloc(p, 5000);
    CHECK(p != NULL);
    CHECK(sp_mem_in_use() == before + 5000);
    sp_free(p);
    CHECK(sp_mem_in_use() == before);
    sp_free(NULL);
    void *a = sp_aligned_alloc(64, 100);
    CHECK(a != NULL && ((uintptr_t)a % 64) == 0);
    sp_aligned_free(a);
    CHECK(sp_mem_in_use() == before);
    CHECK(sp_calloc(SIZE_MAX / 2, 4) == NULL);
}

TEST(mem_huge_blocks)
{
    size_t before = sp_mem_in_use();
    /* below SP_HUGE_BYTES: an ordinary aligned block; from it: a 2 MiB aligned
     * mapping. Both writable to the last byte, counted, and freed by one call. */
    static const size_t sizes[] = {1, 100, SP_HUGE_BYTES - 1, SP_HUGE_BYTES, SP_HUGE_BYTES + 1, 3 * SP_HUGE_BYTES + 4097};
    void *p[SP_ARRAY_LEN(sizes)];
    size_t sum = 0;
    for (size_t i = 0; i < SP_ARRAY_LEN(sizes); i++) {
        p[i] = sp_huge_alloc(sizes[i]);
        CHECK(p[i] != NULL && ((uintptr_t)p[i] % 64) == 0);
        if (sizes[i] >= SP_HUGE_BYTES)
            CHECK(((uintptr_t)p[i] % SP_HUGE_BYTES) == 0);
        memset(p[i], 0x5a, sizes[i]);
        sum += sizes[i];
        CHECK(sp_mem_in_use() >= before + sum); /* small blocks count their alignment slack too */
    }
    for (size_t i = 0; i < SP_ARRAY_LEN(sizes); i++)
        CHECK(((unsigned char *)p[i])[sizes[i] - 1] == 0x5a);
    for (size_t i = SP_ARRAY_LEN(sizes); i-- > 0;)
        sp_huge_free(p[i]);
    CHECK(sp_mem_in_use() == before);
    sp_huge_free(NULL);
    CHECK(sp_huge_alloc(SIZE_MAX - 10) == NULL);
    sp_mem_fail_after(1, 0);
    CHECK(sp_huge_alloc(SP_HUGE_BYTES * 2) == NULL);
    sp_mem_fail_after(1, 0);
    CHECK(sp_huge_alloc(64) == NULL);
    sp_mem_fail_after(0, 0);
    CHECK(sp_mem_in_use() == before);
}

/* An arena packs blocks one after another into shared huge-page chunks:
 * 64-byte aligned, writable, counted, freed in any order (also after
 * sealing); a seal ends the chunk and gives back its pages past the last
 * block; sizes from SP_HUGE_BYTES up get their own mapping. */
TEST(mem_arena_blocks)
{
    const size_t before = sp_mem_in_use();
    struct sp_arena a = {0};
    static const size_t sizes[] = {1, 100, 4096, 300000, SP_HUGE_BYTES - 1, 64, SP_HUGE_BYTES + 5};
    enum { N = SP_ARRAY_LEN(sizes) };
    unsigned char *p[N];
    size_t sum = 0;
    for (size_t i = 0; i < N; i++) {
        p[i] = sp_arena_alloc(&a, sizes[i]);
        CHECK(p[i] != NULL && ((uintptr_t)p[i] % 64) == 0);
        if (!p[i])
            return;
        memset(p[i], (int)(0x11 * (i + 1)), sizes[i]);
        sum += sizes[i];
        CHECK(sp_mem_in_use() == before + sum);
    }
    /* the first block opens a chunk at a 2 MiB boundary (after its header);
     * the next ones follow it */
    CHECK(((uintptr_t)p[0] % SP_HUGE_BYTES) == 64);
    CHECK(p[1] == p[0] + 128 && p[2] == p[1] + 64 + 128);
    CHECK(((uintptr_t)p[6] % SP_HUGE_BYTES) == 0); /* its own mapping */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < sizes[i]; j += 997)
            CHECK(p[i][j] == (unsigned char)(0x11 * (i + 1)));
    /* sealed: the pages after the last block are not resident, even where a
     * huge page held them; the next block starts a new chunk */
    sp_arena_seal(&a);
    const size_t pg = 4096;
    unsigned char *end = p[5] + 64, *tail = (unsigned char *)(((uintptr_t)end + pg - 1) & ~(uintptr_t)(pg - 1));
    unsigned char vec[64];
    CHECK(mincore(tail, sizeof(vec) * pg, vec) == 0);
    int resident = 0;
    for (size_t i = 0; i < sizeof(vec); i++)
        resident += vec[i] & 1;
    CHECK_EQ_INT(resident, 0);
    unsigned char *q = sp_arena_alloc(&a, 10);
    CHECK(q != NULL && ((uintptr_t)q % SP_HUGE_BYTES) == 64);
    sp_huge_free(q);
    static const int order[N] = {3, 0, 6, 5, 1, 4, 2};
    for (size_t i = 0; i < N; i++)
        sp_huge_free(p[order[i]]);
    CHECK(sp_mem_in_use() == before);
    sp_mem_fail_after(1, 0);
    CHECK(sp_arena_alloc(&a, 64) == NULL);
    sp_mem_fail_after(0, 0);
    sp_arena_seal(&a);
    sp_arena_seal(&a);
    CHECK(sp_mem_in_use() == before);
}

TEST(mem_fault_injection)
{
    sp_mem_fail_after(2, 0);
    void *a = sp_malloc(8);
    void *b = sp_malloc(8);
    void *c = sp_malloc(8);
    CHECK(a != NULL);
    CHECK(b == NULL);
    CHECK(c != NULL);
    sp_free(a);
    sp_free(c);
    sp_mem_fail_after(1, 1);
    CHECK(sp_malloc(1) == NULL);
    CHECK(sp_malloc(1) == NULL);
    sp_mem_fail_after(0, 0);
    void *d = sp_malloc(1);
    CHECK(d != NULL);
    sp_free(d);
}

TEST(buf_limits)
{
    struct sp_buf b = {0};
    b.limit = 10;
    CHECK(sp_buf_appends(&b, "hello") == SP_OK);
    CHECK(sp_buf_printf(&b, "%d", 12345) == SP_OK);
    CHECK_EQ_STR(b.data, "hello12345");
    CHECK(sp_buf_appends(&b, "x") == SP_ERR_LIMIT);
    CHECK(b.len == 10);
    char *s = sp_buf_take(&b);
    CHECK_EQ_STR(s, "hello12345");
    sp_free(s);
    sp_buf_free(&b);
}

TEST(parsers)
{
    int64_t v;
    uint64_t u;
    double d;
    CHECK(sp_parse_i64("42", 0, 100, &v) && v == 42);
    CHECK(sp_parse_i64("-5", -10, 10, &v) && v == -5);
    CHECK(!sp_parse_i64("42x", 0, 100, &v));
    CHECK(!sp_parse_i64(" 42", 0, 100, &v));
    CHECK(!sp_parse_i64("101", 0, 100, &v));
    CHECK(!sp_parse_i64("", 0, 100, &v));
    CHECK(!sp_parse_i64("99999999999999999999999", INT64_MIN, INT64_MAX, &v));
    CHECK(sp_parse_u64("18446744073709551615", UINT64_MAX, &u) && u == UINT64_MAX);
    CHECK(!sp_parse_u64("-1", UINT64_MAX, &u));
    CHECK(sp_parse_double("0.5", &d) && d == 0.5);
    CHECK(!sp_parse_double("nan", &d));
    CHECK(!sp_parse_double("1e999", &d));
}

TEST(utf8)
{
    CHECK(sp_utf8_valid("abc", 3));
    CHECK(sp_utf8_valid("\xe2\x96\x81", 3));
    CHECK(sp_utf8_valid("\xf0\x9f\x98\x80", 4));
    CHECK(!sp_utf8_valid("\xc0\xaf", 2));         /* overlong */
    CHECK(!sp_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!sp_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!sp_utf8_valid("\xe2\x96", 2));         /* truncated */
    CHECK(!sp_utf8_valid("\xff", 1));
}

TEST(errors)
{
    struct sp_err e;
    sp_err_clear(&e);
    CHECK(e.code == SP_OK && e.offset == -1);
    CHECK(sp_err_setc(&e, SP_ERR_FORMAT, "general.alignment", "bad value %d", 3) == SP_ERR_FORMAT);
    CHECK_EQ_STR(e.msg, "bad value 3");
    CHECK_EQ_STR(e.context, "general.alignment");
    CHECK_EQ_STR(sp_status_name(SP_ERR_NOT_FOUND), "not_found");
    CHECK_EQ_STR(sp_status_name((enum sp_status)999), "unknown");
    CHECK(sp_mul_size(SIZE_MAX, 2, &(size_t){0}) == false);
}

static int g_sink_calls;
static void count_sink(void *ud, enum log_level level, const char *module, const char *msg)
{
    SP_UNUSED(ud);
    SP_UNUSED(level);
    SP_UNUSED(module);
    SP_UNUSED(msg);
    g_sink_calls++;
}

TEST(log_levels_and_sink)
{
    log_set_sink(count_sink, NULL);
    log_set_level(LOG_LEVEL_WARN);
    LOG_INFO("test", "hidden");
    LOG_WARN("test", "shown %d", 1);
    log_set_sink(NULL, NULL);
    log_set_level(LOG_LEVEL_INFO);
    CHECK(g_sink_calls == 1);
    enum log_level l;
    CHECK(log_level_parse("debug", &l) && l == LOG_LEVEL_DEBUG);
    CHECK(!log_level_parse("loud", &l));
}

int main(void)
{
    RUN(mem_counts_and_frees);
    RUN(mem_huge_blocks);
    RUN(mem_arena_blocks);
    RUN(mem_fault_injection);
    RUN(buf_limits);
    RUN(parsers);
    RUN(utf8);
    RUN(errors);
    RUN(log_levels_and_sink);
    return test_summary();
}
