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
  (forward-backward pass with gradient checkpoints, O(T * k_max) time, O(T / 32 * k_max) memory
  per row). Rows run in lockstep groups of 32 SIMD lanes, sorted by target count so that each
  group stops at the bins it needs; a few long rows are cut into chunks that fill the lanes.
  Float32 input is computed in float64; ``torch.get_num_threads()`` threads when there is enough
  work. The first call compiles the kernels (~10 s, cached on disk by numba afterwards).
* ``"tree"``: log-depth tree of truncated products with a saturating top bin in plain torch ops
  (``softloc._count_kernels_tree``), autograd through it. No kernel launch per time step; this is
  the GPU path.
* ``"auto"``: ``"cpu"`` for CPU tensors, ``"tree"`` otherwise.

How underflow is avoided without log space or ``+1e-9``: the fast backends run the linear-space
recursion in float64, where every state entry is a probability <= 1 and underflow only costs an
absolute error of ~1e-143 (values below 1e-150 are flushed to zero to keep the arithmetic out of
the slow subnormal range). A probability below 1e-120 is recomputed exactly on an exponentially
tilted problem (p'_t proportional to p_t e^lam, with lam chosen so that the target count is near
the tilted mean, Pr(Y = n) = Pr'(Y = n) prod_t (1 - p_t + p_t e^lam) e^(-n lam)), which brings the
target back near the mode. So log-likelihoods of counts far in the tail (count 0 with sum p = 5000)
are finite and exact, and so are their gradients, d log Pr(Y = n) / d logit_t =
Pr(b_t = 1 | Y = n) - p_t, which are bounded in [-1, 1].
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from softloc._checks import (
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

# Probabilities below this are recomputed on the tilted problem: the linear-space kernels flush
# values below 1e-150 (see softloc._count_kernels.TINY), an absolute error of at most ~1e-143.
_SAFE = 1e-120
# Below this much work (rows * steps * bins) the CPU kernels do not spread over threads.
_MIN_PARALLEL_WORK = 1_500_000
_N_CPU = os.cpu_count() or 1
# With fewer rows than SIMD lanes, rows are cut into chunks of at least this many steps.
_MIN_CHUNK_STEPS = 256


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


_POOL: ThreadPoolExecutor | None = None
_POOL_KEY = (0, 0)  # (process id, workers) of _POOL
_POOL_LOCK = threading.Lock()


def _pool(n_threads: int) -> ThreadPoolExecutor:
    """A pool kept across calls (a new pool per call cost ~0.2 ms per loss evaluation).

    Remade after a fork (a forked child, e.g. a DataLoader worker, inherits the pool object but
    not its threads, and would wait on it forever) or when more workers are asked for.
    """
    global _POOL, _POOL_KEY
    with _POOL_LOCK:
        pid = os.getpid()
        if _POOL is None or _POOL_KEY[0] != pid or _POOL_KEY[1] < n_threads:
            if _POOL is not None and _POOL_KEY[0] == pid:
                _POOL.shutdown(wait=False)
            _POOL = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="softloc-count")
            _POOL_KEY = (pid, n_threads)
        return _POOL


def _run_parallel(fn: Callable[..., object], group_work: np.ndarray, *args: object) -> None:
    """Run ``fn(*args, lo, hi)`` over group ranges, on threads when there is enough work.

    ``group_work``: the cost of each group in bin updates. Ranges are cut at equal shares of it,
    not of the group count: groups are sorted by target count, so their costs grow along the list.
    """
    n_groups = len(group_work)
    work = int(group_work.sum())
    n_threads = min(torch.get_num_threads(), _N_CPU, n_groups, work // _MIN_PARALLEL_WORK)
    if n_threads <= 1:
        fn(*args, 0, n_groups)
        return
    cum = np.concatenate([[0.0], np.cumsum(group_work, dtype=np.float64)])
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n_threads) / n_threads)
    bounds = np.unique(np.clip(np.concatenate([[0], cuts, [n_groups]]), 0, n_groups))
    ranges = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    pool = _pool(n_threads)
    # The calling thread takes the first range itself (the kernels release the GIL).
    futures = [pool.submit(fn, *args, lo, hi) for lo, hi in ranges[1:]]
    fn(*args, *ranges[0])
    for f in futures:
        f.result()


