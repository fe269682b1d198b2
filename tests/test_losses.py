"""Tests of softloc.losses against independent references (scipy, numpy, enumeration, torch)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import convolve1d, gaussian_filter

from softloc.losses import (
    AlphaSchedule,
    BootstrapLoss,
    FrameBCELoss,
    LoCoLoss,
    OneSidedLoss,
    SoftLocalizationLoss,
    SoftLocLoss,
    bce_loss,
    bootstrap_loss,
    gaussian_kernel,
    loco_loss,
    one_sided_loss,
    smoothed_targets,
    soft_localization_loss,
    softloc_loss,
    softness_ms_to_sigma,
)


def _inputs(b=2, c=3, t=25, *, rate=0.15, dtype=torch.float64, lo=0.02, hi=0.98):
    probs = lo + (hi - lo) * torch.rand(b, c, t, dtype=dtype)
    targets = (torch.rand(b, c, t) < rate).to(dtype)
    return probs, targets


def _np_kernel(sigma, truncate=4.0):
    """scipy's own taps: gaussian_filter of a centred impulse in a vector long enough."""
    radius = int(truncate * sigma + 0.5)
    impulse = np.zeros(2 * radius + 1 + 20)
    impulse[radius + 10] = 1.0
    out = gaussian_filter(impulse, sigma, truncate=truncate) if sigma > 0 else impulse
    return out[10 : 10 + 2 * radius + 1]


def _np_sll(probs, targets, sigma, lengths=None):
    """Direct numpy SLL: zero beyond lengths, filter each row with zero padding, square."""
    p, y = probs.numpy().copy(), targets.numpy().copy()
    if lengths is not None:
        for i, n in enumerate(lengths.tolist()):
            p[i, :, n:] = 0
            y[i, :, n:] = 0
    k = _np_kernel(sigma)
    out = convolve1d(p, k, axis=-1, mode="constant") - convolve1d(y, k, axis=-1, mode="constant")
    out = out**2
    if lengths is not None:
        for i, n in enumerate(lengths.tolist()):
            out[i, :, n:] = 0
    return out


def _brute_force_log_pr(p_row, count, k_max):
    """log Pr(Y = min(count, k_max)) of one row by enumerating all 2^T outcomes (top bin: >=)."""
    total = 0.0
    for outcome in itertools.product((0, 1), repeat=len(p_row)):
        k = sum(outcome)
        hit = k >= k_max if count >= k_max else k == count
        if hit:
            total += math.prod(p if o else 1 - p for p, o in zip(p_row, outcome, strict=True))
    return math.log(total)


# ---------------------------------------------------------------------------------- kernel


@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.3, 0.5, 1.0, 1.7, 3.0, 5.0, 20.0])
def test_gaussian_kernel_taps_equal_scipy_gaussian_filter_of_impulse(sigma):
    kernel = gaussian_kernel(sigma, dtype=torch.float64)
    expected = _np_kernel(sigma)
    assert kernel.shape == (2 * int(4 * sigma + 0.5) + 1,)
    np.testing.assert_allclose(kernel.numpy(), expected, rtol=1e-12, atol=1e-15)
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-12)


def test_gaussian_kernel_truncate_dtype_device():
    kernel = gaussian_kernel(2.0, truncate=2.0, dtype=torch.float32, device="cpu")
    assert kernel.dtype == torch.float32 and kernel.shape == (9,)
    np.testing.assert_allclose(kernel.numpy(), _np_kernel(2.0, truncate=2.0), rtol=1e-6)


def test_gaussian_kernel_zero_sigma_is_impulse():
    assert gaussian_kernel(0.0).tolist() == [1.0]


def test_gaussian_kernel_returns_a_fresh_tensor():
    first = gaussian_kernel(2.0, dtype=torch.float64)
    first.zero_()
    assert float(gaussian_kernel(2.0, dtype=torch.float64).sum()) == pytest.approx(1.0)


def test_softness_ms_to_sigma_piano_setting():
    assert softness_ms_to_sigma(100.0, 200.0) == pytest.approx(20.0)


# ---------------------------------------------------------------------------------- SLL


def test_sll_is_zero_when_predictions_equal_labels():
    _, targets = _inputs()
    for sigma in (0.0, 2.0, 7.5):
        assert float(soft_localization_loss(targets.clone(), targets, sigma)) == 0.0


@pytest.mark.parametrize("t", [30, 2100])  # 2100 > 2048 steps: the long-sequence (conv1d) path
@pytest.mark.parametrize("sigma", [0.0, 0.7, 2.0, 6.0, 40.0])
def test_sll_matches_numpy_convolve1d_reference(sigma, t):
    probs, targets = _inputs(t=t)
    ref = _np_sll(probs, targets, sigma)
    got = soft_localization_loss(probs, targets, sigma, reduction="none")
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-14)
    assert float(soft_localization_loss(probs, targets, sigma)) == pytest.approx(ref.sum() / 3)
    assert float(soft_localization_loss(probs, targets, sigma, reduction="sum")) == pytest.approx(
        ref.sum()
    )
    assert float(soft_localization_loss(probs, targets, sigma, reduction="mean")) == pytest.approx(
        ref.mean()
    )


