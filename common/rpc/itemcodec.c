/* itemcodec.c: the hand codec of Item lists (see itemcodec.h for the contract).
 *
 * Design. Encoding is two passes over the rows' scalars (lengths, then bytes) and one copy per
 * float field; the caller sizes one buffer with ic_items_len, so nothing is allocated here.
 * Reading has two forms: ic_item_parse copies each float field straight into its row (the client
 * fills its batch this way), and ic_item_view copies nothing and points at the packed floats where
 * they lie in the message (the server hands those pointers to the store, whose copy into its
 * table is then the only one). ic_msg walks a received message across its slices, so neither
 * side flattens a ~150 kB message first. The NaN/Inf check runs on 4-lane integer vectors (a
 * float is non-finite exactly when its exponent bits are all ones, i.e. (bits & 0x7fffffff) >
 * 0x7f7fffff), inside the copy when there is one: a separate isfinite() scan over the stored rows
 * cost the server ~9% of its insert time. Only when a lane trips does a scalar scan find the
 * index to report. The client's encoder has the same check folded into its copy
 * (ic_items_put_check), so an actor's batch is read once, not twice.
 * Both readers first try the layout every encoder we know writes (fields in number order, each
 * float field one packed run of the exact dims, then the six scalars): a few byte compares at
 * known offsets (canon_head, canon_tail_read) instead of a trip through the field switch per
 * field; anything else (other orders, omitted defaults, repeated runs, unknown fields) falls back
 * to the general walk, which gives the same result.
 * ItemColumns (the form ibrl's own client and shard use): the writer lays out n and the ten
 * column headers first (ic_cols_layout), so a column is one copy from the caller's array (with
 * the NaN/Inf check in the copy) or, on the shard, the store's gather straight into place; the
 * reader checks each column's length before copying and copies it slice by slice straight into
 * the destination rows (ic_msg_cols_read), with the check done in the same pass on the shard.
 * (Checking the shard's rows in place and handing the store pointers into the slices, so that
 * only a row split by a slice border is copied, was measured and dropped, 2026-11-23: the pass
 * is bound by its first touch of the received bytes, not by its stores, and the store then read
 * its rows from the slices more slowly than from the slot: no gain in decode + store.)
 * The checking copy uses 32-byte vectors where the CPU has AVX2 (picked at run time; the build
 * stays generic x86-64), which halves its stores. */
#include "itemcodec.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "itemcodec.c copies packed floats as host floats: little-endian hosts only"
#endif

#define IC_MAX_FIELD 0x1fffffffu /* the largest protobuf field number */

/* Wire keys of the Item fields (field << 3 | wire type). */
#define K_OBS 0x0A
#define K_ACTION 0x12
#define K_REWARD 0x1D
#define K_DISCOUNT 0x25
#define K_NEXT_OBS 0x2A
#define K_PROPOSER 0x30
#define K_ACTOR 0x38
#define K_SEQ 0x40
#define K_WV 0x48
#define K_END 0x50
#define K_SUCCESS 0x58

/* ---- encoding ---- */

typedef int32_t v4i __attribute__((vector_size(16)));

/* The scalar end of the copy_check loops: floats [i, n), folded into the vector part's flag. */
static inline int copy_check_tail(uint8_t *dst, const uint8_t *src, size_t i, size_t n, int32_t bad) {
  for (; i < n; i++) {
    int32_t x;
    memcpy(&x, src + 4 * i, 4);
    memcpy(dst + 4 * i, &x, 4);
    bad |= (x & 0x7fffffff) > 0x7f7fffff;
  }
  return bad != 0;
}

/* Copies n floats from src to dst and returns nonzero if any is NaN or Inf: the SSE2 version
 * every x86-64 host has. */
static int copy_check_sse2(void *dstv, const void *srcv, size_t n) {
  uint8_t *dst = dstv;
  const uint8_t *src = srcv;
  const v4i mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  const v4i lim = {0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff};
  v4i acc = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v4i x;
    memcpy(&x, src + 4 * i, 16);
    memcpy(dst + 4 * i, &x, 16);
    acc |= (x & mask) > lim;
  }
  int32_t bad = acc[0] | acc[1] | acc[2] | acc[3];
  return copy_check_tail(dst, src, i, n, bad);
}

#if defined(__x86_64__) && defined(__GNUC__)
typedef int32_t v8i __attribute__((vector_size(32)));

/* copy_check with 2 x 32-byte vectors per step, for hosts with AVX2 (picked at run time: the
 * build stays portable). The store port is what bounds this loop; half as many stores as the
 * SSE2 version made a 155 kB batch ~30% faster to encode (7.4 against 10.3 us, 2026-11-22). */
__attribute__((target("avx2"))) static int copy_check_avx2(void *dstv, const void *srcv, size_t n) {
  uint8_t *dst = dstv;
  const uint8_t *src = srcv;
  const v8i mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  const v8i lim = {0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff};
  v8i a0 = {0, 0, 0, 0, 0, 0, 0, 0}, a1 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    v8i x, y;
    memcpy(&x, src + 4 * i, 32);
    memcpy(&y, src + 4 * i + 32, 32);
    memcpy(dst + 4 * i, &x, 32);
    memcpy(dst + 4 * i + 32, &y, 32);
    a0 |= (x & mask) > lim;
    a1 |= (y & mask) > lim;
  }
  a0 |= a1;
  int32_t bad = 0;
  for (int k = 0; k < 8; k++) bad |= a0[k];
  /* Clean the upper halves of the ymm registers before any SSE code runs again: gcc does not
   * always do it for a target("avx2") function, and dirty upper state made every later SSE
   * instruction (the store's streaming copy, glibc, gRPC) slower: the shard's insert CPU rose by
   * a third until this was added. */
  __builtin_ia32_vzeroupper();
  return copy_check_tail(dst, src, i, n, bad);
}

