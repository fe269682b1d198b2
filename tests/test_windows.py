import math
import re
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from softloc.data.augment import AugmentSettings
from softloc.data.layout import load_dataset
from softloc.data.windows import (
    WindowDataset,
    collate,
    default_max_frames,
    min_time_factor,
    prepare_features,
)
from softloc.features import FrontEndConfig, load_audio, mel_power

CFG = FrontEndConfig(sample_rate=8000, n_fft=512, win_length=200, hop_length=80, n_mels=24,
                     preemphasis=0.0)  # 100 frames/s
FR = CFG.frame_rate
# Clicks away from window edges (windows start at multiples of 0.5 s) by > 20 ms.
EVENTS = {"a": [(0.23, "KD"), (0.61, "SD"), (0.87, "KD"), (1.33, "HH"), (2.07, "SD"),
                (2.41, "HH"), (2.78, "KD"), (3.12, "HH")],
          "b": [(0.31, "HH"), (1.18, "KD"), (1.71, "SD"), (2.22, "HH")]}
DUR = {"a": 4.0, "b": 3.0}


def _clicks(duration_s, times, sr=8000):
    x = np.zeros(int(duration_s * sr), dtype=np.float32)
    for t in times:
        x[int(round(t * sr))] = 0.9
    return x


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("win") / "ds"
    (root / "audio").mkdir(parents=True)
    (root / "annotations").mkdir()
    lines = ["file,start,end,label,count"]
    for stem, events in EVENTS.items():
        sf.write(root / "audio" / f"{stem}.wav", _clicks(DUR[stem], [t for t, _ in events]), 8000,
                 subtype="FLOAT")
        (root / "annotations" / f"{stem}.txt").write_text(
            "".join(f"{t}\t{lab}\n" for t, lab in events))
        for start in np.arange(0, DUR[stem] - 1.5 + 1e-9, 0.5):
            for c in ("HH", "KD", "SD"):
                n = sum(1 for t, lab in events if lab == c and start <= t < start + 1.5)
                lines.append(f"{stem},{start},{start + 1.5},{c},{n}")
    (root / "counts.csv").write_text("\n".join(lines) + "\n")
    index = load_dataset(root)
    store = prepare_features(index, CFG, cache_dir=root.parent / "cache",
                             rate_factors=(7 / 8, 1.0, 9 / 8))
    return index, store


def _brute_counts(stem, start_s, dur_s, classes):
    return [sum(1 for t, lab in EVENTS[stem] if lab == c and start_s <= t < start_s + dur_s)
            for c in classes]


def test_counts_mode_items_are_the_counts_csv_windows(dataset):
    index, store = dataset
    ds = WindowDataset(index, store, stems=["a", "b"], labels="counts")
    assert len(ds) == 6 + 4  # 4 s -> starts 0..2.5; 3 s -> 0..1.5
    assert ds.max_frames == default_max_frames(CFG) == math.ceil(1.5 * FR / (7 / 8)) + 1
    for i in range(len(ds)):
        stem, start, dur = ds.describe(i)
        item = ds[i]
        assert item["counts"].tolist() == _brute_counts(stem, start, dur, index.classes)
        f0 = round(start * FR)
        assert int(item["length"]) == round((start + dur) * FR) - f0 == 150
        np.testing.assert_array_equal(item["mel"][:, :150].numpy(),
                                      store.get(stem)[:, f0:f0 + 150])
        assert torch.all(item["mel"][:, 150:] == 0) and torch.all(item["targets"] == 0)
        assert not bool(item["has_targets"]) and math.isinf(float(item["sigma_frames"]))
        assert item["mel"].dtype == torch.float32 and item["counts"].dtype == torch.int64


def test_onsets_mode_counts_equal_events_in_window_and_targets_sum_to_counts(dataset):
    index, store = dataset
    ds = WindowDataset(index, store, stems=["a", "b"], labels="onsets", sigma_frames=3.0)
    assert len(ds) == 10
    for i in range(len(ds)):
        stem, start, dur = ds.describe(i)
        item = ds[i]
        assert item["counts"].tolist() == _brute_counts(stem, start, dur, index.classes)
        torch.testing.assert_close(item["targets"].sum(dim=1), item["counts"].float())
        for c, name in enumerate(index.classes):
            expected = [round(t * FR) - round(start * FR) for t, lab in EVENTS[stem]
                        if lab == name and start <= t < start + dur]
            assert torch.nonzero(item["targets"][c]).flatten().tolist() == expected
        assert bool(item["has_targets"]) and float(item["sigma_frames"]) == 3.0


