"""softloc.data.signal_store (+ the signal branch of softloc.data.layout): framing against a
brute-force loop, time scaling by impulse positions, normalisation by its definition, and
training windows whose counts and frame targets agree with the annotations."""

from __future__ import annotations

import numpy as np
import pytest

from softloc.config import load_preset
from softloc.data.augment import AugmentSettings
from softloc.data.formats import write_annotation_file, write_counts_csv, write_split_file
from softloc.data.layout import count_windows, load_dataset
from softloc.data.signal_store import (
    augment_signal,
    frame_signal,
    prepare_signal_store,
    resample_signal,
    signal_features,
    time_scale,
    unframe_signal,
)
from softloc.data.signals import Signal, write_signal
from softloc.data.subjects import write_subjects_csv
from softloc.data.windows import WindowDataset
from softloc.training.loaders import check_signal_run


def test_frame_signal_matches_a_brute_force_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 50)).astype(np.float32)
    hop = 4
    out = frame_signal(x, hop)
    frames = -(-50 // hop)
    assert out.shape == (3 * hop, frames)
    for c in range(3):
        for k in range(hop):
            for j in range(frames):
                i = j * hop + k
                assert out[c * hop + k, j] == (x[c, i] if i < 50 else 0.0)
    assert np.array_equal(unframe_signal(out, hop)[:, :50], x)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((1, 2, 3))])
def test_frame_signal_rejects_non_2d(bad):
    with pytest.raises(ValueError, match="frame_signal: `x` must be a 2-D array"):
        frame_signal(bad, 2)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_time_scale_moves_an_impulse_from_t_to_t_over_factor(factor):
    x = np.zeros((1, 1000), np.float32)
    x[0, 400] = 1.0
    y = time_scale(x, factor)
    assert y.shape[1] == round(1000 / factor)
    assert abs(int(np.argmax(y[0])) - 400 / factor) <= 1


def test_resample_signal_keeps_a_sine_and_skips_rates_within_one_percent():
    t = np.arange(3600) / 360.0
    x = np.sin(2 * np.pi * 5 * t)[None].astype(np.float32)
    assert resample_signal(x, 360.0, 362.0) is x
    y = resample_signal(x, 360.0, 250.0)
    t2 = np.arange(y.shape[1]) / 250.0
    mid = slice(50, -50)
    assert np.allclose(y[0, mid], np.sin(2 * np.pi * 5 * t2)[mid], atol=0.02)


def test_signal_features_normalise_each_channel_by_median_and_iqr():
    rng = np.random.default_rng(1)
    data = np.stack([rng.normal(5, 2, 720), rng.normal(-1, 0.1, 720)]).astype(np.float32)
    cfg = load_preset("ecg").features
    feats = signal_features(Signal(data, 360.0, ("a", "b")), cfg)
    x = unframe_signal(feats, cfg.hop_length)[:, :720]
    for row, raw in zip(x, data, strict=True):
        q25, q50, q75 = np.percentile(raw.astype(np.float64), [25, 50, 75])
        assert np.allclose(row, (raw - q50) / ((q75 - q25) / 1.349), atol=1e-4)


def test_signal_features_refuse_another_channel_count():
    cfg = load_preset("ecg").features
    with pytest.raises(ValueError, match="2 channel.*network reads 1"):
        signal_features(Signal(np.zeros((2, 100), np.float32), 360.0, ("a", "b"),
                               source="x.npy"), cfg, n_channels=1)


def test_augment_signal_reports_its_time_factor_and_scales_the_length():
    x = np.random.default_rng(0).normal(size=(1, 3600)).astype(np.float32)
    settings = AugmentSettings(rate_range=(0.9, 1.1), p_rate=1.0, gain_db=(0.0, 0.0), p_noise=0.0)
    y, factor = augment_signal(x, rng=np.random.default_rng(3), settings=settings)
    assert 0.9 <= factor < 1.1 and y.shape[1] == round(3600 / factor)


def test_augment_signal_inverts_the_polarity_with_p_invert():
    x = np.random.default_rng(0).normal(size=(2, 1000)).astype(np.float32)
    off = dict(p_rate=0.0, p_stretch=0.0, gain_db=(0.0, 0.0), p_noise=0.0)
    y, factor = augment_signal(x, rng=np.random.default_rng(1),
                               settings=AugmentSettings(**off, p_invert=1.0))
    assert factor == 1.0 and np.array_equal(y, -x)
    flips = [augment_signal(x, rng=np.random.default_rng(s),
                            settings=AugmentSettings(**off, p_invert=0.5))[0][0, 0] == -x[0, 0]
             for s in range(40)]
    assert 5 < sum(flips) < 35  # drawn, not fixed
    y0, _ = augment_signal(x, rng=np.random.default_rng(1), settings=AugmentSettings(**off))
    assert np.array_equal(y0, x)


def _spike_dataset(root, *, rate=360, seconds=30.0, n_files=3, seed=0):
    """Signals with unit spikes at random times; events = spike times; counts per 10 s."""
    rng = np.random.default_rng(seed)
    windows, stems = [], []
    for i in range(n_files):
        stem = f"s{i}"
        n = int(seconds * rate)
        idx = np.sort(rng.choice(np.arange(20, n - 20), size=40, replace=False))
        x = rng.normal(0, 0.05, (1, n)).astype(np.float32)
        x[0, idx] += 3.0
        write_signal(root / "signals" / stem, Signal(x, float(rate), ("ecg",)))
        events = [(float(k) / rate, "beat") for k in idx]
        write_annotation_file(root / "annotations" / f"{stem}.txt", events)
        windows += count_windows(stem, events, seconds, window_s=10.0, hop_s=10.0,
                                 classes=["beat"])
        stems.append(stem)
    write_counts_csv(root / "counts.csv", windows, classes=["beat"])
    return stems


