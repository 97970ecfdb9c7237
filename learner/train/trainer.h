/* trainer.h: the single-process IBRL trainer behind ibrl-train. One process holds the env, an
 * in-process replay (ib_store: a demo table and an online table, the same store the replay
 * server uses) and the learner (ib_agent, the code the distributed learner uses).
 *
 * A run (shared/docs/ibrl-reference.md sections 2, 5, 7, 10):
 *  1. demos -> the demo table as chunked, frame-stacked n-step transitions (cut at success);
 *  2. warm-up: cfg.warmup_episodes online episodes from the IL policy (IBRL and its ablations),
 *     the BC-pretrained actor (RFT, after its pretraining) or uniform random actions (RLPD);
 *     warm-up steps are not counted as env steps;
 *  3. loop until cfg.env_steps: act (agent_act, explore mode) one chunk, buffer the transition;
 *     at episode end (success or time limit; timeouts terminal) push the episode's n-step items;
 *     every cfg.update_every transitions: G critic updates + 1 actor update on batches sampled
 *     with the method's demo ratio; every cfg.eval_every env steps: evaluate
 *     cfg.eval_episodes seeded episodes and append a metrics.csv row + a progress line;
 *     every cfg.ckpt_every env steps, at the next episode end: checkpoint.
 *  4. summary.json and curve.png.
 * Method bc evaluates the IL policy only (no env interaction; rows at 0 and env_steps).
 *
 * Run directory: config.json, config.bin (the exact tcfg, for --resume), metrics.csv,
 * summary.json, curve.png (+curve.gp), state.bin (trainer counters and rng states),
 * agent-<n>.ckpt (agent_save), replay/store.ckpt (persist.h). A checkpoint is consistent:
 * state.bin is written last and names the agent file and the replay epoch it belongs to.
 *
 * Determinism: every random draw comes from named rng streams of cfg.seed; with one BLAS thread
 * the same config gives the same metrics.csv except wall_s, and a run resumed from a checkpoint
 * continues exactly as the uninterrupted run would have.
 *
 * Errors: setup problems (unknown task, missing or mismatched demo or IL files, bad config)
 * return IB_E* with ib_errmsg() naming the thing and a HINT, before any training; a non-finite
 * loss stops the run with IB_ENONFINITE. Ownership: trainer_open returns a heap object released
 * by trainer_close (NULL ok). One thread. */
#ifndef IB_TRAINER_H
#define IB_TRAINER_H

#include "tcfg.h"

typedef struct trainer trainer;

/* Sets everything up. resume 0: cfg->out must not hold a run yet (IB_ESTATE otherwise); the run
 * directory is created. resume 1: restores the last checkpoint of cfg->out (cfg must be the
 * one stored in config.bin, possibly with a larger env_steps). */
int trainer_open(trainer **out, const tcfg *cfg, int resume);
/* Trains to cfg->env_steps (or to the first checkpoint at or after cfg->stop_after, then
 * *stopped = 1) and writes the summary. */
int trainer_run(trainer *t, int *stopped);
void trainer_close(trainer *t);

/* Reads RUN_DIR/config.bin (written by trainer_open) into *cfg. IB_EIO / IB_EPROTO. */
int trainer_config_load(tcfg *cfg, const char *run_dir);

#endif /* IB_TRAINER_H */
