/* rsrv.c: the replay shard service (see rsrv.h for the status mapping): its start and stop, the
 * blocking budget, and durability (checkpoints, the tick that heals). The handlers are in
 * rsrv_data.c (Insert, Sample, Read) and rsrv_admin.c (Info, RateLimit, Checkpoint, Params);
 * rsrv_impl.h has what the three share (rsrv__ names).
 *
 * Design. The store, the rate limiter and persistence do the data work (replay/store); the
 * service only translates: protobuf in, store calls, protobuf out. The two messages that carry
 * the items (InsertRequest in, SampleReply out: the whole data volume) go through the hand codec
 * of itemcodec.h, shared with the client; everything else uses nanopb (wire_decode /
 * wire_encode).
 *   Insert   a client stream; each InsertRequest is decoded by rsrv_insert.c (rins_decode; what
 *            follows is what it does) and walked slice by slice (no flattening copy).
 *            Rows sent as ItemColumns (ibrl's client) are copied column by column into the insert
 *            slot's columns, each length checked against n and the dims before its copy and NaN/Inf
 *            checked inside it, then handed to the store as rows of the slot. Rows sent as Items
 *            (Python, older clients) are checked in place (dims, NaN/Inf) and handed to the store as
 *            pointers into the received slices, so the store's copy into its table is the only
 *            copy; items that straddle two slices, or use an unusual legal encoding, are parsed
 *            into the slot too. The insert slot comes from a pool sized to the worker count and is
 *            held only while one message is handled, so memory does not grow with the number of
 *            open streams. Then the limiter (online table only) and one store_insert_prechecked.
 *            Duplicates are given back to the limiter. A stream whose first message carries
 *            max_wait_ms waits in the limiter at most that long in all: a message that would wait
 *            longer is not stored, nor any after it (they are not even decoded), and the final
 *            reply acknowledges the leading messages and counts the rest in unacked_messages. With a write-ahead log store_insert returns
 *            only once the batch is durable, and the reply is sent only after the last batch: the
 *            ack means durable.
 *   Sample   takes a sampling slot (rng + store_batch) from a pool sized to the worker count, so
 *            nothing but the reply is allocated per call; waits in the limiter. A request that asks
 *            for columns gets a reply whose column headers are laid out first and whose rows the
 *            store gathers straight into place (one copy from the table); otherwise the rows are
 *            sampled into the batch and encoded as Items in one exactly sized slice. Either way the
 *            rows carry seq and the episode flags, so learners and exporters get them.
 *   Read     a paged scan of one table in age order (store_read) for tools such as export;
 *            inspection: no rate limiter, not counted as samples.
 *   Params   keeps the latest blob under a mutex + condvar; GetIfNewer long-polls on the
 *            condvar up to min(wait_ms, the call deadline, max_block_ms).
 * Blocking: one worker per two calls in progress takes calls (rpc_server.h). A handler tries the
 * limiter once and, only if that fails, calls rpc_server_will_wait before it waits, so a standby
 * worker goes on taking calls; likewise before a log flush (and a duplicate's barrier), a long
 * poll and a checkpoint. Every wait holds a worker thread, so a counter admits at most threads-1
 * waiters; over that, calls try once and fail RESOURCE_EXHAUSTED rather than starve the server.
 * Shutdown: rlim_shutdown and the params `closing` flag release every waiter first, then the
 * rpc server stops (its handlers all return), then the final checkpoint is written.
 * Durability (rsrv_tick, on the controlling thread; never a request thread, whose deadline a
 * checkpoint would outlast): persist_health says whether only a checkpoint can restore
 * durability; if so a healing checkpoint is tried at once and then with backoff. The state the
 * handlers show (Info, the Insert error) is kept under dmu: the tick's schedule, and the last
 * checkpoint's failure (which is all a checkpoint-only shard has to report). Health stays
 * SERVING throughout (see rsrv.h). An insert whose rows were all or partly duplicates is
 * acknowledged only after persist_barrier: the originals may be rows whose flush failed, in
 * memory but in no durable place, and an actor retries exactly those. */
#include "rsrv.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ib.h"
#include "log.h"
#include "ratelim.h"
#include "rng.h"
#include "rpc_server.h"
#include "rsrv_impl.h"
#include "rsrv_insert.h"
#include "store.h"
#include "wire.h"

