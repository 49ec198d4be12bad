"""`adain train` / `adain push` from a checkout, and a clear message from an installed wheel.

train/ and hub/ are never on sys.path for the ``adain`` script: ``adain.cli`` finds them beside
adain/ when one of their commands runs, and importing ``adain.cli`` touches neither.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adain.cli import app

ROOT = Path(__file__).parent.parent


def _run(args: list[str], pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(pythonpath)}
    entry = "import sys; from adain.cli import main; sys.argv[0] = 'adain'; main()"
    return subprocess.run(
        [sys.executable, "-c", entry, *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )  # fmt: skip


def test_checkout_commands_are_listed_from_any_folder(tmp_path):
    result = _run(["--help"], pythonpath=ROOT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("stylize", "interpolate", "style-encode", "info", "convert", "gatys",
                    "compare", "train", "push", "publish-original"):  # fmt: skip
        assert f" {command} " in result.stdout


def test_import_leaves_sys_path_alone_and_loads_neither_train_nor_hub(tmp_path):
    code = (
        "import sys; before = list(sys.path); import adain.cli; "
        "assert sys.path == before, 'import adain.cli changed sys.path'; "
        "assert 'train' not in sys.modules and 'hub' not in sys.modules, 'train/hub imported'"
    )
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env, timeout=60)


def test_adain_script_runs_train_help_outside_the_checkout(tmp_path):
    # The installed script, from another folder: train/ is not on sys.path, only beside adain/.
    script = shutil.which("adain", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the adain script is not installed (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [script, "train", "--help"], capture_output=True, text=True, cwd=tmp_path, env=env,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Usage: adain train [OPTIONS]" in result.stdout
    assert "--resume" in result.stdout and "vgg_normalised" in result.stdout


def test_arguments_and_exit_codes_pass_through():
    before = list(sys.path)
    result = CliRunner().invoke(app, ["train", "--config", "missing-preset"])
    assert result.exit_code == 2
    assert "train [OPTIONS]" in result.output  # the usage line of train's own command
    assert "missing-preset is neither a file nor a preset" in result.output
    result = CliRunner().invoke(app, ["push", "model", "--repo-id", "no-slash"])
    assert result.exit_code == 2 and "expected ORG/NAME" in result.output
    result = CliRunner().invoke(app, ["publish-original", "--help"])
    assert result.exit_code == 0 and "--repo-id" in result.output
    assert sys.path == before
    assert Path(sys.modules["train"].__file__).parent == ROOT / "train"


def test_hub_commands_say_they_publish_and_show_their_help():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if len(line.split()) > 2}
    for command in ("push", "publish-original"):
        assert "Publish" in lines[command] and "to the Hub" in lines[command], lines[command]
        assert "(maintainers)" in lines[command]
    assert "Publishing to the Hugging Face Hub (maintainers" in result.stdout
    result = CliRunner().invoke(app, ["push", "--help"])
    assert result.exit_code == 0, result.output
    assert "push [OPTIONS]" in result.output and "--repo-id" in result.output


def test_wheel_without_train_says_what_to_do(tmp_path):
    # The wheel ships adain/ alone: copy just the package somewhere else.
    shutil.copytree(ROOT / "adain", tmp_path / "site" / "adain",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    result = _run(["--help"], pythonpath=tmp_path / "site", cwd=tmp_path)
    assert result.returncode == 0 and " train " in result.stdout  # listed, says what to do
    for args in (["train"], ["push", "--help"]):
        result = _run(args, pythonpath=tmp_path / "site", cwd=tmp_path)
        assert result.returncode == 1
        assert f"`adain {args[0]}` needs a checkout of the adain repository" in result.stderr
        assert "Traceback" not in result.stderr
