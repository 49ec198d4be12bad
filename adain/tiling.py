"""Tiled stylisation in bounded memory: exact global AdaIN statistics, then overlapping tiles.

AdaIN's content statistics are global per channel (paper eq. 8), so a tile cannot be stylised on
its own statistics without seams. Pass one streams tiles through the encoder and accumulates the
exact relu4_1 mean and variance over the whole (padded) image, each feature position once, and
keeps the features: in memory, or in a temporary file when they do not fit the memory budget
(:mod:`adain.feature_store`), so the image is encoded once at any size. Pass two applies AdaIN
with those global statistics tile by tile, decodes each tile with a halo and blends the tiles
with linear feathers.

With the default halos, which cover the receptive fields of the encoder (~37 px) and decoder
(~30 px), every output pixel sees the same inputs as in a whole-image run, so tiled and whole
outputs agree to float rounding (tests/test_tiling.py); the feather only hides seams when a
smaller halo is forced.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from adain.feature_store import FeatureStore
from adain.functional import transfer_luminance
from adain.model import (
    DOWNSAMPLING,
    AdaIN,
    PreserveColor,
    _pad_to_multiple,
    check_alpha,
    check_masks,
    resolve_styles,
)
from adain.runtime import Precision, Runner, long_lived_allocations
from adain.style import StyleStats

# Working memory of one tile's forward pass per window pixel at base width 64 (bytes). A
# whole-image run grows peak RSS by 850-870 B per pixel (1024 and 1536 px on the CPU): two
# 64-channel fp32 maps at full resolution (512 B) plus the fused decoder step's phase map and
# allocator slack. Tiled runs grow it more, as the heap fragments across tiles: ~1850 B per
# window pixel at 4096 px with 920 px windows. 1504 B kept the default 2 GiB budget at 2.79 GiB
# peak RSS for 4096 px (python -m benchmarks adain --big 4096) while a 2048 px image still runs
# as 2x2 tiles: the estimate steers the tile size, it is not a hard cap.
BYTES_PER_PIXEL = 1504
# Default budget for the stylisation's own memory (image, output, features, tiles).
DEFAULT_MAX_MEMORY = 2 << 30
# Halo in relu4_1 cells (8 px) around a tile's core, in both passes: it covers the receptive
# field of the encoder (~37 px) in pass one and of the decoder (~30 px) in pass two.
HALO = 6
# Feather width in px on each side of a tile boundary; <= 8 * HALO - 30 px keeps the blended
# pixels inside the exact region.
FEATHER = 16
# Smallest tile core (cells): below this the halos cost more than the tile itself.
MIN_TILE_CELLS = 8


# A spilled feature map is chosen over an in-memory one only when its larger tiles cut the
# halo work by more than this factor: the file's I/O is cheap but not free.
SPILL_GAIN = 1.1


@dataclass(frozen=True)
class TilePlan:
    """How an image is processed: tile core size in relu4_1 cells and where features are kept.

    ``tile_cells`` covering the whole feature map means one tile (a whole-image run);
    ``spill_features`` keeps pass one's features in a temporary file instead of memory.
    """

    tile_cells: int
    spill_features: bool
    estimated_bytes: int


def parse_memory(text: str | int) -> int:
    """``"3G"``, ``"512M"``, ``"2GiB"`` or a byte count -> bytes."""
    if isinstance(text, int):
        return text
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    clean = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (clean[:-1], clean[-1]) if clean[-1:] in units else (clean, "")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise ValueError(f"cannot read memory size {text!r}: write e.g. 3G or 512M") from None
    if value <= 0:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return int(value)


def plan_tiles(
    batch: int,
    height: int,
    width: int,
    base_channels: int = 64,
    max_memory: int | None = None,
    tile: int | None = None,
) -> TilePlan:
    """Choose the largest tile, and memory or a file for the features, within ``max_memory``.

    The estimate counts the input, the output, the kept relu4_1 features (``8 * base`` fp32
    values per cell, unless spilled to a file) and one tile's activations
    (:data:`BYTES_PER_PIXEL`); not the model or the interpreter. ``tile`` (px, rounded down to a
    multiple of 8) fixes the tile size instead.
    """
    budget = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
    cells_h = math.ceil(height / DOWNSAMPLING)
    cells_w = math.ceil(width / DOWNSAMPLING)
    whole = max(cells_h, cells_w)
    per_px = BYTES_PER_PIXEL * base_channels / 64 * batch
    images = 2 * 4 * 3 * batch * height * width  # fp32 input and output
    cache = 4 * 8 * base_channels * batch * cells_h * cells_w

    def tile_bytes(cells: int) -> float:
        side_h = min(cells + 2 * HALO, cells_h) * DOWNSAMPLING
        side_w = min(cells + 2 * HALO, cells_w) * DOWNSAMPLING
        return per_px * side_h * side_w

    def halo_work(cells: int) -> float:
        # Encoded or decoded area per core area: the cost of small tiles.
        return (
            (min(cells + 2 * HALO, cells_h) * min(cells + 2 * HALO, cells_w))
            / min(cells, cells_h)
            / min(cells, cells_w)
        )

    if tile is not None:
        if tile < MIN_TILE_CELLS * DOWNSAMPLING:
            raise ValueError(
                f"tile must be at least {MIN_TILE_CELLS * DOWNSAMPLING} px, got {tile}"
            )
        cells = min(tile // DOWNSAMPLING, whole)
        spill = max_memory is not None and images + cache + tile_bytes(cells) > budget
        return TilePlan(cells, spill, int(images + (not spill) * cache + tile_bytes(cells)))
    if images + cache + tile_bytes(whole) <= budget:
        return TilePlan(whole, False, int(images + cache + tile_bytes(whole)))
    options = []
    for spill in (False, True):
        fixed = images + (0 if spill else cache)
        side = math.isqrt(max(int((budget - fixed) / per_px), 0)) // DOWNSAMPLING - 2 * HALO
        if side >= MIN_TILE_CELLS:
            cells = min(side, whole)
            options.append(TilePlan(cells, spill, int(fixed + tile_bytes(cells))))
    if not options:
        least = images + tile_bytes(MIN_TILE_CELLS)
        raise ValueError(
            f"max_memory {budget / 2**30:.2f} GiB is too small for a {width}x{height} image: "
            f"allow at least {math.ceil(least / 2**20)} MiB"
        )
    in_memory, spilled = options[0], options[-1]
    if halo_work(in_memory.tile_cells) <= SPILL_GAIN * halo_work(spilled.tile_cells):
        return in_memory
    return spilled


def _spans(cells: int, tile: int) -> Iterator[tuple[int, int]]:
    # Near-equal spans of at most ``tile`` cells: no sliver of a tile at the end.
    count = math.ceil(cells / tile)
    bounds = [round(i * cells / count) for i in range(count + 1)]
    yield from zip(bounds[:-1], bounds[1:], strict=True)


def _tiles(shape: tuple[int, int], tile: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Tile cores (rows, cols in cells), largest window (core and halo) first.

    Order matters for memory, not for results (statistics and blending add up in any order):
    later, smaller tiles can reuse the heap blocks the largest one freed, where in raster order
    each slightly larger tile extended the heap. Peak RSS growth of a 2048 px run in 1 GiB
    tiles went from 1944 to 1805 MiB.
    """
    tiles = [(rows, cols) for rows in _spans(shape[0], tile) for cols in _spans(shape[1], tile)]

    def window(tile: tuple[tuple[int, int], tuple[int, int]]) -> int:
        top, bottom = _grow(tile[0], HALO, shape[0])
        left, right = _grow(tile[1], HALO, shape[1])
        return (bottom - top) * (right - left)

    return sorted(tiles, key=window, reverse=True)


