/* aeval.c: the evaluator role of ibrl-actor (arun.h).
 *
 * Design. The evaluator is an actor that never inserts: it holds the same acting-only agent and
 * weights poller, and a batched evaluator (evalr.h) over eval_episodes seeded episodes whose
 * seeds (evalr_seed0 of the run seed) are the same for every evaluation, so the IL policy's
 * score and every IBRL score are measured on identical episodes, as in ibrl-train. The x axis
 * of the curve is the online env steps the replay shards have received (Info: inserted items x
 * chunk length), the learner's progress is the update count carried in each weight blob.
 * Files use the trainer's run-directory format (runlog.h) so ibrl-plot and table scripts read
 * them unchanged; summary.json is rewritten after every evaluation, so a killed evaluator still
 * leaves a valid summary. On a stop request the newest weights get one last evaluation. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "arun_impl.h"
#include "chunk.h"
#include "evalr.h"
#include "ib.h"
#include "log.h"
#include "runlog.h"

typedef struct aeval {
  arun_ctx x;
  evalr ev;
  int ev_ready;
  double il_success, last, best;
  uint64_t last_version;
  int rows;
} aeval;

static int act_il(void *ctx, float *act, const float *obs, int B) {
  aeval *e = ctx;
  return agent_act(&e->x.ag, act, NULL, obs, B, AGENT_MODE_EVAL_IL);
}

static int act_agent(void *ctx, float *act, const float *obs, int B) {
  aeval *e = ctx;
  return agent_act(&e->x.ag, act, NULL, obs, B, e->x.eval_mode);
}

static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

/* Online env steps received and recent training success over all shards (NAN when unknown). */
static void replay_progress(aeval *e, long *env_steps, double *train_success) {
  long inserted = 0;
  double eps = 0, succ = 0;
  *env_steps = -1;
  *train_success = NAN;
  for (int s = 0; s < rc_client_shard_count(e->x.rc); s++) {
    rc_shard_info info;
    if (rc_info_get(e->x.rc, s, &info) != IB_OK) return;
    for (int t = 0; t < info.n_tables; t++)
      if (info.tables[t].kind == 1) inserted += (long)info.tables[t].inserted;
    for (int a = 0; a < info.n_actors; a++) eps += info.actors[a].episodes, succ += info.actors[a].successes;
  }
  *env_steps = inserted * e->x.tc.chunk;
  *train_success = ratio(succ, eps);
}

static int write_summary(aeval *e) {
  runlog_summary s = {0};
  s.method = tcfg_method_name(e->x.tc.method);
  s.task = e->x.tc.task;
  long es;
  double ts;
  replay_progress(e, &es, &ts);
  s.env_steps = es;
  s.final_eval_success = e->rows > 0 ? e->last : NAN;
  s.best_eval_success = e->rows > 0 ? e->best : NAN;
  s.il_eval_success = e->il_success;
  s.wall_s = ib_now_s() - e->x.t0;
  s.updates = (long)e->x.updates;
  s.seed = (unsigned long long)e->x.tc.seed;
  return runlog_summary_write(e->x.tc.out, &s);
}

/* Evaluates the loaded weights and appends a row. */
static int evaluate(aeval *e) {
  arun_ctx *x = &e->x;
  long il0 = x->ag.metrics.act_il, tot0 = x->ag.metrics.act_total;
  double succ;
  double t = ib_now_s();
  int rc = evalr_run(&e->ev, &succ, evalr_seed0(x->tc.seed), act_agent, e);
  if (rc != IB_OK) return rc;
  runlog_row row;
  memset(&row, 0, sizeof row);
  double ts;
  replay_progress(e, &row.env_steps, &ts);
  row.wall_s = ib_now_s() - x->t0;
  row.updates = (long)x->updates;
  row.episodes = 0;
  row.eval_success = succ;
  row.train_success = ts;
  row.il_win_act = row.il_win_bootstrap = NAN;
  row.il_win_eval = ratio((double)(x->ag.metrics.act_il - il0), (double)(x->ag.metrics.act_total - tot0));
  row.critic_loss = row.actor_loss = row.q_mean = NAN;
  if ((rc = runlog_append(x->tc.out, &row)) != IB_OK) return rc;
  e->last = succ;
  if (e->rows == 0 || succ > e->best) e->best = succ;
  e->rows++;
  e->last_version = x->version;
  if (!x->o->quiet)
    log_info("eval: weights v%llu (%llu updates, %ld env steps): success %.2f (IL alone %.2f), il-win %.2f, %.1f s",
             (unsigned long long)x->version, (unsigned long long)x->updates, row.env_steps, succ, e->il_success,
             row.il_win_eval, ib_now_s() - t);
  return write_summary(e);
}

