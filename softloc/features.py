"""Audio front end: loading, resampling, power mel spectrogram, log + first difference.

Conventions:
    * Audio is mono float32 at ``FrontEndConfig.sample_rate``; :func:`load_audio` mixes channels to
      mono and resamples with soxr.
    * Frame ``i`` is centred on sample ``i * hop_length`` (the signal is zero-padded by
      ``n_fft // 2`` on both sides), so its time stamp is ``i / frame_rate`` seconds, which is
      :func:`softloc.timebase.frames_to_seconds` with ``time_offset_s=0``. A signal of ``n`` samples
      gives ``1 + n // hop_length`` frames (:func:`num_frames`).
    * The cached quantity is the **power** mel spectrogram ``(batch, n_mels, time)``: power of
      independent sources is roughly additive, so two training windows can be mixed by summing
      their mel powers ("extract stacking"). The log, the per-window per-band mean removal and the
      first time difference (:func:`log_delta`) are cheap and live in the model's first layer, so
      training and inference see exactly the same transform, on CPU or GPU.

The defaults of :class:`FrontEndConfig` are the drum settings of the LoCo/SoftLoc code: 44.1 kHz,
pre-emphasis 0.97, Hamming window of 1102 samples (25 ms), hop 220 samples (~200 frames/s),
NFFT 4096, 72 HTK mel bands from 0 Hz to sr/2, giving 2 x 72 = 144 features per frame.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, fields

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import nn

from softloc._checks import check_lengths, check_ndim, check_tensor

__all__ = [
    "FrontEndConfig",
    "LogDelta",
    "MelPower",
    "hz_to_mel",
    "load_audio",
    "log_delta",
    "mel_filterbank",
    "mel_power",
    "mel_to_hz",
    "num_frames",
    "onset_strength",
    "resample",
]

# Frames per torch.stft call. It bounds the memory of the complex spectrum on long files, and on
# CPU small chunks that stay in cache are ~3x faster than large ones (measured: 256 frames x 2049
# bins x 8 bytes = 4 MB per chunk at the drum settings); a GPU prefers large chunks.
_FRAMES_PER_CHUNK = 256
_FRAMES_PER_CHUNK_GPU = 8192


@dataclass(frozen=True)
class FrontEndConfig:
    """Settings of the power-mel front end (drum defaults of the LoCo/SoftLoc code).

    Args:
        sample_rate: audio sample rate in Hz that features are computed at (default 44100).
        n_fft: FFT size in samples; the window is zero-padded to it (default 4096).
        win_length: Hamming window length in samples (default 1102 = 25 ms at 44.1 kHz).
        hop_length: hop between frames in samples (default 220, ~5 ms; frame rate 200.45/s).
        n_mels: number of triangular HTK mel bands (default 72).
        f_min_hz: lowest band edge in Hz (default 0).
        f_max_hz: highest band edge in Hz; ``None`` means ``sample_rate / 2`` (default).
        preemphasis: coefficient of ``y[n] = x[n] - c * x[n-1]``; 0 disables it (default 0.97).

    Raises:
        ValueError: a setting out of range, or ``n_mels`` so large that a band holds no FFT bin.
    """

    sample_rate: int = 44100
    n_fft: int = 4096
    win_length: int = 1102
    hop_length: int = 220
    n_mels: int = 72
    f_min_hz: float = 0.0
    f_max_hz: float | None = None
    preemphasis: float = 0.97

    def __post_init__(self) -> None:
        fn = "FrontEndConfig"
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{fn}: `{name}` must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{fn}: `{name}` must be >= 1, got {value}")
        if self.win_length > self.n_fft:
            raise ValueError(
                f"{fn}: `win_length` must be <= n_fft={self.n_fft}, got {self.win_length}"
            )
        nyquist = self.sample_rate / 2
        if not 0 <= self.f_min_hz < self.f_max:
            raise ValueError(
                f"{fn}: need 0 <= f_min_hz < f_max_hz, got f_min_hz={self.f_min_hz}, "
                f"f_max_hz={self.f_max}"
            )
        if self.f_max > nyquist:
            raise ValueError(f"{fn}: `f_max_hz` must be <= sample_rate / 2 = {nyquist}, "
                             f"got {self.f_max}")
        if not 0 <= self.preemphasis < 1:
            raise ValueError(f"{fn}: `preemphasis` must lie in [0, 1), got {self.preemphasis}")
        empty = np.flatnonzero(_filterbank_np(self).max(axis=1) <= 0)
        if empty.size:
            raise ValueError(
                f"{fn}: mel bands {empty.tolist()} contain no FFT bin; use fewer `n_mels` "
                f"(got {self.n_mels}) or a larger `n_fft` (got {self.n_fft})"
            )

    @property
    def f_max(self) -> float:
        """Highest band edge in Hz (``f_max_hz`` or ``sample_rate / 2``)."""
        return float(self.sample_rate / 2 if self.f_max_hz is None else self.f_max_hz)

    @property
    def frame_rate(self) -> float:
        """Frames per second, ``sample_rate / hop_length``."""
        return self.sample_rate / self.hop_length

    @property
    def n_features(self) -> int:
        """Width of the model input after :func:`log_delta`: ``2 * n_mels``."""
        return 2 * self.n_mels

    def to_dict(self) -> dict:
        """Plain dict (for YAML / checkpoints); inverse of :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FrontEndConfig:
        """Build from a dict; unknown keys are an error (a typo must not be ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"FrontEndConfig.from_dict: unknown keys {unknown}; expected a subset of "
                f"{sorted(known)}"
            )
        return cls(**d)


def hz_to_mel(f_hz):
    """HTK mel scale: ``2595 * log10(1 + f / 700)`` (numpy, any shape)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def _filterbank_np(cfg: FrontEndConfig) -> np.ndarray:
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min_hz), hz_to_mel(cfg.f_max), cfg.n_mels + 2))
    freqs_hz = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate / cfg.n_fft
    lo, centre, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (freqs_hz[None, :] - lo) / (centre - lo)
    falling = (hi - freqs_hz[None, :]) / (hi - centre)
    fb = np.maximum(0.0, np.minimum(rising, falling))  # (n_mels, n_freqs)
    fb.setflags(write=False)
    return fb