def _grow(span: tuple[int, int], halo: int, limit: int) -> tuple[int, int]:
    return max(0, span[0] - halo), min(limit, span[1] + halo)


def _pixels(span: tuple[int, int], limit: int) -> slice:
    # The last span may end inside a cell: ceil-mode pooling then sees the image's own edge.
    return slice(span[0] * DOWNSAMPLING, min(span[1] * DOWNSAMPLING, limit))


class _Moments:
    """Running weighted mean and M2 per (batch, channel), combined exactly (Chan et al. 1979)."""

    def __init__(self) -> None:
        self.v1: Tensor | float = 0.0  # sum of weights
        self.v2: Tensor | float = 0.0  # sum of squared weights
        self.mean: Tensor | float = 0.0
        self.m2: Tensor | float = 0.0

    def add(self, feats: Tensor, weight: Tensor | None) -> None:
        """Add ``(B, C, h, w)`` features, optionally weighted by ``(B or 1, 1, h, w)``."""
        if weight is None:
            n = float(feats.shape[2] * feats.shape[3])
            var, mean = torch.var_mean(feats.flatten(2), dim=2, correction=0)
            v1 = v2 = torch.full_like(mean[:, :1], n, dtype=torch.float64).cpu()
            mean, m2 = mean.double().cpu(), var.double().cpu() * n
        else:
            weight = weight.expand(feats.shape[0], 1, *feats.shape[2:])
            v1 = weight.sum(dim=(2, 3)).double().cpu()  # (B, 1)
            v2 = weight.square().sum(dim=(2, 3)).double().cpu()
            safe = v1.clamp_min(1e-12).to(feats.device, feats.dtype)
            mean = (feats * weight).sum(dim=(2, 3)) / safe
            m2 = ((feats - mean[..., None, None]).square() * weight).sum(dim=(2, 3))
            mean, m2 = mean.double().cpu(), m2.double().cpu()
        total = self.v1 + v1
        safe_total = total.clamp_min(1e-12) if isinstance(total, Tensor) else total
        delta = mean - self.mean
        self.mean = self.mean + delta * (v1 / safe_total)
        self.m2 = self.m2 + m2 + delta.square() * (self.v1 * v1 / safe_total)
        self.v1, self.v2 = total, self.v2 + v2

    def mean_std(self, eps: float) -> tuple[Tensor, Tensor]:
        """``(B, C, 1, 1)`` mean and std with the reliability-weights correction, as
        :func:`adain.functional.masked_mean_std` (``n - 1`` without weights)."""
        assert isinstance(self.v1, Tensor) and isinstance(self.m2, Tensor)
        denom = (self.v1 - self.v2 / self.v1.clamp_min(1e-12)).clamp_min(1e-12)
        var = self.m2 / denom
        std = (var + eps).sqrt()
        return self.mean.float()[..., None, None], std.float()[..., None, None]


