"""Regenerate the images this project made itself (CC0): the `waves` style and the masks.

Run from the repository root: `python examples/make_examples.py`. Needs only numpy and Pillow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent


def waves(size: int = 256) -> Image.Image:
    """Bands of saturated colour bent by two sine fields: a stand-in for a bold painting."""
    y, x = np.mgrid[0:size, 0:size] / size
    phase = 10 * y + 1.5 * np.sin(6 * x) + 0.8 * np.sin(13 * y + 4 * x)
    rgb = np.stack(
        [
            0.5 + 0.5 * np.sin(phase),
            0.5 + 0.5 * np.sin(phase + 2.1),
            0.5 + 0.5 * np.sin(phase + 4.2),
        ],
        axis=-1,
    )
    strokes = 0.15 * np.sin(80 * (x + 0.3 * y))[..., None]  # fine diagonal "brush" texture
    return Image.fromarray((np.clip(rgb + strokes, 0, 1) * 255).astype(np.uint8))


def halves(width: int, height: int) -> tuple[Image.Image, Image.Image]:
    """Left and right masks with a soft 32 px border between them."""
    ramp = np.clip((np.arange(width) - (width / 2 - 16)) / 32, 0, 1)
    right = np.broadcast_to(ramp, (height, width))
    to_image = lambda a: Image.fromarray((a * 255).round().astype(np.uint8), mode="L")  # noqa: E731
    return to_image(1 - right), to_image(right)


def main() -> None:
    waves().save(HERE / "style" / "waves.jpg", quality=90)
    with Image.open(HERE / "content" / "astronaut.jpg") as content:
        left, right = halves(*content.size)
    left.save(HERE / "masks" / "left.png")
    right.save(HERE / "masks" / "right.png")


if __name__ == "__main__":
    main()
