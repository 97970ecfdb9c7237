/* test_train_units.c: the trainer's pure parts: n-step chains over chunk transitions (hand
 * computed), settings (presets, validation, config.json and the IL policy it records from the
 * checkpoint's meta), IL meta files of both versions and metrics.csv truncation for resume.
 * The end-to-end checks of ibrl-train and ibrl-il are in train_cli.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "il.h"
#include "ilfile.h"
#include "nn.h"
#include "nn_amx.h"
#include "nstep.h"
#include "runlog.h"
#include "tcfg.h"
#include "th.h"

/* ---- n-step ---- */

/* A 5-transition episode that succeeds on the last one (discount 0 there). */
static void test_nstep_success(void) {
  const float g = 0.99f;
  float rew[5] = {0, 0, 0, 0, 1}, disc[5] = {g, g, g, g, 0};
  float R, D;
  int last = nstep_chain(&R, &D, rew, disc, 5, 0, 3);
  TH_CHECK_EQ_INT(last, 2);
  TH_CHECK_NEAR(R, 0.0, 0);
  TH_CHECK_NEAR(D, (double)(g * g * g), 1e-7);
  last = nstep_chain(&R, &D, rew, disc, 5, 2, 3); /* 0 + g*0 + g*g*1, then terminal */
  TH_CHECK_EQ_INT(last, 4);
  TH_CHECK_NEAR(R, 0.9801, 1e-6);
  TH_CHECK_NEAR(D, 0.0, 0);
  last = nstep_chain(&R, &D, rew, disc, 5, 3, 3); /* 0 + g*1: the chain stops at the terminal */
  TH_CHECK_EQ_INT(last, 4);
  TH_CHECK_NEAR(R, 0.99, 1e-6);
  TH_CHECK_NEAR(D, 0.0, 0);
  last = nstep_chain(&R, &D, rew, disc, 5, 4, 3);
  TH_CHECK_EQ_INT(last, 4);
  TH_CHECK_NEAR(R, 1.0, 0);
  TH_CHECK_NEAR(D, 0.0, 0);
}

/* Chunk transitions of 2 env steps carry gamma^2 and an in-chunk reward; n = 2 chains two. */
static void test_nstep_chunks(void) {
  const float g2 = 0.99f * 0.99f;
  float rew[3] = {0, 0.99f, 0}, disc[3] = {g2, 0, g2};
  float R, D;
  int last = nstep_chain(&R, &D, rew, disc, 3, 0, 2);
  TH_CHECK_EQ_INT(last, 1);
  TH_CHECK_NEAR(R, (double)(g2 * 0.99f), 1e-7);
  TH_CHECK_NEAR(D, 0.0, 0);
  /* n = 1 is the transition itself */
  last = nstep_chain(&R, &D, rew, disc, 3, 2, 1);
  TH_CHECK_EQ_INT(last, 2);
  TH_CHECK_NEAR(D, (double)g2, 0);
}

/* An episode cut without a terminal discount: the tail is not bootstrapped. */
static void test_nstep_runs_off(void) {
  float rew[3] = {0.5f, 0.25f, 0.125f}, disc[3] = {0.9f, 0.9f, 0.9f};
  float R, D;
  int last = nstep_chain(&R, &D, rew, disc, 3, 1, 3);
  TH_CHECK_EQ_INT(last, 2);
  TH_CHECK_NEAR(R, 0.25 + 0.9 * 0.125, 1e-7);
  TH_CHECK_NEAR(D, 0.0, 0);
  last = nstep_chain(&R, &D, rew, disc, 3, 0, 2); /* fits: bootstrapped with 0.81 */
  TH_CHECK_EQ_INT(last, 1);
  TH_CHECK_NEAR(R, 0.5 + 0.9 * 0.25, 1e-7);
  TH_CHECK_NEAR(D, 0.81, 1e-7);
}

/* ---- settings ---- */

