/* ctl_main.c: ibrl-replayctl, the inspection and control CLI of the replay shards.
 *
 * Design. One getopt_long table holds every flag; GNU argument permutation lets global flags
 * (--shards, --token, --json, ...) sit before or after the command. The first non-flag argument
 * is the command; after parsing, each command checks that only its own flags were given, so a
 * misplaced flag is a usage error (exit 2) rather than silently ignored. Every command talks to
 * the shards through replay_client.h and maps the outcome to the exit codes of ctl.h, which
 * scripts can trust: 0 ok, 1 server error or unhealthy, 2 usage, 3 unreachable. Human output is
 * a table; --json prints one JSON document (watch: one per refresh, one line each).
 *
 * Rates: Info carries the shard's own 10 s meters; `info` also takes two snapshots --rate-ms
 * apart and `watch` differentiates consecutive refreshes, so the figure covers what the user
 * watched. "bytes" is the payload estimate size x (2 obs_dim + act_dim + 2) x 4 + 31 bytes of
 * metadata per item. A shard that is down never hides the others: info, watch, health,
 * checkpoint and ratelimit report it per shard, sample draws from the rest; all then exit 3.
 * A Sample held by the rate limiter looks like a timeout to the client library; sample tells it
 * apart with an Info call (ctl_sample_fail). Export reads with Replay.Read, which the limiter
 * never holds.
 * Durability health (a broken write-ahead log, a failing disk) is a line per shard in `info` and
 * `watch`, from the Info fields rc_shard_info carries. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctl.h"
#include "demo.h"
#include "ib.h"
#include "params_client.h"
#include "replay_client.h"

enum {
  O_SHARDS = 256, O_TOKEN, O_TLS, O_DEADLINE, O_JSON, O_SHARD, O_RATEMS, O_INTERVAL, O_COUNT, O_N, O_FRAC, O_TABLE,
  O_OUT, O_OBSKEYS, O_CHUNK, O_STACK, O_NSTEP, O_GAMMA, O_NOCUT, O_SEQBASE, O_MAXDRAWS, O_MAXEP, O_PSHARD, O_WAIT, O_SPI,
  O_EBUF, O_MINSIZE, O_HELP
};

static const struct option opts[] = {
    {"shards", required_argument, NULL, O_SHARDS},
    {"token", required_argument, NULL, O_TOKEN},
    {"tls-roots", required_argument, NULL, O_TLS},
    {"deadline-ms", required_argument, NULL, O_DEADLINE},
    {"json", no_argument, NULL, O_JSON},
    {"shard", required_argument, NULL, O_SHARD},
    {"rate-ms", required_argument, NULL, O_RATEMS},
    {"interval", required_argument, NULL, O_INTERVAL},
    {"count", required_argument, NULL, O_COUNT},
    {"n", required_argument, NULL, O_N},
    {"demo-fraction", required_argument, NULL, O_FRAC},
    {"table", required_argument, NULL, O_TABLE},
    {"out", required_argument, NULL, O_OUT},
    {"obs-keys", required_argument, NULL, O_OBSKEYS},
    {"chunk", required_argument, NULL, O_CHUNK},
    {"stack", required_argument, NULL, O_STACK},
    {"nstep", required_argument, NULL, O_NSTEP},
    {"gamma", required_argument, NULL, O_GAMMA},
    {"no-cut", no_argument, NULL, O_NOCUT},
    {"seq-base", required_argument, NULL, O_SEQBASE},
    {"max-draws", required_argument, NULL, O_MAXDRAWS},
    {"max-episodes", required_argument, NULL, O_MAXEP},
    {"params-shard", required_argument, NULL, O_PSHARD},
    {"wait-ms", required_argument, NULL, O_WAIT},
    {"spi", required_argument, NULL, O_SPI},
    {"error-buffer", required_argument, NULL, O_EBUF},
    {"min-size", required_argument, NULL, O_MINSIZE},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* ---- help ---- */

typedef struct cmd_help {
  const char *name;
  const int *flags; /* allowed command flags (globals are always allowed), 0-terminated */
  const char *text;
} cmd_help;

/* The limiter's ratio setting for people: an infinite error buffer means no ratio is enforced
 * (ibrl-replay --samples-per-insert 0: only the min-size gate), whatever spi then reads. */
static void limiter_ratio(char *buf, size_t cap, double spi, double error_buffer) {
  if (isinf(error_buffer)) snprintf(buf, cap, "ratio off (min-size gate only)");
  else snprintf(buf, cap, "spi %g  error_buffer %g", spi, error_buffer);
}

static const int f_info[] = {O_SHARD, O_RATEMS, 0};
static const int f_watch[] = {O_SHARD, O_INTERVAL, O_COUNT, 0};
static const int f_sample[] = {O_N, O_FRAC, 0};
static const int f_export[] = {O_TABLE, O_OUT, O_MAXDRAWS, 0};
static const int f_import[] = {O_OBSKEYS, O_CHUNK, O_STACK, O_NSTEP, O_GAMMA, O_NOCUT, O_SEQBASE, O_SHARD, O_MAXEP, 0};
static const int f_ckpt[] = {O_SHARD, 0};
static const int f_params[] = {O_PSHARD, O_WAIT, 0};
static const int f_health[] = {O_SHARD, 0};
static const int f_limit[] = {O_SHARD, O_SPI, O_EBUF, O_MINSIZE, 0};

