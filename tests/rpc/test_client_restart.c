/* test_client_restart.c: a writer rides out a shard restart without duplicating items.
 *
 * The shard runs with a write-ahead log, so whatever it stored survives a SIGKILL. The writer
 * sends batch 1 and flushes (acknowledged), then sends batch 2, which the shard stores, but the
 * shard is killed before the writer flushes, so batch 2 is never acknowledged. The shard comes
 * back on the same port; the flush reconnects, resends batch 2 with the same seqs, and the
 * shard reports them as duplicates. The table then holds exactly batch 1 + batch 2 + batch 3
 * (written after the restart), each item once, and a flush while the shard is down returns
 * IB_EUNAVAIL/IB_ETIMEDOUT in bounded time with the items still pending.
 *
 * A pipelined writer (rc_writer_pipeline: the previous stream half-closed while the next one goes
 * out) does the same with two streams in flight: its acknowledgements arrive without a flush, a
 * kill lands while both streams are unacknowledged, and after the restart one flush resends both;
 * every seq is then stored exactly once. Neither counts a lost item (rc_writer_stats.lost).
 *
 * A shard that lost items it had acknowledged (a disk that reported a flush it never did,
 * modelled by cutting its log back after a SIGKILL) is noticed by the writer from the next
 * reply's count (InsertReply.actor_stored): exactly the lost items, once.
 *
 * A shard killed while its rate limiter held inserts and samples in step restarts with the
 * limiter's cursor in its band, although the log holds no sample. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ib.h"
#include "replay_client.h"
#include "rpc_testutil.h"
#include "th.h"

#define OD 4
#define AD 2

static void fill(rc_batch *b, int k0, int n) {
  b->n = n;
  for (int r = 0; r < n; r++) {
    for (int j = 0; j < OD; j++) b->obs[r * OD + j] = b->next_obs[r * OD + j] = (float)(k0 + r);
    for (int j = 0; j < AD; j++) b->action[r * AD + j] = -0.5f;
    b->reward[r] = (float)(k0 + r);
    b->discount[r] = 0.99f;
    b->proposer[r] = RC_PROPOSER_RL;
  }
}

/* Shard 0's Info (malloc'd; the caller frees it), or NULL if the call fails. */
static rc_shard_info *shard_info(rc_client *c) {
  rc_shard_info *info = malloc(sizeof *info);
  if (rc_info_get(c, 0, info) == IB_OK) return info;
  free(info);
  return NULL;
}

/* The record of actor `id` in info, or NULL. */
static const rc_actor_info *actor_of(const rc_shard_info *info, uint32_t id) {
  for (int a = 0; info != NULL && a < info->n_actors; a++)
    if (info->actors[a].actor_id == id) return &info->actors[a];
  return NULL;
}

static uint64_t online_size(rc_client *c, uint64_t *dups) {
  rc_shard_info *info = shard_info(c);
  uint64_t n = UINT64_MAX;
  for (int t = 0; info != NULL && t < info->n_tables; t++)
    if (info->tables[t].kind == 1) {
      n = info->tables[t].size;
      if (dups) *dups = info->tables[t].duplicates;
    }
  free(info);
  return n;
}

/* A shard with a write-ahead log in a fresh directory, and a client of it; restarted on the same
 * port and directory by wal_shard_restart. */
typedef struct wal_shard {
  char dir[256], port[16];
  const char *args[16];
  rt_server s;
  rc_client *c;
} wal_shard;

/* Returns 0, or -1 (after a failed check) if the shard did not start. `extra`: more flags (at most
 * 4, NULL-terminated) or NULL. */
static int wal_shard_start(wal_shard *f, const char *name, const char *const *extra) {
  memset(f, 0, sizeof *f);
  rt_tmpdir(f->dir, sizeof f->dir, name);
  const char *args[] = {"--obs-dim", "4", "--act-dim", "2", "--ckpt-dir", f->dir, "--durability", "wal"};
  memcpy(f->args, args, sizeof args);
  int na = 8;
  for (int i = 0; extra != NULL && extra[i] != NULL && i < 4; i++) f->args[na++] = extra[i];
  int code;
  if (rt_server_start(&f->s, f->args, &code) != 0) {
    TH_CHECK_MSG(0, "ibrl-replay did not start (%d)", code);
    rt_rmdir(f->dir);
    return -1;
  }
  snprintf(f->port, sizeof f->port, "%d", f->s.port);
  f->args[na] = "--port";
  f->args[na + 1] = f->port;
  rc_opts o = {0};
  o.shards = f->s.target;
  o.deadline_ms = 2000;
  TH_CHECK(rc_client_open(&f->c, &o) == IB_OK);
  return 0;
}

