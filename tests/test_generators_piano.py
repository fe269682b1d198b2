"""data.generators.piano (+ piano_music, soundfonts): sound-onset labels, layout, piano split."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from softloc.data.formats import read_annotation_file, read_counts_csv, read_split_file
from softloc.data.generators.piano import (
    PIANO_LABELS,
    plan_instruments,
    synthesize_piano_dataset,
)
from softloc.data.generators.piano_music import (
    MIN_REPEAT_S,
    excerpt,
    generate_performance,
    sounding_notes,
)
from softloc.data.generators.soundfonts import (
    TABLE_VELOCITIES,
    Instrument,
    TinySoundFontRenderer,
    discover_soundfonts,
    is_reserved_soundfont,
    measure_sound_onset,
    onset_delay_table,
    soundfont_family,
)
from softloc.data.midi import Note, read_maps_notes

SR = 16000
FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def _stub_delay_s(instrument: Instrument, pitch: int, velocity: int) -> float:
    """The stub's own note-on -> sound delay: depends on font, program, pitch and velocity."""
    font = 0.004 if "A" in Path(instrument.soundfont).name else 0.009
    soft = 0.006 if velocity < 48 else 0.0
    return font + 0.002 * instrument.program + 0.0001 * (108 - pitch) + soft


class StubRenderer:
    """Noise bursts that start exactly `_stub_delay_s` after each note-on (known answer)."""

    cache_id = "stub-1"

    def __init__(self, programs=(0, 1, 2, 3, 4, 5, 6, 7)):
        self._programs = programs
        self.calls = 0

    def programs(self, soundfont):
        return {p: f"program {p}" for p in self._programs}

    def render(self, notes, *, instrument, duration_s, sample_rate):
        self.calls += 1
        out = np.zeros(int(round(duration_s * sample_rate)), dtype=np.float32)
        for n in notes:
            rng = np.random.default_rng(n.pitch)
            start = int(round((n.onset_s + _stub_delay_s(instrument, n.pitch, n.velocity or 80))
                              * sample_rate))
            stop = min(out.size, max(start, int(round(n.offset_s * sample_rate))) + 400)
            k = np.arange(stop - start)
            burst = rng.standard_normal(k.size) * np.exp(-k / (0.05 * sample_rate))
            out[start:stop] += (0.2 * (n.velocity or 80) / 127 * burst).astype(np.float32)
        return out


def _fonts(tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        p = tmp_path / "fonts" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"RIFF")
        out.append(p)
    return out


# ----------------------------------------------------------------------------- onset measurement

@pytest.mark.parametrize("start_s", [0.0, 0.0123, 0.2])
def test_measure_sound_onset_finds_a_known_start(start_s):
    rng = np.random.default_rng(0)
    x = 1e-4 * rng.standard_normal(int(0.5 * SR))  # -80 dB floor before the sound
    i = int(round(start_s * SR))
    k = np.arange(x.size - i)
    x[i:] += rng.standard_normal(k.size) * np.exp(-k / (0.1 * SR))
    assert measure_sound_onset(x, SR) == pytest.approx(start_s, abs=0.0006)


def test_measure_sound_onset_of_a_low_tone_and_a_slow_attack():
    t = np.arange(int(0.6 * SR)) / SR
    a0 = np.where(t >= 0.1, np.sin(2 * np.pi * 27.5 * (t - 0.1)) * np.exp(-(t - 0.1) / 0.3), 0.0)
    assert measure_sound_onset(a0, SR) == pytest.approx(0.1, abs=0.0015)
    # a linear 20 ms attack reaches 10 % (-20 dB) of its peak after 2 ms
    ramp = np.where(t >= 0.1, np.minimum((t - 0.1) / 0.02, 1.0), 0.0) * np.sin(2 * np.pi * 2000 * t)
    assert measure_sound_onset(ramp, SR) == pytest.approx(0.102, abs=0.0007)
    assert measure_sound_onset(ramp, SR, threshold_db=-6.0) == pytest.approx(0.11, abs=0.0007)
    with pytest.raises(ValueError, match="silent"):
        measure_sound_onset(np.zeros(100), SR)
    with pytest.raises(ValueError, match="1-D"):
        measure_sound_onset(np.zeros((2, 100)), SR)


