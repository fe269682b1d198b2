"""softloc.data.midi: MAPS note lists, MIDI files, MAESTRO folders, the MAPS split."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest
import soundfile as sf

from softloc.data.formats import DatasetError
from softloc.data.midi import (
    Note,
    notes_to_events,
    pitch_label,
    read_maps_notes,
    read_midi,
    read_notes_any,
    write_maps_notes,
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
