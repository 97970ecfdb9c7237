/* pcut_fs.c: see pcut_fs.h. The design in short:
 *
 * One struct (pcut_journal) in MAP_SHARED anonymous memory, created before any store, so a forked
 * checkpoint writer shares it; its mutex and condition variable are PTHREAD_PROCESS_SHARED. A
 * lock held by a parent thread at fork() is a lock in shared memory, released by that thread
 * later, so the child never inherits a lock nobody will release.
 *
 * Directory operations (create, rename, unlink, truncation) run the real call while holding the
 * lock, so the journal order is the kernel's order and a frozen journal means a frozen
 * namespace. Flushes (fsync, fdatasync) run outside the lock (they may take long, and run
 * concurrently); their effect is recorded when they return: a file's durable length becomes its
 * length when the flush started, a directory fsync makes durable every operation issued before
 * it started (the pending list is folded into the durable namespace up to that point).
 *
 * A file is tracked by its inode number while it has a name; after it lost its last name (nlink
 * 0) a flush through an fd still open on it is matched among dead files only, so a new file that
 * reuses the number is never mistaken for it. Bytes that a crash could bring back are copied to
 * the shadow directory before they disappear: a whole file before an unlink or a replacing
 * rename, the tail before a truncation. Dead files nobody can name any more are forgotten when a
 * directory fsync folds the pending operations.
 *
 * A failure the test asked for (pcut_fail_rate) is drawn after the gate and the hold, from the
 * same generator as the jitter, under the lock: the call then returns -1 without running, and
 * the journal records nothing but, for a file flush, the cap on the file's durable length.
 *
 * The code that runs in the forked child (every interposed call) uses no malloc and no stdio:
 * syscalls, snprintf into stack buffers and the shared lock only. */
#include "pcut_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ib.h"

typedef struct pcut_gate {
  int armed, waiting, open, when;
  int kind;
  char name[PCUT_NAME];
} pcut_gate;

typedef struct pcut_journal {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int active;
  char dir[256];
  size_t dirlen;
  char shadow[256];
  dev_t dev;
  ino_t dino;
  pcut_ns durable, live;
  uint64_t op_base; /* absolute index of ops[0] */
  int nops;
  pcut_op ops[PCUT_MAX_OPS];
  pcut_file files[PCUT_MAX_FILES];
  uint32_t gen;
  uint64_t events;
  uint64_t per_kind[PCUT_NKINDS];
  int64_t hold_at;
  int held, frozen, done;
  pcut_gate gate[2];
  uint32_t jitter_us;
  uint64_t lcg; /* the jitter's and the failures' generator (shared: the child flushes too) */
  uint32_t fail_n[PCUT_NKINDS]; /* a call of kind k fails with probability 1/fail_n[k] (0: never) */
  int fail_err[PCUT_NKINDS];
  uint64_t failures[PCUT_NKINDS];
  uint32_t lie_n[PCUT_NKINDS]; /* a flush of kind k lies with probability 1/lie_n[k] (0: never) */
  uint64_t lies[PCUT_NKINDS];
  uint32_t hold_fail_kinds; /* the next failure of these kinds sets hold_at (0: none) */
  int64_t hold_fail_ahead;
} pcut_journal;

static pcut_journal *J;

/* ---- raw calls ---- */

static int raw_open(const char *path, int flags, mode_t mode) {
  return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}
static int raw_rename(const char *a, const char *b) {
#ifdef SYS_renameat
  return (int)syscall(SYS_renameat, AT_FDCWD, a, AT_FDCWD, b);
#else
  return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 0);
#endif
}
static int raw_unlink(const char *path) { return (int)syscall(SYS_unlinkat, AT_FDCWD, path, 0); }

/* ---- namespaces ---- */

static int ns_find(const pcut_ns *ns, const char *name) {
  for (int i = 0; i < ns->n; i++)
    if (strcmp(ns->e[i].name, name) == 0) return i;
  return -1;
}
static int ns_fid(const pcut_ns *ns, const char *name) {
  int i = ns_find(ns, name);
  return i < 0 ? -1 : ns->e[i].fid;
}
static void ns_del(pcut_ns *ns, const char *name) {
  int i = ns_find(ns, name);
  if (i >= 0) ns->e[i] = ns->e[--ns->n];
}
static void ns_set(pcut_ns *ns, const char *name, int fid) {
  int i = ns_find(ns, name);
  if (i < 0) {
    IB_CHECK(ns->n < PCUT_MAX_NAMES);
    i = ns->n++;
    snprintf(ns->e[i].name, PCUT_NAME, "%s", name);
  }
  ns->e[i].fid = fid;
}

