"""Stylisation in strips: agreement with whole-image runs, exact statistics, the one-piece path."""

from __future__ import annotations

import pytest
import torch

from adain.architecture import CONTENT_LAYER, DOWNSAMPLING
from adain.engine import strips
from adain.engine.plan import StripPlan, plan_strips, whole_plan
from adain.engine.runner import Runner
from adain.functional import (
    adaptive_instance_norm,
    calc_mean_std,
    masks_to_cells,
    pad_to_multiple,
    region_shares,
)
from adain.style import StyleStats
from tests.conftest import TINY_WIDTH, smooth_image

# Outputs in pieces and whole (magnitude ~2) differ only by float summation order: strips carry
# the rows each layer needs and column halos cover the receptive fields, so we compare
# everywhere, borders included.
ATOL = 1e-4
# relu4_1 features through ten layers: float rounding relative to the map's largest value.
FEATURES_RTOL = 1e-5


def _runner(model, channels_last: bool = False) -> Runner:
    return Runner(model.encoder, model.decoder, model.eps, "cpu", channels_last=channels_last)


def _close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL) -> None:
    assert actual.shape == expected.shape
    diff = (actual - expected).abs()
    assert diff.max() <= atol, f"max diff {diff.max():.2e}, mean {diff.mean():.2e}"


