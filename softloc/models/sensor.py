"""Event detectors for sensor time series: SoftLoc §5.2's FC-LSTM and a conv + GRU for raw signals.

Both map an input ``(batch, channel, time)`` to per-frame LOGITS ``(batch, class, time_out)``;
``torch.sigmoid`` gives p(t), the probability of an event in each output frame.

* :class:`FCLSTM`: SoftLoc §5.2's puff detector on feature steps (one step per respiration
  cycle): a 14-unit fully connected layer with ReLU, dropout, a 14-unit LSTM and a linear output.
  One output frame per input step (``hop_samples = 1``).
* :class:`SignalCRNN`: a small 1-D convolutional front end on the raw signal (e.g. ECG at
  360 Hz) with strided convolutions, then a bidirectional GRU and a linear output. The output
  frame rate is ``input_rate_hz / hop_samples`` with ``hop_samples = prod(strides)``: the
  default strides (3, 2, 1) turn 360 Hz into 60 frames per second.

Frame timing: every convolution is "same"-padded with an odd kernel, so output frame ``j`` is
centred on input sample ``j * hop_samples``; with :func:`softloc.timebase.frames_to_seconds` at
``frame_rate = input_rate_hz / hop_samples`` and ``time_offset_s = 0`` it is stamped at that
sample's time. An input of ``n`` samples gives ``ceil(n / hop_samples)`` frames
(:meth:`SignalCRNN.output_frames`).

Framed input (``framed=True``, what :func:`sensor_spec` builds for a run): the raw signal arrives
cut into frames of ``hop_samples`` samples, ``(batch, n_channels * hop_samples, frames)`` with
``x[b, c * hop + k, j] = signal[b, c, j * hop + k]``
(:func:`softloc.data.signal_store.frame_signal`), so that input and output share one time axis
at the run's frame rate and the audio machinery (training windows, overlapping inference
windows, frame targets) serves signals unchanged; ``lengths`` then count frames.

Run configurations: :func:`sensor_spec` turns ``model.name`` (``signal-crnn`` / ``fc-lstm``) and
``model.args`` of a ``RunConfig`` into ``(name, args)`` for ``softloc.models.build_model``; the
run's frame rate is ``features.sample_rate / features.hop_length`` (signal rate / samples per
frame), and ``hop_length`` must equal the network's ``hop_samples``. Both networks declare
``input_kind = "signal"``, so their model files load with the signal input stage
(``softloc.inference.signals``).

Padding: ``lengths`` ``(batch,)`` marks the valid input samples. Activations beyond an item's
length are zeroed after every convolution and the recurrent layer runs on packed sequences, so an
item's outputs do not depend on the padding after it (a batched item equals the item alone; for
:class:`SignalCRNN` in eval mode, as its BatchNorm uses batch statistics in training). Logits of
padded frames are 0.

This module never imports Lightning or training code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from softloc._checks import (
    check_bool,
    check_int,
    check_lengths,
    check_ndim,
    check_real,
    check_tensor,
)
from softloc.models.heads import prior_output_bias
from softloc.timebase import duration_frames

__all__ = ["FCLSTM", "INPUT_ARGS", "SignalCRNN", "sensor_spec"]

#: Sensor network name -> the constructor argument holding its input width (channels/features).
INPUT_ARGS: dict[str, str] = {"signal-crnn": "n_channels", "fc-lstm": "n_features"}

_LAYOUT = "(batch, channel, time)"


def _check_input(fn: str, x: object, n_channels: int, lengths: object) -> torch.Tensor:
    x = check_tensor(fn, "x", x)
    check_ndim(fn, "x", x, 3, _LAYOUT)
    if not x.is_floating_point():
        raise TypeError(f"{fn}: `x` must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[1] != n_channels:
        raise ValueError(f"{fn}: `x` must have {n_channels} channels {_LAYOUT}, got shape "
                         f"{tuple(x.shape)}")
    if x.shape[2] < 1:
        raise ValueError(f"{fn}: `x` must hold at least one time step, got shape "
                         f"{tuple(x.shape)}")
    check_lengths(fn, lengths, x.shape[0], x.shape[2])
    return x


def _check_dropout(fn: str, dropout: object) -> float:
    p = check_real(fn, "dropout", dropout, minimum=0.0)
    if p >= 1:
        raise ValueError(f"{fn}: `dropout` must be in [0, 1), got {dropout}")
    return p


def _mask(lengths: torch.Tensor | None, time: int, like: torch.Tensor) -> torch.Tensor | None:
    """(batch, 1, time) mask of valid steps, or None when every step is valid."""
    if lengths is None:
        return None
    valid = torch.arange(time, device=like.device)[None, :] < lengths.to(like.device)[:, None]
    return valid.to(like.dtype)[:, None, :]  # (B, T) -> (B, 1, T)


def _run_rnn(rnn: nn.RNNBase, h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``rnn`` over ``h`` ``(batch, time, feature)``, packed when lengths are given."""
    if lengths is None:
        return rnn(h)[0]
    total = h.shape[1]
    lens = lengths.detach().to("cpu", torch.int64).clamp(min=1)  # empty items: one (masked) step
    packed = pack_padded_sequence(h, lens, batch_first=True, enforce_sorted=False)
    out, _ = pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=total)
    return out