class _Rows:
    """The (R, T) input rows on CPU, their lengths and parametrisation."""

    def __init__(self, x: torch.Tensor, steps: torch.Tensor, logits: bool):
        self.x = x.detach()
        self.r, self.t_len = x.shape
        self.logits = logits
        self.steps = np.ascontiguousarray(steps.numpy(), dtype=np.int64)
        self._np: np.ndarray | None = None  # x as a contiguous float32/64 array, made once

    def time_major(self, src: np.ndarray, padded: int) -> tuple[np.ndarray, np.ndarray]:
        """(T, padded) float64 p and q of rows ``src``; identity (p = 0, q = 1) elsewhere."""
        if self._np is None:
            x = self.x
            if x.dtype not in (torch.float32, torch.float64):
                x = x.to(torch.float64)
            self._np = x.contiguous().numpy()
        pt = np.empty((self.t_len, padded))
        qt = np.empty((self.t_len, padded))
        _kernels().gather_time_major(
            self._np, np.ascontiguousarray(src, dtype=np.int64), self.steps, self.logits, pt, qt
        )
        return pt, qt

    def time_major_chunks(self, src, t0, n_steps, padded: int) -> tuple[np.ndarray, np.ndarray]:
        """(S, padded) float64 p and q; lane i holds steps t0[i] .. t0[i] + n_steps[i] of row
        src[i] and the identity after them; S = max(n_steps)."""
        s_len = max(1, int(n_steps.max(initial=1)))
        pt = np.zeros((s_len, padded))
        qt = np.ones((s_len, padded))
        with torch.no_grad():
            for i, (r, a, n) in enumerate(zip(src, t0, n_steps, strict=True)):
                x64 = self.x[r, a : a + n].to(torch.float64)
                if self.logits:
                    pt[:n, i] = torch.sigmoid(x64).numpy()
                    qt[:n, i] = torch.sigmoid(-x64).numpy()
                else:
                    pt[:n, i] = x64.numpy()
                    qt[:n, i] = 1.0 - pt[:n, i]
        return pt, qt

    def row_major(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(idx), T) float64 p and q of a few rows, identity beyond their lengths."""
        pt, qt = self.time_major(idx, len(idx))
        return np.ascontiguousarray(pt.T), np.ascontiguousarray(qt.T)

    def chain(self, grads: np.ndarray) -> np.ndarray:
        """(R, T) d/dp along q = 1 - p -> d/dx for the input parametrisation (in place)."""
        if self.logits:
            x64 = self.x.to(torch.float64)
            grads *= (torch.sigmoid(x64) * torch.sigmoid(-x64)).numpy()
        return grads


class _Jobs:
    """Kernel jobs: input rows, each with a target bin, a tilt lam and a top-bin discount.

    A target n < k_max needs bins 0..n only, with an exact top bin (discount 0); the absorbing
    target n = k_max needs k_max + 1 bins with discount 1 (or e^-lam when tilted). Jobs are
    sorted by target so that each group of LANES lanes runs on the fewest bins its largest
    target needs (lanes with smaller targets ignore the bins above theirs). With fewer jobs
    than lanes, each row is cut into chunks that run in separate lanes and are multiplied
    together afterwards (the truncated product is exactly associative).
    """

    def __init__(self, rows: _Rows, row, target, disc, k_max, lam=None):
        k = _kernels()
        self.target = np.asarray(target, dtype=np.int64)
        n_jobs = len(self.target)
        self.row = np.arange(n_jobs) if row is None else np.asarray(row, dtype=np.int64)
        self.lam = np.zeros(n_jobs) if lam is None else lam
        self.job_disc = np.asarray(disc, dtype=np.float64)
        self.width = k_max + 1
        self.t_len = rows.t_len
        order = np.argsort(self.target, kind="stable")
        n_chunks = max(1, min(k.LANES // max(n_jobs, 1), rows.t_len // _MIN_CHUNK_STEPS))
        self.n_chunks = n_chunks
        if n_chunks == 1:
            self.lane_job = order  # lane i runs job lane_job[i] on its whole row
            self.lane_t0 = np.zeros(n_jobs, dtype=np.int64)
            self.lane_len = rows.steps[self.row[order]]
        else:  # lane i runs chunk lane_chunk[i] of job lane_job[i]
            self.lane_job = np.repeat(order, n_chunks)
            size = -(-rows.steps[self.row[self.lane_job]] // n_chunks)
            chunk = np.tile(np.arange(n_chunks), n_jobs)
            self.lane_t0 = np.minimum(chunk * size, rows.steps[self.row[self.lane_job]])
            end = np.minimum((chunk + 1) * size, rows.steps[self.row[self.lane_job]])
            self.lane_len = end - self.lane_t0
        n_lanes = len(self.lane_job)
        self.n_groups = -(-n_lanes // k.LANES)
        padded = self.n_groups * k.LANES
        src = self.row[self.lane_job]
        if n_chunks == 1:
            self.pt, self.qt = rows.time_major(src, padded)  # (T, lanes_pad), lanes contiguous
        else:
            self.pt, self.qt = rows.time_major_chunks(src, self.lane_t0, self.lane_len, padded)
        self.norm = None
        lane_csums = np.zeros(n_lanes)
        lane_lam = self.lam[self.lane_job]
        if lam is not None:  # tilted jobs: p' = p theta / (q + p theta), q' = q / (q + p theta)
            theta = np.exp(lane_lam)[None, :]
            p, q = self.pt[:, :n_lanes], self.qt[:, :n_lanes]
            self.norm = q + p * theta  # (T, lanes); 1 on padded steps
            lane_csums = np.log(self.norm).sum(0)
            p *= theta / self.norm
            q /= self.norm
        self.csums = np.bincount(self.lane_job, weights=lane_csums, minlength=n_jobs)
        self.disc = np.zeros(padded)
        self.disc[:n_lanes] = self.job_disc[self.lane_job]
        self.theta = np.ones(padded)
        self.theta[:n_lanes] = np.exp(lane_lam)
        lane_steps = np.zeros(padded, dtype=np.int64)
        lane_steps[:n_lanes] = self.lane_len
        self.group_steps = lane_steps.reshape(self.n_groups, k.LANES).max(1)
        lane_target = np.zeros(padded, dtype=np.int64)
        lane_target[:n_lanes] = self.target[self.lane_job]
        self.group_width = np.maximum(lane_target.reshape(self.n_groups, k.LANES).max(1) + 1, 2)

    def forward(self) -> None:
        k = _kernels()
        n_ckpt = max(1, -(-self.pt.shape[0] // k.CKPT))
        w_max = int(self.group_width.max(initial=2))
        self.ckpt = np.empty((self.n_groups, n_ckpt, w_max, k.LANES))
        final = np.zeros((self.n_groups * k.LANES, self.width))
        _run_parallel(
            k.forward_groups, self.group_steps * self.group_width * k.LANES,
            self.pt, self.qt, self.group_steps, self.group_width, self.disc, self.ckpt, final,
        )  # fmt: skip
        n_jobs = len(self.target)
        self.states = np.zeros((n_jobs, self.width))
        if self.n_chunks == 1:
            self.states[self.lane_job] = final[:n_jobs]
            return
        self.chunk_final = final[: len(self.lane_job)].reshape(n_jobs, self.n_chunks, -1)
        self.prefix = []
        for i, j in enumerate(self.lane_job[:: self.n_chunks]):
            w = self._job_width(j)
            pre = [np.eye(1, w)[0]]
            for c in range(self.n_chunks):
                pre.append(_sat_conv(pre[-1], self.chunk_final[i, c, :w], self.job_disc[j]))
            self.prefix.append(pre)
            self.states[j, :w] = pre[-1]

    def _job_width(self, j: int) -> int:
        return self.width if self.target[j] == self.width - 1 else int(self.target[j]) + 1

    def target_value(self) -> np.ndarray:
        return self.states[np.arange(len(self.target)), self.target]

    def backward(self, b_final: np.ndarray) -> np.ndarray:
        """(J, k_max + 1) final adjoints -> (J, T) gradients w.r.t. the untilted p (q = 1 - p).

        For tilted jobs ``b_final`` must be e_target / Pr'(target); the result is then
        d log Pr(Y = target) / d p. Entries of ``b_final`` above a job's width are ignored.
        """
        k = _kernels()
        n_jobs = len(self.target)
        n_lanes = len(self.lane_job)
        padded = np.zeros((self.n_groups * k.LANES, self.width))
        if self.n_chunks == 1:
            padded[:n_lanes] = b_final[self.lane_job]
        else:  # adjoint of each chunk's final state through the product of the chunks
            for i, j in enumerate(self.lane_job[:: self.n_chunks]):
                w, d = self._job_width(j), self.job_disc[j]
                u = b_final[j, :w]
                for c in range(self.n_chunks - 1, -1, -1):
                    u_ext = _sat_adjoint_ext(u, d)
                    padded[i * self.n_chunks + c, :w] = np.correlate(u_ext, self.prefix[i][c])
                    u = np.correlate(u_ext, self.chunk_final[i, c, :w])
        grad_t = np.empty_like(self.pt)
        _run_parallel(  # three passes per step: recompute, gradient, adjoint
            k.backward_groups, 3 * self.group_steps * self.group_width * k.LANES,
            self.pt, self.qt, self.group_steps, self.group_width, self.disc, self.theta,
            self.ckpt, padded, grad_t,
        )  # fmt: skip
        if self.n_chunks == 1 and self.norm is None:  # the common case, in one pass
            grads = np.empty((n_jobs, self.t_len))
            k.scatter_rows(grad_t, self.lane_job, self.lane_len, grads)
            return grads
        lanes = grad_t[:, :n_lanes]
        if self.norm is not None:
            lanes /= self.norm
        # Beyond a lane's own length the kernel computes the (meaningless) sensitivity to the
        # identity padding, or nothing at all (beyond its group's longest lane).
        s_len = lanes.shape[0]
        if (self.lane_len < s_len).any():
            lanes[np.arange(s_len)[:, None] >= self.lane_len[None, :]] = 0.0
        grads = np.zeros((n_jobs, self.t_len))
        if self.n_chunks == 1:
            grads[self.lane_job, :s_len] = lanes.T  # (T, lanes) -> (jobs, T)
        else:
            for i in range(n_lanes):
                t0, n = self.lane_t0[i], self.lane_len[i]
                grads[self.lane_job[i], t0 : t0 + n] = lanes[:n, i]
        return grads


def _sat_conv(f: np.ndarray, g: np.ndarray, disc: float) -> np.ndarray:
    """Truncated product of two states of the same width with a (discounted) top bin."""
    w = len(f)
    full = np.convolve(f, g)  # (2w - 1,)
    out = full[:w].copy()
    out[w - 1] = full[w - 1 :] @ disc ** np.arange(w, dtype=np.float64)  # 0.0 ** 0 == 1
    return out


def _sat_adjoint_ext(u: np.ndarray, disc: float) -> np.ndarray:
    """Output adjoint of :func:`_sat_conv` spread over the (2w - 1) untruncated indices."""
    w = len(u)
    return np.concatenate([u[: w - 1], u[w - 1] * disc ** np.arange(w, dtype=np.float64)])


def _tilted_jobs(rows: _Rows, idx, n, k_max, lo, hi) -> _Jobs:
    """Jobs computing Pr(Y = n) (n < k_max) or Pr(Y >= k_max) of rows ``idx``, tilted."""
    p, q = rows.row_major(idx)
    target = _tilt_targets(torch.from_numpy(n), torch.from_numpy(lo), torch.from_numpy(hi))
    lam = np.zeros(len(idx))
    steps = np.ascontiguousarray(rows.steps[idx])
    _kernels().solve_tilts(p, q, steps, np.arange(len(idx)), target.numpy(), lam)
    top = n == k_max
    lam = np.where(top, np.maximum(lam, 0.0), lam)
    jobs = _Jobs(rows, idx, n, np.where(top, np.exp(-lam), 0.0), k_max, lam=lam)
    jobs.forward()
    return jobs


def _np_feasible_range(rows: _Rows, idx: np.ndarray):
    """Per row in ``idx``: number of sure events (p == 1) and of possible events (p > 0)."""
    p, q = rows.row_major(idx)  # masked steps hold p = 0, q = 1 and count for neither
    return (q == 0).sum(1), (p > 0).sum(1)


def _tilted_log_values(jobs: _Jobs) -> np.ndarray:
    """log Pr(Y = target) of tilted jobs: log Pr' + sum_t c_t - n lam."""
    return np.log(jobs.target_value()) + jobs.csums - jobs.target * jobs.lam


