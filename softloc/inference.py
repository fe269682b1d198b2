"""Detect events in whole audio files with a trained run: :class:`Detector` (no Lightning here).

Pipeline (madmom-style explicit stages, fact sheet §5): audio -> power mel of the whole file
(``softloc.features``) -> overlapping windows of ``data.window_s`` at ``inference.hop_s`` ->
CRNN p(t) per window -> overlap-averaged back into one ``(class, frames)`` series
(``softloc.decode.stitch_windows``) -> optional test-time augmentation (sample-rate variants mapped
back to the original time axis and averaged) -> one event per run of ``p(t) > threshold``
(``softloc.decode.threshold_events``) -> times ``frame / frame_rate + time_offset_s``.

A run is self-contained: ``RUN/model.pt`` holds the resolved configuration (classes, front end,
model sizes, threshold, calibrated ``time_offset_s``) and the weights, so
``Detector.load(RUN)`` rebuilds the network without the training code. ``Detector.load(None)``
loads the drum model shipped in ``softloc/pretrained/``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from softloc import __version__
from softloc.config import RunConfig, config_from_dict, config_to_dict
from softloc.decode import Events, stitch_windows, threshold_events
from softloc.features import load_audio, mel_power, resample
from softloc.metrics import match_onsets
from softloc.models import model_from_config, window_frames

__all__ = [
    "Detector",
    "GM_DRUM_PITCHES",
    "collect_audio_inputs",
    "detect_to_folder",
    "evaluate_folders",
    "write_events",
    "MODEL_FILE",
    "PRETRAINED_DRUMS",
    "calibrate_time_offset",
    "file_probabilities",
    "load_model_file",
    "save_model_file",
]

#: Name of the self-contained model file inside a run folder.
MODEL_FILE = "model.pt"
#: The drum model shipped with the package (trained by ``softloc.experiments.drums``).
PRETRAINED_DRUMS = "drums.pt"
_FORMAT = "softloc-model/1"


# ------------------------------------------------------------------------- model files


def save_model_file(path: str | os.PathLike, model: torch.nn.Module, config: RunConfig) -> None:
    """Write weights + resolved config to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT,
        "softloc_version": __version__,
        "config": config_to_dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_model_file(path: str | os.PathLike) -> tuple[torch.nn.Module, RunConfig]:
    """Rebuild ``(model, config)`` from a model file written by :func:`save_model_file`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a softloc model file (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a readable softloc model file ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a softloc model file (expected format {_FORMAT!r})")
    config = config_from_dict(payload["config"])
    model = model_from_config(config)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, config


def _resolve_model_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        if not (p / MODEL_FILE).is_file():
            raise FileNotFoundError(
                f"{p}: run folder has no {MODEL_FILE}; expected a folder written by "
                "`softloc train` or a model file"
            )
        return p / MODEL_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such run folder or model file")
    return p


# ------------------------------------------------------------------------- core functions


@torch.no_grad()
def file_probabilities(
    model: torch.nn.Module,
    mel: torch.Tensor,
    *,
    window_frames: int,
    hop_frames: int,
    batch_size: int = 8,
) -> np.ndarray:
    """p(t) over a whole file: overlapping windows through ``model``, overlap-averaged.

    Window ``i`` covers frames ``[i * hop_frames, i * hop_frames + window_frames)``; the last
    windows are zero-padded and passed with their valid length, so the model sees the same
    per-window normalisation as in training.

    Args:
        model: a network mapping ``(batch, n_mels, time)`` power mel to ``(batch, class, time)``.
        mel: power mel of the file, ``(n_mels, frames)``.
        window_frames: frames per window.
        hop_frames: frames between window starts (<= ``window_frames``).
        batch_size: windows per forward pass.

    Returns:
        float64 ``(class, frames)``.
    """
    n_frames = int(mel.shape[-1])
    n_windows = 1 + math.ceil(max(n_frames - window_frames, 0) / hop_frames)
    starts = [i * hop_frames for i in range(n_windows)]
    valid = [min(window_frames, n_frames - s) for s in starts]
    device = next(model.parameters()).device
    # Full windows are batched apart from the few zero-padded ones at the end, so that their
    # batches need no length masking inside the model.
    n_full = sum(v == window_frames for v in valid)
    outputs = []
    if n_full:
        full = mel[:, : starts[n_full - 1] + window_frames]
        full = full.unfold(1, window_frames, hop_frames).permute(1, 0, 2)  # (n_full, M, W) view
        for b in range(0, n_full, batch_size):
            x = full[b : b + batch_size].to(device)
            lengths = torch.full((x.shape[0],), window_frames, device=device)
            outputs.append(model(x, lengths).float().cpu())
    for b in range(n_full, n_windows, batch_size):
        chunk = []
        for s, v in zip(starts[b : b + batch_size], valid[b : b + batch_size], strict=True):
            w = mel.new_zeros((mel.shape[0], window_frames))
            w[:, :v] = mel[:, s : s + v]
            chunk.append(w)
        x = torch.stack(chunk).to(device)  # (B, M, W)
        lengths = torch.tensor(valid[b : b + batch_size], device=device)
        outputs.append(model(x, lengths).float().cpu())
    probs = torch.cat(outputs)  # (n_windows, C, W)
    return stitch_windows(
        probs, hop_frames=hop_frames, total_frames=n_frames, valid_frames=np.asarray(valid)
    )


def calibrate_time_offset(
    estimates: Sequence[np.ndarray], references: Sequence[np.ndarray], *, search_s: float = 0.1
) -> float:
    """The offset (seconds) to ADD to estimates: minus the median signed error of matched pairs.

    Pairs are matched within ``search_s`` (``softloc.metrics.match_onsets``) per (file, class)
    series; ``estimates[i]`` and ``references[i]`` are times in seconds of the same series.
    Returns 0.0 when nothing matches.
    """
    errors = []
    for est, ref in zip(estimates, references, strict=True):
        if len(est) == 0 or len(ref) == 0:
            continue
        pairs = match_onsets(ref, est, tolerance_s=search_s)
        errors.extend(np.asarray(est)[pairs[:, 1]] - np.asarray(ref)[pairs[:, 0]])
    if not errors:
        return 0.0
    return float(-np.median(errors))


# ------------------------------------------------------------------------- Detector


class Detector:
    """A trained event detector: ``Detector.load(run_or_none).detect(audio)``.

    Args:
        model: the network (``(batch, n_mels, time)`` power mel -> ``(batch, class, time)``).
        config: its resolved run configuration (classes, front end, inference settings).

    Example:
        >>> det = Detector.load()                        # the shipped drum model
        >>> events = det.detect("song.wav")              # doctest: +SKIP
        >>> events[:2]                                   # doctest: +SKIP
        [(0.5012, 'KD', 0.97), (0.7489, 'HH', 0.88)]
    """

    def __init__(self, model: torch.nn.Module, config: RunConfig) -> None:
        self.model = model.eval()
        self.config = config

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Detector:
        """Load a run folder (``RUN/model.pt``), a model file, or (``None``) the shipped model.

        Raises:
            FileNotFoundError: no such run/model (or no shipped model in this installation).
            ValueError: not a softloc model file.
        """
        if path is not None:
            model, config = load_model_file(_resolve_model_path(path))
            return cls(model, config)
        shipped = resources.files("softloc") / "pretrained" / PRETRAINED_DRUMS
        with resources.as_file(shipped) as p:
            if not Path(p).is_file():
                raise FileNotFoundError(
                    f"{p}: the pretrained drum model is not installed; train one with "
                    "`softloc experiment drums --out RUN --export softloc/pretrained/drums.pt` "
                    "or pass --model RUN"
                )
            model, config = load_model_file(p)
        return cls(model, config)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class labels in output order."""
        return self.config.classes

    @property
    def frame_rate(self) -> float:
        """Frames per second of p(t)."""
        return self.config.features.frame_rate

    def with_settings(
        self,
        *,
        threshold: float | None = None,
        time_offset_s: float | None = None,
        tta_factors: Sequence[float] | None = None,
        class_thresholds: Sequence[float] | None = None,
        class_offsets_s: Sequence[float] | None = None,
    ) -> Detector:
        """A detector sharing the network, with other decoding settings.

        A global ``threshold`` given here also clears the per-class thresholds.

        Raises:
            ValueError: ``threshold`` outside [0, 1) or a TTA factor outside (0.5, 2).
        """
        inf = self.config.inference
        if threshold is not None and not 0.0 <= threshold < 1.0:
            raise ValueError(f"Detector: `threshold` must lie in [0, 1), got {threshold}")
        if tta_factors is not None and any(not 0.5 < f < 2.0 for f in tta_factors):
            raise ValueError(f"Detector: `tta_factors` must lie in (0.5, 2), got {tta_factors}")
        inf = replace(
            inf,
            threshold=inf.threshold if threshold is None else float(threshold),
            time_offset_s=inf.time_offset_s if time_offset_s is None else float(time_offset_s),
            tta_factors=inf.tta_factors if tta_factors is None else tuple(tta_factors),
        )
        if threshold is not None:
            inf = replace(inf, class_thresholds=())
        if class_thresholds is not None:
            inf = replace(inf, class_thresholds=tuple(float(x) for x in class_thresholds))
        if class_offsets_s is not None:
            inf = replace(inf, class_offsets_s=tuple(float(x) for x in class_offsets_s))
        return Detector(self.model, replace(self.config, inference=inf))

    def _audio(self, audio) -> np.ndarray:
        sr = self.config.features.sample_rate
        if isinstance(audio, str | os.PathLike):
            return load_audio(audio, sr)
        if isinstance(audio, tuple) and len(audio) == 2:
            array, rate = audio
            array = np.asarray(array, dtype=np.float32)
            if array.ndim == 2:
                array = array.mean(axis=1) if array.shape[1] <= 8 else array.mean(axis=0)
            if array.ndim != 1 or array.size == 0:
                raise ValueError(
                    f"Detector.detect: `audio` array must be (samples,) or (samples, channels), "
                    f"got shape {np.shape(audio[0])}"
                )
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
                raise ValueError(f"Detector.detect: sample rate must be > 0, got {rate!r}")
            return resample(array, float(rate), float(sr))
        raise TypeError(
            "Detector.detect: `audio` must be a file path or an (array, sample_rate) tuple, "
            f"got {type(audio).__name__}"
        )

    def probabilities_from_mel(self, mel: torch.Tensor) -> np.ndarray:
        """p(t) of a whole file from its power mel ``(n_mels, frames)`` -> ``(class, frames)``."""
        cfg = self.config
        w = window_frames(cfg)
        hop = max(1, round(cfg.inference.hop_s * cfg.features.frame_rate))
        return file_probabilities(
            self.model, mel, window_frames=w, hop_frames=min(hop, w),
            batch_size=cfg.inference.batch_size,
        )

    def probabilities(self, audio) -> np.ndarray:
        """p(t) per class over the whole input, float64 ``(class, frames)``.

        ``audio`` is a file path or an ``(array, sample_rate)`` tuple. With
        ``inference.tta_factors``, the audio is also played at each factor (resampled as in the
        sample-rate augmentation), its p(t) mapped back to the original time axis, and all
        versions averaged.
        """
        x = self._audio(audio)
        cfg = self.config.features
        probs = self.probabilities_from_mel(mel_power(x, cfg)[0])
        factors = self.config.inference.tta_factors
        if factors:
            total = probs.copy()
            grid = np.arange(probs.shape[1], dtype=np.float64)
            for s in factors:
                # Playing `s` times faster maps time t to t / s: original frame i is frame i / s.
                y = resample(x, cfg.sample_rate * s, cfg.sample_rate)
                p_s = self.probabilities_from_mel(mel_power(y, cfg)[0])
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
        min_distance = max(1, round(inf.min_distance_s * self.frame_rate))
        frames, classes, scores, times = [], [], [], []
        for c in range(n_classes):
            ev = threshold_events(
                probs[c : c + 1],
                threshold=thresholds[c],
                frame_rate=self.frame_rate,
                time_offset_s=inf.time_offset_s + offsets[c],
                min_distance_frames=min_distance,
            )
            frames.append(ev.frames)
            classes.append(np.full(len(ev), c, dtype=np.int64))
            scores.append(ev.scores)
            times.append(ev.times_s)
        t = np.concatenate(times)
        order = np.lexsort((np.concatenate(classes), t))
        return Events(
            frames=np.concatenate(frames)[order],
            classes=np.concatenate(classes)[order],
            scores=np.concatenate(scores)[order],
            times_s=t[order],
            n_classes=n_classes,
            frame_rate=self.frame_rate,
            time_offset_s=inf.time_offset_s,
        )

    def detect(self, audio) -> list[tuple[float, str, float]]:
        """Events in ``audio`` (a path or ``(array, sample_rate)``): ``[(time_s, label, score)]``.

        Sorted by time, then class; times below 0 (possible with a negative calibrated offset)
        are clipped to 0.
        """
        events = self.events_from_probabilities(self.probabilities(audio))
        return [
            (max(0.0, t), self.classes[c], s) for t, c, s in events.to_list()
        ]


