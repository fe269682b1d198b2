"""Figures: Y(k, t) against the count recursion; every figure function writes a PNG."""

import numpy as np
import pytest
import soundfile as sf
import torch

from softloc.config import apply_overrides, load_preset
from softloc.counting import count_distribution
from softloc.inference import Detector
from softloc.models import model_from_config
from softloc.plots import (
    plot_detection,
    plot_digit_detections,
    plot_robustness,
    plot_softness_surface,
    plot_tsne,
    running_count_distribution,
)


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


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_figures_are_written_atomically(tmp_path):
    curves = {"softloc": {0.0: [0.9, 0.8], 100.0: [0.7, float("nan")]}, "bce": {0.0: [0.95]}}
    assert _is_png(plot_robustness(curves, tmp_path / "rob.png", title="t"))
    gx, gy = np.linspace(0, 100, 5), np.linspace(0, 150, 4)
    surface = np.arange(20, dtype=float).reshape(4, 5)
    points = np.array([[10.0, 20.0], [80.0, 120.0]])
    assert _is_png(plot_softness_surface(points, np.array([0.5, 0.6]), gx, gy, surface,
                                         tmp_path / "s.png"))
    # no run with a finite F1: only the axes
    assert _is_png(plot_softness_surface(points, np.full(2, np.nan), gx, gy, surface * np.nan,
                                         tmp_path / "empty.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.png", "rob.png", "s.png"]


def test_digit_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((3, 1, 32, 32)).astype(np.float32)
    centres = [np.array([[8.0, 8.0]]), np.zeros((0, 2)), np.array([[4.0, 20.0], [20, 4]])]
    labels = [np.array([3]), np.zeros(0, int), np.array([1, 2])]
    assert _is_png(plot_digit_detections(images, centres, labels, centres, labels,
                                         tmp_path / "d.png", digit_px=8, threshold=0.5))
    emb = rng.normal(size=(30, 2))
    assert _is_png(plot_tsne(emb, np.arange(30) % 10, tmp_path / "t.png", title="t"))


def test_image_detector_figure_and_its_refusals(tmp_path):
    from softloc.config import RunConfig
    from softloc.inference.images import HilbertImageInput
    from softloc.models import build_model

    model = build_model("digits", image_px=32, granularity_px=8, window_px=8,
                        conv_channels=[[4]], lstm_units=4, hidden_units=3)
    config = RunConfig(classes=tuple("0123456789"))
    det = Detector(model, config, input_stage=HilbertImageInput(config))
    np.save(tmp_path / "img.npy", np.random.default_rng(1).random((32, 32)).astype(np.float32))
    assert _is_png(plot_detection(det, tmp_path / "img.npy", tmp_path / "f.png"))
    with pytest.raises(ValueError, match="an image detector takes no annotations"):
        plot_detection(det, tmp_path / "img.npy", tmp_path / "g.png", duration_s=2.0)


def test_importing_the_figures_loads_no_matplotlib():
    import subprocess
    import sys

    code = "import sys, softloc.plots; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "False"


def _capture_figure(monkeypatch):
    """Keep the figure plot_detection draws (instead of only its PNG)."""
    import softloc.plots.detection as detection

    kept = {}
    real_save = detection.save

    def keep(fig, path, *, dpi):
        fig.canvas.draw()
        kept["fig"] = fig
        kept["legend_boxes"] = [(ax, leg.get_window_extent(), ax.get_window_extent())
                                for ax in fig.axes if (leg := ax.get_legend()) is not None]
        kept["texts"] = {
            "title": fig.axes[0].get_title(),
            "xlabel": fig.axes[-1].get_xlabel(),
            "ylabel0": fig.axes[0].get_ylabel(),
            "yticks0": [t.get_text() for t in fig.axes[0].get_yticklabels()],
            "legend1": [t.get_text() for t in fig.axes[1].get_legend().get_texts()],
        }
        kept["hlines"] = [(line.get_ydata()[0], line.get_color()) for line in fig.axes[1].lines
                          if line.get_linestyle() == ":"]
        return real_save(fig, path, dpi=dpi)

    monkeypatch.setattr(detection, "save", keep)
    return kept


@pytest.fixture
def small_detector():
    cfg = apply_overrides(load_preset("drums"), [
        "features.n_mels=32", "features.n_fft=1024", "features.win_length=1024",
        "model.conv_filters=[4,4]", "model.pool_sizes=[4,8]", "classes=[HH, KD, SD]",
    ])
    torch.manual_seed(0)
    return Detector(model_from_config(cfg), cfg)


def test_detection_figure_is_fit_for_a_paper(tmp_path, monkeypatch, small_detector):
    det = small_detector.with_settings(class_thresholds=[0.2, 0.5, 0.7])
    audio = np.random.default_rng(1).normal(size=44100 * 3).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", audio, 44100)
    (tmp_path / "a.txt").write_text("0.5\tKD\n1.0\tSD\n1.25\tHH\n")
    kept = _capture_figure(monkeypatch)
    plot_detection(det, tmp_path / "a.wav", tmp_path / "fig.png", annotations=tmp_path / "a.txt",
                   start_s=0.2, duration_s=2.0, model_name="run-42")
    # one threshold line per class, at that class's threshold, in its colour
    assert sorted(y for y, _ in kept["hlines"]) == pytest.approx([0.2, 0.5, 0.7])
    assert len({c for _, c in kept["hlines"]}) == 3
    # legends lie outside the plotting area: they cover no detection
    assert kept["legend_boxes"]
    for _, legend, axes in kept["legend_boxes"]:
        assert legend.x0 >= axes.x1
    texts = kept["texts"]
    assert "run-42" in texts["title"] and "a.wav" in texts["title"]
    assert texts["xlabel"] == "time (s)"
    assert texts["ylabel0"] == "frequency (Hz)" and "1k" in texts["yticks0"]
    assert "reference events" in texts["legend1"] and "thresholds (per class)" in texts["legend1"]


def test_detection_figure_without_references_mentions_none(tmp_path, monkeypatch,
                                                           small_detector):
    audio = np.random.default_rng(2).normal(size=44100 * 2).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", audio, 44100)
    kept = _capture_figure(monkeypatch)
    plot_detection(small_detector, tmp_path / "a.wav", tmp_path / "fig.png", duration_s=1.5)
    assert not any("reference" in t for t in kept["texts"]["legend1"])
    assert kept["texts"]["xlabel"] == "time (s)"
    assert kept["texts"]["legend1"][3] == "threshold"  # one global threshold
    with pytest.raises(FileExistsError, match="already exists"):
        plot_detection(small_detector, tmp_path / "a.wav", tmp_path / "fig.png", overwrite=False)
