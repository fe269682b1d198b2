"""features input stage: a saved segmentation model -> per-frame labels -> segment lines whose
times and labels match a run-length pass over the network's own arg-max."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softloc.config import RunConfig
from softloc.inference import INPUT_STAGES, save_model_file
from softloc.inference.features_input import FeatureInput, Segmentation, segment_to_folder
from softloc.models.build import build_model

CLASSES = ("a", "b", "c")


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    net = build_model("ed-tcn", n_features=4, n_classes=3, filters=[4], kernel_size=3)
    path = tmp_path / "model.pt"
    save_model_file(path, net, RunConfig(classes=CLASSES), input_kind="features",
                    extra={"classes": list(CLASSES), "fps": 4.0, "subsample": 2})
    return path, net


def test_registered():
    assert INPUT_STAGES["features"] is FeatureInput


def test_segments_follow_the_argmax_at_the_subsampled_rate(model_file, tmp_path):
    path, net = model_file
    feats = np.random.default_rng(0).normal(size=(4, 41)).astype(np.float32) * 3
    np.save(tmp_path / "v1.npy", feats)
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(feats[:, ::2])[None])[0].argmax(0).numpy()
    # brute-force run-length: one (start, end, label) per maximal run, frames / (4 fps / 2)
    expected, start = [], 0
    for t in range(1, ref.size + 1):
        if t == ref.size or ref[t] != ref[start]:
            expected.append((start / 2.0, t / 2.0, CLASSES[ref[start]]))
            start = t
    seg = Segmentation.load(path)
    assert seg.segments(tmp_path / "v1.npy") == expected
    (out,) = segment_to_folder(path, [tmp_path / "v1.npy"], tmp_path / "out")
    lines = [ln.split("\t") for ln in out.read_text().splitlines()]
    assert [(float(a), float(b), c) for a, b, c in lines] == expected
    with pytest.raises(FileExistsError):
        segment_to_folder(path, [tmp_path / "v1.npy"], tmp_path / "out")


def test_not_a_segmentation_model(tmp_path):
    net = build_model("ed-tcn", n_features=4, n_classes=3, filters=[4], kernel_size=3)
    save_model_file(tmp_path / "m.pt", net, RunConfig(classes=CLASSES), input_kind="features")
    with pytest.raises(ValueError, match="not a segmentation model"):
        Segmentation.load(tmp_path / "m.pt")


def test_a_bad_file_is_reported_and_the_others_are_written(model_file, tmp_path):
    from softloc.inference.features_input import feature_inputs, segment_batch

    path, _ = model_file
    good = np.random.default_rng(1).normal(size=(4, 9)).astype(np.float32)
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", good)
    np.save(tmp_path / "in" / "b.npy", np.zeros(5, dtype=np.float32))  # 1-D: not features
    np.save(tmp_path / "in" / "c.npy", good)
    inputs = feature_inputs([tmp_path / "in"])
    assert [rel.name for _, rel in inputs] == ["a", "b", "c"]
    report = segment_batch(Segmentation.load(path), inputs, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "c.txt"]
    ((src, msg),) = report.failed
    assert src.name == "b.npy" and "b.npy" in msg and "shape" in msg


def test_feature_inputs_refuse_clashing_names_and_empty_folders(tmp_path):
    from softloc.inference.features_input import feature_inputs

    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        np.save(tmp_path / sub / "v.npy", np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="two inputs would write v.txt"):
        feature_inputs([tmp_path / "x" / "v.npy", tmp_path / "y" / "v.npy"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .npy feature files"):
        feature_inputs([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="matches no .npy"):
        feature_inputs([str(tmp_path / "nothing*.npy")])


def test_event_models_are_not_segmentation_models(model_file, tmp_path):
    from softloc.inference import read_model_file
    from softloc.inference.features_input import is_segmentation_model

    path, _ = model_file
    assert is_segmentation_model(read_model_file(path))
    net = build_model("ed-tcn", n_features=4, n_classes=3, filters=[4], kernel_size=3)
    save_model_file(tmp_path / "audio.pt", net, RunConfig(classes=CLASSES), input_kind="audio")
    mf = read_model_file(tmp_path / "audio.pt")
    assert not is_segmentation_model(mf)
    with pytest.raises(ValueError, match="input kind 'audio'"):
        Segmentation.from_model_file(mf)
