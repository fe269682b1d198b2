"""Boundary validators shared by every public function of softloc (private module).

Each public function checks its arguments here, once, before any arithmetic. Failures raise

* ``TypeError`` for a bad type (a list where a tensor is needed, a float tensor of counts given
  as ``bool``, ``"200"`` as a frame rate),
* ``ValueError`` for a bad value or shape,

with a message that names the public function, the argument, what was expected and what was
found: ``loco_loss: `counts` must be >= 0, got minimum -1``. Internals trust their inputs and
never call these again.

Policies that hold everywhere:

* **Integers** accept ``int`` and numpy integers, never ``bool``.
* **Real numbers** accept ``int``, ``float`` and numpy scalars, never ``bool``; NaN is rejected
  by every range check.
* **Counts** (events per sequence and class) are whole, finite, non-negative numbers in an
  integer or floating tensor; a ``bool`` tensor is a ``TypeError`` (a 0/1 mask is not a count).
* **Tensor checks cost host syncs**: each batches its tests into one reduction and only computes
  the details of the message once it has failed.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import torch

_REAL_TYPES = (int, float, np.integer, np.floating)
_INT_TYPES = (int, np.integer)


# --------------------------------------------------------------------------------------------
# Scalars


def check_bool(fn: str, name: str, value: object) -> bool:
    """``value`` is a ``bool``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: `{name}` must be a bool, got {type(value).__name__}")
    return bool(value)


def check_int(fn: str, name: str, value: object, *, minimum: int | None = None) -> int:
    """``value`` is an integer (not a bool), ``>= minimum`` when given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _INT_TYPES):
        raise TypeError(f"{fn}: `{name}` must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{fn}: `{name}` must be >= {minimum}, got {value}")
    return int(value)


def check_positive_int(fn: str, name: str, value: object, minimum: int = 1) -> int:
    """``value`` is an integer ``>= minimum`` (default 1)."""
    return check_int(fn, name, value, minimum=minimum)


def check_real(
    fn: str,
    name: str,
    value: object,
    *,
    finite: bool = True,
    minimum: float | None = None,
    positive: bool = False,
    unit: str = "",
) -> float:
    """``value`` is a real number (not a bool) -> float.

    Args:
        fn, name: the public function and the argument, for the message.
        value: the argument.
        finite: reject NaN and +-inf.
        minimum: reject values below it (NaN too).
        positive: reject values <= 0 (NaN too).
        unit: appended to range messages (e.g. ``" (frames per second)"``).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _REAL_TYPES):
        raise TypeError(f"{fn}: `{name}` must be a real number, got {type(value).__name__}")
    x = float(value)
    if finite and not math.isfinite(x):
        raise ValueError(f"{fn}: `{name}` must be finite, got {x:g}")
    if positive and not x > 0:
        raise ValueError(f"{fn}: `{name}` must be > 0{unit}, got {x:g}")
    if minimum is not None and not x >= minimum:
        raise ValueError(f"{fn}: `{name}` must be >= {minimum:g}{unit}, got {x:g}")
    return x


def check_frame_rate(fn: str, frame_rate: object) -> float:
    """A finite frame rate > 0 in frames per second."""
    return check_real(fn, "frame_rate", frame_rate, positive=True, unit=" (frames per second)")


def check_unit_float(fn: str, name: str, value: object) -> float:
    """A real number in [0, 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _REAL_TYPES):
        raise TypeError(f"{fn}: `{name}` must be a float in [0, 1], got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{fn}: `{name}` must lie in [0, 1], got {value}")
    return float(value)


def check_power_of_two(fn: str, name: str, value: int) -> None:
    """An int that is already known to be >= 1 is a power of two."""
    if value & (value - 1):
        raise ValueError(f"{fn}: `{name}` must be a power of two (1, 2, 4, 8, ...), got {value}")


def check_choice(fn: str, name: str, value: object, choices: Collection[str]) -> str:
    """``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{fn}: `{name}` must be one of {tuple(choices)}, got {value!r}")
    return value


def check_reduction(
    fn: str, reduction: object, allowed: tuple[str, ...] = ("mean", "sum", "none")
) -> str:
    """A loss reduction among ``allowed``."""
    return check_choice(fn, "reduction", reduction, allowed)