/* At a test's end, or after a failed restart: frees the test's writer, batch and client, kills
 * the shard if it still runs, and removes the directory. */
static void wal_shard_abandon(wal_shard *f, rc_writer *w, rc_batch *b) {
  rc_writer_close(w);
  rc_client_close(f->c);
  rc_batch_free(b);
  if (f->s.pid > 0) rt_server_stop(&f->s, 9);
  rt_rmdir(f->dir);
}

/* Starts the killed shard again; returns 0, or -1 after a failed check. */
static int wal_shard_restart(wal_shard *f) {
  int code;
  if (rt_server_start(&f->s, f->args, &code) == 0) return 0;
  TH_CHECK_MSG(0, "ibrl-replay did not restart on port %s (%d)", f->port, code);
  return -1;
}

static void test_retry_after_restart(void) {
  wal_shard f;
  if (wal_shard_start(&f, "client_restart", NULL) != 0) return;
  rc_client *c = f.c;
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, "online", 5, 1000, 0) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 100, OD, AD);
  fill(&b, 0, 100);
  TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  TH_CHECK_MSG(rc_writer_flush(w, -1) == IB_OK, "%s", ib_errmsg());
  fill(&b, 100, 100);
  TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  /* Wait until the shard has stored batch 2 (it inserts each stream message as it arrives). */
  double t0 = ib_now_s();
  while (online_size(c, NULL) != 200 && ib_now_s() - t0 < 5) usleep(20000);
  TH_CHECK_EQ_INT(online_size(c, NULL), 200);
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.pending, 100);
  TH_CHECK_EQ_INT(st.acked, 100);

  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 9), 128 + 9);
  /* Down: the flush gives up in bounded time and keeps the items. */
  t0 = ib_now_s();
  int rc = rc_writer_flush(w, 500);
  TH_CHECK_MSG(rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT, "rc %d %s", rc, ib_errmsg());
  TH_CHECK(ib_now_s() - t0 < 3);
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.pending, 100);

  if (wal_shard_restart(&f) != 0) {
    wal_shard_abandon(&f, w, &b);
    return;
  }
  /* Flush at once: the writer's own retry loop has to ride out the reconnect. */
  t0 = ib_now_s();
  rc = rc_writer_flush(w, 5000);
  TH_CHECK_MSG(rc == IB_OK, "flush after restart: %s", ib_errmsg());
  printf("    (acknowledged %.0f ms after the restart)\n", (ib_now_s() - t0) * 1e3);
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.pending, 0);
  TH_CHECK_EQ_INT(st.acked, 200);
  TH_CHECK_EQ_INT(st.inserted, 100);   /* batch 1 only */
  TH_CHECK_EQ_INT(st.duplicates, 100); /* batch 2 was already stored */
  TH_CHECK(st.retries >= 1);
  TH_CHECK_EQ_INT(st.lost, 0); /* nothing acknowledged was lost: no false alarm */
  uint64_t dups = 0;
  TH_CHECK_EQ_INT(online_size(c, &dups), 200); /* batch 1 + batch 2, each once */
  TH_CHECK_EQ_INT(dups, 100);
  fill(&b, 200, 100);
  TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  TH_CHECK(rc_writer_flush(w, -1) == IB_OK);
  TH_CHECK_EQ_INT(online_size(c, NULL), 300);
  /* The rows are the items written (reward k, obs k), from actor 5. */
  rc_batch sb;
  rc_batch_init(&sb, 512, OD, AD);
  TH_CHECK(rc_sample(c, &sb, 512, 0) == IB_OK);
  int ok = 1;
  for (int r = 0; r < sb.n; r++)
    ok &= sb.actor_id[r] == 5 && sb.reward[r] >= 0 && sb.reward[r] < 300 && sb.obs[r * OD] == sb.reward[r];
  TH_CHECK(ok);
  rc_batch_free(&sb);
  TH_CHECK(rc_writer_close(w) == IB_OK);
  /* The Checkpoint call writes the 300 items. */
  rc_checkpoint_info ci;
  TH_CHECK_MSG(rc_checkpoint(c, 0, &ci) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(ci.items, 300);
  TH_CHECK(strlen(ci.path) > 0);
  rc_client_close(c);
  rc_batch_free(&b);
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 15), 0);
  rt_rmdir(f.dir);
}

