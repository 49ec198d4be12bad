"""Checks of the arguments a user hands the model, each failing with a message that says how to
fix the call.

They live apart from :mod:`adain.model` so the task modules (batches, datasets, the server) can
validate inputs before a model is built or loaded.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor

# Below this, relu4_1 has too few positions for a meaningful (or defined) variance.
MIN_SIDE = 16

PreserveColor = Literal["coral", "luminance"]


def check_image(image: object, name: str) -> Tensor:
    """Validate an image tensor: float ``(B, 3, H, W)``, both sides >= :data:`MIN_SIDE`."""
    if not isinstance(image, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, 3, H, W) in [0, 1], got {type(image)}")
    if image.dim() != 4 or image.shape[1] != 3 or not image.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor (B, 3, H, W) with RGB in [0, 1], got "
            f"{image.dtype} {tuple(image.shape)}; use adain.image.to_tensor() for PIL images"
        )
    if min(image.shape[2:]) < MIN_SIDE:
        raise ValueError(
            f"{name} is {image.shape[3]}x{image.shape[2]} px; AdaIN needs at least "
            f"{MIN_SIDE}x{MIN_SIDE}: upscale it first"
        )
    return image


def check_alpha(alpha: float) -> float:
    """Validate the content-style trade-off: any finite value >= 0 (above 1 over-stylises)."""
    if not isinstance(alpha, int | float) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0 (1 = full style), got {alpha!r}")
    return float(alpha)


def check_masks(masks: Tensor, num_styles: int) -> None:
    """Validate soft masks: ``(B, K, H, W)``, one non-negative channel per style."""
    if masks.dim() != 4 or masks.shape[1] != num_styles:
        raise ValueError(
            f"masks must be (B, K, H, W) with one channel per style ({num_styles}), "
            f"got {tuple(masks.shape)}"
        )
    if (masks < 0).any():
        raise ValueError("masks must be non-negative (0 = not this style, 1 = this style)")


def _check_preserve_color(preserve_color: object) -> None:
    if preserve_color not in (None, "coral", "luminance"):
        raise ValueError(
            f"preserve_color must be 'coral', 'luminance' or None, got {preserve_color!r}"
        )
