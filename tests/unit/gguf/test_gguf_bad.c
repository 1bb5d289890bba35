/* test_gguf_bad.c - hand-made malformed GGUF files, generated here byte by
 * byte (no committed blobs): each must be rejected by gg_open_memory with
 * the expected status, file offset and key/tensor name, quickly, without
 * leaking. Also: every prefix of a small valid file is rejected cleanly, and
 * allocation failures at every point are reported as SP_ERR_NOMEM. */
#include "gguf/gguf.h"
#include "test.h"
#include "unit/gguf/gguf_bytes.h"

#define ANY_OFF (-2)

struct bad_case {
    const char *name;
    void (*build)(struct bb *b);
    enum sp_status code;
    long long offset; /* expected err.offset, or ANY_OFF */
    const char *ctx;  /* expected err.context ("" = none, NULL = don't check) */
};

/* a valid two-tensor body after the header; used as a control */
static void good_body(struct bb *b)
{
    bb_kv_str(b, "general.architecture", "llama");
    uint64_t ne1[1] = {32}, ne2[2] = {32, 2};
    bb_tinfo(b, "a", 1, ne1, 0, 0);
    bb_tinfo(b, "b", 2, ne2, 8, 128);
    bb_pad(b, 32);
    bb_zeros(b, 128 + 68);
}

static void b_empty(struct bb *b) { SP_UNUSED(b); }
static void b_magic(struct bb *b) { bb_raw(b, "GGUX", 4); bb_u32(b, 3); bb_u64(b, 0); bb_u64(b, 0); }
static void b_short_magic(struct bb *b) { bb_raw(b, "GG", 2); }
static void b_v1(struct bb *b) { bb_hdr(b, 1, 0, 0); }
static void b_v4(struct bb *b) { bb_hdr(b, 4, 0, 0); }
static void b_bigendian(struct bb *b) { bb_hdr(b, 0x03000000u, 0, 0); }
static void b_trunc_hdr(struct bb *b) { bb_raw(b, "GGUF", 4); bb_u32(b, 3); bb_u32(b, 0); }
static void b_trunc_nkv(struct bb *b) { bb_raw(b, "GGUF", 4); bb_u32(b, 3); bb_u64(b, 0); bb_u32(b, 0); }
static void b_too_many_tensors(struct bb *b) { bb_hdr(b, 3, (uint64_t)GG_MAX_TENSORS + 1, 0); }
static void b_too_many_kv(struct bb *b) { bb_hdr(b, 3, 0, (uint64_t)GG_MAX_KV + 1); }
static void b_kv_dont_fit(struct bb *b) { bb_hdr(b, 3, 0, 1u << 20); bb_zeros(b, 100); }
static void b_tensors_dont_fit(struct bb *b) { bb_hdr(b, 3, 1000, 0); bb_zeros(b, 100); }
static void b_huge_counts(struct bb *b) { bb_hdr(b, 3, UINT64_MAX, UINT64_MAX); }

