/* soak_out.c: what `ibrl-bench soak` prints and writes.
 *
 * Design. Plain printf to stdout, flushed after the start lines and each progress line (the
 * restart lines of soak_watch.c are flushed there too), so a run piped to a file shows its
 * progress as it goes. With one shard
 * every line keeps the shape it had before --shards existed (the evidence scripts parse them);
 * with several, the traffic figures come first, then each shard's in brackets, and the per-shard
 * lines are tagged "shard k: ". The CSV keeps the one-shard columns for shard 0 and appends, per
 * further shard k, its own columns suffixed _s<k>. The JSON line's memory keys are shard 0's;
 * per_shard has every shard's. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ib.h"
#include "soak_fresh.h"
#include "soak_out.h"

/* ---- start and progress lines ---- */

void soak_out_banner(const soak_cfg *c, const soak_run *run) {
  printf("soak: %s, %d shard%s, obs %d act %d, online %ld demo %ld (%ld preloaded)%s, durability %s, checkpoints every "
         "%g s in %s%s; %d writers (batch %d, reopen every %d), %d samplers (demo fraction %g), churn every %g s, bad "
         "request every %g s, Info every %g s, %.0f s\n", c->replay_bin, c->shards, c->shards == 1 ? "" : "s",
         c->obs_dim, c->act_dim, c->online_cap, c->demo_cap, c->demo_rows, c->shards == 1 ? "" : " each", c->durability,
         c->ckpt_period, run->shard[0].dir, c->shards == 1 ? "" : " and the other shards' directories", c->writers,
         c->batch, c->reopen, c->samplers, c->demo_fraction, c->churn_every, c->bad_every, c->info_every, c->seconds);
  if (c->restart_every > 0 || c->token != NULL || c->tls) {
    char restarts[128] = "off";
    if (c->restart_every > 0)
      snprintf(restarts, sizeof restarts, "every %g s%s (%s)%s", c->restart_every,
               c->shards == 1 ? "" : c->restart_all ? ", every shard at once" : ", the shards in turn",
               c->restart_sig == SIGKILL ? "SIGKILL" : c->restart_sig == SIGTERM ? "SIGTERM"
               : "SIGKILL and SIGTERM in turn", c->crash_tear ? ", logs torn after each SIGKILL" : "");
    printf("soak: restarts %s, token %s, TLS %s\n", restarts, c->token != NULL ? "on" : "off",
           c->tls_cert != NULL ? c->tls_cert : c->tls ? "skipped" : "off");
  }
  fflush(stdout);
}

const char *soak_out_tag(const soak_cfg *c, int shard, char *buf, size_t cap) {
  if (c->shards == 1) return "";
  snprintf(buf, cap, "shard %d: ", shard);
  return buf;
}

void soak_out_progress(int i, const soak_shared *sh, const soak_run *run, long cap) {
  const soak_cfg *c = sh->cfg;
  const soak_point *p = &run->shard[0].pts[i];
  if (c->shards == 1) {
    printf("t %6.0fs  rss %7.1f MB (hwm %7.1f)  fds %3d thr %3d  ins %7.0f/s smp %7.0f/s  online %llu/%ld (wrapped "
           "%.1fx)  ckpt %llu  bad refused %llu/%llu  churn %llu  errors %llu",
           p->t, p->rss_mb, p->hwm_mb, p->fds, p->threads, p->ins_per_s, p->smp_per_s,
           (unsigned long long)p->online_size, cap, (double)p->online_inserted / (double)cap,
           (unsigned long long)p->checkpoints, (unsigned long long)p->bad_refused,
           (unsigned long long)atomic_load(&sh->bad_sent), (unsigned long long)atomic_load(&sh->churns),
           (unsigned long long)p->errors);
  } else {
    printf("t %6.0fs  ins %7.0f/s smp %7.0f/s  bad refused %llu/%llu  churn %llu  errors %llu", p->t, p->ins_per_s,
           p->smp_per_s, (unsigned long long)p->bad_refused, (unsigned long long)atomic_load(&sh->bad_sent),
           (unsigned long long)atomic_load(&sh->churns), (unsigned long long)p->errors);
    for (int s = 0; s < c->shards; s++) {
      const soak_point *q = &run->shard[s].pts[i];
      printf("  [s%d rss %6.1f MB (hwm %6.1f) fds %d thr %d online %llu (wrapped %.1fx) ckpt %llu inc %d]", s,
             q->rss_mb, q->hwm_mb, q->fds, q->threads, (unsigned long long)q->online_size,
             (double)q->online_inserted / (double)cap, (unsigned long long)q->checkpoints, q->inc);
    }
  }
  if (c->restart_every > 0)
    printf("  restarts %d  lost %llu  failed while down %llu", run->n_rs, (unsigned long long)run->lost_restarts,
           (unsigned long long)(atomic_load(&sh->errors_down) + atomic_load(&sh->bad_down) +
                                atomic_load(&sh->samples_down)));
  printf("\n");
  fflush(stdout);
}

