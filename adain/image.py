"""Image files and conversions: the only module that touches PIL and image files."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from adain.outputs import write_atomically

# 8192 x 8192: the largest image the tiled path is meant for. Larger needs an explicit max_pixels.
DEFAULT_MAX_PIXELS = 8192 * 8192
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# Composited under transparent pixels: white, like a page or a browser background.
_BACKGROUND = (255, 255, 255)
# Key of PIL's image.info under which load_image records the file it read.
_SOURCE = "adain.source"


class ImageError(ValueError):
    """An image that cannot be read or written, with a message that says what to do."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: alpha composited on white, 16-bit rescaled, CMYK converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # PIL's convert("RGB") clips 16-bit values at 255 instead of rescaling them.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


@contextmanager
def _open_checked(path: str | Path, max_pixels: int | None) -> Iterator[Image.Image]:
    """Open ``path`` lazily (header only), refusing missing, non-image and oversized files.

    Errors raised while the caller decodes inside the ``with`` block become :class:`ImageError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels is the limit asked for; PIL's warning would only duplicate it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # PIL warns, then goes on, about damaged metadata (e.g. "Corrupt EXIF data"): the
            # pixels are read, or their error is the one line below.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            with Image.open(path) as opened:
                width, height = opened.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageError(
                        f"{path}: {width}x{height} px is over the limit of {max_pixels:,} pixels; "
                        "resize it first or raise max_pixels (--max-pixels)"
                    )
                yield opened
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(f"{path}: not an image file PIL can read") from error
    except Image.DecompressionBombError as error:
        raise ImageError(f"{path}: too many pixels for PIL's safety limit ({error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{path}: unreadable or truncated image ({error})") from error
    except MemoryError as error:  # e.g. a damaged chunk length that PIL tries to read whole
        raise ImageError(
            f"{path}: out of memory while decoding: a damaged file, or too large for this "
            "machine (lower --max-pixels)"
        ) from error


def load_image(
    path: str | Path,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    size: int | None = None,
    max_size: int | None = None,
) -> Image.Image:
    """Open an image file as an upright 8-bit RGB PIL image, optionally resized.

    EXIF orientation is applied; RGBA, LA and transparent palettes are composited on white;
    greyscale, palette, CMYK and 16-bit images are converted to RGB. The image's ``info``
    records the file (:func:`source_of`), so later errors can name it.

    Args:
        path: image file.
        max_pixels: refuse larger images before decoding them (a decompression-bomb guard), and
            resizes to more pixels (checked from the header, before decoding); ``None`` leaves
            only PIL's own limit.
        size, max_size: as :func:`resize_shorter` then :func:`limit_size`.

    Raises:
        ImageError: missing, unreadable, truncated, non-image or too large files, or a resize
            over ``max_pixels``.
    """
    with _open_checked(path, max_pixels) as opened:
        _check_pixels(opened.size, resized_size(*opened.size, size, max_size), max_pixels, path)
        opened.load()
        image = _to_rgb(ImageOps.exif_transpose(opened))
    image.info[_SOURCE] = str(path)
    return limit_size(resize_shorter(image, size, max_pixels), max_size)


def source_of(image: Image.Image) -> str | None:
    """The file :func:`load_image` read ``image`` from (kept through resizes), else ``None``."""
    source = image.info.get(_SOURCE)
    return source if isinstance(source, str) else None


def _shorter_side(width: int, height: int, size: int) -> tuple[int, int]:
    scale = size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _longer_side(width: int, height: int, size: int) -> tuple[int, int]:
    # The longer side is set, not computed: round(w * size / w) could land one px off.
    other = max(1, round(min(width, height) * size / max(width, height)))
    return (size, other) if width >= height else (other, size)


def resized_size(
    width: int, height: int, size: int | None = None, max_size: int | None = None
) -> tuple[int, int]:
    """``(width, height)`` after :func:`resize_shorter` to ``size`` then :func:`limit_size` to
    ``max_size``, computed without any pixels (e.g. from a file header)."""
    if size:
        width, height = _shorter_side(width, height, size)
    if max_size and max(width, height) > max_size:
        width, height = _longer_side(width, height, max_size)
    return width, height


def _check_pixels(
    before: tuple[int, int],
    after: tuple[int, int],
    max_pixels: int | None,
    source: str | Path | None,
) -> None:
    """Refuse a resize to more than ``max_pixels`` before it allocates anything."""
    if max_pixels is None or after[0] * after[1] <= max(max_pixels, before[0] * before[1]):
        return
    where = f"{source}: " if source else ""
    raise ImageError(
        f"{where}resizing {before[0]}x{before[1]} px to {after[0]}x{after[1]} px is over the "
        f"limit of {max_pixels:,} pixels; choose a smaller size (--content-size, --style-size, "
        "--max-size) or raise max_pixels (--max-pixels)"
    )


def resize_shorter(
    image: Image.Image, size: int | None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Resize so the shorter side is ``size`` px, keeping the aspect ratio (``None``/0 keeps).

    Raises:
        ImageError: the result would have more than ``max_pixels`` pixels (``None``: no cap).
    """
    if not size:
        return image
    new_size = _shorter_side(*image.size, size)
    if new_size == image.size:
        return image
    _check_pixels(image.size, new_size, max_pixels, source_of(image))
    return image.resize(new_size, Image.Resampling.LANCZOS)


