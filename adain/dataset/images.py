"""Source images on their way in (decoded and resized in DataLoader workers) and out (encoded to
the bytes of an image file, in the main process's writer threads)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from adain.checks import MIN_SIDE
from adain.dataset.plan import DatasetConfig, Entry
from adain.dataset.sources import ItemReader
from adain.image import ImageError, limit_size, resize_shorter, save_format

_PNG = b"\x89PNG\r\n\x1a\n"


class DecodedImages(Dataset):
    """Source images decoded and resized in DataLoader workers."""

    def __init__(self, entries: Sequence[Entry], config: DatasetConfig):
        self.entries = list(entries)
        self.reader = ItemReader(config.image_column, config.max_pixels)
        self.size, self.max_size = config.content_size, config.max_size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[int, Tensor | str, str]:
        """``(index, (3, H, W) uint8 image or the error, format to write)``."""
        item = self.entries[index].item
        try:
            if item.group < 0:
                kind = save_format(item.path)
            else:
                kind = "PNG" if self.reader.image_bytes(item).startswith(_PNG) else "JPEG"
            image = resize_shorter(self.reader.load(item), self.size, self.reader.max_pixels)
            image = limit_size(image, self.max_size)
            if min(image.size) < MIN_SIDE:
                raise ImageError(f"{item.describe()}: {image.size} px is below {MIN_SIDE} px")
        except ImageError as error:
            return index, " ".join(str(error).split()), ""
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        return index, pixels.view(image.size[1], image.size[0], 3).permute(2, 0, 1), kind


def as_list(batch: list[Any]) -> list[Any]:
    """The DataLoader's collate: images of different sizes stay a list."""
    return batch


def encode_image(image: Tensor, kind: str, quality: int) -> bytes:
    """A ``(3, H, W)`` uint8 image as the bytes of a ``kind`` file (PIL format name)."""
    buffer = io.BytesIO()
    options = {"quality": quality} if kind in ("JPEG", "WEBP") else {}
    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy(), mode="RGB").save(
        buffer, kind, **options
    )
    return buffer.getvalue()