def test_sll_with_lengths_matches_reference_and_padding_does_not_change_loss():
    probs, targets = _inputs(b=3, t=30)
    lengths = torch.tensor([30, 17, 5])
    got = soft_localization_loss(probs, targets, 3.0, lengths=lengths, reduction="none")
    np.testing.assert_allclose(got.numpy(), _np_sll(probs, targets, 3.0, lengths), atol=1e-14)
    # item 1 alone, unpadded, has the same loss as inside the padded batch
    alone = soft_localization_loss(probs[1:2, :, :17], targets[1:2, :, :17], 3.0, reduction="sum")
    assert float(got[1].sum()) == pytest.approx(float(alone), rel=1e-12)
    mean = soft_localization_loss(probs, targets, 3.0, lengths=lengths, reduction="mean")
    assert float(mean) == pytest.approx(float(got.sum()) / (3 * 52))


def test_sll_tolerates_small_shift_more_than_plain_squared_error():
    targets = torch.zeros(1, 1, 60, dtype=torch.float64)
    targets[0, 0, 30] = 1.0
    shifted = torch.zeros_like(targets)
    shifted[0, 0, 32] = 1.0
    soft = soft_localization_loss(shifted, targets, 5.0, reduction="sum")
    plain = soft_localization_loss(shifted, targets, 0.0, reduction="sum")
    assert float(plain) == pytest.approx(2.0)
    # two Gaussians 2 frames apart: 2 * sum G^2 * (1 - exp(-d^2 / (4 sigma^2))) approximately
    expected = 2 * (1 / (2 * 5.0 * math.sqrt(math.pi))) * (1 - math.exp(-4 / 100))
    assert float(soft) == pytest.approx(expected, rel=1e-3)


def test_sll_per_item_sigma_equals_separate_calls_and_inf_gives_zero():
    probs, targets = _inputs(b=3)
    sigmas = torch.tensor([2.0, math.inf, 0.5])
    got = soft_localization_loss(probs, targets, sigmas, reduction="none")
    for i, s in enumerate([2.0, None, 0.5]):
        if s is None:
            assert float(got[i].abs().sum()) == 0.0
        else:
            ref = soft_localization_loss(probs[i : i + 1], targets[i : i + 1], s, reduction="none")
            torch.testing.assert_close(got[i : i + 1], ref)


def test_sll_log_distance_at_zero_softness_is_stepwise_cross_entropy():
    # SoftLoc eq. 5: with L(d) = -log(1 - |d|) and sigma -> 0 the SLL is the summed frame-wise CE.
    probs, targets = _inputs()
    ce = F.binary_cross_entropy(probs, targets, reduction="sum")
    for sigma in (0.0, 1e-3, 0.1):  # radius int(4 sigma + 0.5) = 0: the filter is the identity
        sll = soft_localization_loss(probs, targets, sigma, distance="log", reduction="sum")
        assert float(sll) == pytest.approx(float(ce), rel=1e-12)


def test_sll_vanishes_with_gradient_as_softness_grows():
    # SoftLoc eq. 6: sigma -> inf makes the SLL and its gradient vanish (like 1 / sigma^2).
    probs, targets = _inputs(t=40)
    values, grads = [], []
    for sigma in (2.0, 50.0, 5000.0):
        p = probs.clone().requires_grad_(True)
        loss = soft_localization_loss(p, targets, sigma)
        loss.backward()
        values.append(float(loss.detach()))
        grads.append(float(p.grad.abs().max()))
    assert values[0] > values[1] > values[2] and values[2] < 1e-5 * values[0]
    assert grads[0] > grads[1] > grads[2] and grads[2] < 1e-4 * grads[0]
    assert float(soft_localization_loss(probs, targets, math.inf)) == 0.0


def test_sll_gradcheck_float64():
    probs, targets = _inputs(b=2, c=2, t=12, lo=0.1, hi=0.9)
    lengths = torch.tensor([12, 7])
    probs.requires_grad_(True)
    for distance in ("squared", "log"):
        assert torch.autograd.gradcheck(
            lambda p, distance=distance: soft_localization_loss(
                p, targets, 1.5, lengths=lengths, distance=distance, reduction="sum"
            ),
            (probs,),
        )
    sigmas = torch.tensor([1.0, math.inf], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: soft_localization_loss(p, targets, sigmas), (probs,))


def test_sll_module_equals_function_and_holds_kernel_buffer():
    probs, targets = _inputs()
    module = SoftLocalizationLoss(3.0, reduction="mean")
    assert "kernel" in dict(module.named_buffers())
    torch.testing.assert_close(module.kernel, gaussian_kernel(3.0, dtype=torch.float64))
    torch.testing.assert_close(
        module(probs, targets), soft_localization_loss(probs, targets, 3.0, reduction="mean")
    )


