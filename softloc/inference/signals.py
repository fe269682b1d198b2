"""Time series: the Detector's input stage of the sensor networks (``softloc.models.sensor``).

:class:`SignalInput` (input kind ``"signal"``) makes a run trained on a signal dataset
(``softloc train --preset ecg|puffs`` on ``ROOT/signals/``) a :class:`softloc.inference.Detector`:
``Detector.load(RUN).detect("rec/100.hea")`` gives ``[(seconds, label, score)]``.

Sources: a signal file (WFDB record ``.hea``, ``.npy`` + ``.json``, ``.npz``, ``.csv``; see
:func:`softloc.data.signals.read_signal`), a :class:`softloc.data.signals.Signal`, or an
``(array, rate_hz)`` tuple with ``array`` ``(channel, samples)`` or ``(samples,)``.

Pipeline: the signal is resampled to the run's rate, normalised per channel and framed
(:func:`softloc.data.signal_store.signal_features`, exactly as in training); overlapping windows
of ``data.window_s`` every ``inference.hop_s`` go through the network and are overlap-averaged
(:func:`softloc.inference.detector.file_probabilities`) at the network's frame rate
``features.sample_rate / features.hop_length``.

Sub-frame timing: when a frame spans several samples (``hop_length > 1``, the raw-signal
network), p(t) is interpolated to the signal's own rate with a cubic spline through the frame
centres (clipped to [0, 1]), so that the decoder's peak of each run above the threshold lies
between frames where the network's mass does (a 20 frames/s network has frames 50 ms apart; a
beat detected at its frame would be up to 25 ms off before any error of the network). The
stage's ``frame_rate`` is then the signal rate. Feature-step networks (``hop_length = 1``) keep
their steps.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from softloc.config import InferenceConfig
from softloc.data.signal_store import signal_features, time_scale, unframe_signal
from softloc.data.signals import Signal, read_signal
from softloc.decode import Events
from softloc.decode.events import suppress_close
from softloc.decode.refine import snap_to_signal_peaks
from softloc.inference.detector import INPUT_STAGES, InputStage, file_probabilities
from softloc.models.sensor import INPUT_ARGS
from softloc.timebase import duration_frames

__all__ = ["SignalInput", "read_signal_source", "upsample_probabilities"]


def read_signal_source(source: Any) -> Signal:
    """A signal file, a :class:`Signal` or an ``(array, rate_hz)`` tuple -> :class:`Signal`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a bad array or rate (``SignalError`` for a bad file).
        TypeError: anything else.
    """
    fn = "Detector.detect"
    if isinstance(source, Signal):
        return source
    if isinstance(source, str | os.PathLike):
        return read_signal(source)
    if isinstance(source, tuple) and len(source) == 2:
        array, rate = source
        data = np.atleast_2d(np.asarray(array, dtype=np.float32))
        if data.ndim != 2 or data.size == 0 or not np.isfinite(data).all():
            raise ValueError(f"{fn}: a signal array must be finite, (channel, samples) or "
                             f"(samples,), got shape {np.shape(array)}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"{fn}: `rate_hz` must be a number > 0, got {rate!r}")
        return Signal(data, float(rate), tuple(f"ch{i}" for i in range(data.shape[0])))
    raise TypeError(f"{fn}: a signal must be a file path, a Signal or an (array, rate_hz) "
                    f"tuple, got {type(source).__name__}")


def upsample_probabilities(probs: np.ndarray, factor: int) -> np.ndarray:
    """p(t) ``(class, frames)`` at ``factor`` times the frame rate: a cubic spline through the
    frames (frame ``j`` at ``j``, new sample ``i`` at ``i / factor``), clipped to [0, 1].

    Returns:
        float64 ``(class, frames * factor)``; ``probs`` itself when ``factor`` is 1 or there are
        fewer than 4 frames.
    """
    if factor == 1 or probs.shape[-1] < 4:
        return probs
    from scipy.interpolate import CubicSpline

    frames = probs.shape[-1]
    grid = np.arange(frames * factor) / factor
    spline = CubicSpline(np.arange(frames), probs, axis=-1, bc_type="natural")
    return np.clip(spline(np.minimum(grid, frames - 1)), 0.0, 1.0)


class SignalInput(InputStage):
    """Signal -> framed, normalised signal ``(channel * hop_length, frames)`` (kind
    ``"signal"``); see the module docstring."""

    kind = "signal"

    @property
    def hop(self) -> int:
        """Signal samples per network frame (``features.hop_length``)."""
        return int(self.config.features.hop_length)

    @property
    def network_frame_rate(self) -> float:
        """Frames per second of the network's output."""
        return float(self.config.features.frame_rate)

    @property
    def frame_rate(self) -> float:
        """Frames per second of p(t): the signal rate for raw-signal networks (interpolated),
        the network's for feature steps."""
        return self.network_frame_rate * self.hop

    def _n_channels(self) -> int | None:
        arg = INPUT_ARGS.get(self.config.model.name)
        return None if arg is None else self.config.model.args.get(arg)

    def read(self, source: Any) -> Signal:
        return read_signal_source(source)

    def features(self, signal: Signal) -> torch.Tensor:
        x = signal_features(signal, self.config.features, n_channels=self._n_channels())
        return torch.from_numpy(x)

    def speed_up(self, signal: Signal, factor: float) -> Signal:
        return Signal(time_scale(signal.data, factor), signal.rate_hz, signal.channels,
                      signal.units, signal.source)

    def probabilities(self, model: nn.Module, features: torch.Tensor) -> np.ndarray:
        """p(t) ``(class, frames * hop)``: windows of ``data.window_s`` every ``inference.hop_s``
        at the network's frame rate, then interpolated to the signal rate."""
        cfg = self.config
        w = duration_frames(cfg.data.window_s, self.network_frame_rate)
        hop = min(duration_frames(cfg.inference.hop_s, self.network_frame_rate), w)
        probs = file_probabilities(model, torch.as_tensor(features), window_frames=w,
                                   hop_frames=hop, batch_size=cfg.inference.batch_size)
        return upsample_probabilities(probs, self.hop)

    def signal_of_features(self, features: torch.Tensor) -> Signal:
        """The normalised signal at the run's rate, from its framed network input (the snap
        subtracts a moving average, so the normalisation does not move a peak)."""
        x = unframe_signal(np.asarray(features, dtype=np.float32), self.hop)
        return Signal(x, float(self.config.features.sample_rate),
                      tuple(f"ch{i}" for i in range(x.shape[0])))

    def refine(self, signal: Signal, events: Events, settings: InferenceConfig) -> Events:
        """``events`` with each time moved to ``signal``'s extremum within
        ``settings.snap_radius_s`` (:func:`softloc.decode.refine.snap_to_signal_peaks` on
        channel ``settings.snap_channel`` at the signal's own rate); per class, moved events
        closer than ``settings.min_distance_s`` (at least 2 frames) merge into the one with the
        higher score (the decoder's rule, :func:`softloc.decode.events.suppress_close`).

        Raises:
            ValueError: ``settings.snap_channel`` is not a channel of ``signal`` (naming the
                source).
        """
        inf = settings
        if inf.snap_channel >= signal.n_channels:
            raise ValueError(f"{signal.source or 'signal'}: inference.snap_channel is "
                             f"{inf.snap_channel}, but the signal has {signal.n_channels} "
                             f"channel(s) {list(signal.channels)}")
        if len(events) == 0:
            return events
        moved = snap_to_signal_peaks(events.times_s, signal.data, signal.rate_hz,
                                     radius_s=inf.snap_radius_s, smooth_s=inf.snap_smooth_s,
                                     direction=inf.snap_direction, channel=inf.snap_channel)
        offset = events.times_s - events.frames / events.frame_rate  # each event's own offset
        frames = np.round((moved - offset) * events.frame_rate).astype(np.int64)
        # Moved events may now sit closer than the decoder's minimum distance (two triggers of
        # one beat both land on its R peak): the rule runs again, the higher score wins.
        min_distance = max(2, duration_frames(inf.min_distance_s, events.frame_rate))
        keep = np.zeros(len(events), dtype=bool)
        for c in np.unique(events.classes):
            idx = np.flatnonzero(events.classes == c)
            idx = idx[np.argsort(frames[idx], kind="stable")]
            keep[idx] = suppress_close(frames[idx], events.scores[idx], min_distance)
        kept = np.flatnonzero(keep)
        kept = kept[np.lexsort((events.classes[kept], moved[kept]))]
        return replace(events, frames=frames[kept], classes=events.classes[kept],
                       scores=events.scores[kept], times_s=moved[kept])

    def window_probabilities(self, model: nn.Module, features: torch.Tensor
                             ) -> tuple[np.ndarray, np.ndarray, int]:
        if self.hop > 1:
            raise ValueError("Detector: the cleaning decoder and NW ensembling work on frames of "
                             "p(t); a raw-signal run interpolates p(t) between frames, so use "
                             "inference.decoder=threshold and inference.tta_ensemble=mean")
        return super().window_probabilities(model, features)


INPUT_STAGES.setdefault(SignalInput.kind, SignalInput)
