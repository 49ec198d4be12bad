"""Output parquet shards: a source row group with its columns (labels) carried over, the image
column holding the stylised images, and ``style`` and ``alpha`` columns added.

The Hugging Face ``datasets`` feature metadata of the source is kept and extended, so the shard
loads with ``datasets.load_dataset("parquet", ...)`` with the image column as images.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

from adain.dataset.sources import import_pyarrow

STYLE_COLUMN, ALPHA_COLUMN = "style", "alpha"
_FEATURES = {
    STYLE_COLUMN: {"dtype": "string", "_type": "Value"},
    ALPHA_COLUMN: {"dtype": "float64", "_type": "Value"},
}


def _metadata(schema) -> dict[bytes, bytes] | None:  # schema: pyarrow.Schema
    metadata = dict(schema.metadata or {})
    if b"huggingface" in metadata:
        try:
            info = json.loads(metadata[b"huggingface"])
            info.setdefault("info", {}).setdefault("features", {}).update(_FEATURES)
            metadata[b"huggingface"] = json.dumps(info).encode()
        except (ValueError, AttributeError):
            del metadata[b"huggingface"]  # unreadable: better none than a wrong one
    return metadata or None


def make_shard(
    source: Path,
    group: int,
    column: str,
    rows: Sequence[tuple[int, bytes, str, float]],
) -> tuple[bytes, list[str]]:
    """A shard's bytes: for each ``(row, image bytes, style key, alpha)``, row ``row`` of row
    group ``group`` of ``source`` with its image replaced; and each image's sha256.

    Raises:
        ValueError: the source already has a ``style`` or ``alpha`` column.
    """
    pq = import_pyarrow(source)
    import pyarrow as pa

    table = pq.ParquetFile(source).read_row_group(group)
    for name in (STYLE_COLUMN, ALPHA_COLUMN):
        if name in table.column_names:
            raise ValueError(f"{source} already has a column {name!r}: it cannot be added")
    table = table.take(pa.array([row for row, *_ in rows], type=pa.int64()))
    position = table.column_names.index(column)
    kind = table.schema.field(column).type
    images = [data for _, data, *_ in rows]
    if pa.types.is_struct(kind):  # the Hub's Image feature: {"bytes": ..., "path": ...}
        cells = table.column(column).to_pylist()
        values = [{**(cell or {}), "bytes": data} for cell, data in zip(cells, images, strict=True)]
        array = pa.array(values, type=kind)
    else:
        array = pa.array(images, type=kind)
    table = table.set_column(position, table.schema.field(column), array)
    table = table.append_column(STYLE_COLUMN, pa.array([r[2] for r in rows], pa.string()))
    table = table.append_column(ALPHA_COLUMN, pa.array([r[3] for r in rows], pa.float64()))
    table = table.replace_schema_metadata(_metadata(table.schema))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue(), [hashlib.sha256(image).hexdigest() for image in images]


def shard_hashes(path: Path, column: str) -> list[str]:
    """sha256 of each image in the ``column`` of the shard ``path``, in row order."""
    pq = import_pyarrow(path)
    cells = pq.read_table(path, columns=[column]).column(column).to_pylist()
    blobs = [c.get("bytes") if isinstance(c, dict) else c for c in cells]
    return [hashlib.sha256(b or b"").hexdigest() for b in blobs]