static int copy_check(void *dst, const void *src, size_t n) {
  static int avx2 = -1; /* racy first use is harmless: every thread computes the same value */
  int a = __atomic_load_n(&avx2, __ATOMIC_RELAXED);
  if (a < 0) {
    __builtin_cpu_init();
    a = __builtin_cpu_supports("avx2") ? 1 : 0;
    __atomic_store_n(&avx2, a, __ATOMIC_RELAXED);
  }
  return a ? copy_check_avx2(dst, src, n) : copy_check_sse2(dst, src, n);
}
#else
static int copy_check(void *dst, const void *src, size_t n) { return copy_check_sse2(dst, src, n); }
#endif

size_t ic_varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, n++;
  return n;
}

uint8_t *ic_put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) *p++ = (uint8_t)(v | 0x80), v >>= 7;
  *p++ = (uint8_t)v;
  return p;
}

size_t ic_varint_field_len(uint32_t field, uint64_t v) {
  return ic_varint_len((uint64_t)field << 3) + ic_varint_len(v);
}

uint8_t *ic_put_varint_field(uint8_t *p, uint32_t field, uint64_t v) {
  p = ic_put_varint(p, (uint64_t)field << 3);
  return ic_put_varint(p, v);
}

size_t ic_bytes_field_len(uint32_t field, size_t len) {
  return ic_varint_len((uint64_t)field << 3 | 2) + ic_varint_len(len) + len;
}

uint8_t *ic_put_bytes_field(uint8_t *p, uint32_t field, const void *data, size_t len) {
  p = ic_put_varint(p, (uint64_t)field << 3 | 2);
  p = ic_put_varint(p, len);
  if (len) memcpy(p, data, len);
  return p + len;
}

static uint8_t *put_floats(uint8_t *p, uint8_t key, const float *x, size_t n) {
  *p++ = key;
  p = ic_put_varint(p, n * 4);
  memcpy(p, x, n * 4);
  return p + n * 4;
}

/* Encoded size of row i's Item body when it carries actor id `aid` and `seq`. */
static size_t body_len(const ic_rows *r, size_t i, uint32_t aid, uint64_t seq) {
  size_t od = (size_t)r->obs_dim * 4, ad = (size_t)r->act_dim * 4;
  return 2 * (1 + ic_varint_len(od) + od) + (1 + ic_varint_len(ad) + ad) + 2 * 5 + 1 +
         ic_varint_len(r->proposer[i]) + 1 + ic_varint_len(aid) + 1 + ic_varint_len(seq) + 1 +
         ic_varint_len(r->weight_version[i]) + 2 * 2;
}

size_t ic_items_len(const ic_rows *r, size_t lo, size_t hi, uint32_t field, const ic_stamp *stamp) {
  size_t key = ic_varint_len((uint64_t)field << 3 | 2), total = 0;
  for (size_t i = lo; i < hi; i++) {
    size_t b = body_len(r, i, stamp ? stamp->actor_id : r->actor_id[i],
                        stamp ? stamp->seq0 + (i - lo) : r->seq[i]);
    total += key + ic_varint_len(b) + b;
  }
  return total;
}

uint8_t *ic_items_put(uint8_t *p, const ic_rows *r, size_t lo, size_t hi, uint32_t field,
                      const ic_stamp *stamp) {
  size_t od = (size_t)r->obs_dim, ad = (size_t)r->act_dim;
  uint64_t key = (uint64_t)field << 3 | 2;
  for (size_t i = lo; i < hi; i++) {
    uint32_t aid = stamp ? stamp->actor_id : r->actor_id[i];
    uint64_t seq = stamp ? stamp->seq0 + (i - lo) : r->seq[i];
    p = ic_put_varint(p, key);
    p = ic_put_varint(p, body_len(r, i, aid, seq));
    p = put_floats(p, K_OBS, r->obs + i * od, od);
    p = put_floats(p, K_ACTION, r->action + i * ad, ad);
    *p++ = K_REWARD;
    memcpy(p, &r->reward[i], 4), p += 4;
    *p++ = K_DISCOUNT;
    memcpy(p, &r->discount[i], 4), p += 4;
    p = put_floats(p, K_NEXT_OBS, r->next_obs + i * od, od);
    *p++ = K_PROPOSER, p = ic_put_varint(p, r->proposer[i]);
    *p++ = K_ACTOR, p = ic_put_varint(p, aid);
    *p++ = K_SEQ, p = ic_put_varint(p, seq);
    *p++ = K_WV, p = ic_put_varint(p, r->weight_version[i]);
    *p++ = K_END, *p++ = r->episode_end[i] ? 1 : 0;
    *p++ = K_SUCCESS, *p++ = r->episode_success[i] ? 1 : 0;
  }
  return p;
}

/* put_floats with the NaN/Inf check of copy_check folded into the copy; returns the byte after. */
static uint8_t *put_floats_check(uint8_t *p, uint8_t key, const float *x, size_t n, int *bad) {
  *p++ = key;
  p = ic_put_varint(p, n * 4);
  *bad |= copy_check(p, x, n);
  return p + n * 4;
}

