"""The sections of a run configuration: one frozen dataclass per concern, composed into
:class:`RunConfig`. Each validates its values in ``__post_init__`` (a ValueError naming
the dotted key). Reading and writing them: ``softloc.config.files``."""


from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from softloc.data.augment import AugmentSettings
from softloc.features import FrontEndConfig
from softloc.losses._core import DISTANCES
from softloc.losses.registry import LOSS_NAMES, canonical_loss_name

__all__ = [
    "ModelConfig",
    "LossConfig",
    "SupervisionConfig",
    "DataConfig",
    "TrainConfig",
    "InferenceConfig",
    "RunConfig",
    "CALIBRATION_SOURCES",
    "LABEL_MODES",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "PRECISIONS",
    "parse_devices",
]


def _loss_name(name: str) -> str:
    """``loss.name`` in the registry's spelling, or a ValueError naming ``loss.name``."""
    try:
        return canonical_loss_name(name)
    except ValueError:
        raise ValueError(f"`loss.name` must be one of {LOSS_NAMES}, got {name!r}") from None


def _require(ok: bool, key: str, expected: str, got: object) -> None:
    """A ValueError naming the dotted ``key`` unless ``ok``."""
    if not ok:
        raise ValueError(f"`{key}` must be {expected}, got {got!r}")


def _finite(x: float) -> bool:
    return math.isfinite(x)


#: Sensor networks of ``model.name`` (``softloc.models.sensor``).
_SENSOR_NETWORKS = ("signal-crnn", "fc-lstm")
#: Networks on audio (the power mel of ``features``); the others read signal datasets.
AUDIO_NETWORKS = ("crnn", "harmonic-key")


@dataclass(frozen=True)
class ModelConfig:
    """CRNN sizes (fact sheet §3.1; defaults = drums).

    Attributes:
        conv_filters: output channels per [3 x 4] conv layer.
        pool_sizes: frequency-only max-pool size after each conv.
        kernel_time: conv kernel extent in frames.
        kernel_freq: conv kernel extent in feature bins.
        lstm_units: LSTM hidden size.
        hidden_units: sigmoid hidden layer of the head.
        prior_omega: Pr(no event of a class in a training window) encoded in the output bias
            (LoCo eq. 15 over the window's frames). The SoftLoc/drum code used exponent 2/T, i.e.
            omega = 0.64 with exponent 1/T; LoCo used 0.8.
        per_class: one network per class (the papers) instead of one multi-class network.
        input_scale: constant factor on the log-mel/delta features (dB); 1.0 = as computed, 2.0
            = the official 20*log10; 0.05 (dB/20) keeps the high learning rates stable.
        exact_prior: make LoCo eq. 15 hold at initialisation: before training, shift each
            class's output bias so that its mean logit over the first training batch is the
            eq. 15 bias (``softloc.training.recipe``); the N(0, 1) head weights of the official
            code otherwise add a random offset of several logits per class. ``false`` = the
            official code's bias only.
        prior_from_counts: with ``exact_prior``, give each class its own initial rate: the bias
            whose expected count per training window is that class's mean count in the first
            training batch (classes without events there keep ``prior_omega``). One
            ``prior_omega`` for all classes starts frequent classes (hi-hats: ~5 per 1.5 s
            window) and rare ones at the same ~0.45 events per window.
        unit_variance_init: before training, scale each convolution so that its output has unit
            variance on the first training batch (LSUV, ``softloc.training.recipe``); with the
            official Glorot init the activations shrink ~2.5x per conv layer and the initial
            network barely depends on its input. ``false`` = the official init.
        name: the network: ``crnn`` (the audio CRNN above; ``per_class`` picks the per-class
            one), ``harmonic-key`` (piano keys: one onset detector shared by all keys on a
            semitone grid, ``softloc.models.harmonic``; classes must be consecutive MIDI
            numbers; its sizes come from ``args``) or a sensor network of
            ``softloc.models.sensor`` (``signal-crnn`` on raw signals, ``fc-lstm`` on feature
            steps), which is built from ``args`` and reads signal datasets (``ROOT/signals/``;
            ``softloc.models.sensor.sensor_spec``).
        args: constructor arguments of a sensor network (``name`` other than ``crnn``), e.g.
            ``{conv_channels: [16, 32], strides: [3, 6], kernel_sizes: [9, 5], gru_units: 0}``;
            the CRNN fields above are ignored then.
    """

    conv_filters: tuple[int, ...] = (8, 16, 16, 16, 16, 16)
    pool_sizes: tuple[int, ...] = (2, 2, 2, 2, 3, 3)
    kernel_time: int = 3
    kernel_freq: int = 4
    lstm_units: int = 24
    hidden_units: int = 16
    prior_omega: float = 0.64
    per_class: bool = False
    input_scale: float = 0.05
    exact_prior: bool = True
    prior_from_counts: bool = False
    unit_variance_init: bool = False
    name: str = "crnn"
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(isinstance(self.args, dict) and all(isinstance(k, str) for k in self.args),
                 "model.args", "a mapping of argument names to values", self.args)
        _require(self.name in AUDIO_NETWORKS + _SENSOR_NETWORKS, "model.name",
                 f"one of {AUDIO_NETWORKS + _SENSOR_NETWORKS}", self.name)
        _require(bool(self.conv_filters) and all(f >= 1 for f in self.conv_filters),
                 "model.conv_filters", "a non-empty list of channel counts >= 1",
                 list(self.conv_filters))
        _require(len(self.pool_sizes) == len(self.conv_filters)
                 and all(p >= 1 for p in self.pool_sizes), "model.pool_sizes",
                 f"{len(self.conv_filters)} pool sizes >= 1 (one per conv layer)",
                 list(self.pool_sizes))
        for key in ("kernel_time", "kernel_freq", "lstm_units", "hidden_units"):
            _require(getattr(self, key) >= 1, f"model.{key}", "an integer >= 1",
                     getattr(self, key))
        _require(0 < self.prior_omega < 1, "model.prior_omega", "in (0, 1)", self.prior_omega)
        _require(_finite(self.input_scale) and self.input_scale > 0, "model.input_scale",
                 "a finite number > 0", self.input_scale)


