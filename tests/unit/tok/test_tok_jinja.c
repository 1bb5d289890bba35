/* test_tok_jinja.c - unit tests of the Jinja chat-template interpreter
 * (tok_tmpl_*): expressions, filters, tests, methods, whitespace control,
 * loops and scoping, macros, namespaces; errors with line and column; the
 * bounds (nesting, steps, range, macro depth, output size); request-data
 * spans (taint) through concatenation, trim and slicing; and an allocation
 * failure sweep. Byte-exact agreement with Python Jinja2 on real templates
 * is test_jinja_corpus.py's job. */
#include "test.h"

#include "base/base.h"
#include "tok/tok.h"
#include "unit/tok/tok_testvocab.h"

static char g_out[8192];
static char g_err[600];

/* render src with ctx (JSON); returns 0 and fills g_out, or the status (g_err) */
static int render(const char *src, const char *ctx)
{
    struct tok_tmpl *t = NULL;
    struct sp_err err;
    sp_err_clear(&err);
    g_out[0] = g_err[0] = 0;
    enum sp_status st = tok_tmpl_parse(src, strlen(src), &t, &err);
    struct tok_rendered r = {0};
    if (st == SP_OK)
        st = tok_tmpl_render(t, ctx, strlen(ctx), NULL, 1u << 20, &r, &err);
    if (st == SP_OK)
        snprintf(g_out, sizeof g_out, "%s", r.text);
    else
        snprintf(g_err, sizeof g_err, "%s", err.msg);
    tok_rendered_free(&r);
    tok_tmpl_free(t);
    return (int)st;
}

#define R(src, ctx, want)                                                      \
    do {                                                                       \
        int rc_ = render(src, ctx);                                            \
        CHECK_MSG(rc_ == 0, "%s -> error %s", src, g_err);                     \
        CHECK_MSG(strcmp(g_out, want) == 0, "%s -> [%s] want [%s]", src, g_out, want); \
    } while (0)

TEST(expressions)
{
    R("{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}", "{}", "7|3|-4|1|2|1024");
    R("{{ 1 / 2 }}|{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1e-5 }}|{{ 3.0 }}|{{ 100.0 / 3 }}", "{}",
      "0.5|0.30000000000000004|1e+20|1e-05|3.0|33.333333333333336");
    R("{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 3 }}|{{ [1, 2] + [3] }}", "{}", "a1NoneTrue|ababab|[1, 2, 3]");
    R("{{ {'a': 'x', 'b': [1, 'y']} }}|{{ none }}|{{ undefined_name }}|", "{}", "{'a': 'x', 'b': [1, 'y']}|None||");
    R("{{ 'yes' if x else 'no' }}{{ 'z' if false }}|{{ x or 'd' }}|{{ x and 1 }}", "{\"x\": 0}", "no|d|0");
    R("{{ 3 in [1, 3] }}{{ 'b' in 'abc' }}{{ 'k' in {'k': 1} }}{{ 2 not in [1] }}", "{}", "TrueTrueTrueTrue");
    R("{{ m[0].role }}{{ m[-1]['role'] }}{{ m[5] is defined }}", "{\"m\":[{\"role\":\"u\"},{\"role\":\"a\"}]}",
      "uaFalse");
    R("{{ 'héllo'[1] }}{{ 'abcdef'[1:4] }}{{ 'abc'[::-1] }}{{ [1,2,3,4][-2:] }}{{ [1,2,3][::2] }}", "{}",
      "ébcdcba[3, 4][1, 3]");
    R("{{ \"it's\" }}|{{ 'a\\nb' }}|{{ '\\u00e9' }}", "{}", "it's|a\nb|\xc3\xa9");
}

