/* rpc_server.c: the completion-queue state machines behind rpc_server.h.
 *
 * Design. N worker threads share ONE completion queue (grpc_completion_queue_next is safe from
 * many threads). One CQ per thread would be faster, but a handler that blocks (a rate limiter, a
 * long poll) would then stall every call the server happened to match to its CQ; with a shared
 * CQ any idle worker takes the next event.
 * The polling turn: one worker per two calls in progress (at least 1, at most `pollers`) waits in
 * the CQ or runs a handler, and a worker keeps its turn from one event to the next. When every
 * idle worker polled, each message of a lone client stream woke whichever worker was waiting
 * while the last one was still being handled: a thread wakeup and a small socket read per
 * message, which cost a 1-client insert stream about a third of the shard's CPU
 * (docs/results/replay-throughput.md, "Workers that take turns"). Two calls per turn, because a
 * pipelined writer keeps two streams open and a prefetching sampler two calls; with more clients
 * the turns grow, so their handlers run side by side. A handler about to wait calls
 * rpc_server_will_wait, which gives its turn to a standby worker, so other calls go on; after the
 * handler returns, its worker queues for a turn again.
 * Every CQ event's tag is a call context (call_ctx) whose `state` says what finished:
 *   REQUESTED  a posted request matched a new call: re-post a fresh request for the same method
 *              on the same CQ, check the token, then run the unary handler and finish, or start
 *              reading the stream, or (generic request = unknown method) finish UNIMPLEMENTED;
 *   READING    one RECV_MESSAGE of a client stream completed: hand it to the handler and read on,
 *              or (NULL message = half-close or failure) ask the handler for the final reply;
 *   FINISHING  the one final batch (initial metadata, message, status, RECV_CLOSE) completed:
 *              free the context.
 * A context is created per posted request, so `live` counts posted requests plus running calls.
 * Pitfalls handled (docs/grpc-core.md section 3): a successful new-call event can carry a NULL
 * payload (answered CANCELLED, never decoded); unknown methods only surface through the generic
 * grpc_server_request_call, one of which stays posted per CQ; and the CQs are shut down only
 * after every context has been freed, because shutdown-notify and grpc_server_destroy do not mean
 * the handlers are done. The health service is an internal unary method exempt from the token.
 * Only one batch is ever outstanding per call, which satisfies core's serialisation rule. */
#include "rpc_server.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "ib.h"
#include "log.h"
#include "wire.h"

#define HEALTH_MAX 8
#define POSTS_PER_METHOD 2 /* requests kept posted per method per CQ (absorbs bursts) */

typedef enum call_state { ST_REQUESTED, ST_READING, ST_FINISHING } call_state;

typedef struct worker {
  rpc_server *srv; /* borrowed */
  grpc_completion_queue *cq; /* borrowed: the server's shared CQ */
  pthread_t thread;
  int started;
  int has_turn; /* holds a polling turn; read and written by its own thread only */
} worker;

/* An entry of the internal method table: the user's methods, then health, then generic. */
typedef struct method_entry {
  rpc_method m;
  void *handle;   /* grpc_server_register_method handle; NULL for the generic entry */
  int no_auth;    /* health is served without the token (probes carry none) */
  int generic;
} method_entry;

typedef struct call_ctx {
  rpc_server *srv; /* borrowed */
  worker *w;       /* borrowed */
  int method;      /* index into srv->methods */
  call_state state;
  grpc_call *call; /* owned once the request matched */
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_call_details details; /* generic requests only */
  grpc_byte_buffer *payload; /* owned: the initial (unary) or last received (stream) message */
  int close_cancelled;       /* RECV_CLOSE_ON_SERVER result */
  grpc_byte_buffer *reply_bb; /* owned until the final batch completes */
  grpc_slice status_slice;
  int has_status_slice;
  int active;                 /* counted in srv->active */
  rpc_call_info info;
  rpc_reply rep;
} call_ctx;

typedef struct health_entry {
  char name[128];
  int status;
} health_entry;

