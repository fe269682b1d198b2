"""Input stage ``"features"``: precomputed feature sequences ``(D, T)`` in ``.npy`` files (the
MS-TCN layout's ``features/<video>.npy``), and per-frame action segmentation with them.

* :class:`FeatureInput` (kind ``"features"``, registered in
  ``softloc.inference.detector.INPUT_STAGES``) reads a ``(feature, time)`` ``.npy`` file or
  array; the network runs once over the whole sequence (a TCN sees the whole video).
* :class:`Segmentation`: a segmentation model file (written by ``softloc experiment
  segmentation --save-models``; ``extra`` holds ``classes``, ``fps``, ``subsample`` and the
  fold ``split``) -> per-frame class labels -> ``(start_s, end_s, label)`` segments.
  Per-frame classes are the arg-max of the softmax (one class per frame), not the thresholded
  sigmoids of ``Detector.events``.
* :func:`is_segmentation_model`: the discriminator ``softloc detect`` routes on: a model file
  whose input kind is ``"features"`` is a segmentation network (the stage's output is a softmax
  over classes per frame; no event detector reads feature sequences).
* :func:`feature_inputs` / :func:`segment_batch` / :func:`segment_to_folder`: what ``softloc
  detect`` runs for such a model: ``.npy`` files, folders, glob patterns or the split of an
  MS-TCN dataset -> ``OUT/<stem>.txt`` with one ``<start_s>\\t<end_s>\\t<label>`` line per
  segment (times with 3 decimals, end exclusive).

The frame rate of the input is the one the model was trained at: the file's ``fps`` divided by
its ``subsample`` (every k-th frame kept, as in training).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from softloc._io import folder_lock
from softloc.data.formats import write_segment_file
from softloc.data.mstcn import list_splits, read_bundle, read_features
from softloc.inference.batch import BatchReport
from softloc.inference.detector import INPUT_STAGES, InputStage
from softloc.inference.model_file import (
    MODEL_FILE,
    ModelFile,
    read_model_file,
    resolve_model_path,
)
from softloc.metrics.segments import segment_bounds

__all__ = [
    "FeatureInput",
    "Segmentation",
    "feature_inputs",
    "is_segmentation_model",
    "resolve_run_model",
    "segment_batch",
    "segment_file",
    "segment_to_folder",
]

_GLOB_CHARS = frozenset("*?[")


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
        """Class distribution per frame ``(class, frames)``: softmax of one pass (on the
        network's device)."""
        param = next(model.parameters(), None)
        x = features[None] if param is None else features[None].to(param.device)
        logits = model(x)  # (1, D, T) -> (1, C, T)
        return torch.softmax(logits[0].float(), dim=0).cpu().numpy()


INPUT_STAGES.setdefault(FeatureInput.kind, FeatureInput)


def is_segmentation_model(model_file: ModelFile) -> bool:
    """True for a segmentation network: a model file whose input kind is ``"features"``.

    The input kind is what the file records about the network's input and output contract
    (the ``"features"`` stage gives a softmax over classes per frame); model names are not used,
    since a TCN could be trained as an event detector too.
    """
    return model_file.input_kind == FeatureInput.kind


def resolve_run_model(path: str | os.PathLike) -> Path:
    """The model file of ``path``: a file, ``RUN/model.pt``, or the one file of ``RUN/models/``
    (the folder of ``softloc experiment segmentation --save-models``).

    Raises:
        FileNotFoundError: no such file or folder, or a folder without a model file.
        ValueError: ``RUN/models/`` holds several model files (the message lists them).
    """
    p = Path(path)
    if p.is_dir() and not (p / MODEL_FILE).is_file() and (p / "models").is_dir():
        found = sorted(q for q in (p / "models").glob("*.pt") if q.is_file())
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(q.name for q in found[:5]) + (" ..." if len(found) > 5 else "")
            raise ValueError(f"{p}: {len(found)} model files in {p / 'models'} ({names}); "
                             f"choose one: --model {p / 'models' / found[0].name}")
    return resolve_model_path(p)


class Segmentation:
    """A loaded segmentation model: network, classes and input stage.

    Attributes:
        model: the network in eval mode (features ``(batch, feature, time)`` -> logits
            ``(batch, class, time)``).
        classes: class labels in output order.
        stage: the :class:`FeatureInput` at the training rate.
        extra: the model file's extra data (``fps``, ``subsample``, ``split`` ...).
    """

    def __init__(self, model: nn.Module, classes: Sequence[str], stage: FeatureInput, *,
                 extra: dict[str, Any] | None = None) -> None:
        self.model, self.classes, self.stage = model.eval(), tuple(classes), stage
        self.extra = dict(extra or {})

    @classmethod
    def from_model_file(cls, model_file: ModelFile) -> Segmentation:
        """A :class:`Segmentation` of a model file read by ``read_model_file``.

        Raises:
            ValueError: not a segmentation model file (naming the file and what is missing).
        """
        path, extra = model_file.path, model_file.extra
        if not is_segmentation_model(model_file):
            raise ValueError(f"{path}: not a segmentation model file (input kind "
                             f"{model_file.input_kind!r}, expected {FeatureInput.kind!r})")
        missing = [k for k in ("classes", "fps") if k not in extra]
        if missing:
            raise ValueError(f"{path}: not a segmentation model file (no {missing[0]!r} in its "
                             "extra data)")
        stage = FeatureInput(model_file.config).with_rate(float(extra["fps"]),
                                                          int(extra.get("subsample", 1)))
        return cls(model_file.model, extra["classes"], stage, extra=extra)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu"
             ) -> Segmentation:
        """Load a model file of ``softloc experiment segmentation --save-models`` (or a folder:
        see :func:`resolve_run_model`) and move the network to ``device``."""
        seg = cls.from_model_file(read_model_file(resolve_run_model(path)))
        try:
            seg.model = seg.model.to(torch.device(device))
        except (RuntimeError, ValueError, AssertionError) as err:
            raise ValueError(f"Segmentation.load: cannot use device {device!r}: {err}") from err
        return seg

    @property
    def frame_rate(self) -> float:
        """Frames per second of the labels (the feature rate / subsample)."""
        return self.stage.frame_rate

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