void rsrv_config_default(rsrv_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->bind = "127.0.0.1";
  cfg->online_capacity = 1000000;
  cfg->demo_capacity = 100000;
  cfg->durability = PERSIST_CKPT_ONLY;
  cfg->max_message_bytes = WIRE_DEFAULT_MAX_MESSAGE_BYTES;
  cfg->threads = 4;
  cfg->max_sample_batch = 4096;
  cfg->max_block_ms = 10000;
  cfg->seed = 1;
}

/* ---- blocking budget ---- */

int rsrv__block_enter(rsrv *s) {
  pthread_mutex_lock(&s->mu);
  int ok = s->blocked < s->max_blocked;
  if (ok) s->blocked++;
  pthread_mutex_unlock(&s->mu);
  return ok;
}

void rsrv__block_leave(rsrv *s) {
  pthread_mutex_lock(&s->mu);
  s->blocked--;
  pthread_mutex_unlock(&s->mu);
}

uint64_t rsrv__wait_deadline(const rsrv *s, gpr_timespec call_deadline, int *capped) {
  long ms = wire_ms_until(call_deadline);
  *capped = ms > s->cfg.max_block_ms;
  if (*capped) ms = s->cfg.max_block_ms;
  return ib_now_ns() + (uint64_t)ms * 1000000ull;
}

void rsrv__limiter_fail(rpc_reply *rep, int rc, const char *what, int capped, int could_block, long cap_ms) {
  if (rc == IB_EUNAVAIL) {
    rpc_reply_fail(rep, GRPC_STATUS_UNAVAILABLE, "%s: the server is shutting down HINT: retry on another "
                   "connection after the restart", what);
  } else if (!could_block) {
    rpc_reply_fail(rep, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: rate limited and every blocking slot is in use "
                   "HINT: raise --threads or lower the number of concurrent blocked callers", what);
  } else if (capped) {
    rpc_reply_fail(rep, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: rate limited for the server's cap of %ld ms "
                   "HINT: the other side (inserts vs samples) is not keeping up; check Info and "
                   "--samples-per-insert/--error-buffer", what, cap_ms);
  } else {
    rpc_reply_fail(rep, GRPC_STATUS_DEADLINE_EXCEEDED, "%s: rate limited until the call deadline "
                   "HINT: the other side (inserts vs samples) is not keeping up; see Info", what);
  }
}

/* ---- durability (see the top of this file) ---- */

/* Appends src to the string in dst[cap], cutting it at the end (a message may be long). */
static void text_append(char *dst, size_t cap, const char *src) {
  size_t have = strlen(dst), add = strlen(src);
  if (have + 1 >= cap) return;
  if (add > cap - 1 - have) add = cap - 1 - have;
  memcpy(dst + have, src, add);
  dst[have + add] = '\0';
}

static double heal_cap_s(const rsrv *s) {
  return s->cfg.ckpt_period_s > 0 ? IB_MIN(RSRV_HEAL_MAX_S, s->cfg.ckpt_period_s) : RSRV_HEAL_MAX_S;
}

void rsrv__dur_state_get(rsrv *s, dur_state *d) {
  memset(d, 0, sizeof *d);
  if (s->per == NULL) return;
  persist_health_get(s->per, &d->h);
  double now = ib_now_s();
  pthread_mutex_lock(&s->dmu);
  int wal_bad = d->h.needs_checkpoint || d->h.append_failing;
  int ckpt_bad = s->cfg.durability == PERSIST_CKPT_ONLY && s->ckpt_failing;
  d->broken = wal_bad || ckpt_bad;
  if (wal_bad) {
    text_append(d->error, sizeof d->error, d->h.cause);
    if (d->h.needs_checkpoint && s->ckpt_failing && strcmp(d->h.cause, s->ckpt_error) != 0) {
      text_append(d->error, sizeof d->error, "; last recovery attempt: ");
      text_append(d->error, sizeof d->error, s->ckpt_error);
    }
    d->broken_s = d->h.since_ns ? (double)(ib_now_ns() - d->h.since_ns) * 1e-9 : 0;
    d->since_unix_ms = d->h.since_unix_ms;
    d->retries = d->h.failed_checkpoints;
    if (d->h.needs_checkpoint && s->heal_at > 0) d->retry_in_s = IB_MAX(0.0, s->heal_at - now);
  } else if (ckpt_bad) {
    snprintf(d->error, sizeof d->error, "%s", s->ckpt_error);
    d->broken_s = now - s->ckpt_fail_since_s;
    d->since_unix_ms = 0;
    d->retries = s->ckpt_failures;
    if (isfinite(s->next_ckpt)) d->retry_in_s = IB_MAX(0.0, s->next_ckpt - now);
  }
  pthread_mutex_unlock(&s->dmu);
}

