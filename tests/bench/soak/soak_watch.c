/* soak_watch.c: the watching (main) thread of `ibrl-bench soak`.
 *
 * Design. Once a second, for every shard, read the child's VmRSS, VmHWM, thread count and open fds
 * from /proc, the client-side insert and sample rates, and the shard's Info (tables, checkpoints,
 * the Info round trip, so a stalled shard shows), into the preallocated timeline; print a progress
 * line every --progress seconds. A late second (a stalled Info, a restart) does not make up the
 * missed points: the next point is a second from then, and the gap is judged by soak_check.c.
 * Restarts (--restart-every S > 0; issue #5: "survive restarts without losing acknowledged data").
 * Every S seconds kill a shard, the shards in turn (restart k stops shard k % N), with SIGKILL and
 * SIGTERM in turn per shard (or one of them, --restart-signal), wait for it, and start it again
 * with the same flags, the same directory and the port it had (a start that fails is retried for
 * 10 s). The other shards keep serving, so a call to a live shard that fails is a failure. The
 * outage of a shard, for the traffic threads' accounting, lasts from the kill until the main
 * client's first Info of it answered after the restart, plus --down-grace. Right after each
 * restart run the loss check (soak_check.c) on that shard against the acknowledgements as they
 * were when it was stopped; an acknowledgement still on its way then is checked at the end, after
 * the writers closed, when nothing is in flight and the exact checks hold. No restart in the last
 * 10 s, so the last incarnations run long enough to be judged. */
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "soak_check.h"
#include "soak_child.h"
#include "soak_out.h"
#include "soak_traffic.h"
#include "soak_watch.h"

/* ---- timeline and restarts ---- */

/* Fills the figures of `shard`'s point p from its Info (counted as a failure if Info fails). */
static void soak_point_info(soak_shared *sh, int shard, rc_shard_info *info, soak_point *p, soak_shard_run *sr) {
  int64_t t0 = (int64_t)ib_now_ns();
  int rc = rc_info_get(sh->c, shard, info);
  if (rc != IB_OK) {
    soak_traffic_error(sh, shard, "Info (timeline)", rc, t0);
    return;
  }
  const rc_table_info *on = soak_check_table(info, "online"), *dm = soak_check_table(info, "demo");
  if (on != NULL) p->online_size = on->size, p->online_inserted = on->inserted, sr->dup_online = on->duplicates;
  if (dm != NULL) p->demo_size = dm->size;
  p->checkpoints = info->checkpoints;
  p->info_ms = info->rtt_ms;
  sr->info_tables_mb = 0;
  for (int i = 0; i < info->n_tables; i++) sr->info_tables_mb += (double)info->tables[i].bytes / 1048576.0;
}

/* Restart number run->n_rs: stops shard n_rs % shards with its signal (alternating per shard),
 * starts it again on the same port with the same directory (it restores its checkpoint and replays
 * its log before it listens), waits until the main client's Info of it answers, and checks that
 * every row acknowledged to it before the stop is there. The other shards serve meanwhile.
 * Returns 0, or -1 if the shard did not come back (run->child_died is set). */
static int soak_restart_one(soak_shared *sh, soak_run *run, rc_shard_info *info, double t) {
  const soak_cfg *c = sh->cfg;
  IB_CHECK(run->n_rs < run->cap_rs);
  int k = run->n_rs, s = k % c->shards;
  soak_shard_run *sr = &run->shard[s];
  soak_restart *r = &run->rs[run->n_rs++];
  memset(r, 0, sizeof *r);
  r->t = t;
  r->shard = s;
  r->sig = c->restart_sig != SOAK_SIG_ALTERNATE ? c->restart_sig : sr->restarts % 2 == 0 ? SIGKILL : SIGTERM;
  atomic_store(&sh->down_to_ns[s], INT64_MAX);
  int64_t t_stop = (int64_t)ib_now_ns();
  atomic_store(&sh->down_from_ns[s], t_stop);
  int port = sr->ch.port;
  r->exit_code = soak_child_stop(&sr->ch, r->sig, 60);
  sr->restarts++;
  char tb[32];
  const char *tag = soak_out_tag(c, s, tb, sizeof tb);
  if (r->sig == SIGTERM && r->exit_code != 0) {
    run->term_bad++;
    fprintf(stderr, "soak: restart %d: %sthe shard exited with %d on SIGTERM (want 0: drained, final checkpoint)\n",
            k + 1, tag, r->exit_code);
  }
  /* Everything acknowledged to this shard until it died; an acknowledgement still on its way is
   * not in the snapshot but is checked at the end. */
  for (int a = s; a < c->actors; a += c->shards) run->snap[a] = atomic_load(&sh->acked[a]);
  int rc = IB_EUNAVAIL;
  for (int tries = 0; tries < 10 && rc != IB_OK; tries++) {
    if (tries > 0) sleep(1);
    rc = soak_child_start(&sr->ch, c, sr->dir, port, s);
    r->start_tries = tries + 1;
  }
  if (rc != IB_OK) {
    fprintf(stderr, "soak: restart %d: %sthe shard did not come back on port %d in 10 tries: %s\n", k + 1, tag, port,
            ib_errmsg());
    run->child_died = run->restart_failed = 1;
    sr->child_exit = -1;
    return -1;
  }
  /* The main client reconnects within its backoff (its calls to this shard fail fast meanwhile). */
  double until = ib_now_s() + 20;
  while ((rc = rc_info_get(sh->c, s, info)) != IB_OK && ib_now_s() < until) usleep(50000);
  r->down_s = (double)((int64_t)ib_now_ns() - t_stop) * 1e-9;
  atomic_store(&sh->down_to_ns[s], (int64_t)ib_now_ns() + (int64_t)(c->down_grace * 1e9));
  if (rc != IB_OK) {
    fprintf(stderr, "soak: restart %d: %sthe restarted shard did not answer Info for 20 s: %s\n", k + 1, tag,
            ib_errmsg());
    run->restart_failed = 1;
    return 0;
  }
  soak_check k1;
  soak_check_shard(c, s, info, run->snap, 0, &k1);
  r->acked = k1.acked;
  r->lost = k1.lost;
  r->counts_bad = k1.doubles > 0 || k1.size_bad;
  run->lost_restarts += r->lost;
  run->counts_bad_restarts += r->counts_bad;
  printf("soak: restart %d at %.0f s (%s%s): shard exit %d, back after %.2f s (%d start%s), %llu acknowledged rows "
         "(online + demo), %llu lost; online inserted %llu, actors' tops %llu, size %llu%s\n", k + 1, t, tag,
         r->sig == SIGKILL ? "SIGKILL" : "SIGTERM", r->exit_code, r->down_s, r->start_tries,
         r->start_tries == 1 ? "" : "s", (unsigned long long)r->acked, (unsigned long long)r->lost,
         (unsigned long long)k1.inserted, (unsigned long long)k1.sum_top, (unsigned long long)k1.size,
         r->counts_bad ? " (COUNTS WRONG)" : "");
  fflush(stdout);
  return 0;
}

