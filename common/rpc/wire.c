/* wire.c: nanopb <-> grpc_byte_buffer and the small client-side helpers.
 *
 * Design. Encoding sizes the message first (pb_get_encoded_size), encodes straight into one
 * grpc slice and wraps it in a raw byte buffer: one copy of the payload. Decoding reads the
 * buffer as one contiguous slice (grpc_byte_buffer_reader_readall: a ref when the buffer is one
 * slice, one copy when it is several, inflated if compressed) and decodes from memory.
 * Item lists use the hand-written Item codec below (one memcpy per float array).
 * Bytes callbacks write tag + length + data on encode (they run twice: size pass and write
 * pass, with no side effects) and grow a caller-owned buffer on decode, bounded by max_len. */
#include "wire.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "ib.h"

/* ---- encode ---- */

int wire_encode(grpc_byte_buffer **out, const pb_msgdesc_t *fields, const void *msg) {
  IB_CHECK(out != NULL && fields != NULL && msg != NULL);
  *out = NULL;
  size_t n = 0;
  if (!pb_get_encoded_size(&n, fields, msg)) return ib_fail(IB_EPROTO, "encode: cannot size the message");
  grpc_slice s = grpc_slice_malloc(n);
  pb_ostream_t os = pb_ostream_from_buffer(GRPC_SLICE_START_PTR(s), n);
  if (!pb_encode(&os, fields, msg)) {
    grpc_slice_unref(s);
    return ib_fail(IB_EPROTO, "encode: %s", PB_GET_ERROR(&os));
  }
  IB_CHECK(os.bytes_written == n); /* a callback that writes differently on the two passes is a bug */
  *out = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return IB_OK;
}

/* ---- decode ---- */

