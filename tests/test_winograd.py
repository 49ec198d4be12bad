"""Winograd F(2, 3) convolutions against the direct convolution, alone and inside streams."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import adain.engine.winograd
from adain.architecture import CONTENT_LAYER
from adain.engine.runner import Runner
from adain.engine.winograd import F23Kernels, conv3x3_f23, winograd_pays
from tests.conftest import make_model, smooth_image

# F(2, 3) adds and halves inputs and kernels before multiplying: fp32 rounding only, measured
# at ~2e-6 of the output's largest magnitude for one layer; 1e-5 leaves room for it.
RTOL = 1e-5


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max() <= rtol * expected.abs().max()


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("height", "width"), [(6, 10), (1, 2), (9, 32)])
def test_f23_equals_the_direct_convolution(channels_last, bias, height, width):
    generator = torch.Generator().manual_seed(height * width)
    padded = torch.randn(2, 5, height + 2, width + 2, generator=generator)
    weight = torch.randn(7, 5, 3, 3, generator=generator)
    b = torch.randn(7, generator=generator) if bias else None
    if channels_last:
        padded = padded.contiguous(memory_format=torch.channels_last)
        weight = weight.contiguous(memory_format=torch.channels_last)
    out = conv3x3_f23(padded, F23Kernels(weight, b))
    _close(out, F.conv2d(padded, weight, b))
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_f23_refuses_an_odd_width():
    weight = torch.randn(4, 4, 3, 3)
    with pytest.raises(ValueError, match="even output width"):
        conv3x3_f23(torch.randn(1, 4, 5, 7 + 2), F23Kernels(weight, None))


def test_winograd_only_where_it_measured_faster():
    assert winograd_pays(torch.empty(256, 256, 3, 3))
    assert winograd_pays(torch.empty(512, 256, 3, 3))
    assert not winograd_pays(torch.empty(128, 256, 3, 3))  # narrow: the passes over memory win
    assert not winograd_pays(torch.empty(256, 256, 1, 1))


@pytest.fixture
def everywhere(monkeypatch):
    """F(2, 3) for every 3x3 convolution, so the tiny test model exercises it."""
    monkeypatch.setattr(adain.engine.winograd, "MIN_CHANNELS", 1)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("step", [3, 1000])
def test_streams_with_f23_match_the_direct_network(everywhere, channels_last, step):
    model = make_model(seed=5, depth="relu4_1")
    runner = Runner(model.encoder, model.decoder, model.eps, "cpu", channels_last=channels_last)
    # 40 px wide: even widths (F(2, 3)) down to 10 px at relu3_x, then 5 (direct) at relu4_1.
    image = smooth_image(4, 37, 40)
    with torch.inference_mode():
        whole = model.encoder(image, (CONTENT_LAYER,))[CONTENT_LAYER]
        stream = runner.encoder_stream()
        assert any(getattr(stage, "f23", None) is not None for stage in stream.stages)
        starts = range(0, 37, step)
        outs = [stream.push(image[:, :, i : i + step], last=i + step >= 37) for i in starts]
        # Ten layers of float rounding: a looser bound than one layer's.
        _close(torch.cat([o for o in outs if o is not None], dim=2), whole, rtol=1e-4)
        feats = torch.randn(1, whole.shape[1], 6, 4)
        decoded = runner.decoder_stream().push(feats, last=True)
        _close(decoded, model.decoder(feats), rtol=1e-4)
