/* wpoll.h: the actor's weights poller. A background thread asks the ibrl.Params shard for a
 * weight blob newer than the one it already fetched, at most once per period, each call a
 * long poll bounded by the period plus the client's deadline (params_client.h), and hands the
 * newest blob to the acting thread through a one-slot mailbox. The acting thread never waits on
 * the network for weights: it takes the blob at a chunk boundary when one is there.
 *
 * Versions only grow: the thread asks for "newer than the last version fetched", so a blob is
 * fetched at most once, and a blob that arrives while an older one is still in the mailbox
 * replaces it (the acting thread always gets the newest).
 *
 * Errors: a shard that is down or slow (IB_EUNAVAIL / IB_ETIMEDOUT) is retried at the next
 * period; the poller logs the first failure of a streak and the recovery. Nothing here is fatal.
 *
 * Ownership: wpoll_start returns a heap object that wpoll_stop joins and frees (NULL ok); the
 * rc_client is borrowed and must outlive it. Blobs circulate between three pc_blob buffers (the
 * thread's, the mailbox's and the caller's) by swapping, so a steady state allocates nothing.
 * Thread-safety: wpoll_take and wpoll_stats_get may be called from one other thread. */
#ifndef IB_WPOLL_H
#define IB_WPOLL_H

#include <stdint.h>

#include "params_client.h"

typedef struct wpoll wpoll;

typedef struct wpoll_stats {
  uint64_t polls;     /* calls made */
  uint64_t fetched;   /* newer blobs received */
  uint64_t errors;    /* calls that failed */
  uint64_t stored;    /* the shard's version at the last successful call */
} wpoll_stats;

/* Starts the thread polling shard `shard` of `c` every period_ms (>= 10). */
int wpoll_start(wpoll **out, rc_client *c, int shard, long period_ms);

/* If the mailbox holds a blob newer than `have`, swaps it into *dst (whose old buffer goes to the
 * mailbox) and returns 1; else returns 0 and leaves *dst alone. */
int wpoll_take(wpoll *p, pc_blob *dst, uint64_t have);

void wpoll_stats_get(wpoll *p, wpoll_stats *out);

/* Stops the thread (at most one period plus the client's deadline) and frees everything. */
void wpoll_stop(wpoll *p);

#endif /* IB_WPOLL_H */
