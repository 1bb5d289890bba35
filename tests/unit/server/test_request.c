/* test_request.c - the OpenAI request reader: every accepted field lands
 * in struct server_request, and each invalid one is refused naming its
 * parameter. */
#include "server/server_req.h"
#include "test.h"

static struct server_opts opts;

static enum sp_status parse(const char *body, bool chat, struct server_request *r, struct sp_err *e)
{
    sp_err_clear(e);
    return server_request_parse(body, strlen(body), chat, &opts.limits, r, e);
}

TEST(chat_fields)
{
    struct server_request r;
    struct sp_err e;
    const char *b = "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"sys\"},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                    "{\"role\":\"assistant\",\"content\":null}],"
                    "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_completion_tokens\":7,"
                    "\"temperature\":0.5,\"top_p\":0.9,\"seed\":-1,\"presence_penalty\":1,\"frequency_penalty\":-1,"
                    "\"logprobs\":true,\"top_logprobs\":20,\"stop\":[\"x\",\"\",\"yz\"],\"n\":1,\"user\":\"u\",\"foo\":1}";
    CHECK_MSG(parse(b, true, &r, &e) == SP_OK, "%s", e.msg);
    CHECK_EQ_STR(r.model, "m");
    CHECK_EQ_INT(r.n_msgs, 3);
    CHECK_EQ_STR(r.msgs[0].role, "system");
    CHECK_EQ_STR(r.msgs[1].content, "ab");
    CHECK_EQ_STR(r.msgs[2].content, "");
    CHECK(r.stream && r.include_usage);
    CHECK_EQ_INT(r.max_tokens, 7);
    CHECK(r.has_temperature && r.has_top_p && r.has_seed);
    CHECK(r.seed == UINT64_MAX);
    CHECK(r.logprobs);
    CHECK_EQ_INT(r.top_logprobs, 20);
    CHECK_EQ_INT(r.n_stop, 2);
    CHECK_EQ_STR(r.stop[1], "yz");
    server_request_free(&r);
}

TEST(completion_fields)
{
    struct server_request r;
    struct sp_err e;
    CHECK(parse("{\"prompt\":[\"hi\"],\"logprobs\":3,\"stop\":\"s\",\"max_tokens\":5.0}", false, &r, &e) == SP_OK);
    CHECK(r.model == NULL);
    CHECK_EQ_STR(r.prompt, "hi");
    CHECK(r.logprobs);
    CHECK_EQ_INT(r.top_logprobs, 3);
    CHECK_EQ_INT(r.n_stop, 1);
    CHECK_EQ_INT(r.max_tokens, 5);
    server_request_free(&r);
}

TEST(errors_name_the_parameter)
{
    static const struct { const char *body; bool chat; const char *param; } cases[] = {
        {"{}", true, "messages"},
        {"{\"messages\":[]}", true, "messages"},
        {"{\"messages\":[{\"role\":\"x\",\"content\":\"a\"}]}", true, "messages[0].role"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":1}]}", true, "messages[0].content"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":-1}", true, "max_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":5000}", true, "max_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"temperature\":-0.1}", true, "temperature"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"top_logprobs\":1}", true, "top_logprobs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"logprobs\":true,\"top_logprobs\":1000000000}", true,
         "top_logprobs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"n\":9}", true, "n"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"model\":[]}", true, "model"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream_options\":{}}", true, "stream_options"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":[{}]}", true, "tools"},
        {"{\"prompt\":1}", false, "prompt"},
        {"{\"prompt\":\"a\",\"logprobs\":true}", false, "logprobs"},
        {"{\"prompt\":\"a\",\"echo\":true}", false, "echo"},
        {"{\"prompt\":\"a\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\"]}", false, "stop"},
        {"{\"prompt\":\"a\",\"seed\":1.5}", false, "seed"},
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
        struct server_request r;
        struct sp_err e;
        CHECK_MSG(parse(cases[i].body, cases[i].chat, &r, &e) == SP_ERR_INVALID, "case %zu accepted", i);
        CHECK_MSG(!strcmp(e.context, cases[i].param), "case %zu: param '%s', want '%s' (%s)", i, e.context,
                  cases[i].param, e.msg);
        server_request_free(&r);
    }
    struct server_request r;
    struct sp_err e;
    CHECK(parse("{\"prompt\":\"a\"", false, &r, &e) == SP_ERR_INVALID && strstr(e.msg, "malformed JSON"));
    CHECK(parse("[1]", false, &r, &e) == SP_ERR_INVALID);
    CHECK(server_request_parse("{\"prompt\":\"\xff\"}", 14, false, &opts.limits, &r, &e) == SP_ERR_INVALID);
    CHECK(server_request_parse("", 0, false, &opts.limits, &r, &e) == SP_ERR_INVALID);
    server_request_free(&r);
}

int main(void)
{
    server_opts_default(&opts);
    RUN(chat_fields);
    RUN(completion_fields);
    RUN(errors_name_the_parameter);
    return test_summary();
}