static void test_cfg_presets(void) {
  for (const char *const *n = tcfg_preset_names(); *n; n++) {
    tcfg c;
    tcfg_defaults(&c);
    TH_CHECK_EQ_INT(tcfg_preset_apply(&c, *n), IB_OK);
    if (!c.task[0]) snprintf(c.task, sizeof c.task, "nav2d");
    TH_CHECK_MSG(tcfg_resolve(&c) == IB_OK, "preset %s: %s", *n, ib_errmsg());
    TH_CHECK(strcmp(c.preset, *n) == 0);
  }
  tcfg c;
  tcfg_defaults(&c);
  TH_CHECK_EQ_INT(tcfg_preset_apply(&c, "nav2d-slow"), IB_ENOTFOUND);
  TH_CHECK(strstr(ib_errmsg(), "nav2d-slow") && strstr(ib_errmsg(), "nav2d-quick"));
  tcfg_preset_apply(&c, "paper-state");
  TH_CHECK_EQ_INT(c.critic_hidden, 1024);
  TH_CHECK_EQ_INT(c.critic_updates, 5);
  TH_CHECK_EQ_INT(c.n_stack, 3);
  TH_CHECK_EQ_INT(c.soft, 1);
  /* paper-state asks for "auto" and tcfg_resolve records the mode this machine runs: bf16x3 with
   * AMX-BF16, else fp32; the small presets stay fp32 (their committed evidence is fp32) */
  TH_CHECK_EQ_INT(c.matmul, NN_MATMUL_AUTO);
  snprintf(c.task, sizeof c.task, "nav2d");
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_OK);
  TH_CHECK_EQ_INT(c.matmul, amx_available() ? NN_MATMUL_BF16X3 : NN_MATMUL_FP32);
  const char *small[] = {"nav2d-quick", "nav2d", "metaworld-state"};
  for (size_t i = 0; i < IB_ARRAY_LEN(small); i++) {
    tcfg_defaults(&c);
    tcfg_preset_apply(&c, small[i]);
    if (!c.task[0]) snprintf(c.task, sizeof c.task, "nav2d");
    TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_OK);
    TH_CHECK_MSG(c.matmul == NN_MATMUL_FP32, "preset %s: matmul %d", small[i], c.matmul);
  }
}

static void test_cfg_methods(void) {
  TH_CHECK_EQ_INT(tcfg_method_parse("ibrl-noboot"), TCFG_IBRL_NOBOOT);
  TH_CHECK_EQ_INT(tcfg_method_parse("sac"), IB_ENOTFOUND);
  TH_CHECK(strstr(ib_errmsg(), "'sac'") && strstr(ib_errmsg(), "rlpd"));
  for (int m = 0; m <= TCFG_IBRL_NEITHER; m++) TH_CHECK_EQ_INT(tcfg_method_parse(tcfg_method_name(m)), m);
  /* method defaults: RLPD takes half of every batch from demos and has no actor dropout */
  tcfg c;
  tcfg_defaults(&c);
  c.method = TCFG_RLPD;
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_OK);
  TH_CHECK_NEAR(c.demo_ratio, 0.5, 0);
  TH_CHECK_NEAR(c.actor_dropout, 0.0, 0);
  tcfg_defaults(&c);
  c.method = TCFG_IBRL_NEITHER;
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_OK);
  TH_CHECK_NEAR(c.demo_ratio, -1.0, 0);
  TH_CHECK_NEAR(c.actor_dropout, 0.5, 0);
}

static void test_cfg_rejects(void) {
  tcfg c;
  tcfg_defaults(&c);
  c.gamma = 1.5f;
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "gamma"));
  tcfg_defaults(&c);
  c.critic_heads = 1;
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "critic heads"));
  tcfg_defaults(&c);
  c.demo_ratio = 1.5f;
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "demo ratio"));
  tcfg_defaults(&c);
  c.task[0] = 0;
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "--task"));
  long v;
  TH_CHECK(tcfg_parse_long(&v, "12x", 0, 100, "test", "--n") != 0);
  TH_CHECK(tcfg_parse_long(&v, "101", 0, 100, "test", "--n") != 0);
  TH_CHECK(tcfg_parse_long(&v, "42", 0, 100, "test", "--n") == 0 && v == 42);
  float f;
  TH_CHECK(tcfg_parse_float(&f, "nan", 0, 1, "test", "--x") != 0);
  uint64_t u;
  TH_CHECK(tcfg_parse_u64(&u, "-3", "test", "--seed") != 0);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = calloc(1, 1 << 16);
  size_t n = fread(buf, 1, (1 << 16) - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static void test_cfg_json(void) {
  char dir[] = "/tmp/ib_tcfg_XXXXXX";
  TH_CHECK(mkdtemp(dir) != NULL);
  char path[256];
  snprintf(path, sizeof path, "%s/config.json", dir);
  tcfg c;
  tcfg_defaults(&c);
  snprintf(c.demos, sizeof c.demos, "a \"quoted\" name");
  c.seed = 7;
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_OK);
  TH_CHECK_EQ_INT(tcfg_write_json(&c, NULL, path), IB_OK);
  char *j = slurp(path);
  TH_CHECK(j != NULL);
  if (j) {
    TH_CHECK(strstr(j, "\"method\": \"ibrl\""));
    TH_CHECK(strstr(j, "\"seed\": 7,"));
    TH_CHECK(strstr(j, "\"demos\": \"a \\\"quoted\\\" name\""));
    TH_CHECK(strstr(j, "\"critic_heads\": 5"));
    /* no IL policy loaded: null, and no preset IL-training defaults posing as the policy */
    TH_CHECK(strstr(j, "\"il_policy\": null\n}"));
    TH_CHECK(!strstr(j, "\"il_arch\"") && !strstr(j, "\"il_steps\""));
    TH_CHECK(j[strlen(j) - 2] == '}');
  }
  free(j);
  snprintf(path, sizeof path, "%s/nodir/config.json", dir);
  TH_CHECK_EQ_INT(tcfg_write_json(&c, NULL, path), IB_EIO);
  TH_CHECK(strstr(ib_errmsg(), "nodir"));
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  TH_CHECK(system(path) == 0);
}

