"""Released-weight conversion: converted files reproduce an independent original-layout model."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from conftest import smooth_image
from original_layout import seeded_original, style_transfer
from t7_writer import save_t7, sequential_from_state_dict

from adain.model import AdaIN
from adain.weights.convert import (
    DECODER_INDEX_TO_NAME,
    VGG_INDEX_TO_NAME,
    convert_state_dict,
    load_original_state,
    read_original,
    save_original,
)


def _save_original(
    tmp_path: Path, width: int
) -> tuple[Path, Path, torch.nn.Module, torch.nn.Module]:
    vgg, dec = seeded_original(width)
    vgg_path, dec_path = tmp_path / "vgg_normalised.pth", tmp_path / "decoder.pth"
    torch.save(vgg.state_dict(), vgg_path)
    torch.save(dec.state_dict(), dec_path)
    return vgg_path, dec_path, vgg, dec


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    diff = (actual - expected).abs()
    assert diff.max() <= atol, f"max diff {diff.max():.3g}, mean {diff.mean():.3g} (atol {atol})"


@pytest.mark.parametrize(("height", "width"), [(64, 64), (48, 80)])
@pytest.mark.parametrize("alpha", [1.0, 0.6])
def test_converted_matches_original_layout(tmp_path, height, width, alpha):
    vgg_path, dec_path, vgg, dec = _save_original(tmp_path, width=8)
    model = AdaIN.from_original(vgg_path, dec_path)
    content, style = smooth_image(3, height, width), smooth_image(4, 40, 56)
    with torch.no_grad():
        expected = style_transfer(vgg, dec, content, style, alpha)
        actual = model(content, style, alpha)
    assert expected.std() > 0.05, "degenerate reference output"
    _assert_close(actual, expected, atol=1e-5)


def test_full_width_release_layout(tmp_path):
    """The real VGG-19 widths (20,024,396 encoder parameters in the released file)."""
    vgg_path, dec_path, vgg, dec = _save_original(tmp_path, width=64)
    assert sum(p.numel() for p in vgg.parameters()) == 20_024_396
    assert sum(p.numel() for p in dec.parameters()) == 3_505_219
    model = AdaIN.from_original(vgg_path, dec_path, encoder_depth="relu4_1")
    assert model.num_parameters() == {"encoder": 3_505_740, "decoder": 3_505_219}
    content, style = smooth_image(5, 32, 32), smooth_image(6, 32, 32)
    with torch.no_grad():
        actual, expected = model(content, style), style_transfer(vgg, dec, content, style)
        exact = style_transfer(vgg.double(), dec.double(), content.double(), style.double())
    # Outputs span +-2.7 here, so fp32 rounding alone moves the reference by ~1e-5 from the
    # float64 result; ours sums in another order (adain.engine.fused) and must be as accurate.
    reference_error = (expected.double() - exact).abs().max().item()
    _assert_close(actual.double(), exact, atol=2 * reference_error)
    _assert_close(actual, expected, atol=5e-5)


def test_relu5_1_weights_are_kept(tmp_path):
    vgg_path, dec_path, vgg, _ = _save_original(tmp_path, width=8)
    model = AdaIN.from_original(vgg_path, dec_path, encoder_depth="relu5_1")
    image = smooth_image(7, 32, 32)
    with torch.no_grad():
        expected = vgg[:44](image)  # index 43 is relu5_1
        actual = model.encode(image, ["relu5_1"])["relu5_1"]
    _assert_close(actual, expected, atol=1e-5)


@pytest.mark.parametrize("flat_weights", [False, True])
def test_lua_t7_files(tmp_path, flat_weights):
    vgg, dec = seeded_original(8)
    vgg_t7, dec_t7 = tmp_path / "vgg_normalised.t7", tmp_path / "decoder.t7"
    save_t7(sequential_from_state_dict(vgg.state_dict(), 53, flat_weights), vgg_t7)
    save_t7(sequential_from_state_dict(dec.state_dict(), 29, flat_weights), dec_t7)
    state = read_original(vgg_t7)
    assert set(state) == set(vgg.state_dict())
    model = AdaIN.from_original(vgg_t7, dec_t7)
    content, style = smooth_image(8, 32, 32), smooth_image(9, 32, 32)
    with torch.no_grad():
        _assert_close(model(content, style), style_transfer(vgg, dec, content, style), atol=1e-5)


def test_key_maps_cover_every_weight():
    vgg, dec = seeded_original(8)
    conv_indices = {int(k.split(".")[0]) for k in vgg.state_dict()}
    assert set(VGG_INDEX_TO_NAME) == conv_indices - {45, 48, 51}  # conv5_2..conv5_4 unused
    assert set(DECODER_INDEX_TO_NAME) == {int(k.split(".")[0]) for k in dec.state_dict()}


def test_wrong_shape_names_file_and_key():
    vgg, dec = seeded_original(8)
    vgg_state = vgg.state_dict()
    vgg_state["9.weight"] = torch.zeros(16, 8, 3, 3, 1)
    with pytest.raises(ValueError, match=r"vgg\.pth: encoder\.conv2_1\.weight has shape"):
        convert_state_dict(vgg_state, dec.state_dict(), source=("vgg.pth", "dec.pth"))


def test_missing_key_names_file_and_key():
    vgg, dec = seeded_original(8)
    dec_state = dec.state_dict()
    del dec_state["14.bias"]
    with pytest.raises(ValueError, match=r"dec\.pth: missing key '14\.bias' \(conv3_1\)"):
        convert_state_dict(vgg.state_dict(), dec_state, source=("vgg.pth", "dec.pth"))


def test_swapped_files_are_refused(tmp_path):
    vgg_path, dec_path, _, _ = _save_original(tmp_path, width=8)
    with pytest.raises(ValueError, match="not a vgg_normalised state dict"):
        AdaIN.from_original(dec_path, vgg_path)


def test_relu4_1_only_file_needs_relu4_1_depth():
    vgg, dec = seeded_original(8)
    truncated = {k: v for k, v in vgg.state_dict().items() if int(k.split(".")[0]) <= 30}
    state = convert_state_dict(truncated, dec.state_dict(), encoder_depth="relu4_1")
    assert "encoder.conv4_1.weight" in state and "encoder.conv5_1.weight" not in state
    with pytest.raises(ValueError, match=r"missing key '32\.weight' \(conv4_2\)"):
        convert_state_dict(truncated, dec.state_dict(), encoder_depth="relu5_1")


class _Payload:
    """Unpickling this would run code: weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickled_code_is_never_executed(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"0.weight": _Payload()}, handle)
    with pytest.raises(ValueError, match="not a readable PyTorch state dict"):
        read_original(path)
    assert "unpickled!" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"hello", "not a readable PyTorch state dict"), (None, "does not exist")],
)
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_original(path)