static const cmd_help cmds[] = {
    {"info", f_info,
     "info [--shard I] [--rate-ms MS]\n"
     "  Per shard and table: size, capacity, inserts/s, samples/s (measured over --rate-ms, default 500;\n"
     "  0 = skip; and the shard's own 10 s meters), totals, duplicates, payload bytes, preallocated bytes;\n"
     "  the rate limiter (state, ratio, time blocked summed over calls, timeouts, partial acks); per actor: last seq,\n"
     "  the newest weight version on its items, the success of its recent episodes (the shard keeps\n"
     "  each actor's last 32), its rows stored and its duplicates; params version, size and age;\n"
     "  durability: ok, or BROKEN with the cause (a failed write or fsync of the log: disk full, I/O\n"
     "  errors), for how long, the shard's failed recovery attempts and when it tries the next (--json:\n"
     "  durability_broken, durability_error, ...); if the shard started with --salvage and needed it,\n"
     "  what it kept and lost (--json: salvage); and, if its restore found fewer rows than it had\n"
     "  acknowledged as durable, how many (LOST AT START; --json: restore_missing_acked).\n"},
    {"watch", f_watch,
     "watch [--shard I] [--interval S] [--count N]\n"
     "  `info` refreshed in place every --interval seconds (default 2), --count times (default 0 = until\n"
     "  interrupted). Not on a terminal: one block per refresh after a '---- refresh N' line. With\n"
     "  --json: one JSON document per line per refresh.\n"},
    {"sample", f_sample,
     "sample --n K [--demo-fraction F]\n"
     "  Draws K (1..65536) transitions from all shards (in proportion to their sizes, in calls of at most\n"
     "  1024 rows) and prints them. F in [0,1] takes round(K*F) from the demo tables; without it rows\n"
     "  follow the total sizes. A shard that is down is left out (the rows come from the others): it is\n"
     "  named on stderr (--json: shards_skipped) and the exit code is 3. A draw that the rate limiter\n"
     "  holds past --deadline-ms (online size below min_size, or the ratio) is exit 1, with its numbers.\n"},
    {"export", f_export,
     "export --table demo|online --out F.hdf5\n"
     "  Writes the table's items to a robomimic-style HDF5 file (obs key \"obs\", next_obs, actions =\n"
     "  the stored action chunk, rewards = the stored n-step reward, dones = terminal). Each shard's table\n"
     "  is read in one pass, oldest row first, in pages of 1024 rows (Replay.Read: not rate limited, not\n"
     "  counted as samples), up to the size Info gave at the start: every row exactly once. Fewer items\n"
     "  than that (a shard restored meanwhile): INCOMPLETE, the file holds what was read, exit 1. A shard\n"
     "  that stops answering: exit 3, nothing written. Episodes are rebuilt by chaining each item to the\n"
     "  next one in seq order of the same actor whose obs equals its next_obs; discount 0 ends an episode.\n"
     "  Inserts during the export (actors running) are reported: the file is then no snapshot (in a full\n"
     "  online ring, rows that moved behind the read position are missed and as many of the newest taken\n"
     "  instead). --max-draws N, the draw cap of the former sampling export, is accepted and unused.\n"
     "  Re-import an export with --chunk 1 --stack 1 --nstep 1 --no-cut --gamma D (D = the discount of\n"
     "  non-terminal items, e.g. 0.97029907 for 0.99^3; `sample` shows it) to get the same transitions\n"
     "  back, except that terminal items come back with next_obs = obs (unused: discount 0) and a chain\n"
     "  that ends on a non-terminal item (its follower was never stored; counted as 'open ends') comes\n"
     "  back terminal.\n"},
    {"import-demos", f_import,
     "import-demos F.hdf5 [--obs-keys a,b] [--chunk K] [--stack N] [--nstep M] [--gamma G] [--no-cut]\n"
     "                    [--seq-base S] [--shard I] [--max-episodes M]\n"
     "  Loads robomimic-style demos (ib_demo) and inserts one transition per step t into the demo\n"
     "  tables with proposer=demonstration: obs = frames t, t-1, .. (N = --stack, default 3, newest\n"
     "  first, zeros before the start), action = actions t..t+K-1 (K = --chunk, default 1; the last\n"
     "  executed action repeats past the episode end), reward and discount = the n-step return of\n"
     "  M = --nstep chunks (default 3, the actors' default: give the actors' --nstep, --chunk and\n"
     "  --gamma so demo and online items bootstrap alike): reward = r_0 + d_0 r_1 + d_0 d_1 r_2 ..\n"
     "  with r_i = sum of gamma^j r over chunk i and d_i = gamma^steps, 0 at the episode end;\n"
     "  discount = d_0 d_1 ..; next_obs = the stack after the last chunk.\n"
     "  Episodes are cut at their first reward >= 1 (IBRL) unless --no-cut. Episodes are spread\n"
     "  round-robin over the shards (or all to --shard I); items carry seqs from --seq-base (default 0),\n"
     "  so importing the same file twice stores nothing new (reported as duplicates).\n"},
    {"checkpoint", f_ckpt, "checkpoint [--shard I]\n  Asks each shard (or shard I) to write a checkpoint now.\n"},
    {"params", f_params,
     "params [--params-shard I] [--wait-ms MS]\n"
     "  The published weights on shard I (default 0): version, size, and age (time since the publish, from\n"
     "  the shard's Info; age_s is null with --json before any publish). With --wait-ms, waits that long\n"
     "  for a newer version than the current one and reports the wait.\n"},
    {"health", f_health,
     "health [--shard I]\n  grpc.health.v1 Check of every shard: exit 0 if all SERVING, 1 if one is not, 3 if unreachable.\n"},
    {"ratelimit", f_limit,
     "ratelimit get|pause|resume|set [--shard I] [--spi X] [--error-buffer X] [--min-size N]\n"
     "  Reads or changes the rate limiter of each shard (pause it while preloading demos). set needs\n"
     "  --spi and --min-size, and --error-buffer unless --spi is 0, which lifts the ratio (the min-size\n"
     "  gate stays), as ibrl-replay --samples-per-insert 0 does.\n"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-replayctl [global flags] <command> [flags]\n"
          "Inspects and controls ibrl-replay shards.\n\n"
          "global flags:\n"
          "  --shards H:P,...   the shards (env IBRL_REPLAY_SHARDS)\n"
          "  --token T          shared token (env IBRL_REPLAY_TOKEN)\n"
          "  --tls-roots PEM    use TLS, trusting these roots\n"
          "  --deadline-ms MS   per-call deadline [5000]\n"
          "  --json             machine-readable output\n"
          "  --help             this text; `ibrl-replayctl <command> --help` for one command\n\n"
          "commands:\n");
  for (const cmd_help *c = cmds; c->name; c++) fprintf(f, "  %s", c->text);
  fprintf(f, "\nexit codes: 0 ok, 1 server error (a refused token, a refused value) or unhealthy, 2 usage (flags,\n"
             "arguments, a local file that is missing, unreadable or cannot be written: a full disk), 3 a shard unreachable (info, watch, health,\n"
             "checkpoint, ratelimit and sample still report or use the others)\n");
}

/* ---- parsing ---- */

static int parse_long(const char *flag, const char *v, long lo, long hi, long *out) {
  return cli_parse_long(out, "ibrl-replayctl", flag, v, lo, hi);
}

static int parse_double(const char *flag, const char *v, double lo, double hi, double *out) {
  return cli_parse_double(out, "ibrl-replayctl", flag, v, lo, hi);
}

static const char *flag_name(int val) {
  for (const struct option *o = opts; o->name; o++)
    if (o->val == val) return o->name;
  return "?";
}