struct rpc_server {
  grpc_server *gs;
  int port;
  int nworkers;
  worker *workers;
  int max_turns;      /* opts.pollers: the most workers taking calls at once (top of file) */
  int turns;          /* workers that may take calls now: written under mu and tmu, read under either */
  int polling;        /* turns taken, under tmu */
  pthread_mutex_t tmu;
  pthread_cond_t tcv; /* a turn was given back */
  grpc_completion_queue *cq; /* owned; shared by every worker */
  method_entry *methods;
  size_t nmethods;
  char *auth_value; /* "Bearer <token>" or NULL */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int shutting, stopped, shutdown_seen;
  int live, active;
  int shutdown_tag; /* its address is the shutdown-notify tag */
  pthread_mutex_t hmu;
  health_entry health[HEALTH_MAX];
  int nhealth;
};

grpc_status_code rpc_reply_fail(rpc_reply *rep, grpc_status_code status, const char *fmt, ...) {
  IB_CHECK(rep != NULL);
  rep->status = status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rep->msg, sizeof rep->msg, fmt, ap);
  va_end(ap);
  return status;
}

/* ---- the polling turn (top of file) ---- */

/* Under srv->mu, after `active` changed: one turn per two calls in progress (a pipelined writer
 * keeps two streams open, a prefetching sampler two calls), at least 1 and at most max_turns. A
 * new turn wakes a standby worker; a worker over the count gives its turn back after its event
 * (turn_surplus). */
static void turns_update(rpc_server *srv) {
  int want = (srv->active + 1) / 2;
  if (want < 1) want = 1;
  if (want > srv->max_turns) want = srv->max_turns;
  if (want == __atomic_load_n(&srv->turns, __ATOMIC_RELAXED)) return;
  pthread_mutex_lock(&srv->tmu);
  int more = want > __atomic_load_n(&srv->turns, __ATOMIC_RELAXED);
  __atomic_store_n(&srv->turns, want, __ATOMIC_RELAXED);
  if (more) pthread_cond_broadcast(&srv->tcv);
  pthread_mutex_unlock(&srv->tmu);
}

/* ---- contexts ---- */

static void post_request(rpc_server *srv, worker *w, int method) {
  pthread_mutex_lock(&srv->mu);
  if (srv->shutting) {
    pthread_mutex_unlock(&srv->mu);
    return;
  }
  call_ctx *c = ib_xcalloc(1, sizeof *c);
  c->srv = srv;
  c->w = w;
  c->method = method;
  c->state = ST_REQUESTED;
  grpc_metadata_array_init(&c->md);
  method_entry *me = &srv->methods[method];
  grpc_call_error err;
  if (me->generic) {
    grpc_call_details_init(&c->details);
    err = grpc_server_request_call(srv->gs, &c->call, &c->details, &c->md, w->cq, w->cq, c);
  } else {
    err = grpc_server_request_registered_call(srv->gs, me->handle, &c->call, &c->deadline, &c->md,
                                              me->m.kind == RPC_UNARY ? &c->payload : NULL, w->cq, w->cq, c);
  }
  IB_CHECK(err == GRPC_CALL_OK);
  srv->live++;
  pthread_mutex_unlock(&srv->mu);
}

static void free_ctx(call_ctx *c) {
  rpc_server *srv = c->srv;
  if (c->call != NULL) grpc_call_unref(c->call);
  grpc_metadata_array_destroy(&c->md);
  if (srv->methods[c->method].generic) grpc_call_details_destroy(&c->details);
  if (c->payload != NULL) grpc_byte_buffer_destroy(c->payload);
  if (c->reply_bb != NULL) grpc_byte_buffer_destroy(c->reply_bb);
  if (c->has_status_slice) grpc_slice_unref(c->status_slice);
  int active = c->active;
  free(c);
  pthread_mutex_lock(&srv->mu);
  srv->live--;
  if (active) {
    srv->active--;
    turns_update(srv);
  }
  if (srv->live == 0) pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
}