/* "2026-01-02T03:04:05Z" for a wall-clock time in ms. */
static void utc_text(char *out, size_t cap, uint64_t unix_ms) {
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void rsrv__insert_io_fail(rsrv *s, rpc_reply *rep, const char *table) {
  dur_state d;
  rsrv__dur_state_get(s, &d);
  char since[32] = "?";
  if (d.since_unix_ms) utc_text(since, sizeof since, d.since_unix_ms);
  const char *why = d.h.cause_errno ? strerror(d.h.cause_errno) : "an I/O error";
  /* gRPC details are bounded (rpc_reply.msg): the cause and the cure first, the path once. */
  if (d.h.needs_checkpoint) {
    rpc_reply_fail(rep, GRPC_STATUS_UNAVAILABLE, "Insert: write-ahead log '%s' is broken since %s (%s): inserts are "
                   "refused until a checkpoint succeeds; the shard retries by itself, backing off to every %.0f s "
                   "(next in %.1f s) HINT: free space in %s, or fix the disk", d.h.log_path, since, why,
                   heal_cap_s(s), d.retry_in_s, s->cfg.ckpt_dir);
  } else if (d.h.append_failing) {
    rpc_reply_fail(rep, GRPC_STATUS_UNAVAILABLE, "Insert: cannot append to write-ahead log '%s' since %s (%s): inserts "
                   "are refused until the disk takes writes again (no checkpoint or restart needed) HINT: free space "
                   "in %s, or fix the disk", d.h.log_path, since, why, s->cfg.ckpt_dir);
  } else {
    rpc_reply_fail(rep, GRPC_STATUS_UNAVAILABLE, "Insert into '%s': %s", table, ib_errmsg());
  }
}

int rsrv__decode_req(void *msg, const pb_msgdesc_t *fields, const grpc_byte_buffer *bb, const char *what,
                     rpc_reply *rep) {
  if (wire_decode(msg, fields, bb, what) == IB_OK) return 1;
  rpc_reply_fail(rep, GRPC_STATUS_INVALID_ARGUMENT, "%s", ib_errmsg());
  return 0;
}

grpc_status_code rsrv__status_of(int rc) {
  switch (rc) {
    case IB_EINVAL:
    case IB_ENONFINITE:
    case IB_ENOTFOUND:
    case IB_EMISMATCH:
    case IB_EPROTO: return GRPC_STATUS_INVALID_ARGUMENT;
    case IB_EFULL: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case IB_EUNAVAIL: return GRPC_STATUS_FAILED_PRECONDITION;
    case IB_ESTATE: return GRPC_STATUS_FAILED_PRECONDITION;
    case IB_ETIMEDOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case IB_EIO: return GRPC_STATUS_UNAVAILABLE;
    default: return GRPC_STATUS_INTERNAL;
  }
}

int rsrv__not_ready(rsrv *s, rpc_reply *rep, const char *what) {
  if (__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE)) return 0;
  rpc_reply_fail(rep, GRPC_STATUS_UNAVAILABLE, "%s: the shard is restoring from %s HINT: retry when the health "
                 "check of \"\" says SERVING", what, s->cfg.ckpt_dir ? s->cfg.ckpt_dir : "(none)");
  return 1;
}

