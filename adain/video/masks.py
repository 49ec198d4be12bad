"""Masks for video: one per style, a still image (every frame) or a mask video (frame by frame)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from adain.image import IMAGE_SUFFIXES, load_mask
from adain.style import is_style_preset
from adain.video.frame import Frame, Source
from adain.video.source import open_source

# A batch as the reader hands it over: each frame with its mask-video frames (or None).
Batch = list[tuple[Frame, list[np.ndarray] | None]]


def open_masks(
    masks: Sequence[str | Path] | None, num_styles: int, max_pixels: int | None
) -> list[Tensor | Source]:
    """Each mask: a still ``(1, 1, H, W)`` tensor, or an opened mask video."""
    if not masks:
        return []
    if len(masks) != num_styles:
        raise ValueError(f"got {len(masks)} --mask values for {num_styles} styles: one per style")
    opened: list[Tensor | Source] = []
    try:
        for mask in masks:
            path = Path(mask)
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                opened.append(load_mask(path, max_pixels))
            elif is_style_preset(path):
                raise ValueError(f"--mask {path}: a mask is an image or a video, not a preset")
            else:
                opened.append(open_source(path, max_pixels=max_pixels))
    except BaseException:
        for item in opened:
            if isinstance(item, Source):
                item.close()
        raise
    return opened


def with_masks(source: Source, masks: list[Tensor | Source]) -> Iterator[Any]:
    """``(frame, mask frames or None)`` in order; a mask video must last as long as the input."""
    streams = [m.frames() for m in masks if isinstance(m, Source)]
    for frame in source.frames():
        if not streams:
            yield frame, None
            continue
        found = [next(s, None) for s in streams]
        if any(f is None for f in found):
            short = next(m for m, f in zip(masks, found, strict=False) if f is None)
            raise ValueError(
                f"--mask {getattr(short, 'path', short)} has fewer frames than the input "
                f"({frame.index}): give a mask video as long as the input, or a still mask"
            )
        yield frame, [f.image for f in found if f is not None]


def _luma(image: np.ndarray) -> Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114])
    return (torch.from_numpy(image).float() @ weights).div_(255.0)[None, None]


def batch_masks(masks: list[Tensor | Source], batch: Batch) -> Tensor | None:
    if not masks:
        return None
    per_frame = []
    for _, mask_frames in batch:
        videos = iter(mask_frames or [])
        channels = []
        for mask in masks:
            still = mask if isinstance(mask, Tensor) else _luma(next(videos))
            channels.append(still)
        size = channels[0].shape[-2:]
        channels = [
            c if c.shape[-2:] == size else torch.nn.functional.interpolate(c, size=tuple(size))
            for c in channels
        ]
        per_frame.append(torch.cat(channels, dim=1))
        if all(isinstance(m, Tensor) for m in masks):
            return per_frame[0]  # the same for every frame: (1, K, H, W)
    return torch.cat(per_frame)
