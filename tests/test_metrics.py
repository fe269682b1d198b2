"""Tests for softloc.metrics against direct mir_eval calls, scipy matching and hand-worked cases."""

from __future__ import annotations

import json
import math
import warnings

import mir_eval
import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from softloc.metrics import (
    evaluate,
    format_table,
    match_onsets,
    onset_scores,
    results_to_json,
    validate,
)


def _random_events(rng: np.random.Generator, n: int, span_s: float = 5.0) -> np.ndarray:
    # times on a 1e-5 s grid: dense enough for many near-collisions within +-50 ms
    return np.sort(np.round(rng.random(n) * span_s, 5))


def _mir_eval_f_measure(ref: np.ndarray, est: np.ndarray, window: float = 0.05):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on empty lists
        return mir_eval.onset.f_measure(ref, est, window=window)


# ------------------------------------------------------------------------------------------
# one event list
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_onset_scores_equal_mir_eval_f_measure_on_random_lists(seed):
    rng = np.random.default_rng(seed)
    ref = _random_events(rng, int(rng.integers(1, 60)))
    est = _random_events(rng, int(rng.integers(1, 60)))
    f, p, r = _mir_eval_f_measure(ref, est)
    s = onset_scores(ref, est)
    assert s["f1"] == pytest.approx(f, abs=1e-12)
    assert s["precision"] == pytest.approx(p, abs=1e-12)
    assert s["recall"] == pytest.approx(r, abs=1e-12)
    assert (s["n_ref"], s["n_est"]) == (ref.size, est.size)
    assert s["tp"] + s["fn"] == ref.size and s["tp"] + s["fp"] == est.size


@pytest.mark.parametrize("seed", range(5))
def test_match_onsets_equals_direct_mir_eval_match_events(seed):
    rng = np.random.default_rng(100 + seed)
    ref = rng.permutation(_random_events(rng, 40, 3.0))  # unsorted input is allowed
    est = rng.permutation(_random_events(rng, 35, 3.0))
    pairs = match_onsets(ref, est, tolerance_s=0.03)
    expected = mir_eval.util.match_events(ref, est, 0.03)
    assert pairs.tolist() == [list(p) for p in expected]
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2
    assert np.all(np.abs(est[pairs[:, 1]] - ref[pairs[:, 0]]) <= 0.03)


@pytest.mark.parametrize("seed", range(5))
def test_match_count_equals_scipy_maximum_bipartite_matching(seed):
    rng = np.random.default_rng(200 + seed)
    ref = _random_events(rng, 50, 2.0)
    est = _random_events(rng, 50, 2.0)
    graph = csr_matrix((np.abs(ref[:, None] - est[None, :]) <= 0.05).astype(np.int8))
    expected = int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())
    assert onset_scores(ref, est)["tp"] == expected


def test_onset_scores_hand_case():
    s = onset_scores([1.0, 2.0], [1.04, 2.06, 3.0])
    # 1.04 matches 1.0; 2.06 is 60 ms from 2.0; 3.0 matches nothing
    assert (s["tp"], s["fp"], s["fn"], s["n_ref"], s["n_est"]) == (1, 2, 1, 2, 3)
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["recall"] == pytest.approx(1 / 2)
    assert s["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert s["time_error_mean_s"] == pytest.approx(0.04)
    assert s["time_error_std_s"] == pytest.approx(0.0, abs=1e-12)


def test_tolerance_is_inclusive():
    # 1.25 - 1.0 = 0.25 exactly in binary floating point
    assert onset_scores([1.0], [1.25], tolerance_s=0.25)["tp"] == 1
    assert onset_scores([1.0], [1.25], tolerance_s=0.2499)["tp"] == 0


def test_matching_is_maximum_not_greedy_closest_first():
    # greedy closest-first takes (1.06, 1.04) at 20 ms and then nothing fits: 1 TP; maximum is 2
    assert onset_scores([1.00, 1.06], [1.04, 1.10])["tp"] == 2


def test_time_error_mean_and_std_by_hand():
    s = onset_scores([1.0, 2.0, 3.0], [1.01, 1.98, 3.03])
    errors = [0.01, -0.02, 0.03]  # estimate - reference
    mean = sum(errors) / 3
    std = math.sqrt(sum((e - mean) ** 2 for e in errors) / 3)  # population std
    assert s["time_error_mean_s"] == pytest.approx(mean)
    assert s["time_error_std_s"] == pytest.approx(std)
    assert std == pytest.approx(0.0205480, abs=1e-6)


def test_time_error_is_nan_without_matches():
    s = onset_scores([1.0], [2.0])
    assert math.isnan(s["time_error_mean_s"]) and math.isnan(s["time_error_std_s"])


# ------------------------------------------------------------------------------------------
# empty-clip policy
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref, est", [([], []), ([1.0, 2.0], []), ([], [0.5])], ids=["both", "no-est", "no-ref"]
)
def test_empty_policy_zero_reproduces_mir_eval(ref, est):
    s = onset_scores(ref, est, empty_policy="zero")
    f, p, r = _mir_eval_f_measure(np.asarray(ref, float), np.asarray(est, float))
    assert (s["f1"], s["precision"], s["recall"]) == (f, p, r) == (0.0, 0.0, 0.0)


