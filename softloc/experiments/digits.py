"""LoCo §8: digit detection in images along a Hilbert curve, trained from digit counts only.

Canvases of non-overlapping digits (:mod:`softloc.data.digits`) are read as sequences of windows
along a Hilbert curve (:mod:`softloc.hilbert`); a conv + LSTM detector
(:class:`softloc.models.digits.DigitDetector`, built by name with
:func:`softloc.models.build_model`) is trained from the number of digits of each class on each
canvas, then evaluated on canvases built from held-out digits. Training uses the shared
machinery: the LoCo count loss from the loss registry (``softloc.losses.registry.build_loss``,
LoCo eq. 9, 14) and the one LightningModule :class:`softloc.training.EventModule`, on batches
``{"inputs": canvases (B, 1, H, W), "counts": digits per class (B, 10)}``.

Scores (``results.json``):

(a) ``recognition_accuracy``: single test digits, each alone on a blank canvas at a random
    position; the predicted class is the one with the largest expected count ``sum_t p_c(t)``.
(b) detection: per canvas and class, decoded detections
    (:func:`softloc.inference.images.decode_detections`: one per run of steps with
    ``p > threshold``) are placed at their cell centres and matched one-to-one to the true digit
    centres of the same class within ``match_tolerance_px``
    (:func:`softloc.metrics.centres.match_centres`). Pooled over canvases:
    ``detection_precision``, ``detection_recall``, ``detection_f1`` and ``centre_distance_px``,
    the mean distance between matched true and estimated centres (LoCo §8.3 reports 9.04 px at an
    8 px granularity).
(c) ``count_accuracy``: the share of test canvases whose 10 per-class counts are all right, the
    predicted count being the mode of the model's count distribution
    (:func:`softloc.counting.count_distribution`, LoCo eq. 9, 14);
    ``count_accuracy_from_detections`` uses the number of decoded detections instead.
(d) ``representation_knn_accuracy``: 5-nearest-neighbour accuracy on the test digits' conv
    features with the training digits' features as the reference set (the number behind the
    t-SNE plot of LoCo Fig. 3).

Run folder (:func:`run_digits`; ``softloc experiment digits``)::

    RUN/model.pt        the one model-file format (softloc.inference.model_file), input kind
                        "hilbert-image": Detector.load(RUN), `softloc detect --model RUN
                        canvas.png` and `softloc plot --model RUN canvas.png` work on it
    RUN/config.yaml     the shared run configuration (classes, loss, training, decoding)
    RUN/digits.yaml     this experiment's settings (DigitsConfig, resolved) and versions
    RUN/logs/metrics.csv, RUN/results.json, RUN/detections.png (LoCo Fig. 2), RUN/tsne.png
    (LoCo Fig. 3, ``sklearn.manifold.TSNE``)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from softloc._io import atomic_write_text, provenance
from softloc._version import __version__
from softloc.config import (
    DataConfig,
    InferenceConfig,
    LossConfig,
    RunConfig,
    SupervisionConfig,
    TrainConfig,
    save_config,
)
from softloc.data.digits import (
    N_DIGIT_CLASSES,
    CanvasStream,
    DigitSet,
    load_mnist,
    load_sklearn_digits,
    make_canvases,
)
from softloc.experiments.digits_scores import (
    evaluate_detections,
    predict_probabilities,
    recognition_accuracy,
    representation_scores,
)
from softloc.inference.images import HilbertImageInput, decode_detections
from softloc.inference.model_file import MODEL_FILE, save_model_file
from softloc.losses.registry import build_loss
from softloc.models.build import build_model
from softloc.models.digits import CONV_PRESETS, DigitDetector
from softloc.models.heads import prior_output_bias
from softloc.plots import plot_digit_detections, plot_tsne

__all__ = [
    "SOURCES",
    "DigitsConfig",
    "default_config",
    "build_digits_model",
    "run_config",
    "run_digits",
]

SOURCES = ("sklearn", "mnist")


@dataclass(frozen=True)
class DigitsConfig:
    """Everything a digits run depends on; written resolved to ``config.yaml`` in the run folder.

    Attributes:
        source: ``"sklearn"`` (built-in 8 x 8 digits, upscaled) or ``"mnist"`` (IDX files).
        mnist_dir: folder with the MNIST IDX files (required for ``source="mnist"``).
        out_dir: run folder.
        seed: seed of the split, the training stream, the test canvases and the weights.
        digit_px: digit side in pixels (sklearn: 8 x 8 upscaled to this; MNIST: 28 = native).
        canvas_px: canvas side in pixels.
        granularity_px: Hilbert cell size = window stride, in pixels (the paper: 8).
        window_px: window side in pixels, >= granularity_px with the same parity.
        min_digits, max_digits: digits per canvas, uniform in this range.
        conv_preset: key of :data:`softloc.models.digits.CONV_PRESETS` (``"vgg13"`` = the paper).
        batch_norm: batch normalisation after each conv.
        lstm_units: LSTM size per direction (the paper: 48).
        bidirectional: bidirectional LSTM.
        hidden_units: fully connected layer size (the paper: 24).
        omega: prior probability of no digit of a class on a canvas, sets the initial output bias
            (LoCo eq. 15).
        k_max: absorbing top bin of the count distribution; ``None`` = ``max_digits + 1``.
        batch_size: canvases per training step.
        max_steps: training steps.
        learning_rate: Adam learning rate (cosine-decayed to 0 over ``max_steps``).
        gradient_clip: gradient-norm clipping threshold.
        threshold: detection threshold on p(t) (strict ``>``).
        match_tolerance_px: largest centre distance of a correct detection, pixels; ``None`` =
            ``digit_px`` (the detection centre is within one digit width of the true centre).
        n_test_canvases: test canvases for detection and counting.
        n_figure_canvases: canvases drawn in ``detections.png``.
        n_tsne: test digits in the t-SNE plot.
        threads: torch CPU threads (``None`` = torch's default).
        log_every_n_steps: CSV logging interval.
    """

    source: str = "sklearn"
    mnist_dir: str | None = None
    out_dir: str = "digits_out"
    seed: int = 0
    digit_px: int = 16
    canvas_px: int = 64
    granularity_px: int = 8
    window_px: int = 16
    min_digits: int = 1
    max_digits: int = 4
    conv_preset: str = "compact"
    batch_norm: bool = False
    lstm_units: int = 48
    bidirectional: bool = True
    hidden_units: int = 24
    omega: float = 0.8
    k_max: int | None = None
    batch_size: int = 32
    max_steps: int = 2000
    learning_rate: float = 2e-3
    gradient_clip: float = 1.0
    threshold: float = 0.5
    match_tolerance_px: float | None = None
    n_test_canvases: int = 500
    n_figure_canvases: int = 8
    n_tsne: int = 450
    threads: int | None = None
    log_every_n_steps: int = 25

    def __post_init__(self) -> None:
        fn = "DigitsConfig"
        if self.source not in SOURCES:
            raise ValueError(f"{fn}: `source` must be one of {SOURCES}, got {self.source!r}")
        if self.source == "mnist" and not self.mnist_dir:
            raise ValueError(f"{fn}: `mnist_dir` is required for source='mnist'")
        if self.conv_preset not in CONV_PRESETS:
            raise ValueError(
                f"{fn}: `conv_preset` must be one of {sorted(CONV_PRESETS)}, "
                f"got {self.conv_preset!r}"
            )
        ints = {
            "digit_px": 4,
            "canvas_px": 1,
            "granularity_px": 1,
            "window_px": 1,
            "min_digits": 0,
            "max_digits": 1,
            "lstm_units": 1,
            "hidden_units": 1,
            "batch_size": 1,
            "max_steps": 0,
            "n_test_canvases": 1,
            "n_figure_canvases": 0,
            "n_tsne": 0,
            "log_every_n_steps": 1,
        }
        for name, minimum in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{fn}: `{name}` must be an int, got {type(value).__name__}")
            if value < minimum:
                raise ValueError(f"{fn}: `{name}` must be >= {minimum}, got {value}")
        for name in ("k_max", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{fn}: `{name}` must be an int or None, got {value!r}")
            if value is not None and value < 1:
                raise ValueError(f"{fn}: `{name}` must be >= 1, got {value}")
        if self.max_digits < self.min_digits:
            raise ValueError(
                f"{fn}: need min_digits <= max_digits, got {self.min_digits} > {self.max_digits}"
            )
        if not 0.0 < self.omega < 1.0:
            raise ValueError(f"{fn}: `omega` must lie in (0, 1), got {self.omega}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"{fn}: `threshold` must lie in [0, 1), got {self.threshold}")
        for name in ("learning_rate", "gradient_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{fn}: `{name}` must be > 0, got {getattr(self, name)}")
        if self.match_tolerance_px is not None and not self.match_tolerance_px > 0:
            raise ValueError(
                f"{fn}: `match_tolerance_px` must be > 0 or None, got {self.match_tolerance_px}"
            )

    @property
    def resolved_k_max(self) -> int:
        return self.k_max if self.k_max is not None else self.max_digits + 1

    @property
    def resolved_tolerance_px(self) -> float:
        tol = self.match_tolerance_px
        return float(self.digit_px if tol is None else tol)


def default_config(source: str = "sklearn", **overrides: Any) -> DigitsConfig:
    """The default configuration of a source; ``overrides`` replace single fields.

    ``"sklearn"``: 16 px digits on 64 px canvases, 8 px granularity, 16 px windows (64 steps).
    ``"mnist"``: 28 px digits on 128 px canvases, 8 px granularity (the paper's), 32 px windows
    (256 steps), up to 8 digits.

    Raises:
        ValueError: unknown source or a bad value; TypeError: an unknown field.
    """
    if source == "sklearn":
        fields: dict[str, Any] = {"source": "sklearn"}
    elif source == "mnist":
        fields = {
            "source": "mnist",
            "digit_px": 28,
            "canvas_px": 128,
            "window_px": 32,
            "max_digits": 8,
            "batch_size": 16,
            "max_steps": 6000,
        }
    else:
        raise ValueError(f"default_config: `source` must be one of {SOURCES}, got {source!r}")
    return DigitsConfig(**(fields | overrides))


def build_digits_model(config: DigitsConfig) -> DigitDetector:
    """The detector of a config (built by name, so a model file rebuilds it), with the LoCo prior
    output bias (LoCo eq. 15)."""
    n_steps = (config.canvas_px // config.granularity_px) ** 2
    return build_model(
        "digits",
        image_px=config.canvas_px,
        granularity_px=config.granularity_px,
        window_px=config.window_px,
        conv_channels=[list(b) for b in CONV_PRESETS[config.conv_preset]],
        batch_norm=config.batch_norm,
        lstm_units=config.lstm_units,
        bidirectional=config.bidirectional,
        hidden_units=config.hidden_units,
        n_classes=N_DIGIT_CLASSES,
        output_bias=prior_output_bias(n_steps, config.omega),
    )


def run_config(config: DigitsConfig) -> RunConfig:
    """The shared run configuration of a digits run: classes ``"0"``..``"9"``, the LoCo loss,
    the optimiser and the decoding (one event per run of curve steps above ``threshold``).

    It is what ``RUN/config.yaml`` and the model file hold; the front-end and CRNN sections keep
    their defaults (an image model has neither).
    """
    return RunConfig(
        classes=tuple(str(c) for c in range(N_DIGIT_CLASSES)),
        # "mean": mean over batch x class of the count NLL, as LoCo's loss (loco_loss's default)
        loss=LossConfig(name="loco", k_max=config.resolved_k_max, reduction="mean"),
        supervision=SupervisionConfig(labels="counts"),
        data=DataConfig(batch_size=config.batch_size),
        train=TrainConfig(learning_rate=config.learning_rate, max_steps=config.max_steps,
                          lr_schedule="cosine", grad_clip_norm=config.gradient_clip,
                          seed=config.seed, num_threads=config.threads or 0),
        inference=InferenceConfig(threshold=config.threshold, min_distance_s=1.0,
                                  calibrate_offset=False, calibrate_threshold=False),
    )


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


def _load_digits(config: DigitsConfig) -> DigitSet:
    if config.source == "sklearn":
        return load_sklearn_digits(digit_px=config.digit_px, seed=config.seed)
    assert config.mnist_dir is not None  # checked in DigitsConfig
    return load_mnist(config.mnist_dir, digit_px=config.digit_px)


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"run_digits: `out_dir` {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"run_digits: `out_dir` {out} is not empty; choose a new folder or pass "
            "overwrite=True (--overwrite) to replace the files of an earlier run"
        )
    out.mkdir(parents=True, exist_ok=True)


def _collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Canvases of a :class:`CanvasStream` -> the batch dict of ``EventModule``."""
    images, counts = zip(*items, strict=True)
    return {"inputs": torch.stack(images), "counts": torch.stack(counts)}  # (B,1,H,W), (B,C)


def _train(config: DigitsConfig, digits: DigitSet, model: DigitDetector, out: Path) -> int:
    """Train ``model`` from canvas counts with the LoCo loss in an ``EventModule``; the steps."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from softloc.training import EventModule, OptimSettings

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no start-up chatter

    shared = run_config(config)
    # One Hilbert step per "frame": the LoCo count loss has no time scale.
    loss = build_loss(shared.loss, frame_rate=1.0, max_steps=shared.train.max_steps)
    module = EventModule(model, loss, optim=OptimSettings.from_config(shared.train))
    stream = CanvasStream(digits.train_images, digits.train_labels, canvas_px=config.canvas_px,
                          min_digits=config.min_digits, max_digits=config.max_digits,
                          seed=config.seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=config.batch_size, num_workers=0,
                                         collate_fn=_collate)
    trainer = L.Trainer(
        max_steps=config.max_steps,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=config.gradient_clip,
        logger=CSVLogger(str(out), name="logs", version=""),
        # Log at least once, so short runs also leave a metrics.csv.
        log_every_n_steps=max(1, min(config.log_every_n_steps, config.max_steps)),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        default_root_dir=str(out),
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    if config.max_steps > 0:
        with warnings.catch_warnings():  # training only: no validation loop by design
            warnings.filterwarnings("ignore", message=".*validation_step.*val_dataloader.*")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.fit(module, train_dataloaders=loader)
    model.eval()
    return int(trainer.global_step)


def _evaluate(config: DigitsConfig, digits: DigitSet, model: DigitDetector, out: Path
              ) -> dict[str, Any]:
    """Scores on held-out digits (fixed seeds, independent of the training stream); writes
    ``detections.png`` and ``tsne.png``."""
    test = make_canvases(digits.test_images, digits.test_labels,
                         n_canvases=config.n_test_canvases, canvas_px=config.canvas_px,
                         min_digits=config.min_digits, max_digits=config.max_digits,
                         rng=np.random.default_rng([config.seed, 1]))
    probs = predict_probabilities(model, test.images)
    scores = evaluate_detections(probs, test, granularity_px=config.granularity_px,
                                 threshold=config.threshold,
                                 tolerance_px=config.resolved_tolerance_px,
                                 k_max=config.resolved_k_max)
    scores["recognition_accuracy"] = recognition_accuracy(
        model, digits.test_images, digits.test_labels, rng=np.random.default_rng([config.seed, 2])
    )
    knn, embedding, tsne_labels = representation_scores(model, digits, n_tsne=config.n_tsne,
                                                        seed=config.seed)
    scores["representation_knn_accuracy"] = knn
    n = min(config.n_figure_canvases, len(test))
    found = [decode_detections(probs[k], image_px=config.canvas_px,
                               granularity_px=config.granularity_px, threshold=config.threshold)
             for k in range(n)]
    plot_digit_detections(test.images[:n], test.centres_px[:n], test.labels[:n],
                          [f[0] for f in found], [f[1] for f in found], out / "detections.png",
                          digit_px=test.digit_px, threshold=config.threshold)
    if embedding is not None:
        plot_tsne(embedding, tsne_labels, out / "tsne.png",
                  title=f"t-SNE of conv features, {len(tsne_labels)} test digits "
                  f"({config.source})")
    return scores


def run_digits(config: DigitsConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Train the Hilbert-curve digit detector from counts, evaluate it, write the run folder.

    Args:
        config: the run configuration (see :class:`DigitsConfig`, :func:`default_config`).
        overwrite: allow a non-empty ``config.out_dir`` (its files of the same names are
            replaced). Default False: a non-empty folder is an error, so nothing is lost.

    Returns:
        The results written to ``results.json`` (see the module docstring), including
        ``recognition_accuracy``, ``centre_distance_px``, ``granularity_px``, ``detection_f1``,
        ``count_accuracy``, ``train_time_s`` and ``total_time_s``.

    Raises:
        TypeError / ValueError: a bad config (from :class:`DigitsConfig`) or bad data files.
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
        FileNotFoundError: MNIST files missing.
    """
    if not isinstance(config, DigitsConfig):
        raise TypeError(f"run_digits: `config` must be a DigitsConfig, got {type(config).__name__}")
    out = Path(config.out_dir)
    _prepare_out_dir(out, overwrite)
    threads_before = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, out)
    finally:
        torch.set_num_threads(threads_before)


def _run(config: DigitsConfig, out: Path) -> dict[str, Any]:
    import lightning as L

    t_start = time.perf_counter()
    L.seed_everything(config.seed, workers=True, verbose=False)
    digits = _load_digits(config)
    resolved = dataclasses.asdict(config) | {
        "k_max": config.resolved_k_max,
        "match_tolerance_px": config.resolved_tolerance_px,
    }
    shared = run_config(config)
    save_config(shared, out / "config.yaml")
    atomic_write_text(out / "digits.yaml", yaml.safe_dump(
        {"experiment": "digits", "config": resolved, "versions": provenance()}, sort_keys=False))

    model = build_digits_model(config)
    t_train = time.perf_counter()
    steps = _train(config, digits, model, out)
    train_time_s = time.perf_counter() - t_train
    save_model_file(out / MODEL_FILE, model, shared, extra={"digits": resolved},
                    input_kind=HilbertImageInput.kind)

    scores = _evaluate(config, digits, model, out)
    distance = scores.pop("centre_distance_px")
    results: dict[str, Any] = {
        "experiment": "digits",
        "source": config.source,
        "recognition_accuracy": scores.pop("recognition_accuracy"),
        "centre_distance_px": distance,
        "granularity_px": config.granularity_px,
        "centre_distance_over_granularity": (
            distance / config.granularity_px if distance is not None else None
        ),
        **scores,
        "match_tolerance_px": config.resolved_tolerance_px,
        "threshold": config.threshold,
        "n_test_canvases": config.n_test_canvases,
        "n_test_digits": int(len(digits.test_labels)),
        "steps": steps,
        "train_time_s": train_time_s,
        "total_time_s": time.perf_counter() - t_start,
        "threads": torch.get_num_threads(),
        "softloc_version": __version__,
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    return results
