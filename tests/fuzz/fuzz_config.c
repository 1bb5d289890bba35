/* fuzz_config.c - libFuzzer harness for the spoke.yaml reader
 * (app_config_parse): any input must parse or fail cleanly, no crash/leak. */
#include "app/config.h"
#include "obs/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    log_set_level(LOG_LEVEL_OFF);
    struct app_config c;
    struct sp_err e;
    if (app_config_parse((const char *)data, size, "fuzz.yaml", &c, &e) == SP_OK) {
        for (size_t i = 0; i < c.server.n_models; i++)
            if (!c.server.models[i].name || !c.server.models[i].from)
                __builtin_trap();
    }
    app_config_free(&c);
    return 0;
}