/* ---- CSV ---- */

FILE *soak_out_csv_open(const char *path, const soak_cfg *c) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    ib_fail(IB_EIO, "--csv %s: %s HINT: check the directory exists and is writable", path, strerror(errno));
    return NULL;
  }
  fprintf(f, "t_s,rss_mb,hwm_mb,fds,threads,inserts_per_s,samples_per_s,online_size,online_inserted,demo_size,"
             "checkpoints,errors,bad_refused,info_ms,incarnation");
  for (int s = 1; s < c->shards; s++)
    fprintf(f, ",rss_mb_s%d,hwm_mb_s%d,fds_s%d,threads_s%d,online_size_s%d,online_inserted_s%d,demo_size_s%d,"
               "checkpoints_s%d,info_ms_s%d,incarnation_s%d", s, s, s, s, s, s, s, s, s, s);
  fprintf(f, "\n");
  fflush(f);
  return f;
}

void soak_out_csv_row(FILE *f, const soak_cfg *c, const soak_run *run, int i) {
  const soak_point *p = &run->shard[0].pts[i];
  fprintf(f, "%.2f,%.2f,%.2f,%d,%d,%.0f,%.0f,%llu,%llu,%llu,%llu,%llu,%llu,%.1f,%d", p->t, p->rss_mb, p->hwm_mb,
          p->fds, p->threads, p->ins_per_s, p->smp_per_s, (unsigned long long)p->online_size,
          (unsigned long long)p->online_inserted, (unsigned long long)p->demo_size,
          (unsigned long long)p->checkpoints, (unsigned long long)p->errors, (unsigned long long)p->bad_refused,
          p->info_ms, p->inc);
  for (int s = 1; s < c->shards; s++) {
    const soak_point *q = &run->shard[s].pts[i];
    fprintf(f, ",%.2f,%.2f,%d,%d,%llu,%llu,%llu,%llu,%.1f,%d", q->rss_mb, q->hwm_mb, q->fds, q->threads,
            (unsigned long long)q->online_size, (unsigned long long)q->online_inserted,
            (unsigned long long)q->demo_size, (unsigned long long)q->checkpoints, q->info_ms, q->inc);
  }
  fprintf(f, "\n");
  fflush(f); /* a row a second: the file is whole up to the last second if the run is killed */
}

int soak_out_csv_close(FILE *f, const char *path) {
  int bad = ferror(f);
  if (fclose(f) != 0 || bad) return ib_fail(IB_EIO, "--csv %s: write failed HINT: disk full?", path);
  return IB_OK;
}

/* ---- the report ---- */

