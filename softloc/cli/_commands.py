"""Arguments and actions of ``softloc train | detect | evaluate | plot | data | demo``.

Each ``add_<command>(parser)`` defines a command's arguments (importing only what they describe);
each ``cmd_<command>(args)`` imports its Python API when it runs and calls it (the table in
:mod:`softloc.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = [
    "loss_name",
    "add_set",
    "add_train",
    "cmd_train",
    "add_detect",
    "cmd_detect",
    "add_evaluate",
    "cmd_evaluate",
    "add_plot",
    "cmd_plot",
    "add_data",
    "cmd_synth",
    "add_demo",
    "cmd_demo",
]


def loss_name(text: str) -> str:
    """A loss name in the canonical spelling (``smoothed_bce`` -> ``smoothed-bce``); argparse's
    ``choices`` then checks it."""
    return text.strip().lower().replace("_", "-")


def add_set(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


# --------------------------------------------------------------------------- train


def add_train(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--loss", type=loss_name, choices=LOSS_NAMES,
                   help="training loss (default: the preset's, loco for drums)")
    p.add_argument("--preset", default="drums", help="configuration preset (default: drums)")
    p.add_argument("--config", type=Path, help="YAML run configuration (instead of --preset)")
    add_set(p, "override a config value by dotted path, e.g. train.learning_rate=1e-3 "
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
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
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


def add_detect(p: argparse.ArgumentParser) -> None:
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
    p.set_defaults(func=cmd_detect)


def cmd_detect(args: argparse.Namespace) -> int:
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


def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Match <stem>.txt detections to <stem>.txt references per class (mir_eval matching) and "
        "print P/R/F1, timing error and count metrics."
    )
    p.add_argument("--ref", required=True, type=Path, help="reference annotation folder")
    p.add_argument("--est", required=True, type=Path, help="detection folder")
    p.add_argument("--split-file", type=Path, help="evaluate only the stems listed in this file")
    p.add_argument("--tolerance", type=float, default=0.05, help="seconds (default 0.05)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
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


def add_plot(p: argparse.ArgumentParser) -> None:
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
    p.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
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


def add_data(p: argparse.ArgumentParser) -> None:
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
    s.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
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


def add_demo(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Generate the built-in drum data, train LoCo from counts only, detect on the test kits, "
        "evaluate; writes DIR/metrics.json and DIR/demo.png."
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="training steps (default: the demo preset's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from softloc.experiments.drums import run_demo

    run_demo(args.out, seed=args.seed, max_steps=args.max_steps, overwrite=args.overwrite)
    return 0


