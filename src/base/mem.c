/* mem.c - counted allocator with fault injection.
 * Each block carries a 16-byte header holding its size so sp_free can keep
 * the in-use counter exact; aligned blocks store the original pointer and
 * size just before the aligned address. Counters are C11 atomics. Huge blocks
 * are their own mmap, trimmed to a 2 MiB boundary and madvised for THP. */
#include "base/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HDR 16u

static atomic_size_t g_in_use;
static atomic_size_t g_peak;
static atomic_uint_fast64_t g_count;
static atomic_long g_fail_countdown; /* > 0: counting down; 0 disabled */
static atomic_int g_fail_sticky;
static atomic_int g_failing;

static int should_fail(void)
{
    if (atomic_load_explicit(&g_failing, memory_order_relaxed))
        return 1;
    long n = atomic_load_explicit(&g_fail_countdown, memory_order_relaxed);
    if (n <= 0)
        return 0;
    long prev = atomic_fetch_sub(&g_fail_countdown, 1);
    if (prev == 1) {
        if (atomic_load(&g_fail_sticky))
            atomic_store(&g_failing, 1);
        return 1;
    }
    return 0;
}

static void account(size_t add, size_t sub)
{
    if (add) {
        size_t now = atomic_fetch_add(&g_in_use, add) + add;
        size_t peak = atomic_load(&g_peak);
        while (now > peak && !atomic_compare_exchange_weak(&g_peak, &peak, now)) {
        }
        atomic_fetch_add(&g_count, 1);
    }
    if (sub)
        atomic_fetch_sub(&g_in_use, sub);
}

void *sp_malloc(size_t size)
{
    if (should_fail() || size > SIZE_MAX - HDR)
        return NULL;
    unsigned char *p = malloc(size + HDR);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof(size));
    account(size, 0);
    return p + HDR;
}

void *sp_calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total))
        return NULL;
    void *p = sp_malloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}

void *sp_realloc(void *ptr, size_t size)
{
    if (!ptr)
        return sp_malloc(size);
    if (should_fail() || size > SIZE_MAX - HDR)
        return NULL;
    unsigned char *base = (unsigned char *)ptr - HDR;
    size_t old;
    memcpy(&old, base, sizeof(old));
    unsigned char *p = realloc(base, size + HDR);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof(size));
    account(size, old);
    return p + HDR;
}

void sp_free(void *ptr)
{
    if (!ptr)
        return;
    unsigned char *base = (unsigned char *)ptr - HDR;
    size_t size;
    memcpy(&size, base, sizeof(size));
    account(0, size);
    free(base);
}

char *sp_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = sp_malloc(len + 1);
    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *sp_strdup(const char *s) { return sp_strndup(s, strlen(s)); }

void *sp_aligned_alloc(size_t align, size_t size)
{
    if (align < 16 || (align & (align - 1)) != 0)
        return NULL;
    size_t total;
    if (__builtin_add_overflow(size, align + 2 * sizeof(void *), &total))
        return NULL;
    unsigned char *raw = sp_malloc(total);
    if (!raw)
        return NULL;
    uintptr_t a = ((uintptr_t)raw + 2 * sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
    void **slot = (void **)a;
    slot[-1] = raw;
    return (void *)a;
}

void sp_aligned_free(void *ptr)
{
    if (!ptr)
        return;
    void **slot = ptr;
    sp_free(slot[-1]);
}

/* A huge block: one mapping of [header page][len bytes from a 2 MiB boundary];
 * the header page starts with len and size. The word just before any block from
 * sp_huge_alloc tells the two kinds apart: HUGE_MAGIC (the header page's last
 * word) or 0 (a small block, 64 bytes past an aligned one). */
#define HUGE_HDR ((size_t)4096)
struct huge_hdr {
    size_t len, size;
};
#define HUGE_MAGIC ((size_t)0x5350684755u)

void *sp_huge_alloc(size_t size)
{
    if (size < SP_HUGE_BYTES) {
        /* small: an aligned block whose 64 bytes before hold a non-magic tag */
        size_t total;
        if (__builtin_add_overflow(size, (size_t)64, &total))
            return NULL;
        unsigned char *p = sp_aligned_alloc(64, total);
        if (!p)
            return NULL;
        memset(p, 0, 64); /* the tag word at p + 56 is 0 */
        return p + 64;
    }
    size_t len, map;
    if (size > SIZE_MAX - 2 * SP_HUGE_BYTES)
        return NULL;
    len = (size + HUGE_HDR - 1) & ~(HUGE_HDR - 1);
    map = len + SP_HUGE_BYTES + HUGE_HDR;
    if (should_fail())
        return NULL;
    unsigned char *raw = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)raw + HUGE_HDR + SP_HUGE_BYTES - 1) & ~(uintptr_t)(SP_HUGE_BYTES - 1);
    size_t head = a - HUGE_HDR - (uintptr_t)raw, tail = map - head - HUGE_HDR - len;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap((void *)(a + len), tail);
    (void)madvise((void *)a, len, MADV_HUGEPAGE); /* advice: fails harmlessly where THP is off */
    struct huge_hdr h = {len, size};
    memcpy((void *)(a - HUGE_HDR), &h, sizeof(h));
    const size_t tag = HUGE_MAGIC;
    memcpy((void *)(a - sizeof(tag)), &tag, sizeof(tag));
    account(size, 0);
    return (void *)a;
}

void sp_huge_free(void *ptr)
{
    if (!ptr)
        return;
    unsigned char *p = ptr;
    size_t tag;
    memcpy(&tag, p - sizeof(tag), sizeof(tag));
    if (tag != HUGE_MAGIC) {
        sp_aligned_free(p - 64);
        return;
    }
    struct huge_hdr h;
    memcpy(&h, p - HUGE_HDR, sizeof(h));
    account(0, h.size);
    munmap(p - HUGE_HDR, HUGE_HDR + h.len);
}

size_t sp_mem_in_use(void) { return atomic_load(&g_in_use); }
size_t sp_mem_peak(void) { return atomic_load(&g_peak); }
uint64_t sp_mem_alloc_count(void) { return atomic_load(&g_count); }

void sp_mem_fail_after(long n, int sticky)
{
    atomic_store(&g_failing, 0);
    atomic_store(&g_fail_sticky, sticky ? 1 : 0);
    atomic_store(&g_fail_countdown, n > 0 ? n : 0);
}
