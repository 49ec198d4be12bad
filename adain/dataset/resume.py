"""Resuming: an output folder is taken up again only with the settings it was made with, and
every output its records call done is verified (present, same sha256) before it is skipped."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adain.dataset import manifest
from adain.dataset.plan import Entry, Unit
from adain.dataset.shards import shard_hashes


def check_folder(out: Path, settings: Mapping[str, Any], overwrite: bool) -> dict | None:
    """The records of ``out`` to resume from (none for a new folder), or ``None`` when
    ``overwrite`` starts over a dataset made with other settings (the caller clears its
    records, :func:`adain.dataset.manifest.clear`, once every check has passed).

    Raises:
        ValueError: ``out`` holds other files, or a dataset made with other settings, and
            ``overwrite`` is off.
    """
    existing = manifest.read_settings(out)
    if existing is None:
        others = out.is_dir() and any(p.name != manifest.MANIFEST_DIR for p in out.iterdir())
        if others and not overwrite:
            raise ValueError(
                f"-o {out} already holds files: choose an empty or new folder, or pass "
                "--overwrite to write into it (files of the same names are replaced)"
            )
        return {}
    if dict(existing) != dict(settings):
        if not overwrite:
            name = next(
                k for k in sorted({*existing, *settings}) if existing.get(k) != settings.get(k)
            )
            raise ValueError(
                f"-o {out} holds a stylised dataset made with other settings ({name}: "
                f"{existing.get(name)!r} then, {settings.get(name)!r} now): resume with the same "
                "options, choose another -o, or pass --overwrite to start over"
            )
        return None
    return manifest.read_records(out)


def _differs(path: Path, overwrite: bool) -> None:
    if not overwrite:
        raise ValueError(
            f"{path} was changed after it was written (its sha256 is not the manifest's): "
            "pass --overwrite to make it again"
        )


def _file_done(out: Path, entry: Entry, records: Mapping, overwrite: bool) -> bool:
    for output in entry.outputs:
        record = records.get((entry.key, output.k))
        if record is None:
            return False
        if record["status"] != "ok":
            continue
        path = out / record["output"]
        if not path.is_file():
            return False
        if hashlib.sha256(path.read_bytes()).hexdigest() != record["sha256"]:
            _differs(path, overwrite)
            return False
    return True


def _shard_done(out: Path, unit: Unit, records: Mapping, column: str, overwrite: bool) -> bool:
    assert unit.part is not None
    found = [records.get((e.key, o.k)) for e in unit.entries for o in e.outputs]
    if any(record is None for record in found):
        return False
    made = [r for r in found if r is not None and r["status"] == "ok"]
    if not made:
        return True
    path = out / unit.part
    if not path.is_file():
        return False
    hashes = shard_hashes(path, column)
    for record in made:
        position = int(record["output"].rpartition("#")[2])
        if position >= len(hashes) or hashes[position] != record["sha256"]:
            _differs(path, overwrite)
            return False
    return True


def pending(
    out: Path, units: Sequence[Unit], records: Mapping, column: str, overwrite: bool
) -> tuple[list[Unit], int]:
    """The units (with only their unfinished entries) still to do, and how many source images
    are done and verified. A row group is redone whole: it is one output shard."""
    todo: list[Unit] = []
    done = 0
    for unit in units:
        if unit.part is not None:
            if _shard_done(out, unit, records, column, overwrite):
                done += len(unit.entries)
            else:
                todo.append(unit)
            continue
        entries = [e for e in unit.entries if not _file_done(out, e, records, overwrite)]
        done += len(unit.entries) - len(entries)
        if entries:
            todo.append(Unit(entries=entries))
    return todo, done
