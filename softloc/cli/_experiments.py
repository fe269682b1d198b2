"""Arguments and actions of ``softloc experiment drums | robustness | softness-sweep | digits``.

Each ``add_exp_<name>(parser)`` defines an experiment's arguments; each ``cmd_exp_<name>(args)``
calls its one orchestration function (``softloc.experiments.<module>.run_...``), which takes
configuration in and returns results: no argument parsing there.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from softloc.cli._commands import add_set, loss_name
from softloc.cli._common import (
    add_overwrite,
    add_progress,
    is_quiet,
    need_training,
    progress_of,
)

__all__ = [
    "add_exp_drums",
    "cmd_exp_drums",
    "add_exp_robustness",
    "cmd_exp_robustness",
    "add_exp_sweep",
    "cmd_exp_sweep",
    "add_exp_digits",
    "cmd_exp_digits",
]


# --------------------------------------------------------------------------- experiment drums


def add_exp_drums(p: argparse.ArgumentParser) -> None:
    from softloc.config import LOSS_NAMES

    p.description = (
        "LoCo §6 / SoftLoc §5.1.2 on the built-in synthetic drums (or --data): train from counts "
        "or (noisy) timestamps, detect on the test split, evaluate at +-50 ms."
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--data", type=Path, help="use this dataset instead of generating one")
    p.add_argument("--preset", default="drums")
    p.add_argument("--labels", choices=("counts", "onsets"), default="counts")
    p.add_argument("--loss", type=loss_name, choices=LOSS_NAMES)
    p.add_argument("--label-noise", metavar="SPEC", help="e.g. normal:50ms (with --labels onsets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int)
    add_set(p, "config override, e.g. train.learning_rate=1e-3 (repeatable)")
    p.add_argument("--n-train-files", type=int,
                   help="training files of the generated data (default: the demo's, "
                   "softloc.experiments.drums.DEMO_SIZE)")
    p.add_argument("--kits", action="append", default=[], type=Path, metavar="PATH",
                   help="more recorded kits for the generator: Hydrogen / SFZ / SF2 kits or a "
                   "folder of one-shots (repeatable)")
    p.add_argument("--eval-kits", action="append", default=[], type=Path, metavar="PATH",
                   help="your own evaluation kits: kept out of the training data and scored as "
                   "the 'eval-kits' set (repeatable)")
    p.add_argument("--no-system-kits", action="store_true",
                   help="do not use the kits installed on the system")
    p.add_argument("--n-eval-files", type=int, default=10,
                   help="files rendered per held-out recorded kit (default 10; 0 = none)")
    p.add_argument("--eval-seed", type=int,
                   help="seed of the rendered held-out sets (default: --seed); fix it to compare "
                   "training seeds on the same files")
    p.add_argument("--backing-music", type=float, default=0.2,
                   help="share of generated files with music under the drums (default 0.2)")
    p.add_argument("--scattered", type=float, default=0.0, metavar="P",
                   help="share of generated training files played as random strokes instead "
                   "of grooves (default 0)")
    p.add_argument("--vary-kits", type=float, default=None, metavar="P",
                   help="share of generated training files whose instruments are retuned "
                   "(+-3 semitones) and recoloured (default: the demo data's)")
    p.add_argument("--mix-kits", type=float, default=None, metavar="P",
                   help="share of generated training files whose instruments come from "
                   "several training kits (default: the demo data's)")
    p.add_argument("--decodings", default="threshold", metavar="LIST",
                   help="decodings to score, comma-separated, from: threshold, clean, "
                   "tta-mean, tta-nw, tta-nw-clean (default threshold)")
    p.add_argument("--export", type=Path, help="copy the trained model.pt here")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads for training and detection (default: the preset's "
                   "train.num_threads)")
    add_overwrite(p, "the outputs of an earlier experiment in --out (never its input data or "
                  "files it did not write)")
    add_progress(p)
    p.set_defaults(func=cmd_exp_drums)


def cmd_exp_drums(args: argparse.Namespace) -> int:
    need_training(args, "softloc experiment drums")
    from softloc._io import folder_lock
    from softloc.experiments.drums import DemoSize, run_experiment

    size = DemoSize(n_eval_files_per_kit=args.n_eval_files, backing_music=args.backing_music,
                    scattered=args.scattered)
    if args.vary_kits is not None:
        size = replace(size, vary_kits=args.vary_kits)
    if args.mix_kits is not None:
        size = replace(size, mix_kits=args.mix_kits)
    if args.n_train_files is not None:
        size = replace(size, n_train_files=args.n_train_files)
    with folder_lock(args.out, command="softloc experiment drums"):
        run_experiment(
            args.out,
            preset=args.preset,
            labels=args.labels,
            loss=args.loss,
            label_noise=args.label_noise,
            data_root=args.data,
            size=size,
            kits=tuple(args.kits),
            eval_kits=tuple(args.eval_kits),
            system_kits=not args.no_system_kits,
            decodings=tuple(parse_list("--decodings", args.decodings, str)),
            seed=args.seed,
            eval_seed=args.eval_seed,
            max_steps=args.max_steps,
            overrides=tuple(args.set) + (() if args.threads is None
                                         else (f"train.num_threads={args.threads}",)),
            overwrite=args.overwrite,
            export=args.export,
            progress=progress_of(args),
            verbose=not is_quiet(args),
        )
    return 0


# --------------------------------------------------------------------------- robustness, sweep


def parse_list(option: str, text: str, cast: type) -> list:
    """``"0,25,50"`` -> ``[0.0, 25.0, 50.0]`` (with ``cast=float``); errors name the option."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ValueError(f"{option}: expected a comma-separated list, got {text!r}")
    out = []
    for t in items:
        try:
            out.append(cast(t))
        except ValueError:
            raise ValueError(f"{option}: cannot read {t!r} as {cast.__name__}; got {text!r}") \
                from None
    return out


