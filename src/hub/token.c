/* token.c - Hugging Face token resolution in the design's order: explicit
 * param, $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, $HF_TOKEN_PATH, $HF_HOME/token,
 * ~/.cache/huggingface/token. Files are read bounded (first line, 4 KiB);
 * the token is checked to be printable ASCII so it can never inject a header.
 * The source is logged; the token never is. */
#include "hub/hub.h"
#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_MAX 4096

/* Trim surrounding whitespace of s[0..*len), returns the new start. */
static const char *trim(const char *s, size_t *len)
{
    size_t n = *len;
    while (n && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    *len = n;
    return s;
}

static enum sp_status token_take(const char *s, size_t len, const char *source, char **out,
                                 struct sp_err *err)
{
    s = trim(s, &len);
    if (len == 0)
        return SP_ERR_NOT_FOUND; /* empty: try the next source */
    if (len > TOKEN_MAX)
        return sp_err_set(err, SP_ERR_INVALID, "the token from %s is longer than %d bytes", source,
                          TOKEN_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f)
            return sp_err_set(err, SP_ERR_INVALID,
                              "the token from %s contains spaces or non-printable characters; "
                              "copy it again from https://huggingface.co/settings/tokens",
                              source);
    }
    *out = sp_strndup(s, len);
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

/* Read the first line of a token file. SP_ERR_NOT_FOUND if missing/empty. */
static enum sp_status token_file(const char *path, const char *source, char **out,
                                 struct sp_err *err)
{
    char buf[TOKEN_MAX + 2];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return SP_ERR_NOT_FOUND;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return SP_ERR_NOT_FOUND;
    }
    size_t n = 0;
    while (n < sizeof(buf)) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    const char *nl = memchr(buf, '\n', n);
    if (nl)
        n = (size_t)(nl - buf);
    return token_take(buf, n, source, out, err);
}

enum sp_status hub_token_resolve(const char *explicit_token, char **token_out, char *source,
                                 size_t sourcesz, struct sp_err *err)
{
    enum sp_status result = SP_ERR_NOT_FOUND;
    char path[4096];
    char desc[160];
    *token_out = NULL;
    if (explicit_token) {
        snprintf(desc, sizeof(desc), "the explicit token (hf_token/token param or --token)");
        result = token_take(explicit_token, strlen(explicit_token), desc, token_out, err);
    }
    static const char *const envs[] = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"};
    for (size_t i = 0; result == SP_ERR_NOT_FOUND && i < SP_ARRAY_LEN(envs); i++) {
        const char *v = getenv(envs[i]);
        if (v) {
            snprintf(desc, sizeof(desc), "$%s", envs[i]);
            result = token_take(v, strlen(v), desc, token_out, err);
        }
    }
    const char *tp = getenv("HF_TOKEN_PATH");
    if (result == SP_ERR_NOT_FOUND && tp && *tp) {
        snprintf(desc, sizeof(desc), "$HF_TOKEN_PATH (%.120s)", tp);
        result = token_file(tp, desc, token_out, err);
    }
    const char *hh = getenv("HF_HOME");
    if (result == SP_ERR_NOT_FOUND && hh && *hh) {
        snprintf(path, sizeof(path), "%s/token", hh);
        snprintf(desc, sizeof(desc), "$HF_HOME/token (%.120s)", path);
        result = token_file(path, desc, token_out, err);
    }
    const char *home = getenv("HOME");
    if (result == SP_ERR_NOT_FOUND && home && *home) {
        snprintf(path, sizeof(path), "%s/.cache/huggingface/token", home);
        snprintf(desc, sizeof(desc), "~/.cache/huggingface/token");
        result = token_file(path, desc, token_out, err);
    }
    if (result == SP_ERR_NOT_FOUND) {
        snprintf(source, sourcesz, "none");
        LOG_DEBUG("hub", "no Hugging Face token found (public models only)");
        return SP_OK;
    }
    if (result != SP_OK)
        return result;
    snprintf(source, sourcesz, "%s", desc);
    LOG_INFO("hub", "using the Hugging Face token from %s", desc);
    return SP_OK;
}