def test_non_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="not a state dict of tensors"):
        read_original(path)


def test_corrupt_t7_is_refused(tmp_path):
    path = tmp_path / "decoder.t7"
    path.write_bytes(b"\x04\x00\x00\x00garbage")
    with pytest.raises(ValueError, match="not a readable Lua Torch .t7 file"):
        read_original(path)


@pytest.mark.parametrize("depth", ["relu4_1", "relu5_1"])
def test_shape_table_matches_the_model(depth):
    from adain.weights.convert import _expected_shapes

    model = AdaIN(encoder_depth=depth, base_channels=8)
    assert _expected_shapes(depth, 8) == {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("depth", ["relu4_1", "relu5_1"])
def test_state_and_config_build_the_model(tmp_path, depth):
    vgg_path, dec_path, _, _ = _save_original(tmp_path, width=8)
    state, config = load_original_state(vgg_path, dec_path, encoder_depth=depth)
    assert config == {"encoder_depth": depth, "base_channels": 8}
    expected = AdaIN.from_original(vgg_path, dec_path, encoder_depth=depth).state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    with pytest.raises(ValueError, match="encoder_depth must be one of"):
        load_original_state(vgg_path, dec_path, encoder_depth="relu3_1")


def test_save_original_writes_a_loadable_folder(tmp_path):
    vgg_path, dec_path, vgg, dec = _save_original(tmp_path, width=8)
    old = os.umask(0o022)
    try:
        folder = save_original(vgg_path, dec_path, tmp_path / "converted", encoder_depth="relu4_1")
    finally:
        os.umask(old)
    # safetensors' save_file makes its file 0600: the folder's files follow the umask.
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        "config.json": 0o644, "model.safetensors": 0o644, "README.md": 0o644,
    }  # fmt: skip
    model = AdaIN.from_pretrained(str(folder))
    assert "encoder.conv4_1.weight" in model.state_dict()
    assert "encoder.conv5_1.weight" not in model.state_dict()  # config.json kept relu4_1
    content, style = smooth_image(10, 32, 32), smooth_image(11, 32, 32)
    with torch.no_grad():
        _assert_close(model(content, style), style_transfer(vgg, dec, content, style), atol=1e-5)
    with pytest.raises(ValueError, match="already exists"):
        save_original(vgg_path, dec_path, folder)


