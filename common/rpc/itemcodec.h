/* itemcodec.h: the hand codec of the replay service's hot messages, shared by the client
 * (replay_rows.c: InsertRequest out, SampleReply in) and the shard server (rsrv_data.c:
 * InsertRequest in, SampleReply out). Prefix ic_. Rows travel in one of two forms: a list of
 * Items (one message per transition; what the Python interop client and older clients send, and
 * what a server answers when not asked for columns), or one ItemColumns (a little-endian array
 * per field, see the section at the end; what ibrl's own client and shard use, because encoding
 * and decoding a batch is then one copy per column instead of per-item framing).
 *
 * Why not nanopb: these two messages carry the whole data volume (~600 B per transition, 256
 * per batch). nanopb moves a packed float array one element at a time through its stream
 * callbacks, fills a 4.6 kB static ibrl_Item per item and encodes every message twice (size
 * pass, then write pass), which made both sides several times slower than the transport
 * (ibrl-bench replay). Packed floats are little-endian IEEE-754 on the wire, the same bytes as a
 * float array on the hosts we build for, so a field is one copy.
 *
 * Data model: rows of items in structure-of-arrays layout (ic_rows, a borrowed view over the
 * caller's columns: rc_batch on the client, store_batch or an insert buffer on the server).
 * Row i's obs is obs[i*obs_dim .. (i+1)*obs_dim), its action action[i*act_dim ..), and so on.
 *
 * Wire format (proto/ibrl.proto, Item): obs 1, action 2 (packed floats), reward 3, discount 4
 * (fixed32), next_obs 5 (packed), proposer 6, actor_id 7, seq 8, weight_version 9, episode_end
 * 10, episode_success 11 (varints). The encoder writes every field, defaults included (legal
 * protobuf, and it keeps the length computation simple). The parser follows the rules a
 * conforming decoder must: fields in any order, unknown fields skipped by wire type, repeated
 * floats packed (possibly in several chunks) or one at a time, missing scalars = 0, a key whose
 * field number is 0 or above 2^29 - 1 malformed (never cut down to another field); every length
 * is bounds-checked against the buffer and every array against the row's dims, so a malformed
 * message is refused, never read past.
 *
 * Errors: parse functions return IC_OK or a negative IC_E* code and fill an ic_error that names
 * the field (the caller turns it into an ib_fail message with its own context). Nothing here
 * calls ib_fail. Thread-safety: every function is reentrant; an ic_flat belongs to one thread
 * at a time. Little-endian hosts only (checked at compile time in itemcodec.c). */
#ifndef IB_ITEMCODEC_H
#define IB_ITEMCODEC_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

/* Field numbers of the messages handled here (proto/ibrl.proto). */
#define IC_INSERT_TABLE 1  /* InsertRequest.table (string) */
#define IC_INSERT_ITEMS 2  /* InsertRequest.items (repeated Item) */
#define IC_REPLY_ITEMS 1   /* SampleReply.items (repeated Item) */
#define IC_REPLY_N_DEMO 2  /* SampleReply.n_demo, then n_online 3, demo_size 4, online_size 5 */
#define IC_INSERT_COLUMNS 3 /* InsertRequest.columns (ItemColumns) */
#define IC_INSERT_MAX_WAIT 4 /* InsertRequest.max_wait_ms (uint32) */
#define IC_REPLY_COLUMNS 6  /* SampleReply.columns (ItemColumns) */

/* Parse results. */
#define IC_OK 0
#define IC_EMALFORMED (-1) /* not valid protobuf for the message (truncated, bad wire type, ...) */
#define IC_EDIMS (-2)      /* a float array whose length differs from the row's dims */
#define IC_ENONFINITE (-3) /* a NaN or Inf value (only when asked to check) */
#define IC_ETOOMANY (-5)   /* ItemColumns: more rows than the reader accepts */

/* A borrowed structure-of-arrays view of item rows. Every pointer must be non-NULL for the
 * functions that read or write it (all of them, for ic_item_parse). */
