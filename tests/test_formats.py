import json
import re

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from softloc.data.formats import (
    ENST_LABEL_MAP,
    GM_DRUM_MAP,
    GM_DRUM_PITCHES,
    DatasetError,
    DatasetWarning,
    read_annotation_file,
    read_counts_csv,
    read_events_any,
    read_idmt_xml,
    read_midi_drums,
    write_events,
)
from softloc.data.layout import load_dataset

IDMT = """<?xml version="1.0" encoding="UTF-8"?>
<instrumentRecording>
  <globalParameter><audioFileName>RealDrum01_00#MIX.wav</audioFileName></globalParameter>
  <transcription>
    <event>
      <onsetSec>0.512</onsetSec>
      <offsetSec>0.6</offsetSec>
      <instrument>SD</instrument>
    </event>
    <event><instrument>KD</instrument><onsetSec>-0.0012</onsetSec></event>
    <event><onsetSec>1.5e-1</onsetSec><instrument> HH </instrument></event>
  </transcription>
</instrumentRecording>
"""


def test_read_idmt_xml_reads_events_in_any_child_order_and_clamps_tiny_negatives(tmp_path):
    p = tmp_path / "RealDrum01_00#MIX.xml"
    p.write_text(IDMT)
    assert read_idmt_xml(p) == [(0.0, "KD"), (0.15, "HH"), (0.512, "SD")]


@pytest.mark.parametrize("body,line,what", [
    ("<event><onsetSec>0.1</onsetSec>\n</event>", 2, "<event> without <instrument>"),
    ("<event>\n<instrument>KD</instrument></event>", 2, "<event> without <onsetSec>"),
    ("<event><instrument>KD</instrument>\n<onsetSec>0,5</onsetSec></event>", 3,
     "<onsetSec> is not a number; expected seconds, got '0,5'"),
    ("<event><instrument>KD</instrument>\n<onsetSec>-1</onsetSec></event>", 3,
     "<onsetSec> must be finite and >= 0"),
    ("<event><onsetSec>0.1</onsetSec>\n<instrument>hi hat</instrument></event>", 3,
     "<instrument> must be one word"),
    ("<event><onsetSec>0.1</onsetSec>\n<instrument>KD</event>", 3, "not well-formed XML"),
])
def test_read_idmt_xml_errors_name_file_line_and_expectation(tmp_path, body, line, what):
    p = tmp_path / "x.xml"
    p.write_text(f"<transcription>\n{body}\n</transcription>\n")
    with pytest.raises(DatasetError, match=re.escape(f"{p}:{line}:") + ".*" + re.escape(what)):
        read_idmt_xml(p)


def _midi(path, drum_notes, other_notes=()):
    pm = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    for t, pitch in drum_notes:
        drums.notes.append(pretty_midi.Note(velocity=100, pitch=pitch, start=t, end=t + 0.05))
    piano = pretty_midi.Instrument(program=0)
    for t, pitch in other_notes:
        piano.notes.append(pretty_midi.Note(velocity=100, pitch=pitch, start=t, end=t + 0.05))
    pm.instruments += [drums, piano]
    pm.write(str(path))


def test_read_midi_drums_maps_gm_pitches_and_ignores_other_tracks(tmp_path):
    p = tmp_path / "d.mid"
    _midi(p, [(0.5, 36), (1.0, 38), (0.25, 42), (1.5, 46), (2.0, 49), (2.5, 35)],
          other_notes=[(0.75, 36)])
    events = read_midi_drums(p)
    assert [lab for _, lab in events] == ["HH", "KD", "SD", "HH", "KD"]  # crash (49) unlabelled
    np.testing.assert_allclose([t for t, _ in events], [0.25, 0.5, 1.0, 1.5, 2.5], atol=2e-3)
    assert len(read_midi_drums(p, drum_tracks_only=False)) == 6
    assert read_midi_drums(p, pitch_map={49: "CY"}) == [(pytest.approx(2.0, abs=2e-3), "CY")]
    assert GM_DRUM_MAP[36] == "KD" and GM_DRUM_MAP[46] == "HH"


