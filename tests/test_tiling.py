"""Tiled stylisation: agreement with whole-image runs, exact statistics, memory planning."""

from __future__ import annotations

import pytest
import torch

from adain.engine.runner import Runner
from adain.engine.strips import (
    DEFAULT_MAX_MEMORY,
    MAX_STRIP_PIXELS,
    MIN_STRIP_CELLS,
    TilePlan,
    image_stats,
    needs_tiles,
    parse_memory,
    plan_tiles,
    stylize_tiled,
)
from adain.model import DOWNSAMPLING
from tests.conftest import smooth_image

# Outputs in pieces and whole (magnitude ~2) differ only by float summation order: strips carry
# the rows each layer needs and column halos cover the receptive fields, so we compare
# everywhere, borders included.
ATOL = 1e-4


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convolutions: one thread avoids OpenMP spin-waits on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _runner(model) -> Runner:
    return Runner(model, "cpu", channels_last=False)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    diff = (actual - expected).abs()
    assert actual.shape == expected.shape
    assert diff.max() <= ATOL, f"max diff {diff.max():.2e}, mean {diff.mean():.2e}"


@pytest.mark.parametrize("spill", [False, True])
@pytest.mark.parametrize(
    ("cols", "rows"),
    [
        (17, 1),  # one-cell strips: every layer's carried rows matter
        (17, 3),  # strips whose pooled rows end odd at some levels
        (8, 5),  # column tiles (halos, feathers) and strips together
        (8, 13),  # column tiles only
    ],
)
def test_pieces_match_whole_image(tiny_model, style, spill, cols, rows):
    # 101x133 px: not a multiple of 8 (reflect padding), 13x17 cells.
    content = smooth_image(5, 101, 133)
    with torch.inference_mode():
        whole = tiny_model(content, style, 0.8)
        stats = tiny_model.style_stats(style)
        plan = TilePlan(cols, rows, spill, 0)
        pieces = stylize_tiled(_runner(tiny_model), content, [stats], 0.8, plan=plan)
    _close(pieces, whole)


def test_strips_match_whole_image_in_channels_last(tiny_model, style):
    content = smooth_image(4, 64, 48)
    with torch.inference_mode():
        whole = tiny_model(content, style, 1.0)
        runner = Runner(tiny_model, "cpu", channels_last=True)
        plan = TilePlan(6, 2, False, 0)
        strips = stylize_tiled(runner, content, [tiny_model.style_stats(style)], plan=plan)
    _close(strips, whole)


