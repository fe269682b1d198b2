"""Internals shared by the loss modules (private to ``softloc.losses``): masks, reductions,
the Gaussian filter, element-wise terms, and the probability / logit split of the input.

Everything here trusts its arguments: the public losses validate once, at their boundary.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from softloc._checks import check_bool, check_logits, check_ndim, check_probabilities, check_tensor

LAYOUT = "(batch, class, time)"
# Reductions of losses that sum over time: "classes" is the original SoftLoc scaling.
TIME_REDUCTIONS = ("classes", "mean", "sum", "none")
DISTANCES = ("squared", "log")
# Longest sequence filtered by a dense Toeplitz product (T^2 memory); longer ones use conv1d.
TOEPLITZ_MAX_STEPS = 2048
# torch.nn.functional.binary_cross_entropy clamps log terms at -100; we do the same so that
# our cross-entropies agree with it even for probabilities of exactly 0 or 1.
LOG_FLOOR = -100.0


def check_input(fn: str, probs: object, logits: object) -> torch.Tensor:
    """The loss input: a ``(batch, class, time)`` tensor of probabilities, or of logits."""
    x = check_tensor(fn, "probs", probs)
    check_ndim(fn, "probs", x, 3, LAYOUT)
    if check_bool(fn, "logits", logits):
        check_logits(fn, "probs", x)
    else:
        check_probabilities(fn, "probs", x)
    return x


def split_scores(x: torch.Tensor, logits: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """-> (p, z): probabilities, and the logits they came from when ``logits`` is True."""
    return (torch.sigmoid(x), x) if logits else (x, None)


def time_mask(lengths: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """(batch, 1, time) boolean mask of valid steps, or None when every step is valid."""
    if lengths is None:
        return None
    steps = torch.arange(like.shape[-1], device=like.device)
    return (steps[None, :] < lengths.to(like.device)[:, None])[:, None, :]  # (B, T) -> (B, 1, T)


def masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``x`` with 0 at the masked steps (a select, not a product: inf * 0 would be NaN)."""
    return x if mask is None else torch.where(mask, x, 0.0)


def n_valid(x: torch.Tensor, lengths: torch.Tensor | None) -> int:
    """Number of valid (batch, class, time) elements."""
    b, c, t = x.shape
    return b * c * t if lengths is None else c * int(lengths.sum())


