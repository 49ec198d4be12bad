"""Golden tests of what users run: converted release weights through every entry point.

The reference is tests/original_layout.py, a re-statement of pytorch-AdaIN's test-time transfer
written independently of adain, on random original-layout networks (He-initialised, so outputs
vary across the image). The same networks are saved as the release's ``vgg_normalised.pth`` and
``decoder.pth``, converted, and run through the model called directly, a model loaded with
``from_pretrained``, :func:`adain.stylize` on PNG files and the ``adain stylize`` command. Every
8-bit output pixel must be within :data:`LEVELS` of the reference quantised the same way, at a
small size and at a size the CPU engine streams in several strips.

Also: masks change the pixels they cover and only those, and style statistics are the same
numbers through every path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_WIDTH, smooth_image
from original_layout import calc_mean_std as original_mean_std
from original_layout import seeded_original, style_transfer
from PIL import Image
from torch import Tensor, nn

import adain
from adain.engine.plan import plan_for_device
from adain.engine.runner import EngineOptions
from adain.functional import calc_mean_std
from adain.image import save_image
from adain.model import AdaIN

# Sizes are (height, width) in px, multiples of 8: the release returns 8 * ceil(H / 8) px, where
# adain reflect-pads and crops back, so only multiples of 8 compare pixel for pixel.
SMALL = (64, 96)
# 552,960 px > MAX_STRIP_PIXELS (2^19): the CPU engine streams it in strips of rows
# (test_streamed_size_runs_in_strips checks this).
STREAMED = (768, 720)
STYLE = (64, 80)
# 8-bit levels an entry point may differ from the reference by: fp32 sums in another order move
# a value by ~1e-5 here, which changes its rounding to 8 bits by at most one level.
LEVELS = 2
# The reference must not be flat (std of its [0, 1] pixels) nor mostly clipped (share of values
# strictly inside (0, 255); 22 % at width 64, where outputs span +-3).
MIN_STD = 0.05
MIN_UNCLIPPED = 0.1
# (size, alpha) of the width-8 comparisons: alpha 1 and 0.5 small, one alpha streamed.
CASES = [(SMALL, 1.0), (SMALL, 0.5), (STREAMED, 0.6)]
CASE_IDS = ["small-alpha1", "small-alpha0.5", "streamed-alpha0.6"]


# Pixels ------------------------------------------------------------------------------------------


def levels(image: Tensor) -> Tensor:
    """8-bit levels ``round(clamp(x, 0, 1) * 255)`` as a float tensor, as a PNG holds them."""
    return image.detach().float().clamp(0, 1).mul(255).round()


def eight_bit(image: Tensor) -> Tensor:
    """The ``[0, 1]`` tensor a PNG of ``image`` loads as, so every path sees the same input."""
    return levels(image) / 255


def pil_levels(image: Image.Image) -> Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float()


def png_levels(path: Path) -> Tensor:
    with Image.open(path) as image:
        return pil_levels(image)


def assert_within_levels(actual: Tensor, expected: Tensor, what: str) -> None:
    """Every 8-bit value within :data:`LEVELS`; else say how many, how far and where."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = (actual - expected).abs()
    worst = diff.max().item()
    if worst > LEVELS:
        _, channel, y, x = np.unravel_index(int(diff.argmax()), tuple(diff.shape))
        over = int((diff > LEVELS).sum())
        pytest.fail(
            f"{what}: {over} of {diff.numel()} values more than {LEVELS} levels off the "
            f"reference, worst {worst:.0f} levels at y={y}, x={x}, channel {channel} "
            f"({actual[0, channel, y, x]:.0f} vs {expected[0, channel, y, x]:.0f}); "
            f"mean difference {diff.mean():.3f} levels"
        )


# Release weights and scenes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """Random original-layout networks, their .pth files and the converted model folder."""

    vgg: nn.Sequential
    dec: nn.Sequential
    vgg_file: Path
    decoder_file: Path
    folder: Path


