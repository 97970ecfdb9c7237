/* params_client.h: the weights channel between the learner and the actors, over the Params
 * service of a replay shard (proto/ibrl.proto): the learner publishes a versioned opaque blob
 * (the actor's flat parameter arena), actors long-poll for a version newer than theirs.
 *
 * The weights live on one shard (shard 0 of the client's list by default), so every actor sees
 * the same versions whatever shard its inserts go to. Versions are strictly increasing: a
 * publish of a version not newer than the stored one fails with IB_ESTATE.
 *
 * Errors as in replay_client.h (IB_EUNAVAIL / IB_ETIMEDOUT when the shard is down or slow; a
 * long poll that simply saw nothing newer is not an error). Thread-safety: the functions may be
 * called from several threads on one rc_client; a pc_blob belongs to one thread. */
#ifndef IB_PARAMS_CLIENT_H
#define IB_PARAMS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "replay_client.h"

/* A received weight blob; the buffer is reused across calls (grown as needed). */
typedef struct pc_blob {
  uint8_t *data;    /* owned (free with pc_blob_free) */
  size_t len;       /* bytes of the last received blob */
  size_t cap;
  uint64_t version; /* version of data; 0 = none yet */
} pc_blob;

void pc_blob_free(pc_blob *b); /* frees data and zeroes b; accepts a zeroed blob */

/* Publishes `data[0..len)` (borrowed) as `version` (> 0) on shard `shard`. Errors: IB_EINVAL
 * (version 0, or a blob larger than the client's message limit), IB_ESTATE (not newer than the
 * stored version), call errors. */
int pc_publish(rc_client *c, int shard, uint64_t version, const void *data, size_t len);

/* Asks shard `shard` for a version newer than `have`, waiting up to wait_ms for a publish (0 =
 * just look). On a newer version fills *out (data, len, version) and returns 1; returns 0 if
 * nothing newer arrived within the wait (out->version is left as is, *stored, if given, gets
 * the shard's current version), or a negative IB_E*. The call deadline is wait_ms plus the
 * client's deadline, so the call never hangs. */
int pc_get_if_newer(rc_client *c, int shard, uint64_t have, long wait_ms, pc_blob *out, uint64_t *stored);

#endif /* IB_PARAMS_CLIENT_H */
