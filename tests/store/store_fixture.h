/* store_fixture.h: shared helpers of the replay-store tests: items whose every field is a known
 * function of (actor_id, seq), so any sampled or restored row can be checked field by field. */
#ifndef IB_STORE_FIXTURE_H
#define IB_STORE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "ib.h"
#include "store.h"

#define FX_O 5 /* obs_dim: small and odd so stride bugs cannot hide */
#define FX_A 3 /* act_dim */

/* A store of the default two tables for FX_O / FX_A items: demo capacity 8, online `online_cap`,
 * `max_actors` actor slots per table (0: the default, 4,096). Tests that create many stores use
 * few slots: the default's actor tables (about 9 MB each) are zeroed at every store_create and
 * copied at every checkpoint's fork. */
static inline store *fx_store_slots(uint64_t online_cap, uint32_t max_actors) {
  store_spec sp[2];
  store_specs_default(sp, FX_O, FX_A, 8, online_cap);
  store_config cfg = {0};
  cfg.max_actors = max_actors;
  store *s = NULL;
  IB_CHECK(store_create(&s, sp, 2, &cfg) == IB_OK);
  return s;
}

/* The same with the default actor slots. */
static inline store *fx_store(uint64_t online_cap) { return fx_store_slots(online_cap, 0); }

/* One item with its own value storage. */
typedef struct fx_item {
  float obs[FX_O], next_obs[FX_O], action[FX_A];
  store_item it;
} fx_item;

/* The key of (actor, seq); weight_version carries it so a sampled row names its source. */
static inline uint64_t fx_key(uint32_t actor, uint64_t seq) {
  return (uint64_t)actor * 10000u + seq;
}

/* Fills `x` for (actor, seq) with values derived from the key. */
static inline void fx_fill(fx_item *x, uint32_t actor, uint64_t seq, uint32_t proposer) {
  uint64_t key = fx_key(actor, seq);
  for (int j = 0; j < FX_O; j++) {
    x->obs[j] = (float)key + 0.25f * (float)j;
    x->next_obs[j] = -((float)key + 0.25f * (float)j);
  }
  for (int j = 0; j < FX_A; j++) x->action[j] = 0.5f * (float)key + (float)j;
  store_item *it = &x->it;
  it->obs = x->obs;
  it->next_obs = x->next_obs;
  it->action = x->action;
  it->obs_n = it->next_obs_n = FX_O;
  it->act_n = FX_A;
  it->reward = 0.125f * (float)key;
  it->discount = (key % 2) ? 0.99f : 0.0f;
  it->proposer = proposer;
  it->actor_id = actor;
  it->seq = seq;
  it->weight_version = key;
  it->episode_end = (seq % 10) == 9;
  it->episode_success = (seq % 20) == 19;
}

/* Copies the item views of xs[0..n) into out (store_insert takes an array of store_item). */
static inline void fx_views(store_item *out, const fx_item *xs, int n) {
  for (int i = 0; i < n; i++) out[i] = xs[i].it;
}

/* Whether row i of b holds exactly the item of its key (weight_version). */
static inline bool fx_row_ok(const store_batch *b, uint32_t i) {
  uint64_t key = b->weight_version[i];
  uint32_t actor = (uint32_t)(key / 10000u);
  for (int j = 0; j < FX_O; j++) {
    if (b->obs[i * FX_O + j] != (float)key + 0.25f * (float)j) return false;
    if (b->next_obs[i * FX_O + j] != -((float)key + 0.25f * (float)j)) return false;
  }
  for (int j = 0; j < FX_A; j++)
    if (b->action[i * FX_A + j] != 0.5f * (float)key + (float)j) return false;
  if (b->reward[i] != 0.125f * (float)key) return false;
  if (b->discount[i] != ((key % 2) ? 0.99f : 0.0f)) return false;
  return b->actor_id[i] == actor;
}

#endif /* IB_STORE_FIXTURE_H */
