"""The Fréchet distance between two Gaussians fitted to feature sets (FID, Heusel et al. 2017).

``d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))``. The trace of the matrix
square root is taken as the sum of the square roots of the eigenvalues of the symmetric PSD
matrix ``S_1^(1/2) S_2 S_1^(1/2)``, which has the eigenvalues of ``S_1 S_2``: two symmetric
eigendecompositions in float64, where pytorch-fid calls ``scipy.linalg.sqrtm`` on the
non-symmetric product (and must discard an imaginary part round-off leaves).
"""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``(N, D)`` features, in float64.

    Raises:
        ValueError: fewer than two feature vectors (no covariance).
    """
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(
            f"a Fréchet distance needs at least 2 feature vectors (N, D), got "
            f"{tuple(features.shape)}: evaluate more images"
        )
    features = features.double()
    return features.mean(dim=0), torch.cov(features.T, correction=1).reshape(
        features.shape[1], features.shape[1]
    )


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    eigvals, eigvecs = torch.linalg.eigh(matrix)
    # Round-off leaves tiny negative eigenvalues on rank-deficient covariances (N < D).
    return (eigvecs * eigvals.clamp_min(0).sqrt()) @ eigvecs.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Squared Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1, mu2: ``(D,)`` means.
        sigma1, sigma2: ``(D, D)`` symmetric positive semi-definite covariances.

    Returns:
        The distance as FID reports it (the squared Wasserstein-2 distance), >= 0.
    """
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"the two Gaussians differ in dimension: {tuple(mu1.shape)} {tuple(sigma1.shape)} "
            f"vs {tuple(mu2.shape)} {tuple(sigma2.shape)}"
        )
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    root1 = _sqrtm_psd((sigma1 + sigma1.T) / 2)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)


def feature_distance(features1: Tensor, features2: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to ``(N1, D)`` and ``(N2, D)`` feature sets.

    With few samples (``N1 * N2 <= D^2``: an evaluation of tens of images against 2048 Inception
    features) it is computed from the samples, exactly: with centred samples ``A_i`` and
    ``S_i = A_i^T A_i / (N_i - 1)``, the non-zero eigenvalues of ``S_1 S_2`` are the squared
    singular values of ``A_1 A_2^T / sqrt((N_1 - 1)(N_2 - 1))``, an ``N1 x N2`` matrix, so no
    ``D x D`` eigendecomposition is needed.
    """
    mu1, sigma1 = gaussian_stats(features1)  # checks the shapes
    n1, n2, dims = features1.shape[0], features2.shape[0], features1.shape[1]
    if n1 * n2 > dims * dims:
        return frechet_distance(mu1, sigma1, *gaussian_stats(features2))
    centred1 = features1.double() - mu1
    mu2 = features2.double().mean(dim=0)
    centred2 = features2.double() - mu2
    if features2.shape[0] < 2 or features2.shape[1] != dims:
        gaussian_stats(features2)  # raises the same error as the covariance route
        raise ValueError(f"feature sets of {dims} and {features2.shape[1]} dimensions")
    scale = ((n1 - 1) * (n2 - 1)) ** 0.5
    trace_sqrt = torch.linalg.svdvals(centred1 @ centred2.T).sum() / scale
    traces = centred1.square().sum() / (n1 - 1) + centred2.square().sum() / (n2 - 1)
    return max(float((mu1 - mu2).square().sum() + traces - 2 * trace_sqrt), 0.0)
