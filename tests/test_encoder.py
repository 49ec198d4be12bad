"""Encoder structure: channels and downsampling, preprocessing, frozen weights."""

from __future__ import annotations

import pytest
import torch

from adain.architecture import LAYER_NAMES
from adain.encoder import VGG19Encoder


@pytest.fixture(scope="module")
def encoder() -> VGG19Encoder:
    torch.manual_seed(0)
    return VGG19Encoder(depth="relu5_1", base_channels=8)


@pytest.mark.parametrize(
    ("layer", "channels", "factor"),
    [
        ("relu1_1", 8, 1),
        ("relu2_1", 16, 2),
        ("relu3_1", 32, 4),
        ("relu4_1", 64, 8),
        ("conv4_2", 64, 8),
        ("relu5_1", 64, 16),
    ],
)
def test_channels_and_downsampling(encoder, layer, channels, factor):
    feats = encoder(torch.rand(1, 3, 64, 48), [layer])
    assert feats[layer].shape == (1, channels, 64 // factor, 48 // factor)


def test_ceil_mode_pooling_on_odd_sizes(encoder):
    feats = encoder(torch.rand(1, 3, 67, 101), ["relu4_1"])
    assert feats["relu4_1"].shape[2:] == (9, 13)  # ceil(67/8), ceil(101/8)


def test_layer_names_follow_vgg19():
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES.index("relu5_1") == 29  # 12 conv/relu pairs, 4 pools, conv5_1
    assert sum(name.startswith("conv") for name in LAYER_NAMES) == 16


def test_no_trainable_parameters_and_train_stays_eval(encoder):
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training


def test_preprocessing_is_caffe_bgr(encoder):
    rgb = torch.rand(1, 3, 4, 4)
    expected = torch.stack(
        [rgb[:, 2] * 255 - 103.939, rgb[:, 1] * 255 - 116.779, rgb[:, 0] * 255 - 123.68], dim=1
    )
    torch.testing.assert_close(encoder.preprocess(rgb), expected, atol=1e-4, rtol=0)


def test_conv_pre_activation_is_not_clobbered(encoder):
    feats = encoder(torch.rand(1, 3, 32, 32), ["conv4_2", "relu4_2"])
    assert (feats["conv4_2"] < 0).any(), "conv4_2 must be the pre-activation"
    torch.testing.assert_close(feats["relu4_2"], feats["conv4_2"].clamp_min(0))


def test_average_pooling_option():
    torch.manual_seed(0)
    max_enc = VGG19Encoder(depth="relu4_1", base_channels=8)
    avg_enc = VGG19Encoder(depth="relu4_1", base_channels=8, pooling="avg")
    avg_enc.load_state_dict(max_enc.state_dict())
    image = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(max_enc(image)["relu4_1"], avg_enc(image)["relu4_1"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"depth": "relu3_1"}, "depth must be one of"), ({"pooling": "min"}, "pooling must be")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VGG19Encoder(**kwargs)


def test_too_deep_layer_is_an_error():
    encoder = VGG19Encoder(depth="relu4_1", base_channels=8)
    with pytest.raises(ValueError, match="too deep layers"):
        encoder(torch.rand(1, 3, 32, 32), ["relu5_1"])
