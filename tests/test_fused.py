"""The decoder's fused upsample-convolve equals upsample, reflect-pad and 3x3 convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adain.engine.fused import upsample_conv3x3, upsample_conv_weight


def _reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    # The release's decoder step, literally: nn.Upsample(2, nearest), ReflectionPad2d(1), conv.
    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.conv2d(F.pad(up, (1, 1, 1, 1), mode="reflect"), weight, bias)


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 1, 1), (1, 4, 2, 3), (3, 2, 6, 1)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_matches_upsample_pad_conv(shape, with_bias):
    generator = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=generator, dtype=torch.float64)
    weight = torch.randn(6, shape[1], 3, 3, generator=generator, dtype=torch.float64)
    bias = torch.randn(6, generator=generator, dtype=torch.float64) if with_bias else None
    actual = upsample_conv3x3(x, weight, bias)
    expected = _reference(x, weight, bias)
    assert actual.shape == (shape[0], 6, 2 * shape[2], 2 * shape[3])
    # float64: only the order of additions differs.
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)


def test_channels_last_in_channels_last_out():
    x = torch.randn(2, 8, 5, 6).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(4, 8, 3, 3), torch.randn(4)
    actual = upsample_conv3x3(x, weight, bias)
    assert actual.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(actual, _reference(x, weight, bias), rtol=0, atol=1e-4)
    assert upsample_conv3x3(x.contiguous(), weight, bias).is_contiguous()


def test_gradients_match():
    generator = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64),
        torch.randn(4, 3, 3, 3, generator=generator, dtype=torch.float64),
        torch.randn(4, generator=generator, dtype=torch.float64),
    ]
    grad_out = torch.randn(2, 4, 8, 10, generator=generator, dtype=torch.float64)
    grads = []
    for fn in (upsample_conv3x3, _reference):
        leaves = [t.clone().requires_grad_() for t in tensors]
        fn(*leaves).backward(grad_out)
        grads.append([leaf.grad for leaf in leaves])
    for fused, plain in zip(*grads, strict=True):
        torch.testing.assert_close(fused, plain, rtol=0, atol=1e-10)


def test_phase_kernels_sum_the_rows_each_phase_reads():
    # One kernel, written out by hand: phase (a, b) = (0, 1) reads rows (i-1, i) and columns
    # (j, j+1), so its 2x2 kernel is [[w00 + w01, w02], [w10 + w11 + w20 + w21, w12 + w22]].
    weight = torch.arange(9.0).reshape(1, 1, 3, 3)
    w = weight[0, 0]
    expected = torch.stack(
        [
            torch.stack([w[0, 0] + w[0, 1], w[0, 2]]),
            torch.stack([w[1, 0] + w[1, 1] + w[2, 0] + w[2, 1], w[1, 2] + w[2, 2]]),
        ]
    )
    phases = upsample_conv_weight(weight)
    assert phases.shape == (4, 1, 2, 2)
    torch.testing.assert_close(phases[1, 0], expected)
    # Every phase kernel keeps the total weight (a constant image stays constant).
    torch.testing.assert_close(phases.sum(dim=(1, 2, 3)), torch.full((4,), weight.sum().item()))
