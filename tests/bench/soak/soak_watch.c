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
 * were when it was stopped; an acknowledgement still on its way then is waited for (soak_settle), and
 * is checked again at the end, after the writers closed, when nothing is in flight and the exact
 * checks hold. No restart in the last 10 s, so the last incarnations run long enough to be judged.
 * --restart-mode all: every S seconds every shard is stopped at the same instant (the signals are
 * sent before any shard is waited for), then all are started again; the clients then have no shard
 * at all for the outage (soak_traffic.c counts what fails then as failed while down).
 * --crash-tear: after a SIGKILL, with the shard reaped and the snapshot of the acknowledgements
 * taken, the shard's newest log is cut (and sometimes garbled) as a machine crash could have left it
 * (soak_tear.c); the restarted shard must drop exactly the torn bytes the tear predicts (its
 * "restored from" line, relayed by soak_child.c) and still hold every acknowledged row. */
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
#include "soak_tear.h"
#include "soak_traffic.h"
#include "soak_watch.h"

#define SOAK_SETTLE_S 2.0 /* longest wait for the writers' calls that began before a kill */

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

/* Waits until no writer thread is inside an rc_writer call that began before t_dead_ns (the stopped
 * shards were reaped then), at most SOAK_SETTLE_S; returns the calls still running from before.
 * Why: a writer publishes an acknowledgement (sh->acked) only when its call returns, so a reply the
 * dead shard sent just before it died may still be on its way into acked[]. A call that began before
 * the death brings it at once or fails and retries against the restarted shard (it then runs until
 * the shards are back: those are the ones counted, presumed retrying, and the end-of-run check would
 * still catch an acknowledged row they bring). A reply to a half-closed stream, which the writer
 * reads only in a later call, may also be waiting when the shard dies: such rows are counted in
 * sh->maybe (soak_traffic.c), which the tear respects. */
static int soak_settle(soak_shared *sh, int64_t t_dead_ns) {
  const soak_cfg *c = sh->cfg;
  double until = ib_now_s() + SOAK_SETTLE_S;
  for (;;) {
    int busy = 0;
    for (int k = 0; k < c->writers; k++) {
      int64_t t = atomic_load(&sh->call_ns[k]);
      busy += t != 0 && t < t_dead_ns;
    }
    if (busy == 0 || ib_now_s() >= until) return busy;
    usleep(5000);
  }
}

/* --crash-tear: tears the newest log of restart k's shard as a crash could have, against the snapshot
 * (a failed tear is counted and printed; the shard then starts from its log as the kill left it). */
static void soak_restart_tear(soak_shared *sh, soak_run *run, soak_restart *r, int k, const char *tag) {
  const soak_cfg *c = sh->cfg;
  int s = r->shard;
  soak_tear_acked ack = {run->snap, run->snap_maybe, c->actors, soak_traffic_demo_actor(c->shards, s),
                         (uint64_t)c->demo_rows};
  soak_tear t;
  int rc = soak_tear_log(&t, run->shard[s].dir, &ack, &run->tear_rng);
  if (rc != IB_OK) {
    r->torn = -1;
    run->tear_failed++;
    fprintf(stderr, "soak: restart %d: %sthe tear failed: %s\n", k + 1, tag, ib_errmsg());
    return;
  }
  r->torn = 1;
  r->tear_len = t.len, r->tear_need = t.need, r->tear_cut = t.cut, r->tear_garbage = t.garbage;
  r->tear_rows_cut = t.rows_cut, r->tear_missing = t.missing;
  r->drop_want = t.len_after - t.valid_end;
  run->tears++;
  run->tear_garbled += t.garbage > 0;
  run->tear_bytes += t.len - t.cut;
  run->tear_rows_cut += t.rows_cut;
  run->tear_missing += t.missing;
  printf("soak: tear %d: %s%s: %llu bytes, %llu records (%llu rows); acknowledged rows end at byte %llu; cut at "
         "%llu (%llu bytes, %llu rows lost)%s%s; the restore should drop %llu bytes%s\n", run->tears, tag,
         strrchr(t.path, '/') + 1, (unsigned long long)t.len, (unsigned long long)t.records,
         (unsigned long long)t.rows, (unsigned long long)t.need, (unsigned long long)t.cut,
         (unsigned long long)(t.len - t.cut), (unsigned long long)t.rows_cut, t.garbage > 0 ? ", then garbage of " : "",
         t.garbage > 0 ? (t.garbage_zero ? "zeros" : "random bytes") : "", (unsigned long long)r->drop_want,
         t.missing > 0 ? " (ACKNOWLEDGED ROWS NOT IN THE LOG)" : "");
  if (t.garbage > 0) printf("soak: tear %d: %s%llu bytes of garbage from the cut\n", run->tears, tag,
                            (unsigned long long)t.garbage);
}