class FCLSTM(nn.Module):
    """SoftLoc §5.2's sensor model: FC(ReLU) -> dropout -> LSTM -> linear, one logit per step.

    The original (TF1, official-implementation facts §3.3): FC(37 -> 14, ReLU), dropout with
    keep probability 0.5 in training, an ``LSTMBlockCell(14)`` with forget bias 1, then
    FC(14 -> 1) with a sigmoid (SoftLoc) or FC(14 -> 2) with a softmax (the CE baseline). Here the
    output is ``n_classes`` independent logits; the CE baseline's two-way softmax on one class is
    the sigmoid of the difference of its two logits, so one logit per class covers both.

    Args:
        n_features: input features per step (37 in puffMarker).
        n_classes: output classes (1: puff).
        hidden_units: width of the fully connected layer (paper: 14).
        lstm_units: LSTM units (paper: 14).
        dropout: dropout probability after the FC layer (paper: 0.5).
        bidirectional: a bidirectional LSTM (the paper's is unidirectional, i.e. causal).
        output_bias: initial bias of every output logit, e.g.
            :func:`softloc.models.heads.prior_output_bias` (LoCo eq. 15).

    Shape:
        x ``(batch, n_features, time)``, lengths ``(batch,)`` -> ``(batch, n_classes, time)``.
    """

    hop_samples = 1
    #: The Detector's input stage of this network (``softloc.inference.signals``).
    input_kind = "signal"

    def __init__(self, n_features: int, n_classes: int = 1, *, hidden_units: int = 14,
                 lstm_units: int = 14, dropout: float = 0.5, bidirectional: bool = False,
                 output_bias: float = 0.0) -> None:
        super().__init__()
        fn = "FCLSTM"
        self.n_features = check_int(fn, "n_features", n_features, minimum=1)
        self.n_classes = check_int(fn, "n_classes", n_classes, minimum=1)
        hidden = check_int(fn, "hidden_units", hidden_units, minimum=1)
        units = check_int(fn, "lstm_units", lstm_units, minimum=1)
        self.bidirectional = check_bool(fn, "bidirectional", bidirectional)
        self.fc = nn.Linear(self.n_features, hidden)
        self.dropout = nn.Dropout(_check_dropout(fn, dropout))
        self.lstm = nn.LSTM(hidden, units, batch_first=True, bidirectional=self.bidirectional)
        self.out = nn.Linear(units * (2 if self.bidirectional else 1), self.n_classes)
        with torch.no_grad():
            # forget-gate bias 1 (TF's LSTMBlockCell forget_bias=1.0); gate order i, f, g, o
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    p.zero_()
                    p[units:2 * units] = 1.0
                elif name.startswith("bias_hh"):
                    p.zero_()
            self.out.bias.fill_(check_real(fn, "output_bias", output_bias))

    def output_frames(self, n_samples: int) -> int:
        """Output frames for an input of ``n_samples`` steps (the same number)."""
        return check_int("FCLSTM.output_frames", "n_samples", n_samples, minimum=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, n_classes, time)`` of features ``x`` ``(batch, n_features, time)``."""
        x = _check_input("FCLSTM.forward", x, self.n_features, lengths)
        h = self.dropout(torch.relu(self.fc(x.transpose(1, 2))))  # (B, F, T) -> (B, T, H)
        h = _run_rnn(self.lstm, h, lengths)  # (B, T, H) -> (B, T, U)
        logits = self.out(h).transpose(1, 2)  # (B, T, C) -> (B, C, T)
        mask = _mask(lengths, x.shape[2], logits)
        return logits if mask is None else logits * mask


class SignalCRNN(nn.Module):
    """Strided 1-D convolutions + bidirectional GRU on a raw signal; logits at a lower frame rate.

    Each convolution block is Conv1d (odd kernel, "same" padding, stride) -> BatchNorm ->
    ReLU; the GRU sees the last block's channels per output frame and a linear layer gives one
    logit per class.

    Args:
        n_channels: input channels (1 for a single ECG lead).
        n_classes: output classes (1: beat).
        conv_channels: output channels of the convolution blocks.
        kernel_sizes: their kernel lengths in input samples of each block (odd).
        strides: their strides; ``hop_samples = prod(strides)``.
        gru_units: GRU units per direction; 0 drops the recurrent layer (a purely
            convolutional detector whose outputs see only the convolutions' receptive field).
        bidirectional: a bidirectional GRU (default) or a causal one.
        dropout: dropout probability before the GRU and before the output layer.
        output_bias: initial bias of every output logit, e.g.
            :func:`softloc.models.heads.prior_output_bias` (LoCo eq. 15).
        framed: the input is framed (see the module docstring): ``(batch, n_channels *
            hop_samples, frames)`` with ``lengths`` in frames, one output frame per input frame.
        sign_invariant: take the absolute value of the first convolution (which has no bias),
            so the network's output is the same for ``x`` and ``-x``: an ECG lead whose QRS
            points down (electrode placement, another person's heart axis) looks like one whose
            QRS points up, as Pan–Tompkins' squared derivative does.

    Shape:
        x ``(batch, n_channels, samples)``, lengths ``(batch,)`` in samples ->
        ``(batch, n_classes, ceil(samples / hop_samples))``; framed: x ``(batch, n_channels *
        hop_samples, frames)``, lengths in frames -> ``(batch, n_classes, frames)``.

    Example:
        >>> net = SignalCRNN(1, 1)
        >>> net.hop_samples, 360 / net.hop_samples
        (6, 60.0)
        >>> tuple(net(torch.zeros(2, 1, 3600)).shape)
        (2, 1, 600)
    """

    input_kind = "signal"

    def __init__(self, n_channels: int = 1, n_classes: int = 1, *,
                 conv_channels: Sequence[int] = (16, 32, 32),
                 kernel_sizes: Sequence[int] = (9, 9, 5), strides: Sequence[int] = (3, 2, 1),
                 gru_units: int = 32, bidirectional: bool = True, dropout: float = 0.1,
                 output_bias: float = 0.0, framed: bool = False,
                 sign_invariant: bool = False) -> None:
        super().__init__()
        fn = "SignalCRNN"
        self.n_channels = check_int(fn, "n_channels", n_channels, minimum=1)
        self.n_classes = check_int(fn, "n_classes", n_classes, minimum=1)
        chans = tuple(check_int(fn, "conv_channels", c, minimum=1) for c in conv_channels)
        kernels = tuple(check_int(fn, "kernel_sizes", k, minimum=1) for k in kernel_sizes)
        self.strides = tuple(check_int(fn, "strides", s, minimum=1) for s in strides)
        if not chans or not len(chans) == len(kernels) == len(self.strides):
            raise ValueError(f"{fn}: `conv_channels`, `kernel_sizes` and `strides` must be "
                             f"non-empty and of equal length, got {len(chans)}, {len(kernels)}, "
                             f"{len(self.strides)}")
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"{fn}: `kernel_sizes` must be odd ('same' padding keeps frames "
                             f"centred), got {kernels}")
        units = check_int(fn, "gru_units", gru_units, minimum=0)
        self.bidirectional = check_bool(fn, "bidirectional", bidirectional)
        self.framed = check_bool(fn, "framed", framed)
        self.sign_invariant = check_bool(fn, "sign_invariant", sign_invariant)
        p = _check_dropout(fn, dropout)
        widths = (self.n_channels, *chans)
        self.convs = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], kernels[i], stride=self.strides[i],
                      padding=kernels[i] // 2, bias=False) for i in range(len(chans)))
        self.norms = nn.ModuleList(nn.BatchNorm1d(c) for c in chans)
        self.dropout = nn.Dropout(p)
        self.gru = (nn.GRU(chans[-1], units, batch_first=True, bidirectional=self.bidirectional)
                    if units else None)
        width = units * (2 if self.bidirectional else 1) if units else chans[-1]
        self.out = nn.Linear(width, self.n_classes)
        with torch.no_grad():
            self.out.bias.fill_(check_real(fn, "output_bias", output_bias))

    @property
    def hop_samples(self) -> int:
        """Input samples per output frame: the product of the strides."""
        return math.prod(self.strides)

    def frame_rate(self, input_rate_hz: float) -> float:
        """Output frames per second for an input sampled at ``input_rate_hz``."""
        return check_real("SignalCRNN.frame_rate", "input_rate_hz", input_rate_hz,
                          positive=True) / self.hop_samples

    def output_frames(self, n_samples: int) -> int:
        """Output frames for ``n_samples`` input samples: ``ceil`` through every stride."""
        n = check_int("SignalCRNN.output_frames", "n_samples", n_samples, minimum=1)
        for s in self.strides:
            n = -(-n // s)
        return n

    def _out_lengths(self, lengths: torch.Tensor, stride_so_far: int) -> torch.Tensor:
        return torch.div(lengths + stride_so_far - 1, stride_so_far, rounding_mode="floor")

    def unframe(self, x: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Framed input ``(batch, n_channels * hop, frames)`` -> samples ``(batch, n_channels,
        frames * hop)``, and lengths in frames -> lengths in samples."""
        fn = "SignalCRNN.forward"
        x = _check_input(fn, x, self.n_channels * self.hop_samples, lengths)
        b, _, t = x.shape
        hop = self.hop_samples
        x = x.reshape(b, self.n_channels, hop, t).transpose(2, 3)  # (B, C*hop, T) -> (B, C, T, hop)
        x = x.reshape(b, self.n_channels, t * hop)  # (B, C, T, hop) -> (B, C, T*hop)
        return x, None if lengths is None else lengths.to(torch.int64) * hop

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, n_classes, frames)`` of ``x`` ``(batch, n_channels, samples)``
        (framed: ``(batch, n_channels * hop_samples, frames)``)."""
        if self.framed:
            x, lengths = self.unframe(x, lengths)
        x = _check_input("SignalCRNN.forward", x, self.n_channels, lengths)
        lengths = None if lengths is None else lengths.to(torch.int64)
        h, hop = x, 1
        if lengths is not None:
            h = h * _mask(lengths, h.shape[2], h)
        for i, (conv, norm, s) in enumerate(zip(self.convs, self.norms, self.strides,
                                                strict=True)):
            hop *= s
            h = conv(h)  # (B, C, T) -> (B, C', ceil(T / s))
            h = torch.relu(norm(h.abs() if i == 0 and self.sign_invariant else h))
            if lengths is not None:
                h = h * _mask(self._out_lengths(lengths, hop), h.shape[2], h)
        frame_lengths = None if lengths is None else self._out_lengths(lengths, hop)
        h = self.dropout(h.transpose(1, 2))  # (B, C, T') -> (B, T', C)
        if self.gru is not None:
            h = self.dropout(_run_rnn(self.gru, h, frame_lengths))  # (B, T', C) -> (B, T', U)
        logits = self.out(h).transpose(1, 2)  # (B, T', K) -> (B, K, T')
        mask = _mask(frame_lengths, logits.shape[2], logits)
        return logits if mask is None else logits * mask


def sensor_spec(config: Any) -> tuple[str, dict[str, Any]]:
    """``(name, args)`` of the sensor network a ``RunConfig`` describes (``model.name`` and
    ``model.args``), for ``softloc.models.build_model``.

    The network gets ``n_classes = len(config.classes)``, an output bias encoding
    Pr(no event of a class in one window) = ``model.prior_omega`` over the window's frames
    (LoCo eq. 15, :func:`softloc.models.heads.prior_output_bias`), and for ``signal-crnn``
    ``framed=True``. ``model.args`` gives the rest; the input width (``n_channels`` /
    ``n_features``, :data:`INPUT_ARGS`) defaults to 1 and is filled from the dataset by the
    training loaders.

    Raises:
        ValueError: empty ``config.classes``, a ``model.name`` that is not a sensor network, an
            argument the runner sets itself, or ``features.hop_length`` different from the
            network's samples per frame (the product of ``model.args.strides``; 1 for
            ``fc-lstm``).
    """
    fn = "sensor_spec"
    if not config.classes:
        raise ValueError("model_from_config: `config.classes` is empty; set the class labels")
    m = config.model
    if m.name not in INPUT_ARGS:
        raise ValueError(f"{fn}: `model.name` must be one of {tuple(INPUT_ARGS)}, got {m.name!r}")
    args = dict(m.args)
    fixed = {"n_classes", "output_bias", "framed"} & set(args)
    if fixed:
        raise ValueError(f"{fn}: `model.args` must not set {sorted(fixed)}; they come from the "
                         "classes, model.prior_omega and the input layout")
    args.setdefault(INPUT_ARGS[m.name], 1)
    frame_rate = config.features.frame_rate
    window = duration_frames(config.data.window_s, frame_rate)
    args["n_classes"] = len(config.classes)
    args["output_bias"] = prior_output_bias(window, m.prior_omega)
    hop = 1
    if m.name == "signal-crnn":
        args["framed"] = True
        strides = args.get("strides", SignalCRNN.__init__.__kwdefaults__["strides"])
        hop = math.prod(int(s) for s in strides)
    if config.features.hop_length != hop:
        raise ValueError(f"{fn}: `features.hop_length` ({config.features.hop_length} samples per "
                         f"frame) must equal the {m.name} network's samples per frame ({hop}"
                         + (", the product of model.args.strides)" if hop > 1 else ")"))
    return m.name, args
