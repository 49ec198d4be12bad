"""Where the default model comes from, and the one resolution order every entry point uses."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adain.model import AdaIN

# Not published yet: see README "Where the weights come from".
DEFAULT_REPO_ID = "adain-project/adain-vgg19"
# Pinned once the repository is published, so a push to main never changes what users get.
DEFAULT_REVISION: str | None = None
MODEL_ENV = "ADAIN_MODEL"


def resolve_model_id(model: str | Path | None = None) -> str:
    """Explicit argument, then the ``ADAIN_MODEL`` environment variable, then the default."""
    if model is not None and str(model):
        return str(model)
    return os.environ.get(MODEL_ENV) or DEFAULT_REPO_ID


def load_model(
    model: str | Path | None = None,
    revision: str | None = None,
    device: str | None = None,
) -> AdaIN:
    """Load a model from a folder or a Hub repository id, resolved by :func:`resolve_model_id`."""
    from adain.model import AdaIN

    model_id = resolve_model_id(model)
    if revision is None and model_id == DEFAULT_REPO_ID:
        revision = DEFAULT_REVISION
    path = Path(model_id).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{model_id} is a file: --model takes a folder or a Hub repository id")
    loaded = AdaIN.from_pretrained(str(path) if path.is_dir() else model_id, revision=revision)
    return loaded.to(device) if device is not None else loaded


def save_model_dir(
    model: AdaIN, path: str | Path, overwrite: bool = False, model_card: str | None = None
) -> Path:
    """``save_pretrained`` into a temporary sibling folder, then rename it into place.

    A crash part-way leaves either the old folder or the new one, never a mix.

    Args:
        model: the model to write (model.safetensors, config.json, README.md).
        path: destination folder; an existing non-empty one needs ``overwrite``.
        overwrite: replace an existing folder.
        model_card: README.md text replacing the mixin's generated card.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise ValueError(f"{path} already exists: choose another folder or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = None
    try:
        model.save_pretrained(staging)
        if model_card is not None:
            (staging / "README.md").write_text(model_card, encoding="utf-8")
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
        staging.rename(path)
    except BaseException:
        if old is not None and not path.exists():
            old.rename(path)
        raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
        if old is not None and old.exists():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    return path
