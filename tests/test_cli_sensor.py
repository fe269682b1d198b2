"""The time-series commands end to end, in-process (``softloc.cli.main``): ``data import-wfdb``,
``data synth-puffs``, ``train --preset ecg`` -> ``detect`` -> ``evaluate`` -> ``plot`` on a signal
dataset, and ``experiment sensor``.

CI versions train a few steps (the plumbing); the ``slow`` test checks that a detector trained
from beat counts only finds synthetic heartbeats at their times (scored with mir_eval matching
by ``softloc.evaluation``, independent of the training code).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import wfdb

from softloc.cli import main
from softloc.data.formats import read_annotation_file, read_counts_csv, write_split_file
from softloc.data.layout import load_dataset

pytestmark = pytest.mark.filterwarnings("ignore:.*inplace keyword", "ignore:.*LeafSpec")

MITBIH = Path("/work/shared/data/mitbih")
needs_mitbih = pytest.mark.skipif(not (MITBIH / "100.hea").is_file(),
                                  reason="shared MIT-BIH folder absent")


def synthetic_ecg(seconds: float, *, rate: int = 360, seed: int = 0,
                  bpm: tuple[float, float] = (55, 110)) -> tuple[np.ndarray, np.ndarray]:
    """A single-lead ECG-like signal (mV) and its R-peak samples: narrow QRS spikes with
    per-beat amplitude, P and T waves, baseline wander and noise; RR from a random heart rate."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    hr = rng.uniform(*bpm)
    peaks, s = [], rng.uniform(0.2, 0.8)
    while s < seconds - 0.3:
        peaks.append(int(s * rate))
        s += 60.0 / hr * rng.uniform(0.85, 1.15)
    x = 0.1 * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6)) + rng.normal(0, 0.03, n)
    for p in peaks:
        a = rng.uniform(0.8, 1.4)
        for offset_s, width_s, amp in ((0.0, 0.012, a), (-0.16, 0.03, 0.15),
                                       (0.28, 0.06, 0.3), (0.03, 0.01, -0.2 * a)):
            x += amp * np.exp(-0.5 * ((t - p / rate - offset_s) / width_s) ** 2)
    return x.astype(np.float32), np.asarray(peaks)


