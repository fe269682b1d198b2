import json
import os
import stat

import pytest
import torch
import yaml

from softloc.config import apply_overrides, load_config, load_preset
from softloc.data import synthesize_drum_dataset
from softloc.inference import MODEL_FILE, Detector
from softloc.training import fit, parse_devices, train

TINY = [
    "features.sample_rate=16000",
    "features.n_fft=512",
    "features.win_length=400",
    "features.hop_length=160",
    "features.n_mels=16",
    "model.conv_filters=[4,4]",
    "model.pool_sizes=[4,8]",
    "model.lstm_units=6",
    "model.hidden_units=4",
    "data.batch_size=4",
    "data.rate_factors=[1.0]",
    "train.max_steps=2",
    "train.val_every_n_steps=2",
    "train.num_threads=1",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit") / "d"
    synthesize_drum_dataset(root, n_train_files=2, n_valid_files=1, n_test_files=0,
                            file_duration_s=3.0, sample_rate=16000)
    return root


def test_parse_devices():
    assert parse_devices("1") == 1
    assert parse_devices("auto") == "auto"
    assert parse_devices("0,1") == [0, 1]
    assert parse_devices("-1") == -1


def test_argument_errors_come_before_any_work(tmp_path):
    cfg = load_preset("drums")
    with pytest.raises(ValueError, match="`labels` must be one of"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "r", labels="frames")
    with pytest.raises(ValueError, match="needs timestamps"):
        train(apply_overrides(cfg, ["loss.name=bce"]), data_root=tmp_path,
              out_dir=tmp_path / "r", labels="counts")
    with pytest.raises(ValueError, match="needs labels='onsets'"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "r", label_noise="normal:50ms")
    with pytest.raises(ValueError, match="`annotations` is empty"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "r", annotations=[])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "full")
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "new", resume=True)
    assert not (tmp_path / "r").exists() and not (tmp_path / "new").exists()


def test_fit_writes_a_run_folder_that_holds_its_supervision(data_root, tmp_path):
    cfg = apply_overrides(load_preset("drums"), TINY + ["supervision.labels=onsets",
                                                        "loss.name=softloc"])
    result = fit(cfg, data_root=data_root, out_dir=tmp_path / "run", progress=False)
    run = result.run_dir
    saved = load_config(run / "config.yaml")
    assert saved.supervision == cfg.supervision
    assert saved == result.config
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["labels"], metrics["loss"], metrics["steps"]) == ("onsets", "softloc", 2)
    assert metrics["versions"]["torch"] == torch.__version__
    payload = torch.load(run / MODEL_FILE, weights_only=True)
    assert payload["format_version"] == 2 and payload["model"]["name"] == "crnn"
    det = Detector.load(run)
    assert det.config == result.config
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.yaml", "metrics.json", MODEL_FILE):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~umask, name
    assert not (run / "cache").exists()


def test_resume_checks_the_saved_supervision_and_accepts_old_run_folders(data_root, tmp_path):
    cfg = apply_overrides(load_preset("drums"), TINY + ["supervision.labels=counts"])
    run = tmp_path / "run"
    train(cfg, data_root=data_root, out_dir=run, progress=False)
    with pytest.raises(ValueError, match="--resume needs the run's saved configuration"):
        train(cfg, data_root=data_root, out_dir=run, labels="onsets", resume=True)
    with pytest.raises(ValueError, match="--resume needs the run's saved configuration"):
        train(apply_overrides(cfg, ["train.learning_rate=0.5"]), data_root=data_root,
              out_dir=run, resume=True)
    # a softloc 0.1 run folder: config.yaml without the supervision section
    data = yaml.safe_load((run / "config.yaml").read_text())
    del data["supervision"]
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    more = apply_overrides(cfg, ["train.max_steps=3"])
    result = train(more, data_root=data_root, out_dir=run, resume=True, progress=False)
    assert result.metrics["steps"] == 3
    assert load_config(run / "config.yaml").supervision.labels == "counts"
