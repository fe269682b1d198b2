"""Built-in action-segmentation data: segment-structured feature sequences in the MS-TCN layout.

50Salads and GTEA cannot be downloaded here, so CI, the docs and the demo of
``softloc experiment segmentation`` use this generator; users with the real datasets point
``--data`` at them (:mod:`softloc.data.mstcn` reads both).

The videos imitate 50Salads: several *subjects* each prepare a salad a few times.

* **Grammar.** A script is ``take_bowl``, then the ingredient blocks (tomato, cucumber,
  lettuce, cheese; each kept with p = 0.85, at least two, in random order; a block is
  ``cut_<x> place_<x>``, repeated once with p = 0.25, as 50Salads' subjects cut and place in
  several rounds), then ``add_dressing mix`` (or ``mix add_dressing mix`` with p = 0.3), then
  ``serve``. ``background`` (idle) opens and closes every video and falls between two actions
  with p = 0.3. 13 classes, ~15-25 segments and ~2.5-3.5 minutes per video.
* **Durations.** Gamma-distributed around a mean per class (cutting 15-30 s, placing ~6 s, ...;
  coefficient of variation ``1/sqrt(duration_shape)``), times a per-subject speed factor
  (log-normal, σ = 0.15): slow and fast subjects.
* **Features** ``(feature, time)``: the class signal is a *verb* vector plus an *object* vector
  (so ``cut_tomato`` is closer to ``cut_cucumber`` and to ``place_tomato`` than to ``mix``), a
  drift along a class direction as the action progresses, and, for cutting and mixing, a
  periodic motion component (1.5-3 Hz). The clean signal is smoothed over ``transition_s`` (an
  action blends into the next, so boundaries are ambiguous in the features too), mapped
  through a per-subject gain and offset (subjects look different), and added to AR(1) noise
  with correlation time ``noise_corr_s`` (slow, camera-like drift) plus white noise.
* **Splits.** Folds by subject, as 50Salads' 5-fold protocol: subject ``i`` is tested in fold
  ``i % n_folds + 1`` (MS-TCN numbers folds from 1), so no test subject is seen in training.

Everything is deterministic per ``seed``. Durations are in seconds, so ``frame_rate`` only sets
the sampling; 30 fps matches the ``--fps`` default of the experiment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import convolve1d
from scipy.signal import lfilter

from softloc._checks import check_frame_rate, check_int, check_real
from softloc.data.mstcn import MSTCNVideo, write_mstcn

__all__ = [
    "SEGMENT_CLASSES",
    "SegmentVideo",
    "generate_segment_dataset",
    "sample_script",
    "synthesize_segment_videos",
]

_INGREDIENTS = ("tomato", "cucumber", "lettuce", "cheese")
#: Class names in index order (``mapping.txt``).
SEGMENT_CLASSES = (
    "background",
    "take_bowl",
    *(f"{verb}_{x}" for x in _INGREDIENTS for verb in ("cut", "place")),
    "add_dressing",
    "mix_ingredients",
    "serve_salad",
)
# class -> (verb, object, mean duration in seconds)
_ACTIONS = {
    "background": ("idle", "none", 4.0),
    "take_bowl": ("take", "bowl", 5.0),
    "cut_tomato": ("cut", "tomato", 25.0),
    "place_tomato": ("place", "tomato", 6.0),
    "cut_cucumber": ("cut", "cucumber", 30.0),
    "place_cucumber": ("place", "cucumber", 6.0),
    "cut_lettuce": ("cut", "lettuce", 20.0),
    "place_lettuce": ("place", "lettuce", 7.0),
    "cut_cheese": ("cut", "cheese", 15.0),
    "place_cheese": ("place", "cheese", 5.0),
    "add_dressing": ("add", "dressing", 10.0),
    "mix_ingredients": ("mix", "bowl", 15.0),
    "serve_salad": ("serve", "bowl", 8.0),
}
_PERIODIC_VERBS = ("cut", "mix")


@dataclass(frozen=True)
class SegmentVideo:
    """One generated video: features ``(feature, time)`` float32, labels ``(time,)`` int64."""

    name: str
    subject: int
    features: np.ndarray
    labels: np.ndarray


def sample_script(rng: np.random.Generator, *, p_pause: float = 0.3) -> list[str]:
    """Draw one action script (class names in order) from the salad grammar (module docstring)."""
    kept = [x for x in _INGREDIENTS if rng.random() < 0.85]
    while len(kept) < 2:
        extra = [x for x in _INGREDIENTS if x not in kept]
        kept.append(extra[int(rng.integers(len(extra)))])
    order = [kept[i] for i in rng.permutation(len(kept))]
    actions = ["take_bowl"]
    for x in order:
        rounds = 2 if rng.random() < 0.25 else 1
        actions += [f"cut_{x}", f"place_{x}"] * rounds
    if rng.random() < 0.3:
        actions += ["mix_ingredients", "add_dressing", "mix_ingredients"]
    else:
        actions += ["add_dressing", "mix_ingredients"]
    actions.append("serve_salad")
    script = ["background"]
    for i, a in enumerate(actions):
        if i and rng.random() < p_pause:
            script.append("background")
        script.append(a)
    script.append("background")
    return script


class _Appearance:
    """Verb/object vectors, drift and motion directions of every class (one per dataset)."""

    def __init__(self, rng: np.random.Generator, n_features: int, object_scale: float):
        d = n_features
        verbs = sorted({v for v, _, _ in _ACTIONS.values()})
        objects = sorted({o for _, o, _ in _ACTIONS.values()})
        verb_vec = {v: rng.standard_normal(d) for v in verbs}
        obj_vec = {o: object_scale * rng.standard_normal(d) for o in objects}
        self.mean = np.stack([verb_vec[_ACTIONS[c][0]] + obj_vec[_ACTIONS[c][1]]
                              for c in SEGMENT_CLASSES])  # (C, D)
        self.drift = 0.6 * rng.standard_normal((len(SEGMENT_CLASSES), d))  # (C, D)
        self.motion = np.stack([
            rng.standard_normal(d) if _ACTIONS[c][0] in _PERIODIC_VERBS else np.zeros(d)
            for c in SEGMENT_CLASSES])  # (C, D)
        self.motion_hz = rng.uniform(1.5, 3.0, size=len(SEGMENT_CLASSES))


def _durations_frames(rng, script, speed, rate, shape) -> np.ndarray:
    means = np.array([_ACTIONS[c][2] for c in script]) * speed
    seconds = rng.gamma(shape, means / shape)
    return np.maximum(1, np.round(seconds * rate)).astype(np.int64)


def _clean_signal(app: _Appearance, labels: np.ndarray, bounds: np.ndarray, rate: float,
                  transition_s: float) -> np.ndarray:
    """(T, D) noise-free class signal with within-action drift and periodic motion."""
    t = np.arange(labels.size)
    starts, ends = bounds[:-1], bounds[1:]
    seg_of = np.repeat(np.arange(starts.size), ends - starts)
    phase = (t - starts[seg_of]) / np.maximum(ends[seg_of] - starts[seg_of] - 1, 1)  # 0..1
    x = app.mean[labels] + (phase - 0.5)[:, None] * app.drift[labels]
    x += np.sin(2 * np.pi * app.motion_hz[labels] * t / rate)[:, None] * app.motion[labels]
    width = max(1, int(round(transition_s * rate)))
    if width > 1:
        window = np.hanning(width + 2)[1:-1]
        x = convolve1d(x, window / window.sum(), axis=0, mode="nearest")
    return x


def _noise(rng, n_frames: int, d: int, rate: float, std: float, corr_s: float) -> np.ndarray:
    """(T, D) AR(1) noise of stationary std ``std`` and time constant ``corr_s``, plus white."""
    rho = float(np.exp(-1.0 / (corr_s * rate))) if corr_s > 0 else 0.0
    white = rng.standard_normal((n_frames, d))
    ar = lfilter([np.sqrt(1 - rho**2)], [1, -rho], rng.standard_normal((n_frames, d)), axis=0)
    return std * (ar + white) / np.sqrt(2.0)


def synthesize_segment_videos(
    *,
    n_subjects: int = 5,
    videos_per_subject: int = 4,
    frame_rate: float = 30.0,
    n_features: int = 64,
    noise_std: float = 2.5,
    noise_corr_s: float = 1.0,
    transition_s: float = 1.0,
    object_scale: float = 0.6,
    subject_scale: float = 0.4,
    duration_shape: float = 8.0,
    seed: int = 0,
) -> list[SegmentVideo]:
    """Generate the videos in memory (see the module docstring for the model).

    Args:
        n_subjects: number of subjects (>= 1).
        videos_per_subject: videos per subject (>= 1).
        frame_rate: frames per second of features and labels (> 0).
        n_features: feature dimension D (>= 1).
        noise_std: standard deviation of the noise per feature (>= 0); the class vectors have
            unit variance per feature, so this sets how much a single frame says (at the
            default a frame alone is often ambiguous, a few seconds of context are not).
        noise_corr_s: time constant of the correlated half of the noise, seconds (>= 0).
        transition_s: width of the blend between consecutive actions, seconds (>= 0).
        object_scale: size of the object vectors relative to the verb vectors (>= 0); smaller
            makes ``cut_tomato`` and ``cut_cucumber`` harder to tell apart.
        subject_scale: size of the per-subject gain and offset (>= 0).
        duration_shape: gamma shape of the durations (> 0); CV = 1/sqrt(shape).
        seed: everything is deterministic per seed.

    Returns:
        The videos, named ``s<subject>-v<index>``, subject-major.
    """
    fn = "synthesize_segment_videos"
    n_subjects = check_int(fn, "n_subjects", n_subjects, minimum=1)
    videos_per_subject = check_int(fn, "videos_per_subject", videos_per_subject, minimum=1)
    rate = check_frame_rate(fn, frame_rate)
    d = check_int(fn, "n_features", n_features, minimum=1)
    noise_std = check_real(fn, "noise_std", noise_std, minimum=0.0)
    noise_corr_s = check_real(fn, "noise_corr_s", noise_corr_s, minimum=0.0, unit=" seconds")
    transition_s = check_real(fn, "transition_s", transition_s, minimum=0.0, unit=" seconds")
    object_scale = check_real(fn, "object_scale", object_scale, minimum=0.0)
    subject_scale = check_real(fn, "subject_scale", subject_scale, minimum=0.0)
    duration_shape = check_real(fn, "duration_shape", duration_shape, positive=True)
    seed = check_int(fn, "seed", seed, minimum=0)
    root_rng = np.random.default_rng(seed)
    app = _Appearance(root_rng, d, object_scale)
    index = {c: i for i, c in enumerate(SEGMENT_CLASSES)}
    videos = []
    for s in range(n_subjects):
        srng = np.random.default_rng([seed, s])
        speed = float(np.exp(0.15 * srng.standard_normal()))
        gain = np.eye(d) + subject_scale / np.sqrt(d) * srng.standard_normal((d, d))
        offset = subject_scale * srng.standard_normal(d)
        for v in range(videos_per_subject):
            vrng = np.random.default_rng([seed, s, v])
            script = sample_script(vrng)
            frames = _durations_frames(vrng, script, speed, rate, duration_shape)
            bounds = np.concatenate([[0], np.cumsum(frames)])
            labels = np.repeat([index[c] for c in script], frames).astype(np.int64)
            clean = _clean_signal(app, labels, bounds, rate, transition_s)
            x = clean @ gain.T + offset + _noise(vrng, labels.size, d, rate, noise_std,
                                                 noise_corr_s)
            videos.append(SegmentVideo(f"s{s + 1:02d}-v{v + 1}", s,
                                       x.T.astype(np.float32), labels))  # (T, D) -> (D, T)
    return videos


def generate_segment_dataset(
    root: str | os.PathLike,
    *,
    n_subjects: int = 5,
    videos_per_subject: int = 4,
    n_folds: int = 5,
    frame_rate: float = 30.0,
    n_features: int = 64,
    noise_std: float = 2.5,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Generate videos (:func:`synthesize_segment_videos`) and write them in the MS-TCN layout.

    Writes ``mapping.txt``, ``features/``, ``groundTruth/`` and ``splits/{train,test}.split<k>
    .bundle`` for k = 1..``n_folds``; fold k tests the subjects ``i`` with ``i % n_folds ==
    k - 1``. Read it back with ``softloc.data.mstcn.load_mstcn(root, split=k,
    frame_rate=frame_rate)``.

    Args:
        root: output folder.
        n_subjects, videos_per_subject, frame_rate, n_features, noise_std, seed: as
            :func:`synthesize_segment_videos` (other settings at their defaults).
        n_folds: number of cross-validation folds (1 <= n_folds <= n_subjects).
        overwrite: replace existing files (default: refuse).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    fn = "generate_segment_dataset"
    n_subjects = check_int(fn, "n_subjects", n_subjects, minimum=1)
    n_folds = check_int(fn, "n_folds", n_folds, minimum=1)
    if n_folds > n_subjects:
        raise ValueError(
            f"{fn}: `n_folds` must be <= n_subjects={n_subjects} (folds are by subject), "
            f"got {n_folds}"
        )
    videos = synthesize_segment_videos(
        n_subjects=n_subjects, videos_per_subject=videos_per_subject, frame_rate=frame_rate,
        n_features=n_features, noise_std=noise_std, seed=seed,
    )
    splits = {k: [v.name for v in videos if v.subject % n_folds == k - 1]
              for k in range(1, n_folds + 1)}
    return write_mstcn(
        root,
        classes=SEGMENT_CLASSES,
        videos=[MSTCNVideo(v.name, v.features, v.labels) for v in videos],
        splits=splits,
        overwrite=overwrite,
    )
