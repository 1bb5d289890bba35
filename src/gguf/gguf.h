/* gguf.h - bounded GGUF reader (prefix gg_).
 *
 * Format (little-endian; v2 and v3; v1 rejected):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { gguf_string key | u32 value_type | value }
 *   n_tensors x { gguf_string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (u32 key, default 32, power of two)
 *   tensor data; each tensor at data_start + offset, offset aligned.
 *   gguf_string = u64 len + bytes (no NUL). value: scalars by type, string,
 *   or array = u32 elem_type + u64 count + elements (arrays may nest).
 *
 * Everything is validated at open time with a bounded cursor over the mapping;
 * no pointer handed out ever points outside the mapped file. Thread-safe for
 * reading after open. Errors are typed (SP_ERR_FORMAT / SP_ERR_UNSUPPORTED /
 * SP_ERR_IO / SP_ERR_LIMIT) and carry the file offset and key/tensor name. */
#ifndef SPOKE_GGUF_H
#define SPOKE_GGUF_H

#include "base/base.h"

/* ggml tensor types (numbering as in ggml). */
enum gg_type {
    GG_TYPE_F32 = 0,
    GG_TYPE_F16 = 1,
    GG_TYPE_Q4_0 = 2,
    GG_TYPE_Q4_1 = 3,
    GG_TYPE_Q5_0 = 6,
    GG_TYPE_Q5_1 = 7,
    GG_TYPE_Q8_0 = 8,
    GG_TYPE_Q8_1 = 9,
    GG_TYPE_Q2_K = 10,
    GG_TYPE_Q3_K = 11,
    GG_TYPE_Q4_K = 12,
    GG_TYPE_Q5_K = 13,
    GG_TYPE_Q6_K = 14,
    GG_TYPE_Q8_K = 15,
    GG_TYPE_BF16 = 30,
    GG_TYPE_COUNT = 40 /* upper bound for tables */
};

/* Block geometry of a type. Returns false for unknown/unsupported types. */
struct gg_type_info {
    const char *name;   /* "Q4_K" */
    uint32_t blck_size; /* elements per block (1 for F32/F16/BF16) */
    uint32_t type_size; /* bytes per block */
};
bool gg_type_info(enum gg_type type, struct gg_type_info *out);
const char *gg_type_name(enum gg_type type); /* "?" if unknown */
/* Parse "Q4_K", "q8_0", "F16"... Returns false if unknown. */
bool gg_type_parse(const char *name, enum gg_type *out);
/* Bytes of a row of n elements; false if n is not a multiple of the block
 * size or on overflow. */
bool gg_row_size(enum gg_type type, int64_t n, size_t *out);

enum gg_value_type {
    GG_VAL_U8 = 0, GG_VAL_I8 = 1, GG_VAL_U16 = 2, GG_VAL_I16 = 3, GG_VAL_U32 = 4,
    GG_VAL_I32 = 5, GG_VAL_F32 = 6, GG_VAL_BOOL = 7, GG_VAL_STRING = 8,
    GG_VAL_ARRAY = 9, GG_VAL_U64 = 10, GG_VAL_I64 = 11, GG_VAL_F64 = 12,
    GG_VAL_COUNT = 13
};

/* A string inside the mapping (not NUL-terminated). */
struct gg_str {
    const char *ptr;
    uint64_t len;
};

/* Caps applied while parsing (defaults in gg_open). */
#define GG_MAX_STRING_LEN (64ull << 20)   /* one string */
#define GG_MAX_KEY_LEN 65535u
#define GG_MAX_ARRAY_DEPTH 8u
#define GG_MAX_TENSORS (1u << 20)
#define GG_MAX_KV (1u << 24)

struct gg_file; /* opaque */

/* Open and fully validate a GGUF file (read-only mmap). On error *out is NULL
 * and err says what and where. */
enum sp_status gg_open(const char *path, struct gg_file **out, struct sp_err *err) SP_MUST_USE;
/* Same over a caller-owned buffer that must outlive the gg_file (fuzzing, tests). */
enum sp_status gg_open_memory(const void *data, size_t size, struct gg_file **out,
                              struct sp_err *err) SP_MUST_USE;
void gg_close(struct gg_file *f); /* NULL is a no-op; unmaps */

uint32_t gg_version(const struct gg_file *f);
uint32_t gg_alignment(const struct gg_file *f);
size_t gg_file_size(const struct gg_file *f);
const void *gg_file_data(const struct gg_file *f); /* whole mapping */

/* ---- metadata */
size_t gg_kv_count(const struct gg_file *f);
/* Index of key (O(1) hash lookup), or -1. */
int64_t gg_kv_find(const struct gg_file *f, const char *key);
struct gg_str gg_kv_key(const struct gg_file *f, size_t i);
enum gg_value_type gg_kv_type(const struct gg_file *f, size_t i);

/* Typed getters by key. Return true and set *out when the key exists and its
 * value converts exactly (any integer type within range for the integer getters,
 * F32/F64 for floats). False when missing or of another type. */
bool gg_get_u32(const struct gg_file *f, const char *key, uint32_t *out);
bool gg_get_i64(const struct gg_file *f, const char *key, int64_t *out);
bool gg_get_f32(const struct gg_file *f, const char *key, float *out);
bool gg_get_bool(const struct gg_file *f, const char *key, bool *out);
bool gg_get_str(const struct gg_file *f, const char *key, struct gg_str *out);

/* Arrays (one level; nested arrays are validated but only reachable by count). */
bool gg_get_arr(const struct gg_file *f, const char *key, enum gg_value_type *elem_type,
                uint64_t *count);
/* Element i of a string array (O(1): offsets are indexed at open). */
bool gg_arr_str(const struct gg_file *f, const char *key, uint64_t i, struct gg_str *out);
/* Raw little-endian element data of a numeric array (count * elem size bytes). */
const void *gg_arr_data(const struct gg_file *f, const char *key);

/* ---- tensors */
struct gg_tensor {
    struct gg_str name;
    enum gg_type type;
    uint32_t n_dims;   /* 1..4 */
    int64_t ne[4];     /* elements per dimension, ne[0] contiguous; unused dims = 1 */
    uint64_t offset;   /* from the start of the data section */
    size_t nbytes;     /* bytes of data */
    const void *data;  /* into the mapping; aligned to gg_alignment */
};
size_t gg_tensor_count(const struct gg_file *f);
const struct gg_tensor *gg_tensor_at(const struct gg_file *f, size_t i);
/* O(1) lookup by name, or NULL. */
const struct gg_tensor *gg_tensor_find(const struct gg_file *f, const char *name);

#endif
