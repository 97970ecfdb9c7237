/* store_ckpt_fixture.c: writes the old-format checkpoints in tests/data/ that test_persist
 * restores (not built by CMake). It uses only the public store and persist API, so it builds
 * against old trees.
 *
 * store-ckpt-prepad/: that checkpoint was written by the store as it was before records carried a
 * copy of their metadata in the pad (commit d29a116): its record pads are zero. test_persist
 * restores it with the current store and checks that sampled rows still carry their metadata (the
 * restore rebuilds the copies from the metadata arrays). Rebuild the fixture only from such an old
 * tree (this file and store_fixture.h from the current one; the result is byte for byte the file):
 *   git archive d29a116 common replay | tar -x -C /tmp/old
 *   gcc -std=c11 -O1 -D_GNU_SOURCE -I/tmp/old/common -I/tmp/old/replay/store -Itests/store \
 *       tests/store/store_ckpt_fixture.c /tmp/old/replay/store/{store,persist}.c /tmp/old/common/{ib,log,rng}.c \
 *       -lpthread -lm -o /tmp/fixture
 *   /tmp/fixture tests/data/store-ckpt-prepad
 * The rows are a function of their index (repeated in test_persist).
 *
 * store-ckpt-v1/ (the argument "window"): a checkpoint of format 1, whose actors carry dedup
 * windows of 1024 seqs (format 2 has 8192), written by the store of commit 74da721:
 *   git archive 74da721 common replay tests/store | tar -x -C /tmp/v1
 *   gcc -std=c11 -O1 -D_GNU_SOURCE -I/tmp/v1/common -I/tmp/v1/replay/store -I/tmp/v1/tests/store \
 *       tests/store/store_ckpt_fixture.c /tmp/v1/replay/store/{store,persist}.c /tmp/v1/common/{ib,log,rng}.c \
 *       -lpthread -lm -o /tmp/fixture
 *   /tmp/fixture tests/data/store-ckpt-v1 window
 * Its tables are store_fixture.h's (demo 8, online 64, FX_O / FX_A items); actor 7 stored seqs
 * 0..2999 except 2500, one at a time, and actor 9 seqs 0..9. */
#include <stdio.h>
#include <string.h>

#include "ib.h"
#include "persist.h"
#include "store.h"
#include "store_fixture.h"

#define FX_OBS 3
#define FX_ACT 2
#define FX_ROWS 40

/* The store-ckpt-v1 rows: actor 7 seqs 0..2999 but 2500, actor 9 seqs 0..9. */
static void window_rows(store *s) {
  for (uint32_t actor = 7; actor <= 9; actor += 2)
    for (uint64_t q = 0; q < (actor == 7 ? 3000u : 10u); q++) {
      if (actor == 7 && q == 2500) continue;
      fx_item x;
      fx_fill(&x, actor, q, STORE_PROPOSER_RL);
      store_insert_result r;
      IB_CHECK(store_insert(s, "online", &x.it, 1, &r) == IB_OK && r.stored == 1);
    }
}

int main(int argc, char **argv) {
  int window = argc == 3 && strcmp(argv[2], "window") == 0;
  if (argc != 2 && !window) {
    fprintf(stderr, "usage: store_ckpt_fixture EMPTY_DIR [window]\n");
    return 2;
  }
  store_spec sp[2];
  store *s = NULL;
  if (window) {
    s = fx_store(64);
  } else {
    store_specs_default(sp, FX_OBS, FX_ACT, 16, 64);
    IB_CHECK(store_create(&s, sp, 2, NULL) == IB_OK);
  }
  persist *p = NULL;
  persist_restore_info ri;
  if (persist_open(&p, s, argv[1], PERSIST_CKPT_ONLY, &ri) != IB_OK) {
    fprintf(stderr, "store_ckpt_fixture: %s\n", ib_errmsg());
    return 1;
  }
  if (window) window_rows(s);
  float v[FX_ROWS][2 * FX_OBS + FX_ACT];
  store_item it[FX_ROWS];
  for (int i = 0; i < FX_ROWS; i++) {
    for (int j = 0; j < 2 * FX_OBS + FX_ACT; j++) v[i][j] = (float)i + 0.125f * (float)j;
    memset(&it[i], 0, sizeof it[i]);
    it[i].obs = v[i];
    it[i].next_obs = v[i] + FX_OBS;
    it[i].action = v[i] + 2 * FX_OBS;
    it[i].obs_n = it[i].next_obs_n = FX_OBS;
    it[i].act_n = FX_ACT;
    it[i].reward = (float)i;
    it[i].discount = 0.5f;
    it[i].proposer = (uint32_t)(i % 3);
    it[i].actor_id = 7u + (uint32_t)(i % 2);
    it[i].seq = 1000u + (uint64_t)i;
    it[i].weight_version = 5000000000ull + (uint64_t)i;
    it[i].episode_end = i % 5 == 4;
    it[i].episode_success = i % 10 == 9;
  }
  store_insert_result r;
  if (!window) IB_CHECK(store_insert(s, "online", it, FX_ROWS, &r) == IB_OK && r.stored == FX_ROWS);
  persist_ckpt_info ci;
  if (persist_checkpoint(p, &ci) != IB_OK) {
    fprintf(stderr, "store_ckpt_fixture: %s\n", ib_errmsg());
    return 1;
  }
  printf("wrote %s/store.ckpt: %llu items, %llu bytes\n", argv[1], (unsigned long long)ci.items,
         (unsigned long long)ci.bytes);
  persist_close(p);
  store_destroy(s);
  return 0;
}
