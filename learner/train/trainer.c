/* trainer.c: the single-process actor-replay-learner loop (see trainer.h for the run's steps).
 *
 * Design.
 *  - Transitions. The chunk runner (actor/env/chunk.h) turns one action chunk into one
 *    transition with an in-chunk discounted reward and a bootstrap discount (0 when the episode
 *    ends: success or time limit, since IBRL treats timeouts as terminal). An episode is held in
 *    a preallocated buffer and pushed when it ends (the reference's replay only sees whole
 *    episodes). n-step items chain n consecutive chunk transitions:
 *      R_j = r_j + d_j r_{j+1} + d_j d_{j+1} r_{j+2} + ...,   D_j = d_j d_{j+1} ... d_{j+n-1},
 *    stopping at the episode end (D = 0), and next_obs is the next obs of the last link. Demos
 *    get the same chains from demo_transition, which matches the runner bit for bit.
 *  - Replay. ib_store with a "demo" table (sized to the demo transitions, never evicted) and an
 *    "online" FIFO table. The batch mix is the method's demo ratio: -1 (IBRL/RFT: uniform over
 *    the union, demos in the main replay without oversampling) or 0.5 (RLPD).
 *  - Randomness. Streams of (cfg.seed, "trainer", 0, name): "episode" (training episode
 *    seeds), "sample" (replay sampling), "random" (RLPD warm-up actions). The agent owns its
 *    own streams. Evaluation uses fixed episode seeds (evalr_seed0) and its own envs, so it never
 *    touches the training env; it does advance the agent's selection streams, at fixed points.
 *  - Checkpoints are taken at episode ends, so no env state has to be saved: replay (persist.h),
 *    agent (agent_save, all nets, Adam states, rngs, metrics) and this file's counters and rngs
 *    (state.bin, written last). Resume truncates metrics.csv to the checkpoint's env steps. */
#include "trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "chunk.h"
#include "demo.h"
#include "env.h"
#include "evalr.h"
#include "ib.h"
#include "il.h"
#include "ilfile.h"
#include "log.h"
#include "nstep.h"
#include "persist.h"
#include "rng.h"
#include "runlog.h"
#include "store.h"

#define STATE_MAGIC 0x52544249u /* "IBTR" */
#define STATE_VERSION 1u
#define CONFIG_MAGIC 0x43544249u /* "IBTC" */


/* mkdir -p: creates path and any missing parents (0777 before umask). Returns 0 or -1 with errno. */
static int mkdir_p(const char *path) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
  return 0;
}

/* Everything of the loop that a checkpoint must restore (written as one blob). */
typedef struct trainer_state {
  long env_steps, transitions, updates, episodes;
  long next_eval, next_ckpt;
  int ckpt_no;
  rng r_episode, r_sample, r_random;
  /* the metrics window since the last row */
  long win_eps, win_succ, win_cn, win_an;
  double win_closs, win_aloss, win_q;
  long act_il0, act_tot0, boot_il0, boot_tot0;
  double best_eval, last_eval, il_eval;
  double wall_s; /* wall time of the run up to this checkpoint */
  uint64_t store_epoch;
} trainer_state;

struct trainer {
  tcfg cfg;
  trainer_state s;
  env *e;
  chunk_runner cr;
  int frame_dim, step_dim, obs_dim, act_dim;
  demo_set demos;
  store *st;
  persist *ps;
  agent ag;
  int ag_ready;
  il_policy il;
  int have_il;
  ilfile_meta ilm;
  evalr ev;
  int eval_mode;           /* agent_mode used by evaluations; -1: the IL policy alone */
  store_batch batch, demo_batch;
  /* the current episode: up to ep_cap chunk transitions */
  int ep_cap, ep_len;
  float *ep_obs, *ep_act, *ep_rew, *ep_disc, *ep_next;
  uint8_t *ep_prop;
  store_item *items;
  float *obs, *next, *act;
  double t0;               /* ib_now_s() at open, minus the restored wall time */
  double ups_t;            /* for updates/s in progress lines */
  long ups_updates;
  double beat_t;           /* last progress line (ib_now_s) */
};

/* Seconds between progress lines when no evaluation happens (stderr only; metrics unaffected). */
#define TRAINER_BEAT_S 30.0

/* ---- small file helpers ---- */

static void path_join(char *out, size_t cap, const char *dir, const char *file) {
  int n = snprintf(out, cap, "%s/%s", dir, file);
  IB_CHECK(n > 0 && (size_t)n < cap);
}

