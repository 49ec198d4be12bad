"""Model folders as ``save_pretrained`` writes them: ``model.safetensors``, ``config.json`` and
``README.md``, always written whole.

:func:`write_folder` fills a temporary sibling folder and renames it into place, so a crash
part-way leaves either the old folder or the new one, never a mix; ``overwrite`` replaces only a
folder holding nothing but these files, never an input (:mod:`adain.outputs`).
:func:`save_state_dir` writes such a folder from a state dict and the model's config, without
building a model; :func:`sha256_file` hashes the files that go in and out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adain import outputs
from adain.architecture import DEPTHS

if TYPE_CHECKING:
    from torch import Tensor

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
# What a model folder holds: all --overwrite may replace (adain.outputs.write_folder).
MODEL_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_folder(
    path: str | Path,
    fill: Callable[[Path], None],
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    names: Iterable[str] = MODEL_FILES,
) -> Path:
    """Call ``fill(staging)`` on a new temporary sibling of ``path``, then swap it into place.

    Args:
        path: destination folder; an existing non-empty one needs ``overwrite``.
        fill: writes the folder's files into the (empty, existing) staging folder it is given.
        overwrite: replace an existing folder, only if it holds nothing but ``names``.
        inputs: files the command reads: never the folder, never inside it.
        names: the files ``fill`` writes (default: a model folder's three).

    Raises:
        ValueError: ``path`` exists, is not empty, and ``overwrite`` is false; or it is (or
            holds) an input, or holds a file the command does not write (see
            :func:`adain.outputs.write_folder`).
    """
    return outputs.write_folder(path, fill, names, inputs=inputs, overwrite=overwrite)


def save_state_dir(
    state: Mapping[str, Tensor],
    config: Mapping[str, Any],
    path: str | Path,
    model_card: str,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Write the folder ``save_pretrained`` would write for a model with these weights.

    Args:
        state: the model's full state dict (``{"encoder.conv1_1.weight": ...}``).
        config: the model's ``__init__`` kwargs, written as ``config.json`` the way the Hub
            mixin writes it (sorted keys, indent 2).
        path: destination folder, replaced atomically (see :func:`write_folder`).
        model_card: the ``README.md`` text.
        overwrite: replace an existing folder (one holding only these files).
        inputs: files read to make it: never the folder, never inside it.
    """
    from safetensors.torch import save_file

    def fill(staging: Path) -> None:
        # metadata as safetensors' save_model (what the mixin's save_pretrained calls) writes it.
        tensors = {key: value.contiguous() for key, value in state.items()}
        save_file(tensors, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        outputs.apply_umask(staging / WEIGHTS_NAME)  # save_file makes it 0600 (see AdaIN's saver)
        (staging / CONFIG_NAME).write_text(json.dumps(dict(config), sort_keys=True, indent=2))
        (staging / CARD_NAME).write_text(model_card, encoding="utf-8")

    return write_folder(path, fill, overwrite=overwrite, inputs=inputs)


def check_config(path: Path) -> None:
    """Refuse a ``config.json`` the model cannot be built from, in one line naming the file:
    unreadable, not an object, unknown keys, wrong types or out-of-range values."""
    if not path.is_file():
        return  # the mixin then builds the default architecture, and the weights must match it
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path}: must hold a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(_CONFIG_CHECKS))
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r}; known: {', '.join(_CONFIG_CHECKS)}")
    for key, value in config.items():
        check, wanted = _CONFIG_CHECKS[key]
        if not check(value):
            raise ValueError(f"{path}: {key} must be {wanted}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# config.json keys (AdaIN.__init__'s kwargs) -> (check, what the message asks for). Widths above
# VGG's 64 are refused before a model of that size is built.
_CONFIG_CHECKS: dict[str, tuple[Any, str]] = {
    "encoder_depth": (lambda v: v in DEPTHS, f"one of {', '.join(DEPTHS)}"),
    "base_channels": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64,
        "an integer from 1 to 64",
    ),
    "eps": (lambda v: _is_number(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
}
