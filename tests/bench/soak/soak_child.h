/* soak_child.h: the ibrl-replay children of `ibrl-bench soak` and what surrounds them: starting
 * one on 127.0.0.1 and reading its port, stopping it with a signal, noticing it died, reading its
 * memory, threads and fds from /proc, and the files it needs (checkpoint directories, the TLS
 * certificate, the binary itself). Errors: functions that can meet the world return IB_OK or a
 * negative IB_E* with ib_fail's message naming the shard or path and a HINT; the others say what
 * they return. Ownership: a soak_child owns its pid and pipe until soak_child_stop,
 * soak_child_wait or soak_child_gone reaps it. Thread-safety: none; only the main thread calls these (the first
 * starts before any thread or gRPC runs, restarts fork from the main thread, and the child only
 * calls exec). */
#ifndef IB_SOAK_CHILD_H
#define IB_SOAK_CHILD_H

#include <stddef.h>

#include "soak.h"

/* Starts shard `index` with the soak's configuration on `port_want` (0 = let it pick). Returns IB_OK or
 * an IB_E* (message set). */
int soak_child_start(soak_child *ch, const soak_cfg *c, const char *dir, int port_want, int index);

/* Sends `sig`, then waits up to `secs`; returns the exit code, 128+signal, or -1 (killed after the
 * wait). Same as soak_child_signal then soak_child_wait. */
int soak_child_stop(soak_child *ch, int sig, double secs);

/* Sends `sig` and returns at once (to stop several shards at the same instant). */
void soak_child_signal(soak_child *ch, int sig);

/* Waits up to `secs` for the child to exit (relaying its output meanwhile), SIGKILLs it after that,
 * and reaps it; returns the exit code, 128+signal, or -1 (killed after the wait). */
int soak_child_wait(soak_child *ch, double secs);

/* Relays the child's output that is waiting in its pipe (whole lines; a partial one is kept), and
 * counts its torn-tail lines in ch->torn_dropped and ch->torn_warnings. Never blocks. */
void soak_child_drain(soak_child *ch);

/* 1 if the child already exited (reaped; *code = its status), else 0. */
int soak_child_gone(soak_child *ch, int *code);

/* VmRSS, VmHWM (MB) and Threads of `pid` from /proc/<pid>/status, open fds from /proc/<pid>/fd.
 * Returns 0, or -1 if the process is gone. */
int soak_child_proc_read(pid_t pid, soak_point *p);

/* Stops every shard still running with SIGTERM (drain, final checkpoint) and keeps its exit code. */
void soak_child_stop_all(const soak_cfg *c, soak_run *run);

/* Removes the files of `dir` (one level: the shard writes no subdirectories) and `dir`. */
void soak_child_dir_remove(const char *dir);

/* The shards' checkpoint directories: with --ckpt-dir, that directory (one shard) or its
 * subdirectories shard<k> (several), created if missing and empty; else a fresh temp dir per
 * shard, removed at the end (*owned). On failure the temp dirs made so far are removed. */
int soak_child_dirs_make(const soak_cfg *c, soak_run *run, int *owned);

/* --tls: a self-signed certificate for 127.0.0.1 and localhost in a fresh directory `dir`, made
 * with openssl (as tests/rpc/test_replay_server.c does) before any thread starts. Returns 1 when
 * made (c->tls_cert and c->tls_key point at cert and key), 0 when skipped (printed; dir = ""). */
int soak_child_tls_make(soak_cfg *c, char *dir, char *cert, char *key);

/* Resolves c->replay_bin: NULL means ibrl-replay next to this binary (written into buf[cap], which
 * must outlive c). Returns IB_OK, or IB_EIO / IB_ENOTFOUND (message set) if it is not executable. */
int soak_child_bin_find(soak_cfg *c, char *buf, size_t cap);

#endif
