/* test_wblob.c (label mpi, one process): the learner's files and wire format.
 *  - the weight blob: pack -> unpack into another agent gives the same acting weights; a
 *    wrong magic, format, length, CRC, dims or method, and NaN weights are each refused with
 *    the named error, leaving the receiving agent unchanged;
 *  - learner.state and learner.cfg: round trip, truncation, corruption, wrong size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "ib.h"
#include "lstate.h"
#include "th.h"
#include "wblob.h"

static int make(agent *a, il_policy *il, int obs, uint64_t seed) {
  agent_config c = agent_config_default(AGENT_IBRL, AGENT_TD3);
  c.obs_dim = obs;
  c.act_dim = 2;
  c.actor_layers = c.critic_layers = 1;
  c.actor_hidden = c.critic_hidden = 16;
  c.max_batch = 8;
  c.seed = seed;
  il_config ic = il_config_default();
  ic.obs_dim = obs;
  ic.act_dim = 2;
  ic.n_layers = 1;
  ic.hidden = 8;
  ic.max_batch = 8;
  ic.seed = seed;
  c.il = ic;
  if (il_init(il, &ic) != IB_OK || agent_init(a, &c) != IB_OK) return -1;
  return agent_il_set(a, il);
}

static void test_blob_roundtrip(void) {
  agent a = {0}, b = {0};
  il_policy ia = {0}, ib = {0};
  TH_CHECK(make(&a, &ia, 5, 1) == IB_OK && make(&b, &ib, 5, 2) == IB_OK);
  size_t n = wblob_size(&a);
  TH_CHECK_EQ_INT(n, WBLOB_HEADER_BYTES + agent_acting_size(&a) * sizeof(float));
  uint8_t *blob = ib_xmalloc(n);
  wblob_pack(blob, &a, 7, 1234);
  TH_CHECK(agent_arena_crc(&a, AGENT_NET_ACTOR) != agent_arena_crc(&b, AGENT_NET_ACTOR));
  wblob_header h;
  TH_CHECK_EQ_INT(wblob_unpack(&b, &h, blob, n), IB_OK);
  TH_CHECK_EQ_INT(h.weight_version, 7);
  TH_CHECK_EQ_INT(h.updates, 1234);
  TH_CHECK_EQ_INT(h.obs_dim, 5);
  TH_CHECK_EQ_INT(agent_arena_crc(&a, AGENT_NET_ACTOR), agent_arena_crc(&b, AGENT_NET_ACTOR));
  TH_CHECK_EQ_INT(agent_arena_crc(&a, AGENT_NET_CRITIC_TARGET), agent_arena_crc(&b, AGENT_NET_CRITIC_TARGET));
  TH_CHECK_EQ_INT(agent_arena_crc(&a, AGENT_NET_IL), agent_arena_crc(&b, AGENT_NET_IL));
  free(blob);
  agent_free(&a), agent_free(&b), il_free(&ia), il_free(&ib);
}

/* Each corruption must be refused with its code and leave the receiver unchanged. */
static void test_blob_refusals(void) {
  agent a = {0}, b = {0}, c5 = {0};
  il_policy ia = {0}, ib = {0}, ic = {0};
  TH_CHECK(make(&a, &ia, 5, 1) == IB_OK && make(&b, &ib, 5, 2) == IB_OK && make(&c5, &ic, 6, 3) == IB_OK);
  size_t n = wblob_size(&a);
  uint8_t *blob = ib_xmalloc(n), *bad = ib_xmalloc(n);
  wblob_pack(blob, &a, 3, 10);
  uint32_t before = agent_arena_crc(&b, AGENT_NET_ACTOR);
  struct {
    const char *what;
    size_t off;
    uint8_t xor_;
    size_t len;
    int want;
    const char *msg;
  } cases[] = {
      {"magic", 0, 0x01, 0, IB_EPROTO, "magic"},
      {"format", 4, 0x02, 0, IB_EPROTO, "format version"},
      {"short", 0, 0, 40, IB_EPROTO, "shorter than"},
      {"truncated payload", 0, 0, 1, IB_EPROTO, "floats but the blob has"},
      {"payload bit", WBLOB_HEADER_BYTES + 9, 0x10, 0, IB_ECHECKSUM, "CRC"},
      {"method", 24, 0x01, 0, IB_EMISMATCH, "method"},
  };
  for (size_t i = 0; i < IB_ARRAY_LEN(cases); i++) {
    memcpy(bad, blob, n);
    bad[cases[i].off] ^= cases[i].xor_;
    size_t len = cases[i].len == 0 ? n : cases[i].len == 1 ? n - 4 : cases[i].len;
    int rc = wblob_unpack(&b, NULL, bad, len);
    TH_CHECK_MSG(rc == cases[i].want, "%s: got %d want %d (%s)", cases[i].what, rc, cases[i].want, ib_errmsg());
    TH_CHECK_MSG(strstr(ib_errmsg(), cases[i].msg) != NULL, "%s: message '%s' lacks '%s'", cases[i].what, ib_errmsg(),
                 cases[i].msg);
    TH_CHECK_MSG(agent_arena_crc(&b, AGENT_NET_ACTOR) == before, "%s: receiver changed", cases[i].what);
  }
  /* Other dims. */
  TH_CHECK_EQ_INT(wblob_unpack(&c5, NULL, blob, n), IB_EMISMATCH);
  TH_CHECK(strstr(ib_errmsg(), "obs_dim 5") != NULL);
  /* NaN weights with a CRC that matches them: refused by the agent, receiver unchanged. */
  a.actor.params[2] = NAN;
  wblob_pack(blob, &a, 4, 11);
  TH_CHECK_EQ_INT(wblob_unpack(&b, NULL, blob, n), IB_ENONFINITE);
  TH_CHECK(agent_arena_crc(&b, AGENT_NET_ACTOR) == before);
  free(blob), free(bad);
  agent_free(&a), agent_free(&b), agent_free(&c5), il_free(&ia), il_free(&ib), il_free(&ic);
}