int arun_evaluate(const arun_opts *o, const tcfg *tc, volatile sig_atomic_t *stop) {
  aeval *e = ib_xcalloc(1, sizeof *e);
  int code = 0;
  int rc = arun__open(&e->x, o, tc, stop, o->eval_episodes);
  arun_ctx *x = &e->x;
  if (rc == IB_OK && !x->tc.out[0])
    rc = ib_fail(IB_EINVAL, "the evaluator needs a run directory (HINT: --out DIR)");
  if (rc == IB_OK && mkdir(x->tc.out, 0755) != 0 && errno != EEXIST)
    rc = ib_fail(IB_EIO, "cannot create %s: %s (HINT: does its parent exist?)", x->tc.out, strerror(errno));
  if (rc == IB_OK) {
    env_config ec = {0};
    ec.horizon = x->tc.horizon;
    chunk_config cc = chunk_config_default();
    cc.k = x->tc.chunk;
    cc.n_stack = x->tc.n_stack;
    cc.gamma = x->tc.gamma;
    cc.horizon = x->tc.horizon;
    rc = evalr_init(&e->ev, x->tc.task, &ec, &cc, o->eval_episodes);
    if (rc == IB_OK) e->ev_ready = 1;
  }
  if (rc == IB_OK) rc = runlog_create(x->tc.out);
  if (rc == IB_OK) {
    char p[TCFG_STR + 32];
    snprintf(p, sizeof p, "%s/config.json", x->tc.out);
    rc = tcfg_write_json(&x->tc, x->have_il ? &x->ilm : NULL, p);
  }
  e->il_success = NAN;
  if (rc == IB_OK && x->uses_il) {
    rc = evalr_run(&e->ev, &e->il_success, evalr_seed0(x->tc.seed), act_il, e);
    if (rc == IB_OK && !o->quiet)
      log_info("eval: IL policy alone: success %.2f over %d episodes", e->il_success, o->eval_episodes);
  }
  if (rc == IB_OK) rc = write_summary(e);
  if (rc != IB_OK) {
    code = *stop ? 0 : arun__setup_code(rc);
    if (code) log_error("%s", ib_errmsg());
    goto done;
  }
  double last_eval = -1e30;
  for (;;) {
    int stopping = *stop || (o->minutes > 0 && ib_now_s() - x->t0 >= o->minutes * 60.0);
    if (stopping) {
      /* One last look for the newest weights (the learner publishes its final version when it
       * stops, which usually comes just before our own stop). */
      double until = ib_now_s() + 2e-3 * (double)o->poll_ms + 1.0;
      for (;;) {
        arun__weights_update(x);
        wpoll_stats ps;
        wpoll_stats_get(x->wp, &ps);
        if (ps.stored <= x->version || ib_now_s() > until) break;
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
      }
      if (x->version > e->last_version && (rc = evaluate(e)) != IB_OK) {
        log_error("%s", ib_errmsg());
        code = 1;
      }
      break;
    }
    if ((rc = arun__weights_update(x)) < 0) {
      log_error("%s", ib_errmsg());
      code = 2;
      break;
    }
    if (x->version > e->last_version && ib_now_s() - last_eval >= o->eval_every_s) {
      last_eval = ib_now_s();
      if ((rc = evaluate(e)) != IB_OK) {
        log_error("%s", ib_errmsg());
        code = 1;
        break;
      }
    }
    arun__nap(x, 0.1);
  }
  if (code != 2) {
    if (write_summary(e) != IB_OK) log_warn("%s", ib_errmsg());
    int prc = runlog_plot(x->tc.out);
    if (prc == RUNLOG_PLOT_EMPTY) log_info("%s", ib_errmsg());
    else if (prc != IB_OK) log_warn("%s", ib_errmsg());
    if (!o->quiet)
      log_info("eval done: IL alone %.2f, IBRL final %.2f best %.2f over %d evaluations; %s/summary.json", e->il_success,
               e->rows ? e->last : NAN, e->rows ? e->best : NAN, e->rows, x->tc.out);
  }
done:
  if (e->ev_ready) evalr_free(&e->ev);
  arun__close(x);
  free(e);
  return code;
}
