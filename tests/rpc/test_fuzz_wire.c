/* test_fuzz_wire.c: seeded mutation fuzzing of every message the replay shard decodes from the
 * network (and of the client's reply decoder, which shares the hand codec).
 *
 * Design. A corpus of valid messages is built first: InsertRequest as Items (our canonical
 * layout, nanopb's proto3 layout that omits defaults, and hand-made legal oddities: unpacked
 * floats, a float field in two runs, fields out of order, unknown fields), as ItemColumns, and
 * both in one message; SampleReply/ReadReply as items and as columns; every nanopb request the
 * shard's handlers decode (Sample, Read, Info, RateLimit, Checkpoint, Publish with its blob sink,
 * GetIfNewer, Health Check). Each iteration takes one, applies 1-4 mutations (bit flips, bytes
 * set to 0x00/0xff/0x80/..., inserted, deleted or duplicated ranges, truncation, a length or key
 * varint set to huge / off by one / 2^32 more / overlong / a 64-bit key, a NaN or Inf planted,
 * a splice with another message), and cuts the result into gRPC slices at random borders (one
 * slice, a few, or one per byte, empty slices included). Every slice is its own exactly sized
 * heap block, so under ASan a read one byte past any slice border fails the run.
 *
 * InsertRequests go through the shard's own decoder, rins_decode (replay/server/rsrv_insert.c,
 * what rsrv_data.c's Insert handler calls for every message), with a slot as the shard sizes it; the
 * other messages through the decoders the handlers and the client call.
 *
 * What is checked, per decoder:
 *   - it returns OK or a clean error (an IC_* code, or IB_E* with a message naming the message
 *     and giving a HINT; rins_decode: INVALID_ARGUMENT, and a NaN/Inf refusal prints the value,
 *     a dims refusal the field); never a crash, an over-read or UB (the ASan+UBSan build);
 *   - the result does not depend on the slicing: the same bytes as one slice and as random
 *     slices give the same status, message, count, table and rows bit for bit;
 *   - on OK, what the shard's insert path promises the store: at most RSRV_MAX_INSERT_ITEMS
 *     rows of the shard's dims, every float finite, each float array in place in one slice of
 *     the message, in the straddle scratch, or at its own row of the slot (flags 0/1 there);
 *     an InsertRequest of items rins_decode accepts is accepted by nanopb with the same values
 *     (proposer aside: the hand codec clamps what protobuf truncates, and the store refuses
 *     both; and a 10-byte varint with bits past the 64th, whose low bits the hand codec keeps
 *     as upb does, where nanopb refuses); on every message without columns, wire.c's own Item
 *     decoder (nanopb callbacks) stays within the ibrl_Item arrays;
 *   - under the decoder, every Item body of the message (found by this test's own scan): one
 *     that ic_item_view accepts lies inside the body and is parsed to the same values by
 *     ic_item_parse, and one the view refuses is not accepted by the parser.
 * Planted defects the generator knows (a NaN or Inf in one float of one row, an actor with other
 * dims, more rows than the bound, a cut inside the last field, a rows field of the wrong wire
 * type) must each be refused with the right status and a message naming the row and field. A
 * round-trip case encodes random valid batches (denormals, -0.0, FLT_MAX, huge seq) as Items and
 * as columns, slices them and decodes them: the store_items equal the rows field by field, and
 * re-encoding gives identical bytes. A last case sends mutated messages of every method to an
 * in-process shard (rsrv_start on 127.0.0.1, port 0) and checks each answer is OK or a refusal
 * with a message, and that valid calls still succeed afterwards.
 *
 * Determinism: iteration k of a target draws from rng_seed(seed, target, k, "fuzz") only, so
 * IB_FUZZ_SEED=s IB_FUZZ_FROM=k IB_FUZZ_ITERS=1 replays exactly the failing iteration that a
 * failure message names. IB_FUZZ_ITERS sets the iterations per target (longer runs by hand). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <pb_encode.h>

#include "ib.h"
#include "itemcodec.h"
#include "replay_client.h"
#include "rng.h"
#include "rpc_testutil.h"
#include "rsrv.h"
#include "rsrv_insert.h"
#include "store.h"
#include "th.h"
#include "wire.h"

#define OD 6 /* the fuzzed shard's obs_dim and act_dim */
#define AD 4
#define IW_MAX RSRV_MAX_INSERT_ITEMS
#define MAX_REPORTS 5 /* failures printed per target (the count goes on) */

/* ---- the fuzz context: seed, iteration, failure reports ---- */

typedef struct fz {
  rng r;
  uint64_t seed;
  long iter;
  const char *target;
  int failures; /* failed checks of this target */
} fz;

static uint64_t fz_seed(void) { return th_env_u64("IB_FUZZ_SEED", 20261122); }
static long fz_from(void) { return (long)th_env_u64("IB_FUZZ_FROM", 0); }
static long fz_iters(long dflt) { return (long)th_env_u64("IB_FUZZ_ITERS", (uint64_t)dflt); }

static void fz_start(fz *z, const char *target, long iter) {
  z->target = target;
  z->iter = iter;
  rng_seed(&z->r, z->seed, target, iter, "fuzz");
}

/* Records a failure naming the seed and iteration, so the case can be replayed. The first
 * MAX_REPORTS are printed; fz_end reports how many more there were. */
#define FZ_CHECK(z, cond, ...)                                                                          \
  do {                                                                                                  \
    if (!(cond)) {                                                                                      \
      (z)->failures++;                                                                                  \
      if ((z)->failures <= MAX_REPORTS) {                                                               \
        char fz_m_[1024];                                                                               \
        snprintf(fz_m_, sizeof fz_m_, __VA_ARGS__);                                                     \
        th__fail(__FILE__, __LINE__, "%s [target %s, IB_FUZZ_SEED=%llu IB_FUZZ_FROM=%ld IB_FUZZ_ITERS=1]", \
                 fz_m_, (z)->target, (unsigned long long)(z)->seed, (z)->iter);                         \
      }                                                                                                 \
    }                                                                                                   \
  } while (0)

static void fz_end(const fz *z) {
  if (z->failures > MAX_REPORTS)
    th__fail(__FILE__, __LINE__, "target %s: %d more failed checks not shown", z->target, z->failures - MAX_REPORTS);
}

static uint32_t below(fz *z, uint32_t n) { return n == 0 ? 0 : rng_below(&z->r, n); }

/* ---- byte strings ---- */

typedef struct bytes {
  uint8_t *p;
  size_t n, cap;
} bytes;

static void b_reserve(bytes *b, size_t n) {
  if (n <= b->cap) return;
  b->cap = IB_MAX(n, 2 * b->cap);
  b->p = ib_xrealloc(b->p, b->cap);
}

static void b_set(bytes *b, const uint8_t *p, size_t n) {
  b_reserve(b, n + 1);
  if (n) memcpy(b->p, p, n);
  b->n = n;
}

static void b_insert(bytes *b, size_t at, const uint8_t *p, size_t k) {
  b_reserve(b, b->n + k + 1);
  memmove(b->p + at + k, b->p + at, b->n - at);
  memcpy(b->p + at, p, k);
  b->n += k;
}

static void b_erase(bytes *b, size_t at, size_t k) {
  memmove(b->p + at, b->p + at + k, b->n - at - k);
  b->n -= k;
}