/* Applies op to ns; false (ns unchanged) if its entry is not there. */
static bool ns_apply(pcut_ns *ns, const pcut_op *op) {
  switch (op->kind) {
  case PCUT_CREATE:
    ns_set(ns, op->name, op->fid);
    return true;
  case PCUT_RENAME:
    if (ns_fid(ns, op->name) != op->fid) return false;
    ns_del(ns, op->name);
    ns_set(ns, op->to, op->fid);
    return true;
  case PCUT_UNLINK:
    if (ns_fid(ns, op->name) != op->fid) return false;
    ns_del(ns, op->name);
    return true;
  default:
    IB_CHECK(false);
    return false;
  }
}

/* ---- files (lock held) ---- */

/* The entry name of `path` if it is directly in the watched directory, else NULL. */
static const char *watched_name(const char *path) {
  if (!J || !J->active || !path) return NULL;
  if (strncmp(path, J->dir, J->dirlen) != 0 || path[J->dirlen] != '/') return NULL;
  const char *nm = path + J->dirlen + 1;
  return (*nm && !strchr(nm, '/') && strlen(nm) < PCUT_NAME) ? nm : NULL;
}

static void shadow_path(int fid, char *out, size_t n) {
  snprintf(out, n, "%s/f%d.%u", J->shadow, fid, J->files[fid].gen);
}

/* Copies bytes [0, n) of `from` to `to` at offset 0 (no truncation of `to`). Returns bytes done. */
static uint64_t copy_bytes(const char *from, uint64_t from_off, int tofd, uint64_t to_off,
                           uint64_t n) {
  int fd = raw_open(from, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return 0;
  char buf[16384];
  uint64_t done = 0;
  while (done < n) {
    size_t want = (size_t)IB_MIN((uint64_t)sizeof buf, n - done);
    ssize_t k = pread(fd, buf, want, (off_t)(from_off + done));
    if (k <= 0) break;
    IB_CHECK(pwrite(tofd, buf, (size_t)k, (off_t)(to_off + done)) == k);
    done += (uint64_t)k;
  }
  close(fd);
  return done;
}

/* Saves the live bytes of fid into its shadow copy (bytes of an older copy past them stay). */
static void shadow_save(int fid) {
  pcut_file *f = &J->files[fid];
  char from[320], to[320];
  snprintf(from, sizeof from, "%s/%s", J->dir, f->live_name);
  shadow_path(fid, to, sizeof to);
  struct stat st;
  uint64_t len = stat(from, &st) == 0 ? (uint64_t)st.st_size : 0;
  int fd = raw_open(to, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "pcut: cannot create the shadow copy '%s' (pid %d, watching %d, event %llu): %s\n", to,
            (int)getpid(), J->active, (unsigned long long)J->events, strerror(errno));
    IB_CHECK(fd >= 0);
  }
  IB_CHECK(copy_bytes(from, 0, fd, 0, len) == len);
  close(fd);
  f->cur_dead = len;
  if (len > f->shadow_len) f->shadow_len = len;
}

static int fid_new(uint64_t ino, const char *name, uint64_t dur) {
  for (int i = 0; i < PCUT_MAX_FILES; i++)
    if (J->files[i].used && J->files[i].ino == ino) J->files[i].ino = 0; /* its number is reused */
  for (int i = 0; i < PCUT_MAX_FILES; i++) {
    pcut_file *f = &J->files[i];
    if (f->used) continue;
    memset(f, 0, sizeof *f);
    f->used = f->live = 1;
    f->ino = ino;
    f->dur = dur;
    f->gen = ++J->gen;
    snprintf(f->live_name, PCUT_NAME, "%s", name);
    return i;
  }
  IB_CHECK(false && "pcut: too many files tracked");
  return -1;
}

/* The tracked file of an open fd's inode: live files by number, or, for an inode without a name
 * (nlink 0), the dead files. -1 if none. */
static int fid_of_stat(const struct stat *st) {
  if (st->st_dev != J->dev || !S_ISREG(st->st_mode)) return -1;
  for (int i = 0; i < PCUT_MAX_FILES; i++) {
    const pcut_file *f = &J->files[i];
    if (f->used && f->ino == (uint64_t)st->st_ino && (f->live ? st->st_nlink > 0 : st->st_nlink == 0))
      return i;
  }
  return -1;
}

static void fid_kill(int fid) {
  J->files[fid].live = 0;
  J->files[fid].live_name[0] = 0;
}

