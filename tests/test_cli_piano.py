"""CLI piano commands: data counts / import-maps / import-maestro / synth-piano, and the checked
path of issue 14 (train from counts on pitched labels 21..108 -> detect -> evaluate)."""

from __future__ import annotations

import json
from pathlib import Path

import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from softloc.cli import main
from softloc.data.formats import read_annotation_file, read_counts_csv, read_split_file
from tests.piano_stub import SineStub

SR = 16000


def _wav(path: Path, seconds: float, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sr), dtype=np.float32), sr)


def _maps_txt(path: Path, notes) -> None:
    path.write_text("OnsetTime\tOffsetTime\tMidiPitch\n"
                    + "".join(f"{a}\t{b}\t{p}\n" for a, b, p in notes))


def _split(root: Path, name: str) -> list[str]:
    p = root / "splits" / f"{name}.txt"
    return sorted(s for _, s in read_split_file(p)) if p.exists() else []


# ----------------------------------------------------------------------------- data counts


def test_counts_command_matches_counting_by_hand(tmp_path):
    root = tmp_path / "ds"
    _wav(root / "audio" / "a.wav", 4.0)
    _wav(root / "audio" / "b.wav", 3.2)
    _wav(root / "audio" / "c.wav", 2.0)  # no annotation: left out, not zero
    (root / "annotations").mkdir()
    (root / "annotations" / "a.txt").write_text("0.1\t60\n0.2\t108\n1.49\t60\n1.5\t60\n3.9\t21\n")
    _maps_txt(root / "annotations" / "b.txt", [(0.5, 0.9, 60), (0.5, 0.8, 21), (2.0, 2.5, 21)])
    assert main(["data", "counts", str(root), "--window-s", "1.5", "--hop-s", "0.5"]) == 0
    rows = read_counts_csv(root / "counts.csv")
    events = {"a": read_annotation_file(root / "annotations" / "a.txt"),
              "b": [(0.5, "60"), (0.5, "21"), (2.0, "21")]}
    expected = {}
    for stem, dur in (("a", 4.0), ("b", 3.2)):
        k = 0
        while k * 0.5 + 1.5 <= dur + 1e-9:
            start, end = k * 0.5, k * 0.5 + 1.5
            for label in ("21", "60", "108"):
                expected[(stem, start, end, label)] = sum(
                    1 for t, lab in events[stem] if lab == label and start <= t < end)
            k += 1
    assert {(r[1], r[2], r[3], r[4]): r[5] for r in rows} == expected
    # classes in numeric order, one row per class and window
    assert [r[4] for r in rows[:3]] == ["21", "60", "108"]
    # no silent overwrite; --labels piano writes all 88 keys
    assert main(["data", "counts", str(root), "--window-s", "1.5"]) == 2
    out = tmp_path / "c88.csv"
    assert main(["data", "counts", str(root), "--window-s", "1.5", "--labels", "piano",
                 "--out", str(out)]) == 0
    rows88 = read_counts_csv(out)
    assert len({r[4] for r in rows88}) == 88 and len(rows88) % 88 == 0


# ----------------------------------------------------------------------------- MAPS, MAESTRO


def _fake_maps(src: Path) -> None:
    # (piano, piece, notes): piece "a" is played on the test piano and a training piano
    for piano, piece in (("ENSTDkCl", "a"), ("AkPnBcht", "a"), ("AkPnBcht", "b"),
                         ("SptkBGCl", "c"), ("ENSTDkAm", "d"), ("StbgTGd2", "b")):
        stem = f"MAPS_MUS-{piece}_{piano}"
        _wav(src / piano / "MUS" / f"{stem}.wav", 2.0)
        _maps_txt(src / piano / "MUS" / f"{stem}.txt",
                  [(0.25, 0.5, 60), (0.25, 1.0, 64), (1.0, 1.5, 21 + len(piece + piano))])


