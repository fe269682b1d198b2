"""Tests for softloc.metrics.counts: hand-worked counts and the shared count policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from softloc.metrics import count_metrics


def test_count_metrics_by_hand():
    out = count_metrics([2, 0, 3, 1], [2, 1, 1, 1])
    assert out == {"count_exact_rate": 0.5, "count_mae": 0.75, "n_counts": 4}
    empty = count_metrics([], [])
    assert math.isnan(empty["count_exact_rate"]) and empty["n_counts"] == 0


def test_whole_floats_and_tensors_are_counts():
    out = count_metrics(np.array([2.0, 0.0]), torch.tensor([1, 0]))
    assert out == {"count_exact_rate": 0.5, "count_mae": 0.5, "n_counts": 2}


@pytest.mark.parametrize(
    "ref, est, exc, match",
    [
        (
            [1, 2],
            [1],
            ValueError,
            "count_metrics: `reference_counts` and `estimated_counts` must have the same length",
        ),
        ([1], [1.5], TypeError, "count_metrics: `estimated_counts` must hold integers"),
        ([1], [np.inf], TypeError, "`estimated_counts` must hold integers"),
        ([True], [1], TypeError, "`reference_counts` must hold integers.*got dtype bool"),
        ([-1], [1], ValueError, "`reference_counts` must be >= 0, found -1"),
        ([[1]], [[1]], ValueError, r"`reference_counts` must be 1-D, got shape \(1, 1\)"),
    ],
)
def test_validation_errors_name_function_and_argument(ref, est, exc, match):
    with pytest.raises(exc, match=match):
        count_metrics(ref, est)


def test_docstring_examples_run():
    import doctest

    import softloc.metrics.counts

    result = doctest.testmod(softloc.metrics.counts)
    assert result.failed == 0 and result.attempted >= 1
