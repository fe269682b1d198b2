"""Tests of softloc.data.formats.audio: 16-bit WAV writing."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from softloc.data.formats import write_wav


def test_round_trip_within_one_16_bit_step_and_mono_stereo_shapes(tmp_path):
    rng = np.random.default_rng(0)
    for shape in [(800,), (800, 2)]:
        x = rng.uniform(-0.9, 0.9, size=shape)
        path = write_wav(tmp_path / f"{len(shape)}.wav", x, 8000)
        y, sr = sf.read(path)
        info = sf.info(str(path))
        assert sr == 8000 and info.subtype == "PCM_16" and y.shape == x.shape
        assert np.max(np.abs(y - x)) <= 1 / 32768 + 1e-12


def test_samples_beyond_full_scale_are_clipped_not_wrapped(tmp_path):
    x = np.array([0.5, 1.7, -3.0, -0.25])
    y, _ = sf.read(write_wav(tmp_path / "c.wav", x, 8000))
    np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=1 / 32768)
    assert y[1] > 0.99 and y[2] < -0.99  # a wrap-around would flip the sign


def test_an_existing_file_is_kept_unless_overwrite_and_the_umask_is_kept(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"user data")
    with pytest.raises(FileExistsError):
        write_wav(path, np.zeros(10), 8000)
    assert path.read_bytes() == b"user data"
    old = os.umask(0o022)
    try:
        write_wav(path, np.zeros(10), 8000, overwrite=True)
    finally:
        os.umask(old)
    assert sf.read(path)[0].shape == (10,)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]  # no temp file left


@pytest.mark.parametrize(("audio", "rate", "match"), [
    (np.zeros((2, 2, 2)), 8000, r"shape \(time,\) or \(time, channel\)"),
    (np.zeros(4, dtype=np.int16), 8000, "float array"),
    (np.array([0.0, np.nan]), 8000, "NaN or inf"),
    (np.zeros(4), 0, "positive integer"),
    (np.zeros(4), 44.1, "positive integer"),
])
def test_bad_audio_or_rate_is_a_value_error(tmp_path, audio, rate, match):
    with pytest.raises(ValueError, match=match):
        write_wav(tmp_path / "x.wav", audio, rate)
    assert not (tmp_path / "x.wav").exists()
