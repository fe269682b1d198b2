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
