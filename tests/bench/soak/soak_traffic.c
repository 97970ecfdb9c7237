/* soak_traffic.c: the client threads of `ibrl-bench soak`.
 *
 * Design. Against the shards run, for --seconds, through one shared rc_client that holds every
 * shard's target:
 *   writers   K threads, each streaming batches through an rc_writer for actor ids from a fixed
 *             pool (thread k owns the ids i with i % K == k; all offset by cfg->actor_base, which
 *             soak_fresh.c moves so that each of its windows has new actors); every --reopen
 *             batches the writer is closed and the next id of the thread's set opened, continuing
 *             that id's seqs, so no item is a duplicate by accident and the shard's actor registry
 *             stays bounded. Actor a's writer goes to shard a % N (rc_client_shard_of);
 *   samplers  1-2 threads alternating rc_sample and a freshly opened rc_sampler (every
 *             SOAK_SAMPLE_PHASE batches), mixed demo/online batches drawn from all shards in
 *             proportion to their sizes; demo rows are preloaded into every shard first (one demo
 *             actor id per shard);
 *   misc      one thread in rounds of --info-every seconds, one Info each: a fresh rc_client (open,
 *             Info, health, close) every --churn-every seconds, and every --bad-every seconds one
 *             malformed Insert (a NaN row, rows one obs wider than the shard's, an unknown table; as
 *             columns or items; with --token also a valid Insert with a wrong token), at the first
 *             round due; each is sent raw with rc__unary, which must
 *             come back INVALID_ARGUMENT naming the fault (UNAUTHENTICATED for the token), while
 *             the Info right after it still succeeds. Info, fresh clients and bad requests go to
 *             the shards in turn.
 * Rates can be capped (--insert-rate, --sample-rate) so a long run does not take both cores of a
 * shared machine or write the disk flat out through the log; a thread that fell behind does not
 * burst to catch up.
 * Restarts are never told to the clients: they ride through with rc_client's reconnect and
 * rc_writer's resend. A call that fails while its shard's outage lasts (from the kill until the
 * main client's first Info answered after the restart, plus --down-grace; soak_watch.c sets the
 * times) is counted as "failed while down", not as a failure. A sample spans all shards: rc_sample
 * skips a down shard, so the samples that failed while any shard was down are counted apart, and
 * those that came back with a shard skipped are counted too. With --restart-mode all every shard is
 * down at once, so every sample fails for the outage ("no shard reachable"): counted the same way.
 * No acknowledged loss, the writers' side: each writer session starts at its actor's first
 * unacknowledged seq (seqs are contiguous from 0 per actor), so "actor a has seqs [0, acked[a])
 * acknowledged" (sh->acked) is exact, and a writer never resends an acknowledged row. Each writer
 * thread also marks when its current rc_writer call began (sh->call_ns, 0 once the call returned and
 * its acknowledgements are in sh->acked), so a restart can wait for acknowledgements that were on
 * their way when the shard died (soak_watch.c). Every other session is pipelined
 * (rc_writer_pipeline): its writer keeps the previous stream half-closed while it sends on the next
 * one, and reads that stream's reply in a later call: between calls the shard may have acknowledged
 * rows that acked[] does not count yet. sh->maybe counts them too (the
 * writer's `awaiting` rows): a crash tear keeps every row below maybe[] (soak_tear.c). */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ib.h"
#include "soak_traffic.h"
#include "wire.h"

#define SOAK_SAMPLE_PHASE 100    /* sample calls before a sampler thread switches API */
#define SOAK_DEMO_ACTOR 1000000u /* the demo preloader's actor id (outside the writers' pool) */
#define SOAK_BAD_ACTOR 2000000u  /* the bad requests' actor id */
#define SOAK_MAX_ERRMSG 10       /* failures printed in full; the rest are only counted */

/* ---- failure accounting ---- */

int soak_traffic_in_outage(soak_shared *sh, int shard, int64_t t0_ns) {
  int64_t now = (int64_t)ib_now_ns();
  for (int s = 0; s < sh->cfg->shards; s++) {
    if (shard != SOAK_ANY_SHARD && s != shard) continue;
    int64_t from = atomic_load(&sh->down_from_ns[s]), to = atomic_load(&sh->down_to_ns[s]);
    if (from > 0 && now >= from && t0_ns <= to) return 1;
  }
  return 0;
}

