"""Stylisation in bounded memory: exact global AdaIN statistics, then strips of rows.

AdaIN's content statistics are global per channel (paper eq. 8), so part of an image cannot be
stylised on its own statistics without seams. Pass one streams the image through the encoder in
strips of rows (:mod:`adain.engine.stream`: each layer carries the rows the next strip needs, so no
row is computed twice), accumulates the exact relu4_1 mean and variance over the whole (padded)
image and keeps the features: in memory, or in a temporary file when they do not fit the memory
budget (:mod:`adain.engine.features`), so the image is encoded once at any size. Pass two applies
AdaIN with those global statistics and streams the features through the decoder strip by strip.
The strips stack up to the whole-image output, to float rounding.

Memory grows with a strip's width. An image too wide for the narrowest strip within the budget
(or a ``tile`` narrower than the image) is also split into columns, which do overlap: each is
encoded and decoded with a halo covering the receptive fields of the encoder (~37 px) and decoder
(~30 px), and neighbouring columns are blended with linear feathers inside the exact region, so
the output still matches a whole-image run to float rounding (tests/test_tiling.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from adain.engine.features import FeatureStore
from adain.engine.runner import Precision, Runner, long_lived_allocations
from adain.engine.stream import RowStream, decoder_stream, encoder_stream
from adain.functional import transfer_luminance
from adain.model import (
    DOWNSAMPLING,
    AdaIN,
    PreserveColor,
    _check_image,
    _pad_to_multiple,
    check_alpha,
    check_masks,
    resolve_styles,
)
from adain.style import StyleStats

# Working memory of one strip's forward pass per pixel at base width 64 (bytes). A whole-image
# run grows peak RSS by 850-870 B per pixel (1024 and 1536 px on the CPU): two 64-channel fp32
# maps at full resolution (512 B) plus the fused decoder step's phase map and allocator slack.
# 1504 B was measured for overlapping tiles, whose heap fragments more; with streamed strips it
# leaves room for the interpreter and the model: 4096 px at the default 2 GiB budget peaked at
# 2.65 GiB RSS, all included (python -m benchmarks adain --big 4096). The estimate steers the
# strip size, it is not a hard cap.
BYTES_PER_PIXEL = 1504
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
class TilePlan:
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
    """Choose strips (and column tiles if the image is too wide), and memory or a file for the
    features, within ``max_memory``.

    The estimate counts the input, the output, the kept relu4_1 features (``8 * base`` fp32
    values per cell, unless spilled to a file) and one strip's activations
    (:data:`BYTES_PER_PIXEL`); not the model or the interpreter. ``tile`` (px, rounded down to a
    multiple of 8) caps both the strip height and the column width instead.
    """
    budget = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
    cells_h = math.ceil(height / DOWNSAMPLING)
    cells_w = math.ceil(width / DOWNSAMPLING)
    per_px = BYTES_PER_PIXEL * base_channels / 64 * batch
    images = 2 * 4 * 3 * batch * height * width  # fp32 input and output
    cache = 4 * 8 * base_channels * batch * cells_h * cells_w

    def strip_bytes(cols: int, rows: int) -> float:
        window = cells_w if cols >= cells_w else min(cols + 2 * HALO, cells_w)
        return per_px * window * min(rows, cells_h) * DOWNSAMPLING**2

    def plan(cols: int, rows: int, spill: bool) -> TilePlan:
        cols, rows = min(cols, cells_w), min(rows, cells_h)
        fixed = images + (0 if spill else cache)
        return TilePlan(cols, rows, spill, int(fixed + strip_bytes(cols, rows)))

    if tile is not None:
        if tile < MIN_TILE_CELLS * DOWNSAMPLING:
            raise ValueError(
                f"tile must be at least {MIN_TILE_CELLS * DOWNSAMPLING} px, got {tile}"
            )
        cells = tile // DOWNSAMPLING
        spill = max_memory is not None and images + cache + strip_bytes(cells, cells) > budget
        return plan(cells, cells, spill)
    # Strips no higher than MAX_STRIP_PIXELS even when memory allows more: no slower, less memory.
    fastest = max(MIN_STRIP_CELLS, MAX_STRIP_PIXELS // (batch * cells_w * DOWNSAMPLING**2))
    if images + cache + strip_bytes(cells_w, min(fastest, cells_h)) <= budget:
        return plan(cells_w, fastest, False)
    options = []
    for spill in (False, True):
        room = budget - images - (0 if spill else cache)
        rows = int(room / (per_px * cells_w * DOWNSAMPLING**2))
        if rows >= MIN_STRIP_CELLS:  # full-width strips
            options.append(plan(cells_w, min(rows, fastest), spill))
            continue
        # Too wide: column tiles with halos, square windows.
        side = math.isqrt(max(int(room / per_px), 0)) // DOWNSAMPLING - 2 * HALO
        if side >= MIN_TILE_CELLS:
            options.append(plan(side, side + 2 * HALO, spill))
    if not options:
        least = images + strip_bytes(MIN_TILE_CELLS, MIN_TILE_CELLS + 2 * HALO)
        raise ValueError(
            f"max_memory {budget / 2**30:.2f} GiB is too small for a {width}x{height} image: "
            f"allow at least {math.ceil(least / 2**20)} MiB"
        )

    def halo_work(option: TilePlan) -> float:
        # Encoded or decoded width per core width: the cost of column tiles.
        return min(option.tile_cells + 2 * HALO, cells_w) / option.tile_cells

    in_memory, spilled = options[0], options[-1]
    return in_memory if halo_work(in_memory) <= SPILL_GAIN * halo_work(spilled) else spilled


def _spans(cells: int, tile: int) -> Iterator[tuple[int, int]]:
    # Near-equal spans of at most ``tile`` cells: no sliver of a tile at the end.
    count = math.ceil(cells / tile)
    bounds = [round(i * cells / count) for i in range(count + 1)]
    yield from zip(bounds[:-1], bounds[1:], strict=True)


def _columns(cells: int, tile: int) -> list[tuple[int, int]]:
    """Column tile cores (cells), widest window (core and halo) first.

    Order matters for memory, not for results (statistics and blending add up in any order):
    later, narrower tiles can reuse the heap blocks the widest one freed, where in order each
    slightly wider tile extended the heap. Peak RSS growth of a 2048 px run in 1 GiB
    square tiles went from 1944 to 1805 MiB.
    """

    def window(span: tuple[int, int]) -> int:
        left, right = _grow(span, HALO, cells)
        return right - left

    return sorted(_spans(cells, tile), key=window, reverse=True)


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
    _check_image(image, "style")
    plan = plan_tiles(*image.shape[:1], *image.shape[2:], _width(runner), tile=tile)
    # Unpadded, as AdaIN.style_stats encodes styles.
    (moments,) = _pass_one(runner, image, plan, None, None)
    return StyleStats(*moments.mean_std(runner.eps))


def _width(runner: Runner) -> int:
    return runner.model.encoder.conv1_1.out_channels


def _streamed(runner: Runner, strips: Sequence[tuple[int, int]]) -> bool:
    """Whether pieces go through :mod:`adain.engine.stream` rather than the runner's modules.

    Strips must. A single piece on the CPU does too: the stream folds each ReLU into the next
    padding copy and runs wide convolutions as Winograd F(2, 3) (:mod:`adain.engine.winograd`). A
    compiled runner, or a GPU with its own convolution algorithms, runs the modules.
    """
    return len(strips) > 1 or (not runner.compiled and runner.device.type == "cpu")


def _through(
    stream: RowStream | None, whole: Callable[[Tensor], Tensor], piece: Tensor, last: bool
) -> Tensor | None:
    """``piece`` through ``stream`` (the output rows complete so far), or through ``whole``,
    the runner's modules (one piece, compiled or on a GPU)."""
    return whole(piece) if stream is None else stream.push(piece, last=last)


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
    strips = list(_spans(cells[0], plan.strip_cells))
    for cols in _columns(cells[1], plan.tile_cells):
        grow_c = _grow(cols, HALO, cells[1])
        window = image[:, :, :, _pixels(grow_c, size[1])]
        stream = encoder_stream(runner) if _streamed(runner, strips) else None
        top = 0
        for index, strip in enumerate(strips):
            rows = window[:, :, _pixels(strip, size[0])]
            feats = _through(stream, runner.encode, rows, last=index == len(strips) - 1)
            if feats is None:
                continue
            span = (top, top + feats.shape[2])
            top = span[1]
            core = feats[:, :, :, cols[0] - grow_c[0] : cols[1] - grow_c[0]]
            for k, moment in enumerate(moments):
                weight = None if share is None else share[:, k : k + 1, slice(*span), slice(*cols)]
                moment.add(core, weight)
            if store is not None:
                store.put(span, cols, core)
        assert top == cells[0], f"streamed {top} of {cells[0]} feature rows"
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
    """Stylise ``content`` in strips (and, if very wide, columns) that fit ``max_memory``.

    Args:
        runner: the model with its speed paths (:class:`adain.engine.runner.Runner`).
        content: ``(B, 3, H, W)`` RGB in [0, 1], any size >= 16 px; may stay on the CPU while
            ``runner`` runs on a GPU (strips move one at a time).
        styles: one :class:`StyleStats` per style.
        alpha, weights: as in :meth:`AdaIN.transfer`.
        masks: ``(B or 1, K, H', W')`` soft masks, one channel per style (resized to the content).
        tile: cap in px (>= 64, rounded down to a multiple of 8) on the strip height and
            column width; ``None`` picks them from ``max_memory``.
        max_memory: budget in bytes for the image, output, features and one strip (default
            :data:`DEFAULT_MAX_MEMORY`).
        plan: an explicit :class:`TilePlan` (overrides ``tile`` and ``max_memory``).

    Returns:
        ``(B, 3, H, W)`` stylised image on ``content``'s device, unclamped.

    Note:
        Statistics over the whole image, not per piece, keep this the paper's method: the output
        matches a whole-image run (``AdaIN.forward``) to float rounding.
    """
    _check_image(content, "content")  # as AdaIN.forward: one clear error, not a layer's
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
        pieces = _pass_two(runner, store, plan, content_stats, styles, alpha, share)
        if plan.tile_cells >= cells[1] and plan.strip_cells >= cells[0]:  # the whole image
            ((_, _, image),) = pieces
            return image[:, :, :height, :width].to(content.device)
        with long_lived_allocations():
            out = content.new_zeros(batch, 3, height, width)
        for top, cols, image in pieces:
            _blend(out, image, top, cols, cells[1])
    return out