static void b_key_too_long(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_u64(b, (uint64_t)GG_MAX_KEY_LEN + 1);
    bb_zeros(b, 70000);
}
static void b_key_past_end(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_u64(b, 100); bb_zeros(b, 20); }
static void b_key_empty(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_str(b, ""); bb_u32(b, 4); bb_u32(b, 1); }
static void b_key_dup(struct bb *b)
{
    bb_hdr(b, 3, 0, 3);
    bb_kv_u32(b, "x.one", 1);
    bb_kv_u32(b, "x.two", 2);
    bb_kv_u32(b, "x.one", 3); /* at 24 + 21 + 21 = 66 */
}
static void b_valtype_unknown(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, 13); bb_u32(b, 0); }
static void b_valtype_huge(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, 0xffffffffu); bb_u32(b, 0); }
static void b_trunc_valtype(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_str(b, "key"); bb_u8(b, 4); bb_u8(b, 0); }
static void b_str_too_long(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "s");
    bb_u32(b, 8);
    bb_u64(b, GG_MAX_STRING_LEN + 1);
}
static void b_str_past_end(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_str(b, "s"); bb_u32(b, 8); bb_u64(b, 50); bb_zeros(b, 10); }
static void b_bool_bad(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_str(b, "flag"); bb_u32(b, 7); bb_u8(b, 2); bb_zeros(b, 8); }
static void b_trunc_u64(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_str(b, "v"); bb_u32(b, 10); bb_u32(b, 0); bb_zeros(b, 1); }
static void b_arr_bad_type(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_str(b, "arr"); bb_u32(b, 9); bb_u32(b, 77); bb_u64(b, 1); }
static void b_arr_too_long(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "arr");
    bb_u32(b, 9);
    bb_u32(b, 0);
    bb_u64(b, GG_MAX_ARRAY_LEN + 1);
}
static void b_arr_past_end(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "arr");
    bb_u32(b, 9);
    bb_u32(b, 4);
    bb_u64(b, 1000);
    bb_zeros(b, 40);
}
static void b_arr_str_past_end(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "tokens");
    bb_u32(b, 9);
    bb_u32(b, 8);
    bb_u64(b, 1u << 30);
    bb_zeros(b, 40);
}
static void b_arr_elem_str_past_end(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "tokens");
    bb_u32(b, 9);
    bb_u32(b, 8);
    bb_u64(b, 3);
    bb_str(b, "ok");
    bb_u64(b, 1000);
    bb_zeros(b, 30);
}
static void b_arr_elem_str_too_long(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "tokens");
    bb_u32(b, 9);
    bb_u32(b, 8);
    bb_u64(b, 2);
    bb_u64(b, GG_MAX_STRING_LEN + 1);
    bb_zeros(b, 30);
}
static void b_arr_too_deep(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "deep");
    bb_u32(b, 9);
    for (int i = 0; i < 12; i++) {
        bb_u32(b, 9);
        bb_u64(b, 1);
    }
    bb_zeros(b, 64);
}
static void b_arr_nested_trunc(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "nest");
    bb_u32(b, 9);
    bb_u32(b, 9);
    bb_u64(b, 2);
    bb_u32(b, 4); /* inner 0: u32 x 1 */
    bb_u64(b, 1);
    bb_u32(b, 7);
    bb_u32(b, 4); /* inner 1: u32 x 100, only 1 present */
    bb_u64(b, 100);
    bb_u32(b, 7);
}
static void b_arr_bool_bad(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "bools");
    bb_u32(b, 9);
    bb_u32(b, 7);
    bb_u64(b, 3);
    bb_u8(b, 1);
    bb_u8(b, 0);
    bb_u8(b, 3);
    bb_zeros(b, 8);
}
static void b_align_type(struct bb *b)
{
    bb_hdr(b, 3, 0, 1);
    bb_str(b, "general.alignment");
    bb_u32(b, 10);
    bb_u64(b, 32);
}
static void b_align_zero(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_kv_u32(b, "general.alignment", 0); }
static void b_align_npot(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_kv_u32(b, "general.alignment", 48); }
static void b_align_huge(struct bb *b) { bb_hdr(b, 3, 0, 1); bb_kv_u32(b, "general.alignment", 1u << 31); }

