/* cmd_rm.c - `spoke rm NAME[@REV]...`: removes a cached revision (or every
 * revision of NAME) through cache_remove, which validates the names and
 * never touches anything outside the cache. */
#include "app/app.h"
#include "cache/cache.h"

#include <stdio.h>
#include <string.h>

int cmd_rm(int argc, char **argv)
{
    char *root = NULL;
    struct sp_err err = {0};
    int rc = APP_EXIT_OK, n = 0;
    if (argc < 2) {
        fprintf(stderr, "spoke: rm: no NAME given\nusage: spoke rm NAME[@REV]...\n");
        return APP_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(stdout, "usage: spoke rm NAME[@REV]...   (see spoke ls)\n");
        return APP_EXIT_OK;
    }
    if (cache_root(&root, &err) != SP_OK)
        return app_fail("rm", &err);
    for (int i = 1; i < argc && rc == APP_EXIT_OK; i++) {
        char name[HUB_NAME_MAX + 1];
        const char *spec = argv[i];
        const char *at = strchr(spec, '@');
        size_t nl = at ? (size_t)(at - spec) : strlen(spec);
        if (nl > HUB_NAME_MAX || hub_name_check(spec, nl, "cache name", &err) != SP_OK) {
            if (err.code == SP_OK)
                sp_err_set(&err, SP_ERR_INVALID, "invalid cache name");
            rc = app_fail("rm", &err);
            break;
        }
        memcpy(name, spec, nl);
        name[nl] = '\0';
        if (cache_remove(root, name, at ? at + 1 : NULL, &err) != SP_OK) {
            rc = app_fail("rm", &err);
            break;
        }
        fprintf(stdout, "removed %s\n", spec);
        n++;
    }
    sp_free(root);
    return rc;
}
