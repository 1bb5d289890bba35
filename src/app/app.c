/* app.c - shared helpers of the CLI commands: status -> exit code mapping and
 * the one-line error print. Lives outside main.c so tests can link commands. */
#include "app/app.h"

#include <stdio.h>

int app_exit_code(enum sp_status status)
{
    switch (status) {
    case SP_OK: return APP_EXIT_OK;
    case SP_ERR_INVALID: return APP_EXIT_USAGE;
    case SP_ERR_NOT_FOUND: return APP_EXIT_NOT_FOUND;
    case SP_ERR_AUTH: return APP_EXIT_AUTH;
    case SP_ERR_NETWORK:
    case SP_ERR_HTTP:
    case SP_ERR_TIMEOUT: return APP_EXIT_NETWORK;
    case SP_ERR_INTEGRITY: return APP_EXIT_INTEGRITY;
    case SP_ERR_MEMORY:
    case SP_ERR_NOMEM: return APP_EXIT_MEMORY;
    case SP_ERR_FORMAT:
    case SP_ERR_UNSUPPORTED: return APP_EXIT_FORMAT;
    case SP_ERR_OFFLINE: return APP_EXIT_OFFLINE;
    case SP_ERR_NOSPACE: return APP_EXIT_NOSPACE;
    case SP_ERR_CANCELLED: return APP_EXIT_INTERRUPTED;
    default: return APP_EXIT_FAIL;
    }
}

int app_fail(const char *cmd, const struct sp_err *err)
{
    fprintf(stderr, "spoke: %s: error: %s\n", cmd, err && err->msg[0] ? err->msg : "failed");
    return app_exit_code(err ? err->code : SP_ERR_INTERNAL);
}