def test_sll_float32_matches_float64():
    probs, targets = _inputs()
    got = soft_localization_loss(probs.float(), targets.float(), 4.0)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(soft_localization_loss(probs, targets, 4.0)), rel=1e-5)


# ---------------------------------------------------------------------------------- LoCo


@pytest.mark.parametrize("k_max", [1, 2, 3, 6])
def test_loco_loss_equals_brute_force_enumeration(k_max):
    probs, _ = _inputs(b=2, c=2, t=6)
    counts = torch.tensor([[0, 1], [2, 5]])
    got = loco_loss(probs, counts, k_max, reduction="none")
    for b, c in itertools.product(range(2), range(2)):
        ref = -_brute_force_log_pr(probs[b, c].tolist(), int(counts[b, c]), k_max)
        assert float(got[b, c]) == pytest.approx(ref, rel=1e-10)


def test_loco_loss_counts_above_k_max_use_top_bin_and_lengths_ignore_padding():
    probs, _ = _inputs(b=2, c=1, t=7)
    lengths = torch.tensor([7, 4])
    got = loco_loss(probs, torch.tensor([[9], [2]]), 3, lengths=lengths, reduction="none")
    assert float(got[0, 0]) == pytest.approx(-_brute_force_log_pr(probs[0, 0].tolist(), 9, 3))
    assert float(got[1, 0]) == pytest.approx(-_brute_force_log_pr(probs[1, 0, :4].tolist(), 2, 3))


def test_loco_loss_reductions():
    probs, _ = _inputs()
    counts = torch.randint(0, 4, (2, 3))
    rows = loco_loss(probs, counts, 5, reduction="none")
    assert rows.shape == (2, 3)
    torch.testing.assert_close(loco_loss(probs, counts, 5), rows.mean())
    torch.testing.assert_close(loco_loss(probs, counts, 5, reduction="sum"), rows.sum())
    torch.testing.assert_close(LoCoLoss(5, reduction="sum")(probs, counts), rows.sum())


def test_loco_loss_gradcheck_float64():
    probs, _ = _inputs(b=2, c=2, t=8, lo=0.1, hi=0.9)
    probs.requires_grad_(True)
    counts = torch.tensor([[0, 2], [3, 1]])
    assert torch.autograd.gradcheck(
        lambda p: loco_loss(p, counts, 3, lengths=torch.tensor([8, 5])), (probs,)
    )


# ---------------------------------------------------------------------------------- SoftLoc


def test_softloc_loss_is_the_documented_mix_of_its_terms():
    probs, targets = _inputs()
    counts = targets.sum(-1).long()
    sll_rows = soft_localization_loss(probs, targets, 3.0, reduction="none").sum(-1)
    nll = loco_loss(probs, counts, 4, reduction="none")
    alpha = 0.3
    got = softloc_loss(probs, targets, 3.0, alpha, 4)
    assert float(got) == pytest.approx(float(0.7 * sll_rows.sum() / 3 + 0.3 * nll.mean()))
    none = softloc_loss(probs, targets, 3.0, alpha, 4, reduction="none")
    torch.testing.assert_close(none, 0.7 * sll_rows + 0.3 * nll)
    torch.testing.assert_close(
        softloc_loss(probs, targets, 3.0, alpha, 4, reduction="mean"), none.mean()
    )
    torch.testing.assert_close(
        softloc_loss(probs, targets, 3.0, alpha, 4, reduction="sum"), none.sum()
    )


def test_softloc_counts_are_labels_within_lengths_unless_given():
    probs, targets = _inputs(b=2, t=20, rate=0.3)
    lengths = torch.tensor([20, 9])
    counts = (targets * (torch.arange(20) < lengths[:, None])[:, None, :]).sum(-1)
    expected = loco_loss(probs, counts, 8, lengths=lengths)
    got = softloc_loss(probs, targets, 2.0, 1.0, 8, lengths=lengths, reduction="mean")
    assert float(got) == pytest.approx(float(expected))
    given = torch.full((2, 3), 2)
    got = softloc_loss(probs, targets, 2.0, 1.0, 8, counts=given, reduction="mean")
    assert float(got) == pytest.approx(float(loco_loss(probs, given, 8)))


def test_softloc_alpha_zero_log_distance_zero_softness_is_cross_entropy():
    probs, targets = _inputs()
    got = softloc_loss(probs, targets, 0.0, 0.0, 5, distance="log", reduction="classes")
    ce = F.binary_cross_entropy(probs, targets, reduction="sum") / 3
    assert float(got) == pytest.approx(float(ce), rel=1e-12)


