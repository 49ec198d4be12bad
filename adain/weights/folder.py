"""Model folders as ``save_pretrained`` writes them: ``model.safetensors``, ``config.json`` and
``README.md``, always written whole.

:func:`write_folder` fills a temporary sibling folder and renames it into place, so a crash
part-way leaves either the old folder or the new one, never a mix. :func:`save_state_dir` writes
such a folder from a state dict and the model's config, without building a model;
:func:`sha256_file` hashes the files that go in and out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_folder(path: str | Path, fill: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``fill(staging)`` on a temporary sibling of ``path``, then rename it to ``path``.

    Args:
        path: destination folder; an existing non-empty one needs ``overwrite``.
        fill: writes the folder's files into the (empty, existing) staging folder it is given.
        overwrite: replace an existing folder.

    Raises:
        ValueError: ``path`` exists, is not empty, and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise ValueError(f"{path} already exists: choose another folder or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = None
    try:
        fill(staging)
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


def save_state_dir(
    state: Mapping[str, Tensor],
    config: Mapping[str, Any],
    path: str | Path,
    model_card: str,
    overwrite: bool = False,
) -> Path:
    """Write the folder ``save_pretrained`` would write for a model with these weights.

    Args:
        state: the model's full state dict (``{"encoder.conv1_1.weight": ...}``).
        config: the model's ``__init__`` kwargs, written as ``config.json`` the way the Hub
            mixin writes it (sorted keys, indent 2).
        path: destination folder, replaced atomically (see :func:`write_folder`).
        model_card: the ``README.md`` text.
        overwrite: replace an existing folder.
    """
    from safetensors.torch import save_file

    def fill(staging: Path) -> None:
        # metadata as safetensors' save_model (what the mixin's save_pretrained calls) writes it.
        tensors = {key: value.contiguous() for key, value in state.items()}
        save_file(tensors, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        (staging / CONFIG_NAME).write_text(json.dumps(dict(config), sort_keys=True, indent=2))
        (staging / CARD_NAME).write_text(model_card, encoding="utf-8")

    return write_folder(path, fill, overwrite=overwrite)