/* Parses argv into a; returns -1 on a usage error (message printed), 1 if help was printed. */
static int parse_args(ctl_args *a, int argc, char **argv, const char **pos, int *npos) {
  memset(a, 0, sizeof *a);
  a->shard = -1;
  a->rate_ms = 500;
  a->interval_s = 2;
  a->demo_fraction = -1;
  a->chunk = 1;
  a->stack = 3;
  a->nstep = 3;
  a->gamma = 0.99;
  a->cut_at_success = 1;
  a->wait_ms = 0;
  a->spi = -1;
  a->error_buffer = -1;
  a->min_size = -1;
  a->shards = getenv("IBRL_REPLAY_SHARDS");
  a->token = getenv("IBRL_REPLAY_TOKEN");
  int given[O_HELP + 1] = {0};
  int help = 0;
  long l;
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if (ch == '?' || ch == ':') {
      char why[256];
      fprintf(stderr, "ibrl-replayctl: %s (see --help)\n", cli_bad_option_msg(why, sizeof why, ch, argv[optind - 1], opts));
      return -1;
    }
    if (ch >= O_SHARDS && ch <= O_HELP) given[ch] = 1;
    const char *name = flag_name(ch);
    switch (ch) {
      case O_SHARDS: a->shards = optarg; break;
      case O_TOKEN: a->token = optarg; break;
      case O_TLS: a->tls_roots = optarg; break;
      case O_DEADLINE: if (parse_long(name, optarg, 1, 3600000, &l)) return -1; a->deadline_ms = (int)l; break;
      case O_JSON: a->json = 1; break;
      case O_SHARD: if (parse_long(name, optarg, 0, RC_MAX_SHARDS - 1, &l)) return -1; a->shard = (int)l; break;
      case O_RATEMS: if (parse_long(name, optarg, 0, 600000, &a->rate_ms)) return -1; break;
      case O_INTERVAL: if (parse_double(name, optarg, 0.01, 3600, &a->interval_s)) return -1; break;
      case O_COUNT: if (parse_long(name, optarg, 0, 1L << 40, &a->count)) return -1; break;
      case O_N: if (parse_long(name, optarg, 1, 1 << 16, &l)) return -1; a->n = (int)l; break;
      case O_FRAC: if (parse_double(name, optarg, 0, 1, &a->demo_fraction)) return -1; break;
      case O_TABLE: a->table = optarg; break;
      case O_OUT: a->out = optarg; break;
      case O_OBSKEYS: a->obs_keys = optarg; break;
      case O_CHUNK: if (parse_long(name, optarg, 1, 128, &l)) return -1; a->chunk = (int)l; break;
      case O_STACK: if (parse_long(name, optarg, 1, 64, &l)) return -1; a->stack = (int)l; break;
      case O_NSTEP: if (parse_long(name, optarg, 1, 16, &l)) return -1; a->nstep = (int)l; break;
      case O_GAMMA: if (parse_double(name, optarg, 0, 1, &a->gamma)) return -1; break;
      case O_NOCUT: a->cut_at_success = 0; break;
      case O_SEQBASE: if (parse_long(name, optarg, 0, 1L << 62, &l)) return -1; a->seq_base = (uint64_t)l; break;
      case O_MAXDRAWS: if (parse_long(name, optarg, 1, 1L << 40, &a->max_draws)) return -1; break;
      case O_MAXEP: if (parse_long(name, optarg, 1, 1 << 30, &l)) return -1; a->max_episodes = (int)l; break;
      case O_PSHARD: if (parse_long(name, optarg, 0, RC_MAX_SHARDS - 1, &l)) return -1; a->params_shard = (int)l; break;
      case O_WAIT: if (parse_long(name, optarg, 0, 3600000, &a->wait_ms)) return -1; break;
      case O_SPI: if (parse_double(name, optarg, 0, 1e9, &a->spi)) return -1; break;
      case O_EBUF: if (parse_double(name, optarg, 0, 1e12, &a->error_buffer)) return -1; break;
      case O_MINSIZE: if (parse_long(name, optarg, 0, 1L << 50, &a->min_size)) return -1; break;
      case O_HELP: help = 1; break;
      default: return -1;
    }
  }
  *npos = 0;
  for (int i = optind; i < argc; i++) {
    if (*npos == 0)
      a->cmd = argv[i];
    else if (*npos < 8)
      pos[*npos - 1] = argv[i];
    (*npos)++;
  }
  if (*npos > 0) (*npos)--; /* positional arguments after the command */
  const cmd_help *cmd = NULL;
  if (a->cmd)
    for (const cmd_help *c = cmds; c->name; c++)
      if (!strcmp(c->name, a->cmd)) cmd = c;
  if (help) {
    if (cmd)
      printf("usage: ibrl-replayctl [global flags] %s(global flags: see ibrl-replayctl --help)\n", cmd->text);
    else
      usage(stdout);
    return 1;
  }
  if (a->cmd == NULL) {
    fprintf(stderr, "ibrl-replayctl: no command given\n");
    usage(stderr);
    return -1;
  }
  if (cmd == NULL) {
    fprintf(stderr, "ibrl-replayctl: unknown command '%s' (see --help)\n", a->cmd);
    return -1;
  }
  for (int f = O_SHARD; f < O_HELP; f++) {
    if (!given[f]) continue;
    int ok = 0;
    for (const int *p = cmd->flags; *p; p++) ok |= *p == f;
    if (!ok) {
      fprintf(stderr, "ibrl-replayctl: --%s does not apply to '%s' (see ibrl-replayctl %s --help)\n", flag_name(f),
              a->cmd, a->cmd);
      return -1;
    }
  }
  if (a->shards == NULL || a->shards[0] == '\0') {
    fprintf(stderr, "ibrl-replayctl: no shards given HINT: pass --shards host:port[,host:port...] or set "
                    "IBRL_REPLAY_SHARDS\n");
    return -1;
  }
  return 0;
}

/* A shard that refused our token answers UNAUTHENTICATED with a HINT for server operators
 * ("send metadata 'authorization: Bearer'..."). Say instead what a replayctl user does: the
 * server's HINT is cut and ours appended to the current message (ib_errmsg()). */
static void token_hint(void) {
  const char *m = ib_errmsg();
  if (strstr(m, "UNAUTHENTICATED") == NULL) return;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", m);
  char *h = strstr(msg, " HINT");
  if (h != NULL) *h = '\0';
  ib_fail(IB_EINVAL, "%s HINT: pass the shard's token with --token T or IBRL_REPLAY_TOKEN=T (the token ibrl-replay was "
          "started with)", msg);
}

int ctl_fail(int rc, const char *what) {
  token_hint();
  fprintf(stderr, "ibrl-replayctl: %s: %s\n", what, ib_errmsg());
  if (rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT) return CTL_EUNREACH;
  return CTL_ESERVER;
}

/* ---- output helpers ---- */

void ctl_json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

/* JSON has no Inf or NaN: those print as null (e.g. an unlimited error buffer). */
static void json_num(double x) {
  if (isfinite(x))
    printf("%.9g", x);
  else
    printf("null");
}

