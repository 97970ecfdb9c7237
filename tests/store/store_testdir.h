/* store_testdir.h: scratch directories for the persistence tests (test_persist, test_persist_cut):
 * a fresh one under /tmp, and its removal with everything in it. */
#ifndef IB_STORE_TESTDIR_H
#define IB_STORE_TESTDIR_H

#include <stddef.h>

/* Creates a fresh directory /tmp/<prefix>-XXXXXX and writes its path into out[n] (aborts if it
 * cannot: the tests cannot run without one). */
void fx_tmpdir(char *out, size_t n, const char *prefix);
/* Removes every entry of `dir` (files, and directories recursively: one planted to make a write
 * fail, or a salvage's damaged-*), then `dir` itself. Errors are ignored: it is cleanup. */
void fx_rmdir_all(const char *dir);

#endif /* IB_STORE_TESTDIR_H */
