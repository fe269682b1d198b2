"""Writing audio: 16-bit PCM WAV files, atomically (``softloc._io``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from softloc._io import atomic_write

__all__ = ["write_wav"]


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *,
              overwrite: bool = False) -> Path:
    """Write ``audio`` as a 16-bit PCM WAV file (a unique temp file, then a rename).

    Args:
        path: the ``.wav`` file to write.
        audio: samples in [-1, 1], shape ``(time,)`` or ``(time, channel)``; values beyond
            +-1 are clipped (libsndfile would wrap them around in the integer conversion).
        sample_rate: samples per second, > 0.
        overwrite: replace an existing file (else a FileExistsError).

    Returns:
        ``path``.

    Raises:
        ValueError: not 1-D/2-D, non-finite samples, or a sample rate <= 0.
    """
    x = np.asarray(audio)
    if x.ndim not in (1, 2) or x.size == 0 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"write_wav: `audio` must be a non-empty float array of shape (time,) or "
                         f"(time, channel), got dtype {x.dtype} shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"write_wav: {path}: `audio` holds NaN or inf samples")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"write_wav: `sample_rate` must be a positive integer, got "
                         f"{sample_rate!r}")
    path = Path(path)
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        sf.write(f, np.clip(x, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")
    return path
