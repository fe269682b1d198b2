from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from softloc.config import apply_overrides, load_preset
from softloc.features import mel_power
from softloc.inference import (
    INPUT_STAGES,
    MODEL_FILE,
    AudioInput,
    Detector,
    InputStage,
    file_probabilities,
    save_model_file,
)
from softloc.models import model_from_config

SMALL = [
    "features.n_fft=1024",
    "features.win_length=1024",
    "features.hop_length=441",
    "features.n_mels=16",
    "model.conv_filters=[4, 4]",
    "model.pool_sizes=[4, 8]",
    "model.lstm_units=6",
    "model.hidden_units=4",
    "classes=[HH, KD, SD]",
]


def small_config():
    return apply_overrides(load_preset("drums"), SMALL)


class _FrameIndexModel(torch.nn.Module):
    """p(t) = the frame's position in the *file* / 1000, encoded in the input and returned as a
    logit; checks window stitching (and that the detector applies the sigmoid)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, mel, lengths):
        return torch.logit(mel[:, :2, :].double() / 1000.0 + 1e-4).float()  # (B, M, T) -> (B, 2, T)


def test_file_probabilities_reassembles_windows_in_file_order():
    n_frames = 523
    mel = torch.arange(n_frames, dtype=torch.float32).expand(4, n_frames).clone()
    probs = file_probabilities(_FrameIndexModel(), mel, window_frames=150, hop_frames=50)
    assert probs.shape == (2, n_frames)
    np.testing.assert_allclose(probs[0], np.arange(n_frames) / 1000.0 + 1e-4, rtol=1e-5)


def test_file_probabilities_of_short_file_uses_one_padded_window():
    mel = torch.arange(30, dtype=torch.float32).expand(4, 30).clone()
    probs = file_probabilities(_FrameIndexModel(), mel, window_frames=150, hop_frames=50)
    np.testing.assert_allclose(probs[1], np.arange(30) / 1000.0 + 1e-4, rtol=1e-5)


def test_file_probabilities_matches_direct_model_on_one_window():
    cfg = small_config()
    model = model_from_config(cfg).eval()
    mel = torch.rand(16, 120) + 0.01
    probs = file_probabilities(model, mel, window_frames=150, hop_frames=50)
    with torch.no_grad():
        direct = torch.sigmoid(model(mel[None], torch.tensor([120])))[0].numpy()
    np.testing.assert_allclose(probs, direct, rtol=1e-5, atol=1e-7)


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        Detector.load(tmp_path / "nope")
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="has no model.pt"):
        Detector.load(tmp_path / "run")
    torch.save({"hello": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a softloc model file"):
        Detector.load(tmp_path / "x.pt")


def _detector():
    cfg = small_config()
    return Detector(model_from_config(cfg), cfg)


def test_detect_accepts_path_and_array_and_returns_sorted_labelled_events(tmp_path):
    det = _detector().with_settings(threshold=1e-6)
    rng = np.random.default_rng(0)
    audio = rng.normal(size=44100 * 2).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", audio, 44100, subtype="FLOAT")
    from_path = det.detect(tmp_path / "a.wav")
    from_array = det.detect((audio, 44100))
    assert from_path
    assert [(t, lab) for t, lab, _ in from_path] == [(t, lab) for t, lab, _ in from_array]
    assert [s for *_, s in from_path] == pytest.approx([s for *_, s in from_array])
    times = [t for t, _, _ in from_path]
    assert times == sorted(times)
    assert {lab for _, lab, _ in from_path} <= {"HH", "KD", "SD"}
    # scores are the peak p(t) of each event: a value of the detector's probabilities
    probs = det.probabilities(tmp_path / "a.wav")
    fr, labels = det.frame_rate, list(det.classes)
    for t, lab, score in from_path:
        assert score == pytest.approx(probs[labels.index(lab), round(t * fr)], rel=1e-9)


def test_detect_resamples_array_input():
    det = _detector()
    audio = np.random.default_rng(1).normal(size=22050).astype(np.float32)
    p22 = det.probabilities((audio, 22050))
    assert p22.shape[1] == 1 + 44100 // 441


def test_detect_rejects_bad_inputs():
    det = _detector()
    with pytest.raises(TypeError, match="file path or an \\(array, sample_rate\\)"):
        det.detect(42)
    with pytest.raises(ValueError, match="sample rate must be > 0"):
        det.detect((np.zeros(100, np.float32), 0))
    with pytest.raises(ValueError, match="threshold"):
        det.with_settings(threshold=1.5)


def test_tta_probabilities_have_file_length_and_average_versions():
    det = _detector()
    audio = np.random.default_rng(2).normal(size=44100).astype(np.float32)
    plain = det.probabilities((audio, 44100))
    tta = det.with_settings(tta_factors=(0.875, 1.125)).probabilities((audio, 44100))
    assert tta.shape == plain.shape
    assert not np.allclose(tta, plain)


def test_time_offset_shifts_detected_times():
    det = _detector().with_settings(threshold=1e-6)
    audio = np.random.default_rng(3).normal(size=44100).astype(np.float32)
    a = det.detect((audio, 44100))
    b = det.with_settings(time_offset_s=0.25).detect((audio, 44100))
    assert [t + 0.25 for t, _, _ in a] == pytest.approx([t for t, _, _ in b])


def test_audio_with_huge_or_non_finite_samples_is_refused_naming_the_file(tmp_path):
    det = _detector()
    path = tmp_path / "loud.wav"
    sf.write(path, np.full(8000, 1e30, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=f"{path}: audio samples must be finite"):
        det.detect(path)
    with pytest.raises(ValueError, match="Detector.detect: audio samples must be finite"):
        det.detect((np.array([0.0, np.nan] * 4000), 16000))


def test_detector_load_none_uses_shipped_model_or_explains():
    try:
        det = Detector.load()
    except FileNotFoundError as err:
        assert "pretrained drum model" in str(err)
    else:
        assert det.classes == ("HH", "KD", "SD")


def test_with_settings_keeps_the_network():
    det = _detector()
    other = det.with_settings(threshold=0.3)
    assert other.model is det.model
    assert other.config.inference.threshold == 0.3
    assert det.config.inference.threshold == 0.4
    assert replace(other.config, inference=det.config.inference) == det.config


def test_per_class_thresholds_and_offsets_apply_to_their_class_only():
    det = _detector()
    fr = det.frame_rate
    probs = np.zeros((3, 100))
    probs[0, 10] = 0.3  # HH: above 0.25 only
    probs[1, 20] = 0.3  # KD: below its 0.5 threshold
    probs[2, 30] = 0.9  # SD
    tuned = det.with_settings(class_thresholds=(0.25, 0.5, 0.4), class_offsets_s=(0.01, 0.0, -0.02))
    ev = tuned.events_from_probabilities(probs)
    got = ev.labelled(det.classes)
    assert [lab for _, lab in got] == ["HH", "SD"]
    assert [t for t, _ in got] == pytest.approx([10 / fr + 0.01, 30 / fr - 0.02])
    plain = det.events_from_probabilities(probs)
    assert plain.labelled(det.classes) == [(30 / fr, "SD")]
    # a global threshold clears the per-class ones
    assert tuned.with_settings(threshold=0.1).config.inference.class_thresholds == ()
    with pytest.raises(ValueError, match="one entry per class"):
        det.with_settings(class_offsets_s=(0.0,)).events_from_probabilities(probs)


def test_detector_loads_run_folders_with_the_recorded_input_stage(tmp_path):
    cfg = small_config()
    model = model_from_config(cfg)
    save_model_file(tmp_path / "run" / MODEL_FILE, model, cfg)
    det = Detector.load(tmp_path / "run")
    assert isinstance(det.input_stage, AudioInput)
    audio = np.random.default_rng(5).normal(size=44100).astype(np.float32)
    expected = Detector(model, cfg).probabilities((audio, 44100))
    np.testing.assert_allclose(det.probabilities((audio, 44100)), expected, rtol=1e-6)


class _Sequence(InputStage):
    """A feature-sequence input: a (n_features, frames) array at 10 frames/s, no audio."""

    kind = "test-sequence"

    @property
    def frame_rate(self):
        return 10.0

    def read(self, source):
        return np.asarray(source, dtype=np.float32)

    def features(self, signal):
        return torch.from_numpy(signal)


class _FirstRowIsLogit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, lengths=None):
        return x[:, :1, :]  # (B, F, T) -> (B, 1, T)


def test_a_new_input_stage_plugs_in_without_changing_the_detector(monkeypatch):
    cfg = apply_overrides(small_config(), ["classes=[E]", "data.window_s=3.0",
                                           "inference.hop_s=1.0", "inference.threshold=0.5"])
    monkeypatch.setitem(INPUT_STAGES, _Sequence.kind, _Sequence)
    det = Detector(_FirstRowIsLogit(), cfg, input_stage=_Sequence(cfg))
    x = np.full((2, 100), -5.0, dtype=np.float32)
    x[0, 42] = 5.0  # one event at frame 42 = 4.2 s
    events = det.detect(x)
    assert [(round(t, 6), lab) for t, lab, _ in events] == [(4.2, "E")]
    calls = []
    model_forward = det.model.forward
    det.model.forward = lambda x, lengths=None: calls.append(x.shape) or model_forward(x, lengths)
    det.probabilities(x)
    # windows of 3 s and hops of 1 s at the stage's 10 frames/s: 30 frames, 8 windows
    assert sum(shape[0] for shape in calls) == 8 and {s[-1] for s in calls} == {30}
    with pytest.raises(ValueError, match="has no test-time augmentation"):
        det.with_settings(tta_factors=(0.9,)).detect(x)


def test_features_of_audio_input_are_the_power_mel():
    cfg = small_config()
    audio = np.random.default_rng(6).normal(size=8000).astype(np.float32)
    stage = AudioInput(cfg)
    np.testing.assert_allclose(stage.features(stage.read((audio, 44100))),
                               mel_power(audio, cfg.features)[0], rtol=1e-6)
