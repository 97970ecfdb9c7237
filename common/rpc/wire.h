/* wire.h: the message layer shared by every gRPC peer of ibrl: nanopb messages <-> gRPC byte
 * buffers, the bytes callbacks for the weight blob, method paths, deadlines, the shared-token
 * metadata and client channel creation (gRPC C core 1.51 + nanopb 0.4.7, docs/grpc-core.md).
 *
 * Messages are the nanopb structs generated from proto/ibrl.proto ("ibrl.pb.h") and
 * proto/grpc/health/v1/health.proto ("grpc/health/v1/health.pb.h"); link ib_rpc (which links
 * ib_proto). Nothing here allocates a nanopb struct: callers own their structs. The item lists
 * of InsertRequest and SampleReply are nanopb callbacks (the Debian nanopb library limits a
 * struct to 64 kB), streamed one ibrl_Item (~4.6 kB, keep it on the heap) at a time through
 * wire_items_set_src / wire_items_set_sink below.
 *
 * Errors: functions return IB_OK or a negative IB_E* with ib_errmsg() naming what failed (the
 * nanopb error string for malformed messages). Thread-safety: every function is reentrant; a
 * wire_auth or wire_blob_sink belongs to one thread at a time. */
#ifndef IB_WIRE_H
#define IB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <pb.h>

#include "ibrl.pb.h"
#include "grpc/health/v1/health.pb.h"

/* ---- method paths (HTTP/2 :path of each RPC) ---- */
#define WIRE_PATH_INSERT "/ibrl.Replay/Insert"          /* client stream InsertRequest -> InsertReply */
#define WIRE_PATH_SAMPLE "/ibrl.Replay/Sample"          /* SampleRequest -> SampleReply */
#define WIRE_PATH_INFO "/ibrl.Replay/Info"              /* InfoRequest -> InfoReply */
#define WIRE_PATH_CHECKPOINT "/ibrl.Replay/Checkpoint"  /* CheckpointRequest -> CheckpointReply */
#define WIRE_PATH_RATELIMIT "/ibrl.Replay/RateLimit"    /* RateLimitRequest -> RateLimitReply */
#define WIRE_PATH_READ "/ibrl.Replay/Read"              /* ReadRequest -> ReadReply (a paged scan) */
#define WIRE_PATH_PUBLISH "/ibrl.Params/Publish"        /* PublishRequest -> PublishReply */
#define WIRE_PATH_GETIFNEWER "/ibrl.Params/GetIfNewer"  /* GetIfNewerRequest -> GetIfNewerReply */
#define WIRE_PATH_HEALTH_CHECK "/grpc.health.v1.Health/Check"

/* Table names of a shard (InsertRequest.table; "" means online). */
#define WIRE_TABLE_DEMO "demo"
#define WIRE_TABLE_ONLINE "online"

/* Default message limit of both sides (the server's --max-message-mb default). */
#define WIRE_DEFAULT_MAX_MESSAGE_BYTES (16 * 1024 * 1024)

/* ---- messages <-> byte buffers ---- */

/* Encodes `msg` (a struct of type `fields`, e.g. ibrl_SampleReply_fields) into a new byte
 * buffer in *out. The caller destroys it with grpc_byte_buffer_destroy (or hands it to a
 * SEND_MESSAGE op and destroys it after the batch completes). Encode callbacks in `msg` run
 * twice (size pass, then write pass), so they must be side-effect free.
 * Send a buffer in one call only: gRPC core may consume its slices when sending it, so a
 * second call with the same buffer can send an empty message.
 * Returns IB_OK, or IB_EPROTO (with the nanopb error) and *out = NULL. */
int wire_encode(grpc_byte_buffer **out, const pb_msgdesc_t *fields, const void *msg);

/* Decodes byte buffer `bb` (borrowed, not destroyed) into `msg`. The caller initialises `msg`
 * first (e.g. `*msg = (ibrl_Item)ibrl_Item_init_zero` and any decode callbacks). A NULL `bb`
 * (a cancelled call or a half-closed stream) returns IB_EPROTO. Unknown fields are skipped, as
 * protobuf requires. Returns IB_OK, or IB_EPROTO with "<what>: <nanopb error>" in ib_errmsg();
 * on failure `msg` holds partial data and must not be used. `what` names the message in errors. */
int wire_decode(void *msg, const pb_msgdesc_t *fields, const grpc_byte_buffer *bb, const char *what);

/* ---- bytes fields as callbacks (the weight blob) ---- */

/* A borrowed byte range to encode into a `bytes` callback field. */
typedef struct wire_blob_src {
  const void *data; /* borrowed; must outlive the wire_encode call */
  size_t len;
} wire_blob_src;

/* Points callback field `cb` at `src`, so encoding writes src's bytes as that field
 * (nothing is written when len == 0). */
void wire_blob_set_src(pb_callback_t *cb, const wire_blob_src *src);

/* Where a decoded `bytes` callback field lands. The decoder grows `data` with ib_xrealloc up to
 * `max_len` bytes; a longer field fails the decode with "blob too large". The caller owns
 * `data` (free() it, or keep it across calls to reuse the allocation). */
