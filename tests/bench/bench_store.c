/* bench_store.c: `ibrl-bench store`, the in-process benchmark of the replay store (no gRPC):
 * the sample gather of one learner batch, logged inserts with group commit, and a background
 * checkpoint with a sampler running meanwhile, plus restore, the acknowledgement latency of
 * logged inserts with periodic checkpoints against without (--what acks), and what a checkpoint's
 * fork does to the record arena's huge pages and what mending gives back (--what thp). The timing
 * lives in replay/store/store_bench.c so `ibrl-bench` can call the same functions.
 *
 * Defaults follow anchors.md ("replay batch gathering"): obs 69, action 7, 256-row batches from a
 * ~1.2 GB online table of 1,826,091 transitions. The default run takes about a minute and needs
 * ~1.5 GB of memory and ~200 MB of disk in --dir. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "ib.h"
#include "store_bench.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench store [flags]\n"
          "  --what W            gather, persist, acks, thp or all (default all)\n"
          "  --obs-dim N         observation floats (default 69)\n"
          "  --act-dim N         action-chunk floats (default 7)\n"
          "  --capacity N        online items for the gather (default 1826091, ~1.2 GB) and for thp\n"
          "                      (default 300000, ~190 MB)\n"
          "  --batch N           rows per sample (default 256)\n"
          "  --demo-fraction F   demo share of each batch, <0 = by table size (default 0 and 0.5)\n"
          "  --iters N           timed samples per repetition (default 20000)\n"
          "  --reps N            repetitions, 1..8 (default 3)\n"
          "  --dir D             empty scratch directory for the persist part (required for it)\n"
          "  --ckpt-items N      online items in the checkpoint (default 300000, ~200 MB)\n"
          "  --threads N         inserter threads for group commit and acks, 1..16 (default 4)\n"
          "acks: logged inserts of 16 items with a checkpoint every --period-ms, and without, in turn\n"
          "(--reps rounds, default 3); the table holds --ckpt-items items (default 300000)\n"
          "  --seconds S         per mode and round, 1..3600 (default 10)\n"
          "  --period-ms N       between checkpoint starts, 10..600000 (default 1000)\n"
          "  --window-ms N       worst ack that starts this soon after a checkpoint starts (default 100)\n"
          "thp: the online table's huge pages fresh, after a fork whose child lives while every online row\n"
          "is rewritten (inserts during a checkpoint), and after store_huge_collapse; in each state the MB\n"
          "in huge pages, the median sample time (--iters samples) and the median fork time (20 forks)\n"
          "  -h, --help          this text\n");
}

static int parse_u64(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || !end || *end || v[0] == '-' || x < lo || x > hi) {
    fprintf(stderr, "ibrl-bench store: %s '%s' is not an integer in [%llu, %llu]\n", flag, v,
            (unsigned long long)lo, (unsigned long long)hi);
    return -1;
  }
  *out = x;
  return 0;
}

int bench_store(int argc, char **argv);
int bench_store(int argc, char **argv) {
  const char *what = "all", *dir = NULL;
  uint64_t obs = 69, act = 7, cap = 1826091, batch = 256, iters = 20000, reps = 3;
  bool cap_set = false;
  uint64_t ckpt_items = 300000, threads = 4, seconds = 10, period_ms = 1000, window_ms = 100;
  double frac = -2; /* -2: run 0 and 0.5 */
  static const struct option opts[] = {{"what", required_argument, 0, 'w'},
                                       {"obs-dim", required_argument, 0, 'o'},
                                       {"act-dim", required_argument, 0, 'a'},
                                       {"capacity", required_argument, 0, 'c'},
                                       {"batch", required_argument, 0, 'b'},
                                       {"demo-fraction", required_argument, 0, 'f'},
                                       {"iters", required_argument, 0, 'i'},
                                       {"reps", required_argument, 0, 'r'},
                                       {"dir", required_argument, 0, 'd'},
                                       {"ckpt-items", required_argument, 0, 'k'},
                                       {"threads", required_argument, 0, 't'},
                                       {"seconds", required_argument, 0, 'S'},
                                       {"period-ms", required_argument, 0, 'P'},
                                       {"window-ms", required_argument, 0, 'W'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c, bad = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
    case 'w':
      what = optarg;
      break;
    case 'o':
      bad |= parse_u64("--obs-dim", optarg, 1, 1 << 20, &obs);
      break;
    case 'a':
      bad |= parse_u64("--act-dim", optarg, 1, 1 << 20, &act);
      break;
    case 'c':
      bad |= parse_u64("--capacity", optarg, 1, INT32_MAX, &cap);
      cap_set = true;
      break;
    case 'b':
      bad |= parse_u64("--batch", optarg, 1, 1 << 20, &batch);
      break;
    case 'i':
      bad |= parse_u64("--iters", optarg, 1, 100000000, &iters);
      break;
    case 'r':
      bad |= parse_u64("--reps", optarg, 1, 8, &reps);
      break;
    case 'k':
      bad |= parse_u64("--ckpt-items", optarg, 1, INT32_MAX, &ckpt_items);
      break;
    case 't':
      bad |= parse_u64("--threads", optarg, 1, 16, &threads);
      break;
    case 'S':
      bad |= parse_u64("--seconds", optarg, 1, 3600, &seconds);
      break;
    case 'P':
      bad |= parse_u64("--period-ms", optarg, 10, 600000, &period_ms);
      break;
    case 'W':
      bad |= parse_u64("--window-ms", optarg, 1, 600000, &window_ms);
      break;
    case 'd':
      dir = optarg;
      break;
    case 'f': {
      char *end = NULL;
      frac = strtod(optarg, &end);
      if (!end || *end || !(frac <= 1)) {
        fprintf(stderr, "ibrl-bench store: --demo-fraction '%s' is not a number <= 1\n", optarg);
        bad = 1;
      }
      break;
    }
    case 'h':
      usage(stdout);
      return 0;
    default: {
      char why[256];
      fprintf(stderr, "ibrl-bench store: %s (HINT: ibrl-bench store --help lists the flags)\n",
              cli_bad_option_msg(why, sizeof why, c, argv[optind - 1], opts));
      return 2;
    }
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ibrl-bench store: unexpected argument '%s' (HINT: see --help)\n",
            argv[optind]);
    return 2;
  }
  if (bad) return 2;
  bool do_gather = !strcmp(what, "gather") || !strcmp(what, "all");
  bool do_persist = !strcmp(what, "persist") || !strcmp(what, "all");
  bool do_acks = !strcmp(what, "acks") || !strcmp(what, "all");
  bool do_thp = !strcmp(what, "thp") || !strcmp(what, "all");
  if (!do_gather && !do_persist && !do_acks && !do_thp) {
    fprintf(stderr, "ibrl-bench store: --what '%s' is unknown (HINT: gather, persist, acks, thp or all)\n",
            what);
    return 2;
  }
  if ((do_persist || do_acks) && !dir) {
    fprintf(stderr, "ibrl-bench store: the persist and acks parts need --dir (an empty scratch directory), "
                    "or use --what gather or thp\n");
    return 2;
  }
  if (window_ms > period_ms) {
    fprintf(stderr, "ibrl-bench store: --window-ms %llu is longer than --period-ms %llu (HINT: the window must "
                    "end before the next checkpoint starts)\n", (unsigned long long)window_ms,
            (unsigned long long)period_ms);
    return 2;
  }
  /* --dir is setup: check it before any part runs (a bad one used to fail only after the gather
   * part, with exit 1). Created here if missing; its parent must exist. */
  if (do_persist || do_acks) {
    struct stat st;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
      fprintf(stderr, "ibrl-bench store: cannot create --dir '%s': %s (HINT: give a writable scratch directory "
                      "whose parent exists)\n", dir, strerror(errno));
      return 2;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
      fprintf(stderr, "ibrl-bench store: --dir '%s' is not a directory (HINT: give an empty scratch directory)\n", dir);
      return 2;
    }
  }

  if (do_gather) {
    double fr[2] = {0.0, 0.5};
    int nf = 2;
    if (frac != -2) fr[0] = frac, nf = 1;
    for (int k = 0; k < nf; k++) {
      store_bench_gather_cfg g = {(int)obs, (int)act,   cap,       10000, (uint32_t)batch,
                                  fr[k],    (int)iters, (int)reps, 1};
      store_bench_gather_result r;
      fprintf(stderr, "gather: filling %llu items, then %d x %llu samples of %llu rows...\n",
              (unsigned long long)cap, (int)reps, (unsigned long long)iters,
              (unsigned long long)batch);
      if (store_bench_gather(&g, &r) != IB_OK) {
        fprintf(stderr, "ibrl-bench store: %s\n", ib_errmsg());
        return 1;
      }
      printf("gather  obs %llu act %llu batch %llu demo_fraction %.2f table %.2f GB (fill %.0f "
             "inserts/s):",
             (unsigned long long)obs, (unsigned long long)act, (unsigned long long)batch, fr[k],
             (double)r.table_bytes / 1e9, r.fill_inserts_per_s);
      for (int i = 0; i < (int)reps; i++)
        printf(" median %.1f us (p10 %.1f, p90 %.1f)%s", r.us_median[i], r.us_p10[i], r.us_p90[i],
               i + 1 < (int)reps ? ";" : "\n");
    }
  }
  if (do_thp) {
    store_bench_thp_cfg tc = {(int)obs, (int)act, cap_set ? cap : 300000, (uint32_t)batch, frac == -2 ? 0.5 : frac,
                              (int)iters, 20, 1};
    store_bench_thp_result r;
    fprintf(stderr, "thp: filling %llu items; in each of 3 states %llu samples of %llu rows and 20 forks...\n",
            (unsigned long long)tc.capacity, (unsigned long long)iters, (unsigned long long)batch);
    if (store_bench_thp(&tc, &r) != IB_OK) {
      fprintf(stderr, "ibrl-bench store: %s\n", ib_errmsg());
      return 1;
    }
    printf("thp     table %.2f GB, batch %llu, demo_fraction %.2f\n", (double)r.table_bytes / 1e9,
           (unsigned long long)batch, tc.demo_fraction);
    const store_bench_thp_state *st[3] = {&r.fresh, &r.split, &r.collapsed};
    const char *name[3] = {"fresh", "after fork+rewrite", "after collapse"};
    for (int i = 0; i < 3; i++)
      printf("thp     %-18s huge pages %7.1f MB  sample median %6.1f us  fork median %6.2f ms\n", name[i],
             st[i]->huge_mb, st[i]->us_median, st[i]->fork_ms_median);
    printf("thp     store_huge_collapse took %.1f ms (%.1f MB collapsed or whole%s)\n", r.collapse_ms,
           (double)r.collapse_bytes / 1048576.0, r.collapse_bytes ? "" : ": the kernel cannot (Linux 6.1+ has it)");
  }
  if (do_persist) {
    store_bench_persist_cfg pc = {dir, (int)obs, (int)act, ckpt_items, (int)threads, 200, 16};
    store_bench_persist_result r;
    fprintf(stderr,
            "persist: logged inserts, then a checkpoint of %llu items and a restore in %s...\n",
            (unsigned long long)ckpt_items, dir);
    if (store_bench_persist(&pc, &r) != IB_OK) {
      fprintf(stderr, "ibrl-bench store: %s\n", ib_errmsg());
      return 1;
    }
    printf("wal     batches of 16: %.0f acknowledged batches/s with 1 thread, %.0f with %llu "
           "(group commit); batches of 4096: %.0f items/s\n",
           r.wal1_batches_per_s, r.waln_batches_per_s, (unsigned long long)threads,
           r.bulk_items_per_s);
    printf("ckpt    %.1f MB in %.2f s (%.0f MB/s), store held %.1f ms (%s); a sampler ran %llu "
           "batches meanwhile, worst %.1f ms\n",
           (double)r.ckpt_bytes / 1e6, r.ckpt_s, r.ckpt_mb_per_s, r.ckpt_blocked_s * 1e3,
           r.ckpt_background ? "background writer" : "written in place",
           (unsigned long long)r.samples_during_ckpt, r.sample_max_us_during_ckpt / 1e3);
    printf("restore %.2f s (%.0f MB/s)\n", r.restore_s, r.restore_mb_per_s);
  }
  if (do_acks) {
    /* Its own subdirectory, so `--what all` can reuse --dir after the persist part. */
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/acks", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
      fprintf(stderr, "ibrl-bench store: cannot create --dir '%s': %s (HINT: give a writable path)\n", dir,
              strerror(errno));
      return 1;
    }
    store_bench_acks_cfg ac = {sub, (int)obs, (int)act, ckpt_items, (int)threads, 16, (double)seconds,
                               (int)period_ms, (int)window_ms, (int)reps};
    store_bench_acks_result r;
    fprintf(stderr, "acks: %llu threads logging batches of 16 for %llu s, with a checkpoint of %llu items every "
            "%llu ms and without, %llu rounds, in %s...\n", (unsigned long long)threads,
            (unsigned long long)seconds, (unsigned long long)ckpt_items, (unsigned long long)period_ms,
            (unsigned long long)reps, sub);
    if (store_bench_acks(&ac, &r) != IB_OK) {
      fprintf(stderr, "ibrl-bench store: %s\n", ib_errmsg());
      return 1;
    }
    const store_bench_acks_stats *m[2] = {&r.with_ckpt, &r.without};
    for (int k = 0; k < 2; k++)
      printf("acks    %s checkpoints: %llu acks, median %.2f ms, p99 %.2f, max %.2f; worst ack starting within "
             "%llu ms of %d checkpoint starts%s: median %.2f ms, max %.2f; in the rest of each period: median "
             "%.2f ms, max %.2f\n",
             k == 0 ? "with   " : "without", (unsigned long long)m[k]->acks, m[k]->p50_ms, m[k]->p99_ms,
             m[k]->max_ms, (unsigned long long)window_ms, m[k]->windows, k == 0 ? "" : " (same times, none run)",
             m[k]->win_med_ms, m[k]->win_max_ms, m[k]->rest_med_ms, m[k]->rest_max_ms);
    printf("acks    cuts held the store median %.2f ms, max %.2f; a checkpoint took %.2f s (median)\n",
           r.cut_med_ms, r.cut_max_ms, r.ckpt_med_s);
  }
  return 0;
}
