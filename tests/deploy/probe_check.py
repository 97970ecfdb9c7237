"""probe_check.py (label deploy): the gRPC probes of the rendered replay StatefulSet work against
the real ibrl-replay, the way the kubelet calls them.

usage: probe_check.py RENDERED.yaml IBRL_REPLAY

Reads the replay container's readiness/liveness/startup probes (grpc.port, grpc.service) and the
item shape (OBS_DIM, ACT_DIM of the ibrl-hparams ConfigMap) from the render, starts ibrl-replay on
127.0.0.1 (port 0) with that shape, and sends each probe's grpc.health.v1.Health/Check like the
kubelet (plaintext, user agent kube-probe, the probe's timeoutSeconds, success iff status OK and
SERVING). A service name the server does not know must fail (NOT_FOUND), so the check can fail.
Bounded: the server is killed after 30 s at the latest. Exit 0 if every check passed."""
import signal
import subprocess
import sys
import time

import grpc
import yaml

SERVING = b"\x08\x01"


def health_request(service):
    """HealthCheckRequest{service}: field 1, length-delimited; "" is the empty message."""
    data = service.encode()
    return b"" if not data else b"\x0a" + bytes([len(data)]) + data


def probe(addr, service, timeout):
    """Returns (success, what) of one kubelet-style Check."""
    with grpc.insecure_channel(addr, options=[("grpc.primary_user_agent", "kube-probe/1.32")]) as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check")
        try:
            resp = check(health_request(service), timeout=timeout)
        except grpc.RpcError as e:
            return False, e.code().name
        return resp == SERVING, "OK " + resp.hex()


def main():
    if len(sys.argv) != 3:
        print("usage: probe_check.py RENDERED.yaml IBRL_REPLAY", file=sys.stderr)
        return 2
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    sts = next((d for d in docs if d.get("kind") == "StatefulSet" and d["metadata"]["name"] == "replay"), None)
    hp = next((d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith("ibrl-hparams")), None)
    if sts is None or hp is None:
        print("FAIL: no StatefulSet replay or ConfigMap ibrl-hparams in", sys.argv[1])
        return 1
    c = sts["spec"]["template"]["spec"]["containers"][0]
    probes = [(name, c[name]) for name in ("startupProbe", "readinessProbe", "livenessProbe") if "grpc" in c.get(name, {})]
    if not probes:
        print("FAIL: the replay container has no gRPC probes")
        return 1
    srv = subprocess.Popen([sys.argv[2], "--port", "0", "--obs-dim", hp["data"]["OBS_DIM"], "--act-dim", hp["data"]["ACT_DIM"]],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    signal.signal(signal.SIGALRM, lambda *_: (srv.kill(), sys.exit("FAIL: timed out")))
    signal.alarm(30)
    fails = passed = 0
    try:
        line = srv.stdout.readline()
        if "listening on" not in line:
            print("FAIL: ibrl-replay did not start:", line)
            return 1
        addr = line.split()[-1]
        for name, p in probes:
            service = p["grpc"].get("service", "")
            timeout = p.get("timeoutSeconds", 1)
            ok, what = False, ""
            for _ in range(20):  # readiness may need the restore to finish
                ok, what = probe(addr, service, timeout)
                if ok:
                    break
                time.sleep(0.25)
            print(f"  {'PASS' if ok else 'FAIL'} {name} grpc service '{service}': {what}")
            passed += ok
            fails += not ok
        ok, what = probe(addr, "no-such-service", 1)
        print(f"  {'FAIL' if ok else 'PASS'} an unknown service fails the probe: {what}")
        passed += not ok
        fails += ok
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
    print(f"{passed} passed, {fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