def parse_range(option: str, text: str) -> tuple[float, float]:
    values = parse_list(option, text, float)
    if len(values) != 2:
        raise ValueError(f"{option}: expected LOW,HIGH in ms, got {values}")
    return values[0], values[1]


def parse_loss_sets(items: Sequence[str]) -> dict[str, list[str]]:
    """``["bce:train.learning_rate=2e-3", ...]`` -> ``{"bce": ["train.learning_rate=2e-3"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        loss, sep, override = str(item).partition(":")
        if not sep or not loss.strip() or "=" not in override:
            raise ValueError(f"--loss-set {item!r}: expected 'LOSS:dotted.key=value'")
        out.setdefault(loss_name(loss), []).append(override.strip())
    return out


def add_noise_study(p: argparse.ArgumentParser) -> None:
    from softloc.experiments.robustness import NOISE_KINDS

    p.add_argument("--data", required=True, type=Path,
                   help="dataset folder (generic layout, with splits/ and annotations)")
    p.add_argument("--out", required=True, type=Path, help="experiment folder (reruns resume)")
    p.add_argument("--preset", default="drums", help="configuration preset (default: drums)")
    p.add_argument("--noise", default="normal", choices=NOISE_KINDS,
                   help="misalignment model of the train/valid labels (default: normal)")
    p.add_argument("--skew-shape", type=float, default=-2.0,
                   help="shape of skew-normal noise (default -2)")
    p.add_argument("--max-steps", type=int, help="training steps per run (default: preset's)")
    p.add_argument("--threads", type=int, help="torch CPU threads per run")
    add_set(p, "config override for every run, e.g. train.learning_rate=1e-3")
    add_progress(p)


def add_exp_robustness(p: argparse.ArgumentParser) -> None:
    from softloc.experiments.robustness import LOSSES

    p.description = (
        "Train one model per (loss, noise sigma, seed) on perturbed train/valid timestamps, score "
        "it on the clean test split; writes OUT/results.csv, results.md and robustness.png. "
        "Rerunning skips finished cells. Losses: "
        + "; ".join(f"{k}: {v.description}" for k, v in LOSSES.items())
    )
    add_noise_study(p)
    p.add_argument("--sigmas", default="0,25,50,100,150,200",
                   help="noise magnitudes in ms, comma-separated (default 0,25,50,100,150,200)")
    p.add_argument("--losses", default="softloc,bce,smoothed-bce,bootstrap,sll,loco",
                   help=f"comma-separated, from: {','.join(LOSSES)}")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    p.add_argument("--loss-set", action="append", default=[], metavar="LOSS:KEY=VALUE",
                   help="config override for the runs of one loss only, e.g. "
                   "bce:train.learning_rate=2e-3 (repeatable)")
    p.add_argument("--noise-aware", action="store_true",
                   help="tell the softloc and sll runs the noise level of their cell "
                   "(loss.label_noise_ms = sigma; an extension of the paper's loss, an oracle)")
    p.add_argument("--rescore", action="store_true",
                   help="first score the finished runs in OUT again with the current decoders, "
                   "from their saved model.pt (no training)")
    p.set_defaults(func=cmd_exp_robustness)


def cmd_exp_robustness(args: argparse.Namespace) -> int:
    need_training(args, "softloc experiment robustness")
    from softloc.experiments.robustness import run_robustness

    run_robustness(
        args.data, args.out, preset=args.preset, noise=args.noise,
        sigmas_ms=parse_list("--sigmas", args.sigmas, float),
        losses=[loss_name(x) for x in parse_list("--losses", args.losses, str)],
        seeds=args.seeds,
        max_steps=args.max_steps, overrides=tuple(args.set),
        loss_overrides=parse_loss_sets(args.loss_set), skew_shape=args.skew_shape,
        threads=args.threads, noise_aware=args.noise_aware, rescore=args.rescore,
        progress=progress_of(args),
    )
    return 0


def add_exp_sweep(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train SoftLoc at random (label noise sigma, softness) pairs and draw the F1 surface "
        "smoothed by a Gaussian Nadaraya-Watson regression; writes OUT/sweep.csv and "
        "OUT/softness_sweep.png. Rerunning with more --runs adds runs."
    )
    add_noise_study(p)
    p.add_argument("--runs", type=int, default=20, help="number of random pairs (default 20)")
    p.add_argument("--sigma-range", default="0,100", help="noise sigma range in ms (0,100)")
    p.add_argument("--softness-range", default="0,150", help="softness range in ms (0,150)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs and of training")
    p.add_argument("--bandwidth", type=float, default=15.0,
                   help="Nadaraya-Watson bandwidth in ms (default 15)")
    p.set_defaults(func=cmd_exp_sweep)


def cmd_exp_sweep(args: argparse.Namespace) -> int:
    need_training(args, "softloc experiment softness-sweep")
    from softloc.experiments.softness_sweep import run_softness_sweep

    run_softness_sweep(
        args.data, args.out, preset=args.preset, noise=args.noise, n_runs=args.runs,
        sigma_range_ms=parse_range("--sigma-range", args.sigma_range),
        softness_range_ms=parse_range("--softness-range", args.softness_range), seed=args.seed,
        max_steps=args.max_steps, overrides=tuple(args.set), bandwidth_ms=args.bandwidth,
        skew_shape=args.skew_shape, threads=args.threads, progress=progress_of(args),
    )
    return 0


# --------------------------------------------------------------------------- digits

# (flag, DigitsConfig field, type, help)
DIGITS_OPTIONS: tuple[tuple[str, str, Callable[[str], object], str], ...] = (
    ("--seed", "seed", int, "random seed (default 0)"),
    ("--max-steps", "max_steps", int, "training steps (sklearn default 2000)"),
    ("--batch-size", "batch_size", int, "canvases per step (sklearn default 32)"),
    ("--learning-rate", "learning_rate", float, "Adam learning rate (default 2e-3)"),
    ("--granularity", "granularity_px", int, "Hilbert cell size / stride in px (default 8)"),
    ("--window", "window_px", int, "window side in px (sklearn 16, mnist 32)"),
    ("--canvas", "canvas_px", int, "canvas side in px (sklearn 64, mnist 128)"),
    ("--digit-size", "digit_px", int, "digit side in px (sklearn 16, mnist 28)"),
    ("--max-digits", "max_digits", int, "most digits per canvas (sklearn 4, mnist 8)"),
    ("--min-digits", "min_digits", int, "fewest digits per canvas (default 1)"),
    ("--conv-preset", "conv_preset", str, "conv layers (default compact)"),
    ("--threshold", "threshold", float, "detection threshold on p (default 0.5)"),
    ("--tolerance", "match_tolerance_px", float, "matching tolerance in px (default: digit size)"),
    ("--test-canvases", "n_test_canvases", int, "test canvases (default 500)"),
    ("--tsne-digits", "n_tsne", int, "test digits in the t-SNE plot (default 450; 0 = no plot)"),
    ("--threads", "threads", int, "torch CPU threads (default: torch's choice)"),
)

#: What ``softloc experiment digits`` prints from the results.
DIGITS_SUMMARY = ("recognition_accuracy", "centre_distance_px", "granularity_px",
                   "detection_precision", "detection_recall", "detection_f1", "count_accuracy",
                   "train_time_s", "total_time_s")


def add_exp_digits(p: argparse.ArgumentParser) -> None:
    from softloc.experiments.digits import SOURCES
    from softloc.models.digits import CONV_PRESETS

    p.description = (
        "Train a conv + LSTM detector on canvases of random digits from digit counts only "
        "(LoCo §8), then report recognition accuracy, detection P/R/F1, mean centre distance and "
        "count accuracy; writes results.json, detections.png and tsne.png."
    )
    p.add_argument("--source", choices=SOURCES, default="sklearn",
                   help="digit source: built-in sklearn 8x8 digits or MNIST IDX files")
    p.add_argument("--mnist-dir", default=None, metavar="DIR",
                   help="folder with the MNIST IDX files (for --source mnist)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (must be new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow a non-empty --out folder (files of the same name are replaced)")
    for flag, field, typ, help_text in DIGITS_OPTIONS:
        if field == "conv_preset":
            p.add_argument(flag, dest=field, choices=sorted(CONV_PRESETS), default=None,
                           help=help_text)
            continue
        metavar = "PX" if field.endswith("_px") else ("N" if typ is int else "X")
        p.add_argument(flag, dest=field, type=typ, default=None, metavar=metavar, help=help_text)
    p.set_defaults(func=cmd_exp_digits)


def digits_config(args: argparse.Namespace):  # -> softloc.experiments.digits.DigitsConfig
    """The digits configuration of parsed ``experiment digits`` options (unset flags: defaults)."""
    from softloc.experiments.digits import default_config

    if args.source == "mnist" and not args.mnist_dir:
        raise ValueError("--source mnist needs --mnist-dir DIR (the folder of the IDX files)")
    overrides = {field: getattr(args, field) for _, field, _, _ in DIGITS_OPTIONS
                 if getattr(args, field) is not None}
    return default_config(args.source, mnist_dir=args.mnist_dir, out_dir=args.out, **overrides)


def cmd_exp_digits(args: argparse.Namespace) -> int:
    need_training(args, "softloc experiment digits")
    if args.source == "sklearn":
        from softloc._deps import require

        require("sklearn", extra="experiments", purpose="the sklearn digits")
    from softloc.experiments.digits import run_digits

    results = run_digits(digits_config(args), overwrite=args.overwrite)
    for key in DIGITS_SUMMARY:
        value = results[key]
        print(f"{key:>24}: {value:.4f}" if isinstance(value, float) else f"{key:>24}: {value}")
    print(f"{'written to':>24}: {args.out}")
    return 0


