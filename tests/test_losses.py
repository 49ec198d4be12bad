"""Losses against formulas written out independently here (Gatys et al., neural-style, AdaIN)."""

from __future__ import annotations

import pytest
import torch

from adain.functional import gram_matrix
from adain.losses import (
    adain_content_loss,
    content_loss,
    gram_loss,
    gram_mse_loss,
    mean_std_loss,
    style_loss_gram,
    style_loss_mean_std,
    total_variation_loss,
)


def _feats(seed: int, shape: tuple[int, ...] = (2, 3, 4, 5)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_gram_matrix_of_ones_is_positions_per_entry():
    feats = torch.ones(2, 3, 4, 5)
    gram = gram_matrix(feats)
    assert gram.shape == (2, 3, 3)
    torch.testing.assert_close(gram, torch.full((2, 3, 3), 20.0))
    torch.testing.assert_close(gram_matrix(feats, normalize=True), torch.ones(2, 3, 3))


def test_gram_loss_is_zero_for_identical_features():
    feats = _feats(0)
    assert gram_loss(feats, gram_matrix(feats)).item() == 0.0


def test_gram_loss_matches_gatys_eq4_written_out():
    gen, sty = _feats(1, (1, 3, 2, 3)), _feats(2, (1, 3, 2, 3))
    n, m = 3, 6
    f, a = gen.reshape(n, m).tolist(), sty.reshape(n, m).tolist()
    expected = 0.0
    for i in range(n):
        for j in range(n):
            g_ij = sum(f[i][k] * f[j][k] for k in range(m))
            a_ij = sum(a[i][k] * a[j][k] for k in range(m))
            expected += (g_ij - a_ij) ** 2
    expected /= 4 * n**2 * m**2
    assert gram_loss(gen, gram_matrix(sty)).item() == pytest.approx(expected, rel=1e-12)


def test_style_loss_gram_is_the_weighted_sum():
    gen = {"a": _feats(3), "b": _feats(4, (2, 5, 3, 3))}
    sty = {"a": _feats(5), "b": _feats(6, (2, 5, 3, 3))}
    grams = {k: gram_matrix(v) for k, v in sty.items()}
    weights = {"a": 0.25, "b": 2.0}
    expected = 0.25 * gram_loss(gen["a"], grams["a"]) + 2.0 * gram_loss(gen["b"], grams["b"])
    torch.testing.assert_close(style_loss_gram(gen, grams, weights), expected)


def test_gram_mse_loss_matches_neural_style_styleloss():
    # neural_style.lua StyleLoss: G = gram(input) / input:nElement(); MSECriterion(G, target).
    gen, sty = _feats(7, (1, 4, 3, 5)), _feats(8, (1, 4, 6, 2))
    g = gen[0].reshape(4, -1) @ gen[0].reshape(4, -1).T / gen[0].numel()
    a = sty[0].reshape(4, -1) @ sty[0].reshape(4, -1).T / sty[0].numel()
    expected = ((g - a) ** 2).mean()
    target = gram_matrix(sty) / sty[0].numel()
    torch.testing.assert_close(gram_mse_loss(gen, target), expected)


def _neural_style_tv_grad(x: torch.Tensor) -> torch.Tensor:
    """neural_style.lua TVLoss:updateGradInput (strength 1), transcribed to 0-based indexing."""
    grad = torch.zeros_like(x)
    x_diff = x[:, :, :-1, :-1] - x[:, :, :-1, 1:]
    y_diff = x[:, :, :-1, :-1] - x[:, :, 1:, :-1]
    grad[:, :, :-1, :-1] += x_diff + y_diff
    grad[:, :, :-1, 1:] -= x_diff
    grad[:, :, 1:, :-1] -= y_diff
    return grad


def test_total_variation_gradient_is_neural_styles():
    image = _feats(9, (2, 3, 5, 7)).requires_grad_(True)
    total_variation_loss(image).backward()
    torch.testing.assert_close(image.grad, _neural_style_tv_grad(image.detach()))


def test_total_variation_value_on_a_written_out_case():
    # [[0, 1], [2, 3]]: only the top-left corner has both neighbours (1 - 0 and 2 - 0).
    image = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    assert total_variation_loss(image).item() == 0.5 * (1.0 + 4.0)
    assert total_variation_loss(torch.full((1, 3, 6, 6), 0.3)).item() == 0.0


def test_content_losses():
    gen, tgt = _feats(10), _feats(11)
    torch.testing.assert_close(content_loss(gen, tgt), 0.5 * ((gen - tgt) ** 2).sum())
    torch.testing.assert_close(adain_content_loss(gen, tgt), ((gen - tgt) ** 2).mean())


def test_mean_std_loss_matches_pytorch_adain_convention():
    # pytorch-AdaIN: unbiased variance + 1e-5 per channel, nn.MSELoss on means and stds.
    gen, sty = _feats(12), _feats(13, (2, 3, 6, 6))

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(*x.shape[:2], -1)
        return flat.mean(-1), (flat.var(-1, unbiased=True) + 1e-5).sqrt()

    (gm, gs), (sm, ss) = stats(gen), stats(sty)
    expected = ((gm - sm) ** 2).mean() + ((gs - ss) ** 2).mean()
    torch.testing.assert_close(mean_std_loss(gen, sty), expected)
    total = style_loss_mean_std({"a": gen, "b": sty}, {"a": sty, "b": sty})
    torch.testing.assert_close(total, expected)
