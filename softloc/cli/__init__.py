"""The ``softloc`` command line: all argument parsing; every command calls one documented function.

==============================  ====================================================================
command                         Python API
==============================  ====================================================================
``train``                       :func:`softloc.training.train`
``calibrate``                   :func:`softloc.training.recalibrate.recalibrate_run`
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
``data import-wfdb``            :func:`softloc.data.physionet.import_wfdb`
``data synth-puffs``            :func:`softloc.data.generators.puffs.generate_puff_dataset`
``experiment sensor``           :func:`softloc.experiments.sensor.run_sensor`
``data synth-piano`` ...        :mod:`softloc.cli._piano` (piano data commands)
``experiment piano``            :func:`softloc.experiments.piano.run_piano`
``data synth-segments`` ...     :mod:`softloc.cli._segmentation` (issue 16)
==============================  ====================================================================

Layout: this module assembles the parser (:data:`COMMANDS`, :data:`EXPERIMENTS`,
:func:`build_parser`) and runs it (:func:`main`); ``_commands`` holds the arguments and actions
of the commands, ``_experiments`` those of ``softloc experiment``.

Start-up cost: ``softloc --help`` and ``softloc --version`` import nothing beyond the standard
library and :mod:`softloc._version`. Each command's arguments are defined by an ``add_<command>``
function that may import what the command describes (loss names, presets); :func:`main` calls only
the one of the command given on the command line (the others get a one-line stub for the overview),
and each ``cmd_<command>`` imports its Python API when it runs.

Errors (:func:`main`): every expected failure -- a bad or missing file, a malformed line, a bad
value, a file that exists, permission denied, a full disk, a missing optional dependency, a
locked output folder -- is ONE line ``softloc <command>: error: <message>`` (the message names the
file, and the line where there is one) and exit status 2, as argparse's usage errors; anything
else is one line ``softloc <command>: internal error: ...`` and status 1; ``--debug`` shows the
traceback instead. ``softloc detect`` returns 1 when some files failed (all others written).
Ctrl-C exits 130 (a training run says how to resume). ``-q`` prints errors only; ``-v`` more.
Warnings of our own (e.g. duplicate annotation lines dropped) are one line each
(``softloc: warning: ...``); known third-party chatter (Lightning tips, a NumPy non-writable
array warning, torch deprecations inside Lightning) is silenced.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence

from softloc._version import __version__
from softloc.cli._commands import (
    add_calibrate,
    add_data,
    add_demo,
    add_detect,
    add_evaluate,
    add_plot,
    add_train,
)
from softloc.cli._common import common_parent
from softloc.cli._experiments import (
    add_exp_digits,
    add_exp_drums,
    add_exp_robustness,
    add_exp_sweep,
)
from softloc.cli._piano import add_exp_piano
from softloc.cli._segmentation import add_exp_segmentation
from softloc.cli._sensor import add_exp_sensor

__all__ = ["main", "build_parser", "COMMANDS", "EXPERIMENTS"]

_Adder = Callable[[argparse.ArgumentParser], None]

#: ``softloc <command>``: name -> (one-line help, function adding the command's arguments).
COMMANDS: dict[str, tuple[str, _Adder]] = {
    "train": ("train a detector on a dataset folder", add_train),
    "calibrate": ("calibrate a finished run's decoder again into a new run folder",
                  add_calibrate),
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
    "sensor": ("SoftLoc §5.2 / Table 3: sensor events with misaligned labels, LOSO x seeds, "
               "LR-M vs CE vs SoftLoc", add_exp_sensor),
    "piano": ("LoCo Table 2 / SoftLoc Fig. 5: piano note onsets from counts and noisy "
              "timestamps", add_exp_piano),
    "segmentation": ("SoftLoc §5.3 / Table 4: action segmentation with shifted labels, "
                     "ED-TCN x {ce, sll, softloc}", add_exp_segmentation),
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
        parents=[common_parent(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"softloc {__version__}")
    common = common_parent(top=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        if words is None or words[:1] == [name]:
            add(p)
    experiment = sub.choices["experiment"]
    esub = experiment.add_subparsers(dest="experiment", metavar="NAME", required=True)
    for name, (help_text, add) in EXPERIMENTS.items():
        p = esub.add_parser(name, help=help_text, description=help_text, parents=[common])
        if words is None or words == ["experiment", name]:
            add(p)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    for extra in ("data_command", "experiment"):
        if getattr(args, extra, None):
            return f"{args.command} {getattr(args, extra)}"
    return str(args.command)


#: Third-party warnings that a normal run must not show (message regexes; -vv shows them).
_SILENCED = (
    r".*LeafSpec.*",  # a torch-internal API used by Lightning 2.6
    r".*The given NumPy array is not writable.*",  # torch.as_tensor of a read-only array
    r".*does not have many workers.*",  # Lightning on small CPU loaders
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*litlogger.*",
    r".*Grad strides do not match bucket view strides.*",  # torch DDP reducer on CPU
    r".*sync_dist=True.*",  # every rank validates on the whole validation set
)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    print(f"softloc: warning: {text}", file=sys.stderr if file is None else file)


@contextlib.contextmanager
def _quiet_third_parties(verbosity: int) -> Iterator[None]:
    """Warnings as one line each, known chatter silenced, log levels by -q / -v; restored after
    (main runs in-process in tests)."""
    levels = {"softloc": logging.INFO if verbosity > 0 else
              (logging.ERROR if verbosity < 0 else logging.WARNING),
              "lightning": logging.INFO if verbosity > 1 else logging.WARNING,
              "lightning.pytorch": logging.INFO if verbosity > 1 else logging.WARNING,
              "lightning.fabric": logging.INFO if verbosity > 1 else logging.WARNING}
    saved = {name: logging.getLogger(name).level for name in levels}
    with warnings.catch_warnings():
        showwarning = warnings.showwarning
        warnings.showwarning = _one_line_warning
        if verbosity < 2:
            for pattern in _SILENCED:
                warnings.filterwarnings("ignore", message=pattern)
        if verbosity < 0:
            warnings.simplefilter("ignore")
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        try:
            yield
        finally:
            warnings.showwarning = showwarning
            for name, level in saved.items():
                logging.getLogger(name).setLevel(level)


def _is_expected(err: BaseException) -> bool:
    """A failure the user can act on (bad input, files, environment), as opposed to a bug."""
    if isinstance(err, ValueError | OSError | ImportError):
        return True
    yaml = sys.modules.get("yaml")
    if yaml is not None and isinstance(err, yaml.YAMLError):
        return True
    pickle = sys.modules.get("pickle")
    return pickle is not None and isinstance(err, pickle.UnpicklingError)


def error_message(err: BaseException) -> str:
    """The one line printed for ``err``: the file name first for OS errors."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        return f"{err.filename}: {err.strerror[:1].lower()}{err.strerror[1:]}"
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``softloc`` command line; returns the exit status: 0 success, 2 an expected
    failure or a usage error (one line on stderr), 1 an internal error (or files that failed
    in a ``detect`` batch), 130 Ctrl-C."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    verbosity = -1 if args.quiet else int(args.verbose or 0)
    name = _command_name(args)
    with _quiet_third_parties(verbosity):
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt as err:  # incl. softloc.training.TrainingInterrupted
            if args.debug:
                raise
            print(f"softloc {name}: {err or 'interrupted'}", file=sys.stderr)
            return 130
        except Exception as err:
            if args.debug:
                raise
            if _is_expected(err):
                print(f"softloc {name}: error: {error_message(err)}", file=sys.stderr)
                return 2
            print(f"softloc {name}: internal error: {type(err).__name__}: {error_message(err)} "
                  "(rerun with --debug for the traceback, and please report it)",
                  file=sys.stderr)
            return 1
