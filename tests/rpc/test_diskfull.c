/* test_diskfull.c: a shard whose disk fails (full, or I/O errors) heals by itself once the disk is
 * back, with no acknowledged row lost and none stored twice.
 *
 * A real ibrl-replay (--durability wal) runs under the fault shim fault_fs.c (LD_PRELOAD; see its
 * top): while the control file exists, the shard's directory fails with ENOSPC. One writer
 * (rc_writer, one actor, known seqs) inserts; then
 *   - "sync": the page cache takes the writes but fdatasync fails (a flaky disk, or ENOSPC at
 *     writeback). The log's chain breaks: inserts must get UNAVAILABLE with a message naming the
 *     log, the error and the cure; the writer's retries must not be acknowledged (its rows are in
 *     memory but in no durable place: before this change the retry was acknowledged as a
 *     duplicate); rc_sample keeps working; Info and `ibrl-replayctl info` show the broken state and
 *     the failed recovery attempts. The control file is removed: within HEAL_BOUND_S, with no
 *     manual checkpoint, the writer's flush succeeds.
 *   - "all": the disk refuses every write. Appends fail but the log stays intact (the partial
 *     record is cut off), so inserts work again as soon as the disk takes writes.
 * Each case then writes more, SIGKILLs the shard, restarts it on the same directory and reads the
 * table back (Replay.Read): every acknowledged seq exactly once, no other row of the actor.
 * On the code before this change the "sync" case fails: the flush while the disk failed succeeded
 * (the retry acknowledged as duplicates), Info had no state, and the shard never healed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ib.h"
#include "replay_client.h"
#include "rpc_testutil.h"
#include "th.h"

#define OD 4
#define AD 2
#define BATCH 16
#define HEAL_BOUND_S 15.0 /* a hang bound: the first retry comes 1 s after the disk is back at most */

/* ---- the shard under the shim ---- */

typedef struct faulty {
  char dir[256], ctl[320];
  const char *durability; /* "wal" (the default when NULL) or "ckpt" */
  const char *period;     /* --ckpt-period, NULL = none */
  rt_server s;
} faulty;

/* The shim's path, or NULL (a skip when ctest did not give one; a failure when it is missing). */
static const char *shim_path(void) {
  const char *p = getenv("IB_FAULT_FS");
  if (p == NULL) return NULL;
  TH_CHECK_MSG(access(p, R_OK) == 0, "IB_FAULT_FS '%s' is not readable: build the ib_fault_fs target", p);
  return access(p, R_OK) == 0 ? p : NULL;
}

/* Starts ibrl-replay on f->dir with the shim preloaded (only into the child: the variables are
 * set around the fork and removed again) or, with preload 0, plainly. Returns 0 or -1. */
static int shard_start(faulty *f, int preload) {
  const char *args[] = {"--obs-dim", "4", "--act-dim", "2", "--online-capacity", "5000", "--demo-capacity", "100",
                        "--ckpt-dir", f->dir, "--durability", f->durability ? f->durability : "wal",
                        f->period ? "--ckpt-period" : NULL, f->period, NULL};
  char old_asan[512] = "", asan[640];
  int had_asan = getenv("ASAN_OPTIONS") != NULL;
  if (had_asan) snprintf(old_asan, sizeof old_asan, "%s", getenv("ASAN_OPTIONS"));
  if (preload) {
    setenv("LD_PRELOAD", shim_path(), 1);
    setenv("IB_FAULT_DIR", f->dir, 1);
    setenv("IB_FAULT_CTL", f->ctl, 1);
    /* An ASan build refuses a library preloaded ahead of its runtime unless told otherwise. */
    snprintf(asan, sizeof asan, "verify_asan_link_order=0%s%s", had_asan ? ":" : "", old_asan);
    setenv("ASAN_OPTIONS", asan, 1);
  }
  int code = 0;
  int rc = rt_server_start(&f->s, args, &code);
  if (preload) {
    unsetenv("LD_PRELOAD");
    unsetenv("IB_FAULT_DIR");
    unsetenv("IB_FAULT_CTL");
    if (had_asan)
      setenv("ASAN_OPTIONS", old_asan, 1);
    else
      unsetenv("ASAN_OPTIONS");
  }
  TH_CHECK_MSG(rc == 0, "ibrl-replay did not start on %s (exit %d)", f->dir, code);
  return rc;
}

