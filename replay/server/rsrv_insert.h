/* rsrv_insert.h: the replay shard's decoder of one InsertRequest (prefix rins_): the bytes of a
 * received message, walked slice by slice with the hand codec (itemcodec.h), become store_items
 * that store_insert_prechecked can take, every float already checked for NaN/Inf and every
 * array for the shard's dims. rsrv.c calls it once per message of the Insert stream; tests call
 * it directly with any bytes, so the fuzzer drives the shard's own decoder and not a copy.
 *
 * It knows gRPC byte buffers and the framework's reply type (rpc_reply, for the refusal that the
 * handler sends as it is), nothing of the rate limiter, persistence or the server loop.
 *
 * Ownership: a slot is caller-owned storage (rins_slot_init / rins_slot_free); its items point
 * into the last decoded message and into the slot, so they are valid until either changes.
 * Thread-safety: a slot belongs to one thread at a time (rsrv.c keeps a pool of them). */
#ifndef IB_RSRV_INSERT_H
#define IB_RSRV_INSERT_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "itemcodec.h"
#include "rpc_server.h"
#include "store.h"

/* The decode state of one InsertRequest, reused across messages and streams: the store_item
 * views, columns for the rows that need a copy (ItemColumns, items encoded unusually), and the
 * scratch for items that straddle two slices. */
typedef struct rins_slot {
  size_t max_items;  /* rows per message; more are refused */
  store_item *items; /* owned [max_items]: rows [0, n) after a successful rins_decode */
  ic_rows rows;      /* the columns, each owned [max_items x its width]; rows.obs_dim/act_dim are the shard's */
  ic_flat flat;      /* owned: straddling items (ic_msg) */
  uint32_t max_wait_ms; /* InsertRequest.max_wait_ms of the last decoded message (0: absent) */
} rins_slot;

/* Sizes a zeroed slot for messages of at most max_items rows of obs_dim x act_dim (all > 0).
 * Allocates everything the decode will use (aborts on out-of-memory), except the straddle
 * scratch, which grows once to the largest message. */
void rins_slot_init(rins_slot *slot, int obs_dim, int act_dim, size_t max_items);

/* Frees what the slot owns and zeroes it. Accepts a zeroed slot. */
void rins_slot_free(rins_slot *slot);

/* Decodes InsertRequest `msg` (borrowed) and points slot->items[0, *n) at its rows. Items are
 * used where they lie in the received slice when they can be (their floats checked for NaN/Inf in
 * place), so the store's copy into its table is the only copy; an item split over two slices goes
 * through the slot's scratch, one encoded unusually (unpacked floats, several runs) and
 * ItemColumns are copied into the slot's columns, each column's length checked against n and the
 * dims before its copy and NaN/Inf inside it. Fields may come in any order and repeat; unknown
 * fields are skipped. On success every row has the slot's dims and finite floats, and *n <=
 * max_items. *table receives the table name ("" if absent; at most table_cap - 1 bytes), and
 * slot->max_wait_ms the message's max_wait_ms (0 if absent; one that is not a uint32 varint is
 * refused as malformed).
 * Returns IB_OK, or on a refusal rep->status = INVALID_ARGUMENT with rep->msg naming the item,
 * row or field and giving a HINT, and: IB_ENONFINITE (a NaN or Inf), IB_EMISMATCH (an array of
 * other dims than the shard's), IB_EPROTO (anything else: not valid protobuf for the message,
 * more than max_items rows, a table name too long, a buffer it cannot read). *n is then not the
 * row count. The items are valid until msg or the slot changes. */
int rins_decode(rins_slot *slot, const grpc_byte_buffer *msg, char *table, size_t table_cap, size_t *n,
                rpc_reply *rep);

#endif /* IB_RSRV_INSERT_H */
