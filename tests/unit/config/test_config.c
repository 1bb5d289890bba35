/* test_config.c - spoke.yaml reader: a full spicepod models: section,
 * defaults, secrets/env substitution, the server section, and errors that
 * name the key and line. */
#include "app/config.h"
#include "test.h"

static enum sp_status parse(const char *y, struct app_config *c, struct sp_err *e)
{
    sp_err_clear(e);
    return app_config_parse(y, strlen(y), "spoke.yaml", c, e);
}

TEST(spicepod_models)
{
    setenv("SPOKE_TEST_TOKEN", "hf_abc", 1);
    const char *y =
        "version: v1\n"
        "kind: Spicepod\n"
        "name: demo\n"
        "models:\n"
        "  - from: huggingface:huggingface.co/org/model@v1.0\n"
        "    name: my_model\n"
        "    files:\n"
        "      - path: model-Q4_K_M.gguf\n"
        "    params:\n"
        "      hf_token: ${secrets:SPOKE_TEST_TOKEN}\n"
        "      max_concurrency: 2\n"
        "      initial_load: false\n"
        "      context_size: 512\n"
        "      temperature: 0.2\n"
        "  - from: file:/tmp/x.gguf\n"
        "    name: local\n";
    struct app_config c;
    struct sp_err e;
    CHECK_MSG(parse(y, &c, &e) == SP_OK, "%s", e.msg);
    CHECK_EQ_INT(c.server.n_models, 2);
    struct server_model_spec *m = &c.server.models[0];
    CHECK_EQ_STR(m->name, "my_model");
    CHECK_EQ_STR(m->from, "huggingface:huggingface.co/org/model@v1.0");
    CHECK_EQ_INT(m->n_files, 1);
    CHECK_EQ_STR(m->files[0], "model-Q4_K_M.gguf");
    CHECK_EQ_STR(m->token, "hf_abc");
    CHECK_EQ_INT(m->max_concurrency, 2);
    CHECK(!m->initial_load);
    CHECK_EQ_INT(m->n_ctx, 512);
    CHECK(m->has_sampling);
    CHECK_NEAR(m->sampling.temperature, 0.2, 1e-6);
    m = &c.server.models[1];
    CHECK_EQ_INT(m->max_concurrency, 1);
    CHECK_EQ_INT(m->queue_size, 16);
    CHECK(m->initial_load);
    CHECK(m->token == NULL);
    CHECK_EQ_INT(c.server.port, 8090);
    CHECK_EQ_INT(c.n_warnings, 0);
    app_config_free(&c);
}

TEST(server_section)
{
    setenv("SPOKE_TEST_PORT", "9123", 1);
    const char *y =
        "server:\n"
        "  host: 0.0.0.0\n"
        "  port: ${env:SPOKE_TEST_PORT}\n"
        "  limits: {max_body_bytes: 4096, max_tokens: 100, timeout_s: 5, max_connections: 64}\n"
        "  task_history: {path: /tmp/th.db, retention: 8h, capture: full}\n"
        "  bogus: 1\n"
        "models: []\n";
    struct app_config c;
    struct sp_err e;
    CHECK_MSG(parse(y, &c, &e) == SP_OK, "%s", e.msg);
    CHECK_EQ_INT(c.server.port, 9123);
    app_config_free(&c);
    y = "server:\n"
        "  host: 0.0.0.0\n"
        "  port: 9123\n"
        "  limits: {max_body_bytes: 4096, max_tokens: 100, timeout_s: 5, max_connections: 64}\n"
        "  task_history: {path: /tmp/th.db, retention: 8h, capture: full}\n"
        "  bogus: 1\n"
        "runtime:\n"
        "  task_history: {captured_output: none, retention_period: 1d}\n";
    CHECK_MSG(parse(y, &c, &e) == SP_OK, "%s", e.msg);
    CHECK_EQ_STR(c.server.host, "0.0.0.0");
    CHECK_EQ_INT(c.server.port, 9123);
    CHECK_EQ_INT(c.server.limits.max_body_bytes, 4096);
    CHECK_EQ_INT(c.server.limits.max_tokens, 100);
    CHECK_EQ_INT(c.server.limits.conn_timeout_s, 5);
    CHECK_EQ_INT(c.server.limits.max_connections, 64);
    CHECK_EQ_STR(c.server.history.path, "/tmp/th.db");
    CHECK_EQ_INT(c.server.history.retention_s, 86400);
    CHECK_EQ_INT(c.server.history.capture, TRACE_CAPTURE_NONE);
    CHECK_EQ_INT(c.n_warnings, 1);
    app_config_free(&c);
}

