/* soak_check.c: the loss checks and the memory verdict of `ibrl-bench soak` (issue #5: "bounded by
 * configuration; flat over a long run"; "survive restarts without losing acknowledged data").
 *
 * Verdict, after the shards were stopped with SIGTERM (each must exit 0: drained, final checkpoint):
 *   bounded  the peak RSS (VmHWM) stays under the configuration's prediction: the tables' bytes as
 *            `ibrl-replay --help` states them, capacity x (round16(2 obs + act + 2) x 4 + 22) per
 *            table, plus a fixed allowance (--allowance-mb, default 64) for the rest of the process:
 *            code, gRPC, thread stacks, the heap that keeps freed message buffers (ibrl-replay keeps
 *            up to 128 MB of free heap by mallopt), the log's buffers;
 *   flat     after warm-up (the later of: the ring full and a first checkpoint done, and
 *            --warmup of the run), the RSS slope is under --max-slope MB/min and the max-min spread
 *            under --max-spread % of the RSS at warm-up (--max-spread-mb is the floor of that bound
 *            in MB, for small processes whose few MB of heap steps are many percent), with inserts
 *            flowing in at least half of the window. The slope is the least-squares one, or with
 *            --slope median the median of the per-second growth: ibrl-replay keeps freed heap, so a
 *            clean shard's RSS is the heap's high-water mark, which rises in rare steps (a burst of
 *            concurrent messages after a stall) that tilt a short window's least-squares line,
 *            while a leak per message grows it every second and moves the median fully;
 *   clean    no call failed, and every bad request was refused as it should be;
 *   durable  (restarts only) no acknowledged row lost, and the counts below hold; no restart whose
 *            shard reports rows lost at start (Info's restore_missing_acked) beyond what its tear cut
 *            (none without a tear); with --crash-tear also every tear made, no acknowledged row
 *            missing from a log before its tear, and every restore dropping exactly the torn bytes
 *            (soak_tear.c).
 * With restarts memory is judged per incarnation: each one's peak under the prediction, and the
 * last one with enough points after its own warm-up (a checkpoint done in it and --warmup of its
 * length) flat. With several shards, per shard (each its own prediction, incarnations and window).
 * The bounds' justification (measured clean runs and a planted leak) is in
 * docs/results/replay-soak.md.
 *
 * The loss check. The writers keep acked[a]: actor a has seqs [0, acked[a]) acknowledged (exact,
 * soak_traffic.c). A shard's Info gives, per actor, the highest seq stored (from the table's dedup
 * registry, which eviction never touches and which checkpoint and log both restore), and for the
 * online table its size and `inserted`, the items ever stored (kept in the checkpoint and recounted
 * by the log replay: persist.h). With top[a] = highest + 1 (0 if not listed), right after each
 * restart of a shard, over that shard's actors:
 *   (1) top[a] >= acked[a] as it was when the shard was stopped, and the demo table holds its
 *       preloaded rows;
 *   (2) inserted <= sum(top): no row counted twice (Info reads the tables before the actors, so
 *       inserts racing the check can only lower the left side);
 *   (3) size == min(capacity, inserted): the FIFO ring holds as many rows as it should;
 * and at the end (writers closed, nothing in flight) (1), (3) and inserted == sum(top): each seq
 * below each top was stored exactly once. A writer never resends an acknowledged row, so a row lost
 * in a restart stays a hole in these counts for good, whether the ring evicted it later or not.
 * When the ring did not wrap (size == inserted) this is the exact check "the table holds exactly
 * sum(top) rows". When it wrapped, it checks the shard's bookkeeping, not the rows themselves: a
 * restore that kept the counts but dropped a row's payload is invisible once the ring has wrapped
 * past that row; and the sums are per shard, so a hole in one actor could cancel a double in
 * another (the store's dedup makes doubles impossible by construction). Info lists at most
 * RC_MAX_ACTORS actors, hence --actors <= RC_MAX_ACTORS with restarts. With --durability ckpt a
 * SIGKILL loses the inserts since the last checkpoint by design, so the check is valid only for
 * SIGTERM restarts there (it goes red under SIGKILL: that is how its failure was shown). */
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "soak_check.h"
#include "soak_out.h"

/* ---- the prediction and the loss check ---- */

double soak_check_table_bytes(long cap, int obs, int act) {
  long floats = ((2L * obs + act + 2 + 15) / 16) * 16;
  return (double)cap * (double)(floats * 4 + 22);
}

