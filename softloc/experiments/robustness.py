"""SoftLoc's robustness study: noisy timestamps × losses × seeds (SoftLoc §5.1.1, Fig. 5, Table 1).

:func:`run_robustness` (``softloc experiment robustness``) trains one model per cell (loss, noise
level σ, seed) on timestamps misaligned by a ``softloc.noise`` model, evaluates it on the clean
test split and writes::

    OUT/results.csv     one row per finished cell: loss, noise, sigma_ms, seed, P/R/F1 overall and
                        per class, f1_mass (F1 of the local-mass decoder, a diagnostic), ...
                        (rewritten atomically after every cell; reruns skip cells already in it,
                        so an interrupted grid resumes where it stopped)
    OUT/results.md      the markdown table of overall F1 (mean ± std over seeds) per loss and σ
    OUT/robustness.png  F1 vs σ per loss, band = min..max over seeds (like SoftLoc Fig. 5)
    OUT/experiment.json the settings; a rerun with other settings (preset, steps, ...) is refused
    OUT/labels/         the perturbed annotation folders, one per (noise, σ, seed), shared by losses
    OUT/runs/           one training run folder per cell (``softloc.training.train``; its Lightning
                        checkpoints are deleted after scoring, ``model.pt`` is kept)
    OUT/cache/          the feature cache shared by all runs

The protocol (noisy train/valid labels, clean test labels, paired noise draws, last checkpoint,
offset calibrated on the noisy validation labels, or on the validation audio's onsets for
presets that align to them, F1 at ±50 ms) and the machinery are in
:mod:`softloc.experiments.noise_study`; how each loss name trains and decodes is its table
:data:`LOSSES`. The ablation of SoftLoc Table 1 is ``losses=("sll", "mc", "softloc")``.
The softness sweep (SoftLoc Fig. 6) is :mod:`softloc.experiments.softness_sweep`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softloc._io import atomic_write_text
from softloc.experiments.noise_study import (
    LOSSES,
    NOISE_KINDS,
    LossSpec,
    cell_config,
    fmt_ms,
    noise_spec,
    noisy_labels,
    prepare_study,
    rescore_rows,
    result_columns,
    train_and_score,
)
from softloc.experiments.results_table import as_float, read_rows, write_rows

__all__ = [
    "LossSpec",
    "LOSSES",
    "NOISE_KINDS",
    "RESULT_COLUMNS",
    "RobustnessResult",
    "noise_spec",
    "cell_config",
    "run_robustness",
    "robustness_curves",
    "robustness_table",
]

#: The columns of ``results.csv`` before the score columns.
RESULT_COLUMNS = ("loss", "noise", "sigma_ms", "seed")


@dataclass(frozen=True)
class RobustnessResult:
    """What :func:`run_robustness` returns.

    Attributes:
        rows: every row of ``results.csv`` (strings as read back, numbers as written).
        trained: cells trained by this call.
        skipped: cells found finished in ``results.csv`` and skipped.
        csv_path, table_path, plot_path: the written files (``plot_path`` None without
            matplotlib).
    """

    rows: list[dict]
    trained: int
    skipped: int
    csv_path: Path
    table_path: Path
    plot_path: Path | None


def _check_losses(fn: str, losses: Sequence[str]) -> list[str]:
    losses = list(losses)
    unknown = [name for name in losses if name not in LOSSES]
    if unknown or not losses:
        raise ValueError(
            f"{fn}: unknown loss {unknown[0] if unknown else '(none)'}; expected names from "
            f"{', '.join(LOSSES)}"
        )
    if len(set(losses)) != len(losses):
        raise ValueError(f"{fn}: a loss is listed twice in {losses}")
    return losses


def _check_loss_overrides(fn: str, loss_overrides: Mapping[str, Sequence[str]] | None
                          ) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for loss, items in (loss_overrides or {}).items():
        if loss not in LOSSES:
            raise ValueError(f"{fn}: `loss_overrides` names an unknown loss {loss!r}; expected "
                             f"names from {', '.join(LOSSES)}")
        items = [items] if isinstance(items, str) else list(items)
        bad = [o for o in items if not isinstance(o, str) or "=" not in o]
        if bad:
            raise ValueError(f"{fn}: `loss_overrides[{loss!r}]` must be 'dotted.key=value' "
                             f"strings, got {bad[0]!r}")
        out[loss] = items
    return out


def _check_grid(fn: str, losses: Sequence[str], noise: str, sigmas_ms: Sequence[float],
                seeds: int) -> tuple[list[str], list[float]]:
    losses = _check_losses(fn, losses)
    if noise not in NOISE_KINDS:
        raise ValueError(f"{fn}: `noise` must be one of {NOISE_KINDS}, got {noise!r}")
    sigmas = [float(s) for s in sigmas_ms]
    if not sigmas or any(not (s >= 0 and math.isfinite(s)) for s in sigmas):
        raise ValueError(f"{fn}: `sigmas_ms` must be finite numbers >= 0, got {list(sigmas_ms)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"{fn}: `seeds` must be an int >= 1, got {seeds!r}")
    return losses, sigmas


# the study losses with an SLL term, which loss.label_noise_ms changes
_NOISE_AWARE = ("softloc", "sll")


def run_robustness(
    data_root: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "drums",
    noise: str = "normal",
    sigmas_ms: Sequence[float] = (0, 25, 50, 100, 150, 200),
    losses: Sequence[str] = ("softloc", "bce", "smoothed-bce", "bootstrap", "sll", "loco"),
    seeds: int = 3,
    max_steps: int | None = None,
    overrides: Sequence[str] = (),
    loss_overrides: Mapping[str, Sequence[str]] | None = None,
    skew_shape: float = -2.0,
    threads: int | None = None,
    noise_aware: bool = False,
    rescore: bool = False,
    progress: bool = False,
    verbose: bool = True,
) -> RobustnessResult:
    """Train and score every (loss, σ, seed) cell not yet in ``OUT/results.csv`` (SoftLoc Fig. 5).

    Args:
        data_root: dataset in the generic layout with ``splits/`` and annotations for every stem.
        out_dir: experiment folder (see the module docstring); reruns resume it.
        preset: configuration preset (``drums``, ``demo``, ...).
        noise: one of :data:`NOISE_KINDS`; ``sigmas_ms`` are its magnitudes.
        sigmas_ms: noise levels in milliseconds (>= 0).
        losses: names of :data:`LOSSES`.
        seeds: seeds 0 .. ``seeds`` − 1 per (loss, σ): training seed and noise draw.
        max_steps: training steps per run (default: the preset's).
        overrides: extra ``dotted.key=value`` config overrides for every run.
        loss_overrides: overrides for the runs of one loss, ``{loss: ["dotted.key=value", ...]}``
            (e.g. ``{"bce": ["train.learning_rate=2e-3"]}``), applied after ``overrides`` and the
            table's.
        skew_shape: shape parameter of ``skew-normal`` noise.
        threads: torch CPU threads per run (default: the preset's).
        noise_aware: the ``softloc`` and ``sll`` runs are told the noise level of their cell
            (``loss.label_noise_ms`` = σ, the noise-aware SLL, an extension of the paper); an
            oracle setting, reported apart from the paper's loss. Stored in ``experiment.json``.
        rescore: first score the finished runs again with the current decoders, from their
            saved ``model.pt`` (no training; ``noise_study.rescore_rows``).
        progress: show Lightning's progress bars.
        verbose: print one line per cell.

    Returns:
        a :class:`RobustnessResult`.

    Raises:
        ValueError: unknown loss or noise kind, negative σ, ``seeds`` < 1, a dataset without
            splits or annotations, an ``out_dir`` holding an experiment with other settings.
    """
    fn = "run_robustness"
    losses, sigmas = _check_grid(fn, losses, noise, sigmas_ms, seeds)
    per_loss = _check_loss_overrides(fn, loss_overrides)
    if not isinstance(noise_aware, bool):
        raise ValueError(f"{fn}: `noise_aware` must be True or False, got {noise_aware!r}")
    say = print if verbose else (lambda *a, **k: None)
    settings = {"experiment": "robustness", "noise": noise, "skew_shape": skew_shape,
                "loss_overrides": {k: per_loss[k] for k in sorted(per_loss)}}
    if noise_aware:  # only when on, so that folders of earlier studies still resume
        settings["noise_aware"] = True
    setup = prepare_study(fn, data_root, out_dir, preset=preset, max_steps=max_steps,
                          overrides=overrides, settings=settings)
    columns = result_columns(RESULT_COLUMNS, setup.classes)
    csv_path = setup.out / "results.csv"
    rows = read_rows(csv_path, columns)
    if rescore:
        n = rescore_rows(setup, rows, lambda r: noisy_labels(
            setup, r["noise"], as_float(r["sigma_ms"]), int(r["seed"]), skew_shape=skew_shape))
        write_rows(csv_path, columns, rows)
        say(f"{n} finished runs scored again (of {len(rows)} in {csv_path})")
    done = {(r["loss"], r["noise"], as_float(r["sigma_ms"]), int(r["seed"])) for r in rows}

    cells = [(loss, s, seed) for s in sigmas for seed in range(seeds) for loss in losses]
    trained = skipped = 0
    for i, (loss, sigma, seed) in enumerate(cells, start=1):
        name = f"{loss}_{noise}{fmt_ms(sigma)}ms_seed{seed}"
        if (loss, noise, sigma, seed) in done:
            skipped += 1
            continue
        told = [f"loss.label_noise_ms={sigma}"] if noise_aware and loss in _NOISE_AWARE else []
        config = cell_config(setup.base, loss, seed=seed, threads=threads,
                             loss_overrides=told + list(per_loss.get(loss, ())))
        labels_dir = noisy_labels(setup, noise, sigma, seed, skew_shape=skew_shape)
        say(f"[{i}/{len(cells)}] {name}: training {config.train.max_steps} steps ...", flush=True)
        scores = train_and_score(setup, config, labels_dir=labels_dir,
                                 run_dir=setup.out / "runs" / name, progress=progress)
        row = {"loss": loss, "noise": noise, "sigma_ms": sigma, "seed": seed,
               "run": f"runs/{name}", **scores}
        rows.append(row)
        write_rows(csv_path, columns, rows)  # atomically, after every finished cell
        trained += 1
        say(f"[{i}/{len(cells)}] {name}: F1 {row['f1']:.3f} (P {row['precision']:.3f}, "
            f"R {row['recall']:.3f}) in {row['train_s']:.0f} s", flush=True)

    table_path, plot_path = _write_summary(setup.out, rows, noise)
    if verbose:
        say(robustness_table(rows))
        say(f"{trained} cells trained, {skipped} skipped (already in {csv_path})")
    return RobustnessResult(rows, trained, skipped, csv_path, table_path, plot_path)


def _write_summary(out: Path, rows: Sequence[dict], noise: str) -> tuple[Path, Path | None]:
    """``results.md`` (F1 and local-mass F1 tables) and ``robustness.png`` (None without
    matplotlib)."""
    header = (f"Overall F1 (%) at ±50 ms on the clean test split; noise `{noise}` on train and "
              f"valid labels; mean ± std over seeds (n = runs).\n\n")
    mass = ("\n\nDiagnostic: the same runs decoded by local-mass peak picking (`f1_mass`: "
            "events where the probability mass within ±50 ms exceeds 0.5).\n\n"
            + robustness_table(rows, metric="f1_mass"))
    table_path = out / "results.md"
    atomic_write_text(table_path, header + robustness_table(rows) + mass + "\n")
    try:
        from softloc.plots import plot_robustness

        plot_path: Path | None = plot_robustness(robustness_curves(rows), out / "robustness.png",
                                                 title=f"F1 vs label noise ({noise})")
    except ImportError:
        plot_path = None
    return table_path, plot_path


def robustness_curves(rows: Sequence[Mapping], metric: str = "f1"
                      ) -> dict[str, dict[float, list[float]]]:
    """``{loss: {sigma_ms: [metric of each seed]}}`` of results rows, losses in :data:`LOSSES`
    order (unknown names after them, sorted); unreadable cells are NaN."""
    groups: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        groups.setdefault(str(r["loss"]), {}).setdefault(as_float(r["sigma_ms"]), []).append(
            as_float(r.get(metric)))
    order = [name for name in LOSSES if name in groups] + sorted(set(groups) - set(LOSSES))
    return {name: groups[name] for name in order}


def robustness_table(rows: Sequence[Mapping], *, metric: str = "f1") -> str:
    """Markdown table: one row per loss, one column per σ, cells ``mean ± std (n)`` of
    ``metric`` (a results.csv column, default the overall F1) in %, and the change from the
    smallest to the largest σ."""
    groups = robustness_curves(rows, metric)
    sigmas = sorted({s for g in groups.values() for s in g})
    head = "| loss | " + " | ".join(f"σ = {fmt_ms(s)} ms" for s in sigmas) + " | Δ |"
    lines = [head, "|" + "---|" * (len(sigmas) + 2)]
    for loss, by_sigma in groups.items():
        cells, means = [], {}
        for s in sigmas:
            vals = [v for v in by_sigma.get(s, []) if not math.isnan(v)]
            if not vals:
                cells.append("–")
                continue
            m = 100 * float(np.mean(vals))
            means[s] = m
            cells.append(f"{m:.1f}" if len(vals) == 1 else
                         f"{m:.1f} ± {100 * float(np.std(vals)):.1f} ({len(vals)})")
        delta = (f"{means[sigmas[-1]] - means[sigmas[0]]:+.1f}"
                 if sigmas[0] in means and sigmas[-1] in means and len(sigmas) > 1 else "–")
        lines.append(f"| {loss} | " + " | ".join(cells) + f" | {delta} |")
    return "\n".join(lines)
