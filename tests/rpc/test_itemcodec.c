/* test_itemcodec.c: the hand codec shared by the replay client and server (common/rpc/itemcodec.h),
 * without a network: encode -> walk a message cut into slices at every kind of border -> view and
 * parse the items; the finite check at every position; wrong dims, unpacked floats, NaN, and every
 * truncation of a message. The cross-check against nanopb's encoding is in test_client_codec.c. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "ib.h"
#include "itemcodec.h"
#include "rng.h"
#include "th.h"

#define OD 7
#define AD 3
#define N 9

typedef struct cols {
  float obs[N * OD], action[N * AD], next_obs[N * OD], reward[N], discount[N];
  uint8_t proposer[N], end[N], success[N];
  uint32_t actor[N];
  uint64_t seq[N], wv[N];
} cols;

static ic_rows rows_of(cols *c) {
  ic_rows r = {OD, AD, c->obs, c->action, c->next_obs, c->reward, c->discount, c->proposer,
               c->end, c->success, c->actor, c->seq, c->wv};
  return r;
}

static void fill(cols *c, uint64_t seed) {
  rng r;
  rng_seed(&r, seed, "test", 0, "itemcodec");
  for (int i = 0; i < N * OD; i++) c->obs[i] = rng_normal(&r), c->next_obs[i] = rng_normal(&r);
  for (int i = 0; i < N * AD; i++) c->action[i] = rng_uniform(&r);
  for (int i = 0; i < N; i++) {
    c->reward[i] = (float)i;
    c->discount[i] = 0.5f;
    c->proposer[i] = (uint8_t)(i % 3);
    c->end[i] = i % 4 == 3;
    c->success[i] = i % 8 == 7;
    c->actor[i] = 1000u + (uint32_t)i;
    c->seq[i] = i == 5 ? UINT64_MAX : (uint64_t)i * 1000003u; /* a 10-byte varint too */
    c->wv[i] = (uint64_t)i << 40;
  }
}

/* An InsertRequest for table "online" with all N rows, in one buffer (caller frees). */
static uint8_t *encode(cols *c, size_t *len) {
  ic_rows r = rows_of(c);
  *len = ic_bytes_field_len(IC_INSERT_TABLE, 6) + ic_items_len(&r, 0, N, IC_INSERT_ITEMS, NULL);
  uint8_t *buf = ib_xmalloc(*len), *p = buf;
  p = ic_put_bytes_field(p, IC_INSERT_TABLE, "online", 6);
  p = ic_items_put(p, &r, 0, N, IC_INSERT_ITEMS, NULL);
  TH_CHECK_EQ_INT((long)(p - buf), (long)*len);
  return buf;
}

/* A byte buffer of `len` bytes cut into slices whose lengths cycle through `cuts`. */
static grpc_byte_buffer *sliced(const uint8_t *buf, size_t len, const size_t *cuts, int ncuts) {
  grpc_slice sl[4096];
  size_t k = 0, off = 0;
  while (off < len && k < 4096) {
    size_t c = cuts[k % (size_t)ncuts];
    if (c > len - off || k == 4095) c = len - off;
    sl[k++] = grpc_slice_from_copied_buffer((const char *)buf + off, c);
    off += c;
  }
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(sl, k);
  for (size_t i = 0; i < k; i++) grpc_slice_unref(sl[i]);
  return bb;
}

static int same_floats(const float *unaligned, const float *ref, size_t n) {
  float tmp[OD > AD ? OD : AD];
  memcpy(tmp, unaligned, n * sizeof(float));
  return memcmp(tmp, ref, n * sizeof(float)) == 0;
}

