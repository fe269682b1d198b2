import math

import pytest
import torch

from softloc.config import apply_overrides, load_preset
from softloc.data import synthesize_drum_dataset
from softloc.training import (
    carve_validation,
    check_supervision,
    collate_batch,
    make_loaders,
    noisy_index,
    prepare_training_data,
)

TINY = [
    "features.sample_rate=16000",
    "features.n_fft=512",
    "features.win_length=400",
    "features.hop_length=160",
    "features.n_mels=16",
    "data.batch_size=4",
    "train.max_steps=3",
    "data.rate_factors=[0.875,1.0]",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("loaders") / "d"
    synthesize_drum_dataset(root, n_train_files=2, n_valid_files=1, n_test_files=0,
                            file_duration_s=3.0, sample_rate=16000)
    return root


def _config(labels, loss, *extra):
    return apply_overrides(load_preset("drums"),
                           TINY + [f"supervision.labels={labels}", f"loss.name={loss}", *extra])


def test_noisy_index_perturbs_only_the_given_stems(data_root):
    from softloc.data import load_dataset

    index = load_dataset(data_root)
    train_stems = list(index.splits["train"])
    noisy = noisy_index(index, train_stems, "normal:30ms", seed=0)
    for stem in train_stems:
        assert noisy.events[stem] != index.events[stem]
        assert len(noisy.events[stem]) == len(index.events[stem])
    for stem in index.splits["valid"]:
        assert noisy.events[stem] == index.events[stem]
    assert not math.isnan(noisy.durations_s[train_stems[0]])


def test_check_supervision_follows_what_the_loss_requires(data_root):
    with pytest.raises(ValueError, match="loss 'bce' needs timestamps"):
        check_supervision(_config("counts", "bce"), data_root, requires=frozenset({"targets"}))
    with pytest.raises(ValueError, match="needs labels='onsets'"):
        check_supervision(_config("counts", "loco", "supervision.label_noise=normal:5ms"),
                          data_root, requires=frozenset({"counts"}))
    with pytest.raises(ValueError, match="labels='mixed' .* needs loss softloc or loco"):
        check_supervision(_config("mixed", "bce"), data_root, requires=frozenset({"targets"}))
    with pytest.raises(ValueError, match="one annotation folder and no per-file softness"):
        check_supervision(_config("onsets", "softloc", "supervision.label_noise=normal:5ms",
                                  "supervision.annotations=[annotations, annotations:20]"),
                          data_root, requires=frozenset({"targets", "counts"}))
    sources, plan = check_supervision(_config("onsets", "softloc",
                                              "supervision.annotations=[annotations:20]"),
                                      data_root, requires=frozenset({"targets", "counts"}))
    assert plan and sources[0].softness_ms == 20.0
    _, plan = check_supervision(_config("counts", "loco"), data_root,
                                requires=frozenset({"counts"}))
    assert not plan


@pytest.mark.parametrize(("labels", "loss"), [("counts", "loco"), ("onsets", "softloc")])
def test_batches_carry_inputs_lengths_and_labels(data_root, tmp_path, labels, loss):
    cfg = _config(labels, loss)
    sources, plan = check_supervision(cfg, data_root, requires=frozenset({"counts"}))
    data = prepare_training_data(cfg, data_root, sources=sources, use_plan=plan,
                                 cache_dir=tmp_path / "cache")
    assert data.config.classes == ("HH", "KD", "SD")
    train_loader, valid_loader = make_loaders(data)
    batches = list(train_loader)
    assert len(batches) == 3  # max_steps batches drawn with replacement
    b = batches[0]
    n_mels, t = b["inputs"].shape[1:]
    assert (b["inputs"].shape[0], n_mels) == (4, 16)
    assert b["targets"].shape == (4, 3, t) and b["counts"].shape == (4, 3)
    assert int(b["lengths"].max()) <= t
    assert valid_loader is not None
    if labels == "onsets":
        # frame labels add up to the counts unless two events share a frame
        assert (b["targets"].sum(-1) <= b["counts"]).all()
        # SoftLoc at softness > 0 calibrates and selects on counts: no F1 files
        assert data.valid_files == []
        sigma_ms = float(b["sigma_frames"][0]) / cfg.features.frame_rate * 1000
        assert sigma_ms == pytest.approx(cfg.loss.softness_ms)
    else:
        assert data.valid_files == []  # a counts-only run never looks at timestamps
        assert torch.isinf(b["sigma_frames"]).all()


def test_collate_renames_keys_and_clamps_shared_frames():
    item = {"mel": torch.ones(2, 5), "length": torch.tensor(4), "counts": torch.tensor([2]),
            "targets": torch.tensor([[0.0, 2.0, 0.0, 0.0, 0.0]])}
    b = collate_batch([item, item])
    assert set(b) == {"inputs", "lengths", "counts", "targets"}
    assert b["targets"].max() == 1.0 and b["counts"].tolist() == [[2], [2]]
    assert b["inputs"].shape == (2, 2, 5) and b["lengths"].tolist() == [4, 4]


def test_carve_validation_is_a_seeded_disjoint_split_of_train():
    stems = [f"s{i:02d}" for i in range(40)]
    train, valid = carve_validation(stems, 0.15, seed=3)
    assert len(valid) == 6 and sorted(train + valid) == stems and not set(train) & set(valid)
    assert carve_validation(list(reversed(stems)), 0.15, seed=3) == (train, valid)
    assert carve_validation(stems, 0.15, seed=4)[1] != valid
    assert carve_validation(["a", "b"], 0.15, seed=0)[1] in (["a"], ["b"])  # at least one
    assert carve_validation(["a"], 0.5, seed=0) == (["a"], [])  # nothing left to train on
    assert carve_validation(stems, 0.0, seed=0) == (stems, [])


def test_without_valid_txt_validation_is_carved_from_train_and_announced(data_root, tmp_path,
                                                                         caplog):
    import shutil

    root = tmp_path / "d"
    shutil.copytree(data_root, root)
    valid = (root / "splits" / "valid.txt").read_text().split()
    (root / "splits" / "valid.txt").unlink()
    with open(root / "splits" / "train.txt", "a") as f:
        f.write("".join(f"{s}\n" for s in valid))
    cfg = _config("counts", "loco", "data.valid_fraction=0.34")
    sources, plan = check_supervision(cfg, root, requires=frozenset({"counts"}))
    with caplog.at_level("WARNING", logger="softloc.training"):
        data = prepare_training_data(cfg, root, sources=sources, use_plan=plan,
                                     cache_dir=tmp_path / "cache")
    assert len(data.valid_stems) == 1 and len(data.train_stems) == 2
    assert not set(data.valid_stems) & set(data.train_stems)
    assert "carved from train" in data.split_note and "carved from train" in caplog.text
    assert data.valid_set is not None and data.valid_counts[data.valid_stems[0]]


def test_label_noise_reaches_the_validation_labels_but_not_the_counts(data_root, tmp_path):
    from softloc.data import load_dataset

    clean = load_dataset(data_root)
    cfg = _config("onsets", "bce", "supervision.label_noise=normal:40ms")
    sources, plan = check_supervision(cfg, data_root, requires=frozenset({"targets"}))
    data = prepare_training_data(cfg, data_root, sources=sources, use_plan=plan,
                                 cache_dir=tmp_path / "cache")
    for stem in data.valid_stems + data.train_stems:
        noisy, truth = data.index.events[stem], clean.events[stem]
        assert noisy != truth and len(noisy) == len(truth)
    assert data.valid_files == []  # no F1 on (noisy) timestamps: selection on counts
    stem = data.valid_stems[0]
    assert data.valid_counts[stem] == list(clean.count_windows[stem])  # counts.csv, unchanged
