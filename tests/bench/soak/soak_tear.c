/* soak_tear.c: a machine crash's damage to a killed shard's newest log (see soak_tear.h).
 *
 * Design. The log format is the one replay/store/persist.c's opening comment documents (read from
 * the file, never linked: the harness must not share the code it checks):
 *   header   44 bytes: magic "IBRLWAL1", u32 version, u32 endian, u64 epoch, u32 ntables,
 *            u32 obs_dim, u32 act_dim, u32 CRC-32 of the 36 bytes before it, 4 bytes of zero;
 *   records  { u32 payload length, u32 CRC-32 of the payload, payload = u32 table, u32 n, n items },
 *            an item being obs, next_obs [obs_dim], action [act_dim], reward, discount (floats), then
 *            u32 proposer, u32 actor_id, u64 seq, u64 weight_version, 8 bytes of flags.
 * The file is read whole (a log holds the inserts since the last checkpoint: MBs), the records are
 * walked with their CRCs checked, and every item's (actor_id, seq) is read. A row is acknowledged
 * when the writers said so (seq < acked[actor]) or it is a preloaded demo row. The cut keeps every
 * row the shard may have acknowledged: also those of a half-closed stream whose reply the writer
 * had not read when the shard died (seq < maybe[actor]; the shard replies only once they are
 * durable, so no crash could lose them). The shortest prefix holding them all ends with the last
 * record that holds one: no such row lies after it, and every byte after it was never promised to
 * anyone. (Rows of a writer's open stream, which the shard may store interleaved with the
 * half-closed one's, can be cut: they were never acknowledged, and the writer resends them.)
 * The cut point is uniform over [prefix, end of file] (the end itself: a crash that lost nothing).
 * When bytes follow the cut, one tear in two keeps them as garbage of random length from the cut
 * (random bytes or zeros, half each): a sector that was allocated but not, or half, written. The
 * restore must drop everything from the first record that does not check out: the harness predicts
 * that amount (len_after - valid_end, walking the torn file by the same length and CRC rules) so the
 * shard's "torn bytes dropped" can be compared with it.
 * The check that the log really holds what was acknowledged: for each actor that has rows in this
 * log, its acknowledged seqs from its lowest seq here up to acked[a] must all be here (rows below
 * that lowest seq are in the checkpoint or an older log). An acknowledged row missing from the log
 * is a durability bug the tear must not hide: it is counted (missing) and printed. An actor with no
 * row in this log cannot be judged from it; the loss check after the restart covers it. */
#include "soak_tear.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ib.h"

#define TEAR_HDR 44                        /* the log header, WAL_HDR in persist_impl.h */
#define TEAR_MAX_LOG (1024ull * 1048576ull) /* a longer log is refused: the harness reads it whole */

/* Per actor (writer ids, then the demo preloader last): what this log holds of its rows. */
typedef struct tear_actor {
  uint64_t acked;  /* seqs [0, acked) acknowledged */
  uint64_t maybe;  /* seqs [0, maybe) perhaps acknowledged (a reply the writer has not read yet) */
  uint64_t lo;     /* its lowest seq in this log */
  uint64_t below;  /* its rows in this log with seq < acked */
  int present;
} tear_actor;

/* The newest log of `dir` into path[PATH_MAX]. Returns IB_OK or IB_ENOTFOUND / IB_EIO. */
static int tear_newest(const char *dir, char *path) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return ib_fail(IB_EIO, "--crash-tear: cannot list the shard directory %s: %s HINT: was it removed?", dir,
                   strerror(errno));
  uint64_t best = 0;
  int found = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    const char *nm = e->d_name;
    if (strncmp(nm, "store.wal.", 10) != 0 || strlen(nm) != 26) continue; /* skips *.tmp too */
    char *end = NULL;
    uint64_t v = strtoull(nm + 10, &end, 16);
    if (end != nm + 26) continue;
    if (!found || v > best) best = v, found = 1;
  }
  closedir(d);
  if (!found)
    return ib_fail(IB_ENOTFOUND, "--crash-tear: no log store.wal.* in %s HINT: the shard must run with "
                   "--durability wal", dir);
  snprintf(path, PATH_MAX, "%s/store.wal.%016llx", dir, (unsigned long long)best);
  return IB_OK;
}

/* Reads the whole file `path` into *buf (caller frees) and its size into *len. */
static int tear_read(const char *path, uint8_t **buf, uint64_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ib_fail(IB_EIO, "--crash-tear: open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return ib_fail(IB_EIO, "--crash-tear: stat %s: %s", path, strerror(e));
  }
  *len = (uint64_t)st.st_size;
  if (*len > TEAR_MAX_LOG) {
    close(fd);
    return ib_fail(IB_EPROTO, "--crash-tear: %s is %llu bytes, over the %llu the harness reads HINT: use a "
                   "--ckpt-period that starts fresh logs more often", path, (unsigned long long)*len,
                   (unsigned long long)TEAR_MAX_LOG);
  }
  *buf = ib_xmalloc(*len > 0 ? *len : 1);
  uint64_t got = 0;
  while (got < *len) {
    ssize_t k = pread(fd, *buf + got, *len - got, (off_t)got);
    if (k <= 0) {
      int e = k < 0 ? errno : EIO;
      close(fd);
      free(*buf);
      *buf = NULL;
      return ib_fail(IB_EIO, "--crash-tear: read %s: %s", path, strerror(e));
    }
    got += (uint64_t)k;
  }
  close(fd);
  return IB_OK;
}

