import math

import pytest
import torch

from softloc.config import LOSS_NAMES, apply_overrides, load_preset
from softloc.counting import count_distribution
from softloc.losses.registry import build_loss
from softloc.models import model_from_config
from softloc.training import (
    EventModule,
    OptimSettings,
    cosine_factor,
    parameter_groups,
    warmup_factor,
)

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


def config(loss="loco", *extra):
    return apply_overrides(load_preset("drums"), SMALL + [f"loss.name={loss}", *extra])


def batch(b=3, t=40, c=3):
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(b, c, t, generator=g) > 0.93).float()
    return {
        "inputs": torch.rand(b, 16, t, generator=g) + 0.01,
        "lengths": torch.tensor([t, t - 5, t - 10][:b]),
        "counts": targets.sum(-1).long(),
        "targets": targets,
        "sigma_frames": torch.full((b,), 4.0),
    }


class _RecordingLoss(torch.nn.Module):
    """Stub EventLoss: records what it receives; loss = mean logit."""

    def __init__(self, requires):
        super().__init__()
        self.requires = frozenset(requires)
        self.calls = []

    def forward(self, logits, *, lengths=None, step=0, **labels):
        self.calls.append({"lengths": lengths, "step": step, **labels})
        return logits.mean()


def _module(loss, cfg=None, **kw):
    cfg = cfg or config()
    return EventModule(model_from_config(cfg), loss, optim=OptimSettings(), **kw)


def test_the_loss_receives_logits_and_exactly_the_keys_it_requires():
    loss = _RecordingLoss({"counts"})
    m = _module(loss)
    x = batch()
    out = m.training_step(x, 0)
    with torch.no_grad():
        expected = m.model(x["inputs"], x["lengths"]).mean()
    assert torch.allclose(out, expected)  # the module passes the network's raw logits
    (call,) = loss.calls
    assert set(call) == {"lengths", "step", "counts"}
    assert call["counts"] is x["counts"] and call["lengths"] is x["lengths"]
    assert call["step"] == 0


def test_optional_keys_are_passed_when_the_batch_has_them():
    loss = _RecordingLoss({"targets"})
    loss.optional = frozenset({"sigma_frames"})
    m = _module(loss)
    x = batch()
    m.training_step(x, 0)
    del x["sigma_frames"]
    m.training_step(x, 0)
    assert set(loss.calls[0]) == {"lengths", "step", "targets", "sigma_frames"}
    assert loss.calls[0]["sigma_frames"] is not None
    assert set(loss.calls[1]) == {"lengths", "step", "targets"}


def test_a_batch_without_a_required_key_is_an_error_naming_it():
    m = _module(_RecordingLoss({"targets", "counts"}))
    x = batch()
    del x["targets"]
    with pytest.raises(ValueError, match="the batch has no 'targets'"):
        m.training_step(x, 0)


def test_module_rejects_a_loss_without_requires_and_bad_settings():
    with pytest.raises(TypeError, match="EventLoss with a `requires`"):
        _module(torch.nn.MSELoss())
    with pytest.raises(TypeError, match="`optim` must be an OptimSettings"):
        EventModule(model_from_config(config()), _RecordingLoss({"counts"}), optim={"lr": 1})
    with pytest.raises(ValueError, match="`lr_schedule` must be one of"):
        OptimSettings(lr_schedule="step")


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_training_step_with_every_registered_loss_gives_finite_loss_and_gradients(loss):
    cfg = config(loss)
    built = build_loss(cfg.loss, frame_rate=cfg.features.frame_rate, max_steps=10)
    m = EventModule(model_from_config(cfg), built, optim=OptimSettings())
    out = m.training_step(batch(), 0)
    assert torch.isfinite(out)
    out.backward()
    assert all(p.grad is not None for p in m.model.parameters())


def test_validation_exact_count_rate_matches_the_count_distribution():
    m = _module(_RecordingLoss({"counts"}), count_k_max=22)
    x = batch()
    m.validation_step(x, 0)
    (hits,) = m._val_hits
    with torch.no_grad():
        probs = torch.sigmoid(m.model(x["inputs"], x["lengths"]))
    dist = count_distribution(probs.double(), 22, lengths=x["lengths"])
    expected = (dist.argmax(-1) == x["counts"]).float().flatten()
    assert torch.equal(hits, expected)


