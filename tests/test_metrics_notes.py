"""softloc.metrics.notes: note-onset F1 vs direct mir_eval calls, brute force and hand cases."""

from __future__ import annotations

import math

import mir_eval
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from softloc.metrics import onsets
from softloc.metrics.notes import (
    evaluate,
    format_pitch_table,
    midi_to_hz,
    note_name,
    note_onset_scores,
    validate,
)


def _mir_eval_prf(ro, rp, eo, ep, tol=0.05):
    """The papers' call: intervals [onset, onset + 1], Hz pitches, offsets ignored."""
    ref_iv = np.stack([ro, np.asarray(ro) + 1.0], axis=1).reshape(-1, 2)
    est_iv = np.stack([eo, np.asarray(eo) + 1.0], axis=1).reshape(-1, 2)
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, midi_to_hz(rp).reshape(-1), est_iv, midi_to_hz(ep).reshape(-1),
        onset_tolerance=tol, offset_ratio=None)
    return p, r, f


def _random_piece(rng, n_ref=60, duration_s=20.0):
    ro = np.round(rng.uniform(0, duration_s, n_ref), 3)
    rp = rng.integers(40, 52, n_ref)  # few pitches: many same-pitch neighbours
    keep = rng.random(n_ref) < 0.8
    eo = ro[keep] + rng.normal(0, 0.04, keep.sum())
    ep = rp[keep].copy()
    wrong = rng.random(ep.size) < 0.1
    ep[wrong] += rng.choice([-1, 1, 12], wrong.sum())
    extra = int(rng.integers(0, 15))
    eo = np.concatenate([eo, rng.uniform(0, duration_s, extra)])
    ep = np.concatenate([ep, rng.integers(40, 52, extra)])
    return ro, rp, np.clip(eo, 0, None), ep


@pytest.mark.parametrize("seed", range(6))
def test_piece_scores_equal_mir_eval_transcription_onset_only(seed):
    rng = np.random.default_rng(seed)
    ro, rp, eo, ep = _random_piece(rng)
    got = note_onset_scores(ro, rp, eo, ep, empty_policy="zero")
    p, r, f = _mir_eval_prf(ro, rp, eo, ep)
    assert (got["precision"], got["recall"]) == pytest.approx((p, r), abs=1e-12)
    assert got["f1"] == pytest.approx(f, abs=1e-12)
    assert got["tp"] + got["fn"] == ro.size and got["tp"] + got["fp"] == eo.size


def _brute_force_tp(ro, rp, eo, ep, tol):
    """Maximum matching by the Hungarian algorithm on the hit matrix (independent of mir_eval)."""
    hit = (np.abs(ro[:, None] - eo[None, :]) <= tol + 1e-9) & (rp[:, None] == ep[None, :])
    if hit.size == 0:
        return 0
    rows, cols = linear_sum_assignment(-hit.astype(float))
    return int(hit[rows, cols].sum())


@pytest.mark.parametrize("seed", range(5))
def test_true_positives_are_a_maximum_matching(seed):
    rng = np.random.default_rng(100 + seed)
    n = 25
    ro = rng.integers(0, 400, n) / 100  # a 10 ms grid: nothing near the tolerance boundary
    rp = rng.integers(60, 63, n)
    eo = np.clip(ro + rng.integers(-8, 9, n) / 100 + 0.003, 0, None)
    ep = rp.copy()
    assert note_onset_scores(ro, rp, eo, ep)["tp"] == _brute_force_tp(ro, rp, eo, ep, 0.05)


def test_hand_cases_tolerance_inclusive_pitch_exact_one_to_one():
    # 1.05 - 1.0 is 0.05000000000000004 in floats: mir_eval's rounding makes it a hit
    assert note_onset_scores([1.0], [60], [1.05], [60])["tp"] == 1
    assert note_onset_scores([1.0], [60], [1.0501], [60])["tp"] == 0
    assert note_onset_scores([1.0], [60], [0.95], ["60"])["tp"] == 1
    # a neighbouring key never matches, whatever the timing
    assert note_onset_scores([1.0], [60], [1.0], [61])["tp"] == 0
    # one estimate cannot serve two references (a double strike needs two detections)
    s = note_onset_scores([1.0, 1.04], [60, 60], [1.02], [60])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 1)
    assert s["precision"] == 1.0 and s["recall"] == 0.5 and s["f1"] == pytest.approx(2 / 3)
    # the maximum matching, not a greedy one: 1.0->0.96 and 1.08->1.05 gives 2 pairs
    s = note_onset_scores([1.0, 1.08], [60, 60], [0.96, 1.05], [60, 60], onset_tolerance_s=0.05)
    assert s["tp"] == 2


def test_empty_policies_and_mir_eval_zero_convention():
    for policy, value in (("skip", math.nan), ("one", 1.0), ("zero", 0.0)):
        s = note_onset_scores([], [], [], [], empty_policy=policy)
        assert s["tp"] == s["n_ref"] == s["n_est"] == 0
        for key in ("precision", "recall", "f1"):
            assert s[key] == value or (math.isnan(value) and math.isnan(s[key]))
    s = note_onset_scores([1.0], [60], [], [], empty_policy="skip")
    assert s["recall"] == 0.0 and s["f1"] == 0.0 and math.isnan(s["precision"])
    zero = note_onset_scores([1.0], [60], [], [], empty_policy="zero")
    with pytest.warns(UserWarning):
        expected = _mir_eval_prf(np.array([1.0]), np.array([60]), np.zeros(0), np.zeros(0))
    assert (zero["precision"], zero["recall"], zero["f1"]) == expected


