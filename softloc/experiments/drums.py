"""The drum experiment (LoCo §6, SoftLoc §5.1.2) on built-in synthetic data, and ``softloc demo``.

One pipeline, four stages, each a public function of its own module:

1. data: :func:`softloc.data.synthesize_drum_dataset` (test kits differ from train kits);
2. training: :func:`softloc.training.train` from counts (LoCo) or timestamps (SoftLoc / BCE);
3. detection on the test split: :class:`softloc.inference.Detector`,
   :func:`softloc.inference.detect_to_folder`;
4. evaluation: :func:`softloc.evaluation.evaluate_folders` (mir_eval matching, +-50 ms).

:func:`run_experiment` runs them and writes ``OUT/{data,run,detections}``, ``OUT/metrics.json``
and ``OUT/demo.png``; :func:`run_demo` is ``softloc demo`` (= ``make demo``): counts only, the
``demo`` preset, a data size that fits the 10-minute CPU budget.

The model shipped in ``softloc/pretrained/drums.pt`` is trained by::

    softloc experiment drums --out runs/pretrained --export softloc/pretrained/drums.pt
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from softloc._io import atomic_write_bytes, atomic_write_text
from softloc.config import apply_overrides, load_preset
from softloc.data import synthesize_drum_dataset
from softloc.evaluation import evaluate_folders
from softloc.inference import MODEL_FILE, Detector, collect_audio_inputs, detect_to_folder
from softloc.metrics import format_table, results_to_json
from softloc.training import train

__all__ = ["DemoSize", "DEMO_SIZE", "run_experiment", "run_demo"]


@dataclass(frozen=True)
class DemoSize:
    """Size of the generated data set (files x seconds per split)."""

    n_train_files: int = 40
    n_valid_files: int = 6
    n_test_files: int = 10
    file_duration_s: float = 30.0


#: The demo's data: 20 min of training audio on 10 kits, 10 x 30 s of test audio on 5 other kits.
DEMO_SIZE = DemoSize()


_MARKER = ".softloc-experiment"


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Create ``out``; replace the outputs of an earlier run in it (marked by a marker file), never
    a folder that softloc did not write."""
    if out.exists() and any(out.iterdir()):
        if not (out / _MARKER).is_file():
            if overwrite:
                raise FileExistsError(
                    f"{out}: --overwrite only replaces a folder written by softloc demo/experiment"
                )
            raise FileExistsError(
                f"{out}: folder exists and is not empty; choose another --out"
            )
        for name in ("data", "run", "detections", "metrics.json", "demo.png"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / _MARKER, "written by softloc demo / softloc experiment drums\n")


