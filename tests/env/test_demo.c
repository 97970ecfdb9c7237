/* test_demo.c: robomimic-style demo files (common/demo/demo.h): the HDF5 round trip, obs-key
 * selection, robomimic-typed files (float64/int64, no creation order), every bad-file error,
 * the transition arithmetic, and agreement with the live chunk runner on nav2d.
 *
 * Bad files are written with the raw HDF5 API here (the library's writer refuses to write them),
 * one defect per file, and each must fail with the right code and a message naming the place. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk.h"
#include "demo.h"
#include "env.h"
#include "ib.h"
#include "th.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
  static char buf[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
  return buf[i];
}

/* ---- a small synthetic set: keys a(2), b(3); act 2; episodes of T = 4, 5, 6 ---- */

#define SYN_OBS 5
#define SYN_ACT 2

static float syn_obs(int ep, int t, int j) { return (float)(100 * ep + 10 * t + j) + 0.25f; }
static float syn_act(int ep, int t, int j) { return (float)((ep + t + j) % 7) / 7.0f - 0.4f; }

static int write_synthetic(const char *path, int n_eps) {
  demo_key keys[2] = {{"a", 2}, {"b", 3}};
  demo_writer *w;
  int rc = demo_writer_open(&w, path, keys, 2, SYN_ACT, "{\"env_name\": \"synthetic\", \"type\": \"ibrl\"}");
  if (rc < 0) return rc;
  for (int ep = 0; ep < n_eps; ep++) {
    int T = 4 + ep % 3;
    float obs[8 * SYN_OBS], act[8 * SYN_ACT], rew[8];
    uint8_t done[8];
    for (int t = 0; t < T; t++) {
      for (int j = 0; j < SYN_OBS; j++) obs[t * SYN_OBS + j] = syn_obs(ep, t, j);
      for (int j = 0; j < SYN_ACT; j++) act[t * SYN_ACT + j] = syn_act(ep, t, j);
      rew[t] = t >= T - 2 ? 1.0f : 0.0f; /* robomimic-like: reward 1 on the last two steps */
      done[t] = t == T - 1;
    }
    if ((rc = demo_writer_add(w, obs, act, rew, done, NULL, T)) < 0) {
      demo_writer_abort(w);
      return rc;
    }
  }
  return demo_writer_close(w);
}

static void test_round_trip(void) {
  const char *p = tmp_path("syn.hdf5");
  TH_CHECK_MSG(write_synthetic(p, 3) == IB_OK, "write: %s", ib_errmsg());
  TH_CHECK_MSG(access(tmp_path("syn.hdf5.tmp"), F_OK) != 0, "the temporary file must be gone after close");
  demo_set s;
  int rc = demo_load(&s, p, NULL);
  TH_CHECK_MSG(rc == IB_OK, "load: %s", ib_errmsg());
  if (rc < 0) return;
  TH_CHECK_EQ_INT(s.n_episodes, 3);
  TH_CHECK_EQ_INT(s.n_keys, 2);
  TH_CHECK(!strcmp(s.keys[0].name, "a") && s.keys[0].dim == 2);
  TH_CHECK(!strcmp(s.keys[1].name, "b") && s.keys[1].dim == 3);
  TH_CHECK_EQ_INT(s.obs_dim, 5);
  TH_CHECK_EQ_INT(s.act_dim, 2);
  TH_CHECK_EQ_INT(s.total_steps, 4 + 5 + 6);
  TH_CHECK(!strcmp(s.env_name, "synthetic"));
  TH_CHECK(s.env_args && strstr(s.env_args, "\"type\": \"ibrl\""));
  int bad = 0;
  for (int ep = 0; ep < 3; ep++) {
    const demo_episode *e = &s.episodes[ep];
    TH_CHECK_EQ_INT(e->T, 4 + ep);
    for (int t = 0; t < e->T; t++) {
      for (int j = 0; j < 5; j++) bad += e->obs[t * 5 + j] != syn_obs(ep, t, j);
      for (int j = 0; j < 2; j++) bad += e->actions[t * 2 + j] != syn_act(ep, t, j);
      bad += e->rewards[t] != (t >= e->T - 2 ? 1.0f : 0.0f);
      bad += e->dones[t] != (t == e->T - 1);
    }
  }
  TH_CHECK_MSG(bad == 0, "%d values differ after the round trip", bad);
  /* demo_save of the loaded set reproduces it. */
  const char *p2 = tmp_path("syn2.hdf5");
  TH_CHECK_EQ_INT(demo_save(&s, p2), IB_OK);
  demo_set s2;
  TH_CHECK_EQ_INT(demo_load(&s2, p2, NULL), IB_OK);
  TH_CHECK_EQ_INT(s2.n_episodes, 3);
  if (s2.n_episodes == 3)
    for (int ep = 0; ep < 3; ep++)
      th_allclose("re-saved obs", s2.episodes[ep].obs, s.episodes[ep].obs, (size_t)s.episodes[ep].T * 5, 0, 0);
  TH_CHECK(!strcmp(s2.env_name, "synthetic"));
  demo_set_free(&s2);
  demo_set_free(&s);
  demo_set_free(&s); /* a freed set is zeroed and may be freed again */
}