void soak_traffic_error(soak_shared *sh, int shard, const char *who, int rc, int64_t t0_ns) {
  if (soak_traffic_in_outage(sh, shard, t0_ns)) {
    atomic_fetch_add(shard == SOAK_ANY_SHARD ? &sh->samples_down : &sh->errors_down, 1);
    return;
  }
  uint64_t k = atomic_fetch_add(&sh->errors, 1);
  if (k < SOAK_MAX_ERRMSG)
    fprintf(stderr, "soak: %s failed (%d): %s%s\n", who, rc, ib_errmsg(),
            k + 1 == SOAK_MAX_ERRMSG ? " (further failures are only counted)" : "");
}

/* ---- writers ---- */

/* Sleeps so that `rows` more rows keep a thread at `rate` rows/s (0 = no cap). A thread that fell
 * behind (the shard stalled) does not burst to catch up: bursts of concurrent messages would raise
 * the heap's high-water mark at random times and look like growth. */
static void soak_pace(double *t_next, double rows, double rate) {
  if (rate <= 0) return;
  double now = ib_now_s();
  if (*t_next < now) *t_next = now;
  *t_next += rows / rate;
  double wait = *t_next - now;
  if (wait > 0) {
    struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
    nanosleep(&ts, NULL);
  }
}

/* Finite rows that vary with the seqs; the values do not matter, only that they are valid. */
static void soak_fill(rc_batch *b, int n, int proposer, uint64_t salt) {
  b->n = n;
  for (int i = 0; i < n; i++) {
    float v = (float)((salt + (uint64_t)i) % 1000) * 1e-3f;
    for (int j = 0; j < b->obs_dim; j++) {
      b->obs[(size_t)i * b->obs_dim + j] = v + (float)j;
      b->next_obs[(size_t)i * b->obs_dim + j] = v - (float)j;
    }
    for (int j = 0; j < b->act_dim; j++) b->action[(size_t)i * b->act_dim + j] = v - 0.5f;
    b->reward[i] = v;
    b->discount[i] = 0.99f;
    b->proposer[i] = (uint8_t)proposer;
    b->episode_end[i] = (uint8_t)((salt + (uint64_t)i) % 50 == 49);
    b->episode_success[i] = 0;
    b->weight_version[i] = salt / 1000;
  }
}

/* One writer session: open actor `id` at *seq, write up to cfg->reopen batches, flush, close. The
 * session ends at its first failure, so what the shard acknowledged is the prefix [first seq,
 * first seq + acked) (a flush acknowledges every pending row at once, in order); the next session
 * of this actor starts at the first unacknowledged seq (rows of it that the shard did store come
 * back as duplicates), so the actor's seqs stay contiguous and sh->acked[id] exact. Returns 0, or
 * -1 when the traffic should stop. */