def test_empty_policy_one_reproduces_madmom_convention():
    # madmom: precision of no detections = 1, recall of no references = 1, F = 2PR/(P+R) or 0
    both = onset_scores([], [], empty_policy="one")
    assert (both["precision"], both["recall"], both["f1"]) == (1.0, 1.0, 1.0)
    no_est = onset_scores([1.0], [], empty_policy="one")
    assert (no_est["precision"], no_est["recall"], no_est["f1"]) == (1.0, 0.0, 0.0)
    no_ref = onset_scores([], [1.0], empty_policy="one")
    assert (no_ref["precision"], no_ref["recall"], no_ref["f1"]) == (0.0, 1.0, 0.0)


def test_empty_policy_skip_leaves_undefined_ratios_nan():
    both = onset_scores([], [])
    assert all(math.isnan(both[k]) for k in ("precision", "recall", "f1"))
    assert (both["n_ref"], both["n_est"], both["tp"]) == (0, 0, 0)
    no_est = onset_scores([1.0, 2.0], [])
    assert math.isnan(no_est["precision"]) and no_est["recall"] == 0.0 and no_est["f1"] == 0.0
    no_ref = onset_scores([], [1.0])
    assert no_ref["precision"] == 0.0 and math.isnan(no_ref["recall"]) and no_ref["f1"] == 0.0


@pytest.mark.parametrize(
    "policy, expected_file_mean", [("skip", 0.5), ("zero", 1 / 3), ("one", 2 / 3)]
)
def test_empty_file_enters_file_mean_according_to_policy(policy, expected_file_mean):
    ref = {"a": [(1.0, "KD")], "b": [(1.0, "KD")], "silent": []}
    est = {"a": [(1.01, "KD")], "b": [(3.0, "KD")], "silent": []}
    r = evaluate(ref, est, empty_policy=policy)
    # file a: F1 1; file b: F1 0; the silent file is 0/0
    assert r["overall"]["f1_file_mean"] == pytest.approx(expected_file_mean)
    assert r["overall"]["n_files_scored"] == (2 if policy == "skip" else 3)
    # pooled counts do not depend on the policy: tp 1, fp 1, fn 1
    assert r["overall"]["f1"] == pytest.approx(0.5)
    assert r["per_file"]["silent"]["n_ref"] == 0


def test_class_without_any_event_is_skipped_from_class_mean():
    ref = {"a": [(1.0, "KD"), (2.0, "SD")]}
    est = {"a": [(1.0, "KD"), (2.2, "SD")]}
    r = evaluate(ref, est, classes=["KD", "SD", "HH"])
    assert math.isnan(r["per_class"]["HH"]["f1"])
    assert r["per_class"]["HH"]["n_ref"] == 0 and r["per_class"]["HH"]["n_est"] == 0
    assert r["overall"]["f1_class_mean"] == pytest.approx((1.0 + 0.0) / 2)
    assert r["overall"]["f1_class_file_mean"] == pytest.approx((1.0 + 0.0) / 2)
    assert r["overall"]["precision_class_mean"] == pytest.approx((1.0 + 0.0) / 2)
    r0 = evaluate(ref, est, classes=["KD", "SD", "HH"], empty_policy="zero")
    assert r0["overall"]["f1_class_mean"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)


