/* replay_client.c: the replay service client (see replay_client.h for the contract).
 *
 * Design.
 * - One channel per shard, created by wire_channel_create (receive limit, short reconnect
 *   backoff). The C core only does connection work while some thread polls a completion queue,
 *   so a poller thread loops on a private CQ in 20 ms slices whenever the client has been idle
 *   for 20 ms; with it a restarted shard is reachable again within about one backoff period
 *   (grpc-core.md pitfall 4). While calls run, their own plucks poll and the poller stands by
 *   (a second poller only moved each reply through another thread; see poller_main).
 * - Unary calls use a fresh pluck CQ per call (cheap next to the round trip, and it makes every
 *   call independent, so the client is thread-safe without per-thread state). A call is one
 *   6-op batch; its deadline bounds the pluck, so nothing waits forever. Calls fail fast on a
 *   shard that is down (no WAIT_FOR_READY): the caller sees IB_EUNAVAIL at once and decides.
 * - Inserts: a writer encodes each batch once, straight from the caller's rows, into one
 *   message, keeps the messages that are not acknowledged yet (at most max_pending <= 8192 rows,
 *   the store's dedup window), sends each on an open Insert client stream, and treats the
 *   stream's final reply as the acknowledgement of everything sent on it. A pipelined writer
 *   (rc_writer_pipeline) half-closes its stream every max_pending / 2 rows and sends on a fresh
 *   one while that reply comes, reading it when the fresh stream is full in turn: no write waits
 *   for a reply, where an in-order writer waits for one per stream, which is what one fast client
 *   loses most to (docs/results/replay-throughput.md). At most two streams, max_pending rows, are then
 *   unacknowledged, and the shard may store the two out of order; so the rows a writer leaves
 *   unacknowledged when it stops or dies can be a gap below rows it stored, not only a tail
 *   (an actor restarted from the highest stored seq would never fill it). If anything fails it
 *   reopens the stream and resends the same bytes, i.e. the same (actor_id, seq), which the
 *   shard deduplicates; so an item is stored at most once and, unless the error is permanent,
 *   at least once. Each stream op is bounded by the client's deadline by plucking with a timeout and cancelling
 *   the call when it passes (the stream itself may live longer than one deadline). A write
 *   leaves its message in flight and returns, so the actor prepares its next batch while the
 *   transport sends; the next write (or the flush) waits for it.
 * - Sampling: each row is assigned to a (shard, table) pair with probability proportional to
 *   that table's size (a multinomial draw with the client's rng), given the demo/online split.
 *   Sizes come from the last reply of each shard (SampleReply carries them), or from Info for
 *   a shard not sampled within RC_SIZES_TTL_MS (so a shard that was empty joins once it
 *   fills). Those Info calls, one per shard that needs fresh sizes, are started together on one
 *   CQ and collected after (sizes_refresh), as are the per-shard Sample calls, so shards work in
 *   parallel and a round waits one deadline at most, however many shards do not answer. Each
 *   Sample reply is walked slice by slice and decoded straight into its rows of the batch.
 * - rc_sampler splits that attempt in two (plan_start: draw the rows' shards and start the calls
 *   on the plan's own CQ; plan_collect: pluck and decode) and keeps one plan started ahead: each
 *   rc_sampler_next starts plan i+1, then collects plan i into the caller's batch, so the shards
 *   gather and send the next batch while this thread decodes. Only the simple path is
 *   pipelined: the first batch, and any batch whose plan could not start or whose Sample found
 *   a shard down, is taken with rc_sample (its retries and errors), and the pipeline restarts
 *   after it. The two plans live in the sampler (no allocation per batch).
 * - A shard that is down (UNAVAILABLE or DEADLINE_EXCEEDED) is left out of the sample: the rows
 *   are redrawn over the live shards and the batch says which shards were skipped. It stays out
 *   until a probe off the sampling path brings it back: the poller thread starts an Info call on
 *   its own CQ for each down shard whose backoff has passed (deadline min(client's, 2 s)), takes
 *   the finished ones off without waiting, and on success refreshes the shard's sizes and marks it
 *   up. Before, the shard was let back in after RC_SIZES_TTL_MS and a learner's sample probed it
 *   (a blocking Info for its stale sizes, then the Sample): a frozen shard (SIGSTOP, a dead
 *   machine) cost a full deadline about every second until keepalive dropped the connection after
 *   20 s, which held 2 learner ranks at 10 updates/s instead of 250 (docs/results/replay-soak.md,
 *   finding 8). The backoff is RC_SIZES_TTL_MS after a failed probe; after a Sample failure it is
 *   RC_SIZES_TTL_MS doubled for each time the shard went down again since its last good Sample (to
 *   4x): a shard whose Sample its rate limiter holds answers Info at once, and must not come back
 *   to hold a sample for a deadline every second. Only when every shard is down does a sample try
 *   them all, and since their sizes were dropped when they went down it asks them all for Info in
 *   one round: with none answering it fails within one deadline instead of waiting for a probe
 *   (not one deadline per shard, as when it asked them in turn: 8 frozen shards and a 2 s
 *   deadline cost 16 s per sample); a shard that answers Info and then not its Sample adds one.
 *   rc_client_close cancels the probes in flight (it never waits for a frozen shard's deadline).
 * - InsertRequest and SampleReply, which carry the items, go through the hand codec of
 *   itemcodec.h (shared with the server) instead of nanopb, because they are the whole data
 *   volume; everything else uses wire_encode / wire_decode. Both carry the rows as ItemColumns
 *   (the writer sends columns; Sample asks for them), so a batch is one copy per column each
 *   way; a reply of Items (a server that ignores the request flag) is decoded too. The shard
 *   must know InsertRequest.columns: an older shard would skip the field and store nothing.
 * - rc_read asks one shard for one page of a table (Replay.Read) as columns and decodes the reply
 *   with the SampleReply decoder (ReadReply keeps SampleReply's field numbers for the rows).
 * - Unary calls take a pluck queue from a small pool in the client instead of creating and
 *   draining one per call. */
#include "replay_client.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "ib.h"
#include "itemcodec.h"
#include "log.h"
#include "rng.h"
#include "wire.h"

#define WRITER_MAX_PENDING 8192 /* the store's STORE_DEDUP_WINDOW */
#define WRITER_DEFAULT_PENDING 1024
#define STREAM_LIFETIME_MS (10L * 60 * 1000)
#define RC_CQ_POOL 16 /* idle pluck queues kept for reuse by unary calls */
#define RC_SIZES_TTL_MS 1000 /* cached table sizes of a shard not sampled lately are re-read after this */
#define RC_PROBE_MAX_MS 2000 /* a probe's deadline: the client's, but at most this (keeps probe rounds short) */
#define RC_DOWN_MAX_SHIFT 2  /* a shard that fails again after each rejoin is kept out up to 4 x RC_SIZES_TTL_MS */

/* One unary call in flight: its tag, and where the 6-op batch puts its results. */
typedef struct ucall {
  grpc_call *call;
  grpc_metadata_array md_init, md_trail;
  grpc_byte_buffer *reply;
  grpc_status_code status;
  grpc_slice details;
  const char *error_string;
} ucall;

typedef struct shard {
  char *target;      /* owned */
  grpc_channel *ch;  /* owned */
  uint64_t sizes_ns; /* when the cached sizes were read (0 = never); under client lock */
  /* Down state, under client lock. 0 = up (sampled). Else the shard is down: left out of every
   * sample until a probe (Info from the poller thread) succeeds, and not probed before this time. */
  uint64_t down_until_ns;
  int strikes;  /* times it went down since its last successful Sample (grows its backoff) */
  int probing;  /* a probe of it is in flight: probe[i] of the client holds the call */
  uint64_t demo_size, online_size;
} shard;

struct rc_client {
  int n;
  shard sh[RC_MAX_SHARDS];
  wire_auth auth;    /* owned */
  long deadline_ms;
  long max_msg;
  pthread_mutex_t lock; /* guards rng and the cached sizes */
  rng r;
  grpc_completion_queue *poll_cq; /* owned: kept polled so channels make progress */
  pthread_t poller;
  atomic_int plucking;            /* threads inside a pluck on one of this client's calls */
  _Atomic uint64_t pluck_end_ns;  /* ib_now_ns() when the last such pluck returned */
  atomic_int stop;
  pthread_mutex_t cq_mu;          /* guards the pool of idle pluck queues */
  grpc_completion_queue *cq_idle[RC_CQ_POOL]; /* owned: idle, nothing pending on them */
  int n_cq_idle;
  ucall probe[RC_MAX_SHARDS]; /* probe[i]: the Info probe of shard i while sh[i].probing (on poll_cq) */
};

