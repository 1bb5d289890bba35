/* test_gate.c - the pure checks of the request gate (server_gate.c): path
 * unescaping with the control-byte refusal marker, Host allowlist (IP
 * literals, localhost, configured names with or without port, case), Origin
 * (same origin, listed, trailing slash), Content-Type media type. */
#include "server/server_int.h"
#include "test.h"

#include <string.h>

static const char *unescaped(const char *in, char *buf, size_t n)
{
    sp_strlcpy(buf, in, n);
    srv_unescape(NULL, NULL, buf);
    return buf;
}

TEST(unescape)
{
    char b[128];
    CHECK(!strcmp(unescaped("/v1/models/a%2Fb", b, sizeof b), "/v1/models/a/b"));
    CHECK(!strcmp(unescaped("/health", b, sizeof b), "/health"));
    CHECK(!strcmp(unescaped("/bad%zz%4", b, sizeof b), "/bad%zz%4"));
    CHECK(!strcmp(unescaped("/v1/sql%00.txt", b, sizeof b), "\x7f"));
    CHECK(!strcmp(unescaped("/v1/models%0a", b, sizeof b), "\x7f"));
    CHECK(!strcmp(unescaped("/h\x01", b, sizeof b), "\x7f"));
    CHECK(!strcmp(unescaped("/h%7F", b, sizeof b), "\x7f"));
}

TEST(hosts)
{
    char *names[] = {"spoke.example.com", "other.test:8443"};
    struct server_auth none = {0}, some = {.allowed_hosts = names, .n_allowed_hosts = 2};
    CHECK(srv_host_allowed(&none, "127.0.0.1:8090"));
    CHECK(srv_host_allowed(&none, "10.1.2.3"));
    CHECK(srv_host_allowed(&none, "[::1]:8090"));
    CHECK(srv_host_allowed(&none, "localhost:8090"));
    CHECK(srv_host_allowed(&none, "LOCALHOST"));
    CHECK(!srv_host_allowed(&none, "evil.example"));
    CHECK(!srv_host_allowed(&none, "127.0.0.1.evil.example"));
    CHECK(!srv_host_allowed(&none, ""));
    CHECK(!srv_host_allowed(&none, "[::1"));
    CHECK(srv_host_allowed(&some, "Spoke.Example.com:443"));
    CHECK(srv_host_allowed(&some, "other.test"));
    CHECK(!srv_host_allowed(&some, "example.com"));
    char *any[] = {"*"};
    struct server_auth star = {.allowed_hosts = any, .n_allowed_hosts = 1};
    CHECK(srv_host_allowed(&star, "whatever.example"));
}

TEST(origins)
{
    char *list[] = {"http://app.test/", "https://ui.example:3000"};
    struct server_auth none = {0}, some = {.cors_origins = list, .n_cors_origins = 2};
    CHECK(srv_origin_allowed(&none, "http://127.0.0.1:8090", "127.0.0.1:8090"));
    CHECK(!srv_origin_allowed(&none, "http://127.0.0.1:8091", "127.0.0.1:8090"));
    CHECK(!srv_origin_allowed(&none, "http://evil.example", "127.0.0.1:8090"));
    CHECK(!srv_origin_allowed(&none, "null", NULL));
    CHECK(srv_origin_allowed(&some, "http://app.test", NULL));
    CHECK(srv_origin_allowed(&some, "https://ui.example:3000", NULL));
    CHECK(!srv_origin_allowed(&some, "https://ui.example", NULL));
    CHECK(!srv_origin_allowed(&some, "http://app.test.evil", NULL));
}

TEST(media)
{
    CHECK(srv_media_is("application/json", "application/json"));
    CHECK(srv_media_is("Application/JSON; charset=utf-8", "application/json"));
    CHECK(srv_media_is(" application/json ;x", "application/json"));
    CHECK(!srv_media_is("application/jsonp", "application/json"));
    CHECK(!srv_media_is("text/plain", "application/json"));
    CHECK(!srv_media_is(NULL, "application/json"));
    CHECK(!srv_media_is("", "application/json"));
}

int main(void)
{
    RUN(unescape);
    RUN(hosts);
    RUN(origins);
    RUN(media);
    return test_summary();
}