@pytest.mark.parametrize("factor", [7 / 8, 9 / 8])
def test_rate_factor_scales_event_frames_and_features_agree_with_targets(dataset, factor):
    index, store = dataset
    ds = WindowDataset(index, store, stems=["a"], labels="onsets", augment=True,
                       rate_factors=[factor], min_crop_s=1.5, seed=1)
    for i in range(len(ds)):
        item = ds[i]
        n = int(item["length"])
        assert float(item["rate_factor"]) == pytest.approx(factor)
        # The click energy peaks where the targets say the events are.
        energy = item["mel"].sum(dim=0)[:n]
        for f in torch.nonzero(item["targets"].sum(dim=0)[:n]).flatten().tolist():
            lo, hi = max(0, f - 3), min(n, f + 4)
            if hi - lo == 7:
                assert int(energy[lo:hi].argmax()) + lo == f
    # Event frames follow round(t * fr / s): compare with a window starting at 0.
    full = store.get("a", factor)
    assert full.shape[1] == 1 + int(round(DUR["a"] * 8000 / factor)) // 80
    for t, _ in EVENTS["a"]:
        f = round(t * FR / factor)
        assert int(np.argmax(full.sum(axis=0)[f - 3:f + 4])) == 3


def test_counts_mode_rate_factor_changes_length_not_counts(dataset):
    index, store = dataset
    plain = WindowDataset(index, store, stems=["a"], labels="counts")
    for factor in (7 / 8, 9 / 8):
        ds = WindowDataset(index, store, stems=["a"], labels="counts", augment=True,
                           rate_factors=[factor])
        for i in range(len(ds)):
            _, start, dur = ds.describe(i)
            item = ds[i]
            assert int(item["length"]) == round((start + dur) * FR / factor) - \
                round(start * FR / factor)
            assert torch.equal(item["counts"], plain[i]["counts"])


def test_variable_crops_respect_bounds_and_zero_padding(dataset):
    index, store = dataset
    ds = WindowDataset(index, store, stems=["a", "b"], labels="onsets", augment=True,
                       min_crop_s=0.75, seed=3)
    lengths = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            n = int(item["length"])
            lengths.append(n)
            assert torch.all(item["mel"][:, n:] == 0) and torch.all(item["targets"][:, n:] == 0)
            torch.testing.assert_close(item["targets"].sum(dim=1), item["counts"].float())
    lo = math.floor(0.75 * FR / (9 / 8)) - 1
    hi = math.ceil(1.5 * FR / (7 / 8)) + 1
    assert min(lengths) >= lo and max(lengths) <= min(hi, ds.max_frames)
    assert len(set(lengths)) > 10  # lengths really vary
    fixed = WindowDataset(index, store, stems=["a"], labels="onsets", augment=True,
                          rate_factors=[1.0], variable_length=False, seed=3)
    assert {int(fixed[i]["length"]) for i in range(len(fixed))} == {150}


def test_augmentation_is_deterministic_per_seed_and_epoch(dataset):
    index, store = dataset
    kw = dict(stems=["a", "b"], labels="onsets", augment=True, stack_prob=0.5)
    d1, d2 = WindowDataset(index, store, seed=5, **kw), WindowDataset(index, store, seed=5, **kw)
    for i in range(len(d1)):
        for k, v in d1[i].items():
            assert torch.equal(v, d2[i][k])
    d2.set_epoch(1)
    assert any(not torch.equal(d1[i]["mel"], d2[i]["mel"]) for i in range(len(d1)))


def test_stacking_adds_mels_counts_and_targets(tmp_path):
    # One file exactly one window long: the stacked partner is the same window.
    root = tmp_path / "one"
    (root / "audio").mkdir(parents=True)
    (root / "annotations").mkdir()
    sf.write(root / "audio" / "x.wav", _clicks(1.5, [0.3, 0.9]), 8000, subtype="FLOAT")
    (root / "annotations" / "x.txt").write_text("0.3\tKD\n0.9\tSD\n")
    index = load_dataset(root)
    store = prepare_features(index, CFG)
    plain = WindowDataset(index, store, stems=["x"], labels="onsets")[0]
    stacked = WindowDataset(index, store, stems=["x"], labels="onsets", augment=True,
                            rate_factors=[1.0], min_crop_s=1.5, stack_prob=1.0)[0]
    torch.testing.assert_close(stacked["mel"], 2 * plain["mel"])
    assert stacked["counts"].tolist() == [2, 2] == (2 * plain["counts"]).tolist()
    torch.testing.assert_close(stacked["targets"], 2 * plain["targets"])
    assert int(stacked["length"]) == int(plain["length"])


