"""The AdaIN model: frozen VGG-19 encoder + adaptive instance normalisation + trained decoder."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from safetensors.torch import load_file
from torch import Tensor, nn

from adain.decoder import Decoder
from adain.encoder import CONTENT_LAYER, VGG19Encoder
from adain.functional import (
    EPS,
    adaptive_instance_norm,
    calc_mean_std,
    coral,
    masked_mean_std,
    transfer_luminance,
)
from adain.style import StyleStats

PAPER_URL = "https://arxiv.org/abs/1703.06868"
# README.md written by save_pretrained (a Jinja template filled by huggingface_hub). Published
# checkpoints get the fuller card of hub/model_card.md (data, config, licences, deviations).
MODEL_CARD_TEMPLATE = """---
{{ card_data }}
---

# AdaIN style transfer

Arbitrary style transfer with Adaptive Instance Normalization (Huang & Belongie, ICCV 2017,
{{ paper_url }}), saved by the adain library: a frozen VGG-19 encoder, AdaIN on its relu4_1
features, and a trained decoder. `config.json` holds the
architecture, `model.safetensors` the weights.

```python
from adain import AdaIN, stylize

model = AdaIN.from_pretrained("path/or/org-name")  # this folder or repository
image = stylize("content.jpg", "style.jpg", model=model, alpha=0.8)
```

Command line: `adain stylize content.jpg --style style.jpg -o out.png --model path/or/org-name`.
"""
WEIGHTS_NAME = "model.safetensors"
# Three 2x poolings between the input and relu4_1: sizes are padded to a multiple of this.
DOWNSAMPLING = 8
# Below this, relu4_1 has too few positions for a meaningful (or defined) variance.
MIN_SIDE = 16

PreserveColor = Literal["coral", "luminance"]
StyleInput = Tensor | StyleStats


def _check_image(image: object, name: str) -> Tensor:
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


def _pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Reflect-pad bottom and right so H and W are multiples of ``multiple``."""
    pad_h = -x.shape[2] % multiple
    pad_w = -x.shape[3] % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")


def resolve_styles(
    styles: Sequence[StyleInput],
    content: Tensor,
    preserve_color: PreserveColor | None,
    stats_of: Callable[[Tensor], StyleStats],
) -> list[StyleStats]:
    """Style images or statistics -> statistics, recolouring images first for ``"coral"``.

    Args:
        styles: style images ``(B or 1, 3, h, w)`` in [0, 1] and/or :class:`StyleStats`.
        content: ``(B, 3, H, W)`` content, whose colours ``"coral"`` copies into each style.
        preserve_color: ``None``, ``"coral"`` or ``"luminance"`` (validated here).
        stats_of: encodes one style image into its statistics (e.g. :meth:`AdaIN.style_stats`).
    """
    if not styles:
        raise ValueError("give at least one style")
    if preserve_color not in (None, "coral", "luminance"):
        raise ValueError(
            f"preserve_color must be 'coral', 'luminance' or None, got {preserve_color!r}"
        )
    stats = []
    for style in styles:
        if isinstance(style, StyleStats):
            if preserve_color == "coral":
                raise ValueError(
                    "preserve_color='coral' recolours the style image: pass images, not "
                    "StyleStats (or use preserve_color='luminance')"
                )
            stats.append(style)
            continue
        style = _check_image(style, "style")
        if preserve_color == "coral":
            style = coral(style.expand(content.shape[0], -1, -1, -1), content)
        stats.append(stats_of(style))
    return stats


