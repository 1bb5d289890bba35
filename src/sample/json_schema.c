/* json_schema.c - JSON output grammars: the GBNF of any JSON object
 * (response_format json_object) and JSON schema -> GBNF (json_schema).
 *
 * Whitespace between JSON tokens is limited to one optional space or
 * newline (a model that likes spaces must still make progress). */
#include "sample/grammar.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"

static const char json_object_gbnf[] =
    "root ::= object\n"
    "value ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
    "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "char ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n"
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
    "ws ::= [ \\n]?\n"
    "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"
    "date ::= [0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )\n"
    "time ::= ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,6} )? "
    "( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )\n";

const char *grammar_json_object_gbnf(void) { return json_object_gbnf; }

/* ---- JSON schema -> GBNF
 *
 * One rule per schema node (r1, r2, ...), generated depth-first; the JSON
 * primitives (value, object, array, string, number, integer...) are shared
 * rules. Objects list their known properties in schema order: required
 * ones always, optional ones may be left out (rules p<k>_<c> = the members
 * from property k on, c = whether a comma must come first). Only the listed
 * properties are generated (valid whether additionalProperties is false or
 * not); an object without properties is any object, or a map when
 * additionalProperties is a schema. Everything unsupported is an
 * SP_ERR_UNSUPPORTED naming the keyword. */

#define JS_MAX_DEPTH 32
#define JS_MAX_REPEAT 1000
#define JS_MAX_ENUM_RANGE 256

struct jsgen {
    struct sp_buf *out;
    int next;
    struct sp_err *err;
};

static const char *const js_annotations[] = {"$schema", "$id", "$comment", "title", "description", "default",
                                             "examples", "strict", "readOnly", "writeOnly", "deprecated",
                                             "contentMediaType", "contentEncoding", NULL};
static const char *const js_supported[] = {"type", "properties", "required", "additionalProperties", "items",
                                           "minItems", "maxItems", "enum", "const", "anyOf", "format",
                                           "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
                                           "exclusiveMaximum", "uniqueItems", NULL};

static bool in_list(const char *k, const char *const *l)
{
    for (; *l; l++)
        if (strcmp(k, *l) == 0)
            return true;
    return false;
}

#define EMIT(...)                                                                                                      \
    do {                                                                                                               \
        if (sp_buf_printf(x->out, __VA_ARGS__))                                                                      \
            return js_oom(x);                                                                                          \
    } while (0)

