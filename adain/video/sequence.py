"""Image sequences as a source: a folder, a glob or a printf pattern of frame files."""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from adain.image import IMAGE_SUFFIXES, load_image
from adain.video.frame import Frame, Source

# Frame rate given to image sequences unless --fps says otherwise.
DEFAULT_FPS = 25
_PRINTF = re.compile(r"%0?(\d*)d")


def is_image_sequence(spec: str | Path) -> bool:
    """Whether ``spec`` names frames: a folder, a glob or a printf pattern (``f_%04d.png``)."""
    text = str(spec)
    return Path(text).is_dir() or any(c in text for c in "*?[") or bool(_PRINTF.search(text))


def _natural_key(path: Path) -> list[Any]:
    # frame2.png before frame10.png.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _numbered(pattern: str, number: int) -> Path:
    return Path(_PRINTF.sub(lambda m: f"{number:0{m.group(1) or 1}d}", pattern))


def sequence_files(spec: str | Path) -> list[Path]:
    """The frames an image-sequence spec names, in order (numbers compared as numbers)."""
    text = str(spec)
    if Path(text).is_dir():
        files = [
            p
            for p in Path(text).iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        ]
        return sorted(files, key=_natural_key)
    if _PRINTF.search(text):
        files = []
        first = next((n for n in (0, 1) if _numbered(text, n).is_file()), None)
        number = first
        while number is not None and _numbered(text, number).is_file():
            files.append(_numbered(text, number))
            number += 1
        return files
    return sorted((Path(p) for p in glob.glob(text) if Path(p).is_file()), key=_natural_key)


def open_images(
    spec: str | Path,
    size: int | None,
    max_size: int | None,
    max_pixels: int | None,
    fps: float | None,
) -> Source:
    files = sequence_files(spec)
    if not files:
        raise ValueError(f"{spec}: no image files found (a folder, a glob or frame_%04d.png)")
    rate = Fraction(fps if fps is not None else DEFAULT_FPS).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"--fps {fps}: give a positive frame rate")
    first = load_image(files[0], max_pixels, size=size, max_size=max_size)
    time_base = 1 / rate

    def frames() -> Iterator[Frame]:
        for index, path in enumerate(files):
            image = first if index == 0 else load_image(path, max_pixels, size=size)
            if image.size != first.size:  # a sequence keeps its first frame's size
                image = image.resize(first.size)
            yield Frame(index, np.array(image), index, time_base, 1)  # writable: torch wants it

    return Source(
        path=Path(str(spec)),
        width=first.width,
        height=first.height,
        time_base=time_base,
        rate=rate,
        frame_count=len(files),
        duration=len(files) / rate,
        _frames=frames(),
    )
