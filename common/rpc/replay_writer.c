/* replay_writer.c: inserts (rc_writer; see replay_client.h for the contract).
 * A writer encodes each batch once, straight from the caller's rows, into one
 * message, keeps the messages that are not acknowledged yet (at most max_pending <= 8192 rows,
 * the store's dedup window), sends each on an open Insert client stream, and treats the
 * stream's final reply as the acknowledgement of everything sent on it. A pipelined writer
 * (rc_writer_pipeline) half-closes its stream every max_pending / 2 rows and sends on a fresh
 * one while that reply comes, reading it when the fresh stream is full in turn: no write waits
 * for a reply, where an in-order writer waits for one per stream, which is what one fast client
 * loses most to (docs/results/replay-throughput.md). At most two streams, max_pending rows, are then
 * unacknowledged, and the shard may store the two out of order; so the rows a writer leaves
 * unacknowledged when it stops or dies can be a gap below rows it stored, not only a tail
 * (an actor restarted from the highest stored seq would never fill it). If anything fails it
 * reopens the stream and resends the same bytes, i.e. the same (actor_id, seq), which the
 * shard deduplicates; so an item is stored at most once and, unless the error is permanent,
 * at least once. Under backpressure the shard acknowledges part of a stream
 * (InsertRequest.max_wait_ms, half the client's deadline by default): the messages it stored are
 * dropped and only the rest is resent, so a stream blocked by the rate limiter no longer ends in
 * a cancel and a resend of rows already stored (most of an actor's acknowledged rows were such
 * duplicates). Each stream op is bounded by the client's deadline by plucking with a timeout and
 * cancelling the call when it passes (the stream itself may live longer than one deadline). A write
 * leaves its message in flight and returns, so the actor prepares its next batch while the
 * transport sends; the next write (or the flush) waits for it. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "ib.h"
#include "itemcodec.h"
#include "log.h"
#include "replay_client_impl.h"
#include "wire.h"

#define WRITER_MAX_PENDING 8192 /* the store's STORE_DEDUP_WINDOW */
#define WRITER_DEFAULT_PENDING 1024
#define STREAM_LIFETIME_MS (10L * 60 * 1000)
#define WRITER_REPLY_MARGIN_MS 50 /* a reply's time on the wire, beyond the shard's max_wait */

/* ---- writer ---- */

/* One pending message: an encoded InsertRequest kept until the shard acknowledges it, so a
 * retry resends the same bytes (same seqs) without encoding again. */
typedef struct pmsg {
  grpc_slice s; /* owned */
  int rows;
} pmsg;

/* A half-closed Insert stream whose reply (the acknowledgement of its messages, the n_msgs
 * pending ones from msgs[first]) has not been read yet: where its final batch puts the results. */
typedef struct wclose {
  grpc_call *call; /* owned, or NULL: no stream is closing */
  int first;       /* its first message's index in msgs: 0 for the closing stream */
  int n_msgs, n_rows;
  int broken;      /* it was cancelled before the half-close: its reply is an error */
  grpc_metadata_array md_init, md_trail;
  grpc_byte_buffer *bb;
  grpc_status_code status;
  grpc_slice details;
  const char *errstr;
} wclose;

struct rc_writer {
  rc_client *c;          /* borrowed */
  int shard;
  char table[32];
  uint32_t actor_id;
  uint64_t next_seq;
  int max_pending;
  int stream_rows;       /* rows after which the open stream is half-closed: max_pending / 2 when
                          * pipelined (rc_writer_pipeline), else never (INT_MAX) */
  int obs_dim, act_dim;  /* of the first batch (0 before it) */
  pmsg *msgs;            /* owned, [max_pending]: messages not acknowledged yet, oldest first */
  int n_msgs, n_rows;
  wclose closing;        /* the stream before the open one, half-closed, awaiting its reply */
  int base;              /* the open stream carries msgs[base ..]: base = closing.n_msgs */
  int sent;              /* messages msgs[base .. base + sent) went out on the open stream */
  grpc_completion_queue *cq; /* owned, pluck */
  grpc_call *call;       /* the open Insert stream, or NULL */
  grpc_byte_buffer *inflight; /* owned: message number base + sent being sent, or NULL */
  int broken;            /* the open stream failed: finish it and resend */
  rc_writer_stats st;
  uint64_t first_seq;    /* the seq of the first item this writer stamped */
  int have_prior;        /* prior is set (a reply carried actor_stored) */
  int64_t prior;         /* a lower bound on the items the shard held for this actor before this
                          * writer's first (loss_check) */
  uint32_t max_wait_ms;  /* InsertRequest.max_wait_ms of the messages it encodes (0: none) */
  int progress;          /* the last reply that acknowledged part of its stream acknowledged some */
};