def test_read_midi_drums_rejects_a_non_midi_file(tmp_path):
    p = tmp_path / "bad.mid"
    p.write_text("MThd but not really")
    with pytest.raises(DatasetError, match=re.escape(str(p)) + ": cannot read MIDI"):
        read_midi_drums(p)


def test_read_events_any_rejects_unknown_suffix(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("{}")
    with pytest.raises(DatasetError, match=r"unsupported annotation file type '\.csv'"):
        read_events_any(p)


def test_load_dataset_reads_enst_xml_and_midi_annotations_with_label_map(tmp_path):
    root = tmp_path / "ds"
    (root / "audio").mkdir(parents=True)
    for stem in ("enst", "idmt", "midi"):
        sf.write(root / "audio" / f"{stem}.wav", np.zeros(8000 * 3), 8000)
    ann = root / "annotations"
    ann.mkdir()
    (ann / "enst.txt").write_text("0.100 bd\n0.350 chh\n0.600 sd\n0.800 cr1\n1.000 ohh\n")
    (ann / "idmt.xml").write_text(IDMT)
    _midi(ann / "midi.mid", [(0.5, 36), (1.0, 38)])
    idx = load_dataset(root, labels=["HH", "KD", "SD"], label_map=ENST_LABEL_MAP)
    assert idx.events["enst"] == [(0.1, "KD"), (0.35, "HH"), (0.6, "SD"), (1.0, "HH")]
    assert [lab for _, lab in idx.events["idmt"]] == ["KD", "HH", "SD"]
    assert [lab for _, lab in idx.events["midi"]] == ["KD", "SD"]


def test_write_events_formats_read_back(tmp_path):
    events = [(0.5, "KD", 0.9), (0.75, "HH", 0.6), (1.0, "SD", 0.8)]
    write_events(tmp_path / "a.txt", events)
    # the annotation format plus a score column
    assert (tmp_path / "a.txt").read_text() == (
        "0.500000\tKD\t0.9000\n0.750000\tHH\t0.6000\n1.000000\tSD\t0.8000\n")
    assert read_annotation_file(tmp_path / "a.txt") == [(t, lab) for t, lab, _ in events]
    write_events(tmp_path / "a.json", events, fmt="json",
                 metadata={"model": "run1", "thresholds": {"KD": 0.4}})
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["model"] == "run1" and doc["thresholds"] == {"KD": 0.4}
    assert doc["events"][1] == {"time_s": 0.75, "label": "HH", "score": 0.6}
    write_events(tmp_path / "a.mid", events, fmt="midi")
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "a.mid"))
    assert midi.resolution >= 480
    inst = midi.instruments[0]
    assert inst.is_drum and len(midi.instruments) == 1
    assert [(round(n.start, 3), n.pitch) for n in inst.notes] == [(0.5, 36), (0.75, 42), (1.0, 38)]
    assert [n.velocity for n in inst.notes] == [round(s * 127) for *_, s in events]
    # every format reads back as the same events
    for name in ("a.txt", "a.json", "a.mid"):
        got = read_events_any(tmp_path / name)
        assert [lab for _, lab in got] == ["KD", "HH", "SD"], name
        np.testing.assert_allclose([t for t, _ in got], [0.5, 0.75, 1.0], atol=1e-3)
    with pytest.raises(ValueError, match="no MIDI pitch"):
        write_events(tmp_path / "b.mid", [(0.1, "cowbell", 1.0)], fmt="midi")
    with pytest.raises(ValueError, match="`fmt` must be one of"):
        write_events(tmp_path / "b.x", events, fmt="xml")
    with pytest.raises(FileExistsError, match="already exists"):
        write_events(tmp_path / "a.txt", events, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.mid", "a.txt"]


def test_midi_timing_is_sub_millisecond_and_pitch_map_and_piano_track(tmp_path):
    times = [0.0123, 0.5007, 1.2345, 2.0001]
    events = [(times[0], "KD", 1.0), (times[1], "60", 0.5), (times[2], "COW", 0.7),
              (times[3], "72", 0.2)]
    write_events(tmp_path / "m.mid", events, fmt="midi", pitch_map={"KD": 35, "COW": 56})
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "m.mid"))
    drums = [i for i in midi.instruments if i.is_drum]
    piano = [i for i in midi.instruments if not i.is_drum]
    assert len(drums) == 1 and len(piano) == 1 and piano[0].program == 0
    assert [n.pitch for n in drums[0].notes] == [35, 56]
    assert [n.pitch for n in piano[0].notes] == [60, 72]
    starts = sorted([n.start for n in drums[0].notes] + [n.start for n in piano[0].notes])
    # 220 ppq at 120 bpm quantises to 2.3 ms; the written resolution keeps 1 ms
    assert np.max(np.abs(np.array(starts) - times)) < 1e-3
    got = read_midi_drums(tmp_path / "m.mid", pitch_map={35: "KD", 56: "COW"}, pitched=True)
    assert [lab for _, lab in got] == ["KD", "60", "COW", "72"]
    with pytest.raises(ValueError, match="MIDI key 0-127"):
        write_events(tmp_path / "n.mid", events, fmt="midi", pitch_map={"KD": 300})


