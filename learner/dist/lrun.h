/* lrun.h: one run of the MPI learner group (ibrl-learner): setup (replay clients, dims, IL
 * policy, agent, resume), the update loop (sample this rank's share from the replay shards,
 * lstep update, publish, check, log, checkpoint) and the final checkpoint.
 *
 * Every rank calls lrun_main with the same options; the ranks agree on every branch through
 * collectives (lstep.h), so an error or a stop on one rank stops all of them at the same
 * update. Rank 0 owns the run directory, the Params publishing and the logs.
 *
 * Run directory (same files as ibrl-train where they apply): config.json (the tcfg of the
 * hyperparameters), learner.json (the learner's own settings), metrics.csv (RUNLOG_HEADER's
 * columns, then updates_per_s, samples_per_s, staleness_mean, staleness_max, allreduce_ms,
 * weight_version, sample_ms), summary.json, curve.png, agent-<updates>.ckpt + learner.state (lstate.h).
 * sample_ms is the time a rank waited for its share of the batch, per update, mean over the ranks
 * (anchors.md's T5: under 5% of the step time).
 * staleness_* is the age of the sampled online items in weight versions (current version minus
 * the version that acted): the age of replayed data, which grows with the replay's capacity
 * (about half the versions so far while nothing is evicted), not the actors' lag behind the
 * published weights.
 *
 * Errors: lrun_main returns 0 (done or stopped by a signal with a final checkpoint), 1 (a
 * runtime error; ib_errmsg() printed by the rank that saw it), 2 (bad settings found at setup,
 * e.g. a batch that does not split over the ranks, a missing or malformed --il file, an --out
 * that already holds a run: these local checks run before any replay is contacted, so they
 * fail at once even when no replay is reachable). One thread per rank (the gRPC client has
 * its own threads, which never call MPI). */
#ifndef IB_LRUN_H
#define IB_LRUN_H

#include <signal.h>
#include <stdint.h>

#include "tcfg.h"

typedef struct lrun_opts {
  char replay[1024];   /* "host:port,..." replay shards (required) */
  char params[256];    /* "host:port" of the ibrl.Params shard; "" = the first replay shard */
  char token[256];     /* shared token or "" */
  char il[TCFG_STR];   /* IL checkpoint (ibrl-il train --out) for IBRL methods */
  int obs_dim, act_dim; /* explicit dims (0 = from --task, else from the shards) */
  int task_given;      /* 1 if --task was set (dims from the env registry, chunk, n_stack) */
  long updates;        /* stop after this many critic updates in total (0 = no limit) */
  double minutes;      /* stop after this many minutes of this process (0 = no limit) */
  long publish_every;  /* publish weights every P critic updates (0 = only at start and end) */
  long check_every;    /* compare weight checksums every C updates (0 = only at the end) */
  long ckpt_every;     /* checkpoint every K updates (0 = only at the end) */
  long log_every;      /* metrics row every L updates */
  int deadline_ms;     /* deadline of each replay call */
  int max_message_mb;  /* gRPC message limit of the replay clients (the weight blob must fit) */
  double wait_s;       /* give up when no batch could be sampled for this long */
  int resume;
  int quiet;
} lrun_opts;

/* The run. `tc` holds the hyperparameters (preset, method, batch = the GLOBAL batch, seed,
 * network sizes, ...) after tcfg_resolve. `stop` is set by the signal handler. */
int lrun_main(const lrun_opts *o, const tcfg *tc, volatile sig_atomic_t *stop);

#endif /* IB_LRUN_H */