def test_softloc_large_softness_leaves_alpha_times_loco():
    # SoftLoc eq. 6: lim_{sigma -> inf} L_SoftLoc = alpha * L_MC.
    probs, targets = _inputs(t=40)
    counts = targets.sum(-1)
    loco = float(loco_loss(probs, counts, 6))
    for alpha in (0.2, 0.9):
        excess = [
            float(softloc_loss(probs, targets, s, alpha, 6)) - alpha * loco for s in (1e3, 1e4, 1e5)
        ]
        # the SLL left over decays like 1 / sigma^2
        assert all(e > 0 for e in excess)
        assert 50 < excess[0] / excess[1] < 200 and 50 < excess[1] / excess[2] < 200
        assert excess[2] < 1e-6 * alpha * loco
        exact = float(softloc_loss(probs, targets, math.inf, alpha, 6))
        assert exact == pytest.approx(alpha * loco, rel=1e-12)


def test_softloc_per_item_inf_sigma_keeps_only_count_term_for_that_item():
    probs, targets = _inputs()
    sigmas = torch.tensor([3.0, math.inf])
    rows = softloc_loss(probs, targets, sigmas, 0.4, 5, reduction="none")
    nll = loco_loss(probs, targets.sum(-1), 5, reduction="none")
    torch.testing.assert_close(rows[1], 0.4 * nll[1])
    first = softloc_loss(probs[:1], targets[:1], 3.0, 0.4, 5, reduction="none")
    torch.testing.assert_close(rows[:1], first)


def test_softloc_gradcheck_float64():
    probs, targets = _inputs(b=2, c=2, t=10, lo=0.1, hi=0.9)
    probs.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: softloc_loss(p, targets, 2.0, 0.4, 3, lengths=torch.tensor([10, 6])), (probs,)
    )


def test_softloc_module_runs_schedule_from_step_or_internal_counter():
    probs, targets = _inputs()
    module = SoftLocLoss(2.0, 5, alpha=AlphaSchedule.drums())
    expected = softloc_loss(probs, targets, 2.0, 0.5, 5)
    torch.testing.assert_close(module(probs, targets, step=80_000), expected)
    assert int(module.step) == 0  # an explicit step leaves the counter alone
    module(probs, targets)
    module(probs, targets)
    assert int(module.step) == 2 and module.current_alpha() == 0.2
    module.eval()
    module(probs, targets)
    assert int(module.step) == 2  # evaluation does not advance the schedule
    state = module.state_dict()
    assert int(state["step"]) == 2 and "kernel" in state
    constant = SoftLocLoss(2.0, 5, alpha=0.3)
    torch.testing.assert_close(constant(probs, targets), softloc_loss(probs, targets, 2.0, 0.3, 5))
    per_item = torch.tensor([2.0, math.inf])
    torch.testing.assert_close(
        constant(probs, targets, sigma_per_item=per_item),
        softloc_loss(probs, targets, per_item, 0.3, 5),
    )


# ---------------------------------------------------------------------------------- schedule


def test_alpha_schedule_values_by_hand():
    drums = AlphaSchedule.drums()
    assert [drums(s) for s in (0, 50_000, 80_000, 120_000, 200_000)] == pytest.approx(
        [0.2, 0.2, 0.5, 0.9, 0.9]
    )
    piano = AlphaSchedule.piano()
    assert [piano(s) for s in (0, 120_000, 160_000)] == pytest.approx([0.2, 0.2, 0.6])
    assert AlphaSchedule(start=10, ramp=10, floor=0.0, ceiling=1.0)(15) == pytest.approx(0.5)
    assert AlphaSchedule.constant(0.95)(10**9) == 0.95


# ---------------------------------------------------------------------------------- baselines


def test_bce_loss_matches_torch_binary_cross_entropy():
    probs, targets = _inputs()
    torch.testing.assert_close(bce_loss(probs, targets), F.binary_cross_entropy(probs, targets))
    torch.testing.assert_close(
        bce_loss(probs, targets, reduction="none"),
        F.binary_cross_entropy(probs, targets, reduction="none"),
    )
    # exact 0/1 probabilities are floored like torch
    hard = targets.clone()
    hard[0, 0, :3] = torch.tensor([0.0, 1.0, 0.0], dtype=hard.dtype)
    torch.testing.assert_close(
        bce_loss(hard, 1 - targets, reduction="sum"),
        F.binary_cross_entropy(hard, 1 - targets, reduction="sum"),
    )


def test_bce_loss_pos_weight_and_lengths():
    probs, targets = _inputs()
    w = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    logits = torch.logit(probs)
    ref = F.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=w.view(3, 1), reduction="none"
    )
    torch.testing.assert_close(bce_loss(probs, targets, pos_weight=w, reduction="none"), ref)
    lengths = torch.tensor([25, 10])
    got = bce_loss(probs, targets, lengths=lengths, reduction="mean")
    ref_rows = F.binary_cross_entropy(probs, targets, reduction="none")
    expected = (ref_rows[0].sum() + ref_rows[1, :, :10].sum()) / (3 * 35)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(
        FrameBCELoss(pos_weight=2.0)(probs, targets), bce_loss(probs, targets, pos_weight=2.0)
    )
    module = FrameBCELoss(pos_weight=w, reduction="sum")
    assert "pos_weight" in dict(module.named_buffers())
    torch.testing.assert_close(module(probs, targets), ref.sum())


