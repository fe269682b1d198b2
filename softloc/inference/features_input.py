"""Input stage ``"features"``: precomputed feature sequences ``(D, T)`` in ``.npy`` files (the
MS-TCN layout's ``features/<video>.npy``), and per-frame action segmentation with them.

* :class:`FeatureInput` (kind ``"features"``, registered in
  ``softloc.inference.detector.INPUT_STAGES``) reads a ``(feature, time)`` ``.npy`` file or
  array; the network runs once over the whole sequence (a TCN sees the whole video).
* :func:`segment_file` / :func:`segment_to_folder`: a segmentation model file (written by
  ``softloc experiment segmentation --save-models``; ``extra`` holds ``classes``, ``fps`` and
  ``subsample``) -> per-frame class labels -> ``<stem>.txt`` with one ``<start_s>\\t<end_s>\\t
  <label>`` line per segment. Per-frame classes are the arg-max of the softmax (one class per
  frame), not the thresholded sigmoids of ``Detector.events``, so ``softloc detect`` does not
  route segmentation models yet (see the module's ``segment_to_folder``).

The frame rate of the input is the one the model was trained at: the file's ``fps`` divided by
its ``subsample`` (every k-th frame kept, as in training).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from softloc._io import atomic_write_text
from softloc.data.mstcn import read_features
from softloc.inference.detector import INPUT_STAGES, InputStage
from softloc.inference.model_file import load_model_file
from softloc.metrics.segments import segment_bounds

__all__ = ["FeatureInput", "Segmentation", "segment_file", "segment_to_folder"]


class FeatureInput(InputStage):
    """Precomputed features ``(feature, time)`` (``.npy`` path or array) as the network input.

    The frame rate is ``fps / subsample`` of the model file's ``extra`` when given
    (:meth:`with_rate`); the run configuration alone does not know a feature rate.
    """

    kind = "features"
    _rate: float | None = None
    _subsample: int = 1

    def with_rate(self, fps: float, subsample: int = 1) -> FeatureInput:
        """Set the feature file rate ``fps`` and the temporal subsampling of training."""
        if not (isinstance(fps, int | float) and fps > 0):
            raise ValueError(f"FeatureInput: `fps` must be > 0, got {fps!r}")
        if not (isinstance(subsample, int) and subsample >= 1):
            raise ValueError(f"FeatureInput: `subsample` must be an int >= 1, got {subsample!r}")
        self._rate, self._subsample = float(fps), subsample
        return self

    @property
    def frame_rate(self) -> float:
        if self._rate is None:
            raise ValueError("FeatureInput: the feature rate is unknown; call with_rate(fps)")
        return self._rate / self._subsample

    def read(self, source: Any) -> np.ndarray:
        if isinstance(source, np.ndarray):
            if source.ndim != 2 or not np.isfinite(source).all():
                raise ValueError("FeatureInput.read: expected a finite (feature, time) array, "
                                 f"got shape {source.shape}")
            return source.astype(np.float32, copy=False)
        if isinstance(source, str | os.PathLike):
            return read_features(source)
        raise TypeError(f"FeatureInput.read: expected a .npy path or an array, got "
                        f"{type(source).__name__}")

    def features(self, signal: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(signal[:, :: self._subsample]))

    @torch.no_grad()
    def probabilities(self, model: nn.Module, features: torch.Tensor) -> np.ndarray:
        """Class distribution per frame ``(class, frames)``: softmax of one pass."""
        logits = model(features[None])  # (1, D, T) -> (1, C, T)
        return torch.softmax(logits[0], dim=0).numpy()


INPUT_STAGES.setdefault(FeatureInput.kind, FeatureInput)


class Segmentation:
    """A loaded segmentation model: network, classes and input stage."""

    def __init__(self, model: nn.Module, classes: Sequence[str], stage: FeatureInput) -> None:
        self.model, self.classes, self.stage = model.eval(), tuple(classes), stage

    @classmethod
    def load(cls, path: str | os.PathLike) -> Segmentation:
        """Load a model file of ``softloc experiment segmentation --save-models``."""
        model, config, extra = load_model_file(path)
        missing = [k for k in ("classes", "fps") if k not in extra]
        if missing:
            raise ValueError(f"{path}: not a segmentation model file (no {missing[0]!r} in its "
                             "extra data)")
        stage = FeatureInput(config).with_rate(float(extra["fps"]),
                                               int(extra.get("subsample", 1)))
        return cls(model, extra["classes"], stage)

    def labels(self, source: Any) -> np.ndarray:
        """Class index per (subsampled) frame of a feature file or array."""
        feats = self.stage.features(self.stage.read(source))
        return self.stage.probabilities(self.model, feats).argmax(0)

    def segments(self, source: Any) -> list[tuple[float, float, str]]:
        """``(start_s, end_s, label)`` per segment (end exclusive)."""
        classes, starts, ends = segment_bounds(self.labels(source))
        rate = self.stage.frame_rate
        return [(s / rate, e / rate, self.classes[c])
                for c, s, e in zip(classes.tolist(), starts.tolist(), ends.tolist(), strict=True)]


def segment_file(model_path: str | os.PathLike, source: Any) -> list[tuple[float, float, str]]:
    """Segments of one feature file: see :meth:`Segmentation.segments`."""
    return Segmentation.load(model_path).segments(source)


def segment_to_folder(model_path: str | os.PathLike, sources: Sequence[str | os.PathLike],
                      out: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Write ``OUT/<stem>.txt`` (``<start_s>\\t<end_s>\\t<label>`` per segment) per feature file.

    Raises:
        FileExistsError: an output exists and ``overwrite`` is False (checked before any work).
    """
    seg = Segmentation.load(model_path)
    out = Path(out)
    targets = [out / f"{Path(s).stem}.txt" for s in sources]
    if not overwrite:
        for t in targets:
            if t.exists():
                raise FileExistsError(f"segment_to_folder: {t} exists (pass overwrite=True)")
    out.mkdir(parents=True, exist_ok=True)
    for src, target in zip(sources, targets, strict=True):
        lines = [f"{a:.3f}\t{b:.3f}\t{label}\n" for a, b, label in seg.segments(src)]
        atomic_write_text(target, "".join(lines))
    return targets
