"""Stylisation in bounded memory: exact global AdaIN statistics, then strips of rows.

AdaIN's content statistics are global per channel (paper eq. 8), so part of an image cannot be
stylised on its own statistics without seams. Pass one streams the image through the encoder in
strips of rows (:mod:`adain.engine.stream`: each layer carries the rows the next strip needs, so
no row is computed twice), accumulates the exact relu4_1 mean and variance over the whole
(padded) image (:mod:`adain.engine.moments`) and keeps the features: in memory, or in a
temporary file when they do not fit the memory budget (:mod:`adain.engine.features`), so the
image is encoded once at any size. Pass two applies AdaIN with those global statistics
(:func:`adain.functional.adain_transfer`) and streams the features through the decoder strip by
strip. The strips stack up to the whole-image output, to float rounding. EFDM
(``method="efdm"``) ranks each channel over the whole map instead: pass one's kept features are
sorted in its aftermath (:mod:`adain.engine.matching`), and pass two decodes the result.

An image too wide for full-width strips within the budget is also split into overlapping column
tiles (:mod:`adain.engine.plan`), blended with linear feathers inside the region where each is
exact, so the output still matches a whole-image run to float rounding (tests/test_strips.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from adain.architecture import DOWNSAMPLING
from adain.efdm import Transfer, efdm_transfer
from adain.engine.features import FeatureStore
from adain.engine.heap import long_lived_allocations
from adain.engine.matching import MatchedFeatures, match_in_place, sort_channels
from adain.engine.moments import Moments
from adain.engine.plan import FEATHER, HALO, StripPlan, columns, grow, pixels, spans
from adain.engine.runner import Runner
from adain.engine.stream import RowStream
from adain.functional import Stats, adain_transfer, pad_to_multiple

# What pass two does to each strip of features before decoding it: (features, rows, columns).
Transform = Callable[[Tensor, tuple[int, int], tuple[int, int]], Tensor]
# Replaces the content's global statistics before the transfer: (region, mean, std) -> (mean,
# std), each (B, C, 1, 1); e.g. smoothed across video frames (adain.video.temporal).
StatsHook = Callable[[int, Tensor, Tensor], Stats]


def _cells(height: int, width: int) -> tuple[int, int]:
    return math.ceil(height / DOWNSAMPLING), math.ceil(width / DOWNSAMPLING)


def _one_piece(plan: StripPlan, cells: tuple[int, int]) -> bool:
    return plan.strip_cells >= cells[0] and plan.tile_cells >= cells[1]


def _region_moments(
    feats: Tensor, share: Tensor | None, moments: list[Moments], cols: tuple[int, int]
) -> None:
    for k, moment in enumerate(moments):
        moment.add(feats, None if share is None else share[:, k : k + 1, :, slice(*cols)])


def _content_stats(
    moments: Sequence[Moments], eps: float, device: torch.device, hook: StatsHook | None = None
) -> list[Stats | None]:
    # Regions no mask covers anywhere have no statistics (and no effect).
    stats: list[Stats | None] = []
    for region, moment in enumerate(moments):
        if moment.empty:
            stats.append(None)
            continue
        mean, std = moment.mean_std(eps)
        mean, std = mean.to(device), std.to(device)
        stats.append((mean, std) if hook is None else hook(region, mean, std))
    return stats


def transfer(
    feats: Tensor,
    styles: Sequence[Stats],
    alpha: float,
    share: Tensor | None,
    eps: float,
    content_stats: StatsHook | None = None,
    method: Transfer = "adain",
) -> Tensor:
    """AdaIN of a whole feature map ``(B, C, h, w)``: its statistics (per region with
    ``share``, replaced by ``content_stats`` when given), then
    :func:`adain.functional.adain_transfer`; or, with ``method="efdm"`` and sorted style
    values as ``styles``, :func:`adain.efdm.efdm_transfer`."""
    if method == "efdm":
        _check_no_hook(content_stats)
        return efdm_transfer(feats, styles, alpha, share)
    moments = [Moments() for _ in range(1 if share is None else share.shape[1])]
    _region_moments(feats, share, moments, (0, feats.shape[3]))
    stats = _content_stats(moments, eps, feats.device, content_stats)
    return adain_transfer(feats, stats, styles, alpha, share)


def style_stats(runner: Runner, image: Tensor, plan: StripPlan) -> Stats:
    """relu4_1 ``(mean, std)`` of a ``(B, 3, H, W)`` image (not padded), each ``(B, C, 1, 1)``,
    in bounded memory at any size."""
    with runner.session():
        (moments,) = _pass_one(runner, image, plan, None, None)
    mean, std = moments.mean_std(runner.eps)
    return mean.to(runner.device), std.to(runner.device)


def style_distribution(runner: Runner, image: Tensor, plan: StripPlan) -> tuple[Stats, Tensor]:
    """:func:`style_stats` and the relu4_1 values of each channel sorted, ``(B, C, h*w)``: what
    EFDM needs of a style (:mod:`adain.efdm`). The features are kept in memory."""
    feats = encode(runner, image, plan)
    moments = Moments()
    moments.add(feats)
    mean, std = moments.mean_std(runner.eps)
    return (mean.to(runner.device), std.to(runner.device)), sort_channels(feats)


def encode(runner: Runner, image: Tensor, plan: StripPlan) -> Tensor:
    """relu4_1 features ``(B, C, ceil(H/8), ceil(W/8))`` of a ``(B, 3, H, W)`` image, computed in
    strips; the features themselves are kept in memory whatever the plan."""
    cells = _cells(*image.shape[2:])
    if _one_piece(plan, cells) and not runner.streams(1):
        return runner.encode(image)
    shape = (image.shape[0], 8 * runner.base_channels, *cells)
    with runner.session(), FeatureStore(shape, runner.device) as store:
        _pass_one(runner, image, plan, None, store)
        return store.take()


def decode(runner: Runner, feats: Tensor, plan: StripPlan) -> Tensor:
    """Image ``(B, 3, 8h, 8w)`` from relu4_1 features ``(B, C, h, w)``, decoded in strips."""
    cells = (feats.shape[2], feats.shape[3])
    if _one_piece(plan, cells) and not runner.streams(1):
        return runner.decode(feats)
    size = (cells[0] * DOWNSAMPLING, cells[1] * DOWNSAMPLING)
    with runner.session(), FeatureStore.wrap(feats) as store:
        return _assemble(runner, store, plan, lambda piece, rows, cols: piece, feats, size)


def run(
    runner: Runner,
    content: Tensor,
    styles: Sequence[Stats],
    alpha: float,
    share: Tensor | None,
    plan: StripPlan,
    *,
    content_stats: StatsHook | None = None,
    method: Transfer = "adain",
) -> Tensor:
    """Encode, transfer and decode ``content`` in strips (and, if very wide, columns).

    Args:
        runner: the model's encoder and decoder on the device they run on.
        content: ``(B, 3, H, W)`` RGB in [0, 1]; may stay on the CPU while ``runner`` runs on a
            GPU (strips move one at a time).
        styles: ``(mean, std)`` per region, or one (mixed beforehand); with
            ``method="efdm"``, the sorted style values ``(B or 1, C, M)`` instead.
        alpha: content-style trade-off (paper eq. 14).
        share: ``(B or 1, K, ceil(H/8), ceil(W/8))`` share of each region at each feature cell
            (:func:`adain.functional.region_shares`), or ``None``.
        plan: the strips and columns (:func:`adain.engine.plan.plan_strips`).
        content_stats: replaces each region's global content statistics before the transfer
            (:data:`StatsHook`), or ``None``.
        method: ``"adain"``, or ``"efdm"``: pass one's kept features are sorted over the whole
            map (:mod:`adain.engine.matching`) before pass two decodes them.

    Returns:
        ``(B, 3, H, W)`` stylised image on ``content``'s device, unclamped.

    Note:
        Statistics over the whole image, not per piece, keep this the paper's method: the
        output matches a whole-image run to float rounding.
    """
    batch, _, height, width = content.shape
    padded = pad_to_multiple(content, DOWNSAMPLING)
    cells = _cells(height, width)
    if share is not None:
        share = share.to(runner.device)
    if _one_piece(plan, cells) and not runner.streams(1):  # the plain, differentiable path
        feats = runner.encode(padded)
        target = transfer(feats, styles, alpha, share, runner.eps, content_stats, method)
        return runner.decode(target)[:, :, :height, :width].to(content.device)
    shape = (batch, 8 * runner.base_channels, *cells)
    spill = plan.spill_features
    with runner.session(), FeatureStore(shape, runner.device, spill=spill) as store:
        moments = _pass_one(runner, padded, plan, share, store)
        if method == "efdm":
            return _efdm_pass_two(runner, store, styles, alpha, share, plan, content, content_stats)
        stats = _content_stats(moments, runner.eps, runner.device, content_stats)

        def piece(feats: Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
            cut = None if share is None else share[:, :, slice(*rows), slice(*cols)]
            return adain_transfer(feats, stats, styles, alpha, cut)

        return _assemble(runner, store, plan, piece, content, (height, width))


def _efdm_pass_two(
    runner: Runner,
    store: FeatureStore,
    quantiles: Sequence[Tensor],
    alpha: float,
    share: Tensor | None,
    plan: StripPlan,
    content: Tensor,
    content_stats: StatsHook | None,
) -> Tensor:
    """EFDM targets of the whole kept map (in place, or into per-group files when spilled),
    then decoded strip by strip."""
    _check_no_hook(content_stats)
    size = (content.shape[2], content.shape[3])
    keep = _keep_features
    if not plan.spill_features:
        match_in_place(store.get((0, store.shape[2]), (0, store.shape[3])), quantiles, alpha, share)
        return _assemble(runner, store, plan, keep, content, size)
    with MatchedFeatures(store, quantiles, alpha, share, runner.device) as targets:
        store.close()  # the content features are spent: free their file before decoding
        return _assemble(runner, targets, plan, keep, content, size)  # type: ignore[arg-type]


def _keep_features(feats: Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
    return feats


def _check_no_hook(content_stats: StatsHook | None) -> None:
    if content_stats is not None:
        raise ValueError(
            "content_stats replaces AdaIN's mean and std; transfer='efdm' matches whole "
            "distributions and has none to replace"
        )


def _through(
    stream: RowStream | None, whole: Callable[[Tensor], Tensor], piece: Tensor, last: bool
) -> Tensor | None:
    """``piece`` through ``stream`` (the output rows complete so far), or through ``whole``
    (one piece, compiled or on a GPU)."""
    return whole(piece) if stream is None else stream.push(piece, last=last)


def _pass_one(
    runner: Runner,
    image: Tensor,
    plan: StripPlan,
    share: Tensor | None,
    store: FeatureStore | None,
) -> list[Moments]:
    """Global statistics of each region (one without ``share``); features go to ``store``."""
    size = image.shape[2:]
    cells = _cells(*size)
    moments = [Moments() for _ in range(1 if share is None else share.shape[1])]
    strips = list(spans(cells[0], plan.strip_cells))
    for cols in columns(cells[1], plan.tile_cells):
        grow_c = grow(cols, HALO, cells[1])
        window = image[:, :, :, pixels(grow_c, size[1])]
        stream = runner.encoder_stream() if runner.streams(len(strips)) else None
        top = 0
        for index, strip in enumerate(strips):
            rows = window[:, :, pixels(strip, size[0])]
            feats = _through(stream, runner.encode, rows, last=index == len(strips) - 1)
            if feats is None:
                continue
            span = (top, top + feats.shape[2])
            top = span[1]
            core = feats[:, :, :, cols[0] - grow_c[0] : cols[1] - grow_c[0]]
            piece_share = None if share is None else share[:, :, slice(*span)]
            _region_moments(core, piece_share, moments, cols)
            if store is not None:
                store.put(span, cols, core)
        assert top == cells[0], f"streamed {top} of {cells[0]} feature rows"
    return moments


def _assemble(
    runner: Runner,
    store: FeatureStore,
    plan: StripPlan,
    transform: Transform,
    like: Tensor,
    size: tuple[int, int],
) -> Tensor:
    """Decode the stored features piece by piece (after ``transform``) into one image of
    ``size``, on ``like``'s device and dtype."""
    batch = store.shape[0]
    cells = store.shape[2], store.shape[3]
    pieces = _pass_two(runner, store, plan, transform)
    if _one_piece(plan, cells):
        ((_, _, image),) = pieces
        return image[:, :, : size[0], : size[1]].to(like.device)
    if plan.tile_cells >= cells[1]:
        # Full-width strips: the rows go straight into the output, no blending.
        with long_lived_allocations():
            out = like.new_empty(batch, 3, *size)
        for top, _, image in pieces:
            bottom = min(top + image.shape[2], size[0])
            out[:, :, top:bottom] = image[:, :, : bottom - top, : size[1]].to(out.device)
        return out
    with long_lived_allocations():
        out = like.new_zeros(batch, 3, *size)
    for top, cols, image in pieces:
        _blend(out, image, top, cols, cells[1])
    return out


def _pass_two(
    runner: Runner, store: FeatureStore, plan: StripPlan, transform: Transform
) -> Iterator[tuple[int, tuple[int, int], Tensor]]:
    """Per decoded piece: its first pixel row, its column tile's core (cells) and its rows of
    the tile's window, from ``cols[0] - halo`` cells on (the halo clipped at the image's edges)."""
    cells = store.shape[2], store.shape[3]
    strips = list(spans(cells[0], plan.strip_cells))
    for cols in columns(cells[1], plan.tile_cells):
        grow_c = grow(cols, HALO, cells[1])
        stream = runner.decoder_stream() if runner.streams(len(strips)) else None
        top = 0
        for index, rows in enumerate(strips):
            feats = store.get(rows, grow_c).to(runner.device)
            target = transform(feats, rows, grow_c)
            del feats
            image = _through(stream, runner.decode, target, last=index == len(strips) - 1)
            if image is None:
                continue
            yield top, cols, image
            top += image.shape[2]


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
    offset = left - grow(cols, HALO, cells_w)[0] * DOWNSAMPLING
    piece = image[:, :, : bottom - top, offset : offset + right - left]
    out[:, :, top:bottom, left:right] += (piece * weight[: right - left]).to(out.device)