def write_records(folder: Path, names: list[str], *, seconds: float = 60.0) -> None:
    """WFDB records (``wfdb.wrsamp`` / ``wfdb.wrann``, an independent writer) of synthetic ECG."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        x, peaks = synthetic_ecg(seconds, seed=i)
        wfdb.wrsamp(name, fs=360, units=["mV"], sig_name=["MLII"], p_signal=x[:, None],
                    fmt=["16"], write_dir=str(folder))
        wfdb.wrann(name, "atr", peaks, symbol=["N"] * len(peaks), write_dir=str(folder), fs=360)


@pytest.fixture(scope="module")
def ecg_data(tmp_path_factory):
    """Four synthetic records imported with the CLI; train r0 r1, valid r2, test r3."""
    root = tmp_path_factory.mktemp("ecg")
    write_records(root / "src", ["r0", "r1", "r2", "r3"])
    assert main(["data", "import-wfdb", str(root / "src"), "--out", str(root / "data")]) == 0
    for split, stems in (("train", ["r0", "r1"]), ("valid", ["r2"]), ("test", ["r3"])):
        write_split_file(root / "data" / "splits" / f"{split}.txt", stems, overwrite=True)
    return root / "data"


def test_import_wfdb_writes_the_signal_layout_with_counts_per_window(ecg_data):
    index = load_dataset(ecg_data)
    assert index.kind == "signal" and index.stems == ("r0", "r1", "r2", "r3")
    assert index.classes == ("beat",)
    rows = read_counts_csv(ecg_data / "counts.csv")
    for stem in index.stems:
        times = np.array([t for t, _ in read_annotation_file(ecg_data / "annotations"
                                                             / f"{stem}.txt")])
        counts = [(s, c) for _, f, s, e, lab, c in rows if f == stem]
        assert len(counts) == 6  # 60 s in whole windows of 10 s
        for start, c in counts:
            assert c == int(np.sum((times >= start) & (times < start + 10.0)))


def test_import_wfdb_split_test_symbols_and_errors(tmp_path, capsys):
    write_records(tmp_path / "src", ["a", "b"], seconds=20.0)
    out = tmp_path / "ext"
    assert main(["data", "import-wfdb", str(tmp_path / "src"), "--out", str(out), "--split",
                 "test", "--labels-from-symbols", "--window-s", "5"]) == 0
    assert (out / "splits" / "test.txt").read_text().split() == ["a", "b"]
    assert {lab for _, lab in read_annotation_file(out / "annotations" / "a.txt")} == {"N"}
    assert "8 count windows of 5 s" in capsys.readouterr().out
    (tmp_path / "src" / "b.atr").unlink()
    assert main(["data", "import-wfdb", str(tmp_path / "src"), "--out",
                 str(tmp_path / "x")]) == 2  # an expected error: one line, status 2
    err = capsys.readouterr().err
    assert "b.atr: annotation file not found (record 'b'" in err
    (tmp_path / "src" / "a.hea").write_text("a 1 garbage\n")
    assert main(["data", "import-wfdb", str(tmp_path / "src"), "--out",
                 str(tmp_path / "y")]) == 2
    assert "a.hea" in capsys.readouterr().err


@needs_mitbih
def test_import_wfdb_of_a_shared_record(tmp_path):
    assert main(["data", "import-wfdb", str(MITBIH), "--out", str(tmp_path / "m"), "--records",
                 "106", "--split", "test", "--labels-from-symbols"]) == 0
    events = read_annotation_file(tmp_path / "m" / "annotations" / "106.txt")
    assert len(events) == 2027 and sum(lab == "V" for _, lab in events) == 520  # its README


def test_train_detect_evaluate_plot_on_a_signal_dataset(ecg_data, tmp_path, capsys):
    run, det = tmp_path / "run", tmp_path / "det"
    assert main(["train", "--data", str(ecg_data), "--labels", "counts", "--loss", "loco",
                 "--preset", "ecg", "--out", str(run), "--max-steps", "3",
                 "--set", "train.val_every_n_steps=3", "--no-progress"]) == 0
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["steps"] == 3 and saved["train_stems"] == 2
    assert main(["detect", "--model", str(run), "--data", str(ecg_data), "--split", "test",
                 "--out", str(det), "--format", "tsv,json"]) == 0
    assert (det / "r3.txt").is_file()
    assert json.loads((det / "r3.json").read_text())["snap_radius_s"] == 0.15
    assert main(["detect", "--model", str(run), "--data", str(ecg_data), "--split", "test",
                 "--out", str(tmp_path / "det0"), "--format", "json", "--snap-ms", "0"]) == 0
    assert json.loads((tmp_path / "det0" / "r3.json").read_text())["snap_radius_s"] == 0.0
    # p(t) saved beside the events: the same (snapped) events as without it
    assert main(["detect", "--model", str(run), "--data", str(ecg_data), "--split", "test",
                 "--out", str(tmp_path / "det_act"), "--save-activations"]) == 0
    assert (tmp_path / "det_act" / "r3.txt").read_text() == (det / "r3.txt").read_text()
    assert (tmp_path / "det_act" / "r3.npy").is_file()
    assert main(["evaluate", "--ref", str(ecg_data / "annotations"), "--est", str(det)]) == 0
    assert "overall" in capsys.readouterr().out
    fig = tmp_path / "fig.png"
    assert main(["plot", str(ecg_data / "signals" / "r3.npy"), "--model", str(run),
                 "--annotations", str(ecg_data / "annotations" / "r3.txt"), "--start", "5",
                 "--duration", "6", "--out", str(fig)]) == 0
    assert fig.stat().st_size > 0


def test_audio_preset_on_a_signal_dataset_is_an_error(ecg_data, tmp_path, capsys):
    assert main(["train", "--data", str(ecg_data), "--labels", "counts", "--preset", "demo",
                 "--out", str(tmp_path / "r"), "--max-steps", "1", "--no-progress"]) == 2
    assert "holds time series" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_synth_puffs_train_preset_puffs_and_a_tiny_sensor_experiment(tmp_path, capsys):
    data = tmp_path / "puffs"
    assert main(["data", "synth-puffs", "--out", str(data), "--subjects", "3", "--sessions", "1",
                 "--cycles", "80"]) == 0
    index = load_dataset(data)
    assert index.kind == "signal" and len(set(index.subjects.values())) == 3
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--labels", "onsets", "--loss", "softloc",
                 "--preset", "puffs", "--out", str(run), "--max-steps", "3",
                 "--set", "train.val_every_n_steps=3", "--no-progress"]) == 0
    assert main(["detect", "--model", str(run), "--data", str(data), "--split", "test",
                 "--out", str(tmp_path / "det")]) == 0
    test_stems = index.splits["test"]
    assert sorted(p.stem for p in (tmp_path / "det").glob("*.txt")) == sorted(test_stems)
    out = tmp_path / "exp"
    assert main(["experiment", "sensor", "--out", str(out), "--data", str(data), "--folds", "0",
                 "--levels", "0,1", "--noises", "normal", "--max-steps", "3"]) == 0
    text = capsys.readouterr().out
    assert "| N | lrm |" in text and "| N | softloc |" in text
    assert (out / "results.md").is_file() and (out / "sensor.png").stat().st_size > 0
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 3 * 2
    settings = json.loads((out / "experiment.json").read_text())
    assert (settings["decoder"], settings["calibrate_offset"]) == ("auto", True)
    # other settings in the same folder are refused; in a new one they are stored
    assert main(["experiment", "sensor", "--out", str(out), "--data", str(data), "--folds", "0",
                 "--levels", "0", "--noises", "normal", "--max-steps", "3", "--alpha",
                 "0.3"]) == 2
    assert "other settings" in capsys.readouterr().err
    other = tmp_path / "exp2"
    assert main(["experiment", "sensor", "--out", str(other), "--data", str(data), "--folds",
                 "0", "--levels", "0", "--noises", "normal", "--methods", "softloc",
                 "--max-steps", "3", "--alpha", "0.3", "--dropout", "0.2", "--decoder",
                 "steps", "--no-offset"]) == 0
    settings = json.loads((other / "experiment.json").read_text())
    assert (settings["alpha"], settings["dropout"], settings["decoder"],
            settings["calibrate_offset"]) == (0.3, 0.2, "steps", False)


@pytest.mark.slow
def test_beats_learned_from_counts_only_are_found_at_their_times(ecg_data, tmp_path):
    run, det = tmp_path / "run", tmp_path / "det"
    assert main(["train", "--data", str(ecg_data), "--labels", "counts", "--loss", "loco",
                 "--preset", "ecg", "--out", str(run), "--max-steps", "250",
                 "--no-progress"]) == 0
    assert main(["detect", "--model", str(run), "--data", str(ecg_data), "--split", "test",
                 "--out", str(det)]) == 0
    from softloc.evaluation import evaluate_folders

    result = evaluate_folders(ecg_data / "annotations", det, tolerance_s=0.05)
    assert result["overall"]["f1"] > 0.95
