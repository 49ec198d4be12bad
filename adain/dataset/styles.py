"""The style set of a dataset run: listed in a fixed order, each style encoded once.

Styles are image folders, image files, ``.safetensors`` presets (``adain style-encode``) or Hub
datasets of parquet shards. A style's index in the sorted list is what :mod:`adain.dataset.assign`
draws, so the list (recorded in the run's settings) must not change between resumed runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from adain.dataset.sources import HUB_PREFIX, Item, ItemReader, list_source
from adain.efdm import Transfer, resample
from adain.engine.runner import EngineOptions
from adain.image import ImageError, resize_shorter, to_tensor
from adain.model import AdaIN
from adain.style import PRESET_QUANTILES, StyleStats, is_style_preset


@dataclass(frozen=True)
class Style:
    """One style: its key (relative path or ``shard#row``) and an image item or a preset."""

    key: str
    item: Item | None = None
    preset: Path | None = None


def _presets_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if is_style_preset(path) else []
    if path.is_dir():
        return sorted(p for p in path.rglob("*.safetensors") if not p.name.startswith("."))
    return []


def list_styles(sources: Sequence[str], column: str = "image") -> list[Style]:
    """Every style under ``sources``, in order; keys are relative to each source (prefixed
    with the source's position when there are several).

    Raises:
        ValueError: no source, a missing source, or one without images or presets.
    """
    if not sources:
        raise ValueError("no styles given: pass --styles a folder, image, preset or Hub dataset")
    styles: list[Style] = []
    for position, source in enumerate(sources):
        prefix = f"{position}:" if len(sources) > 1 else ""
        local = None if str(source).startswith(HUB_PREFIX) else Path(source).expanduser()
        presets = _presets_under(local) if local is not None else []
        root = local.parent if local is not None and local.is_file() else local
        found = [Style(prefix + p.relative_to(root).as_posix(), preset=p) for p in presets]
        if not (local is not None and local.is_file() and presets):
            try:
                root, items = list_source(source, column)
            except ValueError:
                if not presets:
                    raise ValueError(
                        f"--styles {source}: no style images, parquet shards or .safetensors "
                        "presets found (or no such folder)"
                    ) from None
                items = []
            rows: dict[Path, int] = {}
            for item in items:
                key = item.path.relative_to(root).as_posix()
                if item.group >= 0:
                    rows[item.path] = rows.get(item.path, -1) + 1
                    key = f"{key}#{rows[item.path]}"
                found.append(Style(prefix + key, item=item))
        styles += sorted(found, key=lambda style: style.key)
    return styles


class _StyleImages(Dataset):
    """Style images decoded and resized in DataLoader workers: ``(index, (1, 3, H, W) | error)``."""

    def __init__(self, styles: Sequence[tuple[int, Item]], reader: ItemReader, size: int | None):
        self.styles, self.reader, self.size = list(styles), reader, size

    def __len__(self) -> int:
        return len(self.styles)

    def __getitem__(self, position: int) -> tuple[int, Tensor | str]:
        index, item = self.styles[position]
        try:
            image = resize_shorter(self.reader.load(item), self.size, self.reader.max_pixels)
        except ImageError as error:
            return index, str(error)
        return index, to_tensor(image)


def _first(batch: list[tuple[int, Tensor | str]]) -> tuple[int, Tensor | str]:
    return batch[0]


@dataclass(frozen=True)
class StyleBank:
    """The styles a rank uses, encoded: row ``rows[i]`` of each tensor holds style ``i``.

    ``mean`` and ``std`` are ``(S, C, 1, 1)``; ``quantiles`` (EFDM) is ``(S, C, Q)``, each
    style's sorted relu4_1 values resampled to :data:`adain.style.PRESET_QUANTILES` so styles of
    any size stack (2 MiB per style at 512 channels), else ``None``.
    """

    rows: dict[int, int]
    mean: Tensor
    std: Tensor
    quantiles: Tensor | None = None


@torch.no_grad()
def encode_styles(
    model: AdaIN,
    styles: Sequence[Style],
    indices: Iterable[int],
    reader: ItemReader,
    size: int | None,
    engine: EngineOptions,
    workers: int = 0,
    transfer: Transfer = "adain",
) -> StyleBank:
    """The styles ``indices`` encoded once each by the model, on the engine's device.

    Raises:
        ValueError: a style that cannot be read (a style set must be whole: its indices are
            what the run's draws refer to), or a preset of another model or without EFDM's
            sorted features for ``transfer="efdm"``.
    """
    wanted = sorted(set(indices))
    rows = {index: row for row, index in enumerate(wanted)}
    channels = 8 * model.encoder.conv1_1.out_channels
    mean = torch.zeros(len(wanted), channels, 1, 1, device=engine.device)
    std = torch.zeros_like(mean)
    efdm = transfer == "efdm"
    quantiles = torch.zeros(len(wanted), channels, PRESET_QUANTILES, device=engine.device)
    quantiles = quantiles if efdm else None

    def put(index: int, stats: StyleStats) -> None:
        key = styles[index].key
        if stats.channels != channels:
            raise ValueError(
                f"style {key} has {stats.channels} channels, this model's encoder {channels}: "
                "encode the preset with the same model"
            )
        row = rows[index]
        mean[row], std[row] = stats.mean[0].to(mean), stats.std[0].to(std)
        if quantiles is not None:
            if stats.quantiles is None:
                raise ValueError(
                    f"style preset {key} holds only AdaIN's mean and std: --transfer efdm needs "
                    "presets made with `adain style-encode --transfer efdm`"
                )
            quantiles[row] = resample(stats.quantiles[:1].to(quantiles), PRESET_QUANTILES)[0]

    images = []
    for index in wanted:
        style = styles[index]
        if style.preset is not None:
            put(index, StyleStats.load(style.preset))
        else:
            assert style.item is not None
            images.append((index, style.item))
    loader = DataLoader(
        _StyleImages(images, reader, size),
        batch_size=1,
        num_workers=workers if len(images) > 1 else 0,
        collate_fn=_first,
    )
    for index, image in loader:
        if isinstance(image, str):
            raise ValueError(f"style {image}: every style must be readable; remove it")
        stats = model.style_stats(image.to(engine.device), engine=engine, transfer=transfer)
        put(index, stats)
    return StyleBank(rows, mean, std, quantiles)