def test_stacked_items_keep_targets_consistent_with_counts(dataset):
    index, store = dataset
    ds = WindowDataset(index, store, stems=["a", "b"], labels="onsets", augment=True,
                       stack_prob=1.0, seed=2)
    plain = WindowDataset(index, store, stems=["a", "b"], labels="onsets")
    total_plain = sum(int(plain[i]["counts"].sum()) for i in range(len(plain)))
    total = 0
    for i in range(len(ds)):
        item = ds[i]
        torch.testing.assert_close(item["targets"].sum(dim=1), item["counts"].float())
        total += int(item["counts"].sum())
    assert total > total_plain  # two windows' events per item


def test_collate_stacks_items_into_batch_shapes(dataset):
    index, store = dataset
    ds = WindowDataset(index, store, stems=["a", "b"], labels="counts", augment=True)
    batch = collate([ds[i] for i in range(4)])
    T = ds.max_frames
    assert batch["mel"].shape == (4, CFG.n_mels, T)
    assert batch["targets"].shape == (4, 3, T) and batch["counts"].shape == (4, 3)
    assert batch["length"].shape == (4,) and batch["has_targets"].dtype == torch.bool
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate)
    assert next(iter(loader))["mel"].shape == (3, CFG.n_mels, T)


def test_prepare_features_cache_is_reused_and_keyed_by_config(dataset, tmp_path):
    index, _ = dataset
    cache = tmp_path / "c"
    first = prepare_features(index, CFG, cache_dir=cache, stems=["b"], rate_factors=[1.0, 9 / 8])
    again = prepare_features(index, CFG, cache_dir=cache, stems=["b"], rate_factors=[1.0, 9 / 8])
    assert (first.n_computed, again.n_computed, again.n_cached) == (2, 0, 2)
    np.testing.assert_array_equal(np.asarray(again.get("b", 9 / 8)), first.get("b", 9 / 8))
    np.testing.assert_allclose(first.get("b"), mel_power(load_audio(index.audio_paths["b"],
                                                                    8000), CFG)[0].numpy())
    other = prepare_features(index, FrontEndConfig(sample_rate=8000, n_fft=512, win_length=200,
                                                   hop_length=80, n_mels=20),
                             cache_dir=cache, stems=["b"])
    assert other.n_computed == 1 and other.get("b").shape[0] == 20
    assert not list(cache.glob("*.tmp"))


def test_errors_name_the_problem(dataset, tmp_path):
    index, store = dataset
    with pytest.raises(ValueError, match="`labels` must be 'counts' or 'onsets'"):
        WindowDataset(index, store, stems=["a"], labels="weak")
    with pytest.raises(ValueError, match=r"rate factors \[0\.75\] are not in the feature store"):
        WindowDataset(index, store, stems=["a"], augment=True, rate_factors=[0.75])
    with pytest.raises(ValueError, match=re.escape("counts.csv") + r":\d+: window \(a, 0, 1.5\) "
                       r"spans 150 frames at rate factor 1; expected at most max_frames=100"):
        WindowDataset(index, store, stems=["a"], labels="counts", max_frames=100)
    with pytest.raises(ValueError, match="unknown stems"):
        prepare_features(index, CFG, stems=["zz"])
    with pytest.raises(ValueError, match="`rate_factors` must be a non-empty list"):
        prepare_features(index, CFG, rate_factors=[3.0])
    small = prepare_features(index, CFG, stems=["a"])
    with pytest.raises(ValueError, match=r"no features for stems \['b'\]"):
        WindowDataset(index, small, stems=["a", "b"])
    noann = index.with_events({"b": None})
    with pytest.raises(ValueError, match="stem 'b' has no annotation file"):
        WindowDataset(noann, store, stems=["b"], labels="onsets")
    with pytest.raises(ValueError, match="`sigma_frames` must be >= 0"):
        WindowDataset(index, store, stems=["a"], labels="onsets", sigma_frames=-1.0)
    assert float(WindowDataset(index, store, stems=["a"], labels="onsets",
                               sigma_frames=0.0)[0]["sigma_frames"]) == 0.0
    with pytest.raises(KeyError, match="no features for stem 'a' at rate factor 0.5"):
        store.get("a", 0.5)


