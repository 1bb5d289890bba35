/* gguf_guard.c - surviving a model file that changes while it is mapped.
 *
 * Weights are views into a read-only MAP_PRIVATE mapping of the .gguf. When
 * someone truncates (or truncates and rewrites) that file, every read of a page
 * past the new end raises SIGBUS, whose default action kills the process. This
 * file keeps a small lock-free registry of the mappings gg_open made (base,
 * length, a fault counter per slot) and a process-wide SIGBUS handler
 * (gg_guard_install, called once by the program that wants it): a fault inside
 * a registered mapping is absorbed by mapping anonymous zero pages over the
 * rest of that mapping (mmap MAP_FIXED, so the faulting load retries and reads
 * zeros) and counting it, so the owner can notice (gg_file_changed) and fail
 * the work that used the bad bytes. Any other SIGBUS goes to the handler that
 * was there before, or gets the default action (re-raised).
 *
 * gg_file_changed also catches changes that raise no fault (a rename over the
 * path, a rewrite in place, a growth) from the file's identity taken at open:
 * device, inode, size and mtime. The registry is global by nature (a signal
 * handler has no context); it holds only addresses, never owns memory. */
#include "gguf/gguf.h"
#include "gguf/gguf_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GUARD_SLOTS 256

struct guard_slot {
    _Atomic uintptr_t base; /* 0 = free */
    _Atomic size_t len;     /* bytes mapped */
    _Atomic unsigned faults;
};

static struct guard_slot slots[GUARD_SLOTS];
static struct sigaction prev_action;
static _Atomic int installed; /* 0 no, 1 installing, 2 yes */

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    if (si->si_code > 0) { /* a real fault, not kill(SIGBUS) */
        for (size_t i = 0; i < GUARD_SLOTS; i++) {
            uintptr_t base = atomic_load(&slots[i].base);
            size_t len = atomic_load(&slots[i].len);
            if (!base || a < base || a - base >= len)
                continue;
            uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
            uintptr_t from = a & ~(page - 1);
            size_t n = (size_t)(base + len - from);
            /* mmap is a plain system call on Linux: safe here in practice */
            void *r = mmap((void *)from, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (r != MAP_FAILED) {
                atomic_fetch_add(&slots[i].faults, 1);
                return; /* the load retries and reads zeros */
            }
            break;
        }
    }
    /* not ours: the previous handler, or the default action */
    if ((prev_action.sa_flags & SA_SIGINFO) && prev_action.sa_sigaction) {
        prev_action.sa_sigaction(sig, si, uc);
        return;
    }
    if (prev_action.sa_handler != SIG_DFL && prev_action.sa_handler != SIG_IGN &&
        prev_action.sa_handler != NULL) {
        prev_action.sa_handler(sig);
        return;
    }
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS); /* delivered when this handler returns (a fault also repeats) */
}

enum sp_status gg_guard_install(struct sp_err *err)
{
    int expect = 0;
    if (!atomic_compare_exchange_strong(&installed, &expect, 1))
        return SP_OK;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &prev_action) != 0) {
        atomic_store(&installed, 0);
        return sp_err_set(err, SP_ERR_INTERNAL, "cannot install the SIGBUS handler: %s", strerror(errno));
    }
    atomic_store(&installed, 2);
    return SP_OK;
}

bool gg_guard_installed(void) { return atomic_load(&installed) == 2; }

int gg_guard_register(const void *base, size_t len)
{
    for (int i = 0; i < GUARD_SLOTS; i++) {
        uintptr_t expect = 0;
        if (atomic_load(&slots[i].base) != 0)
            continue;
        /* claim with a placeholder, publish the length, then the base */
        if (!atomic_compare_exchange_strong(&slots[i].base, &expect, (uintptr_t)1))
            continue;
        atomic_store(&slots[i].faults, 0);
        atomic_store(&slots[i].len, len);
        atomic_store(&slots[i].base, (uintptr_t)base);
        return i;
    }
    return -1; /* full: the mapping is simply not guarded */
}

void gg_guard_unregister(int slot)
{
    if (slot < 0 || slot >= GUARD_SLOTS)
        return;
    atomic_store(&slots[slot].len, 0);
    atomic_store(&slots[slot].base, 0);
}

unsigned gg_guard_faults(int slot)
{
    if (slot < 0 || slot >= GUARD_SLOTS)
        return 0;
    return atomic_load(&slots[slot].faults);
}

void gg_ident_from_stat(struct gg_ident *id, const void *stp)
{
    const struct stat *st = stp;
    id->dev = (uint64_t)st->st_dev;
    id->ino = (uint64_t)st->st_ino;
    id->size = (uint64_t)st->st_size;
    id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

bool gg_file_faulted(const struct gg_file *f)
{
    return f && gg_guard_faults(gg_file_ident(f)->guard) > 0;
}

bool gg_file_changed(const struct gg_file *f, char *why, size_t whysz)
{
    const struct gg_ident *id = f ? gg_file_ident(f) : NULL;
    struct stat st;
    struct gg_ident now = {0};
    if (!id || !id->path)
        return false; /* a memory buffer cannot change underneath */
    if (gg_guard_faults(id->guard) > 0) {
        snprintf(why, whysz,
                 "%s was truncated or overwritten while it was mapped (reads past its new end "
                 "were answered with zeros)",
                 id->path);
        return true;
    }
    if (stat(id->path, &st) != 0) {
        snprintf(why, whysz, "%s is gone (%s)", id->path, strerror(errno));
        return true;
    }
    gg_ident_from_stat(&now, &st);
    if (now.dev != id->dev || now.ino != id->ino)
        snprintf(why, whysz, "%s was replaced by another file", id->path);
    else if (now.size != id->size)
        snprintf(why, whysz, "%s changed size from %llu to %llu bytes", id->path,
                 (unsigned long long)id->size, (unsigned long long)now.size);
    else if (now.mtime_ns != id->mtime_ns)
        snprintf(why, whysz, "%s was modified in place", id->path);
    else
        return false;
    return true;
}

bool gg_split_faulted(const struct gg_split *s)
{
    for (size_t i = 0; i < gg_split_count(s); i++)
        if (gg_file_faulted(gg_split_file(s, i)))
            return true;
    return false;
}

bool gg_split_changed(const struct gg_split *s, char *why, size_t whysz)
{
    for (size_t i = 0; i < gg_split_count(s); i++)
        if (gg_file_changed(gg_split_file(s, i), why, whysz))
            return true;
    return false;
}
