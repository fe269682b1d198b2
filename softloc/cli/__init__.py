"""The ``softloc`` command line: all argument parsing; every command calls one documented function.

==============================  ====================================================================
command                         Python API
==============================  ====================================================================
``train``                       :func:`softloc.training.train`
``detect``                      :class:`softloc.inference.Detector` +
                                :func:`softloc.inference.detect_to_folder`
``evaluate``                    :func:`softloc.evaluation.evaluate_folders`
``plot``                        :func:`softloc.plots.plot_detection`
``data synth-drums``            :func:`softloc.data.synthesize_drum_dataset`
``demo``                        :func:`softloc.experiments.drums.run_demo`
``experiment drums``            :func:`softloc.experiments.drums.run_experiment`
``experiment robustness``       :func:`softloc.experiments.robustness.run_robustness`
``experiment softness-sweep``   :func:`softloc.experiments.softness_sweep.run_softness_sweep`
``experiment digits``           :func:`softloc.experiments.digits.run_digits`
==============================  ====================================================================

Layout: this module assembles the parser (:data:`COMMANDS`, :data:`EXPERIMENTS`,
:func:`build_parser`) and runs it (:func:`main`); ``_commands`` holds the arguments and actions
of the commands, ``_experiments`` those of ``softloc experiment``.

Start-up cost: ``softloc --help`` and ``softloc --version`` import nothing beyond the standard
library and :mod:`softloc._version`. Each command's arguments are defined by an ``add_<command>``
function that may import what the command describes (loss names, presets); :func:`main` calls only
the one of the command given on the command line (the others get a one-line stub for the overview),
and each ``cmd_<command>`` imports its Python API when it runs.

``main(argv)`` returns the exit status: 0 on success, 2 for usage errors (argparse), 1 for errors a
user can fix (bad files, bad values), printed as ``softloc <command>: error: <message>``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from softloc._version import __version__
from softloc.cli._commands import (
    add_data,
    add_demo,
    add_detect,
    add_evaluate,
    add_plot,
    add_train,
)
from softloc.cli._experiments import (
    add_exp_digits,
    add_exp_drums,
    add_exp_robustness,
    add_exp_sweep,
)

__all__ = ["main", "build_parser", "COMMANDS", "EXPERIMENTS"]

_Adder = Callable[[argparse.ArgumentParser], None]

#: ``softloc <command>``: name -> (one-line help, function adding the command's arguments).
COMMANDS: dict[str, tuple[str, _Adder]] = {
    "train": ("train a detector on a dataset folder", add_train),
    "detect": ("detect events in audio files", add_detect),
    "evaluate": ("score detections against reference annotations", add_evaluate),
    "plot": ("LoCo Fig. 1: spectrogram, p(t), count distribution over time", add_plot),
    "data": ("dataset tools", add_data),
    "demo": ("synth data -> train from counts -> detect -> evaluate (make demo)", add_demo),
    "experiment": ("paper experiments (softloc experiment NAME --help)", lambda p: None),
}

#: ``softloc experiment <name>``: name -> (one-line help, function adding its arguments).
EXPERIMENTS: dict[str, tuple[str, _Adder]] = {
    "drums": ("drum experiment on built-in data: synth -> train -> detect -> evaluate",
              add_exp_drums),
    "robustness": ("SoftLoc Fig. 5 / Table 1: F1 vs label noise for several losses",
                   add_exp_robustness),
    "softness-sweep": ("SoftLoc Fig. 6: F1 over random (noise sigma, softness) pairs, NW heat "
                       "map", add_exp_sweep),
    "digits": ("LoCo §8: digit detection along a Hilbert curve, trained from counts",
               add_exp_digits),
}


def _positionals(argv: Sequence[str]) -> list[str]:
    """The leading words of ``argv`` that are not options (the command and its sub-command)."""
    return [a for a in argv if not a.startswith("-")][:2]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``softloc``.

    Args:
        argv: the command line about to be parsed. Only the command (and experiment) named in it
            get their arguments, so that their imports happen only when needed; the others are
            one-line stubs listed by ``--help``. ``None``: every command in full.
    """
    words = None if argv is None else _positionals(argv)
    parser = argparse.ArgumentParser(
        prog="softloc",
        description="Train event detectors from weak labels (counts: LoCo; misaligned "
        "timestamps: SoftLoc), detect, evaluate, plot.",
    )
    parser.add_argument("--version", action="version", version=f"softloc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if words is None or words[:1] == [name]:
            add(p)
    experiment = sub.choices["experiment"]
    esub = experiment.add_subparsers(dest="experiment", metavar="NAME", required=True)
    for name, (help_text, add) in EXPERIMENTS.items():
        p = esub.add_parser(name, help=help_text, description=help_text)
        if words is None or words == ["experiment", name]:
            add(p)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    for extra in ("data_command", "experiment"):
        if getattr(args, extra, None):
            return f"{args.command} {getattr(args, extra)}"
    return str(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``softloc`` command line; returns the exit status (0, 1 user error, 2 usage)."""
    import warnings

    # Lightning 2.6 on torch 2.13 warns about a torch-internal API on import; not actionable.
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
        print(f"softloc {_command_name(args)}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
