"""Image loading (modes, EXIF, limits, damaged files) and atomic saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from adain.image import (
    ImageError,
    limit_size,
    load_image,
    resize_longer,
    resize_shorter,
    save_image,
    to_pil,
    to_tensor,
)


def _gradient(width: int = 40, height: int = 20) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    rgb = np.stack(np.broadcast_arrays(x[None, :], y[:, None], 128 + 0 * x[None, :]), axis=-1)
    return Image.fromarray(rgb.astype(np.uint8), mode="RGB")


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, :5, 3] = 255  # left opaque red-ish, right fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (200, 0, 0)
    assert image.getpixel((9, 9)) == (255, 255, 255)


def test_greyscale_and_palette_become_rgb(tmp_path):
    Image.new("L", (8, 8), 77).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png").getpixel((3, 3)) == (77, 77, 77)
    palette = _gradient().convert("P")
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png", transparency=0)
    loaded = load_image(tmp_path / "palette.png")
    assert loaded.mode == "RGB" and loaded.size == (40, 20)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    _gradient(40, 20).save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (20, 40)


def test_16_bit_greyscale_is_rescaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16).repeat(4, axis=0)
    deep = Image.fromarray(values)
    assert deep.mode == "I;16"
    deep.save(tmp_path / "deep.png")
    loaded = np.asarray(load_image(tmp_path / "deep.png"))
    assert loaded[0, :, 0].tolist() == [0, 128, 255, 4]


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    _gradient().convert("CMYK").save(tmp_path / "cmyk.jpg")
    image = load_image(tmp_path / "cmyk.jpg")
    assert image.mode == "RGB" and image.size == (40, 20)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.png"
    _gradient(200, 200).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="cut.png: unreadable or truncated image"):
        load_image(path)


def test_text_file_and_missing_file(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ImageError, match="notes.jpg: not an image file"):
        load_image(tmp_path / "notes.jpg")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "absent.png")


def test_pixel_cap_refuses_before_decoding(tmp_path):
    _gradient(40, 20).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="40x20 px is over the limit of 799 pixels"):
        load_image(tmp_path / "big.png", max_pixels=799)
    assert load_image(tmp_path / "big.png", max_pixels=800).size == (40, 20)


def test_tensor_round_trip_is_exact():
    image = _gradient()
    tensor = to_tensor(image)
    assert tensor.shape == (1, 3, 20, 40) and tensor.dtype == torch.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
    assert np.array_equal(np.asarray(to_pil(tensor)), np.asarray(image))


def test_to_pil_clamps():
    out = to_pil(torch.tensor([-1.0, 0.5, 2.0]).view(1, 3, 1, 1))
    assert out.getpixel((0, 0)) == (0, 128, 255)


def test_resize_helpers_keep_aspect():
    image = _gradient(40, 20)
    assert resize_shorter(image, 10).size == (20, 10)
    assert resize_shorter(image, None) is image
    assert limit_size(image, 20).size == (20, 10)
    assert limit_size(image, 100) is image


def test_resize_longer_is_exact_and_never_enlarges_unless_asked():
    # 600x399 came out 511x340 at 512 and 65x43 at 64 when the longer side was derived from a
    # rounded shorter side; the longer side is now set, the shorter one rounded once.
    image = _gradient(600, 399)
    assert resize_longer(image, 512).size == (512, 340)
    assert resize_longer(image, 64).size == (64, 43)
    assert resize_longer(_gradient(399, 600), 64).size == (43, 64)  # portrait: height is set
    assert limit_size(image, 64).size == (64, 43)
    for size in (16, 100, 333, 511, 599):  # every target, not just the ones above
        assert max(resize_longer(image, size).size) == size
    small = _gradient(40, 30)
    assert resize_longer(small, 64) is small and limit_size(small, 64) is small
    assert resize_longer(small, 64, upscale=True).size == (64, 48)
    assert resize_longer(small, 0, upscale=True) is small
    assert resize_longer(small, None) is small


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    save_image(_gradient(), path)
    before = path.read_bytes()

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(_gradient(10, 10), path)
    assert path.read_bytes() == before, "a failed save must not touch the existing file"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_save_formats_and_quality(tmp_path):
    image = to_tensor(_gradient(64, 64)) + 0.1 * torch.rand(1, 3, 64, 64)
    low = save_image(image, tmp_path / "low.jpg", quality=10)
    high = save_image(image, tmp_path / "high.jpg", quality=95)
    assert low.stat().st_size < high.stat().st_size
    with Image.open(save_image(image, tmp_path / "x.webp")) as webp:
        assert webp.format == "WEBP"
    with pytest.raises(ImageError, match="unknown image extension .xyz"):
        save_image(image, tmp_path / "out.xyz")
    with pytest.raises(ImageError, match="quality must be between 1 and 100"):
        save_image(image, tmp_path / "out.jpg", quality=0)
    assert not (tmp_path / "out.xyz").exists() and not (tmp_path / "out.jpg").exists()


def test_resizes_over_the_pixel_cap_are_refused_before_they_allocate(tmp_path):
    image = _gradient(40, 20)
    with pytest.raises(ImageError, match=r"40x20 px to 200000x100000 px is over the limit"):
        resize_shorter(image, 100_000)
    with pytest.raises(ImageError, match="--max-pixels"):
        resize_longer(image, 100_000, upscale=True, max_pixels=1000)
    assert resize_shorter(image, 40, max_pixels=None).size == (80, 40)
    assert limit_size(image, 100_000) is image  # never enlarges: no cap needed
    # A truncated file: the resize is refused from the header, before any pixel is decoded.
    image.save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png: resizing 40x20 px to 200000x100000 px"):
        load_image(tmp_path / "cut.png", size=100_000)


def test_load_image_resizes_and_remembers_its_file(tmp_path):
    from adain.image import resized_size, source_of

    _gradient(40, 20).save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png", size=10, max_size=16)
    assert image.size == resized_size(40, 20, 10, 16) == (16, 8)
    assert source_of(image) == str(tmp_path / "a.png")
    assert source_of(resize_shorter(image, 30)) == str(tmp_path / "a.png")
    assert source_of(_gradient()) is None
