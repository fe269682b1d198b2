"""Training windows: cached power-mel features per file and rate factor, and a torch Dataset.

Conventions:
    * A *version* of a training file is its power mel at one time factor: the file itself at a
      rate factor of ``rate_factors``, or one of ``renditions`` audio-augmented copies
      (:func:`softloc.data.augment.augment_window` applied to the whole file: a rate change
      drawn from U[7/8, 9/8) or a time-stretch, pitch, EQ, reverb, gain, noise). Each version has
      one *time factor* ``s`` (original time = version time x ``s``), so windows, counts and
      frame targets of every version follow the same mapping below. Renditions are computed once
      per (file, seed, index, settings) and cached like the other features: the audio work costs
      ``renditions`` x the front end once, not once per window (cheap on 2 cores), and window
      draws stay deterministic per (seed, epoch, item).
    * A *rate factor* ``s`` plays a file ``s`` times faster (tempo and pitch together): the audio
      is read as if sampled at ``sr * s`` and resampled to ``sr`` with soxr, so an event at ``t``
      seconds of the original sits at ``t / s`` seconds, i.e. at frame ``round(t * frame_rate / s)``
      of the factor-``s`` spectrogram. This is the sample-rate augmentation of the SoftLoc drum
      experiments (factors in [7/8, 9/8]).
    * A window starting at ``start_s`` (original seconds) begins at frame
      ``f0 = round(start_s * frame_rate / s)`` and holds ``length`` valid frames; an event belongs
      to the window when its frame minus ``f0`` lies in ``[0, length)``.
    * Items are dicts of tensors (see :class:`WindowDataset`); frames beyond ``length`` are zero.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from softloc._io import atomic_save
from softloc.data.augment import AugmentSettings, augment_window
from softloc.data.formats import CountWindow
from softloc.data.layout import DatasetIndex
from softloc.features import FrontEndConfig, load_audio, mel_power, resample
from softloc.timebase import n_inner_windows, padded_window_frames

__all__ = [
    "FeatureStore",
    "WindowDataset",
    "collate",
    "default_max_frames",
    "min_time_factor",
    "prepare_features",
]

# Bump when the cached quantity changes meaning, so old caches are not reused.
_CACHE_VERSION = 1


@dataclass
class FeatureStore:
    """Power mel spectrograms ``(n_mels, frames)`` float32 per ``(stem, rate factor)``.

    Built by :func:`prepare_features`; arrays loaded from the cache are memory-mapped.
    """

    cfg: FrontEndConfig
    rate_factors: tuple[float, ...]
    mels: dict[tuple[str, float], np.ndarray] = field(repr=False)
    seconds_computing: float = 0.0
    n_computed: int = 0
    n_cached: int = 0
    #: stem -> ``[(time_factor, mel)]``: the audio-augmented renditions of the file.
    renditions: dict[str, list[tuple[float, np.ndarray]]] = field(default_factory=dict,
                                                                   repr=False)

    @property
    def frame_rate(self) -> float:
        return self.cfg.frame_rate

    @property
    def stems(self) -> list[str]:
        return sorted({s for s, _ in self.mels})

    def get(self, stem: str, factor: float = 1.0) -> np.ndarray:
        """The ``(n_mels, frames)`` power mel of ``stem`` at rate ``factor``."""
        try:
            return self.mels[(stem, float(factor))]
        except KeyError:
            raise KeyError(f"{type(self).__name__}.get: no features for stem {stem!r} at rate "
                           "factor "
                           f"{factor}; prepared factors {self.rate_factors}, "
                           f"{len(self.stems)} stems") from None


def _cache_key(path: Path, cfg: FrontEndConfig, factor: float) -> str:
    st = path.stat()
    blob = json.dumps({"v": _CACHE_VERSION, "cfg": cfg.to_dict(), "factor": repr(float(factor)),
                       "path": str(path.resolve()), "size": st.st_size,
                       "mtime_ns": st.st_mtime_ns}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _rendition_key(path: Path, cfg: FrontEndConfig, settings: AugmentSettings, seed: int,
                   k: int) -> str:
    st = path.stat()
    blob = json.dumps({"v": _CACHE_VERSION, "cfg": cfg.to_dict(), "augment": asdict(settings),
                       "seed": int(seed), "k": int(k), "path": str(path.resolve()),
                       "size": st.st_size, "mtime_ns": st.st_mtime_ns}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _rendition_rng(seed: int, stem: str, k: int) -> np.random.Generator:
    """The generator of rendition ``k`` of ``stem``: a function of (seed, stem, k) only."""
    return np.random.default_rng([int(seed), zlib.crc32(stem.encode()), int(k)])


def min_time_factor(rate_factors: Sequence[float], augment: AugmentSettings | None = None, *,
                    renditions: int = 0) -> float:
    """The smallest time factor a training window can have (it sets the padded length).

    Args:
        rate_factors: the precomputed rate factors.
        augment: the rendition settings (their rate / stretch lower bounds count when the step
            can happen and ``renditions > 0``).
        renditions: renditions per file.
    """
    lows = [float(f) for f in rate_factors]
    if augment is not None and renditions > 0:
        if augment.p_stretch > 0:
            lows.append(float(augment.stretch_range[0]))
        if augment.p_stretch < 1 and augment.p_rate > 0:
            lows.append(float(augment.rate_range[0]))
    return min(lows)


def _check_factors(fn: str, rate_factors: Sequence[float]) -> tuple[float, ...]:
    factors = tuple(float(f) for f in rate_factors)
    if not factors or any(not (0.5 <= f <= 2.0) for f in factors):
        raise ValueError(f"{fn}: `rate_factors` must be a non-empty list of numbers in [0.5, 2], "
                         f"got {list(rate_factors)}")
    if len(set(factors)) != len(factors):
        raise ValueError(f"{fn}: `rate_factors` must be distinct, got {list(rate_factors)}")
    return factors


def prepare_features(index: DatasetIndex, cfg: FrontEndConfig, *,
                     cache_dir: str | os.PathLike | None = None,
                     stems: Sequence[str] | None = None,
                     rate_factors: Sequence[float] = (1.0,),
                     augment: AugmentSettings | None = None, renditions: int = 0,
                     augment_stems: Sequence[str] | None = None,
                     seed: int = 0) -> FeatureStore:
    """Compute (or load from the cache) the power mel of every stem at every rate factor, and of
    ``renditions`` audio-augmented renditions of each of ``augment_stems``.

    Args:
        index: the dataset (:func:`softloc.data.load_dataset`).
        cfg: front-end settings.
        cache_dir: where ``<stem>.<key>.npy`` files are kept; the key hashes ``cfg``, the factor
            and the audio file's path, size and modification time, so a changed setting or file is
            recomputed. ``None``: no cache.
        stems: which stems (default: all of ``index.stems``).
        rate_factors: playback-rate factors to precompute (default ``(1.0,)``; e.g.
            ``(7/8, 15/16, 1, 17/16, 9/8)`` for the SoftLoc drum augmentation).
        augment: the augmentation chain of the renditions (default
            :class:`~softloc.data.augment.AugmentSettings`: rate U[7/8, 9/8) plus colour).
        renditions: augmented renditions per stem of ``augment_stems`` (default 0: none).
            Rendition ``k`` of a stem is :func:`~softloc.data.augment.augment_window` of the
            whole file with a generator seeded by ``(seed, crc32(stem), k)``, so it does not
            depend on which other stems are prepared.
        augment_stems: the stems to augment (default ``stems``; pass the training split).
        seed: seed of the renditions.

    Returns:
        a :class:`FeatureStore`.

    Raises:
        ValueError: unknown stems, bad factors or a negative ``renditions``; audio errors name
            the file.
    """
    fn = "prepare_features"
    if not isinstance(cfg, FrontEndConfig):
        raise TypeError(f"{fn}: `cfg` must be a FrontEndConfig, got {type(cfg).__name__}")
    factors = _check_factors(fn, rate_factors)
    stems = list(index.stems if stems is None else stems)
    unknown = sorted(set(stems) - set(index.stems))
    if unknown:
        raise ValueError(f"{fn}: unknown stems {unknown[:5]}; expected stems of {index.root}")
    if isinstance(renditions, bool) or not isinstance(renditions, int) or renditions < 0:
        raise ValueError(f"{fn}: `renditions` must be an int >= 0, got {renditions!r}")
    settings = AugmentSettings() if augment is None else augment
    if not isinstance(settings, AugmentSettings):
        raise TypeError(f"{fn}: `augment` must be an AugmentSettings, got "
                        f"{type(settings).__name__}")
    to_augment = set(stems if augment_stems is None else augment_stems) if renditions else set()
    if to_augment - set(stems):
        raise ValueError(f"{fn}: `augment_stems` must be among `stems`; not: "
                         f"{sorted(to_augment - set(stems))[:5]}")
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(cfg=cfg, rate_factors=factors, mels={})
    t0 = time.perf_counter()
    for stem in stems:
        path = Path(index.audio_paths[stem])
        audio = None
        for factor in factors:
            target = None
            if cache is not None:
                target = cache / f"{stem}.{_cache_key(path, cfg, factor)}.npy"
                if target.is_file():
                    store.mels[(stem, factor)] = np.load(target, mmap_mode="r")
                    store.n_cached += 1
                    continue
            if audio is None:
                audio = load_audio(path, cfg.sample_rate)
            x = resample(audio, cfg.sample_rate * factor, cfg.sample_rate)
            mel = mel_power(x, cfg)[0].numpy()
            if target is not None:
                atomic_save(target, lambda f, mel=mel: np.save(f, mel))
            store.mels[(stem, factor)] = mel
            store.n_computed += 1
        if stem in to_augment:
            loaded = [audio]

            def read(path: Path = path, loaded: list = loaded) -> np.ndarray:
                if loaded[0] is None:
                    loaded[0] = load_audio(path, cfg.sample_rate)
                return loaded[0]

            store.renditions[stem] = [_rendition(store, path, stem, k, settings, seed, cache, read)
                                      for k in range(renditions)]
    store.seconds_computing = time.perf_counter() - t0
    return store


def _rendition(store: FeatureStore, path: Path, stem: str, k: int, settings: AugmentSettings,
               seed: int, cache: Path | None,
               audio: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    """``(time_factor, mel)`` of rendition ``k`` of ``stem`` (from the cache when there)."""
    cfg = store.cfg
    target = None
    if cache is not None:
        target = cache / f"{stem}.aug{k}.{_rendition_key(path, cfg, settings, seed, k)}.npz"
        if target.is_file():
            with np.load(target) as z:
                store.n_cached += 1
                return float(z["time_factor"]), z["mel"]
    x, _, info = augment_window(audio(), rng=_rendition_rng(seed, stem, k),
                                sample_rate=cfg.sample_rate, settings=settings)
    mel = mel_power(x.astype(np.float32), cfg)[0].numpy()
    factor = float(info["time_factor"])
    if target is not None:
        atomic_save(target, lambda f: np.savez(f, mel=mel, time_factor=factor))
    store.n_computed += 1
    return factor, mel


def default_max_frames(cfg: FrontEndConfig, *, window_s: float = 1.5,
                       min_rate_factor: float = 7 / 8) -> int:
    """Frames of the padded window: ``softloc.timebase.padded_window_frames`` at the front end's
    frame rate (345 for the drum defaults, 1.5 s and factor 7/8)."""
    return padded_window_frames(window_s, cfg.frame_rate, min_rate_factor=min_rate_factor)


@dataclass(frozen=True)
class _Item:
    stem: str
    start_s: float
    duration_s: float
    counts: tuple[int, ...] | None  # counts mode: from counts.csv


class WindowDataset(Dataset):
    """Windows of power mel for training and validation (map-style, ``len`` = number of windows).

    Modes:
        * ``labels="counts"``: one item per counts.csv window of ``stems`` (LoCo); counts come
          from counts.csv, targets are unknown (zeros, ``has_targets=False``).
        * ``labels="onsets"``: windows of ``window_s`` every ``hop_s`` over each annotated file;
          counts and the frame targets come from the events (SoftLoc; pass an index made with
          :meth:`DatasetIndex.with_events` to train on perturbed timestamps).

    Augmentation (only when ``augment=True``; deterministic per ``seed``, item and epoch):
        * a version of the file drawn uniformly from its rate factors ``rate_factors`` (default:
          all factors of ``store``; without augmentation factor 1 is used, which must be in the
          store) and its audio-augmented renditions in ``store`` (:func:`prepare_features`);
          the window, its counts and its targets follow the version's time factor;
        * ``stack_prob``: probability of mixing in a second random window (power mels summed,
          counts and targets added; SoftLoc extract stacking);
        * onsets mode: the window start jitters by up to ``hop_s / 2`` and the window length is
          drawn uniformly in ``[min_crop_s, window_s]``, so the model cannot learn where a window
          ends (LoCo §4.5). In counts mode lengths vary through the rate factor only.

    Items are dicts:
        ``"mel"``: float32 ``(n_mels, max_frames)`` power mel, zero beyond ``length``;
        ``"length"``: int64 ``()`` valid frames;
        ``"counts"``: int64 ``(n_classes,)`` events per class in the window;
        ``"targets"``: float32 ``(n_classes, max_frames)``, 1 at each event's frame (2 if two
        events share a frame), zeros when unknown;
        ``"has_targets"``: bool ``()``; ``"sigma_frames"``: float32 ``()`` label softness
        (``inf`` in counts mode); ``"rate_factor"``: float32 ``()`` the version's time factor;
        ``"index"``: int64 ``()``.

    Args:
        index: the dataset; its ``classes`` are the class axis.
        store: features from :func:`prepare_features` covering ``stems``.
        stems: stems to draw windows from (e.g. ``index.splits["train"]``).
        labels: ``"counts"`` or ``"onsets"``.
        window_s, hop_s: onsets-mode windows (default 1.5 s every 0.5 s).
        max_frames: padded length (default :func:`default_max_frames` for factor 7/8, or for the
            smallest time factor of any version if that is smaller, so training and validation
            sets agree).
        augment, rate_factors, stack_prob, min_crop_s: see above (``min_crop_s`` default
            ``window_s / 2``).
        variable_length: onsets mode with ``augment``: draw crop lengths (default True); False
            keeps every crop ``window_s`` long (``min_crop_s`` is then ignored).
        sigma_frames: label softness in frames put in every item (onsets mode; default ``inf``;
            0 means exact frames, the SoftLoc eq. 5 limit).
        seed: augmentation seed.

    Raises:
        ValueError: bad arguments, stems without features or annotations, a count window longer
            than ``max_frames`` allows at the smallest time factor of its versions, or a class
            without a count in a counts.csv window.
    """

    def __init__(self, index: DatasetIndex, store: FeatureStore, *, stems: Sequence[str],
                 labels: str = "counts", window_s: float = 1.5, hop_s: float = 0.5,
                 max_frames: int | None = None, augment: bool = False,
                 rate_factors: Sequence[float] | None = None, stack_prob: float = 0.0,
                 min_crop_s: float | None = None, variable_length: bool = True,
                 sigma_frames: float = math.inf, seed: int = 0) -> None:
        fn = "WindowDataset"
        if labels not in ("counts", "onsets"):
            raise ValueError(f"{fn}: `labels` must be 'counts' or 'onsets', got {labels!r}")
        if not (window_s > 0 and hop_s > 0):
            raise ValueError(f"{fn}: `window_s` and `hop_s` must be > 0, got {window_s}, {hop_s}")
        if not 0.0 <= stack_prob <= 1.0:
            raise ValueError(f"{fn}: `stack_prob` must lie in [0, 1], got {stack_prob}")
        min_crop_s = window_s / 2 if min_crop_s is None else float(min_crop_s)
        if not variable_length:
            min_crop_s = float(window_s)
        if not 0 < min_crop_s <= window_s:
            raise ValueError(f"{fn}: `min_crop_s` must lie in (0, window_s={window_s}], "
                             f"got {min_crop_s}")
        if not (sigma_frames >= 0):
            raise ValueError(f"{fn}: `sigma_frames` must be >= 0 (0: exact frames, inf: counts "
                             f"only), got {sigma_frames}")
        if augment:
            factors = store.rate_factors if rate_factors is None else \
                _check_factors(fn, rate_factors)
        else:
            factors = (1.0,)
        missing = [f for f in factors if f not in store.rate_factors]
        if missing:
            raise ValueError(f"{fn}: rate factors {missing} are not in the feature store "
                             f"(prepared: {store.rate_factors}); pass them to prepare_features")
        stems = list(stems)
        if not stems:
            raise ValueError(f"{fn}: `stems` is empty")
        no_feat = [s for s in stems if any((s, f) not in store.mels for f in factors)]
        if no_feat:
            raise ValueError(f"{fn}: no features for stems {no_feat[:5]}; pass them to "
                             "prepare_features")
        self.index, self.store, self.labels = index, store, labels
        self.classes = tuple(index.classes)
        self.window_s, self.hop_s, self.min_crop_s = float(window_s), float(hop_s), min_crop_s
        self.augment, self.rate_factors, self.stack_prob = bool(augment), factors, float(stack_prob)
        self.sigma_frames, self.seed, self.epoch = float(sigma_frames), int(seed), 0
        # stem -> [(time_factor, mel)]: what a window of the stem may be cut from
        self._versions = {s: [(f, store.get(s, f)) for f in factors]
                          + (list(store.renditions.get(s, [])) if augment else [])
                          for s in stems}
        slowest = {s: min(f for f, _ in v) for s, v in self._versions.items()}
        fr = store.frame_rate
        self.max_frames = (default_max_frames(store.cfg, window_s=window_s,
                                              min_rate_factor=min(7 / 8, *slowest.values()))
                           if max_frames is None else int(max_frames))
        if self.max_frames < 1:
            raise ValueError(f"{fn}: `max_frames` must be >= 1, got {max_frames}")
        self._events: dict[str, dict[str, np.ndarray]] = {}
        items: list[_Item] = []
        if labels == "counts":
            for stem in stems:
                for w in index.count_windows.get(stem, []):
                    absent = [c for c in self.classes if c not in w.counts]
                    if absent:
                        raise ValueError(
                            f"{fn}: {index.root / 'counts.csv'}:{w.line}: window ({stem}, "
                            f"{w.start_s:g}, {w.end_s:g}) has no count for {absent}; counts.csv "
                            f"must count every class of the model {list(self.classes)}")
                    low = slowest[stem]
                    n = int(round(w.end_s * fr / low)) - int(round(w.start_s * fr / low))
                    if n > self.max_frames:
                        raise ValueError(
                            f"{fn}: {index.root / 'counts.csv'}:{w.line}: window ({stem}, "
                            f"{w.start_s:g}, {w.end_s:g}) spans {n} frames at rate factor "
                            f"{low:g}; expected at most max_frames={self.max_frames}")
                    counts = tuple(int(w.counts[c]) for c in self.classes)
                    self._check_count_fits(stem, w, counts)
                    items.append(_Item(stem, w.start_s, w.end_s - w.start_s, counts))
            if not items:
                raise ValueError(f"{fn}: no counts.csv windows for the given stems")
        else:
            for stem in stems:
                events = index.events.get(stem)
                if events is None:
                    raise ValueError(f"{fn}: stem {stem!r} has no annotation file; "
                                     "labels='onsets' needs timestamps for every stem")
                self._events[stem] = {c: np.array([t for t, lab in events if lab == c],
                                                  dtype=np.float64) for c in self.classes}
                duration = index.durations_s[stem]
                for k in range(n_inner_windows(duration, window_s, hop_s)):
                    items.append(_Item(stem, k * hop_s, min(window_s, duration), None))
        self._items = items

    def _check_count_fits(self, stem: str, w: CountWindow, counts: tuple[int, ...]) -> None:
        """A window cannot hold more events than frames (the count distribution of LoCo eq. 6
        has no mass beyond T): refuse such a counts.csv window before training, naming it."""
        fr = self.store.frame_rate
        versions = self._versions[stem] if self.augment else self._versions[stem][:1]
        frames, factor = min(
            (max(0, min(int(round(w.end_s * fr / f)), mel.shape[1])
                 - int(round(w.start_s * fr / f))), f) for f, mel in versions)
        frames = min(frames, self.max_frames)
        for c, k in zip(self.classes, counts, strict=True):
            if k > frames:
                raise ValueError(
                    f"WindowDataset: {self.index.root / 'counts.csv'}:{w.line}: window ({stem}, "
                    f"{w.start_s:g}, {w.end_s:g}) counts {k} events of class {c!r}, but it has "
                    f"{frames} frames (rate factor {factor:g}), so at most {frames} events "
                    "(one per frame): is the count or the window wrong?")

    def __len__(self) -> int:
        return len(self._items)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (call once per epoch; items stay deterministic)."""
        self.epoch = int(epoch)

    def describe(self, i: int) -> tuple[str, float, float]:
        """``(stem, start_s, duration_s)`` of item ``i`` before augmentation."""
        it = self._items[i]
        return it.stem, it.start_s, it.duration_s

    def _window(self, i: int, rng: np.random.Generator):
        it = self._items[i]
        versions = self._versions[it.stem]
        factor, mel_full = versions[int(rng.integers(len(versions)))] if self.augment \
            else versions[0]
        start_s, duration_s = it.start_s, it.duration_s
        if self.augment and it.counts is None:
            duration_s = float(rng.uniform(self.min_crop_s, it.duration_s))
            file_s = self.index.durations_s[it.stem]
            jitter = float(rng.uniform(-self.hop_s / 2, self.hop_s / 2))
            start_s = min(max(0.0, start_s + jitter), max(0.0, file_s - duration_s))
        fr = self.store.frame_rate
        f0 = int(round(start_s * fr / factor))
        f1 = int(round((start_s + duration_s) * fr / factor))
        length = max(0, min(f1, mel_full.shape[1]) - f0, 0)
        length = min(length, self.max_frames)
        mel = np.zeros((mel_full.shape[0], self.max_frames), dtype=np.float32)
        mel[:, :length] = mel_full[:, f0:f0 + length]
        n_classes = len(self.classes)
        targets = np.zeros((n_classes, self.max_frames), dtype=np.float32)
        if it.counts is not None:
            counts = np.array(it.counts, dtype=np.int64)
        else:
            counts = np.zeros(n_classes, dtype=np.int64)
            for c, name in enumerate(self.classes):
                frames = np.floor(self._events[it.stem][name] * fr / factor + 0.5).astype(
                    np.int64) - f0
                frames = frames[(frames >= 0) & (frames < length)]
                np.add.at(targets[c], frames, 1.0)
                counts[c] = len(frames)
        return mel, length, counts, targets, factor

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self._items):
            raise IndexError(f"WindowDataset: index {i} out of range [0, {len(self._items)})")
        rng = np.random.default_rng([self.seed, self.epoch, i])
        mel, length, counts, targets, factor = self._window(i, rng)
        if self.augment and self.stack_prob > 0 and rng.random() < self.stack_prob:
            j = int(rng.integers(len(self._items)))
            mel2, length2, counts2, targets2, _ = self._window(j, rng)
            mel = mel + mel2
            length = max(length, length2)
            counts = counts + counts2
            targets = targets + targets2
        return {
            "mel": torch.from_numpy(mel),
            "length": torch.tensor(length, dtype=torch.int64),
            "counts": torch.from_numpy(counts),
            "targets": torch.from_numpy(targets),
            "has_targets": torch.tensor(self.labels == "onsets"),
            "sigma_frames": torch.tensor(self.sigma_frames if self.labels == "onsets"
                                         else math.inf, dtype=torch.float32),
            "rate_factor": torch.tensor(factor, dtype=torch.float32),
            "index": torch.tensor(i, dtype=torch.int64),
        }


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack item dicts into a batch: ``mel (B, n_mels, T)``, ``targets (B, C, T)``,
    ``counts (B, C)``, ``length (B,)`` ... (``torch.utils.data.default_collate``)."""
    return default_collate(items)