def mel_filterbank(cfg: FrontEndConfig) -> torch.Tensor:
    """Triangular HTK mel filterbank with peak 1 (not area-normalised), as in the original code.

    Band ``j`` rises linearly from edge ``j`` to centre ``j + 1`` and falls to edge ``j + 2``,
    where the ``n_mels + 2`` edges are equally spaced on the HTK mel scale between ``f_min_hz``
    and ``f_max_hz``; it is evaluated at the FFT bin frequencies ``k * sample_rate / n_fft``.

    Returns:
        float32 tensor ``(n_mels, n_fft // 2 + 1)``.

    Notes:
        The original code rounds the band edges to FFT bins (``floor((NFFT + 1) * hz / sr)``),
        which leaves some narrow bands empty; we evaluate the triangles at the exact bin
        frequencies instead and reject configurations with an empty band.
    """
    if not isinstance(cfg, FrontEndConfig):
        raise TypeError(f"mel_filterbank: `cfg` must be a FrontEndConfig, got {type(cfg).__name__}")
    return torch.from_numpy(np.array(_filterbank_np(cfg), dtype=np.float32))


def num_frames(num_samples: int, cfg: FrontEndConfig) -> int:
    """Number of frames :func:`mel_power` returns for ``num_samples`` samples: ``1 + n // hop``."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise TypeError(
            f"num_frames: `num_samples` must be an int, got {type(num_samples).__name__}"
        )
    if num_samples < 0:
        raise ValueError(f"num_frames: `num_samples` must be >= 0, got {num_samples}")
    return 1 + int(num_samples) // cfg.hop_length


def _mel_power(audio: torch.Tensor, fb: torch.Tensor, window: torch.Tensor,
               cfg: FrontEndConfig) -> torch.Tensor:
    # audio (B, N) float32; fb (n_mels, F); window (win_length,)
    batch, n = audio.shape
    if cfg.preemphasis > 0:
        audio = torch.cat([audio[:, :1], audio[:, 1:] - cfg.preemphasis * audio[:, :-1]], dim=1)
    n_frames = 1 + n // cfg.hop_length
    half = cfg.n_fft // 2
    # Centre padding done here (not by torch.stft) so the frames can be computed in chunks.
    total = (n_frames - 1) * cfg.hop_length + cfg.n_fft
    padded = torch.nn.functional.pad(audio, (half, total - half - n))  # (B, total)
    out = audio.new_empty((batch, cfg.n_mels, n_frames))
    chunk = _FRAMES_PER_CHUNK if audio.device.type == "cpu" else _FRAMES_PER_CHUNK_GPU
    for f0 in range(0, n_frames, chunk):
        f1 = min(n_frames, f0 + chunk)
        seg = padded[:, f0 * cfg.hop_length:(f1 - 1) * cfg.hop_length + cfg.n_fft]
        spec = torch.stft(seg, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                          win_length=cfg.win_length, window=window, center=False,
                          return_complex=True)  # (B, F, f1 - f0)
        power = spec.real.square() + spec.imag.square()
        out[:, :, f0:f1] = torch.matmul(fb, power) / cfg.n_fft  # (n_mels, F) @ (B, F, T)
    return out


def mel_power(audio, cfg: FrontEndConfig) -> torch.Tensor:
    """Power mel spectrogram of mono audio (LoCo §5 / SoftLoc §4 front end, before the log).

    Pre-emphasis, Hamming-windowed STFT (``torch.stft``, so it runs on the audio's device),
    ``|X|^2 / n_fft``, then the triangular mel filterbank of :func:`mel_filterbank`.

    Args:
        audio: samples at ``cfg.sample_rate``, shape ``(samples,)`` or ``(batch, samples)``;
            a torch tensor (any device) or a numpy array.
        cfg: the front-end settings.

    Returns:
        float32 tensor ``(batch, n_mels, frames)`` with ``frames = 1 + samples // hop_length``;
        frame ``i`` is centred at ``i / cfg.frame_rate`` seconds.

    Raises:
        TypeError: ``audio`` is neither a tensor nor an array, or is not floating point.
        ValueError: ``audio`` has not 1 or 2 dims, or holds NaN/inf.

    Shape:
        ``(samples,)`` or ``(batch, samples)`` -> ``(batch, n_mels, frames)``.
    """
    fn = "mel_power"
    if not isinstance(cfg, FrontEndConfig):
        raise TypeError(f"{fn}: `cfg` must be a FrontEndConfig, got {type(cfg).__name__}")
    x = _as_audio_tensor(fn, audio)
    return _mel_power(x, mel_filterbank(cfg).to(x.device),
                      torch.hamming_window(cfg.win_length, periodic=False, device=x.device), cfg)


def _as_audio_tensor(fn: str, audio) -> torch.Tensor:
    if isinstance(audio, np.ndarray):
        if not np.issubdtype(audio.dtype, np.floating):
            raise TypeError(f"{fn}: `audio` must be floating point, got dtype {audio.dtype}")
        audio = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    check_tensor(fn, "audio", audio)
    if not audio.is_floating_point():
        raise TypeError(f"{fn}: `audio` must be floating point, got dtype {audio.dtype}")
    if audio.dim() == 1:
        audio = audio[None]  # (N,) -> (1, N)
    check_ndim(fn, "audio", audio, 2, "(batch, samples)")
    if not bool(torch.isfinite(audio).all()):
        raise ValueError(f"{fn}: `audio` holds NaN or infinite samples")
    return audio.float()


class MelPower(nn.Module):
    """Module form of :func:`mel_power`; the filterbank and window are buffers (move with .to())."""

    filterbank: torch.Tensor
    window: torch.Tensor

    def __init__(self, cfg: FrontEndConfig) -> None:
        super().__init__()
        if not isinstance(cfg, FrontEndConfig):
            raise TypeError(f"MelPower: `cfg` must be a FrontEndConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.register_buffer("filterbank", mel_filterbank(cfg), persistent=False)
        self.register_buffer("window", torch.hamming_window(cfg.win_length, periodic=False),
                             persistent=False)

    def forward(self, audio) -> torch.Tensor:
        x = _as_audio_tensor("MelPower", audio).to(self.filterbank.device)
        return _mel_power(x, self.filterbank, self.window, self.cfg)


def log_delta(mel_power: torch.Tensor, *, lengths: torch.Tensor | None = None,
              floor: float = 1e-10) -> torch.Tensor:
    """Log power, per-window per-band mean removal, and the first time difference stacked.

    ``L = 10 log10(max(P, floor))``; each band has its mean over the window's valid frames removed;
    ``D[t] = L[t] - L[t-1]`` with ``D[0] = 0``; output ``[L; D]`` with every frame at or beyond
    ``lengths`` set to 0 (so zero padding never leaks into the valid part or the mean).

    Args:
        mel_power: power mel spectrogram ``(batch, n_mels, time)``, non-negative.
        lengths: valid frames per item ``(batch,)``; ``None`` means all ``time`` frames.
        floor: power floor before the log (default 1e-10, i.e. -100 dB).

    Returns:
        tensor ``(batch, 2 * n_mels, time)``, the dtype of ``mel_power``.

    Raises:
        TypeError: ``mel_power`` is not a floating-point tensor.
        ValueError: wrong shape, ``lengths`` out of range, or ``floor <= 0``.

    Shape:
        ``(batch, n_mels, time)`` -> ``(batch, 2 * n_mels, time)``.

    Notes:
        The original code takes ``20 log10`` of a power (a factor 2 on the scale); we use the
        correct ``10 log10``. The per-extract mean removal and the derivative rows follow it.
        Mean removal over the valid frames only, and the zeroing beyond ``lengths``, replace the
        original's computation of the derivative after zero padding (which put ``-L[last]`` in
        the first padded row).
    """
    fn = "log_delta"
    check_tensor(fn, "mel_power", mel_power)
    check_ndim(fn, "mel_power", mel_power, 3, "(batch, n_mels, time)")
    if not mel_power.is_floating_point():
        raise TypeError(f"{fn}: `mel_power` must be floating point, got dtype {mel_power.dtype}")
    if not floor > 0:
        raise ValueError(f"{fn}: `floor` must be > 0, got {floor}")
    batch, _, time = mel_power.shape
    check_lengths(fn, lengths, batch, time)
    log = 10.0 * torch.log10(mel_power.clamp_min(floor))  # (B, M, T)
    if lengths is None:
        mask = torch.ones(batch, 1, time, dtype=log.dtype, device=log.device)
    else:
        steps = torch.arange(time, device=log.device)
        mask = (steps[None, :] < lengths.to(log.device)[:, None]).to(log.dtype)[:, None, :]
    n_valid = mask.sum(dim=2, keepdim=True).clamp_min(1.0)  # (B, 1, 1)
    mean = (log * mask).sum(dim=2, keepdim=True) / n_valid  # (B, M, 1)
    log = (log - mean) * mask
    delta = torch.zeros_like(log)
    delta[:, :, 1:] = (log[:, :, 1:] - log[:, :, :-1]) * mask[:, :, 1:]
    return torch.cat([log, delta], dim=1)  # (B, 2M, T)


class LogDelta(nn.Module):
    """Module form of :func:`log_delta` (no parameters); use as a model's first layer."""

    def __init__(self, *, floor: float = 1e-10) -> None:
        super().__init__()
        if not floor > 0:
            raise ValueError(f"LogDelta: `floor` must be > 0, got {floor}")
        self.floor = float(floor)

    def forward(self, mel_power: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return log_delta(mel_power, lengths=lengths, floor=self.floor)


#: Compression of :func:`onset_strength`: ``log(1 + c * P / median(P))``. With c = 0.01 the peak
#: of the mean onset strength around the labelled sound starts of the built-in data sits -0.1 ms
#: (training pianos) / +0.6 ms (held-out pianos) and -1.8 / -1.6 ms (the demo's drum kits) from
#: them, so the alignment needs no bias correction; c = 1 puts it 7 ms early on piano (the log
#: sees a note as soon as the window's edge touches it). ``python -m benchmarks.onset_alignment``
#: measures it (docs/results.md).
ONSET_COMPRESSION = 0.01


def onset_strength(mel_power: torch.Tensor, *, compression: float = ONSET_COMPRESSION
                   ) -> torch.Tensor:
    """Spectral flux of a power mel spectrogram: where sound energy rises, frame by frame.

    ``S = log(1 + c P / median(P > 0))`` per item (the lower median of the positive powers: the
    compression does not depend on the recording level),
    ``O[t] = sum_bands max(S[t] - S[t-1], 0)``, ``O[0] = 0``. Used to align a counts-trained
    model's detections with the audio (``softloc.inference.calibrate``): counts say nothing
    about time, so such a model may fire a fixed latency after the sound.

    Args:
        mel_power: power mel spectrogram ``(batch, n_mels, time)`` (:func:`mel_power`).
        compression: ``c`` above, > 0 (:data:`ONSET_COMPRESSION`).

    Returns:
        float tensor ``(batch, time)``, >= 0.

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: wrong shape, negative or non-finite powers, ``compression <= 0``.
    """
    fn = "onset_strength"
    check_tensor(fn, "mel_power", mel_power)
    check_ndim(fn, "mel_power", mel_power, 3, "(batch, n_mels, time)")
    if not mel_power.is_floating_point():
        raise TypeError(f"{fn}: `mel_power` must be floating point, got dtype {mel_power.dtype}")
    if not bool(torch.isfinite(mel_power).all()) or bool((mel_power < 0).any()):
        raise ValueError(f"{fn}: `mel_power` must hold finite powers >= 0")
    if not (isinstance(compression, int | float) and 0 < compression < float("inf")):
        raise ValueError(f"{fn}: `compression` must be a finite number > 0, got {compression!r}")
    out = mel_power.new_zeros(mel_power.shape[0], mel_power.shape[2])
    for b, p in enumerate(mel_power):
        positive = p[p > 0]
        if positive.numel() == 0:
            continue  # silence: no onsets
        s = torch.log1p(p * (compression / positive.median()))
        out[b, 1:] = (s[:, 1:] - s[:, :-1]).clamp_min(0).sum(0)
    return out


def resample(audio: np.ndarray, orig_rate: float, target_rate: float) -> np.ndarray:
    """Resample mono float audio with soxr (high quality); returns float32 ``(samples,)``.

    ``orig_rate`` may be fractional: treating audio recorded at ``sr`` as if it were at
    ``sr * s`` and resampling to ``sr`` plays it ``s`` times faster (tempo and pitch together),
    the sample-rate augmentation of the SoftLoc drum experiments; event times map to ``t / s``.
    """
    if not (orig_rate > 0 and target_rate > 0):
        raise ValueError(f"resample: rates must be > 0, got orig_rate={orig_rate}, "
                         f"target_rate={target_rate}")
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"resample: `audio` must have shape (samples,), got {x.shape}")
    if orig_rate == target_rate:
        return x
    return np.asarray(soxr.resample(x, orig_rate, target_rate, quality="HQ"), dtype=np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Read an audio file with soundfile, mix to mono, resample to ``sample_rate`` with soxr.

    Args:
        path: a file soundfile can read (WAV, FLAC, OGG, ...).
        sample_rate: target rate in Hz.

    Returns:
        float32 array ``(samples,)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be decoded, is empty, or holds NaN/inf; the message names it.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise ValueError(f"load_audio: `sample_rate` must be a positive int, got {sample_rate!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: audio file not found")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)  # (N, channels)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise ValueError(f"{path}: cannot decode audio ({err}); expected a WAV/FLAC/OGG file "
                         "readable by soundfile") from err
    if data.shape[0] == 0:
        raise ValueError(f"{path}: audio file holds no samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise ValueError(f"{path}: audio holds NaN or infinite samples")
    return resample(mono, rate, sample_rate)