def test_bootstrap_loss_matches_bce_against_mixed_target_and_entropy_form():
    probs, targets = _inputs()
    beta = 0.95
    mixed = beta * targets + (1 - beta) * probs
    torch.testing.assert_close(bootstrap_loss(probs, targets), F.binary_cross_entropy(probs, mixed))
    # gradient flows through p in the target: beta * CE(p, y) + (1 - beta) * H(p)
    p1 = probs.clone().requires_grad_(True)
    bootstrap_loss(p1, targets, beta=0.8, reduction="sum").backward()
    p2 = probs.clone().requires_grad_(True)
    entropy = -(p2 * p2.log() + (1 - p2) * (1 - p2).log()).sum()
    (0.8 * F.binary_cross_entropy(p2, targets, reduction="sum") + 0.2 * entropy).backward()
    torch.testing.assert_close(p1.grad, p2.grad)
    torch.testing.assert_close(BootstrapLoss(beta=1.0)(probs, targets), bce_loss(probs, targets))


def test_smoothed_targets_sum_and_peak_normalisation():
    targets = torch.zeros(1, 2, 50, dtype=torch.float64)
    targets[0, 0, 20] = 1.0
    targets[0, 1, [10, 12]] = 1.0
    total = smoothed_targets(targets, 3.0)
    np.testing.assert_allclose(
        total.numpy(), convolve1d(targets.numpy(), _np_kernel(3.0), axis=-1, mode="constant")
    )
    assert float(total[0, 0].sum()) == pytest.approx(1.0)
    peak = smoothed_targets(targets, 3.0, normalize="peak")
    assert float(peak[0, 0].max()) == pytest.approx(1.0)
    assert float(peak.max()) <= 1.0  # overlapping events are clamped
    cut = smoothed_targets(targets, 3.0, lengths=torch.tensor([15]))
    assert float(cut[0, 0].abs().sum()) == 0.0 and float(cut[0, 1, 15:].abs().sum()) == 0.0


def test_one_sided_loss_matches_numpy_and_is_zero_for_smoothed_predictions():
    probs, targets = _inputs()
    k = _np_kernel(2.5)
    ref = (probs.numpy() - convolve1d(targets.numpy(), k, axis=-1, mode="constant")) ** 2
    assert float(one_sided_loss(probs, targets, 2.5)) == pytest.approx(ref.sum() / 3)
    assert float(OneSidedLoss(2.5, reduction="mean")(probs, targets)) == pytest.approx(ref.mean())
    heat = smoothed_targets(targets, 2.5)
    assert float(one_sided_loss(heat, targets, 2.5)) == pytest.approx(0.0, abs=1e-20)
    # unlike the SLL, perfect impulses are penalised
    assert float(one_sided_loss(targets, targets, 2.5)) > 0.0


def test_baselines_gradcheck_float64():
    probs, targets = _inputs(b=1, c=2, t=8, lo=0.1, hi=0.9)
    probs.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: bce_loss(p, targets, pos_weight=3.0), (probs,))
    assert torch.autograd.gradcheck(lambda p: bootstrap_loss(p, targets), (probs,))
    assert torch.autograd.gradcheck(lambda p: one_sided_loss(p, targets, 1.0), (probs,))


# ---------------------------------------------------------------------------------- logits


def test_logits_variants_equal_probability_versions():
    probs, targets = _inputs()
    z = torch.logit(probs)
    counts = targets.sum(-1)
    torch.testing.assert_close(loco_loss(z, counts, 4, logits=True), loco_loss(probs, counts, 4))
    torch.testing.assert_close(
        softloc_loss(z, targets, 2.0, 0.4, 4, logits=True),
        softloc_loss(probs, targets, 2.0, 0.4, 4),
    )
    torch.testing.assert_close(
        bootstrap_loss(z, targets, logits=True), bootstrap_loss(probs, targets)
    )
    w = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(
        bce_loss(z, targets, pos_weight=w, logits=True, reduction="none"),
        F.binary_cross_entropy_with_logits(z, targets, pos_weight=w.view(3, 1), reduction="none"),
    )
    torch.testing.assert_close(LoCoLoss(4, logits=True)(z, counts), loco_loss(probs, counts, 4))
    torch.testing.assert_close(
        SoftLocLoss(2.0, 4, alpha=0.4, logits=True)(z, targets),
        softloc_loss(probs, targets, 2.0, 0.4, 4),
    )
    torch.testing.assert_close(FrameBCELoss(logits=True)(z, targets), bce_loss(probs, targets))
    torch.testing.assert_close(
        BootstrapLoss(logits=True)(z, targets), bootstrap_loss(probs, targets)
    )


