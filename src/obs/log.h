/* log.h - leveled logging with a pluggable sink. The default sink writes one
 * line per message to stderr ("2026-01-01T00:00:00.000Z WARN hub: ..."). The
 * level comes from SPOKE_LOG (debug|info|warn|error|off) via log_init_from_env.
 * Thread-safe: the sink is called under a mutex, one message at a time. */
#ifndef SPOKE_LOG_H
#define SPOKE_LOG_H

#include "base/base.h"

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR, LOG_LEVEL_OFF };

/* A sink receives the formatted message (no trailing newline). */
typedef void (*log_sink_fn)(void *userdata, enum log_level level, const char *module, const char *msg);

/* Replace the sink (NULL restores the stderr sink). Returns nothing; safe at any time. */
void log_set_sink(log_sink_fn fn, void *userdata);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse SPOKE_LOG; unknown values leave the level unchanged (default info). */
void log_init_from_env(void);
/* Parse a level name; returns false if unknown. */
bool log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *module, const char *fmt, ...) SP_PRINTF(3, 4);

#define LOG_DEBUG(mod, ...) log_msg(LOG_LEVEL_DEBUG, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...) log_msg(LOG_LEVEL_INFO, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...) log_msg(LOG_LEVEL_WARN, mod, __VA_ARGS__)
#define LOG_ERROR(mod, ...) log_msg(LOG_LEVEL_ERROR, mod, __VA_ARGS__)

#endif