typedef struct ic_rows {
  int obs_dim, act_dim;        /* > 0 */
  float *obs;                  /* [rows x obs_dim] */
  float *action;               /* [rows x act_dim] */
  float *next_obs;             /* [rows x obs_dim] */
  float *reward;               /* [rows] */
  float *discount;             /* [rows] */
  uint8_t *proposer;           /* [rows] */
  uint8_t *episode_end;        /* [rows] 0/1 */
  uint8_t *episode_success;    /* [rows] 0/1 */
  uint32_t *actor_id;          /* [rows] */
  uint64_t *seq;               /* [rows] */
  uint64_t *weight_version;    /* [rows] */
} ic_rows;

/* Optional stamp for encoding: item k of rows [lo, hi) carries actor_id and seq0 + k instead of
 * the rows' own actor_id and seq (the client's writer stamps its batches this way). */
typedef struct ic_stamp {
  uint32_t actor_id;
  uint64_t seq0;
} ic_stamp;

/* What a parse refused, for the caller's message. */
typedef struct ic_error {
  const char *field; /* "obs", "action", "next_obs", "reward", "discount", or "" */
  long got;          /* IC_EDIMS: the number of values the field had (at least) */
  long index;        /* IC_ENONFINITE: the index of the first bad value within the field */
  float value;       /* IC_ENONFINITE: that value */
  long row;          /* ItemColumns: the row of the bad value (IC_ENONFINITE), or the row count n
                        (IC_EDIMS, IC_ETOOMANY) */
  long want;         /* ItemColumns IC_EDIMS: the byte length the field should have had */
} ic_error;

/* ---- encoding ---- */

size_t ic_varint_len(uint64_t v);
/* Writes a varint at p; returns the byte after it. */
uint8_t *ic_put_varint(uint8_t *p, uint64_t v);

/* Encoded size of a repeated Item field number `field` holding rows [lo, hi) of r (each item:
 * key, length, body). stamp may be NULL. */
size_t ic_items_len(const ic_rows *r, size_t lo, size_t hi, uint32_t field, const ic_stamp *stamp);
/* Writes those items at p (which has room for ic_items_len bytes); returns the byte after. */
uint8_t *ic_items_put(uint8_t *p, const ic_rows *r, size_t lo, size_t hi, uint32_t field,
                      const ic_stamp *stamp);

/* As ic_items_put (the same bytes), with the NaN/Inf check of obs, action, next_obs, reward and
 * discount done inside the copy: *finite is 1 if every one of those values of rows [lo, hi) is
 * finite, else 0 (the caller then finds and names the bad value with a scan of its own, and
 * discards the bytes). One pass over the rows instead of a check pass and a copy pass. */
uint8_t *ic_items_put_check(uint8_t *p, const ic_rows *r, size_t lo, size_t hi, uint32_t field,
                            const ic_stamp *stamp, int *finite);

/* Size and writer of a varint field (written even when v == 0) and of a bytes/string field. */
size_t ic_varint_field_len(uint32_t field, uint64_t v);
uint8_t *ic_put_varint_field(uint8_t *p, uint32_t field, uint64_t v);
size_t ic_bytes_field_len(uint32_t field, size_t len);
uint8_t *ic_put_bytes_field(uint8_t *p, uint32_t field, const void *data, size_t len);

/* ---- parsing ---- */

/* A cursor over contiguous bytes [p, end). */
typedef struct ic_reader {
  const uint8_t *p, *end;
} ic_reader;

/* Reads a varint (0, or -1 if truncated or longer than 10 bytes). */
int ic_get_varint(ic_reader *r, uint64_t *v);
/* Skips a field of wire type wt (0, or -1 if malformed or an unsupported wire type). */
int ic_skip_field(ic_reader *r, int wt);