/* Forgets dead files that no namespace can name any more (after a directory fsync). */
static void fid_gc(void) {
  for (int i = 0; i < PCUT_MAX_FILES; i++) {
    pcut_file *f = &J->files[i];
    if (!f->used || f->live) continue;
    bool ref = false;
    for (int k = 0; k < J->durable.n && !ref; k++) ref = J->durable.e[k].fid == i;
    for (int k = 0; k < J->nops && !ref; k++) ref = J->ops[k].fid == i;
    if (ref) continue;
    char p[320];
    shadow_path(i, p, sizeof p);
    raw_unlink(p);
    f->used = 0;
  }
}

static void op_push(int kind, int fid, const char *name, const char *to) {
  IB_CHECK(J->nops < PCUT_MAX_OPS);
  pcut_op *op = &J->ops[J->nops++];
  memset(op, 0, sizeof *op);
  op->kind = kind;
  op->fid = fid;
  snprintf(op->name, PCUT_NAME, "%s", name);
  if (to) snprintf(op->to, PCUT_NAME, "%s", to);
}

/* A directory fsync that started when `start` operations had been issued returned: fold them. */
static void dsync_commit(uint64_t start) {
  if (start <= J->op_base) return;
  int k = (int)(start - J->op_base);
  IB_CHECK(k <= J->nops);
  for (int i = 0; i < k; i++) IB_CHECK(ns_apply(&J->durable, &J->ops[i]));
  memmove(J->ops, J->ops + k, (size_t)(J->nops - k) * sizeof J->ops[0]);
  J->nops -= k;
  J->op_base += (uint64_t)k;
  fid_gc();
}

static bool gate_match(const pcut_gate *g, int kind, const char *name) {
  return g->armed && g->kind == kind && (g->name[0] == 0 || (name && strstr(name, g->name)));
}

/* Counts an event and passes the freeze, a gate and a hold (lock held throughout, released only
 * inside the waits). */
static void gate_pass(int kind, const char *name, int when) {
  for (int g = 0; g < 2; g++) {
    pcut_gate *gt = &J->gate[g];
    if (gt->when != when || !gate_match(gt, kind, name)) continue;
    gt->armed = 0;
    gt->waiting = 1;
    pthread_cond_broadcast(&J->cv);
    while (!gt->open) pthread_cond_wait(&J->cv, &J->mu);
    gt->waiting = 0;
  }
}

static void ev_begin(int kind, const char *name) {
  while (J->frozen) pthread_cond_wait(&J->cv, &J->mu);
  uint64_t n = J->events++;
  J->per_kind[kind]++;
  gate_pass(kind, name, PCUT_GATE_BEFORE_HOLD);
  if ((int64_t)n == J->hold_at) {
    J->held = 1;
    J->frozen = 1;
    pthread_cond_broadcast(&J->cv);
    while (J->held) pthread_cond_wait(&J->cv, &J->mu);
  }
  gate_pass(kind, name, PCUT_GATE_AFTER_HOLD);
  while (J->frozen) pthread_cond_wait(&J->cv, &J->mu);
}

/* Whether this call of `kind` is made to fail (lock held): its errno, or 0. */
static int fail_draw(int kind) {
  uint32_t n = J->fail_n[kind];
  if (n == 0) return 0;
  J->lcg = J->lcg * 6364136223846793005ull + 1442695040888963407ull;
  if ((J->lcg >> 33) % n != 0) return 0;
  J->failures[kind]++;
  if (J->hold_fail_kinds & PCUT_KIND(kind)) { /* J->events is the next event's number */
    J->hold_at = (int64_t)J->events + J->hold_fail_ahead;
    J->hold_fail_kinds = 0;
  }
  return J->fail_err[kind];
}

/* Whether a flush of `kind` (PCUT_FSYNC, PCUT_DSYNC) that did not fail lies: returns 0 and makes
 * nothing durable (mu held). */
static bool lie_draw(int kind) {
  uint32_t n = J->lie_n[kind];
  if (n == 0) return false;
  J->lcg = J->lcg * 6364136223846793005ull + 1442695040888963407ull;
  if ((J->lcg >> 33) % n != 0) return false;
  J->lies[kind]++;
  return true;
}

/* ---- the interposed calls ---- */