/* Writes n bytes + CRC-32 atomically (path.tmp, fsync, rename). */
static int blob_write(const char *path, uint32_t magic, const void *data, size_t n) {
  char tmp[TCFG_STR + 80];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return ib_fail(IB_EIO, "cannot write %s: %s (HINT: check the run directory)", tmp, strerror(errno));
  uint32_t hdr[3] = {magic, STATE_VERSION, (uint32_t)n};
  uint32_t crc = ib_crc32(0, data, n);
  int ok = fwrite(hdr, sizeof hdr, 1, f) == 1 && fwrite(data, n, 1, f) == 1 && fwrite(&crc, 4, 1, f) == 1;
  ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (fclose(f) != 0) ok = 0;
  if (!ok) {
    remove(tmp);
    return ib_fail(IB_EIO, "writing %s failed (HINT: is the disk full?)", tmp);
  }
  if (rename(tmp, path) != 0) return ib_fail(IB_EIO, "cannot rename %s: %s", tmp, strerror(errno));
  return IB_OK;
}

static int blob_read(const char *path, uint32_t magic, void *data, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return ib_fail(IB_EIO, "cannot open %s: %s (HINT: is this an ibrl-train run directory?)", path, strerror(errno));
  uint32_t hdr[3], crc;
  int ok = fread(hdr, sizeof hdr, 1, f) == 1;
  int rc = IB_OK;
  if (!ok || hdr[0] != magic || hdr[1] != STATE_VERSION || hdr[2] != n)
    rc = ib_fail(IB_EPROTO, "%s: bad magic, version or size (HINT: written by another ibrl-train version?)", path);
  else if (fread(data, n, 1, f) != 1 || fread(&crc, 4, 1, f) != 1)
    rc = ib_fail(IB_EPROTO, "%s is truncated", path);
  else if (crc != ib_crc32(0, data, n))
    rc = ib_fail(IB_ECHECKSUM, "%s: checksum mismatch (HINT: the file is damaged)", path);
  fclose(f);
  return rc;
}

int trainer_config_load(tcfg *cfg, const char *run_dir) {
  char p[TCFG_STR + 64];
  path_join(p, sizeof p, run_dir, "config.bin");
  return blob_read(p, CONFIG_MAGIC, cfg, sizeof *cfg);
}

/* ---- n-step items ---- */

/* Builds the n-step items of the buffered episode and inserts them into the online table. */
static int episode_push(trainer *t, int success) {
  int n = t->ep_len, ns = t->cfg.nstep;
  size_t od = (size_t)t->obs_dim, ad = (size_t)t->act_dim;
  for (int j = 0; j < n; j++) {
    float R, D;
    int last = nstep_chain(&R, &D, t->ep_rew, t->ep_disc, n, j, ns);
    store_item *it = &t->items[j];
    memset(it, 0, sizeof *it);
    it->obs = t->ep_obs + j * od;
    it->action = t->ep_act + j * ad;
    it->next_obs = t->ep_next + last * od;
    it->obs_n = it->next_obs_n = (uint32_t)od;
    it->act_n = (uint32_t)ad;
    it->reward = R;
    it->discount = D;
    it->proposer = t->ep_prop[j];
    it->actor_id = 0;
    it->seq = STORE_SEQ_NONE;
    it->weight_version = (uint64_t)t->s.updates;
    it->episode_end = j == n - 1;
    it->episode_success = j == n - 1 && success;
  }
  int rc = store_insert(t->st, "online", t->items, (size_t)n, NULL);
  t->ep_len = 0;
  return rc;
}

/* All demo transitions (every start step of every demo) as n-step items into the demo table. */
static int demos_insert(trainer *t) {
  const demo_set *ds = &t->demos;
  int k = t->cfg.chunk, S = t->cfg.n_stack, ns = t->cfg.nstep;
  float g = t->cfg.gamma;
  size_t od = (size_t)t->obs_dim, ad = (size_t)t->act_dim;
  int cap = 1024, m = 0;
  float *obs = ib_xmalloc(cap * od * sizeof(float)), *act = ib_xmalloc(cap * ad * sizeof(float));
  float *next = ib_xmalloc(cap * od * sizeof(float));
  store_item *items = ib_xcalloc((size_t)cap, sizeof *items);
  int rc = IB_OK;
  for (int ep = 0; ep < ds->n_episodes && rc == IB_OK; ep++) {
    int T = ds->episodes[ep].T;
    for (int s0 = 0; s0 < T && rc == IB_OK; s0++) {
      float R, D;
      demo_transition_n(obs + m * od, act + m * ad, &R, &D, next + m * od, ds, ep, s0, k, S, g, ns);
      store_item *it = &items[m];
      memset(it, 0, sizeof *it);
      it->obs = obs + m * od;
      it->action = act + m * ad;
      it->next_obs = next + m * od;
      it->obs_n = it->next_obs_n = (uint32_t)od;
      it->act_n = (uint32_t)ad;
      it->reward = R;
      it->discount = D;
      it->proposer = STORE_PROPOSER_DEMO;
      it->actor_id = STORE_ACTOR_DEMO;
      it->seq = STORE_SEQ_NONE;
      it->episode_end = s0 == T - 1;
      it->episode_success = it->episode_end && ds->episodes[ep].rewards[T - 1] >= 1.0f;
      if (++m == cap) {
        rc = store_insert(t->st, "demo", items, (size_t)m, NULL);
        m = 0;
      }
    }
  }
  if (rc == IB_OK && m > 0) rc = store_insert(t->st, "demo", items, (size_t)m, NULL);
  free(obs);
  free(act);
  free(next);
  free(items);
  return rc;
}

