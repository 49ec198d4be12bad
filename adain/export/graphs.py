"""The model's two halves as the modules that are traced into ONNX graphs.

:class:`EncoderGraph` is the model's own encoder (its walk of :mod:`adain.engine.walk`, as far
as relu4_1) plus the feature statistics; :class:`DecoderGraph` is AdaIN
(:func:`adain.functional.adaptive_instance_norm`), the alpha blend of paper eq. 14 and the
decoder's steps (:func:`adain.architecture.decoder_steps`). Padding to a multiple of 8 and
cropping back stay outside the graphs, as in the model: a style is encoded as it is, a content
is padded first (:func:`adain.functional.pad_to_multiple`).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adain.architecture import CONTENT_LAYER, decoder_steps
from adain.engine.fused import upsample_conv_weight
from adain.engine.walk import conv_params
from adain.functional import adaptive_instance_norm, calc_mean_std
from adain.model import AdaIN

# How the decoder's "upsample x2, reflect-pad, 3x3 convolution" steps are written in the graph:
# "plain" as those three operators; "fused" as four 2x2 convolutions at the low resolution,
# interleaved (adain.engine.fused: 2.25x fewer multiply-adds). Which one ORT runs faster is
# measured by `python -m benchmarks onnx --upsampling` (adain.export.onnx.DEFAULT_UPSAMPLING).
Upsampling = Literal["plain", "fused"]
# Phase (row, column) of each block of four output channels of a fused step, phase-major.
_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def _weights_in(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``module`` itself in fp32, else a copy in ``dtype`` (the model is never changed)."""
    return module if dtype == torch.float32 else copy.deepcopy(module).to(dtype)


class EncoderGraph(nn.Module):
    """RGB ``(B, 3, H, W)`` in [0, 1] -> relu4_1 ``features`` ``(B, C, ceil(H/8), ceil(W/8))``
    and their per-channel ``mean`` and ``std`` ``(B, C, 1, 1)`` (unbiased variance + eps, as
    :meth:`AdaIN.style_stats`). The convolutions run in ``dtype``, the statistics in fp32."""

    def __init__(self, model: AdaIN, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.encoder = _weights_in(model.encoder, dtype)
        self.dtype = dtype
        self.eps = model.eps

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        feats = self.encoder(image.to(self.dtype), (CONTENT_LAYER,))[CONTENT_LAYER].float()
        mean, std = calc_mean_std(feats, self.eps)
        return feats, mean, std


class DecoderGraph(nn.Module):
    """relu4_1 ``features`` ``(B, C, h, w)``, ``style_mean`` and ``style_std`` ``(B or 1, C, 1,
    1)`` and ``alpha`` ``(1,)`` -> RGB ``(B, 3, 8h, 8w)``, unclamped.

    The content statistics are taken from ``features`` (the whole padded content), then
    ``t = alpha * AdaIN(f, style) + (1 - alpha) * f`` is decoded. AdaIN and the blend run in
    fp32, the convolutions in ``dtype``.
    """

    def __init__(
        self, model: AdaIN, upsampling: Upsampling = "plain", dtype: torch.dtype = torch.float32
    ):
        super().__init__()
        if upsampling not in ("plain", "fused"):
            raise ValueError(f"upsampling must be 'plain' or 'fused', got {upsampling!r}")
        self.decoder = _weights_in(model.decoder, dtype)
        self.upsampling = upsampling
        self.dtype = dtype
        self.eps = model.eps
        # The fused steps' phase kernels, summed in fp32 from the model's own weights and held
        # as constants: the graph carries them instead of computing them on every run.
        self.phase_weights = nn.ParameterDict()
        if upsampling == "fused":
            for step in decoder_steps():
                if step.kind == "upconv":
                    assert step.param is not None
                    weight = getattr(model.decoder, step.param).weight.detach().float()
                    phases = upsample_conv_weight(weight).to(dtype)
                    self.phase_weights[step.param] = nn.Parameter(phases, requires_grad=False)

    def forward(self, features: Tensor, style_mean: Tensor, style_std: Tensor, alpha: Tensor):
        target = adaptive_instance_norm(features, style_mean, style_std, self.eps)
        x = (alpha * target + (1.0 - alpha) * features).to(self.dtype)
        params = conv_params(self.decoder)
        for step in decoder_steps():
            if step.kind == "relu":
                x = F.relu(x)
                continue
            assert step.param is not None
            weight, bias = params[step.param]
            if step.kind == "upconv" and self.upsampling == "fused":
                x = _fused_upsample_conv(x, self.phase_weights[step.param], bias)
                continue
            if step.kind == "upconv":
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias)
        return x.float()


def _fused_upsample_conv(x: Tensor, phase_weight: Tensor, bias: Tensor | None) -> Tensor:
    """:func:`adain.engine.fused.upsample_conv3x3` with the interleave written as graph
    operators: each phase's window, stacked per channel, then DepthToSpace (pixel_shuffle).

    ``phase_weight`` is :func:`adain.engine.fused.upsample_conv_weight` of the 3x3 kernel."""
    out_channels = phase_weight.shape[0] // 4
    height, width = x.shape[2], x.shape[3]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    phase_bias = None if bias is None else bias.repeat(4)
    phases = F.conv2d(padded, phase_weight, phase_bias)  # (B, 4O, h+1, w+1)
    windows = [
        phases[:, k * out_channels : (k + 1) * out_channels, a : a + height, b : b + width]
        for k, (a, b) in enumerate(_PHASES)
    ]
    # (B, O, 4, h, w) -> (B, 4O, h, w) with channel o*4 + 2a + b, as pixel_shuffle reads it.
    return F.pixel_shuffle(torch.stack(windows, dim=2).flatten(1, 2), 2)