def test_import_maps_papers_split(tmp_path):
    src, root = tmp_path / "MAPS", tmp_path / "ds"
    _fake_maps(src)
    assert main(["data", "import-maps", str(src), "--out", str(root), "--papers-split"]) == 0
    # train: synthesized pianos minus the test pieces; test: the Disklavier; no valid.txt
    assert _split(root, "train") == ["MAPS_MUS-b_AkPnBcht", "MAPS_MUS-b_StbgTGd2",
                                     "MAPS_MUS-c_SptkBGCl"]
    assert _split(root, "test") == ["MAPS_MUS-a_ENSTDkCl", "MAPS_MUS-d_ENSTDkAm"]
    assert not (root / "splits" / "valid.txt").exists()
    stem = "MAPS_MUS-c_SptkBGCl"
    assert read_annotation_file(root / "annotations" / f"{stem}.txt") == \
        [(0.25, "60"), (0.25, "64"), (1.0, str(21 + len("cSptkBGCl")))]
    assert (root / "audio" / f"{stem}.wav").resolve() == \
        (src / "SptkBGCl" / "MUS" / f"{stem}.wav").resolve()
    rows = read_counts_csv(root / "counts.csv")
    assert len({r[4] for r in rows}) == 88
    first = {r[4]: r[5] for r in rows if r[1] == stem and r[2] == 0.0}
    assert first["60"] == first["64"] == first[str(21 + len("cSptkBGCl"))] == 1
    assert sum(first.values()) == 3


def test_import_maps_split_by_piece_keeps_a_piece_in_one_split(tmp_path):
    src, root = tmp_path / "MAPS", tmp_path / "ds"
    _fake_maps(src)
    assert main(["data", "import-maps", str(src), "--out", str(root), "--no-counts"]) == 0
    split_of = {s: name for name in ("train", "valid", "test") for s in _split(root, name)}
    assert len(split_of) == 6  # every recording imported
    for piece in ("a", "b"):
        assert len({v for s, v in split_of.items() if f"-{piece}_" in s}) == 1
    assert not (root / "counts.csv").exists()
    assert main(["data", "import-maps", str(src), "--out", str(root)]) == 2  # not empty


def test_import_maestro_uses_the_index_splits(tmp_path):
    src, root = tmp_path / "maestro", tmp_path / "ds"
    rows = ["split,midi_filename,audio_filename"]
    for i, split in enumerate(("train", "validation", "test")):
        _wav(src / "2018" / f"p{i}.wav", 2.0)
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=0)
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=40 + i, start=0.5, end=1.0))
        pm.instruments.append(inst)
        pm.write(str(src / "2018" / f"p{i}.midi"))
        rows.append(f"{split},2018/p{i}.midi,2018/p{i}.wav")
    (src / "maestro-v3.0.0.csv").write_text("\n".join(rows) + "\n")
    assert main(["data", "import-maestro", str(src), "--out", str(root)]) == 0
    assert (_split(root, "train"), _split(root, "valid"), _split(root, "test")) == \
        (["p0"], ["p1"], ["p2"])
    (t, label), = read_annotation_file(root / "annotations" / "p1.txt")
    assert (t, label) == (pytest.approx(0.5), "41")


# ----------------------------------------------------------------------------- synth-piano


@pytest.fixture
def piano_root(tmp_path, monkeypatch):
    """A tiny built-in piano dataset made through the CLI, with train.txt and test.txt only."""
    import softloc.data.generators.piano as piano

    monkeypatch.setattr(piano, "TinySoundFontRenderer", lambda sample_rate: SineStub())
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for name in ("A_GM.sf2", "B.sf2"):
        (fonts / name).write_bytes(b"RIFF")
    root = tmp_path / "piano"
    assert main(["data", "synth-piano", "--out", str(root), "--soundfonts",
                 str(fonts / "A_GM.sf2"), str(fonts / "B.sf2"), "--minutes", "0.2",
                 "--valid-minutes", "0", "--test-minutes", "0.1", "--file-duration", "4",
                 "--sample-rate", str(SR), "--seed", "1"]) == 0
    return root


def test_synth_piano_writes_train_and_test_on_different_fonts(piano_root):
    info = json.loads((piano_root / "synth_piano.json").read_text())
    fonts = {s: {i[0] for i in v} for s, v in info["instruments"].items()}
    assert fonts["train"] == {"A_GM.sf2"} and fonts["test"] == {"B.sf2"}
    assert len(_split(piano_root, "train")) == 3 and len(_split(piano_root, "test")) == 2
    assert not (piano_root / "splits" / "valid.txt").exists()
    labels = {lab for s in _split(piano_root, "train")
              for _, lab in read_annotation_file(piano_root / "annotations" / f"{s}.txt")}
    assert labels and all(21 <= int(lab) <= 108 for lab in labels)


def _notes_of(path: Path):
    events = read_annotation_file(path)
    onsets = np.array([t for t, _ in events], dtype=float)
    hz = 440.0 * 2 ** ((np.array([int(lab) for _, lab in events], dtype=float) - 69) / 12)
    return np.stack([onsets, onsets + 1.0], axis=1).reshape(-1, 2), hz