/* The actor slot of id, or -1 if the harness made no promise about it (another shard's writer
 * cannot be here; the bad requests' actor is always refused). */
static int tear_slot(const soak_tear_acked *ack, uint32_t id) {
  if (id < (uint32_t)ack->n_actors) return (int)id;
  if (id == ack->demo_actor) return ack->n_actors;
  return -1;
}

/* The end of the records of buf[0, len) that check out (length within the file, CRC), walked from
 * the header on: what a restore keeps, by the rules of persist.c's opening comment. */
static uint64_t tear_valid_end(const uint8_t *buf, uint64_t len) {
  uint64_t off = TEAR_HDR;
  while (off + 8 <= len) {
    uint32_t plen, crc;
    memcpy(&plen, buf + off, 4);
    memcpy(&crc, buf + off + 4, 4);
    if (plen < 8 || (uint64_t)plen > len - off - 8 || ib_crc32(0, buf + off + 8, plen) != crc) break;
    off += 8 + (uint64_t)plen;
  }
  return off;
}

/* Walks the records of buf[0, len) (header already checked): fills out->records, rows, need,
 * valid_end (here: end of the last whole record) and the actors' table. Sets *rec_end[i] to the end
 * offset and *rec_rows[i] to the rows of record i (arrays grown as needed; caller frees). */
static int tear_walk(soak_tear *out, const uint8_t *buf, uint64_t len, uint32_t obs, uint32_t act,
                     tear_actor *ta, const soak_tear_acked *ack, uint64_t **rec_end, uint32_t **rec_rows,
                     uint64_t *cap) {
  const uint64_t ib = (uint64_t)(2 * obs + act + 2) * 4 + 32; /* persist__item_bytes in persist.c */
  const uint64_t id_at = (uint64_t)(2 * obs + act + 2) * 4 + 4;  /* after the floats and the proposer */
  uint64_t off = TEAR_HDR;
  out->need = TEAR_HDR;
  while (off + 8 <= len) {
    uint32_t plen, crc;
    memcpy(&plen, buf + off, 4);
    memcpy(&crc, buf + off + 4, 4);
    /* A tail that does not check out was torn before we came (a write cut by the kill): it holds
     * nothing acknowledged, since a sync comes after the whole write. */
    if (plen < 8 || (uint64_t)plen > len - off - 8 || ib_crc32(0, buf + off + 8, plen) != crc) break;
    uint32_t table, n;
    memcpy(&table, buf + off + 8, 4);
    memcpy(&n, buf + off + 12, 4);
    if ((uint64_t)plen != 8 + (uint64_t)n * ib)
      return ib_fail(IB_EPROTO, "--crash-tear: %s: the record at byte %llu has a valid CRC but %u items of table %u "
                     "do not fill its %u bytes (items of %llu bytes for obs %u act %u) HINT: the log format changed; "
                     "update soak_tear.c from persist.c's opening comment", out->path, (unsigned long long)off, n,
                     table, plen, (unsigned long long)ib, obs, act);
    const uint8_t *item = buf + off + 16;
    int holds_acked = 0;
    for (uint32_t i = 0; i < n; i++, item += ib) {
      uint32_t id;
      uint64_t seq;
      memcpy(&id, item + id_at, 4);
      memcpy(&seq, item + id_at + 4, 8);
      int a = tear_slot(ack, id);
      if (a < 0) continue;
      tear_actor *t = &ta[a];
      if (!t->present || seq < t->lo) t->lo = seq;
      t->present = 1;
      if (seq < t->acked) t->below++;
      if (seq < t->maybe) holds_acked = 1;
    }
    if (out->records == *cap) {
      *cap = *cap ? 2 * *cap : 1024;
      *rec_end = ib_xrealloc(*rec_end, *cap * sizeof **rec_end);
      *rec_rows = ib_xrealloc(*rec_rows, *cap * sizeof **rec_rows);
    }
    off += 8 + plen;
    (*rec_end)[out->records] = off;
    (*rec_rows)[out->records] = n;
    out->records++;
    out->rows += n;
    if (holds_acked) out->need = off;
  }
  out->valid_end = off;
  return IB_OK;
}