static enum sp_status js_oom(struct jsgen *x)
{
    if (x->out->len >= GRAMMAR_MAX_TEXT - 1)
        return sp_err_set(x->err, SP_ERR_LIMIT, "the schema's grammar would pass %u bytes", GRAMMAR_MAX_TEXT);
    return sp_err_set(x->err, SP_ERR_NOMEM, "out of memory converting a JSON schema");
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

/* A GBNF string literal of JSON value v's compact text. */
static enum sp_status emit_json_literal(struct jsgen *x, const json_t *v)
{
    struct sp_buf t = {0};
    t.limit = GRAMMAR_MAX_TEXT;
    if (json_dump_callback(v, dump_cb, &t, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) != 0) {
        sp_buf_free(&t);
        return js_oom(x);
    }
    int rc = sp_buf_appends(x->out, "\"");
    for (size_t i = 0; i < t.len && !rc; i++) {
        const char *p = t.data + i;
        if (*p == '"' || *p == '\\')
            rc = sp_buf_printf(x->out, "\\%c", *p);
        else
            rc = sp_buf_append(x->out, p, 1);
    }
    sp_buf_free(&t);
    if (rc || sp_buf_appends(x->out, "\""))
        return js_oom(x);
    return SP_OK;
}

static enum sp_status js_unsupported(struct jsgen *x, const char *what, const char *path)
{
    return sp_err_setc(x->err, SP_ERR_UNSUPPORTED, path, "JSON schema: %s is not supported (at %s)", what,
                       path[0] ? path : "the root");
}

static enum sp_status gen(struct jsgen *x, const json_t *s, int depth, const char *path, int *rule);

/* Integer bounds -> rule body; "integer" when unbounded. */
static enum sp_status gen_integer(struct jsgen *x, const json_t *s, const char *path, int r)
{
    const json_t *mn = json_object_get(s, "minimum"), *mx = json_object_get(s, "maximum");
    const json_t *emn = json_object_get(s, "exclusiveMinimum"), *emx = json_object_get(s, "exclusiveMaximum");
    if (!mn && !mx && !emn && !emx) {
        EMIT("r%d ::= integer\n", r);
        return SP_OK;
    }
    if ((mn && !json_is_number(mn)) || (mx && !json_is_number(mx)) || (emn && !json_is_number(emn)) ||
        (emx && !json_is_number(emx)))
        return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: integer bounds must be numbers (at %s)", path);
    double lo = -INFINITY, hi = INFINITY;
    if (mn)
        lo = ceil(json_number_value(mn));
    if (emn)
        lo = SP_MAX(lo, floor(json_number_value(emn)) + 1);
    if (mx)
        hi = floor(json_number_value(mx));
    if (emx)
        hi = SP_MIN(hi, ceil(json_number_value(emx)) - 1);
    if (lo > hi)
        return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: no integer fits the bounds (at %s)", path);
    if (isinf(hi) && (lo == 0 || lo == 1)) {
        EMIT("r%d ::= %s\n", r, lo == 0 ? "( \"0\" | [1-9] [0-9]{0,15} )" : "[1-9] [0-9]{0,15}");
        return SP_OK;
    }
    if (isinf(lo) || isinf(hi) || hi - lo >= JS_MAX_ENUM_RANGE)
        return js_unsupported(x, "an integer range other than minimum 0/1 or at most 256 values", path);
    EMIT("r%d ::= ", r);
    for (double v = lo; v <= hi; v++)
        EMIT("%s\"%.0f\"", v == lo ? "" : " | ", v);
    EMIT("\n");
    return SP_OK;
}

static enum sp_status gen_string(struct jsgen *x, const json_t *s, const char *path, int r)
{
    const json_t *fmt = json_object_get(s, "format");
    if (fmt) {
        const char *f = json_string_value(fmt);
        static const char *const fmts[][2] = {
            {"date", "\"\\\"\" date \"\\\"\""},
            {"time", "\"\\\"\" time \"\\\"\""},
            {"date-time", "\"\\\"\" date \"T\" time \"\\\"\""},
            {"uuid", "\"\\\"\" [0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12} "
                     "\"\\\"\""},
        };
        for (size_t i = 0; f && i < SP_ARRAY_LEN(fmts); i++)
            if (strcmp(f, fmts[i][0]) == 0) {
                if (json_object_get(s, "minLength") || json_object_get(s, "maxLength"))
                    return js_unsupported(x, "minLength/maxLength together with format", path);
                EMIT("r%d ::= %s\n", r, fmts[i][1]);
                return SP_OK;
            }
        return js_unsupported(x, "this string format (supported: date, time, date-time, uuid)", path);
    }
    const json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
    if ((mn && !json_is_integer(mn)) || (mx && !json_is_integer(mx)))
        return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: minLength/maxLength must be integers (at %s)",
                           path);
    long long lo = mn ? json_integer_value(mn) : 0, hi = mx ? json_integer_value(mx) : -1;
    if (lo < 0 || lo > JS_MAX_REPEAT || hi > JS_MAX_REPEAT || (mx && hi < lo))
        return js_unsupported(x, "minLength/maxLength outside 0..1000 (or max below min)", path);
    if (!mn && !mx)
        EMIT("r%d ::= string\n", r);
    else if (mx)
        EMIT("r%d ::= \"\\\"\" char{%lld,%lld} \"\\\"\"\n", r, lo, hi);
    else
        EMIT("r%d ::= \"\\\"\" char{%lld,} \"\\\"\"\n", r, lo);
    return SP_OK;
}