/* ---- acting helpers ---- */

static int act_il(void *ctx, float *act, const float *obs, int B) {
  trainer *t = ctx;
  il_predict(&t->il, act, obs, B);
  return IB_OK;
}

static int act_agent_eval(void *ctx, float *act, const float *obs, int B) {
  trainer *t = ctx;
  return agent_act(&t->ag, act, NULL, obs, B, (agent_mode)t->eval_mode);
}

static int act_agent_rl(void *ctx, float *act, const float *obs, int B) {
  trainer *t = ctx;
  return agent_act(&t->ag, act, NULL, obs, B, AGENT_MODE_EVAL_RL);
}

/* ---- setup ---- */

static int setup_agent(trainer *t) {
  const tcfg *c = &t->cfg;
  agent_config ac;
  tcfg_agent_config(&ac, c, t->have_il ? &t->ilm.il : NULL, t->obs_dim, t->act_dim,
                    IB_MAX(c->batch, c->eval_episodes));
  int rc = agent_init(&t->ag, &ac);
  if (rc != IB_OK) return rc;
  t->ag_ready = 1;
  if (t->have_il && (ac.method == AGENT_IBRL || ac.method == AGENT_BC)) rc = agent_il_set(&t->ag, &t->il);
  if (rc != IB_OK) return rc;
  t->eval_mode = tcfg_eval_mode(c);
  return t->eval_mode < 0 ? IB_EINVAL : IB_OK;
}

static const char *env_keys_csv(char *buf, size_t cap, const env *e) {
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < e->n_obs_keys && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", e->obs_keys[i].name);
  return buf;
}

