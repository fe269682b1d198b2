"""Tests for softloc.losses.registry: every name builds, says what it needs, and computes exactly
the functional loss it names (asteroid-style agreement and shape-rejection tests)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from softloc.config import LossConfig
from softloc.losses import (
    LOSS_NAMES,
    AlphaSchedule,
    EventLoss,
    bce_loss,
    bootstrap_loss,
    build_loss,
    canonical_loss_name,
    loco_loss,
    one_sided_loss,
    registry,
    smoothed_targets,
    soft_localization_loss,
    softloc_loss,
    trusts_timestamps,
)

RATE = 100.0  # frames per second: softness 50 ms = 5 frames
STEPS = 1000
REQUIRES = {
    "loco": {"counts"},
    "softloc": {"targets", "counts"},
    "sll": {"targets"},
    "mc": {"counts"},
    "bce": {"targets"},
    "smoothed-bce": {"targets"},
    "one-sided": {"targets"},
    "bootstrap": {"targets"},
}
DECODERS = {"threshold", "peaks", "peaks-normalized", "mass-peaks"}


def _config(name: str, **changes) -> LossConfig:
    base = LossConfig(name=name, k_max=6, softness_ms=50.0, alpha_min=0.2, alpha_max=0.9,
                      alpha_start_step=100, alpha_ramp_steps=400, reduction="classes",
                      alpha_start_fraction=None, alpha_ramp_fraction=None)
    return dataclasses.replace(base, **changes)


def _batch(b=3, c=2, t=40, dtype=torch.float64):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(b, c, t, dtype=dtype, generator=gen) - 2.0
    targets = (torch.rand(b, c, t, generator=gen) < 0.1).to(dtype)
    lengths = torch.tensor([t, t - 7, 5][:b])
    mask = torch.arange(t)[None, :] < lengths[:, None]
    counts = (targets * mask[:, None, :]).sum(-1).long()
    return logits, targets, counts, lengths


def _labels(name: str, targets, counts) -> dict:
    return {k: v for k, v in (("targets", targets), ("counts", counts)) if k in REQUIRES[name]}


def test_names_are_canonical_and_underscores_normalise():
    assert LOSS_NAMES == tuple(REQUIRES)
    assert canonical_loss_name("one_sided") == "one-sided"
    assert canonical_loss_name(" Smoothed_BCE ") == "smoothed-bce"
    with pytest.raises(ValueError, match=r"build_loss: `name` must be one of \('loco'"):
        canonical_loss_name("focal")


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_name_builds_with_the_right_requirements_and_a_decoder(name):
    loss = build_loss(_config(name), frame_rate=RATE, max_steps=STEPS)
    assert isinstance(loss, EventLoss) and isinstance(loss, torch.nn.Module)
    assert loss.name == name
    assert set(loss.requires) == REQUIRES[name]
    assert loss.requires <= {"targets", "counts"}
    assert loss.decoder in DECODERS
    assert loss.description and name in repr(loss)


@pytest.mark.parametrize("step", [0, 250, 900])
@pytest.mark.parametrize("reduction", ["classes", "mean"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_registry_module_equals_the_functional_call(name, reduction, step):
    logits, targets, counts, lengths = _batch()
    loss = build_loss(_config(name, reduction=reduction), frame_rate=RATE, max_steps=STEPS)
    got = loss(logits, lengths=lengths, step=step, **_labels(name, targets, counts))
    sigma, p = 5.0, torch.sigmoid(logits)
    alpha = AlphaSchedule(start=100, ramp=400, floor=0.2, ceiling=0.9)(step)
    red = {"classes": "classes", "mean": "mean"}[reduction]
    want = {
        "loco": lambda: loco_loss(logits, counts, 6, lengths=lengths, logits=True),
        "mc": lambda: loco_loss(logits, counts, 6, lengths=lengths, logits=True),
        "softloc": lambda: softloc_loss(logits, targets, sigma, alpha, 6, lengths=lengths,
                                        counts=counts, reduction=red, logits=True),
        "sll": lambda: soft_localization_loss(p, targets, sigma, lengths=lengths, reduction=red)
        if red == "classes"
        else softloc_loss(logits, targets, sigma, 0.0, 6, lengths=lengths, reduction=red,
                          logits=True),
        "bce": lambda: bce_loss(logits, targets, lengths=lengths, reduction=red, logits=True),
        "smoothed-bce": lambda: bce_loss(
            logits, smoothed_targets(targets, sigma, lengths=lengths, normalize="peak"),
            lengths=lengths, reduction=red, logits=True),
        "one-sided": lambda: one_sided_loss(p, targets, sigma, lengths=lengths, reduction=red),
        "bootstrap": lambda: bootstrap_loss(logits, targets, beta=0.95, lengths=lengths,
                                            reduction=red, logits=True),
    }[name]()  # fmt: skip
    assert got.shape == ()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_sll_mean_reduction_is_the_row_mean_of_the_time_sums():
    logits, targets, _, lengths = _batch()
    loss = build_loss(_config("sll", reduction="mean"), frame_rate=RATE, max_steps=STEPS)
    elem = soft_localization_loss(torch.sigmoid(logits), targets, 5.0, lengths=lengths,
                                  reduction="none")
    torch.testing.assert_close(loss(logits, targets=targets, lengths=lengths),
                               elem.sum(-1).mean())


def _scipy_noise_aware_sll_rows(probs, targets, lengths, sigma, nu):
    """Σ_t (Φ_σ∗(Φ_ν∗p) − Φ_σ∗y)² per row with scipy, zero padding, masked beyond lengths."""
    p, y = probs.numpy().copy(), targets.numpy().copy()
    mask = np.arange(p.shape[-1])[None, :] < lengths.numpy()[:, None]
    p, y = p * mask[:, None], y * mask[:, None]
    if nu > 0:
        p = gaussian_filter1d(p, nu, axis=-1, mode="constant", truncate=4.0) * mask[:, None]
    d = (gaussian_filter1d(p, sigma, axis=-1, mode="constant", truncate=4.0)
         - gaussian_filter1d(y, sigma, axis=-1, mode="constant", truncate=4.0))
    return torch.from_numpy((d**2 * mask[:, None]).sum(-1))


@pytest.mark.parametrize("name", ["sll", "softloc"])
@pytest.mark.parametrize("noise_ms", [0.0, 30.0, 80.0])
def test_label_noise_filters_the_predictions_once_more_as_scipy(name, noise_ms):
    logits, targets, counts, lengths = _batch(t=60)
    config = _config(name, label_noise_ms=noise_ms, alpha_min=0.3, alpha_max=0.3)
    loss = build_loss(config, frame_rate=RATE, max_steps=STEPS)
    got = loss(logits, lengths=lengths, step=0, **_labels(name, targets, counts))
    rows = _scipy_noise_aware_sll_rows(torch.sigmoid(logits), targets, lengths, 5.0,
                                       noise_ms * RATE / 1000)
    if name == "sll":
        want = rows.sum() / logits.shape[1]
    else:
        mc = loco_loss(logits, counts, 6, lengths=lengths, logits=True)
        want = 0.7 * rows.sum() / logits.shape[1] + 0.3 * mc
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_label_noise_makes_sharp_peaks_optimal_for_the_expected_noisy_labels():
    # Under N(0, ν²) timestamp noise the labels are Φ_ν∗y on average. The paper's SLL is
    # minimised by predictions spread like them; the noise-aware SLL by the sharp events.
    t, nu_ms = 200, 80.0
    sharp = torch.zeros(1, 1, t, dtype=torch.float64)
    sharp[0, 0, [40, 100, 160]] = 1.0
    spread = torch.from_numpy(
        gaussian_filter1d(sharp.numpy(), nu_ms * RATE / 1000, axis=-1, mode="constant"))
    logit = lambda p: torch.logit(p.clamp(1e-12, 1 - 1e-12))  # noqa: E731
    for noise_ms, best, worse in [(0.0, spread, sharp), (nu_ms, sharp, spread)]:
        loss = build_loss(_config("sll", label_noise_ms=noise_ms), frame_rate=RATE,
                          max_steps=STEPS)
        at_best = loss(logit(best), targets=spread)
        at_worse = loss(logit(worse), targets=spread)
        assert float(at_best) < 1e-6 * float(at_worse), (noise_ms, at_best, at_worse)


def test_label_noise_must_be_finite_and_non_negative():
    for bad in (-1.0, math.inf):
        with pytest.raises(ValueError, match="loss.label_noise_ms"):
            LossConfig(label_noise_ms=bad)
    fields = dataclasses.asdict(_config("softloc"))
    fields["label_noise_ms"] = -5.0
    with pytest.raises(ValueError, match="`label_noise_ms` must be >= 0"):
        build_loss(SimpleNamespace(**fields), frame_rate=RATE, max_steps=STEPS)


def test_softloc_schedule_follows_the_step_and_fractions_of_max_steps():
    logits, targets, counts, lengths = _batch()
    kw = dict(targets=targets, counts=counts, lengths=lengths)

    def value(alpha):
        return softloc_loss(logits, targets, 5.0, alpha, 6, lengths=lengths, counts=counts,
                            logits=True)

    loss = build_loss(_config("softloc"), frame_rate=RATE, max_steps=STEPS)
    torch.testing.assert_close(loss(logits, step=0, **kw), value(0.2))
    torch.testing.assert_close(loss(logits, step=400, **kw), value(0.75))
    torch.testing.assert_close(loss(logits, step=10_000, **kw), value(0.9))
    # The ramp given as fractions of the run (the noise study's rescaled drum schedule).
    frac = _config("softloc", alpha_start_fraction=0.2, alpha_ramp_fraction=2 / 3)
    loss = build_loss(frac, frame_rate=RATE, max_steps=300)  # start 60, ramp 200
    torch.testing.assert_close(loss(logits, step=160, **kw), value(0.5))


def test_optional_settings_distance_beta_and_limits_of_the_softness():
    logits, targets, counts, lengths = _batch()
    log = build_loss(_config("softloc", softness_ms=0.0, distance="log"), frame_rate=RATE,
                     max_steps=STEPS)
    torch.testing.assert_close(
        log(logits, targets=targets, counts=counts, lengths=lengths, step=0),
        softloc_loss(logits, targets, 0.0, 0.2, 6, lengths=lengths, counts=counts,
                     distance="log", logits=True),
    )
    # softness inf: the SLL term vanishes, alpha * L_MC is left (SoftLoc eq. 6)
    inf = build_loss(_config("softloc", softness_ms=math.inf), frame_rate=RATE, max_steps=STEPS)
    got = inf(logits, targets=targets, counts=counts, lengths=lengths, step=0)
    torch.testing.assert_close(got, 0.2 * loco_loss(logits, counts, 6, lengths=lengths,
                                                     logits=True))
    beta = build_loss(_config("bootstrap", softness_ms=0.0, bootstrap_beta=0.5),
                      frame_rate=RATE, max_steps=STEPS)
    torch.testing.assert_close(
        beta(logits, targets=targets, lengths=lengths),
        bootstrap_loss(logits, targets, beta=0.5, lengths=lengths, reduction="classes",
                       logits=True),
    )


def test_per_item_softness_mixes_count_only_items():
    logits, targets, counts, lengths = _batch()
    sigma = torch.tensor([5.0, math.inf, 2.0], dtype=torch.float64)
    loss = build_loss(_config("softloc"), frame_rate=RATE, max_steps=STEPS)
    assert loss.optional == {"sigma_frames"}
    got = loss(logits, targets=targets, counts=counts, lengths=lengths, step=400,
               sigma_frames=sigma)
    want = softloc_loss(logits, targets, sigma, 0.75, 6, lengths=lengths, counts=counts,
                        logits=True)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradients_flow_in_float32(name):
    logits, targets, counts, lengths = _batch(dtype=torch.float32)
    logits.requires_grad_()
    loss = build_loss(_config(name), frame_rate=RATE, max_steps=STEPS)
    value = loss(logits, lengths=lengths, step=300, **_labels(name, targets, counts))
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    assert (logits.grad[2, :, 5:] == 0).all()  # nothing flows from padding


def _assert_rejects_bad_shapes(loss: EventLoss) -> None:
    """One helper for every loss: each malformed input raises, naming the argument."""
    logits, targets, counts, lengths = _batch()
    labels = _labels(loss.name, targets, counts)
    fn = rf"EventLoss\('{loss.name}'\)"
    with pytest.raises(ValueError, match=rf"{fn}: `probs` must have shape \(batch, class, time\)"):
        loss(logits[0], **labels)
    with pytest.raises(TypeError, match=rf"{fn}: `probs` must be a torch.Tensor"):
        loss(logits.tolist(), **labels)
    with pytest.raises(ValueError, match=rf"{fn}: `lengths` must have shape \(batch,\)"):
        loss(logits, lengths=lengths[:2], **labels)
    with pytest.raises(TypeError, match=rf"{fn}: `step` must be an int"):
        loss(logits, step=1.5, **labels)
    for key in loss.requires:
        bad = dict(labels)
        bad[key] = labels[key][:, :1]
        with pytest.raises(ValueError, match=rf"{fn}: `{key}` must have"):
            loss(logits, **bad)
        missing = {k: v for k, v in labels.items() if k != key}
        with pytest.raises(ValueError, match=rf"{fn}: needs `{key}`"):
            loss(logits, **missing)
    for key in {"targets", "counts"} - loss.requires:
        extra = dict(labels, **{key: {"targets": targets, "counts": counts}[key]})
        with pytest.raises(ValueError, match=rf"{fn}: got `{key}`, which this loss does not use"):
            loss(logits, **extra)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_shape_rejections(name):
    _assert_rejects_bad_shapes(build_loss(_config(name), frame_rate=RATE, max_steps=STEPS))


@pytest.mark.parametrize(("name", "at_zero", "when_soft"), [
    ("loco", False, False), ("mc", False, False),  # never read a timestamp
    ("softloc", True, False),  # softness > 0 declares the timestamps uncertain
    ("sll", True, True), ("bce", True, True), ("smoothed_bce", True, True),
    ("one-sided", True, True), ("bootstrap", True, True),
])
def test_trusts_timestamps_only_for_losses_that_read_them_as_exact(name, at_zero, when_soft):
    assert (trusts_timestamps(name, 0.0), trusts_timestamps(name, 50.0)) == (at_zero, when_soft)


def test_trusts_timestamps_rejects_an_unknown_loss():
    with pytest.raises(ValueError, match="`name` must be one of"):
        trusts_timestamps("hinge", 0.0)


def test_values_are_validated_once_per_call(monkeypatch):
    # lengths and counts: one reduction each, i.e. one host sync each; the CPU float32 logits
    # are read by numpy (no torch sync), so their check is counted by its calls.
    logits, targets, counts, lengths = _batch()
    loss = build_loss(_config("loco"), frame_rate=RATE, max_steps=STEPS)
    calls, checks = [], []
    for name in ("__bool__", "__float__", "item", "tolist"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda t, *a, _o=original: calls.append(1)
                            or _o(t, *a))  # fmt: skip
    check = registry.check_input
    monkeypatch.setattr(registry, "check_input", lambda *a: checks.append(1) or check(*a))
    loss(logits, counts=counts, lengths=lengths)
    assert (len(calls), len(checks)) == (2, 1)
    with pytest.raises(ValueError, match=r"`counts` must be >= 0"):
        loss(logits, counts=-counts, lengths=lengths)


@pytest.mark.parametrize(
    "changes, kwargs, exc, match",
    [
        ({"name": "softloc"}, {"frame_rate": 0.0}, ValueError, r"`frame_rate` must be > 0"),
        ({"name": "softloc"}, {"max_steps": 0}, ValueError, r"`max_steps` must be >= 1"),
        ({"k_max": 0}, {}, ValueError, r"build_loss\('softloc'\): `k_max` must be >= 1"),
        ({"softness_ms": -1.0}, {}, ValueError, r"`softness_ms` must be >= 0"),
        ({"alpha_ramp_steps": 0}, {}, ValueError, r"`alpha_ramp_steps` must be >= 1"),
        ({"alpha_min": 0.95}, {}, ValueError, r"need alpha_min <= alpha_max"),
        (
            {"name": "one-sided", "softness_ms": math.inf},
            {},
            ValueError,
            r"build_loss\('one-sided'\): `sigma` must be a finite number of frames",
        ),
    ],
)
def test_build_loss_validation(changes, kwargs, exc, match):
    fields = dataclasses.asdict(_config("softloc"))
    fields.update(changes)
    with pytest.raises(exc, match=match):
        # a namespace: LossConfig itself rejects these values when it is built
        build_loss(SimpleNamespace(**fields), **{"frame_rate": RATE, "max_steps": STEPS, **kwargs})


def test_docstring_examples_run():
    import doctest

    import softloc.losses.registry

    result = doctest.testmod(softloc.losses.registry)
    assert result.failed == 0 and result.attempted >= 2