/* Walks bb and checks every item against c, through the in-place view. */
static void check_walk(grpc_byte_buffer *bb, cols *c, const char *what) {
  ic_flat scratch = {0};
  ic_msg m;
  TH_CHECK(ic_msg_init(&m, bb, &scratch) == 0);
  char table[32] = "";
  int items = 0, ok = 1, more;
  uint32_t f;
  int wt;
  uint64_t v;
  const uint8_t *body;
  size_t len;
  while ((more = ic_msg_next(&m, &f, &wt, &v, &body, &len)) == 1) {
    if (f == IC_INSERT_TABLE) {
      memcpy(table, body, len < 31 ? len : 31);
      continue;
    }
    ic_item_ref it;
    ic_error e;
    int i = items++;
    if (i >= N || ic_item_view(&it, body, len, OD, AD, 1, &e) != IC_OK) {
      ok = 0;
      break;
    }
    ok &= same_floats(it.obs, c->obs + i * OD, OD) && same_floats(it.next_obs, c->next_obs + i * OD, OD) &&
          same_floats(it.action, c->action + i * AD, AD);
    ok &= it.reward == c->reward[i] && it.discount == c->discount[i] && it.proposer == c->proposer[i] &&
          it.actor_id == c->actor[i] && it.seq == c->seq[i] && it.weight_version == c->wv[i] &&
          it.episode_end == c->end[i] && it.episode_success == c->success[i];
  }
  TH_CHECK_MSG(more == 0 && ok && items == N && strcmp(table, "online") == 0, "%s: more %d ok %d items %d table '%s'",
               what, more, ok, items, table);
  ic_flat_free(&scratch);
}

static void test_walk_across_slices(void) {
  cols *c = ib_xcalloc(1, sizeof *c);
  fill(c, 1);
  size_t len;
  uint8_t *buf = encode(c, &len);
  /* One slice; 1-byte slices (every varint and float split); odd sizes that cut items, keys and
   * lengths at varying places; a first slice that ends right after a key. */
  static const size_t one[] = {1 << 20}, tiny[] = {1}, odd[] = {13, 7, 61, 3}, big[] = {100, 250}, after_key[] = {9, 5000};
  struct {
    const size_t *cuts;
    int n;
    const char *what;
  } v[] = {{one, 1, "one slice"}, {tiny, 1, "1-byte slices"}, {odd, 4, "odd slices"}, {big, 2, "item-sized"},
           {after_key, 2, "cut after the key"}};
  for (size_t k = 0; k < IB_ARRAY_LEN(v); k++) {
    grpc_byte_buffer *bb = sliced(buf, len, v[k].cuts, v[k].n);
    check_walk(bb, c, v[k].what);
    grpc_byte_buffer_destroy(bb);
  }
  /* The copying parser reads the same rows. */
  ic_rows r = rows_of(c);
  cols *d = ib_xcalloc(1, sizeof *d);
  ic_rows dr = rows_of(d);
  ic_reader rd = {buf, buf + len};
  int i = 0;
  while (rd.p < rd.end) {
    uint64_t key, l;
    TH_CHECK(ic_get_varint(&rd, &key) == 0 && ic_get_varint(&rd, &l) == 0);
    if ((key >> 3) == IC_INSERT_ITEMS) {
      ic_error e;
      TH_CHECK_EQ_INT(ic_item_parse(&dr, (size_t)i++, rd.p, (size_t)l, 1, &e), IC_OK);
    }
    rd.p += l;
  }
  TH_CHECK_EQ_INT(i, N);
  TH_CHECK(memcmp(d, c, sizeof *c) == 0);
  (void)r;
  free(d);
  free(buf);
  free(c);
}

/* Item body of row 0 with obs written one float at a time (legal protobuf, not packed). */
static size_t unpacked_item(uint8_t *out, const cols *c) {
  uint8_t *p = out;
  for (int j = 0; j < OD; j++) *p++ = 0x0D, memcpy(p, &c->obs[j], 4), p += 4;
  *p++ = 0x12, *p++ = AD * 4, memcpy(p, c->action, AD * 4), p += AD * 4;
  *p++ = 0x2A, *p++ = OD * 4, memcpy(p, c->next_obs, OD * 4), p += OD * 4;
  *p++ = 0x1D, memcpy(p, &c->reward[0], 4), p += 4;
  *p++ = 0x38, *p++ = 5; /* actor_id 5 */
  *p++ = 0x98, *p++ = 0x06, *p++ = 0x01; /* unknown field 99, varint: skipped */
  return (size_t)(p - out);
}

