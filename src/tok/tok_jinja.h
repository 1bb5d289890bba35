/* tok_jinja.h - internals of the Jinja2-subset chat-template interpreter
 * shared by tok_jinja_*.c (not a public header: only src/tok includes it).
 *
 * Pipeline: tok_jinja_lex.c turns the source into tokens (whitespace control
 * applied as Jinja2 does with trim_blocks + lstrip_blocks, the environment
 * Hugging Face uses for chat templates), tok_jinja_parse.c builds an AST in
 * the template's arena, tok_jinja_eval.c walks it with values from
 * tok_jinja_val.c and the filters / tests / methods of tok_jinja_lib.c.
 *
 * Values are immutable (as in Jinja2's ImmutableSandboxedEnvironment) except
 * namespace() objects; they live in a per-render arena with a byte cap, so a
 * render frees everything at once. Strings carry "taint" ranges: bytes that
 * came from the request (message contents, tools) rather than from the
 * template; the rendered prompt reports them so the tokenizer never turns
 * them into control tokens. */
#ifndef SPOKE_TOK_JINJA_H
#define SPOKE_TOK_JINJA_H

#include "tok/tok_internal.h"

/* ---- arena */
struct ja_chunk;
struct jarena {
    struct ja_chunk *head;
    size_t used;  /* bytes handed out + chunk overhead */
    size_t cap;   /* refuse allocations past this many bytes */
};
void *ja_alloc(struct jarena *a, size_t n); /* 16-byte aligned, zeroed; NULL if over cap / OOM */
void ja_free_all(struct jarena *a);

/* ---- values */
enum jv_kind { JV_UNDEF = 0, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_FUNC, JV_MACRO };

struct jrange {
    size_t off, len;
};
struct jstr {
    size_t len;            /* bytes (s is NUL-terminated) */
    size_t n_taint;        /* tainted byte ranges, sorted, disjoint */
    struct jrange *taint;
    char s[];
};
struct jv;
struct jlist {
    size_t n;
    struct jv *v;
};
struct jdict {
    size_t n, cap;
    struct jstr **k;
    struct jv *v;
    bool ns; /* a namespace(): attribute assignment allowed */
};
struct jnode;
struct jv {
    uint8_t kind;
    int32_t fn; /* JV_FUNC: builtin id */
    union {
        bool b;
        int64_t i;  /* JV_INT; JV_FUNC: bound datum (loop index for loop.cycle) */
        double f;
        struct jstr *s;
        struct jlist *l;
        struct jdict *d;
        const struct jnode *mac;
    };
};

/* builtin callables */
enum { JF_RANGE = 1, JF_NAMESPACE, JF_RAISE, JF_STRFTIME, JF_DICT, JF_CYCLE };

/* string builder with taint */
struct jsb {
    struct sp_buf b;
    struct jrange *r;
    size_t nr, cap;
};
int jsb_add(struct jsb *sb, const char *s, size_t n, bool tainted); /* 0 or SP_ERR_* */
int jsb_add_str(struct jsb *sb, const struct jstr *s);               /* keeps its taint */
void jsb_free(struct jsb *sb);

/* ---- AST */
enum jn_kind {
    N_SEQ = 1, N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_BREAK, N_CONTINUE, N_CALLBLOCK, N_FILTERBLOCK,
    E_LIT, E_NAME, E_ATTR, E_INDEX, E_SLICE, E_CALL, E_FILTER, E_TEST, E_NEG, E_POS, E_NOT, E_BIN, E_AND, E_OR,
    E_COND, E_LIST, E_DICT, E_TUPLE
};
/* binary operators (E_BIN op) */
enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FDIV, OP_MOD, OP_POW, OP_CAT, OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE,
       OP_GE, OP_IN, OP_NOTIN };

struct jnode {
    uint16_t kind, op;
    uint32_t line, col;
    const char *name;    /* E_NAME/E_ATTR/E_FILTER/E_TEST/N_MACRO: identifier; kwarg name on call args */
    const char *kw;      /* when this node is a call argument: keyword name, else NULL */
    struct jnode *a, *b, *c;    /* operands / condition / target / value */
    struct jnode **kids; /* args, list items, dict k,v pairs, macro params, N_SEQ statements */
    size_t n_kids;
    struct jnode *body, *alt;   /* statement bodies (N_IF else branch, N_FOR else) */
    struct jv lit;       /* E_LIT */
    bool negate;         /* E_TEST: "is not" */
};

/* ---- lexer */
enum jt_kind { JT_EOF = 0, JT_TEXT, JT_VAR_BEGIN, JT_VAR_END, JT_BLOCK_BEGIN, JT_BLOCK_END, JT_NAME, JT_STRING,
               JT_INT, JT_FLOAT, JT_OP };
