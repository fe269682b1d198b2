"""Tests for softloc.inference.batch: inputs of every kind, outputs in several formats that
match the detector's own answer, nothing replaced without being asked, one bad file does not
stop the batch, one batch per folder at a time."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from softloc.config import apply_overrides, load_preset
from softloc.data.formats import read_annotation_file, read_events_any
from softloc.inference import (
    Detector,
    collect_audio_inputs,
    detect_batch,
    detect_to_folder,
    plan_outputs,
)
from softloc.inference import batch as batch_module
from softloc.inference.batch import FolderLockedError, folder_lock
from softloc.models import model_from_config

SMALL = [
    "features.n_fft=1024", "features.win_length=1024", "features.hop_length=441",
    "features.n_mels=16", "model.conv_filters=[4, 4]", "model.pool_sizes=[4, 8]",
    "model.lstm_units=6", "model.hidden_units=4", "classes=[HH, KD, SD]",
]


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    cfg = apply_overrides(load_preset("drums"), SMALL)
    return Detector(model_from_config(cfg), cfg).with_settings(threshold=0.3)


def _noise(path, seconds=1.0, sr=16000, **kwargs):
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (rng.normal(size=int(sr * seconds)) * 0.2).astype(np.float32), sr, **kwargs)
    return path


def test_folders_of_every_soundfile_format_recursively_and_globs(tmp_path):
    music = tmp_path / "music"
    _noise(music / "a.wav")
    _noise(music / "b.flac")
    _noise(music / "c.aiff")
    _noise(music / "d.ogg", format="OGG", subtype="OPUS")
    _noise(music / "e.mp3", format="MP3")
    _noise(music / "live" / "a.wav")
    _noise(music / ".hidden" / "x.wav")
    (music / "notes.txt").write_text("not audio")
    flat = collect_audio_inputs([music])
    assert [p.name for p in flat] == ["a.wav", "b.flac", "c.aiff", "d.ogg", "e.mp3"]
    deep = collect_audio_inputs([music], recursive=True)
    assert [str(p.relative_to(music)) for p in deep] == [
        "a.wav", "b.flac", "c.aiff", "d.ogg", "e.mp3", "live/a.wav"]
    globbed = collect_audio_inputs([str(music / "**" / "a.wav")])
    assert [str(p.relative_to(music)) for p in globbed] == ["a.wav", "live/a.wav"]
    # the same file twice is processed once
    assert len(collect_audio_inputs([music / "a.wav", music / "a.wav", music])) == 5
    # outputs keep sub-folders apart
    jobs = plan_outputs([music], tmp_path / "out", recursive=True, formats=["tsv"])
    assert [str(j.outputs["tsv"].relative_to(tmp_path / "out")) for j in jobs][-1] == "live/a.txt"
    with pytest.raises(ValueError, match="two inputs would write .*a.txt"):
        plan_outputs([music / "a.wav", music / "live" / "a.wav"], tmp_path / "out")


def test_input_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such audio file"):
        collect_audio_inputs([tmp_path / "missing.wav"])
    with pytest.raises(FileNotFoundError, match="no file matches this pattern"):
        collect_audio_inputs([str(tmp_path / "*.wav")])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no audio files.*--recursive"):
        collect_audio_inputs([tmp_path / "empty"])
    with pytest.raises(ValueError, match="unknown format 'wav'"):
        plan_outputs([], tmp_path, formats=["wav"])


def test_several_formats_and_activations_match_the_detector(tmp_path, detector):
    src = [_noise(tmp_path / "in" / f"{s}.wav", seconds=2.0) for s in ("x", "y")]
    probs = detector.probabilities(src[0])
    detector = detector.with_settings(threshold=float(np.quantile(probs, 0.6)))
    jobs = plan_outputs(src, tmp_path / "out", formats=["tsv", "json", "midi"],
                        save_activations=True)
    report = detect_batch(detector, jobs, tmp_path / "out", metadata={"model": "tiny"},
                          progress=False)
    assert not report.failed and len(report.written) == 2
    for path in src:
        expected = detector.detect(path)
        assert expected, "the test needs events"
        rows = [line.split("\t") for line in
                (tmp_path / "out" / f"{path.stem}.txt").read_text().splitlines()]
        assert [(float(t), lab, float(s)) for t, lab, s in rows] == [
            (pytest.approx(t, abs=1e-6), lab, pytest.approx(s, abs=1e-4))
            for t, lab, s in expected]
        doc = json.loads((tmp_path / "out" / f"{path.stem}.json").read_text())
        assert doc["model"] == "tiny" and doc["source"] == path.name
        assert len(doc["events"]) == len(expected)
        midi = read_events_any(tmp_path / "out" / f"{path.stem}.mid")
        assert len(midi) == len(expected)
        for (t_midi, lab_midi), (t, lab, _) in zip(sorted(midi, key=lambda e: (e[1], e[0])),
                                                   sorted(expected, key=lambda e: (e[1], e[0])),
                                                   strict=True):
            assert lab_midi == lab and t_midi == pytest.approx(t, abs=1e-3)
        act = np.load(tmp_path / "out" / f"{path.stem}.npy")
        assert act.dtype == np.float32
        np.testing.assert_allclose(act, detector.probabilities(path), rtol=1e-6, atol=1e-7)
    assert "wrote 2 file(s)" in report.summary(tmp_path / "out")


def test_default_metadata_names_thresholds_and_version(tmp_path, detector):
    from softloc import __version__

    det = detector.with_settings(class_thresholds=[0.2, 0.4, 0.6])
    jobs = plan_outputs([_noise(tmp_path / "a.wav")], tmp_path / "out", formats=["json"])
    detect_batch(det, jobs, tmp_path / "out", progress=False)
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    assert doc["softloc_version"] == __version__
    assert doc["thresholds"] == {"HH": 0.2, "KD": 0.4, "SD": 0.6}
    assert doc["classes"] == ["HH", "KD", "SD"] and doc["format"] == "softloc-events"


def test_existing_outputs_are_never_replaced_unless_asked(tmp_path, detector):
    src = [_noise(tmp_path / f"{s}.wav") for s in ("a", "b")]
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("1.0\tKD\n")  # a hand-edited file
    jobs = plan_outputs(src, out)
    with pytest.raises(FileExistsError, match="a.txt: already exists.*--overwrite"):
        detect_batch(detector, jobs, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]  # nothing done
    assert (out / "a.txt").read_text() == "1.0\tKD\n"
    report = detect_batch(detector, jobs, out, skip_existing=True, progress=False)
    assert report.skipped == [src[0]] and [s for s, *_ in report.written] == [src[1]]
    assert (out / "a.txt").read_text() == "1.0\tKD\n"
    detect_batch(detector, jobs, out, overwrite=True, progress=False)
    assert (out / "a.txt").read_text() != "1.0\tKD\n"


def test_a_bad_file_does_not_stop_the_batch(tmp_path, detector):
    good = _noise(tmp_path / "in" / "a.wav")
    bad = tmp_path / "in" / "b.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    loud = tmp_path / "in" / "c.wav"
    sf.write(loud, np.full(8000, 1e30, np.float32), 16000, subtype="FLOAT")
    last = _noise(tmp_path / "in" / "d.wav")
    report = detect_batch(detector, plan_outputs([tmp_path / "in"], tmp_path / "out"),
                          tmp_path / "out", progress=False)
    assert [s for s, *_ in report.written] == [good, last]
    assert [s for s, _ in report.failed] == [bad, loud]
    for source, msg in report.failed:
        assert msg.startswith(str(source)) and "\n" not in msg
    assert "audio samples must be finite" in report.failed[1][1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "d.txt"]
    assert "2 FAILED" in report.summary(tmp_path / "out")


def test_output_failures_stop_the_batch(tmp_path, detector, monkeypatch):
    src = [_noise(tmp_path / f"{s}.wav") for s in ("a", "b")]

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(batch_module, "write_events", full)
    with pytest.raises(OSError, match="No space left"):
        detect_batch(detector, plan_outputs(src, tmp_path / "out"), tmp_path / "out",
                     progress=False)


def test_one_batch_per_output_folder(tmp_path, detector):
    src = [_noise(tmp_path / "a.wav")]
    out = tmp_path / "out"
    with folder_lock(out, command="softloc detect"):
        with pytest.raises(FolderLockedError, match="another softloc command"):
            detect_batch(detector, plan_outputs(src, out), out, progress=False)
    detect_batch(detector, plan_outputs(src, out), out, progress=False)
    assert (out / "a.txt").is_file() and not (tmp_path / ".out.softloc-lock").exists()


def test_out_that_is_a_file_is_refused(tmp_path, detector):
    (tmp_path / "out").write_text("x")
    with pytest.raises(FileExistsError, match="is not a folder"):
        detect_batch(detector, plan_outputs([_noise(tmp_path / "a.wav")], tmp_path / "out"),
                     tmp_path / "out", progress=False)


def test_progress_goes_to_stderr(tmp_path, detector, capsys):
    src = [_noise(tmp_path / f"{s}.wav") for s in ("a", "b")]
    detect_batch(detector, plan_outputs(src, tmp_path / "out"), tmp_path / "out", progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "detect [2/2]" in captured.err


def test_detect_to_folder_writes_one_file_per_input(tmp_path, detector):
    for name in ("x.wav", "y.flac"):
        _noise(tmp_path / name)
    paths = collect_audio_inputs([tmp_path])
    written = detect_to_folder(detector.with_settings(threshold=1e-6), paths, tmp_path / "out")
    assert sorted(p.name for p, _ in written) == ["x.txt", "y.txt"]
    for path, n in written:
        assert len(read_annotation_file(path)) == n