int open(const char *path, int flags, ...) {
  mode_t mode = 0;
  if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  const char *nm = (flags & O_CREAT) ? watched_name(path) : NULL;
  if (!nm) return raw_open(path, flags, mode);
  pthread_mutex_lock(&J->mu);
  ev_begin(PCUT_CREATE, nm);
  int fe = fail_draw(PCUT_CREATE);
  int old = ns_fid(&J->live, nm);
  if (!fe && old >= 0 && (flags & O_TRUNC)) shadow_save(old);
  int fd = fe ? -1 : raw_open(path, flags, mode);
  if (fd >= 0) {
    struct stat st;
    IB_CHECK(fstat(fd, &st) == 0);
    if (old < 0 && S_ISREG(st.st_mode)) {
      int fid = fid_new((uint64_t)st.st_ino, nm, 0);
      ns_set(&J->live, nm, fid);
      op_push(PCUT_CREATE, fid, nm, NULL);
    } else if (old >= 0 && (flags & O_TRUNC)) {
      if (J->files[old].dur > 0) J->files[old].shrunk = 1;
      J->files[old].capped = 0; /* the pages a failed flush dropped are gone with its bytes */
    }
  }
  int e = fe ? fe : errno;
  gate_pass(PCUT_CREATE, nm, PCUT_GATE_AFTER_CALL);
  pthread_mutex_unlock(&J->mu);
  errno = e;
  return fd;
}

int rename(const char *a, const char *b) {
  const char *na = watched_name(a), *nb = watched_name(b);
  if (!na || !nb) return raw_rename(a, b);
  pthread_mutex_lock(&J->mu);
  ev_begin(PCUT_RENAME, nb);
  int fe = fail_draw(PCUT_RENAME);
  int fa = ns_fid(&J->live, na), fb = ns_fid(&J->live, nb);
  if (!fe && fb >= 0 && fb != fa) shadow_save(fb);
  int rc = fe ? -1 : raw_rename(a, b);
  int e = fe ? fe : errno;
  if (rc == 0 && fa >= 0 && fa != fb) {
    if (fb >= 0) fid_kill(fb);
    ns_del(&J->live, na);
    ns_set(&J->live, nb, fa);
    snprintf(J->files[fa].live_name, PCUT_NAME, "%s", nb);
    op_push(PCUT_RENAME, fa, na, nb);
  }
  gate_pass(PCUT_RENAME, nb, PCUT_GATE_AFTER_CALL);
  pthread_mutex_unlock(&J->mu);
  errno = e;
  return rc;
}

int unlink(const char *path) {
  const char *nm = watched_name(path);
  if (!nm) return raw_unlink(path);
  pthread_mutex_lock(&J->mu);
  ev_begin(PCUT_UNLINK, nm);
  int fe = fail_draw(PCUT_UNLINK);
  int fid = ns_fid(&J->live, nm);
  if (!fe && fid >= 0) shadow_save(fid);
  int rc = fe ? -1 : raw_unlink(path);
  int e = fe ? fe : errno;
  if (rc == 0 && fid >= 0) {
    fid_kill(fid);
    ns_del(&J->live, nm);
    op_push(PCUT_UNLINK, fid, nm, NULL);
  }
  gate_pass(PCUT_UNLINK, nm, PCUT_GATE_AFTER_CALL);
  pthread_mutex_unlock(&J->mu);
  errno = e;
  return rc;
}

int ftruncate(int fd, off_t len) {
  struct stat st;
  if (!J || !J->active || fstat(fd, &st) != 0) return (int)syscall(SYS_ftruncate, fd, len);
  pthread_mutex_lock(&J->mu);
  int fid = fid_of_stat(&st);
  if (fid < 0) {
    pthread_mutex_unlock(&J->mu);
    return (int)syscall(SYS_ftruncate, fd, len);
  }
  uint32_t gen = J->files[fid].gen;
  ev_begin(PCUT_TRUNC, J->files[fid].live_name);
  int fe = fail_draw(PCUT_TRUNC);
  IB_CHECK(fstat(fd, &st) == 0);
  if (!fe && (uint64_t)len < (uint64_t)st.st_size && J->files[fid].used &&
      J->files[fid].gen == gen && J->files[fid].live) {
    shadow_save(fid);
    if (J->files[fid].dur > (uint64_t)len) J->files[fid].shrunk = 1;
    if (J->files[fid].capped && J->files[fid].cap >= (uint64_t)len) J->files[fid].capped = 0;
  }
  int rc = fe ? -1 : (int)syscall(SYS_ftruncate, fd, len);
  int e = fe ? fe : errno;
  pthread_mutex_unlock(&J->mu);
  errno = e;
  return rc;
}

