"""SoftLoc's softness sweep: F1 at random (label noise σ, softness) pairs (SoftLoc §5.1.2, Fig. 6).

:func:`run_softness_sweep` (``softloc experiment softness-sweep``) trains SoftLoc at random
(noise σ, softness) pairs on perturbed train/valid timestamps, scores each run on the clean test
split, and draws the F1 surface smoothed by a Gaussian Nadaraya–Watson regression
(:func:`softness_surface`, :mod:`softloc.smoothing`) as a heat map::

    OUT/sweep.csv          one row per finished run (rewritten atomically after every run; a rerun
                           with a larger ``n_runs`` adds runs and keeps the finished ones)
    OUT/softness_sweep.png the surface, runs as white dots
    OUT/experiment.json, OUT/labels/, OUT/runs/, OUT/cache/   as in :mod:`.robustness`

The protocol and the machinery are those of :mod:`softloc.experiments.noise_study`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softloc.experiments.noise_study import (
    NOISE_KINDS,
    cell_config,
    fmt_ms,
    noisy_labels,
    prepare_study,
    result_columns,
    train_and_score,
)
from softloc.experiments.results_table import as_float, read_rows, write_rows
from softloc.smoothing import nadaraya_watson_grid

__all__ = ["SWEEP_COLUMNS", "SweepResult", "run_softness_sweep", "softness_surface"]

#: The columns of ``sweep.csv`` before the score columns.
SWEEP_COLUMNS = ("run_id", "noise", "sigma_ms", "softness_ms", "seed")


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_softness_sweep` returns.

    Attributes:
        rows: every row of ``sweep.csv``.
        trained, skipped: runs trained by this call / already finished.
        csv_path, plot_path: the written files (``plot_path`` None without matplotlib).
    """

    rows: list[dict]
    trained: int
    skipped: int
    csv_path: Path
    plot_path: Path | None


def _sweep_pair(seed: int, run_id: int, sigma_range_ms: tuple[float, float],
                softness_range_ms: tuple[float, float]) -> tuple[float, float]:
    rng = np.random.default_rng([seed, run_id, 5])
    sigma = float(rng.uniform(*sigma_range_ms))
    softness = float(rng.uniform(*softness_range_ms))
    return round(sigma, 1), round(softness, 1)