static void b_free(bytes *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- the field map: where the keys and length varints of a message are (two levels deep) ---- */

typedef struct fmark {
  size_t at, len; /* the varint's bytes */
  int is_len;     /* 0: a key, 1: a length, 2: a varint value (ItemColumns.n, seq, ...) */
} fmark;

#define MAX_MARKS 4096

static int rd_varint(const uint8_t *p, size_t *at, size_t end, uint64_t *v) {
  ic_reader r = {p + *at, p + end};
  if (ic_get_varint(&r, v)) return -1;
  *at = (size_t)(r.p - p);
  return 0;
}

static void fmap_scan(const uint8_t *p, size_t lo, size_t hi, int depth, fmark *m, int *nm) {
  size_t at = lo;
  while (at < hi && *nm < MAX_MARKS) {
    uint64_t key, v;
    size_t k0 = at;
    if (rd_varint(p, &at, hi, &key)) return;
    m[(*nm)++] = (fmark){k0, at - k0, 0};
    switch (key & 7) {
      case 0: {
        size_t v0 = at;
        if (rd_varint(p, &at, hi, &v)) return;
        if (*nm < MAX_MARKS) m[(*nm)++] = (fmark){v0, at - v0, 2};
        break;
      }
      case 1: at += 8; break;
      case 5: at += 4; break;
      case 2: {
        size_t l0 = at;
        if (rd_varint(p, &at, hi, &v) || v > hi - at) return;
        if (*nm < MAX_MARKS) m[(*nm)++] = (fmark){l0, at - l0, 1};
        if (depth < 1) fmap_scan(p, at, at + (size_t)v, depth + 1, m, nm);
        at += (size_t)v;
        break;
      }
      default: return;
    }
  }
}

/* ---- mutations ---- */

static void put_varint_at(bytes *b, const fmark *mk, uint64_t v, int overlong) {
  uint8_t e[16];
  size_t n = (size_t)(ic_put_varint(e, v) - e);
  if (overlong && n < 10) { /* the same value in 10 bytes: legal protobuf */
    for (size_t i = 0; i < n; i++) e[i] |= 0x80;
    while (n < 9) e[n++] = 0x80;
    e[n++] = 0x00;
  }
  b_erase(b, mk->at, mk->len);
  b_insert(b, mk->at, e, n);
}

/* Applies 1-4 random mutations to b; `other` is a second corpus message to splice with. */
static void mutate(fz *z, bytes *b, const bytes *other) {
  static fmark marks[MAX_MARKS];
  int rounds = 1 + (int)below(z, 4);
  for (int k = 0; k < rounds; k++) {
    int op = (int)below(z, 12);
    size_t n = b->n;
    if (n == 0 && op != 3 && op != 9) op = 3;
    switch (op) {
      case 0: { /* one draw per statement: the order must not depend on the compiler */
      size_t at = below(z, (uint32_t)n);
      b->p[at] ^= (uint8_t)(1u << below(z, 8));
      break;
    }
      case 1: {
        static const uint8_t special[] = {0x00, 0xff, 0x80, 0x7f, 0x01, 0x0a, 0x12, 0x1a};
        size_t at = below(z, (uint32_t)n);
        b->p[at] = special[below(z, sizeof special)];
        break;
      }
      case 2: {
        size_t at = below(z, (uint32_t)n);
        b->p[at] = (uint8_t)rng_u64(&z->r);
        break;
      }
      case 3: {
        uint8_t ins[16];
        size_t c = 1 + below(z, 16);
        for (size_t i = 0; i < c; i++) ins[i] = (uint8_t)rng_u64(&z->r);
        b_insert(b, below(z, (uint32_t)n + 1), ins, c);
        break;
      }
      case 4: {
        size_t at = below(z, (uint32_t)n), c = 1 + below(z, (uint32_t)IB_MIN(n - at, 64));
        b_erase(b, at, c);
        break;
      }
      case 5: { /* duplicate a range somewhere else */
        size_t at = below(z, (uint32_t)n), c = 1 + below(z, (uint32_t)IB_MIN(n - at, 256));
        uint8_t *tmp = ib_xmalloc(c);
        memcpy(tmp, b->p + at, c);
        b_insert(b, below(z, (uint32_t)n + 1), tmp, c);
        free(tmp);
        break;
      }
      case 6: b->n = below(z, (uint32_t)n + 1); break;
      case 7:
      case 8: { /* a length or a varint value (7), or a key (8), rewritten */
        int nm = 0;
        fmap_scan(b->p, 0, b->n, 0, marks, &nm);
        int want = op == 7 ? 1 + (int)below(z, 2) : 0, cnt = 0;
        for (int i = 0; i < nm; i++) cnt += marks[i].is_len == want;
        if (cnt == 0) {
          b->p[below(z, (uint32_t)n)] ^= 0x80;
          break;
        }
        int pick = (int)below(z, (uint32_t)cnt), i = 0;
        for (;; i++)
          if (marks[i].is_len == want && pick-- == 0) break;
        uint64_t v;
        size_t at = marks[i].at;
        if (rd_varint(b->p, &at, b->n, &v)) break;
        uint64_t nv;
        int overlong = 0;
        if (want) {
          static const uint64_t huge[] = {UINT64_MAX, 0x7fffffffu, 0x80000000u, 0xffffffffu, 1ull << 32, 1ull << 63};
          switch (below(z, 7)) {
            case 0: nv = v + 1; break;
            case 1: nv = v - 1; break;
            case 2: nv = 0; break;
            case 3: nv = huge[below(z, IB_ARRAY_LEN(huge))]; break;
            case 4: nv = v + (1ull << 32); break;
            case 5: nv = v + 1 + below(z, 1000); break;
            default: nv = v, overlong = 1;
          }
        } else {
          switch (below(z, 5)) {
            case 0: /* another field or wire type */
              nv = (uint64_t)(1 + below(z, 16)) << 3;
              nv |= below(z, 8);
              break;
            case 1: nv = v, overlong = 1; break;
            case 2: nv = v | 1ull << 35; break; /* a 64-bit key whose low 32 bits are the field's */
            case 3: nv = v & 7; break;          /* field number 0 */
            default: nv = (uint64_t)0x1fffffff << 3 | (v & 7); /* the largest field number */
          }
        }
        put_varint_at(b, &marks[i], nv, overlong);
        break;
      }
      case 9: { /* splice: a prefix of b, then a suffix of other */
        if (other->n == 0) break;
        size_t a = below(z, (uint32_t)n + 1), c = below(z, (uint32_t)other->n);
        b->n = a;
        b_insert(b, a, other->p + c, other->n - c);
        break;
      }
      case 10: { /* a non-finite float at a random offset */
        static const uint32_t bad[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x7f800001u};
        if (n < 4) break;
        uint32_t x = bad[below(z, IB_ARRAY_LEN(bad))];
        memcpy(b->p + below(z, (uint32_t)n - 3), &x, 4);
        break;
      }
      default: { /* a whole byte range zeroed or set to 0xff */
        size_t at = below(z, (uint32_t)n), c = 1 + below(z, (uint32_t)IB_MIN(n - at, 16));
        memset(b->p + at, below(z, 2) ? 0xff : 0x00, c);
      }
    }
  }
}

/* ---- slicing ---- */

static void slice_free(void *p) { free(p); }

/* One slice holding its own exactly sized heap copy (refcounted: grpc never merges it). */
static grpc_slice own_slice(const uint8_t *p, size_t n) {
  uint8_t *d = ib_xmalloc(n ? n : 1);
  if (n) memcpy(d, p, n);
  return grpc_slice_new(d, n, slice_free);
}

/* A raw byte buffer of p[0..n) cut as mode says: 0 one slice, 1 a few random cuts (empty slices
 * possible), 2 one slice per byte (short messages). The caller destroys it. */
static grpc_byte_buffer *fz_buffer(fz *z, const uint8_t *p, size_t n, int mode) {
  size_t cuts[34];
  size_t nc = 0;
  cuts[nc++] = 0;
  if (mode == 1) {
    size_t k = 1 + below(z, 12);
    for (size_t i = 0; i < k; i++) cuts[nc++] = below(z, (uint32_t)n + 1);
    for (size_t i = 1; i < nc; i++) /* insertion sort */
      for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
        size_t t = cuts[j];
        cuts[j] = cuts[j - 1];
        cuts[j - 1] = t;
      }
  }
  if (mode == 2 && n > 0) {
    grpc_slice *sl = ib_xmalloc(n * sizeof *sl);
    for (size_t i = 0; i < n; i++) sl[i] = own_slice(p + i, 1);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(sl, n);
    for (size_t i = 0; i < n; i++) grpc_slice_unref(sl[i]);
    free(sl);
    return bb;
  }
  cuts[nc++] = n;
  grpc_slice sl[34];
  for (size_t i = 0; i + 1 < nc; i++) sl[i] = own_slice(p + cuts[i], cuts[i + 1] - cuts[i]);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(sl, nc - 1);
  for (size_t i = 0; i + 1 < nc; i++) grpc_slice_unref(sl[i]);
  return bb;
}

/* A random cut mode: mostly a few cuts, sometimes one per byte. */
static int fz_mode(fz *z, size_t n) {
  uint32_t x = below(z, 10);
  if (x == 0 && n <= 400) return 2;
  return x < 2 ? 0 : 1;
}

/* 1 if [p, p + n) lies inside one slice of bb or inside [lo, hi). */
static int inside(const grpc_byte_buffer *bb, const uint8_t *p, size_t n, const uint8_t *lo, const uint8_t *hi) {
  const grpc_slice_buffer *sb = &bb->data.raw.slice_buffer;
  if (n == 0) return 1;
  for (size_t k = 0; k < sb->count; k++) {
    const uint8_t *s = GRPC_SLICE_START_PTR(sb->slices[k]);
    if (p >= s && p + n <= s + GRPC_SLICE_LENGTH(sb->slices[k])) return 1;
  }
  return lo != NULL && p >= lo && p + n <= hi;
}

/* ---- rows ---- */

static void rows_alloc(ic_rows *r, size_t cap) {
  memset(r, 0, sizeof *r);
  r->obs_dim = OD;
  r->act_dim = AD;
  r->obs = ib_xcalloc(cap * OD, 4);
  r->action = ib_xcalloc(cap * AD, 4);
  r->next_obs = ib_xcalloc(cap * OD, 4);
  r->reward = ib_xcalloc(cap, 4);
  r->discount = ib_xcalloc(cap, 4);
  r->proposer = ib_xcalloc(cap, 1);
  r->episode_end = ib_xcalloc(cap, 1);
  r->episode_success = ib_xcalloc(cap, 1);
  r->actor_id = ib_xcalloc(cap, 4);
  r->seq = ib_xcalloc(cap, 8);
  r->weight_version = ib_xcalloc(cap, 8);
}

static void rows_free(ic_rows *r) {
  free(r->obs), free(r->action), free(r->next_obs), free(r->reward), free(r->discount), free(r->proposer);
  free(r->episode_end), free(r->episode_success), free(r->actor_id), free(r->seq), free(r->weight_version);
  memset(r, 0, sizeof *r);
}

/* Row i of a equals row j of b bit for bit (proposer compared only when with_proposer). */
static int row_eq(const ic_rows *a, size_t i, const ic_rows *b, size_t j, int with_proposer) {
  return memcmp(a->obs + i * OD, b->obs + j * OD, OD * 4) == 0 &&
         memcmp(a->next_obs + i * OD, b->next_obs + j * OD, OD * 4) == 0 &&
         memcmp(a->action + i * AD, b->action + j * AD, AD * 4) == 0 && memcmp(&a->reward[i], &b->reward[j], 4) == 0 &&
         memcmp(&a->discount[i], &b->discount[j], 4) == 0 && (!with_proposer || a->proposer[i] == b->proposer[j]) &&
         a->actor_id[i] == b->actor_id[j] && a->seq[i] == b->seq[j] &&
         a->weight_version[i] == b->weight_version[j] && a->episode_end[i] == b->episode_end[j] &&
         a->episode_success[i] == b->episode_success[j];
}

/* Fills rows [0, n) with random valid values: floats of every kind that is finite (normal,
 * denormal, +-0, +-FLT_MAX, random bit patterns with a finite exponent), big integers. */
static float any_finite(fz *z) {
  switch (below(z, 8)) {
    case 0: return -0.0f;
    case 1: return FLT_MIN / (float)(2 + below(z, 1000)); /* denormal */
    case 2: return below(z, 2) ? FLT_MAX : -FLT_MAX;
    case 3: {
      uint32_t u = (uint32_t)rng_u64(&z->r);
      if ((u & 0x7f800000u) == 0x7f800000u) u &= 0xbfffffffu; /* clear an exponent bit: finite */
      float f;
      memcpy(&f, &u, 4);
      return f;
    }
    default: return rng_normal(&z->r);
  }
}

static void rows_random(fz *z, ic_rows *r, size_t n, int valid_store) {
  for (size_t i = 0; i < n * OD; i++) r->obs[i] = any_finite(z), r->next_obs[i] = any_finite(z);
  for (size_t i = 0; i < n * AD; i++) r->action[i] = any_finite(z);
  for (size_t i = 0; i < n; i++) {
    r->reward[i] = any_finite(z);
    r->discount[i] = valid_store ? rng_uniform(&z->r) : any_finite(z);
    r->proposer[i] = (uint8_t)below(z, valid_store ? 3 : 256);
    r->actor_id[i] = below(z, 2) ? below(z, 8) : (uint32_t)rng_u64(&z->r);
    r->seq[i] = below(z, 2) ? i : rng_u64(&z->r);
    r->weight_version[i] = below(z, 2) ? below(z, 100) : rng_u64(&z->r);
    r->episode_end[i] = (uint8_t)below(z, 2);
    r->episode_success[i] = (uint8_t)below(z, 2);
  }
}

/* ---- the corpus ---- */

/* An Item body written the unusual legal ways: each float field packed, unpacked or in two
 * runs; fields in a shuffled order; defaults omitted or written; an unknown field. */
