"""Stateless maths: feature statistics, AdaIN, Gram matrices and colour transfer.

Tensors are ``(B, C, H, W)`` unless said otherwise. Nothing here owns weights or touches files.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# pytorch-AdaIN function.py: calc_mean_std adds 1e-5 to the (unbiased) variance.
EPS = 1e-5


def calc_mean_std(feats: Tensor, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and standard deviation over the spatial positions.

    Args:
        feats: ``(B, C, H, W)`` features with ``H * W >= 2``.
        eps: added to the variance before the square root.

    Returns:
        ``(mean, std)``, each ``(B, C, 1, 1)``.

    Note:
        The variance is unbiased (divides by ``H*W - 1``) with ``eps`` added, for content and style
        alike, as in pytorch-AdaIN. The Lua release normalises the content with the biased variance
        and takes the style's biased std without ``eps``; the difference is below 1e-3 relative at
        the feature sizes AdaIN uses (>= 32x32 at relu4_1 for a 256 px image).
    """
    b, c = feats.shape[:2]
    flat = feats.reshape(b, c, -1)
    if flat.shape[-1] < 2:
        raise ValueError(
            f"features of spatial size {tuple(feats.shape[2:])} have no variance: use images of "
            "at least 16x16 pixels"
        )
    var, mean = torch.var_mean(flat, dim=2, correction=1)
    return mean.view(b, c, 1, 1), (var + eps).sqrt().view(b, c, 1, 1)


def adaptive_instance_norm(
    content_feats: Tensor,
    style_mean: Tensor,
    style_std: Tensor,
    eps: float = EPS,
) -> Tensor:
    """AdaIN (paper eq. 8): ``t = sigma(y) * (x - mu(x)) / sigma(x) + mu(y)``.

    Args:
        content_feats: ``(B, C, H, W)`` content features ``x``.
        style_mean: ``(B or 1, C, 1, 1)`` style means ``mu(y)``.
        style_std: ``(B or 1, C, 1, 1)`` style standard deviations ``sigma(y)``.
        eps: variance epsilon of the content statistics (see :func:`calc_mean_std`).

    Returns:
        ``(B, C, H, W)`` features whose per-channel mean and std are the style's.
    """
    content_mean, content_std = calc_mean_std(content_feats, eps)
    return _renormalize(content_feats, (content_mean, content_std), (style_mean, style_std))


def _renormalize(
    feats: Tensor, content: tuple[Tensor, Tensor], style: tuple[Tensor, Tensor]
) -> Tensor:
    # Paper eq. 8 with the content statistics given: (x - mu(x)) / sigma(x) * sigma(y) + mu(y).
    return (feats - content[0]) / content[1] * style[1] + style[0]


Stats = tuple[Tensor, Tensor]


def adain_transfer(
    feats: Tensor,
    content_stats: Sequence[Stats | None],
    style_stats: Sequence[Stats],
    alpha: float = 1.0,
    share: Tensor | None = None,
) -> Tensor:
    """The AdaIN transfer of (part of) a feature map, given the statistics it is made with.

    Every stylisation in this package ends here, whole maps and strips alike: the statistics
    come from the whole image, so a strip is transferred exactly as in a whole-map run.

    Args:
        feats: ``(B, C, h, w)`` relu4_1 content features ``f(c)`` (all of them, or a strip).
        content_stats: ``(mean, std)`` ``(B, C, 1, 1)`` of the content, one per region
            (``None`` for a region no mask covers anywhere); one entry without ``share``.
        style_stats: ``(mean, std)`` ``(B or 1, C, 1, 1)`` per region, or one (a mixture of
            several styles is mixed beforehand: AdaIN is affine in the style statistics).
        alpha: content-style trade-off, ``t = alpha * AdaIN(...) + (1 - alpha) * f(c)``
            (paper eq. 14).
        share: ``(B or 1, K, h, w)`` share of each region at each position (see
            :func:`region_shares`); positions with shares summing below 1 keep that much of
            the content features.

    Returns:
        ``(B, C, h, w)`` target features ``t``.
    """
    if share is None:
        assert content_stats[0] is not None and len(style_stats) == 1
        target = _renormalize(feats, content_stats[0], style_stats[0])
    else:
        target = feats * (1.0 - share.sum(dim=1, keepdim=True))
        for k, (content, style) in enumerate(zip(content_stats, style_stats, strict=True)):
            if content is not None:
                target = target + share[:, k : k + 1] * _renormalize(feats, content, style)
    if alpha == 1.0:
        return target
    return alpha * target + (1.0 - alpha) * feats


