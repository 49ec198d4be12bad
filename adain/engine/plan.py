"""The memory plan: how an image is cut into strips of rows (and, if very wide, columns) so one
stylisation fits a memory budget, and whether the kept features fit in memory.

Memory grows with a strip's width. An image too wide for the narrowest strip within the budget
(or a ``tile`` narrower than the image) is also split into columns, which overlap by a halo
covering the receptive fields of the encoder (~37 px) and decoder (~30 px); neighbouring
columns are blended with linear feathers inside the exact region (:mod:`adain.engine.strips`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from adain.architecture import DOWNSAMPLING

# Working memory of one strip's forward pass per pixel at base width 64 (bytes), and what a call
# holds whatever its strips (prepared weight copies, oneDNN scratch, allocator slack), scaled
# with the width squared as the weights are. Measured as peak RSS above the RSS before the call
# (benchmarks/memory_bench.py: VmHWM reset at the call) on the 2-core CPU, 1024 px in strips of
# 49k to 524k px: ~120 MiB + 1600-2050 B per strip pixel, the narrower strips paying the rows
# each layer carries to the next strip. The estimate takes the upper ends, so that
# ``max_memory`` bounds the call (the README's table).
BYTES_PER_PIXEL = 2200
FIXED_BYTES = 160 << 20
# Default budget for the stylisation's own memory (image, output, features, strips).
DEFAULT_MAX_MEMORY = 2 << 30
# Halo in relu4_1 cells (8 px) on each side of a column tile, in both passes: it covers the
# receptive field of the encoder (~37 px) in pass one and of the decoder (~30 px) in pass two.
HALO = 6
# Feather width in px on each side of a column boundary; <= 8 * HALO - 30 px keeps the blended
# pixels inside the exact region.
FEATHER = 16
# Smallest column tile core (cells): below this the halos cost more than the tile itself.
MIN_TILE_CELLS = 8
# Lowest strip (cells) a plan picks before splitting columns: lower strips make thin matrix
# products at relu4_1 (a 4-cell strip of a 4096 px image is still 2048 positions).
MIN_STRIP_CELLS = 4
# Highest strip (px rows x image width, pixels), even where memory allows more. On the 2-core
# CPU a 2048 px image took 40-51 s as one piece and 28-32 s in strips of 16, 32 or 64 cells
# (peak RSS 1.29, 1.64, 2.23 GiB); 1024 px took 8.0-8.5 s whole and 7.9-8.8 s in two strips.
# 2^19 px (32 cells at 2048 px) is as fast as larger strips for less memory.
MAX_STRIP_PIXELS = 1 << 19


# A spilled feature map is chosen over an in-memory one only when its wider column tiles cut
# the halo work by more than this factor: the file's I/O is cheap but not free.
SPILL_GAIN = 1.1


@dataclass(frozen=True)
class StripPlan:
    """How an image is processed, in relu4_1 cells (8 px), and where features are kept.

    ``tile_cells`` is the width of a column tile's core (covering the feature map's width: no
    column split, no halo); ``strip_cells`` the height of the strips streamed through each
    column (covering its height: one piece). ``spill_features`` keeps pass one's features in a
    temporary file instead of memory.
    """

    tile_cells: int
    strip_cells: int
    spill_features: bool
    estimated_bytes: int


_MEMORY_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# A number, then an optional unit: 512M, 2G, 1.5GiB, 3gb, 1048576, 1048576B (1024-based units).
_MEMORY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
# Above any machine's memory, and still an exact int: budgets beyond are typos.
_MAX_MEMORY = 1 << 60


def parse_memory(text: str | int) -> int:
    """``"512M"``, ``"2G"``, ``"1.5GiB"`` or a byte count -> bytes (units are powers of 1024).

    Raises:
        ValueError: anything else (empty, a bare unit, inf, nan, a sign), or a size that is not
            from 1 byte to 1 EiB; the message names ``--max-memory``.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value: float = text
    else:
        match = _MEMORY.fullmatch(str(text).strip())
        if match is None:
            raise ValueError(
                f"cannot read memory size {text!r} (--max-memory): write e.g. 512M, 2G, 1.5GiB "
                "or a byte count"
            )
        value = float(match[1]) * _MEMORY_UNITS[match[2].upper()]
    if not 1 <= value <= _MAX_MEMORY:
        raise ValueError(
            f"memory size {text!r} (--max-memory) must be from 1 byte to 1 EiB, e.g. 512M or 2G"
        )
    return int(value)