/* --crash-tear: what the tears cut and what the shards dropped. */
static void soak_report_tears(const soak_run *run) {
  int kills = 0, ends = 0;
  uint64_t want = 0;
  for (int k = 0; k < run->n_rs; k++) {
    const soak_restart *r = &run->rs[k];
    kills += r->sig == SIGKILL;
    ends += r->torn == 1 && r->tear_cut == r->tear_len;
    if (r->torn == 1) want += r->drop_want;
  }
  printf("soak: crash tears %d after %d SIGKILLs (failed %d): %llu log bytes cut or garbled, %llu unacknowledged rows "
         "cut, %d cut at the end (nothing lost), %d with garbage after the cut; the shards dropped %llu torn bytes "
         "(predicted %llu, %d restores not as predicted); acknowledged rows not in a log before its tear: %llu %s\n",
         run->tears, kills, run->tear_failed, (unsigned long long)run->tear_bytes,
         (unsigned long long)run->tear_rows_cut, ends, run->tear_garbled, (unsigned long long)run->drop_seen,
         (unsigned long long)want, run->drop_bad, (unsigned long long)run->tear_missing,
         run->tear_failed == 0 && run->drop_bad == 0 && run->tear_missing == 0 ? "PASS" : "FAIL");
  if (run->tear_missing > 0)
    printf("soak: FAIL durable: %llu acknowledged rows were not in the newest log of their shard before it was torn "
           "HINT: an insert was acknowledged before it was logged and synced; see the actors named above\n",
           (unsigned long long)run->tear_missing);
  if (run->drop_bad > 0)
    printf("soak: FAIL durable: %d restores dropped other than the torn bytes HINT: the log replay (persist.c) kept "
           "garbage or dropped whole records; see the restart lines above\n", run->drop_bad);
  if (run->tear_failed > 0)
    printf("soak: FAIL durable: %d tears could not be made HINT: see the messages above\n", run->tear_failed);
}

