"""The network's layer tables and the order its layers run in, written once.

Everything that walks the encoder or the decoder (the whole-map walk of :mod:`adain.engine.walk`,
the row streams of :mod:`adain.engine.stream`, the weight conversion of
:mod:`adain.weights.convert`) reads these tables and :class:`Step` lists; nothing here holds
weights or touches tensors.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

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
# Three 2x poolings between the input and relu4_1: one feature cell covers 8x8 pixels.
DOWNSAMPLING = 8

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

StepKind = Literal["pointwise", "conv", "upconv", "relu", "maxpool", "avgpool"]


@dataclass(frozen=True)
class Step:
    """One operation of a walk through the network.

    Attributes:
        kind: ``"pointwise"`` (the 1x1 input convolution), ``"conv"`` (reflect-pad by 1, then a
            3x3 convolution), ``"upconv"`` (nearest x2 upsampling, reflect-pad, 3x3
            convolution: the decoder's step after an upsampling), ``"relu"``, ``"maxpool"`` or
            ``"avgpool"`` (2x2, stride 2, ``ceil_mode``).
        name: the layer whose output this step produces (``conv1_1``, ``relu1_1``, ``pool1``);
            the decoder's ReLUs are named after their convolution, ``relu(conv4_1)``.
        param: the convolution whose weights the step uses, else ``None``.
    """

    kind: StepKind
    name: str
    param: str | None = None


def encoder_steps(
    layer_names: Sequence[str], pooling: str = "max", keep: Collection[str] = ()
) -> list[Step]:
    """The encoder's steps from the RGB image through ``layer_names`` (a prefix of
    :data:`LAYER_NAMES`), starting with the Caffe preprocessing convolution.

    With max pooling, a ReLU followed by a pool runs after the pool instead, on a quarter of the
    values: max pooling and ReLU commute (both monotone). It stays in place when its output is
    in ``keep``.
    """
    steps = [Step("pointwise", "preprocess", "preprocess")]
    for index, name in enumerate(layer_names):
        following = layer_names[index + 1] if index + 1 < len(layer_names) else ""
        if name.startswith("conv"):
            steps.append(Step("conv", name, name))
        elif name.startswith("relu"):
            if pooling == "max" and following.startswith("pool") and name not in keep:
                continue
            steps.append(Step("relu", name))
        else:
            steps.append(Step("maxpool" if pooling == "max" else "avgpool", name))
            previous = layer_names[index - 1]
            if pooling == "max" and previous not in keep:
                steps.append(Step("relu", name))
    return steps


def decoder_steps() -> list[Step]:
    """The decoder's steps from relu4_1 features to RGB: ReLU after every convolution but the
    last, each convolution after an upsampling fused with it (``"upconv"``)."""
    steps = []
    upsampled = False
    for name, _, _, upsample in DECODER_LAYERS:
        steps.append(Step("upconv" if upsampled else "conv", name, name))
        if name != DECODER_LAYERS[-1][0]:
            steps.append(Step("relu", f"relu({name})"))
        upsampled = upsample
    return steps
