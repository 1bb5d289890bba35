/* test_admit.c - admission control: slots, bounded FIFO queue, immediate
 * refusal when full, abort while waiting, close, counters back to zero. */
#include "engine/admit.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>

static struct admit *g_a;
static _Atomic int ok_count, busy_count;

static void *worker(void *p)
{
    SP_UNUSED(p);
    struct admit_slot *s = NULL;
    enum sp_status st = admit_acquire(g_a, 5, NULL, NULL, &s);
    if (st == SP_OK) {
        /* hold the slot until every other thread has been refused, so a
         * late-starting thread on a loaded machine cannot find a free slot */
        for (int i = 0; i < 10000 && atomic_load(&busy_count) < 7; i++)
            sp_sleep_ms(1);
        sp_sleep_ms(20);
        atomic_fetch_add(&ok_count, 1);
        admit_release(g_a, s);
    } else if (st == SP_ERR_BUSY) {
        atomic_fetch_add(&busy_count, 1);
    }
    return NULL;
}

TEST(overflow)
{
    g_a = admit_new(1, 2);
    CHECK(g_a);
    pthread_t th[10];
    for (int i = 0; i < 10; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < 10; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT(ok_count, 3);
    CHECK_EQ_INT(busy_count, 7);
    CHECK_EQ_INT(admit_in_flight(g_a), 0);
    CHECK_EQ_INT(admit_queued(g_a), 0);
    admit_free(g_a);
}

static bool abort_yes(void *ud) { return *(_Atomic bool *)ud; }

struct waitarg { struct admit *a; _Atomic bool stop; enum sp_status st; };
static void *waiter(void *p)
{
    struct waitarg *w = p;
    struct admit_slot *s = NULL;
    w->st = admit_acquire(w->a, 5, abort_yes, (void *)&w->stop, &s);
    if (s)
        admit_release(w->a, s);
    return NULL;
}

TEST(abort_and_close)
{
    struct admit *a = admit_new(1, 4);
    int obj = 7;
    admit_slot_set(a, 0, &obj);
    struct admit_slot *s = NULL;
    CHECK(admit_acquire(a, 5, NULL, NULL, &s) == SP_OK);
    CHECK(admit_slot_obj(s) == &obj);
    struct waitarg w1 = {a, false, SP_OK}, w2 = {a, false, SP_OK};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, waiter, &w1);
    pthread_create(&t2, NULL, waiter, &w2);
    while (admit_queued(a) < 2)
        sp_sleep_ms(1);
    w1.stop = true;
    pthread_join(t1, NULL);
    CHECK_EQ_INT(w1.st, SP_ERR_CANCELLED);
    CHECK_EQ_INT(admit_queued(a), 1);
    admit_close(a);
    pthread_join(t2, NULL);
    CHECK_EQ_INT(w2.st, SP_ERR_STATE);
    admit_release(a, s);
    CHECK(admit_wait_idle(a, 100));
    struct admit_slot *s2 = NULL;
    CHECK(admit_acquire(a, 5, NULL, NULL, &s2) == SP_ERR_STATE);
    admit_free(a);
    CHECK(admit_new(0, 1) == NULL);
}

TEST(full)
{
    struct admit *a = admit_new(1, 0);
    struct admit_slot *s = NULL, *s2 = NULL;
    CHECK(!admit_full(a));
    CHECK(admit_acquire(a, 5, NULL, NULL, &s) == SP_OK);
    CHECK(admit_full(a));
    CHECK(admit_acquire(a, 5, NULL, NULL, &s2) == SP_ERR_BUSY);
    admit_release(a, s);
    CHECK(!admit_full(a));
    admit_free(a);
}

/* admit_acquire_n: all or none, FIFO (the first waiter collects released
 * slots), an aborting waiter passes on what it collected */
struct nwait { struct admit *a; int n; _Atomic bool stop, got; enum sp_status st; struct admit_slot *s[4]; };
static void *nwaiter(void *p)
{
    struct nwait *w = p;
    w->st = admit_acquire_n(w->a, w->n, 2, abort_yes, (void *)&w->stop, w->s);
    atomic_store(&w->got, w->st == SP_OK);
    return NULL;
}

static void wait_queued(struct admit *a, int n)
{
    for (int i = 0; i < 5000 && admit_queued(a) != n; i++)
        sp_sleep_ms(1);
}

TEST(several)
{
    struct admit *a = admit_new(3, 4);
    struct admit_slot *s[3] = {0}, *one = NULL;
    CHECK(admit_acquire_n(a, 4, 1, NULL, NULL, s) == SP_ERR_INVALID); /* more than there are */
    CHECK(admit_acquire_n(a, 2, 1, NULL, NULL, s) == SP_OK && s[0] && s[1] && s[0] != s[1]);
    CHECK_EQ_INT(admit_in_flight(a), 2);
    /* a waiter for 3 holds its place: a later 1-slot request must not overtake it */
    struct nwait big = {.a = a, .n = 3}, small = {.a = a, .n = 1};
    pthread_t tb, ts;
    pthread_create(&tb, NULL, nwaiter, &big);
    wait_queued(a, 1);
    pthread_create(&ts, NULL, nwaiter, &small);
    wait_queued(a, 2);
    CHECK_EQ_INT(admit_in_flight(a), 3); /* the free slot went to the first waiter */
    admit_release(a, s[0]);
    sp_sleep_ms(20);
    CHECK(!atomic_load(&big.got) && !atomic_load(&small.got));
    admit_release(a, s[1]);
    pthread_join(tb, NULL);
    CHECK(big.st == SP_OK && big.s[0] && big.s[1] && big.s[2]);
    CHECK(!atomic_load(&small.got));
    for (int i = 0; i < 3; i++)
        admit_release(a, big.s[i]);
    pthread_join(ts, NULL);
    CHECK(small.st == SP_OK);
    admit_release(a, small.s[0]);
    /* a waiter that gives up passes its collected slots on */
    CHECK(admit_acquire_n(a, 2, 1, NULL, NULL, s) == SP_OK);
    struct nwait quit = {.a = a, .n = 3};
    pthread_create(&tb, NULL, nwaiter, &quit);
    wait_queued(a, 1);
    struct nwait next = {.a = a, .n = 2};
    pthread_create(&ts, NULL, nwaiter, &next);
    wait_queued(a, 2);
    atomic_store(&quit.stop, true);
    pthread_join(tb, NULL);
    CHECK(quit.st == SP_ERR_CANCELLED);
    admit_release(a, s[0]);
    pthread_join(ts, NULL);
    CHECK(next.st == SP_OK); /* the quitter's slot and s[0] */
    admit_release(a, s[1]);
    admit_release(a, next.s[0]);
    admit_release(a, next.s[1]);
    CHECK_EQ_INT(admit_in_flight(a), 0);
    CHECK_EQ_INT(admit_queued(a), 0);
    CHECK(admit_acquire(a, 1, NULL, NULL, &one) == SP_OK);
    admit_release(a, one);
    admit_free(a);
}

int main(void)
{
    RUN(full);
    RUN(overflow);
    RUN(abort_and_close);
    RUN(several);
    return test_summary();
}