static void cq_destroy(grpc_completion_queue *cq);

/* ---- status mapping ---- */

static int map_status(grpc_status_code st) {
  switch (st) {
    case GRPC_STATUS_OK: return IB_OK;
    case GRPC_STATUS_UNAVAILABLE:
    case GRPC_STATUS_CANCELLED: return IB_EUNAVAIL;
    case GRPC_STATUS_DEADLINE_EXCEEDED: return IB_ETIMEDOUT;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_UNAUTHENTICATED:
    case GRPC_STATUS_PERMISSION_DENIED: return IB_EINVAL;
    case GRPC_STATUS_NOT_FOUND: return IB_ENOTFOUND;
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return IB_EFULL;
    case GRPC_STATUS_FAILED_PRECONDITION: return IB_ESTATE;
    default: return IB_EPROTO;
  }
}

static const char *status_hint(grpc_status_code st) {
  switch (st) {
    case GRPC_STATUS_UNAVAILABLE:
      return "is ibrl-replay running there, is the address in the shard list right, and does TLS match (a shard "
             "started with --tls-cert needs the client's TLS roots)?";
    case GRPC_STATUS_DEADLINE_EXCEEDED: return "the shard is slow, blocked by its rate limiter, or unreachable; raise the deadline or check the shard";
    case GRPC_STATUS_UNAUTHENTICATED: return "pass the shared token the shard was started with (--token)";
    case GRPC_STATUS_UNIMPLEMENTED: return "the peer is not an ibrl-replay of this protocol version";
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return "a table or the actor registry is full, the rate limiter gave up, or a message is over the size limit";
    default: return "see the server's message";
  }
}

/* Records the failure of a call and returns its IB_E* code. */
static int call_fail(const rc_client *c, int i, const char *what, grpc_status_code st, grpc_slice details) {
  int code = map_status(st);
  char *msg = grpc_slice_to_c_string(details);
  /* The server's message usually carries its own HINT; add ours only when it does not. */
  int has_hint = strstr(msg, "HINT") != NULL;
  ib_fail(code, "replay shard %d (%s) %s: %s%s%s%s%s", i, c->sh[i].target, what, wire_status_name(st),
          msg[0] ? ": " : "", msg, has_hint ? "" : " HINT: ", has_hint ? "" : status_hint(st));
  gpr_free(msg);
  return code;
}

/* ---- connection ---- */

/* The poller stands by while the client is in use: a thread plucking its call polls the
 * channels itself, and a second poller only adds a hand-over per reply (the poller thread reads
 * the socket, then wakes the plucking thread, which finds the data in the other core's cache):
 * ibrl-bench replay measured up to ~0.15 us of client CPU per transition for it with one
 * thread. It polls once the client has been idle for POLL_IDLE_MS, which is when connection work
 * (a reconnect after a shard restart) would otherwise wait for a call.
 * It also probes the shards that are down (probes_start, probe_finish: Info calls on poll_cq),
 * busy or not. A probe needs nobody to wait for it: while the client is busy the threads plucking
 * their own calls move the probe's bytes too (one engine polls every fd) and gRPC's timer thread
 * ends it at its deadline, so the standing-by poller only takes finished probes off poll_cq
 * without waiting (a past deadline), every POLL_PARK_MS and only while a probe is out. */
#define POLL_IDLE_MS 20 /* idle time after the last pluck before the poller polls */
#define POLL_PARK_MS 5  /* how often a standing-by poller looks again */
#define POLL_SLICE_MS 20 /* one poll; short, so a new burst of calls takes over soon */

static int probes_start(rc_client *c);
static void probe_finish(rc_client *c, void *tag);

static void *poller_main(void *arg) {
  rc_client *c = arg;
  int out = 0; /* probes in flight (only this thread starts and finishes them) */
  while (!atomic_load(&c->stop)) {
    out += probes_start(c);
    int64_t idle_ns = (int64_t)(ib_now_ns() - atomic_load(&c->pluck_end_ns));
    if (atomic_load(&c->plucking) > 0 || idle_ns < POLL_IDLE_MS * 1000000LL) {
      grpc_event ev = {.type = GRPC_QUEUE_TIMEOUT};
      while (out > 0 && (ev = grpc_completion_queue_next(c->poll_cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL)).type ==
                            GRPC_OP_COMPLETE) {
        probe_finish(c, ev.tag);
        out--;
      }
      if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
      struct timespec ts = {0, POLL_PARK_MS * 1000000L};
      nanosleep(&ts, NULL);
      continue;
    }
    grpc_event ev = grpc_completion_queue_next(c->poll_cq, wire_deadline_ms(POLL_SLICE_MS), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type == GRPC_OP_COMPLETE) {
      probe_finish(c, ev.tag);
      out--;
    }
  }
  /* drain after shutdown: rc_client_close cancelled the probes in flight, so they end at once */
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(c->poll_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type == GRPC_OP_COMPLETE) probe_finish(c, ev.tag);
  }
  return NULL;
}

int rc_client_open(rc_client **out, const rc_opts *opts) {
  IB_CHECK(out != NULL && opts != NULL);
  *out = NULL;
  if (opts->shards == NULL || opts->shards[0] == '\0')
    return ib_fail(IB_EINVAL, "no replay shards given HINT: give the shard list as host:port[,host:port...]");
  /* Parse first, so a bad list creates nothing. */
  char *list = ib_xstrdup(opts->shards);
  char *targets[RC_MAX_SHARDS];
  int n = 0, rc = IB_OK;
  char *save = NULL;
  for (char *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ') tok++;
    char *colon = strrchr(tok, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || colon == tok || end == colon + 1 || *end != '\0' || port <= 0 || port > 65535) {
      rc = ib_fail(IB_EINVAL, "replay shard '%s' in '%s' is not host:port HINT: e.g. 127.0.0.1:50051,127.0.0.1:50052",
                   tok, opts->shards);
      break;
    }
    if (n == RC_MAX_SHARDS) {
      rc = ib_fail(IB_EINVAL, "more than %d replay shards in '%s' HINT: at most %d are supported", RC_MAX_SHARDS,
                   opts->shards, RC_MAX_SHARDS);
      break;
    }
    targets[n++] = tok;
  }
  if (rc == IB_OK && n == 0)
    rc = ib_fail(IB_EINVAL, "no replay shards in '%s' HINT: pass host:port[,host:port...]", opts->shards);
  if (rc != IB_OK) {
    free(list);
    return rc;
  }
  grpc_init();
  rc_client *c = ib_xcalloc(1, sizeof *c);
  c->n = n;
  c->deadline_ms = opts->deadline_ms > 0 ? opts->deadline_ms : RC_DEFAULT_DEADLINE_MS;
  c->max_msg = opts->max_message_bytes != 0 ? opts->max_message_bytes : WIRE_DEFAULT_MAX_MESSAGE_BYTES;
  wire_channel_opts co = {c->max_msg, opts->tls_roots, opts->reconnect_ms, opts->keepalive_ms};
  for (int i = 0; i < n; i++) {
    c->sh[i].target = ib_xstrdup(targets[i]);
    c->sh[i].ch = wire_channel_create(targets[i], &co);
    if (c->sh[i].ch == NULL) {
      rc = IB_EIO; /* message set by wire_channel_create */
      break;
    }
  }
  free(list);
  if (rc != IB_OK) {
    for (int i = 0; i < n; i++) {
      if (c->sh[i].ch) grpc_channel_destroy(c->sh[i].ch);
      free(c->sh[i].target);
    }
    free(c);
    grpc_shutdown();
    return rc;
  }
  wire_auth_init(&c->auth, opts->token);
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->cq_mu, NULL);
  rng_seed(&c->r, opts->seed, "replay_client", 0, "sample");
  c->poll_cq = grpc_completion_queue_create_for_next(NULL);
  IB_CHECK(pthread_create(&c->poller, NULL, poller_main, c) == 0);
  *out = c;
  return IB_OK;
}

