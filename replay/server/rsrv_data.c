/* rsrv_data.c: the replay shard's data calls: Insert (a client stream), Sample and Read. How
 * each works is at the top of rsrv.c. */
#include <pthread.h>
#include <stdlib.h>

#include "ib.h"
#include "itemcodec.h"
#include "ratelim.h"
#include "rpc_server.h"
#include "rsrv_impl.h"
#include "rsrv_insert.h"
#include "store.h"
#include "wire.h"

/* ---- Insert (client stream) ---- */

/* Per-stream state: the totals for the final reply, the actor and table of the last item stored,
 * whose all-time count the reply carries (InsertReply.actor_stored), and the partial
 * acknowledgement: the stream's wait budget (its first message's max_wait_ms), the time its
 * messages waited in the limiter so far, and the messages not stored once the budget ran out. */
typedef struct insert_state {
  uint64_t received, inserted, duplicates;
  int have_actor, table;
  uint32_t actor;
  uint64_t msgs;       /* messages handled (stored or refused by the budget) */
  uint64_t budget_ns;  /* 0: no budget (a limiter wait that runs out fails the stream) */
  uint64_t waited_ns;
  uint32_t unacked;    /* messages not stored since the budget ran out (the rest of the stream) */
} insert_state;

static int insert_batch(rsrv *s, rpc_call_info *info, insert_state *st, insert_slot *slot,
                        const grpc_byte_buffer *msg, rpc_reply *rep);

