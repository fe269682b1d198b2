"""Digit detector along a Hilbert curve (LoCo §8.1): conv blocks per patch, LSTM, per-step head.

The image is cut into windows centred on the cells of a Hilbert curve
(:func:`softloc.hilbert.image_to_patches`); a VGG-style convolutional encoder turns every window
into a feature vector (the representation part), an LSTM runs along the curve (the localization
part) and a small fully connected head gives, per curve step and digit class, the logit of the
probability p(t) that a digit is centred there. Trained from digit counts with the LoCo loss,
detection and recognition emerge.

Conventions: images ``(batch, channel, image_px, image_px)`` -> LOGITS ``(batch, class, time)``
(``torch.sigmoid`` gives p(t)) with ``time = (image_px / granularity_px) ** 2``; step ``t`` is
centred on ``softloc.hilbert.sequence_centres_px(image_px, granularity_px)[t]``. Build it by name
(``softloc.models.build_model("digits", ...)``) so that a model file can rebuild it.

This module never imports Lightning or training code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from softloc._checks import check_float, check_ndim, check_tensor
from softloc.hilbert import grid_side, image_to_patches
from softloc.models.heads import init_loco_head

__all__ = ["CONV_PRESETS", "DigitDetector"]

#: Conv channels per VGG block (each block: 3x3 convs, then 2x2 max-pooling).
#: ``"vgg13"`` is the convolutional part of VGG-13 (Simonyan & Zisserman 2014, config B), the
#: paper's preset; ``"compact"`` (one conv per block, the default) and ``"small"`` (two) are
#: CPU-sized for 16-24 px windows; ``"tiny"`` is for tests.
CONV_PRESETS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "small": ((16, 16), (32, 32), (64, 64)),
    "compact": ((16,), (32,), (64,)),
    "tiny": ((4,), (8,)),
}


def _window_sides(fn: str, window_px: int | Sequence[int]) -> tuple[int, int]:
    """``16`` or ``(16, 24)`` / ``[16, 24]`` (a model file stores lists) -> ``(height, width)``."""
    sides = [window_px] if isinstance(window_px, int) else list(window_px)
    if isinstance(window_px, str | bytes) or len(sides) not in (1, 2) or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sides
    ):
        raise TypeError(
            f"{fn}: `window_px` must be a positive int or a (height, width) pair of them, "
            f"got {window_px!r}"
        )
    return sides[0], sides[-1]


def _conv_blocks(
    in_channels: int, blocks: Sequence[Sequence[int]], batch_norm: bool
) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    ch = in_channels
    for block in blocks:
        for out_ch in block:
            conv = nn.Conv2d(ch, out_ch, kernel_size=3, padding=1, bias=not batch_norm)
            # He initialisation, as torchvision's VGG: PyTorch's default conv init shrinks the
            # activations layer by layer, and the nearly constant features stall count learning.
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            layers.append(conv)
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
            ch = out_ch
        # ceil_mode keeps odd sizes (e.g. 28 -> 14 -> 7 -> 4 -> 2 -> 1 for VGG-13 on MNIST).
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers), ch


class DigitDetector(nn.Module):
    """Conv encoder per Hilbert-curve patch + LSTM + FC head (LoCo §8.1-8.2).

    Args:
        image_px: side of the (square) input images in pixels. Default 64.
        granularity_px: Hilbert cell size = stride between windows, in pixels; ``image_px /
            granularity_px`` must be a power of two. Default 8 (the paper's).
        window_px: window side (int) or ``(height, width)`` (tuple or list) in pixels,
            >= ``granularity_px`` with the same parity. Default 16.
        conv_channels: output channels of each conv layer, grouped by VGG block (a 2x2 max-pool
            ends every block), e.g. ``CONV_PRESETS["vgg13"]``. Default ``CONV_PRESETS["compact"]``.
        batch_norm: batch normalisation after every conv (VGG-13-BN style). Default False: then
            blank windows are encoded once per batch instead of once each (exact, and faster).
        lstm_units: LSTM hidden size per direction. Default 48 (the paper's).
        bidirectional: run the LSTM both ways along the curve. Default True.
        hidden_units: width of the fully connected layer after the LSTM. Default 24 (the paper's).
        n_classes: number of digit classes (output channels). Default 10.
        in_channels: image channels. Default 1.
        output_bias: initial pre-sigmoid output bias, e.g.
            ``softloc.models.prior_output_bias(time, omega)`` (LoCo eq. 15). Default 0.

    Shape:
        ``images (batch, in_channels, image_px, image_px)`` -> logits ``(batch, n_classes, time)``.

    Notes:
        The paper gives the parts (VGG-13 conv layers, a 48-unit LSTM, a 24-node fully connected
        layer) but not how they join. We flatten the last conv map of each window, layer-normalise
        it, and read the 24-node layer as LoCo's audio head: a sigmoid hidden layer with N(0, 1)
        weights, then a linear output per class with the prior bias. Without the normalisation
        and this head, count training sat on the prior (loss = entropy of the count marginal) for
        hundreds of steps in our runs. The LSTM is bidirectional by default: with a one-way LSTM
        the step that fires has only seen the part of the digit already scanned, which biases
        detections along the curve.
    """

    def __init__(
        self,
        *,
        image_px: int = 64,
        granularity_px: int = 8,
        window_px: int | Sequence[int] = 16,
        conv_channels: Sequence[Sequence[int]] = CONV_PRESETS["compact"],
        batch_norm: bool = False,
        lstm_units: int = 48,
        bidirectional: bool = True,
        hidden_units: int = 24,
        n_classes: int = 10,
        in_channels: int = 1,
        output_bias: float = 0.0,
    ) -> None:
        super().__init__()
        fn = "DigitDetector"
        self.n_side = grid_side(image_px, granularity_px)
        win_h, win_w = _window_sides(fn, window_px)
        if (
            min(win_h, win_w) < granularity_px
            or (win_h - granularity_px) % 2
            or (win_w - granularity_px) % 2
        ):
            raise ValueError(
                f"{fn}: `window_px` must be >= granularity_px ({granularity_px}) with the same "
                f"parity, got {win_h} x {win_w}"
            )
        blocks = [tuple(int(c) for c in b) for b in conv_channels]
        if not blocks or any(not b or min(b) < 1 for b in blocks):
            raise ValueError(
                f"{fn}: `conv_channels` must be non-empty blocks of positive channel counts, "
                f"got {conv_channels!r}"
            )
        self.image_px = image_px
        self.granularity_px = granularity_px
        self.window_px = (win_h, win_w)
        self.n_classes = n_classes
        self.in_channels = in_channels
        self.batch_norm = batch_norm
        self.encoder, out_ch = _conv_blocks(in_channels, blocks, batch_norm)
        with torch.no_grad():
            probe = self.encoder(torch.zeros(1, in_channels, win_h, win_w))
        self.n_features = int(probe.numel())
        # Per-window feature normalisation: most windows of a canvas are blank, and without it
        # the few informative windows barely move the LSTM at the start of training.
        self.norm = nn.LayerNorm(self.n_features)
        self.lstm = nn.LSTM(
            self.n_features, lstm_units, batch_first=True, bidirectional=bidirectional
        )
        self.hidden = nn.Linear(lstm_units * (2 if bidirectional else 1), hidden_units)
        self.out = nn.Linear(hidden_units, n_classes)
        # The LoCo head of the CRNN: N(0, 1) weights, so the outputs differ across steps from
        # the start; prior output bias (eq. 15).
        init_loco_head(self.hidden, self.out, output_bias)

    @property
    def n_steps(self) -> int:
        """Sequence length ``time`` = number of Hilbert cells."""
        return self.n_side * self.n_side

    def encode(self, patches: torch.Tensor) -> torch.Tensor:
        """Representation of single windows: the flattened last conv map (LoCo Fig. 3).

        Shape:
            ``(n, in_channels, win_h, win_w)`` -> ``(n, n_features)``.
        """
        fn = "DigitDetector.encode"
        check_tensor(fn, "patches", patches)
        check_ndim(fn, "patches", patches, 4, "(n, channel, win_h, win_w)")
        if tuple(patches.shape[1:]) != (self.in_channels, *self.window_px):
            raise ValueError(
                f"{fn}: `patches` must have shape (n, {self.in_channels}, {self.window_px[0]}, "
                f"{self.window_px[1]}), got {tuple(patches.shape)}"
            )
        return self.encoder(patches).flatten(1)  # (N, C, h, w) -> (N, F)

    def _encode_skipping_blanks(self, flat: torch.Tensor) -> torch.Tensor:
        """Encode only the windows with a non-zero pixel; all-zero windows share one encoding.

        Without batch normalisation the encoder is a fixed function of each window, so this is
        exact, and most windows of a sparse canvas are blank.
        """
        nonblank = flat.flatten(1).ne(0).any(dim=1)  # (N, C, h, w) -> (N,)
        n_blank = int(flat.shape[0] - nonblank.sum())
        if n_blank == 0:
            return self.encoder(flat).flatten(1)
        blank = self.encoder(flat.new_zeros(1, *flat.shape[1:])).flatten(1)  # (1, F)
        if n_blank == flat.shape[0]:
            return blank.expand(flat.shape[0], -1)
        coded = self.encoder(flat[nonblank]).flatten(1)  # (N_nonblank, F)
        out = blank.expand(flat.shape[0], -1).clone()  # (N, F)
        return out.index_put((nonblank.nonzero().squeeze(1),), coded)

    def forward(self, images: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(t) that a digit of each class is centred on step t.

        Args:
            images: ``(batch, in_channels, image_px, image_px)`` float images.
            lengths: ignored (every image has ``n_steps`` steps); accepted so that the network
                is called like every softloc network, ``model(inputs, lengths)``.

        Shape:
            ``(batch, in_channels, image_px, image_px)`` -> ``(batch, n_classes, time)``.
        """
        fn = "DigitDetector"
        check_tensor(fn, "images", images)
        check_ndim(fn, "images", images, 4, "(batch, channel, height, width)")
        check_float(fn, "images", images)
        expected = (self.in_channels, self.image_px, self.image_px)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"{fn}: `images` must have shape (batch, {expected[0]}, {expected[1]}, "
                f"{expected[2]}), got {tuple(images.shape)}"
            )
        patches = image_to_patches(
            images, window_px=self.window_px, granularity_px=self.granularity_px
        )  # (B, C, H, W) -> (B, T, C, h, w)
        b, t = patches.shape[:2]
        flat = patches.flatten(0, 1)  # (B, T, C, h, w) -> (B*T, C, h, w)
        if self.batch_norm:
            feats = self.encoder(flat).flatten(1)  # (B*T, C, h, w) -> (B*T, F)
        else:
            feats = self._encode_skipping_blanks(flat)  # (B*T, C, h, w) -> (B*T, F)
        feats = self.norm(feats.reshape(b, t, -1))  # (B*T, F) -> (B, T, F)
        h, _ = self.lstm(feats)  # (B, T, F) -> (B, T, H)
        z = self.out(torch.sigmoid(self.hidden(h)))  # (B, T, H) -> (B, T, C)
        return z.transpose(1, 2)  # (B, T, C) -> (B, C, T)
