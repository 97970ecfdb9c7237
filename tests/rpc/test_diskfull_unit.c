/* test_diskfull_unit.c: the pieces of a shard that heals from a failing disk, in-process and
 * deterministic (the end-to-end run under the LD_PRELOAD shim is test_diskfull.c).
 *
 * This executable defines fsync() and fdatasync() itself: ib_store is a static library, so the
 * linker binds persist*.c's calls (and its forked checkpoint writer's) to these definitions. They
 * pass through to the system calls, or fail with EIO while `disk_bad` is set.
 *   - persist: a failed flush breaks the log and persist_health says so (cause, since when);
 *     the actor's retry of the same rows is a duplicate that the store would acknowledge, and
 *     persist_barrier refuses it; a checkpoint on the bad disk fails and is counted; one on the
 *     good disk ends the trouble; a reopened store holds every row once.
 *   - rsrv: rsrv_tick, called by hand, tries a healing checkpoint at once, then waits its backoff
 *     (RSRV_HEAL_MIN_S), and heals once the disk is good; Info reports each state. On a disk
 *     that takes 400 ms to fail a flush, the wait after a failed attempt is at least 9 times the
 *     attempt (RSRV_HEAL_DUTY), within the cap that a checkpoint period sets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ib.h"
#include "persist.h"
#include "rpc_testutil.h"
#include "rsrv.h"
#include "store.h"
#include "store/store_fixture.h"
#include "th.h"

static volatile int disk_bad;     /* inherited by the forked checkpoint writer */
static volatile int disk_slow_ms; /* a bad disk takes this long to fail each flush */

static int bad_flush(void) {
  if (disk_slow_ms > 0) usleep((useconds_t)disk_slow_ms * 1000u);
  errno = EIO;
  return -1;
}

int fsync(int fd) {
  if (disk_bad) return bad_flush();
  return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd) {
  if (disk_bad) return bad_flush();
  return (int)syscall(SYS_fdatasync, fd);
}

#define N 8

static int insert_run(store *s, uint32_t actor, uint64_t seq0, store_insert_result *res) {
  fx_item x[N];
  store_item it[N];
  for (int i = 0; i < N; i++) {
    fx_fill(&x[i], actor, seq0 + (uint64_t)i, 1);
    it[i] = x[i].it;
  }
  return store_insert(s, "online", it, N, res);
}

static void test_persist_health_and_barrier(void) {
  char dir[256];
  rt_tmpdir(dir, sizeof dir, "diskfull_unit");
  store_spec sp[2];
  store_specs_default(sp, FX_O, FX_A, 16, 1024);
  store_config sc = {0, 64, 0};
  store *s = NULL;
  persist *p = NULL;
  TH_CHECK(store_create(&s, sp, 2, &sc) == IB_OK);
  TH_CHECK(persist_open(&p, s, dir, PERSIST_WAL, NULL) == IB_OK);
  if (p == NULL) goto out;
  store_insert_result r;
  TH_CHECK_EQ_INT(insert_run(s, 1, 0, &r), IB_OK);
  persist_health h;
  persist_health_get(p, &h);
  TH_CHECK(!h.needs_checkpoint && !h.undurable && h.since_ns == 0 && h.cause[0] == '\0');

  disk_bad = 1;
  TH_CHECK_EQ_INT(insert_run(s, 1, N, &r), IB_EIO); /* stored in memory, not durable */
  persist_health_get(p, &h);
  TH_CHECK_MSG(h.needs_checkpoint && h.refusing && h.undurable, "after a failed flush: needs %d refusing %d "
               "undurable %d", h.needs_checkpoint, h.refusing, h.undurable);
  TH_CHECK(h.since_ns > 0 && h.since_unix_ms > 0 && h.cause_errno == EIO);
  TH_CHECK_MSG(strstr(h.cause, "fdatasync log") && strstr(h.cause, "store.wal.") && strstr(h.cause, strerror(EIO)),
               "cause: %s", h.cause);
  /* The actor retries: the store finds duplicates and would acknowledge them; the barrier must not. */
  TH_CHECK_EQ_INT(insert_run(s, 1, N, &r), IB_OK);
  TH_CHECK_EQ_INT(r.duplicates, N);
  TH_CHECK_EQ_INT(persist_barrier(p), IB_EIO);
  TH_CHECK_EQ_INT(insert_run(s, 1, 2 * N, &r), IB_EIO); /* new rows: the log refuses them */
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL), IB_EIO);
  persist_health_get(p, &h);
  TH_CHECK_EQ_INT(h.failed_checkpoints, 1);
  TH_CHECK(h.needs_checkpoint);
  TH_CHECK_MSG(h.last_error[0] != '\0' && strcmp(h.last_error, h.cause) != 0,
               "the failed checkpoint's message is kept apart from the cause: '%s' / '%s'", h.last_error, h.cause);

  disk_bad = 0;
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL), IB_OK);
  persist_health_get(p, &h);
  TH_CHECK_MSG(!h.needs_checkpoint && !h.undurable && !h.refusing && h.since_ns == 0 && h.cause[0] == '\0' &&
                   h.failed_checkpoints == 0, "after a good checkpoint: needs %d undurable %d since %llu cause '%s'",
               h.needs_checkpoint, h.undurable, (unsigned long long)h.since_ns, h.cause);
  TH_CHECK_EQ_INT(persist_barrier(p), IB_OK); /* the retried rows are in the checkpoint now */
  TH_CHECK_EQ_INT(insert_run(s, 1, N, &r), IB_OK);
  TH_CHECK_EQ_INT(r.duplicates, N);
  TH_CHECK_EQ_INT(insert_run(s, 1, 2 * N, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, N);
  TH_CHECK(h.io_errors >= 2);
  persist_close(p);
  p = NULL;
  store_destroy(s);
  s = NULL;

  /* Restored: 3 runs, each row once. */
  TH_CHECK(store_create(&s, sp, 2, &sc) == IB_OK);
  TH_CHECK(persist_open(&p, s, dir, PERSIST_WAL, NULL) == IB_OK);
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, "online"), &ti);
  TH_CHECK_EQ_INT(ti.size, 3 * N);
  store_insert_result r2;
  TH_CHECK_EQ_INT(insert_run(s, 1, 0, &r2), IB_OK);
  TH_CHECK_EQ_INT(r2.duplicates, N); /* the dedup state came back too */
