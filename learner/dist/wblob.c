/* wblob.c: pack / unpack of the weight blob (layout in wblob.h).
 *
 * Design. The header is written field by field with memcpy at fixed offsets (no struct
 * padding on the wire), and the floats go straight from agent_acting_pack into the blob. The
 * CRC covers the payload only; the header is checked field by field, so a wrong header gives
 * a message naming the field rather than a bare checksum error. */
#include "wblob.h"

#include <string.h>

#include "ib.h"

size_t wblob_size(const agent *a) { return WBLOB_HEADER_BYTES + agent_acting_size(a) * sizeof(float); }

void wblob_pack(void *dst, const agent *a, uint64_t weight_version, uint64_t updates) {
  IB_CHECK(dst && a);
  uint8_t *p = dst;
  size_t n = agent_acting_size(a);
  float *payload = (float *)(p + WBLOB_HEADER_BYTES);
  agent_acting_pack(a, payload);
  memcpy(p, WBLOB_MAGIC, 4);
  ib_put_u32(p + 4, WBLOB_FORMAT);
  ib_put_u64(p + 8, weight_version);
  ib_put_u64(p + 16, updates);
  ib_put_u32(p + 24, (uint32_t)a->cfg.method);
  ib_put_u32(p + 28, (uint32_t)a->cfg.backbone);
  ib_put_u32(p + 32, (uint32_t)a->cfg.obs_dim);
  ib_put_u32(p + 36, (uint32_t)a->cfg.act_dim);
  ib_put_u64(p + 40, (uint64_t)n);
  ib_put_u32(p + 48, ib_crc32(0, payload, n * sizeof(float)));
  ib_put_u32(p + 52, 0);
}

int wblob_header_read(wblob_header *h, const void *src, size_t len) {
  IB_CHECK(h && (src || len == 0));
  const uint8_t *p = src;
  if (len < WBLOB_HEADER_BYTES)
    return ib_fail(IB_EPROTO, "weight blob: %zu bytes, shorter than its %u-byte header (HINT: was it published by ibrl-learner?)",
                   len, WBLOB_HEADER_BYTES);
  if (memcmp(p, WBLOB_MAGIC, 4) != 0)
    return ib_fail(IB_EPROTO, "weight blob: bad magic (HINT: the Params blob was not written by ibrl-learner)");
  h->format = ib_get_u32(p + 4);
  if (h->format != WBLOB_FORMAT)
    return ib_fail(IB_EPROTO, "weight blob: format version %u, this build reads %u (HINT: run actors and learner from the same release)",
                   (unsigned)h->format, WBLOB_FORMAT);
  h->weight_version = ib_get_u64(p + 8);
  h->updates = ib_get_u64(p + 16);
  h->method = ib_get_u32(p + 24);
  h->backbone = ib_get_u32(p + 28);
  h->obs_dim = ib_get_u32(p + 32);
  h->act_dim = ib_get_u32(p + 36);
  h->n_floats = ib_get_u64(p + 40);
  h->crc = ib_get_u32(p + 48);
  if (h->n_floats > (len - WBLOB_HEADER_BYTES) / sizeof(float) ||
      len != WBLOB_HEADER_BYTES + h->n_floats * sizeof(float))
    return ib_fail(IB_EPROTO, "weight blob: header says %llu floats but the blob has %zu bytes (HINT: truncated message?)",
                   (unsigned long long)h->n_floats, len);
  return IB_OK;
}

int wblob_unpack(agent *a, wblob_header *hout, const void *src, size_t len) {
  IB_CHECK(a);
  wblob_header h;
  int rc = wblob_header_read(&h, src, len);
  if (rc != IB_OK) return rc;
  const agent_config *c = &a->cfg;
  if (h.method != (uint32_t)c->method || h.backbone != (uint32_t)c->backbone)
    return ib_fail(IB_EMISMATCH, "weight blob: method %u / backbone %u, this agent is %u / %u (HINT: start actors with the learner's --method)",
                   (unsigned)h.method, (unsigned)h.backbone, (unsigned)c->method, (unsigned)c->backbone);
  if (h.obs_dim != (uint32_t)c->obs_dim || h.act_dim != (uint32_t)c->act_dim)
    return ib_fail(IB_EMISMATCH, "weight blob: obs_dim %u act_dim %u, this agent has %d %d (HINT: same --task, chunk and frame stack on both sides)",
                   (unsigned)h.obs_dim, (unsigned)h.act_dim, c->obs_dim, c->act_dim);
  const float *payload = (const float *)((const uint8_t *)src + WBLOB_HEADER_BYTES);
  /* The payload offset (56) keeps 4-byte alignment when the buffer is malloc'd. */
  if (ib_crc32(0, payload, h.n_floats * sizeof(float)) != h.crc)
    return ib_fail(IB_ECHECKSUM, "weight blob version %llu: payload CRC mismatch (HINT: corrupted in transit or in the Params store)",
                   (unsigned long long)h.weight_version);
  rc = agent_acting_unpack(a, payload, (size_t)h.n_floats);
  if (rc != IB_OK) return rc;
  if (hout) *hout = h;
  return IB_OK;
}
