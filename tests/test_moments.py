"""Statistics of a map that arrives in pieces: exact, weighted, as calc_mean_std."""

from __future__ import annotations

import torch

from adain.engine.moments import Moments
from adain.functional import EPS, calc_mean_std


def _feats(seed: int, shape=(2, 5, 7, 9)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3 + 1


def _stats(feats: torch.Tensor, weight: torch.Tensor | None = None):
    moments = Moments()
    moments.add(feats, weight)
    return moments.mean_std(EPS)


def test_whole_map_equals_calc_mean_std():
    feats = _feats(1)
    for actual, expected in zip(_stats(feats), calc_mean_std(feats), strict=True):
        torch.testing.assert_close(actual, expected)


def test_strips_combine_to_the_whole_map():
    feats = _feats(4, (2, 3, 11, 6))
    moments = Moments()
    for rows in ((0, 1), (1, 5), (5, 11)):  # uneven strips, one of a single row
        moments.add(feats[:, :, rows[0] : rows[1]])
    for actual, expected in zip(moments.mean_std(EPS), calc_mean_std(feats), strict=True):
        torch.testing.assert_close(actual, expected)


def test_binary_mask_equals_region_stats():
    feats = _feats(2, (1, 4, 6, 8))
    mask = torch.zeros(1, 1, 6, 8)
    mask[..., :, :3] = 1
    expected = calc_mean_std(feats[..., :, :3].contiguous())
    for actual, reference in zip(_stats(feats, mask), expected, strict=True):
        torch.testing.assert_close(actual, reference)


def test_uniform_mask_equals_global_stats():
    feats = _feats(3)
    weighted = _stats(feats, torch.full((2, 1, 7, 9), 0.5))
    for actual, expected in zip(weighted, calc_mean_std(feats), strict=True):
        torch.testing.assert_close(actual, expected)


def test_soft_mask_uses_reliability_weights():
    feats = _feats(5, (1, 2, 4, 5)).double()
    weight = torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(6)).double()
    v1, v2 = weight.sum(), weight.square().sum()
    mean = (feats * weight).sum(dim=(2, 3)) / v1
    var = ((feats - mean[..., None, None]) ** 2 * weight).sum(dim=(2, 3)) / (v1 - v2 / v1)
    actual_mean, actual_std = _stats(feats, weight)
    torch.testing.assert_close(actual_mean.view(1, 2), mean.float())
    torch.testing.assert_close(actual_std.view(1, 2), (var + EPS).sqrt().float())


def test_a_mask_that_covers_nothing_is_empty():
    moments = Moments()
    moments.add(_feats(7, (1, 2, 3, 3)), torch.zeros(1, 1, 3, 3))
    assert moments.empty
