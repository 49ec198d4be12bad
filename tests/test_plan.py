"""The memory plan: strips and column tiles within a budget, whole images where they fit."""

from __future__ import annotations

import pytest
import torch

import adain.engine.plan
from adain.architecture import DOWNSAMPLING
from adain.engine.plan import (
    DEFAULT_MAX_MEMORY,
    HALO,
    MAX_STRIP_PIXELS,
    MIN_STRIP_CELLS,
    StripPlan,
    columns,
    grow,
    parse_memory,
    plan_for_device,
    plan_strips,
    whole_plan,
)


def _one_piece(plan: StripPlan, height: int, width: int) -> bool:
    cells_h, cells_w = -(-height // DOWNSAMPLING), -(-width // DOWNSAMPLING)
    return plan.strip_cells >= cells_h and plan.tile_cells >= cells_w


def test_plan_is_whole_image_when_it_fits():
    plan = plan_strips(1, 512, 512)
    assert plan == StripPlan(64, 64, False, plan.estimated_bytes)
    assert plan.estimated_bytes <= DEFAULT_MAX_MEMORY


def test_plan_streams_large_images_in_full_width_strips():
    # 2048 px fits the default budget in strips no higher than MAX_STRIP_PIXELS.
    plan = plan_strips(1, 2048, 2048)
    assert plan.tile_cells == 256 and not plan.spill_features
    assert plan.strip_cells * DOWNSAMPLING * 2048 <= max(MAX_STRIP_PIXELS, 2048 * 8 * 4)
    assert plan.strip_cells < 256


@pytest.mark.parametrize("budget", ["3G", "1G", "800M"])
def test_plan_fits_the_budget(budget):
    limit = parse_memory(budget)
    plan = plan_strips(1, 4096, 4096, max_memory=limit)
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
    plan = plan_strips(1, 256, 100_000)
    assert plan.tile_cells < 100_000 // DOWNSAMPLING
    assert plan.estimated_bytes <= DEFAULT_MAX_MEMORY


def test_plan_explains_a_budget_that_is_too_small():
    with pytest.raises(ValueError, match="too small for a 8192x8192 image: allow at least"):
        plan_strips(1, 8192, 8192, max_memory=parse_memory("100M"))
    with pytest.raises(ValueError, match="tile must be at least 64 px"):
        plan_strips(1, 512, 512, tile=32)


def test_explicit_tile_caps_strips_and_columns():
    plan = plan_strips(1, 1000, 1000, tile=300)
    assert (plan.tile_cells, plan.strip_cells) == (37, 37)
    plan = plan_strips(1, 200, 120, tile=4096)
    assert (plan.tile_cells, plan.strip_cells) == (15, 25)


def test_one_piece_only_up_to_max_strip_pixels():
    # Up to MAX_STRIP_PIXELS (2^19: 512 x 1024) an image runs as one piece; above, in strips.
    assert MAX_STRIP_PIXELS == 512 * 1024
    assert _one_piece(plan_strips(1, 512, 512), 512, 512)
    assert _one_piece(plan_strips(1, 512, 1024), 512, 1024)
    for height, width in [(520, 1024), (1024, 1024), (8192, 8192)]:
        assert not _one_piece(plan_strips(1, height, width), height, width)


def test_whole_plan_is_one_piece():
    assert whole_plan(101, 133) == StripPlan(17, 13, False, 0)
    assert whole_plan(64, 8) == StripPlan(1, 8, False, 0)


@pytest.mark.parametrize(
    ("text", "expected"), [("3G", 3 << 30), ("512M", 512 << 20), ("2GiB", 2 << 30), (1000, 1000)]
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.5GiB", 3 << 29), ("1048576", 1 << 20), ("512 MiB", 512 << 20), ("2g", 2 << 30)],
)
def test_parse_memory_units_and_byte_counts(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    "text", ["lots", "-1G", "G", "", "B", "inf", "1e400", "nan", "0", "9" * 400, "1.5X", 0]
)
def test_parse_memory_rejects_nonsense(text):
    with pytest.raises(ValueError, match=r"memory size .*\(--max-memory\)"):
        parse_memory(text)


def test_too_small_budget_below_a_gib_is_in_mib():
    with pytest.raises(ValueError, match=r"max_memory 2\.00 MiB \(--max-memory\) is too small"):
        plan_strips(1, 4096, 4096, max_memory=parse_memory("2M"))


def test_columns_cover_every_cell_once_widest_window_first():
    cells = 53
    cores = columns(cells, 10)
    covered = torch.zeros(cells, dtype=torch.int64)
    for cols in cores:
        covered[slice(*cols)] += 1
    assert bool((covered == 1).all())
    widths = [right - left for left, right in (grow(cols, HALO, cells) for cols in cores)]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]


