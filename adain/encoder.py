"""VGG-19 encoder with named layers, as the "normalised" VGG-19 of the AdaIN release."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# VGG-19 configuration E (Simonyan & Zisserman 2015): convolutions per block, channel multiple of
# the base width (64 in the released weights).
VGG19_BLOCKS: tuple[tuple[int, int], ...] = ((2, 1), (2, 2), (4, 4), (4, 8), (4, 8))

# Caffe's BGR ImageNet mean in 0-255 units: the bias of vgg_normalised's index-0 1x1 convolution.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def _layer_names() -> list[str]:
    names = []
    for block, (convs, _) in enumerate(VGG19_BLOCKS, start=1):
        for n in range(1, convs + 1):
            names += [f"conv{block}_{n}", f"relu{block}_{n}"]
        if block < len(VGG19_BLOCKS):
            names.append(f"pool{block}")
    return names


# Every layer of VGG-19's feature stack, in order: conv1_1, relu1_1, ..., pool4, ..., relu5_4.
LAYER_NAMES: tuple[str, ...] = tuple(_layer_names())
# The layers the model can stop at; relu5_1 is the deepest any method here uses (Gatys' style).
DEPTHS = ("relu4_1", "relu5_1")
# AdaIN's style loss layers (paper Sec. 6.2) and its transfer layer.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_1"


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
        feats: dict[str, Tensor] = {}
        names = self.layer_names[: last + 1]
        deferred_relu = False
        x = self.preprocess(image)
        for index, name in enumerate(names):
            if name.startswith("conv"):
                conv = getattr(self, name)
                # Conv2d(padding_mode="reflect") in two steps, rebinding x in between: the
                # unpadded map is freed before the convolution allocates its output (one
                # full-size map less at peak, and less fresh memory to fault in).
                x = F.pad(x, (1, 1, 1, 1), mode="reflect")
                x = F.conv2d(x, conv.weight, conv.bias)
            elif name.startswith("relu"):
                following = names[index + 1] if index + 1 < len(names) else ""
                if self.pooling == "max" and following.startswith("pool") and name not in wanted:
                    # Max pooling and ReLU commute (both monotone): rectify the pooled map,
                    # a quarter of the size.
                    deferred_relu = True
                    continue
                # In place only when nobody keeps the pre-activation (a requested conv layer).
                conv_kept = name.replace("relu", "conv") in feats
                x = F.relu(x, inplace=not conv_kept and not x.requires_grad)
            elif self.pooling == "max":
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
                if deferred_relu:
                    x = F.relu(x, inplace=not x.requires_grad)
                    deferred_relu = False
            else:
                x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
            if name in wanted:
                feats[name] = x
        return feats