/* tensor-info cases: header with one kv then tensor records */
static void t_prelude(struct bb *b, uint64_t n_tensors)
{
    bb_hdr(b, 3, n_tensors, 1);
    bb_kv_str(b, "general.architecture", "llama"); /* ends at 24 + 28 + 4 + 13 = 69 */
}
static void b_tname_empty(struct bb *b)
{
    uint64_t ne[1] = {32};
    t_prelude(b, 1);
    bb_tinfo(b, "", 1, ne, 0, 0);
    bb_zeros(b, 256);
}
static void b_tname_too_long(struct bb *b)
{
    t_prelude(b, 1);
    bb_u64(b, (uint64_t)GG_MAX_KEY_LEN + 1);
    bb_zeros(b, 70000);
}
static void b_tname_dup(struct bb *b)
{
    uint64_t ne[1] = {32};
    t_prelude(b, 2);
    bb_tinfo(b, "w", 1, ne, 0, 0);   /* 69 .. 102 */
    bb_tinfo(b, "w", 1, ne, 0, 128); /* at 102 */
    bb_pad(b, 32);
    bb_zeros(b, 256);
}
static void b_ndims0(struct bb *b)
{
    t_prelude(b, 1);
    bb_str(b, "w");
    bb_u32(b, 0);
    bb_u32(b, 0);
    bb_u64(b, 0);
    bb_zeros(b, 64);
}
static void b_ndims5(struct bb *b)
{
    uint64_t ne[5] = {1, 1, 1, 1, 1};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 5, ne, 0, 0);
    bb_zeros(b, 64);
}
static void b_ne0(struct bb *b)
{
    uint64_t ne[2] = {32, 0};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 2, ne, 0, 0);
    bb_zeros(b, 64);
}
static void b_ne_neg(struct bb *b)
{
    uint64_t ne[1] = {1ull << 63};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 1, ne, 0, 0);
    bb_zeros(b, 64);
}
static void b_nelem_overflow(struct bb *b)
{
    uint64_t ne[3] = {1ull << 32, 1ull << 32, 2};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 3, ne, 0, 0);
    bb_zeros(b, 64);
}
static void b_bytes_overflow(struct bb *b)
{
    uint64_t ne[1] = {1ull << 62};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 1, ne, 0, 0);
    bb_zeros(b, 64);
}
static void b_type_unknown(struct bb *b)
{
    uint64_t ne[1] = {32};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 1, ne, 99, 0);
    bb_zeros(b, 256);
}
static void b_type_iq(struct bb *b)
{
    uint64_t ne[1] = {256};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 1, ne, 16 /* IQ2_XXS */, 0);
    bb_zeros(b, 256);
}
static void b_row_not_block(struct bb *b)
{
    uint64_t ne[2] = {33, 2};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 2, ne, 8 /* Q8_0 */, 0);
    bb_zeros(b, 256);
}
static void b_row_not_kblock(struct bb *b)
{
    uint64_t ne[2] = {64, 2};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 2, ne, 12 /* Q4_K */, 0);
    bb_zeros(b, 512);
}
static void b_off_unaligned(struct bb *b)
{
    uint64_t ne[1] = {8};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 1, ne, 0, 4);
    bb_zeros(b, 256);
}
static void b_off_unaligned_custom(struct bb *b)
{
    uint64_t ne[1] = {8};
    bb_hdr(b, 3, 1, 1);
    bb_kv_u32(b, "general.alignment", 64);
    bb_tinfo(b, "w", 1, ne, 0, 32);
    bb_zeros(b, 256);
}
static void b_data_past_end(struct bb *b)
{
    uint64_t ne[2] = {32, 4};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 2, ne, 0, 0); /* 512 bytes */
    bb_pad(b, 32);
    bb_zeros(b, 500);
}
static void b_off_huge(struct bb *b)
{
    uint64_t ne[1] = {8};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 1, ne, 0, UINT64_MAX - 31);
    bb_pad(b, 32);
    bb_zeros(b, 64);
}
static void b_overlap(struct bb *b)
{
    uint64_t ne[1] = {32};
    t_prelude(b, 2);
    bb_tinfo(b, "first", 1, ne, 0, 0);    /* 69 .. 106: [0,128) */
    bb_tinfo(b, "second", 1, ne, 0, 96);  /* at 106: [96, 224) */
    bb_pad(b, 32);
    bb_zeros(b, 256);
}
static void b_overlap_same(struct bb *b)
{
    uint64_t ne[1] = {32};
    t_prelude(b, 2);
    bb_tinfo(b, "p", 1, ne, 0, 0);
    bb_tinfo(b, "q", 1, ne, 0, 0);
    bb_pad(b, 32);
    bb_zeros(b, 256);
}
static void b_no_data_section(struct bb *b)
{
    uint64_t ne[1] = {32};
    t_prelude(b, 1);
    bb_tinfo(b, "w", 1, ne, 0, 0); /* ends at 102; data would start at 128 */
    bb_zeros(b, 10);
}
static void b_trunc_tinfo(struct bb *b)
{
    t_prelude(b, 1);
    bb_str(b, "w");
    bb_u32(b, 1);
    bb_u64(b, 32);
    bb_u32(b, 0);
    bb_u32(b, 0); /* half of the offset */
}
static void b_trunc_dims(struct bb *b)
{
    t_prelude(b, 1);
    bb_str(b, "w");
    bb_u32(b, 4);
    bb_u64(b, 32);
    bb_u64(b, 2);
}
static void b_second_tensor_bad(struct bb *b)
{
    uint64_t ne[1] = {32}, ne2[2] = {31, 2};
    t_prelude(b, 2);
    bb_tinfo(b, "good", 1, ne, 0, 0);
    bb_tinfo(b, "bad", 2, ne2, 2 /* Q4_0 */, 128);
    bb_pad(b, 32);
    bb_zeros(b, 512);
}
static void b_kv_after_good(struct bb *b)
{
    bb_hdr(b, 3, 2, 2);
    bb_kv_str(b, "general.architecture", "llama");
    bb_str(b, "general.name");
    bb_u32(b, 8);
    bb_u64(b, 1ull << 40);
    good_body(b);
}

