"""SoftLoc's robustness study as commands: noisy timestamps × losses × seeds; softness sweep.

``softloc experiment robustness`` (SoftLoc §5.1.1, Fig. 5, Table 1) trains one model per cell
(loss, noise level σ, seed) on timestamps misaligned by a ``softloc.noise`` model, evaluates it on
the clean test split and writes::

    OUT/results.csv     one row per finished cell: loss, noise, sigma_ms, seed, P/R/F1 overall and
                        per class, f1_mass (F1 of the local-mass decoder, a diagnostic), ...
                        (rewritten atomically after every cell; reruns skip cells already in it,
                        so an interrupted grid resumes where it stopped)
    OUT/results.md      the markdown table of overall F1 (mean ± std over seeds) per loss and σ
    OUT/robustness.png  F1 vs σ per loss, band = min..max over seeds (like SoftLoc Fig. 5)
    OUT/experiment.json the settings; a rerun with other settings (preset, steps, ...) is refused
    OUT/labels/         the perturbed annotation folders, one per (noise, σ, seed), shared by losses
    OUT/runs/           one training run folder per cell (``softloc.train.train``; its Lightning
                        checkpoints are deleted after scoring, ``model.pt`` is kept)
    OUT/cache/          the feature cache shared by all runs

``softloc experiment softness-sweep`` (SoftLoc §5.1.2, Fig. 6) trains SoftLoc at random
(noise σ, softness) pairs and draws the F1 surface smoothed by a Gaussian Nadaraya–Watson
regression (:mod:`softloc.smoothing`) as a heat map: ``OUT/sweep.csv``, ``OUT/softness_sweep.png``.

Protocol (both commands):
    * Train and validation timestamps are perturbed, test labels stay clean (SoftLoc §5.1.2:
      "errors are introduced on all training and validation labels"). The noise is drawn once
      per file and kept for the whole run (piano original, facts §2.7), from a seed derived from
      (noise, σ, seed), so every loss sees the SAME noisy labels in a cell: paired comparisons.
    * Every run keeps its last checkpoint (validation runs once, at the end): the original code
      never selected checkpoints (facts §2.6), and selecting on noisy validation F1 with a decoder
      that does not fit the loss would favour some baselines arbitrarily.
    * The time offset of each decoder is calibrated on the NOISY validation labels (median signed
      error), so no clean label is seen before the test.
    * F1 at ±50 ms with mir_eval matching (``softloc.metrics.evaluate``), pooled over test files.
    * The dataset needs ``ROOT/splits/`` so every run has the same test files (without it,
      ``softloc.train`` would draw a split from each run's seed).

How each loss name maps onto the training configuration and the decoder is the table
:data:`LOSSES` below; the ablation of SoftLoc Table 1 is ``--losses sll,mc,softloc``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from softloc.config import RunConfig, apply_overrides, atomic_write_text, load_preset

__all__ = [
    "LossSpec",
    "LOSSES",
    "NOISE_KINDS",
    "RobustnessResult",
    "SweepResult",
    "noise_spec",
    "run_robustness",
    "run_softness_sweep",
    "plot_robustness",
    "plot_softness_surface",
    "robustness_table",
    "register_cli",
]


@dataclass(frozen=True)
class LossSpec:
    """How one name of ``--losses`` trains and decodes.

    Attributes:
        loss: ``loss.name`` of the run configuration (``softloc.config.LOSS_NAMES``).
        alpha: ``"schedule"`` (SoftLoc's α ramp, rescaled to the run length) or a constant α
            (``None`` when the loss has no α).
        decoder: ``"threshold"`` (one event per run of p > ``inference.threshold``, SoftLoc's own
            decoding), ``"peaks"`` (local maxima of p above 0.5, for peak-normalised heat maps),
            ``"peaks-normalized"`` (local maxima of p / max Φ_σ above 0.35: sum-normalised heat
            maps, facts §5.4) or ``"mass-peaks"`` (local maxima of the probability mass within
            ±50 ms above 0.5: the "simple threshold-based peak picking" of the SLL ablation).
        softness_ms: σ of the loss's Gaussian in ms (``None``: the preset's ``loss.softness_ms``).
        description: one line for the table.
    """

    loss: str
    alpha: str | float | None
    decoder: str
    softness_ms: float | None
    description: str


#: Loss names of ``--losses`` -> training configuration and decoder (SoftLoc §5.1, Table 1).
LOSSES: dict[str, LossSpec] = {
    "softloc": LossSpec("softloc", "schedule", "threshold", None,
                        "SoftLoc (1-α)·L_SLL + α·L_MC, softness from the preset (eq. 4)"),
    "bce": LossSpec("bce", None, "threshold", None,
                    "frame-wise cross-entropy on the exact (noisy) frames (eq. 5)"),
    "smoothed-bce": LossSpec("smoothed_bce", None, "peaks", 25.0,
                             "cross-entropy on Gaussian-smeared targets (peak 1, σ 25 ms) + "
                             "peak picking (Hawthorne smoothed)"),
    "one-sided": LossSpec("one_sided", None, "peaks-normalized", None,
                          "squared error to Φ_σ∗y, labels smoothed only (classical heuristic)"),
    "bootstrap": LossSpec("bootstrap", None, "threshold", None,
                          "soft bootstrapping, β = 0.95 (Reed et al. 2014)"),
    "sll": LossSpec("softloc", 0.0, "mass-peaks", None,
                    "ablation: L_SLL only (α = 0) + threshold peak picking on the local mass"),
    "mc": LossSpec("softloc", 1.0, "threshold", None,
                   "ablation: L_MC only (α = 1, = LoCo on counts of the noisy labels)"),
    "loco": LossSpec("loco", None, "threshold", None,
                     "LoCo: counts of the (noisy) labels only"),
}

#: ``--noise`` kinds; the σ of the grid is the magnitude (σ, δ or the skew-normal scale).
NOISE_KINDS = ("normal", "rounded-normal", "binary", "shift", "skew-normal")

_PEAK_THRESHOLD = 0.5
_NORMALIZED_PEAK_THRESHOLD = 0.35  # facts §5.4 (piano one-sided decoder)
_MASS_HALF_WINDOW_S = 0.05
_BASE_COLUMNS = ("loss", "noise", "sigma_ms", "seed", "steps", "precision", "recall", "f1",
                 "f1_class_mean", "f1_mass", "n_ref", "n_est", "time_offset_s", "train_s", "run")
_SWEEP_COLUMNS = ("run_id", "noise", "sigma_ms", "softness_ms", "seed", "steps", "precision",
                  "recall", "f1", "f1_class_mean", "f1_mass", "n_ref", "n_est", "time_offset_s",
                  "train_s", "run")


# --------------------------------------------------------------------------- small helpers


def _fmt_ms(value: float) -> str:
    return f"{value:g}"


def noise_spec(kind: str, magnitude_ms: float, *, skew_shape: float = -2.0) -> str:
    """The ``softloc.noise`` spec of a grid point, e.g. ``noise_spec("normal", 100)`` ->
    ``"normal:100ms"``; ``skew-normal`` takes ``skew_shape`` (default −2, the time-series one).

    Raises:
        ValueError: unknown ``kind`` or a negative magnitude.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise_spec: `kind` must be one of {NOISE_KINDS}, got {kind!r}")
    if not (isinstance(magnitude_ms, int | float) and magnitude_ms >= 0):
        raise ValueError(f"noise_spec: `magnitude_ms` must be a number >= 0, got {magnitude_ms!r}")
    if kind == "skew-normal":
        return f"skew-normal:{skew_shape:g}:{_fmt_ms(magnitude_ms)}ms"
    return f"{kind}:{_fmt_ms(magnitude_ms)}ms"


