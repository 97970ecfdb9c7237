#!/usr/bin/python3
"""gen_amx_vectors.py: writes tests/data/nn_amx.tv, PyTorch's view of the AMX bf16 product.

Run by hand with Debian's torch (1.13), then commit the file (ctest never needs torch):
    OMP_NUM_THREADS=1 /usr/bin/python3 tests/nn/gen_amx_vectors.py [--out tests/data]

What it holds (read by tests/nn/test_nn_amx.c; format .tv of tests/ref/gen_nn_vectors.py):
  round.x, round.bf16  fixed float32 inputs (random values, exact ties between two bf16, values
                       one float32 ulp either side of a tie, powers of two, carries into the next
                       binade, signed zero, the largest finite values) and torch's
                       x.to(torch.bfloat16).float(): the kernel must reproduce it bit for bit.
                       Denormals are left out: the AMX path flushes them, torch keeps them.
  round.one            the scalar 1 (the B operand of the 1-column product that reads the rounding)
  mm.a (21,75), mm.b (75,34), and their stored transposes mm.at, mm.bt;
  mm.ref_bf16          torch.matmul in float64 of the bf16-rounded a and b (the bf16 mode's sum);
  mm.ref_fp32          torch.matmul in float64 of a and b (what bf16x3 approximates).
  lin.*                a Linear layer (24 rows, 69 -> 48, torch's (OC, C) weight) forward
                       y = x·wᵀ + b and backward of the loss (y * dy).sum(), all in float64.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
from gen_nn_vectors import TV, f32, rnd  # noqa: E402  (the shared .tv writer)

SEED = 20261122


def round_inputs(g):
    vals = [float(v) for v in rnd(g, 200, lo=-3.0, hi=3.0)]
    # exact ties: 1 + (2k+1)·2^-8 lies halfway between two bf16 (7 stored bits); even/odd neighbours
    for k in range(8):
        t = 1.0 + (2 * k + 1) * 2.0 ** -8
        ulp = 2.0 ** -23
        vals += [t, -t, t + ulp, t - ulp, t * 2.0 ** 40, t * 2.0 ** -100]
    vals += [1.0, 2.0, 0.5, -4.0, 0.0, -0.0, 1.9999999, -1.9999999, 255.99, 3.4e38, -3.4e38, 1e-30, 6e-38]
    x = torch.tensor(vals, dtype=torch.float32)
    return x, x.to(torch.bfloat16).float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(SEED)
    tv = TV()
    x, xr = round_inputs(g)
    tv.put("round.x", x)
    tv.put("round.bf16", xr)
    tv.put("round.one", torch.ones(1))

    a, b = rnd(g, 21, 75), rnd(g, 75, 34)
    tv.put("mm.a", a)
    tv.put("mm.b", b)
    tv.put("mm.at", a.t().contiguous())
    tv.put("mm.bt", b.t().contiguous())
    ab16 = a.float().to(torch.bfloat16).double()
    bb16 = b.float().to(torch.bfloat16).double()
    tv.put("mm.ref_bf16", torch.matmul(ab16, bb16))
    tv.put("mm.ref_fp32", torch.matmul(a, b))

    x = rnd(g, 24, 69).requires_grad_(True)
    w = rnd(g, 48, 69, lo=-0.12, hi=0.12).requires_grad_(True)
    bias = rnd(g, 48, lo=-0.12, hi=0.12).requires_grad_(True)
    dy = rnd(g, 24, 48)
    y = torch.nn.functional.linear(x, w, bias)
    (y * dy).sum().backward()
    for name, t in [("x", x), ("w", w), ("b", bias), ("dy", dy), ("y", y), ("dx", x.grad), ("dw", w.grad),
                    ("db", bias.grad)]:
        tv.put("lin." + name, t)
    tv.write(os.path.join(args.out, "nn_amx.tv"))


if __name__ == "__main__":
    main()
