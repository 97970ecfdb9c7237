/* aexp.c: the explore role of ibrl-actor (arun.h).
 *
 * Design.
 *  - Stepping. E envs advance in lockstep: one agent_act over the E current observations gives
 *    E action chunks (one forward of each net with B = E instead of E forwards), then every env
 *    runs its chunk (chunk_step). An env whose episode ended is reset with the next episode seed
 *    at once, so the batch never shrinks. Warm-up (no weights yet): the IL policy alone
 *    (AGENT_MODE_EVAL_IL, deterministic as the reference's warm-up), or uniform random actions
 *    for methods without one (rlpd).
 *  - Items. Each env folds its chunk transitions into n-step items with chunk_nstep, writing
 *    straight into the rows of the outgoing rc_batch (no copy). chunk_nstep only knows floats, so
 *    a small FIFO per env carries each transition's proposer and acting weight version beside
 *    it, popped in the same order. The episode's last item gets episode_end (and
 *    episode_success), which feed the shard's per-actor success statistics.
 *  - Delivery. Rows go to the rc_writer every send_rows items and at episode ends; the writer
 *    keeps up to max_pending unacknowledged items. Acknowledgement (flush) is asked for every
 *    flush_ms with a short timeout, so a shard that is down costs the loop little while the
 *    buffer has room. When a write finds the buffer full and cannot flush it, the actor stops
 *    acting and retries with backoff (same items, same seqs) until the shard is back or a stop
 *    is requested: bounded memory, nothing dropped, nothing duplicated (the shard deduplicates
 *    the resends). The replay's rate limiter blocks inserts the same way, which is what keeps
 *    actors from outrunning the learner; the shard then acknowledges what it stored of a held
 *    stream within the writer's max_wait (below the periodic flush's budget), so only the rest is
 *    resent.
 *  - Seqs continue after the highest seq this actor_id stored before (asked from the shard), so
 *    a restarted actor is not mistaken for a retry; its episode seeds move on the same way.
 *  - No allocation in the loop: every buffer is sized at setup. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arun_impl.h"
#include "chunk.h"
#include "env.h"
#include "ib.h"
#include "log.h"
#include "rng.h"

#define PERIODIC_FLUSH_MS 500 /* budget of a periodic acknowledgement (the buffer still has room) */

typedef struct slot {
  env *e;                 /* owned */
  chunk_runner cr;        /* owned */
  chunk_nstep nb;         /* owned */
  uint8_t *prop;          /* owned (n): FIFO of proposers beside nb */
  uint64_t *ver;          /* owned (n): FIFO of acting versions */
  int fhead, fcount;
  int ready;              /* cr and nb initialised */
} slot;

typedef struct aexp {
  arun_ctx x;
  int E, n;               /* envs, n-step */
  slot *s;                /* owned (E) */
  float *obs, *next, *act; /* owned (E, obs_dim), (E, obs_dim), (E, act_dim) */
  uint8_t *prop;          /* owned (E) */
  rc_batch out;           /* owned: rows waiting to be written */
  rc_writer *w;           /* owned */
  uint64_t first_seq;
  rng r_episode, r_random;
  /* totals */
  long env_steps, episodes, successes, warmup_steps;
  /* log window */
  double w_t;
  long w_steps, w_eps, w_succ, w_il0, w_tot0;
  double last_flush;
  int flush_failing;
  int status_failing;     /* the last --status write failed (warned once; noted when it works again) */
  double stalled_s;       /* time spent in writes and flushes that waited for the replay (a full buffer
                           * being acknowledged, partly or not at all) */
  int backpressure;       /* the rate limiter held the last periodic flush: skip them */
  double next_log;        /* time of the next progress report */
} aexp;

static void fifo_push(slot *s, int n, uint8_t prop, uint64_t ver) {
  IB_CHECK(s->fcount < n);
  int i = (s->fhead + s->fcount) % n;
  s->prop[i] = prop;
  s->ver[i] = ver;
  s->fcount++;
}

static void fifo_pop(slot *s, int n, uint8_t *prop, uint64_t *ver) {
  IB_CHECK(s->fcount > 0);
  *prop = s->prop[s->fhead];
  *ver = s->ver[s->fhead];
  s->fhead = (s->fhead + 1) % n;
  s->fcount--;
}

