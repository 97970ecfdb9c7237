/* persist_counts.c: the counters that neither the log nor (between checkpoints) the checkpoint
 * holds, saved to the side so that a crash does not set them back.
 *
 * The log replays inserts, and nothing else: a table's total_samples, duplicates and
 * rejected_batches are saved only by checkpoints. A shard killed 5 minutes after its last
 * checkpoint came back with 5 minutes of samples missing from Info and from the rate limiter's
 * count. So the server calls persist_counts_save about once a second, which, when a counter
 * changed since its last write, writes dir/store.counts (tmp + rename, no fsync: the file is
 * advisory, a row depends on it nowhere). Version 2 (all little-endian on this machine's order):
 *   magic "IBRLCNT1", u32 version, u32 endian word, u32 ntables, u32 0, u64 epoch (the log's at
 *   the save);
 *   ntables x { char name[STORE_NAME_MAX], u64 total_samples, u64 duplicates,
 *   u64 rejected_batches, u64 acked_inserts, u32 nactors, u32 0 };
 *   then each table's nactors x { u32 actor_id, u32 0, u64 duplicates }, for the actors with any;
 *   u32 CRC-32 of every byte before it.
 * Version 1 (before 24 Nov) has no acked_inserts, no nactors and no actors; a restore reads both.
 * The counters only grow, so a restore takes, per table and per actor, the larger of the restored
 * value and the file's: a file older than the checkpoint changes nothing. The counters of a file
 * saved at an epoch past the restored chain are not used (that chain lost a later log or
 * checkpoint, or the file is another store's), and a damaged file is ignored whole (a crash may
 * leave it empty: it is not flushed). A start that restored nothing deletes the file, so a store
 * begun afresh in the same directory never inherits it.
 *
 * acked_inserts (PERSIST_WAL; 0 otherwise) is a watermark: that many of the table's rows (its
 * total_inserts, all time) were durable by the rule inserts are acknowledged by, at a save (see
 * acked_update). An honest disk keeps them all, so a restore that holds fewer rows found a disk
 * that lost data it reported flushed: it logs an error and reports the shortfall
 * (persist_restore_info.acked_missing). It does so too when the restored chain ends at an earlier
 * epoch than the file's: a log or checkpoint the disk said it had made durable is missing (unless
 * the files were put back from a backup or come from another store, which the file cannot tell
 * apart). That is a lower bound of the loss: the file trails the inserts by up to two saves, it is
 * not flushed (a disk that loses the log's last flushes usually loses the newer file with them),
 * and it is not used when the restore holds nothing: those losses go unnoticed here. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "log.h"
#include "persist_impl.h"

#define COUNTS_MAGIC "IBRLCNT1"
#define COUNTS_VERSION 2u
#define COUNTS_HDR 32
#define COUNTS_ROW_V1 (STORE_NAME_MAX + 24)
#define COUNTS_ROW (STORE_NAME_MAX + 40)
#define COUNTS_ACTOR 16
#define COUNTS_MAX_BYTES (64u << 20) /* far above 2 tables of 1 M actors with duplicates */

typedef struct counts_row {
  uint64_t samples, duplicates, rejected, acked;
  uint32_t nactors;
  const uint8_t *actors; /* nactors x {u32 id, u32 0, u64 duplicates}, in the read buffer */
} counts_row;

/* Appends a field at *w and moves past it. */
static void put32(uint8_t **w, uint32_t v) {
  ib_put_u32(*w, v);
  *w += 4;
}
static void put64(uint8_t **w, uint64_t v) {
  ib_put_u64(*w, v);
  *w += 8;
}

static void counts_path(const persist *p, char *out, size_t n, bool tmp) {
  snprintf(out, n, "%s/store.counts%s", p->dir, tmp ? ".tmp" : "");
}

/* Writes buf[0..len) to dir/store.counts through a temporary file and a rename. */
static int counts_write(persist *p, const uint8_t *buf, size_t len) {
  char tmp[PATH_MAX_LEN + 32], path[PATH_MAX_LEN + 32];
  counts_path(p, tmp, sizeof tmp, true);
  counts_path(p, path, sizeof path, false);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return persist__io_fail("create the counters file", tmp);
  int rc = persist__write_all(fd, buf, len);
  if (close(fd) != 0 && rc == IB_OK) rc = persist__io_fail("close the counters file", tmp);
  if (rc == IB_OK && rename(tmp, path) != 0) rc = persist__io_fail("rename the counters file", tmp);
  if (rc != IB_OK) (void)unlink(tmp);
  return rc;
}

