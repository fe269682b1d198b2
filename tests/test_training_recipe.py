import math

import pytest
import torch
from torch import nn

from softloc.config import apply_overrides, load_preset
from softloc.models import model_from_config, prior_output_bias
from softloc.training import match_output_prior
from softloc.training.recipe import (
    count_prior_biases,
    output_layers,
    unit_variance_convolutions,
)

SMALL = ["features.n_mels=16", "model.conv_filters=[4,4]", "model.pool_sizes=[4,8]",
         "model.lstm_units=6", "model.hidden_units=4", "classes=[HH, KD, SD]"]


def _batch(n_mels=16):
    g = torch.Generator().manual_seed(3)
    return {"inputs": torch.rand(4, n_mels, 60, generator=g) + 1e-3,
            "lengths": torch.tensor([60, 50, 40, 30])}


def _class_means(model, batch):
    """Mean logit per class over the valid frames, computed independently (frame by frame)."""
    with torch.no_grad():
        z = model(batch["inputs"], batch["lengths"])
    rows = [z[b, :, : int(n)] for b, n in enumerate(batch["lengths"])]
    return torch.cat(rows, dim=-1).mean(-1)


@pytest.mark.parametrize("per_class", [False, True])
def test_the_mean_initial_logit_of_every_class_becomes_the_eq15_bias(per_class):
    flag = f"model.per_class={str(per_class).lower()}"
    cfg = apply_overrides(load_preset("drums"), [*SMALL, flag])
    target = prior_output_bias(150, 0.64)
    for seed in range(3):
        torch.manual_seed(seed)
        model = model_from_config(cfg)
        before = _class_means(model, _batch())
        shifts = match_output_prior(model, _batch(), output_bias=target)
        after = _class_means(model, _batch())
        torch.testing.assert_close(after, torch.full((3,), target), atol=1e-4, rtol=0)
        torch.testing.assert_close(torch.tensor(shifts), target - before, atol=1e-4, rtol=0)
        assert model.training  # mode restored


@pytest.mark.parametrize("per_class", [False, True])
def test_per_class_biases_set_each_class_mean_logit(per_class):
    flag = f"model.per_class={str(per_class).lower()}"
    cfg = apply_overrides(load_preset("drums"), [*SMALL, flag])
    torch.manual_seed(0)
    model = model_from_config(cfg)
    targets = [-2.0, -5.5, -9.0]
    match_output_prior(model, _batch(), output_bias=targets)
    torch.testing.assert_close(_class_means(model, _batch()), torch.tensor(targets), atol=1e-4,
                               rtol=0)
    with pytest.raises(ValueError, match="one number or one per class \\(3\\), got 2 values"):
        match_output_prior(model, _batch(), output_bias=[-2.0, -5.5])


def test_count_prior_bias_gives_each_class_its_mean_rate():
    counts = torch.tensor([[2, 0, 30], [4, 0, 10]])  # means 3, 0, 20 over 10-step windows
    biases = count_prior_biases(counts, 10, fallback=-7.0)
    # sigmoid(b) * 10 = 3; no event: the fallback; a rate above 1/2 is capped at 1/2
    assert biases[0] == pytest.approx(math.log(0.3 / 0.7), abs=1e-12)
    assert biases[1] == -7.0
    assert biases[2] == pytest.approx(0.0, abs=1e-12)


def test_a_model_without_a_loco_head_is_left_alone():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(16, 3)

        def forward(self, x, lengths=None):
            return self.proj(x.transpose(1, 2)).transpose(1, 2)

    model = Plain()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert output_layers(model, 3) is None
    assert match_output_prior(model, _batch(), output_bias=-5.0) is None
    assert unit_variance_convolutions(model, _batch()) == []  # no convolution to scale
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_every_convolution_starts_with_unit_output_variance():
    cfg = apply_overrides(load_preset("drums"), SMALL + ["model.conv_filters=[4,4,4]",
                                                         "model.pool_sizes=[2,2,8]"])
    torch.manual_seed(0)
    model = model_from_config(cfg)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    outputs = {}
    for i, conv in enumerate(convs):
        conv.register_forward_hook(lambda mod, inp, out, i=i: outputs.__setitem__(i, out))
    with torch.no_grad():
        model(_batch()["inputs"], _batch()["lengths"])
    before = [float(outputs[i].std()) for i in range(len(convs))]
    assert before[-1] < 0.2  # Glorot + ReLU + pooling: the activations shrink layer by layer
    factors = unit_variance_convolutions(model, _batch())
    assert len(factors) == len(convs) and factors[0] == pytest.approx(before[0], rel=1e-5)
    with torch.no_grad():
        model(_batch()["inputs"], _batch()["lengths"])
    for i in range(len(convs)):
        assert float(outputs[i].std()) == pytest.approx(1.0, rel=1e-4)


