"""Image sources: folder trees, parquet shards and Hub datasets of parquet shards.

The readers training uses too (``train/data.py`` imports them): a source lists its images as
:class:`Item` s in a fixed order, and :class:`ItemReader` decodes one, a parquet row group at a
time. pyarrow is imported only when a parquet shard is read.
"""

from __future__ import annotations

import io
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from PIL import Image, ImageOps

from adain.image import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageError, load_image

PARQUET_SUFFIX = ".parquet"
# Hub datasets as sources, in the URL form huggingface_hub's file system uses.
HUB_PREFIX = "hf://datasets/"
# Row groups kept decoded per reader (per DataLoader worker): parquet is read a group at a time.
_ROW_GROUP_CACHE = 4


def import_pyarrow(what: object) -> ModuleType:
    """``pyarrow.parquet``, or a one-line error naming the extra that installs it."""
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ValueError(
            f"reading {what} needs pyarrow: pip install 'adain[dataset]' (or 'adain[train]')"
        ) from error
    return pq


@dataclass(frozen=True)
class Item:
    """One image: a file, or row ``row`` of row group ``group`` in a parquet shard."""

    path: Path
    group: int = -1
    row: int = -1

    def describe(self) -> str:
        return str(self.path) if self.group < 0 else f"{self.path}[{self.group}:{self.row}]"


def parquet_items(path: Path, column: str) -> list[Item]:
    """Every row of the shard ``path``, in row-group order; ``column`` must exist."""
    pq = import_pyarrow(path)
    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as error:  # not a parquet file, truncated footer
        raise ValueError(f"{path}: not a readable parquet file ({error})") from error
    names = meta.schema.to_arrow_schema().names
    if column not in names:
        raise ValueError(
            f"{path} has no column {column!r} (columns: {', '.join(names)}); set image_column"
        )
    return [
        Item(path, group, row)
        for group in range(meta.num_row_groups)
        for row in range(meta.row_group(group).num_rows)
    ]


def hub_dataset_folder(source: str) -> Path:
    """``hf://datasets/ORG/NAME[@REVISION]`` -> a local folder of that dataset's parquet shards.

    The shards are downloaded once into the Hugging Face cache (this needs the network, and the
    disk for the shards: ~37 GB for huggan/wikiart) and then read like local parquet files.

    Note:
        Downloading the shards rather than streaming them keeps every sample a pure function
        of its position, so resumed runs are bit-exact, and needs nothing beyond
        huggingface_hub.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, _, revision = source.removeprefix(HUB_PREFIX).partition("@")
    try:
        folder = snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision or None,
            allow_patterns=["*.parquet"],
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"{source}: could not fetch the dataset's parquet shards ({first_line}); check the "
            "id and the network, or download the shards and pass their folder"
        ) from error
    return Path(folder)


def _is_hidden(relative: Path) -> bool:
    # Temporary files of atomic writes, a stylised dataset's .manifest/, .git: never images.
    return any(part.startswith(".") for part in relative.parts)


def list_source(source: str | Path, column: str = "image") -> tuple[Path, list[Item]]:
    """The root folder of one source and its images, in a fixed (sorted) order.

    A folder is searched recursively (hidden files and folders skipped); a file is one parquet
    shard or one image, its root the folder holding it; ``hf://datasets/ORG/NAME[@REVISION]`` is
    fetched once by :func:`hub_dataset_folder`.

    Raises:
        ValueError: the source does not exist, or holds no image and no parquet row.
    """
    is_hub = str(source).startswith(HUB_PREFIX)
    path = hub_dataset_folder(str(source)) if is_hub else Path(source).expanduser()
    if not path.exists():
        raise ValueError(f"{path}: no such folder or file")
    if path.is_dir():
        root = path
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and not _is_hidden(p.relative_to(path))
        )
    else:
        root, files = path.parent, [path]
    found: list[Item] = []
    for file in files:
        suffix = file.suffix.lower()
        if suffix == PARQUET_SUFFIX:
            found += parquet_items(file, column)
        elif suffix in IMAGE_SUFFIXES:
            found.append(Item(file))
    if not found:
        raise ValueError(
            f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) or {PARQUET_SUFFIX} shards "
            "found; point to a folder of images or to parquet files"
        )
    return root, found


def list_items(sources: Sequence[str | Path], column: str = "image") -> list[Item]:
    """All images under ``sources`` (see :func:`list_source`), in order.

    Raises:
        ValueError: no source, or one that does not exist or holds no image.
    """
    if not sources:
        raise ValueError("no data source given: pass folders or parquet files")
    return [item for source in sources for item in list_source(source, column)[1]]


class ItemReader:
    """Decodes items to upright RGB PIL images, keeping a few parquet row groups decoded.

    One per process (or DataLoader worker): the cache is not shared.

    Args:
        column: the parquet column holding the images, either binary or a struct
            ``{"bytes": ..., "path": ...}`` (the Hugging Face ``Image`` feature).
        max_pixels: refuse larger images before decoding them (``None``: PIL's own limit).
    """

    def __init__(self, column: str = "image", max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.column, self.max_pixels = column, max_pixels
        self._groups: OrderedDict[tuple[Path, int], list[object]] = OrderedDict()

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_groups": OrderedDict()}  # workers start with an empty cache

    def image_bytes(self, item: Item) -> bytes:
        key = (item.path, item.group)
        if key not in self._groups:
            pq = import_pyarrow(item.path)
            table = pq.ParquetFile(item.path).read_row_group(item.group, columns=[self.column])
            cells = table.column(self.column).to_pylist()
            self._groups[key] = [c.get("bytes") if isinstance(c, dict) else c for c in cells]
            if len(self._groups) > _ROW_GROUP_CACHE:
                self._groups.popitem(last=False)
        self._groups.move_to_end(key)
        data = self._groups[key][item.row]
        if not isinstance(data, bytes):
            raise ImageError(f"{item.describe()}: no image bytes in column {self.column!r}")
        return data

    def load(self, item: Item) -> Image.Image:
        """The item as an upright 8-bit RGB image.

        Raises:
            ImageError: unreadable, truncated, non-image or too large.
        """
        if item.group < 0:
            return load_image(item.path, self.max_pixels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
                with Image.open(io.BytesIO(self.image_bytes(item))) as opened:
                    width, height = opened.size
                    if self.max_pixels is not None and width * height > self.max_pixels:
                        raise ImageError(
                            f"{item.describe()}: {width}x{height} px is over the limit of "
                            f"{self.max_pixels:,} pixels (--max-pixels)"
                        )
                    return ImageOps.exif_transpose(opened).convert("RGB")
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise ImageError(f"{item.describe()}: unreadable image ({error})") from error
