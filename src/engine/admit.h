/* admit.h - per-model admission control for the server: max_concurrency
 * slots (each carries an opaque object, the server puts an engine_ctx there)
 * and a bounded FIFO wait queue. A request that finds every slot busy and the
 * queue full is refused at once (SP_ERR_BUSY -> HTTP 429); a queued request
 * can give up (client gone) through its abort callback. Slots are handed to
 * waiters in arrival order. Thread-safe. */
#ifndef SPOKE_ENGINE_ADMIT_H
#define SPOKE_ENGINE_ADMIT_H

#include "base/base.h"

struct admit;
struct admit_slot;

/* n_slots >= 1 slots, queue_cap >= 0 waiters. NULL on bad arguments or OOM. */
struct admit *admit_new(int n_slots, int queue_cap);
/* Free; every slot must have been released. NULL is a no-op. Slot objects are
 * not freed (the caller owns them). */
void admit_free(struct admit *a);

int admit_n_slots(const struct admit *a);
/* Attach caller-owned object obj to slot i (before use). */
void admit_slot_set(struct admit *a, int i, void *obj);
void *admit_slot_get(const struct admit *a, int i);

/* Called about every poll_ms while waiting; return true to give up. */
typedef bool (*admit_abort_fn)(void *ud);

/* Take a free slot, else wait in the queue (FIFO) if it has room, else fail
 * at once with SP_ERR_BUSY. While waiting, abort_fn (may be NULL) is polled
 * every poll_ms (>= 1): if it returns true -> SP_ERR_CANCELLED. After
 * admit_close -> SP_ERR_STATE. On SP_OK *out is the slot (release it with
 * admit_release exactly once). */
enum sp_status admit_acquire(struct admit *a, int poll_ms, admit_abort_fn abort_fn, void *ud,
                             struct admit_slot **out) SP_MUST_USE;
/* n slots at once (1 <= n <= the slot count, else SP_ERR_INVALID), all or
 * none, into out[0..n): the same queue (one place, FIFO); the first waiter
 * collects slots as they are released, so it cannot be starved by smaller
 * requests behind it and no two requests each hold part of what they need. */
enum sp_status admit_acquire_n(struct admit *a, int n, int poll_ms, admit_abort_fn abort_fn, void *ud,
                               struct admit_slot **out) SP_MUST_USE;
void *admit_slot_obj(const struct admit_slot *s);
/* Give the slot back (to the first waiter, if any). */
void admit_release(struct admit *a, struct admit_slot *s);

/* Refuse new and queued requests from now on (waiters get SP_ERR_STATE). */
void admit_close(struct admit *a);
/* Call fn(obj, ud) for the object of every busy slot (under the lock: fn
 * must be quick and non-blocking, e.g. engine_ctx_cancel). */
void admit_foreach_busy(struct admit *a, void (*fn)(void *obj, void *ud), void *ud);
/* Wait until no slot is busy and nobody waits (at most timeout_ms). True if idle. */
bool admit_wait_idle(struct admit *a, int timeout_ms);

/* True when an admit_acquire now would fail with SP_ERR_BUSY (every slot
 * busy, queue full): lets callers refuse before doing any work. Advisory. */
bool admit_full(const struct admit *a);
int admit_in_flight(const struct admit *a); /* busy slots */
int admit_queued(const struct admit *a);    /* waiting requests */

#endif
