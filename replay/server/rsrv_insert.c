/* rsrv_insert.c: the shard's InsertRequest decoder (see rsrv_insert.h), moved out of rsrv.c so
 * that tests drive this code and not a copy of it.
 *
 * Design. The message is walked field by field with ic_msg (no flattening copy). Rows sent as
 * ItemColumns (ibrl's client) are copied column by column into the slot's columns, each length
 * checked against n and the dims before its copy and NaN/Inf checked inside it. Rows sent as Items
 * (Python, older clients) are checked in place (dims, NaN/Inf) and handed out as pointers into the
 * received slices; items that straddle two slices are read from the scratch, and items in an
 * unusual legal encoding are parsed into the slot's columns. Both forms may be mixed in one
 * message; the rows keep the order of the message. Every refusal is INVALID_ARGUMENT with the
 * message rsrv.c has always sent (tests match the texts). */
#include "rsrv_insert.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

void rins_slot_init(rins_slot *slot, int obs_dim, int act_dim, size_t max_items) {
  IB_CHECK(obs_dim > 0 && act_dim > 0 && max_items > 0);
  size_t N = max_items, O = (size_t)obs_dim, A = (size_t)act_dim;
  memset(slot, 0, sizeof *slot);
  slot->max_items = N;
  slot->items = ib_xcalloc(N, sizeof *slot->items);
  slot->rows.obs_dim = obs_dim;
  slot->rows.act_dim = act_dim;
  slot->rows.obs = ib_xmalloc(N * O * sizeof(float));
  slot->rows.action = ib_xmalloc(N * A * sizeof(float));
  slot->rows.next_obs = ib_xmalloc(N * O * sizeof(float));
  slot->rows.reward = ib_xmalloc(N * sizeof(float));
  slot->rows.discount = ib_xmalloc(N * sizeof(float));
  slot->rows.proposer = ib_xmalloc(N);
  slot->rows.episode_end = ib_xmalloc(N);
  slot->rows.episode_success = ib_xmalloc(N);
  slot->rows.actor_id = ib_xmalloc(N * sizeof(uint32_t));
  slot->rows.seq = ib_xmalloc(N * sizeof(uint64_t));
  slot->rows.weight_version = ib_xmalloc(N * sizeof(uint64_t));
}

void rins_slot_free(rins_slot *slot) {
  free(slot->items);
  free(slot->rows.obs);
  free(slot->rows.action);
  free(slot->rows.next_obs);
  free(slot->rows.reward);
  free(slot->rows.discount);
  free(slot->rows.proposer);
  free(slot->rows.episode_end);
  free(slot->rows.episode_success);
  free(slot->rows.actor_id);
  free(slot->rows.seq);
  free(slot->rows.weight_version);
  ic_flat_free(&slot->flat);
  memset(slot, 0, sizeof *slot);
}

/* Reads an InsertRequest.columns body of `len` bytes (the walk m is at it) into the slot's
 * columns from row *n on (after any per-item rows of the same message), checking every column's
 * length against n and the shard's dims before copying it, and NaN/Inf inside the copy; then
 * points slot->items[*n ..] at those rows and advances *n. Returns IB_OK, or an IB_E* of
 * rins_decode with rep set (INVALID_ARGUMENT naming the column and row). */
static int insert_columns(rins_slot *slot, ic_msg *m, size_t len, size_t *n, rpc_reply *rep) {
  ic_rows *rows = &slot->rows;
  size_t O = (size_t)rows->obs_dim, A = (size_t)rows->act_dim, nc = 0;
  ic_cols_dst d = {rows, slot->max_items - *n, SIZE_MAX, *n, 0, 1};
  ic_error ie;
  int e = ic_msg_cols_read(m, len, &d, &nc, &ie);
  switch (e) {
    case IC_OK: break;
    case IC_ETOOMANY:
      rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "InsertRequest.columns: %ld rows (after %zu items) exceed the "
                     "bound of %d items per message HINT: split the batch", ie.row, *n, (int)slot->max_items);
      return IB_EPROTO;
    case IC_EDIMS:
      rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "InsertRequest.columns.%s: %ld bytes, expected %ld for n = %ld "
                     "rows of obs_dim %d, act_dim %d HINT: every column holds exactly n values of its row width; "
                     "actor and replay must agree on --obs-dim/--act-dim", ie.field, ie.got, ie.want, ie.row,
                     rows->obs_dim, rows->act_dim);
      return IB_EMISMATCH;
    case IC_ENONFINITE:
      rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "Insert item %zu (columns row %ld): %s[%ld] = %g is not finite "
                     "HINT: the actor produced NaN/Inf; check the env, the policy and the n-step reward",
                     *n + (size_t)ie.row, ie.row, ie.field, ie.index, (double)ie.value);
      return IB_ENONFINITE;
    default:
      rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "InsertRequest.columns: malformed ItemColumns (a truncated "
                     "field or a wrong wire type) HINT: the peer does not speak proto/ibrl.proto");
      return IB_EPROTO;
  }
  for (size_t i = *n; i < *n + nc; i++) {
    store_item *it = &slot->items[i];
    it->obs = rows->obs + i * O;
    it->next_obs = rows->next_obs + i * O;
    it->action = rows->action + i * A;
    it->obs_n = it->next_obs_n = (uint32_t)O;
    it->act_n = (uint32_t)A;
    it->reward = rows->reward[i];
    it->discount = rows->discount[i];
    it->proposer = rows->proposer[i];
    it->actor_id = rows->actor_id[i];
    it->seq = rows->seq[i];
    it->weight_version = rows->weight_version[i];
    it->episode_end = rows->episode_end[i];
    it->episode_success = rows->episode_success[i];
  }
  *n += nc;
  return IB_OK;
}

