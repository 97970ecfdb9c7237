/* fault_fs.c: an LD_PRELOAD shim that makes one directory's disk fail on demand, for tests of a
 * shard whose disk fills up or goes bad (test_diskfull.c). Built only for tests, as a shared
 * library (tests/rpc/CMakeLists.txt, target ib_fault_fs).
 *
 * Design. Two environment variables, read once:
 *   IB_FAULT_DIR  the directory whose files fail (the directory itself and everything under it,
 *                 by path prefix: give it as the process names it, absolute in the tests);
 *   IB_FAULT_CTL  a control file, outside that directory. While it exists, faults are on.
 * Its first line picks the fault: an errno name, ENOSPC (the default: a full disk) or EIO (a bad
 * one), and a scope, "all" (the default), "sync" or "reserve". With "all", write/pwrite, fsync/fdatasync,
 * rename and open with O_CREAT fail with that errno on the directory's files (with ENOSPC a
 * write() first takes half its bytes and returns that short count, and the write of the rest
 * fails, as a file system that fills up mid-write does: the file position has moved); "after N"
 * on the line makes the faults start only once this process has written N bytes there (a disk
 * with N bytes free, which fills up in the middle of a file); with "sync" only
 * fsync and fdatasync do (the page cache takes the writes, the flush fails: a flaky disk, or
 * ENOSPC reported at writeback); "only S" limits the faults to files whose name (the last path
 * component) contains S, e.g. "EIO sync only store.ckpt" fails the checkpoint's flush and no
 * log's (a disk with room for the log but not for the checkpoint). fallocate fails as a write
 * does ("all"), and with "after N" when the reservation would pass N bytes: a full disk refuses a
 * reservation larger than its room whole; with the scope "reserve" only fallocate fails (a disk
 * with room for small files but not for the checkpoint). ftruncate, unlink, reads and
 * opens without O_CREAT pass through, so a writer can still cut a partial record off. The
 * control file is checked with access() on each such call, so a test flips the disk by creating
 * or removing it, without signalling the process. Descriptors are matched by remembering which
 * open() returned them (a table indexed by fd, so a forked child, which copies it, keeps
 * matching). Everything else passes straight to the next definition (libc, or a sanitizer's
 * interceptor).
 *
 * Under ASan: the shim is built without instrumentation (it only forwards calls); an ASan binary
 * refuses a preloaded library ahead of its runtime unless ASAN_OPTIONS has
 * verify_asan_link_order=0, which test_diskfull.c sets for the child it preloads. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT, open64 */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define FD_MAX 65536

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*fd_fn)(int);
typedef int (*rename_fn)(const char *, const char *);

static struct {
  int inited;
  char dir[1024];
  size_t dir_len;
  char ctl[1024];
  open_fn open_, open64_;
  openat_fn openat_, openat64_;
  write_fn write_;
  pwrite_fn pwrite_, pwrite64_;
  fd_fn fsync_, fdatasync_, close_;
  rename_fn rename_;
  int (*fallocate_)(int, int, off_t, off_t);
  ssize_t (*read_)(int, void *, size_t);
} g;

#define NAME_KEEP 32 /* bytes of a tracked fd's file name kept for "only S" */

static unsigned char tracked[FD_MAX];    /* 1: the fd is a file of the faulty directory */
static char fd_name[FD_MAX][NAME_KEEP];  /* its name (last path component), cut to fit */
static unsigned char short_done[FD_MAX]; /* 1: its last write() was cut short by the full disk */
static unsigned long long written_total; /* bytes this process wrote to the directory's files */