int rc_writer_open(rc_writer **out, rc_client *c, const char *table, uint32_t actor_id, uint64_t first_seq,
                   int max_pending) {
  IB_CHECK(out != NULL && c != NULL);
  *out = NULL;
  if (table == NULL) table = WIRE_TABLE_ONLINE;
  if (table[0] == '\0' || strlen(table) >= 32)
    return ib_fail(IB_EINVAL, "replay table name '%s' is empty or longer than 31 characters HINT: use \"online\" or \"demo\"",
                   table);
  if (max_pending == 0) max_pending = WRITER_DEFAULT_PENDING;
  if (max_pending < 1 || max_pending > WRITER_MAX_PENDING)
    return ib_fail(IB_EINVAL, "writer max_pending %d is outside [1, %d] HINT: the shard deduplicates retries only "
                   "within its window of %d seqs", max_pending, WRITER_MAX_PENDING, WRITER_MAX_PENDING);
  rc_writer *w = ib_xcalloc(1, sizeof *w);
  w->c = c;
  w->shard = rc_client_shard_of(c, actor_id);
  snprintf(w->table, sizeof w->table, "%s", table);
  w->actor_id = actor_id;
  w->next_seq = first_seq;
  w->first_seq = first_seq;
  w->max_pending = max_pending;
  w->stream_rows = INT_MAX;
  w->max_wait_ms = (uint32_t)IB_MAX(1, c->deadline_ms / 2);
  w->msgs = ib_xcalloc((size_t)max_pending, sizeof *w->msgs);
  w->cq = grpc_completion_queue_create_for_pluck(NULL);
  *out = w;
  return IB_OK;
}

/* Whether the shard still holds what it acknowledged, from an InsertReply's actor_stored (the
 * items it holds on record for this actor, all time): it holds P items from before this writer
 * plus this writer's items it stored, at least the acknowledged ones and at most the ones stamped
 * so far, so P >= stored - stamped at every reply, and without a loss stored >= P + acked. A reply
 * below max(stored - stamped) + acked means the shard lost acknowledged items: a restart from a
 * disk that lost data it had reported flushed, a salvage, or, with --durability ckpt, any crash.
 * Exact for an in-order writer (at each reply everything stamped is acknowledged); a pipelined
 * writer's bound can be looser by a stream. Counted in st.lost and logged once per new loss.
 * Never a false alarm: counts only grow unless items vanish (another writer under the same
 * actor id only adds). 0 (a shard older than the field) is ignored. */
static void loss_check(rc_writer *w, uint64_t stored, bool durable) {
  if (stored == 0) return;
  int64_t stamped = (int64_t)(w->next_seq - w->first_seq);
  int64_t p = (int64_t)stored - stamped;
  if (!w->have_prior || p > w->prior) w->prior = p;
  w->have_prior = 1;
  int64_t deficit = w->prior + (int64_t)w->st.acked - (int64_t)stored;
  if (deficit <= (int64_t)w->st.lost) return;
  uint64_t fresh = (uint64_t)deficit - w->st.lost;
  w->st.lost = (uint64_t)deficit;
  log_error("replay shard %d (%s) no longer holds %llu item(s) of actor %u that it acknowledged (%llu in all) HINT: %s",
            w->shard, w->c->sh[w->shard].target, (unsigned long long)fresh, w->actor_id,
            (unsigned long long)w->st.lost,
            durable ? "it restarted from a disk that lost data it had reported flushed, or with --salvage; see its log "
                      "and `ibrl-replayctl info`"
                    : "the shard runs with --durability ckpt, which loses the items since its last checkpoint when it "
                      "dies; use --durability wal");
}

/* Drops the k pending messages from msgs[first] (acknowledged, or given up). */
static void writer_drop_range(rc_writer *w, int first, int k) {
  IB_ASSERT(first >= 0 && k >= 0 && first + k <= w->n_msgs);
  for (int i = first; i < first + k; i++) {
    w->n_rows -= w->msgs[i].rows;
    grpc_slice_unref(w->msgs[i].s);
  }
  memmove(w->msgs + first, w->msgs + first + k, (size_t)(w->n_msgs - first - k) * sizeof *w->msgs);
  w->n_msgs -= k;
}

