"""Content and style losses of a stylised image, measured with the model's own VGG encoder.

The AdaIN paper compares methods by its own losses (Fig. 3); Gatys et al. optimise the Gram
loss. Both are measured here on the same features, with the loss functions training and the Gram
method use (:mod:`adain.losses`), so a number here means what it means there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from adain.architecture import STYLE_LAYERS
from adain.encoder import VGG19Encoder
from adain.functional import EPS, gram_matrix
from adain.gatys import GATYS_STYLE_LAYERS
from adain.losses import style_loss_gram, style_loss_mean_std

# Content losses: relu4_1 (AdaIN's transfer layer, paper eq. 12) and relu4_2 (Gatys' layer).
CONTENT_LAYERS = ("relu4_1", "relu4_2")
# The names of the numbers feature_metrics returns, in the order tables show them.
FEATURE_METRICS = (
    "content_loss_relu4_1",
    "content_loss_relu4_2",
    "style_loss_mean_std",
    "style_loss_gram",
)


@torch.no_grad()
def feature_metrics(
    encoder: VGG19Encoder, image: Tensor, content: Tensor, style: Tensor, eps: float = EPS
) -> dict[str, float | None]:
    """The losses of ``image`` against its content and style images (lower is closer).

    Args:
        encoder: the model's VGG encoder (``model.encoder``), as it is (its pooling).
        image: ``(1, 3, H, W)`` stylised image in [0, 1].
        content: ``(1, 3, H, W)`` content image, the same size as ``image``.
        style: ``(1, 3, h, w)`` style image, any size.
        eps: variance epsilon of the mean/std statistics (the model's ``eps``).

    Returns:
        ``content_loss_relu4_1`` and ``content_loss_relu4_2``: mean squared error between the
        features of ``image`` and ``content`` at that layer (paper eq. 12 takes relu4_1);
        ``style_loss_mean_std``: the AdaIN paper's style loss (eq. 13), summed over
        relu1_1..relu4_1; ``style_loss_gram``: Gatys et al.'s ``sum_l w_l E_l`` (eq. 4-5) over
        relu1_1..relu5_1 with ``w_l = 1/5``, the style Gram rescaled to the image's size. A loss
        needing a layer past the encoder's depth (relu4_2, relu5_1 for a relu4_1 encoder) is
        ``None``.
    """
    if image.shape[2:] != content.shape[2:]:
        raise ValueError(
            f"the stylised image is {tuple(image.shape[2:])} and its content "
            f"{tuple(content.shape[2:])}: measure them at the same size"
        )
    available = set(encoder.layer_names)
    content_layers = [n for n in CONTENT_LAYERS if n in available]
    gram_ok = set(GATYS_STYLE_LAYERS) <= available
    style_layers = list(STYLE_LAYERS) + (list(GATYS_STYLE_LAYERS) if gram_ok else [])
    style_layers = list(dict.fromkeys(style_layers))
    feats = encoder(image, dict.fromkeys(style_layers + content_layers))
    content_feats = encoder(content, content_layers)
    style_feats = encoder(style, style_layers)

    metrics: dict[str, float | None] = dict.fromkeys(FEATURE_METRICS)
    for name in content_layers:
        metrics[f"content_loss_{name}"] = float(F.mse_loss(feats[name], content_feats[name]))
    targets = {name: style_feats[name] for name in STYLE_LAYERS}
    metrics["style_loss_mean_std"] = float(style_loss_mean_std(feats, targets, eps))
    if gram_ok:
        # gram_loss compares Grams at the image's number of positions M_l: rescale the style's.
        grams = {
            n: gram_matrix(style_feats[n], normalize=True) * feats[n].shape[2] * feats[n].shape[3]
            for n in GATYS_STYLE_LAYERS
        }
        weights = dict.fromkeys(GATYS_STYLE_LAYERS, 1.0 / len(GATYS_STYLE_LAYERS))
        metrics["style_loss_gram"] = float(style_loss_gram(feats, grams, weights))
    return metrics