def test_logits_keep_count_loss_finite_where_float32_sigmoid_saturates():
    z = torch.full((1, 1, 5), -3.0)
    z[0, 0, 2] = 40.0  # sigmoid(40) is exactly 1.0 in float32
    assert float(torch.sigmoid(z).max()) == 1.0
    zero = torch.zeros(1, 1)
    assert math.isinf(float(loco_loss(torch.sigmoid(z), zero, 3)))
    # -log Pr(Y = 0) = sum_t softplus(z_t), by hand in float64
    expected = 40.0 + 4 * math.log1p(math.exp(-3.0))
    assert float(loco_loss(z, zero, 3, logits=True)) == pytest.approx(expected, rel=1e-6)
    z.requires_grad_(True)
    loco_loss(z, zero, 3, logits=True).backward()
    assert bool(torch.isfinite(z.grad).all())


def _saturated_logits():
    """(2, 3, 30) float64 logits with whole rows and single frames at +-1e4, and labels that
    disagree with them (an event where the logit is -1e4 and none where it is +1e4)."""
    gen = torch.Generator().manual_seed(4)
    z = 2.0 * torch.randn(2, 3, 30, generator=gen, dtype=torch.float64)
    z[0, 0], z[0, 1, ::2], z[1, 2, ::5], z[1, 1] = 1e4, -1e4, 1e4, -1e4
    targets = (torch.rand(2, 3, 30, generator=gen) < 0.15).to(torch.float64)
    targets[0, 1, 2], targets[0, 0, 3] = 1.0, 0.0
    return z, targets


def _value_and_grad(fn, z):
    v = z.clone().requires_grad_()
    out = fn(v)
    (grad,) = torch.autograd.grad(out.sum(), v)
    return out.detach(), grad


def test_cross_entropies_at_logits_of_1e4_match_torch():
    z, targets = _saturated_logits()
    lengths = torch.tensor([30, 22])
    mask = (torch.arange(30)[None, :] < lengths[:, None])[:, None, :].to(torch.float64)
    got = _value_and_grad(lambda v: bce_loss(v, targets, lengths=lengths, logits=True), z)
    want = _value_and_grad(
        lambda v: (
            (F.binary_cross_entropy_with_logits(v, targets, reduction="none") * mask).sum()
            / mask.expand_as(v).sum()
        ),
        z,
    )
    assert got[0].item() > 1e3 and torch.isfinite(got[1]).all()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    # Bootstrapping: cross-entropy against beta y + (1 - beta) sigmoid(z), gradient through both.
    got = _value_and_grad(lambda v: bootstrap_loss(v, targets, beta=0.8, logits=True), z)
    want = _value_and_grad(
        lambda v: F.binary_cross_entropy_with_logits(v, 0.8 * targets + 0.2 * torch.sigmoid(v)), z
    )
    assert torch.isfinite(got[1]).all()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


def test_count_losses_at_logits_of_1e4_are_finite_and_exact():
    from softloc.counting import count_log_likelihood

    z, targets = _saturated_logits()
    counts = torch.tensor([[0, 20, 3], [4, 2, 9]])
    got = _value_and_grad(lambda v: loco_loss(v, counts, 12, logits=True), z)
    want = _value_and_grad(
        lambda v: -count_log_likelihood(v, counts, 12, logits=True, backend="reference").mean(), z
    )
    assert got[0].item() > 1e4 and torch.isfinite(got[1]).all()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # SoftLoc: the SLL on sigmoid(z) (0 and 1 exactly here) mixed with the same count term.
    for sigma, distance in ((2.0, "squared"), (0.0, "log"), (3.0, "log")):
        got = _value_and_grad(
            lambda v, s=sigma, d=distance: softloc_loss(
                v, targets, s, 0.3, 12, counts=counts, logits=True, distance=d
            ),
            z,
        )
        assert torch.isfinite(got[0]) and torch.isfinite(got[1]).all(), (sigma, distance)
        sll = soft_localization_loss(torch.sigmoid(z), targets, sigma, distance=distance)
        nll = -count_log_likelihood(z, counts, 12, logits=True, backend="reference").mean()
        assert got[0].item() == pytest.approx((0.7 * sll + 0.3 * nll).item(), rel=1e-12)


