/* persist_salvage.c: persist_open_salvage (persist.h): when the strict restore refuses a store
 * directory because files are damaged or missing, keep every intact row and set the files aside.
 *
 * When does a directory need it? persist_open refuses only states that no crash of an honest
 * disk leaves (tests/store/test_persist_power.c checks every such state is accepted): a
 * checkpoint that fails its CRC, a log whose header is damaged, a gap in the chain of logs. A
 * disk that acknowledged a flush it never did (a write cache without power-loss protection, a
 * virtual disk that ignores flushes), a bad sector, or an operator who deleted a file leaves
 * them. The strict restore then stops the shard and names the file, so that nobody loses data
 * without deciding to; this is the decision made in advance (`ibrl-replay --salvage`), as
 * PostgreSQL's zero_damaged_pages or SQLite's .recover are.
 *
 * What it reads: the same readers as the restore (persist__ckpt_load, persist__wal_replay_file),
 * so every row kept passed the same CRC and validation checks; a row that fails them is never
 * stored. It writes nothing into the old files and deletes none of them itself: they are linked
 * into dir/damaged-<UTC time> first, and only the checkpoint it ends with makes them stale (the
 * checkpoint's own removal of older logs then unlinks their names in dir, and its rename
 * replaces store.ckpt). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ib.h"
#include "log.h"
#include "persist_impl.h"

/* Whether `name` is one of the store's files in its directory. */
static bool store_file(const char *name) {
  return strcmp(name, "store.ckpt") == 0 || strcmp(name, "store.ckpt.tmp") == 0 ||
         strncmp(name, "store.wal.", 10) == 0;
}

/* Copies `from` to the new file `to` and flushes it (where a hard link is not possible). */
static int copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0) return persist__io_fail("open for a copy", from);
  int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    int rc = persist__io_fail("create the copy", to);
    close(in);
    return rc;
  }
  const size_t cap = 1 << 16;
  char *buf = ib_xmalloc(cap);
  ssize_t k;
  int rc = IB_OK;
  while ((k = read(in, buf, cap)) != 0) {
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      rc = persist__io_fail("read for a copy", from);
      break;
    }
    if (persist__write_all(out, buf, (size_t)k) != 0) {
      rc = persist__io_fail("write the copy", to);
      break;
    }
  }
  if (rc == IB_OK && fsync(out) != 0) rc = persist__io_fail("fsync the copy", to);
  free(buf);
  close(in);
  close(out);
  return rc;
}

/* Links every store file of p->dir into a new dir/damaged-<UTC time>[-N] (sv->aside) (moves the
 * temporary ones), then flushes both directories. */
