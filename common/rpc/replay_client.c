/* replay_client.c: the replay service client (see replay_client.h for the contract): channels
 * and the poller, unary calls, shards that are down and their probes, Info and the control
 * calls. Inserts are in replay_writer.c, sampling and reads in replay_sample.c, batches and the
 * item codec in replay_rows.c; replay_client_impl.h has what the parts share.
 *
 * Design.
 * - One channel per shard, created by wire_channel_create (receive limit, short reconnect
 *   backoff). The C core only does connection work while some thread polls a completion queue,
 *   so a poller thread loops on a private CQ in 20 ms slices whenever the client has been idle
 *   for 20 ms; with it a restarted shard is reachable again within about one backoff period
 *   (grpc-core.md pitfall 4). While calls run, their own plucks poll and the poller stands by
 *   (a second poller only moved each reply through another thread; see poller_main).
 * - Unary calls take a pluck CQ from a small pool in the client (rc__cq_get; one per call in
 *   flight, so every call is independent and the client is thread-safe without per-thread state).
 *   A call is one 6-op batch; its deadline bounds the pluck, so nothing waits forever. Calls fail
 *   fast on a shard that is down (no WAIT_FOR_READY): the caller sees IB_EUNAVAIL at once and
 *   decides.
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
 *   rc_client_close cancels the probes in flight (it never waits for a frozen shard's deadline). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "ib.h"
#include "log.h"
#include "replay_client_impl.h"
#include "rng.h"
#include "wire.h"

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
int rc__call_fail(const rc_client *c, int i, const char *what, grpc_status_code st, grpc_slice details) {
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
  for (int k = 0; k < c->n_cq_idle; k++) rc__cq_destroy(c->cq_idle[k]);
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
void rc__ucall_start(rc_client *c, int i, ucall *u, grpc_completion_queue *cq, const char *path,
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
void rc__ucall_release(ucall *u) {
  grpc_metadata_array_destroy(&u->md_init);
  grpc_metadata_array_destroy(&u->md_trail);
  grpc_slice_unref(u->details);
  gpr_free((void *)u->error_string);
  grpc_call_unref(u->call);
}

void rc__cq_destroy(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  for (;;) {
    grpc_event ev = grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
  }
  grpc_completion_queue_destroy(cq);
}

/* A pluck queue for one thread's unary calls: an idle one from the client's pool, else a new one.
 * Reusing them (as a long-lived caller would keep one) saves creating and draining a queue per
 * call. Give it back with rc__cq_put once every call started on it has been plucked to completion. */
grpc_completion_queue *rc__cq_get(rc_client *c) {
  grpc_completion_queue *cq = NULL;
  pthread_mutex_lock(&c->cq_mu);
  if (c->n_cq_idle > 0) cq = c->cq_idle[--c->n_cq_idle];
  pthread_mutex_unlock(&c->cq_mu);
  return cq != NULL ? cq : grpc_completion_queue_create_for_pluck(NULL);
}

void rc__cq_put(rc_client *c, grpc_completion_queue *cq) {
  pthread_mutex_lock(&c->cq_mu);
  if (c->n_cq_idle < RC_CQ_POOL) {
    c->cq_idle[c->n_cq_idle++] = cq;
    cq = NULL;
  }
  pthread_mutex_unlock(&c->cq_mu);
  if (cq != NULL) rc__cq_destroy(cq);
}

/* grpc_completion_queue_pluck on one of c's calls, noted for the poller (see poller_main). */
grpc_event rc__pluck(rc_client *c, grpc_completion_queue *cq, void *tag, gpr_timespec deadline) {
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
  grpc_completion_queue *cq = rc__cq_get(c);
  ucall u;
  rc__ucall_start(c, i, &u, cq, path, req, deadline_ms);
  grpc_event ev = rc__pluck(c, cq, &u, gpr_inf_future(GPR_CLOCK_REALTIME));
  IB_CHECK(ev.type == GRPC_OP_COMPLETE);
  int rc = IB_OK;
  if (u.status != GRPC_STATUS_OK) {
    rc = rc__call_fail(c, i, what, u.status, u.details);
  } else if (u.reply == NULL) {
    rc = ib_fail(IB_EPROTO, "replay shard %d (%s) %s: OK status without a reply message HINT: the peer is not a "
                 "compatible ibrl-replay", i, c->sh[i].target, what);
  }
  if (rc == IB_OK) {
    *reply = u.reply;
  } else if (u.reply) {
    grpc_byte_buffer_destroy(u.reply);
  }
  rc__ucall_release(&u);
  rc__cq_put(c, cq);
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

/* ---- shards that are down ---- */

/* Marks shard i down after error rc (message in ib_errmsg()), warning once per outage. It stays
 * out of every sample until a probe succeeds, and is not probed before RC_SIZES_TTL_MS, doubled
 * for each time it went down again since its last good Sample (up to 2^RC_DOWN_MAX_SHIFT): a shard
 * whose Sample its rate limiter held to the deadline answers the probe at once, and without this
 * it would be back in every second only to hold a sample for a deadline again. */
void rc__shard_mark_down(rc_client *c, int i) {
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
void rc__shard_mark_up(rc_client *c, int i) {
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
    rc__ucall_start(c, i, &c->probe[i], c->poll_cq, WIRE_PATH_INFO, req, ms);
    s->probing = 1;
    started++;
  }
  pthread_mutex_unlock(&c->lock);
  if (req != NULL) grpc_byte_buffer_destroy(req); /* each call holds its own reference */
  return started;
}

/* The demo and online table sizes an InfoReply reports. */
void rc__info_sizes(const ibrl_InfoReply *rep, uint64_t *demo, uint64_t *online) {
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
    rc = rc__call_fail(c, i, "Info (probe)", u->status, u->details);
  } else {
    ibrl_InfoReply *rep = ib_xmalloc(sizeof *rep);
    *rep = (ibrl_InfoReply)ibrl_InfoReply_init_zero;
    rc = u->reply ? wire_decode(rep, ibrl_InfoReply_fields, u->reply, "Info (probe)") : IB_EPROTO;
    if (rc == IB_OK) rc__info_sizes(rep, &dsz, &osz);
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
  rc__ucall_release(u);
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
  o->insert_partial_acks = l->insert_partial_acks;
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
    rc__info_sizes(rep, &dsz, &osz);
    if (rep->has_limiter) limiter_from(&out->limiter, &rep->limiter);
    out->n_actors = (int)IB_MIN(rep->actors_count, RC_MAX_ACTORS);
    for (int a = 0; a < out->n_actors; a++) {
      out->actors[a].actor_id = rep->actors[a].actor_id;
      out->actors[a].last_seq = rep->actors[a].last_seq;
      out->actors[a].episodes = rep->actors[a].episodes;
      out->actors[a].successes = rep->actors[a].successes;
      out->actors[a].weight_version = rep->actors[a].weight_version;
      out->actors[a].inserted = rep->actors[a].inserted;
      out->actors[a].duplicates = rep->actors[a].duplicates;
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
    snprintf(out->salvage, sizeof out->salvage, "%s", rep->salvage);
    out->restore_missing_acked = rep->restore_missing_acked;
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
