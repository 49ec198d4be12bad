"""The Gram method (Gatys et al., CVPR 2016): optimise the pixels of an image to match the VGG
features of a content image and the Gram matrices of a style image.

Losses follow the seed's formulas (``losses.content_loss``, ``losses.gram_loss``), or
jcjohnson/neural-style's normalisation for its preset. The encoder is the AdaIN model's VGG-19.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from adain.architecture import CAFFE_BGR_MEAN
from adain.checks import check_image
from adain.encoder import VGG19Encoder
from adain.functional import gram_matrix
from adain.losses import content_loss, gram_loss, gram_mse_loss, total_variation_loss
from adain.model import AdaIN

# Gatys et al. 2016 Sec. 3: content at conv4_2, style at conv1_1..conv5_1. Caffe's ReLUs run in
# place, so those blobs hold the rectified responses: relu4_2 and relu*_1 here.
GATYS_CONTENT_LAYERS = ("relu4_2",)
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# Both references optimise the Caffe image (RGB -> BGR, 0-255 scale); ours is [0, 1].
PIXEL_SCALE = 255.0
# The Caffe mean colour as RGB in [0, 1]: what a near-zero Caffe-space noise image looks like.
MEAN_RGB = tuple(c / PIXEL_SCALE for c in reversed(CAFFE_BGR_MEAN))

Callback = Callable[[int, dict[str, float], Tensor], bool | None]
Init = Literal["content", "noise", "adain"]


@dataclass(frozen=True)
class GatysConfig:
    """Settings of one Gram-method optimisation; the defaults are the :meth:`gatys2016` preset.

    Note:
        Deviations: neural-style scales the image by 256 and we by 255 (vgg_normalised); the
        style Gram is rescaled to the generated image's size when the two sizes differ
        (``G_S * M_G / M_S``; the paper assumes equal sizes); the output is clamped to [0, 1]
        once, at the end (neither reference clamps while optimising).
    """

    content_layers: tuple[str, ...] = GATYS_CONTENT_LAYERS  # Gatys 2016 Sec. 3; neural-style
    style_layers: tuple[str, ...] = GATYS_STYLE_LAYERS  # Gatys 2016 Sec. 3; neural-style
    layer_weights: tuple[float, ...] = (0.2,) * 5  # w_l = 1/5 on those layers: Gatys 2016 Sec. 3
    # alpha/beta = 1e-3: the ratio of most of Gatys et al.'s figures (the arXiv version,
    # 1508.06576, shows 1e-3 and 1e-4; from the papers' text, not their code: verify per figure).
    content_weight: float = 1.0  # alpha
    style_weight: float = 1e3  # beta
    tv_weight: float = 0.0  # Gatys 2016 uses none; neural-style -tv_weight 1e-3
    # "gatys": seed formulas (1/2 sum, 1/(4 N^2 M^2)); "neural_style": its MSE-based modules.
    losses: Literal["gatys", "neural_style"] = "gatys"
    pooling: Literal["max", "avg"] = "avg"  # Gatys 2016 Sec. 2: average pooling looked better
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"  # Gatys 2016 Sec. 2: L-BFGS
    steps: int = 500  # the AdaIN paper's speed table times Gatys at 500 iterations
    # None: 1.0 for L-BFGS (torch optim.lbfgs default, neural-style) and 10/255 for Adam
    # (neural-style -learning_rate 1e1 in 0-255 pixel units).
    lr: float | None = None
    history_size: int = 100  # L-BFGS memory: torch optim.lbfgs nCorrection default (neural-style)
    init: Init = "noise"  # Gatys 2016 Sec. 2: start from white noise
    # Noise std in [0, 1] pixels around the mean colour: leongatys/PytorchNeuralStyleTransfer
    # draws randn in 0-255 Caffe units (std 1/255); neural-style randn * 0.001 (std 0.001/256).
    noise_std: float = 1.0 / 255.0
    adain_alpha: float = 1.0  # AdaIN's content-style trade-off for init="adain" (full style)
    # Longer side in px that larger file inputs are shrunk to (neural-style -image_size 512;
    # smaller ones are kept unless the CLI's --upscale); gatys() itself optimises a tensor at the
    # size it is given.
    image_size: int | None = 512
    seed: int | None = 0  # seed of the noise start; None: a fresh random seed each run

    def __post_init__(self) -> None:
        if len(self.layer_weights) != len(self.style_layers):
            raise ValueError(
                f"layer_weights has {len(self.layer_weights)} entries for "
                f"{len(self.style_layers)} style_layers: give one weight per layer"
            )
        if not self.content_layers and not self.style_layers:
            raise ValueError("give at least one content or style layer")
        for name, allowed in (
            ("losses", ("gatys", "neural_style")),
            ("pooling", ("max", "avg")),
            ("optimizer", ("lbfgs", "adam")),
            ("init", ("content", "noise", "adain")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if min(self.content_weight, self.style_weight, self.tv_weight) < 0:
            raise ValueError("content_weight, style_weight and tv_weight must be >= 0")
        if self.image_size is not None and self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 px (or None), got {self.image_size}")

    @classmethod
    def gatys2016(cls, **overrides: object) -> GatysConfig:
        """Gatys, Ecker & Bethge, CVPR 2016: seed losses, average pooling, noise start, L-BFGS."""
        return dataclasses.replace(cls(), **overrides)  # type: ignore[arg-type]

    @classmethod
    def neural_style(cls, **overrides: object) -> GatysConfig:
        """jcjohnson/neural-style's defaults (neural_style.lua command-line options)."""
        preset = cls(
            layer_weights=(1.0,) * 5,  # every style module gets -style_weight
            content_weight=5.0,  # -content_weight 5e0
            style_weight=100.0,  # -style_weight 1e2
            tv_weight=1e-3,  # -tv_weight 1e-3
            losses="neural_style",
            pooling="max",  # -pooling max
            steps=1000,  # -num_iterations 1000
            init="noise",  # -init random
            noise_std=0.001 / 256.0,  # torch.randn(...):mul(0.001) on the x256 Caffe image
        )
        return dataclasses.replace(preset, **overrides)  # type: ignore[arg-type]


