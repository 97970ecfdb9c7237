/* runlog.c: metrics.csv, summary.json and the learning-curve PNG of a run directory.
 *
 * Design. Files are reopened per write so a killed run leaves whole rows behind; numbers are
 * printed with %.6g, which is deterministic for identical doubles, so same-seed runs give
 * byte-identical rows except wall_s. The plot is a gnuplot script written next to the data
 * (curve.gp) and run with `gnuplot curve.gp`, so a user can edit and re-run it. */
#include "runlog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "tcfg.h"

static void join(char *out, size_t cap, const char *dir, const char *file) {
  int n = snprintf(out, cap, "%s/%s", dir, file);
  IB_CHECK(n > 0 && (size_t)n < cap);
}

int runlog_create(const char *run_dir) {
  char path[TCFG_STR + 64];
  join(path, sizeof path, run_dir, "metrics.csv");
  FILE *f = fopen(path, "w");
  if (!f) return ib_fail(IB_EIO, "cannot create %s: %s (HINT: check the run directory)", path, strerror(errno));
  fprintf(f, "%s\n", RUNLOG_HEADER);
  if (fclose(f) != 0) return ib_fail(IB_EIO, "writing %s failed", path);
  return IB_OK;
}

/* %.6g, but "nan" for NaN on every libc. */
static void put(FILE *f, double v, int last) {
  if (isnan(v)) fputs("nan", f);
  else fprintf(f, "%.6g", v);
  fputc(last ? '\n' : ',', f);
}

int runlog_append(const char *run_dir, const runlog_row *r) {
  char path[TCFG_STR + 64];
  join(path, sizeof path, run_dir, "metrics.csv");
  FILE *f = fopen(path, "a");
  if (!f) return ib_fail(IB_EIO, "cannot append to %s: %s", path, strerror(errno));
  fprintf(f, "%ld,%.3f,%ld,%ld,", r->env_steps, r->wall_s, r->updates, r->episodes);
  put(f, r->eval_success, 0);
  put(f, r->train_success, 0);
  put(f, r->il_win_act, 0);
  put(f, r->il_win_bootstrap, 0);
  put(f, r->il_win_eval, 0);
  put(f, r->critic_loss, 0);
  put(f, r->actor_loss, 0);
  put(f, r->q_mean, 1);
  if (fclose(f) != 0) return ib_fail(IB_EIO, "writing %s failed (HINT: is the disk full?)", path);
  return IB_OK;
}

int runlog_truncate(const char *run_dir, long max_env_steps) {
  char path[TCFG_STR + 64], tmp[TCFG_STR + 80];
  join(path, sizeof path, run_dir, "metrics.csv");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *in = fopen(path, "r");
  if (!in) return ib_fail(IB_EIO, "cannot read %s: %s (HINT: is this a run directory?)", path, strerror(errno));
  FILE *out = fopen(tmp, "w");
  if (!out) {
    fclose(in);
    return ib_fail(IB_EIO, "cannot write %s: %s", tmp, strerror(errno));
  }
  char line[4096];
  int row = 0, rc = IB_OK;
  while (fgets(line, sizeof line, in)) {
    if (row++ == 0) {
      if (strncmp(line, RUNLOG_HEADER, strlen(RUNLOG_HEADER)) != 0) {
        rc = ib_fail(IB_EPROTO, "%s: the header is not the one ibrl-train writes (HINT: is this a run directory?)", path);
        break;
      }
      fputs(line, out);
      continue;
    }
    char *end;
    long steps = strtol(line, &end, 10);
    if (end == line || *end != ',') continue; /* a torn last line from a crash */
    if (steps <= max_env_steps) fputs(line, out);
  }
  fclose(in);
  if (fclose(out) != 0 && rc == IB_OK) rc = ib_fail(IB_EIO, "writing %s failed", tmp);
  if (rc != IB_OK) {
    remove(tmp);
    return rc;
  }
  if (rename(tmp, path) != 0) return ib_fail(IB_EIO, "cannot rename %s: %s", tmp, strerror(errno));
  return IB_OK;
}

static void json_num(FILE *f, const char *key, double v, int last) {
  fprintf(f, "  \"%s\": ", key);
  if (isfinite(v)) fprintf(f, "%.6g", v);
  else fputs("null", f);
  fputs(last ? "\n" : ",\n", f);
}