/* Sends the one final batch. On OK the reply message is rep->bb (an empty message if NULL). */
static void finish(call_ctx *c) {
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].data.send_initial_metadata.count = 0;
  n++;
  if (c->rep.status == GRPC_STATUS_OK) {
    if (c->rep.bb == NULL) {
      grpc_slice empty = grpc_empty_slice();
      c->rep.bb = grpc_raw_byte_buffer_create(&empty, 1);
    }
    c->reply_bb = c->rep.bb;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = c->reply_bb;
    n++;
  } else if (c->rep.bb != NULL) {
    grpc_byte_buffer_destroy(c->rep.bb); /* no message with an error status */
  }
  c->rep.bb = NULL;
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.trailing_metadata_count = 0;
  ops[n].data.send_status_from_server.status = c->rep.status;
  if (c->rep.status != GRPC_STATUS_OK && c->rep.msg[0] != '\0') {
    c->status_slice = grpc_slice_from_copied_string(c->rep.msg);
    c->has_status_slice = 1;
    ops[n].data.send_status_from_server.status_details = &c->status_slice;
  }
  n++;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n].data.recv_close_on_server.cancelled = &c->close_cancelled;
  n++;
  c->state = ST_FINISHING;
  grpc_call_error err = grpc_call_start_batch(c->call, ops, n, c, NULL);
  IB_CHECK(err == GRPC_CALL_OK);
}

static void start_read(call_ctx *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->payload;
  c->state = ST_READING;
  grpc_call_error err = grpc_call_start_batch(c->call, &op, 1, c, NULL);
  IB_CHECK(err == GRPC_CALL_OK);
}

/* Constant-time comparison of the authorization metadata against the expected value. */
static int token_ok(const rpc_server *srv, const grpc_metadata_array *md) {
  size_t want = strlen(srv->auth_value);
  for (size_t i = 0; i < md->count; i++) {
    if (grpc_slice_str_cmp(md->metadata[i].key, "authorization") != 0) continue;
    const grpc_slice v = md->metadata[i].value;
    if (GRPC_SLICE_LENGTH(v) != want) return 0;
    const unsigned char *p = GRPC_SLICE_START_PTR(v);
    unsigned diff = 0;
    for (size_t k = 0; k < want; k++) diff |= (unsigned)(p[k] ^ (unsigned char)srv->auth_value[k]);
    return diff == 0;
  }
  return 0;
}

static void end_stream(call_ctx *c, int cancelled) {
  method_entry *me = &c->srv->methods[c->method];
  c->info.cancelled = cancelled;
  me->m.stream(me->m.ctx, &c->info, NULL, &c->rep);
  if (cancelled && c->rep.status == GRPC_STATUS_OK)
    rpc_reply_fail(&c->rep, GRPC_STATUS_CANCELLED, "the stream broke before it was closed");
  finish(c);
}

static void on_event(call_ctx *c, int success) {
  rpc_server *srv = c->srv;
  method_entry *me = &srv->methods[c->method];
  switch (c->state) {
    case ST_REQUESTED:
      if (!success) { /* the server is shutting down; no call was matched */
        free_ctx(c);
        return;
      }
      post_request(srv, c->w, c->method);
      pthread_mutex_lock(&srv->mu);
      srv->active++;
      turns_update(srv);
      c->active = 1;
      pthread_mutex_unlock(&srv->mu);
      c->rep.status = GRPC_STATUS_OK;
      c->info.path = me->m.path;
      c->info.deadline = c->deadline;
      if (me->generic) {
        char path[200];
        size_t len = GRPC_SLICE_LENGTH(c->details.method);
        if (len >= sizeof path) len = sizeof path - 1;
        memcpy(path, GRPC_SLICE_START_PTR(c->details.method), len);
        path[len] = '\0';
        rpc_reply_fail(&c->rep, GRPC_STATUS_UNIMPLEMENTED,
                       "unknown method '%s' HINT: this server implements ibrl.Replay, ibrl.Params and "
                       "grpc.health.v1.Health/Check (proto/ibrl.proto)", path);
        finish(c);
        return;
      }
      if (srv->auth_value != NULL && !me->no_auth && !token_ok(srv, &c->md)) {
        rpc_reply_fail(&c->rep, GRPC_STATUS_UNAUTHENTICATED,
                       "%s: missing or wrong token HINT: send metadata 'authorization: Bearer <token>' "
                       "with the server's --token / IBRL_REPLAY_TOKEN", me->m.path);
        finish(c);
        return;
      }
      if (me->m.kind == RPC_UNARY) {
        if (c->payload == NULL) { /* pitfall 1: cancelled before the message arrived */
          rpc_reply_fail(&c->rep, GRPC_STATUS_CANCELLED, "%s: no request message arrived", me->m.path);
          finish(c);
          return;
        }
        me->m.unary(me->m.ctx, &c->info, c->payload, &c->rep);
        finish(c);
      } else {
        start_read(c);
      }
      return;
    case ST_READING:
      if (!success || c->payload == NULL) {
        end_stream(c, !success);
        return;
      }
      {
        int stop = me->m.stream(me->m.ctx, &c->info, c->payload, &c->rep);
        grpc_byte_buffer_destroy(c->payload);
        c->payload = NULL;
        if (stop) {
          if (c->rep.status == GRPC_STATUS_OK)
            rpc_reply_fail(&c->rep, GRPC_STATUS_INTERNAL, "%s: handler ended the stream", me->m.path);
          /* Let the handler release its state; keep its error status. */
          rpc_reply saved = c->rep;
          c->info.cancelled = 1;
          me->m.stream(me->m.ctx, &c->info, NULL, &c->rep);
          if (c->rep.bb != NULL) grpc_byte_buffer_destroy(c->rep.bb);
          c->rep = saved;
          finish(c);
        } else {
          start_read(c);
        }
      }
      return;
    case ST_FINISHING:
      free_ctx(c);
      return;
  }
}