void rc_client_close(rc_client *c) {
  if (c == NULL) return;
  /* Under the lock, so the poller starts no probe after this and every probe it started is seen
   * (probe_finish clears `probing` under it before it releases the call): cancelled, a probe of a
   * frozen shard ends now instead of at its deadline. */
  pthread_mutex_lock(&c->lock);
  atomic_store(&c->stop, 1);
  for (int i = 0; i < c->n; i++)
    if (c->sh[i].probing) grpc_call_cancel(c->probe[i].call, NULL);
  pthread_mutex_unlock(&c->lock);
  grpc_completion_queue_shutdown(c->poll_cq);
  pthread_join(c->poller, NULL);
  grpc_completion_queue_destroy(c->poll_cq);
  for (int i = 0; i < c->n; i++) {
    grpc_channel_destroy(c->sh[i].ch);
    free(c->sh[i].target);
  }
  for (int k = 0; k < c->n_cq_idle; k++) cq_destroy(c->cq_idle[k]);
  wire_auth_free(&c->auth);
  pthread_mutex_destroy(&c->lock);
  pthread_mutex_destroy(&c->cq_mu);
  free(c);
  grpc_shutdown();
}

int rc_client_shard_count(const rc_client *c) { return c->n; }

const char *rc_client_target(const rc_client *c, int i) {
  IB_CHECK(i >= 0 && i < c->n);
  return c->sh[i].target;
}

int rc_client_shard_of(const rc_client *c, uint32_t actor_id) { return (int)(actor_id % (uint32_t)c->n); }

long rc__max_message_bytes(const rc_client *c) { return c->max_msg; }

/* ---- unary calls ---- */

/* Starts a unary call of `path` on shard i with `req` on `cq`, tagged by `u`. */
static void ucall_start(rc_client *c, int i, ucall *u, grpc_completion_queue *cq, const char *path,
                        grpc_byte_buffer *req, long deadline_ms) {
  memset(u, 0, sizeof *u);
  long ms = deadline_ms < 0 ? c->deadline_ms : deadline_ms;
  u->call = grpc_channel_create_call(c->sh[i].ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, grpc_slice_from_static_string(path),
                                     NULL, wire_deadline_ms(ms), NULL);
  IB_CHECK(u->call != NULL);
  grpc_metadata_array_init(&u->md_init);
  grpc_metadata_array_init(&u->md_trail);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = c->auth.set ? 1 : 0;
  ops[0].data.send_initial_metadata.metadata = c->auth.set ? &c->auth.md : NULL;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->md_init;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &u->reply;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &u->md_trail;
  ops[5].data.recv_status_on_client.status = &u->status;
  ops[5].data.recv_status_on_client.status_details = &u->details;
  ops[5].data.recv_status_on_client.error_string = &u->error_string;
  grpc_call_error e = grpc_call_start_batch(u->call, ops, 6, u, NULL);
  IB_CHECK(e == GRPC_CALL_OK);
}

/* Releases everything of u except u->reply (which the caller takes or destroys). */
static void ucall_release(ucall *u) {
  grpc_metadata_array_destroy(&u->md_init);
  grpc_metadata_array_destroy(&u->md_trail);
  grpc_slice_unref(u->details);
  gpr_free((void *)u->error_string);
  grpc_call_unref(u->call);
}

static void cq_destroy(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  for (;;) {
    grpc_event ev = grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
  }
  grpc_completion_queue_destroy(cq);
}

/* A pluck queue for one thread's unary calls: an idle one from the client's pool, else a new one.
 * Reusing them (as a long-lived caller would keep one) saves creating and draining a queue per
 * call. Give it back with cq_put once every call started on it has been plucked to completion. */
static grpc_completion_queue *cq_get(rc_client *c) {
  grpc_completion_queue *cq = NULL;
  pthread_mutex_lock(&c->cq_mu);
  if (c->n_cq_idle > 0) cq = c->cq_idle[--c->n_cq_idle];
  pthread_mutex_unlock(&c->cq_mu);
  return cq != NULL ? cq : grpc_completion_queue_create_for_pluck(NULL);
}

static void cq_put(rc_client *c, grpc_completion_queue *cq) {
  pthread_mutex_lock(&c->cq_mu);
  if (c->n_cq_idle < RC_CQ_POOL) {
    c->cq_idle[c->n_cq_idle++] = cq;
    cq = NULL;
  }
  pthread_mutex_unlock(&c->cq_mu);
  if (cq != NULL) cq_destroy(cq);
}

/* grpc_completion_queue_pluck on one of c's calls, noted for the poller (see poller_main). */
static grpc_event rc_pluck(rc_client *c, grpc_completion_queue *cq, void *tag, gpr_timespec deadline) {
  atomic_fetch_add(&c->plucking, 1);
  grpc_event ev = grpc_completion_queue_pluck(cq, tag, deadline, NULL);
  atomic_store(&c->pluck_end_ns, ib_now_ns());
  atomic_fetch_sub(&c->plucking, 1);
  return ev;
}

int rc__unary(rc_client *c, int i, const char *path, const char *what, grpc_byte_buffer *req,
              grpc_byte_buffer **reply, long deadline_ms) {
  IB_CHECK(c != NULL && i >= 0 && i < c->n && req != NULL && reply != NULL);
  *reply = NULL;
  grpc_completion_queue *cq = cq_get(c);
  ucall u;
  ucall_start(c, i, &u, cq, path, req, deadline_ms);
  grpc_event ev = rc_pluck(c, cq, &u, gpr_inf_future(GPR_CLOCK_REALTIME));
  IB_CHECK(ev.type == GRPC_OP_COMPLETE);
  int rc = IB_OK;
  if (u.status != GRPC_STATUS_OK) {
    rc = call_fail(c, i, what, u.status, u.details);
  } else if (u.reply == NULL) {
    rc = ib_fail(IB_EPROTO, "replay shard %d (%s) %s: OK status without a reply message HINT: the peer is not a "
                 "compatible ibrl-replay", i, c->sh[i].target, what);
  }
  if (rc == IB_OK) {
    *reply = u.reply;
  } else if (u.reply) {
    grpc_byte_buffer_destroy(u.reply);
  }
  ucall_release(&u);
  cq_put(c, cq);
  return rc;
}

/* Encodes `msg`, calls, decodes the reply into `rmsg`. */
static int unary_msg(rc_client *c, int i, const char *path, const char *what, const pb_msgdesc_t *qf, const void *qmsg,
                     const pb_msgdesc_t *rf, void *rmsg, long deadline_ms) {
  grpc_byte_buffer *req = NULL, *rep = NULL;
  int rc = wire_encode(&req, qf, qmsg);
  if (rc != IB_OK) return rc;
  rc = rc__unary(c, i, path, what, req, &rep, deadline_ms);
  grpc_byte_buffer_destroy(req);
  if (rc != IB_OK) return rc;
  rc = wire_decode(rmsg, rf, rep, what);
  grpc_byte_buffer_destroy(rep);
  return rc;
}

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
 * With `stamp`, item k carries actor_id and seq0 + k instead of the rows' own ids. With `finite`
 * non-NULL, the floats are checked for NaN/Inf inside the copy and *finite says whether all are. */
static grpc_slice encode_rows(const rc_batch *b, int lo, int hi, const char *table, int columns, int stamp,
                              uint32_t actor_id, uint64_t seq0, int *finite) {
  IB_CHECK(b != NULL && table != NULL && 0 <= lo && lo <= hi && hi <= b->n);
  ic_rows r = rows_of(b);
  ic_stamp st = {actor_id, seq0};
  size_t tl = strlen(table);
  size_t total = (tl ? ic_bytes_field_len(IC_INSERT_TABLE, tl) : 0) +
                 (columns ? ic_cols_len(IC_INSERT_COLUMNS, (size_t)(hi - lo), b->obs_dim, b->act_dim)
                          : ic_items_len(&r, (size_t)lo, (size_t)hi, IC_INSERT_ITEMS, stamp ? &st : NULL));
  grpc_slice s = grpc_slice_malloc(total);
  uint8_t *p = GRPC_SLICE_START_PTR(s);
  if (tl) p = ic_put_bytes_field(p, IC_INSERT_TABLE, table, tl);
  if (columns) p = ic_cols_put(p, IC_INSERT_COLUMNS, &r, (size_t)lo, (size_t)hi, stamp ? &st : NULL, finite);
  else if (finite != NULL)
    p = ic_items_put_check(p, &r, (size_t)lo, (size_t)hi, IC_INSERT_ITEMS, stamp ? &st : NULL, finite);
  else p = ic_items_put(p, &r, (size_t)lo, (size_t)hi, IC_INSERT_ITEMS, stamp ? &st : NULL);
  IB_CHECK((size_t)(p - GRPC_SLICE_START_PTR(s)) == total);
  return s;
}