def test_annotation_duplicates_are_dropped_with_a_warning_naming_the_lines(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("0.5\tKD\n0.25\tSD\n0.5\tKD\n0.5\tSD\n")
    with pytest.warns(DatasetWarning, match=re.escape(f"{p}:3: dropped 1 exact duplicate")):
        events = read_annotation_file(p)
    assert events == [(0.25, "SD"), (0.5, "KD"), (0.5, "SD")]


def test_labels_differing_only_by_case_are_an_error_naming_both(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("0.1 KD\n0.2 SD\n0.3 kd\n")
    with pytest.raises(DatasetError, match=re.escape(f"{p}:3: label 'kd' differs from 'KD' "
                                                     "(line 1) only by case")):
        read_annotation_file(p)


def test_score_column_must_be_a_number(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("0.1 KD 0.9\n0.2 SD high\n")
    with pytest.raises(DatasetError, match=re.escape(f"{p}:2: the third field is not a score")):
        read_annotation_file(p)


def test_non_utf8_text_names_file_and_line(tmp_path):
    p = tmp_path / "counts.csv"
    p.write_bytes(b"file,start,end,label,count\nt1,0,1.5,KD,1\ncaf\xe9,0,1.5,KD,2\n")
    with pytest.raises(DatasetError, match=re.escape(f"{p}:3: not UTF-8 text")):
        read_counts_csv(p)
    q = tmp_path / "a.txt"
    q.write_bytes(b"0.1 KD\n0.2 S\xe9\n")
    with pytest.raises(DatasetError, match=re.escape(f"{q}:2: not UTF-8")):
        read_annotation_file(q)


@pytest.mark.parametrize("count,what", [("1e3", "non-negative integer"),
                                        ("\u00b2", "non-negative integer"),
                                        (str(10**30), "implausibly large")])
def test_counts_must_be_plain_bounded_integers(tmp_path, count, what):
    p = tmp_path / "counts.csv"
    p.write_text(f"file,start,end,label,count\nt1,0,1.5,KD,{count}\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=re.escape(f"{p}:2: `count`") + ".*" + what):
        read_counts_csv(p)


def test_maps_note_lists_and_json_detections_read_as_events(tmp_path):
    maps = tmp_path / "MAPS_MUS-x_ENSTDkCl.txt"
    maps.write_text("OnsetTime\tOffsetTime\tMidiPitch\n0.5\t1.0\t60\n0.25\t0.5\t64\n")
    assert read_events_any(maps) == [(0.25, "64"), (0.5, "60")]
    js = tmp_path / "d.json"
    js.write_text(json.dumps([{"time_s": 0.5, "label": "KD", "score": 1}]))
    assert read_events_any(js) == [(0.5, "KD")]
    js.write_text(json.dumps({"events": [{"time_s": -1, "label": "KD"}]}))
    with pytest.raises(DatasetError, match="event 0: expected"):
        read_events_any(js)
    js.write_text("{")
    with pytest.raises(DatasetError, match=re.escape(f"{js}:1: not valid JSON")):
        read_events_any(js)


def test_gm_drum_map_and_pitches_are_one_table():
    for label, pitch in GM_DRUM_PITCHES.items():
        assert GM_DRUM_MAP[pitch] == label
    assert set(GM_DRUM_MAP.values()) == set(GM_DRUM_PITCHES)