/* The caller buffers of the next outgoing row. */
static chunk_nstep_out row_view(aexp *a) {
  rc_batch *b = &a->out;
  IB_CHECK(b->n < b->cap);
  chunk_nstep_out o;
  memset(&o, 0, sizeof o);
  o.obs = b->obs + (size_t)b->n * (size_t)b->obs_dim;
  o.action = b->action + (size_t)b->n * (size_t)b->act_dim;
  o.next_obs = b->next_obs + (size_t)b->n * (size_t)b->obs_dim;
  return o;
}

/* Completes the row that row_view exposed. Returns its index. */
static int row_commit(aexp *a, slot *s, const chunk_nstep_out *o) {
  rc_batch *b = &a->out;
  int r = b->n++;
  b->reward[r] = o->reward;
  b->discount[r] = o->discount;
  fifo_pop(s, a->n, &b->proposer[r], &b->weight_version[r]);
  b->episode_end[r] = 0;
  b->episode_success[r] = 0;
  return r;
}

static void report(aexp *a, int final);

static int nap_stop(aexp *a, double s) {
  arun__nap(&a->x, s);
  return *a->x.stop != 0;
}

static int retryable(int rc) { return rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT || rc == IB_EFULL; }

/* Hands the outgoing rows to the writer. While its buffer is full and the shard does not
 * acknowledge, waits and retries the same call, still taking new weights. A shard that is down
 * is reported at once; the rate limiter holding inserts back (IB_ETIMEDOUT / IB_EFULL: the
 * learner is behind) is the normal backpressure and is reported only when it lasts. Returns
 * IB_OK, 1 (stop requested while waiting; the rows stay in a->out) or a permanent error. */
static int send_rows(aexp *a) {
  if (a->out.n == 0) return IB_OK;
  double t0 = 0, backoff = 0.05;
  int warned = 0;
  for (;;) {
    double tw = ib_now_s();
    int rc = rc_writer_write(a->w, &a->out);
    /* A write returns at once unless it had to flush a full buffer: that time waited for the
     * replay (acknowledgements held back by its rate limiter, or a shard that is down). */
    if (t0 == 0 && ib_now_s() - tw > 0.005) a->stalled_s += ib_now_s() - tw;
    if (rc == IB_OK) {
      if (warned) log_info("replay shard accepts items again after %.1f s; no item lost", ib_now_s() - t0);
      if (t0 > 0) a->stalled_s += ib_now_s() - t0;
      rc_writer_stats ws;
      rc_writer_stats_get(a->w, &ws);
      if (ws.pending == (uint64_t)a->out.n) a->backpressure = 0; /* the write flushed the rest */
      a->out.n = 0;
      return IB_OK;
    }
    if (!retryable(rc)) return rc;
    if (t0 == 0) t0 = ib_now_s();
    if (!warned && (rc == IB_EUNAVAIL || ib_now_s() - t0 > 30.0)) {
      log_warn("local buffer full (%d items) and the replay shard does not acknowledge: %s; acting paused, retrying "
               "the same items", a->x.o->max_pending, ib_errmsg());
      warned = 1;
    }
    int wrc = arun__weights_update(&a->x);
    if (wrc < 0) return wrc;
    if (ib_now_s() >= a->next_log) {
      report(a, 0); /* the status file keeps showing the wait */
      a->next_log = ib_now_s() + a->x.o->log_every_s;
    }
    if (nap_stop(a, backoff)) {
      a->stalled_s += ib_now_s() - t0;
      return 1;
    }
    backoff = fmin(backoff * 2.0, 1.0);
  }
}

/* A periodic acknowledgement with a short budget; failures only warn (the buffer has room).
 * When the shard's rate limiter is what holds the reply back (IB_ETIMEDOUT / IB_EFULL), the
 * learner is behind: periodic flushes stop (each one would cancel the blocked stream and make
 * the writer resend everything) until a write that filled the buffer got its acknowledgement. */
