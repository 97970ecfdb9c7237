"""Second scenario of run.sh: a shard stopped (SIGTERM) while its disk is full, then restarted on
the full disk, then given space back (evidence script; see README.md). Periodic checkpoints every
2 s. Prints a timeline: the exit code of the stop, the files left, what the restarted shard answers
on the full disk, how soon inserts work once the filler is deleted, and, after a SIGKILL and
another restart, whether every acknowledged row is there once."""
import os, signal, subprocess, sys, time
BIN, PYGEN, MNT = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, PYGEN)
import grpc, ibrl_pb2, ibrl_pb2_grpc
OBS, ACT, BATCH = 69, 7, 64
T0 = time.time()
def say(m): print("%7.2f s  %s" % (time.time() - T0, m), flush=True)
def start(store, log):
    p = subprocess.Popen([BIN + "/ibrl-replay", "--port", "0", "--obs-dim", str(OBS), "--act-dim", str(ACT),
                          "--online-capacity", "100000", "--demo-capacity", "16", "--durability", "wal",
                          "--ckpt-dir", store, "--ckpt-period", "2"], stdout=subprocess.PIPE, stderr=log, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening"):
        p.wait(); say("shard did not start, exit %s" % p.returncode); return p, None
    return p, int(line.strip().rsplit(":", 1)[1])
def batch(seq):
    return ibrl_pb2.InsertRequest(table="online", items=[ibrl_pb2.Item(obs=[0.001*(seq+i)]*OBS, action=[0.5]*ACT,
        reward=1.0, discount=0.99, next_obs=[0.002*(seq+i)]*OBS, proposer=1, actor_id=1, seq=seq+i, weight_version=1) for i in range(BATCH)])
store = MNT + "/store"; log = open(MNT + "-replay2.log", "w")
proc, port = start(store, log)
stub = ibrl_pb2_grpc.ReplayStub(grpc.insecure_channel("127.0.0.1:%d" % port))
seq = 0; errs = 0
while errs < 10:
    try:
        stub.Insert(iter([batch(seq)]), timeout=5); seq += BATCH
    except grpc.RpcError as e:
        errs += 1
        if errs == 1: say("full after %d rows: %s" % (seq, e.details()[:160]))
        time.sleep(0.3)
say("SIGTERM with the disk full (%d acknowledged)" % seq)
proc.send_signal(signal.SIGTERM); proc.wait(timeout=60); say("exit code %d" % proc.returncode)
os.system("ls -la %s; df -h %s | tail -1" % (store, MNT))
proc, port = start(store, log)
say("restart on the full disk: port %s" % port)
if port:
    stub = ibrl_pb2_grpc.ReplayStub(grpc.insecure_channel("127.0.0.1:%d" % port))
    info = stub.Info(ibrl_pb2.InfoRequest(), timeout=5)
    say("size %d, durability_broken %s '%s'" % (info.tables[1].size if len(info.tables) > 1 else -1, info.durability_broken, info.durability_error))
    try:
        stub.Insert(iter([batch(seq)]), timeout=5); say("insert on the full disk: OK?!")
    except grpc.RpcError as e:
        say("insert on the full disk: %s" % e.details()[:200])
    os.remove(MNT + "/filler"); say("filler deleted")
    t = time.time(); ok = False
    while time.time() - t < 40:
        try:
            stub.Insert(iter([batch(seq)]), timeout=5); seq += BATCH; ok = True; break
        except grpc.RpcError as e:
            time.sleep(0.2)
    say("insert after space came back: %s after %.2f s" % (ok, time.time() - t))
    time.sleep(3)
    info = stub.Info(ibrl_pb2.InfoRequest(), timeout=5)
    say("checkpoints %d durability_broken %s" % (info.checkpoints, info.durability_broken))
    proc.send_signal(signal.SIGKILL); proc.wait()
    proc, port = start(store, log)
    stub = ibrl_pb2_grpc.ReplayStub(grpc.insecure_channel("127.0.0.1:%d" % port))
    seqs = []
    while True:
        r = stub.Read(ibrl_pb2.ReadRequest(table="online", start=len(seqs), count=1024), timeout=10)
        if not r.items: break
        seqs += [it.seq for it in r.items]
    say("read back %d rows, %d distinct, all acked present: %s" % (len(seqs), len(set(seqs)), set(range(seq)) <= set(seqs)))
    proc.send_signal(signal.SIGTERM); proc.wait(timeout=30)
