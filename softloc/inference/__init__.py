"""Inference: load a trained run and detect events (never imports Lightning or training code).

* ``model_file``: the one self-describing model file (``RUN/model.pt``): save, read, resolve;
* ``detector``: :class:`Detector` (input stage -> windows -> network -> p(t) -> events) and the
  file/folder helpers of ``softloc detect``;
* ``calibrate``: per-class thresholds and time offsets chosen on validation data;
* ``images``: the input stage of image networks read along a Hilbert curve (digits runs).
"""

from __future__ import annotations

from softloc.inference.calibrate import (
    THRESHOLD_GRID,
    calibrate,
    calibrate_from_counts,
    calibrate_from_timestamps,
    calibrate_time_offset,
)
from softloc.inference.detector import (
    INPUT_STAGES,
    PRETRAINED_DRUMS,
    AudioInput,
    Detector,
    InputStage,
    collect_audio_inputs,
    detect_to_folder,
    file_probabilities,
    make_input_stage,
)
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

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "HilbertImageInput",
    "INPUT_STAGES",
    "MODEL_FILE",
    "PRETRAINED_DRUMS",
    "THRESHOLD_GRID",
    "AudioInput",
    "Detector",
    "InputStage",
    "ModelFile",
    "calibrate",
    "calibrate_from_counts",
    "calibrate_from_timestamps",
    "calibrate_time_offset",
    "collect_audio_inputs",
    "decode_detections",
    "detect_to_folder",
    "detections_px",
    "file_probabilities",
    "load_model_file",
    "make_input_stage",
    "read_model_file",
    "resolve_model_path",
    "save_model_file",
]
