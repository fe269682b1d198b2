import math

import numpy as np
import pytest
import soundfile as sf
import torch

from softloc.features import (
    FrontEndConfig,
    LogDelta,
    MelPower,
    load_audio,
    log_delta,
    mel_filterbank,
    mel_power,
    num_frames,
    onset_strength,
    resample,
)
from softloc.timebase import seconds_to_frames

SMALL = FrontEndConfig(sample_rate=16000, n_fft=1024, win_length=400, hop_length=80, n_mels=40)


def _htk_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def _htk_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@pytest.mark.parametrize("cfg", [FrontEndConfig(), SMALL,
                                 FrontEndConfig(f_min_hz=30.0, f_max_hz=16000.0, n_mels=40)])
def test_mel_filterbank_matches_loop_over_htk_triangles(cfg):
    fb = mel_filterbank(cfg).double().numpy()
    assert fb.shape == (cfg.n_mels, cfg.n_fft // 2 + 1)
    m_lo, m_hi = _htk_mel(cfg.f_min_hz), _htk_mel(cfg.f_max)
    edges = [_htk_hz(m_lo + (m_hi - m_lo) * i / (cfg.n_mels + 1)) for i in range(cfg.n_mels + 2)]
    ref = np.zeros_like(fb)
    for j in range(cfg.n_mels):
        a, b, c = edges[j], edges[j + 1], edges[j + 2]
        for k in range(fb.shape[1]):
            f = k * cfg.sample_rate / cfg.n_fft
            if a < f <= b:
                ref[j, k] = (f - a) / (b - a)
            elif b < f < c:
                ref[j, k] = (c - f) / (c - b)
    np.testing.assert_allclose(fb, ref, atol=1e-6)


def test_mel_filterbank_is_a_partition_of_unity_between_first_and_last_centre():
    cfg = FrontEndConfig()
    fb = mel_filterbank(cfg).double().numpy()
    freqs = np.arange(fb.shape[1]) * cfg.sample_rate / cfg.n_fft
    centres = _htk_hz(np.linspace(0, _htk_mel(cfg.f_max), cfg.n_mels + 2))[1:-1]
    inside = (freqs >= centres[0]) & (freqs <= centres[-1])
    np.testing.assert_allclose(fb[:, inside].sum(axis=0), 1.0, atol=1e-6)
    assert fb.max() <= 1.0 + 1e-6


@pytest.mark.parametrize("freq_hz", [100.0, 440.0, 1000.0, 5000.0])
def test_mel_power_of_a_sine_peaks_in_the_band_centred_nearest_its_frequency(freq_hz):
    cfg = FrontEndConfig()
    t = np.arange(cfg.sample_rate // 2) / cfg.sample_rate
    audio = (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    mel = mel_power(audio, cfg)[0]  # (n_mels, frames)
    band = int(mel[:, 20:-20].mean(dim=1).argmax())
    centres = _htk_hz(np.linspace(0, _htk_mel(cfg.f_max), cfg.n_mels + 2))[1:-1]
    assert abs(band - int(np.argmin(np.abs(centres - freq_hz)))) <= 1


@pytest.mark.parametrize("t_s", [0.0, 0.1003, 0.25, 0.4987])
def test_impulse_peaks_at_frame_round_t_times_frame_rate(t_s):
    cfg = FrontEndConfig()
    audio = np.zeros(cfg.sample_rate // 2, dtype=np.float32)
    audio[int(round(t_s * cfg.sample_rate))] = 1.0
    energy = mel_power(audio, cfg)[0].sum(dim=0)
    assert int(energy.argmax()) == int(seconds_to_frames(t_s, cfg.frame_rate))


@pytest.mark.parametrize("n", [0, 1, 79, 80, 81, 16000, 20007])
def test_num_frames_matches_mel_power_output(n):
    audio = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    assert mel_power(audio, SMALL).shape == (1, SMALL.n_mels, num_frames(n, SMALL))
    assert num_frames(n, SMALL) == 1 + n // SMALL.hop_length


def test_mel_power_batch_equals_items_and_module_equals_function():
    audio = torch.randn(3, 25_000)  # 313 frames: more than one STFT chunk on CPU
    batched = mel_power(audio, SMALL)
    assert batched.shape == (3, SMALL.n_mels, 313) and batched.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(batched[i:i + 1], mel_power(audio[i], SMALL))
    torch.testing.assert_close(MelPower(SMALL)(audio), batched)
    torch.testing.assert_close(mel_power(audio.numpy(), SMALL), batched, rtol=1e-4, atol=1e-9)


def test_mel_power_matches_numpy_reference_of_the_paper_pipeline():
    cfg = SMALL
    rng = np.random.default_rng(1)
    x = rng.standard_normal(30_000)  # 376 frames: the chunked STFT path, across a chunk border
    y = np.concatenate([x[:1], x[1:] - cfg.preemphasis * x[:-1]])
    half = cfg.n_fft // 2
    n_frames = 1 + len(x) // cfg.hop_length
    padded = np.concatenate([np.zeros(half), y, np.zeros(cfg.n_fft)])
    w = np.hamming(cfg.win_length)
    offset = (cfg.n_fft - cfg.win_length) // 2
    fb = mel_filterbank(cfg).double().numpy()
    ref = np.zeros((cfg.n_mels, n_frames))
    for i in range(n_frames):
        frame = np.zeros(cfg.n_fft)
        start = i * cfg.hop_length + offset
        frame[offset:offset + cfg.win_length] = padded[start:start + cfg.win_length] * w
        ref[:, i] = fb @ (np.abs(np.fft.rfft(frame)) ** 2 / cfg.n_fft)
    got = mel_power(torch.from_numpy(x).float(), cfg)[0].double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-6 * ref.max())


def test_mel_power_rejects_bad_input():
    with pytest.raises(TypeError, match="mel_power: `audio` must be floating point"):
        mel_power(np.zeros(100, dtype=np.int16), SMALL)
    with pytest.raises(ValueError, match=r"mel_power: `audio` must have shape \(batch, samples\)"):
        mel_power(torch.zeros(1, 2, 100), SMALL)
    with pytest.raises(ValueError, match="NaN"):
        mel_power(torch.tensor([0.0, float("nan")]), SMALL)
    with pytest.raises(TypeError, match="`cfg` must be a FrontEndConfig"):
        mel_power(torch.zeros(100), {"n_fft": 1024})


def _log_delta_reference(p, length, floor=1e-10):
    log = 10 * np.log10(np.maximum(p[:, :length], floor))
    log = log - log.mean(axis=1, keepdims=True)
    delta = np.zeros_like(log)
    delta[:, 1:] = np.diff(log, axis=1)
    out = np.zeros((2 * p.shape[0], p.shape[1]))
    out[:, :length] = np.concatenate([log, delta])
    return out


def test_log_delta_matches_reference_with_mean_removal_over_valid_frames_and_masking():
    rng = np.random.default_rng(2)
    p = rng.random((3, 5, 12)) ** 4
    p[1, :, 9:] = 0.0  # zero padding must not enter the mean
    lengths = torch.tensor([12, 9, 1])
    out = log_delta(torch.from_numpy(p), lengths=lengths)
    assert out.shape == (3, 10, 12) and out.dtype == torch.float64
    for b, n in enumerate(lengths.tolist()):
        ref = _log_delta_reference(p[b], n)
        np.testing.assert_allclose(out[b].numpy(), ref, atol=1e-9)
        np.testing.assert_allclose(out[b, :5, :n].mean(dim=1).numpy(), 0.0, atol=1e-9)
        assert torch.all(out[b, 5:, 0] == 0)
        assert torch.all(out[b, :, n:] == 0)
    torch.testing.assert_close(log_delta(torch.from_numpy(p[:1])),
                               torch.from_numpy(_log_delta_reference(p[0], 12))[None])
    torch.testing.assert_close(LogDelta()(torch.from_numpy(p), lengths), out)


def test_log_delta_is_differentiable_in_float64():
    p = (torch.rand(2, 3, 6, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: log_delta(x, lengths=torch.tensor([6, 4])), (p,))


def test_log_delta_rejects_bad_input():
    with pytest.raises(ValueError, match=r"log_delta: `mel_power` must have shape"):
        log_delta(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="log_delta: `mel_power` must be floating point"):
        log_delta(torch.zeros(1, 3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"`lengths` must lie in \[0, time=4\]"):
        log_delta(torch.zeros(1, 3, 4), lengths=torch.tensor([5]))
    with pytest.raises(ValueError, match="`floor` must be > 0"):
        log_delta(torch.zeros(1, 3, 4), floor=0.0)


def test_load_audio_mixes_stereo_to_mono(tmp_path):
    rng = np.random.default_rng(3)
    stereo = rng.uniform(-0.5, 0.5, (1000, 2)).astype(np.float32)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, 16000, subtype="FLOAT")
    mono = load_audio(path, 16000)
    assert mono.dtype == np.float32 and mono.shape == (1000,)
    np.testing.assert_allclose(mono, stereo.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("suffix,subtype", [(".wav", "PCM_16"), (".flac", "PCM_24")])
def test_load_audio_resamples_keeping_duration_and_pitch(tmp_path, suffix, subtype):
    rate_in, rate_out = 48000, 44100
    t = np.arange(rate_in) / rate_in
    path = tmp_path / f"sine{suffix}"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440.0 * t), rate_in, subtype=subtype)
    y = load_audio(path, rate_out)
    assert abs(len(y) - rate_out) <= 1
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.argmax(spectrum) * rate_out / len(y) - 440.0) < 2.0


def test_resample_by_a_fractional_rate_changes_speed():
    sr = 8000
    x = np.zeros(sr, dtype=np.float32)
    x[4000] = 1.0  # an event at 0.5 s
    for s in (7 / 8, 9 / 8):
        y = resample(x, sr * s, sr)
        assert abs(len(y) - sr / s) <= 1
        assert abs(np.argmax(np.abs(y)) / sr - 0.5 / s) < 2 / sr


def test_load_audio_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match="nope.wav: audio file not found"):
        load_audio(missing, 44100)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(ValueError, match="bad.wav: cannot decode audio"):
        load_audio(bad, 44100)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1)), 8000)
    with pytest.raises(ValueError, match="empty.wav: audio file holds no samples"):
        load_audio(empty, 8000)


