"""Public API of :mod:`softloc.counting`: validation at the boundary, then one backend.

See the package docstring for the conventions and the backends.
"""

from __future__ import annotations

import math

import torch

from softloc._checks import (
    check_bool,
    check_choice,
    check_counts,
    check_int,
    check_lengths,
    check_positive_int,
    check_scores,
)
from softloc.counting import _cpu, _reference, _tree
from softloc.counting._common import row_lengths

__all__ = [
    "BACKENDS",
    "count_distribution",
    "count_log_likelihood",
    "count_prior_bias",
    "cpu_options",
    "resolve_backend",
    "set_cpu_options",
]

#: Accepted values of the ``backend`` argument.
BACKENDS = ("auto", "reference", "cpu", "tree")


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


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """The backend that ``backend`` runs on tensors of ``device``: ``"auto"`` is ``"cpu"`` for
    CPU tensors and ``"tree"`` otherwise; other names are returned as they are.

    Raises:
        ValueError: ``backend`` not in :data:`BACKENDS`.

    Example:
        >>> resolve_backend("auto", "cpu"), resolve_backend("auto", "cuda")
        ('cpu', 'tree')
    """
    check_choice("resolve_backend", "backend", backend, BACKENDS)
    if backend == "cpu":
        from softloc._deps import require

        require("numba", extra="train", purpose="the 'cpu' count backend")
    if backend != "auto":
        return backend
    if torch.device(device).type != "cpu":
        return "tree"
    return "cpu" if _numba_available() else "tree"


_NUMBA: list[bool] = []  # [found], filled on first use


def _numba_available() -> bool:
    """Whether numba is installed (``softloc[train]``); without it ``"auto"`` runs the tree
    backend on the CPU too, and says so once."""
    if not _NUMBA:
        from softloc._deps import available

        _NUMBA.append(available("numba"))
        if not _NUMBA[0]:
            import logging

            logging.getLogger("softloc.counting").warning(
                "softloc: numba is not installed, the count loss runs on the slower 'tree' "
                "backend (pip install 'softloc[train]' for the fast 'cpu' one)"
            )
    return _NUMBA[0]


def cpu_options() -> dict[str, int]:
    """The current tuning of the ``"cpu"`` backend (see :func:`set_cpu_options`).

    Example:
        >>> sorted(cpu_options())
        ['max_cached_bytes', 'max_threads', 'min_chunk_steps', 'min_parallel_work']
    """
    opts = _cpu.options()
    return {
        "min_parallel_work": opts.min_parallel_work,
        "min_chunk_steps": opts.min_chunk_steps,
        "max_threads": opts.max_threads,
        "max_cached_bytes": opts.max_cached_bytes,
    }


