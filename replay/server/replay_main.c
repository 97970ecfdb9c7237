/* replay_main.c: ibrl-replay, one replay shard as a gRPC server (see rsrv.h for the service).
 *
 * Design. Flags come from getopt_long; every flag can also come from the environment as
 * IBRL_REPLAY_<FLAG> (upper case, '-' -> '_'), for Kubernetes; a flag on the command line wins.
 * Both are collected as text first (common/cli.h) and then go through one setter, so they
 * validate identically and a variable that a flag overrides is never parsed. Exit codes
 * follow DEVELOPERS.md: 2 for bad flags and for every failure before serving (setup), 1 for a
 * failure after it (the final checkpoint). SIGTERM/SIGINT are blocked
 * in every thread before gRPC starts its own, and the main thread waits for them with
 * sigtimedwait, waking every 100 ms for rsrv_tick: the periodic checkpoint, and the checkpoint
 * that heals a broken write-ahead log (a full or failing disk) with backoff, so a shard whose disk
 * comes back recovers without anyone running `ibrl-replayctl checkpoint`. On a signal it drains
 * and stops in the order of docs/grpc-core.md (rsrv_stop) and writes a final checkpoint. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "cli.h"
#include "ib.h"
#include "log.h"
#include "rsrv.h"
#include "store.h"

enum {
  O_PORT = 0, O_BIND, O_SHARD, O_OBS, O_ACT, O_ONCAP, O_DEMOCAP, O_SPI, O_EBUF, O_MINSIZE, O_CKDIR,
  O_CKPER, O_DUR, O_SALVAGE, O_TOKEN, O_INSECURE, O_CERT, O_KEY, O_MAXMB, O_THREADS, O_POLLERS, O_MAXBATCH, O_MAXBLOCK, O_SEED,
  O_HELP, O_COUNT
};

static const struct option opts[] = {
    {"port", required_argument, NULL, O_PORT},
    {"bind", required_argument, NULL, O_BIND},
    {"shard-index", required_argument, NULL, O_SHARD},
    {"obs-dim", required_argument, NULL, O_OBS},
    {"act-dim", required_argument, NULL, O_ACT},
    {"online-capacity", required_argument, NULL, O_ONCAP},
    {"demo-capacity", required_argument, NULL, O_DEMOCAP},
    {"samples-per-insert", required_argument, NULL, O_SPI},
    {"error-buffer", required_argument, NULL, O_EBUF},
    {"min-size", required_argument, NULL, O_MINSIZE},
    {"ckpt-dir", required_argument, NULL, O_CKDIR},
    {"ckpt-period", required_argument, NULL, O_CKPER},
    {"durability", required_argument, NULL, O_DUR},
    {"salvage", no_argument, NULL, O_SALVAGE},
    {"token", required_argument, NULL, O_TOKEN},
    {"insecure", no_argument, NULL, O_INSECURE},
    {"tls-cert", required_argument, NULL, O_CERT},
    {"tls-key", required_argument, NULL, O_KEY},
    {"max-message-mb", required_argument, NULL, O_MAXMB},
    {"threads", required_argument, NULL, O_THREADS},
    {"pollers", required_argument, NULL, O_POLLERS},
    {"max-sample-batch", required_argument, NULL, O_MAXBATCH},
    {"max-block-ms", required_argument, NULL, O_MAXBLOCK},
    {"seed", required_argument, NULL, O_SEED},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-replay --obs-dim N --act-dim N [options]\n"
          "One replay shard (demo + online table) served over gRPC: ibrl.Replay, ibrl.Params and\n"
          "grpc.health.v1.Health. Every flag may also be set as IBRL_REPLAY_<FLAG> (e.g.\n"
          "IBRL_REPLAY_OBS_DIM=39); the command line wins.\n"
          "  --port N               listen port; 0 = pick one (printed as 'listening on HOST:PORT') [0]\n"
          "  --bind HOST            listen address [127.0.0.1]; non-loopback needs --token or --insecure\n"
          "  --shard-index N        this shard's index (clients send actor_id %% n_shards here) [0]\n"
          "  --obs-dim N            observation size (1..512), required\n"
          "  --act-dim N            action chunk size k*a (1..128), required\n"
          "  --online-capacity N    online FIFO ring size in transitions [1000000]\n"
          "  --demo-capacity N      demo table size in transitions [100000]\n"
          "                         (both tables are allocated and touched at start: resident memory is\n"
          "                         about (capacity x (2 obs + act + 2, rounded up to 16) x 4 + 22) bytes\n"
          "                         per table from the first second, plus about 1.6 MB per table for the\n"
          "                         registry of up to 4096 actor ids; tables of 8 MiB or more ask for\n"
          "                         transparent huge pages, and get back after each checkpoint those its\n"
          "                         fork split (Linux 6.1+); tables larger than the machine's memory, or\n"
          "                         than ulimit -v, are refused at start)\n"
          "  --samples-per-insert X rate limiter ratio (UTD x batch); 0 = no ratio [0]\n"
          "  --error-buffer X       allowed drift of the ratio; 0 = max(1, spi) * 1000 [0]\n"
          "  --min-size N           online items before sampling may start [0]\n"
          "  --ckpt-dir DIR         checkpoint (and log) directory; restored from on start. The\n"
          "                         sample and duplicate counts (each actor's too), which the log\n"
          "                         does not hold, are saved there once a second as they change\n"
          "                         (store.counts): a crash keeps them. With --durability wal, so\n"
          "                         is how many rows were acknowledged: a restore that finds fewer\n"
          "                         says so (a disk that lost flushed data). A warning at start says\n"
          "                         if its disk has less room than a full store's checkpoint;\n"
          "                         each checkpoint first reserves its whole size, so without\n"
          "                         room it fails at once, naming both sizes, and writes nothing\n"
          "  --ckpt-period S        seconds between periodic checkpoints; 0 = off [0]; a failed one is\n"
          "                         retried at this period (and logged each time)\n"
          "  --durability ckpt|wal  wal = acknowledge inserts only once logged to disk [ckpt]. If a write or\n"
          "                         fsync of the log fails (disk full, I/O errors), inserts get UNAVAILABLE\n"
          "                         naming the cause until a checkpoint succeeds; the shard tries one at\n"
          "                         once, then 1, 2, 4 ... up to 30 s apart (at most --ckpt-period when set;\n"
          "                         at least 9x a failed attempt's duration, so a large store's doomed\n"
          "                         checkpoints use at most ~10%% of the time), and heals once the disk is\n"
          "                         back. Sampling keeps working; `ibrl-replayctl info` shows the state\n"
          "  --salvage              if the restore refuses --ckpt-dir as damaged (a checkpoint or log that\n"
          "                         fails its CRC, a missing log: what a disk that lost flushed data\n"
          "                         leaves), keep every intact row and start, instead of exiting; the\n"
          "                         files as they were are linked into DIR/damaged-<UTC time>, and what\n"
          "                         was lost is logged. Other table specs or too small capacities are\n"
          "                         still refused\n"
          "  --token T              shared token: calls need 'authorization: Bearer T' (env IBRL_REPLAY_TOKEN)\n"
          "  --insecure             allow a non-loopback address without a token\n"
          "  --tls-cert PEM --tls-key PEM   serve TLS\n"
          "  --max-message-mb N     largest message accepted [16]\n"
          "  --threads N            worker threads [4]: one per two calls in progress takes calls (up to\n"
          "                         --pollers), the others stand by to take over while a call waits (rate\n"
          "                         limiter, long poll, log flush, checkpoint); at most threads-1 wait at once\n"
          "  --pollers N            the most worker threads taking calls at once, 1..threads [threads]; fewer\n"
          "                         wake less but run fewer handlers side by side\n"
          "  --max-sample-batch N   largest Sample batch [4096]\n"
          "  --max-block-ms N       cap on any rate-limited wait [10000]\n"
          "  --seed N               sampling seed [1]\n"
          "  --help                 this text\n"
          "Runs until SIGTERM / SIGINT (then: drains, writes a final checkpoint with --ckpt-dir, exit 0).\n"
          "Exit codes: 0 stopped cleanly, 1 the final checkpoint failed, 2 bad flags or setup (a bad value\n"
          "or variable, tables larger than memory, a non-loopback --bind without --token, a missing or non-PEM\n"
          "TLS file, a port in use, a --ckpt-dir that is not a directory or not writable, a checkpoint of\n"
          "other dims, or one that is corrupt or truncated without --salvage); setup is checked before the\n"
          "shard serves.\n");
}

typedef struct args {
  rsrv_config cfg;
  int insecure;
  int have_obs, have_act;
} args;

/* Refuses a --ckpt-dir that exists but where no file can be created (read-only file system,
 * permissions): otherwise the shard serves for hours and only its first checkpoint, often the
 * final one at SIGTERM, fails. Creates and removes a probe file. A missing directory is left to
 * rsrv_start, which creates it (and names the failure). Returns 0, or -1 after printing why. */