typedef struct wire_blob_sink {
  uint8_t *data; /* owned by the caller; may start NULL */
  size_t len;    /* bytes of the last decoded field */
  size_t cap;    /* allocated bytes */
  size_t max_len;
} wire_blob_sink;

/* Points callback field `cb` at `sink` for decoding. */
void wire_blob_set_sink(pb_callback_t *cb, wire_blob_sink *sink);

/* ---- item lists as callbacks (InsertRequest.items, SampleReply.items) ---- */

/* Encodes `n` items, asking `get` to fill the scratch item for index i. `get` is called twice per
 * item (size pass, write pass) and must fill the same values both times. */
typedef struct wire_items_src {
  size_t n;
  void (*get)(void *arg, size_t i, ibrl_Item *it);
  void *arg;         /* borrowed, passed to get */
  ibrl_Item *scratch; /* borrowed scratch item (heap: ~4.6 kB) */
} wire_items_src;

/* Points callback field `cb` (e.g. &req.items) at `src` for wire_encode. */
void wire_items_set_src(pb_callback_t *cb, wire_items_src *src);

/* Receives decoded items one at a time: `put` gets item number i (0, 1, ...) in the scratch
 * item, which is overwritten by the next one. `put` returns 0 to go on, or nonzero to fail the
 * decode (its ib_fail message is kept). More than max_n items fail the decode with
 * "too many items". After wire_decode, `n` is the number of items decoded. */
typedef struct wire_items_sink {
  int (*put)(void *arg, size_t i, const ibrl_Item *it);
  void *arg;          /* borrowed, passed to put */
  ibrl_Item *scratch; /* borrowed scratch item */
  size_t max_n;
  size_t n;           /* out: items decoded */
} wire_items_sink;

/* Points callback field `cb` at `sink` for wire_decode; resets sink->n to 0. */
void wire_items_set_sink(pb_callback_t *cb, wire_items_sink *sink);

/* ---- deadlines, status names ---- */

/* A monotonic deadline `ms` milliseconds from now (ms < 0: infinite). */
gpr_timespec wire_deadline_ms(long ms);
/* Milliseconds from now until `deadline` (any clock), clamped to >= 0; LONG_MAX if infinite. */
long wire_ms_until(gpr_timespec deadline);
/* "OK", "INVALID_ARGUMENT", ... for a status code; never NULL. */
const char *wire_status_name(grpc_status_code code);

/* ---- shared-token metadata ("authorization: Bearer <token>") ---- */

/* Holds one metadata entry; pass &auth->md with count 1 in SEND_INITIAL_METADATA. */
typedef struct wire_auth {
  grpc_metadata md; /* owned slices */
  int set;
} wire_auth;

/* Fills `auth` for `token` (copied). A NULL or empty token leaves auth->set = 0 (send no
 * metadata). Free with wire_auth_free (accepts a zeroed struct). */
void wire_auth_init(wire_auth *auth, const char *token);
void wire_auth_free(wire_auth *auth);

/* ---- client channels ---- */

typedef struct wire_channel_opts {
  long max_message_bytes;    /* receive limit; 0 = WIRE_DEFAULT_MAX_MESSAGE_BYTES, -1 = none */
  const char *tls_root_pem;  /* NULL = plaintext; else a PEM file of trusted roots (TLS) */
  int reconnect_backoff_ms;  /* 0 = 250 ms: the pause before a reconnect attempt, growing to 4x this
                              * (grpc-core.md pitfall 4); one attempt may take WIRE_MIN_CONNECT_TIMEOUT_MS */
  int keepalive_ms;          /* 0 = WIRE_DEFAULT_KEEPALIVE_MS, -1 = off: see below */
} wire_channel_opts;

/* Keepalive. A peer that vanishes without closing its connection (its machine or network died, or
 * it is frozen) leaves gRPC's channel READY: without pings, every call on it would wait for its
 * deadline and the channel would never reconnect to a restarted shard until the kernel gives up
 * the TCP connection (many minutes). So every channel pings the server after keepalive_ms without
 * reads, with or without calls in flight, and closes the connection when the ping is not answered
 * within keepalive_ms more: calls in flight then fail UNAVAILABLE and the next call reconnects.
 * The servers of common/rpc accept pings every 500 ms (rpc_server.c). */
#define WIRE_DEFAULT_KEEPALIVE_MS 10000

/* How long one connection attempt (TCP, then the TLS and HTTP/2 handshakes) may take before gRPC
 * gives it up, whatever the reconnect backoff. */
#define WIRE_MIN_CONNECT_TIMEOUT_MS 5000

/* Creates a channel to `target` ("127.0.0.1:50051"). opts may be NULL (defaults). Returns the
 * channel (destroy with grpc_channel_destroy) or NULL with ib_errmsg() set (unreadable PEM
 * file). Requires grpc_init(). */
grpc_channel *wire_channel_create(const char *target, const wire_channel_opts *opts);

#endif /* IB_WIRE_H */
