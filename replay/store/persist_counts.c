/* persist_counts.c: the counters that neither the log nor (between checkpoints) the checkpoint
 * holds, saved to the side so that a crash does not set them back.
 *
 * The log replays inserts, and nothing else: a table's total_samples, duplicates and
 * rejected_batches are saved only by checkpoints. A shard killed 5 minutes after its last
 * checkpoint came back with 5 minutes of samples missing from Info and from the rate limiter's
 * count. So the server calls persist_counts_save about once a second, which, when a counter
 * changed since its last write, writes dir/store.counts (tmp + rename, no fsync: the file is advisory, a row depends on it nowhere):
 *   magic "IBRLCNT1", u32 version, u32 endian word, u32 ntables, u32 0, u64 epoch (the log's at
 *   the save), ntables x { char name[STORE_NAME_MAX], u64 total_samples, u64 duplicates,
 *   u64 rejected_batches }, u32 CRC-32 of every byte before it.
 * The counters only grow, so a restore takes, per table, the larger of the restored value and the
 * file's: a file older than the checkpoint changes nothing. A file from another lineage (an epoch
 * past the restored chain) is ignored, and so is a damaged one (a crash may leave it empty: it is
 * not flushed). A start that restored nothing deletes the file, so a store begun afresh in the
 * same directory never inherits it. Per-actor duplicate counts are not in it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "log.h"
#include "persist_impl.h"

#define COUNTS_MAGIC "IBRLCNT1"
#define COUNTS_VERSION 1u
#define COUNTS_HDR 32
#define COUNTS_ROW (STORE_NAME_MAX + 24)

typedef struct counts_row {
  uint64_t samples, duplicates, rejected;
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

int persist_counts_save(persist *p) {
  IB_CHECK(p != NULL);
  store *s = p->s;
  uint8_t buf[COUNTS_HDR + STORE_MAX_TABLES * COUNTS_ROW + 4];
  memset(buf, 0, sizeof buf);
  pthread_mutex_lock(&p->mu);
  uint64_t epoch = p->epoch;
  pthread_mutex_unlock(&p->mu);
  uint8_t *w = buf;
  uint64_t sum = 0;
  memcpy(w, COUNTS_MAGIC, 8);
  w += 8;
  put32(&w, COUNTS_VERSION);
  put32(&w, ENDIAN_WORD);
  put32(&w, (uint32_t)s->ntables);
  put32(&w, 0);
  put64(&w, epoch);
  for (int t = 0; t < s->ntables; t++) {
    store_table_info ti;
    store_table_info_get(s, t, &ti);
    memcpy(w, s->tables[t].spec.name, STORE_NAME_MAX);
    w += STORE_NAME_MAX;
    put64(&w, ti.total_samples);
    put64(&w, ti.duplicates);
    put64(&w, ti.rejected_batches);
    sum += ti.total_samples + ti.duplicates + ti.rejected_batches;
  }
  if (sum == p->counts_sum) return IB_OK; /* they only grow: nothing changed since the last write */
  put32(&w, ib_crc32(0, buf, (size_t)(w - buf)));
  char tmp[PATH_MAX_LEN + 32], path[PATH_MAX_LEN + 32];
  counts_path(p, tmp, sizeof tmp, true);
  counts_path(p, path, sizeof path, false);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return persist__io_fail("create the counters file", tmp);
  int rc = persist__write_all(fd, buf, (size_t)(w - buf));
  if (close(fd) != 0 && rc == IB_OK) rc = persist__io_fail("close the counters file", tmp);
  if (rc == IB_OK && rename(tmp, path) != 0) rc = persist__io_fail("rename the counters file", tmp);
  if (rc != IB_OK) (void)unlink(tmp);
  else p->counts_sum = sum;
  return rc;
}

/* Reads dir/store.counts into rows[0..s->ntables) (by table name; a table the file lacks gets
 * zeros) and *epoch. Returns IB_OK, IB_ENOTFOUND (no file), IB_EIO (cannot open it), IB_EPROTO
 * (another layout, or cut short) or IB_ECHECKSUM, with a message. */