def make_release(root: Path, width: int) -> Release:
    vgg, dec = seeded_original(width)
    vgg_file, decoder_file = root / "vgg_normalised.pth", root / "decoder.pth"
    torch.save(vgg.state_dict(), vgg_file)
    torch.save(dec.state_dict(), decoder_file)
    folder = root / "converted"
    AdaIN.from_original(vgg_file, decoder_file).save_pretrained(folder)
    return Release(vgg, dec, vgg_file, decoder_file, folder)


@dataclass
class Scene:
    """8-bit content and style tensors, the same pixels as PNG files, and cached references."""

    release: Release
    content: Tensor
    style: Tensor
    content_file: Path
    style_file: Path
    references: dict[float, Tensor] = field(default_factory=dict)

    def reference(self, alpha: float) -> Tensor:
        """The independent release's output in 8-bit levels (computed once per alpha)."""
        if alpha not in self.references:
            with torch.inference_mode():
                out = style_transfer(
                    self.release.vgg, self.release.dec, self.content, self.style, alpha
                )
            assert out.shape == self.content.shape
            self.references[alpha] = levels(out)
        return self.references[alpha]


class Scenes:
    """Scenes by content size, made when first asked for (inside a test, so on one thread)."""

    def __init__(self, root: Path, release: Release):
        self.root, self.release = root, release
        self._scenes: dict[tuple[int, int], Scene] = {}

    def __getitem__(self, size: tuple[int, int]) -> Scene:
        if size not in self._scenes:
            folder = self.root / f"{size[0]}x{size[1]}"
            folder.mkdir()
            content = eight_bit(smooth_image(3, *size))
            style = eight_bit(smooth_image(4, *STYLE))
            content_file, style_file = folder / "content.png", folder / "style.png"
            save_image(content, content_file)
            save_image(style, style_file)
            self._scenes[size] = Scene(self.release, content, style, content_file, style_file)
        return self._scenes[size]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return make_release(tmp_path_factory.mktemp("release"), TINY_WIDTH)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory, release: Release) -> Scenes:
    return Scenes(tmp_path_factory.mktemp("scenes"), release)


# Entry points: each returns the output in 8-bit levels -------------------------------------------


def run_call(scene: Scene, alpha: float, tmp_path: Path) -> Tensor:
    """The converted model called directly, under inference mode."""
    release = scene.release
    model = AdaIN.from_original(release.vgg_file, release.decoder_file)
    with torch.inference_mode():
        return levels(model(scene.content, scene.style, alpha))


def run_loaded(scene: Scene, alpha: float, tmp_path: Path) -> Tensor:
    """The converted folder loaded with from_pretrained and called with autograd on: nothing
    requires gradients, so this too runs on the engine."""
    model = AdaIN.from_pretrained(scene.release.folder)
    assert not any(p.requires_grad for p in model.parameters())
    assert torch.is_grad_enabled()
    out = model(scene.content, scene.style, alpha)
    assert not out.requires_grad
    return levels(out)


def run_stylize(scene: Scene, alpha: float, tmp_path: Path) -> Tensor:
    """adain.stylize on the PNG files, the model given as the converted folder."""
    image = adain.stylize(
        scene.content_file, scene.style_file, model=scene.release.folder, alpha=alpha, device="cpu"
    )
    return pil_levels(image)


def run_stylize_model(scene: Scene, alpha: float, tmp_path: Path) -> Tensor:
    """adain.stylize on the PNG files, the model given as a loaded object."""
    model = AdaIN.from_pretrained(scene.release.folder)
    image = adain.stylize(
        scene.content_file, scene.style_file, model=model, alpha=alpha, device="cpu"
    )
    return pil_levels(image)


def run_cli(scene: Scene, alpha: float, tmp_path: Path) -> Tensor:
    """``adain stylize CONTENT -s STYLE -o OUT.png --model FOLDER --alpha A``, in-process."""
    from typer.testing import CliRunner

    from adain.cli import app  # here, not at the top: a broken CLI fails these tests only

    output = tmp_path / "out.png"
    args = [scene.content_file, "-s", scene.style_file, "-o", output, "--alpha", alpha]
    args += ["--model", scene.release.folder, "--device", "cpu"]
    result = CliRunner().invoke(app, ["stylize", *map(str, args)])
    assert result.exit_code == 0, result.output
    return png_levels(output)


