"""What the end-of-recovery checkpoint costs at restart (evidence script, not a ctest).

  python3 restart_cost.py WORK BIN_BEFORE BIN_AFTER PYGEN [runs]

Prepares once, with BIN_AFTER's ibrl-replay (--durability wal, paper-size rows: obs 69, action 7),
a store directory in WORK/template: 250,000 rows, a Checkpoint, 50,000 more rows (the log), then
SIGKILL (no final checkpoint). Then, `runs` times (default 3), alternating BIN_BEFORE and
BIN_AFTER: copies the template to WORK/run, `sync`, starts ibrl-replay on it and measures the time
from the process start to its first successful Info (every call but health is UNAVAILABLE until
the shard is ready), and reads how many rows it holds; SIGKILL; the next run starts from a fresh
copy. Prints one line per run and the per-build median.
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

WORK, BIN_BEFORE, BIN_AFTER, PYGEN = sys.argv[1:5]
RUNS = int(sys.argv[5]) if len(sys.argv) > 5 else 3
sys.path.insert(0, PYGEN)
import grpc  # noqa: E402
import ibrl_pb2  # noqa: E402
import ibrl_pb2_grpc  # noqa: E402

OBS, ACT, BATCH, CKPT_ROWS, LOG_ROWS = 69, 7, 250, 250000, 50000


def start(bindir, store, log):
    t0 = time.time()
    p = subprocess.Popen([bindir + "/ibrl-replay", "--port", "0", "--obs-dim", str(OBS), "--act-dim", str(ACT),
                          "--online-capacity", "400000", "--demo-capacity", "16", "--durability", "wal",
                          "--max-message-mb", "64", "--ckpt-dir", store], stdout=subprocess.PIPE, stderr=log,
                         text=True)
    line = p.stdout.readline()
    if not line.startswith("listening"):
        p.wait()
        raise RuntimeError("shard did not start (exit %s)" % p.returncode)
    port = int(line.strip().rsplit(":", 1)[1])
    stub = ibrl_pb2_grpc.ReplayStub(grpc.insecure_channel("127.0.0.1:%d" % port))
    while True:
        try:
            info = stub.Info(ibrl_pb2.InfoRequest(), timeout=5)
            return p, stub, time.time() - t0, info
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or p.poll() is not None:
                raise
            time.sleep(0.005)


def insert(stub, items, first, n):
    for s in range(first, first + n, BATCH):
        for i, it in enumerate(items):
            it.seq = s + i
            it.obs[0] = 0.001 * (s + i)
        stub.Insert(iter([ibrl_pb2.InsertRequest(table="online", items=items)]), timeout=60)


def prepare(log):
    tpl = WORK + "/template"
    if os.path.exists(tpl + "/store.ckpt"):
        return tpl
    shutil.rmtree(tpl, ignore_errors=True)
    p, stub, _, _ = start(BIN_AFTER, tpl, log)
    items = [ibrl_pb2.Item(obs=[0.25] * OBS, action=[0.5] * ACT, reward=1.0, discount=0.99,
                           next_obs=[0.125] * OBS, proposer=1, actor_id=1, seq=i, weight_version=1)
             for i in range(BATCH)]
    t = time.time()
    insert(stub, items, 0, CKPT_ROWS)
    stub.Checkpoint(ibrl_pb2.CheckpointRequest(), timeout=300)
    insert(stub, items, CKPT_ROWS, LOG_ROWS)
    p.send_signal(signal.SIGKILL)
    p.wait()
    subprocess.run(["sync"], check=True)
    print("prepared %s in %.0f s: %s" % (tpl, time.time() - t,
          ", ".join("%s %d bytes" % (n, os.path.getsize(tpl + "/" + n)) for n in sorted(os.listdir(tpl)))))
    return tpl


def main():
    log = open(WORK + "/replay.log", "a")
    tpl = prepare(log)
    times = {"before": [], "after": []}
    for r in range(RUNS):
        for name, bindir in (("before", BIN_BEFORE), ("after", BIN_AFTER)):
            run = WORK + "/run"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(tpl, run)
            subprocess.run(["sync"], check=True)
            log.write("=== run %d %s\n" % (r + 1, name))
            log.flush()
            p, stub, dt, info = start(bindir, run, log)
            p.send_signal(signal.SIGKILL)
            p.wait()
            times[name].append(dt)
            print("run %d %-6s ready after %.2f s, %s rows; files after: %s" % (
                r + 1, name, dt, "/".join(str(t.size) for t in info.tables),
                ", ".join(sorted(os.listdir(run)))), flush=True)
    for name in ("before", "after"):
        print("%s: median %.2f s (runs %s)" % (name, statistics.median(times[name]),
                                              ", ".join("%.2f" % t for t in times[name])))


main()
