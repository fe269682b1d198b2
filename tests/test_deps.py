"""Tests for softloc._deps: a missing optional dependency is one line naming the extra; the
count loss falls back from numba to the tree backend; the core install is light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from softloc._deps import EXTRAS, MissingDependencyError, available, require

ROOT = Path(__file__).resolve().parents[1]


def test_require_returns_the_module():
    import json

    assert require("json", extra="train") is json


def test_missing_module_names_the_extra_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)  # import now raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        require("lightning", extra="train", purpose="softloc train")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("softloc train needs lightning")
    assert "pip install 'softloc[train]'" in msg
    assert isinstance(info.value, ImportError)
    assert not available("lightning")


def test_distribution_name_is_used_in_the_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingDependencyError, match=r"needs scikit-learn.*softloc\[experiments\]"):
        require("sklearn", extra="experiments")


def test_unknown_extra_is_rejected():
    with pytest.raises(ValueError, match="require: `extra` must be one of"):
        require("json", extra="gpu")


def _pyproject_lists() -> tuple[list[str], dict[str, list[str]]]:
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11")
    project = tomllib.loads(text)["project"]
    return project["dependencies"], project["optional-dependencies"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-")
            for r in requirements}


def test_core_install_is_what_detection_and_evaluation_need():
    core, extras = _pyproject_lists()
    assert _names(core) == {"torch", "numpy", "scipy", "soundfile", "soxr", "mir-eval",
                            "pretty-midi", "pyyaml"}
    assert _names(extras["train"]) == {"lightning", "tensorboard", "numba"}
    assert {"matplotlib", "scikit-learn", "wfdb"} <= _names(extras["experiments"])
    # every extra _deps names exists in pyproject
    assert set(EXTRAS) <= set(extras)


_BLOCK = ("import sys\n"
          "for m in ('numba',):\n"
          "    sys.modules[m] = None\n")


def test_count_loss_without_numba_falls_back_to_tree_with_one_notice():
    code = _BLOCK + (
        "import torch\n"
        "from softloc.counting import count_log_likelihood as ll, resolve_backend\n"
        "assert resolve_backend('auto', 'cpu') == 'tree'\n"
        "p = torch.full((2, 1, 30), 0.2, dtype=torch.float64, requires_grad=True)\n"
        "n = torch.tensor([[3], [5]])\n"
        "a = ll(p, n, k_max=8)\n"
        "b = ll(p, n, k_max=8, backend='reference')\n"
        "assert torch.allclose(a, b), (a, b)\n"
        "resolve_backend('auto', 'cpu')\n"
        "try:\n"
        "    resolve_backend('cpu', 'cpu')\n"
        "except ImportError as err:\n"
        "    print('ERR', err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if "numba is not installed" in line]
    assert len(notices) == 1, proc.stderr
    assert "softloc[train]" in proc.stdout