static void test_key_selection(void) {
  const char *p = tmp_path("syn.hdf5");
  write_synthetic(p, 3);
  demo_set s;
  demo_load_opts o = {.obs_keys = "b,a"};
  TH_CHECK_EQ_INT(demo_load(&s, p, &o), IB_OK);
  if (s.n_episodes) {
    TH_CHECK_EQ_INT(s.obs_dim, 5);
    /* row 1 of demo_2 = b then a */
    const float *row = s.episodes[2].obs + 5;
    float want[5] = {syn_obs(2, 1, 2), syn_obs(2, 1, 3), syn_obs(2, 1, 4), syn_obs(2, 1, 0), syn_obs(2, 1, 1)};
    th_allclose("b,a order", row, want, 5, 0, 0);
  }
  demo_set_free(&s);
  o.obs_keys = "b";
  o.max_episodes = 2;
  TH_CHECK_EQ_INT(demo_load(&s, p, &o), IB_OK);
  TH_CHECK_EQ_INT(s.obs_dim, 3);
  TH_CHECK_EQ_INT(s.n_episodes, 2);
  demo_set_free(&s);
  o = (demo_load_opts){.obs_keys = "a,zzz"};
  TH_CHECK_EQ_INT(demo_load(&s, p, &o), IB_ENOTFOUND);
  TH_CHECK_MSG(strstr(ib_errmsg(), "'zzz'") && strstr(ib_errmsg(), "a, b"), "message must name the key and list a, b: %s",
               ib_errmsg());
  TH_CHECK_EQ_INT(s.n_episodes, 0);
  o.obs_keys = "a,,b";
  TH_CHECK_EQ_INT(demo_load(&s, p, &o), IB_EINVAL);
  o.obs_keys = "a,a";
  TH_CHECK_EQ_INT(demo_load(&s, p, &o), IB_EINVAL);
  demo_key keys[4];
  int n = 0;
  TH_CHECK_EQ_INT(demo_file_keys(keys, &n, p, 4), IB_OK);
  TH_CHECK_EQ_INT(n, 2);
  TH_CHECK(!strcmp(keys[1].name, "b") && keys[1].dim == 3);
}

static void test_cut_and_order(void) {
  const char *p = tmp_path("many.hdf5");
  TH_CHECK_EQ_INT(write_synthetic(p, 12), IB_OK);
  demo_set s;
  demo_load_opts o = {.cut_at_success = 1};
  TH_CHECK_EQ_INT(demo_load(&s, p, &o), IB_OK);
  TH_CHECK_EQ_INT(s.n_episodes, 12);
  int bad = 0;
  for (int i = 0; i < s.n_episodes; i++) {
    char want[32];
    snprintf(want, sizeof want, "demo_%d", i);
    bad += strcmp(s.episodes[i].name, want) != 0; /* numeric order: demo_2 before demo_10 */
    int T0 = 4 + i % 3;
    bad += s.episodes[i].T != T0 - 1; /* cut at the first reward 1 (second to last step) */
    bad += !s.episodes[i].dones[s.episodes[i].T - 1];
  }
  TH_CHECK_MSG(bad == 0, "%d ordering/cut errors", bad);
  long sum = 0;
  for (int i = 0; i < s.n_episodes; i++) sum += s.episodes[i].T;
  TH_CHECK_EQ_INT(s.total_steps, sum);
  demo_set_free(&s);
}

/* ---- raw HDF5 files: robomimic-typed, and broken ones ---- */

