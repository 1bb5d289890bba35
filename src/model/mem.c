/* mem.c - available-memory probe and the footprint check done before a
 * model is loaded: min(MemAvailable from /proc/meminfo, cgroup v2
 * memory.max - memory.current, cgroup v1 limit - usage). A model whose
 * footprint (+10 % headroom) does not fit is refused with SP_ERR_MEMORY and a
 * message naming the sizes, instead of being killed later by the OOM killer.
 * SPOKE_MEM_AVAILABLE=<bytes> overrides the probe (tests). */
#include "model/model.h"
#include "obs/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read a small text file into buf (NUL-terminated); false if unreadable. */
static bool read_small(const char *path, char *buf, size_t bufsz)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    size_t n = fread(buf, 1, bufsz - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return n > 0;
}

static bool read_u64_file(const char *path, uint64_t *out)
{
    char buf[64];
    if (!read_small(path, buf, sizeof(buf)))
        return false;
    size_t n = strcspn(buf, "\n ");
    buf[n] = 0;
    return sp_parse_u64(buf, UINT64_MAX, out);
}

static uint64_t meminfo_available(void)
{
    char buf[4096];
    if (!read_small("/proc/meminfo", buf, sizeof(buf)))
        return UINT64_MAX;
    const char *p = strstr(buf, "MemAvailable:");
    if (!p)
        return UINT64_MAX;
    p += strlen("MemAvailable:");
    while (*p == ' ')
        p++;
    char num[32];
    size_t n = 0;
    while (p[n] >= '0' && p[n] <= '9' && n < sizeof(num) - 1) {
        num[n] = p[n];
        n++;
    }
    num[n] = 0;
    uint64_t kb;
    if (!sp_parse_u64(num, UINT64_MAX / 1024, &kb))
        return UINT64_MAX;
    return kb * 1024;
}

static uint64_t cgroup_available(void)
{
    uint64_t limit, cur;
    /* cgroup v2 (the namespace root is the container's cgroup) */
    char buf[64];
    if (read_small("/sys/fs/cgroup/memory.max", buf, sizeof(buf))) {
        if (strncmp(buf, "max", 3) == 0)
            return UINT64_MAX;
        if (read_u64_file("/sys/fs/cgroup/memory.max", &limit)) {
            if (!read_u64_file("/sys/fs/cgroup/memory.current", &cur))
                cur = 0;
            return limit > cur ? limit - cur : 0;
        }
        return UINT64_MAX;
    }
    /* cgroup v1 */
    if (read_u64_file("/sys/fs/cgroup/memory/memory.limit_in_bytes", &limit)) {
        if (limit >= (1ull << 60))
            return UINT64_MAX;
        if (!read_u64_file("/sys/fs/cgroup/memory/memory.usage_in_bytes", &cur))
            cur = 0;
        return limit > cur ? limit - cur : 0;
    }
    return UINT64_MAX;
}

size_t model_mem_available(void)
{
    const char *ov = getenv("SPOKE_MEM_AVAILABLE");
    uint64_t v;
    if (ov && *ov && sp_parse_u64(ov, UINT64_MAX, &v))
        return v > SIZE_MAX ? SIZE_MAX : (size_t)v;
    uint64_t a = meminfo_available(), c = cgroup_available();
    uint64_t r = a < c ? a : c;
    return r > SIZE_MAX ? SIZE_MAX : (size_t)r;
}

static double mib(size_t b) { return (double)b / (1024.0 * 1024.0); }

enum sp_status model_mem_check(size_t weights, size_t kv_and_scratch, const char *what, struct sp_err *err)
{
    size_t need, headroom;
    if (!sp_add_size(weights, kv_and_scratch, &need))
        need = SIZE_MAX;
    headroom = need / 10;
    size_t need_h;
    if (!sp_add_size(need, headroom, &need_h))
        need_h = SIZE_MAX;
    size_t avail = model_mem_available();
    if (avail == SIZE_MAX) {
        LOG_DEBUG("model", "available memory unknown; skipping the footprint check");
        return SP_OK;
    }
    if (need_h > avail)
        return sp_err_setc(err, SP_ERR_MEMORY, what ? what : "",
                           "model needs %.0f MiB (weights %.0f MiB + KV cache and scratch %.0f MiB + 10%% headroom) "
                           "but only %.0f MiB of memory is available; use a smaller quantization (e.g. Q4_K_M "
                           "or Q4_0) or a smaller context",
                           mib(need_h), mib(weights), mib(kv_and_scratch), mib(avail));
    LOG_DEBUG("model", "footprint %.0f MiB of %.0f MiB available", mib(need_h), mib(avail));
    return SP_OK;
}