def test_cli_convert_overwrite_replaces_only_its_own_model_folder(tmp_path):
    """Issue 16, case 5: `convert ... -o DIR --overwrite` deleted the whole folder, its input
    .pth files and unrelated files included; `-o INPUT.pth --overwrite` deleted the input."""
    from typer.testing import CliRunner

    from adain.cli import app

    vgg_path, dec_path, _, _ = _save_original(tmp_path, width=8)
    inputs = {path: path.read_bytes() for path in (vgg_path, dec_path)}

    def convert(output: Path, *extra: str):
        args = ["convert", str(vgg_path), str(dec_path), "-o", str(output), *extra]
        result = CliRunner().invoke(app, args)
        lines = result.stderr.strip().splitlines()
        return result.exit_code, lines[-1] if lines else ""

    code, error = convert(tmp_path, "--overwrite")  # the folder of the inputs
    assert code == 1 and "holds the input vgg_normalised.pth: choose another -o" in error
    code, error = convert(vgg_path, "--overwrite")
    assert code == 1 and "vgg_normalised.pth is one of the inputs" in error
    assert {path: path.read_bytes() for path in inputs} == inputs
    assert vgg_path.is_file()

    folder = tmp_path / "model"
    assert convert(folder) == (0, "")
    assert convert(folder)[1].endswith(
        "model already exists: pass --overwrite or choose another -o"
    )
    assert convert(folder, "--overwrite") == (0, "")  # its own files only: replaced
    (folder / "notes.txt").write_text("mine")
    code, error = convert(folder, "--overwrite")
    assert code == 1 and "holds notes.txt, which this command does not write" in error
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "notes.txt"
    ]  # fmt: skip
    AdaIN.from_pretrained(str(folder))  # the previous conversion, whole


def test_every_card_carries_the_licences_and_provenance(tmp_path, tiny_model):
    """save_pretrained, `adain convert`, the converted folder of the loading fallbacks and the
    published card (hub/) all carry the one Licences list of adain.weights.card."""
    from typer.testing import CliRunner

    from adain.cli import app
    from adain.weights.card import RELEASED_DECODER, UNRECORDED_DECODER, licences
    from adain.weights.download import sha256_file
    from hub.push import render_card

    vgg_path, dec_path, _, _ = _save_original(tmp_path, width=8)
    shas = [sha256_file(vgg_path), sha256_file(dec_path)]
    tiny_model.save_pretrained(tmp_path / "saved")
    result = CliRunner().invoke(
        app, ["convert", str(vgg_path), str(dec_path), "-o", str(tmp_path / "cli")]
    )
    assert result.exit_code == 0, result.output
    save_original(vgg_path, dec_path, tmp_path / "fallback")
    published = render_card(
        {"base_channels": 8}, "org/x", "0" * 64, title="t", provenance="p", training="t",
        decoder_licence=RELEASED_DECODER,
    )  # fmt: skip
    cards = {name: (tmp_path / name / "README.md").read_text() for name in ("cli", "fallback")}
    for name, card in cards.items():
        assert card.startswith("---\nlibrary_name: adain\n"), name
        assert licences(RELEASED_DECODER) in card, name
        for file, sha in zip(("vgg_normalised.pth", "decoder.pth"), shas, strict=True):
            assert f"| `{file}` | `{sha}` |" in card, name  # provenance: sources and sha256
    assert licences(UNRECORDED_DECODER) in (tmp_path / "saved" / "README.md").read_text()
    assert licences(RELEASED_DECODER) in published


def test_licence_text_has_one_source():
    """The licence wording lives in adain/weights/card.py only; card writers import it."""
    root = Path(__file__).parent.parent
    writers = [
        "adain/model.py",
        "adain/weights/convert.py",
        "adain/weights/download.py",
        "adain/weights/hub.py",
        "adain/cli/models.py",
        "hub/push.py",
        "hub/model_card.md",
    ]
    for path in writers:
        text = (root / path).read_text(encoding="utf-8")
        assert "Simonyan" not in text and "CC BY" not in text, path