struct jtok {
    uint8_t kind;
    uint32_t line, col;
    const char *s; /* text, name, decoded string (NUL-terminated, in the arena) */
    size_t len;
    int64_t i;
    double f;
    char op[3];    /* JT_OP: "(", "==", "//", "**"... */
};
struct jtoks {
    struct jtok *v;
    size_t n, cap;
};

#define JINJA_MAX_DEPTH 128       /* expression / statement nesting in the parser */
#define JINJA_MAX_CALL_DEPTH 48   /* macro calls in progress */
#define JINJA_MAX_STEPS 2000000u  /* evaluation steps per render */
#define JINJA_MAX_RANGE 100000    /* longest range() (as Jinja2's sandbox) */

enum sp_status jinja_lex(const char *src, size_t len, struct jarena *ar, struct jtoks *out,
                         struct sp_err *err) SP_MUST_USE;
/* parser state and helpers shared by tok_jinja_parse.c and tok_jinja_stmt.c */
struct jps {
    const struct jtoks *t;
    size_t p;
    struct jarena *ar;
    struct sp_err *err;
    int depth;
    bool failed;
};
const struct jtok *jp_cur(struct jps *p);
const struct jtok *jp_peek(struct jps *p, size_t k);
struct jnode *jp_perr(struct jps *p, const char *msg); /* records the first error; returns NULL */
struct jnode *jp_nn(struct jps *p, int kind);
struct jnode *jp_nomem(struct jps *p);              /* records SP_ERR_NOMEM; returns NULL */         /* new node at the cursor's position */
bool jp_is_op(const struct jtok *t, const char *op);
bool jp_is_name(const struct jtok *t, const char *s);
bool jp_accept_op(struct jps *p, const char *op);
bool jp_accept_name(struct jps *p, const char *s);
bool jp_expect_op(struct jps *p, const char *op);
bool jp_kid_add(struct jps *p, struct jnode *parent, struct jnode *k, size_t *cap);
struct jnode *jp_expr(struct jps *p);
struct jnode *jp_or_expr(struct jps *p);
struct jnode *jp_primary(struct jps *p);
struct jnode *jp_postfix(struct jps *p, struct jnode *n);
struct jnode *jp_target_list(struct jps *p, bool names_only);
bool jp_call_args(struct jps *p, struct jnode *call); /* "(a, k=v)" into call->kids */
enum sp_status jinja_parse(const struct jtoks *toks, struct jarena *ar, struct jnode **root,
                           struct sp_err *err) SP_MUST_USE;

/* ---- values (tok_jinja_val.c) */
struct jctx;
struct jstr *jv_newstr(struct jarena *a, const char *s, size_t n, bool tainted);
struct jstr *jv_substr(struct jarena *a, const struct jstr *s, size_t off, size_t n); /* keeps taint */
struct jstr *jv_concat(struct jarena *a, const struct jstr *x, const struct jstr *y);
struct jstr *jv_sb_take(struct jarena *a, struct jsb *sb); /* builder -> string (builder reset) */
bool jv_truthy(const struct jv *v);
bool jv_equal(const struct jv *x, const struct jv *y);
const char *jv_kind_name(const struct jv *v);
/* Python str(v) appended to sb (repr for items inside lists/dicts). */
int jv_to_sb(struct jsb *sb, const struct jv *v, bool repr);
/* Python json.dumps(v, ensure_ascii=False, indent, sort_keys); indent < 0 = none. 0 or SP_ERR_* */
int jv_tojson(struct sp_buf *b, const struct jv *v, int indent, bool sort_keys, int depth);
struct jv *jv_dict_get(const struct jdict *d, const char *k, size_t n);
int jv_dict_set(struct jarena *a, struct jdict *d, struct jstr *k, struct jv v); /* 0 or -1 */
/* JSON text (jansson) -> value; strings under a key listed in tainted_keys at the top
 * level are tainted (every string when tainted_keys is NULL). */
enum sp_status jv_from_json(struct jarena *a, const char *json, size_t len, const char *const *tainted_keys,
                            struct jv *out, struct sp_err *err) SP_MUST_USE;
size_t jv_utf8_len(const char *s, size_t n);                   /* code points */
size_t jv_utf8_off(const char *s, size_t n, int64_t cp_index); /* byte offset of code point i (clamped) */

