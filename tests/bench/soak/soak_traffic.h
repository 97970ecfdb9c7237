/* soak_traffic.h: the client side of `ibrl-bench soak`: the threads that write, sample, ask Info,
 * churn connections and send bad requests through one shared rc_client, and the accounting of a
 * failed call (a failure, or "failed while down" when it overlapped a restart of its shard).
 * Thread-safety: soak_traffic_error and soak_traffic_in_outage are called from every thread; they
 * touch only soak_shared's atomics. soak_traffic_start/stop are for the main thread. Ownership:
 * the threads borrow sh (and its client) and own their batches. */
#ifndef IB_SOAK_TRAFFIC_H
#define IB_SOAK_TRAFFIC_H

#include <pthread.h>

#include "soak.h"

/* 1 if a call to `shard` (SOAK_ANY_SHARD: to all of them) that started at t0_ns and fails now
 * overlapped the last outage of that shard (of any shard), from its kill until --down-grace after
 * it answered again; never without restarts. */
int soak_traffic_in_outage(soak_shared *sh, int shard, int64_t t0_ns);

/* Counts a failed call to `shard` that started at t0_ns: as failed while down if it overlapped an
 * outage of that shard (a sample, SOAK_ANY_SHARD: of any shard; counted apart), else as a failure
 * (the first 10 printed on stderr, the rest only counted). */
void soak_traffic_error(soak_shared *sh, int shard, const char *who, int rc, int64_t t0_ns);

/* The demo preloader's actor id for `shard` (its seqs 0.. are the preloaded demo rows). */
uint32_t soak_traffic_demo_actor(int shards, int shard);

/* Zeroes *sh and sets it up for the configuration `c` and the shards' "host:port,..." `target`
 * (both borrowed; they must outlive sh): the acknowledgement arrays [c->actors] are allocated and
 * zero. The client (sh->c) is left for the caller to open. soak_traffic_shared_free frees the arrays. */
void soak_traffic_shared_init(soak_shared *sh, const soak_cfg *c, const char *target);
void soak_traffic_shared_free(soak_shared *sh);

/* The options of every client of the soak (shared token and TLS roots as configured). */
void soak_traffic_opts(rc_opts *o, const soak_shared *sh, uint64_t seed);

/* The client threads of the soak: K writers, N samplers and the misc thread (soak_traffic.c). */
typedef struct soak_traffic_job {
  soak_shared *sh; /* borrowed */
  int k;           /* thread index among its kind */
} soak_traffic_job;

typedef struct soak_traffic {
  soak_shared *sh; /* borrowed: set by soak_traffic_start */
  pthread_t writer[SOAK_MAX_WRITERS], sampler[SOAK_MAX_SAMPLERS], misc;
  soak_traffic_job wj[SOAK_MAX_WRITERS], sj[SOAK_MAX_SAMPLERS]; /* the threads' arguments */
} soak_traffic;

/* Preloads cfg->demo_rows demo rows into every shard, then starts the writer, sampler and misc
 * threads on sh (which must outlive soak_traffic_stop). Returns IB_OK, or the preload's IB_E*
 * (printed, naming the shard) with no thread started. */
int soak_traffic_start(soak_traffic *t, soak_shared *sh);

/* Sets sh->stop and joins every thread soak_traffic_start started. */
void soak_traffic_stop(soak_traffic *t);

#endif