/* The worker running on this thread, so that rpc_server_will_wait can find its turn. */
static __thread worker *tl_worker;

static void turn_take(worker *w) {
  rpc_server *srv = w->srv;
  pthread_mutex_lock(&srv->tmu);
  while (__atomic_load_n(&srv->polling, __ATOMIC_RELAXED) >= __atomic_load_n(&srv->turns, __ATOMIC_RELAXED))
    pthread_cond_wait(&srv->tcv, &srv->tmu);
  __atomic_add_fetch(&srv->polling, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&srv->tmu);
  w->has_turn = 1;
}

static void turn_give(worker *w) {
  rpc_server *srv = w->srv;
  w->has_turn = 0;
  pthread_mutex_lock(&srv->tmu);
  __atomic_sub_fetch(&srv->polling, 1, __ATOMIC_RELAXED);
  pthread_cond_signal(&srv->tcv);
  pthread_mutex_unlock(&srv->tmu);
}

/* After an event: gives the turn back if more workers hold one than there are turns now (calls
 * ended). The unlocked reads only decide whether to look under the lock. */
static void turn_surplus(worker *w) {
  rpc_server *srv = w->srv;
  if (__atomic_load_n(&srv->polling, __ATOMIC_RELAXED) <= __atomic_load_n(&srv->turns, __ATOMIC_RELAXED)) return;
  pthread_mutex_lock(&srv->tmu);
  int over = __atomic_load_n(&srv->polling, __ATOMIC_RELAXED) > __atomic_load_n(&srv->turns, __ATOMIC_RELAXED);
  if (over) __atomic_sub_fetch(&srv->polling, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&srv->tmu);
  if (over) w->has_turn = 0;
}

void rpc_server_will_wait(void) {
  worker *w = tl_worker;
  if (w != NULL && w->has_turn) turn_give(w);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  rpc_server *srv = w->srv;
  tl_worker = w;
  for (;;) {
    if (!w->has_turn) turn_take(w);
    grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break; /* the turn goes on, so that every worker sees it */
    if (ev.type != GRPC_OP_COMPLETE) continue;
    if (ev.tag == &srv->shutdown_tag) {
      pthread_mutex_lock(&srv->mu);
      srv->shutdown_seen = 1;
      pthread_cond_broadcast(&srv->cv);
      pthread_mutex_unlock(&srv->mu);
      continue;
    }
    on_event(ev.tag, ev.success);
    if (w->has_turn) turn_surplus(w);
  }
  turn_give(w);
  tl_worker = NULL;
  return NULL;
}

/* ---- health ---- */

