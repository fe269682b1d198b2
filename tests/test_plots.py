import numpy as np
import soundfile as sf
import torch

from softloc.config import apply_overrides, load_preset
from softloc.counting import count_distribution
from softloc.inference import Detector
from softloc.models import model_from_config
from softloc.plots import plot_detection, running_count_distribution


def test_running_count_distribution_matches_prefix_by_prefix_recursion():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 0.6, size=(2, 15))
    y = running_count_distribution(probs, 4)
    assert y.shape == (2, 5, 15)
    for t in (0, 6, 14):
        ref = count_distribution(torch.as_tensor(probs[None, :, : t + 1]), 4)[0].numpy()
        np.testing.assert_allclose(y[:, :, t], ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-10)


def test_plot_detection_writes_a_figure(tmp_path):
    cfg = apply_overrides(load_preset("drums"), [
        "features.n_mels=16", "features.n_fft=1024", "features.win_length=1024",
        "model.conv_filters=[4,4]", "model.pool_sizes=[4,8]", "classes=[HH, KD, SD]",
    ])
    det = Detector(model_from_config(cfg), cfg)
    audio = np.random.default_rng(1).normal(size=44100 * 3).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", audio, 44100)
    (tmp_path / "a.txt").write_text("0.5\tKD\n1.0\tSD\n1.25\tHH\n")
    out = plot_detection(det, tmp_path / "a.wav", tmp_path / "fig.png",
                         annotations=tmp_path / "a.txt", start_s=0.2, duration_s=2.0)
    assert out.is_file() and out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "a.wav", "fig.png"]