def _scan(folder: Path, recursive: bool) -> list[Path]:
    found = folder.glob("**/*.npy" if recursive else "*.npy")
    return sorted(q for q in found if q.is_file()
                  and not any(part.startswith(".") for part in q.relative_to(folder).parts))


def _named(item: str | os.PathLike, recursive: bool) -> list[tuple[Path, Path]]:
    p = Path(item)
    if p.is_dir():
        files = _scan(p, recursive)
        if not files:
            raise ValueError(f"{p}: no .npy feature files in this folder"
                             + ("" if recursive else "; --recursive searches its sub-folders"))
        return [(q, q.relative_to(p).with_suffix("")) for q in files]
    if p.is_file():
        return [(p, Path(p.stem))]
    if _GLOB_CHARS & set(str(item)):
        hits = sorted(Path(h) for h in glob.glob(str(item), recursive=True)
                      if h.endswith(".npy") and Path(h).is_file())
        if not hits:
            raise FileNotFoundError(f"{item}: the pattern matches no .npy file")
        return [(h, Path(h.stem)) for h in hits]
    raise FileNotFoundError(f"{p}: no such feature file or folder")


def _split_inputs(root: Path, split: str, fold: int | None) -> list[tuple[Path, Path]]:
    if split not in ("train", "test"):
        raise ValueError(f"{root}: an MS-TCN dataset has the splits 'train' and 'test' of each "
                         f"fold, not {split!r}")
    folds = list_splits(root)
    if fold is None:
        if len(folds) != 1:
            raise ValueError(f"{root}: the model file does not say which fold it was trained "
                             f"on and the dataset has folds {folds or 'none'}; pass --fold K")
        fold = folds[0]
    bundle = root / "splits" / f"{split}.split{fold}.bundle"
    if not bundle.is_file():
        raise ValueError(f"{root}: no fold {fold} (missing {bundle}); folds found: "
                         f"{folds or 'none'}")
    return [(root / "features" / f"{name}.npy", Path(name)) for name in read_bundle(bundle)]