/* Rows k0 .. k0 + n - 1 as batches of `per`, each written once. */
static int write_rows(rc_writer *w, rc_batch *b, int k0, int n, int per) {
  for (int k = k0; k < k0 + n; k += per) {
    fill(b, k, IB_MIN(per, k0 + n - k));
    int rc = rc_writer_write(w, b);
    if (rc != IB_OK) return rc;
  }
  return IB_OK;
}

static void test_pipelined_restart(void) {
  wal_shard f;
  if (wal_shard_start(&f, "client_restart_pipe", NULL) != 0) return;
  rc_client *c = f.c;
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, "online", 6, 0, 256) == IB_OK); /* streams of 128 rows */
  TH_CHECK_EQ_INT(rc_writer_pipeline(w, 1), IB_OK);
  rc_batch b;
  rc_batch_init(&b, 64, OD, AD);
  /* 1,024 rows without a flush: acknowledged stream by stream, at most 256 pending. */
  TH_CHECK_MSG(write_rows(w, &b, 0, 1024, 64) == IB_OK, "%s", ib_errmsg());
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_MSG(st.acked >= 768 && st.pending <= 256 && st.acked + st.pending == 1024,
               "acked %llu pending %llu", (unsigned long long)st.acked, (unsigned long long)st.pending);
  TH_CHECK_EQ_INT(st.awaiting, 128); /* the last full stream, half-closed */
  TH_CHECK_EQ_INT(rc_writer_pipeline(w, 0), IB_ESTATE);
  /* Two streams unacknowledged (rows 1024..1279: one half-closed, one open), then the kill. */
  TH_CHECK_MSG(write_rows(w, &b, 1024, 192, 64) == IB_OK, "%s", ib_errmsg());
  usleep(200000); /* let the shard store what it received */
  rc_writer_stats_get(w, &st);
  uint64_t acked_before = st.acked;
  TH_CHECK_MSG(st.pending >= 192, "pending %llu", (unsigned long long)st.pending);
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 9), 128 + 9);
  if (wal_shard_restart(&f) != 0) {
    wal_shard_abandon(&f, w, &b);
    return;
  }
  TH_CHECK_MSG(rc_writer_flush(w, 5000) == IB_OK, "flush after restart: %s", ib_errmsg());
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.pending, 0);
  TH_CHECK_EQ_INT(st.acked, 1216);
  TH_CHECK(st.acked > acked_before && st.retries >= 1);
  TH_CHECK_EQ_INT(st.lost, 0);
  /* Then more, on a fresh pair of streams. */
  TH_CHECK_MSG(write_rows(w, &b, 1216, 320, 64) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_MSG(rc_writer_flush(w, -1) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(online_size(c, NULL), 1536); /* seqs 0..1535, each once */
  rc_shard_info *info = shard_info(c);
  const rc_actor_info *a6 = actor_of(info, 6);
  TH_CHECK_EQ_INT(a6 ? a6->last_seq : 0, 1535);
  free(info);
  /* Every row is the one written under its seq (reward = obs = seq). */
  rc_batch sb;
  rc_batch_init(&sb, 1024, OD, AD);
  int bad = 0, seen_hi = 0;
  for (uint64_t start = 0; start < 1536; start += 1024) {
    uint64_t size = 0;
    int n = (int)IB_MIN(1024, 1536 - start);
    TH_CHECK_MSG(rc_read(c, 0, "online", start, &sb, n, &size, NULL) == IB_OK, "%s", ib_errmsg());
    for (int r = 0; r < sb.n; r++) {
      bad += sb.actor_id[r] != 6 || sb.reward[r] != (float)sb.seq[r] || sb.obs[r * OD] != sb.reward[r];
      seen_hi += sb.seq[r] >= 1024 && sb.seq[r] < 1216;
    }
  }
  TH_CHECK_EQ_INT(bad, 0);
  TH_CHECK_EQ_INT(seen_hi, 192); /* the rows of the two streams the kill hit, once each */
  rc_batch_free(&sb);
  TH_CHECK(rc_writer_close(w) == IB_OK);
  rc_client_close(c);
  rc_batch_free(&b);
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 15), 0);
  rt_rmdir(f.dir);
}

/* The size of the shard's newest log file (its only one here: no checkpoint ran), or -1. */
static long log_size(const char *dir, char *path, size_t cap) {
  DIR *d = opendir(dir);
  long best = -1;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, "store.wal.", 10) != 0 || strlen(e->d_name) != 26) continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(p, &st) == 0 && (best < 0 || strcmp(p, path) > 0)) {
      snprintf(path, cap, "%s", p);
      best = (long)st.st_size;
    }
  }
  if (d) closedir(d);
  return best;
}

