"""Training augmentation of audio windows: rate, time-stretch, pitch, EQ, gain, noise, reverb and
stacking, as pure functions of numpy arrays and one seeded draw for a whole window.

Conventions: ``audio`` is mono ``(samples,)`` float; ``times_s`` are event onsets in seconds from
the start of the window (labels are untouched by every transform, so callers keep them); every
random choice comes from an explicit ``numpy.random.Generator``. Transforms that change the
time axis return the new onset times with the audio:

* :func:`change_rate`: play ``factor`` times faster (tempo *and* pitch x factor, duration /
  factor), the drum augmentation of the official code (spectrograms computed with ``sr x s``,
  ``s ~ U[7/8, 9/8)``); onsets ``t -> t / factor``;
* :func:`time_stretch`: a phase vocoder (``torch.stft``), tempo x ``rate`` at constant pitch, as
  the piano augmentation (``librosa.effects.time_stretch``); onsets ``t -> t / rate`` (the
  vocoder spreads a transient over about one FFT frame, centred within half a frame);
* :func:`pitch_shift`: pitch x ``2 ** (semitones / 12)`` at constant tempo (stretch + rate);
* :func:`random_eq`, :func:`apply_gain`, :func:`add_noise`, :func:`add_reverb`: level and colour;
  onsets unchanged;
* :func:`stack`: the sum of two windows (the piano "stacking" augmentation); counts add, frame
  targets combine by logical or, onsets merge.

Counts are invariant under every transform but :func:`stack`: time-scaling a whole window keeps
every event in it. :func:`augment_window` draws a random chain (:class:`AugmentSettings`) per
window. The transforms also serve test-time augmentation: the returned factors map detections back
(``t_original = t_augmented x factor``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import soxr
import torch

from softloc._checks import check_real
from softloc.data.generators.recording import (
    apply_reverb,
    colour_eq,
    noise_floor,
    rms_db,
    synthetic_rir,
)

__all__ = [
    "AugmentSettings",
    "add_noise",
    "add_reverb",
    "apply_gain",
    "augment_window",
    "change_rate",
    "pitch_shift",
    "random_eq",
    "stack",
    "time_stretch",
]


def _audio(fn: str, audio: object) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{fn}: `audio` must be a 1-D float array (samples,), got shape "
                         f"{x.shape} dtype {x.dtype}")
    return x


def _times(fn: str, times_s: object) -> np.ndarray | None:
    if times_s is None:
        return None
    t = np.asarray(times_s, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"{fn}: `times_s` must be 1-D (events,), got shape {t.shape}")
    return t


def change_rate(audio: np.ndarray, times_s: np.ndarray | None = None, *, factor: float,
                sample_rate: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Play ``audio`` ``factor`` times faster: tempo and pitch x ``factor``, length / ``factor``.

    The samples are taken as recorded at ``sample_rate x factor`` and resampled to
    ``sample_rate`` (soxr, high quality, no delay).

    Returns:
        ``(audio, times_s / factor)`` (times None when not given); audio of the input dtype.
    """
    x = _audio("change_rate", audio)
    factor = check_real("change_rate", "factor", factor, positive=True)
    t = _times("change_rate", times_s)
    y = soxr.resample(x.astype(np.float32), sample_rate * factor, sample_rate)
    return y.astype(x.dtype), (None if t is None else t / factor)


