"""Segmentation losses against torch, scipy, enumeration and hand-derived limits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter1d

from softloc.losses import AlphaSchedule
from softloc.losses import segmentation as seg


def _batch(b=3, c=4, t=30, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, t, generator=g, dtype=dtype) * 2
    runs = torch.randint(0, c, (b, t // 5), generator=g)
    targets = runs.repeat_interleave(5, dim=1)  # segments of 5 frames
    return logits, targets


def _naive_sll(logits, targets, lengths, sigma):
    """float64 numpy/scipy: Σ_t (Φ∗p_c − Φ∗y_c)² over valid frames, mean over (item, class)."""
    probs = torch.softmax(logits.double(), dim=1).numpy()
    total = 0.0
    for i in range(probs.shape[0]):
        n_i = int(lengths[i])
        p = probs[i, :, :n_i]
        y = np.eye(probs.shape[1])[targets[i, :n_i].numpy()].T
        if sigma > 0:
            p = gaussian_filter1d(p, sigma, axis=1, mode="constant", truncate=4.0)
            y = gaussian_filter1d(y, sigma, axis=1, mode="constant", truncate=4.0)
        total += float(((p - y) ** 2).sum())
    return total / (probs.shape[0] * probs.shape[1])


# --------------------------------------------------------------------------------------------
# Cross-entropy
# --------------------------------------------------------------------------------------------


def test_cross_entropy_equals_torch_with_padding_ignored():
    logits, targets = _batch()
    lengths = torch.tensor([30, 17, 5])
    masked = targets.clone()
    masked[torch.arange(30)[None, :] >= lengths[:, None]] = -100
    want = F.cross_entropy(logits, masked, ignore_index=-100)
    got = seg.frame_cross_entropy(logits, targets, lengths=lengths)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(seg.SegmentationCELoss()(logits, targets=targets, lengths=lengths),
                               want)
    assert float(seg.frame_cross_entropy(logits, targets, reduction="none")[1, 20]) == \
        pytest.approx(float(F.cross_entropy(logits[1:2, :, 20], targets[1:2, 20])))


def test_stage_logits_sum_the_per_stage_losses():
    logits, targets = _batch()
    stages = torch.stack([logits, logits.flip(-1), 0.5 * logits])
    for fn in (
        lambda z: seg.frame_cross_entropy(z, targets),
        lambda z: seg.class_soft_localization_loss(z, targets, 3.0),
        lambda z: seg.segment_count_loss(z, seg.segment_counts(targets, 4), k_max=8),
        lambda z: seg.truncated_mse_smoothing(z),
    ):
        torch.testing.assert_close(fn(stages), sum(fn(s) for s in stages))


# --------------------------------------------------------------------------------------------
# L_SLL on class distributions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.0, 1.0, 2.5, 7.0])
def test_sll_matches_scipy_gaussian_filter(sigma):
    logits, targets = _batch(t=40)
    lengths = torch.tensor([40, 33, 12])
    got = seg.class_soft_localization_loss(logits, targets, sigma, lengths=lengths)
    assert float(got) == pytest.approx(_naive_sll(logits, targets, lengths, sigma), rel=1e-10)


def test_sll_at_zero_softness_is_the_brier_score():
    logits, targets = _batch()
    probs = torch.softmax(logits, 1)
    brier = ((probs - F.one_hot(targets, 4).movedim(-1, 1)) ** 2).sum(1)  # (B, T) per frame
    got = seg.class_soft_localization_loss(logits, targets, 0.0, reduction="none").sum(1)
    torch.testing.assert_close(got, brier)
    # "mean": rows summed over time, averaged over (batch, class)
    torch.testing.assert_close(seg.class_soft_localization_loss(logits, targets, 0.0),
                               brier.sum() / (3 * 4))


def test_sll_log_distance_at_zero_softness_is_classwise_bce_and_bounds_ce():
    logits, targets = _batch()
    probs = torch.softmax(logits, 1)
    onehot = F.one_hot(targets, 4).movedim(-1, 1).double()
    bce = F.binary_cross_entropy(probs, onehot, reduction="sum")
    got = seg.class_soft_localization_loss(logits, targets, 0.0, distance="log", reduction="sum")
    torch.testing.assert_close(got, bce)
    assert float(got) >= float(seg.frame_cross_entropy(logits, targets, reduction="sum"))


def test_sll_vanishes_as_softness_grows():
    logits, targets = _batch()
    values = [float(seg.class_soft_localization_loss(logits, targets, s)) for s in (1, 10, 100)]
    assert values[0] > values[1] > values[2]
    assert float(seg.class_soft_localization_loss(logits, targets, math.inf)) == 0.0


def test_sll_forgives_a_shifted_prediction_more_with_more_softness():
    # A confident prediction equal to the labels shifted by 3 frames: CE and Brier punish every
    # frame in the gap; L_SLL with sigma >> 3 barely sees it.
    targets = torch.tensor([[0] * 20 + [1] * 20 + [2] * 20])
    shifted = torch.tensor([[0] * 23 + [1] * 20 + [2] * 17])
    logits = 8.0 * F.one_hot(shifted, 3).movedim(-1, 1).double()
    ratio = [float(seg.class_soft_localization_loss(logits, targets, s))
             / float(seg.class_soft_localization_loss(logits, targets, 0.0)) for s in (2.0, 8.0)]
    assert ratio[1] < ratio[0] < 1.0


def test_sll_of_a_padded_item_equals_the_item_alone():
    logits, targets = _batch(b=2, t=40)
    lengths = torch.tensor([40, 23])
    batched = seg.class_soft_localization_loss(logits, targets, 3.0, lengths=lengths,
                                               reduction="none")
    alone = seg.class_soft_localization_loss(logits[1:, :, :23], targets[1:, :23], 3.0,
                                             reduction="none")
    torch.testing.assert_close(batched[1, :, :23], alone[0])
    assert float(batched[1, :, 23:].abs().sum()) == 0.0


# --------------------------------------------------------------------------------------------
# Segment counts and L_MC on segment starts
# --------------------------------------------------------------------------------------------


def test_segment_counts_match_run_length_counting():
    _, targets = _batch(b=4, t=40, seed=3)
    targets[2, 7:9] = 3
    lengths = torch.tensor([40, 31, 9, 1])
    got = seg.segment_counts(targets, 4, lengths=lengths)
    for i in range(4):
        runs = [k for k, _ in itertools.groupby(targets[i, : int(lengths[i])].tolist())]
        assert got[i].tolist() == [runs.count(c) for c in range(4)]


def test_start_logits_give_the_naive_start_probabilities():
    logits, _ = _batch()
    p = torch.softmax(logits, 1)
    want = p.clone()
    want[..., 1:] = p[..., 1:] * (1 - p[..., :-1])
    torch.testing.assert_close(torch.sigmoid(seg.segment_start_logits(logits)), want)


def test_start_logits_stay_exact_where_float32_probabilities_round_to_one():
    # Logit gaps of 20: p = 1 - 2e-9 rounds to 1 in float32, exact in float64.
    labels = torch.tensor([[0] * 5 + [1] * 5])
    z64 = 20.0 * F.one_hot(labels, 3).movedim(-1, 1).double()
    z32 = z64.float()
    want = seg.segment_start_logits(z64)
    got = seg.segment_start_logits(z32)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-4)
    # and the naive float64 values confirm the float64 path
    p = torch.softmax(z64, 1)
    s = p.clone()
    s[..., 1:] = p[..., 1:] * (1 - p[..., :-1])
    torch.testing.assert_close(want, torch.log(s) - torch.log1p(-s))


def _enumerated_nll(logits, counts):
    """−log Pr(N_c = n_c) by enumerating every subset of start frames (float64)."""
    p = torch.softmax(logits.double(), 0).numpy()  # (C, T)
    s = p.copy()
    s[:, 1:] = p[:, 1:] * (1 - p[:, :-1])
    out = []
    for c in range(p.shape[0]):
        total = 0.0
        for bits in itertools.product((0, 1), repeat=p.shape[1]):
            if sum(bits) == counts[c]:
                total += np.prod([s[c, t] if b else 1 - s[c, t] for t, b in enumerate(bits)])
        out.append(-math.log(total))
    return np.array(out)


def test_count_loss_matches_enumeration_of_start_patterns():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 7, generator=g, dtype=torch.float64)
    counts = torch.tensor([[1, 2, 0], [3, 1, 1]])
    got = seg.segment_count_loss(logits, counts, k_max=7, reduction="none")
    for i in range(2):
        np.testing.assert_allclose(got[i].numpy(), _enumerated_nll(logits[i], counts[i].tolist()),
                                   rtol=1e-9)


def test_count_loss_is_small_for_a_confident_correct_segmentation_and_finite_when_wrong():
    targets = torch.tensor([[0] * 10 + [1] * 10 + [0] * 10])
    good = 30.0 * F.one_hot(targets, 2).movedim(-1, 1).float()
    counts = seg.segment_counts(targets, 2)
    assert float(seg.segment_count_loss(good, counts)) < 1e-6
    flicker = torch.tensor([[0, 1] * 15])
    bad = 30.0 * F.one_hot(flicker, 2).movedim(-1, 1).float()
    value = seg.segment_count_loss(bad, counts)
    assert torch.isfinite(value) and float(value) > 100


def test_count_loss_ignores_padding():
    logits, targets = _batch(b=2, t=40)
    lengths = torch.tensor([40, 25])
    counts = seg.segment_counts(targets, 4, lengths=lengths)
    batched = seg.segment_count_loss(logits, counts, lengths=lengths, reduction="none")
    alone = seg.segment_count_loss(logits[1:, :, :25], counts[1:], reduction="none")
    torch.testing.assert_close(batched[1], alone[0])


# --------------------------------------------------------------------------------------------
# SoftLoc and T-MSE
# --------------------------------------------------------------------------------------------


def test_softloc_is_the_alpha_mixture_of_sll_and_count_loss():
    logits, targets = _batch()
    lengths = torch.tensor([30, 22, 14])
    sll = seg.class_soft_localization_loss(logits, targets, 4.0, lengths=lengths)
    mc = seg.segment_count_loss(logits, seg.segment_counts(targets, 4, lengths=lengths),
                                k_max=10, lengths=lengths)
    for alpha in (0.0, 0.3, 1.0):
        got = seg.segmentation_softloc_loss(logits, targets, 4.0, alpha, k_max=10,
                                            lengths=lengths)
        torch.testing.assert_close(got, (1 - alpha) * sll + alpha * mc)


def test_softloc_module_runs_its_alpha_schedule_from_step():
    logits, targets = _batch()
    schedule = AlphaSchedule(start=0, ramp=100, floor=0.0, ceiling=1.0)
    module = seg.SegmentationSoftLocLoss(4.0, alpha=schedule, k_max=10)
    assert module.requires == frozenset({"targets"})
    for step in (0, 50, 100):
        want = seg.segmentation_softloc_loss(logits, targets, 4.0, schedule(step), k_max=10)
        torch.testing.assert_close(module(logits, targets=targets, step=step), want)
    counts = seg.segment_counts(targets, 4) + 1
    want = seg.segmentation_softloc_loss(logits, targets, 4.0, 1.0, k_max=10, counts=counts)
    torch.testing.assert_close(module(logits, targets=targets, counts=counts, step=100), want)


def _naive_tmse(logits, lengths, tau):
    log_p = torch.log_softmax(logits, 1)
    total, n = 0.0, 0
    for i in range(logits.shape[0]):
        for t in range(1, int(lengths[i])):
            d = (log_p[i, :, t] - log_p[i, :, t - 1].detach()).abs().clamp(max=tau)
            total = total + (d**2).sum()
            n += logits.shape[1]
    return total / n


def test_truncated_mse_matches_a_loop_in_value_and_gradient():
    logits, _ = _batch()
    logits.requires_grad_(True)
    lengths = torch.tensor([30, 12, 2])
    got = seg.truncated_mse_smoothing(logits, lengths=lengths, tau=1.5)
    want = _naive_tmse(logits, lengths, 1.5)
    torch.testing.assert_close(got, want)
    (g_got,) = torch.autograd.grad(got, logits)
    (g_want,) = torch.autograd.grad(want, logits)
    torch.testing.assert_close(g_got, g_want)


def test_smoothing_option_adds_lambda_times_tmse():
    logits, targets = _batch()
    lam = 0.15
    tmse = seg.truncated_mse_smoothing(logits)
    for plain, smooth in (
        (seg.SegmentationCELoss(), seg.SegmentationCELoss(smoothing_weight=lam)),
        (seg.SegmentationSLLLoss(3.0), seg.SegmentationSLLLoss(3.0, smoothing_weight=lam)),
        (seg.SegmentationSoftLocLoss(3.0), seg.SegmentationSoftLocLoss(3.0, smoothing_weight=lam)),
    ):
        torch.testing.assert_close(smooth(logits, targets=targets),
                                   plain(logits, targets=targets) + lam * tmse)


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss",
    [
        lambda z, y, n: seg.frame_cross_entropy(z, y, lengths=n),
        lambda z, y, n: seg.class_soft_localization_loss(z, y, 2.0, lengths=n),
        lambda z, y, n: seg.class_soft_localization_loss(z, y, 1.5, lengths=n, distance="log"),
        lambda z, y, n: seg.segment_count_loss(z, seg.segment_counts(y, 3, lengths=n), k_max=5,
                                               lengths=n),
        lambda z, y, n: seg.segmentation_softloc_loss(z, y, 2.0, 0.4, k_max=5, lengths=n),
    ],
    ids=["ce", "sll", "sll-log", "mc", "softloc"],
)
def test_gradcheck_float64(loss):
    # (T-MSE is left out: its stop-gradient through p(t - 1) is deliberately not the derivative
    # of its value; test_truncated_mse_matches_a_loop_in_value_and_gradient checks it.)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3, 12, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (2, 12), generator=g)
    n = torch.tensor([12, 8])
    assert torch.autograd.gradcheck(lambda x: loss(x, y, n), (z,))


def test_count_loss_gradient_is_finite_for_saturated_float32_logits():
    targets = torch.tensor([[0] * 10 + [1] * 10])
    flicker = torch.tensor([[0, 1] * 10])
    z = (40.0 * F.one_hot(flicker, 2).movedim(-1, 1).float()).requires_grad_(True)
    loss = seg.segment_count_loss(z, seg.segment_counts(targets, 2))
    (grad,) = torch.autograd.grad(loss, z)
    assert torch.isfinite(grad).all()


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def test_errors_name_function_and_argument():
    logits, targets = _batch()
    with pytest.raises(ValueError, match=r"frame_cross_entropy: `targets` must have shape "
                                         r"\(batch, time\)"):
        seg.frame_cross_entropy(logits, targets[:, :-1])
    with pytest.raises(TypeError, match=r"`targets` must be an integer tensor"):
        seg.frame_cross_entropy(logits, targets.double())
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\], found values in \[0, 4\]"):
        seg.frame_cross_entropy(logits, targets.clamp(max=4) + (targets == 3).long())
    with pytest.raises(ValueError, match=r"`logits` must have shape"):
        seg.frame_cross_entropy(logits[0], targets)
    with pytest.raises(ValueError, match=r"`logits` must not contain NaN"):
        seg.frame_cross_entropy(logits * float("nan"), targets)
    with pytest.raises(ValueError, match=r"`reduction`"):
        seg.frame_cross_entropy(logits, targets, reduction="batchmean")
    with pytest.raises(ValueError, match=r"`distance`"):
        seg.class_soft_localization_loss(logits, targets, 1.0, distance="l1")
    with pytest.raises(ValueError, match=r"`sigma` must be >= 0"):
        seg.class_soft_localization_loss(logits, targets, -1.0)
    with pytest.raises(ValueError, match=r"segment_count_loss: `counts` must have shape"):
        seg.segment_count_loss(logits, torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"`alpha` must lie in \[0, 1\]"):
        seg.segmentation_softloc_loss(logits, targets, 1.0, 1.5)
    with pytest.raises(ValueError, match=r"`lengths` must lie in"):
        seg.frame_cross_entropy(logits, targets, lengths=torch.tensor([31, 1, 1]))
    with pytest.raises(ValueError, match=r"SegmentationCELoss: `targets` \(batch, time\) class "
                                         r"indices are required"):
        seg.SegmentationCELoss()(logits)
    with pytest.raises(ValueError, match=r"SegmentationSLLLoss: `sigma` must be finite"):
        seg.SegmentationSLLLoss(math.inf)
    with pytest.raises(ValueError, match=r"SegmentationCELoss: `smoothing_weight` must be >= 0"):
        seg.SegmentationCELoss(smoothing_weight=-0.1)
    with pytest.raises(ValueError, match=r"segment_counts: `targets` must have shape"):
        seg.segment_counts(targets[0], 4)


def test_segmentation_loss_table_builds_each_loss_with_softness_in_frames():
    assert seg.SEGMENTATION_LOSSES == ("ce", "sll", "softloc")
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 20)
    y = torch.randint(0, 3, (2, 20))
    ce = seg.build_segmentation_loss("CE", frame_rate=3.0)
    assert torch.allclose(ce(logits, targets=y), F.cross_entropy(logits, y))
    sll = seg.build_segmentation_loss("sll", frame_rate=3.0, softness_s=2.0)
    assert sll.sigma == pytest.approx(6.0)  # 2 s at 3 frames/s
    soft = seg.build_segmentation_loss("softloc", frame_rate=3.0, softness_s=2.0, alpha=0.25,
                                       k_max=4)
    expect = seg.segmentation_softloc_loss(logits, y, 6.0, 0.25, k_max=4)
    assert torch.allclose(soft(logits, targets=y), expect)
    with pytest.raises(ValueError, match="build_segmentation_loss"):
        seg.build_segmentation_loss("loco", frame_rate=3.0)
