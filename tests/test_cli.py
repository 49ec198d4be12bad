"""The ``adain`` command line: forwarded options, batches, presets, sheets, info, bad input.

Most tests run the typer app in-process (``CliRunner``) on a width-8 model saved to ``tmp_path``;
a few run the real ``python -m adain`` in a subprocess (each pays the torch import, ~3 s).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_model, one_error_line, smooth_image
from PIL import Image
from typer.testing import CliRunner

import adain
import adain.api
import adain.model
import adain.sheet
import adain.weights.hub
from adain.cli import app
from adain.image import load_image, save_image
from adain.sheet import contact_sheet
from adain.style import StyleStats

ROOT = Path(__file__).parent.parent
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).to(torch.int16)


@pytest.fixture
def work(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Content (two sizes, one nested, one JPEG), styles, masks; the cwd is ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    save_image(smooth_image(1, 40, 56), tmp_path / "c" / "a.png")
    save_image(smooth_image(3, 32, 32), tmp_path / "c" / "sub" / "b.jpg", quality=95)
    save_image(smooth_image(2, 48, 40), tmp_path / "s" / "x.png")
    save_image(smooth_image(4, 32, 48), tmp_path / "s" / "y.png")
    # Soft masks of another size and aspect ratio than the content: resized, which is fine.
    left = torch.zeros(1, 3, 20, 20)
    left[..., :10] = 1.0
    left[..., 10:12] = 0.5
    save_image(left, tmp_path / "m" / "left.png")
    save_image(1.0 - left, tmp_path / "m" / "right.png")
    return tmp_path


def model_args(work: Path) -> list[str]:
    return ["--model", str(work / "tiny-model"), "--device", "cpu"]


# Forwarded options (backend monkeypatched) ----------------------------------------------------


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tiny_model) -> dict[str, list]:
    """Replace model loading, style encoding and stylize with recorders."""
    calls: dict[str, list] = {"load_model": [], "encode_style": [], "stylize": []}
    real_encode = adain.api.encode_style

    def load_model(model, revision=None, device=None):
        calls["load_model"].append({"model": model, "revision": revision})
        return tiny_model

    def encode_style(style, model=None, **kwargs):
        calls["encode_style"].append({"size": style.size, **kwargs})
        return real_encode(style, model, **kwargs)

    def stylize(content, style, **kwargs):
        calls["stylize"].append({"content_size": content.size, "style": style, **kwargs})
        return content.copy()

    monkeypatch.setattr(adain.model, "load_model", load_model)
    monkeypatch.setattr(adain.api, "encode_style", encode_style)
    monkeypatch.setattr(adain.api, "stylize", stylize)
    return calls


def test_stylize_forwards_options_and_encodes_each_style_once(work, recorded):
    result = invoke(
        "stylize", "c", "--style", "s", "-o", "out", "--ext", "jpg", "--quality", 90,
        "--alpha", 0.6, "--preserve-color", "luminance", "--content-size", 24,
        "--max-size", 30, "--style-size", 20, "--model", "org/name", "--revision", "v1",
        "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert recorded["load_model"] == [{"model": "org/name", "revision": "v1"}]
    # 2 contents x 2 styles = 4 outputs, but each style is encoded once, at --style-size.
    assert len(recorded["encode_style"]) == 2
    assert sorted(c["size"] for c in recorded["encode_style"]) == [(20, 24), (30, 20)]
    assert len(recorded["stylize"]) == 4
    for call in recorded["stylize"]:
        assert call["alpha"] == 0.6 and call["preserve_color"] == "luminance"
        assert call["content_size"] == 24 and call["max_size"] == 30
        assert call["weights"] is None and call["masks"] is None
        assert str(call["device"]) == "cpu" and call["model"] is not None
        assert len(call["style"]) == 1 and isinstance(call["style"][0], StyleStats)
    names = sorted(result.stdout.split())
    assert names == sorted(f"out/{c}_{s}.jpg" for c in "ab" for s in "xy")


def test_stylize_weights_make_one_output_per_content(work, recorded):
    args = ["c/a.png", "-s", "s/x.png", "-s", "s/y.png", "-w", 1, "-w", 3]
    result = invoke("stylize", *args, "--device", "cpu")  # no -o: the current folder
    assert result.exit_code == 0, result.output
    (call,) = recorded["stylize"]
    assert call["weights"] == [1.0, 3.0] and len(call["style"]) == 2 and call["alpha"] == 1.0
    assert result.stdout.strip() == "a_x+y.png" and (work / "a_x+y.png").is_file()


def test_stylize_masks_are_forwarded_as_soft_weights(work, recorded):
    args = ["c/a.png", "-s", "s/x.png", "-s", "s/y.png", "--mask", "m/left.png"]
    result = invoke("stylize", *args, "--mask", "m/right.png", "-o", "o.png", "--device", "cpu")
    assert result.exit_code == 0, result.output
    left, right = recorded["stylize"][0]["masks"]
    assert left.shape == (1, 1, 20, 20)
    expected = torch.tensor([1.0] * 10 + [128 / 255] * 2)
    torch.testing.assert_close(left[0, 0, 0, :12], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(left + right, torch.ones_like(left), atol=1.5 / 255, rtol=0)


def test_coral_keeps_style_images_for_each_content(work, recorded):
    result = invoke("stylize", "c", "-s", "s/x.png", "--preserve-color", "coral", "-o", "out")
    assert result.exit_code == 0, result.output
    # CORAL recolours the style to each content, so the image (not statistics) is passed on.
    assert recorded["encode_style"] == []
    assert all(isinstance(c["style"][0], Image.Image) for c in recorded["stylize"])


def test_interpolate_forwards_the_sweeps(work, monkeypatch, tiny_model):
    calls = []

    def stylize(content, style, **kwargs):
        calls.append((len(style), kwargs["alpha"], kwargs["weights"], kwargs["max_size"]))
        return content.copy()

    monkeypatch.setattr(adain.model, "load_model", lambda *a, **k: tiny_model)
    monkeypatch.setattr(adain.api, "stylize", stylize)
    result = invoke(
        "interpolate", "c/a.png", "-s", "s/x.png", "-s", "s/y.png", "--alpha", 0,
        "--alpha", 1.5, "--steps", 3, "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    alpha_rows = [(1, a, None, 512) for a in (0.0, 1.5)] * 2
    mix_row = [(2, 1.0, w, 512) for w in [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]]
    assert calls == alpha_rows + mix_row
    assert result.stdout.strip() == "a_sweep.png" and (work / "a_sweep.png").is_file()


# Real runs, in-process -------------------------------------------------------------------------


def test_stylize_output_matches_the_library(work, tiny_model):
    result = invoke("stylize", "c/a.png", "-s", "s/x.png", "-o", "o.png", "--alpha", 0.7, "-q",
                    *model_args(work))  # fmt: skip
    assert result.exit_code == 0 and result.stdout == "", result.output
    expected = adain.api.stylize(
        work / "c/a.png", work / "s/x.png", model=tiny_model, alpha=0.7, device="cpu"
    )
    save_image(expected, work / "expected.png")
    assert torch.equal(pixels(work / "o.png"), pixels(work / "expected.png"))


def test_masks_of_another_aspect_ratio_match_the_library(work, tiny_model):
    masks = ["--mask", "m/left.png", "--mask", "m/right.png"]
    result = invoke("stylize", "c/a.png", "-s", "s/x.png", "-s", "s/y.png", *masks, "-o", "m.png",
                    *model_args(work))  # fmt: skip
    assert result.exit_code == 0, result.output
    styles = [work / "s/x.png", work / "s/y.png"]
    expected = adain.api.stylize(work / "c/a.png", styles, model=tiny_model, device="cpu",
                                     masks=[work / "m/left.png", work / "m/right.png"])  # fmt: skip
    assert expected.size == (56, 40)
    save_image(expected, work / "expected.png")
    assert torch.equal(pixels(work / "m.png"), pixels(work / "expected.png"))


def test_json_records_sizes_and_glob(work):
    result = invoke("stylize", "c/**/*.jpg", "c/a.png", "-s", "s", "-o", "out",
                    "--content-size", 24, "--json", *model_args(work))  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(Path(r["content"]).name, Path(r["styles"][0]).name) for r in records] == [
        ("b.jpg", "x.png"), ("b.jpg", "y.png"), ("a.png", "x.png"), ("a.png", "y.png"),
    ]  # fmt: skip
    for record in records:
        with Image.open(record["output"]) as image:
            assert image.size == (record["width"], record["height"])
        assert min(record["width"], record["height"]) == 24 and record["seconds"] >= 0
    assert {r["content_width"] for r in records} == {32, 56}


def test_never_overwrites_without_overwrite(work):
    args = ["stylize", "c/a.png", "-s", "s/x.png", "-o", "o.png", *model_args(work)]
    assert invoke(*args).exit_code == 0
    before = (work / "o.png").read_bytes()
    (work / "o.png").write_bytes(b"keep me")
    result = invoke(*args, "--alpha", 0.5)
    assert result.exit_code == 1
    assert "o.png already exists: pass --skip-existing" in one_error_line(result)
    assert (work / "o.png").read_bytes() == b"keep me"
    assert invoke(*args, "--overwrite").exit_code == 0
    assert (work / "o.png").read_bytes() == before


def test_same_stems_are_numbered_not_merged(work):
    save_image(smooth_image(5, 24, 24), work / "c2" / "a.png")
    result = invoke("stylize", "c/a.png", "c2/a.png", "-s", "s/x.png", "-o", "out",
                    *model_args(work))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["out/a_x.png", "out/a_x-2.png"]
    assert load_image(work / "out/a_x-2.png").size == (24, 24)


def test_plan_names_long_mixes_and_checks_without_the_model(work):
    from adain.batch import BatchConfig, plan

    for k in range(5):
        save_image(smooth_image(10 + k, 20, 20), work / "many" / f"st{k}.png")
    batch = plan(BatchConfig(contents=["c"], styles=["many"], weights=[1] * 5, output=Path("o")))
    assert [str(job.output) for job in batch.jobs] == [
        "o/a_st0+st1+3-more.png", "o/b_st0+st1+3-more.png",
    ]  # fmt: skip
    assert [job.styles for job in batch.jobs] == [(0, 1, 2, 3, 4)] * 2
    assert not (work / "o").exists()  # planning writes nothing


def test_presets_replace_style_images(work):
    encode = ["style-encode", "s/x.png", "-o", "x.safetensors", *model_args(work)]
    assert invoke(*encode).exit_code == 0
    result = invoke(*encode)
    assert "already exists" in one_error_line(result)
    common = ["c/a.png", *model_args(work)]
    assert invoke("stylize", "-s", "s/x.png", "-o", "image", *common).exit_code == 0
    assert invoke("stylize", "-s", "x.safetensors", "-o", "preset", *common).exit_code == 0
    assert torch.equal(pixels(work / "image/a_x.png"), pixels(work / "preset/a_x.png"))
    # A mixed preset equals mixing at stylisation time (up to float rounding: 1 grey level).
    mix = ["s/x.png", "s/y.png", "-w", 1, "-w", 3]
    assert invoke("style-encode", *mix, "-o", "m.safetensors", *model_args(work)).exit_code == 0
    assert invoke("stylize", "-s", "m.safetensors", *common[:1], "-o", "p.png",
                  *model_args(work)).exit_code == 0  # fmt: skip
    assert invoke("stylize", "c/a.png", "-s", *mix[:1], "-s", *mix[1:], "-o", "q.png",
                  *model_args(work)).exit_code == 0  # fmt: skip
    assert (pixels(work / "p.png") - pixels(work / "q.png")).abs().max() <= 1


def test_interpolate_sheet_layout_and_cells(work, tiny_model):
    result = invoke("interpolate", "c/a.png", "-s", "s/x.png", "-s", "s/y.png", "--alpha", 1,
                    "--steps", 2, "--cell-size", 48, "-o", "sheet.png",
                    *model_args(work))  # fmt: skip
    assert result.exit_code == 0, result.output
    sheet = load_image(work / "sheet.png")
    # Rows: header (3), alpha sweep x (1), alpha sweep y (1), mix x->y (2); labels 16 px.
    assert sheet.size == (8 + 3 * (48 + 8), 8 + 4 * (48 + 16 + 8))
    # Row 1, column 0 is x at alpha 1: the library's result, as a thumbnail in its box.
    cell = adain.api.stylize(work / "c/a.png", work / "s/x.png", model=tiny_model)
    cell.thumbnail((48, 48), Image.Resampling.LANCZOS)
    left, top = 8, 8 + 72 + (48 - cell.height) // 2
    box = sheet.crop((left, top, left + cell.width, top + cell.height))
    assert np.array_equal(np.asarray(box), np.asarray(cell))


def test_contact_sheet_labels_fit_and_presets_show_grey():
    sheet = contact_sheet(
        [[(None, "a very long label that cannot fit"), (None, "b")]], cell_size=40
    )
    assert sheet.size == (8 + 2 * 48, 8 + 40 + 16 + 8)
    assert sheet.getpixel((10, 10)) == (200, 200, 200)
    with pytest.raises(ValueError, match="at least one image"):
        contact_sheet([])


def test_info_counts_parameters_without_loading(work, tiny_model):
    result = invoke("info", work / "tiny-model", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    counts = tiny_model.num_parameters()
    assert info["parameters"] == {**counts, "total": sum(counts.values())}
    assert info["config"] == {"encoder_depth": "relu5_1", "base_channels": 8, "eps": 1e-5}
    assert info["source"] == "folder" and info["revision"] is None
    assert info["card"]["metadata"]["library_name"] == "adain"
    text = invoke("info", work / "tiny-model").stdout
    assert f"encoder {counts['encoder']:,}" in text and "base_channels=8" in text


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"adain {adain.__version__}"


# Bad input: one line, exit 1, no output file ---------------------------------------------------

BAD = [
    (["c/none.png", "-s", "s/x.png"], "content c/none.png: no such file or folder"),
    (["c/*.gif", "-s", "s/x.png"], "content pattern 'c/*.gif' matches no files"),
    (["empty", "-s", "s/x.png"], "content folder empty has no files"),
    (["bad.png", "-s", "s/x.png"], "bad.png: not an image file PIL can read"),
    (["c/a.png", "-s", "s/x.png", "--alpha", "-0.5"], "--alpha must be a number >= 0"),
    (["c/a.png", "-s", "s/x.png", "-s", "s/y.png", "-w", "1"], "give one --weight per style"),
    (["c/a.png", "-s", "s/x.png", "-w", "-1"], "--weight values must be >= 0"),
    (["c/a.png", "-s", "s/x.png", "--mask", "m/none.png"], "mask m/none.png: no such file"),
    (["c/a.png", "-s", "s/x.png", "--mask", "m/left.png", "--mask", "m/right.png"],
     "give one mask per style"),
    (["c/a.png", "-s", "s/x.png", "--content-size", "-1"], "--content-size must be >= 0"),
    (["c/a.png", "-s", "s/x.png", "--quality", "0"], "--quality must be between 1 and 100"),
    (["c/a.png", "-s", "s/x.png", "--max-pixels", "100"], "is over the limit of 100 pixels"),
    (["c/a.png", "-s", "x.safetensors"], "style x.safetensors: no such file or folder"),
    (["c", "-s", "s/x.png", "-o", "one.png"], "makes 2 images: -o must be a folder"),
    (["c/a.png", "-s", "s/x.png", "-o", "o.xyz"], "unknown image extension .xyz"),
    (["c/a.png", "-s", "s/x.png", "-o", "c/a.png", "--overwrite"], "is one of the inputs"),
    (["c/a.png", "-s", "s/x.png", "--model", "no-such-dir/"], "no-such-dir"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_one_line_and_nothing_written(work, args, message):
    (work / "empty").mkdir()
    (work / "bad.png").write_text("not a picture")
    before = sorted(p for p in work.rglob("*"))
    model = ["--model", str(work / "tiny-model")] if "--model" not in args else []
    result = invoke("stylize", *args, "--device", "cpu", *model)
    assert result.exit_code == 1
    assert message in one_error_line(result)
    assert sorted(p for p in work.rglob("*")) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_is_an_error_not_a_fallback(work):
    result = invoke("stylize", "c/a.png", "-s", "s/x.png", "--model", work / "tiny-model",
                    "--device", "cuda")  # fmt: skip
    assert result.exit_code == 1 and "CUDA is not available" in one_error_line(result)
    assert not list(work.glob("*.png"))


def test_truncated_image_mid_batch_writes_nothing(work):
    data = (work / "c/sub/b.jpg").read_bytes()
    (work / "c/sub/b.jpg").write_bytes(data[: len(data) // 2])  # the header still reads
    result = invoke("stylize", "c", "-s", "s/x.png", "-o", "out", *model_args(work))
    assert result.exit_code == 1 and "truncated" in one_error_line(result)
    assert "b.jpg" in one_error_line(result)
    assert not (work / "out").exists()  # found while planning, before the first output


def test_debug_shows_the_exception(work):
    result = invoke("stylize", "c/none.png", "-s", "s/x.png", "--debug")
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)


def test_style_encode_and_interpolate_bad_input(work):
    result = invoke("style-encode", "s/x.png", "-o", "x.png", *model_args(work))
    assert "-o must end in .safetensors" in one_error_line(result)
    (work / "a_sweep.png").write_bytes(b"keep")
    result = invoke("interpolate", "c/a.png", "-s", "s/x.png", *model_args(work))
    assert "a_sweep.png already exists" in one_error_line(result)
    result = invoke("interpolate", "c/a.png", "-s", "s/x.png", "--alpha", -1, "-o", "z.png",
                    *model_args(work))  # fmt: skip
    assert "--alpha values must be >= 0" in one_error_line(result)
    assert not (work / "z.png").exists()


def test_interpolate_never_replaces_an_input_even_with_overwrite(work):
    """Issue 16, case 4: `interpolate ... -o INPUT --overwrite` replaced one of its own inputs
    (stylize and style-encode already refused)."""
    before = {p: p.read_bytes() for p in (work / "c/a.png", work / "s/x.png", work / "s/y.png")}
    for output in ("c/a.png", "s/y.png", "s/../s/x.png"):
        result = invoke("interpolate", "c/a.png", "-s", "s/x.png", "-s", "s/y.png", "-o", output,
                        "--overwrite", *model_args(work))  # fmt: skip
        assert f"{output} is one of the inputs: choose another -o" in one_error_line(result)
    assert {p: p.read_bytes() for p in before} == before


def test_unknown_model_id_offline(work, monkeypatch):
    import huggingface_hub.constants

    # No network and no cache: the real loading path answers in one line, nothing is written.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    result = invoke("stylize", "c/a.png", "-s", "s/x.png", "--model", "nobody/nothing")
    assert result.exit_code == 1 and "nobody/nothing" in one_error_line(result)
    assert not list(work.glob("*.png"))


def test_info_bad_input(work):
    assert "does not exist" in one_error_line(invoke("info", "./missing"))
    assert "has no config.json" in one_error_line(invoke("info", "c"))


# Hub models, through the real client against a loopback stand-in (see test_hub.py) ----------


@pytest.fixture
def hub(work: Path, stand_in_hub):
    """org/tiny: tag v1 is the width-8 test model, main a width-4 one."""
    server = stand_in_hub
    files = {p.name: p.read_bytes() for p in (work / "tiny-model").iterdir()}
    server.v1 = server.commit("org/tiny", files)
    make_model(width=4).save_pretrained(work / "wider")
    server.commit("org/tiny", {p.name: p.read_bytes() for p in (work / "wider").iterdir()})
    server.tag("org/tiny", "v1", server.v1)
    return server


def test_info_from_a_hub_revision(hub, tiny_model):
    result = invoke("info", "org/tiny", "--revision", "v1", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["source"] == "hub" and info["revision"] == hub.v1
    assert info["config"]["base_channels"] == 8
    assert info["parameters"]["total"] == sum(tiny_model.num_parameters().values())
    assert "org/none is neither a folder nor a Hub" in one_error_line(invoke("info", "org/none"))


def test_stylize_from_a_hub_revision(hub, work):
    common = ["c/a.png", "-s", "s/x.png", "--device", "cpu"]
    result = invoke("stylize", *common, "--model", "org/tiny", "--revision", "v1", "-o", "hub.png")
    assert result.exit_code == 0, result.output
    result = invoke("stylize", *common, "--model", work / "tiny-model", "-o", "dir.png")
    assert result.exit_code == 0, result.output
    assert torch.equal(pixels(work / "hub.png"), pixels(work / "dir.png"))
    result = invoke("stylize", *common, "--model", "org/none", "-o", "none.png")
    assert result.exit_code == 1 and "org/none" in one_error_line(result)
    assert not (work / "none.png").exists()


# Real ``python -m adain`` runs -----------------------------------------------------------------


def run_adain(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "adain", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})},
        timeout=120,
    )


def test_import_help_and_info_do_not_import_torch(work):
    code = (
        "import sys, adain.cli; from typer.testing import CliRunner; "
        "assert 'torch' not in sys.modules, 'import adain.cli imported torch'; "
        f"result = CliRunner().invoke(adain.cli.app, ['info', {str(work / 'tiny-model')!r}]); "
        "assert result.exit_code == 0, result.output; "
        "assert 'torch' not in sys.modules, 'adain info imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    result = run_adain("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"adain {adain.__version__}"


def test_end_to_end_batch(work):
    # Folder + quoted glob, --json, output sizes equal to the content sizes.
    args = ["stylize", "c", "s/*.png", "-s", "s/y.png", "-o", "out", "--json", *model_args(work)]
    result = run_adain(*args, cwd=work)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4  # (a, b, x, y) x (y)
    sizes = {Path(r["output"]).name: load_image(work / r["output"]).size for r in records}
    assert sizes == {"a_y.png": (56, 40), "b_y.png": (32, 32), "x_y.png": (40, 48),
                     "y_y.png": (48, 32)}  # fmt: skip


def test_unreachable_hub(work):
    # A refused connection is found by one probe, without the client's retries: one line.
    result = run_adain("stylize", "c/a.png", "-s", "s/x.png", "--model", "org/name", cwd=work,
                       env={"HF_ENDPOINT": "http://127.0.0.1:9"})  # fmt: skip
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not list(work.glob("*.png"))


def test_tiling_and_precision_options_are_forwarded(work, recorded):
    result = invoke("stylize", "c/a.png", "-s", "s/x.png", "-o", "o.png",
                    "--tile", 128, "--max-memory", "3G", "--precision", "bf16")  # fmt: skip
    assert result.exit_code == 0, result.output
    (call,) = recorded["stylize"]
    assert (call["tile"], call["max_memory"], call["precision"]) == (128, "3G", "bf16")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--tile", "8", "--tile must be at least 64 px"),
     ("--max-memory", "lots", "cannot read memory size"),
     ("--precision", "fp8", "--precision must be fp32, bf16 or fp16")],
)  # fmt: skip
def test_bad_tiling_options(work, option, value, message):
    result = invoke("stylize", "c/a.png", "-s", "s/x.png", "-o", "o.png", option, value)
    assert result.exit_code == 1 and message in result.output
    assert not Path("o.png").exists()


# Help as a user reads it ----------------------------------------------------------------------

COMMANDS = ("stylize", "interpolate", "style-encode", "info", "convert", "gatys", "compare")


def _command(name: str):
    import typer

    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_fits_80_columns_without_bool_hints_or_cut_options(command):
    result = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "…" not in text, text
    # Only typer's own --help keeps a `<bool>` hint (replacing it would drop the "Try ... --help"
    # line under usage errors).
    hints = [line.split()[1] for line in text.splitlines() if "<bool>" in line]
    assert hints == ["--help"], text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    params = _command(command).params if command else []
    for param in params:
        for name in (n for n in param.opts if n.startswith("-")):
            assert name in text, f"{name} is cut or missing in `adain {command} --help`"
    assert "--no-" not in text  # switches are one flag each, not --x/--no-x pairs


def _help_text(command: str, option: str) -> str:
    (param,) = [p for p in _command(command).params if p.name == option]
    return " ".join(param.help.split())


def test_help_states_the_dataclass_defaults():
    import dataclasses

    from adain.batch import BatchConfig
    from adain.sheet import SweepConfig

    batch = {f.name: f.default for f in dataclasses.fields(BatchConfig)}
    sweep = {f.name: f.default for f in dataclasses.fields(SweepConfig)}
    assert f"(default {batch['alpha']:g})" in _help_text("stylize", "alpha")
    assert batch["ext"] == ".png" and "(default png)" in _help_text("stylize", "ext")
    for command in ("stylize", "interpolate"):
        assert batch["quality"] is None and "(default: Pillow's" in _help_text(command, "quality")
        assert "(default: off)" in _help_text(command, "preserve_color")
    for option in ("content_size", "style_size"):  # None keeps the size
        assert batch[option] is None and sweep[option] is None
        assert "(default 0: keep)" in _help_text("stylize", option)
    assert batch["max_size"] is None and "(default 0: no cap)" in _help_text("stylize", "max_size")
    assert f"(default {sweep['max_size']};" in _help_text("interpolate", "max_size")
    assert f"(default {sweep['steps']})" in _help_text("interpolate", "steps")
    assert f"(default {sweep['cell_size']})" in _help_text("interpolate", "cell_size")
    alphas = " ".join(f"{a:g}".removeprefix("0") or "0" for a in sweep["alphas"])
    assert f"default {alphas})" in _help_text("interpolate", "alpha")
    base_channels = inspect.signature(adain.model.AdaIN).parameters["base_channels"].default
    assert f"(default {base_channels}," in _help_text("convert", "base_channels")


@pytest.mark.parametrize("command", ["stylize", "interpolate", "style-encode", "gatys", "compare"])
def test_commands_that_load_a_model_take_the_same_model_options(command):
    import adain.cli.common as common

    params = {p.name: p for p in _command(command).params}
    for name, shared in (("model", common.Model), ("revision", common.Revision),
                         ("device", common.Device)):  # fmt: skip
        assert name in params, f"adain {command} lacks --{name}"
        assert params[name].help == shared.__metadata__[0].help


# convert --random: try everything offline ------------------------------------------------------


def test_convert_random_then_stylize_offline(work, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    result = invoke("convert", "--random", "-o", "rnd", "--base-channels", 8)
    assert result.exit_code == 0, result.output
    assert result.stdout == "rnd\n"
    assert result.stderr == (
        "warning: random weights: outputs are noise, for trying the tools offline\n"
    )
    card = (work / "rnd" / "README.md").read_text()
    assert "random weights: outputs are noise, for trying the tools offline" in card.lower()
    assert json.loads((work / "rnd" / "config.json").read_text())["base_channels"] == 8
    # The same seed gives the same weights; another seed other weights.
    assert invoke("convert", "--random", "-o", "again", "--base-channels", 8).exit_code == 0
    assert (
        invoke("convert", "--random", "-o", "s1", "--base-channels", 8, "--seed", 1).exit_code == 0
    )
    weights = {n: (work / n / "model.safetensors").read_bytes() for n in ("rnd", "again", "s1")}
    assert weights["rnd"] == weights["again"] != weights["s1"]

    content, style = ROOT / "examples/content/astronaut.jpg", ROOT / "examples/style/waves.jpg"
    result = invoke("stylize", content, "-s", style, "-o", "out.png", "--model", "rnd")
    assert result.exit_code == 0, result.output
    out = pixels(work / "out.png").float()
    assert out.shape == (256, 256, 3)
    assert out.std() > 10  # He init: noise, but not a flat image
    assert invoke("info", "rnd", "--json").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give VGG_FILE and DECODER_FILE"),
        (["vgg.pth"], "give VGG_FILE and DECODER_FILE"),
        (["vgg.pth", "decoder.pth", "--random"], "--random takes no VGG_FILE or DECODER_FILE"),
        (["--base-channels", "8"], "--base-channels and --seed go with --random"),
    ],
)
def test_convert_without_files_or_random_is_one_line(work, args, message):
    result = invoke("convert", *args, "-o", "folder")
    assert result.exit_code == 1
    assert message in one_error_line(result)
    assert not (work / "folder").exists()
