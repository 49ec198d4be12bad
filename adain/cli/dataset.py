"""``adain stylize-dataset``: a whole dataset re-rendered with random styles (Stylized-ImageNet).

A thin layer over :func:`adain.dataset.run.stylize_dataset`; no torch at module level.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from adain.cli.common import (
    ContentSize,
    Debug,
    Device,
    MaxPixels,
    MaxSize,
    Model,
    Overwrite,
    Precision,
    Quiet,
    Revision,
    Transfer,
    flag,
    options,
    reported,
)

app = typer.Typer(add_completion=False)
_PROGRESS_EVERY_S = 10.0


def _progress(rank: int, world: int, quiet: bool):
    last = [0.0]

    def show(done: int, total: int, seconds: float) -> None:
        if quiet or (seconds - last[0] < _PROGRESS_EVERY_S and done < total):
            return
        last[0] = seconds
        rate = done / seconds if seconds > 0 else 0.0
        eta = time.strftime("%H:%M:%S", time.gmtime((total - done) / rate)) if rate else "-"
        typer.echo(
            f"rank {rank}/{world}: {done}/{total} images, {rate:.1f} images/s, ETA {eta}", err=True
        )

    return show


@app.command("stylize-dataset")
def stylize_dataset(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="Folder tree of images (class folders kept), parquet shards, or "
            "hf://datasets/ORG/NAME[@REVISION] (fetched once, cached).",
        ),
    ],
    *,
    styles: Annotated[
        list[str],
        typer.Option(
            "--styles",
            "-s",
            help="Style images: a folder, files, .safetensors presets or hf://datasets/ORG/NAME "
            "(repeatable).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder of the stylised dataset (a mirror).")
    ],
    alpha: Annotated[
        str | None,
        typer.Option(help="Alpha, or a range LOW:HIGH drawn per image (default 1)."),
    ] = None,
    styles_per_image: Annotated[
        int | None, typer.Option(help="Stylised copies of each image, each its own style (1).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the style and alpha draws (default 0).")
    ] = None,
    content_size: ContentSize = None,
    max_size: MaxSize = None,
    style_size: Annotated[
        int | None,
        typer.Option(help="Resize styles so the shorter side is this many px (default 512)."),
    ] = None,
    max_pixels: MaxPixels = None,
    image_column: Annotated[
        str | None, typer.Option(help="Parquet column holding the images (default image).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per model call (default 16).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="DataLoader processes decoding images (default 2).")
    ] = None,
    quality: Annotated[
        int | None, typer.Option(help="JPEG/WebP quality of the outputs, 1-100 (default 95).")
    ] = None,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    precision: Precision = "fp32",
    transfer: Transfer = "adain",
    overwrite: Overwrite = False,
    merge: Annotated[
        bool, flag("--merge", text="Only merge the ranks' manifest parts (after a multi-node run).")
    ] = False,
    quiet: Quiet = False,
    as_json: Annotated[bool, flag("--json", text="Print the summary as JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Stylise every image of SOURCE with a random style into -o, mirroring its layout.

    Each image's style and alpha depend only on --seed and its relative path, so the dataset is
    the same for any number of processes (`accelerate launch -m adain stylize-dataset ...`)
    and however often it was resumed: a re-run skips what the manifest
    (OUT/.manifest/manifest.parquet) records and verifies it.
    """
    with reported(debug):
        from adain.dataset.plan import DatasetConfig
        from adain.dataset.run import merge_manifest, process_rank
        from adain.dataset.run import stylize_dataset as run

        config = DatasetConfig(
            source=source,
            styles=styles,
            output=output,
            device=device,
            precision=precision,
            transfer=transfer,
            overwrite=overwrite,
            **options(
                alpha=alpha,
                styles_per_image=styles_per_image,
                seed=seed,
                content_size=content_size,
                max_size=max_size,
                style_size=style_size,
                max_pixels=max_pixels,
                image_column=image_column,
                batch_size=batch_size,
                workers=workers,
                quality=quality,
                model=model,
                revision=revision,
            ),
        )
        if merge:
            merged = merge_manifest(config)
            if merged is None:
                raise ValueError(
                    f"{output}: some outputs are not recorded yet: run every rank to the end "
                    "(the same command, same RANK and WORLD_SIZE) before --merge"
                )
            typer.echo(str(merged))
            return
        rank, world = process_rank()
        summary = run(config, rank, world, progress=_progress(rank, world, quiet or as_json))
    if as_json:
        typer.echo(json.dumps(asdict(summary)))
    elif not quiet:
        typer.echo(
            f"rank {summary.rank}/{summary.world}: {summary.images} images "
            f"({summary.outputs} outputs, {summary.unreadable} unreadable, "
            f"{summary.already_done} done before) in {summary.seconds:.1f} s, "
            f"{summary.images_per_s:.2f} images/s; manifest: "
            f"{summary.manifest or 'waiting for the other ranks'}"
        )