static double item_bytes(const rc_shard_info *s) { return (2.0 * s->obs_dim + s->act_dim + 2) * 4 + 31; }

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Prints one snapshot of the shards; prev (may be NULL) with dt seconds gives the rates. */
static void print_info(const ctl_args *a, rc_client *c, const int *ok, const rc_shard_info *cur,
                       const rc_shard_info *prev, double dt, const int *errs, const char (*errmsg)[512]) {
  int n = rc_client_shard_count(c);
  if (a->json) {
    printf("{\"shards\":[");
    int first = 1;
    for (int i = 0; i < n; i++) {
      if (a->shard >= 0 && a->shard != i) continue;
      if (!first) putchar(',');
      first = 0;
      printf("{\"shard\":%d,\"target\":", i);
      ctl_json_str(rc_client_target(c, i));
      if (!ok[i]) {
        printf(",\"reachable\":%s,\"error\":", errs[i] == IB_EUNAVAIL || errs[i] == IB_ETIMEDOUT ? "false" : "true");
        ctl_json_str(errmsg[i]);
        putchar('}');
        continue;
      }
      const rc_shard_info *s = &cur[i];
      printf(",\"reachable\":true,\"shard_index\":%d,\"obs_dim\":%d,\"act_dim\":%d,\"rtt_ms\":%.3f,\"tables\":[",
             s->shard_index, s->obs_dim, s->act_dim, s->rtt_ms);
      for (int t = 0; t < s->n_tables; t++) {
        const rc_table_info *ti = &s->tables[t];
        printf("%s{\"name\":", t ? "," : "");
        ctl_json_str(ti->name);
        printf(",\"kind\":\"%s\",\"size\":%llu,\"capacity\":%llu,\"inserted\":%llu,\"sampled\":%llu,"
               "\"duplicates\":%llu,\"bytes\":%.0f",
               ti->kind == 0 ? "demo" : "online", (unsigned long long)ti->size, (unsigned long long)ti->capacity,
               (unsigned long long)ti->inserted, (unsigned long long)ti->sampled, (unsigned long long)ti->duplicates,
               (double)ti->size * item_bytes(s));
        if (prev && dt > 0)
          printf(",\"inserts_per_s\":%.1f,\"samples_per_s\":%.1f",
                 (double)(ti->inserted - prev[i].tables[t].inserted) / dt,
                 (double)(ti->sampled - prev[i].tables[t].sampled) / dt);
        else
          printf(",\"inserts_per_s\":null,\"samples_per_s\":null");
        printf(",\"shard_inserts_per_s\":%.1f,\"shard_samples_per_s\":%.1f,\"allocated_bytes\":%llu",
               ti->inserts_per_s, ti->samples_per_s, (unsigned long long)ti->bytes);
        putchar('}');
      }
      const rc_limiter_info *l = &s->limiter;
      printf("],\"limiter\":{\"paused\":%s,\"samples_per_insert\":", l->paused ? "true" : "false");
      json_num(l->samples_per_insert);
      printf(",\"error_buffer\":");
      json_num(l->error_buffer);
      printf(",\"min_size\":%llu,\"inserts\":%llu,\"samples\":%llu,\"insert_blocked_s\":%.3f,\"sample_blocked_s\":%.3f,"
             "\"insert_timeouts\":%llu,\"sample_timeouts\":%llu,\"insert_partial_acks\":%llu}",
             (unsigned long long)l->min_size, (unsigned long long)l->inserts, (unsigned long long)l->samples,
             l->insert_blocked_s, l->sample_blocked_s, (unsigned long long)l->insert_timeouts,
             (unsigned long long)l->sample_timeouts, (unsigned long long)l->insert_partial_acks);
      uint64_t wmin = UINT64_MAX, wmax = 0;
      printf(",\"actors\":[");
      for (int k = 0; k < s->n_actors; k++) {
        const rc_actor_info *ai = &s->actors[k];
        if (ai->weight_version < wmin) wmin = ai->weight_version;
        if (ai->weight_version > wmax) wmax = ai->weight_version;
        printf("%s{\"actor_id\":%u,\"last_seq\":%llu,\"episodes\":%u,\"successes\":%u,\"success_rate\":", k ? "," : "",
               ai->actor_id, (unsigned long long)ai->last_seq, ai->episodes, ai->successes);
        if (ai->episodes)
          printf("%.4f", (double)ai->successes / ai->episodes);
        else
          printf("null");
        printf(",\"weight_version\":%llu,\"inserted\":%llu,\"duplicates\":%llu}",
               (unsigned long long)ai->weight_version, (unsigned long long)ai->inserted,
               (unsigned long long)ai->duplicates);
      }
      printf("],\"weight_versions\":");
      if (s->n_actors)
        printf("{\"min\":%llu,\"max\":%llu}", (unsigned long long)wmin, (unsigned long long)wmax);
      else
        printf("null");
      printf(",\"params_version\":%llu,\"params_bytes\":%llu,\"params_age_s\":", (unsigned long long)s->params_version,
             (unsigned long long)s->params_bytes);
      if (s->params_version)
        printf("%.3f,\"params_published_unix_ms\":%llu", s->params_age_s,
               (unsigned long long)s->params_published_unix_ms);
      else
        printf("null,\"params_published_unix_ms\":null");
      printf(",\"checkpoints\":%llu,\"durability\":", (unsigned long long)s->checkpoints);
      ctl_json_str(s->durability);
      printf(",\"durability_broken\":%s,\"durability_error\":", s->durability_broken ? "true" : "false");
      if (s->durability_broken)
        ctl_json_str(s->durability_error);
      else
        printf("null");
      printf(",\"durability_broken_s\":%.3f,\"durability_retries\":%llu,\"durability_retry_in_s\":%.3f",
             s->durability_broken_s, (unsigned long long)s->durability_retries, s->durability_retry_in_s);
      printf(",\"salvage\":");
      if (s->salvage[0])
        ctl_json_str(s->salvage);
      else
        printf("null");
      printf(",\"restore_missing_acked\":%llu", (unsigned long long)s->restore_missing_acked);
      putchar('}');
    }
    printf("]}\n");
    fflush(stdout);
    return;
  }
  for (int i = 0; i < n; i++) {
    if (a->shard >= 0 && a->shard != i) continue;
    if (!ok[i]) {
      printf("shard %d  %s  ERROR: %s\n\n", i, rc_client_target(c, i), errmsg[i]);
      continue;
    }
    const rc_shard_info *s = &cur[i];
    char page[64] = "";
    if (s->params_version) snprintf(page, sizeof page, " (%.1f MB, %.1f s ago)", s->params_bytes / 1e6, s->params_age_s);
    printf("shard %d  %s  index %d  obs %d  act %d  rtt %.2f ms  params v%llu%s  checkpoints %llu  durability %s\n", i,
           rc_client_target(c, i), s->shard_index, s->obs_dim, s->act_dim, s->rtt_ms,
           (unsigned long long)s->params_version, page, (unsigned long long)s->checkpoints, s->durability);
    if (s->durability_broken) {
      char next[48] = "";
      if (s->durability_retry_in_s > 0) snprintf(next, sizeof next, ", next in %.1f s", s->durability_retry_in_s);
      printf("  durability: BROKEN for %.1f s, %llu failed recovery attempt(s)%s: %s\n", s->durability_broken_s,
             (unsigned long long)s->durability_retries, next, s->durability_error);
    } else {
      printf("  durability: ok\n");
    }
    if (s->salvage[0]) printf("  SALVAGED at start (--salvage): %s\n", s->salvage);
    if (s->restore_missing_acked > 0)
      printf("  LOST AT START: %llu row(s) acknowledged as durable were missing after the restore: a disk that "
             "lost data it reported flushed, or log files moved away (the shard's log says more)\n",
             (unsigned long long)s->restore_missing_acked);
    printf("  %-8s %-6s %12s %12s %10s %10s %10s %10s %12s %12s %10s %10s %10s\n", "table", "kind", "size", "capacity",
           "ins/s", "smp/s", "ins/s 10s", "smp/s 10s", "inserted", "sampled", "dups", "MB", "alloc MB");
    for (int t = 0; t < s->n_tables; t++) {
      const rc_table_info *ti = &s->tables[t];
      char ins[32] = "-", smp[32] = "-";
      if (prev && dt > 0) {
        snprintf(ins, sizeof ins, "%.1f", (double)(ti->inserted - prev[i].tables[t].inserted) / dt);
        snprintf(smp, sizeof smp, "%.1f", (double)(ti->sampled - prev[i].tables[t].sampled) / dt);
      }
      printf("  %-8s %-6s %12llu %12llu %10s %10s %10.1f %10.1f %12llu %12llu %10llu %10.1f %10.1f\n", ti->name,
             ti->kind == 0 ? "demo" : "online", (unsigned long long)ti->size, (unsigned long long)ti->capacity, ins, smp,
             ti->inserts_per_s, ti->samples_per_s, (unsigned long long)ti->inserted, (unsigned long long)ti->sampled,
             (unsigned long long)ti->duplicates, (double)ti->size * item_bytes(s) / 1e6, ti->bytes / 1e6);
    }
    const rc_limiter_info *l = &s->limiter;
    char ratio[64];
    limiter_ratio(ratio, sizeof ratio, l->samples_per_insert, l->error_buffer);
    printf("  limiter: %s  %s  min_size %llu  inserts %llu  samples %llu  blocked ins %.2f s / "
           "smp %.2f s  timeouts ins %llu / smp %llu  partial acks %llu\n",
           l->paused ? "PAUSED" : "active", ratio, (unsigned long long)l->min_size,
           (unsigned long long)l->inserts, (unsigned long long)l->samples, l->insert_blocked_s, l->sample_blocked_s,
           (unsigned long long)l->insert_timeouts, (unsigned long long)l->sample_timeouts,
           (unsigned long long)l->insert_partial_acks);
    if (s->n_actors) {
      printf("  %-10s %12s %11s %9s %8s %14s %12s %10s\n", "actor", "last_seq", "recent eps", "successes", "success",
             "weight_ver", "stored", "dups");
      for (int k = 0; k < s->n_actors; k++) {
        const rc_actor_info *ai = &s->actors[k];
        char rate[16] = "-";
        if (ai->episodes) snprintf(rate, sizeof rate, "%.0f%%", 100.0 * ai->successes / ai->episodes);
        printf("  %-10u %12llu %11u %9u %8s %14llu %12llu %10llu\n", ai->actor_id, (unsigned long long)ai->last_seq,
               ai->episodes, ai->successes, rate, (unsigned long long)ai->weight_version,
               (unsigned long long)ai->inserted, (unsigned long long)ai->duplicates);
      }
    } else {
      printf("  no actors yet\n");
    }
    printf("\n");
  }
  fflush(stdout);
}

