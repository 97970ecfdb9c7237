/* actor_main.c: ibrl-actor, one actor process of the distributed system (arun.h has the roles).
 *
 * Design. Settings come in three layers, later ones winning: the built-in defaults, --preset
 * (the tcfg presets the learner and ibrl-train share, so the network shapes match the
 * learner's), then every other flag. Each flag can also be given as an environment variable
 * IBRL_ACTOR_<FLAG> (upper case, '-' -> '_'; e.g. IBRL_ACTOR_REPLAY=replay-0:50051,
 * IBRL_ACTOR_ACTOR_ID=3) for Kubernetes; a command-line flag beats its variable. --actor-id
 * accepts "hostname": the number at the end of the host name (a StatefulSet pod "actor-3" is
 * actor 3). SIGTERM / SIGINT set a flag the loop checks every chunk; the actor then hands over
 * its complete items, waits one deadline for their acknowledgement and exits 0.
 * Exit codes: 0 done or stopped, 1 runtime error, 2 bad flags or settings. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "arun.h"
#include "ib.h"
#include "log.h"
#include "nn.h"
#include "tcfg.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

enum {
  O_ROLE = 0, O_REPLAY, O_PARAMS, O_TOKEN, O_TASK, O_PRESET, O_METHOD, O_BACKBONE, O_IL, O_SEED, O_HORIZON,
  O_ACTOR_ID, O_ENVS, O_EPISODES, O_ENV_STEPS, O_MINUTES, O_POLL, O_DEADLINE, O_MAX_PENDING, O_SEND_ROWS,
  O_FLUSH, O_LOG, O_WAIT, O_STATUS, O_EVAL_EPISODES, O_EVAL_EVERY, O_EVAL_MODE, O_OUT, O_THREADS, O_MATMUL, O_QUIET, O_HELP, O_COUNT
};

static const struct option opts[] = {
    {"role", required_argument, NULL, O_ROLE},
    {"replay", required_argument, NULL, O_REPLAY},
    {"params", required_argument, NULL, O_PARAMS},
    {"token", required_argument, NULL, O_TOKEN},
    {"task", required_argument, NULL, O_TASK},
    {"preset", required_argument, NULL, O_PRESET},
    {"method", required_argument, NULL, O_METHOD},
    {"backbone", required_argument, NULL, O_BACKBONE},
    {"il", required_argument, NULL, O_IL},
    {"seed", required_argument, NULL, O_SEED},
    {"horizon", required_argument, NULL, O_HORIZON},
    {"actor-id", required_argument, NULL, O_ACTOR_ID},
    {"envs", required_argument, NULL, O_ENVS},
    {"episodes", required_argument, NULL, O_EPISODES},
    {"env-steps", required_argument, NULL, O_ENV_STEPS},
    {"minutes", required_argument, NULL, O_MINUTES},
    {"poll-ms", required_argument, NULL, O_POLL},
    {"deadline-ms", required_argument, NULL, O_DEADLINE},
    {"max-pending", required_argument, NULL, O_MAX_PENDING},
    {"send-rows", required_argument, NULL, O_SEND_ROWS},
    {"flush-ms", required_argument, NULL, O_FLUSH},
    {"log-every", required_argument, NULL, O_LOG},
    {"wait", required_argument, NULL, O_WAIT},
    {"status", required_argument, NULL, O_STATUS},
    {"eval-episodes", required_argument, NULL, O_EVAL_EPISODES},
    {"eval-every", required_argument, NULL, O_EVAL_EVERY},
    {"eval-mode", required_argument, NULL, O_EVAL_MODE},
    {"out", required_argument, NULL, O_OUT},
    {"threads", required_argument, NULL, O_THREADS},
    {"matmul", required_argument, NULL, O_MATMUL},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-actor --replay HOST:PORT[,...] --il IL.ckpt [--actor-id N] [options]\n"
          "       ibrl-actor --role eval --replay HOST:PORT[,...] --il IL.ckpt --out DIR [options]\n"
          "One actor of the IBRL system. explore (default): runs --envs environments of --task, acts with\n"
          "the IBRL proposal (the latest RL actor and target critic against the frozen IL policy; the IL\n"
          "policy alone until the first weights arrive), and streams n-step chunk transitions to replay\n"
          "shard actor_id %% n_shards, surviving shard restarts without losing or duplicating items.\n"
          "eval: scores the IL policy and each new weight version on fixed seeded episodes and keeps\n"
          "DIR/metrics.csv, summary.json and curve.png. Every flag may also be set as IBRL_ACTOR_<FLAG>\n"
          "(e.g. IBRL_ACTOR_REPLAY=replay-0:50051, IBRL_ACTOR_ACTOR_ID=3); the command line wins.\n"
          "  --role explore|eval    what this process does [explore]\n"
          "  --replay LIST          replay shards host:port,... (required)\n"
          "  --params HOST:PORT     shard serving ibrl.Params [the first replay shard]\n"
          "  --token T              shared token of the replay service\n"
          "  --task NAME            env registry name [the preset's, nav2d]\n"
          "  --preset NAME          network sizes, chunk, frame stack, n-step: nav2d-quick nav2d\n"
          "                         metaworld-state paper-state (use the learner's) [built-in defaults]\n"
          "  --method M             ibrl ibrl-noact ibrl-noboot ibrl-neither rlpd [ibrl]\n"
          "  --backbone td3|sac     RL backbone (the learner's) [td3]\n"
          "  --il PATH              IL checkpoint (ibrl-il train --out), needed by ibrl and its ablations\n"
          "  --seed S               seed of every random stream [1]\n"
          "  --horizon H            episode time limit in env steps [the task's]\n"
          "  --actor-id N|hostname  this actor's id (seq key, shard choice) [0]; hostname: the trailing\n"
          "                         number of the host name (StatefulSet pod actor-3 -> 3)\n"
          "  --envs N               environments stepped side by side, one batched forward [1]\n"
          "  --episodes N           stop after N episodes (0 = no limit) [0]\n"
          "  --env-steps N          stop after N env steps (0 = no limit) [0]\n"
          "  --minutes M            stop after M minutes (0 = no limit) [0]\n"
          "  --poll-ms MS           weights poll period (long poll, at most one blob per period) [500]\n"
          "  --deadline-ms MS       deadline of each replay call [5000]\n"
          "  --max-pending N        unacknowledged items kept for retry (the local buffer), 1..8192 [1024]\n"
          "  --send-rows N          items per Insert message [64]\n"
          "  --flush-ms MS          ask for an acknowledgement at least this often [1000]\n"
          "  --log-every S          progress line period in seconds [10]\n"
          "  --wait S               give up if the replay cannot be reached at start for S seconds [120]\n"
          "  --status FILE          rewrite FILE with a JSON status every --log-every (explore)\n"
          "  --eval-episodes N      eval: seeded episodes per evaluation [20]\n"
          "  --eval-every S         eval: at most one evaluation per S seconds [15]\n"
          "  --eval-mode M          eval: the policy scored: auto (ibrl, ibrl-noboot: the IBRL hybrid; the\n"
          "                         others: the RL actor), il, rl, ibrl or greedy [auto]\n"
          "  --out DIR              eval: run directory (metrics.csv, summary.json, curve.png)\n"
          "  --threads N            compute threads of the nn library (1..8) [1]\n"
          "  --matmul P             matrix-product precision: fp32, bf16x3 (near-fp32, AMX-BF16),\n"
          "                         bf16, or auto (bf16x3 with AMX-BF16, else fp32) [fp32; paper-state: auto]\n"
          "  --quiet                no progress lines\n"
          "  --help                 this text\n"
          "Runs until a limit or SIGTERM / SIGINT (then: hands over complete items, waits up to --deadline-ms\n"
          "for their acknowledgement, exit 0; rows the shard's rate limiter still holds then, as when the\n"
          "learner stopped first, are not stored and were never acknowledged).\n"
          "Exit codes: 0 done, 1 runtime error, 2 bad flags or settings.\n");
}

static int bad(const char *flag, const char *fmt, const char *val) {
  fprintf(stderr, "ibrl-actor: %s: ", flag);
  fprintf(stderr, fmt, val);
  fprintf(stderr, " (see ibrl-actor --help)\n");
  return -1;
}

static int parse_double(double *out, const char *s, double lo, double hi, const char *flag) {
  if (cli_double_in(out, s, lo, hi) == 0) return 0;
  char msg[96];
  snprintf(msg, sizeof msg, "'%%s' is not a number in [%g, %g]", lo, hi);
  return bad(flag, msg, s);
}

/* "hostname": the trailing decimal number of the host name. */
static int actor_id_parse(uint32_t *out, const char *s, const char *flag) {
  long v;
  if (strcmp(s, "hostname") == 0) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) return bad(flag, "cannot read the host name for '%s'", s);
    size_t n = strlen(host), k = n;
    while (k > 0 && host[k - 1] >= '0' && host[k - 1] <= '9') k--;
    if (k == n) return bad(flag, "the host name '%s' does not end in a number (HINT: pass --actor-id N)", host);
    v = strtol(host + k, NULL, 10);
  } else if (tcfg_parse_long(&v, s, 0, 1000000000L, "ibrl-actor", flag)) {
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

static int set_str(char *dst, size_t cap, const char *s, const char *flag) {
  if (snprintf(dst, cap, "%s", s) >= (int)cap) return bad(flag, "value '%s' is too long", s);
  return 0;
}

/* --status FILE is rewritten as FILE.tmp + rename every --log-every, and the writer skips a
 * file it cannot open, so a path in a missing or read-only folder (or a directory) would give
 * no status at all and no message. Refuse those at start. */
static int status_check(const char *path, const char *flag) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return bad(flag, "'%s' is a directory (HINT: give the status file's name, e.g. DIR/actor-status.json)", path);
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) snprintf(dir, sizeof dir, ".");
  else if (slash == dir) dir[1] = '\0';
  else *slash = '\0';
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return bad(flag, "the folder of '%s' does not exist (HINT: create it first, or give another path)", path);
  if (access(dir, W_OK) != 0)
    return bad(flag, "the folder of '%s' is not writable (HINT: give a path this user can write to)", path);
  return 0;
}

