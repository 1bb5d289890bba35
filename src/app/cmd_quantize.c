/* cmd_quantize.c - `spoke quantize IN.gguf OUT.gguf TYPE [--threads N] [--pure]
 *   [--output-tensor-type T] [--token-embedding-type T] [--dry-run]`.
 *
 * Converts every 2-D+ weight matrix of a GGUF model to TYPE with the kernels'
 * reference quantizers (kern_ops(type)->from_float; sources of any supported
 * type are dequantized first with to_float), copies the other tensors (norm
 * vectors, anything 1-D) unchanged, copies all metadata and sets
 * general.file_type and general.quantization_version. The output is written
 * atomically by gg_writer, one tensor at a time, each tensor's rows split
 * across threads.
 *
 * Type choice per tensor follows llama.cpp (llama_tensor_get_type):
 * - output.weight (or token_embd.weight when the model has no output.weight)
 *   gets Q6_K, or Q8_0 if its rows are not a multiple of the default type's
 *   block; Q8_0 files keep Q8_0 there; F16/BF16 files convert everything;
 * - Q4_K_M / Q5_K_M: attn_v.weight (or a fused attn_qkv.weight) and ffn_down
 *   of layer i get Q6_K when i < n/8, i >= 7n/8 or (i - n/8) % 3 == 2
 *   (counted in file order);
 * - IQ4_NL / IQ4_XS: attn_v.weight gets Q5_K when n_head / n_head_kv >= 4,
 *   ffn_down of layer i < n/8 gets Q5_K;
 * - fallbacks when a row is not a multiple of 256: Q4_K -> Q5_0,
 *   Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K/IQ4_XS -> IQ4_NL; then F16 if the
 *   row is not a multiple of 32 either.
 * Plain Q2_K..Q6_K use that type for every matrix (plus the output rule);
 * --pure disables all rules except the fallbacks; --output-tensor-type and
 * --token-embedding-type force those two tensors' types (as llama-quantize);
 * --dry-run prints the type chosen for each tensor and writes nothing. */
#include "app/app.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum mix { MIX_PLAIN, MIX_Q4_K_M, MIX_Q5_K_M, MIX_IQ4 };

struct qmode {
    const char *name;
    enum gg_type type; /* default type */
    uint32_t ftype;    /* llama_ftype written to general.file_type */
    enum mix mix;
};

static const struct qmode modes[] = {
    {"F16", GG_TYPE_F16, 1, MIX_PLAIN},      {"BF16", GG_TYPE_BF16, 32, MIX_PLAIN},
    {"Q8_0", GG_TYPE_Q8_0, 7, MIX_PLAIN},    {"Q4_0", GG_TYPE_Q4_0, 2, MIX_PLAIN},
    {"Q4_1", GG_TYPE_Q4_1, 3, MIX_PLAIN},    {"Q5_0", GG_TYPE_Q5_0, 8, MIX_PLAIN},
    {"Q5_1", GG_TYPE_Q5_1, 9, MIX_PLAIN},    {"Q2_K", GG_TYPE_Q2_K, 10, MIX_PLAIN},
    {"Q3_K", GG_TYPE_Q3_K, 11, MIX_PLAIN},   {"Q4_K", GG_TYPE_Q4_K, 14, MIX_PLAIN},
    {"Q5_K", GG_TYPE_Q5_K, 16, MIX_PLAIN},   {"Q6_K", GG_TYPE_Q6_K, 18, MIX_PLAIN},
    {"Q4_K_M", GG_TYPE_Q4_K, 15, MIX_Q4_K_M}, {"Q5_K_M", GG_TYPE_Q5_K, 17, MIX_Q5_K_M},
    {"IQ4_NL", GG_TYPE_IQ4_NL, 25, MIX_IQ4}, {"IQ4_XS", GG_TYPE_IQ4_XS, 30, MIX_IQ4},
};

static bool is_quantized(enum gg_type t)
{
    return t != GG_TYPE_F32 && t != GG_TYPE_F16 && t != GG_TYPE_BF16;
}

static uint32_t blck(enum gg_type t)
{
    struct gg_type_info ti;
    return gg_type_info(t, &ti) ? ti.blck_size : 1;
}