int rsrv_checkpoint(rsrv *s, persist_ckpt_info *info) {
  IB_CHECK(s != NULL);
  if (s->per == NULL)
    return ib_fail(IB_ESTATE, "no checkpoint directory HINT: start ibrl-replay with --ckpt-dir DIR");
  persist_ckpt_info ci;
  pthread_mutex_lock(&s->ckpt_mu);
  int rc = persist_checkpoint(s->per, &ci);
  if (rc == IB_OK) __atomic_add_fetch(&s->checkpoints, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock(&s->dmu);
  if (rc != IB_OK) {
    if (!s->ckpt_failing) s->ckpt_fail_since_s = ib_now_s();
    s->ckpt_failing = 1;
    s->ckpt_failures++;
    snprintf(s->ckpt_error, sizeof s->ckpt_error, "%s", ib_errmsg());
  } else {
    s->ckpt_failing = 0;
    s->ckpt_failures = 0;
  }
  pthread_mutex_unlock(&s->dmu);
  pthread_mutex_unlock(&s->ckpt_mu);
  if (rc != IB_OK) return rc;
  /* "store held": how long inserts and samples waited for the cut (the rest runs in a child);
   * "huge pages": store_huge_collapse after the child, with the store not held (only for tables
   * large enough to ask for huge pages, and on a kernel that can collapse them). */
  char huge[64] = "";
  if (ci.huge_bytes > 0)
    snprintf(huge, sizeof huge, ", huge pages mended in %.1f ms", ci.huge_seconds * 1e3);
  log_info("checkpoint %llu: %llu items, %.1f MB in %.3f s to %s (store held %.1f ms%s%s)",
           (unsigned long long)ci.epoch, (unsigned long long)ci.items, (double)ci.bytes / 1e6, ci.seconds,
           s->cfg.ckpt_dir, ci.blocked_seconds * 1e3, ci.background ? "" : ", written in the foreground", huge);
  if (info != NULL) *info = ci;
  return IB_OK;
}

/* One healing attempt (dmu not held): a checkpoint, then the schedule and one log line. */
static void heal_attempt(rsrv *s, const persist_health *h) {
  persist_ckpt_info ci;
  double t0 = ib_now_s();
  int rc = rsrv_checkpoint(s, &ci);
  persist_health after;
  persist_health_get(s->per, &after);
  double now = ib_now_s(), took = now - t0;
  pthread_mutex_lock(&s->dmu);
  if (rc == IB_OK && !after.needs_checkpoint) {
    log_info("durability is back: checkpoint %llu is written and the write-ahead log is fresh, after %.1f s and "
             "%llu failed attempt(s); inserts are accepted again", (unsigned long long)ci.epoch,
             h->since_ns ? (double)(ib_now_ns() - h->since_ns) * 1e-9 : 0.0, (unsigned long long)h->failed_checkpoints);
    s->heal_at = 0;
    s->heal_backoff_s = 0;
    s->trouble_logged = 0;
    if (s->cfg.ckpt_period_s > 0) s->next_ckpt = now + s->cfg.ckpt_period_s;
  } else {
    /* A large store's attempt rewrites it all: keep the failing disk's share of time bounded. */
    double duty_floor = took * (1.0 / RSRV_HEAL_DUTY - 1.0);
    double wait = IB_MIN(IB_MAX(s->heal_backoff_s, duty_floor), heal_cap_s(s));
    s->heal_at = now + wait;
    s->heal_backoff_s = IB_MIN(2 * wait, heal_cap_s(s));
    if (rc == IB_OK)
      log_warn("checkpoint to restore durability succeeded but the new log broke at once: %s; next attempt in "
               "%.0f s", after.cause, wait);
    else
      log_warn("checkpoint to restore durability failed (attempt %llu, %.1f s): %s; inserts stay refused, next "
               "attempt in %.0f s", (unsigned long long)after.failed_checkpoints, took, ib_errmsg(), wait);
  }
  pthread_mutex_unlock(&s->dmu);
}

/* Saves the counters that the log does not hold (persist_counts_save, which writes only when they
 * changed) once a second, so a restart after a crash does not set Info's samples and the
 * limiter's count back to the last checkpoint. */
static void counts_tick(rsrv *s, double now) {
  if (now < s->next_counts) return;
  s->next_counts = now + RSRV_COUNTS_PERIOD_S;
  if (persist_counts_save(s->per) != IB_OK) {
    if (!s->counts_failing)
      log_warn("saving the sample counters failed (retried each second; a crash would set them back to the last "
               "checkpoint's, no row is at risk): %s", ib_errmsg());
    s->counts_failing = 1;
    return;
  }
  if (s->counts_failing) log_info("saving the sample counters works again");
  s->counts_failing = 0;
}

void rsrv_tick(rsrv *s) {
  IB_CHECK(s != NULL);
  if (s->per == NULL) return;
  counts_tick(s, ib_now_s());
  persist_health h;
  persist_health_get(s->per, &h);
  double now = ib_now_s();
  int trouble = h.needs_checkpoint || h.append_failing;
  pthread_mutex_lock(&s->dmu);
  if (trouble && !s->trouble_logged) {
    log_error("durability lost: %s; %s HINT: free space in %s, or fix the disk", h.cause,
              h.needs_checkpoint ? "the write-ahead log is broken: inserts are refused until a checkpoint succeeds, "
                                   "which this shard retries on its own"
                                 : "log appends fail: inserts are refused until the disk takes writes again",
              s->cfg.ckpt_dir);
    s->trouble_logged = 1;
  } else if (!trouble && s->trouble_logged) { /* cleared without this tick's checkpoint */
    log_info("durability is back: %s; inserts are accepted again",
             s->heal_at == 0 ? "log appends work again" : "a requested checkpoint succeeded");
    s->trouble_logged = 0;
  }
  int heal = h.needs_checkpoint;
  if (heal && s->heal_at == 0) { /* the first attempt at once: the trouble may have been brief */
    s->heal_at = now;
    s->heal_backoff_s = IB_MIN(RSRV_HEAL_MIN_S, heal_cap_s(s));
  }
  if (!heal) s->heal_at = 0;
  int heal_due = heal && now >= s->heal_at;
  int periodic_due = !heal && now >= s->next_ckpt;
  int was_failing = s->ckpt_failing;
  pthread_mutex_unlock(&s->dmu);
  if (heal_due) {
    heal_attempt(s, &h);
    return;
  }
  if (!periodic_due) return;
  int rc = rsrv_checkpoint(s, NULL);
  pthread_mutex_lock(&s->dmu);
  s->next_ckpt = ib_now_s() + s->cfg.ckpt_period_s;
  if (rc != IB_OK)
    log_error("periodic checkpoint failed (%llu in a row): %s; retrying at its period, in %g s%s", (unsigned long long)
              s->ckpt_failures, ib_errmsg(), s->cfg.ckpt_period_s, s->cfg.durability == PERSIST_WAL ?
              " (the write-ahead log keeps acknowledged rows durable meanwhile)" :
              " (rows inserted since the last good checkpoint are not durable until one succeeds)");
  else if (was_failing)
    log_info("periodic checkpoints work again");
  pthread_mutex_unlock(&s->dmu);
}

/* ---- lifecycle ---- */

static int is_loopback(const char *host) {
  return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0 ||
         strncmp(host, "127.", 4) == 0;
}

static int check_config(const rsrv_config *c, int insecure) {
  if (c->obs_dim <= 0 || c->obs_dim > (int)IB_ARRAY_LEN(((ibrl_Item *)0)->obs))
    return ib_fail(IB_EINVAL, "obs-dim %d out of range HINT: use 1..%d (proto/ibrl.options Item.obs)", c->obs_dim,
                   (int)IB_ARRAY_LEN(((ibrl_Item *)0)->obs));
  if (c->act_dim <= 0 || c->act_dim > (int)IB_ARRAY_LEN(((ibrl_Item *)0)->action))
    return ib_fail(IB_EINVAL, "act-dim %d out of range HINT: use 1..%d (proto/ibrl.options Item.action)", c->act_dim,
                   (int)IB_ARRAY_LEN(((ibrl_Item *)0)->action));
  if (c->online_capacity == 0 || c->demo_capacity == 0)
    return ib_fail(IB_EINVAL, "capacities must be positive (online %llu, demo %llu)",
                   (unsigned long long)c->online_capacity, (unsigned long long)c->demo_capacity);
  if (!(c->samples_per_insert >= 0) || !isfinite(c->samples_per_insert))
    return ib_fail(IB_EINVAL, "samples-per-insert %g must be finite and >= 0 HINT: 0 disables the ratio",
                   c->samples_per_insert);
  if (!(c->error_buffer >= 0))
    return ib_fail(IB_EINVAL, "error-buffer %g must be >= 0 HINT: 0 picks max(1, spi) * 1000", c->error_buffer);
  if (c->durability == PERSIST_WAL && c->ckpt_dir == NULL)
    return ib_fail(IB_EINVAL, "--durability wal needs --ckpt-dir HINT: give a directory for the log and checkpoints");
  if (c->ckpt_period_s < 0) return ib_fail(IB_EINVAL, "ckpt-period %g must be >= 0", c->ckpt_period_s);
  if (c->threads < 1 || c->threads > 64) return ib_fail(IB_EINVAL, "threads %d out of range HINT: 1..64", c->threads);
  if (c->pollers < 0 || c->pollers > c->threads)
    return ib_fail(IB_EINVAL, "--pollers %d is more than --threads %d HINT: at most every worker thread takes "
                   "calls; lower --pollers or raise --threads", c->pollers, c->threads);
  if (c->max_message_bytes < 4096)
    return ib_fail(IB_EINVAL, "max message size %ld bytes too small HINT: --max-message-mb >= 1", c->max_message_bytes);
  if (c->max_sample_batch == 0) return ib_fail(IB_EINVAL, "max sample batch must be positive");
  if ((c->tls_cert == NULL) != (c->tls_key == NULL))
    return ib_fail(IB_EINVAL, "--tls-cert and --tls-key go together HINT: give both PEM files or neither");
  int has_token = c->token != NULL && c->token[0] != '\0';
  if (!is_loopback(c->bind) && !has_token && !insecure)
    return ib_fail(IB_EINVAL, "refusing to listen on non-loopback address '%s' without a token HINT: set "
                   "--token (or IBRL_REPLAY_TOKEN), or pass --insecure on a trusted network", c->bind);
  return IB_OK;
}

int rsrv_port(const rsrv *s) { return rpc_server_port(s->rpc); }

static void rsrv_free(rsrv *s) {
  rpc_server_destroy(s->rpc);
  persist_close(s->per);
  rlim_destroy(s->lim);
  store_destroy(s->st);
  for (int i = 0; i < s->nslots; i++) {
    store_batch_free(&s->slots_all[i].batch);
    rins_slot_free(&s->islots_all[i].dec);
  }
  free(s->slots_all);
  free(s->islots_all);
  free(s->pblob);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->pmu);
  pthread_mutex_destroy(&s->ckpt_mu);
  pthread_mutex_destroy(&s->dmu);
  pthread_cond_destroy(&s->pcv);
  free(s);
}

