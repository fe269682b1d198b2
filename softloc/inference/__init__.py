"""Inference: load a trained run and detect events (never imports Lightning or training code).

* ``model_file``: the one self-describing model file (``RUN/model.pt``): save, read, resolve;
* ``detector``: :class:`Detector` (input stage -> windows -> network -> p(t) -> events);
* ``batch``: files, folders and globs -> an output folder (``softloc detect``);
* ``calibrate``: per-class thresholds and time offsets chosen on validation data;
* ``ensemble``: test-time augmentation with the official Nadaraya–Watson ensembling, and the
  cleaning decoder (``inference.decoder`` / ``inference.tta_ensemble``);
* ``images``: the input stage of image networks read along a Hilbert curve (digits runs);
* ``signals``: the input stage of the sensor networks (time series, ``softloc.models.sensor``).
"""

from __future__ import annotations

from softloc.inference.batch import (
    BatchReport,
    DetectJob,
    collect_audio_inputs,
    detect_batch,
    detect_to_folder,
    detection_metadata,
    plan_outputs,
)
from softloc.inference.calibrate import (
    THRESHOLD_GRID,
    calibrate,
    calibrate_from_counts,
    calibrate_from_timestamps,
    calibrate_time_offset,
    calibration_source,
    onset_alignment_offset,
    onset_alignment_offsets,
)
from softloc.inference.detector import (
    INPUT_STAGES,
    PRETRAINED_DRUMS,
    SMALL_MODEL_PARAMETERS,
    AudioInput,
    Detector,
    InputStage,
    file_probabilities,
    make_input_stage,
    window_probabilities,
)
from softloc.inference.ensemble import (
    cleaning_events,
    ensemble_events,
    nadaraya_watson_map,
    nw_ensemble_events,
    trigger_density,
)
from softloc.inference.features_input import FeatureInput  # noqa: F401 (kind 'features')
from softloc.inference.images import HilbertImageInput, decode_detections, detections_px
from softloc.inference.model_file import (
    FORMAT,
    FORMAT_VERSION,
    MODEL_FILE,
    ModelFile,
    load_model_file,
    read_model_file,
    resolve_model_path,
    save_model_file,
)
from softloc.inference.signals import SignalInput

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "HilbertImageInput",
    "INPUT_STAGES",
    "MODEL_FILE",
    "PRETRAINED_DRUMS",
    "SMALL_MODEL_PARAMETERS",
    "THRESHOLD_GRID",
    "AudioInput",
    "BatchReport",
    "DetectJob",
    "Detector",
    "InputStage",
    "ModelFile",
    "SignalInput",
    "calibrate",
    "calibrate_from_counts",
    "calibrate_from_timestamps",
    "calibrate_time_offset",
    "onset_alignment_offset",
    "onset_alignment_offsets",
    "calibration_source",
    "cleaning_events",
    "collect_audio_inputs",
    "decode_detections",
    "detect_batch",
    "detect_to_folder",
    "detection_metadata",
    "detections_px",
    "ensemble_events",
    "file_probabilities",
    "load_model_file",
    "make_input_stage",
    "nadaraya_watson_map",
    "nw_ensemble_events",
    "plan_outputs",
    "read_model_file",
    "resolve_model_path",
    "save_model_file",
    "trigger_density",
    "window_probabilities",
]
