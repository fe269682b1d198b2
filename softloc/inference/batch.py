"""Batch detection: many inputs -> one output folder, what ``softloc detect`` runs.

* :func:`collect_audio_inputs`: files, folders (every audio format soundfile reads, see
  ``softloc.data.formats.AUDIO_SUFFIXES``; ``recursive`` descends into sub-folders), glob
  patterns (``"music/**/*.mp3"``, quoted so that the shell leaves them alone) and the split of a
  dataset.
* :func:`plan_outputs`: where each input's outputs go: ``OUT/<stem>.<suffix>`` for a file named
  directly, ``OUT/<path below the folder>/<stem>.<suffix>`` for a file found in a folder (so that
  ``a/x.wav`` and ``b/x.wav`` of one recursive scan do not collide); two inputs that would write
  the same file are an error before any work.
* :func:`detect_batch`: runs a :class:`~softloc.inference.Detector` on every input and writes
  the events in one or several formats (``tsv`` with a score column, ``json`` with metadata,
  ``midi``; ``softloc.data.formats.write_events``) and optionally p(t) as ``<stem>.npy``
  (float32 ``(class, frames)`` at ``detector.frame_rate``; madmom / beat_this activations).

Data safety: an existing output is never replaced unless ``overwrite`` (or skipped with
``skip_existing``); the check runs for every input before the first one is processed. The output
folder is locked while the batch writes (``softloc._io.folder_lock``), so two batches into one
folder do not mix their files. A file that cannot be read or processed does not stop the batch:
its error is collected, the other files are written, and the report lists the failures.
"""

from __future__ import annotations

import errno
import glob
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from softloc._io import FolderLockedError, atomic_save, folder_lock
from softloc._version import __version__
from softloc.data.formats import AUDIO_SUFFIXES, EVENT_FORMATS, write_events
from softloc.inference.detector import Detector

__all__ = [
    "ACTIVATIONS_SUFFIX",
    "BatchReport",
    "DetectJob",
    "FolderLockedError",
    "collect_audio_inputs",
    "detect_batch",
    "detect_to_folder",
    "detection_metadata",
    "folder_lock",
    "plan_outputs",
]

#: Suffix of the p(t) files written with ``save_activations``.
ACTIVATIONS_SUFFIX = ".npy"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class _Input:
    path: Path
    relative: Path  # output name below OUT, without suffix


def _scan(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        q for q in folder.glob(pattern)
        if q.suffix.lower() in AUDIO_SUFFIXES and q.is_file()
        and not any(part.startswith(".") for part in q.relative_to(folder).parts)
    )


def _collect(inputs: Sequence[str | os.PathLike], recursive: bool) -> list[_Input]:
    found: list[_Input] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = _scan(p, recursive)
            if not files:
                hint = "" if recursive else "; --recursive searches its sub-folders"
                raise ValueError(f"{p}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})"
                                 f"{hint}")
            found += [_Input(q, q.relative_to(p).with_suffix("")) for q in files]
        elif p.is_file():
            found.append(_Input(p, Path(p.stem)))
        elif _GLOB_CHARS & set(str(item)):
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise FileNotFoundError(f"{item}: no file matches this pattern")
            found += [_Input(m, Path(m.stem)) for m in matches]
        else:
            raise FileNotFoundError(f"{p}: no such audio file or folder")
    return found


def collect_audio_inputs(
    inputs: Sequence[str | os.PathLike],
    *,
    data_root: str | os.PathLike | None = None,
    split: str | None = None,
    recursive: bool = False,
) -> list[Path]:
    """Audio files named by ``inputs`` (files, folders, glob patterns) and/or by the ``split``
    of the dataset ``data_root``; each file once, in the order given (folders sorted).

    Raises:
        FileNotFoundError: a named file/folder does not exist, or a pattern matches nothing.
        ValueError: a folder without audio files, an unknown split, or nothing to process.
    """
    return [i.path for i in _inputs(inputs, data_root=data_root, split=split,
                                    recursive=recursive)]


def _inputs(inputs: Sequence[str | os.PathLike], *, data_root: str | os.PathLike | None,
            split: str | None, recursive: bool) -> list[_Input]:
    items = _collect(inputs, recursive)
    if data_root is not None:
        from softloc.data.layout import load_dataset

        index = load_dataset(data_root, annotations=None)
        if split is None or split not in index.splits:
            raise ValueError(f"{data_root}: unknown split {split!r}; have {sorted(index.splits)}")
        items += [_Input(Path(index.audio_paths[s]), Path(s)) for s in index.splits[split]]
    if not items:
        raise ValueError("no audio inputs")
    seen: set[Path] = set()
    out = []
    for item in items:
        key = item.path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


@dataclass(frozen=True)
class DetectJob:
    """One input and the files written for it."""

    source: Path
    outputs: Mapping[str, Path]  # format -> file
    activations: Path | None = None

    @property
    def targets(self) -> list[Path]:
        return [*self.outputs.values(), *([self.activations] if self.activations else [])]