static void odd_item(fz *z, bytes *b, const ic_rows *r, size_t i) {
  uint8_t buf[2048], *p = buf;
  int order[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  for (int k = 11; k > 0; k--) {
    int j = (int)below(z, (uint32_t)k + 1), t = order[k];
    order[k] = order[j], order[j] = t;
  }
  for (int k = 0; k < 12; k++) {
    int f = order[k];
    if (f == 1 || f == 2 || f == 5) {
      const float *x = f == 1 ? r->obs + i * OD : f == 2 ? r->action + i * AD : r->next_obs + i * OD;
      size_t d = f == 2 ? AD : OD;
      int form = (int)below(z, 3);
      if (form == 0) {
        p = ic_put_bytes_field(p, (uint32_t)f, x, d * 4);
      } else if (form == 1) {
        for (size_t j = 0; j < d; j++) {
          p = ic_put_varint(p, (uint64_t)f << 3 | 5);
          memcpy(p, &x[j], 4), p += 4;
        }
      } else {
        size_t h = 1 + below(z, (uint32_t)d - 1);
        p = ic_put_bytes_field(p, (uint32_t)f, x, h * 4);
        p = ic_put_bytes_field(p, (uint32_t)f, x + h, (d - h) * 4);
      }
    } else if (f == 3 || f == 4) {
      p = ic_put_varint(p, (uint64_t)f << 3 | 5);
      memcpy(p, f == 3 ? &r->reward[i] : &r->discount[i], 4), p += 4;
    } else if (f == 12) { /* unknown fields of every wire type */
      p = ic_put_varint_field(p, 99, 12345);
      p = ic_put_bytes_field(p, 100, "xyz", 3);
      p = ic_put_varint(p, 101u << 3 | 1), memset(p, 7, 8), p += 8;
      p = ic_put_varint(p, 102u << 3 | 5), memset(p, 9, 4), p += 4;
    } else {
      uint64_t v = f == 6 ? r->proposer[i] : f == 7 ? r->actor_id[i] : f == 8 ? r->seq[i] : f == 9 ? r->weight_version[i]
                                                                       : f == 10 ? r->episode_end[i] : r->episode_success[i];
      if (v != 0 || below(z, 2)) p = ic_put_varint_field(p, (uint32_t)f, v);
    }
  }
  uint8_t hdr[16], *h = ic_put_varint(hdr, (uint64_t)IC_INSERT_ITEMS << 3 | 2);
  h = ic_put_varint(h, (uint64_t)(p - buf));
  b_insert(b, b->n, hdr, (size_t)(h - hdr));
  b_insert(b, b->n, buf, (size_t)(p - buf));
}

static void put_table(fz *z, bytes *b) {
  static const char *const names[] = {"online", "demo", ""};
  const char *t = names[below(z, 3)];
  if (*t == '\0') return;
  uint8_t tmp[64];
  size_t n = (size_t)(ic_put_bytes_field(tmp, IC_INSERT_TABLE, t, strlen(t)) - tmp);
  b_insert(b, b->n, tmp, n);
}

/* nanopb's encoding of an InsertRequest of items (proto3: zero fields omitted). */
static void items_get(void *arg, size_t i, ibrl_Item *it) {
  const ic_rows *r = arg;
  memset(it, 0, sizeof *it);
  it->obs_count = OD, it->next_obs_count = OD, it->action_count = AD;
  memcpy(it->obs, r->obs + i * OD, OD * 4);
  memcpy(it->next_obs, r->next_obs + i * OD, OD * 4);
  memcpy(it->action, r->action + i * AD, AD * 4);
  it->reward = r->reward[i], it->discount = r->discount[i], it->proposer = r->proposer[i];
  it->actor_id = r->actor_id[i], it->seq = r->seq[i], it->weight_version = r->weight_version[i];
  it->episode_end = r->episode_end[i], it->episode_success = r->episode_success[i];
}

static void nanopb_insert(bytes *b, const ic_rows *r, size_t n) {
  ibrl_InsertRequest req = ibrl_InsertRequest_init_zero;
  snprintf(req.table, sizeof req.table, "online");
  ibrl_Item *scratch = ib_xcalloc(1, sizeof *scratch);
  wire_items_src src = {n, items_get, (void *)r, scratch};
  wire_items_set_src(&req.items, &src);
  grpc_byte_buffer *bb;
  IB_CHECK(wire_encode(&bb, ibrl_InsertRequest_fields, &req) == IB_OK);
  grpc_byte_buffer_reader rd;
  IB_CHECK(grpc_byte_buffer_reader_init(&rd, bb));
  grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
  b_set(b, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
  grpc_slice_unref(all);
  grpc_byte_buffer_reader_destroy(&rd);
  grpc_byte_buffer_destroy(bb);
  free(scratch);
}

/* Appends rows [0, n) of r as Items (canonical) or as ItemColumns (field `cols_field`, 0: items). */
static void put_rows(bytes *b, const ic_rows *r, size_t n, uint32_t item_field, uint32_t cols_field) {
  size_t len = cols_field ? ic_cols_len(cols_field, n, OD, AD) : ic_items_len(r, 0, n, item_field, NULL);
  b_reserve(b, b->n + len + 1);
  uint8_t *e = cols_field ? ic_cols_put(b->p + b->n, cols_field, r, 0, n, NULL, NULL)
                          : ic_items_put(b->p + b->n, r, 0, n, item_field, NULL);
  IB_CHECK((size_t)(e - (b->p + b->n)) == len);
  b->n += len;
}

#define NCORPUS 24

typedef struct corpus {
  bytes m[NCORPUS];
  int n;
} corpus;

static void corpus_free(corpus *c) {
  for (int i = 0; i < c->n; i++) b_free(&c->m[i]);
  c->n = 0;
}

/* InsertRequests of every form the shard accepts. */
static void corpus_insert(fz *z, corpus *c) {
  ic_rows r;
  rows_alloc(&r, 8);
  memset(c, 0, sizeof *c);
  for (int k = 0; k < NCORPUS; k++) {
    bytes *b = &c->m[c->n++];
    size_t n = 1 + below(z, 4);
    rows_random(z, &r, n, 1);
    if (k % 8 == 7) { /* float runs longer than ibrl.options allows (obs 512, action 128) */
      static float big[600];
      uint8_t tmp[16], *q;
      bytes body = {0};
      q = ic_put_varint(tmp, 1u << 3 | 2), q = ic_put_varint(q, sizeof big);
      b_insert(&body, body.n, tmp, (size_t)(q - tmp)), b_insert(&body, body.n, (const uint8_t *)big, sizeof big);
      q = ic_put_varint(tmp, 2u << 3 | 2), q = ic_put_varint(q, 130 * 4);
      b_insert(&body, body.n, tmp, (size_t)(q - tmp)), b_insert(&body, body.n, (const uint8_t *)big, 130 * 4);
      q = ic_put_varint(tmp, 5u << 3 | 2), q = ic_put_varint(q, sizeof big);
      b_insert(&body, body.n, tmp, (size_t)(q - tmp)), b_insert(&body, body.n, (const uint8_t *)big, sizeof big);
      q = ic_put_varint(tmp, IC_INSERT_ITEMS << 3 | 2), q = ic_put_varint(q, body.n);
      b_insert(b, b->n, tmp, (size_t)(q - tmp)), b_insert(b, b->n, body.p, body.n);
      b_free(&body);
      continue;
    }
    switch (k % 6) {
      case 0: put_table(z, b), put_rows(b, &r, n, IC_INSERT_ITEMS, 0); break;
      case 1: put_table(z, b), put_rows(b, &r, n - 1 + below(z, 2), 0, IC_INSERT_COLUMNS); break;
      case 2: nanopb_insert(b, &r, n); break;
      case 3:
        put_table(z, b);
        for (size_t i = 0; i < n; i++) odd_item(z, b, &r, i);
        break;
      case 4: put_rows(b, &r, n, IC_INSERT_ITEMS, 0), put_rows(b, &r, n, 0, IC_INSERT_COLUMNS), put_table(z, b); break;
      default: { /* columns then items, and an unknown top-level field */
        uint8_t tmp[32];
        put_rows(b, &r, n, 0, IC_INSERT_COLUMNS);
        b_insert(b, b->n, tmp, (size_t)(ic_put_varint_field(tmp, 77, 5) - tmp));
        put_rows(b, &r, 1, IC_INSERT_ITEMS, 0);
      }
    }
  }
  rows_free(&r);
}

/* ---- the shard's insert decoder (rsrv_insert.c: rins_decode), with the checks of this test ---- */

/* One decoder, as a shard holds it: its slot, and the accepted rows copied out of its store_items. */
typedef struct iw {
  rins_slot slot; /* owned: the shard's decode state, bound IW_MAX rows of OD x AD */
  ic_rows rows;   /* owned [IW_MAX]: the accepted rows, read through the store_items */
} iw;

typedef struct iw_res {
  int rc;        /* rins_decode's status */
  size_t n;      /* rows accepted (rc == IB_OK) */
  rpc_reply rep; /* the refusal (rc != IB_OK) */
  char table[STORE_NAME_MAX];
} iw_res;

static void iw_init(iw *w) {
  memset(w, 0, sizeof *w);
  rins_slot_init(&w->slot, OD, AD, IW_MAX);
  rows_alloc(&w->rows, IW_MAX);
}

static void iw_free(iw *w) {
  rins_slot_free(&w->slot);
  rows_free(&w->rows);
}

static int floats_ok(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* Copies store_item `it` into row i of r, as the store reads it (float arrays may be unaligned). */
static void item_to_row(ic_rows *r, size_t i, const store_item *it) {
  memcpy(r->obs + i * OD, it->obs, OD * 4);
  memcpy(r->action + i * AD, it->action, AD * 4);
  memcpy(r->next_obs + i * OD, it->next_obs, OD * 4);
  r->reward[i] = it->reward, r->discount[i] = it->discount;
  r->proposer[i] = (uint8_t)(it->proposer > 255 ? 255 : it->proposer);
  r->actor_id[i] = it->actor_id, r->seq[i] = it->seq, r->weight_version[i] = it->weight_version;
  r->episode_end[i] = it->episode_end, r->episode_success[i] = it->episode_success;
}

/* 1 if the float array p[0..d) of item i lies where rins_decode may point it: in place in one
 * slice of the message, in the slot's straddle scratch, or at row i of the slot's own column. */
static int item_floats_inside(const grpc_byte_buffer *bb, const rins_slot *s, const float *p, size_t d,
                              const float *col, size_t i) {
  return p == col + i * d || inside(bb, (const uint8_t *)p, d * 4, s->flat.p, s->flat.p + s->flat.cap);
}

/* Runs the shard's decoder on bb and checks what its caller (rsrv_data.c, then the store) is promised. */
static void iw_decode(fz *z, iw *w, const grpc_byte_buffer *bb, iw_res *o) {
  memset(o, 0, sizeof *o);
  size_t n = 12345;
  o->rc = rins_decode(&w->slot, bb, o->table, sizeof o->table, &n, &o->rep);
  if (o->rc != IB_OK) {
    const char *m = o->rep.msg;
    FZ_CHECK(z, o->rc == IB_EPROTO || o->rc == IB_EMISMATCH || o->rc == IB_ENONFINITE, "rins_decode returned %d (%s)",
             o->rc, m);
    FZ_CHECK(z, o->rep.status == GRPC_STATUS_INVALID_ARGUMENT && strncmp(m, "Insert", 6) == 0 &&
                    strstr(m, "HINT") != NULL,
             "a refusal must be INVALID_ARGUMENT naming the Insert message with a HINT: status %d, '%s'",
             (int)o->rep.status, m);
    /* The refused thing is named: the non-finite value, or the field whose dims differ. */
    FZ_CHECK(z, o->rc != IB_ENONFINITE || (strstr(m, "is not finite") != NULL &&
                                           (strstr(m, "] = nan ") || strstr(m, "] = -nan ") ||
                                            strstr(m, "] = inf ") || strstr(m, "] = -inf "))),
             "IB_ENONFINITE does not name a non-finite value: '%s'", m);
    FZ_CHECK(z, o->rc != IB_EMISMATCH || strstr(m, "obs has ") || strstr(m, "action has ") ||
                    (strncmp(m, "InsertRequest.columns.", 22) == 0 && m[22] != ':' && m[22] != '\0'),
             "IB_EMISMATCH does not name the field: '%s'", m);
    return;
  }
  FZ_CHECK(z, o->rep.status == GRPC_STATUS_OK, "rins_decode accepted but set the status to %d", (int)o->rep.status);
  FZ_CHECK(z, n <= IW_MAX, "rins_decode accepted %zu rows, the bound is %d", n, IW_MAX);
  FZ_CHECK(z, strlen(o->table) < sizeof o->table, "the table name is not terminated");
  if (n > IW_MAX) return;
  o->n = n;
  /* What the store is promised by store_insert_prechecked: the shard's dims, finite floats, and
   * arrays that lie in the message, the scratch, or the slot's own row. */
  const rins_slot *s = &w->slot;
  for (size_t i = 0; i < n; i++) {
    const store_item *it = &s->items[i];
    FZ_CHECK(z, it->obs_n == OD && it->next_obs_n == OD && it->act_n == AD, "row %zu has dims %u/%u/%u", i, it->obs_n,
             it->next_obs_n, it->act_n);
    int in = item_floats_inside(bb, s, it->obs, OD, s->rows.obs, i) &&
             item_floats_inside(bb, s, it->next_obs, OD, s->rows.next_obs, i) &&
             item_floats_inside(bb, s, it->action, AD, s->rows.action, i);
    FZ_CHECK(z, in, "row %zu: a float array points outside the message, the scratch and the slot's row", i);
    if (!in) return;
    /* A row copied into the slot (columns, unusual items) has the flags its column says: 0 or 1. */
    if (it->obs == s->rows.obs + i * OD)
      FZ_CHECK(z, s->rows.episode_end[i] <= 1 && s->rows.episode_success[i] <= 1, "row %zu: flags %u/%u in the slot", i,
               s->rows.episode_end[i], s->rows.episode_success[i]);
    item_to_row(&w->rows, i, it);
  }
  const ic_rows *r = &w->rows;
  for (size_t i = 0; i < n; i++) {
    int ok = floats_ok(r->obs + i * OD, OD) && floats_ok(r->next_obs + i * OD, OD) && floats_ok(r->action + i * AD, AD) &&
             isfinite(r->reward[i]) && isfinite(r->discount[i]);
    FZ_CHECK(z, ok, "accepted row %zu has a non-finite float", i);
    if (!ok) break;
  }
}

/* Store item `it` holds row i of r, field by field (floats bit for bit). */
static int item_eq(const store_item *it, const ic_rows *r, size_t i) {
  return it->obs_n == OD && it->next_obs_n == OD && it->act_n == AD && memcmp(it->obs, r->obs + i * OD, OD * 4) == 0 &&
         memcmp(it->action, r->action + i * AD, AD * 4) == 0 &&
         memcmp(it->next_obs, r->next_obs + i * OD, OD * 4) == 0 && memcmp(&it->reward, &r->reward[i], 4) == 0 &&
         memcmp(&it->discount, &r->discount[i], 4) == 0 && it->proposer == r->proposer[i] &&
         it->actor_id == r->actor_id[i] && it->seq == r->seq[i] && it->weight_version == r->weight_version[i] &&
         it->episode_end == (r->episode_end[i] != 0) && it->episode_success == (r->episode_success[i] != 0);
}

/* Two results of the same bytes must agree: the status, the message, and the rows bit for bit. */
static void iw_same(fz *z, const iw_res *a, const iw *wa, const iw_res *b, const iw *wb, const char *how) {
  FZ_CHECK(z, a->rc == b->rc && a->rep.status == b->rep.status && strcmp(a->rep.msg, b->rep.msg) == 0,
           "one slice: %d '%s'; %s: %d '%s'", a->rc, a->rep.msg, how, b->rc, b->rep.msg);
  if (a->rc != IB_OK || b->rc != IB_OK) return;
  FZ_CHECK(z, a->n == b->n && strcmp(a->table, b->table) == 0, "one slice: %zu rows table '%s'; %s: %zu rows table '%s'",
           a->n, a->table, how, b->n, b->table);
  for (size_t i = 0; i < a->n && i < b->n; i++)
    if (!row_eq(&wa->rows, i, &wb->rows, i, 1)) {
      FZ_CHECK(z, 0, "row %zu differs between one slice and %s", i, how);
      break;
    }
}

/* The top-level fields of a contiguous InsertRequest, read by this test (the hand codec's key
 * rules: field numbers 1 .. 2^32 - 1): *cols = 1 if a columns field (3) is among them; each
 * Item body (field 2, length-delimited) goes to item_fn. Stops at the first malformed field. */
static void scan_insert(const bytes *b, int *cols, void (*item_fn)(void *, const uint8_t *, size_t), void *arg) {
  size_t at = 0;
  *cols = 0;
  while (at < b->n) {
    uint64_t key, v;
    if (rd_varint(b->p, &at, b->n, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return;
    if ((key >> 3) == IC_INSERT_COLUMNS) *cols = 1;
    switch (key & 7) {
      case 0:
        if (rd_varint(b->p, &at, b->n, &v)) return;
        break;
      case 1:
      case 5:
        if (b->n - at < ((key & 7) == 1 ? 8u : 4u)) return;
        at += (key & 7) == 1 ? 8 : 4;
        break;
      case 2:
        if (rd_varint(b->p, &at, b->n, &v) || v > b->n - at) return;
        if ((key >> 3) == IC_INSERT_ITEMS && item_fn != NULL) item_fn(arg, b->p + at, (size_t)v);
        at += (size_t)v;
        break;
      default: return;
    }
  }
}

/* The codec under the decoder: an Item body that ic_item_view accepts is read to the same values
 * by ic_item_parse, its float fields point inside the body, and one the view refuses (other than
 * IC_ENOVIEW) is not accepted by the parser. */
typedef struct view_check {
  fz *z;
  ic_rows one, two; /* owned [1] */
  size_t items;
} view_check;

static void view_vs_parse(void *arg, const uint8_t *body, size_t len) {
  view_check *c = arg;
  fz *z = c->z;
  size_t i = c->items++;
  ic_error ie, pe;
  ic_item_ref ref;
  int e = ic_item_view(&ref, body, len, OD, AD, 1, &ie);
  int pr = ic_item_parse(&c->one, 0, body, len, 1, &pe);
  if (e == IC_OK) {
    const uint8_t *lo = body, *hi = body + len;
    FZ_CHECK(z, (const uint8_t *)ref.obs >= lo && (const uint8_t *)(ref.obs + OD) <= hi &&
                    (const uint8_t *)ref.next_obs >= lo && (const uint8_t *)(ref.next_obs + OD) <= hi &&
                    (const uint8_t *)ref.action >= lo && (const uint8_t *)(ref.action + AD) <= hi,
             "item %zu: ic_item_view: a float field points outside the item body", i);
    FZ_CHECK(z, pr == IC_OK, "item %zu: ic_item_view accepts it, ic_item_parse returns %d (field '%s')", i, pr,
             pe.field);
    if (pr != IC_OK) return;
    store_item it = {.obs = ref.obs, .action = ref.action, .next_obs = ref.next_obs, .reward = ref.reward,
                     .discount = ref.discount, .proposer = ref.proposer, .actor_id = ref.actor_id, .seq = ref.seq,
                     .weight_version = ref.weight_version, .episode_end = ref.episode_end,
                     .episode_success = ref.episode_success};
    item_to_row(&c->two, 0, &it);
    FZ_CHECK(z, row_eq(&c->two, 0, &c->one, 0, 1), "item %zu: ic_item_view and ic_item_parse read different values", i);
  } else if (e != IC_ENOVIEW) {
    FZ_CHECK(z, pr != IC_OK, "item %zu: ic_item_view refuses it (%d, field '%s'), ic_item_parse accepts it", i, e,
             ie.field);
  }
}

/* nanopb's reading of an InsertRequest of items (the reference decoder). */
typedef struct nb_sink {
  ic_rows *rows;
  int dims_ok;
  int bounds_ok; /* every count within its ibrl_Item array (ibrl.options max_count) */
} nb_sink;

static int nb_put(void *arg, size_t i, const ibrl_Item *it) {
  nb_sink *s = arg;
  if (it->obs_count > IB_ARRAY_LEN(it->obs) || it->next_obs_count > IB_ARRAY_LEN(it->next_obs) ||
      it->action_count > IB_ARRAY_LEN(it->action))
    s->bounds_ok = 0;
  if (it->obs_count != OD || it->next_obs_count != OD || it->action_count != AD) {
    s->dims_ok = 0;
    return 0;
  }
  ic_rows *r = s->rows;
  memcpy(r->obs + i * OD, it->obs, OD * 4);
  memcpy(r->next_obs + i * OD, it->next_obs, OD * 4);
  memcpy(r->action + i * AD, it->action, AD * 4);
  r->reward[i] = it->reward, r->discount[i] = it->discount, r->proposer[i] = 0;
  r->actor_id[i] = it->actor_id, r->seq[i] = it->seq, r->weight_version[i] = it->weight_version;
  r->episode_end[i] = it->episode_end, r->episode_success[i] = it->episode_success;
  return 0;
}

static void nanopb_agrees(fz *z, const grpc_byte_buffer *bb, const iw_res *res, const iw *w, ic_rows *scratch_rows,
                          ibrl_Item *scratch) {
  ibrl_InsertRequest req = ibrl_InsertRequest_init_zero;
  nb_sink s = {scratch_rows, 1, 1};
  wire_items_sink sink = {nb_put, &s, scratch, IW_MAX, 0};
  wire_items_set_sink(&req.items, &sink);
  int rc = wire_decode(&req, ibrl_InsertRequest_fields, bb, "InsertRequest");
  /* wire.c's own Item decoder (item_read), whatever the hand codec said: bounded and clean. */
  FZ_CHECK(z, s.bounds_ok, "nanopb (wire.c item_read) decoded an item past its array bounds");
  FZ_CHECK(z, rc == IB_OK || (strstr(ib_errmsg(), "InsertRequest") == ib_errmsg() && strstr(ib_errmsg(), "HINT")),
           "nanopb refused with the message '%s'", ib_errmsg());
  if (res->rc != IB_OK) return;
  /* A 10-byte varint with bits above the 64th: the hand codec keeps the low 64 bits (as upb
   * does), nanopb refuses it; not a disagreement about a valid message. */
  if (rc != IB_OK && strstr(ib_errmsg(), "(varint overflow)") != NULL) return;
  FZ_CHECK(z, rc == IB_OK, "the hand codec accepts %zu items, nanopb refuses: %s", res->n, ib_errmsg());
  if (rc != IB_OK) return;
  FZ_CHECK(z, sink.n == res->n && s.dims_ok && strcmp(req.table, res->table) == 0,
           "hand codec: %zu items table '%s'; nanopb: %zu items table '%s'%s", res->n, res->table, sink.n, req.table,
           s.dims_ok ? "" : " (other dims)");
  if (sink.n != res->n || !s.dims_ok) return;
  for (size_t i = 0; i < res->n; i++)
    if (!row_eq(&w->rows, i, scratch_rows, i, 0)) {
      FZ_CHECK(z, 0, "item %zu: the hand codec and nanopb read different values", i);
      break;
    }
}

/* ---- cases ---- */

static void hexdump_note(const bytes *b) {
  size_t show = th_env_u64("IB_FUZZ_DUMP", 0) ? b->n : 96; /* IB_FUZZ_DUMP=1: every byte */
  printf("    message (%zu bytes):", b->n);
  for (size_t i = 0; i < b->n && i < show; i++) printf(" %02x", b->p[i]);
  printf("%s\n", b->n > show ? " ..." : "");
}

/* Keys inside an item whose field number is not a protobuf field number (0, or above 2^29 - 1:
 * here 2^32 + 1, whose low 32 bits name obs) are malformed, not another name for a field. */
static void test_item_keys(void) {
  ic_rows r, one;
  rows_alloc(&r, 1), rows_alloc(&one, 1);
  fz z = {.seed = 1};
  fz_start(&z, "item-keys", 0);
  rows_random(&z, &r, 1, 1);
  static const uint64_t bad_keys[] = {(1ull << 35) | 0x0a, 0x02 /* field 0, wire type 2 */,
                                      (uint64_t)0x20000000 << 3 | 2};
  for (size_t k = 0; k < IB_ARRAY_LEN(bad_keys); k++) {
    uint8_t body[512], *p = body;
    p = ic_put_varint(p, bad_keys[k]); /* an extra "obs" run of 6 floats under the bad key */
    p = ic_put_varint(p, OD * 4);
    memcpy(p, r.obs, OD * 4), p += OD * 4;
    p = ic_put_bytes_field(p, 1, r.obs, OD * 4);
    p = ic_put_bytes_field(p, 2, r.action, AD * 4);
    p = ic_put_bytes_field(p, 5, r.next_obs, OD * 4);
    ic_error e;
    ic_item_ref v;
    int rv = ic_item_view(&v, body, (size_t)(p - body), OD, AD, 1, &e);
    int rp = ic_item_parse(&one, 0, body, (size_t)(p - body), 1, &e);
    TH_CHECK_MSG(rv == IC_EMALFORMED && rp == IC_EMALFORMED,
                 "an item with key 0x%llx: ic_item_view %d, ic_item_parse %d (IC_EMALFORMED = %d expected)",
                 (unsigned long long)bad_keys[k], rv, rp, IC_EMALFORMED);
  }
  rows_free(&r), rows_free(&one);
}

static void test_fuzz_insert(void) {
  fz z = {.seed = fz_seed()};
  fz_start(&z, "insert-corpus", 0);
  corpus c;
  corpus_insert(&z, &c);
  iw w1, w2;
  iw_init(&w1), iw_init(&w2);
  ic_rows nrows;
  rows_alloc(&nrows, IW_MAX);
  ibrl_Item *scratch = ib_xcalloc(1, sizeof *scratch);
  view_check vc = {.z = &z};
  rows_alloc(&vc.one, 1), rows_alloc(&vc.two, 1);
  bytes b = {0};
  long iters = fz_iters(400000), from = fz_from(), ok = 0, refused = 0, nanopb_cmp = 0;
  for (long it = from; it < from + iters; it++) {
    fz_start(&z, "insert", it);
    const bytes *src = &c.m[below(&z, (uint32_t)c.n)];
    b_set(&b, src->p, src->n);
    if (below(&z, 16) != 0) mutate(&z, &b, &c.m[below(&z, (uint32_t)c.n)]);
    int before = th_failures();
    grpc_byte_buffer *one = fz_buffer(&z, b.p, b.n, 0), *cut = fz_buffer(&z, b.p, b.n, fz_mode(&z, b.n));
    iw_res r1, r2;
    iw_decode(&z, &w1, one, &r1);
    iw_decode(&z, &w2, cut, &r2);
    iw_same(&z, &r1, &w1, &r2, &w2, "random slices");
    int cols;
    vc.items = 0;
    scan_insert(&b, &cols, view_vs_parse, &vc);
    if (r1.rc == IB_OK) {
      ok++;
      if (!cols) nanopb_cmp++;
    } else {
      refused++;
    }
    if (!cols) nanopb_agrees(&z, one, &r1, &w1, &nrows, scratch);
    grpc_byte_buffer_destroy(one);
    grpc_byte_buffer_destroy(cut);
    if (th_failures() != before && z.failures <= MAX_REPORTS) hexdump_note(&b);
    if (z.failures > 50) break;
  }
  printf("    insert: %ld iterations (seed %llu) through rins_decode: %ld accepted (%ld compared with nanopb), "
         "%ld refused\n", iters, (unsigned long long)z.seed, ok, nanopb_cmp, refused);
  fz_end(&z);
  TH_CHECK(iters < 100 || (ok > iters / 20 && refused > iters / 20)); /* both sides of the decoder were reached */
  b_free(&b);
  free(scratch);
  rows_free(&nrows), rows_free(&vc.one), rows_free(&vc.two);
  iw_free(&w1), iw_free(&w2);
  corpus_free(&c);
}

/* Encodes rows [0, n) of r (dims r->obs_dim x r->act_dim) as an InsertRequest of items or of
 * columns, after an optional table field; no check (a planted NaN goes out as it is). */
static void put_request(fz *z, bytes *e, const ic_rows *r, size_t n, int cols) {
  e->n = 0;
  put_table(z, e);
  size_t head = e->n, len = cols ? ic_cols_len(IC_INSERT_COLUMNS, n, r->obs_dim, r->act_dim)
                                 : ic_items_len(r, 0, n, IC_INSERT_ITEMS, NULL);
  b_reserve(e, head + len + 1);
  uint8_t *end = cols ? ic_cols_put(e->p + head, IC_INSERT_COLUMNS, r, 0, n, NULL, NULL)
                      : ic_items_put(e->p + head, r, 0, n, IC_INSERT_ITEMS, NULL);
  IB_CHECK((size_t)(end - e->p) == head + len);
  e->n = head + len;
}

/* Where the last top-level field of a contiguous message starts (0 if it has none). */
static size_t last_field_at(const bytes *b) {
  size_t at = 0, last = 0;
  while (at < b->n) {
    uint64_t key, v;
    last = at;
    if (rd_varint(b->p, &at, b->n, &key) || (key & 7) != 2 || rd_varint(b->p, &at, b->n, &v) || v > b->n - at) break;
    at += (size_t)v;
  }
  return last;
}

/* Defects the generator plants and knows: each must be refused by the shard's decoder with the
 * status saying what, and a message naming the row and field; valid rows around them are not
 * enough to let the message through. */
static void test_insert_planted(void) {
  fz z = {.seed = fz_seed()};
  iw w;
  iw_init(&w);
  enum { BIG = IW_MAX + 3 };
  ic_rows src, other;
  rows_alloc(&src, BIG);
  bytes e = {0};
  long iters = fz_iters(9000) / 3 + 1, from = fz_from(), by_kind[6] = {0}, done = 0;
  static const char *const kinds_name[] = {"NaN/Inf", "other obs_dim", "other act_dim", "too many rows",
                                           "cut inside the last field", "rows field key with a wrong wire type"};
  for (long it = from; it < from + iters; it++) {
    fz_start(&z, "insert-planted", it);
    int kind = (int)below(&z, 6), cols = (int)below(&z, 2);
    size_t n = kind == 3 ? IW_MAX + 1 + below(&z, 3) : 1 + below(&z, 40);
    int want = kind == 0 ? IB_ENONFINITE : kind <= 2 ? IB_EMISMATCH : IB_EPROTO;
    const char *need = NULL;
    char needbuf[96];
    if (kind == 1 || kind == 2) { /* the actor's dims differ from the shard's by one either way */
      memset(&other, 0, sizeof other);
      int od = kind == 1 ? (below(&z, 2) ? OD + 1 : OD - 1) : OD;
      int ad = kind == 2 ? (below(&z, 2) ? AD + 1 : AD - 1) : AD;
      other.obs_dim = od, other.act_dim = ad;
      other.obs = ib_xcalloc(n * (size_t)od, 4), other.next_obs = ib_xcalloc(n * (size_t)od, 4);
      other.action = ib_xcalloc(n * (size_t)ad, 4), other.reward = ib_xcalloc(n, 4), other.discount = ib_xcalloc(n, 4);
      other.proposer = ib_xcalloc(n, 1), other.episode_end = ib_xcalloc(n, 1), other.episode_success = ib_xcalloc(n, 1);
      other.actor_id = ib_xcalloc(n, 4), other.seq = ib_xcalloc(n, 8), other.weight_version = ib_xcalloc(n, 8);
      for (size_t i = 0; i < n * (size_t)od; i++) other.obs[i] = rng_normal(&z.r), other.next_obs[i] = rng_normal(&z.r);
      for (size_t i = 0; i < n * (size_t)ad; i++) other.action[i] = rng_normal(&z.r);
      put_request(&z, &e, &other, n, cols);
      rows_free(&other);
      need = cols ? (kind == 1 ? "InsertRequest.columns.obs: " : "InsertRequest.columns.action: ")
                  : (kind == 1 ? "Insert item 0: obs has " : "Insert item 0: action has ");
    } else {
      rows_random(&z, &src, n, 0);
      if (kind == 0) { /* one non-finite value in one float field of one row */
        static const uint32_t bad[] = {0x7fc00000u, 0xffc00000u, 0x7f800000u, 0xff800000u, 0x7f800001u};
        static const char *const fname[] = {"obs", "action", "next_obs", "reward", "discount"};
        size_t row = below(&z, (uint32_t)n);
        int f = (int)below(&z, 5);
        size_t d = f == 1 ? AD : f == 3 || f == 4 ? 1 : OD, k = below(&z, (uint32_t)d);
        float *x = f == 0 ? src.obs + row * OD : f == 1 ? src.action + row * AD : f == 2 ? src.next_obs + row * OD
                 : f == 3 ? &src.reward[row] : &src.discount[row];
        uint32_t u = bad[below(&z, IB_ARRAY_LEN(bad))];
        memcpy(&x[k], &u, 4);
        if (cols)
          snprintf(needbuf, sizeof needbuf, "Insert item %zu (columns row %zu): %s[%zu] = ", row, row, fname[f], k);
        else
          snprintf(needbuf, sizeof needbuf, "Insert item %zu: %s[%zu] = ", row, fname[f], k);
        need = needbuf;
      }
      put_request(&z, &e, &src, n, cols);
      if (kind == 3) need = "split the batch";
      if (kind == 4) { /* cut strictly inside the last field: a truncated field, never a shorter message */
        size_t at = last_field_at(&e);
        e.n = at + 1 + below(&z, (uint32_t)(e.n - at - 1));
        need = "malformed";
      }
      if (kind == 5) { /* the first rows field's key says varint or fixed64, not length-delimited */
        size_t at = e.p[0] == (IC_INSERT_TABLE << 3 | 2) ? 2 + (size_t)e.p[1] : 0;
        e.p[at] = (uint8_t)(e.p[at] & ~7u) | (below(&z, 2) ? 0 : 1);
        need = "wrong wire type";
      }
    }
    by_kind[kind]++, done++;
    grpc_byte_buffer *bb = fz_buffer(&z, e.p, e.n, fz_mode(&z, e.n));
    iw_res r;
    iw_decode(&z, &w, bb, &r);
    grpc_byte_buffer_destroy(bb);
    FZ_CHECK(&z, r.rc == want && strstr(r.rep.msg, need) != NULL,
             "%s planted in %zu rows as %s: rins_decode returned %d (%d expected) with '%s' (expected to contain '%s')",
             kinds_name[kind], n, cols ? "columns" : "items", r.rc, want, r.rep.msg, need);
    if (z.failures > 50) break;
  }
  printf("    planted defects: %ld messages (seed %llu): %ld NaN/Inf, %ld other obs_dim, %ld other act_dim, %ld too "
         "many rows, %ld cut, %ld wrong wire type; %d failed checks\n", done, (unsigned long long)z.seed, by_kind[0],
         by_kind[1], by_kind[2], by_kind[3], by_kind[4], by_kind[5], z.failures);
  fz_end(&z);
  b_free(&e);
  rows_free(&src);
  iw_free(&w);
}

/* SampleReply / ReadReply through the client's decoder (rc__decode_sample_reply). */
static void corpus_reply(fz *z, corpus *c) {
  ic_rows r;
  rows_alloc(&r, 8);
  memset(c, 0, sizeof *c);
  for (int k = 0; k < NCORPUS; k++) {
    bytes *b = &c->m[c->n++];
    size_t n = 1 + below(z, 6);
    rows_random(z, &r, n, 0);
    uint8_t tmp[64], *p = tmp;
    if (k % 3 == 0) put_rows(b, &r, n, IC_REPLY_ITEMS, 0);
    else if (k % 3 == 1) put_rows(b, &r, n, 0, IC_REPLY_COLUMNS);
    else put_rows(b, &r, 1, IC_REPLY_ITEMS, 0), put_rows(b, &r, n - 1, 0, IC_REPLY_COLUMNS);
    p = ic_put_varint_field(p, IC_REPLY_N_DEMO, below(z, (uint32_t)n + 1));
    p = ic_put_varint_field(p, IC_REPLY_N_DEMO + 1, n);
    p = ic_put_varint_field(p, k % 2 ? 4 : 7, rng_u64(&z->r)); /* demo_size, or ReadReply.table_size */
    b_insert(b, b->n, tmp, (size_t)(p - tmp));
  }
  rows_free(&r);
}

static void batch_same(fz *z, const rc_batch *a, const rc_batch *b, int rows) {
  size_t o = (size_t)a->obs_dim, d = (size_t)a->act_dim, n = (size_t)rows;
  int same = memcmp(a->obs, b->obs, n * o * 4) == 0 && memcmp(a->next_obs, b->next_obs, n * o * 4) == 0 &&
             memcmp(a->action, b->action, n * d * 4) == 0 && memcmp(a->reward, b->reward, n * 4) == 0 &&
             memcmp(a->discount, b->discount, n * 4) == 0 && memcmp(a->proposer, b->proposer, n) == 0 &&
             memcmp(a->episode_end, b->episode_end, n) == 0 && memcmp(a->episode_success, b->episode_success, n) == 0 &&
             memcmp(a->actor_id, b->actor_id, n * 4) == 0 && memcmp(a->seq, b->seq, n * 8) == 0 &&
             memcmp(a->weight_version, b->weight_version, n * 8) == 0;
  FZ_CHECK(z, same, "the decoded rows differ between one slice and random slices");
}

static void batch_zero(rc_batch *b) {
  size_t c = (size_t)b->cap, o = (size_t)b->obs_dim, d = (size_t)b->act_dim;
  memset(b->obs, 0, c * o * 4), memset(b->next_obs, 0, c * o * 4), memset(b->action, 0, c * d * 4);
  memset(b->reward, 0, c * 4), memset(b->discount, 0, c * 4), memset(b->proposer, 0, c);
  memset(b->episode_end, 0, c), memset(b->episode_success, 0, c), memset(b->actor_id, 0, c * 4);
  memset(b->seq, 0, c * 8), memset(b->weight_version, 0, c * 8);
}

/* 1 if the reply has an items field before a columns field whose n is above LONG_MAX - 1024:
 * what made rc__decode_sample_reply overflow a long before the fix (see test_reply_overflow). */
static int reply_overflows(const bytes *b) {
  size_t at = 0;
  int items = 0;
  while (at < b->n) {
    uint64_t key, v;
    if (rd_varint(b->p, &at, b->n, &key)) return 0;
    int wt = (int)(key & 7);
    if (wt == 0) {
      if (rd_varint(b->p, &at, b->n, &v)) return 0;
    } else if (wt == 1 || wt == 5) {
      at += wt == 1 ? 8 : 4;
    } else if (wt == 2) {
      if (rd_varint(b->p, &at, b->n, &v) || v > b->n - at) return 0;
      if ((key >> 3) == IC_REPLY_ITEMS) items = 1;
      if ((key >> 3) == IC_REPLY_COLUMNS && items) {
        size_t c = at, end = at + (size_t)v;
        while (c < end) {
          uint64_t ck, cv;
          if (rd_varint(b->p, &c, end, &ck)) break;
          if ((ck & 7) == 0) {
            if (rd_varint(b->p, &c, end, &cv)) break;
            if ((ck >> 3) == 1 && cv > (uint64_t)LONG_MAX - 1024) return 1;
          } else if ((ck & 7) == 2) {
            if (rd_varint(b->p, &c, end, &cv) || cv > end - c) break;
            c += (size_t)cv;
          } else {
            break;
          }
        }
      }
      at += (size_t)v;
    } else {
      return 0;
    }
  }
  return 0;
}

/* Found by this fuzzer under UBSan: a SampleReply with one item and then columns claiming
 * n >= 2^63 rows made rc__decode_sample_reply compute (long)n + ie.row with ie.row = LONG_MAX
 * (ic_msg_cols_read saturates the count there) for its "more than asked for" message: signed
 * overflow (common/rpc/replay_rows.c, the IC_ETOOMANY branch; now saturating). */
static void test_reply_overflow(void) {
  ic_rows r;
  rows_alloc(&r, 1);
  bytes b = {0};
  put_rows(&b, &r, 1, IC_REPLY_ITEMS, 0);
  uint8_t cols[32], *p = cols, hdr[16];
  p = ic_put_varint_field(p, 1, UINT64_MAX); /* ItemColumns.n */
  b_insert(&b, b.n, hdr, (size_t)(ic_put_varint(ic_put_varint(hdr, IC_REPLY_COLUMNS << 3 | 2), (uint64_t)(p - cols)) - hdr));
  b_insert(&b, b.n, cols, (size_t)(p - cols));
  TH_CHECK(reply_overflows(&b));
  rc_batch rb;
  rc_batch_init(&rb, 4, OD, AD);
  fz z = {.seed = 1};
  grpc_byte_buffer *bb = fz_buffer(&z, b.p, b.n, 0);
  rc__reply_info info;
  int rc = rc__decode_sample_reply(&rb, 0, 1, 2, 2, bb, &info, "repro");
  TH_CHECK_MSG(rc == IB_EPROTO, "%d: %s", rc, ib_errmsg());
  grpc_byte_buffer_destroy(bb);
  rc_batch_free(&rb);
  b_free(&b);
  rows_free(&r);
}

static void test_fuzz_reply(void) {
  fz z = {.seed = fz_seed()};
  fz_start(&z, "reply-corpus", 0);
  corpus c;
  corpus_reply(&z, &c);
  enum { CAP = 16 };
  rc_batch b1, b2;
  rc_batch_init(&b1, CAP, OD, AD);
  rc_batch_init(&b2, CAP, OD, AD);
  bytes b = {0};
  long iters = fz_iters(300000), from = fz_from(), ok = 0, refused = 0;
  for (long it = from; it < from + iters; it++) {
    fz_start(&z, "reply", it);
    const bytes *src = &c.m[below(&z, (uint32_t)c.n)];
    b_set(&b, src->p, src->n);
    if (below(&z, 16) != 0) mutate(&z, &b, &c.m[below(&z, (uint32_t)c.n)]);
    /* The client asks for max_items rows: demo rows at demo_off.., online rows at online_off.. */
    int max_items = 1 + (int)below(&z, 8), n_demo = (int)below(&z, (uint32_t)max_items + 1);
    int demo_off = (int)below(&z, (uint32_t)(CAP / 2 - n_demo) + 1);
    int online_off = CAP / 2 + (int)below(&z, (uint32_t)(CAP / 2 - (max_items - n_demo)) + 1);
    int before = th_failures();
    grpc_byte_buffer *one = fz_buffer(&z, b.p, b.n, 0), *cut = fz_buffer(&z, b.p, b.n, fz_mode(&z, b.n));
    rc__reply_info i1, i2;
    batch_zero(&b1), batch_zero(&b2);
    int r1 = rc__decode_sample_reply(&b1, demo_off, n_demo, online_off, max_items, one, &i1, "fuzz-reply");
    char m1[256];
    snprintf(m1, sizeof m1, "%s", ib_errmsg());
    int r2 = rc__decode_sample_reply(&b2, demo_off, n_demo, online_off, max_items, cut, &i2, "fuzz-reply");
    FZ_CHECK(&z, r1 == r2, "one slice: %d (%s); random slices: %d (%s)", r1, m1, r2, ib_errmsg());
    if (r1 != IB_OK) {
      refused++;
      FZ_CHECK(&z, r1 == IB_EPROTO || r1 == IB_EMISMATCH, "rc__decode_sample_reply returned %d", r1);
      FZ_CHECK(&z, strncmp(m1, "fuzz-reply", 10) == 0 && strstr(m1, "HINT") != NULL,
               "the refusal does not name the caller or has no HINT: '%s'", m1);
    } else if (r2 == IB_OK) {
      ok++;
      FZ_CHECK(&z, i1.n_items <= max_items && i1.n_items == i2.n_items && i1.n_demo == i2.n_demo &&
                       i1.online_size == i2.online_size && i1.table_size == i2.table_size,
               "reply info differs or is out of bounds: %d items (max %d) vs %d", i1.n_items, max_items, i2.n_items);
      batch_same(&z, &b1, &b2, CAP);
    }
    grpc_byte_buffer_destroy(one);
    grpc_byte_buffer_destroy(cut);
    if (th_failures() != before && z.failures <= MAX_REPORTS) hexdump_note(&b);
    if (z.failures > 50) break;
  }
  printf("    reply: %ld iterations (seed %llu): %ld accepted, %ld refused\n", iters, (unsigned long long)z.seed, ok,
         refused);
  fz_end(&z);
  TH_CHECK(iters < 100 || (ok > iters / 20 && refused > iters / 20));
  b_free(&b);
  rc_batch_free(&b1), rc_batch_free(&b2);
  corpus_free(&c);
}

/* ---- the nanopb requests of the shard's other handlers ---- */

typedef struct req_kind {
  const char *name;
  const pb_msgdesc_t *fields;
  size_t size;
} req_kind;

static const req_kind kinds[] = {
    {"SampleRequest", ibrl_SampleRequest_fields, sizeof(ibrl_SampleRequest)},
    {"ReadRequest", ibrl_ReadRequest_fields, sizeof(ibrl_ReadRequest)},
    {"InfoRequest", ibrl_InfoRequest_fields, sizeof(ibrl_InfoRequest)},
    {"RateLimitRequest", ibrl_RateLimitRequest_fields, sizeof(ibrl_RateLimitRequest)},
    {"CheckpointRequest", ibrl_CheckpointRequest_fields, sizeof(ibrl_CheckpointRequest)},
    {"PublishRequest", ibrl_PublishRequest_fields, sizeof(ibrl_PublishRequest)},
    {"GetIfNewerRequest", ibrl_GetIfNewerRequest_fields, sizeof(ibrl_GetIfNewerRequest)},
    {"HealthCheckRequest", grpc_health_v1_HealthCheckRequest_fields, sizeof(grpc_health_v1_HealthCheckRequest)},
};
#define NKINDS ((int)IB_ARRAY_LEN(kinds))

/* A valid encoding of request kind k with random field values. */
static void request_seed(fz *z, int k, bytes *out) {
  union {
    ibrl_SampleRequest s;
    ibrl_ReadRequest r;
    ibrl_RateLimitRequest l;
    ibrl_PublishRequest p;
    ibrl_GetIfNewerRequest g;
    grpc_health_v1_HealthCheckRequest h;
  } u;
  memset(&u, 0, sizeof u);
  uint8_t blob[40];
  for (size_t i = 0; i < sizeof blob; i++) blob[i] = (uint8_t)rng_u64(&z->r);
  wire_blob_src src = {blob, below(z, sizeof blob)};
  switch (k) {
    case 0:
      u.s.batch_size = below(z, 5000), u.s.has_mix = below(z, 2), u.s.mix.demo_fraction = rng_uniform(&z->r);
      u.s.columns = below(z, 2);
      break;
    case 1:
      snprintf(u.r.table, sizeof u.r.table, "%s", below(z, 2) ? "demo" : "online");
      u.r.start = rng_u64(&z->r); /* one draw per statement: the order must not depend on the compiler */
      u.r.start >>= below(z, 64);
      u.r.count = below(z, 100), u.r.columns = below(z, 2);
      break;
    case 3:
      u.l.op = (ibrl_RateLimitRequest_Op)below(z, 4), u.l.samples_per_insert = rng_normal(&z->r);
      u.l.error_buffer = rng_normal(&z->r), u.l.min_size = rng_u64(&z->r);
      u.l.min_size >>= below(z, 64);
      break;
    case 5: u.p.version = rng_u64(&z->r), wire_blob_set_src(&u.p.blob, &src); break;
    case 6: u.g.version = rng_u64(&z->r), u.g.wait_ms = below(z, 100); break;
    case 7: snprintf(u.h.service, sizeof u.h.service, "%s", below(z, 2) ? "liveness" : ""); break;
    default: break; /* Info, Checkpoint: empty messages */
  }
  grpc_byte_buffer *bb;
  IB_CHECK(wire_encode(&bb, kinds[k].fields, &u) == IB_OK);
  grpc_byte_buffer_reader rd;
  IB_CHECK(grpc_byte_buffer_reader_init(&rd, bb));
  grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
  b_set(out, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
  if (out->n == 0 || below(z, 3) == 0) { /* an unknown field too (what a newer peer may send) */
    uint8_t tmp[16];
    b_insert(out, out->n, tmp, (size_t)(ic_put_varint_field(tmp, 15, rng_u64(&z->r)) - tmp));
  }
  grpc_slice_unref(all);
  grpc_byte_buffer_reader_destroy(&rd);
  grpc_byte_buffer_destroy(bb);
}

/* Decodes as the handler does; *blob_len receives the Publish blob length. */
static int request_decode(int k, const grpc_byte_buffer *bb, void *msg, wire_blob_sink *sink) {
  memset(msg, 0, kinds[k].size);
  memset(sink, 0, sizeof *sink);
  sink->max_len = 32; /* small, so "blob too large" is reached */
  if (k == 5) wire_blob_set_sink(&((ibrl_PublishRequest *)msg)->blob, sink);
  int rc = wire_decode(msg, kinds[k].fields, bb, kinds[k].name);
  if (k == 5) ((ibrl_PublishRequest *)msg)->blob.arg = NULL; /* compare values, not the sink's address */
  return rc;
}

static void test_fuzz_requests(void) {
  fz z = {.seed = fz_seed()};
  corpus c;
  memset(&c, 0, sizeof c);
  fz_start(&z, "requests-corpus", 0);
  for (int i = 0; i < 2 * NKINDS; i++) request_seed(&z, i % NKINDS, &c.m[c.n++]);
  bytes b = {0};
  long iters = fz_iters(400000), from = fz_from(), ok = 0, refused = 0;
  union {
    ibrl_SampleRequest s;
    ibrl_ReadRequest r;
    ibrl_RateLimitRequest l;
    ibrl_PublishRequest p;
    ibrl_GetIfNewerRequest g;
    grpc_health_v1_HealthCheckRequest h;
  } m1, m2;
  for (long it = from; it < from + iters; it++) {
    fz_start(&z, "requests", it);
    int ci = (int)below(&z, (uint32_t)c.n), k = ci % NKINDS;
    b_set(&b, c.m[ci].p, c.m[ci].n);
    if (below(&z, 16) != 0) mutate(&z, &b, &c.m[below(&z, (uint32_t)c.n)]);
    int before = th_failures();
    grpc_byte_buffer *one = fz_buffer(&z, b.p, b.n, 0), *cut = fz_buffer(&z, b.p, b.n, fz_mode(&z, b.n));
    wire_blob_sink s1, s2;
    int r1 = request_decode(k, one, &m1, &s1);
    char e1[512];
    snprintf(e1, sizeof e1, "%s", ib_errmsg());
    int r2 = request_decode(k, cut, &m2, &s2);
    FZ_CHECK(&z, r1 == r2, "%s: one slice %d (%s), random slices %d (%s)", kinds[k].name, r1, e1, r2, ib_errmsg());
    if (r1 == IB_OK && r2 == IB_OK) {
      ok++;
      FZ_CHECK(&z, memcmp(&m1, &m2, kinds[k].size) == 0, "%s: the decoded fields differ with the slicing",
               kinds[k].name);
      FZ_CHECK(&z, s1.len <= s1.max_len && s1.len == s2.len && (s1.len == 0 || memcmp(s1.data, s2.data, s1.len) == 0),
               "%s: blob of %zu bytes (bound %zu) vs %zu", kinds[k].name, s1.len, s1.max_len, s2.len);
    } else if (r1 != IB_OK) {
      refused++;
      FZ_CHECK(&z, r1 == IB_EPROTO && strstr(e1, kinds[k].name) == e1 && strstr(e1, "HINT") != NULL,
               "%s refused with %d and the message '%s' (must name the message and give a HINT)", kinds[k].name, r1, e1);
    }
    free(s1.data), free(s2.data);
    grpc_byte_buffer_destroy(one);
    grpc_byte_buffer_destroy(cut);
    if (th_failures() != before && z.failures <= MAX_REPORTS) hexdump_note(&b);
    if (z.failures > 50) break;
  }
  printf("    requests (%d kinds): %ld iterations (seed %llu): %ld accepted, %ld refused\n", NKINDS, iters,
         (unsigned long long)z.seed, ok, refused);
  fz_end(&z);
  TH_CHECK(iters < 100 || (ok > iters / 20 && refused > iters / 20));
  b_free(&b);
  corpus_free(&c);
}

/* ---- round trip: random valid batches, encode, slice, decode, re-encode: the same bytes ---- */

static void test_roundtrip(void) {
  fz z = {.seed = fz_seed()};
  iw w;
  iw_init(&w);
  ic_rows src;
  rows_alloc(&src, IW_MAX);
  bytes e = {0}, again = {0};
  enum { RCAP = 80 };
  rc_batch rb;
  rc_batch_init(&rb, RCAP, OD, AD);
  long iters = fz_iters(9000) / 3 + 1, from = fz_from(), rows_total = 0;
  for (long it = from; it < from + iters; it++) {
    fz_start(&z, "roundtrip", it);
    size_t n = below(&z, 6) == 0 ? IW_MAX - below(&z, 3) : below(&z, 65);
    rows_random(&z, &src, n, 0);
    int cols = (int)below(&z, 2), checked = (int)below(&z, 2);
    e.n = 0;
    put_table(&z, &e);
    size_t head = e.n;
    size_t len = cols ? ic_cols_len(IC_INSERT_COLUMNS, n, OD, AD) : ic_items_len(&src, 0, n, IC_INSERT_ITEMS, NULL);
    b_reserve(&e, head + len + 1);
    int finite = -1;
    uint8_t *end = cols ? ic_cols_put(e.p + head, IC_INSERT_COLUMNS, &src, 0, n, NULL, checked ? &finite : NULL)
                 : checked ? ic_items_put_check(e.p + head, &src, 0, n, IC_INSERT_ITEMS, NULL, &finite)
                           : ic_items_put(e.p + head, &src, 0, n, IC_INSERT_ITEMS, NULL);
    e.n = (size_t)(end - e.p);
    FZ_CHECK(&z, e.n == head + len, "encoded %zu bytes, the length functions said %zu", e.n - head, len);
    FZ_CHECK(&z, !checked || finite == 1, "the checking encoder calls finite rows non-finite");
    grpc_byte_buffer *bb = fz_buffer(&z, e.p, e.n, below(&z, 4) == 0 && e.n <= 4000 ? 2 : 1);
    iw_res r;
    iw_decode(&z, &w, bb, &r);
    FZ_CHECK(&z, r.rc == IB_OK && r.n == n, "%zu valid rows as %s: rins_decode %d (%s), %zu rows", n,
             cols ? "columns" : "items", r.rc, r.rep.msg, r.n);
    if (r.rc != IB_OK || r.n != n) {
      grpc_byte_buffer_destroy(bb);
      continue;
    }
    /* The store_items the shard hands to the store are the generator's rows, field by field. */
    for (size_t i = 0; i < n; i++)
      if (!item_eq(&w.slot.items[i], &src, i)) {
        FZ_CHECK(&z, 0, "%zu valid rows as %s: store_item %zu differs from the row encoded", n,
                 cols ? "columns" : "items", i);
        break;
      }
    grpc_byte_buffer_destroy(bb);
    rows_total += (long)n;
    again.n = 0;
    b_insert(&again, 0, e.p, head); /* the table field, as decoded */
    FZ_CHECK(&z, head == 0 || strncmp((const char *)e.p + 2, r.table, head - 2) == 0, "the table name came back as '%s'",
             r.table);
    b_reserve(&again, head + len + 1);
    end = cols ? ic_cols_put(again.p + head, IC_INSERT_COLUMNS, &w.rows, 0, n, NULL, NULL)
               : ic_items_put(again.p + head, &w.rows, 0, n, IC_INSERT_ITEMS, NULL);
    again.n = (size_t)(end - again.p);
    FZ_CHECK(&z, again.n == e.n && memcmp(again.p, e.p, e.n) == 0,
             "%zu rows as %s: re-encoding the decoded rows gives other bytes", n, cols ? "columns" : "items");
    /* The same rows as a SampleReply through the client's decoder, demo rows first. */
    if (n <= RCAP / 2) {
      size_t n_demo = below(&z, (uint32_t)n + 1);
      bytes rep = {0};
      put_rows(&rep, &src, n, cols ? 0 : IC_REPLY_ITEMS, cols ? IC_REPLY_COLUMNS : 0);
      grpc_byte_buffer *rbb = fz_buffer(&z, rep.p, rep.n, 1);
      rc__reply_info info;
      int rc = rc__decode_sample_reply(&rb, 0, (int)n_demo, RCAP / 2, (int)n, rbb, &info, "roundtrip");
      FZ_CHECK(&z, rc == IB_OK && info.n_items == (int)n, "SampleReply of %zu rows: %d (%s)", n, rc, ib_errmsg());
      ic_rows got = {OD, AD, rb.obs, rb.action, rb.next_obs, rb.reward, rb.discount, rb.proposer, rb.episode_end,
                     rb.episode_success, rb.actor_id, rb.seq, rb.weight_version};
      for (size_t i = 0; rc == IB_OK && i < n; i++) {
        size_t at = i < n_demo ? i : RCAP / 2 + (i - n_demo);
        if (!row_eq(&src, i, &got, at, 1)) {
          FZ_CHECK(&z, 0, "SampleReply row %zu came back different (row %zu of the batch)", i, at);
          break;
        }
      }
      grpc_byte_buffer_destroy(rbb);
      b_free(&rep);
    }
  }
  printf("    round trip: %ld batches, %ld rows (seed %llu)\n", iters, rows_total, (unsigned long long)z.seed);
  fz_end(&z);
  b_free(&e), b_free(&again);
  rows_free(&src);
  rc_batch_free(&rb);
  iw_free(&w);
}

/* ---- the real shard: mutated messages of every method over 127.0.0.1 ---- */

static const char *const methods[] = {WIRE_PATH_SAMPLE, WIRE_PATH_READ, WIRE_PATH_INFO, WIRE_PATH_RATELIMIT,
                                      WIRE_PATH_CHECKPOINT, WIRE_PATH_PUBLISH, WIRE_PATH_GETIFNEWER,
                                      WIRE_PATH_HEALTH_CHECK};

/* A valid insert (the shard still serves) and an Info call. */
static int shard_serves(rt_client *cl, uint64_t seq) {
  rt_items it = {7, seq, 3, OD, AD, -1, 0, 1};
  char det[256] = "";
  grpc_status_code st = rt_insert(cl, "online", &it, NULL, det, sizeof det, 5000);
  TH_CHECK_MSG(st == GRPC_STATUS_OK, "a valid insert after fuzzed messages: %s (%s)", wire_status_name(st), det);
  ibrl_InfoReply *info = ib_xcalloc(1, sizeof *info);
  grpc_status_code si = rt_info(cl, info, 5000);
  TH_CHECK_MSG(si == GRPC_STATUS_OK, "Info after fuzzed messages: %s", wire_status_name(si));
  free(info);
  return st == GRPC_STATUS_OK && si == GRPC_STATUS_OK;
}

static void test_fuzz_shard(void) {
  grpc_init();
  rsrv_config cfg;
  rsrv_config_default(&cfg);
  cfg.obs_dim = OD, cfg.act_dim = AD;
  cfg.online_capacity = 20000, cfg.demo_capacity = 200000;
  cfg.threads = 2;
  cfg.max_block_ms = 100; /* a fuzzed RateLimit or GetIfNewer may make calls wait: not for long */
  cfg.max_sample_batch = 256;
  rsrv *s = NULL;
  int rc = rsrv_start(&s, &cfg, 0);
  TH_CHECK_MSG(rc == IB_OK, "rsrv_start: %s", ib_errmsg());
  if (rc != IB_OK) {
    grpc_shutdown();
    return;
  }
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", rsrv_port(s));
  rt_client cl;
  rt_client_open(&cl, target, NULL);
  /* Found by this fuzzer: a legal item whose action comes in two packed runs (protobuf parsers
   * must concatenate them) was refused by the shard's in-place view as "action has 2 values". */
  {
    ic_rows r;
    rows_alloc(&r, 1);
    fz z0 = {.seed = 1};
    fz_start(&z0, "two-runs", 0);
    rows_random(&z0, &r, 1, 1);
    uint8_t body[512], *p = body;
    p = ic_put_bytes_field(p, 1, r.obs, OD * 4);
    p = ic_put_bytes_field(p, 2, r.action, 2 * 4);
    p = ic_put_bytes_field(p, 2, r.action + 2, (AD - 2) * 4);
    p = ic_put_bytes_field(p, 5, r.next_obs, OD * 4);
    p = ic_put_varint_field(p, 8, 424242);
    bytes m = {0};
    uint8_t tmp[16];
    b_insert(&m, 0, tmp, (size_t)(ic_put_varint(ic_put_varint(tmp, IC_INSERT_ITEMS << 3 | 2), (uint64_t)(p - body)) - tmp));
    b_insert(&m, m.n, body, (size_t)(p - body));
    grpc_byte_buffer *bb = fz_buffer(&z0, m.p, m.n, 0);
    char det[512] = "";
    grpc_status_code st = rt_call(&cl, WIRE_PATH_INSERT, &bb, 1, NULL, det, sizeof det, 5000);
    TH_CHECK_MSG(st == GRPC_STATUS_OK, "an item with action in two packed runs: %s (%s)", wire_status_name(st), det);
    grpc_byte_buffer_destroy(bb);
    b_free(&m);
    rows_free(&r);
  }
  fz z = {.seed = fz_seed()};
  fz_start(&z, "shard-corpus", 0);
  corpus ins, req;
  corpus_insert(&z, &ins);
  memset(&req, 0, sizeof req);
  for (int i = 0; i < NKINDS; i++) request_seed(&z, i, &req.m[req.n++]);
  bytes b = {0};
  long iters = fz_iters(225000) / 75 + 1, from = fz_from(), by_status[17] = {0};
  for (long it = from; it < from + iters; it++) {
    fz_start(&z, "shard", it);
    int insert = below(&z, 3) != 0, k = (int)below(&z, NKINDS);
    const bytes *src = insert ? &ins.m[below(&z, (uint32_t)ins.n)] : &req.m[k];
    b_set(&b, src->p, src->n);
    mutate(&z, &b, insert ? &ins.m[below(&z, (uint32_t)ins.n)] : &req.m[below(&z, (uint32_t)req.n)]);
    grpc_byte_buffer *msgs[2];
    size_t nm = insert ? 1 + below(&z, 2) : 1;
    msgs[0] = fz_buffer(&z, b.p, b.n, 1);
    if (nm == 2) msgs[1] = fz_buffer(&z, ins.m[0].p, ins.m[0].n, 1); /* a valid message after the bad one */
    char det[512] = "";
    grpc_byte_buffer *resp = NULL;
    const char *path = insert ? WIRE_PATH_INSERT : methods[k];
    grpc_status_code st = rt_call(&cl, path, msgs, nm, &resp, det, sizeof det, 5000);
    if (resp) grpc_byte_buffer_destroy(resp);
    for (size_t i = 0; i < nm; i++) grpc_byte_buffer_destroy(msgs[i]);
    if ((unsigned)st < 17) by_status[st]++;
    /* A fuzzed message is served or refused, with a message; the shard never fails internally. */
    int fine = st == GRPC_STATUS_OK || st == GRPC_STATUS_INVALID_ARGUMENT || st == GRPC_STATUS_FAILED_PRECONDITION ||
               st == GRPC_STATUS_RESOURCE_EXHAUSTED || (!insert && st == GRPC_STATUS_NOT_FOUND) ||
               (!insert && st == GRPC_STATUS_DEADLINE_EXCEEDED);
    FZ_CHECK(&z, fine, "%s: status %s (%s)", path, wire_status_name(st), det);
    FZ_CHECK(&z, st == GRPC_STATUS_OK || strlen(det) > 0, "%s: %s without a message", path, wire_status_name(st));
    FZ_CHECK(&z, st != GRPC_STATUS_INVALID_ARGUMENT || strstr(det, "HINT") != NULL,
             "%s: INVALID_ARGUMENT without a HINT: '%s'", path, det);
    if (!fine) hexdump_note(&b);
    if ((it - from) % 100 == 99 && !shard_serves(&cl, 1000000 + (uint64_t)it * 10)) break;
  }
  shard_serves(&cl, 999);
  printf("    shard: %ld fuzzed calls (seed %llu): OK %ld, INVALID_ARGUMENT %ld, FAILED_PRECONDITION %ld, "
         "RESOURCE_EXHAUSTED %ld, other %ld\n", iters, (unsigned long long)z.seed, by_status[0], by_status[3],
         by_status[9], by_status[8], iters - by_status[0] - by_status[3] - by_status[9] - by_status[8]);
  fz_end(&z);
  b_free(&b);
  corpus_free(&ins), corpus_free(&req);
  rt_client_close(&cl);
  TH_CHECK(rsrv_stop(s) == IB_OK);
  grpc_shutdown();
}

static const th_case cases[] = {
    {"item keys with an invalid field number are malformed", test_item_keys},
    {"fuzz InsertRequest (items, columns, both) through the shard's insert decoder", test_fuzz_insert},
    {"planted NaN/Inf, other dims, too many rows, cut or mistyped fields: refused by the insert decoder",
     test_insert_planted},
    {"fuzz SampleReply/ReadReply through the client's decoder", test_fuzz_reply},
    {"SampleReply columns n >= 2^63 after an item: refused without a signed overflow", test_reply_overflow},
    {"fuzz the nanopb requests of the shard's handlers", test_fuzz_requests},
    {"round trip: random valid batches, sliced, decode and re-encode to the same bytes", test_roundtrip},
    {"fuzzed calls to an in-process shard: refused cleanly, still serving", test_fuzz_shard},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  grpc_init();
  int rc = th_main(argc, argv, cases);
  grpc_shutdown();
  return rc;
}
