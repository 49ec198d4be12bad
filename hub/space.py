"""The web demo as a Hugging Face Space: ``hub/space/`` rendered, the package copied, one commit.

The Space runs ``hub/space/app.py`` (``adain demo``'s Gradio app) with the model pinned to a
commit, a copy of this checkout's ``adain`` package, the example images, and requirements
pinned to the versions installed here. ``build_space`` writes the folder; ``publish_space``
builds it and commits it to the Space (created if new).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).with_name("space")
CHECKOUT = Path(__file__).resolve().parents[1]
# The runtime dependencies of adain (pyproject's [project] dependencies), pinned as installed.
REQUIREMENTS = (
    "torch", "torchvision", "huggingface_hub", "safetensors", "pillow", "numpy", "typer", "rich",
)  # fmt: skip
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class SpaceResult:
    """What was built or published: the Space, the pinned model and the commit (if pushed)."""

    repo_id: str
    model: str
    revision: str
    folder: str
    commit: str = ""
    url: str = ""


def pinned_model(model: str | None, revision: str | None) -> tuple[str, str]:
    """The model repository and the 40-hex commit the Space loads.

    ``None`` takes the published default of ``hub/manifest.toml``. A branch or tag is resolved
    to its commit on the Hub, so the Space never changes when the model repository does.
    """
    if model is None:
        from hub.push import read_manifest

        default = read_manifest()["default"]
        model, revision = default["repo_id"], revision or default["revision"] or None
        if revision is None:
            raise ValueError(
                f"the default model {model} has no pinned revision yet (hub/manifest.toml): "
                "pass --model ORG/NAME --revision COMMIT"
            )
    if Path(model).expanduser().exists():
        raise ValueError(f"--model {model}: a Space loads a Hub repository, not a local folder")
    if revision is not None and _COMMIT.match(revision):
        return model, revision
    from huggingface_hub import HfApi

    from adain.weights.hub import hub_unreachable

    if (reason := hub_unreachable()) is not None:
        raise OSError(f"cannot resolve {model}@{revision or 'main'}: {reason}; pass a commit")
    repo_type = "space" if model.startswith("spaces/") else "model"
    repo_id = model.removeprefix("spaces/").removeprefix("models/")
    info = HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision)
    assert info.sha is not None
    return model, info.sha


def requirements() -> str:
    """``name==version`` lines for adain's runtime dependencies, as installed here."""
    return "\n".join(f"{name}=={metadata.version(name)}" for name in REQUIREMENTS)


def _render(name: str, fields: dict[str, str]) -> str:
    return Template((TEMPLATES / name).read_text(encoding="utf-8")).substitute(fields)


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _fill(folder: Path, model: str, revision: str) -> None:
    import gradio

    import adain
    from hub.push import git_commit

    fields = {
        "model": model,
        "revision": revision,
        "requirements": requirements(),
        "gradio_version": gradio.__version__,
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "adain_version": adain.__version__,
        "git_commit": git_commit(),
    }
    for name in ("app.py", "requirements.txt", "README.md"):
        (folder / name).write_text(_render(name, fields), encoding="utf-8")
    _copy_tree(Path(adain.__file__).parent, folder / "adain")
    for kind in ("content", "style"):
        source = CHECKOUT / "examples" / kind
        if source.is_dir():
            _copy_tree(source, folder / "examples" / kind)


def build_space(folder: Path, model: str, revision: str) -> Path:
    """Write the Space into ``folder`` (new, or empty): all or nothing, through a sibling."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"{folder} already exists and is not empty: choose a new -o folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _fill(staging, model, revision)
        if folder.exists():
            folder.rmdir()  # checked empty above
        os.rename(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return folder


def publish_space(
    repo_id: str,
    *,
    model: str | None = None,
    revision: str | None = None,
    private: bool = False,
    output: Path | None = None,
    dry_run: bool = False,
    token: str | None = None,
) -> SpaceResult:
    """Build the Space (into ``output`` if given) and, unless ``dry_run``, commit it."""
    model, revision = pinned_model(model, revision)
    with tempfile.TemporaryDirectory(prefix="adain-space-") as tmp:
        folder = build_space(Path(output) if output else Path(tmp) / "space", model, revision)
        if dry_run:
            return SpaceResult(repo_id, model, revision, str(folder))
        from huggingface_hub import HfApi, constants

        from adain.weights.hub import hub_unreachable

        if (reason := hub_unreachable()) is not None:
            raise OSError(f"cannot push to {repo_id}: the Hub cannot be reached ({reason})")
        api = HfApi(token=token)
        api.create_repo(
            repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True
        )
        info = api.upload_folder(
            folder_path=folder,
            repo_id=repo_id,
            repo_type="space",
            commit_message=f"adain demo, model {model}@{revision[:12]}",
        )
        url = f"{constants.ENDPOINT}/spaces/{repo_id}"
        return SpaceResult(repo_id, model, revision, str(folder), info.oid, url)