def plan_outputs(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    formats: Sequence[str] = ("tsv",),
    save_activations: bool = False,
    data_root: str | os.PathLike | None = None,
    split: str | None = None,
    recursive: bool = False,
) -> list[DetectJob]:
    """The inputs (as :func:`collect_audio_inputs`) and the files each one will write.

    Raises:
        ValueError: an unknown or repeated format, or two inputs that would write one file.
        FileNotFoundError, ValueError: see :func:`collect_audio_inputs`.
    """
    formats = list(formats)
    for fmt in formats:
        if fmt not in EVENT_FORMATS:
            raise ValueError(f"detect: unknown format {fmt!r}; expected some of "
                             f"{', '.join(EVENT_FORMATS)}")
    if not formats or len(set(formats)) != len(formats):
        raise ValueError(f"detect: formats must be distinct and non-empty, got {formats}")
    out = Path(out_dir)
    jobs: list[DetectJob] = []
    owner: dict[Path, Path] = {}
    for item in _inputs(inputs, data_root=data_root, split=split, recursive=recursive):
        base = out / item.relative
        outputs = {fmt: base.with_name(base.name + EVENT_FORMATS[fmt]) for fmt in formats}
        act = base.with_name(base.name + ACTIVATIONS_SUFFIX) if save_activations else None
        job = DetectJob(item.path, outputs, act)
        for target in job.targets:
            if target in owner:
                raise ValueError(f"two inputs would write {target}: {owner[target]} and "
                                 f"{item.path} (rename one, or pass their folder with "
                                 "--recursive to keep sub-folders apart)")
            owner[target] = item.path
        jobs.append(job)
    return jobs


@dataclass
class BatchReport:
    """What :func:`detect_batch` did.

    Attributes:
        written: ``(source, files written, number of events)`` per processed input.
        skipped: inputs whose outputs all existed (``skip_existing``).
        failed: ``(source, one-line error)`` per input that could not be processed.
    """

    written: list[tuple[Path, list[Path], int]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def n_events(self) -> int:
        return sum(n for *_, n in self.written)

    def summary(self, out_dir: str | os.PathLike) -> str:
        """One line (plus one per failure): what was written, skipped and failed."""
        parts = [f"wrote {len(self.written)} file(s) ({self.n_events} events) to {out_dir}"]
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} with existing outputs")
        if self.written and self.n_events == 0:
            parts.append("no event crossed the threshold: check the model, or lower "
                         "--threshold")
        if self.failed:
            parts.append(f"{len(self.failed)} FAILED")
        lines = ["; ".join(parts)]
        lines += [f"  failed: {msg}" for _, msg in self.failed]
        return "\n".join(lines)


def detection_metadata(detector: Detector, *, model: str | None = None) -> dict[str, Any]:
    """What made a set of detections (written into JSON outputs): model, softloc version,
    classes, frame rate, decoder, thresholds and time offsets per class, TTA, snap radius."""
    inf = detector.config.inference
    classes = list(detector.classes)
    thresholds = list(inf.class_thresholds) or [inf.threshold] * len(classes)
    offsets = list(inf.class_offsets_s) or [0.0] * len(classes)
    return {
        "model": model or "softloc pretrained drums",
        "softloc_version": __version__,
        "classes": classes,
        "frame_rate_hz": float(detector.frame_rate),
        "decoder": getattr(inf, "decoder", "threshold"),
        "thresholds": dict(zip(classes, (float(x) for x in thresholds), strict=True)),
        "time_offset_s": float(inf.time_offset_s),
        "class_offsets_s": dict(zip(classes, (float(x) for x in offsets), strict=True)),
        "tta_factors": [float(f) for f in inf.tta_factors],
        "snap_radius_s": float(getattr(inf, "snap_radius_s", 0.0)),
    }


def _events_and_probs(detector: Detector, source: Path, with_probs: bool
                      ) -> tuple[list[tuple[float, str, float]], np.ndarray | None]:
    """Events of ``source`` (as ``Detector.detect``) and, when asked, its p(t)."""
    if not with_probs:
        return detector.detect(source), None
    inf = detector.config.inference
    snap = getattr(inf, "snap_radius_s", 0.0) > 0
    signal = detector.input_stage.read(source) if snap else source  # read once, snap on it
    probs = detector.probabilities(signal)
    plain = getattr(inf, "decoder", "threshold") == "threshold" and (
        not inf.tta_factors or getattr(inf, "tta_ensemble", "mean") == "mean")
    if not plain:  # the cleaning / NW decoders do not decode the averaged p(t)
        return detector.detect(signal), probs
    found = detector.events_from_probabilities(probs)
    if snap:
        found = detector.input_stage.refine(signal, found, inf)
    events = [(max(0.0, t), detector.classes[c], s) for t, c, s in found.to_list()]
    return events, probs


