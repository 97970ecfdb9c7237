"""A shard on a real file system that fills up, then gets space back (evidence script, not a ctest:
it needs root to mount a small tmpfs). See run.sh beside it for how it is run and README.md for
what it showed.

One ibrl-replay (--durability wal, paper-size rows: obs 69, action 7) keeps its checkpoint
directory on an 8 MB tmpfs that a 5 MB filler file mostly fills. A writer (actor 1, batches of 64,
one Insert stream per batch, retrying the same batch on any error as an actor does) inserts until
the disk is full, keeps retrying for FULL_S seconds, then the filler is deleted and it goes on.
Then the shard is killed with SIGKILL, restarted on the same directory, and the online table is
read back: every acknowledged seq must be there exactly once. Prints a timeline and exits 1 on a
failed check."""
import os
import signal
import subprocess
import sys
import time

BIN, PYGEN, MNT = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, PYGEN)
import grpc  # noqa: E402
import ibrl_pb2  # noqa: E402
import ibrl_pb2_grpc  # noqa: E402

OBS, ACT, BATCH, FULL_S = 69, 7, 64, 8.0
T0 = time.time()
failures = 0


def say(msg):
    print("%7.2f s  %s" % (time.time() - T0, msg), flush=True)


def check(cond, what):
    global failures
    say(("PASS " if cond else "FAIL ") + what)
    failures += 0 if cond else 1


def start(store, log):
    p = subprocess.Popen([BIN + "/ibrl-replay", "--port", "0", "--obs-dim", str(OBS), "--act-dim", str(ACT),
                          "--online-capacity", "100000", "--demo-capacity", "16", "--durability", "wal",
                          "--ckpt-dir", store], stdout=subprocess.PIPE, stderr=log, text=True)
    line = p.stdout.readline()
    port = int(line.strip().rsplit(":", 1)[1])
    return p, port


def batch(seq):
    return ibrl_pb2.InsertRequest(table="online", items=[
        ibrl_pb2.Item(obs=[0.001 * (seq + i)] * OBS, action=[0.5] * ACT, reward=1.0, discount=0.99,
                      next_obs=[0.002 * (seq + i)] * OBS, proposer=1, actor_id=1, seq=seq + i, weight_version=1)
        for i in range(BATCH)])


def main():
    store = MNT + "/store"
    log = open(MNT + "-replay.log", "w")
    proc, port = start(store, log)
    stub = ibrl_pb2_grpc.ReplayStub(grpc.insecure_channel("127.0.0.1:%d" % port))
    acked, seq, last_err, full_at, freed_at, back_at = 0, 0, None, None, None, None
    errors = 0
    while True:
        try:
            rep = stub.Insert(iter([batch(seq)]), timeout=5)
            if not rep.durable:
                check(False, "an acknowledgement that is not durable")
            seq += BATCH
            acked = seq
            if last_err is not None:
                back_at = time.time()
                say("inserts accepted again (%d errors while full); acknowledged %d rows" % (errors, acked))
                last_err = None
            if freed_at is not None and acked >= back_seq + 20 * BATCH:
                break
        except grpc.RpcError as e:
            errors += 1
            text = "%s: %s" % (e.code().name, e.details())
            if last_err is None:
                full_at = full_at or time.time()
                say("Insert refused after %d acknowledged rows: %s" % (acked, text))
                info = stub.Info(ibrl_pb2.InfoRequest(), timeout=5)
                say("Info: durability_broken %s, error '%s', for %.1f s" %
                    (info.durability_broken, info.durability_error, info.durability_broken_s))
                try:
                    stub.Checkpoint(ibrl_pb2.CheckpointRequest(), timeout=30)
                    say("Checkpoint on the full disk: OK")
                except grpc.RpcError as ce:
                    say("Checkpoint on the full disk: %s: %s" % (ce.code().name, ce.details()))
                s = stub.Sample(ibrl_pb2.SampleRequest(batch_size=32), timeout=5)
                check(len(s.items) == 32, "Sample works while the disk is full (%d rows)" % len(s.items))
            last_err = text
            if freed_at is None and time.time() - full_at >= FULL_S:
                out = subprocess.run([BIN + "/ibrl-replayctl", "--shards", "127.0.0.1:%d" % port, "info"],
                                     capture_output=True, text=True).stdout
                say("ibrl-replayctl info: " + " | ".join(l.strip() for l in out.splitlines() if "durability" in l))
                os.remove(MNT + "/filler")
                freed_at = time.time()
                back_seq = acked
                say("filler deleted (%d errors so far)" % errors)
            time.sleep(0.2)
        if time.time() - T0 > 120:
            check(False, "bounded: gave up after 120 s")
            break
    check(full_at is not None, "the disk filled up (Insert refused)")
    check(back_at is not None and freed_at is not None and back_at - freed_at < 5,
          "inserts accepted again %.2f s after the space came back" % ((back_at or 0) - (freed_at or 0)))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    say("shard SIGKILLed with %d rows acknowledged; restarting on the same directory" % acked)
    proc, port = start(store, log)
    stub = ibrl_pb2_grpc.ReplayStub(grpc.insecure_channel("127.0.0.1:%d" % port))
    seqs = []
    while True:
        r = stub.Read(ibrl_pb2.ReadRequest(table="online", start=len(seqs), count=1024), timeout=10)
        if not r.items:
            break
        seqs += [it.seq for it in r.items if it.actor_id == 1]
    check(len(seqs) == len(set(seqs)), "no row stored twice (%d rows read back)" % len(seqs))
    check(set(range(acked)) <= set(seqs), "every one of the %d acknowledged rows is there" % acked)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    say("done: %d failed checks" % failures)
    return 1 if failures else 0


sys.exit(main())
