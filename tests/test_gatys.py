"""The Gram (Gatys) path: the seed's worked examples, the optimisation, the comparison, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import adain.model
from adain.cli import app
from adain.compare import compare, evaluate_losses, warm_start_saving
from adain.functional import gram_matrix
from adain.gatys import MEAN_RGB, GatysConfig, gatys
from adain.image import save_image
from adain.losses import content_loss, total_variation_loss
from tests.conftest import smooth_image

# --- The seed's worked examples -------------------------------------------------------------
# REFERENCE.md gives only the results (219/2 and 37), not the matrices, so these matrices were
# constructed here to reproduce exactly those values.


def test_seed_content_loss_of_two_3x3_matrices_is_219_over_2():
    a_content = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])
    a_generated = torch.tensor([[7.0, 8, 9], [10, 11, 12], [6, 7, 8]])
    # Differences: six entries of 6 and three of 1, so 1/2 * (6 * 36 + 3 * 1) = 219/2.
    assert content_loss(a_generated, a_content).item() == 219 / 2


def test_seed_gram_entry_of_two_flattened_feature_maps_is_37():
    maps = torch.tensor([[[1.0, 2], [3, 4]], [[5, 0], [0, 8]]]).unsqueeze(0)  # (1, 2, 2, 2)
    gram = gram_matrix(maps)
    # Flattened: (1, 2, 3, 4) . (5, 0, 0, 8) = 5 + 32 = 37.
    assert gram[0, 0, 1].item() == 37.0 == gram[0, 1, 0].item()
    assert gram[0].tolist() == [[30.0, 37.0], [37.0, 89.0]]


# --- Config ---------------------------------------------------------------------------------


def test_presets_carry_the_reference_settings():
    paper = GatysConfig.gatys2016()
    assert paper.content_layers == ("relu4_2",)
    assert paper.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert paper.layer_weights == (0.2,) * 5 and paper.pooling == "avg"
    assert (paper.optimizer, paper.init, paper.losses) == ("lbfgs", "noise", "gatys")
    lua = GatysConfig.neural_style()
    assert (lua.content_weight, lua.style_weight, lua.tv_weight, lua.steps) == (5, 100, 1e-3, 1000)
    assert (lua.pooling, lua.losses, lua.image_size) == ("max", "neural_style", 512)
    assert GatysConfig.neural_style(steps=7).steps == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"layer_weights": (1.0,)}, "one weight per layer"),
        ({"init": "zeros"}, "init must be one of"),
        ({"optimizer": "sgd"}, "optimizer must be one of"),
        ({"style_weight": -1.0}, ">= 0"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        GatysConfig.gatys2016(**overrides)


# --- Optimisation ---------------------------------------------------------------------------


def _run(model, config, content=None, style=None, **kwargs):
    log: list[dict[str, float]] = []
    out = gatys(
        smooth_image(1, 32, 32) if content is None else content,
        smooth_image(2, 32, 32) if style is None else style,
        config,
        model=model,
        callback=lambda step, losses, image: log.append(losses),
        **kwargs,
    )
    return out, log


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_ten_steps_lower_the_total_loss(tiny_model, optimizer):
    # Adam at a smaller step than neural-style's 10/255, whose first steps overshoot.
    lr = 0.01 if optimizer == "adam" else None
    config = GatysConfig.gatys2016(steps=10, optimizer=optimizer, lr=lr, tv_weight=1e-4)
    out, log = _run(tiny_model, config)
    assert len(log) == 10
    assert log[-1]["total"] < 0.8 * log[0]["total"], [entry["total"] for entry in log]
    assert out.shape == (1, 3, 32, 32)
    assert 0.0 <= out.min().item() and out.max().item() <= 1.0


def test_objective_matches_the_formulas_written_out(tiny_model):
    content, style = smooth_image(3, 32, 40), smooth_image(4, 24, 24)
    config = GatysConfig.gatys2016(steps=1, init="content", pooling="max", tv_weight=2.0)
    _, log = _run(tiny_model, config, content, style)
    feats = tiny_model.encoder(content, config.style_layers)
    style_feats = tiny_model.encoder(style, config.style_layers)
    expected_style = 0.0
    for name in config.style_layers:
        f, s = feats[name][0], style_feats[name][0]
        n, m = f.shape[0], f.shape[1] * f.shape[2]
        g = f.reshape(n, m) @ f.reshape(n, m).T
        a = s.reshape(n, -1) @ s.reshape(n, -1).T * (m / (s.shape[1] * s.shape[2]))  # size rescale
        expected_style += 0.2 * float(((g - a) ** 2).sum()) / (4 * n**2 * m**2)
    assert log[0]["content"] == 0.0  # starts at the content itself
    assert log[0]["style"] == pytest.approx(expected_style, rel=1e-4)
    assert log[0]["tv"] == pytest.approx(float(total_variation_loss(content * 255)), rel=1e-5)
    assert log[0]["total"] == pytest.approx(1e3 * expected_style + 2.0 * log[0]["tv"], rel=1e-4)


def test_same_seed_same_image_and_noise_start(tiny_model):
    config = GatysConfig.gatys2016(steps=2)
    first, _ = _run(tiny_model, config)
    again, _ = _run(tiny_model, config)
    other, _ = _run(tiny_model, GatysConfig.gatys2016(steps=2, seed=1))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().max() > 1e-4
    start, _ = _run(tiny_model, GatysConfig.gatys2016(steps=0, noise_std=0.01))
    mean = torch.tensor(MEAN_RGB).view(1, 3, 1, 1)
    assert (start - mean).abs().max() < 0.06 and (start - mean).std() > 0.005


def test_starts_from_content_and_adain_output(tiny_model):
    content, style = smooth_image(5, 32, 40), smooth_image(6, 32, 32)
    from_content, _ = _run(tiny_model, GatysConfig.gatys2016(steps=0, init="content"), content)
    torch.testing.assert_close(from_content, content)
    from_adain, _ = _run(tiny_model, GatysConfig.gatys2016(steps=0, init="adain"), content, style)
    with torch.no_grad():
        expected = tiny_model(content, style).clamp(0, 1)
    torch.testing.assert_close(from_adain, expected)


def test_bare_encoder_works_but_cannot_warm_start(tiny_model):
    out, log = _run(tiny_model.encoder, GatysConfig.gatys2016(steps=2, init="content"))
    assert out.shape == (1, 3, 32, 32) and len(log) == 2
    with pytest.raises(ValueError, match="init='adain' needs an AdaIN model"):
        _run(tiny_model.encoder, GatysConfig.gatys2016(steps=1, init="adain"))


def test_avg_pooling_uses_a_copy_and_leaves_the_model_alone(tiny_model):
    assert tiny_model.encoder.pooling == "max"
    avg, _ = _run(tiny_model, GatysConfig.gatys2016(steps=2, init="content"))
    max_, _ = _run(tiny_model, GatysConfig.gatys2016(steps=2, init="content", pooling="max"))
    assert tiny_model.encoder.pooling == "max"
    assert (avg - max_).abs().max() > 1e-5  # the pooling setting reached the forward pass


def test_callback_can_stop_early(tiny_model):
    steps: list[int] = []
    gatys(
        smooth_image(1, 32, 32),
        smooth_image(2, 32, 32),
        GatysConfig.gatys2016(steps=10),
        model=tiny_model,
        callback=lambda step, losses, image: steps.append(step) or step < 3,
    )
    assert steps == [1, 2, 3]


def test_rejects_images_that_are_too_small(tiny_model):
    with pytest.raises(ValueError, match="at least 16x16"):
        gatys(torch.rand(1, 3, 8, 32), smooth_image(2, 32, 32), model=tiny_model)


# --- Comparison -----------------------------------------------------------------------------


def test_compare_returns_a_figure_and_json_able_numbers(tiny_model):
    content, style = smooth_image(1, 32, 32), smooth_image(2, 32, 32)
    config = GatysConfig.gatys2016(init="content")
    steps_seen: list[int] = []
    figure, report = compare(
        content, style, tiny_model, (0.5, 1.0), (1, 3), config, tile=64,
        callback=lambda step, losses, image: steps_seen.append(step),
    )  # fmt: skip
    assert steps_seen == [1, 2, 3]  # every iteration of the run, for progress (not the warm-up)
    json.dumps(report)
    assert [r["alpha"] for r in report["adain"]] == [0.5, 1.0]
    assert [r["steps"] for r in report["gatys"]] == [1, 3]
    assert report["gatys"][0]["seconds"] <= report["gatys"][1]["seconds"]
    assert report["gatys_config"]["steps"] == 3
    assert figure.width >= 2 * 64 and figure.height >= 3 * 64  # 2 columns, 3 rows
    with torch.no_grad():
        adain_out = tiny_model(content, style, 1.0).clamp(0, 1)
    assert report["adain"][1]["content_loss"] == pytest.approx(
        evaluate_losses(tiny_model, adain_out, content, style)["content_loss"], rel=1e-5
    )
    assert evaluate_losses(tiny_model, content, content, style)["content_loss"] == 0.0


def test_warm_start_saving_reports_iteration_counts(tiny_model):
    config = GatysConfig.gatys2016(pooling="max")
    content, style = smooth_image(1, 32, 32), smooth_image(2, 32, 32)
    result = warm_start_saving(content, style, tiny_model, config, (1, 3))
    assert len(result["curves"]["content"]) == len(result["curves"]["adain"]) == 4
    for target in result["targets"]:
        assert target["content_iterations"] <= 3
        if target["adain_iterations"] is not None:
            assert target["saved"] == target["content_iterations"] - target["adain_iterations"]


# --- CLI ------------------------------------------------------------------------------------


@pytest.fixture
def image_files(tmp_path: Path) -> tuple[Path, Path]:
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    save_image(smooth_image(1, 40, 48), content)
    save_image(smooth_image(2, 32, 32), style)
    return content, style


def test_cli_gatys_writes_an_image_at_input_size(tiny_model_dir, image_files, tmp_path):
    out = tmp_path / "out" / "gatys.png"
    args = ["gatys", *map(str, image_files), "-o", str(out), "--model", str(tiny_model_dir)]
    args += ["--steps", "2", "--image-size", "0", "--print-every", "1", "--init", "content"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "step 2/2" in result.output
    with Image.open(out) as written:
        assert written.size == (48, 40)


def test_cli_compare_writes_figure_and_valid_json(tiny_model_dir, image_files, tmp_path):
    figure, numbers = tmp_path / "cmp.png", tmp_path / "cmp.json"
    args = ["compare", *map(str, image_files), "-o", str(figure), "--json", str(numbers)]
    args += ["--model", str(tiny_model_dir), "--alphas", "0.5,1", "--steps", "1,2"]
    args += ["--image-size", "24", "--preset", "neural_style"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(numbers.read_text())
    assert report["size"] == [20, 24]  # 40x48 with the longer side scaled to 24
    assert len(report["adain"]) == 2 and len(report["gatys"]) == 2
    with Image.open(figure) as written:
        assert written.width > 0


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--preset", "fast"], 2, "unknown preset 'fast'"),
        (["--init", "zeros"], 1, "error: init must be one of"),
    ],
)
def test_cli_gatys_bad_options(tiny_model_dir, image_files, tmp_path, extra, code, message):
    out = tmp_path / "never.png"
    args = ["gatys", *map(str, image_files), "-o", str(out), "--model", str(tiny_model_dir)]
    result = CliRunner().invoke(app, args + extra)
    assert result.exit_code == code
    assert message in result.output
    assert not out.exists()


def test_cli_compare_rejects_bad_step_list(image_files, tmp_path):
    args = ["compare", *map(str, image_files), "-o", str(tmp_path / "f.png"), "--steps", "a"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "comma-separated numbers" in result.output


def test_cli_gatys_and_compare_never_replace_an_input_or_an_unasked_file(
    tiny_model_dir, image_files, tmp_path
):
    """Issue 16, case 1: `gatys C S -o C`, `compare C S -o C` and `compare --json C` replaced
    the content image, and any existing -o, without --overwrite."""
    content, style = image_files
    before = {path: path.read_bytes() for path in image_files}
    existing = tmp_path / "kept.png"
    existing.write_bytes(b"not yours")
    base = [*map(str, image_files), "--model", str(tiny_model_dir), "--steps", "1"]
    runs = [
        (["gatys", *base, "-o", str(content)], "content.png is one of the inputs"),
        (["gatys", *base, "-o", str(style), "--overwrite"], "style.png is one of the inputs"),
        (["gatys", *base, "-o", str(existing)], "kept.png already exists: pass --overwrite"),
        (["compare", *base, "-o", str(content)], "content.png is one of the inputs"),
        (["compare", *base, "-o", str(existing)], "kept.png already exists: pass --overwrite"),
        (["compare", *base, "-o", str(tmp_path / "f.png"), "--json", str(content),
          "--overwrite"], "content.png is one of the inputs: choose another --json"),
        (["compare", *base, "-o", str(tmp_path / "f.png"), "--json", str(existing)],
         "kept.png already exists: pass --overwrite or choose another --json"),
        (["compare", *base, "-o", str(tmp_path / "f.png"), "--json", str(tmp_path / "f.png")],
         "--json and -o both name"),
    ]  # fmt: skip
    for args, message in runs:
        result = CliRunner().invoke(app, args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1, (args, result.output)
        assert message in lines[0], (args, lines[0])
    assert {path: path.read_bytes() for path in image_files} == before
    assert existing.read_bytes() == b"not yours"
    assert not (tmp_path / "f.png").exists()
    # --overwrite replaces an existing output that is not an input.
    result = CliRunner().invoke(app, ["gatys", *base, "-o", str(existing), "--overwrite", "-q"])
    assert result.exit_code == 0, result.output
    with Image.open(existing) as written:
        assert written.size == (48, 40)


def gatys_args(image_files, out: Path, model_dir: Path, *extra: object) -> list[str]:
    return ["gatys", *map(str, image_files), "-o", str(out), "--model", str(model_dir),
            "--init", "content", *map(str, extra)]  # fmt: skip


def test_cli_gatys_image_size_is_exact_and_never_enlarges_by_default(tiny_model_dir, tmp_path):
    # 600x399 came out 65x43 at --image-size 64 (and 511x340 at 512) before.
    files = tmp_path / "wide.png", tmp_path / "style.png"
    save_image(smooth_image(1, 399, 600), files[0])
    save_image(smooth_image(2, 32, 32), files[1])
    out = tmp_path / "o.png"
    runs = [
        ((files[0], files[1]), ["--image-size", 64], (64, 43)),
        ((files[1], files[1]), [], (32, 32)),  # default 512: a smaller image is kept
        ((files[1], files[1]), ["--image-size", 64], (32, 32)),
        ((files[1], files[1]), ["--image-size", 64, "--upscale"], (64, 64)),
    ]
    for inputs, extra, size in runs:  # the same -o each time: --overwrite
        args = gatys_args(inputs, out, tiny_model_dir, "--steps", 1, "--overwrite", *extra)
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        with Image.open(out) as written:
            assert written.size == size, (extra, written.size)


def test_cli_gatys_and_compare_show_progress_on_a_terminal(tiny_model_dir, image_files, tmp_path):
    out = tmp_path / "o.png"
    args = gatys_args(
        image_files, out, tiny_model_dir, "--steps", 2, "--print-every", 1, "--overwrite"
    )  # three runs to the same -o
    # A terminal (rich honours TTY_COMPATIBLE=1): a bar with the iteration, loss and ETA, and
    # the loss lines; stdout keeps the output path alone.
    result = CliRunner().invoke(app, args, env={"TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0, result.output
    assert "it 2/2" in result.stderr and "loss " in result.stderr and "ETA" in result.stderr
    assert "step 2/2 total" in result.stderr and result.stdout == f"{out}\n"
    # Not a terminal: the loss lines only, no bar.
    result = CliRunner().invoke(app, args, env={"TTY_COMPATIBLE": "0"})
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0].startswith("step 1/2 total ")
    assert "it 2/2" not in result.stderr and "ETA" not in result.stderr
    # --quiet: nothing at all, even on a terminal.
    result = CliRunner().invoke(app, [*args, "-q"], env={"TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    args = ["compare", *map(str, image_files), "-o", str(tmp_path / "c.png"), "--alphas", "1",
            "--steps", "1,2", "--image-size", "24", "--model", str(tiny_model_dir)]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0, result.output
    assert "it 2/2" in result.stderr and "ETA" in result.stderr


@pytest.mark.parametrize("command", ["gatys", "compare"])
def test_cli_gatys_and_compare_take_the_common_model_options(
    command, image_files, tmp_path, tiny_model, monkeypatch
):
    calls = []

    def load_model(model=None, revision=None, device=None):
        calls.append((model, revision))
        return tiny_model

    monkeypatch.setattr(adain.model, "load_model", load_model)
    args = [command, *map(str, image_files), "-o", str(tmp_path / "o.png"), "--model", "org/x",
            "--revision", "v1", "--device", "cpu", "--steps", "1", "-q"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == [("org/x", "v1")]


def _help(command: str) -> dict[str, str]:
    """Option name -> its help text, whitespace folded."""
    import typer

    params = typer.main.get_command(app).commands[command].params
    return {p.name: " ".join((p.help or "").split()) for p in params}


def test_cli_gatys_help_states_the_presets_defaults_and_the_measured_speed():
    paper, lua = GatysConfig.gatys2016(), GatysConfig.neural_style()
    texts = _help("gatys")
    assert f"default {paper.steps:g}; neural_style {lua.steps:g}" in texts["steps"]
    assert f"default {paper.init}" in texts["init"]
    assert f"default {paper.optimizer}" in texts["optimizer"]
    for name in ("content_weight", "style_weight", "tv_weight"):
        expected = f"default {getattr(paper, name):g}; neural_style {getattr(lua, name):g}"
        assert expected in texts[name], name
    assert f"default {paper.pooling}; neural_style {lua.pooling}" in texts["pooling"]
    assert f"default {paper.image_size}" in texts["image_size"]
    assert f"default {paper.seed}" in texts["seed"]
    assert lua.image_size == paper.image_size and lua.init == paper.init
    # The docstring quotes `python -m benchmarks gatys --sizes 256 --iterations 3` on 2 cores.
    result = CliRunner().invoke(app, ["gatys", "--help"], env={"COLUMNS": "200"})
    speed = re.search(r"about ([0-9.]+) s per iteration at 256 px on a 2-core CPU", result.stdout)
    assert speed is not None and 0.1 < float(speed.group(1)) < 2.0, result.stdout
