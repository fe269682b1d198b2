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
An ``OSError`` while writing (disk full, quota, permission) is re-raised naming the target file.

Who writes: :func:`is_rank_zero` tells the one process of a distributed run (torchrun, SLURM,
Lightning's own launcher) that writes run folders and prints; :func:`folder_lock` holds a lock
file beside an output folder, so that two commands writing into one folder at the same time do
not mix their files: the second stops with :class:`FolderLockedError`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from softloc._version import __version__

__all__ = [
    "FolderLockedError",
    "atomic_write",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_save",
    "save_figure",
    "current_umask",
    "folder_lock",
    "is_rank_zero",
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
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, FileExistsError) or err.errno is None or err.filename:
            raise
        # ENOSPC and friends come from write()/fsync() without a file name: name the target.
        raise OSError(err.errno, err.strerror or os.strerror(err.errno), str(path)) from err
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


# ----------------------------------------------------------------------------- who writes

#: Environment variables that launchers set to a process's rank: torchrun / torch.distributed
#: (RANK, LOCAL_RANK, GROUP_RANK), SLURM's srun (SLURM_PROCID), Lightning's launcher (NODE_RANK,
#: LOCAL_RANK), MPI (OMPI_COMM_WORLD_RANK, PMI_RANK).
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID",
                   "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of a distributed run (or not distributed at all).

    Read from the launchers' environment variables, so it is right before any process group
    exists: in a process that Lightning's launcher re-runs for rank 1 (``LOCAL_RANK=1``), under
    torchrun (``RANK``) and under SLURM's ``srun`` (``SLURM_PROCID``). A process is rank 0 when
    every such variable that is set is 0; a variable that is not an integer is ignored.
    """
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.lstrip("-").isdigit() and int(value) != 0:
            return False
    return True


class FolderLockedError(FileExistsError):
    """Another process holds the lock of an output folder (:func:`folder_lock`)."""


def _lock_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.softloc-lock"


def _holder_is_alive(text: str) -> bool:
    """Whether the lock file's writer (``pid host ...``) may still run (other host: assume so)."""
    parts = text.split()
    if len(parts) < 2 or not parts[0].isdigit():
        return True
    if parts[1] != socket.gethostname():
        return True
    try:
        os.kill(int(parts[0]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, command: str = "softloc") -> Iterator[Path]:
    """Hold the lock of output folder ``folder`` while the body writes into it.

    The lock is a file ``.<folder name>.softloc-lock`` BESIDE the folder (so the folder itself
    holds only outputs), created with ``O_EXCL`` and holding ``pid host command``; it is removed
    when the body ends. A lock left by a process that no longer runs on this host (killed with
    SIGKILL) is taken over.

    Yields:
        the lock file's path.

    Raises:
        FolderLockedError: another live process holds the lock (the message names it).
    """
    folder = Path(folder)
    lock = _lock_path(folder)
    lock.parent.mkdir(parents=True, exist_ok=True)
    stamp = f"{os.getpid()} {socket.gethostname()} {command}\n"
    for attempt in (0, 1):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            try:
                holder = lock.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue  # released between our open() and read: try again
            if attempt == 0 and not _holder_is_alive(holder):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            pid_host = " ".join(holder.split()[:2]) or "unknown"
            raise FolderLockedError(
                f"{folder}: another softloc command is writing here (process {pid_host}: "
                f"{' '.join(holder.split()[2:]) or '?'}); wait for it to finish, or delete "
                f"{lock} if that process is gone"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(stamp)
        break
    else:  # pragma: no cover - two stale takeovers in a row
        raise FolderLockedError(f"{folder}: could not take the lock {lock}")
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def provenance() -> dict[str, str]:
    """Versions of softloc, Python and the main libraries already imported (imports nothing)."""
    out = {"softloc": __version__, "python": platform.python_version()}
    for name in ("torch", "numpy", "lightning", "scipy", "mir_eval", "sklearn"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "__version__"):
            out[name] = str(mod.__version__)
    return out