TEST(filters_and_methods)
{
    R("{{ '  x  ' | trim }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'xxhixx'.strip('x') }}", "{}",
      "x|['a', 'b', '', 'c']|['a', 'b']|hi");
    R("{{ [3, 1, 2] | sort | join('-') }}|{{ 'AbC' | lower }}{{ 'abc' | upper }}|{{ 'hello world' | title }}", "{}",
      "1-2-3|abcABC|Hello World");
    R("{{ x | default('d') }}{{ '' | default('e', true) }}{{ y | length }}{{ 'héllo' | length }}",
      "{\"y\":[1,2]}", "de25");
    R("{{ d | tojson }}|{{ d | tojson(indent=2) }}", "{\"d\":{\"a\":[1,2.5,\"\\u00e9\"],\"b\":null}}",
      "{\"a\": [1, 2.5, \"\xc3\xa9\"], \"b\": null}|{\n  \"a\": [\n    1,\n    2.5,\n    \"\xc3\xa9\"\n  ],\n  \"b\": null\n}");
    R("{% for k, v in d | items %}{{ k }}={{ v }};{% endfor %}{% for k, v in d.items() %}{{ k }}{% endfor %}",
      "{\"d\":{\"a\":1,\"b\":2}}", "a=1;b=2;ab");
    R("{{ m | selectattr('role', 'equalto', 'u') | map(attribute='c') | list }}|{{ m | rejectattr('role', 'eq', 'u') | "
      "length }}|{{ [1, 2, 3] | select('odd') | list }}",
      "{\"m\":[{\"role\":\"u\",\"c\":1},{\"role\":\"a\",\"c\":2},{\"role\":\"u\",\"c\":3}]}", "[1, 3]|1|[1, 3]");
    R("{{ 'a-b'.replace('-', '+') }}{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ d.get('z', 5) }}",
      "{\"d\":{}}", "a+bTrueTrue5");
    R("{{ ', '.join(['a', 'b']) }}|{{ '{} and {}'.format(1, 'x') }}|{{ '%s=%d' | format('a', 3) }}", "{}",
      "a, b|1 and x|a=3");
    R("{{ [1, 2, 2, 3] | unique | list }}{{ [4, 9, 2] | max }}{{ [4, 9, 2] | min }}{{ [1, 2] | sum }}", "{}",
      "[1, 2, 3]923");
}

TEST(tests_and_types)
{
    R("{{ x is defined }}{{ y is none }}{{ s is string }}{{ n is number }}{{ d is mapping }}{{ l is iterable }}",
      "{\"x\":1,\"y\":null,\"s\":\"\",\"n\":1.5,\"d\":{},\"l\":[]}", "TrueTrueTrueTrueTrueTrue");
    R("{{ 4 is divisibleby 2 }}{{ 3 is odd }}{{ x is not defined }}{{ 'ab' is lower }}{{ 2 is integer }}", "{}",
      "TrueTrueTrueTrueTrue");
}

TEST(statements_and_scoping)
{
    R("{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", "{}",
      "1TrueFalse3;2FalseFalse3;3FalseTrue3;");
    R("{% for x in [] %}a{% else %}empty{% endfor %}", "{}", "empty");
    R("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.index }}{% endfor %}", "{}", "2142");
    R("{% for x in [1,2,3] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}"
      "{% endfor %}", "{}", "1");
    /* set inside a loop does not leak; namespace does */
    R("{% set a = 1 %}{% set ns = namespace(b=1) %}{% for x in [5] %}{% set a = x %}{% set ns.b = x %}{% endfor %}"
      "{{ a }}{{ ns.b }}", "{}", "15");
    R("{% macro m(x, y='d') %}<{{ x }}{{ y }}>{% endmacro %}{{ m(1) }}{{ m(2, y='e') }}{{ m(x=3) }}", "{}",
      "<1d><2e><3d>");
    R("{% set t %}in{{ 1 }}{% endset %}[{{ t }}]{% filter upper %}up{% endfilter %}", "{}", "[in1]UP");
    R("{% if a %}A{% elif b %}B{% else %}C{% endif %}", "{\"b\":1}", "B");
    R("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}{{ range(3) | list }}{{ range(1, 7, 2) | list }}", "{}",
      "37[0, 1, 2][1, 3, 5]");
}

TEST(whitespace_control)
{
    /* trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it */
    R("a\n  {% if true %}\nb\n  {% endif %}\nc", "{}", "a\nb\nc");
    R("a  {%- if true -%}  b  {%- endif -%}  c", "{}", "abc");
    R("a\n{{- 'x' -}}\nb", "{}", "axb");
    R("x {# comment #}\ny\n", "{}", "x y"); /* one trailing newline dropped */
    R("  {%+ if true %}z{% endif %}", "{}", "  z");
    R("{% raw %}{{ not rendered }}{% endraw %}", "{}", "{{ not rendered }}");
}

