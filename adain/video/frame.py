"""What a source yields and is: one upright RGB frame with its time stamp, and an opened input."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np


def require_av() -> Any:
    """Import PyAV, or fail in one line saying how to install it."""
    try:
        import av
    except ImportError:
        raise ValueError(
            'video needs PyAV (FFmpeg\'s libraries): pip install "adain[video]"'
        ) from None
    return av


@dataclass
class Frame:
    """One upright RGB frame and when it is shown.

    Attributes:
        index: position among the frames the source yields (0-based).
        image: ``(H, W, 3)`` uint8 RGB, already rotated as the file's metadata says.
        pts: presentation time stamp in ``time_base`` units (``None`` when the file has none).
        time_base: seconds per ``pts`` unit.
        duration: how long the frame shows, in ``time_base`` units (0 when unknown).
    """

    index: int
    image: np.ndarray
    pts: int | None
    time_base: Fraction
    duration: int = 0


@dataclass
class Source:
    """An opened input: its size after rotation and resizing, timing, and frames.

    ``frames()`` may be iterated once. ``skipped`` counts the frames dropped so far as
    unreadable (``skip_bad_frames``).
    """

    path: Path
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None
    frame_count: int | None
    duration: float | None
    copy_streams: list[Any] = field(default_factory=list)
    _skipped: list[int] = field(default_factory=lambda: [0])
    _frames: Iterator[Frame] | None = None
    _container: Any = None

    def frames(self) -> Iterator[Frame]:
        assert self._frames is not None, "frames() may be iterated once"
        frames, self._frames = self._frames, None
        return frames

    @property
    def skipped(self) -> int:
        return self._skipped[0]

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
