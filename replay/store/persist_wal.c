/* persist_wal.c: the write-ahead log of a replay store: log files and their headers, appends and
 * group commit over the chain of at most two open logs, the replay and repair of logs at restore,
 * and the cut that a checkpoint makes (the format and the rules are at the top of persist.c). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ib.h"
#include "log.h"
#include "persist_impl.h"

/* ---- write-ahead log ---- */

static void wal_header_bytes(const persist *p, uint64_t epoch, uint8_t out[44]) {
  const store_spec *sp = &p->s->tables[0].spec;
  uint32_t v32[] = {WAL_VERSION, ENDIAN_WORD};
  memcpy(out, WAL_MAGIC, 8);
  memcpy(out + 8, v32, 8);
  memcpy(out + 16, &epoch, 8);
  uint32_t w[] = {(uint32_t)p->s->ntables, (uint32_t)sp->obs_dim, (uint32_t)sp->act_dim};
  memcpy(out + 24, w, 12);
  uint32_t crc = ib_crc32(0, out, 36);
  memcpy(out + 36, &crc, 4);
  memset(out + 40, 0, 4);
}

void persist__wal_name(const persist *p, uint64_t epoch, char *out, size_t n) {
  snprintf(out, n, "%s/store.wal.%016llx", p->dir, (unsigned long long)epoch);
}

