"""Nothing lost (issue 16): limits, finite numbers, and one line instead of a traceback.

Each bad input runs through the real command line (``CliRunner`` on ``adain.cli.app``) and must
end with exit code 1, one ``error:`` line naming the file or the option, and no output file.
The fuzz tests feed random bytes to every reader of user files: only ``ValueError`` (our one-line
errors, ``ImageError`` included) or ``OSError`` may come out.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_model, one_error_line, smooth_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from adain.cli import app
from adain.image import load_image, save_image
from adain.model import AdaIN
from adain.style import StyleStats

runner = CliRunner()
PRESET_METADATA = {"format": "adain-style-stats", "version": "1", "layer": "relu4_1"}
CHANNELS = 64  # relu4_1 of the width-8 test model


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def write_preset(path: Path, mean: torch.Tensor, std: torch.Tensor) -> Path:
    save_file({"mean": mean.contiguous(), "std": std.contiguous()}, str(path), PRESET_METADATA)
    return path


@pytest.fixture
def work(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    save_image(smooth_image(1, 40, 56), tmp_path / "a.png")
    save_image(smooth_image(2, 48, 40), tmp_path / "x.png")
    save_image(smooth_image(4, 32, 48), tmp_path / "y.png")
    return tmp_path


def stylize(work: Path, *args: object):
    """``adain stylize a.png ... -o out.png`` on the tiny model."""
    model = ["--model", work / "tiny-model", "--device", "cpu"]
    return invoke("stylize", work / "a.png", *args, *model, "-o", work / "out.png")


def pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB")))


def nothing_written(work: Path) -> bool:
    return not (work / "out.png").exists() and not (work / "mix.safetensors").exists()


# 6. Sizes: every resize under the pixel cap, sheet cells bounded ----------------------------


@pytest.mark.parametrize(
    ("option", "file"), [("--content-size", "a.png"), ("--style-size", "x.png")]
)
def test_huge_resize_is_refused_naming_the_file_and_the_cap(work, option, file):
    line = one_error_line(stylize(work, "-s", "x.png", option, 100_000))
    assert file in line and "67,108,864 pixels" in line and "--max-pixels" in line, line
    assert nothing_written(work)


def test_huge_max_size_never_enlarges(work):
    result = stylize(work, "-s", "x.png", "--max-size", 100_000)
    assert result.exit_code == 0, result.output
    with Image.open(work / "out.png") as out:
        assert out.size == (56, 40)


@pytest.mark.parametrize("cell_size", [0, 100_000])
def test_interpolate_cell_size_is_bounded(work, cell_size):
    sheet = work / "sheet.png"
    model = ["--model", work / "tiny-model", "--device", "cpu"]
    result = invoke("interpolate", "a.png", "-s", "x.png", "--cell-size", cell_size, *model,
                    "-o", sheet)  # fmt: skip
    assert "--cell-size must be from 16 to 4096 px" in one_error_line(result)
    assert not sheet.exists()


# 7. Finite numbers: weights mixed without overflow, presets checked on load ------------------


def test_huge_weights_mix_like_equal_weights(work):
    assert stylize(work, "-s", "x.png", "-s", "y.png", "-w", 1e308, "-w", 1e308).exit_code == 0
    huge = pixels(work / "out.png")
    assert (
        stylize(work, "-s", "x.png", "-s", "y.png", "-w", 1, "-w", 1, "--overwrite").exit_code == 0
    )
    equal = pixels(work / "out.png")
    assert torch.equal(huge, equal)
    assert huge.float().mean() > 10  # not the near-black image of an overflowed sum


def test_style_encode_huge_weights_is_not_all_zero(work):
    model = ["--model", work / "tiny-model", "--device", "cpu"]
    for weights, name in (((1e308, 1e308), "huge"), ((1, 1), "equal")):
        result = invoke("style-encode", "x.png", "y.png", "-w", weights[0], "-w", weights[1],
                        *model, "-o", f"{name}.safetensors")  # fmt: skip
        assert result.exit_code == 0, result.output
    huge, equal = StyleStats.load("huge.safetensors"), StyleStats.load("equal.safetensors")
    assert huge.std.abs().sum() > 0
    torch.testing.assert_close(huge.mean, equal.mean, rtol=1e-6, atol=0)
    torch.testing.assert_close(huge.std, equal.std, rtol=1e-6, atol=0)


@pytest.mark.parametrize("weight", ["inf", "nan", "-1"])
def test_weights_must_be_finite(work, weight):
    line = one_error_line(stylize(work, "-s", "x.png", "-s", "y.png", "-w", 1, "-w", weight))
    assert "--weight" in line
    assert nothing_written(work)


def test_mix_never_overflows():
    a = StyleStats(torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1))
    b = StyleStats(torch.ones(1, 4, 1, 1), torch.full((1, 4, 1, 1), 3.0))
    mixed = StyleStats.mix([a, b], [1e308, 1e308])
    torch.testing.assert_close(mixed.mean, torch.full((1, 4, 1, 1), 0.5))
    torch.testing.assert_close(mixed.std, torch.full((1, 4, 1, 1), 2.0))
    with pytest.raises(ValueError, match="finite"):
        StyleStats.mix([a, b], [float("inf"), 1.0])


def _bad_presets(work: Path) -> dict[str, tuple[Path, str]]:
    ones = torch.ones(1, CHANNELS, 1, 1)
    nan = ones.clone()
    nan[0, 3] = float("nan")
    return {
        "nan": (write_preset(work / "nan.safetensors", ones, nan), "NaN or infinite"),
        "inf": (write_preset(work / "inf.safetensors", ones * float("inf"), ones), "infinite"),
        "three styles": (
            write_preset(
                work / "three.safetensors",
                torch.ones(3, CHANNELS, 1, 1),
                torch.ones(3, CHANNELS, 1, 1),
            ),  # fmt: skip
            "holds 3 styles",
        ),
        "wrong shape": (
            write_preset(
                work / "shape.safetensors",
                torch.ones(1, CHANNELS, 2, 2),
                torch.ones(1, CHANNELS, 2, 2),
            ),  # fmt: skip
            "(B, C, 1, 1)",
        ),
        "another model": (
            StyleStats(torch.zeros(1, 128, 1, 1), torch.ones(1, 128, 1, 1)).save(
                work / "wide.safetensors"
            ),
            "has 128 channels, this model's encoder 64",
        ),
        "ints": (write_preset(work / "int.safetensors", ones.int(), ones.int()), "floats"),
    }


@pytest.mark.parametrize(
    "case", ["nan", "inf", "three styles", "wrong shape", "another model", "ints"]
)
def test_bad_presets_are_one_line_naming_the_file(work, case):
    path, message = _bad_presets(work)[case]
    line = one_error_line(stylize(work, "-s", path))
    assert str(path) in line and message in line, line
    assert nothing_written(work)


# Tracebacks that become one line ------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped header"])
def test_corrupt_weights_are_one_line(work, damage):
    weights = work / "tiny-model" / "model.safetensors"
    data = weights.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "flipped header": bytes([data[0] ^ 0xFF]) + data[1:],
    }[damage]
    weights.write_bytes(damaged)
    line = one_error_line(stylize(work, "-s", "x.png"))
    assert str(weights) in line and "safetensors" in line, line
    assert nothing_written(work)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"base_channels": "8"}', "base_channels must be an integer from 1 to 64"),
        ('{"base_channels": -8}', "base_channels must be an integer from 1 to 64"),
        ('{"base_channels": true}', "base_channels must be an integer from 1 to 64"),
        ("[8, 5]", "must hold a JSON object, got list"),
        ('{"eps": "small"}', "eps must be a finite number > 0"),
        ('{"encoder_depth": 4}', "encoder_depth must be one of relu4_1, relu5_1"),
        ('{"depth": "relu4_1"}', "unknown key 'depth'"),
        ("{not json", "not readable JSON"),
    ],
)
def test_bad_config_json_is_one_line_naming_it(work, config, message):
    path = work / "tiny-model" / "config.json"
    path.write_text(config)
    line = one_error_line(stylize(work, "-s", "x.png"))
    assert str(path) in line and message in line, line
    assert nothing_written(work)


@pytest.mark.parametrize("budget", ["", "B", "inf", "1e400", "nan", "-1G", "0", "9" * 400])
def test_bad_max_memory_is_one_line(work, budget):
    line = one_error_line(stylize(work, "-s", "x.png", "--max-memory", budget))
    assert "--max-memory" in line, line
    assert nothing_written(work)


def test_too_small_budget_in_mib(work):
    save_image(smooth_image(1, 256, 256), work / "a.png")  # 1.5 MiB as fp32, in and out each
    line = one_error_line(stylize(work, "-s", "x.png", "--max-memory", "2M"))
    assert "max_memory 2.00 MiB (--max-memory) is too small" in line, line
    assert nothing_written(work)


def test_tiny_content_is_named(work):
    save_image(torch.rand(1, 3, 1, 1), work / "dot.png")
    model = ["--model", work / "tiny-model", "--device", "cpu"]
    line = one_error_line(invoke("stylize", "dot.png", "-s", "x.png", *model, "-o", "out.png"))
    assert "dot.png is 1x1 px" in line and "at least 16 px" in line, line
    assert nothing_written(work)


def test_tiny_style_is_named(work):
    save_image(torch.rand(1, 3, 4, 4), work / "speck.png")
    line = one_error_line(stylize(work, "-s", "speck.png"))
    assert "style speck.png is 4x4 px" in line, line
    assert nothing_written(work)


# Fuzz: random files only ever give our one-line errors -------------------------------------

# Derandomised in the default run (the same examples every time, a few seconds); the slow run
# draws new ones.
FAST = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SLOW = settings(FAST, max_examples=1000, derandomize=False)
EXPECTED = (ValueError, OSError)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@st.composite
def png_like(draw: st.DrawFn) -> bytes:
    """A PNG signature and an IHDR of random size and mode, then random or truncated data."""
    width = draw(st.integers(0, 1 << 31))
    height = draw(st.integers(0, 1 << 31))
    depth, colour = draw(st.sampled_from([1, 2, 4, 8, 16, 3, 0])), draw(st.integers(0, 7))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, draw(st.integers(0, 2)))
    body = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        body = _png_chunk(b"IDAT", zlib.compress(body)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + body


def _real_image(seed: int, width: int, height: int, kind: str) -> bytes:
    image = Image.fromarray(smooth_image(seed, height, width)[0].mul(255).byte().permute(1, 2, 0)
                            .numpy())  # fmt: skip
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    return buffer.getvalue()


@st.composite
def image_files(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["random", "png-like", "cut", "real"]))
    suffix = draw(st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".tif", ".webp"]))
    if kind == "random":
        return draw(st.binary(max_size=256)), suffix
    if kind == "png-like":
        return draw(png_like()), ".png"
    fmt = draw(st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]))
    data = _real_image(draw(st.integers(0, 9)), draw(st.integers(1, 40)), draw(st.integers(1, 40)),
                       fmt)  # fmt: skip
    if kind == "cut":  # truncated, or one byte flipped
        at = draw(st.integers(0, len(data) - 1))
        data = (
            data[:at]
            if draw(st.booleans())
            else data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
        )
    return data, suffix


def _load_image_property(file: tuple[bytes, str], size: int | None, max_pixels: int):
    data, suffix = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            image = load_image(path, max_pixels, size=size)
        except EXPECTED:
            return
        assert image.mode == "RGB"
        assert image.width * image.height <= max(max_pixels, 40 * 40)


image_args = (
    image_files(),
    st.one_of(st.none(), st.integers(0, 1 << 20)),
    # Capped: max_pixels=None is the caller's "no limit", which a size of 2^20 px would take.
    st.integers(1, 1 << 20),
)


@FAST
@given(*image_args)
def test_fuzz_load_image(file, size, max_pixels):
    _load_image_property(file, size, max_pixels)


@pytest.mark.slow
@SLOW
@given(*image_args)
def test_fuzz_load_image_long(file, size, max_pixels):
    _load_image_property(file, size, max_pixels)


@st.composite
def safetensors_like(draw: st.DrawFn, names: tuple[str, ...]) -> bytes:
    """Random bytes, or a length-prefixed JSON header of random tensors and metadata."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=128))
    header: dict[str, object] = {}
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        shape = draw(st.lists(st.integers(0, 70), max_size=4))
        dtype = draw(st.sampled_from(["F32", "F16", "I64", "BOOL", "X9"]))
        start = draw(st.integers(0, 64))
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [start, start + draw(st.integers(-4, 300))]}  # fmt: skip
    if draw(st.booleans()):
        header["__metadata__"] = {"format": draw(st.sampled_from(["adain-style-stats", "x"])),
                                  "layer": draw(st.text(max_size=8))}  # fmt: skip
    text = json.dumps(header).encode()
    length = len(text) if draw(st.booleans()) else draw(st.integers(0, 1 << 40))
    return struct.pack("<Q", length) + text + draw(st.binary(max_size=512))


