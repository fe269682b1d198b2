"""The command line as a user meets it: batch detection, evaluation of every format, data
safety (nothing replaced without --overwrite, locks), and the one error path (one line, exit
status 2, traceback only with --debug)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from softloc.cli import main
from softloc.config import apply_overrides, load_preset
from softloc.inference import save_model_file
from softloc.models import model_from_config

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["features.n_fft=1024", "features.win_length=1024", "features.hop_length=441",
         "features.n_mels=16", "model.conv_filters=[4, 4]", "model.pool_sizes=[4, 8]",
         "model.lstm_units=6", "model.hidden_units=4", "classes=[HH, KD, SD]",
         "inference.threshold=0.3"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    cfg = apply_overrides(load_preset("drums"), SMALL)
    return save_model_file(tmp_path_factory.mktemp("run") / "model.pt", model_from_config(cfg),
                           cfg)


def _noise(path, seconds=1.0, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    sf.write(path, (rng.normal(size=int(sr * seconds)) * 0.2).astype(np.float32), sr)
    return path


def _one_error_line(err: str, command: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"softloc {command}: error: "), err
    return lines[0]


# ----------------------------------------------------------------------------- detect


def test_detect_batch_writes_every_format_and_reports_failures(tmp_path, model_path, capsys):
    music = tmp_path / "music"
    _noise(music / "a.wav")
    _noise(music / "sub" / "b.flac")
    (music / "c.wav").write_bytes(b"RIFF broken")
    out = tmp_path / "out"
    rc = main(["detect", str(music), "--recursive", "--model", str(model_path), "--out", str(out),
               "--format", "tsv,json,midi", "--save-activations", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1  # some files failed, the others are written
    assert "wrote 2 file(s)" in captured.out and "1 FAILED" in captured.out
    assert f"failed: {music / 'c.wav'}" in captured.err
    for stem in ("a", "sub/b"):
        for suffix in (".txt", ".json", ".mid", ".npy"):
            assert (out / f"{stem}{suffix}").is_file(), (stem, suffix)
    doc = json.loads((out / "a.json").read_text())
    assert doc["model"] == str(model_path) and "thresholds" in doc and "softloc_version" in doc
    # a second run replaces nothing without being asked, before any work
    before = (out / "a.txt").read_text()
    (out / "a.txt").write_text("1.0\tKD\n")
    rc = main(["detect", str(music / "a.wav"), "--model", str(model_path), "--out", str(out)])
    line = _one_error_line(capsys.readouterr().err, "detect")
    assert rc == 2 and "a.txt: already exists" in line and "--overwrite" in line
    assert (out / "a.txt").read_text() == "1.0\tKD\n"
    assert main(["detect", str(music / "a.wav"), "--model", str(model_path), "--out", str(out),
                 "--skip-existing", "-q"]) == 0
    assert (out / "a.txt").read_text() == "1.0\tKD\n"
    assert capsys.readouterr().out == ""  # -q: nothing on stdout
    assert main(["detect", str(music / "a.wav"), "--model", str(model_path), "--out", str(out),
                 "--overwrite", "--format", "tsv"]) == 0
    assert (out / "a.txt").read_text() == before


def test_detect_accepts_quoted_globs_threads_and_device(tmp_path, model_path, capsys):
    _noise(tmp_path / "in" / "x.wav")
    _noise(tmp_path / "in" / "y.wav")
    rc = main(["detect", str(tmp_path / "in" / "*.wav"), "--model", str(model_path),
               "--out", str(tmp_path / "out"), "--threads", "1", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.txt", "y.txt"]
    assert main(["detect", str(tmp_path / "in"), "--model", str(model_path), "--out",
                 str(tmp_path / "o2"), "--device", "nonsense"]) == 2
    assert "device" in _one_error_line(capsys.readouterr().err, "detect")
    assert main(["detect", str(tmp_path / "in"), "--threads", "0", "--out", "o"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_detect_never_writes_into_the_dataset(tmp_path, model_path, capsys):
    from softloc.data import synthesize_drum_dataset

    root = tmp_path / "gt"
    synthesize_drum_dataset(root, n_train_files=1, n_valid_files=0, n_test_files=1,
                            file_duration_s=2.0, sample_rate=16000, system_kits=False,
                            n_train_kits=1, n_valid_kits=1, n_test_kits=1)
    truth = {p.name: p.read_text() for p in (root / "annotations").iterdir()}
    for args in ([], ["--overwrite"]):
        rc = main(["detect", "--data", str(root), "--split", "test", "--model", str(model_path),
                   "--out", str(root / "annotations"), *args])
        assert rc == 2
        assert "lies inside the dataset" in _one_error_line(capsys.readouterr().err, "detect")
    assert {p.name: p.read_text() for p in (root / "annotations").iterdir()} == truth


def test_detect_into_a_locked_folder_stops_with_a_lock_error(tmp_path, model_path, capsys):
    from softloc.inference.batch import folder_lock

    _noise(tmp_path / "a.wav")
    with folder_lock(tmp_path / "out", command="softloc detect"):
        rc = main(["detect", str(tmp_path / "a.wav"), "--model", str(model_path), "--out",
                   str(tmp_path / "out")])
    assert rc == 2
    assert "another softloc command is writing here" in _one_error_line(
        capsys.readouterr().err, "detect")


def test_huge_samples_fail_the_file_naming_it(tmp_path, model_path, capsys):
    loud = tmp_path / "loud.wav"
    sf.write(loud, np.full(8000, 1e30, np.float32), 16000, subtype="FLOAT")
    rc = main(["detect", str(loud), "--model", str(model_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and f"failed: {loud}: audio samples must be finite" in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_files_empty_policy_coverage_and_json(tmp_path, capsys):
    ref, est = tmp_path / "ref", tmp_path / "est"
    ref.mkdir()
    est.mkdir()
    (ref / "a.txt").write_text("0.5\tKD\n1.0\tSD\n")
    (ref / "b.txt").write_text("")
    (ref / "c.txt").write_text("0.5\tKD\n")
    (est / "a.json").write_text(json.dumps({"events": [{"time_s": 0.51, "label": "KD"}]}))
    (est / "b.txt").write_text("")
    assert main(["evaluate", "--ref", str(ref), "--est", str(est)]) == 0
    out = capsys.readouterr().out
    assert "scored 2 file(s)" in out and "no detection file: 1 (c)" in out
    assert main(["evaluate", "--ref", str(ref), "--est", str(est), "--files", "c.wav"]) == 2
    assert "detection file missing" in _one_error_line(capsys.readouterr().err, "evaluate")
    js = tmp_path / "s.json"
    assert main(["evaluate", "--ref", str(ref), "--est", str(est), "--files", "a", "b",
                 "--empty-policy", "zero", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["settings"]["empty_policy"] == "zero"
    capsys.readouterr()
    assert main(["evaluate", "--ref", str(ref), "--est", str(est), "--json", str(js)]) == 2
    assert "s.json: already exists" in _one_error_line(capsys.readouterr().err, "evaluate")
    assert main(["evaluate", "--ref", str(ref), "--est", str(est), "--json", str(js),
                 "--overwrite"]) == 0


def test_duplicate_lines_warn_in_one_line(tmp_path, capsys):
    for d in ("ref", "est"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "a.txt").write_text("0.5\tKD\n0.5\tKD\n")
    assert main(["evaluate", "--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "est")]) == 0
    warnings_ = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(warnings_) == 2
    assert all(ln.startswith("softloc: warning: ") and "a.txt:2: dropped 1 exact duplicate" in ln
               for ln in warnings_)


# ----------------------------------------------------------------------------- one error path


def test_disk_full_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "a.txt").write_text("0.5\tKD\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    rc = main(["evaluate", "--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "ref"),
               "--json", str(tmp_path / "s.json")])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err, "evaluate")
    assert line.endswith(f"{tmp_path / 's.json'}: no space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref"]  # no temp file left


def test_permission_denied_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "ref").mkdir()
    secret = tmp_path / "ref" / "a.txt"
    secret.write_text("0.5\tKD\n")
    real = Path.read_bytes

    def denied(self):
        if self == secret:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert main(["evaluate", "--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "ref")]) == 2
    line = _one_error_line(capsys.readouterr().err, "evaluate")
    assert line.endswith(f"{secret}: permission denied")


def test_out_that_is_a_file_and_bad_set_yaml_are_one_line(tmp_path, model_path, capsys):
    (tmp_path / "out").write_text("a file")
    _noise(tmp_path / "a.wav")
    assert main(["detect", str(tmp_path / "a.wav"), "--model", str(model_path), "--out",
                 str(tmp_path / "out")]) == 2
    assert "is not a folder" in _one_error_line(capsys.readouterr().err, "detect")
    rc = main(["train", "--data", str(tmp_path), "--labels", "counts", "--out",
               str(tmp_path / "run"), "--set", "train.learning_rate=[1"])
    assert rc == 2
    _one_error_line(capsys.readouterr().err, "train")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content", ["text", "dict", "pickle"])
def test_a_file_that_is_not_a_model_is_one_line(tmp_path, capsys, content):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "model.pt"
    if content == "text":
        bad.write_text("hello")
    elif content == "dict":
        torch.save({"weights": torch.zeros(3)}, bad)
    else:
        torch.save({"x": Evil()}, bad, pickle_module=pickle)
    _noise(tmp_path / "a.wav")
    rc = main(["detect", str(tmp_path / "a.wav"), "--model", str(bad), "--out",
               str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert rc == 2 and "pwned" not in captured.out
    line = _one_error_line(captured.err, "detect")
    assert f"{bad}: not a softloc model file" in line and "weights_only=False" not in line


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys,
                                                                    monkeypatch):
    import softloc.evaluation

    def boom(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(softloc.evaluation, "evaluate_folders", boom)
    argv = ["evaluate", "--ref", str(tmp_path), "--est", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("softloc evaluate: internal error: KeyError") and "\n" not in err
    assert "--debug" in err
    with pytest.raises(KeyError):
        main(["--debug", *argv])
    with pytest.raises(KeyError):
        main([*argv, "--debug"])


def test_a_missing_extra_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    rc = main(["train", "--data", str(tmp_path), "--labels", "counts", "--out",
               str(tmp_path / "run")])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "pip install 'softloc[train]'" in line


def test_detect_and_evaluate_run_without_the_optional_dependencies(tmp_path, model_path):
    _noise(tmp_path / "a.wav")
    code = (
        "import sys\n"
        "for m in ('lightning', 'pytorch_lightning', 'numba', 'matplotlib', 'sklearn', 'wfdb',"
        " 'tensorboard', 'tensorboardX'):\n"
        "    sys.modules[m] = None\n"
        "from softloc.cli import main\n"
        f"assert main(['detect', {str(tmp_path / 'a.wav')!r}, '--model', {str(model_path)!r},"
        f" '--out', {str(tmp_path / 'o')!r}, '--format', 'tsv,json,midi']) == 0\n"
        f"assert main(['evaluate', '--ref', {str(tmp_path / 'o')!r}, '--est',"
        f" {str(tmp_path / 'o')!r}]) == 0\n"
        f"rc = main(['plot', {str(tmp_path / 'a.wav')!r}, '--out', {str(tmp_path / 'f.png')!r}])\n"
        "assert rc == 2, rc\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "pip install 'softloc[plot]'" in done.stderr


# ----------------------------------------------------------------------------- demo / experiment


def _earlier_experiment(out: Path) -> None:
    (out / "data" / "audio").mkdir(parents=True)
    (out / "data" / "audio" / "mine.wav").write_bytes(b"user data")
    (out / "run").mkdir()
    (out / "run" / "notes.txt").write_text("keep")
    (out / ".softloc-experiment").write_text("written by softloc demo\n")


def test_second_demo_refuses_without_overwrite_and_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "demo"
    _earlier_experiment(out)
    assert main(["demo", "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err, "demo")
    assert "earlier softloc demo" in line and "--overwrite" in line
    assert (out / "run" / "notes.txt").read_text() == "keep"
    assert (out / "data" / "audio" / "mine.wav").read_bytes() == b"user data"


def test_experiment_never_deletes_its_input_data(tmp_path, capsys):
    out = tmp_path / "x"
    _earlier_experiment(out)
    rc = main(["experiment", "drums", "--out", str(out), "--data", str(out / "data"),
               "--overwrite"])
    assert rc == 2
    assert "the input dataset lies in" in _one_error_line(capsys.readouterr().err,
                                                          "experiment drums")
    assert (out / "data" / "audio" / "mine.wav").read_bytes() == b"user data"
    assert (out / "run" / "notes.txt").read_text() == "keep"
