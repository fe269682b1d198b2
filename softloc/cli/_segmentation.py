"""Arguments and actions of the action-segmentation commands (issue 16, SoftLoc §5.3).

==============================  ====================================================================
``data synth-segments``         :func:`softloc.data.generators.segments.generate_segment_dataset`
``experiment segmentation``     :func:`softloc.experiments.segmentation.run_segmentation` +
                                :func:`softloc.experiments.segmentation.write_report`
==============================  ====================================================================

``add_segment_data(dsub)`` adds the data command to ``softloc data``; ``add_exp_segmentation``
is the entry of ``softloc experiment segmentation``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = [
    "add_exp_segmentation",
    "add_segment_data",
    "cmd_exp_segmentation",
    "cmd_synth_segments",
]


def add_segment_data(dsub: Any) -> None:
    """Add ``synth-segments`` to the ``softloc data`` sub-parsers ``dsub``."""
    s = dsub.add_parser(
        "synth-segments",
        help="write the built-in action-segmentation data (MS-TCN layout)",
        description="Salad-preparation-like videos: an action grammar with variable durations, "
        "class-dependent features with temporal correlation and noise, several subjects; "
        "written as ROOT/features/*.npy (D, T), groundTruth/*.txt, mapping.txt and "
        "splits/{train,test}.split<k>.bundle (folds by subject). Deterministic per seed.",
    )
    s.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    s.add_argument("--subjects", type=int, default=5, help="subjects (default 5)")
    s.add_argument("--videos-per-subject", type=int, default=4, help="default 4")
    s.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    s.add_argument("--fps", type=float, default=30.0, help="feature frame rate (default 30)")
    s.add_argument("--features", type=int, default=64, help="feature dimension D (default 64)")
    s.add_argument("--noise", type=float, default=2.5, help="noise std (default 2.5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true", help="replace existing files in --out")
    s.set_defaults(func=cmd_synth_segments)


def cmd_synth_segments(args: argparse.Namespace) -> int:
    from softloc.data.generators.segments import generate_segment_dataset
    from softloc.data.mstcn import list_splits

    root = generate_segment_dataset(
        args.out, n_subjects=args.subjects, videos_per_subject=args.videos_per_subject,
        n_folds=args.folds, frame_rate=args.fps, n_features=args.features,
        noise_std=args.noise, seed=args.seed, overwrite=args.overwrite,
    )
    n_videos = len(list((root / "features").glob("*.npy")))
    print(f"wrote {n_videos} videos of {args.subjects} subjects to {root} "
          f"({args.fps:g} fps, folds {list_splits(root)})")
    return 0


def add_exp_segmentation(p: argparse.ArgumentParser) -> None:
    from softloc.experiments.segmentation import LOSSES, MODELS, SegmentationConfig

    d = SegmentationConfig()
    p.description = (
        "SoftLoc §5.3 / Table 4 / Fig. 10: an ED-TCN (or MS-TCN) per loss x label shift x seed "
        "x fold, the training labels of every video shifted by +-delta seconds (sign drawn per "
        "video), scored on the clean test videos with F1@{10,25,50}, edit and accuracy. Writes "
        "OUT/results.csv (resumed on rerun), results.md, table4.png and fig10.png. Without "
        "--data the built-in data is generated into OUT/data."
    )
    p.add_argument("--out", required=True, type=Path, help="experiment folder (reruns resume)")
    p.add_argument("--data", type=Path,
                   help="MS-TCN dataset folder (features/, groundTruth/, mapping.txt, splits/); "
                   "default: the built-in data")
    p.add_argument("--split", help="fold(s) to run, comma-separated (default: all)")
    p.add_argument("--losses", default=",".join(LOSSES),
                   help=f"comma-separated, from {','.join(LOSSES)}")
    p.add_argument("--shifts-s", default="0,5,10",
                   help="label shifts delta in seconds (default 0,5,10; paper 0,5,10,15,20)")
    p.add_argument("--seeds", type=int, default=d.seeds, help="runs per cell (default 1)")
    p.add_argument("--fps", type=float, default=d.fps,
                   help="frame rate of the feature files (default 30)")
    p.add_argument("--subsample", type=int, default=d.subsample,
                   help=f"keep every k-th frame (default {d.subsample})")
    p.add_argument("--softness-s", default=",".join(f"{s:g}" for s in d.softness_s),
                   help="softness of SLL/SoftLoc in seconds; several give the Fig. 10 sweep "
                   f"(default {','.join(f'{s:g}' for s in d.softness_s)}, the paper's for "
                   "50 Salads; keep it well below the typical segment: on the built-in data, "
                   "whose segments last 4-6 s, 0.5 s, see docs/results.md)")
    p.add_argument("--alpha", type=float, default=d.alpha,
                   help=f"alpha of L_SoftLoc (default {d.alpha:g})")
    p.add_argument("--distance", choices=("squared", "log"), default=d.distance,
                   help=f"distance of L_SLL (default {d.distance})")
    p.add_argument("--model", choices=MODELS, default=d.model, help="network (default ed-tcn)")
    p.add_argument("--input-projection", type=int, default=d.input_projection,
                   help="ED-TCN: features with more dimensions first pass a learned 1x1 "
                   f"convolution to this many channels (default {d.input_projection}; 0 = never; "
                   "2048-d I3D features train ~4x faster)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--smoothing-weight", type=float, default=d.smoothing_weight,
                   help="lambda of MS-TCN's T-MSE smoothing term (default 0 = off)")
    p.add_argument("--boundary-noise",
                   help="extra boundary noise after the shift, e.g. normal:2s, "
                   "skew-normal:-2:2s")
    p.add_argument("--ignore-background", action="store_true",
                   help="leave the class 'background' out of F1 and edit")
    p.add_argument("--save-models", action="store_true",
                   help="write OUT/models/<run>.pt per trained network (input kind 'features')")
    p.add_argument("--no-figures", action="store_true", help="skip table4.png / fig10.png")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(func=cmd_exp_segmentation)


def cmd_exp_segmentation(args: argparse.Namespace) -> int:
    import torch

    from softloc.cli._experiments import parse_list
    from softloc.experiments.segmentation import (
        SegmentationConfig,
        run_segmentation,
        write_report,
    )

    config = SegmentationConfig(
        data=None if args.data is None else str(args.data),
        splits=None if args.split is None else tuple(parse_list("--split", args.split, int)),
        losses=tuple(parse_list("--losses", args.losses, str)),
        shifts_s=tuple(parse_list("--shifts-s", args.shifts_s, float)),
        seeds=args.seeds, fps=args.fps, subsample=args.subsample,
        softness_s=tuple(parse_list("--softness-s", args.softness_s, float)),
        alpha=args.alpha, distance=args.distance, model=args.model,
        input_projection=args.input_projection, epochs=args.epochs,
        batch_size=args.batch_size, smoothing_weight=args.smoothing_weight,
        boundary_noise=args.boundary_noise, ignore_background=args.ignore_background,
        save_models=args.save_models,
    )
    torch.set_num_threads(max(1, args.threads))
    rows = run_segmentation(config, args.out)
    written = write_report(rows, args.out, figures=not args.no_figures)
    print(written["table"].read_text(encoding="utf-8"), end="")
    print("wrote " + ", ".join(str(p) for p in [args.out / "results.csv", *written.values()]))
    return 0