int wire_decode(void *msg, const pb_msgdesc_t *fields, const grpc_byte_buffer *bb, const char *what) {
  IB_CHECK(msg != NULL && fields != NULL);
  if (what == NULL) what = "message";
  if (bb == NULL)
    return ib_fail(IB_EPROTO, "%s: no message (the call was cancelled or the stream ended)", what);
  grpc_byte_buffer_reader r;
  /* The reader API takes a non-const pointer but does not modify the buffer. */
  if (!grpc_byte_buffer_reader_init(&r, (grpc_byte_buffer *)bb))
    return ib_fail(IB_EPROTO, "%s: cannot read the byte buffer (bad compression?)", what);
  /* One contiguous slice (a ref for a single-slice buffer, else one copy): nanopb's memory stream
   * then reads whole packed arrays with one memcpy, which a per-slice callback stream cannot. */
  grpc_slice all = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  pb_istream_t is = pb_istream_from_buffer(GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
  bool ok = pb_decode(&is, fields, msg);
  const char *err = PB_GET_ERROR(&is);
  grpc_slice_unref(all);
  if (!ok)
    return ib_fail(IB_EPROTO, "%s: malformed protobuf (%s) HINT: the peer must send the message defined "
                   "in proto/ibrl.proto within the bounds of proto/ibrl.options", what, err);
  return IB_OK;
}

/* ---- bytes callbacks ---- */

static bool blob_encode_cb(pb_ostream_t *os, const pb_field_t *field, void *const *arg) {
  const wire_blob_src *src = *arg;
  if (src == NULL || src->len == 0) return true; /* proto3: an empty bytes field is not written */
  if (!pb_encode_tag_for_field(os, field)) return false;
  if (!pb_encode_varint(os, (uint64_t)src->len)) return false;
  return pb_write(os, src->data, src->len);
}

void wire_blob_set_src(pb_callback_t *cb, const wire_blob_src *src) {
  IB_CHECK(cb != NULL);
  cb->funcs.encode = blob_encode_cb;
  cb->arg = (void *)src;
}

static bool blob_decode_cb(pb_istream_t *is, const pb_field_t *field, void **arg) {
  (void)field;
  wire_blob_sink *sink = *arg;
  size_t n = is->bytes_left; /* the sub-stream of this field: exactly its length */
  if (n > sink->max_len) PB_RETURN_ERROR(is, "blob too large");
  if (n > sink->cap) {
    sink->data = ib_xrealloc(sink->data, n);
    sink->cap = n;
  }
  sink->len = n;
  return pb_read(is, sink->data, n);
}

void wire_blob_set_sink(pb_callback_t *cb, wire_blob_sink *sink) {
  IB_CHECK(cb != NULL && sink != NULL);
  sink->len = 0;
  cb->funcs.decode = blob_decode_cb;
  cb->arg = sink;
}

/* ---- item lists ---- */

/* A hand-written codec for ibrl.Item. nanopb encodes and decodes packed floats one element at
 * a time (a pb_write / pb_read call per float), which dominated Sample at batch 256; an Item
 * is mostly three packed float arrays, which on a little-endian host are their wire bytes. The
 * encoder writes exactly what pb_encode would (fields in number order, proto3 defaults
 * omitted), so the bytes are canonical; test_wire checks both directions against nanopb. The
 * decoder accepts what any protobuf peer may send: packed or unpacked floats, fields in any
 * order, repeated scalars (last wins) and unknown fields (skipped). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WIRE_FAST_ITEMS 1
_Static_assert(ibrl_Item_obs_tag == 1 && ibrl_Item_action_tag == 2 && ibrl_Item_reward_tag == 3 &&
               ibrl_Item_discount_tag == 4 && ibrl_Item_next_obs_tag == 5 && ibrl_Item_proposer_tag == 6 &&
               ibrl_Item_actor_id_tag == 7 && ibrl_Item_seq_tag == 8 && ibrl_Item_weight_version_tag == 9 &&
               ibrl_Item_episode_end_tag == 10 && ibrl_Item_episode_success_tag == 11,
               "wire.c's Item codec assumes the field numbers of proto/ibrl.proto");
#else
#define WIRE_FAST_ITEMS 0
#endif

#if WIRE_FAST_ITEMS
static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* Encoded size of an Item body (without its own tag and length). */
static size_t item_size(const ibrl_Item *it) {
  size_t n = 0;
  const pb_size_t counts[3] = {it->obs_count, it->action_count, it->next_obs_count};
  for (int k = 0; k < 3; k++)
    if (counts[k] > 0) n += 1 + varint_len((uint64_t)counts[k] * 4) + (size_t)counts[k] * 4;
  if (float_bits(it->reward) != 0) n += 5;
  if (float_bits(it->discount) != 0) n += 5;
  if (it->proposer != 0) n += 1 + varint_len(it->proposer);
  if (it->actor_id != 0) n += 1 + varint_len(it->actor_id);
  if (it->seq != 0) n += 1 + varint_len(it->seq);
  if (it->weight_version != 0) n += 1 + varint_len(it->weight_version);
  if (it->episode_end) n += 2;
  if (it->episode_success) n += 2;
  return n;
}

static bool put_floats(pb_ostream_t *os, uint8_t key, const float *x, pb_size_t count) {
  if (count == 0) return true;
  return pb_write(os, &key, 1) && pb_encode_varint(os, (uint64_t)count * 4) && pb_write(os, (const pb_byte_t *)x, (size_t)count * 4);
}

static bool put_fixed(pb_ostream_t *os, uint8_t key, float f) {
  uint32_t u = float_bits(f);
  return u == 0 || (pb_write(os, &key, 1) && pb_write(os, (const pb_byte_t *)&u, 4));
}

static bool put_varint(pb_ostream_t *os, uint8_t key, uint64_t v) {
  return v == 0 || (pb_write(os, &key, 1) && pb_encode_varint(os, v));
}

static bool item_write(pb_ostream_t *os, const ibrl_Item *it) {
  return put_floats(os, 0x0a, it->obs, it->obs_count) && put_floats(os, 0x12, it->action, it->action_count) &&
         put_fixed(os, 0x1d, it->reward) && put_fixed(os, 0x25, it->discount) &&
         put_floats(os, 0x2a, it->next_obs, it->next_obs_count) && put_varint(os, 0x30, it->proposer) &&
         put_varint(os, 0x38, it->actor_id) && put_varint(os, 0x40, it->seq) &&
         put_varint(os, 0x48, it->weight_version) && put_varint(os, 0x50, it->episode_end) &&
         put_varint(os, 0x58, it->episode_success);
}

/* Appends floats to a bounded array from a packed (LEN) or single (I32) field. */
static bool get_floats(pb_istream_t *is, pb_wire_type_t wt, float *x, pb_size_t *count, pb_size_t max) {
  if (wt == PB_WT_32BIT) {
    if (*count >= max) PB_RETURN_ERROR(is, "array overflow");
    uint32_t u;
    if (!pb_decode_fixed32(is, &u)) return false;
    memcpy(&x[(*count)++], &u, 4);
    return true;
  }
  if (wt != PB_WT_STRING) PB_RETURN_ERROR(is, "wrong wire type");
  uint32_t len;
  if (!pb_decode_varint32(is, &len)) return false;
  if (len % 4 != 0) PB_RETURN_ERROR(is, "packed float length not a multiple of 4");
  if (len / 4 > (uint32_t)(max - *count)) PB_RETURN_ERROR(is, "array overflow");
  if (!pb_read(is, (pb_byte_t *)(x + *count), len)) return false;
  *count = (pb_size_t)(*count + len / 4);
  return true;
}

static bool item_read(pb_istream_t *is, ibrl_Item *it) {
  it->obs_count = it->action_count = it->next_obs_count = 0;
  it->reward = it->discount = 0.0f;
  it->proposer = it->actor_id = 0;
  it->seq = it->weight_version = 0;
  it->episode_end = it->episode_success = false;
  while (is->bytes_left > 0) {
    pb_wire_type_t wt;
    uint32_t tag;
    bool eof;
    if (!pb_decode_tag(is, &wt, &tag, &eof)) return eof ? true : false;
    uint64_t v;
    uint32_t u;
    switch (tag) {
      case 1: if (!get_floats(is, wt, it->obs, &it->obs_count, IB_ARRAY_LEN(it->obs))) return false; break;
      case 2: if (!get_floats(is, wt, it->action, &it->action_count, IB_ARRAY_LEN(it->action))) return false; break;
      case 5: if (!get_floats(is, wt, it->next_obs, &it->next_obs_count, IB_ARRAY_LEN(it->next_obs))) return false; break;
      case 3:
      case 4:
        if (wt != PB_WT_32BIT) PB_RETURN_ERROR(is, "wrong wire type");
        if (!pb_decode_fixed32(is, &u)) return false;
        memcpy(tag == 3 ? &it->reward : &it->discount, &u, 4);
        break;
      case 6: case 7: case 8: case 9: case 10: case 11:
        if (wt != PB_WT_VARINT) PB_RETURN_ERROR(is, "wrong wire type");
        if (!pb_decode_varint(is, &v)) return false;
        if (tag == 6) it->proposer = (uint32_t)v;
        else if (tag == 7) it->actor_id = (uint32_t)v;
        else if (tag == 8) it->seq = v;
        else if (tag == 9) it->weight_version = v;
        else if (tag == 10) it->episode_end = v != 0;
        else it->episode_success = v != 0;
        break;
      default:
        if (!pb_skip_field(is, wt)) return false;
    }
  }
  return true;
}
#endif /* WIRE_FAST_ITEMS */

static bool items_encode_cb(pb_ostream_t *os, const pb_field_t *field, void *const *arg) {
  wire_items_src *src = *arg;
  for (size_t i = 0; i < src->n; i++) {
    src->get(src->arg, i, src->scratch);
    if (!pb_encode_tag_for_field(os, field)) return false;
#if WIRE_FAST_ITEMS
    size_t n = item_size(src->scratch);
    if (!pb_encode_varint(os, (uint64_t)n)) return false;
    if (os->callback == NULL) { /* sizing pass: count the bytes, write nothing */
      if (!pb_write(os, NULL, n)) return false;
    } else if (!item_write(os, src->scratch)) {
      return false;
    }
#else
    if (!pb_encode_submessage(os, ibrl_Item_fields, src->scratch)) return false;
#endif
  }
  return true;
}

void wire_items_set_src(pb_callback_t *cb, wire_items_src *src) {
  IB_CHECK(cb != NULL && src != NULL && (src->n == 0 || (src->get != NULL && src->scratch != NULL)));
  cb->funcs.encode = items_encode_cb;
  cb->arg = src;
}

/* Called once per item: nanopb hands over a sub-stream holding exactly one Item. */
static bool items_decode_cb(pb_istream_t *is, const pb_field_t *field, void **arg) {
  (void)field;
  wire_items_sink *sink = *arg;
  if (sink->n >= sink->max_n) PB_RETURN_ERROR(is, "too many items");
#if WIRE_FAST_ITEMS
  if (!item_read(is, sink->scratch)) return false;
#else
  if (!pb_decode(is, ibrl_Item_fields, sink->scratch)) return false; /* resets to defaults first */
#endif
  if (sink->put(sink->arg, sink->n, sink->scratch) != 0) PB_RETURN_ERROR(is, "item rejected");
  sink->n++;
  return true;
}

void wire_items_set_sink(pb_callback_t *cb, wire_items_sink *sink) {
  IB_CHECK(cb != NULL && sink != NULL && sink->put != NULL && sink->scratch != NULL);
  sink->n = 0;
  cb->funcs.decode = items_decode_cb;
  cb->arg = sink;
}

/* ---- deadlines, status names ---- */

gpr_timespec wire_deadline_ms(long ms) {
  if (ms < 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

long wire_ms_until(gpr_timespec deadline) {
  if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0) return LONG_MAX;
  gpr_timespec now = gpr_now(deadline.clock_type == GPR_TIMESPAN ? GPR_CLOCK_MONOTONIC : deadline.clock_type);
  gpr_timespec d = gpr_time_sub(deadline, now);
  if (d.tv_sec < 0) return 0;
  if (d.tv_sec > LONG_MAX / 2000) return LONG_MAX;
  return (long)d.tv_sec * 1000 + d.tv_nsec / 1000000;
}

const char *wire_status_name(grpc_status_code code) {
  static const char *const names[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  if ((unsigned)code < IB_ARRAY_LEN(names)) return names[code];
  return "UNKNOWN_STATUS";
}

/* ---- auth metadata ---- */

void wire_auth_init(wire_auth *auth, const char *token) {
  IB_CHECK(auth != NULL);
  memset(auth, 0, sizeof *auth);
  if (token == NULL || token[0] == '\0') return;
  size_t n = strlen(token) + 8;
  char *v = ib_xmalloc(n);
  snprintf(v, n, "Bearer %s", token);
  auth->md.key = grpc_slice_from_static_string("authorization");
  auth->md.value = grpc_slice_from_copied_string(v);
  free(v);
  auth->set = 1;
}

void wire_auth_free(wire_auth *auth) {
  if (auth == NULL || !auth->set) return;
  grpc_slice_unref(auth->md.key);
  grpc_slice_unref(auth->md.value);
  memset(auth, 0, sizeof *auth);
}

/* ---- channels ---- */

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = ib_xmalloc(cap);
  size_t k;
  while ((k = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += k;
    if (cap - len - 1 == 0) {
      cap *= 2;
      buf = ib_xrealloc(buf, cap);
    }
  }
  fclose(f);
  buf[len] = '\0';
  return buf;
}

grpc_channel *wire_channel_create(const char *target, const wire_channel_opts *opts) {
  IB_CHECK(target != NULL);
  wire_channel_opts o = {0, NULL, 0, 0};
  if (opts != NULL) o = *opts;
  int keepalive = o.keepalive_ms == 0 ? WIRE_DEFAULT_KEEPALIVE_MS : o.keepalive_ms;
  long maxb = o.max_message_bytes == 0 ? WIRE_DEFAULT_MAX_MESSAGE_BYTES : o.max_message_bytes;
  if (maxb > INT_MAX) maxb = INT_MAX;
  int backoff = o.reconnect_backoff_ms > 0 ? o.reconnect_backoff_ms : 250;
  grpc_arg args[9];
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = (int)maxb;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = (int)maxb;
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
  args[2].value.integer = backoff;
  /* gRPC takes the "min reconnect backoff" as the minimum connect timeout (the time one connection
   * attempt, handshakes included, may take), not as a pause between attempts (grpc/grpc#12830,
   * #33423): at the backoff's 250 ms, a TLS handshake on a busy machine timed out and failed the
   * first call of a fresh client (docs/results/replay-soak.md, finding 6). The pauses between
   * attempts stay the short INITIAL/MAX backoff; a refused connection still fails at once. */
  args[3].type = GRPC_ARG_INTEGER;
  args[3].key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
  args[3].value.integer = backoff > WIRE_MIN_CONNECT_TIMEOUT_MS ? backoff : WIRE_MIN_CONNECT_TIMEOUT_MS;
  args[4].type = GRPC_ARG_INTEGER;
  args[4].key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
  args[4].value.integer = backoff * 4;
  /* Keepalive (wire.h): pings even without calls and without data frames sent, so an idle channel
   * to a vanished shard is noticed too. */
  size_t nargs = 5;
  if (keepalive > 0) {
    args[5].type = GRPC_ARG_INTEGER;
    args[5].key = GRPC_ARG_KEEPALIVE_TIME_MS;
    args[5].value.integer = keepalive;
    args[6].type = GRPC_ARG_INTEGER;
    args[6].key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS;
    args[6].value.integer = keepalive;
    args[7].type = GRPC_ARG_INTEGER;
    args[7].key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS;
    args[7].value.integer = 1;
    args[8].type = GRPC_ARG_INTEGER;
    args[8].key = GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA;
    args[8].value.integer = 0;
    nargs = 9;
  }
  grpc_channel_args ca = {nargs, args};
  grpc_channel_credentials *creds;
  if (o.tls_root_pem != NULL) {
    char *pem = read_file(o.tls_root_pem);
    if (pem == NULL) {
      ib_fail(IB_EIO, "cannot read TLS root certificates '%s' HINT: pass the PEM file of the CA that "
              "signed the server certificate", o.tls_root_pem);
      return NULL;
    }
    creds = grpc_ssl_credentials_create(pem, NULL, NULL, NULL);
    free(pem);
  } else {
    creds = grpc_insecure_credentials_create();
  }
  grpc_channel *ch = grpc_channel_create(target, creds, &ca);
  grpc_channel_credentials_release(creds);
  return ch;
}
