"""A synthetic puffMarker-like dataset: features per respiration cycle, smoking puffs as events.

SoftLoc §5.2 detects smoking puffs in the puffMarker data (Saleheen et al. 2015): one time step
per respiration cycle, 37 features per cycle from a chest respiration band and wrist inertial
sensors, 6 subjects, leave-one-subject-out. That data is not public; this generator makes data of
the same shape so the protocol (discrete misalignment in whole steps, F1 with exact alignment,
LR-M vs frame CE vs SoftLoc) runs end to end, at the paper's step granularity.

The simulation, per subject and session (all randomness from one seeded generator):

* Breathing: each cycle has an inhalation and an exhalation duration and a stretch (depth)
  around subject-specific means, modulated by a slow activity level (an AR(1) process).
* Smoking episodes (0-2 per session): 8-14 puffs, one every 3-12 cycles. A puff cycle has a
  longer, deeper inhalation and the hand at the mouth; the next cycle has a long exhalation
  (the smoke), so context helps.
* Confounders: eating / drinking episodes (hand at the mouth, normal breath) and sighs (deep
  breath, hand down), so no single feature identifies a puff.
* Subjects differ in their breathing means, in sensor gains and offsets (per-subject scale
  factors on every feature), which is why per-subject normalisation and leave-one-subject-out
  evaluation matter.

Features (:data:`PUFF_FEATURES`, 37): 10 per-cycle quantities (inhalation, exhalation and cycle
durations in seconds, IE ratio, stretch, upper and lower stretch, hand-at-mouth score, wrist
pitch and roll), the first nine again as differences to the previous cycle, to the next cycle,
and as ratios to the median of the surrounding 7 cycles.

Layout written (the generic layout of :mod:`softloc.data.layout` with time-series signals)::

    ROOT/signals/<stem>.npy, <stem>.json    float32 (37, cycles); rate_hz = 1 / cycle_s
    ROOT/annotations/<stem>.txt             '<step / rate_hz>\\tpuff' per puff
    ROOT/counts.csv                         puffs per window of `window_cycles` cycles
    ROOT/subjects.csv                       stem -> subject
    ROOT/splits/{train,valid,test}.txt      a seeded split by subject

Conventions: step ``k`` lies at ``k * cycle_s`` seconds (a uniform nominal cycle length, so that
seconds and steps convert exactly); stems are ``<subject>_s<session>`` (``p03_s01``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softloc._checks import check_int, check_real
from softloc.data.layout import (
    count_windows,
    write_annotation_file,
    write_counts_csv,
    write_split_file,
)
from softloc.data.signals import Signal, write_signal
from softloc.data.subjects import subject_splits, write_subjects_csv

__all__ = ["PUFF_FEATURES", "PUFF_LABEL", "PuffDataset", "generate_puff_dataset",
           "simulate_session"]

PUFF_LABEL = "puff"
_BASE = ("inh_dur_s", "exh_dur_s", "resp_dur_s", "ie_ratio", "stretch", "up_stretch",
         "low_stretch", "hand_mouth", "wrist_pitch", "wrist_roll")
#: The 37 feature names, in channel order.
PUFF_FEATURES: tuple[str, ...] = (_BASE + tuple(f"d_prev_{n}" for n in _BASE[:9])
                                  + tuple(f"d_next_{n}" for n in _BASE[:9])
                                  + tuple(f"rel_med_{n}" for n in _BASE[:9]))


@dataclass(frozen=True)
class _Subject:
    inh_s: float
    exh_s: float
    depth: float
    gains: np.ndarray  # (37,) per-feature sensor gain
    offsets: np.ndarray  # (37,) per-feature offset


def _make_subject(rng: np.random.Generator) -> _Subject:
    return _Subject(inh_s=rng.uniform(1.2, 1.8), exh_s=rng.uniform(1.8, 2.8),
                    depth=rng.uniform(0.7, 1.4), gains=rng.uniform(0.7, 1.3, len(PUFF_FEATURES)),
                    offsets=rng.normal(0.0, 0.3, len(PUFF_FEATURES)))


def _episodes(rng: np.random.Generator, n: int, n_episodes: int, gap: tuple[int, int],
              length: tuple[int, int]) -> list[int]:
    """Steps of event runs: ``n_episodes`` episodes, each a run of events ``gap`` apart."""
    steps: list[int] = []
    for _ in range(n_episodes):
        k = int(rng.integers(length[0], length[1] + 1))
        start = int(rng.integers(2, max(3, n - k * gap[1] - 2)))
        t = start
        for _ in range(k):
            if t >= n - 2:
                break
            steps.append(t)
            t += int(rng.integers(gap[0], gap[1] + 1))
    return steps


def _cycle_quantities(rng: np.random.Generator, subj: _Subject, n: int, puffs: np.ndarray,
                      noise: float) -> np.ndarray:
    """The 10 per-cycle quantities ``(10, n)`` before sensor gains."""
    act = np.zeros(n)
    for k in range(1, n):  # slow activity level, AR(1)
        act[k] = 0.97 * act[k - 1] + rng.normal(0, 0.08)
    inh = subj.inh_s * np.exp(0.15 * act + noise * rng.normal(0, 0.12, n))
    exh = subj.exh_s * np.exp(0.15 * act + noise * rng.normal(0, 0.15, n))
    depth = subj.depth * np.exp(0.2 * act + noise * rng.normal(0, 0.15, n))
    hand = noise * rng.normal(0, 0.25, n)
    pitch = noise * rng.normal(0, 0.3, n)
    is_puff = np.zeros(n, bool)
    is_puff[puffs] = True
    eat = np.zeros(n, bool)
    eat[_episodes(rng, n, int(rng.integers(0, 3)), (2, 6), (6, 15))] = True
    eat &= ~is_puff
    sigh = (rng.random(n) < 0.02) & ~is_puff
    inh[is_puff] *= rng.uniform(1.3, 1.8, is_puff.sum())
    depth[is_puff] *= rng.uniform(1.4, 2.0, is_puff.sum())
    hand[is_puff] += rng.uniform(0.8, 1.4, is_puff.sum())
    pitch[is_puff] += rng.uniform(0.5, 1.2, is_puff.sum())
    after = np.clip(puffs + 1, 0, n - 1)
    exh[after] *= rng.uniform(1.3, 1.7, after.size)
    hand[eat] += rng.uniform(0.7, 1.3, eat.sum())
    pitch[eat] += rng.uniform(0.4, 1.1, eat.sum())
    inh[sigh] *= rng.uniform(1.3, 1.8, sigh.sum())
    depth[sigh] *= rng.uniform(1.5, 2.2, sigh.sum())
    up = depth * rng.uniform(0.55, 0.65, n)
    low = depth - up
    roll = noise * rng.normal(0, 0.3, n) + 0.5 * (hand > 0.6)
    return np.stack([inh, exh, inh + exh, inh / exh, depth, up, low, hand, pitch, roll])


def _derive(q: np.ndarray) -> np.ndarray:
    """10 quantities ``(10, n)`` -> 37 features ``(37, n)``: values, deltas, ratio to median."""
    base = q[:9]
    prev = np.concatenate([base[:, :1], base[:, :-1]], axis=1)
    nxt = np.concatenate([base[:, 1:], base[:, -1:]], axis=1)
    padded = np.pad(base, ((0, 0), (3, 3)), mode="edge")
    windows = np.stack([padded[:, i:i + base.shape[1]] for i in range(7)])  # (7, 9, n)
    med = np.median(windows, axis=0)
    rel = base / np.where(np.abs(med) > 1e-6, med, 1e-6)
    return np.concatenate([q, base - prev, base - nxt, rel])


def simulate_session(rng: np.random.Generator, *, n_cycles: int = 700, noise: float = 1.0,
                     subject: _Subject | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One session of one subject: features ``(37, n_cycles)`` float32 and the puff steps.

    Args:
        rng: the random generator (all randomness comes from it).
        n_cycles: respiration cycles (steps) in the session (>= 20).
        noise: scale of the per-cycle measurement noise (1 = default difficulty).
        subject: the subject's parameters (default: a new random subject).

    Returns:
        ``(features, puff_steps)``; ``puff_steps`` sorted int64.
    """
    fn = "simulate_session"
    n = check_int(fn, "n_cycles", n_cycles, minimum=20)
    noise = check_real(fn, "noise", noise, minimum=0.0)
    subj = subject if subject is not None else _make_subject(rng)
    n_smoke = int(rng.choice([0, 1, 1, 2]))
    puffs = np.unique(np.asarray(_episodes(rng, n, n_smoke, (3, 12), (8, 14)), dtype=np.int64))
    feats = _derive(_cycle_quantities(rng, subj, n, puffs, noise))
    feats = feats * subj.gains[:, None] + subj.offsets[:, None]
    return feats.astype(np.float32), puffs