def _close_relative(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    assert actual.shape == expected.shape
    diff = (actual - expected).abs().max()
    assert diff <= rtol * expected.abs().max(), f"max diff {diff:.2e}"


def _stats(model, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-image relu4_1 ``(mean, std)``: the module walk and calc_mean_std, no engine."""
    with torch.no_grad():
        return calc_mean_std(model.encoder(image)[CONTENT_LAYER], model.eps)


def _reference(model, content: torch.Tensor, stats, alpha: float) -> torch.Tensor:
    """Paper eqs. 8 and 14 on whole maps, written out with the modules' whole-map walks."""
    height, width = content.shape[2:]
    with torch.no_grad():
        feats = model.encoder(pad_to_multiple(content, DOWNSAMPLING))[CONTENT_LAYER]
        target = adaptive_instance_norm(feats, *stats, eps=model.eps)
        target = alpha * target + (1 - alpha) * feats
        return model.decoder(target)[:, :, :height, :width]


def _autograd_forward(model, *args, **kwargs) -> torch.Tensor:
    """The model's own whole-map path: autograd records the call (the decoder trains)."""
    assert any(p.requires_grad for p in model.parameters())
    with torch.enable_grad():
        out = model(*args, **kwargs)
    assert out.requires_grad  # the differentiable walk, not the streams
    return out.detach()


@pytest.mark.parametrize("spill", [False, True])
@pytest.mark.parametrize(
    ("cols", "rows"),
    [
        (17, 1),  # one-cell strips: every layer's carried rows matter
        (17, 3),  # strips whose pooled rows end odd at some levels
        (8, 5),  # column tiles (halos, feathers) and strips together
        (8, 13),  # column tiles only
    ],
)
def test_pieces_match_whole_image(tiny_model, style, spill, cols, rows):
    # 101x133 px: not a multiple of 8 (reflect padding), 13x17 cells.
    content = smooth_image(5, 101, 133)
    stats = _stats(tiny_model, style)
    whole = _reference(tiny_model, content, stats, 0.8)
    plan = StripPlan(cols, rows, spill, 0)
    with torch.inference_mode():
        pieces = strips.run(_runner(tiny_model), content, [stats], 0.8, None, plan)
    _close(pieces, whole)


def test_one_streamed_piece_matches_the_differentiable_path(tiny_model, style):
    # On the CPU a single piece streams too; the differentiable runner walks whole maps.
    content = smooth_image(3, 72, 56)
    stats = _stats(tiny_model, style)
    plan = whole_plan(72, 56)
    walked = Runner(tiny_model.encoder, tiny_model.decoder, tiny_model.eps, differentiable=True)
    with torch.no_grad():
        whole = strips.run(walked, content, [stats], 0.5, None, plan)
    with torch.inference_mode():
        runner = _runner(tiny_model)
        assert runner.streams(1)
        streamed = strips.run(runner, content, [stats], 0.5, None, plan)
    _close(whole, _reference(tiny_model, content, stats, 0.5))
    _close(streamed, whole)


def test_strips_match_whole_image_in_channels_last(tiny_model, style):
    content = smooth_image(4, 64, 48)
    stats = _stats(tiny_model, style)
    whole = _reference(tiny_model, content, stats, 1.0)
    with torch.inference_mode():
        runner = _runner(tiny_model, channels_last=True)
        out = strips.run(runner, content, [stats], 1.0, None, StripPlan(6, 2, False, 0))
    _close(out, whole)


def test_pieces_match_with_masks_and_weights(tiny_model, style):
    content = smooth_image(6, 80, 112)  # 10x14 cells: 2x2 tiles of 64 px
    other = smooth_image(7, 40, 40)
    masks = torch.rand(1, 2, 20, 28, generator=torch.Generator().manual_seed(0))
    with torch.enable_grad():
        styles = [tiny_model.style_stats(style), tiny_model.style_stats(other)]
    styles = [StyleStats(s.mean.detach(), s.std.detach()) for s in styles]
    runner = _runner(tiny_model)
    plan = plan_strips(1, 80, 112, TINY_WIDTH, tile=64)
    assert plan.tile_cells < 14 and plan.strip_cells < 10

    whole = _autograd_forward(tiny_model, content, styles, 0.6, masks=masks)
    share = region_shares(masks_to_cells(masks, (80, 112), (10, 14), DOWNSAMPLING))
    with torch.inference_mode():
        stats = [(s.mean, s.std) for s in styles]
        _close(strips.run(runner, content, stats, 0.6, share, plan), whole)

    whole = _autograd_forward(tiny_model, content, styles, 1.3, weights=[0.25, 0.75])
    mixed = StyleStats.mix(styles, [0.25, 0.75])
    with torch.inference_mode():
        pieces = strips.run(runner, content, [(mixed.mean, mixed.std)], 1.3, None, plan)
    _close(pieces, whole)


@pytest.mark.parametrize(
    "plan",
    [
        plan_strips(1, 100, 70, TINY_WIDTH, tile=64),  # column tiles and strips
        StripPlan(9, 1, False, 0),  # one-cell full-width strips
        whole_plan(100, 70),
    ],
)
def test_style_stats_are_the_whole_image_statistics(tiny_model, plan):
    image = smooth_image(8, 100, 70)
    expected = _stats(tiny_model, image)
    with torch.inference_mode():
        actual = strips.style_stats(_runner(tiny_model), image, plan)
    # Exact statistics: only the float summation order differs.
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape == (1, 8 * TINY_WIDTH, 1, 1)
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize(
    "plan", [StripPlan(17, 3, False, 0), StripPlan(8, 5, False, 0), whole_plan(101, 133)]
)
def test_encode_and_decode_in_pieces_match_whole_maps(tiny_model, plan):
    image = smooth_image(9, 101, 133)
    runner = _runner(tiny_model)
    with torch.inference_mode():
        feats = tiny_model.encoder(image)[CONTENT_LAYER]
        encoded = strips.encode(runner, image, plan)
        _close_relative(encoded, feats, FEATURES_RTOL)
        target = torch.randn(feats.shape, generator=torch.Generator().manual_seed(1))
        decoded = strips.decode(runner, target, plan)
        _close(decoded, tiny_model.decoder(target))


def test_transfer_is_adaptive_instance_norm_then_the_alpha_blend(tiny_model, style):
    generator = torch.Generator().manual_seed(2)
    feats = torch.rand(2, 8 * TINY_WIDTH, 5, 7, generator=generator) * 3
    mean, std = _stats(tiny_model, style)
    eps = tiny_model.eps
    expected = 0.7 * adaptive_instance_norm(feats, mean, std, eps) + 0.3 * feats
    _close(strips.transfer(feats, [(mean, std)], 0.7, None, eps), expected, atol=1e-5)
    # One region covering every position is the plain transfer.
    everywhere = torch.ones(1, 1, 5, 7)
    _close(strips.transfer(feats, [(mean, std)], 0.7, everywhere, eps), expected, atol=1e-5)


def test_stylize_task_api_in_pieces(tiny_model, style):
    from adain.api import stylize

    content = smooth_image(9, 72, 96)  # 9x12 cells: 2x2 tiles of 64 px
    whole = _autograd_forward(tiny_model, content, style, 0.7, preserve_color="luminance")
    whole = whole.clamp(0, 1)
    kwargs = {"model": tiny_model, "device": "cpu", "output": "tensor", "alpha": 0.7}
    for options in ({}, {"tile": 64}, {"max_memory": "1G"}):
        _close(stylize(content, style, **kwargs, preserve_color="luminance", **options), whole)


def test_one_piece_through_the_runners_walk(tiny_model, style):
    # A compiled runner (or a GPU) runs a single piece through its whole-map walk, not a
    # stream; the flag alone selects that path here, without paying for a compilation.
    content = smooth_image(10, 40, 56)
    stats = _stats(tiny_model, style)
    runner = _runner(tiny_model)
    runner.compiled = True
    calls = []
    encode = runner.encode
    runner.encode = lambda x: calls.append(x.shape) or encode(x)  # type: ignore[method-assign]
    with torch.inference_mode():
        out = strips.run(runner, content, [stats], 0.9, None, plan_strips(1, 40, 56, TINY_WIDTH))
    assert calls == [(1, 3, 40, 56)]
    _close(out, _reference(tiny_model, content, stats, 0.9))


@pytest.mark.parametrize(
    ("content", "style", "message"),
    [
        (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 32, 32), "content is 8x8 px; AdaIN needs"),
        (torch.rand(1, 4, 32, 32), torch.rand(1, 3, 32, 32), r"content must be a float tensor"),
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 9, 40), "style is 40x9 px; AdaIN needs"),
    ],
)
def test_bad_images_get_the_models_errors(tiny_model, content, style, message):
    # The streamed path (the CPU default of adain.api.stylize) checks inputs as AdaIN.forward.
    from adain.api import stylize

    with pytest.raises(ValueError, match=message):
        stylize(content, style, model=tiny_model, device="cpu", output="tensor")
