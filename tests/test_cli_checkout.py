"""`adain train` / `adain push` from a checkout, and a clear message from an installed wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _run(args: list[str], pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(pythonpath)}
    entry = "import sys; from adain.cli import main; sys.argv[0] = 'adain'; main()"
    return subprocess.run(
        [sys.executable, "-c", entry, *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )  # fmt: skip


def test_checkout_commands_are_mounted_from_any_folder(tmp_path):
    result = _run(["--help"], pythonpath=ROOT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("train", "push", "publish-original", "gatys", "compare"):
        assert f" {command} " in result.stdout


def test_wheel_without_train_says_what_to_do(tmp_path):
    # The wheel ships adain/ alone: copy just the package somewhere else.
    shutil.copytree(ROOT / "adain", tmp_path / "site" / "adain",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    result = _run(["train"], pythonpath=tmp_path / "site", cwd=tmp_path)
    assert result.returncode == 1
    assert "needs a checkout of the adain repository" in result.stderr
    assert "Traceback" not in result.stderr