# ------------------------------------------------------------------------------------------
# aggregation
# ------------------------------------------------------------------------------------------


def test_global_and_file_mean_f1_differ_in_hand_worked_case():
    long_file = [(float(i), "KD") for i in range(1, 11)]
    ref = {"long": long_file, "short": [(1.0, "KD")]}
    est = {"long": [(t + 0.01, lab) for t, lab in long_file], "short": [(2.0, "KD")]}
    r = evaluate(ref, est)
    # global: tp 10, fp 1, fn 1 -> F1 = 20 / 22; per file: F1 1 and 0 -> mean 0.5
    assert r["overall"]["f1"] == pytest.approx(20 / 22)
    assert r["overall"]["f1_file_mean"] == pytest.approx(0.5)
    assert r["overall"]["precision"] == pytest.approx(10 / 11)
    assert r["overall"]["recall_file_mean"] == pytest.approx(0.5)
    assert r["per_file"]["long"]["f1"] == 1.0 and r["per_file"]["short"]["f1"] == 0.0


def test_file_and_class_means_pool_the_right_units_by_hand():
    ref = {
        "a": [(1.0, "KD"), (2.0, "SD")],
        "b": [(1.0, "KD")],
        "c": [(1.0, "KD"), (2.0, "KD"), (3.0, "KD")],
    }
    est = {"a": [(1.01, "KD")], "b": [(0.98, "KD")], "c": [(1.03, "KD")]}
    r = evaluate(ref, est)
    kd, sd, o = r["per_class"]["KD"], r["per_class"]["SD"], r["overall"]
    # KD per file: a 1, b 1, c tp 1 fn 2 -> 0.5; pooled tp 3 fn 2 -> 6 / 8
    assert kd["f1_file_mean"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert kd["f1"] == pytest.approx(6 / 8)
    # SD: only file a has it (missed): 0; b and c have no SD at all and are skipped
    assert sd["f1_file_mean"] == 0.0 and sd["n_files_scored"] == 1
    assert o["f1_class_mean"] == pytest.approx((6 / 8 + 0) / 2)
    assert o["f1_class_file_mean"] == pytest.approx(((1 + 1 + 0.5) / 3 + 0) / 2)
    # overall per-file scores pool the classes of a file: a tp 1 fn 1 -> 2/3, b 1, c 0.5
    assert o["f1_file_mean"] == pytest.approx((2 / 3 + 1 + 0.5) / 3)
    # timing errors are estimate - reference, pooled over files
    assert kd["time_error_mean_s"] == pytest.approx((0.01 - 0.02 + 0.03) / 3)
    assert o["time_error_mean_s"] == pytest.approx((0.01 - 0.02 + 0.03) / 3)
    assert math.isnan(sd["time_error_mean_s"])


def test_classes_never_match_each_other():
    r = evaluate({"a": [(1.0, "KD")]}, {"a": [(1.0, "SD")]})
    assert r["overall"]["tp"] == 0 and r["overall"]["fp"] == 1 and r["overall"]["fn"] == 1


def _random_dataset(rng, n_files, labels):
    ref, est = {}, {}
    for i in range(n_files):
        r_events, e_events = [], []
        for lab in labels:
            r = _random_events(rng, int(rng.integers(0, 15)), 4.0)
            keep = r[rng.random(r.size) < 0.7]  # detected subset
            jitter = np.clip(keep + rng.normal(0, 0.03, keep.size), 0, None)
            extra = _random_events(rng, int(rng.integers(0, 4)), 4.0)
            r_events += [(float(t), lab) for t in r]
            e_events += [(float(t), lab) for t in np.concatenate([jitter, extra])]
        rng.shuffle(e_events)  # order inside a file does not matter
        ref[f"f{i}"], est[f"f{i}"] = r_events, e_events
    return ref, est


def _split(events, label):
    return np.sort(np.array([t for t, lab in events if lab == label], dtype=float))


@pytest.mark.parametrize("seed", range(3))
def test_evaluate_per_class_equals_direct_mir_eval_per_file(seed):
    rng = np.random.default_rng(300 + seed)
    labels = ["HH", "KD", "SD"]
    ref, est = _random_dataset(rng, 6, labels)
    r = evaluate(ref, est, empty_policy="zero")
    for lab in labels:
        tps = fps = fns = 0
        f1s = []
        for fid in ref:
            rt, et = _split(ref[fid], lab), _split(est[fid], lab)
            f1s.append(_mir_eval_f_measure(rt, et)[0])
            m = len(mir_eval.util.match_events(rt, et, 0.05)) if rt.size and et.size else 0
            tps, fps, fns = tps + m, fps + et.size - m, fns + rt.size - m
        g = r["per_class"][lab]
        assert (g["tp"], g["fp"], g["fn"]) == (tps, fps, fns)
        assert g["f1"] == pytest.approx(2 * tps / (2 * tps + fps + fns))
        # "zero" policy: file mean == mean of mir_eval.onset.f_measure over files
        assert g["f1_file_mean"] == pytest.approx(np.mean(f1s))
    o = r["overall"]
    assert o["tp"] == sum(r["per_class"][lab]["tp"] for lab in labels)
    assert o["f1_class_mean"] == pytest.approx(np.mean([r["per_class"][x]["f1"] for x in labels]))


@pytest.mark.parametrize("seed", range(2))
def test_per_file_f1_equals_mir_eval_transcription_onset_only(seed):
    # the published piano/drum protocol: mir_eval.transcription, onset-only, one "pitch" per class
    rng = np.random.default_rng(400 + seed)
    labels = ["HH", "KD", "SD"]
    ref, est = _random_dataset(rng, 4, labels)
    r = evaluate(ref, est, empty_policy="zero")
    hz = {lab: mir_eval.util.midi_to_hz(60 + 5 * k) for k, lab in enumerate(labels)}
    for fid in ref:
        if not ref[fid] or not est[fid]:
            continue

        def notes(events):
            t = np.array([e[0] for e in events])
            return np.stack([t, t + 1.0], axis=1), np.array([hz[e[1]] for e in events])

        (ri, rp), (ei, ep) = notes(ref[fid]), notes(est[fid])
        p, rec, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ri, rp, ei, ep, onset_tolerance=0.05, offset_ratio=None
        )
        assert r["per_file"][fid]["f1"] == pytest.approx(f)
        assert r["per_file"][fid]["precision"] == pytest.approx(p)
        assert r["per_file"][fid]["recall"] == pytest.approx(rec)