static int setup(trainer *t, int resume) {
  tcfg *c = &t->cfg;
  int rc;
  env_config ecfg = {0};
  ecfg.horizon = c->horizon;
  if ((rc = env_create(c->task, &ecfg, &t->e)) != IB_OK) return rc;
  chunk_config cc = chunk_config_default();
  cc.k = c->chunk;
  cc.n_stack = c->n_stack;
  cc.gamma = c->gamma;
  cc.horizon = c->horizon;
  if ((rc = chunk_runner_init(&t->cr, t->e, &cc)) != IB_OK) return rc;
  t->frame_dim = t->e->obs_dim;
  t->step_dim = t->e->act_dim;
  t->obs_dim = chunk_obs_dim(&t->cr);
  t->act_dim = chunk_act_dim(&t->cr);

  /* The IL policy: its shapes must be the run's. */
  if (c->il[0]) {
    if ((rc = ilfile_load(&t->il, &t->ilm, c->il, IB_MAX(c->batch, c->eval_episodes))) != IB_OK) return rc;
    t->have_il = 1;
    if (t->ilm.frame_dim != t->frame_dim || t->ilm.step_dim != t->step_dim || t->ilm.chunk != c->chunk ||
        t->ilm.n_stack != c->n_stack)
      return ib_fail(IB_EMISMATCH,
                     "IL policy %s was trained for frame %d, action %d, chunk %d, stack %d; this run has frame %d "
                     "(task %s), action %d, chunk %d, stack %d (HINT: retrain it with ibrl-il train --chunk %d "
                     "--n-stack %d on demos of %s)",
                     c->il, t->ilm.frame_dim, t->ilm.step_dim, t->ilm.chunk, t->ilm.n_stack, t->frame_dim, c->task,
                     t->step_dim, c->chunk, c->n_stack, c->chunk, c->n_stack, c->task);
  } else if (tcfg_method_uses_il(c->method)) {
    return ib_fail(IB_EINVAL, "method %s needs an IL policy (HINT: pass --il il.ckpt from ibrl-il train)",
                   tcfg_method_name(c->method));
  }

  /* Demos, with the env's obs keys in the env's order unless told otherwise. */
  if (c->method != TCFG_BC) {
    if (!c->demos[0]) return ib_fail(IB_EINVAL, "no demo file given (HINT: pass --demos F.hdf5 from ibrl-demos generate)");
    char keys[TCFG_STR];
    demo_load_opts o = {0};
    o.obs_keys = c->obs_keys[0] ? c->obs_keys : env_keys_csv(keys, sizeof keys, t->e);
    o.cut_at_success = 1;
    o.max_episodes = c->max_demos;
    if ((rc = demo_load(&t->demos, c->demos, &o)) != IB_OK) return rc;
    if (t->demos.obs_dim != t->frame_dim || t->demos.act_dim != t->step_dim)
      return ib_fail(IB_EMISMATCH, "demos %s have obs %d / action %d floats, task %s has %d / %d (HINT: demos of another task?)",
                     c->demos, t->demos.obs_dim, t->demos.act_dim, c->task, t->frame_dim, t->step_dim);
  }

  /* Evaluation envs. */
  if ((rc = evalr_init(&t->ev, c->task, &ecfg, &cc, c->eval_episodes)) != IB_OK) return rc;
  if (c->method == TCFG_BC) {
    t->eval_mode = -1;
    if (!resume && mkdir_p(c->out) != 0)
      return ib_fail(IB_EIO, "cannot create run directory %s: %s (HINT: is the path writable?)", c->out, strerror(errno));
    return IB_OK;
  }

  /* Replay tables the machine cannot hold are a setting to fix: refuse them now, before the run
   * directory appears, instead of aborting in store_create ("out of memory", SIGABRT). */
  store_spec specs[2];
  uint64_t demo_cap = (uint64_t)IB_MAX(t->demos.total_steps, 1);
  store_specs_default(specs, t->obs_dim, t->act_dim, demo_cap, (uint64_t)c->replay_capacity);
  int by_rlimit = 0;
  uint64_t need = store_spec_bytes(&specs[0], NULL) + store_spec_bytes(&specs[1], NULL);
  uint64_t have = ib_mem_limit(&by_rlimit);
  if (have != 0 && need > have) {
    const double gib = 1024.0 * 1024.0 * 1024.0;
    return ib_fail(IB_EINVAL, "--replay %ld: the replay tables need %.1f GiB, this machine has %.1f GiB%s (HINT: lower "
                   "--replay)", c->replay_capacity, (double)need / gib, (double)have / gib,
                   by_rlimit ? " under this process's address-space limit (ulimit -v)" : "");
  }

  /* Only now, with the task, IL policy and demos checked, does the run directory appear. */
  if (!resume && mkdir_p(c->out) != 0)
    return ib_fail(IB_EIO, "cannot create run directory %s: %s (HINT: is the path writable?)", c->out, strerror(errno));

  /* Replay: demo table + online table (specs above), restored on resume. */
  if ((rc = store_create(&t->st, specs, 2, NULL)) != IB_OK) return rc;
  char rdir[TCFG_STR + 64];
  path_join(rdir, sizeof rdir, c->out, "replay");
  persist_restore_info ri;
  if ((rc = persist_open(&t->ps, t->st, rdir, PERSIST_CKPT_ONLY, &ri)) != IB_OK) return rc;
  if (!resume && ri.ckpt_found) return ib_fail(IB_ESTATE, "%s already holds a replay checkpoint", rdir);
  if (resume && !ri.ckpt_found)
    return ib_fail(IB_ENOTFOUND, "%s has no replay checkpoint (HINT: the run stopped before its first checkpoint; start it again)",
                   rdir);
  if (resume && ri.ckpt_epoch != t->s.store_epoch)
    return ib_fail(IB_EMISMATCH, "%s: replay checkpoint epoch %" PRIu64 " but state.bin expects %" PRIu64
                   " (HINT: the run was killed while checkpointing; its previous checkpoint is lost)",
                   rdir, ri.ckpt_epoch, t->s.store_epoch);
  if (!resume && (rc = demos_insert(t)) != IB_OK) return rc;

  store_batch_init(&t->batch, (uint32_t)c->batch, t->obs_dim, t->act_dim);
  store_batch_init(&t->demo_batch, (uint32_t)c->batch, t->obs_dim, t->act_dim);

  if ((rc = setup_agent(t)) != IB_OK) return rc;

  /* The episode buffer: at most one transition per env step. */
  t->ep_cap = t->cr.cfg.horizon + 1;
  size_t od = (size_t)t->obs_dim, ad = (size_t)t->act_dim;
  t->ep_obs = ib_xmalloc(t->ep_cap * od * sizeof(float));
  t->ep_next = ib_xmalloc(t->ep_cap * od * sizeof(float));
  t->ep_act = ib_xmalloc(t->ep_cap * ad * sizeof(float));
  t->ep_rew = ib_xmalloc(t->ep_cap * sizeof(float));
  t->ep_disc = ib_xmalloc(t->ep_cap * sizeof(float));
  t->ep_prop = ib_xmalloc((size_t)t->ep_cap);
  t->items = ib_xcalloc((size_t)t->ep_cap, sizeof *t->items);
  return IB_OK;
}

/* ---- checkpoints ---- */

