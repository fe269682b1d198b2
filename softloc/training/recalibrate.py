"""Calibrate a finished run's decoder again, without training: ``softloc calibrate``.

A run's thresholds and time offsets are chosen once, at the end of training, on its validation
files (``softloc.inference.calibrate``). :func:`recalibrate_run` repeats that step with other
inference settings (e.g. ``inference.align_to_onsets=pooled`` for a counts-trained run that
fires late, or ``inference.calibrate_with=counts``) and writes a NEW run folder; the old one is
left as it is. The network's weights are copied unchanged, so the new folder detects exactly as
a run trained with those settings would (the calibration is the last step of training, on the
same validation files).

    OUT/model.pt       the same network, the recalibrated configuration
    OUT/config.yaml    that configuration
    OUT/metrics.json   what was calibrated, on which files, from which run, versions
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from softloc._io import atomic_write_text, provenance
from softloc.config import RunConfig, apply_overrides, save_config
from softloc.data.formats import read_split_file
from softloc.inference.calibrate import calibrate
from softloc.inference.detector import Detector, make_input_stage
from softloc.inference.model_file import (
    MODEL_FILE,
    read_model_file,
    resolve_model_path,
    save_model_file,
)
from softloc.training.loaders import load_index

__all__ = ["recalibrate_run"]

_FN = "recalibrate_run"


def _validation_stems(run_dir: Path, data_root: Path, split: str | None) -> tuple[list[str], str]:
    if split is not None:
        path = data_root / "splits" / f"{split}.txt"
        return [stem for _, stem in read_split_file(path)], f"{path}"
    metrics = run_dir / "metrics.json"
    try:
        stems = json.loads(metrics.read_text(encoding="utf-8")).get("valid_files")
    except (OSError, ValueError) as err:
        raise ValueError(f"{_FN}: {metrics}: cannot read the run's validation files ({err}); "
                         "name a split of the dataset to calibrate on (--split valid)") from None
    if not isinstance(stems, list) or not stems:
        raise ValueError(f"{_FN}: {metrics}: no `valid_files` (the run had no validation "
                         "files); name a split of the dataset to calibrate on (--split valid)")
    return [str(s) for s in stems], f"the run's validation files ({metrics})"


def _uncalibrated(config: RunConfig) -> RunConfig:
    """``config`` as training's calibration started from: without the values it wrote (a kept
    offset would otherwise shift the detections the new thresholds are chosen on)."""
    inf = config.inference
    return replace(config, inference=replace(
        inf,
        class_offsets_s=() if inf.calibrate_offset else inf.class_offsets_s,
        class_thresholds=() if inf.calibrate_threshold else inf.class_thresholds))


def recalibrate_run(
    run_dir: str | os.PathLike,
    *,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    overrides: list[str] | tuple[str, ...] = (),
    split: str | None = None,
) -> dict[str, Any]:
    """Calibrate the decoder of the run in ``run_dir`` again and write it to ``out_dir``.

    Args:
        run_dir: a run folder (or its ``model.pt``) of an audio run.
        data_root: the dataset it was trained on (generic layout: ``audio/``, ``counts.csv``,
            ``annotations/``), read with the run's classes and annotation folder.
        out_dir: the new run folder; it must not exist or be empty.
        overrides: ``"inference.key=value"`` settings applied before calibrating (only the
            ``inference`` section: the rest describes how the network was trained). They apply
            to the run's configuration with the values its calibration wrote cleared
            (``class_offsets_s`` when ``calibrate_offset``, ``class_thresholds`` when
            ``calibrate_threshold``), as training had it before calibrating.
        split: calibrate on ``data_root/splits/<split>.txt`` instead of the run's own
            validation files (``metrics.json: valid_files``). A split the network trained on
            gives optimistic thresholds. A run trained with ``supervision.label_noise`` is
            calibrated without the dataset's (clean) timestamps, from its counts only.

    Returns:
        the ``metrics.json`` written (``"calibration"``: as training writes it).

    Raises:
        ValueError: an override outside ``inference``, a run that is not an audio run, no
            validation files, a stem missing from the dataset.
        FileExistsError: ``out_dir`` holds files.
    """
    run_dir, data_root, out_dir = Path(run_dir), Path(data_root), Path(out_dir)
    bad = [o for o in overrides if not o.strip().startswith("inference.")]
    if bad:
        raise ValueError(f"{_FN}: only inference settings can change after training; "
                         f"got {bad} (expected 'inference.key=value')")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{_FN}: {out_dir} exists and is not an empty folder; the new "
                              "run goes to a new folder (the old run is never changed)")
    model_path = resolve_model_path(run_dir)
    model_file = read_model_file(model_path)
    if model_file.input_kind != "audio":
        raise ValueError(f"{_FN}: {model_path}: a {model_file.input_kind!r} run; recalibration "
                         "reads audio files (train the signal run with the settings instead)")
    config = apply_overrides(_uncalibrated(model_file.config), list(overrides))
    stems, where = _validation_stems(model_path.parent, data_root, split)
    index = load_index(config, data_root, config.supervision.annotations[0])
    missing = [s for s in stems if s not in index.audio_paths]
    if missing:
        raise ValueError(f"{_FN}: {data_root}: no audio for the validation stems {missing[:5]} "
                         f"(from {where}); is this the dataset the run was trained on?")
    model = model_file.model.eval()
    stage = make_input_stage("audio", config)
    with torch.inference_mode():
        features = {s: stage.features(stage.read(index.audio_paths[s])) for s in stems}
    # A label-noise run never saw a clean validation timestamp; the dataset's are clean.
    clean_leak = config.supervision.label_noise is not None
    new_config, info = calibrate(
        Detector(model, config, input_stage=stage), features,
        events={s: None if clean_leak else index.events.get(s) for s in stems},
        count_windows={s: index.count_windows.get(s, []) for s in stems},
    )
    metrics = {
        "recalibrated_from": str(model_path),
        "overrides": list(overrides),
        "valid_files": stems,
        "valid_source": where,
        "calibration": info,
        "versions": provenance(),
    }
    _write_run(out_dir, model, new_config, model_file.extra, metrics)
    return metrics


def _write_run(out_dir: Path, model: torch.nn.Module, config: RunConfig, extra: dict,
               metrics: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model_file(out_dir / MODEL_FILE, model, config, extra=extra, input_kind="audio",
                    overwrite=False)
    save_config(config, out_dir / "config.yaml")
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n",
                      overwrite=False)
