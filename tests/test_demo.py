"""The demo's run, in process: what the Stylise button calls, regions and weights included.

The browser test (tests/test_demo_browser.py, marker ``browser``) drives the page itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("gradio")

from adain import stylize  # noqa: E402
from adain.serve.demo import _Results, _run, painted_region, parse_weights  # noqa: E402
from adain.serve.service import Stylist, find_styles  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONTENT = EXAMPLES / "content" / "coffee.jpg"  # 384x256
BRICK = EXAMPLES / "style" / "brick.jpg"
WAVES = EXAMPLES / "style" / "waves.jpg"


@pytest.fixture
def stylist(tiny_model):
    return Stylist(tiny_model, torch.device("cpu"), "tiny", find_styles(EXAMPLES / "style"))


def no_progress(fraction: float, desc: str = "") -> None:
    assert 0.0 <= fraction <= 1.0 and desc


def run(stylist, *, picked=None, uploads=None, alpha=1.0, weights="", preserve="off",
        region=False, editor=None):  # fmt: skip
    return _run(
        stylist, _Results(), str(CONTENT), picked, uploads, alpha, weights, preserve, region,
        editor, progress=no_progress,
    )  # fmt: skip


def pixels(path: str | Image.Image) -> np.ndarray:
    image = Image.open(path) if isinstance(path, str) else path
    return np.asarray(image.convert("RGB"), np.int16)


def test_painted_region_mixes_two_styles_as_masks_do(stylist, tiny_model):
    layer = np.zeros((128, 192, 4), np.uint8)  # the editor's canvas: half the content's size
    layer[:, :96, 0] = 255
    layer[:, :96, 3] = 255  # painted: the left half
    editor = {"background": None, "layers": [layer], "composite": None}
    shown, download, info = run(
        stylist, picked=["waves"], uploads=[str(BRICK)], weights="", region=True, editor=editor
    )
    assert shown == download and info == "384x256 px, alpha 1"
    # The canvas's strokes scaled to the content (bilinear: soft by one pixel at the seam).
    left = Image.fromarray(layer[..., 3]).resize((384, 256), Image.Resampling.BILINEAR)
    right = Image.eval(left, lambda value: 255 - value)
    expected = stylize(CONTENT, [WAVES, BRICK], model=tiny_model, masks=[left, right])
    diff = np.abs(pixels(download) - pixels(expected))
    assert diff.max() <= 1, f"max diff {diff.max()}"
    # Each side is nearer its own style alone than the other style alone.
    out = pixels(download)
    waves, brick = (
        pixels(stylize(CONTENT, WAVES, model=tiny_model)),
        pixels(stylize(CONTENT, BRICK, model=tiny_model)),
    )
    for side, own, other in ((np.s_[:, :96], waves, brick), (np.s_[:, 288:], brick, waves)):
        assert np.abs(out[side] - own[side]).mean() < np.abs(out[side] - other[side]).mean() / 3


def test_weights_and_preserved_colours_reach_the_model(stylist, tiny_model):
    _, download, _ = run(
        stylist, picked=["waves", "brick"], weights="1, 3", preserve="luminance", alpha=0.6
    )
    expected = stylize(
        CONTENT, [WAVES, BRICK], model=tiny_model, weights=[1, 3], alpha=0.6,
        preserve_color="luminance",
    )  # fmt: skip
    assert np.abs(pixels(download) - pixels(expected)).max() <= 1


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "pick a style"),
        ({"picked": ["waves"], "weights": "1, 2"}, "2 style weights for 1 styles"),
        ({"picked": ["waves"], "weights": "a lot"}, "write numbers"),
        ({"picked": ["waves"], "region": True}, "exactly two styles"),
        ({"picked": ["waves", "brick"], "region": True}, "paint the region"),
        ({"picked": ["monet"]}, "unknown preset 'monet'"),
        ({"uploads": [__file__]}, "not an image"),
    ],
)
def test_mistakes_are_one_line_messages_on_the_page(stylist, kwargs, words):
    import gradio as gr

    with pytest.raises(gr.Error) as raised:
        run(stylist, **kwargs)
    message = raised.value.message
    assert words in message and "\n" not in message


def test_parse_weights_and_empty_region():
    assert parse_weights(" 1; 3 ", 2) == [1.0, 3.0] and parse_weights("", 2) is None
    with pytest.raises(ValueError, match="paint"):
        painted_region({"layers": [np.zeros((8, 8, 4), np.uint8)]})


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_missing_extra_is_one_line_naming_the_extra(command, monkeypatch):
    import importlib.util

    from typer.testing import CliRunner

    from adain.cli import app

    real = importlib.util.find_spec
    missing = {"gradio", "fastapi"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a)
    )
    result = CliRunner().invoke(app, [command])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: adain {command} needs {'gradio' if command == 'demo' else 'fastapi'}: "
        'pip install "adain[demo]"'
    ]


def test_progress_goes_forward_through_the_stages(stylist):
    """Stages in order, fractions never going back; a run predicted to be long (the last runs'
    speed, faked slow here) also reports the time left while the model runs."""
    reports: list[tuple[float, str]] = []
    stylist._seconds_per_mp = 1000.0  # the estimate for 0.1 MP: about 98 s
    content = Image.open(CONTENT).convert("RGB")
    out = stylist.stylize(content, ["waves"], progress=lambda f, t: reports.append((f, t)))
    assert out.size == content.size
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1
    texts = [text for _, text in reports]
    assert texts[0] == "encoding 1 style" and texts[1] == "stylising 384x256 px (0.1 MP)"
    assert texts[-1].startswith("done in ")
    assert all(text.endswith(" s left") for text in texts[2:-1])
    assert stylist._seconds_per_mp < 1000.0  # measured again by this run