class AdaIN(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="adain",
    paper_url=PAPER_URL,
    license="mit",
    pipeline_tag="image-to-image",
    tags=["style-transfer", "adain", "arbitrary-style-transfer"],
    model_card_template=MODEL_CARD_TEMPLATE,
):
    """Arbitrary style transfer with AdaIN (Huang & Belongie, ICCV 2017).

    ``AdaIN.from_pretrained(repo_id_or_dir)(content, style, alpha=0.8)`` stylises ``(B, 3, H, W)``
    RGB tensors in [0, 1] and returns ``(B, 3, H, W)`` at the content's size, unclamped.

    Args:
        encoder_depth: ``"relu5_1"`` keeps VGG-19 up to relu5_1 so the Gram path (Gatys et al.)
            can share the encoder; ``"relu4_1"`` is all AdaIN itself needs (14 MB less).
        base_channels: VGG width (64; smaller widths are for tests and experiments only).
        eps: variance epsilon of the feature statistics.

    Note:
        Statistics follow pytorch-AdaIN (unbiased variance + 1e-5, content and style), so converted
        release weights reproduce that port. Unlike both releases, inputs of any size are
        reflect-padded to a multiple of 8 and the output is cropped back, so the output size
        always equals the input size; ``alpha > 1`` extrapolates instead of raising.
    """

    def __init__(
        self,
        encoder_depth: str = "relu5_1",
        base_channels: int = 64,
        eps: float = EPS,
    ):
        super().__init__()
        self.encoder = VGG19Encoder(depth=encoder_depth, base_channels=base_channels)
        self.decoder = Decoder(base_channels=base_channels)
        self.eps = eps

    # Loading -------------------------------------------------------------------------------

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: object,
    ) -> AdaIN:
        # Replaces the mixin's loader, which defaults to strict=False (missing weights would stay
        # random without a word) and print()s to stdout.
        model = cls(**model_kwargs)  # type: ignore[arg-type]
        if os.path.isdir(model_id):
            weights_file = os.path.join(model_id, WEIGHTS_NAME)
            if not os.path.isfile(weights_file):
                raise FileNotFoundError(
                    f"{model_id} has no {WEIGHTS_NAME}: point to a folder written by "
                    "save_pretrained() or `adain convert`"
                )
        else:
            weights_file = hf_hub_download(
                repo_id=model_id,
                filename=WEIGHTS_NAME,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
            from adain.weights.hub import verify_download

            verify_download(weights_file)  # the client checks sizes only; this checks content
        state_dict = load_file(weights_file, device=str(map_location))
        model.load_checked(state_dict, source=weights_file, strict=strict)
        return model.eval()

    def load_checked(
        self, state_dict: Mapping[str, Tensor], source: str | Path, strict: bool = True
    ) -> None:
        """``load_state_dict`` with one-line errors that name the file and the offending key."""
        expected = self.state_dict()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if strict and missing:
            raise ValueError(f"{source}: missing weight {missing[0]!r} ({len(missing)} missing)")
        if strict and unexpected:
            raise ValueError(
                f"{source}: unexpected weight {unexpected[0]!r} ({len(unexpected)} unexpected); "
                "does config.json match the weights?"
            )
        for key, value in state_dict.items():
            if key in expected and value.shape != expected[key].shape:
                raise ValueError(
                    f"{source}: weight {key!r} has shape {tuple(value.shape)}, the model expects "
                    f"{tuple(expected[key].shape)}; does config.json match the weights?"
                )
        self.load_state_dict(state_dict, strict=strict)

    @classmethod
    def from_original(
        cls,
        vgg: str | Path,
        decoder: str | Path,
        encoder_depth: str = "relu5_1",
    ) -> AdaIN:
        """Build a model from the released ``vgg_normalised`` and decoder files (.pth or .t7)."""
        from adain.weights.convert import load_original

        return load_original(vgg, decoder, encoder_depth=encoder_depth)

    # Parts ---------------------------------------------------------------------------------

    def encode(self, image: Tensor, layers: Sequence[str] = (CONTENT_LAYER,)) -> dict[str, Tensor]:
        """VGG features ``{layer: (B, C, h, w)}`` of a ``(B, 3, H, W)`` image in [0, 1]."""
        return self.encoder(image, layers)

    def decode(self, feats: Tensor) -> Tensor:
        """Image ``(B, 3, 8h, 8w)`` (unclamped) from relu4_1 features ``(B, C, h, w)``."""
        return self.decoder(feats)

    def style_stats(self, style: Tensor) -> StyleStats:
        """Encode a style image ``(B, 3, H, W)`` into its reusable relu4_1 statistics."""
        _check_image(style, "style")
        feats = self.encoder(style, (CONTENT_LAYER,))[CONTENT_LAYER]
        return StyleStats(*calc_mean_std(feats, self.eps), layer=CONTENT_LAYER)

    def transfer(
        self,
        content_feats: Tensor,
        styles: Sequence[StyleStats],
        alpha: float = 1.0,
        weights: Sequence[float] | None = None,
        masks: Tensor | None = None,
    ) -> Tensor:
        """AdaIN in feature space, with interpolation or spatial control, then the alpha blend.

        Args:
            content_feats: ``(B, C, h, w)`` relu4_1 content features.
            styles: one :class:`StyleStats` per style (batch 1 or B each).
            alpha: content-style trade-off, ``t = alpha * AdaIN(...) + (1 - alpha) * f(c)``.
            weights: interpolation weights, one per style (normalised to sum 1).
            masks: ``(B or 1, K, h, w)`` soft masks at feature resolution, one channel per style.
                Each position is shared between the styles in proportion to the masks; positions
                no mask covers keep the content features.

        Returns:
            ``(B, C, h, w)`` target features ``t``.
        """
        alpha = check_alpha(alpha)
        for stats in styles:
            if stats.channels != content_feats.shape[1]:
                raise ValueError(
                    f"style statistics have {stats.channels} channels, this model's encoder "
                    f"{content_feats.shape[1]}: encode the style with the same model"
                )
        styles = [s.to(content_feats.device, content_feats.dtype) for s in styles]
        if masks is not None:
            if weights is not None:
                raise ValueError("give either weights (interpolation) or masks (regions), not both")
            target = self._masked_transfer(content_feats, styles, masks)
        else:
            if len(styles) > 1 and weights is None:
                weights = [1.0] * len(styles)
            mixed = StyleStats.mix(styles, weights) if weights is not None else styles[0]
            target = adaptive_instance_norm(content_feats, mixed.mean, mixed.std, self.eps)
        if alpha == 1.0:
            return target
        return alpha * target + (1.0 - alpha) * content_feats

    def _masked_transfer(
        self, content_feats: Tensor, styles: Sequence[StyleStats], masks: Tensor
    ) -> Tensor:
        check_masks(masks, len(styles))
        masks = masks.to(content_feats)
        total = masks.sum(dim=1, keepdim=True)  # (B, 1, h, w)
        share = masks / total.clamp_min(1.0)  # shares sum to <= 1 at every position
        target = content_feats * (1.0 - share.sum(dim=1, keepdim=True))
        for k, stats in enumerate(styles):
            region = share[:, k : k + 1]
            if not region.any():
                continue
            mean, std = masked_mean_std(content_feats, region, self.eps)
            target = target + region * ((content_feats - mean) / std * stats.std + stats.mean)
        return target

    # Whole pipeline ------------------------------------------------------------------------

    def forward(
        self,
        content: Tensor,
        style: StyleInput | Sequence[StyleInput],
        alpha: float = 1.0,
        *,
        weights: Sequence[float] | None = None,
        masks: Tensor | None = None,
        preserve_color: PreserveColor | None = None,
    ) -> Tensor:
        """Stylise ``content`` with one or several styles.

        Args:
            content: ``(B, 3, H, W)`` RGB in [0, 1], any ``H, W >= 16``.
            style: a style image ``(B or 1, 3, h, w)`` in [0, 1], its :class:`StyleStats`, or a
                sequence of those for interpolation (``weights``) or spatial control (``masks``).
            alpha: content-style trade-off, any finite value >= 0 (paper eq. 14).
            weights: one float >= 0 per style, normalised to sum 1 (paper Sec. 7.3).
            masks: ``(B or 1, K, H', W')`` soft masks in [0, 1], one channel per style; resized to
                the content. Positions no mask covers keep the content.
            preserve_color: ``"coral"`` matches each style image's colour mean and covariance to
                the content before stylising; ``"luminance"`` keeps the content's chroma after.

        Returns:
            ``(B, 3, H, W)`` stylised image, not clamped to [0, 1].
        """
        _check_image(content, "content")
        styles = list(style) if isinstance(style, list | tuple) else [style]
        stats = resolve_styles(styles, content, preserve_color, self.style_stats)

        height, width = content.shape[2:]
        padded = _pad_to_multiple(content, DOWNSAMPLING)
        content_feats = self.encoder(padded, (CONTENT_LAYER,))[CONTENT_LAYER]
        if masks is not None:
            masks = self._resize_masks(masks, (height, width), content_feats.shape[2:])
        target = self.transfer(content_feats, stats, alpha, weights, masks)
        out = self.decoder(target)[:, :, :height, :width]
        if preserve_color == "luminance":
            out = transfer_luminance(out, content)
        return out

    @staticmethod
    def _resize_masks(masks: Tensor, image_size: Sequence[int], feat_size: Sequence[int]) -> Tensor:
        """Masks at any resolution -> content size -> padded like the content -> feature size."""
        if masks.dim() != 4:
            raise ValueError(f"masks must be (B, K, H, W), got {tuple(masks.shape)}")
        masks = masks.float()
        if tuple(masks.shape[2:]) != tuple(image_size):
            masks = F.interpolate(
                masks, size=tuple(image_size), mode="bilinear", align_corners=False
            )
        masks = _pad_to_multiple(masks, DOWNSAMPLING)
        # Area averaging keeps soft borders soft: a feature cell takes the mean of its 8x8 pixels
        # (exact-equality tests on nearest-resized masks drop pixels, as in the Lua release).
        return F.adaptive_avg_pool2d(masks, tuple(feat_size))

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the encoder and the decoder."""
        return {
            "encoder": sum(p.numel() for p in self.encoder.parameters()),
            "decoder": sum(p.numel() for p in self.decoder.parameters()),
        }


def load_model(
    model: str | Path | None = None,
    revision: str | None = None,
    device: str | None = None,
) -> AdaIN:
    """Load a model from a folder or a Hub repository id: ``model``, else ``$ADAIN_MODEL``, else
    the default (:func:`adain.weights.hub.resolve_model_id`).

    Raises:
        ValueError: one line saying what was not found and what to do.
        OSError: the original-file fallback could not download.
    """
    from adain.weights.hub import resolve_model_folder

    loaded = AdaIN.from_pretrained(str(resolve_model_folder(model, revision)))
    return loaded.to(device) if device is not None else loaded
