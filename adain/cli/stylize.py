"""``adain stylize``, ``adain interpolate`` and ``adain style-encode``: AdaIN on image files.

Each command parses its options, calls one library function and prints the output path. No
torch at module level, so ``adain --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adain.cli.common import (
    AsJson,
    ContentSize,
    Debug,
    Device,
    MaxMemory,
    MaxPixels,
    MaxSize,
    Model,
    Overwrite,
    Precision,
    PreserveColor,
    Quality,
    Quiet,
    Revision,
    StyleSize,
    Tile,
    Transfer,
    Weights,
    flag,
    options,
    report,
    reported,
)

app = typer.Typer(add_completion=False)

# Options of ``stylize`` alone.
Contents = Annotated[
    list[str],
    typer.Argument(metavar="CONTENT", help="Content images: files, folders (recursive) or globs."),
]
Styles = Annotated[
    list[str],
    typer.Option(
        "--style", "-s", help="Style image, folder, glob or .safetensors preset (repeatable)."
    ),
]
Output = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Output file (one output) or folder (default: current folder)."
    ),
]
Alpha = Annotated[
    float | None,
    typer.Option(help="Content-style trade-off, >= 0: 0 content, 1 full style (default 1)."),
]
Masks = Annotated[
    list[Path] | None,
    typer.Option(help="Region of each style, an image file; grey = soft (one per style)."),
]
SkipExisting = Annotated[
    bool,
    flag(
        "--skip-existing",
        text="Keep existing output files and write only the missing ones (finish a stopped run).",
    ),
]
Ext = Annotated[
    str | None, typer.Option(help="Format of the files written into a folder (default png).")
]
Backend = Annotated[
    str,
    typer.Option(
        help="torch (the engine), or onnxruntime: the model's ONNX graphs on the CPU (the onnx"
        " extra; no --mask).",
    ),
]
OnnxFolder = Annotated[
    Path | None,
    typer.Option(
        "--onnx",
        help="With --backend onnxruntime: a folder from `adain export` of this model"
        " (default: export once into $ADAIN_CACHE/onnx).",
    ),
]


@app.command()
def stylize(
    content: Contents,
    *,
    style: Styles,
    output: Output = None,
    alpha: Alpha = None,
    weight: Weights = None,
    mask: Masks = None,
    preserve_color: PreserveColor = None,
    content_size: ContentSize = None,
    style_size: StyleSize = None,
    max_size: MaxSize = None,
    max_pixels: MaxPixels = None,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    ext: Ext = None,
    overwrite: Overwrite = False,
    skip_existing: SkipExisting = False,
    quality: Quality = None,
    tile: Tile = None,
    max_memory: MaxMemory = None,
    precision: Precision = "fp32",
    transfer: Transfer = "adain",
    backend: Backend = "torch",
    onnx: OnnxFolder = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Stylise each CONTENT with each style, or with one mix of them (--weight) or regions (--mask).

    Outputs are named CONTENT_STYLE.png in the -o folder; each style is encoded once per batch.
    Every input is decoded and checked before the first output is written.
    """
    with reported(debug):
        from adain.batch import BatchConfig, plan, run

        config = BatchConfig(
            contents=content,
            styles=style,
            device=device,
            overwrite=overwrite,
            skip_existing=skip_existing,
            precision=precision,
            transfer=transfer,
            backend=backend,
            **options(
                onnx=onnx,
                tile=tile,
                max_memory=max_memory,
                output=output,
                alpha=alpha,
                weights=weight,
                masks=mask,
                preserve_color=preserve_color,
                content_size=content_size,
                style_size=style_size,
                max_size=max_size,
                max_pixels=max_pixels,
                model=model,
                revision=revision,
                quality=quality,
                ext=ext,
            ),
        )
        batch = plan(config)
        report(run(batch), len(batch.jobs), quiet, as_json)


def _sheet_file(
    content: Path,
    styles: list[Path],
    output: Path | None,
    overwrite: bool,
    quality: int | None,
) -> Path:
    """Where ``interpolate`` writes, checked before any stylisation runs: never an input."""
    from adain.image import save_format
    from adain.outputs import check_output

    sheet_file = output if output is not None else Path(f"{content.stem}_sweep.png")
    save_format(sheet_file)
    check_output(sheet_file, [content, *styles], overwrite)
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"--quality must be between 1 and 100, got {quality}")
    return sheet_file


@app.command()
def interpolate(
    content: Annotated[Path, typer.Argument(metavar="CONTENT", help="Content image.")],
    *,
    style: Annotated[
        list[str],
        typer.Option("--style", "-s", help="Style image or .safetensors preset (repeatable)."),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Sheet file (default: CONTENT_sweep.png here)."),
    ] = None,
    alpha: Annotated[
        list[float] | None,
        typer.Option(help="Alphas of the sweep (repeatable; default 0 .25 .5 .75 1 1.5)."),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(help="Mixes between each pair of styles, ends included (default 5)."),
    ] = None,
    cell_size: Annotated[
        int | None, typer.Option(help="Size of each picture in the sheet, px (default 192).")
    ] = None,
    preserve_color: PreserveColor = None,
    transfer: Transfer = "adain",
    content_size: ContentSize = None,
    style_size: StyleSize = None,
    max_size: Annotated[
        int | None,
        typer.Option(help="Cap the content's longer side in px (default 512; 0: no cap)."),
    ] = None,
    max_pixels: MaxPixels = None,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
    quality: Quality = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Contact sheet of CONTENT: an alpha sweep per style and a mix sweep between styles."""
    with reported(debug):
        from adain.image import save_image
        from adain.inputs import expand_paths
        from adain.sheet import SweepConfig, sweep_sheet

        styles = expand_paths(style, "style", presets=True)
        sheet_file = _sheet_file(content, styles, output, overwrite, quality)
        config = SweepConfig(
            content=content,
            styles=styles,
            device=device,
            transfer=transfer,
            **options(
                alphas=alpha,
                steps=steps,
                cell_size=cell_size,
                preserve_color=preserve_color,
                content_size=content_size,
                style_size=style_size,
                max_size=max_size,
                max_pixels=max_pixels,
                model=model,
                revision=revision,
            ),
        )
        save_image(sweep_sheet(config), sheet_file, quality=quality)
    if not quiet:
        typer.echo(str(sheet_file))


@app.command("style-encode")
def style_encode(
    style: Annotated[
        list[str],
        typer.Argument(metavar="STYLE", help="Style images, folders, globs or presets."),
    ],
    *,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Preset file to write (.safetensors).")
    ],
    weight: Weights = None,
    style_size: StyleSize = None,
    max_pixels: MaxPixels = None,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
    transfer: Annotated[
        str,
        typer.Option(
            help="adain (mean and std), or efdm: also keep 1024 quantiles per feature channel"
            " for --transfer efdm (works for adain too)."
        ),
    ] = "adain",
    quiet: Quiet = False,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Encode STYLE once into a preset usable wherever a style image is (--style x.safetensors).

    Several styles are mixed into one preset (equal weights unless --weight).
    """
    with reported(debug):
        from adain.batch import save_preset

        record = save_preset(
            style,
            output,
            device=device,
            overwrite=overwrite,
            transfer=transfer,
            **options(
                weights=weight,
                style_size=style_size,
                max_pixels=max_pixels,
                model=model,
                revision=revision,
            ),
        )
    if as_json:
        import json

        typer.echo(json.dumps(record))
    elif not quiet:
        typer.echo(record["output"])