int rsrv__h_insert(void *ctx, rpc_call_info *info, const grpc_byte_buffer *msg, rpc_reply *rep) {
  rsrv *s = ctx;
  insert_state *st = info->state;
  if (msg == NULL) { /* end of stream: reply with the totals and free the state */
    if (!info->cancelled && st == NULL) {
      ibrl_InsertReply r = ibrl_InsertReply_init_zero;
      r.durable = s->cfg.durability == PERSIST_WAL;
      if (wire_encode(&rep->bb, ibrl_InsertReply_fields, &r) != IB_OK)
        rpc_reply_fail(rep, GRPC_STATUS_INTERNAL, "%s", ib_errmsg());
    } else if (!info->cancelled) {
      ibrl_InsertReply r = ibrl_InsertReply_init_zero;
      r.received = st->received;
      r.inserted = st->inserted;
      r.duplicates = st->duplicates;
      r.durable = s->cfg.durability == PERSIST_WAL && s->per != NULL;
      r.unacked_messages = st->unacked;
      if (st->unacked > 0) __atomic_add_fetch(&s->insert_partial, 1, __ATOMIC_RELAXED);
      store_actor_info ai;
      if (st->have_actor && store_actor_get(s->st, st->table, st->actor, &ai) == IB_OK) r.actor_stored = ai.inserts;
      if (wire_encode(&rep->bb, ibrl_InsertReply_fields, &r) != IB_OK)
        rpc_reply_fail(rep, GRPC_STATUS_INTERNAL, "%s", ib_errmsg());
    }
    free(st);
    info->state = NULL;
    return 0;
  }
  if (rsrv__not_ready(s, rep, "Insert")) return 1;
  if (st == NULL) {
    st = ib_xcalloc(1, sizeof *st);
    info->state = st;
  }
  if (st->unacked > 0) { /* the budget ran out: the rest of the stream is not stored (nor read) */
    st->unacked++;
    return 0;
  }
  pthread_mutex_lock(&s->mu);
  insert_slot *slot = s->free_islots;
  if (slot != NULL) s->free_islots = slot->next;
  pthread_mutex_unlock(&s->mu);
  IB_CHECK(slot != NULL); /* at most `threads` handlers run at once and there are `threads` slots */
  int stop = insert_batch(s, info, st, slot, msg, rep);
  pthread_mutex_lock(&s->mu);
  slot->next = s->free_islots;
  s->free_islots = slot;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

/* Decodes one InsertRequest into `slot` and stores it. Returns 0, or 1 with rep set. */
static int insert_batch(rsrv *s, rpc_call_info *info, insert_state *st, insert_slot *slot,
                        const grpc_byte_buffer *msg, rpc_reply *rep) {
  char tname[STORE_NAME_MAX];
  size_t n = 0;
  if (rins_decode(&slot->dec, msg, tname, sizeof tname, &n, rep) != IB_OK) return 1;
  const char *table = tname[0] == '\0' ? WIRE_TABLE_ONLINE : tname;
  int t = store_table_find(s->st, table);
  if (t < 0) {
    rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "Insert: %s", ib_errmsg());
    return 1;
  }
  if (st->msgs++ == 0) st->budget_ns = (uint64_t)slot->dec.max_wait_ms * 1000000ull;
  /* The rate limiter counts the rows a message would store: `charged`. */
  uint64_t charged = t == s->t_online ? (uint64_t)n : 0;
  if (charged > 0 && !rlim_try_insert(s->lim, charged)) {
    /* It would wait. A writer's retry after a timeout resends rows the shard stored already:
     * they store nothing, so they do not wait (before, each resent message of duplicates queued
     * for the limiter again, timed out again and was resent again: under backpressure most of an
     * actor's acknowledged rows were such duplicates). */
    charged -= store_stored_count(s->st, t, slot->dec.items, n);
    if (charged > 0 && !rlim_try_insert(s->lim, charged)) {
      int could_block = rsrv__block_enter(s), capped = 0;
      uint64_t t0 = ib_now_ns();
      uint64_t dl = could_block ? rsrv__wait_deadline(s, info->deadline, &capped) : 0;
      /* With a budget (InsertRequest.max_wait_ms), the wait ends where the budget does when that
       * comes first; running out of it, or of blocking slots, is then no error: the stream's
       * reply acknowledges the messages stored before this one, and says how many were not. */
      uint64_t budget_end = t0 + (st->budget_ns - IB_MIN(st->waited_ns, st->budget_ns));
      int by_budget = st->budget_ns > 0 && (!could_block || budget_end < dl);
      if (by_budget && could_block) dl = budget_end;
      if (could_block) rpc_server_will_wait();
      int rc = by_budget ? rlim_await_insert_budget(s->lim, charged, dl) : rlim_await_insert(s->lim, charged, dl);
      if (could_block) rsrv__block_leave(s);
      st->waited_ns += ib_now_ns() - t0;
      if (rc == IB_ETIMEDOUT && by_budget) {
        st->unacked = 1;
        return 0;
      }
      if (rc != IB_OK) {
        rsrv__limiter_fail(rep, rc, "Insert", capped, could_block, s->cfg.max_block_ms);
        return 1;
      }
    }
  }
  st->received += n;
  store_insert_result res = {0, 0, 0};
  /* With the log, the store (and persist_barrier below) returns once the rows are durable, after a
   * flush: let other calls go on meanwhile. Checkpoint-only, neither waits. */
  if (s->cfg.durability == PERSIST_WAL && s->per != NULL) rpc_server_will_wait();
  /* Finiteness was checked inside the decode copy. */
  int rc = store_insert_prechecked(s->st, table, slot->dec.items, n, &res);
  if (rc != IB_OK) {
    if (charged > 0) rlim_undo_insert(s->lim, charged);
    if (rc == IB_EIO && s->per != NULL)
      rsrv__insert_io_fail(s, rep, table);
    else
      rpc_reply_fail(rep, rsrv__status_of(rc), "Insert into '%s': %s", table, ib_errmsg());
    return 1;
  }
  /* Count what was stored: give back the charged rows that turned out duplicates. (Rows counted
   * as stored above can only have been stored by now, so res.stored <= charged.) */
  if (charged > res.stored) rlim_undo_insert(s->lim, charged - res.stored);
  /* Duplicates are acknowledged as stored: only once their originals are durable (top of file). */
  if (res.duplicates > 0 && s->per != NULL && (rc = persist_barrier(s->per)) != IB_OK) {
    rsrv__insert_io_fail(s, rep, table);
    return 1;
  }
  st->inserted += res.stored;
  st->duplicates += res.duplicates;
  if (n > 0 && slot->dec.items[n - 1].seq != STORE_SEQ_NONE) {
    st->have_actor = 1;
    st->table = t;
    st->actor = slot->dec.items[n - 1].actor_id;
  }
  return 0;
}

/* ---- Sample ---- */

/* Encodes the sampled rows of `b` as a SampleReply of items with the hand codec, in one slice
 * sized exactly (items, then n_demo, n_online, demo_size, online_size, as nanopb would order
 * them). For clients that ask for columns, sample_columns below builds the reply instead. */
