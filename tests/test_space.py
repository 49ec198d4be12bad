"""``python -m hub space``: the web demo as a Hugging Face Space, pinned to a model commit.

Network paths run against the loopback stand-in Hub (tests/hub_server.py); nothing is pushed.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

gradio = pytest.importorskip("gradio")

from hub.cli import app  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def front_matter(readme: str) -> dict[str, str]:
    """The ``key: value`` lines of a README's front matter (lists kept as their first item)."""
    head = readme.split("---\n")[1]
    fields: dict[str, str] = {}
    key = ""
    for line in head.splitlines():
        if line.startswith("  - ") and key:
            fields.setdefault(key, line[4:])
        elif ":" in line:
            key, _, value = line.partition(":")
            if value.strip():
                fields[key] = value.strip().strip('"')
    return fields


def test_dry_run_builds_a_space_pinned_to_the_commit(tmp_path):
    out = tmp_path / "space"
    result = CliRunner().invoke(
        app,
        ["space", "--repo-id", "org/demo", "--model", "org/model", "--revision", COMMIT,
         "--dry-run", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"model org/model@{COMMIT}" in result.output and "not pushed" in result.output
    app_file = (out / "app.py").read_text()
    assert 'MODEL = "org/model"' in app_file and f'REVISION = "{COMMIT}"' in app_file
    compile(app_file, "app.py", "exec")  # valid Python after rendering
    fields = front_matter((out / "README.md").read_text())
    assert fields["sdk"] == "gradio" and fields["sdk_version"] == gradio.__version__
    assert fields["app_file"] == "app.py" and fields["models"] == "org/model"
    lines = (out / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert pins["torch"] == metadata.version("torch")
    assert set(pins) >= {"torch", "torchvision", "huggingface_hub", "safetensors", "pillow"}
    assert (out / "adain" / "serve" / "demo.py").is_file()  # the package travels with the app
    assert not list(out.rglob("__pycache__"))
    assert (out / "examples" / "style" / "waves.jpg").is_file()
    assert "$" not in (out / "README.md").read_text() + app_file.split('"""', 2)[2]


def test_refuses_unpinned_default_and_existing_folder(tmp_path):
    runner = CliRunner()
    unpinned = runner.invoke(app, ["space", "--repo-id", "org/demo", "--dry-run", "-o", "x"])
    assert unpinned.exit_code == 1
    assert "no pinned revision" in unpinned.output and "--revision COMMIT" in unpinned.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    taken = runner.invoke(
        app,
        ["space", "--repo-id", "org/demo", "--model", "org/m", "--revision", COMMIT,
         "--dry-run", "-o", str(tmp_path / "full")],
    )  # fmt: skip
    assert taken.exit_code == 1 and "not empty" in taken.output
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"


def test_push_pins_a_branch_to_its_commit(stand_in_hub, tiny_model_dir):
    files = {path.name: path.read_bytes() for path in tiny_model_dir.iterdir()}
    commit = stand_in_hub.commit("org/model", files)
    result = CliRunner().invoke(
        app, ["space", "--repo-id", "org/demo", "--model", "org/model", "--revision", "main"]
    )
    assert result.exit_code == 0, result.output
    repo = stand_in_hub.repos[("space", "org/demo")]
    pushed = repo.commits[repo.branches["main"]]
    assert f'REVISION = "{commit}"' in pushed["app.py"].decode()
    assert {"README.md", "requirements.txt", "adain/__init__.py"} <= set(pushed)
    assert f"pushed {stand_in_hub.url}/spaces/org/demo at {repo.branches['main']}" in result.output


@pytest.mark.slow
def test_built_space_app_starts_with_its_own_copy_of_adain(stand_in_hub, tiny_model_dir, tmp_path):
    """The rendered app.py, run from the Space folder, loads the pinned model from the Hub."""
    files = {path.name: path.read_bytes() for path in tiny_model_dir.iterdir()}
    commit = stand_in_hub.commit("org/model", files)
    out = tmp_path / "space"
    result = CliRunner().invoke(
        app,
        ["space", "--repo-id", "org/demo", "--model", "org/model", "--revision", commit,
         "--dry-run", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    check = (
        "import runpy, adain; ns = runpy.run_path('app.py'); "
        "print(adain.__file__); print(type(ns['demo']).__name__, ns['stylist'].model_name)"
    )
    run = subprocess.run(
        [sys.executable, "-c", check], cwd=out, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    printed = run.stdout.strip().splitlines()
    assert Path(printed[-2]).resolve() == (out / "adain" / "__init__.py").resolve()
    assert printed[-1] == f"Blocks org/model@{commit}"