static void test_unpacked_and_errors(void) {
  cols *c = ib_xcalloc(1, sizeof *c), *d = ib_xcalloc(1, sizeof *d);
  fill(c, 2);
  ic_rows dr = rows_of(d);
  uint8_t body[512];
  size_t len = unpacked_item(body, c);
  ic_item_ref it;
  ic_error e;
  TH_CHECK_EQ_INT(ic_item_view(&it, body, len, OD, AD, 1, &e), IC_ENOVIEW);
  TH_CHECK_EQ_INT(ic_item_parse(&dr, 2, body, len, 1, &e), IC_OK);
  TH_CHECK(memcmp(d->obs + 2 * OD, c->obs, OD * 4) == 0 && d->actor[2] == 5 && d->seq[2] == 0);
  /* Wrong dims: the field and the count are named, by both readers. */
  TH_CHECK_EQ_INT(ic_item_view(&it, body, len, OD + 1, AD, 1, &e), IC_ENOVIEW); /* unpacked obs comes first */
  TH_CHECK_EQ_INT(ic_item_parse(&dr, 0, body, len, 1, &e), IC_OK);
  ic_rows wide = dr;
  wide.act_dim = AD + 2;
  TH_CHECK_EQ_INT(ic_item_parse(&wide, 0, body, len, 1, &e), IC_EDIMS);
  TH_CHECK(strcmp(e.field, "action") == 0 && e.got == AD);
  ic_rows narrow = dr;
  narrow.obs_dim = OD - 1;
  TH_CHECK_EQ_INT(ic_item_parse(&narrow, 0, body, len, 1, &e), IC_EDIMS);
  TH_CHECK(strcmp(e.field, "obs") == 0 && e.got == OD);
  size_t blen;
  uint8_t *buf = encode(c, &blen);
  /* The first item's body starts after the table field (8 bytes), its key and its length. */
  ic_reader rd = {buf + 8, buf + blen};
  uint64_t key, ilen;
  TH_CHECK(ic_get_varint(&rd, &key) == 0 && ic_get_varint(&rd, &ilen) == 0 && key == 0x12);
  TH_CHECK_EQ_INT(ic_item_view(&it, rd.p, (size_t)ilen, OD, AD + 1, 1, &e), IC_EDIMS);
  TH_CHECK(strcmp(e.field, "action") == 0 && e.got == AD);
  TH_CHECK_EQ_INT(ic_item_view(&it, rd.p, (size_t)ilen, OD - 2, AD, 1, &e), IC_EDIMS);
  TH_CHECK(strcmp(e.field, "obs") == 0 && e.got == OD);
  /* NaN and Inf in each float field: found in place and in the copy, with the index. */
  const int fields[] = {1, 2, 5, 3, 4};
  const char *names[] = {"obs", "action", "next_obs", "reward", "discount"};
  for (int k = 0; k < 5; k++) {
    cols *x = ib_xcalloc(1, sizeof *x);
    fill(x, 2);
    float bad = k % 2 ? INFINITY : NAN;
    int idx = fields[k] == 2 ? AD - 1 : fields[k] == 3 || fields[k] == 4 ? 0 : 4;
    if (fields[k] == 1) x->obs[idx] = bad;
    if (fields[k] == 2) x->action[idx] = bad;
    if (fields[k] == 5) x->next_obs[idx] = -bad;
    if (fields[k] == 3) x->reward[0] = bad;
    if (fields[k] == 4) x->discount[0] = bad;
    size_t xl;
    uint8_t *xb = encode(x, &xl);
    ic_reader xr = {xb + 8, xb + xl};
    TH_CHECK(ic_get_varint(&xr, &key) == 0 && ic_get_varint(&xr, &ilen) == 0);
    TH_CHECK_EQ_INT(ic_item_view(&it, xr.p, (size_t)ilen, OD, AD, 1, &e), IC_ENONFINITE);
    TH_CHECK_MSG(strcmp(e.field, names[k]) == 0 && e.index == idx, "view: %s[%ld], want %s[%d]", e.field, e.index,
                 names[k], idx);
    TH_CHECK_EQ_INT(ic_item_view(&it, xr.p, (size_t)ilen, OD, AD, 0, &e), IC_OK); /* unchecked: passes */
    TH_CHECK_EQ_INT(ic_item_parse(&dr, 0, xr.p, (size_t)ilen, 1, &e), IC_ENONFINITE);
    TH_CHECK_MSG(strcmp(e.field, names[k]) == 0 && e.index == idx, "parse: %s[%ld], want %s[%d]", e.field, e.index,
                 names[k], idx);
    free(xb);
    free(x);
  }
  free(buf);
  free(c);
  free(d);
}