static void init(void) {
  if (__atomic_load_n(&g.inited, __ATOMIC_ACQUIRE)) return;
  g.open_ = (open_fn)dlsym(RTLD_NEXT, "open");
  g.open64_ = (open_fn)dlsym(RTLD_NEXT, "open64");
  g.openat_ = (openat_fn)dlsym(RTLD_NEXT, "openat");
  g.openat64_ = (openat_fn)dlsym(RTLD_NEXT, "openat64");
  g.write_ = (write_fn)dlsym(RTLD_NEXT, "write");
  g.pwrite_ = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
  g.pwrite64_ = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
  g.fsync_ = (fd_fn)dlsym(RTLD_NEXT, "fsync");
  g.fdatasync_ = (fd_fn)dlsym(RTLD_NEXT, "fdatasync");
  g.close_ = (fd_fn)dlsym(RTLD_NEXT, "close");
  g.rename_ = (rename_fn)dlsym(RTLD_NEXT, "rename");
  g.fallocate_ = (int (*)(int, int, off_t, off_t))dlsym(RTLD_NEXT, "fallocate");
  g.read_ = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
  const char *d = getenv("IB_FAULT_DIR"), *c = getenv("IB_FAULT_CTL");
  if (d && c && strlen(d) < sizeof g.dir && strlen(c) < sizeof g.ctl) {
    snprintf(g.dir, sizeof g.dir, "%s", d);
    g.dir_len = strlen(g.dir);
    while (g.dir_len > 1 && g.dir[g.dir_len - 1] == '/') g.dir[--g.dir_len] = '\0';
    snprintf(g.ctl, sizeof g.ctl, "%s", c);
  }
  __atomic_store_n(&g.inited, 1, __ATOMIC_RELEASE);
}

static int under_dir(const char *path) {
  if (g.dir_len == 0 || path == NULL) return 0;
  return strncmp(path, g.dir, g.dir_len) == 0 && (path[g.dir_len] == '/' || path[g.dir_len] == '\0');
}

static const char *base_name(const char *path) {
  const char *b = path ? strrchr(path, '/') : NULL;
  return b ? b + 1 : (path ? path : "");
}

/* The errno to fail with when faults are on for this kind of call (sync: 1 for fsync and
 * fdatasync) on the file named `name` (its last path component), else 0. `extra`: bytes the
 * call would take beyond those written, less one (a reservation's length - 1; 0 for a write);
 * reserve: 1 for fallocate. */
static int fault_errno_for(int sync, const char *name, unsigned long long extra, int reserve) {
  if (g.dir_len == 0 || access(g.ctl, F_OK) != 0) return 0;
  char buf[160] = "";
  int fd = g.open_(g.ctl, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t k = g.read_(fd, buf, sizeof buf - 1);
    buf[k > 0 ? k : 0] = '\0';
    g.close_(fd);
  }
  if (strstr(buf, "sync") != NULL && !sync) return 0;
  if (strstr(buf, "reserve") != NULL && !reserve) return 0;
  const char *only = strstr(buf, "only ");
  if (only != NULL) {
    char want[NAME_KEEP] = "";
    size_t w = 0;
    for (only += 5; *only && *only != ' ' && *only != '\n' && w + 1 < sizeof want; only++) want[w++] = *only;
    if (w > 0 && strstr(name, want) == NULL) return 0;
  }
  const char *after = strstr(buf, "after ");
  if (after != NULL &&
      __atomic_load_n(&written_total, __ATOMIC_RELAXED) + extra < strtoull(after + 6, NULL, 10))
    return 0; /* a disk with that many bytes free: it fills up mid-file */
  return strstr(buf, "EIO") != NULL ? EIO : ENOSPC;
}
static int fault_errno(int sync, const char *name) { return fault_errno_for(sync, name, 0, 0); }

static int fd_tracked(int fd) { return fd >= 0 && fd < FD_MAX && tracked[fd]; }

static void fd_note(int fd, const char *path) {
  if (fd < 0 || fd >= FD_MAX) return;
  tracked[fd] = (unsigned char)under_dir(path), short_done[fd] = 0;
  if (tracked[fd]) snprintf(fd_name[fd], NAME_KEEP, "%s", base_name(path));
}

