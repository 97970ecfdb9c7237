"""What the test disk itself does, without ibrl (evidence script; run by run.sh as "loopshort",
needs root). The same disk as eio.py's loop rig: a 24 MB tmpfs, a sparse 64 MB image on it attached
to a loop device, ext4 without a journal (4 kB blocks here), a filler leaving 3 MB. One file gets
log-like records (39,696 bytes, the size of a 64-row batch of paper-size rows), each followed by
fdatasync, until one fails. After every fdatasync that returns 0, the whole file is read back with
O_DIRECT (from the loop device, past the page cache) and compared with what was written.
Then fdatasync is retried twice on the same fd (the "fsyncgate" question: does a retry return 0?),
and the file is read back once more."""
import mmap
import os
import subprocess
import sys

ROOT = sys.argv[1]
TM, MNT = ROOT + "/tm", ROOT + "/mnt"
REC = 39696


def sh(cmd):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    print("$ %s -> exit %d %s" % (cmd, r.returncode, (r.stdout + r.stderr).strip()), flush=True)
    return r.stdout.strip()


def direct_read(path, n):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, (n + 4095) // 4096 * 4096)
    got = os.preadv(fd, [buf], 0)
    os.close(fd)
    return bytes(buf[:min(got, n)])


def differing_pages(disk, shadow, n):
    return [k // 4096 for k in range(0, n, 4096) if disk[k:min(k + 4096, n)] != shadow[k:min(k + 4096, n)]]


def main():
    os.makedirs(TM, exist_ok=True)
    os.makedirs(MNT, exist_ok=True)
    with open("/dev/kmsg", "w") as f:
        f.write("ibrl-eio: scenario loopshort: start\n")
    sh("mount -t tmpfs -o size=24m tmpfs " + TM)
    sh("truncate -s 64M %s/disk.img" % TM)
    dev = sh("losetup -f --show %s/disk.img" % TM)
    with open(ROOT + "/loopdev", "w") as f:
        f.write(dev + "\n")
    sh("mkfs.ext4 -q -F -b 4096 -E lazy_itable_init=0 -O ^has_journal " + dev)
    sh("mount %s %s" % (dev, MNT))
    st = os.statvfs(TM)
    free = st.f_bavail * st.f_frsize // 1024
    with open(TM + "/filler", "wb") as f:
        f.write(b"\0" * ((free - 3072) * 1024))
    path = MNT + "/log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, b"H" * 44)
    os.fdatasync(fd)
    shadow, synced, i, lied = bytearray(b"H" * 44), 44, 0, 0
    while True:
        rec = os.urandom(REC)
        os.write(fd, rec)
        shadow += rec
        try:
            os.fdatasync(fd)
        except OSError as e:
            print("record %d: fdatasync failed: %s (bytes made durable before it: %d)" % (i, e, synced))
            break
        synced, i = len(shadow), i + 1
        bad = differing_pages(direct_read(path, synced), shadow, synced)
        if bad:
            lied += 1
            print("record %d: fdatasync returned 0, but an O_DIRECT read-back differs in %d pages (%d..%d) "
                  "below the durable end; tmpfs free: %d kB" %
                  (i - 1, len(bad), bad[0], bad[-1], os.statvfs(TM).f_bavail * 4))
    for k in range(2):
        try:
            os.fdatasync(fd)
            print("retry %d of fdatasync on the same fd: returns 0" % (k + 1))
        except OSError as e:
            print("retry %d of fdatasync on the same fd: %s" % (k + 1, e))
    os.close(fd)
    bad = differing_pages(direct_read(path, synced), shadow, synced)
    print("at the end: %d pages below the durable end differ from what was written" % len(bad))
    sh("filefrag -v %s | tail -4" % path)
    sh("umount " + MNT)
    print("done: %s" % ("the loop device acknowledged a write that the full tmpfs did not hold" if lied
                        else "every acknowledged byte read back intact"))
    return 0


sys.exit(main())