/* issue 14 s1: keys, hosts, origins, metrics_public, the new limits, sql_endpoint */
TEST(server_auth)
{
    setenv("SPOKE_TEST_KEY", "sk-from-env", 1);
    unsetenv("SPOKE_TEST_NOKEY");
    const char *y =
        "server:\n"
        "  api_keys:\n"
        "    - ${env:SPOKE_TEST_KEY}\n"
        "    - literal-key\n"
        "  allowed_hosts: spoke.example.com\n"
        "  cors_origins: [http://localhost:3000]\n"
        "  metrics_public: true\n"
        "  limits: {max_connections_per_client: 8, request_timeout_s: 7, write_timeout_s: 3, max_parsing: 2,\n"
        "           max_buffered_bytes: 8388608, sql_max_bytes: 65536}\n"
        "  task_history: {sql_endpoint: true}\n";
    struct app_config c;
    struct sp_err e;
    CHECK_MSG(parse(y, &c, &e) == SP_OK, "%s", e.msg);
    CHECK_EQ_INT(c.server.auth.n_api_keys, 2);
    CHECK_EQ_STR(c.server.auth.api_keys[0], "sk-from-env");
    CHECK_EQ_STR(c.server.auth.api_keys[1], "literal-key");
    CHECK_EQ_INT(c.server.auth.n_allowed_hosts, 1);
    CHECK_EQ_STR(c.server.auth.allowed_hosts[0], "spoke.example.com");
    CHECK_EQ_STR(c.server.auth.cors_origins[0], "http://localhost:3000");
    CHECK(c.server.auth.metrics_public);
    CHECK(c.server.history.sql_endpoint);
    CHECK_EQ_INT(c.server.limits.max_connections_per_client, 8);
    CHECK_EQ_INT(c.server.limits.request_timeout_s, 7);
    CHECK_EQ_INT(c.server.limits.write_timeout_s, 3);
    CHECK_EQ_INT(c.server.limits.max_parsing, 2);
    CHECK_EQ_INT(c.server.limits.max_buffered_bytes, 8388608);
    CHECK_EQ_INT(c.server.limits.sql_max_bytes, 65536);
    app_config_free(&c);
    /* defaults: no keys, sql endpoint off */
    CHECK_MSG(parse("server: {port: 1}\n", &c, &e) == SP_OK, "%s", e.msg);
    CHECK(c.server.auth.n_api_keys == 0 && !c.server.history.sql_endpoint && !c.server.auth.metrics_public);
    app_config_free(&c);
    /* an unset variable must not become an empty key (that would accept "Bearer ") */
    CHECK(parse("server:\n  api_keys: \"${env:SPOKE_TEST_NOKEY}\"\n", &c, &e) == SP_ERR_INVALID);
    CHECK(strstr(e.msg, "spoke.yaml:2") && strstr(e.msg, "api_keys"));
    app_config_free(&c);
    CHECK(parse("server:\n  api_keys: {a: b}\n", &c, &e) == SP_ERR_INVALID);
    app_config_free(&c);
}

TEST(errors_name_key_and_line)
{
    static const struct { const char *yaml; const char *want; } cases[] = {
        {"models:\n  - name: a\n", "spoke.yaml:2: models[0]: missing required field 'from'"},
        {"models:\n  - from: hf:a/b\n", "missing required field 'name'"},
        {"models:\n  - from: hf:a/b\n    name: x\n    params:\n      max_concurrency: lots\n",
         "spoke.yaml:5: models[0].params.max_concurrency: expected an integer"},
        {"models:\n  - from: hf:a/b\n    name: x\n    params:\n      max_concurrency: 0\n", "max_concurrency"},
        {"models:\n  - from: hf:a/b\n    name: x\n    params:\n      initial_load: maybe\n", "expected true or false"},
        {"models:\n  - from: [1,2]\n    name: x\n", "models[0].from: expected a string"},
        {"models:\n  - from: hf:a/b\n    name: x\n    files: nope\n", "files"},
        {"models:\n  - from: hf:a/b\n    name: x\n    files:\n      - {name: q}\n", "missing required field 'path'"},
        {"models: 5\n", "models: expected a list"},
        {"models:\n  - from: hf:a/b\n    name: x\n  - from: hf:a/c\n    name: x\n", "duplicate model name"},
        {"models:\n  - from: hf:a/b\n    name: a/b\n", "name"},
        {"server:\n  port: 70000\n", "spoke.yaml:2: server.port: expected an integer 0..65535"},
        {"server:\n  task_history:\n    capture: some\n", "expected none, truncated or full"},
        {"server:\n  task_history:\n    retention: forever\n", "duration"},
        {"server: [1]\n", "server: expected a mapping"},
        {"- a\n- b\n", "expected a mapping"},
        {"models:\n  - from: hf:a/b\n    name: x\n    params:\n      token: ${vault:X}\n", "unknown substitution"},
        {"models:\n  - from: hf:a/b\n    name: x\n    params:\n      token: ${env:X\n", "unterminated"},
        {"a: [\n", "YAML error"},
        {"a: *nope\n", "YAML error"},
        /* a bad Hub id is a config error at startup, before any request */
        {"models:\n  - from: huggingface:huggingface.co/org/name@../../etc\n    name: x\n",
         "spoke.yaml:2: models[0]: from: invalid revision \"../../etc\": use alphanumerics, underscores and dashes"},
        {"models:\n  - from: hf:../name\n    name: x\n", "models[0]: from: invalid org"},
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
        struct app_config c;
        struct sp_err e;
        enum sp_status st = parse(cases[i].yaml, &c, &e);
        CHECK_MSG(st == SP_ERR_INVALID, "case %zu: status %d", i, st);
        CHECK_MSG(strstr(e.msg, cases[i].want), "case %zu: '%s' lacks '%s'", i, e.msg, cases[i].want);
        CHECK_EQ_INT(c.server.n_models, 0);
        app_config_free(&c);
    }
}