@dataclass(frozen=True)
class LossConfig:
    """Training objective.

    Attributes:
        name: one of ``LOSS_NAMES`` (``softloc.losses.registry`` says what each one needs
            and trains on): ``loco`` (counts only, LoCo eq. 7), ``softloc`` (timestamps with
            softness, SoftLoc eq. 4), ``bce`` (exact timestamps, frame-wise binary cross-entropy,
            the fully supervised reference), ``smoothed-bce`` (cross-entropy against a peak-1
            Gaussian heat map of the labels), ``one-sided`` (labels smoothed only, SoftLoc
            baseline), ``bootstrap`` (bootstrapping baseline) ... Underscores are accepted and
            stored as hyphens.
        k_max: top (absorbing) count bin; drums used 23 bins (k_max = 22).
        softness_ms: sigma of the SoftLoc Gaussian in milliseconds, >= 0. ``0`` with
            ``distance: log`` and α = 0 is the frame-wise cross-entropy (SoftLoc eq. 5);
            ``.inf`` (YAML) / ``inf`` leaves α·L_MC, LoCo's count loss (SoftLoc eq. 6).
        distance: the point-wise measure of L_SLL: ``squared`` (all SoftLoc experiments) or
            ``log``, −log(1 − |Φ∗p − Φ∗y|) (SoftLoc eq. 5).
        alpha_min: SoftLoc weight α of the count term before/at the start of the ramp.
        alpha_max: α at the end of the ramp (α = clip((step − start) / ramp, min, max), eq. 4).
        alpha_start_fraction: where the ramp starts, as a fraction of ``train.max_steps``
            (``null``: ``alpha_start_step``). The drums value 0.2 and ``alpha_ramp_fraction``
            2/3 are the paper's 30 000 and 100 000 of 150 000 steps (α 0.2 until a third of the
            run, 0.9 from four fifths on), so the schedule has the same shape at any run length.
        alpha_ramp_fraction: steps over which α rises by 1, as a fraction of ``train.max_steps``
            (``null``: ``alpha_ramp_steps``).
        alpha_start_step: the ramp start in absolute optimiser steps, used when
            ``alpha_start_fraction`` is null (the paper's drums value: 30 000).
        alpha_ramp_steps: the ramp length in absolute steps, used when ``alpha_ramp_fraction``
            is null (the paper: 100 000).
        bootstrap_beta: β of the soft bootstrapping baseline (Reed et al. 2014), in [0, 1].
        reduction: reduction of the time-summing losses (``softloc``, ``one_sided``):
            ``classes`` (the original: sum over batch and time / classes, so the localisation term
            keeps its weight against the count term) or ``mean`` (per row, batch-size free).
        label_noise_ms: the standard deviation ν of the timestamp noise the labels are believed
            to carry (``softloc`` and ``sll`` only; 0 = off, the paper's loss). The SLL then
            compares Φ_σ∗Φ_ν∗p with Φ_σ∗y: under N(0, ν²) noise the expected label series is
            Φ_ν∗y, so sharp peaks at the true times, not peaks spread by ν, minimise the loss
            (an extension; SoftLoc eq. 2 filters both sides with Φ_σ alone).
    """

    name: str = "loco"
    k_max: int = 22
    softness_ms: float = 100.0
    distance: str = "squared"
    alpha_min: float = 0.2
    alpha_max: float = 0.9
    alpha_start_fraction: float | None = 0.2
    alpha_ramp_fraction: float | None = 0.6667
    alpha_start_step: int = 30000
    alpha_ramp_steps: int = 100000
    bootstrap_beta: float = 0.95
    reduction: str = "classes"
    label_noise_ms: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _loss_name(self.name))
        _require(self.reduction in ("classes", "mean"), "loss.reduction", "'classes' or 'mean'",
                 self.reduction)
        _require(self.distance in DISTANCES, "loss.distance", f"one of {DISTANCES}",
                 self.distance)
        _require(self.k_max >= 1, "loss.k_max", "an integer >= 1", self.k_max)
        _require(self.softness_ms >= 0, "loss.softness_ms",
                 "a number >= 0 (inf = counts only)", self.softness_ms)
        _require(0 <= self.label_noise_ms < math.inf, "loss.label_noise_ms",
                 "a finite number of milliseconds >= 0", self.label_noise_ms)
        for key in ("alpha_min", "alpha_max", "bootstrap_beta"):
            _require(0 <= getattr(self, key) <= 1, f"loss.{key}", "in [0, 1]",
                     getattr(self, key))
        _require(self.alpha_min <= self.alpha_max, "loss.alpha_min",
                 f"<= loss.alpha_max ({self.alpha_max})", self.alpha_min)
        start, ramp = self.alpha_start_fraction, self.alpha_ramp_fraction
        _require(start is None or 0 <= start <= 1, "loss.alpha_start_fraction",
                 "null or in [0, 1]", start)
        _require(ramp is None or 0 < ramp <= 1, "loss.alpha_ramp_fraction",
                 "null or in (0, 1]", ramp)
        _require(self.alpha_start_step >= 0, "loss.alpha_start_step", "an integer >= 0",
                 self.alpha_start_step)
        _require(self.alpha_ramp_steps >= 1, "loss.alpha_ramp_steps", "an integer >= 1",
                 self.alpha_ramp_steps)