static int ckpt_dir_probe(const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/.ibrl-replay-probe.%ld", dir, (long)getpid()) >= (int)sizeof path) return 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    fprintf(stderr, "ibrl-replay: --ckpt-dir '%s' is not writable: cannot create a file in it (%s) HINT: give a "
                    "directory this user can write to (mount it read-write, check its owner and mode)\n",
            dir, strerror(errno));
    return -1;
  }
  close(fd);
  unlink(path);
  return 0;
}

/* A --tls-cert / --tls-key that is readable but holds no PEM block of its kind: gRPC then fails
 * to create the secure port and the only message is "cannot listen" (read as a port in use).
 * Name the file instead. A missing file is left to rsrv_start, which names it. Returns 0 or -1. */
static int pem_check(const char *flag, const char *path, const char *marker, const char *what) {
  if (path == NULL) return 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  char buf[4096];
  int found = 0;
  while (!found && fgets(buf, sizeof buf, f) != NULL) found = strstr(buf, marker) != NULL;
  fclose(f);
  if (found) return 0;
  fprintf(stderr, "ibrl-replay: --%s '%s' holds no PEM %s (no line with '%s') HINT: give the PEM file of the "
                  "shard's %s\n", flag, path, what, marker, what);
  return -1;
}

/* Refuses tables this machine cannot hold: store_create preallocates and touches both of them,
 * and running out of memory there aborts ("out of memory allocating N bytes", SIGABRT) instead of
 * a usage error. Counts what store_create allocates (store_spec_bytes) against the physical
 * memory, or a smaller RLIMIT_AS. Returns 0, or -1 after printing why. */