static int soak_writer_session(soak_shared *sh, int k, rc_batch *b, uint32_t id, uint64_t *seq, double *t_next,
                               int pipelined) {
  const soak_cfg *c = sh->cfg;
  int shard = rc_client_shard_of(sh->c, id);
  rc_writer *w = NULL;
  int rc = rc_writer_open(&w, sh->c, "online", id, *seq, 0);
  if (rc == IB_OK && pipelined) rc = rc_writer_pipeline(w, 1);
  if (rc == IB_OK && c->max_wait_ms >= 0) rc = rc_writer_max_wait(w, c->max_wait_ms);
  if (rc != IB_OK) {
    soak_traffic_error(sh, shard, "rc_writer_open", rc, (int64_t)ib_now_ns());
    rc_writer_close(w);
    return -1;
  }
  uint64_t acked = 0;
  rc_writer_stats st;
  for (int i = 0; i < c->reopen && !atomic_load(&sh->stop); i++) {
    soak_fill(b, c->batch, i % 2 ? RC_PROPOSER_RL : RC_PROPOSER_IL, *seq + (uint64_t)i * (uint64_t)c->batch);
    int64_t t0 = (int64_t)ib_now_ns();
    atomic_store(&sh->call_ns[k], t0);
    rc = rc_writer_write(w, b);
    rc_writer_stats_get(w, &st);
    atomic_fetch_add(&sh->rows_written, st.acked - acked);
    atomic_store(&sh->acked[id - c->actor_base], *seq + st.acked);
    atomic_store(&sh->maybe[id - c->actor_base], *seq + st.acked + st.awaiting);
    atomic_store(&sh->call_ns[k], 0);
    acked = st.acked;
    if (rc != IB_OK) {
      soak_traffic_error(sh, shard, "rc_writer_write", rc, t0);
      break;
    }
    soak_pace(t_next, c->batch, c->insert_rate / c->writers);
  }
  if (rc == IB_OK) {
    int64_t t0 = (int64_t)ib_now_ns();
    atomic_store(&sh->call_ns[k], t0);
    rc = rc_writer_flush(w, -1);
    if (rc != IB_OK) soak_traffic_error(sh, shard, "rc_writer_flush", rc, t0);
  }
  rc_writer_stats_get(w, &st);
  atomic_fetch_add(&sh->rows_written, st.acked - acked);
  atomic_fetch_add(&sh->partial_acks, st.partial);
  atomic_fetch_add(&sh->dup_acks, st.duplicates);
  *seq += st.acked;
  atomic_store(&sh->acked[id - c->actor_base], *seq);
  atomic_store(&sh->maybe[id - c->actor_base], *seq + st.awaiting);
  atomic_store(&sh->call_ns[k], 0);
  /* After a failure the close flushes (and may fail) again: that failure was counted above. Whatever
   * it acknowledges then is not counted: the next session of this actor resends it (a duplicate). */
  int crc = rc_writer_close(w);
  if (crc != IB_OK && rc == IB_OK) soak_traffic_error(sh, shard, "rc_writer_close", crc, (int64_t)ib_now_ns());
  atomic_fetch_add(&sh->reopens, 1);
  return 0;
}

static void *soak_writer_main(void *arg) {
  soak_traffic_job *j = arg;
  soak_shared *sh = j->sh;
  const soak_cfg *c = sh->cfg;
  int mine = 0;
  for (int a = j->k; a < c->actors; a += c->writers) mine++;
  uint64_t *seq = ib_xcalloc((size_t)mine, sizeof *seq);
  rc_batch b;
  rc_batch_init(&b, c->batch, c->obs_dim, c->act_dim);
  double t_next = 0;
  for (int s = 0; !atomic_load(&sh->stop); s++) {
    int slot = s % mine;
    uint32_t id = c->actor_base + (uint32_t)(j->k + slot * c->writers);
    /* Every other round of its actors a writer thread runs them pipelined (two streams in flight). */
    if (soak_writer_session(sh, j->k, &b, id, &seq[slot], &t_next, (s / mine) % 2) != 0) break;
  }
  rc_batch_free(&b);
  free(seq);
  return NULL;
}

/* ---- samplers ---- */

/* SOAK_SAMPLE_PHASE samples, with rc_sample (api 0) or a fresh rc_sampler (api 1). */
static void soak_sample_phase(soak_shared *sh, rc_batch *b, int api, double *t_next) {
  const soak_cfg *c = sh->cfg;
  rc_sampler *smp = NULL;
  if (api == 1) {
    int rc = rc_sampler_open(&smp, sh->c, c->batch, c->demo_fraction);
    if (rc != IB_OK) {
      soak_traffic_error(sh, SOAK_ANY_SHARD, "rc_sampler_open", rc, (int64_t)ib_now_ns());
      return;
    }
  }
  for (int i = 0; i < SOAK_SAMPLE_PHASE && !atomic_load(&sh->samplers_stop); i++) {
    int64_t t0 = (int64_t)ib_now_ns();
    int rc = api == 1 ? rc_sampler_next(smp, b) : rc_sample(sh->c, b, c->batch, c->demo_fraction);
    if (rc != IB_OK) {
      soak_traffic_error(sh, SOAK_ANY_SHARD, api == 1 ? "rc_sampler_next" : "rc_sample", rc, t0);
      usleep(100000); /* a shard that is down fails every call at once: do not spin */
      break;
    }
    atomic_fetch_add(&sh->rows_sampled, (uint64_t)b->n);
    if (b->shards_skipped != 0) atomic_fetch_add(&sh->samples_skipped, 1);
    soak_pace(t_next, c->batch, c->sample_rate / c->samplers);
  }
  rc_sampler_close(smp);
}

