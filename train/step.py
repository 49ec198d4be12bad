"""One optimisation step of the decoder: the paper's losses (eq. 11-13) and the update."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from adain.architecture import CONTENT_LAYER, STYLE_LAYERS
from adain.encoder import VGG19Encoder
from adain.functional import adaptive_instance_norm, calc_mean_std
from adain.losses import adain_content_loss, mean_std_loss
from train.config import TrainConfig


class NonFiniteLoss(ValueError):
    """The loss of a step is NaN or infinite; raised before the step changes any weight."""

    def __init__(self, value: float):
        self.value = value
        super().__init__(f"non-finite loss ({value})")


def _all_finite(accelerator: Any, loss: Tensor) -> bool:
    """Whether the loss is finite on every process (all stop together if one is not)."""
    bad = (~torch.isfinite(loss.detach())).float().reshape(1)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, "sum")
    return bool(bad.item() == 0)


def compute_losses(
    encoder: VGG19Encoder,
    decoder: torch.nn.Module,
    content: Tensor,
    style: Tensor,
    config: TrainConfig,
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Paper eq. 11-13: ``L = w_c * L_c + w_s * L_s``; returns ``(loss, parts, output)``.

    ``t = AdaIN(f(c), f(s))`` at relu4_1 (the content target, not ``f(c)``); ``L_c`` is the MSE
    between ``f(g(t))`` and ``t``; ``L_s`` sums the mean/std losses at relu1_1..relu4_1. In
    autoencoder mode ``t = f(c)`` and the style targets are the content's own statistics.
    """
    with torch.no_grad():
        content_feats = encoder(content, STYLE_LAYERS if config.autoencoder else (CONTENT_LAYER,))
        if config.autoencoder:
            style_feats = content_feats
            target = content_feats[CONTENT_LAYER]
        else:
            style_feats = encoder(style, STYLE_LAYERS)
            style_mean, style_std = calc_mean_std(style_feats[CONTENT_LAYER])
            target = adaptive_instance_norm(content_feats[CONTENT_LAYER], style_mean, style_std)
    output = decoder(target)  # (B, 3, S, S)
    out_feats = encoder(output, STYLE_LAYERS)
    parts = {"content": adain_content_loss(out_feats[CONTENT_LAYER], target)}
    for layer in STYLE_LAYERS:
        part = mean_std_loss(out_feats[layer], style_feats[layer])
        if config.style_reduction == "sum":  # Lua: squared errors summed over channels
            part = part * out_feats[layer].shape[1]
        parts[f"style/{layer}"] = part
    style_loss = torch.stack([parts[f"style/{layer}"] for layer in STYLE_LAYERS]).sum()
    parts["style"] = style_loss
    loss = config.content_weight * parts["content"] + config.style_weight * style_loss
    parts["total"] = loss
    return loss, parts, output


def train_step(
    accelerator: Any,
    encoder: VGG19Encoder,
    decoder: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    content: Tensor,
    style: Tensor,
    config: TrainConfig,
) -> tuple[dict[str, Tensor], Tensor]:
    """One optimisation step of the decoder; returns the loss parts and the decoded batch.

    Raises:
        NonFiniteLoss: the loss is NaN or infinite (on any process); nothing was updated.
    """
    with accelerator.autocast():
        loss, parts, output = compute_losses(encoder, decoder, content, style, config)
    if not _all_finite(accelerator, loss):  # one sync per step: a NaN must never reach a weight
        raise NonFiniteLoss(float(loss.detach()))
    accelerator.backward(loss)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return parts, output
