"""How far the onset alignment of counts-calibrated runs would move a perfectly timed detector.

    softloc data synth-piano --out piano --valid-minutes 0
    python -m benchmarks.onset_alignment --data piano --preset piano-loco

``inference.align_to_onsets`` (``softloc.inference.calibrate.onset_alignment_offset``) adds to a
counts-trained run's detections the lag at which the audio's onset strength
(``softloc.features.onset_strength``) peaks around them. For detections exactly on the labelled
sound starts that lag is the method's own bias. This script feeds the labelled onsets of every
file of each ``--splits`` split through the run's front end (``--preset``) and prints, per
split and ``--compressions`` value, the offset per file (mean, standard deviation, range, in
ms) and the offset of all files pooled, as the calibration pools its validation files.
A compression whose pooled offset is near 0 on pianos it never chose on (the held-out test
pianos) needs no bias correction.
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.onset_alignment",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset root (generic layout, timestamps)")
    p.add_argument("--preset", default="piano-loco", help="front end of this preset")
    p.add_argument("--splits", default="train,test")
    p.add_argument("--compressions", default="0.01,0.1,1",
                   help="onset_strength compression values to compare")
    return p


def _ms(offset_s: float | None) -> float:
    return float("nan") if offset_s is None else 1000.0 * offset_s


def main(argv: list[str] | None = None) -> int:
    import torch

    from softloc.config import load_preset
    from softloc.data.formats import read_annotation_file, read_split_file
    from softloc.features import load_audio, mel_power, onset_strength
    from softloc.inference import onset_alignment_offset

    args = _parser().parse_args(argv)
    torch.set_num_threads(1)
    front = load_preset(args.preset).features
    compressions = [float(c) for c in args.compressions.split(",")]
    print(f"# python {platform.python_version()}, torch {torch.__version__}, preset "
          f"{args.preset}: {front.frame_rate:g} frames/s, window {front.win_length} samples")
    print("split | compression | files | pooled ms | per-file mean ms | sd | min | max")
    for split in args.splits.split(","):
        stems = [stem for _, stem in read_split_file(f"{args.data}/splits/{split}.txt")]
        times, strengths = [], {c: [] for c in compressions}
        for stem in stems:
            onsets = [t for t, _ in read_annotation_file(f"{args.data}/annotations/{stem}.txt")]
            times.append(np.asarray(onsets))
            mel = mel_power(load_audio(f"{args.data}/audio/{stem}.wav", front.sample_rate), front)
            for c in compressions:
                strengths[c].append(onset_strength(mel, compression=c)[0].numpy())
        for c in compressions:
            per_file = np.array([_ms(onset_alignment_offset([t], [o], front.frame_rate))
                                 for t, o in zip(times, strengths[c], strict=True)])
            pooled_ms = _ms(onset_alignment_offset(times, strengths[c], front.frame_rate))
            print(f"{split} | {c:g} | {len(stems)} | {pooled_ms:+.1f} | "
                  f"{np.nanmean(per_file):+.1f} | {np.nanstd(per_file):.1f} | "
                  f"{np.nanmin(per_file):+.1f} | {np.nanmax(per_file):+.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