def test_onset_table_measures_each_pitch_and_velocity_and_is_cached(tmp_path):
    (font,) = _fonts(tmp_path, "A.sf2")
    inst = Instrument(str(font), 3, "x")
    stub = StubRenderer()
    pitches = (21, 60, 108)
    table = onset_delay_table(stub, inst, sample_rate=SR, pitches=pitches, cache_dir=tmp_path)
    for i, p in enumerate(pitches):
        for j, v in enumerate(TABLE_VELOCITIES):
            assert table.delays_s[i, j] == pytest.approx(_stub_delay_s(inst, p, v), abs=6e-4)
    assert table.delay_s(60, 30) == pytest.approx(table.delays_s[1, 2])  # nearest velocity 24
    assert table.delay_s(60, 127) == pytest.approx(_stub_delay_s(inst, 60, 127), abs=6e-4)
    calls = stub.calls
    assert calls == len(pitches) * len(TABLE_VELOCITIES)
    again = onset_delay_table(stub, inst, sample_rate=SR, pitches=pitches, cache_dir=tmp_path)
    assert stub.calls == calls and np.array_equal(again.delays_s, table.delays_s)
    other = onset_delay_table(stub, inst._replace(program=4), sample_rate=SR, pitches=pitches,
                              cache_dir=tmp_path)  # another program: measured anew
    assert stub.calls == 2 * calls and not np.allclose(other.delays_s, table.delays_s)


# ----------------------------------------------------------------------------- SoundFonts

def test_discovery_excludes_reserved_fonts_even_behind_links(tmp_path, monkeypatch):
    """Reserved fonts come from the one hold-out list of the drum kits (their names are not
    written in code or tests: two stand-in entries here)."""
    import hashlib

    import softloc.data.generators.kits as kits_mod

    stand_ins = {(len(n), hashlib.sha256(n.encode()).hexdigest()[:16])
                 for n in ("secretpiano", "hiddengm")}
    monkeypatch.setattr(kits_mod, "EVALUATION_HOLDOUT", kits_mod.EVALUATION_HOLDOUT | stand_ins)
    d, elsewhere = tmp_path / "sf2", tmp_path / "elsewhere"
    d.mkdir()
    elsewhere.mkdir()
    (d / "Good_GM.sf2").write_bytes(b"x")
    (d / "notes.txt").write_bytes(b"x")
    reserved_a, reserved_b = "Secret_Piano", "HiddenGM"
    (d / f"{reserved_a.lower().replace('_', '-')}.sf3").write_bytes(b"x")
    (elsewhere / f"{reserved_b}.sf2").write_bytes(b"x")
    (d / "default-GM.sf2").symlink_to(elsewhere / f"{reserved_b}.sf2")  # an alias of a reserved
    (d / "alias.sf2").symlink_to(d / "Good_GM.sf2")  # a second name of the good one
    (d / "dangling.sf2").symlink_to(tmp_path / "missing.sf2")
    assert discover_soundfonts([d, tmp_path / "absent"]) == [(d / "Good_GM.sf2").resolve()]
    assert is_reserved_soundfont(d / "default-GM.sf2")
    assert not is_reserved_soundfont(d / "alias.sf2")


def test_families_group_mono_and_gm_variants():
    assert soundfont_family("FluidR3_GM.sf2") == soundfont_family("/x/FluidR3Mono_GM.sf3")
    assert soundfont_family("FluidR3_GS.sf2") == "fluidr3"
    assert soundfont_family("sf_GMbank.sf2") != soundfont_family("FluidR3_GM.sf2")


