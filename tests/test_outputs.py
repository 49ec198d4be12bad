"""The output guard (adain/outputs.py): nothing an output replaces is lost.

Each command's own case is tested beside it (test_gatys, test_cli, test_convert, test_hub);
here: the guard itself, file and folder modes under the umask, one-line errors, train's export.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from conftest import smooth_image
from typer.testing import CliRunner

from adain.cli import app
from adain.image import save_image
from adain.outputs import check_folder, check_output, write_atomically, write_folder
from adain.style import StyleStats

NAMES = ("model.safetensors", "config.json", "README.md")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _fill(staging: Path) -> None:
    for name in NAMES:
        (staging / name).write_text(f"new {name}")


# check_output -----------------------------------------------------------------------------------


def test_check_output_refuses_inputs_even_with_overwrite(tmp_path):
    image = tmp_path / "c.png"
    image.write_bytes(b"input")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="c.png is one of the inputs: choose another -o"):
            check_output(image, [tmp_path / "other.png", image], overwrite)
    # The same file spelled another way is still the input.
    with pytest.raises(ValueError, match="is one of the inputs"):
        check_output(tmp_path / "sub" / ".." / "c.png", [image], True)


def test_check_output_needs_overwrite_for_any_existing_file(tmp_path):
    out = tmp_path / "o.png"
    assert check_output(out) == out  # new: fine
    out.write_bytes(b"old")
    with pytest.raises(ValueError, match="o.png already exists: pass --overwrite or choose"):
        check_output(out, what="-o")
    with pytest.raises(ValueError, match="choose another --json"):
        check_output(out, what="--json")
    assert check_output(out, overwrite=True) == out
    with pytest.raises(ValueError, match="is a folder"):
        check_output(tmp_path, overwrite=True)


def test_a_file_in_the_way_of_the_folder_is_one_line_not_errno_17(tmp_path):
    (tmp_path / "file").write_text("keep")
    with pytest.raises(ValueError, match=r"file is a file, not a folder: choose another -o"):
        check_output(tmp_path / "file" / "sub" / "o.png")
    with pytest.raises(ValueError, match="not a folder") as error:
        save_image(smooth_image(1, 8, 8), tmp_path / "file" / "o.png")
    assert "Errno" not in str(error.value)
    save_image(smooth_image(1, 8, 8), tmp_path / "x.png")
    args = ["style-encode", str(tmp_path / "x.png"), "-o", str(tmp_path / "file" / "s.safetensors")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Errno" not in result.output
    assert (
        result.stderr.strip()
        == f"error: {tmp_path / 'file'} is a file, not a folder: choose another -o"
    )
    assert (tmp_path / "file").read_text() == "keep"


# write_atomically -------------------------------------------------------------------------------


def test_files_get_the_umask_not_0600(tmp_path, umask_022):
    """mkstemp made every output, preset and model file 0600."""
    image = save_image(smooth_image(1, 8, 8), tmp_path / "o.png")
    preset = StyleStats(torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1)).save(tmp_path / "s.st")
    plain = write_atomically(tmp_path / "n.json", lambda handle: handle.write(b"{}"))
    assert [_mode(p) for p in (image, preset, plain)] == [0o644] * 3
    os.umask(0o077)
    assert _mode(write_atomically(tmp_path / "private", lambda h: h.write(b"x"))) == 0o600


def test_model_folders_get_the_umask_not_0600(tmp_path, umask_022):
    """safetensors' save_file creates its file 0600: the model folder writer does not use it."""
    model = tmp_path / "random-model"
    result = CliRunner().invoke(
        app, ["convert", "--random", "--base-channels", "4", "-o", str(model)]
    )
    assert result.exit_code == 0, result.output
    assert _mode(model) == 0o755
    assert {p.name: _mode(p) for p in model.iterdir()} == {
        "config.json": 0o644,
        "model.safetensors": 0o644,
        "README.md": 0o644,
    }


def test_write_errors_name_the_file_never_the_temporary_one(tmp_path):
    def full(handle):
        raise OSError(28, "No space left on device", str(handle.name))

    out = tmp_path / "o.json"
    out.write_text("old")
    with pytest.raises(OSError) as error:
        write_atomically(out, full)
    assert str(error.value) == f"cannot write {out}: No space left on device"
    assert out.read_text() == "old"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json"]  # no temporary left


# write_folder -----------------------------------------------------------------------------------


def test_folders_get_the_umask_not_0700(tmp_path, umask_022):
    folder = write_folder(tmp_path / "model", _fill, NAMES)
    assert _mode(folder) == 0o755
    assert {_mode(p) for p in folder.iterdir()} == {0o644}