/* Restarts only: one line per incarnation of each shard, the outages and the loss check. */
static void soak_report_restarts(const soak_cfg *c, const soak_run *run, const soak_verdict *v) {
  char tb[32];
  for (int s = 0; s < c->shards; s++) {
    const soak_point *pts = run->shard[s].pts;
    const char *tag = soak_out_tag(c, s, tb, sizeof tb);
    for (int inc = 0; inc < v->m[s].n_inc; inc++) {
      int i0, i1;
      soak_check_inc_range(pts, run->n, inc, &i0, &i1);
      if (i1 <= i0) continue;
      printf("soak: %sincarnation %2d: %4.0f-%4.0f s, %3d points, RSS %.1f -> %.1f MB, peak %.1f MB%s\n", tag, inc,
             pts[i0].t, pts[i1 - 1].t, i1 - i0, pts[i0].rss_mb, pts[i1 - 1].rss_mb, soak_check_peak(pts, i0, i1),
             inc == v->m[s].judged_inc ? " (judged flat)" : "");
    }
  }
  int kills = 0, terms = 0, per[SOAK_MAX_SHARDS] = {0};
  double dmin = INFINITY, dmax = 0, dsum = 0;
  for (int k = 0; k < run->n_rs; k++) {
    kills += run->rs[k].sig == SIGKILL, terms += run->rs[k].sig == SIGTERM;
    per[run->rs[k].shard]++;
    dmin = fmin(dmin, run->rs[k].down_s), dmax = fmax(dmax, run->rs[k].down_s), dsum += run->rs[k].down_s;
  }
  printf("soak: restarts %d (%d SIGKILL, %d SIGTERM, SIGTERM exits not 0: %d", run->n_rs, kills, terms, run->term_bad);
  if (c->shards > 1) {
    printf("; per shard");
    for (int s = 0; s < c->shards; s++) printf("%s%d", s ? "/" : " ", per[s]);
  }
  printf("), down %.2f-%.2f s (mean %.2f); calls failed while down %llu (+ %llu bad requests), while up %llu\n",
         run->n_rs ? dmin : 0.0, dmax, run->n_rs ? dsum / run->n_rs : 0.0, (unsigned long long)v->errors_down,
         (unsigned long long)v->bad_down, (unsigned long long)v->errors);
  printf("soak: samples (all shards) failed while a shard was down %llu; samples that skipped a down shard %llu\n",
         (unsigned long long)v->samples_down, (unsigned long long)v->samples_skipped);
  if (c->restart_all)
    printf("soak: outages with every shard down at once: %d; writer calls still running from before a kill when "
           "its snapshot was taken: %d\n", run->rounds, run->settle_late);
  if (c->crash_tear) soak_report_tears(run);
  int wrapped = 0;
  for (int s = 0; s < c->shards; s++) {
    const soak_check *k = &run->shard[s].final;
    wrapped |= k->inserted > k->capacity;
    if (c->shards > 1 && run->final_checked)
      printf("soak: shard %d: end of run: %llu rows acknowledged (online + %ld demo); online inserted %llu (ring "
             "wrapped %.1fx), actors' tops %llu, size %llu of %llu%s\n", s, (unsigned long long)k->acked, c->demo_rows,
             (unsigned long long)k->inserted, k->capacity ? (double)k->inserted / (double)k->capacity : 0.0,
             (unsigned long long)k->sum_top, (unsigned long long)k->size, (unsigned long long)k->capacity,
             k->doubles > 0 || k->size_bad ? " (COUNTS WRONG)" : "");
  }
  printf("soak: end of run: %llu rows acknowledged (online + %ld demo%s), %llu online rows stored%s\n",
         (unsigned long long)run->final_acked, c->demo_rows, c->shards > 1 ? " per shard" : "",
         (unsigned long long)run->final_stored, run->final_checked ? "" : " (NOT CHECKED: Info failed)");
  printf("soak: acknowledged rows lost: %llu (checked after %d restarts%s: %llu missing right after them, %llu at "
         "the end; %s) %s\n", (unsigned long long)v->lost, run->n_rs, run->final_checked ? " and at the end" : "",
         (unsigned long long)run->lost_restarts, (unsigned long long)run->final_lost,
         wrapped ? "a ring wrapped: checked by the shard's insert count against the actors' highest seqs"
                 : "no ring wrapped: exact, the online table holds every acknowledged row",
         v->durable ? "PASS" : "FAIL");
  if (run->n_rs > 0)
    printf("soak: rows the shards reported lost at start (their counters file against the restore): %llu after %d "
           "restarts%s; %d restarts reported more than their tear cut %s\n", (unsigned long long)run->lost_reported,
           run->n_rs, c->crash_tear ? " (a tear may cut flushed rows not yet acknowledged, as no honest disk would)"
                                    : " (want 0: a kill loses nothing flushed)",
           run->lost_report_bad, run->lost_report_bad == 0 ? "PASS" : "FAIL");
  if (run->lost_report_bad > 0)
    printf("soak: FAIL durable: %d restarted shards reported more acknowledged rows lost at start than their tear cut "
           "(any, without a tear) HINT: a false alarm of the counters file's watermark; see the restart lines\n",
           run->lost_report_bad);
  if (run->counts_bad_restarts > 0 || run->final_counts_bad)
    printf("soak: FAIL durable: a shard's counts disagree (rows counted twice, or a ring holding the wrong number of "
           "rows) after %d restarts%s HINT: see the messages above; the store's restore (persist.c) is suspect\n",
           run->counts_bad_restarts, run->final_counts_bad ? " and at the end" : "");
  if (v->lost > 0)
    printf("soak: FAIL durable: %llu acknowledged rows were not in the restarted shard HINT: with --durability ckpt a "
           "SIGKILL loses the inserts since the last checkpoint (use wal); with wal, see the shard's 'restored' log "
           "lines and the actors named above\n", (unsigned long long)v->lost);
}

