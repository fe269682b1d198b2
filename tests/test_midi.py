"""softloc.data.midi: MAPS note lists, MIDI files, MAESTRO folders, the MAPS split."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import pytest
import soundfile as sf

from softloc.data.formats import DatasetError, read_annotation_file, read_split_file
from softloc.data.midi import (
    MAPS_TEST_PIANOS,
    Note,
    maps_piece_id,
    notes_to_events,
    pitch_label,
    read_maps_notes,
    read_midi,
    read_notes_any,
    scan_maestro,
    scan_maps,
    write_maps_notes,
    write_pieces_layout,
)

MAPS_HEADER = "OnsetTime\tOffsetTime\tMidiPitch\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _wav(path: Path, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, [0.0] * int(8000 * seconds), 8000)
    return path


# ----------------------------------------------------------------------------- MAPS note lists

def test_maps_notes_parsed_sorted_with_velocity_unknown(tmp_path):
    body = "1.5\t2.0\t64\r\n0.500004\t1.21\t60\n\n0.5 0.9 21\n"
    p = _write(tmp_path / "a.txt", MAPS_HEADER + body)
    assert read_maps_notes(p) == [Note(0.5, 0.9, 21, None), Note(0.500004, 1.21, 60, None),
                                  Note(1.5, 2.0, 64, None)]


def test_maps_header_only_gives_no_notes(tmp_path):
    assert read_maps_notes(_write(tmp_path / "a.txt", MAPS_HEADER)) == []


@pytest.mark.parametrize("body, line, match", [
    ("0.5\t60\n", 2, "expected 3 fields"),
    ("x\t1.0\t60\n", 2, "OnsetTime is not a number"),
    ("1.0\t0.5\t60\n", 2, "OffsetTime 0.5 is before OnsetTime"),
    ("0.1\t0.5\t60\n0.5\t1.0\t60.5\n", 3, "MidiPitch must be an integer"),
    ("0.5\t1.0\t128\n", 2, "MidiPitch must be an integer in 0..127"),
    ("-0.5\t1.0\t60\n", 2, "OnsetTime must be finite and >= 0"),
])
def test_maps_errors_name_file_and_line(tmp_path, body, line, match):
    p = _write(tmp_path / "bad.txt", MAPS_HEADER + body)
    with pytest.raises(DatasetError, match=rf"bad\.txt:{line}: {match}"):
        read_maps_notes(p)


def test_maps_without_header_is_an_error_naming_line_1(tmp_path):
    p = _write(tmp_path / "ann.txt", "0.5\t1.0\t60\n")
    with pytest.raises(DatasetError, match=r"ann\.txt:1: expected the MAPS header"):
        read_maps_notes(p)
    with pytest.raises(DatasetError, match=r"empty\.txt:1: empty file"):
        read_maps_notes(_write(tmp_path / "empty.txt", "\n"))
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_maps_notes(tmp_path / "nope.txt")


def test_notes_to_events_labels_are_pitch_numbers():
    notes = [Note(1.0, 1.5, 108, 90), Note(0.25, 0.5, 21, None), Note(0.25, 0.5, 20, None)]
    assert notes_to_events(notes) == [(0.25, "20"), (0.25, "21"), (1.0, "108")]
    assert pitch_label(60) == "60"
    for bad in (128, -1, 60.0, True):
        with pytest.raises(ValueError, match="pitch_label"):
            pitch_label(bad)


def test_maps_writer_round_trips_and_validates(tmp_path):
    notes = [Note(1.25, 2.0, 64, 90), Note(0.123456, 0.5, 21, None)]
    write_maps_notes(tmp_path / "n.txt", notes)
    assert (tmp_path / "n.txt").read_text().splitlines()[0] == MAPS_HEADER.strip()
    assert read_maps_notes(tmp_path / "n.txt") == [Note(0.123456, 0.5, 21, None),
                                                   Note(1.25, 2.0, 64, None)]
    with pytest.raises(FileExistsError):
        write_maps_notes(tmp_path / "n.txt", notes)
    with pytest.raises(ValueError, match="onset_s <= offset_s"):
        write_maps_notes(tmp_path / "m.txt", [Note(2.0, 1.0, 60)])


# ----------------------------------------------------------------------------- MIDI

def _type1_midi(path: Path) -> Path:
    """Two piano tracks (two channels), a drum track, pedal, and a tempo change.

    480 ticks per beat; 120 BPM until tick 960 (= 1.0 s), then 60 BPM (1 beat = 1 s).
    """
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0),
                           mido.MetaMessage("set_tempo", tempo=1_000_000, time=960)])
    right = mido.MidiTrack([
        mido.Message("program_change", program=0, channel=0, time=0),
        mido.Message("note_on", note=72, velocity=90, channel=0, time=240),   # 0.25 s
        mido.Message("note_off", note=72, velocity=0, channel=0, time=240),   # 0.5 s
        mido.Message("control_change", control=64, value=127, channel=0, time=0),  # 0.5 s
        mido.Message("note_on", note=76, velocity=50, channel=0, time=960),   # 2.0 s
        mido.Message("control_change", control=64, value=0, channel=0, time=240),  # 2.5 s
        mido.Message("note_on", note=76, velocity=0, channel=0, time=240),    # 3.0 s (off)
    ])
    left = mido.MidiTrack([
        mido.Message("program_change", program=1, channel=1, time=0),
        mido.Message("note_on", note=36, velocity=70, channel=1, time=1440),  # 2.0 s
        mido.Message("note_off", note=36, velocity=0, channel=1, time=480),   # 3.0 s
    ])
    drums = mido.MidiTrack([
        mido.Message("note_on", note=38, velocity=100, channel=9, time=480),  # 0.5 s
        mido.Message("note_off", note=38, velocity=0, channel=9, time=120),
    ])
    mid.tracks.extend([meta, right, left, drums])
    mid.save(path)
    return path


def test_midi_notes_of_all_tracks_with_tempo_change_drums_apart(tmp_path):
    m = read_midi(_type1_midi(tmp_path / "a.mid"))
    got = [(round(n.onset_s, 6), round(n.offset_s, 6), n.pitch, n.velocity) for n in m.notes]
    assert got == [(0.25, 0.5, 72, 90), (2.0, 3.0, 36, 70), (2.0, 3.0, 76, 50)]
    assert [(round(n.onset_s, 6), n.pitch) for n in m.drums] == [(0.5, 38)]
    assert [(round(a, 6), round(b, 6)) for a, b in m.sustain_s] == [(0.5, 2.5)]
    assert notes_to_events(m.notes)[0] == (pytest.approx(0.25), "72")


def test_midi_type0_single_track_many_channels(tmp_path):
    mid = mido.MidiFile(type=0, ticks_per_beat=100)  # default tempo 120 BPM: 1 tick = 5 ms
    mid.tracks.append(mido.MidiTrack([
        mido.Message("note_on", note=60, velocity=80, channel=0, time=10),   # 0.05 s
        mido.Message("note_on", note=42, velocity=80, channel=9, time=0),    # drum
        mido.Message("note_on", note=48, velocity=60, channel=3, time=10),   # 0.10 s
        mido.Message("note_off", note=60, channel=0, time=10),
        mido.Message("note_off", note=42, channel=9, time=0),
        mido.Message("note_off", note=48, channel=3, time=10),
        mido.Message("control_change", control=64, value=100, channel=3, time=0),  # unterminated
        mido.Message("note_on", note=50, velocity=60, channel=3, time=100),  # 0.70 s
        mido.Message("note_off", note=50, channel=3, time=100),               # 1.20 s
    ]))
    p = tmp_path / "t0.midi"
    mid.save(p)
    m = read_midi(p)
    assert [(round(n.onset_s, 6), n.pitch) for n in m.notes] == [(0.05, 60), (0.1, 48), (0.7, 50)]
    assert [n.pitch for n in m.drums] == [42]
    # a pedal held at the end of the file lasts until the end
    assert [(round(a, 6), round(b, 6)) for a, b in m.sustain_s] == [(0.2, round(m.end_s, 6))]
    assert read_notes_any(p) == m.notes


def test_midi_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(DatasetError, match=r"broken\.mid: cannot read MIDI"):
        read_midi(bad)
    with pytest.raises(FileNotFoundError, match="missing.mid"):
        read_midi(tmp_path / "missing.mid")
    with pytest.raises(ValueError, match="read_notes_any"):
        read_notes_any(tmp_path / "x.xml")


# ----------------------------------------------------------------------------- MAPS folders

def _maps_file(root: Path, piano: str, piece: str, notes: str = "0.5\t1.0\t60\n") -> Path:
    folder = root / piano / "MUS"
    wav = _wav(folder / f"MAPS_MUS-{piece}_{piano}.wav")
    _write(folder / f"MAPS_MUS-{piece}_{piano}.txt", MAPS_HEADER + notes)
    return wav


def test_maps_piece_id_parses_names():
    assert maps_piece_id("MAPS_MUS-chpn_op25_e4_ENSTDkCl.wav") == ("MUS", "chpn_op25_e4",
                                                                   "ENSTDkCl")
    assert maps_piece_id("MAPS_ISOL_NO_F_S0_M21_AkPnBcht") == ("ISOL", "NO_F_S0_M21", "AkPnBcht")
    assert maps_piece_id("song.wav") is None


def test_maps_split_trains_on_synth_pianos_tests_on_disklavier(tmp_path):
    _maps_file(tmp_path, "ENSTDkCl", "chpn_op25_e4")
    _maps_file(tmp_path, "ENSTDkAm", "bach_846")
    _maps_file(tmp_path, "AkPnBcht", "chpn_op25_e4")   # same piece as a test piece: left out
    _maps_file(tmp_path, "AkPnCGdD", "liz_et6")
    _maps_file(tmp_path, "StbgTGd2", "mz_331_1")
    _wav(tmp_path / "AkPnCGdD" / "ISOL" / "MAPS_ISOL_NO_F_S0_M21_AkPnCGdD.wav")  # not MUS
    pieces = {p.stem: p for p in scan_maps(tmp_path)}
    split = {stem: p.split for stem, p in pieces.items()}
    assert split == {
        "MAPS_MUS-chpn_op25_e4_ENSTDkCl": "test",
        "MAPS_MUS-bach_846_ENSTDkAm": "test",
        "MAPS_MUS-chpn_op25_e4_AkPnBcht": None,
        "MAPS_MUS-liz_et6_AkPnCGdD": "train",
        "MAPS_MUS-mz_331_1_StbgTGd2": "train",
    }
    assert set(MAPS_TEST_PIANOS) == {"ENSTDkCl", "ENSTDkAm"}
    p = pieces["MAPS_MUS-liz_et6_AkPnCGdD"]
    assert (p.instrument, p.piece_id) == ("AkPnCGdD", "liz_et6")
    assert p.read_notes() == [Note(0.5, 1.0, 60, None)]


def test_maps_split_pianos_are_configurable(tmp_path):
    _maps_file(tmp_path, "ENSTDkCl", "a")
    _maps_file(tmp_path, "AkPnCGdD", "b")
    got = {p.stem: p.split for p in scan_maps(tmp_path, test_pianos=("AkPnCGdD",),
                                              train_pianos=("ENSTDkCl",))}
    assert got == {"MAPS_MUS-a_ENSTDkCl": "train", "MAPS_MUS-b_AkPnCGdD": "test"}
    with pytest.raises(ValueError, match="both"):
        scan_maps(tmp_path, test_pianos=("AkPnCGdD",), train_pianos=("AkPnCGdD",))


def test_maps_scan_errors(tmp_path):
    with pytest.raises(DatasetError, match="no MAPS_MUS"):
        scan_maps(tmp_path)
    _wav(tmp_path / "ENSTDkCl" / "MUS" / "MAPS_MUS-x_ENSTDkCl.wav")
    with pytest.raises(DatasetError, match=r"MAPS_MUS-x_ENSTDkCl\.wav: no note list"):
        scan_maps(tmp_path)
    with pytest.raises(FileNotFoundError):
        scan_maps(tmp_path / "absent")


def test_maps_to_generic_layout_round_trip(tmp_path):
    _maps_file(tmp_path / "maps", "ENSTDkCl", "a", "0.5\t1.0\t60\n0.25\t2.0\t21\n")
    _maps_file(tmp_path / "maps", "AkPnCGdD", "b", "1.0\t1.5\t108\n")
    _maps_file(tmp_path / "maps", "AkPnBcht", "a")
    splits = write_pieces_layout(scan_maps(tmp_path / "maps"), tmp_path / "ds")
    assert splits == {"test": ["MAPS_MUS-a_ENSTDkCl"], "train": ["MAPS_MUS-b_AkPnCGdD"]}
    ds = tmp_path / "ds"
    assert read_annotation_file(ds / "annotations" / "MAPS_MUS-a_ENSTDkCl.txt") == [
        (0.25, "21"), (0.5, "60")]
    assert [s for _, s in read_split_file(ds / "splits" / "train.txt")] == ["MAPS_MUS-b_AkPnCGdD"]
    assert not (ds / "splits" / "valid.txt").exists()
    link = ds / "audio" / "MAPS_MUS-a_ENSTDkCl.wav"
    assert link.is_symlink() and sf.info(link).frames == 4000
    with pytest.raises(FileExistsError):
        write_pieces_layout(scan_maps(tmp_path / "maps"), ds)
    write_pieces_layout(scan_maps(tmp_path / "maps"), ds, overwrite=True, copy=True)
    assert not link.is_symlink()


# ----------------------------------------------------------------------------- MAESTRO

def _maestro_pair(root: Path, year: str, stem: str) -> tuple[str, str]:
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=64, time=480),
                                      mido.Message("note_off", note=60, time=480)]))
    (root / year).mkdir(parents=True, exist_ok=True)
    mid.save(root / year / f"{stem}.midi")
    _wav(root / year / f"{stem}.wav")
    return f"{year}/{stem}.midi", f"{year}/{stem}.wav"


def test_maestro_csv_index_splits(tmp_path):
    rows = [("train", *_maestro_pair(tmp_path, "2004", "p1")),
            ("validation", *_maestro_pair(tmp_path, "2006", "p2")),
            ("test", *_maestro_pair(tmp_path, "2008", "p3"))]
    lines = ["canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration"]
    lines += [f'X,"T, with comma",{s},2004,{m},{a},1.0' for s, m, a in rows]
    _write(tmp_path / "maestro-v3.0.0.csv", "\n".join(lines) + "\n")
    pieces = scan_maestro(tmp_path)
    assert [(p.stem, p.split) for p in pieces] == [("p1", "train"), ("p2", "valid"),
                                                   ("p3", "test")]
    assert [(round(n.onset_s, 6), n.pitch) for n in pieces[0].read_notes()] == [(0.5, 60)]
    splits = write_pieces_layout(pieces, tmp_path / "ds")
    assert splits == {"train": ["p1"], "valid": ["p2"], "test": ["p3"]}


def test_maestro_json_columns_and_records(tmp_path):
    m1, a1 = _maestro_pair(tmp_path, "2004", "p1")
    m2, a2 = _maestro_pair(tmp_path, "2005", "p1")  # same stem, other year
    cols = {"split": {"0": "train", "1": "test"}, "midi_filename": {"0": m1, "1": m2},
            "audio_filename": {"0": a1, "1": a2}, "duration": {"0": 1.0, "1": 1.0}}
    _write(tmp_path / "maestro-v2.0.0.json", json.dumps(cols))
    assert [(p.stem, p.split) for p in scan_maestro(tmp_path)] == [("2004_p1", "train"),
                                                                   ("2005_p1", "test")]
    rec = tmp_path / "index.json"
    _write(rec, json.dumps([{"split": "validation", "midi_filename": m1, "audio_filename": a1}]))
    assert [(p.stem, p.split) for p in scan_maestro(tmp_path, index=rec)] == [("p1", "valid")]


def test_maestro_index_errors_name_file_and_line(tmp_path):
    m, a = _maestro_pair(tmp_path, "2004", "p1")
    bad = _write(tmp_path / "maestro.csv",
                 f"split,midi_filename,audio_filename\ntrain,{m},{a}\ndev,{m},{a}\n")
    with pytest.raises(DatasetError, match=r"maestro\.csv:3: unknown split 'dev'"):
        scan_maestro(tmp_path)
    _write(bad, f"split,midi_filename,audio_filename\ntrain,{m},2004/none.wav\n")
    with pytest.raises(DatasetError, match=r"maestro\.csv:2: audio_filename .* does not exist"):
        scan_maestro(tmp_path)
    _write(bad, "split,midi\ntrain,x\n")
    with pytest.raises(DatasetError, match=r"maestro\.csv:1: header lacks columns"):
        scan_maestro(tmp_path)
    _write(bad, "split,midi_filename,audio_filename\ntrain,x\n")
    with pytest.raises(DatasetError, match=r"maestro\.csv:2: expected 3 fields"):
        scan_maestro(tmp_path)
    bad.unlink()
    j = _write(tmp_path / "maestro.json", json.dumps([{"split": "train"}]))
    with pytest.raises(DatasetError, match=r"maestro\.json:1: record 1 lacks"):
        scan_maestro(tmp_path)
    _write(j, "{\n  bad")
    with pytest.raises(DatasetError, match=r"maestro\.json:2: not valid JSON"):
        scan_maestro(tmp_path)


def test_maestro_without_index_pairs_by_stem(tmp_path):
    _maestro_pair(tmp_path, "2004", "p1")
    (tmp_path / "2004" / "lonely.midi").write_bytes((tmp_path / "2004" / "p1.midi").read_bytes())
    pieces = scan_maestro(tmp_path)
    assert [(p.stem, p.split) for p in pieces] == [("p1", None)]
    assert write_pieces_layout(pieces, tmp_path / "ds") == {}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no index file"):
        scan_maestro(tmp_path / "empty")
