"""Networks: the audio CRNN of LoCo/SoftLoc, built from a :class:`softloc.config.RunConfig`.

Model files never import Lightning or training code.
"""

from __future__ import annotations

from softloc.counting import count_prior_bias
from softloc.models.crnn import CRNN, PerClassCRNN, build_model

__all__ = ["CRNN", "PerClassCRNN", "build_model", "model_from_config", "window_frames"]


def window_frames(config) -> int:
    """Frames of one window of ``config.data.window_s`` seconds at the front end's frame rate."""
    return max(1, round(config.data.window_s * config.features.frame_rate))


def model_from_config(config) -> CRNN | PerClassCRNN:
    """A freshly initialised network for ``config`` (a :class:`softloc.config.RunConfig`).

    The output bias encodes Pr(no event of a class in one window) = ``model.prior_omega`` over
    the window's frames (LoCo eq. 15, :func:`softloc.counting.count_prior_bias`).

    Raises:
        ValueError: ``config.classes`` is empty (the number of outputs is unknown).
    """
    if not config.classes:
        raise ValueError("model_from_config: `config.classes` is empty; set the class labels")
    m = config.model
    return build_model(
        n_mels=config.features.n_mels,
        n_classes=len(config.classes),
        conv_filters=m.conv_filters,
        pool_sizes=m.pool_sizes,
        lstm_units=m.lstm_units,
        hidden_units=m.hidden_units,
        output_bias=count_prior_bias(window_frames(config), m.prior_omega),
        kernel_time=m.kernel_time,
        kernel_freq=m.kernel_freq,
        input_scale=m.input_scale,
        per_class=m.per_class,
    )
