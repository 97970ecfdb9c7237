/* persist_ckpt.c: the checkpoint file of a replay store: its buffered writer and reader, table
 * headers and actor entries, the writer that a forked child runs, and the reader with its CRC
 * check (the format and how a checkpoint is taken are at the top of persist.c). */
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

/* ---- buffered writer and reader ---- */

/* A buffered writer on a file descriptor that keeps a running CRC. It only uses write(), memcpy
 * and ib_crc32 on a buffer allocated beforehand, so it is safe in a forked child of a
 * multithreaded process. `err` keeps the first errno. With fd -1 it only counts the bytes. */
typedef struct wr {
  int fd;
  uint8_t *buf;
  size_t len;
  uint32_t crc;
  uint64_t bytes;
  int err;
} wr;

static void wr_flush(wr *w) {
  if (!w->err && w->len > 0 && persist__write_all(w->fd, w->buf, w->len) != 0) w->err = errno ? errno : EIO;
  w->len = 0;
}

static void wr_put(wr *w, const void *p, size_t n) {
  if (w->err || n == 0) return;
  if (w->fd < 0) { /* a counting writer: only the size (persist__ckpt_image_bytes) */
    w->bytes += n;
    return;
  }
  w->crc = ib_crc32(w->crc, p, n);
  w->bytes += n;
  if (n >= WBUF_BYTES) { /* large arrays go straight to the file */
    wr_flush(w);
    if (!w->err && persist__write_all(w->fd, p, n) != 0) w->err = errno ? errno : EIO;
    return;
  }
  const uint8_t *b = p;
  while (n > 0) {
    size_t k = IB_MIN(n, (size_t)WBUF_BYTES - w->len);
    memcpy(w->buf + w->len, b, k);
    w->len += k;
    b += k;
    n -= k;
    if (w->len == WBUF_BYTES) wr_flush(w);
  }
}
static void wr_u32(wr *w, uint32_t v) { wr_put(w, &v, 4); }
static void wr_u64(wr *w, uint64_t v) { wr_put(w, &v, 8); }

/* A reader over a whole file in memory would double the footprint of a large store; this one
 * reads through stdio and reports short reads as a format error. */
typedef struct rd {
  FILE *f;
  const char *path;
  int err; /* 0 or an IB_E* already recorded with ib_fail */
} rd;

static void rd_get(rd *r, void *p, size_t n, const char *what) {
  if (r->err || n == 0) return;
  if (fread(p, 1, n, r->f) != n)
    r->err = ib_fail(IB_EPROTO,
                     "checkpoint '%s' ends early while reading %s (HINT: the file is "
                     "truncated; restore an older copy or start empty)",
                     r->path, what);
}
static uint32_t rd_u32(rd *r, const char *what) {
  uint32_t v = 0;
  rd_get(r, &v, 4, what);
  return v;
}
static uint64_t rd_u64(rd *r, const char *what) {
  uint64_t v = 0;
  rd_get(r, &v, 8, what);
  return v;
}

/* ---- checkpoint: table header ---- */

typedef struct thdr {
  store_spec spec;
  uint32_t stride;
  uint64_t head, size, total_inserts, total_evicted, duplicates, rejected, episodes, successes;
  uint64_t wv_min, wv_max, wv_last, total_samples;
  uint32_t nactors;
} thdr;

static void thdr_write(wr *w, const store__table *tb, uint64_t total_samples) {
  wr_put(w, tb->spec.name, STORE_NAME_MAX);
  wr_u32(w, (uint32_t)tb->spec.obs_dim);
  wr_u32(w, (uint32_t)tb->spec.act_dim);
  wr_u64(w, tb->spec.capacity);
  wr_u32(w, (uint32_t)tb->spec.kind);
  wr_u32(w, tb->stride);
  uint64_t v[] = {tb->head,          tb->size,       tb->total_inserts,
                  tb->total_evicted, tb->duplicates, tb->rejected_batches,
                  tb->episodes,      tb->successes,  tb->wv_min,
                  tb->wv_max,        tb->wv_last,    total_samples};
  for (size_t i = 0; i < IB_ARRAY_LEN(v); i++) wr_u64(w, v[i]);
  wr_u32(w, tb->nactors);
  wr_u32(w, 0);
}

