"""models.harmonic: the mel -> semitone interpolation, the harmonic stacking, LoCo eq. 15 at
initialisation, one detector shared by all keys, rebuilding from a model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softloc.features import hz_to_mel
from softloc.models.build import build_model, model_spec
from softloc.models.harmonic import HarmonicKeyNet, semitone_interpolation


def test_interpolation_matches_a_loop_over_band_centres():
    n_mels, f_min, f_max = 40, 30.0, 8000.0
    pitches = np.linspace(10, 130, 97)
    w = semitone_interpolation(n_mels=n_mels, f_min_hz=f_min, f_max_hz=f_max, pitches=pitches)
    centres = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)[1:-1]
    for row, p in zip(w, pitches, strict=True):
        m = hz_to_mel(440 * 2 ** ((p - 69) / 12))
        expected = np.zeros(n_mels)
        if centres[0] <= m <= centres[-1]:
            j = min(np.searchsorted(centres, m, side="right") - 1, n_mels - 2)
            a = (m - centres[j]) / (centres[j + 1] - centres[j])
            expected[j], expected[j + 1] = 1 - a, a
        np.testing.assert_allclose(row, expected, atol=1e-9)


def _net(**kw):
    args = dict(n_mels=64, f_min_hz=30.0, f_max_hz=8000.0, n_classes=12, lowest_pitch=48,
                conv_channels=(4,), key_channels=6, temporal_layers=2, output_bias=-4.2)
    args.update(kw)
    return HarmonicKeyNet(**args)


def test_initial_logits_are_the_eq15_bias_and_gradients_reach_every_layer():
    net = _net()
    x = torch.rand(3, 64, 20)
    logits = net(x, torch.tensor([20, 15, 9]))
    assert logits.shape == (3, 12, 20)
    torch.testing.assert_close(logits, torch.full_like(logits, -4.2))
    logits.sum().backward()
    assert net.readout.weight.grad.abs().sum() > 0  # the zero read-out still learns
    net.readout.weight.data.normal_()
    net.zero_grad()
    net(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in net.named_parameters()
               if n != "key_bias")


def test_keys_share_one_detector():
    """Two keys whose stacked harmonic inputs are equal get equal logits (no key embedding)."""
    torch.manual_seed(0)
    net = _net(harmonics=(1.0,), lowest_pitch=60, n_classes=8, output_bias=0.0)
    net.readout.weight.data.normal_()
    # grid bin j := mel band j (one bin per key), so the input sets each key's grid directly
    assert net.grid_weights.shape == (8, 64)
    net.grid_weights = torch.eye(8, 64)
    x = torch.rand(1, 64, 12) + 0.1
    x[:, 1:4] = x[:, 4:7]  # grid bins 1..3 equal bins 4..6 (keys 2 and 5 with neighbours)
    logits = net(x)
    torch.testing.assert_close(logits[0, 2], logits[0, 5])
    assert not torch.allclose(logits[0, 0], logits[0, 5])


def test_rebuilt_from_name_and_args():
    net = build_model("harmonic-key", n_mels=64, f_min_hz=30.0, f_max_hz=8000.0, n_classes=12,
                      lowest_pitch=48, conv_channels=[4], key_channels=6, output_bias=-3.0)
    name, args = model_spec(net)
    again = build_model(name, **args)
    again.load_state_dict(net.state_dict())
    x = torch.rand(2, 64, 10)
    torch.testing.assert_close(again(x), net(x))
    with pytest.raises(ValueError, match="HarmonicKeyNet"):
        HarmonicKeyNet(n_mels=64, f_min_hz=100.0, f_max_hz=50.0)


def test_spec_of_a_piano_config():
    from softloc.config import apply_overrides, load_preset
    from softloc.models.harmonic import harmonic_key_spec

    cfg = load_preset("piano-loco")
    name, args = harmonic_key_spec(cfg)
    assert (name, args["n_mels"], args["n_classes"], args["lowest_pitch"]) == \
        ("harmonic-key", cfg.features.n_mels, 88, 21)
    net = build_model(name, **args)
    assert net(torch.rand(1, cfg.features.n_mels, 5)).shape == (1, 88, 5)
    with pytest.raises(ValueError, match="consecutive MIDI"):
        harmonic_key_spec(apply_overrides(cfg, ["classes=[KD, SD]"]))


def test_a_run_config_naming_harmonic_key_builds_it():
    from softloc.config import apply_overrides, load_preset
    from softloc.models import model_from_config
    from softloc.models.harmonic import HarmonicKeyNet

    cfg = apply_overrides(load_preset("piano-loco"), ["model.name=harmonic-key",
                                                      "model.args={key_channels: 8}"])
    net = model_from_config(cfg)
    assert isinstance(net, HarmonicKeyNet)
    assert net(torch.rand(2, cfg.features.n_mels, 7)).shape == (2, 88, 7)
    # the config's args reach the network; a crnn config still builds a CRNN
    assert any(p.shape[0] == 8 for p in net.parameters() if p.dim() > 1)
    assert not isinstance(model_from_config(apply_overrides(cfg, ["model.name=crnn"])),
                          HarmonicKeyNet)
    with pytest.raises(ValueError, match="model.name"):
        apply_overrides(cfg, ["model.name=harmonic"])


def _input_support(net, key, n_bands, frames=16):
    """Mel bands whose values move key ``key``'s logits (grid bin j := mel band j)."""
    x = (torch.rand(1, n_bands, frames) + 0.5).requires_grad_(True)
    net(x)[0, key].sum().backward()
    return set(torch.nonzero(x.grad.abs().sum(dim=(0, 2)) > 0).flatten().tolist())


@pytest.mark.parametrize("context", [(), (12,), (-7, 12)])
def test_key_context_reads_exactly_the_keys_at_its_offsets(context):
    """Without layer 6 a key sees its grid neighbours only (one 3-wide conv); with it, also the
    neighbourhoods of the keys at its offsets that exist on the keyboard, and nothing else."""
    torch.manual_seed(1)
    n = 24
    net = _net(harmonics=(1.0,), lowest_pitch=60, n_classes=n, output_bias=0.0,
               key_context=context, context_channels=3)
    net.readout.weight.data.normal_()
    net.grid_weights = torch.eye(n, 64)
    for key in (2, 10, 20):
        expected = set()
        for o in (0, *context):
            if 0 <= key + o < n:  # keys beyond the keyboard read zeros
                expected |= {j for j in (key + o - 1, key + o, key + o + 1) if 0 <= j < n}
        assert _input_support(net, key, 64) == expected


def test_key_context_keeps_the_eq15_start_and_rebuilds_from_its_file_args():
    net = build_model("harmonic-key", n_mels=64, f_min_hz=30.0, f_max_hz=8000.0, n_classes=12,
                      key_context=[-12, 7], context_channels=2, output_bias=-4.2)
    x = torch.rand(2, 64, 9)
    torch.testing.assert_close(net(x), torch.full((2, 12, 9), -4.2))
    net.readout.weight.data.normal_()
    name, args = model_spec(net)
    again = build_model(name, **args)
    again.load_state_dict(net.state_dict())
    torch.testing.assert_close(again(x), net(x))


@pytest.mark.parametrize("bad", [[0], [12, 12], [1.5], [True]])
def test_key_context_rejects_zero_repeated_or_non_integer_offsets(bad):
    with pytest.raises(ValueError, match="key_context"):
        _net(key_context=bad)