def _parse_list(option: str, text: str, cast: type) -> list:
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


def _parse_loss_overrides(fn: str, items: Sequence[str]) -> dict[str, list[str]]:
    """``["bce:train.learning_rate=2e-3", ...]`` -> ``{"bce": ["train.learning_rate=2e-3"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        loss, sep, override = str(item).partition(":")
        if not sep or loss.strip() not in LOSSES or "=" not in override:
            raise ValueError(
                f"{fn}: per-loss override {item!r}: expected 'LOSS:dotted.key=value' with LOSS "
                f"one of {', '.join(LOSSES)}"
            )
        out.setdefault(loss.strip(), []).append(override.strip())
    return out


def _check_losses(fn: str, losses: Sequence[str]) -> list[str]:
    losses = list(losses)
    unknown = [name for name in losses if name not in LOSSES]
    if unknown or not losses:
        raise ValueError(
            f"{fn}: unknown loss {unknown[0] if unknown else '(none)'}; expected names from "
            f"{', '.join(LOSSES)}"
        )
    if len(set(losses)) != len(losses):
        raise ValueError(f"{fn}: a loss is listed twice in {losses}")
    return losses


def _alpha_overrides(spec: LossSpec, max_steps: int) -> list[str]:
    if spec.alpha is None:
        return []
    if spec.alpha == "schedule":
        # The drum schedule (facts §4.2: α 0.2 until 1/3 of the run, 0.9 from 4/5 on, start
        # 30k and ramp 100k of 150k steps) rescaled to this run's length.
        return ["loss.alpha_min=0.2", "loss.alpha_max=0.9",
                f"loss.alpha_start_step={round(0.2 * max_steps)}",
                f"loss.alpha_ramp_steps={max(1, round(2 * max_steps / 3))}"]
    a = float(spec.alpha)
    return [f"loss.alpha_min={a}", f"loss.alpha_max={a}"]


def _cell_config(base: RunConfig, spec: LossSpec, *, seed: int, softness_ms: float | None,
                 threads: int | None, loss_overrides: Sequence[str] = ()) -> RunConfig:
    steps = base.train.max_steps
    extra = [f"loss.name={spec.loss}", f"train.seed={seed}",
             # validate once, at the end: the last checkpoint is kept (see module docstring)
             f"train.val_every_n_steps={steps}",
             "inference.calibrate_offset=false"]
    extra += _alpha_overrides(spec, steps)
    soft = softness_ms if softness_ms is not None else spec.softness_ms
    if soft is not None:
        extra.append(f"loss.softness_ms={soft}")
    if threads is not None:
        extra.append(f"train.num_threads={threads}")
    return apply_overrides(base, extra + list(loss_overrides))


def _noise_seed(kind: str, sigma_ms: float, seed: int) -> np.random.Generator:
    # Stable across runs and Python versions (no hash()): the bytes of the spec.
    key = [seed, int(round(sigma_ms * 1000))] + list(kind.encode())
    return np.random.default_rng(key)


def _write_noisy_labels(index: Any, stems: Sequence[str], folder: Path, *, spec: str,
                        rng: np.random.Generator, frame_rate: float) -> None:
    """Perturbed annotation files for ``stems`` in ``folder`` (all or none: temp + rename)."""
    from softloc.data.layout import write_annotation_file
    from softloc.noise import parse_noise, perturb_events

    if (folder / ".complete").is_file():
        return
    model = parse_noise(spec, frame_rate=frame_rate)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for stem in stems:
        events = index.events[stem]
        labels = [lab for _, lab in events]
        duration = float(index.durations_s[stem])
        times = np.clip(np.array([t for t, _ in events], dtype=np.float64), 0.0, duration)
        moved, moved_labels = perturb_events(times, labels, model=model, duration_s=duration,
                                             seed=rng)
        write_annotation_file(tmp / f"{stem}.txt", list(zip(moved.tolist(), moved_labels or [],
                                                            strict=True)))
    (tmp / ".complete").write_text(spec + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


# --------------------------------------------------------------------------- decoding + scoring


def _decode(probs: np.ndarray, spec: LossSpec, config: RunConfig, offset_s: float):
    from softloc.decode import pick_peaks, threshold_events
    from softloc.timebase import ms_to_frames
    from softloc.losses import gaussian_kernel

    fr = config.features.frame_rate
    min_dist = max(1, round(config.inference.min_distance_s * fr))
    if spec.decoder == "threshold":
        return threshold_events(probs, threshold=config.inference.threshold, frame_rate=fr,
                                time_offset_s=offset_s, min_distance_frames=min_dist)
    if spec.decoder == "peaks":
        return pick_peaks(probs, threshold=_PEAK_THRESHOLD, frame_rate=fr,
                          time_offset_s=offset_s, min_distance_frames=min_dist)
    if spec.decoder == "peaks-normalized":
        sigma = ms_to_frames(config.loss.softness_ms, fr)
        peak = float(gaussian_kernel(sigma).max()) if sigma > 0 else 1.0
        return pick_peaks(probs / peak, threshold=_NORMALIZED_PEAK_THRESHOLD, frame_rate=fr,
                          time_offset_s=offset_s, min_distance_frames=min_dist)
    if spec.decoder == "mass-peaks":
        from scipy.ndimage import uniform_filter1d

        half = max(1, round(ms_to_frames(1000 * _MASS_HALF_WINDOW_S, fr)))
        mass = uniform_filter1d(probs, size=2 * half + 1, axis=1, mode="constant") * (2 * half + 1)
        return pick_peaks(mass, threshold=_PEAK_THRESHOLD, frame_rate=fr,
                          time_offset_s=offset_s, min_distance_frames=min_dist)
    raise ValueError(f"unknown decoder {spec.decoder!r}")


def _score_run(run_dir: Path, spec: LossSpec, *, store: Any, valid_events: dict, test_events: dict,
               classes: Sequence[str]) -> dict:
    """Calibrate the decoder's offset on the noisy validation labels, score the clean test set.

    Also scores the local-mass decoder (``"mass-peaks"``) as ``result["mass"]``: whether the
    probability mass sits at the events, whatever the shape of the peaks (a diagnostic for
    models whose outputs are not yet sharp, e.g. short SoftLoc runs).
    """
    import torch

    from softloc.inference import Detector, calibrate_time_offset
    from softloc.metrics import evaluate

    detector = Detector.load(run_dir)
    config = detector.config
    probs = {stem: np.clip(detector.probabilities_from_mel(torch.as_tensor(store.get(stem, 1.0))),
                           0.0, 1.0) for stem in list(valid_events) + list(test_events)}

    def score(decoder_spec: LossSpec) -> dict:
        offset = 0.0
        if valid_events:
            est, ref = [], []
            for stem, events in valid_events.items():
                per_class = _decode(probs[stem], decoder_spec, config, 0.0).per_class()
                for c, label in enumerate(classes):
                    est.append(np.clip(per_class[c], 0.0, None))
                    ref.append(np.array([t for t, lab in events if lab == label]))
            offset = calibrate_time_offset(est, ref)
        estimate = {}
        for stem in test_events:
            events = _decode(probs[stem], decoder_spec, config, offset).labelled(classes)
            estimate[stem] = [(max(0.0, t), lab) for t, lab in events]
        result = evaluate(test_events, estimate, classes=list(classes))
        result["time_offset_s"] = offset
        return result

    result = score(spec)
    mass_spec = LossSpec(spec.loss, spec.alpha, "mass-peaks", spec.softness_ms, "")
    result["mass"] = result if spec.decoder == "mass-peaks" else score(mass_spec)
    return result


def _row_from_result(result: dict, classes: Sequence[str]) -> dict:
    o = result["overall"]
    row: dict[str, Any] = {
        "precision": o["precision"], "recall": o["recall"], "f1": o["f1"],
        "f1_class_mean": o["f1_class_mean"], "n_ref": o["n_ref"], "n_est": o["n_est"],
        "time_offset_s": round(float(result["time_offset_s"]), 4),
        "f1_mass": result["mass"]["overall"]["f1"],
    }
    for c in classes:
        g = result["per_class"][c]
        row[f"precision_{c}"] = g["precision"]
        row[f"recall_{c}"] = g["recall"]
        row[f"f1_{c}"] = g["f1"]
    return row


def _columns(base: Sequence[str], classes: Sequence[str]) -> list[str]:
    per_class = [f"{k}_{c}" for c in classes for k in ("precision", "recall", "f1")]
    return list(base) + per_class


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_fmt_value(row.get(c, "")) for c in columns])
    atomic_write_text(path, buf.getvalue())


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != list(columns):
            raise ValueError(
                f"{path}:1: columns {header} do not match this experiment's {list(columns)}; "
                "use a new --out"
            )
        rows = []
        for lineno, values in enumerate(reader, start=2):
            if len(values) != len(columns):
                raise ValueError(f"{path}:{lineno}: expected {len(columns)} fields, got "
                                 f"{len(values)}")
            rows.append(dict(zip(columns, values, strict=True)))
    return rows


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


# --------------------------------------------------------------------------- shared set-up


@dataclass
class _Setup:
    out: Path
    data_root: Path
    base: RunConfig
    index: Any
    store: Any
    classes: tuple[str, ...]
    train_stems: list[str]
    valid_stems: list[str]
    test_events: dict


def _setup(fn: str, data_root: str | Path, out_dir: str | Path, *, preset: str,
           max_steps: int | None, overrides: Sequence[str], settings: dict) -> _Setup:
    from softloc.data import load_dataset, prepare_features

    data_root = Path(data_root).resolve()
    out = Path(out_dir).resolve()
    base = load_preset(preset)
    extra = list(overrides)
    if max_steps is not None:
        extra.append(f"train.max_steps={max_steps}")
    base = apply_overrides(base, extra)
    if not (data_root / "splits").is_dir():
        raise ValueError(
            f"{fn}: {data_root}/splits/ not found; the study needs fixed train/valid/test splits "
            "(splits/train.txt, valid.txt, test.txt) so every run is scored on the same files"
        )
    index = load_dataset(data_root, labels=base.classes or None)
    classes = tuple(index.classes)
    train_stems, valid_stems = list(index.splits["train"]), list(index.splits["valid"])
    test_stems = list(index.splits["test"])
    for split, stems in (("train", train_stems), ("test", test_stems)):
        if not stems:
            raise ValueError(f"{fn}: {data_root}: the {split} split is empty")
    missing = [s for s in train_stems + valid_stems + test_stems if not index.has_events(s)]
    if missing:
        raise ValueError(
            f"{fn}: {data_root}/annotations/ has no file for {missing[:5]}; the study perturbs "
            "and scores timestamps, so every train/valid/test stem needs one"
        )

    out.mkdir(parents=True, exist_ok=True)
    settings = dict(settings, data=str(data_root), preset=preset,
                    max_steps=base.train.max_steps, overrides=list(overrides))
    marker = out / "experiment.json"
    if marker.is_file():
        old = json.loads(marker.read_text())
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            k = diff[0]
            raise ValueError(
                f"{fn}: {out} holds an experiment with other settings ({k}: "
                f"{old.get(k)!r} there, {settings.get(k)!r} now); use a new --out, or the same "
                "settings to resume"
            )
    else:
        atomic_write_text(marker, json.dumps(settings, indent=2) + "\n")

    store = prepare_features(index, base.features, cache_dir=out / "cache",
                             stems=valid_stems + test_stems, rate_factors=(1.0,))
    test_events = {s: list(index.events[s] or []) for s in test_stems}
    return _Setup(out, data_root, base, index, store, classes, train_stems, valid_stems,
                  test_events)


def _train_and_score(setup: _Setup, config: RunConfig, spec: LossSpec, *, labels_dir: Path,
                     run_dir: Path, progress: bool) -> tuple[dict, dict]:
    from softloc.data.layout import read_annotation_file
    from softloc.train import train

    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished cell of an interrupted run (not in the csv)
    t0 = time.perf_counter()
    result = train(config, data_root=setup.data_root, out_dir=run_dir, labels="onsets",
                   annotations=labels_dir, progress=progress, cache_dir=setup.out / "cache")
    train_s = time.perf_counter() - t0
    valid_events = {s: read_annotation_file(labels_dir / f"{s}.txt") for s in setup.valid_stems}
    scored = _score_run(run_dir, spec, store=setup.store, valid_events=valid_events,
                        test_events=setup.test_events, classes=setup.classes)
    # model.pt holds the final weights; the Lightning checkpoints are ~10x larger per run
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    info = {"steps": result.metrics.get("steps", ""), "train_s": round(train_s, 1)}
    return scored, info


def _labels_for(setup: _Setup, kind: str, sigma_ms: float, seed: int, skew_shape: float) -> Path:
    spec = noise_spec(kind, sigma_ms, skew_shape=skew_shape)
    folder = setup.out / "labels" / f"{kind}{_fmt_ms(sigma_ms)}ms_seed{seed}"
    _write_noisy_labels(setup.index, setup.train_stems + setup.valid_stems, folder, spec=spec,
                        rng=_noise_seed(kind, sigma_ms, seed),
                        frame_rate=setup.base.features.frame_rate)
    return folder


# --------------------------------------------------------------------------- robustness grid


@dataclass(frozen=True)
class RobustnessResult:
    """What :func:`run_robustness` returns.

    Attributes:
        rows: every row of ``results.csv`` (strings as read back, numbers as written).
        trained: cells trained by this call.
        skipped: cells found finished in ``results.csv`` and skipped.
        csv_path, table_path, plot_path: the written files (``plot_path`` None without
            matplotlib).
    """

    rows: list[dict]
    trained: int
    skipped: int
    csv_path: Path
    table_path: Path
    plot_path: Path | None


def run_robustness(
    data_root: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "drums",
    noise: str = "normal",
    sigmas_ms: Sequence[float] = (0, 25, 50, 100, 150, 200),
    losses: Sequence[str] = ("softloc", "bce", "smoothed-bce", "bootstrap", "sll", "loco"),
    seeds: int = 3,
    max_steps: int | None = None,
    overrides: Sequence[str] = (),
    loss_overrides: Sequence[str] = (),
    skew_shape: float = -2.0,
    threads: int | None = None,
    progress: bool = False,
    verbose: bool = True,
) -> RobustnessResult:
    """Train and score every (loss, σ, seed) cell not yet in ``OUT/results.csv`` (SoftLoc Fig. 5).

    Args:
        data_root: dataset in the generic layout with ``splits/`` and annotations for every stem.
        out_dir: experiment folder (see the module docstring); reruns resume it.
        preset: configuration preset (``drums``, ``demo``, ...).
        noise: one of :data:`NOISE_KINDS`; ``sigmas_ms`` are its magnitudes.
        sigmas_ms: noise levels in milliseconds (>= 0).
        losses: names of :data:`LOSSES`.
        seeds: seeds 0 .. ``seeds`` − 1 per (loss, σ): training seed and noise draw.
        max_steps: training steps per run (default: the preset's).
        overrides: extra ``dotted.key=value`` config overrides for every run.
        loss_overrides: overrides for the runs of one loss, ``"LOSS:dotted.key=value"`` (e.g.
            ``"bce:train.learning_rate=2e-3"``), applied after ``overrides`` and the table's.
        skew_shape: shape parameter of ``skew-normal`` noise.
        threads: torch CPU threads per run (default: the preset's).
        progress: show Lightning's progress bars.
        verbose: print one line per cell.

    Returns:
        a :class:`RobustnessResult`.

    Raises:
        ValueError: unknown loss or noise kind, negative σ, ``seeds`` < 1, a dataset without
            splits or annotations, an ``out_dir`` holding an experiment with other settings.
    """
    fn = "run_robustness"
    losses = _check_losses(fn, losses)
    if noise not in NOISE_KINDS:
        raise ValueError(f"{fn}: `noise` must be one of {NOISE_KINDS}, got {noise!r}")
    sigmas = [float(s) for s in sigmas_ms]
    if not sigmas or any(not (s >= 0 and math.isfinite(s)) for s in sigmas):
        raise ValueError(f"{fn}: `sigmas_ms` must be finite numbers >= 0, got {list(sigmas_ms)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"{fn}: `seeds` must be an int >= 1, got {seeds!r}")
    per_loss = _parse_loss_overrides(fn, loss_overrides)
    say = print if verbose else (lambda *a, **k: None)
    settings = {"experiment": "robustness", "noise": noise, "skew_shape": skew_shape,
                "loss_overrides": {k: per_loss[k] for k in sorted(per_loss)}}
    setup = _setup(fn, data_root, out_dir, preset=preset, max_steps=max_steps,
                   overrides=overrides, settings=settings)
    out = setup.out
    columns = _columns(_BASE_COLUMNS, setup.classes)
    csv_path = out / "results.csv"
    rows = _read_csv(csv_path, columns)
    done = {(r["loss"], r["noise"], _as_float(r["sigma_ms"]), int(r["seed"])) for r in rows}

    cells = [(loss, s, seed) for s in sigmas for seed in range(seeds) for loss in losses]
    trained = skipped = 0
    for i, (loss, sigma, seed) in enumerate(cells, start=1):
        key = (loss, noise, sigma, seed)
        name = f"{loss}_{noise}{_fmt_ms(sigma)}ms_seed{seed}"
        if key in done:
            skipped += 1
            continue
        spec = LOSSES[loss]
        config = _cell_config(setup.base, spec, seed=seed, softness_ms=None, threads=threads,
                              loss_overrides=per_loss.get(loss, ()))
        labels_dir = _labels_for(setup, noise, sigma, seed, skew_shape)
        say(f"[{i}/{len(cells)}] {name}: training {config.train.max_steps} steps ...", flush=True)
        scored, info = _train_and_score(setup, config, spec, labels_dir=labels_dir,
                                        run_dir=out / "runs" / name, progress=progress)
        row = {"loss": loss, "noise": noise, "sigma_ms": sigma, "seed": seed,
               "run": f"runs/{name}", **info, **_row_from_result(scored, setup.classes)}
        rows.append(row)
        _write_csv(csv_path, columns, rows)  # atomically, after every finished cell
        trained += 1
        say(f"[{i}/{len(cells)}] {name}: F1 {row['f1']:.3f} (P {row['precision']:.3f}, "
            f"R {row['recall']:.3f}) in {info['train_s']:.0f} s", flush=True)

    table = robustness_table(rows)
    header = (f"Overall F1 (%) at ±50 ms on the clean test split; noise `{noise}` on train and "
              f"valid labels; mean ± std over seeds (n = runs).\n\n")
    mass = ("\n\nDiagnostic: the same runs decoded by local-mass peak picking (`f1_mass`: "
            "events where the probability mass within ±50 ms exceeds 0.5).\n\n"
            + robustness_table(rows, metric="f1_mass"))
    table_path = out / "results.md"
    atomic_write_text(table_path, header + table + mass + "\n")
    plot_path: Path | None = out / "robustness.png"
    try:
        plot_robustness(rows, out / "robustness.png", title=f"F1 vs label noise ({noise})")
    except ImportError:
        plot_path = None
    if verbose:
        say(table)
        say(f"{trained} cells trained, {skipped} skipped (already in {csv_path})")
    return RobustnessResult(rows, trained, skipped, csv_path, table_path, plot_path)


def _grouped(rows: Sequence[dict], metric: str = "f1") -> dict[str, dict[float, list[float]]]:
    out: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        out.setdefault(str(r["loss"]), {}).setdefault(_as_float(r["sigma_ms"]), []).append(
            _as_float(r.get(metric)))
    return out


def robustness_table(rows: Sequence[dict], *, metric: str = "f1") -> str:
    """Markdown table: one row per loss, one column per σ, cells ``mean ± std (n)`` of
    ``metric`` (a results.csv column, default the overall F1) in %, and the change from the
    smallest to the largest σ."""
    groups = _grouped(rows, metric)
    sigmas = sorted({s for g in groups.values() for s in g})
    head = "| loss | " + " | ".join(f"σ = {_fmt_ms(s)} ms" for s in sigmas) + " | Δ |"
    lines = [head, "|" + "---|" * (len(sigmas) + 2)]
    order = [name for name in LOSSES if name in groups] + sorted(set(groups) - set(LOSSES))
    for loss in order:
        cells, means = [], {}
        for s in sigmas:
            vals = [v for v in groups[loss].get(s, []) if not math.isnan(v)]
            if not vals:
                cells.append("–")
                continue
            m = 100 * float(np.mean(vals))
            means[s] = m
            cells.append(f"{m:.1f}" if len(vals) == 1 else
                         f"{m:.1f} ± {100 * float(np.std(vals)):.1f} ({len(vals)})")
        delta = (f"{means[sigmas[-1]] - means[sigmas[0]]:+.1f}"
                 if sigmas[0] in means and sigmas[-1] in means and len(sigmas) > 1 else "–")
        lines.append(f"| {loss} | " + " | ".join(cells) + f" | {delta} |")
    return "\n".join(lines)


def plot_robustness(rows: Sequence[dict], path: str | Path, *, title: str = "") -> None:
    """F1 vs σ per loss: mean over seeds as a line, min..max over seeds as a band (Fig. 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _grouped(rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    order = [name for name in LOSSES if name in groups] + sorted(set(groups) - set(LOSSES))
    for loss in order:
        sig = sorted(groups[loss])
        vals = [np.array([v for v in groups[loss][s] if not math.isnan(v)]) for s in sig]
        keep = [i for i, v in enumerate(vals) if v.size]
        x = np.array([sig[i] for i in keep])
        mean = np.array([100 * vals[i].mean() for i in keep])
        lo = np.array([100 * vals[i].min() for i in keep])
        hi = np.array([100 * vals[i].max() for i in keep])
        (line,) = ax.plot(x, mean, marker="o", label=loss, lw=2 if loss == "softloc" else 1.3)
        if any(vals[i].size > 1 for i in keep):
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.18, lw=0)
    ax.set_xlabel("label noise σ [ms]")
    ax.set_ylabel("F1 [%] (±50 ms, clean test labels)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


# --------------------------------------------------------------------------- softness sweep


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_softness_sweep` returns.

    Attributes:
        rows: every row of ``sweep.csv``.
        trained, skipped: runs trained by this call / already finished.
        csv_path, plot_path: the written files (``plot_path`` None without matplotlib).
    """

    rows: list[dict]
    trained: int
    skipped: int
    csv_path: Path
    plot_path: Path | None


def _sweep_pair(seed: int, run_id: int, sigma_range_ms: tuple[float, float],
                softness_range_ms: tuple[float, float]) -> tuple[float, float]:
    rng = np.random.default_rng([seed, run_id, 5])
    sigma = float(rng.uniform(*sigma_range_ms))
    softness = float(rng.uniform(*softness_range_ms))
    return round(sigma, 1), round(softness, 1)


def _check_range(fn: str, name: str, value: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (0 <= lo <= hi and math.isfinite(hi)):
        raise ValueError(f"{fn}: `{name}` must be (low, high) with 0 <= low <= high, got {value}")
    return lo, hi


def run_softness_sweep(
    data_root: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "drums",
    noise: str = "normal",
    n_runs: int = 20,
    sigma_range_ms: tuple[float, float] = (0.0, 100.0),
    softness_range_ms: tuple[float, float] = (0.0, 150.0),
    seed: int = 0,
    max_steps: int | None = None,
    overrides: Sequence[str] = (),
    bandwidth_ms: float = 15.0,
    skew_shape: float = -2.0,
    threads: int | None = None,
    progress: bool = False,
    verbose: bool = True,
) -> SweepResult:
    """SoftLoc at ``n_runs`` random (noise σ, softness) pairs; F1 surface as a heat map (Fig. 6).

    Run ``i`` draws σ ~ U(``sigma_range_ms``) and softness ~ U(``softness_range_ms``) from
    ``(seed, i)``, so a rerun with a larger ``n_runs`` adds runs and keeps the finished ones
    (SoftLoc §5.1.2: 210 runs, σ in [0, 100] ms, softness in [0, 150] ms).

    Args:
        data_root, preset, noise, max_steps, overrides, skew_shape, threads, progress, verbose:
            as :func:`run_robustness`.
        out_dir: folder for ``sweep.csv``, ``softness_sweep.png``, ``labels/``, ``runs/``.
        n_runs: number of random pairs (>= 1).
        sigma_range_ms: range of the label noise σ.
        softness_range_ms: range of the SoftLoc softness.
        seed: seed of the pairs (each run's training seed is ``seed``; its noise seed is derived
            from σ and ``seed + run id``).
        bandwidth_ms: Gaussian Nadaraya–Watson bandwidth of the surface, in ms on both axes
            (the authors used 10 ms with 210 runs; sparser sweeps need more).

    Returns:
        a :class:`SweepResult`.

    Raises:
        ValueError: as :func:`run_robustness`; bad ranges, ``n_runs`` < 1, ``bandwidth_ms`` <= 0.
    """
    fn = "run_softness_sweep"
    if noise not in NOISE_KINDS:
        raise ValueError(f"{fn}: `noise` must be one of {NOISE_KINDS}, got {noise!r}")
    if isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1:
        raise ValueError(f"{fn}: `n_runs` must be an int >= 1, got {n_runs!r}")
    sigma_range = _check_range(fn, "sigma_range_ms", sigma_range_ms)
    soft_range = _check_range(fn, "softness_range_ms", softness_range_ms)
    if not bandwidth_ms > 0:
        raise ValueError(f"{fn}: `bandwidth_ms` must be > 0, got {bandwidth_ms}")
    say = print if verbose else (lambda *a, **k: None)
    settings = {"experiment": "softness-sweep", "noise": noise, "skew_shape": skew_shape,
                "seed": seed, "sigma_range_ms": list(sigma_range),
                "softness_range_ms": list(soft_range)}
    setup = _setup(fn, data_root, out_dir, preset=preset, max_steps=max_steps,
                   overrides=overrides, settings=settings)
    out = setup.out
    columns = _columns(_SWEEP_COLUMNS, setup.classes)
    csv_path = out / "sweep.csv"
    rows = _read_csv(csv_path, columns)
    done = {int(r["run_id"]) for r in rows}
    spec = LOSSES["softloc"]
    trained = skipped = 0
    for run_id in range(n_runs):
        if run_id in done:
            skipped += 1
            continue
        sigma, softness = _sweep_pair(seed, run_id, sigma_range, soft_range)
        name = f"run{run_id:03d}_{noise}{_fmt_ms(sigma)}ms_soft{_fmt_ms(softness)}ms"
        config = _cell_config(setup.base, spec, seed=seed, softness_ms=softness, threads=threads)
        labels_dir = _labels_for(setup, noise, sigma, seed + run_id, skew_shape)
        say(f"[{run_id + 1}/{n_runs}] {name}: training ...", flush=True)
        scored, info = _train_and_score(setup, config, spec, labels_dir=labels_dir,
                                        run_dir=out / "runs" / name, progress=progress)
        row = {"run_id": run_id, "noise": noise, "sigma_ms": sigma, "softness_ms": softness,
               "seed": seed, "run": f"runs/{name}", **info,
               **_row_from_result(scored, setup.classes)}
        rows.append(row)
        _write_csv(csv_path, columns, rows)
        trained += 1
        say(f"[{run_id + 1}/{n_runs}] {name}: F1 {row['f1']:.3f}", flush=True)
    plot_path: Path | None = out / "softness_sweep.png"
    try:
        plot_softness_surface(rows, out / "softness_sweep.png", bandwidth_ms=bandwidth_ms,
                              sigma_range_ms=sigma_range, softness_range_ms=soft_range,
                              title=f"SoftLoc F1 vs label noise ({noise}) and softness")
    except ImportError:
        plot_path = None
    say(f"{trained} runs trained, {skipped} skipped; wrote {csv_path}"
        + (f" and {plot_path}" if plot_path else ""))
    return SweepResult(rows, trained, skipped, csv_path, plot_path)


def plot_softness_surface(
    rows: Sequence[dict],
    path: str | Path,
    *,
    bandwidth_ms: float,
    sigma_range_ms: tuple[float, float],
    softness_range_ms: tuple[float, float],
    title: str = "",
    n_grid: int = 101,
) -> np.ndarray:
    """Heat map of the Nadaraya–Watson F1 surface over (noise σ, softness), runs as white dots.

    Returns:
        the surface (%), ``(n_grid, n_grid)``: rows = softness, columns = noise σ.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softloc.smoothing import nadaraya_watson_grid

    pts = np.array([[_as_float(r["sigma_ms"]), _as_float(r["softness_ms"])] for r in rows])
    f1 = np.array([100 * _as_float(r["f1"]) for r in rows])
    gx = np.linspace(*sigma_range_ms, n_grid)
    gy = np.linspace(*softness_range_ms, n_grid)
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    surface = np.full((n_grid, n_grid), np.nan)
    if len(rows) and not np.all(np.isnan(f1)):
        surface = nadaraya_watson_grid(pts, f1, gx, gy, bandwidth=bandwidth_ms)
        mesh = ax.pcolormesh(gx, gy, surface, shading="auto", cmap="viridis")
        fig.colorbar(mesh, ax=ax, label="F1 [%] (Nadaraya–Watson)")
        ax.scatter(pts[:, 0], pts[:, 1], s=12, c="white", edgecolors="black", linewidths=0.4)
    top = min(sigma_range_ms[1], softness_range_ms[1])
    ax.plot([0, top], [0, top], color="white", ls="--", lw=0.8, label="softness = σ")
    ax.set_xlabel("label noise σ [ms]")
    ax.set_ylabel("softness [ms]")
    ax.set_xlim(*sigma_range_ms)
    ax.set_ylim(*softness_range_ms)
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return surface


# --------------------------------------------------------------------------- command line


def _add_common(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run, e.g. train.learning_rate=1e-3")
    p.add_argument("--progress", action="store_true", help="show training progress bars")


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``softloc experiment robustness`` and ``softloc experiment softness-sweep``."""
    p = subparsers.add_parser(
        "robustness",
        help="SoftLoc Fig. 5 / Table 1: F1 vs label noise for several losses",
        description="Train one model per (loss, noise sigma, seed) on perturbed train/valid "
        "timestamps, score it on the clean test split; writes OUT/results.csv, results.md and "
        "robustness.png. Rerunning skips finished cells. Losses: "
        + "; ".join(f"{k}: {v.description}" for k, v in LOSSES.items()),
    )
    _add_common(p)
    p.add_argument("--sigmas", default="0,25,50,100,150,200",
                   help="noise magnitudes in ms, comma-separated (default 0,25,50,100,150,200)")
    p.add_argument("--losses", default="softloc,bce,smoothed-bce,bootstrap,sll,loco",
                   help=f"comma-separated, from: {','.join(LOSSES)}")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    p.add_argument("--loss-set", action="append", default=[], metavar="LOSS:KEY=VALUE",
                   help="config override for the runs of one loss only, e.g. "
                   "bce:train.learning_rate=2e-3 (repeatable)")
    p.set_defaults(func=_cmd_robustness)

    s = subparsers.add_parser(
        "softness-sweep",
        help="SoftLoc Fig. 6: F1 over random (noise sigma, softness) pairs, NW heat map",
        description="Train SoftLoc at random (label noise sigma, softness) pairs and draw the "
        "F1 surface smoothed by a Gaussian Nadaraya-Watson regression; writes OUT/sweep.csv and "
        "OUT/softness_sweep.png. Rerunning with more --runs adds runs.",
    )
    _add_common(s)
    s.add_argument("--runs", type=int, default=20, help="number of random pairs (default 20)")
    s.add_argument("--sigma-range", default="0,100", help="noise sigma range in ms (0,100)")
    s.add_argument("--softness-range", default="0,150", help="softness range in ms (0,150)")
    s.add_argument("--seed", type=int, default=0, help="seed of the pairs and of training")
    s.add_argument("--bandwidth", type=float, default=15.0,
                   help="Nadaraya-Watson bandwidth in ms (default 15)")
    s.set_defaults(func=_cmd_sweep)


def _cmd_robustness(args: argparse.Namespace) -> int:
    run_robustness(
        args.data, args.out, preset=args.preset, noise=args.noise,
        sigmas_ms=_parse_list("--sigmas", args.sigmas, float),
        losses=_parse_list("--losses", args.losses, str), seeds=args.seeds,
        max_steps=args.max_steps, overrides=tuple(args.set),
        loss_overrides=tuple(args.loss_set), skew_shape=args.skew_shape,
        threads=args.threads, progress=args.progress,
    )
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    sig = _parse_list("--sigma-range", args.sigma_range, float)
    soft = _parse_list("--softness-range", args.softness_range, float)
    for option, value in (("--sigma-range", sig), ("--softness-range", soft)):
        if len(value) != 2:
            raise ValueError(f"{option}: expected LOW,HIGH in ms, got {value}")
    run_softness_sweep(
        args.data, args.out, preset=args.preset, noise=args.noise, n_runs=args.runs,
        sigma_range_ms=(sig[0], sig[1]), softness_range_ms=(soft[0], soft[1]), seed=args.seed,
        max_steps=args.max_steps, overrides=tuple(args.set), bandwidth_ms=args.bandwidth,
        skew_shape=args.skew_shape, threads=args.threads, progress=args.progress,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m softloc.experiments.robustness {robustness,softness-sweep} ...`` (the same
    commands as ``softloc experiment ...``)."""
    parser = argparse.ArgumentParser(prog="python -m softloc.experiments.robustness")
    register_cli(parser.add_subparsers(dest="experiment", metavar="NAME", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
