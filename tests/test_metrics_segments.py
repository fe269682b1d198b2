"""Segmental F1, edit score and accuracy against hand-worked cases and a brute-force reference."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
import torch

from softloc.metrics import segments as seg

# --------------------------------------------------------------------------------------------
# Independent reference: frame sets and a recursive edit distance
# --------------------------------------------------------------------------------------------


def _brute_segments(labels, ignored=()):
    out, t = [], 0
    for c, run in itertools.groupby(list(labels)):
        n = len(list(run))
        if c not in ignored:
            out.append((int(c), set(range(t, t + n))))
        t += n
    return out


def _brute_f1(ref, est, tau, ignored=()):
    r, e = _brute_segments(ref, ignored), _brute_segments(est, ignored)
    used = [False] * len(r)
    tp = fp = 0
    for c, frames in e:
        scores = [
            len(frames & rf) / len(frames | rf) if rc == c else -1.0 for rc, rf in r
        ]
        if not scores:
            fp += 1
            continue
        best = scores.index(max(scores))
        if scores[best] >= tau and not used[best]:
            used[best], tp = True, tp + 1
        else:
            fp += 1
    fn = len(r) - sum(used)
    return None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def _brute_edit(ref, est, ignored=()):
    a = tuple(c for c, _ in _brute_segments(ref, ignored))
    b = tuple(c for c, _ in _brute_segments(est, ignored))

    @functools.cache
    def dist(i, j):
        if i == 0 or j == 0:
            return i + j
        substitute = dist(i - 1, j - 1) + (a[i - 1] != b[j - 1])
        return min(dist(i - 1, j) + 1, dist(i, j - 1) + 1, substitute)

    if not a and not b:
        return None
    return 1 - dist(len(a), len(b)) / max(len(a), len(b))


def _random_labelling(rng, n_frames, n_classes, mean_run):
    out = []
    while len(out) < n_frames:
        out += [int(rng.integers(n_classes))] * int(rng.integers(1, 2 * mean_run))
    return np.array(out[:n_frames])


# --------------------------------------------------------------------------------------------
# Hand-worked cases
# --------------------------------------------------------------------------------------------


def test_segment_bounds_are_runs_with_exclusive_ends():
    classes, starts, ends = seg.segment_bounds(np.array([3, 3, 1, 1, 1, 3]))
    assert classes.tolist() == [3, 1, 3]
    assert starts.tolist() == [0, 2, 5]
    assert ends.tolist() == [2, 5, 6]
    classes, starts, ends = seg.segment_bounds([3, 3, 1, 1, 1, 3], ignore_classes=[3])
    assert (classes.tolist(), starts.tolist(), ends.tolist()) == ([1], [2], [5])


def test_f1_hand_worked_threshold_edges():
    ref = [0] * 4 + [1] * 4
    # est class-1 segment [2, 8) has IoU 4/6 with ref [4, 8); est class-0 [0, 2) has IoU 2/4.
    est = [0] * 2 + [1] * 6
    assert seg.segmental_f1(ref, est, overlap=0.5) == 1.0
    assert seg.segmental_f1(ref, est, overlap=0.51) == pytest.approx(2 * 1 / (2 + 1 + 1))
    assert seg.segmental_f1(ref, est, overlap=0.7) == 0.0


def test_f1_counts_oversegmentation_as_false_positives():
    ref = [0] * 10
    est = [0] * 4 + [1] + [0] * 5  # three predicted segments, one correct at IoU 0.5
    # segment [0,4) IoU 0.4 -> TP at tau 0.1; [4,5) class 1: FP; [5,10) IoU 0.5 but the only
    # reference is already matched -> FP. F1 = 2 / (2 + 2 + 0).
    assert seg.segmental_f1(ref, est, overlap=0.1) == pytest.approx(0.5)
    # At tau = 0.45 the first segment misses and the third matches: still TP 1, FP 2.
    assert seg.segmental_f1(ref, est, overlap=0.45) == pytest.approx(0.5)


def test_f1_greedy_rule_uses_the_best_reference_only():
    # Two class-0 references; one prediction overlaps both with IoU >= 0.25 and counts once,
    # against its best reference: IoU with [0,4) = 4/12, with [6,12) = 6/12 -> TP on the second,
    # FN for the first and for the class-1 reference.
    ref = [0] * 4 + [1] * 2 + [0] * 6
    est = [0] * 12
    assert seg.segmental_f1(ref, est, overlap=0.25) == pytest.approx(2 / (2 + 0 + 2))
    # A prediction whose best reference is already taken is a false positive even when another
    # same-class reference with IoU >= tau is still free. References of class 0: R1 = [0,4),
    # R2 = [5,9). P1 = [0,1) takes R1 (IoU 1/4); P2 = [2,6) has IoU 2/6 with R1 (taken) and 1/7
    # with R2 -> FP. Class-2 segments: FP. FN: R2 and the class-1 reference. TP 1, FP 3, FN 2.
    ref = [0, 0, 0, 0, 1, 0, 0, 0, 0]
    est = [0, 2, 0, 0, 0, 0, 2, 2, 2]
    assert seg.segmental_f1(ref, est, overlap=0.1) == pytest.approx(2 / (2 + 3 + 2))


def test_edit_score_hand_worked():
    assert seg.segmental_edit_score([0, 0, 1, 1, 2], [0, 1, 0, 1, 2]) == pytest.approx(0.6)
    assert seg.segmental_edit_score([0, 0, 1, 1], [0, 1, 1, 1]) == 1.0  # boundary shift only
    assert seg.segmental_edit_score([0, 1, 2], [2, 1, 0]) == pytest.approx(1 - 2 / 3)


def test_accuracy_counts_every_frame_including_ignored_classes():
    assert seg.frame_accuracy([0, 0, 1, 1], [0, 1, 1, 1]) == 0.75
    scores = seg.evaluate([0, 0, 1, 1], [1, 1, 1, 1], ignore_classes=[0])
    assert scores["accuracy"] == 0.5
    assert scores["n_ref_segments"] == 1 and scores["n_est_segments"] == 1


def test_ignore_classes_drop_background_segments():
    ref = [0, 0, 1, 1, 0, 0, 2, 2]
    est = [0, 1, 1, 1, 1, 0, 2, 2]
    assert seg.segmental_edit_score(ref, est, ignore_classes=[0]) == 1.0
    assert seg.segmental_f1(ref, est, overlap=0.5, ignore_classes=[0]) == 1.0


# --------------------------------------------------------------------------------------------
# Empty policy
# --------------------------------------------------------------------------------------------


def test_empty_policy_only_matters_when_both_are_empty():
    ref = est = [0, 0, 0]
    for policy, value in (("zero", 0.0), ("one", 1.0)):
        assert seg.segmental_f1(ref, est, ignore_classes=[0], empty_policy=policy) == value
        assert seg.segmental_edit_score(ref, est, ignore_classes=[0], empty_policy=policy) == value
    assert math.isnan(seg.segmental_f1(ref, est, ignore_classes=[0]))
    # one-sided empty: defined as 0 whatever the policy
    assert seg.segmental_f1([0, 1, 1], [0, 0, 0], ignore_classes=[0], empty_policy="one") == 0.0
    assert seg.segmental_edit_score([0, 1], [0, 0], ignore_classes=[0], empty_policy="one") == 0.0


def test_evaluate_dataset_skips_nan_and_pools_counts():
    refs = [np.array([0, 0, 0]), np.array([0, 1, 1, 1])]
    ests = [np.array([0, 0, 0]), np.array([0, 0, 1, 1])]
    out = seg.evaluate_dataset(refs, ests, ignore_classes=[0])
    assert out["f1_50"] == 1.0  # the first sequence (no segments) is left out of the mean
    assert out["accuracy"] == pytest.approx(6 / 7)
    assert out["n_sequences"] == 2 and out["n_frames"] == 7


def test_evaluate_dataset_pooled_differs_from_mean():
    refs = [np.array([0] * 4 + [1] * 4), np.array([0] * 8)]
    ests = [np.array([0] * 4 + [1] * 4), np.array([0, 1] * 4)]
    out = seg.evaluate_dataset(refs, ests, overlaps=(0.5,))
    per = [seg.segmental_f1(r, e, overlap=0.5) for r, e in zip(refs, ests, strict=True)]
    assert out["f1_50"] == pytest.approx(np.mean(per))
    # pooled: seq1 TP 2; seq2 8 predicted segments, none with IoU >= .5 -> FP 8, FN 1
    assert out["f1_50_pooled"] == pytest.approx(4 / (4 + 8 + 1))


# --------------------------------------------------------------------------------------------
# Against the brute-force reference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_f1_and_edit_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    n_classes = int(rng.integers(1, 5))
    ref = _random_labelling(rng, n, n_classes, mean_run=int(rng.integers(1, 15)))
    est = _random_labelling(rng, n, n_classes, mean_run=int(rng.integers(1, 15)))
    ignored = (0,) if seed % 3 == 0 else ()
    for tau in (0.1, 0.25, 0.5, 0.75, 1.0):
        want = _brute_f1(ref, est, tau, ignored)
        got = seg.segmental_f1(ref, est, overlap=tau, ignore_classes=ignored)
        assert (math.isnan(got) and want is None) or got == pytest.approx(want)
    want = _brute_edit(ref, est, ignored)
    got = seg.segmental_edit_score(ref, est, ignore_classes=ignored)
    assert (math.isnan(got) and want is None) or got == pytest.approx(want)
    assert seg.frame_accuracy(ref, est) == pytest.approx(np.mean(ref == est))


def test_perfect_estimate_scores_one_and_metrics_are_symmetric_where_they_should_be():
    rng = np.random.default_rng(7)
    ref = _random_labelling(rng, 200, 5, 20)
    scores = seg.evaluate(ref, ref)
    assert scores["f1_10"] == scores["f1_50"] == scores["edit"] == scores["accuracy"] == 1.0
    est = _random_labelling(rng, 200, 5, 20)
    # edit and accuracy are symmetric, F1 is symmetric in TP and swaps FP <-> FN.
    assert seg.segmental_edit_score(ref, est) == pytest.approx(seg.segmental_edit_score(est, ref))
    assert seg.frame_accuracy(ref, est) == seg.frame_accuracy(est, ref)


def test_tensors_and_whole_floats_are_accepted():
    ref = torch.tensor([0, 0, 1, 1])
    assert seg.evaluate(ref, ref.double())["accuracy"] == 1.0


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "est", "err", "match"),
    [
        ([0, 1], [0, 1, 1], ValueError, "same number of frames"),
        ([[0, 1]], [[0, 1]], ValueError, r"must be 1-D"),
        ([], [], ValueError, "at least one frame"),
        ([0, -1], [0, 1], ValueError, "class indices >= 0"),
        ([0.5, 1.0], [0, 1], TypeError, "integer class indices"),
        ([True, False], [0, 1], TypeError, "integer class indices"),
    ],
)
def test_validate_rejects_bad_labels(ref, est, err, match):
    with pytest.raises(err, match=match):
        seg.validate(ref, est)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"segmental_f1: `overlap`"):
        seg.segmental_f1([0], [0], overlap=0.0)
    with pytest.raises(TypeError, match=r"segmental_f1: `overlap`"):
        seg.segmental_f1([0], [0], overlap="0.5")
    with pytest.raises(ValueError, match=r"`empty_policy`"):
        seg.segmental_edit_score([0], [0], empty_policy="nan")
    with pytest.raises(TypeError, match=r"`ignore_classes`"):
        seg.evaluate([0], [0], ignore_classes=["background"])
    with pytest.raises(ValueError, match=r"evaluate_dataset: need one estimate per reference"):
        seg.evaluate_dataset([[0]], [])
    with pytest.raises(ValueError, match=r"evaluate_dataset: `references` is empty"):
        seg.evaluate_dataset([], [])
