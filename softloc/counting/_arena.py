"""Reusable float64 work buffers for the CPU count backend (private).

Why: one loss evaluation of a (8, 88, 400) batch needs ~12 MB of scratch (time-major inputs,
gradient checkpoints, the adjoint's output). Fresh buffers of that size come from ``mmap``, and
first-touch page faults cost ~2-3 us per 4 KiB page on the virtual machines this project runs on,
a large share of a forward + backward whenever the allocator hands out fresh pages (it does not
always: docs/benchmarks.md found no difference in the benchmark). Buffers handed back here are
reused by the next call (they are then also warm in cache).

A buffer is handed back when its owner no longer needs it: work buffers right after use, the
forward's saved state when the autograd graph holding it is freed (``weakref.finalize``), so a
graph kept for a second backward (``retain_graph=True``) keeps its buffers. The free list holds at
most ``MAX_BYTES``; beyond that buffers are dropped to the allocator as before.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable

import numpy as np

MAX_BYTES = 256 * 2**20
# A free buffer serves a request only if it is at most this many times too large, so one huge
# buffer does not end up holding small requests (and the large one it was kept for is refaulted).
_SLACK = 2

_lock = threading.Lock()
_free: list[np.ndarray] = []  # 1-D float64 base buffers, sizes ascending
_held = 0  # bytes in _free
_limit = MAX_BYTES  # (set_cpu_options(max_cached_bytes=...))


def _reset_after_fork() -> None:
    # A fork taken while another thread held the lock would leave the child's copy locked.
    global _lock, _free, _held
    _lock, _free, _held = threading.Lock(), [], 0


os.register_at_fork(after_in_child=_reset_after_fork)


def take(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """An uninitialised float64 array of ``shape`` and the base buffer to hand back later."""
    global _held
    n = max(1, math.prod(shape))
    with _lock:
        for i, buf in enumerate(_free):
            if n <= buf.size <= _SLACK * n:
                del _free[i]
                _held -= buf.nbytes
                break
        else:
            buf = None
    if buf is None:
        buf = np.empty(n)
    return buf[: math.prod(shape)].reshape(shape), buf


def give(bases: Iterable[np.ndarray]) -> None:
    """Hand base buffers (from :func:`take`) back for reuse; the caller no longer uses them."""
    global _held
    with _lock:
        for buf in bases:
            if _held + buf.nbytes > _limit:
                continue
            sizes = [b.size for b in _free]
            _free.insert(int(np.searchsorted(sizes, buf.size)), buf)
            _held += buf.nbytes


def held_bytes() -> int:
    """Bytes now kept for reuse (for tests and tuning)."""
    return _held


def clear() -> None:
    """Drop every kept buffer (the benchmark does, to count a call's whole memory)."""
    global _held
    with _lock:
        _free.clear()
        _held = 0


def set_limit(max_bytes: int) -> None:
    """Keep at most ``max_bytes`` from now on; the kept buffers are dropped if they exceed it."""
    global _limit
    _limit = max_bytes
    if _held > max_bytes:
        clear()