ENTRY_POINTS: dict[str, Callable[[Scene, float, Path], Tensor]] = {
    "call": run_call,
    "from_pretrained": run_loaded,
    "stylize": run_stylize,
    "stylize-model": run_stylize_model,
    "cli": run_cli,
}


# 1. Converted weights through every entry point -------------------------------------------------


def test_streamed_size_runs_in_strips():
    height, width = STREAMED
    assert height * width > 1 << 19
    for channels in (TINY_WIDTH, 64):
        plan = plan_for_device(torch.device("cpu"), 1, height, width, channels)
        assert plan.strip_cells < math.ceil(height / 8), plan


def assert_not_degenerate(reference: Tensor, what: str) -> None:
    """A reference that varies across the image, mostly inside [0, 1] (clipped pixels agree
    whatever the model computes)."""
    std = (reference / 255).std().item()
    assert std > MIN_STD, f"flat reference {what}: std {std:.3f}"
    unclipped = ((reference > 0) & (reference < 255)).float().mean().item()
    assert unclipped > MIN_UNCLIPPED, f"reference {what} clipped: {unclipped:.0%} inside (0, 255)"


def test_references_are_not_degenerate(scenes: Scenes):
    """The reference varies across the image, and alpha changes it: a wrong output fails."""
    for size, alpha in CASES:
        assert_not_degenerate(scenes[size].reference(alpha), f"at {size}, alpha {alpha}")
    small = scenes[SMALL]
    alpha_change = (small.reference(1.0) - small.reference(0.5)).abs().max().item()
    assert alpha_change > 2 * LEVELS, f"alpha 0.5 and 1.0 differ by {alpha_change} levels only"


@pytest.mark.parametrize(
    ("entry", "size", "alpha"),
    [
        pytest.param(entry, size, alpha, id=f"{case_id}-{entry}")
        for (size, alpha), case_id in zip(CASES, CASE_IDS, strict=True)
        for entry in ENTRY_POINTS
        # A loaded model passed to stylize runs as the folder does: once, at the small size.
        if not (entry == "stylize-model" and size == STREAMED)
    ],
)
def test_entry_point_matches_release(
    scenes: Scenes, entry: str, size: tuple[int, int], alpha: float, tmp_path: Path
):
    scene = scenes[size]
    actual = ENTRY_POINTS[entry](scene, alpha, tmp_path)
    assert_within_levels(actual, scene.reference(alpha), f"{entry} at {size}, alpha {alpha}")


@pytest.fixture(scope="module")
def full_width_scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    release = make_release(tmp_path_factory.mktemp("release64"), 64)
    return Scenes(tmp_path_factory.mktemp("scenes64"), release)[STREAMED]


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["call", "stylize", "cli"])
def test_full_width_streamed_matches_release(full_width_scene: Scene, entry: str, tmp_path):
    """VGG-19's real widths at a streamed size: Winograd convolutions in the >=256-channel
    layers, strips, and every file path. The reference is computed once (shared across entries)."""
    alpha = 0.6
    reference = full_width_scene.reference(alpha)
    assert_not_degenerate(reference, f"width 64 at {STREAMED}, alpha {alpha}")
    actual = ENTRY_POINTS[entry](full_width_scene, alpha, tmp_path)
    assert_within_levels(actual, reference, f"{entry}, width 64 at {STREAMED}, alpha {alpha}")


# 2. Masks change the pixels they cover and only those -------------------------------------------

MASKED = (96, 288)
# Pixels this far from every covered column must equal the content-only reconstruction. A
# covered cell (8 px, area-averaged: a partly covered cell counts) reaches 30 px into the
# decoder's output: its receptive field is 2 px (full resolution) + 2 x 2 (1/2) + 4 x 4 (1/4) +
# 1 x 8 (1/8). So a mask edge inside a cell moves pixels up to 8 + 30 = 38 px beyond it;
# measured: 34 px for an edge at x = 116 (its cell ends at 120, the last pixel changed is 149).
MARGIN = 40
# Well inside a covered region, the mean change must exceed this (levels / 255).
MIN_CHANGE = 5 / 255
# Uncovered pixels equal the reconstruction within this (float rounding only).
FLOAT_TOL = 1e-4


