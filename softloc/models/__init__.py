"""Networks: every one maps its input to LOGITS ``(batch, class, time)`` (sigmoid gives p(t)).

* ``crnn``: the audio CRNN of LoCo/SoftLoc (and one network per class);
* ``heads``: the LoCo head initialisation and the count-prior output bias (LoCo eq. 15);
* ``build``: networks by name (``build_model``), the CRNN of a run configuration.

Model files never import Lightning or training code.
"""

from __future__ import annotations

from softloc.models.build import (
    MODEL_REGISTRY,
    build_model,
    crnn_spec,
    model_from_config,
    model_spec,
    window_frames,
)
from softloc.models.crnn import CRNN, PerClassCRNN
from softloc.models.heads import init_loco_head, prior_output_bias

__all__ = [
    "CRNN",
    "MODEL_REGISTRY",
    "PerClassCRNN",
    "build_model",
    "crnn_spec",
    "init_loco_head",
    "model_from_config",
    "model_spec",
    "prior_output_bias",
    "window_frames",
]
