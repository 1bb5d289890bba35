/* fuzz_gate.c - libFuzzer harness for the request gate's parsers
 * (server_gate.c): the path unescaper, the Host and Origin checks and the
 * Content-Type media-type match. Any bytes must be handled without a crash;
 * the unescaped path never holds a control byte unless it is exactly the
 * "\x7f" refusal marker, and it never grows; a Host allowed with no
 * configured names stays allowed with some (the allowlist only adds). */
#include "server/server_int.h"

#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[4096];
    size_t n = size < sizeof buf - 1 ? size : sizeof buf - 1;
    memcpy(buf, data, n);
    buf[n] = 0;
    size_t in_len = strlen(buf);
    char path[4096];
    memcpy(path, buf, in_len + 1);
    size_t out_len = srv_unescape(NULL, NULL, path);
    if (out_len != strlen(path) || out_len > in_len)
        __builtin_trap();
    if (strcmp(path, "\x7f") != 0)
        for (size_t i = 0; i < out_len; i++)
            if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
                __builtin_trap();
    char *hosts[] = {"spoke.test", "example.com:8443"};
    char *origins[] = {"http://app.test", "https://x.example/"};
    struct server_auth none = {0}, some = {0};
    some.allowed_hosts = hosts;
    some.n_allowed_hosts = 2;
    some.cors_origins = origins;
    some.n_cors_origins = 2;
    if (srv_host_allowed(&none, buf) && !srv_host_allowed(&some, buf))
        __builtin_trap();
    if (srv_origin_allowed(&none, buf, "127.0.0.1:8090") && !srv_origin_allowed(&some, buf, "127.0.0.1:8090"))
        __builtin_trap();
    if (srv_media_is(buf, "application/json")) {
        const char *p = buf;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, "application/json", 16) != 0)
            __builtin_trap();
    }
    return 0;
}
