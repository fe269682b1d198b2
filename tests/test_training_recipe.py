import pytest
import torch
from torch import nn

from softloc.config import apply_overrides, load_preset
from softloc.models import model_from_config, prior_output_bias
from softloc.training import match_output_prior
from softloc.training.recipe import output_layers, unit_variance_convolutions

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