static enum sp_status gen_array(struct jsgen *x, const json_t *s, int depth, const char *path, int r)
{
    const json_t *items = json_object_get(s, "items"), *mn = json_object_get(s, "minItems"),
                 *mx = json_object_get(s, "maxItems"), *uq = json_object_get(s, "uniqueItems");
    if (uq && json_is_true(uq))
        return js_unsupported(x, "uniqueItems", path);
    if ((mn && !json_is_integer(mn)) || (mx && !json_is_integer(mx)))
        return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: minItems/maxItems must be integers (at %s)",
                           path);
    long long lo = mn ? json_integer_value(mn) : 0, hi = mx ? json_integer_value(mx) : -1;
    if (lo < 0 || lo > JS_MAX_REPEAT || hi > JS_MAX_REPEAT || (mx && hi < lo))
        return js_unsupported(x, "minItems/maxItems outside 0..1000 (or max below min)", path);
    int it = 0;
    enum sp_status st;
    if (items) {
        char sub[128];
        (void)snprintf(sub, sizeof sub, "%.100s/items", path);
        if ((st = gen(x, items, depth + 1, sub, &it)))
            return st;
    }
    char item[24];
    if (it)
        (void)snprintf(item, sizeof item, "r%d", it);
    else
        (void)snprintf(item, sizeof item, "value");
    if (hi == 0) {
        EMIT("r%d ::= \"[\" ws \"]\"\n", r);
        return SP_OK;
    }
    long long rlo = lo > 0 ? lo - 1 : 0;
    EMIT("r%d ::= \"[\" ws %s%s ws ( \",\" ws %s ws )", r, lo == 0 ? "( " : "", item, item);
    if (hi < 0)
        EMIT("{%lld,}", rlo);
    else
        EMIT("{%lld,%lld}", rlo, hi - 1);
    EMIT("%s \"]\"\n", lo == 0 ? " )?" : "");
    return SP_OK;
}

static enum sp_status gen_object(struct jsgen *x, const json_t *s, int depth, const char *path, int r)
{
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required"),
                 *ap = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props))
        return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: 'properties' must be an object (at %s)", path);
    if (req && !json_is_array(req))
        return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: 'required' must be an array (at %s)", path);
    size_t np = props ? json_object_size(props) : 0;
    enum sp_status st;
    if (np == 0) {
        if (req && json_array_size(req) > 0)
            return js_unsupported(x, "'required' without 'properties'", path);
        if (ap && json_is_object(ap)) { /* a map */
            int v = 0;
            char sub[128];
            (void)snprintf(sub, sizeof sub, "%.90s/additionalProperties", path);
            if ((st = gen(x, ap, depth + 1, sub, &v)))
                return st;
            EMIT("r%d ::= \"{\" ws ( string ws \":\" ws r%d ws ( \",\" ws string ws \":\" ws r%d ws )* )? \"}\"\n", r,
                 v, v);
        } else if (ap && json_is_false(ap)) {
            EMIT("r%d ::= \"{\" ws \"}\"\n", r);
        } else {
            EMIT("r%d ::= object\n", r);
        }
        return SP_OK;
    }
    if (ap && !json_is_boolean(ap) && !json_is_object(ap))
        return sp_err_setc(x->err, SP_ERR_INVALID, path,
                           "JSON schema: 'additionalProperties' must be a boolean or a schema (at %s)", path);
    /* every required name must be a listed property */
    for (size_t i = 0; req && i < json_array_size(req); i++) {
        const char *n = json_string_value(json_array_get(req, i));
        if (!n)
            return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: 'required' must list strings (at %s)",
                               path);
        if (!json_object_get(props, n))
            return js_unsupported(x, "a required property missing from 'properties'", path);
    }
    int *kv = sp_calloc(np, sizeof(int));
    bool *must = sp_calloc(np, sizeof(bool));
    if (!kv || !must) {
        sp_free(kv);
        sp_free(must);
        return js_oom(x);
    }
    size_t k = 0;
    const char *key;
    json_t *sub;
    st = SP_OK;
    json_object_foreach((json_t *)props, key, sub) {
        char p2[128];
        (void)snprintf(p2, sizeof p2, "%.60s/properties/%.50s", path, key);
        int vr = 0;
        if ((st = gen(x, sub, depth + 1, p2, &vr)))
            break;
        for (size_t i = 0; req && i < json_array_size(req); i++)
            if (strcmp(json_string_value(json_array_get(req, i)), key) == 0)
                must[k] = true;
        kv[k] = x->next++;
        json_t *ks = json_string(key);
        if (!ks || sp_buf_printf(x->out, "r%d ::= ", kv[k]) ||
            (st = emit_json_literal(x, ks)) != SP_OK || sp_buf_printf(x->out, " ws \":\" ws r%d\n", vr)) {
            json_decref(ks);
            st = st ? st : js_oom(x);
            break;
        }
        json_decref(ks);
        k++;
    }
    /* m<r>_<k>_<c>: members k.. ; c = 1 when a comma must come first */
    for (size_t i = np; st == SP_OK && i-- > 0;)
        for (int c = 0; c < 2; c++) {
            const char *sep = c ? "\",\" ws " : "";
            char rest[48];
            if (i + 1 < np)
                (void)snprintf(rest, sizeof rest, " m%d_%zu_1", r, i + 1);
            else
                rest[0] = 0;
            char skip[48];
            if (i + 1 < np)
                (void)snprintf(skip, sizeof skip, "m%d_%zu_%d", r, i + 1, c);
            else
                skip[0] = 0;
            if (sp_buf_printf(x->out, "m%d_%zu_%d ::= %sr%d ws%s", r, i, c, sep, kv[i], rest) ||
                (!must[i] && sp_buf_printf(x->out, " | %s", skip)) || sp_buf_appends(x->out, "\n"))
                st = js_oom(x);
        }
    sp_free(kv);
    sp_free(must);
    if (st)
        return st;
    EMIT("r%d ::= \"{\" ws m%d_0_0 \"}\"\n", r, r);
    return SP_OK;
}