/* Whether every log ticket up to logical position `pos` is durable (mu held): flushed through it
 * or before a completed checkpoint's cut, and none of the lost tickets at or below it uncovered.
 * The rule persist__wal_sync acknowledges by. */
static bool durable_through(const persist *p, uint64_t pos) {
  if (p->synced < pos && p->covered_pos < pos) return false;
  if (p->lost_hi > p->lost_lo && p->lost_lo < pos && p->covered_pos < IB_MIN(p->lost_hi, pos)) return false;
  return true;
}

/* Raises the watermark of acknowledged rows (mu held; ti read before mu was taken). A row is
 * counted in total_inserts after its log record was appended, under the table's write lock, so
 * `written` read now is past the records of every row in ti: once the tickets up to it are
 * durable, so are those rows. This save's pair (rows, written) joins the last saves' pairs, and
 * the newest durable one sets the watermark: it trails the inserts by the flush that was running
 * (a save or more). */
static void acked_update(persist *p, const store_table_info *ti) {
  store *s = p->s;
  if (p->mode != PERSIST_WAL) return;
  uint32_t k = p->pend_next++ % PERSIST_COUNTS_PENDING;
  for (int t = 0; t < s->ntables; t++) p->pend_ins[k][t] = ti[t].total_inserts;
  p->pend_written[k] = p->written;
  for (uint32_t i = 0; i < PERSIST_COUNTS_PENDING; i++) { /* newest first */
    uint32_t j = (k + PERSIST_COUNTS_PENDING - i) % PERSIST_COUNTS_PENDING;
    if (!durable_through(p, p->pend_written[j])) continue;
    for (int t = 0; t < s->ntables; t++)
      if (p->pend_ins[j][t] > p->acked_ins[t]) p->acked_ins[t] = p->pend_ins[j][t];
    break;
  }
}

int persist_counts_save(persist *p) {
  IB_CHECK(p != NULL);
  store *s = p->s;
  store_table_info ti[STORE_MAX_TABLES];
  for (int t = 0; t < s->ntables; t++) store_table_info_get(s, t, &ti[t]);
  pthread_mutex_lock(&p->mu);
  uint64_t epoch = p->epoch;
  acked_update(p, ti);
  pthread_mutex_unlock(&p->mu);
  uint64_t sum = 0;
  for (int t = 0; t < s->ntables; t++)
    sum += ti[t].total_samples + ti[t].duplicates + ti[t].rejected_batches + p->acked_ins[t];
  if (sum == p->counts_sum) return IB_OK; /* they only grow: nothing changed since the last write */
  /* Every actor of every table, then only those with duplicates go in the file. */
  store_actor_info *act[STORE_MAX_TABLES] = {0};
  uint32_t nact[STORE_MAX_TABLES] = {0}, ndup[STORE_MAX_TABLES] = {0};
  size_t len = COUNTS_HDR + (size_t)s->ntables * COUNTS_ROW + 4;
  for (int t = 0; t < s->ntables; t++) {
    uint32_t cap = s->tables[t].max_actors;
    act[t] = ib_xmalloc((size_t)IB_MAX(cap, 1u) * sizeof *act[t]);
    nact[t] = IB_MIN(store_actors_get(s, t, act[t], cap), cap);
    for (uint32_t i = 0; i < nact[t]; i++)
      if (act[t][i].duplicates > 0) act[t][ndup[t]++] = act[t][i];
    len += (size_t)ndup[t] * COUNTS_ACTOR;
  }
  uint8_t *buf = ib_xmalloc(len), *w = buf;
  memset(buf, 0, len);
  memcpy(w, COUNTS_MAGIC, 8);
  w += 8;
  put32(&w, COUNTS_VERSION);
  put32(&w, ENDIAN_WORD);
  put32(&w, (uint32_t)s->ntables);
  put32(&w, 0);
  put64(&w, epoch);
  for (int t = 0; t < s->ntables; t++) {
    memcpy(w, s->tables[t].spec.name, STORE_NAME_MAX);
    w += STORE_NAME_MAX;
    put64(&w, ti[t].total_samples);
    put64(&w, ti[t].duplicates);
    put64(&w, ti[t].rejected_batches);
    put64(&w, p->acked_ins[t]);
    put32(&w, ndup[t]);
    put32(&w, 0);
  }
  for (int t = 0; t < s->ntables; t++)
    for (uint32_t i = 0; i < ndup[t]; i++) {
      put32(&w, act[t][i].actor_id);
      put32(&w, 0);
      put64(&w, act[t][i].duplicates);
    }
  put32(&w, ib_crc32(0, buf, (size_t)(w - buf)));
  IB_CHECK((size_t)(w - buf) == len);
  int rc = counts_write(p, buf, len);
  if (rc == IB_OK) p->counts_sum = sum;
  free(buf);
  for (int t = 0; t < s->ntables; t++) free(act[t]);
  return rc;
}

