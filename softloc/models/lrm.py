"""LR-M: a logistic-regression event detector learned from temporally imprecise labels.

The baseline of SoftLoc §5.2 (Table 3), after Adams & Marlin (2017). A sequence of ``T`` steps
with features ``x_t`` has latent true labels ``y_t in {0, 1}``, independent given the features::

    p(y_t = 1 | x_t) = sigmoid(w . x_t + b)                          (the detector)

The annotator's ``K`` label steps ``z_1 <= ... <= z_K`` are noisy copies of the ``K`` true events
``s_1 < ... < s_K`` (the steps where ``y_t = 1``), in the same order, each displaced by at most
``max_shift`` steps::

    p(z | y) = prod_k g(z_k - s_k)   if y has exactly K events, else 0
    g(d) ∝ exp(-d² / (2 noise_sd²)) on |d| <= max_shift   (uniform when noise_sd is None)

Learning maximises the marginal likelihood ``sum_seq log p(z | x) - l2/2 |w|²`` by EM:

* E-step: the posterior marginals ``q_t = Pr(y_t = 1 | z, x)`` by a forward-backward recursion
  over (step ``t``, events so far ``k``) in log space (:func:`alignment_posterior`, O(T K)).
* M-step: a logistic regression on the soft targets ``q_t`` (L2-penalised, L-BFGS).

Each EM iteration increases the penalised marginal likelihood; it stops when the relative
increase falls below ``tol``. Prediction is the plain detector ``p(y_t = 1 | x_t)`` (no labels
at test time). Features are standardised with the training mean and standard deviation, and
``context`` stacks the features of neighbouring steps (a step sees ``x_{t-c..t+c}``).

Notes:
    What we implemented from the paper's description, and where we depart from it: Adams &
    Marlin maximise the same kind of marginal likelihood directly with L-BFGS and also LEARN the
    noise model (a Gaussian offset with mean and scale under priors, and label-flip
    probabilities that allow spurious and missed labels). Here the noise model is fixed (a
    window of ``max_shift`` steps, uniform or Gaussian) and every label is one true event, so a
    sequence whose labels cannot be placed (more labels than steps, or two labels on one step
    with ``max_shift = 0``) is an error. The gradient of ``log p(z | x)`` with respect to the
    detector's logit ``a_t`` is ``q_t - p_t``, the gradient of EM's M-step objective at the
    current parameters, so both procedures have the same fixed points.

References:
    R. J. Adams, B. M. Marlin. Learning Time Series Detection Models from Temporally Imprecise
    Labels. AISTATS 2017 (arXiv:1611.02258).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit, logsumexp

from softloc._checks import check_int, check_real

__all__ = ["LRM", "alignment_posterior", "shift_log_weights"]


def shift_log_weights(max_shift: int, noise_sd: float | None = None) -> np.ndarray:
    """Log noise weights ``log g(d)`` for offsets ``d = -max_shift .. max_shift`` (sum of g = 1).

    Args:
        max_shift: largest label displacement in steps (>= 0).
        noise_sd: standard deviation in steps of the Gaussian over offsets; ``None``: uniform.

    Returns:
        float64 ``(2 * max_shift + 1,)``, index ``d + max_shift``.
    """
    fn = "shift_log_weights"
    delta = check_int(fn, "max_shift", max_shift, minimum=0)
    d = np.arange(-delta, delta + 1, dtype=np.float64)
    if noise_sd is None:
        logits = np.zeros_like(d)
    else:
        sd = check_real(fn, "noise_sd", noise_sd, positive=True, unit=" steps")
        logits = -0.5 * (d / sd) ** 2
    return logits - logsumexp(logits)


def _check_labels(fn: str, label_steps: object, n_steps: int) -> np.ndarray:
    z = np.asarray(label_steps)
    if z.ndim != 1 or (z.size and not np.issubdtype(z.dtype, np.integer)):
        raise ValueError(f"{fn}: `label_steps` must be a 1-D sequence of integer steps, got "
                         f"dtype {z.dtype} shape {z.shape}")
    if z.size and (z.min() < 0 or z.max() >= n_steps):
        raise ValueError(f"{fn}: `label_steps` must lie in [0, {n_steps - 1}], got values in "
                         f"[{z.min()}, {z.max()}]")
    return np.sort(z.astype(np.int64))


def alignment_posterior(logits: np.ndarray, label_steps: Sequence[int] | np.ndarray, *,
                        max_shift: int, noise_sd: float | None = None
                        ) -> tuple[np.ndarray, float]:
    """Posterior event marginals ``Pr(y_t = 1 | z, x)`` and ``log p(z | x)`` of one sequence.

    Forward ``alpha[t, k]``: log-probability that steps ``0..t`` hold exactly the first ``k``
    events, each within ``max_shift`` of its label; backward ``beta[t, k]``: that steps
    ``t+1..T-1`` hold the remaining ``K - k``. The event at step ``t`` as the ``k``-th has
    posterior ``exp(alpha[t-1, k-1] + log p_t + log g(z_k - t) + beta[t, k] - log Z)``.

    Args:
        logits: detector logits ``a_t`` ``(time,)``; ``p_t = sigmoid(a_t)``.
        label_steps: the ``K`` noisy label steps (any order; sorted internally).
        max_shift: largest label displacement in steps (>= 0).
        noise_sd: Gaussian noise scale in steps, or ``None`` for uniform offsets.

    Returns:
        ``(q, log_z)``: ``q`` float64 ``(time,)`` with ``sum(q) = K``, and ``log p(z | x)``.

    Raises:
        ValueError: bad shapes or steps, or labels that no alignment can explain
            (``log p(z | x) = -inf``).
    """
    fn = "alignment_posterior"
    a = np.asarray(logits, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"{fn}: `logits` must be a non-empty finite 1-D array (time,), got "
                         f"shape {a.shape}")
    n = a.size
    z = _check_labels(fn, label_steps, n)
    lg = shift_log_weights(max_shift, noise_sd)
    delta = lg.size // 2
    n_ev = z.size
    log_p, log_q = log_expit(a), log_expit(-a)  # log p_t, log (1 - p_t)
    if n_ev == 0:
        return np.zeros(n), float(log_q.sum())
    t = np.arange(n)
    off = t[None, :] - z[:, None]  # (K, T): s - z_k for the k-th event at step t
    # emit[k, t] = log p_t + log g(z_k - t), -inf outside the window
    emit = np.where(np.abs(off) <= delta, lg[np.clip(delta - off, 0, 2 * delta)], -np.inf)
    emit = emit + log_p[None, :]
    alpha = np.full((n + 1, n_ev + 1), -np.inf)  # alpha[t + 1] = after step t
    alpha[0, 0] = 0.0
    for s in range(n):
        stay = alpha[s] + log_q[s]
        move = np.full(n_ev + 1, -np.inf)
        move[1:] = alpha[s, :-1] + emit[:, s]
        alpha[s + 1] = np.logaddexp(stay, move)
    log_z = float(alpha[n, n_ev])
    if not np.isfinite(log_z):
        raise ValueError(f"{fn}: no alignment explains the labels {z.tolist()[:10]} in {n} steps "
                         f"with max_shift={delta} (two labels on one step need max_shift >= 1, "
                         "and every label must be within max_shift of a distinct step)")
    beta = np.full((n + 1, n_ev + 1), -np.inf)  # beta[t + 1] = steps after t
    beta[n, n_ev] = 0.0
    for s in range(n - 1, -1, -1):
        stay = log_q[s] + beta[s + 1]
        move = np.full(n_ev + 1, -np.inf)
        move[:-1] = emit[:, s] + beta[s + 1, 1:]
        beta[s] = np.logaddexp(stay, move)
    # event k (1-based) at step s: alpha[s, k-1] + emit[k-1, s] + beta[s+1, k]
    joint = alpha[:-1, :-1] + emit.T + beta[1:, 1:]  # (T, K)
    q = np.exp(logsumexp(joint, axis=1) - log_z)
    return np.clip(q, 0.0, 1.0), log_z


def _stack_context(x: np.ndarray, context: int) -> np.ndarray:
    """(feature, time) -> (time, feature * (2c + 1)): features of steps t-c..t+c, edge-padded."""
    xt = x.T  # (F, T) -> (T, F)
    if context == 0:
        return xt
    padded = np.pad(xt, ((context, context), (0, 0)), mode="edge")
    n = xt.shape[0]
    return np.concatenate([padded[i:i + n] for i in range(2 * context + 1)], axis=1)


class LRM:
    """LR-M (Adams & Marlin 2017): logistic regression trained by EM over label alignments.

    Args:
        max_shift: largest label displacement in steps the noise model allows (>= 0; 0 gives
            plain logistic regression on the labels).
        noise_sd: Gaussian scale of the displacement in steps, or ``None`` (uniform).
        l2: L2 penalty on the weights (not the bias), in units of the summed log-likelihood.
        context: neighbouring steps stacked into each step's features (0: the step alone).
        max_iter: EM iterations at most.
        tol: stop when the penalised log-likelihood rises by less than ``tol`` relatively.

    Attributes (after :meth:`fit`):
        coef_: weights ``(n_features * (2 context + 1),)`` on standardised features.
        intercept_: the bias.
        history_: penalised marginal log-likelihood after the initial fit and each EM step.

    Shape:
        every sequence is ``(n_features, time)``; outputs are ``(time,)``.
    """

    def __init__(self, *, max_shift: int = 2, noise_sd: float | None = None, l2: float = 1.0,
                 context: int = 0, max_iter: int = 30, tol: float = 1e-4) -> None:
        fn = "LRM"
        self.max_shift = check_int(fn, "max_shift", max_shift, minimum=0)
        self.noise_sd = None if noise_sd is None else check_real(fn, "noise_sd", noise_sd,
                                                                 positive=True)
        self.l2 = check_real(fn, "l2", l2, minimum=0.0)
        self.context = check_int(fn, "context", context, minimum=0)
        self.max_iter = check_int(fn, "max_iter", max_iter, minimum=0)
        self.tol = check_real(fn, "tol", tol, minimum=0.0)
        self.coef_: np.ndarray | None = None
        self.intercept_ = 0.0
        self.history_: list[float] = []

    # ------------------------------------------------------------------ helpers
    def _design(self, x: object, fn: str) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] == 0 or not np.isfinite(arr).all():
            raise ValueError(f"{fn}: every sequence must be a finite (n_features, time) array, "
                             f"got shape {arr.shape}")
        if self.coef_ is not None and arr.shape[0] != self.mean_.size:
            raise ValueError(f"{fn}: expected {self.mean_.size} features, got {arr.shape[0]}")
        return arr

    def _features(self, x: np.ndarray) -> np.ndarray:
        return _stack_context((x - self.mean_[:, None]) / self.scale_[:, None], self.context)

    def _m_step(self, feats: np.ndarray, q: np.ndarray, w0: np.ndarray) -> np.ndarray:
        """Penalised logistic regression on soft targets q (convex), from w0 = [w, b]."""
        l2 = self.l2

        def objective(wb: np.ndarray) -> tuple[float, np.ndarray]:
            a = feats @ wb[:-1] + wb[-1]
            nll = -(q * log_expit(a) + (1 - q) * log_expit(-a)).sum()
            r = expit(a) - q
            grad = np.append(feats.T @ r + l2 * wb[:-1], r.sum())
            return nll + 0.5 * l2 * wb[:-1] @ wb[:-1], grad

        return minimize(objective, w0, jac=True, method="L-BFGS-B").x

    def _penalised_loglik(self, feats: list[np.ndarray], labels: list[np.ndarray]
                          ) -> tuple[float, list[np.ndarray]]:
        total, qs = 0.0, []
        for f, z in zip(feats, labels, strict=True):
            q, log_z = alignment_posterior(f @ self.coef_ + self.intercept_, z,
                                           max_shift=self.max_shift, noise_sd=self.noise_sd)
            total += log_z
            qs.append(q)
        return total - 0.5 * self.l2 * float(self.coef_ @ self.coef_), qs

    # ------------------------------------------------------------------ API
    def fit(self, sequences: Sequence[np.ndarray],
            label_steps: Sequence[Sequence[int] | np.ndarray]) -> LRM:
        """Learn the detector from sequences and their noisy label steps.

        Args:
            sequences: feature arrays ``(n_features, time)``, one per sequence.
            label_steps: the label steps of each sequence (0-based step indices).

        Returns:
            ``self``.

        Raises:
            ValueError: mismatched lists, bad arrays, labels outside a sequence, or labels no
                alignment can explain (see :func:`alignment_posterior`).
        """
        fn = "LRM.fit"
        if len(sequences) != len(label_steps) or not sequences:
            raise ValueError(f"{fn}: need one label list per sequence and at least one sequence,"
                             f" got {len(sequences)} sequences and {len(label_steps)} label lists")
        self.coef_ = None
        xs = [self._design(x, fn) for x in sequences]
        if len({x.shape[0] for x in xs}) != 1:
            raise ValueError(f"{fn}: every sequence must have the same number of features, got "
                             f"{sorted({x.shape[0] for x in xs})}")
        labels = [_check_labels(fn, z, x.shape[1]) for x, z in zip(xs, label_steps, strict=True)]
        allx = np.concatenate(xs, axis=1)
        self.mean_ = allx.mean(axis=1)
        self.scale_ = np.where(allx.std(axis=1) > 1e-12, allx.std(axis=1), 1.0)
        feats = [self._features(x) for x in xs]
        stacked = np.concatenate(feats)
        # Initialise with the labels taken as exact (the "noise-free" detector).
        hard = np.concatenate([np.bincount(z, minlength=x.shape[1]).clip(max=1)
                               for x, z in zip(xs, labels, strict=True)]).astype(np.float64)
        wb = self._m_step(stacked, hard, np.zeros(stacked.shape[1] + 1))
        self.coef_, self.intercept_ = wb[:-1], float(wb[-1])
        objective, qs = self._penalised_loglik(feats, labels)
        self.history_ = [objective]
        for _ in range(self.max_iter):
            wb = self._m_step(stacked, np.concatenate(qs), wb)
            self.coef_, self.intercept_ = wb[:-1], float(wb[-1])
            new, qs = self._penalised_loglik(feats, labels)
            self.history_.append(new)
            if new - objective <= self.tol * max(1.0, abs(objective)):
                break
            objective = new
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Detector logits ``(time,)`` of one sequence ``(n_features, time)``."""
        if self.coef_ is None:
            raise RuntimeError("LRM.decision_function: call fit() first")
        return self._features(self._design(x, "LRM.decision_function")) @ self.coef_ \
            + self.intercept_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Event probabilities ``p(y_t = 1 | x_t)`` ``(time,)``."""
        return expit(self.decision_function(x))

    def predict(self, x: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
        """Steps with ``p > threshold`` as a boolean ``(time,)`` array."""
        thr = check_real("LRM.predict", "threshold", threshold, minimum=0.0)
        return self.predict_proba(x) > thr