@dataclass(frozen=True)
class PuffDataset:
    """What :func:`generate_puff_dataset` wrote: stems, subjects, puffs per stem, the rate."""

    root: Path
    stems: tuple[str, ...]
    subjects: dict[str, str]
    puff_steps: dict[str, np.ndarray]
    rate_hz: float
    splits: dict[str, list[str]]


def generate_puff_dataset(out: str | os.PathLike, *, n_subjects: int = 6,
                          sessions_per_subject: int = 5, cycles_per_session: int = 700,
                          cycle_s: float = 1.0, window_cycles: int = 50, noise: float = 1.0,
                          seed: int = 0, overwrite: bool = False) -> PuffDataset:
    """Write a synthetic puffMarker-like dataset in the generic layout (see the module docstring).

    Args:
        out: the dataset folder.
        n_subjects: subjects (the paper's leave-one-out has 6).
        sessions_per_subject: sessions per subject (the original: up to 30 of <= 700 cycles).
        cycles_per_session: steps per session.
        cycle_s: nominal seconds per step (``rate_hz = 1 / cycle_s``; default 1: seconds = steps).
        window_cycles: count windows of ``counts.csv`` in steps (the original trained on
            windows of 50 steps).
        noise: per-cycle noise scale (1: default difficulty).
        seed: everything is a function of it.
        overwrite: replace existing files.

    Returns:
        a :class:`PuffDataset`.

    Raises:
        ValueError, TypeError: bad arguments. FileExistsError: a file exists (``overwrite``
        False).
    """
    fn = "generate_puff_dataset"
    n_subj = check_int(fn, "n_subjects", n_subjects, minimum=1)
    n_sess = check_int(fn, "sessions_per_subject", sessions_per_subject, minimum=1)
    n_cyc = check_int(fn, "cycles_per_session", cycles_per_session, minimum=20)
    step_s = check_real(fn, "cycle_s", cycle_s, positive=True, unit=" seconds")
    win = check_int(fn, "window_cycles", window_cycles, minimum=1)
    check_int(fn, "seed", seed)
    rate = 1.0 / step_s
    out = Path(out)
    rng = np.random.default_rng(seed)
    subjects: dict[str, str] = {}
    puffs: dict[str, np.ndarray] = {}
    windows = []
    for i in range(n_subj):
        subj_name = f"p{i + 1:02d}"
        params = _make_subject(rng)
        for j in range(n_sess):
            stem = f"{subj_name}_s{j + 1:02d}"
            feats, steps = simulate_session(rng, n_cycles=n_cyc, noise=noise, subject=params)
            write_signal(out / "signals" / stem,
                         Signal(feats, rate, PUFF_FEATURES, ("",) * len(PUFF_FEATURES)),
                         overwrite=overwrite)
            events = [(float(k) * step_s, PUFF_LABEL) for k in steps]
            write_annotation_file(out / "annotations" / f"{stem}.txt", events,
                                  overwrite=overwrite)
            windows.extend(count_windows(stem, events, n_cyc * step_s, window_s=win * step_s,
                                         hop_s=win * step_s, classes=[PUFF_LABEL]))
            subjects[stem] = subj_name
            puffs[stem] = steps
    write_counts_csv(out / "counts.csv", windows, classes=[PUFF_LABEL], overwrite=overwrite)
    write_subjects_csv(out / "subjects.csv", subjects, overwrite=overwrite)
    splits = subject_splits(subjects, seed=seed)
    for name, stems in splits.items():
        write_split_file(out / "splits" / f"{name}.txt", stems, overwrite=overwrite)
    return PuffDataset(out, tuple(sorted(subjects)), subjects, puffs, rate, splits)
