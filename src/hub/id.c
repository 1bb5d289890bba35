/* id.c - model id, revision, name and path validation for the Hub client.
 * Everything here is a pure function over a (pointer, length) pair: no
 * allocation, no I/O. The rules are strict allow-lists (ASCII only), so
 * unicode look-alikes, encoded dots and separators never pass. */
#include "hub/hub.h"

#include <stdio.h>
#include <string.h>

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_hex_lower(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

void hub_escape(const char *s, size_t len, char *out, size_t outsz)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (!outsz)
        return;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
        size_t need = plain ? 1 : 4;
        if (o + need + 4 >= outsz) {
            if (o + 3 < outsz) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static bool has_dotdot(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (s[i] == '.' && s[i + 1] == '.')
            return true;
    return false;
}

enum sp_status hub_revision_check(const char *rev, size_t len, struct sp_err *err)
{
    char shown[160];
    bool ok = rev != NULL && len >= 1 && len <= HUB_REV_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)rev[i];
        if (!(is_alnum(c) || c == '_' || c == '.' || c == '-'))
            ok = false;
    }
    if (ok && (has_dotdot(rev, len) || (len == 1 && rev[0] == '.')))
        ok = false;
    if (ok)
        return SP_OK;
    hub_escape(rev ? rev : "", rev ? SP_MIN(len, (size_t)HUB_REV_MAX + 8) : 0, shown, sizeof(shown));
    return sp_err_setc(err, SP_ERR_INVALID, "revision",
                       "invalid revision \"%s\": use alphanumerics, underscores and dashes; "
                       "commit SHAs are safe",
                       shown);
}

enum sp_status hub_name_check(const char *name, size_t len, const char *what, struct sp_err *err)
{
    char shown[160];
    const char *why = NULL;
    if (!name || len == 0)
        why = "is empty";
    else if (len > HUB_NAME_MAX)
        why = "is longer than 96 characters";
    for (size_t i = 0; !why && i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(is_alnum(c) || c == '_' || c == '.' || c == '-'))
            why = "may only contain letters, digits, '_', '.' and '-'";
    }
    if (!why && (name[0] == '.' || name[0] == '-'))
        why = "may not start with '.' or '-'";
    if (!why && name[len - 1] == '.')
        why = "may not end with '.'";
    if (!why && has_dotdot(name, len))
        why = "may not contain \"..\"";
    for (size_t i = 0; !why && i + 1 < len; i++)
        if (name[i] == '-' && name[i + 1] == '-')
            why = "may not contain \"--\"";
    if (!why)
        return SP_OK;
    hub_escape(name ? name : "", name ? SP_MIN(len, (size_t)HUB_NAME_MAX + 8) : 0, shown,
               sizeof(shown));
    return sp_err_setc(err, SP_ERR_INVALID, what, "invalid %s \"%s\": it %s", what, shown, why);
}

enum sp_status hub_path_check(const char *path, size_t len, struct sp_err *err)
{
    char shown[160];
    const char *why = NULL;
    size_t comp_start = 0, n_comp = 0;
    if (!path || len == 0)
        why = "is empty";
    else if (len > HUB_PATH_MAX)
        why = "is longer than 1024 bytes";
    else if (path[0] == '/')
        why = "is absolute; use a path relative to the repository";
    for (size_t i = 0; !why && i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)path[i] : '/';
        if (c == '/') {
            size_t clen = i - comp_start;
            const char *comp = path + comp_start;
            if (clen == 0)
                why = "has an empty component (\"//\" or a trailing '/')";
            else if ((clen == 1 && comp[0] == '.') || (clen == 2 && comp[0] == '.' && comp[1] == '.'))
                why = "has a \".\" or \"..\" component";
            else if (clen > 255)
                why = "has a component longer than 255 bytes";
            else if (++n_comp > 32)
                why = "is nested more than 32 directories deep";
            comp_start = i + 1;
            continue;
        }
        if (c == 0)
            why = "contains a NUL byte";
        else if (c < 0x20 || c == 0x7f)
            why = "contains a control character";
        else if (c >= 0x80)
            why = "contains non-ASCII bytes";
        else if (c == '\\')
            why = "contains a backslash";
        else if (strchr(":*?\"<>|%", (int)c))
            why = "contains one of : * ? \" < > | %";
    }
    if (!why)
        return SP_OK;
    hub_escape(path ? path : "", path ? SP_MIN(len, (size_t)120) : 0, shown, sizeof(shown));
    return sp_err_setc(err, SP_ERR_INVALID, "path",
                       "invalid file path \"%s\": it %s (paths are relative, without \"..\", "
                       "backslashes or special characters)",
                       shown, why);
}