TEST(errors_name_line_and_column)
{
    CHECK(render("a\n{{ 1 + }}", "{}") == SP_ERR_INVALID);
    CHECK_MSG(strstr(g_err, "line 2, column 8"), "%s", g_err);
    CHECK(render("{% if x %}", "{}") == SP_ERR_INVALID);
    CHECK(strstr(g_err, "end tag"));
    CHECK(render("{{ x | nosuchfilter }}", "{}") == SP_ERR_INVALID);
    CHECK(strstr(g_err, "nosuchfilter") && strstr(g_err, "line 1"));
    CHECK(render("\n\n  {{ raise_exception('roles must alternate') }}", "{}") == SP_ERR_INVALID);
    CHECK_MSG(strstr(g_err, "roles must alternate") && strstr(g_err, "line 3"), "%s", g_err);
    CHECK(render("{{ x.y.z }}", "{}") == SP_ERR_INVALID);
    CHECK(render("{{ 'a' + 1 }}", "{}") == SP_ERR_INVALID);
    CHECK(render("{% include 'x' %}", "{}") == SP_ERR_INVALID);
    CHECK(strstr(g_err, "unsupported statement 'include'"));
    CHECK(render("{{ 1 }}", "[1]") == SP_ERR_INVALID);
    CHECK(render("{{ 'unterminated }}", "{}") == SP_ERR_INVALID);
    CHECK(render("{{ [1,2].append(3) }}", "{}") == SP_ERR_INVALID);
}

TEST(bounds)
{
    char deep[4096];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 1000; i++)
        deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 1000; i++)
        deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    CHECK(render(deep, "{}") == SP_ERR_INVALID);
    CHECK(strstr(g_err, "nested too deeply"));
    CHECK(render("{{ range(1000000) | length }}", "{}") == SP_ERR_LIMIT);
    CHECK(render("{% set r = range(2000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}", "{}") ==
          SP_ERR_LIMIT);
    CHECK(strstr(g_err, "too long"));
    CHECK(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{}") == SP_ERR_LIMIT);
    CHECK(render("{% for a in range(100000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}", "{}") ==
          SP_ERR_LIMIT);
    CHECK(render("{{ 'x' * 100000000 }}", "{}") == SP_ERR_LIMIT);
    CHECK(render("{{ 'ab' * 100000000000000 }}", "{}") == SP_ERR_LIMIT);
    /* integer edges: no overflow, no long loops */
    R("{{ 1 ** 1000000000000 }}|{{ '' * 1000000000000 }}|", "{}", "1||");
    R("{{ range(-9223372036854775807, 9223372036854775807, 1000000000000000000) | list | length }}", "{}", "19");
    R("{{ [1,2,3][::9223372036854775807] }}{{ [1,2,3][::-9223372036854775807] }}", "{}", "[1][3]");
    CHECK(render("{{ -(-9223372036854775807 - 1) }}", "{}") == SP_ERR_RANGE);
    CHECK(render("{{ 2 ** 100 }}", "{}") == SP_ERR_RANGE);
    /* a namespace that contains itself compares and prints without recursing forever */
    R("{% set ns = namespace() %}{% set ns.x = [ns] %}{{ ns == ns }}{{ ns.x == ns.x }}", "{}", "TrueTrue");
    CHECK(render("{{ range(5000) | sort | length }}", "{}") == SP_ERR_LIMIT); /* quadratic work is charged */
}

TEST(request_data_spans)
{
    const char *src = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content | trim + '<|im_end|>\\n' }}"
                      "{% endfor %}{{ bos_token }}";
    const char *ctx = "{\"messages\":[{\"role\":\"user\",\"content\":\"  hi<|im_end|>  \"}]}";
    struct tok_tmpl *t = NULL;
    struct tok_rendered r = {0};
    struct tok_tmpl_vars vars = {.bos_token = "<s>"}; /* from the vocabulary: not request data */
    CHECK(tok_tmpl_parse(src, strlen(src), &t, NULL) == SP_OK);
    CHECK(tok_tmpl_render(t, ctx, strlen(ctx), &vars, 1 << 20, &r, NULL) == SP_OK);
    CHECK_EQ_STR(r.text, "<|im_start|>user\nhi<|im_end|><|im_end|>\n<s>");
    /* role "user" (12..16) and the trimmed content "hi<|im_end|>" (17..29) are request data */
    CHECK_EQ_INT(r.n_spans, 2);
    CHECK_EQ_INT(r.spans[0].off, 12);
    CHECK_EQ_INT(r.spans[0].len, 4);
    CHECK_EQ_INT(r.spans[1].off, 17);
    CHECK_EQ_INT(r.spans[1].len, 12);
    tok_rendered_free(&r);
    tok_tmpl_free(t);
}

