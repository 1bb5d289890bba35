/* test_engine_chat.c - the engine's chat-template choice and rendering:
 * built-in chatml for a model without a template, params.chat_template as a
 * family name, Jinja text or a file, a template that fails to parse falling
 * back to the fixed renderer, a missing file refused at load, and request
 * data reported as spans by engine_chat_render_ctx. Uses stories260K.gguf
 * (no tokenizer.chat_template) from ../shared. */
#include "test.h"

#include "base/base.h"
#include "engine/engine.h"
#include "tok/tok.h"

static struct engine_model *load_with(const char *tmpl, enum sp_status *st)
{
    char path[1024];
    if (!test_shared_file(path, sizeof(path), "models/stories260K.gguf"))
        return NULL;
    struct engine_load_opts o = {.path = path, .n_ctx = 128, .n_threads = 1, .chat_template = tmpl};
    struct engine_model *m = NULL;
    struct sp_err err;
    sp_err_clear(&err);
    *st = engine_model_load(&o, &m, &err);
    return m;
}

static char *render1(struct engine_model *m, const char *user)
{
    struct engine_chat_msg msgs[] = {{"system", "S"}, {"user", user}};
    char *out = NULL;
    if (engine_chat_render(m, msgs, 2, true, &out, NULL) != SP_OK)
        return NULL;
    return out;
}

TEST(template_choice)
{
    enum sp_status st;
    struct engine_model *m = load_with(NULL, &st);
    if (!m && st == SP_OK)
        SKIP("stories260K.gguf not found");
    CHECK(m);
    CHECK_EQ_STR(engine_chat_template_kind(m), "jinja");
    char *o = render1(m, "Hi");
    CHECK_EQ_STR(o, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    sp_free(o);
    engine_model_free(m);

    m = load_with("llama3", &st);
    CHECK(m);
    o = render1(m, " Hi ");
    CHECK_EQ_STR(o, "<s><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user"
                    "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    sp_free(o);
    engine_model_free(m);

    m = load_with("{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}", &st);
    CHECK(m);
    o = render1(m, "x");
    CHECK_EQ_STR(o, "[system:S][user:x]");
    sp_free(o);
    engine_model_free(m);

    /* does not parse: the fixed renderer of its family (detected by markers) */
    m = load_with("{% for m in messages %}<|im_start|>{{ m.role }{% endfor %}", &st);
    CHECK(m);
    CHECK_EQ_STR(engine_chat_template_kind(m), "chatml");
    o = render1(m, "y");
    CHECK_EQ_STR(o, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\ny<|im_end|>\n<|im_start|>assistant\n");
    sp_free(o);
    engine_model_free(m);

    m = load_with("/nonexistent/template.jinja", &st);
    CHECK(!m && st == SP_ERR_INVALID);
}

TEST(template_file_and_spans)
{
    char tp[] = "/tmp/spoke-tmpl-XXXXXX";
    int fd = mkstemp(tp);
    CHECK(fd >= 0);
    const char *t = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}";
    CHECK(write(fd, t, strlen(t)) == (ssize_t)strlen(t));
    close(fd);
    enum sp_status st;
    struct engine_model *m = load_with(tp, &st);
    unlink(tp);
    if (!m && st == SP_OK)
        SKIP("stories260K.gguf not found");
    CHECK(m);
    const char *ctx = "{\"messages\":[{\"role\":\"user\",\"content\":\" a<|im_end|>b \"}]}";
    struct tok_rendered r;
    CHECK(engine_chat_render_ctx(m, ctx, strlen(ctx), 1 << 20, &r, NULL) == SP_OK);
    CHECK_EQ_STR(r.text, "<|im_start|>user\na<|im_end|>b<|im_end|>\n");
    CHECK_EQ_INT(r.n_spans, 2);
    CHECK_EQ_INT(r.spans[1].off, 17);
    CHECK_EQ_INT(r.spans[1].len, 12);
    tok_rendered_free(&r);
    engine_model_free(m);
}

int main(void)
{
    RUN(template_choice);
    RUN(template_file_and_spans);
    return test_summary();
}
