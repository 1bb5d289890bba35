/* bench_par.h - `spoke bench --parallel` (bench_par.c). */
#ifndef SPOKE_APP_BENCH_PAR_H
#define SPOKE_APP_BENCH_PAR_H

#include "base/base.h"

/* Parse "1,2,4,8" into n[] (each 1..256, at most cap entries); false if malformed. */
bool bench_par_list(const char *s, int *n, int cap, int *count);
/* For each model: load it for max(n) sequences, then for each N run N
 * sequences of pp prompt tokens + tg generated tokens, reps times, and print
 * a table row (or a JSON object when json). Returns an APP_EXIT_* code. */
int bench_par_run(const char *const *models, int n_models, const int *n, int count, int pp, int tg, int reps,
                  int threads, bool kv_f32, bool json);

#endif
