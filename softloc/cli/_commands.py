"""Arguments and actions of ``softloc train | data | demo`` (``detect | evaluate | plot`` are in
``softloc.cli._detect``, re-exported here).

Each ``add_<command>(parser)`` defines a command's arguments (importing only what they describe);
each ``cmd_<command>(args)`` imports its Python API when it runs and calls it (the table in
:mod:`softloc.cli`).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from softloc.cli._common import (
    add_overwrite,
    add_progress,
    is_quiet,
    need_training,
    progress_of,
    say,
)
from softloc.cli._detect import (
    add_detect,
    add_evaluate,
    add_plot,
    cmd_detect,
    cmd_evaluate,
    cmd_plot,
)

__all__ = [
    "loss_name",
    "add_set",
    "add_train",
    "cmd_train",
    "add_calibrate",
    "cmd_calibrate",
    "add_detect",
    "cmd_detect",
    "add_evaluate",
    "cmd_evaluate",
    "add_plot",
    "cmd_plot",
    "add_data",
    "cmd_synth",
    "add_demo",
    "cmd_demo",
]


def loss_name(text: str) -> str:
    """A loss name in the canonical spelling (``smoothed_bce`` -> ``smoothed-bce``); argparse's
    ``choices`` then checks it."""
    return text.strip().lower().replace("_", "-")


def add_set(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


# --------------------------------------------------------------------------- train


def add_train(p: argparse.ArgumentParser) -> None:
    from softloc.config import LOSS_NAMES

    p.description = (
        "Train a detector from counts (LoCo) or timestamps (SoftLoc, BCE) and write a run folder "
        "(config.yaml, model.pt, metrics.json, checkpoints/, logs/)."
    )
    p.add_argument("--data", required=True, type=Path, help="dataset folder (generic layout)")
    p.add_argument("--labels", required=True, choices=("counts", "onsets", "mixed"),
                   help="supervision: counts.csv windows, annotated onsets, or mixed (annotated "
                   "files with timestamps, the other training files from their counts)")
    p.add_argument("--annotations", action="append", metavar="DIR[:SOFTNESS_MS]",
                   help="annotation folder, relative to --data or absolute (default: "
                   "annotations); repeat for several annotators, each with an optional softness "
                   "in ms, e.g. --annotations expert:20 --annotations crowd:120")
    p.add_argument("--softness-csv", type=Path,
                   help="per-file softness table 'file,softness_ms' (inf = counts only); "
                   "default DATA/softness.csv when present")
    p.add_argument("--loss", type=loss_name, choices=LOSS_NAMES,
                   help="training loss (default: the preset's, loco for drums)")
    p.add_argument("--preset", default="drums", help="configuration preset (default: drums)")
    p.add_argument("--config", type=Path, help="YAML run configuration (instead of --preset)")
    add_set(p, "override a config value by dotted path, e.g. train.learning_rate=1e-3 "
                "(repeatable)")
    p.add_argument("--softness-ms", type=float, help="SoftLoc softness sigma in milliseconds")
    p.add_argument("--label-noise", metavar="SPEC",
                   help="perturb training timestamps, e.g. normal:100ms (needs --labels onsets)")
    p.add_argument("--out", required=True, type=Path, help="run folder to create")
    p.add_argument("--max-steps", type=int, help="optimiser steps")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--per-class", action="store_true",
                   help="one network per class (as in the papers) instead of one multi-class net")
    p.add_argument("--accelerator",
                   help="Lightning accelerator: auto (the config's default: a GPU when there is "
                   "one), cpu, gpu ...")
    p.add_argument("--devices", help="Lightning devices per node, e.g. 1, 4 or auto; with "
                   "--strategy ddp each process draws its own batch (effective batch = "
                   "devices x nodes x data.batch_size)")
    p.add_argument("--num-nodes", type=int, help="nodes for multi-node DDP (docs/distributed.md)")
    p.add_argument("--strategy", help="Lightning strategy, e.g. ddp")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_progress(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    need_training(args, "softloc train")
    from softloc._io import folder_lock, is_rank_zero
    from softloc.config import apply_overrides, load_config, load_preset
    from softloc.training import train

    if args.resume:
        saved = args.out / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"{saved}: cannot resume, the run folder has no config.yaml")
        if args.config or args.set or args.loss or args.softness_ms or args.per_class:
            raise ValueError(
                "--resume continues with the run's saved config.yaml; only --max-steps and the "
                "runtime options (--threads, --accelerator, --devices, ...) may change"
            )
        config = load_config(saved)
    elif args.config:
        config = load_config(args.config, base=args.preset)  # the file layers on the preset
    else:
        config = load_preset(args.preset)
    overrides = list(args.set)
    for flag, key in (
        ("loss", "loss.name"),
        ("softness_ms", "loss.softness_ms"),
        ("max_steps", "train.max_steps"),
        ("seed", "train.seed"),
        ("accelerator", "train.accelerator"),
        ("devices", "train.devices"),
        ("num_nodes", "train.num_nodes"),
        ("strategy", "train.strategy"),
        ("threads", "train.num_threads"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.per_class:
        overrides.append("model.per_class=true")
    config = apply_overrides(config, overrides)
    # One process of a distributed run writes (and locks) the run folder; the others (Lightning
    # re-runs this command for them, torchrun / srun start them) only train.
    rank_zero = is_rank_zero()
    lock = folder_lock(args.out, command="softloc train") if rank_zero \
        else contextlib.nullcontext()
    with lock:
        result = train(
            config,
            data_root=args.data,
            out_dir=args.out,
            labels=args.labels,
            annotations=args.annotations or ["annotations"],
            softness_csv=args.softness_csv,
            label_noise=args.label_noise,
            resume=args.resume,
            progress=progress_of(args) and rank_zero,
        )
    if not rank_zero:
        return 0
    m = result.metrics
    inf = result.config.inference
    say(args,
        f"run {result.run_dir}: {m.get('steps')} steps in {m.get('wall_time_s')} s, "
        f"best validation score {m.get('best_val_score')}; per-class time offsets (s) "
        f"{list(inf.class_offsets_s) or [inf.time_offset_s]}, thresholds "
        f"{list(inf.class_thresholds) or [inf.threshold]}")
    return 0


# --------------------------------------------------------------------------- calibrate


def add_calibrate(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Calibrate a finished run's thresholds and time offsets again on its validation files, "
        "with other inference settings (e.g. --set inference.align_to_onsets=pooled), and "
        "write the result as a new run folder; the run given is not changed."
    )
    p.add_argument("--model", required=True, type=Path, help="run folder (or its model.pt)")
    p.add_argument("--data", required=True, type=Path, help="the dataset it was trained on")
    p.add_argument("--out", required=True, type=Path, help="new run folder (must not exist)")
    add_set(p, "inference setting by dotted path, e.g. inference.align_to_onsets=pooled "
                "(repeatable; only inference.*)")
    p.add_argument("--split", help="calibrate on DATA/splits/SPLIT.txt instead of the run's own "
                   "validation files")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    need_training(args, "softloc calibrate")  # the run folder code lives with training
    import torch

    from softloc.training.recalibrate import recalibrate_run

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    metrics = recalibrate_run(args.model, data_root=args.data, out_dir=args.out,
                              overrides=list(args.set), split=args.split)
    info = metrics["calibration"]
    summary = ", ".join(f"{k} {info[k]}" for k in ("pooled_threshold", "onset_offset_s")
                        if k in info)
    say(args, f"calibrated on {len(metrics['valid_files'])} files ({info['source']})"
        f"{': ' + summary if summary else ''}; wrote {args.out}")
    return 0


# --------------------------------------------------------------------------- data, demo


def add_data(p: argparse.ArgumentParser) -> None:
    dsub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    s = dsub.add_parser(
        "synth-drums",
        help="write the built-in synthetic drum dataset",
        description="Synthesise kick/snare/hi-hat tracks with annotations, counts.csv and "
        "splits (test kits differ from train kits). Deterministic per seed.",
    )
    s.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-train-files", type=int, default=40)
    s.add_argument("--n-valid-files", type=int, default=6)
    s.add_argument("--n-test-files", type=int, default=10)
    s.add_argument("--file-duration", type=float, default=30.0, help="seconds per file")
    s.add_argument("--kits", nargs="+", type=Path, default=[], metavar="PATH",
                   help="recorded kits to use besides the system ones: Hydrogen kit folders, "
                   ".sfz / .sf2 files, folders holding them, or a folder of one-shots")
    s.add_argument("--no-system-kits", action="store_true",
                   help="do not use the kits installed in /usr/share/hydrogen/data/drumkits "
                   "and /usr/share/sounds/sf2")
    s.add_argument("--synthetic-kits", nargs=3, type=int, default=[10, 3, 5],
                   metavar=("TRAIN", "VALID", "TEST"),
                   help="synthetic kits per split, added to the recorded ones (default 10 3 5)")
    s.add_argument("--backing-music", type=float, default=0.2, metavar="P",
                   help="fraction of files with synthesised music under the drums (default 0.2)")
    s.add_argument("--scattered", type=float, default=0.0, metavar="P",
                   help="fraction of training files played as random strokes instead of "
                   "grooves, so that counts cannot be guessed from the rhythm (default 0)")
    s.add_argument("--vary-kits", type=float, default=0.0, metavar="P",
                   help="fraction of training files whose instruments are retuned (+-3 "
                   "semitones) and recoloured (+-6 dB EQ), as if other drums (default 0)")
    s.add_argument("--mix-kits", type=float, default=0.0, metavar="P",
                   help="fraction of training files whose kick, snare, hi-hat, ... come from "
                   "different training kits (default 0)")
    add_overwrite(s, "the files of an earlier synth-drums run in --out")
    s.set_defaults(func=cmd_synth)

    from softloc.cli._sensor import add_sensor_data

    add_sensor_data(dsub)

    from softloc.cli._piano import add_piano_data

    add_piano_data(dsub)

    from softloc.cli._segmentation import add_segment_data

    add_segment_data(dsub)


def cmd_synth(args: argparse.Namespace) -> int:
    from softloc.data import synthesize_drum_dataset

    index = synthesize_drum_dataset(
        args.out,
        seed=args.seed,
        n_train_files=args.n_train_files,
        n_valid_files=args.n_valid_files,
        n_test_files=args.n_test_files,
        file_duration_s=args.file_duration,
        kits=args.kits,
        system_kits=not args.no_system_kits,
        n_train_kits=args.synthetic_kits[0],
        n_valid_kits=args.synthetic_kits[1],
        n_test_kits=args.synthetic_kits[2],
        backing_music=args.backing_music,
        scattered=args.scattered,
        vary_kits=args.vary_kits,
        mix_kits=args.mix_kits,
        overwrite=args.overwrite,
    )
    sizes = ", ".join(f"{k} {len(v)}" for k, v in index.splits.items())
    print(f"wrote {len(index.stems)} files to {args.out} ({sizes})")
    return 0


def add_demo(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Generate the built-in drum data, train LoCo from counts only, detect on the test kits, "
        "evaluate; writes DIR/metrics.json and DIR/demo.png."
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="training steps (default: the demo preset's)")
    add_overwrite(p, "the outputs of an earlier demo in --out (never files it did not write)")
    add_progress(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    need_training(args, "softloc demo")
    from softloc._io import folder_lock
    from softloc.experiments.drums import run_demo

    with folder_lock(args.out, command="softloc demo"):
        run_demo(args.out, seed=args.seed, max_steps=args.max_steps, overwrite=args.overwrite,
                 progress=progress_of(args), verbose=not is_quiet(args))
    return 0


