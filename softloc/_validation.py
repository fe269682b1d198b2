"""Boundary checks shared by the public functions.

Every public function validates its inputs here and raises ``ValueError`` (bad value or shape) or
``TypeError`` (bad type) with a message naming the function, the argument, what was expected and
what was found. Internals trust their inputs.
"""

from __future__ import annotations

import torch


def check_tensor(fn: str, name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: `{name}` must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_ndim(fn: str, name: str, x: torch.Tensor, ndim: int, layout: str) -> None:
    if x.dim() != ndim:
        raise ValueError(
            f"{fn}: `{name}` must have shape {layout} ({ndim} dims), got shape {tuple(x.shape)}"
        )


def check_float(fn: str, name: str, x: torch.Tensor) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{fn}: `{name}` must be a floating-point tensor, got dtype {x.dtype}")


def check_probabilities(fn: str, name: str, x: torch.Tensor) -> None:
    """Probabilities must lie in [0, 1] (NaN is rejected too)."""
    check_float(fn, name, x)
    if not x.numel():
        return
    lo_t, hi_t = torch.aminmax(x.detach())  # one pass; NaN propagates into both
    if not (bool(lo_t >= 0) and bool(hi_t <= 1)):
        lo, hi = float(torch.nan_to_num(x, nan=-1.0).min()), float(x.max())
        raise ValueError(
            f"{fn}: `{name}` must hold probabilities in [0, 1], found values in [{lo:g}, {hi:g}]"
            " (pass logits through torch.sigmoid first, or use the logits=True variant)"
        )


def check_positive_int(fn: str, name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}: `{name}` must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{fn}: `{name}` must be >= {minimum}, got {value}")
    return value


def check_lengths(fn: str, lengths: torch.Tensor | None, batch: int, time: int) -> None:
    """`lengths` is (batch,) of integers in [0, time]."""
    if lengths is None:
        return
    check_tensor(fn, "lengths", lengths)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(
            f"{fn}: `lengths` must have shape (batch,) = ({batch},), got {tuple(lengths.shape)}"
        )
    if lengths.is_floating_point() and not bool((lengths == lengths.round()).all()):
        raise ValueError(f"{fn}: `lengths` must hold whole numbers of time steps")
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > time):
        raise ValueError(
            f"{fn}: `lengths` must lie in [0, time={time}], got values in "
            f"[{int(lengths.min())}, {int(lengths.max())}]"
        )


def check_reduction(
    fn: str, reduction: str, allowed: tuple[str, ...] = ("mean", "sum", "none")
) -> None:
    if reduction not in allowed:
        raise ValueError(f"{fn}: `reduction` must be one of {allowed}, got {reduction!r}")
