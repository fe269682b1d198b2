"""Arguments and actions of the time-series commands: ``softloc data import-wfdb | synth-puffs``
and ``softloc experiment sensor`` (issue 15, SoftLoc §5.2).

Each ``add_*`` defines a command's arguments, each ``cmd_*`` calls one documented function:

==============================  ====================================================================
``data import-wfdb``            :func:`softloc.data.physionet.import_wfdb`
``data synth-puffs``            :func:`softloc.data.generators.puffs.generate_puff_dataset`
``experiment sensor``           :func:`softloc.experiments.sensor.run_sensor`
==============================  ====================================================================
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = [
    "add_exp_sensor",
    "add_sensor_data",
    "cmd_exp_sensor",
    "cmd_import_wfdb",
    "cmd_synth_puffs",
]


# --------------------------------------------------------------------------- data


def add_sensor_data(dsub: Any) -> None:
    """Add ``import-wfdb`` and ``synth-puffs`` to the ``softloc data`` sub-parsers ``dsub``."""
    w = dsub.add_parser(
        "import-wfdb",
        help="convert WFDB records (PhysioNet) into the generic layout",
        description="Write ROOT/signals/<record>.npy + .json, annotations/<record>.txt (one "
        "'<seconds>\\tbeat' per beat annotation), counts.csv (beats per window), subjects.csv "
        "and splits/ for every record in SRC. Every record is checked before anything is "
        "written; errors name the record and the field.",
    )
    w.add_argument("src", type=Path, help="folder of WFDB records (<rec>.hea, .dat, .atr)")
    w.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    w.add_argument("--annotation", default="atr",
                   help="annotation file extension holding the beats (default atr)")
    w.add_argument("--window-s", type=float, default=10.0,
                   help="count windows of counts.csv in seconds (default 10)")
    w.add_argument("--split", choices=("test",),
                   help="'test': every record in the test split (an external test set); "
                   "default: a seeded 70/15/15 split by record")
    w.add_argument("--labels-from-symbols", action="store_true",
                   help="one class per beat symbol (N, V, ...) instead of 'beat' for every beat")
    w.add_argument("--records", nargs="+", metavar="REC",
                   help="records to import (default: RECORDS or every .hea in SRC)")
    w.add_argument("--channels", nargs="+", metavar="NAME",
                   help="signal names to keep, e.g. MLII (default: all)")
    w.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    w.add_argument("--overwrite", action="store_true", help="replace existing files in --out")
    w.set_defaults(func=cmd_import_wfdb)

    s = dsub.add_parser(
        "synth-puffs",
        help="write the synthetic puffMarker-like dataset (SoftLoc §5.2)",
        description="Sessions of 37 features per respiration cycle with smoking puffs as "
        "events, several subjects (subjects.csv), counts.csv, a seeded split by subject.",
    )
    s.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    s.add_argument("--subjects", type=int, default=6, help="subjects (default 6)")
    s.add_argument("--sessions", type=int, default=5, help="sessions per subject (default 5)")
    s.add_argument("--cycles", type=int, default=700, help="steps per session (default 700)")
    s.add_argument("--noise", type=float, default=1.0, help="noise scale (default 1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_synth_puffs)


def cmd_import_wfdb(args: argparse.Namespace) -> int:
    from softloc.data.physionet import import_wfdb

    summary = import_wfdb(
        args.src, args.out, annotation=args.annotation, window_s=args.window_s,
        split=args.split, labels_from_symbols=args.labels_from_symbols, seed=args.seed,
        records=args.records, channels=args.channels, overwrite=args.overwrite,
    )
    n_events = sum(summary.n_events.values())
    n_windows = sum(summary.n_windows.values())
    sizes = ", ".join(f"{k} {len(v)}" for k, v in summary.splits.items())
    print(f"wrote {len(summary.records)} records to {summary.root}: {n_events} events "
          f"({', '.join(summary.classes)}), {n_windows} count windows of {args.window_s:g} s; "
          f"splits: {sizes}")
    return 0


def cmd_synth_puffs(args: argparse.Namespace) -> int:
    from softloc.data.generators.puffs import generate_puff_dataset

    data = generate_puff_dataset(
        args.out, n_subjects=args.subjects, sessions_per_subject=args.sessions,
        cycles_per_session=args.cycles, noise=args.noise, seed=args.seed,
        overwrite=args.overwrite,
    )
    n_puffs = sum(len(v) for v in data.puff_steps.values())
    sizes = ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
    print(f"wrote {len(data.stems)} sessions of {len(set(data.subjects.values()))} subjects "
          f"({n_puffs} puffs) to {data.root}; splits: {sizes}")
    return 0


# --------------------------------------------------------------------------- experiment sensor


def _ints(option: str, text: str) -> tuple[int, ...]:
    from softloc.cli._experiments import parse_list

    return tuple(parse_list(option, text, int))


def add_exp_sensor(p: argparse.ArgumentParser) -> None:
    from softloc.experiments.sensor import METHODS, NOISES

    p.description = (
        "SoftLoc §5.2 / Table 3: leave-one-subject-out x seeds, training labels misaligned by "
        "a rounded normal (sigma steps) or binary (+-delta steps) noise; LR-M, the FC-LSTM "
        "with frame cross-entropy and with SoftLoc; F1 with exact alignment and within a "
        "tolerance on the held-out subject. Writes OUT/results.csv (resumed on rerun), "
        "results.md (the Table 3 analogue) and sensor.png. Without --data, the puffMarker-like "
        "data is generated into OUT/data."
    )
    p.add_argument("--out", required=True, type=Path, help="experiment folder (reruns resume)")
    p.add_argument("--data", type=Path,
                   help="time-series dataset (signals/, annotations/, subjects.csv); default: "
                   "generate the puffMarker-like data")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated, from {','.join(METHODS)}")
    p.add_argument("--noises", default=",".join(NOISES),
                   help=f"comma-separated, from {','.join(NOISES)}")
    p.add_argument("--levels", default="0,1,2,3,4",
                   help="sigma (normal) / delta (binary) in steps (default 0,1,2,3,4)")
    p.add_argument("--seeds", type=int, default=1, help="repetitions (paper: 10; default 1)")
    p.add_argument("--folds", help="fold indices to run, comma-separated (default: all)")
    p.add_argument("--subjects", type=int, default=6, help="generated subjects (default 6)")
    p.add_argument("--sessions", type=int, default=5,
                   help="generated sessions per subject (default 5)")
    p.add_argument("--cycles", type=int, default=700, help="generated steps per session")
    p.add_argument("--max-steps", type=int, help="training steps per network")
    p.add_argument("--alpha", type=float,
                   help="SoftLoc's count weight alpha, constant (default: SensorConfig.alpha)")
    p.add_argument("--dropout", type=float,
                   help="dropout after the FC-LSTM's FC layer (default: SensorConfig.dropout)")
    p.add_argument("--decoder", choices=("auto", "mass", "peaks", "steps"), default="auto",
                   help="mass: peaks of the probability mass within +-1 step; peaks: one event "
                   "per run of steps above the threshold; steps: every step above it (the "
                   "original rule); auto (default): mass for softloc, peaks for bce and lrm")
    p.add_argument("--no-offset", action="store_true",
                   help="do not shift detections by the offset calibrated on the training "
                   "labels")
    p.add_argument("--tolerance", type=int, default=1,
                   help="tolerance of the second F1, in steps (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(func=cmd_exp_sensor)


def cmd_exp_sensor(args: argparse.Namespace) -> int:
    from softloc.cli._experiments import parse_list
    from softloc.experiments.sensor import SensorConfig, run_sensor

    config = SensorConfig(
        data=None if args.data is None else str(args.data),
        n_subjects=args.subjects, sessions_per_subject=args.sessions,
        cycles_per_session=args.cycles,
        methods=tuple(parse_list("--methods", args.methods, str)),
        noises=tuple(parse_list("--noises", args.noises, str)),
        levels=_ints("--levels", args.levels), seeds=args.seeds,
        folds=None if args.folds is None else _ints("--folds", args.folds),
        tolerance_steps=args.tolerance, threads=args.threads,
        max_steps=SensorConfig.max_steps if args.max_steps is None else args.max_steps,
        alpha=SensorConfig.alpha if args.alpha is None else args.alpha,
        dropout=SensorConfig.dropout if args.dropout is None else args.dropout,
        decoder=args.decoder, calibrate_offset=not args.no_offset,
    )
    result = run_sensor(config, args.out)
    print(result.table, end="")
    print(f"wrote {result.csv_path}, {result.table_path}"
          + (f", {result.plot_path}" if result.plot_path else ""))
    return 0