/* ---- the IL policy in config.json: from its checkpoint's meta (ilfile.h) ---- */

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  TH_CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

/* A CVAE of chunk 4 trained 500 steps (the audit's case) saved with ilfile_save, read back, and
 * written into config.json by a run whose preset IL defaults say bc / 3000 steps: config.json
 * must name the checkpoint's cvae, chunk 4 and 500 steps. */
static void test_cfg_json_il(void) {
  char dir[] = "/tmp/ib_tcfg_il_XXXXXX";
  TH_CHECK(mkdtemp(dir) != NULL);
  char ck[256], path[256];
  snprintf(ck, sizeof ck, "%s/cvae4.ckpt", dir);
  il_config ic = il_config_default();
  ic.kind = IL_CVAE;
  ic.obs_dim = 5;
  ic.act_dim = 4 * 2;
  ic.hidden = 8;
  ic.n_layers = 1;
  ic.latent = 3;
  ic.max_batch = 4;
  il_policy p;
  TH_CHECK_EQ_INT(il_init(&p, &ic), IB_OK);
  ilfile_meta m;
  memset(&m, 0, sizeof m);
  m.il = p.cfg;
  m.frame_dim = 5;
  m.step_dim = 2;
  m.chunk = 4;
  m.n_stack = 1;
  snprintf(m.task, sizeof m.task, "nav2d");
  snprintf(m.obs_keys, sizeof m.obs_keys, "state,lidar");
  m.trained = 1;
  m.steps = 500;
  m.batch = 64;
  m.lr = 2.5e-4f;
  m.seed = 12345678901234ull;
  m.max_demos = 7;
  snprintf(m.demos, sizeof m.demos, "/data/my demos.hdf5"); /* a space: the rest of the line */
  TH_CHECK_EQ_INT(ilfile_save(&p, &m, ck), IB_OK);
  ilfile_meta r;
  TH_CHECK_EQ_INT(ilfile_meta_read(&r, ck), IB_OK);
  TH_CHECK_EQ_INT(r.trained, 1);
  TH_CHECK_EQ_INT(r.il.kind, IL_CVAE);
  TH_CHECK_EQ_INT(r.chunk, 4);
  TH_CHECK_EQ_INT(r.steps, 500);
  TH_CHECK_EQ_INT(r.batch, 64);
  TH_CHECK_EQ_INT(r.max_demos, 7);
  TH_CHECK(r.lr == m.lr);
  TH_CHECK(r.seed == m.seed);
  TH_CHECK_MSG(!strcmp(r.demos, "/data/my demos.hdf5"), "demos '%s'", r.demos);

  tcfg c;
  tcfg_defaults(&c);
  TH_CHECK_EQ_INT(tcfg_preset_apply(&c, "nav2d-quick"), IB_OK); /* il_arch bc, il_steps 3000 */
  c.chunk = 4;
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_OK);
  snprintf(path, sizeof path, "%s/config.json", dir);
  TH_CHECK_EQ_INT(tcfg_write_json(&c, &r, path), IB_OK);
  char *j = slurp(path);
  TH_CHECK(j != NULL);
  if (j) {
    const char *o = strstr(j, "\n  \"il_policy\": {\n");
    TH_CHECK_MSG(o != NULL, "no il_policy object in\n%s", j);
    if (o) {
      TH_CHECK(strstr(o, "\n    \"arch\": \"cvae\",\n"));
      TH_CHECK(strstr(o, "\n    \"chunk\": 4,\n"));
      TH_CHECK(strstr(o, "\n    \"used\": true,\n"));
      TH_CHECK(strstr(o, "\n    \"latent\": 3,\n"));
      TH_CHECK(strstr(o, "\n    \"train_steps\": 500,\n"));
      TH_CHECK(strstr(o, "\n    \"train_seed\": 12345678901234,\n"));
      TH_CHECK(strstr(o, "\n    \"train_demos\": \"/data/my demos.hdf5\"\n  }\n}\n"));
    }
    TH_CHECK(!strstr(j, "\"il_arch\"") && !strstr(j, "\"il_steps\"") && !strstr(j, ": 3000,"));
  }
  free(j);
  /* rlpd loads a policy given with --il but does not use it: the record says so */
  c.method = TCFG_RLPD;
  TH_CHECK_EQ_INT(tcfg_write_json(&c, &r, path), IB_OK);
  j = slurp(path);
  TH_CHECK(j && strstr(j, "\n    \"used\": false,\n"));
  free(j);
  il_free(&p);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  TH_CHECK(system(path) == 0);
}

