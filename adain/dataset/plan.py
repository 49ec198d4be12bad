"""The work of a dataset run: every output's name, style and alpha, grouped into units, and the
checks made before anything is written.

A unit is what a process finishes at once: a block of ``batch_size`` image files (each output
written as soon as it is made) or one parquet row group (one output shard). Units are dealt to
ranks round-robin, so the shards are disjoint and depend only on ``(rank, world size)``; blocks
are fixed by the sorted source, so each image is batched with the same neighbours whatever the
number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adain.dataset.assign import AlphaRange, assign
from adain.dataset.sources import PARQUET_SUFFIX, Item, list_source
from adain.efdm import check_transfer
from adain.image import DEFAULT_MAX_PIXELS, save_format

# bethgelab/stylize-datasets (the Stylized-ImageNet tool) resizes styles to a 512 px shorter side.
DEFAULT_STYLE_SIZE = 512


@dataclass(frozen=True)
class DatasetConfig:
    """Everything ``adain stylize-dataset`` needs; names match the CLI's options."""

    source: str  # a folder tree, a parquet shard or folder of shards, or hf://datasets/ORG/NAME
    styles: Sequence[str]  # style folders, files, presets (.safetensors) or Hub datasets
    output: Path
    alpha: str = "1"  # a value, or LOW:HIGH drawn per output
    styles_per_image: int = 1  # outputs per source image, each with its own style
    seed: int = 0
    content_size: int | None = None  # shorter side of the outputs in px; None keeps the size
    max_size: int | None = None  # cap on the longer side of the outputs
    style_size: int | None = DEFAULT_STYLE_SIZE  # shorter side of styles before encoding
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    image_column: str = "image"  # the parquet column holding the images
    batch_size: int = 16  # images per model call (and per unit of files)
    workers: int = 2  # DataLoader processes decoding images (0: in the main process)
    model: str | None = None
    revision: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    quality: int = 95  # JPEG/WebP quality of the outputs
    transfer: str = "adain"  # "adain" (mean and std) or "efdm" (whole distribution)
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.styles_per_image < 1:
            raise ValueError(f"--styles-per-image must be >= 1, got {self.styles_per_image}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality must be between 1 and 100, got {self.quality}")
        AlphaRange.parse(self.alpha)
        check_transfer(self.transfer)


@dataclass(frozen=True)
class Output:
    """One stylised image of an entry: slot ``k`` of ``styles_per_image``."""

    k: int
    style: int  # index into the sorted style set
    alpha: float
    name: str  # relative path of the file; for parquet, of the shard holding the row


@dataclass(frozen=True)
class Entry:
    """One source image: its relative key (path, or ``shard#row``) and its outputs."""

    key: str
    item: Item
    outputs: tuple[Output, ...]


@dataclass
class Unit:
    """Images finished together: a block of files, or one parquet row group (``part``)."""

    entries: list[Entry] = field(default_factory=list)
    part: str | None = None  # relative name of the output shard of a row group
    shard: Path | None = None
    group: int = -1


def _file_names(relative: str, count: int) -> list[str]:
    if count == 1:
        return [relative]
    path = Path(relative)
    return [str(path.with_name(f"{path.stem}_style{k}{path.suffix}")) for k in range(count)]


def _part_name(relative: str, group: int, groups: int) -> str:
    # One output shard per row group, so a killed run loses one group at most.
    if groups == 1:
        return relative
    path = Path(relative)
    return str(path.with_name(f"{path.stem}-{group:05d}{PARQUET_SUFFIX}"))


def check_overlap(output: Path, inputs: Sequence[tuple[str, Path]]) -> None:
    """Refuse an output folder inside an input, holding one, or a file.

    Raises:
        ValueError: one line naming the folders and what to do.
    """
    target = output.expanduser().resolve()
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output} is a file: -o takes a folder")
    for what, path in inputs:
        source = path.expanduser().resolve()
        if target == source or source in target.parents:
            raise ValueError(
                f"-o {output} is inside the {what} {path}: write the stylised dataset elsewhere"
            )
        if target in source.parents:
            raise ValueError(f"-o {output} holds the {what} {path}: choose another -o")


def plan_units(config: DatasetConfig, num_styles: int) -> tuple[Path, list[Unit]]:
    """The source's root and its units, every output named and assigned.

    Raises:
        ValueError: an empty or missing source, an image format that cannot be written.
    """
    root, items = list_source(config.source, config.image_column)
    alpha = AlphaRange.parse(config.alpha)
    count = config.styles_per_image
    units: list[Unit] = []
    rows_seen: dict[Path, int] = {}
    groups_of: dict[Path, int] = {}  # row groups per shard
    for item in items:
        if item.group >= 0:
            groups_of[item.path] = max(groups_of.get(item.path, 0), item.group + 1)
    for item in items:
        relative = str(item.path.relative_to(root).as_posix())
        if item.group < 0:
            save_format(item.path)  # an extension PIL cannot write fails here, not mid-run
            key, names = relative, _file_names(relative, count)
            if (
                not units
                or units[-1].part is not None
                or len(units[-1].entries) >= config.batch_size
            ):
                units.append(Unit())
        else:
            row = rows_seen.get(item.path, 0)
            rows_seen[item.path] = row + 1
            key = f"{relative}#{row}"
            part = _part_name(relative, item.group, groups_of[item.path])
            names = [part] * count
            if not units or units[-1].part != part:
                units.append(Unit(part=part, shard=item.path, group=item.group))
        draws = assign(config.seed, key, num_styles, alpha, count)
        outputs = tuple(
            Output(k, style, value, name)
            for k, ((style, value), name) in enumerate(zip(draws, names, strict=True))
        )
        units[-1].entries.append(Entry(key, item, outputs))
    return root, units


def shard_units(units: Sequence[Unit], rank: int, world: int) -> list[Unit]:
    """Rank ``rank``'s units of ``world``: every ``world``-th, from ``rank``."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside 0..{world - 1} (RANK, WORLD_SIZE)")
    return [unit for i, unit in enumerate(units) if i % world == rank]