bool hub_revision_is_commit(const char *rev)
{
    size_t n = strlen(rev);
    if (n != 40 && n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_hex_lower((unsigned char)rev[i]))
            return false;
    return true;
}

static bool eat_prefix(const char **p, size_t *len, const char *prefix)
{
    size_t n = strlen(prefix);
    if (*len >= n && memcmp(*p, prefix, n) == 0) {
        *p += n;
        *len -= n;
        return true;
    }
    return false;
}

enum sp_status hub_id_parse(const char *spec, size_t len, struct hub_id *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    char shown[160];
    const char *p = spec;
    size_t n = len;
    memset(out, 0, sizeof(*out));
    if (!spec || len == 0)
        return sp_err_set(err, SP_ERR_INVALID, "empty model id: use org/name[@revision]");
    hub_escape(spec, SP_MIN(len, (size_t)120), shown, sizeof(shown));
    if (len > HUB_SPEC_MAX)
        return sp_err_set(err, SP_ERR_INVALID, "model id \"%s\" is longer than %d bytes", shown,
                          HUB_SPEC_MAX);
    if (memchr(spec, '\0', len))
        return sp_err_set(err, SP_ERR_INVALID, "model id \"%s\" contains a NUL byte", shown);
    if (!eat_prefix(&p, &n, "huggingface:"))
        (void)eat_prefix(&p, &n, "hf:");
    if (!eat_prefix(&p, &n, "https://huggingface.co/"))
        (void)eat_prefix(&p, &n, "huggingface.co/");
    /* org/name[@|:rev] */
    const char *slash = memchr(p, '/', n);
    if (!slash)
        return sp_err_set(err, SP_ERR_INVALID,
                          "invalid model id \"%s\": use org/name[@revision] (for example "
                          "TheBloke/Llama-2-7B-GGUF@main)",
                          shown);
    size_t org_len = (size_t)(slash - p);
    const char *rest = slash + 1;
    size_t rest_len = n - org_len - 1;
    size_t name_len = rest_len;
    const char *rev = NULL;
    size_t rev_len = 0;
    for (size_t i = 0; i < rest_len; i++) {
        if (rest[i] == '@' || rest[i] == ':') {
            name_len = i;
            rev = rest + i + 1;
            rev_len = rest_len - i - 1;
            break;
        }
    }
    result = hub_name_check(p, org_len, "org", err);
    if (result != SP_OK)
        return result;
    result = hub_name_check(rest, name_len, "model name", err);
    if (result != SP_OK)
        return result;
    memcpy(out->org, p, org_len);
    memcpy(out->name, rest, name_len);
    snprintf(out->repo, sizeof(out->repo), "%s/%s", out->org, out->name);
    if (rev) {
        result = hub_revision_check(rev, rev_len, err);
        if (result != SP_OK) {
            memset(out, 0, sizeof(*out));
            return result;
        }
        out->revision_given = true;
        if (rev_len == 6 && memcmp(rev, "latest", 6) == 0)
            sp_strlcpy(out->revision, "main", sizeof(out->revision));
        else
            memcpy(out->revision, rev, rev_len);
    } else {
        sp_strlcpy(out->revision, "main", sizeof(out->revision));
    }
    return SP_OK;
}
