"""Decoder: the mirror of the VGG-19 encoder from relu4_1 back to pixels."""

from __future__ import annotations

from torch import Tensor, nn

from adain.architecture import DECODER_LAYERS, decoder_steps
from adain.engine.walk import conv_params, run_steps


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
        steps = decoder_steps()
        return run_steps(feats, steps, conv_params(self), {steps[-1].name})[steps[-1].name]
