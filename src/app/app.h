/* app.h - the CLI commands of spoke. Each command lives in its own file
 * src/app/cmd_<name>.c, takes argv after the command name (argv[0] is the
 * command name), prints to stdout/stderr and returns the process exit code.
 * Exit codes (documented in `spoke --help`):
 *   0 ok, 1 generic failure, 2 usage error, 3 not found (model/file/repo),
 *   4 authentication/authorization (401/403), 5 network/HTTP failure after retries,
 *   6 integrity failure (size/sha256), 7 insufficient memory, 8 bad file format,
 *   9 offline and not cached, 10 not enough disk space, 130 interrupted. */
#ifndef SPOKE_APP_H
#define SPOKE_APP_H

#include "base/base.h"

enum app_exit {
    APP_EXIT_OK = 0,
    APP_EXIT_FAIL = 1,
    APP_EXIT_USAGE = 2,
    APP_EXIT_NOT_FOUND = 3,
    APP_EXIT_AUTH = 4,
    APP_EXIT_NETWORK = 5,
    APP_EXIT_INTEGRITY = 6,
    APP_EXIT_MEMORY = 7,
    APP_EXIT_FORMAT = 8,
    APP_EXIT_OFFLINE = 9,
    APP_EXIT_NOSPACE = 10,
    APP_EXIT_INTERRUPTED = 130,
};

/* Map a status to the exit code above. */
int app_exit_code(enum sp_status status);
/* Print "spoke: <cmd>: error: <msg>" (one line) to stderr and return the exit code. */
int app_fail(const char *cmd, const struct sp_err *err);

int cmd_pull(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_sql(int argc, char **argv);

#endif
