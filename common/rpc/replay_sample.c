/* replay_sample.c: sampling (rc_sample, rc_sampler) and paged reads (rc_read); see
 * replay_client.h for the contract.
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
 * - rc_read asks one shard for one page of a table (Replay.Read) as columns and decodes the reply
 *   with the SampleReply decoder (ReadReply keeps SampleReply's field numbers for the rows).
 * - Shards that are down are left out of the draw (replay_client.c says how they come back). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/time.h>

#include "ib.h"
#include "replay_client_impl.h"
#include "rng.h"
#include "wire.h"

/* ---- sample ---- */

/* Where one shard's rows go in the batch: its demo rows from demo_off, online rows from online_off. */
typedef struct sample_sink {
  int demo_off, online_off;
} sample_sink;

/* One attempt of a sample, split so that rc_sampler can start the next one before it decodes
 * this one: plan_start draws the rows' shards and starts the per-shard calls on its own CQ,
 * plan_collect waits for them and decodes the replies into a batch. */
typedef struct sample_plan {
  grpc_completion_queue *cq; /* from rc__cq_get while calls are started, else NULL */
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
 * Info fails as down (rc__is_down) is marked down and added to *down, and to *timed_out when it ran
 * out of time (so rc_sample's final error says "timed out" when every shard did). Returns IB_OK
 * (each asked shard answered or is down now) or the first other error by shard index (a refusal
 * the others would repeat: a missing token, a malformed reply), with its message in ib_errmsg();
 * the down ones are marked either way. Not on the hot path: only stale or empty sizes come here,
 * so the one reply struct per round is allocated here (it is kilobytes, too big for the stack). */
static int sizes_refresh(rc_client *c, sample_plan *p, uint64_t ask, uint64_t *down, uint64_t *timed_out) {
  grpc_byte_buffer *req = NULL;
  ibrl_InfoRequest q = ibrl_InfoRequest_init_zero;
  IB_CHECK(wire_encode(&req, ibrl_InfoRequest_fields, &q) == IB_OK);
  grpc_completion_queue *cq = rc__cq_get(c);
  for (int i = 0; i < c->n; i++)
    if (ask >> i & 1) rc__ucall_start(c, i, &p->u[i], cq, WIRE_PATH_INFO, req, -1);
  grpc_byte_buffer_destroy(req); /* each call holds its own reference */
  ibrl_InfoReply *rep = ib_xmalloc(sizeof *rep);
  int rc = IB_OK;
  char first[1024]; /* the first refusal's message: a later shard's failure must not replace it */
  for (int i = 0; i < c->n; i++) {
    if (!(ask >> i & 1)) continue;
    ucall *u = &p->u[i];
    grpc_event ev = rc__pluck(c, cq, u, gpr_inf_future(GPR_CLOCK_REALTIME));
    IB_CHECK(ev.type == GRPC_OP_COMPLETE);
    int e;
    if (u->status != GRPC_STATUS_OK) {
      e = rc__call_fail(c, i, "Info", u->status, u->details);
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
      rc__info_sizes(rep, &dsz, &osz);
      pthread_mutex_lock(&c->lock);
      c->sh[i].demo_size = dsz;
      c->sh[i].online_size = osz;
      c->sh[i].sizes_ns = ib_now_ns();
      pthread_mutex_unlock(&c->lock);
    } else if (rc__is_down(e)) {
      rc__shard_mark_down(c, i); /* its warning names this failure: ib_errmsg() is still rc__call_fail's */
      *down |= 1ull << i;
      if (e == IB_ETIMEDOUT) *timed_out |= 1ull << i;
    } else if (rc == IB_OK) {
      rc = e;
      snprintf(first, sizeof first, "%s", ib_errmsg());
    }
    if (u->reply) grpc_byte_buffer_destroy(u->reply);
    rc__ucall_release(u);
  }
  free(rep);
  rc__cq_put(c, cq); /* every call started on it was plucked above */
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
  grpc_completion_queue *cq = p->cq = rc__cq_get(c);
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
    rc__ucall_start(c, i, &u[i], cq, WIRE_PATH_SAMPLE, bb, -1);
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
    grpc_event ev = rc__pluck(c, p->cq, &p->u[i], gpr_inf_future(GPR_CLOCK_REALTIME));
    IB_CHECK(ev.type == GRPC_OP_COMPLETE);
    if (p->u[i].reply) grpc_byte_buffer_destroy(p->u[i].reply);
    rc__ucall_release(&p->u[i]);
    p->started[i] = 0;
  }
  rc__cq_put(c, p->cq);
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
    grpc_event ev = rc__pluck(c, cq, &u[i], gpr_inf_future(GPR_CLOCK_REALTIME));
    IB_CHECK(ev.type == GRPC_OP_COMPLETE);
    if (rc == IB_OK || rc == 1) {
      if (u[i].status != GRPC_STATUS_OK) {
        int e = rc__call_fail(c, i, "Sample", u[i].status, u[i].details);
        if (rc__is_down(e)) {
          rc__shard_mark_down(c, i);
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
          if (was_down) rc__shard_mark_up(c, i); /* no second lock per reply on the common path */
        }
      }
    }
    if (u[i].reply) grpc_byte_buffer_destroy(u[i].reply);
    rc__ucall_release(&u[i]);
    p->started[i] = 0;
  }
  rc__cq_put(c, cq); /* every started call was plucked above: nothing is pending on it */
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
