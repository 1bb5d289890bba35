/* fuzz_hubjson.c - libFuzzer harness for the Hub revision JSON reader
 * (hub_revision_parse) and the cache metadata reader (cache_meta_parse).
 * Invariants: on success every returned path passes hub_path_check and the
 * commit is a commit id; on failure nothing is returned. */
#include "cache/cache.h"
#include "hub/hub.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hub_revision *r = NULL;
    if (hub_revision_parse((const char *)data, size, &r, NULL) == SP_OK) {
        assert(r && hub_revision_is_commit(r->commit));
        for (size_t i = 0; i < r->n_files; i++)
            assert(hub_path_check(r->files[i].path, strlen(r->files[i].path), NULL) == SP_OK);
        hub_revision_free(r);
    } else {
        assert(r == NULL);
    }
    struct cache_meta *m = NULL;
    if (cache_meta_parse((const char *)data, size, &m, NULL) == SP_OK) {
        for (size_t i = 0; i < m->n_files; i++)
            assert(hub_path_check(m->files[i].path, strlen(m->files[i].path), NULL) == SP_OK);
        cache_meta_free(m);
    }
    char sha[65];
    if (size < 200 && !memchr(data, 0, size)) {
        char buf[200];
        memcpy(buf, data, size);
        buf[size] = '\0';
        (void)hub_etag_sha256(buf, sha);
        uint64_t ms;
        (void)hub_parse_retry_after(buf, 0, &ms);
    }
    return 0;
}