static enum sp_status gen(struct jsgen *x, const json_t *s, int depth, const char *path, int *rule)
{
    enum sp_status st;
    if (depth > JS_MAX_DEPTH)
        return sp_err_setc(x->err, SP_ERR_LIMIT, path, "JSON schema nested deeper than %d levels", JS_MAX_DEPTH);
    int r = *rule = x->next++;
    if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0)) {
        EMIT("r%d ::= value\n", r);
        return SP_OK;
    }
    if (!json_is_object(s))
        return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: a schema must be an object (at %s)",
                           path[0] ? path : "the root");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v) {
        if (!in_list(key, js_annotations) && !in_list(key, js_supported)) {
            char what[96];
            (void)snprintf(what, sizeof what, "the keyword '%.60s'", key);
            return js_unsupported(x, what, path);
        }
    }
    const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const"), *any = json_object_get(s, "anyOf");
    if (cn) {
        EMIT("r%d ::= ", r);
        if ((st = emit_json_literal(x, cn)))
            return st;
        EMIT("\n");
        return SP_OK;
    }
    if (en) {
        if (!json_is_array(en) || json_array_size(en) == 0)
            return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: 'enum' must be a non-empty array (at %s)",
                               path);
        EMIT("r%d ::= ", r);
        for (size_t i = 0; i < json_array_size(en); i++) {
            if (i)
                EMIT(" | ");
            if ((st = emit_json_literal(x, json_array_get(en, i))))
                return st;
        }
        EMIT("\n");
        return SP_OK;
    }
    if (any) {
        if (!json_is_array(any) || json_array_size(any) == 0)
            return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: 'anyOf' must be a non-empty array (at %s)",
                               path);
        size_t n = json_array_size(any);
        int *alt = sp_calloc(n, sizeof(int));
        if (!alt)
            return js_oom(x);
        st = SP_OK;
        for (size_t i = 0; i < n && st == SP_OK; i++) {
            char p2[128];
            (void)snprintf(p2, sizeof p2, "%.100s/anyOf/%zu", path, i);
            st = gen(x, json_array_get(any, i), depth + 1, p2, &alt[i]);
        }
        for (size_t i = 0; i < n && st == SP_OK; i++)
            if (sp_buf_printf(x->out, i ? " | r%d" : "r%d ::= r%d", i ? alt[i] : r, alt[i]))
                st = js_oom(x);
        sp_free(alt);
        if (st)
            return st;
        EMIT("\n");
        return SP_OK;
    }
    const json_t *ty = json_object_get(s, "type");
    size_t nt = json_is_array(ty) ? json_array_size(ty) : 1;
    if (!ty)
        return js_unsupported(x, "a schema without 'type', 'enum', 'const' or 'anyOf' that has other keywords", path);
    if (nt == 0)
        return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: 'type' is an empty array (at %s)", path);
    int alts[8];
    if (nt > SP_ARRAY_LEN(alts))
        return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: too many types (at %s)", path);
    for (size_t i = 0; i < nt; i++) {
        const char *t = json_string_value(json_is_array(ty) ? json_array_get(ty, i) : ty);
        if (!t)
            return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: 'type' must be a string (at %s)", path);
        int tr = nt == 1 ? r : x->next++;
        alts[i] = tr;
        if (strcmp(t, "string") == 0)
            st = gen_string(x, s, path, tr);
        else if (strcmp(t, "integer") == 0)
            st = gen_integer(x, s, path, tr);
        else if (strcmp(t, "number") == 0) {
            if (json_object_get(s, "minimum") || json_object_get(s, "maximum") ||
                json_object_get(s, "exclusiveMinimum") || json_object_get(s, "exclusiveMaximum"))
                return js_unsupported(x, "a range on 'number' (ranges work on 'integer')", path);
            st = sp_buf_printf(x->out, "r%d ::= number\n", tr) ? js_oom(x) : SP_OK;
        } else if (strcmp(t, "boolean") == 0)
            st = sp_buf_printf(x->out, "r%d ::= \"true\" | \"false\"\n", tr) ? js_oom(x) : SP_OK;
        else if (strcmp(t, "null") == 0)
            st = sp_buf_printf(x->out, "r%d ::= \"null\"\n", tr) ? js_oom(x) : SP_OK;
        else if (strcmp(t, "array") == 0)
            st = gen_array(x, s, depth, path, tr);
        else if (strcmp(t, "object") == 0)
            st = gen_object(x, s, depth, path, tr);
        else
            return sp_err_setc(x->err, SP_ERR_INVALID, path, "JSON schema: unknown type '%.40s' (at %s)", t, path);
        if (st)
            return st;
    }
    if (nt > 1) {
        EMIT("r%d ::= r%d", r, alts[0]);
        for (size_t i = 1; i < nt; i++)
            EMIT(" | r%d", alts[i]);
        EMIT("\n");
    }
    return SP_OK;
}