int runlog_summary_write(const char *run_dir, const runlog_summary *s) {
  char path[TCFG_STR + 64], tmp[TCFG_STR + 80];
  join(path, sizeof path, run_dir, "summary.json");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return ib_fail(IB_EIO, "cannot write %s: %s", tmp, strerror(errno));
  fputs("{\n  \"method\": ", f);
  tcfg_json_string(f, s->method);
  fputs(",\n  \"task\": ", f);
  tcfg_json_string(f, s->task);
  fprintf(f, ",\n  \"seed\": %llu,\n  \"env_steps\": %ld,\n  \"updates\": %ld,\n", s->seed, s->env_steps, s->updates);
  json_num(f, "final_eval_success", s->final_eval_success, 0);
  json_num(f, "best_eval_success", s->best_eval_success, 0);
  json_num(f, "il_eval_success", s->il_eval_success, 0);
  json_num(f, "wall_s", s->wall_s, 1);
  fputs("}\n", f);
  if (fclose(f) != 0) {
    remove(tmp);
    return ib_fail(IB_EIO, "writing %s failed", tmp);
  }
  if (rename(tmp, path) != 0) return ib_fail(IB_EIO, "cannot rename %s: %s", tmp, strerror(errno));
  return IB_OK;
}

/* 1 if an executable `name` is on PATH. */
static int on_path(const char *name) {
  const char *p = getenv("PATH");
  if (!p) return 0;
  char dir[1024];
  while (*p) {
    size_t n = strcspn(p, ":");
    if (n > 0 && n < sizeof dir - 64) {
      memcpy(dir, p, n);
      snprintf(dir + n, sizeof dir - n, "/%s", name);
      if (access(dir, X_OK) == 0) return 1;
    }
    p += n;
    if (*p == ':') p++;
  }
  return 0;
}

/* 1 if some data row of metrics.csv has a number in a plotted column (5..8: eval success, train
 * success, the two IL-win ratios), else 0 (no rows, or only "nan"/empty cells, as a learner
 * that made no update or an evaluator that never evaluated leaves). gnuplot fails on such a file
 * ("x range is invalid"). A file that cannot be read counts as plottable: gnuplot names it. */
static int has_points(const char *csv) {
  FILE *f = fopen(csv, "r");
  if (!f) return 1;
  char line[4096];
  int found = 0;
  if (fgets(line, sizeof line, f) != NULL) { /* skip the header */
    while (!found && fgets(line, sizeof line, f) != NULL) {
      const char *c = line;
      for (int col = 1; col <= 8 && c != NULL; col++) {
        if (col >= 5) {
          char *end;
          double v = strtod(c, &end);
          if (end != c && isfinite(v)) found = 1;
        }
        c = strchr(c, ',');
        if (c) c++;
      }
    }
  }
  fclose(f);
  return found;
}

int runlog_plot(const char *run_dir) {
  if (!on_path("gnuplot"))
    return ib_fail(IB_EUNAVAIL, "gnuplot not found: no curve.png (HINT: apt-get install gnuplot-nox, then run ibrl-plot %s)",
                   run_dir);
  char gp[TCFG_STR + 64], png[TCFG_STR + 64], csv[TCFG_STR + 64];
  join(gp, sizeof gp, run_dir, "curve.gp");
  join(png, sizeof png, run_dir, "curve.png");
  join(csv, sizeof csv, run_dir, "metrics.csv");
  if (!has_points(csv))
    return ib_fail(RUNLOG_PLOT_EMPTY, "no curve.png: %s has no evaluation or training success to plot yet", csv);
  FILE *f = fopen(gp, "w");
  if (!f) return ib_fail(IB_EIO, "cannot write %s: %s", gp, strerror(errno));
  /* Column numbers follow RUNLOG_HEADER. Paths are quoted for gnuplot; run directories with a
   * double quote in their name are not supported. */
  fprintf(f,
          "set terminal pngcairo size 900,540 noenhanced\n"
          "set output \"%s\"\n"
          "set datafile separator \",\"\n"
          "set key autotitle columnhead bottom right\n"
          "set xlabel \"env steps\"\nset ylabel \"success / ratio\"\nset yrange [0:1.05]\nset grid\n"
          "set title \"%s\"\n"
          "plot \"%s\" using 1:5 with linespoints lw 2 title \"eval success\", \\\n"
          "     \"%s\" using 1:6 with lines title \"train success\", \\\n"
          "     \"%s\" using 1:7 with lines dt 2 title \"IL wins (acting)\", \\\n"
          "     \"%s\" using 1:8 with lines dt 3 title \"IL wins (bootstrap)\"\n",
          png, run_dir, csv, csv, csv, csv);
  fclose(f);
  char cmd[3 * TCFG_STR];
  snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", gp);
  if (strchr(gp, '\'')) return ib_fail(IB_EINVAL, "run directory %s has a quote in its name; no plot", run_dir);
  if (system(cmd) != 0) return ib_fail(IB_EIO, "gnuplot failed on %s (HINT: run it by hand to see why)", gp);
  return IB_OK;
}
