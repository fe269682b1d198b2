"""Evaluation metrics, one module per task (mir_eval style: ``(reference, estimate)``, numpy in,
floats out, a ``validate`` at the boundary, an ``evaluate`` that returns every metric).

- :mod:`softloc.metrics.onsets`: onset P/R/F1 with mir_eval matching, timing errors, aggregation
  over a dataset of labelled events (re-exported here).
- :mod:`softloc.metrics.counts`: exact-count rate and count MAE (re-exported here).
- :mod:`softloc.metrics.segments`: segmental F1@k, edit score and frame accuracy of action
  segmentations (import the submodule; its ``evaluate``/``validate`` are not re-exported).
"""

from softloc.metrics.counts import count_metrics
from softloc.metrics.onsets import (
    DEFAULT_TOLERANCE_S,
    MAX_TIME_S,
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
