#!/bin/sh
# Summarises drift.sh's output DIR: per 10 minutes of each run, the mean inserted and sampled
# rows/s (timeline.csv), the CPU time per row (inserted + sampled) of the ibrl-bench process and of
# the two shards together (not their forked checkpoint writers), and the machine's steal time
# (cpu.log).
# Usage: drift_summary.sh DIR   (WINDOW=seconds per line, default 600)
set -eu
D=${1:?usage: drift_summary.sh DIR}
exec /usr/bin/python3 - "$D" <<'PY'
import os, sys
d = sys.argv[1]
W = int(os.environ.get("WINDOW", "600"))  # seconds per line
hz = os.sysconf("SC_CLK_TCK")
starts, stats, procs = {}, [], []  # procs: (t, pid, comm, ticks)
for line in open(os.path.join(d, "cpu.log")):
    f = line.split()
    if len(f) < 2: continue
    t = int(f[0])
    if f[1] == "start": starts[f[2]] = t
    elif f[1] == "stat": stats.append((t, [int(x) for x in f[3:]]))
    elif f[1] == "proc": procs.append((t, int(f[2]), f[3].strip("()"), int(f[4]) + int(f[5])))
first, seen = {}, {}  # pid -> the first sample that saw it, how many samples saw it
for p in procs:
    first.setdefault(p[1], p[0])
    seen[p[1]] = seen.get(p[1], 0) + 1
times = sorted({s[0] for s in stats})
def nearest(t): return min(times, key=lambda x: abs(x - t))
def delta(ta, tb, comm, pids):
    """CPU ticks the processes `pids` named comm used between samples ta and tb: each one present
    at tb, from its ticks at ta (0 if it was born after ta)."""
    at_a = {p[1]: p[3] for p in procs if p[0] == ta and p[2] == comm and p[1] in pids}
    return sum(p[3] - at_a.get(p[1], 0) for p in procs if p[0] == tb and p[2] == comm and p[1] in pids)
def cpu(t):
    return [s[1] for s in stats if s[0] == t][0]
print("run    minutes  inserted/s  sampled/s  bench us/row  shards us/row  steal %")
for run in ("aged", "fresh"):
    if run not in starts: continue
    t0 = starts[run]
    # Long-lived processes only: a shard's forked checkpoint writer (same name) lives under a second
    # and is seen by one sample at most; its CPU is not counted.
    pids = {pid for pid, t in first.items() if seen[pid] >= 2 and t >= t0 and
            (run == "fresh" or "fresh" not in starts or t < starts["fresh"])}
    rows = []
    for line in list(open(os.path.join(d, run, "timeline.csv")))[1:]:
        f = line.split(",")
        rows.append((float(f[0]), float(f[5]), float(f[6])))
    if not rows: continue
    end = rows[-1][0]
    w = 0
    while w * W < end:
        lo, hi = w * W, min((w + 1) * W, end)
        win = [r for r in rows if lo < r[0] <= hi]
        if len(win) < W / 10: break
        ins = sum(r[1] for r in win) / len(win); smp = sum(r[2] for r in win) / len(win)
        ta, tb = nearest(t0 + lo), nearest(t0 + hi)
        while tb > ta and not any(p[0] == tb and p[1] in pids for p in procs):
            tb = max(t for t in times if t < tb)  # the run had ended: its last sample
        secs = tb - ta
        n = (ins + smp) * secs
        bench = delta(ta, tb, "ibrl-bench", pids) / hz / n * 1e6 if n > 0 else float("nan")
        shard = delta(ta, tb, "ibrl-replay", pids) / hz / n * 1e6 if n > 0 else float("nan")
        ca, cb = cpu(ta), cpu(tb)
        steal = 100.0 * (cb[7] - ca[7]) / (sum(cb[:8]) - sum(ca[:8])) if sum(cb[:8]) > sum(ca[:8]) else float("nan")
        print("%-6s %3d-%-3d  %10.0f  %9.0f  %12.3f  %13.3f  %7.2f" % (run, lo // 60, int(hi // 60), ins, smp, bench, shard, steal))
        w += 1
PY
