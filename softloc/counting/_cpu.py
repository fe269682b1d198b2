"""CPU count backend: fused numba kernels with an exact hand-written backward (private).

``backend="cpu"`` (and ``"auto"`` for CPU tensors) of ``softloc.counting``. The input rows are
gathered into time-major lane groups (``_cpu_kernels``), the forward keeps gradient checkpoints,
the backward runs the adjoint recursion and returns d/dp (chained to d/dlogit for logits).
Probabilities below ``SAFE`` are recomputed on an exponentially tilted problem, so
log-likelihoods far in the tails are exact. Rows run in lockstep groups of 32 lanes sorted by
target count; with fewer rows than lanes, rows are cut into chunks whose truncated products are
multiplied afterwards (exactly associative). Work is spread over a kept thread pool when there
is enough of it (:func:`set_options`).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch

from softloc.counting import _arena, _reference
from softloc.counting._common import (
    SAFE,
    feasible_range,
    log_pq,
    possible,
    tilt_shift,
    tilt_targets,
)


@dataclass(frozen=True)
class Options:
    """Tuning of the CPU backend (see ``softloc.counting.set_cpu_options``)."""

    min_parallel_work: int = 1_500_000  # bin updates below which one thread runs everything
    min_chunk_steps: int = 256  # rows with fewer than 32 jobs are cut into chunks this long
    max_threads: int = os.cpu_count() or 1
    max_cached_bytes: int = _arena.MAX_BYTES  # work buffers kept for reuse (_arena)


_OPTIONS = Options()
# Work of the layout changes (gather / scatter) per element, in bin updates of the recursion:
# a strided float64 copy costs about as much as this many vectorised updates.
_LAYOUT_COST = 16
# Fixed cost of one step of a lane group (loads of p and q, the top bin), in bin updates: the
# kernels' time per group grows as (width + 6) * steps (measured, widths 2..43).
_STEP_COST = 6
# Pieces of work per thread in _run_parallel (see there).
_PIECES_PER_THREAD = 4


def options() -> Options:
    """The current settings."""
    return _OPTIONS


def set_options(**changes: int) -> Options:
    """Replace some settings; returns the previous ones (validated by the public caller)."""
    global _OPTIONS
    previous = _OPTIONS
    _OPTIONS = replace(_OPTIONS, **changes)
    _arena.set_limit(_OPTIONS.max_cached_bytes)
    return previous


def _kernels():
    # Imported on first use: numba's import and the kernels' cache load take ~1 s, which
    # `import softloc.counting` and the reference / tree backends do not pay.
    from softloc.counting import _cpu_kernels

    return _cpu_kernels


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
    opts = _OPTIONS
    n_threads = min(
        torch.get_num_threads(), opts.max_threads, n_groups, work // opts.min_parallel_work
    )
    if n_threads <= 1:
        fn(*args, 0, n_groups)
        return
    # More pieces than threads, taken in turn by whichever thread is free: when another process
    # slows one core down, the other threads take over its share instead of waiting for it
    # (an even split ran slower on two threads than on one on a shared 2-core machine).
    n_pieces = min(n_groups, _PIECES_PER_THREAD * n_threads)
    cum = np.concatenate([[0.0], np.cumsum(group_work, dtype=np.float64)])
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n_pieces) / n_pieces)
    bounds = np.unique(np.clip(np.concatenate([[0], cuts, [n_groups]]), 0, n_groups))
    # Largest pieces first (groups are sorted by cost) so the last ones taken are small.
    pieces = iter(
        sorted(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True),
               key=lambda r: cum[r[0]] - cum[r[1]])
    )  # fmt: skip
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                piece = next(pieces, None)
            if piece is None:
                return
            fn(*args, *piece)

    pool = _pool(n_threads)
    # The calling thread works too (the kernels release the GIL).
    futures = [pool.submit(work) for _ in range(n_threads - 1)]
    work()
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

    def as_numpy(self) -> np.ndarray:
        """x as a contiguous float32 or float64 array (made once)."""
        if self._np is None:
            x = self.x
            if x.dtype not in (torch.float32, torch.float64):
                x = x.to(torch.float64)
            self._np = x.contiguous().numpy()
        return self._np

    def time_major(self, src: np.ndarray, padded: int) -> tuple[np.ndarray, ...]:
        """(T, padded) float64 p and q of rows ``src``; identity (p = 0, q = 1) elsewhere; and
        the arena buffers they live in."""
        pt, pt_base = _arena.take((self.t_len, padded))
        qt, qt_base = _arena.take((self.t_len, padded))
        k = _kernels()
        n_groups = -(-padded // k.LANES)
        _run_parallel(  # a layout change costs about as much per element as this many updates
            k.gather_time_major, np.full(n_groups, _LAYOUT_COST * k.LANES * self.t_len),
            self.as_numpy(), np.ascontiguousarray(src, dtype=np.int64), self.steps, self.logits,
            pt, qt,
        )  # fmt: skip
        return pt, qt, pt_base, qt_base

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

    def chain(self, grads: np.ndarray) -> np.ndarray:
        """(R, T) d/dp along q = 1 - p -> d/dx for the input parametrisation (in place)."""
        if self.logits:
            x64 = self.x.to(torch.float64)
            grads *= (torch.sigmoid(x64) * torch.sigmoid(-x64)).numpy()
        return grads


class _Jobs:
    """Kernel jobs: input rows, each with a target bin and a top-bin discount.

    A target n < k_max needs bins 0..n only, with an exact top bin (discount 0); the absorbing
    target n = k_max needs k_max + 1 bins with discount 1 (or e^-lam when tilted, ``_Tail``).
    Jobs are sorted by target so that each group of LANES lanes runs on the fewest bins its
    largest target needs (lanes with smaller targets ignore the bins above theirs). With fewer jobs
    than lanes, each row is cut into chunks that run in separate lanes and are multiplied
    together afterwards (the truncated product is exactly associative).
    """

    def __init__(self, rows: _Rows, row, target, disc, k_max):
        k = _kernels()
        self.target = np.asarray(target, dtype=np.int64)
        n_jobs = len(self.target)
        self.row = np.arange(n_jobs) if row is None else np.asarray(row, dtype=np.int64)
        self.job_disc = np.asarray(disc, dtype=np.float64)
        self.width = k_max + 1
        self.t_len = rows.t_len
        order = np.argsort(self.target, kind="stable")
        n_chunks = max(1, min(k.LANES // max(n_jobs, 1), rows.t_len // _OPTIONS.min_chunk_steps))
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
        self._bases: list[np.ndarray] = []  # arena buffers, handed back when self is freed
        weakref.finalize(self, _arena.give, self._bases)
        if n_chunks == 1:  # (T, lanes_pad), lanes contiguous
            self.pt, self.qt, *bases = rows.time_major(src, padded)
            self._bases += bases
        else:
            self.pt, self.qt = rows.time_major_chunks(src, self.lane_t0, self.lane_len, padded)
        self.disc = np.zeros(padded)
        self.disc[:n_lanes] = self.job_disc[self.lane_job]
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
        self.ckpt, base = _arena.take((self.n_groups, n_ckpt, w_max, k.LANES))
        self._bases.append(base)
        final = np.zeros((self.n_groups * k.LANES, self.width))
        _run_parallel(
            k.forward_groups, self.group_steps * (self.group_width + _STEP_COST) * k.LANES,
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

    def backward(
        self, b_final: np.ndarray, rows: _Rows | None = None, dtype: type = np.float64
    ) -> np.ndarray:
        """(J, k_max + 1) final adjoints -> (J, T) gradients w.r.t. p (along q = 1 - p), or
        w.r.t. the logits of ``rows`` (their input) when given and ``rows.logits``; in
        ``dtype`` (float32 or float64); 0 at steps beyond each row's length. Entries of
        ``b_final`` above a job's width are ignored.
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
        grad_t, grad_t_base = _arena.take(self.pt.shape)
        _run_parallel(  # three passes per step: recompute, gradient, adjoint
            k.backward_groups, 3 * self.group_steps * (self.group_width + _STEP_COST) * k.LANES,
            self.pt, self.qt, self.group_steps, self.group_width, self.disc, self.ckpt, padded,
            grad_t,
        )  # fmt: skip
        if self.n_chunks == 1:  # the common case, in one pass
            # The chain rule and the output dtype are applied here rather than by torch ops
            # afterwards: a (J, T) torch op is a parallel region, after which torch's OpenMP
            # workers spin for milliseconds on the cores this backend's threads run on.
            grads = np.empty((n_jobs, self.t_len), dtype=dtype)
            chain = rows is not None and rows.logits
            x = rows.as_numpy() if chain else grads
            _run_parallel(
                k.scatter_rows, np.full(self.n_groups, _LAYOUT_COST * k.LANES * self.t_len),
                grad_t, self.lane_job, self.lane_len, x, self.row, chain, grads,
            )  # fmt: skip
            _arena.give([grad_t_base])
            return grads
        lanes = grad_t[:, :n_lanes]
        # Beyond a lane's own length the kernel computes the (meaningless) sensitivity to the
        # identity padding, or nothing at all (beyond its group's longest lane).
        s_len = lanes.shape[0]
        if (self.lane_len < s_len).any():
            lanes[np.arange(s_len)[:, None] >= self.lane_len[None, :]] = 0.0
        grads = np.zeros((n_jobs, self.t_len))
        for i in range(n_lanes):
            t0, n = self.lane_t0[i], self.lane_len[i]
            grads[self.lane_job[i], t0 : t0 + n] = lanes[:n, i]
        _arena.give([grad_t_base])
        if rows is not None:
            grads = rows.chain(grads)
        return grads.astype(dtype, copy=False)


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


