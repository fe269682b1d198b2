"""Detect events in whole inputs with a trained network: :class:`Detector` (no Lightning here).

The pipeline is a chain of explicit stages (madmom-style processors)::

    source --read--> signal --features--> (n_features, frames) --windows + model + sigmoid-->
    p(t) (class, frames) --TTA average--> --threshold_events--> [(time_s, label, score)]

* **Input stage** (:class:`InputStage`): turns what a user has into the network's input for
  the whole file. :class:`AudioInput` (kind ``"audio"``): an audio file or an
  ``(array, sample_rate)`` tuple -> mono audio at the front end's rate -> power mel
  ``(n_mels, frames)`` (``softloc.features``). The model file records its input kind, and
  :data:`INPUT_STAGES` maps the kind to the stage class, so a new input (feature sequences,
  sensor signals, images) is one subclass and one entry there; :class:`Detector` does not change.
* **Network**: overlapping windows of ``data.window_s`` at ``inference.hop_s`` through the
  network, which returns LOGITS; ``torch.sigmoid`` gives p(t) per window, overlap-averaged into
  one ``(class, frames)`` series (:func:`file_probabilities`, ``softloc.decode.stitch_windows``).
* **Test-time augmentation** (optional, ``inference.tta_factors``): the signal is also played
  faster/slower (:meth:`InputStage.speed_up`), its p(t) mapped back to the original time axis,
  and all versions averaged.
* **Decoding**: one event per run of ``p(t) > threshold`` (per-class thresholds allowed), at the
  run's peak, stamped ``frame / frame_rate + time_offset_s + class_offsets_s[c]``
  (``softloc.decode.threshold_events``).

A run is self-contained: ``RUN/model.pt`` (``softloc.inference.model_file``) holds the network's
name, arguments and weights, its input kind and the resolved configuration (classes, front end,
threshold, calibrated offsets), so ``Detector.load(RUN)`` rebuilds everything without training
code. ``Detector.load()`` loads the drum model shipped in ``softloc/pretrained/``.

Writing an input stage (the interface): subclass :class:`InputStage`, set ``kind``, implement

* ``frame_rate`` (property): frames per second of the network's output;
* ``read(source) -> signal``: a file path or an in-memory object; raise ``TypeError`` /
  ``ValueError`` naming ``Detector.detect`` for what it cannot read;
* ``features(signal) -> torch.Tensor``: the network input of the whole signal,
  ``(n_features, frames)``;
* optionally ``speed_up(signal, factor)`` for test-time augmentation, and ``probabilities(model,
  features)`` when the network does not run on windows of frames (an image model runs once);

then add ``INPUT_STAGES[kind] = YourStage`` and save the model with
``save_model_file(..., input_kind=kind)``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from softloc.config import InferenceConfig, RunConfig
from softloc.decode import Events, stitch_windows, threshold_events
from softloc.features import load_audio, mel_power, resample
from softloc.inference.model_file import read_model_file, resolve_model_path
from softloc.timebase import duration_frames, n_covering_windows

__all__ = [
    "AudioInput",
    "Detector",
    "INPUT_STAGES",
    "InputStage",
    "MAX_ABS_SAMPLE",
    "PRETRAINED_DRUMS",
    "SMALL_MODEL_PARAMETERS",
    "file_probabilities",
    "make_input_stage",
    "window_probabilities",
]

#: The drum model shipped with the package (trained by ``softloc.experiments.drums``).
PRETRAINED_DRUMS = "drums.pt"

#: ``Detector.load(threads="auto")`` runs networks with fewer parameters on one torch thread:
#: their small convolutions gain little from intra-op threads, and on a busy 2-core machine two
#: threads made detection 40-80x slower (OpenMP spinning; issue 12).
SMALL_MODEL_PARAMETERS = 1_000_000


# ------------------------------------------------------------------------- windows -> p(t)


@torch.no_grad()
def window_probabilities(
    model: nn.Module,
    features: torch.Tensor,
    *,
    window_frames: int,
    hop_frames: int,
    batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """p(t) of each overlapping window of a file (before stitching; see
    :func:`file_probabilities` for the windows).

    Returns:
        ``(probs, valid)``: float32 ``(n_windows, class, window_frames)`` and the int64 valid
        frames of each window ``(n_windows,)``.
    """
    n_frames = int(features.shape[-1])
    n_windows = n_covering_windows(n_frames, window_frames, hop_frames)
    starts = [i * hop_frames for i in range(n_windows)]
    valid = [min(window_frames, n_frames - s) for s in starts]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    n_full = sum(v == window_frames for v in valid)
    outputs = []
    if n_full:
        full = features[:, : starts[n_full - 1] + window_frames]
        full = full.unfold(1, window_frames, hop_frames).permute(1, 0, 2)  # (n_full, F, W) view
        for b in range(0, n_full, batch_size):
            x = full[b : b + batch_size].to(device)
            lengths = torch.full((x.shape[0],), window_frames, device=device)
            outputs.append(torch.sigmoid(model(x, lengths)).float().cpu())
    for b in range(n_full, n_windows, batch_size):
        chunk = []
        for s, v in zip(starts[b : b + batch_size], valid[b : b + batch_size], strict=True):
            w = features.new_zeros((features.shape[0], window_frames))
            w[:, :v] = features[:, s : s + v]
            chunk.append(w)
        x = torch.stack(chunk).to(device)  # (B, F, W)
        lengths = torch.tensor(valid[b : b + batch_size], device=device)
        outputs.append(torch.sigmoid(model(x, lengths)).float().cpu())
    return torch.cat(outputs).numpy(), np.asarray(valid, dtype=np.int64)  # (n_windows, C, W)


def file_probabilities(
    model: nn.Module,
    features: torch.Tensor,
    *,
    window_frames: int,
    hop_frames: int,
    batch_size: int = 8,
) -> np.ndarray:
    """p(t) over a whole file: overlapping windows through ``model``, sigmoid, overlap-averaged.

    Window ``i`` covers frames ``[i * hop_frames, i * hop_frames + window_frames)``; the last
    windows are zero-padded and passed with their valid length, so the model sees the same
    per-window normalisation as in training. Full windows are batched apart from the padded
    ones, so that their batches need no length masking inside the model.

    Args:
        model: a network mapping ``(batch, n_features, time)`` and ``lengths (batch,)`` to
            logits ``(batch, class, time)``.
        features: the whole file, ``(n_features, frames)``.
        window_frames: frames per window.
        hop_frames: frames between window starts (<= ``window_frames``).
        batch_size: windows per forward pass.

    Returns:
        float64 ``(class, frames)``.
    """
    probs, valid = window_probabilities(model, features, window_frames=window_frames,
                                        hop_frames=hop_frames, batch_size=batch_size)
    return stitch_windows(
        probs, hop_frames=hop_frames, total_frames=int(features.shape[-1]), valid_frames=valid
    )


# ------------------------------------------------------------------------- input stages


class InputStage:
    """What a network reads, from source to ``(n_features, frames)``; see the module docstring.

    Args:
        config: the run configuration (front end, window and hop, inference batch size).
    """

    kind: ClassVar[str] = ""

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    @property
    def frame_rate(self) -> float:
        """Frames per second of the network's output."""
        raise NotImplementedError

    def read(self, source: Any) -> Any:
        """A file path or an in-memory object -> the signal."""
        raise NotImplementedError

    def features(self, signal: Any) -> torch.Tensor:
        """The network input of the whole signal, ``(n_features, frames)``."""
        raise NotImplementedError

    def speed_up(self, signal: Any, factor: float) -> Any:
        """The signal played ``factor`` times faster (test-time augmentation)."""
        raise ValueError(f"Detector: {self.kind or type(self).__name__} input has no "
                         "test-time augmentation; set inference.tta_factors to []")

    def probabilities(self, model: nn.Module, features: torch.Tensor) -> np.ndarray:
        """p(t) ``(class, frames)`` of the whole input: windows of ``data.window_s`` every
        ``inference.hop_s`` (:func:`file_probabilities`)."""
        cfg = self.config
        w = duration_frames(cfg.data.window_s, self.frame_rate)
        hop = duration_frames(cfg.inference.hop_s, self.frame_rate)
        return file_probabilities(
            model, features, window_frames=w, hop_frames=min(hop, w),
            batch_size=cfg.inference.batch_size,
        )

    def signal_of_features(self, features: torch.Tensor) -> Any:
        """The signal :meth:`refine` searches, rebuilt from this stage's network input (the
        calibration has only the features of its validation files)."""
        raise self._no_peaks()

    def refine(self, signal: Any, events: Events, settings: InferenceConfig) -> Events:
        """``events`` moved onto the input's own peaks as ``settings.snap_*`` say; only signal
        inputs can (:class:`softloc.inference.signals.SignalInput`)."""
        raise self._no_peaks()

    def _no_peaks(self) -> ValueError:
        return ValueError(f"Detector: inference.snap_radius_s moves detections onto the peaks "
                          f"of a time series; {self.kind or type(self).__name__} input has none, "
                          "so set inference.snap_radius_s to 0")

    def window_probabilities(
        self, model: nn.Module, features: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """``(probs (n_windows, class, window_frames), valid (n_windows,), hop_frames)``: the
        windows of :meth:`probabilities` before stitching (for the cleaning decoder)."""
        cfg = self.config
        w = duration_frames(cfg.data.window_s, self.frame_rate)
        hop = min(duration_frames(cfg.inference.hop_s, self.frame_rate), w)
        probs, valid = window_probabilities(model, torch.as_tensor(features), window_frames=w,
                                            hop_frames=hop, batch_size=cfg.inference.batch_size)
        return probs, valid, hop


#: Largest sample magnitude :class:`AudioInput` accepts (float audio is normally within +-1;
#: beyond this the power mel overflows float32).
MAX_ABS_SAMPLE = 1e4


def _check_samples(audio: np.ndarray, where: str) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if not np.isfinite(peak) or peak > MAX_ABS_SAMPLE:
        raise ValueError(f"{where}: audio samples must be finite and within +-{MAX_ABS_SAMPLE:g} "
                         f"(float audio is normally within +-1), got a peak of {peak:g}")
    return audio


class AudioInput(InputStage):
    """Audio -> power mel ``(n_mels, frames)`` at ``config.features`` (kind ``"audio"``).

    ``read`` takes a file path (any rate, mono or multi-channel; resampled and mixed down) or an
    ``(array, sample_rate)`` tuple with ``array`` ``(samples,)`` or ``(samples, channels)``.
    """

    kind = "audio"

    @property
    def frame_rate(self) -> float:
        return self.config.features.frame_rate

    def read(self, source: Any) -> np.ndarray:
        """Mono audio at the front end's rate.

        Raises:
            ValueError: samples that are not finite or exceed :data:`MAX_ABS_SAMPLE` in
                magnitude (the message names the file), a bad array or rate.
        """
        sr = self.config.features.sample_rate
        if isinstance(source, str | os.PathLike):
            return _check_samples(load_audio(source, sr), str(source))
        if isinstance(source, tuple) and len(source) == 2:
            array, rate = source
            array = np.asarray(array, dtype=np.float32)
            if array.ndim == 2:
                array = array.mean(axis=1) if array.shape[1] <= 8 else array.mean(axis=0)
            if array.ndim != 1 or array.size == 0:
                raise ValueError(
                    f"Detector.detect: `audio` array must be (samples,) or (samples, channels), "
                    f"got shape {np.shape(source[0])}"
                )
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
                raise ValueError(f"Detector.detect: sample rate must be > 0, got {rate!r}")
            return _check_samples(resample(array, float(rate), float(sr)), "Detector.detect")
        raise TypeError(
            "Detector.detect: `audio` must be a file path or an (array, sample_rate) tuple, "
            f"got {type(source).__name__}"
        )

    def features(self, signal: np.ndarray) -> torch.Tensor:
        return mel_power(signal, self.config.features)[0]

    def speed_up(self, signal: np.ndarray, factor: float) -> np.ndarray:
        # Reading the audio as if sampled at sr * factor plays it `factor` times faster, as the
        # sample-rate augmentation of training does.
        sr = self.config.features.sample_rate
        return resample(signal, sr * factor, sr)


#: Input kind (as recorded in the model file) -> input stage class.
INPUT_STAGES: dict[str, type[InputStage]] = {"audio": AudioInput}


def make_input_stage(kind: str, config: RunConfig) -> InputStage:
    """The input stage of ``kind`` for ``config``.

    Raises:
        ValueError: an unknown kind (the message lists the known ones).
    """
    if kind not in INPUT_STAGES:
        raise ValueError(
            f"make_input_stage: unknown input kind {kind!r}; expected one of {sorted(INPUT_STAGES)}"
        )
    return INPUT_STAGES[kind](config)


# ------------------------------------------------------------------------- Detector


class Detector:
    """A trained event detector: ``Detector.load(run_or_none).detect(source)``.

    Args:
        model: the network (input -> logits ``(batch, class, time)``).
        config: its resolved run configuration (classes, front end, inference settings).
        input_stage: what the network reads (default: :class:`AudioInput` of ``config``).
        threads: torch CPU threads while this detector runs the network (restored afterwards);
            ``None`` = leave torch's setting alone.

    Example:
        >>> det = Detector.load()                        # the shipped drum model
        >>> events = det.detect("song.wav")              # doctest: +SKIP
        >>> events[:2]                                   # doctest: +SKIP
        [(0.5012, 'KD', 0.97), (0.7489, 'HH', 0.88)]
    """

    def __init__(
        self, model: nn.Module, config: RunConfig, *, input_stage: InputStage | None = None,
        threads: int | None = None,
    ) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"Detector: `threads` must be an int >= 1 or None, got {threads!r}")
        self.model = model.eval()
        self.config = config
        self.input_stage = AudioInput(config) if input_stage is None else input_stage
        self.threads = threads

    @contextlib.contextmanager
    def threads_context(self) -> Iterator[None]:
        """Run the enclosed code with ``self.threads`` torch threads, then restore the setting."""
        if self.threads is None or self.threads == torch.get_num_threads():
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        *,
        threads: int | str | None = "auto",
        device: str | torch.device = "cpu",
    ) -> Detector:
        """Load a run folder (``RUN/model.pt``), a model file, or (``None``) the shipped model.

        Args:
            path: the run or model file; ``None`` = the shipped drum model.
            threads: torch CPU threads for inference: ``"auto"`` (default) = 1 for networks
                under :data:`SMALL_MODEL_PARAMETERS` parameters (the drum CRNNs), else torch's
                default; an int; ``None`` = leave torch's setting alone.
            device: where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``);
                features are computed on the CPU and moved there window batch by batch.

        Raises:
            FileNotFoundError: no such run/model (or no shipped model in this installation).
            ValueError: not a softloc model file, an unknown input kind, a bad ``threads`` or
                an unknown ``device``.
        """
        if path is not None:
            mf = read_model_file(resolve_model_path(path))
        else:
            shipped = resources.files("softloc") / "pretrained" / PRETRAINED_DRUMS
            with resources.as_file(shipped) as p:
                if not Path(p).is_file():
                    raise FileNotFoundError(
                        f"{p}: the pretrained drum model is not installed; train one with "
                        "`softloc experiment drums --out RUN --export "
                        "softloc/pretrained/drums.pt` or pass --model RUN"
                    )
                mf = read_model_file(p)
        try:
            model = mf.model.to(torch.device(device))
        except (RuntimeError, ValueError, AssertionError) as err:
            raise ValueError(f"Detector.load: cannot use device {device!r}: {err}") from err
        if threads == "auto":
            n_params = sum(p.numel() for p in model.parameters())
            threads = 1 if n_params < SMALL_MODEL_PARAMETERS else None
        elif isinstance(threads, str):
            raise ValueError(f"Detector.load: `threads` must be 'auto', an int >= 1 or None, "
                             f"got {threads!r}")
        return cls(model, mf.config, input_stage=make_input_stage(mf.input_kind, mf.config),
                   threads=threads)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class labels in output order."""
        return self.config.classes

    @property
    def frame_rate(self) -> float:
        """Frames per second of p(t)."""
        return self.input_stage.frame_rate

    def with_settings(
        self,
        *,
        threshold: float | None = None,
        time_offset_s: float | None = None,
        tta_factors: Sequence[float] | None = None,
        class_thresholds: Sequence[float] | None = None,
        class_offsets_s: Sequence[float] | None = None,
        decoder: str | None = None,
        tta_ensemble: str | None = None,
        snap_radius_s: float | None = None,
    ) -> Detector:
        """A detector sharing the network and input stage, with other decoding settings.

        A global ``threshold`` given here also clears the per-class thresholds. ``decoder``
        (``threshold`` / ``clean``) and ``tta_ensemble`` (``mean`` / ``nw``): see
        :mod:`softloc.inference.ensemble`. ``snap_radius_s``: ``inference.snap_radius_s``
        (signal runs; 0 = off).

        Raises:
            ValueError: ``threshold`` outside (0, 1), a TTA factor outside (0.5, 2), an unknown
                decoder or ensemble, a negative or infinite ``snap_radius_s``.
        """
        inf = self.config.inference
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ValueError(f"Detector: `threshold` must lie in (0, 1), got {threshold}")
        if tta_factors is not None and any(not 0.5 < f < 2.0 for f in tta_factors):
            raise ValueError(f"Detector: `tta_factors` must lie in (0.5, 2), got {tta_factors}")
        if decoder is not None and decoder not in ("threshold", "clean"):
            raise ValueError(f"Detector: `decoder` must be 'threshold' or 'clean', got {decoder!r}")
        if tta_ensemble is not None and tta_ensemble not in ("mean", "nw"):
            raise ValueError(f"Detector: `tta_ensemble` must be 'mean' or 'nw', got "
                             f"{tta_ensemble!r}")
        inf = replace(
            inf,
            threshold=inf.threshold if threshold is None else float(threshold),
            time_offset_s=inf.time_offset_s if time_offset_s is None else float(time_offset_s),
            tta_factors=inf.tta_factors if tta_factors is None else tuple(tta_factors),
            decoder=inf.decoder if decoder is None else decoder,
            tta_ensemble=inf.tta_ensemble if tta_ensemble is None else tta_ensemble,
            snap_radius_s=inf.snap_radius_s if snap_radius_s is None else float(snap_radius_s),
        )
        if threshold is not None:
            inf = replace(inf, class_thresholds=())
        if class_thresholds is not None:
            inf = replace(inf, class_thresholds=tuple(float(x) for x in class_thresholds))
        if class_offsets_s is not None:
            inf = replace(inf, class_offsets_s=tuple(float(x) for x in class_offsets_s))
        config = replace(self.config, inference=inf)
        stage = type(self.input_stage)(config)
        return Detector(self.model, config, input_stage=stage, threads=self.threads)

    def probabilities_from_features(self, features: torch.Tensor) -> np.ndarray:
        """p(t) ``(class, frames)`` of a whole input from its features ``(n_features, frames)``
        (for audio: the power mel of the file)."""
        with self.threads_context():
            return self.input_stage.probabilities(self.model, torch.as_tensor(features))

    #: The audio name of :meth:`probabilities_from_features` (power mel in).
    probabilities_from_mel = probabilities_from_features

    def probabilities(self, source: Any) -> np.ndarray:
        """p(t) per class over the whole input, float64 ``(class, frames)``.

        ``source`` is whatever the input stage reads (audio: a file path or an
        ``(array, sample_rate)`` tuple). With ``inference.tta_factors``, the signal is also
        played at each factor, its p(t) mapped back to the original time axis, and all versions
        averaged.
        """
        stage = self.input_stage
        x = stage.read(source)
        probs = self.probabilities_from_features(stage.features(x))
        factors = self.config.inference.tta_factors
        if factors:
            total = probs.copy()
            grid = np.arange(probs.shape[1], dtype=np.float64)
            for s in factors:
                # Playing `s` times faster maps time t to t / s: original frame i is frame i / s.
                p_s = self.probabilities_from_features(stage.features(stage.speed_up(x, s)))
                src = np.arange(p_s.shape[1], dtype=np.float64)
                total += np.stack([np.interp(grid / s, src, row) for row in p_s])
            probs = total / (1 + len(factors))
        return probs

    def events_from_probabilities(self, probs: np.ndarray) -> Events:
        """Decode ``(class, frames)`` p(t): one event per run above the (per-class) threshold,
        at the run's peak, stamped ``frame / frame_rate + time_offset_s + class_offsets_s[c]``."""
        inf = self.config.inference
        n_classes = probs.shape[0]
        thresholds = inf.class_thresholds or (inf.threshold,) * n_classes
        offsets = inf.class_offsets_s or (0.0,) * n_classes
        if len(thresholds) != n_classes or len(offsets) != n_classes:
            raise ValueError(
                f"Detector: inference.class_thresholds/class_offsets_s must have one entry per "
                f"class ({n_classes}), got {len(thresholds)} and {len(offsets)}"
            )
        min_distance = duration_frames(inf.min_distance_s, self.frame_rate)
        per_class = [
            threshold_events(
                probs[c : c + 1],
                threshold=thresholds[c],
                frame_rate=self.frame_rate,
                time_offset_s=inf.time_offset_s + offsets[c],
                min_distance_frames=min_distance,
            )
            for c in range(n_classes)
        ]
        t = np.concatenate([ev.times_s for ev in per_class])
        classes = np.concatenate([np.full(len(ev), c, dtype=np.int64)
                                  for c, ev in enumerate(per_class)])
        order = np.lexsort((classes, t))
        return Events(
            frames=np.concatenate([ev.frames for ev in per_class])[order],
            classes=classes[order],
            scores=np.concatenate([ev.scores for ev in per_class])[order],
            times_s=t[order],
            n_classes=n_classes,
            frame_rate=self.frame_rate,
            time_offset_s=inf.time_offset_s,
        )

    def events(self, source: Any) -> Events:
        """Decoded events of ``source`` with the configured decoder and test-time augmentation:
        ``inference.decoder`` ``threshold`` (runs of p(t) above the threshold, at their peak) or
        ``clean`` (the original cleaning rule), and with ``inference.tta_factors``,
        ``inference.tta_ensemble`` ``mean`` (p(t) averaged) or ``nw`` (the original
        Nadaraya–Watson ensembling); :mod:`softloc.inference.ensemble`. With
        ``inference.snap_radius_s`` > 0 (signal runs), each event then moves to the signal's
        nearby extremum (:meth:`InputStage.refine`)."""
        inf = self.config.inference
        snap = inf.snap_radius_s > 0
        if snap:
            source = self.input_stage.read(source)  # once: the snap searches the same signal
        if inf.decoder == "threshold" and (not inf.tta_factors or inf.tta_ensemble == "mean"):
            events = self.events_from_probabilities(self.probabilities(source))
        else:
            from softloc.inference.ensemble import ensemble_events

            events = ensemble_events(self, source)
        return self.input_stage.refine(source, events, inf) if snap else events

    def detect(self, source: Any) -> list[tuple[float, str, float]]:
        """Events in ``source`` (audio: a path or ``(array, sample_rate)``):
        ``[(time_s, label, score)]``, decoded by :meth:`events`.

        Sorted by time, then class; times below 0 (possible with a negative calibrated offset)
        are clipped to 0.
        """
        events = self.events(source)
        return [(max(0.0, t), self.classes[c], s) for t, c, s in events.to_list()]
