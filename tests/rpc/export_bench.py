#!/usr/bin/env python3
"""export_bench.py: times `ibrl-replayctl export` of a large online table (not a ctest test; run by
hand, e.g. /usr/bin/python3 tests/rpc/export_bench.py --bin-dir build/bin --py-gen build/proto/py).

Starts --shards ibrl-replay children on 127.0.0.1 (obs 37, act 2: the nav2d actors' dims), fills
each online ring with exactly --rows rows (8 actors a shard, episodes of 50 steps whose next_obs
is the next row's obs, sent as ItemColumns), then runs `ibrl-replayctl --json export --table
online` --runs times and prints, per run, the wall time, the time spent reading the tables
(read_s), the items, pages and episodes. Pass --ctl to time another ibrl-replayctl binary (e.g.
one built before Replay.Read, which printed no read_s). Every child is killed at the end."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

OD, AD = 37, 2


def start_shard(binary, rows):
    p = subprocess.Popen([binary, "--port", "0", "--obs-dim", str(OD), "--act-dim", str(AD), "--online-capacity",
                          str(rows), "--threads", "2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    t0 = time.time()
    while time.time() - t0 < 20:
        line = p.stdout.readline()
        if line.startswith("listening on "):
            return p, line.split()[-1]
        if p.poll() is not None:
            break
    p.kill()
    raise RuntimeError("ibrl-replay did not start")


def fill(stub, ibrl_pb2, shard, rows):
    rng = np.random.default_rng(shard)
    per_actor = rows // 8

    def reqs():
        for a in range(8):
            actor = shard * 100 + a
            n_a = per_actor + (rows - 8 * per_actor if a == 7 else 0)
            for lo in range(0, n_a, 1000):
                k = min(1000, n_a - lo)
                seq = np.arange(lo, lo + k, dtype=np.uint64)
                step = (seq % 50).astype(np.float32)
                ep = (seq // 50).astype(np.float32)
                obs = (ep[:, None] * 64 + step[:, None] + np.arange(OD, dtype=np.float32)[None, :] * 0.5
                       + actor * 1e4).astype(np.float32)
                end = (seq % 50) == 49
                cols = ibrl_pb2.ItemColumns(
                    n=k, obs=obs.tobytes(), action=rng.uniform(-1, 1, (k, AD)).astype(np.float32).tobytes(),
                    reward=np.zeros(k, np.float32).tobytes(),
                    discount=np.where(end, 0.0, 0.99).astype(np.float32).tobytes(),
                    next_obs=(obs + 1.0).astype(np.float32).tobytes(), proposer=np.ones(k, np.uint8).tobytes(),
                    actor_id=np.full(k, actor, np.uint32).tobytes(), seq=seq.tobytes(),
                    weight_version=np.zeros(k, np.uint64).tobytes(), flags=end.astype(np.uint8).tobytes())
                yield ibrl_pb2.InsertRequest(table="online", columns=cols)

    r = stub.Insert(reqs(), timeout=300)
    if r.inserted != rows:
        raise RuntimeError("shard %d stored %d of %d rows" % (shard, r.inserted, rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True, help="directory of ibrl-replay and ibrl-replayctl")
    ap.add_argument("--py-gen", required=True, help="directory of the generated ibrl_pb2 stubs")
    ap.add_argument("--ctl", help="the ibrl-replayctl to time (default: BIN_DIR/ibrl-replayctl)")
    ap.add_argument("--shards", type=int, default=2, help="shards (default 2)")
    ap.add_argument("--rows", type=int, default=200000, help="rows per shard (default 200000)")
    ap.add_argument("--runs", type=int, default=3, help="exports to time (default 3)")
    a = ap.parse_args()
    if a.shards < 1 or a.rows < 8 or a.runs < 1:
        ap.error("--shards >= 1, --rows >= 8 and --runs >= 1")
    sys.path.insert(0, a.py_gen)
    import grpc
    import ibrl_pb2
    import ibrl_pb2_grpc
    ctl = a.ctl or os.path.join(a.bin_dir, "ibrl-replayctl")
    procs, targets = [], []
    tmp = tempfile.mkdtemp(prefix="export_bench_")
    try:
        for s in range(a.shards):
            p, t = start_shard(os.path.join(a.bin_dir, "ibrl-replay"), a.rows)
            procs.append(p)
            targets.append(t)
            fill(ibrl_pb2_grpc.ReplayStub(grpc.insecure_channel(t)), ibrl_pb2, s, a.rows)
        print("%d shard(s) x %d rows (obs %d, act %d) filled; timing %s" % (a.shards, a.rows, OD, AD, ctl), flush=True)
        for k in range(a.runs):
            out = os.path.join(tmp, "x%d.hdf5" % k)
            t0 = time.time()
            r = subprocess.run([ctl, "--shards", ",".join(targets), "--json", "export", "--table", "online", "--out",
                                out], capture_output=True, text=True, timeout=600)
            wall = time.time() - t0
            doc = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
            print("run %d: exit %d, %.2f s wall, read_s %s, items %s of %s, pages %s, episodes %s" % (
                k, r.returncode, wall, doc.get("read_s", "-"), doc.get("items"), doc.get("table_size"),
                doc.get("pages", "-"), doc.get("episodes")), flush=True)
            if os.path.exists(out):
                os.remove(out)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
