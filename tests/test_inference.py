import json
from dataclasses import replace

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch

from softloc.config import apply_overrides, load_preset
from softloc.inference import (
    MODEL_FILE,
    Detector,
    calibrate_time_offset,
    collect_audio_inputs,
    detect_to_folder,
    evaluate_folders,
    file_probabilities,
    load_model_file,
    save_model_file,
    write_events,
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
    """p(t) = the frame's position in the *file*, encoded in the input; checks window stitching."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, mel, lengths):
        return mel[:, :2, :] / 1000.0  # (B, M, T) -> (B, 2, T)


def test_file_probabilities_reassembles_windows_in_file_order():
    n_frames = 523
    mel = torch.arange(n_frames, dtype=torch.float32).expand(4, n_frames).clone()
    probs = file_probabilities(_FrameIndexModel(), mel, window_frames=150, hop_frames=50)
    assert probs.shape == (2, n_frames)
    np.testing.assert_allclose(probs[0], np.arange(n_frames) / 1000.0, rtol=1e-6)


def test_file_probabilities_of_short_file_uses_one_padded_window():
    mel = torch.arange(30, dtype=torch.float32).expand(4, 30).clone()
    probs = file_probabilities(_FrameIndexModel(), mel, window_frames=150, hop_frames=50)
    np.testing.assert_allclose(probs[1], np.arange(30) / 1000.0, rtol=1e-6)


def test_file_probabilities_matches_direct_model_on_one_window():
    cfg = small_config()
    model = model_from_config(cfg).eval()
    mel = torch.rand(16, 120) + 0.01
    probs = file_probabilities(model, mel, window_frames=150, hop_frames=50)
    with torch.no_grad():
        direct = model(mel[None], torch.tensor([120]))[0].numpy()
    np.testing.assert_allclose(probs, direct, rtol=1e-5, atol=1e-7)


def test_model_file_round_trip_rebuilds_identical_model(tmp_path):
    cfg = small_config()
    model = model_from_config(cfg)
    save_model_file(tmp_path / MODEL_FILE, model, cfg)
    again, cfg2 = load_model_file(tmp_path / MODEL_FILE)
    assert cfg2 == cfg
    x = torch.rand(2, 16, 40)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), again(x))


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
    det = _detector().with_settings(threshold=0.0)
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
    assert all(0.0 <= s <= 1.0 for _, _, s in from_path)


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
    det = _detector().with_settings(threshold=0.0)
    audio = np.random.default_rng(3).normal(size=44100).astype(np.float32)
    a = det.detect((audio, 44100))
    b = det.with_settings(time_offset_s=0.25).detect((audio, 44100))
    assert [t + 0.25 for t, _, _ in a] == pytest.approx([t for t, _, _ in b])


def test_calibrate_time_offset_is_minus_the_median_error():
    ref = [np.array([1.0, 2.0, 3.0]), np.array([0.5])]
    est = [np.array([1.02, 2.03, 3.02, 7.0]), np.array([0.52])]
    assert calibrate_time_offset(est, ref) == pytest.approx(-0.02)
    assert calibrate_time_offset([np.array([])], [np.array([1.0])]) == 0.0


def test_write_events_formats(tmp_path):
    events = [(0.5, "KD", 0.9), (0.75, "HH", 0.6), (1.0, "SD", 0.8)]
    write_events(tmp_path / "a.txt", events)
    assert (tmp_path / "a.txt").read_text() == "0.500000\tKD\n0.750000\tHH\n1.000000\tSD\n"
    write_events(tmp_path / "a.json", events, fmt="json")
    rows = json.loads((tmp_path / "a.json").read_text())
    assert rows[1] == {"time_s": 0.75, "label": "HH", "score": 0.6}
    write_events(tmp_path / "a.mid", events, fmt="midi")
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "a.mid"))
    inst = midi.instruments[0]
    assert inst.is_drum
    assert [(round(n.start, 3), n.pitch) for n in inst.notes] == [(0.5, 36), (0.75, 42), (1.0, 38)]
    with pytest.raises(ValueError, match="no MIDI pitch"):
        write_events(tmp_path / "b.mid", [(0.1, "cowbell", 1.0)], fmt="midi")
    with pytest.raises(ValueError, match="`fmt` must be one of"):
        write_events(tmp_path / "b.x", events, fmt="xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.mid", "a.txt"]


def test_detect_to_folder_writes_one_file_per_input(tmp_path):
    det = _detector()
    for name in ("x.wav", "y.flac"):
        sf.write(tmp_path / name, np.zeros(8000, np.float32), 16000)
    paths = collect_audio_inputs([tmp_path])
    written = detect_to_folder(det, paths, tmp_path / "out")
    assert sorted(p.name for p, _ in written) == ["x.txt", "y.txt"]


def test_collect_audio_inputs_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such audio file"):
        collect_audio_inputs([tmp_path / "missing.wav"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no audio files"):
        collect_audio_inputs([tmp_path / "empty"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sf.write(tmp_path / "a" / "s.wav", np.zeros(100, np.float32), 8000)
    sf.write(tmp_path / "b" / "s.wav", np.zeros(100, np.float32), 8000)
    with pytest.raises(ValueError, match="share the stem 's'"):
        collect_audio_inputs([tmp_path / "a", tmp_path / "b"])


def test_evaluate_folders_matches_metrics_and_reports_missing_files(tmp_path):
    ref, est = tmp_path / "ref", tmp_path / "est"
    ref.mkdir()
    est.mkdir()
    (ref / "a.txt").write_text("1.0\tKD\n2.0\tSD\n")
    (est / "a.txt").write_text("1.03\tKD\n2.2\tSD\n")
    res = evaluate_folders(ref, est)
    assert res["overall"]["f1"] == pytest.approx(0.5)
    assert res["per_class"]["KD"]["f1"] == pytest.approx(1.0)
    (ref / "b.txt").write_text("1.0\tKD\n")
    with pytest.raises(FileNotFoundError, match="b.txt: detection file missing"):
        evaluate_folders(ref, est)
    split = tmp_path / "split.txt"
    split.write_text("a\n")
    assert evaluate_folders(ref, est, split_file=split)["settings"]["n_files"] == 1


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