/* Turns the disk bad ("sync ENOSPC", "all ENOSPC", ...) or good (NULL). */
static void disk_set(const faulty *f, const char *how) {
  if (how == NULL) {
    TH_CHECK(unlink(f->ctl) == 0 || errno == ENOENT);
    return;
  }
  FILE *fp = fopen(f->ctl, "w");
  TH_CHECK(fp != NULL);
  if (fp == NULL) return;
  fprintf(fp, "%s\n", how);
  fclose(fp);
}

/* A client (the rt_rc_open number `n`) and an in-order writer for `actor` on f's online table;
 * -1 (and a failed check) if either cannot be opened. */
static int writer_open(const faulty *f, int n, uint32_t actor, rc_client **c, rc_writer **w) {
  *w = NULL;
  *c = rt_rc_open(f->s.target, NULL, n);
  if (*c == NULL || rc_writer_open(w, *c, "online", actor, 0, 0) != IB_OK) {
    TH_CHECK_MSG(0, "client or writer: %s", ib_errmsg());
    return -1;
  }
  return 0;
}

static void fill(rc_batch *b, uint64_t k0, int n) {
  b->n = n;
  for (int r = 0; r < n; r++) {
    for (int j = 0; j < OD; j++) b->obs[r * OD + j] = b->next_obs[r * OD + j] = (float)(k0 + (uint64_t)r);
    for (int j = 0; j < AD; j++) b->action[r * AD + j] = -0.5f;
    b->reward[r] = (float)(k0 + (uint64_t)r);
    b->discount[r] = 0.99f;
    b->proposer[r] = RC_PROPOSER_RL;
  }
}

/* Writes `nbatches` batches and flushes each; returns how many flushes failed. */
static int write_ok(rc_writer *w, rc_batch *b, int nbatches) {
  int bad = 0;
  for (int i = 0; i < nbatches; i++) {
    rc_writer_stats st;
    rc_writer_stats_get(w, &st);
    fill(b, st.next_seq, BATCH);
    TH_CHECK(rc_writer_write(w, b) == IB_OK);
    int rc = rc_writer_flush(w, 5000);
    TH_CHECK_MSG(rc == IB_OK, "flush on a good disk: %s", ib_errmsg());
    bad += rc != IB_OK;
  }
  return bad;
}

/* Reads the whole online table of the shard at `target` and checks that actor `actor` has every
 * seq in [0, acked) exactly once and no other. */
static void check_rows(const char *target, uint32_t actor, uint64_t acked, const char *when) {
  rc_client *c = rt_rc_open(target, NULL, 3);
  if (c == NULL) return;
  rc_batch b;
  rc_batch_init(&b, 512, OD, AD);
  uint8_t *seen = calloc(acked + 1, 1);
  uint64_t start = 0, size = 0, others = 0, twice = 0;
  for (int pages = 0; pages < 100; pages++) {
    int rc = rc_read(c, 0, "online", start, &b, 512, &size, NULL);
    if (rc != IB_OK) {
      TH_CHECK_MSG(0, "%s: Read at %llu: %s", when, (unsigned long long)start, ib_errmsg());
      break;
    }
    for (int i = 0; i < b.n; i++) {
      if (b.actor_id[i] != actor) continue;
      uint64_t q = b.seq[i];
      if (q >= acked) {
        others++;
        continue;
      }
      if (seen[q]) twice++;
      seen[q] = 1;
      TH_CHECK_MSG(b.reward[i] == (float)q, "%s: seq %llu holds reward %g", when, (unsigned long long)q,
                   (double)b.reward[i]);
    }
    start += (uint64_t)b.n;
    if (b.n == 0 || start >= size) break;
  }
  uint64_t missing = 0;
  for (uint64_t q = 0; q < acked; q++) missing += !seen[q];
  TH_CHECK_MSG(missing == 0 && twice == 0 && others == 0,
               "%s: of %llu acknowledged rows %llu are missing, %llu stored twice, and %llu unacknowledged "
               "rows are stored", when, (unsigned long long)acked, (unsigned long long)missing,
               (unsigned long long)twice, (unsigned long long)others);
  printf("  %s: %llu acknowledged rows, each stored once (table size %llu)\n", when, (unsigned long long)acked,
         (unsigned long long)size);
  free(seen);
  rc_batch_free(&b);
  rc_client_close(c);
}