/* Parses one Item body [p, p + len) into row `row` of dst: obs, action and next_obs must have
 * exactly dst's dims (IC_EDIMS otherwise); the scalars not present are 0. With check_finite, the
 * float fields are checked for NaN/Inf in the same pass as the copy (IC_ENONFINITE, err names
 * the first bad field and index). Returns IC_OK or an IC_E*; on error the row holds partial
 * data. err must not be NULL. */
int ic_item_parse(ic_rows *dst, size_t row, const uint8_t *p, size_t len, int check_finite,
                  ic_error *err);

/* 1 if every x[0..n) is finite, else 0: a branch-free vector scan (a float is NaN/Inf exactly
 * when its exponent bits are all ones), several times faster than testing isfinite() per value.
 * Callers find the index for their message only when this says 0. */
int ic_floats_finite(const float *x, size_t n);

/* Where the float fields of one Item lie inside its encoded body, for a reader that wants to use
 * them in place instead of copying them out. The pointers may be unaligned: read them with
 * memcpy only. */
typedef struct ic_item_ref {
  const float *obs, *action, *next_obs; /* [obs_dim], [act_dim], [obs_dim]; unaligned */
  float reward, discount;
  uint32_t proposer, actor_id;
  uint64_t seq, weight_version;
  int episode_end, episode_success;
} ic_item_ref;

#define IC_ENOVIEW (-4) /* ic_item_view only: legal, but a float field is not one packed run */

/* Like ic_item_parse, but copies nothing: points out's float fields into the body [p, p + len)
 * (which must stay alive while out is used). Each float field must be a single packed run of
 * exactly the dims; a legal item written otherwise (unpacked, or in several runs) gives
 * IC_ENOVIEW, and the caller falls back to ic_item_parse. With check_finite, the floats are
 * checked in place (IC_ENONFINITE). Returns IC_OK or an IC_E*; err must not be NULL. */
int ic_item_view(ic_item_ref *out, const uint8_t *p, size_t len, int obs_dim, int act_dim, int check_finite,
                 ic_error *err);

/* ---- received messages ---- */

/* A grow-only scratch buffer for items that straddle two slices of a received message
 * (caller-owned; start zeroed, release with ic_flat_free; no allocation once it has grown to the
 * largest message). */
typedef struct ic_flat {
  uint8_t *p;
  size_t cap;
} ic_flat;

void ic_flat_free(ic_flat *f);

/* ---- walking a received message field by field, without flattening it ----
 * A received message is a list of slices (HTTP/2 frames, typically 16 kB). ic_msg walks its
 * top-level fields across slice borders: a length-delimited field that lies inside one slice is
 * handed out in place; one that straddles a border is copied into the scratch buffer, which is
 * grown once to the message size, so every body handed out stays valid for the whole walk (as
 * long as bb and scratch live). This saves copying the whole message (~150 kB) per call. */
typedef struct ic_msg {
  const grpc_slice_buffer *sb; /* borrowed */
  size_t k;                    /* current slice */
  const uint8_t *p, *end;      /* cursor in slice k */
  size_t left;                 /* bytes not read yet, over all slices */
  ic_flat *scratch;            /* borrowed */
  size_t used;                 /* scratch bytes handed out */
} ic_msg;

/* Starts a walk over bb (borrowed). Returns 0, or -1 for a buffer it cannot read (compressed). */
int ic_msg_init(ic_msg *m, const grpc_byte_buffer *bb, ic_flat *scratch);

/* Reads the next top-level field. Returns 1 with *field and *wt set and, for wire type 2, *body
 * and *len (the bytes), else *val (varint value, or the raw little-endian bits of a fixed32 /
 * fixed64); 0 at the end of the message; -1 if the message is malformed (truncated, bad key or
 * wire type). */
int ic_msg_next(ic_msg *m, uint32_t *field, int *wt, uint64_t *val, const uint8_t **body, size_t *len);