static void thdr_read(rd *r, thdr *h) {
  memset(h, 0, sizeof *h);
  rd_get(r, h->spec.name, STORE_NAME_MAX, "a table name");
  h->spec.name[STORE_NAME_MAX - 1] = 0;
  h->spec.obs_dim = (int)rd_u32(r, "obs_dim");
  h->spec.act_dim = (int)rd_u32(r, "act_dim");
  h->spec.capacity = rd_u64(r, "capacity");
  h->spec.kind = (store_kind)rd_u32(r, "kind");
  h->stride = rd_u32(r, "stride");
  uint64_t *v[] = {&h->head,       &h->size,     &h->total_inserts, &h->total_evicted,
                   &h->duplicates, &h->rejected, &h->episodes,      &h->successes,
                   &h->wv_min,     &h->wv_max,   &h->wv_last,       &h->total_samples};
  for (size_t i = 0; i < IB_ARRAY_LEN(v); i++) *v[i] = rd_u64(r, "table counters");
  h->nactors = rd_u32(r, "nactors");
  (void)rd_u32(r, "padding");
}

static void actor_write(wr *w, const store__actor *a) {
  wr_u32(w, a->id);
  wr_u32(w, a->has_seq);
  wr_u64(w, a->high);
  wr_put(w, a->win, sizeof a->win);
  wr_u64(w, a->inserts);
  wr_u64(w, a->duplicates);
  wr_u64(w, a->last_wv);
  wr_u64(w, a->episodes);
  wr_u32(w, a->success_bits);
  wr_u32(w, 0);
}

static void actor_read(rd *r, store__actor *a, uint32_t version) {
  memset(a, 0, sizeof *a);
  a->id = rd_u32(r, "an actor id");
  a->has_seq = (uint8_t)(rd_u32(r, "an actor entry") != 0);
  a->high = rd_u64(r, "an actor entry");
  if (version == 1) {
    _Static_assert(FMT_V1_WIN_WORDS <= STORE__WIN_WORDS, "the window only grew");
    rd_get(r, a->win, FMT_V1_WIN_WORDS * sizeof a->win[0], "an actor window");
    if (a->has_seq)
      for (unsigned w = FMT_V1_WIN_WORDS; w < STORE__WIN_WORDS; w++) a->win[w] = ~0ull;
  } else {
    rd_get(r, a->win, sizeof a->win, "an actor window");
  }
  a->inserts = rd_u64(r, "an actor entry");
  a->duplicates = rd_u64(r, "an actor entry");
  a->last_wv = rd_u64(r, "an actor entry");
  a->episodes = rd_u64(r, "an actor entry");
  a->success_bits = rd_u32(r, "an actor entry");
  (void)rd_u32(r, "padding");
}

/* ---- checkpoint: write ---- */

const char *persist__ck_step_name(int step) {
  static const char *names[] = {"ok",    "create", "reserve space for", "write", "fsync",
                                "close", "rename", "fsync directory of"};
  return step >= 0 && step < (int)IB_ARRAY_LEN(names) ? names[step] : "write";
}


/* Bytes of one actor entry in a checkpoint. */
static uint64_t actor_entry_bytes(void) {
  wr w = {-1, NULL, 0, 0, 0, 0};
  store__actor one = {0};
  actor_write(&w, &one);
  return w.bytes;
}

/* Emits checkpoint `epoch` of the store through w, up to and with the footer (w->fd -1: counts
 * its bytes, without walking the actor slots: one entry per used slot, nactors of them).
 * `samples` are the tables' total_samples at the cut. */
