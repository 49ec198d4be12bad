"""Exact per-channel statistics of a feature map that arrives in pieces.

AdaIN's content statistics are global (paper eq. 8): a map encoded strip by strip is reduced to
its mean and variance by combining each strip's moments exactly (Chan, Golub & LeVeque 1979),
in float64, so the result equals the whole map's statistics to float rounding whatever the
pieces. Soft masks weight the positions (spatial control, paper Sec. 7.3).
"""

from __future__ import annotations

import torch
from torch import Tensor


class Moments:
    """Running weighted mean and sum of squared deviations per (batch, channel).

    Statistics are unbiased: the variance divides by ``V1 - V2 / V1`` (``V1 = sum w``,
    ``V2 = sum w^2``, the reliability-weights correction), which is ``n - 1`` without weights
    or with a binary mask, as :func:`adain.functional.calc_mean_std` (pytorch-AdaIN).
    """

    def __init__(self) -> None:
        self.v1: Tensor | float = 0.0  # sum of weights
        self.v2: Tensor | float = 0.0  # sum of squared weights
        self.mean: Tensor | float = 0.0
        self.m2: Tensor | float = 0.0

    def add(self, feats: Tensor, weight: Tensor | None = None) -> None:
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

    @property
    def empty(self) -> bool:
        """Whether no position has had a positive weight (a mask that covers nothing)."""
        return not isinstance(self.v1, Tensor) or not bool((self.v1 > 0).any())

    def mean_std(self, eps: float) -> tuple[Tensor, Tensor]:
        """``(B, C, 1, 1)`` fp32 mean and ``sqrt(var + eps)`` on the CPU."""
        assert isinstance(self.v1, Tensor) and isinstance(self.m2, Tensor), "no features added"
        denom = (self.v1 - self.v2 / self.v1.clamp_min(1e-12)).clamp_min(1e-12)
        var = self.m2 / denom
        std = (var + eps).sqrt()
        assert isinstance(self.mean, Tensor)
        return self.mean.float()[..., None, None], std.float()[..., None, None]