const rc_table_info *soak_check_table(const rc_shard_info *in, const char *name) {
  for (int i = 0; i < in->n_tables; i++)
    if (strcmp(in->tables[i].name, name) == 0) return &in->tables[i];
  return NULL;
}

void soak_check_shard(const soak_cfg *c, int shard, const rc_shard_info *in, const uint64_t *acked, int exact,
                      soak_check *k) {
  char tb[32];
  const char *tag = soak_out_tag(c, shard, tb, sizeof tb);
  memset(k, 0, sizeof *k);
  int printed = 0;
  for (int a = shard; a < c->actors; a += c->shards) {
    uint64_t top = 0;
    for (int i = 0; i < in->n_actors; i++)
      if (in->actors[i].actor_id == (uint32_t)a) top = in->actors[i].last_seq + 1;
    k->sum_top += top;
    k->acked += acked[a];
    if (acked[a] > top) {
      k->short_rows += acked[a] - top;
      if (printed++ < 4)
        fprintf(stderr, "soak: %sactor %d: seqs [0, %llu) acknowledged, the shard's highest stored seq + 1 is %llu: "
                "%llu acknowledged rows lost\n", tag, a, (unsigned long long)acked[a], (unsigned long long)top,
                (unsigned long long)(acked[a] - top));
    }
  }
  const rc_table_info *on = soak_check_table(in, "online"), *dm = soak_check_table(in, "demo");
  uint64_t demo = dm != NULL ? dm->size : 0;
  k->acked += (uint64_t)c->demo_rows;
  if (demo < (uint64_t)c->demo_rows) {
    k->short_rows += (uint64_t)c->demo_rows - demo;
    fprintf(stderr, "soak: %sthe demo table holds %llu of the %ld preloaded (acknowledged) rows\n", tag,
            (unsigned long long)demo, c->demo_rows);
  }
  if (on != NULL) k->inserted = on->inserted, k->size = on->size, k->capacity = on->capacity;
  if (k->inserted > k->sum_top) {
    k->doubles = k->inserted - k->sum_top;
    fprintf(stderr, "soak: %sthe online table counts %llu rows inserted but its actors' highest seqs span only %llu: "
            "%llu rows counted twice\n", tag, (unsigned long long)k->inserted, (unsigned long long)k->sum_top,
            (unsigned long long)k->doubles);
  }
  if (exact && k->inserted < k->sum_top) {
    k->holes = k->sum_top - k->inserted;
    fprintf(stderr, "soak: %sthe online table counts %llu rows inserted but its actors' highest seqs span %llu: %llu "
            "rows missing below them%s\n", tag, (unsigned long long)k->inserted, (unsigned long long)k->sum_top,
            (unsigned long long)k->holes, k->inserted > k->capacity ? " (lost, whether evicted since or not)" : "");
  }
  uint64_t want = k->inserted < k->capacity ? k->inserted : k->capacity;
  if (on == NULL || k->size != want) {
    k->size_bad = 1;
    fprintf(stderr, "soak: %sthe online table holds %llu rows, but a ring of %llu that stored %llu must hold %llu\n",
            tag, (unsigned long long)k->size, (unsigned long long)k->capacity, (unsigned long long)k->inserted,
            (unsigned long long)want);
  }
  k->lost = k->short_rows + k->holes;
}

/* ---- the memory verdict ---- */

/* Without restarts: the later of (ring full and a checkpoint done) and warmup x the run. With
 * restarts, for incarnation points [i0, i1): the later of (a checkpoint done in it) and warmup x
 * its length after its first point. */
static double soak_warm_t(const soak_cfg *c, const soak_point *pts, int i0, int i1, int *ready) {
  int need_ckpt = c->ckpt_period > 0, restarts = c->restart_every > 0;
  double floor_t = c->warmup * c->seconds;
  if (restarts) floor_t = pts[i0].t + c->warmup * (pts[i1 - 1].t - pts[i0].t);
  *ready = 0;
  for (int i = i0; i < i1; i++) {
    const soak_point *p = &pts[i];
    if ((restarts || p->online_size >= (uint64_t)c->online_cap) && (!need_ckpt || p->checkpoints >= 1)) {
      *ready = 1;
      return p->t > floor_t ? p->t : floor_t;
    }
  }
  return floor_t;
}

