/* test_nn_io.c: checkpoints: round trips (with and without Adam state, MLP and ensemble), and
 * every refusal: shape, layernorm, head count and kind mismatches, a flipped byte, truncation,
 * a bad magic, a newer version, a missing file, an unwritable folder. A refused load must
 * leave the network unchanged. Files go to a fresh mkdtemp folder that is removed at the end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "nn.h"
#include "nt.h"
#include "th.h"

static char dir[64];

static const char *tmp_path(const char *name) {
  static char p[160];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static nn_mlp_spec spec(int in, int h, int ln) {
  nn_mlp_spec s;
  memset(&s, 0, sizeof s);
  s.in_dim = in;
  s.n_hidden = 2;
  s.hidden[0] = h;
  s.hidden[1] = h;
  s.out_dim = 1;
  s.layernorm = ln;
  s.max_batch = 4;
  return s;
}

/* Two Adam steps so m, v and adam_t are non-trivial. */
static void train_a_bit(nn_mlp *net, rng *r) {
  float x[4 * 16], d[4];
  nt_fill(x, (size_t)4 * net->spec.in_dim, -1, 1, r);
  nt_fill(d, 4, -1, 1, r);
  nn_adam_cfg cfg = nn_adam_defaults(1e-3f);
  for (int s = 0; s < 2; s++) {
    nn_mlp_zero_grad(net);
    nn_mlp_forward(net, NULL, x, 4, 0, NULL);
    nn_mlp_backward(net, NULL, d, 1);
    nn_mlp_adam_step(net, &cfg);
  }
}

static void test_roundtrip(void) {
  nn_mlp_spec s = spec(7, 8, 1);
  rng r1, r2;
  rng_seed(&r1, 1, "test", 0, "a");
  rng_seed(&r2, 2, "test", 0, "b");
  nn_mlp a, b;
  TH_CHECK_EQ_INT(nn_mlp_init(&a, &s, &r1), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_init(&b, &s, &r2), IB_OK);
  train_a_bit(&a, &r1);
  const char *p = tmp_path("a.ibnn");
  TH_CHECK_EQ_INT(nn_mlp_save(&a, p, 1), IB_OK);
  char tmp[200];
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  TH_CHECK_MSG(access(tmp, F_OK) != 0, "the .tmp file must be renamed away");
  TH_CHECK_EQ_INT(nn_mlp_load(&b, p), IB_OK);
  size_t bytes = a.n_params * sizeof(float);
  TH_CHECK(memcmp(a.params, b.params, bytes) == 0);
  TH_CHECK(memcmp(a.adam_m, b.adam_m, bytes) == 0);
  TH_CHECK(memcmp(a.adam_v, b.adam_v, bytes) == 0);
  TH_CHECK_EQ_INT(b.adam_t, 2);
  /* Without Adam state: params load, the moments are reset. */
  TH_CHECK_EQ_INT(nn_mlp_save(&a, p, 0), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_load(&b, p), IB_OK);
  TH_CHECK(memcmp(a.params, b.params, bytes) == 0);
  TH_CHECK_EQ_INT(b.adam_t, 0);
  TH_CHECK(nn_arena_norm(b.adam_m, b.n_params) == 0.0);
  /* A frozen (no_train) net loads params from a file with Adam state, and cannot save any. */
  TH_CHECK_EQ_INT(nn_mlp_save(&a, p, 1), IB_OK);
  nn_mlp_spec fs = s;
  fs.no_train = 1;
  nn_mlp f;
  TH_CHECK_EQ_INT(nn_mlp_init(&f, &fs, NULL), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_load(&f, p), IB_OK);
  TH_CHECK(memcmp(a.params, f.params, bytes) == 0);
  TH_CHECK_EQ_INT(nn_mlp_save(&f, tmp_path("f.ibnn"), 1), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "no_train") != NULL);
  nn_mlp_free(&f);
  nn_mlp_free(&a);
  nn_mlp_free(&b);
}

