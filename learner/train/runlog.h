/* runlog.h: the files of a run directory that are not checkpoints: metrics.csv (one row per
 * evaluation), summary.json (the outcome) and curve.png (a gnuplot learning curve).
 *
 * metrics.csv columns, in order (RUNLOG_HEADER): env_steps, wall_s, updates, episodes,
 * eval_success, train_success, il_win_act, il_win_bootstrap, il_win_eval, critic_loss,
 * actor_loss, q_mean. Ratios are in [0, 1] or empty-free "nan" when nothing was counted. Every
 * value except wall_s is a pure function of the config and seed, so two runs can be compared
 * after dropping column 2.
 *
 * Resume: runlog_truncate keeps the header and the rows with env_steps <= a checkpoint's
 * env_steps, so the resumed run appends exactly the rows the interrupted one would have.
 *
 * Errors: IB_EIO naming the file with a HINT; IB_EPROTO for a metrics.csv whose header is not
 * ours. Files are opened and closed per call (a crash leaves complete rows). One thread. */
#ifndef IB_RUNLOG_H
#define IB_RUNLOG_H

#define RUNLOG_HEADER                                                                             \
  "env_steps,wall_s,updates,episodes,eval_success,train_success,il_win_act,il_win_bootstrap," \
  "il_win_eval,critic_loss,actor_loss,q_mean"

typedef struct runlog_row {
  long env_steps;
  double wall_s;
  long updates;         /* critic updates so far */
  long episodes;        /* training episodes finished (warm-up excluded) */
  double eval_success;  /* success rate of this evaluation */
  double train_success; /* of the training episodes finished since the previous row */
  double il_win_act;    /* share of acting decisions where the IL proposal won (window) */
  double il_win_bootstrap; /* share of bootstrap targets that used the IL candidate (window) */
  double il_win_eval;   /* share of eval decisions where the IL proposal won */
  double critic_loss, actor_loss, q_mean; /* window means */
} runlog_row;

typedef struct runlog_summary {
  const char *method, *task;
  long env_steps;
  double final_eval_success; /* the last row's eval_success */
  double best_eval_success;
  double il_eval_success;    /* the IL policy alone, same eval episodes; NAN if no IL policy */
  double wall_s;
  long updates;
  unsigned long long seed;
} runlog_summary;

/* Creates run_dir/metrics.csv with the header (overwrites). */
int runlog_create(const char *run_dir);
/* Appends one row. */
int runlog_append(const char *run_dir, const runlog_row *row);
/* Keeps the header and the rows with env_steps <= max_env_steps (see the top). */
int runlog_truncate(const char *run_dir, long max_env_steps);
/* Writes run_dir/summary.json atomically. NAN values are written as null. */
int runlog_summary_write(const char *run_dir, const runlog_summary *s);
/* runlog_plot's "nothing to plot" result: positive, not an error. */
#define RUNLOG_PLOT_EMPTY 1

/* Writes run_dir/curve.png with gnuplot (eval and train success vs env steps, IL-win ratios).
 * Returns IB_OK; RUNLOG_PLOT_EMPTY with a one-line note (ib_errmsg) when metrics.csv has no
 * value to plot (a run with no update or no evaluation): nothing is drawn and callers log the
 * note as information; IB_EUNAVAIL with a note when gnuplot is not installed (callers log it
 * and go on), or IB_EIO if gnuplot failed. */
int runlog_plot(const char *run_dir);

#endif /* IB_RUNLOG_H */
