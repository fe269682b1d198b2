"""Digit sources and canvases of randomly placed digits (LoCo §8.2).

LoCo's image experiment draws digits from MNIST, pastes them without overlap at uniformly random
positions on a blank canvas, and keeps only the number of digits of each class as the training
label. This module provides the digit sources and the canvas generator.

Conventions:

- A :class:`DigitSet` holds square grey-level digits as float32 in [0, 1], shape
  ``(n, digit_px, digit_px)``, with int64 labels in ``[0, 10)``, already split into train and test.
- Canvases are ``(n, 1, canvas_px, canvas_px)`` float32; labels are counts per class
  ``(n, n_classes)`` int64. Each digit occupies the box ``[top, top + digit_px) x [left, left +
  digit_px)``; its centre is ``(top + digit_px / 2, left + digit_px / 2)`` in the continuous pixel
  coordinates of :mod:`softloc.hilbert`, so detections at sequence centres compare directly.
- Boxes never overlap (they may touch). Positions are uniform over all placements that do not
  overlap the digits already placed (rejection sampling).

Sources:

- :func:`load_sklearn_digits`: scikit-learn's built-in 8 x 8 digits (1797 images shipped with the
  package, no download), upscaled; the default, small enough for a CPU.
- :func:`load_mnist`: MNIST from the standard IDX files in a folder the user gives, keeping
  MNIST's own train/test split. :func:`read_idx` reads one IDX file (optionally gzipped).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset

__all__ = [
    "N_DIGIT_CLASSES",
    "DigitSet",
    "Canvases",
    "CanvasStream",
    "load_sklearn_digits",
    "load_mnist",
    "read_idx",
    "make_canvases",
    "place_digits",
]

N_DIGIT_CLASSES = 10

# IDX type codes -> big-endian numpy dtypes (LeCun's MNIST page).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# (role, canonical file name); Kaggle-style names with a dot (train-images.idx3-ubyte) also work.
_MNIST_FILES = (
    ("train_images", "train-images-idx3-ubyte"),
    ("train_labels", "train-labels-idx1-ubyte"),
    ("test_images", "t10k-images-idx3-ubyte"),
    ("test_labels", "t10k-labels-idx1-ubyte"),
)


@dataclass(frozen=True)
class DigitSet:
    """Labelled square digits split into train and test.

    Attributes:
        train_images: float32 in [0, 1], ``(n_train, digit_px, digit_px)``.
        train_labels: int64 in [0, 10), ``(n_train,)``.
        test_images: float32 in [0, 1], ``(n_test, digit_px, digit_px)``.
        test_labels: int64 in [0, 10), ``(n_test,)``.
        source: where the digits came from (``"sklearn"`` or ``"mnist"``).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    @property
    def digit_px(self) -> int:
        """Side of one digit in pixels."""
        return int(self.train_images.shape[-1])


@dataclass(frozen=True)
class Canvases:
    """Canvases of non-overlapping digits with their count labels and ground-truth positions.

    Attributes:
        images: float32 in [0, 1], ``(n, 1, canvas_px, canvas_px)``.
        counts: int64 number of digits of each class, ``(n, n_classes)`` (the training label).
        centres_px: per canvas, float64 ``(k, 2)`` digit centres ``(row, col)`` in pixels.
        labels: per canvas, int64 ``(k,)`` digit classes, aligned with ``centres_px``.
        indices: per canvas, int64 ``(k,)`` index of each placed digit in the source images.
        digit_px: side of one digit in pixels.
    """

    images: np.ndarray
    counts: np.ndarray
    centres_px: list[np.ndarray]
    labels: list[np.ndarray]
    indices: list[np.ndarray]
    digit_px: int

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _resize(images: np.ndarray, digit_px: int) -> np.ndarray:
    """(n, s, s) float -> (n, digit_px, digit_px) float32 in [0, 1], bilinear (antialiased)."""
    if images.shape[-1] == digit_px:
        return np.ascontiguousarray(images, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]  # (N, 1, s, s)
    shrinking = digit_px < images.shape[-1]
    x = F.interpolate(
        x, size=(digit_px, digit_px), mode="bilinear", align_corners=False, antialias=shrinking
    )
    return x[:, 0].clamp_(0.0, 1.0).numpy()


