"""The ``softloc`` command line: argument parsing only; every command calls one Python function.

==================  ===============================================================
command             Python API
==================  ===============================================================
``train``           :func:`softloc.train.train`
``detect``          :class:`softloc.inference.Detector` + :func:`softloc.inference.detect_to_folder`
``evaluate``        :func:`softloc.inference.evaluate_folders`
``plot``            :func:`softloc.plots.plot_detection`
``data synth-drums``:func:`softloc.data.synthesize_drum_dataset`
``demo``            :func:`softloc.experiments.drums.run_demo`
``experiment NAME`` ``softloc.experiments.<NAME>.register_cli``
==================  ===============================================================

``main(argv)`` returns the exit status: 0 on success, 2 for usage errors (argparse), 1 for errors a
user can fix (bad files, bad values), printed as ``softloc <command>: error: <message>``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from softloc import __version__

__all__ = ["main", "build_parser", "EXPERIMENT_MODULES"]

#: Experiment modules that may add a ``softloc experiment <name>`` sub-command through a
#: ``register_cli(subparsers)`` function. A module that is absent is skipped.
EXPERIMENT_MODULES = (
    "softloc.experiments.drums",
    "softloc.experiments.robustness",
    "softloc.experiments.digits",
)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from softloc.config import LOSS_NAMES

    p = sub.add_parser(
        "train",
        help="train a detector on a dataset folder",
        description="Train a detector from counts (LoCo) or timestamps (SoftLoc, BCE) and write a "
        "run folder (config.yaml, model.pt, metrics.json, checkpoints/, logs/).",
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
    p.add_argument("--loss", choices=LOSS_NAMES,
                   help="training loss (default: the preset's, loco for drums)")
    p.add_argument("--preset", default="drums", help="configuration preset (default: drums)")
    p.add_argument("--config", type=Path, help="YAML run configuration (instead of --preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by dotted path, e.g. train.learning_rate=1e-3 "
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
    from softloc.train import train

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


def _add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="detect events in audio files",
        description="Detect events in audio files (or a dataset split) and write one "
        "<stem>.txt ('<seconds>\\t<label>'), <stem>.json or <stem>.mid per file.",
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


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score detections against reference annotations",
        description="Match <stem>.txt detections to <stem>.txt references per class "
        "(mir_eval matching) and print P/R/F1, timing error and count metrics.",
    )
    p.add_argument("--ref", required=True, type=Path, help="reference annotation folder")
    p.add_argument("--est", required=True, type=Path, help="detection folder")
    p.add_argument("--split-file", type=Path, help="evaluate only the stems listed in this file")
    p.add_argument("--tolerance", type=float, default=0.05, help="seconds (default 0.05)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from softloc.config import atomic_write_text
    from softloc.inference import evaluate_folders
    from softloc.metrics import format_table, results_to_json

    results = evaluate_folders(
        args.ref, args.est, split_file=args.split_file, tolerance_s=args.tolerance
    )
    print(format_table(results))
    if args.json:
        atomic_write_text(args.json, results_to_json(results) + "\n")
    return 0


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="LoCo Fig. 1: spectrogram, p(t), count distribution over time",
        description="Plot the spectrogram, p(t) per class, the count distribution Y(k, t) "
        "evolving over time and the reference events of one audio excerpt.",
    )
    p.add_argument("audio", type=Path, help="audio file")
    p.add_argument("--model", type=Path, help="run folder (default: the shipped drum model)")
    p.add_argument("--annotations", type=Path, help="reference annotation file")
    p.add_argument("--start", type=float, default=0.0, help="excerpt start in seconds")
    p.add_argument("--duration", type=float, default=4.0, help="excerpt length in seconds")
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


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset tools")
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
    )
    sizes = ", ".join(f"{k} {len(v)}" for k, v in index.splits.items())
    print(f"wrote {len(index.stems)} files to {args.out} ({sizes})")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="synth data -> train from counts -> detect -> evaluate (make demo)",
        description="Generate the built-in drum data, train LoCo from counts only, detect on "
        "the test kits, evaluate; writes DIR/metrics.json and DIR/demo.png.",
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


def _add_experiments(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="paper experiments (softloc experiment NAME --help)")
    esub = p.add_subparsers(dest="experiment", metavar="NAME", required=True)
    for name in EXPERIMENT_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue  # an optional experiment that is not installed
            raise
        register = getattr(module, "register_cli", None)
        if register is not None:
            register(esub)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-commands included)."""
    parser = argparse.ArgumentParser(
        prog="softloc",
        description="Train event detectors from weak labels (counts: LoCo; misaligned "
        "timestamps: SoftLoc), detect, evaluate, plot.",
    )
    parser.add_argument("--version", action="version", version=f"softloc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_detect(sub)
    _add_evaluate(sub)
    _add_plot(sub)
    _add_data(sub)
    _add_demo(sub)
    _add_experiments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``softloc`` command line; returns the exit status."""
    import warnings

    # Lightning 2.6 on torch 2.13 warns about a torch-internal API on import; not actionable.
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
        command = args.command if args.command != "data" else f"data {args.data_command}"
        print(f"softloc {command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
