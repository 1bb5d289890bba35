/* fuzz_modelid.c - libFuzzer harness for the model-id / revision / name /
 * path validators (hub_id_parse, hub_revision_check, hub_name_check,
 * hub_path_check) and the split-GGUF name parser. Checks invariants: an
 * accepted id has a valid org, name and revision; an accepted path never
 * contains "..", a backslash, a NUL or a leading '/'. */
#include "app/pull.h"
#include "hub/hub.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct hub_id id;
    struct sp_err err;
    if (hub_id_parse(s, size, &id, &err) == SP_OK) {
        assert(hub_name_check(id.org, strlen(id.org), "org", NULL) == SP_OK);
        assert(hub_name_check(id.name, strlen(id.name), "name", NULL) == SP_OK);
        assert(hub_revision_check(id.revision, strlen(id.revision), NULL) == SP_OK);
        assert(!strstr(id.revision, "..") && !strchr(id.revision, '/'));
    } else {
        assert(err.msg[0]);
    }
    (void)hub_revision_check(s, size, &err);
    (void)hub_name_check(s, size, "name", &err);
    if (hub_path_check(s, size, &err) == SP_OK) {
        assert(size > 0 && s[0] != '/');
        assert(!memchr(s, '\0', size) && !memchr(s, '\\', size));
        for (size_t i = 0; i + 1 < size; i++)
            assert(!(s[i] == '.' && s[i + 1] == '.' && (i == 0 || s[i - 1] == '/') &&
                     (i + 2 == size || s[i + 2] == '/')));
    }
    char esc[64];
    hub_escape(s, size, esc, sizeof(esc));
    assert(strlen(esc) < sizeof(esc));
    if (size < 2048 && !memchr(s, '\0', size)) {
        char buf[2048];
        memcpy(buf, s, size);
        buf[size] = '\0';
        unsigned k, c;
        if (app_split_parse(buf, &k, &c))
            assert(k >= 1 && k <= c);
        const char *paths[1] = {buf};
        (void)app_choose_gguf(paths, 1, NULL);
    }
    return 0;
}