def _pass_two(
    runner: Runner,
    store: FeatureStore,
    plan: TilePlan,
    content_stats: Sequence[tuple[Tensor, Tensor] | None],
    styles: Sequence[StyleStats],
    alpha: float,
    share: Tensor | None,
) -> Iterator[tuple[int, tuple[int, int], Tensor]]:
    """Per decoded piece: its first pixel row, its column tile's core (cells) and its rows of
    the tile's window, from ``cols[0] - halo`` cells on (the halo clipped at the image's edges)."""
    cells = store.shape[2], store.shape[3]
    strips = list(_spans(cells[0], plan.strip_cells))
    for cols in _columns(cells[1], plan.tile_cells):
        grow_c = _grow(cols, HALO, cells[1])
        stream = decoder_stream(runner) if _streamed(runner, strips) else None
        top = 0
        for index, rows in enumerate(strips):
            feats = store.get(rows, grow_c).to(runner.device)
            piece_share = None
            if share is not None:
                piece_share = share[:, :, slice(*rows), slice(*grow_c)].to(runner.device)
            target = _transfer(feats, content_stats, styles, alpha, piece_share)
            del feats
            image = _through(stream, runner.decode, target, last=index == len(strips) - 1)
            if image is None:
                continue
            yield top, cols, image
            top += image.shape[2]


