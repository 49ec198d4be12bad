"""Reusable style statistics: encode a style once, apply it to many contents or frames."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

_FORMAT = "adain-style-stats"
_FORMAT_VERSION = "1"


@dataclass(frozen=True)
class StyleStats:
    """Per-channel mean and std of a style's relu4_1 features: all AdaIN needs of a style.

    Attributes:
        mean: ``(B, C, 1, 1)`` per-channel means (``B`` is 1 for a single style image).
        std: ``(B, C, 1, 1)`` per-channel standard deviations.
        layer: the encoder layer the statistics come from.
    """

    mean: Tensor
    std: Tensor
    layer: str = "relu4_1"

    def __post_init__(self) -> None:
        if self.mean.shape != self.std.shape or self.mean.dim() != 4:
            raise ValueError(
                f"mean and std must both be (B, C, 1, 1), got {tuple(self.mean.shape)} "
                f"and {tuple(self.std.shape)}"
            )

    @property
    def channels(self) -> int:
        return self.mean.shape[1]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> StyleStats:
        return StyleStats(self.mean.to(device, dtype), self.std.to(device, dtype), self.layer)

    @staticmethod
    def mix(stats: Sequence[StyleStats], weights: Sequence[float]) -> StyleStats:
        """Weighted mixture, normalised so the weights sum to 1.

        Because AdaIN is affine in ``(mu(y), sigma(y))``, ``sum_k w_k AdaIN(x, y_k)`` (the paper's
        style interpolation, Sec. 7.3) equals AdaIN with the mixed statistics; mixing once lets a
        mixture be stored and reused like a single style.
        """
        if len(stats) != len(weights):
            raise ValueError(f"got {len(weights)} weights for {len(stats)} styles: give one each")
        if not stats:
            raise ValueError("no styles to mix")
        if any(not (w >= 0) for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
        total = float(sum(weights))
        mean = sum(s.mean * (w / total) for s, w in zip(stats, weights, strict=True))
        std = sum(s.std * (w / total) for s, w in zip(stats, weights, strict=True))
        assert isinstance(mean, Tensor) and isinstance(std, Tensor)
        return StyleStats(mean, std, stats[0].layer)

    def save(self, path: str | Path) -> Path:
        """Write a small safetensors file atomically (temporary file, then rename)."""
        path = Path(path)
        tensors = {"mean": self.mean.detach().cpu(), "std": self.std.detach().cpu()}
        metadata = {"format": _FORMAT, "version": _FORMAT_VERSION, "layer": self.layer}
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> StyleStats:
        """Read a file written by :meth:`save`; anything else is a ``ValueError``."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"style preset {path} does not exist")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{path} is not a style preset (safetensors): {error}") from error
        if metadata.get("format") != _FORMAT or set(tensors) != {"mean", "std"}:
            raise ValueError(f"{path} is not an adain style preset (made by `adain style-encode`)")
        return cls(tensors["mean"], tensors["std"], metadata.get("layer", "relu4_1"))


def is_style_preset(path: str | Path) -> bool:
    """Whether ``path`` names a style preset file (by its ``.safetensors`` suffix)."""
    return str(path).lower().endswith(".safetensors")
