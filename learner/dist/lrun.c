/* lrun.c: the MPI learner group's run (see lrun.h).
 *
 * Design.
 *  - Setup order: local checks first (method, the --il file loaded, an --out that already holds
 *    a run), then the replay clients, the dims, the agent and the run directory. A wrong local
 *    file thus exits 2 at once instead of waiting --wait seconds on an unreachable replay.
 *  - Agreement. Anything that can fail on one rank only (a file, a replay call) is followed by
 *    agree(), a one-int MAX allreduce, before the next collective: a rank never waits in a
 *    collective that another rank skipped. In the loop the agreement rides on lstep's control
 *    allreduce (stop / no batch / non-finite).
 *  - Sampling. Each rank samples its share (global batch / ranks) from all shards with its
 *    own sampling stream (rc_opts.seed from (seed, "learner", rank, resume point)). The replay
 *    server's rate limiter enforces the samples-per-insert ratio: a blocked Sample returns
 *    DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED (IB_ETIMEDOUT / IB_EFULL) after at most the call
 *    deadline, and the rank retries with a backoff until the stop flag is set or --wait has
 *    passed without a batch (then every rank stops with an error). Nothing blocks without a
 *    deadline, so the learner never hangs on a quiet replay.
 *  - Publishing. Rank 0 packs the acting weights (wblob.h) into one preallocated buffer and
 *    publishes them as version v+1 on the Params shard every P updates. A publish that fails
 *    is logged and retried at the next period (the actors keep acting with older weights); a
 *    store that already holds a newer version (a resumed run whose last publish was after its
 *    checkpoint) moves our counter past it.
 *  - Staleness. Online rows carry the weight_version that acted; lag = current version - row
 *    version, summed per log window (demo rows excluded).
 *  - Checkpoints. Rank 0 gathers every rank's per-row streams, writes agent-<updates>.ckpt
 *    (agent_save), then learner.state naming it (rename = commit), then deletes the previous
 *    agent file. Resume: every rank reads learner.state and the agent file from the run
 *    directory (so --out must be readable by all ranks: one host, or a shared volume), takes
 *    its own streams, and the weights are re-checked by checksum. The replay's contents are
 *    not the learner's to restore (the shards checkpoint themselves), and the sampling stream
 *    is reseeded from the resume point, so a resumed run continues the same optimisation but
 *    on the data the replay holds then.
 *  - No allocation in the loop: batches, the blob buffer and all accumulators are set up
 *    before it. */
#include "lrun.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "dist.h"
#include "env.h"
#include "ib.h"
#include "ilfile.h"
#include "log.h"
#include "lstate.h"
#include "lstep.h"
#include "params_client.h"
#include "replay_client.h"
#include "rng.h"
#include "runlog.h"
#include "wblob.h"

#define LRUN_EXTRA_HEADER \
  ",updates_per_s,samples_per_s,staleness_mean,staleness_max,allreduce_ms,weight_version,sample_ms"

typedef struct lrun {
  const lrun_opts *o;
  tcfg tc;
  volatile sig_atomic_t *stop;
  int rank, size, share;
  int obs_dim, act_dim;
  rc_client *rc;       /* replay shards */
  rc_sampler *sampler; /* this rank's batches, the next one in flight while it trains (on rc) */
  rc_client *pc;       /* the Params shard (== rc when it is one of the replay shards) */
  int params_shard;
  il_policy il;
  ilfile_meta il_meta; /* the IL policy's meta (dims checked once the replay's are known) */
  int have_il;
  agent ag;
  int ag_ready;
  rc_batch batch;
  uint8_t *blob;       /* rank 0: publish buffer */
  size_t blob_len;
  /* counters (restored on resume) */
  uint64_t updates, actor_updates, weight_version, samples;
  double wall_before;  /* training seconds of earlier processes */
  double t0;           /* this process's start */
  char agent_file[64]; /* current checkpoint's agent file ("" = none) */
  uint64_t updates0;   /* updates when this process started training */
  uint64_t ckpt_at;    /* updates of the last checkpoint (every rank knows it); UINT64_MAX = none */
  /* log window */
  double w_t;
  uint64_t w_updates;
  double w_closs, w_aloss, w_q;
  long w_nc, w_na;
  long w_boot_il0, w_boot_total0;
  double w_online, w_il_rows, w_stale_sum, w_stale_n, w_stale_max, w_samples;
  double w_allreduce_s0;
  double sample_s;     /* this process's time waiting for batches (sample_share), seconds */
  double w_sample_s0;
  long env_steps;      /* last known online items inserted over all shards */
  double train_success;
  int publish_warned;
} lrun;

/* ---- helpers ---- */

static void path_join(char *out, size_t cap, const char *dir, const char *file) {
  int n = snprintf(out, cap, "%s/%s", dir, file);
  IB_CHECK(n > 0 && (size_t)n < cap);
}

/* Every rank passes its status; returns IB_OK when all are OK, else this rank's error, or on a
 * rank that was fine the error code of the failing rank (the most negative code if several
 * failed) with "failed on another rank", so every rank exits with the same code. Collective. */
static int agree(int rc, const char *what) {
  double v[1] = {rc != IB_OK ? (double)-rc : 0.0};
  char msg[512];
  snprintf(msg, sizeof msg, "%s", rc != IB_OK ? ib_errmsg() : "");
  int mrc = dist_allreduce_max_d(v, 1);
  if (mrc != IB_OK) return mrc;
  if (rc != IB_OK) return ib_fail(rc, "%s", msg);
  if (v[0] > 0.0) return ib_fail(-(int)v[0], "%s failed on another rank (see its log)", what);
  return IB_OK;
}

