"""``adain stylize-dataset``'s loop: check, plan, encode the styles once, then decode images in
DataLoader workers and run them through the model in batches, writing and recording outputs.

Run under ``accelerate launch`` (or torchrun), each process takes its rank's units
(:func:`adain.dataset.plan.shard_units`) from ``RANK`` / ``WORLD_SIZE`` and the GPU of
``LOCAL_RANK``. Whichever rank finishes last finds every output recorded and merges the manifest;
``--merge`` (:func:`merge_manifest`) does it again at any time.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from adain.api import get_device
from adain.augment import stylize_each
from adain.dataset import manifest, resume
from adain.dataset.assign import SCHEME
from adain.dataset.images import DecodedImages, as_list, encode_image
from adain.dataset.plan import DatasetConfig, Entry, Unit, check_overlap, plan_units, shard_units
from adain.dataset.shards import make_shard
from adain.dataset.sources import ItemReader, import_pyarrow
from adain.dataset.styles import Style, StyleBank, encode_styles, list_styles
from adain.engine.runner import EngineOptions
from adain.model import load_model
from adain.outputs import write_atomically

Progress = Callable[[int, int, float], None]  # (images done, images to do, seconds so far)


@dataclass
class Summary:
    """What one rank did."""

    rank: int
    world: int
    images: int  # source images processed by this run (unreadable ones included)
    outputs: int  # stylised images made by this run
    unreadable: int
    already_done: int  # source images recorded by earlier runs, verified
    seconds: float
    images_per_s: float
    manifest: str | None  # the merged manifest, once every rank's outputs are recorded


def process_rank() -> tuple[int, int]:
    """``(rank, world size)`` from the environment ``accelerate launch`` and torchrun set."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _settings(config: DatasetConfig, styles: Sequence[Style]) -> dict[str, Any]:
    """What defines the dataset: a resumed run must match all of it."""
    keys = "\n".join(style.key for style in styles).encode()
    chosen = ("source", "alpha", "styles_per_image", "seed", "content_size", "max_size")
    chosen += ("style_size", "image_column", "model", "revision", "quality", "transfer")
    values = {name: value for name, value in asdict(config).items() if name in chosen}
    return {**values, "scheme": SCHEME, "styles": len(styles), "styles_sha256": _sha256(keys)}


class _Runner:
    """One rank's run: the model, the style bank, the outputs and the journal."""

    def __init__(self, config: DatasetConfig, styles: Sequence[Style], device: torch.device):
        self.config, self.styles, self.device = config, styles, device
        self.out = Path(config.output)
        self.engine = EngineOptions(device=device, precision=config.precision)  # type: ignore[arg-type]
        self.model = load_model(config.model, revision=config.revision).to(device)
        self.pool = ThreadPoolExecutor(max_workers=4)  # PIL encodes outside the GIL
        self.bank: StyleBank | None = None  # the styles this rank uses, encoded

    @torch.inference_mode()
    def stylise(self, batch: list[tuple[int, Tensor, str]], entries: Sequence[Entry]) -> dict:
        """Each readable image of the batch -> ``{(index, k): uint8 (3, H, W)}``, images of one
        size in one model call."""
        results: dict[tuple[int, int], Tensor] = {}
        shapes: dict[tuple[int, ...], list[tuple[int, Tensor]]] = {}
        for index, image, _ in batch:
            shapes.setdefault(tuple(image.shape), []).append((index, image))
        for members in shapes.values():
            rows = [(i, image, out) for i, image in members for out in entries[i].outputs]
            content = torch.stack([image for _, image, _ in rows]).to(self.device).float() / 255
            bank = self.bank
            assert bank is not None
            picked = [bank.rows[out.style] for _, _, out in rows]
            styles = torch.tensor(picked, device=self.device)
            images = stylize_each(
                self.model,
                content,
                bank.mean[styles],
                bank.std[styles],
                [out.alpha for _, _, out in rows],
                self.engine,
                None if bank.quantiles is None else bank.quantiles[styles],
                self.config.transfer,  # type: ignore[arg-type]
            )
            images = images.clamp(0, 1).mul(255).round().to("cpu", torch.uint8)
            for (i, _, out), image in zip(rows, images, strict=True):
                results[(i, out.k)] = image
        return results

    def record(self, entry: Entry, k: int, **values: Any) -> dict[str, Any]:
        out = entry.outputs[k]
        return {
            "source": entry.key, "k": k, "style": self.styles[out.style].key,
            "alpha": out.alpha, "seed": self.config.seed, "output": "", "width": 0,
            "height": 0, "sha256": "", "status": "ok", "error": "",
            "transfer": self.config.transfer, **values,
        }  # fmt: skip

    def write_file(self, name: str, data: bytes) -> str:
        path = self.out / name
        if path.is_file() and not self.config.overwrite:
            # Written by a killed run after its last journal line, or someone else's file.
            if path.read_bytes() == data:
                return _sha256(data)
            raise ValueError(
                f"{path} exists and differs from this run's output: pass --overwrite to "
                "replace it, or choose another -o"
            )
        write_atomically(path, lambda handle: handle.write(data))
        return _sha256(data)