def run_experiment(
    out_dir: str | Path,
    *,
    preset: str = "drums",
    labels: str = "counts",
    loss: str | None = None,
    label_noise: str | None = None,
    data_root: str | Path | None = None,
    size: DemoSize = DEMO_SIZE,
    seed: int = 0,
    max_steps: int | None = None,
    overrides: tuple[str, ...] = (),
    overwrite: bool = False,
    export: str | Path | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> dict:
    """Synthesise (or use ``data_root``), train, detect on the test split, evaluate, plot.

    Args:
        out_dir: output folder (``data/``, ``run/``, ``detections/``, ``metrics.json``,
            ``demo.png``).
        preset: configuration preset (``drums``, ``demo``).
        labels: ``counts`` or ``onsets``.
        loss: loss name (default: the preset's).
        label_noise: perturb training timestamps (``softloc.noise`` spec, e.g. ``normal:50ms``).
        data_root: use this dataset instead of generating one.
        size: generated data size.
        seed: seed of the data and of training.
        max_steps: training steps (default: the preset's).
        overrides: extra ``dotted.key=value`` config overrides.
        overwrite: kept for compatibility: the outputs of an earlier demo/experiment in
            ``out_dir`` (a folder holding its marker file) are always replaced, anything else
            never.
        export: also copy the trained ``model.pt`` here (e.g. ``softloc/pretrained/drums.pt``).
        progress: show the training progress bar.
        verbose: print the stages and the result table.

    Returns:
        the content written to ``metrics.json``.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    _prepare_out(out, overwrite)
    say = print if verbose else (lambda *a, **k: None)

    config = load_preset(preset)
    extra = list(overrides) + [f"train.seed={seed}"]
    if loss is not None:
        extra.append(f"loss.name={loss}")
    if max_steps is not None:
        extra.append(f"train.max_steps={max_steps}")
    config = apply_overrides(config, extra)

    timings: dict[str, float] = {}
    if data_root is None:
        say(f"[1/4] synthesising drum data in {out / 'data'} ...", flush=True)
        # Written at the model's sample rate, so that no resampling is needed when loading.
        synthesize_drum_dataset(
            out / "data",
            seed=seed,
            n_train_files=size.n_train_files,
            n_valid_files=size.n_valid_files,
            n_test_files=size.n_test_files,
            file_duration_s=size.file_duration_s,
            sample_rate=config.features.sample_rate,
        )
        data_root = out / "data"
    data_root = Path(data_root)
    timings["data_s"] = time.perf_counter() - t0

    say(
        f"[2/4] training ({config.loss.name} from {labels}, preset {preset}, "
        f"{config.train.max_steps} steps) ...",
        flush=True,
    )
    t1 = time.perf_counter()
    result = train(
        config,
        data_root=data_root,
        out_dir=out / "run",
        labels=labels,
        label_noise=label_noise,
        progress=progress,
    )
    timings["train_s"] = time.perf_counter() - t1

    say("[3/4] detecting on the test split ...", flush=True)
    t2 = time.perf_counter()
    detector = Detector.load(out / "run")
    split_file = data_root / "splits" / "test.txt"
    paths = collect_audio_inputs([], data_root=data_root, split="test")
    detect_to_folder(detector, paths, out / "detections")
    timings["detect_s"] = time.perf_counter() - t2
    audio_s = sum(_duration(p) for p in paths)

    say("[4/4] evaluating (+-50 ms) ...", flush=True)
    results = evaluate_folders(
        data_root / "annotations", out / "detections", split_file=split_file, tolerance_s=0.05
    )
    try:
        from softloc.plots import plot_detection

        plot_detection(
            detector,
            paths[0],
            out / "demo.png",
            annotations=data_root / "annotations" / f"{paths[0].stem}.txt",
            start_s=2.0,
            duration_s=4.0,
        )
    except ImportError:  # plots are optional for the numbers
        pass
    timings["total_s"] = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "overall": {k: results["overall"][k] for k in ("f1", "precision", "recall")},
        "per_class": {c: {k: v[k] for k in ("f1", "precision", "recall")}
                      for c, v in results["per_class"].items()},
        "preset": preset,
        "labels": labels,
        "loss": config.loss.name,
        "label_noise": label_noise,
        "train_steps": result.metrics.get("steps"),
        "calibration": result.metrics.get("calibration"),
        "test_files": len(paths),
        "test_audio_s": round(audio_s, 1),
        "detect_x_real_time": round(audio_s / max(timings["detect_s"], 1e-9), 1),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "evaluation": results,
    }
    atomic_write_text(out / "metrics.json", results_to_json(summary) + "\n")
    if export is not None:
        atomic_write_bytes(export, (out / "run" / MODEL_FILE).read_bytes())
    if verbose:
        say(format_table(results))
        per_class = ", ".join(f"{c} {v['f1']:.3f}" for c, v in summary["per_class"].items())
        say(
            f"F1 at +-50 ms on {len(paths)} test files (unseen kits): overall "
            f"{summary['overall']['f1']:.3f} ({per_class}); trained from {labels} only"
            if labels == "counts"
            else f"F1 at +-50 ms: overall {summary['overall']['f1']:.3f} ({per_class})"
        )
        say(
            f"total {timings['total_s']:.0f} s (data {timings['data_s']:.0f} s, train "
            f"{timings['train_s']:.0f} s, detect {timings['detect_s']:.0f} s); wrote "
            f"{out / 'metrics.json'} and {out / 'demo.png'}"
        )
    return json.loads(results_to_json(summary))


def _duration(path: Path) -> float:
    return float(sf.info(str(path)).duration)


def run_demo(
    out_dir: str | Path = "demo_out",
    *,
    seed: int = 0,
    max_steps: int | None = None,
    overwrite: bool = False,
) -> dict:
    """``softloc demo``: built-in drums, LoCo from counts only, ``demo`` preset; see the module."""
    return run_experiment(
        out_dir,
        preset="demo",
        labels="counts",
        loss="loco",
        seed=seed,
        max_steps=max_steps,
        overwrite=overwrite,
    )