def set_cpu_options(
    *,
    min_parallel_work: int | None = None,
    min_chunk_steps: int | None = None,
    max_threads: int | None = None,
    max_cached_bytes: int | None = None,
) -> dict[str, int]:
    """Tune the ``"cpu"`` backend for this process; arguments left at None keep their value.

    The results do not depend on these settings (the kernels are deterministic whatever the
    split); only the speed does. A forked child (a DataLoader worker) inherits them.

    Args:
        min_parallel_work: bin updates (rows x steps x bins) below which one thread does all the
            work (default 1 500 000; a thread hand-off costs ~20 µs).
        min_chunk_steps: with fewer rows than the 32 SIMD lanes, rows are cut into chunks of at
            least this many steps that run in separate lanes (default 256).
        max_threads: at most this many threads (default: the number of CPUs); the kernels never
            use more than ``torch.get_num_threads()`` either. On a machine with as many cores
            as torch threads, torch's OpenMP workers spin for a while after each parallel op and
            compete with these threads; ``OMP_WAIT_POLICY=PASSIVE`` in the environment before
            torch is imported stops that (docs/benchmarks.md measures both).
        max_cached_bytes: work buffers kept for reuse by later calls (default 256 MiB; 0 keeps
            none). Fresh buffers of several MB can cost page faults on every call
            (docs/benchmarks.md).

    Returns:
        The previous settings, as :func:`cpu_options` returns them; ``set_cpu_options(**old)``
        restores them.

    Raises:
        TypeError: a non-int setting.
        ValueError: a setting < 1 (< 0 for ``max_cached_bytes``).

    Example:
        >>> old = set_cpu_options(max_threads=1)
        >>> cpu_options()["max_threads"]
        1
        >>> _ = set_cpu_options(**old)
    """
    fn = "set_cpu_options"
    changes: dict[str, int] = {}
    for name, value in (
        ("min_parallel_work", min_parallel_work),
        ("min_chunk_steps", min_chunk_steps),
        ("max_threads", max_threads),
        ("max_cached_bytes", max_cached_bytes),
    ):
        if value is not None:
            changes[name] = check_int(fn, name, value, minimum=int(name != "max_cached_bytes"))
    previous = cpu_options()
    _cpu.set_options(**changes)
    return previous


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
    x = check_scores(fn, "probs", probs, logits=logits)
    k_max = check_positive_int(fn, "k_max", k_max)
    check_lengths(fn, lengths, x.shape[0], x.shape[2])
    check_bool(fn, "log", log)
    name = resolve_backend(check_choice(fn, "backend", backend, BACKENDS), x.device)
    b, c, t_len = x.shape
    steps = row_lengths(lengths, b, c, t_len)
    xr = x.reshape(b * c, t_len)  # (B, C, T) -> (B*C, T)
    if name == "reference":
        out = _reference.log_states(xr, k_max, steps, logits)
        out = out if log else out.exp()
    elif name == "cpu":
        out = _cpu.Distribution.apply(xr.cpu(), steps, k_max, logits, log).to(x.device)
    else:
        out = _at_most(_tree.distribution(xr, steps, k_max, logits, log), 0.0 if log else 1.0)
    if name == "reference":
        out = _at_most(out, 0.0 if log else 1.0)
    return out.to(x.dtype).reshape(b, c, k_max + 1)  # (B*C, K+1) -> (B, C, K+1)


def count_log_likelihood(
    probs: torch.Tensor,
    counts: torch.Tensor,
    k_max: int,
    *,
    lengths: torch.Tensor | None = None,
    logits: bool = False,
    backend: str = "auto",
    validate: bool = True,
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
        validate: check the arguments (default). ``False`` skips every check, and with them
            their host syncs: for callers that have validated the same tensors already (the
            losses in :mod:`softloc.losses` do). Invalid input then gives wrong numbers, not
            errors.

    Returns:
        Log-likelihoods in the dtype of ``probs`` (computed in float64), finite for any finite
        logits. ``-inf`` exactly where the count is impossible (only when some p are exactly 0
        or 1, logits +-inf), or below -1.8e308 (logits of ~1e308); the gradient of such an entry
        is set to 0 by the ``"cpu"`` and ``"tree"`` backends.

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
    if check_bool(fn, "validate", validate):
        probs = check_scores(fn, "probs", probs, logits=logits)
        counts = check_counts(fn, counts, tuple(probs.shape[:2]))
        k_max = check_positive_int(fn, "k_max", k_max)
        check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
        check_choice(fn, "backend", backend, BACKENDS)
    b, c, t_len = probs.shape
    steps = row_lengths(lengths, b, c, t_len)
    # (B, C) -> (B*C,) int64 on the CPU: the kernels and the tilt read the targets on the host.
    n = counts.detach().reshape(b * c).to("cpu").clamp(max=k_max).to(torch.int64)
    xr = probs.reshape(b * c, t_len)  # (B, C, T) -> (B*C, T)
    name = resolve_backend(backend, probs.device)
    if name == "reference":
        log_y = _reference.log_states(xr, k_max, steps, logits)
        out = _at_most(log_y.gather(1, n.to(probs.device)[:, None]).squeeze(1), 0.0)
    elif name == "cpu":  # clipped inside
        out = _cpu.LogLikelihood.apply(xr.cpu(), n, steps, k_max, logits).to(probs.device)
    else:
        out = _at_most(_tree.log_likelihood(xr, n, steps, k_max, logits), 0.0)
    return out.to(probs.dtype).reshape(b, c)  # (B*C,) -> (B, C)


def _at_most(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``x`` with rounding above ``bound`` taken off (a probability of 1 + 2e-16, a log of
    2e-16: the loss -log P stays >= 0), the gradient passed through unchanged. (The ``"cpu"``
    backend clips inside its kernels' output.)"""
    return x - (x.detach() - bound).clamp(min=0.0)
