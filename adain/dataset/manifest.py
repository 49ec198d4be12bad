"""The record of a stylised dataset, in ``OUT/.manifest/`` (hidden, so that dataset loaders and
the training readers never take it for data).

- ``settings.json``: what defines the dataset (seed, alpha, styles, sizes, model); a re-run
  with other settings is refused, so one folder never mixes two datasets;
- ``rank-R-of-W.jsonl``: each rank's journal, one line per output, appended and synced after
  the outputs are on disk, so a killed run loses only the images in flight;
- ``part-R-of-W.parquet``: the journal as a parquet part, written when the rank finishes;
- ``manifest.parquet``: every part merged, sorted by source, once every output is recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from adain.dataset.sources import import_pyarrow
from adain.outputs import write_atomically

MANIFEST_DIR = ".manifest"
SETTINGS = "settings.json"
MANIFEST = "manifest.parquet"
# One row per output (or per unreadable source image); (source, k) is the key.
COLUMNS = {
    "source": "string",  # relative path in the source, or shard#row
    "k": "int32",  # which of --styles-per-image
    "output": "string",  # relative path written, or shard#row; "" when unreadable
    "style": "string",  # the style's key in its source
    "alpha": "float64",
    "transfer": "string",  # "adain" or "efdm"
    "seed": "int64",
    "width": "int32",
    "height": "int32",
    "sha256": "string",  # of the output file, or of the image bytes in the shard
    "status": "string",  # "ok" or "unreadable"
    "error": "string",
}
Record = dict[str, Any]
Key = tuple[str, int]


def folder(out: Path) -> Path:
    return out / MANIFEST_DIR


def read_settings(out: Path) -> dict[str, Any] | None:
    path = folder(out) / SETTINGS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path} is unreadable ({error}): pass --overwrite to start over"
        ) from None


def write_settings(out: Path, settings: Mapping[str, Any]) -> None:
    data = (json.dumps(dict(settings), indent=2, sort_keys=True) + "\n").encode()
    write_atomically(folder(out) / SETTINGS, lambda handle: handle.write(data))


def _rank_name(kind: str, rank: int, world: int, suffix: str) -> str:
    return f"{kind}-{rank:05d}-of-{world:05d}{suffix}"


class Journal:
    """Rank ``rank``'s append-only record: one JSON line per output, synced per call."""

    def __init__(self, out: Path, rank: int, world: int):
        self.path = folder(out) / _rank_name("rank", rank, world, ".jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, records: Iterable[Record]) -> None:
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        if not lines:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


def _journal_records(path: Path) -> list[Record]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # the last line of a killed run may be cut short: that output is redone
    return records


def _parquet_records(path: Path) -> list[Record]:
    pq = import_pyarrow(path)
    return pq.read_table(path).to_pylist()


def read_records(out: Path) -> dict[Key, Record]:
    """Every output recorded under ``out``: merged manifest, parts and journals of any rank and
    world size, the most recently written file winning (a redone output's newer record)."""
    where = folder(out)
    if not where.is_dir():
        return {}
    paths = [where / MANIFEST, *where.glob("part-*.parquet"), *where.glob("rank-*.jsonl")]
    paths = sorted((p for p in paths if p.is_file()), key=lambda p: (p.stat().st_mtime_ns, p.name))
    records: dict[Key, Record] = {}
    for path in paths:
        rows = _parquet_records(path) if path.suffix == ".parquet" else _journal_records(path)
        for row in rows:
            records[(row["source"], int(row["k"]))] = row
    return records


def _write_table(path: Path, records: Iterable[Record]) -> Path:
    pq = import_pyarrow("the manifest")
    import pyarrow as pa

    rows = sorted(records, key=lambda r: (r["source"], r["k"]))
    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS.items()])
    table = pa.table({name: [r.get(name) for r in rows] for name in COLUMNS}, schema=schema)
    return write_atomically(path, lambda handle: pq.write_table(table, handle))


def write_part(out: Path, rank: int, world: int, records: Iterable[Record]) -> Path:
    """Rank ``rank``'s records as ``part-R-of-W.parquet``."""
    return _write_table(folder(out) / _rank_name("part", rank, world, ".parquet"), records)


def merge(out: Path, expected: Iterable[Key]) -> Path | None:
    """Write ``manifest.parquet`` from everything recorded, if it covers every ``expected``
    output (else ``None``: other ranks are still running, or were stopped)."""
    records = read_records(out)
    if any(key not in records for key in expected):
        return None
    return _write_table(folder(out) / MANIFEST, records.values())


def clear(out: Path) -> None:
    """Remove the records of an earlier dataset in ``out`` (``--overwrite`` with new settings):
    only the files this module writes."""
    where = folder(out)
    if not where.is_dir():
        return
    for pattern in ("rank-*.jsonl", "part-*.parquet", MANIFEST, SETTINGS):
        for path in where.glob(pattern):
            path.unlink()