class _CpuLogLikelihood(torch.autograd.Function):
    """(R, T) probs or logits, (R,) counts -> (R,) float64 log Pr(Y = min(n, k_max))."""

    @staticmethod
    def forward(ctx, x, n, steps, k_max, logits):
        rows = _Rows(x, steps, logits)
        n_np = n.numpy()
        r = len(n_np)
        jobs = _Jobs(rows, None, n_np, (n_np == k_max) * 1.0, k_max)
        jobs.forward()
        value = jobs.target_value()
        ll = np.full(r, -np.inf)
        ok = value >= _SAFE
        ll[ok] = np.log(value[ok])
        extra = None
        low = np.flatnonzero(~ok)
        if len(low):
            lo, hi = _np_feasible_range(rows, low)
            possible = _possible(
                torch.from_numpy(n_np[low]), k_max, torch.from_numpy(lo), torch.from_numpy(hi)
            ).numpy()
            redo = low[possible]
            if len(redo):
                extra = _tilted_jobs(rows, redo, n_np[redo], k_max, lo[possible], hi[possible])
                ll[redo] = _tilted_log_values(extra)
        ctx.saved = (rows, jobs, ok, value, extra)
        ctx.in_dtype = x.dtype
        return torch.from_numpy(ll)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        rows, jobs, ok, value, extra = ctx.saved
        r = len(jobs.target)
        g = grad_out.detach().to("cpu", torch.float64).numpy()
        # The VJP is linear in b_final: fold the incoming gradient into it.
        b_final = np.zeros((r, jobs.width))
        b_final[np.arange(r), jobs.target] = np.where(ok, g / np.where(ok, value, 1.0), 0.0)
        grads = jobs.backward(b_final)
        if extra is not None:
            b_extra = np.zeros((len(extra.row), extra.width))
            b_extra[np.arange(len(extra.row)), extra.target] = g[extra.row] / extra.target_value()
            grads[extra.row] = extra.backward(b_extra)
        return torch.from_numpy(rows.chain(grads)).to(ctx.in_dtype), None, None, None, None