def time_stretch(audio: np.ndarray, times_s: np.ndarray | None = None, *, rate: float,
                 n_fft: int = 512, hop: int = 128) -> tuple[np.ndarray, np.ndarray | None]:
    """Phase-vocoder time-stretch: tempo x ``rate`` at constant pitch, length / ``rate``.

    The STFT (Hann window ``n_fft``, hop ``hop``) is resampled in time at steps of ``rate``
    frames, magnitudes interpolated between neighbouring frames, phases advanced by each bin's
    measured instantaneous frequency (Flanagan & Golden 1966; as ``librosa.effects.time_stretch``
    and ``torchaudio.functional.phase_vocoder``). A transient comes out spread over about one
    frame, centred within ``n_fft / 2`` samples of its mapped time; the short default frame
    (512 samples, 11.6 ms at 44.1 kHz) keeps drum onsets sharp.

    Returns:
        ``(audio, times_s / rate)``; the output has ``round(len(audio) / rate)`` samples.
    """
    fn = "time_stretch"
    x = _audio(fn, audio)
    rate = check_real(fn, "rate", rate, positive=True)
    t = _times(fn, times_s)
    n_out = int(round(x.size / rate))
    if x.size < n_fft:
        raise ValueError(f"{fn}: `audio` needs at least n_fft={n_fft} samples, got {x.size}")
    window = torch.hann_window(n_fft, dtype=torch.float64)
    spec = torch.stft(torch.as_tensor(x, dtype=torch.float64), n_fft, hop, window=window,
                      return_complex=True)  # (freq, frames)
    steps = torch.arange(0, spec.shape[-1], rate, dtype=torch.float64)
    alpha = steps % 1.0
    advance = torch.linspace(0, math.pi * hop, spec.shape[0], dtype=torch.float64)[:, None]
    padded = torch.nn.functional.pad(spec, (0, 2))
    s0, s1 = padded[:, steps.long()], padded[:, steps.long() + 1]
    dphi = s1.angle() - s0.angle() - advance
    dphi = dphi - 2 * math.pi * torch.round(dphi / (2 * math.pi)) + advance
    phase = torch.cumsum(torch.cat([spec[:, :1].angle(), dphi[:, :-1]], dim=-1), dim=-1)
    mag = alpha * s1.abs() + (1 - alpha) * s0.abs()
    y = torch.istft(torch.polar(mag, phase), n_fft, hop, window=window, length=n_out)
    return y.numpy().astype(x.dtype), (None if t is None else t / rate)


def pitch_shift(audio: np.ndarray, *, semitones: float, sample_rate: int) -> np.ndarray:
    """Pitch x ``2 ** (semitones / 12)`` at constant tempo and length: a time-stretch by
    ``1 / ratio`` followed by :func:`change_rate` by ``ratio``. Onsets stay (within a hop)."""
    x = _audio("pitch_shift", audio)
    ratio = 2 ** (check_real("pitch_shift", "semitones", semitones) / 12)
    y, _ = time_stretch(x, rate=1 / ratio)
    y, _ = change_rate(y, factor=ratio, sample_rate=sample_rate)
    out = np.zeros_like(x)
    out[: min(x.size, y.size)] = y[: x.size]
    return out


def apply_gain(audio: np.ndarray, *, gain_db: float) -> np.ndarray:
    """``audio x 10 ** (gain_db / 20)``."""
    x = _audio("apply_gain", audio)
    return (x * 10 ** (check_real("apply_gain", "gain_db", gain_db) / 20)).astype(x.dtype)


def random_eq(audio: np.ndarray, *, rng: np.random.Generator, sample_rate: int,
              max_db: float = 6.0) -> np.ndarray:
    """Random colour: low shelf, peak (200 Hz - 6 kHz) and high shelf, each within +-``max_db``
    (see :func:`softloc.data.generators.recording.colour_eq`)."""
    x = _audio("random_eq", audio)
    m = check_real("random_eq", "max_db", max_db, minimum=0.0)
    return colour_eq(x, sample_rate=sample_rate, low_shelf_db=rng.uniform(-m, m),
                     peak_hz=float(np.exp(rng.uniform(np.log(200.0), np.log(6000.0)))),
                     peak_db=rng.uniform(-m, m), peak_q=rng.uniform(0.5, 2.0),
                     high_shelf_db=rng.uniform(-m, m))


def add_noise(audio: np.ndarray, *, rng: np.random.Generator, snr_db: float, sample_rate: int,
              colour: str = "pink") -> np.ndarray:
    """Add ``colour`` noise ``snr_db`` under the RMS of ``audio``."""
    x = _audio("add_noise", audio)
    snr = check_real("add_noise", "snr_db", snr_db)
    noise = noise_floor(x.size, rng=rng, sample_rate=sample_rate, colour=colour)
    return (x + noise * 10 ** ((rms_db(x) - snr) / 20)).astype(x.dtype)


