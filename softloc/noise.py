"""Label-misalignment models: perturb annotated event times to simulate noisy annotations.

Conventions: events are times in **seconds** (a 1-D array-like, any order) with optional labels
(a sequence of the same length, e.g. instrument names or MIDI pitches). Every function returns
*new* objects, sorted by time, with the labels permuted alongside; the inputs are never mutated.
Perturbed times are clipped to ``[0, duration_s]`` (so event counts are preserved; the piano
original instead let shifted onsets drop out of their segment). Randomness is always explicit:
pass an ``int`` seed or a :class:`numpy.random.Generator`.

Models (SoftLoc §5 and the authors' code, facts §2.7):

* :class:`NormalNoise`: N(0, σ²) seconds per event (piano, drums) — ``normal:100ms``.
* :class:`RoundedNormalNoise`: ⌊N(0, σ²)⌉ whole frames, results on the frame grid (golf, time
  series) — ``rounded-normal:2frames``.
* :class:`BinaryNoise`: +δ or −δ with probability 1/2, B(−δ, δ) — ``binary:50ms``.
* :class:`ShiftNoise`: the same signed δ for every event (video experiments) — ``shift:-20ms``.
* :class:`SkewNormalNoise`: skew-normal(shape a, location 0, scale ω) seconds; not zero-mean
  (time series, a = −2) — ``skew-normal:-2:100ms``.

Spec grammar (:func:`parse_noise`, used by ``--label-noise``)::

    spec     := "normal:" dur | "rounded-normal:" dur | "binary:" dur
              | "shift:" ["+"|"-"] dur | "skew-normal:" number ":" dur
    dur      := number unit          (>= 0; only "shift" takes a sign)
    unit     := "ms" | "s" | "frames" | "frame"

Durations in frames need ``frame_rate``; ``rounded-normal`` always needs it. Every model's
:meth:`NoiseModel.to_spec` (also ``str(model)``) writes a spec that parses back to an equal model.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from softloc._checks import check_frame_rate, check_real
from softloc.timebase import frames_to_seconds, seconds_to_frames

__all__ = [
    "BinaryNoise",
    "NoiseModel",
    "NormalNoise",
    "RoundedNormalNoise",
    "ShiftNoise",
    "SkewNormalNoise",
    "parse_noise",
    "perturb_events",
]


def _fmt_seconds(value_s: float) -> str:
    """Shortest exact spec text for a duration: milliseconds when that round-trips, else seconds."""
    ms_text = f"{value_s * 1000.0:.15g}"
    if float(ms_text) / 1000.0 == value_s:
        return f"{ms_text}ms"
    return f"{value_s!r}s"


class NoiseModel(abc.ABC):
    """A distribution of annotation offsets; subclasses are frozen dataclasses."""

    @abc.abstractmethod
    def _perturb(
        self, times_s: np.ndarray, duration_s: float, rng: np.random.Generator
    ) -> np.ndarray:
        """New, clipped, unsorted times for ``times_s`` (float64, never modified)."""

    @property
    @abc.abstractmethod
    def mean_s(self) -> float:
        """Mean offset in seconds (before clipping)."""

    @property
    @abc.abstractmethod
    def std_s(self) -> float:
        """Standard deviation of the offset in seconds (before clipping)."""

    @abc.abstractmethod
    def to_spec(self) -> str:
        """The :func:`parse_noise` spec of this model."""

    def __str__(self) -> str:
        return self.to_spec()


@dataclass(frozen=True)
class NormalNoise(NoiseModel):
    """Each event shifted by its own N(0, σ²) offset (piano: σ = 100 ms; drums: σ ~ U(0, 100) ms).

    Args:
        sigma_s: standard deviation in seconds (>= 0).
    """

    sigma_s: float

    def __post_init__(self) -> None:
        check_real("NormalNoise", "sigma_s", self.sigma_s, minimum=0.0)

    def _perturb(self, times_s, duration_s, rng):
        return np.clip(times_s + rng.normal(0.0, self.sigma_s, times_s.shape), 0.0, duration_s)

    @property
    def mean_s(self) -> float:
        return 0.0

    @property
    def std_s(self) -> float:
        return self.sigma_s

    def to_spec(self) -> str:
        return f"normal:{_fmt_seconds(self.sigma_s)}"


@dataclass(frozen=True)
class RoundedNormalNoise(NoiseModel):
    """Frame-grid noise ⌊N(0, σ²)⌉ in frames (SoftLoc §5.2; golf and time-series originals).

    Each event is first snapped to its nearest frame (:func:`softloc.timebase.seconds_to_frames`),
    then moved by a whole number of frames ``round(N(0, σ²))``; results lie on the grid
    ``i / frame_rate`` and are clipped to frames ``0 .. floor(duration_s · frame_rate)``.

    Args:
        sigma_frames: standard deviation of the unrounded offset in frames (>= 0).
        frame_rate: frames per second (> 0).
    """

    sigma_frames: float
    frame_rate: float

    def __post_init__(self) -> None:
        check_real("RoundedNormalNoise", "sigma_frames", self.sigma_frames, minimum=0.0)
        check_frame_rate("RoundedNormalNoise", self.frame_rate)

    def _perturb(self, times_s, duration_s, rng):
        frames = seconds_to_frames(times_s, self.frame_rate)
        shifts = np.rint(rng.normal(0.0, self.sigma_frames, times_s.shape)).astype(np.int64)
        last = (
            math.floor(duration_s * self.frame_rate + 1e-9) if math.isfinite(duration_s) else None
        )
        moved = np.clip(frames + shifts, 0, last)
        return frames_to_seconds(moved, self.frame_rate)

    @property
    def mean_s(self) -> float:
        return 0.0

    @property
    def std_s(self) -> float:
        """Exact std of the rounded offset: sqrt(Σ k² Pr(round(X) = k)) / frame_rate."""
        if self.sigma_frames == 0:
            return 0.0
        k = np.arange(1, int(10 * self.sigma_frames) + 2)
        pr = stats.norm.cdf((k + 0.5) / self.sigma_frames) - stats.norm.cdf(
            (k - 0.5) / self.sigma_frames
        )
        return math.sqrt(2.0 * float(np.sum(k**2 * pr))) / self.frame_rate

    def to_spec(self) -> str:
        return f"rounded-normal:{self.sigma_frames!r}frames"


@dataclass(frozen=True)
class BinaryNoise(NoiseModel):
    """Each event shifted by +δ or −δ with probability 1/2: B(−δ, δ) (SoftLoc §5.2).

    Args:
        delta_s: shift magnitude in seconds (>= 0).
    """

    delta_s: float

    def __post_init__(self) -> None:
        check_real("BinaryNoise", "delta_s", self.delta_s, minimum=0.0)

    def _perturb(self, times_s, duration_s, rng):
        signs = rng.choice(np.array([-1.0, 1.0]), size=times_s.shape)
        return np.clip(times_s + signs * self.delta_s, 0.0, duration_s)

    @property
    def mean_s(self) -> float:
        return 0.0

    @property
    def std_s(self) -> float:
        return self.delta_s

    def to_spec(self) -> str:
        return f"binary:{_fmt_seconds(self.delta_s)}"


@dataclass(frozen=True)
class ShiftNoise(NoiseModel):
    """Every event delayed (δ > 0) or advanced (δ < 0) by the same δ (SoftLoc §5.3).

    Args:
        delta_s: signed shift in seconds.
    """

    delta_s: float

    def __post_init__(self) -> None:
        check_real("ShiftNoise", "delta_s", self.delta_s)

    def _perturb(self, times_s, duration_s, rng):
        return np.clip(times_s + self.delta_s, 0.0, duration_s)

    @property
    def mean_s(self) -> float:
        return self.delta_s

    @property
    def std_s(self) -> float:
        return 0.0

    def to_spec(self) -> str:
        sign = "-" if self.delta_s < 0 or math.copysign(1.0, self.delta_s) < 0 else ""
        return f"shift:{sign}{_fmt_seconds(abs(self.delta_s))}"


@dataclass(frozen=True)
class SkewNormalNoise(NoiseModel):
    """Skew-normal offsets (shape a, location 0, scale ω), as ``scipy.stats.skewnorm``.

    The offsets are **not** zero-mean: mean = ω·δ·√(2/π) with δ = a/√(1 + a²), std =
    ω·√(1 − 2δ²/π). The time-series original used a = −2 (mean ≈ −0.714·ω), which systematically
    advances the labels; we keep location 0 to match it.

    Args:
        shape: skewness parameter a (any finite number; 0 gives N(0, ω²)).
        scale_s: scale ω in seconds (>= 0).
    """

    shape: float
    scale_s: float

    def __post_init__(self) -> None:
        check_real("SkewNormalNoise", "shape", self.shape)
        check_real("SkewNormalNoise", "scale_s", self.scale_s, minimum=0.0)

    def _perturb(self, times_s, duration_s, rng):
        if self.scale_s == 0:
            return np.clip(times_s, 0.0, duration_s)
        offsets = stats.skewnorm.rvs(
            self.shape, loc=0.0, scale=self.scale_s, size=times_s.shape, random_state=rng
        )
        return np.clip(times_s + offsets, 0.0, duration_s)

    @property
    def _delta(self) -> float:
        return self.shape / math.sqrt(1.0 + self.shape**2)

    @property
    def mean_s(self) -> float:
        return self.scale_s * self._delta * math.sqrt(2.0 / math.pi)

    @property
    def std_s(self) -> float:
        return self.scale_s * math.sqrt(1.0 - 2.0 * self._delta**2 / math.pi)

    def to_spec(self) -> str:
        return f"skew-normal:{self.shape!r}:{_fmt_seconds(self.scale_s)}"


def perturb_events(
    times_s: Any,
    labels: Sequence[Any] | None = None,
    *,
    model: NoiseModel,
    duration_s: float,
    seed: int | np.random.Generator,
) -> tuple[np.ndarray, list[Any] | None]:
    """Misalign annotated events with a noise model; returns new, sorted, clipped events.

    Args:
        times_s: event times in seconds, 1-D, each in ``[0, duration_s]``, any order.
        labels: optional labels, one per event; they follow their events through the sort.
        model: the noise model, e.g. ``NormalNoise(0.1)`` or ``parse_noise("normal:100ms")``.
        duration_s: length of the sequence in seconds (> 0; ``math.inf`` clips only at 0).
        seed: an ``int`` seed or a :class:`numpy.random.Generator` (advanced in place). The same
            seed and inputs always give the same output.

    Returns:
        ``(times_s, labels)``: a new float64 array sorted by time (ties keep input order) and a
        new list of labels in the same order (``None`` when no labels were given).

    Raises:
        TypeError: ``model`` is not a :class:`NoiseModel`, ``seed`` is not an int or Generator.
        ValueError: ``times_s`` not 1-D, non-finite or outside ``[0, duration_s]``;
            ``duration_s`` <= 0; ``labels`` of a different length.

    Example:
        >>> times, labels = perturb_events([0.5, 1.0], ["KD", "SD"], model=ShiftNoise(-0.02),
        ...                                duration_s=2.0, seed=0)
        >>> times.tolist(), labels
        ([0.48, 0.98], ['KD', 'SD'])
    """
    fn = "perturb_events"
    if isinstance(labels, NoiseModel):
        raise TypeError(
            f"{fn}: `labels` got a NoiseModel; call perturb_events(times_s, labels, model=..., "
            "duration_s=..., seed=...)"
        )
    if not isinstance(model, NoiseModel):
        raise TypeError(
            f"{fn}: `model` must be a NoiseModel (e.g. parse_noise('normal:100ms')), "
            f"got {type(model).__name__}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer, np.random.Generator)):
        raise TypeError(
            f"{fn}: `seed` must be an int or a numpy.random.Generator, got {type(seed).__name__}"
        )
    duration_s = check_real(fn, "duration_s", duration_s, finite=False, positive=True, unit=" s")
    times = np.array(times_s, dtype=np.float64)  # a copy: the input is never modified
    if times.ndim != 1:
        raise ValueError(f"{fn}: `times_s` must be 1-D (events,), got shape {times.shape}")
    if times.size and not np.all(np.isfinite(times)):
        raise ValueError(f"{fn}: `times_s` must be finite, found NaN or inf")
    if times.size and (times.min() < 0 or times.max() > duration_s):
        raise ValueError(
            f"{fn}: `times_s` must lie in [0, duration_s={duration_s:g}] seconds, found values in "
            f"[{times.min():g}, {times.max():g}]"
        )
    if labels is not None and len(labels) != times.size:
        raise ValueError(
            f"{fn}: `labels` must have one entry per event ({times.size}), got {len(labels)}"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    moved = model._perturb(times, float(duration_s), rng)
    order = np.argsort(moved, kind="stable")
    out_labels = None if labels is None else [labels[i] for i in order.tolist()]
    return moved[order], out_labels


_EXPECTED = (
    "expected 'normal:<dur>', 'rounded-normal:<dur>', 'binary:<dur>', 'shift:[-]<dur>' or "
    "'skew-normal:<shape>:<dur>', with <dur> like 100ms, 0.1s or 2frames"
)
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION = re.compile(rf"^(?P<value>{_NUMBER})\s*(?P<unit>ms|s|frames|frame)$")


def _parse_duration(spec: str, text: str, *, signed: bool) -> tuple[float, str]:
    """-> (value, unit) with unit "s" or "frames"; ms are converted to seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"parse_noise: cannot parse {spec!r}: bad duration {text!r}; {_EXPECTED}")
    value, unit = float(match["value"]), match["unit"]
    if value < 0 and not signed:
        raise ValueError(f"parse_noise: cannot parse {spec!r}: duration must be >= 0; {_EXPECTED}")
    if unit == "ms":
        return value / 1000.0, "s"
    return value, "s" if unit == "s" else "frames"


