/* clock.h - monotonic and wall-clock time, sleeping. */
#ifndef SPOKE_CLOCK_H
#define SPOKE_CLOCK_H

#include <pthread.h>
#include <stdint.h>

uint64_t sp_now_ns(void);    /* monotonic nanoseconds */
double sp_now_ms(void);      /* monotonic milliseconds (fractional) */
int64_t sp_wall_ms(void);    /* Unix epoch milliseconds */
void sp_sleep_ms(uint64_t ms);
/* pthread_cond_timedwait for at most ms milliseconds from now (mu held by the
 * caller, as for pthread_cond_wait). Returns what pthread_cond_timedwait
 * returned: 0, or ETIMEDOUT when the time ran out. */
int sp_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms);
/* ISO-8601 UTC "YYYY-MM-DDTHH:MM:SS.mmmZ" of epoch ms into out (>= 32 bytes). */
void sp_format_iso8601(int64_t epoch_ms, char *out, unsigned outsz);

#endif
