/* store_testdir.h: scratch directories for the persistence tests (test_persist, test_persist_cut,
 * test_persist_salvage, ...): a fresh one under /tmp, its removal with everything in it, and a
 * damaged byte in one of its files. */
#ifndef IB_STORE_TESTDIR_H
#define IB_STORE_TESTDIR_H

#include <stddef.h>
#include <stdint.h>

/* Creates a fresh directory /tmp/<prefix>-XXXXXX and writes its path into out[n] (aborts if it
 * cannot: the tests cannot run without one). */
void fx_tmpdir(char *out, size_t n, const char *prefix);
/* Removes every entry of `dir` (files, and directories recursively: one planted to make a write
 * fail, or a salvage's damaged-*), then `dir` itself. Errors are ignored: it is cleanup. */
void fx_rmdir_all(const char *dir);
/* Flips bits of the byte at `off` of file dir/name (off < 0: from the end), as a damaged sector
 * would (aborts if the file cannot be read or written). */
void fx_flip_byte(const char *dir, const char *name, long off);
/* The file name of log `epoch` ("store.wal.<16 hex digits>"), in one of 4 rotating buffers. */
const char *fx_wal(uint64_t epoch);

#endif /* IB_STORE_TESTDIR_H */
