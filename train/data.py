"""Training images: recursive folders and parquet shards, resized, cropped, deterministic.

Every sample is a pure function of ``(seed, stream, global sample number)``: the epoch's
permutation and the crop offsets come from generators seeded with those numbers, so a resumed
run draws exactly the batches the uninterrupted run would have, whatever the worker count.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

# The readers live in adain (the wheel ships adain alone) and serve `adain stylize-dataset` too;
# list_items is re-exported for train.loop and the tests.
from adain.dataset.sources import Item, ItemReader, list_items  # noqa: F401
from adain.image import ImageError, resize_shorter, to_tensor


class ImageSource(Dataset):
    """Square crops from one list of images; index = global sample number (unbounded).

    Sample ``g`` is image ``perm_e[g % n]`` of epoch ``e = g // n``, resized so its shorter side
    is ``load_size`` (aspect kept) and cropped at a seeded random offset to ``crop_size``. An
    unreadable or too small image is skipped: the next image of the permutation is taken and the
    skipped one is reported with the sample.

    Args:
        items: from :func:`list_items`.
        load_size: shorter side after resizing, px.
        crop_size: side of the square crop, px.
        min_side: images whose shorter side is below this are skipped.
        seed: run seed; ``stream`` separates content (0) from style (1).
    """

    def __init__(
        self,
        items: Sequence[Item],
        load_size: int,
        crop_size: int,
        min_side: int = 32,
        seed: int = 0,
        stream: int = 0,
        column: str = "image",
    ):
        if not items:
            raise ValueError("no images to train on")
        self.items = list(items)
        self.load_size, self.crop_size, self.min_side = load_size, crop_size, min_side
        self.seed, self.stream, self.column = seed, stream, column
        self._perm: tuple[int, Tensor] | None = None
        self._reader = ItemReader(column)

    def __len__(self) -> int:
        return len(self.items)

    def _generator(self, *keys: int) -> torch.Generator:
        # Distinct streams of the same seed must not share numbers: mix the keys into one seed.
        value = self.seed
        for key in (self.stream, *keys):
            value = (value * 1_000_003 + key) % (2**63 - 1)
        return torch.Generator().manual_seed(value)

    def _permutation(self, epoch: int) -> Tensor:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(len(self.items), generator=self._generator(epoch)))
        return self._perm[1]

    def _load(self, item: Item) -> Image.Image:
        image = self._reader.load(item)
        if min(image.size) < self.min_side:
            raise ImageError(f"{item.describe()}: {image.size[0]}x{image.size[1]} px is too small")
        return image

    def __getitem__(self, sample: int) -> tuple[Tensor, list[str]]:
        """Crop ``(3, crop, crop)`` in [0, 1] for global sample ``sample``, and skipped images."""
        n = len(self.items)
        epoch, position = divmod(sample, n)
        perm = self._permutation(epoch)
        skipped: list[str] = []
        for offset in range(n):
            item = self.items[int(perm[(position + offset) % n])]
            try:
                image = resize_shorter(self._load(item), self.load_size)
                break
            except ImageError:
                skipped.append(item.describe())
        else:
            raise ValueError(
                f"none of the {n} images could be read or is at least {self.min_side} px: "
                f"first was {skipped[0]}"
            )
        width, height = image.size
        generator = self._generator(-1, sample)
        left = int(torch.randint(width - self.crop_size + 1, (1,), generator=generator))
        top = int(torch.randint(height - self.crop_size + 1, (1,), generator=generator))
        crop = image.crop((left, top, left + self.crop_size, top + self.crop_size))
        return to_tensor(crop)[0], skipped


class PairSource(Dataset):
    """``(content, style, skipped)`` for one global sample number."""

    def __init__(self, content: ImageSource, style: ImageSource):
        self.content, self.style = content, style

    def __len__(self) -> int:
        return max(len(self.content), len(self.style))

    def __getitem__(self, sample: int) -> tuple[Tensor, Tensor, list[str]]:
        content, skipped_c = self.content[sample]
        style, skipped_s = self.style[sample]
        return content, style, skipped_c + skipped_s


class StepSampler(Sampler[list[int]]):
    """Batches of global sample numbers, from ``start_step`` on, for process ``rank`` of ``world``.

    Step ``s`` of process ``r`` takes samples ``(s * world + r) * batch + [0, batch)``, so every
    process sees different images and the stream does not depend on where a run was resumed.
    """

    def __init__(self, batch_size: int, start_step: int = 0, rank: int = 0, world: int = 1):
        self.batch_size, self.start_step, self.rank, self.world = (
            batch_size,
            start_step,
            rank,
            world,
        )

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            first = (step * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            step += 1


def _collate(batch: list[tuple[Tensor, Tensor, list[str]]]) -> tuple[Tensor, Tensor, list[str]]:
    content = torch.stack([b[0] for b in batch])
    style = torch.stack([b[1] for b in batch])
    return content, style, [name for b in batch for name in b[2]]


def make_loader(
    pairs: PairSource,
    batch_size: int,
    start_step: int = 0,
    num_workers: int = 0,
    rank: int = 0,
    world: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """An endless loader of ``(content (B,3,S,S), style (B,3,S,S), skipped names)`` batches."""
    return DataLoader(
        pairs,
        batch_sampler=StepSampler(batch_size, start_step, rank, world),
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
    )
