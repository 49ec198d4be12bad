"""Decoder: the mirror of the VGG-19 encoder from relu4_1 back to pixels."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from adain.engine.fused import upsample_conv3x3

# (name, in multiple, out multiple, upsample after) of the base width, in forward order.
# Names mirror the encoder layer each convolution inverts (the release's decoder indices
# 1, 5, 8, 11, 14, 18, 21, 25, 28); out multiple 0 means the 3 RGB channels.
DECODER_LAYERS: tuple[tuple[str, int, int, bool], ...] = (
    ("conv4_1", 8, 4, True),
    ("conv3_4", 4, 4, False),
    ("conv3_3", 4, 4, False),
    ("conv3_2", 4, 4, False),
    ("conv3_1", 4, 2, True),
    ("conv2_2", 2, 2, False),
    ("conv2_1", 2, 1, True),
    ("conv1_2", 1, 1, False),
    ("conv1_1", 1, 0, False),
)


class Decoder(nn.Module):
    """Maps relu4_1 features ``(B, 8*base, h, w)`` to an RGB image ``(B, 3, 8h, 8w)``.

    Reflection padding before every 3x3 convolution, nearest-neighbour x2 upsampling in place of
    the encoder's pooling, ReLU after every convolution but the last, no normalisation layers and
    no output activation (paper Sec. 6.1; the release's 29-module decoder). The output is roughly
    in [0, 1] and is not clamped here.

    Args:
        base_channels: width of the encoder's block 1 (64 for VGG-19).
    """

    def __init__(self, base_channels: int = 64):
        super().__init__()
        for name, in_multiple, out_multiple, _ in DECODER_LAYERS:
            out_channels = base_channels * out_multiple if out_multiple else 3
            conv = nn.Conv2d(
                base_channels * in_multiple, out_channels, 3, padding=1, padding_mode="reflect"
            )
            self.add_module(name, conv)

    def forward(self, feats: Tensor) -> Tensor:
        x = feats
        last = DECODER_LAYERS[-1][0]
        upsampled = False
        for name, _, _, upsample in DECODER_LAYERS:
            conv = getattr(self, name)
            # Upsample-then-convolve runs as its exact low-resolution rewrite (adain.engine.fused):
            # 2.25x fewer multiply-adds and no 4x-size intermediate maps.
            if upsampled:
                x = upsample_conv3x3(x, conv.weight, conv.bias)
            else:
                # Pad, then convolve with x rebound in between, as the encoder does: the
                # unpadded map is freed before the output is allocated.
                x = F.pad(x, (1, 1, 1, 1), mode="reflect")
                x = F.conv2d(x, conv.weight, conv.bias)
            if name == last:
                break
            x = F.relu(x, inplace=not x.requires_grad)
            upsampled = upsample
        return x