static void *soak_sampler_main(void *arg) {
  soak_traffic_job *j = arg;
  soak_shared *sh = j->sh;
  rc_batch b;
  rc_batch_init(&b, sh->cfg->batch, sh->cfg->obs_dim, sh->cfg->act_dim);
  double t_next = 0;
  for (int phase = j->k; !atomic_load(&sh->samplers_stop); phase++) soak_sample_phase(sh, &b, phase % 2, &t_next);
  rc_batch_free(&b);
  return NULL;
}

/* ---- demo preload ---- */

/* The demo preloader's actor id for `shard`: SOAK_DEMO_ACTOR rounded down to a multiple of the
 * shard count, plus the shard (writers go to actor_id % shards). */
uint32_t soak_traffic_demo_actor(int shards, int shard) {
  return SOAK_DEMO_ACTOR - SOAK_DEMO_ACTOR % (uint32_t)shards + (uint32_t)shard;
}

/* Preloads the demo table of `shard` (before the traffic starts). */
static int soak_preload_demos(soak_shared *sh, int shard) {
  const soak_cfg *c = sh->cfg;
  if (c->demo_rows == 0) return IB_OK;
  rc_writer *w = NULL;
  uint32_t id = soak_traffic_demo_actor(c->shards, shard);
  IB_CHECK(rc_client_shard_of(sh->c, id) == shard);
  int rc = rc_writer_open(&w, sh->c, "demo", id, 0, 0);
  if (rc != IB_OK) return rc;
  rc_batch b;
  rc_batch_init(&b, c->batch, c->obs_dim, c->act_dim);
  for (long done = 0; done < c->demo_rows && rc == IB_OK;) {
    int n = (int)(c->demo_rows - done < c->batch ? c->demo_rows - done : c->batch);
    soak_fill(&b, n, RC_PROPOSER_DEMO, (uint64_t)done);
    rc = rc_writer_write(w, &b);
    done += n;
  }
  int crc = rc_writer_close(w);
  rc_batch_free(&b);
  return rc != IB_OK ? rc : crc;
}

/* ---- the misc thread: bad requests, churn, Info ---- */

typedef struct soak_bad {
  rc_batch ok;   /* 4 valid rows; one is made NaN for the NaN request */
  rc_batch wide; /* 4 rows one obs wider than the shard's */
  rc_client *wrong; /* owned: a client with a wrong token (only with --token), else NULL */
  uint64_t seq;
} soak_bad;

void soak_traffic_shared_init(soak_shared *sh, const soak_cfg *c, const char *target) {
  memset(sh, 0, sizeof *sh);
  sh->cfg = c;
  sh->target = target;
  sh->acked = ib_xcalloc((size_t)c->actors, sizeof *sh->acked);
  sh->maybe = ib_xcalloc((size_t)c->actors, sizeof *sh->maybe);
  for (int a = 0; a < c->actors; a++) atomic_init(&sh->acked[a], 0), atomic_init(&sh->maybe[a], 0);
}

void soak_traffic_shared_free(soak_shared *sh) {
  free(sh->acked);
  free(sh->maybe);
  sh->acked = sh->maybe = NULL;
}

void soak_traffic_opts(rc_opts *o, const soak_shared *sh, uint64_t seed) {
  memset(o, 0, sizeof *o);
  o->shards = sh->target;
  o->deadline_ms = sh->cfg->deadline_ms;
  o->seed = seed;
  o->token = sh->cfg->token;
  o->tls_roots = sh->cfg->tls_cert;
  o->reconnect_ms = sh->cfg->reconnect_ms;
}