static int soak_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Over the points [i0, i1) at t >= v->warm_t: the least-squares slope and the median per-second
 * growth (MB/min), the spread, the share of points with inserts flowing, fd and thread ranges. A
 * leak per message grows RSS every second, so it moves the median; the heap's high-water steps (a
 * burst of concurrent messages after a stall, once) move the least-squares slope of a short
 * window but not the median. With `by_counter` (restarts, or several shards, where the writers'
 * rate is not this shard's) a second counts as one with inserts flowing when the shard's insert
 * counter moved (small batches are acknowledged in bursts of up to 1024 rows a writer, seconds
 * apart). The store's memory is resident from its creation (records and per-slot arrays), so a
 * filling ring does not grow RSS. */
static void soak_fit(const soak_point *pts, int n_all, int i0, int i1, int by_counter, soak_mem *v) {
  double st = 0, sr = 0, stt = 0, str = 0, lo = INFINITY, hi = -INFINITY;
  double *growth = ib_xcalloc((size_t)n_all + 1, sizeof *growth);
  int n = 0, ng = 0, active = 0;
  const soak_point *prev = NULL;
  double prev_rss = 0;
  v->fds_min = v->thr_min = INT_MAX;
  v->fds_max = v->thr_max = 0;
  for (int i = i0; i < i1; i++) {
    const soak_point *p = &pts[i];
    if (p->t < v->warm_t) continue;
    double rss = p->rss_mb;
    if (n == 0) v->warm_rss = rss;
    double t = p->t / 60.0;
    st += t, sr += rss, stt += t * t, str += t * rss, n++;
    lo = fmin(lo, rss), hi = fmax(hi, rss);
    if (by_counter) active += prev != NULL && p->online_inserted > prev->online_inserted;
    else active += p->ins_per_s > 0;
    if (prev != NULL && p->t > prev->t) growth[ng++] = (rss - prev_rss) / (p->t - prev->t) * 60.0;
    prev = p, prev_rss = rss;
    if (p->fds < v->fds_min) v->fds_min = p->fds;
    if (p->fds > v->fds_max) v->fds_max = p->fds;
    if (p->threads < v->thr_min) v->thr_min = p->threads;
    if (p->threads > v->thr_max) v->thr_max = p->threads;
  }
  v->n_fit = n;
  double den = n * stt - st * st;
  v->slope = n >= 2 && den > 0 ? (n * str - st * sr) / den : NAN;
  qsort(growth, (size_t)ng, sizeof *growth, soak_cmp_double);
  v->slope_med = ng == 0 ? NAN : ng % 2 ? growth[ng / 2] : 0.5 * (growth[ng / 2 - 1] + growth[ng / 2]);
  free(growth);
  v->spread = n >= 1 ? hi - lo : NAN;
  v->active = n >= 1 ? (double)active / n : 0;
}

void soak_check_inc_range(const soak_point *pts, int n, int inc, int *i0, int *i1) {
  int a = 0;
  while (a < n && pts[a].inc < inc) a++;
  int b = a;
  while (b < n && pts[b].inc == inc) b++;
  *i0 = a, *i1 = b;
}

double soak_check_peak(const soak_point *pts, int i0, int i1) {
  double peak = 0;
  for (int i = i0; i < i1; i++) peak = fmax(peak, pts[i].hwm_mb);
  return peak;
}

/* The memory verdict of one shard's timeline. */
static void soak_judge_mem(const soak_cfg *c, const soak_run *run, const soak_point *pts, double predicted_mb,
                           soak_mem *v) {
  memset(v, 0, sizeof *v);
  int n = run->n;
  v->n_inc = n > 0 ? pts[n - 1].inc + 1 : 0;
  v->judged_inc = -1;
  for (int i = 0; i < n; i++) {
    v->info_max_ms = fmax(v->info_max_ms, pts[i].info_ms);
    v->stalls += pts[i].info_ms > 1000;
    if (i > 0 && !run->restart_after[i - 1]) {
      double gap = pts[i].t - pts[i - 1].t;
      v->max_gap = fmax(v->max_gap, gap);
      if (gap > 3) v->gaps++, v->gap_s += gap;
    }
  }
  int by_counter = c->restart_every > 0 || c->shards > 1;
  if (c->restart_every <= 0) {
    v->warm_t = soak_warm_t(c, pts, 0, n, &v->ring_full_ckpt);
    soak_fit(pts, n, 0, n, by_counter, v);
    v->judged_inc = 0;
  } else {
    /* The last incarnation with enough points after its own warm-up is judged flat. */
    for (int inc = v->n_inc - 1; inc >= 0 && v->judged_inc < 0; inc--) {
      int i0, i1;
      soak_check_inc_range(pts, n, inc, &i0, &i1);
      if (i1 - i0 < 2) continue;
      soak_mem t = *v;
      t.warm_t = soak_warm_t(c, pts, i0, i1, &t.ring_full_ckpt);
      soak_fit(pts, n, i0, i1, by_counter, &t);
      if (t.n_fit < SOAK_MIN_FIT) continue;
      *v = t;
      v->judged_inc = inc;
    }
  }
  const soak_point *last = n > 0 ? &pts[n - 1] : NULL;
  v->end_rss = last ? last->rss_mb : NAN;
  v->peak_hwm = 0;
  for (int inc = 0; inc < v->n_inc; inc++) {
    int i0, i1;
    soak_check_inc_range(pts, n, inc, &i0, &i1);
    double peak = soak_check_peak(pts, i0, i1);
    if (peak > v->peak_hwm) v->peak_hwm = peak, v->worst_inc = inc;
  }
  v->spread_bound = fmax(c->max_spread / 100.0 * v->warm_rss, c->max_spread_mb);
  v->online_inserted = last ? last->online_inserted : 0;
  v->checkpoints = last ? last->checkpoints : 0;
  v->bounded = last != NULL && v->peak_hwm <= predicted_mb;
  double slope = c->slope_median ? v->slope_med : v->slope;
  v->flat = v->judged_inc >= 0 && v->n_fit >= 5 && v->active >= 0.5 && slope < c->max_slope &&
            v->spread < v->spread_bound;
}

void soak_check_judge(const soak_cfg *c, const soak_shared *sh, const soak_run *run, soak_verdict *v) {
  memset(v, 0, sizeof *v);
  v->predicted_mb = run->tables_mb + c->allowance_mb;
  v->bounded = v->flat = 1;
  int exits_ok = 1;
  for (int s = 0; s < c->shards; s++) {
    soak_judge_mem(c, run, run->shard[s].pts, v->predicted_mb, &v->m[s]);
    v->bounded &= v->m[s].bounded;
    v->flat &= v->m[s].flat;
    exits_ok &= run->shard[s].child_exit == 0;
  }
  v->rows_written = atomic_load(&sh->rows_written);
  v->rows_sampled = atomic_load(&sh->rows_sampled);
  v->errors = atomic_load(&sh->errors);
  v->bad_sent = atomic_load(&sh->bad_sent);
  v->bad_refused = atomic_load(&sh->bad_refused);
  v->churns = atomic_load(&sh->churns);
  v->infos = atomic_load(&sh->infos);
  v->errors_down = atomic_load(&sh->errors_down);
  v->bad_down = atomic_load(&sh->bad_down);
  v->samples_down = atomic_load(&sh->samples_down);
  v->samples_skipped = atomic_load(&sh->samples_skipped);
  v->partial_acks = atomic_load(&sh->partial_acks);
  v->dup_acks = atomic_load(&sh->dup_acks);
  v->partial_ok = !c->expect_partial || v->partial_acks > 0;
  /* A row lost in a restart stays missing (writers never resend acknowledged rows), so the end's
   * check sees it again, as a hole or a short actor: the distinct rows lost are the larger count. */
  v->lost = run->final_lost > run->lost_restarts ? run->final_lost : run->lost_restarts;
  v->clean = v->errors == 0 && v->bad_refused + v->bad_down == v->bad_sent && (c->bad_every <= 0 || v->bad_sent > 0) &&
             !run->child_died && exits_ok && run->term_bad == 0 && !run->restart_failed;
  /* --crash-tear: a tear that failed, an acknowledged row the log did not hold before it was torn,
   * or a restore that dropped other than the torn bytes fails durability too. */
  v->durable = c->restart_every <= 0 || (v->lost == 0 && run->counts_bad_restarts == 0 && !run->final_counts_bad &&
                                         run->final_checked && !run->restart_failed && run->tear_failed == 0 &&
                                         run->tear_missing == 0 && run->drop_bad == 0 && run->lost_report_bad == 0);
}