def column_masks(width: int, bands: list[tuple[float, float] | None]) -> Tensor:
    """``(1, K, H, W)`` binary masks, one per style: columns in ``[start, stop)`` (fractions of
    the width) are 1; ``None`` covers nothing."""
    x = (torch.arange(width) + 0.5) / width
    channels = [
        torch.zeros(width) if band is None else ((x >= band[0]) & (x < band[1])).float()
        for band in bands
    ]
    return torch.stack(channels).view(1, len(bands), 1, width).expand(-1, -1, MASKED[0], -1)


def distance_to(columns: Tensor) -> Tensor:
    """For each column, the distance in px to the nearest column where ``columns`` is True."""
    x = torch.arange(columns.numel())
    where = columns.nonzero().flatten()
    return (x[:, None] - where[None, :]).abs().min(dim=1).values


def regions(masks: Tensor) -> tuple[Tensor, Tensor]:
    """Columns well inside a covered region, and columns far from every covered one."""
    covered = masks.amax(dim=(0, 1, 2)) > 0
    inside = distance_to(~covered) > MARGIN
    far = distance_to(covered) > MARGIN
    assert inside.any() and far.any(), "the layout leaves no room for the margin"
    return inside, far


@dataclass
class MaskScene:
    content: Tensor
    styles: list[Tensor]
    content_file: Path
    style_files: list[Path]
    folder: Path


@pytest.fixture(scope="module")
def mask_scene(tmp_path_factory: pytest.TempPathFactory, release: Release) -> MaskScene:
    root = tmp_path_factory.mktemp("masks")
    content = eight_bit(smooth_image(10, *MASKED))
    # Two styles far from the content and each other: warm and dim, cold and contrasty.
    warm = eight_bit(smooth_image(11, *STYLE) * torch.tensor([1.0, 0.45, 0.2]).view(1, 3, 1, 1))
    cold = smooth_image(12, *STYLE)
    cold = eight_bit(((cold - 0.5) * 2.5 + 0.5) * torch.tensor([0.3, 0.7, 1.0]).view(1, 3, 1, 1))
    files = [root / "content.png", root / "warm.png", root / "cold.png"]
    for image, path in zip([content, warm, cold], files, strict=True):
        save_image(image, path)
    return MaskScene(content, [warm, cold], files[0], files[1:], release.folder)


def stylize_masked(scene: MaskScene, masks: Tensor, entry: str, folder: Path) -> Tensor:
    """The output with ``masks`` through ``entry`` (not clamped through the model, clamped to
    [0, 1] through stylize, whose masks are PNG files written into ``folder``)."""
    if entry == "stylize":
        folder.mkdir()
        paths = [folder / f"mask{k}.png" for k in range(masks.shape[1])]
        for k, path in enumerate(paths):
            save_image(masks[:, k : k + 1].expand(-1, 3, -1, -1), path)
        return adain.stylize(
            scene.content_file, scene.style_files, model=scene.folder,
            masks=paths, device="cpu", output="tensor",
        )  # fmt: skip
    model = AdaIN.from_pretrained(scene.folder)
    engine = EngineOptions(tile=64) if entry == "call-tiled" else None
    return model(scene.content, scene.styles, masks=masks, engine=engine)


def reconstruction(scene: MaskScene, entry: str) -> Tensor:
    """The content-only output (alpha 0), through the same entry point."""
    if entry == "stylize":
        return adain.stylize(
            scene.content_file, scene.style_files[0], model=scene.folder, alpha=0.0,
            device="cpu", output="tensor",
        )  # fmt: skip
    model = AdaIN.from_pretrained(scene.folder)
    engine = EngineOptions(tile=64) if entry == "call-tiled" else None
    return model(scene.content, scene.styles[0], 0.0, engine=engine)


