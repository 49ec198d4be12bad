"""Which style and alpha each output gets: a pure function of ``(seed, relative path, k)``.

Hashing the key (rather than drawing from a generator in order) makes an image's draw
independent of every other image: the dataset is the same whatever the number of processes or
workers, the order they run in, or how often the run was stopped and resumed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

# Changing how draws are made changes every dataset: bump this with it (recorded in manifests).
SCHEME = "adain-dataset/1"


@dataclass(frozen=True)
class AlphaRange:
    """Alpha drawn uniformly from ``[low, high]``; ``low == high`` is a fixed alpha."""

    low: float
    high: float

    def __post_init__(self) -> None:
        values = (self.low, self.high)
        if not all(math.isfinite(v) and v >= 0 for v in values) or self.low > self.high:
            raise ValueError(
                f"--alpha must be a value >= 0 or a range LOW:HIGH with 0 <= LOW <= HIGH, "
                f"got {self.low}:{self.high}"
            )

    @classmethod
    def parse(cls, text: str | float) -> AlphaRange:
        """``"0.8"`` -> fixed 0.8; ``"0.5:1"`` -> uniform in [0.5, 1].

        Raises:
            ValueError: one line naming ``--alpha``.
        """
        parts = str(text).split(":")
        try:
            values = [float(part) for part in parts]
        except ValueError:
            values = []
        if len(values) not in (1, 2):
            raise ValueError(f"--alpha must be a number or a range LOW:HIGH, got {text!r}")
        return cls(values[0], values[-1])

    def __str__(self) -> str:
        return f"{self.low:g}" if self.low == self.high else f"{self.low:g}:{self.high:g}"


def _draw(seed: int, key: str, k: int, attempt: int) -> tuple[int, float]:
    """Two independent uniform numbers for ``(seed, key, k, attempt)``: an int and a [0, 1)."""
    digest = hashlib.sha256(f"{SCHEME}\0{seed}\0{key}\0{k}\0{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:16], "big") / 2.0**64


def assign(
    seed: int, key: str, num_styles: int, alpha: AlphaRange, styles_per_image: int = 1
) -> list[tuple[int, float]]:
    """``(style index, alpha)`` for each of the ``styles_per_image`` outputs of image ``key``.

    Styles are uniform over ``range(num_styles)``; the outputs of one image get distinct styles
    when there are enough of them. Alphas are uniform in the range.
    """
    if num_styles < 1:
        raise ValueError("no styles to draw from")
    draws: list[tuple[int, float]] = []
    used: set[int] = set()
    for k in range(styles_per_image):
        attempt = 0
        while True:
            number, fraction = _draw(seed, key, k, attempt)
            index = number % num_styles
            if index not in used or len(used) >= num_styles:
                break
            attempt += 1
        used.add(index)
        value = alpha.low + (alpha.high - alpha.low) * fraction
        draws.append((index, value))
    return draws