def format_memory(size: float) -> str:
    """Bytes -> ``"1.50 GiB"``, or ``"512.00 MiB"`` below 1 GiB (where GiB would read 0.00)."""
    if size >= 1 << 30:
        return f"{size / 2**30:.2f} GiB"
    return f"{size / 2**20:.2f} MiB"


def _footprint(
    batch: int, height: int, width: int, base_channels: int, input_copied: bool
) -> tuple[float, int, int]:
    """Bytes per pixel of a forward pass's activations; of the fixed part, the fp32 output and
    any copy of the input; and of the kept relu4_1 features (``8 * base`` fp32 values per cell).

    The caller's input is not counted unless it is copied (``input_copied``, or a size that
    is not a multiple of 8, which is padded): the budget is what the call adds to the process.
    """
    per_px = BYTES_PER_PIXEL * base_channels / 64 * batch
    copied = input_copied or height % DOWNSAMPLING or width % DOWNSAMPLING
    image = 4 * 3 * batch * height * width
    fixed = FIXED_BYTES * (base_channels / 64) ** 2 + image * (2 if copied else 1)
    cells = math.ceil(height / DOWNSAMPLING) * math.ceil(width / DOWNSAMPLING)
    return per_px, int(fixed), 4 * 8 * base_channels * batch * cells


