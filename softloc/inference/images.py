"""Images read along a Hilbert curve: the Detector's input stage for image models (LoCo §8).

An image network (``softloc.models.digits.DigitDetector``) reads the whole image at once and
returns logits ``(batch, class, time)`` over the cells of a Hilbert curve (``softloc.hilbert``):
step ``t`` is the cell ``softloc.hilbert.sequence_centres_px(image_px, granularity_px)[t]``.
:class:`HilbertImageInput` (input kind ``"hilbert-image"``) makes such a network a
:class:`softloc.inference.Detector`: ``Detector.load(RUN).detect("canvas.png")`` gives
``[(step, label, score)]`` (the "time" of an event is its curve step: the stage's frame rate is
1 step per second), and :func:`detections_px` places decoded events at their cells' centres.

Sources: a ``.npy`` file, an image file that matplotlib reads (``.png``), or an array / tensor
``(height, width)`` or ``(channel, height, width)``; values in [0, 1] (8-bit PNG values are
scaled by matplotlib; a ``.npy`` of integers is divided by 255).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from softloc.decode import Events, threshold_events
from softloc.hilbert import index_to_centre_px
from softloc.inference.detector import INPUT_STAGES, InputStage

__all__ = ["HilbertImageInput", "decode_detections", "detections_px", "read_image"]


def read_image(source: Any) -> np.ndarray:
    """An image file or array -> float32 ``(channel, height, width)`` in [0, 1].

    Raises:
        FileNotFoundError: no such file.
        ValueError: not 2-D or 3-D, empty, or values outside [0, 1] after scaling.
        TypeError: neither a path nor an array.
    """
    fn = "Detector.detect"
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image file")
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            import matplotlib.image

            try:
                array = matplotlib.image.imread(path)
            except (OSError, ValueError, SyntaxError) as err:
                raise ValueError(f"{path}: not a readable image ({err})") from None
            if array.ndim == 3:  # (H, W, RGB[A]) -> grey (1, H, W)
                array = array[..., :3].mean(axis=-1)
    elif isinstance(source, np.ndarray | torch.Tensor):
        array = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else source
    else:
        raise TypeError(f"{fn}: an image must be a file path or an array, "
                        f"got {type(source).__name__}")
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.integer):
        array = array / 255.0
    array = array.astype(np.float32)
    if array.ndim == 2:
        array = array[None]  # (H, W) -> (1, H, W)
    if array.ndim != 3 or array.size == 0:
        raise ValueError(f"{fn}: an image must be (height, width) or (channel, height, width), "
                         f"got shape {array.shape}")
    if not (np.isfinite(array).all() and array.min() >= 0.0 and array.max() <= 1.0):
        raise ValueError(f"{fn}: image values must lie in [0, 1], got "
                         f"[{array.min():g}, {array.max():g}]")
    return array


class HilbertImageInput(InputStage):
    """Image -> ``(channel, height, width)`` tensor; the network runs once per image.

    The network must be an image model with ``image_px`` and ``granularity_px`` attributes (as
    ``DigitDetector``); its output steps are the Hilbert cells.
    """

    kind = "hilbert-image"

    @property
    def frame_rate(self) -> float:
        """One curve step per "second": decoded event times are step indices."""
        return 1.0

    def read(self, source: Any) -> np.ndarray:
        return read_image(source)

    def features(self, signal: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(signal, dtype=torch.float32)

    @torch.no_grad()
    def probabilities(self, model: nn.Module, features: torch.Tensor) -> np.ndarray:
        """p(t) ``(class, steps)`` of one image ``(channel, height, width)``."""
        logits = model(features.float()[None])  # (1, C, H, W) -> (1, class, T)
        return torch.sigmoid(logits)[0].double().numpy()


def detections_px(events: Events, model: nn.Module) -> np.ndarray:
    """Pixel centres ``(n_events, 2)`` ``(row, col)`` of decoded events of an image model.

    Args:
        events: events decoded from the model's p(t) (``Detector.events_from_probabilities``).
        model: the image network (its ``image_px`` and ``granularity_px`` define the cells).
    """
    frames = np.asarray(events.frames, dtype=np.int64)
    centres = index_to_centre_px(frames, image_px=int(model.image_px),
                                 granularity_px=int(model.granularity_px))
    return np.asarray(centres, dtype=np.float64).reshape(-1, 2)


def decode_detections(
    probs: np.ndarray | torch.Tensor, *, image_px: int, granularity_px: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities of one image -> detected centres, classes and scores.

    One detection per run of consecutive curve steps with ``p > threshold``, at the run's peak
    (:func:`softloc.decode.threshold_events`), placed at the centre of that step's cell.

    Args:
        probs: ``(class, time)`` probabilities of one image.
        image_px: image side in pixels.
        granularity_px: Hilbert cell size in pixels.
        threshold: detection threshold in [0, 1).

    Returns:
        ``(centres_px (k, 2) float64 (row, col), classes (k,) int64, scores (k,) float64)``.
    """
    events = threshold_events(probs, threshold=threshold, frame_rate=1.0)
    centres = index_to_centre_px(events.frames, image_px=image_px, granularity_px=granularity_px)
    return np.asarray(centres, dtype=np.float64).reshape(-1, 2), events.classes, events.scores


INPUT_STAGES.setdefault(HilbertImageInput.kind, HilbertImageInput)
