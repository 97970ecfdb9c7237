/* rsrv_admin.c: the replay shard's control calls: Info, RateLimit and Checkpoint, and the Params
 * service (Publish, GetIfNewer). How each works is at the top of rsrv.c. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ib.h"
#include "log.h"
#include "ratelim.h"
#include "rpc_server.h"
#include "rsrv_impl.h"
#include "store.h"
#include "wire.h"

/* ---- Info, RateLimit, Checkpoint ---- */

static void limiter_info(rsrv *s, ibrl_RateLimitInfo *o) {
  rlim_info li;
  rlim_info_get(s->lim, &li);
  o->paused = li.cfg.paused;
  /* The ratio off (an unbounded band) reads as samples_per_insert 0, the value that sets it. */
  o->samples_per_insert = isinf(li.cfg.error_buffer) ? 0 : li.cfg.samples_per_insert;
  o->error_buffer = li.cfg.error_buffer;
  o->min_size = li.cfg.min_size_to_sample;
  o->inserts = li.inserts;
  o->samples = li.samples;
  o->insert_blocked_s = (double)li.insert_blocked_ns * 1e-9;
  o->sample_blocked_s = (double)li.sample_blocked_ns * 1e-9;
  o->insert_timeouts = li.insert_timeouts;
  o->sample_timeouts = li.sample_timeouts;
  o->insert_partial_acks = __atomic_load_n(&s->insert_partial, __ATOMIC_RELAXED);
}

static int actor_cmp(const void *a, const void *b) {
  uint32_t x = ((const store_actor_info *)a)->actor_id, y = ((const store_actor_info *)b)->actor_id;
  return (x > y) - (x < y);
}

void rsrv__h_info(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep) {
  (void)info;
  rsrv *s = ctx;
  if (rsrv__not_ready(s, rep, "Info")) return;
  ibrl_InfoRequest req = ibrl_InfoRequest_init_zero;
  if (!rsrv__decode_req(&req, ibrl_InfoRequest_fields, req_bb, "InfoRequest", rep)) return;
  ibrl_InfoReply *r = ib_xcalloc(1, sizeof *r);
  r->shard_index = (uint32_t)s->cfg.shard_index;
  r->obs_dim = (uint32_t)s->cfg.obs_dim;
  r->act_dim = (uint32_t)s->cfg.act_dim;
  int nt = store_table_count(s->st);
  for (int t = 0; t < nt && t < (int)IB_ARRAY_LEN(r->tables); t++) {
    store_table_info ti;
    store_table_info_get(s->st, t, &ti);
    ibrl_TableInfo *o = &r->tables[r->tables_count++];
    snprintf(o->name, sizeof o->name, "%s", ti.spec.name);
    o->kind = (uint32_t)ti.spec.kind;
    o->size = ti.size;
    o->capacity = ti.spec.capacity;
    o->inserted = ti.total_inserts;
    o->sampled = ti.total_samples;
    o->duplicates = ti.duplicates;
    o->inserts_per_s = ti.inserts_per_s;
    o->samples_per_s = ti.samples_per_s;
    o->bytes = ti.bytes;
  }
  r->has_limiter = true;
  limiter_info(s, &r->limiter);
  enum { MAXA = (int)(sizeof r->actors / sizeof r->actors[0]) };
  store_actor_info *ai = ib_xcalloc(4096, sizeof *ai);
  uint32_t na = store_actors_get(s->st, s->t_online, ai, 4096);
  if (na > 4096) na = 4096;
  qsort(ai, na, sizeof *ai, actor_cmp);
  for (uint32_t i = 0; i < na && i < MAXA; i++) {
    ibrl_ActorInfo *o = &r->actors[r->actors_count++];
    o->actor_id = ai[i].actor_id;
    o->last_seq = ai[i].highest_seq;
    o->episodes = ai[i].recent_episodes;
    o->successes = ai[i].recent_successes;
    o->weight_version = ai[i].last_weight_version;
    o->inserted = ai[i].inserts;
    o->duplicates = ai[i].duplicates;
  }
  free(ai);
  pthread_mutex_lock(&s->pmu);
  r->params_version = s->pversion;
  if (s->pversion > 0) {
    r->params_age_s = (double)(ib_now_ns() - s->ppub_ns) * 1e-9;
    r->params_published_unix_ms = s->ppub_unix_ms;
    r->params_bytes = s->plen;
  }
  pthread_mutex_unlock(&s->pmu);
  /* Not under ckpt_mu: a checkpoint holds it until its file is written and synced (seconds on a
   * busy disk), and samplers ask Info for table sizes, so waiting here stalled the shard. */
  r->checkpoints = __atomic_load_n(&s->checkpoints, __ATOMIC_RELAXED);
  snprintf(r->durability, sizeof r->durability, "%s", s->durability);
  dur_state d;
  rsrv__dur_state_get(s, &d);
  r->durability_broken = d.broken != 0;
  snprintf(r->durability_error, sizeof r->durability_error, "%s", d.broken ? d.error : "");
  r->durability_broken_s = d.broken_s;
  r->durability_retries = d.retries;
  r->durability_retry_in_s = d.retry_in_s;
  snprintf(r->salvage, sizeof r->salvage, "%s", s->salvage); /* set once, before the shard serves */
  r->restore_missing_acked = s->restore_missing_acked;         /* likewise */
  if (wire_encode(&rep->bb, ibrl_InfoReply_fields, r) != IB_OK)
    rpc_reply_fail(rep, GRPC_STATUS_INTERNAL, "Info: %s", ib_errmsg());
  free(r);
}