/* Reads every selected shard; returns the worst exit code (0, 1 or 3). */
static int snapshot(rc_client *c, const ctl_args *a, rc_shard_info *out, int *ok, int *errs, char (*errmsg)[512]) {
  int n = rc_client_shard_count(c), code = CTL_OK;
  for (int i = 0; i < n; i++) {
    ok[i] = 0;
    if (a->shard >= 0 && a->shard != i) continue;
    int rc = rc_info_get(c, i, &out[i]);
    errs[i] = rc;
    if (rc == IB_OK) {
      ok[i] = 1;
    } else {
      token_hint();
      snprintf(errmsg[i], 512, "%s", ib_errmsg());
      int e = rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT ? CTL_EUNREACH : CTL_ESERVER;
      if (e > code) code = e;
    }
  }
  return code;
}

static int check_shard(const ctl_args *a, rc_client *c) {
  if (a->shard >= rc_client_shard_count(c)) {
    fprintf(stderr, "ibrl-replayctl: --shard %d is outside [0, %d) HINT: count the --shards list\n", a->shard,
            rc_client_shard_count(c));
    return -1;
  }
  return 0;
}

static int cmd_info(rc_client *c, const ctl_args *a, int watch) {
  int n = rc_client_shard_count(c);
  rc_shard_info *cur = ib_xcalloc((size_t)n, sizeof *cur), *prev = ib_xcalloc((size_t)n, sizeof *prev);
  int ok[RC_MAX_SHARDS], pok[RC_MAX_SHARDS] = {0}, errs[RC_MAX_SHARDS];
  char (*errmsg)[512] = ib_xcalloc((size_t)n, 512);
  int code = CTL_OK;
  if (!watch) {
    double t0 = ib_now_s();
    int have_prev = 0;
    if (a->rate_ms > 0) {
      snapshot(c, a, prev, pok, errs, errmsg);
      sleep_s((double)a->rate_ms / 1000.0);
      have_prev = 1;
    }
    double dt = ib_now_s() - t0;
    code = snapshot(c, a, cur, ok, errs, errmsg);
    for (int i = 0; i < n; i++)
      if (ok[i] && !pok[i]) have_prev = 0; /* a shard came up between the snapshots: no rates */
    print_info(a, c, ok, cur, have_prev ? prev : NULL, dt, errs, (const char(*)[512])errmsg);
  } else {
    double tprev = 0;
    int have_prev = 0;
    for (long k = 0; a->count == 0 || k < a->count; k++) {
      if (k > 0) sleep_s(a->interval_s);
      double t = ib_now_s();
      code = snapshot(c, a, cur, ok, errs, errmsg);
      int rates = have_prev;
      for (int i = 0; i < n; i++)
        if (ok[i] && !pok[i]) rates = 0;
      /* Clear the terminal and redraw; into a pipe or file, a dated separator instead of escapes. */
      if (!a->json && isatty(STDOUT_FILENO))
        printf("\033[H\033[J");
      else if (!a->json)
        printf("---- refresh %ld (%.1f s)\n", k + 1, k > 0 ? t - tprev : 0.0);
      print_info(a, c, ok, cur, rates ? prev : NULL, t - tprev, errs, (const char(*)[512])errmsg);
      memcpy(prev, cur, (size_t)n * sizeof *cur);
      memcpy(pok, ok, sizeof ok);
      tprev = t;
      have_prev = 1;
    }
  }
  free(cur);
  free(prev);
  free(errmsg);
  return code;
}