/* After the restarted shard s answered: its loss check against the snapshot, the tear's drop, the
 * restart line. */
static void soak_restart_check(soak_shared *sh, soak_run *run, rc_shard_info *info, soak_restart *r, int k,
                               const char *tag) {
  const soak_cfg *c = sh->cfg;
  int s = r->shard;
  soak_child_drain(&run->shard[s].ch); /* its "restored from" line came before it listened */
  r->drop_seen = run->shard[s].ch.torn_dropped;
  if (r->torn == 1) {
    if (r->drop_seen >= 0) run->drop_seen += (uint64_t)r->drop_seen;
    if (r->drop_seen != (int64_t)r->drop_want) {
      run->drop_bad++;
      fprintf(stderr, "soak: restart %d: %sthe shard says it dropped %lld torn bytes of its log, the tear predicts "
              "%llu (the torn record and the garbage after the last whole record) HINT: the restore kept garbage or "
              "dropped whole records; see its 'restored from' line above\n", k + 1, tag, (long long)r->drop_seen,
              (unsigned long long)r->drop_want);
    }
  }
  /* The shard's own count of rows gone (its counters file's watermark against the restore): a SIGKILL
   * loses nothing durable, so without a tear it must be 0. A tear cuts records the shard may have
   * flushed but not yet acknowledged (it keeps every acknowledged one), as no honest disk would, so
   * the shard may rightly report some, never more than the rows cut. */
  r->lost_reported = info->restore_missing_acked;
  run->lost_reported += r->lost_reported;
  uint64_t may = r->torn == 1 ? r->tear_rows_cut : 0;
  if (r->lost_reported > may) {
    run->lost_report_bad++;
    fprintf(stderr, "soak: restart %d: %sthe shard reports %llu acknowledged rows lost at start, but %s HINT: a false "
            "alarm of the counters file's watermark (replay/store/persist_counts.c)\n", k + 1, tag,
            (unsigned long long)r->lost_reported,
            r->torn == 1 ? "the tear cut fewer rows than that" : "nothing was torn: a kill loses nothing flushed");
  }
  soak_check k1;
  soak_check_shard(c, s, info, run->snap, 0, &k1);
  r->acked = k1.acked;
  r->lost = k1.lost;
  r->counts_bad = k1.doubles > 0 || k1.size_bad;
  run->lost_restarts += r->lost;
  run->counts_bad_restarts += r->counts_bad;
  char torn[160] = "";
  if (r->torn == 1)
    snprintf(torn, sizeof torn, ", log torn (dropped %lld bytes of %llu predicted; the shard reports %llu of the %llu "
             "rows cut as acknowledged and gone)", (long long)r->drop_seen, (unsigned long long)r->drop_want,
             (unsigned long long)r->lost_reported, (unsigned long long)r->tear_rows_cut);
  else if (r->lost_reported > 0)
    snprintf(torn, sizeof torn, ", the shard reports %llu rows lost at start", (unsigned long long)r->lost_reported);
  printf("soak: restart %d at %.0f s (%s%s): shard exit %d, back after %.2f s (%d start%s)%s, %llu acknowledged rows "
         "(online + demo), %llu lost; online inserted %llu, actors' tops %llu, size %llu%s\n", k + 1, r->t, tag,
         r->sig == SIGKILL ? "SIGKILL" : "SIGTERM", r->exit_code, r->down_s, r->start_tries,
         r->start_tries == 1 ? "" : "s", torn, (unsigned long long)r->acked, (unsigned long long)r->lost,
         (unsigned long long)k1.inserted, (unsigned long long)k1.sum_top, (unsigned long long)k1.size,
         r->counts_bad ? " (COUNTS WRONG)" : "");
}

/* Restart round run->rounds: stops shard rounds % shards (--restart-mode one) or every shard at the
 * same instant (all: the signal goes to all before any is waited for), each with its signal
 * (alternating per shard's restarts), reaps them, takes the snapshot of the acknowledgements, tears
 * the SIGKILLed shards' logs (--crash-tear), starts them again on the same ports with the same
 * directories (a shard restores its checkpoint and replays its log before it listens), waits until
 * the main client's Info of each answers, and checks that every row acknowledged to it before the
 * stop is there. With one mode the other shards serve meanwhile. Returns 0, or -1 if a shard did not
 * come back (run->child_died is set). */
