/* actx.c: the setup the actor's roles share (arun_impl.h).
 *
 * Design. Shapes come from the same tcfg the learner uses (preset + flags), so the acting-only
 * agent has exactly the learner's acting arena; the weight blob (wblob.h) re-checks method,
 * backbone, dims and float count on every version, so a mismatch is found at the first
 * publish, named, and stops the actor instead of acting with garbage. The IL policy comes from
 * its checkpoint (ilfile.h) because the actor must act before the first weights arrive; its
 * frame/action/chunk/stack must be the run's. Every shard's dims are checked at start (the
 * actor may start before the replay: Info is retried until o->wait_s). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "arun_impl.h"
#include "env.h"
#include "ib.h"
#include "log.h"
#include "wblob.h"

void arun__nap(arun_ctx *x, double s) {
  double end = ib_now_s() + s;
  while (!*x->stop) {
    double left = end - ib_now_s();
    if (left <= 0) break;
    double d = left < 0.05 ? left : 0.05;
    struct timespec ts = {0, (long)(d * 1e9)};
    nanosleep(&ts, NULL);
  }
}

int arun__setup_code(int rc) {
  /* A replay that cannot be reached is the world's state (1); anything else found at setup (a
   * task, a file, a shape) is a setting to fix (2). */
  return rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT ? 1 : 2;
}

int arun__info_wait(arun_ctx *x, int shard, rc_shard_info *info) {
  double t0 = ib_now_s(), backoff = 0.1;
  int warned = 0;
  for (;;) {
    int rc = rc_info_get(x->rc, shard, info);
    if (rc == IB_OK) return IB_OK;
    /* Anything but unreachable (a refused token, a protocol mismatch) fails at once with the
     * client's message, which carries the HINT for its cause. */
    if (rc != IB_EUNAVAIL && rc != IB_ETIMEDOUT) return rc;
    /* Unreachable for --wait seconds: the client's message says what to check (its HINT); add the
     * retry budget as a plain fact, or the HINT when the message has none. One HINT per message. */
    if (ib_now_s() - t0 > x->o->wait_s || *x->stop) {
      if (strstr(ib_errmsg(), "HINT") != NULL)
        return ib_fail(rc, "%s; retried for %.0f s (--wait)", ib_errmsg(), ib_now_s() - t0);
      return ib_fail(rc, "%s (HINT: is ibrl-replay running at %s? raise --wait for slow starts)", ib_errmsg(),
                     rc_client_target(x->rc, shard));
    }
    if (!warned) log_warn("replay shard %s not reachable yet (%s); retrying", rc_client_target(x->rc, shard), ib_errmsg());
    warned = 1;
    arun__nap(x, backoff);
    backoff = fmin(backoff * 2.0, 2.0);
  }
}

static int setup_dims(arun_ctx *x) {
  env *e = NULL;
  env_config ec = {0};
  ec.horizon = x->tc.horizon;
  int rc = env_create(x->tc.task, &ec, &e);
  if (rc != IB_OK) return rc;
  x->frame_dim = e->obs_dim;
  x->step_dim = e->act_dim;
  env_destroy(e);
  x->obs_dim = x->frame_dim * x->tc.n_stack;
  x->act_dim = x->step_dim * x->tc.chunk;
  return IB_OK;
}

static int setup_il(arun_ctx *x, int max_batch) {
  const tcfg *c = &x->tc;
  x->uses_il = tcfg_method_uses_il(c->method);
  if (!x->uses_il) return IB_OK;
  if (!c->il[0])
    return ib_fail(IB_EINVAL, "--method %s needs the IL policy (HINT: pass --il IL.ckpt written by `ibrl-il train`)",
                   tcfg_method_name(c->method));
  int rc = ilfile_load(&x->il, &x->ilm, c->il, max_batch);
  if (rc != IB_OK) return rc;
  x->have_il = 1;
  if (x->ilm.frame_dim != x->frame_dim || x->ilm.step_dim != x->step_dim || x->ilm.chunk != c->chunk ||
      x->ilm.n_stack != c->n_stack)
    return ib_fail(IB_EMISMATCH,
                   "IL policy %s was trained for frame %d, action %d, chunk %d, stack %d; this actor has frame %d "
                   "(task %s), action %d, chunk %d, stack %d (HINT: retrain it with ibrl-il train --chunk %d --n-stack %d "
                   "on demos of %s, or fix --task/--preset)",
                   c->il, x->ilm.frame_dim, x->ilm.step_dim, x->ilm.chunk, x->ilm.n_stack, x->frame_dim, c->task,
                   x->step_dim, c->chunk, c->n_stack, c->chunk, c->n_stack, c->task);
  return IB_OK;
}

