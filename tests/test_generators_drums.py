"""The drum dataset generator: layout, counts, kit splits, determinism, and onsets at sound starts.

Recorded kits are folders of one-shots written in ``tmp_path`` (with leading silence and noise);
``system_kits=False`` keeps every test independent of what the machine has installed.
"""

import json
import logging

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from softloc.data.generators.drums import (
    DRUM_CLASSES,
    _play,
    render_drum_track,
    synthesize_drum_dataset,
    vary_instrument,
)
from softloc.data.generators.grooves import SCATTERED, STYLES, Hit, perform
from softloc.data.generators.kits import discover_kits, load_kits
from softloc.data.layout import load_dataset, read_annotation_file, read_counts_csv

TINY = dict(n_train_files=2, n_valid_files=1, n_test_files=2, file_duration_s=3.0,
            n_train_kits=2, n_valid_kits=1, n_test_kits=1, sample_rate=16000, system_kits=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ds"
    return root, synthesize_drum_dataset(root, seed=7, **TINY)


def _one_shot(kind, sr, *, lead_s, seed):
    """A crude recorded-looking one-shot: ``lead_s`` of noise at -60 dBFS before the hit."""
    rng = np.random.default_rng(seed)
    n = int((0.4 if kind != "ohh" else 0.8) * sr)
    t = np.arange(n) / sr
    if kind == "kick":
        x = np.sin(2 * np.pi * (50 + 60 * np.exp(-t / 0.02)) * t) * np.exp(-t / 0.12)
    elif kind == "snare":
        x = (0.5 * np.sin(2 * np.pi * 200 * t) + rng.standard_normal(n)) * np.exp(-t / 0.07)
    else:
        hp = signal.butter(4, 7000 / (sr / 2), btype="highpass", output="sos")
        x = signal.sosfilt(hp, rng.standard_normal(n)) * np.exp(-t / (0.03 if kind == "hh"
                                                                      else 0.3))
    x = 0.8 * x / np.abs(x).max()
    lead = 1e-3 * rng.standard_normal(int(lead_s * sr))
    return np.concatenate([lead, x]).astype(np.float32)


def _write_folder_kit(root, sr, *, seed):
    for j, kind in enumerate(["kick", "snare", "hh", "ohh"]):
        for k in range(2):
            x = _one_shot(kind, sr, lead_s=0.1 + 0.07 * k + 0.03 * j, seed=seed * 10 + 2 * j + k)
            (root / kind).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / kind / f"{kind}_{k}.wav"), x, sr)
    return root


# ----------------------------------------------------------------------------- layout

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
    root, idx = tiny
    again = tmp_path / "again"
    synthesize_drum_dataset(again, seed=7, **TINY)
    other = tmp_path / "other"
    synthesize_drum_dataset(other, seed=8, **TINY)
    test0, train0 = idx.splits["test"][0], idx.splits["train"][0]
    for name in ("counts.csv", "splits/train.txt", f"annotations/{test0}.txt",
                 f"audio/{train0}.wav"):
        assert (again / name).read_bytes() == (root / name).read_bytes()
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
    with pytest.raises(ValueError, match="`backing_music` must lie in"):
        synthesize_drum_dataset(tmp_path / "x", backing_music=2.0)
    with pytest.raises(ValueError, match="`scattered` must lie in"):
        synthesize_drum_dataset(tmp_path / "x", scattered=-0.1)
    with pytest.raises(ValueError, match="`vary_kits` must lie in"):
        synthesize_drum_dataset(tmp_path / "x", vary_kits=1.5)
    with pytest.raises(ValueError, match="`mix_kits` must lie in"):
        synthesize_drum_dataset(tmp_path / "x", mix_kits=-1)
    with pytest.raises(ValueError, match="no kit for the test split"):
        synthesize_drum_dataset(tmp_path / "x", **{**TINY, "n_test_kits": 0})


def test_load_dataset_of_synthetic_set_uses_the_split_files(tiny):
    root, idx = tiny
    again = load_dataset(root)
    assert again.split_source == "splits/" and again.splits == idx.splits


