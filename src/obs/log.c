/* log.c - the logger: a level filter, a message formatted into a stack
 * buffer, and a sink called under a mutex. The default sink prints to stderr
 * (this file and src/app are the only places allowed to print). */
#include "obs/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_level = LOG_LEVEL_INFO;
static log_sink_fn g_sink;
static void *g_sink_ud;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level > LOG_LEVEL_OFF)
        return "?";
    return level_names[level];
}

bool log_level_parse(const char *name, enum log_level *out)
{
    for (unsigned i = 0; i < SP_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return true;
    }
    return false;
}

static void stderr_sink(void *ud, enum log_level level, const char *module, const char *msg)
{
    SP_UNUSED(ud);
    char ts[40];
    sp_format_iso8601(sp_wall_ms(), ts, sizeof(ts));
    static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};
    fprintf(stderr, "%s %-5s %s: %s\n", ts, tags[level], module ? module : "-", msg);
}

void log_set_sink(log_sink_fn fn, void *userdata)
{
    pthread_mutex_lock(&g_log_lock);
    g_sink = fn;
    g_sink_ud = userdata;
    pthread_mutex_unlock(&g_log_lock);
}

void log_set_level(enum log_level level) { atomic_store(&g_level, (int)level); }
enum log_level log_get_level(void) { return (enum log_level)atomic_load(&g_level); }

void log_init_from_env(void)
{
    const char *v = getenv("SPOKE_LOG");
    enum log_level level;
    if (v && log_level_parse(v, &level))
        log_set_level(level);
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
    if ((int)level < atomic_load(&g_level) || level >= LOG_LEVEL_OFF)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_log_lock);
    if (g_sink)
        g_sink(g_sink_ud, level, module, msg);
    else
        stderr_sink(NULL, level, module, msg);
    pthread_mutex_unlock(&g_log_lock);
}
