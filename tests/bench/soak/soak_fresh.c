/* soak_fresh.c: --against-fresh, the aged shard against a fresh one (soak_fresh.h says why).
 *
 * Design. A window is the soak's own client threads (soak_traffic_start) on a one-shard copy of
 * the configuration: the target is one shard, the rate caps, churn and bad requests are off, and
 * cfg.actor_base is new for every window, so its writers start actors the shard has never seen
 * (their seqs from 0) and nothing is taken as a duplicate. The rates are the rows acknowledged to
 * the writers and received by the samplers between the threads' start and the window's end, over
 * that time; the client's connection set-up is inside it, alike for both shards. The fresh shard
 * first gets its demo rows (as the run's shards did) and warm-up windows until its online table
 * has inserted twice its capacity, so its ring, like the aged one's, has wrapped and every page of
 * it has been written; then one unmeasured window on the aged shard too, so both have met the
 * new client before the measured rounds. While a window runs, this thread relays every child's
 * output (a full pipe would stall a shard) and notices a child that died. */
#include "soak_fresh.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "soak_check.h"
#include "soak_child.h"
#include "soak_traffic.h"

#define FRESH_ACTOR_BASE 100000u /* the windows' actors: far above the run's pool and below the demo id */
#define FRESH_MAX_WARM 12        /* warm-up windows at most */

/* Relays the children's output; 0, or -1 if one of them (the run's shards, then `fresh`) died. */
static int fresh_children_ok(const soak_cfg *c, soak_run *run, soak_child *fresh) {
  for (int s = 0; s < c->shards; s++) {
    soak_shard_run *sr = &run->shard[s];
    soak_child_drain(&sr->ch);
    if (soak_child_gone(&sr->ch, &sr->child_exit)) {
      run->child_died = 1;
      return -1;
    }
  }
  int code = 0;
  soak_child_drain(fresh);
  return soak_child_gone(fresh, &code) ? -1 : 0;
}

/* One window of `secs` seconds of uncapped traffic to `target`, with the writers' actors from
 * `base`; preloads `demo_rows` demo rows first. Returns 0 with *ins and *smp in rows/s (and the
 * online table's inserted count in *inserted), or -1 with f->why set. */