static const struct bad_case cases[] = {
    {"empty", b_empty, SP_ERR_FORMAT, 0, ""},
    {"bad magic", b_magic, SP_ERR_FORMAT, 0, ""},
    {"short magic", b_short_magic, SP_ERR_FORMAT, 0, ""},
    {"version 1", b_v1, SP_ERR_UNSUPPORTED, 4, ""},
    {"version 4", b_v4, SP_ERR_UNSUPPORTED, 4, ""},
    {"big-endian", b_bigendian, SP_ERR_UNSUPPORTED, 4, ""},
    {"truncated n_tensors", b_trunc_hdr, SP_ERR_FORMAT, 8, ""},
    {"truncated n_kv", b_trunc_nkv, SP_ERR_FORMAT, 16, ""},
    {"too many tensors", b_too_many_tensors, SP_ERR_FORMAT, 8, ""},
    {"too many kv", b_too_many_kv, SP_ERR_FORMAT, 16, ""},
    {"kv count beyond file", b_kv_dont_fit, SP_ERR_FORMAT, 16, ""},
    {"tensor count beyond file", b_tensors_dont_fit, SP_ERR_FORMAT, 8, ""},
    {"huge counts", b_huge_counts, SP_ERR_FORMAT, 8, ""},
    {"key too long", b_key_too_long, SP_ERR_FORMAT, 24, ""},
    {"key past end", b_key_past_end, SP_ERR_FORMAT, 24, ""},
    {"empty key", b_key_empty, SP_ERR_FORMAT, 24, ""},
    {"duplicate key", b_key_dup, SP_ERR_FORMAT, 66, "x.one"},
    {"unknown value type", b_valtype_unknown, SP_ERR_FORMAT, 33, "k"},
    {"huge value type", b_valtype_huge, SP_ERR_FORMAT, 33, "k"},
    {"truncated value type", b_trunc_valtype, SP_ERR_FORMAT, 35, "key"},
    {"string too long", b_str_too_long, SP_ERR_FORMAT, 37, "s"},
    {"string past end", b_str_past_end, SP_ERR_FORMAT, 37, "s"},
    {"bool not 0/1", b_bool_bad, SP_ERR_FORMAT, 40, "flag"},
    {"truncated u64", b_trunc_u64, SP_ERR_FORMAT, 37, "v"},
    {"array elem type", b_arr_bad_type, SP_ERR_FORMAT, 39, "arr"},
    {"array too long", b_arr_too_long, SP_ERR_FORMAT, 43, "arr"},
    {"array past end", b_arr_past_end, SP_ERR_FORMAT, 51, "arr"},
    {"string array past end", b_arr_str_past_end, SP_ERR_FORMAT, 54, "tokens"},
    {"array string past end", b_arr_elem_str_past_end, SP_ERR_FORMAT, 64, "tokens"},
    {"array string too long", b_arr_elem_str_too_long, SP_ERR_FORMAT, 54, "tokens"},
    {"arrays too deep", b_arr_too_deep, SP_ERR_FORMAT, ANY_OFF, "deep"},
    {"nested array truncated", b_arr_nested_trunc, SP_ERR_FORMAT, ANY_OFF, "nest"},
    {"bool array not 0/1", b_arr_bool_bad, SP_ERR_FORMAT, 55, "bools"},
    {"alignment type", b_align_type, SP_ERR_FORMAT, 24, "general.alignment"},
    {"alignment zero", b_align_zero, SP_ERR_FORMAT, 53, "general.alignment"},
    {"alignment not pow2", b_align_npot, SP_ERR_FORMAT, 53, "general.alignment"},
    {"alignment huge", b_align_huge, SP_ERR_FORMAT, 53, "general.alignment"},
    {"empty tensor name", b_tname_empty, SP_ERR_FORMAT, 69, ""},
    {"tensor name too long", b_tname_too_long, SP_ERR_FORMAT, 69, ""},
    {"duplicate tensor", b_tname_dup, SP_ERR_FORMAT, 102, "w"},
    {"n_dims 0", b_ndims0, SP_ERR_FORMAT, 78, "w"},
    {"n_dims 5", b_ndims5, SP_ERR_FORMAT, 78, "w"},
    {"dim 0", b_ne0, SP_ERR_FORMAT, 90, "w"},
    {"dim >= 2^63", b_ne_neg, SP_ERR_FORMAT, 82, "w"},
    {"element count overflow", b_nelem_overflow, SP_ERR_FORMAT, 90, "w"},
    {"byte size overflow", b_bytes_overflow, SP_ERR_FORMAT, 90, "w"},
    {"unknown tensor type", b_type_unknown, SP_ERR_UNSUPPORTED, 90, "w"},
    {"unsupported IQ type", b_type_iq, SP_ERR_UNSUPPORTED, 90, "w"},
    {"row not multiple of 32", b_row_not_block, SP_ERR_FORMAT, 98, "w"},
    {"row not multiple of 256", b_row_not_kblock, SP_ERR_FORMAT, 98, "w"},
    {"offset unaligned", b_off_unaligned, SP_ERR_FORMAT, 94, "w"},
    {"offset unaligned (64)", b_off_unaligned_custom, SP_ERR_FORMAT, 82, "w"},
    {"data past end", b_data_past_end, SP_ERR_FORMAT, 69, "w"},
    {"offset huge", b_off_huge, SP_ERR_FORMAT, 69, "w"},
    {"overlap", b_overlap, SP_ERR_FORMAT, 106, "second"},
    {"overlap same offset", b_overlap_same, SP_ERR_FORMAT, ANY_OFF, NULL},
    {"no data section", b_no_data_section, SP_ERR_FORMAT, ANY_OFF, ""},
    {"truncated tensor info", b_trunc_tinfo, SP_ERR_FORMAT, 94, "w"},
    {"truncated dims", b_trunc_dims, SP_ERR_FORMAT, 98, "w"},
    {"second tensor bad", b_second_tensor_bad, SP_ERR_FORMAT, 136, "bad"},
    {"huge string after a good key", b_kv_after_good, SP_ERR_FORMAT, 93, "general.name"},
};