/* Meta files: version 1 (before the training record) still loads and config.json says the record
 * is unknown; a version-2 file without part of its record, an unknown version or a bad value is
 * refused naming the file or the key. */
static void test_ilfile_meta_versions(void) {
  char dir[] = "/tmp/ib_ilmeta_XXXXXX";
  TH_CHECK(mkdtemp(dir) != NULL);
  char ck[256], mp[300], path[256];
  snprintf(ck, sizeof ck, "%s/p.ckpt", dir);
  snprintf(mp, sizeof mp, "%s.meta", ck);
  const char *v1 = "ibrl-il-meta 1\nkind bc\nobs_dim 6\nact_dim 2\nlayers 2\nhidden 32\ndropout 0.5\nlatent 8\n"
                   "kl_weight 0.01\nframe_dim 6\nstep_dim 2\nchunk 1\nn_stack 1\ntask nav2d\nobs_keys state\n";
  const char *rec = "steps 60\nbatch 32\nlr 0.001\nseed 5\nmax_demos 0\ndemos /d/demos.hdf5\n";
  char text[2048];
  ilfile_meta m;
  write_text(mp, v1);
  TH_CHECK_EQ_INT(ilfile_meta_read(&m, ck), IB_OK);
  TH_CHECK_EQ_INT(m.trained, 0);
  TH_CHECK_EQ_INT(m.il.hidden, 32);
  tcfg c;
  tcfg_defaults(&c);
  TH_CHECK_EQ_INT(tcfg_resolve(&c), IB_OK);
  snprintf(path, sizeof path, "%s/config.json", dir);
  TH_CHECK_EQ_INT(tcfg_write_json(&c, &m, path), IB_OK);
  char *j = slurp(path);
  TH_CHECK(j && strstr(j, "\n    \"arch\": \"bc\",\n") && strstr(j, "\n    \"train_steps\": null,\n") &&
           strstr(j, "\n    \"train_demos\": null\n  }\n}\n") && !strstr(j, "\"latent\""));
  free(j);

  /* version 2, complete */
  snprintf(text, sizeof text, "%s%s", v1, rec);
  text[strlen("ibrl-il-meta ")] = '2';
  write_text(mp, text);
  TH_CHECK_EQ_INT(ilfile_meta_read(&m, ck), IB_OK);
  TH_CHECK_EQ_INT(m.trained, 1);
  TH_CHECK_EQ_INT(m.steps, 60);
  TH_CHECK(!strcmp(m.demos, "/d/demos.hdf5"));
  /* version 2 without its last line (demos) */
  text[strlen(text) - strlen("demos /d/demos.hdf5\n")] = 0;
  write_text(mp, text);
  TH_CHECK_EQ_INT(ilfile_meta_read(&m, ck), IB_EPROTO);
  TH_CHECK_MSG(strstr(ib_errmsg(), "p.ckpt.meta") && strstr(ib_errmsg(), "19 of 20") && strstr(ib_errmsg(), "HINT"),
               "message: %s", ib_errmsg());
  /* version 1 with a training record: the counts do not fit version 1 */
  snprintf(text, sizeof text, "%s%s", v1, rec);
  write_text(mp, text);
  TH_CHECK_EQ_INT(ilfile_meta_read(&m, ck), IB_EPROTO);
  /* an unknown version */
  snprintf(text, sizeof text, "%s%s", v1, rec);
  text[strlen("ibrl-il-meta ")] = '3';
  write_text(mp, text);
  TH_CHECK_EQ_INT(ilfile_meta_read(&m, ck), IB_EPROTO);
  TH_CHECK_MSG(strstr(ib_errmsg(), "version 1 or 2"), "message: %s", ib_errmsg());
  /* bad values name their key */
  static const struct {
    const char *from, *to, *key;
  } bad[] = {{"seed 5", "seed -5", "seed"}, {"steps 60", "steps 6x", "steps"}, {"lr 0.001", "lr fast", "lr"},
             {"batch 32", "batch -1", "batch"}};
  for (size_t i = 0; i < IB_ARRAY_LEN(bad); i++) {
    snprintf(text, sizeof text, "%s%s", v1, rec);
    text[strlen("ibrl-il-meta ")] = '2';
    char *at = strstr(text, bad[i].from);
    TH_CHECK(at != NULL);
    if (!at) continue;
    char out[2048];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, bad[i].to, at + strlen(bad[i].from));
    write_text(mp, out);
    TH_CHECK_EQ_INT(ilfile_meta_read(&m, ck), IB_EPROTO);
    TH_CHECK_MSG(strstr(ib_errmsg(), bad[i].key) && strstr(ib_errmsg(), "line"), "%s: message: %s", bad[i].to,
                 ib_errmsg());
  }
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  TH_CHECK(system(path) == 0);
}