def test_issue_path_counts_train_detect_evaluate(piano_root, tmp_path):
    """The exact commands of issue 14 item 7 (CI-sized: 2 steps, no audio renditions)."""
    run, det, js = tmp_path / "run", tmp_path / "det", tmp_path / "scores.json"
    assert main(["train", "--data", str(piano_root), "--labels", "counts", "--loss", "loco",
                 "--preset", "piano-loco", "--out", str(run), "--max-steps", "2",
                 "--set", "data.augment_renditions=0", "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["valid_stems"] == 1  # carved out of train: there is no valid.txt
    config = (run / "config.yaml").read_text()
    assert "'21'" in config and "'108'" in config  # the 88 keys are the classes
    assert main(["detect", "--model", str(run), "--data", str(piano_root), "--split", "test",
                 "--out", str(det), "--threshold", "0.001"]) == 0
    assert main(["evaluate", "--ref", str(piano_root / "annotations"), "--est", str(det),
                 "--split-file", str(piano_root / "splits" / "test.txt"), "--json",
                 str(js)]) == 0
    overall = json.loads(js.read_text())["overall"]
    # overall.f1 is note-onset F1 pooled over pitches: mir_eval's note matching, summed
    tp = n_ref = n_est = 0
    for stem in _split(piano_root, "test"):
        ri, rp = _notes_of(piano_root / "annotations" / f"{stem}.txt")
        ei, ep = _notes_of(det / f"{stem}.txt")
        n_ref, n_est = n_ref + len(rp), n_est + len(ep)
        if len(rp) and len(ep):
            tp += len(mir_eval.transcription.match_notes(ri, rp, ei, ep, onset_tolerance=0.05,
                                                         offset_ratio=None))
    assert n_ref > 10 and n_est > 0
    assert overall["f1"] == pytest.approx(2 * tp / (n_ref + n_est), abs=1e-9)


def test_piano_detections_as_midi_are_a_piano_track(piano_root, tmp_path):
    run, tsv, mid = tmp_path / "run", tmp_path / "tsv", tmp_path / "mid"
    assert main(["train", "--data", str(piano_root), "--labels", "counts", "--preset",
                 "piano-loco", "--out", str(run), "--max-steps", "1",
                 "--set", "data.augment_renditions=0", "--no-progress"]) == 0
    for out, fmt in ((tsv, "tsv"), (mid, "midi")):
        assert main(["detect", "--model", str(run), "--data", str(piano_root), "--split",
                     "test", "--out", str(out), "--format", fmt, "--threshold", "0.003"]) == 0
    for stem in _split(piano_root, "test"):
        events = read_annotation_file(tsv / f"{stem}.txt")
        pm = pretty_midi.PrettyMIDI(str(mid / f"{stem}.mid"))
        assert all(not inst.is_drum for inst in pm.instruments)
        notes = sorted((round(n.start, 3), n.pitch) for i in pm.instruments for n in i.notes)
        assert notes == sorted((round(t, 3), int(lab)) for t, lab in events)


def test_experiment_piano_command_runs_one_cell(tmp_path, monkeypatch):
    import softloc.data.generators.piano as piano
    from softloc.data.generators.piano import synthesize_piano_dataset

    fonts = []
    for name in ("A_GM.sf2", "B.sf2"):
        (tmp_path / name).write_bytes(b"RIFF")
        fonts.append(tmp_path / name)
    root = tmp_path / "data"
    synthesize_piano_dataset(root, soundfonts=fonts, minutes=0.1, valid_minutes=0.05,
                             test_minutes=0.05, file_duration_s=3.0, sample_rate=SR,
                             renderer=SineStub(), cache_dir=tmp_path / "cache")
    monkeypatch.setattr(piano, "TinySoundFontRenderer", None)  # --data: nothing is rendered
    out = tmp_path / "study"
    tiny = ["--set", "model.args={conv_channels: [4], key_channels: 4, temporal_layers: 1}",
            "--set", "data.augment_renditions=0"]
    assert main(["experiment", "piano", "--out", str(out), "--data", str(root), "--parts",
                 "noise", "--losses", "bce", "--sigmas", "0", "--max-steps", "1", *tiny]) == 0
    text = (out / "results.csv").read_text().splitlines()
    assert len(text) == 2 and text[1].startswith("onsets,bce,0,0,1,")
    assert main(["experiment", "piano", "--out", str(out), "--data", str(root),
                 "--losses", "nope"]) == 2