static int setup_agent(arun_ctx *x, int max_batch) {
  const tcfg *c = &x->tc;
  if (c->method == TCFG_RFT || c->method == TCFG_BC)
    return ib_fail(IB_EINVAL, "--method %s is not run by the distributed system (HINT: use ibrl-train for rft and bc; "
                   "the actors run ibrl, its ablations and rlpd)", tcfg_method_name(c->method));
  agent_config ac;
  tcfg_agent_config(&ac, c, &x->il.cfg, x->obs_dim, x->act_dim, max_batch);
  ac.acting_only = 1;
  /* Acting streams (noise, head subsets, soft selection) differ per actor and from the
   * learner's (rank 0..N-1 of role "agent"). */
  ac.rank = 100000 + (int)(x->o->actor_id % 100000u);
  int rc = agent_init(&x->ag, &ac);
  if (rc != IB_OK) return rc;
  x->ag_ready = 1;
  if (x->uses_il && (rc = agent_il_set(&x->ag, &x->il)) != IB_OK) return rc;
  x->eval_mode = tcfg_eval_mode(c);
  return x->eval_mode < 0 ? IB_EINVAL : IB_OK;
}

static int setup_clients(arun_ctx *x) {
  rc_opts ro = {0};
  ro.shards = x->o->replay;
  ro.token = x->o->token[0] ? x->o->token : NULL;
  ro.deadline_ms = x->o->deadline_ms;
  ro.seed = x->tc.seed ^ ((uint64_t)x->o->actor_id * 0x9e3779b97f4a7c15ull);
  int rc = rc_client_open(&x->rc, &ro);
  if (rc != IB_OK) return rc;
  x->pc = x->rc;
  x->params_shard = 0;
  if (x->o->params[0]) {
    int found = -1;
    for (int s = 0; s < rc_client_shard_count(x->rc); s++)
      if (strcmp(rc_client_target(x->rc, s), x->o->params) == 0) found = s;
    if (found >= 0) {
      x->params_shard = found;
    } else {
      rc_opts po = ro;
      po.shards = x->o->params;
      if ((rc = rc_client_open(&x->pc, &po)) != IB_OK) {
        x->pc = x->rc;
        return rc;
      }
    }
  }
  return IB_OK;
}

int arun__open(arun_ctx *x, const arun_opts *o, const tcfg *tc, volatile sig_atomic_t *stop, int max_batch) {
  memset(x, 0, sizeof *x);
  x->o = o;
  x->tc = *tc;
  x->stop = stop;
  x->t0 = ib_now_s();
  int rc;
  if ((rc = setup_dims(x)) != IB_OK) return rc;
  if ((rc = setup_il(x, max_batch)) != IB_OK) return rc;
  if ((rc = setup_agent(x, max_batch)) != IB_OK) return rc;
  if ((rc = setup_clients(x)) != IB_OK) return rc;
  for (int s = 0; s < rc_client_shard_count(x->rc); s++) {
    rc_shard_info info;
    if ((rc = arun__info_wait(x, s, &info)) != IB_OK) return rc;
    if (info.obs_dim != x->obs_dim || info.act_dim != x->act_dim)
      return ib_fail(IB_EMISMATCH, "replay shard %s holds obs_dim %d act_dim %d but this actor makes %d %d (task %s, "
                     "chunk %d, stack %d) (HINT: start the shards with --obs-dim %d --act-dim %d, or fix --task/--preset)",
                     rc_client_target(x->rc, s), info.obs_dim, info.act_dim, x->obs_dim, x->act_dim, x->tc.task,
                     x->tc.chunk, x->tc.n_stack, x->obs_dim, x->act_dim);
  }
  return wpoll_start(&x->wp, x->pc, x->params_shard, o->poll_ms);
}

int arun__weights_update(arun_ctx *x) {
  if (!wpoll_take(x->wp, &x->blob, x->version)) return 0;
  wblob_header h;
  int rc = wblob_unpack(&x->ag, &h, x->blob.data, x->blob.len);
  if (rc == IB_ECHECKSUM || rc == IB_ENONFINITE) {
    log_warn("weights version %llu skipped: %s (keeping version %llu)", (unsigned long long)x->blob.version, ib_errmsg(),
             (unsigned long long)x->version);
    return 0;
  }
  if (rc != IB_OK) /* one HINT: the blob check's own (it names the field) when it gave one */
    return ib_fail(rc, "weights version %llu from %s cannot be used: %s%s", (unsigned long long)x->blob.version,
                   rc_client_target(x->pc, x->params_shard), ib_errmsg(),
                   strstr(ib_errmsg(), "HINT") ? "" : " (HINT: start the actors with the learner's --preset, --method, "
                   "--task and network sizes)");
  if (x->version == 0 && !x->o->quiet)
    log_info("first weights: version %llu (learner at %llu updates); warm-up over", (unsigned long long)h.weight_version,
             (unsigned long long)h.updates);
  x->version = h.weight_version;
  x->updates = h.updates;
  return 1;
}

void arun__close(arun_ctx *x) {
  wpoll_stop(x->wp);
  x->wp = NULL;
  if (x->pc && x->pc != x->rc) rc_client_close(x->pc);
  rc_client_close(x->rc);
  x->pc = x->rc = NULL;
  pc_blob_free(&x->blob);
  if (x->ag_ready) agent_free(&x->ag);
  x->ag_ready = 0;
  if (x->have_il) il_free(&x->il);
  x->have_il = 0;
}
