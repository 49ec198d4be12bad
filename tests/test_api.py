"""The task API: paths, PIL images and tensors in; sizes kept; presets, masks, devices."""

from __future__ import annotations

import pytest
import torch
from conftest import smooth_image
from PIL import Image

from adain.api import encode_style, get_device, stylize
from adain.image import save_image, to_tensor
from adain.model import load_model
from adain.weights.hub import resolve_model_id


@pytest.fixture
def files(tmp_path):
    content = save_image(smooth_image(30, 37, 53), tmp_path / "content.png")
    style = save_image(smooth_image(31, 40, 40), tmp_path / "style.jpg")
    return content, style


def test_paths_in_pil_out_at_input_size(tiny_model_dir, files):
    content, style = files
    out = stylize(content, style, model=tiny_model_dir, alpha=0.8, device="cpu")
    assert isinstance(out, Image.Image) and out.size == (53, 37)


def test_same_result_from_paths_pil_and_tensors(tiny_model, files):
    content, style = files
    with Image.open(content) as c, Image.open(style) as s:
        from_pil = stylize(c, s, model=tiny_model, output="tensor")
        from_tensor = stylize(to_tensor(c)[0], to_tensor(s), model=tiny_model, output="tensor")
    from_path = stylize(content, style, model=tiny_model, output="tensor")
    torch.testing.assert_close(from_pil, from_path)
    torch.testing.assert_close(from_tensor, from_path)
    assert from_path.min() >= 0 and from_path.max() <= 1


def test_sizes(tiny_model, files):
    content, style = files
    out = stylize(content, style, model=tiny_model, content_size=32, style_size=24)
    assert out.size == (46, 32)  # shorter side 32, aspect kept (53/37 * 32 = 45.8)
    assert stylize(content, style, model=tiny_model, max_size=40).size == (40, 28)


def test_style_preset_file_equals_style_image(tiny_model, files, tmp_path):
    content, style = files
    preset = encode_style(style, tiny_model).save(tmp_path / "preset.safetensors")
    with_preset = stylize(content, preset, model=tiny_model, output="tensor")
    with_image = stylize(content, style, model=tiny_model, output="tensor")
    torch.testing.assert_close(with_preset, with_image)
    assert encode_style(preset).channels == 64


def test_mask_files(tiny_model, files, tmp_path):
    content, style = files
    left = Image.new("L", (53, 37), 0)
    left.paste(255, (0, 0, 24, 37))
    left.save(tmp_path / "left.png")
    Image.eval(left, lambda v: 255 - v).save(tmp_path / "right.png")
    other = save_image(smooth_image(32, 40, 40), tmp_path / "other.png")
    out = stylize(
        content,
        [style, other],
        model=tiny_model,
        masks=[tmp_path / "left.png", tmp_path / "right.png"],
    )
    assert out.size == (53, 37)
    with pytest.raises(ValueError, match="got 1 masks for 2 styles"):
        stylize(content, [style, other], model=tiny_model, masks=[tmp_path / "left.png"])


def test_missing_device_is_an_error_not_a_fallback():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        get_device("tpu")
    assert get_device("cpu") == torch.device("cpu")


def test_model_resolution_order(monkeypatch, tiny_model_dir):
    assert resolve_model_id("explicit/id") == "explicit/id"
    monkeypatch.setenv("ADAIN_MODEL", str(tiny_model_dir))
    assert resolve_model_id(None) == str(tiny_model_dir)
    assert load_model().num_parameters()["decoder"] > 0
    with pytest.raises(ValueError, match="is a file"):
        load_model(tiny_model_dir / "config.json")


@pytest.mark.parametrize("model", ["./missing-model", "../missing/model", "not a repo id"])
def test_missing_folder_is_not_taken_for_a_hub_id(model):
    with pytest.raises(ValueError, match="neither an existing folder nor a Hub repository id"):
        load_model(model)