/* Prints and counts the acknowledged rows of actors present in the log that it does not hold. */
static void tear_missing(soak_tear *out, const tear_actor *ta, const soak_tear_acked *ack) {
  for (int a = 0; a <= ack->n_actors; a++) {
    const tear_actor *t = &ta[a];
    if (!t->present || t->acked <= t->lo) continue;
    uint64_t want = t->acked - t->lo;
    if (t->below >= want) continue;
    out->missing += want - t->below;
    if (out->actors_missing++ < 4)
      fprintf(stderr, "soak: --crash-tear: %s: actor %u has seqs [0, %llu) acknowledged and its rows here start at "
              "seq %llu, but the log holds only %llu of the %llu acknowledged rows from there: %llu acknowledged rows "
              "are not in the log at all (before any tear) HINT: an insert was acknowledged before it was logged "
              "and synced\n", out->path, a < ack->n_actors ? (unsigned)a : ack->demo_actor,
              (unsigned long long)t->acked, (unsigned long long)t->lo, (unsigned long long)t->below,
              (unsigned long long)want, (unsigned long long)(want - t->below));
  }
}

/* Cuts the file at out->cut, with out->garbage bytes of garbage (from buf, already filled) after it. */
static int tear_apply(soak_tear *out, const uint8_t *garbage) {
  int fd = open(out->path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ib_fail(IB_EIO, "--crash-tear: open %s for writing: %s", out->path, strerror(errno));
  int ok = 1;
  for (uint64_t done = 0; ok && done < out->garbage;) {
    ssize_t k = pwrite(fd, garbage + done, out->garbage - done, (off_t)(out->cut + done));
    ok = k > 0;
    if (ok) done += (uint64_t)k;
  }
  ok = ok && ftruncate(fd, (off_t)(out->cut + out->garbage)) == 0 && fsync(fd) == 0;
  int e = errno;
  close(fd);
  if (!ok) return ib_fail(IB_EIO, "--crash-tear: cutting %s at byte %llu: %s HINT: disk full?", out->path,
                          (unsigned long long)out->cut, strerror(e));
  return IB_OK;
}

int soak_tear_log(soak_tear *out, const char *dir, const soak_tear_acked *ack, rng *r) {
  memset(out, 0, sizeof *out);
  int rc = tear_newest(dir, out->path);
  if (rc != IB_OK) return rc;
  uint8_t *buf = NULL;
  rc = tear_read(out->path, &buf, &out->len);
  if (rc != IB_OK) return rc;
  uint32_t hcrc = 0, obs = 0, act = 0;
  if (out->len >= TEAR_HDR) {
    memcpy(&obs, buf + 28, 4);
    memcpy(&act, buf + 32, 4);
    memcpy(&hcrc, buf + 36, 4);
  }
  if (out->len < TEAR_HDR || memcmp(buf, "IBRLWAL1", 8) != 0 || hcrc != ib_crc32(0, buf, 36) || obs == 0 ||
      obs > 4096 || act > 4096) {
    free(buf);
    return ib_fail(IB_EPROTO, "--crash-tear: %s (%llu bytes) does not start with a valid 44-byte log header HINT: "
                   "the log format changed, or the file is damaged", out->path, (unsigned long long)out->len);
  }
  tear_actor *ta = ib_xcalloc((size_t)ack->n_actors + 1, sizeof *ta);
  for (int a = 0; a < ack->n_actors; a++) ta[a].acked = ack->acked[a], ta[a].maybe = ack->maybe[a];
  ta[ack->n_actors].acked = ta[ack->n_actors].maybe = ack->demo_rows;
  uint64_t *rec_end = NULL, cap = 0;
  uint32_t *rec_rows = NULL;
  rc = tear_walk(out, buf, out->len, obs, act, ta, ack, &rec_end, &rec_rows, &cap);
  if (rc == IB_OK) {
    tear_missing(out, ta, ack);
    /* The cut: anywhere from the prefix to the end, the end included (a crash that lost nothing). */
    uint64_t span = out->len - out->need;
    out->cut = out->need + (span > 0 ? rng_below(r, (uint32_t)span + 1) : 0);
    if (out->cut < out->len && rng_below(r, 2) == 1) {
      out->garbage = 1 + rng_below(r, (uint32_t)(out->len - out->cut));
      out->garbage_zero = rng_below(r, 2) == 1;
      uint8_t *g = buf + out->cut; /* the tail's own bytes are overwritten in memory, then written back */
      for (uint64_t i = 0; i < out->garbage; i++) g[i] = out->garbage_zero ? 0 : (uint8_t)rng_u64(r);
    }
    out->len_after = out->cut + out->garbage;
    /* What a restore keeps, walked on the torn image itself: usually the whole records before the
     * cut, but garbage that happens to equal the bytes it overwrote (zeros over a record's zero flag
     * bytes) leaves that record whole, and a restore rightly keeps it. */
    out->valid_end = tear_valid_end(buf, out->len_after);
    for (uint64_t i = 0; i < out->records; i++)
      if (rec_end[i] > out->valid_end) out->rows_cut += rec_rows[i];
    rc = tear_apply(out, buf + out->cut);
  }
  free(rec_end);
  free(rec_rows);
  free(ta);
  free(buf);
  return rc;
}