# --------------------------------------------------------------------------------------------
# Tensors


def check_tensor(fn: str, name: str, x: object) -> torch.Tensor:
    """``x`` is a ``torch.Tensor``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: `{name}` must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_ndim(fn: str, name: str, x: torch.Tensor, ndim: int, layout: str) -> None:
    """``x`` has ``ndim`` dimensions laid out as ``layout`` (e.g. ``"(batch, class, time)"``)."""
    if x.dim() != ndim:
        raise ValueError(
            f"{fn}: `{name}` must have shape {layout} ({ndim} dims), got shape {tuple(x.shape)}"
        )


def check_float(fn: str, name: str, x: torch.Tensor) -> None:
    """``x`` has a floating dtype."""
    if not x.is_floating_point():
        raise TypeError(f"{fn}: `{name}` must be a floating-point tensor, got dtype {x.dtype}")


def _min_max(x: torch.Tensor) -> tuple[float, float]:
    """Smallest and largest entry of a non-empty floating tensor, NaN if it holds one; one sync.

    CPU float32/64 tensors are read by numpy, on the calling thread: a torch reduction this large
    is a parallel region, after which torch's OpenMP workers spin for milliseconds on the other
    cores, where the count kernels' threads (``softloc.counting``) are about to run.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        a = x.detach().numpy()
        return float(a.min()), float(a.max())
    lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()
    return lo, hi


def check_probabilities(fn: str, name: str, x: torch.Tensor) -> None:
    """A floating tensor of probabilities in [0, 1] (NaN rejected); one host sync."""
    check_float(fn, name, x)
    if not x.numel():
        return
    lo, hi = _min_max(x)  # NaN propagates into both
    if not (lo >= 0 and hi <= 1):
        lo, hi = float(torch.nan_to_num(x, nan=-1.0).min()), float(x.max())
        raise ValueError(
            f"{fn}: `{name}` must hold probabilities in [0, 1], found values in [{lo:g}, {hi:g}]"
            " (pass logits through torch.sigmoid first, or use the logits=True variant)"
        )


def check_logits(fn: str, name: str, x: torch.Tensor) -> None:
    """A floating tensor of pre-sigmoid scores: any real or +-inf, no NaN; one host sync."""
    check_float(fn, name, x)
    if x.numel() and math.isnan(_min_max(x)[0]):
        raise ValueError(f"{fn}: `{name}` holds logits (logits=True) and must not contain NaN")


def check_scores(
    fn: str, name: str, x: object, *, logits: object, layout: str = "(batch, class, time)"
) -> torch.Tensor:
    """A 3-D tensor of probabilities, or of logits when ``logits`` is True."""
    x = check_tensor(fn, name, x)
    check_ndim(fn, name, x, len(layout.split(",")), layout)
    if check_bool(fn, "logits", logits):
        check_logits(fn, name, x)
    else:
        check_probabilities(fn, name, x)
    return x


def check_lengths(fn: str, lengths: object, batch: int, time: int) -> torch.Tensor | None:
    """``lengths`` is None or a ``(batch,)`` tensor of whole numbers in [0, time]; one sync."""
    if lengths is None:
        return None
    lengths = check_tensor(fn, "lengths", lengths)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(
            f"{fn}: `lengths` must have shape (batch,) = ({batch},), got {tuple(lengths.shape)}"
        )
    if lengths.dtype == torch.bool or lengths.is_complex():
        raise TypeError(f"{fn}: `lengths` must be an integer or float tensor, got {lengths.dtype}")
    if not lengths.numel():
        return lengths
    x = lengths.detach()
    ok = (x >= 0) & (x <= time)
    if x.is_floating_point():
        ok &= x == x.round()
    if bool(ok.all()):
        return lengths
    if x.is_floating_point() and not bool((x == x.round()).all()):
        raise ValueError(f"{fn}: `lengths` must hold whole numbers of time steps")
    raise ValueError(
        f"{fn}: `lengths` must lie in [0, time={time}], got values in "
        f"[{int(x.min())}, {int(x.max())}]"
    )


