#!/usr/bin/env python3
"""ctl_replayctl_test.py: ibrl-replayctl against ibrl-replay children on 127.0.0.1.

Checks the exit codes scripts rely on (0 ok, 1 server error/unhealthy, 2 usage, 3 unreachable),
that every --json output parses and carries the right numbers, and the HDF5 round trip:
a robomimic-style file written here with h5py -> import-demos -> export -> the exported episodes
equal the transitions computed here from the file -> import of the export into a fresh shard ->
export again gives the same transitions. Then the audit cases (each was red before its fix):
export keys items by (actor, seq), not by content (two identical episodes are two), chains a
standing-still agent's repeated observations in seq order (one episode, no open end), reads each
table in one exact pass (Replay.Read: every row once, not counted as sampling, --max-draws
accepted and unused), reports inserts made while it runs, exits 3 with a shard down; sample with a shard down exits 3 and
names it; sample held by the rate limiter exits 1 and says so; sample --n above the shard's
batch bound works; ratelimit --json lists a shard that failed; watch into a pipe writes no
terminal escapes; a non-PEM --tls-roots is a usage error; import-demos warns when part of a
file collides with earlier seqs. Every child and command is bounded in time.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

BIN_DIR = os.path.dirname(os.environ.get("IBRL_REPLAY_BIN", ""))
REPLAY = os.environ.get("IBRL_REPLAY_BIN", "")
CTL = os.path.join(BIN_DIR, "ibrl-replayctl")
FAILS = []


def check(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def start_server(*extra):
    p = subprocess.Popen([REPLAY, "--port", "0", "--obs-dim", "3", "--act-dim", "2", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    t0 = time.time()
    while time.time() - t0 < 10:
        line = p.stdout.readline()
        if line.startswith("listening on "):
            return p, line.split()[-1]
        if p.poll() is not None:
            break
    p.kill()
    raise RuntimeError("ibrl-replay did not start")


def ctl(*args, shards=None, timeout=60):
    env = dict(os.environ)
    env.pop("IBRL_REPLAY_SHARDS", None)
    env.pop("IBRL_REPLAY_TOKEN", None)
    if shards is not None:
        env["IBRL_REPLAY_SHARDS"] = shards
    r = subprocess.run([CTL, *args], capture_output=True, text=True, timeout=timeout, env=env)
    return r.returncode, r.stdout, r.stderr


def ctl_json(*args, shards=None):
    code, out, err = ctl("--json", *args, shards=shards)
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    return code, doc, err


def write_demos(path, episodes):
    """episodes: list of (obs_a (T,2), obs_b (T,1), actions (T,2), rewards (T,))"""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        total = 0
        for i, (oa, ob, ac, rw) in enumerate(episodes):
            g = data.create_group("demo_%d" % i)
            g.attrs["num_samples"] = len(rw)
            g.create_dataset("obs/a", data=oa)
            g.create_dataset("obs/b", data=ob)
            g.create_dataset("actions", data=ac)
            g.create_dataset("rewards", data=rw)
            d = np.zeros(len(rw))
            d[-1] = 1
            g.create_dataset("dones", data=d)
            total += len(rw)
        data.attrs["total"] = total


def transitions_of(episodes, gamma):
    """The stack-1, chunk-1 transitions of each episode, as lists of tuples (obs, act, r, disc, next)."""
    eps = []
    for oa, ob, ac, rw in episodes:
        obs = np.concatenate([oa, ob.reshape(-1, 1)], axis=1).astype(np.float32)
        T = len(rw)
        rows = []
        for t in range(T):
            disc = 0.0 if t == T - 1 else np.float32(gamma)
            nxt = obs[min(t + 1, T - 1)]
            rows.append((tuple(obs[t]), tuple(ac[t].astype(np.float32)), np.float32(rw[t]), np.float32(disc),
                         tuple(nxt)))
        eps.append(rows)
    return eps


def nstep_transitions_of(episodes, gamma, n):
    """The stack-1, chunk-1, n-step transitions: reward r_t + d_t r_t+1 + ..., discount d_t d_t+1 ...
    with d = gamma, 0 on an episode's last step (float32, in the order the C code adds)."""
    eps = []
    g = np.float32(gamma)
    for oa, ob, ac, rw in episodes:
        obs = np.concatenate([oa, ob.reshape(-1, 1)], axis=1).astype(np.float32)
        T = len(rw)
        rows = []
        for t in range(T):
            ret, w, u = np.float32(0), np.float32(1), t
            for _ in range(n):
                if u >= T:
                    break
                d = np.float32(0) if u == T - 1 else g
                ret = np.float32(ret + np.float32(w * np.float32(rw[u])))
                w = np.float32(w * d)
                u += 1
                if w == 0:
                    break
            rows.append((tuple(obs[t]), tuple(ac[t].astype(np.float32)), ret, w, tuple(obs[min(u, T - 1)])))
        eps.append(rows)
    return eps