grpc_byte_buffer *rc__encode_insert(const rc_batch *b, int lo, int hi, const char *table) {
  grpc_slice s = encode_rows(b, lo, hi, table, 0, 0, 0, 0, NULL);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

grpc_byte_buffer *rc__encode_insert_columns(const rc_batch *b, int lo, int hi, const char *table) {
  grpc_slice s = encode_rows(b, lo, hi, table, 1, 0, 0, 0, NULL);
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

/* ---- writer ---- */

/* One pending message: an encoded InsertRequest kept until the shard acknowledges it, so a
 * retry resends the same bytes (same seqs) without encoding again. */
typedef struct pmsg {
  grpc_slice s; /* owned */
  int rows;
} pmsg;

/* A half-closed Insert stream whose reply (the acknowledgement of its messages, the oldest
 * n_msgs pending ones) has not been read yet: where its final batch puts the results. */
typedef struct wclose {
  grpc_call *call; /* owned, or NULL: no stream is closing */
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
  w->max_pending = max_pending;
  w->stream_rows = INT_MAX;
  w->msgs = ib_xcalloc((size_t)max_pending, sizeof *w->msgs);
  w->cq = grpc_completion_queue_create_for_pluck(NULL);
  *out = w;
  return IB_OK;
}

/* Drops the oldest k pending messages (acknowledged, or given up). */
static void writer_drop_first(rc_writer *w, int k) {
  IB_ASSERT(k >= 0 && k <= w->n_msgs);
  for (int i = 0; i < k; i++) {
    w->n_rows -= w->msgs[i].rows;
    grpc_slice_unref(w->msgs[i].s);
  }
  memmove(w->msgs, w->msgs + k, (size_t)(w->n_msgs - k) * sizeof *w->msgs);
  w->n_msgs -= k;
}

/* Drops every pending message. */
static void writer_drop(rc_writer *w) { writer_drop_first(w, w->n_msgs); }

/* Waits for the batch tagged `tag` of `call` for at most ms; on timeout cancels the call and
 * waits for the (then prompt) completion. Returns the event's success flag (1/0), or -1 after a
 * timeout. */
static int writer_wait_call(rc_writer *w, grpc_call *call, void *tag, long ms) {
  grpc_event ev = rc_pluck(w->c, w->cq, tag, wire_deadline_ms(ms));
  if (ev.type == GRPC_QUEUE_TIMEOUT) {
    grpc_call_cancel(call, NULL);
    ev = rc_pluck(w->c, w->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME));
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

/* Waits (at most ms) for the reply of the stream in f, whose messages are the oldest f->n_msgs
 * pending ones. On success they are acknowledged: counted and dropped. Returns IB_OK or the
 * error (the messages stay pending). The call is released either way. */
static int writer_finish_collect(rc_writer *w, wclose *f, long ms) {
  IB_CHECK(f->call != NULL);
  int ok = writer_wait_call(w, f->call, f, ms);
  int rc;
  ibrl_InsertReply rep = ibrl_InsertReply_init_zero;
  if (ok < 0) {
    rc = ib_fail(IB_ETIMEDOUT, "replay shard %d (%s) Insert: no reply within %ld ms HINT: the shard is slow or blocked by "
                 "its rate limiter", w->shard, w->c->sh[w->shard].target, ms);
  } else if (f->status != GRPC_STATUS_OK) {
    rc = call_fail(w->c, w->shard, "Insert", f->status, f->details);
  } else if (f->broken) {
    rc = ib_fail(IB_EUNAVAIL, "replay shard %d (%s) Insert: the stream broke while sending HINT: retrying", w->shard,
                 w->c->sh[w->shard].target);
  } else {
    rc = wire_decode(&rep, ibrl_InsertReply_fields, f->bb, "InsertReply");
  }
  if (rc == IB_OK && rep.received < (uint64_t)f->n_rows) {
    /* Every row of these messages went out on this stream; a shard that counts fewer did not
     * read them (one that ignores the columnar field: an older ibrl-replay). Never report such
     * items as acknowledged. */
    rc = ib_fail(IB_EPROTO, "replay shard %d (%s) Insert: acknowledged %llu of %d items HINT: the shard does not "
                 "read this client's columnar inserts; run the same ibrl version on actors and replay shards",
                 w->shard, w->c->sh[w->shard].target, (unsigned long long)rep.received, f->n_rows);
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
    writer_drop_first(w, f->n_msgs);
  }
  return rc;
}

/* Collects the closing stream's reply, if there is one: the open stream then carries the oldest
 * pending messages. On failure the open stream is cancelled too (its messages count on the
 * acknowledgement of the closing one's: a retry resends them all on one fresh stream). */
static int writer_collect_closing(rc_writer *w, long ms) {
  if (w->closing.call == NULL) return IB_OK;
  int rc = writer_finish_collect(w, &w->closing, ms);
  w->base = 0;
  if (rc != IB_OK && w->call != NULL) {
    grpc_call_cancel(w->call, NULL);
    w->broken = 1;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ib_errmsg());
    wclose f;
    memset(&f, 0, sizeof f);
    writer_finish_start(w, &f);
    f.n_msgs = 0; /* nothing of it is acknowledged: it was cancelled */
    (void)writer_finish_collect(w, &f, 100);
    ib_fail(rc, "%s", msg);
  }
  return rc;
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
    w->st.retries++;
    sleep_ms(IB_MIN(backoff, now_left));
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
  grpc_slice enc = encode_rows(b, 0, b->n, w->table, 1, 1, w->actor_id, w->next_seq, &finite);
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
  cq_destroy(w->cq);
  free(w->msgs);
  free(w);
  return rc;
}

/* ---- sample ---- */

/* Where one shard's rows go in the batch: its demo rows from demo_off, online rows from online_off. */
typedef struct sample_sink {
  int demo_off, online_off;
} sample_sink;

/* Whether a call error means "the shard is not there" (sampling then goes on without it) rather
 * than a refusal that the other shards would repeat. */
static int is_down(int rc) { return rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT; }

/* Marks shard i down after error rc (message in ib_errmsg()), warning once per outage. It stays
 * out of every sample until a probe succeeds, and is not probed before RC_SIZES_TTL_MS, doubled
 * for each time it went down again since its last good Sample (up to 2^RC_DOWN_MAX_SHIFT): a shard
 * whose Sample its rate limiter held to the deadline answers the probe at once, and without this
 * it would be back in every second only to hold a sample for a deadline again. */
static void shard_mark_down(rc_client *c, int i) {
  pthread_mutex_lock(&c->lock);
  shard *s = &c->sh[i];
  int was_up = s->down_until_ns == 0;
  if (was_up && s->strikes < 30) s->strikes++;
  uint64_t until = ib_now_ns() + ((uint64_t)RC_SIZES_TTL_MS << IB_MIN(IB_MAX(s->strikes - 1, 0), RC_DOWN_MAX_SHIFT)) *
                                     1000000ull;
  if (until > s->down_until_ns) s->down_until_ns = until;
  s->sizes_ns = 0; /* re-read its sizes when it is back */
  pthread_mutex_unlock(&c->lock);
  if (was_up) log_warn("sampling without replay shard %d (%s) for now: %s", i, c->sh[i].target, ib_errmsg());
}

/* Shard i answered a Sample: it is up, and its backoff starts afresh. */
static void shard_mark_up(rc_client *c, int i) {
  pthread_mutex_lock(&c->lock);
  int was_down = c->sh[i].down_until_ns != 0;
  c->sh[i].down_until_ns = 0;
  c->sh[i].strikes = 0;
  pthread_mutex_unlock(&c->lock);
  if (was_down) log_info("replay shard %d (%s) is back in the sample", i, c->sh[i].target);
}

/* ---- probes of down shards (run by the poller thread, see poller_main) ---- */

/* Starts an Info probe on poll_cq for every down shard whose backoff has passed and that has none
 * in flight. Returns how many it started. */
static int probes_start(rc_client *c) {
  uint64_t now = ib_now_ns();
  int started = 0;
  grpc_byte_buffer *req = NULL;
  long ms = IB_MIN(c->deadline_ms, (long)RC_PROBE_MAX_MS);
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < c->n && !atomic_load(&c->stop); i++) {
    shard *s = &c->sh[i];
    if (s->down_until_ns == 0 || s->probing || s->down_until_ns > now) continue;
    if (req == NULL) {
      ibrl_InfoRequest q = ibrl_InfoRequest_init_zero;
      IB_CHECK(wire_encode(&req, ibrl_InfoRequest_fields, &q) == IB_OK);
    }
    /* Starting a call does no I/O and never waits: fine under the lock, which keeps
     * rc_client_close from missing it. */
    ucall_start(c, i, &c->probe[i], c->poll_cq, WIRE_PATH_INFO, req, ms);
    s->probing = 1;
    started++;
  }
  pthread_mutex_unlock(&c->lock);
  if (req != NULL) grpc_byte_buffer_destroy(req); /* each call holds its own reference */
  return started;
}

/* The demo and online table sizes an InfoReply reports. */
static void info_sizes(const ibrl_InfoReply *rep, uint64_t *demo, uint64_t *online) {
  *demo = *online = 0;
  for (pb_size_t t = 0; t < rep->tables_count; t++) {
    if (rep->tables[t].kind == 0) *demo += rep->tables[t].size;
    else *online += rep->tables[t].size;
  }
}

/* A probe ended (tag = &c->probe[i]): on success shard i gets the sizes it reported and is back in
 * the sample; on failure (or when cancelled by close) it stays down and is probed again after
 * RC_SIZES_TTL_MS. */
static void probe_finish(rc_client *c, void *tag) {
  ucall *u = tag;
  int i = (int)(u - c->probe);
  IB_CHECK(i >= 0 && i < c->n);
  int rc = IB_OK;
  uint64_t dsz = 0, osz = 0;
  if (u->status != GRPC_STATUS_OK) {
    rc = call_fail(c, i, "Info (probe)", u->status, u->details);
  } else {
    ibrl_InfoReply *rep = ib_xmalloc(sizeof *rep);
    *rep = (ibrl_InfoReply)ibrl_InfoReply_init_zero;
    rc = u->reply ? wire_decode(rep, ibrl_InfoReply_fields, u->reply, "Info (probe)") : IB_EPROTO;
    if (rc == IB_OK) info_sizes(rep, &dsz, &osz);
    free(rep);
  }
  if (u->reply) grpc_byte_buffer_destroy(u->reply);
  uint64_t now = ib_now_ns();
  pthread_mutex_lock(&c->lock);
  shard *s = &c->sh[i];
  s->probing = 0; /* before the release below: rc_client_close cancels only calls marked probing */
  int back = 0;
  if (rc == IB_OK) {
    s->demo_size = dsz;
    s->online_size = osz;
    s->sizes_ns = now;
    back = s->down_until_ns != 0;
    s->down_until_ns = 0; /* strikes stay until a Sample succeeds */
  } else if (s->down_until_ns != 0) {
    uint64_t until = now + (uint64_t)RC_SIZES_TTL_MS * 1000000ull;
    if (until > s->down_until_ns) s->down_until_ns = until;
  }
  pthread_mutex_unlock(&c->lock);
  ucall_release(u);
  if (back) log_info("replay shard %d (%s) is back in the sample", i, c->sh[i].target);
}

uint64_t rc_client_shards_down(rc_client *c) {
  IB_CHECK(c != NULL);
  uint64_t down = 0;
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < c->n; i++)
    if (c->sh[i].down_until_ns != 0) down |= 1ull << i;
  pthread_mutex_unlock(&c->lock);
  return down;
}