static void test_ens_roundtrip(void) {
  nn_mlp_spec s = spec(5, 6, 1);
  rng r1;
  rng_seed(&r1, 3, "test", 0, "ens");
  nn_ens a, b, c;
  TH_CHECK_EQ_INT(nn_ens_init(&a, 3, &s, &r1), IB_OK);
  TH_CHECK_EQ_INT(nn_ens_init(&b, 3, &s, NULL), IB_OK);
  TH_CHECK_EQ_INT(nn_ens_init(&c, 2, &s, NULL), IB_OK);
  a.adam_t = 7;
  const char *p = tmp_path("ens.ibnn");
  TH_CHECK_EQ_INT(nn_ens_save(&a, p, 1), IB_OK);
  TH_CHECK_EQ_INT(nn_ens_load(&b, p), IB_OK);
  TH_CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
  TH_CHECK_EQ_INT(b.adam_t, 7);
  TH_CHECK_EQ_INT(nn_ens_load(&c, p), IB_EMISMATCH);
  TH_CHECK_MSG(strstr(ib_errmsg(), "file has 3 heads, network has 2") != NULL, "got: %s", ib_errmsg());
  /* An ensemble file is not an MLP. */
  nn_mlp m;
  TH_CHECK_EQ_INT(nn_mlp_init(&m, &s, NULL), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_load(&m, p), IB_EMISMATCH);
  TH_CHECK_MSG(strstr(ib_errmsg(), "an ensemble") != NULL, "got: %s", ib_errmsg());
  nn_mlp_free(&m);
  nn_ens_free(&a);
  nn_ens_free(&b);
  nn_ens_free(&c);
}

static void test_mismatch(void) {
  rng r;
  rng_seed(&r, 4, "test", 0, "mm");
  nn_mlp_spec s76 = spec(7, 8, 1), s69 = spec(6, 8, 1), sln = spec(7, 8, 0);
  nn_mlp a, b, c;
  TH_CHECK_EQ_INT(nn_mlp_init(&a, &s76, &r), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_init(&b, &s69, &r), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_init(&c, &sln, &r), IB_OK);
  const char *p = tmp_path("mm.ibnn");
  TH_CHECK_EQ_INT(nn_mlp_save(&a, p, 0), IB_OK);
  float *keep = malloc(b.n_params * sizeof(float));
  memcpy(keep, b.params, b.n_params * sizeof(float));
  TH_CHECK_EQ_INT(nn_mlp_load(&b, p), IB_EMISMATCH);
  TH_CHECK_MSG(strstr(ib_errmsg(), "layer 0: file has 8x7, network has 8x6") != NULL, "got: %s", ib_errmsg());
  TH_CHECK(memcmp(keep, b.params, b.n_params * sizeof(float)) == 0);
  TH_CHECK_EQ_INT(nn_mlp_load(&c, p), IB_EMISMATCH);
  TH_CHECK_MSG(strstr(ib_errmsg(), "layernorm") != NULL, "got: %s", ib_errmsg());
  /* Same shapes, different dropout or output activation: also refused, naming the field. */
  nn_mlp_spec sd = s76, sa = s76;
  sd.dropout = 0.5f;
  sa.out_act = NN_ACT_TANH;
  nn_mlp d, t;
  TH_CHECK_EQ_INT(nn_mlp_init(&d, &sd, NULL), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_init(&t, &sa, NULL), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_load(&d, p), IB_EMISMATCH);
  TH_CHECK_MSG(strstr(ib_errmsg(), "dropout") != NULL, "got: %s", ib_errmsg());
  TH_CHECK_EQ_INT(nn_mlp_load(&t, p), IB_EMISMATCH);
  TH_CHECK_MSG(strstr(ib_errmsg(), "output activation") != NULL, "got: %s", ib_errmsg());
  nn_mlp_free(&d);
  nn_mlp_free(&t);
  free(keep);
  nn_mlp_free(&a);
  nn_mlp_free(&b);
  nn_mlp_free(&c);
}