def _feather(span: tuple[int, int], limit: int, feather: int, device: torch.device) -> Tensor:
    """Weights along one axis for the pixels a tile contributes; neighbours' weights sum to 1."""
    start, stop = span[0] * DOWNSAMPLING, span[1] * DOWNSAMPLING
    lo = start - feather if span[0] > 0 else start
    hi = stop + feather if span[1] < limit else stop
    pos = torch.arange(lo, hi, device=device, dtype=torch.float32) + 0.5
    weight = torch.ones_like(pos)
    if feather and span[0] > 0:
        weight = torch.minimum(weight, (pos - lo) / (2 * feather))
    if feather and span[1] < limit:
        weight = torch.minimum(weight, (hi - pos) / (2 * feather))
    return weight


def _transfer(
    feats: Tensor,
    content: Sequence[tuple[Tensor, Tensor] | None],
    styles: Sequence[StyleStats],
    alpha: float,
    share: Tensor | None,
) -> Tensor:
    """AdaIN (paper eq. 8) with given global content statistics; ``model.transfer``'s maths."""
    if share is None:
        assert content[0] is not None
        (mean, std), style = content[0], styles[0]
        target = (feats - mean) / std * style.std + style.mean
    else:
        target = feats * (1.0 - share.sum(dim=1, keepdim=True))
        for k, style in enumerate(styles):
            stats = content[k]
            if stats is None:
                continue
            mean, std = stats
            target = target + share[:, k : k + 1] * ((feats - mean) / std * style.std + style.mean)
    if alpha == 1.0:
        return target
    return alpha * target + (1.0 - alpha) * feats


def image_stats(runner: Runner, image: Tensor, tile: int | None = None) -> StyleStats:
    """relu4_1 statistics of a ``(B, 3, H, W)`` image (e.g. a huge style) in bounded memory."""
    plan = plan_tiles(*image.shape[:1], *image.shape[2:], _width(runner), tile=tile)
    # Unpadded, as AdaIN.style_stats encodes styles.
    (moments,) = _pass_one(runner, image, plan, None, None)
    return StyleStats(*moments.mean_std(runner.eps))


def _width(runner: Runner) -> int:
    return runner.model.encoder.conv1_1.out_channels


