"""PyTorch side of the op table in docs/benchmarks.md: the operators of
vton-core/examples/op_times.rs (same names, shapes and method: median of 5 calls after a
warm-up), one JSON line each. Not part of vton or its CI.

    python scripts/bench/torch_ops.py THREADS
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]))


def time_op(name, f):
    f()
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        f()
        runs.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"op": name, "torch_ms": round(statistics.median(runs), 1)}))


with torch.inference_mode():
    x = torch.randn(1, 128, 512, 384)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1)
    gn = torch.nn.GroupNorm(32, 128, eps=1e-6)
    time_op("conv3x3 128->128 @512x384", lambda: conv(x))
    time_op("groupnorm 32 @128x512x384", lambda: gn(x))
    time_op("silu @128x512x384", lambda: F.silu(x))
    time_op("groupnorm+silu @128x512x384", lambda: F.silu(gn(x)))
    small = torch.randn(1, 128, 256, 192)
    time_op("nearest x2 128@256x192", lambda: F.interpolate(small, scale_factor=2.0, mode="nearest"))
    time_op("bilinear x2 128@256x192",
            lambda: F.interpolate(small, scale_factor=2.0, mode="bilinear", align_corners=False))
    g = torch.randn(1, 64, 128, 96)
    conv4 = torch.nn.Conv2d(64, 128, 4, stride=2, padding=1, bias=False)
    time_op("conv4x4 stride 2 64->128 @128x96", lambda: conv4(g))
    for heads, dim in [(1, 512), (8, 40)]:
        q, k, v = (torch.randn(1, heads, 3072, dim) for _ in range(3))
        time_op(f"attention {heads}x3072x{dim}",
                lambda: F.scaled_dot_product_attention(q, k, v, scale=0.125))
