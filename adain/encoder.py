"""VGG-19 encoder with named layers, as the "normalised" VGG-19 of the AdaIN release."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from adain.architecture import (
    CAFFE_BGR_MEAN,
    CONTENT_LAYER,
    DEPTHS,
    LAYER_NAMES,
    VGG19_BLOCKS,
    encoder_steps,
)
from adain.engine.walk import conv_params, run_steps


def preprocessing_conv() -> tuple[Tensor, Tensor]:
    """Weight ``(3, 3, 1, 1)`` and bias ``(3,)`` of vgg_normalised's input convolution.

    RGB in [0, 1] -> Caffe input: channels reversed to BGR, scaled by 255, mean subtracted.
    """
    weight = torch.zeros(3, 3, 1, 1)
    for out_channel in range(3):
        weight[out_channel, 2 - out_channel, 0, 0] = 255.0
    return weight, -torch.tensor(CAFFE_BGR_MEAN)


class VGG19Encoder(nn.Module):
    """Frozen VGG-19 feature extractor up to ``depth``, returning the layers asked for.

    Input: ``(B, 3, H, W)`` RGB in [0, 1]. The Caffe preprocessing (RGB -> BGR, x255, mean
    subtraction) is the 1x1 convolution ``preprocess``, as index 0 of the released
    ``vgg_normalised.pth``, so converted weights reproduce the release exactly.

    Every 3x3 convolution reflect-pads by 1 and pooling is 2x2 max with ``ceil_mode=True``, as in
    the release.

    Args:
        depth: last layer kept, ``"relu4_1"`` (AdaIN) or ``"relu5_1"`` (also the Gram path).
        base_channels: width of block 1 (64 in VGG-19; smaller only for tests and experiments).
        pooling: ``"max"`` (the release, neural-style) or ``"avg"`` (Gatys et al. 2016).

    Note:
        ``preprocess`` is a persistent parameter, not a buffer as a plain mean/std would be: it is
        part of the released file, and keeping it lets a converted checkpoint carry it bit for bit.
    """

    def __init__(self, depth: str = "relu5_1", base_channels: int = 64, pooling: str = "max"):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS}, got {depth!r}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        self.depth = depth
        self.pooling = pooling
        self.layer_names = LAYER_NAMES[: LAYER_NAMES.index(depth) + 1]

        self.preprocess = nn.Conv2d(3, 3, kernel_size=1)
        weight, bias = preprocessing_conv()
        with torch.no_grad():
            self.preprocess.weight.copy_(weight)
            self.preprocess.bias.copy_(bias)

        in_channels = 3
        for block, (convs, multiple) in enumerate(VGG19_BLOCKS, start=1):
            for n in range(1, convs + 1):
                name = f"conv{block}_{n}"
                if name not in self.layer_names:
                    break
                out_channels = base_channels * multiple
                conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect")
                self.add_module(name, conv)
                in_channels = out_channels
        self.out_channels = in_channels
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Encoder:
        # Frozen by design: there is no dropout or batch norm, but keep eval() semantics anyway.
        return super().train(False)

    def forward(self, image: Tensor, layers: Iterable[str] = (CONTENT_LAYER,)) -> dict[str, Tensor]:
        """Run the image up to the deepest requested layer.

        Args:
            image: ``(B, 3, H, W)`` RGB in [0, 1].
            layers: names from :data:`LAYER_NAMES` up to ``self.depth``.

        Returns:
            ``{name: (B, C, h, w)}`` for each requested layer.
        """
        wanted = set(layers)
        unknown = wanted.difference(self.layer_names)
        if unknown:
            raise ValueError(
                f"unknown or too deep layers {sorted(unknown)} for an encoder to {self.depth}; "
                f"choose from {', '.join(self.layer_names)}"
            )
        last = max(self.layer_names.index(name) for name in wanted)
        steps = encoder_steps(self.layer_names[: last + 1], self.pooling, keep=wanted)
        return run_steps(image, steps, conv_params(self), wanted)
