"""A pitch-equivariant onset network for piano keys: one small detector shared by all 88 keys.

Why: the papers' piano CRNN pools the whole spectrum into one vector per frame and learns every
key's detector from that vector's own examples (LoCo trained eight networks of ten keys for 500k
steps each). Here every key runs the SAME detector, placed on the key's position of a semitone
grid and reading the key's harmonics, so each note of any key trains the one detector: far fewer
parameters, and the counts of all 88 keys teach it at once (LoCo eq. 7 per key, unchanged).

Input and conventions: the power mel spectrogram ``(batch, n_mels, time)`` of any
:class:`~softloc.features.FrontEndConfig` (HTK mel bands between ``f_min_hz`` and ``f_max_hz``);
output LOGITS ``(batch, n_keys, time)``, row ``k`` = MIDI pitch ``lowest_pitch + k``, one frame
per input frame.

Layers:
    1. ``softloc.features.log_delta`` (log-mel with the window's mean per band removed, and its
       first time difference), times ``input_scale``;
    2. a fixed linear map from the mel bands to a semitone grid (``bins_per_semitone`` bins per
       semitone, linear interpolation between mel band centres on the mel axis; grid points
       outside the bands are 0), from one octave below ``lowest_pitch`` to the highest harmonic
       of the top key;
    3. harmonic stacking (Bittner et al. 2017): for every ``h`` in ``harmonics`` the grid shifted
       by ``12 log2(h)`` semitones, so that a key's position sees its fundamental and partials
       (log-mel and delta: ``2 x len(harmonics)`` channels on the key grid);
    4. 2-D convolutions over (time, frequency) with 'same' padding and ReLU, then a convolution
       of stride ``bins_per_semitone`` in frequency down to one position per key, plus a learned
       per-key offset (the register: low and high keys sound differently);
    5. per key, dilated 1-D convolutions over time (dilations 1, 2, 4, ...; shared by all
       keys);
    6. optionally (``key_context``, semitone offsets), a residual layer across keys: every key
       reads a few channels of the keys at those offsets (octaves, twelfths, ... up and down)
       and mixes them with its own. A key cannot otherwise tell its own note from a partial of
       a note an octave or a twelfth below, nor see that a chord's other notes explain its
       energy;
    7. a linear read-out to one logit, plus a per-key output bias initialised to
       ``output_bias`` (LoCo eq. 15; the read-out weights start at 0, so the initial logits ARE
       the eq. 15 bias).

This module never imports Lightning or training code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from softloc.features import hz_to_mel, log_delta
from softloc.models.heads import prior_output_bias
from softloc.timebase import duration_frames

__all__ = ["HarmonicKeyNet", "harmonic_key_spec", "semitone_interpolation"]


def semitone_interpolation(*, n_mels: int, f_min_hz: float, f_max_hz: float,
                           pitches: np.ndarray) -> np.ndarray:
    """Weights ``(len(pitches), n_mels)`` that read HTK mel bands at MIDI ``pitches``.

    Each pitch's frequency is placed on the mel axis between the two nearest band centres (the
    centres of ``n_mels`` triangles with edges evenly spaced in mel from ``f_min_hz`` to
    ``f_max_hz``, as :func:`softloc.features.mel_filterbank`) and gets their linear
    interpolation weights; pitches outside the first..last centre get a row of zeros.

    Example:
        >>> w = semitone_interpolation(n_mels=10, f_min_hz=0.0, f_max_hz=4000.0,
        ...                            pitches=np.array([0.0, 69.0, 127.0]))
        >>> w.sum(axis=1).round(6).tolist()
        [0.0, 1.0, 0.0]
    """
    lo, hi = float(hz_to_mel(f_min_hz)), float(hz_to_mel(f_max_hz))
    step = (hi - lo) / (n_mels + 1)
    mel = hz_to_mel(440.0 * 2.0 ** ((np.asarray(pitches, dtype=np.float64) - 69.0) / 12.0))
    u = (mel - lo) / step - 1.0  # fractional band index (centre i at u = i)
    weights = np.zeros((u.size, n_mels), dtype=np.float64)
    inside = (u >= 0) & (u <= n_mels - 1)
    i0 = np.clip(np.floor(u).astype(np.int64), 0, n_mels - 1)
    i1 = np.clip(i0 + 1, 0, n_mels - 1)
    frac = u - i0
    rows = np.flatnonzero(inside)
    np.add.at(weights, (rows, i0[rows]), 1.0 - frac[rows])
    np.add.at(weights, (rows, i1[rows]), frac[rows])
    return weights


class HarmonicKeyNet(nn.Module):
    """One onset detector shared by every key, on a semitone grid with harmonic stacking.

    Args:
        n_mels: mel bands of the input.
        f_min_hz, f_max_hz: band range of the front end (to place the bands on the pitch axis).
        n_classes: keys (default 88).
        lowest_pitch: MIDI pitch of output row 0 (default 21, A0).
        bins_per_semitone: frequency resolution of the grid (default 1).
        harmonics: partials stacked as channels (default 0.5, 1, 2, 3, 4, 5, 6).
        conv_channels: channels of the 2-D convolutions on the grid (default 24, 24).
        key_channels: channels per key after the stride-``bins_per_semitone`` convolution.
        kernel_time: time extent of the 2-D kernels in frames (default 3).
        temporal_layers: dilated 1-D convolutions per key (kernel 3, dilation 2**i).
        key_context: semitone offsets (non-zero ints) of the keys each key reads in layer 6;
            empty (the default) for none.
        context_channels: channels of each key that layer 6 passes to the others (default 8).
        output_bias: initial logit of every key (LoCo eq. 15).
        input_scale: factor on the log-mel/delta features (dB).

    Shape:
        ``mel_power (batch, n_mels, time)``, ``lengths (batch,)`` -> logits
        ``(batch, n_classes, time)``.

    Raises:
        ValueError: a size < 1, ``f_max_hz <= f_min_hz``, or a harmonic <= 0.
    """

    def __init__(self, *, n_mels: int, f_min_hz: float, f_max_hz: float, n_classes: int = 88,
                 lowest_pitch: int = 21, bins_per_semitone: int = 1,
                 harmonics: Sequence[float] = (0.5, 1, 2, 3, 4, 5, 6),
                 conv_channels: Sequence[int] = (24, 24), key_channels: int = 32,
                 kernel_time: int = 3, temporal_layers: int = 3,
                 key_context: Sequence[int] = (), context_channels: int = 8,
                 output_bias: float = 0.0, input_scale: float = 0.05) -> None:
        super().__init__()
        fn = "HarmonicKeyNet"
        for name, v in (("n_mels", n_mels), ("n_classes", n_classes), ("key_channels",
                        key_channels), ("kernel_time", kernel_time),
                        ("bins_per_semitone", bins_per_semitone),
                        ("context_channels", context_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{fn}: `{name}` must be an int >= 1, got {v!r}")
        if not (0 <= f_min_hz < f_max_hz) or not harmonics or min(harmonics) <= 0:
            raise ValueError(f"{fn}: need 0 <= f_min_hz < f_max_hz and harmonics > 0, got "
                             f"f_min_hz={f_min_hz}, f_max_hz={f_max_hz}, harmonics={harmonics}")
        offsets = list(key_context)
        if any(isinstance(o, bool) or not isinstance(o, int) or o == 0 for o in offsets) or \
                len(set(offsets)) != len(offsets):
            raise ValueError(f"{fn}: `key_context` must hold distinct non-zero ints (semitones), "
                             f"got {key_context!r}")
        self.n_mels, self.n_classes, self.bps = n_mels, n_classes, bins_per_semitone
        self.input_scale = float(input_scale)
        shifts = [round(12 * bins_per_semitone * math.log2(h)) for h in harmonics]
        base = -min(0, min(shifts))  # grid index of the lowest key
        n_keys_bins = n_classes * bins_per_semitone
        n_grid = base + n_keys_bins + max(0, max(shifts))
        pitches = lowest_pitch - base / bins_per_semitone + np.arange(n_grid) / bins_per_semitone
        # centre the bins of a key on it: bins k*bps .. k*bps+bps-1 span pitch k +- 1/2 semitone
        pitches = pitches - (bins_per_semitone - 1) / (2 * bins_per_semitone)
        w = semitone_interpolation(n_mels=n_mels, f_min_hz=f_min_hz, f_max_hz=f_max_hz,
                                   pitches=pitches)
        self.register_buffer("grid_weights", torch.as_tensor(w, dtype=torch.float32),
                             persistent=False)
        self.offsets = [base + s for s in shifts]
        self.n_keys_bins = n_keys_bins
        layers: list[nn.Module] = []
        c_in = 2 * len(harmonics)
        for c in conv_channels:
            layers += [nn.Conv2d(c_in, c, (kernel_time, 3), padding=(kernel_time // 2, 1)),
                       nn.ReLU()]
            c_in = c
        self.grid_convs = nn.Sequential(*layers)
        self.to_keys = nn.Conv2d(c_in, key_channels, (kernel_time, bins_per_semitone),
                                 stride=(1, bins_per_semitone), padding=(kernel_time // 2, 0))
        self.key_embedding = nn.Parameter(torch.zeros(key_channels, n_classes))
        self.temporal = nn.ModuleList(
            nn.Conv1d(key_channels, key_channels, 3, padding=2 ** i, dilation=2 ** i)
            for i in range(temporal_layers))
        self.key_context = offsets
        if offsets:
            self.context_in = nn.Conv1d(key_channels, context_channels, 1)
            self.context_mix = nn.Conv1d(key_channels + context_channels * len(offsets),
                                         key_channels, 1)
        self.readout = nn.Conv1d(key_channels, 1, 1)
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)
        self.key_bias = nn.Parameter(torch.full((n_classes,), float(output_bias)))

    def forward(self, mel_power: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Logits ``(batch, n_classes, time)`` of a power mel ``(batch, n_mels, time)``."""
        b, _, t = mel_power.shape
        z = log_delta(mel_power, lengths=lengths) * self.input_scale  # (B, 2M, T)
        z = z.view(b, 2, self.n_mels, t)
        grid = torch.einsum("gm,bcmt->bctg", self.grid_weights, z)  # (B, 2, T, G)
        x = torch.cat([grid[..., o:o + self.n_keys_bins] for o in self.offsets], dim=1)
        x = self.grid_convs(x)  # (B, C, T, K*bps)
        x = torch.relu(self.to_keys(x) + self.key_embedding[None, :, None, :])  # (B, Ck, T, K)
        x = x.permute(0, 3, 1, 2).reshape(b * self.n_classes, -1, t)  # (B*K, Ck, T)
        for conv in self.temporal:
            x = torch.relu(conv(x)) + x
        if self.key_context:
            x = x + self._across_keys(x, b, t)
        logits = self.readout(x).view(b, self.n_classes, t)
        return logits + self.key_bias[None, :, None]

    def _across_keys(self, x: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """Layer 6 on ``x (B*K, Ck, T)``: what each key reads from the keys at its offsets."""
        k = self.n_classes
        c = torch.relu(self.context_in(x)).view(b, k, -1, t)  # (B, K, Cc, T)
        reach = max(abs(o) for o in self.key_context)
        padded = nn.functional.pad(c, (0, 0, 0, 0, reach, reach))  # zeros beyond the keyboard
        parts = [x.view(b, k, -1, t)]
        parts += [padded[:, reach + o:reach + o + k] for o in self.key_context]
        mixed = torch.cat(parts, dim=2).reshape(b * k, -1, t)
        return torch.relu(self.context_mix(mixed))


def harmonic_key_spec(config: Any) -> tuple[str, dict[str, Any]]:
    """``("harmonic-key", args)`` for a ``RunConfig``: the front end's mel bands and range, one
    key per class (``lowest_pitch`` = the first class label, which must be a MIDI number), the
    LoCo eq. 15 bias of ``model.prior_omega`` over one window, ``model.input_scale``, and
    ``model.args`` for the rest (``conv_channels``, ``key_channels``, ``harmonics`` ...).

    Raises:
        ValueError: empty classes, or classes that are not consecutive MIDI numbers.
    """
    classes = list(config.classes)
    numbers = [int(c) for c in classes if c.isdigit()]
    if not classes or len(numbers) != len(classes) or \
            numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        raise ValueError("harmonic_key_spec: `classes` must be consecutive MIDI numbers such as "
                         f"'21'..'108', got {classes[:3]}{'...' if len(classes) > 3 else ''}")
    f = config.features
    args: dict[str, Any] = {
        "n_mels": f.n_mels, "f_min_hz": float(f.f_min_hz), "f_max_hz": float(f.f_max),
        "n_classes": len(classes), "lowest_pitch": int(classes[0]),
        "output_bias": prior_output_bias(duration_frames(config.data.window_s, f.frame_rate),
                                         config.model.prior_omega),
        "input_scale": float(config.model.input_scale),
    }
    args.update(dict(getattr(config.model, "args", {}) or {}))
    return "harmonic-key", args