/* ---- metrics.csv ---- */

static void test_runlog_truncate(void) {
  char dir[] = "/tmp/ib_runlog_XXXXXX";
  TH_CHECK(mkdtemp(dir) != NULL);
  TH_CHECK_EQ_INT(runlog_create(dir), IB_OK);
  runlog_row r = {0};
  for (int i = 0; i < 4; i++) {
    r.env_steps = 100 * i;
    r.eval_success = 0.25 * i;
    r.train_success = NAN;
    TH_CHECK_EQ_INT(runlog_append(dir, &r), IB_OK);
  }
  TH_CHECK_EQ_INT(runlog_truncate(dir, 150), IB_OK);
  char path[256];
  snprintf(path, sizeof path, "%s/metrics.csv", dir);
  char *s = slurp(path);
  TH_CHECK(s != NULL);
  if (s) {
    int lines = 0;
    for (char *p = s; *p; p++) lines += *p == '\n';
    TH_CHECK_EQ_INT(lines, 3); /* header + rows at 0 and 100 */
    TH_CHECK(strncmp(s, RUNLOG_HEADER "\n", strlen(RUNLOG_HEADER) + 1) == 0);
    TH_CHECK(strstr(s, "\n100,") && !strstr(s, "\n200,"));
    TH_CHECK(strstr(s, ",nan,"));
  }
  free(s);
  /* a file that is not ours is refused, not rewritten */
  FILE *f = fopen(path, "w");
  fputs("step,reward\n1,2\n", f);
  fclose(f);
  TH_CHECK_EQ_INT(runlog_truncate(dir, 150), IB_EPROTO);
  TH_CHECK(strstr(ib_errmsg(), "metrics.csv"));
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  TH_CHECK(system(path) == 0);
  TH_CHECK_EQ_INT(runlog_truncate("/nonexistent/run", 1), IB_EIO);
}

static const th_case cases[] = {
    {"nstep success episode", test_nstep_success},
    {"nstep chunk transitions", test_nstep_chunks},
    {"nstep runs off the episode", test_nstep_runs_off},
    {"cfg presets", test_cfg_presets},
    {"cfg methods", test_cfg_methods},
    {"cfg rejects bad values", test_cfg_rejects},
    {"cfg json", test_cfg_json},
    {"cfg json describes the loaded IL policy", test_cfg_json_il},
    {"il meta versions 1 and 2", test_ilfile_meta_versions},
    {"runlog truncate", test_runlog_truncate},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