def feature_inputs(
    inputs: Sequence[str | os.PathLike],
    *,
    data_root: str | os.PathLike | None = None,
    split: str | None = None,
    fold: int | None = None,
    recursive: bool = False,
) -> list[tuple[Path, Path]]:
    """Feature files named by ``inputs`` (``.npy`` files, folders, glob patterns) and/or the
    ``split`` (``"train"`` / ``"test"``) of fold ``fold`` of the MS-TCN dataset ``data_root``.

    Returns:
        ``(file, output name below OUT without suffix)`` per input, each file once: the stem for
        a named file or a dataset video, the path below the folder for a folder's files.

    Raises:
        FileNotFoundError: a named file/folder does not exist, or a pattern matches nothing.
        ValueError: a folder without ``.npy`` files, an unknown split or fold, two inputs with one
            output name, or nothing to process.
    """
    items = [pair for item in inputs for pair in _named(item, recursive)]
    if data_root is not None:
        if split is None:
            raise ValueError("feature_inputs: `split` is required with `data_root`")
        items += _split_inputs(Path(data_root), split, fold)
    if not items:
        raise ValueError("feature_inputs: no feature inputs")
    seen: set[Path] = set()
    owner: dict[Path, Path] = {}
    out = []
    for path, rel in items:
        key = path.resolve()
        if key in seen:
            continue
        if rel in owner:
            raise ValueError(f"two inputs would write {rel}.txt: {owner[rel]} and {path}")
        seen.add(key)
        owner[rel] = path
        out.append((path, rel))
    return out


def segment_batch(
    seg: Segmentation,
    inputs: Sequence[tuple[Path, Path]],
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
) -> BatchReport:
    """Write ``OUT/<name>.txt`` (``softloc.data.formats.write_segment_file``) per ``(file,
    name)`` of ``inputs``.

    As ``softloc.inference.detect_batch``: existing outputs are checked before any work, the
    folder is locked while writing, and a file that fails is reported in the result's
    ``failed`` while the others are written (``written`` counts segments, not events).

    Raises:
        FileExistsError: an output exists and neither ``overwrite`` nor ``skip_existing``, or
            ``out_dir`` is a file.
        softloc.inference.batch.FolderLockedError: another batch writes into ``out_dir``.
        OSError: the output folder fails (disk full, read-only): the batch stops.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder; expected an output folder")
    report = BatchReport()
    todo, clash = [], []
    for src, rel in inputs:
        target = out / rel.parent / f"{rel.name}.txt"
        if target.exists():
            if skip_existing:
                report.skipped.append(src)
                continue
            if not overwrite:
                clash.append(target)
        todo.append((src, target))
    if clash:
        raise FileExistsError(f"{clash[0]}: already exists ({len(clash)} output file(s) exist); "
                              "not replacing them: pass --overwrite to replace, --skip-existing "
                              "to skip inputs already done, or choose another --out")
    with folder_lock(out, command="softloc detect"):
        for src, target in todo:
            try:  # a bad input is reported; a failing output folder stops the batch
                segments = seg.segments(src)
            except (OSError, ValueError, RuntimeError) as err:
                text = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                report.failed.append((src, text if str(src) in text else f"{src}: {text}"))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            write_segment_file(target, segments, overwrite=overwrite)
            report.written.append((src, [target], len(segments)))
    return report


def segment_to_folder(model_path: str | os.PathLike, sources: Sequence[str | os.PathLike],
                      out: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Write ``OUT/<stem>.txt`` (``<start_s>\\t<end_s>\\t<label>`` per segment) per feature file.

    Raises:
        FileExistsError: an output exists and ``overwrite`` is False (checked before any work).
        ValueError: the first file that fails (naming it).
    """
    seg = Segmentation.load(model_path)
    inputs = [(Path(s), Path(Path(s).stem)) for s in sources]
    report = segment_batch(seg, inputs, out, overwrite=overwrite)
    if report.failed:
        raise ValueError(report.failed[0][1])
    return [paths[0] for _, paths, _ in report.written]
