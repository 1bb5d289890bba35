/* cmd_rm.c - `spoke rm`. Placeholder until its issue lands: reports that the
 * command is not built yet (exit 1). Replaced by the real command. */
#include "app/app.h"

#include <stdio.h>

int cmd_rm(int argc, char **argv)
{
    SP_UNUSED(argc);
    SP_UNUSED(argv);
    fprintf(stderr, "spoke: rm: not available in this build yet\n");
    return APP_EXIT_FAIL;
}
