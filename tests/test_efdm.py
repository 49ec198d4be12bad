"""Exact Feature Distribution Matching (adain.efdm) through the model, the engine, the task API
and the command line.

Expected values are computed here independently of adain.efdm: numpy's sort and ``np.interp``
over the midpoint plotting positions ``(j + 0.5) / M`` for the style's quantile function.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_WIDTH, one_error_line, smooth_image
from PIL import Image
from typer.testing import CliRunner

import adain
from adain.cli import app
from adain.engine import strips
from adain.engine.matching import MatchedFeatures, channel_groups, match_in_place
from adain.engine.plan import StripPlan, plan_strips
from adain.engine.runner import EngineOptions, Runner
from adain.functional import pad_to_multiple
from adain.image import save_image
from adain.style import PRESET_QUANTILES, StyleStats

CHANNELS = 8 * TINY_WIDTH
runner = CliRunner()


# Independent formulas ------------------------------------------------------------------------


def quantile_function(style_values: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The style's quantile function at ``probabilities``: sorted values at the midpoints
    ``(j + 0.5) / M``, linear between them, flat beyond."""
    ordered = np.sort(style_values)
    midpoints = (np.arange(ordered.size) + 0.5) / ordered.size
    return np.interp(probabilities, midpoints, ordered)


def efdm_reference(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """EFDM of one channel: the value of rank r (ties by position) takes the style's quantile
    at (r + 0.5) / N."""
    order = np.argsort(content, kind="stable")
    out = np.empty(content.size)
    out[order] = quantile_function(style, (np.arange(content.size) + 0.5) / content.size)
    return out


def efdm_map(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """``efdm_reference`` over every (batch, channel) of ``(B, C, h, w)`` maps."""
    c = content.flatten(2).double().numpy()
    s = style.flatten(2).double().numpy()
    out = np.stack(
        [
            np.stack([efdm_reference(c[b, k], s[b % s.shape[0], k]) for k in range(c.shape[1])])
            for b in range(c.shape[0])
        ]
    )
    return torch.from_numpy(out).float().view_as(content)


def sorted_channels(feats: torch.Tensor) -> torch.Tensor:
    return feats.flatten(2).sort(dim=-1).values


def style_of(feats: torch.Tensor) -> StyleStats:
    """A style as EFDM keeps it, from its features (moments are not used by EFDM)."""
    return StyleStats(
        feats.mean((2, 3), keepdim=True),
        feats.std((2, 3), keepdim=True),
        quantiles=sorted_channels(feats),
    )


# The defining property --------------------------------------------------------------------


def test_same_sizes_give_exactly_the_style_values(tiny_model):
    generator = torch.Generator().manual_seed(0)
    # Rounded to a coarse grid: many ties, as ReLU's zeros make in real features.
    content = (torch.randn(2, CHANNELS, 6, 9, generator=generator) * 2).round().clamp_min(0)
    style = torch.randn(1, CHANNELS, 9, 6, generator=generator) ** 3
    out = tiny_model.transfer(content, [style_of(style)], transfer="efdm")
    expected = sorted_channels(style).expand(2, -1, -1)
    assert torch.equal(sorted_channels(out), expected)  # exactly, not approximately
    # And each value goes where its rank says, ties broken by position.
    assert torch.equal(out, efdm_map(content, style))


def test_different_sizes_follow_the_interpolated_quantile_function(tiny_model):
    generator = torch.Generator().manual_seed(1)
    content = torch.randn(1, CHANNELS, 13, 17, generator=generator)  # 221 values a channel
    style = torch.rand(1, CHANNELS, 5, 7, generator=generator) * 4  # 35
    out = tiny_model.transfer(content, [style_of(style)], transfer="efdm")
    torch.testing.assert_close(out, efdm_map(content, style), atol=1e-6, rtol=1e-6)
    # Within the interpolation error: each sorted value is within half the largest gap between
    # neighbouring style values of the style value of the nearest rank.
    got = sorted_channels(out)[0]
    ordered = sorted_channels(style)[0]
    nearest = ((torch.arange(221) + 0.5) * 35 / 221 - 0.5).round().clamp(0, 34).long()
    gap = ordered.diff(dim=-1).max(dim=-1, keepdim=True).values
    assert ((got - ordered[:, nearest]).abs() <= gap / 2 + 1e-6).all()


def test_permuting_positions_permutes_the_output(tiny_model):
    generator = torch.Generator().manual_seed(2)
    content = torch.randn(1, CHANNELS, 8, 10, generator=generator)
    style = style_of(torch.randn(1, CHANNELS, 7, 7, generator=generator))
    permutation = torch.randperm(80, generator=generator)
    shuffled = content.flatten(2)[..., permutation].view_as(content)
    out = tiny_model.transfer(content, [style], transfer="efdm")
    out_shuffled = tiny_model.transfer(shuffled, [style], transfer="efdm")
    assert torch.equal(out_shuffled, out.flatten(2)[..., permutation].view_as(content))


def test_alpha_blends_with_the_content_and_zero_is_the_content(tiny_model, content, style):
    generator = torch.Generator().manual_seed(3)
    feats = torch.randn(1, CHANNELS, 6, 6, generator=generator)
    target = style_of(torch.randn(1, CHANNELS, 6, 6, generator=generator))
    matched = efdm_map(feats, target.quantiles.view(1, CHANNELS, 6, 6))
    out = tiny_model.transfer(feats, [target], 0.3, transfer="efdm")
    torch.testing.assert_close(out, 0.3 * matched + 0.7 * feats, atol=1e-6, rtol=1e-6)
    assert torch.equal(tiny_model.transfer(feats, [target], 0.0, transfer="efdm"), feats)
    # Through the whole model, alpha 0 is the content's own reconstruction, as for AdaIN.
    with torch.inference_mode():
        efdm = tiny_model(content, style, 0.0, transfer="efdm")
        reconstruction = tiny_model.decode(tiny_model.encode(content)["relu4_1"])
    torch.testing.assert_close(efdm, reconstruction, atol=1e-5, rtol=0)


def test_style_weights_mix_the_quantile_functions(tiny_model):
    generator = torch.Generator().manual_seed(4)
    content = torch.randn(1, CHANNELS, 7, 7, generator=generator)
    first = torch.randn(1, CHANNELS, 7, 7, generator=generator)
    second = torch.rand(1, CHANNELS, 7, 7, generator=generator) * 3
    styles = [style_of(first), style_of(second)]
    out = tiny_model.transfer(content, styles, weights=[1.0, 3.0], transfer="efdm")
    # In 1-D the Wasserstein barycenter's quantile function is the weighted mean of theirs.
    barycenter = 0.25 * sorted_channels(first) + 0.75 * sorted_channels(second)
    torch.testing.assert_close(sorted_channels(out), barycenter, atol=1e-6, rtol=1e-6)


def test_masks_match_each_region_to_its_own_style(tiny_model):
    generator = torch.Generator().manual_seed(5)
    content = torch.randn(1, CHANNELS, 6, 10, generator=generator)
    first = torch.randn(1, CHANNELS, 5, 5, generator=generator)
    second = torch.rand(1, CHANNELS, 4, 4, generator=generator) + 5
    masks = torch.zeros(1, 2, 6, 10)
    masks[:, 0, :, :4] = 1.0  # region 0: columns 0-3 (24 positions)
    masks[:, 1, :, 6:] = 1.0  # region 1: columns 6-9; columns 4-5 keep the content
    out = tiny_model.transfer(
        content, [style_of(first), style_of(second)], masks=masks, transfer="efdm"
    )
    left = efdm_map(content[..., :4].contiguous(), first)
    right = efdm_map(content[..., 6:].contiguous(), second)
    torch.testing.assert_close(out[..., :4], left, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out[..., 6:], right, atol=1e-6, rtol=1e-6)
    assert torch.equal(out[..., 4:6], content[..., 4:6])


def test_colour_preservation_works_with_efdm(tiny_model, content, style):
    from adain.functional import coral

    with torch.inference_mode():
        plain = tiny_model(content, style, transfer="efdm")
        kept = tiny_model(content, style, preserve_color="luminance", transfer="efdm")
        recoloured = tiny_model(content, style, preserve_color="coral", transfer="efdm")
        expected = tiny_model(content, coral(style, content), transfer="efdm")
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    y_plain, y_content = (plain * luma).sum(1, True), (content * luma).sum(1, True)
    torch.testing.assert_close(kept, content + (y_plain - y_content), atol=1e-5, rtol=0)
    torch.testing.assert_close(recoloured, expected, atol=1e-5, rtol=0)


def test_efdm_changes_the_output_and_adain_stays_the_default(tiny_model, content, style):
    with torch.inference_mode():
        default = tiny_model(content, style, 0.8)
        adain_out = tiny_model(content, style, 0.8, transfer="adain")
        efdm = tiny_model(content, style, 0.8, transfer="efdm")
    assert torch.equal(default, adain_out)
    assert (efdm - default).abs().mean() > 1e-3


# The engine: strips and spilled features give the whole-map result --------------------------


def _whole(model, content: torch.Tensor, quantiles: torch.Tensor, alpha: float, share=None):
    """The whole-map reference: encode whole, EFDM written here, decode whole."""
    with torch.no_grad():
        feats = model.encoder(pad_to_multiple(content, 8))["relu4_1"]
        target = strips.transfer(feats, [quantiles], alpha, share, model.eps, method="efdm")
        return model.decoder(target)[:, :, : content.shape[2], : content.shape[3]]


@pytest.mark.parametrize("spill", [False, True])
@pytest.mark.parametrize(("cols", "rows"), [(17, 1), (8, 5), (8, 13)])
def test_strips_match_the_whole_map(tiny_model, style, spill, cols, rows):
    content = smooth_image(5, 101, 133)  # 13x17 cells, reflect-padded to 104x136 px
    quantiles = tiny_model.style_stats(style, transfer="efdm").quantiles
    whole = _whole(tiny_model, content, quantiles, 0.8)
    plan = StripPlan(cols, rows, spill, 0)
    with torch.inference_mode():
        pieces = strips.run(
            Runner(tiny_model.encoder, tiny_model.decoder, tiny_model.eps),
            content,
            [quantiles],
            0.8,
            None,
            plan,
            method="efdm",
        )
    # Float rounding of the strips can swap the ranks of two nearly equal values: a few 1e-6.
    assert (pieces - whole).abs().max() < 1e-4


def test_channel_groups_give_the_whole_map_result_in_memory_and_spilled():
    from adain.efdm import efdm_transfer
    from adain.engine.features import FeatureStore

    generator = torch.Generator().manual_seed(6)
    feats = torch.randn(2, 10, 5, 7, generator=generator)
    quantiles = [torch.randn(1, 10, 12, generator=generator).sort(-1).values for _ in range(2)]
    share = torch.rand(1, 2, 5, 7, generator=generator) / 2
    expected = efdm_transfer(feats, quantiles, 0.7, share)
    budget = 64 * 2 * 35 * 3  # three channels a group
    assert channel_groups(2, 10, 35, budget) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    in_place = feats.clone()
    match_in_place(in_place, quantiles, 0.7, share, budget)
    assert torch.equal(in_place, expected)
    with FeatureStore(tuple(feats.shape), spill=True) as store:
        store.put((0, 5), (0, 7), feats)
        with MatchedFeatures(store, quantiles, 0.7, share, torch.device("cpu"), budget) as out:
            assert torch.equal(out.get((1, 4), (2, 6)), expected[:, :, 1:4, 2:6])


def test_masked_strips_match_the_model_on_whole_maps(tiny_model, style):
    from adain.functional import masks_to_cells, region_shares

    content = smooth_image(6, 80, 112)
    other = smooth_image(7, 40, 40)
    masks = torch.rand(1, 2, 20, 28, generator=torch.Generator().manual_seed(0))
    styles = [tiny_model.style_stats(s, transfer="efdm") for s in (style, other)]
    share = region_shares(masks_to_cells(masks, (80, 112), (10, 14), 8))
    with torch.no_grad():
        feats = tiny_model.encoder(content)["relu4_1"]
        quantiles = [s.quantiles for s in styles]
        target = strips.transfer(feats, quantiles, 0.6, share, tiny_model.eps, method="efdm")
        whole = tiny_model.decoder(target)
    plan = plan_strips(1, 80, 112, TINY_WIDTH, tile=64)
    assert plan.tile_cells < 14 and plan.strip_cells < 10
    with torch.inference_mode():
        engine = EngineOptions(tile=64)
        pieces = tiny_model(content, styles, 0.6, masks=masks, engine=engine, transfer="efdm")
    assert (pieces - whole).abs().max() < 1e-4


# Presets ----------------------------------------------------------------------------------


def test_presets_keep_the_quantiles(tiny_model, style, tmp_path):
    small = tiny_model.style_stats(style, transfer="efdm")
    cells = -(-style.shape[2] // 8) * -(-style.shape[3] // 8)  # relu4_1 values a channel
    assert small.quantiles.shape == (1, CHANNELS, cells) and cells < PRESET_QUANTILES
    assert torch.equal(small.quantiles, sorted_channels(tiny_model.encode(style)["relu4_1"]))
    loaded = StyleStats.load(small.save(tmp_path / "small.safetensors"))
    assert torch.equal(loaded.quantiles, small.quantiles)  # fewer than PRESET_QUANTILES: all
    assert torch.equal(loaded.mean, small.mean)

    # A style of more values than a preset keeps: resampled at the midpoints k + 0.5 / K.
    full = torch.randn(1, 2, 3000, generator=torch.Generator().manual_seed(7)).sort(-1).values
    stats = StyleStats(
        full.mean(-1)[..., None, None], full.std(-1)[..., None, None], quantiles=full
    )
    kept = StyleStats.load(stats.save(tmp_path / "big.safetensors")).quantiles
    assert kept.shape == (1, 2, PRESET_QUANTILES)
    grid = (np.arange(PRESET_QUANTILES) + 0.5) / PRESET_QUANTILES
    expected = np.stack([quantile_function(full[0, k].double().numpy(), grid) for k in range(2)])
    np.testing.assert_allclose(kept[0].numpy(), expected, atol=1e-6)


def test_efdm_needs_quantiles_and_says_how_to_get_them(tiny_model, style, content, tmp_path):
    adain_only = tiny_model.style_stats(style)
    assert adain_only.quantiles is None
    path = adain_only.save(tmp_path / "moments.safetensors")
    with pytest.raises(ValueError, match="holds only AdaIN's mean and std.*--transfer efdm"):
        tiny_model(content, StyleStats.load(path), transfer="efdm")
    with pytest.raises(ValueError, match="transfer must be 'adain' or 'efdm'"):
        tiny_model(content, style, transfer="wct")
    with pytest.raises(ValueError, match="content_stats replaces AdaIN's mean and std"):
        tiny_model(content, style, transfer="efdm", content_stats=lambda k, m, s: (m, s))


# The task API and the command line ----------------------------------------------------------


def test_api_stylize_and_encode_style(tiny_model, content, style, tmp_path):
    with torch.inference_mode():  # the engine's path, as the task API takes
        direct = tiny_model(content, style, 0.7, transfer="efdm").clamp(0, 1)
    out = adain.stylize(
        content, style, model=tiny_model, alpha=0.7, transfer="efdm", output="tensor", device="cpu"
    )
    torch.testing.assert_close(out, direct, atol=1e-5, rtol=0)
    preset = adain.encode_style(style, tiny_model, transfer="efdm", device="cpu")
    from_preset = adain.stylize(
        content, preset, model=tiny_model, alpha=0.7, transfer="efdm", output="tensor", device="cpu"
    )
    torch.testing.assert_close(from_preset, direct, atol=1e-5, rtol=0)


@pytest.fixture
def files(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    save_image(smooth_image(1, 40, 56), tmp_path / "c.png")
    save_image(smooth_image(2, 48, 40), tmp_path / "x.png")
    save_image(smooth_image(4, 32, 48), tmp_path / "y.png")
    return tmp_path


def invoke(files: Path, *args: object):
    model = ["--model", str(files / "tiny-model"), "--device", "cpu"]
    return runner.invoke(app, [*map(str, args), *model])


def test_cli_stylize_efdm_matches_the_library_and_records_it(files, tiny_model):
    result = invoke(
        files, "stylize", "c.png", "-s", "x.png", "-o", "o.png", "--transfer", "efdm", "--json"
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["transfer"] == "efdm" and record["output"] == "o.png"
    expected = adain.stylize(files / "c.png", files / "x.png", model=tiny_model, transfer="efdm")
    with Image.open(files / "o.png") as written:
        diff = np.abs(np.asarray(written, np.int16) - np.asarray(expected, np.int16))
    assert diff.max() <= 1  # PNG of the same pixels, one rounding step at most
    result = invoke(files, "stylize", "c.png", "-s", "x.png", "-o", "a.png", "--json")
    assert json.loads(result.stdout)["transfer"] == "adain"
    with Image.open(files / "a.png") as plain:
        assert np.abs(np.asarray(plain, np.int16) - np.asarray(expected, np.int16)).mean() > 0.5


def test_cli_presets_and_interpolate_with_efdm(files):
    result = invoke(
        files, "style-encode", "x.png", "y.png", "-o", "mix.safetensors", "--transfer", "efdm",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["transfer"] == "efdm" and record["quantiles"] == 30  # 6x5 cells of x.png
    assert StyleStats.load(files / "mix.safetensors").quantiles.shape == (1, CHANNELS, 30)
    result = invoke(files, "stylize", "c.png", "-s", "mix.safetensors", "--transfer", "efdm")
    assert result.exit_code == 0, result.output
    assert (files / "c_mix.png").is_file()
    result = invoke(
        files, "interpolate", "c.png", "-s", "x.png", "-s", "mix.safetensors", "--transfer",
        "efdm", "--alpha", 0, "--alpha", 1, "--steps", 2, "--cell-size", 32, "-o", "sheet.png",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (files / "sheet.png").is_file()


@pytest.mark.parametrize("command", ["stylize", "interpolate", "style-encode"])
def test_cli_bad_transfer_is_one_line_and_writes_nothing(files, command):
    args = {
        "stylize": ["stylize", "c.png", "-s", "x.png", "-o", "out.png"],
        "interpolate": ["interpolate", "c.png", "-s", "x.png", "-o", "out.png"],
        "style-encode": ["style-encode", "x.png", "-o", "out.safetensors"],
    }[command]
    line = one_error_line(invoke(files, *args, "--transfer", "wct"))
    assert "--transfer must be adain or efdm, got 'wct'" in line
    assert not list(files.glob("out*"))


def test_cli_adain_preset_with_efdm_is_one_line(files):
    assert invoke(files, "style-encode", "x.png", "-o", "p.safetensors").exit_code == 0
    line = one_error_line(
        invoke(files, "stylize", "c.png", "-s", "p.safetensors", "--transfer", "efdm")
    )
    assert "p.safetensors holds only AdaIN's mean and std" in line
    assert "adain style-encode --transfer efdm" in line
    assert not (files / "c_p.png").exists()