def _check_digit_px(fn: str, digit_px: object) -> int:
    if isinstance(digit_px, bool) or not isinstance(digit_px, int):
        raise TypeError(f"{fn}: `digit_px` must be an int, got {type(digit_px).__name__}")
    if digit_px < 4:
        raise ValueError(f"{fn}: `digit_px` must be >= 4, got {digit_px}")
    return digit_px


def load_sklearn_digits(
    *, digit_px: int = 16, test_fraction: float = 0.25, seed: int = 0
) -> DigitSet:
    """scikit-learn's built-in 8 x 8 digits, upscaled, with a stratified train/test split.

    Args:
        digit_px: side of the returned digits in pixels (bilinear resampling of the 8 x 8 images;
            default 16, i.e. 2x).
        test_fraction: share of each class held out for testing, in (0, 1). Default 0.25
            (1347 train / 450 test digits).
        seed: seed of the split (the same seed always gives the same split).

    Returns:
        A :class:`DigitSet` with ``source="sklearn"``; intensities 0..16 are scaled to [0, 1].

    Raises:
        TypeError / ValueError: bad ``digit_px`` or ``test_fraction``.

    Notes:
        The set (UCI "optical recognition of handwritten digits", 1797 images) has no official
        split, so we make a stratified one; the digits of a given writer may appear on both sides.
    """
    fn = "load_sklearn_digits"
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _check_digit_px(fn, digit_px)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"{fn}: `test_fraction` must lie in (0, 1), got {test_fraction}")
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # (1797, 8, 8), 0..16 -> [0, 1]
    labels = bunch.target.astype(np.int64)
    tr_x, te_x, tr_y, te_y = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return DigitSet(
        train_images=_resize(tr_x, digit_px),
        train_labels=np.asarray(tr_y, dtype=np.int64),
        test_images=_resize(te_x, digit_px),
        test_labels=np.asarray(te_y, dtype=np.int64),
        source="sklearn",
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format), plain or gzip-compressed (``.gz``).

    The header is two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int,
    0x0D float, 0x0E double), the number of dimensions, then each dimension as a big-endian int32;
    the data follow in C order, big-endian.

    Args:
        path: the file.

    Returns:
        The array in native byte order, with the shape given by the header.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a malformed file; the message names the file, the byte offset, what was
            expected and what was found.
    """
    p = Path(path)
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rb") as fh:
                raw = fh.read()
        else:
            raw = p.read_bytes()
    except (OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        kind = "gzip-compressed IDX" if p.suffix == ".gz" else "IDX"
        raise ValueError(f"{p}: cannot read as {kind}: {exc}") from exc
    if len(raw) < 4:
        raise ValueError(
            f"{p}: expected an IDX header of at least 4 bytes, the file has {len(raw)} bytes"
        )
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{p}: byte 0: not an IDX file: expected a magic number starting with two zero bytes "
            f"(e.g. 0x00000803), got 0x{raw[:4].hex()}"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{p}: byte 2: expected an IDX type code in {{{known}}}, got 0x{code:02X}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{p}: expected {header} header bytes for {ndim} dimensions, "
            f"the file has {len(raw)} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{p}: byte {header}: expected {expected} data bytes for shape {dims} of "
            f"{dtype.name}, got {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find_mnist_file(directory: Path, name: str) -> Path:
    dotted = name.replace("-idx", ".idx")  # train-images-idx3-ubyte -> train-images.idx3-ubyte
    candidates = [name, name + ".gz", dotted, dotted + ".gz"]
    for cand in candidates:
        if (directory / cand).is_file():
            return directory / cand
    raise FileNotFoundError(
        f"load_mnist: {directory}: expected one of {', '.join(candidates)} (the standard MNIST "
        "IDX files, e.g. from yann.lecun.com or a mirror), none found"
    )


def load_mnist(directory: str | os.PathLike, *, digit_px: int = 28) -> DigitSet:
    """MNIST from the four standard IDX files in ``directory``, keeping MNIST's train/test split.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``) and also under the dotted
    names (``train-images.idx3-ubyte``). Nothing is downloaded.

    Args:
        directory: folder holding the files.
        digit_px: side of the returned digits in pixels; 28 (the default) keeps MNIST's size.

    Returns:
        A :class:`DigitSet` with ``source="mnist"``; intensities 0..255 are scaled to [0, 1].

    Raises:
        FileNotFoundError: the folder or one of the four files is missing.
        ValueError: a malformed file (the message names it), images that are not ``(n, s, s)``
            unsigned bytes, labels that are not ``(n,)`` bytes in 0..9, or image and label counts
            that differ.
    """
    fn = "load_mnist"
    _check_digit_px(fn, digit_px)
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"{fn}: `directory` {folder} is not a folder")
    arrays: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    for role, name in _MNIST_FILES:
        paths[role] = _find_mnist_file(folder, name)
        arrays[role] = read_idx(paths[role])
    for split in ("train", "test"):
        img, lab = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        img_path, lab_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if img.ndim != 3 or img.shape[1] != img.shape[2] or img.dtype != np.uint8:
            raise ValueError(
                f"{img_path}: expected square images of unsigned bytes, shape (n, s, s) with type "
                f"0x08, got shape {img.shape} of {img.dtype}"
            )
        if lab.ndim != 1 or lab.dtype != np.uint8:
            raise ValueError(
                f"{lab_path}: expected labels of unsigned bytes, shape (n,) with type 0x08, "
                f"got shape {lab.shape} of {lab.dtype}"
            )
        if lab.size and int(lab.max()) >= N_DIGIT_CLASSES:
            bad = int(np.argmax(lab >= N_DIGIT_CLASSES))
            raise ValueError(
                f"{lab_path}: item {bad}: expected a digit label in 0..9, got {int(lab[bad])}"
            )
        if img.shape[0] != lab.shape[0]:
            raise ValueError(
                f"{lab_path}: expected {img.shape[0]} labels (one per image of {img_path.name}), "
                f"got {lab.shape[0]}"
            )
    return DigitSet(
        train_images=_resize(arrays["train_images"].astype(np.float32) / 255.0, digit_px),
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=_resize(arrays["test_images"].astype(np.float32) / 255.0, digit_px),
        test_labels=arrays["test_labels"].astype(np.int64),
        source="mnist",
    )


def _check_canvas_args(
    fn: str, canvas_px: int, digit_px: int, min_digits: int, max_digits: int
) -> None:
    for name, value in (
        ("canvas_px", canvas_px),
        ("min_digits", min_digits),
        ("max_digits", max_digits),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{fn}: `{name}` must be an int, got {type(value).__name__}")
    if min_digits < 0 or max_digits < min_digits:
        raise ValueError(
            f"{fn}: need 0 <= min_digits <= max_digits, got min_digits={min_digits}, "
            f"max_digits={max_digits}"
        )
    if canvas_px < digit_px:
        raise ValueError(f"{fn}: `canvas_px` ({canvas_px}) must be >= the digit size {digit_px}")
    # Rejection sampling stalls when the boxes nearly fill the canvas; half the area is safe.
    if max_digits * digit_px**2 > canvas_px**2 // 2:
        raise ValueError(
            f"{fn}: {max_digits} digits of {digit_px} px cover more than half of a {canvas_px} px "
            "canvas; lower `max_digits` or enlarge `canvas_px`"
        )


def place_digits(
    n_digits: int, *, canvas_px: int, digit_px: int, rng: np.random.Generator
) -> np.ndarray:
    """Top-left corners of ``n_digits`` non-overlapping ``digit_px`` boxes, uniformly at random.

    Each box is drawn uniformly among the integer positions inside the canvas and redrawn while it
    overlaps a box already placed (boxes may touch). If a canvas gets stuck the whole canvas is
    redrawn.

    Returns:
        int64 ``(n_digits, 2)`` array of ``(top, left)``.

    Raises:
        RuntimeError: no placement found after many tries (only for nearly full canvases).
    """
    hi = canvas_px - digit_px + 1
    for _ in range(100):
        boxes = np.zeros((n_digits, 2), dtype=np.int64)
        placed = 0
        for _ in range(200 * max(n_digits, 1)):
            if placed == n_digits:
                break
            cand = rng.integers(0, hi, size=2)
            if placed and bool((np.abs(boxes[:placed] - cand) < digit_px).all(axis=1).any()):
                continue
            boxes[placed] = cand
            placed += 1
        if placed == n_digits:
            return boxes
    raise RuntimeError(
        f"place_digits: could not place {n_digits} digits of {digit_px} px on a {canvas_px} px "
        "canvas without overlap"
    )


def make_canvases(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_canvases: int,
    canvas_px: int,
    min_digits: int = 1,
    max_digits: int = 4,
    rng: np.random.Generator,
    n_classes: int = N_DIGIT_CLASSES,
) -> Canvases:
    """Canvases of non-overlapping digits at uniformly random positions (LoCo §8.2).

    The number of digits per canvas is uniform in ``[min_digits, max_digits]``; the digits are
    drawn uniformly with replacement from ``images``.

    Args:
        images: source digits, float in [0, 1], ``(n, digit_px, digit_px)``.
        labels: their classes, ints in ``[0, n_classes)``, ``(n,)``.
        n_canvases: number of canvases (>= 0).
        canvas_px: canvas side in pixels.
        min_digits: fewest digits on a canvas (default 1).
        max_digits: most digits on a canvas (default 4).
        rng: the numpy random generator (pass ``np.random.default_rng(seed)``).
        n_classes: number of classes of the count label (default 10).

    Returns:
        :class:`Canvases`.

    Raises:
        TypeError / ValueError: malformed digits or labels, or digits that cannot fit.
    """
    fn = "make_canvases"
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 3 or images.shape[1] != images.shape[2] or not len(images):
        raise ValueError(
            f"{fn}: `images` must have shape (n, digit_px, digit_px) with n >= 1, "
            f"got {images.shape}"
        )
    if labels.shape != images.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{fn}: `labels` must be integers of shape ({len(images)},), got {labels.dtype} "
            f"{labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"{fn}: `labels` must lie in [0, {n_classes}), got [{labels.min()}, {labels.max()}]"
        )
    if isinstance(n_canvases, bool) or not isinstance(n_canvases, int) or n_canvases < 0:
        raise ValueError(f"{fn}: `n_canvases` must be an int >= 0, got {n_canvases!r}")
    digit_px = int(images.shape[-1])
    _check_canvas_args(fn, canvas_px, digit_px, min_digits, max_digits)
    out = np.zeros((n_canvases, 1, canvas_px, canvas_px), dtype=np.float32)
    counts = np.zeros((n_canvases, n_classes), dtype=np.int64)
    centres, classes, indices = [], [], []
    for i in range(n_canvases):
        k = int(rng.integers(min_digits, max_digits + 1))
        pick = rng.integers(0, len(images), size=k)
        corners = place_digits(k, canvas_px=canvas_px, digit_px=digit_px, rng=rng)
        for j, (top, left) in zip(pick, corners, strict=True):
            out[i, 0, top : top + digit_px, left : left + digit_px] = images[j]
        np.add.at(counts[i], labels[pick], 1)
        centres.append(corners.astype(np.float64) + digit_px / 2.0)
        classes.append(labels[pick].astype(np.int64))
        indices.append(pick.astype(np.int64))
    return Canvases(
        images=out,
        counts=counts,
        centres_px=centres,
        labels=classes,
        indices=indices,
        digit_px=digit_px,
    )


class CanvasStream(IterableDataset):
    """An endless, seeded stream of training canvases ``(image (1, H, W), counts (n_classes,))``.

    A fresh canvas per item, so the training set never repeats; iterate with a
    ``torch.utils.data.DataLoader`` (``num_workers=0`` keeps the stream reproducible).

    Args:
        images, labels, canvas_px, min_digits, max_digits, n_classes: as in :func:`make_canvases`.
        seed: seed of the stream; every ``iter()`` restarts it.
        chunk: canvases generated at a time (an implementation detail; no effect on the values).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        canvas_px: int,
        min_digits: int = 1,
        max_digits: int = 4,
        seed: int = 0,
        n_classes: int = N_DIGIT_CLASSES,
        chunk: int = 256,
    ) -> None:
        super().__init__()
        self.images = np.asarray(images, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        # Validate once, up front, with the same checks as make_canvases.
        make_canvases(
            self.images,
            self.labels,
            n_canvases=0,
            canvas_px=canvas_px,
            min_digits=min_digits,
            max_digits=max_digits,
            rng=np.random.default_rng(0),
            n_classes=n_classes,
        )
        self.canvas_px = canvas_px
        self.min_digits = min_digits
        self.max_digits = max_digits
        self.seed = seed
        self.n_classes = n_classes
        self.chunk = chunk

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng(self.seed)
        while True:
            c = make_canvases(
                self.images,
                self.labels,
                n_canvases=self.chunk,
                canvas_px=self.canvas_px,
                min_digits=self.min_digits,
                max_digits=self.max_digits,
                rng=rng,
                n_classes=self.n_classes,
            )
            images = torch.from_numpy(c.images)
            counts = torch.from_numpy(c.counts)
            for i in range(len(c)):
                yield images[i], counts[i]