/* Writes row i of c as an Item body with the fields in reverse order (legal protobuf; not the
 * layout the readers' fast path recognises). Omits the zero scalars when `sparse`, as proto3
 * encoders do, and then keeps the field order instead. Returns the length. */
static size_t item_other_layout(uint8_t *out, const cols *c, int i, int sparse) {
  uint8_t *p = out;
  uint64_t v[6] = {c->proposer[i], c->actor[i], c->seq[i], c->wv[i], c->end[i], c->success[i]};
  if (sparse) {
    *p++ = 0x0A, *p++ = OD * 4, memcpy(p, c->obs + i * OD, OD * 4), p += OD * 4;
    *p++ = 0x12, *p++ = AD * 4, memcpy(p, c->action + i * AD, AD * 4), p += AD * 4;
    if (c->reward[i] != 0) *p++ = 0x1D, memcpy(p, &c->reward[i], 4), p += 4;
    if (c->discount[i] != 0) *p++ = 0x25, memcpy(p, &c->discount[i], 4), p += 4;
    *p++ = 0x2A, *p++ = OD * 4, memcpy(p, c->next_obs + i * OD, OD * 4), p += OD * 4;
    for (int f = 6; f <= 11; f++)
      if (v[f - 6] != 0) p = ic_put_varint_field(p, (uint32_t)f, v[f - 6]);
    return (size_t)(p - out);
  }
  for (int f = 11; f >= 6; f--) p = ic_put_varint_field(p, (uint32_t)f, v[f - 6]);
  *p++ = 0x2A, *p++ = OD * 4, memcpy(p, c->next_obs + i * OD, OD * 4), p += OD * 4;
  *p++ = 0x25, memcpy(p, &c->discount[i], 4), p += 4;
  *p++ = 0x1D, memcpy(p, &c->reward[i], 4), p += 4;
  *p++ = 0x12, *p++ = AD * 4, memcpy(p, c->action + i * AD, AD * 4), p += AD * 4;
  *p++ = 0x0A, *p++ = OD * 4, memcpy(p, c->obs + i * OD, OD * 4), p += OD * 4;
  return (size_t)(p - out);
}

/* Whether row `row` of d equals row i of c in every field. */
static int same_row(const cols *d, int row, const cols *c, int i) {
  return memcmp(d->obs + row * OD, c->obs + i * OD, OD * 4) == 0 &&
         memcmp(d->next_obs + row * OD, c->next_obs + i * OD, OD * 4) == 0 &&
         memcmp(d->action + row * AD, c->action + i * AD, AD * 4) == 0 && d->reward[row] == c->reward[i] &&
         d->discount[row] == c->discount[i] && d->proposer[row] == c->proposer[i] && d->actor[row] == c->actor[i] &&
         d->seq[row] == c->seq[i] && d->wv[row] == c->wv[i] && d->end[row] == c->end[i] &&
         d->success[row] == c->success[i];
}

static int same_ref(const ic_item_ref *a, const ic_item_ref *b) {
  return same_floats(a->obs, b->obs, OD) && same_floats(a->next_obs, b->next_obs, OD) && same_floats(a->action, b->action, AD) &&
         a->reward == b->reward && a->discount == b->discount && a->proposer == b->proposer &&
         a->actor_id == b->actor_id && a->seq == b->seq && a->weight_version == b->weight_version &&
         a->episode_end == b->episode_end && a->episode_success == b->episode_success;
}

/* The readers' fast path for the usual field layout (ic_items_put's, nanopb's) against the field
 * by field walk: the same item in three layouts reads the same, through both readers; a layout
 * that starts like the usual one but repeats a float field afterwards is still refused. */