def resize_longer(
    image: Image.Image,
    size: int | None,
    upscale: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Resize so the longer side is exactly ``size`` px, the other rounded to keep the aspect.

    Images whose longer side is already at most ``size`` are kept unless ``upscale``
    (``None``/0 keeps every image).

    Raises:
        ImageError: the result would have more than ``max_pixels`` pixels (``None``: no cap).
    """
    width, height = image.size
    longer = max(width, height)
    if not size or longer == size or (longer < size and not upscale):
        return image
    new_size = _longer_side(width, height, size)
    _check_pixels(image.size, new_size, max_pixels, source_of(image))
    return image.resize(new_size, Image.Resampling.LANCZOS)


def limit_size(image: Image.Image, max_size: int | None) -> Image.Image:
    """Shrink so the longer side is at most ``max_size`` px, exactly ``max_size`` when it was
    larger (``None``/0 keeps); never enlarges."""
    return resize_longer(image, max_size, upscale=False)


def to_tensor(image: Image.Image) -> Tensor:
    """RGB PIL image -> ``(1, 3, H, W)`` float32 tensor in [0, 1]."""
    array = np.asarray(_to_rgb(image) if image.mode != "RGB" else image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_pil(tensor: Tensor) -> Image.Image:
    """``(3, H, W)`` or ``(1, 3, H, W)`` tensor -> RGB PIL image (clamped to [0, 1], rounded)."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"to_pil takes one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"to_pil needs (3, H, W), got {tuple(tensor.shape)}")
    array = tensor.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
    return Image.fromarray(array.cpu().numpy(), mode="RGB")


def _save_format(path: Path) -> str:
    extension = path.suffix.lower()
    formats = Image.registered_extensions()
    if extension not in formats:
        raise ImageError(
            f"{path}: unknown image extension {extension or '(none)'}; use .png, .jpg or .webp"
        )
    return formats[extension]


def save_image(image: Image.Image | Tensor, path: str | Path, quality: int | None = None) -> Path:
    """Save atomically: write a temporary file beside ``path``, then rename over it.

    The format comes from the extension; ``quality`` (1-100) applies to JPEG and WebP. The file
    gets the user's umask (:func:`adain.outputs.write_atomically`); callers check the path
    first (:func:`adain.outputs.check_output`: inputs, ``--overwrite``).
    """
    path = Path(path)
    if isinstance(image, Tensor):
        image = to_pil(image)
    image_format = _save_format(path)
    if quality is not None and not 1 <= quality <= 100:
        raise ImageError(f"quality must be between 1 and 100, got {quality}")
    options: dict[str, object] = {}
    if quality is not None and image_format in ("JPEG", "WEBP"):
        options["quality"] = quality
    pil_image = image
    return write_atomically(path, lambda handle: pil_image.save(handle, image_format, **options))


def load_mask(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Tensor:
    """A mask image -> ``(1, 1, H, W)`` float32 weights in [0, 1] (its luma; grey = soft)."""
    image = load_image(path, max_pixels=max_pixels)
    return to_tensor(image.convert("L").convert("RGB"))[:, :1]


def read_size(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` from the file header, with :func:`load_image`'s checks, decoding nothing.

    Lets a batch refuse a missing, non-image or oversized file before it writes any output.
    Truncated pixel data is only found by :func:`load_image`.
    """
    with _open_checked(path, max_pixels) as opened:
        return opened.size


def save_format(path: str | Path) -> str:
    """The PIL format :func:`save_image` would write for ``path`` (from its extension)."""
    return _save_format(Path(path))
