/* main.c - the spoke binary: dispatches `spoke <command> ...` to the command
 * functions of src/app/cmd_*.c and prints the help with the exit codes. */
#include "app/app.h"
#include "obs/log.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
};

static const struct command commands[] = {
    {"pull", cmd_pull, "pull MODEL [--file PATH]... [--quant Q] [--name N] [--token T] [--json]"},
    {"ls", cmd_ls, "ls [--json]                     list cached models"},
    {"rm", cmd_rm, "rm NAME[@REV]                   remove a cached model"},
    {"run", cmd_run, "run MODEL|FILE.gguf [PROMPT] [-n N] [--temp T] [--seed S] [--chat] [--threads T]"},
    {"bench", cmd_bench, "bench MODEL [-p 512] [-n 128] [-r 3] [-t 2] [--json]"},
    {"quantize", cmd_quantize, "quantize IN.gguf OUT.gguf TYPE  (Q4_0 Q8_0 Q4_K_M Q5_K_M ...)"},
    {"serve", cmd_serve, "serve [-c spoke.yaml] [--host H] [--port P] [--model FILE]"},
    {"sql", cmd_sql, "sql \"SELECT ...\" [--json]        read-only SQL over the task history"},
};

static void usage(FILE *out)
{
    fprintf(out, "spoke - local LLM runtime\n\nusage:\n");
    for (size_t i = 0; i < SP_ARRAY_LEN(commands); i++)
        fprintf(out, "  spoke %s\n", commands[i].usage);
    fprintf(out,
            "\nenvironment: SPOKE_HOME (cache, default ~/.spoke), HF_TOKEN, HF_ENDPOINT,\n"
            "  HF_HUB_OFFLINE=1, SPOKE_LOG=debug|info|warn|error\n"
            "\nexit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 auth (401/403),\n"
            "  5 network/HTTP, 6 integrity (size/sha256), 7 insufficient memory,\n"
            "  8 bad file format, 9 offline and not cached, 10 not enough disk space,\n"
            "  130 interrupted\n");
}

int main(int argc, char **argv)
{
    log_init_from_env();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? APP_EXIT_USAGE : APP_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("spoke 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < SP_ARRAY_LEN(commands); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "spoke: unknown command '%s' (see spoke --help)\n", argv[1]);
    return APP_EXIT_USAGE;
}
