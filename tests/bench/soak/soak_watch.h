/* soak_watch.h: the watching (main) thread of `ibrl-bench soak`: one timeline point a second per
 * shard (/proc and Info), progress lines, the restarts and the loss check after each, and the
 * end-of-run loss check. Only the main thread calls these, while the traffic threads run (or after
 * they stopped, for the final check); they write soak_run and the outage times of soak_shared.
 * Failures are recorded in soak_run (and printed), not returned. */
#ifndef IB_SOAK_WATCH_H
#define IB_SOAK_WATCH_H

#include "soak.h"

/* Samples every shard once a second until cfg->seconds have passed or a shard exited; restarts a
 * shard every cfg->restart_every seconds, the shards in turn (none in the last 10 s, so the last
 * incarnations run long enough to be judged). */
void soak_watch_run(soak_shared *sh, soak_run *run);

/* The end-of-run loss check of every shard (restarts only): the writers are closed, so nothing is
 * in flight and the exact checks hold. */
void soak_watch_final_check(soak_shared *sh, soak_run *run);

#endif