PRESETS: dict[str, Callable[..., GatysConfig]] = {
    "gatys2016": GatysConfig.gatys2016,
    "neural_style": GatysConfig.neural_style,
}


def _resolve_encoder(
    model: AdaIN | VGG19Encoder | str | Path | None,
) -> tuple[VGG19Encoder, AdaIN | None]:
    if isinstance(model, VGG19Encoder):
        return model, None
    if not isinstance(model, AdaIN):
        from adain.model import load_model

        model = load_model(model)
    return model.encoder, model


class _Objective:
    """Targets computed once, and the weighted loss of an image against them."""

    def __init__(self, encoder: VGG19Encoder, content: Tensor, style: Tensor, config: GatysConfig):
        self.encoder, self.config = encoder, config
        self.layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
        with torch.no_grad():
            self.content_feats = encoder(content, config.content_layers)
            style_feats = encoder(style, config.style_layers)
        # Grams per position (style size M_S); scaled to the generated size M_G in __call__.
        # neural-style divides by the style's C * H_s * W_s instead (its own size).
        divisor = {
            n: f.shape[1] if config.losses == "neural_style" else 1 for n, f in style_feats.items()
        }
        self.style_grams = {
            n: gram_matrix(f, normalize=True) / divisor[n] for n, f in style_feats.items()
        }  # (1 or B, C, C)

    def __call__(self, image: Tensor) -> dict[str, Tensor]:
        config = self.config
        feats = self.encoder(image, self.layers)
        zero = image.new_zeros(())
        if config.losses == "gatys":  # seed eq. 1 and eq. 4, the style Gram at this image's M_l
            content_term = content_loss
            style_term = lambda f, gram: gram_loss(f, gram * f.shape[2] * f.shape[3])  # noqa: E731
        else:  # neural-style's ContentLoss (MSECriterion) and StyleLoss (Gram / nElement, MSE)
            content_term, style_term = F.mse_loss, gram_mse_loss
        content = sum(
            (content_term(feats[n], self.content_feats[n]) for n in config.content_layers), zero
        )
        pairs = zip(config.style_layers, config.layer_weights, strict=True)
        style = sum((w * style_term(feats[n], self.style_grams[n]) for n, w in pairs), zero)
        tv = total_variation_loss(image * PIXEL_SCALE) if config.tv_weight > 0 else zero
        total = (
            config.content_weight * content + config.style_weight * style + config.tv_weight * tv
        )
        return {"total": total, "content": content, "style": style, "tv": tv}


