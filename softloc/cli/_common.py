"""Options every command spells the same way, and the one place that prints for the CLI.

* ``-q/--quiet``, ``-v/--verbose``, ``--debug``: on ``softloc`` and on every command
  (:func:`common_parent`), so ``softloc -q detect ...`` and ``softloc detect -q ...`` agree.
* ``--progress/--no-progress`` (:func:`add_progress`): a progress bar on stderr; default on
  when stderr is a terminal, off with ``-q``.
* ``--overwrite`` (:func:`add_overwrite`): replace output FILES of the same name that exist
  already; without it a command never replaces or deletes anything it did not create in this
  run, and stops before any work.
* ``--threads`` / ``--device`` (:func:`add_threads`, :func:`add_device`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = [
    "add_device",
    "add_overwrite",
    "add_progress",
    "add_threads",
    "check_output_file",
    "common_parent",
    "is_quiet",
    "need_training",
    "progress_of",
    "say",
    "threads_arg",
]


def common_parent(*, top: bool) -> argparse.ArgumentParser:
    """``-q``, ``-v``, ``--debug``; on commands (``top=False``) they default to SUPPRESS, so
    that a flag given before the command is not reset by the command's parser."""
    p = argparse.ArgumentParser(add_help=False)
    default = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only (no progress, "
                   "no summaries)", **({"default": False} if top else default))
    p.add_argument("-v", "--verbose", action="count", help="more messages (-vv: also from "
                   "Lightning)", **({"default": 0} if top else default))
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error",
                   **({"default": False} if top else default))
    return p


def is_quiet(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "quiet", False))


def say(args: argparse.Namespace, message: str) -> None:
    """Print ``message`` on stdout unless ``-q``."""
    if not is_quiet(args):
        print(message, flush=True)


def need_training(args: argparse.Namespace, purpose: str) -> None:
    """Import the ``train`` extra (one line naming it when missing) and set Lightning's log
    level (importing Lightning resets it to INFO): its info lines only with ``-vv``."""
    from softloc._deps import require

    for module in ("lightning", "tensorboard"):
        require(module, extra="train", purpose=purpose)
    level = logging.INFO if int(getattr(args, "verbose", 0) or 0) > 1 else logging.WARNING
    if is_quiet(args):
        level = logging.ERROR
    for name in ("lightning", "lightning.fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(level)


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: on when stderr is a terminal; off "
                   "with -q)")


def progress_of(args: argparse.Namespace) -> bool:
    """``--progress`` / ``--no-progress`` if given, else on when stderr is a terminal (not in
    logs) and not ``-q``."""
    flag = getattr(args, "progress", None)
    if flag is not None:
        return bool(flag)
    return not is_quiet(args) and bool(getattr(sys.stderr, "isatty", lambda: False)())


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} that exist already (default: refuse, before any work)")


def threads_arg(text: str) -> int | str:
    """``--threads``: ``auto`` or an integer >= 1."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got {text!r}")
    return value


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=threads_arg, default="auto", metavar="N",
                   help="torch CPU threads (default auto: 1 for small networks such as the drum "
                   "models, which run fastest on one thread)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu",
                   help="where the network runs: cpu (default), cuda, cuda:1, mps")


def check_output_file(path: Path, *, overwrite: bool) -> None:
    """Refuse an output file that exists (unless ``overwrite``) or is a folder, before work."""
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; expected an output file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; not replacing it (--overwrite replaces "
                              "it)")


def eprint(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