/* Writes rows [k0, k0 + n) of actor 7 as one batch and flushes; 0 or -1 after a failed check. */
static int put_flush(rc_writer *w, rc_batch *b, int k0, int n) {
  fill(b, k0, n);
  int rc = rc_writer_write(w, b);
  if (rc == IB_OK) rc = rc_writer_flush(w, 5000);
  TH_CHECK_MSG(rc == IB_OK, "rows %d..%d: %s", k0, k0 + n - 1, ib_errmsg());
  return rc == IB_OK ? 0 : -1;
}

/* Info's count of acknowledged rows the shard's restore did not find (UINT64_MAX if Info fails). */
static uint64_t missing_acked(rc_client *c) {
  rc_shard_info *info = shard_info(c);
  uint64_t n = info ? info->restore_missing_acked : UINT64_MAX;
  free(info);
  return n;
}

/* A shard that lost items it had acknowledged is noticed by the writer at its next reply: st.lost
 * counts exactly the lost items. The loss is what a disk that reported a flush it never did
 * leaves: after a SIGKILL the log is cut back to its length before the last acknowledged batch.
 * The shard's restore notices it as well, from its counters file (Info.restore_missing_acked).
 * A restart that loses nothing counts none. */
static void test_lost_items_noticed(void) {
  wal_shard f;
  if (wal_shard_start(&f, "client_lost", NULL) != 0) return;
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, f.c, "online", 7, 0, 0) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 100, OD, AD);
  rc_writer_stats st;
  if (put_flush(w, &b, 0, 100) != 0) goto out;
  /* A restart that loses nothing (the restore ends with a checkpoint and a fresh log). */
  usleep(1500 * 1000);
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 9), 128 + 9);
  if (wal_shard_restart(&f) != 0) goto out;
  TH_CHECK_EQ_INT(missing_acked(f.c), 0);
  if (put_flush(w, &b, 100, 100) != 0) goto out;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.acked, 200);
  TH_CHECK_EQ_INT(st.lost, 0);
  char path[512] = "";
  long before = log_size(f.dir, path, sizeof path);
  if (put_flush(w, &b, 200, 100) != 0) goto out;
  char path2[512] = "";
  long after = log_size(f.dir, path2, sizeof path2);
  TH_CHECK_MSG(before > 44 && after > before && strcmp(path, path2) == 0, "log %s: %ld, then %s: %ld bytes", path,
               before, path2, after);
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.lost, 0);
  usleep(1500 * 1000); /* the shard's counters file (once a second) counts the batch as acknowledged */
  /* The disk "never wrote" the last batch although its flush returned: kill, cut the log back. */
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 9), 128 + 9);
  TH_CHECK(truncate(path, before) == 0);
  if (wal_shard_restart(&f) != 0) goto out;
  TH_CHECK_EQ_INT(online_size(f.c, NULL), 200); /* rows 200..299 are gone */
  /* The shard notices too, from its counters file: Info says how many. */
  TH_CHECK_MSG(missing_acked(f.c) == 100, "Info: %llu acknowledged rows missing after the restart, 100 lost",
               (unsigned long long)missing_acked(f.c));
  if (put_flush(w, &b, 300, 50) != 0) goto out;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.acked, 350);
  TH_CHECK_EQ_INT(st.lost, 100);
  /* Noticed once: more batches add nothing. */
  if (put_flush(w, &b, 350, 50) != 0) goto out;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.lost, 100);
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 15), 0);
out:
  wal_shard_abandon(&f, w, &b);
}

/* A shard killed while its rate limiter keeps inserts and samples in step restores every insert
 * from its log but no sample since its last checkpoint (none here): its restored cursor lies far
 * past the band, and every insert used to wait until the learner had sampled all that again (with
 * no periodic checkpoint, the whole run's samples). The restore now moves the cursor to the band's
 * middle: the next insert goes through at once, and Info counts the samples it added. */