int rc__probes_in_flight(rc_client *c) {
  int k = 0;
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < c->n; i++) k += c->sh[i].probing;
  pthread_mutex_unlock(&c->lock);
  return k;
}

/* One attempt of a sample, split so that rc_sampler can start the next one before it decodes
 * this one: plan_start draws the rows' shards and starts the per-shard calls on its own CQ,
 * plan_collect waits for them and decodes the replies into a batch. */
typedef struct sample_plan {
  grpc_completion_queue *cq; /* from cq_get while calls are started, else NULL */
  int n, total_d;
  int nd[RC_MAX_SHARDS], no[RC_MAX_SHARDS]; /* demo / online rows asked of each shard */
  int started[RC_MAX_SHARDS];
  sample_sink sinks[RC_MAX_SHARDS];
  ucall u[RC_MAX_SHARDS];
} sample_plan;

/* Reads the table sizes of the shards in `ask` (bit i for shard i) with Info, all at once: the
 * calls start together on one CQ and are collected after, each bounded by the client's deadline,
 * so the round takes one deadline at most however many of the shards do not answer (asked one
 * after another, N frozen shards cost N deadlines). The calls use p->u, which is free until the
 * plan starts its Sample calls. A shard that answers gets the sizes it reported. A shard whose
 * Info fails as down (is_down) is marked down and added to *down, and to *timed_out when it ran
 * out of time (so rc_sample's final error says "timed out" when every shard did). Returns IB_OK
 * (each asked shard answered or is down now) or the first other error by shard index (a refusal
 * the others would repeat: a missing token, a malformed reply), with its message in ib_errmsg();
 * the down ones are marked either way. Not on the hot path: only stale or empty sizes come here,
 * so the one reply struct per round is allocated here (it is kilobytes, too big for the stack). */
static int sizes_refresh(rc_client *c, sample_plan *p, uint64_t ask, uint64_t *down, uint64_t *timed_out) {
  grpc_byte_buffer *req = NULL;
  ibrl_InfoRequest q = ibrl_InfoRequest_init_zero;
  IB_CHECK(wire_encode(&req, ibrl_InfoRequest_fields, &q) == IB_OK);
  grpc_completion_queue *cq = cq_get(c);
  for (int i = 0; i < c->n; i++)
    if (ask >> i & 1) ucall_start(c, i, &p->u[i], cq, WIRE_PATH_INFO, req, -1);
  grpc_byte_buffer_destroy(req); /* each call holds its own reference */
  ibrl_InfoReply *rep = ib_xmalloc(sizeof *rep);
  int rc = IB_OK;
  char first[1024]; /* the first refusal's message: a later shard's failure must not replace it */
  for (int i = 0; i < c->n; i++) {
    if (!(ask >> i & 1)) continue;
    ucall *u = &p->u[i];
    grpc_event ev = rc_pluck(c, cq, u, gpr_inf_future(GPR_CLOCK_REALTIME));
    IB_CHECK(ev.type == GRPC_OP_COMPLETE);
    int e;
    if (u->status != GRPC_STATUS_OK) {
      e = call_fail(c, i, "Info", u->status, u->details);
    } else if (u->reply == NULL) {
      e = ib_fail(IB_EPROTO, "replay shard %d (%s) Info: OK status without a reply message HINT: the peer is not a "
                  "compatible ibrl-replay", i, c->sh[i].target);
    } else {
      char who[320];
      snprintf(who, sizeof who, "replay shard %d (%s) Info", i, c->sh[i].target);
      *rep = (ibrl_InfoReply)ibrl_InfoReply_init_zero;
      e = wire_decode(rep, ibrl_InfoReply_fields, u->reply, who);
    }
    if (e == IB_OK) {
      uint64_t dsz = 0, osz = 0;
      info_sizes(rep, &dsz, &osz);
      pthread_mutex_lock(&c->lock);
      c->sh[i].demo_size = dsz;
      c->sh[i].online_size = osz;
      c->sh[i].sizes_ns = ib_now_ns();
      pthread_mutex_unlock(&c->lock);
    } else if (is_down(e)) {
      shard_mark_down(c, i); /* its warning names this failure: ib_errmsg() is still call_fail's */
      *down |= 1ull << i;
      if (e == IB_ETIMEDOUT) *timed_out |= 1ull << i;
    } else if (rc == IB_OK) {
      rc = e;
      snprintf(first, sizeof first, "%s", ib_errmsg());
    }
    if (u->reply) grpc_byte_buffer_destroy(u->reply);
    ucall_release(u);
  }
  free(rep);
  cq_put(c, cq); /* every call started on it was plucked above */
  if (rc != IB_OK) ib_fail(rc, "%s", first);
  return rc;
}

/* Starts one attempt over the shards not in *down. Returns IB_OK (calls started over the shards
 * still up; shards found down while their sizes were read are added to *down first), an IB_E*
 * error, or 1 when every shard turned out to be down while the sizes were read (then *down holds
 * them all and the caller reports it); no call is left in flight unless IB_OK. */