/* Bad request outcomes. */
enum { SOAK_BAD_WRONG = 0, SOAK_BAD_REFUSED = 1, SOAK_BAD_DOWN = 2 };
/* Sends bad request number k and checks the refusal: INVALID_ARGUMENT (IB_EINVAL) with a message
 * naming the fault, or UNAUTHENTICATED for the wrong token. Kinds rotate NaN / wrong dims / unknown
 * table (/ a valid Insert with a wrong token, with --token); the encoding alternates columns
 * (ibrl's client) and items (other clients) every round of kinds, and the shard changes every two
 * rounds, so each shard gets every kind in both encodings. Returns SOAK_BAD_REFUSED if refused as
 * it should be, SOAK_BAD_DOWN if the call failed during an outage of its shard, SOAK_BAD_WRONG if
 * not (printed). */
static int soak_bad_one(soak_shared *sh, soak_bad *bd, uint64_t k) {
  int kinds = bd->wrong != NULL ? 4 : 3;
  int kind = (int)(k % (uint64_t)kinds), items = (int)((k / (uint64_t)kinds) % 2);
  int shard = (int)((k / (2 * (uint64_t)kinds)) % (uint64_t)sh->cfg->shards);
  static const char *const names[] = {"a NaN row", "rows of obs_dim + 1", "an unknown table", "a wrong token"};
  static const char *const expect[] = {"not finite", "obs", "nosuch", "UNAUTHENTICATED"};
  rc_batch *b = kind == 1 ? &bd->wide : &bd->ok;
  for (int i = 0; i < 4; i++) b->actor_id[i] = SOAK_BAD_ACTOR, b->seq[i] = bd->seq++;
  b->obs[1] = kind == 0 ? NAN : 1.0f;
  const char *table = kind == 2 ? "nosuch" : "online";
  grpc_byte_buffer *req = items ? rc__encode_insert(b, 0, 4, table) : rc__encode_insert_columns(b, 0, 4, table);
  grpc_byte_buffer *rep = NULL;
  int64_t t0 = (int64_t)ib_now_ns();
  int rc = rc__unary(kind == 3 ? bd->wrong : sh->c, shard, WIRE_PATH_INSERT, "Insert (bad request)", req, &rep, -1);
  grpc_byte_buffer_destroy(req);
  if (rep != NULL) grpc_byte_buffer_destroy(rep);
  b->obs[1] = 1.0f;
  if (rc == IB_EINVAL && strstr(ib_errmsg(), expect[kind]) != NULL) return SOAK_BAD_REFUSED;
  if (rc != IB_OK && soak_traffic_in_outage(sh, shard, t0)) return SOAK_BAD_DOWN;
  fprintf(stderr, "soak: bad request %llu (%s, as %s, to shard %d) was not refused as %s naming '%s': rc %d, '%s'\n",
          (unsigned long long)k, names[kind], items ? "items" : "columns", shard,
          kind == 3 ? "UNAUTHENTICATED" : "INVALID_ARGUMENT", expect[kind], rc, rc == IB_OK ? "accepted" : ib_errmsg());
  return SOAK_BAD_WRONG;
}

/* A fresh client of all shards: open, Info and health of one shard (the shards in turn), close
 * (connection churn). */
static void soak_churn(soak_shared *sh, rc_shard_info *info) {
  uint64_t k = atomic_load(&sh->churns);
  int shard = (int)(k % (uint64_t)sh->cfg->shards);
  rc_opts o;
  soak_traffic_opts(&o, sh, k + 7);
  rc_client *c = NULL;
  int64_t t0 = (int64_t)ib_now_ns();
  int rc = rc_client_open(&c, &o);
  if (rc == IB_OK) rc = rc_info_get(c, shard, info);
  int serving = 0;
  if (rc == IB_OK) rc = rc_health(c, shard, "", &serving);
  if (rc == IB_OK && !serving) rc = ib_fail(IB_EUNAVAIL, "shard %d's health says NOT_SERVING during the soak", shard);
  if (rc != IB_OK) soak_traffic_error(sh, shard, "connection churn", rc, t0);
  rc_client_close(c);
  atomic_fetch_add(&sh->churns, 1);
}