def test_evaluate_count_metrics_by_hand():
    ref = {"a": [(1.0, "KD"), (2.0, "KD"), (1.5, "SD")], "b": [(0.2, "SD")]}
    est = {"a": [(1.0, "KD"), (3.0, "SD"), (4.0, "SD")], "b": [(0.2, "SD")]}
    r = evaluate(ref, est)
    # (file, class) counts ref/est: a-KD 2/1, a-SD 1/2, b-KD 0/0, b-SD 1/1
    assert r["overall"]["count_exact_rate"] == pytest.approx(2 / 4)
    assert r["overall"]["count_mae"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert r["overall"]["n_counts"] == 4
    assert r["per_class"]["KD"]["count_exact_rate"] == pytest.approx(1 / 2)
    assert r["per_class"]["SD"]["count_mae"] == pytest.approx(1 / 2)


def test_evaluate_has_the_keys_the_cli_needs_and_serialises_to_strict_json():
    ref = {"a": [(1.0, "KD")], "b": []}
    est = {"a": [(1.01, "KD")], "b": []}
    r = evaluate(ref, est, classes=["KD", "SD"])
    for key in ("f1", "precision", "recall", "f1_file_mean", "time_error_mean_s"):
        assert key in r["overall"]
    assert set(r["per_class"]) == {"KD", "SD"} and "f1" in r["per_class"]["SD"]
    assert r["settings"] == {
        "tolerance_s": 0.05,
        "empty_policy": "skip",
        "classes": ["KD", "SD"],
        "n_files": 2,
    }
    text = results_to_json(r)
    back = json.loads(text)  # strict parsers reject NaN; undefined values must be null
    assert "NaN" not in text
    assert back["per_class"]["SD"]["f1"] is None
    assert back["overall"]["f1"] == 1.0


def test_format_table_lists_every_class_and_overall():
    ref = {"a": [(1.0, "KD"), (2.0, "SD")]}
    est = {"a": [(1.0, "KD")]}
    table = format_table(evaluate(ref, est, classes=["KD", "SD", "HH"]))
    lines = table.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[3:] if line and line[0].isalpha()}
    assert rows["KD"][1] == "1.000" and rows["SD"][1] == "0.000" and rows["HH"][1] == "-"
    assert rows["overall"][1] == "0.667"
    assert "tolerance +-50 ms" in lines[0]
    with pytest.raises(ValueError, match="format_table: `results` must be the dict returned by"):
        format_table({"f1": 1.0})


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref, exc, match",
    [
        ([-0.1, 1.0], ValueError, r"onset_scores: `reference_s` must be >= 0 seconds.*clip"),
        ([np.nan], ValueError, "`reference_s` must be finite"),
        ([[1.0, 2.0]], ValueError, r"must be a 1-D array of event times, got shape \(1, 2\)"),
        ([40000.0], ValueError, "times must be in seconds"),
        (["1.0"], TypeError, "must hold real numbers"),
        ([True], TypeError, "must hold real numbers"),
    ],
)
def test_event_validation_errors(ref, exc, match):
    with pytest.raises(exc, match=match):
        onset_scores(ref, [1.0])