/* Drops every pending message. */
static void writer_drop(rc_writer *w) { writer_drop_range(w, 0, w->n_msgs); }

/* Waits for the batch tagged `tag` of `call` for at most ms; on timeout cancels the call and
 * waits for the (then prompt) completion. Returns the event's success flag (1/0), or -1 after a
 * timeout. */
static int writer_wait_call(rc_writer *w, grpc_call *call, void *tag, long ms) {
  grpc_event ev = rc__pluck(w->c, w->cq, tag, wire_deadline_ms(ms));
  if (ev.type == GRPC_QUEUE_TIMEOUT) {
    grpc_call_cancel(call, NULL);
    ev = rc__pluck(w->c, w->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME));
    IB_CHECK(ev.type == GRPC_OP_COMPLETE);
    return -1;
  }
  IB_CHECK(ev.type == GRPC_OP_COMPLETE);
  return ev.success ? 1 : 0;
}

static int writer_wait(rc_writer *w, void *tag, long ms) { return writer_wait_call(w, w->call, tag, ms); }

static void writer_stream_open(rc_writer *w) {
  IB_CHECK(w->call == NULL);
  rc_client *c = w->c;
  w->call = grpc_channel_create_call(c->sh[w->shard].ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
                                     grpc_slice_from_static_string(WIRE_PATH_INSERT), NULL,
                                     wire_deadline_ms(STREAM_LIFETIME_MS), NULL);
  IB_CHECK(w->call != NULL);
  w->broken = 0;
  w->sent = 0;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  op.data.send_initial_metadata.count = c->auth.set ? 1 : 0;
  op.data.send_initial_metadata.metadata = c->auth.set ? &c->auth.md : NULL;
  IB_CHECK(grpc_call_start_batch(w->call, &op, 1, &w->call, NULL) == GRPC_CALL_OK);
  if (writer_wait(w, &w->call, c->deadline_ms) != 1) w->broken = 1;
}

/* Waits for the send in flight (if any): its message then counts as sent, or the stream as
 * broken. */
static void writer_send_wait(rc_writer *w) {
  if (w->inflight == NULL) return;
  int ok = writer_wait(w, &w->sent, w->c->deadline_ms);
  grpc_byte_buffer_destroy(w->inflight);
  w->inflight = NULL;
  if (ok == 1)
    w->sent++;
  else
    w->broken = 1;
}

/* Sends the pending messages not sent on the open stream yet, one at a time (one SEND_MESSAGE
 * per call may be outstanding). The last one is left in flight, so the caller can prepare its
 * next batch meanwhile; the next send or the finish waits for it. */
static void writer_send_rest(rc_writer *w) {
  for (;;) {
    int next = w->base + w->sent + (w->inflight != NULL);
    if (w->broken || next >= w->n_msgs) return;
    writer_send_wait(w);
    if (w->broken) return;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    w->inflight = grpc_raw_byte_buffer_create(&w->msgs[next].s, 1); /* a ref, not a copy */
    op.data.send_message.send_message = w->inflight;
    IB_CHECK(grpc_call_start_batch(w->call, &op, 1, &w->sent, NULL) == GRPC_CALL_OK);
  }
}

/* Half-closes the open stream (or cancels it if it broke or left messages unsent) and starts
 * reading its reply into f, without waiting: the stream and its messages msgs[base ..] move to
 * f, and no stream is open afterwards. */