void rsrv__h_ratelimit(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep) {
  (void)info;
  rsrv *s = ctx;
  if (rsrv__not_ready(s, rep, "RateLimit")) return;
  ibrl_RateLimitRequest req = ibrl_RateLimitRequest_init_zero;
  if (!rsrv__decode_req(&req, ibrl_RateLimitRequest_fields, req_bb, "RateLimitRequest", rep)) return;
  switch (req.op) {
    case ibrl_RateLimitRequest_Op_GET: break;
    case ibrl_RateLimitRequest_Op_PAUSE: rlim_pause(s->lim, true); log_info("rate limiter paused"); break;
    case ibrl_RateLimitRequest_Op_RESUME: rlim_pause(s->lim, false); log_info("rate limiter resumed"); break;
    case ibrl_RateLimitRequest_Op_SET: {
      rlim_info li;
      rlim_info_get(s->lim, &li);
      rlim_config c = li.cfg;
      /* samples_per_insert 0 lifts the ratio (the min-size gate stays), as --samples-per-insert 0
       * does at start: the limiter then runs with an unbounded band. */
      int off = req.samples_per_insert == 0;
      c.samples_per_insert = off ? 1.0 : req.samples_per_insert;
      c.error_buffer = off ? INFINITY : req.error_buffer;
      c.min_size_to_sample = req.min_size;
      if (rlim_config_set(s->lim, &c) != IB_OK) {
        rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "RateLimit SET: %s", ib_errmsg());
        return;
      }
      if (off)
        log_info("rate limiter set: ratio off, min_size %llu", (unsigned long long)c.min_size_to_sample);
      else
        log_info("rate limiter set: spi %g error_buffer %g min_size %llu", c.samples_per_insert, c.error_buffer,
                 (unsigned long long)c.min_size_to_sample);
      break;
    }
    default:
      rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "RateLimit: unknown op %d HINT: GET, PAUSE, RESUME or SET",
                     (int)req.op);
      return;
  }
  ibrl_RateLimitReply r = ibrl_RateLimitReply_init_zero;
  r.has_limiter = true;
  limiter_info(s, &r.limiter);
  if (wire_encode(&rep->bb, ibrl_RateLimitReply_fields, &r) != IB_OK)
    rpc_reply_fail(rep, GRPC_STATUS_INTERNAL, "RateLimit: %s", ib_errmsg());
}

void rsrv__h_checkpoint(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep) {
  (void)info;
  rsrv *s = ctx;
  if (rsrv__not_ready(s, rep, "Checkpoint")) return;
  ibrl_CheckpointRequest req = ibrl_CheckpointRequest_init_zero;
  if (!rsrv__decode_req(&req, ibrl_CheckpointRequest_fields, req_bb, "CheckpointRequest", rep)) return;
  persist_ckpt_info ci;
  rpc_server_will_wait(); /* a checkpoint takes up to seconds */
  int rc = rsrv_checkpoint(s, &ci);
  if (rc != IB_OK) {
    rpc_reply_fail(rep, rsrv__status_of(rc), "Checkpoint: %s", ib_errmsg());
    return;
  }
  ibrl_CheckpointReply r = ibrl_CheckpointReply_init_zero;
  snprintf(r.path, sizeof r.path, "%s", s->cfg.ckpt_dir);
  r.items = ci.items;
  r.seconds = ci.seconds;
  if (wire_encode(&rep->bb, ibrl_CheckpointReply_fields, &r) != IB_OK)
    rpc_reply_fail(rep, GRPC_STATUS_INTERNAL, "Checkpoint: %s", ib_errmsg());
}