static int set_aside(persist *p, persist_salvage_info *sv) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  for (int i = 1;; i++) {
    if (i == 1)
      snprintf(sv->aside, sizeof sv->aside, "%s/damaged-%s", p->dir, stamp);
    else
      snprintf(sv->aside, sizeof sv->aside, "%s/damaged-%s-%d", p->dir, stamp, i);
    if (mkdir(sv->aside, 0755) == 0) break;
    if (errno != EEXIST || i == 100) return persist__io_fail("create directory", sv->aside);
  }
  DIR *d = opendir(p->dir);
  if (!d) return persist__io_fail("list directory", p->dir);
  int rc = IB_OK;
  struct dirent *e;
  while (rc == IB_OK && (e = readdir(d)) != NULL) {
    if (!store_file(e->d_name)) continue;
    char from[PATH_MAX_LEN + 300], to[sizeof sv->aside + 300]; /* d_name: up to 255 bytes */
    snprintf(from, sizeof from, "%s/%s", p->dir, e->d_name);
    snprintf(to, sizeof to, "%s/%s", sv->aside, e->d_name);
    struct stat st;
    if (lstat(from, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    size_t nl = strlen(e->d_name);
    if (nl > 4 && strcmp(e->d_name + nl - 4, ".tmp") == 0) {
      /* A temporary file (a checkpoint or log a crash cut short) is moved, not linked: the next
       * checkpoint or log is written under the same name with O_TRUNC, which would write through a
       * link into the copy set aside. No restore reads it, so moving it changes nothing. */
      if (rename(from, to) != 0) rc = persist__io_fail("move into the salvage directory", from);
    } else if (link(from, to) != 0) {
      rc = copy_file(from, to); /* e.g. a file system without hard links */
    }
    if (rc == IB_OK) sv->files_aside++;
  }
  closedir(d);
  if (rc == IB_OK) rc = persist__fsync_dir(sv->aside);
  if (rc == IB_OK) rc = persist__fsync_dir(p->dir);
  return rc;
}

/* Reads the intact checkpoint and every log from its epoch on into the (empty) store. Returns
 * IB_OK with what it kept in sv, or the error of a file that salvage must not pass over: settings
 * that differ (IB_EMISMATCH, IB_EFULL) or an I/O error (IB_EIO). *max_epoch gets the highest epoch
 * found. */
static int salvage_read(persist *p, persist_restore_info *ri, persist_salvage_info *sv,
                        uint64_t *max_epoch) {
  uint64_t epoch = 0, items = 0;
  int rc = persist__ckpt_load(p, &epoch, &items); /* empties the tables when it fails */
  if (rc == IB_OK) {
    sv->ckpt_loaded = ri->ckpt_found = true;
    sv->ckpt_items = ri->ckpt_items = items;
    ri->ckpt_epoch = epoch;
  } else if (rc == IB_EMISMATCH || rc == IB_EIO) {
    return rc;
  } else if (rc != IB_ENOTFOUND) {
    sv->ckpt_damaged = true;
    log_warn("salvage: the checkpoint's rows are lost: %s", ib_errmsg());
    epoch = 0;
  }
  *max_epoch = epoch;
  uint64_t ep[MAX_LOGS];
  int n = persist__wal_list(p, ep, MAX_LOGS);
  if (n < 0) return n;
  for (int i = 0; i < n; i++) {
    if (ep[i] > *max_epoch) *max_epoch = ep[i];
    if (sv->ckpt_loaded && ep[i] < epoch) continue; /* its records are in the checkpoint */
    char path[PATH_MAX_LEN + 32];
    persist__wal_name(p, ep[i], path, sizeof path);
    uint64_t before = ri->wal_items;
    wal_scan sc;
    rc = persist__wal_replay_file(p, path, ep[i], UINT64_MAX, ri, &sc);
    /* Other specs or a larger max_insert_batch (IB_EMISMATCH), a full demo table or too many
     * actors (IB_EFULL): settings, not damage; dropping rows for them would be a silent loss. */
    if (rc == IB_EMISMATCH || rc == IB_EFULL || rc == IB_EIO) return rc;
    sv->logs_read++;
    sv->log_items += ri->wal_items - before;
    if (rc != IB_OK || sc.torn) {
      sv->logs_damaged++;
      sv->log_bytes_lost += sc.file_len - sc.valid_len;
      log_warn("salvage: log '%s': kept %llu rows, lost its last %llu bytes: %s", path,
               (unsigned long long)(ri->wal_items - before),
               (unsigned long long)(sc.file_len - sc.valid_len), rc != IB_OK ? ib_errmsg() : sc.torn);
    }
  }
  return IB_OK;
}

int persist_open_salvage(persist **out, store *s, const char *dir, persist_mode mode,
                         persist_restore_info *info, persist_salvage_info *sv) {
  IB_CHECK(out != NULL && s != NULL && dir != NULL);
  persist_salvage_info local;
  if (sv == NULL) sv = &local;
  memset(sv, 0, sizeof *sv);
  int rc = persist__open_check(s, dir, mode); /* so that every refusal below is about the files */
  if (rc != IB_OK) return rc;
  rc = persist_open(out, s, dir, mode, info);
  if (rc == IB_OK) return rc;
  if (rc != IB_EPROTO && rc != IB_ECHECKSUM && rc != IB_EMISSING) { /* not damage */
    char msg[900];
    snprintf(msg, sizeof msg, "%s", ib_errmsg());
    return ib_fail(rc, "salvage of '%s' not attempted, nothing changed (the restore refused for another reason than "
                   "damaged or missing data): %s", dir, msg);
  }
  snprintf(sv->refusal, sizeof sv->refusal, "%s", ib_errmsg());
  log_warn("salvage: the restore of '%s' refused: %s; trying to keep every intact row", dir,
           sv->refusal);
  /* persist_open left the store empty and nothing attached. */
  persist_restore_info ri;
  memset(&ri, 0, sizeof ri);
  persist *p = persist__new(s, dir, mode);
  uint64_t max_epoch = 0;
  rc = salvage_read(p, &ri, sv, &max_epoch);
  if (rc != IB_OK) {
    char msg[900];
    snprintf(msg, sizeof msg, "%s", ib_errmsg());
    ib_fail(rc, "salvage of '%s' stopped, nothing changed: %s", dir, msg);
    return persist__open_fail(p, rc);
  }
  rc = set_aside(p, sv);
  /* A fresh log past every epoch found: the checkpoint below (epoch max + 2) makes every old file
   * stale, whatever epochs the damaged ones had. */
  p->epoch = max_epoch + 1;
  if (rc == IB_OK) rc = persist__open_log(p, false);
  if (rc != IB_OK) return persist__open_fail(p, rc);
  sv->salvaged = true;
  uint64_t kept = sv->ckpt_items + sv->log_items;
  log_warn("salvage: kept %llu rows (%llu from the checkpoint%s, %llu from %d log(s), %d damaged, "
           "%llu bytes lost); the files as they were are in '%s'",
           (unsigned long long)kept, (unsigned long long)sv->ckpt_items,
           sv->ckpt_damaged ? ", which was damaged" : sv->ckpt_loaded ? "" : ", none found",
           (unsigned long long)sv->log_items, sv->logs_read, sv->logs_damaged,
           (unsigned long long)sv->log_bytes_lost, sv->aside);
  persist__open_finish(p, true, &ri);
  if (info) *info = ri;
  *out = p;
  return IB_OK;
}
