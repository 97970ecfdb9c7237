/* replay_rows.c: the replay client's batches (rc_batch) and its side of the item codec.
 * InsertRequest and SampleReply, which carry the items, go through the hand codec of
 * itemcodec.h (shared with the server) instead of nanopb, because they are the whole data
 * volume; everything else uses wire_encode / wire_decode. Both carry the rows as ItemColumns
 * (the writer sends columns; Sample asks for them), so a batch is one copy per column each
 * way; a reply of Items (a server that ignores the request flag) is decoded too. The shard
 * must know InsertRequest.columns: an older shard would skip the field and store nothing. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "itemcodec.h"
#include "replay_client_impl.h"

/* ---- batches ---- */

void rc_batch_init(rc_batch *b, int cap, int obs_dim, int act_dim) {
  IB_CHECK(b != NULL && cap > 0 && obs_dim > 0 && act_dim > 0);
  memset(b, 0, sizeof *b);
  b->cap = cap;
  b->obs_dim = obs_dim;
  b->act_dim = act_dim;
  size_t n = (size_t)cap;
  b->obs = ib_xcalloc(n * (size_t)obs_dim, sizeof(float));
  b->next_obs = ib_xcalloc(n * (size_t)obs_dim, sizeof(float));
  b->action = ib_xcalloc(n * (size_t)act_dim, sizeof(float));
  b->reward = ib_xcalloc(n, sizeof(float));
  b->discount = ib_xcalloc(n, sizeof(float));
  b->proposer = ib_xcalloc(n, 1);
  b->episode_end = ib_xcalloc(n, 1);
  b->episode_success = ib_xcalloc(n, 1);
  b->from_demo = ib_xcalloc(n, 1);
  b->actor_id = ib_xcalloc(n, sizeof(uint32_t));
  b->seq = ib_xcalloc(n, sizeof(uint64_t));
  b->weight_version = ib_xcalloc(n, sizeof(uint64_t));
}

void rc_batch_free(rc_batch *b) {
  if (b == NULL) return;
  free(b->obs);
  free(b->next_obs);
  free(b->action);
  free(b->reward);
  free(b->discount);
  free(b->proposer);
  free(b->episode_end);
  free(b->episode_success);
  free(b->from_demo);
  free(b->actor_id);
  free(b->seq);
  free(b->weight_version);
  memset(b, 0, sizeof *b);
}

/* ---- item codec ----
 * The hot messages (InsertRequest out, SampleReply in) go through the hand codec of
 * itemcodec.h, shared with the shard server, rather than through nanopb (see there why). */

/* The codec's view of b's columns. */
static ic_rows rows_of(const rc_batch *b) {
  ic_rows r = {b->obs_dim, b->act_dim, b->obs, b->action, b->next_obs, b->reward, b->discount, b->proposer,
               b->episode_end, b->episode_success, b->actor_id, b->seq, b->weight_version};
  return r;
}

/* Encodes rows [lo, hi) of b as an InsertRequest for `table` into one new slice (caller unrefs),
 * as ItemColumns (`columns`: one copy per column) or as per-item Items.
 * With `stamp`, item k carries actor_id and seq0 + k instead of the rows' own ids. max_wait_ms > 0
 * is sent as InsertRequest.max_wait_ms (the partial acknowledgement's budget). With `finite`
 * non-NULL, the floats are checked for NaN/Inf inside the copy and *finite says whether all are. */
