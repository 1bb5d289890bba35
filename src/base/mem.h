/* mem.h - the one allocator of spoke: counted (bytes in use, peak, count) and
 * with fault injection (make the Nth allocation from now fail) for tests.
 * Thread-safe. All library code allocates through these, never malloc(). */
#ifndef SPOKE_MEM_H
#define SPOKE_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Return NULL on failure (or injected failure). sp_malloc(0) returns a unique
 * non-NULL pointer. Memory from these must be released with sp_free. */
void *sp_malloc(size_t size);
void *sp_calloc(size_t count, size_t size); /* NULL on count*size overflow */
void *sp_realloc(void *ptr, size_t size);   /* on failure ptr is untouched */
void sp_free(void *ptr);                     /* NULL is a no-op */
char *sp_strdup(const char *s);
char *sp_strndup(const char *s, size_t n);   /* copies at most n bytes, NUL-terminates */

/* Aligned allocation (align: power of two >= 16), release with sp_aligned_free. */
void *sp_aligned_alloc(size_t align, size_t size);
void sp_aligned_free(void *ptr);

/* Large, long-lived blocks that kernels stream (repacked weights, the KV cache):
 * from SP_HUGE_BYTES (2 MiB) up, an anonymous mapping aligned to 2 MiB and advised
 * for transparent huge pages (MADV_HUGEPAGE), so a pass over it takes a TLB miss
 * per 2 MiB rather than per 4 KiB; smaller sizes come from sp_aligned_alloc(64).
 * Counted and fault-injected like the rest. Release with sp_huge_free. */
#define SP_HUGE_BYTES ((size_t)2 << 20)
void *sp_huge_alloc(size_t size);
void sp_huge_free(void *ptr); /* NULL is a no-op */

/* Many smaller long-lived blocks on huge pages too (the small weight matrices
 * of a model): sp_arena_alloc packs blocks below SP_HUGE_BYTES one after
 * another into 2 MiB-aligned, THP-advised chunks of 32 MiB (64-byte aligned
 * blocks; larger sizes get sp_huge_alloc's own mapping). sp_arena_seal ends
 * the current chunk: the pages after its last block go back to the system
 * (call it when a batch of allocations is done, so the partly filled last
 * huge page is not resident whole); the next allocation starts a new chunk.
 * Blocks are freed with sp_huge_free, in any order, also after the arena is
 * sealed; a chunk's mapping goes with its last block. A zeroed struct is an
 * empty arena; thread-safe. */
struct sp_arena {
    struct arena_chunk *open;
};
void *sp_arena_alloc(struct sp_arena *a, size_t size);
void sp_arena_seal(struct sp_arena *a);

/* Counters (approximate under concurrency, exact when quiescent). */
size_t sp_mem_in_use(void);     /* bytes currently allocated */
size_t sp_mem_peak(void);       /* high-water mark of sp_mem_in_use */
uint64_t sp_mem_alloc_count(void); /* successful allocations so far */

/* Fault injection: the n-th allocation call from now (1 = the next) fails,
 * and every later one too if sticky. n <= 0 disables injection. */
void sp_mem_fail_after(long n, int sticky);

#endif
