/* test_persist_power.c: acknowledged rows of a store with --durability wal survive a power cut,
 * including the loss of directory entries (creates, renames, unlinks) that were not yet made
 * durable by an fsync of the directory.
 *
 * The crash model (pcut_fs.h has the mechanics):
 *   - This executable defines open, rename, unlink, fsync, fdatasync and ftruncate; persist*.c's
 *     calls (from the static ib_store) bind to them, and those on the store directory are
 *     journaled in MAP_SHARED memory under a process-shared lock, so the forked checkpoint writer
 *     journals there too.
 *   - A directory operation is durable once an fsync of the directory that started after it has
 *     returned. A file's bytes are durable up to its length when its last successful
 *     fsync/fdatasync started. Nothing else is promised (POSIX; ext4's ordered mode often does
 *     more, other file systems do not).
 *   - A crash state is the namespace of the last directory fsync plus each prefix of the
 *     operations issued after it (a journaling file system commits them in order), and also each
 *     other subset of them (up to 8 pending; a file system that does not keep their order; a
 *     failure there is labelled "a subset ..., not a prefix"); every file is cut to a length
 *     between its durable length and its length at the crash: both ends and random points, in
 *     combinations. Bytes an unlink, a replacing rename or a truncation removed come back from
 *     shadow copies. In one more state per file (all files at once when more than two can
 *     differ), its bytes past its durable length are also damaged as a file system that commits
 *     a size before the data, or tears a multi-sector write, leaves them: 512-byte sectors that
 *     read zero or stale, all of them, one in the middle, or a mix (pcut_damage). A restore that
 *     took a damaged record for data (no CRC check) fails here and nowhere else in this file.
 *     The subset model found that a restore deleted two later logs with one directory fsync
 *     after both: a crash could keep the older deletion only, leaving a gap that the next
 *     restore refused (fixed in persist.c: one fsync per deletion).
 *   - Each state is built in a fresh directory and restored with persist_open. It must succeed
 *     (persist.h documents no refusal for a state a crash can leave, so any refusal fails), each
 *     actor's acknowledged seqs must be there as a gapless run from 0 with nothing beyond what it
 *     sent, the table must hold nothing else, and the actor's retry of its unacknowledged rows
 *     must be stored (not refused as duplicates), as must a new batch, durably (a second restore
 *     sees them).
 * Crash points:
 *   - enumerated: a deterministic sequence (open; inserts; a checkpoint with rows acknowledged in
 *     its new log before its rename; a checkpoint that acknowledges a batch whose flush is still
 *     held; a flush held across two failed checkpoints, so three logs whose first lost its tail;
 *     a checkpoint that deletes three old logs) is run once per event, stopped just before that
 *     event (in the parent or in the checkpoint's child), and every crash state there is checked;
 *   - during a restore: crash states that a restore must repair (drop later logs, cut a torn tail,
 *     delete stale logs) are restored in a journaled directory, stopped at each event of the
 *     restore and of the retries after it, and the states of that second crash are restored again;
 *   - random: threads insert while checkpoints run (every third made to fail) and flushes take up
 *     to 2 ms; crash states are taken at random moments or just before a journaled call a few
 *     events ahead (every other journaled call waits meanwhile; appends go on, beyond the
 *     lengths the snapshot recorded);
 *   - random on a lying disk: as under load, but one file flush and one directory fsync in 3
 *     return 0 and make nothing durable (pcut_lie_rate). Nothing is promised there, so each state
 *     gets lie_check instead: no restore stores a row nobody sent or one twice, the strict restore
 *     accepts the state or refuses it as damaged or missing data, and persist_open_salvage (on a
 *     copy) always succeeds, salvages exactly the refused states, keeps the strict restore's rows
 *     otherwise, and leaves a directory that the strict restore accepts. The case checks that the
 *     disk lied, that states were refused and salvaged, and that strict restores lost
 *     acknowledged rows (the lies reached them);
 *   - random on a failing disk: as above, but the model fails (EIO) one in 8 creates, renames,
 *     unlinks and directory fsyncs and one in 12 file flushes in the store directory, in the
 *     parent and in the checkpoint writer (pcut_fail_rate; pcut_fs.h says what a failed call
 *     leaves: a failed flush caps the file's durable length for good, a failed directory fsync
 *     commits nothing). Checkpoints fail and are retried after a back-off; an inserter whose
 *     batch is refused does not count it as acknowledged and sends the same rows again, and a
 *     batch of duplicates is acknowledged only after persist_barrier, as the server does. Crash
 *     states are taken at random moments, just before a journaled call a few events ahead and,
 *     most of them, just before a call a few events after a failed directory fsync or rename
 *     (pcut_hold_after_failure); namespace subsets only while at most 3 operations are
 *     pending. The case checks that every kind failed, that batches were refused and then
 *     acknowledged again, that checkpoints succeeded after failures, and that once the disk is
 *     good a checkpoint heals the shard, the refused rows sent again are acknowledged and a
 *     crash then keeps them all. A planted bug that counts a failed log flush as a success
 *     turns this case red in every run; one that ignores a failed directory fsync after a
 *     log's rename in 4 of 7 runs, after the checkpoint's rename in about 2 of 7 (the window
 *     between the failure and the next good directory fsync is a few events). The earlier
 *     cases stay green.
 * That persist*.c's calls really reach these definitions is checked, not assumed: the sequence
 * must count more than 40 journaled events (nm on libib_store.a shows open, rename, unlink,
 * fsync, fdatasync and ftruncate; a fortified build calling __open_2 would fail here).
 * Bounded: waits have BOUND_S (a hang bound, not a speed limit); the whole file takes about a
 * minute on a slow 2-vCPU VM, plain or under ASan. Directories are made under /dev/shm when it
 * is there (the model decides what is durable, so the real flushes need not reach a disk). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ib.h"
#include "log.h"
#include "pcut_fs.h"
#include "persist.h"
#include "rng.h"
#include "store.h"
#include "store_fixture.h"
#include "store_testdir.h"
#include "th.h"

#define BOUND_S 60  /* a hang bound, not a speed limit */
#define CAP 16384   /* online capacity: nothing is evicted here */
#define NA 3        /* actors 1..NA */
#define MAX_SEEDS 10
#define REC4 (16 + 4 * ((2 * FX_O + FX_A + 2) * 4 + 32)) /* a log record of 4 rows */

/* ---- scratch directories ---- */