static int checkpoint(trainer *t) {
  char p[TCFG_STR + 64], old[TCFG_STR + 64];
  persist_ckpt_info pi;
  int rc = persist_checkpoint(t->ps, &pi);
  if (rc != IB_OK) return rc;
  t->s.store_epoch = pi.epoch;
  snprintf(old, sizeof old, "%s/agent-%d.ckpt", t->cfg.out, t->s.ckpt_no);
  t->s.ckpt_no++;
  snprintf(p, sizeof p, "%s/agent-%d.ckpt", t->cfg.out, t->s.ckpt_no);
  if ((rc = agent_save(&t->ag, p)) != IB_OK) return rc;
  t->s.wall_s = ib_now_s() - t->t0;
  path_join(p, sizeof p, t->cfg.out, "state.bin");
  if ((rc = blob_write(p, STATE_MAGIC, &t->s, sizeof t->s)) != IB_OK) return rc;
  remove(old); /* the previous agent file is no longer named by state.bin */
  return IB_OK;
}

static int restore(trainer *t) {
  char p[TCFG_STR + 64];
  path_join(p, sizeof p, t->cfg.out, "state.bin");
  int rc = blob_read(p, STATE_MAGIC, &t->s, sizeof t->s);
  if (rc != IB_OK) return rc;
  return IB_OK;
}

/* ---- metrics ---- */

static double ratio(long a, long b) { return b > 0 ? (double)a / (double)b : NAN; }

static int eval_and_log(trainer *t) {
  trainer_state *s = &t->s;
  agent_metrics *m = &t->ag.metrics;
  long e_il0 = m->act_il, e_tot0 = m->act_total;
  double succ;
  int rc = evalr_run(&t->ev, &succ, evalr_seed0(t->cfg.seed), act_agent_eval, t);
  if (rc != IB_OK) return rc;
  long e_il = m->act_il - e_il0, e_tot = m->act_total - e_tot0;
  runlog_row row;
  row.env_steps = s->env_steps;
  row.wall_s = ib_now_s() - t->t0;
  row.updates = s->updates;
  row.episodes = s->episodes;
  row.eval_success = succ;
  row.train_success = ratio(s->win_succ, s->win_eps);
  row.il_win_act = ratio(e_il0 - s->act_il0, e_tot0 - s->act_tot0);
  row.il_win_bootstrap = ratio(m->boot_il - s->boot_il0, m->boot_total - s->boot_tot0);
  row.il_win_eval = ratio(e_il, e_tot);
  row.critic_loss = s->win_cn ? s->win_closs / s->win_cn : NAN;
  row.q_mean = s->win_cn ? s->win_q / s->win_cn : NAN;
  row.actor_loss = s->win_an ? s->win_aloss / s->win_an : NAN;
  if ((rc = runlog_append(t->cfg.out, &row)) != IB_OK) return rc;
  s->last_eval = succ;
  if (succ > s->best_eval) s->best_eval = succ;
  double now = ib_now_s();
  double ups = now > t->ups_t ? (double)(s->updates - t->ups_updates) / (now - t->ups_t) : 0;
  t->ups_t = t->beat_t = now;
  t->ups_updates = s->updates;
  if (!t->cfg.quiet)
    log_info("steps %ld/%ld | %.1f upd/s | eval %.2f train %.2f | il-win act %.2f boot %.2f | critic %.4g actor %.4g q %.3g",
             s->env_steps, t->cfg.env_steps, ups, succ, row.train_success, row.il_win_act, row.il_win_bootstrap,
             row.critic_loss, row.actor_loss, row.q_mean);
  /* open a new window */
  s->win_eps = s->win_succ = s->win_cn = s->win_an = 0;
  s->win_closs = s->win_aloss = s->win_q = 0;
  s->act_il0 = m->act_il;
  s->act_tot0 = m->act_total;
  s->boot_il0 = m->boot_il;
  s->boot_tot0 = m->boot_total;
  return IB_OK;
}

/* ---- the loop ---- */

static int learn_step(trainer *t) {
  const tcfg *c = &t->cfg;
  trainer_state *s = &t->s;
  int rc;
  agent_batch ab = {0};
  for (int g = 0; g < c->critic_updates; g++) {
    if ((rc = store_sample(t->st, &s->r_sample, (uint32_t)c->batch, c->demo_ratio, &t->batch)) != IB_OK) return rc;
    ab.obs = t->batch.obs;
    ab.action = t->batch.action;
    ab.reward = t->batch.reward;
    ab.discount = t->batch.discount;
    ab.next_obs = t->batch.next_obs;
    ab.n = (int)t->batch.n;
    if ((rc = agent_critic_update(&t->ag, &ab)) != IB_OK) return rc;
    s->updates++;
    s->win_closs += t->ag.metrics.critic_loss;
    s->win_q += t->ag.metrics.q_mean;
    s->win_cn++;
  }
  agent_batch db = {0}, *dbp = NULL;
  if (c->method == TCFG_RFT) {
    if ((rc = store_sample(t->st, &s->r_sample, (uint32_t)c->batch, 1.0, &t->demo_batch)) != IB_OK) return rc;
    db.obs = t->demo_batch.obs;
    db.action = t->demo_batch.action;
    db.reward = t->demo_batch.reward;
    db.discount = t->demo_batch.discount;
    db.next_obs = t->demo_batch.next_obs;
    db.n = (int)t->demo_batch.n;
    dbp = &db;
  }
  if ((rc = agent_actor_update(&t->ag, &ab, dbp)) != IB_OK) return rc;
  s->win_aloss += t->ag.metrics.actor_loss;
  s->win_an++;
  return IB_OK;
}