static int fresh_window(const soak_cfg *c, soak_run *run, soak_child *fresh, const char *target, uint32_t base,
                        long demo_rows, double secs, soak_fresh *f, double *ins, double *smp, uint64_t *inserted) {
  soak_cfg w = *c;
  w.shards = 1;
  w.insert_rate = w.sample_rate = 0;
  w.churn_every = w.bad_every = 0;
  w.restart_every = 0;
  w.crash_tear = 0;
  w.demo_rows = demo_rows;
  w.actor_base = base;
  soak_shared sh;
  soak_traffic_shared_init(&sh, &w, target);
  rc_opts o;
  soak_traffic_opts(&o, &sh, base);
  int rc = rc_client_open(&sh.c, &o);
  int out = -1;
  if (rc != IB_OK) {
    snprintf(f->why, sizeof f->why, "opening a client of %s: %s", target, ib_errmsg());
    goto done;
  }
  soak_traffic tr;
  if (soak_traffic_start(&tr, &sh) != IB_OK) {
    snprintf(f->why, sizeof f->why, "preloading the demo rows of %s: %s", target, ib_errmsg());
    goto done;
  }
  double t0 = ib_now_s(), t1 = t0;
  int died = 0;
  while ((t1 = ib_now_s()) - t0 < secs && !died) {
    usleep(100000);
    died = fresh_children_ok(c, run, fresh) != 0;
  }
  uint64_t rows_in = atomic_load(&sh.rows_written), rows_out = atomic_load(&sh.rows_sampled);
  t1 = ib_now_s();
  soak_traffic_stop(&tr);
  f->errors += atomic_load(&sh.errors);
  if (died) {
    snprintf(f->why, sizeof f->why, "a shard died during a window (its exit is in the report)");
    goto done;
  }
  *ins = (double)rows_in / (t1 - t0);
  *smp = (double)rows_out / (t1 - t0);
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  rc = rc_info_get(sh.c, 0, info);
  const rc_table_info *on = rc == IB_OK ? soak_check_table(info, "online") : NULL;
  *inserted = on != NULL ? on->inserted : 0;
  free(info);
  if (rc != IB_OK) {
    snprintf(f->why, sizeof f->why, "Info of %s after a window: %s", target, ib_errmsg());
    goto done;
  }
  out = 0;
done:
  rc_client_close(sh.c);
  soak_traffic_shared_free(&sh);
  return out;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(const double *v, int n) {
  double s[SOAK_MAX_FRESH_ROUNDS];
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_double);
  return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

void soak_fresh_run(const soak_cfg *c, soak_run *run) {
  soak_fresh *f = &run->fresh;
  memset(f, 0, sizeof *f);
  f->asked = 1;
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "/tmp/ibrl-soak-fresh-XXXXXX");
  if (mkdtemp(dir) == NULL) {
    snprintf(f->why, sizeof f->why, "mkdtemp /tmp/ibrl-soak-fresh-*: %s", strerror(errno));
    return;
  }
  soak_child fresh;
  memset(&fresh, 0, sizeof fresh);
  fresh.pid = -1;
  if (soak_child_start(&fresh, c, dir, 0, c->shards) != IB_OK) {
    snprintf(f->why, sizeof f->why, "the fresh shard: %s", ib_errmsg());
    soak_child_dir_remove(dir);
    return;
  }
  const char *target[2] = {run->shard[0].ch.target, fresh.target};
  printf("soak: against a fresh shard: shard 0 (%s, aged by the run) and a fresh one (%s), %d rounds of %.0f s of "
         "uncapped traffic each, in turns\n", target[0], target[1], c->fresh_rounds, c->fresh_window);
  fflush(stdout);
  uint32_t base = FRESH_ACTOR_BASE;
  double ins, smp, t0 = ib_now_s();
  uint64_t inserted = 0;
  int bad = 0;
  /* The fresh shard: demo rows, then until its ring has wrapped twice. */
  for (int k = 0; k < FRESH_MAX_WARM && !bad && inserted < 2 * (uint64_t)c->online_cap; k++, base += (uint32_t)c->actors)
    bad = fresh_window(c, run, &fresh, target[1], base, k == 0 ? c->demo_rows : 0, c->fresh_window, f, &ins, &smp,
                       &inserted) != 0;
  if (!bad && inserted < 2 * (uint64_t)c->online_cap) {
    snprintf(f->why, sizeof f->why, "the fresh shard's ring did not wrap twice in %d warm-up windows (%llu rows "
             "inserted) HINT: a longer --fresh-window", FRESH_MAX_WARM, (unsigned long long)inserted);
    bad = 1;
  }
  f->warm_s = ib_now_s() - t0;
  if (!bad) {
    bad = fresh_window(c, run, &fresh, target[0], base, 0, c->fresh_window, f, &ins, &smp, &inserted) != 0;
    base += (uint32_t)c->actors;
  }
  for (int r = 0; r < c->fresh_rounds && !bad; r++) {
    for (int k = 0; k < 2 && !bad; k++, base += (uint32_t)c->actors) {
      int which = r % 2 == 0 ? k : 1 - k;
      bad = fresh_window(c, run, &fresh, target[which], base, 0, c->fresh_window, f, &f->ins[which][r],
                         &f->smp[which][r], &inserted) != 0;
    }
    if (!bad) {
      f->rounds = r + 1;
      printf("soak: round %d: aged %.0f inserted and %.0f sampled rows/s, fresh %.0f and %.0f\n", r + 1,
             f->ins[0][r], f->smp[0][r], f->ins[1][r], f->smp[1][r]);
      fflush(stdout);
    }
  }
  int code = soak_child_stop(&fresh, SIGTERM, 60);
  if (!bad && code != 0) {
    snprintf(f->why, sizeof f->why, "the fresh shard exited %d after SIGTERM (0 expected)", code);
    bad = 1;
  }
  soak_child_dir_remove(dir);
  f->ran = !bad;
  if (f->rounds > 0) {
    for (int i = 0; i < 2; i++) f->ins_med[i] = median(f->ins[i], f->rounds), f->smp_med[i] = median(f->smp[i], f->rounds);
    f->ins_ratio = f->ins_med[1] > 0 ? f->ins_med[0] / f->ins_med[1] : 0;
    f->smp_ratio = f->smp_med[1] > 0 ? f->smp_med[0] / f->smp_med[1] : 0;
  }
  double bound = 1 - c->max_decay / 100;
  f->ok = f->ran && f->errors == 0 && f->ins_ratio >= bound && (c->samplers == 0 || f->smp_ratio >= bound);
}

void soak_fresh_report(const soak_cfg *c, const soak_fresh *f) {
  if (!f->asked) return;
  if (!f->ran)
    printf("soak: against a fresh shard: did not run to its end (%d of %d rounds): %s\n", f->rounds, c->fresh_rounds,
           f->why);
  if (f->rounds > 0)
    printf("soak: against a fresh shard: %s (medians of %d round%s of %.0f s; aged / fresh: inserts %.0f / %.0f rows/s "
           "= %.1f%%, samples %.0f / %.0f = %.1f%%; bound %.1f%%; failed calls %llu; fresh warm-up %.0f s)\n",
           f->ok ? "PASS" : "FAIL", f->rounds, f->rounds == 1 ? "" : "s", c->fresh_window, f->ins_med[0], f->ins_med[1], 100 * f->ins_ratio,
           f->smp_med[0], f->smp_med[1], 100 * f->smp_ratio, 100 - c->max_decay, (unsigned long long)f->errors,
           f->warm_s);
  if (f->ran && !f->ok)
    printf("soak: HINT: an aged shard slower than a fresh one on the same machine decays with its lifetime; rerun "
           "with more --against-fresh rounds to tell it from noise, and compare the shards' checkpoint lines\n");
}

void soak_fresh_json(FILE *out, const soak_fresh *f) {
  if (!f->asked) {
    fprintf(out, "\"fresh\":null");
    return;
  }
  fprintf(out, "\"fresh\":{\"pass\":%s,\"ran\":%s,\"rounds\":%d,\"aged_insert_rows_s\":%.0f,"
          "\"fresh_insert_rows_s\":%.0f,\"insert_ratio\":%.4f,\"aged_sample_rows_s\":%.0f,\"fresh_sample_rows_s\":%.0f,"
          "\"sample_ratio\":%.4f,\"errors\":%llu}", f->ok ? "true" : "false", f->ran ? "true" : "false", f->rounds,
          f->ins_med[0], f->ins_med[1], f->ins_ratio, f->smp_med[0], f->smp_med[1], f->smp_ratio,
          (unsigned long long)f->errors);
}
