/* test_train_units.c: the trainer's pure parts: n-step chains over chunk transitions (hand
 * computed), settings (presets, validation, config.json) and metrics.csv truncation for resume.
 * The end-to-end checks of ibrl-train and ibrl-il are in train_cli.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
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
  TH_CHECK_EQ_INT(tcfg_write_json(&c, path), IB_OK);
  char *j = slurp(path);
  TH_CHECK(j != NULL);
  if (j) {
    TH_CHECK(strstr(j, "\"method\": \"ibrl\""));
    TH_CHECK(strstr(j, "\"seed\": 7,"));
    TH_CHECK(strstr(j, "\"demos\": \"a \\\"quoted\\\" name\""));
    TH_CHECK(strstr(j, "\"critic_heads\": 5"));
    TH_CHECK(j[strlen(j) - 2] == '}');
  }
  free(j);
  snprintf(path, sizeof path, "%s/nodir/config.json", dir);
  TH_CHECK_EQ_INT(tcfg_write_json(&c, path), IB_EIO);
  TH_CHECK(strstr(ib_errmsg(), "nodir"));
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
    {"runlog truncate", test_runlog_truncate},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