def _preset_property(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.safetensors"
        path.write_bytes(data)
        try:
            stats = StyleStats.load(path)
        except EXPECTED:
            return
        assert stats.mean.shape[0] == 1 and torch.isfinite(stats.mean).all()


@FAST
@given(safetensors_like(("mean", "std", "other")))
def test_fuzz_style_preset(data):
    _preset_property(data)


@pytest.mark.slow
@SLOW
@given(safetensors_like(("mean", "std", "other")))
def test_fuzz_style_preset_long(data):
    _preset_property(data)


CONFIG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-100, 100), st.floats(), st.text(max_size=8),
    st.sampled_from(["relu4_1", "relu5_1"]), st.lists(st.integers(), max_size=2),
)  # fmt: skip
CONFIGS = st.one_of(
    st.binary(max_size=64),
    st.dictionaries(st.sampled_from(["encoder_depth", "base_channels", "eps", "x"]), CONFIG_VALUES)
    .map(lambda d: json.dumps(d).encode()),
    st.recursive(st.none() | st.integers() | st.text(max_size=4), st.lists, max_leaves=4)
    .map(lambda v: json.dumps(v).encode()),
)  # fmt: skip
WEIGHT_NAMES = ("encoder.conv1_1.weight", "decoder.conv4_1.bias", "x")


def _model_folder_property(config: bytes | None, weights: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if config is None or weights is None:  # the other file valid
            make_model().save_pretrained(folder)
        if config is not None:
            (Path(folder) / "config.json").write_bytes(config)
        if weights is not None:
            (Path(folder) / "model.safetensors").write_bytes(weights)
        try:
            AdaIN.from_pretrained(folder)
        except EXPECTED:
            return


model_args = (
    st.one_of(st.none(), CONFIGS),
    st.one_of(st.none(), safetensors_like(WEIGHT_NAMES)),
)


@FAST
@given(*model_args)
def test_fuzz_model_folder(config, weights):
    _model_folder_property(config, weights)


@pytest.mark.slow
@SLOW
@given(*model_args)
def test_fuzz_model_folder_long(config, weights):
    _model_folder_property(config, weights)