def test_overwrite_replaces_only_a_folder_of_the_commands_own_files(tmp_path):
    folder = write_folder(tmp_path / "model", _fill, NAMES)
    with pytest.raises(ValueError, match="model already exists: pass --overwrite"):
        write_folder(folder, _fill, NAMES)
    (folder / "config.json").write_text("old")
    write_folder(folder, _fill, NAMES, overwrite=True)  # only its own files: replaced
    assert (folder / "config.json").read_text() == "new config.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing left beside it

    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds notes.txt, which this command does not write"):
        write_folder(folder, _fill, NAMES, overwrite=True)
    (folder / "notes.txt").unlink()
    (folder / "sub").mkdir()
    with pytest.raises(ValueError, match="holds sub"):
        check_folder(folder, NAMES, overwrite=True)


def test_a_folder_never_replaces_an_input_or_a_file(tmp_path):
    folder = write_folder(tmp_path / "model", _fill, NAMES)
    source = folder / "model.safetensors"
    with pytest.raises(ValueError, match="model holds the input model.safetensors"):
        write_folder(folder, _fill, NAMES, inputs=[source], overwrite=True)
    with pytest.raises(ValueError, match="is one of the inputs"):
        write_folder(source, _fill, NAMES, inputs=[source], overwrite=True)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        write_folder(source, _fill, NAMES, overwrite=True)
    assert source.read_text() == "new model.safetensors"


def test_a_failed_fill_leaves_the_old_folder_and_nothing_else(tmp_path):
    folder = write_folder(tmp_path / "model", _fill, NAMES)

    def broken(staging: Path) -> None:
        (staging / "config.json").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_folder(folder, broken, NAMES, overwrite=True)
    assert (folder / "config.json").read_text() == "new config.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_empty_folder_is_filled_without_overwrite(tmp_path):
    (tmp_path / "empty").mkdir()
    folder = write_folder(tmp_path / "empty", _fill, NAMES)
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES)


# Case 2: python -m train ... --export DIR --------------------------------------------------------


def test_train_export_never_empties_an_unrelated_folder(tmp_path):
    """export() replaces its folder by default (train re-exports), but only a model folder."""
    from train.export import export

    unrelated = tmp_path / "photos"
    unrelated.mkdir()
    (unrelated / "holiday.jpg").write_bytes(b"precious")
    checkpoint = tmp_path / "latest.pt"  # refused before it is even read
    with pytest.raises(ValueError, match="holds holiday.jpg, which this command does not write"):
        export(checkpoint, unrelated)
    assert (unrelated / "holiday.jpg").read_bytes() == b"precious"
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.pt").write_bytes(b"ckpt")
    with pytest.raises(ValueError, match="holds the input latest.pt"):
        export(run / "latest.pt", run)
    assert (run / "latest.pt").read_bytes() == b"ckpt"


def test_a_name_too_long_for_the_temporary_file_is_one_line(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    path = tmp_path / ("x" * (limit - 4) + ".png")  # fits; its temporary sibling does not
    with pytest.raises(OSError) as caught:
        write_atomically(path, lambda handle: handle.write(b"data"))
    message = str(caught.value)
    assert message.startswith(f"cannot write {path}") and "\n" not in message
    assert ".tmp" not in message and list(tmp_path.iterdir()) == []


# The newer writers: export, evaluate ------------------------------------------------------------


def test_export_and_evaluate_never_replace_an_input(tmp_path, tiny_model_dir):
    """`adain export -o MODEL --overwrite` and `adain evaluate --pairs LIST -o LIST --overwrite`
    refuse in one line, and the inputs stay as they were."""
    pytest.importorskip("onnx")
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    save_image(smooth_image(1, 32, 32), content)
    save_image(smooth_image(2, 32, 32), style)
    pairs = tmp_path / "pairs.json"  # a list of pairs, whatever its name
    pairs.write_text(f"{content} {style}\n")
    before = {p: p.read_bytes() for p in (content, style, pairs, *tiny_model_dir.iterdir())}
    runner = CliRunner()
    export = runner.invoke(
        app, ["export", str(tiny_model_dir), "-o", str(tiny_model_dir), "--overwrite"]
    )
    evaluate = runner.invoke(
        app,
        ["evaluate", "--pairs", str(pairs), "--model", str(tiny_model_dir),
         "-o", str(pairs), "--overwrite"],
    )  # fmt: skip
    for result in (export, evaluate):
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    # The model folder holds files export does not write; the report would replace an input.
    assert str(tiny_model_dir) in export.output and "does not write" in export.output
    assert str(pairs) in evaluate.output and "input" in evaluate.output
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [content.name, style.name, pairs.name, tiny_model_dir.name]
    )