def _initial_image(
    content: Tensor, style: Tensor, config: GatysConfig, adain_model: AdaIN | None
) -> Tensor:
    if config.init == "content":
        return content.clone()
    if config.init == "adain":
        if adain_model is None:
            raise ValueError(
                "init='adain' needs an AdaIN model with a decoder, not a bare encoder: pass "
                "model=AdaIN(...) or choose init='content' or 'noise'"
            )
        with torch.no_grad():
            return adain_model(content, style, config.adain_alpha).clamp(0.0, 1.0)
    generator = torch.Generator(device=content.device)
    if config.seed is not None:
        generator.manual_seed(config.seed)
    else:
        generator.seed()
    noise = torch.randn(content.shape, generator=generator, device=content.device)
    mean = torch.tensor(MEAN_RGB, device=content.device).view(1, 3, 1, 1)
    return mean + config.noise_std * noise


def gatys(
    content: Tensor,
    style: Tensor,
    config: GatysConfig | None = None,
    model: AdaIN | VGG19Encoder | str | Path | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Stylise ``content`` by optimising its pixels (Gatys et al. 2016, eq. 7).

    Minimises ``content_weight * L_content + style_weight * sum_l w_l E_l + tv_weight * TV``.

    Args:
        content: ``(B, 3, H, W)`` RGB in [0, 1], ``H, W >= 16``; the output has this size.
        style: ``(1 or B, 3, h, w)`` RGB in [0, 1], any size ``>= 16``.
        config: settings; ``None`` is :meth:`GatysConfig.gatys2016`.
        model: an :class:`AdaIN` (needed for ``init="adain"``), a bare ``VGG19Encoder`` to
            relu5_1, a folder or Hub id, or ``None`` for the default model. Never modified: a
            different ``pooling`` is set on a shallow copy that shares the weights.
        callback: called after every iteration with ``(step, losses, image)``: ``losses``
            holds floats ``total``, ``content``, ``style`` and ``tv`` (the last three
            unweighted) at the iterate the step started from; ``image`` is the new iterate
            (detached, unclamped; clone it to keep it). Returning ``False`` stops early.

    Returns:
        ``(B, 3, H, W)`` image clamped to [0, 1], on ``content``'s device.
    """
    config = config or GatysConfig.gatys2016()
    encoder, adain_model = _resolve_encoder(model)
    if encoder.pooling != config.pooling:
        encoder = copy.copy(encoder)  # shares parameters; only the copy's attribute changes
        encoder.pooling = config.pooling
    device = next(encoder.parameters()).device
    out_device = content.device
    content = check_image(content, "content").float().to(device)
    style = check_image(style, "style").float().to(device)

    objective = _Objective(encoder, content, style, config)
    # Contiguous: L-BFGS flattens gradients with view(), and to_tensor() gives permuted strides.
    start = _initial_image(content, style, config, adain_model)
    image = start.detach().contiguous().requires_grad_(True)
    if config.optimizer == "lbfgs":
        # One iteration per step() call: PyTorch keeps the L-BFGS history in the optimiser
        # state, so this runs the same iterations as one call with max_iter=steps and lets
        # the callback see each one. Negative tolerances: never stop early (neural-style's
        # tolX = tolFun = -1).
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
            [image],
            lr=1.0 if config.lr is None else config.lr,
            max_iter=1,
            history_size=config.history_size,
            tolerance_grad=-1.0,
            tolerance_change=-1.0,
        )
    else:
        optimizer = torch.optim.Adam(
            [image], lr=10.0 / PIXEL_SCALE if config.lr is None else config.lr
        )

    last: dict[str, Tensor] = {}

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        losses = objective(image)
        losses["total"].backward()
        last.update(losses)
        return losses["total"]

    for step in range(1, config.steps + 1):
        optimizer.step(closure)
        if callback is not None:
            values = {name: float(value.detach()) for name, value in last.items()}
            if callback(step, values, image.detach()) is False:
                break
    return image.detach().clamp(0.0, 1.0).to(out_device)
