import hashlib
import json
from dataclasses import replace

import pytest
import torch

import softloc.training.recalibrate as recalibrate_module
from softloc.config import apply_overrides, load_config, load_preset
from softloc.data import synthesize_drum_dataset
from softloc.inference import MODEL_FILE, Detector
from softloc.inference.model_file import save_model_file
from softloc.training import fit
from softloc.training.recalibrate import recalibrate_run

TINY = [
    "features.sample_rate=16000", "features.n_fft=512", "features.win_length=400",
    "features.hop_length=160", "features.n_mels=16", "model.conv_filters=[4,4]",
    "model.pool_sizes=[4,8]", "model.lstm_units=6", "model.hidden_units=4",
    "data.batch_size=4", "data.rate_factors=[1.0]", "train.max_steps=2",
    "train.val_every_n_steps=2", "train.num_threads=1", "supervision.labels=counts",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("recal")
    root = base / "d"
    synthesize_drum_dataset(root, n_train_files=2, n_valid_files=1, n_test_files=0,
                            file_duration_s=3.0, sample_rate=16000)
    cfg = apply_overrides(load_preset("drums"), TINY)
    result = fit(cfg, data_root=root, out_dir=base / "run", progress=False)
    return root, result.run_dir


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_recalibrating_without_changes_reproduces_the_runs_own_calibration(trained, tmp_path):
    root, run = trained
    before = _digests(run)
    metrics = recalibrate_run(run, data_root=root, out_dir=tmp_path / "new")
    assert _digests(run) == before  # the old run is never touched
    old, new = Detector.load(run), Detector.load(tmp_path / "new")
    assert new.config == old.config
    for a, b in zip(old.model.state_dict().values(), new.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    run_metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["valid_files"] == run_metrics["valid_files"]
    assert metrics["calibration"] == run_metrics["calibration"]
    assert json.loads((tmp_path / "new" / "metrics.json").read_text()) == metrics
    assert load_config(tmp_path / "new" / "config.yaml") == new.config


def test_recalibration_starts_from_the_settings_before_the_runs_calibration(trained, tmp_path):
    """Offsets a calibration (or an override) put in a run do not carry into the next one."""
    root, run = trained
    n = len(Detector.load(run).classes)
    recalibrate_run(run, data_root=root, out_dir=tmp_path / "b",
                    overrides=[f"inference.class_offsets_s={[0.5] * n}"])
    assert Detector.load(tmp_path / "b").config.inference.class_offsets_s == (0.5,) * n
    recalibrate_run(tmp_path / "b", data_root=root, out_dir=tmp_path / "c")
    assert Detector.load(tmp_path / "c").config == Detector.load(run).config


def test_recalibration_applies_inference_overrides(trained, tmp_path):
    root, run = trained
    metrics = recalibrate_run(run, data_root=root, out_dir=tmp_path / "new",
                              overrides=["inference.align_to_onsets=per-class"])
    cfg = Detector.load(tmp_path / "new").config
    assert cfg.inference.align_to_onsets == "per-class"
    assert metrics["calibration"]["align_to_onsets"] == "per-class"
    assert len(cfg.inference.class_offsets_s) == len(cfg.classes)
    assert metrics["overrides"] == ["inference.align_to_onsets=per-class"]


def test_recalibration_on_a_named_split_reads_that_split(trained, tmp_path):
    root, run = trained
    metrics = recalibrate_run(run, data_root=root, out_dir=tmp_path / "new", split="train")
    assert metrics["valid_files"] == (root / "splits" / "train.txt").read_text().split()
    assert metrics["valid_source"].endswith("train.txt")


def test_recalibration_refuses_training_settings_and_a_used_output_folder(trained, tmp_path):
    root, run = trained
    with pytest.raises(ValueError, match="only inference settings"):
        recalibrate_run(run, data_root=root, out_dir=tmp_path / "a",
                        overrides=["train.learning_rate=1"])
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        recalibrate_run(run, data_root=root, out_dir=used)
    assert [p.name for p in used.iterdir()] == ["mine.txt"]
    assert (used / "mine.txt").read_text() == "keep"


def test_recalibration_without_validation_files_asks_for_a_split(trained, tmp_path):
    root, run = trained
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / MODEL_FILE).write_bytes((run / MODEL_FILE).read_bytes())
    with pytest.raises(ValueError, match="--split valid"):
        recalibrate_run(bare, data_root=root, out_dir=tmp_path / "new")
    other = tmp_path / "other"
    synthesize_drum_dataset(other, n_train_files=1, n_valid_files=0, n_test_files=0,
                            file_duration_s=2.0, sample_rate=16000, seed=5)
    with pytest.raises(ValueError, match="no audio for the validation stems"):
        recalibrate_run(run, data_root=other, out_dir=tmp_path / "new2")


def test_a_label_noise_run_is_recalibrated_without_clean_timestamps(trained, tmp_path,
                                                                    monkeypatch):
    root, run = trained
    det = Detector.load(run)
    cfg = replace(det.config, supervision=replace(det.config.supervision, labels="onsets",
                                                  label_noise="normal:100ms"))
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    save_model_file(noisy / MODEL_FILE, det.model, cfg)
    (noisy / "metrics.json").write_text((run / "metrics.json").read_text())
    seen = []

    def spy(detector, features, *, events, count_windows):
        seen.append(events)
        return detector.config, {"source": "spy"}

    monkeypatch.setattr(recalibrate_module, "calibrate", spy)
    recalibrate_run(noisy, data_root=root, out_dir=tmp_path / "a",
                    overrides=["inference.calibrate_with=timestamps"])
    recalibrate_run(run, data_root=root, out_dir=tmp_path / "b")
    assert all(e is None for e in seen[0].values())
    assert any(e for e in seen[1].values())  # a clean run gets the dataset's timestamps
