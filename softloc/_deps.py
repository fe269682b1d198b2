"""Optional dependencies: one place that imports them and names the extra that installs them.

``pip install softloc`` installs what detection and evaluation need (torch, numpy, scipy,
soundfile, soxr, mir_eval, pretty_midi, pyyaml). The rest comes with extras (``pyproject.toml``):

=================  ======================================  =====================================
extra              packages                                needed by
=================  ======================================  =====================================
``train``          lightning, tensorboard, numba           ``softloc train``, ``softloc demo``,
                                                           experiments; numba speeds up the
                                                           count loss (``softloc.counting``)
``plot``           matplotlib                              ``softloc plot``, every figure
``experiments``    ``plot`` + scikit-learn, wfdb           ``softloc experiment ...``
=================  ======================================  =====================================

:func:`require` imports a module of an extra or raises :class:`MissingDependencyError`, one line
that says what to install; :func:`available` asks without importing.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["EXTRAS", "MissingDependencyError", "available", "require"]

#: extra -> the modules it provides (import names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("lightning", "tensorboard", "numba"),
    "plot": ("matplotlib",),
    "experiments": ("matplotlib", "sklearn", "wfdb"),
}

# import name -> distribution name, where they differ
_DIST = {"sklearn": "scikit-learn"}


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def available(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path), without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or sys.modules[m] = None
        return False


def require(module: str, *, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module``; if it is missing, say which extra installs it.

    Args:
        module: import name, e.g. ``"lightning"``.
        extra: the extra of ``softloc`` that installs it (a key of :data:`EXTRAS`).
        purpose: what needs it, e.g. ``"softloc train"`` (default: ``"this feature"``).

    Returns:
        the imported module.

    Raises:
        MissingDependencyError: ``module`` is not installed (or fails to import).
        ValueError: ``extra`` is not a key of :data:`EXTRAS`.
    """
    if extra not in EXTRAS:
        raise ValueError(f"require: `extra` must be one of {sorted(EXTRAS)}, got {extra!r}")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        dist = _DIST.get(module, module)
        raise MissingDependencyError(
            f"{purpose or 'this feature'} needs {dist}, which is not installed "
            f"({type(err).__name__}: {err}); install it with: pip install 'softloc[{extra}]'"
        ) from None
