"""Piano note onsets from counts and from sloppy timestamps (LoCo Table 2; SoftLoc Fig. 5, Table 1).

:func:`run_piano` (``softloc experiment piano``) trains one run per cell and scores note-onset
F1 (pitch must match, ±50 ms, ``mir_eval.transcription`` onset-only matching, pooled over every
test note: ``softloc.metrics.notes``) on the clean test split. Two parts:

* ``supervision`` (LoCo Table 2): **counts only** (LoCo, ``softloc train --labels counts``: the
  weak labels of ``counts.csv``, thresholds calibrated from validation counts, no timestamp used
  anywhere before the test) against **full supervision** (frame BCE and SoftLoc on the exact
  sound onsets);
* ``noise`` (SoftLoc Fig. 5 / Table 1): F1 vs the σ of Gaussian label noise on the train and
  valid timestamps for SoftLoc, frame BCE, smoothed labels, bootstrapping and the ablations SLL
  only and MC only (:data:`softloc.experiments.noise_study.LOSSES`). The protocol and the
  machinery (paired noise draws, last checkpoint, time offset calibrated on the validation audio's
  onsets with the piano presets (on the noisy validation labels for presets that do not align
  to onsets), the decoder each loss names) are :mod:`softloc.experiments.noise_study`'s.

Data: the built-in SoundFont pianos by default (``synthesize_piano_dataset`` rendered once into
``OUT/data``: test pianos from a SoundFont family never heard in training), MAPS when given
(imported once into ``OUT/data`` with the papers' split: synthesized pianos for training,
the Disklavier for test), or any piano dataset in the generic layout (``data_root``).

Files::

    OUT/results.csv     one row per finished cell: labels, loss, sigma_ms, seed, steps, P/R/F1,
                        n_ref, n_est, time_offset_s, train_s, run (rewritten atomically after
                        every cell; a rerun skips the cells in it, so an interrupted study
                        resumes)
    OUT/results.md      Table 2 (counts vs full supervision) and the F1 vs σ table
    OUT/piano.png       both as a figure (softloc.plots.piano)
    OUT/experiment.json the settings; a rerun with other settings is refused
    OUT/data/ labels/ runs/ cache/   data, noisy label folders, run folders, feature cache
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from softloc._io import atomic_write_text
from softloc.experiments.noise_study import (
    LOSSES,
    SCORE_COLUMNS,
    cell_config,
    fmt_ms,
    noisy_labels,
    prepare_study,
    rescore_rows,
    train_and_score,
)
from softloc.experiments.results_table import as_float, read_rows, write_rows
from softloc.experiments.robustness import robustness_curves, robustness_table
from softloc.inference import Detector
from softloc.metrics.notes import evaluate

__all__ = [
    "PARTS",
    "PIANO_LOSSES",
    "PianoResult",
    "RESULT_COLUMNS",
    "piano_cells",
    "prepare_piano_data",
    "run_piano",
    "supervision_table",
]

#: The parts of the study.
PARTS = ("supervision", "noise")
#: Default losses of the noise part (SoftLoc Fig. 5 + the Table 1 ablation).
PIANO_LOSSES = ("softloc", "bce", "smoothed-bce", "bootstrap", "sll", "mc")
#: Columns of results.csv before the scores (:data:`~softloc.experiments.noise_study.SCORE_COLUMNS`
#: without the per-class columns: 88 keys x 3 would drown the table).
RESULT_COLUMNS = ("labels", "loss", "sigma_ms", "seed")
_COLUMNS = list(RESULT_COLUMNS) + [c for c in SCORE_COLUMNS if c != "f1_class_mean"]
#: Full-supervision cells of Table 2 (exact timestamps).
_FULL = ("bce", "softloc")


@dataclass(frozen=True)
class PianoResult:
    """What :func:`run_piano` returns.

    Attributes:
        rows: every row of ``results.csv``.
        trained, skipped: cells trained by this call / found finished and skipped.
        data_root: the dataset used.
        csv_path, table_path, plot_path: the written files (``plot_path`` None without
            matplotlib).
    """

    rows: list[dict]
    trained: int
    skipped: int
    data_root: Path
    csv_path: Path
    table_path: Path
    plot_path: Path | None


def piano_cells(parts: Sequence[str], losses: Sequence[str], sigmas_ms: Sequence[float],
                seeds: int) -> list[tuple[str, str, float, int]]:
    """The ``(labels, loss, sigma_ms, seed)`` cells of a study, each once, in training order.

    ``supervision``: ``("counts", "loco", 0, seed)`` and ``("onsets", loss, 0, seed)`` for BCE
    and SoftLoc; ``noise``: ``("onsets", loss, σ, seed)`` for every loss and σ (σ = 0 cells are
    shared with the supervision part).

    Raises:
        ValueError: an unknown part or loss, a σ < 0, ``seeds`` < 1.
    """
    fn = "piano_cells"
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ValueError(f"{fn}: `parts` must be names from {PARTS}, got {list(parts)}")
    unknown = [loss for loss in losses if loss not in LOSSES]
    if unknown:
        raise ValueError(f"{fn}: unknown loss {unknown[0]!r}; expected names from "
                         f"{', '.join(LOSSES)}")
    sigmas = [float(s) for s in sigmas_ms]
    if any(not (math.isfinite(s) and s >= 0) for s in sigmas):
        raise ValueError(f"{fn}: `sigmas_ms` must be finite numbers >= 0, got {list(sigmas_ms)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"{fn}: `seeds` must be an int >= 1, got {seeds!r}")
    cells: list[tuple[str, str, float, int]] = []
    for seed in range(seeds):
        if "supervision" in parts:
            cells.append(("counts", "loco", 0.0, seed))
            cells += [("onsets", loss, 0.0, seed) for loss in _FULL]
        if "noise" in parts:
            cells += [("onsets", loss, s, seed) for s in sigmas for loss in losses]
    seen: set = set()
    return [c for c in cells if not (c in seen or seen.add(c))]


def prepare_piano_data(out_dir: str | Path, *, data_root: str | Path | None = None,
                       maps_root: str | Path | None = None, minutes: float = 20.0,
                       seed: int = 0, say=print) -> Path:
    """The study's dataset: ``data_root`` as given, else ``OUT/data`` (written once).

    ``maps_root``: MAPS imported with the papers' split (``softloc.data.imports.import_maps``);
    neither: the built-in SoundFont pianos (``synthesize_piano_dataset``, ``minutes`` of
    training audio, 3 of validation, 5 of test). The folder is written under a temporary name
    and renamed when complete, so an interrupted preparation is redone, never half-used.
    """
    if data_root is not None:
        return Path(data_root)
    target = Path(out_dir) / "data"
    if (target / "splits").is_dir():
        return target
    tmp = target.with_name(".data.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if maps_root is not None:
        from softloc.data.imports import import_maps

        say(f"importing MAPS from {maps_root} (papers' split) ...", flush=True)
        import_maps(maps_root, tmp, papers_split=True)
    else:
        from softloc.data.generators.piano import synthesize_piano_dataset

        say(f"rendering the built-in piano data ({minutes:g} min of training audio) ...",
            flush=True)
        synthesize_piano_dataset(tmp, seed=seed, minutes=minutes)
    tmp.rename(target)
    return target


def _score_counts_run(run_dir: Path, setup) -> dict:
    """Note-onset scores of a counts-only run with its own calibrated decoder (no timestamps)."""
    detector = Detector.load(run_dir)
    estimate = {}
    for stem in setup.test_events:
        probs = detector.probabilities_from_mel(torch.as_tensor(setup.store.get(stem, 1.0)))
        events = detector.events_from_probabilities(probs).labelled(detector.classes)
        estimate[stem] = [(max(0.0, t), lab) for t, lab in events]
    o = evaluate(setup.test_events, estimate)["overall"]
    inf = detector.config.inference
    # the offset the detections got: the configured one plus the calibrated class offsets (one
    # value for all keys with the preset's align_to_onsets=pooled; their mean otherwise)
    offset = inf.time_offset_s + (sum(inf.class_offsets_s) / len(inf.class_offsets_s)
                                  if inf.class_offsets_s else 0.0)
    return {"precision": o["precision"], "recall": o["recall"], "f1": o["f1"],
            "n_ref": o["n_ref"], "n_est": o["n_est"], "f1_mass": math.nan,
            "time_offset_s": offset}


def _train_counts(setup, config, run_dir: Path, progress: bool) -> dict:
    from softloc.training import train

    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished run of an interrupted study (not in the csv)
    t0 = time.perf_counter()
    result = train(config, data_root=setup.data_root, out_dir=run_dir, labels="counts",
                   progress=progress, cache_dir=setup.out / "cache")
    train_s = time.perf_counter() - t0
    scores = _score_counts_run(run_dir, setup)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return {"steps": result.metrics.get("steps", ""), "train_s": round(train_s, 1), **scores}


def run_piano(
    out_dir: str | Path,
    *,
    data_root: str | Path | None = None,
    maps_root: str | Path | None = None,
    minutes: float = 20.0,
    preset: str = "piano-loco",
    sigmas_ms: Sequence[float] = (0, 50, 100, 150),
    losses: Sequence[str] = PIANO_LOSSES,
    parts: Sequence[str] = PARTS,
    seeds: int = 1,
    max_steps: int | None = None,
    overrides: Sequence[str] = (),
    threads: int | None = None,
    rescore: bool = False,
    progress: bool = False,
    verbose: bool = True,
) -> PianoResult:
    """Train and score every cell of :func:`piano_cells` not yet in ``OUT/results.csv``.

    Args:
        out_dir: the study folder (module docstring); reruns resume it.
        data_root: a piano dataset in the generic layout (splits/, annotations for every stem,
            counts.csv for the counts cell); default: built-in data, or MAPS.
        maps_root: a MAPS folder (imported with the papers' split).
        minutes: training audio of the built-in data.
        preset: base configuration (default ``piano-loco``); each cell sets its loss.
        sigmas_ms, losses: the grid of the noise part (``losses`` from
            :data:`~softloc.experiments.noise_study.LOSSES`).
        parts: names from :data:`PARTS`.
        seeds: seeds 0 .. ``seeds`` − 1 per cell (training seed and noise draw).
        max_steps: training steps per run (default: the preset's).
        overrides: ``dotted.key=value`` overrides for every run.
        threads: torch CPU threads per run.
        rescore: first score the finished noise-part runs again with the current decoders,
            from their saved ``model.pt`` (no training; ``noise_study.rescore_rows``).
        progress: Lightning progress bars.
        verbose: one line per cell.

    Returns:
        a :class:`PianoResult`.

    Raises:
        ValueError: a bad grid (:func:`piano_cells`), a dataset without splits or annotations,
            an ``out_dir`` holding a study with other settings.
    """
    fn = "run_piano"
    cells = piano_cells(parts, losses, sigmas_ms, seeds)
    say = print if verbose else (lambda *a, **k: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = prepare_piano_data(out, data_root=data_root, maps_root=maps_root, minutes=minutes,
                              say=say)
    settings = {"experiment": "piano", "source": "data" if data_root else
                "maps" if maps_root else f"built-in ({minutes:g} min)"}
    setup = prepare_study(fn, root, out, preset=preset, max_steps=max_steps,
                          overrides=overrides, settings=settings)
    csv_path = setup.out / "results.csv"
    rows = read_rows(csv_path, _COLUMNS)
    if rescore:  # the counts cells calibrate and score in training: left as they are
        n = rescore_rows(setup, rows, lambda r: None if r["labels"] == "counts" else
                         noisy_labels(setup, "normal", as_float(r["sigma_ms"]), int(r["seed"])))
        write_rows(csv_path, _COLUMNS, rows)
        say(f"{n} finished runs scored again (of {len(rows)} in {csv_path})")
    done = {(r["labels"], r["loss"], as_float(r["sigma_ms"]), int(r["seed"])) for r in rows}
    trained = skipped = 0
    for i, (labels, loss, sigma, seed) in enumerate(cells, start=1):
        name = (f"{loss}_counts_seed{seed}" if labels == "counts"
                else f"{loss}_normal{fmt_ms(sigma)}ms_seed{seed}")
        if (labels, loss, sigma, seed) in done:
            skipped += 1
            continue
        config = cell_config(setup.base, loss, seed=seed, threads=threads)
        say(f"[{i}/{len(cells)}] {name}: training {config.train.max_steps} steps ...", flush=True)
        run_dir = setup.out / "runs" / name
        if labels == "counts":
            # a counts run calibrates its own offset in training (inference.align_to_onsets);
            # the study's other cells get theirs when scored (noise_study._score_run)
            config = replace(config, inference=replace(
                config.inference, calibrate_offset=setup.base.inference.calibrate_offset))
            scores = _train_counts(setup, config, run_dir, progress)
        else:
            labels_dir = noisy_labels(setup, "normal", sigma, seed)
            scores = train_and_score(setup, config, labels_dir=labels_dir, run_dir=run_dir,
                                     progress=progress)
        row = {"labels": labels, "loss": loss, "sigma_ms": sigma, "seed": seed,
               "run": f"runs/{name}", **scores}
        rows.append(row)
        write_rows(csv_path, _COLUMNS, rows)  # atomically, after every finished cell
        trained += 1
        say(f"[{i}/{len(cells)}] {name}: note-onset F1 {row['f1']:.3f} (P "
            f"{row['precision']:.3f}, R {row['recall']:.3f}) in {row['train_s']:.0f} s",
            flush=True)
    table_path, plot_path = _write_summary(setup.out, rows)
    if verbose:
        say(table_path.read_text())
        say(f"{trained} cells trained, {skipped} skipped (already in {csv_path})")
    return PianoResult(rows, trained, skipped, root, csv_path, table_path, plot_path)


def _supervision_groups(rows: Sequence[Mapping]) -> dict[str, list[dict]]:
    names = {("counts", "loco"): "LoCo, counts only",
             **{("onsets", loss): f"{loss}, exact onsets" for loss in _FULL}}
    groups: dict[str, list[dict]] = {}
    for key, name in names.items():
        found = [dict(r) for r in rows if (r["labels"], r["loss"]) == key
                 and as_float(r["sigma_ms"]) == 0.0]
        if found:
            groups[name] = found
    return groups


def supervision_table(rows: Sequence[Mapping]) -> str:
    """Markdown table of the supervision part (LoCo Table 2): F1, precision and recall in %
    (mean ± std over seeds), pooled over every test note."""
    lines = ["| supervision | note-onset F1 | precision | recall | runs |", "|---|---|---|---|---|"]
    for name, found in _supervision_groups(rows).items():
        cells = []
        for key in ("f1", "precision", "recall"):
            vals = [as_float(r[key]) for r in found if not math.isnan(as_float(r[key]))]
            cells.append("–" if not vals else f"{100 * np.mean(vals):.1f}" if len(vals) == 1
                         else f"{100 * np.mean(vals):.1f} ± {100 * np.std(vals):.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(found)} |")
    return "\n".join(lines)


def _write_summary(out: Path, rows: Sequence[dict]) -> tuple[Path, Path | None]:
    noisy = [r for r in rows if r["labels"] == "onsets"]
    text = ("Note-onset F1 (%), ±50 ms, pitch must match, pooled over every note of the clean "
            "test split.\n\n## Counts only vs full supervision (LoCo Table 2)\n\n"
            + supervision_table(rows)
            + "\n\n## F1 vs label noise σ on train/valid timestamps (SoftLoc Fig. 5 / Table 1)"
              "\n\n" + (robustness_table(noisy) if noisy else "(no run)") + "\n")
    table_path = out / "results.md"
    atomic_write_text(table_path, text)
    try:
        from softloc.plots.piano import plot_piano

        bars = {name: [as_float(r["f1"]) for r in found]
                for name, found in _supervision_groups(rows).items()}
        plot_path: Path | None = plot_piano(bars, robustness_curves(noisy), out / "piano.png")
    except ImportError:
        plot_path = None
    return table_path, plot_path