# ------------------------------------------------------------------------- files and folders

#: General-MIDI percussion pitches written for the drum classes (channel 10).
GM_DRUM_PITCHES = {"KD": 36, "SD": 38, "HH": 42}
_FORMATS = {"tsv": ".txt", "json": ".json", "midi": ".mid"}


def collect_audio_inputs(
    inputs: Sequence[str | os.PathLike],
    *,
    data_root: str | os.PathLike | None = None,
    split: str | None = None,
) -> list[Path]:
    """Audio files named by ``inputs`` (files, or folders scanned for .wav/.flac/.ogg) and/or by
    the ``split`` of the dataset ``data_root``.

    Raises:
        FileNotFoundError: a named file/folder does not exist.
        ValueError: nothing to process, or two inputs share a stem (outputs would collide).
    """
    from softloc.data.layout import AUDIO_SUFFIXES, load_dataset

    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                q for q in p.iterdir()
                if q.suffix.lower() in AUDIO_SUFFIXES and not q.name.startswith(".")
            )
            if not found:
                raise ValueError(f"{p}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such audio file or folder")
    if data_root is not None:
        index = load_dataset(data_root, annotations=None)
        if split is None or split not in index.splits:
            raise ValueError(f"{data_root}: unknown split {split!r}; have {sorted(index.splits)}")
        paths.extend(Path(index.audio_paths[s]) for s in index.splits[split])
    if not paths:
        raise ValueError("no audio inputs")
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems and stems[p.stem] != p:
            raise ValueError(f"two inputs share the stem {p.stem!r}: {stems[p.stem]} and {p}")
        stems[p.stem] = p
    return list(stems.values())