static grpc_byte_buffer *sample_encode(const store_batch *b) {
  ic_rows r = {b->obs_dim, b->act_dim, b->obs, b->action, b->next_obs, b->reward, b->discount, b->proposer,
               b->episode_end, b->episode_success, b->actor_id, b->seq, b->weight_version};
  size_t total = ic_items_len(&r, 0, b->n, IC_REPLY_ITEMS, NULL) + ic_varint_field_len(IC_REPLY_N_DEMO, b->n_demo) +
                 ic_varint_field_len(IC_REPLY_N_DEMO + 1, b->n_online) +
                 ic_varint_field_len(IC_REPLY_N_DEMO + 2, b->demo_size) +
                 ic_varint_field_len(IC_REPLY_N_DEMO + 3, b->online_size);
  grpc_slice sl = grpc_slice_malloc(total);
  uint8_t *p = GRPC_SLICE_START_PTR(sl);
  p = ic_items_put(p, &r, 0, b->n, IC_REPLY_ITEMS, NULL);
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO, b->n_demo);
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO + 1, b->n_online);
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO + 2, b->demo_size);
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO + 3, b->online_size);
  IB_CHECK((size_t)(p - GRPC_SLICE_START_PTR(sl)) == total);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

/* Samples straight into a SampleReply with columns: the column headers are laid out first, the
 * store gathers each row into its place in the reply (no copy through the batch), then the counts
 * follow. Returns IB_OK with *out set, or the store's error (nothing allocated then). */
static int sample_columns(rsrv *s, sample_slot *slot, uint32_t n, double frac, grpc_byte_buffer **out) {
  store_batch *b = &slot->batch;
  size_t cols = ic_cols_len(IC_REPLY_COLUMNS, n, b->obs_dim, b->act_dim);
  size_t cap = cols + 4 * 11; /* four varint fields of at most 11 bytes */
  grpc_slice sl = grpc_slice_malloc(cap);
  uint8_t *base = GRPC_SLICE_START_PTR(sl), *col[IC_NCOLS];
  uint8_t *p = ic_cols_layout(base, IC_REPLY_COLUMNS, n, b->obs_dim, b->act_dim, col);
  store_cols sc = {col[IC_COL_OBS], col[IC_COL_ACTION], col[IC_COL_NEXT_OBS], col[IC_COL_REWARD],
                   col[IC_COL_DISCOUNT], col[IC_COL_PROPOSER], col[IC_COL_ACTOR_ID], col[IC_COL_SEQ],
                   col[IC_COL_WV], col[IC_COL_FLAGS]};
  int rc = store_sample_cols(s->st, &slot->r, n, frac, b, &sc);
  if (rc != IB_OK) {
    grpc_slice_unref(sl);
    return rc;
  }
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO, b->n_demo);
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO + 1, b->n_online);
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO + 2, b->demo_size);
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO + 3, b->online_size);
  size_t used = (size_t)(p - base);
  IB_CHECK(used <= cap);
  grpc_slice msg = grpc_slice_sub(sl, 0, used); /* a new reference to the same bytes */
  grpc_slice_unref(sl);
  *out = grpc_raw_byte_buffer_create(&msg, 1);
  grpc_slice_unref(msg);
  return IB_OK;
}

void rsrv__h_sample(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep) {
  rsrv *s = ctx;
  if (rsrv__not_ready(s, rep, "Sample")) return;
  ibrl_SampleRequest req = ibrl_SampleRequest_init_zero;
  if (!rsrv__decode_req(&req, ibrl_SampleRequest_fields, req_bb, "SampleRequest", rep)) return;
  if (req.batch_size == 0 || req.batch_size > s->cfg.max_sample_batch) {
    rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "Sample: batch_size %u out of range HINT: use 1..%u "
                   "(the server's max sample batch)", req.batch_size, s->cfg.max_sample_batch);
    return;
  }
  double frac = -1.0;
  if (req.has_mix) {
    frac = req.mix.demo_fraction;
    if (!(frac >= 0.0 && frac <= 1.0)) {
      rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "Sample: mix.demo_fraction %g is not in [0, 1] HINT: "
                     "leave mix unset for a size-proportional mix", frac);
      return;
    }
  }
  if (!rlim_try_sample(s->lim, req.batch_size)) {
    int could_block = rsrv__block_enter(s), capped = 0;
    uint64_t dl = could_block ? rsrv__wait_deadline(s, info->deadline, &capped) : 0;
    if (could_block) rpc_server_will_wait();
    int rc = rlim_await_sample(s->lim, req.batch_size, dl);
    if (could_block) rsrv__block_leave(s);
    if (rc != IB_OK) {
      rsrv__limiter_fail(rep, rc, "Sample", capped, could_block, s->cfg.max_block_ms);
      return;
    }
  }
  pthread_mutex_lock(&s->mu);
  sample_slot *slot = s->free_slots;
  if (slot != NULL) s->free_slots = slot->next;
  pthread_mutex_unlock(&s->mu);
  if (slot == NULL) { /* more concurrent samplers than workers cannot happen; be safe anyway */
    rlim_undo_sample(s->lim, req.batch_size);
    rpc_reply_fail(rep, GRPC_STATUS_RESOURCE_EXHAUSTED, "Sample: no sampling slot free HINT: retry");
    return;
  }
  grpc_byte_buffer *reply = NULL;
  int rc;
  if (req.columns) rc = sample_columns(s, slot, req.batch_size, frac, &reply);
  else rc = store_sample(s->st, &slot->r, req.batch_size, frac, &slot->batch);
  if (rc != IB_OK) {
    rlim_undo_sample(s->lim, req.batch_size);
    if (rc == IB_EUNAVAIL)
      rpc_reply_fail(rep, GRPC_STATUS_FAILED_PRECONDITION, "Sample: %s HINT: insert items (or load demos) "
                     "first", ib_errmsg());
    else
      rpc_reply_fail(rep, rsrv__status_of(rc), "Sample: %s", ib_errmsg());
  } else {
    rep->bb = reply != NULL ? reply : sample_encode(&slot->batch);
  }
  pthread_mutex_lock(&s->mu);
  slot->next = s->free_slots;
  s->free_slots = slot;
  pthread_mutex_unlock(&s->mu);
}