static void health_check(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req, rpc_reply *rep) {
  (void)info;
  rpc_server *srv = ctx;
  grpc_health_v1_HealthCheckRequest q = grpc_health_v1_HealthCheckRequest_init_zero;
  if (wire_decode(&q, grpc_health_v1_HealthCheckRequest_fields, req, "HealthCheckRequest") != IB_OK) {
    rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "%s", ib_errmsg());
    return;
  }
  int status = -1;
  pthread_mutex_lock(&srv->hmu);
  for (int i = 0; i < srv->nhealth; i++)
    if (strcmp(srv->health[i].name, q.service) == 0) status = srv->health[i].status;
  pthread_mutex_unlock(&srv->hmu);
  if (status < 0) {
    rpc_reply_fail(rep, GRPC_STATUS_NOT_FOUND, "unknown service '%s'", q.service);
    return;
  }
  grpc_health_v1_HealthCheckResponse r = grpc_health_v1_HealthCheckResponse_init_zero;
  r.status = (grpc_health_v1_HealthCheckResponse_ServingStatus)status;
  if (wire_encode(&rep->bb, grpc_health_v1_HealthCheckResponse_fields, &r) != IB_OK)
    rpc_reply_fail(rep, GRPC_STATUS_INTERNAL, "%s", ib_errmsg());
}

void rpc_server_health_set(rpc_server *srv, const char *service, int serving) {
  IB_CHECK(srv != NULL && service != NULL && strlen(service) < sizeof srv->health[0].name);
  IB_CHECK(serving == 1 || serving == 2);
  pthread_mutex_lock(&srv->hmu);
  int i;
  for (i = 0; i < srv->nhealth; i++)
    if (strcmp(srv->health[i].name, service) == 0) break;
  if (i == srv->nhealth) {
    IB_CHECK(srv->nhealth < HEALTH_MAX);
    snprintf(srv->health[i].name, sizeof srv->health[i].name, "%s", service);
    srv->nhealth++;
  }
  srv->health[i].status = serving;
  pthread_mutex_unlock(&srv->hmu);
}

/* ---- lifecycle ---- */

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 8192, len = 0, k;
  char *buf = ib_xmalloc(cap);
  while ((k = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += k;
    if (len + 1 == cap) buf = ib_xrealloc(buf, cap *= 2);
  }
  fclose(f);
  buf[len] = '\0';
  return buf;
}

static grpc_server_credentials *make_creds(const rpc_server_opts *o, int *err) {
  *err = IB_OK;
  if (o->tls_cert_path == NULL && o->tls_key_path == NULL) return grpc_insecure_server_credentials_create();
  if (o->tls_cert_path == NULL || o->tls_key_path == NULL) {
    *err = ib_fail(IB_EINVAL, "TLS needs both a certificate and a key HINT: pass --tls-cert and --tls-key together");
    return NULL;
  }
  char *cert = slurp(o->tls_cert_path);
  char *key = slurp(o->tls_key_path);
  if (cert == NULL || key == NULL) {
    *err = ib_fail(IB_EIO, "cannot read TLS %s '%s' HINT: check the path and permissions",
                   cert == NULL ? "certificate" : "key", cert == NULL ? o->tls_cert_path : o->tls_key_path);
    free(cert);
    free(key);
    return NULL;
  }
  grpc_ssl_pem_key_cert_pair pair = {key, cert};
  grpc_server_credentials *creds = grpc_ssl_server_credentials_create(NULL, &pair, 1, 0, NULL);
  free(cert);
  free(key);
  if (creds == NULL) *err = ib_fail(IB_EINVAL, "TLS credentials rejected HINT: PEM certificate and key must match");
  return creds;
}