static int soak_restart_round(soak_shared *sh, soak_run *run, rc_shard_info *info, double t) {
  const soak_cfg *c = sh->cfg;
  int first = c->restart_all ? 0 : run->rounds % c->shards, n = c->restart_all ? c->shards : 1;
  IB_CHECK(run->n_rs + n <= run->cap_rs);
  int k0 = run->n_rs, round = run->rounds++;
  int64_t t_stop = (int64_t)ib_now_ns();
  for (int i = 0; i < n; i++) {
    int s = first + i;
    soak_shard_run *sr = &run->shard[s];
    soak_restart *r = &run->rs[k0 + i];
    memset(r, 0, sizeof *r);
    r->t = t;
    r->shard = s;
    r->round = round;
    r->sig = c->restart_sig != SOAK_SIG_ALTERNATE ? c->restart_sig : sr->restarts % 2 == 0 ? SIGKILL : SIGTERM;
    atomic_store(&sh->down_to_ns[s], INT64_MAX);
    atomic_store(&sh->down_from_ns[s], t_stop);
    soak_child_signal(&sr->ch, r->sig);
  }
  run->n_rs += n;
  int port[SOAK_MAX_SHARDS];
  char tb[32];
  for (int i = 0; i < n; i++) {
    soak_restart *r = &run->rs[k0 + i];
    soak_shard_run *sr = &run->shard[r->shard];
    port[i] = sr->ch.port;
    r->exit_code = soak_child_wait(&sr->ch, 60);
    sr->restarts++;
    if (r->sig == SIGTERM && r->exit_code != 0) {
      run->term_bad++;
      fprintf(stderr, "soak: restart %d: %sthe shard exited with %d on SIGTERM (want 0: drained, final checkpoint)\n",
              k0 + i + 1, soak_out_tag(c, r->shard, tb, sizeof tb), r->exit_code);
    }
  }
  /* Everything acknowledged to these shards until they died; an acknowledgement still on its way is
   * waited for (soak_settle), or else checked at the end. */
  run->settle_late += soak_settle(sh, (int64_t)ib_now_ns());
  for (int i = 0; i < n; i++)
    for (int a = first + i; a < c->actors; a += c->shards) {
      run->snap[a] = atomic_load(&sh->acked[a]);
      run->snap_maybe[a] = atomic_load(&sh->maybe[a]);
    }
  for (int i = 0; i < n; i++) {
    soak_restart *r = &run->rs[k0 + i];
    if (c->crash_tear && r->sig == SIGKILL) soak_restart_tear(sh, run, r, k0 + i, soak_out_tag(c, r->shard, tb, sizeof tb));
  }
  int rc = IB_OK;
  for (int i = 0; i < n; i++) {
    soak_restart *r = &run->rs[k0 + i];
    soak_shard_run *sr = &run->shard[r->shard];
    rc = IB_EUNAVAIL;
    for (int tries = 0; tries < 10 && rc != IB_OK; tries++) {
      if (tries > 0) sleep(1);
      rc = soak_child_start(&sr->ch, c, sr->dir, port[i], r->shard);
      r->start_tries = tries + 1;
    }
    if (rc != IB_OK) {
      fprintf(stderr, "soak: restart %d: %sthe shard did not come back on port %d in 10 tries: %s\n", k0 + i + 1,
              soak_out_tag(c, r->shard, tb, sizeof tb), port[i], ib_errmsg());
      run->child_died = run->restart_failed = 1;
      sr->child_exit = -1;
      return -1;
    }
  }
  for (int i = 0; i < n; i++) {
    soak_restart *r = &run->rs[k0 + i];
    int s = r->shard;
    const char *tag = soak_out_tag(c, s, tb, sizeof tb);
    /* The main client reconnects within its backoff (its calls to this shard fail fast meanwhile). */
    double until = ib_now_s() + 20;
    while ((rc = rc_info_get(sh->c, s, info)) != IB_OK && ib_now_s() < until) usleep(50000);
    r->down_s = (double)((int64_t)ib_now_ns() - t_stop) * 1e-9;
    atomic_store(&sh->down_to_ns[s], (int64_t)ib_now_ns() + (int64_t)(c->down_grace * 1e9));
    if (rc != IB_OK) {
      fprintf(stderr, "soak: restart %d: %sthe restarted shard did not answer Info for 20 s: %s\n", k0 + i + 1, tag,
              ib_errmsg());
      run->restart_failed = 1;
      continue;
    }
    soak_restart_check(sh, run, info, r, k0 + i, tag);
  }
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
      soak_child_drain(&sr->ch);
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
    if (run->csv != NULL) soak_out_csv_row(run->csv, c, run, run->n - 1);
    if (t >= next_progress) {
      soak_out_progress(run->n - 1, sh, run, c->online_cap);
      next_progress += c->progress;
    }
    if (t >= c->seconds) break;
    if (t >= next_restart && t + fmin(c->restart_every, 10) < c->seconds) {
      run->restart_after[run->n - 1] = 1;
      if (soak_restart_round(sh, run, info, t) != 0) break;
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

