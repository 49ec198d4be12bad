"""Style augmentation for training pipelines: :class:`StyleAugment`, and :func:`stylize_each`,
which stylises every image of a batch with its own style and alpha through the model.

Stylisation as data augmentation (Geirhos et al., ICLR 2019; Jackson et al., CVPR-W 2019) makes
classifiers rely on shape rather than texture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from adain.architecture import CONTENT_LAYER, DOWNSAMPLING
from adain.checks import check_image
from adain.efdm import Transfer, check_transfer, resample
from adain.engine.runner import EngineOptions
from adain.functional import pad_to_multiple
from adain.image import load_image, to_tensor
from adain.model import AdaIN
from adain.style import PRESET_QUANTILES, StyleStats, is_style_preset

StyleSource = StyleStats | Tensor | str | Path


@torch.no_grad()
def stylize_each(
    model: AdaIN,
    content: Tensor,
    mean: Tensor,
    std: Tensor,
    alphas: Sequence[float],
    engine: EngineOptions | None = None,
    quantiles: Tensor | None = None,
    transfer: Transfer = "adain",
) -> Tensor:
    """Stylise image ``i`` of ``content`` with style statistics ``(mean[i], std[i])`` and
    ``alphas[i]``, through the model's engine (:meth:`AdaIN.encode`, :meth:`AdaIN.transfer`,
    :meth:`AdaIN.decode`), padded and cropped back as :meth:`AdaIN.forward` does.

    Args:
        model: the model.
        content: ``(B, 3, H, W)`` RGB in [0, 1], on the device the model runs on.
        mean, std: ``(B, C, 1, 1)`` relu4_1 style statistics, one row per image.
        alphas: one content-style trade-off per image, each finite and >= 0.
        engine: how the calls run (default: the model's).
        quantiles: ``(B, C, M)`` sorted style features, one row per image (``transfer="efdm"``).
        transfer: ``"adain"`` or ``"efdm"`` (:meth:`AdaIN.forward`).

    Returns:
        ``(B, 3, H, W)`` stylised images, unclamped.

    Note:
        ``model(content, style, alpha)`` takes one alpha per call. Encoding the batch once and
        running the (cheap) feature transfer once per distinct alpha gives every image its own
        alpha at the cost of one batched encode and decode.
    """
    check_image(content, "content")
    if len(alphas) != content.shape[0] or mean.shape[0] != content.shape[0]:
        raise ValueError(
            f"got {content.shape[0]} images, {mean.shape[0]} styles and {len(alphas)} alphas: "
            "give one style and one alpha per image"
        )
    height, width = content.shape[2:]
    padded = pad_to_multiple(content, DOWNSAMPLING)
    feats = model.encode(padded, engine=engine)[CONTENT_LAYER]  # (B, C, h, w)
    target = torch.empty_like(feats)
    for alpha in sorted(set(alphas)):
        rows = torch.tensor([i for i, a in enumerate(alphas) if a == alpha], device=feats.device)
        picked = rows.to(mean.device)
        stats = StyleStats(
            mean.index_select(0, picked),
            std.index_select(0, picked),
            quantiles=None if quantiles is None else quantiles.index_select(0, picked),
        )
        target[rows] = model.transfer(feats[rows], [stats], alpha, transfer=transfer)
    return model.decode(target, engine=engine)[:, :, :height, :width]


def _alpha_range(alpha: float | tuple[float, float]) -> tuple[float, float]:
    low, high = (alpha, alpha) if isinstance(alpha, int | float) else alpha
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
        raise ValueError(f"alpha must be a value >= 0 or a range (low, high), got {alpha!r}")
    return float(low), float(high)


class StyleAugment(nn.Module):
    """With probability ``p`` per image, stylise it with a random style of a bank at a random
    alpha: a transform for training pipelines, on batches on the device or per sample in a
    DataLoader on the CPU.

    The styles are encoded once, when the transform is built. Every call goes through the model
    (:func:`stylize_each`). Shapes, dtype and value range are kept: float images in [0, 1] come
    back as floats in [0, 1], ``uint8`` images in [0, 255] as ``uint8``. ``.to(device)`` moves the
    model and the bank; images on another device are moved there and back.

    Args:
        model: the AdaIN model (registered as a submodule, so ``.to()`` moves it).
        styles: the bank: :class:`StyleStats`, style images ``(1 or B, 3, H, W)`` in [0, 1],
            image files or ``.safetensors`` presets (paths).
        p: probability that an image is stylised, in [0, 1]; 0 returns the input unchanged.
        alpha: a fixed alpha, or a range ``(low, high)`` drawn uniformly per image.
        style_size: shorter side in px that style files are resized to before encoding
            (``None`` keeps their size).
        generator: the default source of randomness (``None``: torch's global generator);
            ``forward(..., generator=)`` overrides it per call. Draws are made on the CPU, so the
            same generator state gives the same choices on any device.
        transfer: ``"adain"`` or ``"efdm"`` (:meth:`AdaIN.forward`); EFDM keeps each style's
            sorted features at :data:`adain.style.PRESET_QUANTILES` (2 MiB per style).

    Example:
        >>> augment = StyleAugment(model, ["waves.safetensors", "brick.jpg"], p=0.5, alpha=(0.3, 1))
        >>> images = augment(images)  # (B, 3, H, W) in [0, 1], in the training step
    """

    def __init__(
        self,
        model: AdaIN,
        styles: Sequence[StyleSource] | StyleSource,
        p: float = 0.5,
        alpha: float | tuple[float, float] = (0.0, 1.0),
        style_size: int | None = 512,
        generator: torch.Generator | None = None,
        transfer: Transfer = "adain",
    ):
        super().__init__()
        self.transfer = check_transfer(transfer)
        if not (isinstance(p, int | float) and 0.0 <= p <= 1.0):
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        self.model = model
        self.p, self.alpha = float(p), _alpha_range(alpha)
        self.generator = generator
        items = [styles] if isinstance(styles, StyleStats | Tensor | str | Path) else list(styles)
        if not items:
            raise ValueError("StyleAugment needs at least one style in the bank")
        stats = [self._encode(item, style_size) for item in items]
        self.register_buffer("bank_mean", torch.cat([s.mean.float().cpu() for s in stats]))
        self.register_buffer("bank_std", torch.cat([s.std.float().cpu() for s in stats]))
        quantiles = None
        if self.transfer == "efdm":
            quantiles = torch.cat([self._quantiles(s) for s in stats])
        self.register_buffer("bank_quantiles", quantiles)

    @torch.no_grad()
    def _encode(self, style: StyleSource, style_size: int | None) -> StyleStats:
        if isinstance(style, StyleStats):
            return style
        if isinstance(style, str | Path):
            if is_style_preset(style):
                return StyleStats.load(style)
            style = to_tensor(load_image(style, size=style_size))
        device = next(self.model.parameters()).device
        return self.model.style_stats(style.to(device), transfer=self.transfer)

    @staticmethod
    def _quantiles(stats: StyleStats) -> Tensor:
        if stats.quantiles is None:
            where = f"style preset {stats.source}" if stats.source else "StyleStats"
            raise ValueError(
                f"{where} holds only AdaIN's mean and std: transfer='efdm' needs the sorted "
                "features (`adain style-encode --transfer efdm`, or pass the style image)"
            )
        return resample(stats.quantiles.float().cpu(), PRESET_QUANTILES)

    @property
    def num_styles(self) -> int:
        return self.bank_mean.shape[0]

    def draw(
        self, batch: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(stylised?, style index, alpha)`` for ``batch`` images, each ``(batch,)`` on the CPU.

        All three are drawn for every image, so how much of the generator a call uses does not
        depend on the outcomes.
        """
        generator = generator if generator is not None else self.generator
        chosen = torch.rand(batch, generator=generator) < self.p
        index = torch.randint(self.num_styles, (batch,), generator=generator)
        low, high = self.alpha
        alpha = low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64)
        return chosen, index, alpha

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment ``(B, 3, H, W)`` or ``(3, H, W)`` images (float in [0, 1] or ``uint8``).

        Returns:
            A new tensor of the same shape, dtype and device (the input itself when no image
            was chosen).
        """
        single = images.dim() == 3
        batch = images.unsqueeze(0) if single else images
        if batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(
                "StyleAugment takes (B, 3, H, W) or (3, H, W) RGB images, got "
                f"{tuple(images.shape)}"
            )
        chosen, index, alpha = self.draw(batch.shape[0], generator)
        if not chosen.any():
            return images
        rows = chosen.nonzero().flatten()
        device = self.bank_mean.device
        picked = batch[rows.to(batch.device)].to(device)
        content = picked.float() / 255.0 if picked.dtype == torch.uint8 else picked.float()
        styles = index[rows].to(device)
        out = stylize_each(
            self.model,
            content,
            self.bank_mean[styles],
            self.bank_std[styles],
            [float(a) for a in alpha[rows]],
            quantiles=None if self.bank_quantiles is None else self.bank_quantiles[styles],
            transfer=self.transfer,
        ).clamp(0.0, 1.0)
        if batch.dtype == torch.uint8:
            out = out.mul(255.0).round()
        result = batch.clone()
        result[rows.to(batch.device)] = out.to(batch.device, batch.dtype)
        return result[0] if single else result