class _CpuDistribution(torch.autograd.Function):
    """(R, T) probs or logits -> (R, k_max + 1) float64 distribution (or its log)."""

    @staticmethod
    def forward(ctx, x, steps, k_max, logits, log):
        rows = _Rows(x, steps, logits)
        r = rows.r
        jobs = _Jobs(rows, None, np.full(r, k_max), np.ones(r), k_max)
        jobs.forward()
        states = jobs.states
        extra, out = None, states.copy()
        safe = np.ones_like(states, dtype=bool)
        if log:
            possible = np.ones_like(states, dtype=bool)
            low = np.flatnonzero((states < _SAFE).any(1))
            lo = np.zeros(r, dtype=np.int64)
            hi = np.zeros(r, dtype=np.int64)
            if len(low):
                lo[low], hi[low] = _np_feasible_range(rows, low)
                ks = torch.arange(k_max + 1)[None, :]
                lo_t, hi_t = torch.from_numpy(lo[low])[:, None], torch.from_numpy(hi[low])[:, None]
                possible[low] = _possible(ks, k_max, lo_t, hi_t).numpy()
            safe = possible & (states >= _SAFE)
            with np.errstate(divide="ignore"):
                out = np.where(safe, np.log(np.where(safe, states, 1.0)), -np.inf)
            er, ek = np.nonzero(possible & ~safe)
            if len(er):
                extra = _tilted_jobs(rows, er, ek, k_max, lo[er], hi[er])
                out[er, ek] = _tilted_log_values(extra)
        ctx.saved = (rows, jobs, extra, safe, log)
        ctx.in_dtype = x.dtype
        return torch.from_numpy(out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        rows, jobs, extra, safe, log = ctx.saved
        g = grad_out.detach().to("cpu", torch.float64).numpy()
        if log:
            # d log P_k = dP_k / P_k on safe bins; the others come from their own tilted jobs.
            b_final = np.where(safe, g / np.where(safe, jobs.states, 1.0), 0.0)
        else:
            b_final = g
        grads = jobs.backward(b_final)
        if extra is not None:
            n_extra = len(extra.row)
            b_extra = np.zeros((n_extra, extra.width))
            b_extra[np.arange(n_extra), extra.target] = (
                g[extra.row, extra.target] / extra.target_value()
            )
            np.add.at(grads, extra.row, extra.backward(b_extra))
        return torch.from_numpy(rows.chain(grads)).to(ctx.in_dtype), None, None, None, None


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
        With ``log=False`` the fast backends are exact to an absolute error of ~1e-143 (tiny
        bins may come back as 0); ask for ``log=True`` when the tails matter.
        The fast backends (``"cpu"``, ``"tree"``) cost O(T * k_max) for ``log=False``. With
        ``log=True``, bins below 1e-120 are recomputed one by one on a tilted problem, which
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
