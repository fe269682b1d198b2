"""The machinery shared by the label-noise studies (:mod:`.robustness`, :mod:`.softness_sweep`).

A study trains runs on timestamps misaligned by a ``softloc.noise`` model and scores each on the
clean test split. This module holds what every such study needs, in the order a study uses it:

1. :data:`LOSSES`: how each loss name trains (run configuration, α schedule) and decodes;
   :func:`cell_config` turns a base configuration into the configuration of one run.
2. :func:`prepare_study`: loads and checks the dataset (fixed splits, annotations for every
   stem), guards the experiment folder (``experiment.json``: a rerun with other settings is
   refused) and caches the features of the validation and test files (``OUT/cache/``).
3. :func:`noisy_labels`: the perturbed train/valid annotation folder of one (noise, σ, seed),
   written once (``OUT/labels/``) and shared by every loss.
4. :func:`train_and_score`: trains one run (``softloc.training.train``, which calibrates the
   per-class thresholds of the ``threshold`` decoder on what the run may see:
   ``softloc.inference.calibrate.calibration_source``, the validation COUNTS for SoftLoc/LoCo,
   the noisy validation timestamps for the frame-wise baselines); the study's other decoders
   (``peaks``, ``peaks-normalized``, ``mass-peaks``) get per-class thresholds from the
   validation COUNTS when scored (:func:`count_thresholds`: every loss is decoded with a
   threshold chosen on what it may see, none with a fixed one). It calibrates the time offset of
   its decoder (the registry's for its loss, :func:`decoder_of`) on the validation files: from
   their audio when the preset aligns to onsets (``inference.align_to_onsets`` not ``none``,
   the onset strength, which label noise does not move; ``onset_alignment_offsets``: one
   offset, or one per class for ``per-class`` as in the drum presets), else on the NOISY
   validation labels (whose median error the ±100 ms matching shrinks towards 0), and scores
   the clean test split (±50 ms, mir_eval matching); the Lightning checkpoints are deleted
   afterwards (``model.pt`` is kept: :func:`rescore_rows` scores a study again, no training).
5. The resumable results table (``softloc.experiments.results_table``; rewritten atomically
   after every run; a rerun skips the runs already in it).

Protocol (SoftLoc §5.1.2, facts §2.6-2.7): train and validation timestamps are perturbed, test
labels stay clean; the noise is drawn once per file from a seed derived from (noise, σ, seed), so
every loss sees the SAME noisy labels: paired comparisons. Every run keeps its last checkpoint
(validation runs once, at the end): the original code never selected checkpoints, and selecting on
noisy validation F1 with a decoder that does not fit the loss would favour some baselines
arbitrarily.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from softloc._io import atomic_write_text
from softloc.config import RunConfig, apply_overrides, load_preset
from softloc.data import load_dataset, prepare_features
from softloc.data.formats import read_annotation_file, write_annotation_file
from softloc.decode import DEFAULT_THRESHOLDS, Events, decode_events
from softloc.features import onset_strength
from softloc.inference import Detector, calibrate_time_offset
from softloc.inference.calibrate import THRESHOLD_GRID, onset_alignment_offsets
from softloc.losses.registry import build_loss
from softloc.metrics import evaluate
from softloc.noise import parse_noise, perturb_events
from softloc.timebase import ms_to_frames

__all__ = [
    "LossSpec",
    "LOSSES",
    "NOISE_KINDS",
    "SCORE_COLUMNS",
    "StudySetup",
    "fmt_ms",
    "noise_spec",
    "cell_config",
    "count_thresholds",
    "decode",
    "decoder_of",
    "prepare_study",
    "noisy_labels",
    "train_and_score",
    "rescore_rows",
    "result_columns",
    "guard_settings",
]


@dataclass(frozen=True)
class LossSpec:
    """How one loss name of a study trains; it decodes with the decoder that the loss registry
    names for ``loss`` (:func:`decoder_of`).

    Attributes:
        loss: ``loss.name`` of the run configuration (``softloc.losses.registry.LOSS_NAMES``).
        alpha: ``"schedule"`` (the preset's α ramp, relative to the run length) or a constant α
            (``None``: the loss's own).
        softness_ms: σ of the loss's Gaussian in ms (``None``: the preset's ``loss.softness_ms``).
        description: one line for the table.
    """

    loss: str
    alpha: str | float | None
    softness_ms: float | None
    description: str


#: Loss names of a study -> training configuration (SoftLoc §5.1, Table 1). The decoders
#: (``softloc.decode.DECODERS``) are the registry's: ``threshold`` (one event per run of
#: p above the run's calibrated per-class threshold, SoftLoc's own decoding) for most;
#: ``peaks`` (local maxima of p above a threshold, 0.5 by default) for peak-normalised heat
#: maps; ``peaks-normalized`` (p / max Φ_σ above 0.35 by default, facts §5.4) for
#: sum-normalised ones; ``mass-peaks`` (the probability mass within ±50 ms above 0.5 by
#: default: the "simple threshold-based peak picking" of the SLL ablation). A study scores the
#: last three with thresholds from the validation counts (:func:`count_thresholds`).
LOSSES: dict[str, LossSpec] = {
    "softloc": LossSpec("softloc", "schedule", None,
                        "SoftLoc (1-α)·L_SLL + α·L_MC, softness from the preset (eq. 4)"),
    "bce": LossSpec("bce", None, None,
                    "frame-wise cross-entropy on the exact (noisy) frames (eq. 5)"),
    "smoothed-bce": LossSpec("smoothed-bce", None, 25.0,
                             "cross-entropy on Gaussian-smeared targets (peak 1, σ 25 ms) + "
                             "peak picking (Hawthorne smoothed)"),
    "one-sided": LossSpec("one-sided", None, None,
                          "squared error to Φ_σ∗y, labels smoothed only (classical heuristic)"),
    "bootstrap": LossSpec("bootstrap", None, None,
                          "soft bootstrapping, β = 0.95 (Reed et al. 2014)"),
    "sll": LossSpec("sll", None, None,
                    "ablation: L_SLL only (α = 0) + threshold peak picking on the local mass"),
    # SoftLoc with α = 1, as the study always ran it (its count term is SoftLoc's, not LoCo's
    # batch x class mean of the registry's "mc")
    "mc": LossSpec("softloc", 1.0, None,
                   "ablation: L_MC only (α = 1, = LoCo on counts of the noisy labels)"),
    "loco": LossSpec("loco", None, None,
                     "LoCo: counts of the (noisy) labels only"),
}

#: Noise kinds; the σ of a study is the magnitude (σ, δ or the skew-normal scale).
NOISE_KINDS = ("normal", "rounded-normal", "binary", "shift", "skew-normal")

#: Score columns of every results row, after the study's own columns; per-class
#: precision/recall/F1 follow (:func:`result_columns`).
SCORE_COLUMNS = ("steps", "precision", "recall", "f1", "f1_class_mean", "f1_mass", "n_ref",
                 "n_est", "time_offset_s", "train_s", "run")

_MASS_HALF_WINDOW_MS = 50.0


def fmt_ms(value: float) -> str:
    """``100.0`` -> ``"100"``: a magnitude in ms as written in file and folder names."""
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
        return f"skew-normal:{skew_shape:g}:{fmt_ms(magnitude_ms)}ms"
    return f"{kind}:{fmt_ms(magnitude_ms)}ms"


def _alpha_overrides(spec: LossSpec) -> list[str]:
    if spec.alpha is None or spec.alpha == "schedule":
        # "schedule": the preset's α ramp, which is relative to the run (loss.alpha_*_fraction;
        # drums: the paper's 30k/100k of 150k steps at any run length)
        return []
    a = float(spec.alpha)
    return [f"loss.alpha_min={a}", f"loss.alpha_max={a}"]


def cell_config(base: RunConfig, loss: str, *, seed: int, softness_ms: float | None = None,
                threads: int | None = None, loss_overrides: Sequence[str] = ()) -> RunConfig:
    """The run configuration of one study run: ``base`` with the loss of :data:`LOSSES`.

    Args:
        base: the study's base configuration (preset + overrides; its ``train.max_steps`` sets
            the α schedule's length).
        loss: a name of :data:`LOSSES`.
        seed: training seed.
        softness_ms: SoftLoc softness (default: the loss's, else the preset's).
        threads: torch CPU threads (default: the preset's).
        loss_overrides: ``dotted.key=value`` overrides applied last.

    Returns:
        the configuration; validation runs once, at the end, and the time offset is calibrated
        by the study (on noisy labels), not by training.

    Raises:
        ValueError: unknown ``loss`` or a bad override.
    """
    if loss not in LOSSES:
        raise ValueError(f"cell_config: unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    spec = LOSSES[loss]
    steps = base.train.max_steps
    extra = [f"loss.name={spec.loss}", f"train.seed={seed}",
             # validate once, at the end: the last checkpoint is kept (see module docstring)
             f"train.val_every_n_steps={steps}",
             "inference.calibrate_offset=false"]
    extra += _alpha_overrides(spec)
    soft = softness_ms if softness_ms is not None else spec.softness_ms
    if soft is not None:
        extra.append(f"loss.softness_ms={soft}")
    if threads is not None:
        extra.append(f"train.num_threads={threads}")
    return apply_overrides(base, extra + list(loss_overrides))


# --------------------------------------------------------------------------- set-up


@dataclass
class StudySetup:
    """What :func:`prepare_study` found: folders, base configuration, dataset, feature store."""

    out: Path
    data_root: Path
    base: RunConfig
    index: Any
    store: Any
    classes: tuple[str, ...]
    train_stems: list[str]
    valid_stems: list[str]
    test_events: dict


def _check_dataset(fn: str, data_root: Path, index: Any) -> None:
    for split in ("train", "test"):
        if not index.splits[split]:
            raise ValueError(f"{fn}: {data_root}: the {split} split is empty")
    stems = [s for split in ("train", "valid", "test") for s in index.splits[split]]
    missing = [s for s in stems if not index.has_events(s)]
    if missing:
        raise ValueError(
            f"{fn}: {data_root}/annotations/ has no file for {missing[:5]}; the study perturbs "
            "and scores timestamps, so every train/valid/test stem needs one"
        )


def guard_settings(fn: str, out: Path, settings: dict) -> None:
    """Write ``experiment.json``, or refuse a folder holding a study with other settings."""
    marker = out / "experiment.json"
    if not marker.is_file():
        atomic_write_text(marker, json.dumps(settings, indent=2) + "\n")
        return
    old = json.loads(marker.read_text())
    diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
    if diff:
        k = diff[0]
        raise ValueError(
            f"{fn}: {out} holds an experiment with other settings ({k}: {old.get(k)!r} there, "
            f"{settings.get(k)!r} now); use a new --out, or the same settings to resume"
        )


def prepare_study(fn: str, data_root: str | Path, out_dir: str | Path, *, preset: str,
                  max_steps: int | None, overrides: Sequence[str], settings: dict) -> StudySetup:
    """Load and check the dataset, guard ``out_dir``, cache the valid/test features.

    Args:
        fn: the calling function's name, for error messages.
        data_root: dataset in the generic layout with ``splits/`` and annotations for every stem.
        out_dir: the study folder (created).
        preset, max_steps, overrides: the base configuration.
        settings: the study's own settings, stored in ``experiment.json`` with the data folder,
            preset, steps and overrides.

    Raises:
        ValueError: no ``splits/``, an empty train/test split, a stem without annotations, an
            ``out_dir`` holding a study with other settings.
    """
    data_root = Path(data_root).resolve()
    out = Path(out_dir).resolve()
    base = load_preset(preset)
    extra = list(overrides) + ([f"train.max_steps={max_steps}"] if max_steps is not None else [])
    base = apply_overrides(base, extra)
    if not (data_root / "splits").is_dir():
        raise ValueError(
            f"{fn}: {data_root}/splits/ not found; the study needs fixed train/valid/test splits "
            "(splits/train.txt, valid.txt, test.txt) so every run is scored on the same files"
        )
    index = load_dataset(data_root, labels=base.classes or None)
    _check_dataset(fn, data_root, index)
    out.mkdir(parents=True, exist_ok=True)
    guard_settings(fn, out, dict(settings, data=str(data_root), preset=preset,
                                  max_steps=base.train.max_steps, overrides=list(overrides)))
    train_stems, valid_stems = list(index.splits["train"]), list(index.splits["valid"])
    test_stems = list(index.splits["test"])
    store = prepare_features(index, base.features, cache_dir=out / "cache",
                             stems=valid_stems + test_stems, rate_factors=(1.0,))
    test_events = {s: list(index.events[s] or []) for s in test_stems}
    return StudySetup(out, data_root, base, index, store, tuple(index.classes), train_stems,
                      valid_stems, test_events)


# --------------------------------------------------------------------------- noisy labels


def _noise_rng(kind: str, sigma_ms: float, seed: int) -> np.random.Generator:
    # Stable across runs and Python versions (no hash()): the bytes of the spec.
    key = [seed, int(round(sigma_ms * 1000))] + list(kind.encode())
    return np.random.default_rng(key)


def _write_noisy_labels(index: Any, stems: Sequence[str], folder: Path, *, spec: str,
                        rng: np.random.Generator, frame_rate: float) -> None:
    """Perturbed annotation files for ``stems`` in ``folder`` (all or none: temp + rename)."""
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


def noisy_labels(setup: StudySetup, kind: str, sigma_ms: float, seed: int, *,
                 skew_shape: float = -2.0) -> Path:
    """The folder ``OUT/labels/<kind><σ>ms_seed<seed>`` of perturbed train/valid annotations.

    Written once (all files or none) and reused: every loss of a study sees the same labels.
    """
    spec = noise_spec(kind, sigma_ms, skew_shape=skew_shape)
    folder = setup.out / "labels" / f"{kind}{fmt_ms(sigma_ms)}ms_seed{seed}"
    _write_noisy_labels(setup.index, setup.train_stems + setup.valid_stems, folder, spec=spec,
                        rng=_noise_rng(kind, sigma_ms, seed),
                        frame_rate=setup.base.features.frame_rate)
    return folder


# --------------------------------------------------------------------------- decoding + scoring


def decoder_of(config: RunConfig) -> str:
    """The decoder (``softloc.decode.DECODERS``) that the loss registry names for
    ``config.loss``."""
    return build_loss(config.loss, frame_rate=config.features.frame_rate,
                      max_steps=config.train.max_steps).decoder


def _decode(probs: np.ndarray, decoder: str, config: RunConfig,
            offset_s: float | Sequence[float], thresholds: Sequence[float] | None = None) -> Events:
    """Events of ``probs`` by ``decoder``, ``offset_s`` (one, or one per class) added: with one
    threshold per class when ``thresholds`` is given (or, for ``threshold``, the run's
    calibrated ``inference.class_thresholds``), else one for all (``inference.threshold`` for
    ``threshold``, the registry's default for the others)."""
    fr = config.features.frame_rate
    min_distance = max(1, round(config.inference.min_distance_s * fr))
    settings: dict[str, Any] = {}
    if decoder == "peaks-normalized":
        settings["sigma_frames"] = ms_to_frames(config.loss.softness_ms, fr)
    elif decoder == "mass-peaks":
        settings["half_window_frames"] = max(1, round(ms_to_frames(_MASS_HALF_WINDOW_MS, fr)))
    if thresholds is None and decoder == "threshold":  # the run's own, if it calibrated
        thresholds = config.inference.class_thresholds or None
        settings["threshold"] = config.inference.threshold
    n_classes = probs.shape[0]
    offsets = np.broadcast_to(np.asarray(offset_s, dtype=np.float64), (n_classes,))
    if thresholds:
        settings.pop("threshold", None)
    parts = [decode_events(probs[c:c + 1], decoder, frame_rate=fr, time_offset_s=offsets[c],
                           min_distance_frames=min_distance, **settings,
                           **({"threshold": thresholds[c]} if thresholds else {}))
             for c in range(n_classes)]
    classes = np.concatenate([np.full(len(e), c, dtype=np.int64) for c, e in enumerate(parts)])
    times = np.concatenate([e.times_s for e in parts])
    order = np.lexsort((classes, times))
    return Events(frames=np.concatenate([e.frames for e in parts])[order],
                  classes=classes[order],
                  scores=np.concatenate([e.scores for e in parts])[order],
                  times_s=times[order], n_classes=n_classes, frame_rate=fr,
                  time_offset_s=float(np.mean(offsets)))


def count_thresholds(probs: Mapping[str, np.ndarray], decoder: str, config: RunConfig, *,
                     valid_events: Mapping[str, Sequence[tuple[float, str]]],
                     classes: Sequence[str]) -> list[float] | None:
    """Per-class thresholds of ``decoder`` from the validation COUNTS (no timestamp read).

    What ``softloc.inference.calibrate.calibrate_from_counts`` does for the ``threshold``
    decoder of a run, for the study's other decoders (``peaks``, ``peaks-normalized``,
    ``mass-peaks``), so that every loss is scored with a threshold chosen on what it may see:
    for each class the value of ``THRESHOLD_GRID`` whose detections best reproduce the number
    of events of each validation file (smallest total ``|detected - counted|``; ties towards the
    decoder's default). Label noise moves timestamps, never their number. A class with fewer
    than ``inference.calibrate_min_events`` validation events (and every class when
    ``inference.calibrate_per_class`` is off) takes the pooled best. None when
    ``inference.calibrate_threshold`` is off or there is no validation file.

    Args:
        probs: stem -> ``(class, time)`` outputs; must hold every stem of ``valid_events``.
        decoder: a name of ``softloc.decode.DECODERS``.
        config: the run's configuration (frame rate, inference settings, softness).
        valid_events: stem -> ``(time_s, label)`` events of the validation files.
        classes: the class names, in the order of ``probs``' rows.
    """
    inf = config.inference
    stems = list(valid_events)
    if not inf.calibrate_threshold or not stems:
        return None
    index = {c: i for i, c in enumerate(classes)}
    counted = np.zeros((len(stems), len(classes)))
    for i, s in enumerate(stems):
        for _, label in valid_events[s]:
            if label in index:
                counted[i, index[label]] += 1
    errors = np.zeros((len(THRESHOLD_GRID), len(classes)))
    for g, thr in enumerate(THRESHOLD_GRID):
        for i, s in enumerate(stems):
            found = _decode(probs[s], decoder, config, 0.0, [thr] * len(classes)).classes
            errors[g] += np.abs(np.bincount(found, minlength=len(classes)) - counted[i])
    default = DEFAULT_THRESHOLDS[decoder]

    def best_of(err: np.ndarray) -> float:
        best = [THRESHOLD_GRID[g] for g in np.flatnonzero(err == err.min())]
        return min(best, key=lambda x: abs(x - default))

    pooled = best_of(errors.sum(1))
    n_counted = counted.sum(0)
    return [best_of(errors[:, c])
            if inf.calibrate_per_class and n_counted[c] >= inf.calibrate_min_events
            else pooled for c in range(len(classes))]


def decode(probs: np.ndarray, config: RunConfig, *,
           time_offset_s: float | Sequence[float] = 0.0):
    """Events of ``probs`` ``(class, time)`` by the decoder that fits ``config.loss``
    (:func:`decoder_of`), with the study's settings: the run's calibrated per-class thresholds
    (``inference.class_thresholds``, else ``inference.threshold``) for ``threshold``, the
    registry defaults for the others (0.5; 0.35 on the normalised scale),
    the loss's softness for ``peaks-normalized``, ±50 ms for ``mass-peaks``.

    Returns:
        :class:`softloc.decode.Events` (times shifted by ``time_offset_s``, one per class).
    """
    return _decode(probs, decoder_of(config), config, time_offset_s)


def _score_decoder(probs: dict, decoder: str, config: RunConfig, *, valid_events: dict,
                   test_events: dict, classes: Sequence[str],
                   strengths: Mapping[str, np.ndarray] | None = None,
                   fixed_threshold: bool = False) -> dict:
    """Calibrate ``decoder`` on the validation files, score the test files.

    Thresholds: the run's own (calibrated in training) for ``threshold``; for the other
    decoders :func:`count_thresholds` from the validation counts, or the registry's fixed
    default with ``fixed_threshold`` (the ``f1_mass`` diagnostic). The time offset: from the
    onset strength of the validation audio (``strengths``: stem -> onset strength, no label)
    when given, else from their (noisy) labels. ``result["class_thresholds"]``: the
    thresholds a non-``threshold`` decoder used (None: its default)."""
    thresholds = None
    if decoder != "threshold" and not fixed_threshold:
        thresholds = count_thresholds(probs, decoder, config, valid_events=valid_events,
                                      classes=classes)
    offset: float | list[float] = 0.0
    if strengths is not None:
        stems = [s for s in valid_events if s in strengths]
        offset, _ = onset_alignment_offsets(
            [_decode(probs[s], decoder, config, 0.0, thresholds).per_class() for s in stems],
            [strengths[s] for s in stems], config.features.frame_rate,
            mode=config.inference.align_to_onsets,
            min_events=config.inference.calibrate_min_events)
    elif valid_events:
        est, ref = [], []
        for stem, events in valid_events.items():
            per_class = _decode(probs[stem], decoder, config, 0.0, thresholds).per_class()
            for c, label in enumerate(classes):
                est.append(np.clip(per_class[c], 0.0, None))
                ref.append(np.array([t for t, lab in events if lab == label]))
        offset = calibrate_time_offset(est, ref)
    estimate = {}
    for stem in test_events:
        events = _decode(probs[stem], decoder, config, offset, thresholds).labelled(classes)
        estimate[stem] = [(max(0.0, t), lab) for t, lab in events]
    result = evaluate(test_events, estimate, classes=list(classes))
    result["time_offset_s"] = float(np.mean(offset))
    result["class_thresholds"] = thresholds
    return result


def _score_run(run_dir: Path, *, store: Any, valid_events: dict, test_events: dict,
               classes: Sequence[str]) -> dict:
    """Scores of the loss's decoder; the local-mass decoder's as ``result["mass"]``: whether the
    probability mass sits at the events, whatever the shape of the peaks (a diagnostic for
    models whose outputs are not yet sharp, e.g. short SoftLoc runs)."""
    detector = Detector.load(run_dir)
    config = detector.config
    mels = {stem: torch.as_tensor(store.get(stem, 1.0))
            for stem in list(valid_events) + list(test_events)}
    probs = {stem: np.clip(detector.probabilities_from_mel(mel), 0.0, 1.0)
             for stem, mel in mels.items()}
    strengths = None
    if config.inference.align_to_onsets != "none":
        # the run's own offset calibration (no label): the validation audio's onsets, which
        # label noise does not move; the noisy labels' median error is shrunk towards 0 by the
        # matching window (a piano run at σ = 100 ms: -4 ms from the labels, -40 ms from
        # the audio, which scored 7.6 points more; docs/results.md)
        strengths = {s: onset_strength(mels[s][None].float())[0].numpy() for s in valid_events}
    kwargs = dict(valid_events=valid_events, test_events=test_events, classes=classes,
                  strengths=strengths)
    decoder = decoder_of(config)
    result = _score_decoder(probs, decoder, config, **kwargs)
    result["mass"] = _score_decoder(probs, "mass-peaks", config, fixed_threshold=True, **kwargs)
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


def train_and_score(setup: StudySetup, config: RunConfig, *, labels_dir: Path,
                    run_dir: Path, progress: bool) -> dict:
    """Train one run on ``labels_dir``, score it; returns the score columns of its results row.

    An unfinished ``run_dir`` of an interrupted study is replaced. The time offset of the loss's
    decoder is calibrated on the validation audio (presets that align to onsets) or on the
    noisy validation labels (module docstring, step 4); the clean test split is scored at
    ±50 ms. The Lightning checkpoints are deleted afterwards (``model.pt`` holds the final
    weights; the checkpoints are ~10x larger per run).
    """
    from softloc.training import train

    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished run of an interrupted study (not in the csv)
    t0 = time.perf_counter()
    result = train(config, data_root=setup.data_root, out_dir=run_dir, labels="onsets",
                   annotations=labels_dir, progress=progress, cache_dir=setup.out / "cache")
    train_s = time.perf_counter() - t0
    valid_events = {s: read_annotation_file(labels_dir / f"{s}.txt") for s in setup.valid_stems}
    scored = _score_run(run_dir, store=setup.store, valid_events=valid_events,
                        test_events=setup.test_events, classes=setup.classes)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return {"steps": result.metrics.get("steps", ""), "train_s": round(train_s, 1),
            **_row_from_result(scored, setup.classes)}


def rescore_rows(setup: StudySetup, rows: Sequence[dict],
                 labels_dir_of: Callable[[Mapping], Path | None]) -> int:
    """Score again, with the current decoders, the rows whose run folder still holds its
    ``model.pt``: no training (e.g. after a change of how the study decodes). The score
    columns of each such row are replaced in place; the others stay as they are.

    Args:
        setup: the study (:func:`prepare_study`).
        rows: the rows of its results table; ``row["run"]`` is the run folder under ``OUT``.
        labels_dir_of: row -> the noisy annotation folder its run trained on (validation
            labels for the offset and the count thresholds), or None to leave the row alone.

    Returns:
        The number of rows scored again.
    """
    n = 0
    for row in rows:
        run_dir = setup.out / str(row.get("run", ""))
        labels_dir = labels_dir_of(row)
        if labels_dir is None or not row.get("run") or not (run_dir / "model.pt").is_file():
            continue
        valid_events = {s: read_annotation_file(labels_dir / f"{s}.txt")
                        for s in setup.valid_stems}
        scored = _score_run(run_dir, store=setup.store, valid_events=valid_events,
                            test_events=setup.test_events, classes=setup.classes)
        row.update(_row_from_result(scored, setup.classes))
        n += 1
    return n


# --------------------------------------------------------------------------- results table


def result_columns(first: Sequence[str], classes: Sequence[str]) -> list[str]:
    """The columns of a results CSV: ``first`` (the study's own), :data:`SCORE_COLUMNS`, then
    ``precision_<c>``, ``recall_<c>``, ``f1_<c>`` per class."""
    per_class = [f"{k}_{c}" for c in classes for k in ("precision", "recall", "f1")]
    return list(first) + list(SCORE_COLUMNS) + per_class
