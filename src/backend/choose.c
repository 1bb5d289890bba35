/* choose.c - device detection and the CUDA -> Metal -> CPU backend choice.
 *
 * CUDA is probed without linking against it: dlopen("libcuda.so.1"), then
 * cuInit(0) and cuDeviceGetCount through dlsym. This build has no CUDA or
 * Metal backend yet, so a device found there is reported ("CUDA device found
 * but this build has no CUDA backend") and the CPU backend is used. Every
 * decision is logged once per call with the reason the others were skipped. */
#include "backend/backend.h"
#include "kernels/kernels.h"
#include "obs/log.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int backend_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > 256)
        n = 256;
    return (int)n;
}

typedef int (*cu_init_fn)(unsigned flags);
typedef int (*cu_count_fn)(int *count);

static void probe_cuda(char *note, size_t notesz)
{
    const char *lib = getenv("SPOKE_CUDA_LIB");
    if (!lib || !*lib)
        lib = "libcuda.so.1";
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(note, notesz, "CUDA: no driver found (%s not loadable)", lib);
        return;
    }
    cu_init_fn cu_init = (cu_init_fn)dlsym(h, "cuInit");
    cu_count_fn cu_count = (cu_count_fn)dlsym(h, "cuDeviceGetCount");
    if (!cu_init || !cu_count) {
        snprintf(note, notesz, "CUDA: %s lacks cuInit/cuDeviceGetCount", lib);
    } else {
        int rc = cu_init(0), count = 0;
        if (rc != 0)
            snprintf(note, notesz, "CUDA: driver found but cuInit failed (error %d)", rc);
        else if (cu_count(&count) != 0 || count <= 0)
            snprintf(note, notesz, "CUDA: driver found but no CUDA device");
        else
            snprintf(note, notesz, "CUDA device found (%d) but this build has no CUDA backend", count);
    }
    dlclose(h);
}

void backend_choose(struct backend_choice *out)
{
    memset(out, 0, sizeof(*out));
    probe_cuda(out->cuda_note, sizeof(out->cuda_note));
#if defined(__APPLE__)
    snprintf(out->metal_note, sizeof(out->metal_note), "Metal: this build has no Metal backend");
#else
    snprintf(out->metal_note, sizeof(out->metal_note), "Metal: not available (not macOS)");
#endif
    out->kind = BACKEND_CPU;
    out->name = "cpu";
    LOG_INFO("backend", "using the cpu backend (%d CPUs, kernels %s); skipped: %s; %s", backend_cpu_count(),
             kern_isa_name(kern_isa_best()), out->cuda_note, out->metal_note);
}