/* Applies the collected values in layer order. Returns 0, or -1 after a message. */
static int apply(const char *const *val, const char *const *src, int *role, arun_opts *o, tcfg *tc) {
  const char *P = "ibrl-actor";
  char flag[80];
#define FLAG(i) (snprintf(flag, sizeof flag, "%s%s", src[i], opts[i].name), flag)
  tcfg_defaults(tc);
  *role = 0;
  if (val[O_ROLE]) {
    if (strcmp(val[O_ROLE], "explore") == 0) *role = 0;
    else if (strcmp(val[O_ROLE], "eval") == 0) *role = 1;
    else return bad(FLAG(O_ROLE), "'%s' is not explore or eval", val[O_ROLE]);
  }
  if (val[O_PRESET] && tcfg_preset_apply(tc, val[O_PRESET]) != IB_OK) return bad(FLAG(O_PRESET), "%s", ib_errmsg());
  if (val[O_TASK] && tcfg_set_str(tc->task, sizeof tc->task, val[O_TASK], P, FLAG(O_TASK))) return -1;
  if (val[O_METHOD]) {
    int m = tcfg_method_parse(val[O_METHOD]);
    if (m < 0) return bad(FLAG(O_METHOD), "%s", ib_errmsg());
    tc->method = m;
  }
  if (val[O_BACKBONE]) {
    if (strcmp(val[O_BACKBONE], "td3") == 0) tc->backbone = 0;
    else if (strcmp(val[O_BACKBONE], "sac") == 0) tc->backbone = 1;
    else return bad(FLAG(O_BACKBONE), "'%s' is not td3 or sac", val[O_BACKBONE]);
  }
  if (val[O_IL] && tcfg_set_str(tc->il, sizeof tc->il, val[O_IL], P, FLAG(O_IL))) return -1;
  if (val[O_SEED] && tcfg_parse_u64(&tc->seed, val[O_SEED], P, FLAG(O_SEED))) return -1;
  if (val[O_HORIZON] && tcfg_parse_int(&tc->horizon, val[O_HORIZON], 0, 1000000, P, FLAG(O_HORIZON))) return -1;
  if (val[O_OUT] && tcfg_set_str(tc->out, sizeof tc->out, val[O_OUT], P, FLAG(O_OUT))) return -1;
  if (val[O_THREADS] && tcfg_parse_int(&tc->threads, val[O_THREADS], 1, 8, P, FLAG(O_THREADS))) return -1;
  if (val[O_MATMUL] && tcfg_parse_matmul(&tc->matmul, val[O_MATMUL], P, FLAG(O_MATMUL))) return -1;
  if (val[O_EVAL_MODE] && tcfg_eval_mode_parse(&tc->eval_mode, val[O_EVAL_MODE]) != IB_OK)
    return bad(FLAG(O_EVAL_MODE), "%s", ib_errmsg());
  if (!val[O_REPLAY]) return bad("--replay", "%sno replay shards (HINT: --replay host:port[,host:port...])", "");
  if (set_str(o->replay, sizeof o->replay, val[O_REPLAY], FLAG(O_REPLAY))) return -1;
  if (val[O_PARAMS] && set_str(o->params, sizeof o->params, val[O_PARAMS], FLAG(O_PARAMS))) return -1;
  if (val[O_TOKEN] && set_str(o->token, sizeof o->token, val[O_TOKEN], FLAG(O_TOKEN))) return -1;
  if (val[O_STATUS] && set_str(o->status, sizeof o->status, val[O_STATUS], FLAG(O_STATUS))) return -1;
  if (val[O_STATUS] && status_check(o->status, FLAG(O_STATUS))) return -1;
  o->actor_id = 0;
  o->envs = 1;
  o->poll_ms = 500;
  o->deadline_ms = 5000;
  o->max_pending = 1024;
  o->send_rows = 64;
  o->flush_ms = 1000;
  o->log_every_s = 10;
  o->wait_s = 120;
  o->eval_episodes = 20;
  o->eval_every_s = 15;
  if (val[O_ACTOR_ID] && actor_id_parse(&o->actor_id, val[O_ACTOR_ID], FLAG(O_ACTOR_ID))) return -1;
  if (val[O_ENVS] && tcfg_parse_int(&o->envs, val[O_ENVS], 1, 256, P, FLAG(O_ENVS))) return -1;
  if (val[O_EPISODES] && tcfg_parse_long(&o->max_episodes, val[O_EPISODES], 0, (long)1e15, P, FLAG(O_EPISODES))) return -1;
  if (val[O_ENV_STEPS] && tcfg_parse_long(&o->max_env_steps, val[O_ENV_STEPS], 0, (long)1e15, P, FLAG(O_ENV_STEPS)))
    return -1;
  if (val[O_MINUTES] && parse_double(&o->minutes, val[O_MINUTES], 0, 1e7, FLAG(O_MINUTES))) return -1;
  if (val[O_POLL] && tcfg_parse_long(&o->poll_ms, val[O_POLL], 10, 3600000, P, FLAG(O_POLL))) return -1;
  if (val[O_DEADLINE] && tcfg_parse_int(&o->deadline_ms, val[O_DEADLINE], 1, 3600000, P, FLAG(O_DEADLINE))) return -1;
  if (val[O_MAX_PENDING] && tcfg_parse_int(&o->max_pending, val[O_MAX_PENDING], 1, 8192, P, FLAG(O_MAX_PENDING)))
    return -1;
  if (val[O_SEND_ROWS] && tcfg_parse_int(&o->send_rows, val[O_SEND_ROWS], 1, 1024, P, FLAG(O_SEND_ROWS))) return -1;
  if (val[O_FLUSH] && tcfg_parse_long(&o->flush_ms, val[O_FLUSH], 1, 3600000, P, FLAG(O_FLUSH))) return -1;
  if (val[O_LOG] && parse_double(&o->log_every_s, val[O_LOG], 0.1, 1e6, FLAG(O_LOG))) return -1;
  if (val[O_WAIT] && parse_double(&o->wait_s, val[O_WAIT], 0.1, 1e7, FLAG(O_WAIT))) return -1;
  if (val[O_EVAL_EPISODES] && tcfg_parse_int(&o->eval_episodes, val[O_EVAL_EPISODES], 1, 10000, P, FLAG(O_EVAL_EPISODES)))
    return -1;
  if (val[O_EVAL_EVERY] && parse_double(&o->eval_every_s, val[O_EVAL_EVERY], 0, 1e6, FLAG(O_EVAL_EVERY))) return -1;
  o->quiet = val[O_QUIET] && strcmp(val[O_QUIET], "0") != 0;
  if (*role == 1 && !tc->out[0]) return bad("--out", "%sthe eval role needs a run directory (HINT: --out DIR)", "");
  if (tcfg_resolve(tc) != IB_OK) return bad("settings", "%s", ib_errmsg());
#undef FLAG
  return 0;
}