static void tmpdir(char *out, size_t n, const char *tag) {
  struct stat st;
  const char *root = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                         ? "/dev/shm"
                         : "/tmp";
  snprintf(out, n, "%s/ibrl-pcut-%s-XXXXXX", root, tag);
  IB_CHECK(mkdtemp(out) != NULL);
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Waits until `path` is longer than `len` (an append by another thread); false after BOUND_S. */
static bool wait_longer(const char *path, long len) {
  for (int i = 0; i < BOUND_S * 1000; i++) {
    if (file_size(path) > len) return true;
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* Copies the regular files of `from` into the directory `to`. */
static void copy_dir(const char *from, const char *to) {
  DIR *d = opendir(from);
  IB_CHECK(d != NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char a[320], b[320];
    snprintf(a, sizeof a, "%s/%s", from, e->d_name);
    snprintf(b, sizeof b, "%s/%s", to, e->d_name);
    struct stat st;
    if (stat(a, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    int in = open(a, O_RDONLY), out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    IB_CHECK(in >= 0 && out >= 0);
    char buf[8192];
    ssize_t k;
    while ((k = read(in, buf, sizeof buf)) > 0) IB_CHECK(write(out, buf, (size_t)k) == k);
    close(in);
    close(out);
  }
  closedir(d);
}

/* ---- store and the ledger of what each actor sent and got acknowledged ---- */

/* 64 actor slots per table (NA actors are used), not the default 4,096: zeroing and forking
 * the default's tables was most of this test's time (store_fixture.h). */
static store *mk(void) { return fx_store_slots(CAP, 64); }

/* Seqs [0, acked[a]) of actor a were acknowledged; seqs below att[a] were sent. One batch at a
 * time per actor, so both are gapless. Written by inserting threads, read with __atomic. */
typedef struct ledger {
  uint64_t acked[NA + 1], att[NA + 1];
} ledger;
static ledger LG;

static void ledger_read(ledger *out) {
  for (int a = 0; a <= NA; a++) {
    out->acked[a] = __atomic_load_n(&LG.acked[a], __ATOMIC_ACQUIRE);
    out->att[a] = __atomic_load_n(&LG.att[a], __ATOMIC_ACQUIRE);
  }
}

/* Inserts actor's seqs [from, to) (at most 32) into `online`. */
static int ins_raw(store *s, uint32_t actor, uint64_t from, uint64_t to, store_insert_result *res) {
  fx_item xs[32];
  store_item v[32];
  IB_CHECK(to > from && to - from <= 32);
  int n = 0;
  for (uint64_t q = from; q < to; q++) fx_fill(&xs[n++], actor, q, STORE_PROPOSER_RL);
  fx_views(v, xs, n);
  return store_insert(s, "online", v, (size_t)n, res);
}

/* As ins_raw, keeping the ledger. */
static int lins(store *s, uint32_t actor, uint64_t from, uint64_t to) {
  if (to > __atomic_load_n(&LG.att[actor], __ATOMIC_ACQUIRE))
    __atomic_store_n(&LG.att[actor], to, __ATOMIC_RELEASE);
  int rc = ins_raw(s, actor, from, to, NULL);
  if (rc == IB_OK && to > __atomic_load_n(&LG.acked[actor], __ATOMIC_ACQUIRE))
    __atomic_store_n(&LG.acked[actor], to, __ATOMIC_RELEASE);
  return rc;
}

/* As lins, but acknowledging as the server does (rsrv_data.c): a batch that held duplicates (a retry
 * of rows whose flush failed) only once persist_barrier says they are durable. */
static int lins_ack(store *s, persist *p, uint32_t actor, uint64_t from, uint64_t to) {
  if (to > __atomic_load_n(&LG.att[actor], __ATOMIC_ACQUIRE))
    __atomic_store_n(&LG.att[actor], to, __ATOMIC_RELEASE);
  store_insert_result res = {0, 0, 0};
  int rc = ins_raw(s, actor, from, to, &res);
  if (rc == IB_OK && res.duplicates > 0) rc = persist_barrier(p);
  if (rc == IB_OK && to > __atomic_load_n(&LG.acked[actor], __ATOMIC_ACQUIRE))
    __atomic_store_n(&LG.acked[actor], to, __ATOMIC_RELEASE);
  return rc;
}

/* Rows of actor a now: *have = highest seq + 1 (0 if none); false if they are not a run. */
static bool actor_rows(store *s, uint32_t a, uint64_t *have) {
  store_actor_info ai;
  int t = store_table_find(s, "online");
  if (store_actor_get(s, t, a, &ai) != IB_OK) {
    *have = 0;
    return true;
  }
  *have = ai.highest_seq + 1;
  return ai.inserts == *have;
}

/* Checks the restored store against the ledger: acked <= rows <= sent, gapless, nothing else. */
static bool rows_ok(store *s, const ledger *lg, const uint64_t *extra, const char *what,
                    uint64_t *have) {
  bool ok = true;
  uint64_t sum = 0;
  for (uint32_t a = 1; a <= NA; a++) {
    bool run = actor_rows(s, a, &have[a]);
    uint64_t hi = lg->att[a] + (extra ? extra[a] : 0), lo = lg->acked[a] + (extra ? extra[a] : 0);
    sum += have[a];
    if (!run || have[a] < lo || have[a] > hi) {
      ok = false;
      TH_CHECK_MSG(false,
                   "%s: actor %u: acknowledged [0, %llu), sent [0, %llu), but the restore holds "
                   "seqs up to %lld%s",
                   what, a, (unsigned long long)lo, (unsigned long long)hi, (long long)have[a] - 1,
                   run ? "" : " with holes or duplicates");
    }
  }
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, "online"), &ti);
  if (ti.size != sum) {
    ok = false;
    TH_CHECK_MSG(false, "%s: table holds %llu rows but the actors account for %llu", what,
                 (unsigned long long)ti.size, (unsigned long long)sum);
  }
  return ok;
}

/* ---- one crash state ---- */

typedef struct tally {
  int states, bad, dropped, torn, stale;
  int refused, salvaged, lost_acked; /* a lying disk: strict restores refused, salvages, and
                                        strict restores that lost acknowledged rows */
  int counted;  /* restores that used store.counts with a watermark of acknowledged rows > 0 */
  int noticed;  /* a lying disk: strict restores whose watermark showed rows missing */
  int damaged, sectors; /* states with sectors damaged past a durable length (pcut_damage) */
  int seeds;
  char seed_dir[MAX_SEEDS][96];
  ledger seed_lg[MAX_SEEDS];
  int seed_kind[MAX_SEEDS];
} tally;

/* Restores the crash state in `dir`, checks it, retries every actor's unacknowledged rows and
 * inserts a new batch for actor 1, then restores once more and checks that both stayed. */
static bool state_check(const char *dir, const ledger *lg, const char *what, tally *t,
                        persist_restore_info *ri_out) {
  t->states++;
  store *s = mk();
  persist *p = NULL;
  persist_restore_info ri;
  bool ok_watermark = true;
  int rc = persist_open(&p, s, dir, PERSIST_WAL, &ri);
  if (rc != IB_OK) {
    TH_CHECK_MSG(false, "%s: restore refused: %s", what, ib_errmsg());
    store_destroy(s);
    t->bad++;
    return false;
  }
  if (ri_out) *ri_out = ri;
  t->counted += ri.counts_acked > 0;
  if (ri.acked_missing > 0) { /* an honest disk keeps every row the watermark counted */
    TH_CHECK_MSG(false, "%s: the restore reports %llu acknowledged rows missing (store.counts counted %llu)",
                 what, (unsigned long long)ri.acked_missing, (unsigned long long)ri.counts_acked);
    ok_watermark = false;
  }
  t->dropped += ri.wal_dropped_logs > 0;
  t->torn += ri.wal_torn_bytes > 0;
  t->stale += ri.wal_stale;
  uint64_t have[NA + 1] = {0};
  bool ok = rows_ok(s, lg, NULL, what, have) && ok_watermark;
  /* The retry: each actor sends again what was not acknowledged; rows the crash kept come back
   * as duplicates, the others must be stored. */
  for (uint32_t a = 1; ok && a <= NA; a++) {
    uint32_t stored = 0, dups = 0;
    for (uint64_t q = lg->acked[a]; q < lg->att[a]; q += 32) {
      store_insert_result res = {0, 0, 0};
      uint64_t to = IB_MIN(q + 32, lg->att[a]);
      rc = ins_raw(s, a, q, to, &res);
      if (rc != IB_OK) {
        TH_CHECK_MSG(false, "%s: actor %u's retry of [%llu, %llu) failed: %s", what, a,
                     (unsigned long long)q, (unsigned long long)to, ib_errmsg());
        ok = false;
        break;
      }
      stored += res.stored;
      dups += res.duplicates;
    }
    if (ok && (stored != lg->att[a] - have[a] || dups != have[a] - lg->acked[a])) {
      TH_CHECK_MSG(false,
                   "%s: actor %u's retry of [%llu, %llu) stored %u and refused %u as duplicates; "
                   "the restore held [0, %llu)",
                   what, a, (unsigned long long)lg->acked[a], (unsigned long long)lg->att[a],
                   stored, dups, (unsigned long long)have[a]);
      ok = false;
    }
  }
  if (ok && (rc = ins_raw(s, 1, lg->att[1], lg->att[1] + 4, NULL)) != IB_OK) {
    TH_CHECK_MSG(false, "%s: a new batch after the restore failed: %s", what, ib_errmsg());
    ok = false;
  }
  persist_close(p);
  store_destroy(s);
  if (ok) { /* the second restore: everything the retry and the new batch were told is kept */
    ledger all = *lg;
    all.att[1] += 4;
    for (int a = 1; a <= NA; a++) all.acked[a] = all.att[a];
    s = mk();
    p = NULL;
    rc = persist_open(&p, s, dir, PERSIST_WAL, NULL);
    char w2[700];
    snprintf(w2, sizeof w2, "%s, restored again after the retry", what);
    if (rc != IB_OK) {
      TH_CHECK_MSG(false, "%s: refused: %s", w2, ib_errmsg());
      ok = false;
    } else {
      ok = rows_ok(s, &all, NULL, w2, have);
    }
    persist_close(p);
    store_destroy(s);
  }
  if (!ok) t->bad++;
  return ok;
}

/* ---- one crash state of a disk that lies about flushes ---- */

/* Every online row holds the item of its key, no (actor, seq) twice, only seqs that were sent;
 * *n gets the rows and *lost (may be NULL) whether acknowledged seqs are missing. */
static bool rows_valid(store *s, const ledger *lg, const char *what, uint64_t *n, bool *lost) {
  int t = store_table_find(s, "online");
  store_batch b;
  store_batch_init(&b, 64, FX_O, FX_A);
  static uint8_t seen[NA + 1][CAP];
  memset(seen, 0, sizeof seen);
  bool ok = true;
  *n = 0;
  for (uint64_t pos = 0; ok; pos += b.n) {
    IB_CHECK(store_read(s, t, pos, 64, &b, NULL, NULL, NULL) == IB_OK);
    if (b.n == 0) break;
    for (uint32_t i = 0; i < b.n && ok; i++) {
      uint64_t key = b.weight_version[i];
      uint32_t a = (uint32_t)(key / 10000u);
      uint64_t q = key % 10000u;
      if (!fx_row_ok(&b, i) || a < 1 || a > NA || q >= lg->att[a] || q >= CAP || seen[a][q]) {
        TH_CHECK_MSG(false, "%s: row %llu (key %llu) is %s", what, (unsigned long long)(pos + i),
                     (unsigned long long)key,
                     !fx_row_ok(&b, i) ? "not the item of its key"
                     : (a < 1 || a > NA || q >= lg->att[a] || q >= CAP) ? "a row nobody sent"
                                                                       : "there twice");
        ok = false;
      } else {
        seen[a][q] = 1;
        (*n)++;
      }
    }
  }
  store_batch_free(&b);
  if (lost) {
    *lost = false;
    for (uint32_t a = 1; a <= NA; a++)
      for (uint64_t q = 0; q < lg->acked[a] && q < CAP; q++) *lost |= !seen[a][q];
  }
  return ok;
}

/* A crash state of a lying disk (pcut_lie_rate): no promise is left, but no restore may crash,
 * store a row nobody sent, or store one twice. The strict restore either accepts the state or
 * refuses it as damaged or missing data (nothing else); the salvage (on a copy) always succeeds,
 * salvages exactly when the strict restore refused, keeps the same rows when it did not, takes
 * a new batch, and leaves a directory the strict restore accepts with those rows. */
static bool lie_check(const char *dir, const ledger *lg, const char *what, tally *t) {
  t->states++;
  char copy[96];
  tmpdir(copy, sizeof copy, "lie");
  copy_dir(dir, copy);
  store *s = mk();
  persist *p = NULL;
  persist_restore_info ri;
  int rc = persist_open(&p, s, dir, PERSIST_WAL, &ri);
  bool ok = true, strict_ok = rc == IB_OK, lost = false;
  uint64_t n_strict = 0, n_salv = 0;
  if (rc == IB_OK) {
    ok = rows_valid(s, lg, what, &n_strict, &lost);
    t->lost_acked += lost;
    t->counted += ri.counts_acked > 0;
    t->noticed += ri.acked_missing > 0;
    if (ri.acked_missing > ri.counts_acked) {
      TH_CHECK_MSG(false, "%s: %llu rows reported missing of the %llu store.counts counted", what,
                   (unsigned long long)ri.acked_missing, (unsigned long long)ri.counts_acked);
      ok = false;
    }
    persist_close(p);
  } else if (rc == IB_EPROTO || rc == IB_ECHECKSUM || rc == IB_EMISSING) {
    t->refused++;
  } else {
    TH_CHECK_MSG(false, "%s: the strict restore failed with %s: %s", what, ib_strerror(rc), ib_errmsg());
    ok = false;
  }
  store_destroy(s);
  s = mk();
  p = NULL;
  persist_salvage_info sv;
  char w2[700];
  snprintf(w2, sizeof w2, "%s, salvaged", what);
  rc = persist_open_salvage(&p, s, copy, PERSIST_WAL, NULL, &sv);
  if (rc != IB_OK) {
    TH_CHECK_MSG(false, "%s: failed: %s", w2, ib_errmsg());
    ok = false;
  } else {
    t->salvaged += sv.salvaged;
    ok &= rows_valid(s, lg, w2, &n_salv, NULL);
    if (sv.salvaged == strict_ok || (strict_ok && n_salv != n_strict)) {
      TH_CHECK_MSG(false, "%s: salvaged %d after a strict restore that %s (%llu rows; salvage kept %llu)",
                   w2, sv.salvaged, strict_ok ? "succeeded" : "refused", (unsigned long long)n_strict,
                   (unsigned long long)n_salv);
      ok = false;
    }
    if (ins_raw(s, 1, CAP - 8, CAP - 4, NULL) != IB_OK) {
      TH_CHECK_MSG(false, "%s: a new batch failed: %s", w2, ib_errmsg());
      ok = false;
    }
    persist_close(p);
  }
  store_destroy(s);
  if (ok) {
    s = mk();
    p = NULL;
    rc = persist_open(&p, s, copy, PERSIST_WAL, NULL);
    store_table_info ti;
    store_table_info_get(s, store_table_find(s, "online"), &ti);
    if (rc != IB_OK || ti.size != n_salv + 4) {
      TH_CHECK_MSG(false, "%s: the strict restore after it %s (%llu rows, expected %llu)", w2,
                   rc == IB_OK ? "holds other rows" : ib_errmsg(), (unsigned long long)ti.size,
                   (unsigned long long)(n_salv + 4));
      ok = false;
    }
    if (rc == IB_OK) persist_close(p);
    store_destroy(s);
  }
  fx_rmdir_all(copy);
  if (!ok) t->bad++;
  return ok;
}

static bool g_lying; /* snap_check checks states with lie_check */

/* ---- every crash state of one moment ---- */

static pcut_ns g_vars[PCUT_MAX_VARIANTS]; /* main thread only */

/* Checks every crash state of the snapshot (namespaces by prefix or subset; file lengths: all
 * combinations of durable/whole/random when at most two files can differ, else both ends and
 * random mixes; then damaged sectors). With `seeds`, keeps states a restore had to repair for the
 * restore crashes. */
static void snap_check(const pcut_snap *sn, const ledger *lg, const char *what, bool subsets,
                       rng *r, tally *t, bool seeds) {
  int nprefix = 0;
  int nv = pcut_variants(sn, subsets, g_vars, PCUT_MAX_VARIANTS, &nprefix);
  for (int v = 0; v < nv; v++) {
    const pcut_ns *ns = &g_vars[v];
    uint64_t lo[PCUT_MAX_NAMES], hi[PCUT_MAX_NAMES];
    int ranged[PCUT_MAX_NAMES], nr = 0;
    for (int i = 0; i < ns->n; i++) {
      pcut_file_range(sn, ns->e[i].fid, &lo[i], &hi[i]);
      if (hi[i] > lo[i]) ranged[nr++] = i;
    }
    int combos = nr <= 2 ? (nr == 0 ? 1 : nr == 1 ? 3 : 9) : 6;
    /* Then damaged sectors (pcut_damage): each ranged file in turn when at most two are, else
     * all of them at once, in one more state each. */
    int ndmg = nr == 0 ? 0 : nr <= 2 ? nr : 1;
    for (int c = 0; c < combos + ndmg; c++) {
      uint64_t len[PCUT_MAX_NAMES];
      int dmg[PCUT_MAX_NAMES]; /* the damage to do to entry i, or -1 */
      for (int i = 0; i < ns->n; i++) {
        len[i] = hi[i];
        dmg[i] = -1;
      }
      char cut[160] = "";
      int cl = 0;
      for (int k = 0, x = c; k < nr; k++, x /= 3) {
        int i = ranged[k];
        /* 0 durable, 1 whole, 2 a tear anywhere in between, 3 whole or torn with damaged sectors */
        int pick = c >= combos ? (nr > 2 || c - combos == k ? 3 : 1)
                   : nr <= 2   ? x % 3
                               : (c == 0 ? 0 : c == 1 ? 1 : (int)rng_below(r, 3));
        uint64_t span = hi[i] - lo[i];
        len[i] = pick == 0   ? lo[i]
                 : pick == 1 ? hi[i]
                 : pick == 2 || rng_below(r, 2) ? lo[i] + 1 + rng_below(r, (uint32_t)span)
                             : hi[i];
        if (pick == 3) dmg[i] = (int)rng_below(r, PCUT_NDMG);
        static const char *dn[PCUT_NDMG] = {",zeroed", ",holed", ",mixed"};
        if (cl < (int)sizeof cut - 40)
          cl += snprintf(cut + cl, sizeof cut - (size_t)cl, " %s=%s%s", ns->e[i].name + 6,
                         pick == 0 ? "durable" : len[i] == hi[i] ? "whole" : "torn",
                         pick == 3 ? dn[dmg[i]] : "");
      }
      char names[200] = "";
      int nl = 0;
      for (int i = 0; i < ns->n && nl < (int)sizeof names - 40; i++)
        nl += snprintf(names + nl, sizeof names - (size_t)nl, "%s%s", i ? "," : "", ns->e[i].name);
      char out[96], w[600];
      tmpdir(out, sizeof out, "state");
      pcut_build(sn, ns, len, out);
      int sectors = 0;
      for (int i = 0; i < ns->n; i++)
        if (dmg[i] >= 0) sectors += pcut_damage(sn, ns, i, len[i], out, dmg[i], r);
      t->damaged += sectors > 0;
      t->sectors += sectors;
      snprintf(w, sizeof w, "%s; names {%s}%s;%s", what, names,
               v < nprefix ? "" : " (a subset of the directory operations, not a prefix)", cut);
      persist_restore_info ri;
      memset(&ri, 0, sizeof ri);
      /* The seed is copied before the check changes it. */
      char keep[96] = "";
      if (seeds && t->seeds < MAX_SEEDS) {
        tmpdir(keep, sizeof keep, "seed");
        copy_dir(out, keep);
      }
      bool ok = g_lying ? lie_check(out, lg, w, t) : state_check(out, lg, w, t, &ri);
      if (keep[0]) {
        int kind = ri.wal_dropped_logs >= 2 ? 0 : ri.wal_dropped_logs == 1 ? 1
                   : ri.wal_torn_bytes > 0 ? 2 : ri.wal_stale ? 3 : -1;
        int same = 0;
        for (int k = 0; k < t->seeds; k++) same += t->seed_kind[k] == kind;
        if (ok && kind >= 0 && same < 3) {
          snprintf(t->seed_dir[t->seeds], sizeof t->seed_dir[0], "%s", keep);
          t->seed_lg[t->seeds] = *lg;
          t->seed_kind[t->seeds++] = kind;
        } else {
          fx_rmdir_all(keep);
        }
      }
      fx_rmdir_all(out);
    }
  }
}

/* ---- a checkpoint or an insert in its own thread ---- */

typedef struct job {
  persist *p;
  store *s;
  uint32_t actor;
  uint64_t from, to;
  int rc;
  int done;
  pthread_t th;
} job;

static void *ck_main(void *arg) {
  job *j = arg;
  j->rc = persist_checkpoint(j->p, NULL);
  __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void *ins_main(void *arg) {
  job *j = arg;
  j->rc = lins(j->s, j->actor, j->from, j->to);
  __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void job_ck(job *j, persist *p) {
  memset(j, 0, sizeof *j);
  j->p = p;
  j->rc = 99;
  IB_CHECK(pthread_create(&j->th, NULL, ck_main, j) == 0);
}

static void job_ins(job *j, store *s, uint32_t actor, uint64_t from, uint64_t to) {
  memset(j, 0, sizeof *j);
  j->s = s;
  j->actor = actor;
  j->from = from;
  j->to = to;
  j->rc = 99;
  IB_CHECK(pthread_create(&j->th, NULL, ins_main, j) == 0);
}

/* Waits for the job's end (BOUND_S), joins it and returns its status. A job that hangs is a
 * failure; the gates are then opened so that it can end and be joined. */
static int job_join(job *j, const char *what) {
  for (int i = 0; i < BOUND_S * 1000 && !__atomic_load_n(&j->done, __ATOMIC_ACQUIRE); i++) {
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  if (!__atomic_load_n(&j->done, __ATOMIC_ACQUIRE)) {
    TH_CHECK_MSG(false, "%s did not return within %d s", what, BOUND_S);
    pcut_gate_open(0); /* let it end */
    pcut_gate_open(1);
  }
  pthread_join(j->th, NULL);
  return j->rc;
}

/* ---- the enumerated sequence ---- */

typedef struct scen {
  char dir[96];
  int steps_ok; /* steps that went as planned (a check, not a crash state) */
  pthread_t th;
} scen;

#define STEP(cond, ...)                      \
  do {                                       \
    if (cond)                                \
      sc->steps_ok++;                        \
    else                                     \
      TH_CHECK_MSG(false, __VA_ARGS__);      \
  } while (0)

static void log_path(const scen *sc, int epoch, char *out, size_t n) {
  snprintf(out, n, "%s/store.wal.%016x", sc->dir, epoch);
}

static void *write_main(void *arg) {
  scen *sc = arg;
  char planted[160], lp[160];
  snprintf(planted, sizeof planted, "%s/store.ckpt.tmp", sc->dir);
  store *s = mk();
  persist *p = NULL;
  int rc = persist_open(&p, s, sc->dir, PERSIST_WAL, NULL);
  STEP(rc == IB_OK, "open: %s", ib_errmsg());
  if (rc != IB_OK) goto out;
  STEP(lins(s, 1, 0, 4) == IB_OK && lins(s, 2, 0, 4) == IB_OK, "first inserts: %s", ib_errmsg());

  /* Checkpoint 1: rows acknowledged in the new log 1 while the writer waits before its rename. */
  job c, i1, i2, i3, i4;
  pcut_gate_arm(0, PCUT_RENAME, "store.ckpt", PCUT_GATE_BEFORE_HOLD);
  job_ck(&c, p);
  STEP(pcut_gate_wait(0, BOUND_S), "checkpoint 1 never reached its rename");
  STEP(lins(s, 1, 4, 8) == IB_OK && lins(s, 2, 4, 8) == IB_OK, "inserts during checkpoint 1: %s",
       ib_errmsg());
  pcut_gate_open(0);
  STEP(job_join(&c, "checkpoint 1") == IB_OK, "checkpoint 1 failed");

  /* Checkpoint 2 acknowledges actor 2's batch while actor 1's flush of log 1 is still held:
   * only the checkpoint makes it durable. The deletion of log 1 waits until that ack is in. */
  pcut_gate_arm(0, PCUT_FSYNC, "store.wal.", PCUT_GATE_BEFORE_HOLD);
  log_path(sc, 1, lp, sizeof lp);
  long len1 = file_size(lp);
  job_ins(&i1, s, 1, 8, 12);
  STEP(pcut_gate_wait(0, BOUND_S), "actor 1's insert never reached its flush");
  job_ins(&i2, s, 2, 8, 12);
  STEP(wait_longer(lp, len1 + REC4), "actor 2's batch was not appended to log 1");
  pcut_gate_arm(1, PCUT_UNLINK, "store.wal.", PCUT_GATE_BEFORE_HOLD);
  uint64_t d0 = pcut_events_of(PCUT_DSYNC);
  job_ck(&c, p);
  /* Actor 2's ack comes before the deletion: the checkpoint is durable (its two directory
   * fsyncs, the new log's and its own, are done) before the old log goes. A deletion before that
   * is a bug (planted ones are): let the checkpoint go on then, or it would wait for ever. */
  for (int k = 0; k < BOUND_S * 1000 && !__atomic_load_n(&i2.done, __ATOMIC_ACQUIRE); k++) {
    if (pcut_gate_wait(1, 0)) break;
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  bool early = !__atomic_load_n(&i2.done, __ATOMIC_ACQUIRE);
  if (early && pcut_events_of(PCUT_DSYNC) - d0 >= 2) {
    /* Both fsyncs happened: the ack is due (its thread was woken); give it a moment. */
    for (int k = 0; k < 2000 && early; k++) {
      struct timespec ts = {0, 1000000L};
      nanosleep(&ts, NULL);
      early = !__atomic_load_n(&i2.done, __ATOMIC_ACQUIRE);
    }
  }
  if (early) pcut_gate_open(1);
  STEP(!early, "checkpoint 2 deleted log 1 before the checkpoint was durable");
  STEP(job_join(&i2, "actor 2's insert (acknowledged by checkpoint 2)") == IB_OK,
       "actor 2's insert failed");
  STEP(early || pcut_gate_wait(1, BOUND_S), "checkpoint 2 never deleted log 1");
  pcut_gate_open(1);
  STEP(job_join(&c, "checkpoint 2") == IB_OK, "checkpoint 2 failed");
  pcut_gate_open(0);
  STEP(job_join(&i1, "actor 1's insert") == IB_OK, "actor 1's insert failed");

  /* A flush of log 2 held across two failed checkpoints: logs 2, 3 and 4 exist while log 2's
   * tail and log 3 are not durable. */
  pcut_gate_arm(0, PCUT_FSYNC, "store.wal.", PCUT_GATE_BEFORE_HOLD);
  job_ins(&i3, s, 3, 0, 4);
  STEP(pcut_gate_wait(0, BOUND_S), "actor 3's insert never reached its flush");
  IB_CHECK(mkdir(planted, 0755) == 0);
  STEP(persist_checkpoint(p, NULL) == IB_EIO, "checkpoint 3 should fail (planted directory)");
  rmdir(planted);
  log_path(sc, 3, lp, sizeof lp);
  long len3 = file_size(lp);
  job_ins(&i4, s, 1, 12, 16);
  STEP(wait_longer(lp, len3), "actor 1's batch was not appended to log 3");
  IB_CHECK(mkdir(planted, 0755) == 0);
  /* Checkpoint 4 stops right after renaming log 4 into place (its directory fsync has not
   * started); actor 3's held flush then runs. */
  log_path(sc, 4, lp, sizeof lp);
  pcut_gate_arm(1, PCUT_RENAME, strrchr(lp, '/') + 1, PCUT_GATE_AFTER_CALL);
  job_ck(&c, p);
  STEP(pcut_gate_wait(1, BOUND_S), "checkpoint 4 never made log 4");
  pcut_gate_open(0);
  STEP(job_join(&i3, "actor 3's insert") == IB_OK, "actor 3's insert failed");
  STEP(job_join(&i4, "actor 1's insert into log 3") == IB_OK, "actor 1's insert failed");
  pcut_gate_open(1);
  STEP(job_join(&c, "checkpoint 4") == IB_EIO, "checkpoint 4 should fail (planted directory)");
  rmdir(planted);

  /* A good checkpoint deletes logs 2, 3 and 4. */
  STEP(lins(s, 2, 12, 16) == IB_OK, "insert into log 4: %s", ib_errmsg());
  STEP(persist_checkpoint(p, NULL) == IB_OK, "checkpoint 5: %s", ib_errmsg());
  STEP(lins(s, 3, 4, 8) == IB_OK && lins(s, 1, 16, 20) == IB_OK, "last inserts: %s", ib_errmsg());
  persist_close(p);
out:
  store_destroy(s);
  pcut_done_set(1);
  return NULL;
}

/* The restore of a crash state (in a journaled directory), the retries and a new batch. */
static void *restore_main(void *arg) {
  scen *sc = arg;
  store *s = mk();
  persist *p = NULL;
  int rc = persist_open(&p, s, sc->dir, PERSIST_WAL, NULL);
  STEP(rc == IB_OK, "restore: %s", ib_errmsg());
  if (rc == IB_OK) {
    ledger lg;
    ledger_read(&lg);
    for (uint32_t a = 1; a <= NA; a++)
      for (uint64_t q = lg.acked[a]; q < lg.att[a]; q += 32)
        STEP(lins(s, a, q, IB_MIN(q + 32, lg.att[a])) == IB_OK, "retry: %s", ib_errmsg());
    STEP(lins(s, 1, lg.att[1], lg.att[1] + 4) == IB_OK, "new batch: %s", ib_errmsg());
    persist_close(p);
  }
  store_destroy(s);
  pcut_done_set(1);
  return NULL;
}

/* Runs `fn` on directory `dir` (prepared by the caller) with a hold at event `hold` (-1: none).
 * At the hold (or at the end) checks every crash state. Returns the events the run made. */
static uint64_t run_once(void *(*fn)(void *), const char *dir, const ledger *start, int64_t hold,
                         const char *what, bool subsets, rng *r, tally *t, bool seeds,
                         int *steps, bool *held) {
  scen sc;
  memset(&sc, 0, sizeof sc);
  snprintf(sc.dir, sizeof sc.dir, "%s", dir);
  LG = *start;
  pcut_watch(dir);
  pcut_hold_at(hold);
  IB_CHECK(pthread_create(&sc.th, NULL, fn, &sc) == 0);
  int h = pcut_hold_wait(BOUND_S);
  *held = h == 1;
  char w[200];
  if (h == 1) {
    ledger lg;
    ledger_read(&lg);
    pcut_snap *sn = ib_xmalloc(sizeof *sn);
    pcut_snapshot(sn);
    snprintf(w, sizeof w, "%s, crash before event %lld", what, (long long)hold);
    snap_check(sn, &lg, w, subsets, r, t, seeds);
    free(sn);
    pcut_hold_release();
  } else if (h < 0) {
    TH_CHECK_MSG(false, "%s: neither the hold at event %lld nor the end came within %d s", what,
                 (long long)hold, BOUND_S);
    pcut_hold_release();
  }
  pthread_join(sc.th, NULL);
  uint64_t ev = pcut_events();
  if (hold < 0) { /* the end: a crash after everything */
    ledger lg;
    ledger_read(&lg);
    pcut_freeze();
    pcut_snap *sn = ib_xmalloc(sizeof *sn);
    pcut_snapshot(sn);
    snprintf(w, sizeof w, "%s, crash at the end", what);
    snap_check(sn, &lg, w, subsets, r, t, seeds);
    free(sn);
    pcut_thaw();
  }
  pcut_unwatch();
  *steps = sc.steps_ok;
  return ev;
}

/* Enumerates every event of `fn` as a crash point. */
static void enumerate(void *(*fn)(void *), const char *seed_dir, const ledger *start,
                      const char *what, bool subsets, rng *r, tally *t, bool seeds,
                      uint64_t *events_out) {
  char dir[96];
  tmpdir(dir, sizeof dir, "run");
  if (seed_dir) copy_dir(seed_dir, dir);
  int steps0 = 0;
  bool held = false;
  uint64_t ev = run_once(fn, dir, start, -1, what, subsets, r, t, seeds, &steps0, &held);
  fx_rmdir_all(dir);
  *events_out = ev;
  for (uint64_t n = 0; n < ev; n++) {
    tmpdir(dir, sizeof dir, "run");
    if (seed_dir) copy_dir(seed_dir, dir);
    int steps = 0;
    uint64_t ev2 = run_once(fn, dir, start, (int64_t)n, what, subsets, r, t, seeds, &steps, &held);
    TH_CHECK_MSG(held && ev2 == ev && steps == steps0,
                 "%s: run held at event %llu is not the same sequence (held %d, %llu events "
                 "vs %llu, %d steps vs %d)",
                 what, (unsigned long long)n, held, (unsigned long long)ev2,
                 (unsigned long long)ev, steps, steps0);
    fx_rmdir_all(dir);
  }
}

/* ---- cases ---- */

/* The model itself: a created file is not there after a crash until the directory is fsynced;
 * a file's bytes only up to its last flush; an unlinked or replaced file comes back whole. A
 * model that could not say "lost" could not make persist.c fail. */
static void test_model(void) {
  char dir[96], path[160], path2[160];
  tmpdir(dir, sizeof dir, "model");
  pcut_watch(dir);
  snprintf(path, sizeof path, "%s/a", dir);
  snprintf(path2, sizeof path2, "%s/b", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  IB_CHECK(fd >= 0);
  IB_CHECK(write(fd, "0123456789", 10) == 10);
  IB_CHECK(fsync(fd) == 0);
  IB_CHECK(write(fd, "abcdef", 6) == 6);
  pcut_snap *sn = ib_xmalloc(sizeof *sn);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  int nv = pcut_variants(sn, false, g_vars, PCUT_MAX_VARIANTS, NULL);
  TH_CHECK_EQ_INT(nv, 2); /* {} and {a} */
  TH_CHECK_EQ_INT(g_vars[0].n, 0);
  uint64_t lo, hi;
  pcut_file_range(sn, g_vars[1].e[0].fid, &lo, &hi);
  TH_CHECK_EQ_INT(lo, 10);
  TH_CHECK_EQ_INT(hi, 16);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  IB_CHECK(dfd >= 0 && fsync(dfd) == 0);
  /* b replaces nothing; then a is renamed over b, then unlinked would fail (gone): unlink b. */
  int fd2 = open(path2, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  IB_CHECK(fd2 >= 0 && write(fd2, "xy", 2) == 2 && fsync(fd2) == 0 && fsync(dfd) == 0);
  IB_CHECK(rename(path, path2) == 0);
  IB_CHECK(unlink(path2) == 0);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  nv = pcut_variants(sn, false, g_vars, PCUT_MAX_VARIANTS, NULL);
  TH_CHECK_EQ_INT(nv, 3); /* {a, b}, {b = old a}, {} */
  TH_CHECK_EQ_INT(g_vars[0].n, 2);
  /* The replaced b comes back with its 2 bytes, the old a with at least its flushed 10. */
  char out[96];
  tmpdir(out, sizeof out, "model-out");
  uint64_t len[PCUT_MAX_NAMES];
  for (int i = 0; i < g_vars[0].n; i++) {
    pcut_file_range(sn, g_vars[0].e[i].fid, &lo, &hi);
    len[i] = hi;
  }
  pcut_build(sn, &g_vars[0], len, out);
  char pa[160], pb[160];
  snprintf(pa, sizeof pa, "%s/a", out);
  snprintf(pb, sizeof pb, "%s/b", out);
  TH_CHECK_EQ_INT(file_size(pa), 16);
  TH_CHECK_EQ_INT(file_size(pb), 2);
  nv = pcut_variants(sn, true, g_vars, PCUT_MAX_VARIANTS, NULL);
  TH_CHECK_EQ_INT(nv, 3); /* an unlink of b=a without the rename skips: nothing new */
  IB_CHECK(fsync(dfd) == 0);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  TH_CHECK_EQ_INT(pcut_variants(sn, true, g_vars, PCUT_MAX_VARIANTS, NULL), 1);
  TH_CHECK_EQ_INT(g_vars[0].n, 0);
  close(fd);
  close(fd2);
  close(dfd);
  free(sn);
  pcut_unwatch();
  fx_rmdir_all(out);
  fx_rmdir_all(dir);
}

/* The lying model: a lying file flush returns 0 and leaves the durable length, a lying directory
 * fsync returns 0 and commits nothing; an honest flush after them makes everything durable. */
static void model_lies(void) {
  char dir[96], path[160];
  tmpdir(dir, sizeof dir, "model-lie");
  pcut_watch(dir);
  snprintf(path, sizeof path, "%s/a", dir);
  pcut_lie_rate(PCUT_KIND(PCUT_FSYNC) | PCUT_KIND(PCUT_DSYNC), 1); /* every flush lies */
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  IB_CHECK(fd >= 0 && dfd >= 0);
  IB_CHECK(write(fd, "0123456789", 10) == 10);
  TH_CHECK_EQ_INT(fsync(fd), 0);
  TH_CHECK_EQ_INT(fsync(dfd), 0);
  pcut_snap *sn = ib_xmalloc(sizeof *sn);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  int nprefix = 0;
  TH_CHECK_EQ_INT(pcut_variants(sn, false, g_vars, PCUT_MAX_VARIANTS, &nprefix), 2); /* {}, {a} */
  TH_CHECK_EQ_INT(g_vars[0].n, 0);
  uint64_t lo, hi;
  pcut_file_range(sn, g_vars[1].e[0].fid, &lo, &hi);
  TH_CHECK_EQ_INT(lo, 0);
  TH_CHECK_EQ_INT(hi, 10);
  TH_CHECK_EQ_INT(pcut_lies_of(PCUT_FSYNC), 1);
  TH_CHECK_EQ_INT(pcut_lies_of(PCUT_DSYNC), 1);
  pcut_lie_rate(PCUT_KIND(PCUT_FSYNC) | PCUT_KIND(PCUT_DSYNC), 0); /* honest again */
  TH_CHECK_EQ_INT(fsync(fd), 0);
  TH_CHECK_EQ_INT(fsync(dfd), 0);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  TH_CHECK_EQ_INT(pcut_variants(sn, false, g_vars, PCUT_MAX_VARIANTS, NULL), 1);
  TH_CHECK_EQ_INT(g_vars[0].n, 1);
  pcut_file_range(sn, g_vars[0].e[0].fid, &lo, &hi);
  TH_CHECK_EQ_INT(lo, 10);
  close(fd);
  close(dfd);
  free(sn);
  pcut_unwatch();
  fx_rmdir_all(dir);
}

/* The damage model: bytes below the durable length are never touched; past it, ZERO zeroes all,
 * HOLE changes exactly one sector, MIX at least one; the durable end's sector only to zeros. */
static void model_damage(void) {
  enum { DUR = 700, LEN = 3000 };
  char dir[96], path[160], out[96];
  tmpdir(dir, sizeof dir, "model-dmg");
  pcut_watch(dir);
  snprintf(path, sizeof path, "%s/c", dir);
  static uint8_t orig[LEN], got[LEN];
  for (int b = 0; b < LEN; b++) orig[b] = (uint8_t)(0x80 | (b * 7));
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  IB_CHECK(fd >= 0 && dfd >= 0 && write(fd, orig, DUR) == DUR && fsync(fd) == 0 && fsync(dfd) == 0);
  IB_CHECK(write(fd, orig + DUR, LEN - DUR) == LEN - DUR);
  pcut_snap *sn = ib_xmalloc(sizeof *sn);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  TH_CHECK_EQ_INT(pcut_variants(sn, false, g_vars, PCUT_MAX_VARIANTS, NULL), 1);
  rng r;
  rng_seed(&r, 53, "test", 0, "power-damage");
  uint64_t len[1] = {LEN};
  for (int round = 0; round < 30; round++) {
    int how = round % PCUT_NDMG;
    tmpdir(out, sizeof out, "model-dmg-out");
    pcut_build(sn, &g_vars[0], len, out);
    int sectors = pcut_damage(sn, &g_vars[0], 0, LEN, out, how, &r);
    char pc[160];
    snprintf(pc, sizeof pc, "%s/c", out);
    int in = open(pc, O_RDONLY);
    IB_CHECK(in >= 0 && read(in, got, LEN) == LEN);
    close(in);
    TH_CHECK_MSG(memcmp(got, orig, DUR) == 0, "damage %d touched the durable bytes", how);
    int changed = 0, nonzero_in_end_sector = 0; /* sectors that differ from what was written */
    for (int k = 0; k < (LEN + PCUT_SECTOR - 1) / PCUT_SECTOR; k++) {
      int lo = k * PCUT_SECTOR < DUR ? DUR : k * PCUT_SECTOR;
      int hi = (k + 1) * PCUT_SECTOR < LEN ? (k + 1) * PCUT_SECTOR : LEN;
      if (hi <= lo) continue;
      bool diff = memcmp(got + lo, orig + lo, (size_t)(hi - lo)) != 0;
      changed += diff;
      if (diff && k * PCUT_SECTOR < DUR)
        for (int b = lo; b < hi; b++) nonzero_in_end_sector += got[b] != 0;
      if (how == PCUT_DMG_ZERO)
        for (int b = lo; b < hi; b++) TH_CHECK_MSG(got[b] == 0, "ZERO left byte %d", b);
    }
    TH_CHECK_EQ_INT(nonzero_in_end_sector, 0);
    TH_CHECK_EQ_INT(sectors, how == PCUT_DMG_ZERO ? 5 : how == PCUT_DMG_HOLE ? 1 : sectors);
    TH_CHECK_MSG(how == PCUT_DMG_HOLE ? changed == 1 : changed >= 1,
                 "damage %d changed %d sectors (it reported %d)", how, changed, sectors);
    fx_rmdir_all(out);
  }
  /* Nothing past the durable length: nothing to damage. */
  len[0] = DUR;
  tmpdir(out, sizeof out, "model-dmg-out");
  pcut_build(sn, &g_vars[0], len, out);
  TH_CHECK_EQ_INT(pcut_damage(sn, &g_vars[0], 0, DUR, out, PCUT_DMG_ZERO, &r), 0);
  fx_rmdir_all(out);
  close(fd);
  close(dfd);
  free(sn);
  pcut_unwatch();
  fx_rmdir_all(dir);
}

/* The model's failures: a failed rename renames nothing, a failed directory fsync commits
 * nothing (a later one does), a failed create creates nothing, a failed flush caps the file's
 * durable length for good; calls outside the watched directory never fail. */
static void test_model_failures(void) {
  char dir[96], other[96], a[160], b[160], c[160], o[160], o2[160];
  tmpdir(dir, sizeof dir, "model-eio");
  tmpdir(other, sizeof other, "model-other");
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(b, sizeof b, "%s/b", dir);
  snprintf(c, sizeof c, "%s/c", dir);
  snprintf(o, sizeof o, "%s/o", other);
  snprintf(o2, sizeof o2, "%s/o2", other);
  pcut_watch(dir);
  const uint32_t all = PCUT_KIND(PCUT_CREATE) | PCUT_KIND(PCUT_RENAME) | PCUT_KIND(PCUT_UNLINK) |
                       PCUT_KIND(PCUT_DSYNC) | PCUT_KIND(PCUT_FSYNC) | PCUT_KIND(PCUT_TRUNC);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  int fd = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  IB_CHECK(dfd >= 0 && fd >= 0 && write(fd, "0123456789", 10) == 10);
  IB_CHECK(fsync(fd) == 0 && fsync(dfd) == 0);
  /* A flush fails: a's durable length stays 10, and a later good flush cannot raise it. */
  IB_CHECK(write(fd, "abcdef", 6) == 6);
  pcut_fail_rate(PCUT_KIND(PCUT_FSYNC), 1, EIO);
  errno = 0;
  TH_CHECK(fdatasync(fd) == -1 && errno == EIO);
  pcut_fail_rate(all, 0, 0);
  IB_CHECK(write(fd, "ghij", 4) == 4);
  TH_CHECK_EQ_INT(fdatasync(fd), 0);
  pcut_snap *sn = ib_xmalloc(sizeof *sn);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  TH_CHECK_EQ_INT(pcut_variants(sn, true, g_vars, PCUT_MAX_VARIANTS, NULL), 1);
  uint64_t lo, hi;
  pcut_file_range(sn, g_vars[0].e[0].fid, &lo, &hi);
  TH_CHECK_EQ_INT(lo, 10);
  TH_CHECK_EQ_INT(hi, 20);
  /* A rename and a create fail: nothing changes, nothing is pending. */
  pcut_fail_rate(PCUT_KIND(PCUT_RENAME) | PCUT_KIND(PCUT_CREATE), 1, EIO);
  errno = 0;
  TH_CHECK(rename(a, b) == -1 && errno == EIO);
  errno = 0;
  TH_CHECK(open(c, O_WRONLY | O_CREAT | O_TRUNC, 0644) == -1 && errno == EIO);
  TH_CHECK(file_size(a) == 20 && file_size(b) == -1 && file_size(c) == -1);
  /* Outside the watched directory nothing fails. */
  pcut_fail_rate(all, 1, EIO);
  int ofd = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  TH_CHECK(ofd >= 0);
  if (ofd >= 0) {
    TH_CHECK(fsync(ofd) == 0 && rename(o, o2) == 0 && unlink(o2) == 0);
    close(ofd);
  }
  pcut_fail_rate(all, 0, 0);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  TH_CHECK_EQ_INT(sn->nops, 0);
  /* A directory fsync fails: the rename stays pending (a crash may lose it); the next one that
   * succeeds commits it. */
  IB_CHECK(rename(a, b) == 0);
  pcut_fail_rate(PCUT_KIND(PCUT_DSYNC), 1, EIO);
  errno = 0;
  TH_CHECK(fsync(dfd) == -1 && errno == EIO);
  pcut_fail_rate(all, 0, 0);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  TH_CHECK_EQ_INT(sn->nops, 1);
  TH_CHECK_EQ_INT(pcut_variants(sn, false, g_vars, PCUT_MAX_VARIANTS, NULL), 2); /* {a}, {b} */
  IB_CHECK(fsync(dfd) == 0);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  TH_CHECK_EQ_INT(pcut_variants(sn, false, g_vars, PCUT_MAX_VARIANTS, NULL), 1);
  TH_CHECK(g_vars[0].n == 1 && strcmp(g_vars[0].e[0].name, "b") == 0);
  pcut_file_range(sn, g_vars[0].e[0].fid, &lo, &hi); /* still capped after the rename */
  TH_CHECK_EQ_INT(lo, 10);
  /* A truncation to the cap lifts it: bytes written after it are flushed as usual. */
  IB_CHECK(ftruncate(fd, 10) == 0 && pwrite(fd, "KLMNOP", 6, 10) == 6 && fdatasync(fd) == 0);
  pcut_freeze();
  pcut_snapshot(sn);
  pcut_thaw();
  TH_CHECK_EQ_INT(pcut_variants(sn, false, g_vars, PCUT_MAX_VARIANTS, NULL), 1);
  pcut_file_range(sn, g_vars[0].e[0].fid, &lo, &hi);
  TH_CHECK_EQ_INT(lo, 16);
  TH_CHECK_EQ_INT(hi, 16);
  TH_CHECK_EQ_INT(pcut_failures_of(PCUT_FSYNC), 1);
  TH_CHECK_EQ_INT(pcut_failures_of(PCUT_RENAME), 1);
  TH_CHECK_EQ_INT(pcut_failures_of(PCUT_CREATE), 1);
  TH_CHECK_EQ_INT(pcut_failures_of(PCUT_DSYNC), 1);
  close(fd);
  close(dfd);
  free(sn);
  pcut_unwatch();
  fx_rmdir_all(dir);
  fx_rmdir_all(other);
}

static tally g_t;
static bool g_seeded; /* the enumerated case ran and g_t holds its seeds */

static void report(const char *what, const tally *t, uint64_t events) {
  printf("  %s: %llu events, %d crash states restored (%d with later logs dropped, %d with a torn "
         "tail cut, %d with stale logs, %d with %d sectors zeroed or stale), %d bad\n",
         what, (unsigned long long)events, t->states, t->dropped, t->torn, t->stale, t->damaged,
         t->sectors, t->bad);
}

/* Every event of the deterministic sequence as a crash point (prefixes and subsets). */
static uint64_t enumerate_sequence(void) {
  rng r;
  rng_seed(&r, 41, "test", 0, "power");
  memset(&g_t, 0, sizeof g_t);
  ledger zero;
  memset(&zero, 0, sizeof zero);
  uint64_t ev = 0;
  enumerate(write_main, NULL, &zero, "sequence", true, &r, &g_t, true, &ev);
  g_seeded = true;
  return ev;
}

static void test_enumerated(void) {
  uint64_t ev = enumerate_sequence();
  report("sequence", &g_t, ev);
  TH_CHECK(ev > 40);
  TH_CHECK_MSG(g_t.dropped > 0 && g_t.torn > 0 && g_t.stale > 0 && g_t.damaged > 0,
               "the sequence should reach states with dropped logs, torn tails, stale logs and "
               "damaged sectors");
  bool two = false;
  for (int k = 0; k < g_t.seeds; k++) two |= g_t.seed_kind[k] == 0;
  TH_CHECK_MSG(two, "no crash state made the restore drop two later logs");
}

/* A crash during a restore's repairs (and the retries after it), then a second restore. */
static void test_restore_crash(void) {
  rng r;
  rng_seed(&r, 43, "test", 0, "power-restore");
  if (!g_seeded) (void)enumerate_sequence(); /* this case was run alone: make the seeds */
  TH_CHECK_MSG(g_t.seeds > 0, "the sequence left no crash state that a restore must repair");
  for (int k = 0; k < g_t.seeds; k++) {
    tally t;
    memset(&t, 0, sizeof t);
    char what[160];
    static const char *kinds[] = {"two later logs dropped", "a later log dropped", "a torn tail",
                                  "stale logs"};
    snprintf(what, sizeof what, "restore of a state with %s (seed %d)", kinds[g_t.seed_kind[k]], k);
    uint64_t ev = 0;
    enumerate(restore_main, g_t.seed_dir[k], &g_t.seed_lg[k], what, true, &r, &t, false, &ev);
    report(what, &t, ev);
    fx_rmdir_all(g_t.seed_dir[k]);
  }
  g_t.seeds = 0;
}

/* Threads inserting while checkpoints run; crash states at random moments. */
typedef struct worker {
  store *s;
  persist *p;
  uint32_t actor;
  int stop;
  int errors, ckpts, failed;
  int refused, healed; /* batches (checkpoints) refused; acks (good ones) after a refusal */
  int done; /* an inserter sent all its rows */
  char planted[160];
  const uint64_t *grant; /* inserters: seqs below this may be sent (the crash loop raises it) */
  uint64_t rows;         /* w_insert_eio: seqs [0, rows) to send */
} worker;

/* Starts NA inserters (actors 1..NA, `ins`) and one checkpointer (`ck`, last) on s and p. */
/* The step by which a crash loop raises the inserters' grant: an inserter's `rows` spread over
 * `steps` crashes, rounded up to whole batches of 4 seqs. */
static uint64_t grant_slice(uint64_t rows, uint64_t steps) { return ((rows + steps - 1) / steps + 3) / 4 * 4; }

static void workers_start(worker *w, pthread_t *th, store *s, persist *p, const uint64_t *grant,
                          uint64_t rows, const char *dir, void *(*ins)(void *), void *(*ck)(void *)) {
  for (int i = 0; i <= NA; i++) {
    w[i].grant = grant;
    w[i].rows = rows;
    w[i].s = s;
    w[i].p = p;
    w[i].actor = (uint32_t)(i + 1);
    snprintf(w[i].planted, sizeof w[i].planted, "%s/store.ckpt.tmp", dir);
    IB_CHECK(pthread_create(&th[i], NULL, i < NA ? ins : ck, &w[i]) == 0);
  }
}

/* The server's counters saver (persist_counts_save, once a second there), every `period_us` here
 * so that its watermark of acknowledged rows follows the inserts closely; saves that fail (a
 * failing disk) are counted. */
typedef struct saver {
  persist *p;
  long period_us;
  int stop, saves, failed;
  pthread_t th;
} saver;

static void *w_counts(void *arg) {
  saver *v = arg;
  while (!__atomic_load_n(&v->stop, __ATOMIC_RELAXED)) {
    if (persist_counts_save(v->p) == IB_OK) v->saves++;
    else v->failed++;
    struct timespec ts = {0, v->period_us * 1000L};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static void saver_start(saver *v, persist *p, long period_us) {
  memset(v, 0, sizeof *v);
  v->p = p;
  v->period_us = period_us;
  IB_CHECK(pthread_create(&v->th, NULL, w_counts, v) == 0);
}

static void saver_stop(saver *v) {
  __atomic_store_n(&v->stop, 1, __ATOMIC_RELAXED);
  pthread_join(v->th, NULL);
}

static void *w_insert(void *arg) {
  worker *w = arg;
  for (uint64_t q = 0; q + 4 <= CAP / 4 && !__atomic_load_n(&w->stop, __ATOMIC_RELAXED); q += 4) {
    /* Wait for the crash loop's grant, so that the rows stay spread over all its crashes however
     * fast this machine or build inserts (a fast one sent them all before half the crashes). */
    while (q + 4 > __atomic_load_n(w->grant, __ATOMIC_ACQUIRE) && !__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
      struct timespec ts = {0, 100000L};
      nanosleep(&ts, NULL);
    }
    if (__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) break;
    if (lins(w->s, w->actor, q, q + 4) != IB_OK) {
      w->errors++;
      break;
    }
    /* Spread the inserts over the crash copies (a pace, not a measurement). */
    struct timespec ts = {0, 200000L};
    nanosleep(&ts, NULL);
  }
  __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void *w_ckpt(void *arg) {
  worker *w = arg;
  for (int i = 0; !__atomic_load_n(&w->stop, __ATOMIC_RELAXED); i++) {
    bool fail = i % 3 == 2;
    if (fail) IB_CHECK(mkdir(w->planted, 0755) == 0);
    int rc = persist_checkpoint(w->p, NULL);
    if (fail) rmdir(w->planted);
    if (rc == IB_OK) w->ckpts++;
    else w->failed++;
    if (rc != IB_OK && !fail) w->errors++;
    struct timespec ts = {0, 2 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* A fresh watched directory `dir` (96 bytes) with a slow disk and a store opened on it. */
static store *load_open(char *dir, const char *tag, persist **p) {
  tmpdir(dir, 96, tag);
  memset(&LG, 0, sizeof LG);
  pcut_watch(dir);
  pcut_jitter(2000);
  store *s = mk();
  *p = NULL;
  TH_CHECK_EQ_INT(persist_open(p, s, dir, PERSIST_WAL, NULL), IB_OK);
  return s;
}

/* A crash point of the random cases: for odd k just before a journaled call a few events ahead
 * (where directory operations are pending more often), else at a random time 1-8 ms on. Holds or
 * freezes the journal, copies it into sn and the ledger into lg (acks before the crash, what was
 * sent after it). Returns whether a caller is held (pcut_hold_release) or not (pcut_thaw). */
static bool crash_stop(int k, rng *r, pcut_snap *sn, ledger *lg) {
  bool held = false;
  if (k % 2) {
    pcut_hold_at((int64_t)pcut_events() + 1 + (int64_t)rng_below(r, 12));
    held = pcut_hold_wait(5) == 1;
    if (!held) pcut_hold_at(-1);
  } else {
    struct timespec ts = {0, (long)(1 + rng_below(r, 8)) * 1000000L};
    nanosleep(&ts, NULL);
  }
  ledger_read(lg);
  if (!held) pcut_freeze();
  pcut_snapshot(sn);
  ledger after;
  ledger_read(&after);
  for (int a = 1; a <= NA; a++) lg->att[a] = after.att[a];
  return held;
}

static void test_random_under_load(void) {
  enum { COPIES = 30 };
  char dir[96];
  persist *p = NULL;
  store *s = load_open(dir, "load", &p);
  worker w[NA + 1];
  pthread_t th[NA + 1];
  memset(w, 0, sizeof w);
  /* Each crash k lets the inserters reach (k + 2) slices of their CAP / 4 rows: they finish only
   * near the last crashes. */
  const uint64_t slice = grant_slice(CAP / 4, COPIES);
  uint64_t grant = 2 * slice;
  workers_start(w, th, s, p, &grant, 0, dir, w_insert, w_ckpt);
  saver sv;
  saver_start(&sv, p, 1000);
  rng r;
  rng_seed(&r, 47, "test", 0, "power-load");
  tally t;
  memset(&t, 0, sizeof t);
  pcut_snap *sn = ib_xmalloc(sizeof *sn);
  int pending_max = 0, while_inserting = 0, at_event = 0;
  for (int k = 0; k < COPIES; k++) {
    __atomic_store_n(&grant, (uint64_t)(k + 2) * slice, __ATOMIC_RELEASE);
    ledger lg;
    bool held = crash_stop(k, &r, sn, &lg);
    if (sn->nops > pending_max) pending_max = sn->nops;
    bool busy = false;
    for (int i = 0; i < NA; i++) busy |= !__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE);
    while_inserting += busy;
    char what[64];
    snprintf(what, sizeof what, "random crash %d", k);
    snap_check(sn, &lg, what, true, &r, &t, false);
    if (held)
      pcut_hold_release();
    else
      pcut_thaw();
    at_event += held;
  }
  free(sn);
  for (int i = 0; i <= NA; i++) __atomic_store_n(&w[i].stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i <= NA; i++) pthread_join(th[i], NULL);
  saver_stop(&sv);
  int errors = 0;
  for (int i = 0; i <= NA; i++) errors += w[i].errors;
  TH_CHECK_EQ_INT(errors, 0);
  TH_CHECK(w[NA].ckpts > 0);
  persist_close(p);
  store_destroy(s);
  pcut_jitter(0);
  pcut_unwatch();
  TH_CHECK_MSG(while_inserting >= COPIES / 2, "only %d of %d crashes came while rows were inserted",
               while_inserting, COPIES);
  printf("  %d random crashes (%d while inserting, %d just before a journaled call): %d states "
         "restored (%d dropped logs, %d torn, %d stale, %d with damaged sectors), %d bad; "
         "up to %d pending directory operations; %d checkpoints (%d made to fail); acked "
         "%llu/%llu/%llu rows; %d restores checked store.counts' count of acknowledged rows\n",
         COPIES, while_inserting, at_event, t.states, t.dropped, t.torn, t.stale, t.damaged, t.bad,
         pending_max,
         w[NA].ckpts + w[NA].failed, w[NA].failed, (unsigned long long)LG.acked[1],
         (unsigned long long)LG.acked[2], (unsigned long long)LG.acked[3], t.counted);
  TH_CHECK(t.states > COPIES);
  TH_CHECK_MSG(t.counted > 0, "no restore used store.counts: its watermark went unchecked");
  TH_CHECK(t.damaged > 0);
  fx_rmdir_all(dir);
}

/* An actor on a failing disk: a refused batch is not acknowledged and is sent again (the same
 * rows, as an actor's writer does) after a pause, until it is acknowledged. */
static void *w_insert_eio(void *arg) {
  worker *w = arg;
  for (uint64_t q = 0; q + 4 <= w->rows && !__atomic_load_n(&w->stop, __ATOMIC_RELAXED);) {
    while (q + 4 > __atomic_load_n(w->grant, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
      struct timespec ts = {0, 100000L};
      nanosleep(&ts, NULL);
    }
    if (__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) break;
    int rc = lins_ack(w->s, w->p, w->actor, q, q + 4);
    if (rc == IB_OK) {
      w->healed += w->refused > 0;
      q += 4;
    } else if (rc == IB_EIO) {
      w->refused++;
    } else {
      TH_CHECK_MSG(false, "actor %u: insert of [%llu, %llu): %s", w->actor, (unsigned long long)q,
                   (unsigned long long)q + 4, ib_errmsg());
      w->errors++;
      break;
    }
    struct timespec ts = {0, rc == IB_OK ? 200000L : 1000000L};
    nanosleep(&ts, NULL);
  }
  __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* Checkpoints on a failing disk: failures are expected (IB_EIO), and heal the shard when one
 * gets through. */
static void *w_ckpt_eio(void *arg) {
  worker *w = arg;
  while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
    int rc = persist_checkpoint(w->p, NULL);
    if (rc == IB_OK) {
      w->ckpts++;
      w->healed += w->failed > 0;
    } else if (rc == IB_EIO) {
      w->failed++;
    } else {
      w->errors++;
    }
    /* A failed checkpoint is retried after a back-off, as ibrl-replay does: the shard stays
     * broken (or a failed step unsettled) for a while, and crashes come in that time. */
    struct timespec ts = {0, (rc == IB_OK ? 2 : 12) * 1000000L};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static void test_random_eio(void) {
  enum { COPIES = 12, ROWS = 1024 };
  const uint32_t dir_ops = PCUT_KIND(PCUT_CREATE) | PCUT_KIND(PCUT_RENAME) |
                           PCUT_KIND(PCUT_UNLINK) | PCUT_KIND(PCUT_DSYNC);
  char dir[96];
  persist *p = NULL;
  store *s = load_open(dir, "eio", &p);
  /* One directory operation or directory fsync in 8 fails, one file flush in 12: a checkpoint
   * (about ten such calls) fails more often than not, and every failed log flush refuses the
   * batches in flight until one succeeds. */
  pcut_fail_rate(dir_ops, 8, EIO);
  pcut_fail_rate(PCUT_KIND(PCUT_FSYNC), 12, EIO);
  worker w[NA + 1];
  pthread_t th[NA + 1];
  memset(w, 0, sizeof w);
  const uint64_t slice = grant_slice(ROWS, COPIES);
  uint64_t grant = 2 * slice;
  workers_start(w, th, s, p, &grant, ROWS, dir, w_insert_eio, w_ckpt_eio);
  saver sv; /* slower: directory operations pile up while directory fsyncs fail */
  saver_start(&sv, p, 10000);
  rng r;
  rng_seed(&r, 53, "test", 0, "power-eio");
  tally t;
  memset(&t, 0, sizeof t);
  pcut_snap *sn = ib_xmalloc(sizeof *sn);
  int while_inserting = 0, at_event = 0, while_broken = 0, after_failure = 0;
  for (int k = 0; k < COPIES; k++) {
    __atomic_store_n(&grant, (uint64_t)(k + 2) * slice, __ATOMIC_RELEASE);
    /* The shard runs 10-60 ms (checkpoints fail and heal, inserts are refused and sent again),
     * then a sixth of the crashes come at once, a sixth just before a journaled call a few
     * events ahead, the others just before a call a few events after the next failed directory
     * fsync (or rename): where a writer that ignored the failure would acknowledge rows in a
     * file that has no durable name, until the next directory fsync. */
    bool held = false;
    struct timespec ts = {0, (long)(10 + rng_below(&r, 50)) * 1000000L};
    nanosleep(&ts, NULL);
    if (k % 6 == 3) {
      pcut_hold_at((int64_t)pcut_events() + 1 + (int64_t)rng_below(&r, 12));
      held = pcut_hold_wait(5) == 1;
    } else if (k % 6 != 0) {
      pcut_hold_after_failure(PCUT_KIND(PCUT_DSYNC) | (k % 2 ? PCUT_KIND(PCUT_RENAME) : 0u),
                              1 + (int64_t)rng_below(&r, 6));
      held = pcut_hold_wait(2) == 1;
      after_failure += held;
    }
    if (k % 6 && !held) { /* disarm; a hold reached meanwhile is taken */
      pcut_hold_after_failure(0, 0);
      pcut_hold_at(-1);
      held = pcut_hold_wait(0) == 1;
    }
    ledger lg;
    ledger_read(&lg);
    if (!held) pcut_freeze();
    pcut_snapshot(sn);
    ledger after;
    ledger_read(&after);
    for (int a = 1; a <= NA; a++) lg.att[a] = after.att[a];
    persist_health h;
    persist_health_get(p, &h);
    while_broken += h.needs_checkpoint;
    bool busy = false;
    for (int i = 0; i < NA; i++) busy |= !__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE);
    while_inserting += busy;
    char what[96];
    snprintf(what, sizeof what, "crash %d on a failing disk%s", k,
             h.needs_checkpoint ? " (the shard waits for a checkpoint)" : "");
    /* Subsets of the pending operations only when at most 3 are pending (failed directory
     * fsyncs leave more): 2^n namespaces times the file cuts would cost more than the rest of
     * the case together. */
    snap_check(sn, &lg, what, sn->nops <= 3, &r, &t, false);
    if (held)
      pcut_hold_release();
    else
      pcut_thaw();
    at_event += held;
  }
  for (int i = 0; i <= NA; i++) __atomic_store_n(&w[i].stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i <= NA; i++) pthread_join(th[i], NULL);
  saver_stop(&sv);
  uint64_t nf[PCUT_NKINDS] = {0}, ev = pcut_events();
  for (int k = 1; k < PCUT_NKINDS; k++) nf[k] = pcut_failures_of(k);
  pcut_fail_rate(dir_ops | PCUT_KIND(PCUT_FSYNC), 0, 0);
  /* The disk is good again: a checkpoint heals the shard, every row an actor sent and was
   * refused is acknowledged when sent again, and a crash now keeps them all. */
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL), IB_OK);
  persist_health h;
  persist_health_get(p, &h);
  TH_CHECK_MSG(!h.needs_checkpoint && !h.refusing && !h.undurable,
               "a good checkpoint did not heal the shard: %s", h.cause);
  for (uint32_t a = 1; a <= NA; a++)
    if (LG.att[a] > LG.acked[a])
      TH_CHECK_EQ_INT(lins_ack(s, p, a, LG.acked[a], LG.att[a]), IB_OK);
  ledger lg;
  ledger_read(&lg);
  for (int a = 1; a <= NA; a++) TH_CHECK_EQ_INT(lg.acked[a], lg.att[a]);
  pcut_freeze();
  pcut_snapshot(sn);
  snap_check(sn, &lg, "a crash after the disk healed", true, &r, &t, false);
  pcut_thaw();
  free(sn);
  int errors = 0, refused = 0, healed = 0;
  for (int i = 0; i <= NA; i++) errors += w[i].errors;
  for (int i = 0; i < NA; i++) refused += w[i].refused, healed += w[i].healed;
  TH_CHECK_EQ_INT(errors, 0);
  persist_close(p);
  store_destroy(s);
  pcut_jitter(0);
  pcut_unwatch();
  printf("  %d crashes on a failing disk after %llu events (%d while inserting, %d just before a "
         "journaled call, %d of them after a failed directory fsync or rename, %d while the shard "
         "waited for a checkpoint): %d states restored (%d dropped logs, %d torn, %d stale, %d "
         "with damaged sectors), %d bad; failed: %llu directory fsyncs, %llu renames, %llu file "
         "flushes, %llu creates, %llu unlinks; %d checkpoints (%d failed, %d good after a "
         "failure); %d batches refused and sent again, %d acks after a refusal; acked "
         "%llu/%llu/%llu rows; %d restores checked store.counts' count of acknowledged rows\n",
         COPIES, (unsigned long long)ev, while_inserting, at_event, after_failure, while_broken,
         t.states, t.dropped, t.torn, t.stale, t.damaged,
         t.bad, (unsigned long long)nf[PCUT_DSYNC], (unsigned long long)nf[PCUT_RENAME],
         (unsigned long long)nf[PCUT_FSYNC], (unsigned long long)nf[PCUT_CREATE],
         (unsigned long long)nf[PCUT_UNLINK], w[NA].ckpts + w[NA].failed, w[NA].failed,
         w[NA].healed, refused, healed, (unsigned long long)lg.acked[1],
         (unsigned long long)lg.acked[2], (unsigned long long)lg.acked[3], t.counted);
  TH_CHECK_MSG(t.counted > 0, "no restore used store.counts: its watermark went unchecked");
  TH_CHECK_MSG(nf[PCUT_DSYNC] > 0 && nf[PCUT_RENAME] > 0 && nf[PCUT_FSYNC] > 0,
               "the disk should have failed directory fsyncs, renames and flushes");
  TH_CHECK_MSG(refused > 0 && healed > 0, "inserts should be refused, then acknowledged again");
  TH_CHECK_MSG(w[NA].failed > 0 && w[NA].healed > 0,
               "checkpoints should fail, and succeed after a failure");
  TH_CHECK_MSG(while_inserting >= COPIES / 2, "only %d of %d crashes came while rows were inserted",
               while_inserting, COPIES);
  TH_CHECK(t.states > COPIES);
  fx_rmdir_all(dir);
}

/* A disk that lies about flushes: one file flush and one directory fsync in 3 return 0 and make
 * nothing durable (pcut_lie_rate). Nothing is promised then: a crash can lose acknowledged rows,
 * and can leave a checkpoint whose rename is durable but not its bytes, or a chain of logs with
 * a gap. What must hold is lie_check: restores never store a row nobody sent or one twice, the
 * strict restore refuses only as damaged or missing data, and the salvage keeps every intact row
 * and leaves a directory the strict restore takes. The case checks that the disk lied, that some
 * states were refused and salvaged, and that some strict restores lost acknowledged rows (so the
 * lies reached the restores). */
static void test_random_lies(void) {
  enum { COPIES = 20 };
  char dir[96];
  persist *p = NULL;
  store *s = load_open(dir, "lie", &p);
  pcut_lie_rate(PCUT_KIND(PCUT_FSYNC) | PCUT_KIND(PCUT_DSYNC), 3);
  worker w[NA + 1];
  pthread_t th[NA + 1];
  memset(w, 0, sizeof w);
  const uint64_t slice = grant_slice(CAP / 4, COPIES);
  uint64_t grant = 2 * slice;
  workers_start(w, th, s, p, &grant, 0, dir, w_insert, w_ckpt);
  saver sv;
  saver_start(&sv, p, 1000);
  rng r;
  rng_seed(&r, 59, "test", 0, "power-lie");
  tally t;
  memset(&t, 0, sizeof t);
  g_lying = true;
  pcut_snap *sn = ib_xmalloc(sizeof *sn);
  for (int k = 0; k < COPIES; k++) {
    __atomic_store_n(&grant, (uint64_t)(k + 2) * slice, __ATOMIC_RELEASE);
    ledger lg;
    bool held = crash_stop(k, &r, sn, &lg);
    char what[64];
    snprintf(what, sizeof what, "crash %d on a lying disk", k);
    snap_check(sn, &lg, what, sn->nops <= 3, &r, &t, false);
    if (held)
      pcut_hold_release();
    else
      pcut_thaw();
  }
  g_lying = false;
  free(sn);
  for (int i = 0; i <= NA; i++) __atomic_store_n(&w[i].stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i <= NA; i++) pthread_join(th[i], NULL);
  saver_stop(&sv);
  uint64_t lies_f = pcut_lies_of(PCUT_FSYNC), lies_d = pcut_lies_of(PCUT_DSYNC);
  int errors = 0;
  for (int i = 0; i <= NA; i++) errors += w[i].errors;
  TH_CHECK_EQ_INT(errors, 0);
  persist_close(p);
  store_destroy(s);
  pcut_jitter(0);
  pcut_unwatch();
  printf("  %d crashes on a lying disk (%llu file flushes and %llu directory fsyncs lied): %d "
         "states; the strict restore refused %d (each salvaged: %d) and lost acknowledged rows "
         "in %d it accepted; store.counts was used in %d and showed rows missing in %d; %d bad; "
         "%d checkpoints (%d made to fail)\n",
         COPIES, (unsigned long long)lies_f, (unsigned long long)lies_d, t.states, t.refused,
         t.salvaged, t.lost_acked, t.counted, t.noticed, t.bad, w[NA].ckpts + w[NA].failed, w[NA].failed);
  TH_CHECK(lies_f > 0 && lies_d > 0);
  TH_CHECK_MSG(t.refused > 0, "no crash state was refused: the case does not reach the salvage");
  TH_CHECK_EQ_INT(t.salvaged, t.refused);
  TH_CHECK_MSG(t.lost_acked > 0, "no strict restore lost acknowledged rows: the lies did not reach it");
  fx_rmdir_all(dir);
}

static const th_case cases[] = {
    {"the model loses what no fsync made durable", test_model},
    {"the model damages only sectors past a durable length", model_damage},
    {"the model's lying flushes make nothing durable", model_lies},
    {"the model fails calls as told, and a failed flush caps the file for good",
     test_model_failures},
    {"every event of a deterministic sequence as a power cut", test_enumerated},
    {"a power cut during a restore's repairs, then a second restore", test_restore_crash},
    {"power cuts at random moments while threads insert and checkpoints run",
     test_random_under_load},
    {"power cuts at random moments while the disk fails some directory fsyncs, renames and flushes",
     test_random_eio},
    {"power cuts on a disk that lies about flushes: restores stay valid, refusals are salvaged",
     test_random_lies},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  log_set_level(0); /* the restores' warnings about torn logs are expected by the hundred */
  pcut_init();
  return th_main(argc, argv, cases);
}
