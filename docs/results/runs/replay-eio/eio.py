"""A shard whose log's fdatasync fails in the block layer, then gets space back (evidence script, not
a ctest: it needs root for tmpfs, loop devices and mounts). See run.sh beside it for how it is run
and README.md for what it showed.

The disk: a 24 MB tmpfs holds a sparse 64 MB image, attached to a loop device, with ext4 on it
(without or with a journal) mounted as the shard's --ckpt-dir. A filler file on the tmpfs leaves
FREE_KB for the image to grow into; once the tmpfs is full, the loop device's writes of blocks the
image never had fail, so ext4's writeback and the shard's fdatasync fail for real (dmesg shows the
block layer's error). Deleting the filler gives the space back.

One ibrl-replay (--durability wal, paper-size rows: obs 69, action 7) and one writer (actor 1,
batches of 64, one Insert stream per batch, retrying the same batch on any error as an actor does).
Scenarios (argv[4]):
  heal           ext4 without a journal: insert until refused; look at Info, a Checkpoint, a
                 Sample, ibrl-replayctl info and at the broken log itself (what the page cache
                 holds, what a fresh fdatasync says, what is on the disk after the cache is
                 dropped); give the space back; time the heal; insert more; SIGKILL; drop caches,
                 unmount, fsck, re-attach, mount; restart; every acknowledged row there once.
  heal-journal   the same on ext4 with its journal.
  stale-restart  ext4 without a journal: the shard is SIGKILLed while its log is broken and
                 restarted at once on the same directory, as a supervisor would, with the machine
                 (and its page cache) still up and the space back; the writer goes on; then the
                 machine "crashes" (SIGKILL, cache dropped, unmount, fsck, mount) and the shard is
                 restarted again: every acknowledged row must be there once.
  *-eio          the same on the eiodisk rig (EIO instead of ENOSPC; a disk that never acknowledges
                 a write it did not store): heal-eio, heal-journal-eio, stale-restart-eio.
  stale-restart-ckpt-eio  stale-restart-eio with a work-around in this script: a Checkpoint is
                 requested right after the restart, before the writer goes on.
Prints a timeline; exits 1 on a failed check."""
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

BIN, PYGEN, ROOT, SCEN, OUT = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
sys.path.insert(0, PYGEN)
import grpc  # noqa: E402
import ibrl_pb2  # noqa: E402
import ibrl_pb2_grpc  # noqa: E402

OBS, ACT, BATCH, FULL_S, FREE_KB = 69, 7, 64, 8.0, 3072
ITEM = (2 * OBS + ACT + 2) * 4 + 32  # bytes of one item in a log record (persist.c item_bytes)
SEQ_AT = (2 * OBS + ACT + 2) * 4 + 8  # offset of an item's seq in it
T0 = time.time()
TM, MNT = ROOT + "/tm", ROOT + "/mnt"
IMG = ATTACH = None  # the image file (what fsck checks) and what the loop device attaches
HERE = os.path.dirname(os.path.abspath(__file__))
STORE = MNT + "/store"
failures = 0
procs = []


def say(msg):
    print("%7.2f s  %s" % (time.time() - T0, msg), flush=True)


def check(cond, what):
    global failures
    say(("PASS " if cond else "FAIL ") + what)
    failures += 0 if cond else 1


def sh(cmd, quiet=False):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if not quiet or r.returncode != 0:
        out = (r.stdout + r.stderr).strip()
        say("$ %s -> exit %d%s" % (cmd, r.returncode, (": " + out.replace("\n", " | ")) if out else ""))
    return r


def kmsg(text):
    with open("/dev/kmsg", "w") as f:
        f.write("ibrl-eio: %s\n" % text)


def tmpfs_free_kb():
    st = os.statvfs(TM)
    return st.f_bavail * st.f_frsize // 1024


# ---- the disk ----