uint8_t *ic_items_put_check(uint8_t *p, const ic_rows *r, size_t lo, size_t hi, uint32_t field,
                            const ic_stamp *stamp, int *finite) {
  size_t od = (size_t)r->obs_dim, ad = (size_t)r->act_dim;
  uint64_t key = (uint64_t)field << 3 | 2;
  int bad = 0;
  for (size_t i = lo; i < hi; i++) {
    uint32_t aid = stamp ? stamp->actor_id : r->actor_id[i];
    uint64_t seq = stamp ? stamp->seq0 + (i - lo) : r->seq[i];
    p = ic_put_varint(p, key);
    p = ic_put_varint(p, body_len(r, i, aid, seq));
    p = put_floats_check(p, K_OBS, r->obs + i * od, od, &bad);
    p = put_floats_check(p, K_ACTION, r->action + i * ad, ad, &bad);
    *p++ = K_REWARD;
    memcpy(p, &r->reward[i], 4), p += 4;
    *p++ = K_DISCOUNT;
    memcpy(p, &r->discount[i], 4), p += 4;
    p = put_floats_check(p, K_NEXT_OBS, r->next_obs + i * od, od, &bad);
    float sc[2] = {r->reward[i], r->discount[i]};
    bad |= copy_check(sc, sc, 2); /* in place: only the check */
    *p++ = K_PROPOSER, p = ic_put_varint(p, r->proposer[i]);
    *p++ = K_ACTOR, p = ic_put_varint(p, aid);
    *p++ = K_SEQ, p = ic_put_varint(p, seq);
    *p++ = K_WV, p = ic_put_varint(p, r->weight_version[i]);
    *p++ = K_END, *p++ = r->episode_end[i] ? 1 : 0;
    *p++ = K_SUCCESS, *p++ = r->episode_success[i] ? 1 : 0;
  }
  *finite = !bad;
  return p;
}

/* ---- parsing ---- */

int ic_get_varint(ic_reader *r, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
    uint8_t c = *r->p++;
    x |= (uint64_t)(c & 0x7F) << shift;
    if (!(c & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

int ic_skip_field(ic_reader *r, int wt) {
  uint64_t v;
  switch (wt) {
    case 0: return ic_get_varint(r, &v);
    case 1:
      if (r->end - r->p < 8) return -1;
      r->p += 8;
      return 0;
    case 2:
      if (ic_get_varint(r, &v) || v > (uint64_t)(r->end - r->p)) return -1;
      r->p += v;
      return 0;
    case 5:
      if (r->end - r->p < 4) return -1;
      r->p += 4;
      return 0;
    default: return -1;
  }
}

/* 1 if the n floats stored at p (any alignment) are all finite. */
static int finite_bytes(const uint8_t *p, size_t n) {
  const v4i mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  const v4i lim = {0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff};
  v4i acc = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v4i v;
    memcpy(&v, p + 4 * i, 16);
    acc |= (v & mask) > lim;
  }
  int32_t bad = acc[0] | acc[1] | acc[2] | acc[3];
  for (; i < n; i++) {
    int32_t b;
    memcpy(&b, p + 4 * i, 4);
    bad |= (b & 0x7fffffff) > 0x7f7fffff;
  }
  return bad == 0;
}

int ic_floats_finite(const float *x, size_t n) { return finite_bytes((const uint8_t *)x, n); }

static long first_bad(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int32_t b;
    memcpy(&b, &x[i], 4);
    if ((b & 0x7fffffff) > 0x7f7fffff) return (long)i;
  }
  return -1;
}

/* Appends the floats of a repeated float field (packed wt 2, or one value wt 5) to
 * dst[*n .. cap). Returns IC_OK, IC_EMALFORMED, or IC_EDIMS with *n raised to the count the
 * field would have made. *bad is set when a copied value is not finite (check only). */
static int get_floats(ic_reader *r, int wt, float *dst, int *n, int cap, int check, int *bad) {
  uint64_t len;
  if (wt == 5) {
    if (r->end - r->p < 4) return IC_EMALFORMED;
    if (*n >= cap) {
      (*n)++;
      return IC_EDIMS;
    }
    len = 4;
  } else {
    if (wt != 2 || ic_get_varint(r, &len) || len > (uint64_t)(r->end - r->p) || len % 4)
      return IC_EMALFORMED;
    if (len / 4 > (uint64_t)(cap - *n)) {
      *n += (int)(len / 4);
      return IC_EDIMS;
    }
  }
  if (check) {
    *bad |= copy_check(dst + *n, r->p, (size_t)len / 4);
  } else {
    memcpy(dst + *n, r->p, (size_t)len);
  }
  r->p += len;
  *n += (int)(len / 4);
  return IC_OK;
}

static const char *float_field_name(int f) {
  return f == 1 ? "obs" : f == 2 ? "action" : f == 5 ? "next_obs" : f == 3 ? "reward" : "discount";
}

/* The float fields of an item body in the order and form every encoder we know writes them
 * (ours, nanopb, protobuf: fields by number, each float field one packed run of the exact dims,
 * reward and discount present). */
typedef struct canon {
  const uint8_t *obs, *action, *next_obs, *reward, *discount; /* into the body */
  const uint8_t *rest;                                        /* the fields after next_obs */
} canon;

/* Fills c and returns 1 when body [p, p + len) starts with that layout for dims od x ad, else 0
 * (the caller then walks the fields one by one; the result is the same either way). Checking a
 * few bytes at known offsets replaces five trips through the field switch per item. */
/* 1 if the varint at p (with room for n bytes) is exactly the n-byte encoding e[0..n). */
static int varint_is(const uint8_t *p, const uint8_t *e, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != e[i]) return 0;
  return 1;
}

static int canon_head(canon *c, const uint8_t *p, size_t len, size_t od, size_t ad) {
  uint8_t eo[10], ea[10];
  size_t lo = (size_t)(ic_put_varint(eo, od * 4) - eo), la = (size_t)(ic_put_varint(ea, ad * 4) - ea);
  size_t need = 2 * (1 + lo + od * 4) + (1 + la + ad * 4) + 2 * 5;
  if (len < need) return 0;
  if (p[0] != K_OBS || !varint_is(p + 1, eo, lo)) return 0;
  c->obs = p + 1 + lo;
  p = c->obs + od * 4;
  if (p[0] != K_ACTION || !varint_is(p + 1, ea, la)) return 0;
  c->action = p + 1 + la;
  p = c->action + ad * 4;
  if (p[0] != K_REWARD || p[5] != K_DISCOUNT || p[10] != K_NEXT_OBS || !varint_is(p + 11, eo, lo)) return 0;
  c->reward = p + 1;
  c->discount = p + 6;
  c->next_obs = p + 11 + lo;
  c->rest = c->next_obs + od * 4;
  return 1;
}