static int sync_common(int fd, long nr) {
  struct stat st;
  if (!J || !J->active || fstat(fd, &st) != 0) return (int)syscall(nr, fd);
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != J->dev || st.st_ino != J->dino) return (int)syscall(nr, fd);
    pthread_mutex_lock(&J->mu);
    ev_begin(PCUT_DSYNC, "");
    int fe = fail_draw(PCUT_DSYNC); /* nothing committed: the operations stay pending */
    bool lie = !fe && lie_draw(PCUT_DSYNC); /* the same, and it returns 0 */
    uint64_t start = J->op_base + (uint64_t)J->nops;
    pthread_mutex_unlock(&J->mu);
    int rc = fe ? -1 : (int)syscall(nr, fd);
    int e = fe ? fe : errno;
    pthread_mutex_lock(&J->mu);
    if (rc == 0 && !lie) dsync_commit(start);
    gate_pass(PCUT_DSYNC, "", PCUT_GATE_AFTER_CALL);
    pthread_mutex_unlock(&J->mu);
    errno = e;
    return rc;
  }
  pthread_mutex_lock(&J->mu);
  int fid = fid_of_stat(&st);
  if (fid < 0) {
    pthread_mutex_unlock(&J->mu);
    return (int)syscall(nr, fd);
  }
  uint32_t gen = J->files[fid].gen; /* the slot may be reused while the caller waits below */
  ev_begin(PCUT_FSYNC, J->files[fid].live_name);
  /* The length when the flush starts (after any gate): what it must make durable. */
  IB_CHECK(fstat(fd, &st) == 0);
  uint64_t len0 = (uint64_t)st.st_size;
  int fe = fail_draw(PCUT_FSYNC);
  bool lie = !fe && lie_draw(PCUT_FSYNC); /* returns 0, the durable length stays */
  long nap = 0;
  if (J->jitter_us > 0) {
    J->lcg = J->lcg * 6364136223846793005ull + 1442695040888963407ull;
    nap = (long)((J->lcg >> 33) % J->jitter_us) * 1000L;
  }
  pthread_mutex_unlock(&J->mu);
  if (nap > 0) {
    struct timespec ts = {0, nap};
    nanosleep(&ts, NULL);
  }
  int rc = fe ? -1 : (int)syscall(nr, fd);
  int e = fe ? fe : errno;
  pthread_mutex_lock(&J->mu);
  pcut_file *f = &J->files[fid];
  if (f->used && f->gen == gen && !lie) {
    if (rc == 0 && f->shrunk) {
      f->dur = len0;
      f->shrunk = 0;
    } else if (rc == 0 && len0 > f->dur) {
      f->dur = len0;
    } else if (rc != 0 && !f->capped) { /* its dirty pages may be clean now, and never written */
      f->capped = 1;
      f->cap = f->dur;
    }
    if (f->capped && f->dur > f->cap) f->dur = f->cap;
  }
  pthread_mutex_unlock(&J->mu);
  errno = e;
  return rc;
}

int fsync(int fd) { return sync_common(fd, SYS_fsync); }
int fdatasync(int fd) { return sync_common(fd, SYS_fdatasync); }

/* ---- control ---- */

void pcut_init(void) {
  if (J) return;
  void *m = mmap(NULL, sizeof *J, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  IB_CHECK(m != MAP_FAILED);
  pcut_journal *j = m;
  memset(j, 0, sizeof *j);
  pthread_mutexattr_t ma;
  pthread_condattr_t ca;
  IB_CHECK(pthread_mutexattr_init(&ma) == 0);
  IB_CHECK(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) == 0);
  IB_CHECK(pthread_mutex_init(&j->mu, &ma) == 0);
  pthread_mutexattr_destroy(&ma);
  IB_CHECK(pthread_condattr_init(&ca) == 0);
  IB_CHECK(pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED) == 0);
  IB_CHECK(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0);
  IB_CHECK(pthread_cond_init(&j->cv, &ca) == 0);
  pthread_condattr_destroy(&ca);
  j->hold_at = -1;
  j->lcg = 0x9e3779b97f4a7c15ull;
  J = j;
}

