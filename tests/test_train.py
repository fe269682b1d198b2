import math

import pytest
import torch

from softloc.config import apply_overrides, config_to_dict, load_preset
from softloc.counting import count_log_likelihood
from softloc.losses import bce_loss, softloc_loss
from softloc.train import DetectorModule, _devices, train

SMALL = [
    "features.n_mels=16",
    "features.n_fft=1024",
    "features.win_length=1024",
    "model.conv_filters=[4,4]",
    "model.pool_sizes=[4,8]",
    "model.lstm_units=6",
    "model.hidden_units=4",
    "classes=[HH, KD, SD]",
]


def module(loss="loco"):
    cfg = apply_overrides(load_preset("drums"), SMALL + [f"loss.name={loss}"])
    return DetectorModule(config_to_dict(cfg))


def batch(b=3, t=40, c=3):
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(b, c, t, generator=g) > 0.93).float()
    return {
        "mel": torch.rand(b, 16, t, generator=g) + 0.01,
        "length": torch.tensor([t, t - 5, t - 10][:b]),
        "counts": targets.sum(-1).long(),
        "targets": targets,
        "has_targets": torch.ones(b, dtype=torch.bool),
        "sigma_frames": torch.full((b,), 4.0),
    }


def test_loco_loss_is_mean_negative_count_log_likelihood():
    m = module("loco")
    x = batch()
    probs = torch.rand(3, 3, 40) * 0.2
    expected = -count_log_likelihood(probs, x["counts"], 22, lengths=x["length"]).mean()
    assert torch.allclose(m.compute_loss(probs, x), expected)


def test_softloc_loss_uses_batch_softness_and_alpha_schedule():
    m = module("softloc")
    x = batch()
    probs = torch.rand(3, 3, 40) * 0.5
    expected = softloc_loss(probs, x["targets"], x["sigma_frames"], 0.2, 22, lengths=x["length"],
                            counts=x["counts"], reduction="classes")
    assert torch.allclose(m.compute_loss(probs, x), expected)


def test_bce_loss_masks_padding():
    m = module("bce")
    x = batch()
    probs = torch.rand(3, 3, 40)
    assert torch.allclose(m.compute_loss(probs, x), bce_loss(probs, x["targets"],
                                                             lengths=x["length"]))


@pytest.mark.parametrize(
    "loss", ["loco", "softloc", "bce", "smoothed_bce", "one_sided", "bootstrap"]
)
def test_training_step_gives_finite_loss_and_gradients(loss):
    m = module(loss)
    out = m.training_step(batch(), 0)
    assert torch.isfinite(out)
    out.backward()
    assert all(p.grad is not None for p in m.model.parameters())


def test_validation_collects_exact_count_rate():
    m = module("loco")
    m.validation_step(batch(), 0)
    assert len(m._val_hits) == 1
    assert m._val_hits[0].shape == (9,)
    assert set(m._val_hits[0].tolist()) <= {0.0, 1.0}


def test_optimizer_is_adam_with_configured_rate():
    cfg = apply_overrides(load_preset("drums"), SMALL + ["train.lr_schedule=constant",
                                                         "train.learning_rate=0.0123"])
    opt = DetectorModule(config_to_dict(cfg)).configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0123)


def test_cosine_schedule_decays_to_five_percent():
    cfg = apply_overrides(load_preset("drums"), SMALL + ["train.lr_schedule=cosine",
                                                         "train.max_steps=100"])
    conf = DetectorModule(config_to_dict(cfg)).configure_optimizers()
    sched = conf["lr_scheduler"]["scheduler"]
    assert sched.lr_lambdas[0](0) == pytest.approx(1.0)
    assert sched.lr_lambdas[0](50) == pytest.approx(0.525)
    assert sched.lr_lambdas[0](100) == pytest.approx(0.05)


def test_devices_parsing():
    assert _devices("1") == 1
    assert _devices("auto") == "auto"
    assert _devices("0,1") == [0, 1]
    assert _devices("-1") == -1


def test_train_argument_errors(tmp_path):
    cfg = load_preset("drums")
    with pytest.raises(ValueError, match="`labels` must be one of"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "r", labels="frames")
    with pytest.raises(ValueError, match="needs timestamps"):
        train(apply_overrides(cfg, ["loss.name=bce"]), data_root=tmp_path,
              out_dir=tmp_path / "r", labels="counts")
    with pytest.raises(ValueError, match="needs labels='onsets'"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "r", label_noise="normal:50ms")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "full")
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "new", resume=True)