def test_without_recorded_kits_it_says_so_and_uses_synthetic_kits(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        synthesize_drum_dataset(tmp_path / "d", seed=7, **{**TINY, "n_test_files": 1})
    assert "no recorded drum kit found" in caplog.text
    meta = json.loads((tmp_path / "d" / "synth_drums.json").read_text())
    assert {f["kit_kind"] for f in meta["files"]} == {"synthetic"}


# ----------------------------------------------------------------------------- recorded kits

@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    base = tmp_path_factory.mktemp("kits")
    paths = [_write_folder_kit(base / f"kit{c}", 16000, seed=s) for s, c in enumerate("abcd")]
    root = base / "ds"
    kw = dict(TINY, n_train_kits=0, n_valid_kits=0, n_test_kits=0, n_train_files=4,
              backing_music=1.0)
    return root, paths, kw, synthesize_drum_dataset(root, seed=3, kits=paths, **kw)


def test_recorded_kits_are_split_by_family_and_test_kits_are_unseen(recorded):
    root, _, _, idx = recorded
    meta = json.loads((root / "synth_drums.json").read_text())
    fam = {s: {f["kit_family"] for f in meta["files"] if f["split"] == s}
           for s in ("train", "valid", "test")}
    assert all(fam.values())
    assert fam["test"].isdisjoint(fam["train"] | fam["valid"])
    assert fam["valid"].isdisjoint(fam["train"])
    assert {f["kit_kind"] for f in meta["files"]} == {"folder"}
    assert all(f["recording"]["music_ratio_db"] is not None for f in meta["files"])  # p = 1


def test_recorded_kit_dataset_is_deterministic(recorded, tmp_path):
    root, paths, kw, idx = recorded
    again = tmp_path / "again"
    synthesize_drum_dataset(again, seed=3, kits=paths, **kw)
    for stem in idx.stems:
        for sub in (f"audio/{stem}.wav", f"annotations/{stem}.txt"):
            assert (again / sub).read_bytes() == (root / sub).read_bytes()


def test_dry_hits_start_sounding_exactly_at_their_annotated_times(tmp_path):
    """The one-shots have 0.1-0.3 s of leading noise: a hit placed by its file start would sound
    that much late; placed by its sound start it sounds at the hit time."""
    sr = 16000
    (kit,) = load_kits(discover_kits([_write_folder_kit(tmp_path / "k", sr, seed=5)],
                                     system=False), sample_rate=sr)
    hits = [Hit(0.5, "kick", 1.0), Hit(1.25, "snare", 0.7), Hit(2.0, "hihat_closed", 0.6),
            Hit(2.6, "hihat_open", 0.9)]
    dry = _play(np.random.default_rng(0), kit, hits, 3.5)
    for h in hits:
        seg = np.abs(dry[int((h.time_s - 0.08) * sr):int((h.time_s + 0.08) * sr)])
        first = np.flatnonzero(seg > 0.05 * seg.max())[0] / sr + h.time_s - 0.08
        assert first == pytest.approx(h.time_s, abs=0.0015), h


_BANDS = {"KD": ("lowpass", 400.0), "SD": ("bandpass", (150.0, 4000.0)),
          "HH": ("highpass", 6000.0)}


def _best_lag_ms(audio, events, label, sr):
    """The lag (ms) at which the mean rise of log-energy in the class band, measured at the
    annotated times, is largest, and that rise."""
    kind, cutoff = _BANDS[label]
    hop = sr // 1000
    times_ms = np.array([round(t * 1000) for t, lab in events if lab == label])
    sos = signal.butter(2, np.asarray(cutoff) / (sr / 2), btype=kind, output="sos")
    y = signal.sosfilt(sos, audio.astype(np.float64))
    energy = np.log(np.convolve(y ** 2, np.ones(4 * hop))[::hop][2:] + 1e-9)
    lags = np.arange(-40, 41)
    score = [np.mean(energy[np.clip(times_ms + d + 3, 0, len(energy) - 1)]
                     - energy[np.clip(times_ms + d - 3, 0, len(energy) - 1)]) for d in lags]
    return int(lags[int(np.argmax(score))]), max(score), len(times_ms)


@pytest.mark.parametrize("seed", [0, 2, 3])
@pytest.mark.parametrize("source", ["synthetic", "recorded"])
def test_annotated_onsets_coincide_with_energy_rises_in_the_class_band(seed, source, tmp_path):
    """For each class, the mean rise of log-energy in its band at the annotated times (shifted
    by a lag) is largest within a few ms of lag 0, after the whole recording chain. (A sharp
    onset at t scores best near lag -1 ms with 4 ms windows; slow attacks a few ms later. A hit
    placed by its file start instead of its sound start would be 100 ms or more late.)"""
    sr = 22050
    if source == "synthetic":
        audio, events = render_drum_track(seed=seed, kit_id=seed, duration_s=8.0, sample_rate=sr,
                                          style="rock")
    else:
        (kit,) = load_kits(discover_kits([_write_folder_kit(tmp_path / "k", sr, seed=seed)],
                                         system=False), sample_rate=sr)
        audio, events = render_drum_track(seed=seed, kit=kit, duration_s=8.0, sample_rate=sr,
                                          style="rock")
    assert events == sorted(events) and {lab for _, lab in events} <= set(DRUM_CLASSES)
    for label in _BANDS:
        best, rise, n = _best_lag_ms(audio, events, label, sr)
        if n < 2:
            continue
        assert -4 <= best <= 16, (label, best)
        assert rise > 0.4  # a clear rise (> 1.7 dB on average; hats under a ride are faint)


def test_render_drum_track_is_deterministic_and_validates():
    a1, e1 = render_drum_track(seed=1, kit_id=4, duration_s=2.0, sample_rate=16000)
    a2, e2 = render_drum_track(seed=1, kit_id=4, duration_s=2.0, sample_rate=16000)
    assert np.array_equal(a1, a2) and e1 == e2
    assert a1.dtype == np.float32 and a1.shape == (32000,) and np.abs(a1).max() <= 1.0
    with pytest.raises(ValueError, match="`duration_s` must be > 0"):
        render_drum_track(seed=0, kit_id=0, duration_s=0.0)
    with pytest.raises(ValueError, match="exactly one of `kit_id` and `kit`"):
        render_drum_track(seed=0)
    with pytest.raises(ValueError, match="`style` must be one of"):
        render_drum_track(seed=0, kit_id=0, style="polka")


# ----------------------------------------------------------------------------- playing

_ALL_ROLES = frozenset({"kick", "snare", "snare_alt", "hihat_closed", "hihat_open",
                        "hihat_pedal", "tom", "crash", "ride", "perc"})


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_keeps_time_and_plays_the_three_classes(style):
    hits, info = perform(np.random.default_rng(4), 20.0, available=_ALL_ROLES, style=style)
    lo, hi = STYLES[style]["bpm"]
    assert info["style"] == style and lo <= info["bpm"] < hi
    assert [h.time_s for h in hits] == sorted(h.time_s for h in hits)
    assert all(0 <= h.time_s < 19.98 and 0 < h.velocity <= 1 for h in hits)
    roles = {h.role for h in hits}
    assert "kick" in roles and roles & {"snare", "snare_alt"}
    assert roles & {"hihat_closed", "hihat_open", "hihat_pedal"}


def test_roles_a_kit_lacks_are_played_by_substitutes():
    basic = frozenset({"kick", "snare", "hihat_closed"})
    for seed in range(5):
        hits, _ = perform(np.random.default_rng(seed), 20.0, available=basic)
        assert {h.role for h in hits} <= basic


def test_performances_have_ghost_notes_flams_fills_and_distractors():
    roles, ghosts, flams = set(), 0, 0
    for seed in range(12):
        hits, _ = perform(np.random.default_rng(seed), 30.0, available=_ALL_ROLES, style="funk")
        roles |= {h.role for h in hits}
        sn = [h for h in hits if h.role == "snare"]
        ghosts += sum(h.velocity < 0.4 for h in sn)
        flams += sum(0.012 < b.time_s - a.time_s < 0.045 and a.velocity < b.velocity
                     for a, b in zip(sn, sn[1:], strict=False))
    assert {"tom", "crash", "ride", "hihat_open", "hihat_pedal"} <= roles
    assert ghosts > 20 and flams > 0


def test_scattered_performances_have_counts_unrelated_to_any_grid():
    # Per track, each role's rate is drawn afresh: the kick / snare / hi-hat counts of 20 tracks
    # spread widely and do not follow each other (in a groove, snares ~ tempo ~ hi-hats).
    counts = []
    for seed in range(20):
        hits, info = perform(np.random.default_rng(seed), 30.0, available=_ALL_ROLES,
                             style=SCATTERED)
        assert info["style"] == SCATTERED
        assert [h.time_s for h in hits] == sorted(h.time_s for h in hits)
        assert all(0 <= h.time_s < 29.98 and 0 < h.velocity <= 1 for h in hits)
        counts.append([sum(h.role == r for h in hits) for r in ("kick", "snare", "hihat_closed")])
        kicks = np.array([h.time_s for h in hits if h.role == "kick"])
        # Not on a grid: the onsets' phases against any beat of 0.4-0.6 s are spread out.
        for period in (0.4, 0.5, 0.6):
            if kicks.size >= 20:
                phase = np.exp(2j * np.pi * kicks / period).mean()
                assert abs(phase) < 0.5
    counts = np.array(counts, dtype=float)
    assert (counts.std(0) > 0.3 * counts.mean(0)).all()
    assert abs(np.corrcoef(counts[:, 0], counts[:, 1])[0, 1]) < 0.8


def test_scattered_share_applies_to_training_files_only(tmp_path):
    root = tmp_path / "sc"
    synthesize_drum_dataset(root, seed=7, **{**TINY, "n_valid_files": 2}, scattered=1.0)
    files = json.loads((root / "synth_drums.json").read_text())["files"]
    styles = {f["split"]: set() for f in files}
    for f in files:
        styles[f["split"]].add(f["style"])
    assert styles["train"] == {SCATTERED}
    assert SCATTERED not in styles["valid"] | styles["test"]


def test_excluded_kits_are_never_played(recorded, tmp_path):
    _, paths, kw, _ = recorded
    root = tmp_path / "excl"
    synthesize_drum_dataset(root, seed=3, kits=paths, exclude_kits=["KIT_B"], **kw)
    meta = json.loads((root / "synth_drums.json").read_text())
    assert meta["exclude_kits"] == ["KIT_B"]
    played = {f["kit"] for f in meta["files"]}
    assert "kitb" not in played and {"kita", "kitc", "kitd"} & played
    kits = [k["name"] for split in meta["kits"].values() for k in split]
    assert "kitb" not in kits


# ----------------------------------------------------------------------------- varied kits

def _first_rise_s(x, sr):
    return np.flatnonzero(np.abs(x) > 0.05 * np.abs(x).max())[0] / sr


@pytest.mark.parametrize("seed", range(4))
def test_varied_instrument_moves_its_sound_start_with_the_playback_rate(seed, tmp_path):
    """The one-shots' annotated start becomes onset_s / factor, and the sound really starts
    there (kick and snare: first sample above 5 % of the peak, +-0.5 ms; the resampler's
    linear-phase filter rings ~1.5 ms ahead of this kit's hi-hats, noise above 7 kHz at 16 kHz);
    the length scales by 1 / factor."""
    sr = 16000
    (kit,) = load_kits(discover_kits([_write_folder_kit(tmp_path / "k", sr, seed=2)],
                                     system=False), sample_rate=sr)
    for inst in kit.instruments:
        varied = vary_instrument(inst, rng=np.random.default_rng(seed), sample_rate=sr)
        assert (varied.name, varied.role) == (inst.name, inst.role)
        for a, b in zip(inst.samples, varied.samples, strict=True):
            factor = a.audio.size / b.audio.size
            assert 2 ** (-3 / 12) - 0.01 < factor < 2 ** (3 / 12) + 0.01
            assert b.onset_s == pytest.approx(a.onset_s / factor, rel=2e-3)
            if inst.role in ("kick", "snare"):
                assert _first_rise_s(b.audio, sr) == pytest.approx(
                    _first_rise_s(a.audio, sr) / factor, abs=5e-4)
            assert b.audio.dtype == np.float32 and not b.audio.flags.writeable
            assert (b.lo_velocity, b.hi_velocity, b.gain) == (a.lo_velocity, a.hi_velocity,
                                                               a.gain)


def test_varied_instrument_changes_pitch_by_the_drawn_factor():
    """A 1 kHz tone played back at factor f peaks at f kHz (spectrum of the varied sample,
    EQ switched off)."""
    sr = 16000
    t = np.arange(sr) / sr
    tone = (np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.3)).astype(np.float32)
    from softloc.data.generators.kit_formats import KitInstrument, OneShot
    inst = KitInstrument("tone", "tom", (OneShot(tone, 0.0),))
    for seed in range(3):
        (b,) = vary_instrument(inst, rng=np.random.default_rng(seed), sample_rate=sr,
                               max_eq_db=0.0).samples
        factor = tone.size / b.audio.size
        spec = np.abs(np.fft.rfft(b.audio, 8 * sr))
        peak_hz = np.argmax(spec) / 8
        assert peak_hz == pytest.approx(1000 * factor, abs=2.0)
        assert abs(np.log2(factor) * 12) > 0.01  # it did move