static void test_fast_layout_matches_walk(void) {
  cols *c = ib_xcalloc(1, sizeof *c), *d = ib_xcalloc(1, sizeof *d);
  fill(c, 4);
  c->reward[2] = 0, c->discount[2] = 0; /* the sparse layout omits them */
  ic_rows cr = rows_of(c), dr = rows_of(d);
  int bad = 0;
  for (int i = 0; i < N; i++) {
    uint8_t canon[512], other[512], sparse[512];
    uint8_t *e = ic_items_put(canon, &cr, (size_t)i, (size_t)i + 1, 1, NULL);
    ic_reader rd = {canon, e};
    uint64_t key, blen;
    TH_CHECK(ic_get_varint(&rd, &key) == 0 && ic_get_varint(&rd, &blen) == 0);
    const uint8_t *cb = rd.p;
    size_t ol = item_other_layout(other, c, i, 0), sl = item_other_layout(sparse, c, i, 1);
    ic_error err;
    memset(d, 0xA5, sizeof *d); /* stale values must not survive a parse */
    bad += ic_item_parse(&dr, 0, cb, (size_t)blen, 1, &err) != IC_OK;
    bad += ic_item_parse(&dr, 1, other, ol, 1, &err) != IC_OK;
    bad += ic_item_parse(&dr, 2, sparse, sl, 1, &err) != IC_OK;
    for (int row = 0; row < 3; row++) bad += !same_row(d, row, c, i);
    ic_item_ref va, vb, vc;
    bad += ic_item_view(&va, cb, (size_t)blen, OD, AD, 1, &err) != IC_OK;
    bad += ic_item_view(&vb, other, ol, OD, AD, 1, &err) != IC_OK;
    bad += ic_item_view(&vc, sparse, sl, OD, AD, 1, &err) != IC_OK;
    bad += !same_ref(&va, &vb) + !same_ref(&va, &vc);
    bad += va.seq != c->seq[i] || va.reward != c->reward[i];
    /* The usual layout followed by a second obs run: too many obs values (parse), not one run (view). */
    uint8_t twice[600];
    memcpy(twice, cb, (size_t)blen);
    uint8_t *q = twice + blen;
    *q++ = 0x0A, *q++ = 4, memcpy(q, c->obs, 4), q += 4;
    TH_CHECK_EQ_INT(ic_item_parse(&dr, 3, twice, (size_t)(q - twice), 1, &err), IC_EDIMS);
    TH_CHECK(strcmp(err.field, "obs") == 0 && err.got == OD + 1);
    TH_CHECK_EQ_INT(ic_item_view(&va, twice, (size_t)(q - twice), OD, AD, 1, &err), IC_ENOVIEW);
    /* A later reward overrides the first, as protobuf's last-one-wins rule says. */
    float r2 = 42.5f;
    q = twice + blen;
    *q++ = 0x1D, memcpy(q, &r2, 4), q += 4;
    TH_CHECK_EQ_INT(ic_item_parse(&dr, 3, twice, (size_t)(q - twice), 1, &err), IC_OK);
    TH_CHECK_EQ_INT(ic_item_view(&va, twice, (size_t)(q - twice), OD, AD, 1, &err), IC_OK);
    TH_CHECK(d->reward[3] == r2 && va.reward == r2);
  }
  TH_CHECK_EQ_INT(bad, 0);
  free(c);
  free(d);
}