def test_probabilities_of_exactly_zero_and_one_give_finite_gradients():
    # log(p).clamp(min=-100) at p = 0 back-propagates 0 * inf = NaN; the floor's gradient is 0.
    p = torch.tensor([[[0.0, 1.0, 0.0, 1.0, 1e-50, 0.3]]], dtype=torch.float64)
    y = torch.tensor([[[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]]], dtype=torch.float64)
    value, grad = _value_and_grad(lambda v: bce_loss(v, y, reduction="sum"), p)
    assert value.item() == pytest.approx(F.binary_cross_entropy(p, y, reduction="sum").item())
    torch.testing.assert_close(grad[0, 0], torch.tensor([0, 0, 1, -1, 0, -1 / 0.3]).double())
    value, grad = _value_and_grad(lambda v: bootstrap_loss(v, y, reduction="sum"), p)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    # The log distance of the SLL at sigma = 0 is the same cross-entropy: -log(1 - |p - y|).
    value, grad = _value_and_grad(
        lambda v: soft_localization_loss(v, y, 0.0, distance="log", reduction="sum"), p
    )
    assert value.item() == pytest.approx(F.binary_cross_entropy(p, y, reduction="sum").item())
    # (|p - y| has a zero gradient where p = y.)
    torch.testing.assert_close(grad[0, 0], torch.tensor([0, 0, 0, 0, 0, -1 / 0.3]).double())


def test_infinite_logits_give_zero_or_infinite_cross_entropy_never_nan():
    z = torch.tensor(
        [[[math.inf, -math.inf, math.inf, -math.inf, 0.0, math.inf]]], dtype=torch.float64
    )
    y = torch.tensor([[[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]]]).double()
    for fn in (bce_loss, bootstrap_loss):
        value, grad = _value_and_grad(lambda v, f=fn: f(v, y, logits=True, reduction="none"), z)
        assert value[0, 0, :2].eq(0).all() and value[0, 0, 2:4].eq(math.inf).all()
        assert torch.isfinite(grad).all()
        # Steps beyond the length are dropped, whatever they hold (inf * 0 was NaN).
        value, grad = _value_and_grad(
            lambda v, f=fn: f(v, y, logits=True, lengths=torch.tensor([2])), z
        )
        assert value.item() == 0.0 and torch.isfinite(grad).all()


# ---------------------------------------------------------------------------------- validation