#define SAMPLE_CHUNK 1024 /* rows per Sample call of `sample` */

int ctl_sample_fail(rc_client *c, int rc, const char *what) {
  if (rc != IB_ETIMEDOUT && rc != IB_EUNAVAIL) return ctl_fail(rc, what);
  char why[1024] = "";
  size_t len = 0;
  int up = 1;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  for (int i = 0; i < rc_client_shard_count(c) && up; i++) {
    if (rc_info_get(c, i, info) != IB_OK) {
      up = 0;
      break;
    }
    uint64_t online = 0;
    for (int t = 0; t < info->n_tables; t++)
      if (info->tables[t].kind != 0) online += info->tables[t].size;
    if (len < sizeof why)
      len += (size_t)snprintf(why + len, sizeof why - len, "%sshard %d: online %llu, min_size %llu%s", i ? "; " : "",
                              i, (unsigned long long)online, (unsigned long long)info->limiter.min_size,
                              info->limiter.paused ? ", paused" : "");
  }
  free(info);
  if (!up) return ctl_fail(rc, what);
  fprintf(stderr, "ibrl-replayctl: %s: the shards answer, but Sample did not complete within the deadline: held by "
                  "the rate limiter (%s) HINT: wait for actors to fill the online table to min_size, raise "
                  "--deadline-ms, or lift the gate for a moment (`ibrl-replayctl ratelimit pause`, then `resume`)\n",
          what, why);
  return CTL_ESERVER;
}

static int cmd_sample(rc_client *c, const ctl_args *a) {
  if (a->n <= 0) {
    fprintf(stderr, "ibrl-replayctl: sample needs --n K (K >= 1)\n");
    return CTL_EUSAGE;
  }
  /* The dims from the first shard that answers: one shard down must not stop the others. */
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  int rc = IB_EUNAVAIL;
  for (int i = 0; i < rc_client_shard_count(c) && rc != IB_OK; i++) rc = rc_info_get(c, i, info);
  int od = info->obs_dim, ad = info->act_dim;
  free(info);
  if (rc != IB_OK) return ctl_fail(rc, "sample");
  /* K rows are drawn in calls of at most SAMPLE_CHUNK rows: a shard refuses batches above its
   * --max-sample-batch (default 4096), and K may be larger. With --demo-fraction F each call
   * asks for its share of round(K*F) exactly, so the total is what one call would give. */
  rc_batch b, cb;
  rc_batch_init(&b, a->n, od, ad);
  rc_batch_init(&cb, IB_MIN(a->n, SAMPLE_CHUNK), od, ad);
  long want_demo = a->demo_fraction >= 0 ? lround((double)a->n * a->demo_fraction) : 0;
  long got_demo = 0;
  uint64_t skipped = 0;
  for (int done = 0; done < a->n;) {
    int m = IB_MIN(a->n - done, SAMPLE_CHUNK);
    double f = -1;
    if (a->demo_fraction >= 0) {
      long d = lround((double)(done + m) * a->demo_fraction) - lround((double)done * a->demo_fraction);
      if (done + m == a->n) d = want_demo - got_demo;
      f = (double)d / m;
      got_demo += d;
    }
    rc = rc_sample(c, &cb, m, f);
    if (rc != IB_OK) {
      rc_batch_free(&b);
      rc_batch_free(&cb);
      return ctl_sample_fail(c, rc, "sample");
    }
    for (int r = 0; r < cb.n; r++) ctl_batch_copy_row(&b, b.n + r, &cb, r);
    b.n += cb.n;
    b.n_demo += cb.n_demo;
    skipped |= cb.shards_skipped;
    done += m;
  }
  b.shards_skipped = skipped;
  rc_batch_free(&cb);
  static const char *prop[] = {"il", "rl", "demo"};
  if (a->json) printf("{\"n\":%d,\"n_demo\":%d,\"obs_dim\":%d,\"act_dim\":%d,\"items\":[", b.n, b.n_demo, od, ad);
  for (int r = 0; r < b.n; r++) {
    const float *o = b.obs + (size_t)r * od, *no = b.next_obs + (size_t)r * od, *ac = b.action + (size_t)r * ad;
    const char *pn = b.proposer[r] < 3 ? prop[b.proposer[r]] : "?";
    if (a->json) {
      printf("%s{\"from_demo\":%s,\"proposer\":\"%s\",\"actor_id\":%u,\"seq\":%llu,\"weight_version\":%llu,"
             "\"reward\":%.9g,\"discount\":%.9g,\"episode_end\":%s,\"episode_success\":%s,\"obs\":[",
             r ? "," : "", b.from_demo[r] ? "true" : "false", pn, b.actor_id[r], (unsigned long long)b.seq[r],
             (unsigned long long)b.weight_version[r], b.reward[r], b.discount[r], b.episode_end[r] ? "true" : "false",
             b.episode_success[r] ? "true" : "false");
      for (int j = 0; j < od; j++) printf("%s%.9g", j ? "," : "", o[j]);
      printf("],\"action\":[");
      for (int j = 0; j < ad; j++) printf("%s%.9g", j ? "," : "", ac[j]);
      printf("],\"next_obs\":[");
      for (int j = 0; j < od; j++) printf("%s%.9g", j ? "," : "", no[j]);
      printf("]}");
    } else {
      printf("#%d %s proposer=%s actor=%u seq=%llu wv=%llu reward=%g discount=%g end=%d success=%d\n", r,
             b.from_demo[r] ? "demo  " : "online", pn, b.actor_id[r], (unsigned long long)b.seq[r],
             (unsigned long long)b.weight_version[r], b.reward[r], b.discount[r], b.episode_end[r],
             b.episode_success[r]);
      printf("   obs[%d] ", od);
      for (int j = 0; j < od && j < 8; j++) printf("%.4g ", o[j]);
      printf("%s\n   action[%d] ", od > 8 ? "..." : "", ad);
      for (int j = 0; j < ad && j < 8; j++) printf("%.4g ", ac[j]);
      printf("%s\n", ad > 8 ? "..." : "");
    }
  }
  if (a->json) {
    /* A shard that was down does not fail the call (the rows come from the others, as for a
     * learner), but the user must know the draw is not over all shards: listed here, exit 3. */
    printf("],\"shards_skipped\":[");
    for (int i = 0, k = 0; i < rc_client_shard_count(c) && i < 64; i++)
      if (b.shards_skipped >> i & 1) printf("%s%d", k++ ? "," : "", i);
    printf("]}\n");
  }
  int code = CTL_OK;
  for (int i = 0; i < rc_client_shard_count(c) && i < 64; i++)
    if (b.shards_skipped >> i & 1) {
      fprintf(stderr, "ibrl-replayctl: sample: shard %d (%s) was unreachable; the rows came from the other shards "
                      "HINT: check it with `ibrl-replayctl health`\n", i, rc_client_target(c, i));
      code = CTL_EUNREACH;
    }
  rc_batch_free(&b);
  return code;
}