#: Supervision modes (``supervision.labels``).
LABEL_MODES = ("counts", "onsets", "mixed")


@dataclass(frozen=True)
class SupervisionConfig:
    """Which labels a run trains on (SoftLoc §4.4; ``softloc.data.supervision``).

    Attributes:
        labels: ``counts`` (``counts.csv`` windows only, LoCo), ``onsets`` (windows cut from
            annotated files, counts derived from the events), or ``mixed`` (annotated files as
            in ``onsets``, training files without annotations from their ``counts.csv`` windows,
            count term only).
        annotations: annotation folders relative to the dataset root (or absolute), one per
            annotator, each ``"DIR"`` or ``"DIR:SOFTNESS_MS"``; the first one also gives the
            validation labels.
        softness_csv: per-file softness table (``file,softness_ms``); ``None`` = the dataset's
            ``softness.csv`` when there is one.
        label_noise: perturb the training AND validation timestamps, e.g. ``"normal:100ms"``
            (``softloc.noise``), so that nothing before the test sees a clean label;
            ``None`` = as annotated.
    """

    labels: str = "counts"
    annotations: tuple[str, ...] = ("annotations",)
    softness_csv: str | None = None
    label_noise: str | None = None

    def __post_init__(self) -> None:
        if self.labels not in LABEL_MODES:
            raise ValueError(
                f"SupervisionConfig: `labels` must be one of {LABEL_MODES}, got {self.labels!r}"
            )
        if not self.annotations:
            raise ValueError(
                "SupervisionConfig: `annotations` is empty; expected at least one folder"
            )


