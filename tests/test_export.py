"""ONNX export and the ONNX Runtime backend: the CLI export, the graphs' shapes, parity with the
torch model (odd sizes, batches, mixes, colour preservation), fp16, and one-line errors.

One width-8 model is exported once per module through ``adain export`` (about 5 s); the
full-width parity runs under ``-m slow``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_model, one_error_line, smooth_image
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from adain.api import stylize  # noqa: E402
from adain.cli import app  # noqa: E402
from adain.export.backend import OnnxRuntimeBackend, fingerprint  # noqa: E402
from adain.export.onnx import EXPORT_FILES, OPSET, TOLERANCE, export_onnx  # noqa: E402
from adain.image import load_image, save_image, to_tensor  # noqa: E402
from adain.style import StyleStats  # noqa: E402

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, Path]:
    """``(model, model folder, export folder)``: the export written by ``adain export``."""
    root = tmp_path_factory.mktemp("export")
    model = make_model()
    model.save_pretrained(root / "model")
    result = invoke("export", root / "model", "--format", "onnx", "-o", root / "onnx")
    assert result.exit_code == 0, result.output
    assert str(root / "onnx") in result.stdout and "fp16" in result.stdout
    return model, root / "model", root / "onnx"


@pytest.fixture(scope="module")
def backend(exported) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(exported[2])


def test_export_folder_config_and_readme(exported):
    model, model_dir, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == sorted(EXPORT_FILES)
    config = json.loads((folder / "config.json").read_text())
    assert config["opset"] == OPSET and config["channels"] == 64
    assert config["model_fingerprint"] == fingerprint(model)
    assert config["model_source"] == str(model_dir)
    fp32, fp16 = config["parity"]["fp32"], config["parity"]["fp16"]
    assert fp32["max_abs"] <= TOLERANCE and fp32["tolerance"] == TOLERANCE
    assert len(fp32["per_size"]) == 3 and "45x77" in fp32["per_size"]  # an odd size
    assert 0 < fp16["max_abs"] < 0.1  # measured and recorded, fp16 rounding, not a bug
    readme = (folder / "README.md").read_text()
    for words in (f"Opset {OPSET}", "style_mean", "reflect-pad", "np.pad", "fp16"):
        assert words in readme


def test_graphs_have_dynamic_batch_height_width_and_the_opset(exported):
    import onnx

    folder = exported[2]
    for name in EXPORT_FILES[:4]:
        graph = onnx.load(str(folder / name))
        assert {o.domain: o.version for o in graph.opset_import}[""] == OPSET
        meta = {p.key: p.value for p in graph.metadata_props}
        assert meta["adain_model_fingerprint"] == fingerprint(exported[0])
        dims = {
            i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in graph.graph.input
        }
        if "image" in dims:
            assert dims["image"] == ["batch", 3, "height", "width"]
        else:
            assert dims["features"] == ["batch", 64, "cells_height", "cells_width"]
            # The style's batch is its own: one style over a batch of contents.
            assert dims["style_mean"] == ["style_batch", 64, 1, 1]


def test_encoder_statistics_match_the_formula(backend):
    """mean and std are the features' per-channel mean and sqrt(unbiased var + eps),
    written here independently (pytorch-AdaIN's calc_mean_std)."""
    image = smooth_image(5, 45, 61)
    feats, mean, std = backend.encode(image)
    assert feats.shape == (1, 64, 6, 8)  # ceil(45/8), ceil(61/8): pooled with ceil_mode
    flat = feats.double().flatten(2)
    n = flat.shape[-1]
    expected_mean = flat.mean(-1)
    expected_var = ((flat - expected_mean[..., None]) ** 2).sum(-1) / (n - 1)
    torch.testing.assert_close(mean.double().flatten(1), expected_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        std.double().flatten(1), (expected_var + 1e-5).sqrt(), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("size", [(32, 32), (37, 53), (48, 80)])
def test_parity_with_the_torch_model(exported, backend, size):
    """A batch of two contents (odd sizes padded to a multiple of 8 and cropped back, as the
    model does) with one style image, alpha 0.7: within 1e-4 of the model."""
    model = exported[0]
    content = torch.cat([smooth_image(10, *size), smooth_image(11, *size)])
    style = smooth_image(12, 41, 59)
    with torch.no_grad():
        expected = model(content, style, 0.7)
    got = backend(content, style, 0.7)
    assert got.shape == content.shape
    assert max_abs(got, expected) <= TOLERANCE, max_abs(got, expected)


def test_alpha_zero_decodes_the_content_features(exported, backend):
    """A round trip: alpha 0 is the decoder applied to the content's own features."""
    model = exported[0]
    content = smooth_image(13, 40, 48)
    with torch.no_grad():
        expected = model.decode(model.encode(content)["relu4_1"])
    got = backend(content, StyleStats(torch.rand(1, 64, 1, 1), torch.rand(1, 64, 1, 1)), 0.0)
    assert max_abs(got, expected) <= TOLERANCE


def test_api_mix_luminance_and_coral_match_torch(exported, tmp_path):
    model, _, folder = exported
    content = save_image(smooth_image(20, 37, 45), tmp_path / "content.png")
    styles = [smooth_image(21, 40, 40), smooth_image(22, 33, 50)]
    cases = [
        {"weights": [1.0, 3.0]},
        {"preserve_color": "luminance"},
        {"preserve_color": "coral"},
    ]
    for case in cases:
        kwargs = {"model": model, "output": "tensor", "alpha": 0.9, **case}
        expected = stylize(content, styles, **kwargs)
        got = stylize(content, styles, backend="onnxruntime", onnx=folder, **kwargs)
        assert max_abs(got, expected) <= TOLERANCE, (case, max_abs(got, expected))


def test_fp16_graphs_within_their_measured_error(exported):
    model, _, folder = exported
    content, style = smooth_image(30, 56, 40), smooth_image(31, 48, 48)
    expected = stylize(content, style, model=model, output="tensor")
    got = stylize(content, style, model=model, output="tensor", backend="onnxruntime", onnx=folder)
    half = stylize(
        content, style, model=model, output="tensor", backend="onnxruntime", onnx=folder,
        precision="fp16",
    )  # fmt: skip
    assert max_abs(got, expected) <= TOLERANCE
    assert 0 < max_abs(half, expected) < 0.05


def test_cli_stylize_backend_onnxruntime_from_the_cache(exported, tmp_path, monkeypatch):
    """Without --onnx the model is exported once into $ADAIN_CACHE/onnx; the output file is the
    torch backend's within one level of 8 bits."""
    _, model_dir, _ = exported
    monkeypatch.setenv("ADAIN_CACHE", str(tmp_path / "cache"))
    content = save_image(smooth_image(40, 37, 53), tmp_path / "content.png")
    style = save_image(smooth_image(41, 40, 40), tmp_path / "style.png")
    common = [content, "-s", style, "--model", model_dir, "--alpha", "0.8"]
    result = invoke("stylize", *common, "-o", tmp_path / "torch.png")
    assert result.exit_code == 0, result.output
    result = invoke("stylize", *common, "--backend", "onnxruntime", "-o", tmp_path / "ort.png")
    assert result.exit_code == 0, result.output
    (cached,) = (tmp_path / "cache" / "onnx").iterdir()
    assert (cached / "decoder.onnx").is_file()
    a, b = (to_tensor(load_image(tmp_path / f"{n}.png")) for n in ("torch", "ort"))
    assert max_abs(a, b) <= 1 / 255 + 1e-6


def test_errors_are_one_line(exported, tmp_path):
    model, model_dir, folder = exported
    content = save_image(smooth_image(50, 32, 32), tmp_path / "c.png")
    # An output folder that exists (the guard of adain.outputs), before the model loads.
    assert "already exists" in one_error_line(invoke("export", model_dir, "-o", folder))
    assert not (tmp_path / "x").exists()
    line = one_error_line(invoke("export", model_dir, "--format", "tflite", "-o", tmp_path / "x"))
    assert "unknown --format 'tflite'" in line and "onnx" in line
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert "broken" in one_error_line(invoke("export", broken, "-o", tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    # Graphs of another model, by the CLI and the API.
    other = tmp_path / "other"
    make_model(seed=1).save_pretrained(other)
    args = [content, "-s", content, "--backend", "onnxruntime", "--onnx", folder]
    line = one_error_line(invoke("stylize", *args, "--model", other, "-o", tmp_path / "o.png"))
    assert str(folder) in line and "another model" in line
    # What the ONNX decoder does not do.
    masks = ["--mask", content]
    line = one_error_line(invoke("stylize", *args, *masks, "--model", model_dir, "-o", "o.png"))
    assert "--mask needs --backend torch" in line
    line = one_error_line(invoke("stylize", *args, "--transfer", "efdm", "-o", "o.png"))
    assert "--transfer efdm needs --backend torch" in line
    assert not Path("o.png").exists()
    for kwargs, words in [
        ({"masks": [torch.ones(1, 1, 32, 32)]}, "masks"),
        ({"transfer": "efdm"}, "efdm"),
        ({"device": "cuda"}, "CPU"),
        ({"backend": "tensorrt"}, "unknown backend"),
    ]:
        call = {"model": model, "backend": "onnxruntime", "onnx": folder, **kwargs}
        with pytest.raises(ValueError, match=words):
            stylize(smooth_image(1, 32, 32), smooth_image(2, 32, 32), **call)
    small = StyleStats(torch.zeros(1, 32, 1, 1), torch.ones(1, 32, 1, 1))
    with pytest.raises(ValueError, match="32 channels, the ONNX model in .* 64"):
        stylize(content, small, model=model, backend="onnxruntime", onnx=folder)
    not_export = tmp_path / "empty"
    not_export.mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        stylize(content, content, model=model, backend="onnxruntime", onnx=not_export)


def test_a_failed_parity_check_writes_nothing(monkeypatch, tmp_path):
    import adain.export.onnx as onnx_export

    monkeypatch.setattr(onnx_export, "TOLERANCE", 0.0)
    monkeypatch.setattr(onnx_export, "PARITY_SIZES", ((32, 40),))
    with pytest.raises(ValueError, match="differ from the model by .* nothing was written"):
        export_onnx(make_model(), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_full_width_parity(tmp_path):
    """The released architecture (width 64, random He weights) within 1e-4 of the torch model
    at three sizes, one odd, with a batch and a style mix."""
    from adain.model import AdaIN

    model = AdaIN.with_random_weights(base_channels=64)
    config = export_onnx(model, tmp_path / "onnx")
    assert config["parity"]["fp32"]["max_abs"] <= TOLERANCE
    backend = OnnxRuntimeBackend(tmp_path / "onnx")
    styles = [smooth_image(61, 97, 131), smooth_image(62, 120, 80)]
    for index, size in enumerate([(128, 128), (101, 157), (200, 136)]):
        content = torch.cat([smooth_image(70 + index, *size), smooth_image(80 + index, *size)])
        with torch.no_grad():
            expected = model(content, styles, 0.6, weights=[2.0, 1.0])
        got = backend(content, styles, 0.6, weights=[2.0, 1.0])
        assert max_abs(got, expected) <= TOLERANCE, (size, max_abs(got, expected))
    np.testing.assert_array_less(config["parity"]["fp16"]["max_abs"], 0.05)


def test_hub_push_dry_run_adds_the_onnx_folder_to_the_card(exported, tmp_path):
    """`python -m hub push DIR --onnx --dry-run -o OUT`: the model files, onnx/ with its graphs,
    and a card whose ONNX section lists each file's sha256 and the measured parity."""
    from adain.weights.download import sha256_file
    from hub.cli import app as hub_app
    from hub.push import ONNX_FOLDER

    _, model_dir, _ = exported
    out = tmp_path / "built"
    args = ["push", str(model_dir), "--repo-id", "org/x", "--dry-run", "-o", str(out), "--onnx"]
    result = CliRunner().invoke(hub_app, args)
    assert result.exit_code == 0 and "not pushed" in result.output, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        ONNX_FOLDER,
    ]
    assert sorted(p.name for p in (out / ONNX_FOLDER).iterdir()) == sorted(EXPORT_FILES)
    card = (out / "README.md").read_text()
    config = json.loads((out / ONNX_FOLDER / "config.json").read_text())
    assert "## ONNX" in card and f"{config['parity']['fp32']['max_abs']:.2g} in fp32" in card
    for name in EXPORT_FILES:
        assert f"| `onnx/{name}` | `{sha256_file(out / ONNX_FOLDER / name)}` |" in card
    # The pushed graphs run as the exported ones do, for the model in the same folder.
    backend = OnnxRuntimeBackend(out / ONNX_FOLDER)
    from adain.model import AdaIN

    backend.check_model(AdaIN.from_pretrained(out))


def test_the_folder_readme_example_runs_without_adain(exported, tmp_path, monkeypatch):
    """The README written beside the graphs: its Python example (numpy, onnxruntime, PIL only)
    gives the torch model's output within one level of 8 bits, at an odd size."""
    import re

    model, _, folder = exported
    code = re.findall(r"```python\n(.*?)```", (folder / "README.md").read_text(), re.DOTALL)[0]
    assert "import adain" not in code and "from adain" not in code
    for name in EXPORT_FILES[:2]:
        (tmp_path / name).symlink_to(folder / name)
    save_image(smooth_image(90, 45, 77), tmp_path / "content.jpg", quality=95)
    save_image(smooth_image(91, 50, 50), tmp_path / "style.jpg", quality=95)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the export's own README
    expected = stylize("content.jpg", "style.jpg", model=model, output="tensor")
    got = to_tensor(load_image("out.png"))
    assert got.shape == expected.shape and max_abs(got, expected) <= 1 / 255 + 1e-6


def test_without_the_onnx_extra_the_error_names_it(exported, monkeypatch):
    import sys

    model, _, folder = exported
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ValueError, match=r'pip install "adain\[onnx\]"'):
        stylize(
            smooth_image(1, 32, 32), smooth_image(2, 32, 32), model=model, backend="onnxruntime"
        )
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ValueError, match=r'pip install "adain\[onnx\]"'):
        export_onnx(model, folder.parent / "never")
    assert not (folder.parent / "never").exists()


@pytest.mark.slow
def test_onnx_benchmark_smoke_run(capsys):
    """`python -m benchmarks onnx` end to end on a width-8 model at 32 px: every variant's
    time, CPU time and peak memory, and the parity of the export it timed."""
    from benchmarks.onnx_bench import main

    main(["--sizes", "32", "--repeat", "1", "--width", "8", "--upsampling", "--fp16"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    row = result["results"]["32"]
    assert set(row) == {"torch", "ort", "ort-plain", "ort-fp16"}
    assert all(v["median"] > 0 and v["cpu"] > 0 and v["gib"] > 0 for v in row.values())
    assert result["parity"]["fp32"]["max_abs"] <= TOLERANCE
