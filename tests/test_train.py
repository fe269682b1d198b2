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
    m = module()
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2)


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
