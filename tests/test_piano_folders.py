"""Tests of softloc.data.piano_folders: MAPS / MAESTRO folders, the papers' MAPS split, layout."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import pytest
import soundfile as sf

from softloc.data.formats import DatasetError, read_annotation_file, read_split_file
from softloc.data.midi import Note
from softloc.data.piano_folders import (
    MAPS_TEST_PIANOS,
    maps_piece_id,
    scan_maestro,
    scan_maps,
    write_pieces_layout,
)

MAPS_HEADER = "OnsetTime\tOffsetTime\tMidiPitch\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, [0.0] * 4000, 8000)
    return path


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
