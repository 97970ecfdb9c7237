/* store_ckpt_fixture.c: writes the checkpoint in tests/data/store-ckpt-prepad/ (not built by CMake).
 *
 * That checkpoint was written by the store as it was before records carried a copy of their
 * metadata in the pad (commit d29a116): its record pads are zero. test_persist restores it with
 * the current store and checks that sampled rows still carry their metadata (the restore rebuilds
 * the copies from the metadata arrays). Rebuild the fixture only from such an old tree:
 *   git archive d29a116 common replay | tar -x -C /tmp/old
 *   gcc -std=c11 -O1 -D_GNU_SOURCE -I/tmp/old/common -I/tmp/old/replay/store tests/store/store_ckpt_fixture.c \
 *       /tmp/old/replay/store/{store,persist}.c /tmp/old/common/{ib,log,rng}.c -lpthread -lm -o /tmp/fixture
 *   /tmp/fixture tests/data/store-ckpt-prepad
 * The rows are a function of their index (store_ckpt_fixture_row below, repeated in test_persist). */
#include <stdio.h>
#include <string.h>

#include "ib.h"
#include "persist.h"
#include "store.h"

#define FX_OBS 3
#define FX_ACT 2
#define FX_ROWS 40

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: store_ckpt_fixture EMPTY_DIR\n");
    return 2;
  }
  store_spec sp[2];
  store_specs_default(sp, FX_OBS, FX_ACT, 16, 64);
  store *s = NULL;
  IB_CHECK(store_create(&s, sp, 2, NULL) == IB_OK);
  persist *p = NULL;
  persist_restore_info ri;
  if (persist_open(&p, s, argv[1], PERSIST_CKPT_ONLY, &ri) != IB_OK) {
    fprintf(stderr, "store_ckpt_fixture: %s\n", ib_errmsg());
    return 1;
  }
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
  IB_CHECK(store_insert(s, "online", it, FX_ROWS, &r) == IB_OK && r.stored == FX_ROWS);
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
