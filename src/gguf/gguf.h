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
 * SP_ERR_IO) and carry the file offset and key/tensor name. A file past one of
 * spoke's caps is SP_ERR_FORMAT too (the message names the limit), so every
 * command exits 8 on it like on any other bad file. */
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
    GG_TYPE_IQ4_NL = 20,
    GG_TYPE_IQ4_XS = 23,
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
#define GG_MAX_ARRAY_LEN (1ull << 32) /* elements of one array (also bounded by the file size) */
#define GG_MAX_ALIGNMENT (1u << 30)   /* general.alignment */

struct gg_file; /* opaque */

/* Open and fully validate a GGUF file (read-only mmap). On error *out is NULL
 * and err says what and where: err->offset is the file offset of the bad
 * field, err->context the key or tensor name involved (sanitised to ASCII).
 * Statuses: SP_ERR_FORMAT (malformed: truncated, bad magic, bad counts,
 * duplicate key/tensor, bad dims/offsets/overlaps, bad general.alignment),
 * SP_ERR_UNSUPPORTED (version other than 2/3, big-endian, tensor type spoke
 * does not know), SP_ERR_FORMAT also for a cap above exceeded, SP_ERR_NOT_FOUND (no
 * such file), SP_ERR_IO (cannot read/map), SP_ERR_NOMEM. Time and memory are
 * linear in the file size; nothing is allocated from an unchecked count. */
enum sp_status gg_open(const char *path, struct gg_file **out, struct sp_err *err) SP_MUST_USE;
/* ---- a file that changes while mapped (gguf_guard.c) ----
 * gg_open registers each mapping with a process-wide SIGBUS guard. Once the
 * program calls gg_guard_install (once; it installs a SIGBUS handler, keeping
 * the previous one for faults that are not in a registered mapping), a read of
 * a page that a truncation took away no longer kills the process: the rest of
 * that mapping becomes zero pages and the file is marked faulted. Code that
 * computed with the zeros must treat its result as garbage: check
 * gg_file_faulted (one atomic load) after the work, gg_file_changed (a stat)
 * before it. Thread-safe. */
enum sp_status gg_guard_install(struct sp_err *err) SP_MUST_USE;
bool gg_guard_installed(void);
/* True when a read of f's mapping faulted since open (and was absorbed). */
bool gg_file_faulted(const struct gg_file *f);
/* True when f's file changed since open: faulted, removed, replaced (another
 * inode), resized or modified (mtime); why gets one line naming the path.
 * Always false for gg_open_memory buffers. */
bool gg_file_changed(const struct gg_file *f, char *why, size_t whysz);
/* Same over every shard of a split (declared after struct gg_split below). */

/* Same over a caller-owned buffer that must outlive the gg_file (fuzzing, tests). */
enum sp_status gg_open_memory(const void *data, size_t size, struct gg_file **out,
                              struct sp_err *err) SP_MUST_USE;
void gg_close(struct gg_file *f); /* NULL is a no-op; unmaps */

uint32_t gg_version(const struct gg_file *f);
uint32_t gg_alignment(const struct gg_file *f);
size_t gg_file_size(const struct gg_file *f);
const void *gg_file_data(const struct gg_file *f); /* whole mapping */
/* File offset where the tensor data section starts (aligned). */
uint64_t gg_data_offset(const struct gg_file *f);
/* The caller no longer needs the bytes [p, p + n) of f's mapping (a tensor
 * it copied elsewhere): the pages wholly inside the range leave the
 * process's resident set (madvise MADV_DONTNEED; a later read faults them
 * in from the file again, same bytes). No-op for gg_open_memory buffers and
 * ranges outside the mapping. */
void gg_file_drop(const struct gg_file *f, const void *p, size_t n);

/* ---- metadata */
size_t gg_kv_count(const struct gg_file *f);
/* Index of key (O(1) hash lookup), or -1. */
int64_t gg_kv_find(const struct gg_file *f, const char *key);
struct gg_str gg_kv_key(const struct gg_file *f, size_t i);
enum gg_value_type gg_kv_type(const struct gg_file *f, size_t i);
/* The encoded value of key i exactly as stored in the file (after its type
 * word; for arrays: element type, count, elements). For copying metadata
 * (gg_writer_add_kv_raw). False if i is out of range. */
bool gg_kv_raw(const struct gg_file *f, size_t i, const void **data, size_t *size);

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
/* Raw little-endian element data of a numeric array (count * elem size bytes;
 * not necessarily aligned: copy with memcpy). NULL if missing or not numeric. */
