#!/usr/bin/python3
"""gen_nn_vectors.py: writes the PyTorch reference vectors of the ibrl nn core to tests/data/nn_*.tv.

Run by hand with Debian's torch, single-threaded, then commit the files (ctest never needs torch):
    OMP_NUM_THREADS=1 /usr/bin/python3 tests/ref/gen_nn_vectors.py [--out tests/data]

Method (docs/style.md 2.5): inputs are drawn with a fixed seed and rounded to float32; every
output and gradient is then computed in float64 with the scalar loss (out * dout).sum(), whose
gradient w.r.t. out is dout. Shapes are small and odd (B=3, C=5, H=7, OC=2, plus B=1) so stride
and transpose mistakes cannot cancel. The C side (tests/nn/test_nn_torch.c) reads these files.

File format .tv, version 1, little-endian:
    b"IBTV" | u32 version | u32 count | count x tensor
    tensor = u32 name_len | name (utf-8) | u32 ndim | u32 dims[ndim] | f32 data[prod(dims)]
Two string-valued facts (torch version, seed) are stored as uint8 tensors "meta.torch" and
"meta.seed" so the C reader needs one record type only.
"""
import argparse
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261121
VERSION = 1
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # nn.h NN_SAC_LOG_STD_MIN/MAX


class TV:
    """Collects named float32 tensors and writes one .tv file."""

    def __init__(self):
        self.items = []
        self.put_bytes("meta.torch", torch.__version__.encode())
        self.put_bytes("meta.seed", str(SEED).encode())

    def put_bytes(self, name, b):
        self.items.append((name, np.frombuffer(b, dtype=np.uint8).astype(np.float32)))

    def put(self, name, t):
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        self.items.append((name, np.ascontiguousarray(a, dtype=np.float32)))

    def write(self, path):
        with open(path + ".tmp", "wb") as f:
            f.write(b"IBTV")
            f.write(struct.pack("<II", VERSION, len(self.items)))
            for name, a in self.items:
                nb = name.encode()
                f.write(struct.pack("<I", len(nb)))
                f.write(nb)
                dims = a.shape if a.ndim > 0 else (1,)
                f.write(struct.pack("<I", len(dims)))
                f.write(struct.pack("<%dI" % len(dims), *dims))
                f.write(a.astype("<f4").tobytes())
        os.replace(path + ".tmp", path)
        print("wrote %s (%d tensors, %d bytes)" % (path, len(self.items), os.path.getsize(path)))


def f32(t):
    """Rounds to float32 and returns float64, so C sees exactly the values torch used."""
    return t.float().double()


def rnd(g, *shape, lo=-1.0, hi=1.0):
    return f32(torch.rand(*shape, generator=g, dtype=torch.float64) * (hi - lo) + lo)


def away_from_zero(g, *shape, gap=0.1):
    """Uniform in [-1,-gap] U [gap,1]: ReLU inputs far from the kink."""
    mag = torch.rand(*shape, generator=g, dtype=torch.float64) * (1 - gap) + gap
    sign = torch.where(torch.rand(*shape, generator=g) < 0.5, -1.0, 1.0).double()
    return f32(mag * sign)


def adam_cfgs():
    # (name, kwargs) ; the C side rebuilds the same nn_adam_cfg from the stored hyper-parameters.
    return [("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
            ("adamwd", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1))]


def put_adam_cfg(tv, prefix, kw):
    tv.put(prefix + ".cfg", [kw["lr"], kw["betas"][0], kw["betas"][1], kw["eps"], kw["weight_decay"]])


def adam_trajectory(tv, prefix, params, loss_fn, steps=3):
    """3 Adam steps on loss_fn(params) for each config; stores the params after each step."""
    init = [p.detach().clone() for p in params]
    for cname, kw in adam_cfgs():
        ps = [p.clone().requires_grad_(True) for p in init]
        opt = torch.optim.Adam(ps, **kw)
        put_adam_cfg(tv, "%s.%s" % (prefix, cname), kw)
        for s in range(steps):
            opt.zero_grad()
            loss_fn(ps).backward()
            opt.step()
            for i, p in enumerate(ps):
                tv.put("%s.%s.step%d.p%d" % (prefix, cname, s + 1, i), p)


def gen_linear(g, out):
    tv = TV()
    for tag, B in (("b3", 3), ("b1", 1)):
        C, OC = 5, 2
        x, W, b, dout = rnd(g, B, C), rnd(g, OC, C), rnd(g, OC), rnd(g, B, OC)
        xv, Wv, bv = (t.clone().requires_grad_(True) for t in (x, W, b))
        y = F.linear(xv, Wv, bv)
        (y * dout).sum().backward()
        p = tag + "."
        for n, t in (("x", x), ("w", W), ("b", b), ("dout", dout), ("y", y), ("dx", xv.grad),
                     ("dw", Wv.grad), ("db", bv.grad)):
            tv.put(p + n, t)
        adam_trajectory(tv, p + "opt", [W, b], lambda ps: (F.linear(x, ps[0], ps[1]) * dout).sum())
    tv.write(os.path.join(out, "nn_linear.tv"))


def gen_layernorm(g, out):
    tv = TV()
    for tag, B in (("b3", 3), ("b1", 1)):
        C = 7
        x = rnd(g, B, C, lo=-2, hi=2)
        if B == 3:  # a nearly constant row: its variance is far below eps, so eps matters
            x[2] = f32(0.5 + 1e-4 * torch.rand(C, generator=g, dtype=torch.float64))
        gam, bet, dout = rnd(g, C, lo=0.5, hi=1.5), rnd(g, C), rnd(g, B, C)
        xv, gv, bv = (t.clone().requires_grad_(True) for t in (x, gam, bet))
        y = F.layer_norm(xv, (C,), gv, bv, eps=1e-5)
        (y * dout).sum().backward()
        p = tag + "."
        for n, t in (("x", x), ("g", gam), ("b", bet), ("dout", dout), ("y", y), ("dx", xv.grad),
                     ("dg", gv.grad), ("db", bv.grad)):
            tv.put(p + n, t)
        adam_trajectory(tv, p + "opt", [gam, bet],
                        lambda ps: (F.layer_norm(x, (C,), ps[0], ps[1], eps=1e-5) * dout).sum())
    tv.write(os.path.join(out, "nn_layernorm.tv"))