static void ckpt_emit(wr *w, const store *s, uint64_t epoch, const uint64_t *samples) {
  wr_put(w, CKPT_MAGIC, 8);
  wr_u32(w, FMT_VERSION);
  wr_u32(w, ENDIAN_WORD);
  wr_u32(w, (uint32_t)s->ntables);
  wr_u32(w, 0);
  wr_u64(w, epoch);
  for (int t = 0; t < s->ntables; t++) thdr_write(w, &s->tables[t], samples[t]);
  for (int t = 0; t < s->ntables; t++) {
    const store__table *tb = &s->tables[t];
    if (w->fd < 0)
      w->bytes += (uint64_t)tb->nactors * actor_entry_bytes();
    else
      for (uint32_t i = 0; i < tb->actor_cap; i++)
        if (tb->actors[i].used) actor_write(w, &tb->actors[i]);
    wr_put(w, tb->rec, (size_t)tb->size * tb->stride * sizeof(float));
    wr_put(w, tb->proposer, (size_t)tb->size);
    wr_put(w, tb->flags, (size_t)tb->size);
    wr_put(w, tb->actor_id, (size_t)tb->size * sizeof(uint32_t));
    wr_put(w, tb->seq, (size_t)tb->size * sizeof(uint64_t));
    wr_put(w, tb->wv, (size_t)tb->size * sizeof(uint64_t));
  }
  uint32_t crc = w->crc;
  wr_u32(w, crc);
  wr_put(w, CKPT_END, 8);
}

uint64_t persist__ckpt_image_bytes(const store *s, bool full) {
  uint64_t samples[STORE_MAX_TABLES] = {0};
  wr w = {-1, NULL, 0, 0, 0, 0};
  ckpt_emit(&w, s, 0, samples);
  if (full)
    for (int t = 0; t < s->ntables; t++) {
      const store__table *tb = &s->tables[t];
      uint64_t row = (uint64_t)tb->stride * sizeof(float) + 1 + 1 + 4 + 8 + 8;
      w.bytes += (tb->spec.capacity - tb->size) * row;
      w.bytes += (uint64_t)(IB_MAX(tb->max_actors, tb->nactors) - tb->nactors) * actor_entry_bytes();
    }
  return w.bytes;
}

ck_result persist__ckpt_write_image(persist *p, uint64_t epoch, const uint64_t *samples) {
  ck_result res = {CK_OK, 0, 0};
  store *s = p->s;
  int fd = open(p->ckpt_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return (ck_result){CK_CREATE, errno, 0};
  uint64_t need = persist__ckpt_image_bytes(s, false);
  int64_t room = persist__dir_free_bytes(p->dir);
  int no_room = room >= 0 && (uint64_t)room < need ? ENOSPC : 0;
  if (!no_room && fallocate(fd, 0, 0, (off_t)need) != 0 && (errno == ENOSPC || errno == EDQUOT))
    no_room = errno;
  if (no_room) {
    res = (ck_result){CK_RESERVE, no_room, need};
    close(fd);
    unlink(p->ckpt_tmp);
    return res;
  }
  wr w = {fd, p->wbuf, 0, 0, 0, 0};
  ckpt_emit(&w, s, epoch, samples);
  wr_flush(&w);
  res.bytes = w.bytes;
  if (w.err)
    res = (ck_result){CK_WRITE, w.err, 0};
  else if (w.bytes != need && ftruncate(fd, (off_t)w.bytes) != 0) /* never: the same walk */
    res = (ck_result){CK_WRITE, errno, 0};
  else if (fsync(fd) != 0)
    res = (ck_result){CK_FSYNC, errno, 0};
  if (close(fd) != 0 && res.step == CK_OK) res = (ck_result){CK_CLOSE, errno, 0};
  if (res.step == CK_OK && rename(p->ckpt_tmp, p->ckpt_path) != 0)
    res = (ck_result){CK_RENAME, errno, 0};
  if (res.step != CK_OK) {
    unlink(p->ckpt_tmp);
    return res;
  }
  int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) res = (ck_result){CK_DIRSYNC, errno, res.bytes};
  if (dfd >= 0) close(dfd);
  return res;
}

/* ---- checkpoint: read ---- */