class _Tail:
    """log Pr(Y = n) (n < k_max) or log Pr(Y >= k_max) of (row, n) pairs too small for the
    plain recursion (below SAFE), recomputed exactly on exponentially tilted problems.

    Pr(Y = n) = Pr'(Y = n) prod_t (q_t + p_t e^lam) e^(-n lam) holds for any lam. The tilt is a
    shift of the logit, z'_t = z_t + lam with z = log p - log(1 - p), and
    s_t = log(q_t + p_t e^lam) = logaddexp(log q_t, log p_t + lam) is taken in log space, so no
    e^lam is formed: logits of 1e4 and probabilities of 1e-300 tilt exactly. lam puts the
    tilted mean at n (half a count inside the feasible range), where Pr'(Y = n) is of order
    1 / sqrt(T) and the linear recursion exact; beyond |lam| = 1e6 it is taken relative to the
    logit nearest to -lam (``_common.tilt_shift``), so logits of 1e18 tilt exactly too. Pairs of
    logits that still fail (Pr' below SAFE, or sum s - n lam beyond float64 for logits of
    ~1e308) run the log-space recursion instead (``_reference.exact_log_values``).
    """

    def __init__(self, rows: _Rows, idx, n, k_max, lo, hi):
        self.rows, self.idx, self.n, self.k_max = rows, idx, n, k_max
        steps = torch.from_numpy(rows.steps[idx])
        lp, lq, z = (t.numpy() for t in log_pq(rows.x[torch.from_numpy(idx)], steps, rows.logits))
        target = tilt_targets(torch.from_numpy(n), torch.from_numpy(lo), torch.from_numpy(hi))
        top = n == k_max
        z_ref, delta = (
            t.numpy()[:, None]
            for t in tilt_shift(torch.from_numpy(z), target, torch.from_numpy(top), _solve_tilts)
        )
        with np.errstate(over="ignore"):  # logits of ~1e308: inf, caught below
            self.zt = (z - z_ref) + delta  # masked steps: -inf, the identity
            self.lam = delta - z_ref  # (J, 1)
            self.s = np.logaddexp(lq, lp + self.lam)  # masked steps: logaddexp(0, -inf) = 0
        self.lp = lp
        tilted = _Rows(torch.from_numpy(self.zt), steps, True)
        disc = np.where(top, np.exp(-np.maximum(self.lam[:, 0], 0.0)), 0.0)
        self.jobs = _Jobs(tilted, None, n, disc, k_max)
        self.jobs.forward()
        self.value = self.jobs.target_value()
        self.ok = self.value >= SAFE  # False for NaN too
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            self.log_values = np.log(self.value) + self.s.sum(1) - n * self.lam[:, 0]
        # Probabilities never get here (|logit| <= 745); logits of ~1e308 may: Pr' below SAFE
        # (value and gradient by the recursion), or sum s - n lam beyond float64 (-inf - -inf;
        # the value by the recursion, the tilted gradient is exact).
        self.exact = np.flatnonzero(~(self.ok & np.isfinite(self.log_values)))
        for j in self.exact:
            self.log_values[j] = self._exact(j, None)

    def _exact(self, j: int, g: float | None):
        """log value of pair j by the log-space recursion, or (g=...) g times its gradient."""
        r = self.idx[j]
        x = self.rows.x[r, : self.rows.steps[r]].to(torch.float64).requires_grad_(g is not None)
        with torch.set_grad_enabled(g is not None):
            z = x if self.rows.logits else _reference.logit(x)
            value = _reference.exact_log_values(z, self.k_max, [int(self.n[j])]).sum()
            if g is None:
                return float(value)
            (grad,) = torch.autograd.grad(value * g, x)
        # The recursion's float64 sums of logits of ~1e308 can overflow inside: no gradient.
        return torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0).numpy()

    def grads(self, g: np.ndarray) -> np.ndarray:
        """(J,) incoming gradients -> (J, T) gradients w.r.t. the input rows (p or logit).

        With h = d log Pr'(Y = n) / d p'_t from the adjoint pass on the tilted problem:
        d log Pr / d z_t = p'_t q'_t h + p'_t - p_t (the posterior minus the prior, unchanged
        by the tilt), and d log Pr / d p_t = e^(lam - s_t) (1 + q'_t h) - e^(-s_t) (1 - p'_t h),
        which is finite at p = 0 and 1 as well.
        """
        n_jobs = len(self.idx)
        b_final = np.zeros((n_jobs, self.jobs.width))
        use = self.ok & np.isfinite(self.log_values)  # -inf: a zero gradient, as impossible
        b_final[np.arange(n_jobs), self.n] = np.where(use, g / np.where(use, self.value, 1.0), 0.0)
        gh = self.jobs.backward(b_final)  # g h; 0 beyond each row's length
        out = np.empty_like(gh)
        _kernels().tilt_grads(
            self.zt, self.lp, self.s, self.lam[:, 0], gh, np.ascontiguousarray(g, dtype=np.float64),
            self.rows.steps[self.idx], self.rows.logits, out,
        )  # fmt: skip
        out[~use] = 0.0
        for j in np.flatnonzero(~self.ok & np.isfinite(self.log_values)):
            out[j, : self.rows.steps[self.idx[j]]] = self._exact(j, float(g[j]))
        return out