def gen_act(g, out):
    tv = TV()
    B, C = 3, 5
    for name, fn in (("relu", torch.relu), ("tanh", torch.tanh)):
        x = away_from_zero(g, B, C) * 2
        dout = rnd(g, B, C)
        xv = x.clone().requires_grad_(True)
        y = fn(xv)
        (y * dout).sum().backward()
        for n, t in (("x", x), ("dout", dout), ("y", y), ("dx", xv.grad)):
            tv.put(name + "." + n, t)
    # Dropout: the 0/1 keep mask is an input; torch's inverted dropout scales survivors by 1/(1-p).
    p = 0.5
    x, dout = rnd(g, B, C), rnd(g, B, C)
    keep = (torch.rand(B, C, generator=g) >= p).double()
    xv = x.clone().requires_grad_(True)
    y = xv * keep / (1 - p)
    (y * dout).sum().backward()
    for n, t in (("x", x), ("keep", keep), ("p", [p]), ("dout", dout), ("y", y), ("dx", xv.grad)):
        tv.put("dropout." + n, t)
    tv.write(os.path.join(out, "nn_act.tv"))


def gen_sac(g, out):
    tv = TV()
    B, A = 4, 3
    mu = rnd(g, B, A, lo=-1.5, hi=1.5)
    ls = rnd(g, B, A, lo=-3, hi=1)
    ls[0, 1] = -25.0   # below the clamp: zero gradient
    ls[1, 2] = 3.5     # above the clamp
    mu[2, 0] = 6.0     # deep in the tanh tail: 1 - tanh² underflows in float32
    h = torch.cat([mu, ls], dim=1)
    eps = f32(torch.randn(B, A, generator=g, dtype=torch.float64))
    da, dlogp = rnd(g, B, A), rnd(g, B)
    hv = h.clone().requires_grad_(True)
    m, l = hv[:, :A], hv[:, A:].clamp(LOG_STD_MIN, LOG_STD_MAX)
    std = l.exp()
    u = m + std * eps
    a = torch.tanh(u)
    logp = torch.distributions.Normal(m, std).log_prob(u).sum(-1)
    logp = logp - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    ((a * da).sum() + (logp * dlogp).sum()).backward()
    for n, t in (("h", h), ("eps", eps), ("da", da), ("dlogp", dlogp), ("a", a), ("logp", logp),
                 ("dh", hv.grad), ("mean_a", torch.tanh(mu))):
        tv.put("sac." + n, t)
    tv.write(os.path.join(out, "nn_sac.tv"))


def gen_mlp(g, out):
    """5 Adam steps of a small MLP (Linear-LN-ReLU x2, Linear-tanh), dropout off, MSE loss."""
    tv = TV()
    B, IN, H1, H2, OUT = 3, 5, 7, 6, 2
    dims = [(IN, H1), (H1, H2), (H2, OUT)]
    params = []
    for i, (fi, fo) in enumerate(dims):
        bound = 1 / math.sqrt(fi)
        params += [rnd(g, fo, fi, lo=-bound, hi=bound), rnd(g, fo, lo=-bound, hi=bound)]
        if i < 2:  # LayerNorm affine, perturbed from 1/0 so a gamma/beta mix-up shows
            params += [rnd(g, fo, lo=0.8, hi=1.2), rnd(g, fo, lo=-0.1, hi=0.1)]
    x, y = rnd(g, B, IN), rnd(g, B, OUT, lo=-0.8, hi=0.8)

    def forward(ps, inp):
        h = inp
        k = 0
        for i, (fi, fo) in enumerate(dims):
            h = F.linear(h, ps[k], ps[k + 1])
            k += 2
            if i < 2:
                h = torch.relu(F.layer_norm(h, (fo,), ps[k], ps[k + 1], eps=1e-5))
                k += 2
        return torch.tanh(h)

    tv.put("mlp.dims", [IN, H1, H2, OUT])
    tv.put("mlp.x", x)
    tv.put("mlp.y", y)
    tv.put("mlp.init", torch.cat([p.reshape(-1) for p in params]))
    kw = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    put_adam_cfg(tv, "mlp", kw)
    ps = [p.clone().requires_grad_(True) for p in params]
    opt = torch.optim.Adam(ps, **kw)
    losses = []
    for s in range(5):
        opt.zero_grad()
        out_ = forward(ps, x)
        if s == 0:
            tv.put("mlp.out0", out_)
        loss = ((out_ - y) ** 2).mean()
        loss.backward()
        if s == 0:
            tv.put("mlp.grad0", torch.cat([p.grad.reshape(-1) for p in ps]))
        losses.append(loss.item())
        opt.step()
    tv.put("mlp.losses", losses)
    tv.put("mlp.final", torch.cat([p.detach().reshape(-1) for p in ps]))
    tv.write(os.path.join(out, "nn_mlp.tv"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "data"), help="output folder")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    g = torch.Generator().manual_seed(SEED)
    gen_linear(g, args.out)
    gen_layernorm(g, args.out)
    gen_act(g, args.out)
    gen_sac(g, args.out)
    gen_mlp(g, args.out)


if __name__ == "__main__":
    main()
