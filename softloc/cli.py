"""The ``softloc`` command line: all argument parsing; every command calls one documented function.

==============================  ====================================================================
command                         Python API
==============================  ====================================================================
``train``                       :func:`softloc.training.train`
``detect``                      :class:`softloc.inference.Detector` +
                                :func:`softloc.inference.detect_to_folder`
``evaluate``                    :func:`softloc.evaluation.evaluate_folders`
``plot``                        :func:`softloc.plots.plot_detection`
``data synth-drums``            :func:`softloc.data.synthesize_drum_dataset`
``demo``                        :func:`softloc.experiments.drums.run_demo`
``experiment drums``            :func:`softloc.experiments.drums.run_experiment`
``experiment robustness``       :func:`softloc.experiments.robustness.run_robustness`
``experiment softness-sweep``   :func:`softloc.experiments.softness_sweep.run_softness_sweep`
``experiment digits``           :func:`softloc.experiments.digits.run_digits`
==============================  ====================================================================

Start-up cost: ``softloc --help`` and ``softloc --version`` import nothing beyond the standard
library and :mod:`softloc._version`. Each command's arguments are defined by an ``_add_<command>``
function that may import what the command describes (loss names, presets); :func:`main` calls only
the one of the command given on the command line (the others get a one-line stub for the overview),
and each ``_cmd_<command>`` imports its Python API when it runs.

``main(argv)`` returns the exit status: 0 on success, 2 for usage errors (argparse), 1 for errors a
user can fix (bad files, bad values), printed as ``softloc <command>: error: <message>``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from softloc._version import __version__

__all__ = ["main", "build_parser", "COMMANDS", "EXPERIMENTS"]

_Adder = Callable[[argparse.ArgumentParser], None]


def _loss_name(text: str) -> str:
    """A loss name in the canonical spelling (``smoothed_bce`` -> ``smoothed-bce``); argparse's
    ``choices`` then checks it."""
    return text.strip().lower().replace("_", "-")


# --------------------------------------------------------------------------- train


def _add_train(p: argparse.ArgumentParser) -> None:
    from softloc.config import LOSS_NAMES

    p.description = (
        "Train a detector from counts (LoCo) or timestamps (SoftLoc, BCE) and write a run folder "
        "(config.yaml, model.pt, metrics.json, checkpoints/, logs/)."
    )
    p.add_argument("--data", required=True, type=Path, help="dataset folder (generic layout)")
    p.add_argument("--labels", required=True, choices=("counts", "onsets", "mixed"),
                   help="supervision: counts.csv windows, annotated onsets, or mixed (annotated "
                   "files with timestamps, the other training files from their counts)")
    p.add_argument("--annotations", action="append", metavar="DIR[:SOFTNESS_MS]",
                   help="annotation folder, relative to --data or absolute (default: "
                   "annotations); repeat for several annotators, each with an optional softness "
                   "in ms, e.g. --annotations expert:20 --annotations crowd:120")
    p.add_argument("--softness-csv", type=Path,
                   help="per-file softness table 'file,softness_ms' (inf = counts only); "
                   "default DATA/softness.csv when present")
    p.add_argument("--loss", type=_loss_name, choices=LOSS_NAMES,
                   help="training loss (default: the preset's, loco for drums)")
    p.add_argument("--preset", default="drums", help="configuration preset (default: drums)")
    p.add_argument("--config", type=Path, help="YAML run configuration (instead of --preset)")
    _add_set(p, "override a config value by dotted path, e.g. train.learning_rate=1e-3 "
                "(repeatable)")
    p.add_argument("--softness-ms", type=float, help="SoftLoc softness sigma in milliseconds")
    p.add_argument("--label-noise", metavar="SPEC",
                   help="perturb training timestamps, e.g. normal:100ms (needs --labels onsets)")
    p.add_argument("--out", required=True, type=Path, help="run folder to create")
    p.add_argument("--max-steps", type=int, help="optimiser steps")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--per-class", action="store_true",
                   help="one network per class (as in the papers) instead of one multi-class net")
    p.add_argument("--accelerator", help="Lightning accelerator: cpu, gpu, auto ...")
    p.add_argument("--devices", help="Lightning devices, e.g. 1, 4 or auto")
    p.add_argument("--num-nodes", type=int, help="nodes for multi-node DDP")
    p.add_argument("--strategy", help="Lightning strategy, e.g. ddp")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from softloc.config import apply_overrides, load_config, load_preset
    from softloc.training import train

    if args.resume:
        saved = args.out / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"{saved}: cannot resume, the run folder has no config.yaml")
        if args.config or args.set or args.loss or args.softness_ms or args.per_class:
            raise ValueError(
                "--resume continues with the run's saved config.yaml; only --max-steps and the "
                "runtime options (--threads, --accelerator, --devices, ...) may change"
            )
        config = load_config(saved)
    else:
        config = load_config(args.config) if args.config else load_preset(args.preset)
    overrides = list(args.set)
    for flag, key in (
        ("loss", "loss.name"),
        ("softness_ms", "loss.softness_ms"),
        ("max_steps", "train.max_steps"),
        ("seed", "train.seed"),
        ("accelerator", "train.accelerator"),
        ("devices", "train.devices"),
        ("num_nodes", "train.num_nodes"),
        ("strategy", "train.strategy"),
        ("threads", "train.num_threads"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.per_class:
        overrides.append("model.per_class=true")
    config = apply_overrides(config, overrides)
    result = train(
        config,
        data_root=args.data,
        out_dir=args.out,
        labels=args.labels,
        annotations=args.annotations or ["annotations"],
        softness_csv=args.softness_csv,
        label_noise=args.label_noise,
        resume=args.resume,
        progress=not args.no_progress,
    )
    m = result.metrics
    inf = result.config.inference
    print(
        f"run {result.run_dir}: {m.get('steps')} steps in {m.get('wall_time_s')} s, "
        f"best validation score {m.get('best_val_score')}; per-class time offsets (s) "
        f"{list(inf.class_offsets_s) or [inf.time_offset_s]}, thresholds "
        f"{list(inf.class_thresholds) or [inf.threshold]}"
    )
    return 0


# --------------------------------------------------------------------------- detect, evaluate, plot


def _add_detect(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Detect events in audio files (or a dataset split) and write one "
        "<stem>.txt ('<seconds>\\t<label>'), <stem>.json or <stem>.mid per file."
    )
    p.add_argument("inputs", nargs="*", type=Path, help="audio files and/or folders")
    p.add_argument("--model", type=Path,
                   help="run folder or model file (default: the shipped drum model)")
    p.add_argument("--data", type=Path, help="dataset folder (with --split)")
    p.add_argument("--split", choices=("train", "valid", "test"), help="split of --data")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--format", choices=("tsv", "json", "midi"), default="tsv")
    p.add_argument("--threshold", type=float, help="override the run's threshold on p(t)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation with sample-rate factors 7/8 and 9/8")
    p.set_defaults(func=_cmd_detect)


def _cmd_detect(args: argparse.Namespace) -> int:
    from softloc.inference import Detector, collect_audio_inputs, detect_to_folder

    if bool(args.data) != bool(args.split):
        raise ValueError("--data and --split go together")
    if not args.inputs and not args.data:
        raise ValueError("give audio files/folders, or --data ROOT --split test")
    paths = collect_audio_inputs(args.inputs, data_root=args.data, split=args.split)
    detector = Detector.load(args.model)
    if args.threshold is not None:
        detector = detector.with_settings(threshold=args.threshold)
    if args.tta:
        detector = detector.with_settings(tta_factors=(0.875, 1.125))
    written = detect_to_folder(detector, paths, args.out, fmt=args.format)
    n_events = sum(n for _, n in written)
    print(f"wrote {len(written)} files ({n_events} events) to {args.out}")
    return 0


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Match <stem>.txt detections to <stem>.txt references per class (mir_eval matching) and "
        "print P/R/F1, timing error and count metrics."
    )
    p.add_argument("--ref", required=True, type=Path, help="reference annotation folder")
    p.add_argument("--est", required=True, type=Path, help="detection folder")
    p.add_argument("--split-file", type=Path, help="evaluate only the stems listed in this file")
    p.add_argument("--tolerance", type=float, default=0.05, help="seconds (default 0.05)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from softloc._io import atomic_write_text
    from softloc.evaluation import evaluate_folders
    from softloc.metrics import format_table, results_to_json

    results = evaluate_folders(
        args.ref, args.est, split_file=args.split_file, tolerance_s=args.tolerance
    )
    print(format_table(results))
    if args.json:
        atomic_write_text(args.json, results_to_json(results) + "\n")
    return 0


def _add_plot(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Plot the spectrogram, p(t) per class, the count distribution Y(k, t) evolving over time "
        "and the reference events of one audio excerpt."
    )
    p.add_argument("audio", type=Path,
                   help="audio file (an image file for an image model, e.g. a digits run)")
    p.add_argument("--model", type=Path, help="run folder (default: the shipped drum model)")
    p.add_argument("--annotations", type=Path, help="reference annotation file")
    p.add_argument("--start", type=float, default=0.0, help="excerpt start in seconds")
    p.add_argument("--duration", type=float, help="excerpt length in seconds (default 4)")
    p.add_argument("--out", required=True, type=Path, help="figure file (.png, .pdf, .svg)")
    p.set_defaults(func=_cmd_plot)


def _cmd_plot(args: argparse.Namespace) -> int:
    from softloc.inference import Detector
    from softloc.plots import plot_detection

    detector = Detector.load(args.model)
    plot_detection(
        detector, args.audio, args.out, annotations=args.annotations,
        start_s=args.start, duration_s=args.duration,
    )
    print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------- data, demo


def _add_data(p: argparse.ArgumentParser) -> None:
    dsub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    s = dsub.add_parser(
        "synth-drums",
        help="write the built-in synthetic drum dataset",
        description="Synthesise kick/snare/hi-hat tracks with annotations, counts.csv and "
        "splits (test kits differ from train kits). Deterministic per seed.",
    )
    s.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-train-files", type=int, default=40)
    s.add_argument("--n-valid-files", type=int, default=6)
    s.add_argument("--n-test-files", type=int, default=10)
    s.add_argument("--file-duration", type=float, default=30.0, help="seconds per file")
    s.add_argument("--kits", nargs="+", type=Path, default=[], metavar="PATH",
                   help="recorded kits to use besides the system ones: Hydrogen kit folders, "
                   ".sfz / .sf2 files, folders holding them, or a folder of one-shots")
    s.add_argument("--no-system-kits", action="store_true",
                   help="do not use the kits installed in /usr/share/hydrogen/data/drumkits "
                   "and /usr/share/sounds/sf2")
    s.add_argument("--synthetic-kits", nargs=3, type=int, default=[10, 3, 5],
                   metavar=("TRAIN", "VALID", "TEST"),
                   help="synthetic kits per split, added to the recorded ones (default 10 3 5)")
    s.add_argument("--backing-music", type=float, default=0.2, metavar="P",
                   help="fraction of files with synthesised music under the drums (default 0.2)")
    s.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    from softloc.data import synthesize_drum_dataset

    index = synthesize_drum_dataset(
        args.out,
        seed=args.seed,
        n_train_files=args.n_train_files,
        n_valid_files=args.n_valid_files,
        n_test_files=args.n_test_files,
        file_duration_s=args.file_duration,
        kits=args.kits,
        system_kits=not args.no_system_kits,
        n_train_kits=args.synthetic_kits[0],
        n_valid_kits=args.synthetic_kits[1],
        n_test_kits=args.synthetic_kits[2],
        backing_music=args.backing_music,
    )
    sizes = ", ".join(f"{k} {len(v)}" for k, v in index.splits.items())
    print(f"wrote {len(index.stems)} files to {args.out} ({sizes})")
    return 0


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Generate the built-in drum data, train LoCo from counts only, detect on the test kits, "
        "evaluate; writes DIR/metrics.json and DIR/demo.png."
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="training steps (default: the demo preset's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from softloc.experiments.drums import run_demo

    run_demo(args.out, seed=args.seed, max_steps=args.max_steps, overwrite=args.overwrite)
    return 0


# --------------------------------------------------------------------------- experiment drums


def _add_set(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def _add_exp_drums(p: argparse.ArgumentParser) -> None:
    from softloc.config import LOSS_NAMES

    p.description = (
        "LoCo §6 / SoftLoc §5.1.2 on the built-in synthetic drums (or --data): train from counts "
        "or (noisy) timestamps, detect on the test split, evaluate at +-50 ms."
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--data", type=Path, help="use this dataset instead of generating one")
    p.add_argument("--preset", default="drums")
    p.add_argument("--labels", choices=("counts", "onsets"), default="counts")
    p.add_argument("--loss", type=_loss_name, choices=LOSS_NAMES)
    p.add_argument("--label-noise", metavar="SPEC", help="e.g. normal:50ms (with --labels onsets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int)
    _add_set(p, "config override, e.g. train.learning_rate=1e-3 (repeatable)")
    p.add_argument("--n-train-files", type=int, default=40,
                   help="training files of the generated data (default 40)")
    p.add_argument("--export", type=Path, help="copy the trained model.pt here")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_exp_drums)


def _cmd_exp_drums(args: argparse.Namespace) -> int:
    from softloc.experiments.drums import DemoSize, run_experiment

    run_experiment(
        args.out,
        preset=args.preset,
        labels=args.labels,
        loss=args.loss,
        label_noise=args.label_noise,
        data_root=args.data,
        size=DemoSize(n_train_files=args.n_train_files),
        seed=args.seed,
        max_steps=args.max_steps,
        overrides=tuple(args.set),
        overwrite=args.overwrite,
        export=args.export,
    )
    return 0


# --------------------------------------------------------------------------- robustness, sweep


def _parse_list(option: str, text: str, cast: type) -> list:
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


def _parse_range(option: str, text: str) -> tuple[float, float]:
    values = _parse_list(option, text, float)
    if len(values) != 2:
        raise ValueError(f"{option}: expected LOW,HIGH in ms, got {values}")
    return values[0], values[1]


def _parse_loss_sets(items: Sequence[str]) -> dict[str, list[str]]:
    """``["bce:train.learning_rate=2e-3", ...]`` -> ``{"bce": ["train.learning_rate=2e-3"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        loss, sep, override = str(item).partition(":")
        if not sep or not loss.strip() or "=" not in override:
            raise ValueError(f"--loss-set {item!r}: expected 'LOSS:dotted.key=value'")
        out.setdefault(_loss_name(loss), []).append(override.strip())
    return out


def _add_noise_study(p: argparse.ArgumentParser) -> None:
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
    _add_set(p, "config override for every run, e.g. train.learning_rate=1e-3")
    p.add_argument("--progress", action="store_true", help="show training progress bars")


def _add_exp_robustness(p: argparse.ArgumentParser) -> None:
    from softloc.experiments.robustness import LOSSES

    p.description = (
        "Train one model per (loss, noise sigma, seed) on perturbed train/valid timestamps, score "
        "it on the clean test split; writes OUT/results.csv, results.md and robustness.png. "
        "Rerunning skips finished cells. Losses: "
        + "; ".join(f"{k}: {v.description}" for k, v in LOSSES.items())
    )
    _add_noise_study(p)
    p.add_argument("--sigmas", default="0,25,50,100,150,200",
                   help="noise magnitudes in ms, comma-separated (default 0,25,50,100,150,200)")
    p.add_argument("--losses", default="softloc,bce,smoothed-bce,bootstrap,sll,loco",
                   help=f"comma-separated, from: {','.join(LOSSES)}")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    p.add_argument("--loss-set", action="append", default=[], metavar="LOSS:KEY=VALUE",
                   help="config override for the runs of one loss only, e.g. "
                   "bce:train.learning_rate=2e-3 (repeatable)")
    p.set_defaults(func=_cmd_exp_robustness)


def _cmd_exp_robustness(args: argparse.Namespace) -> int:
    from softloc.experiments.robustness import run_robustness

    run_robustness(
        args.data, args.out, preset=args.preset, noise=args.noise,
        sigmas_ms=_parse_list("--sigmas", args.sigmas, float),
        losses=[_loss_name(x) for x in _parse_list("--losses", args.losses, str)],
        seeds=args.seeds,
        max_steps=args.max_steps, overrides=tuple(args.set),
        loss_overrides=_parse_loss_sets(args.loss_set), skew_shape=args.skew_shape,
        threads=args.threads, progress=args.progress,
    )
    return 0


def _add_exp_sweep(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train SoftLoc at random (label noise sigma, softness) pairs and draw the F1 surface "
        "smoothed by a Gaussian Nadaraya-Watson regression; writes OUT/sweep.csv and "
        "OUT/softness_sweep.png. Rerunning with more --runs adds runs."
    )
    _add_noise_study(p)
    p.add_argument("--runs", type=int, default=20, help="number of random pairs (default 20)")
    p.add_argument("--sigma-range", default="0,100", help="noise sigma range in ms (0,100)")
    p.add_argument("--softness-range", default="0,150", help="softness range in ms (0,150)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs and of training")
    p.add_argument("--bandwidth", type=float, default=15.0,
                   help="Nadaraya-Watson bandwidth in ms (default 15)")
    p.set_defaults(func=_cmd_exp_sweep)


def _cmd_exp_sweep(args: argparse.Namespace) -> int:
    from softloc.experiments.softness_sweep import run_softness_sweep

    run_softness_sweep(
        args.data, args.out, preset=args.preset, noise=args.noise, n_runs=args.runs,
        sigma_range_ms=_parse_range("--sigma-range", args.sigma_range),
        softness_range_ms=_parse_range("--softness-range", args.softness_range), seed=args.seed,
        max_steps=args.max_steps, overrides=tuple(args.set), bandwidth_ms=args.bandwidth,
        skew_shape=args.skew_shape, threads=args.threads, progress=args.progress,
    )
    return 0


# --------------------------------------------------------------------------- digits

# (flag, DigitsConfig field, type, help)
_DIGITS_OPTIONS: tuple[tuple[str, str, Callable[[str], object], str], ...] = (
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
_DIGITS_SUMMARY = ("recognition_accuracy", "centre_distance_px", "granularity_px",
                   "detection_precision", "detection_recall", "detection_f1", "count_accuracy",
                   "train_time_s", "total_time_s")


def _add_exp_digits(p: argparse.ArgumentParser) -> None:
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
    for flag, field, typ, help_text in _DIGITS_OPTIONS:
        if field == "conv_preset":
            p.add_argument(flag, dest=field, choices=sorted(CONV_PRESETS), default=None,
                           help=help_text)
            continue
        metavar = "PX" if field.endswith("_px") else ("N" if typ is int else "X")
        p.add_argument(flag, dest=field, type=typ, default=None, metavar=metavar, help=help_text)
    p.set_defaults(func=_cmd_exp_digits)


def _digits_config(args: argparse.Namespace):  # -> softloc.experiments.digits.DigitsConfig
    """The digits configuration of parsed ``experiment digits`` options (unset flags: defaults)."""
    from softloc.experiments.digits import default_config

    if args.source == "mnist" and not args.mnist_dir:
        raise ValueError("--source mnist needs --mnist-dir DIR (the folder of the IDX files)")
    overrides = {field: getattr(args, field) for _, field, _, _ in _DIGITS_OPTIONS
                 if getattr(args, field) is not None}
    return default_config(args.source, mnist_dir=args.mnist_dir, out_dir=args.out, **overrides)


def _cmd_exp_digits(args: argparse.Namespace) -> int:
    from softloc.experiments.digits import run_digits

    results = run_digits(_digits_config(args), overwrite=args.overwrite)
    for key in _DIGITS_SUMMARY:
        value = results[key]
        print(f"{key:>24}: {value:.4f}" if isinstance(value, float) else f"{key:>24}: {value}")
    print(f"{'written to':>24}: {args.out}")
    return 0


# --------------------------------------------------------------------------- the parser

#: ``softloc <command>``: name -> (one-line help, function adding the command's arguments).
COMMANDS: dict[str, tuple[str, _Adder]] = {
    "train": ("train a detector on a dataset folder", _add_train),
    "detect": ("detect events in audio files", _add_detect),
    "evaluate": ("score detections against reference annotations", _add_evaluate),
    "plot": ("LoCo Fig. 1: spectrogram, p(t), count distribution over time", _add_plot),
    "data": ("dataset tools", _add_data),
    "demo": ("synth data -> train from counts -> detect -> evaluate (make demo)", _add_demo),
    "experiment": ("paper experiments (softloc experiment NAME --help)", lambda p: None),
}

#: ``softloc experiment <name>``: name -> (one-line help, function adding its arguments).
EXPERIMENTS: dict[str, tuple[str, _Adder]] = {
    "drums": ("drum experiment on built-in data: synth -> train -> detect -> evaluate",
              _add_exp_drums),
    "robustness": ("SoftLoc Fig. 5 / Table 1: F1 vs label noise for several losses",
                   _add_exp_robustness),
    "softness-sweep": ("SoftLoc Fig. 6: F1 over random (noise sigma, softness) pairs, NW heat "
                       "map", _add_exp_sweep),
    "digits": ("LoCo §8: digit detection along a Hilbert curve, trained from counts",
               _add_exp_digits),
}


def _positionals(argv: Sequence[str]) -> list[str]:
    """The leading words of ``argv`` that are not options (the command and its sub-command)."""
    return [a for a in argv if not a.startswith("-")][:2]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``softloc``.

    Args:
        argv: the command line about to be parsed. Only the command (and experiment) named in it
            get their arguments, so that their imports happen only when needed; the others are
            one-line stubs listed by ``--help``. ``None``: every command in full.
    """
    words = None if argv is None else _positionals(argv)
    parser = argparse.ArgumentParser(
        prog="softloc",
        description="Train event detectors from weak labels (counts: LoCo; misaligned "
        "timestamps: SoftLoc), detect, evaluate, plot.",
    )
    parser.add_argument("--version", action="version", version=f"softloc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if words is None or words[:1] == [name]:
            add(p)
    experiment = sub.choices["experiment"]
    esub = experiment.add_subparsers(dest="experiment", metavar="NAME", required=True)
    for name, (help_text, add) in EXPERIMENTS.items():
        p = esub.add_parser(name, help=help_text, description=help_text)
        if words is None or words == ["experiment", name]:
            add(p)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    for extra in ("data_command", "experiment"):
        if getattr(args, extra, None):
            return f"{args.command} {getattr(args, extra)}"
    return str(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``softloc`` command line; returns the exit status (0, 1 user error, 2 usage)."""
    import warnings

    # Lightning 2.6 on torch 2.13 warns about a torch-internal API on import; not actionable.
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
        print(f"softloc {_command_name(args)}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