def disk_setup(journal, rig):
    """rig "loop": the loop device's backing file is the image on the tmpfs (a full tmpfs gives
    the block layer ENOSPC, "critical space allocation error"); rig "eiodisk": the image is served
    by eiodisk.py from a backing file on the tmpfs and a write it cannot store whole gets EIO
    ("I/O error"). Returns the loop device."""
    global IMG, ATTACH
    os.makedirs(TM, exist_ok=True)
    os.makedirs(MNT, exist_ok=True)
    sh("mount -t tmpfs -o size=24m tmpfs " + TM)
    if rig == "loop":
        IMG = ATTACH = TM + "/disk.img"
        sh("truncate -s 64M " + IMG)
    else:
        IMG, ATTACH = TM + "/backing.img", ROOT + "/fuse/disk.img"
        os.makedirs(ROOT + "/fuse", exist_ok=True)
        d = subprocess.Popen([sys.executable, HERE + "/eiodisk.py", ROOT + "/fuse", IMG, str(64 << 20)],
                             stderr=open("%s/%s-eiodisk.log" % (OUT, SCEN), "w"))
        with open(ROOT + "/eiodisk.pid", "w") as f:
            f.write("%d\n" % d.pid)
        for _ in range(50):
            if os.path.exists(ATTACH):
                break
            time.sleep(0.1)
    dev = sh("losetup -f --show " + ATTACH, quiet=True).stdout.strip()
    with open(ROOT + "/loopdev", "w") as f:
        f.write(dev + "\n")
    # Inode tables are written now (no lazy init thread writing later). The journal of the
    # journalled variant is left unwritten, so that its blocks, like the data's, are new to the
    # image: a commit that reaches them once the tmpfs is full fails.
    opts = "-E lazy_itable_init=0,lazy_journal_init=%d%s" % (1 if journal else 0, ",nodiscard" if rig != "loop" else "")
    sh("mkfs.ext4 -q -F %s%s %s" % (opts, "" if journal else " -O ^has_journal", dev))
    sh("mount %s %s" % (dev, MNT))
    os.makedirs(STORE)
    sh("mount | grep %s" % MNT)
    free = tmpfs_free_kb()
    with open(TM + "/filler", "wb") as f:
        f.write(b"\0" * ((free - FREE_KB) * 1024))
    say("%s on %s (ext4 %s journal), image %s in a 24 MB tmpfs; filler leaves %d kB of %d kB free" %
        (MNT, dev, "with a" if journal else "without a", "served by eiodisk.py" if rig != "loop" else "directly",
         tmpfs_free_kb(), free))
    return dev


def disk_crash(dev):
    """After SIGKILL of the shard: what a machine crash leaves. Only what reached the loop device's
    backing file survives: drop the page cache, unmount, detach, fsck, re-attach, mount."""
    sh("echo 3 > /proc/sys/vm/drop_caches")
    sh("umount " + MNT)
    sh("losetup -d " + dev)
    r = sh("e2fsck -fy " + IMG, quiet=True)
    say("e2fsck -fy: exit %d: %s" % (r.returncode, " | ".join(
        l for l in (r.stdout + r.stderr).splitlines() if l.strip())[-600:]))
    dev2 = sh("losetup -f --show " + ATTACH, quiet=True).stdout.strip()
    with open(ROOT + "/loopdev", "w") as f:
        f.write(dev2 + "\n")
    sh("mount %s %s" % (dev2, MNT))
    sh("echo 3 > /proc/sys/vm/drop_caches")
    return dev2


# ---- the shard ----