/* open/open64/openat/openat64 share this: `at` and `is64` pick the next definition to call. */
static int do_open(int dirfd, const char *path, int flags, mode_t mode, int at, int is64) {
  init();
  if ((flags & O_CREAT) && under_dir(path)) {
    int e = fault_errno(0, base_name(path));
    if (e) {
      errno = e;
      return -1;
    }
  }
  int fd;
  if (at)
    fd = (is64 && g.openat64_ ? g.openat64_ : g.openat_)(dirfd, path, flags, mode);
  else
    fd = (is64 && g.open64_ ? g.open64_ : g.open_)(path, flags, mode);
  /* openat with a relative path never matches: the product opens by full path. */
  if (fd >= 0) fd_note(fd, (at && path[0] != '/') ? NULL : path);
  return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
  /* O_TMPFILE includes O_DIRECTORY's bit: test all of it, or a directory open would read a mode. */
  return ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return do_open(AT_FDCWD, path, flags, m, 0, 0);
}

int open64(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return do_open(AT_FDCWD, path, flags, m, 0, 1);
}

int openat(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return do_open(dirfd, path, flags, m, 1, 0);
}

int openat64(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return do_open(dirfd, path, flags, m, 1, 1);
}

int close(int fd) {
  init();
  if (fd >= 0 && fd < FD_MAX) tracked[fd] = short_done[fd] = 0;
  return g.close_(fd);
}

/* For fsync/fdatasync (sync 1) and pwrite (sync 0) on fd: 1 with errno set when the call must
 * fail now, else 0. */
static int fd_fails(int fd, int sync) {
  init();
  int e = fd_tracked(fd) ? fault_errno(sync, fd_name[fd]) : 0;
  if (e) errno = e;
  return e != 0;
}

/* Counts a successful write of k bytes to fd (the "after N" budget). */
static ssize_t counted(int fd, ssize_t k) {
  if (k > 0 && fd_tracked(fd)) __atomic_add_fetch(&written_total, (unsigned long long)k, __ATOMIC_RELAXED);
  return k;
}

ssize_t write(int fd, const void *buf, size_t n) {
  init();
  if (fd_tracked(fd)) {
    int e = fault_errno(0, fd_name[fd]);
    if (e == ENOSPC && n > 1 && !short_done[fd]) {
      /* A full disk takes what fits and then refuses: half the bytes land (the file position
       * moves with them), and the write of the rest fails. */
      ssize_t k = g.write_(fd, buf, n / 2);
      if (k > 0) {
        short_done[fd] = 1;
        return k;
      }
    }
    if (e) {
      short_done[fd] = 0;
      errno = e;
      return -1;
    }
  }
  return counted(fd, g.write_(fd, buf, n));
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  return fd_fails(fd, 0) ? -1 : counted(fd, g.pwrite_(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  return fd_fails(fd, 0) ? -1 : counted(fd, (g.pwrite64_ ? g.pwrite64_ : g.pwrite_)(fd, buf, n, off));
}

int fallocate(int fd, int mode, off_t off, off_t len) {
  init();
  if (fd_tracked(fd) && len > 0) {
    int e = fault_errno_for(0, fd_name[fd], (unsigned long long)(off + len) - 1, 1);
    if (e) {
      errno = e;
      return -1;
    }
  }
  return g.fallocate_(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len) { return fallocate(fd, mode, off, len); }

int fsync(int fd) { return fd_fails(fd, 1) ? -1 : g.fsync_(fd); }

int fdatasync(int fd) { return fd_fails(fd, 1) ? -1 : g.fdatasync_(fd); }

int rename(const char *from, const char *to) {
  init();
  if (under_dir(from) || under_dir(to)) {
    /* "only S" matches either name: a rename onto or away from such a file fails. */
    int e = fault_errno(0, base_name(from));
    if (!e) e = fault_errno(0, base_name(to));
    if (e) {
      errno = e;
      return -1;
    }
  }
  return g.rename_(from, to);
}