static int mem_check(const rsrv_config *c) {
  store_spec specs[2];
  store_specs_default(specs, c->obs_dim, c->act_dim, c->demo_capacity, c->online_capacity);
  uint64_t need = store_spec_bytes(&specs[0], NULL) + store_spec_bytes(&specs[1], NULL);
  int by_rlimit = 0;
  uint64_t have = ib_mem_limit(&by_rlimit);
  if (have == 0 || need <= have) return 0;
  const double gib = 1024.0 * 1024.0 * 1024.0;
  fprintf(stderr, "ibrl-replay: --online-capacity %llu (and --demo-capacity %llu, obs-dim %d, act-dim %d): the tables "
                  "need %.1f GiB, this machine has %.1f GiB%s (HINT: lower --online-capacity / --demo-capacity, or run "
                  "more shards)\n", (unsigned long long)c->online_capacity, (unsigned long long)c->demo_capacity,
          c->obs_dim, c->act_dim, (double)need / gib, (double)have / gib,
          by_rlimit ? " under this process's address-space limit (ulimit -v)" : "");
  return -1;
}

static int parse_long(const char *flag, const char *v, long lo, long hi, long *out) {
  return cli_parse_long(out, "ibrl-replay", flag, v, lo, hi);
}

static int parse_u64(const char *flag, const char *v, uint64_t lo, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || x < lo) {
    fprintf(stderr, "ibrl-replay: --%s '%s' is not an integer >= %llu\n", flag, v, (unsigned long long)lo);
    return -1;
  }
  *out = x;
  return 0;
}