def start(log):
    p = subprocess.Popen([BIN + "/ibrl-replay", "--port", "0", "--obs-dim", str(OBS), "--act-dim", str(ACT),
                          "--online-capacity", "100000", "--demo-capacity", "16", "--durability", "wal",
                          "--ckpt-dir", STORE], stdout=subprocess.PIPE, stderr=log, text=True)
    procs.append(p)
    with open(ROOT + "/shard.pid", "w") as f:
        f.write("%d\n" % p.pid)
    line = p.stdout.readline()
    if not line.startswith("listening"):
        p.wait()
        raise RuntimeError("shard did not start (exit %s); see its log" % p.returncode)
    port = int(line.strip().rsplit(":", 1)[1])
    return p, ibrl_pb2_grpc.ReplayStub(grpc.insecure_channel("127.0.0.1:%d" % port)), port


def kill(p, sig=signal.SIGKILL):
    p.send_signal(sig)
    p.wait(timeout=60)


def batch(seq):
    return ibrl_pb2.InsertRequest(table="online", items=[
        ibrl_pb2.Item(obs=[0.001 * (seq + i)] * OBS, action=[0.5] * ACT, reward=1.0, discount=0.99,
                      next_obs=[0.002 * (seq + i)] * OBS, proposer=1, actor_id=1, seq=seq + i, weight_version=1)
        for i in range(BATCH)])


def read_online(stub):
    seqs = []
    while True:
        r = stub.Read(ibrl_pb2.ReadRequest(table="online", start=len(seqs), count=1024), timeout=10)
        if not r.items:
            return seqs
        seqs += [it.seq for it in r.items]


class Writer:
    """Actor 1: sends batch `seq` until it is acknowledged, then the next."""

    def __init__(self):
        self.seq, self.acked, self.refused, self.last_err = 0, set(), 0, None

    def step(self, stub):
        """One attempt. Returns None when acknowledged, else the error text."""
        try:
            rep = stub.Insert(iter([batch(self.seq)]), timeout=10)
            if not rep.durable:
                check(False, "an acknowledgement that is not durable")
            self.acked.update(range(self.seq, self.seq + BATCH))
            self.seq += BATCH
            self.last_err = None
            return None
        except grpc.RpcError as e:
            self.refused += 1
            self.last_err = "%s: %s" % (e.code().name, e.details())
            return self.last_err


def info_line(stub):
    i = stub.Info(ibrl_pb2.InfoRequest(), timeout=5)
    return "durability_broken %s, retries %d, for %.1f s, error '%s'" % (
        i.durability_broken, i.durability_retries, i.durability_broken_s, i.durability_error)


# ---- the log as the kernel shows it ----

def log_scan(path):
    """Walks a log (persist.c format) as a restore would: (intact bytes, file bytes, actor-1 seqs of
    the intact records, why it stops early or None)."""
    with open(path, "rb") as f:
        data = f.read()
    off, seqs, why = 44, [], None
    while off < len(data):
        if len(data) - off < 8:
            why = "a torn record header"
            break
        ln, crc = struct.unpack_from("<II", data, off)
        if ln < 8 or ln + 8 > len(data) - off:
            why = "a record length %d past the end of the file" % ln
            break
        payload = data[off + 8:off + 8 + ln]
        if zlib.crc32(payload) != crc:
            why = "a record CRC mismatch"
            break
        table, n = struct.unpack_from("<II", payload, 0)
        if table != 0xffffffff:
            for k in range(n):
                seqs.append(struct.unpack_from("<Q", payload, 8 + k * ITEM + SEQ_AT)[0])
        off += 8 + ln
    return off, len(data), seqs, why


def scan_logs(where):
    """Every log in the directory, oldest first; prints one line each. Returns the rows' seqs."""
    rows = []
    for n in sorted(n for n in os.listdir(STORE) if n.startswith("store.wal.") and len(n) == 26):
        ok, ln, seqs, why = log_scan(STORE + "/" + n)
        say("%s: %s: %d bytes, intact up to %d, %d rows (%s)" % (where, n, ln, ok, len(seqs), why or "no tear"))
        rows += seqs
    return rows


