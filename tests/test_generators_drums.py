import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from softloc.data.generators.drums import DRUM_CLASSES, render_drum_track, synthesize_drum_dataset
from softloc.data.layout import load_dataset, read_annotation_file, read_counts_csv

TINY = dict(n_train_files=2, n_valid_files=1, n_test_files=2, file_duration_s=3.0,
            n_train_kits=2, n_valid_kits=1, n_test_kits=1, sample_rate=16000)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ds"
    return root, synthesize_drum_dataset(root, seed=7, **TINY)


def test_dataset_layout_is_complete_and_loads(tiny):
    root, idx = tiny
    assert idx.classes == DRUM_CLASSES == ("HH", "KD", "SD")
    assert [len(idx.splits[k]) for k in ("train", "valid", "test")] == [2, 1, 2]
    for stem in idx.stems:
        info = sf.info(str(idx.audio_paths[stem]))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == 3 * 16000
        assert idx.events[stem] is not None
    assert (root / "synth_drums.json").is_file()
    assert all(len(evs) > 0 for evs in idx.events.values())


def test_test_and_valid_kits_differ_from_train_kits(tiny):
    _, idx = tiny
    kits = {k: {s.rsplit("_kit", 1)[1] for s in idx.splits[k]} for k in idx.splits}
    assert kits["train"].isdisjoint(kits["test"]) and kits["train"].isdisjoint(kits["valid"])
    assert kits["valid"].isdisjoint(kits["test"])


def test_counts_csv_matches_brute_force_counts_of_the_annotations(tiny):
    root, idx = tiny
    rows = read_counts_csv(root / "counts.csv")
    assert len(rows) == len(idx.stems) * 4 * 3  # 3 s files: windows at 0, 0.5, 1, 1.5 s; 3 classes
    for _, stem, start, end, label, count in rows:
        assert end - start == pytest.approx(1.5)
        events = read_annotation_file(root / "annotations" / f"{stem}.txt")
        assert count == sum(1 for t, lab in events if lab == label and start <= t < end)


def test_same_seed_gives_identical_files_and_another_seed_does_not(tiny, tmp_path):
    root, _ = tiny
    again = tmp_path / "again"
    synthesize_drum_dataset(again, seed=7, **TINY)
    other = tmp_path / "other"
    synthesize_drum_dataset(other, seed=8, **TINY)
    for name in ("counts.csv", "splits/train.txt", "annotations/test_001_kit20000.txt",
                 "audio/train_000_kit00000.wav"):
        assert (again / name).read_bytes() == (root / name).read_bytes()
    assert (other / "audio/train_000_kit00000.wav").read_bytes() != \
        (root / "audio/train_000_kit00000.wav").read_bytes()
    assert (other / "counts.csv").read_bytes() != (root / "counts.csv").read_bytes()


def test_refuses_to_write_into_a_non_empty_folder(tiny):
    root, _ = tiny
    with pytest.raises(FileExistsError, match="folder is not empty"):
        synthesize_drum_dataset(root, seed=7, **TINY)


def test_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="`n_train_files` must be an int >= 1"):
        synthesize_drum_dataset(tmp_path / "x", n_train_files=0)
    with pytest.raises(ValueError, match="need file_duration_s >= window_s"):
        synthesize_drum_dataset(tmp_path / "x", file_duration_s=1.0)


_BANDS = {"KD": ("lowpass", 400.0), "SD": ("bandpass", (150.0, 4000.0)),
          "HH": ("highpass", 6000.0)}


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_annotated_onsets_coincide_with_energy_rises_in_the_class_band(seed):
    """For each class, the mean rise of log-energy in its band, measured at the annotated times
    shifted by a lag, is largest within a few ms after lag 0 (not 20-40 ms away)."""
    sr = 22050
    audio, events = render_drum_track(seed=seed, kit_id=seed, duration_s=8.0, sample_rate=sr)
    assert events == sorted(events) and {lab for _, lab in events} <= set(DRUM_CLASSES)
    hop = sr // 1000
    for label, (kind, cutoff) in _BANDS.items():
        times_ms = np.array([round(t * 1000) for t, lab in events if lab == label])
        if len(times_ms) < 2:
            continue
        sos = signal.butter(2, np.asarray(cutoff) / (sr / 2), btype=kind, output="sos")
        y = signal.sosfilt(sos, audio.astype(np.float64))
        # log energy in 4 ms windows centred on each millisecond
        energy = np.log(np.convolve(y ** 2, np.ones(4 * hop))[::hop][2:] + 1e-9)
        lags = np.arange(-40, 41)
        score = [np.mean(energy[np.clip(times_ms + d + 3, 0, len(energy) - 1)]
                         - energy[np.clip(times_ms + d - 3, 0, len(energy) - 1)]) for d in lags]
        best = lags[int(np.argmax(score))]
        assert -2 <= best <= 15, (label, best)
        assert max(score) > 1.0  # a clear rise (> 4 dB on average)


def test_render_drum_track_is_deterministic_and_validates():
    a1, e1 = render_drum_track(seed=1, kit_id=4, duration_s=2.0, sample_rate=16000)
    a2, e2 = render_drum_track(seed=1, kit_id=4, duration_s=2.0, sample_rate=16000)
    assert np.array_equal(a1, a2) and e1 == e2
    assert a1.dtype == np.float32 and a1.shape == (32000,) and np.abs(a1).max() <= 1.0
    with pytest.raises(ValueError, match="`duration_s` must be > 0"):
        render_drum_track(seed=0, kit_id=0, duration_s=0.0)


def test_load_dataset_of_synthetic_set_uses_the_split_files(tiny):
    root, idx = tiny
    again = load_dataset(root)
    assert again.split_source == "splits/" and again.splits == idx.splits