static void tmp_path(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/test_wblob_%d_%s", IB_BINARY_DIR, (int)getpid(), name);
}

static void test_state_files(void) {
  char p[512];
  tmp_path(p, sizeof p, "learner.state");
  lstate s = {0}, r = {0};
  s.ranks = 3;
  s.updates = 1000;
  s.actor_updates = 500;
  s.weight_version = 11;
  s.samples = 256000;
  s.wall_s = 12.5;
  snprintf(s.agent_file, sizeof s.agent_file, "agent-1000.ckpt");
  s.streams = ib_xcalloc((size_t)s.ranks * LSTATE_STREAMS, sizeof(rng));
  for (int i = 0; i < s.ranks * LSTATE_STREAMS; i++) rng_seed(&s.streams[i], 9, "t", i, "s");
  TH_CHECK_EQ_INT(lstate_save(p, &s), IB_OK);
  TH_CHECK_EQ_INT(lstate_load(&r, p), IB_OK);
  TH_CHECK(r.ranks == 3 && r.updates == 1000 && r.actor_updates == 500 && r.weight_version == 11 && r.samples == 256000 &&
           r.wall_s == 12.5 && strcmp(r.agent_file, "agent-1000.ckpt") == 0);
  TH_CHECK(r.streams && memcmp(r.streams, s.streams, (size_t)s.ranks * LSTATE_STREAMS * sizeof(rng)) == 0);
  lstate_free(&r);
  /* One flipped byte: checksum. */
  FILE *f = fopen(p, "r+b");
  TH_CHECK(f != NULL);
  if (f) {
    fseek(f, 30, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 30, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
  }
  TH_CHECK_EQ_INT(lstate_load(&r, p), IB_ECHECKSUM);
  TH_CHECK(strstr(ib_errmsg(), p) != NULL);
  /* Truncated. */
  TH_CHECK_EQ_INT(lstate_save(p, &s), IB_OK);
  TH_CHECK(truncate(p, 100) == 0);
  TH_CHECK_EQ_INT(lstate_load(&r, p), IB_EPROTO);
  TH_CHECK(strstr(ib_errmsg(), "truncated") != NULL);
  unlink(p);
  /* Missing. */
  TH_CHECK_EQ_INT(lstate_load(&r, p), IB_EIO);
  TH_CHECK(strstr(ib_errmsg(), "HINT") != NULL);
  free(s.streams);

  /* learner.cfg */
  tmp_path(p, sizeof p, "learner.cfg");
  double cfg[7] = {1, 2, 3, 4, 5, 6, 7}, back[7] = {0};
  TH_CHECK_EQ_INT(lstate_cfg_save(p, cfg, sizeof cfg), IB_OK);
  TH_CHECK_EQ_INT(lstate_cfg_load(p, back, sizeof back), IB_OK);
  TH_CHECK(memcmp(cfg, back, sizeof cfg) == 0);
  TH_CHECK_EQ_INT(lstate_cfg_load(p, back, sizeof back - 8), IB_EMISMATCH);
  TH_CHECK(strstr(ib_errmsg(), "build") != NULL);
  unlink(p);
}

static const th_case cases[] = {
    {"weight blob round trip", test_blob_roundtrip},
    {"weight blob refusals", test_blob_refusals},
    {"learner.state and learner.cfg", test_state_files},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