TEST(bad_files_rejected)
{
    size_t base_mem = sp_mem_in_use();
    for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
        const struct bad_case *c = &cases[i];
        struct bb b = {0};
        c->build(&b);
        struct gg_file *f = (struct gg_file *)(uintptr_t)1;
        struct sp_err err;
        sp_err_clear(&err);
        double t0 = sp_now_ms();
        enum sp_status st = gg_open_memory(b.p ? (void *)b.p : (void *)"", b.len, &f, &err);
        double ms = sp_now_ms() - t0;
        bb_free(&b);
        CHECK_MSG(st == c->code, "case '%s': status %s, want %s (%s)", c->name, sp_status_name(st),
                  sp_status_name(c->code), err.msg);
        CHECK_MSG(f == NULL, "case '%s': *out not NULL", c->name);
        CHECK_MSG(err.code == c->code, "case '%s': err.code", c->name);
        CHECK_MSG(err.msg[0] != '\0', "case '%s': empty message", c->name);
        CHECK_MSG(c->offset == ANY_OFF ? err.offset >= 0 : err.offset == c->offset,
                  "case '%s': offset %lld, want %lld (%s)", c->name, err.offset, c->offset, err.msg);
        CHECK_MSG(!c->ctx || strcmp(err.context, c->ctx) == 0, "case '%s': context '%s', want '%s' (%s)",
                  c->name, err.context, c->ctx, err.msg);
        CHECK_MSG(ms < 50.0, "case '%s': took %.1f ms", c->name, ms);
        if (getenv("GG_TEST_VERBOSE"))
            fprintf(stderr, "  %-28s %-14s %6.3f ms  %s\n", c->name, sp_status_name(st), ms, err.msg);
    }
    CHECK_EQ_INT(sp_mem_in_use(), base_mem);
    fprintf(stderr, "  %zu bad files rejected as expected\n", SP_ARRAY_LEN(cases));
    CHECK(SP_ARRAY_LEN(cases) >= 40);
}