/* Streams the file once: checks the length, the CRC and the end magic. */
static int ckpt_verify(const char *path, FILE *f, uint64_t *file_bytes) {
  if (fseek(f, 0, SEEK_END) != 0) return persist__io_fail("seek checkpoint", path);
  long len = ftell(f);
  if (len < 0) return persist__io_fail("tell checkpoint", path);
  *file_bytes = (uint64_t)len;
  const long hdr = 8 + 4 * 4 + 8, foot = 4 + 8;
  if (len < hdr + foot)
    return ib_fail(IB_EPROTO,
                   "checkpoint '%s' is %ld bytes, too short to be a checkpoint (HINT: it "
                   "was truncated; move it away to start empty)",
                   path, len);
  rewind(f);
  uint8_t *buf = ib_xmalloc(1 << 20);
  uint32_t crc = 0;
  long left = len - foot;
  while (left > 0) {
    size_t want = (size_t)IB_MIN(left, 1L << 20);
    if (fread(buf, 1, want, f) != want) {
      free(buf);
      return persist__io_fail("read checkpoint", path);
    }
    crc = ib_crc32(crc, buf, want);
    left -= (long)want;
  }
  uint32_t stored = 0;
  char end[8];
  int ok = fread(&stored, 4, 1, f) == 1 && fread(end, 8, 1, f) == 1;
  free(buf);
  if (!ok) return persist__io_fail("read checkpoint footer of", path);
  if (memcmp(end, CKPT_END, 8) != 0)
    return ib_fail(IB_EPROTO,
                   "checkpoint '%s' has no end marker (HINT: it was truncated or is not a "
                   "checkpoint; move it away to start empty)",
                   path);
  if (stored != crc)
    return ib_fail(IB_ECHECKSUM,
                   "checkpoint '%s' CRC-32 is 0x%08x but the content gives 0x%08x (HINT: "
                   "the file is corrupted; restore an older copy or move it away to start empty)",
                   path, stored, crc);
  rewind(f);
  return IB_OK;
}

static int ckpt_header(rd *r, uint32_t *ntables, uint64_t *epoch, uint32_t *version_out) {
  char magic[8];
  rd_get(r, magic, 8, "the magic");
  if (r->err) return r->err;
  if (memcmp(magic, CKPT_MAGIC, 8) != 0)
    return ib_fail(IB_EPROTO,
                   "'%s' is not a replay checkpoint (bad magic) (HINT: wrong file or "
                   "directory)",
                   r->path);
  uint32_t version = rd_u32(r, "the version");
  uint32_t endian = rd_u32(r, "the endian word");
  *ntables = rd_u32(r, "the table count");
  (void)rd_u32(r, "padding");
  *epoch = rd_u64(r, "the epoch");
  if (r->err) return r->err;
  if (version != 1 && version != FMT_VERSION)
    return ib_fail(IB_EMISMATCH,
                   "checkpoint '%s' has format version %u, this build reads 1 and %u (HINT: "
                   "restore with the matching ibrl version)",
                   r->path, version, FMT_VERSION);
  *version_out = version;
  if (endian != ENDIAN_WORD)
    return ib_fail(IB_EMISMATCH, "checkpoint '%s' was written on a machine of another byte order (HINT: "
                   "restore it on a machine like the one that wrote it, or start without it)", r->path);
  if (*ntables < 1 || *ntables > STORE_MAX_TABLES)
    return ib_fail(IB_EPROTO, "checkpoint '%s' claims %u tables, not 1 to %d (HINT: the file is corrupted; "
                   "restore an older copy or move it away to start empty)", r->path, *ntables, STORE_MAX_TABLES);
  return IB_OK;
}