static int plan_start(rc_client *c, sample_plan *p, int n, double demo_fraction, uint64_t *down,
                      uint64_t *timed_out) {
  p->cq = NULL;
  p->n = n;
  /* A shard that got no rows lately has no fresh sizes (replies refresh them): ask it with Info
   * when its sizes are older than RC_SIZES_TTL_MS, so a shard that was empty joins in once it
   * fills; and when every cached size is 0, ask all of them before reporting empty tables. All
   * of these are asked in one round (sizes_refresh); the draw below is over those that answered.
   * While every size is fresh (the common case) no Info is sent. */
  uint64_t now = ib_now_ns(), total = 0, stale = 0;
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < c->n; i++) {
    if (c->sh[i].sizes_ns == 0 || now - c->sh[i].sizes_ns > (uint64_t)RC_SIZES_TTL_MS * 1000000ull)
      stale |= 1ull << i;
    if (!(*down >> i & 1)) total += c->sh[i].demo_size + c->sh[i].online_size;
  }
  pthread_mutex_unlock(&c->lock);
  uint64_t all = c->n == 64 ? ~0ull : (1ull << c->n) - 1;
  uint64_t ask = (total > 0 ? stale : all) & ~*down;
  if (ask != 0) {
    int rc = sizes_refresh(c, p, ask, down, timed_out);
    if (rc != IB_OK) return rc;
    if (*down == all) return 1; /* none answered: nothing to draw over */
  }
  /* Assign rows to (shard, table) with probability proportional to the table sizes. */
  int *nd = p->nd, *no = p->no;
  memset(p->nd, 0, sizeof p->nd);
  memset(p->no, 0, sizeof p->no);
  pthread_mutex_lock(&c->lock);
  uint64_t tot_d = 0, tot_o = 0;
  for (int i = 0; i < c->n; i++) {
    if (*down >> i & 1) continue;
    tot_d += c->sh[i].demo_size;
    tot_o += c->sh[i].online_size;
  }
  int want_d;
  if (tot_d + tot_o == 0) {
    pthread_mutex_unlock(&c->lock);
    return ib_fail(IB_ESTATE, "every replay table of the %d shard(s) is empty HINT: wait for actors to insert or "
                   "import demos first", c->n);
  }
  if (demo_fraction >= 0) {
    want_d = (int)lround(n * demo_fraction);
    if (tot_d == 0) want_d = 0;      /* empty demo tables: their share comes from online ones */
    if (tot_o == 0) want_d = n;      /* and the other way round */
  } else {
    want_d = -1; /* each row picks a table over the union */
  }
  for (int k = 0; k < n; k++) {
    int demo;
    double u = rng_uniform_d(&c->r);
    if (want_d >= 0) {
      demo = k < want_d;
    } else {
      demo = u * (double)(tot_d + tot_o) < (double)tot_d;
      u = rng_uniform_d(&c->r);
    }
    uint64_t tot = demo ? tot_d : tot_o;
    double x = u * (double)tot, acc = 0;
    int pick = -1;
    for (int i = 0; i < c->n; i++) {
      uint64_t sz = demo ? c->sh[i].demo_size : c->sh[i].online_size;
      if (sz == 0 || (*down >> i & 1)) continue;
      acc += (double)sz;
      pick = i;
      if (x < acc) break;
    }
    IB_CHECK(pick >= 0);
    if (demo)
      nd[pick]++;
    else
      no[pick]++;
  }
  pthread_mutex_unlock(&c->lock);
  int total_d = 0;
  for (int i = 0; i < c->n; i++) total_d += nd[i];
  p->total_d = total_d;

  /* Start every shard's call; plan_collect collects them. */
  grpc_completion_queue *cq = p->cq = cq_get(c);
  ucall *u = p->u;
  int *started = p->started;
  memset(p->started, 0, sizeof p->started);
  int doff = 0, ooff = total_d;
  sample_sink *sinks = p->sinks;
  for (int i = 0; i < c->n; i++) {
    int ni = nd[i] + no[i];
    if (ni == 0) continue;
    sinks[i] = (sample_sink){doff, ooff};
    doff += nd[i];
    ooff += no[i];
    ibrl_SampleRequest req = ibrl_SampleRequest_init_zero;
    req.batch_size = (uint32_t)ni;
    req.has_mix = true;
    req.mix.demo_fraction = (float)((double)nd[i] / (double)ni);
    req.columns = true; /* one copy per column into b; a server that ignores it sends items */
    grpc_byte_buffer *bb = NULL;
    IB_CHECK(wire_encode(&bb, ibrl_SampleRequest_fields, &req) == IB_OK);
    ucall_start(c, i, &u[i], cq, WIRE_PATH_SAMPLE, bb, -1);
    grpc_byte_buffer_destroy(bb); /* the call holds its own reference until the batch is done */
    started[i] = 1;
  }
  return IB_OK;
}

/* Cancels the calls of a started plan and releases them (rc_sampler_close drops its prefetch). */
static void plan_cancel(rc_client *c, sample_plan *p) {
  for (int i = 0; i < c->n; i++)
    if (p->started[i]) grpc_call_cancel(p->u[i].call, NULL);
  for (int i = 0; i < c->n; i++) {
    if (!p->started[i]) continue;
    grpc_event ev = rc_pluck(c, p->cq, &p->u[i], gpr_inf_future(GPR_CLOCK_REALTIME));
    IB_CHECK(ev.type == GRPC_OP_COMPLETE);
    if (p->u[i].reply) grpc_byte_buffer_destroy(p->u[i].reply);
    ucall_release(&p->u[i]);
    p->started[i] = 0;
  }
  cq_put(c, p->cq);
  p->cq = NULL;
}

/* Waits for the calls of a started plan and decodes them into b (rows [0, p->n)). Returns
 * IB_OK, an IB_E* error, or 1 when a shard turned out to be down (its bit added to *down).
 * Every call is released either way. */
/* Collects a started plan into b. A shard whose call failed as down is added to *down (and, when
 * it timed out, to *timed_out: a shard whose rate limiter held the call to its deadline looks
 * the same to a client as a slow one). Returns IB_OK, an IB_E* error, or 1 (a shard was down). */
static int plan_collect(rc_client *c, sample_plan *p, rc_batch *b, uint64_t *down, uint64_t *timed_out) {
  b->n = 0;
  b->n_demo = 0;
  grpc_completion_queue *cq = p->cq;
  ucall *u = p->u;
  const int *nd = p->nd, *no = p->no;
  const sample_sink *sinks = p->sinks;
  int rc = IB_OK;
  for (int i = 0; i < c->n; i++) {
    if (!p->started[i]) continue;
    grpc_event ev = rc_pluck(c, cq, &u[i], gpr_inf_future(GPR_CLOCK_REALTIME));
    IB_CHECK(ev.type == GRPC_OP_COMPLETE);
    if (rc == IB_OK || rc == 1) {
      if (u[i].status != GRPC_STATUS_OK) {
        int e = call_fail(c, i, "Sample", u[i].status, u[i].details);
        if (is_down(e)) {
          shard_mark_down(c, i);
          *down |= 1ull << i;
          if (e == IB_ETIMEDOUT) *timed_out |= 1ull << i;
          rc = 1; /* collect the other calls, then try again without this shard */
        } else {
          rc = e;
        }
      } else if (rc == IB_OK) {
        rc__reply_info rep;
        char who[320];
        snprintf(who, sizeof who, "replay shard %d (%s) Sample", i, c->sh[i].target);
        rc = rc__decode_sample_reply(b, sinks[i].demo_off, nd[i], sinks[i].online_off, nd[i] + no[i], u[i].reply, &rep,
                                     who);
        if (rc == IB_OK && rep.n_items != nd[i] + no[i])
          rc = ib_fail(IB_EPROTO, "replay shard %d (%s) Sample: %d items for a request of %d HINT: incompatible server",
                       i, c->sh[i].target, rep.n_items, nd[i] + no[i]);
        if (rc == IB_OK) {
          for (int k = 0; k < nd[i] + no[i]; k++) {
            int r = k < nd[i] ? sinks[i].demo_off + k : sinks[i].online_off + (k - nd[i]);
            b->from_demo[r] = k < (int)rep.n_demo;
          }
          b->n_demo += (int)rep.n_demo;
          pthread_mutex_lock(&c->lock);
          c->sh[i].demo_size = rep.demo_size;
          c->sh[i].online_size = rep.online_size;
          c->sh[i].sizes_ns = ib_now_ns();
          int was_down = c->sh[i].down_until_ns != 0;
          c->sh[i].strikes = 0;
          pthread_mutex_unlock(&c->lock);
          if (was_down) shard_mark_up(c, i); /* no second lock per reply on the common path */
        }
      }
    }
    if (u[i].reply) grpc_byte_buffer_destroy(u[i].reply);
    ucall_release(&u[i]);
    p->started[i] = 0;
  }
  cq_put(c, cq); /* every started call was plucked above: nothing is pending on it */
  p->cq = NULL;
  return rc;
}