static int flush_periodic(aexp *a) {
  a->last_flush = ib_now_s();
  if (a->backpressure) return IB_OK;
  double tf = ib_now_s();
  int rc = rc_writer_flush(a->w, IB_MIN(PERIODIC_FLUSH_MS, a->x.o->deadline_ms));
  if (ib_now_s() - tf > 0.005) a->stalled_s += ib_now_s() - tf; /* as in send_rows */
  if (rc == IB_OK) {
    if (a->flush_failing) log_info("replay shard acknowledges again");
    a->flush_failing = 0;
    return IB_OK;
  }
  if (!retryable(rc)) return rc;
  if (rc != IB_EUNAVAIL) {
    a->backpressure = 1;
    return IB_OK;
  }
  if (!a->flush_failing) log_warn("replay shard not acknowledging (%s); buffering up to %d items", ib_errmsg(), a->x.o->max_pending);
  a->flush_failing = 1;
  return IB_OK;
}

static void reset_env(aexp *a, int i) {
  slot *s = &a->s[i];
  int rc = chunk_reset(&s->cr, rng_u64(&a->r_episode), a->obs + (size_t)i * (size_t)a->x.obs_dim);
  IB_CHECK(rc == IB_OK); /* the env reset before; a task whose reset can fail later is a bug */
  chunk_nstep_clear(&s->nb);
  s->fhead = s->fcount = 0;
}

static int setup(aexp *a) {
  arun_ctx *x = &a->x;
  const arun_opts *o = x->o;
  a->E = o->envs;
  a->n = x->tc.nstep;
  int cap = IB_MAX(o->send_rows, a->E * (a->n + 1));
  if (cap > o->max_pending)
    return ib_fail(IB_EINVAL, "--max-pending %d is below one round of items (%d: envs %d x (n-step %d + 1), or "
                   "--send-rows %d) (HINT: raise --max-pending or lower --envs)", o->max_pending, cap, a->E, a->n,
                   o->send_rows);
  /* Where this actor_id stopped last time on its shard. */
  int shard = rc_client_shard_of(x->rc, o->actor_id);
  rc_shard_info info;
  int rc = arun__info_wait(x, shard, &info);
  if (rc != IB_OK) return rc;
  a->first_seq = 0;
  for (int i = 0; i < info.n_actors; i++)
    if (info.actors[i].actor_id == o->actor_id) a->first_seq = info.actors[i].last_seq + 1;
  if (info.n_actors == RC_MAX_ACTORS && a->first_seq == 0)
    log_warn("shard %s lists only its first %d actors; if actor %u stored items before, its new items may be taken "
             "for retries (HINT: use fewer actors per shard)", rc_client_target(x->rc, shard), RC_MAX_ACTORS, o->actor_id);
  if ((rc = rc_writer_open(&a->w, x->rc, "online", o->actor_id, a->first_seq, o->max_pending)) != IB_OK) return rc;
  /* The shard answers a stream its rate limiter holds within this, acknowledging what it stored:
   * below the periodic flush's budget, so that flush gets the answer instead of cancelling. */
  IB_CHECK(rc_writer_max_wait(a->w, IB_MAX(1, IB_MIN(PERIODIC_FLUSH_MS * 4 / 5, o->deadline_ms / 2))) == IB_OK);
  rng_seed(&a->r_episode, x->tc.seed ^ (a->first_seq * 0x9e3779b97f4a7c15ull), "actor", (int64_t)o->actor_id, "episode");
  rng_seed(&a->r_random, x->tc.seed ^ a->first_seq, "actor", (int64_t)o->actor_id, "random");

  size_t od = (size_t)x->obs_dim, ad = (size_t)x->act_dim;
  a->s = ib_xcalloc((size_t)a->E, sizeof *a->s);
  a->obs = ib_xmalloc((size_t)a->E * od * sizeof(float));
  a->next = ib_xmalloc((size_t)a->E * od * sizeof(float));
  a->act = ib_xmalloc((size_t)a->E * ad * sizeof(float));
  a->prop = ib_xmalloc((size_t)a->E);
  rc_batch_init(&a->out, cap, x->obs_dim, x->act_dim);
  env_config ec = {0};
  ec.horizon = x->tc.horizon;
  chunk_config cc = chunk_config_default();
  cc.k = x->tc.chunk;
  cc.n_stack = x->tc.n_stack;
  cc.gamma = x->tc.gamma;
  cc.horizon = x->tc.horizon;
  for (int i = 0; i < a->E; i++) {
    slot *s = &a->s[i];
    if ((rc = env_create(x->tc.task, &ec, &s->e)) != IB_OK) return rc;
    if ((rc = chunk_runner_init(&s->cr, s->e, &cc)) != IB_OK) return rc;
    chunk_nstep_init(&s->nb, a->n, x->obs_dim, x->act_dim);
    s->prop = ib_xmalloc((size_t)a->n);
    s->ver = ib_xmalloc((size_t)a->n * sizeof(uint64_t));
    s->ready = 1;
    rc = chunk_reset(&s->cr, rng_u64(&a->r_episode), a->obs + (size_t)i * od);
    if (rc != IB_OK) return rc;
  }
  if (!o->quiet)
    log_info("actor %u: %d x %s, %s, obs %d act %d, n-step %d, -> shard %s from seq %llu, weights from %s every %ld ms",
             o->actor_id, a->E, x->tc.task, tcfg_method_name(x->tc.method), x->obs_dim, x->act_dim, a->n,
             rc_client_target(x->rc, shard), (unsigned long long)a->first_seq, rc_client_target(x->pc, x->params_shard),
             o->poll_ms);
  return IB_OK;
}