def column_change(a: Tensor, b: Tensor) -> Tensor:
    """Per column: the largest change over rows and channels."""
    return (a - b).abs().amax(dim=(0, 1, 2))


MASK_ENTRIES = ["call", "call-tiled", "stylize"]
LAYOUTS = {
    "left-40%": [(0.0, 0.4), None],
    "left-30%-right-30%": [(0.0, 0.3), (0.7, 1.0)],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("entry", MASK_ENTRIES)
def test_masks_change_covered_pixels_only(mask_scene: MaskScene, entry, layout, tmp_path):
    masks = column_masks(MASKED[1], LAYOUTS[layout])
    inside, far = regions(masks)
    out = stylize_masked(mask_scene, masks, entry, tmp_path / "masks")
    plain = reconstruction(mask_scene, entry)
    change = (out - plain).abs()
    inside_change = change[..., inside].mean().item()
    assert inside_change > MIN_CHANGE, f"covered pixels barely changed: {inside_change * 255:.1f}"
    far_change = column_change(out, plain)[far]
    worst = far_change.max().item()
    x = int(far.nonzero().flatten()[far_change.argmax()])
    assert worst <= FLOAT_TOL, f"uncovered pixels changed by {worst:.3g} at x={x}"


@pytest.mark.parametrize("entry", MASK_ENTRIES)
def test_swapping_masks_changes_covered_pixels_only(mask_scene: MaskScene, entry, tmp_path):
    bands = LAYOUTS["left-30%-right-30%"]
    masks = column_masks(MASKED[1], bands)
    swapped = column_masks(MASKED[1], bands[::-1])
    inside, far = regions(masks)
    out = stylize_masked(mask_scene, masks, entry, tmp_path / "masks")
    out_swapped = stylize_masked(mask_scene, swapped, entry, tmp_path / "swapped")
    for name, columns in [
        ("left", slice(0, MASKED[1] // 2)),
        ("right", slice(MASKED[1] // 2, None)),
    ]:
        part = torch.zeros_like(inside)
        part[columns] = True
        change = (out - out_swapped).abs()[..., inside & part].mean().item()
        assert change > MIN_CHANGE, f"swapping barely changed the {name} region: {change * 255:.1f}"
    worst = column_change(out, out_swapped)[far].max().item()
    assert worst <= FLOAT_TOL, f"swapping changed uncovered pixels by {worst:.3g}"


# 3. Style statistics are the same through every path --------------------------------------------

STATS_RTOL = 1e-4


def assert_stats_close(actual: tuple[Tensor, Tensor], expected: tuple[Tensor, Tensor], what: str):
    for name, a, e in zip(("mean", "std"), actual, expected, strict=True):
        a, e = a.detach().float().cpu(), e.detach().float().cpu()
        worst = ((a - e).abs() / e.abs().clamp_min(1e-6)).max().item()
        assert worst <= STATS_RTOL, f"{what}: {name} off by {worst:.3g} relative"


def test_style_stats_equal_whole_map_statistics(scenes: Scenes):
    """A style large enough to stream: strips, the whole-map encoder, the independent release
    encoder and adain.encode_style on the PNG all give the same relu4_1 statistics."""
    scene = scenes[STREAMED]  # its content serves as the style here
    style, release = scene.content, scene.release
    height, width = style.shape[2:]
    assert plan_for_device(
        torch.device("cpu"), 1, height, width, TINY_WIDTH
    ).strip_cells < math.ceil(height / 8)
    model = AdaIN.from_pretrained(release.folder)
    streamed = model.style_stats(style)  # nothing requires grad: the engine, in strips
    with torch.no_grad():
        whole = calc_mean_std(model.encoder(style)["relu4_1"])  # the module walks whole maps
        original = original_mean_std(release.vgg[:31](style))
    assert whole[1].std() > 0.01, "degenerate style features"
    assert_stats_close(whole, original, "whole-map encoder vs the release's")
    assert_stats_close((streamed.mean, streamed.std), whole, "style_stats in strips")
    encoded = adain.encode_style(scene.content_file, model, device="cpu")
    assert_stats_close((encoded.mean, encoded.std), whole, "encode_style on the PNG")