/* One attempt of rc_sample over the shards not in *down: IB_OK, an IB_E* error, or 1 when a
 * shard's Sample found it down (the caller tries again without it) or every shard was found down
 * while the sizes were read (then *down holds them all). */
static int sample_once(rc_client *c, rc_batch *b, int n, double demo_fraction, uint64_t *down, uint64_t *timed_out) {
  b->n = 0;
  b->n_demo = 0;
  sample_plan p; /* on the stack, as the calls were before: no allocation per sample */
  int rc = plan_start(c, &p, n, demo_fraction, down, timed_out);
  if (rc == IB_OK) rc = plan_collect(c, &p, b, down, timed_out);
  return rc;
}

static int sample_args_check(int n, int cap, double demo_fraction) {
  if (n <= 0 || n > cap)
    return ib_fail(IB_EINVAL, "sample size %d is outside [1, %d] (the batch capacity) HINT: size the batch for the "
                   "largest sample", n, cap);
  if (isnan(demo_fraction) || demo_fraction > 1)
    return ib_fail(IB_EINVAL, "demo fraction %g is not in [0, 1] (or < 0 for proportional) HINT: e.g. 0.5", demo_fraction);
  return IB_OK;
}

/* The shards to leave out of a new sample: those that failed, until a probe brings them back;
 * none when nothing is known to be up (then the sample tries them all, and fails within its
 * deadlines if none answers). */
static uint64_t down_now(rc_client *c) {
  uint64_t down = rc_client_shards_down(c);
  uint64_t all = c->n == 64 ? ~0ull : (1ull << c->n) - 1;
  return down == all ? 0 : down;
}

int rc_sample(rc_client *c, rc_batch *b, int n, double demo_fraction) {
  IB_CHECK(c != NULL && b != NULL);
  b->n = 0;
  b->n_demo = 0;
  b->shards_skipped = 0;
  int arc = sample_args_check(n, b->cap, demo_fraction);
  if (arc != IB_OK) return arc;
  uint64_t down = down_now(c), down0 = down, timed_out = 0;
  uint64_t all = c->n == 64 ? ~0ull : (1ull << c->n) - 1;
  int rc = 1;
  char last[512] = "";
  /* Each retry has one more shard down, so this ends after at most n + 1 attempts. */
  while (rc == 1 && down != all) {
    rc = sample_once(c, b, n, demo_fraction, &down, &timed_out);
    if (rc == 1) snprintf(last, sizeof last, "%s", ib_errmsg());
  }
  if (rc == 1 || down == all) {
    b->n = 0;
    b->n_demo = 0;
    /* Every shard tried here ran out of time (none refused the connection): that is how rate
     * limiters holding the calls look (e.g. online tables below min_size), not unreachable shards. */
    uint64_t tried = down & ~down0;
    if (tried != 0 && (timed_out & tried) == tried)
      return ib_fail(IB_ETIMEDOUT, "no replay shard of %d completed Sample within the deadline: rate limited, slow or not answering "
                     "(last error: %s)", c->n, last);
    return ib_fail(IB_EUNAVAIL, "no replay shard of %d is reachable for Sample (last error: %s)", c->n, last);
  }
  if (rc == IB_OK) {
    b->n = n;
    b->shards_skipped = down;
  } else {
    b->n = 0;
    b->n_demo = 0;
  }
  return rc;
}

/* ---- prefetching sampler ---- */

struct rc_sampler {
  rc_client *c; /* borrowed */
  int n;
  double demo_fraction;
  int ahead;            /* plans[cur] is started and not collected yet */
  int cur;
  uint64_t down[2];     /* the shards each plan left out */
  sample_plan plans[2]; /* the one being collected and the next one, in flight */
};

int rc_sampler_open(rc_sampler **out, rc_client *c, int n, double demo_fraction) {
  IB_CHECK(out != NULL && c != NULL);
  *out = NULL;
  int rc = sample_args_check(n, n, demo_fraction);
  if (rc != IB_OK) return rc;
  rc_sampler *s = ib_xcalloc(1, sizeof *s);
  s->c = c;
  s->n = n;
  s->demo_fraction = demo_fraction;
  *out = s;
  return IB_OK;
}

/* Starts plans[k] over the shards not known to be down; 1 if its calls are in flight (a shard
 * found down while its sizes were read is then in s->down[k], so the batch names it skipped). A
 * start that fails (every shard down, empty tables, ...) starts nothing: the next
 * rc_sampler_next then samples synchronously with rc_sample, which reports the error. */
static int sampler_start(rc_sampler *s, int k) {
  s->down[k] = down_now(s->c);
  uint64_t timed_out = 0; /* only rc_sample's error message uses it */
  return plan_start(s->c, &s->plans[k], s->n, s->demo_fraction, &s->down[k], &timed_out) == IB_OK;
}

int rc_sampler_next(rc_sampler *s, rc_batch *b) {
  IB_CHECK(s != NULL && b != NULL);
  b->n = 0;
  b->n_demo = 0;
  b->shards_skipped = 0;
  int rc = sample_args_check(s->n, b->cap, s->demo_fraction);
  if (rc != IB_OK) return rc;
  if (!s->ahead) {
    /* Nothing in flight (the first call, or after an error): this batch synchronously, then the
     * next one goes out. Starting both at once would let a rate limiter admit the second first
     * and hold this one. */
    rc = rc_sample(s->c, b, s->n, s->demo_fraction);
    if (rc == IB_OK) s->ahead = sampler_start(s, s->cur);
    return rc;
  }
  /* The next sample goes out before this one is decoded: the shards draw and send it while
   * this thread copies the current reply into b. */
  int k = s->cur, next = 1 - k;
  int next_ahead = sampler_start(s, next);
  uint64_t timed_out = 0; /* a shard that failed here is redrawn without by rc_sample, which reports why */
  rc = plan_collect(s->c, &s->plans[k], b, &s->down[k], &timed_out);
  s->cur = next;
  s->ahead = next_ahead;
  if (rc == 1) rc = rc_sample(s->c, b, s->n, s->demo_fraction); /* a shard went down: redraw now */
  else if (rc == IB_OK) {
    b->n = s->n;
    b->shards_skipped = s->down[k];
  }
  if (rc != IB_OK) {
    /* Start afresh next time: the prefetch may share this batch's fate (and its error is the
     * caller's to see now, not one batch late). */
    b->n = 0;
    b->n_demo = 0;
    if (s->ahead) plan_cancel(s->c, &s->plans[s->cur]); /* leaves ib_errmsg() as it is */
    s->ahead = 0;
  }
  return rc;
}

void rc_sampler_close(rc_sampler *s) {
  if (s == NULL) return;
  if (s->ahead) plan_cancel(s->c, &s->plans[s->cur]);
  free(s);
}

/* ---- read ---- */

int rc_read(rc_client *c, int i, const char *table, uint64_t start, rc_batch *b, int n, uint64_t *table_size,
            uint64_t *inserted) {
  IB_CHECK(c != NULL && b != NULL);
  b->n = 0;
  if (i < 0 || i >= c->n)
    return ib_fail(IB_EINVAL, "replay shard index %d is outside [0, %d) HINT: count the shard list", i, c->n);
  if (table == NULL) table = WIRE_TABLE_ONLINE;
  ibrl_ReadRequest req = ibrl_ReadRequest_init_zero;
  if (table[0] == '\0' || strlen(table) >= sizeof req.table)
    return ib_fail(IB_EINVAL, "Read: table name '%s' is empty or longer than %zu characters HINT: \"demo\" or "
                   "\"online\"", table, sizeof req.table - 1);
  if (n < 1 || n > b->cap)
    return ib_fail(IB_EINVAL, "Read: n %d is outside 1..%d (the batch's capacity) HINT: rc_batch_init with a larger "
                   "cap, or read smaller pages", n, b->cap);
  snprintf(req.table, sizeof req.table, "%s", table);
  req.start = start;
  req.count = (uint32_t)n;
  req.columns = true; /* one copy per column, as rc_sample asks */
  grpc_byte_buffer *qbb = NULL, *rbb = NULL;
  int rc = wire_encode(&qbb, ibrl_ReadRequest_fields, &req);
  if (rc != IB_OK) return rc;
  rc = rc__unary(c, i, WIRE_PATH_READ, "Read", qbb, &rbb, -1);
  grpc_byte_buffer_destroy(qbb);
  if (rc != IB_OK) return rc;
  char who[160];
  snprintf(who, sizeof who, "replay shard %d (%s) Read of '%s' at %llu", i, c->sh[i].target, table,
           (unsigned long long)start);
  rc__reply_info ri;
  rc = rc__decode_sample_reply(b, 0, n, 0, n, rbb, &ri, who);
  grpc_byte_buffer_destroy(rbb);
  if (rc != IB_OK) return rc;
  b->n = ri.n_items;
  b->n_demo = 0;
  b->shards_skipped = 0;
  memset(b->from_demo, 0, (size_t)b->n);
  if (table_size) *table_size = ri.table_size;
  if (inserted) *inserted = ri.inserted;
  return IB_OK;
}

