"""The count distribution: Poisson-binomial over frame probabilities (LoCo eq. 6, 9, 14).

Conventions: ``probs`` has shape ``(batch, class, time)`` with values in [0, 1]; each (batch, class)
row is an independent sequence of Bernoulli events, the number of events ``Y`` is
Poisson-binomial (LoCo eq. 6). The distribution is truncated to ``k_max + 1`` bins; the last bin is
*absorbing* and holds Pr(Y >= k_max) (LoCo eq. 14). ``lengths`` (batch,) masks the steps at and
beyond each sequence's length; an empty sequence has Pr(Y = 0) = 1.

Backends (all exact, all differentiable, all return the same numbers to rounding):

* ``"reference"``: the sequential recursion of LoCo eq. 9 in log space, one torch op per step,
  autograd through it. Slow; kept as the obviously-correct baseline.
* ``"cpu"``: fused numba kernels (``softloc._count_kernels``) with a hand-written exact backward
  (forward-backward pass with gradient checkpoints, O(T * k_max) time, O(T / 32 * k_max) memory).
* ``"tree"``: log-depth tree of truncated products with a saturating top bin in plain torch ops
  (``softloc._count_kernels_tree``), autograd through it. No kernel launch per time step; this is
  the GPU path.
* ``"auto"``: ``"cpu"`` for CPU tensors, ``"tree"`` otherwise.

How underflow is avoided without log space or ``+1e-9``: the fast backends run the linear-space
recursion in float64, where every state entry is a probability <= 1 and underflow only costs an
absolute error of ~1e-316. A probability below 1e-250 is recomputed exactly on an exponentially
tilted problem (p'_t proportional to p_t e^lam, with lam chosen so that the target count is near
the tilted mean, Pr(Y = n) = Pr'(Y = n) prod_t (1 - p_t + p_t e^lam) e^(-n lam)), which brings the
target back near the mode. So log-likelihoods of counts far in the tail (count 0 with sum p = 5000)
are finite and exact, and so are their gradients, d log Pr(Y = n) / d logit_t =
Pr(b_t = 1 | Y = n) - p_t, which are bounded in [-1, 1].
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from softloc._validation import (
    check_float,
    check_lengths,
    check_ndim,
    check_positive_int,
    check_probabilities,
    check_tensor,
)

__all__ = ["count_distribution", "count_log_likelihood", "count_prior_bias", "BACKENDS"]

#: Accepted values of the ``backend`` argument.
BACKENDS = ("auto", "reference", "cpu", "tree")

# Probabilities below this are recomputed on the tilted problem (float64 linear space is exact to
# rounding down to ~1e-300; the margin covers (#ops) * 2^-1074 of absolute underflow error).
_SAFE = 1e-250
# Below this much work (rows * steps * bins) the CPU kernels do not spread over threads.
_MIN_PARALLEL_WORK = 2_000_000
_N_CPU = os.cpu_count() or 1


def count_prior_bias(num_steps: int, omega: float = 0.8) -> float:
    """Initial pre-sigmoid output bias so that Pr(no event in ``num_steps`` frames) = ``omega``.

    LoCo eq. 15: b = log((1 - omega^(1/T)) / omega^(1/T)); -7.4911 for T = 400, omega = 0.8.

    Args:
        num_steps: sequence length T in frames (>= 1).
        omega: target probability of an empty sequence at initialisation, in (0, 1).

    Returns:
        The bias b; sigmoid(b) = 1 - omega^(1/T) for every frame.

    Raises:
        TypeError: ``num_steps`` is not an int.
        ValueError: ``num_steps < 1`` or ``omega`` outside (0, 1).
    """
    fn = "count_prior_bias"
    check_positive_int(fn, "num_steps", num_steps)
    if not 0.0 < omega < 1.0:
        raise ValueError(f"{fn}: `omega` must lie in (0, 1), got {omega}")
    w = omega ** (1.0 / num_steps)
    return math.log((1.0 - w) / w)


# --------------------------------------------------------------------------------------------
# Boundary checks and shared preparation


def _check_backend(fn: str, backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"{fn}: `backend` must be one of {BACKENDS}, got {backend!r}")


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend != "auto":
        return backend
    return "cpu" if device.type == "cpu" else "tree"


def _check_input(fn: str, probs: object, logits: bool) -> torch.Tensor:
    x = check_tensor(fn, "probs", probs)
    check_ndim(fn, "probs", x, 3, "(batch, class, time)")
    if logits:
        check_float(fn, "probs", x)
        if x.numel() and bool(torch.isnan(x).any()):
            raise ValueError(f"{fn}: `probs` (logits=True) must not contain NaN")
    else:
        check_probabilities(fn, "probs", x)
    return x


def _row_lengths(lengths: torch.Tensor | None, b: int, c: int, t_len: int) -> torch.Tensor:
    """(batch,) -> (batch*class,) int64 on CPU; full length when ``lengths`` is None."""
    if lengths is None:
        return torch.full((b * c,), t_len, dtype=torch.int64)
    return lengths.detach().to("cpu").round().to(torch.int64).repeat_interleave(c)


def _pq(x: torch.Tensor, logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and their complements in float64 (autograd-capable)."""
    x64 = x.to(torch.float64)
    if logits:
        return torch.sigmoid(x64), torch.sigmoid(-x64)
    return x64, 1.0 - x64


