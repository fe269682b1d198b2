"""softloc.inference.signals: the signal input stage.

A hand-set network (one conv tap on the framed input) turns spikes into p(t) peaks, so the
Detector's times can be checked against the spike positions; the spline interpolation is checked
against the frames it passes through and against a parabola's known vertex.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from softloc.config import load_preset
from softloc.data.signal_store import frame_signal
from softloc.data.signals import Signal, write_signal
from softloc.inference import INPUT_STAGES, Detector, SignalInput, make_input_stage
from softloc.inference.model_file import read_model_file, save_model_file
from softloc.inference.signals import read_signal_source, upsample_probabilities
from softloc.models.build import model_from_config


def test_the_signal_stage_is_registered():
    assert INPUT_STAGES["signal"] is SignalInput


def test_upsampling_passes_through_the_frames_and_finds_a_parabola_vertex():
    frames = np.arange(20, dtype=np.float64)
    vertex = 9.3
    p = np.clip(0.9 - 0.05 * (frames - vertex) ** 2, 0, 1)[None]
    up = upsample_probabilities(p, 10)
    assert up.shape == (1, 200)
    assert np.allclose(up[0, ::10], p[0])
    assert abs(np.argmax(up[0]) / 10 - vertex) <= 0.1
    assert upsample_probabilities(p, 1) is p


def test_read_signal_source_takes_files_signals_and_arrays(tmp_path):
    sig = Signal(np.arange(10, dtype=np.float32)[None], 5.0, ("x",))
    write_signal(tmp_path / "a", sig)
    assert np.array_equal(read_signal_source(tmp_path / "a.npy").data, sig.data)
    assert read_signal_source(sig) is sig
    assert read_signal_source((np.arange(4.0), 2)).data.shape == (1, 4)
    with pytest.raises(ValueError, match="rate_hz"):
        read_signal_source((np.arange(4.0), 0))
    with pytest.raises(TypeError, match="Detector.detect: a signal must be"):
        read_signal_source(3)


def _spike_detector():
    """An ecg-preset network whose logit is high exactly where the framed input spikes."""
    config = replace(load_preset("ecg"), classes=("beat",))
    model = model_from_config(config).eval()
    with torch.no_grad():
        for conv, norm in zip(model.convs, model.norms, strict=True):
            conv.weight.zero_()
            conv.weight[0, 0, conv.kernel_size[0] // 2] = 1.0  # pass channel 0 through
            norm.reset_running_stats()
        model.out.weight.zero_()
        model.out.weight[0, 0] = 0.5
        model.out.bias.fill_(-12.0)
    config = replace(config, inference=replace(config.inference, threshold=0.5))
    return Detector(model, config, input_stage=make_input_stage("signal", config))


def test_detector_finds_spikes_at_their_times():
    det = _spike_detector()
    rate, hop = 360, 18
    # the strided 1-tap convolutions see sample j*hop for frame j: spikes on frame centres
    spikes_s = np.round(np.array([1.0, 2.5, 4.05, 7.77, 12.3]) * rate / hop) * hop / rate
    x = np.random.default_rng(1).normal(0, 0.01, (1, 15 * rate)).astype(np.float32)
    x[0, np.round(spikes_s * rate).astype(int)] = 40.0
    assert det.frame_rate == rate  # p(t) interpolated to the signal rate
    found = np.array([t for t, _, _ in det.detect((x, rate))])
    assert len(found) == len(spikes_s)
    assert np.abs(found - spikes_s).max() <= 1.5 / rate


def test_features_are_the_framed_normalised_signal():
    config = replace(load_preset("ecg"), classes=("beat",))
    stage = make_input_stage("signal", config)
    x = np.random.default_rng(2).normal(3, 2, (1, 3600)).astype(np.float32)
    feats = stage.features(stage.read((x, 360.0))).numpy()
    q25, q50, q75 = np.percentile(x.astype(np.float64), [25, 50, 75])
    assert np.allclose(feats, frame_signal((x - q50) / ((q75 - q25) / 1.349), 18), atol=1e-4)
    resampled = stage.features(stage.read((x[:, ::2], 180.0)))
    assert resampled.shape == feats.shape  # records at other rates are resampled to 360 Hz


def test_model_file_of_a_sensor_network_loads_with_the_signal_stage(tmp_path):
    det = _spike_detector()
    path = save_model_file(tmp_path / "model.pt", det.model, det.config)
    mf = read_model_file(path)
    assert mf.input_kind == "signal" and mf.model_name == "signal-crnn"
    loaded = Detector.load(path)
    assert isinstance(loaded.input_stage, SignalInput)
    x = np.zeros((1, 3600), np.float32)
    x[0, 1800] = 40.0
    assert [round(t, 2) for t, _, _ in loaded.detect((x, 360.0))] == [5.0]


def test_snapping_moves_detections_onto_the_larger_nearby_peak():
    det = _spike_detector().with_settings(snap_radius_s=0.0)
    rate, hop = 360, 18
    centres = np.array([40, 100, 160, 230]) * hop  # samples on frame centres: the network fires
    x = np.random.default_rng(3).normal(0, 0.01, (1, 15 * rate)).astype(np.float32)
    x[0, centres] = 40.0
    x[0, centres + 7] = 80.0  # off the frame grid: unseen by the network, 19 ms later
    plain = np.array([t for t, _, _ in det.detect((x, rate))])
    assert np.abs(plain - centres / rate).max() <= 1.5 / rate
    inf = replace(det.config.inference, snap_radius_s=0.03, snap_direction="up")
    snapped = Detector(det.model, replace(det.config, inference=inf),
                       input_stage=make_input_stage("signal", det.config))
    found = snapped.events((x, rate))
    assert np.allclose(found.times_s, (centres + 7) / rate)
    assert np.allclose(found.frames / found.frame_rate, found.times_s)
    far = replace(inf, snap_radius_s=0.01)  # 4 samples: the larger peak is out of reach
    assert np.allclose([t for t, _, _ in Detector(det.model, replace(det.config, inference=far),
                                                  input_stage=snapped.input_stage).detect(
                                                      (x, rate))], plain, atol=1.5 / rate)


def test_refine_merges_events_closer_than_the_minimum_distance_keeping_the_higher_score():
    from softloc.decode import Events

    config = replace(load_preset("ecg"), classes=("a", "b"),
                     inference=replace(load_preset("ecg").inference, snap_radius_s=0.05))
    assert config.inference.min_distance_s == 0.2
    stage = make_input_stage("signal", config)
    x = np.zeros((1, 3600), np.float32)
    x[0, 1000], x[0, 1040] = 10.0, 8.0  # two peaks 111 ms apart
    at = np.array([990, 1000, 1010, 1045, 1005])
    events = Events(frames=at, classes=np.array([0, 0, 0, 0, 1]),
                    scores=np.array([0.6, 0.7, 0.9, 0.95, 0.5]), times_s=at / 360.0,
                    n_classes=2, frame_rate=360.0, time_offset_s=0.0)
    signal = Signal(x, 360.0, ("ecg",))
    out = stage.refine(signal, events, config.inference)
    assert out.classes.tolist() == [1, 0]  # class b kept apart from class a
    assert out.scores.tolist() == [0.5, 0.95]
    assert np.allclose(out.times_s * 360, [1000, 1040]) and out.frames.tolist() == [1000, 1040]
    # without a minimum distance only events on one sample merge (the highest score stays)
    loose = stage.refine(signal, events, replace(config.inference, min_distance_s=0.0))
    assert list(zip(loose.classes.tolist(), loose.frames.tolist(), loose.scores.tolist(),
                    strict=True)) == [
        (0, 1000, 0.9), (1, 1000, 0.5), (0, 1040, 0.95)]
    with pytest.raises(ValueError, match="snap_channel is 1, but the signal has 1 channel"):
        stage.refine(signal, events, replace(config.inference, snap_channel=1))


def test_snapping_is_refused_for_audio_runs():
    config = replace(load_preset("demo"), classes=("KD",))
    stage = make_input_stage("audio", config)
    with pytest.raises(ValueError, match="set inference.snap_radius_s to 0"):
        stage.refine(np.zeros(100, np.float32), None, replace(config.inference,
                                                               snap_radius_s=0.05))


def test_signal_of_features_gives_back_the_normalised_signal():
    config = replace(load_preset("ecg"), classes=("beat",))
    stage = make_input_stage("signal", config)
    x = np.random.default_rng(4).normal(1, 3, (1, 3600)).astype(np.float32)
    sig = stage.read((x, 360.0))
    back = stage.signal_of_features(stage.features(sig))
    q25, q50, q75 = np.percentile(x.astype(np.float64), [25, 50, 75])
    assert back.rate_hz == 360.0 and back.n_channels == 1
    assert np.allclose(back.data[:, :3600], (x - q50) / ((q75 - q25) / 1.349), atol=1e-4)


def test_count_calibration_counts_the_snapped_events():
    from softloc.data.formats import CountWindow
    from softloc.inference import calibrate_from_counts

    det = _spike_detector()
    rate, hop = 360, 18
    inf = replace(det.config.inference, min_distance_s=0.03, snap_radius_s=0.1,
                  snap_direction="up", calibrate_threshold=True)
    det = Detector(det.model, replace(det.config, inference=inf),
                   input_stage=make_input_stage("signal", det.config))
    beats = np.arange(1.0, 29.0, 1.0)  # one beat a second: two triggers and a larger peak each
    x = np.random.default_rng(5).normal(0, 0.01, (1, 30 * rate)).astype(np.float32)
    for b in beats:
        first = int(round(b * rate / hop)) * hop
        x[0, [first, first + 3 * hop]] = 40.0  # on frame centres, 0.15 s apart: two events
        x[0, first + 27] = 80.0  # between them, off the grid: unseen by the network
    windows = {"v": [CountWindow("v", s, s + 10.0, {"beat": int(np.sum((beats >= s)
                                                                        & (beats < s + 10)))})
                     for s in (0.0, 10.0, 20.0)]}
    feats = {"v": det.input_stage.features(det.input_stage.read((x, rate)))}
    _, snapped = calibrate_from_counts(det, feats, windows)
    _, plain = calibrate_from_counts(det.with_settings(snap_radius_s=0.0), feats, windows)
    assert snapped["valid_count_abs_error"]["beat"] == 0
    assert plain["valid_count_abs_error"]["beat"] == len(beats)  # every beat counted twice


def test_saving_activations_keeps_the_snapped_events(tmp_path):
    from softloc.inference.batch import detect_batch, plan_outputs

    det = _spike_detector()
    rate, hop = 360, 18
    centres = np.array([40, 100, 160]) * hop
    x = np.random.default_rng(6).normal(0, 0.01, (1, 12 * rate)).astype(np.float32)
    x[0, centres] = 40.0
    x[0, centres + 7] = 80.0  # unseen by the network; the snap (up, 30 ms) moves there
    write_signal(tmp_path / "rec", Signal(x, float(rate), ("ecg",)))
    inf = replace(det.config.inference, snap_radius_s=0.03, snap_direction="up")
    det = Detector(det.model, replace(det.config, inference=inf),
                   input_stage=make_input_stage("signal", det.config))
    jobs = plan_outputs([tmp_path / "rec.npy"], tmp_path / "out", save_activations=True)
    report = detect_batch(det, jobs, tmp_path / "out", progress=False)
    assert not report.failed
    rows = [line.split("\t") for line in (tmp_path / "out" / "rec.txt").read_text().splitlines()]
    times = [float(t) for t, _, _ in rows]
    assert len(rows) == len(det.detect(tmp_path / "rec.npy")) == len(centres)
    assert np.allclose(times, (centres + 7) / rate, atol=1e-5)
    probs = np.load(tmp_path / "out" / "rec.npy")
    assert probs.shape[0] == 1