out:
  persist_close(p);
  store_destroy(s);
  disk_bad = 0;
  rt_rmdir(dir);
}

/* A small shard with the write-ahead log in `dir`. */
static void wal_shard_config(rsrv_config *cfg, const char *dir) {
  rsrv_config_default(cfg);
  cfg->obs_dim = 6;
  cfg->act_dim = 4;
  cfg->online_capacity = 1000;
  cfg->demo_capacity = 10;
  cfg->ckpt_dir = dir;
  cfg->durability = PERSIST_WAL;
}

static void test_rsrv_tick_heals(void) {
  char dir[256];
  rt_tmpdir(dir, sizeof dir, "diskfull_tick");
  rsrv_config cfg;
  wal_shard_config(&cfg, dir);
  rsrv *s = NULL;
  TH_CHECK_MSG(rsrv_start(&s, &cfg, 0) == IB_OK, "rsrv_start: %s", ib_errmsg());
  if (s == NULL) {
    rt_rmdir(dir);
    return;
  }
  char target[64], details[512];
  snprintf(target, sizeof target, "127.0.0.1:%d", rsrv_port(s));
  rt_client c;
  rt_client_open(&c, target, NULL);
  rt_items it = {.actor = 2, .first_seq = 0, .n = 4, .obs_dim = 6, .act_dim = 4, .nan_at = -1, .proposer = 1};
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &it, NULL, details, sizeof details, 3000), GRPC_STATUS_OK);
  ibrl_InfoReply *info = calloc(1, sizeof *info);

  disk_bad = 1;
  it.first_seq = 4;
  grpc_status_code st = rt_insert(&c, "online", &it, NULL, details, sizeof details, 3000);
  TH_CHECK_MSG(st == GRPC_STATUS_UNAVAILABLE && strstr(details, "is broken since") &&
                   strstr(details, strerror(EIO)) && strstr(details, "HINT: free space in"),
               "Insert on a broken log: %s %s", wire_status_name(st), details);
  /* The same rows again (an actor's retry): duplicates of rows that are in no durable place. */
  st = rt_insert(&c, "online", &it, NULL, details, sizeof details, 3000);
  TH_CHECK_MSG(st == GRPC_STATUS_UNAVAILABLE, "a retry of rows whose flush failed: %s %s (must not be acknowledged)",
               wire_status_name(st), details);
  rsrv_tick(s); /* the first attempt runs at once, and fails */
  TH_CHECK(rt_info(&c, info, 3000) == GRPC_STATUS_OK);
  TH_CHECK_MSG(info->durability_broken && info->durability_retries == 1 && info->durability_retry_in_s > 0.5 &&
                   info->durability_retry_in_s <= RSRV_HEAL_MIN_S,
               "after one failed attempt: broken %d retries %llu next in %.2f s", info->durability_broken,
               (unsigned long long)info->durability_retries, info->durability_retry_in_s);
  disk_bad = 0;
  rsrv_tick(s); /* within the backoff: no attempt */
  TH_CHECK(rt_info(&c, info, 3000) == GRPC_STATUS_OK);
  TH_CHECK_MSG(info->durability_broken && info->checkpoints == 0, "a tick within the backoff checkpointed");
  usleep((useconds_t)(RSRV_HEAL_MIN_S * 1e6) + 50000);
  rsrv_tick(s);
  TH_CHECK(rt_info(&c, info, 3000) == GRPC_STATUS_OK);
  TH_CHECK_MSG(!info->durability_broken && info->checkpoints == 1 && info->durability_retries == 0,
               "after the backoff on a good disk: broken %d checkpoints %llu", info->durability_broken,
               (unsigned long long)info->checkpoints);
  st = rt_insert(&c, "online", &it, NULL, details, sizeof details, 3000);
  TH_CHECK_MSG(st == GRPC_STATUS_OK, "the retry after healing: %s %s", wire_status_name(st), details);
  free(info);
  rt_client_close(&c);
  TH_CHECK_EQ_INT(rsrv_stop(s), IB_OK);
  disk_bad = 0;
  rt_rmdir(dir);
}

