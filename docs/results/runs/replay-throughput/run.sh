#!/bin/bash
# How the files beside this script were made (22 Nov 2026, 10:23-10:31 UTC, the team's other heavy
# jobs paused by a wrapper that SIGSTOPs them; build: RelWithDebInfo).
#
# 1. The current state: 3 runs of each, alternating.
#      ibrl-bench replay                                    > 2026-11-22-1023-default-$i.txt
#      ibrl-bench replay --only sample --no-prefetch        > 2026-11-22-1023-no-prefetch-$i.txt
#    Again at 10:39-10:41 with the store of commit 7c94fed (metadata copy in the record pad):
#      2026-11-22-1039-after-metacopy-{default,no-prefetch}-$i.txt
#    Again at 19:39-19:41 UTC with the binaries of commit 3e7512a, on a quiet machine (nothing else
#    running: no soak, no helper), `bash run.sh build-lead/bin`:
#      2026-11-22-1939-{default,no-prefetch}-$i.txt
#    Again at 20:29-20:31 UTC with the binaries of commit ba3ae20 (this session's client and server
#    changes: parallel size refresh, durability health), machine quiet at the start (load 0.2):
#      2026-11-22-2029-{default,no-prefetch}-$i.txt
#    On the next session's VM ("AMD EPYC", 2 vCPUs), binaries of commit fb02de6, nothing else
#    running, three windows (22:34-22:36, 22:41-22:43 and 23:06-23:09 UTC), `bash run.sh build-lead/bin`:
#      2026-11-22-{2234,2241,2306}-{default,no-prefetch}-$i.txt
#    and after the first two windows, alternating, the shard's worker threads 4 (default) and 2:
#      for i in 1 2 3; do for t in 4 2; do
#        ibrl-bench replay --only insert --server-threads $t > 2026-11-22-HHMM-insert-st$t-$i.txt
#      done; done                                 # HHMM = 2237, then 2241
#    A fourth window on 23 Nov, 00:20-00:22 UTC, binaries of commit e8d4bf6 (same paths), after the
#    fresh-clone CI, the main job and the two-baseline windows below, `bash run.sh build-lead/bin`:
#      2026-11-23-0020-{default,no-prefetch}-$i.txt
#    The acknowledgement experiment (22:48 UTC): ibrl-bench built with pending.patch (EXPERIMENT
#    ONLY, never merged), whose writer takes max_pending from EXP_PENDING:
#      for i in 1 2 3; do for p in 1024 512 256; do
#        EXP_PENDING=$p ibrl-bench replay --only insert --threads 1 > 2026-11-22-2248-pending-$p-$i.txt
#      done; done
#    The long-stream experiment (23:10 UTC): a scratch copy built with longstream.patch (EXPERIMENT
#    ONLY), alternating with the current build:
#      for i in 1 2 3; do
#        build-lead/bin/ibrl-bench replay --only insert > 2026-11-22-2310-longstream-base-$i.txt
#        /tmp/exp/build/bin/ibrl-bench replay --only insert > 2026-11-22-2310-longstream-exp-$i.txt
#      done
#    The two raw baselines for inserts (22 Nov 23:46 and 23:49 UTC, binaries of commit 7b65da4,
#    /tmp/exp2 a scratch copy of that commit with noack.patch applied, EXPERIMENT ONLY):
#      for i in 1 2 3; do
#        build-lead/bin/ibrl-bench replay --only insert               > HHMM-insert-raw4-$i.txt
#        build-lead/bin/ibrl-bench replay --only insert --raw-msgs 0  > HHMM-insert-raw0-$i.txt
#        EXP_PEND=65536 /tmp/exp2/build/bin/ibrl-bench replay --only insert --raw-msgs 0 \
#                                                                     > HHMM-insert-noack-raw0-$i.txt
#      done             # HHMM = 2026-11-22-2346, then 2026-11-22-2349; and 2026-11-23-0017 with the
#                       # binaries of e8d4bf6 (after the fresh-clone CI and the main job)
#    Raw with a copy into a fresh buffer per message (23 Nov 00:24 UTC; /tmp/exp2 as above plus
#    rawcopy.patch, EXPERIMENT ONLY):
#      for i in 1 2 3; do
#        /tmp/exp2/build/bin/ibrl-bench replay --only insert --variant raw --raw-msgs 0 \
#                                                           > 2026-11-23-0024-raw0-base-$i.txt
#        EXP_RAWCOPY=1 /tmp/exp2/build/bin/ibrl-bench replay --only insert --variant raw --raw-msgs 0 \
#                                                           > 2026-11-23-0024-raw0-rawcopy-$i.txt
#      done
#    The pipelined writer (23 Nov, commit ca5c515; /tmp/wt-old a worktree of 74da721, the in-order
#    writer, built with `cmake --build build --target ibrl-bench ibrl-replay`), alternating:
#      for i in 1 2 3; do
#        /tmp/wt-old/build/bin/ibrl-bench replay --only insert --raw-msgs 0 > HHMM-insert-inorder-$i.txt
#        build-lead/bin/ibrl-bench replay --only insert                     > HHMM-insert-pipelined-$i.txt
#      done    # HHMM = 2026-11-23-0152 (binaries of ca5c515; a helper's benchmarks ran now and then; written
#              # to /tmp first and copied here), then 2026-11-23-0205 (quiet; binaries of f50443b)
#    and between them, 02:03-02:05 UTC, binaries of f50443b, `bash run.sh build-lead/bin`:
#      2026-11-23-0203-{default,no-prefetch}-$i.txt
#    Workers that take turns (23 Nov, 03:40-03:58 UTC, nothing else running). First an intermediate
#    build (never committed) in which --server-pollers N fixed the polling workers of both servers
#    at exactly N, alternating:
#      for i in 1 2 3; do for p in 1 4; do
#        ibrl-bench replay --only insert --server-pollers $p                > 2026-11-23-0340-fixed-insert-pollers$p-$i.txt
#      done; done; and likewise `--only sample --no-prefetch` > 2026-11-23-0340-fixed-sample1-pollers$p-$i.txt
#      for i in 1 2; do for p in 2 3; do
#        ibrl-bench replay --only insert --server-pollers $p                > 2026-11-23-0346-fixed-insert-pollers$p-$i.txt
#      done; done
#    Then the committed policy (one turn per two calls in progress) against /tmp/wt-old, a worktree
#    of f537cba (every worker polls) built with `cmake --build build --target ibrl-bench ibrl-replay`:
#      for i in 1 2 3; do
#        /tmp/wt-old/build/bin/ibrl-bench replay --only insert > 2026-11-23-0348-insert-old-$i.txt
#        build-lead/bin/ibrl-bench replay --only insert        > 2026-11-23-0348-insert-new-$i.txt
#      done
#      for i in 1 2 3; do    # sample = rc_sampler one call ahead, sample1 = --no-prefetch
#        /tmp/wt-old/build/bin/ibrl-bench replay --only sample               > 2026-11-23-0348-sample-old-$i.txt
#        build-lead/bin/ibrl-bench replay --only sample                      > 2026-11-23-0348-sample-new-$i.txt
#        /tmp/wt-old/build/bin/ibrl-bench replay --only sample --no-prefetch > 2026-11-23-0348-sample1-old-$i.txt
#        build-lead/bin/ibrl-bench replay --only sample --no-prefetch        > 2026-11-23-0348-sample1-new-$i.txt
#      done
#    Raw with the prototype's copies (23 Nov, session 16, nothing else running). First experiments
#    with session16-experiments.patch applied to 8eb0fe2 (EXPERIMENT ONLY, never merged; build-lead,
#    `cmake --build build-lead --target ibrl-bench ibrl-replay`): EXP_PROTO=1 makes the raw server and
#    client do the prototype's copies with rings of 300,000 rows (the raw column is then proto),
#    EXP_NOCOPY=1 lets the writer re-send 64 messages encoded once (only their actor and seq
#    columns rewritten), EXP_HINT=1 sends each Insert message with GRPC_WRITE_BUFFER_HINT:
#      for i in 1 2 3; do
#        ibrl-bench replay --only insert                > 2026-11-23-0535-insert-base-$i.txt
#        EXP_PROTO=1 ibrl-bench replay --only insert    > 2026-11-23-0535-insert-proto-$i.txt
#        EXP_NOCOPY=1 ibrl-bench replay --only insert   > 2026-11-23-0535-insert-nocopy-$i.txt
#        EXP_HINT=1 ibrl-bench replay --only insert     > 2026-11-23-0535-insert-hint-$i.txt
#      done
#    (its sample runs failed: the client variant could not decode that first proto server's replies;
#    the patch kept here is the fixed one, whose replies are valid, used for the runs below; it also
#    has EXP_RING=N, rings of N rows and N messages, tried once at 05:48 with N = 64, output not kept)
#      for i in 1 2 3; do
#        ibrl-bench replay --only insert; EXP_PROTO=1 ibrl-bench replay --only insert   > 2026-11-23-0544-insert-{base,proto}-$i.txt
#      done
#      for i in 1 2 3; do
#        ibrl-bench replay --only sample; EXP_PROTO=1 ...                                > 2026-11-23-0544-sample-{base,proto}-$i.txt
#        ibrl-bench replay --only sample --no-prefetch; EXP_PROTO=1 ...                  > 2026-11-23-0544-sample1-{base,proto}-$i.txt
#      done
#    Then the committed proto variant (rings of 64, the prototype's), two windows (the first binary
#    said "raw and proto sends" in its header, the second "send"; nothing else differs):
#      for i in 1 2 3; do
#        ibrl-bench replay                              > 2026-11-23-{0552,0558}-default-$i.txt
#        ibrl-bench replay --only sample --no-prefetch  > 2026-11-23-{0552,0558}-no-prefetch-$i.txt
#      done
#    A third window on another VM (a new machine of the same kind, same binaries' sources at b87a57a):
#      for i in 1 2 3; do
#        ibrl-bench replay                              > 2026-11-23-1530-default-$i.txt
#        ibrl-bench replay --only sample --no-prefetch  > 2026-11-23-1530-no-prefetch-$i.txt
#      done
#    A fourth on a third VM (same kind again; sources at e889e13):
#      for i in 1 2 3; do
#        ibrl-bench replay                              > 2026-11-23-1838-default-$i.txt
#        ibrl-bench replay --only sample --no-prefetch  > 2026-11-23-1838-no-prefetch-$i.txt
#      done
#    A fifth on that VM, 24 Nov, with the gather's prefetch restored and the prefill filling the
#    shard (sources at 3dc0947; until then every --only sample run sampled 10,240 rows from cache):
#      for i in 1 2 3; do
#        ibrl-bench replay                              > 2026-11-24-0315-default-$i.txt
#        ibrl-bench replay --only sample --no-prefetch  > 2026-11-24-0315-no-prefetch-$i.txt
#      done
#    A sixth on that VM, 24 Nov 04:24-04:30 UTC, binaries of 2055a37 (the shard as at 3dc0947; the
#    bench frees proto's reply buffer), nothing else running, 5 runs of each in turn:
#      for i in 1 2 3 4 5; do
#        ibrl-bench replay                              > 2026-11-24-0424-default-$i.txt
#        ibrl-bench replay --only sample --no-prefetch  > 2026-11-24-0424-no-prefetch-$i.txt
#      done
#    On the next session's VM (24 Nov 21:28-21:34 UTC, "AMD EPYC", 2 vCPUs, binaries of 783b6a1, the
#    data path of the 04:24 window), nothing else running, 5 runs of each in turn:
#      for i in 1 2 3 4 5; do
#        ibrl-bench replay                              > 2026-11-24-2128-default-$i.txt
#        ibrl-bench replay --only sample --no-prefetch  > 2026-11-24-2128-no-prefetch-$i.txt
#      done
#    On the same VM (24 Nov 23:55 - 25 Nov 00:00 UTC, binaries of e671c2f: the gather's prefetch
#    prefetcht2 32 rows ahead, the learner on rc_sampler), nothing else running, the same loop:
#        ibrl-bench replay                              > 2026-11-24-2355-default-$i.txt
#        ibrl-bench replay --only sample --no-prefetch  > 2026-11-24-2355-no-prefetch-$i.txt
#    and again at 25 Nov 00:15-00:20 UTC, after a fresh-clone CI run: 2026-11-25-0015-*.txt, and
#    at 00:21-00:26 UTC: 2026-11-25-0021-*.txt
#    and before the third, calls per polling turn (EXPERIMENT ONLY, calls-per-turn.patch, never merged:
#    EXP_CPT=N gives one turn per N calls in progress, every server alike; 2 is the shipped policy):
#      for i in 1 2 3; do for c in 2 1; do
#        EXP_CPT=$c ibrl-bench replay --only sample     > 2026-11-23-1525-sample-cpt$c-$i.txt
#      done; done
# 2. The ceiling experiment: ibrl-replay built with ceiling.patch (EXPERIMENT ONLY, never merged),
#    which reads two variables: EXP_NOSTORE=1 decodes and checks every message but skips the store;
#    EXP_NODECODE=1 skips decode and store (the handler only counts 256 rows a message). Unset, the
#    binary is the normal one ("base"). 3 rounds, each base / nostore / nodecode in turn:
#      git apply docs/results/runs/replay-throughput/ceiling.patch   # in a scratch checkout
#      cmake -S . -B build-exp -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build-exp -j2
#      for i in 1 2 3; do for m in BASE EXP_NOSTORE EXP_NODECODE; do
#        env $m=1 build-exp/bin/ibrl-bench replay --only insert --rounds 5 > ceiling-$m-$i.txt
#      done; done
set -euo pipefail
BIN=${1:-build/bin}
for i in 1 2 3; do
  "$BIN/ibrl-bench" replay
  "$BIN/ibrl-bench" replay --only sample --no-prefetch
done
