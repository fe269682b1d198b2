"""The audio CRNN of LoCo (§6) and SoftLoc (§5.1): power mel in, frame event probabilities out.

Conventions: the input is a *power* mel spectrogram ``(batch, n_mels, time)`` (as produced by
``softloc.features.mel_power``); the first layer (``softloc.features.LogDelta``) takes the log,
removes the per-window per-band mean over the valid frames and stacks the first time difference,
so training and inference see exactly the same transform. The output is the LOGIT of p(t), shape
``(batch, class, time)``: ``torch.sigmoid`` of it is one independent Bernoulli probability per
class and frame. Training works on the logits (numerically exact losses); inference applies the
sigmoid.

Architecture (official code, fact sheet §3.1): a stack of [3 (time) x 4 (freq)] convolutions with
'same' padding, ReLU and max-pooling over *frequency only* (time resolution is kept), one
unidirectional LSTM with forget-gate bias 1, and a per-frame head
``logit = W2 sigmoid(W1 h + b1) + b2`` with N(0, 1) weights and the output bias ``b2`` set from
the count prior (LoCo eq. 15, ``softloc.models.heads``).

This module never imports Lightning or training code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from softloc._checks import check_float, check_lengths, check_ndim, check_tensor
from softloc.features import LogDelta
from softloc.models.heads import init_loco_head

__all__ = ["CRNN", "ConvBlock", "FreqMaxPool", "PerClassCRNN"]


class FreqMaxPool(nn.Module):
    """Max over non-overlapping groups of ``size`` bins along the last (frequency) axis.

    Same values as ``nn.MaxPool2d((1, size))`` (trailing bins that do not fill a group are
    dropped). Without autograd (inference) it is an elementwise maximum of ``size`` strided
    slices: PyTorch's CPU max-pool kernel took ~45 % of CRNN inference time for these narrow
    pools, the slices ~3 %. With autograd it is ``max_pool2d`` itself, whose backward is cheap.

    Shape:
        ``(batch, channel, time, width)`` -> ``(batch, channel, time, width // size)``.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.size
        if p == 1:
            return x
        if torch.is_grad_enabled() and x.requires_grad:
            # Training: max_pool2d's backward routes the gradient by saved indices; the backward
            # of torch.maximum (tie handling with eq/where/div) made a training step ~40 % slower.
            return torch.nn.functional.max_pool2d(x, (1, p))
        n = (x.shape[-1] // p) * p
        out = x[..., 0:n:p]
        for i in range(1, p):
            out = torch.maximum(out, x[..., i:n:p])
        return out

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _same_padding(kernel_time: int, kernel_freq: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding of TF 'SAME' for a (time, freq) kernel."""
    ft, ff = kernel_time - 1, kernel_freq - 1
    return (ff // 2, ff - ff // 2, ft // 2, ft - ft // 2)


class ConvBlock(nn.Module):
    """Conv with TF 'SAME' padding, frequency max-pool, ReLU (one stage of the CRNN).

    The asymmetric 'SAME' padding (the odd extra row/column goes to the bottom/right) is done by
    the convolution's own symmetric padding followed by a crop (a view), which avoids writing a
    padded copy of every activation.

    Shape:
        ``(batch, in_channels, time, width)`` -> ``(batch, filters, time, width // pool)``.
    """

    def __init__(self, in_channels: int, filters: int, kernel_time: int, kernel_freq: int,
                 pool: int) -> None:
        super().__init__()
        left, right, top, bottom = _same_padding(kernel_time, kernel_freq)
        pad_t, pad_f = max(top, bottom), max(left, right)
        self._crop = (pad_t - top, pad_f - left)
        self.conv = nn.Conv2d(in_channels, filters, (kernel_time, kernel_freq),
                              padding=(pad_t, pad_f))
        nn.init.xavier_uniform_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)  # type: ignore[arg-type]
        self.pool = FreqMaxPool(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, w = x.shape[2], x.shape[3]
        y = self.conv(x)
        t0, f0 = self._crop
        y = y[:, :, t0 : t0 + t, f0 : f0 + w]
        # Pool before ReLU: they commute, and the ReLU then touches `pool` times fewer values;
        # in place on the pool's fresh output (its backward needs only its inputs).
        y = self.pool(y)
        return torch.relu_(y) if self.pool.size > 1 else torch.relu(y)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # Checkpoints of softloc <= 0.1 stored this block as Sequential(pad, conv, relu, pool).
        for name in ("weight", "bias"):
            old = f"{prefix}1.{name}"
            if old in state_dict:
                state_dict[f"{prefix}conv.{name}"] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class CRNN(nn.Module):
    """Convolutional-recurrent frame classifier (LoCo §6, SoftLoc §5.1).

    Args:
        n_mels: mel bands of the input power spectrogram; the network sees ``2 * n_mels`` features
            (log-mel + first time difference).
        n_classes: output channels (one Bernoulli p(t) per class).
        conv_filters: output channels of each conv layer (drums: 8, 16, 16, 16, 16, 16).
        pool_sizes: frequency max-pool size after each conv (drums: 2, 2, 2, 2, 3, 3); the
            product should reduce ``2 * n_mels`` to 1 (remaining bins are flattened otherwise).
        lstm_units: LSTM hidden size (drums: 24).
        hidden_units: size of the sigmoid hidden layer of the head (drums: 16).
        output_bias: initial pre-sigmoid output bias, e.g. ``prior_output_bias(T, omega)``
            (``softloc.models.heads``, LoCo eq. 15).
        kernel_time: conv kernel extent in frames (3).
        kernel_freq: conv kernel extent in feature bins (4).
        input_scale: constant factor applied to the log-mel/delta features (1.0: dB as they are;
            the official code's 20*log10 of a power equals 2.0 here).

    Shape:
        ``mel_power (batch, n_mels, time)``, ``lengths (batch,)`` ->
        logits ``(batch, n_classes, time)`` (``torch.sigmoid`` gives p(t)).

    Notes:
        Frames beyond ``lengths`` are zeroed after every conv layer, so padding never changes the
        valid frames (the LSTM is causal); their outputs carry no meaning and losses mask them with
        the same ``lengths``. The
        official code instead shortened the sequence by 2 frames and read the count at
        ``length - 3`` (fact sheet §2.8); we use every valid frame.
    """

    def __init__(
        self,
        *,
        n_mels: int,
        n_classes: int,
        conv_filters: Sequence[int],
        pool_sizes: Sequence[int],
        lstm_units: int,
        hidden_units: int,
        output_bias: float = 0.0,
        kernel_time: int = 3,
        kernel_freq: int = 4,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        fn = "CRNN"
        if len(conv_filters) != len(pool_sizes) or not conv_filters:
            raise ValueError(
                f"{fn}: `conv_filters` and `pool_sizes` must be non-empty and of equal length, "
                f"got {len(conv_filters)} and {len(pool_sizes)}"
            )
        width = 2 * n_mels
        for p in pool_sizes:
            if p < 1 or width // p < 1:
                raise ValueError(
                    f"{fn}: `pool_sizes` {list(pool_sizes)} pool {2 * n_mels} features "
                    f"(2 * n_mels) below one bin"
                )
            width //= p
        self.n_mels = n_mels
        self.n_classes = n_classes
        self.input_scale = float(input_scale)
        self.front = LogDelta()
        blocks: list[nn.Module] = []
        in_ch = 1
        for filters, pool in zip(conv_filters, pool_sizes, strict=True):
            blocks.append(ConvBlock(in_ch, filters, kernel_time, kernel_freq, pool))
            in_ch = filters
        self.convs = nn.ModuleList(blocks)
        self.lstm = nn.LSTM(in_ch * width, lstm_units, batch_first=True)
        with torch.no_grad():
            for name, param in self.lstm.named_parameters():
                if name.startswith("bias"):
                    param.zero_()
            # PyTorch gate order is (input, forget, cell, output); TF's forget_bias=1.0 adds 1 to
            # the forget pre-activation, i.e. one of the two bias vectors gets 1 on that slice.
            forget = slice(lstm_units, 2 * lstm_units)
            dict(self.lstm.named_parameters())["bias_ih_l0"][forget] = 1.0
        self.hidden = nn.Linear(lstm_units, hidden_units)
        self.out = nn.Linear(hidden_units, n_classes)
        init_loco_head(self.hidden, self.out, output_bias)

    def forward(self, mel_power: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(t) ``(batch, class, time)``; see the class docstring for shapes."""
        fn = "CRNN"
        check_tensor(fn, "mel_power", mel_power)
        check_ndim(fn, "mel_power", mel_power, 3, "(batch, n_mels, time)")
        check_float(fn, "mel_power", mel_power)
        if mel_power.shape[1] != self.n_mels:
            raise ValueError(
                f"{fn}: `mel_power` must have {self.n_mels} mel bands (dim 1), "
                f"got shape {tuple(mel_power.shape)}"
            )
        check_lengths(fn, lengths, mel_power.shape[0], mel_power.shape[2])
        x = self.front(mel_power, lengths=lengths)  # (B, M, T) -> (B, 2M, T)
        if self.input_scale != 1.0:
            x = x * self.input_scale
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 2M, T) -> (B, 1, T, 2M)
        # Channels-last: oneDNN's convolutions with these few channels ran 1.5-3x faster.
        x = x.contiguous(memory_format=torch.channels_last)
        mask = None
        # Full-length items need no masking (inference windows mostly are).
        if lengths is not None and bool((lengths < x.shape[2]).any()):
            steps = torch.arange(x.shape[2], device=x.device)
            mask = (steps[None, :] < lengths.to(x.device)[:, None]).to(x.dtype)[:, None, :, None]
        for block in self.convs:
            x = block(x)  # (B, F_in, T, W_in) -> (B, F, T, W)
            if mask is not None:
                # Zero the padding after every layer, so the last valid frames see exactly what
                # they would see if the window ended there (no leak through the conv context).
                x = x * mask
        b, f, t, w = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, t, f * w)  # (B, F, T, W) -> (B, T, F*W)
        h, _ = self.lstm(x)  # (B, T, F*W) -> (B, T, H)
        z = self.out(torch.sigmoid(self.hidden(h)))  # (B, T, H) -> (B, T, C)
        return z.transpose(1, 2)  # (B, T, C) -> (B, C, T)


class PerClassCRNN(nn.Module):
    """One independent single-output :class:`CRNN` per class, as the papers trained them.

    Takes the same arguments as :class:`CRNN`; ``n_classes`` networks with one output each are
    built and their outputs concatenated along the class axis.

    Shape:
        ``mel_power (batch, n_mels, time)`` -> logits ``(batch, n_classes, time)``.
    """

    def __init__(
        self,
        *,
        n_mels: int,
        n_classes: int,
        conv_filters: Sequence[int],
        pool_sizes: Sequence[int],
        lstm_units: int,
        hidden_units: int,
        output_bias: float = 0.0,
        kernel_time: int = 3,
        kernel_freq: int = 4,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.n_classes = n_classes
        self.nets = nn.ModuleList(
            CRNN(
                n_mels=n_mels,
                n_classes=1,
                conv_filters=conv_filters,
                pool_sizes=pool_sizes,
                lstm_units=lstm_units,
                hidden_units=hidden_units,
                output_bias=output_bias,
                kernel_time=kernel_time,
                kernel_freq=kernel_freq,
                input_scale=input_scale,
            )
            for _ in range(n_classes)
        )

    def forward(self, mel_power: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(t) ``(batch, class, time)``, one class per network."""
        return torch.cat([net(mel_power, lengths) for net in self.nets], dim=1)

