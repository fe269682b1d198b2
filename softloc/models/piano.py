"""The piano CRNNs of LoCo and SoftLoc (fact sheet §1, §3.1): 88 piano keys, logits out.

Input and frame rate:
    The piano front end is a :class:`~softloc.features.FrontEndConfig` preset,
    :data:`PIANO_FRONT_END`: 44.1 kHz, pre-emphasis 0.97, Hamming window of 1102 samples
    (25 ms), hop 220 samples, NFFT 8192, 384 HTK mel bands. The official code computed 550 bands
    over 0-22.05 kHz and kept the lowest 384; 384 bands over 0 Hz to :data:`PIANO_F_MAX_HZ`
    (7270.7 Hz, the top edge of the 384th of those 550 bands) are the same triangles, except
    that we evaluate them at exact bin frequencies (two of the original bands were empty).
    The network takes the power mel spectrogram ``(batch, 384, time)`` and forms the log-mel and
    its first time difference itself (``softloc.features.LogDelta``: 768 features, LoCo §5).
    **Frame rate: 44100 / 220 = 200.45 frames per second** (~4.99 ms; the papers' nominal
    200/s); frame ``i`` is centred at ``i / 200.45`` s (``softloc.features`` convention), and
    the output has one frame per input frame (no pooling in time).

Networks (all return LOGITS ``(batch, 88, time)``, row ``k`` = MIDI pitch ``21 + k``):
    * ``piano_crnn("loco")``: LoCo [L] — 9 convs of [3 x 4] with 16, 16, 32, 32, 64 x 5 filters,
      frequency max-pools 3, 2 x 8 (768 -> 1 bin), LSTM 64, head hidden 32, output bias for
      Pr(no note of a key in a window) = 0.8 (LoCo eq. 15).
    * ``piano_crnn("softloc")``: SoftLoc [S]/[A] — filters 32, 32, 64 x 5, 128, 128, LSTM 128,
      hidden 96, bias exponent 2/T (omega 0.64).
    * :class:`PitchBandCRNN`: LoCo's per-pitch-band variant. LoCo trained eight separate
      networks of 10 keys each (MIDI 25-104, fact sheet §2.2); here ``n_bands`` independent
      CRNNs of ``band_size`` keys (default 8 x 11 = all 88 keys), each seeing the whole
      spectrum, their outputs stacked along the pitch axis.

The conv stack sees +-9 frames (+-45 ms) around each frame; the LSTM is unidirectional.
``input_scale=2.0`` (default here) reproduces the official code's ``20 log10`` of a power (our
front end takes ``10 log10``), so the first layer sees the official feature scale.

This module never imports Lightning or training code. The networks are the audio
:class:`~softloc.models.crnn.CRNN` with piano settings: ``piano_crnn_args`` gives the arguments
for ``softloc.models.build.build_model("crnn", **args)`` (savable in a model file).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from softloc.features import FrontEndConfig, hz_to_mel, mel_to_hz
from softloc.models.crnn import CRNN
from softloc.models.heads import prior_output_bias

__all__ = [
    "PIANO_FRAME_RATE_HZ",
    "PIANO_FRONT_END",
    "PIANO_F_MAX_HZ",
    "PIANO_MODELS",
    "PIANO_N_KEYS",
    "PIANO_POOL_SIZES",
    "PitchBandCRNN",
    "piano_crnn",
    "piano_crnn_args",
]

#: Number of piano keys (MIDI 21..108): the output channels.
PIANO_N_KEYS = 88
#: Top edge in Hz of the 384th of 550 HTK mel bands over 0-22.05 kHz (the kept piano bands).
PIANO_F_MAX_HZ: float = float(mel_to_hz(385 / 551 * hz_to_mel(22050.0)))
#: The piano front end (fact sheet §1): NFFT 8192, 384 mel bands up to PIANO_F_MAX_HZ.
PIANO_FRONT_END = FrontEndConfig(n_fft=8192, n_mels=384, f_max_hz=PIANO_F_MAX_HZ)
#: Frames per second of the piano front end (and of every piano network's output).
PIANO_FRAME_RATE_HZ: float = PIANO_FRONT_END.frame_rate
#: Frequency max-pool sizes after each of the 9 convs (768 -> 256 -> ... -> 1).
PIANO_POOL_SIZES: tuple[int, ...] = (3, 2, 2, 2, 2, 2, 2, 2, 2)
#: Settings of the papers' piano CRNNs (fact sheet §3.1).
PIANO_MODELS: dict[str, dict[str, Any]] = {
    "loco": {"conv_filters": (16, 16, 32, 32, 64, 64, 64, 64, 64), "lstm_units": 64,
             "hidden_units": 32, "prior_omega": 0.8},
    "softloc": {"conv_filters": (32, 32, 64, 64, 64, 64, 64, 128, 128), "lstm_units": 128,
                "hidden_units": 96, "prior_omega": 0.64},
}  # fmt: skip
# The official windows: 1.5 s zero-padded to 400 frames; the bias prior is over T = 400.
_OFFICIAL_WINDOW_FRAMES = 400


def piano_crnn_args(variant: str = "loco", *, n_keys: int = PIANO_N_KEYS,
                    window_frames: int = _OFFICIAL_WINDOW_FRAMES,
                    prior_omega: float | None = None, input_scale: float = 2.0,
                    front_end: FrontEndConfig = PIANO_FRONT_END) -> dict[str, Any]:
    """Arguments of :class:`~softloc.models.crnn.CRNN` for a papers' piano network.

    Args:
        variant: ``"loco"`` or ``"softloc"`` (:data:`PIANO_MODELS`).
        n_keys: output channels (default 88).
        window_frames: frames of one training window, for the output-bias prior (default 400,
            the official padded window; a 1.5 s window at 200.45 frames/s is 301).
        prior_omega: Pr(no note of a key in a window) at initialisation (LoCo eq. 15);
            default the variant's (0.8 LoCo, 0.64 SoftLoc).
        input_scale: factor on the log-mel/delta features (default 2.0: the official scale).
        front_end: the front end whose ``n_mels`` the network takes (default
            :data:`PIANO_FRONT_END`).

    Returns:
        a dict for ``build_model("crnn", **args)`` (plain data).

    Raises:
        ValueError: an unknown ``variant`` or ``n_keys < 1``.
    """
    if variant not in PIANO_MODELS:
        raise ValueError(f"piano_crnn_args: `variant` must be one of {sorted(PIANO_MODELS)}, "
                         f"got {variant!r}")
    if isinstance(n_keys, bool) or not isinstance(n_keys, int) or n_keys < 1:
        raise ValueError(f"piano_crnn_args: `n_keys` must be an int >= 1, got {n_keys!r}")
    m = PIANO_MODELS[variant]
    omega = m["prior_omega"] if prior_omega is None else prior_omega
    return {
        "n_mels": front_end.n_mels,
        "n_classes": n_keys,
        "conv_filters": list(m["conv_filters"]),
        "pool_sizes": list(PIANO_POOL_SIZES),
        "lstm_units": m["lstm_units"],
        "hidden_units": m["hidden_units"],
        "output_bias": prior_output_bias(window_frames, omega),
        "kernel_time": 3,
        "kernel_freq": 4,
        "input_scale": float(input_scale),
    }


def piano_crnn(variant: str = "loco", *, n_keys: int = PIANO_N_KEYS,
               window_frames: int = _OFFICIAL_WINDOW_FRAMES, prior_omega: float | None = None,
               input_scale: float = 2.0) -> CRNN:
    """A freshly initialised piano CRNN (see :func:`piano_crnn_args` for the arguments).

    Shape:
        ``mel_power (batch, 384, time)``, ``lengths (batch,)`` -> logits ``(batch, n_keys,
        time)`` at :data:`PIANO_FRAME_RATE_HZ`.

    Example:
        >>> net = piano_crnn("loco")
        >>> net(torch.rand(2, 384, 50)).shape
        torch.Size([2, 88, 50])
    """
    return CRNN(**piano_crnn_args(variant, n_keys=n_keys, window_frames=window_frames,
                                  prior_omega=prior_omega, input_scale=input_scale))


class PitchBandCRNN(nn.Module):
    """Independent CRNNs for contiguous bands of keys (LoCo's eight 10-key models).

    Band ``b`` outputs keys ``[b * band_size, min((b + 1) * band_size, n_classes))``; every band
    sees the whole spectrum. ``band_size=1`` is one network per key
    (:class:`~softloc.models.crnn.PerClassCRNN`), ``band_size=n_classes`` a single CRNN.

    Args:
        n_mels, conv_filters, pool_sizes, lstm_units, hidden_units, output_bias, kernel_time,
            kernel_freq, input_scale: as :class:`~softloc.models.crnn.CRNN`, for every band.
        n_classes: output channels in total (default 88).
        band_size: keys per band (default 11: 8 bands for 88 keys).

    Shape:
        ``mel_power (batch, n_mels, time)``, ``lengths (batch,)`` -> logits
        ``(batch, n_classes, time)``.

    Raises:
        ValueError: ``band_size`` not in ``1..n_classes``.
    """

    def __init__(self, *, n_mels: int, n_classes: int = PIANO_N_KEYS, band_size: int = 11,
                 conv_filters: Sequence[int], pool_sizes: Sequence[int], lstm_units: int,
                 hidden_units: int, output_bias: float = 0.0, kernel_time: int = 3,
                 kernel_freq: int = 4, input_scale: float = 1.0) -> None:
        super().__init__()
        if isinstance(band_size, bool) or not isinstance(band_size, int) or \
                not 1 <= band_size <= n_classes:
            raise ValueError(f"PitchBandCRNN: `band_size` must be an int in 1..n_classes="
                             f"{n_classes}, got {band_size!r}")
        self.n_mels, self.n_classes, self.band_size = n_mels, n_classes, band_size
        sizes = [min(band_size, n_classes - s) for s in range(0, n_classes, band_size)]
        self.bands = nn.ModuleList(
            CRNN(n_mels=n_mels, n_classes=k, conv_filters=conv_filters, pool_sizes=pool_sizes,
                 lstm_units=lstm_units, hidden_units=hidden_units, output_bias=output_bias,
                 kernel_time=kernel_time, kernel_freq=kernel_freq, input_scale=input_scale)
            for k in sizes
        )

    def forward(self, mel_power: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Logits ``(batch, n_classes, time)``: the bands' outputs in key order."""
        return torch.cat([band(mel_power, lengths) for band in self.bands], dim=1)