def test_dataset_evaluate_pools_and_averages_pieces_like_the_papers():
    rng = np.random.default_rng(7)
    ref, est, mir = {}, {}, []
    for k in range(4):
        ro, rp, eo, ep = _random_piece(rng, n_ref=30 + 10 * k)
        ref[f"piece{k}"] = [(float(t), str(p)) for t, p in zip(ro, rp, strict=True)]
        est[f"piece{k}"] = [(float(t), int(p)) for t, p in zip(eo, ep, strict=True)]
        mir.append(_mir_eval_prf(ro, rp, eo, ep))
    r = evaluate(ref, est)
    assert r["overall"]["f1_file_mean"] == pytest.approx(np.mean([m[2] for m in mir]), abs=1e-12)
    assert r["overall"]["precision_file_mean"] == pytest.approx(np.mean([m[0] for m in mir]))
    for k in range(4):
        assert r["per_file"][f"piece{k}"]["f1"] == pytest.approx(mir[k][2], abs=1e-12)
    o = r["overall"]
    assert o["tp"] == sum(g["tp"] for g in r["per_file"].values())
    assert o["tp"] == sum(g["tp"] for g in r["per_pitch"].values())
    assert o["n_ref"] == sum(len(v) for v in ref.values())
    assert o["f1"] == pytest.approx(2 * o["tp"] / (o["n_ref"] + o["n_est"]))
    # the pooled F1 is softloc's onset F1 with pitch labels (no pair sits on the boundary here)
    labelled = {f: [(t, str(p)) for t, p in v] for f, v in est.items()}
    assert onsets.evaluate(ref, labelled)["overall"]["f1"] == pytest.approx(o["f1"])


def test_per_pitch_table_counts_and_requested_pitches():
    ref = {"a": [(1.0, "60"), (2.0, "60"), (3.0, "21")], "b": [(0.5, "60")]}
    est = {"a": [(1.01, "60"), (3.2, "21")], "b": [(0.5, "108")]}
    r = evaluate(ref, est)
    assert list(r["per_pitch"]) == ["21", "60", "108"]
    assert (r["per_pitch"]["60"]["tp"], r["per_pitch"]["60"]["fn"]) == (1, 2)
    assert (r["per_pitch"]["21"]["fp"], r["per_pitch"]["21"]["fn"]) == (1, 1)
    assert r["per_pitch"]["108"]["recall"] != r["per_pitch"]["108"]["recall"]  # NaN: no refs
    r2 = evaluate(ref, est, pitches=[108, 60, 100])
    assert list(r2["per_pitch"]) == ["108", "60", "100"]
    assert r2["per_pitch"]["100"]["n_ref"] == 0 and math.isnan(r2["per_pitch"]["100"]["f1"])
    assert r2["overall"]["tp"] == r["overall"]["tp"] == 1  # off-table pitches still count
    table = format_pitch_table(r)
    assert "C4" in table and "A0" in table and "C8" in table and "all" in table
    assert note_name(60) == "C4" and note_name(21) == "A0" and note_name(108) == "C8"


@pytest.mark.parametrize("ref, est, err, match", [
    ({"a": [(1.0, "C4")]}, {"a": []}, ValueError, r"reference\['a'\]\[0\]: pitch label"),
    ({"a": [(1.0, 128)]}, {"a": []}, ValueError, r"0\.\.127"),
    ({"a": [(-1.0, 60)]}, {"a": []}, ValueError, r"reference\['a'\]\[0\]: onset must be"),
    ({"a": [("1.0", 60)]}, {"a": []}, TypeError, "onset must be a number"),
    ({"a": [(1.0, 60.5)]}, {"a": []}, TypeError, "pitch must be a MIDI number"),
    ({"a": [(1.0,)]}, {"a": []}, TypeError, r"expected an \(onset_s, pitch\) pair"),
    ({"a": []}, {"b": []}, ValueError, "same piece ids"),
    ([], {}, TypeError, "must be a mapping"),
])
def test_evaluate_rejects_bad_input_naming_piece_and_index(ref, est, err, match):
    with pytest.raises(err, match=match):
        evaluate(ref, est)


def test_piece_validation_and_options():
    ro, rp, eo, ep = validate([1.0, 0.5], ["60", 21], [], np.array([], dtype=int))
    assert ro.tolist() == [1.0, 0.5] and rp.tolist() == [60, 21] and eo.size == ep.size == 0
    with pytest.raises(ValueError, match="one pitch per onset"):
        note_onset_scores([1.0], [60, 61], [], [])
    with pytest.raises(ValueError, match="seconds"):
        note_onset_scores([40000.0], [60], [], [])
    with pytest.raises(ValueError, match="1-D"):
        note_onset_scores([[1.0]], [60], [], [])
    with pytest.raises(ValueError, match="onset_tolerance_s"):
        note_onset_scores([], [], [], [], onset_tolerance_s=-0.1)
    with pytest.raises(ValueError, match="empty_policy"):
        note_onset_scores([], [], [], [], empty_policy="nan")
    with pytest.raises(ValueError, match="duplicates"):
        evaluate({"a": []}, {"a": []}, pitches=[60, 60])
    with pytest.raises(ValueError, match="format_pitch_table"):
        format_pitch_table({"overall": {}})