/* Reads dir/store.counts (version 1, without actors, or 2) into rows[0..s->ntables) (by table
 * name; a table the file lacks gets zeros) and *epoch; the rows' actors point into *owned, which
 * the caller frees. Returns IB_OK, IB_ENOTFOUND (no file), IB_EIO (cannot open or read it),
 * IB_EPROTO (another layout, or cut short) or IB_ECHECKSUM, with a message. */
static int counts_read(persist *p, counts_row *rows, uint64_t *epoch, uint8_t **owned) {
  char path[PATH_MAX_LEN + 32];
  counts_path(p, path, sizeof path, false);
  *owned = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return IB_ENOTFOUND;
    return persist__io_fail("open the counters file", path);
  }
  size_t cap = 4096, n = 0;
  uint8_t *buf = ib_xmalloc(cap);
  ssize_t k;
  for (;;) {
    if (n == cap) {
      if (cap >= COUNTS_MAX_BYTES) break;
      cap *= 2;
      buf = ib_xrealloc(buf, cap);
    }
    k = read(fd, buf + n, cap - n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    n += (size_t)k;
  }
  int err = k < 0 ? errno : 0;
  close(fd);
  *owned = buf;
  if (err != 0) {
    errno = err;
    return persist__io_fail("read the counters file", path);
  }
  uint32_t ver = n >= COUNTS_HDR ? ib_get_u32(buf + 8) : 0;
  if (n < COUNTS_HDR + 4 || memcmp(buf, COUNTS_MAGIC, 8) != 0 || (ver != 1 && ver != COUNTS_VERSION) ||
      ib_get_u32(buf + 12) != ENDIAN_WORD)
    return ib_fail(IB_EPROTO, "'%s': not a counters file of version 1 or %u (%zu bytes)", path, COUNTS_VERSION, n);
  uint32_t nt = ib_get_u32(buf + 16);
  size_t row = ver == 1 ? COUNTS_ROW_V1 : COUNTS_ROW;
  size_t need = COUNTS_HDR + (size_t)nt * row + 4;
  if (nt <= STORE_MAX_TABLES && ver > 1 && n >= need)
    for (uint32_t i = 0; i < nt; i++)
      need += (size_t)ib_get_u32(buf + COUNTS_HDR + (size_t)i * row + STORE_NAME_MAX + 32) * COUNTS_ACTOR;
  if (nt > STORE_MAX_TABLES || n != need)
    return ib_fail(IB_EPROTO, "'%s': %zu bytes do not hold %u tables and their actors", path, n, nt);
  if (ib_crc32(0, buf, n - 4) != ib_get_u32(buf + n - 4))
    return ib_fail(IB_ECHECKSUM, "'%s': CRC mismatch", path);
  *epoch = ib_get_u64(buf + 24);
  memset(rows, 0, (size_t)p->s->ntables * sizeof *rows);
  const uint8_t *act = buf + COUNTS_HDR + (size_t)nt * row;
  for (uint32_t i = 0; i < nt; i++) {
    const uint8_t *r = buf + COUNTS_HDR + (size_t)i * row;
    if (r[STORE_NAME_MAX - 1] != '\0') return ib_fail(IB_EPROTO, "'%s': table %u has no name", path, i);
    uint32_t na = ver == 1 ? 0 : ib_get_u32(r + STORE_NAME_MAX + 32);
    uint64_t acked = ver == 1 ? 0 : ib_get_u64(r + STORE_NAME_MAX + 24);
    for (int t = 0; t < p->s->ntables; t++)
      if (strcmp((const char *)r, p->s->tables[t].spec.name) == 0)
        rows[t] = (counts_row){ib_get_u64(r + STORE_NAME_MAX), ib_get_u64(r + STORE_NAME_MAX + 8),
                               ib_get_u64(r + STORE_NAME_MAX + 16), acked, na, act};
    act += (size_t)na * COUNTS_ACTOR;
  }
  return IB_OK;
}

static uint64_t raise_to(uint64_t *v, uint64_t to) {
  uint64_t add = to > *v ? to - *v : 0;
  *v += add;
  return add;
}

/* Compares the file's watermarks of acknowledged rows with the rows the restore holds, table by
 * table, and logs and counts (ri->acked_missing) any shortfall. `epoch` is the file's: past the
 * restored chain's, the chain lost a later log or checkpoint the disk had reported durable, and the
 * message says so. */