/* ic_items_put_check writes exactly ic_items_put's bytes and says whether every float is finite. */
static void test_put_check(void) {
  cols *c = ib_xcalloc(1, sizeof *c);
  fill(c, 5);
  ic_rows r = rows_of(c);
  ic_stamp st = {77, 1000};
  size_t len = ic_items_len(&r, 1, N, IC_INSERT_ITEMS, &st);
  uint8_t *a = ib_xmalloc(len), *b = ib_xmalloc(len);
  int finite = -1;
  uint8_t *ea = ic_items_put(a, &r, 1, N, IC_INSERT_ITEMS, &st);
  uint8_t *eb = ic_items_put_check(b, &r, 1, N, IC_INSERT_ITEMS, &st, &finite);
  TH_CHECK((size_t)(ea - a) == len && (size_t)(eb - b) == len && memcmp(a, b, len) == 0);
  TH_CHECK_EQ_INT(finite, 1);
  const float bads[2] = {NAN, -INFINITY};
  for (int k = 0; k < 5; k++)
    for (int bi = 0; bi < 2; bi++) {
      float *x = k == 0 ? &c->obs[4 * OD + OD - 1] : k == 1 ? &c->action[N * AD - 1] : k == 2 ? &c->next_obs[3 * OD]
                 : k == 3 ? &c->reward[N - 1] : &c->discount[1];
      float keep = *x;
      *x = bads[bi];
      ic_items_put(a, &r, 1, N, IC_INSERT_ITEMS, &st);
      finite = -1;
      ic_items_put_check(b, &r, 1, N, IC_INSERT_ITEMS, &st, &finite);
      TH_CHECK_MSG(finite == 0 && memcmp(a, b, len) == 0, "field %d value %g: finite %d", k, (double)bads[bi], finite);
      *x = keep;
    }
  /* Row 0 is outside [1, N): a NaN there is not looked at. */
  c->obs[0] = NAN;
  ic_items_put_check(b, &r, 1, N, IC_INSERT_ITEMS, &st, &finite);
  TH_CHECK_EQ_INT(finite, 1);
  free(a);
  free(b);
  free(c);
}

static void test_truncations(void) {
  cols *c = ib_xcalloc(1, sizeof *c);
  fill(c, 3);
  size_t len;
  uint8_t *buf = encode(c, &len);
  static const size_t cuts[] = {17, 5};
  int refused = 0, ended_early = 0;
  for (size_t cut = 0; cut < len; cut++) {
    grpc_byte_buffer *bb = sliced(buf, cut, cuts, 2);
    ic_flat scratch = {0};
    ic_msg m;
    TH_CHECK(ic_msg_init(&m, bb, &scratch) == 0);
    int more, items = 0;
    uint32_t f;
    int wt;
    uint64_t v;
    const uint8_t *body;
    size_t l;
    while ((more = ic_msg_next(&m, &f, &wt, &v, &body, &l)) == 1) items += f == IC_INSERT_ITEMS;
    /* A cut inside a field is refused; a cut between fields is a shorter valid message. */
    refused += more < 0;
    ended_early += more == 0;
    TH_CHECK(items < N);
    grpc_byte_buffer_destroy(bb);
    ic_flat_free(&scratch);
  }
  TH_CHECK_EQ_INT(ended_early, N + 1); /* cut 0, after the table, and after items 1..N-1 */
  TH_CHECK_EQ_INT(refused, (int)len - (N + 1));
  free(buf);
  free(c);
}

static void test_finite_scan(void) {
  float x[19];
  for (int n = 1; n <= 19; n++) {
    for (int i = 0; i < n; i++) x[i] = (float)i - 3.5f;
    x[0] = FLT_MAX, x[n - 1] = -FLT_MAX;
    if (n > 2) x[1] = FLT_MIN / 4; /* a denormal is finite */
    if (n > 3) x[2] = -0.0f;
    TH_CHECK_MSG(ic_floats_finite(x, (size_t)n) == 1, "n %d: finite values refused", n);
    const float bads[3] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < n; i++)
      for (int b = 0; b < 3; b++) {
        float keep = x[i];
        x[i] = bads[b];
        TH_CHECK_MSG(ic_floats_finite(x, (size_t)n) == 0, "n %d: %g at %d not found", n, (double)bads[b], i);
        x[i] = keep;
      }
  }
  TH_CHECK_EQ_INT(ic_floats_finite(x, 0), 1);
}

int main(int argc, char **argv) {
  grpc_init();
  static const th_case cases[] = {
      {"walk a message across slice borders", test_walk_across_slices},
      {"unpacked floats, wrong dims, NaN/Inf", test_unpacked_and_errors},
      {"every truncation refused or a shorter message", test_truncations},
      {"finite scan at every position", test_finite_scan},
      {"fast path for the usual layout reads as the field walk", test_fast_layout_matches_walk},
      {"encode with the finite check: same bytes, NaN/Inf found", test_put_check},
      {NULL, NULL},
  };
  int rc = th_main(argc, argv, cases);
  grpc_shutdown();
  return rc;
}
