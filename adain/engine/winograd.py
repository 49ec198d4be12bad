"""3x3 convolutions with a third fewer multiplications: Winograd's F(2, 3) along the width.

Two neighbouring outputs of a 3-tap filter ``g`` over four inputs ``d0..d3`` take four
multiplications instead of six (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016)::

    m0 = (d0 - d2) g0    m1 = (d1 + d2) (g0 + g1 + g2) / 2
    m3 = (d1 - d3) g2    m2 = (d2 - d1) (g0 - g1 + g2) / 2
    y0 = m0 + m1 + m2    y1 = m1 - m2 - m3

Applied to the columns of a 3x3 kernel, each ``m`` is a 3x1 convolution (the kernel's rows
stay direct) of a half-width map, so a 3x3 convolution becomes four 3x1 convolutions and a few
elementwise passes: 12 instead of 18 multiply-adds per output and channel pair. The 2D
F(2x2, 3x3) would save more but needs 16 convolutions of quarter-size maps and more passes over
memory, which this 2-core CPU lacks.

It pays only where the matrix products dominate the elementwise passes: measured on the 2-core
reference CPU (fp32, channels_last, each convolution alone, warm), 256->256 channels at
64x512 took 237-268 ms against 286-296 ms direct, 512->256 and 256->512 at 32x256 89-110 ms
against 130-145 ms, while 128->128 at 128x1024 took 364-391 ms against 255-259 ms. Hence
:data:`MIN_CHANNELS`. GPUs pick their own algorithms (cuDNN has Winograd kernels): CPU only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from adain.engine.fused import memory_layout

# Fewest input and output channels for which F(2, 3) beat the direct convolution (see above).
MIN_CHANNELS = 256


def winograd_pays(weight: Tensor) -> bool:
    """Whether a ``(O, I, 3, 3)`` CPU convolution runs faster as :func:`conv3x3_f23`."""
    out_channels, in_channels = weight.shape[:2]
    return (
        weight.device.type == "cpu"
        and tuple(weight.shape[2:]) == (3, 3)
        and min(out_channels, in_channels) >= MIN_CHANNELS
    )


class F23Kernels:
    """A ``(O, I, 3, 3)`` kernel and ``(O,)`` bias in the four ``(O, I, 3, 1)`` column forms of
    F(2, 3), transformed once; the bias rides on ``m0`` (``y0``) and, negated, on ``m3`` (``y1``).
    """

    def __init__(self, weight: Tensor, bias: Tensor | None):
        g0, g1, g2 = weight[..., 0:1], weight[..., 1:2], weight[..., 2:3]
        layout = (
            torch.channels_last
            if weight.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        # Summed at the weight's precision, outside any autocast region.
        with torch.autocast(weight.device.type, enabled=False):
            forms = (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2)
        self.weights = [w.contiguous(memory_format=layout) for w in forms]
        self.first_bias = bias
        self.last_bias = None if bias is None else -bias


def conv3x3_f23(padded: Tensor, kernels: F23Kernels) -> Tensor:
    """``F.conv2d(padded, weight, bias)`` for an input already padded by one on each side.

    Args:
        padded: ``(B, I, h + 2, w + 2)`` with ``w`` even (contiguous or channels_last; the
            output follows it).
        kernels: the convolution's :class:`F23Kernels`.

    Returns:
        ``(B, O, h, w)``, equal to the direct convolution up to float rounding (~2e-6 of the
        output's largest magnitude in fp32).
    """
    width = padded.shape[3] - 2
    if width % 2:
        raise ValueError(f"F(2, 3) needs an even output width, got {width}")
    u0, u1, u2, u3 = kernels.weights
    d1, d2 = padded[..., 1 : 1 + width : 2], padded[..., 2 : 2 + width : 2]
    m0 = F.conv2d(padded[..., 0:width:2] - d2, u0, kernels.first_bias)
    m3 = F.conv2d(d1 - padded[..., 3 : 3 + width : 2], u3, kernels.last_bias)
    m1 = F.conv2d(d1 + d2, u1)
    m2 = F.conv2d(d2 - d1, u2)
    del d1, d2
    batch, channels, height, half = m0.shape
    out = torch.empty(
        (batch, channels, height, 2 * half),
        dtype=m0.dtype,
        device=m0.device,
        memory_format=memory_layout(padded),
    )
    m0 += m1
    torch.add(m0, m2, out=out[..., 0::2])
    del m0
    m1 -= m2
    torch.sub(m1, m3, out=out[..., 1::2])
    return out