int rpc_server_create(rpc_server **out, const rpc_server_opts *opts, const rpc_method *methods, size_t n) {
  IB_CHECK(out != NULL && opts != NULL && opts->bind != NULL && (methods != NULL || n == 0));
  *out = NULL;
  if (opts->threads < 1 || opts->threads > 64)
    return ib_fail(IB_EINVAL, "threads %d out of range HINT: use 1..64 (about the number of cores)", opts->threads);
  if (opts->pollers < 0 || opts->pollers > opts->threads)
    return ib_fail(IB_EINVAL, "pollers %d out of range HINT: use 1..threads (%d); 0 means threads", opts->pollers,
                   opts->threads);
  if (opts->port < 0 || opts->port > 65535)
    return ib_fail(IB_EINVAL, "port %d out of range HINT: use 0 (any free port) .. 65535", opts->port);
  int cerr;
  grpc_server_credentials *creds = make_creds(opts, &cerr);
  if (creds == NULL) return cerr;

  rpc_server *srv = ib_xcalloc(1, sizeof *srv);
  pthread_mutex_init(&srv->mu, NULL);
  pthread_cond_init(&srv->cv, NULL);
  pthread_mutex_init(&srv->hmu, NULL);
  pthread_mutex_init(&srv->tmu, NULL);
  pthread_cond_init(&srv->tcv, NULL);
  srv->max_turns = opts->pollers > 0 ? opts->pollers : opts->threads;
  srv->turns = 1;
  rpc_server_health_set(srv, "", 2);
  if (opts->token != NULL && opts->token[0] != '\0') {
    size_t len = strlen(opts->token) + 8;
    srv->auth_value = ib_xmalloc(len);
    snprintf(srv->auth_value, len, "Bearer %s", opts->token);
  }

  long maxb = opts->max_message_bytes;
  if (maxb <= 0 || maxb > 0x7fffffffL) maxb = 0x7fffffffL;
  grpc_arg args[5];
  memset(args, 0, sizeof args);
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = (int)maxb;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = -1;
  /* Let clients keep connections alive with pings (grpc-core.md pitfall 7). */
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS;
  args[2].value.integer = 500;
  args[3].type = GRPC_ARG_INTEGER;
  args[3].key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS;
  args[3].value.integer = 1;
  /* gRPC sets SO_REUSEPORT by default: a second server on the same port would then start and
   * silently take half the connections. One port = one shard, so refuse instead. */
  args[4].type = GRPC_ARG_INTEGER;
  args[4].key = GRPC_ARG_ALLOW_REUSEPORT;
  args[4].value.integer = 0;
  grpc_channel_args ca = {IB_ARRAY_LEN(args), args};
  srv->gs = grpc_server_create(&ca, NULL);

  /* Method table: the user's, then health, then the generic fallback. */
  srv->nmethods = n + 2;
  srv->methods = ib_xcalloc(srv->nmethods, sizeof *srv->methods);
  for (size_t i = 0; i < n; i++) {
    IB_CHECK(methods[i].path != NULL);
    IB_CHECK(methods[i].kind == RPC_UNARY ? methods[i].unary != NULL : methods[i].stream != NULL);
    srv->methods[i].m = methods[i];
  }
  srv->methods[n].m = (rpc_method){WIRE_PATH_HEALTH_CHECK, RPC_UNARY, health_check, NULL, srv};
  srv->methods[n].no_auth = 1;
  srv->methods[n + 1].m = (rpc_method){"(generic)", RPC_UNARY, NULL, NULL, NULL};
  srv->methods[n + 1].generic = 1;
  for (size_t i = 0; i < n + 1; i++) {
    method_entry *me = &srv->methods[i];
    me->handle = grpc_server_register_method(srv->gs, me->m.path, NULL,
                                             me->m.kind == RPC_UNARY ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
                                                                     : GRPC_SRM_PAYLOAD_NONE, 0);
    IB_CHECK(me->handle != NULL); /* NULL = the same path twice: a bug in the method table */
  }

  srv->nworkers = opts->threads;
  srv->workers = ib_xcalloc((size_t)srv->nworkers, sizeof *srv->workers);
  srv->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(srv->gs, srv->cq, NULL);
  for (int i = 0; i < srv->nworkers; i++) {
    srv->workers[i].srv = srv;
    srv->workers[i].cq = srv->cq;
  }

  char addr[300];
  if (strchr(opts->bind, ':') != NULL && opts->bind[0] != '[')
    snprintf(addr, sizeof addr, "[%s]:%d", opts->bind, opts->port);
  else
    snprintf(addr, sizeof addr, "%s:%d", opts->bind, opts->port);
  srv->port = grpc_server_add_http2_port(srv->gs, addr, creds);
  grpc_server_credentials_release(creds);
  if (srv->port == 0) {
    /* gRPC reports credentials it cannot use (a key that is not the certificate's) only as a port
     * it could not add, so with TLS both causes are named. */
    int e = opts->tls_cert_path != NULL
                ? ib_fail(IB_EIO, "cannot listen on %s with TLS HINT: the port may be in use or the address not "
                          "local (--port 0 picks a free port), or gRPC refused the certificate and key: check that "
                          "the key '%s' is the private key of the certificate '%s'", addr, opts->tls_key_path,
                          opts->tls_cert_path)
                : ib_fail(IB_EIO, "cannot listen on %s HINT: the port may be in use or the address not local; "
                          "use --port 0 to pick a free port", addr);
    /* Never started: destroy directly; no request was posted, so the CQs drain at once. */
    grpc_server_shutdown_and_notify(srv->gs, srv->cq, &srv->shutdown_tag);
    grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_server_destroy(srv->gs);
    grpc_completion_queue_shutdown(srv->cq);
    while (grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(srv->cq);
    free(srv->workers);
    free(srv->methods);
    free(srv->auth_value);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->hmu);
    pthread_mutex_destroy(&srv->tmu);
    pthread_cond_destroy(&srv->tcv);
    free(srv);
    return e;
  }
  grpc_server_start(srv->gs);
  for (int i = 0; i < srv->nworkers; i++) {
    for (size_t m = 0; m < srv->nmethods; m++) {
      int posts = srv->methods[m].generic ? 1 : POSTS_PER_METHOD;
      for (int k = 0; k < posts; k++) post_request(srv, &srv->workers[i], (int)m);
    }
  }
  for (int i = 0; i < srv->nworkers; i++) {
    IB_CHECK(pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) == 0);
    srv->workers[i].started = 1;
  }
  *out = srv;
  return IB_OK;
}