def test_varied_instrument_without_variation_is_the_instrument():
    sr = 16000
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(4000) * np.exp(-np.arange(4000) / 800)).astype(np.float32)
    from softloc.data.generators.kit_formats import KitInstrument, OneShot
    inst = KitInstrument("n", "snare", (OneShot(x, 0.01),))
    (b,) = vary_instrument(inst, rng=rng, sample_rate=sr, max_semitones=0.0,
                           max_eq_db=0.0).samples
    np.testing.assert_array_equal(b.audio, x)
    assert b.onset_s == 0.01
    with pytest.raises(ValueError, match="max_semitones"):
        vary_instrument(inst, rng=rng, sample_rate=sr, max_semitones=-1.0)


def test_varied_kits_apply_to_training_files_only_and_keep_the_other_files(tmp_path):
    """vary_kits=1 changes every training file's audio (not its annotations) and no valid /
    test file; the manifest says which files were varied."""
    kw = {**TINY, "n_valid_files": 2}
    plain, varied = tmp_path / "plain", tmp_path / "varied"
    synthesize_drum_dataset(plain, seed=7, **kw)
    synthesize_drum_dataset(varied, seed=7, **kw, vary_kits=1.0)
    files = json.loads((varied / "synth_drums.json").read_text())["files"]
    assert {f["split"] for f in files if f["varied_kit"]} == {"train"}
    assert all(f["varied_kit"] for f in files if f["split"] == "train")
    for f in files:
        a, _ = sf.read(str(plain / "audio" / f"{f['stem']}.wav"))
        b, _ = sf.read(str(varied / "audio" / f"{f['stem']}.wav"))
        assert np.array_equal(a, b) != f["varied_kit"], f["stem"]
        assert (read_annotation_file(plain / "annotations" / f"{f['stem']}.txt")
                == read_annotation_file(varied / "annotations" / f"{f['stem']}.txt"))