def _solve_tilts(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``_common.solve_tilt`` by the numba kernel: (J, T) CPU logits -> (J,) lam."""
    lam = np.zeros(z.shape[0])
    steps = np.full(z.shape[0], z.shape[1], dtype=np.int64)  # masked steps are -inf: no term
    _kernels().solve_tilts(np.ascontiguousarray(z.numpy()), steps, target.numpy(), lam)
    return torch.from_numpy(lam)


def _np_feasible_range(rows: _Rows, idx: np.ndarray):
    """Per row in ``idx``: number of sure events and of possible events (``feasible_range``)."""
    lo, hi = feasible_range(
        rows.x[torch.from_numpy(idx)], torch.from_numpy(rows.steps[idx]), rows.logits
    )
    return lo.numpy(), hi.numpy()


def _np_dtype(dtype: torch.dtype) -> type:
    """The gradient dtype the kernels write: the input's when numpy has it, else float64."""
    return np.float32 if dtype == torch.float32 else np.float64


class LogLikelihood(torch.autograd.Function):
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
        ok = value >= SAFE
        ll[ok] = np.log(value[ok])
        tail = None
        low = np.flatnonzero(~ok)
        if len(low):
            lo, hi = _np_feasible_range(rows, low)
            feasible = possible(
                torch.from_numpy(n_np[low]), k_max, torch.from_numpy(lo), torch.from_numpy(hi)
            ).numpy()
            redo = low[feasible]
            if len(redo):
                tail = _Tail(rows, redo, n_np[redo], k_max, lo[feasible], hi[feasible])
                ll[redo] = tail.log_values
        ctx.saved = (rows, jobs, ok, value, tail)
        ctx.in_dtype = x.dtype
        # A top bin of 1 + 2e-16 by rounding: log <= 0 (the gradient is the unclipped one).
        return torch.from_numpy(np.minimum(ll, 0.0, out=ll))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        rows, jobs, ok, value, tail = ctx.saved
        r = len(jobs.target)
        g = grad_out.detach().to("cpu", torch.float64).numpy()
        # The VJP is linear in b_final: fold the incoming gradient into it.
        b_final = np.zeros((r, jobs.width))
        b_final[np.arange(r), jobs.target] = np.where(ok, g / np.where(ok, value, 1.0), 0.0)
        grads = jobs.backward(b_final, rows, _np_dtype(ctx.in_dtype))
        if tail is not None:  # rows of their own: rounded to the input dtype once, as the rest
            grads[tail.idx] = tail.grads(g[tail.idx])
        return torch.from_numpy(grads).to(ctx.in_dtype), None, None, None, None


class Distribution(torch.autograd.Function):
    """(R, T) probs or logits -> (R, k_max + 1) float64 distribution (or its log)."""

    @staticmethod
    def forward(ctx, x, steps, k_max, logits, log):
        rows = _Rows(x, steps, logits)
        r = rows.r
        jobs = _Jobs(rows, None, np.full(r, k_max), np.ones(r), k_max)
        jobs.forward()
        states = jobs.states
        tail, out = None, states.copy()
        safe = np.ones_like(states, dtype=bool)
        if log:
            feasible = np.ones_like(states, dtype=bool)
            low = np.flatnonzero((states < SAFE).any(1))
            lo = np.zeros(r, dtype=np.int64)
            hi = np.zeros(r, dtype=np.int64)
            if len(low):
                lo[low], hi[low] = _np_feasible_range(rows, low)
                ks = torch.arange(k_max + 1)[None, :]
                lo_t, hi_t = torch.from_numpy(lo[low])[:, None], torch.from_numpy(hi[low])[:, None]
                feasible[low] = possible(ks, k_max, lo_t, hi_t).numpy()
            safe = feasible & (states >= SAFE)
            with np.errstate(divide="ignore"):
                out = np.where(safe, np.log(np.where(safe, states, 1.0)), -np.inf)
            er, ek = np.nonzero(feasible & ~safe)
            if len(er):
                tail = _Tail(rows, er, ek, k_max, lo[er], hi[er])
                out[er, ek] = tail.log_values
        ctx.saved = (rows, jobs, tail, safe, log)
        ctx.in_dtype = x.dtype
        return torch.from_numpy(np.minimum(out, 0.0 if log else 1.0, out=out))  # rounding

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        rows, jobs, tail, safe, log = ctx.saved
        g = grad_out.detach().to("cpu", torch.float64).numpy()
        if log:
            # d log P_k = dP_k / P_k on safe bins; the others come from their own tilted jobs.
            b_final = np.where(safe, g / np.where(safe, jobs.states, 1.0), 0.0)
        else:
            b_final = g
        # Tilted jobs add to rows: summed in float64, then rounded once.
        grads = jobs.backward(b_final, rows, np.float64 if tail else _np_dtype(ctx.in_dtype))
        if tail is not None:
            np.add.at(grads, tail.idx, tail.grads(g[tail.idx, tail.n]))
        return torch.from_numpy(grads).to(ctx.in_dtype), None, None, None, None