def _pass_one(
    runner: Runner,
    image: Tensor,
    plan: TilePlan,
    share: Tensor | None,
    store: FeatureStore | None,
) -> list[_Moments]:
    """Global statistics of each region (one without ``share``); features go to ``store``."""
    size = image.shape[2:]
    cells = (math.ceil(size[0] / DOWNSAMPLING), math.ceil(size[1] / DOWNSAMPLING))
    regions = 1 if share is None else share.shape[1]
    moments = [_Moments() for _ in range(regions)]
    for rows, cols in _tiles(cells, plan.tile_cells):
        grow_r, grow_c = _grow(rows, HALO, cells[0]), _grow(cols, HALO, cells[1])
        feats = runner.encode(image[:, :, _pixels(grow_r, size[0]), _pixels(grow_c, size[1])])
        core = feats[
            :,
            :,
            rows[0] - grow_r[0] : rows[1] - grow_r[0],
            cols[0] - grow_c[0] : cols[1] - grow_c[0],
        ]
        for k, moment in enumerate(moments):
            weight = None if share is None else share[:, k : k + 1, slice(*rows), slice(*cols)]
            moment.add(core, weight)
        if store is not None:
            store.put(rows, cols, core)
    return moments


def stylize_tiled(
    runner: Runner,
    content: Tensor,
    styles: Sequence[StyleStats],
    alpha: float = 1.0,
    *,
    weights: Sequence[float] | None = None,
    masks: Tensor | None = None,
    tile: int | None = None,
    max_memory: int | None = None,
    plan: TilePlan | None = None,
) -> Tensor:
    """Stylise ``content`` in tiles whose memory fits ``max_memory`` (one tile when it fits).

    Args:
        runner: the model with its speed paths (:class:`adain.runtime.Runner`).
        content: ``(B, 3, H, W)`` RGB in [0, 1], any size >= 16 px; may stay on the CPU while
            ``runner`` runs on a GPU (tiles move one at a time).
        styles: one :class:`StyleStats` per style.
        alpha, weights: as in :meth:`AdaIN.transfer`.
        masks: ``(B or 1, K, H', W')`` soft masks, one channel per style (resized to the content).
        tile: tile side in px (multiple of 8, >= 64); ``None`` picks it from ``max_memory``.
        max_memory: budget in bytes for the image, output, features and one tile (default
            :data:`DEFAULT_MAX_MEMORY`).
        plan: an explicit :class:`TilePlan` (overrides ``tile`` and ``max_memory``).

    Returns:
        ``(B, 3, H, W)`` stylised image on ``content``'s device, unclamped.

    Note:
        Statistics over the whole image, not per tile, keep this the paper's method: the output
        matches a whole-image run (``AdaIN.forward``) to float rounding.
    """
    alpha = check_alpha(alpha)
    if not styles:
        raise ValueError("give at least one style")
    batch, _, height, width = content.shape
    padded = _pad_to_multiple(content, DOWNSAMPLING)
    cells = (padded.shape[2] // DOWNSAMPLING, padded.shape[3] // DOWNSAMPLING)
    if plan is None:
        plan = plan_tiles(batch, height, width, _width(runner), max_memory, tile)
    styles = [s.to(runner.device, torch.float32) for s in styles]
    share = None
    if masks is not None:
        if weights is not None:
            raise ValueError("give either weights (interpolation) or masks (regions), not both")
        check_masks(masks, len(styles))
        masks = AdaIN._resize_masks(masks.to(content.device), (height, width), cells)
        share = masks / masks.sum(dim=1, keepdim=True).clamp_min(1.0)
    elif len(styles) > 1 or weights is not None:
        styles = [StyleStats.mix(styles, weights or [1.0] * len(styles))]

    shape = (batch, 8 * _width(runner), cells[0], cells[1])  # relu4_1: 8x the base width
    with FeatureStore(shape, runner.device, spill=plan.spill_features) as store:
        moments = _pass_one(runner, padded, plan, share, store)
        # Regions no mask covers anywhere have no statistics (and no effect).
        content_stats: list[tuple[Tensor, Tensor] | None] = []
        for k, moment in enumerate(moments):
            if share is not None and not share[:, k].any():
                content_stats.append(None)
                continue
            mean, std = moment.mean_std(runner.eps)
            content_stats.append((mean.to(runner.device), std.to(runner.device)))
        tiles = _pass_two(runner, store, plan, content_stats, styles, alpha, share)
        if plan.tile_cells >= max(cells):  # one tile: the whole-image run
            ((_, _, image),) = tiles
            return image[:, :, :height, :width].to(content.device)
        with long_lived_allocations():
            out = content.new_zeros(batch, 3, height, width)
        for rows, cols, image in tiles:
            _blend(out, image, rows, cols, cells)
    return out


def _pass_two(
    runner: Runner,
    store: FeatureStore,
    plan: TilePlan,
    content_stats: Sequence[tuple[Tensor, Tensor] | None],
    styles: Sequence[StyleStats],
    alpha: float,
    share: Tensor | None,
) -> Iterator[tuple[tuple[int, int], tuple[int, int], Tensor]]:
    """Per tile: its core rows and columns (cells) and its decoded image from
    ``(rows[0] - halo, cols[0] - halo)`` cells on (the halo clipped at the image's edges)."""
    cells = store.shape[2], store.shape[3]
    for rows, cols in _tiles(cells, plan.tile_cells):
        grow_r, grow_c = _grow(rows, HALO, cells[0]), _grow(cols, HALO, cells[1])
        feats = store.get(grow_r, grow_c).to(runner.device)
        tile_share = None
        if share is not None:
            tile_share = share[:, :, slice(*grow_r), slice(*grow_c)].to(runner.device)
        target = _transfer(feats, content_stats, styles, alpha, tile_share)
        yield rows, cols, runner.decode(target)


def _blend(
    out: Tensor,
    image: Tensor,
    rows: tuple[int, int],
    cols: tuple[int, int],
    cells: tuple[int, int],
) -> None:
    """Add a tile's decoded image (halo included, as :func:`_pass_two` yields it) into ``out``
    with feathered weights."""
    height, width = out.shape[2:]
    w_r = _feather(rows, cells[0], FEATHER, image.device)
    w_c = _feather(cols, cells[1], FEATHER, image.device)
    # Pixel window of this tile's contribution, in image and in tile coordinates.
    top = rows[0] * DOWNSAMPLING - (FEATHER if rows[0] > 0 else 0)
    left = cols[0] * DOWNSAMPLING - (FEATHER if cols[0] > 0 else 0)
    bottom, right = min(top + w_r.numel(), height), min(left + w_c.numel(), width)
    if bottom <= top or right <= left:
        return
    grow_r, grow_c = _grow(rows, HALO, cells[0]), _grow(cols, HALO, cells[1])
    off_r, off_c = top - grow_r[0] * DOWNSAMPLING, left - grow_c[0] * DOWNSAMPLING
    piece = image[:, :, off_r : off_r + bottom - top, off_c : off_c + right - left]
    weight = w_r[: bottom - top, None] * w_c[None, : right - left]
    out[:, :, top:bottom, left:right] += (piece * weight).to(out.device)


def stylize_tensor(
    model: AdaIN,
    content: Tensor,
    styles: Sequence[Tensor | StyleStats],
    alpha: float = 1.0,
    *,
    weights: Sequence[float] | None = None,
    masks: Tensor | None = None,
    preserve_color: PreserveColor | None = None,
    tile: int | None = None,
    max_memory: int | str | None = None,
    precision: Precision = "fp32",
    compile: bool = False,
) -> Tensor:
    """:meth:`AdaIN.forward` through the speed paths and in bounded memory.

    Style images are encoded in tiles too (exact statistics at any size); ``preserve_color``
    works as in :meth:`AdaIN.forward`. Returns ``(B, 3, H, W)`` unclamped, on ``content``'s
    device, running on the model's device.
    """
    device = next(model.parameters()).device
    runner = Runner(model, device, precision=precision, compile=compile)
    stats = resolve_styles(styles, content, preserve_color, lambda s: image_stats(runner, s))
    budget = None if max_memory is None else parse_memory(max_memory)
    out = stylize_tiled(
        runner, content, stats, alpha, weights=weights, masks=masks, tile=tile, max_memory=budget
    )
    if preserve_color == "luminance":
        out = transfer_luminance(out, content)
    return out


def needs_tiles(content: Tensor, base_channels: int = 64) -> bool:
    """Whether a whole-image run of ``content`` would exceed :data:`DEFAULT_MAX_MEMORY`."""
    batch, _, height, width = content.shape
    plan = plan_tiles(batch, height, width, base_channels)
    return plan.tile_cells < math.ceil(max(height, width) / DOWNSAMPLING)