int rsrv_start(rsrv **out, const rsrv_config *cfg, int insecure) {
  IB_CHECK(out != NULL && cfg != NULL);
  *out = NULL;
  int rc = check_config(cfg, insecure);
  if (rc != IB_OK) return rc;
  rsrv *s = ib_xcalloc(1, sizeof *s);
  s->cfg = *cfg;
  snprintf(s->durability, sizeof s->durability, "%s", cfg->durability == PERSIST_WAL ? "wal" : "ckpt");
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->pmu, NULL);
  pthread_mutex_init(&s->ckpt_mu, NULL);
  pthread_mutex_init(&s->dmu, NULL);
  pthread_cond_init(&s->pcv, NULL);
  s->next_ckpt = cfg->ckpt_period_s > 0 && cfg->ckpt_dir != NULL ? ib_now_s() + cfg->ckpt_period_s : INFINITY;

  store_spec specs[2];
  store_specs_default(specs, cfg->obs_dim, cfg->act_dim, cfg->demo_capacity, cfg->online_capacity);
  store_config sc = {0, RSRV_MAX_INSERT_ITEMS, 0};
  rc = store_create(&s->st, specs, 2, &sc);
  if (rc != IB_OK) goto fail;
  s->t_demo = store_table_of_kind(s->st, STORE_DEMO);
  s->t_online = store_table_of_kind(s->st, STORE_ONLINE);

  rlim_config lc;
  lc.samples_per_insert = cfg->samples_per_insert > 0 ? cfg->samples_per_insert : 1.0;
  lc.error_buffer = cfg->samples_per_insert > 0
                        ? (cfg->error_buffer > 0 ? cfg->error_buffer : IB_MAX(1.0, cfg->samples_per_insert) * 1000.0)
                        : INFINITY; /* no ratio: only the min-size gate */
  lc.min_size_to_sample = cfg->min_size;
  lc.paused = false;
  rc = rlim_create(&s->lim, &lc);
  if (rc != IB_OK) goto fail;

  s->nslots = cfg->threads;
  s->slots_all = ib_xcalloc((size_t)s->nslots, sizeof *s->slots_all);
  s->islots_all = ib_xcalloc((size_t)s->nslots, sizeof *s->islots_all);
  for (int i = 0; i < s->nslots; i++) {
    insert_slot *is = &s->islots_all[i];
    rins_slot_init(&is->dec, cfg->obs_dim, cfg->act_dim, RSRV_MAX_INSERT_ITEMS);
    is->next = s->free_islots;
    s->free_islots = is;
  }
  for (int i = 0; i < s->nslots; i++) {
    sample_slot *sl = &s->slots_all[i];
    rng_seed(&sl->r, cfg->seed, "replay", (int64_t)cfg->shard_index * 1024 + i, "sample");
    store_batch_init(&sl->batch, cfg->max_sample_batch, cfg->obs_dim, cfg->act_dim);
    sl->next = s->free_slots;
    s->free_slots = sl;
  }
  s->max_blocked = cfg->threads - 1;

  rpc_method methods[] = {
      {WIRE_PATH_INSERT, RPC_CLIENT_STREAM, NULL, rsrv__h_insert, s},
      {WIRE_PATH_SAMPLE, RPC_UNARY, rsrv__h_sample, NULL, s},
      {WIRE_PATH_INFO, RPC_UNARY, rsrv__h_info, NULL, s},
      {WIRE_PATH_CHECKPOINT, RPC_UNARY, rsrv__h_checkpoint, NULL, s},
      {WIRE_PATH_RATELIMIT, RPC_UNARY, rsrv__h_ratelimit, NULL, s},
      {WIRE_PATH_READ, RPC_UNARY, rsrv__h_read, NULL, s},
      {WIRE_PATH_PUBLISH, RPC_UNARY, rsrv__h_publish, NULL, s},
      {WIRE_PATH_GETIFNEWER, RPC_UNARY, rsrv__h_getifnewer, NULL, s},
  };
  rpc_server_opts ro = {cfg->bind, cfg->port, cfg->threads, cfg->max_message_bytes, cfg->token, cfg->tls_cert,
                        cfg->tls_key, cfg->pollers};
  rc = rpc_server_create(&s->rpc, &ro, methods, IB_ARRAY_LEN(methods));
  if (rc != IB_OK) goto fail;
  /* Listening already, so probes can tell "alive but restoring" (liveness SERVING, readiness
   * "" NOT_SERVING, docs/deploy.md 2.4) while a large checkpoint loads; every other call gets
   * UNAVAILABLE until `ready`. */
  rpc_server_health_set(s->rpc, "liveness", 1);
  rpc_server_health_set(s->rpc, "ibrl.Replay", 2);
  rpc_server_health_set(s->rpc, "ibrl.Params", 2);
  if (cfg->ckpt_dir != NULL) {
    persist_restore_info ri;
    log_info("restoring from %s ...", cfg->ckpt_dir);
    persist_salvage_info sv;
    rc = cfg->salvage ? persist_open_salvage(&s->per, s->st, cfg->ckpt_dir, cfg->durability, &ri, &sv)
                      : persist_open(&s->per, s->st, cfg->ckpt_dir, cfg->durability, &ri);
    if (rc != IB_OK) {
      /* Damaged or missing data (not other settings, which --salvage refuses too): name the way out. */
      if (!cfg->salvage && (rc == IB_EPROTO || rc == IB_ECHECKSUM || rc == IB_EMISSING)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ib_errmsg());
        ib_fail(rc, "%s; or restart with --salvage to keep every intact row (the files are kept as they "
                    "are in %s/damaged-<time>)", msg, cfg->ckpt_dir);
      }
      goto fail;
    }
    if (cfg->salvage && sv.salvaged) {
      int k = snprintf(s->salvage, sizeof s->salvage,
                       "%llu rows kept (checkpoint: %s, %llu rows; logs: %d read, %d damaged, %llu rows, %llu bytes "
                       "lost); the files as they were are in %s",
                       (unsigned long long)(sv.ckpt_items + sv.log_items),
                       sv.ckpt_loaded ? "intact" : sv.ckpt_damaged ? "damaged, lost" : "none",
                       (unsigned long long)sv.ckpt_items, sv.logs_read, sv.logs_damaged,
                       (unsigned long long)sv.log_items, (unsigned long long)sv.log_bytes_lost, sv.aside);
      log_warn("salvaged %s: %s; rows acknowledged before may be missing", cfg->ckpt_dir, s->salvage);
      if (k >= (int)sizeof s->salvage) /* Info's copy cut a very long path */
        log_warn("salvaged %s: the files as they were are in %s", cfg->ckpt_dir, sv.aside);
    }
    if (ri.ckpt_found || ri.wal_found)
      log_info("restored from %s: checkpoint %s (epoch %llu, %llu items), log %s (%llu records, %llu items, "
               "%llu torn bytes dropped)", cfg->ckpt_dir, ri.ckpt_found ? "yes" : "no",
               (unsigned long long)ri.ckpt_epoch, (unsigned long long)ri.ckpt_items,
               ri.wal_found ? (ri.wal_stale ? "stale" : "yes") : "no", (unsigned long long)ri.wal_records,
               (unsigned long long)ri.wal_items, (unsigned long long)ri.wal_torn_bytes);
    if (ri.wal_dropped_logs > 0)
      log_warn("restore dropped %llu later log(s), %llu bytes of records, after a log that lost its tail in a "
               "machine crash (none of those records was acknowledged; their actors resend them)",
               (unsigned long long)ri.wal_dropped_logs, (unsigned long long)ri.wal_dropped_bytes);
    if (ri.recovery_ckpt && !ri.recovery_ckpt_failed)
      log_info("restore ended with checkpoint %llu in %.3f s: the rows replayed from the log are on disk from memory "
               "(the page cache may have held log bytes the disk never got), the old logs are deleted",
               (unsigned long long)ri.recovery_ckpt_epoch, ri.recovery_ckpt_seconds);
    else if (ri.recovery_ckpt_failed)
      log_error("the checkpoint after the restore failed after %.3f s: the shard serves samples but refuses inserts "
                "until a checkpoint succeeds, which it retries on its own HINT: free space in %s, or fix the disk",
                ri.recovery_ckpt_seconds, cfg->ckpt_dir);
    s->restore_missing_acked = ri.acked_missing; /* persist logged the details; Info shows the count */
    /* Re-seed the limiter from the restored counters (checkpoints do not hold it). */
    store_table_info to, td;
    store_table_info_get(s->st, s->t_online, &to);
    store_table_info_get(s->st, s->t_demo, &td);
    uint64_t smp = to.total_samples + td.total_samples;
    uint64_t added = rlim_counts_restore(s->lim, to.total_inserts, smp);
    if (added > 0)
      log_info("rate limiter: the restored counts (%llu inserts, %llu samples) put its cursor past the band: samples "
               "are saved by checkpoints and about once a second to store.counts, so those drawn after the last "
               "save before a crash (this restart's or an earlier one's) are in no file; counted %llu more, which "
               "puts the cursor in the band's middle, so inserts do not wait for the learner to sample all that "
               "again",
               (unsigned long long)to.total_inserts, (unsigned long long)smp, (unsigned long long)added);
  }

  __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
  rpc_server_health_set(s->rpc, "", 1);
  rpc_server_health_set(s->rpc, "ibrl.Replay", 1);
  rpc_server_health_set(s->rpc, "ibrl.Params", 1);
  *out = s;
  return IB_OK;
fail:
  {
    /* Keep the failing call's message across the cleanup. */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ib_errmsg());
    rsrv_free(s);
    return ib_fail(rc, "%s", msg);
  }
}

int rsrv_stop(rsrv *s) {
  if (s == NULL) return IB_OK;
  rpc_server_health_set(s->rpc, "", 2);
  rpc_server_health_set(s->rpc, "ibrl.Replay", 2);
  rpc_server_health_set(s->rpc, "ibrl.Params", 2);
  rlim_shutdown(s->lim); /* releases blocked inserts and samples */
  pthread_mutex_lock(&s->pmu);
  s->closing = 1; /* releases GetIfNewer long polls */
  pthread_cond_broadcast(&s->pcv);
  pthread_mutex_unlock(&s->pmu);
  rpc_server_stop(s->rpc);
  int rc = IB_OK;
  if (s->per != NULL) {
    rc = rsrv_checkpoint(s, NULL);
    if (rc != IB_OK) log_error("final checkpoint failed: %s", ib_errmsg());
  }
  rsrv_free(s);
  return rc;
}