/* ---- evaluation (tok_jinja_eval.c) and the library (tok_jinja_lib.c) */
struct jframe {
    struct jframe *parent;
    struct jdict vars;
};
enum { FLOW_NONE = 0, FLOW_BREAK, FLOW_CONTINUE };
struct jctx {
    struct jarena *ar;
    struct jsb *out;     /* where output goes now */
    size_t out_cap;      /* byte cap of the rendered output */
    struct jframe *top, *root;
    uint64_t steps;
    int call_depth;
    struct sp_err *err;
    enum sp_status st;   /* first error */
};
/* set the render error at node n (returns its status) */
enum sp_status jx_fail(struct jctx *c, const struct jnode *n, enum sp_status st, const char *fmt, ...) SP_PRINTF(4, 5);
enum sp_status jx_nomem(struct jctx *c, const struct jnode *n);
/* count units of work against the step budget (quadratic filters) */
enum sp_status jx_charge(struct jctx *c, const struct jnode *n, uint64_t units);
/* arguments of a call (positional then keyword) after evaluation */
struct jargs {
    size_t n;
    struct jv v[12];
    const char *kw[12]; /* NULL for positional */
};
/* argument i by position or name (JV_UNDEF if missing) */
struct jv jx_arg(const struct jargs *a, size_t pos, const char *name);
enum sp_status jx_filter(struct jctx *c, const struct jnode *n, const char *name, struct jv in,
                         const struct jargs *args, struct jv *out);
enum sp_status jx_test(struct jctx *c, const struct jnode *n, const char *name, struct jv in,
                       const struct jargs *args, bool *out);
/* method call obj.name(args) for strings, dicts, lists; *handled false if obj has no such method */
enum sp_status jx_method(struct jctx *c, const struct jnode *n, struct jv obj, const char *name,
                         const struct jargs *args, struct jv *out, bool *handled);
/* eval.c: expressions, names, output; exec.c: statements */
enum sp_status jx_eval(struct jctx *c, const struct jnode *n, struct jv *out);
enum sp_status jx_exec(struct jctx *c, const struct jnode *n, int *flow);
enum sp_status jx_step(struct jctx *c, const struct jnode *n);
struct jv *jx_lookup(struct jctx *c, const char *name);
enum sp_status jx_assign(struct jctx *c, const struct jnode *n, const char *name, struct jv v);
enum sp_status jx_emit(struct jctx *c, const struct jnode *n, const struct jv *v);
/* call macro m; caller_body (or NULL) becomes caller() inside it */
enum sp_status jx_call_macro(struct jctx *c, const struct jnode *n, const struct jnode *m, const struct jargs *args,
                             const struct jnode *caller_body, struct jv *out);
/* builtin functions and macros (eval.c) */
enum sp_status jx_call_value(struct jctx *c, const struct jnode *n, struct jv fn, const struct jargs *args,
                             struct jv *out);
/* shared helpers of tok_jinja_lib.c / tok_jinja_filt.c */
bool jl_has_taint(const struct jv *v, int depth);
enum sp_status jl_mkstr(struct jctx *c, const struct jnode *n, const char *s, size_t len, bool taint,
                        struct jv *out);
enum sp_status jl_take(struct jctx *c, const struct jnode *n, struct jsb *sb, int rc, struct jv *out);
enum sp_status jl_to_str(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out);
struct jlist *jl_new_list(struct jctx *c, size_t cap);
struct jv jl_list_v(struct jlist *l);
enum sp_status jl_strip(struct jctx *c, const struct jnode *n, const struct jstr *s, const struct jstr *chars,
                        int which, struct jv *out);
enum sp_status jl_split(struct jctx *c, const struct jnode *n, const struct jstr *s, struct jv sep,
                        int64_t maxsplit, struct jv *out);
enum sp_status jl_replace(struct jctx *c, const struct jnode *n, const struct jstr *s, struct jv a, struct jv b,
                          int64_t count, struct jv *out);
enum sp_status jl_casemap(struct jctx *c, const struct jnode *n, const struct jstr *s, int mode, struct jv *out);
bool jl_str_has(const struct jstr *s, const struct jv *p, bool at_end);
int64_t jl_int_arg(struct jv v, int64_t dflt);
int jl_vcmp(const struct jv *a, const struct jv *b, bool *ok);
struct jv jl_attr_path(struct jv v, const struct jstr *path);
static inline struct jv jv_str(struct jstr *s) { struct jv v = {.kind = JV_STR}; v.s = s; return v; }
static inline struct jv jv_int(int64_t i) { struct jv v = {.kind = JV_INT}; v.i = i; return v; }
static inline struct jv jv_bool(bool b) { struct jv v = {.kind = JV_BOOL}; v.b = b; return v; }
static inline struct jv jv_float(double f) { struct jv v = {.kind = JV_FLOAT}; v.f = f; return v; }
static inline struct jv jv_none(void) { struct jv v = {.kind = JV_NONE}; return v; }
static inline struct jv jv_undef(void) { struct jv v = {.kind = JV_UNDEF}; return v; }

struct tok_tmpl {
    struct jarena ar;   /* AST, token texts */
    struct jnode *root;
    char *source_name;  /* for messages */
};

#endif