def write_events(
    path: str | os.PathLike, events: Sequence[tuple[float, str, float]], *, fmt: str = "tsv"
) -> None:
    """Write ``[(time_s, label, score)]`` atomically as TSV, JSON or MIDI.

    * ``tsv``: ``'<seconds>\t<label>'`` per line, the annotation format (readable by
      ``softloc evaluate`` and ``softloc.data.read_annotation_file``).
    * ``json``: ``[{"time_s", "label", "score"}, ...]``.
    * ``midi``: one 50 ms note per event on a drum track (channel 10) with the General-MIDI
      pitch of the label (:data:`GM_DRUM_PITCHES`; other labels that are MIDI numbers are used
      as pitches, anything else is an error); velocity from the score.

    Raises:
        ValueError: unknown ``fmt`` or a label without a MIDI pitch.
    """
    import json

    path = Path(path)
    if fmt not in _FORMATS:
        raise ValueError(f"write_events: `fmt` must be one of {sorted(_FORMATS)}, got {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "tsv":
        tmp.write_text("".join(f"{t:.6f}\t{label}\n" for t, label, _ in events))
    elif fmt == "json":
        rows = [{"time_s": round(t, 6), "label": lab, "score": round(s, 6)} for t, lab, s in events]
        tmp.write_text(json.dumps(rows, indent=1) + "\n")
    else:
        import pretty_midi

        midi = pretty_midi.PrettyMIDI()
        drums = pretty_midi.Instrument(program=0, is_drum=True, name="softloc")
        for t, label, score in events:
            if label in GM_DRUM_PITCHES:
                pitch = GM_DRUM_PITCHES[label]
            elif label.isdigit() and 0 <= int(label) <= 127:
                pitch = int(label)
            else:
                raise ValueError(
                    f"write_events: label {label!r} has no MIDI pitch; expected one of "
                    f"{sorted(GM_DRUM_PITCHES)} or a MIDI number 0-127"
                )
            velocity = int(np.clip(round(score * 127), 1, 127))
            drums.notes.append(pretty_midi.Note(velocity, pitch, t, t + 0.05))
        midi.instruments.append(drums)
        midi.write(str(tmp))
    os.replace(tmp, path)


def detect_to_folder(
    detector: Detector,
    audio_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    fmt: str = "tsv",
) -> list[tuple[Path, int]]:
    """Detect events in each file and write ``out_dir/<stem>.txt|.json|.mid``.

    Returns:
        ``[(written_path, n_events), ...]`` in input order.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"detect_to_folder: `fmt` must be one of {sorted(_FORMATS)}, got {fmt!r}")
    out_dir = Path(out_dir)
    written = []
    for audio in audio_paths:
        events = detector.detect(audio)
        target = out_dir / (Path(audio).stem + _FORMATS[fmt])
        write_events(target, events, fmt=fmt)
        written.append((target, len(events)))
    return written


def evaluate_folders(
    ref_dir: str | os.PathLike,
    est_dir: str | os.PathLike,
    *,
    split_file: str | os.PathLike | None = None,
    tolerance_s: float = 0.05,
) -> dict:
    """Score ``est_dir/<stem>.txt`` against ``ref_dir/<stem>.txt`` (``softloc.metrics.evaluate``).

    Stems: those of ``split_file`` if given, else every reference file. A stem with a reference
    but no detection file is an error (an empty detection file means "no events").

    Raises:
        FileNotFoundError: a folder or a needed file is missing.
        ValueError: a malformed annotation line (``path:line: ...``).
    """
    from softloc.data.layout import read_annotation_file, read_split_file
    from softloc.metrics import evaluate

    ref_dir, est_dir = Path(ref_dir), Path(est_dir)
    for d in (ref_dir, est_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: folder not found")
    if split_file is not None:
        stems = [s for _, s in read_split_file(split_file)]
    else:
        stems = sorted(p.stem for p in ref_dir.glob("*.txt"))
    if not stems:
        raise ValueError(f"{ref_dir}: no reference files (<stem>.txt)")
    reference, estimate = {}, {}
    for stem in stems:
        ref_path, est_path = ref_dir / f"{stem}.txt", est_dir / f"{stem}.txt"
        if not ref_path.is_file():
            raise FileNotFoundError(f"{ref_path}: reference annotation missing")
        if not est_path.is_file():
            raise FileNotFoundError(
                f"{est_path}: detection file missing (run `softloc detect` on {stem})"
            )
        reference[stem] = read_annotation_file(ref_path)
        estimate[stem] = read_annotation_file(est_path)
    classes = sorted({lab for ev in reference.values() for _, lab in ev}
                     | {lab for ev in estimate.values() for _, lab in ev})
    return evaluate(reference, estimate, tolerance_s=tolerance_s, classes=classes)
