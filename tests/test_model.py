"""The AdaIN model: sizes, alpha, interpolation, masks, colour, style statistics, Hub format."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_model, smooth_image
from safetensors.torch import load_file, save_file

from adain.functional import calc_mean_std
from adain.model import AdaIN
from adain.style import StyleStats


def masked_mean_std(feats: torch.Tensor, weights: torch.Tensor, eps: float):
    """Weighted mean and unbiased std over the positions a binary mask selects."""
    count = weights.sum()
    mean = (feats * weights).sum(dim=(2, 3), keepdim=True) / count
    var = ((feats - mean) ** 2 * weights).sum(dim=(2, 3), keepdim=True) / (count - 1)
    return mean, (var + eps).sqrt()


@pytest.mark.parametrize(("height", "width"), [(67, 101), (16, 16), (64, 64), (31, 17)])
def test_output_size_equals_input_size(tiny_model, style, height, width):
    with torch.no_grad():
        out = tiny_model(smooth_image(0, height, width), style, alpha=0.8)
    assert out.shape == (1, 3, height, width)
    assert torch.isfinite(out).all()


def test_alpha_zero_decodes_the_content_features(tiny_model, content, style):
    with torch.no_grad():
        out = tiny_model(content, style, alpha=0.0)
        expected = tiny_model.decode(tiny_model.encode(content)["relu4_1"])
    torch.testing.assert_close(out, expected)


def test_alpha_blends_linearly_in_feature_space(tiny_model, content, style):
    feats = tiny_model.encode(content)["relu4_1"]
    stats = tiny_model.style_stats(style)
    full = tiny_model.transfer(feats, [stats], alpha=1.0)
    for alpha in (0.3, 1.5):
        blended = tiny_model.transfer(feats, [stats], alpha=alpha)
        torch.testing.assert_close(blended, alpha * full + (1 - alpha) * feats)


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), float("inf"), "1"])
def test_bad_alpha_is_refused(tiny_model, content, style, alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        tiny_model(content, style, alpha=alpha)


def test_transferred_features_carry_style_statistics(tiny_model, content, style):
    feats = tiny_model.encode(content)["relu4_1"]
    stats = tiny_model.style_stats(style)
    mean, std = calc_mean_std(tiny_model.transfer(feats, [stats]), eps=0.0)
    torch.testing.assert_close(mean, stats.mean, atol=1e-5, rtol=1e-4)
    # sigma(y) * s / sqrt(s^2 + eps): the content's eps shrinks low-variance channels slightly.
    raw = calc_mean_std(feats, eps=0.0)[1]
    torch.testing.assert_close(std, stats.std * raw / (raw**2 + 1e-5).sqrt(), atol=1e-5, rtol=1e-4)


def test_interpolation_weights(tiny_model, content):
    styles = [smooth_image(10, 32, 40), smooth_image(11, 48, 32)]
    with torch.no_grad():
        first_only = tiny_model(content, styles[0])
        torch.testing.assert_close(tiny_model(content, styles, weights=[1.0, 0.0]), first_only)
        half = tiny_model(content, styles, weights=[0.5, 0.5])
        # Weights are normalised: 3:3 is 0.5:0.5.
        torch.testing.assert_close(tiny_model(content, styles, weights=[3, 3]), half)
        # Paper Sec. 7.3: t = sum_k w_k AdaIN(f(c), f(s_k)), decoded; written out here.
        feats = tiny_model.encode(content)["relu4_1"]
        targets = [tiny_model.transfer(feats, [tiny_model.style_stats(s)]) for s in styles]
        expected = tiny_model.decode(0.25 * targets[0] + 0.75 * targets[1])
        actual = tiny_model(content, styles, weights=[0.25, 0.75])
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0], "got 1 weights for 2 styles"),
        ([-1.0, 2.0], "weights must be >= 0"),
        ([0.0, 0.0], "positive sum"),
    ],
)
def test_bad_weights(tiny_model, content, style, weights, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(content, [style, style], weights=weights)


def test_masks_route_regions_to_their_styles(tiny_model, content):
    styles = [tiny_model.style_stats(smooth_image(s, 48, 48)) for s in (12, 13)]
    feats = tiny_model.encode(content)["relu4_1"]  # (1, 64, 8, 8)
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1
    masks = torch.cat([left, 1 - left], dim=1)
    target = tiny_model.transfer(feats, styles, masks=masks)
    for region, stats in zip((left, 1 - left), styles, strict=True):
        mean, std = masked_mean_std(target, region, eps=0.0)
        raw = masked_mean_std(feats, region, eps=0.0)[1]
        expected_std = stats.std * raw / (raw**2 + 1e-5).sqrt()
        torch.testing.assert_close(mean, stats.mean, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(std, expected_std, atol=1e-5, rtol=1e-4)


def test_soft_masks_and_uncovered_positions(tiny_model, content):
    styles = [tiny_model.style_stats(smooth_image(s, 48, 48)) for s in (14, 15)]
    feats = tiny_model.encode(content)["relu4_1"]
    half = torch.full((1, 2, 8, 8), 0.5)
    single = tiny_model.transfer(feats, styles, weights=None, masks=None)  # default: equal mix
    # With the same soft weight everywhere, both regions are the whole image: a 50/50 blend
    # of the two AdaIN outputs (not of the statistics), written out here.
    one = tiny_model.transfer(feats, styles[:1])
    two = tiny_model.transfer(feats, styles[1:])
    torch.testing.assert_close(tiny_model.transfer(feats, styles, masks=half), 0.5 * (one + two))
    assert single.shape == feats.shape
    # Positions no mask covers keep the content features.
    partial = torch.zeros(1, 2, 8, 8)
    partial[:, 0, :, :4] = 1
    out = tiny_model.transfer(feats, styles, masks=partial)
    torch.testing.assert_close(out[..., 4:], feats[..., 4:])


def test_masks_at_image_resolution_through_forward(tiny_model):
    content = smooth_image(16, 40, 56)
    styles = [smooth_image(17, 32, 32), smooth_image(18, 32, 32)]
    left = torch.zeros(1, 1, 40, 56)
    left[..., :24] = 1  # on a multiple of 8: feature columns 0-2 exactly
    left_feats = torch.zeros(1, 1, 5, 7)
    left_feats[..., :3] = 1
    with torch.no_grad():
        out = tiny_model(content, styles, masks=torch.cat([left, 1 - left], dim=1))
        feats = tiny_model.encode(content)["relu4_1"]
        stats = [tiny_model.style_stats(s) for s in styles]
        target = tiny_model.transfer(feats, stats, masks=torch.cat([left_feats, 1 - left_feats], 1))
        expected = tiny_model.decode(target)
        # A mask of the same aspect at half resolution is resized to the content.
        half = tiny_model(content, styles, masks=torch.cat([left, 1 - left], 1)[..., ::2, ::2])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert half.shape == content.shape


def test_mask_errors(tiny_model, content, style):
    with pytest.raises(ValueError, match="one channel per style"):
        tiny_model(content, [style, style], masks=torch.ones(1, 3, 8, 8))
    with pytest.raises(ValueError, match="either weights .* or masks"):
        tiny_model(content, [style, style], weights=[1, 1], masks=torch.ones(1, 2, 8, 8))
    with pytest.raises(ValueError, match="non-negative"):
        tiny_model(content, [style, style], masks=-torch.ones(1, 2, 8, 8))


def test_colour_preservation(tiny_model, content, style):
    with torch.no_grad():
        plain = tiny_model(content, style)
        lum = tiny_model(content, style, preserve_color="luminance")
        coral_out = tiny_model(content, style, preserve_color="coral")
    # Luminance mode: same luma as the plain output, the content's chroma (BT.601 weights).
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close((lum * weights).sum(1), (plain * weights).sum(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        lum - (lum * weights).sum(1, keepdim=True),
        content - (content * weights).sum(1, keepdim=True),
        atol=1e-5,
        rtol=0,
    )
    assert coral_out.shape == content.shape and not torch.allclose(coral_out, plain)
    stats = tiny_model.style_stats(style)
    with pytest.raises(ValueError, match="pass images, not StyleStats"):
        tiny_model(content, stats, preserve_color="coral")
    with pytest.raises(ValueError, match="preserve_color must be"):
        tiny_model(content, style, preserve_color="yuv")


def test_style_stats_are_reusable_and_round_trip(tiny_model, content, style, tmp_path):
    stats = tiny_model.style_stats(style)
    path = stats.save(tmp_path / "style.safetensors")
    loaded = StyleStats.load(path)
    with torch.no_grad():
        torch.testing.assert_close(tiny_model(content, loaded), tiny_model(content, style))
    mixed = StyleStats.mix([stats, tiny_model.style_stats(smooth_image(20, 32, 32))], [1, 3])
    mixed.save(tmp_path / "mix.safetensors")
    torch.testing.assert_close(StyleStats.load(tmp_path / "mix.safetensors").std, mixed.std)
    # Written atomically: no temporary files left beside the presets.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.safetensors", "style.safetensors"]


def test_style_preset_errors(tmp_path, tiny_model, content):
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other))
    with pytest.raises(ValueError, match="not an adain style preset"):
        StyleStats.load(other)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="is not a style preset"):
        StyleStats.load(tmp_path / "junk.safetensors")
    wide = StyleStats(torch.zeros(1, 128, 1, 1), torch.ones(1, 128, 1, 1))
    with pytest.raises(ValueError, match="128 channels"):
        tiny_model(content, wide)


def test_image_contract_errors(tiny_model, style):
    with pytest.raises(ValueError, match="at least 16x16"):
        tiny_model(torch.rand(1, 3, 15, 40), style)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tiny_model(torch.rand(3, 32, 32), style)
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiny_model("content.jpg", style)


def test_batch_with_shared_style(tiny_model, style):
    contents = torch.cat([smooth_image(21, 32, 32), smooth_image(22, 32, 32)])
    with torch.no_grad():
        batch = tiny_model(contents, style)
        single = tiny_model(contents[1:], style)
    torch.testing.assert_close(batch[1:], single, atol=1e-5, rtol=1e-5)


def test_save_load_round_trip(tiny_model, tiny_model_dir, content, style, capsys):
    loaded = AdaIN.from_pretrained(tiny_model_dir)
    assert capsys.readouterr().out == "", "loading must not print to stdout"
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(content, style), tiny_model(content, style), atol=0, rtol=0
        )
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config == {"encoder_depth": "relu5_1", "base_channels": 8, "eps": 1e-5}
    card = (tiny_model_dir / "README.md").read_text()
    assert "library_name: adain" in card and "AdaIN.from_pretrained" in card
    assert "https://arxiv.org/abs/1703.06868" in card


def test_relu4_1_model_round_trip(tmp_path):
    model = make_model(depth="relu4_1")
    model.save_pretrained(tmp_path)
    loaded = AdaIN.from_pretrained(tmp_path)
    assert "encoder.conv5_1.weight" not in loaded.state_dict()


def test_strict_loading_missing_key(tiny_model_dir):
    weights = tiny_model_dir / "model.safetensors"
    state = load_file(str(weights))
    del state["decoder.conv2_1.bias"]
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=r"missing weight 'decoder\.conv2_1\.bias'"):
        AdaIN.from_pretrained(tiny_model_dir)


def test_strict_loading_unexpected_key_and_shape(tiny_model_dir):
    weights = tiny_model_dir / "model.safetensors"
    state = load_file(str(weights))
    save_file({**state, "decoder.extra.weight": torch.zeros(1)}, str(weights))
    with pytest.raises(ValueError, match=r"unexpected weight 'decoder\.extra\.weight'"):
        AdaIN.from_pretrained(tiny_model_dir)
    state["encoder.conv1_1.weight"] = torch.zeros(9, 3, 3, 3)
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=r"'encoder\.conv1_1\.weight' has shape \(9, 3, 3, 3\)"):
        AdaIN.from_pretrained(tiny_model_dir)


def test_config_mismatch_is_caught(tiny_model_dir):
    (tiny_model_dir / "config.json").write_text(json.dumps({"base_channels": 16}))
    with pytest.raises(ValueError, match="has shape"):
        AdaIN.from_pretrained(tiny_model_dir)


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        AdaIN.from_pretrained(tmp_path)


def _snapshot(model: AdaIN) -> list[tuple]:
    return [
        (name, p.device, p.dtype, p.stride(), p.requires_grad, p.detach().clone())
        for name, p in model.named_parameters()
    ]


def test_calls_leave_the_module_as_it_was(tiny_model, content, style):
    before = _snapshot(tiny_model)
    with torch.inference_mode():
        tiny_model(content, style, 0.7)
        tiny_model.style_stats(style)
        tiny_model.decode(tiny_model.encode(content)["relu4_1"])
    import adain

    adain.stylize(content, style, model=tiny_model, device="cpu", tile=64, output="tensor")
    after = _snapshot(tiny_model)
    for (name, *meta, value), (_, *meta_after, value_after) in zip(before, after, strict=True):
        assert meta == meta_after, name
        assert torch.equal(value, value_after), name


def test_engine_options_per_call_and_per_model_give_the_same_pixels(tiny_model, style):
    from adain.engine.runner import EngineOptions

    content = smooth_image(20, 120, 88)
    with torch.inference_mode():
        default = tiny_model(content, style, 0.8)
        strips = tiny_model(content, style, 0.8, engine=EngineOptions(tile=64))
        tiny_model.engine = EngineOptions(max_memory="8M")  # small enough to need strips
        budgeted = tiny_model(content, style, 0.8)
    torch.testing.assert_close(strips, default, atol=1e-4, rtol=0)
    torch.testing.assert_close(budgeted, default, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="cannot read memory size"):
        EngineOptions(max_memory="lots")
    with pytest.raises(ValueError, match="tile must be at least 64 px"):
        EngineOptions(tile=32)
    with pytest.raises(ValueError, match="precision must be one of"):
        EngineOptions(precision="int8")  # type: ignore[arg-type]


def test_autograd_walks_whole_maps_and_gradients_reach_the_decoder(tiny_model, content, style):
    with torch.inference_mode():
        engine = tiny_model(content, style, 0.8)
    out = tiny_model(content, style, 0.8)  # a fresh model's decoder requires grad
    assert out.requires_grad
    out.mean().backward()
    assert tiny_model.decoder.conv1_1.weight.grad is not None
    torch.testing.assert_close(out.detach(), engine, atol=1e-4, rtol=0)


def test_loaded_models_need_no_gradients(tiny_model_dir, content, style):
    model = AdaIN.from_pretrained(tiny_model_dir)
    assert not any(p.requires_grad for p in model.parameters())
    out = model(content, style)  # grad mode on, nothing to record: the engine runs it
    assert not out.requires_grad


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped header"])
def test_corrupt_weights_file_is_a_value_error_naming_it(tiny_model_dir, damage):
    weights = tiny_model_dir / "model.safetensors"
    data = weights.read_bytes()
    cut = {"truncated": data[:-100], "empty": b"", "flipped header": b"\xff" + data[1:]}
    weights.write_bytes(cut[damage])
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file"):
        AdaIN.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"base_channels": 8.0}, "base_channels must be an integer from 1 to 64, got 8.0"),
        ({"base_channels": 0}, "base_channels must be an integer from 1 to 64"),
        ({"base_channels": 10**9}, "base_channels must be an integer from 1 to 64"),
        ({"eps": float("nan")}, "eps must be a finite number > 0"),
        ({"encoder_depth": "relu3_1"}, "encoder_depth must be one of"),
        ({"encoder_depth": ["relu4_1"]}, "encoder_depth must be one of"),
        ("relu4_1", "must hold a JSON object, got str"),
    ],
)
def test_config_json_is_checked_before_the_model_is_built(tiny_model_dir, config, message):
    path = tiny_model_dir / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json: " + message.replace("(", r"\(")) as error:
        AdaIN.from_pretrained(tiny_model_dir)
    assert str(path) in str(error.value)


def test_preset_of_another_model_names_the_file(tmp_path, tiny_model, content):
    path = StyleStats(torch.zeros(1, 128, 1, 1), torch.ones(1, 128, 1, 1)).save(
        tmp_path / "wide.safetensors"
    )
    with pytest.raises(ValueError, match=r"wide\.safetensors has 128 channels, .* encoder 64"):
        tiny_model(content, StyleStats.load(path))