/* ---- Read (inspection: a paged scan of one table) ---- */

/* Encodes the page in `b` as a ReadReply in one exactly sized slice: the rows as ItemColumns or as
 * Items (what the request asked for, the encodings of SampleReply), then table_size and inserted. */
static grpc_byte_buffer *read_encode(const store_batch *b, int columns, uint64_t size, uint64_t inserted) {
  ic_rows r = {b->obs_dim, b->act_dim, b->obs, b->action, b->next_obs, b->reward, b->discount, b->proposer,
               b->episode_end, b->episode_success, b->actor_id, b->seq, b->weight_version};
  size_t rows = columns ? ic_cols_len(IC_REPLY_COLUMNS, b->n, b->obs_dim, b->act_dim)
                        : ic_items_len(&r, 0, b->n, IC_REPLY_ITEMS, NULL);
  size_t total = rows + ic_varint_field_len(ibrl_ReadReply_table_size_tag, size) +
                 ic_varint_field_len(ibrl_ReadReply_inserted_tag, inserted);
  grpc_slice sl = grpc_slice_malloc(total);
  uint8_t *p = GRPC_SLICE_START_PTR(sl);
  if (columns) p = ic_cols_put(p, IC_REPLY_COLUMNS, &r, 0, b->n, NULL, NULL);
  else p = ic_items_put(p, &r, 0, b->n, IC_REPLY_ITEMS, NULL);
  p = ic_put_varint_field(p, ibrl_ReadReply_table_size_tag, size);
  p = ic_put_varint_field(p, ibrl_ReadReply_inserted_tag, inserted);
  IB_CHECK((size_t)(p - GRPC_SLICE_START_PTR(sl)) == total);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

void rsrv__h_read(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep) {
  (void)info;
  rsrv *s = ctx;
  if (rsrv__not_ready(s, rep, "Read")) return;
  ibrl_ReadRequest req = ibrl_ReadRequest_init_zero;
  if (!rsrv__decode_req(&req, ibrl_ReadRequest_fields, req_bb, "ReadRequest", rep)) return;
  if (req.count == 0 || req.count > s->cfg.max_sample_batch) {
    rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "Read: count %u out of range HINT: use 1..%u (the server's "
                   "max sample batch) and page with start", req.count, s->cfg.max_sample_batch);
    return;
  }
  const char *table = req.table[0] == '\0' ? WIRE_TABLE_ONLINE : req.table;
  int t = store_table_find(s->st, table);
  if (t < 0) {
    rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "Read: table: %s", ib_errmsg());
    return;
  }
  pthread_mutex_lock(&s->mu);
  sample_slot *slot = s->free_slots;
  if (slot != NULL) s->free_slots = slot->next;
  pthread_mutex_unlock(&s->mu);
  if (slot == NULL) { /* more concurrent calls than workers cannot happen; be safe anyway */
    rpc_reply_fail(rep, GRPC_STATUS_RESOURCE_EXHAUSTED, "Read: no slot free HINT: retry");
    return;
  }
  uint64_t size = 0, inserted = 0;
  int rc = store_read(s->st, t, req.start, req.count, &slot->batch, NULL, &size, &inserted);
  if (rc != IB_OK) rpc_reply_fail(rep, rsrv__status_of(rc), "Read: %s", ib_errmsg());
  else rep->bb = read_encode(&slot->batch, req.columns, size, inserted);
  pthread_mutex_lock(&s->mu);
  slot->next = s->free_slots;
  s->free_slots = slot;
  pthread_mutex_unlock(&s->mu);
}
