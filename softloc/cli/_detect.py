"""Arguments and actions of ``softloc detect | evaluate | plot`` (need only ``pip install softloc``;
``plot`` also matplotlib, the ``plot`` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from softloc.cli._common import (
    add_device,
    add_overwrite,
    add_progress,
    add_threads,
    check_output_file,
    eprint,
    progress_of,
    say,
)

if TYPE_CHECKING:
    from softloc.inference.model_file import ModelFile

__all__ = [
    "add_detect",
    "cmd_detect",
    "add_evaluate",
    "cmd_evaluate",
    "add_plot",
    "cmd_plot",
    "parse_formats",
    "parse_pitch_map",
]

_FORMATS = ("tsv", "json", "midi")


def parse_formats(text: str) -> list[str]:
    """``"tsv,json"`` -> ``["tsv", "json"]`` (``mid`` accepted for ``midi``)."""
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    items = ["midi" if t == "mid" else t for t in items]
    bad = [t for t in items if t not in _FORMATS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(_FORMATS)}"
                                         f", got {text!r}")
    return list(dict.fromkeys(items))


def parse_pitch_map(text: str) -> dict[str, int]:
    """``"KD=36,SD=38,HH=42"`` -> ``{"KD": 36, ...}`` (MIDI keys 0-127)."""
    out: dict[str, int] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        label, sep, pitch = item.partition("=")
        if not sep or not label.strip() or not pitch.strip().isdigit() \
                or not 0 <= int(pitch) <= 127:
            raise argparse.ArgumentTypeError(f"expected LABEL=KEY pairs with MIDI keys 0-127, "
                                             f"e.g. KD=36,SD=38,HH=42; got {item!r}")
        out[label.strip()] = int(pitch)
    if not out:
        raise argparse.ArgumentTypeError("expected LABEL=KEY pairs, e.g. KD=36,SD=38,HH=42")
    return out


# --------------------------------------------------------------------------- detect


def add_detect(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Detect events in audio files and write, per input, OUT/<stem>.txt "
        "('<seconds>\\t<label>\\t<score>'), .json (events + model, version, thresholds) and/or "
        ".mid (drums on channel 10, pitched labels on a piano track); optionally p(t) as .npy. "
        "With an action-segmentation model (softloc experiment segmentation --save-models) the "
        "inputs are .npy feature files (or the split of an MS-TCN dataset) and OUT/<stem>.txt "
        "holds one '<start_s>\\t<end_s>\\t<label>' line per segment. "
        "A file that fails is reported at the end (exit status 1); the others are written."
    )
    p.add_argument("inputs", nargs="*",
                   help="audio files, folders (every format soundfile reads) or quoted glob "
                   "patterns, e.g. 'music/**/*.mp3'")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--model", type=Path,
                   help="run folder or model file (default: the shipped drum model)")
    p.add_argument("--data", type=Path, help="dataset folder (with --split)")
    p.add_argument("--split", choices=("train", "valid", "test"), help="split of --data")
    p.add_argument("--fold", type=int, metavar="K",
                   help="fold of an MS-TCN dataset's splits (segmentation models; default: "
                   "the fold the model was trained on)")
    p.add_argument("--recursive", action="store_true",
                   help="also search the sub-folders of folder inputs (outputs keep the "
                   "sub-folders)")
    p.add_argument("--format", type=parse_formats, default=["tsv"], metavar="LIST",
                   help="output formats, comma-separated: tsv, json, midi (default tsv)")
    p.add_argument("--save-activations", action="store_true",
                   help="also write p(t) as <stem>.npy, float32 (class, frames)")
    p.add_argument("--pitch-map", type=parse_pitch_map, metavar="LABEL=KEY,...",
                   help="MIDI keys of drum labels (default General MIDI: KD=36,SD=38,HH=42); "
                   "numeric labels such as 60 are written as piano notes")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip inputs whose outputs all exist (resume a batch)")
    add_overwrite(p, "output files")
    p.add_argument("--threshold", type=float, help="override the run's threshold on p(t)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation with sample-rate factors 7/8 and 9/8")
    p.add_argument("--snap-ms", type=float, metavar="MS",
                   help="time series: move each detection to the signal's largest deflection "
                   "within +-MS (R-peak correction; 0 = off; default: the run's "
                   "inference.snap_radius_s)")
    add_threads(p)
    add_device(p)
    add_progress(p)
    p.set_defaults(func=cmd_detect)


def _check_out_outside_dataset(out: Path, data: Path | None) -> None:
    """Detections never go into the dataset folder (they would mix with, or replace, its
    annotations), whatever ``--overwrite`` says."""
    if data is None:
        return
    root, target = data.resolve(), out.resolve()
    if target == root or target.is_relative_to(root):
        raise ValueError(f"{out}: --out lies inside the dataset {data}; detections there would "
                         "mix with (or replace) its annotations: choose a folder outside it")


def _segmentation_misfits(args: argparse.Namespace) -> list[str]:
    """The options given that mean nothing for a segmentation model (arg-max per frame)."""
    misfit = []
    if args.format != ["tsv"]:
        misfit.append(f"--format {','.join(args.format)} (segment files are text only)")
    for flag, given in (("--threshold", args.threshold is not None), ("--tta", args.tta),
                        ("--snap-ms", args.snap_ms is not None),
                        ("--pitch-map", args.pitch_map is not None),
                        ("--save-activations", args.save_activations)):
        if given:
            misfit.append(flag)
    return misfit


def _detect_segments(args: argparse.Namespace, model_file: ModelFile) -> int:
    """``softloc detect`` with a segmentation model: feature files -> OUT/<stem>.txt segments."""
    import torch

    from softloc.inference import SMALL_MODEL_PARAMETERS
    from softloc.inference.features_input import Segmentation, feature_inputs, segment_batch

    misfit = _segmentation_misfits(args)
    if misfit:
        raise ValueError(f"{model_file.path}: a segmentation model takes the arg-max class of "
                         f"every frame and writes '<start_s>\\t<end_s>\\t<label>' text files; "
                         f"{', '.join(misfit)} does not apply")
    seg = Segmentation.from_model_file(model_file)
    fold = args.fold if args.fold is not None else seg.extra.get("split")
    inputs = feature_inputs(args.inputs, data_root=args.data, split=args.split,
                            fold=None if fold is None else int(fold), recursive=args.recursive)
    try:
        seg.model = seg.model.to(torch.device(args.device))
    except (RuntimeError, ValueError, AssertionError) as err:
        raise ValueError(f"--device: cannot use {args.device!r}: {err}") from err
    threads = args.threads
    if threads == "auto":  # as Detector.load: small networks run fastest on one thread
        n_params = sum(p.numel() for p in seg.model.parameters())
        threads = 1 if n_params < SMALL_MODEL_PARAMETERS else None
    if threads is not None:
        torch.set_num_threads(int(threads))
    report = segment_batch(seg, inputs, args.out, overwrite=args.overwrite,
                           skip_existing=args.skip_existing)
    n_segments = sum(n for *_, n in report.written)
    head = f"wrote {len(report.written)} segment file(s) ({n_segments} segments) to {args.out}"
    if report.skipped:
        head += f"; skipped {len(report.skipped)} with existing outputs"
    if report.failed:
        head += f"; {len(report.failed)} FAILED"
    say(args, head)
    for _, msg in report.failed:
        eprint(f"  failed: {msg}")
    return 1 if report.failed else 0


def cmd_detect(args: argparse.Namespace) -> int:
    from softloc.inference import Detector, detect_batch, detection_metadata, plan_outputs
    from softloc.inference.features_input import is_segmentation_model, resolve_run_model
    from softloc.inference.model_file import read_model_file

    if bool(args.data) != bool(args.split):
        raise ValueError("--data and --split go together")
    if not args.inputs and not args.data:
        raise ValueError("give audio files/folders (.npy feature files for a segmentation "
                         "model), or --data ROOT --split test")
    if args.overwrite and args.skip_existing:
        raise ValueError("--overwrite and --skip-existing exclude each other")
    _check_out_outside_dataset(args.out, args.data)
    if args.model is not None:
        model_file = read_model_file(resolve_run_model(args.model))
        if is_segmentation_model(model_file):
            return _detect_segments(args, model_file)
    if args.fold is not None:
        raise ValueError("--fold selects a fold of an MS-TCN dataset for a segmentation "
                         "model; this model detects events")
    jobs = plan_outputs(args.inputs, args.out, formats=args.format,
                        save_activations=args.save_activations, data_root=args.data,
                        split=args.split, recursive=args.recursive)
    model = None if args.model is None else model_file.path
    detector = Detector.load(model, threads=args.threads, device=args.device)
    if args.threshold is not None:
        detector = detector.with_settings(threshold=args.threshold)
    if args.tta:
        detector = detector.with_settings(tta_factors=(0.875, 1.125))
    if args.snap_ms is not None:
        detector = detector.with_settings(snap_radius_s=args.snap_ms / 1000)
    meta = detection_metadata(detector, model=None if args.model is None else str(args.model))
    report = detect_batch(detector, jobs, args.out, overwrite=args.overwrite,
                          skip_existing=args.skip_existing, metadata=meta,
                          pitch_map=args.pitch_map, progress=progress_of(args))
    head, *failures = report.summary(args.out).splitlines()
    say(args, head)
    for line in failures:
        eprint(line)
    return 1 if report.failed else 0


# --------------------------------------------------------------------------- evaluate


def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Match detections to references per class (mir_eval matching) and print P/R/F1, timing "
        "error and count metrics. Reads every format detect writes (.txt, .json, .mid) and "
        "every annotation format (.txt, IDMT .xml, MIDI, MAPS .txt); files are matched by "
        "name without suffix. Without --files / --split-file the stems present in both folders "
        "are scored and the others listed. With an MS-TCN dataset (or its groundTruth folder) "
        "as --ref, the segment files of a segmentation model are scored with segmental "
        "F1@10/25/50, edit and frame accuracy (--fps: the rate of the per-frame labels)."
    )
    p.add_argument("--ref", required=True, type=Path, help="reference annotation folder")
    p.add_argument("--est", required=True, type=Path, help="detection folder")
    p.add_argument("--files", nargs="+", metavar="STEM",
                   help="score these files only (names with or without suffix); each must "
                   "exist in both folders")
    p.add_argument("--split-file", type=Path, help="score the stems listed in this file")
    p.add_argument("--classes", metavar="LIST",
                   help="score these labels only, comma-separated (default: every label found)")
    p.add_argument("--tolerance", type=float, help="seconds (default 0.05; events only)")
    p.add_argument("--fps", type=float,
                   help="frames per second of an MS-TCN dataset's per-frame labels (segments "
                   "only; required there)")
    p.add_argument("--empty-policy", choices=("skip", "zero", "one"), default="skip",
                   help="score of 0/0 ratios in per-file means: skip (default), zero "
                   "(mir_eval) or one (madmom, ADTOF)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    add_overwrite(p, "the --json file")
    p.set_defaults(func=cmd_evaluate)


def _evaluate_segments(args: argparse.Namespace, classes: list[str] | None) -> dict:
    """``softloc evaluate`` on segment files: print F1@{10,25,50}, edit and accuracy."""
    from softloc.evaluation import evaluate_segment_folders

    if args.tolerance is not None:
        raise ValueError(f"--tolerance: {args.ref} is an MS-TCN dataset; segments are matched "
                         "by overlap (F1@10/25/50), not within a time tolerance")
    if classes is not None:
        raise ValueError("--classes: segment evaluation scores every class of mapping.txt")
    if args.fps is None:
        raise ValueError(f"--fps is required: {args.ref} holds per-frame labels, and their "
                         "frame rate is not stored in the dataset (e.g. --fps 30)")
    results = evaluate_segment_folders(args.ref, args.est, frame_rate=args.fps,
                                       split_file=args.split_file, files=args.files,
                                       empty_policy=args.empty_policy)
    o = results["overall"]
    print("F1@10   F1@25   F1@50   edit    accuracy  videos")
    print(f"{o['f1_10']:.4f}  {o['f1_25']:.4f}  {o['f1_50']:.4f}  {o['edit']:.4f}  "
          f"{o['accuracy']:.4f}    {o['n_sequences']}")
    return results


def cmd_evaluate(args: argparse.Namespace) -> int:
    from softloc._io import atomic_write_text
    from softloc.evaluation import coverage_report, evaluate_folders, segment_reference
    from softloc.metrics import format_table, results_to_json

    if args.json is not None:
        check_output_file(args.json, overwrite=args.overwrite)
    classes = None
    if args.classes is not None:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        if not classes:
            raise ValueError(f"--classes: expected a comma-separated list, got {args.classes!r}")
    if segment_reference(args.ref) is not None:
        results = _evaluate_segments(args, classes)
    else:
        if args.fps is not None:
            raise ValueError(f"--fps: {args.ref} is not an MS-TCN dataset (mapping.txt and "
                             "groundTruth/); --fps applies to segment evaluation only")
        results = evaluate_folders(
            args.ref, args.est, split_file=args.split_file, files=args.files,
            tolerance_s=0.05 if args.tolerance is None else args.tolerance,
            empty_policy=args.empty_policy, classes=classes,
        )
        print(format_table(results))
    say(args, coverage_report(results))
    if args.json:
        atomic_write_text(args.json, results_to_json(results) + "\n", overwrite=args.overwrite)
    return 0


# --------------------------------------------------------------------------- plot


def add_plot(p: argparse.ArgumentParser) -> None:
    p.description = (
        "LoCo Fig. 1 for one excerpt: log-mel spectrogram (Hz axis), p(t) per class with its "
        "threshold, detections and reference events, and the count distribution Y(k, t) per "
        "class with the reference running count."
    )
    p.add_argument("audio", type=Path,
                   help="audio file (an image file for an image model, e.g. a digits run)")
    p.add_argument("--model", type=Path, help="run folder (default: the shipped drum model)")
    p.add_argument("--annotations", type=Path,
                   help="reference annotation file (any format evaluate reads)")
    p.add_argument("--start", type=float, default=0.0, help="excerpt start in seconds")
    p.add_argument("--duration", type=float, help="excerpt length in seconds (default 4)")
    p.add_argument("--title", help="figure title (default: file and model names)")
    p.add_argument("--out", required=True, type=Path, help="figure file (.png, .pdf, .svg)")
    add_overwrite(p, "the figure file")
    add_threads(p)
    add_device(p)
    p.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from softloc._deps import require

    require("matplotlib", extra="plot", purpose="softloc plot")
    from softloc.inference import Detector
    from softloc.plots import plot_detection

    check_output_file(args.out, overwrite=args.overwrite)
    detector = Detector.load(args.model, threads=args.threads, device=args.device)
    model_name = "shipped drum model" if args.model is None else args.model.name
    plot_detection(
        detector, args.audio, args.out, annotations=args.annotations,
        start_s=args.start, duration_s=args.duration, model_name=model_name, title=args.title,
        overwrite=args.overwrite,
    )
    say(args, f"wrote {args.out}")
    return 0