const void *gg_arr_data(const struct gg_file *f, const char *key);

/* ---- tensors */
struct gg_tensor {
    struct gg_str name;
    enum gg_type type;
    uint32_t n_dims;   /* 1..4 */
    int64_t ne[4];     /* elements per dimension, ne[0] contiguous; unused dims = 1 */
    uint64_t offset;   /* from the start of the data section */
    size_t nbytes;     /* bytes of data */
    const void *data;  /* into the mapping; offset aligned to gg_alignment (the pointer too for gg_open) */
};
size_t gg_tensor_count(const struct gg_file *f);
const struct gg_tensor *gg_tensor_at(const struct gg_file *f, size_t i);
/* O(1) lookup by name, or NULL. */
const struct gg_tensor *gg_tensor_find(const struct gg_file *f, const char *name);
/* The same for a name given as pointer + length (e.g. another file's tensor name). */
const struct gg_tensor *gg_tensor_find_str(const struct gg_file *f, struct gg_str name);

/* ---- split models (gguf_split.c)
 *
 * A model stored as llama.cpp gguf-split shards PREFIX-00001-of-0000N.gguf ..
 * (keys split.no, split.count, split.tensors.count). gg_split_open takes the
 * first shard (a plain file opens as a set of one), opens and validates
 * every shard and the set: a missing shard (SP_ERR_NOT_FOUND), a shard
 * numbered or counted differently, a tensor in two shards or a tensor total
 * that disagrees with split.tensors.count (SP_ERR_FORMAT), a path that is not
 * the first shard or is not named so the others can be found
 * (SP_ERR_INVALID). Metadata is read from shard 0. */
struct gg_split;
enum sp_status gg_split_open(const char *path, struct gg_split **out, struct sp_err *err) SP_MUST_USE;
void gg_split_close(struct gg_split *s); /* NULL is a no-op */
size_t gg_split_count(const struct gg_split *s);
const struct gg_file *gg_split_file(const struct gg_split *s, size_t i); /* NULL past the end */
size_t gg_split_size(const struct gg_split *s);                          /* bytes of all shards */
bool gg_split_faulted(const struct gg_split *s);                         /* any shard faulted */
bool gg_split_changed(const struct gg_split *s, char *why, size_t whysz); /* any shard changed */
void gg_split_drop(const struct gg_split *s, const void *p, size_t n);   /* gg_file_drop on its shard */
/* Lookup by name over every shard, or NULL. */
const struct gg_tensor *gg_split_tensor_find(const struct gg_split *s, const char *name);
/* All tensors of the set, shard by shard: count and the i-th (NULL past the end). */
size_t gg_split_tensor_count(const struct gg_split *s);
const struct gg_tensor *gg_split_tensor_at(const struct gg_split *s, size_t i);
/* A shard name "PREFIX-KKKKK-of-NNNNN.gguf" (1 <= K <= N <= 9999, PREFIX
 * non-empty): true with the prefix length, K and N. */
bool gg_split_name_parse(const char *path, size_t *prefix_len, unsigned *index, unsigned *count);

/* ---- writer
 *
 * Builds a GGUF file in memory (metadata and tensor infos) and writes it in
 * one pass: to a path atomically (temporary file in the same directory,
 * fsync, rename) or into a buffer. Metadata keeps insertion order; adding a
 * key that exists replaces its value in place. Tensor data is either given
 * at add time (borrowed: must stay valid until the write) or produced at
 * write time by a fill callback, one tensor at a time, so a converter never
 * holds more than one output tensor. Layout: version 3 (or 2), alignment 32
 * unless general.alignment is set, each tensor at an aligned offset in the
 * order added, no padding after the last tensor. Not thread-safe. */
struct gg_writer;

/* Produce tensor i (in add order) into dst (nbytes = its size). Return SP_OK
 * or an error status (and fill err) to abort the write. */
typedef enum sp_status (*gg_fill_fn)(void *ctx, size_t i, void *dst, size_t nbytes,
                                     struct sp_err *err);

/* New empty writer, or NULL when out of memory. */
struct gg_writer *gg_writer_new(void);
void gg_writer_free(struct gg_writer *w); /* NULL is a no-op */
/* Version 2 or 3 (default 3); SP_ERR_INVALID otherwise. */
enum sp_status gg_writer_set_version(struct gg_writer *w, uint32_t version) SP_MUST_USE;

