/* ctl.h: the parts of ibrl-replayctl shared between its files: the parsed command line, the
 * exit codes scripts rely on, and the HDF5 commands (ctl_hdf5.c).
 *
 * Exit codes: CTL_OK 0 success; CTL_ESERVER 1 a server error or an unhealthy shard; CTL_EUSAGE 2
 * bad usage (flags, arguments, unreadable local files); CTL_EUNREACH 3 a shard could not be
 * reached (IB_EUNAVAIL or IB_ETIMEDOUT). */
#ifndef IB_CTL_H
#define IB_CTL_H

#include <stdint.h>

#include "replay_client.h"

enum { CTL_OK = 0, CTL_ESERVER = 1, CTL_EUSAGE = 2, CTL_EUNREACH = 3 };

typedef struct ctl_args {
  const char *cmd;
  const char *shards, *token, *tls_roots;
  int deadline_ms;
  int json;
  int shard;          /* --shard i, or -1 = all */
  /* info / watch */
  long rate_ms;
  double interval_s;
  long count;
  /* sample */
  int n;
  double demo_fraction;
  /* export / import */
  const char *table;
  const char *out;
  const char *in;
  const char *obs_keys;
  int chunk, stack, nstep;
  double gamma;
  int cut_at_success;
  uint64_t seq_base;
  long max_draws;
  int max_episodes;
  /* params */
  int params_shard;
  long wait_ms;
  /* ratelimit */
  const char *limit_op;
  double spi, error_buffer;
  long min_size;
} ctl_args;

/* Maps a client status to the exit code (3 for unreachable, 1 otherwise) and prints ib_errmsg(). */
int ctl_fail(int rc, const char *what);

/* Maps a failed rc_sample (rc) to the exit code, printing why, for command `what`. The client
 * library reports a shard whose Sample ran into its deadline as not reachable, but a shard
 * whose rate limiter holds the call (online size below min_size, or the ratio) still answers
 * Info at once: then the limiter's numbers are printed and the code is 1 (the shards are up);
 * 3 only if a shard does not answer Info either. Other errors as ctl_fail. */
int ctl_sample_fail(rc_client *c, int rc, const char *what);

/* Copies row r of src into row d of dst (both of the same dims; d < dst->cap). The sample-only
 * fields (from_demo) are copied too; n, n_demo and shards_skipped are left alone. */
void ctl_batch_copy_row(rc_batch *dst, int d, const rc_batch *src, int r);

/* Prints s as a JSON string (quotes, escapes) to stdout. */
void ctl_json_str(const char *s);

/* `export` and `import-demos` (ctl_hdf5.c). Return an exit code. */
int ctl_export(rc_client *c, const ctl_args *a);
int ctl_import(rc_client *c, const ctl_args *a);

#endif /* IB_CTL_H */