def add_reverb(audio: np.ndarray, *, rng: np.random.Generator, sample_rate: int, rt60_s: float,
               direct_to_reverb_db: float = 6.0) -> np.ndarray:
    """Convolve with a synthetic room (:func:`~softloc.data.generators.recording.synthetic_rir`)."""
    x = _audio("add_reverb", audio)
    rir = synthetic_rir(rng=rng, sample_rate=sample_rate, rt60_s=rt60_s,
                        direct_to_reverb_db=direct_to_reverb_db)
    return apply_reverb(x, rir)


def stack(audio_a: np.ndarray, audio_b: np.ndarray, *, gain_db: float = 0.0,
          counts_a: np.ndarray | None = None, counts_b: np.ndarray | None = None,
          targets_a: np.ndarray | None = None, targets_b: np.ndarray | None = None,
          times_a: np.ndarray | None = None,
          times_b: np.ndarray | None = None) -> dict[str, np.ndarray | None]:
    """Mix window b into window a (b scaled by ``gain_db``) and combine their labels.

    Args:
        audio_a, audio_b: ``(samples,)`` each, the same length.
        gain_db: level of b relative to its own level.
        counts_a, counts_b: ``(class,)`` event counts; the result is their sum.
        targets_a, targets_b: ``(class, time)`` 0/1 onset frames; the result is their logical or
            (an onset frame of either window is an onset frame of the mix).
        times_a, times_b: onset times; the result is both, sorted.

    Returns:
        ``{"audio", "counts", "targets", "times_s"}`` (None where not given).

    Raises:
        ValueError: the audio lengths, count shapes or target shapes differ, or only one of a
            pair is given.
    """
    fn = "stack"
    a, b = _audio(fn, audio_a), _audio(fn, audio_b)
    if a.shape != b.shape:
        raise ValueError(f"{fn}: `audio_a` and `audio_b` must have one shape, got {a.shape} "
                         f"and {b.shape}")
    out: dict[str, np.ndarray | None] = {"audio": (a + b * 10 ** (gain_db / 20)).astype(a.dtype)}
    for key, (x, y) in {"counts": (counts_a, counts_b), "targets": (targets_a, targets_b),
                        "times_s": (times_a, times_b)}.items():
        if (x is None) != (y is None):
            raise ValueError(f"{fn}: give both or neither of the two `{key}` arguments")
        if x is None:
            out[key] = None
            continue
        x, y = np.asarray(x), np.asarray(y)
        if key == "times_s":
            out[key] = np.sort(np.concatenate([x, y]).astype(np.float64))
        elif x.shape != y.shape:
            raise ValueError(f"{fn}: the two `{key}` arrays must have one shape, got {x.shape} "
                             f"and {y.shape}")
        else:
            out[key] = x + y if key == "counts" else np.maximum(x, y)
    return out