def test_front_end_config_validation_and_dict_round_trip():
    cfg = FrontEndConfig(n_mels=64, f_max_hz=11025.0)
    assert FrontEndConfig.from_dict(cfg.to_dict()) == cfg
    assert FrontEndConfig().frame_rate == pytest.approx(44100 / 220)
    assert FrontEndConfig().n_features == 144
    with pytest.raises(ValueError, match=r"unknown keys \['nfft'\]"):
        FrontEndConfig.from_dict({"nfft": 2048})
    with pytest.raises(ValueError, match="`win_length` must be <= n_fft"):
        FrontEndConfig(n_fft=512, win_length=1024)
    with pytest.raises(ValueError, match="`f_max_hz` must be <= sample_rate / 2"):
        FrontEndConfig(sample_rate=16000, f_max_hz=9000.0)
    with pytest.raises(ValueError, match="contain no FFT bin"):
        FrontEndConfig(n_fft=256, win_length=256, n_mels=128)
    with pytest.raises(TypeError, match="`hop_length` must be an int"):
        FrontEndConfig(hop_length=220.0)


def _reference_onset_strength(p, c):
    """numpy, written from the formula of the docstring."""
    positive = np.sort(p[p > 0])
    s = np.log1p(c * p / positive[(positive.size - 1) // 2])  # the lower median
    return np.concatenate([[0.0], np.clip(np.diff(s, axis=1), 0, None).sum(0)])


def test_onset_strength_matches_the_spectral_flux_formula():
    rng = np.random.default_rng(0)
    p = rng.exponential(1.0, size=(2, 6, 30)) ** 3
    got = onset_strength(torch.tensor(p), compression=0.5)
    assert got.shape == (2, 30) and got.dtype == torch.float64
    for b in range(2):
        np.testing.assert_allclose(got[b].numpy(), _reference_onset_strength(p[b], 0.5),
                                   rtol=1e-10)


def test_onset_strength_does_not_depend_on_the_recording_level():
    p = torch.rand(1, 8, 50) ** 4
    torch.testing.assert_close(onset_strength(p * 1000.0), onset_strength(p), rtol=1e-4,
                               atol=1e-6)


def test_onset_strength_peaks_where_a_tone_starts_and_is_zero_on_silence():
    sr, start = SMALL.sample_rate, 0.5
    t = np.arange(sr) / sr
    x = np.where(t >= start, np.sin(2 * np.pi * 440 * t) * np.exp(-(t - start) / 0.2), 0.0)
    o = onset_strength(mel_power(x.astype(np.float32), SMALL))[0]
    peak_s = int(torch.argmax(o)) / SMALL.frame_rate
    # the window (25 ms) sees the tone from half a window before its start
    assert start - 0.02 <= peak_s <= start + 0.005
    assert torch.equal(onset_strength(torch.zeros(1, 4, 9)), torch.zeros(1, 9))


@pytest.mark.parametrize("bad, message", [
    (torch.ones(4, 9), "batch, n_mels, time"),
    (-torch.ones(1, 4, 9), "finite powers >= 0"),
    (torch.full((1, 4, 9), float("nan")), "finite powers >= 0"),
])
def test_onset_strength_rejects_bad_spectrograms(bad, message):
    with pytest.raises(ValueError, match=message):
        onset_strength(bad)


def test_onset_strength_rejects_a_bad_compression_and_integer_input():
    with pytest.raises(ValueError, match="compression"):
        onset_strength(torch.ones(1, 4, 9), compression=0)
    with pytest.raises(TypeError, match="floating point"):
        onset_strength(torch.ones(1, 4, 9, dtype=torch.int64))