/* Runs ibrl-replayctl with `args` (NULL-terminated), its stdout into out[cap] (10 s bound).
 * With fault_dir set, it runs under the shim (that directory, control file fault_ctl) and its
 * stderr goes into out too. Returns its exit code, or -1 (killed by a signal, or timed out). */
static int ctl_run_in(const char *const *args, char *out, size_t cap, const char *fault_dir, const char *fault_ctl) {
  const char *bin = getenv("IBRL_REPLAYCTL_BIN");
  out[0] = '\0';
  if (bin == NULL) return -1;
  const char *argv[32];
  int n = 0;
  argv[n++] = bin;
  for (int i = 0; args[i] != NULL && n < 31; i++) argv[n++] = args[i];
  argv[n] = NULL;
  /* The child's environment, built before the fork (no allocation between fork and exec). */
  extern char **environ;
  static char pre[1200], fdir[400], fctl[400], asan[700];
  const char *envp[256];
  int ne = 0;
  for (char **e = environ; *e != NULL && ne < 250; e++)
    if (fault_dir == NULL || (strncmp(*e, "LD_PRELOAD=", 11) != 0 && strncmp(*e, "ASAN_OPTIONS=", 13) != 0))
      envp[ne++] = *e;
  if (fault_dir != NULL) {
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(pre, sizeof pre, "LD_PRELOAD=%s", shim_path());
    snprintf(fdir, sizeof fdir, "IB_FAULT_DIR=%s", fault_dir);
    snprintf(fctl, sizeof fctl, "IB_FAULT_CTL=%s", fault_ctl);
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=verify_asan_link_order=0%s%s", old ? ":" : "", old ? old : "");
    envp[ne++] = pre, envp[ne++] = fdir, envp[ne++] = fctl, envp[ne++] = asan;
  }
  envp[ne] = NULL;
  int fd[2];
  IB_CHECK(pipe(fd) == 0);
  pid_t pid = fork();
  IB_CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fd[1], 1);
    if (fault_dir != NULL) dup2(fd[1], 2);
    close(fd[0]);
    close(fd[1]);
    execve(bin, (char *const *)argv, (char *const *)envp);
    _exit(127);
  }
  close(fd[1]);
  size_t len = 0;
  double until = ib_now_s() + 10;
  while (ib_now_s() < until && len + 1 < cap) {
    struct pollfd p = {fd[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t k = read(fd[0], out + len, cap - 1 - len);
    if (k <= 0) break;
    len += (size_t)k;
  }
  out[len] = '\0';
  close(fd[0]);
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (ib_now_s() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    usleep(10000);
  }
}

static int ctl_run(const char *const *args, char *out, size_t cap) { return ctl_run_in(args, out, cap, NULL, NULL); }

static void check_has(const char *what, const char *text, const char *want) {
  TH_CHECK_MSG(strstr(text, want) != NULL, "%s does not say '%s': %s", what, want, text);
}

/* Prepares a case's shard: the shim must be there (else the case is skipped), a fresh directory
 * named after `name` with its control file beside it (outside the directory), and the shard
 * started under the shim. Returns 0, or -1 when the case cannot run (skipped or failed). */
static int faulty_open(faulty *f, const char *name) {
  if (shim_path() == NULL) {
    th_skip("IB_FAULT_FS does not name the fault shim (run through ctest)");
    return -1;
  }
  rt_tmpdir(f->dir, sizeof f->dir, name);
  snprintf(f->ctl, sizeof f->ctl, "%s.fault", f->dir);
  unlink(f->ctl);
  if (shard_start(f, 1) != 0) {
    rt_rmdir(f->dir);
    return -1;
  }
  return 0;
}

/* ---- cases ---- */

/* The flush fails: the chain is broken until a checkpoint; the shard heals on its own. */
static void test_sync_fails_then_heals(void) {
  faulty f = {0};
  if (faulty_open(&f, "diskfull_sync") != 0) return;
  const uint32_t actor = 7;
  rc_client *c = NULL;
  rc_writer *w = NULL;
  rc_batch b, sb;
  rc_batch_init(&b, BATCH, OD, AD);
  rc_batch_init(&sb, 64, OD, AD);
  if (writer_open(&f, 1, actor, &c, &w) != 0) goto out;
  write_ok(w, &b, 4);

  /* The disk goes bad: the next batch's flush fails and breaks the log. */
  disk_set(&f, "sync ENOSPC");
  fill(&b, 4 * BATCH, BATCH);
  TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  int rc = rc_writer_flush(w, 1500);
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", ib_errmsg());
  /* IB_ETIMEDOUT when the flush's time ran out inside a retry; the message is checked below then. */
  TH_CHECK_MSG(rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT, "flush while the disk fails: %s (want IB_EUNAVAIL: the "
               "retried rows are in memory only and must not be acknowledged as duplicates) %s", ib_strerror(rc), msg);
  if (rc == IB_EUNAVAIL) {
    check_has("the writer's error", msg, "is broken since");
    check_has("the writer's error", msg, "No space left on device");
  }
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_MSG(st.acked == 4 * BATCH, "acknowledged %llu rows while the disk failed (want %d)",
               (unsigned long long)st.acked, 4 * BATCH);

  /* The message of a plain insert names the log, since when, the error and the cure. */
  rt_client raw;
  rt_client_open(&raw, f.s.target, NULL);
  rt_items it = {.actor = 99, .first_seq = 0, .n = 4, .obs_dim = OD, .act_dim = AD, .nan_at = -1, .proposer = 1};
  char details[1024] = "";
  grpc_status_code gs = rt_insert(&raw, "online", &it, NULL, details, sizeof details, 3000);
  TH_CHECK_MSG(gs == GRPC_STATUS_UNAVAILABLE, "Insert on a broken log: %s %s (want UNAVAILABLE, which rc_writer "
               "retries)", wire_status_name(gs), details);
  char want[400];
  snprintf(want, sizeof want, "write-ahead log '%s/store.wal.", f.dir);
  check_has("the Insert error", details, want);
  check_has("the Insert error", details, "is broken since");
  check_has("the Insert error", details, "(No space left on device)");
  check_has("the Insert error", details, "inserts are refused until a checkpoint succeeds");
  snprintf(want, sizeof want, "HINT: free space in %s", f.dir);
  check_has("the Insert error", details, want);
  printf("  Insert while broken: %s\n", details);

  /* Sampling goes on, from what the shard holds. */
  rc = rc_sample(c, &sb, 32, -1);
  TH_CHECK_MSG(rc == IB_OK && sb.n == 32, "rc_sample on a broken log: %s", rc == IB_OK ? "short" : ib_errmsg());
  for (int i = 0; rc == IB_OK && i < sb.n; i++)
    TH_CHECK_MSG(sb.actor_id[i] == actor && sb.seq[i] < 5 * BATCH, "sampled row %d: actor %u seq %llu", i,
                 sb.actor_id[i], (unsigned long long)sb.seq[i]);

  /* The shard retries a checkpoint on its own (at 0 and 1 s), and fails while the disk is bad. */
  usleep(2500 * 1000);
  ibrl_InfoReply *info = calloc(1, sizeof *info);
  gs = rt_info(&raw, info, 3000);
  TH_CHECK_MSG(gs == GRPC_STATUS_OK, "Info on a broken log: %s", wire_status_name(gs));
  if (gs == GRPC_STATUS_OK) {
    TH_CHECK_MSG(info->durability_broken, "Info does not say durability_broken");
    check_has("Info's durability_error", info->durability_error, "No space left on device");
    TH_CHECK_MSG(info->durability_broken_s >= 2.0, "durability_broken_s %.2f (want >= 2)", info->durability_broken_s);
    TH_CHECK_MSG(info->durability_retries >= 1, "durability_retries %llu: the shard did not try to heal",
                 (unsigned long long)info->durability_retries);
    printf("  Info while broken: broken %.1f s, %llu failed recoveries, next in %.1f s: %s\n",
           info->durability_broken_s, (unsigned long long)info->durability_retries, info->durability_retry_in_s,
           info->durability_error);
  }
  char out[16384];
  const char *ia[] = {"--shards", f.s.target, "info", NULL};
  int code = ctl_run(ia, out, sizeof out);
  TH_CHECK_MSG(code == 0, "ibrl-replayctl info exited %d", code);
  check_has("ibrl-replayctl info", out, "durability: BROKEN");
  check_has("ibrl-replayctl info", out, "No space left on device");
  const char *line = strstr(out, "  durability: ");
  if (line != NULL) printf("  ibrl-replayctl info:%.*s\n", (int)strcspn(line, "\n"), line);
  const char *ja[] = {"--shards", f.s.target, "--json", "info", NULL};
  code = ctl_run(ja, out, sizeof out);
  TH_CHECK_MSG(code == 0, "ibrl-replayctl --json info exited %d", code);
  check_has("ibrl-replayctl --json info", out, "\"durability_broken\":true");

  /* The disk is back: the writer's flush succeeds within the bound, without a manual checkpoint. */
  disk_set(&f, NULL);
  double t0 = ib_now_s();
  rc = rc_writer_flush(w, (long)(HEAL_BOUND_S * 1000));
  double healed = ib_now_s() - t0;
  TH_CHECK_MSG(rc == IB_OK, "flush %.1f s after the disk came back: %s", healed, ib_errmsg());
  rc_writer_stats_get(w, &st);
  TH_CHECK_MSG(st.acked == 5 * BATCH && st.pending == 0, "after healing: acked %llu pending %llu (want %d, 0)",
               (unsigned long long)st.acked, (unsigned long long)st.pending, 5 * BATCH);
  if (rc == IB_OK) printf("  healed: the writer's flush succeeded %.2f s after the disk came back\n", healed);
  gs = rt_info(&raw, info, 3000);
  if (gs == GRPC_STATUS_OK) {
    TH_CHECK_MSG(!info->durability_broken && info->durability_error[0] == '\0',
                 "Info after healing: broken %d '%s'", info->durability_broken, info->durability_error);
    TH_CHECK_MSG(info->checkpoints >= 1, "no checkpoint after healing");
  }
  free(info);
  rt_client_close(&raw);
  write_ok(w, &b, 2);
  rc_writer_stats_get(w, &st);
  uint64_t acked = st.acked;
  TH_CHECK(rc_writer_close(w) == IB_OK);
  w = NULL;
  check_rows(f.s.target, actor, acked, "healed shard");

  /* Nothing acknowledged may depend on memory: kill it and read the restored table. */
  rt_server_stop(&f.s, SIGKILL);
  if (shard_start(&f, 0) == 0) {
    check_rows(f.s.target, actor, acked, "after SIGKILL and restart");
    rt_shard_stop_ok(&f.s);
  }
out:
  rc_writer_close(w);
  rc_client_close(c);
  rc_batch_free(&b);
  rc_batch_free(&sb);
  if (f.s.pid > 0) rt_server_stop(&f.s, SIGKILL);
  unlink(f.ctl);
  rt_rmdir(f.dir);
}

/* The disk refuses every write: appends fail, the log stays whole, inserts resume with the disk. */
static void test_full_disk_refuses_writes(void) {
  faulty f = {0};
  if (faulty_open(&f, "diskfull_all") != 0) return;
  const uint32_t actor = 3;
  rc_client *c = NULL;
  rc_writer *w = NULL;
  rc_batch b, sb;
  rc_batch_init(&b, BATCH, OD, AD);
  rc_batch_init(&sb, 16, OD, AD);
  if (writer_open(&f, 2, actor, &c, &w) != 0) goto out;
  write_ok(w, &b, 2);
  disk_set(&f, "all ENOSPC");
  fill(&b, 2 * BATCH, BATCH);
  TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  int rc = rc_writer_flush(w, 1000);
  TH_CHECK_MSG(rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT, "flush on a full disk: %s (want IB_EUNAVAIL)",
               ib_strerror(rc));
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_MSG(st.acked == 2 * BATCH, "acknowledged %llu rows on a full disk (want %d)", (unsigned long long)st.acked,
               2 * BATCH);
  rt_client raw;
  rt_client_open(&raw, f.s.target, NULL);
  rt_items it = {.actor = 98, .first_seq = 0, .n = 4, .obs_dim = OD, .act_dim = AD, .nan_at = -1, .proposer = 1};
  char details[512] = "";
  grpc_status_code gs = rt_insert(&raw, "online", &it, NULL, details, sizeof details, 3000);
  TH_CHECK_MSG(gs == GRPC_STATUS_UNAVAILABLE, "Insert on a full disk: %s %s", wire_status_name(gs), details);
  check_has("the Insert error", details, "cannot append to write-ahead log");
  check_has("the Insert error", details, "(No space left on device)");
  check_has("the Insert error", details, "HINT: free space in");
  rc = rc_sample(c, &sb, 16, -1);
  TH_CHECK_MSG(rc == IB_OK, "rc_sample on a full disk: %s", ib_errmsg());
  ibrl_InfoReply *info = calloc(1, sizeof *info);
  gs = rt_info(&raw, info, 3000);
  TH_CHECK_MSG(gs == GRPC_STATUS_OK && info->durability_broken, "Info on a full disk: %s, broken %d",
               wire_status_name(gs), info->durability_broken);
  check_has("Info's durability_error", info->durability_error, "append to log");
  disk_set(&f, NULL);
  double t0 = ib_now_s();
  rc = rc_writer_flush(w, (long)(HEAL_BOUND_S * 1000));
  TH_CHECK_MSG(rc == IB_OK, "flush after space came back: %s", ib_errmsg());
  if (rc == IB_OK) printf("  a full disk: inserts taken again %.2f s after space came back\n", ib_now_s() - t0);
  gs = rt_info(&raw, info, 3000);
  TH_CHECK_MSG(gs == GRPC_STATUS_OK && !info->durability_broken, "Info after space came back: broken %d '%s'",
               info->durability_broken, info->durability_error);
  free(info);
  rt_client_close(&raw);
  write_ok(w, &b, 1);
  rc_writer_stats_get(w, &st);
  TH_CHECK(rc_writer_close(w) == IB_OK);
  w = NULL;
  rt_server_stop(&f.s, SIGKILL);
  if (shard_start(&f, 0) == 0) {
    check_rows(f.s.target, actor, st.acked, "full disk, after SIGKILL and restart");
    rt_shard_stop_ok(&f.s);
  }
out:
  rc_writer_close(w);
  rc_client_close(c);
  rc_batch_free(&b);
  rc_batch_free(&sb);
  if (f.s.pid > 0) rt_server_stop(&f.s, SIGKILL);
  unlink(f.ctl);
  rt_rmdir(f.dir);
}

/* Checkpoint-only durability: a failing periodic checkpoint is retried at its period and shown;
 * the periodic checkpoints resume with the disk (EIO this time: a bad disk, not a full one). */
static void test_ckpt_mode_period_retries(void) {
  faulty f = {0};
  f.durability = "ckpt";
  f.period = "0.3";
  if (faulty_open(&f, "diskfull_ckpt") != 0) return;
  disk_set(&f, "all EIO"); /* after the start: ibrl-replay refuses a directory it cannot write */
  rt_client raw;
  rt_client_open(&raw, f.s.target, NULL);
  rt_items it = {.actor = 1, .first_seq = 0, .n = 8, .obs_dim = OD, .act_dim = AD, .nan_at = -1, .proposer = 1};
  char details[512] = "";
  TH_CHECK_MSG(rt_insert(&raw, "online", &it, NULL, details, sizeof details, 3000) == GRPC_STATUS_OK,
               "Insert with checkpoint-only durability on a bad disk: %s", details);
  usleep(1200 * 1000); /* three or four periods, every checkpoint failing */
  ibrl_InfoReply *info = calloc(1, sizeof *info);
  grpc_status_code gs = rt_info(&raw, info, 3000);
  TH_CHECK_MSG(gs == GRPC_STATUS_OK && info->durability_broken && info->durability_retries >= 2 &&
                   info->checkpoints == 0,
               "Info while periodic checkpoints fail: %s broken %d retries %llu checkpoints %llu",
               wire_status_name(gs), info->durability_broken, (unsigned long long)info->durability_retries,
               (unsigned long long)info->checkpoints);
  check_has("Info's durability_error", info->durability_error, "Input/output error");
  TH_CHECK_MSG(info->durability_retry_in_s <= 0.3 + 1e-6, "next periodic retry in %.2f s (period 0.3)",
               info->durability_retry_in_s);
  disk_set(&f, NULL);
  usleep(800 * 1000);
  gs = rt_info(&raw, info, 3000);
  TH_CHECK_MSG(gs == GRPC_STATUS_OK && !info->durability_broken && info->checkpoints >= 1,
               "Info after the disk came back: broken %d checkpoints %llu", info->durability_broken,
               (unsigned long long)info->checkpoints);
  free(info);
  rt_client_close(&raw);
  rt_shard_stop_ok(&f.s);
  unlink(f.ctl);
  rt_rmdir(f.dir);
}

/* Starts a shard under the shim (scratch directory named after `name`) with a client and a
 * writer for actor 3, runs body on them, then stops and removes everything. */
typedef void (*writer_case)(faulty *f, rc_client *c, rc_writer *w, rc_batch *b);
static void with_writer(const char *name, writer_case body) {
  faulty f = {0};
  if (faulty_open(&f, name) != 0) return;
  rc_client *c = NULL;
  rc_writer *w = NULL;
  rc_batch b;
  rc_batch_init(&b, BATCH, OD, AD);
  if (writer_open(&f, 1, 3, &c, &w) == 0) body(&f, c, w, &b);
  rc_writer_close(w);
  rc_client_close(c);
  rc_batch_free(&b);
  rt_shard_stop_ok(&f.s);
  unlink(f.ctl);
  rt_rmdir(f.dir);
}

/* Asks for a checkpoint that must fail; its message goes to msg[n]. Returns its rc. */
static int ckpt_refused(rc_client *c, const char *what, char *msg, size_t n) {
  rc_checkpoint_info ci;
  int rc = rc_checkpoint(c, 0, &ci);
  snprintf(msg, n, "%s", ib_errmsg());
  TH_CHECK_MSG(rc != IB_OK, "%s succeeded", what);
  return rc;
}

/* The shim's "only S": a disk with room for the log but not for the checkpoint. The checkpoint's
 * flush fails while inserts are acknowledged (their log's flushes pass); with "only store.wal"
 * the other way round. What the heal floor's run at scale relies on (replay-soak.md). */
static void only_checkpoint_fails(faulty *f, rc_client *c, rc_writer *w, rc_batch *b) {
  disk_set(f, "EIO sync only store.ckpt");
  TH_CHECK_EQ_INT(write_ok(w, b, 2), 0);
  char msg[1024];
  if (ckpt_refused(c, "a checkpoint while its file's flush fails", msg, sizeof msg) != IB_OK)
    check_has("the checkpoint's error", msg, "store.ckpt");
  TH_CHECK_EQ_INT(write_ok(w, b, 1), 0); /* the log is still good */
  disk_set(f, "EIO sync only store.wal");
  fill(b, 3 * BATCH, BATCH);
  TH_CHECK(rc_writer_write(w, b) == IB_OK);
  int rc = rc_writer_flush(w, 1500);
  TH_CHECK_MSG(rc != IB_OK, "a flush while the log's fsync fails was acknowledged");
  disk_set(f, NULL);
}
static void test_only_checkpoint_fails(void) { with_writer("diskfull_only", only_checkpoint_fails); }

/* A disk without room for the checkpoint (the shim refuses its reservation, as a full file
 * system refuses a fallocate larger than its room): the checkpoint is refused before it writes,
 * naming the size it needed; the log keeps taking rows; with room back the next one succeeds. */
static void ckpt_without_room(faulty *f, rc_client *c, rc_writer *w, rc_batch *b) {
  TH_CHECK_EQ_INT(write_ok(w, b, 2), 0);
  disk_set(f, "ENOSPC reserve only store.ckpt");
  char msg[1024];
  if (ckpt_refused(c, "a checkpoint without room", msg, sizeof msg) != IB_OK) {
    check_has("the checkpoint's error", msg, "reserving");
    check_has("the checkpoint's error", msg, "Nothing was written");
  }
  TH_CHECK_EQ_INT(write_ok(w, b, 2), 0); /* the log still takes rows */
  disk_set(f, NULL);
  rc_checkpoint_info ci;
  TH_CHECK_MSG(rc_checkpoint(c, 0, &ci) == IB_OK, "the checkpoint with room back: %s", ib_errmsg());
}
static void test_ckpt_without_room(void) { with_writer("diskfull_room", ckpt_without_room); }

/* `ibrl-replayctl export` onto a disk that fills up in the middle of the file: exit 2 (a local
 * file that cannot be written) with the cause, and no file left. HDF5 cannot flush the file's metadata on close either and keeps it
 * open; its clean-up at exit then crashed on it (SIGSEGV, exit 139) until the CLI turned that
 * clean-up off (demo_writer_init). */
static void test_export_disk_fills(void) {
  if (shim_path() == NULL || getenv("IBRL_REPLAYCTL_BIN") == NULL) {
    th_skip("IB_FAULT_FS or IBRL_REPLAYCTL_BIN not set (run through ctest)");
    return;
  }
  faulty f = {0};
  f.durability = "ckpt";
  rt_tmpdir(f.dir, sizeof f.dir, "diskfull_exsrc");
  if (shard_start(&f, 0) != 0) {
    rt_rmdir(f.dir);
    return;
  }
  char out_dir[256], ctl[320], file[320], out[4096];
  rt_tmpdir(out_dir, sizeof out_dir, "diskfull_export");
  snprintf(ctl, sizeof ctl, "%s.fault", out_dir);
  snprintf(file, sizeof file, "%s/rows.hdf5", out_dir);
  rc_client *c = NULL;
  rc_writer *w = NULL;
  rc_batch b;
  rc_batch_init(&b, BATCH, OD, AD);
  if (writer_open(&f, 4, 5, &c, &w) != 0) goto out;
  for (int i = 0; i < 40; i++) { /* 640 rows in episodes of 16 */
    fill(&b, (uint64_t)i * BATCH, BATCH);
    b.episode_end[BATCH - 1] = 1;
    TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  }
  TH_CHECK(rc_writer_flush(w, 5000) == IB_OK);
  const char *args[] = {"--shards", f.s.target, "export", "--table", "online", "--out", file, NULL};
  /* On a good disk first: the file must be larger than the room the bad disk will have. */
  int code = ctl_run_in(args, out, sizeof out, out_dir, ctl);
  struct stat st;
  const int budget = (int)th_env_u64("IB_EXPORT_BUDGET", 4000); /* bytes the bad disk takes */
  TH_CHECK_MSG(code == 0 && stat(file, &st) == 0 && st.st_size > 4 * budget,
               "export on a good disk: exit %d, %s: %s", code, file, out);
  unlink(file);
  FILE *fp = fopen(ctl, "w");
  TH_CHECK(fp != NULL);
  if (fp != NULL) fprintf(fp, "ENOSPC all after %d\n", budget), fclose(fp);
  code = ctl_run_in(args, out, sizeof out, out_dir, ctl);
  TH_CHECK_MSG(code == 2, "export onto a disk that fills up: exit %d (want 2, a local file; -1 = killed by a "
               "signal): %s", code, out);
  check_has("the failed export's message", out, "disk full");
  DIR *d = opendir(out_dir);
  int left = 0;
  for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
    left += e->d_name[0] != '.';
  if (d != NULL) closedir(d);
  TH_CHECK_MSG(left == 0, "a failed export left %d file(s) in %s", left, out_dir);
  printf("  export onto a disk with %d bytes free: exit %d\n", budget, code);
out:
  unlink(ctl);
  rc_writer_close(w);
  rc_client_close(c);
  rc_batch_free(&b);
  rt_shard_stop_ok(&f.s);
  rt_rmdir(out_dir);
  rt_rmdir(f.dir);
}

static const th_case cases[] = {
    {"a failing flush breaks the log; the shard heals by itself", test_sync_fails_then_heals},
    {"a full disk refuses writes; inserts resume with space", test_full_disk_refuses_writes},
    {"checkpoint-only: a failing periodic checkpoint retries at its period", test_ckpt_mode_period_retries},
    {"the shim fails only the checkpoint's file, or only the log's (\"only S\")", test_only_checkpoint_fails},
    {"a checkpoint without room is refused before it writes, naming its size", test_ckpt_without_room},
    {"export onto a disk that fills up mid-file: exit 2 with the cause, no file left", test_export_disk_fills},
    {NULL, NULL},
};

int main(int argc, char **argv) { return rt_main(argc, argv, cases); }
