/* test_gguf_guard.c - a mapped GGUF that changes underneath: truncation (the
 * reads past the new end no longer kill the process with SIGBUS: they read
 * zeros and the file reports the change), replacement by rename, rewrite in
 * place; a SIGBUS outside any registered mapping still kills (default action),
 * in a child process. */
#include "gguf/gguf.h"
#include "test.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>

#define N_ELEM (256 * 1024) /* 1 MiB of F32: many pages */

static char dir[] = "/tmp/spoke-guard-XXXXXX";

static void write_model(const char *path, float fill)
{
    static float data[N_ELEM];
    for (size_t i = 0; i < N_ELEM; i++)
        data[i] = fill;
    struct gg_writer *w = gg_writer_new();
    struct sp_err e;
    int64_t ne[1] = {N_ELEM};
    CHECK(w != NULL);
    CHECK(gg_writer_add_kv_str(w, "general.name", "guard") == SP_OK);
    CHECK(gg_writer_add_tensor(w, "t", GG_TYPE_F32, 1, ne, data) == SP_OK);
    CHECK_MSG(gg_writer_write(w, path, NULL, NULL, &e) == SP_OK, "%s", e.msg);
    gg_writer_free(w);
}

static double sum_tensor(const struct gg_file *f)
{
    const struct gg_tensor *t = gg_tensor_find(f, "t");
    const volatile float *p = t->data;
    double s = 0;
    for (size_t i = 0; i < N_ELEM; i++)
        s += p[i];
    return s;
}

TEST(truncate_survives)
{
    char path[128], why[512];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    write_model(path, 1.0f);
    struct gg_file *f = NULL;
    struct sp_err e;
    CHECK_MSG(gg_open(path, &f, &e) == SP_OK, "%s", e.msg);
    CHECK(sum_tensor(f) == (double)N_ELEM);
    CHECK(!gg_file_faulted(f));
    CHECK(!gg_file_changed(f, why, sizeof why));
    /* truncate to half: the second half of the data is gone from the mapping */
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK(truncate(path, st.st_size / 2) == 0);
    double s = sum_tensor(f); /* used to die of SIGBUS here */
    CHECK_MSG(s < (double)N_ELEM && s > 0, "sum after truncation %f", s);
    CHECK(gg_file_faulted(f));
    CHECK(gg_file_changed(f, why, sizeof why));
    CHECK_MSG(strstr(why, "truncated or overwritten") && strstr(why, path), "%s", why);
    gg_close(f);
    /* a fresh open of the bad file is a clean format error */
    CHECK(gg_open(path, &f, &e) == SP_ERR_FORMAT);
    /* the registry slot was released: a new open of a good file is not faulted */
    write_model(path, 2.0f);
    CHECK(gg_open(path, &f, &e) == SP_OK);
    CHECK(sum_tensor(f) == 2.0 * N_ELEM && !gg_file_faulted(f));
    gg_close(f);
}

TEST(replace_and_rewrite)
{
    char path[128], other[128], why[512];
    snprintf(path, sizeof path, "%s/r.gguf", dir);
    snprintf(other, sizeof other, "%s/r2.gguf", dir);
    write_model(path, 1.0f);
    struct gg_file *f = NULL;
    struct sp_err e;
    CHECK(gg_open(path, &f, &e) == SP_OK);
    write_model(other, 3.0f);
    CHECK(rename(other, path) == 0);
    CHECK(gg_file_changed(f, why, sizeof why) && strstr(why, "replaced"));
    CHECK(sum_tensor(f) == (double)N_ELEM); /* the old inode still serves */
    CHECK(!gg_file_faulted(f));
    gg_close(f);
    CHECK(gg_open(path, &f, &e) == SP_OK);
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0);
    struct timespec ts[2] = {{0, UTIME_OMIT}, {12345, 0}};
    CHECK(futimens(fd, ts) == 0);
    close(fd);
    CHECK(gg_file_changed(f, why, sizeof why) && strstr(why, "modified"));
    gg_close(f);
    CHECK(gg_open(path, &f, &e) == SP_OK);
    CHECK(unlink(path) == 0);
    CHECK(gg_file_changed(f, why, sizeof why) && strstr(why, "gone"));
    gg_close(f);
    /* a memory buffer never changes */
    CHECK(!gg_file_changed(NULL, why, sizeof why));
}

TEST(foreign_sigbus_still_kills)
{
    char path[128];
    snprintf(path, sizeof path, "%s/foreign.bin", dir);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_RDWR | O_CREAT, 0644);
        if (fd < 0 || ftruncate(fd, 1 << 16) != 0)
            _exit(3);
        volatile char *p = mmap(NULL, 1 << 16, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED || ftruncate(fd, 0) != 0)
            _exit(4);
        char c = p[1 << 15]; /* not a registered mapping: SIGBUS, default action */
        _exit(c == 0 ? 5 : 6);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (getenv("SPOKE_ASAN")) /* ASan's own SIGBUS handler was there before ours: it reports */
        CHECK_MSG(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) < 3),
                  "child status %d", status);
    else
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "child status %d", status);
}

int main(void)
{
    struct sp_err e;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (gg_guard_install(&e) != SP_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    if (!gg_guard_installed())
        return 1;
    RUN(truncate_survives);
    RUN(replace_and_rewrite);
    RUN(foreign_sigbus_still_kills);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return test_summary();
}
