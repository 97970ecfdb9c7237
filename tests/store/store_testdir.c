/* store_testdir.c: see store_testdir.h. One level deep is enough: the store writes only files into
 * its directory, and the tests plant at most an empty directory. */
#include "store_testdir.h"

#include <dirent.h>
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
      if (unlink(p) != 0) rmdir(p);
    }
    closedir(d);
  }
  rmdir(dir);
}