static int cmd_checkpoint(rc_client *c, const ctl_args *a) {
  int code = CTL_OK;
  if (a->json) printf("{\"shards\":[");
  int first = 1;
  for (int i = 0; i < rc_client_shard_count(c); i++) {
    if (a->shard >= 0 && a->shard != i) continue;
    rc_checkpoint_info ci;
    int rc = rc_checkpoint(c, i, &ci);
    if (rc != IB_OK) {
      int e = ctl_fail(rc, "checkpoint");
      if (e > code) code = e;
      if (a->json) {
        printf("%s{\"shard\":%d,\"ok\":false,\"error\":", first ? "" : ",", i);
        ctl_json_str(ib_errmsg());
        printf("}");
      }
    } else if (a->json) {
      printf("%s{\"shard\":%d,\"ok\":true,\"path\":", first ? "" : ",", i);
      ctl_json_str(ci.path);
      printf(",\"items\":%llu,\"seconds\":%.3f}", (unsigned long long)ci.items, ci.seconds);
    } else {
      printf("shard %d  %s  checkpoint %s: %llu items in %.3f s\n", i, rc_client_target(c, i), ci.path,
             (unsigned long long)ci.items, ci.seconds);
    }
    first = 0;
  }
  if (a->json) printf("]}\n");
  return code;
}

static int cmd_params(rc_client *c, const ctl_args *a) {
  if (a->params_shard >= rc_client_shard_count(c)) {
    fprintf(stderr, "ibrl-replayctl: --params-shard %d is outside [0, %d)\n", a->params_shard,
            rc_client_shard_count(c));
    return CTL_EUSAGE;
  }
  pc_blob blob = {0};
  uint64_t stored = 0;
  double t0 = ib_now_s();
  int rc = pc_get_if_newer(c, a->params_shard, 0, 0, &blob, &stored);
  if (rc < 0) {
    pc_blob_free(&blob);
    return ctl_fail(rc, "params");
  }
  uint64_t version = rc == 1 ? blob.version : 0;
  size_t size = rc == 1 ? blob.len : 0;
  uint64_t newer = 0;
  size_t newer_size = 0;
  double waited = 0;
  if (a->wait_ms > 0) {
    double tw = ib_now_s();
    rc = pc_get_if_newer(c, a->params_shard, version, a->wait_ms, &blob, &stored);
    waited = ib_now_s() - tw;
    if (rc < 0) {
      pc_blob_free(&blob);
      return ctl_fail(rc, "params");
    }
    if (rc == 1) {
      newer = blob.version;
      newer_size = blob.len;
    }
  }
  (void)t0;
  /* The age comes from Info (GetIfNewer carries no time). It describes the shard's current version,
   * which is `version` unless a newer one arrived in between (then the age is left out). */
  rc_shard_info *info = ib_xmalloc(sizeof *info);
  int have_age = rc_info_get(c, a->params_shard, info) == IB_OK && version != 0 && info->params_version == version;
  double age = have_age ? info->params_age_s : 0;
  uint64_t pub_ms = have_age ? info->params_published_unix_ms : 0;
  free(info);
  if (a->json) {
    printf("{\"shard\":%d,\"version\":%llu,\"bytes\":%zu,\"age_s\":", a->params_shard, (unsigned long long)version,
           size);
    if (have_age)
      printf("%.3f,\"published_unix_ms\":%llu", age, (unsigned long long)pub_ms);
    else
      printf("null,\"published_unix_ms\":null");
    if (a->wait_ms > 0)
      printf(",\"waited_s\":%.3f,\"newer_version\":%llu,\"newer_bytes\":%zu", waited, (unsigned long long)newer,
             newer_size);
    printf("}\n");
  } else {
    if (version == 0)
      printf("shard %d  %s  no weights published yet\n", a->params_shard, rc_client_target(c, a->params_shard));
    else if (have_age)
      printf("shard %d  %s  params version %llu  %zu bytes (%.2f MB)  published %.1f s ago\n", a->params_shard,
             rc_client_target(c, a->params_shard), (unsigned long long)version, size, size / 1e6, age);
    else
      printf("shard %d  %s  params version %llu  %zu bytes (%.2f MB)  age: unknown (a newer version arrived)\n",
             a->params_shard, rc_client_target(c, a->params_shard), (unsigned long long)version, size, size / 1e6);
    if (a->wait_ms > 0) {
      if (newer)
        printf("  newer version %llu (%zu bytes) arrived after %.3f s\n", (unsigned long long)newer, newer_size, waited);
      else
        printf("  nothing newer within %ld ms\n", a->wait_ms);
    }
  }
  pc_blob_free(&blob);
  return CTL_OK;
}

static int cmd_health(rc_client *c, const ctl_args *a) {
  int code = CTL_OK;
  if (a->json) printf("{\"shards\":[");
  int first = 1;
  for (int i = 0; i < rc_client_shard_count(c); i++) {
    if (a->shard >= 0 && a->shard != i) continue;
    int serving = 0;
    int rc = rc_health(c, i, "", &serving);
    const char *state = rc == IB_OK ? (serving ? "SERVING" : "NOT_SERVING")
                        : (rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT) ? "UNREACHABLE" : "ERROR";
    int e = rc == IB_OK ? (serving ? CTL_OK : CTL_ESERVER) : (rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT) ? CTL_EUNREACH
                                                                                                       : CTL_ESERVER;
    if (e > code) code = e;
    if (a->json) {
      printf("%s{\"shard\":%d,\"target\":", first ? "" : ",", i);
      ctl_json_str(rc_client_target(c, i));
      printf(",\"status\":\"%s\"", state);
      if (rc != IB_OK) {
        printf(",\"error\":");
        ctl_json_str(ib_errmsg());
      }
      printf("}");
    } else {
      printf("shard %d  %s  %s%s%s\n", i, rc_client_target(c, i), state, rc != IB_OK ? "  " : "",
             rc != IB_OK ? ib_errmsg() : "");
    }
    first = 0;
  }
  if (a->json) printf("]}\n");
  return code;
}