def _unreadable(run: _Runner, entry: Entry, error: str) -> list[dict[str, Any]]:
    return [
        run.record(entry, k, status="unreadable", error=error) for k in range(len(entry.outputs))
    ]


def _save(run: _Runner, pixels: Tensor, kind: str, name: str) -> str:
    return run.write_file(name, encode_image(pixels, kind, run.config.quality))


def _file_records(
    run: _Runner, batch: list, entries: Sequence[Entry], images: dict
) -> Callable[[], list]:
    """Start encoding and writing a batch's files in the writer threads; returns the call that
    waits for them and gives their records (so the model runs the next batch meanwhile)."""
    records, jobs = [], []
    for index, image, kind in batch:
        entry = entries[index]
        if isinstance(image, str):
            records += _unreadable(run, entry, image)
            continue
        for out in entry.outputs:
            pixels = images[(index, out.k)]
            jobs.append(
                (entry, out, pixels.shape, run.pool.submit(_save, run, pixels, kind, out.name))
            )

    def finish() -> list:
        for entry, out, shape, job in jobs:
            values = dict(output=out.name, width=shape[2], height=shape[1], sha256=job.result())
            records.append(run.record(entry, out.k, **values))
        return records

    return finish


def _shard_records(run: _Runner, unit: Unit, batches: list, entries: Sequence[Entry]) -> list:
    records, rows, made = [], [], []
    for batch, images in batches:
        for index, image, kind in batch:
            entry = entries[index]
            if isinstance(image, str):
                records += _unreadable(run, entry, image)
                continue
            row = entry.item.row
            for out in entry.outputs:
                pixels = images[(index, out.k)]
                made.append((entry, out, pixels.shape))
                rows.append((row, run.pool.submit(encode_image, pixels, kind, run.config.quality)))
    assert unit.part is not None and unit.shard is not None
    styles = [run.styles[out.style].key for _, out, _ in made]
    payload = [
        (row, job.result(), style, out.alpha)
        for (row, job), style, (_, out, _) in zip(rows, styles, made, strict=True)
    ]
    data, hashes = make_shard(unit.shard, unit.group, run.config.image_column, payload)
    run.write_file(unit.part, data)
    for position, ((entry, out, shape), sha) in enumerate(zip(made, hashes, strict=True)):
        name = f"{unit.part}#{position}"
        records.append(
            run.record(entry, out.k, output=name, width=shape[2], height=shape[1], sha256=sha)
        )
    return records


def _device(name: str) -> torch.device:
    device = get_device(name)
    local = os.environ.get("LOCAL_RANK")
    if device.type == "cuda" and device.index is None and local is not None:
        return torch.device("cuda", int(local))  # one GPU per process under accelerate launch
    return device


def _style_roots(styles: Sequence[str]) -> list[tuple[str, Path]]:
    return [("styles", Path(s)) for s in styles if not str(s).startswith("hf://")]