static void acked_check(persist *p, persist_restore_info *ri, const counts_row *rows, const char *path,
                        uint64_t epoch) {
  store *s = p->s;
  bool later = epoch > p->epoch;
  for (int t = 0; t < s->ntables; t++) {
    store__table *tb = &s->tables[t];
    ri->counts_acked += rows[t].acked;
    if (rows[t].acked <= tb->total_inserts) continue;
    uint64_t miss = rows[t].acked - tb->total_inserts;
    ri->acked_missing += miss;
    char chain[160] = "";
    if (later && epoch == p->epoch + 1)
      snprintf(chain, sizeof chain, " (a log or checkpoint of epoch %llu is missing: the restored chain ends at %llu)",
               (unsigned long long)epoch, (unsigned long long)p->epoch);
    else if (later)
      snprintf(chain, sizeof chain, " (logs or checkpoints of epochs %llu to %llu are missing: the restored chain "
               "ends at %llu)", (unsigned long long)p->epoch + 1, (unsigned long long)epoch,
               (unsigned long long)p->epoch);
    log_error("persist: table '%s' holds %llu rows ever stored, but '%s' (epoch %llu) counted %llu of them "
              "acknowledged as durable: %llu acknowledged row(s) are gone%s. Unless log files were moved away, "
              "files were put back from a backup or another shard, or --salvage dropped them, the disk lost "
              "data it reported flushed HINT: a write cache without power-loss protection, or a virtual disk "
              "that ignores flushes (e.g. cache=unsafe); actors whose rows are gone will not resend them",
              tb->spec.name, (unsigned long long)tb->total_inserts, path, (unsigned long long)epoch,
              (unsigned long long)rows[t].acked, (unsigned long long)miss, chain);
  }
}

void persist__counts_apply(persist *p, persist_restore_info *ri) {
  store *s = p->s;
  char path[PATH_MAX_LEN + 32];
  counts_path(p, path, sizeof path, false);
  uint64_t inserts = 0;
  for (int t = 0; t < s->ntables; t++) inserts += s->tables[t].total_inserts;
  if (inserts == 0) { /* a fresh store: an old file is another lineage's */
    if (unlink(path) == 0) log_info("persist: removed '%s', left by a store this directory no longer holds", path);
    return;
  }
  counts_row rows[STORE_MAX_TABLES];
  uint64_t epoch = 0;
  uint8_t *owned = NULL;
  int rc = counts_read(p, rows, &epoch, &owned);
  if (rc == IB_OK) acked_check(p, ri, rows, path, epoch);
  if (rc == IB_OK && epoch > p->epoch)
    rc = ib_fail(IB_EMISMATCH, "'%s' was saved at epoch %llu, past the restored chain's %llu", path,
                 (unsigned long long)epoch, (unsigned long long)p->epoch);
  if (rc != IB_OK) {
    if (rc != IB_ENOTFOUND)
      log_warn("persist: the saved counters are not used (samples and duplicates since the last checkpoint "
               "stay uncounted): %s", ib_errmsg());
    free(owned);
    return;
  }
  uint64_t smp = 0, dup = 0, rej = 0, adup = 0;
  uint32_t nact = 0, gone = 0;
  for (int t = 0; t < s->ntables; t++) {
    store__table *tb = &s->tables[t];
    dup += raise_to(&tb->duplicates, rows[t].duplicates);
    rej += raise_to(&tb->rejected_batches, rows[t].rejected);
    pthread_mutex_lock(&tb->stat_mu);
    smp += raise_to(&tb->total_samples, rows[t].samples);
    pthread_mutex_unlock(&tb->stat_mu);
    for (uint32_t i = 0; i < rows[t].nactors; i++) {
      const uint8_t *r = rows[t].actors + (size_t)i * COUNTS_ACTOR;
      store__actor *a = store__actor_find(tb, ib_get_u32(r), false);
      if (a == NULL) { /* an actor the restore does not hold: none of its rows survived */
        gone++;
        continue;
      }
      uint64_t add = raise_to(&a->duplicates, ib_get_u64(r + 8));
      adup += add;
      nact += add > 0;
    }
  }
  free(owned);
  ri->counts_samples = smp;
  ri->counts_duplicates = dup;
  if (smp + dup + rej + adup > 0)
    log_info("persist: '%s' (epoch %llu) adds what the checkpoint did not count: %llu samples, %llu duplicates "
             "(%llu to the counts of %u actor(s)), %llu rejected batches", path, (unsigned long long)epoch,
             (unsigned long long)smp, (unsigned long long)dup, (unsigned long long)adup, nact,
             (unsigned long long)rej);
  if (gone > 0)
    log_info("persist: '%s' counts duplicates of %u actor(s) the restored store does not know; not used", path,
             gone);
}
