"""Time the data side of the drum demo: synthesis of the dataset and the power-mel features.

    python -m benchmarks.data_speed                     # the demo size (40 + 6 + 10 files x 30 s)
    python -m benchmarks.data_speed --n-train-files 10 --threads 2

Prints seconds for ``synthesize_drum_dataset`` and for ``prepare_features`` on the train + valid
stems at the rate factors of the ``drums`` preset (7/8, 1, 9/8), as the demo does, plus the test
stems at factor 1, and the audio minutes processed. Nothing is kept: it works in a temp folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from softloc.data import prepare_features, synthesize_drum_dataset
from softloc.features import FrontEndConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train-files", type=int, default=40)
    p.add_argument("--n-valid-files", type=int, default=6)
    p.add_argument("--n-test-files", type=int, default=10)
    p.add_argument("--file-duration", type=float, default=30.0)
    p.add_argument("--sample-rate", type=int, default=44100)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the features")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = FrontEndConfig(sample_rate=args.sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = synthesize_drum_dataset(
            Path(tmp) / "data", n_train_files=args.n_train_files,
            n_valid_files=args.n_valid_files, n_test_files=args.n_test_files,
            file_duration_s=args.file_duration, sample_rate=args.sample_rate)
        t_synth = time.perf_counter() - t0
        minutes = sum(index.durations_s.values()) / 60
        stems = index.splits["train"] + index.splits["valid"]
        t0 = time.perf_counter()
        prepare_features(index, cfg, cache_dir=Path(tmp) / "cache", stems=stems,
                         rate_factors=(7 / 8, 1.0, 9 / 8))
        prepare_features(index, cfg, stems=index.splits["test"])
        t_feat = time.perf_counter() - t0
        feat_minutes = (3 * sum(index.durations_s[s] for s in stems)
                        + sum(index.durations_s[s] for s in index.splits["test"])) / 60
    print(f"synthesis: {t_synth:.1f} s for {minutes:.1f} min of audio "
          f"({len(index.stems)} files, {args.sample_rate} Hz)")
    print(f"features:  {t_feat:.1f} s for {feat_minutes:.1f} min of audio "
          f"(train+valid x 3 rate factors + test x 1; {args.threads} torch thread(s); "
          f"{cfg.n_fft}-point FFT, hop {cfg.hop_length})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