static bool name_has(const struct gg_str *s, const char *needle)
{
    size_t n = strlen(needle);
    if (s->len < n)
        return false;
    for (size_t i = 0; i + n <= s->len; i++)
        if (memcmp(s->ptr + i, needle, n) == 0)
            return true;
    return false;
}

static bool name_is(const struct gg_str *s, const char *name)
{
    return s->len == strlen(name) && memcmp(s->ptr, name, s->len) == 0;
}

static bool name_ends(const struct gg_str *s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s->len >= n && memcmp(s->ptr + s->len - n, suffix, n) == 0;
}

/* llama.cpp's use_more_bits(i_layer, n_layers) */
static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

struct rules {
    const struct qmode *mode;
    bool pure;
    int output_type;  /* forced type of output.weight, or -1 */
    int embed_type;   /* forced type of token_embd.weight, or -1 */
    bool has_output;
    int n_attn_v, i_attn_v;
    int n_ffn_down, i_ffn_down;
    int n_gqa; /* n_head / n_head_kv (0 when unknown) */
};

static bool is_attn_v(const struct gg_str *n)
{
    return name_has(n, "attn_v.weight") || name_has(n, "attn_qkv.weight");
}

/* Whether a tensor is quantized at all (llama.cpp: names ending in "weight",
 * 2+ dims, not a norm or a few special tensors). */
static bool should_quantize(const struct gg_tensor *t)
{
    const struct gg_str *n = &t->name;
    if (!name_ends(n, "weight") || t->n_dims < 2)
        return false;
    return !name_has(n, "_norm.weight") && !name_has(n, "ffn_gate_inp.weight") && !name_has(n, "pos_embd") &&
           !name_has(n, "token_types") && !name_has(n, "ssm_conv1d") && !name_has(n, "rope_freqs");
}

static enum gg_type choose_type(struct rules *r, const struct gg_tensor *t)
{
    const struct qmode *m = r->mode;
    enum gg_type nt = m->type;
    const struct gg_str *n = &t->name;
    if (!r->pure && is_quantized(m->type)) {
        if (name_is(n, "output.weight") || (!r->has_output && name_is(n, "token_embd.weight"))) {
            if (t->ne[0] % blck(nt) != 0)
                nt = GG_TYPE_Q8_0;
            else if (nt != GG_TYPE_Q8_0)
                nt = GG_TYPE_Q6_K;
        } else if (is_attn_v(n)) {
            if (m->mix == MIX_IQ4 && name_has(n, "attn_v.weight") && r->n_gqa >= 4)
                nt = GG_TYPE_Q5_K;
            else if ((m->mix == MIX_Q4_K_M || m->mix == MIX_Q5_K_M) && use_more_bits(r->i_attn_v, r->n_attn_v))
                nt = GG_TYPE_Q6_K;
            r->i_attn_v++;
        } else if (name_has(n, "ffn_down")) {
            if ((m->mix == MIX_Q4_K_M || m->mix == MIX_Q5_K_M) && use_more_bits(r->i_ffn_down, r->n_ffn_down))
                nt = GG_TYPE_Q6_K;
            else if (m->mix == MIX_IQ4 && r->i_ffn_down < r->n_ffn_down / 8)
                nt = GG_TYPE_Q5_K;
            r->i_ffn_down++;
        }
    }
    if (r->output_type >= 0 && name_is(n, "output.weight"))
        nt = (enum gg_type)r->output_type;
    if (r->embed_type >= 0 && name_is(n, "token_embd.weight"))
        nt = (enum gg_type)r->embed_type;
    if (t->ne[0] % blck(nt) != 0) {
        switch (nt) {
        case GG_TYPE_Q2_K: case GG_TYPE_Q3_K: case GG_TYPE_IQ4_XS: nt = GG_TYPE_IQ4_NL; break;
        case GG_TYPE_Q4_K: nt = GG_TYPE_Q5_0; break;
        case GG_TYPE_Q5_K: nt = GG_TYPE_Q5_1; break;
        case GG_TYPE_Q6_K: nt = GG_TYPE_Q8_0; break;
        default: nt = GG_TYPE_F16; break;
        }
        if (t->ne[0] % blck(nt) != 0)
            nt = GG_TYPE_F16;
    }
    return nt;
}