/* ---- ItemColumns (proto/ibrl.proto): a batch as one little-endian array per field ----
 * Our encoder writes n first, then obs, action, reward, discount, next_obs, proposer, actor_id,
 * seq, weight_version, flags (every field, even when n == 0). The reader accepts any order and
 * repeated fields (the last one counts, as in protobuf), but checks each column's length against
 * n (when n came first, as from every encoder we know, before copying anything; otherwise
 * against the reader's row bound, and against n at the end), so a wrong size never reaches the
 * destination rows out of bounds. */

/* The ten data columns in wire order, as indexes of ic_cols_layout's col[]. */
#define IC_NCOLS 10
#define IC_COL_OBS 0
#define IC_COL_ACTION 1
#define IC_COL_REWARD 2
#define IC_COL_DISCOUNT 3
#define IC_COL_NEXT_OBS 4
#define IC_COL_PROPOSER 5
#define IC_COL_ACTOR_ID 6
#define IC_COL_SEQ 7
#define IC_COL_WV 8
#define IC_COL_FLAGS 9

/* Size of field `field` holding the ItemColumns of `n` rows of dims od x ad (key, length, body). */
size_t ic_cols_len(uint32_t field, size_t n, int obs_dim, int act_dim);
/* Writes field `field` holding rows [lo, hi) of r as ItemColumns at p (room for ic_cols_len
 * bytes); returns the byte after. stamp may be NULL (see ic_stamp). With finite non-NULL the
 * float columns are checked for NaN/Inf inside the copy: *finite = 1 if all are finite. */
uint8_t *ic_cols_put(uint8_t *p, uint32_t field, const ic_rows *r, size_t lo, size_t hi, const ic_stamp *stamp,
                     int *finite);

/* Writes field `field`'s key and length, n, and every column's key and length, leaving each
 * column's n values for the caller to fill in place: col[IC_COL_*] receives where they go (any
 * alignment). Returns the byte after the field (p + ic_cols_len). */
uint8_t *ic_cols_layout(uint8_t *p, uint32_t field, size_t n, int obs_dim, int act_dim, uint8_t *col[IC_NCOLS]);

/* Where the rows of a received ItemColumns go: row i < split to rows a0 + i of `rows`, row
 * i >= split to rows b0 + (i - split) (the client puts a shard's demo rows and online rows in
 * two places; a single range is split = max_rows). */
typedef struct ic_cols_dst {
  ic_rows *rows;    /* borrowed; every column non-NULL */
  size_t max_rows;  /* n above this: IC_ETOOMANY (before anything is copied) */
  size_t split, a0, b0;
  int check_finite; /* check obs, action, next_obs, reward, discount for NaN/Inf in the copy */
} ic_cols_dst;

/* Reads the ItemColumns body of `len` bytes at the walk's position (after ic_msg_next_hdr gave
 * its key with wire type 2) into d, and *n = its row count. Returns IC_OK; IC_EMALFORMED (bad
 * field, wire type, truncated); IC_ETOOMANY (err->row = n); IC_EDIMS (a column's length is not n
 * values of the row's width, or it is missing with n > 0: err->field names it, err->got is its
 * byte length, err->want the expected one, err->row = n); IC_ENONFINITE (err->field, err->row,
 * err->index within the row, err->value). On error the destination rows hold partial data. */
int ic_msg_cols_read(ic_msg *m, size_t len, const ic_cols_dst *d, size_t *n, ic_error *err);

/* As ic_msg_next, but a wire-type-2 field's body is not consumed: *len is its length (checked to
 * lie within the message) and the caller must then consume exactly that many bytes with
 * ic_msg_skip, ic_msg_cols_read or ic_msg_body. */
int ic_msg_next_hdr(ic_msg *m, uint32_t *field, int *wt, uint64_t *val, size_t *len);
/* Skips n bytes (n <= what is left). */
void ic_msg_skip(ic_msg *m, size_t n);
/* Hands out the next n bytes in place or through the scratch, as ic_msg_next does for a body. */
const uint8_t *ic_msg_body(ic_msg *m, size_t n);

#endif /* IB_ITEMCODEC_H */
