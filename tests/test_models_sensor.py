"""softloc.models.sensor: shapes, frame timing, padding invariance, causality, validation."""

from __future__ import annotations

import math

import pytest
import torch

from softloc.models.sensor import FCLSTM, SignalCRNN


@pytest.mark.parametrize("strides, n, frames", [((3, 2, 1), 3600, 600), ((3, 2, 1), 3601, 601),
                                                ((3, 2, 2), 3600, 300), ((2,), 7, 4)])
def test_signal_crnn_output_frames_are_ceil_through_the_strides(strides, n, frames):
    k = len(strides)
    net = SignalCRNN(2, 3, conv_channels=(4,) * k, kernel_sizes=(5,) * k, strides=strides,
                     gru_units=3)
    assert net.output_frames(n) == frames
    assert net.hop_samples == math.prod(strides)
    assert tuple(net(torch.randn(2, 2, n)).shape) == (2, 3, frames)


def test_signal_crnn_frame_rate_at_360_hz_is_60():
    assert SignalCRNN(1, 1).frame_rate(360.0) == 60.0


def test_frame_j_is_centred_on_sample_j_times_hop():
    """Identity-like convolutions (a centred unit tap) make frame j echo sample j * hop."""
    net = SignalCRNN(1, 1, conv_channels=(1, 1), kernel_sizes=(5, 3), strides=(3, 2),
                     gru_units=0, dropout=0.0).eval()
    with torch.no_grad():
        for conv in net.convs:
            conv.weight.zero_()
            conv.weight[0, 0, conv.kernel_size[0] // 2] = 1.0
        net.out.weight.fill_(1.0)
        net.out.bias.zero_()
    for j in (0, 1, 7, 16):
        x = torch.zeros(1, 1, 100)
        x[0, 0, j * 6] = 1.0
        with torch.no_grad():
            y = net(x)[0, 0]
        assert int(torch.argmax(y)) == j and float(y[j]) > 0


@pytest.mark.parametrize("make", [
    lambda: FCLSTM(5, 2, bidirectional=True),
    lambda: FCLSTM(5, 2),
    lambda: SignalCRNN(5, 2, conv_channels=(4, 4), kernel_sizes=(5, 3), strides=(2, 2),
                       gru_units=4),
    lambda: SignalCRNN(5, 2, conv_channels=(4, 4), kernel_sizes=(5, 3), strides=(2, 2),
                       gru_units=0),
])
def test_batched_item_equals_item_alone_and_padding_is_zero(make):
    torch.manual_seed(0)
    net = make().eval()
    x = torch.randn(3, 5, 40)
    lengths = torch.tensor([40, 23, 9])
    with torch.no_grad():
        batched = net(x, lengths)
        hop = net.hop_samples
        for b, n in enumerate(lengths.tolist()):
            alone = net(x[b:b + 1, :, :n])
            frames = -(-n // hop)
            torch.testing.assert_close(batched[b:b + 1, :, :frames], alone, atol=1e-5, rtol=1e-5)
            assert torch.all(batched[b, :, frames:] == 0)


def test_fclstm_is_causal_when_unidirectional():
    torch.manual_seed(1)
    net = FCLSTM(4, 1).eval()
    x = torch.randn(1, 4, 30)
    y = net(x)
    x2 = x.clone()
    x2[:, :, 20:] = torch.randn(1, 4, 10)
    y2 = net(x2)
    torch.testing.assert_close(y[..., :20], y2[..., :20])
    assert not torch.allclose(y[..., 20:], y2[..., 20:])


def test_fclstm_has_the_papers_sizes_and_forget_bias_and_output_bias():
    net = FCLSTM(37, 1, output_bias=-3.0)
    assert net.fc.out_features == 14 and net.lstm.hidden_size == 14
    assert net.dropout.p == 0.5 and not net.lstm.bidirectional
    b = net.lstm.bias_ih_l0 + net.lstm.bias_hh_l0  # gate order i, f, g, o
    assert torch.all(b[14:28] == 1.0) and torch.all(b[:14] == 0) and torch.all(b[28:] == 0)
    assert torch.all(net.out.bias == -3.0)
    assert net.hop_samples == 1 and net.output_frames(700) == 700


def test_fclstm_learns_a_feature_rule_with_bce():
    """A step is an event when feature 0 of the PREVIOUS step was high (needs the recurrence)."""
    torch.manual_seed(2)
    net = FCLSTM(3, 1, dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _ in range(300):
        x = torch.randn(16, 3, 25)
        target = torch.zeros(16, 1, 25)
        target[:, 0, 1:] = (x[:, 0, :-1] > 1.0).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.randn(64, 3, 25)
    target = torch.zeros(64, 1, 25)
    target[:, 0, 1:] = (x[:, 0, :-1] > 1.0).float()
    pred = (net.eval()(x) > 0).float()
    assert float((pred == target).float().mean()) > 0.97


@pytest.mark.parametrize("call, match", [
    (lambda: SignalCRNN(1, 1)(torch.zeros(1, 2, 10)), r"`x` must have 1 channels"),
    (lambda: SignalCRNN(1, 1)(torch.zeros(1, 10)), r"\(batch, channel, time\)"),
    (lambda: SignalCRNN(1, 1)(torch.zeros(1, 1, 10, dtype=torch.int64)), "floating-point"),
    (lambda: SignalCRNN(1, 1)(torch.zeros(2, 1, 10), torch.tensor([3, 11])), "lengths"),
    (lambda: SignalCRNN(1, 1, kernel_sizes=(4, 9, 5)), "must be odd"),
    (lambda: SignalCRNN(1, 1, strides=(3, 2)), "equal length"),
    (lambda: SignalCRNN(1, 1, dropout=1.0), r"`dropout` must be in \[0, 1\)"),
    (lambda: FCLSTM(0), r"`n_features` must be >= 1"),
    (lambda: FCLSTM(3)(torch.zeros(1, 4, 5)), r"`x` must have 3 channels"),
])
def test_validation_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("name, args, shape", [
    ("signal-crnn", {"n_channels": 1, "n_classes": 1, "strides": [3, 2, 3, 1],
                     "kernel_sizes": [9, 9, 9, 5], "conv_channels": [16, 32, 32, 32],
                     "gru_units": 0}, (2, 1, 3600)),
    ("fc-lstm", {"n_features": 37, "n_classes": 1}, (2, 37, 50)),
])
def test_models_rebuild_from_their_registry_name_and_args(name, args, shape):
    from softloc.models.build import build_model, model_spec

    torch.manual_seed(3)
    net = build_model(name, **args).eval()
    spec_name, spec_args = model_spec(net)
    again = build_model(spec_name, **spec_args).eval()
    again.load_state_dict(net.state_dict())
    x = torch.randn(*shape)
    with torch.no_grad():
        torch.testing.assert_close(again(x), net(x))


def test_sign_invariant_network_gives_the_same_logits_for_a_flipped_signal():
    torch.manual_seed(0)
    net = SignalCRNN(1, 1, conv_channels=(4, 4), kernel_sizes=(5, 3), strides=(3, 2),
                     gru_units=3, sign_invariant=True).eval()
    x = torch.randn(2, 1, 120)
    with torch.no_grad():
        assert torch.allclose(net(x), net(-x), atol=1e-6)
    plain = SignalCRNN(1, 1, conv_channels=(4, 4), kernel_sizes=(5, 3), strides=(3, 2),
                       gru_units=3).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(x), plain(-x), atol=1e-3)


def test_framed_input_gives_the_logits_of_the_raw_signal():
    torch.manual_seed(1)
    raw = SignalCRNN(2, 1, conv_channels=(4, 4), kernel_sizes=(5, 3), strides=(3, 2),
                     gru_units=3).eval()
    framed = SignalCRNN(2, 1, conv_channels=(4, 4), kernel_sizes=(5, 3), strides=(3, 2),
                        gru_units=3, framed=True).eval()
    framed.load_state_dict(raw.state_dict())
    x = torch.randn(3, 2, 60)  # 10 frames of 6 samples
    # framed[b, c * 6 + k, j] = x[b, c, j * 6 + k]
    xf = x.reshape(3, 2, 10, 6).transpose(2, 3).reshape(3, 12, 10)
    lengths = torch.tensor([10, 7, 4])
    with torch.no_grad():
        assert torch.allclose(framed(xf, lengths), raw(x, lengths * 6), atol=1e-6)


def test_sensor_spec_builds_the_preset_networks_and_checks_the_frame_hop():
    from dataclasses import replace

    from softloc.config import load_preset
    from softloc.models.build import model_from_config, model_spec
    from softloc.models.heads import prior_output_bias
    from softloc.models.sensor import sensor_spec

    ecg = replace(load_preset("ecg"), classes=("beat",))
    net = model_from_config(ecg)
    name, args = model_spec(net)
    assert name == "signal-crnn" and args["framed"] and net.hop_samples == 18
    assert args["output_bias"] == pytest.approx(prior_output_bias(200, 1e-5))  # 10 s at 20/s
    puffs = replace(load_preset("puffs"), classes=("puff",))
    assert model_spec(model_from_config(puffs))[0] == "fc-lstm"
    bad = replace(ecg, model=replace(ecg.model, args=dict(ecg.model.args, strides=[3, 2, 1])))
    with pytest.raises(ValueError, match=r"features.hop_length.*\(18 samples per frame\).*6"):
        sensor_spec(bad)
    fixed = replace(ecg, model=replace(ecg.model, args={"n_classes": 2}))
    with pytest.raises(ValueError, match="must not set \\['n_classes'\\]"):
        sensor_spec(fixed)