/* ---- conversion of one tensor, rows split across threads */

struct plan {
    const struct gg_tensor *src;
    enum gg_type type;
};

struct qctx {
    const struct plan *plans;
    int n_threads;
    size_t done;
    size_t total;
    bool progress; /* progress line on a terminal */
};

struct qjob {
    const struct gg_tensor *src;
    const struct kern_type_ops *in, *out;
    uint8_t *dst;
    int64_t r0, r1;
    size_t in_row, out_row;
    float *scratch; /* ne[0] floats */
};

static void *qjob_run(void *arg)
{
    struct qjob *j = arg;
    int64_t ne0 = j->src->ne[0];
    for (int64_t r = j->r0; r < j->r1; r++) {
        const uint8_t *srow = (const uint8_t *)j->src->data + (size_t)r * j->in_row;
        const float *x;
        if (j->src->type == GG_TYPE_F32 && ((uintptr_t)srow % sizeof(float)) == 0) {
            x = (const float *)(const void *)srow;
        } else if (j->src->type == GG_TYPE_F32) {
            memcpy(j->scratch, srow, (size_t)ne0 * sizeof(float));
            x = j->scratch;
        } else {
            j->in->to_float(srow, j->scratch, ne0);
            x = j->scratch;
        }
        j->out->from_float(x, j->dst + (size_t)r * j->out_row, ne0);
    }
    return NULL;
}

static enum sp_status fill_tensor(void *vctx, size_t i, void *dst, size_t nbytes, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct qctx *q = vctx;
    const struct plan *p = &q->plans[i];
    const struct gg_tensor *t = p->src;
    const struct kern_type_ops *in = kern_ops(t->type), *out = kern_ops(p->type);
    if (!out || !out->from_float)
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, gg_type_name(p->type), "no quantizer for %s",
                           gg_type_name(p->type));
    if (t->type != GG_TYPE_F32 && (!in || !in->to_float))
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, gg_type_name(t->type), "cannot dequantize %s",
                           gg_type_name(t->type));
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    size_t in_row = 0, out_row = 0;
    if (!gg_row_size(t->type, t->ne[0], &in_row) || !gg_row_size(p->type, t->ne[0], &out_row) ||
        out_row * (size_t)rows != nbytes)
        return sp_err_set(err, SP_ERR_INTERNAL, "row size mismatch");
    int nt = q->n_threads;
    if (rows < nt * 4)
        nt = 1;
    struct qjob jobs[64];
    pthread_t tids[64];
    int started = 0;
    for (int k = 0; k < nt; k++) {
        jobs[k] = (struct qjob){t, in, out, dst, rows * k / nt, rows * (k + 1) / nt, in_row, out_row, NULL};
        jobs[k].scratch = sp_malloc((size_t)t->ne[0] * sizeof(float));
        if (!jobs[k].scratch) {
            for (int m = 0; m < k; m++)
                sp_free(jobs[m].scratch);
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        }
    }
    for (int k = 1; k < nt; k++) {
        if (pthread_create(&tids[k], NULL, qjob_run, &jobs[k]) != 0)
            break;
        started = k;
    }
    /* rows of threads that failed to start run here */
    for (int k = started + 1; k < nt; k++)
        qjob_run(&jobs[k]);
    qjob_run(&jobs[0]);
    for (int k = 1; k <= started; k++)
        pthread_join(tids[k], NULL);
    for (int k = 0; k < nt; k++)
        sp_free(jobs[k].scratch);
    q->done++;
    if (q->progress)
        fprintf(stderr, "\r[%4zu/%4zu] %-32.*s %-5s -> %-5s", q->done, q->total,
            (int)SP_MIN(t->name.len, 32u), t->name.ptr, gg_type_name(t->type), gg_type_name(p->type));
    return result;
}