def _to_seconds(spec: str, value: float, unit: str, frame_rate: float | None) -> float:
    if unit == "s":
        return value
    if frame_rate is None:
        raise ValueError(
            f"parse_noise: cannot parse {spec!r}: a duration in frames needs `frame_rate`"
        )
    return float(frames_to_seconds(value, frame_rate))


def parse_noise(spec: str, *, frame_rate: float | None = None) -> NoiseModel:
    """Parse a noise spec such as ``"normal:100ms"`` into a :class:`NoiseModel`.

    Grammar (see the module docstring): ``normal:<dur>``, ``rounded-normal:<dur>``,
    ``binary:<dur>``, ``shift:[-]<dur>``, ``skew-normal:<shape>:<dur>``; ``<dur>`` is a number
    followed by ``ms``, ``s`` or ``frames``. The kind is case-insensitive; surrounding spaces are
    ignored.

    Args:
        spec: the spec string.
        frame_rate: frames per second, needed for durations in frames and for
            ``rounded-normal`` (whose σ may then also be given in ms or s).

    Returns:
        The model; ``parse_noise(model.to_spec(), frame_rate=...) == model``.

    Raises:
        TypeError: ``spec`` is not a string.
        ValueError: a malformed spec (the message names it and the expected format), a negative
            duration where a magnitude is expected, or a missing ``frame_rate``.

    Example:
        >>> parse_noise("normal:100ms")
        NormalNoise(sigma_s=0.1)
        >>> parse_noise("skew-normal:-2:50ms")
        SkewNormalNoise(shape=-2.0, scale_s=0.05)
    """
    if not isinstance(spec, str):
        raise TypeError(f"parse_noise: `spec` must be a str, got {type(spec).__name__}")
    if frame_rate is not None and not (
        isinstance(frame_rate, (int, float)) and not isinstance(frame_rate, bool) and frame_rate > 0
    ):
        raise ValueError(f"parse_noise: `frame_rate` must be a number > 0, got {frame_rate!r}")
    kind, sep, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    if not sep:
        raise ValueError(f"parse_noise: cannot parse {spec!r}: missing ':'; {_EXPECTED}")
    if kind == "skew-normal":
        shape_text, sep, rest = rest.partition(":")
        if not sep or re.fullmatch(_NUMBER, shape_text.strip()) is None:
            raise ValueError(
                f"parse_noise: cannot parse {spec!r}: skew-normal needs '<shape>:<dur>'; "
                f"{_EXPECTED}"
            )
        value, unit = _parse_duration(spec, rest, signed=False)
        return SkewNormalNoise(float(shape_text), _to_seconds(spec, value, unit, frame_rate))
    if kind == "rounded-normal":
        value, unit = _parse_duration(spec, rest, signed=False)
        if frame_rate is None:
            raise ValueError(
                f"parse_noise: cannot parse {spec!r}: rounded-normal needs `frame_rate`"
            )
        sigma_frames = value if unit == "frames" else value * frame_rate
        return RoundedNormalNoise(sigma_frames, float(frame_rate))
    if kind in ("normal", "binary", "shift"):
        value, unit = _parse_duration(spec, rest, signed=kind == "shift")
        seconds = _to_seconds(spec, value, unit, frame_rate)
        if kind == "normal":
            return NormalNoise(seconds)
        return BinaryNoise(seconds) if kind == "binary" else ShiftNoise(seconds)
    raise ValueError(f"parse_noise: cannot parse {spec!r}: unknown kind {kind!r}; {_EXPECTED}")
