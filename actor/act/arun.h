/* arun.h: one ibrl-actor process: the shared setup (task, frozen IL policy, acting-only agent,
 * replay and params clients, weights poller) and its two roles.
 *
 *  - explore (arun_explore): E environments of the task step side by side; one batched
 *    agent_act per chunk (IBRL proposal: the latest RL actor and target critic against the IL
 *    policy; before the first weights arrive, the IL policy alone = warm-up). Chunk transitions
 *    are folded into n-step items (chunk.h), stamped with the weight version that acted and the
 *    proposer, and streamed to shard actor_id % n_shards through an rc_writer with seqs that
 *    continue where this actor_id stopped last time (asked from the shard at start). The
 *    writer's retry buffer is the bounded local buffer: while the shard is down the actor keeps
 *    acting until the buffer is full, then waits and retries the same items with the same seqs
 *    (the shard drops duplicates), so nothing is lost or duplicated.
 *  - eval (arun_evaluate): an evaluator. It scores the IL policy once and then every new weight
 *    version (at most one per --eval-every seconds) on the same seeded episodes (evalr.h), and
 *    keeps a run directory in the trainer's format: metrics.csv (runlog.h; env_steps = online
 *    env steps inserted over all shards), summary.json (final/best IBRL vs the IL policy) and
 *    curve.png. It inserts nothing.
 *
 * Both stop at the limits of arun_opts or when *stop becomes nonzero (SIGTERM), and return 0
 * (done), 1 (a runtime error, message logged) or 2 (bad settings found at setup: unknown task,
 * mismatched IL policy or replay dims).
 * Thread-safety: one acting thread; the weights poller and the replay client's poller run
 * beside it (wpoll.h, replay_client.h). */
#ifndef IB_ARUN_H
#define IB_ARUN_H

#include <signal.h>
#include <stdint.h>

#include "tcfg.h"

typedef struct arun_opts {
  char replay[1024];   /* "host:port,..." replay shards (required) */
  char params[256];    /* "host:port" of the ibrl.Params shard; "" = the first replay shard */
  char token[256];     /* shared token or "" */
  char status[TCFG_STR]; /* explore: JSON status file rewritten every log period ("" = none) */
  uint32_t actor_id;
  int envs;            /* environments stepped side by side (explore) */
  long max_episodes;   /* stop after this many episodes (0 = no limit) */
  long max_env_steps;  /* stop after this many env steps (0 = no limit) */
  double minutes;      /* stop after this many minutes (0 = no limit) */
  long poll_ms;        /* weights poll period */
  int deadline_ms;     /* deadline of each replay call */
  int max_pending;     /* unacknowledged items kept for retry, 1..8192 */
  int send_rows;       /* items per Insert message */
  long flush_ms;       /* acknowledge (flush) at least this often */
  double log_every_s;  /* progress line period */
  double wait_s;       /* give up when the replay cannot be reached at start for this long */
  int eval_episodes;   /* eval: seeded episodes per evaluation */
  double eval_every_s; /* eval: at most one evaluation per this many seconds */
  int quiet;
} arun_opts;

/* `tc` holds the task and the network sizes (preset, method, chunk, frame stack, n-step, gamma,
 * horizon, noise, selection) after tcfg_resolve; tc->il is the IL checkpoint and tc->out the
 * evaluator's run directory. They must match the learner's (the weight blob is checked). */
int arun_explore(const arun_opts *o, const tcfg *tc, volatile sig_atomic_t *stop);
int arun_evaluate(const arun_opts *o, const tcfg *tc, volatile sig_atomic_t *stop);

#endif /* IB_ARUN_H */