const char *grammar_json_primitives_gbnf(void) { return strchr(json_object_gbnf, '\n') + 1; }

enum sp_status json_schema_gbnf_rules(const char *schema, size_t len, struct sp_buf *out, int *next, int *root,
                                      struct sp_err *err)
{
    *root = 0;
    json_error_t jerr;
    json_t *js = json_loadb(schema, len, JSON_DECODE_ANY, &jerr);
    if (!js)
        return sp_err_set(err, SP_ERR_INVALID, "JSON schema is not valid JSON: %s", jerr.text);
    struct jsgen x;
    memset(&x, 0, sizeof(x));
    size_t old_limit = out->limit;
    if (!out->limit || out->limit > GRAMMAR_MAX_TEXT - 1)
        out->limit = GRAMMAR_MAX_TEXT - 1;
    x.out = out;
    x.err = err;
    x.next = *next > 0 ? *next : 1;
    enum sp_status st = gen(&x, js, 0, "", root);
    json_decref(js);
    out->limit = old_limit;
    *next = x.next;
    return st;
}

enum sp_status json_schema_gbnf(const char *schema, size_t len, char **out, struct sp_err *err)
{
    *out = NULL;
    struct sp_buf b = {0};
    b.limit = GRAMMAR_MAX_TEXT - 1;
    int next = 1, root = 0;
    enum sp_status st = SP_OK;
    /* root, the primitives, then the schema's rules (r1 first) */
    if (sp_buf_appends(&b, "root ::= r1\n") || sp_buf_appends(&b, grammar_json_primitives_gbnf()))
        st = b.len >= GRAMMAR_MAX_TEXT - 1 ? sp_err_set(err, SP_ERR_LIMIT, "the schema's grammar would pass %u bytes",
                                                        GRAMMAR_MAX_TEXT)
                                           : sp_err_set(err, SP_ERR_NOMEM, "out of memory converting a JSON schema");
    if (st == SP_OK)
        st = json_schema_gbnf_rules(schema, len, &b, &next, &root, err);
    if (st != SP_OK) {
        sp_buf_free(&b);
        return st;
    }
    *out = sp_buf_take(&b);
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory converting a JSON schema");
}