void pcut_watch(const char *dir) {
  IB_CHECK(J != NULL && !J->active && strlen(dir) < sizeof J->dir);
  struct stat st;
  IB_CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
  pthread_mutex_lock(&J->mu);
  memset(&J->durable, 0, sizeof J->durable);
  memset(&J->live, 0, sizeof J->live);
  memset(J->files, 0, sizeof J->files);
  memset(J->gate, 0, sizeof J->gate);
  memset(J->per_kind, 0, sizeof J->per_kind);
  memset(J->fail_n, 0, sizeof J->fail_n);
  memset(J->failures, 0, sizeof J->failures);
  memset(J->lie_n, 0, sizeof J->lie_n);
  memset(J->lies, 0, sizeof J->lies);
  J->hold_fail_kinds = 0;
  J->nops = 0;
  J->op_base = 0;
  J->events = 0;
  J->hold_at = -1;
  J->held = J->frozen = J->done = 0;
  snprintf(J->dir, sizeof J->dir, "%s", dir);
  J->dirlen = strlen(dir);
  snprintf(J->shadow, sizeof J->shadow, "%s.shadow", dir);
  IB_CHECK(mkdir(J->shadow, 0755) == 0);
  J->dev = st.st_dev;
  J->dino = st.st_ino;
  /* What is there already survived a crash or was written before: durable as it is. */
  DIR *d = opendir(dir);
  IB_CHECK(d != NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char p[320];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat fs;
    if (stat(p, &fs) != 0 || !S_ISREG(fs.st_mode) || strlen(e->d_name) >= PCUT_NAME) continue;
    int fid = fid_new((uint64_t)fs.st_ino, e->d_name, (uint64_t)fs.st_size);
    ns_set(&J->live, e->d_name, fid);
    ns_set(&J->durable, e->d_name, fid);
  }
  closedir(d);
  J->active = 1;
  pthread_mutex_unlock(&J->mu);
}

void pcut_unwatch(void) {
  pthread_mutex_lock(&J->mu);
  J->active = 0;
  memset(J->fail_n, 0, sizeof J->fail_n);
  memset(J->lie_n, 0, sizeof J->lie_n);
  J->hold_fail_kinds = 0;
  J->hold_at = -1;
  J->frozen = J->held = 0;
  for (int g = 0; g < 2; g++) J->gate[g].armed = 0, J->gate[g].open = 1;
  pthread_cond_broadcast(&J->cv);
  for (int i = 0; i < PCUT_MAX_FILES; i++) {
    if (!J->files[i].used) continue;
    char p[320];
    shadow_path(i, p, sizeof p);
    raw_unlink(p);
    J->files[i].used = 0;
  }
  rmdir(J->shadow);
  pthread_mutex_unlock(&J->mu);
}

uint64_t pcut_events(void) {
  pthread_mutex_lock(&J->mu);
  uint64_t n = J->events;
  pthread_mutex_unlock(&J->mu);
  return n;
}

uint64_t pcut_events_of(int kind) {
  IB_CHECK(kind > 0 && kind < PCUT_NKINDS);
  pthread_mutex_lock(&J->mu);
  uint64_t n = J->per_kind[kind];
  pthread_mutex_unlock(&J->mu);
  return n;
}

void pcut_hold_at(int64_t n) {
  pthread_mutex_lock(&J->mu);
  J->hold_at = n;
  pthread_mutex_unlock(&J->mu);
}

static void deadline(struct timespec *dl, int bound_s) {
  clock_gettime(CLOCK_MONOTONIC, dl);
  dl->tv_sec += bound_s;
}

int pcut_hold_wait(int bound_s) {
  struct timespec dl;
  deadline(&dl, bound_s);
  pthread_mutex_lock(&J->mu);
  int rc = 0;
  while (!J->held && !J->done && rc == 0) rc = pthread_cond_timedwait(&J->cv, &J->mu, &dl);
  int out = J->held ? 1 : J->done ? 0 : -1;
  pthread_mutex_unlock(&J->mu);
  return out;
}

void pcut_hold_release(void) {
  pthread_mutex_lock(&J->mu);
  J->held = 0;
  J->frozen = 0;
  J->hold_at = -1;
  pthread_cond_broadcast(&J->cv);
  pthread_mutex_unlock(&J->mu);
}

void pcut_done_set(int v) {
  pthread_mutex_lock(&J->mu);
  J->done = v;
  pthread_cond_broadcast(&J->cv);
  pthread_mutex_unlock(&J->mu);
}

void pcut_jitter(uint32_t max_us) {
  pthread_mutex_lock(&J->mu);
  J->jitter_us = max_us;
  J->lcg = 0x9e3779b97f4a7c15ull;
  pthread_mutex_unlock(&J->mu);
}

void pcut_fail_rate(uint32_t kinds, uint32_t one_in_n, int err) {
  IB_CHECK((kinds & ~((PCUT_KIND(PCUT_NKINDS) - 1u) & ~1u)) == 0 && (one_in_n == 0 || err > 0));
  pthread_mutex_lock(&J->mu);
  for (int k = 1; k < PCUT_NKINDS; k++) {
    if (!(kinds & PCUT_KIND(k))) continue;
    J->fail_n[k] = one_in_n;
    J->fail_err[k] = err;
  }
  pthread_mutex_unlock(&J->mu);
}