static int cmd_ratelimit(rc_client *c, const ctl_args *a, const char *op_name) {
  rc_limit_op op;
  if (op_name == NULL || !strcmp(op_name, "get"))
    op = RC_LIMIT_GET;
  else if (!strcmp(op_name, "pause"))
    op = RC_LIMIT_PAUSE;
  else if (!strcmp(op_name, "resume"))
    op = RC_LIMIT_RESUME;
  else if (!strcmp(op_name, "set"))
    op = RC_LIMIT_SET;
  else {
    fprintf(stderr, "ibrl-replayctl: ratelimit '%s' is unknown; use get, pause, resume or set\n", op_name);
    return CTL_EUSAGE;
  }
  if (op == RC_LIMIT_SET && (a->spi < 0 || a->min_size < 0 || (a->spi > 0 && a->error_buffer < 0))) {
    fprintf(stderr, "ibrl-replayctl: ratelimit set needs --spi and --min-size, and --error-buffer unless --spi is 0 "
                    "(ratio off) HINT: e.g. ratelimit set --spi 256 --error-buffer 100000 --min-size 500\n");
    return CTL_EUSAGE;
  }
  rc_limiter_info set = {0}, out;
  set.samples_per_insert = a->spi;
  set.error_buffer = a->error_buffer < 0 ? 0 : a->error_buffer;
  set.min_size = (uint64_t)(a->min_size < 0 ? 0 : a->min_size);
  int code = CTL_OK, first = 1;
  if (a->json) printf("{\"shards\":[");
  for (int i = 0; i < rc_client_shard_count(c); i++) {
    if (a->shard >= 0 && a->shard != i) continue;
    int rc = rc_ratelimit(c, i, op, &set, &out);
    if (rc != IB_OK) {
      int e = ctl_fail(rc, "ratelimit");
      if (e > code) code = e;
      if (a->json) { /* every selected shard has an entry, as in checkpoint */
        printf("%s{\"shard\":%d,\"ok\":false,\"error\":", first ? "" : ",", i);
        ctl_json_str(ib_errmsg());
        printf("}");
        first = 0;
      }
      continue;
    }
    if (a->json) {
      printf("%s{\"shard\":%d,\"ok\":true,\"paused\":%s,\"samples_per_insert\":", first ? "" : ",", i,
             out.paused ? "true" : "false");
      json_num(out.samples_per_insert);
      printf(",\"error_buffer\":");
      json_num(out.error_buffer);
      printf(",\"min_size\":%llu}", (unsigned long long)out.min_size);
    } else
    {
      char ratio[64];
      limiter_ratio(ratio, sizeof ratio, out.samples_per_insert, out.error_buffer);
      printf("shard %d  limiter %s  %s  min_size %llu\n", i, out.paused ? "PAUSED" : "active", ratio,
             (unsigned long long)out.min_size);
    }
    first = 0;
  }
  if (a->json) printf("]}\n");
  return code;
}

/* A --tls-roots file that is readable but holds no PEM certificate: gRPC would only log that it
 * loaded no roots and every shard would look unreachable (exit 3). Refuse it here as the usage
 * error it is. A missing file is left to rc_client_open, which names it. Returns 0 or -1. */
static int tls_roots_check(const char *path) {
  if (path == NULL) return 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  char buf[4096];
  int found = 0;
  while (!found && fgets(buf, sizeof buf, f) != NULL) found = strstr(buf, "-----BEGIN CERTIFICATE-----") != NULL;
  fclose(f);
  if (found) return 0;
  fprintf(stderr, "ibrl-replayctl: --tls-roots '%s' holds no PEM certificate (no '-----BEGIN CERTIFICATE-----' line) "
                  "HINT: pass the PEM file of the CA that signed the shards' certificate (ibrl-replay --tls-cert)\n",
          path);
  return -1;
}

int main(int argc, char **argv) {
  demo_writer_init(); /* export writes HDF5: a full disk must give an error, not a crash at exit */
  ctl_args a;
  const char *pos[8] = {0};
  int npos = 0;
  int p = parse_args(&a, argc, argv, pos, &npos);
  if (p < 0) return CTL_EUSAGE;
  if (p > 0) return CTL_OK;
  const char *cmd = a.cmd;
  int max_pos = !strcmp(cmd, "import-demos") || !strcmp(cmd, "ratelimit") ? 1 : 0;
  if (npos > max_pos) {
    fprintf(stderr, "ibrl-replayctl: unexpected argument '%s' for '%s' (see ibrl-replayctl %s --help)\n",
            pos[max_pos] ? pos[max_pos] : "?", cmd, cmd);
    return CTL_EUSAGE;
  }
  rc_opts o = {0};
  o.shards = a.shards;
  o.token = a.token;
  o.tls_roots = a.tls_roots;
  o.deadline_ms = a.deadline_ms;
  o.seed = 1;
  if (tls_roots_check(a.tls_roots) != 0) return CTL_EUSAGE;
  rc_client *c = NULL;
  int rc = rc_client_open(&c, &o);
  if (rc != IB_OK) {
    fprintf(stderr, "ibrl-replayctl: %s\n", ib_errmsg());
    return CTL_EUSAGE;
  }
  int code;
  if (check_shard(&a, c) != 0)
    code = CTL_EUSAGE;
  else if (!strcmp(cmd, "info"))
    code = cmd_info(c, &a, 0);
  else if (!strcmp(cmd, "watch"))
    code = cmd_info(c, &a, 1);
  else if (!strcmp(cmd, "sample"))
    code = cmd_sample(c, &a);
  else if (!strcmp(cmd, "export"))
    code = ctl_export(c, &a);
  else if (!strcmp(cmd, "import-demos")) {
    a.in = npos > 0 ? pos[0] : NULL;
    code = ctl_import(c, &a);
  } else if (!strcmp(cmd, "checkpoint"))
    code = cmd_checkpoint(c, &a);
  else if (!strcmp(cmd, "params"))
    code = cmd_params(c, &a);
  else if (!strcmp(cmd, "health"))
    code = cmd_health(c, &a);
  else
    code = cmd_ratelimit(c, &a, npos > 0 ? pos[0] : NULL);
  rc_client_close(c);
  return code;
}
