"""Time piano training steps with glibc's default malloc and with ``train.keep_freed_memory``.

    softloc data synth-piano --out piano --valid-minutes 0
    python -m benchmarks.allocator --data piano --threads 1
    python -m benchmarks.allocator --data piano --threads 2

Runs :func:`softloc.training.train` with the ``piano-loco`` preset (counts, LoCo) for ``--steps``
steps, no validation before the end, twice in the same run: in one child process with
``train.keep_freed_memory=false`` (glibc maps every large block anew and unmaps it on free) and
in another with the default (:func:`softloc.runtime.keep_freed_memory`). Each child is a fresh
process because the setting is process-wide. Prints, per child, the seconds of the run
(``metrics.json``: ``wall_time_s``, from the data set-up to the model file, the end-of-run
validation and calibration included), the CPU seconds in user and system mode and the minor page
faults (``getrusage``) of the whole child, and the ratio of the two times. The same seed and
data: both runs train the same weights (the script checks that the validation scores agree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def _child(args: argparse.Namespace) -> int:
    from softloc.config import apply_overrides, load_preset
    from softloc.training import train

    cfg = apply_overrides(load_preset(args.preset), [
        f"train.max_steps={args.steps}", f"train.val_every_n_steps={args.steps}",
        f"train.num_threads={args.threads}",
        f"train.keep_freed_memory={'true' if args.child == 'on' else 'false'}",
        "supervision.labels=counts"])
    result = train(cfg, data_root=args.data, out_dir=args.out, progress=False)
    use = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"train_s": result.metrics["wall_time_s"],
                      "val_score": result.metrics["best_val_score"],
                      "user_s": use.ru_utime, "sys_s": use.ru_stime,
                      "faults": use.ru_minflt}))
    return 0


def _run_child(args: argparse.Namespace, mode: str, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    cmd = [sys.executable, "-m", "benchmarks.allocator", "--child", mode, "--data",
           str(args.data), "--out", str(out), "--steps", str(args.steps), "--threads",
           str(args.threads), "--preset", args.preset]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmarks.allocator: the {mode} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="a piano dataset (synth-piano)")
    p.add_argument("--preset", default="piano-loco")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU {platform.machine()}, {os.cpu_count()} cores, {platform.libc_ver()}, "
          f"{args.threads} thread(s), load average before the run {load:.2f}; preset "
          f"{args.preset}, {args.steps} steps on {args.data}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("off", "on"):
            rows[mode] = _run_child(args, mode, Path(tmp) / mode)
    print("| train.keep_freed_memory | training s | user s | system s | minor page faults |")
    print("|---|---|---|---|---|")
    for mode, r in rows.items():
        name = "false (glibc default)" if mode == "off" else "true (default)"
        print(f"| {name} | {r['train_s']:.1f} | {r['user_s']:.1f} | {r['sys_s']:.1f} | "
              f"{r['faults'] / 1e6:.2f} M |")
    same = rows["off"]["val_score"] == rows["on"]["val_score"]
    print(f"time false / true: {rows['off']['train_s'] / rows['on']['train_s']:.2f}x; "
          f"validation scores {'equal' if same else 'DIFFER'} "
          f"({rows['off']['val_score']}, {rows['on']['val_score']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