def _feasible_range(
    p: torch.Tensor, q: torch.Tensor, steps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: number of sure events (p == 1) and of possible events (p > 0) among valid steps."""
    with torch.no_grad():
        valid = torch.arange(p.shape[1], device=p.device)[None, :] < steps.to(p.device)[:, None]
        lo = ((q == 0) & valid).sum(-1)
        hi = ((p > 0) & valid).sum(-1)
    return lo, hi


def _possible(n: torch.Tensor, k_max: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Pr(Y = n) > 0 for n < k_max, Pr(Y >= k_max) > 0 for n == k_max (exactly)."""
    return torch.where(n < k_max, (lo <= n) & (n <= hi), hi >= k_max)


def _tilt_targets(n: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Tilted mean to aim at: n, kept half a count inside the feasible range (lo < hi here)."""
    n = n.to(torch.float64)
    return torch.minimum(torch.maximum(n, lo.to(n.dtype) + 0.5), hi.to(n.dtype) - 0.5)


# --------------------------------------------------------------------------------------------
# Reference backend: LoCo eq. 9 and 14 in log space, one step at a time.


def _reference_log_states(
    log_p: torch.Tensor, log_q: torch.Tensor, k_max: int, steps: torch.Tensor
) -> torch.Tensor:
    """(R, T) log p, log(1 - p) -> (R, k_max + 1) log Pr(Y = k), last bin Pr(Y >= k_max)."""
    r = log_p.shape[0]
    pad = torch.nn.functional.pad
    # The state grows by one bin per step until it reaches k_max + 1, so it never holds -inf
    # (logaddexp(-inf, -inf) has a NaN gradient); rows are masked by reading the state after
    # `steps[r]` steps from the snapshots instead of freezing it.
    log_y = log_p.new_zeros(r, 1)
    snapshots = [pad(log_y, (0, k_max), value=-math.inf)]
    # unbind once: slicing column t in the loop would cost O(R * T) per step in the backward.
    for lp, lq in zip(log_p.unbind(1), log_q.unbind(1), strict=True):
        lp, lq = lp[:, None], lq[:, None]
        if log_y.shape[1] <= k_max:
            mid = torch.logaddexp(log_y[:, 1:] + lq, log_y[:, :-1] + lp)
            log_y = torch.cat([log_y[:, :1] + lq, mid, log_y[:, -1:] + lp], dim=1)
        else:
            mid = torch.logaddexp(log_y[:, 1:-1] + lq, log_y[:, :-2] + lp)
            top = torch.logaddexp(log_y[:, -1:], log_y[:, -2:-1] + lp)  # absorbing (eq. 14)
            log_y = torch.cat([log_y[:, :1] + lq, mid, top], dim=1)
        snapshots.append(pad(log_y, (0, k_max + 1 - log_y.shape[1]), value=-math.inf))
    stacked = torch.stack(snapshots)  # (T+1, R, K+1)
    return stacked[steps.to(log_p.device), torch.arange(r, device=log_p.device)]


def _reference(x: torch.Tensor, k_max: int, steps: torch.Tensor, logits: bool) -> torch.Tensor:
    x64 = x.to(torch.float64)
    if logits:
        log_p, log_q = torch.nn.functional.logsigmoid(x64), torch.nn.functional.logsigmoid(-x64)
    else:
        log_p, log_q = torch.log(x64), torch.log1p(-x64)
    return _reference_log_states(log_p, log_q, k_max, steps)


# --------------------------------------------------------------------------------------------
# CPU backend: numba kernels + exact backward.


def _kernels():
    from softloc import _count_kernels

    return _count_kernels


def _run_parallel(fn, n_jobs: int, work: int, *args) -> None:
    """Run ``fn(*args, lo, hi)`` over job ranges, on threads when there is enough work."""
    n_threads = min(torch.get_num_threads(), _N_CPU, n_jobs, work // _MIN_PARALLEL_WORK)
    if n_threads <= 1:
        fn(*args, 0, n_jobs)
        return
    bounds = np.linspace(0, n_jobs, n_threads + 1).astype(np.int64)
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        futures = [
            pool.submit(fn, *args, int(lo), int(hi))
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
            if hi > lo
        ]
        for f in futures:
            f.result()


class _Jobs:
    """A batch of kernel jobs: (row, width, tilt, top-bin discount) plus forward results."""

    def __init__(self, row, width, lam, disc):
        self.row = np.ascontiguousarray(row, dtype=np.int64)
        self.width = np.ascontiguousarray(width, dtype=np.int64)
        self.lam = np.ascontiguousarray(lam, dtype=np.float64)
        self.disc = np.ascontiguousarray(disc, dtype=np.float64)

    def forward(self, p: np.ndarray, q: np.ndarray, steps: np.ndarray) -> None:
        k = _kernels()
        n_jobs, w_max = len(self.row), int(self.width.max(initial=1))
        n_ckpt = max(1, -(-p.shape[1] // k.CKPT))
        self.ckpt = np.zeros((n_jobs, n_ckpt, w_max))
        self.states = np.zeros((n_jobs, w_max))
        self.csums = np.zeros(n_jobs)
        work = int(steps[self.row].sum()) * w_max if n_jobs else 0
        _run_parallel(
            k.forward_jobs, n_jobs, work, p, q, steps, self.row, self.width, self.lam,
            self.disc, self.ckpt, self.states, self.csums,
        )  # fmt: skip

    def backward(
        self, p: np.ndarray, q: np.ndarray, steps: np.ndarray, b_final: np.ndarray
    ) -> np.ndarray:
        k = _kernels()
        grads = np.zeros((len(self.row), p.shape[1]))
        work = (
            3 * int(steps[self.row].sum()) * int(self.width.max(initial=1)) if len(self.row) else 0
        )
        _run_parallel(
            k.backward_jobs, len(self.row), work, p, q, steps, self.row, self.width, self.lam,
            self.disc, self.ckpt, np.ascontiguousarray(b_final), grads,
        )  # fmt: skip
        return grads

    def top_value(self) -> np.ndarray:
        return self.states[np.arange(len(self.row)), self.width - 1]


def _tilted_jobs(
    p: np.ndarray,
    q: np.ndarray,
    steps: np.ndarray,
    rows: np.ndarray,
    n: np.ndarray,
    k_max: int,
    lo: np.ndarray,
    hi: np.ndarray,
) -> _Jobs:
    """Jobs that compute Pr(Y = n) (n < k_max) or Pr(Y >= k_max) on a tilted problem."""
    k = _kernels()
    target = _tilt_targets(torch.from_numpy(n), torch.from_numpy(lo), torch.from_numpy(hi))
    lam = np.zeros(len(rows))
    k.solve_tilts(p, q, steps, np.ascontiguousarray(rows, dtype=np.int64), target.numpy(), lam)
    top = n == k_max
    lam = np.where(top, np.maximum(lam, 0.0), lam)
    return _Jobs(rows, np.where(top, k_max + 1, n + 1), lam, np.where(top, np.exp(-lam), 0.0))


def _np_feasible_range(p: np.ndarray, q: np.ndarray, steps: np.ndarray):
    """Numpy twin of :func:`_feasible_range` for a few rows."""
    valid = np.arange(p.shape[1])[None, :] < steps[:, None]
    return ((q == 0) & valid).sum(1), ((p > 0) & valid).sum(1)


def _np_pq(x: torch.Tensor, logits: bool) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        p, q = _pq(x.detach().to("cpu"), logits)
    return np.ascontiguousarray(p.numpy()), np.ascontiguousarray(q.numpy())


def _chain(grads: np.ndarray, p: np.ndarray, q: np.ndarray, logits: bool) -> np.ndarray:
    """d/dp (along q = 1 - p) -> d/dx for the input parametrisation."""
    return grads * (p * q) if logits else grads


class _CpuLogLikelihood(torch.autograd.Function):
    """(R, T) probs or logits, (R,) counts -> (R,) float64 log Pr(Y = min(n, k_max))."""

    @staticmethod
    def forward(ctx, x, n, steps, k_max, logits):
        p, q = _np_pq(x, logits)
        n_np = n.numpy()
        steps_np = steps.numpy()
        top = n_np == k_max
        r = len(n_np)
        jobs = _Jobs(np.arange(r), np.where(top, k_max + 1, n_np + 1), np.zeros(r), top * 1.0)
        jobs.forward(p, q, steps_np)
        possible = np.ones(r, dtype=bool)
        low = np.flatnonzero(jobs.top_value() < _SAFE)
        redo = low[:0]
        if len(low):
            lo, hi = _np_feasible_range(p[low], q[low], steps_np[low])
            ok = _possible(
                torch.from_numpy(n_np[low]), k_max, torch.from_numpy(lo), torch.from_numpy(hi)
            ).numpy()
            possible[low] = ok
            redo, lo, hi = low[ok], lo[ok], hi[ok]
        if len(redo):
            sub = _tilted_jobs(p, q, steps_np, redo, n_np[redo], k_max, lo, hi)
            sub.forward(p, q, steps_np)
            for name in ("lam", "disc"):
                getattr(jobs, name)[redo] = getattr(sub, name)
            w = sub.ckpt.shape[2]
            jobs.ckpt[redo, :, :w] = sub.ckpt
            jobs.states[redo, :w] = sub.states
            jobs.csums[redo] = sub.csums
        value = jobs.top_value()
        with np.errstate(divide="ignore"):
            ll = np.where(possible, np.log(value) + jobs.csums - n_np * jobs.lam, -np.inf)
        ctx.saved = (p, q, steps_np, jobs, possible, value, logits)
        ctx.in_dtype = x.dtype
        return torch.from_numpy(ll)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        p, q, steps_np, jobs, possible, value, logits = ctx.saved
        r = len(jobs.row)
        b_final = np.zeros((r, jobs.states.shape[1]))
        with np.errstate(divide="ignore"):
            scale = np.where(possible, 1.0 / np.where(possible, value, 1.0), 0.0)
        b_final[np.arange(r), jobs.width - 1] = scale
        grads = jobs.backward(p, q, steps_np, b_final)
        grads = (
            _chain(grads, p, q, logits)
            * grad_out.detach().to("cpu", torch.float64).numpy()[:, None]
        )
        return torch.from_numpy(grads).to(ctx.in_dtype), None, None, None, None


class _CpuDistribution(torch.autograd.Function):
    """(R, T) probs or logits -> (R, k_max + 1) float64 distribution (or its log)."""

    @staticmethod
    def forward(ctx, x, steps, k_max, logits, log):
        p, q = _np_pq(x, logits)
        steps_np = steps.numpy()
        r = p.shape[0]
        rows = _Jobs(np.arange(r), np.full(r, k_max + 1), np.zeros(r), np.ones(r))
        rows.forward(p, q, steps_np)
        states = rows.states
        extra, out = None, states.copy()
        safe = np.ones_like(states, dtype=bool)
        if log:
            possible = np.ones_like(states, dtype=bool)
            lo = np.zeros(r, dtype=np.int64)
            hi = np.zeros(r, dtype=np.int64)
            low = np.flatnonzero((states < _SAFE).any(1))
            if len(low):
                lo[low], hi[low] = _np_feasible_range(p[low], q[low], steps_np[low])
                ks = torch.arange(k_max + 1)[None, :]
                possible[low] = _possible(
                    ks,
                    k_max,
                    torch.from_numpy(lo[low])[:, None],
                    torch.from_numpy(hi[low])[:, None],
                ).numpy()
            safe = possible & (states >= _SAFE)
            with np.errstate(divide="ignore"):
                out = np.where(safe, np.log(np.where(safe, states, 1.0)), -np.inf)
            er, ek = np.nonzero(possible & ~safe)
            if len(er):
                extra = _tilted_jobs(p, q, steps_np, er, ek, k_max, lo[er], hi[er])
                extra.forward(p, q, steps_np)
                out[er, ek] = np.log(extra.top_value()) + extra.csums - ek * extra.lam
                extra.cells = (er, ek)
        ctx.saved = (p, q, steps_np, rows, extra, safe, logits, log)
        ctx.in_dtype = x.dtype
        return torch.from_numpy(out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        p, q, steps_np, rows, extra, safe, logits, log = ctx.saved
        g = grad_out.detach().to("cpu", torch.float64).numpy()
        if log:
            # d log P_k = dP_k / P_k on safe bins; the others come from their own tilted jobs.
            b_final = np.where(safe, g / np.where(safe, rows.states, 1.0), 0.0)
        else:
            b_final = g
        grads = rows.backward(p, q, steps_np, b_final)
        if extra is not None:
            er, ek = extra.cells
            b_extra = np.zeros((len(er), extra.states.shape[1]))
            b_extra[np.arange(len(er)), extra.width - 1] = g[er, ek] / extra.top_value()
            np.add.at(grads, er, extra.backward(p, q, steps_np, b_extra))
        grads = _chain(grads, p, q, logits)
        return torch.from_numpy(grads).to(ctx.in_dtype), None, None, None, None


# --------------------------------------------------------------------------------------------
# Tree backend (torch ops; autograd through it).


def _tree_pq(x: torch.Tensor, steps: torch.Tensor, logits: bool):
    p, q = _pq(x, logits)
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < steps.to(x.device)[:, None]
    return torch.where(valid, p, 0.0), torch.where(valid, q, 1.0)


def _tree_tilted_log(
    p: torch.Tensor,
    q: torch.Tensor,
    n: torch.Tensor,
    k_max: int,
    lo: torch.Tensor,
    hi: torch.Tensor,
) -> torch.Tensor:
    """log Pr(Y = n) (n < k_max) / log Pr(Y >= k_max) per row via the tilted problem."""
    from softloc._count_kernels_tree import solve_tilt, tree_states

    lam = solve_tilt(p.detach(), q.detach(), _tilt_targets(n, lo, hi).to(p.device))
    top = n == k_max
    lam = torch.where(top, lam.clamp(min=0.0), lam)
    theta = lam.exp()[:, None]
    s = q + p * theta
    disc = torch.where(top, torch.exp(-lam), torch.zeros_like(lam))
    states = tree_states(p * theta / s, q / s, k_max + 1, disc)
    value = states.gather(1, n[:, None]).squeeze(1)
    return torch.log(value) + torch.log(s).sum(-1) - n * lam


def _tree_log_likelihood(x, n, steps, k_max, logits):
    from softloc._count_kernels_tree import tree_states

    n = n.to(x.device)
    p, q = _tree_pq(x, steps, logits)
    lo, hi = _feasible_range(p, q, steps)
    top = n == k_max
    states = tree_states(p, q, k_max + 1, top.to(p.dtype))
    value = states.gather(1, n[:, None]).squeeze(1)
    possible = _possible(n, k_max, lo, hi)
    redo = possible & (value.detach() < _SAFE)
    ok = possible & ~redo
    ll = torch.where(ok, torch.log(torch.where(ok, value, 1.0)), -math.inf)
    if bool(redo.any()):
        idx = redo.nonzero().squeeze(1)
        ll = ll.index_put((idx,), _tree_tilted_log(p[idx], q[idx], n[idx], k_max, lo[idx], hi[idx]))
    return ll


def _tree_distribution(x, steps, k_max, logits, log):
    from softloc._count_kernels_tree import tree_states

    p, q = _tree_pq(x, steps, logits)
    r = p.shape[0]
    states = tree_states(p, q, k_max + 1, p.new_ones(r))
    if not log:
        return states
    lo, hi = _feasible_range(p, q, steps)
    ks = torch.arange(k_max + 1, device=p.device)[None, :].expand(r, -1)
    possible = _possible(ks, k_max, lo[:, None], hi[:, None])
    safe = possible & (states.detach() >= _SAFE)
    out = torch.where(safe, torch.log(torch.where(safe, states, 1.0)), -math.inf)
    er, ek = torch.nonzero(possible & ~safe, as_tuple=True)
    if len(er):
        vals = _tree_tilted_log(p[er], q[er], ek, k_max, lo[er], hi[er])
        out = out.index_put((er, ek), vals)
    return out


# --------------------------------------------------------------------------------------------
# Public API


def count_distribution(
    probs: torch.Tensor,
    k_max: int,
    *,
    lengths: torch.Tensor | None = None,
    log: bool = False,
    logits: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Pr(Y = k) for k < k_max and Pr(Y >= k_max) in the last bin (LoCo eq. 6, 9, 14).

    Args:
        probs: event probabilities p(t) in [0, 1] (or logits when ``logits=True``).
        k_max: index of the absorbing top bin (>= 1); the output has ``k_max + 1`` bins.
        lengths: valid steps per batch item, integers in [0, time]; steps at and beyond are
            ignored. Default: all steps are valid.
        log: return log-probabilities (exact even far in the tails, -inf only where a bin is
            impossible because some p are exactly 0 or 1).
        logits: ``probs`` holds pre-sigmoid logits (any real, +-inf allowed); p = sigmoid(x)
            and 1 - p = sigmoid(-x) are then both exact.
        backend: ``"auto"``, ``"reference"``, ``"cpu"`` or ``"tree"`` (module docstring).

    Returns:
        The truncated count distribution in the dtype of ``probs`` (computed in float64).

    Raises:
        TypeError: a tensor argument is not a tensor, or has the wrong dtype.
        ValueError: wrong shapes, probabilities outside [0, 1] or NaN, ``k_max < 1``,
            ``lengths`` out of range, unknown ``backend``.

    Shape:
        probs ``(batch, class, time)``, lengths ``(batch,)`` -> ``(batch, class, k_max + 1)``.

    Notes:
        The fast backends (``"cpu"``, ``"tree"``) cost O(T * k_max) for ``log=False``. With
        ``log=True``, bins below 1e-250 are recomputed one by one on a tilted problem, which
        costs up to O(T * k_max^2) when most bins are that small. For the loss use
        :func:`count_log_likelihood`, which computes only the bin it needs.
    """
    fn = "count_distribution"
    x = _check_input(fn, probs, logits)
    check_positive_int(fn, "k_max", k_max)
    check_lengths(fn, lengths, x.shape[0], x.shape[2])
    _check_backend(fn, backend)
    b, c, t_len = x.shape
    steps = _row_lengths(lengths, b, c, t_len)
    xr = x.reshape(b * c, t_len)  # (B, C, T) -> (B*C, T)
    name = _resolve_backend(backend, x.device)
    if name == "reference":
        out = _reference(xr, k_max, steps, logits)
        out = out if log else out.exp()
    elif name == "cpu":
        out = _CpuDistribution.apply(xr.cpu(), steps, k_max, logits, log).to(x.device)
    else:
        out = _tree_distribution(xr, steps, k_max, logits, log)
    return out.to(x.dtype).reshape(b, c, k_max + 1)  # (B*C, K+1) -> (B, C, K+1)


def _check_counts(fn: str, counts: object, shape: tuple[int, int]) -> torch.Tensor:
    counts = check_tensor(fn, "counts", counts)
    if counts.dtype == torch.bool or counts.is_complex():
        raise TypeError(f"{fn}: `counts` must be an integer or float tensor, got {counts.dtype}")
    if tuple(counts.shape) != shape:
        raise ValueError(
            f"{fn}: `counts` must have shape (batch, class) = {shape}, got {tuple(counts.shape)}"
        )
    if counts.numel():
        if counts.is_floating_point():
            if not bool(torch.isfinite(counts).all()):
                raise ValueError(f"{fn}: `counts` must be finite, found NaN or inf")
            if not bool((counts == counts.round()).all()):
                raise ValueError(f"{fn}: `counts` must hold whole numbers of events")
        if bool((counts < 0).any()):
            raise ValueError(f"{fn}: `counts` must be >= 0, got minimum {counts.min().item():g}")
    return counts


def count_log_likelihood(
    probs: torch.Tensor,
    counts: torch.Tensor,
    k_max: int,
    *,
    lengths: torch.Tensor | None = None,
    logits: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """log Pr(Y = min(count, k_max)) per (batch, class): LoCo eq. 7 without the sign and sum.

    Counts at or above ``k_max`` are scored against the absorbing bin Pr(Y >= k_max) (LoCo eq. 14).

    Args:
        probs: event probabilities p(t) in [0, 1] (or logits when ``logits=True``).
        counts: observed numbers of events, whole numbers >= 0 (int or float dtype).
        k_max: index of the absorbing top bin (>= 1).
        lengths: valid steps per batch item, integers in [0, time]. Default: all valid.
        logits: ``probs`` holds pre-sigmoid logits; numerically preferable (1 - p is exact, no
            probability rounds to exactly 0 or 1 in float32).
        backend: ``"auto"``, ``"reference"``, ``"cpu"`` or ``"tree"`` (module docstring).

    Returns:
        Log-likelihoods in the dtype of ``probs`` (computed in float64). ``-inf`` exactly where
        the count is impossible (only when some p are exactly 0 or 1); the gradient of such an
        entry is set to 0 by the ``"cpu"`` and ``"tree"`` backends.

    Raises:
        TypeError: a tensor argument is not a tensor, or has the wrong dtype.
        ValueError: wrong shapes, probabilities outside [0, 1] or NaN, negative or fractional
            counts, ``k_max < 1``, ``lengths`` out of range, unknown ``backend``.

    Shape:
        probs ``(batch, class, time)``, counts ``(batch, class)``, lengths ``(batch,)`` ->
        ``(batch, class)``.

    Notes:
        The original code computes ``log(P + 1e-9)`` (LoCo) or ``log(P + 1e-12)`` (SoftLoc) of a
        linear-space recursion; that floors the loss and flattens the gradient whenever the
        target count is far from sum p, i.e. early in training. Here the value is exact and the
        gradient is the closed form d log Pr(Y = n) / d logit_t = Pr(b_t = 1 | Y = n) - p_t
        (field notes §4.2), computed by a forward-backward pass (``"cpu"``) or autograd through a
        tree (``"tree"``). The reference backend's autograd gradient is NaN at p exactly 0 or 1
        (derivative of log p); the other backends are finite there.
    """
    fn = "count_log_likelihood"
    x = _check_input(fn, probs, logits)
    b, c, t_len = x.shape
    cnt = _check_counts(fn, counts, (b, c))
    check_positive_int(fn, "k_max", k_max)
    check_lengths(fn, lengths, b, t_len)
    _check_backend(fn, backend)
    steps = _row_lengths(lengths, b, c, t_len)
    n = cnt.detach().reshape(b * c).to("cpu").clamp(max=k_max).to(torch.int64)  # (B, C) -> (B*C,)
    xr = x.reshape(b * c, t_len)  # (B, C, T) -> (B*C, T)
    name = _resolve_backend(backend, x.device)
    if name == "reference":
        log_y = _reference(xr, k_max, steps, logits)
        out = log_y.gather(1, n.to(x.device)[:, None]).squeeze(1)
    elif name == "cpu":
        out = _CpuLogLikelihood.apply(xr.cpu(), n, steps, k_max, logits).to(x.device)
    else:
        out = _tree_log_likelihood(xr, n, steps, k_max, logits)
    return out.to(x.dtype).reshape(b, c)  # (B*C,) -> (B, C)