/* ---- Params ---- */

void rsrv__h_publish(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep) {
  (void)info;
  rsrv *s = ctx;
  if (rsrv__not_ready(s, rep, "Publish")) return;
  ibrl_PublishRequest req = ibrl_PublishRequest_init_zero;
  wire_blob_sink sink = {NULL, 0, 0, (size_t)s->cfg.max_message_bytes};
  wire_blob_set_sink(&req.blob, &sink);
  if (!rsrv__decode_req(&req, ibrl_PublishRequest_fields, req_bb, "PublishRequest", rep)) {
    free(sink.data);
    return;
  }
  pthread_mutex_lock(&s->pmu);
  if (req.version <= s->pversion) {
    uint64_t have = s->pversion;
    pthread_mutex_unlock(&s->pmu);
    free(sink.data);
    rpc_reply_fail(rep, GRPC_STATUS_FAILED_PRECONDITION, "Publish: version %llu is not newer than the stored "
                   "version %llu HINT: versions must increase (a restarted learner continues its count)",
                   (unsigned long long)req.version, (unsigned long long)have);
    return;
  }
  free(s->pblob);
  s->pblob = sink.data; /* takes the decoded buffer */
  s->plen = sink.len;
  s->pversion = req.version;
  s->ppub_ns = ib_now_ns();
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  s->ppub_unix_ms = (uint64_t)wall.tv_sec * 1000u + (uint64_t)(wall.tv_nsec / 1000000);
  pthread_cond_broadcast(&s->pcv);
  pthread_mutex_unlock(&s->pmu);
  ibrl_PublishReply r = ibrl_PublishReply_init_zero;
  r.version = req.version;
  if (wire_encode(&rep->bb, ibrl_PublishReply_fields, &r) != IB_OK)
    rpc_reply_fail(rep, GRPC_STATUS_INTERNAL, "Publish: %s", ib_errmsg());
}

void rsrv__h_getifnewer(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep) {
  rsrv *s = ctx;
  if (rsrv__not_ready(s, rep, "GetIfNewer")) return;
  ibrl_GetIfNewerRequest req = ibrl_GetIfNewerRequest_init_zero;
  if (!rsrv__decode_req(&req, ibrl_GetIfNewerRequest_fields, req_bb, "GetIfNewerRequest", rep)) return;
  int could_block = req.wait_ms > 0 && rsrv__block_enter(s), capped = 0;
  pthread_mutex_lock(&s->pmu);
  if (could_block && s->pversion <= req.version) {
    rpc_server_will_wait(); /* under pmu: it only hands the polling turn on */
    uint64_t dl = rsrv__wait_deadline(s, info->deadline, &capped);
    uint64_t want = ib_now_ns() + (uint64_t)req.wait_ms * 1000000ull;
    if (want < dl) dl = want;
    /* The condvar uses CLOCK_REALTIME by default; wait in short slices against the monotonic
     * deadline so a wall-clock jump cannot stretch the wait. */
    while (s->pversion <= req.version && !s->closing) {
      uint64_t now = ib_now_ns();
      if (now >= dl) break;
      uint64_t step = IB_MIN(dl - now, 50000000ull);
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += (long)step;
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      pthread_cond_timedwait(&s->pcv, &s->pmu, &ts);
    }
  }
  ibrl_GetIfNewerReply r = ibrl_GetIfNewerReply_init_zero;
  r.version = s->pversion;
  r.newer = s->pversion > req.version;
  wire_blob_src src = {s->pblob, s->plen};
  if (r.newer) wire_blob_set_src(&r.blob, &src);
  int rc = wire_encode(&rep->bb, ibrl_GetIfNewerReply_fields, &r); /* copies the blob under the lock */
  int closing = s->closing;
  pthread_mutex_unlock(&s->pmu);
  if (could_block) rsrv__block_leave(s);
  if (rc != IB_OK) rpc_reply_fail(rep, GRPC_STATUS_INTERNAL, "GetIfNewer: %s", ib_errmsg());
  else if (closing && !r.newer)
    rpc_reply_fail(rep, GRPC_STATUS_UNAVAILABLE, "GetIfNewer: the server is shutting down HINT: retry later");
}
