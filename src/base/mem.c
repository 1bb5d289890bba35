/* mem.c - counted allocator with fault injection.
 * Each block carries a 16-byte header holding its size so sp_free can keep
 * the in-use counter exact; aligned blocks store the original pointer and
 * size just before the aligned address. Counters are C11 atomics. Huge blocks
 * are their own mmap, trimmed to a 2 MiB boundary and madvised for THP; an
 * arena packs smaller blocks into such mappings of 32 MiB (the unused end of
 * one is given back when the arena moves on or is sealed). */
#include "base/mem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* Maps [header page][len bytes from a 2 MiB boundary], the bytes advised for
 * THP; returns the aligned start (len: a multiple of 4 KiB, not near
 * SIZE_MAX) or NULL. */
static unsigned char *huge_map(size_t len)
{
    const size_t map = len + SP_HUGE_BYTES + HUGE_HDR;
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
    return (unsigned char *)a;
}

/* Unmaps what huge_map(len) returned as a. */
static void huge_unmap(unsigned char *a, size_t len) { munmap(a - HUGE_HDR, HUGE_HDR + len); }

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
    if (size > SIZE_MAX - 2 * SP_HUGE_BYTES)
        return NULL;
    const size_t len = (size + HUGE_HDR - 1) & ~(HUGE_HDR - 1);
    if (should_fail())
        return NULL;
    unsigned char *a = huge_map(len);
    if (!a)
        return NULL;
    struct huge_hdr h = {len, size};
    memcpy(a - HUGE_HDR, &h, sizeof(h));
    const size_t tag = HUGE_MAGIC;
    memcpy(a - sizeof(tag), &tag, sizeof(tag));
    account(size, 0);
    return a;
}

/* Arenas: a chunk is a huge mapping of ARENA_CHUNK bytes whose header page
 * holds struct arena_chunk; its blocks follow one another, each after a
 * 64-byte header (the chunk, the size, ARENA_MAGIC in the last word). A
 * chunk is unmapped when it is closed (the arena moved on or was sealed)
 * and its last block is freed. One mutex for every arena: blocks are taken
 * and freed at model load and unload, not per token. */
#define ARENA_CHUNK ((size_t)32 << 20)
#define ARENA_MAGIC ((size_t)0x535041524eu)
struct arena_chunk {
    size_t used, live;
    bool open;
};
struct arena_blk {
    struct arena_chunk *c;
    size_t size;
    size_t pad[5];
    size_t tag;
};
_Static_assert(sizeof(struct arena_blk) == 64, "an arena block header is 64 bytes");
static pthread_mutex_t g_arena_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned char *chunk_data(struct arena_chunk *c) { return (unsigned char *)c + HUGE_HDR; }

/* Under g_arena_mu: no more blocks in c; the pages past its last block go
 * back (the huge page holding the end is split, its unused part freed), and
 * the whole chunk once no block is left. */
static void chunk_close(struct arena_chunk *c)
{
    c->open = false;
    if (c->live == 0) {
        huge_unmap(chunk_data(c), ARENA_CHUNK);
        return;
    }
    const size_t keep = (c->used + HUGE_HDR - 1) & ~(HUGE_HDR - 1);
    if (keep < ARENA_CHUNK)
        (void)madvise(chunk_data(c) + keep, ARENA_CHUNK - keep, MADV_DONTNEED);
}

void *sp_arena_alloc(struct sp_arena *a, size_t size)
{
    if (size >= SP_HUGE_BYTES)
        return sp_huge_alloc(size);
    const size_t need = sizeof(struct arena_blk) + ((size + 63) & ~(size_t)63);
    if (should_fail())
        return NULL;
    pthread_mutex_lock(&g_arena_mu);
    struct arena_chunk *c = a->open;
    if (!c || c->used + need > ARENA_CHUNK) {
        if (c)
            chunk_close(c);
        a->open = NULL;
        unsigned char *d = huge_map(ARENA_CHUNK);
        if (!d) {
            pthread_mutex_unlock(&g_arena_mu);
            return NULL;
        }
        c = (struct arena_chunk *)(d - HUGE_HDR);
        *c = (struct arena_chunk){.used = 0, .live = 0, .open = true};
        a->open = c;
    }
    struct arena_blk *b = (struct arena_blk *)(chunk_data(c) + c->used);
    *b = (struct arena_blk){.c = c, .size = size, .tag = ARENA_MAGIC};
    c->used += need;
    c->live++;
    pthread_mutex_unlock(&g_arena_mu);
    account(size, 0);
    return b + 1;
}

void sp_arena_seal(struct sp_arena *a)
{
    pthread_mutex_lock(&g_arena_mu);
    if (a->open)
        chunk_close(a->open);
    a->open = NULL;
    pthread_mutex_unlock(&g_arena_mu);
}

void sp_huge_free(void *ptr)
{
    if (!ptr)
        return;
    unsigned char *p = ptr;
    size_t tag;
    memcpy(&tag, p - sizeof(tag), sizeof(tag));
    if (tag == ARENA_MAGIC) {
        const struct arena_blk *b = (const struct arena_blk *)p - 1;
        const size_t size = b->size;
        pthread_mutex_lock(&g_arena_mu);
        struct arena_chunk *c = b->c;
        if (--c->live == 0 && !c->open)
            huge_unmap(chunk_data(c), ARENA_CHUNK);
        pthread_mutex_unlock(&g_arena_mu);
        account(0, size);
        return;
    }
    if (tag != HUGE_MAGIC) {
        sp_aligned_free(p - 64);
        return;
    }
    struct huge_hdr h;
    memcpy(&h, p - HUGE_HDR, sizeof(h));
    account(0, h.size);
    huge_unmap(p, h.len);
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