def _with_count(dataset, tmp_path, stem, start_s, label, count):
    """A copy of the dataset whose counts.csv row (stem, start_s, label) says ``count``;
    returns the copy's index, its features and the changed row's line number."""
    import shutil

    index, _ = dataset
    root = tmp_path / "ds"
    shutil.copytree(index.root / "audio", root / "audio")
    shutil.copytree(index.root / "annotations", root / "annotations")
    lines = (index.root / "counts.csv").read_text().splitlines()
    hit = [n for n, ln in enumerate(lines) if ln.split(",")[0] == stem
           and float(ln.split(",")[1]) == start_s and ln.split(",")[3] == label]
    assert len(hit) == 1
    f, a, b, lab, _ = lines[hit[0]].split(",")
    lines[hit[0]] = f"{f},{a},{b},{lab},{count}"
    (root / "counts.csv").write_text("\n".join(lines) + "\n")
    copy = load_dataset(root)
    return copy, prepare_features(copy, CFG, rate_factors=(7 / 8, 1.0, 9 / 8)), hit[0] + 1


def test_a_count_above_the_frames_of_its_window_is_refused_naming_file_line_class(dataset,
                                                                                 tmp_path):
    index, store, line = _with_count(dataset, tmp_path, "a", 1.0, "HH", 100_000)
    # window (a, 1.0, 2.5) at 100 frames/s: 150 frames, hence at most 150 events
    with pytest.raises(ValueError) as err:
        WindowDataset(index, store, stems=["a"], labels="counts")
    msg = str(err.value)
    assert f"{index.root / 'counts.csv'}:" in msg and "window (a, 1, 2.5)" in msg
    assert "100000 events of class 'HH'" in msg and "at most 150 events" in msg
    # the line named is the window's first row, at most two rows above the changed one
    named = int(re.search(r"counts\.csv:(\d+):", msg).group(1))
    assert line - 2 <= named <= line
    # with rate augmentation the fastest version (9/8) is the bound: round(250 / 1.125) -
    # round(100 / 1.125) = 222 - 89 = 133 frames
    with pytest.raises(ValueError, match="has 133 frames \\(rate factor 1.125\\)"):
        WindowDataset(index, store, stems=["a"], labels="counts", augment=True)


def test_a_count_equal_to_the_frames_is_accepted(dataset, tmp_path):
    index, store, _ = _with_count(dataset, tmp_path, "a", 1.0, "HH", 150)
    ds = WindowDataset(index, store, stems=["a"], labels="counts")
    counts = [ds[i]["counts"][list(ds.classes).index("HH")] for i in range(len(ds))
              if ds.describe(i)[1] == 1.0]
    assert [int(c) for c in counts] == [150]
    # mixed supervision: the onset windows of another stem are not affected
    assert len(WindowDataset(index, store, stems=["b"], labels="onsets")) > 0


# ------------------------------------------------------------------ audio-augmented renditions

# Rate or stretch only (no colour, level or noise), so the clicks stay countable in the mel.
RATE_ONLY = AugmentSettings(p_rate=1.0, p_eq=0.0, gain_db=(0.0, 0.0), p_noise=0.0, p_reverb=0.0)
STRETCH_ONLY = replace(RATE_ONLY, p_stretch=1.0, stretch_range=(0.9, 1.1))


def _click_frames(mel: np.ndarray) -> np.ndarray:
    """Frames of the energy maxima of isolated clicks: the argmax of each run of frames above 1%
    of the peak energy."""
    energy = np.asarray(mel).sum(axis=0)
    above = energy > 0.01 * energy.max()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(int), [0]])))
    return np.array([lo + int(np.argmax(energy[lo:hi])) for lo, hi in zip(edges[::2], edges[1::2],
                                                                            strict=True)])


@pytest.fixture(scope="module")
def renditions(dataset):
    index, _ = dataset
    return prepare_features(index, CFG, rate_factors=(7 / 8, 1.0, 9 / 8), augment=RATE_ONLY,
                            renditions=3, augment_stems=["a"], seed=4)


def test_renditions_play_the_file_at_their_time_factor(dataset, renditions):
    index, _ = dataset
    assert set(renditions.renditions) == {"a"} and len(renditions.renditions["a"]) == 3
    factors = [f for f, _ in renditions.renditions["a"]]
    assert all(7 / 8 <= f < 9 / 8 for f in factors) and len(set(factors)) == 3
    for factor, mel in renditions.renditions["a"]:
        expected = np.array([round(t * FR / factor) for t, _ in EVENTS["a"]])
        found = _click_frames(mel)
        assert len(found) == len(expected)
        assert np.abs(found - expected).max() <= 1


