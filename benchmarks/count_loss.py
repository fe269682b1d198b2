"""Count-loss benchmark (issues #4, #10): forward + backward of the count loss.

Compares the library's fused backend (``backend="auto"``: numba kernels on CPU, the log-depth tree
on CUDA) with a per-step torch recursion (one small op per time step, linear space, as the
original LoCo/SoftLoc code does) measured in the same run, and reports accuracy against the
float64 log-space reference backend. Two library contenders: the bare kernel call
``count_log_likelihood(...).mean()`` and the user-facing ``loco_loss(...)`` (which validates
its inputs once, then runs the same kernel); each speed-up is against the per-step loop.

Run::

    python -m benchmarks.count_loss                  # all shapes, float32 and float64
    python -m benchmarks.count_loss --quick          # small shapes, few repeats
    python -m benchmarks.count_loss --device cuda --shapes 32,3,400,32 8,88,400,43
    python -m benchmarks.count_loss --threads 1      # what docs/benchmarks.md reports
    python -m benchmarks.count_loss --logits         # logits in (as training passes them)

All contenders use the same torch thread setting (the fused CPU kernels spread over up to
``torch.get_num_threads()`` threads when there is enough work). Columns: median wall time of
forward + backward over ``--repeats`` runs after warm-up (fewer runs, or no baseline, for the
huge shapes; the output says which), speed-up, peak memory, and the max abs error of the loss
and of the gradient against the float64 log-space reference (and of the per-step baseline's
loss). Memory on CPU is the peak of numpy allocations (tracemalloc; the numba path keeps its
checkpoints there) plus the bytes of tensors saved for backward (autograd saved-tensor hooks);
on CUDA it is ``torch.cuda.max_memory_allocated`` above the inputs.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
import tracemalloc

import torch

from softloc.counting import _arena, count_log_likelihood, cpu_options, set_cpu_options
from softloc.losses import loco_loss

SHAPES = [
    (32, 3, 400, 32),
    (32, 10, 400, 43),
    (32, 1, 400, 32),
    (8, 88, 400, 43),
    (32, 3, 4000, 64),
    (1, 1, 100_000, 128),
]
QUICK_SHAPES = [(32, 3, 400, 32), (8, 88, 400, 43)]
# From this many (rows * steps) or LONG steps on, the fused contender gets repeats / 5 runs and
# the per-step baseline one run; from LONG steps on the baseline is skipped unless
# --baseline-huge.
HUGE = 300_000
LONG = 20_000


def per_step_log_likelihood(probs: torch.Tensor, counts: torch.Tensor, k_max: int) -> torch.Tensor:
    """Baseline: linear-space LoCo recursion, one batch of torch ops per time step."""
    b, c, t_len = probs.shape
    p = probs.reshape(b * c, t_len)
    y = torch.zeros(b * c, k_max + 1, dtype=probs.dtype, device=probs.device)
    y[:, 0] = 1.0
    zero = y.new_zeros(b * c, 1)
    for pt in p.unbind(1):  # unbind once; slicing inside the loop would make backward O(T^2)
        pt = pt[:, None]
        body = y[:, :-1] * (1 - pt) + torch.cat([zero, y[:, :-2]], 1) * pt
        top = y[:, -1:] + y[:, -2:-1] * pt
        y = torch.cat([body, top], 1)
    idx = counts.reshape(-1, 1).long().clamp(max=k_max)
    return torch.log(y.gather(1, idx)).reshape(b, c)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn, probs, counts, k_max):
    x = probs.detach().requires_grad_()
    loss = fn(x, counts, k_max).mean()
    loss.backward()
    return loss.detach(), x.grad


def _time(contenders, probs, counts, k_max) -> list[float]:
    """Median wall time of each ``(fn, repeats, warmup runs)`` contender, in the order given.

    The runs are interleaved: round r runs every contender whose share of the rounds falls on
    r, so a change of the machine's load during the measurement hits all of them alike and
    their ratios stay meaningful on a shared machine.
    """
    device = probs.device
    for fn, _, warmup in contenders:
        for _ in range(warmup):
            _step(fn, probs, counts, k_max)
    rounds = max(n for _, n, _ in contenders)
    times: list[list[float]] = [[] for _ in contenders]
    for r in range(rounds):
        for (fn, n, _), out in zip(contenders, times, strict=True):
            if (r + 1) * n // rounds == r * n // rounds:
                continue  # n runs spread evenly over the rounds
            _sync(device)
            t0 = time.perf_counter()
            _step(fn, probs, counts, k_max)
            _sync(device)
            out.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _peak_bytes(fn, probs, counts, k_max) -> int:
    device = probs.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _step(fn, probs, counts, k_max)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    # The CPU backend reuses its work buffers across calls (softloc.counting._arena): drop the
    # kept ones so that this call allocates, and tracemalloc counts, all of its memory.
    _arena.clear()
    tracemalloc.start()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _step(fn, probs, counts, k_max)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak + saved


BACKEND = "auto"
LOGITS = False  # --logits: the contenders get logits (the per-step loop their sigmoid)


def _fused(x, counts, k_max):
    return count_log_likelihood(x, counts, k_max, backend=BACKEND, logits=LOGITS)


def _loco(x, counts, k_max):
    # The user-facing loss (auto backend): validation + the fused kernel + the mean.
    return loco_loss(x, counts, k_max, logits=LOGITS)


def _per_step(x, counts, k_max):
    return per_step_log_likelihood(torch.sigmoid(x) if LOGITS else x, counts, k_max)


def make_inputs(shape, dtype, device, seed=0):
    b, c, t_len, k_max = shape
    gen = torch.Generator().manual_seed(seed)
    # Logits around LoCo's prior bias plus noise; counts spread over 0..k_max (some in the tails).
    mean_count = min(k_max / 2, 0.05 * t_len)
    bias = math.log(mean_count / t_len)
    logits = bias + 1.5 * torch.randn(b, c, t_len, generator=gen, dtype=torch.float64)
    probs = torch.sigmoid(logits)
    counts = torch.randint(0, k_max + 1, (b, c), generator=gen)
    return probs.to(dtype).to(device), counts.to(device)


def _fmt_ms(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _fmt_mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:.3g} MB"


def run(shapes, dtypes, device, repeats, warmup, baseline_huge):
    rows = []
    for shape in shapes:
        b, c, t_len, k_max = shape
        huge = b * c * t_len >= HUGE or t_len >= LONG
        for dtype in dtypes:
            probs, counts = make_inputs(shape, dtype, device)
            if LOGITS:
                probs = torch.logit(probs.double()).to(dtype)
            reps = max(3, repeats // 5) if huge else repeats
            contenders = [(_fused, reps, warmup), (_loco, reps, warmup)]
            with_base = t_len < LONG or baseline_huge
            if with_base:  # huge: one cold run of the per-step loop
                base_reps = 1 if huge else max(3, repeats // 4)
                contenders.append((_per_step, base_reps, 0 if huge else 1))
            timed = _time(contenders, probs, counts, k_max)
            t_fused, t_loco = timed[:2]
            mem_fused = _peak_bytes(_fused, probs, counts, k_max)
            t_base = mem_base = None
            if with_base:
                t_base = timed[2]
                mem_base = _peak_bytes(_per_step, probs, counts, k_max)
            # Accuracy against the float64 log-space reference backend.
            loss, grad = _step(_fused, probs, counts, k_max)
            ref = probs.detach().to(torch.float64).cpu().requires_grad_()
            ref_loss = count_log_likelihood(
                ref, counts.cpu(), k_max, backend="reference", logits=LOGITS
            ).mean()
            ref_loss.backward()
            err_loss = abs(loss.double().item() - ref_loss.item())
            err_grad = (grad.double().cpu() - ref.grad).abs().max().item()
            with torch.no_grad():
                base_loss = _per_step(probs, counts, k_max).mean().double().item()
            err_base = abs(base_loss - ref_loss.item())
            rows.append(
                dict(
                    shape=(b, c, t_len, k_max + 1), dtype=str(dtype).replace("torch.", ""),
                    t_fused=t_fused, t_loco=t_loco, t_base=t_base, reps=reps,
                    mem_fused=mem_fused, mem_base=mem_base,
                    err_loss=err_loss, rel_loss=err_loss / abs(ref_loss.item()),
                    err_grad=err_grad, err_base=err_base,
                )
            )  # fmt: skip
            print(format_row(rows[-1]), flush=True)
    return rows


HEADER = (
    "| (batch, class, time, k_max+1) | dtype | fused fwd+bwd | loco_loss fwd+bwd "
    "| per-step torch | speed-up fused | speed-up loco_loss "
    "| peak mem fused | peak mem per-step | loss abs err (rel) | grad max abs err "
    "| per-step loss abs err |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def format_row(r) -> str:
    ratio = "—" if r["t_base"] is None else f"{r['t_base'] / r['t_fused']:.1f}×"
    ratio_loco = "—" if r["t_base"] is None else f"{r['t_base'] / r['t_loco']:.1f}×"
    return (
        f"| {r['shape']} | {r['dtype']} | {_fmt_ms(r['t_fused'])} (n={r['reps']}) "
        f"| {_fmt_ms(r['t_loco'])} | {_fmt_ms(r['t_base'])} | {ratio} | {ratio_loco} "
        f"| {_fmt_mb(r['mem_fused'])} "
        f"| {_fmt_mb(r['mem_base'])} | {r['err_loss']:.1e} ({r['rel_loss']:.1e}) "
        f"| {r['err_grad']:.1e} | {r['err_base']:.1e} |"
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return repr(line.split(":", 1)[1].strip())
    except OSError:
        pass
    return repr(platform.processor() or platform.machine())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per case (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=None,
        help="subset as batch,class,time,k_max_plus_1 (e.g. 32,3,400,32)",
    )
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--quick", action="store_true", help="two small shapes, 5 repeats")
    parser.add_argument(
        "--backend", default="auto", help="backend of the fused contender (default: auto)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument(
        "--logits", action="store_true", help="pass logits (logits=True) instead of probabilities"
    )
    parser.add_argument(
        "--max-cached-bytes", type=int, metavar="N",
        help="set_cpu_options(max_cached_bytes=N): 0 times the CPU kernels without buffer reuse",
    )
    parser.add_argument(
        "--baseline-huge",
        action="store_true",
        help="also time the per-step baseline on the huge shapes (minutes)",
    )
    args = parser.parse_args(argv)
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes]
    else:
        shapes = QUICK_SHAPES if args.quick else SHAPES
    # The table's last column is k_max + 1 bins, as in the issue; the API takes k_max.
    shapes = [(b, c, t, k1 - 1) for b, c, t, k1 in shapes]
    repeats = 5 if args.quick else args.repeats
    global BACKEND, LOGITS
    BACKEND = args.backend
    LOGITS = args.logits
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.max_cached_bytes is not None:
        set_cpu_options(max_cached_bytes=args.max_cached_bytes)
    device = torch.device(args.device)
    dtypes = [getattr(torch, d) for d in args.dtypes]
    print(
        f"device={device} backend={BACKEND} logits={LOGITS} torch={torch.__version__} "
        f"threads={torch.get_num_threads()} max_cached_bytes={cpu_options()['max_cached_bytes']} "
        # torch's OpenMP workers spin after each parallel op unless told to sleep; on a 2-core
        # machine they then compete with the fused kernels' second thread (docs/benchmarks.md).
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')} "
        f"cpu={_cpu_name()} "
        f"repeats={repeats} (rows*time >= {HUGE} or time >= {LONG}: repeats/5, one per-step run; "
        f"time >= {LONG}: per-step baseline skipped unless --baseline-huge)"
    )
    print(HEADER)
    run(shapes, dtypes, device, repeats, args.warmup, args.baseline_huge)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