void pcut_lie_rate(uint32_t kinds, uint32_t one_in_n) {
  IB_CHECK((kinds & ~(PCUT_KIND(PCUT_FSYNC) | PCUT_KIND(PCUT_DSYNC))) == 0);
  pthread_mutex_lock(&J->mu);
  for (int k = 1; k < PCUT_NKINDS; k++)
    if (kinds & PCUT_KIND(k)) J->lie_n[k] = one_in_n;
  pthread_mutex_unlock(&J->mu);
}

uint64_t pcut_lies_of(int kind) {
  IB_CHECK(kind > 0 && kind < PCUT_NKINDS);
  pthread_mutex_lock(&J->mu);
  uint64_t n = J->lies[kind];
  pthread_mutex_unlock(&J->mu);
  return n;
}

void pcut_hold_after_failure(uint32_t kinds, int64_t ahead) {
  IB_CHECK(ahead >= 0);
  pthread_mutex_lock(&J->mu);
  J->hold_fail_kinds = kinds;
  J->hold_fail_ahead = ahead;
  pthread_mutex_unlock(&J->mu);
}

uint64_t pcut_failures_of(int kind) {
  IB_CHECK(kind > 0 && kind < PCUT_NKINDS);
  pthread_mutex_lock(&J->mu);
  uint64_t n = J->failures[kind];
  pthread_mutex_unlock(&J->mu);
  return n;
}

void pcut_freeze(void) {
  pthread_mutex_lock(&J->mu);
  J->frozen = 1;
  pthread_mutex_unlock(&J->mu);
}

void pcut_thaw(void) {
  pthread_mutex_lock(&J->mu);
  J->frozen = 0;
  pthread_cond_broadcast(&J->cv);
  pthread_mutex_unlock(&J->mu);
}

void pcut_gate_arm(int slot, int kind, const char *name_sub, int when) {
  IB_CHECK(slot >= 0 && slot < 2);
  pthread_mutex_lock(&J->mu);
  pcut_gate *g = &J->gate[slot];
  memset(g, 0, sizeof *g);
  g->armed = 1;
  g->kind = kind;
  g->when = when;
  snprintf(g->name, PCUT_NAME, "%s", name_sub ? name_sub : "");
  pthread_mutex_unlock(&J->mu);
}

bool pcut_gate_wait(int slot, int bound_s) {
  struct timespec dl;
  deadline(&dl, bound_s);
  pthread_mutex_lock(&J->mu);
  int rc = 0;
  while (!J->gate[slot].waiting && rc == 0) rc = pthread_cond_timedwait(&J->cv, &J->mu, &dl);
  bool ok = J->gate[slot].waiting;
  pthread_mutex_unlock(&J->mu);
  return ok;
}

void pcut_gate_open(int slot) {
  pthread_mutex_lock(&J->mu);
  J->gate[slot].armed = 0;
  J->gate[slot].open = 1;
  pthread_cond_broadcast(&J->cv);
  pthread_mutex_unlock(&J->mu);
}

void pcut_snapshot(pcut_snap *out) {
  pthread_mutex_lock(&J->mu);
  IB_CHECK(J->frozen);
  out->durable = J->durable;
  out->nops = J->nops;
  memcpy(out->ops, J->ops, sizeof out->ops);
  memcpy(out->files, J->files, sizeof out->files);
  snprintf(out->dir, sizeof out->dir, "%s", J->dir);
  snprintf(out->shadow, sizeof out->shadow, "%s", J->shadow);
  for (int i = 0; i < PCUT_MAX_FILES; i++) {
    const pcut_file *f = &J->files[i];
    out->cur[i] = 0;
    if (!f->used) continue;
    if (f->live) {
      char p[320];
      snprintf(p, sizeof p, "%s/%s", J->dir, f->live_name);
      struct stat st;
      out->cur[i] = stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
    } else {
      out->cur[i] = f->cur_dead;
    }
  }
  pthread_mutex_unlock(&J->mu);
}

static bool ns_same(const pcut_ns *a, const pcut_ns *b) {
  if (a->n != b->n) return false;
  for (int i = 0; i < a->n; i++)
    if (ns_fid(b, a->e[i].name) != a->e[i].fid) return false;
  return true;
}

