"""Exact Feature Distribution Matching (EFDM, Zhang et al., CVPR 2022): the maths.

AdaIN matches each channel's mean and standard deviation; EFDM matches its whole distribution.
Sort the content channel and the style channel, and give the content value of rank ``i`` the
style value of rank ``i`` (paper eq. 6, the exact histogram matching of 1-D optimal transport).

A style is kept as its *quantile function*: each channel's values sorted, ``(B, C, M)``; value
``j`` stands at probability ``(j + 0.5) / M`` (the midpoint, or Hazen, plotting position).
Between those points the function is linear; beyond the first and last it is flat. The content
value of rank ``r`` among ``N`` takes the style's quantile at ``(r + 0.5) / N``, so when
``N == M`` it takes exactly the style value of rank ``r``, and otherwise the quantile of the
same probability, interpolated. Ties in the content are broken by position (a stable sort), so
a block of equal values (ReLU's zeros) spreads over the style's values as any other block does.

Soft masks weight the positions of a region (as they weight AdaIN's moments): a position's
probability is the weight of the positions sorted before it plus half its own, over the
region's total; with a binary mask that is the rank within the region.

Tensors are ``(B, C, N)`` flattened maps unless said otherwise. Nothing here owns weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

# How a stylisation moves the content's features to the style's: "adain", each channel's mean
# and std (Huang & Belongie 2017, eq. 8); "efdm", each channel's whole distribution (this module).
Transfer = Literal["adain", "efdm"]
TRANSFERS: tuple[Transfer, ...] = ("adain", "efdm")


def check_transfer(transfer: object) -> Transfer:
    """Validate a transfer name: ``"adain"`` (mean and std) or ``"efdm"`` (whole distribution)."""
    if transfer not in TRANSFERS:
        raise ValueError(f"transfer must be 'adain' or 'efdm' (--transfer), got {transfer!r}")
    return transfer  # type: ignore[return-value]


def sorted_values(feats: Tensor) -> Tensor:
    """The quantile function of ``(B, C, h, w)`` features: each channel sorted, ``(B, C, h*w)``."""
    return torch.sort(feats.flatten(2).float(), dim=-1).values


def _positions_dtype(device: torch.device) -> torch.dtype:
    # float64 keeps (r + 0.5) * M / N exact for any map; MPS has no float64, where float32
    # interpolates a hair off the exact style values above about 4096 positions.
    return torch.float32 if device.type == "mps" else torch.float64


def _at(quantiles: Tensor, position: Tensor, batch: int, channels: int) -> Tensor:
    """Linear interpolation of ``quantiles`` ``(B or 1, C, M)`` at fractional indices
    ``position`` ``(B or 1, C or 1, N)`` (float64), flat beyond both ends: ``(B, C, N)``."""
    count = quantiles.shape[-1]
    position = position.clamp(0.0, count - 1)
    low = position.floor()
    weight = (position - low).to(quantiles.dtype)
    low = low.long()
    high = (low + 1).clamp_max(count - 1)
    # Positions shared by every channel (no mask) are computed once, then broadcast.
    size = position.shape[-1]
    low, high = low.expand(batch, channels, size), high.expand(batch, channels, size)
    table = quantiles.expand(batch, channels, count)
    # lerp(a, b, 0) is exactly a: equal sizes give the style values themselves.
    return torch.lerp(table.gather(-1, low), table.gather(-1, high), weight)


def resample(quantiles: Tensor, count: int) -> Tensor:
    """The quantile function ``(B, C, M)`` at ``count`` midpoints ``(k + 0.5) / count``.

    ``count == M`` returns the values unchanged. A preset keeps a style this way
    (:data:`adain.style.PRESET_QUANTILES`); mixing brings styles to one length.
    """
    size = quantiles.shape[-1]
    if count == size:
        return quantiles
    dtype = _positions_dtype(quantiles.device)
    grid = torch.arange(count, dtype=dtype, device=quantiles.device) + 0.5
    return _at(quantiles, grid * size / count - 0.5, *quantiles.shape[:2])


def mix(quantiles: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Weighted average of quantile functions (weights sum to 1): in 1-D this is the
    Wasserstein-2 barycenter of the distributions (Agueh & Carlier 2011), so a mixture of
    styles is itself a distribution to match. Styles of different lengths are resampled to the
    longest first."""
    count = max(q.shape[-1] for q in quantiles)
    mixed = sum(resample(q, count) * w for q, w in zip(quantiles, weights, strict=True))
    assert isinstance(mixed, Tensor)
    return mixed


def match(feats: Tensor, quantiles: Tensor, weight: Tensor | None = None) -> Tensor:
    """EFDM of flattened features: each value replaced by the style's quantile of its rank.

    Args:
        feats: ``(B, C, N)`` content features.
        quantiles: ``(B or 1, C, M)`` the style's sorted values (any ``M``).
        weight: ``(B or 1, 1, N)`` non-negative weight of each position (a region's soft mask),
            or ``None`` for all positions alike. Positions of weight 0 get a value too, which
            the caller's blend discards.

    Returns:
        ``(B, C, N)`` matched features, same dtype as ``feats``.
    """
    batch, channels, size = feats.shape
    order = torch.sort(feats, dim=-1, stable=True).indices  # ties: earlier position first
    count = quantiles.shape[-1]
    if weight is None:
        # (r + 0.5) * M / N - 0.5 in float64, multiplied first: exactly r when M == N.
        ranks = torch.arange(size, dtype=_positions_dtype(feats.device), device=feats.device)
        ranks += 0.5
        position = ranks * count / size - 0.5
    else:
        weights = weight.expand(batch, channels, size).gather(-1, order)
        weights = weights.to(_positions_dtype(feats.device))
        before = weights.cumsum(-1) - weights / 2
        total = weights.sum(-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
        position = before * count / total - 0.5
        del weights, before
    values = _at(quantiles.to(feats.dtype), position, batch, channels)
    del position
    return torch.empty_like(feats).scatter_(-1, order, values)


def efdm_transfer(
    feats: Tensor,
    quantiles: Sequence[Tensor],
    alpha: float = 1.0,
    share: Tensor | None = None,
) -> Tensor:
    """The EFDM transfer of a whole feature map, per region, then the alpha blend.

    The counterpart of :func:`adain.functional.adain_transfer`, with the same blends: a
    position keeps ``1 - sum(share)`` of its content features and takes each region's matched
    features in proportion to its share; then ``t = alpha * t + (1 - alpha) * f(c)``.

    Args:
        feats: ``(B, C, h, w)`` relu4_1 content features ``f(c)``; every position of the map is
            ranked, so this needs the whole map (strips: :mod:`adain.engine.matching`).
        quantiles: ``(B or 1, C, M)`` sorted style values per region, or one (a mixture is
            mixed beforehand, :func:`mix`).
        alpha: content-style trade-off (AdaIN paper eq. 14).
        share: ``(B or 1, K, h, w)`` share of each region at each position
            (:func:`adain.functional.region_shares`), or ``None``.

    Returns:
        ``(B, C, h, w)`` target features.
    """
    flat = feats.flatten(2)
    if share is None:
        assert len(quantiles) == 1
        target = match(flat, quantiles[0])
    else:
        shares = share.flatten(2)
        target = flat * (1.0 - shares.sum(dim=1, keepdim=True))
        for k, style in enumerate(quantiles):
            region = shares[:, k : k + 1]
            if bool((region > 0).any()):  # a region no mask covers has no effect
                target = target + region * match(flat, style, region)
    if alpha != 1.0:
        target = alpha * target + (1.0 - alpha) * flat
    return target.view_as(feats)