@dataclass(frozen=True)
class DataConfig:
    """Training windows and augmentation (fact sheet §2.5, drums).

    Attributes:
        window_s: training/inference window length in seconds.
        hop_s: hop between the training windows cut from annotated files (onsets mode).
        rate_factors: precomputed sample-rate variation factors (7/8 .. 9/8); ``[1.0]`` disables.
        stack_prob: probability of summing a second window into a training window (extract
            stacking; counts and targets add).
        variable_length: randomly shorten training windows (LoCo §4.5).
        valid_fraction: share of stems used for validation when ``splits/`` is absent, and the
            share of the training stems carved out (seeded by ``train.seed``, announced and
            recorded in ``RUN/metrics.json``) when ``splits/`` has no ``valid.txt``.
        test_fraction: share of stems used for test when ``splits/`` is absent.
        batch_size: training batch size.
        num_workers: DataLoader worker processes (0 = in the main process).
        augment_renditions: audio-augmented renditions per training file (0 = none): each is
            the whole file through ``augment`` (``softloc.data.augment.augment_window``),
            computed once per (file, seed, index) and cached; training windows are drawn from
            the rate-factor versions and the renditions alike (``softloc.data.windows``).
        augment: the augmentation chain of the renditions (``AugmentSettings``: rate
            U[7/8, 9/8), time-stretch, pitch, EQ, gain, noise, reverb, each with its
            probability).
    """

    window_s: float = 1.5
    hop_s: float = 0.5
    rate_factors: tuple[float, ...] = (0.875, 1.0, 1.125)
    stack_prob: float = 0.0
    variable_length: bool = True
    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    batch_size: int = 32
    num_workers: int = 0
    augment_renditions: int = 0
    augment: AugmentSettings = field(default_factory=AugmentSettings)

    def __post_init__(self) -> None:
        for key in ("window_s", "hop_s"):
            v = getattr(self, key)
            _require(_finite(v) and v > 0, f"data.{key}", "a finite number of seconds > 0", v)
        _require(bool(self.rate_factors) and all(_finite(f) and f > 0 for f in self.rate_factors),
                 "data.rate_factors", "a non-empty list of factors > 0",
                 list(self.rate_factors))
        _require(0 <= self.stack_prob <= 1, "data.stack_prob", "in [0, 1]", self.stack_prob)
        for key in ("valid_fraction", "test_fraction"):
            _require(0 <= getattr(self, key) < 1, f"data.{key}", "in [0, 1)", getattr(self, key))
        _require(self.valid_fraction + self.test_fraction < 1, "data.valid_fraction",
                 f"< 1 - data.test_fraction ({1 - self.test_fraction:g})", self.valid_fraction)
        _require(self.batch_size >= 1, "data.batch_size", "an integer >= 1", self.batch_size)
        _require(self.num_workers >= 0, "data.num_workers", "an integer >= 0", self.num_workers)


#: Optimisers of ``train.optimizer``.
OPTIMIZERS = ("adam", "adamw")
#: Learning-rate schedules of ``train.lr_schedule``.
LR_SCHEDULES = ("constant", "cosine")
#: Which weights a run keeps: ``train.select_checkpoint``.
CHECKPOINT_CHOICES = ("best", "last")
#: Lightning precisions accepted by ``train.precision``.
PRECISIONS = ("32-true", "64-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed",
              "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16")


