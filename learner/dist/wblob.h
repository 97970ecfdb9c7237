/* wblob.h: the versioned weight blob rank 0 of the learner publishes to ibrl.Params every P
 * updates, and actors unpack to act with the IBRL proposal (agent_act needs the actor, the
 * target critic that scores the two proposals, and the frozen IL policy).
 *
 * Layout (format version 1; all integers little-endian, as on every supported host):
 *   off  size  field
 *     0     4  magic "IBWB"
 *     4     4  u32 format version (1)
 *     8     8  u64 weight_version (the Params version it is published as; > 0)
 *    16     8  u64 updates (the learner's critic updates when it was packed)
 *    24     4  u32 method (agent_method)       28  4  u32 backbone (agent_backbone)
 *    32     4  u32 obs_dim                     36  4  u32 act_dim
 *    40     8  u64 n_floats = agent_acting_size(): actor params, critic_target params, IL net
 *              params, IL encoder params (CVAE only), back to back (agent_acting_pack order)
 *    48     4  u32 CRC-32 of the float payload
 *    52     4  u32 reserved (0)
 *    56  4n    the floats
 * A reader refuses another magic or format version (IB_EPROTO), other method/backbone/dims or
 * float count (IB_EMISMATCH), a bad CRC (IB_ECHECKSUM), and non-finite weights (IB_ENONFINITE).
 *
 * Ownership: the caller owns every buffer. No allocation. Thread-safety: pure functions over
 * the arguments (the agent is read by pack and written by unpack only). */
#ifndef IB_WBLOB_H
#define IB_WBLOB_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

#define WBLOB_MAGIC "IBWB"
#define WBLOB_FORMAT 1u
#define WBLOB_HEADER_BYTES 56u

typedef struct wblob_header {
  uint32_t format;
  uint64_t weight_version, updates;
  uint32_t method, backbone, obs_dim, act_dim;
  uint64_t n_floats;
  uint32_t crc;
} wblob_header;

/* Bytes of the blob for agent `a`. */
size_t wblob_size(const agent *a);
/* Writes the blob (wblob_size(a) bytes) to dst. */
void wblob_pack(void *dst, const agent *a, uint64_t weight_version, uint64_t updates);
/* Reads the header of `src` (len bytes) into *h and checks magic, format and length. */
int wblob_header_read(wblob_header *h, const void *src, size_t len);
/* Checks the blob against `a` and loads its weights (agent_acting_unpack); `a` is unchanged on
 * any error. *h (may be NULL) gets the header. */
int wblob_unpack(agent *a, wblob_header *h, const void *src, size_t len);

#endif /* IB_WBLOB_H */