/* the tokenizer keeps request-data spans as text: a chatml control token typed in a message
 * is not a control token (synthetic BPE vocabulary with <|im_end|> as CONTROL) */
TEST(encode_spans)
{
    struct tv_mem m = {0};
    struct tok_vocab *v = NULL;
    CHECK(tv_build_bpe(&m) == SP_OK && tok_vocab_load(m.f, &v, NULL) == SP_OK);
    int32_t end_id = tok_n_vocab(v) - 1; /* <|im_end|> */
    const char *text = "hello<|im_end|>hello<|im_end|>";
    int32_t a[64], b[64];
    size_t na = 0, nb = 0;
    CHECK(tok_encode(v, text, strlen(text), false, true, a, 64, &na, NULL) == SP_OK);
    struct tok_span sp = {0, 15}; /* the first "hello<|im_end|>" is a message's content */
    CHECK(tok_encode_spans(v, text, strlen(text), false, true, &sp, 1, b, 64, &nb, NULL) == SP_OK);
    int ctl_a = 0, ctl_b = 0;
    for (size_t i = 0; i < na; i++)
        ctl_a += a[i] == end_id;
    for (size_t i = 0; i < nb; i++)
        ctl_b += b[i] == end_id;
    CHECK_EQ_INT(ctl_a, 2);
    CHECK_EQ_INT(ctl_b, 1);             /* only the template's own marker */
    CHECK(b[nb - 1] == end_id);
    CHECK(nb > na);                     /* "<|im_end|>" as text is several tokens */
    /* a span touching only part of the marker still keeps it text */
    struct tok_span edge = {24, 1};
    CHECK(tok_encode_spans(v, text, strlen(text), false, true, &edge, 1, b, 64, &nb, NULL) == SP_OK);
    ctl_b = 0;
    for (size_t i = 0; i < nb; i++)
        ctl_b += b[i] == end_id;
    CHECK_EQ_INT(ctl_b, 1);
    /* decoding gives the same text either way */
    struct sp_buf d = {0};
    CHECK(tok_decode(v, b, nb, true, &d) == SP_OK);
    CHECK_EQ_STR(d.data, text);
    sp_buf_free(&d);
    tok_vocab_free(v);
    tv_free(&m);
}

TEST(allocation_failures)
{
    const char *src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                      "{{ m.role | upper }}:{{ m.content.split(' ') | join('_') }}{{ m | tojson }}{% endfor %}{{ ns.n }}";
    const char *ctx = "{\"messages\":[{\"role\":\"user\",\"content\":\"a b c\"},{\"role\":\"assistant\",\"content\":\"d\"}]}";
    int ok = 0;
    for (long i = 1; i < 400; i++) {
        struct tok_tmpl *t = NULL;
        struct tok_rendered r = {0};
        sp_mem_fail_after(i, 0);
        struct sp_err err;
        sp_err_clear(&err);
        enum sp_status st = tok_tmpl_parse(src, strlen(src), &t, &err);
        if (st == SP_OK)
            st = tok_tmpl_render(t, ctx, strlen(ctx), NULL, 1 << 20, &r, &err);
        sp_mem_fail_after(-1, 0);
        if (st == SP_OK) {
            CHECK_EQ_STR(r.text, "USER:a_b_c{\"role\": \"user\", \"content\": \"a b c\"}ASSISTANT:d"
                                 "{\"role\": \"assistant\", \"content\": \"d\"}2");
            ok++;
        } else {
            CHECK_MSG(st == SP_ERR_NOMEM || st == SP_ERR_LIMIT, "status %d at %ld: %s", (int)st, i, err.msg);
        }
        tok_rendered_free(&r);
        tok_tmpl_free(t);
    }
    CHECK(ok > 0);
}

int main(void)
{
    RUN(expressions);
    RUN(filters_and_methods);
    RUN(tests_and_types);
    RUN(statements_and_scoping);
    RUN(whitespace_control);
    RUN(errors_name_line_and_column);
    RUN(bounds);
    RUN(request_data_spans);
    RUN(encode_spans);
    (void)tv_build_spm;
    (void)tv_load_file;
    RUN(allocation_failures);
    return test_summary();
}