/* Metadata setters. key: NUL-terminated, 1..GG_MAX_KEY_LEN bytes. Errors:
 * SP_ERR_INVALID (bad key/argument), SP_ERR_NOMEM. Setting general.alignment
 * (u32, power of two up to GG_MAX_ALIGNMENT) also sets the data alignment. */
enum sp_status gg_writer_add_kv_u8(struct gg_writer *w, const char *key, uint8_t v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_i8(struct gg_writer *w, const char *key, int8_t v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_u16(struct gg_writer *w, const char *key, uint16_t v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_i16(struct gg_writer *w, const char *key, int16_t v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_u32(struct gg_writer *w, const char *key, uint32_t v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_i32(struct gg_writer *w, const char *key, int32_t v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_u64(struct gg_writer *w, const char *key, uint64_t v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_i64(struct gg_writer *w, const char *key, int64_t v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_f32(struct gg_writer *w, const char *key, float v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_f64(struct gg_writer *w, const char *key, double v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_bool(struct gg_writer *w, const char *key, bool v) SP_MUST_USE;
enum sp_status gg_writer_add_kv_str(struct gg_writer *w, const char *key, const char *v) SP_MUST_USE;
/* String of len bytes (may contain NUL). */
enum sp_status gg_writer_add_kv_strn(struct gg_writer *w, const char *key, const char *v,
                                     size_t len) SP_MUST_USE;
/* Numeric array: count elements of elem_type (not STRING/ARRAY), little-endian at data. */
enum sp_status gg_writer_add_kv_arr(struct gg_writer *w, const char *key, enum gg_value_type elem_type,
                                    const void *data, uint64_t count) SP_MUST_USE;
/* String arrays from C strings or from gg_str (which may contain NUL). */
enum sp_status gg_writer_add_kv_arr_str(struct gg_writer *w, const char *key,
                                        const char *const *strs, uint64_t count) SP_MUST_USE;
enum sp_status gg_writer_add_kv_arr_gstr(struct gg_writer *w, const char *key,
                                         const struct gg_str *strs, uint64_t count) SP_MUST_USE;
/* A value already encoded as in a file (see gg_kv_raw); not re-validated
 * beyond the type (the reader validates on open). */
enum sp_status gg_writer_add_kv_raw(struct gg_writer *w, const char *key, enum gg_value_type type,
                                    const void *raw, size_t size) SP_MUST_USE;
/* Copy every metadata key of f, in order, with its encoded value. Errors:
 * SP_ERR_UNSUPPORTED (a key holding NUL cannot be named here), SP_ERR_NOMEM,
 * or what gg_writer_add_kv_raw returns (err names the key). */
enum sp_status gg_writer_copy_kv(struct gg_writer *w, const struct gg_file *f, struct sp_err *err) SP_MUST_USE;
/* Remove a key if present (no error if absent). */
void gg_writer_remove_kv(struct gg_writer *w, const char *key);

/* Add a tensor: name 1..GG_MAX_KEY_LEN bytes, unique; n_dims 1..4, ne[d] >= 1;
 * ne[0] a multiple of the type's block size. data: nbytes of tensor data
 * (borrowed until the write), or NULL to have the fill callback produce it.
 * Errors: SP_ERR_INVALID (duplicate name, bad shape), SP_ERR_UNSUPPORTED
 * (type), SP_ERR_NOMEM. */
enum sp_status gg_writer_add_tensor(struct gg_writer *w, const char *name, enum gg_type type,
                                    uint32_t n_dims, const int64_t *ne, const void *data) SP_MUST_USE;
size_t gg_writer_tensor_count(const struct gg_writer *w);

/* Write to path atomically (path.tmp.XXXXXX, fsync, rename; on failure the
 * temporary is removed and path is untouched). fill may be NULL if every
 * tensor has data. Errors: SP_ERR_IO, SP_ERR_NOMEM, or what fill returns. */
enum sp_status gg_writer_write(struct gg_writer *w, const char *path, gg_fill_fn fill, void *ctx,
                               struct sp_err *err) SP_MUST_USE;
/* Write into a new buffer (*out, *size; release with sp_free). */
enum sp_status gg_writer_write_mem(struct gg_writer *w, gg_fill_fn fill, void *ctx, void **out,
                                   size_t *size, struct sp_err *err) SP_MUST_USE;

#endif