def test_validate_returns_float_arrays_and_accepts_unsorted_and_empty():
    r, e = validate([2.0, 1.0], [])
    assert r.tolist() == [2.0, 1.0] and r.dtype == np.float64 and e.shape == (0,)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"tolerance_s": -0.01}, ValueError, r"onset_scores: `tolerance_s` must be >= 0 seconds"),
        ({"tolerance_s": "50ms"}, TypeError, "`tolerance_s` must be a real number"),
        (
            {"empty_policy": "nan"},
            ValueError,
            r"`empty_policy` must be one of \('skip', 'zero', 'one'\)",
        ),
    ],
)
def test_setting_validation_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        onset_scores([1.0], [1.0], **kwargs)


@pytest.mark.parametrize(
    "ref, est, kwargs, exc, match",
    [
        ({"a": []}, {"b": []}, {}, ValueError, r"same file ids; missing from estimate: \['a'\]"),
        (
            {"a": [(1.0, "KD")]},
            {"a": [(1.0, "XX")]},
            {"classes": ["KD"]},
            ValueError,
            r"labels \['XX'\] that are not in `classes`",
        ),
        (
            {"a": [(1.0, 3)]},
            {"a": []},
            {},
            TypeError,
            r"reference\['a'\]\[0\]: expected a \(time_s, label\) pair",
        ),
        (
            {"a": [(-1.0, "KD")]},
            {"a": []},
            {},
            ValueError,
            r"reference\['a'\]\[0\]: time must be finite, >= 0",
        ),
        (
            {"a": [("x", "KD")]},
            {"a": []},
            {},
            TypeError,
            r"time must be a number of seconds, got 'x'",
        ),
        ([(1.0, "KD")], {"a": []}, {}, TypeError, "`reference` must be a mapping file_id"),
        ({1: []}, {1: []}, {}, TypeError, "keys must be str file ids"),
        ({"a": "KD"}, {"a": []}, {}, TypeError, r"reference\['a'\] must be a list of"),
        ({"a": []}, {"a": []}, {"classes": ["KD", "KD"]}, ValueError, "`classes` has duplicates"),
        ({"a": []}, {"a": []}, {"classes": "KD"}, TypeError, "`classes` must be a sequence of str"),
    ],
)
def test_evaluate_validation_errors(ref, est, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        evaluate(ref, est, **kwargs)


def test_docstring_examples_run():
    import doctest

    import softloc.metrics.onsets

    result = doctest.testmod(softloc.metrics.onsets)
    assert result.failed == 0 and result.attempted >= 5
