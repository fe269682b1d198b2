"""ED-TCN and MS-TCN: shapes, padding invariance, receptive field, learning a toy segmentation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softloc.models.tcn import EDTCN, MSTCN


def _models():
    return [
        EDTCN(5, 4, filters=(8, 12), kernel_size=5),
        EDTCN(5, 4, filters=(6, 8, 10), kernel_size=3, dropout=0.0),
        MSTCN(5, 4, n_stages=3, n_layers=4, channels=8),
        EDTCN(5, 4, filters=(8, 12), kernel_size=5, input_projection=3),
    ]


_IDS = ["ed2", "ed3", "ms", "ed-projected"]


@pytest.mark.parametrize("model", _models(), ids=_IDS)
@pytest.mark.parametrize("t", [1, 7, 16, 33])
def test_logits_have_batch_class_time_shape(model, t):
    out = model.eval()(torch.randn(2, 5, t))
    assert out.shape == (2, 4, t)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("model", _models(), ids=_IDS)
@torch.no_grad()
def test_a_padded_item_gives_the_logits_of_the_item_alone(model):
    model.eval()
    x = torch.randn(3, 5, 37)
    lengths = torch.tensor([37, 21, 6])
    batched = model(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model(x[i : i + 1, :, :n])
        torch.testing.assert_close(batched[i : i + 1, :, :n], alone, rtol=1e-5, atol=1e-5)
        assert float(batched[i, :, n:].abs().sum()) == 0.0
    # garbage in the padding changes nothing
    noisy = x.clone()
    noisy[1, :, 21:] = 1e3
    torch.testing.assert_close(model(noisy, lengths), batched)


@torch.no_grad()
def test_input_projection_is_a_linear_map_applied_before_the_plain_network():
    # EDTCN(D, input_projection=P) == EDTCN(P) applied to W x + b, with the projection's weights
    torch.manual_seed(0)
    projected = EDTCN(6, 3, filters=(4, 5), kernel_size=3, input_projection=2).eval()
    assert projected.encoder[0].in_channels == 2
    assert projected.project.weight.shape == (2, 6, 1)
    plain = EDTCN(2, 3, filters=(4, 5), kernel_size=3).eval()
    state = {k: v for k, v in projected.state_dict().items() if not k.startswith("project.")}
    plain.load_state_dict(state)
    x = torch.randn(2, 6, 19)
    w, b = projected.project.weight[:, :, 0], projected.project.bias
    by_hand = torch.einsum("pd,bdt->bpt", w, x) + b[None, :, None]
    torch.testing.assert_close(projected(x), plain(by_hand), rtol=1e-5, atol=1e-5)
    assert "input_projection=2" in repr(projected)
    assert "project" not in dict(EDTCN(6, 3).named_children())


def test_mstcn_forward_is_the_last_stage():
    model = MSTCN(5, 4, n_stages=3, n_layers=3, channels=8).eval()
    x = torch.randn(2, 5, 20)
    stages = model.forward_stages(x)
    assert stages.shape == (3, 2, 4, 20)
    torch.testing.assert_close(model(x), stages[-1])


def test_mstcn_single_stage_receptive_field_is_2_to_the_layers_plus_1_minus_1():
    # n_layers dilated convolutions of kernel 3, dilations 1..2^(L-1): receptive field
    # 1 + 2 * (2^L - 1) = 2^(L+1) - 1 frames, i.e. 2^L - 1 on each side.
    n_layers = 3
    model = MSTCN(2, 3, n_stages=1, n_layers=n_layers, channels=4, dropout=0.0).eval()
    x = torch.randn(1, 2, 40)
    base = model(x)
    reach = 2**n_layers - 1
    t0 = 20
    far = x.clone()
    far[:, :, t0 + reach + 1] += 5.0
    assert torch.equal(model(far)[..., t0], base[..., t0])
    near = x.clone()
    near[:, :, t0 + reach] += 5.0
    assert not torch.equal(model(near)[..., t0], base[..., t0])


@pytest.mark.parametrize("make", [
    lambda: EDTCN(3, 3, filters=(16, 16), kernel_size=5, dropout=0.0),
    lambda: MSTCN(3, 3, n_stages=2, n_layers=4, channels=16, dropout=0.0),
], ids=["ed", "ms"])
def test_learns_a_toy_segmentation(make):
    torch.manual_seed(0)
    labels = torch.tensor([[0] * 12 + [1] * 8 + [2] * 12] * 4)
    x = 0.8 * F.one_hot(labels, 3).movedim(-1, 1).float() + torch.randn(4, 3, 32)
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = F.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (model.eval()(x).argmax(1) == labels).float().mean()
    assert float(acc) > 0.95


def test_errors_name_class_and_argument():
    with pytest.raises(ValueError, match=r"EDTCN: `kernel_size` must be odd"):
        EDTCN(3, 2, kernel_size=4)
    with pytest.raises(ValueError, match=r"EDTCN: `filters` must name at least one level"):
        EDTCN(3, 2, filters=())
    with pytest.raises(ValueError, match=r"EDTCN: `dropout` must be in \[0, 1\)"):
        EDTCN(3, 2, dropout=1.0)
    with pytest.raises(ValueError, match=r"EDTCN: `input_projection` must be >= 1"):
        EDTCN(3, 2, input_projection=0)
    with pytest.raises(ValueError, match=r"MSTCN: `n_stages` must be >= 1"):
        MSTCN(3, 2, n_stages=0)
    model = EDTCN(3, 2, filters=(4,), kernel_size=3)
    with pytest.raises(ValueError, match=r"EDTCN.forward: `x` must have 3 features"):
        model(torch.randn(1, 4, 10))
    with pytest.raises(ValueError, match=r"EDTCN.forward: `x` must have shape"):
        model(torch.randn(3, 10))
    with pytest.raises(ValueError, match=r"EDTCN.forward: `lengths` must lie in"):
        model(torch.randn(1, 3, 10), torch.tensor([11]))
    with pytest.raises(TypeError, match=r"MSTCN.forward_stages: `x` must be a torch.Tensor"):
        MSTCN(3, 2).forward_stages([[0.0]])