static void writer_finish_start(rc_writer *w, wclose *f) {
  IB_CHECK(w->call != NULL && f->call == NULL);
  writer_send_wait(w);
  if (w->base + w->sent < w->n_msgs) w->broken = 1; /* unsent messages: this stream cannot ack them */
  f->call = w->call;
  f->first = w->base;
  f->n_msgs = w->n_msgs - w->base;
  f->n_rows = 0;
  for (int k = w->base; k < w->n_msgs; k++) f->n_rows += w->msgs[k].rows;
  f->broken = w->broken;
  grpc_metadata_array_init(&f->md_init);
  grpc_metadata_array_init(&f->md_trail);
  f->bb = NULL;
  f->status = GRPC_STATUS_UNKNOWN;
  f->details = grpc_empty_slice();
  f->errstr = NULL;
  if (f->broken) grpc_call_cancel(f->call, NULL);
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  int k = 0;
  if (!f->broken) ops[k++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[k].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[k++].data.recv_initial_metadata.recv_initial_metadata = &f->md_init;
  ops[k].op = GRPC_OP_RECV_MESSAGE;
  ops[k++].data.recv_message.recv_message = &f->bb;
  ops[k].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[k].data.recv_status_on_client.trailing_metadata = &f->md_trail;
  ops[k].data.recv_status_on_client.status = &f->status;
  ops[k].data.recv_status_on_client.status_details = &f->details;
  ops[k++].data.recv_status_on_client.error_string = &f->errstr;
  IB_CHECK(grpc_call_start_batch(f->call, ops, (size_t)k, f, NULL) == GRPC_CALL_OK);
  w->call = NULL;
  w->sent = 0;
  w->broken = 0;
}

/* Waits (at most ms) for the reply of the stream in f, whose messages are the f->n_msgs pending
 * ones from msgs[f->first]. On success they are acknowledged: counted and dropped (on a partial
 * acknowledgement, the leading ones, and IB_EFULL is returned). Returns IB_OK or the error (the
 * messages stay pending). The call is released either way. */
static int writer_finish_collect(rc_writer *w, wclose *f, long ms) {
  IB_CHECK(f->call != NULL);
  int ok = writer_wait_call(w, f->call, f, ms);
  int rc;
  ibrl_InsertReply rep = ibrl_InsertReply_init_zero;
  if (ok < 0) {
    rc = ib_fail(IB_ETIMEDOUT, "replay shard %d (%s) Insert: no reply within %ld ms HINT: the shard is slow or blocked by "
                 "its rate limiter", w->shard, w->c->sh[w->shard].target, ms);
  } else if (f->status != GRPC_STATUS_OK) {
    rc = rc__call_fail(w->c, w->shard, "Insert", f->status, f->details);
  } else if (f->broken) {
    rc = ib_fail(IB_EUNAVAIL, "replay shard %d (%s) Insert: the stream broke while sending HINT: retrying", w->shard,
                 w->c->sh[w->shard].target);
  } else {
    rc = wire_decode(&rep, ibrl_InsertReply_fields, f->bb, "InsertReply");
  }
  /* The reply acknowledges the leading k messages: all but unacked_messages, which the shard's
   * rate limiter held past max_wait_ms and which it did not store. */
  int k = f->n_msgs, k_rows = f->n_rows;
  if (rc == IB_OK && rep.unacked_messages > 0) {
    if (rep.unacked_messages > (uint32_t)f->n_msgs) {
      rc = ib_fail(IB_EPROTO, "replay shard %d (%s) Insert: %u of %d messages reported unacknowledged HINT: the "
                   "shard does not speak this client's protocol; run the same ibrl version on actors and replay shards",
                   w->shard, w->c->sh[w->shard].target, (unsigned)rep.unacked_messages, f->n_msgs);
    } else {
      k = f->n_msgs - (int)rep.unacked_messages;
      k_rows = 0;
      for (int i = 0; i < k; i++) k_rows += w->msgs[f->first + i].rows;
    }
  }
  if (rc == IB_OK && rep.received < (uint64_t)k_rows) {
    /* Every row of these messages went out on this stream; a shard that counts fewer did not
     * read them (one that ignores the columnar field: an older ibrl-replay). Never report such
     * items as acknowledged. */
    rc = ib_fail(IB_EPROTO, "replay shard %d (%s) Insert: acknowledged %llu of %d items HINT: the shard does not "
                 "read this client's columnar inserts; run the same ibrl version on actors and replay shards",
                 w->shard, w->c->sh[w->shard].target, (unsigned long long)rep.received, k_rows);
  }
  if (f->bb) grpc_byte_buffer_destroy(f->bb);
  grpc_metadata_array_destroy(&f->md_init);
  grpc_metadata_array_destroy(&f->md_trail);
  grpc_slice_unref(f->details);
  gpr_free((void *)f->errstr);
  grpc_call_unref(f->call);
  f->call = NULL;
  if (rc == IB_OK) {
    w->st.acked += rep.received;
    w->st.inserted += rep.inserted;
    w->st.duplicates += rep.duplicates;
    writer_drop_range(w, f->first, k);
    loss_check(w, rep.actor_stored, rep.durable);
    if (k < f->n_msgs) {
      w->st.partial++;
      w->progress = k > 0;
      rc = ib_fail(IB_EFULL, "replay shard %d (%s) Insert: rate limited: %d of %d items stored within the %u ms "
                   "wait budget HINT: the learner is behind (backpressure); the rest is resent", w->shard,
                   w->c->sh[w->shard].target, k_rows, f->n_rows, (unsigned)w->max_wait_ms);
    }
  }
  return rc;
}

/* Collects the closing stream's reply, if there is one: the open stream then carries the oldest
 * pending messages. If the shard acknowledged only part of the closing stream (its rate limiter
 * held the rest past max_wait), the open stream is half-closed and its reply read too: the shard
 * may have stored its messages meanwhile, and only a reply says which (a cancel would send them
 * again as duplicates). Its acknowledged messages are dropped from the middle of the pending
 * ones, the rest are resent in order by the next flush, and IB_EFULL is returned. On any other
 * failure the open stream is cancelled (its messages count on the acknowledgement of the closing
 * one's: a retry resends them all on one fresh stream). */
static int writer_collect_closing(rc_writer *w, long ms) {
  if (w->closing.call == NULL) return IB_OK;
  int n_before = w->n_msgs;
  int rc = writer_finish_collect(w, &w->closing, ms);
  w->base -= n_before - w->n_msgs; /* the open stream's first message, after the drop */
  if (rc == IB_OK || w->call == NULL) {
    w->base = 0;
    return rc;
  }
  char msg[512];
  snprintf(msg, sizeof msg, "%s", ib_errmsg());
  if (rc != IB_EFULL) {
    grpc_call_cancel(w->call, NULL);
    w->broken = 1;
  }
  int progress = w->progress;
  wclose f;
  memset(&f, 0, sizeof f);
  writer_finish_start(w, &f);
  if (f.broken) f.n_msgs = 0; /* nothing of it is acknowledged: it was cancelled */
  n_before = w->n_msgs;
  (void)writer_finish_collect(w, &f, rc == IB_EFULL ? ms : 100);
  w->progress = progress || w->n_msgs < n_before;
  w->base = 0;
  return ib_fail(rc, "%s", msg);
}

/* Half-closes the open stream without waiting for its reply, so the next rows go out on a fresh
 * stream meanwhile: first the stream before it is collected, so at most two streams (and
 * max_pending rows) are unacknowledged. Returns IB_OK, or the closing stream's error (then no
 * stream is open and every pending message waits for a flush to resend it). */
static int writer_rotate(rc_writer *w, long ms) {
  int rc = writer_collect_closing(w, ms);
  if (rc != IB_OK) return rc;
  if (w->call == NULL) return IB_OK;
  writer_finish_start(w, &w->closing);
  w->base = w->closing.n_msgs;
  return IB_OK;
}

static void sleep_ms(long ms) {
  if (ms <= 0) return;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Half-closes the open stream (opened first if pending messages have none) and waits for its
 * reply: afterwards nothing is pending, or the error is returned. */
static int writer_finish_all(rc_writer *w, long ms) {
  if (w->n_msgs == 0 && w->call == NULL) return IB_OK;
  if (w->call == NULL) writer_stream_open(w);
  writer_send_rest(w);
  wclose f;
  memset(&f, 0, sizeof f);
  writer_finish_start(w, &f);
  return writer_finish_collect(w, &f, ms);
}

static long ms_left(uint64_t t_end) { return (long)((int64_t)(t_end - ib_now_ns()) / 1000000); }

int rc_writer_flush(rc_writer *w, long timeout_ms) {
  IB_CHECK(w != NULL);
  if (w->n_msgs == 0 && w->call == NULL && w->closing.call == NULL) return IB_OK;
  long budget = timeout_ms < 0 ? w->c->deadline_ms : timeout_ms;
  uint64_t t_end = ib_now_ns() + (uint64_t)budget * 1000000ull;
  long backoff = 20;
  int rc = IB_OK;
  for (;;) {
    w->progress = 0;
    rc = writer_collect_closing(w, IB_MAX(ms_left(t_end), 1));
    if (rc == IB_OK) rc = writer_finish_all(w, IB_MAX(ms_left(t_end), 1));
    if (rc == IB_OK) {
      IB_ASSERT(w->n_msgs == 0 && w->n_rows == 0);
      return IB_OK;
    }
    int retryable = rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT || rc == IB_EFULL;
    if (!retryable) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", ib_errmsg());
      int dropped = w->n_rows;
      writer_drop(w);
      return ib_fail(rc, "%s (%d unacknowledged items of actor %u dropped: resending cannot succeed)", msg, dropped,
                     w->actor_id);
    }
    long now_left = ms_left(t_end);
    if (now_left <= 0) return rc;
    /* Part was acknowledged: send the rest at once. Otherwise back off first. */
    int resend = rc == IB_EFULL && w->progress;
    long nap = resend ? 0 : IB_MIN(backoff, now_left);
    /* An attempt that the shard may hold for max_wait would be cancelled before its reply comes;
     * rows the shard stores after that (the limiter let them through late) would come back as
     * duplicates. Leave them to the caller's next flush instead. */
    if ((rc == IB_EFULL || rc == IB_ETIMEDOUT) && w->max_wait_ms > 0 &&
        now_left - nap < (long)w->max_wait_ms + WRITER_REPLY_MARGIN_MS)
      return rc;
    if (resend) {
      backoff = 20;
      continue;
    }
    w->st.retries++;
    sleep_ms(nap);
    backoff = IB_MIN(backoff * 2, 1000);
  }
}

/* Checks rows [0, b->n) as the shard would (finite values, discount in [0, 1], a known
 * proposer), so one bad row is refused here, alone, instead of failing a whole stream of
 * pending items at the shard. */
static int batch_check(const rc_batch *b, uint32_t actor_id, int finite_known) {
  size_t od = (size_t)b->obs_dim, ad = (size_t)b->act_dim, n = (size_t)b->n;
  /* The common case in one vector pass per column (or none when the encoder already checked the
   * floats in its copy: finite_known = 1); the row loop below only runs to name a bad row (or a
   * bad discount / proposer, which the pass does not look at). */
  int finite = finite_known || (ic_floats_finite(b->obs, n * od) && ic_floats_finite(b->next_obs, n * od) &&
                                ic_floats_finite(b->action, n * ad) && ic_floats_finite(b->reward, n));
  int scalars_ok = 1;
  for (size_t i = 0; i < n; i++) scalars_ok &= (b->discount[i] >= 0 && b->discount[i] <= 1) & (b->proposer[i] <= RC_PROPOSER_DEMO);
  if (finite && scalars_ok) return IB_OK;
  for (int i = 0; i < b->n; i++) {
    const char *what = NULL;
    long j = -1;
    if ((j = ib_first_nonfinite(b->obs + i * od, od)) >= 0) what = "obs";
    else if ((j = ib_first_nonfinite(b->next_obs + i * od, od)) >= 0) what = "next_obs";
    else if ((j = ib_first_nonfinite(b->action + i * ad, ad)) >= 0) what = "action";
    else if (!isfinite(b->reward[i])) what = "reward", j = 0;
    if (what != NULL)
      return ib_fail(IB_ENONFINITE, "actor %u insert row %d: %s[%ld] is not finite HINT: check the environment and "
                     "policy outputs before sending; nothing of this batch was taken", actor_id, i, what, j);
    if (!(b->discount[i] >= 0 && b->discount[i] <= 1))
      return ib_fail(IB_EINVAL, "actor %u insert row %d: discount %g is not in [0, 1] HINT: gamma^n, or 0 when "
                     "terminal; nothing of this batch was taken", actor_id, i, b->discount[i]);
    if (b->proposer[i] > RC_PROPOSER_DEMO)
      return ib_fail(IB_EINVAL, "actor %u insert row %d: proposer %u is unknown HINT: RC_PROPOSER_IL, _RL or _DEMO; "
                     "nothing of this batch was taken", actor_id, i, b->proposer[i]);
  }
  return IB_OK;
}

int rc_writer_write(rc_writer *w, const rc_batch *b) {
  IB_CHECK(w != NULL && b != NULL);
  if (b->n <= 0) return IB_OK;
  if (b->n > w->max_pending)
    return ib_fail(IB_EINVAL, "insert batch of %d rows exceeds the writer's max_pending %d HINT: split the batch", b->n,
                   w->max_pending);
  if (w->obs_dim == 0) {
    w->obs_dim = b->obs_dim;
    w->act_dim = b->act_dim;
  } else if (b->obs_dim != w->obs_dim || b->act_dim != w->act_dim) {
    return ib_fail(IB_EINVAL, "insert batch dims obs %d act %d differ from this writer's obs %d act %d HINT: one writer "
                   "per item layout", b->obs_dim, b->act_dim, w->obs_dim, w->act_dim);
  }
  /* Encode straight from the caller's rows, stamped with this writer's actor id and seqs, with
   * the NaN/Inf check inside the copy (one pass over the rows); a bad batch is dropped before it
   * is queued, and batch_check names the bad value. */
  int finite = 0;
  grpc_slice enc = rc__encode_rows(b, 0, b->n, w->table, 1, 1, w->actor_id, w->next_seq, w->max_wait_ms, &finite);
  int rc = batch_check(b, w->actor_id, finite);
  if (rc == IB_OK && !finite) /* cannot happen: the scan agrees with the copy's check */
    rc = ib_fail(IB_ENONFINITE, "actor %u insert: a value is not finite HINT: check the policy outputs", w->actor_id);
  if (rc == IB_OK && w->n_rows + b->n > w->max_pending) {
    /* Room comes from the closing stream's acknowledgement; if it fails (or is not enough), a
     * full flush resends what is pending, with retries. */
    rc = writer_collect_closing(w, w->c->deadline_ms);
    if (rc != IB_OK || w->n_rows + b->n > w->max_pending) rc = rc_writer_flush(w, -1);
  }
  if (rc != IB_OK) {
    grpc_slice_unref(enc);
    return rc;
  }
  pmsg *m = &w->msgs[w->n_msgs++];
  m->s = enc;
  m->rows = b->n;
  w->n_rows += b->n;
  w->next_seq += (uint64_t)b->n;
  if (w->call == NULL) writer_stream_open(w);
  writer_send_rest(w);
  /* A full stream is half-closed and the next rows go on a fresh one while its reply comes. A
   * failure here leaves the rows pending: the next flush resends them. */
  int open_rows = w->n_rows - (w->closing.call != NULL ? w->closing.n_rows : 0);
  if (open_rows >= w->stream_rows) (void)writer_rotate(w, w->c->deadline_ms);
  return IB_OK;
}

int rc_writer_pipeline(rc_writer *w, int on) {
  IB_CHECK(w != NULL);
  if (w->n_msgs > 0 || w->call != NULL || w->closing.call != NULL)
    return ib_fail(IB_ESTATE, "rc_writer_pipeline: actor %u's writer has %d items pending HINT: switch right after "
                   "rc_writer_open or after a successful flush", w->actor_id, w->n_rows);
  w->stream_rows = on ? IB_MAX(1, w->max_pending / 2) : INT_MAX;
  return IB_OK;
}

int rc_writer_max_wait(rc_writer *w, int ms) {
  IB_CHECK(w != NULL);
  if (ms < 0 || ms > 3600000)
    return ib_fail(IB_EINVAL, "writer max_wait %d ms is outside [0, 3600000] HINT: 0 turns partial acknowledgements "
                   "off; keep it below the flush timeouts", ms);
  w->max_wait_ms = (uint32_t)ms;
  return IB_OK;
}

void rc_writer_stats_get(const rc_writer *w, rc_writer_stats *out) {
  *out = w->st;
  out->pending = (uint64_t)w->n_rows;
  out->awaiting = w->closing.call != NULL ? (uint64_t)w->closing.n_rows : 0;
  out->next_seq = w->next_seq;
}

int rc_writer_close(rc_writer *w) {
  if (w == NULL) return IB_OK;
  int rc = rc_writer_flush(w, -1);
  if (rc != IB_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ib_errmsg());
    ib_fail(rc, "%s (closing: %d items of actor %u were never acknowledged)", msg, w->n_rows, w->actor_id);
  }
  if (w->closing.call) {
    grpc_call_cancel(w->closing.call, NULL);
    (void)writer_finish_collect(w, &w->closing, 100);
  }
  if (w->call) {
    w->broken = 1;
    wclose f;
    memset(&f, 0, sizeof f);
    writer_finish_start(w, &f);
    (void)writer_finish_collect(w, &f, 100);
  }
  writer_drop(w);
  rc__cq_destroy(w->cq);
  free(w->msgs);
  free(w);
  return rc;
}