/* The scalar fields after next_obs in the usual layout. */
typedef struct canon_tail {
  uint64_t proposer, actor_id, seq, weight_version;
  int episode_end, episode_success;
} canon_tail;

static inline int tail_varint(const uint8_t **p, const uint8_t *end, uint8_t key, uint64_t *v) {
  if (*p >= end || **p != key) return 0;
  ic_reader r = {*p + 1, end};
  if (ic_get_varint(&r, v)) return 0;
  *p = r.p;
  return 1;
}

/* Reads the rest of a body [p, end) when it is exactly proposer, actor_id, seq, weight_version,
 * episode_end, episode_success in that order (each once, flags 0/1); returns 1, else 0 and the
 * caller walks the fields one by one (same result). Writes only *t. */
static int canon_tail_read(canon_tail *t, const uint8_t *p, const uint8_t *end) {
  if (!tail_varint(&p, end, K_PROPOSER, &t->proposer) || !tail_varint(&p, end, K_ACTOR, &t->actor_id) ||
      !tail_varint(&p, end, K_SEQ, &t->seq) || !tail_varint(&p, end, K_WV, &t->weight_version))
    return 0;
  if (end - p != 4 || p[0] != K_END || p[1] > 1 || p[2] != K_SUCCESS || p[3] > 1) return 0;
  t->episode_end = p[1];
  t->episode_success = p[3];
  return 1;
}

int ic_item_parse(ic_rows *dst, size_t row, const uint8_t *p, size_t len, int check_finite,
                  ic_error *err) {
  size_t od = (size_t)dst->obs_dim, ad = (size_t)dst->act_dim;
  float *obs = dst->obs + row * od, *nobs = dst->next_obs + row * od, *act = dst->action + row * ad;
  int n_obs = 0, n_nobs = 0, n_act = 0, bad = 0;
  memset(err, 0, sizeof *err);
  err->field = "";
  dst->reward[row] = dst->discount[row] = 0;
  dst->proposer[row] = dst->episode_end[row] = dst->episode_success[row] = 0;
  dst->actor_id[row] = 0;
  dst->seq[row] = dst->weight_version[row] = 0;
  ic_reader r = {p, p + len};
  canon c;
  if (canon_head(&c, p, len, od, ad)) {
    if (check_finite) {
      bad |= copy_check(obs, c.obs, od);
      bad |= copy_check(act, c.action, ad);
      bad |= copy_check(nobs, c.next_obs, od);
    } else {
      memcpy(obs, c.obs, od * 4);
      memcpy(act, c.action, ad * 4);
      memcpy(nobs, c.next_obs, od * 4);
    }
    memcpy(&dst->reward[row], c.reward, 4);
    memcpy(&dst->discount[row], c.discount, 4);
    n_obs = n_nobs = dst->obs_dim;
    n_act = dst->act_dim;
    r.p = c.rest; /* an unusual rest (a repeated field, another order) goes through the walk */
    canon_tail t;
    if (canon_tail_read(&t, c.rest, r.end)) {
      dst->proposer[row] = (uint8_t)(t.proposer > 255 ? 255 : t.proposer);
      dst->actor_id[row] = (uint32_t)t.actor_id;
      dst->seq[row] = t.seq;
      dst->weight_version[row] = t.weight_version;
      dst->episode_end[row] = (uint8_t)t.episode_end;
      dst->episode_success[row] = (uint8_t)t.episode_success;
      r.p = r.end;
    }
  }
  while (r.p < r.end) {
    uint64_t key, v;
    /* Field numbers are 1 .. 2^29 - 1: a bigger key must not be cut to an int and alias a field. */
    if (ic_get_varint(&r, &key) || (key >> 3) == 0 || (key >> 3) > IC_MAX_FIELD) return IC_EMALFORMED;
    int f = (int)(key >> 3), wt = (int)(key & 7);
    switch (f) {
      case 1:
      case 2:
      case 5: {
        float *d = f == 1 ? obs : f == 2 ? act : nobs;
        int *n = f == 1 ? &n_obs : f == 2 ? &n_act : &n_nobs;
        int cap = f == 2 ? dst->act_dim : dst->obs_dim;
        int e = get_floats(&r, wt, d, n, cap, check_finite, &bad);
        if (e == IC_EDIMS) {
          err->field = float_field_name(f);
          err->got = *n;
        }
        if (e != IC_OK) return e;
        break;
      }
      case 3:
      case 4:
        if (wt != 5 || r.end - r.p < 4) return IC_EMALFORMED;
        memcpy(f == 3 ? &dst->reward[row] : &dst->discount[row], r.p, 4);
        r.p += 4;
        break;
      case 6: case 7: case 8: case 9: case 10: case 11:
        if (wt != 0 || ic_get_varint(&r, &v)) return IC_EMALFORMED;
        if (f == 6) dst->proposer[row] = (uint8_t)(v > 255 ? 255 : v);
        else if (f == 7) dst->actor_id[row] = (uint32_t)v;
        else if (f == 8) dst->seq[row] = v;
        else if (f == 9) dst->weight_version[row] = v;
        else if (f == 10) dst->episode_end[row] = v != 0;
        else dst->episode_success[row] = v != 0;
        break;
      default:
        if (ic_skip_field(&r, wt)) return IC_EMALFORMED;
    }
  }
  if (n_obs != dst->obs_dim || n_nobs != dst->obs_dim || n_act != dst->act_dim) {
    err->field = n_obs != dst->obs_dim ? "obs" : n_nobs != dst->obs_dim ? "next_obs" : "action";
    err->got = n_obs != dst->obs_dim ? n_obs : n_nobs != dst->obs_dim ? n_nobs : n_act;
    return IC_EDIMS;
  }
  if (check_finite) {
    /* The scalars are two values: check them here rather than in the copy. */
    float sc[2] = {dst->reward[row], dst->discount[row]};
    bad |= first_bad(sc, 2) >= 0;
    if (bad) {
      const float *arr[5] = {obs, act, sc, sc + 1, nobs};
      const size_t cnt[5] = {od, ad, 1, 1, od};
      const int fld[5] = {1, 2, 3, 4, 5};
      for (int k = 0; k < 5; k++) {
        long j = first_bad(arr[k], cnt[k]);
        if (j >= 0) {
          err->field = float_field_name(fld[k]);
          err->index = j;
          err->value = arr[k][j];
          return IC_ENONFINITE;
        }
      }
    }
  }
  return IC_OK;
}

