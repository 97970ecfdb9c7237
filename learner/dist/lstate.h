/* lstate.h: the learner group's own checkpoint file, written by rank 0 next to the agent
 * checkpoint (agent_save: weights, targets, Adam state, the shared random streams, metrics):
 * the counters of the run and every rank's per-row random streams (lstep.h), so --resume
 * continues as if uninterrupted.
 *
 * File "learner.state" (format 1): magic "IBLS", u32 format, u32 ranks, u64 updates,
 * u64 actor_updates, u64 weight_version, u64 samples, f64 wall_s, char agent_file[64],
 * ranks x LSTATE_STREAMS rng states (4 x u64 each), u32 CRC-32 of everything before it.
 * Written to "<path>.tmp" then renamed, so a crash leaves the previous state.
 *
 * Errors: IB_EIO (naming the path, with a HINT), IB_EPROTO (magic, format, size), IB_ECHECKSUM.
 * Ownership: lstate_load allocates s->streams (free with lstate_free). One thread. */
#ifndef IB_LSTATE_H
#define IB_LSTATE_H

#include <stdint.h>

#include "agent.h"
#include "rng.h"

/* Per-row streams of one rank, in file order: dropout, target_noise, act_noise, select, sac. */
#define LSTATE_STREAMS 5

typedef struct lstate {
  int ranks;
  uint64_t updates;        /* critic updates applied */
  uint64_t actor_updates;
  uint64_t weight_version; /* last version published (0 = none) */
  uint64_t samples;        /* rows sampled by all ranks */
  double wall_s;           /* training seconds before this checkpoint */
  char agent_file[64];     /* the agent checkpoint of this state, relative to the run dir */
  rng *streams;            /* owned: ranks x LSTATE_STREAMS */
} lstate;

/* Copies the per-row streams of `a` into out[LSTATE_STREAMS] / back into `a`. */
void lstate_streams_get(const agent *a, rng *out);
void lstate_streams_set(agent *a, const rng *in);

int lstate_save(const char *path, const lstate *s);
int lstate_load(lstate *s, const char *path);
void lstate_free(lstate *s);

/* The run's hyperparameters (a tcfg, stored raw as n bytes) in "learner.cfg": magic "IBLC",
 * u32 byte count, the bytes, CRC-32. A resumed run takes its hyperparameters from here, never
 * from the (possibly changed) presets. Load fails with IB_EMISMATCH when the byte count
 * differs (a build with another tcfg layout). */
int lstate_cfg_save(const char *path, const void *cfg, size_t n);
int lstate_cfg_load(const char *path, void *cfg, size_t n);

#endif /* IB_LSTATE_H */