int persist__wal_create(persist *p, uint64_t epoch, int *fd_out, char *path_out) {
  char path[PATH_MAX_LEN + 32], tmp[PATH_MAX_LEN + 48];
  persist__wal_name(p, epoch, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  /* O_APPEND: when a write fails part way (a disk that fills up takes what fits), the partial
   * record is cut off with ftruncate, which does not move the file position; without O_APPEND the
   * next record would land past the cut, behind a hole a restore reads as a torn record, and
   * every acknowledged record after it would be dropped. */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return persist__io_fail("create log", tmp);
  uint8_t hdr[WAL_HDR];
  wal_header_bytes(p, epoch, hdr);
  if (persist__write_all(fd, hdr, WAL_HDR) != 0 || fsync(fd) != 0) {
    int e = errno, rc = persist__io_fail("write log header", tmp); /* e: the cause, for persist_health */
    close(fd);
    unlink(tmp);
    errno = e;
    return rc;
  }
  if (rename(tmp, path) != 0) {
    int e = errno, rc = persist__io_fail("rename log onto", path);
    close(fd);
    unlink(tmp);
    errno = e;
    return rc;
  }
  int rc = persist__fsync_dir(p->dir);
  if (rc) {
    close(fd);
    return rc;
  }
  *fd_out = fd;
  memcpy(path_out, path, sizeof path);
  return IB_OK;
}

/* ---- appends and group commit ---- */

void persist__wal_mark_lost(persist *p) {
  if (p->written <= p->synced) return;
  persist__health_trouble(p);
  if (p->lost_hi == 0) p->lost_lo = p->synced; /* else merge: keep the older, lower start */
  p->lost_hi = IB_MAX(p->lost_hi, p->written);
}

/* Closes a log fd that is no longer needed, or leaves it to the running fdatasync that still uses
 * it (mu held). */
static void wal_fd_retire(persist *p, int fd) {
  if (fd < 0) return;
  if (fd == p->sync_fd) {
    IB_CHECK(p->zombie_fd < 0); /* one fdatasync at a time, so one fd in use */
    p->zombie_fd = fd;
  } else {
    close(fd);
  }
}

/* The previous log is durable or covered by a checkpoint: forget it (mu held). */
static void wal_prev_settle(persist *p) {
  wal_fd_retire(p, p->prev_fd);
  p->prev_fd = -1;
  p->prev_broken = false;
}


int persist__wal_append(void *ctx, int table, const store_item *items, size_t n, uint64_t *ticket) {
  persist *p = ctx;
  const store_spec *sp = &p->s->tables[table].spec;
  size_t ib = persist__item_bytes(sp), payload = 8 + n * ib, total = 8 + payload;
  IB_CHECK(total <= p->buf_cap);
  /* The buffer is shared by both tables' inserts, so it is filled under the log mutex too. */
  pthread_mutex_lock(&p->mu);
  uint8_t *b = p->buf;
  uint32_t hdr[2] = {(uint32_t)table, (uint32_t)n};
  memcpy(b + 8, hdr, 8);
  uint8_t *q = b + 16;
  size_t O = (size_t)sp->obs_dim, A = (size_t)sp->act_dim;
  for (size_t i = 0; i < n; i++) {
    const store_item *it = &items[i];
    memcpy(q, it->obs, O * 4), q += O * 4;
    memcpy(q, it->next_obs, O * 4), q += O * 4;
    memcpy(q, it->action, A * 4), q += A * 4;
    memcpy(q, &it->reward, 4), q += 4;
    memcpy(q, &it->discount, 4), q += 4;
    uint32_t u[2] = {it->proposer, it->actor_id};
    memcpy(q, u, 8), q += 8;
    memcpy(q, &it->seq, 8), q += 8;
    memcpy(q, &it->weight_version, 8), q += 8;
    uint8_t fl[8] = {it->episode_end, it->episode_success, 0, 0, 0, 0, 0, 0};
    memcpy(q, fl, 8), q += 8;
  }
  IB_ASSERT((size_t)(q - b) == total);
  uint32_t len = (uint32_t)payload, crc = ib_crc32(0, b + 8, payload);
  memcpy(b, &len, 4);
  memcpy(b + 4, &crc, 4);
  int rc = IB_OK;
  if (p->broken || p->fd < 0) {
    rc = ib_fail(IB_EIO,
                 "log '%s' is unusable after an earlier write or fsync error (HINT: a "
                 "checkpoint starts a fresh log; check the disk)",
                 p->wal_path);
  } else {
    if (persist__write_all(p->fd, b, total) != 0) {
      int err = errno;
      rc = persist__io_fail("append to log", p->wal_path);
      persist__health_note(p, "append to log", p->wal_path, err);
      p->append_failing = true;
      /* Cut the partial record off; if even that fails, no later record may follow it. */
      if (ftruncate(p->fd, (off_t)p->fd_len) != 0) {
        p->broken = true;
        persist__wal_mark_lost(p);
      }
    } else {
      p->written += total;
      p->fd_len += total;
      *ticket = p->written;
      if (p->append_failing) {
        p->append_failing = false;
        persist__health_settle(p);
      }
    }
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

void persist__wal_sync_once(persist *p) {
  bool prev = persist__wal_prev_pending(p);
  int fd = prev ? p->prev_fd : p->fd;
  uint64_t target = prev ? p->cut_pos : p->written;
  char path[PATH_MAX_LEN + 32];
  memcpy(path, prev ? p->prev_path : p->wal_path, sizeof path);
  IB_CHECK(fd >= 0 && p->sync_fd < 0);
  p->sync_fd = fd;
  pthread_mutex_unlock(&p->mu);
  int e = fdatasync(fd);
  int err = errno;
  pthread_mutex_lock(&p->mu);
  p->sync_fd = -1;
  if (p->zombie_fd == fd) { /* retired while we flushed it (a cut, or a checkpoint covered it) */
    close(fd);
    p->zombie_fd = -1;
  }
  if (e != 0 && target > p->synced) {
    /* Nothing after the hole can become durable through the log: refuse those tickets, and the
     * appends, until a checkpoint covers the hole and starts a fresh log. */
    log_error("log '%s': fdatasync failed: %s", path, strerror(err));
    persist__health_note(p, "fdatasync log", path, err);
    persist__wal_mark_lost(p);
    p->broken = true;
    if (persist__wal_prev_pending(p)) p->prev_broken = true;
  } else if (e == 0 && target > p->synced) {
    p->synced = target;
  }
  if (p->prev_fd >= 0 && p->synced >= p->cut_pos) wal_prev_settle(p);
  pthread_cond_broadcast(&p->cv);
}

int persist__wal_sync(void *ctx, uint64_t ticket) {
  persist *p = ctx;
  pthread_mutex_lock(&p->mu);
  int rc = IB_OK;
  for (;;) {
    /* A lost ticket stays lost even if synced later passes it (a checkpoint, a fresh log). */
    if (ticket > p->lost_lo && ticket <= p->lost_hi) {
      rc = ib_fail(IB_EIO,
                   "log '%s': a write or fsync failed, the batch is not durable (HINT: check the "
                   "disk; a checkpoint starts a fresh log)",
                   p->wal_path);
      break;
    }
    if (p->synced >= ticket) break;
    if (p->sync_fd >= 0) { /* group commit: the running fdatasync may cover us */
      pthread_cond_wait(&p->cv, &p->mu);
      continue;
    }
    if (persist__wal_prev_pending(p) && p->prev_broken) {
      /* A ticket of a fresh log after a hole: only the running checkpoint can make it durable;
       * its end (either way) wakes us. */
      pthread_cond_wait(&p->cv, &p->mu);
      continue;
    }
    if (!persist__wal_prev_pending(p) && p->broken) { /* no ticket can be here (appends are refused) */
      rc = ib_fail(IB_EIO, "log '%s' is broken, the batch is not durable (HINT: check the disk)",
                   p->wal_path);
      break;
    }
    persist__wal_sync_once(p);
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* ---- replaying a log at restore ---- */

/* persist__wal_replay_file (persist_impl.h). */
int persist__wal_replay_file(persist *p, const char *path, uint64_t want_epoch, uint64_t prev_len,
                             persist_restore_info *info, wal_scan *out) {
  store *s = p->s;
  memset(out, 0, sizeof *out);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return persist__io_fail("open log", path);
  info->wal_found = true;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int rc = persist__io_fail("stat log", path);
    close(fd);
    return rc;
  }
  uint64_t len = (uint64_t)st.st_size;
  out->file_len = out->valid_len = len;
  uint8_t hdr[WAL_HDR];
  if (len < WAL_HDR || pread(fd, hdr, WAL_HDR, 0) != WAL_HDR) {
    /* A crash while creating a fresh log leaves at most a short tmp file, never a short log (the
     * rename comes after the fsync), so a short header is damage. */
    close(fd);
    out->valid_len = 0; /* nothing applied */
    return ib_fail(IB_EPROTO,
                   "log '%s' is %llu bytes, shorter than its header (HINT: the file is "
                   "damaged; move it away to restore from the checkpoint alone)",
                   path, (unsigned long long)len);
  }
  uint32_t crc, ver, endian, nt, od, ad;
  uint64_t epoch;
  memcpy(&ver, hdr + 8, 4);
  memcpy(&endian, hdr + 12, 4);
  memcpy(&epoch, hdr + 16, 8);
  memcpy(&nt, hdr + 24, 4);
  memcpy(&od, hdr + 28, 4);
  memcpy(&ad, hdr + 32, 4);
  memcpy(&crc, hdr + 36, 4);
  if (memcmp(hdr, WAL_MAGIC, 8) != 0 || crc != ib_crc32(0, hdr, 36)) {
    close(fd);
    out->valid_len = 0; /* nothing applied */
    return ib_fail(IB_ECHECKSUM,
                   "log '%s' has a bad magic or header CRC (HINT: not a replay log, or "
                   "damaged; move it away to restore from the checkpoint alone)",
                   path);
  }
  const store_spec *sp = &s->tables[0].spec;
  if ((ver != 1 && ver != WAL_VERSION) || endian != ENDIAN_WORD || (int)nt != s->ntables ||
      (int)od != sp->obs_dim || (int)ad != sp->act_dim) {
    close(fd);
    out->valid_len = 0; /* nothing applied */
    return ib_fail(
        IB_EMISMATCH,
        "log '%s' was written for version %u, %u tables, obs_dim %u, act_dim %u; "
        "this store reads versions 1 and %u, with %d tables, obs_dim %d, act_dim %d (HINT: start "
        "with the same table specs, and a binary at least as new as the one that wrote the log)",
        path, ver, nt, od, ad, WAL_VERSION, s->ntables, sp->obs_dim, sp->act_dim);
  }
  if (epoch != want_epoch) {
    close(fd);
    out->valid_len = 0; /* nothing applied */
    return ib_fail(IB_EPROTO,
                   "log '%s' says epoch %llu inside but its name says %llu (HINT: log files "
                   "must not be renamed; move it away to restore without it)",
                   path, (unsigned long long)epoch, (unsigned long long)want_epoch);
  }
  /* Records, one at a time through the preallocated buffer. */
  uint64_t off = WAL_HDR;
  int rc = IB_OK;
  store_item *items =
      ib_xcalloc(s->cfg.max_insert_batch ? s->cfg.max_insert_batch : 1, sizeof *items);
  const size_t link_bytes = 8 + persist__item_bytes(sp);
  for (;;) {
    if (off == len) break;
    uint32_t rh[2];
    const char *why = NULL;
    if (len - off < 8 || pread(fd, rh, 8, (off_t)off) != 8) {
      why = "a torn record header";
    } else if (rh[0] < 8 || (uint64_t)rh[0] + 8 > len - off) {
      why = "a record length past the end of the file";
    } else {
      /* A complete record larger than this store's batches (a log written with a larger
       * max_insert_batch) grows the buffer, so it is refused below with a clear message instead
       * of being mistaken for a torn tail and cut off. */
      if (p->buf_cap < (size_t)rh[0] + 16) {
        p->buf_cap = (size_t)rh[0] + 16;
        p->buf = ib_xrealloc(p->buf, p->buf_cap);
      }
      if (pread(fd, p->buf, rh[0], (off_t)(off + 8)) != (ssize_t)rh[0]) {
        rc = persist__io_fail("read log", path);
        break;
      }
      if (ib_crc32(0, p->buf, rh[0]) != rh[1]) why = "a record CRC mismatch";
    }
    if (why) {
      out->valid_len = off;
      out->torn = why;
      break;
    }
    uint32_t t, n;
    memcpy(&t, p->buf, 4);
    memcpy(&n, p->buf + 4, 4);
    if (t == LINK_TABLE) {
      /* The link to the previous log: only as the first record, with the item layout of table 0. */
      uint32_t u[2] = {0, 0};
      uint64_t prev_epoch = 0, plen = 0;
      size_t at = 8 + (size_t)(2 * sp->obs_dim + sp->act_dim + 2) * 4;
      if (n == 1 && rh[0] == link_bytes) {
        memcpy(u, p->buf + at, 8);
        memcpy(&prev_epoch, p->buf + at + 8, 8);
        memcpy(&plen, p->buf + at + 16, 8);
      }
      if (ver < 2 || off != WAL_HDR || n != 1 || rh[0] != link_bytes || u[0] != LINK_MAGIC ||
          u[1] != LINK_ACTOR || prev_epoch + 1 != want_epoch || plen < WAL_HDR) {
        rc = ib_fail(IB_EPROTO,
                     "log '%s': a link record at byte %llu is malformed or misplaced (it must "
                     "come first and name epoch %llu) (HINT: the file is damaged or was renamed; "
                     "move it away to restore without it)",
                     path, (unsigned long long)off, (unsigned long long)(want_epoch - 1));
        break;
      }
      out->link_len = plen;
      if (prev_len != UINT64_MAX && plen > prev_len) {
        out->link_short = true; /* the previous log lost its tail: apply nothing of this one */
        break;
      }
      if (prev_len != UINT64_MAX && plen < prev_len) {
        rc = ib_fail(IB_EPROTO,
                     "log '%s': its link says log epoch %llu ended at byte %llu, but that log has "
                     "%llu intact bytes (HINT: records were appended to an old log; move the logs "
                     "away to restore from the checkpoint alone)",
                     path, (unsigned long long)prev_epoch, (unsigned long long)plen,
                     (unsigned long long)prev_len);
        break;
      }
      off += 8 + rh[0];
      continue;
    }
    /* t is unsigned: compared as an int, a table of 2^31 or more would pass as negative. */
    bool known = t < (uint32_t)s->ntables;
    if (known && n > s->cfg.max_insert_batch &&
        (uint64_t)rh[0] == 8 + (uint64_t)n * persist__item_bytes(&s->tables[t].spec)) {
      rc = ib_fail(
          IB_EMISMATCH,
          "log '%s': record at byte %llu holds %u items, above this store's "
          "max_insert_batch %u (HINT: restart with the max_insert_batch the log was written "
          "with)",
          path, (unsigned long long)off, n, s->cfg.max_insert_batch);
      break;
    }
    if (!known || n > s->cfg.max_insert_batch ||
        (uint64_t)rh[0] != 8 + (uint64_t)n * persist__item_bytes(&s->tables[t].spec)) {
      rc = ib_fail(IB_EPROTO,
                   "log '%s': record at byte %llu has a valid CRC but names table %u with %u "
                   "items in %u bytes (HINT: written by another build?)",
                   path, (unsigned long long)off, t, n, rh[0]);
      break;
    }
    const store_spec *ts = &s->tables[t].spec;
    size_t O = (size_t)ts->obs_dim, A = (size_t)ts->act_dim;
    const uint8_t *q = p->buf + 8;
    for (uint32_t i = 0; i < n; i++) {
      store_item *it = &items[i];
      memset(it, 0, sizeof *it);
      it->obs = (const float *)q, q += O * 4;
      it->next_obs = (const float *)q, q += O * 4;
      it->action = (const float *)q, q += A * 4;
      it->obs_n = it->next_obs_n = (uint32_t)O;
      it->act_n = (uint32_t)A;
      memcpy(&it->reward, q, 4), q += 4;
      memcpy(&it->discount, q, 4), q += 4;
      uint32_t u[2];
      memcpy(u, q, 8), q += 8;
      it->proposer = u[0];
      it->actor_id = u[1];
      memcpy(&it->seq, q, 8), q += 8;
      memcpy(&it->weight_version, q, 8), q += 8;
      it->episode_end = q[0] != 0;
      it->episode_success = q[1] != 0;
      q += 8;
    }
    rc = store__validate(s, (int)t, items, n);
    store_insert_result res = {0, 0, 0};
    if (rc == IB_OK) rc = store__insert_apply(s, (int)t, items, n, false, &res);
    if (rc != IB_OK) {
      char msg[768];
      snprintf(msg, sizeof msg, "%s", ib_errmsg());
      /* A record under a valid CRC that no writer stores (a bad value, NaN) is a damaged file;
       * a full demo table or too many actors (IB_EFULL) are settings and stay what they are. */
      if (rc == IB_EINVAL || rc == IB_ENONFINITE) rc = IB_EPROTO;
      rc = ib_fail(rc, "log '%s': record at byte %llu cannot be replayed: %s", path,
                   (unsigned long long)off, msg);
      break;
    }
    info->wal_records++;
    info->wal_items += res.stored;
    off += 8 + rh[0];
  }
  if (rc != IB_OK) out->valid_len = off;
  free(items);
  close(fd);
  return rc;
}

/* Cuts log `path` at byte `len` and syncs it. */
static int wal_truncate(const char *path, uint64_t len) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return persist__io_fail("open log to truncate", path);
  int rc = ftruncate(fd, (off_t)len) == 0 && fsync(fd) == 0 ? IB_OK : persist__io_fail("truncate log", path);
  close(fd);
  return rc;
}

/* ---- log files ---- */

int persist__wal_list(const persist *p, uint64_t *epochs, int max) {
  DIR *d = opendir(p->dir);
  if (!d) return persist__io_fail("list directory", p->dir);
  int n = 0, rc = IB_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *nm = e->d_name;
    if (strncmp(nm, "store.wal.", 10) != 0 || strlen(nm) != 26) continue;
    uint64_t v = 0;
    bool ok = true;
    for (int i = 10; i < 26 && ok; i++) {
      char c = nm[i];
      int x = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
      ok = x >= 0;
      v = (v << 4) | (uint64_t)(x < 0 ? 0 : x);
    }
    if (!ok) continue;
    if (n == max) {
      rc = ib_fail(IB_EPROTO,
                   "directory '%s' holds more than %d log files (HINT: checkpoints keep "
                   "failing; check the disk and the server log)",
                   p->dir, max);
      break;
    }
    epochs[n++] = v;
  }
  closedir(d);
  if (rc) return rc;
  for (int i = 1; i < n; i++) { /* insertion sort: a handful of entries */
    uint64_t v = epochs[i];
    int j = i - 1;
    while (j >= 0 && epochs[j] > v) {
      epochs[j + 1] = epochs[j];
      j--;
    }
    epochs[j + 1] = v;
  }
  return n;
}

int persist__wal_remove_older(persist *p, uint64_t epoch, bool *removed) {
  uint64_t ep[MAX_LOGS];
  int n = persist__wal_list(p, ep, MAX_LOGS);
  if (n < 0) return n;
  char path[PATH_MAX_LEN + 32];
  bool any = false;
  for (int i = 0; i < n; i++) {
    if (ep[i] >= epoch) continue;
    persist__wal_name(p, ep[i], path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) return persist__io_fail("remove the old log", path);
    any = true;
  }
  if (removed) *removed = any;
  return any ? persist__fsync_dir(p->dir) : IB_OK;
}

int persist__wal_chain_replay(persist *p, const uint64_t *ep, int *nlogs, int n,
                              persist_restore_info *ri, uint64_t *content) {
  char path[PATH_MAX_LEN + 32];
  uint64_t prev_len = UINT64_MAX;
  int keep = n;         /* logs [0, keep) stay */
  int torn = -1;        /* the log to truncate, or -1 */
  uint64_t torn_at = 0; /* its intact length */
  wal_scan sc = {0, 0, NULL, false, 0};
  for (int i = 0; i < n; i++) {
    persist__wal_name(p, ep[i], path, sizeof path);
    int rc = persist__wal_replay_file(p, path, ep[i], prev_len, ri, &sc);
    if (rc != IB_OK) return rc;
    /* persist__wal_replay_file refuses a file shorter than its header; a link alone is no content */
    *content += sc.file_len - WAL_HDR - (sc.link_len ? 16 + persist__item_bytes(&p->s->tables[0].spec) : 0);
    if (sc.link_short) { /* log i - 1 is whole but shorter than it was at the cut */
      keep = i;
      char prev[PATH_MAX_LEN + 32];
      persist__wal_name(p, ep[i - 1], prev, sizeof prev);
      log_warn("log '%s' ends at byte %llu but the next log's link says it had %llu at the cut: "
               "its tail was lost in a machine crash",
               prev, (unsigned long long)prev_len, (unsigned long long)sc.link_len);
      break;
    }
    if (sc.torn) {
      keep = i + 1;
      torn = i;
      torn_at = sc.valid_len;
      ri->wal_torn_bytes += sc.file_len - sc.valid_len;
      break;
    }
    prev_len = sc.file_len;
  }
  /* Later logs hold only records stored after the lost ones, none acknowledged: delete them. */
  uint64_t dropped = 0;
  for (int i = n - 1; i >= keep; i--) {
    persist__wal_name(p, ep[i], path, sizeof path);
    struct stat st;
    uint64_t bytes = 0;
    if (stat(path, &st) == 0 && (uint64_t)st.st_size > WAL_HDR)
      bytes = (uint64_t)st.st_size - WAL_HDR;
    if (unlink(path) != 0) return persist__io_fail("remove the log after a lost tail", path);
    log_warn("log '%s': dropping its %llu bytes of records: they follow records lost in a crash "
             "(none was acknowledged; replaying them would hide the lost rows from a retry)",
             path, (unsigned long long)bytes);
    dropped += bytes;
    ri->wal_dropped_logs++;
    /* Each deletion is durable before the next, older one is made: a crash in between must leave
     * a chain without a gap (a gap is refused as missing data). POSIX does not order directory
     * operations that no directory fsync separates; ext4 and XFS commit them in order, other
     * file systems need not (tests/store/test_persist_power.c, its subset model). */
    int rc = persist__fsync_dir(p->dir);
    if (rc != IB_OK) return rc;
  }
  ri->wal_dropped_bytes += dropped;
  if (torn >= 0) {
    persist__wal_name(p, ep[torn], path, sizeof path);
    log_warn("log '%s': %s at byte %llu; dropping the last %llu bytes (a write torn by a crash)",
             path, sc.torn, (unsigned long long)torn_at,
             (unsigned long long)(sc.file_len - torn_at));
    int rc = wal_truncate(path, torn_at);
    if (rc != IB_OK) return rc;
  }
  *nlogs -= n - keep;
  return IB_OK;
}

/* ---- the cut and the end of a checkpoint ---- */

/* Writes the link record (the first record of a log made by a cut) into buf: the previous log's
 * epoch and length. Returns its size. */
static size_t wal_link_bytes(const persist *p, uint64_t prev_epoch, uint64_t prev_len,
                             uint8_t *buf) {
  const store_spec *sp = &p->s->tables[0].spec;
  size_t ib = persist__item_bytes(sp), payload = 8 + ib;
  IB_CHECK(8 + payload <= p->buf_cap);
  memset(buf, 0, 8 + payload);
  uint32_t h[2] = {LINK_TABLE, 1};
  memcpy(buf + 8, h, 8);
  uint8_t *q = buf + 16 + (size_t)(2 * sp->obs_dim + sp->act_dim + 2) * 4; /* after the floats */
  uint32_t u[2] = {LINK_MAGIC, LINK_ACTOR};                               /* proposer, actor_id */
  memcpy(q, u, 8);
  memcpy(q + 8, &prev_epoch, 8); /* seq */
  memcpy(q + 16, &prev_len, 8);  /* weight_version */
  uint32_t len = (uint32_t)payload, crc = ib_crc32(0, buf + 8, payload);
  memcpy(buf, &len, 4);
  memcpy(buf + 4, &crc, 4);
  return 8 + payload;
}

void persist__wal_cut(persist *p, int nfd, const char *npath) {
  IB_CHECK(!persist__wal_prev_pending(p) || p->prev_broken);
  /* A hole anywhere before the cut (a broken current log, or a previous log only a checkpoint
   * can cover) is a hole before the new log too: only this cut's checkpoint covers it. */
  bool hole = p->broken || (persist__wal_prev_pending(p) && p->prev_broken);
  wal_fd_retire(p, p->prev_fd);
  p->prev_fd = p->fd;
  memcpy(p->prev_path, p->wal_path, sizeof p->prev_path);
  p->cut_pos = p->written;
  p->prev_broken = hole;
  uint64_t prev_len = p->fd_len;
  p->fd = nfd;
  snprintf(p->wal_path, sizeof p->wal_path, "%s", npath);
  p->fd_len = WAL_HDR;
  p->broken = false;
  /* The link: if the previous log's tail is lost in a crash, a restore sees it is shorter than
   * this says and drops this log's records (acked only once the previous log is durable). It is
   * one small write() to the page cache; syncs of this log make it durable with the records. */
  size_t k = wal_link_bytes(p, p->epoch, prev_len, p->buf);
  if (persist__write_all(p->fd, p->buf, k) != 0) {
    int err = errno;
    log_error("log '%s': writing its link record failed: %s", p->wal_path, strerror(err));
    persist__health_note(p, "write the link record of log", p->wal_path, err);
    p->broken = true; /* no ticket is in it yet; appends fail until the next checkpoint */
  } else {
    p->written += k;
    p->fd_len += k;
  }
  if (!hole && p->synced >= p->cut_pos) wal_prev_settle(p); /* nothing of it left to flush */
}

void persist__wal_prev_flush(persist *p) {
  pthread_mutex_lock(&p->mu);
  while (persist__wal_prev_pending(p) && !p->prev_broken) {
    if (p->sync_fd >= 0)
      pthread_cond_wait(&p->cv, &p->mu);
    else
      persist__wal_sync_once(p);
  }
  pthread_mutex_unlock(&p->mu);
}

void persist__wal_ckpt_done(persist *p, bool ok, uint64_t cut_at) {
  pthread_mutex_lock(&p->mu);
  if (ok && cut_at > p->covered_pos) p->covered_pos = cut_at; /* every row before the cut is durable */
  if (p->prev_fd >= 0) {
    if (ok) {
      if (p->synced < p->cut_pos) p->synced = p->cut_pos;
      wal_prev_settle(p);
    } else if (p->prev_broken) {
      persist__wal_mark_lost(p);
      p->broken = true;
    }
  }
  persist__health_settle(p);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}