def parse_devices(devices: str) -> int | str | list[int]:
    """Lightning's ``devices`` from ``train.devices``: ``"2"`` -> 2, ``"0,1"`` -> [0, 1],
    ``"auto"`` -> ``"auto"``, ``"-1"`` -> -1 (all).

    Raises:
        ValueError: anything else (``"foo"``, ``"0"``, ``"1,a"``), naming ``train.devices``.
    """
    text = str(devices).strip()
    expected = "'auto', a count >= 1, -1 (all) or a list of device indices like '0,1'"
    if text == "auto":
        return text
    if "," in text:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        _require(bool(parts) and all(p.isdigit() for p in parts), "train.devices", expected,
                 devices)
        return [int(p) for p in parts]
    _require(text.isdigit() and int(text) >= 1 or text == "-1", "train.devices", expected,
             devices)
    return int(text)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the Lightning trainer (the recipe: ``softloc.training.module``).

    Attributes:
        learning_rate: peak learning rate. The paper used Adam at 1e-4 for 150k steps; the
            presets use a larger rate and far fewer steps so that training fits in minutes on a
            CPU.
        max_steps: optimiser steps.
        optimizer: ``adamw`` (Adam with decoupled weight decay on the weight matrices; biases
            and the output prior are not decayed) or ``adam`` (the papers).
        weight_decay: AdamW's decoupled weight decay (ignored by ``adam``).
        warmup_steps: linear learning-rate warm-up from ``learning_rate / warmup_steps`` to
            ``learning_rate`` over the first steps (0 = none), in absolute steps so that a
            resumed or extended run keeps it.
        lr_schedule: ``constant`` (the papers) or ``cosine`` (decay to 5% of the rate at
            ``max_steps``; sharpens the count-trained outputs at the end of short schedules).
        grad_clip_norm: global gradient-norm clip (10 in the official code; 0 = off).
        val_every_n_steps: validation (and checkpoint) interval in steps.
        select_checkpoint: the weights the run keeps (``model.pt``, calibrated on the validation
            files): ``best`` (highest ``val/score``) or ``last`` (the end of the schedule; with
            a cosine decay and a noisy ``val/score`` such as the exact-count rate of
            counts-only runs, ``best`` can pick a half-trained network).
        seed: seed of everything (data order, augmentation, initialisation, validation carve).
        accelerator: Lightning accelerator (``auto``: a GPU when there is one, else the CPU;
            ``cpu``, ``gpu`` ...).
        devices: Lightning devices (``"1"``, ``"2"``, ``"0,1"``, ``"auto"``).
        num_nodes: nodes for multi-node DDP.
        strategy: Lightning strategy (``auto``, ``ddp`` ...).
        precision: Lightning precision (``32-true``, ``bf16-mixed`` ...; :data:`PRECISIONS`).
        num_threads: torch CPU threads (0 = torch's default).
        keep_freed_memory: let glibc's malloc keep freed memory for the next step
            (:func:`softloc.runtime.keep_freed_memory`: 20-30 % less time on CPU where steps
            allocate large tensors; memory freed after the peak is not returned until exit).
    """

    learning_rate: float = 5e-3
    max_steps: int = 1200
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    lr_schedule: str = "cosine"
    grad_clip_norm: float = 10.0
    val_every_n_steps: int = 200
    select_checkpoint: str = "best"
    seed: int = 0
    accelerator: str = "auto"
    devices: str = "1"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_threads: int = 0
    keep_freed_memory: bool = True

    def __post_init__(self) -> None:
        _require(self.lr_schedule in LR_SCHEDULES, "train.lr_schedule", f"one of {LR_SCHEDULES}",
                 self.lr_schedule)
        _require(self.optimizer in OPTIMIZERS, "train.optimizer", f"one of {OPTIMIZERS}",
                 self.optimizer)
        _require(_finite(self.learning_rate) and self.learning_rate > 0, "train.learning_rate",
                 "a finite number > 0", self.learning_rate)
        _require(_finite(self.weight_decay) and self.weight_decay >= 0, "train.weight_decay",
                 "a finite number >= 0", self.weight_decay)
        _require(self.max_steps >= 1, "train.max_steps", "an integer >= 1", self.max_steps)
        _require(self.warmup_steps >= 0, "train.warmup_steps", "an integer >= 0",
                 self.warmup_steps)
        _require(_finite(self.grad_clip_norm) and self.grad_clip_norm >= 0,
                 "train.grad_clip_norm", "a finite number >= 0 (0 = off)", self.grad_clip_norm)
        _require(self.val_every_n_steps >= 1, "train.val_every_n_steps", "an integer >= 1",
                 self.val_every_n_steps)
        _require(self.select_checkpoint in CHECKPOINT_CHOICES, "train.select_checkpoint",
                 f"one of {CHECKPOINT_CHOICES}", self.select_checkpoint)
        _require(0 <= self.seed < 2**32, "train.seed", "an integer in [0, 2**32)", self.seed)
        _require(self.num_nodes >= 1, "train.num_nodes", "an integer >= 1", self.num_nodes)
        _require(self.num_threads >= 0, "train.num_threads", "an integer >= 0 (0 = default)",
                 self.num_threads)
        _require(str(self.precision) in PRECISIONS, "train.precision", f"one of {PRECISIONS}",
                 self.precision)
        parse_devices(self.devices)


#: Accepted values of ``inference.calibrate_with``.
CALIBRATION_SOURCES = ("auto", "timestamps", "counts")


@dataclass(frozen=True)
class InferenceConfig:
    """Whole-file detection (fact sheet §5).

    Attributes:
        threshold: event threshold on p(t), in (0, 1) (0.4 for drums in the official code).
        hop_s: hop between the overlapping inference windows.
        time_offset_s: added to every detected time; calibrated on validation data after
            training when timestamps are available (``calibrate_offset``).
        min_distance_s: minimum distance between two events of one class (peak picking).
        tta_factors: extra sample-rate factors for test-time augmentation (empty = off).
        calibrate_offset: estimate per-class time offsets on validation annotations after
            training (when the thresholds are calibrated on timestamps).
        calibrate_threshold: choose per-class thresholds on the validation files: maximising F1
            against their timestamps, or, from counts, minimising the count error of the
            detections in the validation count windows.
        calibrate_with: ``"auto"`` (``softloc.inference.calibrate.calibration_source``: counts
            whenever the validation timestamps may be noisy — count-trained runs, label noise,
            SoftLoc/LoCo losses — else timestamps), ``"timestamps"`` or ``"counts"``
            (thresholds only; a count carries no time, so offsets stay as they are).
        calibrate_min_events: from counts, a class with fewer counted validation events takes
            the threshold that best reproduces the counts of all classes together (its own few
            windows cannot pick one; with none, every threshold ties). 0 = always per class.
        calibrate_per_class: ``False``: ONE threshold for every class, the one that best
            reproduces the counts (or F1 over the timestamps) of all classes together. For many
            classes with few validation events each (88 piano keys: per-key thresholds from 6
            validation files cost 1.8 points of test F1 against the pooled one,
            docs/results.md).
        batch_size: windows per forward pass (8: the CRNN's activations stay in cache).
        class_offsets_s: per-class offsets added on top of ``time_offset_s`` (empty = none);
            written by the calibration.
        class_thresholds: per-class thresholds replacing ``threshold`` (empty = ``threshold``);
            written by the calibration.
        decoder: ``threshold`` (one event per run of p(t) above the threshold, at its peak) or
            ``clean`` (the official code's cleaning rule on the windows' trigger density;
            ``softloc.inference.ensemble``).
        tta_ensemble: how the ``tta_factors`` copies are combined: ``mean`` (p(t) mapped back
            and averaged) or ``nw`` (the official Nadaraya–Watson ensembling of the copies'
            triggers with greedy extraction).
        nw_bandwidth_s: NW kernel bandwidth (25 ms = the original 5 frames at 200 frames/s).
        nw_min_mass_per_copy: ensemble mass an NW event must exceed, per copy (the original
            drums: 0.25 over 7 copies).
        nw_suppression_s: half-width of the triggers cleared around an NW event (45 ms = 9
            frames).
        clean_window_s: forward window of the cleaning rule (45 ms = 9 frames).
        clean_min_mass_s: trigger density the cleaning window must hold, in seconds of full
            agreement (2.5 ms = the original 0.5 frames at 200 frames/s).
        snap_radius_s: signal runs only: move each detection to the signal's largest
            deflection within this radius (``softloc.decode.refine``, R-peak correction as in
            ``wfdb.processing.correct_peaks``); 0 = off. For annotations that mark a signal
            extremum (ECG R peaks), which counts alone cannot teach.
        snap_smooth_s: moving-average window subtracted from the signal before the search.
        snap_direction: ``both`` (default: the largest deflection of either sign, i.e. the
            maximum of the rectified signal, decided per event), ``compare`` (maxima or minima,
            one direction for the whole file, whichever stands out more), ``up`` or ``down``.
            On the MIT-BIH records ``compare`` chose the wrong sign on record 108 (biphasic QRS
            with a deep S wave) for some models; ``both`` did not (docs/results.md, issue 15).
        snap_channel: the signal channel searched.
        align_to_onsets: audio runs calibrated on counts (which carry no time): ``none``
            (offsets untouched), ``pooled`` (one offset for all classes) or ``per-class`` (a
            class with too few detections takes the pooled one) that aligns the validation
            detections with the audio's onset strength
            (``softloc.inference.calibrate.onset_alignment_offset``); needs
            ``calibrate_offset``. A counts-trained model can fire a fixed latency after the
            sound, different from seed to seed (piano-loco seed 1: 31 ms late, docs/results.md).
    """

    threshold: float = 0.4
    hop_s: float = 0.5
    time_offset_s: float = 0.0
    min_distance_s: float = 0.03
    tta_factors: tuple[float, ...] = ()
    calibrate_offset: bool = True
    calibrate_threshold: bool = True
    calibrate_with: str = "auto"
    calibrate_min_events: int = 10
    calibrate_per_class: bool = True
    batch_size: int = 8
    class_offsets_s: tuple[float, ...] = ()
    class_thresholds: tuple[float, ...] = ()
    decoder: str = "threshold"
    tta_ensemble: str = "mean"
    nw_bandwidth_s: float = 0.025
    nw_min_mass_per_copy: float = 0.036
    nw_suppression_s: float = 0.045
    clean_window_s: float = 0.045
    clean_min_mass_s: float = 0.0025
    snap_radius_s: float = 0.0
    snap_smooth_s: float = 0.15
    snap_direction: str = "both"
    snap_channel: int = 0
    align_to_onsets: str = "none"

    def __post_init__(self) -> None:
        if self.calibrate_with not in CALIBRATION_SOURCES:
            raise ValueError(
                f"InferenceConfig: `calibrate_with` must be one of {CALIBRATION_SOURCES}, "
                f"got {self.calibrate_with!r}"
            )
        if isinstance(self.calibrate_min_events, bool) or \
                not isinstance(self.calibrate_min_events, int) or self.calibrate_min_events < 0:
            raise ValueError("InferenceConfig: `calibrate_min_events` must be an int >= 0, got "
                             f"{self.calibrate_min_events!r}")
        if self.decoder not in ("threshold", "clean") or self.tta_ensemble not in ("mean", "nw"):
            raise ValueError(
                f"InferenceConfig: `decoder` must be 'threshold' or 'clean' and `tta_ensemble` "
                f"'mean' or 'nw', got {self.decoder!r} and {self.tta_ensemble!r}"
            )
        for key in ("nw_bandwidth_s", "nw_min_mass_per_copy", "nw_suppression_s",
                    "clean_window_s", "clean_min_mass_s"):
            value = getattr(self, key)
            if not (value > 0 and value < float("inf")):
                raise ValueError(f"InferenceConfig: `{key}` must be a finite number > 0, got "
                                 f"{value!r}")
        _require(0 < self.threshold < 1, "inference.threshold", "in (0, 1)", self.threshold)
        _require(all(0 < t < 1 for t in self.class_thresholds), "inference.class_thresholds",
                 "thresholds in (0, 1)", list(self.class_thresholds))
        _require(_finite(self.hop_s) and self.hop_s > 0, "inference.hop_s",
                 "a finite number of seconds > 0", self.hop_s)
        _require(_finite(self.time_offset_s) and all(_finite(o) for o in self.class_offsets_s),
                 "inference.time_offset_s", "finite offsets in seconds",
                 [self.time_offset_s, *self.class_offsets_s])
        _require(_finite(self.min_distance_s) and self.min_distance_s >= 0,
                 "inference.min_distance_s", "a finite number of seconds >= 0",
                 self.min_distance_s)
        _require(all(_finite(f) and f > 0 for f in self.tta_factors), "inference.tta_factors",
                 "factors > 0", list(self.tta_factors))
        _require(self.batch_size >= 1, "inference.batch_size", "an integer >= 1",
                 self.batch_size)
        _require(_finite(self.snap_radius_s) and self.snap_radius_s >= 0,
                 "inference.snap_radius_s", "a finite number of seconds >= 0 (0 = off)",
                 self.snap_radius_s)
        _require(_finite(self.snap_smooth_s) and self.snap_smooth_s > 0,
                 "inference.snap_smooth_s", "a finite number of seconds > 0", self.snap_smooth_s)
        _require(self.align_to_onsets in ("none", "pooled", "per-class"),
                 "inference.align_to_onsets", "one of 'none', 'pooled', 'per-class'",
                 self.align_to_onsets)
        _require(self.snap_direction in ("compare", "up", "down", "both"),
                 "inference.snap_direction", "one of 'compare', 'up', 'down', 'both'",
                 self.snap_direction)
        _require(not isinstance(self.snap_channel, bool) and isinstance(self.snap_channel, int)
                 and self.snap_channel >= 0, "inference.snap_channel", "an integer >= 0",
                 self.snap_channel)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; stored as ``config.yaml`` in the run folder.

    Attributes:
        classes: class labels in output order (filled from the dataset when empty).
    """

    features: FrontEndConfig = field(default_factory=FrontEndConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    classes: tuple[str, ...] = ()
