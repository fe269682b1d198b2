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
    read_annotation_file,
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
    p = tmp_path / "x.json"
    p.write_text("{}")
    with pytest.raises(DatasetError, match=r"unsupported annotation file type '\.json'"):
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
    assert (tmp_path / "a.txt").read_text() == "0.500000\tKD\n0.750000\tHH\n1.000000\tSD\n"
    assert read_annotation_file(tmp_path / "a.txt") == [(t, lab) for t, lab, _ in events]
    write_events(tmp_path / "a.json", events, fmt="json")
    rows = json.loads((tmp_path / "a.json").read_text())
    assert rows[1] == {"time_s": 0.75, "label": "HH", "score": 0.6}
    write_events(tmp_path / "a.mid", events, fmt="midi")
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "a.mid"))
    inst = midi.instruments[0]
    assert inst.is_drum
    assert [(round(n.start, 3), n.pitch) for n in inst.notes] == [(0.5, 36), (0.75, 42), (1.0, 38)]
    assert [n.velocity for n in inst.notes] == [round(s * 127) for *_, s in events]
    # what we write as MIDI reads back as the same classes
    assert [lab for _, lab in read_midi_drums(tmp_path / "a.mid")] == ["KD", "HH", "SD"]
    with pytest.raises(ValueError, match="no MIDI pitch"):
        write_events(tmp_path / "b.mid", [(0.1, "cowbell", 1.0)], fmt="midi")
    with pytest.raises(ValueError, match="`fmt` must be one of"):
        write_events(tmp_path / "b.x", events, fmt="xml")
    with pytest.raises(FileExistsError, match="already exists"):
        write_events(tmp_path / "a.txt", events, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.mid", "a.txt"]


def test_gm_drum_map_and_pitches_are_one_table():
    for label, pitch in GM_DRUM_PITCHES.items():
        assert GM_DRUM_MAP[pitch] == label
    assert set(GM_DRUM_MAP.values()) == set(GM_DRUM_PITCHES)