def test_validation_errors_name_function_argument_and_expectation():
    probs, targets = _inputs()
    counts = torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"loco_loss: `probs` must have shape \(batch, class"):
        loco_loss(probs[0], counts, 3)
    with pytest.raises(ValueError, match=r"loco_loss: `probs` must hold probabilities in \[0, 1\]"):
        loco_loss(probs * 2, counts, 3)
    with pytest.raises(TypeError, match="loco_loss: `probs` must be a torch.Tensor"):
        loco_loss(probs.numpy(), counts, 3)
    with pytest.raises(ValueError, match="loco_loss: `probs` holds logits .* must not contain NaN"):
        loco_loss(torch.full((2, 3, 4), math.nan), counts, 3, logits=True)
    with pytest.raises(TypeError, match="loco_loss: `logits` must be a bool"):
        loco_loss(probs, counts, 3, logits=1)
    with pytest.raises(TypeError, match="SoftLocLoss: `logits` must be a bool"):
        SoftLocLoss(1.0, 3, alpha=0.5, logits="yes")
    with pytest.raises(ValueError, match=r"loco_loss: `counts` must have shape \(batch, class\)"):
        loco_loss(probs, torch.ones(3, 2), 3)
    with pytest.raises(ValueError, match="loco_loss: `counts` must be >= 0"):
        loco_loss(probs, -counts, 3)
    with pytest.raises(ValueError, match="loco_loss: `counts` must hold whole numbers"):
        loco_loss(probs, counts * 0.5, 3)
    with pytest.raises(ValueError, match="loco_loss: `k_max` must be >= 1"):
        loco_loss(probs, counts, 0)
    with pytest.raises(TypeError, match="loco_loss: `k_max` must be an int"):
        loco_loss(probs, counts, 2.0)
    with pytest.raises(ValueError, match=r"loco_loss: `reduction` must be one of"):
        loco_loss(probs, counts, 3, reduction="avg")
    with pytest.raises(ValueError, match=r"loco_loss: `lengths` must lie in \[0, time=25\]"):
        loco_loss(probs, counts, 3, lengths=torch.tensor([26, 3]))
    with pytest.raises(TypeError, match="soft_localization_loss: `targets` must be a torch.Tensor"):
        soft_localization_loss(probs, targets.tolist(), 1.0)
    with pytest.raises(TypeError, match="soft_localization_loss: `probs` must be a floating-point"):
        soft_localization_loss(targets.long(), targets, 1.0)
    with pytest.raises(ValueError, match=r"soft_localization_loss: `lengths` must have shape"):
        soft_localization_loss(probs, targets, 1.0, lengths=torch.tensor([3]))
    with pytest.raises(TypeError, match="soft_localization_loss: `truncate` must be a real number"):
        soft_localization_loss(probs, targets, 1.0, truncate="4")
    with pytest.raises(ValueError, match="soft_localization_loss: `targets` must have the shape"):
        soft_localization_loss(probs, targets[:, :2], 1.0)
    with pytest.raises(ValueError, match=r"soft_localization_loss: `targets` must hold label"):
        soft_localization_loss(probs, targets + 1, 1.0)
    with pytest.raises(ValueError, match="soft_localization_loss: `sigma` must be >= 0 frames"):
        soft_localization_loss(probs, targets, -1.0)
    with pytest.raises(ValueError, match="soft_localization_loss: `sigma` must be >= 0 frames"):
        soft_localization_loss(probs, targets, math.nan)
    with pytest.raises(TypeError, match="soft_localization_loss: `sigma` must be a float"):
        soft_localization_loss(probs, targets, "20ms")
    with pytest.raises(ValueError, match=r"a tensor `sigma` must have shape \(batch,\)"):
        soft_localization_loss(probs, targets, torch.ones(3))
    with pytest.raises(ValueError, match="soft_localization_loss: `sigma` must be >= 0 frames"):
        soft_localization_loss(probs, targets, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"soft_localization_loss: `reduction` must be one of"):
        soft_localization_loss(probs, targets, 1.0, reduction="batch")
    with pytest.raises(ValueError, match=r"soft_localization_loss: `distance` must be one of"):
        soft_localization_loss(probs, targets, 1.0, distance="l1")
    with pytest.raises(ValueError, match="soft_localization_loss: `truncate` must be"):
        soft_localization_loss(probs, targets, 1.0, truncate=0.0)
    with pytest.raises(ValueError, match=r"softloc_loss: `alpha` must lie in \[0, 1\]"):
        softloc_loss(probs, targets, 1.0, 1.5, 3)
    with pytest.raises(TypeError, match="softloc_loss: `alpha` must be a float"):
        softloc_loss(probs, targets, 1.0, None, 3)
    with pytest.raises(ValueError, match="softloc_loss: `k_max` must be >= 1"):
        softloc_loss(probs, targets, 1.0, 0.5, 0)
    with pytest.raises(ValueError, match="softloc_loss: deriving counts needs binary `targets`"):
        softloc_loss(probs, targets * 0.5, 1.0, 0.5, 3)
    with pytest.raises(ValueError, match="softloc_loss: `counts` must be >= 0"):
        softloc_loss(probs, targets, 1.0, 0.5, 3, counts=-counts)
    with pytest.raises(ValueError, match="gaussian_kernel: `sigma` must be a finite number"):
        gaussian_kernel(math.inf)
    with pytest.raises(ValueError, match="gaussian_kernel: `sigma` must be >= 0 frames"):
        gaussian_kernel(-0.5)
    with pytest.raises(ValueError, match="AlphaSchedule: `ramp` must be"):
        AlphaSchedule(start=0, ramp=0, floor=0.2, ceiling=0.9)
    with pytest.raises(ValueError, match="AlphaSchedule: need 0 <= floor <= ceiling <= 1"):
        AlphaSchedule(start=0, ramp=1, floor=0.5, ceiling=0.4)
    with pytest.raises(ValueError, match=r"SoftLocLoss: `alpha` must lie in \[0, 1\]"):
        SoftLocLoss(1.0, 3, alpha=-0.1)
    with pytest.raises(ValueError, match="SoftLocLoss: `sigma` must be a finite number"):
        SoftLocLoss(math.inf, 3, alpha=0.5)
    with pytest.raises(ValueError, match="SoftLocLoss: `k_max` must be >= 1"):
        SoftLocLoss(1.0, 0, alpha=0.5)
    with pytest.raises(ValueError, match="SoftLocalizationLoss: `sigma` must be >= 0"):
        SoftLocalizationLoss(-1.0)
    with pytest.raises(ValueError, match=r"LoCoLoss: `reduction` must be one of"):
        LoCoLoss(3, reduction="classes")
    with pytest.raises(ValueError, match=r"bce_loss: `pos_weight` must be a float or have shape"):
        bce_loss(probs, targets, pos_weight=torch.ones(2))
    with pytest.raises(TypeError, match="bce_loss: `pos_weight` must be a float or a"):
        bce_loss(probs, targets, pos_weight="2")
    with pytest.raises(ValueError, match="FrameBCELoss: `pos_weight` must be >= 0"):
        FrameBCELoss(pos_weight=-2.0)
    with pytest.raises(ValueError, match="bce_loss: `pos_weight` must be >= 0"):
        bce_loss(probs, targets, pos_weight=-1.0)
    with pytest.raises(ValueError, match=r"bootstrap_loss: `beta` must lie in \[0, 1\]"):
        bootstrap_loss(probs, targets, beta=1.2)
    with pytest.raises(ValueError, match=r"smoothed_targets: `normalize` must be one of \("):
        smoothed_targets(targets, 2.0, normalize="max")
    with pytest.raises(ValueError, match="one_sided_loss: `sigma` must be a finite number"):
        one_sided_loss(probs, targets, math.inf)