/* ---- scratch ---- */

void ic_flat_free(ic_flat *f) {
  if (f == NULL) return;
  free(f->p);
  f->p = NULL;
  f->cap = 0;
}

/* ---- in-place item view ---- */

int ic_item_view(ic_item_ref *out, const uint8_t *p, size_t len, int obs_dim, int act_dim, int check_finite,
                 ic_error *err) {
  memset(out, 0, sizeof *out);
  memset(err, 0, sizeof *err);
  err->field = "";
  const uint8_t *fp[6] = {NULL, NULL, NULL, NULL, NULL, NULL}; /* by field number 1, 2, 5 */
  uint64_t fbytes[6] = {0, 0, 0, 0, 0, 0};                    /* their run's length */
  ic_reader r = {p, p + len};
  canon c;
  if (obs_dim > 0 && act_dim > 0 && canon_head(&c, p, len, (size_t)obs_dim, (size_t)act_dim)) {
    fp[1] = c.obs;
    fp[2] = c.action;
    fp[5] = c.next_obs;
    fbytes[1] = fbytes[5] = (uint64_t)obs_dim * 4;
    fbytes[2] = (uint64_t)act_dim * 4;
    memcpy(&out->reward, c.reward, 4);
    memcpy(&out->discount, c.discount, 4);
    r.p = c.rest;
    canon_tail t;
    if (canon_tail_read(&t, c.rest, r.end)) {
      out->proposer = t.proposer > UINT32_MAX ? UINT32_MAX : (uint32_t)t.proposer;
      out->actor_id = (uint32_t)t.actor_id;
      out->seq = t.seq;
      out->weight_version = t.weight_version;
      out->episode_end = t.episode_end;
      out->episode_success = t.episode_success;
      r.p = r.end;
    }
  }
  while (r.p < r.end) {
    uint64_t key, v;
    /* Field numbers are 1 .. 2^29 - 1: a bigger key must not be cut to an int and alias a field. */
    if (ic_get_varint(&r, &key) || (key >> 3) == 0 || (key >> 3) > IC_MAX_FIELD) return IC_EMALFORMED;
    int f = (int)(key >> 3), wt = (int)(key & 7);
    switch (f) {
      case 1:
      case 2:
      case 5: {
        int dim = f == 2 ? act_dim : obs_dim;
        if (wt == 5) return r.end - r.p < 4 ? IC_EMALFORMED : IC_ENOVIEW;
        if (wt != 2 || ic_get_varint(&r, &v) || v > (uint64_t)(r.end - r.p) || v % 4) return IC_EMALFORMED;
        if (fp[f] != NULL) return IC_ENOVIEW; /* a second run of the same field */
        /* A short run may be the first of several (legal protobuf: runs concatenate, and a second
         * run gives IC_ENOVIEW above): it is judged at the end, once the whole body was seen. */
        if (v > (uint64_t)dim * 4) {
          err->field = float_field_name(f);
          err->got = (long)(v / 4);
          return IC_EDIMS;
        }
        fp[f] = r.p;
        fbytes[f] = v;
        r.p += v;
        break;
      }
      case 3:
      case 4:
        if (wt != 5 || r.end - r.p < 4) return IC_EMALFORMED;
        memcpy(f == 3 ? &out->reward : &out->discount, r.p, 4);
        r.p += 4;
        break;
      case 6: case 7: case 8: case 9: case 10: case 11:
        if (wt != 0 || ic_get_varint(&r, &v)) return IC_EMALFORMED;
        if (f == 6) out->proposer = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
        else if (f == 7) out->actor_id = (uint32_t)v;
        else if (f == 8) out->seq = v;
        else if (f == 9) out->weight_version = v;
        else if (f == 10) out->episode_end = v != 0;
        else out->episode_success = v != 0;
        break;
      default:
        if (ic_skip_field(&r, wt)) return IC_EMALFORMED;
    }
  }
  static const int order[3] = {1, 5, 2};
  for (int k = 0; k < 3; k++) {
    int f = order[k];
    if (fp[f] == NULL || fbytes[f] != (uint64_t)(f == 2 ? act_dim : obs_dim) * 4) {
      err->field = float_field_name(f);
      err->got = (long)(fbytes[f] / 4);
      return IC_EDIMS;
    }
  }
  out->obs = (const float *)(const void *)fp[1];
  out->action = (const float *)(const void *)fp[2];
  out->next_obs = (const float *)(const void *)fp[5];
  if (check_finite) {
    const uint8_t *arr[3] = {fp[1], fp[2], fp[5]};
    const size_t cnt[3] = {(size_t)obs_dim, (size_t)act_dim, (size_t)obs_dim};
    const int fld[3] = {1, 2, 5};
    for (int k = 0; k < 3; k++) {
      if (finite_bytes(arr[k], cnt[k])) continue;
      /* Rare: find the index (the bytes may be unaligned, so read each value with memcpy). */
      for (size_t j = 0; j < cnt[k]; j++) {
        float x;
        memcpy(&x, arr[k] + 4 * j, 4);
        if (!isfinite(x)) {
          err->field = float_field_name(fld[k]);
          err->index = (long)j;
          err->value = x;
          return IC_ENONFINITE;
        }
      }
    }
    float sc[2] = {out->reward, out->discount};
    long j = first_bad(sc, 2);
    if (j >= 0) {
      err->field = j == 0 ? "reward" : "discount";
      err->index = 0;
      err->value = sc[j];
      return IC_ENONFINITE;
    }
  }
  return IC_OK;
}