/* ---- info and control ---- */

static void limiter_from(rc_limiter_info *o, const ibrl_RateLimitInfo *l) {
  o->paused = l->paused;
  o->samples_per_insert = l->samples_per_insert;
  o->error_buffer = l->error_buffer;
  o->min_size = l->min_size;
  o->inserts = l->inserts;
  o->samples = l->samples;
  o->insert_blocked_s = l->insert_blocked_s;
  o->sample_blocked_s = l->sample_blocked_s;
  o->insert_timeouts = l->insert_timeouts;
  o->sample_timeouts = l->sample_timeouts;
}

int rc_info_get(rc_client *c, int i, rc_shard_info *out) {
  IB_CHECK(c != NULL && out != NULL);
  if (i < 0 || i >= c->n)
    return ib_fail(IB_EINVAL, "replay shard index %d is outside [0, %d) HINT: count the shard list", i, c->n);
  ibrl_InfoRequest req = ibrl_InfoRequest_init_zero;
  ibrl_InfoReply *rep = ib_xmalloc(sizeof *rep);
  *rep = (ibrl_InfoReply)ibrl_InfoReply_init_zero;
  uint64_t t0 = ib_now_ns();
  int rc = unary_msg(c, i, WIRE_PATH_INFO, "Info", ibrl_InfoRequest_fields, &req, ibrl_InfoReply_fields, rep, -1);
  double rtt = (double)(ib_now_ns() - t0) / 1e6;
  if (rc == IB_OK) {
    memset(out, 0, sizeof *out);
    out->rtt_ms = rtt;
    out->shard_index = (int)rep->shard_index;
    out->obs_dim = (int)rep->obs_dim;
    out->act_dim = (int)rep->act_dim;
    out->n_tables = (int)IB_MIN(rep->tables_count, IB_ARRAY_LEN(out->tables));
    uint64_t dsz = 0, osz = 0;
    for (int t = 0; t < out->n_tables; t++) {
      const ibrl_TableInfo *ti = &rep->tables[t];
      rc_table_info *o = &out->tables[t];
      snprintf(o->name, sizeof o->name, "%s", ti->name);
      o->kind = (int)ti->kind;
      o->size = ti->size;
      o->capacity = ti->capacity;
      o->inserted = ti->inserted;
      o->sampled = ti->sampled;
      o->duplicates = ti->duplicates;
      o->inserts_per_s = ti->inserts_per_s;
      o->samples_per_s = ti->samples_per_s;
      o->bytes = ti->bytes;
    }
    info_sizes(rep, &dsz, &osz);
    if (rep->has_limiter) limiter_from(&out->limiter, &rep->limiter);
    out->n_actors = (int)IB_MIN(rep->actors_count, RC_MAX_ACTORS);
    for (int a = 0; a < out->n_actors; a++) {
      out->actors[a].actor_id = rep->actors[a].actor_id;
      out->actors[a].last_seq = rep->actors[a].last_seq;
      out->actors[a].episodes = rep->actors[a].episodes;
      out->actors[a].successes = rep->actors[a].successes;
      out->actors[a].weight_version = rep->actors[a].weight_version;
    }
    out->params_version = rep->params_version;
    out->checkpoints = rep->checkpoints;
    out->params_age_s = rep->params_age_s;
    out->params_published_unix_ms = rep->params_published_unix_ms;
    out->params_bytes = rep->params_bytes;
    snprintf(out->durability, sizeof out->durability, "%s", rep->durability);
    out->durability_broken = rep->durability_broken;
    snprintf(out->durability_error, sizeof out->durability_error, "%s", rep->durability_error);
    out->durability_broken_s = rep->durability_broken_s;
    out->durability_retries = rep->durability_retries;
    out->durability_retry_in_s = rep->durability_retry_in_s;
    pthread_mutex_lock(&c->lock);
    c->sh[i].demo_size = dsz;
    c->sh[i].online_size = osz;
    c->sh[i].sizes_ns = ib_now_ns();
    pthread_mutex_unlock(&c->lock);
  }
  free(rep);
  return rc;
}

int rc_checkpoint(rc_client *c, int i, rc_checkpoint_info *out) {
  IB_CHECK(c != NULL);
  if (i < 0 || i >= c->n)
    return ib_fail(IB_EINVAL, "replay shard index %d is outside [0, %d) HINT: count the shard list", i, c->n);
  ibrl_CheckpointRequest req = ibrl_CheckpointRequest_init_zero;
  ibrl_CheckpointReply rep = ibrl_CheckpointReply_init_zero;
  /* A checkpoint of a big table takes a while: allow 10x the normal deadline. */
  int rc = unary_msg(c, i, WIRE_PATH_CHECKPOINT, "Checkpoint", ibrl_CheckpointRequest_fields, &req,
                     ibrl_CheckpointReply_fields, &rep, c->deadline_ms * 10);
  if (rc == IB_OK && out != NULL) {
    snprintf(out->path, sizeof out->path, "%s", rep.path);
    out->items = rep.items;
    out->seconds = rep.seconds;
  }
  return rc;
}

int rc_ratelimit(rc_client *c, int i, rc_limit_op op, const rc_limiter_info *set, rc_limiter_info *out) {
  IB_CHECK(c != NULL);
  if (i < 0 || i >= c->n)
    return ib_fail(IB_EINVAL, "replay shard index %d is outside [0, %d) HINT: count the shard list", i, c->n);
  ibrl_RateLimitRequest req = ibrl_RateLimitRequest_init_zero;
  req.op = (ibrl_RateLimitRequest_Op)op;
  if (op == RC_LIMIT_SET) {
    IB_CHECK(set != NULL);
    req.samples_per_insert = set->samples_per_insert;
    req.error_buffer = set->error_buffer;
    req.min_size = set->min_size;
  }
  ibrl_RateLimitReply rep = ibrl_RateLimitReply_init_zero;
  int rc = unary_msg(c, i, WIRE_PATH_RATELIMIT, "RateLimit", ibrl_RateLimitRequest_fields, &req,
                     ibrl_RateLimitReply_fields, &rep, -1);
  if (rc == IB_OK && out != NULL) limiter_from(out, &rep.limiter);
  return rc;
}

int rc_health(rc_client *c, int i, const char *service, int *serving) {
  IB_CHECK(c != NULL && serving != NULL);
  *serving = 0;
  if (i < 0 || i >= c->n)
    return ib_fail(IB_EINVAL, "replay shard index %d is outside [0, %d) HINT: count the shard list", i, c->n);
  grpc_health_v1_HealthCheckRequest req = grpc_health_v1_HealthCheckRequest_init_zero;
  if (service != NULL) {
    if (strlen(service) >= sizeof req.service)
      return ib_fail(IB_EINVAL, "health service name '%s' is too long HINT: at most %zu characters", service,
                     sizeof req.service - 1);
    snprintf(req.service, sizeof req.service, "%s", service);
  }
  grpc_health_v1_HealthCheckResponse rep = grpc_health_v1_HealthCheckResponse_init_zero;
  int rc = unary_msg(c, i, WIRE_PATH_HEALTH_CHECK, "Health/Check", grpc_health_v1_HealthCheckRequest_fields, &req,
                     grpc_health_v1_HealthCheckResponse_fields, &rep, -1);
  if (rc == IB_OK) *serving = rep.status == grpc_health_v1_HealthCheckResponse_ServingStatus_SERVING;
  return rc;
}
