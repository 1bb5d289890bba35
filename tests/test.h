/* test.h - spoke's tiny in-tree unit-test runner (header only).
 * Usage:  TEST(name) { CHECK(x); CHECK_EQ_INT(a, b); }
 *         int main(void) { RUN(name); return test_summary(); }
 * A failing CHECK reports file:line and returns from the test. The summary
 * line is "N passed, N failed" (and the exit status is non-zero on failure).
 * test_shared_path() finds ../shared (env SPOKE_SHARED overrides);
 * test_rand_u32() is a deterministic xorshift64 generator for test data. */
#ifndef SPOKE_TEST_H
#define SPOKE_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int t_passed, t_failed, t_skipped, t_cur_failed, t_cur_skipped;

/* xorshift64 step on *state (seed it non-zero); returns 32 random bits. */
static inline uint32_t test_rand_u32(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return (uint32_t)(x >> 11);
}

#define TEST(name) static void name(void)
#define RUN(name) test_run(#name, name)

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
            t_cur_failed = 1;                                                    \
            return;                                                              \
        }                                                                        \
    } while (0)
#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, "\n");                                               \
            t_cur_failed = 1;                                                    \
            return;                                                              \
        }                                                                        \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                       \
    do {                                                                         \
        long long _a = (long long)(a), _b = (long long)(b);                      \
        if (_a != _b) {                                                          \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, \
                    __LINE__, #a, #b, _a, _b);                                   \
            t_cur_failed = 1;                                                    \
            return;                                                              \
        }                                                                        \
    } while (0)
#define CHECK_EQ_STR(a, b)                                                       \
    do {                                                                         \
        const char *_a = (a), *_b = (b);                                         \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                 \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n",       \
                    __FILE__, __LINE__, #a, #b, _a ? _a : "(null)",              \
                    _b ? _b : "(null)");                                         \
            t_cur_failed = 1;                                                    \
            return;                                                              \
        }                                                                        \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                    \
    do {                                                                         \
        double _a = (double)(a), _b = (double)(b);                               \
        if (!(fabs(_a - _b) <= (tol))) {                                         \
            fprintf(stderr, "  FAIL %s:%d: %s ~ %s (%g vs %g, tol %g)\n",        \
                    __FILE__, __LINE__, #a, #b, _a, _b, (double)(tol));          \
            t_cur_failed = 1;                                                    \
            return;                                                              \
        }                                                                        \
    } while (0)
/* Mark the current test skipped (with a reason) and return. */
#define SKIP(...)                                                                \
    do {                                                                         \
        fprintf(stderr, "  SKIP: ");                                             \
        fprintf(stderr, __VA_ARGS__);                                            \
        fprintf(stderr, "\n");                                                   \
        t_cur_skipped = 1;                                                       \
        return;                                                                  \
    } while (0)

static inline void test_run(const char *name, void (*fn)(void))
{
    t_cur_failed = 0;
    t_cur_skipped = 0;
    fn();
    if (t_cur_failed) {
        t_failed++;
        fprintf(stderr, "not ok %s\n", name);
    } else if (t_cur_skipped) {
        t_skipped++;
        fprintf(stderr, "skip   %s\n", name);
    } else {
        t_passed++;
        fprintf(stderr, "ok     %s\n", name);
    }
}

static inline int test_summary(void)
{
    printf("%d passed, %d failed, %d skipped\n", t_passed, t_failed, t_skipped);
    return t_failed ? 1 : 0;
}

/* Directory of ../shared (SPOKE_SHARED env, set by CMake for ctest). */
static inline const char *test_shared_path(void)
{
    const char *p = getenv("SPOKE_SHARED");
    return p && *p ? p : "../shared";
}

/* Directory of the source tree (SPOKE_SRC_DIR env, set by CMake for ctest). */
static inline const char *test_src_path(void)
{
    const char *p = getenv("SPOKE_SRC_DIR");
    return p && *p ? p : ".";
}

/* Build "<shared>/<rel>" into buf; returns 1 if the file exists. */
static inline int test_shared_file(char *buf, size_t bufsz, const char *rel)
{
    snprintf(buf, bufsz, "%s/%s", test_shared_path(), rel);
    return access(buf, R_OK) == 0;
}

#endif