static int counts_read(persist *p, counts_row *rows, uint64_t *epoch) {
  char path[PATH_MAX_LEN + 32];
  counts_path(p, path, sizeof path, false);
  uint8_t buf[COUNTS_HDR + STORE_MAX_TABLES * COUNTS_ROW + 8];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return IB_ENOTFOUND;
    return persist__io_fail("open the counters file", path);
  }
  ssize_t n = 0, k;
  while ((size_t)n < sizeof buf && (k = read(fd, buf + n, sizeof buf - (size_t)n)) > 0) n += k;
  close(fd);
  if (n < COUNTS_HDR + 4 || memcmp(buf, COUNTS_MAGIC, 8) != 0 || ib_get_u32(buf + 8) != COUNTS_VERSION ||
      ib_get_u32(buf + 12) != ENDIAN_WORD)
    return ib_fail(IB_EPROTO, "'%s': not a counters file of this version (%zd bytes)", path, n);
  uint32_t nt = ib_get_u32(buf + 16);
  if (nt > STORE_MAX_TABLES || (size_t)n != COUNTS_HDR + (size_t)nt * COUNTS_ROW + 4)
    return ib_fail(IB_EPROTO, "'%s': %zd bytes do not hold %u tables", path, n, nt);
  if (ib_crc32(0, buf, (size_t)n - 4) != ib_get_u32(buf + n - 4))
    return ib_fail(IB_ECHECKSUM, "'%s': CRC mismatch", path);
  *epoch = ib_get_u64(buf + 24);
  memset(rows, 0, (size_t)p->s->ntables * sizeof *rows);
  for (uint32_t i = 0; i < nt; i++) {
    const uint8_t *r = buf + COUNTS_HDR + (size_t)i * COUNTS_ROW;
    if (r[STORE_NAME_MAX - 1] != '\0') return ib_fail(IB_EPROTO, "'%s': table %u has no name", path, i);
    for (int t = 0; t < p->s->ntables; t++)
      if (strcmp((const char *)r, p->s->tables[t].spec.name) == 0)
        rows[t] = (counts_row){ib_get_u64(r + STORE_NAME_MAX), ib_get_u64(r + STORE_NAME_MAX + 8),
                               ib_get_u64(r + STORE_NAME_MAX + 16)};
  }
  return IB_OK;
}

static uint64_t raise_to(uint64_t *v, uint64_t to) {
  uint64_t add = to > *v ? to - *v : 0;
  *v += add;
  return add;
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
  int rc = counts_read(p, rows, &epoch);
  if (rc == IB_ENOTFOUND) return;
  if (rc == IB_OK && epoch > p->epoch)
    rc = ib_fail(IB_EMISMATCH, "'%s' was saved at epoch %llu, past the restored chain's %llu", path,
                 (unsigned long long)epoch, (unsigned long long)p->epoch);
  if (rc != IB_OK) {
    log_warn("persist: the saved counters are not used (samples and duplicates since the last checkpoint "
             "stay uncounted): %s", ib_errmsg());
    return;
  }
  uint64_t smp = 0, dup = 0, rej = 0;
  for (int t = 0; t < s->ntables; t++) {
    store__table *tb = &s->tables[t];
    dup += raise_to(&tb->duplicates, rows[t].duplicates);
    rej += raise_to(&tb->rejected_batches, rows[t].rejected);
    pthread_mutex_lock(&tb->stat_mu);
    smp += raise_to(&tb->total_samples, rows[t].samples);
    pthread_mutex_unlock(&tb->stat_mu);
  }
  ri->counts_samples = smp;
  ri->counts_duplicates = dup;
  if (smp + dup + rej > 0)
    log_info("persist: '%s' (epoch %llu) adds what the checkpoint did not count: %llu samples, %llu duplicates, "
             "%llu rejected batches", path, (unsigned long long)epoch, (unsigned long long)smp,
             (unsigned long long)dup, (unsigned long long)rej);
}