/* Info a few times a second, churn and bad requests at their periods. */
static void *soak_misc_main(void *arg) {
  soak_shared *sh = arg;
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  soak_bad bd;
  memset(&bd, 0, sizeof bd);
  rc_batch_init(&bd.ok, 4, c->obs_dim, c->act_dim);
  rc_batch_init(&bd.wide, 4, c->obs_dim + 1, c->act_dim);
  soak_fill(&bd.ok, 4, RC_PROPOSER_RL, 0);
  soak_fill(&bd.wide, 4, RC_PROPOSER_RL, 0);
  if (c->token != NULL) {
    char wrong[300];
    snprintf(wrong, sizeof wrong, "not-%s", c->token);
    rc_opts o;
    soak_traffic_opts(&o, sh, 5);
    o.token = wrong; /* copied by rc_client_open (it builds the metadata value there) */
    if (rc_client_open(&bd.wrong, &o) != IB_OK) soak_traffic_error(sh, 0, "opening the wrong-token client", -1, 0);
  }
  double t0 = ib_now_s(), next_churn = t0 + c->churn_every, next_bad = t0 + c->bad_every;
  for (uint64_t round = 0; !atomic_load(&sh->stop); round++) {
    usleep((useconds_t)(c->info_every * 1e6));
    double now = ib_now_s();
    if (c->bad_every > 0 && now >= next_bad) {
      uint64_t k = atomic_fetch_add(&sh->bad_sent, 1);
      int r = soak_bad_one(sh, &bd, k);
      if (r == SOAK_BAD_REFUSED) atomic_fetch_add(&sh->bad_refused, 1);
      else if (r == SOAK_BAD_DOWN) atomic_fetch_add(&sh->bad_down, 1);
      next_bad = now + c->bad_every;
    }
    if (c->churn_every > 0 && now >= next_churn) {
      soak_churn(sh, info);
      next_churn = now + c->churn_every;
    }
    /* Right after a bad request too: the shard must go on serving. The shards in turn. */
    int shard = (int)(round % (uint64_t)c->shards);
    int64_t ti = (int64_t)ib_now_ns();
    int rc = rc_info_get(sh->c, shard, info);
    if (rc != IB_OK) soak_traffic_error(sh, shard, "Info", rc, ti);
    atomic_fetch_add(&sh->infos, 1);
  }
  rc_client_close(bd.wrong);
  rc_batch_free(&bd.ok);
  rc_batch_free(&bd.wide);
  free(info);
  return NULL;
}

/* ---- start and stop ---- */

int soak_traffic_start(soak_traffic *t, soak_shared *sh) {
  const soak_cfg *c = sh->cfg;
  for (int s = 0; s < c->shards; s++) {
    int rc = soak_preload_demos(sh, s);
    if (rc != IB_OK) {
      fprintf(stderr, "ibrl-bench soak: preloading %ld demo rows into shard %d failed: %s\n", c->demo_rows, s,
              ib_errmsg());
      return rc;
    }
  }
  t->sh = sh;
  for (int k = 0; k < c->writers; k++) {
    t->wj[k] = (soak_traffic_job){sh, k};
    IB_CHECK(pthread_create(&t->writer[k], NULL, soak_writer_main, &t->wj[k]) == 0);
  }
  for (int k = 0; k < c->samplers; k++) {
    t->sj[k] = (soak_traffic_job){sh, k};
    IB_CHECK(pthread_create(&t->sampler[k], NULL, soak_sampler_main, &t->sj[k]) == 0);
  }
  IB_CHECK(pthread_create(&t->misc, NULL, soak_misc_main, sh) == 0);
  return IB_OK;
}

void soak_traffic_stop(soak_traffic *t) {
  const soak_cfg *c = t->sh->cfg;
  atomic_store(&t->sh->stop, 1);
  for (int k = 0; k < c->writers; k++) pthread_join(t->writer[k], NULL);
  atomic_store(&t->sh->samplers_stop, 1);
  for (int k = 0; k < c->samplers; k++) pthread_join(t->sampler[k], NULL);
  pthread_join(t->misc, NULL);
}