/* The memory lines of one shard. */
static void soak_report_mem(const soak_cfg *c, const soak_run *run, const soak_verdict *v, int s) {
  const soak_mem *m = &v->m[s];
  char tb[32];
  const char *tag = soak_out_tag(c, s, tb, sizeof tb);
  printf("soak: %swarm-up ends at %.0f s (%s); RSS %.1f MB there, %.1f MB at the end, peak (VmHWM) %.1f MB; fds "
         "%d..%d, threads %d..%d after warm-up\n", tag, m->warm_t,
         c->restart_every > 0 ? (m->ring_full_ckpt ? "a checkpoint done in the judged incarnation"
                                                   : "WARNING: no checkpoint in the judged incarnation")
         : m->ring_full_ckpt ? "ring full and a checkpoint done" : "WARNING: ring never full with a checkpoint",
         m->warm_rss, m->end_rss, m->peak_hwm, m->fds_min, m->fds_max, m->thr_min, m->thr_max);
  printf("soak: %sslowest Info %.0f ms; %d Info calls of the timeline took over 1 s (the shard stalled); longest gap "
         "between timeline points %.1f s; %d gaps over 3 s, %.0f s in all%s\n", tag, m->info_max_ms, m->stalls,
         m->max_gap, m->gaps, m->gap_s, m->gaps > 0 ? " (nothing ran then: a SIGSTOP from outside, e.g. another "
         "benchmark pausing the machine, or a stalled Info)" : "");
  printf("soak: %sbounded by configuration: %s (peak %.1f MB %s %.1f MB%s)\n", tag, m->bounded ? "PASS" : "FAIL",
         m->peak_hwm, m->bounded ? "<=" : ">", v->predicted_mb,
         c->restart_every > 0 ? ", the highest of every incarnation's" : "");
  if (c->restart_every > 0 && m->judged_inc < 0)
    printf("soak: %sflat after warm-up: FAIL (no incarnation had %d points after its warm-up HINT: raise "
           "--restart-every or --seconds)\n", tag, SOAK_MIN_FIT);
  else
    printf("soak: %sflat after warm-up: %s (%s slope %+.3f MB/min, bound %.3f [least squares %+.3f, median %+.3f]; "
           "spread %.2f MB, bound %.2f MB; %d points, inserts flowing in %.0f%%)\n", tag, m->flat ? "PASS" : "FAIL",
           c->slope_median ? "median" : "least-squares", c->slope_median ? m->slope_med : m->slope, c->max_slope,
           m->slope, m->slope_med, m->spread, m->spread_bound, m->n_fit, 100 * m->active);
  if (!m->bounded)
    printf("soak: FAIL bounded: %sthe shard's peak RSS %.1f MB exceeds tables %.1f MB + allowance %.0f MB HINT: a "
           "leak, or an allowance too small for this configuration (--allowance-mb)\n", tag, m->peak_hwm,
           run->tables_mb, c->allowance_mb);
  if (!m->flat && m->judged_inc >= 0)
    printf("soak: FAIL flat: %sRSS grew %+.3f MB/min (%s; bound %.3f) with a spread of %.2f MB (bound %.2f) over %d "
           "points after %.0f s, inserts flowing in %.0f%% of them (need 50%%) HINT: a leak per call or message; "
           "compare the timeline (--csv) with the call counts; a shard that stalled most of the window proves "
           "nothing\n", tag, c->slope_median ? m->slope_med : m->slope, c->slope_median ? "median" : "least squares",
           c->max_slope, m->spread, m->spread_bound, m->n_fit, m->warm_t, 100 * m->active);
}