static int parse_double(const char *flag, const char *v, double *out) {
  return cli_parse_double(out, "ibrl-replay", flag, v, 0.0, INFINITY);
}

/* A flag without value: "1" from the command line, or its variable's text, which must be 1/true or
 * 0/false (`var` is the variable's name after IBRL_REPLAY_). Returns 0, or -1 after printing why. */
static int parse_switch(const char *var, const char *v, int *out) {
  if (strcmp(v, "1") != 0 && strcmp(v, "true") != 0 && strcmp(v, "0") != 0 && strcmp(v, "false") != 0) {
    fprintf(stderr, "ibrl-replay: IBRL_REPLAY_%s '%s' must be 1/true or 0/false\n", var, v);
    return -1;
  }
  *out = strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
  return 0;
}

/* Applies one flag's text (for a flag without value: "1" from the command line, the variable's
 * text from the environment); returns 0, or -1 after printing what was wrong. */
static int apply(args *a, int id, const char *name, const char *v) {
  rsrv_config *c = &a->cfg;
  long l;
  switch (id) {
    case O_PORT: if (parse_long(name, v, 0, 65535, &l)) return -1; c->port = (int)l; return 0;
    case O_BIND: c->bind = v; return 0;
    case O_SHARD: if (parse_long(name, v, 0, 1 << 20, &l)) return -1; c->shard_index = (int)l; return 0;
    case O_OBS: if (parse_long(name, v, 1, 512, &l)) return -1; c->obs_dim = (int)l; a->have_obs = 1; return 0;
    case O_ACT: if (parse_long(name, v, 1, 128, &l)) return -1; c->act_dim = (int)l; a->have_act = 1; return 0;
    case O_ONCAP: return parse_u64(name, v, 1, &c->online_capacity);
    case O_DEMOCAP: return parse_u64(name, v, 1, &c->demo_capacity);
    case O_SPI: return parse_double(name, v, &c->samples_per_insert);
    case O_EBUF: return parse_double(name, v, &c->error_buffer);
    case O_MINSIZE: return parse_u64(name, v, 0, &c->min_size);
    case O_CKDIR: c->ckpt_dir = v; return 0;
    case O_CKPER: return parse_double(name, v, &c->ckpt_period_s);
    case O_DUR:
      if (strcmp(v, "ckpt") == 0) c->durability = PERSIST_CKPT_ONLY;
      else if (strcmp(v, "wal") == 0) c->durability = PERSIST_WAL;
      else {
        fprintf(stderr, "ibrl-replay: --durability '%s' is unknown; use ckpt or wal\n", v);
        return -1;
      }
      return 0;
    case O_SALVAGE: {
      int on;
      if (parse_switch("SALVAGE", v, &on)) return -1;
      c->salvage = on != 0;
      return 0;
    }
    case O_TOKEN: c->token = v; return 0;
    case O_INSECURE: return parse_switch("INSECURE", v, &a->insecure);
    case O_CERT: c->tls_cert = v; return 0;
    case O_KEY: c->tls_key = v; return 0;
    case O_MAXMB: if (parse_long(name, v, 1, 2047, &l)) return -1; c->max_message_bytes = l * 1024 * 1024; return 0;
    case O_THREADS: if (parse_long(name, v, 1, 64, &l)) return -1; c->threads = (int)l; return 0;
    case O_POLLERS: if (parse_long(name, v, 1, 64, &l)) return -1; c->pollers = (int)l; return 0;
    case O_MAXBATCH: if (parse_long(name, v, 1, 1 << 20, &l)) return -1; c->max_sample_batch = (uint32_t)l; return 0;
    case O_MAXBLOCK: if (parse_long(name, v, 1, 3600000, &l)) return -1; c->max_block_ms = l; return 0;
    case O_SEED: return parse_u64(name, v, 0, &c->seed);
    default: return -1;
  }
}