grpc_slice rc__encode_rows(const rc_batch *b, int lo, int hi, const char *table, int columns, int stamp,
                           uint32_t actor_id, uint64_t seq0, uint32_t max_wait_ms, int *finite) {
  IB_CHECK(b != NULL && table != NULL && 0 <= lo && lo <= hi && hi <= b->n);
  ic_rows r = rows_of(b);
  ic_stamp st = {actor_id, seq0};
  size_t tl = strlen(table);
  size_t total = (tl ? ic_bytes_field_len(IC_INSERT_TABLE, tl) : 0) +
                 (max_wait_ms ? ic_varint_field_len(IC_INSERT_MAX_WAIT, max_wait_ms) : 0) +
                 (columns ? ic_cols_len(IC_INSERT_COLUMNS, (size_t)(hi - lo), b->obs_dim, b->act_dim)
                          : ic_items_len(&r, (size_t)lo, (size_t)hi, IC_INSERT_ITEMS, stamp ? &st : NULL));
  grpc_slice s = grpc_slice_malloc(total);
  uint8_t *p = GRPC_SLICE_START_PTR(s);
  if (tl) p = ic_put_bytes_field(p, IC_INSERT_TABLE, table, tl);
  if (max_wait_ms) p = ic_put_varint_field(p, IC_INSERT_MAX_WAIT, max_wait_ms);
  if (columns) p = ic_cols_put(p, IC_INSERT_COLUMNS, &r, (size_t)lo, (size_t)hi, stamp ? &st : NULL, finite);
  else if (finite != NULL)
    p = ic_items_put_check(p, &r, (size_t)lo, (size_t)hi, IC_INSERT_ITEMS, stamp ? &st : NULL, finite);
  else p = ic_items_put(p, &r, (size_t)lo, (size_t)hi, IC_INSERT_ITEMS, stamp ? &st : NULL);
  IB_CHECK((size_t)(p - GRPC_SLICE_START_PTR(s)) == total);
  return s;
}

