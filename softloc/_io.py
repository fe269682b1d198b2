"""Safe file output: atomic writes that keep the user's umask, figure saving, provenance.

Every file softloc writes goes through :func:`atomic_write` (or one of its thin wrappers): the data
is written to a *unique* temporary file in the target folder (``tempfile.mkstemp``, so a planted
symlink or a concurrent writer can never be followed or clobbered), flushed, given the permissions
a plain ``open()`` would have given it under the current umask (``mkstemp`` creates files ``0600``,
which made shared datasets unreadable to colleagues), and renamed over the target with
``os.replace``. A crash leaves either the old file or the new one, never a torn one, and the
temporary file is removed on any error.

``overwrite=False`` refuses to replace an existing file (``FileExistsError`` naming it); the check
and the rename use ``os.link`` so that two writers racing for the same new name cannot both win.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from softloc._version import __version__

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_save",
    "save_figure",
    "current_umask",
    "provenance",
]


def current_umask() -> int:
    """The process umask.

    Read from ``/proc/self/status`` where the kernel reports it (Linux >= 4.7), which changes
    nothing; elsewhere set and restored at once (another thread creating a file in between
    would get the temporary mask 0o022).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _exists(path: Path) -> FileExistsError:
    return FileExistsError(
        f"{path}: already exists; not overwriting it (overwrite=True, or --overwrite on the "
        "command line, replaces it)"
    )


def _publish(tmp: str, path: Path, *, overwrite: bool, mode: int | None) -> None:
    os.chmod(tmp, (0o666 if mode is None else mode) & ~current_umask())
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        # link() fails if `path` exists, atomically: no check-then-rename race between writers.
        os.link(tmp, path)
    except FileExistsError:
        raise _exists(path) from None
    except OSError:
        # File systems without hard links: fall back to a checked rename.
        if path.exists():
            raise _exists(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, overwrite: bool = True,
                 encoding: str | None = "utf-8", newline: str | None = "",
                 file_mode: int | None = None) -> Iterator[IO[Any]]:
    """Open a unique temp file next to ``path``; on success publish it at ``path`` atomically.

    Args:
        path: target file; its folder is created if missing.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        overwrite: replace an existing ``path`` (default) or raise ``FileExistsError``.
        encoding, newline: for text mode.
        file_mode: permission bits before the umask (default ``0o666``, as ``open()``).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: ``mode`` is not ``"w"`` or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if not overwrite and path.exists():
        raise _exists(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode == "wb":
            f: IO[Any] = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path, overwrite=overwrite, mode=file_mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path, "w", overwrite=overwrite) as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically; see :func:`atomic_write`."""
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        f.write(data)


def atomic_save(path: str | os.PathLike, writer: Callable[[IO[bytes]], None], *,
                overwrite: bool = True) -> None:
    """Call ``writer(binary_file)`` (``lambda f: torch.save(obj, f)``), publish atomically."""
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        writer(f)


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 150,
                overwrite: bool = True) -> Path:
    """Save a matplotlib figure atomically; the format follows ``path``'s suffix (png, pdf, svg)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


def provenance() -> dict[str, str]:
    """Versions of softloc, Python and the main libraries already imported (imports nothing)."""
    out = {"softloc": __version__, "python": platform.python_version()}
    for name in ("torch", "numpy", "lightning", "scipy", "mir_eval", "sklearn"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "__version__"):
            out[name] = str(mod.__version__)
    return out
