"""Input discovery: what the user typed (files, folders, glob patterns) -> the files to read.

Shared by batches (:mod:`adain.batch`), ``adain interpolate``, the evaluation harness and
training's validation set. Only names are looked at here: no image is opened.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from adain.image import IMAGE_SUFFIXES

PRESET_SUFFIX = ".safetensors"


def _is_hidden(path: Path) -> bool:
    # save_image's temporary files start with a dot: never take them (or .git etc.) as inputs.
    return any(part.startswith(".") and part not in (".", "..") for part in path.parts)


def expand_paths(items: Sequence[str | Path], what: str, presets: bool = False) -> list[Path]:
    """Files, folders (recursive) and glob patterns -> a sorted, duplicate-free list of files.

    Args:
        items: what the user typed; a path that exists is taken as it is, before any globbing.
        what: ``"content"``, ``"style"``..., used in the error messages.
        presets: also collect ``.safetensors`` style presets from folders and globs.

    Raises:
        ValueError: an item that matches nothing, or a folder without images.
    """
    suffixes = IMAGE_SUFFIXES + ((PRESET_SUFFIX,) if presets else ())
    kinds = ", ".join(suffixes)
    found: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in suffixes
                and not _is_hidden(p.relative_to(path))
            )
            if not matches:
                raise ValueError(f"{what} folder {item} has no files ending in {kinds}")
        elif glob.has_magic(str(item)):
            matches = sorted(
                Path(p)
                for p in glob.glob(str(path), recursive=True)
                if Path(p).is_file() and Path(p).suffix.lower() in suffixes
            )
            if not matches:
                raise ValueError(f"{what} pattern {item!r} matches no files ending in {kinds}")
        else:
            raise ValueError(f"{what} {item}: no such file or folder")
        found.extend(m for m in matches if m not in found)
    return found
