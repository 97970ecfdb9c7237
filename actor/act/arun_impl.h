/* arun_impl.h: what the two roles of ibrl-actor share (internal to actor/act/): the setup of
 * the task dims, the frozen IL policy, the acting-only agent, the replay / params clients and
 * the weights poller, and the weight hand-over. Not a public API. */
#ifndef IB_ARUN_IMPL_H
#define IB_ARUN_IMPL_H

#include <signal.h>
#include <stdint.h>

#include "agent.h"
#include "arun.h"
#include "il.h"
#include "ilfile.h"
#include "params_client.h"
#include "replay_client.h"
#include "tcfg.h"
#include "wpoll.h"

typedef struct arun_ctx {
  const arun_opts *o;
  tcfg tc;
  volatile sig_atomic_t *stop;
  int frame_dim, step_dim;  /* one env frame / one env action */
  int obs_dim, act_dim;     /* stacked obs / action chunk */
  int uses_il;              /* the method has an IL proposal (ibrl and its ablations) */
  il_policy il;             /* owned, frozen (uses_il) */
  ilfile_meta ilm;
  int have_il;
  agent ag;                 /* owned, acting only */
  int ag_ready;
  agent_mode eval_mode;     /* EVAL_IBRL, or EVAL_RL when the actor proposal is off */
  rc_client *rc;            /* owned: the replay shards */
  rc_client *pc;            /* owned when it differs from rc: the Params shard */
  int params_shard;
  wpoll *wp;                /* owned */
  pc_blob blob;             /* owned: the last blob taken from the poller */
  uint64_t version;         /* weight version loaded into ag (0 = none yet: warm-up) */
  uint64_t updates;         /* the learner's update count when that version was packed */
  double t0;
} arun_ctx;

/* Task, IL policy, agent (max_batch rows), clients, dims check against every shard (waiting up
 * to o->wait_s for them), weights poller. On error the context can still be closed. */
int arun__open(arun_ctx *x, const arun_opts *o, const tcfg *tc, volatile sig_atomic_t *stop, int max_batch);
void arun__close(arun_ctx *x);

/* Loads the newest weights if the poller has some: 1 (loaded), 0 (nothing new), or an error for
 * a blob that can never be used (another method, shapes: IB_EMISMATCH / IB_EPROTO). A corrupt
 * or non-finite blob is logged and skipped (returns 0). */
int arun__weights_update(arun_ctx *x);

/* Info of shard `shard`, retried with backoff until it answers, *stop, or o->wait_s. */
int arun__info_wait(arun_ctx *x, int shard, rc_shard_info *info);

/* Sleeps up to s seconds in small steps, returning early when *stop is set. */
void arun__nap(arun_ctx *x, double s);

/* Exit code for a setup error: 1 when the replay could not be reached, else 2 (a setting). */
int arun__setup_code(int rc);

#endif /* IB_ARUN_IMPL_H */
