/* server_opts.c - defaults and cleanup for struct server_opts and
 * struct server_model_spec (no engine calls, so the config reader and its
 * fuzzer link without the inference engine). */
#include "server/server.h"

#include <arpa/inet.h>
#include <string.h>

void server_model_spec_default(struct server_model_spec *m)
{
    memset(m, 0, sizeof *m);
    m->max_concurrency = 1;
    m->queue_size = 16;
    m->initial_load = true;
    /* engine defaults are applied unless has_sampling; mirror them here */
    m->sampling.temperature = 0.8f;
    m->sampling.top_p = 0.95f;
    m->sampling.top_k = 40;
    m->sampling.min_p = 0.05f;
    m->sampling.repeat_penalty = 1.0f;
    m->sampling.repeat_last_n = 64;
}

void server_model_spec_clear(struct server_model_spec *m)
{
    if (!m)
        return;
    sp_free(m->name);
    sp_free(m->from);
    sp_free(m->chat_template);
    for (size_t i = 0; i < m->n_files; i++)
        sp_free(m->files[i]);
    sp_free(m->files);
    if (m->token) {
        memset(m->token, 0, strlen(m->token));
        sp_free(m->token);
    }
    memset(m, 0, sizeof *m);
}

void server_opts_default(struct server_opts *o)
{
    memset(o, 0, sizeof *o);
    o->port = 8090;
    o->limits.max_body_bytes = 1u << 20;
    o->limits.max_tokens = 4096;
    o->limits.default_max_tokens = 256;
    o->limits.max_connections = 512;
    o->limits.conn_timeout_s = 30;
    o->limits.shutdown_grace_ms = 5000;
    o->limits.sql_max_rows = 1000;
    o->limits.sql_time_ms = 2000;
    o->limits.max_messages = 1024;
    o->limits.max_stop = 4;
    o->limits.max_connections_per_client = 64;
    o->limits.request_timeout_s = 30;
    o->limits.write_timeout_s = 10;
    o->limits.max_parsing = 4;
    o->limits.max_buffered_bytes = 64u << 20;
    o->limits.sql_max_bytes = 8u << 20;
    o->history.enabled = true;
    o->history.retention_s = 7 * 24 * 3600;
    o->history.capture = TRACE_CAPTURE_TRUNCATED;
    o->history.truncate_bytes = 4096;
}

static void strlist_free(char ***list, size_t *n, bool secret)
{
    for (size_t i = 0; i < *n; i++) {
        if (secret && (*list)[i])
            memset((*list)[i], 0, strlen((*list)[i]));
        sp_free((*list)[i]);
    }
    sp_free(*list);
    *list = NULL;
    *n = 0;
}

enum sp_status server_strlist_add(char ***list, size_t *n, const char *s)
{
    char **grown = sp_realloc(*list, (*n + 1) * sizeof *grown);
    if (!grown)
        return SP_ERR_NOMEM;
    *list = grown;
    grown[*n] = sp_strdup(s);
    if (!grown[*n])
        return SP_ERR_NOMEM;
    (*n)++;
    return SP_OK;
}

bool server_host_is_loopback(const char *host)
{
    if (!host)
        return true; /* the default, 127.0.0.1 */
    if (!strcmp(host, "localhost"))
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

void server_opts_clear(struct server_opts *o)
{
    if (!o)
        return;
    strlist_free(&o->auth.api_keys, &o->auth.n_api_keys, true);
    strlist_free(&o->auth.allowed_hosts, &o->auth.n_allowed_hosts, false);
    strlist_free(&o->auth.cors_origins, &o->auth.n_cors_origins, false);
    sp_free(o->host);
    sp_free(o->history.path);
    for (size_t i = 0; i < o->n_models; i++)
        server_model_spec_clear(&o->models[i]);
    sp_free(o->models);
    o->host = NULL;
    o->history.path = NULL;
    o->models = NULL;
    o->n_models = 0;
}
