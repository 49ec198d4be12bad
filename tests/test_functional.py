"""Feature statistics, AdaIN and colour transfer against formulas written out here."""

from __future__ import annotations

import pytest
import torch

from adain.functional import (
    adaptive_instance_norm,
    calc_mean_std,
    coral,
    gram_matrix,
    luminance,
    transfer_luminance,
)


def _feats(seed: int, shape=(2, 5, 7, 9)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3 + 1


def test_calc_mean_std_is_pytorch_adain_convention():
    """pytorch-AdaIN: unbiased variance + 1e-5, then sqrt (the convention this package uses)."""
    feats = _feats(0).double()
    n, c = feats.shape[:2]
    flat = feats.view(n, c, -1)
    expected_mean = flat.sum(-1) / flat.shape[-1]
    expected_var = ((flat - expected_mean[..., None]) ** 2).sum(-1) / (flat.shape[-1] - 1)
    mean, std = calc_mean_std(feats)
    torch.testing.assert_close(mean.view(n, c), expected_mean)
    torch.testing.assert_close(std.view(n, c), (expected_var + 1e-5).sqrt())


def test_calc_mean_std_refuses_single_position():
    with pytest.raises(ValueError, match="at least 16x16"):
        calc_mean_std(torch.ones(1, 3, 1, 1))


def test_adain_output_carries_style_statistics():
    content = _feats(1)
    style_mean = torch.randn(2, 5, 1, 1)
    style_std = torch.rand(2, 5, 1, 1) + 0.5
    out = adaptive_instance_norm(content, style_mean, style_std)
    mean, std = calc_mean_std(out, eps=0.0)
    torch.testing.assert_close(mean, style_mean, atol=1e-5, rtol=0)
    # The content's eps makes the output std slightly below the style's: sigma_y * s / sqrt(s^2+eps)
    torch.testing.assert_close(std, style_std, atol=1e-5, rtol=1e-5)


def test_gram_matrix_of_ones_is_positions():
    gram = gram_matrix(torch.ones(2, 3, 4, 5))
    assert gram.shape == (2, 3, 3)
    torch.testing.assert_close(gram, torch.full((2, 3, 3), 20.0))
    torch.testing.assert_close(
        gram_matrix(torch.ones(1, 3, 4, 5), normalize=True), torch.ones(1, 3, 3)
    )


def _mean_cov(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = image.reshape(3, -1).double()
    return flat.mean(1), torch.cov(flat)


def test_coral_matches_target_mean_and_covariance():
    generator = torch.Generator().manual_seed(4)
    # Unclamped range: a mid-grey source with modest spread stays inside [0, 1] after transfer.
    source = (0.5 + 0.05 * torch.randn(1, 3, 32, 32, generator=generator)).clamp(0, 1)
    mixing = torch.tensor([[1.0, 0.2, 0.0], [0.0, 0.8, 0.1], [0.3, 0.0, 0.6]])
    target = (0.4 + 0.08 * torch.einsum("ij,bjhw->bihw", mixing, torch.randn(1, 3, 20, 24))).clamp(
        0, 1
    )
    out = coral(source, target)
    assert out.shape == source.shape
    out_mean, out_cov = _mean_cov(out)
    tgt_mean, tgt_cov = _mean_cov(target)
    torch.testing.assert_close(out_mean, tgt_mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(out_cov, tgt_cov, atol=2e-4, rtol=0)


def test_luminance_transfer_keeps_content_chroma():
    generator = torch.Generator().manual_seed(5)
    content = torch.rand(1, 3, 8, 8, generator=generator)
    stylized = torch.rand(1, 3, 8, 8, generator=generator)
    out = transfer_luminance(stylized, content)

    def ycbcr(img):  # JPEG / BT.601 full-range, written out independently
        r, g, b = img[:, 0], img[:, 1], img[:, 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        return y, -0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b

    y_out, cb_out, cr_out = ycbcr(out)
    y_sty, _, _ = ycbcr(stylized)
    _, cb_c, cr_c = ycbcr(content)
    torch.testing.assert_close(y_out, y_sty, atol=1e-5, rtol=0)
    torch.testing.assert_close(cb_out, cb_c, atol=1e-5, rtol=0)
    torch.testing.assert_close(cr_out, cr_c, atol=1e-5, rtol=0)
    torch.testing.assert_close(luminance(out)[:, 0], y_sty, atol=1e-6, rtol=0)