TEST(good_control_opens)
{
    struct bb b = {0};
    bb_hdr(&b, 3, 2, 1);
    good_body(&b);
    struct gg_file *f = NULL;
    struct sp_err err;
    sp_err_clear(&err);
    enum sp_status st = gg_open_memory(b.p, b.len, &f, &err);
    CHECK_MSG(st == SP_OK, "%s", err.msg);
    CHECK_EQ_INT(gg_tensor_count(f), 2);
    CHECK_EQ_INT(gg_tensor_find(f, "b")->type, GG_TYPE_Q8_0);
    CHECK_EQ_INT(gg_tensor_find(f, "b")->nbytes, 68);
    gg_close(f);
    /* same as v2 */
    b.p[4] = 2;
    st = gg_open_memory(b.p, b.len, &f, &err);
    CHECK_MSG(st == SP_OK, "%s", err.msg);
    CHECK_EQ_INT(gg_version(f), 2);
    gg_close(f);
    bb_free(&b);
}

/* A small valid file with every metadata type, written by gg_writer. */
static void make_valid(void **out, size_t *size)
{
    struct gg_writer *w = gg_writer_new();
    static const float data_a[64] = {1, 2, 3};
    static uint8_t data_b[34 * 4];
    int32_t arr_i[3] = {-1, 0, 7};
    const char *toks[3] = {"<s>", "", "hello"};
    int ok = w && gg_writer_add_kv_str(w, "general.architecture", "llama") == SP_OK &&
             gg_writer_add_kv_u8(w, "t.u8", 200) == SP_OK && gg_writer_add_kv_i8(w, "t.i8", -5) == SP_OK &&
             gg_writer_add_kv_u16(w, "t.u16", 60000) == SP_OK &&
             gg_writer_add_kv_i16(w, "t.i16", -300) == SP_OK &&
             gg_writer_add_kv_u32(w, "t.u32", 4000000000u) == SP_OK &&
             gg_writer_add_kv_i32(w, "t.i32", -7) == SP_OK && gg_writer_add_kv_f32(w, "t.f32", 1.5f) == SP_OK &&
             gg_writer_add_kv_bool(w, "t.bool", true) == SP_OK &&
             gg_writer_add_kv_u64(w, "t.u64", 1ull << 40) == SP_OK &&
             gg_writer_add_kv_i64(w, "t.i64", -(1ll << 40)) == SP_OK &&
             gg_writer_add_kv_f64(w, "t.f64", 0.25) == SP_OK &&
             gg_writer_add_kv_arr(w, "t.arr_i32", GG_VAL_I32, arr_i, 3) == SP_OK &&
             gg_writer_add_kv_arr_str(w, "t.tokens", toks, 3) == SP_OK &&
             gg_writer_add_kv_u32(w, "general.alignment", 64) == SP_OK;
    /* nested array: [[1,2],[3]] of u8, encoded raw */
    struct bb nested = {0};
    bb_u32(&nested, GG_VAL_ARRAY);
    bb_u64(&nested, 2);
    bb_u32(&nested, GG_VAL_U8);
    bb_u64(&nested, 2);
    bb_u8(&nested, 1);
    bb_u8(&nested, 2);
    bb_u32(&nested, GG_VAL_U8);
    bb_u64(&nested, 1);
    bb_u8(&nested, 3);
    ok = ok && gg_writer_add_kv_raw(w, "t.nested", GG_VAL_ARRAY, nested.p, nested.len) == SP_OK;
    bb_free(&nested);
    int64_t ne_a[2] = {32, 2}, ne_b[2] = {32, 4};
    ok = ok && gg_writer_add_tensor(w, "a", GG_TYPE_F32, 2, ne_a, data_a) == SP_OK &&
         gg_writer_add_tensor(w, "b", GG_TYPE_Q8_0, 2, ne_b, data_b) == SP_OK;
    struct sp_err err;
    if (!ok || gg_writer_write_mem(w, NULL, NULL, out, size, &err) != SP_OK) {
        fprintf(stderr, "make_valid failed\n");
        exit(2);
    }
    gg_writer_free(w);
}