/* Runs one whole episode with a fixed warm-up policy and pushes it (not counted). */
static int warmup_episode(trainer *t) {
  const tcfg *c = &t->cfg;
  trainer_state *s = &t->s;
  size_t od = (size_t)t->obs_dim, ad = (size_t)t->act_dim;
  int rc = chunk_reset(&t->cr, rng_u64(&s->r_episode), t->obs);
  if (rc != IB_OK) return rc;
  t->ep_len = 0;
  chunk_result res = {0};
  while (!res.done) {
    uint8_t prop;
    if (c->method == TCFG_RLPD) {
      for (size_t i = 0; i < ad; i++) t->act[i] = 2.0f * rng_uniform(&s->r_random) - 1.0f;
      prop = STORE_PROPOSER_RL;
    } else if (c->method == TCFG_RFT) {
      if ((rc = agent_act(&t->ag, t->act, NULL, t->obs, 1, AGENT_MODE_EVAL_RL)) != IB_OK) return rc;
      prop = STORE_PROPOSER_RL;
    } else {
      il_predict(&t->il, t->act, t->obs, 1);
      prop = STORE_PROPOSER_IL;
    }
    if ((rc = chunk_step(&t->cr, &res, t->next, t->act)) != IB_OK) return rc;
    int j = t->ep_len++;
    memcpy(t->ep_obs + j * od, t->obs, od * sizeof(float));
    memcpy(t->ep_act + j * ad, t->act, ad * sizeof(float));
    memcpy(t->ep_next + j * od, t->next, od * sizeof(float));
    t->ep_rew[j] = res.reward;
    t->ep_disc[j] = res.discount;
    t->ep_prop[j] = prop;
    memcpy(t->obs, t->next, od * sizeof(float));
  }
  return episode_push(t, t->cr.success);
}

static int rft_pretrain(trainer *t) {
  const tcfg *c = &t->cfg;
  int rc;
  for (long i = 0; i < c->rft_pretrain_steps; i++) {
    if ((rc = store_sample(t->st, &t->s.r_sample, (uint32_t)c->batch, 1.0, &t->demo_batch)) != IB_OK) return rc;
    if ((rc = agent_actor_bc_step(&t->ag, t->demo_batch.obs, t->demo_batch.action, (int)t->demo_batch.n)) != IB_OK)
      return rc;
    if (!c->quiet && (i + 1) % IB_MAX(1, c->rft_pretrain_steps / 5) == 0)
      log_info("rft pretrain %ld/%ld: bc loss %.4g", i + 1, c->rft_pretrain_steps, t->ag.metrics.pretrain_loss);
  }
  agent_actor_sync(&t->ag);
  return IB_OK;
}

/* BC: the IL policy alone, evaluated once; the curve is flat by construction. */
static int run_bc(trainer *t) {
  double succ;
  int rc = evalr_run(&t->ev, &succ, evalr_seed0(t->cfg.seed), act_il, t);
  if (rc != IB_OK) return rc;
  runlog_row row = {0};
  row.eval_success = succ;
  row.train_success = row.il_win_act = row.il_win_bootstrap = row.critic_loss = row.actor_loss = row.q_mean = NAN;
  row.il_win_eval = 1.0;
  row.wall_s = ib_now_s() - t->t0;
  if ((rc = runlog_append(t->cfg.out, &row)) != IB_OK) return rc;
  row.env_steps = t->cfg.env_steps;
  if ((rc = runlog_append(t->cfg.out, &row)) != IB_OK) return rc;
  t->s.il_eval = t->s.last_eval = t->s.best_eval = succ;
  t->s.env_steps = t->cfg.env_steps;
  if (!t->cfg.quiet) log_info("bc: IL policy eval success %.2f over %d episodes", succ, t->cfg.eval_episodes);
  return IB_OK;
}

