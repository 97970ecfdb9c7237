/* store_testdir.c: see store_testdir.h. Directories in the store's directory are the tests' planted
 * ones and persist_open_salvage's damaged-* (files only): removed recursively. */
#include "store_testdir.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"

void fx_tmpdir(char *out, size_t n, const char *prefix) {
  snprintf(out, n, "/tmp/%s-XXXXXX", prefix);
  IB_CHECK(mkdtemp(out) != NULL);
}

void fx_rmdir_all(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      if (unlink(p) != 0 && rmdir(p) != 0) fx_rmdir_all(p); /* a directory with files in it */
    }
    closedir(d);
  }
  rmdir(dir);
}

void fx_flip_byte(const char *dir, const char *name, long off) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_RDWR);
  IB_CHECK(fd >= 0);
  if (off < 0) off += lseek(fd, 0, SEEK_END);
  unsigned char c;
  IB_CHECK(pread(fd, &c, 1, off) == 1);
  c ^= 0x5a;
  IB_CHECK(pwrite(fd, &c, 1, off) == 1);
  close(fd);
}

const char *fx_wal(uint64_t epoch) {
  static char names[4][40];
  static int k;
  char *out = names[k++ % 4];
  snprintf(out, 40, "store.wal.%016llx", (unsigned long long)epoch);
  return out;
}
