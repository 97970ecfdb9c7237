#!/usr/bin/env python3
"""e2e_items.py: checks the n-step items one actor stored against the arithmetic they must follow.

Usage: e2e_items.py REPLAYCTL SHARD EPISODES GAMMA NSTEP

The actor ran EPISODES whole episodes with one env and no learner (IL warm-up), so its seqs are
in time order and every reward is sparse (1 on the success step only). For an episode of T
items, item j must have
  discount = gamma^n          if j < T - n, else 0   (the last n are not bootstrapped, timeouts too)
  reward   = gamma^(T-1-j)    if the episode succeeded and T-1-j < n, else 0
  next_obs = obs of item j+n  if j < T - n
and only item T-1 carries episode_end (with episode_success). Exits 0 when every item passes,
1 with the first failures listed, 2 on usage errors. Reads all items through `ibrl-replayctl
--json sample` (repeated until every seq was seen).
"""
import json
import subprocess
import sys


def ctl(replayctl, shard, *args):
    out = subprocess.run([replayctl, "--shards", shard, "--json", *args], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return json.loads(out)


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    replayctl, shard, episodes, gamma, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    info = ctl(replayctl, shard, "info", "--rate-ms", "0")["shards"][0]
    size = [t["size"] for t in info["tables"] if t["kind"] == "online"][0]
    items = {}
    for _ in range(40):
        for it in ctl(replayctl, shard, "sample", "--n", str(min(4096, max(size, 1))), "--demo-fraction", "0")["items"]:
            items[it["seq"]] = it
        if len(items) == size:
            break
    fails = []
    if len(items) != size:
        fails.append(f"read {len(items)} distinct items of {size}")
    seqs = sorted(items)
    if seqs != list(range(len(seqs))):
        fails.append("the seqs are not 0..N-1")
    eps, cur = [], []
    for s in seqs:
        cur.append(items[s])
        if items[s]["episode_end"]:
            eps.append(cur)
            cur = []
    if cur:
        fails.append(f"{len(cur)} items after the last episode end")
    if len(eps) != episodes:
        fails.append(f"{len(eps)} episodes marked, want {episodes}")
    gn = gamma ** n
    checked = 0
    for e, ep in enumerate(eps):
        T = len(ep)
        succ = ep[-1]["episode_success"]
        for j, it in enumerate(ep):
            want_d = gn if j < T - n else 0.0
            want_r = gamma ** (T - 1 - j) if succ and T - 1 - j < n else 0.0
            if abs(it["discount"] - want_d) > 1e-6:
                fails.append(f"episode {e} item {j}/{T}: discount {it['discount']} want {want_d}")
            if abs(it["reward"] - want_r) > 1e-6:
                fails.append(f"episode {e} item {j}/{T}: reward {it['reward']} want {want_r} (success {succ})")
            if j < T - n and it["next_obs"] != ep[j + n]["obs"]:
                fails.append(f"episode {e} item {j}/{T}: next_obs is not the obs of item {j + n}")
            if it["episode_end"] != (j == T - 1):
                fails.append(f"episode {e} item {j}/{T}: episode_end {it['episode_end']}")
            if it["proposer"] != "il" or it["weight_version"] != 0:
                fails.append(f"episode {e} item {j}: warm-up item with proposer {it['proposer']} version {it['weight_version']}")
            checked += 1
    for f in fails[:10]:
        print("FAIL", f)
    successes = sum(1 for ep in eps if ep[-1]["episode_success"])
    print(f"{'FAIL' if fails else 'ok  '} {checked} items of {len(eps)} episodes ({successes} successes) follow the "
          f"{n}-step rule (gamma {gamma})")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
