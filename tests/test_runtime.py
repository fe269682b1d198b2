import os
import platform
import subprocess
import sys

import pytest

from softloc import runtime

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")

# A child process frees and re-allocates 64 MiB blocks (above glibc's largest mmap threshold)
# and prints the page faults of the loop (getrusage, an independent count of the kernel's).
_CHILD = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from softloc.runtime import keep_freed_memory
    print(keep_freed_memory())
else:
    print(None)
a = np.ones(64 << 20, np.uint8)
del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones(64 << 20, np.uint8)
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    env.update(extra)
    return env


def _child(mode, env):
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0], int(out[1])


@needs_glibc
def test_freed_large_blocks_are_reused_without_page_faults():
    _, default = _child("default", _clean_env())
    applied, kept = _child("keep", _clean_env())
    pages = 20 * (64 << 20) // 4096
    assert applied == "True"
    # glibc's default maps every block anew (one fault per page, fewer with huge pages) ...
    assert default > 0
    # ... with the setting the loop reuses the first block's pages
    assert kept * 20 < default and kept < pages // 20


@needs_glibc
def test_a_user_tuned_malloc_is_left_alone():
    applied, faults = _child("keep", _clean_env(MALLOC_ARENA_MAX="2"))
    assert applied == "False"
    assert faults > 0  # still glibc's default behaviour: every block mapped anew


def test_malloc_tuned_by_user_reads_tunables_and_malloc_variables():
    assert not runtime.malloc_tuned_by_user({})
    assert not runtime.malloc_tuned_by_user({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})
    assert runtime.malloc_tuned_by_user({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"})
    assert runtime.malloc_tuned_by_user({"MALLOC_TRIM_THRESHOLD_": "0"})


def test_keep_freed_memory_does_nothing_off_glibc(monkeypatch):
    monkeypatch.setattr(runtime, "_applied", False)
    monkeypatch.setattr(runtime.platform, "libc_ver", lambda: ("", ""))
    assert runtime.keep_freed_memory() is False
    assert runtime._applied is False