def _one_line(source: Path, err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if str(source) not in text:
        text = f"{source}: {text}"
    return text if isinstance(err, ValueError | OSError) else f"{text} ({type(err).__name__})"


class _Progress:
    """``[12/40] name`` on one updating stderr line (only on a terminal unless forced)."""

    def __init__(self, total: int, enabled: bool | None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.enabled = tty if enabled is None else enabled
        self.total, self.tty, self.t0 = total, tty, time.perf_counter()

    def update(self, done: int, name: str, failed: int) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / max(done, 1) * (self.total - done)
        line = (f"detect [{done}/{self.total}] {elapsed:.0f}s, eta {eta:.0f}s"
                f"{f', {failed} failed' if failed else ''}: {name}")
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _check_targets(jobs: Sequence[DetectJob], *, overwrite: bool, skip_existing: bool
                   ) -> tuple[list[DetectJob], list[Path]]:
    todo, skipped, clash = [], [], []
    for job in jobs:
        existing = [t for t in job.targets if t.exists()]
        if skip_existing and existing and len(existing) == len(job.targets):
            skipped.append(job.source)
            continue
        if existing and not overwrite:
            clash.extend(existing)
        todo.append(job)
    if clash:
        raise FileExistsError(
            f"{clash[0]}: already exists ({len(clash)} output file(s) exist); not replacing "
            "them: pass --overwrite to replace, --skip-existing to skip inputs already done, "
            "or choose another --out"
        )
    return todo, skipped


def _is_output_error(err: BaseException, out_dir: Path) -> bool:
    """A failure of the output folder (disk full, read-only, permission): stops the batch."""
    if not isinstance(err, OSError):
        return False
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return True
    name = getattr(err, "filename", None)
    try:
        return name is not None and Path(name).resolve().is_relative_to(out_dir.resolve())
    except (OSError, ValueError):
        return False


def detect_batch(
    detector: Detector,
    jobs: Sequence[DetectJob],
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
    metadata: Mapping[str, Any] | None = None,
    pitch_map: Mapping[str, int] | None = None,
    progress: bool | None = None,
) -> BatchReport:
    """Detect events in every job's input and write its outputs (see the module docstring).

    Args:
        detector: the detector.
        jobs: from :func:`plan_outputs` (all with outputs inside ``out_dir``).
        out_dir: the output folder (created; locked while writing).
        overwrite: replace existing outputs.
        skip_existing: skip inputs whose outputs all exist (resuming a batch).
        metadata: written into JSON outputs (default :func:`detection_metadata`).
        pitch_map: drum label -> MIDI key for MIDI outputs (default: General MIDI).
        progress: a progress line on stderr: True, False, or None = when stderr is a terminal.

    Returns:
        a :class:`BatchReport`; per-file failures are in ``failed`` (nothing raised for them).

    Raises:
        FileExistsError: an output exists and neither ``overwrite`` nor ``skip_existing``
            (before any work), or ``out_dir`` is a file.
        FolderLockedError: another batch is writing into ``out_dir`` (a ``FileExistsError``;
            :func:`folder_lock` is the lock every softloc command takes).
        OSError: the output folder fails (disk full, read-only): the batch stops.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder; expected an output folder")
    todo, skipped = _check_targets(jobs, overwrite=overwrite, skip_existing=skip_existing)
    report = BatchReport(skipped=skipped)
    meta = dict(metadata) if metadata is not None else detection_metadata(detector)
    bar = _Progress(len(todo), progress)
    with folder_lock(out, command="softloc detect"):
        out.mkdir(parents=True, exist_ok=True)
        try:
            for i, job in enumerate(todo):
                try:
                    events, probs = _events_and_probs(detector, job.source,
                                                      job.activations is not None)
                    for fmt, target in job.outputs.items():
                        write_events(target, events, fmt=fmt, overwrite=overwrite,
                                     metadata={**meta, "source": job.source.name},
                                     pitch_map=pitch_map)
                    if job.activations is not None and probs is not None:
                        data = np.ascontiguousarray(probs, dtype=np.float32)
                        atomic_save(job.activations, lambda f, d=data: np.save(f, d),
                                    overwrite=overwrite)
                    report.written.append((job.source, job.targets, len(events)))
                except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                    if _is_output_error(err, out):
                        raise
                    report.failed.append((job.source, _one_line(job.source, err)))
                bar.update(i + 1, job.source.name, len(report.failed))
        finally:
            bar.close()
    return report


def detect_to_folder(
    detector: Detector,
    sources: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    fmt: str = "tsv",
    overwrite: bool = True,
) -> list[tuple[Path, int]]:
    """Detect events in each file and write ``out_dir/<stem>.txt|.json|.mid`` (the simple form
    of :func:`detect_batch`: one format, errors raised).

    Returns:
        ``[(written_path, n_events), ...]`` in input order.

    Raises:
        ValueError: unknown ``fmt``; the first per-file error, naming the file.
    """
    jobs = plan_outputs(sources, out_dir, formats=[fmt])
    report = detect_batch(detector, jobs, out_dir, overwrite=overwrite, progress=False)
    if report.failed:
        raise ValueError(report.failed[0][1])
    return [(paths[0], n) for _, paths, n in report.written]
