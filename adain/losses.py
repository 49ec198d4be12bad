"""Losses shared by training (AdaIN's decoder) and the Gram path (Gatys et al.).

Tensors are ``(B, C, H, W)`` features; every loss returns a scalar tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor

from adain.functional import EPS, calc_mean_std, gram_matrix

__all__ = [
    "adain_content_loss",
    "content_loss",
    "gram_loss",
    "gram_matrix",  # re-exported: the Gram loss's building block lives in functional.py
    "gram_mse_loss",
    "mean_std_loss",
    "style_loss_gram",
    "style_loss_mean_std",
    "total_variation_loss",
]


def content_loss(generated: Tensor, target: Tensor) -> Tensor:
    """Gatys et al. eq. 1: ``L_content = 1/2 * sum_ij (F_ij - P_ij)^2`` (a sum, not a mean).

    Args:
        generated: ``(B, C, H, W)`` features ``F`` of the image being optimised.
        target: features ``P`` of the content image, same shape (or broadcastable).
    """
    return 0.5 * (generated - target).square().sum()


def gram_loss(generated: Tensor, target_gram: Tensor) -> Tensor:
    """Gatys et al. eq. 4: ``E_l = 1 / (4 N_l^2 M_l^2) * sum_ij (G_ij - A_ij)^2``.

    Args:
        generated: ``(B, N_l, H, W)`` features of the image being optimised (``M_l = H * W``).
        target_gram: ``(B or 1, N_l, N_l)`` unnormalised Gram matrix of the style features at
            the same ``M_l`` (rescale it by ``M_l / M_style`` when the style's size differs).

    Returns:
        Scalar, summed over the batch.
    """
    channels = generated.shape[1]
    positions = generated.shape[2] * generated.shape[3]
    diff = gram_matrix(generated) - target_gram
    return diff.square().sum() / (4.0 * channels**2 * positions**2)


def gram_mse_loss(generated: Tensor, target_gram: Tensor) -> Tensor:
    """jcjohnson/neural-style's ``StyleLoss``: MSE between Grams divided by ``C * H * W``.

    Args:
        generated: ``(B, C, H, W)`` features of the image being optimised.
        target_gram: ``(B or 1, C, C)`` style Gram already divided by the style's own
            ``C * H_s * W_s`` (neural-style: ``G:div(input:nElement())``).

    Returns:
        Scalar: ``mean_ij (G_ij / (C H W) - target_ij)^2``, averaged over the batch too.
    """
    channels = generated.shape[1]
    positions = generated.shape[2] * generated.shape[3]
    gram = gram_matrix(generated) / (channels * positions)
    return F.mse_loss(gram, target_gram.expand_as(gram))


def style_loss_gram(
    generated: Mapping[str, Tensor],
    target_grams: Mapping[str, Tensor],
    layer_weights: Mapping[str, float],
) -> Tensor:
    """Gatys et al. eq. 5: ``L_style = sum_l w_l E_l`` over the weighted layers."""
    total = sum(
        w * gram_loss(generated[name], target_grams[name]) for name, w in layer_weights.items()
    )
    assert isinstance(total, Tensor), "layer_weights must not be empty"
    return total


def mean_std_loss(generated: Tensor, target: Tensor, eps: float = EPS) -> Tensor:
    """AdaIN's style loss at one layer (paper eq. 13): ``|mu(g)-mu(s)|^2 + |sigma(g)-sigma(s)|^2``.

    Note:
        Mean squared errors over channels and batch, as pytorch-AdaIN (``nn.MSELoss``); the Lua
        release sums over channels instead, so its style weights are not comparable.
    """
    gen_mean, gen_std = calc_mean_std(generated, eps)
    tgt_mean, tgt_std = calc_mean_std(target, eps)
    return F.mse_loss(gen_mean, tgt_mean) + F.mse_loss(gen_std, tgt_std)


def style_loss_mean_std(
    generated: Mapping[str, Tensor], target: Mapping[str, Tensor], eps: float = EPS
) -> Tensor:
    """Sum of :func:`mean_std_loss` over the layers of ``target`` (relu1_1..relu4_1 in AdaIN)."""
    total = sum(mean_std_loss(generated[name], target[name], eps) for name in target)
    assert isinstance(total, Tensor), "target must not be empty"
    return total


def adain_content_loss(generated: Tensor, target: Tensor) -> Tensor:
    """AdaIN's content loss (paper eq. 12): MSE between ``f(g(t))`` and ``t`` at relu4_1."""
    return F.mse_loss(generated, target)


def total_variation_loss(image: Tensor) -> Tensor:
    """Total variation of jcjohnson/neural-style's ``TVLoss``, as a loss value.

    ``TV(x) = 1/2 * sum_{i<H-1, j<W-1} (x[i, j+1] - x[i, j])^2 + (x[i+1, j] - x[i, j])^2``,
    summed over batch and channels.

    Args:
        image: ``(B, C, H, W)`` image, ``H, W >= 2``, in whatever pixel scale the weight assumes.

    Note:
        neural-style only writes the gradient (``updateGradInput``): at ``[i, j]`` it adds
        ``x_diff + y_diff`` and subtracts them at ``[i, j+1]`` and ``[i+1, j]``, with both
        differences cropped to the top-left ``(H-1) x (W-1)`` block. That is exactly the gradient
        of the form above (the 1/2 cancels the square's 2, and the last row's horizontal and the
        last column's vertical differences are left out). neural-style applies it to the Caffe
        image (0-255 scale): multiply a [0, 1] image by 255 to reuse its ``tv_weight``.
    """
    corner = image[:, :, :-1, :-1]
    dw = image[:, :, :-1, 1:] - corner  # horizontal neighbour differences
    dh = image[:, :, 1:, :-1] - corner  # vertical neighbour differences
    return 0.5 * (dw.square().sum() + dh.square().sum())