def test_train_and_test_pianos_never_share_a_family(tmp_path):
    fluid, mono, bank = _fonts(tmp_path, "FluidR3_GM.sf2", "FluidR3Mono_GM.sf3", "sf_GMbank.sf2")
    stub = StubRenderer()
    plan, how = plan_instruments(stub, [fluid, mono, bank])
    fam = {s: {soundfont_family(i.soundfont) for i in v} for s, v in plan.items()}
    assert fam == {"train": {"fluidr3"}, "valid": {"fluidr3"}, "test": {"sfgmbank"}}
    assert sorted({i.program for i in plan["test"]}) == [0, 1, 2, 3]
    assert len(plan["train"]) == 16 and "held out" in how
    plan, _ = plan_instruments(stub, [fluid, mono, bank], test_soundfonts=["FluidR3Mono_GM.sf3"])
    assert {Path(i.soundfont).name for i in plan["test"]} == {"FluidR3_GM.sf2",
                                                              "FluidR3Mono_GM.sf3"}
    assert {Path(i.soundfont).name for i in plan["train"]} == {"sf_GMbank.sf2"}
    # one family: the programs are split instead
    plan, how = plan_instruments(stub, [fluid, mono])
    assert {i.program for i in plan["train"]} == {4, 5, 6, 7}
    assert {i.program for i in plan["test"]} == {0, 1, 2, 3} and "one SoundFont family" in how
    with pytest.raises(ValueError, match="not among the SoundFonts"):
        plan_instruments(stub, [fluid, bank], test_soundfonts=["other.sf2"])
    with pytest.raises(ValueError, match="no SoundFont"):
        plan_instruments(stub, [])
    with pytest.raises(ValueError, match="no test instrument"):
        plan_instruments(StubRenderer(programs=(5,)), [fluid, bank])


# ----------------------------------------------------------------------------- the dataset

def _tiny(tmp_path, name="ds", seed=0, **kw):
    fonts = _fonts(tmp_path, "A_GM.sf2", "B.sf2")
    args = {"seed": seed, "soundfonts": fonts, "minutes": 0.2, "valid_minutes": 0.1,
            "test_minutes": 0.1, "file_duration_s": 6.0, "sample_rate": SR,
            "cache_dir": tmp_path / "cache", "renderer": StubRenderer()}
    args.update(kw)
    return synthesize_piano_dataset(tmp_path / name, **args)


def test_labels_are_sound_onsets_not_note_ons(tmp_path):
    idx = _tiny(tmp_path)
    manifest = json.loads((tmp_path / "ds" / "synth_piano.json").read_text())["files"]
    checked = 0
    for entry in manifest:
        inst = Instrument(str(tmp_path / "fonts" / entry["soundfont"]), entry["program"])
        notes = read_maps_notes(tmp_path / "ds" / "notes" / f"{entry['stem']}.txt")
        labels = read_annotation_file(tmp_path / "ds" / "annotations" / f"{entry['stem']}.txt")
        assert len(labels) == len(notes) == entry["n_labels"] > 5
        for pitch in {n.pitch for n in notes}:
            want = np.sort([n.onset_s + _stub_delay_s(inst, pitch, 80) for n in notes
                            if n.pitch == pitch])
            got = np.sort([t for t, lab in labels if lab == str(pitch)])
            # loud notes: the stub's delay; soft ones (velocity < 48) sound 6 ms later still
            err = got - want
            assert np.all((np.abs(err) < 7e-4) | (np.abs(err - 0.006) < 7e-4)), err
            checked += err.size
        onsets = np.array(sorted(n.onset_s for n in notes))
        assert np.min(np.array(sorted(t for t, _ in labels)) - onsets) > 0.003
    assert checked > 20
    assert idx.classes == PIANO_LABELS


def test_layout_is_what_load_dataset_reads(tmp_path):
    idx = _tiny(tmp_path)
    root = tmp_path / "ds"
    assert {s: len(v) for s, v in idx.splits.items()} == {"train": 2, "valid": 1, "test": 1}
    for split in ("train", "valid", "test"):
        assert [s for _, s in read_split_file(root / "splits" / f"{split}.txt")] == \
            idx.splits[split]
    info = sf.info(root / "audio" / "train_000.wav")
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert info.frames == 6 * SR
    # counts.csv agrees with the annotations, counted here independently
    events = read_annotation_file(root / "annotations" / "test_000.txt")
    rows = [r for r in read_counts_csv(root / "counts.csv") if r[1] == "test_000"]
    assert len(rows) == 88 * 10  # windows of 1.5 s every 0.5 s in 6 s, one row per key
    for _, _, start, end, label, count in rows:
        assert count == sum(1 for t, lab in events if lab == label and start <= t < end)
    assert sum(len(w) for w in idx.count_windows.values()) == 40