# ------------------------------------------------------------------ the recipe end to end


@pytest.fixture(scope="module")
def drums_22k(tmp_path_factory):
    from softloc.data import synthesize_drum_dataset

    root = tmp_path_factory.mktemp("recipe") / "d"
    synthesize_drum_dataset(root, seed=0, n_train_files=4, n_valid_files=1, n_test_files=1,
                            file_duration_s=8.0, n_train_kits=2, n_valid_kits=1, n_test_kits=1,
                            sample_rate=22050, system_kits=False,
                            window_s=0.5, hop_s=0.25)  # the demo preset's count windows
    return root


def _contrast(run, root):
    """(mean over annotated events of the highest p(t) within +-30 ms, mean over files and
    classes of the median p(t) away from events) on the training and validation files."""
    import numpy as np

    from softloc.data import load_dataset
    from softloc.inference import Detector

    index, det = load_dataset(root), Detector.load(run)
    fr, near, far = det.frame_rate, [], []
    for stem in index.splits["train"] + index.splits["valid"]:
        probs = det.probabilities(index.audio_paths[stem])  # (class, time)
        for c, name in enumerate(det.classes):
            frames = np.array([round(t * fr) for t, lab in index.events[stem] if lab == name],
                              dtype=int)
            frames = frames[(frames >= 0) & (frames < probs.shape[1])]
            away = np.ones(probs.shape[1], dtype=bool)
            for d in range(-3, 4):
                away[np.clip(frames + d, 0, probs.shape[1] - 1)] = False
            near += [probs[c, max(0, f - 3): f + 4].max() for f in frames]
            far.append(np.median(probs[c, away]))
    return float(np.mean(near)), float(np.mean(far))


def _dead_fraction(run, root):
    """Fraction of the last convolution's channels whose output is <= 0 (ReLU: dead) at every
    position of every training file."""
    from softloc.data import load_dataset
    from softloc.inference import Detector

    index, det = load_dataset(root), Detector.load(run)
    last = [m for m in det.model.modules() if isinstance(m, nn.Conv2d)][-1]
    alive = torch.zeros(last.out_channels, dtype=torch.bool)

    def hook(module, inputs, out):  # out: (batch, channel, freq, time)
        alive.logical_or_(out.gt(0).flatten(2).any(-1).any(0))

    handle = last.register_forward_hook(hook)
    for stem in index.splits["train"]:
        det.probabilities(index.audio_paths[stem])
    handle.remove()
    return 1.0 - float(alive.float().mean())


def _train_demo(root, out, lr_factor, seed, steps=300):
    from softloc.training import fit

    demo = load_preset("demo")
    cfg = apply_overrides(demo, [
        f"train.learning_rate={demo.train.learning_rate * lr_factor}", f"train.seed={seed}",
        f"train.max_steps={steps}", f"train.val_every_n_steps={steps}", "data.rate_factors=[1.0]"])
    return fit(cfg, data_root=root, out_dir=out, progress=False).run_dir


@pytest.mark.parametrize(("lr_factor", "seed"), [
    (3.0, 0),
    pytest.param(3.0, 1, marks=pytest.mark.slow),
    pytest.param(10.0, 0, marks=pytest.mark.slow),
])
def test_demo_recipe_at_three_and_ten_times_its_rate_localises_from_counts(drums_22k, tmp_path,
                                                                           lr_factor, seed):
    """A cold start from counts only (the demo preset: LoCo, AdamW, warm-up, cosine, exact
    eq. 15 prior) at 3x or 10x the preset's rate: after 300 steps p(t) peaks at the events, well
    above its level elsewhere, and at most a quarter of the last conv's channels are dead. (The
    previous recipe - Adam, no warm-up, the head's random offset - left 75 % of them dead and
    p(t) flat to 1e-4 at 3x.)"""
    run = _train_demo(drums_22k, tmp_path / "run", lr_factor, seed)
    near, far = _contrast(run, drums_22k)
    assert near > 2 * far, (near, far)
    assert _dead_fraction(run, drums_22k) <= 0.25


@pytest.mark.slow
def test_demo_recipe_at_a_third_of_its_rate_keeps_its_units_alive(drums_22k, tmp_path):
    """At 1/3 of the rate the recipe learns more slowly (after 300 steps p(t) has not yet
    localised on this tiny set) but no channel dies."""
    run = _train_demo(drums_22k, tmp_path / "run", 1 / 3, 0)
    assert _dead_fraction(run, drums_22k) <= 0.25