@pytest.mark.parametrize(
    ("height", "width", "kwargs"),
    [(512, 512, {}), (2048, 2048, {}), (4096, 4096, {"max_memory": 1 << 30}),
     (1000, 1000, {"tile": 300})],
)  # fmt: skip
def test_the_cpu_plans_strips(height, width, kwargs):
    device = torch.device("cpu")
    assert plan_for_device(device, 1, height, width, **kwargs) == plan_strips(
        1, height, width, **kwargs
    )


@pytest.fixture
def no_device_queries(monkeypatch):
    """A given ``max_memory`` is the budget: asking the device for its free memory fails."""

    def refuse(*args):
        raise AssertionError("asked the device for its free memory")

    monkeypatch.setattr(adain.engine.plan, "_free_memory", refuse)
    monkeypatch.setattr(torch.cuda, "mem_get_info", refuse)


def test_a_gpu_runs_the_whole_image_when_it_fits(no_device_queries):
    cuda = torch.device("cuda")  # only a name: nothing here touches CUDA
    # 512 px at width 64: ~0.4 GB of activations, input, output and features.
    plan = plan_for_device(cuda, 1, 512, 512, max_memory=1 << 30)
    assert plan == whole_plan(512, 512)
    # A batch of four no longer fits 1 GiB whole: strips within the budget.
    plan = plan_for_device(cuda, 4, 512, 512, max_memory=1 << 30)
    assert not _one_piece(plan, 512, 512)
    assert plan == plan_strips(4, 512, 512, max_memory=1 << 30)
    assert plan.estimated_bytes <= 1 << 30


def test_a_gpu_runs_strips_when_the_whole_image_does_not_fit(no_device_queries):
    cuda = torch.device("cuda")
    budget = parse_memory("200M")
    plan = plan_for_device(cuda, 1, 512, 512, max_memory=budget)
    assert plan == plan_strips(1, 512, 512, max_memory=budget)
    assert plan.tile_cells == 64 and plan.strip_cells < 64
    assert MIN_STRIP_CELLS <= plan.strip_cells
    assert plan.estimated_bytes <= budget
    # A narrower model needs less: the same image fits whole.
    assert plan_for_device(cuda, 1, 512, 512, 8, max_memory=budget) == whole_plan(512, 512)


def test_a_gpu_follows_an_explicit_tile(no_device_queries):
    cuda = torch.device("cuda")
    plan = plan_for_device(cuda, 1, 1000, 1000, tile=300)
    assert plan == plan_strips(1, 1000, 1000, tile=300)


def test_a_gpus_default_budget_is_its_free_memory(monkeypatch):
    free = []
    monkeypatch.setattr(adain.engine.plan, "_free_memory", lambda device: free[-1])
    cuda = torch.device("cuda")
    free.append(8 << 30)
    assert plan_for_device(cuda, 1, 1024, 1024) == whole_plan(1024, 1024)
    free.append(400 << 20)
    plan = plan_for_device(cuda, 1, 1024, 1024)
    assert plan == plan_strips(1, 1024, 1024, max_memory=400 << 20)
    assert not _one_piece(plan, 1024, 1024)