def test_rendition_windows_count_the_clicks_they_hold(dataset, renditions):
    index, _ = dataset
    ds = WindowDataset(index, renditions, stems=["a"], labels="counts", augment=True, seed=0)
    seen = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            _, start, _ = ds.describe(i)
            item = ds[i]
            s, n = float(item["rate_factor"]), int(item["length"])
            seen.add(round(s, 6))
            full = {round(f, 6): m for f, m in renditions.renditions["a"]}.get(round(s, 6))
            if full is None:
                full = renditions.get("a", s)
            f0 = round(start * FR / s)
            clicks = _click_frames(full)
            assert int(item["counts"].sum()) == int(np.sum((clicks >= f0) & (clicks < f0 + n)))
            np.testing.assert_array_equal(item["mel"][:, :n].numpy(),
                                          np.asarray(full)[:, f0:f0 + n])
    assert len(seen) == 6  # 3 rate factors + 3 renditions


@pytest.mark.parametrize("settings", [RATE_ONLY, STRETCH_ONLY], ids=["rate", "stretch"])
def test_rendition_targets_sit_on_the_transformed_clicks(dataset, settings):
    index, _ = dataset
    store = prepare_features(index, CFG, rate_factors=(1.0,), augment=settings, renditions=2,
                             seed=9)
    ds = WindowDataset(index, store, stems=["a", "b"], labels="onsets", augment=True,
                       rate_factors=[1.0], seed=1)
    tol = 1 if settings is RATE_ONLY else 4  # the vocoder spreads a click over ~one 512 FFT
    n_checked = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            if float(item["rate_factor"]) == 1.0:
                continue
            n = int(item["length"])
            torch.testing.assert_close(item["targets"].sum(dim=1), item["counts"].float())
            clicks = _click_frames(item["mel"][:, :n].numpy())
            targets = torch.nonzero(item["targets"].sum(dim=0)[:n]).flatten().numpy()
            inner = clicks[(clicks >= tol + 2) & (clicks < n - tol - 2)]
            for f in inner:  # every click well inside the window is a target, and vice versa
                assert np.abs(targets - f).min() <= tol
            for f in targets[(targets >= tol + 2) & (targets < n - tol - 2)]:
                assert np.abs(clicks - f).min() <= tol
                n_checked += 1
    assert n_checked > 20


def test_same_seed_gives_the_same_batches_and_another_seed_does_not(dataset):
    index, _ = dataset

    def batches(seed: int) -> list[dict]:
        store = prepare_features(index, CFG, rate_factors=(7 / 8, 1.0, 9 / 8),
                                 augment=AugmentSettings(), renditions=2, seed=seed)
        ds = WindowDataset(index, store, stems=["a", "b"], labels="counts", augment=True,
                           stack_prob=0.3, seed=seed)
        sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=12,
                                                 generator=torch.Generator().manual_seed(seed))
        return list(torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler,
                                                collate_fn=collate))

    first, again, other = batches(3), batches(3), batches(4)
    for b1, b2 in zip(first, again, strict=True):
        for key in b1:
            assert torch.equal(b1[key], b2[key]), key
    assert any(not torch.equal(b1["mel"], b3["mel"]) for b1, b3 in zip(first, other, strict=True))


def test_rendition_cache_is_reused_and_keyed_by_seed_and_settings(dataset, tmp_path):
    index, _ = dataset
    kw = dict(stems=["b"], rate_factors=[1.0], augment=RATE_ONLY, renditions=2)
    first = prepare_features(index, CFG, cache_dir=tmp_path, seed=1, **kw)
    again = prepare_features(index, CFG, cache_dir=tmp_path, seed=1, **kw)
    assert (first.n_computed, again.n_computed, again.n_cached) == (3, 0, 3)
    for (f1, m1), (f2, m2) in zip(first.renditions["b"], again.renditions["b"], strict=True):
        assert f1 == f2 and np.array_equal(m1, m2)
    other = prepare_features(index, CFG, cache_dir=tmp_path, seed=2, **kw)
    assert other.n_computed == 2 and other.renditions["b"][0][0] != first.renditions["b"][0][0]


def test_min_time_factor_bounds_every_version_and_errors_name_the_problem(dataset):
    index, _ = dataset
    assert min_time_factor([0.9, 1.0]) == 0.9
    assert min_time_factor([1.0], RATE_ONLY, renditions=2) == 7 / 8
    assert min_time_factor([1.0], RATE_ONLY, renditions=0) == 1.0
    assert min_time_factor([1.0], STRETCH_ONLY, renditions=1) == 0.9
    with pytest.raises(ValueError, match="`renditions` must be an int >= 0"):
        prepare_features(index, CFG, renditions=-1)
    with pytest.raises(ValueError, match="`augment_stems` must be among `stems`"):
        prepare_features(index, CFG, stems=["a"], renditions=1, augment_stems=["b"])
    with pytest.raises(TypeError, match="`augment` must be an AugmentSettings"):
        prepare_features(index, CFG, renditions=1, augment={"p_rate": 1.0})
