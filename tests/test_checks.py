"""Tests for softloc._checks: every validator's accept and reject branches, with the message."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from softloc import _checks as C

FN = "some_function"


# ------------------------------------------------------------------------------------------
# scalars


def test_scalars_accept_python_and_numpy_values():
    assert C.check_bool(FN, "flag", np.bool_(True)) is True
    assert C.check_int(FN, "n", np.int32(3), minimum=0) == 3
    assert C.check_positive_int(FN, "n", 2) == 2
    assert C.check_real(FN, "x", np.float32(0.5)) == 0.5
    assert math.isinf(C.check_real(FN, "x", math.inf, finite=False))
    assert C.check_frame_rate(FN, 200) == 200.0
    assert C.check_unit_float(FN, "alpha", 1) == 1.0
    assert C.check_choice(FN, "mode", "b", ("a", "b")) == "b"
    assert C.check_reduction(FN, "sum") == "sum"
    assert C.check_threshold(FN, 0.0, unit=True) == 0.0
    assert C.check_threshold(FN, -3.0, unit=False) == -3.0
    C.check_power_of_two(FN, "n", 8)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: C.check_bool(FN, "flag", 1),
            TypeError,
            "some_function: `flag` must be a bool, got int",
        ),
        (
            lambda: C.check_int(FN, "n", True),
            TypeError,
            "some_function: `n` must be an int, got bool",
        ),
        (lambda: C.check_int(FN, "n", 2.0), TypeError, "`n` must be an int, got float"),
        (lambda: C.check_int(FN, "n", -1, minimum=0), ValueError, "`n` must be >= 0, got -1"),
        (lambda: C.check_positive_int(FN, "k_max", 0), ValueError, "`k_max` must be >= 1, got 0"),
        (lambda: C.check_real(FN, "x", "1"), TypeError, "`x` must be a real number, got str"),
        (lambda: C.check_real(FN, "x", False), TypeError, "`x` must be a real number, got bool"),
        (lambda: C.check_real(FN, "x", math.nan), ValueError, "`x` must be finite, got nan"),
        (lambda: C.check_real(FN, "x", -1.0, minimum=0.0), ValueError, "`x` must be >= 0, got -1"),
        (
            lambda: C.check_real(FN, "x", math.nan, finite=False, minimum=0.0),
            ValueError,
            "`x` must be >= 0",
        ),
        (lambda: C.check_real(FN, "x", 0.0, positive=True), ValueError, "`x` must be > 0, got 0"),
        (
            lambda: C.check_frame_rate(FN, -5.0),
            ValueError,
            r"some_function: `frame_rate` must be > 0 \(frames per second\), got -5",
        ),
        (lambda: C.check_unit_float(FN, "beta", "0.5"), TypeError, "`beta` must be a float in"),
        (lambda: C.check_unit_float(FN, "beta", 1.5), ValueError, r"`beta` must lie in \[0, 1\]"),
        (lambda: C.check_choice(FN, "mode", "c", ("a", "b")), ValueError, r"one of \('a', 'b'\)"),
        (lambda: C.check_reduction(FN, "avg"), ValueError, "`reduction` must be one of"),
        (lambda: C.check_power_of_two(FN, "n", 6), ValueError, "`n` must be a power of two"),
        (lambda: C.check_threshold(FN, 1.0, unit=True), ValueError, r"must lie in \[0, 1\)"),
        (lambda: C.check_threshold(FN, math.inf, unit=False), ValueError, "must be finite"),
    ],
)
def test_scalar_rejections_name_function_argument_and_value(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------------------
# tensors


def test_tensor_checks_accept_valid_input():
    p = torch.rand(2, 3, 5)
    assert C.check_tensor(FN, "probs", p) is p
    C.check_ndim(FN, "probs", p, 3, "(batch, class, time)")
    C.check_float(FN, "probs", p)
    C.check_probabilities(FN, "probs", p)
    C.check_probabilities(FN, "probs", torch.zeros(0, 3, 5))
    C.check_logits(FN, "probs", torch.tensor([[[-math.inf, 0.0, math.inf]]]))
    assert C.check_scores(FN, "probs", p, logits=False) is p
    assert C.check_lengths(FN, None, 2, 5) is None
    C.check_lengths(FN, torch.tensor([0, 5]), 2, 5)
    C.check_lengths(FN, torch.tensor([0.0, 5.0]), 2, 5)
    C.check_counts(FN, torch.tensor([[0, 1, 2], [3, 4, 5]]), (2, 3))
    C.check_counts(FN, torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]), (2, 3))
    C.check_targets(FN, torch.zeros(2, 3, 5), (2, 3, 5))
    C.check_targets(FN, torch.zeros(2, 3, 5, dtype=torch.bool), (2, 3, 5))
    assert C.check_sigma(FN, 2, None) == 2.0
    assert math.isinf(C.check_sigma(FN, math.inf, None))
    C.check_sigma(FN, torch.tensor([0.0, math.inf]), 2)
    assert C.check_finite_sigma(FN, 0) == 0.0


P = torch.rand(2, 3, 5)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: C.check_tensor(FN, "probs", [1.0]),
            TypeError,
            "`probs` must be a torch.Tensor, got list",
        ),
        (
            lambda: C.check_ndim(FN, "probs", P[0], 3, "(batch, class, time)"),
            ValueError,
            r"`probs` must have shape \(batch, class, time\) \(3 dims\), got shape \(3, 5\)",
        ),
        (
            lambda: C.check_float(FN, "probs", P.long()),
            TypeError,
            "floating-point tensor, got dtype torch.int64",
        ),
        (
            lambda: C.check_probabilities(FN, "probs", P + 1),
            ValueError,
            r"probabilities in \[0, 1\]",
        ),
        (
            lambda: C.check_probabilities(FN, "probs", torch.full((1,), math.nan)),
            ValueError,
            r"found values in \[-1, nan\]",
        ),
        (
            lambda: C.check_logits(FN, "probs", torch.full((1,), math.nan)),
            ValueError,
            "must not contain NaN",
        ),
        (lambda: C.check_scores(FN, "probs", P, logits=1), TypeError, "`logits` must be a bool"),
        (lambda: C.check_scores(FN, "probs", P[0], logits=True), ValueError, r"\(3 dims\)"),
        (lambda: C.check_lengths(FN, [5, 5], 2, 5), TypeError, "`lengths` must be a torch.Tensor"),
        (
            lambda: C.check_lengths(FN, torch.tensor([5]), 2, 5),
            ValueError,
            r"shape \(batch,\) = \(2,\)",
        ),
        (
            lambda: C.check_lengths(FN, torch.tensor([True, False]), 2, 5),
            TypeError,
            "`lengths` must be an integer or float tensor, got torch.bool",
        ),
        (lambda: C.check_lengths(FN, torch.tensor([1.5, 2.0]), 2, 5), ValueError, "whole numbers"),
        (
            lambda: C.check_lengths(FN, torch.tensor([-1, 6]), 2, 5),
            ValueError,
            r"\[0, time=5\], got values in \[-1, 6\]",
        ),
        (lambda: C.check_counts(FN, [[1]], (1, 1)), TypeError, "`counts` must be a torch.Tensor"),
        (
            lambda: C.check_counts(FN, torch.ones(2, 3, dtype=torch.bool), (2, 3)),
            TypeError,
            "`counts` must be an integer or float tensor, got torch.bool",
        ),
        (
            lambda: C.check_counts(FN, torch.ones(3, 2), (2, 3)),
            ValueError,
            r"\(batch, class\) = \(2, 3\), got \(3, 2\)",
        ),
        (
            lambda: C.check_counts(FN, torch.tensor([[math.inf]]), (1, 1)),
            ValueError,
            "must be finite, found NaN or inf",
        ),
        (
            lambda: C.check_counts(FN, torch.tensor([[math.nan]]), (1, 1)),
            ValueError,
            "must be finite",
        ),
        (
            lambda: C.check_counts(FN, torch.tensor([[0.5]]), (1, 1)),
            ValueError,
            "whole numbers of events",
        ),
        (
            lambda: C.check_counts(FN, torch.tensor([[-2]]), (1, 1)),
            ValueError,
            "`counts` must be >= 0, got minimum -2",
        ),
        (
            lambda: C.check_targets(FN, torch.zeros(2, 3), (2, 3, 5)),
            ValueError,
            "`targets` must have the shape of `probs`",
        ),
        (
            lambda: C.check_targets(FN, torch.full((1,), 2.0), (1,)),
            ValueError,
            r"label values in \[0, 1\]",
        ),
        (
            lambda: C.check_sigma(FN, torch.ones(2), None),
            TypeError,
            "`sigma` must be a float, got a tensor",
        ),
        (lambda: C.check_sigma(FN, torch.ones(3), 2), ValueError, r"shape \(batch,\) = \(2,\)"),
        (
            lambda: C.check_sigma(FN, torch.tensor([1.0, -1.0]), 2),
            ValueError,
            "inf for count-only items",
        ),
        (lambda: C.check_sigma(FN, "20", None), TypeError, r"`sigma` must be a float \(frames\)"),
        (lambda: C.check_sigma(FN, math.nan, None), ValueError, "`sigma` must be >= 0 frames"),
        (lambda: C.check_finite_sigma(FN, math.inf), ValueError, "finite number of frames"),
    ],
)
def test_tensor_rejections_name_function_argument_and_value(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _count_syncs(monkeypatch) -> list:
    # Every way a check reads a device value back to the host: __bool__, item, tolist.
    calls = []
    for name in ("__bool__", "__float__", "item", "tolist"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            calls.append(1)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return calls


def test_count_checks_cost_one_host_sync_on_valid_input(monkeypatch):
    calls = _count_syncs(monkeypatch)
    C.check_counts(FN, torch.tensor([[0.0, 2.0]]), (1, 2))
    C.check_lengths(FN, torch.tensor([1.0, 2.0]), 2, 5)
    assert len(calls) == 2
    C.check_probabilities(FN, "probs", P.half())  # a dtype numpy lacks: torch's reduction
    assert len(calls) == 3
    C.check_probabilities(FN, "probs", P)  # CPU float32: numpy reads it, no tensor op
    C.check_logits(FN, "probs", P.double())
    assert len(calls) == 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("transposed", [False, True])
def test_probability_and_logit_checks_agree_across_dtypes_and_layouts(dtype, transposed):
    # float32/64 on CPU are read by numpy, the others by torch: same verdicts and messages.
    def make(values):
        x = torch.tensor(values, dtype=dtype).reshape(1, 2, 3)
        return x.transpose(1, 2).contiguous().transpose(1, 2) if transposed else x

    C.check_probabilities(FN, "probs", make([0.0, 0.5, 1.0, 0.25, 0.75, 1.0]))
    C.check_logits(FN, "probs", make([-math.inf, 0.0, math.inf, -3.0, 3.0, 7.0]))
    with pytest.raises(ValueError, match=r"found values in \[-0.5, 1\]"):
        C.check_probabilities(FN, "probs", make([0.0, 0.5, 1.0, -0.5, 0.75, 1.0]))
    with pytest.raises(ValueError, match=r"found values in \[0, 2\]"):
        C.check_probabilities(FN, "probs", make([0.0, 0.5, 2.0, 0.25, 0.75, 1.0]))
    with pytest.raises(ValueError, match=r"found values in \[-1, nan\]"):
        C.check_probabilities(FN, "probs", make([0.0, 0.5, 1.0, math.nan, 0.75, 1.0]))
    with pytest.raises(ValueError, match="must not contain NaN"):
        C.check_logits(FN, "probs", make([-math.inf, 0.0, math.inf, math.nan, 3.0, 7.0]))


# ------------------------------------------------------------------------------------------
# arrays


def test_arrays_accept_numpy_and_tensors():
    out = C.as_float64_array(FN, "probs", torch.zeros(2, 3), 2, "(class, time)")
    assert out.dtype == np.float64 and out.shape == (2, 3)
    C.check_unit_interval(FN, "probs", out)
    counts = C.as_count_array(FN, "counts", np.array([1.0, 2.0]))
    assert counts.dtype == np.int64 and counts.tolist() == [1, 2]
    assert C.as_count_array(FN, "counts", []).shape == (0,)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: C.as_float64_array(FN, "p", [[0.0]], 2, "(class, time)"),
            TypeError,
            "numpy.ndarray or torch.Tensor",
        ),
        (
            lambda: C.as_float64_array(FN, "p", np.zeros((2, 2), int), 2, "(c, t)"),
            TypeError,
            "floating-point array",
        ),
        (
            lambda: C.as_float64_array(FN, "p", torch.zeros(2, dtype=torch.int64), 2, "(c, t)"),
            TypeError,
            "floating-point tensor",
        ),
        (
            lambda: C.as_float64_array(FN, "p", np.zeros(3), 2, "(class, time)"),
            ValueError,
            r"pass x\[None\]",
        ),
        (
            lambda: C.as_float64_array(FN, "p", np.zeros((1, 2, 3)), 2, "(class, time)"),
            ValueError,
            "loop over the batch",
        ),
        (
            lambda: C.as_float64_array(FN, "p", np.full((1, 1), np.nan), 2, "(c, t)"),
            ValueError,
            "must be finite",
        ),
        (lambda: C.check_unit_interval(FN, "p", np.array([1.5])), ValueError, "apply a sigmoid"),
        (lambda: C.as_count_array(FN, "n", np.array([True])), TypeError, "`n` must hold integers"),
        (lambda: C.as_count_array(FN, "n", np.array([np.inf])), TypeError, "whole, finite floats"),
        (
            lambda: C.as_count_array(FN, "n", np.array([-3])),
            ValueError,
            "`n` must be >= 0, found -3",
        ),
    ],
)
def test_array_rejections_name_function_argument_and_value(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