def check_counts(fn: str, counts: object, shape: tuple[int, ...]) -> torch.Tensor:
    """Event counts: whole, finite numbers >= 0 of the given shape; ``bool`` is a TypeError.

    One host sync when the counts are valid.
    """
    counts = check_tensor(fn, "counts", counts)
    if counts.dtype == torch.bool or counts.is_complex():
        raise TypeError(f"{fn}: `counts` must be an integer or float tensor, got {counts.dtype}")
    if tuple(counts.shape) != tuple(shape):
        raise ValueError(
            f"{fn}: `counts` must have shape (batch, class) = {tuple(shape)}, "
            f"got {tuple(counts.shape)}"
        )
    if not counts.numel():
        return counts
    x = counts.detach()
    if x.is_floating_point():
        ok = torch.isfinite(x) & (x == x.round()) & (x >= 0)
    else:
        ok = x >= 0
    if bool(ok.all()):
        return counts
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{fn}: `counts` must be finite, found NaN or inf")
        if not bool((x == x.round()).all()):
            raise ValueError(f"{fn}: `counts` must hold whole numbers of events")
    raise ValueError(f"{fn}: `counts` must be >= 0, got minimum {x.min().item():g}")


def check_targets(
    fn: str, targets: object, shape: tuple[int, ...], *, like: str = "probs"
) -> torch.Tensor:
    """Frame labels in [0, 1] with the shape of the argument ``like``; one host sync."""
    targets = check_tensor(fn, "targets", targets)
    if tuple(targets.shape) != tuple(shape):
        raise ValueError(
            f"{fn}: `targets` must have the shape of `{like}` (batch, class, time) = "
            f"{tuple(shape)}, got {tuple(targets.shape)}"
        )
    if targets.dtype == torch.bool:
        return targets
    x = targets.detach()
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        lo = float(torch.nan_to_num(x.double(), nan=-1.0).min())
        hi = float(x.double().max())
        raise ValueError(
            f"{fn}: `targets` must hold label values in [0, 1] (1 at an event frame), found "
            f"values in [{lo:g}, {hi:g}]"
        )
    return targets


def check_sigma(fn: str, sigma: object, batch: int | None) -> float | torch.Tensor:
    """A softness in frames: a float >= 0 (inf allowed), or a ``(batch,)`` tensor of them when
    ``batch`` is given (inf = count-only item)."""
    if isinstance(sigma, torch.Tensor):
        if batch is None:
            raise TypeError(f"{fn}: `sigma` must be a float, got a tensor")
        if sigma.dim() != 1 or sigma.shape[0] != batch:
            raise ValueError(
                f"{fn}: a tensor `sigma` must have shape (batch,) = ({batch},), "
                f"got {tuple(sigma.shape)}"
            )
        if sigma.numel() and not bool((sigma.detach() >= 0).all()):  # also rejects NaN
            raise ValueError(
                f"{fn}: `sigma` must be >= 0 frames (inf for count-only items), got "
                f"{sigma.tolist()}"
            )
        return sigma
    if isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, _REAL_TYPES):
        raise TypeError(f"{fn}: `sigma` must be a float (frames), got {type(sigma).__name__}")
    if not sigma >= 0:  # also rejects NaN
        raise ValueError(
            f"{fn}: `sigma` must be >= 0 frames, got {sigma} (convert milliseconds with "
            "softloc.timebase.ms_to_frames)"
        )
    return float(sigma)


def check_finite_sigma(fn: str, sigma: object) -> float:
    """A finite softness in frames, >= 0."""
    value = check_sigma(fn, sigma, None)
    assert isinstance(value, float)
    if math.isinf(value):
        raise ValueError(f"{fn}: `sigma` must be a finite number of frames, got {value}")
    return value


# --------------------------------------------------------------------------------------------
# Arrays (numpy or torch) of one sequence