def test_tiled_matches_with_masks_and_weights(tiny_model, style):
    content = smooth_image(6, 80, 112)
    other = smooth_image(7, 40, 40)
    masks = torch.rand(1, 2, 20, 28, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        stats = [tiny_model.style_stats(style), tiny_model.style_stats(other)]
        runner = _runner(tiny_model)
        whole = tiny_model(content, [style, other], 0.6, masks=masks)
        _close(stylize_tiled(runner, content, stats, 0.6, masks=masks, tile=64), whole)
        whole = tiny_model(content, [style, other], 1.3, weights=[0.25, 0.75])
        tiled = stylize_tiled(runner, content, stats, 1.3, weights=[0.25, 0.75], tile=64)
        _close(tiled, whole)


def test_image_stats_are_the_whole_image_statistics(tiny_model):
    image = smooth_image(8, 100, 70)
    with torch.inference_mode():
        expected = tiny_model.style_stats(image)
        actual = image_stats(_runner(tiny_model), image, tile=64)
    # Exact statistics: only the float summation order differs.
    assert (actual.mean - expected.mean).abs().max() <= 1e-5 * expected.mean.abs().max()
    assert (actual.std - expected.std).abs().max() <= 1e-5 * expected.std.abs().max()


def test_stylize_task_api_tiles(tiny_model, style):
    from adain.api import stylize

    content = smooth_image(9, 72, 96)  # 9x12 cells: 2x2 tiles of 64 px
    kwargs = {"model": tiny_model, "device": "cpu", "output": "tensor", "alpha": 0.7}
    whole = stylize(content, style, **kwargs, preserve_color="luminance")
    tiled = stylize(content, style, **kwargs, preserve_color="luminance", tile=64)
    _close(tiled, whole)
    tiled = stylize(content, style, **kwargs, preserve_color="luminance", max_memory="1G")
    _close(tiled, whole)


def test_plan_is_whole_image_when_it_fits():
    plan = plan_tiles(1, 512, 512)
    assert plan == TilePlan(64, 64, False, plan.estimated_bytes)
    assert plan.estimated_bytes <= DEFAULT_MAX_MEMORY


def test_plan_streams_large_images_in_full_width_strips():
    # 2048 px fits the default budget in strips no higher than MAX_STRIP_PIXELS.
    plan = plan_tiles(1, 2048, 2048)
    assert plan.tile_cells == 256 and not plan.spill_features
    assert plan.strip_cells * DOWNSAMPLING * 2048 <= max(MAX_STRIP_PIXELS, 2048 * 8 * 4)
    assert plan.strip_cells < 256


@pytest.mark.parametrize("budget", ["3G", "1G", "600M"])
def test_plan_fits_the_budget(budget):
    limit = parse_memory(budget)
    plan = plan_tiles(1, 4096, 4096, max_memory=limit)
    assert plan.strip_cells < 512  # 4096 px does not fit whole in these budgets
    assert plan.estimated_bytes <= limit
    # 3G keeps the 512 MiB feature map in memory with full-width strips. Below, in-memory
    # features would leave strips too low for the full width (column tiles with halos), or no
    # room at all, so they go to a file and the strips keep the full width.
    assert plan.spill_features == (limit < parse_memory("3G"))
    assert plan.tile_cells == 512
    assert plan.strip_cells >= MIN_STRIP_CELLS


def test_plan_splits_columns_only_when_full_width_strips_do_not_fit():
    # A 100k px wide panorama: even 4-cell strips of its full width exceed 2 GiB.
    plan = plan_tiles(1, 256, 100_000)
    assert plan.tile_cells < 100_000 // DOWNSAMPLING
    assert plan.estimated_bytes <= DEFAULT_MAX_MEMORY


def test_plan_explains_a_budget_that_is_too_small():
    with pytest.raises(ValueError, match="too small for a 8192x8192 image: allow at least"):
        plan_tiles(1, 8192, 8192, max_memory=parse_memory("100M"))
    with pytest.raises(ValueError, match="tile must be at least 64 px"):
        plan_tiles(1, 512, 512, tile=32)


def test_explicit_tile_caps_strips_and_columns():
    plan = plan_tiles(1, 1000, 1000, tile=300)
    assert (plan.tile_cells, plan.strip_cells) == (37, 37)
    plan = plan_tiles(1, 200, 120, tile=4096)
    assert (plan.tile_cells, plan.strip_cells) == (15, 25)


def test_needs_tiles_only_for_large_images():
    def image(height: int, width: int) -> torch.Tensor:
        return torch.zeros(1, 3, 1, 1).expand(1, 3, height, width)

    # Up to MAX_STRIP_PIXELS (2^19: 512 x 1024) an image runs whole; above, in strips.
    assert MAX_STRIP_PIXELS == 512 * 1024
    assert not needs_tiles(image(512, 512))
    assert not needs_tiles(image(512, 1024))
    assert needs_tiles(image(520, 1024))
    assert needs_tiles(image(1024, 1024))
    assert needs_tiles(image(8192, 8192))


@pytest.mark.parametrize(
    ("text", "expected"), [("3G", 3 << 30), ("512M", 512 << 20), ("2GiB", 2 << 30), (1000, 1000)]
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "G"])
def test_parse_memory_rejects_nonsense(text):
    with pytest.raises(ValueError, match="memory size"):
        parse_memory(text)


def test_columns_cover_every_cell_once_widest_window_first():
    from adain.engine.strips import HALO, _columns, _grow

    cells = 53
    columns = _columns(cells, 10)
    covered = torch.zeros(cells, dtype=torch.int64)
    for cols in columns:
        covered[slice(*cols)] += 1
    assert bool((covered == 1).all())
    widths = [right - left for left, right in (_grow(cols, HALO, cells) for cols in columns)]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]


def test_one_piece_through_the_runners_modules(tiny_model, style):
    # A compiled runner (or a GPU) runs a single piece through its modules, not a stream; the
    # flag alone selects that path here, without paying for a compilation.
    content = smooth_image(10, 40, 56)
    runner = _runner(tiny_model)
    runner.compiled = True
    calls = []
    encode = runner.encode
    runner.encode = lambda x: calls.append(x.shape) or encode(x)  # type: ignore[method-assign]
    with torch.inference_mode():
        whole = tiny_model(content, style, 0.9)
        out = stylize_tiled(runner, content, [tiny_model.style_stats(style)], 0.9)
    assert calls == [(1, 3, 40, 56)]
    _close(out, whole)


@pytest.mark.parametrize(
    ("content", "style", "message"),
    [
        (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 32, 32), "content is 8x8 px; AdaIN needs"),
        (torch.rand(1, 4, 32, 32), torch.rand(1, 3, 32, 32), r"content must be a float tensor"),
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 9, 40), "style is 40x9 px; AdaIN needs"),
    ],
)
def test_bad_images_get_the_models_errors(tiny_model, content, style, message):
    # The streamed path (the CPU default of adain.api.stylize) checks inputs as AdaIN.forward.
    from adain.api import stylize

    with pytest.raises(ValueError, match=message):
        stylize(content, style, model=tiny_model, device="cpu", output="tensor")