TEST(misc)
{
    struct app_config c;
    struct sp_err e;
    CHECK(parse("", &c, &e) == SP_OK);
    CHECK_EQ_INT(c.server.n_models, 0);
    app_config_free(&c);
    CHECK(parse("models:\n  - from: hf:a/b\n    name: x\n    weird: 1\n    params: {foo: bar}\n", &c, &e) == SP_OK);
    CHECK_EQ_INT(c.n_warnings, 2);
    app_config_free(&c);
    setenv("HOME", "/home/tester", 1);
    CHECK(parse("server:\n  task_history: {path: ~/h/th.db}\n", &c, &e) == SP_OK);
    CHECK_EQ_STR(c.server.history.path, "/home/tester/h/th.db");
    app_config_free(&c);
    int64_t s;
    CHECK(app_config_parse_duration("90", &s) && s == 90);
    CHECK(app_config_parse_duration("15m", &s) && s == 900);
    CHECK(app_config_parse_duration("7d", &s) && s == 604800);
    CHECK(!app_config_parse_duration("d", &s));
    CHECK(!app_config_parse_duration("-1h", &s));
    CHECK(!app_config_parse_duration("99999999999999999999d", &s));
    CHECK(app_config_load("/nonexistent/spoke.yaml", &c, &e) == SP_ERR_NOT_FOUND);
    app_config_free(&c);
}

/* Nesting is capped while events are read: 40,000 levels of "[" took 9.7 s
 * inside libyaml before the cap (and then loaded as an ignored key). */
static char *nested(size_t depth, const char *open, const char *close, const char *inner)
{
    size_t n = 3 + depth * (strlen(open) + strlen(close)) + strlen(inner) + 2;
    char *y = malloc(n), *p = y;
    memcpy(p, "x: ", 3);
    p += 3;
    for (size_t i = 0; i < depth; i++, p += strlen(open))
        memcpy(p, open, strlen(open));
    memcpy(p, inner, strlen(inner));
    p += strlen(inner);
    for (size_t i = 0; i < depth; i++, p += strlen(close))
        memcpy(p, close, strlen(close));
    memcpy(p, "\n", 2);
    return y;
}

TEST(depth_cap)
{
    struct app_config c;
    struct sp_err e;
    char *y = nested(40000, "[", "]", "1");
    double t0 = sp_now_ms();
    CHECK(parse(y, &c, &e) == SP_ERR_INVALID);
    CHECK_MSG(strstr(e.msg, "nested deeper than 64 levels") && strstr(e.msg, "spoke.yaml:1"), "%s",
              e.msg);
    fprintf(stderr, "40000 levels rejected in %.1f ms\n", sp_now_ms() - t0);
    app_config_free(&c);
    free(y);
    y = nested(40000, "{a: ", "}", "1");
    CHECK(parse(y, &c, &e) == SP_ERR_INVALID);
    app_config_free(&c);
    free(y);
    /* 63 levels under the top-level mapping are fine (an ignored key), 64 are not */
    y = nested(63, "[", "]", "1");
    CHECK_MSG(parse(y, &c, &e) == SP_OK, "%s", e.msg);
    CHECK_EQ_INT(c.n_warnings, 1);
    app_config_free(&c);
    free(y);
    y = nested(64, "[", "]", "1");
    CHECK(parse(y, &c, &e) == SP_ERR_INVALID);
    app_config_free(&c);
    free(y);
    /* a syntax error is still reported by the load, with its line */
    CHECK(parse("a: [\nb: ]]\n", &c, &e) == SP_ERR_INVALID);
    CHECK_MSG(strstr(e.msg, "YAML error"), "%s", e.msg);
    app_config_free(&c);
}

int main(void)
{
    RUN(spicepod_models);
    RUN(server_section);
    RUN(server_auth);
    RUN(errors_name_key_and_line);
    RUN(misc);
    RUN(depth_cap);
    return test_summary();
}
