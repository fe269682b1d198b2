"""The count distribution: Poisson-binomial over frame probabilities (LoCo eq. 6, 9, 14).

Conventions: ``probs`` has shape ``(batch, class, time)`` with values in [0, 1]; each (batch, class)
row is an independent sequence of Bernoulli events, the number of events ``Y`` is
Poisson-binomial (LoCo eq. 6). The distribution is truncated to ``k_max + 1`` bins; the last bin is
*absorbing* and holds Pr(Y >= k_max) (LoCo eq. 14). ``lengths`` (batch,) masks the steps at and
beyond each sequence's length; an empty sequence has Pr(Y = 0) = 1.

Backends (all exact, all differentiable, all return the same numbers to rounding):

* ``"reference"``: the sequential recursion of LoCo eq. 9 in log space, one torch op per step,
  autograd through it. Slow; kept as the obviously-correct baseline.
* ``"cpu"``: fused numba kernels (``softloc.counting._cpu_kernels``) with a hand-written exact
  backward (forward-backward pass with gradient checkpoints, O(T * k_max) time, O(T / 32 * k_max)
  memory per row). Rows run in lockstep groups of 32 SIMD lanes, sorted by target count so that
  each group stops at the bins it needs; a few long rows are cut into chunks that fill the lanes.
  Float32 input is computed in float64; ``torch.get_num_threads()`` threads when there is enough
  work (tuning: :func:`set_cpu_options`). The first call compiles the kernels (~10 s, cached on
  disk by numba afterwards).
* ``"tree"``: log-depth tree of truncated products with a saturating top bin in plain torch ops
  (``softloc.counting._tree``), autograd through it. No kernel launch per time step; this is
  the GPU path.
* ``"auto"``: ``"cpu"`` for CPU tensors, ``"tree"`` otherwise (:func:`resolve_backend`).

How underflow is avoided without log space or ``+1e-9``: the fast backends run the linear-space
recursion in float64, where every state entry is a probability <= 1 and underflow only costs an
absolute error of ~1e-143 (values below 1e-150 are flushed to zero to keep the arithmetic out of
the slow subnormal range). A probability below 1e-120 is recomputed exactly on an exponentially
tilted problem, Pr(Y = n) = Pr'(Y = n) prod_t (1 - p_t + p_t e^lam) e^(-n lam) with
logit(p'_t) = logit(p_t) + lam, lam chosen so that the target count is near the tilted mean,
which brings the target back near the mode. The tilt is taken in log space (log p = -softplus(-x),
log(1 - p) = -softplus(x)), so it never forms e^lam: log-likelihoods of counts far in the tail
(count 0 with sum p = 5000, or logits of +-1e4 where p or 1 - p is below float64's range) are
finite and exact, and so are their gradients, d log Pr(Y = n) / d logit_t =
Pr(b_t = 1 | Y = n) - p_t, which are bounded in [-1, 1]. Only an exactly certain frame (p = 0
or 1, logit +-inf) makes a count impossible (-inf, with a zero gradient); a log-likelihood below
-1.8e308 (logits of ~1e308) overflows to -inf the same way.

Layout: :mod:`softloc.counting.api` (this API, the boundary checks and the dispatch),
``_reference`` (the log-space recursion), ``_cpu`` + ``_cpu_kernels`` (numba), ``_tree`` (torch).
Importing the package loads none of numba, scipy, mir_eval or the data / training code.
"""

from softloc.counting.api import (
    BACKENDS,
    count_distribution,
    count_log_likelihood,
    count_prior_bias,
    cpu_options,
    resolve_backend,
    set_cpu_options,
)

__all__ = [
    "BACKENDS",
    "count_distribution",
    "count_log_likelihood",
    "count_prior_bias",
    "cpu_options",
    "resolve_backend",
    "set_cpu_options",
]