def read_export(path):
    """Episodes of an exported file as lists of (obs, act, r, done, next)."""
    eps = []
    with h5py.File(path, "r") as f:
        names = sorted(f["data"].keys(), key=lambda s: int(s.split("_")[1]))
        for n in names:
            g = f["data"][n]
            obs = np.asarray(g["obs/obs"], dtype=np.float32)
            nxt = np.asarray(g["next_obs/obs"], dtype=np.float32)
            ac = np.asarray(g["actions"], dtype=np.float32)
            rw = np.asarray(g["rewards"], dtype=np.float32)
            dn = np.asarray(g["dones"])
            eps.append([(tuple(obs[t]), tuple(ac[t]), rw[t], int(dn[t]), tuple(nxt[t])) for t in range(len(rw))])
    return eps


def audit_cases(tmp, procs):
    """The replayctl audit's regression cases (see the module docstring)."""
    srv, target = start_server()
    procs.append(srv)
    rng = np.random.default_rng(9)
    # Two identical episodes: equal content, different seqs -> two items each.
    T = 6
    oa = rng.standard_normal((T, 2)).astype(np.float32)
    ob = rng.standard_normal((T, 1)).astype(np.float32)
    ac = rng.uniform(-1, 1, (T, 2)).astype(np.float32)
    rw = np.zeros(T, dtype=np.float32)
    twins = os.path.join(tmp, "twins.hdf5")
    write_demos(twins, [(oa, ob, ac, rw), (oa, ob, ac, rw)])
    imp = ["--stack", "1", "--chunk", "1", "--nstep", "1", "--gamma", "0.9", "--no-cut"]
    code, doc, err = ctl_json("import-demos", twins, *imp, shards=target)
    check(code == 0 and doc is not None and doc["inserted"] == 2 * T, "twins imported (%s)" % err.strip()[:200])
    out = os.path.join(tmp, "twins_export.hdf5")
    code, doc, err = ctl_json("export", "--table", "demo", "--out", out, shards=target)
    check(code == 0 and doc is not None and doc["items"] == 2 * T and doc.get("complete") is True,
          "export keeps items with equal content but their own seqs: %s of %d (%s)"
          % (doc and doc.get("items"), 2 * T, err.strip()[:200]))

    # An agent standing still for 30 steps: the observation repeats, so 29 items have obs ==
    # next_obs. The rebuilt episode must follow seq order: one episode, equal to the file's
    # (content chaining in pool order made 12 episodes with 11 open ends of this one).
    srv2, target2 = start_server()
    procs.append(srv2)
    frames = [[0, 0, 0]] + [[1, 1, 1]] * 30 + [[2, 2, 2], [2, 2, 2], [3, 3, 3]]
    fr = np.asarray(frames, dtype=np.float32)
    T2 = len(frames)
    st_a, st_b = fr[:, :2].copy(), fr[:, 2:].copy()
    st_ac = rng.uniform(-1, 1, (T2, 2)).astype(np.float32)
    st_rw = np.zeros(T2, dtype=np.float32)
    st_rw[-1] = 1
    still = os.path.join(tmp, "still.hdf5")
    write_demos(still, [(st_a, st_b, st_ac, st_rw)])
    code, doc, _ = ctl_json("import-demos", still, *imp, shards=target2)
    check(code == 0 and doc["inserted"] == T2, "standing-still episode imported")
    out2 = os.path.join(tmp, "still_export.hdf5")
    code, doc, err = ctl_json("export", "--table", "demo", "--out", out2, shards=target2)
    ref = [[(o, a, r, int(d == 0), n) for (o, a, r, d, n) in ep]
           for ep in transitions_of([(st_a, st_b, st_ac, st_rw)], 0.9)]
    got = read_export(out2) if code == 0 else []
    check(code == 0 and doc.get("episodes") == 1 and doc.get("open_ends") == 0 and got == ref,
          "repeated observations chain in seq order: 1 episode, 0 open ends, equal to the file "
          "(got %s episodes, %s open ends; %s)" % (doc and doc.get("episodes"), doc and doc.get("open_ends"),
                                                 err.strip()[:200]))

    # Export of a table that keeps changing (a full ring, the feeder inserting): it ends, reads
    # each position once (items = the ring's size, no row twice) and says the file is no snapshot.
    # One export of 12 pages can fall between two of the feeder's inserts: up to 3 tries.
    srv3, target3 = start_server("--online-capacity", "12000")
    procs.append(srv3)
    feeder = subprocess.Popen([sys.executable, "-c", FEEDER, os.environ["IB_PY_GEN"], target3],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while time.time() - t0 < 30:  # until the feeder has filled the ring once
            code, doc, _ = ctl_json("info", "--rate-ms", "0", shards=target3)
            if code == 0 and {t["name"]: t["size"] for t in doc["shards"][0]["tables"]}["online"] >= 12000:
                break
            time.sleep(0.1)
        a3 = [a for a in doc["shards"][0]["actors"] if a["actor_id"] == 3] if code == 0 else []
        check(len(a3) == 1 and a3[0]["inserted"] >= 12000 and a3[0]["duplicates"] == 0,
              "info --json: the feeder's actor 3 stored >= 12000 rows, no duplicates (%r)" % a3)
        for _ in range(3):
            code, doc, err = ctl_json("export", "--table", "online", "--out", os.path.join(tmp, "live.hdf5"),
                                      shards=target3)
            if doc is None or doc.get("inserts_during", 0) > 0:
                break
        check(code == 0 and doc is not None and doc.get("inserts_during", 0) > 0 and "not a snapshot" in err
              and doc.get("items") == 12000 and doc.get("repeats") == 0 and doc.get("complete") is True,
              "export of a live table ends, reads 12000 distinct rows and warns (inserts_during %s, items %s; %s)"
              % (doc and doc.get("inserts_during"), doc and doc.get("items"), err.strip()[:200]))
    finally:
        feeder.kill()
        feeder.wait()
    # --max-draws (the former sampling export's cap) is accepted and unused: the export is exact,
    # one pass (every row read once, none twice), not rate limited and not counted as sampling.
    code, doc, err = ctl_json("export", "--table", "demo", "--out", os.path.join(tmp, "part.hdf5"), "--max-draws", "1",
                              shards=target)
    check(code == 0 and doc is not None and doc.get("complete") is True and doc["items"] == 2 * T
          and doc.get("rows_read") == 2 * T and doc.get("repeats") == 0 and doc.get("pages") == 1,
          "export with --max-draws 1: exact, one page of %d rows (%s)" % (2 * T, err.strip()[:200]))
    code, doc, _ = ctl_json("info", "--rate-ms", "0", shards=target)
    check(code == 0 and all(t["sampled"] == 0 for t in doc["shards"][0]["tables"]),
          "exports are not counted as samples")
    lim = doc["shards"][0]["limiter"] if code == 0 else {}
    check(lim.get("insert_partial_acks") == 0 and lim.get("insert_timeouts") == 0,
          "info --json: the limiter's insert_partial_acks and insert_timeouts (0 here): %r" % lim)
    check(code == 0 and doc["shards"][0].get("restore_missing_acked") == 0,
          "info --json: restore_missing_acked 0 (a shard that lost nothing)")
    # A shard that is down: exit 3, nothing written.
    code, _, err = ctl("export", "--table", "demo", "--out", os.path.join(tmp, "down.hdf5"),
                       shards=target + ",127.0.0.1:1")
    check(code == 3 and not os.path.exists(os.path.join(tmp, "down.hdf5")),
          "export with a shard down -> exit 3, no file (got %d: %s)" % (code, err.strip()[:200]))

    # sample: a shard down is named and gives exit 3; --n above the shard's bound of 4096 works.
    code, doc, err = ctl_json("sample", "--n", "5", shards=target + ",127.0.0.1:1")
    check(code == 3 and doc is not None and doc["n"] == 5 and doc.get("shards_skipped") == [1] and "shard 1" in err,
          "sample with a shard down -> rows from the other, shards_skipped [1], exit 3 (got %d)" % code)
    code, doc, _ = ctl_json("sample", "--n", "5000", "--demo-fraction", "1", shards=target)
    check(code == 0 and doc is not None and doc["n"] == 5000 and doc["n_demo"] == 5000,
          "sample --n 5000 from one shard (its bound is 4096 per call)")
    code, doc, _ = ctl_json("ratelimit", "get", shards=target + ",127.0.0.1:1")
    check(code == 3 and doc is not None and [x.get("ok") for x in doc["shards"]] == [True, False],
          "ratelimit --json lists the shard that failed (ok false)")

    # sample held by the rate limiter (online below --min-size) past the deadline: the shard is
    # up, so exit 1 naming the limiter, not exit 3 "unreachable".
    srv4, target4 = start_server("--min-size", "1000")
    procs.append(srv4)
    ctl("import-demos", twins, *imp, shards=target4)
    code, _, err = ctl("--deadline-ms", "800", "sample", "--n", "2", shards=target4)
    check(code == 1 and "rate limiter" in err and "min_size 1000" in err,
          "sample held by the rate limiter -> exit 1 naming it (got %d: %s)" % (code, err.strip()[-200:]))

    # --tls-roots that is not a PEM file: a usage error naming it, not "unreachable".
    code, _, err = ctl("--tls-roots", twins, "health", shards=target)
    check(code == 2 and "holds no PEM certificate" in err, "--tls-roots of a non-PEM file -> exit 2 (got %d)" % code)

    # watch into a pipe: no terminal escapes, one marked block per refresh.
    code, out, _ = ctl("watch", "--count", "2", "--interval", "0.2", shards=target)
    check(code == 0 and "\033" not in out and out.count("---- refresh") == 2 and out.count("shard 0 ") == 2,
          "watch into a pipe: 2 blocks, no ANSI escapes")

    # import-demos of another file from the same --seq-base: part of it collides -> a warning.
    other = os.path.join(tmp, "other.hdf5")
    write_demos(other, [(oa + 1, ob, ac, rw), (oa + 2, ob, ac, rw), (oa + 3, ob, ac, rw)])
    code, doc, err = ctl_json("import-demos", other, *imp, shards=target)
    check(code == 0 and doc["duplicates"] == 2 * T and doc["inserted"] == T and "WARNING" in err
          and "--seq-base" in err,
          "import of another file over taken seqs warns and names --seq-base (%s)" % err.strip()[:200])


# A child that inserts into the online table until killed (for the live-export case).
FEEDER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import grpc, ibrl_pb2, ibrl_pb2_grpc
st = ibrl_pb2_grpc.ReplayStub(grpc.insecure_channel(sys.argv[2]))
seq = 0
while True:
    items = [ibrl_pb2.Item(obs=[float(seq + i)] * 3, action=[0.5, -0.5], reward=0.0, discount=0.9,
                           next_obs=[float(seq + i + 1)] * 3, proposer=1, actor_id=3, seq=seq + i) for i in range(100)]
    st.Insert(iter([ibrl_pb2.InsertRequest(table="online", items=items)]), timeout=5)
    seq += 100
"""


def main():
    if not os.path.exists(CTL) or not os.path.exists(REPLAY):
        print("ibrl-replayctl or ibrl-replay is not built (looked for %s and %s); build both targets" % (CTL, REPLAY))
        return 1
    tmp = tempfile.mkdtemp(prefix="ctl_test_")
    procs = []
    try:
        # ---- usage and unreachable ----
        check(ctl()[0] == 2, "no command -> exit 2")
        code, out, _ = ctl("--help")
        check(code == 0 and "import-demos" in out, "--help -> exit 0 and lists the commands")
        code, out, _ = ctl("export", "--help")
        check(code == 0 and "--table" in out, "export --help -> exit 0")
        check(ctl("info", "--bogus", shards="127.0.0.1:1")[0] == 2, "unknown flag -> exit 2")
        code, _, err = ctl("info", "--json=1", shards="127.0.0.1:1")
        check(code == 2 and "'--json' takes no value" in err, "--json=1 -> exit 2, 'takes no value' (%s)" % err.strip())
        check(ctl("frobnicate", shards="127.0.0.1:1")[0] == 2, "unknown command -> exit 2")
        check(ctl("info", "--n", "4", shards="127.0.0.1:1")[0] == 2, "flag of another command -> exit 2")
        check(ctl("sample", shards="127.0.0.1:1")[0] == 2, "sample without --n -> exit 2")
        check(ctl("info", "--rate-ms", "x", shards="127.0.0.1:1")[0] == 2, "non-numeric value -> exit 2")
        code, _, err = ctl("info", shards="nonsense")
        check(code == 2 and "host:port" in err, "malformed --shards -> exit 2 with a hint")
        check(ctl("info")[0] == 2, "no shards at all -> exit 2")
        code, doc, err = ctl_json("info", "--rate-ms", "0", shards="127.0.0.1:1")
        check(code == 3, "unreachable shard: info -> exit 3 (got %d)" % code)
        check(doc is not None and doc["shards"][0]["reachable"] is False, "unreachable shard: valid JSON, reachable false")
        code, doc, _ = ctl_json("health", shards="127.0.0.1:1")
        check(code == 3 and doc is not None and doc["shards"][0]["status"] == "UNREACHABLE", "health unreachable -> 3")

        srv, target = start_server()
        procs.append(srv)
        code, doc, _ = ctl_json("health", shards=target)
        check(code == 0 and doc["shards"][0]["status"] == "SERVING", "health -> exit 0, SERVING")
        code, doc, _ = ctl_json("--shards", target + ",127.0.0.1:1", "health")
        check(code == 3 and [s["status"] for s in doc["shards"]] == ["SERVING", "UNREACHABLE"],
              "health with one shard down -> exit 3, per-shard status")
        code, _, err = ctl("checkpoint", shards=target)
        check(code == 1 and "ckpt-dir" in err, "checkpoint without a directory -> exit 1 with a hint")
        code, doc, _ = ctl_json("params", shards=target)
        check(code == 0 and doc["version"] == 0 and doc["bytes"] == 0 and doc["age_s"] is None,
              "params before any publish: version 0, no age")
        code, _, err = ctl("sample", "--n", "3", shards=target)
        check(code == 1 and "empty" in err, "sample of empty tables -> exit 1")
        code, _, _ = ctl("info", "--shard", "3", shards=target)
        check(code == 2, "--shard out of range -> exit 2")

        # ---- import ----
        rng = np.random.default_rng(5)
        episodes = []
        for T in (7, 5, 9):
            oa = rng.standard_normal((T, 2)).astype(np.float32)
            ob = rng.standard_normal((T, 1)).astype(np.float32)
            ac = rng.uniform(-1, 1, (T, 2)).astype(np.float32)
            rw = np.zeros(T, dtype=np.float32)
            rw[-1] = 1
            episodes.append((oa, ob, ac, rw))
        total = sum(len(e[3]) for e in episodes)
        demo_path = os.path.join(tmp, "demos.hdf5")
        write_demos(demo_path, episodes)
        imp = ["import-demos", demo_path, "--stack", "1", "--chunk", "1", "--nstep", "1", "--gamma", "0.9", "--no-cut"]
        code, doc, err = ctl_json(*imp, shards=target)
        check(code == 0 and doc is not None and doc["inserted"] == total and doc["duplicates"] == 0,
              "import-demos stores every step once (%s %s)" % (doc, err.strip()[:200]))
        code, doc, _ = ctl_json(*imp, shards=target)
        check(code == 0 and doc["inserted"] == 0 and doc["duplicates"] == total, "a second import is all duplicates")
        code, _, err = ctl("import-demos", demo_path, "--stack", "3", shards=target)
        check(code == 2 and "--stack" in err, "import with a stack that does not fit the shard -> exit 2 naming it")
        code, _, err = ctl("import-demos", os.path.join(tmp, "missing.hdf5"), shards=target)
        check(code == 2 and "missing.hdf5" in err, "import of a missing file -> exit 2 naming it")
        code, _, _ = ctl("import-demos", shards=target)
        check(code == 2, "import-demos without a file -> exit 2")

        code, doc, _ = ctl_json("info", "--rate-ms", "200", shards=target)
        tables = {t["name"]: t for t in doc["shards"][0]["tables"]} if doc else {}
        check(code == 0 and tables.get("demo", {}).get("size") == total, "info: demo table holds the imported steps")
        check(doc is not None and tables["demo"]["inserts_per_s"] is not None, "info: rates present")
        check(doc is not None and tables["demo"]["shard_inserts_per_s"] > 0 and tables["demo"]["allocated_bytes"] > 0
              and doc["shards"][0]["params_age_s"] is None, "info: the shard's meters, allocated bytes, no params age")
        check(doc is not None and doc["shards"][0]["obs_dim"] == 3 and doc["shards"][0]["act_dim"] == 2, "info: dims")

        # ---- sample ----
        want = {}
        for ep in transitions_of(episodes, 0.9):
            for (o, a, r, d, n) in ep:
                want[(o, a)] = (r, d, n)
        code, doc, _ = ctl_json("sample", "--n", "40", "--demo-fraction", "1", shards=target)
        ok = code == 0 and doc is not None and doc["n"] == 40 and doc["n_demo"] == 40
        for it in (doc or {}).get("items", []):
            key = (tuple(np.float32(it["obs"])), tuple(np.float32(it["action"])))
            exp = want.get(key)
            ok = ok and exp is not None and it["from_demo"] and it["proposer"] == "demo"
            ok = ok and exp is not None and np.float32(it["reward"]) == exp[0] and np.float32(it["discount"]) == exp[1]
            ok = ok and exp is not None and tuple(np.float32(it["next_obs"])) == exp[2]
        check(ok, "sample --json: 40 demo items, each one of the imported transitions")

        # ---- export and round trip ----
        out1 = os.path.join(tmp, "export1.hdf5")
        code, doc, err = ctl_json("export", "--table", "demo", "--out", out1, shards=target)
        check(code == 0 and doc is not None and doc["items"] == total, "export finds every item (%s)" % err.strip()[:200])
        check(doc is not None and doc["episodes"] == 3, "export rebuilds the 3 episodes")
        exp_eps = read_export(out1) if code == 0 else []
        ref = transitions_of(episodes, 0.9)
        ref_as_file = sorted([[(o, a, r, int(d == 0), n) for (o, a, r, d, n) in ep] for ep in ref])
        check(sorted(exp_eps) == ref_as_file, "exported episodes equal the file's transitions, in order")
        code, _, err = ctl("export", "--table", "online", "--out", os.path.join(tmp, "x.hdf5"), shards=target)
        check(code == 1 and "empty" in err, "export of an empty table -> exit 1")
        code, _, _ = ctl("export", "--table", "nope", "--out", out1, shards=target)
        check(code == 2, "export of an unknown table -> exit 2")

        srv2, target2 = start_server()
        procs.append(srv2)
        code, doc, err = ctl_json("import-demos", out1, "--stack", "1", "--chunk", "1", "--nstep", "1", "--gamma", "0.9", "--no-cut",
                                  shards=target2)
        check(code == 0 and doc["inserted"] == total, "re-import of the export (%s)" % err.strip()[:200])
        out2 = os.path.join(tmp, "export2.hdf5")
        code, doc, _ = ctl_json("export", "--table", "demo", "--out", out2, shards=target2)
        check(code == 0 and sorted(read_export(out2)) == sorted(exp_eps), "export -> import -> export is the identity")

        # ---- n-step import (the default, as the actors) ----
        srv_n, target_n = start_server()
        procs.append(srv_n)
        code, doc, err = ctl_json("import-demos", demo_path, "--stack", "1", "--chunk", "1", "--gamma", "0.9",
                                  "--no-cut", shards=target_n)
        check(code == 0 and doc is not None and doc["inserted"] == total,
              "import-demos with the default --nstep (%s)" % err.strip()[:200])
        want3 = {}
        for ep in nstep_transitions_of(episodes, 0.9, 3):
            for (o, a, r, d, n) in ep:
                want3[(o, a)] = (r, d, n)
        code, doc, _ = ctl_json("sample", "--n", "60", "--demo-fraction", "1", shards=target_n)
        ok = code == 0 and doc is not None and doc["n"] == 60
        multi = 0
        for it in (doc or {}).get("items", []):
            exp = want3.get((tuple(np.float32(it["obs"])), tuple(np.float32(it["action"]))))
            ok = ok and exp is not None and np.isclose(np.float32(it["reward"]), exp[0], rtol=1e-6, atol=1e-7)
            ok = ok and exp is not None and np.isclose(np.float32(it["discount"]), exp[1], rtol=1e-6, atol=0)
            ok = ok and exp is not None and tuple(np.float32(it["next_obs"])) == exp[2]
            multi += exp is not None and abs(exp[1] - np.float32(0.9) ** 3) < 1e-6
        check(ok and multi > 0, "sample after the default import: 3-step rewards, discounts and next_obs (%d full "
              "3-step items)" % multi)
        code, out, _ = ctl("info", "--rate-ms", "0", shards=target_n)
        check(code == 0 and "ratio off" in out and "spi" not in out,
              "info of a shard without --samples-per-insert: 'ratio off', no spi figure")
        code, out, _ = ctl("ratelimit", "get", shards=target_n)
        check(code == 0 and "ratio off" in out, "ratelimit get of that shard: 'ratio off'")
        code, _, err = ctl("import-demos", demo_path, "--nstep", "0", shards=target_n)
        check(code == 2 and "nstep" in err, "import-demos --nstep 0 -> exit 2 naming it")

        # ---- two shards: import spreads episodes ----
        code, doc, _ = ctl_json("import-demos", demo_path, "--stack", "1", "--nstep", "1", "--no-cut", "--seq-base", "1000",
                                shards=target + "," + target2)
        check(code == 0 and doc["inserted"] == total, "import over two shards")
        code, doc, _ = ctl_json("info", "--rate-ms", "0", shards=target + "," + target2)
        sizes = [{t["name"]: t["size"] for t in s["tables"]}["demo"] for s in doc["shards"]]
        check(sizes == [total + 7 + 9, total + 5], "episodes spread round-robin over the shards (%s)" % sizes)

        # ---- watch, ratelimit, params ----
        code, out, _ = ctl("--json", "watch", "--count", "2", "--interval", "0.2", shards=target)
        lines = [l for l in out.splitlines() if l.strip()]
        docs = []
        for l in lines:
            try:
                docs.append(json.loads(l))
            except ValueError:
                pass
        check(code == 0 and len(docs) == 2, "watch --count 2 --json: two JSON lines")
        check(len(docs) == 2 and docs[1]["shards"][0]["tables"][0]["samples_per_s"] is not None,
              "watch: rates from the second refresh")
        code, doc, _ = ctl_json("ratelimit", "pause", shards=target)
        check(code == 0 and doc["shards"][0]["paused"] is True, "ratelimit pause")
        code, doc, _ = ctl_json("ratelimit", "get", shards=target)
        check(code == 0 and doc["shards"][0]["paused"] is True, "ratelimit get sees the pause")
        code, doc, _ = ctl_json("ratelimit", "resume", shards=target)
        check(code == 0 and doc["shards"][0]["paused"] is False, "ratelimit resume")
        check(ctl("ratelimit", "sideways", shards=target)[0] == 2, "ratelimit with an unknown op -> exit 2")
        check(ctl("ratelimit", "set", "--spi", "2", shards=target)[0] == 2, "ratelimit set without all values -> exit 2")
        code, _, err = ctl("ratelimit", "set", "--spi", "4", "--error-buffer", "0.5", "--min-size", "0", shards=target)
        check(code == 1 and "RateLimit" in err, "ratelimit set refused by the shard -> exit 1")
        code, doc, _ = ctl_json("ratelimit", "set", "--spi", "4", "--error-buffer", "1000", "--min-size", "0",
                                shards=target)
        check(code == 0 and doc["shards"][0]["samples_per_insert"] == 4, "ratelimit set --spi 4")
        # --spi 0 lifts the ratio again (no --error-buffer needed), as --samples-per-insert 0 at start.
        code, doc, _ = ctl_json("ratelimit", "set", "--spi", "0", "--min-size", "0", shards=target)
        check(code == 0 and doc["shards"][0]["samples_per_insert"] == 0, "ratelimit set --spi 0: ratio off (%s)" % doc)
        code, out, _ = ctl("ratelimit", "get", shards=target)
        check(code == 0 and "ratio off" in out, "ratelimit get after --spi 0: 'ratio off'")
        code, doc, _ = ctl_json("params", "--wait-ms", "200", shards=target)
        check(code == 0 and doc["newer_version"] == 0 and doc["waited_s"] >= 0.15, "params --wait-ms waits")

        # ---- a shard with a token ----
        ckdir = os.path.join(tmp, "ckpt")
        os.mkdir(ckdir)
        srv3, target3 = start_server("--token", "tok", "--ckpt-dir", ckdir)
        procs.append(srv3)
        code, out, err = ctl("info", "--rate-ms", "0", shards=target3)
        check(code == 1 and "UNAUTHENTICATED" in out + err and "token" in (out + err).lower(),
              "missing token -> exit 1 with a hint")
        # The hint is replayctl's own (its flag and variable), not the server's for operators.
        check("pass the shard's token with --token T or IBRL_REPLAY_TOKEN" in out + err
              and "authorization: Bearer" not in out + err, "missing token: replayctl's hint (%s)" % err.strip()[:300])
        code, _, err = ctl("sample", "--n", "1", "--token", "wrong", shards=target3)
        check(code == 1 and "--token T or IBRL_REPLAY_TOKEN" in err and "authorization: Bearer" not in err,
              "wrong token: replayctl's hint (%s)" % err.strip()[:300])
        code, _, _ = ctl("info", "--rate-ms", "0", "--token", "tok", shards=target3)
        check(code == 0, "--token -> exit 0")
        env_code = subprocess.run([CTL, "info", "--rate-ms", "0"], capture_output=True, timeout=30,
                                  env=dict(os.environ, IBRL_REPLAY_SHARDS=target3, IBRL_REPLAY_TOKEN="tok")).returncode
        check(env_code == 0, "IBRL_REPLAY_SHARDS / IBRL_REPLAY_TOKEN from the environment")
        code, doc, err = ctl_json("checkpoint", "--token", "tok", shards=target3)
        check(code == 0 and doc["shards"][0]["ok"] is True and doc["shards"][0]["items"] == 0,
              "checkpoint with a directory -> exit 0 (%s)" % err.strip()[:200])

        audit_cases(tmp, procs)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for root, dirs, files in os.walk(tmp, topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        os.rmdir(tmp)
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