def _check_range(fn: str, name: str, value: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (0 <= lo <= hi and math.isfinite(hi)):
        raise ValueError(f"{fn}: `{name}` must be (low, high) with 0 <= low <= high, got {value}")
    return lo, hi


def _check_sweep(fn: str, noise: str, n_runs: int, sigma_range_ms: Sequence[float],
                 softness_range_ms: Sequence[float], bandwidth_ms: float
                 ) -> tuple[tuple[float, float], tuple[float, float]]:
    if noise not in NOISE_KINDS:
        raise ValueError(f"{fn}: `noise` must be one of {NOISE_KINDS}, got {noise!r}")
    if isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1:
        raise ValueError(f"{fn}: `n_runs` must be an int >= 1, got {n_runs!r}")
    if not bandwidth_ms > 0:
        raise ValueError(f"{fn}: `bandwidth_ms` must be > 0, got {bandwidth_ms}")
    return (_check_range(fn, "sigma_range_ms", sigma_range_ms),
            _check_range(fn, "softness_range_ms", softness_range_ms))


def run_softness_sweep(
    data_root: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "drums",
    noise: str = "normal",
    n_runs: int = 20,
    sigma_range_ms: tuple[float, float] = (0.0, 100.0),
    softness_range_ms: tuple[float, float] = (0.0, 150.0),
    seed: int = 0,
    max_steps: int | None = None,
    overrides: Sequence[str] = (),
    bandwidth_ms: float = 15.0,
    skew_shape: float = -2.0,
    threads: int | None = None,
    progress: bool = False,
    verbose: bool = True,
) -> SweepResult:
    """SoftLoc at ``n_runs`` random (noise σ, softness) pairs; F1 surface as a heat map (Fig. 6).

    Run ``i`` draws σ ~ U(``sigma_range_ms``) and softness ~ U(``softness_range_ms``) from
    ``(seed, i)``, so a rerun with a larger ``n_runs`` adds runs and keeps the finished ones
    (SoftLoc §5.1.2: 210 runs, σ in [0, 100] ms, softness in [0, 150] ms).

    Args:
        data_root, preset, noise, max_steps, overrides, skew_shape, threads, progress, verbose:
            as :func:`softloc.experiments.robustness.run_robustness`.
        out_dir: folder for ``sweep.csv``, ``softness_sweep.png``, ``labels/``, ``runs/``.
        n_runs: number of random pairs (>= 1).
        sigma_range_ms: range of the label noise σ.
        softness_range_ms: range of the SoftLoc softness.
        seed: seed of the pairs (each run's training seed is ``seed``; its noise seed is derived
            from σ and ``seed + run id``).
        bandwidth_ms: Gaussian Nadaraya–Watson bandwidth of the surface, in ms on both axes
            (the authors used 10 ms with 210 runs; sparser sweeps need more).

    Returns:
        a :class:`SweepResult`.

    Raises:
        ValueError: as ``run_robustness``; bad ranges, ``n_runs`` < 1, ``bandwidth_ms`` <= 0.
    """
    fn = "run_softness_sweep"
    sigma_range, soft_range = _check_sweep(fn, noise, n_runs, sigma_range_ms, softness_range_ms,
                                           bandwidth_ms)
    say = print if verbose else (lambda *a, **k: None)
    settings = {"experiment": "softness-sweep", "noise": noise, "skew_shape": skew_shape,
                "seed": seed, "sigma_range_ms": list(sigma_range),
                "softness_range_ms": list(soft_range)}
    setup = prepare_study(fn, data_root, out_dir, preset=preset, max_steps=max_steps,
                          overrides=overrides, settings=settings)
    columns = result_columns(SWEEP_COLUMNS, setup.classes)
    csv_path = setup.out / "sweep.csv"
    rows = read_rows(csv_path, columns)
    done = {int(r["run_id"]) for r in rows}
    trained = skipped = 0
    for run_id in range(n_runs):
        if run_id in done:
            skipped += 1
            continue
        sigma, softness = _sweep_pair(seed, run_id, sigma_range, soft_range)
        name = f"run{run_id:03d}_{noise}{fmt_ms(sigma)}ms_soft{fmt_ms(softness)}ms"
        config = cell_config(setup.base, "softloc", seed=seed, softness_ms=softness,
                             threads=threads)
        labels_dir = noisy_labels(setup, noise, sigma, seed + run_id, skew_shape=skew_shape)
        say(f"[{run_id + 1}/{n_runs}] {name}: training ...", flush=True)
        scores = train_and_score(setup, config, labels_dir=labels_dir,
                                 run_dir=setup.out / "runs" / name, progress=progress)
        rows.append({"run_id": run_id, "noise": noise, "sigma_ms": sigma,
                     "softness_ms": softness, "seed": seed, "run": f"runs/{name}", **scores})
        write_rows(csv_path, columns, rows)
        trained += 1
        say(f"[{run_id + 1}/{n_runs}] {name}: F1 {rows[-1]['f1']:.3f}", flush=True)
    plot_path = _draw(rows, setup.out / "softness_sweep.png", bandwidth_ms=bandwidth_ms,
                      sigma_range_ms=sigma_range, softness_range_ms=soft_range,
                      title=f"SoftLoc F1 vs label noise ({noise}) and softness")
    say(f"{trained} runs trained, {skipped} skipped; wrote {csv_path}"
        + (f" and {plot_path}" if plot_path else ""))
    return SweepResult(rows, trained, skipped, csv_path, plot_path)


def softness_surface(
    rows: Sequence[Mapping],
    *,
    bandwidth_ms: float,
    sigma_range_ms: tuple[float, float],
    softness_range_ms: tuple[float, float],
    n_grid: int = 101,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Nadaraya–Watson F1 surface (%) over (noise σ, softness) of sweep rows (Fig. 6).

    Args:
        rows: rows with ``sigma_ms``, ``softness_ms`` and ``f1`` (a fraction; NaN = failed run).
        bandwidth_ms: Gaussian kernel bandwidth on both axes, in ms.
        sigma_range_ms, softness_range_ms: the grid's extent.
        n_grid: grid points per axis.

    Returns:
        ``(sigma_grid_ms (n_grid,), softness_grid_ms (n_grid,), surface (n_grid, n_grid))``:
        surface rows = softness, columns = σ; all NaN when no run has a finite F1.
    """
    pts = np.array([[as_float(r["sigma_ms"]), as_float(r["softness_ms"])] for r in rows])
    f1 = np.array([100 * as_float(r["f1"]) for r in rows])
    gx = np.linspace(*sigma_range_ms, n_grid)
    gy = np.linspace(*softness_range_ms, n_grid)
    surface = np.full((n_grid, n_grid), np.nan)
    if len(rows) and not np.all(np.isnan(f1)):
        surface = nadaraya_watson_grid(pts, f1, gx, gy, bandwidth=bandwidth_ms)
    return gx, gy, surface


def _draw(rows: Sequence[Mapping], path: Path, *, bandwidth_ms: float,
          sigma_range_ms: tuple[float, float], softness_range_ms: tuple[float, float],
          title: str) -> Path | None:
    """The sweep's heat map (None when matplotlib is missing)."""
    gx, gy, surface = softness_surface(rows, bandwidth_ms=bandwidth_ms,
                                       sigma_range_ms=sigma_range_ms,
                                       softness_range_ms=softness_range_ms)
    points = np.array([[as_float(r["sigma_ms"]), as_float(r["softness_ms"])] for r in rows])
    f1 = np.array([as_float(r["f1"]) for r in rows])
    try:
        from softloc.plots import plot_softness_surface

        return plot_softness_surface(points, f1, gx, gy, surface, path, title=title)
    except ImportError:
        return None
