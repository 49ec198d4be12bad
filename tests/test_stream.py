"""Row streaming: strips through the encoder and decoder stack up to the whole-image maps."""

from __future__ import annotations

import pytest
import torch

from adain.architecture import CONTENT_LAYER, LAYER_NAMES, encoder_steps
from adain.engine.runner import Runner
from adain.engine.stream import RowStream, prepare_convs, stages
from adain.engine.walk import conv_params
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


def _runner(model, channels_last: bool = False) -> Runner:
    return Runner(model.encoder, model.decoder, model.eps, "cpu", channels_last=channels_last)


@pytest.fixture(scope="module")
def model():
    return make_model(seed=3, depth="relu4_1")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("height", "width"), [(101, 77), (16, 40), (33, 17)])
@pytest.mark.parametrize("step", [1, 2, 3, 8, 13, 1000])
def test_encoder_strips_stack_to_the_whole_map(model, channels_last, height, width, step):
    # Heights that are not multiples of 8 pool a last odd row (ceil_mode) at some level.
    image = smooth_image(1, height, width)
    runner = _runner(model, channels_last)
    with torch.inference_mode():
        whole = model.encoder(image, (CONTENT_LAYER,))[CONTENT_LAYER]
    _close(_stream(runner.encoder_stream(), image, _strips(height, step)), whole)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_decoder_strips_stack_to_the_whole_image(model, channels_last, step):
    feats = torch.randn(2, 8 * model.encoder.conv1_1.out_channels, 7, 5)
    runner = _runner(model, channels_last)
    with torch.inference_mode():
        whole = model.decoder(feats)
    _close(_stream(runner.decoder_stream(), feats, _strips(7, step)), whole)


def test_uneven_strips_and_empty_pushes(model):
    # Strips of varying height, some too low to produce a row yet.
    image = smooth_image(2, 64, 24)
    with torch.inference_mode():
        whole = model.encoder(image, (CONTENT_LAYER,))[CONTENT_LAYER]
    stream = _runner(model).encoder_stream()
    _close(_stream(stream, image, [0, 1, 2, 9, 10, 40, 41, 64]), whole)


@pytest.mark.parametrize("layer", ["relu1_1", "relu1_2", "relu2_1", "relu3_1"])
def test_any_step_list_streams_as_the_whole_map_walk(model, layer):
    # stages() takes the same steps as the whole-map walk, to any depth: a ReLU kept before
    # a pool (relu1_2), one moved after it (relu1_2 on the way to relu2_1).
    names = LAYER_NAMES[: LAYER_NAMES.index(layer) + 1]
    steps = encoder_steps(names, "max", keep={layer})
    params = conv_params(model.encoder)
    stream = RowStream(stages(steps, params, prepare_convs(steps, params)), torch.device("cpu"))
    image = smooth_image(4, 45, 30)
    with torch.inference_mode():
        whole = model.encoder(image, (layer,))[layer]
    _close(_stream(stream, image, _strips(45, 4)), whole)


def test_stream_refuses_rows_after_the_last(model):
    stream = _runner(model).encoder_stream()
    stream.push(smooth_image(3, 16, 16), last=True)
    with pytest.raises(RuntimeError, match="last rows"):
        stream.push(smooth_image(3, 16, 16))


def test_too_few_rows_for_a_convolution_say_so(model):
    stream = _runner(model).decoder_stream()
    with pytest.raises(ValueError, match="too few for a 3x3 convolution"):
        stream.push(torch.randn(1, 8 * model.encoder.conv1_1.out_channels, 1, 4), last=True)


def test_average_pooling_encoders_are_refused():
    from adain.encoder import VGG19Encoder

    encoder = VGG19Encoder("relu4_1", base_channels=4, pooling="avg")
    steps = encoder_steps(encoder.layer_names, "avg", keep={CONTENT_LAYER})
    params = conv_params(encoder)
    with pytest.raises(ValueError, match="max-pools"):
        stages(steps, params, prepare_convs(steps, params))