int trainer_run(trainer *t, int *stopped) {
  const tcfg *c = &t->cfg;
  trainer_state *s = &t->s;
  int rc = IB_OK;
  *stopped = 0;
  if (c->method == TCFG_BC) {
    if ((rc = run_bc(t)) != IB_OK) return rc;
    goto summary;
  }
  size_t od = (size_t)t->obs_dim, ad = (size_t)t->act_dim;
  if (s->env_steps == 0 && s->ckpt_no == 0) {
    /* a fresh run: pretraining, IL reference score, warm-up, the first evaluation */
    if (c->method == TCFG_RFT && (rc = rft_pretrain(t)) != IB_OK) return rc;
    s->il_eval = NAN;
    if (t->have_il) {
      if ((rc = evalr_run(&t->ev, &s->il_eval, evalr_seed0(c->seed), act_il, t)) != IB_OK) return rc;
    } else if (c->method == TCFG_RFT) {
      if ((rc = evalr_run(&t->ev, &s->il_eval, evalr_seed0(c->seed), act_agent_rl, t)) != IB_OK) return rc;
    }
    if (!c->quiet && isfinite(s->il_eval)) log_info("IL policy eval success %.2f (%d episodes)", s->il_eval, c->eval_episodes);
    for (int w = 0; w < c->warmup_episodes; w++) {
      if ((rc = warmup_episode(t)) != IB_OK) return rc;
      if (!c->quiet && ((w + 1) % IB_MAX(1, c->warmup_episodes / 4) == 0 || w + 1 == c->warmup_episodes))
        log_info("warm-up %d/%d episodes", w + 1, c->warmup_episodes);
    }
    s->next_eval = 0;
    s->next_ckpt = c->ckpt_every;
    s->best_eval = -1;
    t->ups_t = ib_now_s();
  }
  int running = 0;
  chunk_result res;
  for (;;) {
    if (s->next_eval <= s->env_steps) {
      if ((rc = eval_and_log(t)) != IB_OK) return rc;
      while (s->next_eval <= s->env_steps) s->next_eval += c->eval_every;
      /* the last row is always at the end of the budget */
      if (s->next_eval > c->env_steps && s->env_steps < c->env_steps) s->next_eval = c->env_steps;
    }
    if (!running && s->env_steps >= s->next_ckpt && s->env_steps < c->env_steps) {
      /* advance first: the saved state must not ask for this checkpoint again */
      s->next_ckpt = (s->env_steps / c->ckpt_every + 1) * c->ckpt_every;
      if ((rc = checkpoint(t)) != IB_OK) return rc;
      if (!c->quiet) log_info("checkpoint %d at %ld env steps", s->ckpt_no, s->env_steps);
      if (c->stop_after > 0 && s->env_steps >= c->stop_after) {
        *stopped = 1;
        return IB_OK;
      }
    }
    if (s->env_steps >= c->env_steps) break;
    if (!running) {
      if ((rc = chunk_reset(&t->cr, rng_u64(&s->r_episode), t->obs)) != IB_OK) return rc;
      t->ep_len = 0;
      running = 1;
    }
    uint8_t prop = STORE_PROPOSER_RL;
    if ((rc = agent_act(&t->ag, t->act, &prop, t->obs, 1, AGENT_MODE_EXPLORE)) != IB_OK) return rc;
    if ((rc = chunk_step(&t->cr, &res, t->next, t->act)) != IB_OK) return rc;
    int j = t->ep_len++;
    memcpy(t->ep_obs + j * od, t->obs, od * sizeof(float));
    memcpy(t->ep_act + j * ad, t->act, ad * sizeof(float));
    memcpy(t->ep_next + j * od, t->next, od * sizeof(float));
    t->ep_rew[j] = res.reward;
    t->ep_disc[j] = res.discount;
    t->ep_prop[j] = prop;
    memcpy(t->obs, t->next, od * sizeof(float));
    s->env_steps += res.steps;
    s->transitions++;
    if (res.done) {
      if ((rc = episode_push(t, t->cr.success)) != IB_OK) return rc;
      s->episodes++;
      s->win_eps++;
      s->win_succ += t->cr.success;
      running = 0;
    }
    if (s->transitions % c->update_every == 0 && (rc = learn_step(t)) != IB_OK) return rc;
    if (!c->quiet && (s->transitions & 63) == 0 && ib_now_s() - t->beat_t > TRAINER_BEAT_S) {
      double now = ib_now_s();
      log_info("steps %ld/%ld | %.1f upd/s | %ld episodes, train success %.2f | critic %.4g actor %.4g", s->env_steps,
               c->env_steps, (double)(s->updates - t->ups_updates) / (now - t->ups_t), s->episodes,
               ratio(s->win_succ, s->win_eps), s->win_cn ? s->win_closs / s->win_cn : NAN,
               s->win_an ? s->win_aloss / s->win_an : NAN);
      t->beat_t = now;
    }
  }
summary:;
  runlog_summary sm = {0};
  sm.method = tcfg_method_name(c->method);
  sm.task = c->task;
  sm.env_steps = s->env_steps;
  sm.final_eval_success = s->last_eval;
  sm.best_eval_success = s->best_eval;
  sm.il_eval_success = s->il_eval;
  sm.wall_s = ib_now_s() - t->t0;
  sm.updates = s->updates;
  sm.seed = (unsigned long long)c->seed;
  if ((rc = runlog_summary_write(c->out, &sm)) != IB_OK) return rc;
  rc = runlog_plot(c->out);
  if (rc == RUNLOG_PLOT_EMPTY) log_info("%s", ib_errmsg());
  else if (rc != IB_OK) log_warn("%s", ib_errmsg());
  if (!c->quiet)
    log_info("done: %s on %s, %ld env steps, final eval success %.2f (IL alone %.2f), %.0f s", sm.method, sm.task,
             sm.env_steps, sm.final_eval_success, sm.il_eval_success, sm.wall_s);
  return IB_OK;
}

