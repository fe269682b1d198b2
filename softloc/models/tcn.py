"""Temporal convolutional networks for action segmentation: ED-TCN and MS-TCN.

Both map features ``(batch, feature, time)`` to per-frame class LOGITS ``(batch, class, time)``;
``torch.softmax(logits, dim=1)`` gives the class distribution of every frame (one class per
frame, unlike the event detectors whose outputs are independent sigmoids).

* :class:`EDTCN`: the encoder-decoder TCN of Lea et al. 2017 §3.1. Encoder: per level a
  temporal convolution, channel dropout, a *normalised ReLU* (ReLU divided by its maximum over
  time, per channel) and max pooling by 2; the decoder mirrors it with ×2 upsampling. The
  pooling gives long context cheaply and smooths the output, which made the model robust to
  misaligned boundaries (the reason SoftLoc §5.3 builds on it).
* :class:`MSTCN`: the multi-stage TCN of Farha & Gall 2019 §3: ``n_stages`` stages of
  ``n_layers`` dilated residual layers (dilation 1, 2, 4, ..., kernel 3) at full temporal
  resolution; each later stage refines the softmax of the previous one.
  :meth:`MSTCN.forward_stages` returns every stage's logits (the paper's loss sums over stages);
  :meth:`MSTCN.forward` returns the last stage.

Padding: ``lengths`` ``(batch,)`` marks the valid frames. Activations beyond an item's length are
zeroed after every layer (on the pooled time grid too), so the outputs on an item's valid frames
do not depend on how much padding follows it (a batched item equals the item alone). Logits of
padded frames are 0.

References:
    Lea, Flynn, Vidal, Reiter, Hager. Temporal Convolutional Networks for Action Segmentation and
    Detection. CVPR 2017.
    Farha, Gall. MS-TCN: Multi-Stage Temporal Convolutional Network for Action Segmentation.
    CVPR 2019.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from softloc._checks import check_int, check_lengths, check_ndim, check_real, check_tensor

__all__ = ["EDTCN", "MSTCN"]

_LAYOUT = "(batch, feature, time)"


def _check_input(fn: str, x: object, n_features: int, lengths: object) -> torch.Tensor:
    x = check_tensor(fn, "x", x)
    check_ndim(fn, "x", x, 3, _LAYOUT)
    if x.shape[1] != n_features:
        raise ValueError(
            f"{fn}: `x` must have {n_features} features (batch, feature, time), got shape "
            f"{tuple(x.shape)}"
        )
    check_lengths(fn, lengths, x.shape[0], x.shape[2])
    return x


def _frame_mask(lengths: torch.Tensor | None, batch: int, time: int, like: torch.Tensor,
                stride: int = 1) -> torch.Tensor:
    """(batch, 1, time) float mask of frames t with t * stride < length (all ones if None)."""
    if lengths is None:
        return like.new_ones(batch, 1, time)
    steps = torch.arange(time, device=like.device) * stride
    valid = steps[None, :] < lengths.to(like.device)[:, None]  # (B, T)
    return valid.to(like.dtype)[:, None, :]  # (B, T) -> (B, 1, T)


def _normalised_relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU(x) / (max over time of ReLU(x) + 1e-5), per (batch, channel) (Lea et al. eq. 2)."""
    y = torch.relu(x)
    return y / (y.amax(dim=-1, keepdim=True) + 1e-5)