def test_train_with_label_noise_perturbs_only_training_events(tmp_path):
    from softloc.data import synthesize_drum_dataset
    from softloc.train import _label_noise_events

    index = synthesize_drum_dataset(tmp_path / "d", n_train_files=2, n_valid_files=1,
                                    n_test_files=0, file_duration_s=3.0, sample_rate=16000)
    train_stems = list(index.splits["train"])
    noisy = _label_noise_events(index, train_stems, "normal:30ms", seed=0)
    for stem in train_stems:
        assert noisy.events[stem] != index.events[stem]
    for stem in index.splits["valid"]:
        assert noisy.events[stem] == index.events[stem]
    assert not math.isnan(noisy.durations_s[train_stems[0]])


class _MelIsProbability(torch.nn.Module):
    """Stub network: p(t) of class c is mel band c, so a test can place peaks directly."""

    def __init__(self, n_classes):
        super().__init__()
        self.n_classes = n_classes
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, mel, lengths=None):
        return mel[:, : self.n_classes, :]


def test_count_calibration_picks_the_threshold_that_reproduces_validation_counts():
    """Class A: true events peak at 0.62, distractors at 0.27, so thresholds 0.30 ... 0.60 count
    exactly; with the configured threshold at 0.2 the nearest of those, 0.30, is chosen. Class B:
    every peak is an event (0.5 and 0.15), so only thresholds <= 0.15 count right: 0.10 or 0.15,
    and 0.15 is nearer to 0.2."""
    from types import SimpleNamespace

    from softloc.data.layout import CountWindow
    from softloc.train import _calibrate

    cfg = apply_overrides(
        load_preset("demo"),
        ["classes=[A, B]", "inference.threshold=0.2", "inference.calibrate_with=counts"],
    )
    fr = cfg.features.frame_rate
    n = int(6 * fr)
    mel = torch.full((cfg.features.n_mels, n), 0.01)
    a_true, a_false = [0.5, 2.2, 4.1], [1.3, 3.3]
    b_events = {0.7: 0.5, 2.9: 0.15, 5.0: 0.5}
    for t in a_true:
        mel[0, round(t * fr)] = 0.62
    for t in a_false:
        mel[0, round(t * fr)] = 0.27
    for t, h in b_events.items():
        mel[1, round(t * fr)] = h
    windows = [
        CountWindow("v", 0.0, 3.0, {"A": 2, "B": 2}),
        CountWindow("v", 3.0, 6.0, {"A": 1, "B": 1}),
    ]
    store = SimpleNamespace(get=lambda stem, rate: mel.numpy())
    index = SimpleNamespace(count_windows={"v": windows}, has_events=lambda s: True)
    new_cfg, info = _calibrate(_MelIsProbability(2), cfg, store, index, ["v"])
    assert new_cfg.inference.class_thresholds == (0.3, 0.15)
    assert info["valid_count_abs_error"] == {"A": 0.0, "B": 0.0}
    assert new_cfg.inference.class_offsets_s == cfg.inference.class_offsets_s
    assert info["source"].startswith("validation counts of 2 windows")


def test_calibrate_with_rejects_unknown_sources():
    with pytest.raises(ValueError, match="calibrate_with.*one of"):
        apply_overrides(load_preset("demo"), ["inference.calibrate_with=labels"])


def test_auto_calibration_uses_counts_when_validation_has_no_timestamps():
    from types import SimpleNamespace

    from softloc.data.layout import CountWindow
    from softloc.train import _calibrate

    cfg = apply_overrides(load_preset("demo"), ["classes=[A]", "inference.calibrate_with=auto"])
    fr = cfg.features.frame_rate
    mel = torch.full((cfg.features.n_mels, int(3 * fr)), 0.01)
    mel[0, round(1.0 * fr)] = 0.5
    store = SimpleNamespace(get=lambda stem, rate: mel.numpy())
    windows = [CountWindow("v", 0.0, 3.0, {"A": 1})]
    index = SimpleNamespace(count_windows={"v": windows}, has_events=lambda s: False)
    _, info = _calibrate(_MelIsProbability(1), cfg, store, index, ["v"])
    assert info["source"].startswith("validation counts")
    index_none = SimpleNamespace(count_windows={}, has_events=lambda s: False)
    _, info = _calibrate(_MelIsProbability(1), cfg, store, index_none, ["v"])
    assert info["source"] == "none (no validation counts)"
