"""Speed of the drum CRNN on CPU: inference (x real time), training steps/s, share of the loss.

Run (from the repository root)::

    .venv/bin/python benchmarks/drum_model.py                # drums and demo presets, 2 threads
    .venv/bin/python benchmarks/drum_model.py --threads 1 --presets drums

Prints a markdown table for docs/benchmarks.md, then the end-to-end speed of the shipped model
(``Detector.load().detect`` on 44.1 kHz audio: resampling, front end, CRNN, decoding). Inputs
are random power mels (speed does not depend on the values); inference runs the full Detector
path on a mel of ``--audio-s`` seconds (windows of 1.5 s at the preset's hop, stitching,
decoding) and, separately, the front end on audio of the same length. Training times one
optimiser step (forward, LoCo loss, backward, clipping, Adam) at batch 32 on full-length
windows, and the loss alone (forward + backward of ``loco_loss`` on fixed probabilities).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from softloc._io import atomic_write_text
from softloc.config import load_preset
from softloc.features import mel_power
from softloc.inference import Detector
from softloc.losses import loco_loss
from softloc.models import model_from_config, window_frames
from softloc.timebase import padded_window_frames


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(preset: str, *, audio_s: float, steps: int, batch: int) -> dict:
    config = replace(load_preset(preset), classes=("HH", "KD", "SD"))
    fr = config.features.frame_rate
    model = model_from_config(config)
    detector = Detector(model, config)
    n_frames = int(audio_s * fr)
    mel = torch.rand(config.features.n_mels, n_frames) + 1e-3
    detector.events_from_probabilities(detector.probabilities_from_features(mel[:, :400]))  # warm

    def infer():
        detector.events_from_probabilities(detector.probabilities_from_features(mel))

    infer_s = _best(infer, 3)
    audio = np.random.default_rng(0).normal(size=int(audio_s * config.features.sample_rate))
    audio = audio.astype(np.float32) * 0.1
    front_s = _best(lambda: mel_power(audio, config.features), 3)

    model.train()
    w = window_frames(config)
    t_max = padded_window_frames(config.data.window_s, fr,
                                 min_rate_factor=min(config.data.rate_factors))
    x = torch.rand(batch, config.features.n_mels, t_max) + 1e-3
    lengths = torch.full((batch,), w)
    counts = torch.randint(0, 5, (batch, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        logits = model(x, lengths)
        loss = loco_loss(logits, counts, config.loss.k_max, lengths=lengths, logits=True)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip_norm)
        opt.step()

    step()
    step_s = _best(step, steps)
    probs = torch.rand(batch, 3, t_max).mul(0.3).requires_grad_(True)

    def loss_only():
        loco_loss(probs, counts, config.loss.k_max, lengths=lengths).backward()

    loss_only()
    loss_s = _best(loss_only, steps)
    return {
        "preset": preset,
        "frame_rate": fr,
        "T": t_max,
        "params": sum(p.numel() for p in model.parameters()),
        "infer_x_rt": audio_s / infer_s,
        "front_x_rt": audio_s / front_s,
        "total_x_rt": audio_s / (infer_s + front_s),
        "steps_per_s": 1.0 / step_s,
        "loss_share": loss_s / step_s,
    }


def bench_shipped(*, audio_s: float, threads: int) -> dict:
    """``Detector.load().detect((samples, 44100))``: the shipped model, everything included
    (resampling to the model's rate with soxr, front end, overlapping windows, decoding), with
    ``Detector.load``'s default threads (one for this small model) and with ``threads``, and
    with every decoding of ``softloc.experiments.drums.DECODINGS`` (test-time augmentation runs
    the network once per rate factor)."""
    from softloc.experiments.drums import DECODINGS

    sr = 44100
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.normal(size=int(audio_s * sr))).astype(np.float32)
    out: dict = {}
    for label, load_threads in (("auto", "auto"), (f"{threads} threads", threads)):
        detector = Detector.load(threads=load_threads)
        detector.detect((audio[: 2 * sr], sr))  # warm-up
        out[label] = audio_s / _best(lambda d=detector: d.detect((audio, sr)), 3)
    detector = Detector.load()
    for name, settings in DECODINGS.items():
        d = detector.with_settings(**settings)
        out[name] = audio_s / _best(lambda d=d: d.detect((audio, sr)), 1)
    return {"x_rt": out, "sample_rate": detector.config.features.sample_rate,
            "auto_threads": detector.threads}


MARK_BEGIN = "<!-- benchmarks/drum_model.py:begin -->"
MARK_END = "<!-- benchmarks/drum_model.py:end -->"


def write_block(doc: Path, block: str) -> None:
    """Replace the text between the two markers of ``doc`` (atomically) with ``block``."""
    text = doc.read_text()
    if text.count(MARK_BEGIN) != 1 or text.count(MARK_END) != 1:
        raise SystemExit(
            f"{doc}: expected one '{MARK_BEGIN}' and one '{MARK_END}' line around the generated "
            "block; add them where the drum-model figures should go"
        )
    head, rest = text.split(MARK_BEGIN)
    _, tail = rest.split(MARK_END)
    atomic_write_text(doc, f"{head}{MARK_BEGIN}\n{block}{MARK_END}{tail}")


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["drums", "demo"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--audio-s", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--no-shipped", action="store_true",
                        help="skip the end-to-end timing of the shipped model")
    parser.add_argument("--write-docs", type=Path, metavar="MD",
                        help="also put the figures into MD between the markers "
                             f"{MARK_BEGIN} and {MARK_END} (e.g. docs/benchmarks.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [
        f"`{' '.join(['python', 'benchmarks/drum_model.py', *sys.argv[1:]])}` "
        f"({time.strftime('%Y-%m-%d')}, commit `{_commit()}`; CPU: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {args.threads} threads, load average before the run "
        f"{os.getloadavg()[0]:.2f})",
        "",
        "| preset | frames/s | T (train) | params | CRNN inference (x real time) | "
        "front end (x RT) | end to end (x RT) | train steps/s (batch "
        f"{args.batch}) | loss share of step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for preset in args.presets:
        r = bench(preset, audio_s=args.audio_s, steps=args.steps, batch=args.batch)
        lines.append(
            f"| {r['preset']} | {r['frame_rate']:.1f} | {r['T']} | {r['params']} | "
            f"{r['infer_x_rt']:.0f} | {r['front_x_rt']:.0f} | {r['total_x_rt']:.0f} | "
            f"{r['steps_per_s']:.2f} | {100 * r['loss_share']:.1f}% |"
        )
        print(lines[-1], flush=True)
    if not args.no_shipped:
        r = bench_shipped(audio_s=args.audio_s, threads=args.threads)
        x = r["x_rt"]
        lines += [
            "",
            f"Shipped model (`softloc/pretrained/drums.pt`), `Detector.detect` on "
            f"{args.audio_s:g} s of 44.1 kHz audio (resampled to {r['sample_rate']} Hz inside): "
            f"**{x['auto']:.0f}x real time** with `Detector.load()`'s default "
            f"({r['auto_threads']} torch thread), {x[f'{args.threads} threads']:.0f}x with "
            f"{args.threads} threads. Per decoding (x real time): "
            + ", ".join(f"{k} {v:.0f}" for k, v in x.items() if "thread" not in k and k != "auto")
            + ".",
        ]
        print("\n".join(lines[-2:]))
    if args.write_docs is not None:
        write_block(args.write_docs, "\n".join(lines) + "\n")
        print(f"wrote the figures into {args.write_docs}")


if __name__ == "__main__":
    main()
