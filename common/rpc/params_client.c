/* params_client.c: Params.Publish and Params.GetIfNewer over rc__unary (see params_client.h).
 *
 * Design. Both calls are unary. The blob is never copied into a nanopb struct: on publish an
 * encode callback writes it straight from the caller's buffer into the message slice, and on
 * receive a decode callback grows the caller's pc_blob buffer once and reads into it, so a
 * steady stream of same-size weights allocates nothing after the first. The long poll is done
 * by the server (it holds the call until a publish or wait_ms); the client only sets a
 * deadline of wait_ms + its normal deadline, so a dead server still returns in bounded time. */
#include "params_client.h"

#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "wire.h"

void pc_blob_free(pc_blob *b) {
  if (b == NULL) return;
  free(b->data);
  memset(b, 0, sizeof *b);
}

int pc_publish(rc_client *c, int shard, uint64_t version, const void *data, size_t len) {
  IB_CHECK(c != NULL && (data != NULL || len == 0));
  if (shard < 0 || shard >= rc_client_shard_count(c))
    return ib_fail(IB_EINVAL, "params shard %d is outside [0, %d) HINT: count the --shards list", shard,
                   rc_client_shard_count(c));
  if (version == 0)
    return ib_fail(IB_EINVAL, "params version 0 is reserved for 'none' HINT: publish versions 1, 2, ...");
  long maxb = rc__max_message_bytes(c);
  if (maxb > 0 && len + 64 > (size_t)maxb)
    return ib_fail(IB_EINVAL, "params blob of %zu bytes exceeds the message limit of %ld bytes HINT: raise "
                   "--max-message-mb on the shard and the client", len, maxb);
  ibrl_PublishRequest req = ibrl_PublishRequest_init_zero;
  req.version = version;
  wire_blob_src src = {data, len};
  wire_blob_set_src(&req.blob, &src);
  grpc_byte_buffer *bb = NULL, *rep_bb = NULL;
  int rc = wire_encode(&bb, ibrl_PublishRequest_fields, &req);
  if (rc != IB_OK) return rc;
  rc = rc__unary(c, shard, WIRE_PATH_PUBLISH, "Params/Publish", bb, &rep_bb, -1);
  grpc_byte_buffer_destroy(bb);
  if (rc != IB_OK) return rc;
  ibrl_PublishReply rep = ibrl_PublishReply_init_zero;
  rc = wire_decode(&rep, ibrl_PublishReply_fields, rep_bb, "PublishReply");
  grpc_byte_buffer_destroy(rep_bb);
  if (rc == IB_OK && rep.version != version)
    rc = ib_fail(IB_EPROTO, "params shard %d stored version %llu after publishing %llu HINT: incompatible server", shard,
                 (unsigned long long)rep.version, (unsigned long long)version);
  return rc;
}

int pc_get_if_newer(rc_client *c, int shard, uint64_t have, long wait_ms, pc_blob *out, uint64_t *stored) {
  IB_CHECK(c != NULL && out != NULL);
  if (shard < 0 || shard >= rc_client_shard_count(c))
    return ib_fail(IB_EINVAL, "params shard %d is outside [0, %d) HINT: count the --shards list", shard,
                   rc_client_shard_count(c));
  if (wait_ms < 0) wait_ms = 0;
  if (wait_ms > UINT32_MAX) wait_ms = UINT32_MAX;
  ibrl_GetIfNewerRequest req = ibrl_GetIfNewerRequest_init_zero;
  req.version = have;
  req.wait_ms = (uint32_t)wait_ms;
  grpc_byte_buffer *bb = NULL, *rep_bb = NULL;
  int rc = wire_encode(&bb, ibrl_GetIfNewerRequest_fields, &req);
  if (rc != IB_OK) return rc;
  /* The default client deadline on top of the wait, so the server's own wait ends first. */
  rc = rc__unary(c, shard, WIRE_PATH_GETIFNEWER, "Params/GetIfNewer", bb, &rep_bb, wait_ms + RC_DEFAULT_DEADLINE_MS);
  grpc_byte_buffer_destroy(bb);
  if (rc != IB_OK) return rc;
  ibrl_GetIfNewerReply rep = ibrl_GetIfNewerReply_init_zero;
  wire_blob_sink sink = {out->data, 0, out->cap, (size_t)rc__max_message_bytes(c)};
  wire_blob_set_sink(&rep.blob, &sink);
  rc = wire_decode(&rep, ibrl_GetIfNewerReply_fields, rep_bb, "GetIfNewerReply");
  grpc_byte_buffer_destroy(rep_bb);
  /* The sink may have grown the buffer even on failure: keep ownership in out. */
  out->data = sink.data;
  out->cap = sink.cap;
  if (rc != IB_OK) return rc;
  if (stored != NULL) *stored = rep.version;
  if (!rep.newer) return 0;
  if (rep.version <= have)
    return ib_fail(IB_EPROTO, "params shard %d says version %llu is newer than %llu HINT: incompatible server", shard,
                   (unsigned long long)rep.version, (unsigned long long)have);
  out->len = sink.len;
  out->version = rep.version;
  return 1;
}