/* ---- message walk ---- */

int ic_msg_init(ic_msg *m, const grpc_byte_buffer *bb, ic_flat *scratch) {
  memset(m, 0, sizeof *m);
  if (bb->type != GRPC_BB_RAW || bb->data.raw.compression != GRPC_COMPRESS_NONE) return -1;
  m->sb = &bb->data.raw.slice_buffer;
  m->left = m->sb->length;
  m->scratch = scratch;
  if (m->sb->count > 1 && scratch->cap < m->left) {
    /* Grown before the walk, never during it: pointers into it stay valid. */
    free(scratch->p);
    scratch->p = ib_xmalloc(m->left);
    scratch->cap = m->left;
  }
  m->k = 0;
  if (m->sb->count > 0) {
    m->p = GRPC_SLICE_START_PTR(m->sb->slices[0]);
    m->end = m->p + GRPC_SLICE_LENGTH(m->sb->slices[0]);
  }
  return 0;
}

/* Moves the cursor to a slice with bytes left (m->left > 0 guaranteed by the callers). */
static void msg_settle(ic_msg *m) {
  while (m->p == m->end && m->k + 1 < m->sb->count) {
    m->k++;
    m->p = GRPC_SLICE_START_PTR(m->sb->slices[m->k]);
    m->end = m->p + GRPC_SLICE_LENGTH(m->sb->slices[m->k]);
  }
}

/* Copies the next n bytes (n <= m->left) into dst, across slices. */
static void msg_read(ic_msg *m, uint8_t *dst, size_t n) {
  m->left -= n;
  while (n > 0) {
    msg_settle(m);
    size_t c = (size_t)(m->end - m->p);
    if (c > n) c = n;
    memcpy(dst, m->p, c);
    dst += c, m->p += c, n -= c;
  }
}