class EDTCN(nn.Module):
    """Encoder-decoder TCN (Lea et al. 2017 §3.1) returning logits ``(batch, class, time)``.

    Args:
        n_features: input features per frame.
        n_classes: output classes.
        filters: channels of the encoder levels (the decoder uses them in reverse); Lea et al.
            use (64, 96) for 50Salads and GTEA.
        kernel_size: temporal kernel length in frames (odd; Lea et al. tune it per dataset,
            ~10-25 frames at their feature rates).
        dropout: channel-dropout probability after each convolution (Lea et al.: 0.3).
        input_projection: if set, a learned linear 1x1 convolution first maps the features to
            this many channels (as MS-TCN's input layer). Not in Lea et al.; with the 2048-d
            I3D features of the MS-TCN downloads their first temporal convolution holds
            2048 x 64 x 25 weights and costs ~9x the rest of the network per frame.

    Shape:
        x ``(batch, n_features, time)``, lengths ``(batch,)`` -> ``(batch, n_classes, time)``.
        Any time >= 1 works: it is padded to a multiple of ``2 ** len(filters)`` internally.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        filters: Sequence[int] = (64, 96),
        kernel_size: int = 25,
        dropout: float = 0.3,
        input_projection: int | None = None,
    ) -> None:
        super().__init__()
        fn = "EDTCN"
        self.n_features = check_int(fn, "n_features", n_features, minimum=1)
        self.n_classes = check_int(fn, "n_classes", n_classes, minimum=1)
        self.filters = tuple(check_int(fn, "filters", f, minimum=1) for f in filters)
        if not self.filters:
            raise ValueError(f"{fn}: `filters` must name at least one level, got ()")
        self.kernel_size = check_int(fn, "kernel_size", kernel_size, minimum=1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"{fn}: `kernel_size` must be odd ('same' padding), got {kernel_size}")
        p = check_real(fn, "dropout", dropout, minimum=0.0)
        if p >= 1:
            raise ValueError(f"{fn}: `dropout` must be in [0, 1), got {dropout}")
        self.input_projection = (None if input_projection is None else
                                 check_int(fn, "input_projection", input_projection, minimum=1))
        self.project = (None if self.input_projection is None
                        else nn.Conv1d(self.n_features, self.input_projection, 1))
        pad = self.kernel_size // 2
        widths = (self.input_projection or self.n_features, *self.filters)
        self.encoder = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], self.kernel_size, padding=pad)
            for i in range(len(self.filters))
        )
        back = tuple(reversed(self.filters))
        self.decoder = nn.ModuleList(
            nn.Conv1d(back[max(i - 1, 0)], back[i], self.kernel_size, padding=pad)
            for i in range(len(back))
        )
        self.drop = nn.Dropout1d(p)
        self.out = nn.Conv1d(self.filters[0], self.n_classes, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame class logits; see the class docstring."""
        _check_input("EDTCN.forward", x, self.n_features, lengths)
        b, _, t = x.shape
        levels = len(self.filters)
        padded = -(-t // 2**levels) * 2**levels
        h = F.pad(x, (0, padded - t))
        valid = lengths if lengths is not None else torch.full((b,), t, device=x.device)
        # masks[i]: valid frames on the grid pooled i times (frame j covers j * 2^i ...)
        masks = [_frame_mask(valid, b, padded // 2**i, h, 2**i) for i in range(levels + 1)]
        h = h * masks[0]
        if self.project is not None:
            h = self.project(h) * masks[0]  # the bias must not leak into padded frames
        for i, conv in enumerate(self.encoder):
            h = _normalised_relu(self.drop(conv(h) * masks[i]))
            h = F.max_pool1d(h, 2) * masks[i + 1]  # (B, F, T_i) -> (B, F, T_i / 2)
        for i, conv in enumerate(self.decoder):
            h = h.repeat_interleave(2, dim=-1)  # (B, F, T_i) -> (B, F, 2 T_i)
            level = levels - 1 - i
            h = _normalised_relu(self.drop(conv(h * masks[level]) * masks[level]))
        return (self.out(h) * masks[0])[..., :t]

    def extra_repr(self) -> str:
        proj = ("" if self.input_projection is None
                else f", input_projection={self.input_projection}")
        return f"filters={self.filters}, kernel_size={self.kernel_size}{proj}"


class _DilatedResidual(nn.Module):
    def __init__(self, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.pointwise(torch.relu(self.dilated(h))))
        return (h + out) * mask


class _Stage(nn.Module):
    def __init__(self, n_in: int, n_classes: int, channels: int, n_layers: int,
                 dropout: float) -> None:
        super().__init__()
        self.inp = nn.Conv1d(n_in, channels, 1)
        self.layers = nn.ModuleList(
            _DilatedResidual(channels, 2**i, dropout) for i in range(n_layers)
        )
        self.out = nn.Conv1d(channels, n_classes, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) * mask
        for layer in self.layers:
            h = layer(h, mask)
        return self.out(h) * mask


class MSTCN(nn.Module):
    """Multi-stage TCN (Farha & Gall 2019 §3) returning the last stage's logits.

    Args:
        n_features: input features per frame.
        n_classes: output classes.
        n_stages: number of stages (paper: 4).
        n_layers: dilated residual layers per stage, dilations 1..2^(n_layers-1) (paper: 10).
        channels: feature maps per layer (paper: 64).
        dropout: dropout after each residual layer (paper: 0.5).

    Shape:
        x ``(batch, n_features, time)``, lengths ``(batch,)`` -> ``(batch, n_classes, time)``;
        :meth:`forward_stages` -> ``(stage, batch, n_classes, time)``.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        n_stages: int = 4,
        n_layers: int = 10,
        channels: int = 64,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        fn = "MSTCN"
        self.n_features = check_int(fn, "n_features", n_features, minimum=1)
        self.n_classes = check_int(fn, "n_classes", n_classes, minimum=1)
        self.n_stages = check_int(fn, "n_stages", n_stages, minimum=1)
        self.n_layers = check_int(fn, "n_layers", n_layers, minimum=1)
        self.channels = check_int(fn, "channels", channels, minimum=1)
        p = check_real(fn, "dropout", dropout, minimum=0.0)
        if p >= 1:
            raise ValueError(f"{fn}: `dropout` must be in [0, 1), got {dropout}")
        self.stages = nn.ModuleList(
            _Stage(self.n_features if s == 0 else self.n_classes, self.n_classes, self.channels,
                   self.n_layers, p)
            for s in range(self.n_stages)
        )

    def forward_stages(
        self, x: torch.Tensor, *, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of every stage, ``(stage, batch, class, time)`` (the MS-TCN loss sums them)."""
        _check_input("MSTCN.forward_stages", x, self.n_features, lengths)
        mask = _frame_mask(lengths, x.shape[0], x.shape[2], x)
        outs = []
        h = x * mask
        for stage in self.stages:
            logits = stage(h, mask)
            outs.append(logits)
            h = torch.softmax(logits, dim=1) * mask
        return torch.stack(outs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the last stage, ``(batch, class, time)``."""
        return self.forward_stages(x, lengths=lengths)[-1]

    def extra_repr(self) -> str:
        return f"n_stages={self.n_stages}, n_layers={self.n_layers}, channels={self.channels}"