def test_validator_metrics_become_the_score_and_the_model_goes_back_to_training():
    seen = []

    def validator(model):
        seen.append(model.training)
        return {"val/f1": 0.25}

    m = _module(_RecordingLoss({"counts"}), validator=validator)
    logged = {}
    m.log = lambda key, value, **kw: logged.__setitem__(key, value)
    m.model.train()
    m.on_validation_epoch_end()
    assert seen == [False]
    assert m.model.training
    assert logged["val/score"] == 0.25 and logged["val/f1"] == 0.25


def test_optimizer_is_adam_with_configured_rate():
    m = _module(_RecordingLoss({"counts"}))
    m.optim = OptimSettings(learning_rate=0.0123)
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0123)


def test_cosine_schedule_decays_to_five_percent():
    m = _module(_RecordingLoss({"counts"}))
    m.optim = OptimSettings(learning_rate=1.0, max_steps=100, lr_schedule="cosine")
    sched = m.configure_optimizers()["lr_scheduler"]["scheduler"]
    for step in (0, 25, 50, 100, 150):
        by_hand = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step / 100, 1.0)))
        assert sched.lr_lambdas[0](step) == pytest.approx(by_hand)
        assert cosine_factor(step, 100) == pytest.approx(by_hand)
    assert sched.lr_lambdas[0](50) == pytest.approx(0.525)


def test_old_checkpoints_without_loss_buffers_load():
    """softloc 0.1 checkpoints hold `model.*` only; the loss's buffers are filled in."""

    class _BufferLoss(_RecordingLoss):
        def __init__(self):
            super().__init__({"counts"})
            self.register_buffer("kernel", torch.ones(3))

    m = _module(_BufferLoss())
    ckpt = {"state_dict": {f"model.{k}": v for k, v in m.model.state_dict().items()}}
    m.on_load_checkpoint(ckpt)
    m.load_state_dict(ckpt["state_dict"])
    assert torch.equal(ckpt["state_dict"]["loss.kernel"], torch.ones(3))


def test_learning_rate_is_linear_warmup_times_cosine_by_hand():
    m = _module(_RecordingLoss({"counts"}))
    m.optim = OptimSettings(learning_rate=1.0, max_steps=100, lr_schedule="cosine",
                            optimizer="adamw", warmup_steps=10)
    factor = m.configure_optimizers()["lr_scheduler"]["scheduler"].lr_lambdas[0]
    for step in (0, 4, 9, 10, 50, 100):
        warm = min(1.0, (step + 1) / 10)
        cos = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step / 100, 1.0)))
        assert factor(step) == pytest.approx(warm * cos)
    assert warmup_factor(0, 0) == 1.0


def test_a_torch_scheduler_run_gives_the_same_rates_as_the_factor():
    m = _module(_RecordingLoss({"counts"}))
    m.optim = OptimSettings(learning_rate=0.5, max_steps=20, lr_schedule="constant",
                            warmup_steps=4)
    cfg = m.configure_optimizers()
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.125, 0.25, 0.375, 0.5, 0.5, 0.5])


def test_adamw_decays_weight_matrices_but_not_biases():
    m = _module(_RecordingLoss({"counts"}))
    m.optim = OptimSettings(learning_rate=0.1, optimizer="adamw", weight_decay=0.5)
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.5 for p in g["params"]}
    for name, p in m.model.named_parameters():
        assert (id(p) in decayed) == (p.ndim >= 2), name
    assert len(parameter_groups(m.model, 0.5)) == 2
    # one step with zero gradients: decayed weights shrink by lr * decay, biases stay
    before = {n: p.detach().clone() for n, p in m.model.named_parameters()}
    for p in m.model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in m.model.named_parameters():
        want = before[name] * (1 - 0.1 * 0.5) if p.ndim >= 2 else before[name]
        torch.testing.assert_close(p.detach(), want)


def test_settings_from_the_run_config_are_the_presets_recipe():
    train = load_preset("drums").train
    o = OptimSettings.from_config(train)
    assert (o.learning_rate, o.max_steps, o.lr_schedule) == (
        train.learning_rate, train.max_steps, train.lr_schedule)
    assert (o.optimizer, o.weight_decay, o.warmup_steps) == (
        train.optimizer, train.weight_decay, train.warmup_steps)
    for bad, match in ((dict(optimizer="sgd"), "`optimizer` must be one of"),
                       (dict(learning_rate=math.nan), "`learning_rate` must be a finite"),
                       (dict(weight_decay=-1.0), "`weight_decay` must be a finite"),
                       (dict(warmup_steps=-1), "`warmup_steps` >= 0")):
        with pytest.raises(ValueError, match=match):
            OptimSettings(**bad)