def test_generation_is_deterministic_per_seed(tmp_path):
    _tiny(tmp_path, "a", seed=3)
    _tiny(tmp_path, "b", seed=3)
    _tiny(tmp_path, "c", seed=4)
    for name in ("annotations/train_001.txt", "audio/test_000.wav", "counts.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "annotations" / "train_001.txt").read_bytes() != \
        (tmp_path / "c" / "annotations" / "train_001.txt").read_bytes()


def test_no_valid_split_when_asked_and_errors(tmp_path):
    idx = _tiny(tmp_path, valid_minutes=0.0)
    assert idx.splits["valid"] == [] and not (tmp_path / "ds" / "splits" / "valid.txt").exists()
    with pytest.raises(FileExistsError, match="not empty"):
        _tiny(tmp_path)
    with pytest.raises(ValueError, match="minutes"):
        _tiny(tmp_path, "x", minutes=0.0)
    with pytest.raises(ValueError, match="file_duration_s"):
        _tiny(tmp_path, "x", file_duration_s=1.0)
    with pytest.raises(FileNotFoundError, match="SoundFont not found"):
        _tiny(tmp_path, "x", soundfonts=[tmp_path / "none.sf2"])
    with pytest.raises(FileNotFoundError, match="MIDI folder"):
        _tiny(tmp_path, "x", midi_dir=tmp_path / "no-midi")


def _midi_file(path: Path, pitch: int, n_notes: int) -> None:
    mid = mido.MidiFile(ticks_per_beat=100)  # 120 BPM: 1 tick = 5 ms
    msgs = [mido.Message("control_change", control=64, value=127, time=0)]
    for _ in range(n_notes):
        msgs += [mido.Message("note_on", note=pitch, velocity=100, time=50),    # +0.25 s
                 mido.Message("note_off", note=pitch, time=20)]                 # held 0.1 s
    mid.tracks.append(mido.MidiTrack(msgs))
    mid.save(path)


def test_midi_folder_rendered_each_file_in_one_split(tmp_path):
    midi_dir = tmp_path / "midi"
    midi_dir.mkdir()
    for k, pitch in enumerate((40, 60, 80)):
        _midi_file(midi_dir / f"song{k}.mid", pitch, n_notes=40)  # 40 * 0.35 s = 14 s each
    idx = _tiny(tmp_path, midi_dir=midi_dir, generated_music=False, minutes=0.3,
                valid_minutes=0.1, test_minutes=0.1)
    manifest = json.loads((tmp_path / "ds" / "synth_piano.json").read_text())["files"]
    split_of_song: dict[str, set[str]] = {}
    for e in manifest:
        split_of_song.setdefault(e["source"].split("@")[0], set()).add(e["split"])
        assert e["source"] != "generated"
    assert all(len(s) == 1 for s in split_of_song.values()) and len(split_of_song) == 3
    # every key press of the excerpt is labelled (pitch from the file, time = on + delay)
    e = manifest[0]
    labels = read_annotation_file(tmp_path / "ds" / "annotations" / f"{e['stem']}.txt")
    pitch = {"song0.mid": "40", "song1.mid": "60", "song2.mid": "80"}[e["source"].split("@")[0]]
    assert {lab for _, lab in labels} == {pitch}
    start = float(e["source"].split("@")[1][:-1])
    presses = 0.25 + 0.35 * np.arange(40)  # the file's note-ons
    first = presses[presses >= start][0] - start
    inst = Instrument(str(tmp_path / "fonts" / e["soundfont"]), e["program"])
    assert labels[0][0] == pytest.approx(first + _stub_delay_s(inst, int(pitch), 100), abs=7e-4)
    assert len(idx.splits["train"]) >= 1


# ----------------------------------------------------------------------------- music

def test_generated_music_is_playable_and_covers_the_keyboard():
    keys = set()
    for seed in range(30):
        perf = generate_performance(np.random.default_rng(seed), 30.0)
        assert len(perf.notes) > 60
        for n in perf.notes:
            assert 21 <= n.pitch <= 108 and 1 <= n.velocity <= 127
            assert 0.05 <= n.onset_s < n.offset_s <= 30.0
        by_key: dict[int, list[float]] = {}
        for n in perf.notes:
            by_key.setdefault(n.pitch, []).append(n.onset_s)
        for onsets in by_key.values():
            assert np.all(np.diff(onsets) >= MIN_REPEAT_S)
        for a, b in perf.sustain_s:
            assert 0 <= a < b <= 30.0
        keys |= set(by_key)
    assert len(keys) >= 85
    a = generate_performance(np.random.default_rng(5), 10.0)
    assert a == generate_performance(np.random.default_rng(5), 10.0)
    with pytest.raises(ValueError, match="duration_s"):
        generate_performance(np.random.default_rng(0), 0.5)


def test_pedal_sustains_and_a_restrike_cuts():
    notes = [Note(0.0, 0.2, 60, 80), Note(0.5, 0.6, 60, 80), Note(0.1, 0.3, 64, 80),
             Note(2.0, 2.1, 67, 80)]
    got = sounding_notes(notes, [(0.15, 1.0), (1.9, 2.05)])
    assert got == [Note(0.0, 0.5, 60, 80), Note(0.1, 1.0, 64, 80), Note(0.5, 1.0, 60, 80),
                   Note(2.0, 2.1, 67, 80)]
    assert sounding_notes(notes, []) == sorted(notes, key=lambda n: (n.onset_s, n.pitch))


def test_excerpt_keeps_presses_inside_and_retimes():
    notes = [Note(0.5, 3.0, 60, 80), Note(2.5, 4.5, 62, 70), Note(4.0, 4.2, 64, 60)]
    perf = excerpt(notes, [(1.0, 2.6), (3.5, 6.0)], 2.0, 2.0)
    assert perf.notes == [Note(0.5, 2.0, 62, 70)]
    assert perf.sustain_s == [(0.0, pytest.approx(0.6)), (1.5, 2.0)]
    assert perf.duration_s == 2.0


# ----------------------------------------------------------------------------- real SoundFont

@pytest.mark.skipif(not FLUID.is_file(), reason="needs Debian fluid-soundfont-gm")
def test_fluidr3_render_starts_sounding_at_the_measured_onset(tmp_path):
    sr = 44100
    renderer = TinySoundFontRenderer(sr)
    inst = Instrument(str(FLUID), 0, "grand")
    table = onset_delay_table(renderer, inst, sample_rate=sr, pitches=(21, 60, 100),
                              velocities=(64,), cache_dir=tmp_path)
    assert np.all((table.delays_s >= 0) & (table.delays_s < 0.05))
    for pitch in (21, 60, 100):
        d = table.delay_s(pitch, 64)
        audio = renderer.render([Note(0.5, 1.0, pitch, 64)], instrument=inst, duration_s=1.2,
                                sample_rate=sr)
        peak = np.abs(audio).max()
        on = int(round((0.5 + d) * sr))
        assert np.abs(audio[: int(0.5 * sr)]).max() == 0.0  # nothing before the note-on
        assert np.abs(audio[: on - int(0.001 * sr)]).max() < 0.2 * peak
        assert np.abs(audio[on: on + int(0.004 * sr)]).max() > 0.1 * peak
    # in a piece each note starts exactly as it does alone: the render is the sum of the
    # isolated notes (so a piece's labels are the isolated notes' measured onsets)
    a, b = Note(0.1, 0.6, 60, 90), Note(0.3037, 0.8, 67, 70)
    both = renderer.render([a, b], instrument=inst, duration_s=1.0, sample_rate=sr)
    alone = [renderer.render([n], instrument=inst, duration_s=1.0, sample_rate=sr)
             for n in (a, b)]
    assert np.abs(both - alone[0] - alone[1]).max() < 1e-3 * np.abs(both).max()
    idx = synthesize_piano_dataset(tmp_path / "ds", seed=1, soundfonts=[FLUID], minutes=0.05,
                                   valid_minutes=0.0, test_minutes=0.05, file_duration_s=3.0,
                                   cache_dir=tmp_path / "cache")
    assert idx.splits["train"] == ["train_000"] and idx.splits["test"] == ["test_000"]
    manifest = json.loads((tmp_path / "ds" / "synth_piano.json").read_text())
    assert manifest["files"][0]["program"] >= 4 and manifest["files"][1]["program"] <= 3
    assert os.path.getsize(tmp_path / "ds" / "audio" / "test_000.wav") > 3 * sr