def test_layout_reads_a_signal_dataset_with_subjects_and_a_split_by_subject(tmp_path):
    stems = _spike_dataset(tmp_path, n_files=4)
    write_subjects_csv(tmp_path / "subjects.csv", {"s0": "a", "s1": "a", "s2": "b", "s3": "c"})
    index = load_dataset(tmp_path, split_fractions=(0.34, 0.33, 0.33))
    assert index.kind == "signal" and index.stems == tuple(stems)
    assert index.durations_s == {s: 30.0 for s in stems}
    assert index.source_paths["s0"].name == "s0.npy"
    assert index.subjects["s1"] == "a" and index.split_source.startswith("seeded by subject")
    sides = {s: k for k, v in index.splits.items() for s in v}
    assert sides["s0"] == sides["s1"]  # one subject, one side
    assert len(index.count_windows["s0"]) == 3


def test_layout_refuses_subjects_of_unknown_stems(tmp_path):
    _spike_dataset(tmp_path, n_files=1)
    write_subjects_csv(tmp_path / "subjects.csv", {"s0": "a", "zz": "b"})
    with pytest.raises(ValueError, match="subjects.csv: unknown stem 'zz'"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("labels", ["counts", "onsets"])
def test_training_windows_count_and_mark_the_spikes(tmp_path, labels):
    stems = _spike_dataset(tmp_path)
    for name, part in (("train", stems[:2]), ("valid", stems[2:]), ("test", [])):
        write_split_file(tmp_path / "splits" / f"{name}.txt", part)
    index = load_dataset(tmp_path)
    config = check_signal_run(load_preset("ecg"), index)
    assert config.model.args["n_channels"] == 1
    cfg = config.features
    store = prepare_signal_store(index, cfg, stems=stems[:2])
    windows = WindowDataset(index, store, stems=stems[:2], labels=labels, window_s=10.0,
                            hop_s=10.0, max_frames=200, variable_length=False)
    for i in range(len(windows)):
        item = windows[i]
        stem, start_s, dur_s = windows.describe(i)
        ref = np.array([t for t, _ in index.events[stem]])
        inside = ref[(ref >= start_s) & (ref < start_s + dur_s)]
        assert int(item["counts"][0]) == len(inside)
        assert item["mel"].shape == (cfg.hop_length, 200)
        if labels == "onsets":
            frames = np.floor(inside * cfg.frame_rate + 0.5).astype(int) - round(start_s * 20)
            brute = np.zeros(200)
            np.add.at(brute, frames, 1.0)
            assert np.array_equal(item["targets"][0].numpy(), brute)
        # the spike sample of each event sits in its window's framed input
        x = unframe_signal(item["mel"].numpy(), cfg.hop_length)[0]
        for t in inside:
            assert x[int(round((t - start_s) * 360))] > 10


def test_check_signal_run_refuses_mismatched_networks_and_channels(tmp_path):
    _spike_dataset(tmp_path, n_files=2)
    index = load_dataset(tmp_path)
    with pytest.raises(ValueError, match="holds time series.*--preset ecg"):
        check_signal_run(load_preset("demo"), index)
    write_signal(tmp_path / "signals" / "s1", Signal(np.zeros((2, 10800), np.float32), 360.0,
                                                     ("a", "b")), overwrite=True)
    with pytest.raises(ValueError, match="s1.npy: 2 channel.*every signal"):
        check_signal_run(load_preset("ecg"), load_dataset(tmp_path))


def test_a_csv_signal_dataset_loads_and_frames_like_its_npy_twin(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 720)).astype(np.float32)
    (tmp_path / "signals").mkdir()
    lines = ["time,a,b"] + [f"{i / 360:.9f},{float(x[0, i])!r},{float(x[1, i])!r}"
                            for i in range(720)]
    (tmp_path / "signals" / "c.csv").write_text("\n".join(lines) + "\n")
    write_signal(tmp_path / "signals" / "n", Signal(x, 360.0, ("a", "b")))
    index = load_dataset(tmp_path)
    assert index.kind == "signal" and index.durations_s == pytest.approx({"c": 2.0, "n": 2.0})
    cfg = load_preset("ecg").features
    store = prepare_signal_store(index, cfg, stems=["c", "n"])
    assert np.allclose(store.get("c"), store.get("n"), atol=1e-5)
    assert store.get("n").shape == (2 * cfg.hop_length, 40)


def test_a_missing_stem_names_the_store_kind_and_the_prepared_factors():
    import numpy as np

    from softloc.data.signal_store import SignalStore
    from softloc.features import FrontEndConfig

    store = SignalStore(FrontEndConfig(), (1.0,), {("a", 1.0): np.zeros((2, 3), np.float32)})
    assert store.get("a").shape == (2, 3) and store.stems == ["a"]
    with pytest.raises(KeyError, match=r"SignalStore\.get: no features for stem 'b' at rate "
                                       r"factor 1.0; prepared factors \(1.0,\)"):
        store.get("b")
