"""softloc: detectors of instantaneous events trained from weak labels.

Counts only (LoCo, Schroeter et al. ICML 2019) or misaligned timestamps (SoftLoc, ICLR 2020
submission). Tensors follow the layout ``(batch, class, time)``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from softloc.counting import count_distribution, count_log_likelihood, count_prior_bias

__all__ = [
    "__version__",
    "count_distribution",
    "count_log_likelihood",
    "count_prior_bias",
]