static int mkdir_p(const char *dir) {
  char tmp[TCFG_STR];
  snprintf(tmp, sizeof tmp, "%s", dir);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
      return ib_fail(IB_EIO, "cannot create %s: %s (HINT: check --out)", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
    return ib_fail(IB_EIO, "cannot create %s: %s (HINT: check --out)", tmp, strerror(errno));
  return IB_OK;
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* ---- setup ---- */

/* Info of shard 0, retried until the replay answers or --wait passes (the learner may start
 * before the replay in Kubernetes). */
static int shard_info_wait(lrun *L, int shard, rc_shard_info *info) {
  double t0 = ib_now_s(), backoff = 0.1;
  for (;;) {
    int rc = rc_info_get(L->rc, shard, info);
    if (rc == IB_OK) return IB_OK;
    if ((rc != IB_EUNAVAIL && rc != IB_ETIMEDOUT) || ib_now_s() - t0 > L->o->wait_s || *L->stop) return rc;
    log_warn("replay shard %s not reachable yet (%s); retrying", rc_client_target(L->rc, shard), ib_errmsg());
    sleep_s(backoff);
    backoff = fmin(backoff * 2.0, 2.0);
  }
}

/* Dims: explicit flags, else --task (env registry x chunk / frame stack), else the shards'.
 * Every shard must agree with them. Rank 0 asks, then broadcasts. */
static int setup_dims(lrun *L) {
  int rc = IB_OK;
  int dims[2] = {L->o->obs_dim, L->o->act_dim};
  /* What to change depends on where the learner's dims came from (it has no --chunk flag). */
  char dims_hint[TCFG_STR + 256];
  if (dims[0])
    snprintf(dims_hint, sizeof dims_hint, "give the learner the shards' --obs-dim and --act-dim, or leave both out to "
             "take them from the shards");
  else if (L->o->task_given)
    snprintf(dims_hint, sizeof dims_hint, "--task %s with --preset's chunk %d and frame stack %d gives these; choose "
             "the --task and --preset the shards were sized for, or leave --task out to take the shards' dims",
             L->tc.task, L->tc.chunk, L->tc.n_stack);
  else
    snprintf(dims_hint, sizeof dims_hint, "the learner took the first shard's dims; start every shard with the same "
             "--obs-dim and --act-dim");
  if (L->rank == 0) {
    if (!dims[0] && L->o->task_given) {
      env *e = NULL;
      env_config ec = {0};
      rc = env_create(L->tc.task, &ec, &e);
      if (rc == IB_OK) {
        dims[0] = e->obs_dim * L->tc.n_stack;
        dims[1] = e->act_dim * L->tc.chunk;
        env_destroy(e);
      }
    }
    for (int s = 0; rc == IB_OK && s < rc_client_shard_count(L->rc); s++) {
      rc_shard_info info;
      rc = shard_info_wait(L, s, &info);
      if (rc != IB_OK) break;
      if (!dims[0]) dims[0] = info.obs_dim, dims[1] = info.act_dim;
      if (info.obs_dim != dims[0] || info.act_dim != dims[1])
        rc = ib_fail(IB_EMISMATCH, "replay shard %s holds obs_dim %d act_dim %d but the learner uses %d %d "
                     "(HINT: %s)",
                     rc_client_target(L->rc, s), info.obs_dim, info.act_dim, dims[0], dims[1], dims_hint);
    }
  }
  rc = agree(rc, "replay setup");
  if (rc != IB_OK) return rc;
  if ((rc = dist_bcast_bytes(dims, sizeof dims, 0)) != IB_OK) return rc;
  L->obs_dim = dims[0];
  L->act_dim = dims[1];
  return IB_OK;
}

static int setup_clients(lrun *L) {
  rng r;
  /* Sampling streams differ per rank and per resume point. */
  rng_seed(&r, L->tc.seed, "learner", (int64_t)L->rank, "sample");
  uint64_t seed = rng_u64(&r) ^ (L->updates * 0x9e3779b97f4a7c15ull);
  rc_opts ro = {0};
  ro.shards = L->o->replay;
  ro.token = L->o->token[0] ? L->o->token : NULL;
  ro.deadline_ms = L->o->deadline_ms;
  ro.max_message_bytes = (long)L->o->max_message_mb << 20;
  ro.seed = seed;
  int rc = rc_client_open(&L->rc, &ro);
  if (rc != IB_OK) return rc;
  L->pc = L->rc;
  L->params_shard = 0;
  if (L->o->params[0]) {
    int found = -1;
    for (int s = 0; s < rc_client_shard_count(L->rc); s++)
      if (strcmp(rc_client_target(L->rc, s), L->o->params) == 0) found = s;
    if (found >= 0) {
      L->params_shard = found;
    } else if (L->rank == 0) {
      rc_opts po = ro;
      po.shards = L->o->params;
      if ((rc = rc_client_open(&L->pc, &po)) != IB_OK) return rc;
    }
  }
  return IB_OK;
}

/* Everything that needs only local files and settings, checked before any replay is
 * contacted (a missing --il must not wait --wait seconds for an unreachable replay first):
 * the method, the IL policy (loaded here; its dims are checked against the replay's in
 * setup_agent) and, for a fresh run, that --out does not already hold one and can be created
 * and written (rank 0 creates it here). */
static int setup_local(lrun *L) {
  const tcfg *c = &L->tc;
  int rc;
  if (c->method == TCFG_RFT || c->method == TCFG_BC)
    return ib_fail(IB_EINVAL, "--method %s is not supported by ibrl-learner (HINT: RFT's BC pretraining and BC's "
                   "evaluation are single-process steps: use ibrl-train; the learner runs ibrl, its ablations and rlpd)",
                   tcfg_method_name(c->method));
  if (tcfg_method_uses_il(c->method)) {
    if (!L->o->il[0])
      return ib_fail(IB_EINVAL, "--method %s needs an IL policy (HINT: pass --il IL.ckpt written by `ibrl-il train`)",
                     tcfg_method_name(c->method));
    if ((rc = ilfile_load(&L->il, &L->il_meta, L->o->il, L->share)) != IB_OK) return rc;
    L->have_il = 1;
  }
  char state_path[TCFG_STR + 64];
  path_join(state_path, sizeof state_path, L->tc.out, "learner.state");
  if (!L->o->resume && L->rank == 0 && file_exists(state_path))
    return ib_fail(IB_ESTATE, "%s already holds a learner run (HINT: add --resume to continue it, or choose another --out)",
                   L->tc.out);
  /* A fresh run's directory must be creatable and writable before the replay is contacted (as
   * ibrl-train and the evaluator check theirs): create it now and write a probe file there. */
  if (!L->o->resume && L->rank == 0) {
    if ((rc = mkdir_p(L->tc.out)) != IB_OK) return rc;
    char probe[TCFG_STR + 64];
    snprintf(probe, sizeof probe, "%s/.ibrl-learner-probe.%ld", L->tc.out, (long)getpid());
    FILE *f = fopen(probe, "w");
    if (!f)
      return ib_fail(IB_EIO, "--out %s: cannot create a file in it: %s (HINT: give a run directory this user can "
                     "write to)", L->tc.out, strerror(errno));
    fclose(f);
    unlink(probe);
  }
  return IB_OK;
}

static int setup_agent(lrun *L) {
  const tcfg *c = &L->tc;
  int rc;
  int uses_il = L->have_il;
  if (uses_il && (L->il_meta.il.obs_dim != L->obs_dim || L->il_meta.il.act_dim != L->act_dim))
    return ib_fail(IB_EMISMATCH, "IL policy %s maps obs %d -> act %d but the replay holds obs %d, act %d "
                   "(HINT: train the IL policy with `ibrl-il train` on the shards' task, --chunk and --n-stack)",
                   L->o->il, L->il_meta.il.obs_dim, L->il_meta.il.act_dim, L->obs_dim, L->act_dim);
  agent_config ac;
  tcfg_agent_config(&ac, c, &L->il.cfg, L->obs_dim, L->act_dim, L->share);
  ac.rank = 0; /* shared streams on every rank; the per-row ones are split below (lstep.h) */
  if ((rc = agent_init(&L->ag, &ac)) != IB_OK) return rc;
  L->ag_ready = 1;
  if (uses_il && (rc = agent_il_set(&L->ag, &L->il)) != IB_OK) return rc;
  lstep_streams_split(&L->ag, c->seed, L->rank);
  return IB_OK;
}

/* metrics.csv with rows up to `updates` kept (resume) or a fresh header. Rank 0. */
static int metrics_prepare(lrun *L, int resume) {
  char path[TCFG_STR + 64], tmp[TCFG_STR + 80];
  path_join(path, sizeof path, L->tc.out, "metrics.csv");
  if (!resume || !file_exists(path)) {
    FILE *f = fopen(path, "w");
    if (!f) return ib_fail(IB_EIO, "cannot create %s: %s (HINT: check --out)", path, strerror(errno));
    fprintf(f, "%s%s\n", RUNLOG_HEADER, LRUN_EXTRA_HEADER);
    return fclose(f) == 0 ? IB_OK : ib_fail(IB_EIO, "writing %s failed", path);
  }
  /* Keep the header and the rows whose `updates` (column 3) is not past the checkpoint, so the
   * resumed run appends what the interrupted one would have. */
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *in = fopen(path, "r"), *out = in ? fopen(tmp, "w") : NULL;
  if (!in || !out) {
    if (in) fclose(in);
    return ib_fail(IB_EIO, "cannot rewrite %s: %s", path, strerror(errno));
  }
  char line[4096];
  int row = 0, rc = IB_OK;
  while (fgets(line, sizeof line, in)) {
    if (row++ == 0) {
      if (strncmp(line, RUNLOG_HEADER, strlen(RUNLOG_HEADER)) != 0)
        rc = ib_fail(IB_EPROTO, "%s: not a learner metrics file (HINT: is --out a run directory of ibrl-learner?)", path);
      /* Today's header: a file of an older ibrl-learner gets the columns added since at the end
       * (its rows lack them; readers go by name). */
      fprintf(out, "%s%s\n", RUNLOG_HEADER, LRUN_EXTRA_HEADER);
      continue;
    }
    long es = 0, up = 0;
    double w = 0;
    if (sscanf(line, "%ld,%lf,%ld", &es, &w, &up) == 3 && (uint64_t)up <= L->updates) fputs(line, out);
  }
  fclose(in);
  if (fclose(out) != 0 && rc == IB_OK) rc = ib_fail(IB_EIO, "writing %s failed", tmp);
  if (rc == IB_OK && rename(tmp, path) != 0) rc = ib_fail(IB_EIO, "cannot replace %s: %s", path, strerror(errno));
  return rc;
}

static int learner_json_write(const lrun *L) {
  char path[TCFG_STR + 64], tmp[TCFG_STR + 80];
  path_join(path, sizeof path, L->tc.out, "learner.json");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return ib_fail(IB_EIO, "cannot write %s: %s", tmp, strerror(errno));
  const lrun_opts *o = L->o;
  fprintf(f, "{\n  \"replay\": ");
  tcfg_json_string(f, o->replay);
  fprintf(f, ",\n  \"params\": ");
  tcfg_json_string(f, o->params);
  fprintf(f, ",\n  \"il\": ");
  tcfg_json_string(f, o->il);
  fprintf(f, ",\n  \"ranks\": %d,\n  \"global_batch\": %d,\n  \"rank_batch\": %d,\n  \"obs_dim\": %d,\n  \"act_dim\": %d,\n",
          L->size, L->tc.batch, L->share, L->obs_dim, L->act_dim);
  fprintf(f, "  \"updates\": %ld,\n  \"minutes\": %g,\n  \"publish_every\": %ld,\n  \"check_every\": %ld,\n"
          "  \"ckpt_every\": %ld,\n  \"log_every\": %ld,\n  \"deadline_ms\": %d,\n  \"wait_s\": %g,\n"
          "  \"weight_blob_format\": %u\n}\n",
          o->updates, o->minutes, o->publish_every, o->check_every, o->ckpt_every, o->log_every, o->deadline_ms,
          o->wait_s, WBLOB_FORMAT);
  if (fclose(f) != 0) return ib_fail(IB_EIO, "writing %s failed", tmp);
  if (rename(tmp, path) != 0) return ib_fail(IB_EIO, "cannot rename %s: %s", tmp, strerror(errno));
  return IB_OK;
}

/* Fresh run: rank 0 creates the directory and its files. Resume: every rank restores. */
static int setup_run_dir(lrun *L) {
  int rc = IB_OK;
  char state_path[TCFG_STR + 64];
  path_join(state_path, sizeof state_path, L->tc.out, "learner.state");
  if (!L->o->resume) {
    if (L->rank == 0) {
      if (file_exists(state_path))
        rc = ib_fail(IB_ESTATE, "%s already holds a learner run (HINT: add --resume to continue it, or choose another --out)",
                     L->tc.out);
      if (rc == IB_OK) rc = mkdir_p(L->tc.out);
      char cfg_path[TCFG_STR + 64];
      path_join(cfg_path, sizeof cfg_path, L->tc.out, "config.json");
      if (rc == IB_OK) rc = tcfg_write_json(&L->tc, L->have_il ? &L->il_meta : NULL, cfg_path);
      path_join(cfg_path, sizeof cfg_path, L->tc.out, "learner.cfg");
      if (rc == IB_OK) rc = lstate_cfg_save(cfg_path, &L->tc, sizeof L->tc);
      if (rc == IB_OK) rc = learner_json_write(L);
      if (rc == IB_OK) rc = metrics_prepare(L, 0);
    }
    return agree(rc, "run directory setup");
  }
  lstate st;
  rc = lstate_load(&st, state_path);
  if (rc == IB_OK) {
    char agent_path[TCFG_STR + 80];
    path_join(agent_path, sizeof agent_path, L->tc.out, st.agent_file);
    rc = agent_load(&L->ag, agent_path);
    if (rc == IB_OK) {
      L->updates = st.updates;
      L->actor_updates = st.actor_updates;
      L->weight_version = st.weight_version;
      L->samples = st.samples;
      L->wall_before = st.wall_s;
      snprintf(L->agent_file, sizeof L->agent_file, "%s", st.agent_file);
      L->ckpt_at = st.updates;
      if (L->rank < st.ranks) {
        lstate_streams_set(&L->ag, st.streams + (size_t)L->rank * LSTATE_STREAMS);
      } else {
        /* More ranks than the run had: the new ranks get fresh per-row streams derived from
         * the resume point (their rows are new rows anyway). */
        lstep_streams_split(&L->ag, L->tc.seed ^ st.updates, L->rank);
      }
      if (L->rank == 0 && st.ranks != L->size)
        log_warn("resuming a run of %d ranks with %d ranks: same weights and optimiser, different per-rank shares",
                 st.ranks, L->size);
    }
    lstate_free(&st);
  }
  if (rc == IB_OK && L->rank == 0) rc = metrics_prepare(L, 1);
  return agree(rc, "resume");
}

/* ---- checkpoint, publish ---- */

static int checkpoint(lrun *L) {
  rng mine[LSTATE_STREAMS];
  lstate_streams_get(&L->ag, mine);
  rng *all = L->rank == 0 ? ib_xmalloc((size_t)L->size * sizeof mine) : NULL;
  int rc = dist_gather_bytes(all, mine, sizeof mine, 0);
  if (rc != IB_OK) {
    free(all);
    return rc;
  }
  if (L->rank == 0) {
    lstate st = {0};
    st.ranks = L->size;
    st.updates = L->updates;
    st.actor_updates = L->actor_updates;
    st.weight_version = L->weight_version;
    st.samples = L->samples;
    st.wall_s = L->wall_before + (ib_now_s() - L->t0);
    snprintf(st.agent_file, sizeof st.agent_file, "agent-%llu.ckpt", (unsigned long long)L->updates);
    st.streams = all;
    char ap[TCFG_STR + 80], sp[TCFG_STR + 64], old[TCFG_STR + 80];
    path_join(ap, sizeof ap, L->tc.out, st.agent_file);
    path_join(sp, sizeof sp, L->tc.out, "learner.state");
    rc = agent_save(&L->ag, ap);
    if (rc == IB_OK) rc = lstate_save(sp, &st);
    if (rc == IB_OK) {
      /* The new state is committed: the previous agent file is no longer referenced. */
      if (L->agent_file[0] && strcmp(L->agent_file, st.agent_file) != 0) {
        path_join(old, sizeof old, L->tc.out, L->agent_file);
        unlink(old);
      }
      snprintf(L->agent_file, sizeof L->agent_file, "%s", st.agent_file);
      if (!L->o->quiet) log_info("checkpoint %s (%llu updates)", ap, (unsigned long long)L->updates);
    }
  }
  free(all);
  rc = agree(rc, "checkpoint");
  if (rc == IB_OK) L->ckpt_at = L->updates;
  return rc;
}

/* Rank 0 only. Returns IB_OK or the publish error (already logged once per streak). */
static int publish(lrun *L) {
  IB_CHECK(L->rank == 0);
  uint64_t v = L->weight_version + 1;
  wblob_pack(L->blob, &L->ag, v, L->updates);
  int rc = pc_publish(L->pc, L->params_shard, v, L->blob, L->blob_len);
  if (rc == IB_ESTATE) {
    /* The store is ahead of us (a resumed run whose last publish followed its checkpoint):
     * move past its version and publish again. */
    pc_blob tmp = {0};
    uint64_t stored = 0;
    int g = pc_get_if_newer(L->pc, L->params_shard, UINT64_MAX - 1, 0, &tmp, &stored);
    pc_blob_free(&tmp);
    if (g >= 0 && stored >= v) {
      v = stored + 1;
      wblob_pack(L->blob, &L->ag, v, L->updates);
      rc = pc_publish(L->pc, L->params_shard, v, L->blob, L->blob_len);
    }
  }
  if (rc != IB_OK) {
    if (!L->publish_warned) log_warn("publishing weight version %llu failed: %s (will retry)", (unsigned long long)v, ib_errmsg());
    L->publish_warned = 1;
    return rc;
  }
  if (L->publish_warned) log_info("publishing works again (version %llu)", (unsigned long long)v);
  L->publish_warned = 0;
  L->weight_version = v;
  return IB_OK;
}

/* Tells every rank the version rank 0 now has (staleness is measured against it). */
static int version_sync(lrun *L) {
  return dist_bcast_bytes(&L->weight_version, sizeof L->weight_version, 0);
}

/* ---- sampling ---- */

/* This rank's share into L->batch. Returns IB_OK, 1 (stop requested while waiting) or an
 * error after --wait seconds without a batch. The batches come from an rc_sampler: the shards
 * draw, gather and send the next one while this rank trains on this one, so an update waits for
 * its batch only when the shards are slower than the update (sample_ms says how long). */
static int sample_share_wait(lrun *L, int stop_pending);

/* sample_share_wait, with the time it took added to L->sample_s (the sample_ms column). */
static int sample_share(lrun *L, int stop_pending) {
  double t0 = ib_now_s();
  int rc = sample_share_wait(L, stop_pending);
  L->sample_s += ib_now_s() - t0;
  return rc;
}

static int sample_share_wait(lrun *L, int stop_pending) {
  double t0 = ib_now_s(), backoff = 0.02;
  int warned = 0;
  for (;;) {
    if (stop_pending || *L->stop) return 1;
    int rc = L->sampler ? IB_OK : rc_sampler_open(&L->sampler, L->rc, L->share, (double)L->tc.demo_ratio);
    if (rc == IB_OK) rc = rc_sampler_next(L->sampler, &L->batch);
    if (rc == IB_OK) {
      if (warned && !L->o->quiet) log_info("sampling resumed after %.1f s", ib_now_s() - t0);
      return IB_OK;
    }
    /* Rate limiter blocking, a shard restarting, an empty replay: wait and retry. */
    int transient = rc == IB_ETIMEDOUT || rc == IB_EFULL || rc == IB_EUNAVAIL || rc == IB_ESTATE;
    double waited = ib_now_s() - t0;
    /* One HINT per message: the client's own (a refused token, an empty replay, a shard that is
     * down) when it gave one, else ours about the wait. */
    if (!transient || waited > L->o->wait_s) {
      if (strstr(ib_errmsg(), "HINT") != NULL)
        return ib_fail(rc, "rank %d: no batch from the replay for %.1f s (--wait): %s", L->rank, waited, ib_errmsg());
      return ib_fail(rc, "rank %d: no batch from the replay for %.1f s: %s (HINT: are the actors inserting? is the "
                     "samples-per-insert limit reachable? raise --wait for slow starts)", L->rank, waited, ib_errmsg());
    }
    if (!warned && waited > 2.0) {
      log_warn("rank %d: replay not giving batches (%s); waiting (rate limiter or empty tables)", L->rank, ib_errmsg());
      warned = 1;
    }
    sleep_s(backoff);
    backoff = fmin(backoff * 2.0, 0.5);
  }
}

/* Staleness and proposer counts of the batch just sampled. */
static void batch_account(lrun *L) {
  const rc_batch *b = &L->batch;
  for (int i = 0; i < b->n; i++) {
    if (b->from_demo[i]) continue;
    L->w_online += 1.0;
    if (b->proposer[i] == RC_PROPOSER_IL) L->w_il_rows += 1.0;
    double lag = b->weight_version[i] <= L->weight_version ? (double)(L->weight_version - b->weight_version[i]) : 0.0;
    L->w_stale_sum += lag;
    L->w_stale_n += 1.0;
    if (lag > L->w_stale_max) L->w_stale_max = lag;
  }
  L->w_samples += b->n;
  L->samples += (uint64_t)b->n * (uint64_t)L->size; /* every rank samples the same count */
}

static agent_batch batch_view(const rc_batch *b) {
  agent_batch v = {b->obs, b->action, b->reward, b->discount, b->next_obs, b->n};
  return v;
}

/* ---- logging ---- */

static void window_reset(lrun *L) {
  dist_stats ds;
  dist_stats_get(&ds);
  L->w_t = ib_now_s();
  L->w_updates = L->updates;
  L->w_closs = L->w_aloss = L->w_q = 0.0;
  L->w_nc = L->w_na = 0;
  L->w_boot_il0 = L->ag.metrics.boot_il;
  L->w_boot_total0 = L->ag.metrics.boot_total;
  L->w_online = L->w_il_rows = L->w_stale_sum = L->w_stale_n = L->w_stale_max = L->w_samples = 0.0;
  L->w_allreduce_s0 = ds.allreduce_s;
  L->w_sample_s0 = L->sample_s;
}

static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

static void put(FILE *f, double v, int last) {
  if (isnan(v)) fputs("nan", f);
  else fprintf(f, "%.6g", v);
  fputc(last ? '\n' : ',', f);
}

/* Replay-side progress: online items inserted (env_steps column) and train success. */
static void replay_progress(lrun *L) {
  long inserted = 0;
  double eps = 0, succ = 0;
  /* A shard the client knows to be down would hold this read for a whole deadline per row (the
   * learner at ~5% speed while a frozen shard is down): keep the last known values until the
   * client's probe has it back. */
  if (rc_client_shards_down(L->rc) != 0) return;
  for (int s = 0; s < rc_client_shard_count(L->rc); s++) {
    rc_shard_info info;
    if (rc_info_get(L->rc, s, &info) != IB_OK) return; /* keep the last known values */
    for (int t = 0; t < info.n_tables; t++)
      if (info.tables[t].kind == 1) inserted += (long)info.tables[t].inserted;
    for (int a = 0; a < info.n_actors; a++) eps += info.actors[a].episodes, succ += info.actors[a].successes;
  }
  L->env_steps = inserted;
  L->train_success = ratio(succ, eps);
}

/* Collective: sums the window over ranks; rank 0 appends the row and prints progress. */
static int log_row(lrun *L) {
  dist_stats ds;
  dist_stats_get(&ds);
  double s[13] = {L->w_closs, L->w_aloss, L->w_q, (double)L->w_nc, (double)L->w_na,
                  (double)(L->ag.metrics.boot_il - L->w_boot_il0), (double)(L->ag.metrics.boot_total - L->w_boot_total0),
                  L->w_online, L->w_il_rows, L->w_stale_sum, L->w_stale_n, ds.allreduce_s - L->w_allreduce_s0,
                  L->sample_s - L->w_sample_s0};
  double m[1] = {L->w_stale_max};
  double samples = L->w_samples;
  int rc = dist_allreduce_sum_d(s, 13);
  if (rc == IB_OK) rc = dist_allreduce_sum_d(&samples, 1);
  if (rc == IB_OK) rc = dist_allreduce_max_d(m, 1);
  if (rc != IB_OK) return rc;
  if (L->rank == 0) {
    double now = ib_now_s(), dt = fmax(now - L->w_t, 1e-9);
    double du = (double)(L->updates - L->w_updates);
    replay_progress(L);
    runlog_row r = {0};
    r.env_steps = L->env_steps;
    r.wall_s = L->wall_before + (now - L->t0);
    r.updates = (long)L->updates;
    r.episodes = 0;
    r.eval_success = NAN; /* evaluation is the evaluator actor's job, not the learner's */
    r.train_success = L->train_success;
    /* Acting IL-win share as the data shows it: online rows the actors stamped proposer IL. */
    r.il_win_act = ratio(s[8], s[7]);
    r.il_win_bootstrap = ratio(s[5], s[6]);
    r.il_win_eval = NAN;
    r.critic_loss = ratio(s[0], s[3]);
    r.actor_loss = ratio(s[1], s[4]);
    r.q_mean = ratio(s[2], s[3]);
    double ups = du / dt, sps = samples / dt;
    double st_mean = ratio(s[9], s[10]), st_max = s[10] > 0 ? m[0] : NAN;
    double ar_ms = du > 0 ? 1e3 * s[11] / L->size / du : NAN;
    double sample_ms = du > 0 ? 1e3 * s[12] / L->size / du : NAN; /* per update, mean over the ranks */
    char path[TCFG_STR + 64];
    path_join(path, sizeof path, L->tc.out, "metrics.csv");
    FILE *f = fopen(path, "a");
    if (!f) {
      rc = ib_fail(IB_EIO, "cannot append to %s: %s", path, strerror(errno));
    } else {
      fprintf(f, "%ld,%.3f,%ld,%ld,", r.env_steps, r.wall_s, r.updates, r.episodes);
      double cols[] = {r.eval_success, r.train_success, r.il_win_act, r.il_win_bootstrap, r.il_win_eval,
                       r.critic_loss, r.actor_loss, r.q_mean, ups, sps, st_mean, st_max, ar_ms};
      for (size_t i = 0; i < IB_ARRAY_LEN(cols); i++) put(f, cols[i], 0);
      fprintf(f, "%llu,", (unsigned long long)L->weight_version);
      put(f, sample_ms, 1);
      if (fclose(f) != 0) rc = ib_fail(IB_EIO, "writing %s failed (HINT: is the disk full?)", path);
    }
    if (!L->o->quiet)
      log_info("updates %llu  %.1f upd/s  %.0f samples/s  critic %.4g  actor %.4g  q %.4g  il_boot %.2f  "
               "stale %.1f (max %.0f)  allreduce %.3f ms/upd  sample %.3f ms/upd  version %llu",
               (unsigned long long)L->updates, ups, sps, r.critic_loss, r.actor_loss, r.q_mean, r.il_win_bootstrap,
               st_mean, st_max, ar_ms, sample_ms, (unsigned long long)L->weight_version);
  }
  window_reset(L);
  return agree(rc, "metrics row");
}

/* ---- the loop ---- */

static int train(lrun *L) {
  const int G = L->tc.critic_updates;
  int rc = IB_OK;
  window_reset(L);
  for (;;) {
    int stop_local = *L->stop != 0;
    if (L->o->updates > 0 && L->updates >= (uint64_t)L->o->updates) stop_local = 1;
    if (L->o->minutes > 0 && ib_now_s() - L->t0 >= L->o->minutes * 60.0) stop_local = 1;
    int srm = stop_local ? 1 : sample_share(L, 0);
    char sample_err[512] = "";
    if (srm < 0) snprintf(sample_err, sizeof sample_err, "%s", ib_errmsg());
    lstep_ctl ctl = {srm == 1, srm < 0};
    agent_batch b = batch_view(&L->batch);
    rc = lstep_critic(&L->ag, srm == IB_OK ? &b : NULL, &ctl);
    if (rc == 1) {
      if (ctl.no_batch) {
        rc = srm < 0 ? ib_fail(srm, "%s", sample_err)
                     : ib_fail(IB_EUNAVAIL, "another rank could not sample a batch (see its log); stopping every rank");
        break;
      }
      rc = IB_OK; /* stop */
      break;
    }
    if (rc != IB_OK) break;
    L->updates++;
    batch_account(L);
    L->w_closs += L->ag.metrics.critic_loss;
    L->w_q += L->ag.metrics.q_mean;
    L->w_nc++;
    if (L->updates % (uint64_t)G == 0) {
      /* The actor step uses the last critic batch (reference section 2). Its stop flag is
       * not consulted: the step completes the learning step that began. */
      lstep_ctl actl = {0, 0};
      rc = lstep_actor(&L->ag, &b, NULL, &actl);
      if (rc != IB_OK) break;
      L->actor_updates++;
      L->w_aloss += L->ag.metrics.actor_loss;
      L->w_na++;
    }
    if (L->o->publish_every > 0 && L->updates % (uint64_t)L->o->publish_every == 0) {
      if (L->rank == 0) publish(L);
      if ((rc = version_sync(L)) != IB_OK) break;
    }
    if (L->o->check_every > 0 && L->updates % (uint64_t)L->o->check_every == 0) {
      if ((rc = lstep_params_check(&L->ag, NULL)) != IB_OK) break;
    }
    if (L->updates % (uint64_t)L->o->log_every == 0) {
      if ((rc = log_row(L)) != IB_OK) break;
    }
    if (L->o->ckpt_every > 0 && L->updates % (uint64_t)L->o->ckpt_every == 0) {
      if ((rc = checkpoint(L)) != IB_OK) log_warn("periodic checkpoint failed: %s", ib_errmsg());
      rc = IB_OK;
    }
  }
  return rc;
}

static void lrun_free(lrun *L) {
  rc_sampler_close(L->sampler); /* cancels the batch in flight */
  if (L->pc && L->pc != L->rc) rc_client_close(L->pc);
  rc_client_close(L->rc);
  rc_batch_free(&L->batch);
  if (L->ag_ready) agent_free(&L->ag);
  if (L->have_il) il_free(&L->il);
  free(L->blob);
}

int lrun_main(const lrun_opts *o, const tcfg *tc, volatile sig_atomic_t *stop) {
  lrun *L = ib_xcalloc(1, sizeof *L);
  L->o = o;
  L->tc = *tc;
  L->stop = stop;
  L->rank = dist_rank();
  L->size = dist_size();
  L->t0 = ib_now_s();
  L->ckpt_at = UINT64_MAX;
  int code = 1, rc;
  if (!o->resume && L->tc.batch % L->size != 0) {
    if (L->rank == 0)
      fprintf(stderr, "ibrl-learner: --batch %d does not split evenly over %d ranks (HINT: use a multiple of %d)\n",
              L->tc.batch, L->size, L->size);
    free(L);
    return 2;
  }
  if (o->resume) {
    /* Hyperparameters come from the run itself; only the run-control settings (replay
     * addresses, limits, periods) and the compute threads come from this command line. */
    char cp[TCFG_STR + 64];
    path_join(cp, sizeof cp, tc->out, "learner.cfg");
    tcfg saved;
    /* No learner.cfg (or no directory) is a setup error, exit 2 as ibrl-train's --resume; only
     * a read that fails on an existing file, or MPI, is a runtime error. */
    rc = access(cp, F_OK) != 0 && errno == ENOENT
             ? ib_fail(IB_ENOTFOUND, "--resume %s: no %s (HINT: --resume needs a run directory written by ibrl-learner; "
                       "drop --resume to start a new run there)", tc->out, cp)
             : lstate_cfg_load(cp, &saved, sizeof saved);
    rc = agree(rc, "reading learner.cfg");
    if (rc != IB_OK) {
      log_error("%s", ib_errmsg());
      free(L);
      return rc == IB_EIO || rc == IB_EUNAVAIL ? 1 : 2;
    }
    snprintf(saved.out, sizeof saved.out, "%s", tc->out);
    saved.threads = tc->threads;
    L->tc = saved;
    if (L->tc.batch % L->size != 0) {
      if (L->rank == 0)
        fprintf(stderr, "ibrl-learner: the run's batch %d does not split evenly over %d ranks (HINT: resume with a divisor of %d ranks)\n",
                L->tc.batch, L->size, L->tc.batch);
      free(L);
      return 2;
    }
  }
  L->share = L->tc.batch / L->size;

  /* Local setup errors (the IL file, the method, an existing run) are usage errors: exit 2
   * before any replay is contacted. (An MPI failure in this first agreement would exit 2 too;
   * its message names the MPI call.) */
  if ((rc = agree(setup_local(L), "local setup")) != IB_OK) {
    code = 2;
    goto done;
  }
  rc = agree(setup_clients(L), "replay client setup");
  if (rc == IB_OK) rc = setup_dims(L);
  if (rc == IB_OK) rc = agree(setup_agent(L), "agent setup");
  if (rc == IB_OK) rc = setup_run_dir(L);
  if (rc != IB_OK) {
    code = rc == IB_EINVAL || rc == IB_EMISMATCH || rc == IB_ESTATE || rc == IB_ENOTFOUND ? 2 : 1;
    goto done;
  }
  /* The sampling stream depends on the resume point (setup_clients ran before the counters
   * were restored): reopen with the restored counters. */
  if (o->resume) {
    if (L->pc && L->pc != L->rc) rc_client_close(L->pc);
    rc_client_close(L->rc);
    L->rc = L->pc = NULL;
    if ((rc = agree(setup_clients(L), "replay client setup")) != IB_OK) goto done;
  }
  rc_batch_init(&L->batch, L->share, L->obs_dim, L->act_dim);
  /* Identical replicas from here: rank 0's weights everywhere, then proven by checksum. */
  if ((rc = lstep_params_bcast(&L->ag)) != IB_OK) goto done;
  uint32_t crc = 0;
  if ((rc = lstep_params_check(&L->ag, &crc)) != IB_OK) goto done;
  /* The weight blob must fit in one gRPC message, on our side and on the Params shard's. */
  L->blob_len = wblob_size(&L->ag);
  if (L->blob_len + 4096 > ((size_t)o->max_message_mb << 20)) {
    ib_fail(IB_EINVAL, "the weight blob is %.1f MB but --max-message-mb is %d (HINT: start ibrl-learner and the Params "
            "shard's ibrl-replay with --max-message-mb %zu or more)", L->blob_len / 1048576.0, o->max_message_mb,
            (L->blob_len >> 20) + 2);
    code = 2;
    goto done;
  }
  if (L->rank == 0) {
    L->blob = ib_xmalloc(L->blob_len);
    if (!o->quiet)
      log_info("%s %s: %d ranks x %d rows (global batch %d), obs %d act %d, G %d, weights crc 0x%08x, blob %.2f MB, %s",
               o->resume ? "resuming" : "starting", tcfg_method_name(L->tc.method), L->size, L->share, L->tc.batch,
               L->obs_dim, L->act_dim, L->tc.critic_updates, (unsigned)crc, L->blob_len / 1e6,
               o->resume ? "continuing" : "fresh");
    publish(L); /* actors can start acting with the current weights */
  }
  if ((rc = version_sync(L)) != IB_OK) goto done;

  L->updates0 = L->updates;
  rc = train(L);
  int train_rc = rc;
  char train_msg[512];
  snprintf(train_msg, sizeof train_msg, "%s", rc != IB_OK ? ib_errmsg() : "");
  /* Wind down: the last row, a final checkpoint, the final weights, summary and plot. A
   * non-finite update leaves the weights as they were before it, so they are still worth
   * saving. MPI errors leave the group unusable: skip the collectives then. */
  if (train_rc != IB_EIO) {
    int frc = L->updates > L->w_updates ? log_row(L) : IB_OK;
    if (frc == IB_OK) frc = lstep_params_check(&L->ag, NULL);
    if (frc == IB_OK && L->ckpt_at != L->updates) frc = checkpoint(L); /* not if just taken */
    if (frc == IB_OK && L->rank == 0 && L->updates > 0) publish(L);
    if (frc != IB_OK && train_rc == IB_OK) {
      train_rc = frc;
      snprintf(train_msg, sizeof train_msg, "%s", ib_errmsg());
    }
  }
  if (L->rank == 0) {
    runlog_summary s = {0};
    s.method = tcfg_method_name(L->tc.method);
    s.task = L->tc.task;
    s.env_steps = L->env_steps;
    s.final_eval_success = s.best_eval_success = s.il_eval_success = NAN;
    s.wall_s = L->wall_before + (ib_now_s() - L->t0);
    s.updates = (long)L->updates;
    s.seed = L->tc.seed;
    if (runlog_summary_write(L->tc.out, &s) != IB_OK) log_warn("%s", ib_errmsg());
    int prc = runlog_plot(L->tc.out);
    if (prc != IB_OK && !o->quiet) log_info("plot: %s", ib_errmsg());
    dist_stats ds;
    dist_stats_get(&ds);
    if (!o->quiet)
      log_info("done: %llu critic updates, %llu actor updates, weight version %llu, allreduce %.3f ms per update (%ld calls, "
               "%.1f MB each), waiting for batches %.3f ms per update (rank 0)",
               (unsigned long long)L->updates, (unsigned long long)L->actor_updates, (unsigned long long)L->weight_version,
               L->updates > L->updates0 ? 1e3 * ds.allreduce_s / (double)(L->updates - L->updates0) : 0.0, ds.allreduce_calls,
               ds.allreduce_calls ? ds.allreduce_bytes / ds.allreduce_calls / 1e6 : 0.0,
               L->updates > L->updates0 ? 1e3 * L->sample_s / (double)(L->updates - L->updates0) : 0.0);
  }
  if (train_rc != IB_OK) {
    ib_fail(train_rc, "%s", train_msg);
    rc = train_rc;
    code = 1;
    goto done;
  }
  code = 0;
  if (*stop && L->rank == 0) log_info("stopped by signal after %llu updates; final checkpoint written", (unsigned long long)L->updates);
done:
  if (code != 0 && ib_errmsg()[0]) log_error("%s", ib_errmsg());
  lrun_free(L);
  free(L);
  return code;
}