void soak_watch_run(soak_shared *sh, soak_run *run) {
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  double t0 = ib_now_s(), next_progress = c->progress;
  double next_restart = c->restart_every > 0 ? c->restart_every : INFINITY;
  uint64_t last_w = atomic_load(&sh->rows_written), last_s = atomic_load(&sh->rows_sampled);
  double last_t = 0;
  for (int i = 1; run->n < run->cap && !run->child_died; i++) {
    double wait = t0 + i - ib_now_s();
    if (wait > 0) usleep((useconds_t)(wait * 1e6));
    else i = (int)(ib_now_s() - t0); /* late (a stalled Info, a restart): the next point is a second from now */
    double t = ib_now_s() - t0;
    uint64_t w = atomic_load(&sh->rows_written), smp = atomic_load(&sh->rows_sampled);
    double ins = (double)(w - last_w) / (t - last_t), spl = (double)(smp - last_s) / (t - last_t);
    last_w = w, last_s = smp, last_t = t;
    for (int s = 0; s < c->shards; s++) {
      soak_shard_run *sr = &run->shard[s];
      soak_point *p = &sr->pts[run->n];
      memset(p, 0, sizeof *p);
      p->t = t;
      p->inc = sr->restarts;
      if (soak_child_gone(&sr->ch, &sr->child_exit) || soak_child_proc_read(sr->ch.pid, p) != 0) {
        run->child_died = 1;
        fprintf(stderr, "soak: shard %d exited during the traffic (status %d) HINT: see its log above\n", s,
                sr->child_exit);
        break;
      }
      p->ins_per_s = ins;
      p->smp_per_s = spl;
      soak_point_info(sh, s, info, p, sr);
      p->errors = atomic_load(&sh->errors);
      p->bad_refused = atomic_load(&sh->bad_refused);
    }
    if (run->child_died) break;
    run->n++;
    if (t >= next_progress) {
      soak_out_progress(run->n - 1, sh, run, c->online_cap);
      next_progress += c->progress;
    }
    if (t >= c->seconds) break;
    if (t >= next_restart && t + fmin(c->restart_every, 10) < c->seconds) {
      run->restart_after[run->n - 1] = 1;
      if (soak_restart_one(sh, run, info, t) != 0) break;
      next_restart += c->restart_every;
    }
  }
  free(info);
}

void soak_watch_final_check(soak_shared *sh, soak_run *run) {
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  for (int a = 0; a < c->actors; a++) run->snap[a] = atomic_load(&sh->acked[a]);
  run->final_checked = 1;
  for (int s = 0; s < c->shards; s++) {
    soak_shard_run *sr = &run->shard[s];
    int rc = IB_EUNAVAIL;
    double until = ib_now_s() + 10;
    while ((rc = rc_info_get(sh->c, s, info)) != IB_OK && ib_now_s() < until) usleep(100000);
    if (rc != IB_OK) {
      fprintf(stderr, "soak: the end-of-run loss check could not ask shard %d's Info: %s\n", s, ib_errmsg());
      run->final_checked = 0;
      continue;
    }
    soak_check_shard(c, s, info, run->snap, 1, &sr->final);
    run->final_acked += sr->final.acked;
    run->final_stored += sr->final.size;
    run->final_lost += sr->final.lost;
    run->final_counts_bad |= sr->final.doubles > 0 || sr->final.size_bad;
  }
  free(info);
}