def _blend(out: Tensor, image: Tensor, top: int, cols: tuple[int, int], cells_w: int) -> None:
    """Add rows ``top...`` of a column tile's decoded window (halo included, as
    :func:`_pass_two` yields it) into ``out`` with feathered weights across columns."""
    height, width = out.shape[2:]
    weight = _feather(cols, cells_w, FEATHER, image.device)
    # Pixel columns of this tile's contribution, in image and in window coordinates.
    left = cols[0] * DOWNSAMPLING - (FEATHER if cols[0] > 0 else 0)
    right = min(left + weight.numel(), width)
    bottom = min(top + image.shape[2], height)
    if bottom <= top or right <= left:
        return
    offset = left - _grow(cols, HALO, cells_w)[0] * DOWNSAMPLING
    piece = image[:, :, : bottom - top, offset : offset + right - left]
    out[:, :, top:bottom, left:right] += (piece * weight[: right - left]).to(out.device)


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

    Style images are encoded in strips too (exact statistics at any size); ``preserve_color``
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
    """Whether ``content`` runs in pieces by default: a whole-image run would exceed
    :data:`DEFAULT_MAX_MEMORY`, or the image is above :data:`MAX_STRIP_PIXELS`, where strips
    ran as fast for less memory."""
    batch, _, height, width = content.shape
    plan = plan_tiles(batch, height, width, base_channels)
    cells_h, cells_w = math.ceil(height / DOWNSAMPLING), math.ceil(width / DOWNSAMPLING)
    return plan.tile_cells < cells_w or plan.strip_cells < cells_h
