/* soak_out.h: what `ibrl-bench soak` prints and writes: the start lines, the progress lines, the
 * final report (with --json one line), and the timeline as CSV. The line shapes are parsed by
 * the run.sh scripts of docs/results/runs/replay-soak-... ("warm-up ends at", "prediction ...
 * MB", "tables ... MB by the --help formula", the CSV columns): keep them. Main thread only
 * (stdout). Errors: only the CSV functions meet the world (the file): IB_EIO, naming the path, with a
 * HINT. Everything is borrowed for the call. */
#ifndef IB_SOAK_OUT_H
#define IB_SOAK_OUT_H

#include <stddef.h>
#include <stdio.h>

#include "soak.h"
#include "soak_check.h"

/* "shard k: " with several shards, "" with one (the one-shard messages stay as they were). */
const char *soak_out_tag(const soak_cfg *c, int shard, char *buf, size_t cap);

/* One progress line for point i: with one shard as it always was; with several, the traffic first,
 * then each shard's figures in brackets. */
void soak_out_progress(int i, const soak_shared *sh, const soak_run *run, long cap);

/* The start lines: the configuration, and restarts, token and TLS when any is on. */
void soak_out_banner(const soak_cfg *c, const soak_run *run);

/* The timeline as CSV: the one-shard columns (shard 0's), then for each further shard k its own
 * columns suffixed _s<k>. The file is opened before the run (so a bad path fails at once) and gets
 * one row per point as the run goes, flushed at once: a run that is killed keeps its timeline up
 * to its last second. soak_out_csv_open writes the header; NULL and IB_EIO on error.
 * soak_out_csv_close reports a failed write (IB_EIO) and closes in any case. */
FILE *soak_out_csv_open(const char *path, const soak_cfg *c);
void soak_out_csv_row(FILE *f, const soak_cfg *c, const soak_run *run, int i);
int soak_out_csv_close(FILE *f, const char *path);

/* The final report: the figures, one line per judged check with PASS/FAIL and a HINT on failure,
 * and with --json one JSON line (the memory keys are shard 0's; per_shard has all). */
void soak_out_report(const soak_cfg *c, const soak_run *run, const soak_verdict *v);

#endif