def plan_strips(
    batch: int,
    height: int,
    width: int,
    base_channels: int = 64,
    max_memory: int | None = None,
    tile: int | None = None,
) -> StripPlan:
    """Choose strips (and column tiles if the image is too wide), and memory or a file for the
    features, within ``max_memory``.

    The estimate counts what the call adds to the process: the output, a padded copy of the
    input (sizes not a multiple of 8), the kept relu4_1 features (``8 * base`` fp32 values per
    cell, unless spilled to a file), one strip's activations (:data:`BYTES_PER_PIXEL`) and
    :data:`FIXED_BYTES`; not the model, the interpreter or the caller's input. ``tile`` (px,
    rounded down to a multiple of 8) caps both the strip height and the column width instead.
    """
    budget = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
    cells_h = math.ceil(height / DOWNSAMPLING)
    cells_w = math.ceil(width / DOWNSAMPLING)
    per_px, held, cache = _footprint(batch, height, width, base_channels, input_copied=False)

    def strip_bytes(cols: int, rows: int) -> float:
        window = cells_w if cols >= cells_w else min(cols + 2 * HALO, cells_w)
        return per_px * window * min(rows, cells_h) * DOWNSAMPLING**2

    def plan(cols: int, rows: int, spill: bool) -> StripPlan:
        cols, rows = min(cols, cells_w), min(rows, cells_h)
        kept = held + (0 if spill else cache)
        return StripPlan(cols, rows, spill, int(kept + strip_bytes(cols, rows)))

    if tile is not None:
        if tile < MIN_TILE_CELLS * DOWNSAMPLING:
            raise ValueError(
                f"tile must be at least {MIN_TILE_CELLS * DOWNSAMPLING} px, got {tile}"
            )
        cells = tile // DOWNSAMPLING
        spill = max_memory is not None and held + cache + strip_bytes(cells, cells) > budget
        return plan(cells, cells, spill)
    # Strips no higher than MAX_STRIP_PIXELS even when memory allows more: no slower, less memory.
    fastest = max(MIN_STRIP_CELLS, MAX_STRIP_PIXELS // (batch * cells_w * DOWNSAMPLING**2))
    if held + cache + strip_bytes(cells_w, min(fastest, cells_h)) <= budget:
        return plan(cells_w, fastest, False)
    options = []
    for spill in (False, True):
        room = budget - held - (0 if spill else cache)
        rows = int(room / (per_px * cells_w * DOWNSAMPLING**2))
        if rows >= MIN_STRIP_CELLS:  # full-width strips
            options.append(plan(cells_w, min(rows, fastest), spill))
            continue
        # Too wide: column tiles with halos, square windows.
        side = math.isqrt(max(int(room / per_px), 0)) // DOWNSAMPLING - 2 * HALO
        if side >= MIN_TILE_CELLS:
            options.append(plan(side, side + 2 * HALO, spill))
    if not options:
        least = held + strip_bytes(MIN_TILE_CELLS, MIN_TILE_CELLS + 2 * HALO)
        raise ValueError(
            f"max_memory {format_memory(budget)} (--max-memory) is too small for a "
            f"{width}x{height} image: allow at least {math.ceil(least / 2**20)} MiB"
        )

    def halo_work(option: StripPlan) -> float:
        # Encoded or decoded width per core width: the cost of column tiles.
        return min(option.tile_cells + 2 * HALO, cells_w) / option.tile_cells

    in_memory, spilled = options[0], options[-1]
    return in_memory if halo_work(in_memory) <= SPILL_GAIN * halo_work(spilled) else spilled


def whole_plan(height: int, width: int) -> StripPlan:
    """One piece: the whole image at once."""
    cells_h, cells_w = math.ceil(height / DOWNSAMPLING), math.ceil(width / DOWNSAMPLING)
    return StripPlan(cells_w, cells_h, False, 0)


def plan_for_device(
    device: torch.device,
    batch: int,
    height: int,
    width: int,
    base_channels: int = 64,
    max_memory: int | None = None,
    tile: int | None = None,
) -> StripPlan:
    """The plan that runs fastest on ``device`` within ``max_memory``.

    On the CPU: strips (:func:`plan_strips`), which were as fast as whole images here for less
    memory. On a GPU, whose own convolution algorithms like whole maps: the whole image when its
    estimate fits ``max_memory`` (default: the device's free memory), else strips.
    """
    if device.type == "cpu" or tile is not None:
        return plan_strips(batch, height, width, base_channels, max_memory, tile)
    budget = max_memory if max_memory is not None else _free_memory(device)
    # The whole image moves to the device: its input counts there.
    per_px, held, cache = _footprint(batch, height, width, base_channels, input_copied=True)
    if per_px * height * width + held + cache <= budget:
        return whole_plan(height, width)
    return plan_strips(batch, height, width, base_channels, budget)


def _free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    recommended = getattr(torch.mps, "recommended_max_memory", None)  # torch >= 2.5
    if device.type == "mps" and recommended is not None:
        return recommended() - torch.mps.driver_allocated_memory()
    return DEFAULT_MAX_MEMORY


def spans(cells: int, tile: int) -> Iterator[tuple[int, int]]:
    # Near-equal spans of at most ``tile`` cells: no sliver of a tile at the end.
    count = math.ceil(cells / tile)
    bounds = [round(i * cells / count) for i in range(count + 1)]
    yield from zip(bounds[:-1], bounds[1:], strict=True)


def columns(cells: int, tile: int) -> list[tuple[int, int]]:
    """Column tile cores (cells), widest window (core and halo) first.

    Order matters for memory, not for results (statistics and blending add up in any order):
    later, narrower tiles can reuse the heap blocks the widest one freed, where in order each
    slightly wider tile extended the heap. Peak RSS growth of a 2048 px run in 1 GiB
    square tiles went from 1944 to 1805 MiB.
    """

    def window(span: tuple[int, int]) -> int:
        left, right = grow(span, HALO, cells)
        return right - left

    return sorted(spans(cells, tile), key=window, reverse=True)


def grow(span: tuple[int, int], halo: int, limit: int) -> tuple[int, int]:
    return max(0, span[0] - halo), min(limit, span[1] + halo)


def pixels(span: tuple[int, int], limit: int) -> slice:
    # The last span may end inside a cell: ceil-mode pooling then sees the image's own edge.
    return slice(span[0] * DOWNSAMPLING, min(span[1] * DOWNSAMPLING, limit))
