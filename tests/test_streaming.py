"""Row streaming: strips through the encoder and decoder stack up to the whole-image maps."""

from __future__ import annotations

import pytest
import torch

from adain.encoder import CONTENT_LAYER
from adain.engine.runner import Runner
from adain.engine.stream import RowStream, decoder_stream, encoder_stream
from tests.conftest import make_model, smooth_image

# Float32 maps of magnitude ~1-10: strips change only the convolutions' blocking.
RTOL = 1e-5


def _stream(stream: RowStream, x: torch.Tensor, bounds: list[int]) -> torch.Tensor:
    """Push ``x`` in strips ``bounds[i]:bounds[i + 1]`` of rows; the rows that come out."""
    outs = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        out = stream.push(x[:, :, start:stop], last=stop == bounds[-1])
        if out is not None:
            outs.append(out)
    return torch.cat(outs, dim=2)


def _strips(height: int, step: int) -> list[int]:
    return [*range(0, height, step), height]


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    scale = expected.abs().max()
    assert (actual - expected).abs().max() <= RTOL * scale


@pytest.fixture(scope="module")
def model():
    return make_model(seed=3, depth="relu4_1")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("height", "width"), [(101, 77), (16, 40), (33, 17)])
@pytest.mark.parametrize("step", [1, 2, 3, 8, 13, 1000])
def test_encoder_strips_stack_to_the_whole_map(model, channels_last, height, width, step):
    # Heights that are not multiples of 8 pool a last odd row (ceil_mode) at some level.
    image = smooth_image(1, height, width)
    runner = Runner(model, "cpu", channels_last=channels_last)
    with torch.inference_mode():
        whole = model.encoder(image, (CONTENT_LAYER,))[CONTENT_LAYER]
    _close(_stream(encoder_stream(runner), image, _strips(height, step)), whole)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_decoder_strips_stack_to_the_whole_image(model, channels_last, step):
    feats = torch.randn(2, 8 * model.encoder.conv1_1.out_channels, 7, 5)
    runner = Runner(model, "cpu", channels_last=channels_last)
    with torch.inference_mode():
        whole = model.decoder(feats)
    _close(_stream(decoder_stream(runner), feats, _strips(7, step)), whole)


def test_uneven_strips_and_empty_pushes(model):
    # Strips of varying height, some too low to produce a row yet.
    image = smooth_image(2, 64, 24)
    runner = Runner(model, "cpu", channels_last=False)
    with torch.inference_mode():
        whole = model.encoder(image, (CONTENT_LAYER,))[CONTENT_LAYER]
    _close(_stream(encoder_stream(runner), image, [0, 1, 2, 9, 10, 40, 41, 64]), whole)


def test_stream_refuses_rows_after_the_last(model):
    stream = encoder_stream(Runner(model, "cpu"))
    stream.push(smooth_image(3, 16, 16), last=True)
    with pytest.raises(RuntimeError, match="last rows"):
        stream.push(smooth_image(3, 16, 16))


def test_too_few_rows_for_a_convolution_say_so(model):
    stream = decoder_stream(Runner(model, "cpu"))
    with pytest.raises(ValueError, match="too few for a 3x3 convolution"):
        stream.push(torch.randn(1, 8 * model.encoder.conv1_1.out_channels, 1, 4), last=True)


def test_average_pooling_encoders_are_refused():
    from adain.encoder import VGG19Encoder
    from adain.engine.stream import encoder_stages

    with pytest.raises(ValueError, match="max-pooling"):
        encoder_stages(VGG19Encoder("relu4_1", base_channels=4, pooling="avg"))
