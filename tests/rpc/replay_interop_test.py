"""Interop test: Python grpcio (Debian python3-grpcio) against the C ibrl-replay server.

Starts ibrl-replay on 127.0.0.1 with port 0, reads the bound port from its stdout, then with the
stubs generated from proto/ibrl.proto at build time: streams inserts (and checks the reply's counts, actor_stored too, and
a partial acknowledgement under the rate limiter), samples at a fixed demo
fraction, reads Info, reads the tables page by page (Read), checks the standard health protocol with raw bytes (the generated
grpc.health.v1 package would shadow grpcio's own `grpc` package), an unknown method, and a NaN
insert. Exits nonzero on the first failed check. Bounded: every call has a 5 s deadline and the
server is killed after 60 s at the latest."""
import math
import os
import signal
import struct
import subprocess
import sys

sys.path.insert(0, os.environ["IB_PY_GEN"])
import grpc  # noqa: E402
import ibrl_pb2  # noqa: E402
import ibrl_pb2_grpc  # noqa: E402

OBS, ACT = 5, 3
failures = 0


def check(cond, what):
    global failures
    print(("PASS " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures += 1


def item(actor, seq, value, proposer=1):
    return ibrl_pb2.Item(obs=[value] * OBS, action=[value / 2] * ACT, reward=value, discount=0.99,
                         next_obs=[value + 1] * OBS, proposer=proposer, actor_id=actor, seq=seq,
                         weight_version=7)


def main():
    binary = os.environ["IBRL_REPLAY_BIN"]
    proc = subprocess.Popen([binary, "--port", "0", "--obs-dim", str(OBS), "--act-dim", str(ACT),
                             "--online-capacity", "1000", "--demo-capacity", "100"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        check(line.startswith("listening on 127.0.0.1:"), "server prints its port: %r" % line)
        port = int(line.strip().rsplit(":", 1)[1])
        ch = grpc.insecure_channel("127.0.0.1:%d" % port)
        stub = ibrl_pb2_grpc.ReplayStub(ch)

        def batches():
            yield ibrl_pb2.InsertRequest(table="demo", items=[item(99, i, 100.0 + i, 2) for i in range(10)])
            yield ibrl_pb2.InsertRequest(table="online", items=[item(1, i, float(i)) for i in range(20)])
            yield ibrl_pb2.InsertRequest(table="", items=[item(1, i, float(i)) for i in range(15, 30)])

        rep = stub.Insert(batches(), timeout=5)
        check(rep.received == 45 and rep.inserted == 40 and rep.duplicates == 5,
              "insert stream counts %d/%d/%d" % (rep.received, rep.inserted, rep.duplicates))
        # The last item's actor (1) holds seqs 0..29 in "online": the count a writer checks.
        check(rep.actor_stored == 30, "insert reply actor_stored %d (actor 1's rows)" % rep.actor_stored)

        s = stub.Sample(ibrl_pb2.SampleRequest(batch_size=40, mix=ibrl_pb2.Mix(demo_fraction=0.25)), timeout=5)
        check(len(s.items) == 40 and s.n_demo == 10 and s.n_online == 30, "sample mix 10/30 of 40")
        check(s.demo_size == 10 and s.online_size == 30, "sample reports table sizes")
        demo_ok = all(it.proposer == 2 and it.reward >= 100 for it in s.items[:10])
        online_ok = all(it.proposer == 1 and it.reward < 100 for it in s.items[10:])
        check(demo_ok and online_ok, "demo rows first, then online rows")
        consistent = all(list(it.obs) == [it.reward] * OBS and list(it.next_obs) == [it.reward + 1] * OBS
                         and list(it.action) == [it.reward / 2] * ACT for it in s.items)
        check(consistent, "sampled items are intact (obs/action/next_obs match reward)")

        info = stub.Info(ibrl_pb2.InfoRequest(), timeout=5)
        sizes = {t.name: t.size for t in info.tables}
        check(sizes == {"demo": 10, "online": 30}, "Info table sizes %r" % sizes)
        check(info.obs_dim == OBS and info.act_dim == ACT, "Info dims")
        a1 = [(a.inserted, a.duplicates) for a in info.actors if a.actor_id == 1]
        check(a1 == [(30, 5)], "Info actor 1: 30 stored, 5 duplicates (got %r)" % a1)

        # Read: the online table page by page in age order (seqs 0..29 of actor 1), as Items and as
        # ItemColumns; not counted as samples; bad start, table and count refused with their names.
        r = stub.Read(ibrl_pb2.ReadRequest(table="online", start=0, count=100), timeout=5)
        check([it.seq for it in r.items] == list(range(30)) and r.table_size == 30 and r.inserted == 30,
              "Read online: 30 rows in age order, size 30, inserted 30")
        check(all(it.actor_id == 1 and it.weight_version == 7 and list(it.obs) == [float(it.seq)] * OBS
                  and list(it.next_obs) == [it.seq + 1.0] * OBS for it in r.items), "Read rows are intact")
        r = stub.Read(ibrl_pb2.ReadRequest(start=25, count=10), timeout=5)
        check([it.seq for it in r.items] == list(range(25, 30)), "Read page at 25 stops at the end (table '' = online)")
        r = stub.Read(ibrl_pb2.ReadRequest(table="demo", start=3, count=4, columns=True), timeout=5)
        cols_ok = (r.columns.n == 4 and struct.unpack("<4Q", r.columns.seq) == (3, 4, 5, 6)
                   and struct.unpack("<4f", r.columns.reward) == (103.0, 104.0, 105.0, 106.0) and len(r.items) == 0)
        check(cols_ok, "Read demo as ItemColumns: rows 3..6")
        info2 = stub.Info(ibrl_pb2.InfoRequest(), timeout=5)
        sampled = [(t.name, t.sampled) for t in info.tables] == [(t.name, t.sampled) for t in info2.tables]
        check(sampled and info2.limiter.samples == info.limiter.samples, "Read is not counted as sampling")
        for req, name in ((ibrl_pb2.ReadRequest(table="online", start=31, count=5), "start 31"),
                          (ibrl_pb2.ReadRequest(table="nope", count=5), "'nope'"),
                          (ibrl_pb2.ReadRequest(table="online", count=0), "count 0")):
            try:
                stub.Read(req, timeout=5)
                check(False, "Read with %s refused" % name)
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and name in e.details(),
                      "Read with %s -> INVALID_ARGUMENT: %s" % (name, e.details()))

        try:
            stub.Insert(iter([ibrl_pb2.InsertRequest(items=[item(2, 0, float("nan"))])]), timeout=5)
            check(False, "NaN insert refused")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "not finite" in e.details(),
                  "NaN insert -> INVALID_ARGUMENT: %s" % e.details())

        health = ch.unary_unary("/grpc.health.v1.Health/Check")
        check(health(b"", timeout=5) == b"\x08\x01", "health '' -> SERVING")
        check(health(b"\x0a\x08liveness", timeout=5) == b"\x08\x01", "health 'liveness' -> SERVING")
        try:
            health(b"\x0a\x04nope", timeout=5)
            check(False, "health unknown service -> NOT_FOUND")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, "health unknown service -> NOT_FOUND")
        try:
            ch.unary_unary("/ibrl.Replay/NoSuchMethod")(b"", timeout=5)
            check(False, "unknown method -> UNIMPLEMENTED")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNIMPLEMENTED, "unknown method -> UNIMPLEMENTED")
        try:
            watch = ch.unary_stream("/grpc.health.v1.Health/Watch")
            list(watch(b"", timeout=5))
            check(False, "health Watch -> UNIMPLEMENTED")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNIMPLEMENTED, "health Watch -> UNIMPLEMENTED")

        # Partial acknowledgement: a band that admits one more message of 20 rows, then a stream of
        # three messages with max_wait_ms 200: the first is stored, the second waits 200 ms in the
        # rate limiter and is not stored, nor the third, and the reply says so instead of hanging.
        lim = stub.RateLimit(ibrl_pb2.RateLimitRequest(op=ibrl_pb2.RateLimitRequest.GET), timeout=5).limiter
        eb = float(lim.inserts) - float(lim.samples) + 25
        check(eb >= 15, "error buffer %g leaves room for exactly one message of 20" % eb)
        stub.RateLimit(ibrl_pb2.RateLimitRequest(op=ibrl_pb2.RateLimitRequest.SET, samples_per_insert=1,
                                                 error_buffer=eb, min_size=0), timeout=5)

        def held():
            yield ibrl_pb2.InsertRequest(items=[item(3, i, float(i)) for i in range(20)], max_wait_ms=200)
            yield ibrl_pb2.InsertRequest(items=[item(3, i, float(i)) for i in range(20, 30)], max_wait_ms=200)
            yield ibrl_pb2.InsertRequest(items=[item(3, i, float(i)) for i in range(30, 40)], max_wait_ms=200)

        rep = stub.Insert(held(), timeout=5)
        check(rep.received == 20 and rep.inserted == 20 and rep.unacked_messages == 2 and rep.actor_stored == 20,
              "partial ack: received %d inserted %d unacked_messages %d actor_stored %d"
              % (rep.received, rep.inserted, rep.unacked_messages, rep.actor_stored))
        lim = stub.Info(ibrl_pb2.InfoRequest(), timeout=5).limiter
        check(lim.insert_partial_acks == 1, "Info limiter.insert_partial_acks %d" % lim.insert_partial_acks)

        rl = stub.RateLimit(ibrl_pb2.RateLimitRequest(op=ibrl_pb2.RateLimitRequest.PAUSE), timeout=5)
        check(rl.limiter.paused, "RateLimit PAUSE")
        try:
            stub.RateLimit(ibrl_pb2.RateLimitRequest(op=ibrl_pb2.RateLimitRequest.SET, samples_per_insert=-1),
                           timeout=5)
            check(False, "RateLimit SET spi -1 refused")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "RateLimit SET spi -1 -> INVALID_ARGUMENT")

        params = ibrl_pb2_grpc.ParamsStub(ch)
        blob = bytes(range(256)) * 1000
        check(params.Publish(ibrl_pb2.PublishRequest(version=3, blob=blob), timeout=5).version == 3, "Publish v3")
        got = params.GetIfNewer(ibrl_pb2.GetIfNewerRequest(version=0), timeout=5)
        check(got.newer and got.version == 3 and got.blob == blob, "GetIfNewer returns the blob")
        got = params.GetIfNewer(ibrl_pb2.GetIfNewerRequest(version=3, wait_ms=100), timeout=5)
        check(not got.newer and got.version == 3 and got.blob == b"", "GetIfNewer: nothing newer")
        ch.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -9
    check(rc == 0, "server exits 0 on SIGTERM (rc %d)" % rc)
    print("%s" % ("OK" if failures == 0 else "%d FAILED" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
