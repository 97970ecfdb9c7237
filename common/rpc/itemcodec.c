/* itemcodec.c: the hand codec of Item lists (see itemcodec.h for the contract).
 *
 * Design. Encoding is two passes over the rows' scalars (lengths, then bytes) and one copy per
 * float field; the caller sizes one buffer with ic_items_len, so nothing is allocated here.
 * Parsing walks one Item body with a cursor and copies each float field straight into its row.
 * The NaN/Inf check, when asked for, runs inside that copy on 4-lane integer vectors (a float is
 * non-finite exactly when its exponent bits are all ones, i.e. (bits & 0x7fffffff) > 0x7f7fffff):
 * the bytes are in registers anyway, and a separate scan over the stored rows cost the server
 * ~9% of its insert time. Only when a lane trips does a scalar scan find the index to report. */
#include "itemcodec.h"

#include <stdlib.h>
#include <string.h>

#include "ib.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "itemcodec.c copies packed floats as host floats: little-endian hosts only"
#endif

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

typedef int32_t v4i __attribute__((vector_size(16)));

/* Copies n floats from src to dst and returns nonzero if any is NaN or Inf. */
static int copy_check(float *dst, const uint8_t *src, size_t n) {
  const v4i mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  const v4i lim = {0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff};
  v4i acc = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v4i x;
    memcpy(&x, src + 4 * i, 16);
    memcpy(dst + i, &x, 16);
    acc |= (x & mask) > lim;
  }
  int32_t bad = acc[0] | acc[1] | acc[2] | acc[3];
  for (; i < n; i++) {
    int32_t x;
    memcpy(&x, src + 4 * i, 4);
    memcpy(dst + i, &x, 4);
    bad |= (x & 0x7fffffff) > 0x7f7fffff;
  }
  return bad != 0;
}

int ic_floats_finite(const float *x, size_t n) {
  const v4i mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  const v4i lim = {0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff};
  v4i acc = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v4i v;
    memcpy(&v, x + i, 16);
    acc |= (v & mask) > lim;
  }
  int32_t bad = acc[0] | acc[1] | acc[2] | acc[3];
  for (; i < n; i++) {
    int32_t b;
    memcpy(&b, &x[i], 4);
    bad |= (b & 0x7fffffff) > 0x7f7fffff;
  }
  return bad == 0;
}

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
  while (r.p < r.end) {
    uint64_t key, v;
    if (ic_get_varint(&r, &key)) return IC_EMALFORMED;
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

/* ---- contiguous view ---- */

int ic_flat_view(const grpc_byte_buffer *bb, ic_flat *scratch, const uint8_t **base, size_t *len) {
  if (bb->type != GRPC_BB_RAW || bb->data.raw.compression != GRPC_COMPRESS_NONE) return -1;
  const grpc_slice_buffer *sb = &bb->data.raw.slice_buffer;
  if (sb->count == 1) {
    *base = GRPC_SLICE_START_PTR(sb->slices[0]);
    *len = GRPC_SLICE_LENGTH(sb->slices[0]);
    return 0;
  }
  if (sb->length > scratch->cap) {
    /* Grow-only, so a long-lived scratch stops allocating after the largest message. */
    scratch->p = ib_xrealloc(scratch->p, sb->length);
    scratch->cap = sb->length;
  }
  size_t off = 0;
  for (size_t k = 0; k < sb->count; k++) {
    size_t l = GRPC_SLICE_LENGTH(sb->slices[k]);
    if (l) memcpy(scratch->p + off, GRPC_SLICE_START_PTR(sb->slices[k]), l);
    off += l;
  }
  *base = scratch->p;
  *len = off;
  return 0;
}

void ic_flat_free(ic_flat *f) {
  if (f == NULL) return;
  free(f->p);
  f->p = NULL;
  f->cap = 0;
}
