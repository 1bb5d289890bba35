/* admit.c - admission control: a fixed slot array with a busy flag each,
 * and a FIFO of waiter records that live on the waiting threads' stacks.
 * admit_release hands the slot straight to the first waiter (so a newcomer
 * cannot overtake the queue) and broadcasts one condition variable; every
 * waiter wakes at least every poll_ms to ask its abort callback. */
#include "engine/admit.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

struct admit_slot {
    int index;
    bool busy;
    void *obj;
};

struct waiter {
    struct waiter *next;
    struct admit_slot **got;  /* [need]: slots handed over so far */
    int need, n_got;          /* done when n_got == need */
};

struct admit {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct admit_slot *slots;
    int n_slots, queue_cap;
    int busy, queued;
    bool closed;
    struct waiter *head, *tail;
};

struct admit *admit_new(int n_slots, int queue_cap)
{
    if (n_slots < 1 || n_slots > 4096 || queue_cap < 0 || queue_cap > 1000000)
        return NULL;
    struct admit *a = sp_calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->slots = sp_calloc((size_t)n_slots, sizeof *a->slots);
    if (!a->slots) {
        sp_free(a);
        return NULL;
    }
    for (int i = 0; i < n_slots; i++)
        a->slots[i].index = i;
    a->n_slots = n_slots;
    a->queue_cap = queue_cap;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    return a;
}

void admit_free(struct admit *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    sp_free(a->slots);
    sp_free(a);
}

int admit_n_slots(const struct admit *a) { return a ? a->n_slots : 0; }

void admit_slot_set(struct admit *a, int i, void *obj)
{
    if (a && i >= 0 && i < a->n_slots)
        a->slots[i].obj = obj;
}

void *admit_slot_get(const struct admit *a, int i)
{
    return a && i >= 0 && i < a->n_slots ? a->slots[i].obj : NULL;
}

void *admit_slot_obj(const struct admit_slot *s) { return s ? s->obj : NULL; }

static struct admit_slot *take_free(struct admit *a)
{
    for (int i = 0; i < a->n_slots; i++) {
        if (!a->slots[i].busy) {
            a->slots[i].busy = true;
            a->busy++;
            return &a->slots[i];
        }
    }
    return NULL;
}

static void unlink_waiter(struct admit *a, struct waiter *w)
{
    struct waiter **pp = &a->head, *prev = NULL;
    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = w->next;
        if (a->tail == w)
            a->tail = prev;
        a->queued--;
    }
}

/* With a->mu held: wait on a->cv for at most ms milliseconds; returns what
 * pthread_cond_timedwait returned (ETIMEDOUT when the time ran out). */
static int admit_wait_ms(struct admit *a, long ms)
{
    return sp_cond_wait_ms(&a->cv, &a->mu, ms > 0 ? (uint64_t)ms : 0);
}

/* With a->mu held: slot s goes to the first waiter (which leaves the queue
 * once it has all it needs), else back to the free pool. */
static void give(struct admit *a, struct admit_slot *s)
{
    struct waiter *w = a->closed ? NULL : a->head;
    if (w) {
        w->got[w->n_got++] = s; /* stays busy: handed over */
        if (w->n_got == w->need) {
            a->head = w->next;
            if (!a->head)
                a->tail = NULL;
            a->queued--;
        }
    } else {
        s->busy = false;
        a->busy--;
    }
}

enum sp_status admit_acquire(struct admit *a, int poll_ms, admit_abort_fn abort_fn, void *ud,
                             struct admit_slot **out)
{
    return admit_acquire_n(a, 1, poll_ms, abort_fn, ud, out);
}

enum sp_status admit_acquire_n(struct admit *a, int n, int poll_ms, admit_abort_fn abort_fn, void *ud,
                               struct admit_slot **out)
{
    if (!a || n < 1 || n > a->n_slots)
        return SP_ERR_INVALID;
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    if (poll_ms < 1)
        poll_ms = 1;
    pthread_mutex_lock(&a->mu);
    if (a->closed) {
        pthread_mutex_unlock(&a->mu);
        return SP_ERR_STATE;
    }
    if (!a->head && a->n_slots - a->busy >= n) {
        for (int i = 0; i < n; i++)
            out[i] = take_free(a);
        pthread_mutex_unlock(&a->mu);
        return SP_OK;
    }
    if (a->queued >= a->queue_cap) {
        pthread_mutex_unlock(&a->mu);
        return SP_ERR_BUSY;
    }
    struct waiter w = {.got = out, .need = n};
    if (a->tail)
        a->tail->next = &w;
    else
        a->head = &w;
    a->tail = &w;
    a->queued++;
    /* the first waiter collects free slots as they come (nobody overtakes it) */
    for (struct admit_slot *s; a->head == &w && w.n_got < n && (s = take_free(a)) != NULL;)
        give(a, s);
    enum sp_status result = SP_OK;
    while (w.n_got < w.need) {
        if (a->closed) {
            result = SP_ERR_STATE;
            break;
        }
        int rc = admit_wait_ms(a, poll_ms);
        if (w.n_got == w.need)
            break;
        if (rc == ETIMEDOUT && abort_fn) {
            pthread_mutex_unlock(&a->mu);
            bool stop = abort_fn(ud);
            pthread_mutex_lock(&a->mu);
            if (stop && w.n_got < w.need) {
                result = SP_ERR_CANCELLED;
                break;
            }
        }
    }
    if (w.n_got == w.need) {
        result = SP_OK; /* already unlinked and counted busy */
    } else {
        unlink_waiter(a, &w);
        for (int i = 0; i < w.n_got; i++) { /* pass on what it collected */
            give(a, out[i]);
            out[i] = NULL;
        }
    }
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return result;
}

void admit_release(struct admit *a, struct admit_slot *s)
{
    if (!a || !s)
        return;
    pthread_mutex_lock(&a->mu);
    give(a, s);
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void admit_close(struct admit *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->closed = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void admit_foreach_busy(struct admit *a, void (*fn)(void *obj, void *ud), void *ud)
{
    if (!a || !fn)
        return;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->n_slots; i++)
        if (a->slots[i].busy)
            fn(a->slots[i].obj, ud);
    pthread_mutex_unlock(&a->mu);
}

bool admit_wait_idle(struct admit *a, int timeout_ms)
{
    if (!a)
        return true;
    double deadline = sp_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&a->mu);
    while ((a->busy > 0 || a->queued > 0) && sp_now_ms() < deadline) {
        admit_wait_ms(a, 20);
    }
    bool idle = a->busy == 0 && a->queued == 0;
    pthread_mutex_unlock(&a->mu);
    return idle;
}

int admit_in_flight(const struct admit *a)
{
    if (!a)
        return 0;
    pthread_mutex_lock((pthread_mutex_t *)&a->mu);
    int n = a->busy;
    pthread_mutex_unlock((pthread_mutex_t *)&a->mu);
    return n;
}

int admit_queued(const struct admit *a)
{
    if (!a)
        return 0;
    pthread_mutex_lock((pthread_mutex_t *)&a->mu);
    int n = a->queued;
    pthread_mutex_unlock((pthread_mutex_t *)&a->mu);
    return n;
}

bool admit_full(const struct admit *a)
{
    if (!a)
        return false;
    pthread_mutex_lock((pthread_mutex_t *)&a->mu);
    bool full = !a->closed && a->busy >= a->n_slots && a->queued >= a->queue_cap;
    pthread_mutex_unlock((pthread_mutex_t *)&a->mu);
    return full;
}
