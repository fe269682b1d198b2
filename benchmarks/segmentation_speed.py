"""Time an ED-TCN training epoch on 50Salads-sized inputs, with and without the input projection.

    python -m benchmarks.segmentation_speed --threads 1
    python -m benchmarks.segmentation_speed --threads 2

The MS-TCN downloads of 50Salads hold 2048-d I3D features at 30 fps for ~6.4-minute videos: with
``softloc experiment segmentation``'s default subsampling by 10 that is ~1150 frames per video,
and a fold trains on 40 videos. This script times Adam steps (forward, cross-entropy, backward,
update) on random inputs of that size, batch 4, for the plain ED-TCN (Lea et al.: the first
temporal convolution sees all 2048 features) and for ``EDTCN(input_projection=64)`` (the
experiment's default for features wider than 64), measured in the same run, and prints seconds
per epoch, minutes per training at 60 and 120 epochs and the ratio. It times the network only:
reading the ``.npy`` files and the loss's extra terms are not included.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

from softloc.models.tcn import EDTCN


def _seconds_per_step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                      repeats: int) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def step() -> None:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up: allocations, kernel selection
    best = float("inf")
    for _ in range(repeats):  # the fastest of several: the least disturbed by other processes
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", type=int, default=2048, help="feature dimension (I3D: 2048)")
    p.add_argument("--frames", type=int, default=1150, help="frames per video after subsampling")
    p.add_argument("--videos", type=int, default=40, help="training videos per fold")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--classes", type=int, default=19, help="50Salads (mid): 17 + 2")
    p.add_argument("--projection", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, args.features, args.frames)
    y = torch.randint(0, args.classes, (args.batch_size, args.frames))
    steps = -(-args.videos // args.batch_size)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s), load average before the run {load:.2f}; "
          f"{args.videos} videos x {args.frames} frames x {args.features} features, "
          f"batch {args.batch_size} ({steps} steps per epoch)")
    print("| ED-TCN | s / epoch | min / training, 60 epochs | 120 epochs |")
    print("|---|---|---|---|")
    times = {}
    for name, proj in (("plain (Lea et al.)", None), (f"input_projection={args.projection}",
                                                         args.projection)):
        net = EDTCN(args.features, args.classes, input_projection=proj)
        epoch = _seconds_per_step(net, x, y, args.repeats) * steps
        times[name] = epoch
        print(f"| {name} | {epoch:.1f} | {epoch:.1f} | {2 * epoch:.1f} |")
    plain, projected = times.values()
    print(f"plain / projected: {plain / projected:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