def reduce_time(elem: torch.Tensor, lengths: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Reduce a (batch, class, time) element-wise loss that is already zero beyond ``lengths``."""
    if reduction == "none":
        return elem
    if reduction == "sum":
        return elem.sum()
    if reduction == "classes":
        return elem.sum() / elem.shape[1]
    # "mean" over valid elements; an empty batch gives NaN like torch's mean of nothing.
    return elem.sum() / n_valid(elem, lengths)


def reduce_rows(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a (batch, class) loss."""
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


@functools.lru_cache(maxsize=256)
def kernel_taps(sigma: float, truncate: float) -> np.ndarray:
    """Float64 taps of scipy.ndimage.gaussian_filter1d's order-0 kernel, centred, sum 1."""
    # scipy skips the filter entirely for sigma <= 1e-15: the impulse.
    if sigma <= 1e-15:
        return np.ones(1)
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


def _crop(taps: torch.Tensor, n_steps: int) -> torch.Tensor:
    # With zero padding and "same" output, taps further than n_steps - 1 from the centre never
    # meet a sample: cropping them changes nothing and keeps the convolution O(T^2) at most.
    radius = (taps.shape[-1] - 1) // 2
    keep = min(radius, max(n_steps - 1, 0))
    return taps[..., radius - keep : radius + keep + 1]


def filter_rows(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-padded 'same' filtering of every (batch, class) row with one odd 1-D kernel."""
    b, c, t = x.shape
    kernel = _crop(kernel, t).to(dtype=x.dtype, device=x.device)
    if kernel.numel() == 1:
        return x * kernel[0]
    radius = (kernel.numel() - 1) // 2
    if t <= TOEPLITZ_MAX_STEPS:
        # A banded (T, T) matrix product is ~20x faster than conv1d with a single input channel
        # for the usual T of a few hundred frames (161 taps at sigma = 20), on CPU and GPU alike.
        steps = torch.arange(t, device=x.device)
        offset = steps[:, None] - steps[None, :]  # (T, T): s - t
        band = offset.abs() <= radius
        toeplitz = torch.where(band, kernel[(offset + radius).clamp(0, 2 * radius)], 0.0)
        return x @ toeplitz  # (B, C, T) @ (T, T): out[t] = sum_s x[s] k[s - t + r]
    rows = x.reshape(b * c, 1, t)  # (B, C, T) -> (B*C, 1, T)
    # conv1d is a cross-correlation; the kernel is symmetric, so this is the convolution.
    out = F.conv1d(rows, kernel.view(1, 1, -1), padding=radius)
    return out.reshape(b, c, t)  # (B*C, 1, T) -> (B, C, T)


def filter_per_item(x: torch.Tensor, sigmas: torch.Tensor, truncate: float) -> torch.Tensor:
    """Filter item i with its own sigma; sigma = inf gives 0 (the sigma -> inf limit)."""
    out = torch.zeros_like(x)
    values = sigmas.detach().double().cpu()
    for s in torch.unique(values).tolist():
        if math.isinf(s):
            continue  # the normalised filter flattens to 0 everywhere as sigma -> inf
        idx = torch.nonzero(values == s).flatten().to(x.device)
        kernel = torch.from_numpy(kernel_taps(s, truncate))
        out = out.index_copy(0, idx, filter_rows(x.index_select(0, idx), kernel))
    return out


def floored_log(x: torch.Tensor) -> torch.Tensor:
    """log x floored at LOG_FLOOR (torch's binary_cross_entropy). The floor has a zero gradient,
    at x = 0 as well (a clamp of log 0 would back-propagate 0 * inf = NaN)."""
    keep = x > math.exp(LOG_FLOOR)
    return torch.where(keep, torch.log(torch.where(keep, x, 1.0)), LOG_FLOOR)


def floored_log1p(x: torch.Tensor) -> torch.Tensor:
    """log(1 + x) floored at LOG_FLOOR, with a zero gradient on the floor (x = -1 included)."""
    inside = x > -1.0
    value = torch.log1p(torch.where(inside, x, 0.0))
    keep = inside & (value > LOG_FLOOR)
    return torch.where(keep, value, LOG_FLOOR)


def pointwise(diff: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "squared":
        return diff.square()
    # -log(1 - |d|) (SoftLoc eq. 5), floored like torch's binary_cross_entropy.
    return -floored_log1p(-diff.abs())


def bce_elementwise(
    probs: torch.Tensor,
    z: torch.Tensor | None,
    targets: torch.Tensor,
    pos_weight: torch.Tensor | None,
) -> torch.Tensor:
    weight = None if pos_weight is None else pos_weight.to(probs.dtype).view(1, -1, 1)  # (C,)
    if z is not None:  # exact log p and log(1 - p) from the logits, no floor needed
        # At logits of +-inf log p or log(1 - p) is -inf: its term is 0 where its weight is 0
        # (not 0 * inf = NaN) and +inf where not, with a zero gradient either way.
        low, high = z == -math.inf, z == math.inf
        log_p = torch.where(low, 0.0, F.logsigmoid(z))
        log_q = torch.where(high, 0.0, F.logsigmoid(-z))
        pos_mass = targets if weight is None else targets * weight
        sure = (low & (pos_mass > 0)) | (high & (targets < 1))
    else:
        log_p, log_q, sure = floored_log(probs), floored_log1p(-probs), None
    pos = targets * log_p
    if weight is not None:
        pos = pos * weight
    elem = -(pos + (1 - targets) * log_q)
    return elem if sure is None else torch.where(sure, math.inf, elem)