def look_at_broken_log(w):
    """The fsyncgate trap on the shard's own logs: a fresh fdatasync succeeds, and after the clean
    pages are dropped, the disk holds less than the page cache showed."""
    seqs = scan_logs("in the page cache")
    for n in sorted(n for n in os.listdir(STORE) if n.startswith("store.wal.") and len(n) == 26):
        fd = os.open(STORE + "/" + n, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            say("fdatasync of %s on a fresh fd (another process, after the shard's failed one): returns 0" % n)
        except OSError as e:
            say("fdatasync of %s on a fresh fd: %s" % (n, e))
        os.close(fd)
    sh("echo 3 > /proc/sys/vm/drop_caches")
    seqs2 = scan_logs("after dropping the page cache")
    lost = set(seqs) - set(seqs2)
    say("rows the page cache showed but the disk does not hold: %d; acknowledged rows among them: %d" %
        (len(lost), len(lost & w.acked)))
    check(w.acked <= set(seqs2), "every acknowledged row (%d) is intact in the logs on the disk" % len(w.acked))


# ---- scenarios ----

def fill_until_refused(stub, w):
    while True:
        err = w.step(stub)
        if err:
            say("Insert refused after %d acknowledged rows: %s" % (len(w.acked), err))
            return
        if time.time() - T0 > 120:
            raise RuntimeError("the disk never filled up")


def outage_probe(stub, port, w):
    say("Info: " + info_line(stub))
    try:
        stub.Checkpoint(ibrl_pb2.CheckpointRequest(), timeout=60)
        say("Checkpoint on the full disk: OK")
    except grpc.RpcError as e:
        say("Checkpoint on the full disk: %s: %s" % (e.code().name, e.details()))
    s = stub.Sample(ibrl_pb2.SampleRequest(batch_size=32), timeout=5)
    check(len(s.items) == 32, "Sample works while the disk is failing (%d rows)" % len(s.items))
    out = subprocess.run([BIN + "/ibrl-replayctl", "--shards", "127.0.0.1:%d" % port, "info"],
                         capture_output=True, text=True).stdout
    say("ibrl-replayctl info: " + " | ".join(l.strip() for l in out.splitlines() if "durab" in l))


def retry_for(stub, w, seconds):
    t = time.time()
    n0 = w.refused
    while time.time() - t < seconds:
        if w.step(stub) is None:
            say("an insert was accepted while the disk is still full (%d acknowledged)" % len(w.acked))
        time.sleep(0.2)
    say("%d refused attempts in %.0f s; last: %s" % (w.refused - n0, seconds, w.last_err))


def until_accepted(stub, w, limit):
    t = time.time()
    while time.time() - t < limit:
        if w.step(stub) is None:
            return time.time() - t
        time.sleep(0.1)
    return None


def more_batches(stub, w, n):
    for _ in range(n):
        while w.step(stub) is not None:
            time.sleep(0.2)


def verify(stub, w, what):
    seqs = read_online(stub)
    missing = w.acked - set(seqs)
    check(len(seqs) == len(set(seqs)), "%s: no row stored twice (%d rows read back)" % (what, len(seqs)))
    check(not missing, "%s: every one of the %d acknowledged rows is there (%d missing%s)" %
          (what, len(w.acked), len(missing),
           ", seqs %d..%d" % (min(missing), max(missing)) if missing else ""))


def scenario_heal(journal, rig, log):
    dev = disk_setup(journal, rig)
    kmsg("scenario %s: start" % SCEN)
    proc, stub, port = start(log)
    w = Writer()
    fill_until_refused(stub, w)
    kmsg("scenario %s: first refused insert" % SCEN)
    look_at_broken_log(w)
    outage_probe(stub, port, w)
    retry_for(stub, w, FULL_S)
    say("Info: " + info_line(stub))
    os.remove(TM + "/filler")
    kmsg("scenario %s: filler deleted" % SCEN)
    say("filler deleted; tmpfs has %d kB free" % tmpfs_free_kb())
    dt = until_accepted(stub, w, 70)
    if dt is None:
        say("no insert accepted within 70 s after the space came back; Info: " + info_line(stub))
        sh("mount | grep %s; ls -la %s" % (MNT, STORE))
    else:
        say("inserts accepted again %.2f s after the space came back (%d acknowledged); Info: %s" %
            (dt, len(w.acked), info_line(stub)))
        more_batches(stub, w, 20)
    say("shard SIGKILLed with %d rows acknowledged (%d refused attempts in all)" % (len(w.acked), w.refused))
    kill(proc)
    sh("ls -la " + STORE)
    dev = disk_crash(dev)
    proc, stub, port = start(log)
    verify(stub, w, "after SIGKILL, fsck and remount")
    if dt is None:
        dt2 = until_accepted(stub, w, 30)
        say("after the remount and restart an insert is accepted: %s" % (dt2 is not None))
        more_batches(stub, w, 5)
        kill(proc)
        dev = disk_crash(dev)
        proc, stub, port = start(log)
        verify(stub, w, "after a second SIGKILL and remount")
    kill(proc, signal.SIGTERM)
    kmsg("scenario %s: end" % SCEN)


def scenario_stale_restart(rig, log, ckpt_first):
    dev = disk_setup(False, rig)
    kmsg("scenario %s: start" % SCEN)
    proc, stub, port = start(log)
    w = Writer()
    fill_until_refused(stub, w)
    kmsg("scenario %s: first refused insert" % SCEN)
    say("Info: " + info_line(stub))
    scan_logs("in the page cache")
    retry_for(stub, w, 3)
    kill(proc)
    say("shard SIGKILLed while its log is broken (%d acknowledged); the machine stays up" % len(w.acked))
    os.remove(TM + "/filler")
    kmsg("scenario %s: filler deleted" % SCEN)
    say("filler deleted; tmpfs has %d kB free; restarting the shard on the same directory at once" %
        tmpfs_free_kb())
    proc, stub, port = start(log)
    seqs = read_online(stub)
    say("the restarted shard restored %d rows: %d acknowledged, %d never acknowledged (read from the page "
        "cache)" % (len(seqs), len(set(seqs) & w.acked), len(set(seqs) - w.acked)))
    if ckpt_first:  # the work-around: make what the restore read durable before any insert
        stub.Checkpoint(ibrl_pb2.CheckpointRequest(), timeout=60)
        say("Checkpoint requested right after the restart, before the writer goes on: OK")
    dt = until_accepted(stub, w, 30)
    say("the retried batch was acknowledged after %s s" % (None if dt is None else "%.2f" % dt))
    more_batches(stub, w, 20)
    say("Info: " + info_line(stub))
    verify(stub, w, "before the crash")
    sh("ls -la " + STORE)
    say("machine crash: SIGKILL with %d rows acknowledged, then the page cache is gone" % len(w.acked))
    kill(proc)
    dev = disk_crash(dev)
    scan_logs("on the disk after the crash")
    proc, stub, port = start(log)
    verify(stub, w, "after the crash")
    kill(proc, signal.SIGTERM)
    kmsg("scenario %s: end" % SCEN)


def main():
    log = open("%s/%s-replay.log" % (OUT, SCEN), "w")
    try:
        rig = "eiodisk" if SCEN.endswith("-eio") else "loop"
        if SCEN in ("heal", "heal-eio"):
            scenario_heal(False, rig, log)
        elif SCEN in ("heal-journal", "heal-journal-eio"):
            scenario_heal(True, rig, log)
        elif SCEN in ("stale-restart", "stale-restart-eio", "stale-restart-ckpt-eio"):
            scenario_stale_restart(rig, log, "-ckpt" in SCEN)
        else:
            raise SystemExit("unknown scenario " + SCEN)
    except Exception as e:  # report, then let run.sh clean up
        check(False, "scenario aborted: %r" % e)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    say("done: %d failed checks" % failures)
    return 1 if failures else 0


sys.exit(main())
