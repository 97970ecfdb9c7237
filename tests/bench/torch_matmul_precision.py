#!/usr/bin/python3
"""torch_matmul_precision.py: does this machine's PyTorch honour set_float32_matmul_precision on CPU?

For "highest", "high" and "medium" it times a 256x1024x1024 fp32 product (the learner's hidden-layer
forward) on one thread and measures its error against fp64, relative to sum |a||b|. If "high" gives
the same error as "highest", PyTorch computes fp32 in both, so the fp32 peer of `ibrl-bench learner`
is the fastest float32 setting this PyTorch has. Exit 0 always (a report, not a test).
Usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/bench/torch_matmul_precision.py
"""
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(0)
a = torch.randn(256, 1024)
b = torch.randn(1024, 1024)
ref = a.double() @ b.double()
scale = (a.abs().double() @ b.abs().double()).max()
print("torch", torch.__version__)
for p in ["highest", "high", "medium"]:
    torch.set_float32_matmul_precision(p)
    for _ in range(3):
        a @ b
    n = 20
    t = time.perf_counter()
    for _ in range(n):
        c = a @ b
    dt = (time.perf_counter() - t) / n
    err = ((c.double() - ref).abs().max() / scale).item()
    print("%-8s %7.1f GFLOP/s  max error / sum|a||b| = %.3e" % (p, 2 * 256 * 1024 * 1024 / dt / 1e9, err))
