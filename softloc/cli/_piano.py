"""Arguments and actions of the piano commands: ``softloc data synth-piano | counts |
import-maps | import-maestro`` and ``softloc experiment piano``.

==============================  ====================================================================
command                         Python API
==============================  ====================================================================
``data synth-piano``            :func:`softloc.data.generators.piano.synthesize_piano_dataset`
``data counts``                 :func:`softloc.data.counts.dataset_counts`
``data import-maps``            :func:`softloc.data.imports.import_maps`
``data import-maestro``         :func:`softloc.data.imports.import_maestro`
``experiment piano``            :func:`softloc.experiments.piano.run_piano`
==============================  ====================================================================

``add_piano_data(subparsers)`` adds the data commands to ``softloc data``; ``add_exp_piano`` is
the ``softloc experiment piano`` entry of :data:`softloc.cli.EXPERIMENTS`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = [
    "add_piano_data",
    "cmd_synth_piano",
    "cmd_counts",
    "cmd_import_maps",
    "cmd_import_maestro",
    "add_exp_piano",
    "cmd_exp_piano",
]


def _labels(text: str | None) -> tuple[str, ...] | None:
    """``--labels``: ``piano`` (MIDI 21..108) or a comma-separated list; None = as found."""
    if text is None:
        return None
    if text.strip().lower() == "piano":
        from softloc.data.counts import PIANO_CLASSES

        return PIANO_CLASSES
    labels = tuple(t.strip() for t in text.split(",") if t.strip())
    if not labels:
        raise ValueError(f"--labels: expected 'piano' or a comma-separated list, got {text!r}")
    return labels


def _add_counts_options(p: argparse.ArgumentParser, hop_default: float | None) -> None:
    p.add_argument("--no-counts", action="store_true", help="do not write counts.csv")
    p.add_argument("--window-s", type=float, default=1.5,
                   help="counts.csv window length in seconds (default 1.5)")
    p.add_argument("--hop-s", type=float, default=hop_default,
                   help="counts.csv hop in seconds (default %(default)s)")


def add_piano_data(dsub: argparse._SubParsersAction) -> None:
    """Add ``synth-piano``, ``counts``, ``import-maps`` and ``import-maestro`` to
    ``softloc data``."""
    s = dsub.add_parser(
        "synth-piano", help="write the built-in SoundFont piano dataset",
        description="Render generated piano music (and the MIDI files of --midi-dir) with "
        "SoundFont pianos; labels are the measured sound onsets, MIDI pitches 21..108; test "
        "pianos come from SoundFont families never heard in training. Deterministic per seed.")
    s.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    s.add_argument("--soundfonts", nargs="+", type=Path, metavar="SF2",
                   help=".sf2/.sf3 files (default: the system SoundFonts, reserved ones excluded)")
    s.add_argument("--test-soundfonts", nargs="+", metavar="NAME",
                   help="fonts whose family plays the test split (default: the family whose name "
                   "sorts last)")
    s.add_argument("--midi-dir", type=Path, help="a folder of MIDI files to render too")
    s.add_argument("--minutes", type=float, default=20.0, help="training audio (default 20)")
    s.add_argument("--valid-minutes", type=float, default=3.0,
                   help="validation audio (default 3; 0 = no valid.txt)")
    s.add_argument("--test-minutes", type=float, default=5.0, help="test audio (default 5)")
    s.add_argument("--file-duration", type=float, default=30.0, help="seconds per file")
    s.add_argument("--sample-rate", type=int, default=44100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    s.set_defaults(func=cmd_synth_piano)

    c = dsub.add_parser(
        "counts", help="write counts.csv from an annotation folder",
        description="Count the annotated events of every file of a dataset in windows of "
        "--window-s seconds every --hop-s and write them as counts.csv (the weak labels of "
        "`softloc train --labels counts`).")
    c.add_argument("root", type=Path, help="dataset folder (audio/ + annotations)")
    c.add_argument("--window-s", type=float, required=True, help="window length in seconds")
    c.add_argument("--hop-s", type=float, help="hop in seconds (default window / 3)")
    c.add_argument("--annotations", default="annotations",
                   help="annotation folder, relative to ROOT or absolute (default annotations)")
    c.add_argument("--labels", help="'piano' (MIDI 21..108) or a comma-separated class list "
                   "(default: every label found)")
    c.add_argument("--out", type=Path, help="file to write (default ROOT/counts.csv)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing file")
    c.set_defaults(func=cmd_counts)

    m = dsub.add_parser(
        "import-maps", help="MAPS into the generic layout",
        description="Link (or copy) the MAPS MUS recordings into the generic layout with "
        "annotations (MIDI pitches), splits and counts.csv.")
    m.add_argument("src", type=Path, help="the MAPS folder")
    m.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    m.add_argument("--papers-split", action="store_true",
                   help="the papers' split: train on the 7 synthesized pianos (minus the test "
                   "pieces), test on ENSTDkCl + ENSTDkAm, no valid.txt (default: a seeded split "
                   "by piece over every piano)")
    _add_import_options(m)
    m.set_defaults(func=cmd_import_maps)

    e = dsub.add_parser(
        "import-maestro", help="a MAESTRO-style folder into the generic layout",
        description="Link (or copy) the audio/MIDI pairs of a MAESTRO-style folder into the "
        "generic layout with annotations (MIDI pitches), the index's splits and counts.csv.")
    e.add_argument("src", type=Path, help="the MAESTRO folder")
    e.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    e.add_argument("--index", type=Path, help="the index csv/json (default: found in SRC)")
    _add_import_options(e)
    e.set_defaults(func=cmd_import_maestro)


def _add_import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--copy", action="store_true", help="copy the audio instead of linking it")
    p.add_argument("--seed", type=int, default=0, help="seed of a split by piece")
    _add_counts_options(p, 1.5)
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")


def cmd_synth_piano(args: argparse.Namespace) -> int:
    from softloc.data.generators.piano import synthesize_piano_dataset

    index = synthesize_piano_dataset(
        args.out, seed=args.seed, soundfonts=args.soundfonts, midi_dir=args.midi_dir,
        minutes=args.minutes, valid_minutes=args.valid_minutes, test_minutes=args.test_minutes,
        file_duration_s=args.file_duration, test_soundfonts=args.test_soundfonts,
        sample_rate=args.sample_rate, overwrite=args.overwrite, progress=print,
    )
    sizes = ", ".join(f"{k} {len(v)}" for k, v in index.splits.items() if v)
    print(f"wrote {len(index.stems)} files to {args.out} ({sizes}); see "
          f"{args.out / 'synth_piano.json'} for the pianos of each split")
    return 0


def cmd_counts(args: argparse.Namespace) -> int:
    from softloc.data.counts import dataset_counts

    report = dataset_counts(args.root, window_s=args.window_s, hop_s=args.hop_s,
                            annotations=args.annotations, labels=_labels(args.labels),
                            out_path=args.out, overwrite=args.overwrite)
    print(f"wrote {report.path}: {report.n_windows} windows x {len(report.classes)} classes "
          f"from {report.n_files} annotated files")
    if report.unannotated:
        print(f"no annotation file (left out): {', '.join(report.unannotated[:10])}"
              + (" ..." if len(report.unannotated) > 10 else ""))
    return 0


def _print_import(report) -> None:  # report: softloc.data.imports.ImportReport
    sizes = ", ".join(f"{k} {len(v)}" for k, v in report.splits.items())
    print(f"wrote {report.root} ({sizes}; {report.left_out} recordings in no split); "
          f"splits: {report.rule}"
          + (f"; counts.csv: {report.counts_windows} windows" if report.counts_windows else ""))


def cmd_import_maps(args: argparse.Namespace) -> int:
    from softloc.data.imports import import_maps

    _print_import(import_maps(args.src, args.out, papers_split=args.papers_split,
                              seed=args.seed, copy=args.copy, counts=not args.no_counts,
                              window_s=args.window_s, hop_s=args.hop_s,
                              overwrite=args.overwrite))
    return 0


def cmd_import_maestro(args: argparse.Namespace) -> int:
    from softloc.data.imports import import_maestro

    _print_import(import_maestro(args.src, args.out, index=args.index, seed=args.seed,
                                 copy=args.copy, counts=not args.no_counts,
                                 window_s=args.window_s, hop_s=args.hop_s,
                                 overwrite=args.overwrite))
    return 0


# --------------------------------------------------------------------------- experiment piano


def add_exp_piano(p: argparse.ArgumentParser) -> None:
    from softloc.cli._commands import add_set
    from softloc.cli._common import add_progress

    p.description = (
        "LoCo Table 2 and SoftLoc Fig. 5 / Table 1 on piano: counts-only (LoCo) vs full "
        "supervision, and note-onset F1 vs label noise sigma for SoftLoc, frame BCE, smoothed "
        "labels, bootstrapping and the SLL / MC ablation. Built-in SoundFont data by default "
        "(rendered into OUT/data), MAPS with --maps, any generic-layout dataset with --data. "
        "Writes OUT/results.csv (reruns skip finished runs), results.md and piano.png."
    )
    p.add_argument("--out", required=True, type=Path, help="experiment folder (reruns resume)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, help="a piano dataset in the generic layout")
    src.add_argument("--maps", type=Path, help="a MAPS folder (imported with the papers' split)")
    p.add_argument("--minutes", type=float, default=20.0,
                   help="training audio of the built-in data (default 20)")
    p.add_argument("--preset", default="piano-loco", help="base preset (default piano-loco)")
    p.add_argument("--sigmas", default="0,50,100,150",
                   help="label noise sigmas in ms (default 0,50,100,150)")
    p.add_argument("--losses", default="softloc,bce,smoothed-bce,bootstrap,sll,mc",
                   help="losses of the noise study (default softloc,bce,smoothed-bce,bootstrap,"
                   "sll,mc)")
    p.add_argument("--parts", default="supervision,noise",
                   help="which parts to run: supervision (counts vs full), noise (default both)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per cell (default 1)")
    p.add_argument("--max-steps", type=int, help="training steps per run (default: preset's)")
    p.add_argument("--threads", type=int, help="torch CPU threads per run")
    p.add_argument("--rescore", action="store_true",
                   help="first score the finished noise runs in OUT again with the current "
                   "decoders, from their saved model.pt (no training)")
    add_set(p, "config override for every run, e.g. train.learning_rate=1e-3")
    add_progress(p)
    p.set_defaults(func=cmd_exp_piano)


def cmd_exp_piano(args: argparse.Namespace) -> int:
    from softloc.cli._commands import loss_name
    from softloc.cli._common import progress_of
    from softloc.cli._experiments import parse_list
    from softloc.experiments.piano import run_piano

    run_piano(
        args.out, data_root=args.data, maps_root=args.maps, minutes=args.minutes,
        preset=args.preset, sigmas_ms=parse_list("--sigmas", args.sigmas, float),
        losses=[loss_name(x) for x in parse_list("--losses", args.losses, str)],
        parts=parse_list("--parts", args.parts, str), seeds=args.seeds,
        max_steps=args.max_steps, overrides=tuple(args.set), threads=args.threads,
        rescore=args.rescore, progress=progress_of(args),
    )
    return 0