TEST(every_prefix_rejected)
{
    void *buf;
    size_t size;
    make_valid(&buf, &size);
    struct gg_file *f = NULL;
    struct sp_err err;
    CHECK_MSG(gg_open_memory(buf, size, &f, &err) == SP_OK, "%s", err.msg);
    gg_close(f);
    size_t base_mem = sp_mem_in_use();
    for (size_t n = 0; n < size; n++) {
        sp_err_clear(&err);
        /* copy so ASan sees reads past the prefix */
        uint8_t *p = sp_malloc(n ? n : 1);
        CHECK(p);
        memcpy(p, buf, n);
        enum sp_status st = gg_open_memory(p, n, &f, &err);
        sp_free(p);
        CHECK_MSG(st != SP_OK && f == NULL, "prefix %zu of %zu accepted", n, size);
        CHECK_MSG(st == SP_ERR_FORMAT, "prefix %zu: %s (%s)", n, sp_status_name(st), err.msg);
        CHECK_MSG(err.offset >= 0 && (size_t)err.offset <= n, "prefix %zu: offset %lld", n, err.offset);
    }
    CHECK_EQ_INT(sp_mem_in_use(), base_mem);
    fprintf(stderr, "  all %zu prefixes rejected\n", size);
    sp_free(buf);
}

TEST(allocation_failures)
{
    void *buf;
    size_t size;
    make_valid(&buf, &size);
    size_t base_mem = sp_mem_in_use();
    int failures = 0;
    for (long n = 1; n < 100; n++) {
        struct gg_file *f = NULL;
        struct sp_err err;
        sp_mem_fail_after(n, 0);
        enum sp_status st = gg_open_memory(buf, size, &f, &err);
        sp_mem_fail_after(0, 0);
        if (st == SP_OK) {
            gg_close(f);
            break;
        }
        CHECK_MSG(st == SP_ERR_NOMEM, "fail at %ld: %s (%s)", n, sp_status_name(st), err.msg);
        CHECK(f == NULL);
        failures++;
    }
    CHECK(failures > 0);
    CHECK_EQ_INT(sp_mem_in_use(), base_mem);
    sp_free(buf);
}

int main(void)
{
    RUN(bad_files_rejected);
    RUN(good_control_opens);
    RUN(every_prefix_rejected);
    RUN(allocation_failures);
    return test_summary();
}