def test_mixed_kits_draw_roles_from_several_training_kits_only(recorded, tmp_path):
    """mix_kits=1: training files name a training kit for every role (several kits in all,
    never a valid / test kit); valid and test files are unchanged, annotations too."""
    _, paths, kw, _ = recorded
    kw = {**kw, "n_train_files": 6}
    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    synthesize_drum_dataset(plain, seed=3, kits=paths, **kw)
    synthesize_drum_dataset(mixed, seed=3, kits=paths, **kw, mix_kits=1.0)
    meta = json.loads((mixed / "synth_drums.json").read_text())
    train_kits = {k["name"] for k in meta["kits"]["train"]}
    sources = set()
    for f in meta["files"]:
        a, _ = sf.read(str(plain / "audio" / f"{f['stem']}.wav"))
        b, _ = sf.read(str(mixed / "audio" / f"{f['stem']}.wav"))
        assert (read_annotation_file(plain / "annotations" / f"{f['stem']}.txt")
                == read_annotation_file(mixed / "annotations" / f"{f['stem']}.txt"))
        if f["split"] != "train":
            assert "kit_mix" not in f and np.array_equal(a, b)
            continue
        assert {"kick", "snare", "hihat_closed"} <= set(f["kit_mix"])
        assert set(f["kit_mix"].values()) <= train_kits
        sources |= {src for src in f["kit_mix"].values() if src != f["kit"]}
    assert sources  # some role was played by another kit than the file's own
