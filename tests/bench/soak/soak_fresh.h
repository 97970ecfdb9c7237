/* soak_fresh.h: `ibrl-bench soak --against-fresh R`: whether a shard that served the whole run is
 * slower than a fresh one (T8 of anchors.md: "throughput decays < 5%"). A long run's own late rates
 * cannot tell: on a shared VM the machine drifts too. So after the traffic a fresh shard of the same
 * configuration is started, warmed until its online ring has wrapped twice, and then shard 0 (aged)
 * and the fresh shard each get R windows of --fresh-window seconds of uncapped traffic (the soak's
 * writers and samplers, no churn or bad requests), one at a time, in alternating order (aged first
 * in even rounds), so both meet the same machine. Each window's writers are new actors (a fresh
 * cfg->actor_base), so no row is a duplicate. Verdict: the aged shard's median insert and sample
 * rows/s are each at least (100 - --max-decay)% of the fresh shard's, with no failed call.
 * Main thread only (it forks the fresh child, as restarts do, and drains every child's output).
 * Errors: soak_fresh_run records what stopped it in f->why (printed by soak_fresh_report); nothing
 * is returned. Ownership: the fresh child and its directory live and die inside soak_fresh_run. */
#ifndef IB_SOAK_FRESH_H
#define IB_SOAK_FRESH_H

#include "soak.h"

/* Runs the comparison (c->fresh_rounds > 0) against run->shard[0], which must still be running, and
 * fills run->fresh. */
void soak_fresh_run(const soak_cfg *c, soak_run *run);

/* Prints the comparison's lines (nothing if it was not asked). */
void soak_fresh_report(const soak_cfg *c, const soak_fresh *f);

/* Its figures as JSON members, without braces (`"fresh":null` if it was not asked). */
void soak_fresh_json(FILE *out, const soak_fresh *f);

#endif