/* Rewrites byte `at` of the file (or truncates it to `at` bytes when trunc is set). */
static void damage(const char *p, long at, int trunc, unsigned char val) {
  if (trunc) {
    TH_CHECK(truncate(p, at) == 0);
    return;
  }
  FILE *f = fopen(p, "r+b");
  TH_CHECK(f != NULL);
  if (!f) return;
  fseek(f, at, SEEK_SET);
  fputc(val, f);
  fclose(f);
}

static void test_corruption(void) {
  nn_mlp_spec s = spec(7, 8, 1);
  rng r;
  rng_seed(&r, 5, "test", 0, "bad");
  nn_mlp a;
  TH_CHECK_EQ_INT(nn_mlp_init(&a, &s, &r), IB_OK);
  const char *p = tmp_path("bad.ibnn");
  float *keep = malloc(a.n_params * sizeof(float));
  memcpy(keep, a.params, a.n_params * sizeof(float));
  struct {
    long at;
    int trunc;
    unsigned char val;
    int want;
    const char *word;
  } cases[] = {
      {200, 0, 0x5a, IB_ECHECKSUM, "CRC"},    /* a payload byte */
      {500, 1, 0, IB_EPROTO, "truncated"},     /* cut short */
      {50, 1, 0, IB_EPROTO, "header"},         /* shorter than the header */
      {0, 0, 'X', IB_EPROTO, "magic"},          /* not our file */
      {4, 0, 9, IB_EPROTO, "version"},          /* a future version */
  };
  for (size_t i = 0; i < IB_ARRAY_LEN(cases); i++) {
    TH_CHECK_EQ_INT(nn_mlp_save(&a, p, 1), IB_OK);
    damage(p, cases[i].at, cases[i].trunc, cases[i].val);
    int rc = nn_mlp_load(&a, p);
    TH_CHECK_EQ_INT(rc, cases[i].want);
    TH_CHECK_MSG(strstr(ib_errmsg(), cases[i].word) != NULL, "case %zu: '%s' should mention %s", i, ib_errmsg(),
                 cases[i].word);
    TH_CHECK(memcmp(keep, a.params, a.n_params * sizeof(float)) == 0);
  }
  /* A diverged net can be saved (for post-mortems) but is refused on load. */
  nn_mlp nan_net;
  TH_CHECK_EQ_INT(nn_mlp_init(&nan_net, &s, NULL), IB_OK);
  nan_net.params[3] = NAN;
  TH_CHECK_EQ_INT(nn_mlp_save(&nan_net, p, 0), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_load(&a, p), IB_ENONFINITE);
  TH_CHECK_MSG(strstr(ib_errmsg(), "parameter 3") != NULL, "got: %s", ib_errmsg());
  TH_CHECK(memcmp(keep, a.params, a.n_params * sizeof(float)) == 0);
  nn_mlp_free(&nan_net);
  TH_CHECK_EQ_INT(nn_mlp_load(&a, tmp_path("missing.ibnn")), IB_EIO);
  TH_CHECK(strstr(ib_errmsg(), "missing.ibnn") != NULL);
  TH_CHECK_EQ_INT(nn_mlp_save(&a, "/nonexistent-dir/x.ibnn", 0), IB_EIO);
  TH_CHECK(strstr(ib_errmsg(), "/nonexistent-dir/x.ibnn") != NULL);
  unlink(p);
  free(keep);
  nn_mlp_free(&a);
}

static void cleanup(void) {
  const char *names[] = {"a.ibnn", "f.ibnn", "ens.ibnn", "mm.ibnn", "bad.ibnn"};
  for (size_t i = 0; i < IB_ARRAY_LEN(names); i++) unlink(tmp_path(names[i]));
  rmdir(dir);
}

static const th_case cases[] = {
    {"mlp round trip", test_roundtrip},
    {"ensemble round trip", test_ens_roundtrip},
    {"shape mismatch", test_mismatch},
    {"corrupt files", test_corruption},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  snprintf(dir, sizeof dir, "/tmp/ib_nn_io_XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  int rc = th_main(argc, argv, cases);
  cleanup();
  return rc;
}