def as_float64_array(fn: str, name: str, x: object, ndim: int, layout: str) -> np.ndarray:
    """A floating numpy array or torch tensor of rank ``ndim`` -> float64 numpy, all finite.

    Tensors are detached and copied to the CPU.
    """
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"{fn}: `{name}` must be a floating-point tensor, got dtype {x.dtype}")
        arr = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{fn}: `{name}` must be a floating-point array, got dtype {x.dtype}")
        arr = x.astype(np.float64, copy=False)
    else:
        raise TypeError(
            f"{fn}: `{name}` must be a numpy.ndarray or torch.Tensor of shape {layout}, got "
            f"{type(x).__name__} (wrap it with np.asarray(..., dtype=float))"
        )
    if arr.ndim != ndim:
        hint = ""
        if layout == "(class, time)" and arr.ndim == 1:
            hint = " (for a single class pass x[None])"
        elif layout == "(class, time)" and arr.ndim == 3:
            hint = " (decode one sequence at a time: loop over the batch dimension)"
        raise ValueError(
            f"{fn}: `{name}` must have shape {layout} ({ndim} dims), got shape "
            f"{tuple(arr.shape)}{hint}"
        )
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{fn}: `{name}` must be finite, found NaN or inf")
    return arr


def check_unit_interval(fn: str, name: str, arr: np.ndarray) -> None:
    """A numpy array of probabilities in [0, 1]."""
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(
            f"{fn}: `{name}` must hold probabilities in [0, 1], found values in "
            f"[{arr.min():g}, {arr.max():g}] (apply a sigmoid to logits first)"
        )


def check_threshold(fn: str, threshold: object, *, unit: bool) -> float:
    """A finite decision threshold; in [0, 1) when ``unit`` (events need ``p > threshold``)."""
    value = check_real(fn, "threshold", threshold)
    if unit and not 0.0 <= value < 1.0:
        raise ValueError(
            f"{fn}: `threshold` must lie in [0, 1) since events need p > threshold, got {value:g}"
        )
    return value


def as_count_array(fn: str, name: str, counts: object) -> np.ndarray:
    """A 1-D sequence of event counts -> int64 numpy array.

    Same policy as :func:`check_counts`: integer dtype, or floats holding whole finite numbers;
    ``bool`` is a TypeError; every count >= 0.
    """
    if hasattr(counts, "detach"):  # a torch tensor
        counts = counts.detach().cpu().numpy()  # type: ignore[union-attr]
    arr = np.asarray(counts)
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        whole = (
            np.issubdtype(arr.dtype, np.floating)
            and bool(np.isfinite(arr).all())
            and bool(np.all(arr == np.round(arr)))
        )
        if not whole:
            raise TypeError(
                f"{fn}: `{name}` must hold integers (or whole, finite floats), got dtype "
                f"{arr.dtype}"
            )
    if arr.ndim != 1:
        raise ValueError(f"{fn}: `{name}` must be 1-D, got shape {tuple(arr.shape)}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{fn}: `{name}` must be >= 0, found {arr.min():g}")
    return arr.astype(np.int64)


def check_truncate(fn: str, truncate: object) -> float:
    """A Gaussian kernel radius in standard deviations: a finite number > 0."""
    if isinstance(truncate, (bool, np.bool_)) or not isinstance(truncate, _REAL_TYPES):
        raise TypeError(f"{fn}: `truncate` must be a real number, got {type(truncate).__name__}")
    if not (truncate > 0 and math.isfinite(truncate)):
        raise ValueError(f"{fn}: `truncate` must be a finite number > 0, got {truncate}")
    return float(truncate)


def check_pos_weight_scalar(fn: str, value: object) -> float:
    """A positive-class weight given as a number: >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _REAL_TYPES):
        raise TypeError(
            f"{fn}: `pos_weight` must be a float or a (class,) tensor, got {type(value).__name__}"
        )
    if not value >= 0:
        raise ValueError(f"{fn}: `pos_weight` must be >= 0, got {value}")
    return float(value)


def check_pos_weight(fn: str, pos_weight: object, n_classes: int) -> torch.Tensor | None:
    """None, a number >= 0 (-> a ``(class,)`` tensor) or a ``(class,)`` tensor of them."""
    if pos_weight is None:
        return None
    if not isinstance(pos_weight, torch.Tensor):
        pos_weight = torch.tensor([check_pos_weight_scalar(fn, pos_weight)] * n_classes)
    if pos_weight.shape != (n_classes,):
        raise ValueError(
            f"{fn}: `pos_weight` must be a float or have shape (class,) = ({n_classes},), "
            f"got {tuple(pos_weight.shape)}"
        )
    if not bool((pos_weight.detach() >= 0).all()):
        raise ValueError(f"{fn}: `pos_weight` must be >= 0, got {pos_weight.tolist()}")
    return pos_weight
