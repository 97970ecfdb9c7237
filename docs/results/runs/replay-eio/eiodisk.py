"""eiodisk: a one-file FUSE file system that stores its file in a backing file and fails a write
with EIO, whole, when the backing file system cannot take all of it (evidence tool of
docs/results/runs/replay-eio; speaks the FUSE protocol on /dev/fuse itself, no libfuse).

    python3 eiodisk.py MOUNTPOINT BACKING_FILE SIZE_BYTES

MOUNTPOINT/disk.img is the file; attach it to a loop device and make a file system on that. Put
BACKING_FILE on a small tmpfs: once the tmpfs is full, the loop device's writes of blocks the image
never had get EIO from here, so the block layer reports "I/O error" (BLK_STS_IOERR) to the file
system above, and deleting a filler on the tmpfs gives the space back.

Why not a loop device straight on the tmpfs file: when the tmpfs fills up in the middle of a
request, the loop driver of this kernel completes the request as written although the tmpfs took
only part of it (loopshort.py shows it), so a successful fdatasync above it can leave zeros on the
"disk". This file system never answers a write it did not store whole. Runs in the foreground
until unmounted (umount MOUNTPOINT); prints one line per failed write to stderr."""
import ctypes
import errno
import os
import stat
import struct
import sys
import time

MNT, BACKING, SIZE = sys.argv[1], sys.argv[2], int(sys.argv[3])
ROOT_ID, FILE_ID, NAME = 1, 2, b"disk.img"
# Opcodes (linux/fuse.h).
LOOKUP, FORGET, GETATTR, SETATTR, OPEN, READ, WRITE, STATFS, RELEASE, FSYNC = 1, 2, 3, 4, 14, 15, 16, 17, 18, 20
GETXATTR, LISTXATTR, FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR, FSYNCDIR = 22, 23, 25, 26, 27, 28, 29, 30
ACCESS, INTERRUPT, DESTROY, BATCH_FORGET, FALLOCATE, LSEEK = 34, 36, 38, 42, 43, 46
IN_HDR = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, total_extlen, pad
OUT_HDR = struct.Struct("<IiQ")  # len, error, unique
MAX_WRITE = 128 * 1024
FOPEN_DIRECT_IO = 1

fd_back = os.open(BACKING, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd_back, SIZE)
size = SIZE
failed = 0


def attr(node):
    now = int(time.time())
    if node == ROOT_ID:
        mode, nlink, sz = stat.S_IFDIR | 0o755, 2, 0
    else:
        mode, nlink, sz = stat.S_IFREG | 0o644, 1, size
    # ino size blocks atime mtime ctime atimensec mtimensec ctimensec mode nlink uid gid rdev blksize flags
    return struct.pack("<QQQQQQIIIIIIIIII", node, sz, (sz + 511) // 512, now, now, now, 0, 0, 0, mode, nlink,
                       0, 0, 0, 4096, 0)


def attr_out(node):
    return struct.pack("<QII", 1, 0, 0) + attr(node)


def entry_out(node):
    return struct.pack("<QQQQII", node, 0, 1, 1, 0, 0) + attr(node)


def handle(op, node, body):
    """Returns (errno, reply payload), or None for requests that get no reply."""
    global size, failed
    if op == INIT:
        major, minor, max_readahead, flags = struct.unpack_from("<IIII", body)
        big_writes = 1 << 5
        # major minor max_readahead flags max_background congestion_threshold max_write time_gran
        # max_pages map_alignment flags2 max_stack_depth unused[6]
        return 0, struct.pack("<IIIIHHIIHHII6I", 7, 31, max_readahead, flags & big_writes, 16, 12, MAX_WRITE, 1,
                              MAX_WRITE // 4096, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    if op in (FORGET, BATCH_FORGET, INTERRUPT):
        return None
    if op == LOOKUP:
        name = body.split(b"\0", 1)[0]
        return (0, entry_out(FILE_ID)) if node == ROOT_ID and name == NAME else (errno.ENOENT, b"")
    if op == GETATTR:
        return 0, attr_out(node)
    if op == SETATTR:
        valid = struct.unpack_from("<I", body)[0]
        if valid & (1 << 3):  # FATTR_SIZE
            new = struct.unpack_from("<Q", body, 16)[0]
            os.ftruncate(fd_back, new)
            size = new
        return 0, attr_out(node)
    if op in (OPEN, OPENDIR):
        return 0, struct.pack("<QII", 1, FOPEN_DIRECT_IO if op == OPEN else 0, 0)
    if op == READ:
        fh, off, n = struct.unpack_from("<QQI", body)
        if node == ROOT_ID:
            return 0, b""
        return 0, os.pread(fd_back, min(n, max(0, size - off)), off)
    if op == READDIR:
        fh, off, n = struct.unpack_from("<QQI", body)
        if off > 0:
            return 0, b""
        out = b""
        for i, (ino, name, typ) in enumerate([(ROOT_ID, b".", 4), (ROOT_ID, b"..", 4), (FILE_ID, NAME, 8)]):
            ent = struct.pack("<QQII", ino, i + 1, len(name), typ) + name
            out += ent + b"\0" * ((8 - len(ent) % 8) % 8)
        return 0, out
    if op == WRITE:
        fh, off, n = struct.unpack_from("<QQI", body)
        data = body[40:40 + n]
        try:
            k = os.pwrite(fd_back, data, off)
        except OSError as e:
            k, why = -1, e.strerror
        else:
            why = "short write"
        if k != n:
            failed += 1
            print("eiodisk: write of %d bytes at %d failed (%s): answered EIO (%d failed writes)" %
                  (n, off, why, failed), file=sys.stderr, flush=True)
            return errno.EIO, b""
        size = max(size, off + n)
        return 0, struct.pack("<II", n, 0)
    if op in (FSYNC, FSYNCDIR, FLUSH, RELEASE, RELEASEDIR, ACCESS):
        if op == FSYNC:
            os.fsync(fd_back)
        return 0, b""
    if op == STATFS:
        blocks = SIZE // 4096
        return 0, struct.pack("<QQQQQIIII6I", blocks, blocks, blocks, 16, 15, 4096, 255, 4096, 0, 0, 0, 0, 0, 0, 0)
    if op == FALLOCATE:
        return errno.EOPNOTSUPP, b""
    if op == DESTROY:
        return 0, b""
    return errno.ENOSYS, b""


def main():
    dev = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    opts = "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other" % dev
    if libc.mount(b"eiodisk", MNT.encode(), b"fuse.eiodisk", 6, opts.encode()) != 0:  # MS_NOSUID|MS_NODEV
        e = ctypes.get_errno()
        sys.exit("eiodisk: mount on %s failed: %s" % (MNT, os.strerror(e)))
    print("eiodisk: %s/disk.img (%d bytes) stored in %s" % (MNT, SIZE, BACKING), file=sys.stderr, flush=True)
    while True:
        try:
            req = os.read(dev, MAX_WRITE + 65536)
        except OSError as e:
            if e.errno == errno.ENODEV:  # unmounted
                return 0
            if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                continue
            raise
        ln, op, unique, node, uid, gid, pid, extlen, _ = IN_HDR.unpack_from(req)
        r = handle(op, node, req[IN_HDR.size:ln])
        if r is None:
            continue
        err, payload = r
        if err:
            payload = b""
        try:
            os.write(dev, OUT_HDR.pack(OUT_HDR.size + len(payload), -err, unique) + payload)
        except OSError as e:
            if e.errno != errno.ENOENT:  # ENOENT: the request was interrupted meanwhile
                raise


sys.exit(main())
