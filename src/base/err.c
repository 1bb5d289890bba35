/* err.c - status names and the sp_err error record helpers.
 * Messages are formatted with vsnprintf into the fixed-size record, so filling
 * an error never allocates and never fails. */
#include "base/base.h"

#include <stdio.h>
#include <string.h>

static const char *const status_names[SP_STATUS_COUNT] = {
    [SP_OK] = "ok",
    [SP_ERR_NOMEM] = "out_of_memory",
    [SP_ERR_INVALID] = "invalid",
    [SP_ERR_FORMAT] = "bad_format",
    [SP_ERR_UNSUPPORTED] = "unsupported",
    [SP_ERR_RANGE] = "out_of_range",
    [SP_ERR_LIMIT] = "limit_exceeded",
    [SP_ERR_IO] = "io_error",
    [SP_ERR_NOT_FOUND] = "not_found",
    [SP_ERR_AUTH] = "unauthorized",
    [SP_ERR_NETWORK] = "network_error",
    [SP_ERR_HTTP] = "http_error",
    [SP_ERR_INTEGRITY] = "integrity_error",
    [SP_ERR_OFFLINE] = "offline",
    [SP_ERR_BUSY] = "busy",
    [SP_ERR_CANCELLED] = "cancelled",
    [SP_ERR_TIMEOUT] = "timeout",
    [SP_ERR_MEMORY] = "insufficient_memory",
    [SP_ERR_STATE] = "bad_state",
    [SP_ERR_INTERNAL] = "internal_error",
    [SP_ERR_NOSPACE] = "no_space",
};

const char *sp_status_name(enum sp_status status)
{
    if ((unsigned)status >= SP_STATUS_COUNT || !status_names[status])
        return "unknown";
    return status_names[status];
}

void sp_err_clear(struct sp_err *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof(*err));
    err->offset = -1;
}

static void err_vset(struct sp_err *err, enum sp_status code, const char *fmt, va_list ap)
{
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

enum sp_status sp_err_set(struct sp_err *err, enum sp_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err_vset(err, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

enum sp_status sp_err_setc(struct sp_err *err, enum sp_status code, const char *context,
                           const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err_vset(err, code, fmt, ap);
        va_end(ap);
        snprintf(err->context, sizeof(err->context), "%s", context ? context : "");
    }
    return code;
}