int main(int argc, char **argv) {
  nn_blas_autoselect(argv); /* may re-execute with the right OpenBLAS kernel for this CPU */
  const char *val[O_COUNT] = {0};
  const char *src[O_COUNT];
  cli_env_layer(val, src, opts, O_HELP, "IBRL_ACTOR_");
  switch (cli_cmdline_layer(val, src, opts, O_HELP, ":h", argc, argv, "ibrl-actor", 1)) {
  case CLI_HELP: usage(stdout); return 0;
  case CLI_BAD: return 2;
  default: break;
  }
  arun_opts o;
  memset(&o, 0, sizeof o);
  tcfg tc;
  int role = 0;
  if (apply(val, src, &role, &o, &tc) != 0) return 2;

  /* --threads (default 1) sizes the nn library's compute team and sets OpenBLAS to one thread
   * under it, whatever OPENBLAS_NUM_THREADS said, so processes sharing a host never
   * oversubscribe the cores by accident. */
  nn_set_threads(tc.threads);
  if (nn_set_matmul((nn_matmul)tc.matmul) != IB_OK) {
    fprintf(stderr, "ibrl-actor: --matmul %s: %s\n", nn_matmul_name((nn_matmul)tc.matmul), ib_errmsg());
    return 2;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  log_set_role(role ? "eval" : "actor", (int)o.actor_id);
  if (o.quiet) log_set_level(1);
  return role ? arun_evaluate(&o, &tc, &g_stop) : arun_explore(&o, &tc, &g_stop);
}