static int spec_compare(const char *path, int t, const thdr *h, const store__table *tb) {
  const store_spec *a = &h->spec, *b = &tb->spec;
  const char *what = NULL;
  long long va = 0, vb = 0;
  if (strcmp(a->name, b->name) != 0) {
    return ib_fail(IB_EMISMATCH,
                   "checkpoint '%s' table %d is named '%s', this store's is '%s' (HINT: "
                   "start with the same table specs, or move the checkpoint away to start empty)",
                   path, t, a->name, b->name);
  } else if (a->kind != b->kind) {
    what = "kind", va = a->kind, vb = b->kind;
  } else if (a->obs_dim != b->obs_dim) {
    what = "obs_dim", va = a->obs_dim, vb = b->obs_dim;
  } else if (a->act_dim != b->act_dim) {
    what = "act_dim", va = a->act_dim, vb = b->act_dim;
  } else if (a->capacity != b->capacity) {
    what = "capacity", va = (long long)a->capacity, vb = (long long)b->capacity;
  } else if (h->stride != tb->stride) {
    what = "record stride", va = h->stride, vb = tb->stride;
  }
  if (what)
    return ib_fail(
        IB_EMISMATCH,
        "checkpoint '%s' table '%s': %s is %lld in the checkpoint but %lld in "
        "this store (HINT: start with the same table specs, or move the checkpoint away to "
        "start empty)",
        path, a->name, what, va, vb);
  /* Slots [0, size) are filled and the ring writes at head (store_impl.h), so a partly filled table
   * has head == size. */
  bool ring_ok = h->size <= a->capacity && h->head < a->capacity &&
                 (h->size == a->capacity || h->head == h->size);
  if (!ring_ok || h->nactors > tb->max_actors)
    return ib_fail(
        h->nactors > tb->max_actors ? IB_EMISMATCH : IB_EPROTO,
        "checkpoint '%s' table '%s': size %llu, head %llu or actors %u do not fit capacity %llu "
        "/ max_actors %u (HINT: raise max_actors, or the file is damaged)",
        path, a->name, (unsigned long long)h->size, (unsigned long long)h->head, h->nactors,
        (unsigned long long)a->capacity, tb->max_actors);
  return IB_OK;
}

void persist__tables_clear(store *s) {
  for (int t = 0; t < s->ntables; t++) {
    store__table *tb = &s->tables[t];
    tb->head = tb->size = 0;
    tb->total_inserts = tb->total_evicted = tb->duplicates = tb->rejected_batches = 0;
    tb->episodes = tb->successes = tb->wv_min = tb->wv_max = tb->wv_last = 0;
    memset(tb->actors, 0, (size_t)tb->actor_cap * sizeof *tb->actors);
    tb->nactors = 0;
    pthread_mutex_lock(&tb->stat_mu);
    tb->total_samples = 0;
    pthread_mutex_unlock(&tb->stat_mu);
  }
}