int rins_decode(rins_slot *slot, const grpc_byte_buffer *msg, char *table, size_t table_cap, size_t *n,
                rpc_reply *rep) {
  table[0] = '\0';
  *n = 0;
  slot->max_wait_ms = 0;
  ic_msg m;
  if (ic_msg_init(&m, msg, &slot->flat) != 0) {
    rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "InsertRequest: cannot read the message (compressed?) HINT: send "
                   "it uncompressed");
    return IB_EPROTO;
  }
  ic_rows *rows = &slot->rows;
  size_t O = (size_t)rows->obs_dim, A = (size_t)rows->act_dim;
  const char *bad = NULL;
  for (;;) {
    uint32_t f;
    int wt, more;
    uint64_t val;
    const uint8_t *body;
    size_t flen;
    more = ic_msg_next_hdr(&m, &f, &wt, &val, &flen);
    if (more == 0) break;
    if (more < 0) {
      bad = "truncated or bad field";
      break;
    }
    if (f == IC_INSERT_MAX_WAIT) { /* refused as nanopb refuses it (the fuzzer compares the two) */
      if (wt != 0 || val > UINT32_MAX) {
        bad = wt != 0 ? "max_wait_ms with a wrong wire type" : "max_wait_ms larger than 2^32 - 1";
        break;
      }
      slot->max_wait_ms = (uint32_t)val;
      continue;
    }
    if (f != IC_INSERT_TABLE && f != IC_INSERT_ITEMS && f != IC_INSERT_COLUMNS) { /* unknown: skipped */
      if (wt == 2) ic_msg_skip(&m, flen);
      continue;
    }
    if (wt != 2) {
      bad = "table, items or columns field with a wrong wire type";
      break;
    }
    if (f == IC_INSERT_COLUMNS) {
      int rc = insert_columns(slot, &m, flen, n, rep);
      if (rc != IB_OK) return rc;
      continue;
    }
    body = ic_msg_body(&m, flen);
    if (f == IC_INSERT_TABLE) {
      if (flen >= table_cap) {
        rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "Insert: table name of %zu bytes is too long HINT: "
                       "\"online\" or \"demo\"", flen);
        return IB_EPROTO;
      }
      memcpy(table, body, flen);
      table[flen] = '\0';
      continue;
    }
    if (*n >= slot->max_items) {
      rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "InsertRequest: too many items (at most %d items per message) "
                     "HINT: split the batch", (int)slot->max_items);
      return IB_EPROTO;
    }
    size_t i = *n;
    /* Items lie back to back in the received slices, which the kernel filled on whichever
     * thread polled the socket: fetch the item after next while this one is checked. */
    for (size_t off = 0; off < flen; off += 64) __builtin_prefetch(body + 2 * flen + off, 0, 3);
    store_item *d = &slot->items[i];
    ic_error ie;
    ic_item_ref ref;
    int e = ic_item_view(&ref, body, flen, rows->obs_dim, rows->act_dim, 1, &ie);
    if (e == IC_OK) {
      d->obs = ref.obs;
      d->next_obs = ref.next_obs;
      d->action = ref.action;
      d->reward = ref.reward;
      d->discount = ref.discount;
      d->proposer = ref.proposer;
      d->actor_id = ref.actor_id;
      d->seq = ref.seq;
      d->weight_version = ref.weight_version;
      d->episode_end = ref.episode_end;
      d->episode_success = ref.episode_success;
    } else if (e == IC_ENOVIEW) {
      e = ic_item_parse(rows, i, body, flen, 1, &ie);
      d->obs = rows->obs + i * O;
      d->next_obs = rows->next_obs + i * O;
      d->action = rows->action + i * A;
      d->reward = rows->reward[i];
      d->discount = rows->discount[i];
      d->proposer = rows->proposer[i];
      d->actor_id = rows->actor_id[i];
      d->seq = rows->seq[i];
      d->weight_version = rows->weight_version[i];
      d->episode_end = rows->episode_end[i];
      d->episode_success = rows->episode_success[i];
    }
    if (e == IC_EDIMS) {
      int act = strcmp(ie.field, "action") == 0;
      rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "Insert item %zu: %s has %ld values, the shard's %s is %d "
                     "HINT: actor and replay were configured with different tasks, frame stacks or action chunks "
                     "(--obs-dim/--act-dim)", i, ie.field, ie.got, act ? "act_dim" : "obs_dim",
                     act ? rows->act_dim : rows->obs_dim);
      return IB_EMISMATCH;
    }
    if (e == IC_ENONFINITE) {
      rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "Insert item %zu: %s[%ld] = %g is not finite HINT: the actor "
                     "produced NaN/Inf; check the env, the policy and the n-step reward", i, ie.field, ie.index,
                     (double)ie.value);
      return IB_ENONFINITE;
    }
    if (e != IC_OK) {
      bad = "an item is not a valid Item";
      break;
    }
    d->obs_n = d->next_obs_n = (uint32_t)O;
    d->act_n = (uint32_t)A;
    (*n)++;
  }
  if (bad != NULL) {
    rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "InsertRequest: malformed message (%s, after %zu items) HINT: the "
                   "peer does not speak proto/ibrl.proto", bad, *n);
    return IB_EPROTO;
  }
  return IB_OK;
}