int main(int argc, char **argv) {
  args a;
  memset(&a, 0, sizeof a);
  rsrv_config_default(&a.cfg);
  log_set_role("replay", 0);
  /* Strings first (environment, then the command line over it), values after: a variable that
   * a flag overrides is never parsed, so a bad one cannot fail a good command line. */
  const char *val[O_COUNT] = {0};
  const char *src[O_COUNT];
  cli_env_layer(val, src, opts, O_HELP, "IBRL_REPLAY_");
  switch (cli_cmdline_layer(val, src, opts, O_HELP, ":h", argc, argv, "ibrl-replay", 1)) {
  case CLI_HELP: usage(stdout); return 0;
  case CLI_BAD: return 2;
  default: break;
  }
  for (int i = 0; i < O_HELP; i++) {
    if (val[i] == NULL || apply(&a, i, opts[i].name, val[i]) == 0) continue;
    if (strcmp(src[i], "--") != 0) {
      char key[64] = "IBRL_REPLAY_";
      size_t k = strlen(key);
      for (const char *p = opts[i].name; *p && k + 1 < sizeof key; p++) key[k++] = *p == '-' ? '_' : (char)(*p & ~0x20);
      key[k] = '\0';
      fprintf(stderr, "ibrl-replay: (from environment variable %s)\n", key);
    }
    return 2;
  }
  if (!a.have_obs || !a.have_act) {
    fprintf(stderr, "ibrl-replay: --obs-dim and --act-dim are required HINT: the stacked observation size and "
                    "the action chunk size k*a of the task\n");
    return 2;
  }
  if (mem_check(&a.cfg) != 0) return 2;
  if (a.cfg.ckpt_dir != NULL && ckpt_dir_probe(a.cfg.ckpt_dir) != 0) return 2;
  if (pem_check("tls-cert", a.cfg.tls_cert, "-----BEGIN CERTIFICATE-----", "certificate") != 0 ||
      pem_check("tls-key", a.cfg.tls_key, "PRIVATE KEY-----", "private key") != 0)
    return 2;
  log_set_role("replay", a.cfg.shard_index);

  /* Block the stop signals before any thread exists, so only sigtimedwait below sees them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  /* Every message is a ~150 kB buffer (256 transitions) that gRPC allocates and frees. With
   * glibc's defaults such blocks are mmap'ed or trimmed back to the kernel after each message
   * and page-faulted in again for the next: ~10% of the server's CPU under load (perf,
   * ibrl-bench replay). Keep freed memory in the heap instead; the steady state is a few MB. */
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  grpc_init();
  rsrv *s = NULL;
  int rc = rsrv_start(&s, &a.cfg, a.insecure);
  if (rc != IB_OK) {
    /* Nothing was served yet: every start failure (a setting, a TLS file, the port, the
     * checkpoint directory or a checkpoint that does not restore) is a setup error. */
    fprintf(stderr, "ibrl-replay: %s\n", ib_errmsg());
    grpc_shutdown_blocking();
    return 2;
  }
  printf("listening on %s:%d\n", a.cfg.bind, rsrv_port(s));
  fflush(stdout);
  log_info("shard %d: obs_dim %d act_dim %d online %llu demo %llu spi %g min_size %llu durability %s ckpt_dir %s "
           "threads %d pollers %d token %s", a.cfg.shard_index, a.cfg.obs_dim, a.cfg.act_dim,
           (unsigned long long)a.cfg.online_capacity, (unsigned long long)a.cfg.demo_capacity,
           a.cfg.samples_per_insert, (unsigned long long)a.cfg.min_size,
           a.cfg.durability == PERSIST_WAL ? "wal" : "ckpt", a.cfg.ckpt_dir ? a.cfg.ckpt_dir : "(none)",
           a.cfg.threads, a.cfg.pollers > 0 ? a.cfg.pollers : a.cfg.threads, a.cfg.token && a.cfg.token[0] ? "on" : "off");

  for (;;) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    int sig = sigtimedwait(&stop, NULL, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      log_info("signal %d: draining and stopping", sig);
      break;
    }
    rsrv_tick(s);
  }
  rc = rsrv_stop(s);
  grpc_shutdown_blocking();
  log_info("stopped%s", rc == IB_OK ? "" : " (final checkpoint failed)");
  return rc == IB_OK ? 0 : 1;
}