@dataclass(frozen=True)
class AugmentSettings:
    """What :func:`augment_window` may do, each step with its probability.

    Attributes:
        rate_range: ``change_rate`` factor, uniform in ``[lo, hi)`` (official drums: 7/8, 9/8).
        p_rate: probability of a rate change.
        stretch_range: ``time_stretch`` rate, uniform in ``[lo, hi)`` (applied instead of a rate
            change when both are drawn).
        p_stretch: probability of a time-stretch.
        semitones: pitch shift range in semitones; ``p_pitch`` its probability.
        eq_db: +- range of the random EQ gains; ``p_eq`` its probability.
        gain_db: gain range in dB (always applied; ``(0, 0)`` for none).
        snr_db: noise SNR range; ``p_noise`` its probability.
        rt60_s: reverb RT60 range; ``p_reverb`` its probability.
        p_invert: probability of a polarity inversion (x -> -x), the last step. For sensor
            signals it stands for a lead or electrode placed the other way round (an ECG whose
            QRS points down); in audio it is inaudible. No random number is drawn when 0, so
            the renditions of settings without it are unchanged.
    """

    rate_range: tuple[float, float] = (7 / 8, 9 / 8)
    p_rate: float = 1.0
    stretch_range: tuple[float, float] = (0.8, 1.25)
    p_stretch: float = 0.0
    semitones: tuple[float, float] = (-2.0, 2.0)
    p_pitch: float = 0.0
    eq_db: float = 6.0
    p_eq: float = 0.5
    gain_db: tuple[float, float] = (-12.0, 6.0)
    snr_db: tuple[float, float] = (20.0, 60.0)
    p_noise: float = 0.3
    rt60_s: tuple[float, float] = (0.1, 0.8)
    p_reverb: float = 0.3
    p_invert: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p_rate", "p_stretch", "p_pitch", "p_eq", "p_noise", "p_reverb",
                     "p_invert"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"AugmentSettings: `{name}` must lie in [0, 1], got {p}")
        for name in ("rate_range", "stretch_range", "semitones", "gain_db", "snr_db", "rt60_s"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"AugmentSettings: `{name}` must be (low, high) with low <= "
                                 f"high, got {(lo, hi)}")
        if self.rate_range[0] <= 0 or self.stretch_range[0] <= 0 or self.rt60_s[0] <= 0:
            raise ValueError("AugmentSettings: `rate_range`, `stretch_range` and `rt60_s` must "
                             "be > 0")


def augment_window(audio: np.ndarray, times_s: np.ndarray | None = None, *,
                   rng: np.random.Generator, sample_rate: int,
                   settings: AugmentSettings | None = None,
                   ) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
    """One random augmentation of a window: time scaling (stretch or rate), pitch, EQ, reverb,
    gain, noise, polarity, in that order, each with its probability in ``settings`` (default
    :class:`AugmentSettings`: the official drum rate variation U[7/8, 9/8) plus colour).

    Returns:
        ``(audio, times_s, info)``: the new audio (its length changes with the time scale), the
        onsets mapped to it (None when not given), and ``info["time_factor"]`` (original time =
        new time x factor) with the value of every step applied.
    """
    fn = "augment_window"
    x = _audio(fn, audio)
    t = _times(fn, times_s)
    s = AugmentSettings() if settings is None else settings
    info: dict[str, float] = {"time_factor": 1.0}
    if rng.random() < s.p_stretch:
        r = float(rng.uniform(*s.stretch_range))
        x, t = time_stretch(x, t, rate=r)
        info.update(stretch=r, time_factor=r)
    elif rng.random() < s.p_rate:
        r = float(rng.uniform(*s.rate_range))
        x, t = change_rate(x, t, factor=r, sample_rate=sample_rate)
        info.update(rate=r, time_factor=r)
    if rng.random() < s.p_pitch:
        info["semitones"] = float(rng.uniform(*s.semitones))
        x = pitch_shift(x, semitones=info["semitones"], sample_rate=sample_rate)
    if rng.random() < s.p_eq:
        info["eq_db"] = s.eq_db
        x = random_eq(x, rng=rng, sample_rate=sample_rate, max_db=s.eq_db)
    if rng.random() < s.p_reverb:
        info["rt60_s"] = float(rng.uniform(*s.rt60_s))
        x = add_reverb(x, rng=rng, sample_rate=sample_rate, rt60_s=info["rt60_s"])
    info["gain_db"] = float(rng.uniform(*s.gain_db))
    x = apply_gain(x, gain_db=info["gain_db"])
    if rng.random() < s.p_noise:
        info["snr_db"] = float(rng.uniform(*s.snr_db))
        x = add_noise(x, rng=rng, snr_db=info["snr_db"], sample_rate=sample_rate)
    if s.p_invert > 0 and rng.random() < s.p_invert:
        info["inverted"] = 1.0
        x = -x
    return x, t, info