/* One failed healing attempt on a slow bad disk; returns Info's durability_retry_in_s (-1 on
 * error) and the attempt's duration in *took. */
static double slow_attempt(double ckpt_period_s, double *took) {
  char dir[256];
  rt_tmpdir(dir, sizeof dir, "diskfull_slow");
  rsrv_config cfg;
  wal_shard_config(&cfg, dir);
  cfg.ckpt_period_s = ckpt_period_s;
  rsrv *s = NULL;
  double retry_in = -1;
  *took = 0;
  TH_CHECK_MSG(rsrv_start(&s, &cfg, 0) == IB_OK, "rsrv_start: %s", ib_errmsg());
  if (s == NULL) {
    rt_rmdir(dir);
    return retry_in;
  }
  char target[64], details[512];
  snprintf(target, sizeof target, "127.0.0.1:%d", rsrv_port(s));
  rt_client c;
  rt_client_open(&c, target, NULL);
  rt_items it = {.actor = 2, .first_seq = 0, .n = 4, .obs_dim = 6, .act_dim = 4, .nan_at = -1, .proposer = 1};
  disk_bad = 1;
  grpc_status_code st = rt_insert(&c, "online", &it, NULL, details, sizeof details, 5000);
  TH_CHECK_MSG(st == GRPC_STATUS_UNAVAILABLE, "Insert on a bad disk: %s %s", wire_status_name(st), details);
  disk_slow_ms = 400;
  double t0 = ib_now_s();
  rsrv_tick(s); /* the first healing attempt, at once: it fails slowly */
  *took = ib_now_s() - t0;
  disk_slow_ms = 0;
  disk_bad = 0;
  ibrl_InfoReply *info = calloc(1, sizeof *info);
  if (rt_info(&c, info, 3000) == GRPC_STATUS_OK && info->durability_broken && info->durability_retries == 1)
    retry_in = info->durability_retry_in_s;
  else
    TH_CHECK_MSG(false, "after a slow failed attempt: broken %d retries %llu", info->durability_broken,
                 (unsigned long long)info->durability_retries);
  free(info);
  rt_client_close(&c);
  TH_CHECK_EQ_INT(rsrv_stop(s), IB_OK);
  rt_rmdir(dir);
  return retry_in;
}

static void test_rsrv_heal_duty(void) {
  double took = 0;
  double retry_in = slow_attempt(0, &took);
  printf("  no period: the attempt took %.2f s, the next comes in %.2f s\n", took, retry_in);
  TH_CHECK_MSG(took >= 0.4, "the slow disk's attempt took %.2f s", took);
  /* RSRV_HEAL_MIN_S alone would say 1 s; 9 times an attempt of >= 0.4 s is >= 3.6 s. */
  TH_CHECK_MSG(retry_in >= 0.9 * took * (1.0 / RSRV_HEAL_DUTY - 1.0) - 0.5 && retry_in <= RSRV_HEAL_MAX_S,
               "after an attempt of %.2f s the next comes in %.2f s (want at least %.2f, within %.0f)", took,
               retry_in, took * (1.0 / RSRV_HEAL_DUTY - 1.0), RSRV_HEAL_MAX_S);
  retry_in = slow_attempt(2.0, &took);
  printf("  a 2 s period: the attempt took %.2f s, the next comes in %.2f s\n", took, retry_in);
  TH_CHECK_MSG(retry_in >= 0 && retry_in <= 2.0, "with a 2 s period the next attempt comes in %.2f s (cap 2 s)",
               retry_in);
}

static const th_case cases[] = {
    {"persist: health, barrier, checkpoint ends the trouble", test_persist_health_and_barrier},
    {"rsrv_tick: heals at once, then with backoff", test_rsrv_tick_heals},
    {"rsrv_tick: a slow failing attempt stretches the wait (RSRV_HEAL_DUTY)", test_rsrv_heal_duty},
    {NULL, NULL},
};

int main(int argc, char **argv) { return rt_main(argc, argv, cases); }
