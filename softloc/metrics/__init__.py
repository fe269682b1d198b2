"""Evaluation metrics. ``onsets``: onset P/R/F1 with mir_eval matching, aggregation, count metrics."""

from softloc.metrics.onsets import (
    DEFAULT_TOLERANCE_S,
    MAX_TIME_S,
    count_metrics,
    evaluate,
    format_table,
    match_onsets,
    onset_scores,
    results_to_json,
    validate,
)

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "MAX_TIME_S",
    "count_metrics",
    "evaluate",
    "format_table",
    "match_onsets",
    "onset_scores",
    "results_to_json",
    "validate",
]