static void usage(void)
{
    fprintf(stderr, "usage: spoke quantize IN.gguf OUT.gguf TYPE [--threads N] [--pure] [--dry-run]\n"
                    "         [--output-tensor-type T] [--token-embedding-type T]\n"
                    "  TYPE: F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M Q5_K_M\n"
                    "        IQ4_NL IQ4_XS\n");
}

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0, n_threads = 0;
    bool pure = false, dry_run = false;
    int forced[2] = {-1, -1}; /* output, token_embd */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pure") == 0) {
            pure = true;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = true;
        } else if (strcmp(argv[i], "--output-tensor-type") == 0 || strcmp(argv[i], "--token-embedding-type") == 0) {
            enum gg_type t;
            const struct kern_type_ops *ops;
            if (i + 1 >= argc || !gg_type_parse(argv[i + 1], &t) || !(ops = kern_ops(t)) || !ops->from_float) {
                fprintf(stderr, "spoke: quantize: %s needs a tensor type (F32 F16 BF16 Q4_0 ... Q6_K IQ4_NL IQ4_XS)\n", argv[i]);
                return APP_EXIT_USAGE;
            }
            forced[argv[i][2] == 'o' ? 0 : 1] = (int)t;
            i++;
        } else if (strcmp(argv[i], "--threads") == 0 || strcmp(argv[i], "-t") == 0) {
            int64_t v;
            if (i + 1 >= argc || !sp_parse_i64(argv[i + 1], 1, 64, &v)) {
                fprintf(stderr, "spoke: quantize: --threads needs a number 1..64\n");
                return APP_EXIT_USAGE;
            }
            n_threads = (int)v;
            i++;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            return APP_EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "spoke: quantize: unknown option %s\n", argv[i]);
            usage();
            return APP_EXIT_USAGE;
        } else if (n_pos < 3) {
            pos[n_pos++] = argv[i];
        } else {
            usage();
            return APP_EXIT_USAGE;
        }
    }
    if (n_pos != 3) {
        usage();
        return APP_EXIT_USAGE;
    }
    const struct qmode *mode = NULL;
    for (size_t i = 0; i < SP_ARRAY_LEN(modes); i++)
        if (strcasecmp(modes[i].name, pos[2]) == 0)
            mode = &modes[i];
    if (!mode) {
        fprintf(stderr, "spoke: quantize: unknown type '%s'\n", pos[2]);
        usage();
        return APP_EXIT_USAGE;
    }
    if (n_threads == 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = nc < 1 ? 1 : nc > 64 ? 64 : (int)nc;
    }

    struct sp_err err;
    sp_err_clear(&err);
    enum sp_status result;
    struct gg_file *in = NULL;
    struct gg_writer *w = NULL;
    struct plan *plans = NULL;
    char *key = NULL;
    int exit_code = APP_EXIT_FAIL;
    double t0 = sp_now_ms();

    if ((result = gg_open(pos[0], &in, &err)) != SP_OK)
        goto fail;
    size_t nt = gg_tensor_count(in);
    struct rules rules = {.mode = mode, .pure = pure, .output_type = forced[0], .embed_type = forced[1]};
    uint32_t n_layer = 0;
    for (size_t i = 0; i < nt; i++) {
        const struct gg_tensor *t = gg_tensor_at(in, i);
        rules.has_output |= name_is(&t->name, "output.weight");
        rules.n_attn_v += is_attn_v(&t->name);
        rules.n_ffn_down += name_has(&t->name, "ffn_down");
    }
    struct gg_str arch;
    if (gg_get_str(in, "general.architecture", &arch) && arch.len < 64) {
        char k[96];
        snprintf(k, sizeof(k), "%.*s.block_count", (int)arch.len, arch.ptr);
        if (gg_get_u32(in, k, &n_layer) && n_layer > 0 && n_layer < (1u << 20))
            rules.n_ffn_down = (int)n_layer;
        uint32_t n_head = 0, n_head_kv = 0;
        snprintf(k, sizeof(k), "%.*s.attention.head_count", (int)arch.len, arch.ptr);
        bool has_head = gg_get_u32(in, k, &n_head);
        snprintf(k, sizeof(k), "%.*s.attention.head_count_kv", (int)arch.len, arch.ptr);
        if (has_head && gg_get_u32(in, k, &n_head_kv) && n_head_kv > 0)
            rules.n_gqa = (int)(n_head / n_head_kv);
    }

    w = gg_writer_new();
    plans = sp_calloc(nt ? nt : 1, sizeof(*plans));
    key = sp_malloc(GG_MAX_KEY_LEN + 1);
    if (!w || !plans || !key) {
        result = sp_err_set(&err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((result = gg_writer_set_version(w, 3)) != SP_OK)
        goto fail;
    if ((result = gg_writer_copy_kv(w, in, &err)) != SP_OK)
        goto fail;
    if ((result = gg_writer_add_kv_u32(w, "general.quantization_version", 2)) != SP_OK ||
        (result = gg_writer_add_kv_u32(w, "general.file_type", mode->ftype)) != SP_OK) {
        sp_err_set(&err, result, "out of memory");
        goto fail;
    }
    int counts[GG_TYPE_COUNT] = {0};
    size_t bytes_in = 0, bytes_out = 0, n_convert = 0;
    for (size_t i = 0; i < nt; i++) {
        const struct gg_tensor *t = gg_tensor_at(in, i);
        enum gg_type type = should_quantize(t) ? choose_type(&rules, t) : t->type;
        plans[i].src = t;
        plans[i].type = type;
        memcpy(key, t->name.ptr, t->name.len);
        key[t->name.len] = '\0';
        result = gg_writer_add_tensor(w, key, type, t->n_dims, t->ne, type == t->type ? t->data : NULL);
        if (result != SP_OK) {
            sp_err_setc(&err, result, key, "cannot add tensor %s as %s", key, gg_type_name(type));
            goto fail;
        }
        if (type != t->type) {
            if (!kern_ops(type) || !kern_ops(type)->from_float ||
                (t->type != GG_TYPE_F32 && (!kern_ops(t->type) || !kern_ops(t->type)->to_float))) {
                result = sp_err_setc(&err, SP_ERR_UNSUPPORTED, key, "cannot convert %s from %s to %s", key,
                                     gg_type_name(t->type), gg_type_name(type));
                goto fail;
            }
            n_convert++;
        }
        size_t ob = 0;
        (void)gg_row_size(type, t->ne[0], &ob);
        ob *= (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
        counts[type]++;
        bytes_in += t->nbytes;
        bytes_out += ob;
        if (dry_run)
            printf("%-40s %-5s -> %-5s [%lld, %lld, %lld, %lld]\n", key, gg_type_name(t->type), gg_type_name(type),
                   (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
    }
    if (dry_run) {
        printf("dry run (%s): %zu tensors, %zu would be converted, %.2f MiB -> %.2f MiB\ntensor types:", mode->name,
               nt, n_convert, bytes_in / 1048576.0, bytes_out / 1048576.0);
        for (int t = 0; t < GG_TYPE_COUNT; t++)
            if (counts[t])
                printf(" %s x%d", gg_type_name((enum gg_type)t), counts[t]);
        printf("\n");
        exit_code = APP_EXIT_OK;
        goto fail;
    }
    struct qctx q = {.plans = plans, .n_threads = n_threads, .total = n_convert,
                     .progress = isatty(2) != 0};
    result = gg_writer_write(w, pos[1], fill_tensor, &q, &err);
    if (n_convert && q.progress)
        fprintf(stderr, "\n");
    if (result != SP_OK)
        goto fail;
    printf("quantized %s -> %s (%s): %zu tensors, %zu converted, %.2f MiB -> %.2f MiB in %.1f s\n", pos[0], pos[1],
           mode->name, nt, n_convert, bytes_in / 1048576.0, bytes_out / 1048576.0, (sp_now_ms() - t0) / 1000.0);
    printf("tensor types:");
    for (int t = 0; t < GG_TYPE_COUNT; t++)
        if (counts[t])
            printf(" %s x%d", gg_type_name((enum gg_type)t), counts[t]);
    printf("\n");
    exit_code = APP_EXIT_OK;
fail:
    if (exit_code != APP_EXIT_OK) {
        if (err.code == SP_OK)
            sp_err_set(&err, result, "quantize failed");
        exit_code = app_fail("quantize", &err);
    }
    sp_free(key);
    sp_free(plans);
    gg_writer_free(w);
    gg_close(in);
    return exit_code;
}
