"""Time-series signals as network input: framing, normalisation, and the store of training runs.

A signal run (``model.name`` ``signal-crnn`` / ``fc-lstm``, ``softloc.models.sensor``) reads a
dataset whose ``ROOT/signals/`` hold time series (``softloc.data.layout``, kind ``"signal"``).
Its *features* are the signal itself, per-channel normalised and cut into frames of
``hop = features.hop_length`` samples (:func:`signal_features`)::

    features[c * hop + k, j] = normalised[c, j * hop + k]    (channel*hop, frames)

so the network's input and output share one time axis at ``frame_rate = features.sample_rate /
hop`` frames per second, and everything built for power mels — training windows
(:class:`softloc.data.windows.WindowDataset`), frame targets, overlapping inference windows
(:class:`softloc.inference.Detector`) — serves signals unchanged. :class:`SignalStore` has the
interface of :class:`softloc.data.windows.FeatureStore`.

Conventions:
    * The run's signal rate is ``features.sample_rate`` (Hz). A file within 1 % of it is used as
      it is; another rate is resampled to it (``scipy.signal.resample_poly``), so one model reads
      records of any PhysioNet database.
    * Normalisation (:data:`NORMALIZE`): per file and channel, median and interquartile range
      (``softloc.data.signals.channel_stats(method="robust")``): no labels, the same at training
      and at inference, insensitive to artefacts.
    * A *rate factor* ``s`` plays the signal ``s`` times faster (linear interpolation of the
      normalised samples): an event at ``t`` s lies at ``t / s``, as for audio
      (``softloc.data.windows``). For ECG, factors model other heart rates.
    * Renditions (``data.augment_renditions``): copies of each training file through
      :func:`augment_signal` — a time factor (``augment.rate_range`` with ``p_rate`` or
      ``augment.stretch_range`` with ``p_stretch``), a gain (``augment.gain_db``) and white noise
      at ``augment.snr_db`` with ``p_noise``, a polarity inversion with ``p_invert``; pitch, EQ
      and reverb (audio steps) do not apply.
      Rendition ``k`` of a stem is a function of ``(seed, stem, k)``.
    * Windows in seconds (:func:`window_bounds`, :func:`cut_windows`) are cut at whole samples
      (``round(seconds * rate_hz)``).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from softloc._checks import check_real
from softloc.data.augment import AugmentSettings
from softloc.data.layout import DatasetIndex
from softloc.data.signals import Signal, SignalError, normalize_channels, read_signal
from softloc.data.windows import FeatureStore
from softloc.features import FrontEndConfig

__all__ = [
    "NORMALIZE",
    "SignalStore",
    "augment_signal",
    "cut_windows",
    "frame_signal",
    "prepare_signal_store",
    "resample_signal",
    "signal_features",
    "time_scale",
    "unframe_signal",
    "window_bounds",
]

#: Per-file, per-channel normalisation of every signal run (``softloc.data.signals``).
NORMALIZE = "robust"
_RATE_TOLERANCE = 0.01


def frame_signal(x: np.ndarray, hop: int) -> np.ndarray:
    """Cut ``x`` ``(channel, samples)`` into frames of ``hop`` samples, zero-padded at the end.

    Returns:
        float32 ``(channel * hop, ceil(samples / hop))`` with ``out[c * hop + k, j] =
        x[c, j * hop + k]``.

    Raises:
        ValueError: ``x`` not 2-D, or ``hop`` < 1.
    """
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(f"frame_signal: `x` must be a 2-D array (channel, samples), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if isinstance(hop, bool) or not isinstance(hop, int | np.integer) or hop < 1:
        raise ValueError(f"frame_signal: `hop` must be an int >= 1, got {hop!r}")
    c, n = x.shape
    frames = -(-n // hop)
    padded = np.zeros((c, frames * hop), dtype=np.float32)
    padded[:, :n] = x
    # (C, T*hop) -> (C, T, hop) -> (C, hop, T) -> (C*hop, T)
    return np.ascontiguousarray(padded.reshape(c, frames, hop).transpose(0, 2, 1)
                                .reshape(c * hop, frames))


def unframe_signal(features: np.ndarray, hop: int) -> np.ndarray:
    """The inverse of :func:`frame_signal`: ``(channel * hop, frames)`` -> ``(channel,
    frames * hop)`` (the end padding included)."""
    if features.ndim != 2 or features.shape[0] % hop:
        raise ValueError(f"unframe_signal: `features` must be (channel * {hop}, frames), got "
                         f"shape {features.shape}")
    c, t = features.shape[0] // hop, features.shape[1]
    return features.reshape(c, hop, t).transpose(0, 2, 1).reshape(c, t * hop)


def resample_signal(x: np.ndarray, rate_hz: float, target_hz: float) -> np.ndarray:
    """``x`` ``(channel, samples)`` from ``rate_hz`` to ``target_hz`` (polyphase, the rate ratio
    approximated by a fraction with denominator <= 1000); unchanged within 1 %."""
    if abs(rate_hz - target_hz) <= _RATE_TOLERANCE * max(rate_hz, target_hz):
        return x
    from scipy.signal import resample_poly

    ratio = Fraction(target_hz / rate_hz).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=1).astype(np.float32)


def time_scale(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` ``(channel, samples)`` played ``factor`` times faster: ``round(samples / factor)``
    samples, sample ``i`` taken (linearly interpolated) at original sample ``i * factor``."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"time_scale: `factor` must be a finite number > 0, got {factor!r}")
    if factor == 1.0:
        return x
    n = x.shape[1]
    m = max(1, int(round(n / factor)))
    pos = np.minimum(np.arange(m) * factor, n - 1)
    src = np.arange(n)
    return np.stack([np.interp(pos, src, row) for row in x]).astype(np.float32)


def signal_features(signal: Signal, cfg: FrontEndConfig, *, n_channels: int | None = None,
                    factor: float = 1.0) -> np.ndarray:
    """The network input of a whole signal: resampled to ``cfg.sample_rate``, normalised per
    channel (:data:`NORMALIZE`), played at rate ``factor``, framed by ``cfg.hop_length``.

    Args:
        signal: the signal (``softloc.data.signals.read_signal``).
        cfg: the run's ``features`` (``sample_rate``: the signal rate in Hz; ``hop_length``:
            samples per frame).
        n_channels: the channels the network reads (checked; None: any).
        factor: rate factor (see the module docstring).

    Returns:
        float32 ``(channel * hop_length, frames)``.

    Raises:
        SignalError: the signal has another number of channels than the network reads.
    """
    x = _normalised(signal, cfg, n_channels)
    return frame_signal(time_scale(x, factor), cfg.hop_length)


def _normalised(signal: Signal, cfg: FrontEndConfig, n_channels: int | None) -> np.ndarray:
    """The signal at ``cfg.sample_rate``, normalised per channel, ``(channel, samples)``."""
    if n_channels is not None and signal.n_channels != n_channels:
        raise SignalError(f"{signal.source or 'signal'}: {signal.n_channels} channel(s) "
                          f"{list(signal.channels)}, but the network reads {n_channels}; select "
                          "the channels when importing the data")
    x = resample_signal(signal.data, signal.rate_hz, float(cfg.sample_rate))
    return normalize_channels(x, method=NORMALIZE)


def augment_signal(x: np.ndarray, *, rng: np.random.Generator,
                   settings: AugmentSettings) -> tuple[np.ndarray, float]:
    """One random rendition of a normalised signal ``(channel, samples)``.

    Steps, each as ``settings`` says: a time factor ``s`` (U[``stretch_range``) with
    ``p_stretch``, else U[``rate_range``) with ``p_rate``; the signal plays ``s`` times faster),
    a gain U[``gain_db``) dB, white noise at an SNR of U[``snr_db``) dB with ``p_noise``, and a
    polarity inversion (x -> -x) with ``p_invert`` (no draw when it is 0).

    Returns:
        ``(x, time_factor)``: original time = new time x ``time_factor``.
    """
    factor = 1.0
    if rng.random() < settings.p_stretch:
        factor = float(rng.uniform(*settings.stretch_range))
    elif rng.random() < settings.p_rate:
        factor = float(rng.uniform(*settings.rate_range))
    y = time_scale(x, factor)
    y = y * np.float32(10 ** (rng.uniform(*settings.gain_db) / 20))
    if rng.random() < settings.p_noise:
        power = float(np.mean(y.astype(np.float64) ** 2)) or 1.0
        snr = rng.uniform(*settings.snr_db)
        y = y + rng.normal(0.0, math.sqrt(power / 10 ** (snr / 10)), y.shape).astype(np.float32)
    if settings.p_invert > 0 and rng.random() < settings.p_invert:
        y = -y
    return y.astype(np.float32), factor


@dataclass
class SignalStore(FeatureStore):
    """Framed signals ``(channel * hop, frames)`` float32 per ``(stem, rate factor)``, in the
    fields of :class:`softloc.data.windows.FeatureStore` (``mels`` holds the framed signals), so
    that the window datasets serve both; built by :func:`prepare_signal_store`."""


def prepare_signal_store(index: DatasetIndex, cfg: FrontEndConfig, *, stems: Sequence[str],
                         rate_factors: Sequence[float] = (1.0,), n_channels: int | None = None,
                         augment: AugmentSettings | None = None, renditions: int = 0,
                         augment_stems: Sequence[str] = (), seed: int = 0) -> SignalStore:
    """Read, normalise and frame the signals of ``stems`` at every rate factor, plus
    ``renditions`` augmented copies of each of ``augment_stems`` (:func:`augment_signal`).

    Raises:
        ValueError: unknown stems, a bad ``renditions``; signal errors name the file.
    """
    fn = "prepare_signal_store"
    unknown = sorted(set(stems) - set(index.stems))
    if unknown:
        raise ValueError(f"{fn}: unknown stems {unknown[:5]}; expected stems of {index.root}")
    if isinstance(renditions, bool) or not isinstance(renditions, int) or renditions < 0:
        raise ValueError(f"{fn}: `renditions` must be an int >= 0, got {renditions!r}")
    factors = tuple(float(f) for f in rate_factors)
    settings = augment if augment is not None else AugmentSettings()
    store = SignalStore(cfg=cfg, rate_factors=factors, mels={})
    t0 = time.perf_counter()
    for stem in stems:
        x = _normalised(read_signal(index.source_paths[stem]), cfg, n_channels)
        for f in factors:
            store.mels[(stem, f)] = frame_signal(time_scale(x, f), cfg.hop_length)
            store.n_computed += 1
        if stem in set(augment_stems) and renditions:
            copies = []
            for k in range(renditions):
                rng = np.random.default_rng([int(seed), zlib.crc32(stem.encode()), k])
                y, tf = augment_signal(x, rng=rng, settings=settings)
                copies.append((tf, frame_signal(y, cfg.hop_length)))
            store.renditions[stem] = copies
            store.n_computed += renditions
    store.seconds_computing = time.perf_counter() - t0
    return store


def window_bounds(n_samples: int, rate_hz: float, *, window_s: float,
                  hop_s: float | None = None) -> np.ndarray:
    """Sample bounds of windows ``[k * hop_s, k * hop_s + window_s)`` covering a signal.

    Windows start at ``round(k * hop_s * rate_hz)`` and hold ``round(window_s * rate_hz)``
    samples; the last window starts before the end and is cut at ``n_samples`` (so every sample
    lies in some window). A signal shorter than one window gives one window ``[0, n_samples)``.

    Args:
        n_samples: length of the signal in samples (>= 1).
        rate_hz: sampling rate in Hz.
        window_s: window length in seconds (> 0, at least one sample).
        hop_s: hop in seconds (> 0; default ``window_s``: back-to-back windows).

    Returns:
        int64 ``(n_windows, 2)`` rows ``(start, stop)``.

    Raises:
        ValueError: non-positive arguments, or a window shorter than one sample.
    """
    fn = "window_bounds"
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
            or n_samples < 1:
        raise ValueError(f"{fn}: `n_samples` must be an int >= 1, got {n_samples!r}")
    rate = check_real(fn, "rate_hz", rate_hz, positive=True)
    hop_s = window_s if hop_s is None else hop_s
    for name, v in (("window_s", window_s), ("hop_s", hop_s)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v <= 0:
            raise ValueError(f"{fn}: `{name}` must be a finite number of seconds > 0, got {v!r}")
    length = int(round(window_s * rate))
    hop = int(round(hop_s * rate))
    if length < 1 or hop < 1:
        raise ValueError(f"{fn}: window_s={window_s} and hop_s={hop_s} must each span at least "
                         f"one sample at {rate:g} Hz")
    n = 1 if n_samples <= length else 1 + int(math.ceil((n_samples - length) / hop))
    starts = np.arange(n, dtype=np.int64) * hop
    return np.stack([starts, np.minimum(starts + length, n_samples)], axis=1)


def cut_windows(x: np.ndarray, rate_hz: float, *, window_s: float,
                hop_s: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``x`` ``(channel, time)`` into windows of :func:`window_bounds`, zero-padded.

    Returns:
        ``(windows, lengths, starts)``: float32 ``(n_windows, channel, window_samples)``, the
        valid samples of each window ``(n_windows,)`` and its first sample ``(n_windows,)``.
    """
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.size == 0:
        raise ValueError(f"cut_windows: `x` must be a non-empty 2-D array (channel, time), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    bounds = window_bounds(x.shape[1], rate_hz, window_s=window_s, hop_s=hop_s)
    width = int(round(window_s * rate_hz))
    out = np.zeros((len(bounds), x.shape[0], width), dtype=np.float32)
    for i, (a, b) in enumerate(bounds):
        out[i, :, : b - a] = x[:, a:b]
    return out, (bounds[:, 1] - bounds[:, 0]), bounds[:, 0].copy()