int persist__ckpt_load(persist *p, uint64_t *epoch, uint64_t *items) {
  store *s = p->s;
  FILE *f = fopen(p->ckpt_path, "rb");
  if (!f) {
    if (errno == ENOENT) return IB_ENOTFOUND;
    return persist__io_fail("open checkpoint", p->ckpt_path);
  }
  uint64_t file_bytes = 0;
  int rc = ckpt_verify(p->ckpt_path, f, &file_bytes);
  if (rc) {
    fclose(f);
    return rc;
  }
  rd r = {f, p->ckpt_path, 0};
  uint32_t nt = 0, version = 0;
  rc = ckpt_header(&r, &nt, epoch, &version);
  if (rc) {
    fclose(f);
    return rc;
  }
  if ((int)nt != s->ntables) {
    fclose(f);
    return ib_fail(IB_EMISMATCH,
                   "checkpoint '%s' holds %u tables, this store has %d (HINT: start with "
                   "the same table specs, or move the checkpoint away to start empty)",
                   p->ckpt_path, nt, s->ntables);
  }
  thdr h[STORE_MAX_TABLES];
  for (int t = 0; t < s->ntables; t++) thdr_read(&r, &h[t]);
  if (r.err) {
    fclose(f);
    return r.err;
  }
  for (int t = 0; t < s->ntables; t++) {
    if ((rc = spec_compare(p->ckpt_path, t, &h[t], &s->tables[t]))) {
      fclose(f);
      return rc;
    }
  }
  store__lock_all(s);
  *items = 0;
  for (int t = 0; t < s->ntables && !r.err; t++) {
    store__table *tb = &s->tables[t];
    for (uint32_t k = 0; k < h[t].nactors && !r.err; k++) {
      store__actor a;
      actor_read(&r, &a, version);
      store__actor *dst = store__actor_find(tb, a.id, false);
      if (dst) {
        r.err = ib_fail(IB_EPROTO, "checkpoint '%s' table '%s' lists actor %u twice (HINT: the file is "
                        "corrupted; restore an older copy or move it away to start empty)", p->ckpt_path, tb->spec.name,
                        a.id);
        break;
      }
      dst = store__actor_find(tb, a.id, true);
      IB_CHECK(dst != NULL); /* nactors <= max_actors was checked */
      *dst = a;
      dst->used = 1;
    }
    size_t sz = (size_t)h[t].size;
    rd_get(&r, tb->rec, sz * tb->stride * sizeof(float), "the records");
    /* Rows were checked when they were inserted, so a NaN here is damage the CRC did not catch (a
     * file rewritten with a fresh CRC): refuse it rather than hand it to a learner. */
    size_t data = 2 * (size_t)tb->spec.obs_dim + (size_t)tb->spec.act_dim + 2; /* floats before the pad */
    for (size_t k = 0; k < sz && !r.err; k++)
      if (ib_first_nonfinite(tb->rec + k * tb->stride, data) >= 0)
        r.err = ib_fail(IB_EPROTO, "checkpoint '%s' table '%s' row %zu holds a NaN or Inf (HINT: the file is "
                        "corrupted; restore an older copy or move it away to start empty)", p->ckpt_path,
                        tb->spec.name, k);
    rd_get(&r, tb->proposer, sz, "the proposers");
    rd_get(&r, tb->flags, sz, "the flags");
    rd_get(&r, tb->actor_id, sz * sizeof(uint32_t), "the actor ids");
    rd_get(&r, tb->seq, sz * sizeof(uint64_t), "the seqs");
    rd_get(&r, tb->wv, sz * sizeof(uint64_t), "the weight versions");
    tb->head = h[t].head;
    tb->size = h[t].size;
    if (!r.err) store__meta_rebuild(tb); /* the arrays are the truth; older checkpoints have zero pads */
    tb->total_inserts = h[t].total_inserts;
    tb->total_evicted = h[t].total_evicted;
    tb->duplicates = h[t].duplicates;
    tb->rejected_batches = h[t].rejected;
    tb->episodes = h[t].episodes;
    tb->successes = h[t].successes;
    tb->wv_min = h[t].wv_min;
    tb->wv_max = h[t].wv_max;
    tb->wv_last = h[t].wv_last;
    pthread_mutex_lock(&tb->stat_mu);
    tb->total_samples = h[t].total_samples;
    pthread_mutex_unlock(&tb->stat_mu);
    *items += tb->size;
  }
  rc = r.err;
  if (rc) persist__tables_clear(s);
  store__unlock_all(s);
  fclose(f);
  return rc;
}

int persist_ckpt_inspect(const char *dir, persist_ckpt_summary *out) {
  IB_CHECK(dir != NULL && out != NULL);
  memset(out, 0, sizeof *out);
  char path[PATH_MAX_LEN + 16];
  snprintf(path, sizeof path, "%s/store.ckpt", dir);
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT)
      return ib_fail(IB_ENOTFOUND,
                     "no checkpoint '%s' (HINT: the server writes one on request, on its "
                     "period and on SIGTERM)",
                     path);
    return persist__io_fail("open checkpoint", path);
  }
  int rc = ckpt_verify(path, f, &out->file_bytes);
  rd r = {f, path, 0};
  uint32_t nt = 0, version = 0;
  if (!rc) rc = ckpt_header(&r, &nt, &out->epoch, &version);
  if (!rc) {
    out->version = version;
    out->ntables = (int)nt;
    for (uint32_t t = 0; t < nt && !r.err; t++) {
      thdr h;
      thdr_read(&r, &h);
      out->specs[t] = h.spec;
      out->sizes[t] = h.size;
      out->total_inserts[t] = h.total_inserts;
    }
    rc = r.err;
  }
  fclose(f);
  return rc;
}