static void test_limiter_after_kill(void) {
  static const char *const lim[] = {"--samples-per-insert", "1", "--error-buffer", "250", NULL};
  wal_shard f;
  if (wal_shard_start(&f, "client_limiter", lim) != 0) return;
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, f.c, "online", 9, 0, 0) == IB_OK);
  rc_batch b, sb;
  rc_batch_init(&b, 200, OD, AD);
  rc_batch_init(&sb, 200, OD, AD);
  for (int k = 0; k < 5; k++) { /* inserts and samples in step: I = S = 1000, the cursor at 0 */
    if (put_flush(w, &b, k * 200, 200) != 0) goto out;
    TH_CHECK_MSG(rc_sample(f.c, &sb, 200, -1) == IB_OK, "%s", ib_errmsg());
  }
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 9), 128 + 9);
  if (wal_shard_restart(&f) != 0) goto out;
  rc_shard_info *info = shard_info(f.c);
  TH_CHECK_MSG(info != NULL, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(info ? info->limiter.inserts : 0, 1000);
  TH_CHECK_EQ_INT(info ? info->limiter.samples : 0, 1000); /* 0 restored, 1000 counted by the restore */
  free(info);
  double t0 = ib_now_s();
  if (put_flush(w, &b, 1000, 200) != 0) goto out; /* c + 200 = 200 <= 250: at once */
  TH_CHECK_MSG(ib_now_s() - t0 < 1.0, "the first insert after the restart took %.2f s", ib_now_s() - t0);
  TH_CHECK_EQ_INT(online_size(f.c, NULL), 1200);
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 15), 0);
out:
  rc_batch_free(&sb);
  wal_shard_abandon(&f, w, &b);
}

/* Both tables' sampled counts in Info (UINT64_MAX if Info fails). */
static uint64_t sampled_total(rc_client *c) {
  rc_shard_info *info = shard_info(c);
  uint64_t n = info ? 0 : UINT64_MAX;
  for (int t = 0; info != NULL && t < info->n_tables; t++) n += info->tables[t].sampled;
  free(info);
  return n;
}

/* Actor `actor`'s duplicates as Info reports them (UINT64_MAX if Info fails or lacks the actor). */
static uint64_t actor_dups(rc_client *c, uint32_t actor) {
  rc_shard_info *info = shard_info(c);
  const rc_actor_info *a = actor_of(info, actor);
  uint64_t n = a ? a->duplicates : UINT64_MAX;
  free(info);
  return n;
}

/* The log holds no samples, and this shard never checkpoints: before store.counts, a SIGKILL set
 * Info's sampled counts back to 0, and the actors' duplicate counts too. The shard saves them about
 * once a second, so after 1.5 s of quiet the kill loses none. */
static void test_samples_after_kill(void) {
  wal_shard f;
  if (wal_shard_start(&f, "client_counts", NULL) != 0) return;
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, f.c, "online", 9, 0, 0) == IB_OK);
  rc_batch b, sb;
  rc_batch_init(&b, 200, OD, AD);
  rc_batch_init(&sb, 200, OD, AD);
  if (put_flush(w, &b, 0, 200) != 0) goto out;
  rc_writer *again = NULL; /* a second writer of actor 9 resends rows 0..49 */
  TH_CHECK(rc_writer_open(&again, f.c, "online", 9, 0, 0) == IB_OK);
  int rc = put_flush(again, &b, 0, 50);
  rc_writer_close(again);
  if (rc != 0) goto out;
  TH_CHECK_EQ_INT(actor_dups(f.c, 9), 50);
  for (int k = 0; k < 3; k++) TH_CHECK_MSG(rc_sample(f.c, &sb, 200, -1) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(sampled_total(f.c), 600);
  usleep(1500 * 1000);
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 9), 128 + 9);
  if (wal_shard_restart(&f) != 0) goto out;
  TH_CHECK_MSG(sampled_total(f.c) == 600, "Info counts %llu samples after the kill, 600 were drawn",
               (unsigned long long)sampled_total(f.c));
  TH_CHECK_MSG(actor_dups(f.c, 9) == 50, "Info counts %llu duplicates of actor 9 after the kill, 50 were sent",
               (unsigned long long)actor_dups(f.c, 9));
  TH_CHECK_EQ_INT(online_size(f.c, NULL), 200);
  TH_CHECK_EQ_INT(rt_server_stop(&f.s, 15), 0);
out:
  rc_batch_free(&sb);
  wal_shard_abandon(&f, w, &b);
}

static const th_case cases[] = {
    {"retry after restart does not duplicate", test_retry_after_restart},
    {"pipelined writer: a kill with two streams in flight, then exactly once", test_pipelined_restart},
    {"a shard that lost acknowledged items is noticed by the writer", test_lost_items_noticed},
    {"a shard killed under its rate limiter restarts with the limiter in its band", test_limiter_after_kill},
    {"a shard killed without a checkpoint still counts its samples (store.counts)", test_samples_after_kill},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