int rpc_server_port(const rpc_server *srv) {
  IB_CHECK(srv != NULL);
  return srv->port;
}

int rpc_server_active_calls(rpc_server *srv) {
  pthread_mutex_lock(&srv->mu);
  int a = srv->active;
  pthread_mutex_unlock(&srv->mu);
  return a;
}

void rpc_server_stop(rpc_server *srv) {
  IB_CHECK(srv != NULL);
  pthread_mutex_lock(&srv->mu);
  if (srv->stopped) {
    pthread_mutex_unlock(&srv->mu);
    return;
  }
  srv->stopped = 1;
  srv->shutting = 1; /* no more re-posting */
  pthread_mutex_unlock(&srv->mu);

  grpc_server_shutdown_and_notify(srv->gs, srv->cq, &srv->shutdown_tag);
  grpc_server_cancel_all_calls(srv->gs);
  pthread_mutex_lock(&srv->mu);
  while (!srv->shutdown_seen) pthread_cond_wait(&srv->cv, &srv->mu);
  pthread_mutex_unlock(&srv->mu);
  grpc_server_destroy(srv->gs);
  srv->gs = NULL;
  pthread_mutex_lock(&srv->mu);
  while (srv->live > 0) pthread_cond_wait(&srv->cv, &srv->mu);
  pthread_mutex_unlock(&srv->mu);
  grpc_completion_queue_shutdown(srv->cq);
  for (int i = 0; i < srv->nworkers; i++)
    if (srv->workers[i].started) pthread_join(srv->workers[i].thread, NULL);
  grpc_completion_queue_destroy(srv->cq);
  srv->cq = NULL;
}

void rpc_server_destroy(rpc_server *srv) {
  if (srv == NULL) return;
  rpc_server_stop(srv);
  free(srv->workers);
  free(srv->methods);
  free(srv->auth_value);
  pthread_mutex_destroy(&srv->mu);
  pthread_cond_destroy(&srv->cv);
  pthread_mutex_destroy(&srv->hmu);
  pthread_mutex_destroy(&srv->tmu);
  pthread_cond_destroy(&srv->tcv);
  free(srv);
}