grpc_byte_buffer *rc__encode_insert(const rc_batch *b, int lo, int hi, const char *table) {
  grpc_slice s = rc__encode_rows(b, lo, hi, table, 0, 0, 0, 0, 0, NULL);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

grpc_byte_buffer *rc__encode_insert_columns(const rc_batch *b, int lo, int hi, const char *table) {
  grpc_slice s = rc__encode_rows(b, lo, hi, table, 1, 0, 0, 0, 0, NULL);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* A received message usually arrives as several slices; the parser walks them in place and
 * copies only the items that straddle two slices, into a buffer kept per thread (sized to the
 * largest reply once: a fresh allocation per call would be mmap'ed and page-faulted each time). */
static pthread_key_t flat_key;
static pthread_once_t flat_once = PTHREAD_ONCE_INIT;

static void flat_buf_free(void *arg) {
  ic_flat_free(arg);
  free(arg);
}

static void flat_key_make(void) { IB_CHECK(pthread_key_create(&flat_key, flat_buf_free) == 0); }

/* This thread's scratch for reply items that straddle two slices. */
static ic_flat *flat_scratch(void) {
  pthread_once(&flat_once, flat_key_make);
  ic_flat *f = pthread_getspecific(flat_key);
  if (f == NULL) {
    f = ib_xcalloc(1, sizeof *f);
    IB_CHECK(pthread_setspecific(flat_key, f) == 0);
  }
  return f;
}

int rc__decode_sample_reply(rc_batch *b, int demo_off, int n_demo_req, int online_off, int max_items,
                            const grpc_byte_buffer *bb, rc__reply_info *out, const char *who) {
  IB_CHECK(b != NULL && out != NULL && who != NULL);
  memset(out, 0, sizeof *out);
  if (bb == NULL) return ib_fail(IB_EPROTO, "%s: no reply message HINT: the call was cancelled", who);
  ic_msg m;
  if (ic_msg_init(&m, bb, flat_scratch()) != 0)
    return ib_fail(IB_EPROTO, "%s: cannot read the reply (compression?) HINT: incompatible server", who);
  ic_rows rows = rows_of(b);
  int rc = IB_OK, n = 0;
  while (rc == IB_OK) {
    uint32_t f;
    int wt;
    uint64_t v;
    const uint8_t *body;
    size_t len;
    int more = ic_msg_next_hdr(&m, &f, &wt, &v, &len);
    if (more == 0) break;
    if (more < 0) {
      rc = ib_fail(IB_EPROTO, "%s: malformed SampleReply (truncated, or a bad key or length after %d items) HINT: "
                   "incompatible server", who, n);
      break;
    }
    if (f == IC_REPLY_COLUMNS && wt == 2) {
      /* Straight from the reply's slices into b's columns (demo rows, then online rows). */
      ic_cols_dst d = {&rows, (size_t)(max_items - n), (size_t)IB_MAX(n_demo_req - n, 0),
                       (size_t)(demo_off + n), (size_t)(online_off + IB_MAX(n - n_demo_req, 0)), 0};
      size_t nc = 0;
      ic_error ie;
      int e = ic_msg_cols_read(&m, len, &d, &nc, &ie);
      if (e == IC_ETOOMANY) /* ie.row saturates at LONG_MAX for an absurd count: add without overflow */
        rc = ib_fail(IB_EPROTO, "%s: SampleReply.columns has %ld rows, more than the %d asked for HINT: incompatible "
                     "server", who, ie.row > LONG_MAX - n ? LONG_MAX : (long)n + ie.row, max_items);
      else if (e == IC_EDIMS)
        rc = ib_fail(IB_EMISMATCH, "%s: SampleReply.columns.%s has %ld bytes, expected %ld for %ld rows of obs %d "
                     "action %d HINT: the learner's dims must match the shard's --obs-dim/--act-dim", who, ie.field,
                     ie.got, ie.want, ie.row, b->obs_dim, b->act_dim);
      else if (e != IC_OK)
        rc = ib_fail(IB_EPROTO, "%s: malformed SampleReply.columns HINT: incompatible server", who);
      n += (int)nc;
      continue;
    }
    body = wt == 2 ? ic_msg_body(&m, len) : NULL;
    if (f == IC_REPLY_ITEMS && wt == 2) {
      if (n >= max_items) {
        rc = ib_fail(IB_EPROTO, "%s: SampleReply has more than the %d items asked for HINT: incompatible server", who,
                     max_items);
        break;
      }
      int row = n < n_demo_req ? demo_off + n : online_off + (n - n_demo_req);
      /* Items lie back to back in the reply's slices: fetch the item after next while this one
       * is copied out. */
      for (size_t off = 0; off < len; off += 64) __builtin_prefetch(body + 2 * len + off, 0, 3);
      ic_error ie;
      int e = ic_item_parse(&rows, (size_t)row, body, len, 0, &ie);
      if (e == IC_EDIMS)
        rc = ib_fail(IB_EMISMATCH, "%s: item %d has %ld %s values, the batch expects obs %d action %d HINT: the "
                     "learner's dims must match the shard's --obs-dim/--act-dim", who, n, ie.got, ie.field, b->obs_dim,
                     b->act_dim);
      else if (e != 0)
        rc = ib_fail(IB_EPROTO, "%s: malformed SampleReply item %d HINT: incompatible server", who, n);
      n++;
    } else if (f >= 2 && f <= 5 && wt == 0) {
      if (f == 2) out->n_demo = (uint32_t)v;
      else if (f == 3) out->n_online = (uint32_t)v;
      else if (f == 4) out->demo_size = v;
      else out->online_size = v;
    } else if (f >= 1 && f <= IC_REPLY_COLUMNS) {
      rc = ib_fail(IB_EPROTO, "%s: malformed SampleReply (field %u, wire type %d) HINT: incompatible server", who, f,
                   wt);
    } else if ((f == ibrl_ReadReply_table_size_tag || f == ibrl_ReadReply_inserted_tag) && wt == 0) {
      /* a ReadReply: its rows use SampleReply's field numbers, so this decoder reads both */
      if (f == ibrl_ReadReply_table_size_tag) out->table_size = v;
      else out->inserted = v;
    } /* else an unknown field: skipped */
  }
  out->n_items = n;
  return rc;
}
