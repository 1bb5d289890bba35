/* config.h - spoke.yaml: the `models:` section of a Spice spicepod.yaml
 * (accepted unchanged) plus a `server:` section, parsed with libyaml into
 * server options.
 *
 *   models:
 *     - from: huggingface:huggingface.co/org/model@rev | hf:org/model | org/model:rev | file:/p.gguf
 *       name: my_model
 *       files: [{path: model-Q4_K_M.gguf}]
 *       params: {hf_token: ${secrets:HF_TOKEN}, token, max_concurrency: 1, initial_load: true,
 *                context_size, threads, queue_size, max_tokens, temperature, top_p, top_k,
 *                min_p, repeat_penalty, presence_penalty, frequency_penalty, seed}
 *   server:
 *     host: 127.0.0.1
 *     port: 8090
 *     api_keys: ["${secrets:SPOKE_API_KEY}"] # Authorization: Bearer <key>; none = no auth
 *     metrics_public: false                   # /metrics without a key
 *     allowed_hosts: [spoke.example.com]      # Host headers besides IP literals and localhost
 *     cors_origins: [http://localhost:3000]   # browser origins allowed cross-site
 *     limits: {max_body_bytes, max_tokens, default_max_tokens, max_connections,
 *              max_connections_per_client, timeout_s, request_timeout_s, write_timeout_s,
 *              max_parsing, max_buffered_bytes, shutdown_grace_ms, sql_max_rows, sql_time_ms,
 *              sql_max_bytes}
 *     task_history: {enabled, path, retention: 7d, capture: none|truncated|full, truncate_bytes,
 *                    sql_endpoint: false}
 *   runtime: {task_history: {enabled, captured_output, retention_period}}   # Spice spelling
 *
 * ${secrets:NAME} and ${env:NAME} are replaced from the environment (an unset
 * variable becomes "" with a warning). Unknown keys log a warning; wrong
 * types, bad values and missing required fields are SP_ERR_INVALID errors
 * whose message names the key and the line ("spoke.yaml:7: models[0].params.
 * max_concurrency: expected an integer 1..1024"). */
#ifndef SPOKE_APP_CONFIG_H
#define SPOKE_APP_CONFIG_H

#include "base/base.h"
#include "server/server.h"

struct app_config {
    struct server_opts server; /* defaults filled, then overridden by the file */
    bool server_port_set;      /* the file set server.port */
    bool server_host_set;
    bool history_path_set;
    int n_warnings;            /* unknown keys etc. (each logged) */
};

/* Defaults only (no file). */
void app_config_init(struct app_config *cfg);
/* Parse YAML text (len bytes; name is used in messages). cfg is initialised
 * by the call; on error it is left empty (app_config_free is still safe). */
enum sp_status app_config_parse(const char *text, size_t len, const char *name, struct app_config *cfg,
                                struct sp_err *err) SP_MUST_USE;
/* Read and parse a file (at most 1 MiB). SP_ERR_NOT_FOUND / SP_ERR_IO. */
enum sp_status app_config_load(const char *path, struct app_config *cfg, struct sp_err *err) SP_MUST_USE;
void app_config_free(struct app_config *cfg);

/* Parse a duration "90", "90s", "15m", "8h", "7d", "2w" into seconds. */
bool app_config_parse_duration(const char *s, int64_t *seconds);

#endif