def region_shares(masks: Tensor) -> Tensor:
    """Soft masks ``(B, K, h, w)`` -> each region's share of every position.

    Where masks overlap, a position is shared in proportion to them; where they sum below 1,
    the rest keeps the content (shares sum to at most 1).
    """
    return masks / masks.sum(dim=1, keepdim=True).clamp_min(1.0)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Reflect-pad bottom and right so H and W are multiples of ``multiple``."""
    pad_h = -x.shape[2] % multiple
    pad_w = -x.shape[3] % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")


def masks_to_cells(
    masks: Tensor, image_size: Sequence[int], cells: Sequence[int], multiple: int
) -> Tensor:
    """Masks ``(B, K, H', W')`` at any resolution -> the content's size -> padded as the content
    is (:func:`pad_to_multiple`) -> one value per feature cell ``(B, K, *cells)``.

    Area averaging keeps soft borders soft: a cell takes the mean of its ``multiple`` x
    ``multiple`` pixels (the Lua release's exact-equality tests on nearest-resized masks drop
    pixels instead).
    """
    masks = masks.float()
    if tuple(masks.shape[2:]) != tuple(image_size):
        masks = F.interpolate(masks, size=tuple(image_size), mode="bilinear", align_corners=False)
    return F.adaptive_avg_pool2d(pad_to_multiple(masks, multiple), tuple(cells))


def gram_matrix(feats: Tensor, normalize: bool = False) -> Tensor:
    """Gram matrix ``G_ij = sum_k F_ik F_jk`` of ``(B, C, H, W)`` features, shape ``(B, C, C)``.

    Args:
        feats: ``(B, C, H, W)`` features.
        normalize: divide by ``H * W`` (the number of positions ``M_l`` in Gatys et al.).
    """
    b, c = feats.shape[:2]
    flat = feats.reshape(b, c, -1)
    gram = flat @ flat.transpose(1, 2)
    if normalize:
        gram = gram / flat.shape[-1]
    return gram


def _sqrtm_psd(matrix: Tensor, inverse: bool = False) -> Tensor:
    """Square root (or inverse square root) of a batch of symmetric PSD matrices via eigh."""
    eigvals, eigvecs = torch.linalg.eigh(matrix)
    eigvals = eigvals.clamp_min(1e-8)
    scale = eigvals.rsqrt() if inverse else eigvals.sqrt()
    return eigvecs @ torch.diag_embed(scale) @ eigvecs.transpose(-1, -2)


def coral(source: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """Match the RGB mean and covariance of ``source`` to those of ``target`` (CORAL).

    This is the "colour preservation before stylisation" of the paper's Sec. 7.3: the style image
    takes on the content's colours, so the output keeps them.

    Args:
        source: ``(B, 3, H, W)`` image in [0, 1] whose colours change (the style).
        target: ``(B, 3, H', W')`` image in [0, 1] whose colour statistics are copied (the content).
        eps: added to the covariance diagonals so flat images stay invertible.

    Returns:
        ``(B, 3, H, W)`` in [0, 1].
    """
    b = source.shape[0]
    src = source.reshape(b, 3, -1).double()
    tgt = target.reshape(b, 3, -1).double()
    src_mean, tgt_mean = src.mean(-1, keepdim=True), tgt.mean(-1, keepdim=True)
    src_c, tgt_c = src - src_mean, tgt - tgt_mean
    eye = torch.eye(3, dtype=src.dtype, device=src.device)
    src_cov = src_c @ src_c.transpose(1, 2) / (src.shape[-1] - 1) + eps * eye
    tgt_cov = tgt_c @ tgt_c.transpose(1, 2) / (tgt.shape[-1] - 1) + eps * eye
    transform = _sqrtm_psd(tgt_cov) @ _sqrtm_psd(src_cov, inverse=True)  # (B, 3, 3)
    out = transform @ src_c + tgt_mean
    return out.to(source.dtype).reshape_as(source).clamp(0.0, 1.0)


# ITU-R BT.601 luma weights, as used by JPEG's YCbCr.
_LUMA = (0.299, 0.587, 0.114)


def luminance(image: Tensor) -> Tensor:
    """BT.601 luma ``Y`` of a ``(B, 3, H, W)`` RGB image, shape ``(B, 1, H, W)``."""
    r, g, b = image.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def transfer_luminance(stylized: Tensor, content: Tensor) -> Tensor:
    """Keep the content's chroma and take the stylised luma ("colour preservation after").

    In YCbCr the inverse transform has ``dR/dY = dG/dY = dB/dY = 1``, so replacing ``Y`` while
    keeping ``Cb, Cr`` is exactly ``content + (Y_stylized - Y_content)`` on every RGB channel.

    Args:
        stylized: ``(B, 3, H, W)`` stylised image.
        content: ``(B, 3, H, W)`` content image of the same size, in [0, 1].
    """
    return content + (luminance(stylized) - luminance(content))
