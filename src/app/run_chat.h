/* run_chat.h - (internal to src/app) the interactive conversation of
 * `spoke run` (cmd_run_chat.c). */
#ifndef SPOKE_APP_RUN_CHAT_H
#define SPOKE_APP_RUN_CHAT_H

#include "app/app.h"
#include "engine/engine.h"

struct run_chat_opts {
    const char *system;              /* initial system message or NULL */
    int max_tokens;                  /* per reply */
    bool verbose;                    /* token counts and tokens/s after each reply */
    struct engine_sampling sampling;
};

/* Converse on stdin/stdout (a terminal) with model m on context c until
 * /bye or end of input. Installs its own SIGINT handler (Ctrl-C stops the
 * current reply) and restores the previous one. Returns an exit code. */
int run_chat(struct engine_model *m, struct engine_ctx *c, const struct run_chat_opts *o);

#endif