/* ---- open / close ---- */

/* Replaces the file path in buf (capacity cap) by its absolute form when it resolves and fits. */
static void abs_path(char *buf, size_t cap) {
  if (!buf[0]) return;
  char *r = realpath(buf, NULL);
  if (r && strlen(r) < cap) memcpy(buf, r, strlen(r) + 1);
  free(r);
}

int trainer_open(trainer **out, const tcfg *cfg, int resume) {
  *out = NULL;
  trainer *t = ib_xcalloc(1, sizeof *t);
  t->cfg = *cfg;
  tcfg *c = &t->cfg;
  int rc;
  char p[TCFG_STR + 64];
  if (!c->out[0]) {
    rc = ib_fail(IB_EINVAL, "no run directory given (HINT: pass --out RUN_DIR)");
    goto fail;
  }
  if (!resume) {
    /* A run names its inputs by absolute path, so --resume works from any directory. A path
     * that does not resolve stays as given: setup reports it. */
    abs_path(c->demos, sizeof c->demos);
    abs_path(c->il, sizeof c->il);
    path_join(p, sizeof p, c->out, "config.bin");
    if (access(p, F_OK) == 0) {
      rc = ib_fail(IB_ESTATE, "%s already holds a run (HINT: continue it with --resume %s, or choose another --out)", c->out,
                   c->out);
      goto fail;
    }
  } else if ((rc = restore(t)) != IB_OK) {
    goto fail;
  }
  size_t od, ad;
  if ((rc = setup(t, resume)) != IB_OK) goto fail;
  od = (size_t)t->obs_dim;
  ad = (size_t)t->act_dim;
  t->obs = ib_xcalloc(od, sizeof(float));
  t->next = ib_xcalloc(od, sizeof(float));
  t->act = ib_xcalloc(ad, sizeof(float));
  if (!resume) {
    rng_seed(&t->s.r_episode, c->seed, "trainer", 0, "episode");
    rng_seed(&t->s.r_sample, c->seed, "trainer", 0, "sample");
    rng_seed(&t->s.r_random, c->seed, "trainer", 0, "random");
    path_join(p, sizeof p, c->out, "config.json");
    if ((rc = tcfg_write_json(c, t->have_il ? &t->ilm : NULL, p)) != IB_OK) goto fail;
    path_join(p, sizeof p, c->out, "config.bin");
    if ((rc = blob_write(p, CONFIG_MAGIC, c, sizeof *c)) != IB_OK) goto fail;
    if ((rc = runlog_create(c->out)) != IB_OK) goto fail;
    t->t0 = ib_now_s();
  } else {
    if (c->method != TCFG_BC) {
      snprintf(p, sizeof p, "%s/agent-%d.ckpt", c->out, t->s.ckpt_no);
      if ((rc = agent_load(&t->ag, p)) != IB_OK) goto fail;
    }
    if ((rc = runlog_truncate(c->out, t->s.env_steps)) != IB_OK) goto fail;
    /* config.json tells the truth about the resumed run too (env_steps may have grown) */
    path_join(p, sizeof p, c->out, "config.json");
    if ((rc = tcfg_write_json(c, t->have_il ? &t->ilm : NULL, p)) != IB_OK) goto fail;
    t->t0 = ib_now_s() - t->s.wall_s;
    if (!c->quiet) log_info("resumed %s at %ld env steps (checkpoint %d)", c->out, t->s.env_steps, t->s.ckpt_no);
  }
  t->ups_t = ib_now_s();
  t->ups_updates = t->s.updates;
  *out = t;
  return IB_OK;
fail:
  trainer_close(t);
  return rc;
}

void trainer_close(trainer *t) {
  if (!t) return;
  if (t->ps) persist_close(t->ps);
  store_destroy(t->st);
  store_batch_free(&t->batch);
  store_batch_free(&t->demo_batch);
  if (t->ag_ready) agent_free(&t->ag);
  il_free(&t->il);
  evalr_free(&t->ev);
  demo_set_free(&t->demos);
  chunk_runner_free(&t->cr);
  env_destroy(t->e);
  free(t->ep_obs);
  free(t->ep_next);
  free(t->ep_act);
  free(t->ep_rew);
  free(t->ep_disc);
  free(t->ep_prop);
  free(t->items);
  free(t->obs);
  free(t->next);
  free(t->act);
  free(t);
}