static int msg_varint(ic_msg *m, uint64_t *v) {
  if (m->end - m->p >= 10) {
    /* The common case: the whole varint lies in the current slice (keys and lengths are read
     * for every item, so going through msg_read byte by byte showed up in profiles). */
    ic_reader r = {m->p, m->end};
    if (ic_get_varint(&r, v)) return -1;
    m->left -= (size_t)(r.p - m->p);
    m->p = r.p;
    return 0;
  }
  uint64_t x = 0;
  for (int shift = 0; shift < 64 && m->left > 0; shift += 7) {
    uint8_t c;
    msg_read(m, &c, 1);
    x |= (uint64_t)(c & 0x7F) << shift;
    if (!(c & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

const uint8_t *ic_msg_body(ic_msg *m, size_t n) {
  IB_CHECK(n <= m->left);
  const uint8_t *body;
  if (n == 0) return m->p;
  msg_settle(m);
  if ((size_t)(m->end - m->p) >= n) { /* inside one slice: hand it out in place */
    body = m->p;
    m->p += n;
    m->left -= n;
  } else {
    IB_CHECK(m->used + n <= m->scratch->cap);
    uint8_t *d = m->scratch->p + m->used;
    msg_read(m, d, n);
    m->used += n;
    body = d;
  }
  return body;
}

void ic_msg_skip(ic_msg *m, size_t n) {
  IB_CHECK(n <= m->left);
  m->left -= n;
  while (n > 0) {
    msg_settle(m);
    size_t c = (size_t)(m->end - m->p);
    if (c > n) c = n;
    m->p += c, n -= c;
  }
}

int ic_msg_next_hdr(ic_msg *m, uint32_t *field, int *wt, uint64_t *val, size_t *len) {
  if (m->left == 0) return 0;
  uint64_t key;
  if (msg_varint(m, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return -1;
  *field = (uint32_t)(key >> 3);
  *wt = (int)(key & 7);
  *val = 0;
  *len = 0;
  switch (*wt) {
    case 0: return msg_varint(m, val) ? -1 : 1;
    case 1:
    case 5: {
      size_t n = *wt == 1 ? 8 : 4;
      if (m->left < n) return -1;
      uint8_t b[8] = {0};
      msg_read(m, b, n);
      memcpy(val, b, 8);
      return 1;
    }
    case 2: {
      uint64_t n;
      if (msg_varint(m, &n) || n > m->left) return -1;
      *len = (size_t)n;
      return 1;
    }
    default: return -1;
  }
}

int ic_msg_next(ic_msg *m, uint32_t *field, int *wt, uint64_t *val, const uint8_t **body, size_t *len) {
  int r = ic_msg_next_hdr(m, field, wt, val, len);
  *body = NULL;
  if (r == 1 && *wt == 2) *body = ic_msg_body(m, *len);
  return r;
}

/* ---- ItemColumns ---- */

/* Field numbers of ItemColumns. */
enum { COL_N = 1, COL_OBS, COL_ACTION, COL_REWARD, COL_DISCOUNT, COL_NEXT_OBS, COL_PROPOSER, COL_ACTOR, COL_SEQ,
       COL_WV, COL_FLAGS, COL_COUNT };

static const char *const col_name[COL_COUNT] = {"", "n", "obs", "action", "reward", "discount", "next_obs",
                                                "proposer", "actor_id", "seq", "weight_version", "flags"};

/* Bytes per row of column f. */
static size_t col_width(int f, size_t od, size_t ad) {
  switch (f) {
    case COL_OBS:
    case COL_NEXT_OBS: return od * 4;
    case COL_ACTION: return ad * 4;
    case COL_REWARD:
    case COL_DISCOUNT:
    case COL_ACTOR: return 4;
    case COL_SEQ:
    case COL_WV: return 8;
    default: return 1; /* proposer, flags */
  }
}

size_t ic_cols_len(uint32_t field, size_t n, int obs_dim, int act_dim) {
  size_t body = ic_varint_field_len(COL_N, n);
  for (int f = COL_OBS; f < COL_COUNT; f++)
    body += ic_bytes_field_len((uint32_t)f, n * col_width(f, (size_t)obs_dim, (size_t)act_dim));
  return ic_bytes_field_len(field, body);
}

/* Writes the key and length of bytes field f; returns where its data goes. */
static uint8_t *put_hdr(uint8_t *p, uint32_t f, size_t len) {
  p = ic_put_varint(p, (uint64_t)f << 3 | 2);
  return ic_put_varint(p, len);
}

uint8_t *ic_cols_layout(uint8_t *p, uint32_t field, size_t n, int obs_dim, int act_dim, uint8_t *col[IC_NCOLS]) {
  size_t od = (size_t)obs_dim, ad = (size_t)act_dim;
  size_t total = ic_cols_len(field, n, obs_dim, act_dim);
  size_t body = total - ic_varint_len((uint64_t)field << 3 | 2);
  body -= ic_varint_len(body);
  p = put_hdr(p, field, body);
  p = ic_put_varint_field(p, COL_N, n);
  for (int f = COL_OBS; f < COL_COUNT; f++) {
    size_t len = n * col_width(f, od, ad);
    p = put_hdr(p, (uint32_t)f, len);
    col[f - COL_OBS] = p;
    p += len;
  }
  return p;
}

uint8_t *ic_cols_put(uint8_t *p, uint32_t field, const ic_rows *r, size_t lo, size_t hi, const ic_stamp *stamp,
                     int *finite) {
  size_t n = hi - lo, od = (size_t)r->obs_dim, ad = (size_t)r->act_dim;
  uint8_t *col[IC_NCOLS];
  uint8_t *end = ic_cols_layout(p, field, n, r->obs_dim, r->act_dim, col);
  int bad = 0;
  /* The float columns: one copy each (with the NaN/Inf check folded in when asked). */
  const float *fsrc[5] = {r->obs + lo * od, r->action + lo * ad, r->reward + lo, r->discount + lo,
                          r->next_obs + lo * od};
  const size_t fcnt[5] = {n * od, n * ad, n, n, n * od};
  for (int k = 0; k < 5; k++) {
    if (finite != NULL) bad |= copy_check(col[k], fsrc[k], fcnt[k]);
    else if (fcnt[k]) memcpy(col[k], fsrc[k], fcnt[k] * 4);
  }
  if (n) memcpy(col[IC_COL_PROPOSER], r->proposer + lo, n);
  if (stamp != NULL) {
    for (size_t i = 0; i < n; i++) {
      uint64_t q = stamp->seq0 + i;
      memcpy(col[IC_COL_ACTOR_ID] + 4 * i, &stamp->actor_id, 4);
      memcpy(col[IC_COL_SEQ] + 8 * i, &q, 8);
    }
  } else if (n) {
    memcpy(col[IC_COL_ACTOR_ID], r->actor_id + lo, n * 4);
    memcpy(col[IC_COL_SEQ], r->seq + lo, n * 8);
  }
  if (n) memcpy(col[IC_COL_WV], r->weight_version + lo, n * 8);
  for (size_t i = 0; i < n; i++)
    col[IC_COL_FLAGS][i] = (uint8_t)((r->episode_end[lo + i] ? 1u : 0u) | (r->episode_success[lo + i] ? 2u : 0u));
  if (finite != NULL) *finite = !bad;
  return end;
}

/* Copies the next nbytes of the walk into dst (nbytes <= m->left). With check, dst holds floats
 * and they are checked for NaN/Inf inside the copy (copy_check), slice piece by slice piece; a
 * float whose 4 bytes straddle two slices is assembled in dst first and checked there.
 * Returns nonzero if a copied float is not finite (check only). */
static int msg_copy(ic_msg *m, uint8_t *dst, size_t nbytes, int check) {
  size_t done = 0;
  int bad = 0;
  m->left -= nbytes;
  while (done < nbytes) {
    msg_settle(m);
    size_t c = (size_t)(m->end - m->p);
    if (c > nbytes - done) c = nbytes - done;
    if (!check) {
      memcpy(dst + done, m->p, c);
    } else {
      /* Floats lie on dst's 4-byte grid: finish a float split by the last slice border, copy
       * and check the whole floats, then start the one split by the next border. */
      size_t head = (4 - done % 4) % 4;
      if (head > c) head = c;
      memcpy(dst + done, m->p, head);
      if (head > 0 && (done + head) % 4 == 0) bad |= !finite_bytes(dst + done + head - 4, 1);
      size_t whole = (c - head) / 4;
      bad |= copy_check(dst + done + head, m->p + head, whole);
      memcpy(dst + done + head + 4 * whole, m->p + head + 4 * whole, c - head - 4 * whole);
    }
    m->p += c, done += c;
  }
  return bad;
}

/* The destination of row i's first byte in column f (the two ranges of ic_cols_dst). */
static uint8_t *col_dst(const ic_cols_dst *d, int f, size_t row) {
  const ic_rows *r = d->rows;
  size_t od = (size_t)r->obs_dim, ad = (size_t)r->act_dim;
  size_t at = row < d->split ? d->a0 + row : d->b0 + (row - d->split);
  switch (f) {
    case COL_OBS: return (uint8_t *)(r->obs + at * od);
    case COL_ACTION: return (uint8_t *)(r->action + at * ad);
    case COL_REWARD: return (uint8_t *)(r->reward + at);
    case COL_DISCOUNT: return (uint8_t *)(r->discount + at);
    case COL_NEXT_OBS: return (uint8_t *)(r->next_obs + at * od);
    case COL_PROPOSER: return r->proposer + at;
    case COL_ACTOR: return (uint8_t *)(r->actor_id + at);
    case COL_SEQ: return (uint8_t *)(r->seq + at);
    case COL_WV: return (uint8_t *)(r->weight_version + at);
    default: return NULL;
  }
}

/* Reads column f of `rows` rows (its length already checked) into the destination. */
static int col_read(ic_msg *m, const ic_cols_dst *d, int f, size_t rows) {
  size_t w = col_width(f, (size_t)d->rows->obs_dim, (size_t)d->rows->act_dim);
  int check = d->check_finite && f <= COL_NEXT_OBS;
  if (f == COL_FLAGS) {
    uint8_t buf[256];
    for (size_t i = 0; i < rows;) {
      size_t c = IB_MIN(rows - i, sizeof buf);
      msg_copy(m, buf, c, 0);
      for (size_t k = 0; k < c; k++, i++) {
        size_t at = i < d->split ? d->a0 + i : d->b0 + (i - d->split);
        d->rows->episode_end[at] = buf[k] & 1u;
        d->rows->episode_success[at] = (buf[k] >> 1) & 1u;
      }
    }
    return 0;
  }
  size_t first = IB_MIN(rows, d->split);
  int bad = msg_copy(m, col_dst(d, f, 0), first * w, check);
  if (rows > first) bad |= msg_copy(m, col_dst(d, f, first), (rows - first) * w, check);
  return bad;
}

/* Names the first non-finite value of the float columns of rows [0, n) in err; returns 0 if
 * there is none (a repeated column replaced the one whose copy tripped the check). */
static int cols_find_bad(const ic_cols_dst *d, size_t n, ic_error *err) {
  static const int order[5] = {COL_OBS, COL_ACTION, COL_REWARD, COL_DISCOUNT, COL_NEXT_OBS};
  size_t od = (size_t)d->rows->obs_dim, ad = (size_t)d->rows->act_dim;
  for (int k = 0; k < 5; k++) {
    int f = order[k];
    size_t dim = f == COL_ACTION ? ad : (f == COL_REWARD || f == COL_DISCOUNT) ? 1 : od;
    for (size_t i = 0; i < n; i++) {
      const float *x = (const float *)(const void *)col_dst(d, f, i);
      long j = first_bad(x, dim);
      if (j >= 0) {
        err->field = col_name[f];
        err->row = (long)i;
        err->index = j;
        err->value = x[j];
        return 1;
      }
    }
  }
  return 0;
}

int ic_msg_cols_read(ic_msg *m, size_t len, const ic_cols_dst *d, size_t *n_out, ic_error *err) {
  memset(err, 0, sizeof *err);
  err->field = "";
  *n_out = 0;
  IB_CHECK(len <= m->left);
  size_t od = (size_t)d->rows->obs_dim, ad = (size_t)d->rows->act_dim;
  size_t stop = m->left - len; /* m->left once the body is consumed */
  int have_n = 0, bad = 0;
  size_t n = 0;
  size_t got[COL_COUNT] = {0}; /* rows of each column read (SIZE_MAX: none) */
  size_t glen[COL_COUNT] = {0};
  for (int f = 0; f < COL_COUNT; f++) got[f] = SIZE_MAX;
  while (m->left > stop) {
    uint32_t f;
    int wt;
    uint64_t v;
    size_t flen;
    size_t before = m->left;
    if (ic_msg_next_hdr(m, &f, &wt, &v, &flen) != 1) return IC_EMALFORMED;
    /* The key and length must lie inside the body, and so must the field's bytes. */
    if (before - m->left > before - stop || flen > m->left - stop) return IC_EMALFORMED;
    if (f == COL_N) {
      if (wt != 0) return IC_EMALFORMED;
      if (v > d->max_rows) {
        err->row = v > (uint64_t)LONG_MAX ? LONG_MAX : (long)v;
        return IC_ETOOMANY;
      }
      n = (size_t)v;
      have_n = 1;
      continue;
    }
    if (f >= COL_COUNT) {
      if (wt == 2) ic_msg_skip(m, flen);
      continue; /* an unknown scalar field was consumed by ic_msg_next_hdr */
    }
    if (wt != 2) return IC_EMALFORMED;
    size_t w = col_width((int)f, od, ad);
    size_t rows = flen / w;
    if (flen % w != 0 || rows > d->max_rows || (have_n && rows != n)) {
      err->field = col_name[f];
      err->got = (long)flen;
      err->want = (long)((have_n ? n : rows) * w);
      err->row = (long)(have_n ? n : rows);
      return flen % w == 0 && rows > d->max_rows && !have_n ? IC_ETOOMANY : IC_EDIMS;
    }
    bad |= col_read(m, d, (int)f, rows);
    got[f] = rows;
    glen[f] = flen;
  }
  if (m->left != stop) return IC_EMALFORMED;
  for (int f = COL_OBS; f < COL_COUNT; f++) {
    size_t rows = got[f] == SIZE_MAX ? 0 : got[f];
    if (rows != n) {
      size_t w = col_width(f, od, ad);
      err->field = col_name[f];
      err->got = (long)glen[f];
      err->want = (long)(n * w);
      err->row = (long)n;
      return IC_EDIMS;
    }
  }
  *n_out = n;
  if (bad && cols_find_bad(d, n, err)) return IC_ENONFINITE;
  return IC_OK;
}