void soak_out_report(const soak_cfg *c, const soak_run *run, const soak_verdict *v) {
  const soak_mem *m0 = &v->m[0];
  double t_end = run->n ? run->shard[0].pts[run->n - 1].t : 0.0;
  printf("\nsoak: %d points over %.0f s; tables %.1f MB by the --help formula (Info: %.1f MB), prediction %.1f MB "
         "(+ %.0f MB allowance)%s\n", run->n, t_end, run->tables_mb, run->shard[0].info_tables_mb, v->predicted_mb,
         c->allowance_mb, c->shards > 1 ? " per shard" : "");
  if (c->restart_every > 0) soak_report_restarts(c, run, v);
  if (c->token != NULL || c->tls)
    printf("soak: token %s, TLS %s\n", c->token != NULL ? "on (wrong-token requests in the bad requests)" : "off",
           c->tls_cert != NULL ? "on (self-signed, clients trust it)" : c->tls ? "SKIPPED (no certificate)" : "off");
  uint64_t online = 0, checkpoints = 0;
  for (int s = 0; s < c->shards; s++) online += v->m[s].online_inserted, checkpoints += v->m[s].checkpoints;
  if (c->shards == 1)
    printf("soak: rows inserted %llu (shard: %llu online, ring wrapped %.1fx, %llu duplicates), sampled %llu; "
           "checkpoints %llu; bad requests refused %llu/%llu; fresh clients %llu; Info calls %llu; failed calls %llu\n",
           (unsigned long long)v->rows_written, (unsigned long long)m0->online_inserted,
           (double)m0->online_inserted / (double)c->online_cap, (unsigned long long)run->shard[0].dup_online,
           (unsigned long long)v->rows_sampled, (unsigned long long)m0->checkpoints, (unsigned long long)v->bad_refused,
           (unsigned long long)v->bad_sent, (unsigned long long)v->churns, (unsigned long long)v->infos,
           (unsigned long long)v->errors);
  else {
    printf("soak: rows inserted %llu (shards: %llu online", (unsigned long long)v->rows_written,
           (unsigned long long)online);
    for (int s = 0; s < c->shards; s++)
      printf("%s shard %d %llu, wrapped %.1fx, %llu duplicates", s ? ";" : ":", s,
             (unsigned long long)v->m[s].online_inserted, (double)v->m[s].online_inserted / (double)c->online_cap,
             (unsigned long long)run->shard[s].dup_online);
    printf("), sampled %llu; checkpoints %llu; bad requests refused %llu/%llu; fresh clients %llu; Info calls %llu; "
           "failed calls %llu\n", (unsigned long long)v->rows_sampled, (unsigned long long)checkpoints,
           (unsigned long long)v->bad_refused, (unsigned long long)v->bad_sent, (unsigned long long)v->churns,
           (unsigned long long)v->infos, (unsigned long long)v->errors);
  }
  for (int s = 0; s < c->shards; s++) soak_report_mem(c, run, v, s);
  int exit_worst = 0;
  for (int s = 0; s < c->shards; s++)
    if (run->shard[s].child_exit != 0) exit_worst = run->shard[s].child_exit;
  printf("soak: clean: %s (failed calls %llu, bad requests refused %llu/%llu%s, %s %s, exit %d)\n",
         v->clean ? "PASS" : "FAIL", (unsigned long long)v->errors, (unsigned long long)v->bad_refused,
         (unsigned long long)v->bad_sent, v->bad_down > 0 ? " + failed while down" : "",
         c->shards > 1 ? "shards" : "shard", run->child_died ? "died during the traffic" : "stopped by SIGTERM",
         exit_worst);
  printf("soak: writers: %llu partial acknowledgements, %llu duplicates acknowledged%s\n",
         (unsigned long long)v->partial_acks, (unsigned long long)v->dup_acks,
         c->expect_partial ? (v->partial_ok ? " (some expected: PASS)"
                                            : " (some expected: FAIL HINT: the limiter never held a stream past "
                                              "--max-wait-ms; raise --samples-per-insert or lower --max-wait-ms)")
                           : "");
  soak_fresh_report(c, &run->fresh);
  if (c->json) {
    /* The memory keys are shard 0's (the one shard of the runs before --shards); per_shard has all. */
    printf("{\"pass\":%s,\"bounded\":%s,\"flat\":%s,\"clean\":%s,\"durable\":%s,\"seconds\":%.1f,\"tables_mb\":%.2f,"
           "\"predicted_mb\":%.2f,\"warm_t\":%.1f,\"warm_rss_mb\":%.2f,\"end_rss_mb\":%.2f,\"peak_hwm_mb\":%.2f,"
           "\"slope_mb_per_min\":%.4f,\"median_slope_mb_per_min\":%.4f,\"spread_mb\":%.3f,\"spread_bound_mb\":%.3f,"
           "\"rows_inserted\":%llu,\"rows_sampled\":%llu,\"checkpoints\":%llu,\"bad_sent\":%llu,\"bad_refused\":%llu,"
           "\"churns\":%llu,\"errors\":%llu,\"restarts\":%d,\"incarnation_judged\":%d,\"failed_while_down\":%llu,"
           "\"bad_failed_while_down\":%llu,\"samples_failed_while_down\":%llu,\"samples_skipping_a_shard\":%llu,"
           "\"acked_rows\":%llu,\"acked_lost\":%llu,\"online_stored\":%llu,\"token\":%s,\"tls\":%s,\"shards\":%d,"
           "\"restart_mode\":\"%s\",\"outages\":%d,\"tears\":%d,\"tear_bytes\":%llu,\"torn_bytes_dropped\":%llu,"
           "\"tear_drop_mismatches\":%d,\"acked_not_in_log\":%llu,\"partial_acks\":%llu,\"dup_acks\":%llu,"
           "\"lost_reported_at_start\":%llu,\"lost_report_mismatches\":%d,",
           v->bounded && v->flat && v->clean && v->durable && v->partial_ok && (c->fresh_rounds == 0 || run->fresh.ok)
               ? "true"
               : "false",
           v->bounded ? "true" : "false",
           v->flat ? "true" : "false", v->clean ? "true" : "false", v->durable ? "true" : "false", t_end,
           run->tables_mb, v->predicted_mb, m0->warm_t, m0->warm_rss, m0->end_rss, m0->peak_hwm, m0->slope,
           m0->slope_med, m0->spread, m0->spread_bound, (unsigned long long)v->rows_written,
           (unsigned long long)v->rows_sampled, (unsigned long long)checkpoints, (unsigned long long)v->bad_sent,
           (unsigned long long)v->bad_refused, (unsigned long long)v->churns, (unsigned long long)v->errors, run->n_rs,
           m0->judged_inc, (unsigned long long)v->errors_down, (unsigned long long)v->bad_down,
           (unsigned long long)v->samples_down, (unsigned long long)v->samples_skipped,
           (unsigned long long)run->final_acked, (unsigned long long)v->lost, (unsigned long long)run->final_stored,
           c->token != NULL ? "true" : "false", c->tls_cert != NULL ? "true" : "false", c->shards,
           c->restart_all ? "all" : "one", run->rounds, run->tears, (unsigned long long)run->tear_bytes,
           (unsigned long long)run->drop_seen, run->drop_bad, (unsigned long long)run->tear_missing,
           (unsigned long long)v->partial_acks, (unsigned long long)v->dup_acks,
           (unsigned long long)run->lost_reported, run->lost_report_bad);
    soak_fresh_json(stdout, &run->fresh);
    printf(",\"per_shard\":[");
    for (int s = 0; s < c->shards; s++) {
      const soak_mem *m = &v->m[s];
      const soak_check *k = &run->shard[s].final;
      printf("%s{\"shard\":%d,\"bounded\":%s,\"flat\":%s,\"peak_hwm_mb\":%.2f,\"slope_mb_per_min\":%.4f,"
             "\"median_slope_mb_per_min\":%.4f,\"spread_mb\":%.3f,\"incarnations\":%d,\"incarnation_judged\":%d,"
             "\"online_inserted\":%llu,\"acked_rows\":%llu,\"acked_lost\":%llu,\"actors_tops\":%llu,"
             "\"online_stored\":%llu,\"exit\":%d}", s ? "," : "", s, m->bounded ? "true" : "false",
             m->flat ? "true" : "false", m->peak_hwm, m->slope, m->slope_med, m->spread, m->n_inc, m->judged_inc,
             (unsigned long long)m->online_inserted, (unsigned long long)k->acked, (unsigned long long)k->lost,
             (unsigned long long)k->sum_top, (unsigned long long)k->size, run->shard[s].child_exit);
    }
    printf("]}\n");
  }
}

