"""Process-wide settings for long CPU runs: memory that a training step frees is kept for the next.

glibc's ``malloc`` serves every request above its mmap threshold (at most 32 MiB on 64-bit
Linux) with a fresh ``mmap`` and gives it back with ``munmap`` on ``free``; it also returns the
free top of its heap to the system once it exceeds the trim threshold. PyTorch's CPU allocator
calls ``malloc`` for every tensor, so a training step that creates and frees large tensors
(the piano preset's harmonic grid: batch x channels x 88 keys x frames) touches new,
zero-filled pages every step: one page fault per 4 KiB. Measured on the ``piano-loco`` preset,
150 steps on 2 threads: 11.7 million page faults and 28 s of system time in an 86 s run; with
:func:`keep_freed_memory` 0.35 million, 2 s and a 70 s run (1.24x; 1.45x on one thread), the
same weights (``benchmarks/allocator.py``, ``docs/benchmarks.md``).

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve large requests from its heap and to
keep freed memory for reuse. The cost: memory freed after a peak stays with the process until it
exits (the peak itself does not grow). :func:`softloc.training.train` calls it unless
``train.keep_freed_memory`` is false. It does nothing on other C libraries (macOS, Windows, musl)
and leaves malloc alone when the user tuned it already (``GLIBC_TUNABLES`` naming
``glibc.malloc``, or one of the ``MALLOC_*_`` environment variables).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

__all__ = ["keep_freed_memory", "malloc_tuned_by_user"]

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# the largest value mallopt takes (an int): free heap top is returned only above 2 GiB
_TRIM_NEVER = 2**31 - 1
_USER_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                   "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")

_applied = False


def malloc_tuned_by_user(environ: dict[str, str] | None = None) -> bool:
    """Whether the environment already sets glibc malloc parameters (then softloc leaves them).

    Args:
        environ: the environment to read (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    return "glibc.malloc" in env.get("GLIBC_TUNABLES", "") or any(
        v in env for v in _USER_VARIABLES)


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse (no ``mmap`` per large tensor, no trim).

    Process-wide and permanent, like ``torch.set_num_threads``; calling it again does nothing.

    Returns:
        True when the setting is in effect (now or from an earlier call), False when it was not
        applied: not glibc, or the user's environment tunes malloc already
        (:func:`malloc_tuned_by_user`).
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if malloc_tuned_by_user():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # both or neither: mallopt returns 1 on success
    _applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_NEVER) == 1
    return _applied
