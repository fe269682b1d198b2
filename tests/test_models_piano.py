"""softloc.models.piano: the papers' piano CRNNs, the piano front end, the pitch-band variant."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softloc.features import mel_filterbank
from softloc.models.build import build_model, model_spec
from softloc.models.piano import (
    PIANO_FRAME_RATE_HZ,
    PIANO_FRONT_END,
    PIANO_N_KEYS,
    PitchBandCRNN,
    piano_crnn,
    piano_crnn_args,
)


def _lstm_params(inp: int, hidden: int) -> int:
    return 4 * hidden * (inp + hidden) + 8 * hidden  # PyTorch: weights + two bias vectors


def _expected_params(filters, lstm, hidden, n_out=88):
    """Parameter count of the fact sheet's architecture, counted by hand."""
    total, c_in = 0, 1
    for f in filters:
        total += f * c_in * 3 * 4 + f  # [3 x 4] conv + bias
        c_in = f
    # 768 features pooled by 3 then 2^8: one bin left, so the LSTM sees `filters[-1]` values
    total += _lstm_params(filters[-1], lstm)
    return total + lstm * hidden + hidden + hidden * n_out + n_out


@pytest.mark.parametrize("variant, filters, lstm, hidden, bias", [
    ("loco", [16, 16, 32, 32, 64, 64, 64, 64, 64], 64, 32, -7.4911),
    ("softloc", [32, 32, 64, 64, 64, 64, 64, 128, 128], 128, 96, -6.7977),
])
def test_papers_architectures_and_output_bias(variant, filters, lstm, hidden, bias):
    net = piano_crnn(variant)
    assert sum(p.numel() for p in net.parameters()) == _expected_params(filters, lstm, hidden)
    assert net.lstm.input_size == filters[-1]
    # fact sheet §3.1: b2 = -7.4911 ([L], w = 0.8, T = 400) and -6.7977 ([S], exponent 2/T)
    assert torch.allclose(net.out.bias, torch.full((88,), bias), atol=1e-4)
    x = torch.rand(2, 384, 37) + 1e-3
    logits = net(x)
    assert logits.shape == (2, PIANO_N_KEYS, 37)
    assert logits.dtype == torch.float32 and bool(torch.isfinite(logits).all())


def test_front_end_is_the_lowest_384_of_550_mel_bands():
    """Independent construction: 550 triangles over 0-22.05 kHz, keep the first 384."""
    sr, nfft = 44100, 8192

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges_mel = np.linspace(0.0, mel(sr / 2), 552)
    edges_hz = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.arange(nfft // 2 + 1) * sr / nfft
    rows = []
    for j in range(384):
        lo, c, hi = edges_hz[j], edges_hz[j + 1], edges_hz[j + 2]
        rows.append(np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None))
    expected = np.array(rows)
    got = mel_filterbank(PIANO_FRONT_END).numpy()
    assert got.shape == (384, 4097)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert PIANO_FRONT_END.n_features == 768 and PIANO_FRONT_END.hop_length == 220
    assert PIANO_FRAME_RATE_HZ == pytest.approx(44100 / 220)


def test_input_scale_reproduces_the_official_20log10_feature_scale():
    torch.manual_seed(0)
    a = piano_crnn("loco", input_scale=2.0)
    b = piano_crnn("loco", input_scale=1.0)
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 384, 20) + 1e-3
    captured = {}

    def keep(name):
        def hook(module, inputs, output):
            captured[name] = inputs[0]  # returns None: the output is left alone
        return hook

    a.convs[0].register_forward_hook(keep("a"))
    b.convs[0].register_forward_hook(keep("b"))
    a(x)
    b(x)
    assert torch.allclose(captured["a"], 2.0 * captured["b"])


def test_lengths_mask_padding_and_time_is_not_pooled():
    net = piano_crnn("loco")
    x = torch.rand(2, 384, 60) + 1e-3
    full = net(x[:1, :, :40])
    padded = torch.cat([x[:1, :, :40], torch.zeros(1, 384, 20)], dim=2)
    out = net(torch.cat([padded, x[1:]]), torch.tensor([40, 60]))
    assert out.shape == (2, 88, 60)
    torch.testing.assert_close(out[0, :, :40], full[0], atol=1e-5, rtol=1e-5)


def test_pitch_band_variant_stacks_independent_band_networks():
    args = piano_crnn_args("loco")
    net = PitchBandCRNN(band_size=11, **{k: v for k, v in args.items() if k != "n_classes"})
    assert [band.n_classes for band in net.bands] == [11] * 8
    x = torch.rand(2, 384, 25) + 1e-3
    out = net(x)
    assert out.shape == (2, 88, 25)
    for b, band in enumerate(net.bands):
        torch.testing.assert_close(out[:, 11 * b: 11 * (b + 1)], band(x))
    # the bands share nothing: band 0's outputs do not depend on band 1's weights
    out[:, :11].sum().backward()
    assert all(p.grad is None or not bool(p.grad.any()) for p in net.bands[1].parameters())
    ten = PitchBandCRNN(band_size=10, **{k: v for k, v in args.items() if k != "n_classes"})
    assert [band.n_classes for band in ten.bands] == [10] * 8 + [8]
    with pytest.raises(ValueError, match="band_size"):
        PitchBandCRNN(band_size=0, **{k: v for k, v in args.items() if k != "n_classes"})


def test_args_build_a_savable_crnn_and_reject_bad_options():
    args = piano_crnn_args("softloc", window_frames=301, prior_omega=0.5)
    net = build_model("crnn", **args)
    name, spec = model_spec(net)
    assert name == "crnn" and spec["n_classes"] == 88 and spec["n_mels"] == 384
    # Pr(no event in 301 frames) = 0.5 at initialisation: (1 - sigmoid(b))^301 = 0.5
    p0 = torch.sigmoid(torch.tensor(spec["output_bias"], dtype=torch.float64))
    assert float((1 - p0) ** 301) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="variant"):
        piano_crnn_args("onsets-and-frames")
    with pytest.raises(ValueError, match="n_keys"):
        piano_crnn_args("loco", n_keys=0)