typedef struct raw_opts {
  int no_data, no_actions, no_obs, rank3_obs, empty;
  int ragged_rewards, ragged_obs, num_samples;  /* num_samples: 0 = correct, else the value */
  float action_value;                            /* written at demo_1 actions[2][1] when != 0 */
  int nan_obs, nan_action, wide_second_action;   /* defects in demo_1 */
  int string_actions;
} raw_opts;

static void raw_ds(hid_t loc, const char *name, hid_t type, const void *buf, int rank, hsize_t d0, hsize_t d1, hsize_t d2) {
  hsize_t dims[3] = {d0, d1, d2};
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t ds = H5Dcreate2(loc, name, type == H5T_NATIVE_DOUBLE ? H5T_IEEE_F64LE : H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                        H5P_DEFAULT);
  H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  H5Dclose(ds);
  H5Sclose(sp);
}

/* Writes a robomimic-typed file: float64 obs/actions/rewards, int64 dones, keys created in the
 * order "zeta" (1) then "alpha" (2) without creation-order tracking, two demos of T = 5. */
static void write_raw(const char *path, const raw_opts *o) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (o->no_data) {
    hid_t g = H5Gcreate2(f, "stuff", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    return;
  }
  hid_t data = H5Gcreate2(f, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const char *env_args = "{\"env_name\": \"PickPlaceCan\", \"type\": 1, \"env_kwargs\": {}}";
  hid_t st = H5Tcopy(H5T_C_S1);
  H5Tset_size(st, strlen(env_args)); /* fixed-length string, as some writers do */
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(data, "env_args", st, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, st, env_args);
  H5Aclose(a);
  H5Tclose(st);
  for (int d = 0; d < 2; d++) {
    const int T = 5;
    char name[16];
    snprintf(name, sizeof name, "demo_%d", d + 1); /* robomimic sometimes numbers from 1 */
    hid_t g = H5Gcreate2(data, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    long long ns = o->num_samples ? o->num_samples : T;
    a = H5Acreate2(g, "num_samples", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &ns);
    H5Aclose(a);
    double zeta[5], alpha[5][2], act[5][3], rew[5], bad3[5][2][2] = {{{0}}};
    long long done[5];
    for (int t = 0; t < T; t++) {
      zeta[t] = 1000.0 * d + t;
      alpha[t][0] = 0.5 * t;
      alpha[t][1] = -0.5 * t;
      for (int j = 0; j < 3; j++) act[t][j] = 0.1 * (j + 1) * (t % 2 ? 1 : -1);
      rew[t] = t == T - 1;
      done[t] = t == T - 1;
    }
    if (d == 1) {
      if (o->action_value != 0.0f) act[2][1] = o->action_value;
      if (o->nan_obs) alpha[3][1] = NAN;
      if (o->nan_action) act[1][0] = NAN;
    }
    if (!o->no_obs) {
      hid_t og = H5Gcreate2(g, "obs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      raw_ds(og, "zeta", H5T_NATIVE_DOUBLE, zeta, 1, (hsize_t)(o->ragged_obs && d == 1 ? T - 1 : T), 0, 0);
      if (o->rank3_obs) raw_ds(og, "alpha", H5T_NATIVE_DOUBLE, bad3, 3, (hsize_t)T, 2, 2);
      else raw_ds(og, "alpha", H5T_NATIVE_DOUBLE, alpha, 2, (hsize_t)T, 2, 0);
      H5Gclose(og);
    }
    if (o->string_actions) {
      hid_t s5 = H5Tcopy(H5T_C_S1);
      H5Tset_size(s5, 4);
      hsize_t dims[1] = {(hsize_t)T};
      hid_t dsp = H5Screate_simple(1, dims, NULL);
      hid_t ds = H5Dcreate2(g, "actions", s5, dsp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(ds, s5, H5S_ALL, H5S_ALL, H5P_DEFAULT, "abcdabcdabcdabcdabcd");
      H5Dclose(ds);
      H5Sclose(dsp);
      H5Tclose(s5);
    } else if (!o->no_actions) {
      if (o->wide_second_action && d == 1) {
        double wide[5][4] = {{0}};
        raw_ds(g, "actions", H5T_NATIVE_DOUBLE, wide, 2, (hsize_t)T, 4, 0);
      } else if (o->empty) {
        raw_ds(g, "actions", H5T_NATIVE_DOUBLE, act, 2, 0, 3, 0);
      } else {
        raw_ds(g, "actions", H5T_NATIVE_DOUBLE, act, 2, (hsize_t)T, 3, 0);
      }
    }
    raw_ds(g, "rewards", H5T_NATIVE_DOUBLE, rew, 1, (hsize_t)(o->ragged_rewards && d == 1 ? T - 2 : T), 0, 0);
    raw_ds(g, "dones", H5T_NATIVE_LLONG, done, 1, (hsize_t)T, 0, 0);
    H5Gclose(g);
  }
  H5Sclose(sp);
  H5Gclose(data);
  H5Fclose(f);
}

static void test_robomimic_typed_file(void) {
  const char *p = tmp_path("robomimic.hdf5");
  raw_opts o = {0};
  write_raw(p, &o);
  demo_set s;
  int rc = demo_load(&s, p, NULL);
  TH_CHECK_MSG(rc == IB_OK, "load: %s", ib_errmsg());
  if (rc < 0) return;
  TH_CHECK_EQ_INT(s.n_episodes, 2);
  TH_CHECK(!strcmp(s.env_name, "PickPlaceCan"));
  /* No creation order in the file: keys come in name order, alpha (2) then zeta (1). */
  TH_CHECK(s.n_keys == 2 && !strcmp(s.keys[0].name, "alpha") && !strcmp(s.keys[1].name, "zeta"));
  TH_CHECK_EQ_INT(s.obs_dim, 3);
  TH_CHECK_EQ_INT(s.act_dim, 3);
  TH_CHECK(!strcmp(s.episodes[0].name, "demo_1"));
  const float row3_ep1[3] = {1.5f, -1.5f, 1003.0f};
  th_allclose("converted float64 obs row", s.episodes[1].obs + 9, row3_ep1, 3, 0, 0);
  TH_CHECK_NEAR(s.episodes[1].actions[2 * 3 + 1], -0.2, 1e-7);
  TH_CHECK(s.episodes[0].dones[4] == 1 && s.episodes[0].dones[3] == 0);
  demo_set_free(&s);
  /* A user's choice of keys and order on a robomimic file. */
  demo_load_opts lo = {.obs_keys = "zeta,alpha"};
  TH_CHECK_EQ_INT(demo_load(&s, p, &lo), IB_OK);
  TH_CHECK_NEAR(s.episodes[1].obs[3 * 3 + 0], 1003.0, 0);
  demo_set_free(&s);
}

typedef struct bad_case {
  const char *what;
  raw_opts o;
  int code;
  const char *needle; /* must appear in the message */
  const char *keys;   /* obs key setting, NULL = default */
} bad_case;

static void test_bad_files(void) {
  const bad_case cases[] = {
      {"no data group", {.no_data = 1}, IB_ENOTFOUND, "'data'", NULL},
      {"missing actions", {.no_actions = 1}, IB_ENOTFOUND, "'actions'", NULL},
      {"missing obs group", {.no_obs = 1}, IB_ENOTFOUND, "'obs'", NULL},
      {"ragged rewards", {.ragged_rewards = 1}, IB_EPROTO, "demo_2/rewards", NULL},
      {"ragged obs", {.ragged_obs = 1}, IB_EPROTO, "demo_2/obs/zeta", NULL},
      {"num_samples disagrees", {.num_samples = 7}, IB_EPROTO, "num_samples", NULL},
      {"action above 1", {.action_value = 1.5f}, IB_EINVAL, "demo_2 actions[2][1]", NULL},
      {"action below -1", {.action_value = -1.01f}, IB_EINVAL, "outside [-1, 1]", NULL},
      {"NaN in obs", {.nan_obs = 1}, IB_ENONFINITE, "demo_2 obs[3]", NULL},
      {"NaN in actions", {.nan_action = 1}, IB_ENONFINITE, "demo_2 actions[1][0]", NULL},
      {"action width differs between demos", {.wide_second_action = 1}, IB_EMISMATCH, "width 4", NULL},
      {"image-like rank-3 obs, named explicitly", {.rank3_obs = 1}, IB_EPROTO, "rank 3", "zeta,alpha"},
      {"empty episode", {.empty = 1}, IB_EPROTO, "empty", NULL},
      {"non-numeric actions", {.string_actions = 1}, IB_EPROTO, "not numeric", NULL},
  };
  for (size_t i = 0; i < IB_ARRAY_LEN(cases); i++) {
    const char *p = tmp_path("bad.hdf5");
    write_raw(p, &cases[i].o);
    demo_set s;
    memset(&s, 0x5a, sizeof s); /* the loader must zero it on failure */
    demo_load_opts lo = {.obs_keys = cases[i].keys};
    int rc = demo_load(&s, p, &lo);
    TH_CHECK_MSG(rc == cases[i].code, "%s: got %s (%s), want %s", cases[i].what, ib_strerror(rc), ib_errmsg(),
                 ib_strerror(cases[i].code));
    TH_CHECK_MSG(strstr(ib_errmsg(), cases[i].needle) != NULL, "%s: message lacks '%s': %s", cases[i].what, cases[i].needle,
                 ib_errmsg());
    TH_CHECK_MSG(strstr(ib_errmsg(), p) != NULL || strstr(ib_errmsg(), "obs key") != NULL, "%s: message must name the file: %s",
                 cases[i].what, ib_errmsg());
    TH_CHECK_MSG(s.n_episodes == 0 && s.episodes == NULL, "%s: set not zeroed on failure", cases[i].what);
    if (rc == IB_OK) demo_set_free(&s);
  }
  /* Without a key setting an image-like key is left out instead of failing the load. */
  demo_set s;
  raw_opts img = {.rank3_obs = 1};
  write_raw(tmp_path("img.hdf5"), &img);
  TH_CHECK_EQ_INT(demo_load(&s, tmp_path("img.hdf5"), NULL), IB_OK);
  TH_CHECK(s.n_keys == 1 && !strcmp(s.keys[0].name, "zeta"));
  demo_set_free(&s);
  /* Not a file / not HDF5. */
  TH_CHECK_EQ_INT(demo_load(&s, tmp_path("does-not-exist.hdf5"), NULL), IB_EIO);
  TH_CHECK_MSG(strstr(ib_errmsg(), "does-not-exist.hdf5") && strstr(ib_errmsg(), "HINT"), "message: %s", ib_errmsg());
  const char *txt = tmp_path("text.hdf5");
  FILE *f = fopen(txt, "w");
  if (f) {
    fputs("not hdf5\n", f);
    fclose(f);
  }
  TH_CHECK_EQ_INT(demo_load(&s, txt, NULL), IB_EIO);
  TH_CHECK_MSG(strstr(ib_errmsg(), "not an HDF5 file") != NULL && strstr(ib_errmsg(), "HINT") != NULL, "message: %s",
               ib_errmsg());
  /* A directory: named as one (HDF5 itself printed an error stack and "not an HDF5 file"). */
  TH_CHECK_EQ_INT(demo_load(&s, "/tmp", NULL), IB_EIO);
  TH_CHECK_MSG(strstr(ib_errmsg(), "'/tmp' is a directory") != NULL && strstr(ib_errmsg(), "HINT") != NULL,
               "message: %s", ib_errmsg());
}

static void test_writer_refuses_bad_data(void) {
  demo_key keys[1] = {{"x", 2}};
  const char *p = tmp_path("w.hdf5");
  unlink(p);
  demo_writer *w;
  TH_CHECK_EQ_INT(demo_writer_open(&w, p, keys, 1, 1, NULL), IB_OK);
  float obs[4] = {0, 1, 2, 3}, act[2] = {0.5f, 2.0f}, rew[2] = {0, 1};
  uint8_t done[2] = {0, 1};
  TH_CHECK_EQ_INT(demo_writer_add(w, obs, act, rew, done, NULL, 2), IB_EINVAL);
  act[1] = 0.5f;
  obs[2] = NAN;
  TH_CHECK_EQ_INT(demo_writer_add(w, obs, act, rew, done, NULL, 2), IB_ENONFINITE);
  TH_CHECK_EQ_INT(demo_writer_add(w, obs, act, rew, done, NULL, 0), IB_EPROTO);
  demo_writer_abort(w);
  TH_CHECK_MSG(access(p, F_OK) != 0 && access(tmp_path("w.hdf5.tmp"), F_OK) != 0, "abort must leave no file");
  demo_key badk[1] = {{"a/b", 2}};
  TH_CHECK_EQ_INT(demo_writer_open(&w, p, badk, 1, 1, NULL), IB_EINVAL);
  TH_CHECK_EQ_INT(demo_writer_open(&w, "/nonexistent-dir-ibrl/x.hdf5", keys, 1, 1, NULL), IB_EIO);
  TH_CHECK_MSG(strstr(ib_errmsg(), "nonexistent-dir-ibrl") != NULL, "message: %s", ib_errmsg());
}

/* ---- transitions ---- */

static void test_transition_arithmetic(void) {
  /* One episode, T = 4, obs_dim 1 (obs = t + 1), act_dim 1 (a = 0.1 t), reward 1 and done at 3. */
  demo_key key = {"o", 1};
  float obs[4] = {1, 2, 3, 4}, act[4] = {0.0f, 0.1f, 0.2f, 0.3f}, rew[4] = {0, 0, 0, 1};
  uint8_t dones[4] = {0, 0, 0, 1};
  demo_episode e = {.name = "demo_0", .T = 4, .obs = obs, .actions = act, .rewards = rew, .dones = dones};
  demo_set s = {.n_episodes = 1, .episodes = &e, .n_keys = 1, .keys = &key, .obs_dim = 1, .act_dim = 1};
  float o[2], no[2], a[3], r, d;
  int steps = demo_transition(o, a, &r, &d, no, &s, 0, 0, 3, 2, 0.5f);
  TH_CHECK_EQ_INT(steps, 3);
  const float o0[2] = {1, 0}, n0[2] = {4, 3}, a0[3] = {0.0f, 0.1f, 0.2f};
  th_allclose("obs t=0 (zero padded)", o, o0, 2, 0, 0);
  th_allclose("next obs t=0", no, n0, 2, 0, 0);
  th_allclose("actions t=0", a, a0, 3, 0, 0);
  TH_CHECK_NEAR(r, 0.0, 0);
  TH_CHECK_NEAR(d, 0.125, 0); /* gamma^3 */
  steps = demo_transition(o, a, &r, &d, no, &s, 0, 2, 3, 2, 0.5f);
  TH_CHECK_EQ_INT(steps, 2);
  const float o2[2] = {3, 2}, a2[3] = {0.2f, 0.3f, 0.3f};
  th_allclose("obs t=2", o, o2, 2, 0, 0);
  th_allclose("actions t=2 (last repeated)", a, a2, 3, 0, 0);
  TH_CHECK_NEAR(r, 0.5, 0); /* reward 1 one step into the chunk */
  TH_CHECK_NEAR(d, 0.0, 0); /* terminal */
  steps = demo_transition(o, a, &r, &d, no, &s, 0, 3, 1, 1, 0.99f);
  TH_CHECK_EQ_INT(steps, 1);
  TH_CHECK_NEAR(r, 1.0, 0);
  TH_CHECK_NEAR(d, 0.0, 0);
  /* A done flag inside the episode stops the chunk there (an uncut file may have one). */
  dones[1] = 1;
  steps = demo_transition(o, a, &r, &d, no, &s, 0, 0, 3, 2, 0.5f);
  TH_CHECK_EQ_INT(steps, 2);
  TH_CHECK_NEAR(d, 0.0, 0);
  const float a_done[3] = {0.0f, 0.1f, 0.1f};
  th_allclose("actions after an inner done repeat the last executed one", a, a_done, 3, 0, 0);
  float rn, dn_;
  TH_CHECK_EQ_INT(demo_transition_n(o, a, &rn, &dn_, no, &s, 0, 0, 1, 1, 0.5f, 3), 2); /* n-step stops too */
  TH_CHECK_NEAR(dn_, 0.0, 0);
  dones[1] = 0;
  /* Without a done flag the end of the stored episode is still terminal (IBRL). */
  dones[3] = 0;
  demo_transition(o, a, &r, &d, no, &s, 0, 3, 1, 1, 0.99f);
  TH_CHECK_NEAR(d, 0.0, 0);
  demo_transition(o, a, &r, &d, no, &s, 0, 1, 1, 1, 0.99f);
  TH_CHECK_NEAR(d, 0.99f, 0);
}

/* Records a nav2d expert episode (k = 1), then replays its actions through a chunk runner with
 * k = 3 and a 2-frame stack: every live transition must equal demo_transition bit for bit. */
static void test_transitions_match_runner(void) {
  env *e = NULL;
  if (env_create("nav2d", NULL, &e) < 0) {
    TH_CHECK_MSG(0, "env_create: %s", ib_errmsg());
    return;
  }
  const int O = e->obs_dim, A = e->act_dim, H = e->horizon, K = 3, NS = 2;
  const float gamma = 0.97f;
  const uint64_t seed = 31337;
  float *obs = ib_xmalloc((size_t)(H + 1) * O * sizeof(float)), *act = ib_xmalloc((size_t)H * A * sizeof(float));
  float *rew = ib_xmalloc((size_t)H * sizeof(float));
  uint8_t *dn = ib_xmalloc((size_t)H);
  chunk_config c1 = chunk_config_default();
  chunk_runner run;
  chunk_runner_init(&run, e, &c1);
  rng r;
  rng_seed(&r, 1, "test", 0, "expert");
  chunk_result res;
  chunk_reset(&run, seed, obs);
  int T = 0;
  while (!run.done) {
    env_expert(e, &r, 0.2f, act + (size_t)T * A);
    chunk_step(&run, &res, obs + (size_t)(T + 1) * O, act + (size_t)T * A);
    rew[T] = res.reward;
    dn[T] = (uint8_t)res.success;
    T++;
  }
  TH_CHECK_MSG(run.success, "the expert must succeed on this seed");
  chunk_runner_free(&run);
  demo_key keys[2] = {{"state", 5}, {"lidar", O - 5}};
  demo_episode ep = {.name = "demo_0", .T = T, .obs = obs, .actions = act, .rewards = rew, .dones = dn};
  demo_set s = {.n_episodes = 1, .episodes = &ep, .n_keys = 2, .keys = keys, .obs_dim = O, .act_dim = A};

  chunk_config ck = chunk_config_default();
  ck.k = K;
  ck.n_stack = NS;
  ck.gamma = gamma;
  TH_CHECK_EQ_INT(chunk_runner_init(&run, e, &ck), IB_OK);
  float lo[2 * 64], ln[2 * 64], dobs[2 * 64], dnext[2 * 64], dact[3 * 2], r_d, disc_d;
  IB_CHECK(O <= 64);
  chunk_reset(&run, seed, lo);
  int t = 0, mismatches = 0, n_tr = 0;
  while (!run.done) {
    int steps = demo_transition(dobs, dact, &r_d, &disc_d, dnext, &s, 0, t, K, NS, gamma);
    mismatches += memcmp(lo, dobs, (size_t)NS * O * sizeof(float)) != 0;
    chunk_step(&run, &res, ln, dact);
    mismatches += res.steps != steps;
    mismatches += memcmp(&res.reward, &r_d, sizeof r_d) != 0 || memcmp(&res.discount, &disc_d, sizeof disc_d) != 0;
    /* After a terminal chunk the runner has the real last frame, while a stored episode has no
       frame past T-1 (demo_transition repeats T-1); the value is unused since discount = 0. */
    if (res.discount != 0.0f) mismatches += memcmp(ln, dnext, (size_t)NS * O * sizeof(float)) != 0;
    else mismatches += !res.done;
    memcpy(lo, ln, sizeof lo);
    t += res.steps;
    n_tr++;
  }
  TH_CHECK_MSG(mismatches == 0, "%d mismatches between live chunks and demo_transition over %d transitions", mismatches, n_tr);
  TH_CHECK_EQ_INT(t, T);
  TH_CHECK(run.success);
  TH_CHECK_NEAR(res.discount, 0.0, 0);
  chunk_runner_free(&run);
  env_destroy(e);
  free(obs);
  free(act);
  free(rew);
  free(dn);
}

/* Records a nav2d expert episode (k = 1, noise 0.2) into a caller-freed demo_set of one episode. */
static int record_episode(demo_set *s, demo_key *keys, env *e, uint64_t seed) {
  const int O = e->obs_dim, A = e->act_dim, H = e->horizon;
  demo_episode *ep = ib_xcalloc(1, sizeof *ep);
  ep->obs = ib_xmalloc((size_t)(H + 1) * O * sizeof(float));
  ep->actions = ib_xmalloc((size_t)H * A * sizeof(float));
  ep->rewards = ib_xmalloc((size_t)H * sizeof(float));
  ep->dones = ib_xmalloc((size_t)H);
  snprintf(ep->name, sizeof ep->name, "demo_0");
  chunk_config c1 = chunk_config_default();
  chunk_runner run;
  chunk_runner_init(&run, e, &c1);
  rng r;
  rng_seed(&r, 1, "test", 0, "expert");
  chunk_result res;
  chunk_reset(&run, seed, ep->obs);
  int T = 0;
  while (!run.done) {
    env_expert(e, &r, 0.2f, ep->actions + (size_t)T * A);
    chunk_step(&run, &res, ep->obs + (size_t)(T + 1) * O, ep->actions + (size_t)T * A);
    ep->rewards[T] = res.reward;
    ep->dones[T] = (uint8_t)res.success;
    T++;
  }
  ep->T = T;
  int ok = run.success;
  chunk_runner_free(&run);
  keys[0] = (demo_key){"state", 5};
  keys[1] = (demo_key){"lidar", O - 5};
  *s = (demo_set){.n_episodes = 1, .episodes = ep, .n_keys = 2, .keys = keys, .obs_dim = O, .act_dim = A, .total_steps = T};
  return ok;
}

/* Live chunks (k = 2, 2-frame stack) folded by chunk_nstep (n = 3) equal demo_transition_n. */
static void test_nstep_matches_runner(void) {
  env *e = NULL;
  if (env_create("nav2d", NULL, &e) < 0) {
    TH_CHECK_MSG(0, "env_create: %s", ib_errmsg());
    return;
  }
  const int O = e->obs_dim, A = e->act_dim, K = 2, NS = 2, N = 3;
  const float gamma = 0.95f;
  demo_key keys[2];
  demo_set s;
  TH_CHECK_MSG(record_episode(&s, keys, e, 4242), "the expert must succeed on this seed");
  chunk_config ck = chunk_config_default();
  ck.k = K;
  ck.n_stack = NS;
  ck.gamma = gamma;
  chunk_runner run;
  TH_CHECK_EQ_INT(chunk_runner_init(&run, e, &ck), IB_OK);
  chunk_nstep nb;
  chunk_nstep_init(&nb, N, NS * O, K * A);
  float lo[2 * 64], ln[2 * 64], act[2 * 2], oo[2 * 64], oa[2 * 2], on[2 * 64];
  float dobs[2 * 64], dact[2 * 2], dnext[2 * 64], dr, dd;
  int starts[512], n_start = 0, n_out = 0, bad = 0;
  chunk_nstep_out out = {.obs = oo, .action = oa, .next_obs = on};
  chunk_result res;
  chunk_reset(&run, 4242, lo);
  int t = 0;
  while (!run.done) {
    demo_transition(NULL, act, &dr, &dd, NULL, &s, 0, t, K, NS, gamma); /* the recorded chunk */
    chunk_step(&run, &res, ln, act);
    starts[n_start++] = t;
    t += res.steps;
    int got = chunk_nstep_push(&nb, &out, lo, act, res.reward, res.discount, ln);
    while (got) {
      int t0 = starts[n_out++];
      demo_transition_n(dobs, dact, &dr, &dd, dnext, &s, 0, t0, K, NS, gamma, N);
      bad += memcmp(oo, dobs, (size_t)NS * O * sizeof(float)) != 0;
      bad += memcmp(oa, dact, (size_t)K * A * sizeof(float)) != 0;
      bad += memcmp(&out.reward, &dr, sizeof dr) != 0 || memcmp(&out.discount, &dd, sizeof dd) != 0;
      if (dd != 0.0f) bad += memcmp(on, dnext, (size_t)NS * O * sizeof(float)) != 0;
      got = run.done ? chunk_nstep_flush(&nb, &out) : 0;
    }
    memcpy(lo, ln, sizeof lo);
  }
  TH_CHECK_MSG(bad == 0, "%d mismatches between live n-step transitions and demo_transition_n", bad);
  TH_CHECK_EQ_INT(n_out, n_start);
  TH_CHECK_EQ_INT(t, s.episodes[0].T);
  chunk_nstep_free(&nb);
  chunk_runner_free(&run);
  env_destroy(e);
  s.keys = NULL; /* on the stack */
  demo_set_free(&s);
}

static const th_case cases[] = {
    {"HDF5 round trip", test_round_trip},
    {"obs key selection and order", test_key_selection},
    {"cut at success, numeric demo order", test_cut_and_order},
    {"robomimic-typed file", test_robomimic_typed_file},
    {"bad files: each error", test_bad_files},
    {"writer refuses bad data", test_writer_refuses_bad_data},
    {"transition arithmetic", test_transition_arithmetic},
    {"demo transitions match the chunk runner", test_transitions_match_runner},
    {"n-step demo transitions match the runner", test_nstep_matches_runner},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  snprintf(tmpdir, sizeof tmpdir, "%s/ibrl-test-demo-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  int rc = th_main(argc, argv, cases);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return rc;
}
