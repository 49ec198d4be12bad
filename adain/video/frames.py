"""Frames through the model: the style encoded once, frames in batches, optional smoothing.

:class:`Stylizer` is what every video path runs per batch: ``model(frames, styles, alpha, ...)``
with the styles' statistics computed once when it is built. :func:`stylize_frames` wraps it as
an iterator for callers who bring their own frames (their own decoder, a camera, a renderer).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from adain.api import as_tensor, get_device
from adain.checks import PreserveColor, check_alpha
from adain.engine.runner import EngineOptions
from adain.image import DEFAULT_MAX_PIXELS
from adain.model import AdaIN, load_model
from adain.style import StyleStats, is_style_preset
from adain.video.temporal import DEFAULT_CUT_THRESHOLD, DEFAULT_DECAY, StatsSmoother

FrameLike = Tensor | np.ndarray | Image.Image
StyleLike = str | Path | Image.Image | Tensor | StyleStats
# Frames per model call: enough to amortise per-call work, few enough to keep memory small.
DEFAULT_BATCH_SIZE = 4


@dataclass
class StyleSpec:
    """What to stylise with, resolved once per video.

    Attributes:
        styles: one entry per style: its statistics, or the image itself for
            ``preserve_color="coral"`` (recoloured to each frame, so encoded per batch).
        weights: mix of the styles, or ``None``.
        encoded: how many style images were encoded here.
    """

    styles: list[Tensor | StyleStats]
    weights: list[float] | None
    encoded: int


class Stylizer:
    """Stylises batches of frames ``(B, 3, H, W)`` in [0, 1] through ``model(...)``.

    Args:
        model: an :class:`AdaIN`, a folder, a Hub id, or ``None`` for ``$ADAIN_MODEL`` / default.
        style: one style or several (paths, images, tensors, presets, :class:`StyleStats`).
        alpha, weights, preserve_color: as :meth:`AdaIN.forward`.
        temporal: smooth the content statistics across frames (:class:`StatsSmoother`); a
            float is the smoothing's decay.
        cut_threshold: scene-cut threshold of the smoothing.
        style_size, max_pixels: as :func:`adain.stylize` for the style images.
        device, precision, max_memory, tile, revision: how and where the model runs.
        transfer: ``"adain"`` or ``"efdm"`` (EFDM takes no temporal smoothing).
    """

    def __init__(
        self,
        model: AdaIN | str | Path | None,
        style: StyleLike | Sequence[StyleLike],
        *,
        alpha: float = 1.0,
        weights: Sequence[float] | None = None,
        preserve_color: PreserveColor | None = None,
        temporal: bool | float = False,
        cut_threshold: float = DEFAULT_CUT_THRESHOLD,
        style_size: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        max_memory: int | str | None = None,
        tile: int | None = None,
        revision: str | None = None,
        transfer: str = "adain",
    ) -> None:
        self.device = get_device(device)
        self.model = (
            model
            if isinstance(model, AdaIN)
            else load_model(model, revision=revision).to(self.device)
        )
        self.engine = EngineOptions(
            max_memory=max_memory,
            tile=tile,
            precision=precision,  # type: ignore[arg-type]
            device=self.device,
        )
        self.alpha = check_alpha(alpha)
        self.preserve_color = preserve_color
        self.transfer = transfer
        if temporal is not False and transfer != "adain":
            raise ValueError(
                "--temporal smooths AdaIN's content mean and std; EFDM matches whole "
                "distributions: drop --temporal or use --transfer adain"
            )
        decay = DEFAULT_DECAY if temporal is True else float(temporal)
        self.smoother = None
        if temporal is not False:
            self.smoother = StatsSmoother(decay=decay, cut_threshold=cut_threshold)
        self.spec = self._encode_styles(style, weights, style_size, max_pixels)

    def _transfer_kwargs(self) -> dict[str, Any]:
        # Only when asked: a model without the keyword still runs AdaIN.
        return {} if self.transfer == "adain" else {"transfer": self.transfer}

    @torch.inference_mode()
    def _encode_styles(
        self,
        style: StyleLike | Sequence[StyleLike],
        weights: Sequence[float] | None,
        style_size: int | None,
        max_pixels: int | None,
    ) -> StyleSpec:
        items = list(style) if isinstance(style, list | tuple) else [style]
        if not items:
            raise ValueError("give at least one style (--style)")
        resolved: list[Tensor | StyleStats] = []
        encoded = 0
        for item in items:
            if isinstance(item, StyleStats):
                resolved.append(item)
            elif isinstance(item, str | Path) and is_style_preset(item):
                resolved.append(StyleStats.load(item))
            else:
                image = as_tensor(item, style_size, None, max_pixels, "style")
                if self.preserve_color == "coral":
                    resolved.append(image)  # recoloured to each batch of frames
                    continue
                stats = self.model.style_stats(image, engine=self.engine, **self._transfer_kwargs())
                resolved.append(stats)
                encoded += 1
        if weights is not None and len(weights) != len(items):
            raise ValueError(
                f"got {len(weights)} --weight values for {len(items)} styles: give one per style"
            )
        return StyleSpec(resolved, None if weights is None else list(weights), encoded)

    @torch.inference_mode()
    def __call__(self, frames: Tensor, masks: Tensor | None = None) -> Tensor:
        """``(B, 3, H, W)`` frames in [0, 1], in order -> stylised, clamped to [0, 1], on the CPU.

        ``masks``: ``(B or 1, K, H', W')``, one soft mask per style, or ``None``.
        """
        out = self.model(
            frames,
            self.spec.styles,
            self.alpha,
            weights=self.spec.weights,
            masks=masks,
            preserve_color=self.preserve_color,
            engine=self.engine,
            content_stats=self.smoother,
            **self._transfer_kwargs(),
        )
        if self.smoother is not None:
            self.smoother.advance(frames.shape[0])
        return out.clamp_(0.0, 1.0).cpu()


def to_frame_tensor(frame: FrameLike) -> Tensor:
    """A frame as ``(3, H, W)`` float in [0, 1]: a tensor as it is, an ``(H, W, 3)`` uint8 array
    or a PIL image converted."""
    if isinstance(frame, Tensor):
        return frame[0] if frame.dim() == 4 else frame
    if isinstance(frame, Image.Image):
        frame = np.asarray(frame.convert("RGB"))
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"a frame array must be (H, W, 3) uint8 RGB, got {frame.dtype} {frame.shape}"
        )
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div_(255.0)


def batches(frames: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {size}")
    batch: list[Any] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def stylize_frames(
    frames: Iterable[FrameLike],
    style: StyleLike | Sequence[StyleLike],
    *,
    model: AdaIN | str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    masks: Tensor | None = None,
    **options: Any,
) -> Iterator[Tensor]:
    """Stylise a stream of frames, in order, encoding the style once.

    Args:
        frames: ``(3, H, W)`` tensors in [0, 1], ``(H, W, 3)`` uint8 RGB arrays or PIL images, all
            of one size; read lazily, ``batch_size`` at a time.
        style: one style or several (paths, images, tensors, presets, :class:`StyleStats`).
        model: an :class:`AdaIN`, a folder, a Hub id, or ``None`` for the default.
        batch_size: frames per model call.
        masks: ``(1, K, H', W')`` soft masks, one per style, the same for every frame.
        **options: :class:`Stylizer`'s options (``alpha``, ``weights``, ``preserve_color``,
            ``temporal``, ``device``, ...).

    Yields:
        ``(3, H, W)`` float tensors in [0, 1] on the CPU, one per frame.
    """
    stylizer = Stylizer(model, style, **options)
    for batch in batches(frames, batch_size):
        out = stylizer(torch.stack([to_frame_tensor(f) for f in batch]).to(stylizer.device), masks)
        yield from out