static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

/* A ratio for a progress line: "-" when there is nothing to divide (no episode, no action yet). */
static const char *ratio_str(char buf[16], double v) {
  if (isnan(v)) return "-";
  snprintf(buf, 16, "%.2f", v);
  return buf;
}

/* Progress line and status file. */
static void report(aexp *a, int final) {
  arun_ctx *x = &a->x;
  double now = ib_now_s(), dt = fmax(now - a->w_t, 1e-9);
  rc_writer_stats ws;
  rc_writer_stats_get(a->w, &ws);
  long il = a->x.ag.metrics.act_il - a->w_il0, tot = a->x.ag.metrics.act_total - a->w_tot0;
  double sps = (double)(a->env_steps - a->w_steps) / dt;
  double win_succ = ratio((double)(a->successes - a->w_succ), (double)(a->episodes - a->w_eps));
  double il_win = ratio((double)il, (double)tot);
  if (final || !x->o->quiet) {
    /* The closing line gives the whole run: its last window is often empty (the stop came while
     * the rate limiter held the actor). The progress lines give the window. */
    char head[160], b1[16], b2[16], b3[16];
    const char *all = ratio_str(b1, ratio((double)a->successes, (double)a->episodes));
    if (final)
      snprintf(head, sizeof head, " done: %ld env steps in %.0f s (%.0f/s), %ld episodes, success %s, il-win %s",
               a->env_steps, now - x->t0, (double)a->env_steps / fmax(now - x->t0, 1e-9), a->episodes, all,
               ratio_str(b2, ratio((double)a->x.ag.metrics.act_il, (double)a->x.ag.metrics.act_total)));
    else
      snprintf(head, sizeof head, ": %ld env steps (%.0f/s), %ld episodes, success %s (recent %s), il-win %s",
               a->env_steps, sps, a->episodes, all, ratio_str(b2, win_succ), ratio_str(b3, il_win));
    log_info("actor %u%s, weights v%llu%s, acked %llu (dup %llu, lost by the shard %llu), pending %llu, retries %llu, "
             "partial acks %llu, waited for replay %.0f s",
             x->o->actor_id, head, (unsigned long long)x->version, x->version ? "" : " (warm-up: IL policy)",
             (unsigned long long)ws.acked, (unsigned long long)ws.duplicates, (unsigned long long)ws.lost,
             (unsigned long long)ws.pending, (unsigned long long)ws.retries, (unsigned long long)ws.partial,
             a->stalled_s);
  }
  if (x->o->status[0]) {
    char tmp[TCFG_STR + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", x->o->status);
    const char *failed = NULL, *file = tmp; /* the step that failed and its file; errno in err */
    int err = 0;
    FILE *f = fopen(tmp, "w");
    if (!f) failed = "cannot create", err = errno;
    if (f) {
      fprintf(f,
              "{\"actor_id\": %u, \"env_steps\": %ld, \"steps_per_s\": %.1f, \"episodes\": %ld, \"successes\": %ld, "
              "\"recent_success\": %.4f, \"il_win\": %.4f, \"il_act_total\": %ld, \"il_act_il\": %ld, "
              "\"weight_version\": %llu, \"acked\": %llu, \"duplicates\": %llu, \"lost\": %llu, \"pending\": %llu, "
              "\"retries\": %llu, \"partial_acks\": %llu, "
              "\"stalled_s\": %.1f, \"warmup_steps\": %ld, \"wall_s\": %.1f, \"done\": %s}\n",
              x->o->actor_id, a->env_steps, sps, a->episodes, a->successes, isnan(win_succ) ? -1.0 : win_succ,
              isnan(il_win) ? -1.0 : il_win, a->x.ag.metrics.act_total, a->x.ag.metrics.act_il,
              (unsigned long long)x->version, (unsigned long long)ws.acked, (unsigned long long)ws.duplicates,
              (unsigned long long)ws.lost, (unsigned long long)ws.pending, (unsigned long long)ws.retries,
              (unsigned long long)ws.partial, a->stalled_s, a->warmup_steps, now - x->t0,
              final ? "true" : "false");
      int werr = ferror(f) ? errno : 0;
      if (fclose(f) != 0 || werr != 0) failed = "cannot write", err = werr ? werr : errno;
      else if (rename(tmp, x->o->status) != 0) failed = "cannot rename onto", file = x->o->status, err = errno;
      if (failed) remove(tmp);
    }
    /* A status file that stops being written (disk full, directory gone) is reported once when
     * it starts failing and once when it works again, never at every report. */
    if (failed && !a->status_failing)
      log_warn("actor %u: --status %s: %s %s: %s; the status is stale until a later write works (retried every "
               "--log-every)", x->o->actor_id, x->o->status, failed, file, strerror(err));
    else if (!failed && a->status_failing)
      log_info("actor %u: --status %s is written again", x->o->actor_id, x->o->status);
    a->status_failing = failed != NULL;
  }
  a->w_t = now;
  a->w_steps = a->env_steps;
  a->w_eps = a->episodes;
  a->w_succ = a->successes;
  a->w_il0 = a->x.ag.metrics.act_il;
  a->w_tot0 = a->x.ag.metrics.act_total;
}

/* One round: act for every env, step, emit items. Returns IB_OK or an error. */
static int round_step(aexp *a) {
  arun_ctx *x = &a->x;
  size_t od = (size_t)x->obs_dim, ad = (size_t)x->act_dim;
  int rc;
  if (x->version > 0) {
    rc = agent_act(&x->ag, a->act, a->prop, a->obs, a->E, AGENT_MODE_EXPLORE);
  } else if (x->uses_il) {
    rc = agent_act(&x->ag, a->act, NULL, a->obs, a->E, AGENT_MODE_EVAL_IL);
    memset(a->prop, RC_PROPOSER_IL, (size_t)a->E);
  } else {
    for (size_t i = 0; i < (size_t)a->E * ad; i++) a->act[i] = 2.0f * rng_uniform(&a->r_random) - 1.0f;
    memset(a->prop, RC_PROPOSER_RL, (size_t)a->E);
    rc = IB_OK;
  }
  if (rc != IB_OK) return rc;
  for (int i = 0; i < a->E; i++) {
    slot *s = &a->s[i];
    float *obs = a->obs + (size_t)i * od, *next = a->next + (size_t)i * od, *act = a->act + (size_t)i * ad;
    chunk_result res;
    if ((rc = chunk_step(&s->cr, &res, next, act)) != IB_OK) return rc;
    a->env_steps += res.steps;
    if (x->version == 0) a->warmup_steps += res.steps;
    fifo_push(s, a->n, a->prop[i], x->version);
    chunk_nstep_out o = row_view(a);
    if (chunk_nstep_push(&s->nb, &o, obs, act, res.reward, res.discount, next)) row_commit(a, s, &o);
    if (res.done) {
      int last = -1;
      for (;;) {
        o = row_view(a);
        if (!chunk_nstep_flush(&s->nb, &o)) break;
        last = row_commit(a, s, &o);
      }
      IB_CHECK(last >= 0 && s->fcount == 0);
      a->out.episode_end[last] = 1;
      a->out.episode_success[last] = (uint8_t)(s->cr.success != 0);
      a->episodes++;
      a->successes += s->cr.success != 0;
      reset_env(a, i);
    } else {
      memcpy(obs, next, od * sizeof(float));
    }
  }
  return IB_OK;
}

static void aexp_free(aexp *a) {
  if (a->s) {
    for (int i = 0; i < a->E; i++) {
      slot *s = &a->s[i];
      if (s->ready) {
        chunk_runner_free(&s->cr);
        chunk_nstep_free(&s->nb);
      }
      env_destroy(s->e);
      free(s->prop);
      free(s->ver);
    }
  }
  free(a->s);
  free(a->obs);
  free(a->next);
  free(a->act);
  free(a->prop);
  rc_batch_free(&a->out);
}

int arun_explore(const arun_opts *o, const tcfg *tc, volatile sig_atomic_t *stop) {
  aexp *a = ib_xcalloc(1, sizeof *a);
  a->E = o->envs;
  int rc = arun__open(&a->x, o, tc, stop, IB_MAX(1, o->envs));
  if (rc == IB_OK) rc = setup(a);
  if (rc != IB_OK) {
    int code = *stop ? 0 : arun__setup_code(rc);
    if (code) log_error("%s", ib_errmsg());
    rc_writer_close(a->w);
    aexp_free(a);
    arun__close(&a->x);
    free(a);
    return code;
  }
  arun_ctx *x = &a->x;
  int code = 0;
  a->w_t = a->last_flush = ib_now_s();
  a->next_log = a->w_t + o->log_every_s;
  report(a, 0);
  for (;;) {
    if (*stop) break;
    if (o->max_episodes > 0 && a->episodes >= o->max_episodes) break;
    if (o->max_env_steps > 0 && a->env_steps >= o->max_env_steps) break;
    if (o->minutes > 0 && ib_now_s() - x->t0 >= o->minutes * 60.0) break;
    if ((rc = arun__weights_update(x)) < 0) {
      log_error("%s", ib_errmsg());
      code = 2;
      break;
    }
    if (a->out.n + a->E * (a->n + 1) > a->out.cap || a->out.n >= o->send_rows) {
      rc = send_rows(a);
      if (rc == 1) break;
      if (rc != IB_OK) {
        log_error("actor %u: %s", o->actor_id, ib_errmsg());
        code = 1;
        break;
      }
    }
    if ((rc = round_step(a)) != IB_OK) {
      log_error("actor %u: %s", o->actor_id, ib_errmsg());
      code = 1;
      break;
    }
    double now = ib_now_s();
    if (now - a->last_flush >= (double)o->flush_ms * 1e-3) {
      if ((rc = send_rows(a)) == 1) break;
      if (rc == IB_OK) rc = flush_periodic(a);
      if (rc != IB_OK) {
        log_error("actor %u: %s", o->actor_id, ib_errmsg());
        code = 1;
        break;
      }
    }
    if (now >= a->next_log) {
      report(a, 0);
      a->next_log = now + o->log_every_s;
    }
  }
  /* Wind down: what is complete goes out, with one client deadline to be acknowledged. Items
   * of episodes still running are not sent (the reference stores whole episodes only). */
  if (code == 0 || code == 1) {
    int src = a->out.n > 0 ? rc_writer_write(a->w, &a->out) : IB_OK;
    if (src == IB_OK) a->out.n = 0;
  }
  int frc = rc_writer_flush(a->w, -1);
  if (frc != IB_OK) {
    rc_writer_stats ws;
    rc_writer_stats_get(a->w, &ws);
    if (frc == IB_EFULL) /* the usual end of a run: the learner stopped first, so the limiter holds inserts */
      log_info("actor %u: %llu rows not stored at exit: the shard's rate limiter held them (the learner has stopped or "
               "is behind); they were never acknowledged, so no acknowledged row is lost", o->actor_id,
               (unsigned long long)ws.pending);
    else
      log_warn("actor %u: final acknowledgement failed; %llu rows never acknowledged are dropped at exit: %s",
               o->actor_id, (unsigned long long)ws.pending, ib_errmsg());
  }
  report(a, 1);
  rc_writer_close(a->w); /* nothing left to flush, or already reported */
  a->w = NULL;
  aexp_free(a);
  arun__close(x);
  free(a);
  return code;
}