int pcut_variants(const pcut_snap *s, bool subsets, pcut_ns *out, int max, int *nprefix) {
  int m = s->nops, n = 0;
  IB_CHECK(m < 32);
  bool all = subsets && m <= 8;
  /* The prefixes first (a prefix of c operations is the mask of its c low bits), then every
   * mask (the prefixes among them come out as duplicates). */
  uint32_t count = (uint32_t)m + 1 + (all ? (1u << m) : 0u);
  for (uint32_t c = 0; c < count; c++) {
    if (nprefix && c == (uint32_t)m + 1) *nprefix = n;
    uint32_t mask = c <= (uint32_t)m ? ((1u << c) - 1u) : c - (uint32_t)m - 1;
    pcut_ns ns = s->durable;
    for (int i = 0; i < m; i++)
      if ((mask >> i) & 1u) (void)ns_apply(&ns, &s->ops[i]);
    bool dup = false;
    for (int k = 0; k < n && !dup; k++) dup = ns_same(&out[k], &ns);
    if (dup) continue;
    IB_CHECK(n < max);
    out[n++] = ns;
  }
  if (nprefix && !all) *nprefix = n;
  return n;
}

void pcut_file_range(const pcut_snap *s, int fid, uint64_t *lo, uint64_t *hi) {
  const pcut_file *f = &s->files[fid];
  uint64_t cur = s->cur[fid], dur = f->dur;
  *lo = IB_MIN(cur, dur);
  *hi = IB_MAX(cur, dur);
  if (*hi > cur && *hi > f->shadow_len) *hi = IB_MAX(cur, f->shadow_len); /* nothing saved past */
}

void pcut_build(const pcut_snap *s, const pcut_ns *ns, const uint64_t *len, const char *out) {
  for (int i = 0; i < ns->n; i++) {
    int fid = ns->e[i].fid;
    const pcut_file *f = &s->files[fid];
    IB_CHECK(f->used);
    char to[320], live[320], sh[320];
    snprintf(to, sizeof to, "%s/%s", out, ns->e[i].name);
    snprintf(live, sizeof live, "%s/%s", s->dir, f->live_name);
    snprintf(sh, sizeof sh, "%s/f%d.%u", s->shadow, fid, f->gen);
    int fd = raw_open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    IB_CHECK(fd >= 0);
    uint64_t L = len[i], cur = s->cur[fid], head = IB_MIN(L, cur);
    /* Bytes up to its length at the crash from the file itself (or its copy if it is gone),
     * bytes a truncation took from the copy. */
    uint64_t got = copy_bytes(f->live ? live : sh, 0, fd, 0, head);
    IB_CHECK(got == head);
    if (L > cur) IB_CHECK(copy_bytes(sh, cur, fd, cur, L - cur) == L - cur);
    close(fd);
  }
}

int pcut_damage(const pcut_snap *s, const pcut_ns *ns, int i, uint64_t len, const char *out,
                int how, rng *r) {
  const pcut_file *f = &s->files[ns->e[i].fid];
  uint64_t dur = f->dur;
  if (f->shrunk || len <= dur) return 0;
  char path[320];
  snprintf(path, sizeof path, "%s/%s", out, ns->e[i].name);
  int fd = raw_open(path, O_RDWR | O_CLOEXEC, 0);
  IB_CHECK(fd >= 0);
  /* Sectors k0 .. k1 - 1 hold bytes past the durable length; k0 may hold durable bytes too. */
  uint64_t k0 = dur / PCUT_SECTOR, k1 = (len + PCUT_SECTOR - 1) / PCUT_SECTOR;
  uint64_t nk = k1 - k0;
  uint64_t hole = k0 + rng_below(r, (uint32_t)IB_MIN(nk, UINT32_MAX));
  int damaged = 0;
  for (uint64_t k = k0; k < k1; k++) {
    int what = 0; /* 0 arrived, 1 zeros, 2 stale */
    if (how == PCUT_DMG_ZERO) what = 1;
    else if (how == PCUT_DMG_HOLE) what = k == hole ? 2 : 0;
    else {
      uint32_t x = rng_below(r, 4);
      what = x < 2 ? 0 : x == 2 ? 1 : 2;
      if (k == hole && what == 0) what = 1 + (int)rng_below(r, 2); /* at least one */
    }
    if (what == 0) continue;
    uint64_t lo = IB_MAX(k * PCUT_SECTOR, dur), hi = IB_MIN((k + 1) * PCUT_SECTOR, len);
    if (k * PCUT_SECTOR < dur) what = 1; /* the durable end's sector: its old self */
    uint8_t buf[PCUT_SECTOR];
    for (uint64_t b = 0; b < hi - lo; b++) buf[b] = what == 1 ? 0 : (uint8_t)rng_below(r, 256);
    IB_CHECK(pwrite(fd, buf, (size_t)(hi - lo), (off_t)lo) == (ssize_t)(hi - lo));
    damaged++;
  }
  close(fd);
  return damaged;
}