def stylize_dataset(
    config: DatasetConfig,
    rank: int | None = None,
    world: int | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Stylise rank ``rank``'s share of the source (default: :func:`process_rank`) into
    ``config.output``, skipping what earlier runs finished; see the module docstring.

    Every check (sources, styles, the output folder, earlier settings, the model, every style
    encoded) comes before the first file is written.

    Raises:
        ValueError: one line naming the input or option to fix.
    """
    if rank is None or world is None:
        rank, world = process_rank()
    out = Path(config.output)
    import_pyarrow("the manifest")  # needed at the end: a missing extra fails before the work
    styles = list_styles(config.styles, config.image_column)
    root, units = plan_units(config, len(styles))
    check_overlap(out, [("source", root), *_style_roots(config.styles)])
    settings = _settings(config, styles)
    records = resume.check_folder(out, settings, config.overwrite)
    start_over = records is None
    mine = shard_units(units, rank, world)
    todo, done_before = resume.pending(
        out, mine, records or {}, config.image_column, config.overwrite
    )
    start = time.perf_counter()
    entries = [entry for unit in todo for entry in unit.entries]
    made = unreadable = 0
    if entries:
        run = _Runner(config, styles, _device(config.device))
        wanted = {out.style for entry in entries for out in entry.outputs}
        reader = ItemReader(config.image_column, config.max_pixels)
        run.bank = encode_styles(
            run.model, styles, wanted, reader, config.style_size, run.engine, config.workers,
            config.transfer,  # type: ignore[arg-type]
        )  # fmt: skip
        if start_over:
            manifest.clear(out)
        manifest.write_settings(out, settings)  # the first write
        journal = manifest.Journal(out, rank, world)
        made, unreadable = _loop(run, todo, entries, journal, progress, start)
    elif start_over or manifest.read_settings(out) is None:
        manifest.clear(out)
        manifest.write_settings(out, settings)
    journal_records = manifest.read_records(out)
    keys = [(e.key, o.k) for unit in mine for e in unit.entries for o in e.outputs]
    manifest.write_part(
        out, rank, world, [journal_records[k] for k in keys if k in journal_records]
    )
    expected = [(e.key, o.k) for unit in units for e in unit.entries for o in e.outputs]
    merged = manifest.merge(out, expected)
    seconds = time.perf_counter() - start
    return Summary(
        rank, world, len(entries), made, unreadable, done_before, seconds,
        len(entries) / seconds if seconds > 0 else 0.0, str(merged) if merged else None,
    )  # fmt: skip


def _loop(
    run: _Runner, todo: Sequence[Unit], entries: Sequence[Entry], journal: manifest.Journal,
    progress: Progress | None, start: float,
) -> tuple[int, int]:  # fmt: skip
    """Every pending entry through the model; returns (outputs made, unreadable images)."""
    config = run.config
    batches: list[list[int]] = []
    unit_of: list[int] = []  # unit of each batch
    position = 0
    for number, unit in enumerate(todo):
        for first in range(0, len(unit.entries), config.batch_size):
            size = min(config.batch_size, len(unit.entries) - first)
            batches.append(list(range(position + first, position + first + size)))
            unit_of.append(number)
        position += len(unit.entries)
    loader = DataLoader(
        DecodedImages(entries, config),
        batch_sampler=batches,
        num_workers=config.workers,
        collate_fn=as_list,
        pin_memory=run.device.type == "cuda",
        prefetch_factor=4 if config.workers else None,
    )
    counts = {"made": 0, "unreadable": 0, "done": 0}

    def record(records: list) -> None:  # after the outputs are on disk
        journal.append(records)
        counts["made"] += sum(r["status"] == "ok" for r in records)
        counts["unreadable"] += len({r["source"] for r in records if r["status"] != "ok"})
        counts["done"] += len({r["source"] for r in records})
        if progress is not None:
            progress(counts["done"], len(entries), time.perf_counter() - start)

    in_flight: Callable[[], list] | None = None  # the previous batch's writes
    pending_shard: list = []
    try:
        for number, batch in enumerate(loader):
            readable = [b for b in batch if not isinstance(b[1], str)]
            images = run.stylise(readable, entries) if readable else {}
            unit = todo[unit_of[number]]
            if unit.part is None:
                writes = _file_records(run, batch, entries, images)
                if in_flight is not None:
                    record(in_flight())
                in_flight = writes
                continue
            pending_shard.append((batch, images))
            if number + 1 < len(batches) and unit_of[number + 1] == unit_of[number]:
                continue
            if in_flight is not None:
                record(in_flight())
                in_flight = None
            record(_shard_records(run, unit, pending_shard, entries))
            pending_shard = []
        if in_flight is not None:
            record(in_flight())
    finally:
        run.pool.shutdown(wait=True, cancel_futures=True)
    return counts["made"], counts["unreadable"]


def merge_manifest(config: DatasetConfig) -> Path | None:
    """Merge the records of every rank into ``OUT/.manifest/manifest.parquet`` (``--merge``);
    ``None`` while outputs are missing."""
    styles = list_styles(config.styles, config.image_column)
    _, units = plan_units(config, len(styles))
    expected = [(e.key, o.k) for unit in units for e in unit.entries for o in e.outputs]
    return manifest.merge(Path(config.output), expected)
