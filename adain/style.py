"""Reusable style statistics: encode a style once, apply it to many contents or frames.

For AdaIN a style is its relu4_1 mean and std; for EFDM (:mod:`adain.efdm`) also each channel's
sorted values, its quantile function. A preset keeps :data:`PRESET_QUANTILES` of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import Tensor

from adain.efdm import mix as mix_quantiles
from adain.efdm import resample
from adain.outputs import write_atomically

_FORMAT = "adain-style-stats"
_FORMAT_VERSION = "1"
# Quantiles per channel an EFDM preset keeps (2 MiB at 512 channels, fp32). A 512 px style has
# 4096 relu4_1 values per channel; against all of them, 1024 midpoint quantiles changed the
# matched relu4_1 features by 0.24 % (RMS) and the decoded image by 0.0014 on average, 256 by
# 0.65 % and 0.0040; a 1024 px style's 16384 values, 0.29 % and 0.0014 (`python -m benchmarks
# efdm --preset-error`, random weights, the example images).
PRESET_QUANTILES = 1024


@dataclass(frozen=True)
class StyleStats:
    """Per-channel mean and std of a style's relu4_1 features: all AdaIN needs of a style.

    Attributes:
        mean: ``(B, C, 1, 1)`` per-channel means (``B`` is 1 for a single style image).
        std: ``(B, C, 1, 1)`` per-channel standard deviations.
        layer: the encoder layer the statistics come from.
        source: the preset file they were loaded from, named in error messages (``None``
            when encoded or mixed here).
        quantiles: ``(B, C, M)`` each channel's values sorted (EFDM), or ``None`` when only
            the moments were kept (AdaIN).
    """

    mean: Tensor
    std: Tensor
    layer: str = "relu4_1"
    source: str | None = field(default=None, compare=False)
    quantiles: Tensor | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        shape = tuple(self.mean.shape)
        if shape != tuple(self.std.shape) or len(shape) != 4 or shape[2:] != (1, 1):
            where = f"{self.source}: " if self.source else ""
            raise ValueError(
                f"{where}mean and std must both be (B, C, 1, 1), got {shape} "
                f"and {tuple(self.std.shape)}"
            )
        if self.quantiles is not None and (
            self.quantiles.dim() != 3 or tuple(self.quantiles.shape[:2]) != shape[:2]
        ):
            where = f"{self.source}: " if self.source else ""
            raise ValueError(
                f"{where}quantiles must be (B, C, M) with the mean's (B, C) {shape[:2]}, got "
                f"{tuple(self.quantiles.shape)}"
            )

    @property
    def channels(self) -> int:
        return self.mean.shape[1]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> StyleStats:
        mean, std = self.mean.to(device, dtype), self.std.to(device, dtype)
        quantiles = None if self.quantiles is None else self.quantiles.to(device, dtype)
        return StyleStats(mean, std, self.layer, self.source, quantiles)

    @staticmethod
    def mix(stats: Sequence[StyleStats], weights: Sequence[float]) -> StyleStats:
        """Weighted mixture, normalised so the weights sum to 1.

        Because AdaIN is affine in ``(mu(y), sigma(y))``, ``sum_k w_k AdaIN(x, y_k)`` (the paper's
        style interpolation, Sec. 7.3) equals AdaIN with the mixed statistics; mixing once lets a
        mixture be stored and reused like a single style. Quantile functions, when every style
        has them, mix the same way (:func:`adain.efdm.mix`, the Wasserstein barycenter).

        Raises:
            ValueError: a weight that is negative or not finite, or weights that are all 0.
        """
        if len(stats) != len(weights):
            raise ValueError(f"got {len(weights)} weights for {len(stats)} styles: give one each")
        if not stats:
            raise ValueError("no styles to mix")
        if any(not (math.isfinite(w) and w >= 0) for w in weights) or not any(weights):
            raise ValueError(
                f"weights must be >= 0 and finite with a positive sum (--weight), got "
                f"{list(weights)}"
            )
        # Divided by the largest weight first: the sum of 1e308 and 1e308 would overflow to inf
        # and every normalised weight to 0 (a black image).
        largest = max(float(w) for w in weights)
        scaled = [float(w) / largest for w in weights]
        total = sum(scaled)
        mean = sum(s.mean * (w / total) for s, w in zip(stats, scaled, strict=True))
        std = sum(s.std * (w / total) for s, w in zip(stats, scaled, strict=True))
        assert isinstance(mean, Tensor) and isinstance(std, Tensor)
        quantiles = None
        if all(s.quantiles is not None for s in stats):
            shares = [w / total for w in scaled]
            quantiles = mix_quantiles([s.quantiles for s in stats], shares)  # type: ignore[misc]
        return StyleStats(mean, std, stats[0].layer, quantiles=quantiles)

    def save(self, path: str | Path) -> Path:
        """Write a small safetensors file atomically (:func:`adain.outputs.write_atomically`);
        quantiles, if any, resampled to at most :data:`PRESET_QUANTILES` per channel."""
        tensors = {"mean": self.mean.detach().cpu(), "std": self.std.detach().cpu()}
        if self.quantiles is not None:
            count = min(self.quantiles.shape[-1], PRESET_QUANTILES)
            tensors["quantiles"] = resample(self.quantiles.detach().float().cpu(), count)
        metadata = {"format": _FORMAT, "version": _FORMAT_VERSION, "layer": self.layer}
        data = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
        return write_atomically(path, lambda handle: handle.write(data))

    @classmethod
    def load(cls, path: str | Path) -> StyleStats:
        """Read a file written by :meth:`save`: one style, finite, ``(1, C, 1, 1)`` mean and std.

        Raises:
            ValueError: anything else, in one line naming the file.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"style preset {path} does not exist")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{path} is not a style preset (safetensors): {error}") from error
        names = set(tensors)
        if metadata.get("format") != _FORMAT or names - {"quantiles"} != {"mean", "std"}:
            raise ValueError(f"{path} is not an adain style preset (made by `adain style-encode`)")
        mean, std = tensors["mean"], tensors["std"]
        quantiles = tensors.get("quantiles")
        if not all(t.is_floating_point() for t in tensors.values()):
            raise ValueError(f"{path}: a style preset holds floats, got {mean.dtype}, {std.dtype}")
        layer = metadata.get("layer", "relu4_1")
        if quantiles is not None:
            if quantiles.dim() != 3 or quantiles.shape[-1] < 1:
                raise ValueError(
                    f"{path}: quantiles must be (1, C, M), got {tuple(quantiles.shape)}"
                )
            if not bool(torch.isfinite(quantiles).all()):
                raise ValueError(f"{path}: the style preset holds NaN or infinite values")
            # Sorted, as EFDM assumes: a preset edited by hand could be out of order.
            quantiles = torch.sort(quantiles.float(), dim=-1).values
        stats = cls(mean.float(), std.float(), layer, str(path), quantiles)
        if stats.mean.shape[0] != 1:
            raise ValueError(
                f"{path} holds {stats.mean.shape[0]} styles; a preset holds one: make it with "
                "`adain style-encode` (several styles are mixed into one)"
            )
        if not (torch.isfinite(stats.mean).all() and torch.isfinite(stats.std).all()):
            raise ValueError(f"{path}: the style preset holds NaN or infinite values")
        return stats


def is_style_preset(path: str | Path) -> bool:
    """Whether ``path`` names a style preset file (by its ``.safetensors`` suffix)."""
    return str(path).lower().endswith(".safetensors")
