"""The MS-TCN folder layout of action-segmentation datasets (50Salads, GTEA, Breakfast).

Layout (as distributed with MS-TCN, Farha & Gall 2019, and used by most later work)::

    ROOT/
      mapping.txt                  "<index> <class name>" per line, indices 0..C-1
      features/<video>.npy         float array (feature, time), e.g. (2048, T) I3D features
      groundTruth/<video>.txt      one class name per frame, T lines
      splits/train.split<k>.bundle "<video>.txt" per line (the training videos of fold k)
      splits/test.split<k>.bundle  the test videos of fold k

Conventions:
    * Features are ``(feature, time)`` float32, labels ``(time,)`` int64 class indices into
      :attr:`MSTCNDataset.classes` (the order of ``mapping.txt``).
    * ``frame_rate`` is the rate of the feature files (the MS-TCN features of 50Salads and
      GTEA are 15 fps; Lea et al.'s 50Salads features 30 fps); nothing in the files says it, so
      the caller gives it. ``subsample = k`` keeps every k-th frame of features and labels (as
      MS-TCN's ``sample_rate``), so the dataset's ``frame_rate`` is ``frame_rate / k``.
    * A video name is the file name without ``.txt`` / ``.npy``.

Errors name the file and, for text files, the line (``groundTruth/rgb-01-1.txt:17: unknown
class 'cut_tomatoe'; ...``), as :class:`softloc.data.formats.DatasetError`. Every writer goes
through :mod:`softloc._io` (atomic, umask kept) and refuses to overwrite unless asked.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softloc._checks import check_choice, check_frame_rate, check_int
from softloc._io import atomic_save, atomic_write_text
from softloc.data.formats import DatasetError

__all__ = [
    "MSTCNDataset",
    "MSTCNVideo",
    "list_splits",
    "load_mstcn",
    "read_bundle",
    "read_features",
    "read_ground_truth",
    "read_mapping",
    "write_mstcn",
]

_SUBSETS = ("train", "test", "all")
_BUNDLE = re.compile(r"^(?P<subset>train|test)\.split(?P<k>\d+)\.bundle$")


@dataclass(frozen=True)
class MSTCNVideo:
    """One video: ``features`` ``(feature, time)`` float32 and ``labels`` ``(time,)`` int64."""

    name: str
    features: np.ndarray
    labels: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class MSTCNDataset:
    """Videos of one subset of an MS-TCN root, with the class names and the frame rate.

    Attributes:
        root: the dataset folder.
        classes: class names in index order (``mapping.txt``).
        videos: the videos, in bundle order (sorted by name for ``subset="all"``).
        frame_rate: frames per second of ``features``/``labels`` after subsampling.
        split: the fold number, or None for ``subset="all"``.
        subset: ``"train"``, ``"test"`` or ``"all"``.
    """

    root: Path
    classes: tuple[str, ...]
    videos: tuple[MSTCNVideo, ...]
    frame_rate: float
    split: int | None
    subset: str

    @property
    def n_features(self) -> int:
        return int(self.videos[0].features.shape[0]) if self.videos else 0


def _err(path: Path | str, line: int | None, msg: str) -> DatasetError:
    return DatasetError(f"{path}:{line}: {msg}" if line is not None else f"{path}: {msg}")


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise _err(path, None, "missing file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise _err(path, None, f"not UTF-8 text ({err})") from None


def read_mapping(path: str | os.PathLike) -> tuple[str, ...]:
    """Read ``mapping.txt``: ``<index> <name>`` per line, indices 0..C-1 in any order.

    Blank lines are skipped. Names may not contain whitespace (they are matched against the
    per-frame names of ``groundTruth``).

    Returns:
        The class names ordered by index.

    Raises:
        DatasetError: a line that is not ``<int> <name>``, a repeated index or name, indices
            that are not 0..C-1, or an empty file.
    """
    path = Path(path)
    by_index: dict[int, str] = {}
    seen: dict[str, int] = {}
    for n, text in enumerate(_lines(path), start=1):
        if not text.strip():
            continue
        parts = text.split()
        if len(parts) != 2 or not re.fullmatch(r"\d+", parts[0]):
            raise _err(path, n, f"expected '<index> <class name>', got {text!r}")
        index, name = int(parts[0]), parts[1]
        if index in by_index:
            raise _err(path, n, f"index {index} repeated (first given to {by_index[index]!r})")
        if name in seen:
            raise _err(path, n, f"class {name!r} repeated (first on line {seen[name]})")
        by_index[index], seen[name] = name, n
    if not by_index:
        raise _err(path, None, "no classes; expected '<index> <class name>' lines")
    missing = sorted(set(range(len(by_index))) - set(by_index))
    if missing:
        raise _err(
            path, None, f"indices must be 0..{len(by_index) - 1}; missing {missing[:5]}"
        )
    return tuple(by_index[i] for i in range(len(by_index)))


def read_ground_truth(path: str | os.PathLike, classes: Sequence[str]) -> np.ndarray:
    """Read ``groundTruth/<video>.txt``: one class name per frame -> ``(time,)`` int64 indices.

    Surrounding whitespace of a line is ignored; trailing blank lines are allowed, blank lines
    between frames are not (they would silently shift every later frame).

    Raises:
        DatasetError: an unknown class name (file and line), a blank frame line, no frames.
    """
    path = Path(path)
    index = {name: i for i, name in enumerate(classes)}
    lines = _lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise _err(path, None, "no frames; expected one class name per line")
    out = np.empty(len(lines), dtype=np.int64)
    for n, text in enumerate(lines, start=1):
        name = text.strip()
        if not name:
            raise _err(path, n, "blank line between frames; expected a class name per frame")
        if name not in index:
            known = ", ".join(list(index)[:6]) + (", ..." if len(index) > 6 else "")
            raise _err(path, n, f"unknown class {name!r}; mapping.txt has {known}")
        out[n - 1] = index[name]
    return out


def read_bundle(path: str | os.PathLike) -> list[str]:
    """Read a split bundle: ``<video>.txt`` (or ``<video>``) per line -> video names.

    Raises:
        DatasetError: a line with whitespace inside the name, or a repeated video.
    """
    path = Path(path)
    names: list[str] = []
    first: dict[str, int] = {}
    for n, text in enumerate(_lines(path), start=1):
        entry = text.strip()
        if not entry:
            continue
        if len(entry.split()) != 1:
            raise _err(path, n, f"expected one '<video>.txt' per line, got {text!r}")
        name = entry[:-4] if entry.endswith(".txt") else entry
        if name in first:
            raise _err(path, n, f"video {name!r} repeated (first on line {first[name]})")
        first[name] = n
        names.append(name)
    return names


def read_features(path: str | os.PathLike) -> np.ndarray:
    """Read ``features/<video>.npy`` -> ``(feature, time)`` float32.

    Raises:
        DatasetError: missing or unreadable file, not 2-D, not floating point, NaN or inf.
    """
    path = Path(path)
    if not path.is_file():
        raise _err(path, None, "missing feature file")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise _err(path, None, f"not a readable .npy array ({err})") from None
    if arr.ndim != 2:
        raise _err(path, None, f"expected a (feature, time) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise _err(path, None, f"expected floating-point features, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise _err(path, None, "features contain NaN or inf")
    return arr.astype(np.float32, copy=False)


def list_splits(root: str | os.PathLike) -> list[int]:
    """Fold numbers k that have both ``splits/train.split<k>.bundle`` and ``test.split<k>``."""
    folder = Path(root) / "splits"
    found: dict[str, set[int]] = {"train": set(), "test": set()}
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _BUNDLE.match(entry.name)
            if match:
                found[match["subset"]].add(int(match["k"]))
    return sorted(found["train"] & found["test"])


def _load_video(root: Path, name: str, classes: Sequence[str], tolerance: int,
                listed_in: str) -> MSTCNVideo:
    feat_path = root / "features" / f"{name}.npy"
    if not feat_path.is_file():
        raise _err(feat_path, None, f"missing feature file (video listed in {listed_in})")
    features = read_features(feat_path)
    labels = read_ground_truth(root / "groundTruth" / f"{name}.txt", classes)
    diff = features.shape[1] - labels.shape[0]
    if abs(diff) > tolerance:
        raise _err(
            root / "groundTruth" / f"{name}.txt", None,
            f"{labels.shape[0]} frame labels, but {feat_path} has {features.shape[1]} frames "
            f"(shape {features.shape}); allowed difference: {tolerance} (length_tolerance)",
        )
    n = min(features.shape[1], labels.shape[0])
    return MSTCNVideo(name, features[:, :n], labels[:n])


def load_mstcn(
    root: str | os.PathLike,
    *,
    split: int | None = None,
    subset: str = "train",
    frame_rate: float = 30.0,
    subsample: int = 1,
    length_tolerance: int = 0,
) -> MSTCNDataset:
    """Load one subset of an MS-TCN dataset folder.

    Args:
        root: the dataset folder (``mapping.txt``, ``features/``, ``groundTruth/``, ``splits/``).
        split: fold number k of ``splits/{train,test}.split<k>.bundle``; required unless
            ``subset="all"``.
        subset: ``"train"``, ``"test"``, or ``"all"`` (every video of ``groundTruth/``).
        frame_rate: frames per second of the feature files (> 0).
        subsample: keep every ``subsample``-th frame (>= 1), starting with frame 0.
        length_tolerance: frames by which features and labels may differ in length; the
            longer one is then cropped. Default 0: any difference is an error.

    Returns:
        An :class:`MSTCNDataset` at ``frame_rate / subsample`` frames per second.

    Raises:
        DatasetError: a malformed or missing file (named, with the line for text files).
        ValueError: bad arguments, an unknown split (the message lists the folds found).
    """
    fn = "load_mstcn"
    root = Path(root)
    check_choice(fn, "subset", subset, _SUBSETS)
    rate = check_frame_rate(fn, frame_rate)
    step = check_int(fn, "subsample", subsample, minimum=1)
    tolerance = check_int(fn, "length_tolerance", length_tolerance, minimum=0)
    classes = read_mapping(root / "mapping.txt")
    if subset == "all":
        folder = root / "groundTruth"
        if not folder.is_dir():
            raise _err(folder, None, "missing folder of per-frame labels")
        names = sorted(p.stem for p in folder.glob("*.txt"))
        listed_in = str(folder)
        split = None
    else:
        if split is None:
            raise ValueError(f"{fn}: `split` is required for subset={subset!r}")
        split = check_int(fn, "split", split, minimum=0)
        bundle = root / "splits" / f"{subset}.split{split}.bundle"
        if not bundle.is_file():
            raise ValueError(
                f"{fn}: no split {split} in {root / 'splits'} (missing {bundle.name}); folds "
                f"found: {list_splits(root) or 'none'}"
            )
        names = read_bundle(bundle)
        listed_in = str(bundle)
    videos = []
    for name in names:
        video = _load_video(root, name, classes, tolerance, listed_in)
        if step > 1:
            video = MSTCNVideo(name, video.features[:, ::step].copy(), video.labels[::step].copy())
        videos.append(video)
    dims = {v.features.shape[0] for v in videos}
    if len(dims) > 1:
        raise _err(root / "features", None, f"videos have different feature sizes {sorted(dims)}")
    return MSTCNDataset(root, classes, tuple(videos), rate / step, split, subset)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def write_mstcn(
    root: str | os.PathLike,
    *,
    classes: Sequence[str],
    videos: Sequence[MSTCNVideo],
    splits: Mapping[int, Sequence[str]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write videos in the MS-TCN layout (the inverse of :func:`load_mstcn`).

    Args:
        root: the dataset folder (created if missing).
        classes: class names in index order (no whitespace, unique).
        videos: the videos; their labels index ``classes``.
        splits: fold number -> names of the *test* videos of that fold; the training bundle of
            a fold lists every other video. None writes no splits.
        overwrite: replace existing files (default: refuse with ``FileExistsError``).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: bad class names, labels outside ``classes``, features and labels of
            different lengths, repeated video names, unknown videos in ``splits``.
        FileExistsError: a file exists and ``overwrite`` is False.
    """
    fn = "write_mstcn"
    root = Path(root)
    names = [v.name for v in videos]
    if len(set(names)) != len(names):
        raise ValueError(f"{fn}: `videos` has repeated names")
    if len(set(classes)) != len(classes) or any(not c or len(c.split()) != 1 for c in classes):
        raise ValueError(f"{fn}: `classes` must be unique names without whitespace, got {classes}")
    for v in videos:
        if v.features.ndim != 2 or v.labels.ndim != 1 or v.features.shape[1] != v.labels.size:
            raise ValueError(
                f"{fn}: video {v.name!r} needs features (feature, time) and labels (time,) of "
                f"equal time, got {v.features.shape} and {v.labels.shape}"
            )
        if v.labels.size and (v.labels.min() < 0 or v.labels.max() >= len(classes)):
            raise ValueError(f"{fn}: video {v.name!r} has labels outside 0..{len(classes) - 1}")
    for k, test in (splits or {}).items():
        unknown = sorted(set(test) - set(names))
        if unknown:
            raise ValueError(f"{fn}: split {k} names unknown videos {unknown[:5]}")
    mapping = "".join(f"{i} {c}\n" for i, c in enumerate(classes))
    atomic_write_text(root / "mapping.txt", mapping, overwrite=overwrite)
    for v in videos:
        data = _npy_bytes(np.ascontiguousarray(v.features, dtype=np.float32))
        atomic_save(root / "features" / f"{v.name}.npy", lambda f, d=data: f.write(d),
                    overwrite=overwrite)
        text = "".join(f"{classes[i]}\n" for i in v.labels.tolist())
        atomic_write_text(root / "groundTruth" / f"{v.name}.txt", text, overwrite=overwrite)
    for k, test in (splits or {}).items():
        test_set = set(test)
        train = [n for n in names if n not in test_set]
        for subset, members in (("train", train), ("test", [n for n in names if n in test_set])):
            atomic_write_text(
                root / "splits" / f"{subset}.split{k}.bundle",
                "".join(f"{n}.txt\n" for n in members),
                overwrite=overwrite,
            )
    return root
