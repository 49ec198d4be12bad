"""``adain export``: a model as files to ship outside Python (ONNX).

No torch at module level, so ``adain --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adain.cli.common import Debug, Overwrite, Quiet, Revision, reported

app = typer.Typer(add_completion=False)


@app.command("export")
def export(
    model: Annotated[
        str,
        typer.Argument(metavar="MODEL", help="Model folder or Hub repository id."),
    ],
    *,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Folder to write (graphs, config.json, README.md)."),
    ],
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    upsampling: Annotated[
        str | None,
        typer.Option(
            help="How the decoder's upsampling steps are written: fused (default: less work,"
            " faster in ONNX Runtime here) or plain (upsample, pad, 3x3 convolution)."
        ),
    ] = None,
    revision: Revision = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Export MODEL as ONNX graphs (encoder + decoder, fp32 and fp16), checked against it.

    The export fails, writing nothing, if the fp32 graphs differ from the model by more than
    1e-4 on the check images. Use the folder with `adain stylize --backend onnxruntime --onnx`.
    """
    with reported(debug):
        from adain.export.onnx import (
            DEFAULT_UPSAMPLING,
            EXPORT_FILES,
            check_format,
            export_onnx,
        )
        from adain.model import load_model
        from adain.outputs import check_folder

        check_format(format)
        if upsampling is not None and upsampling not in ("plain", "fused"):
            raise ValueError(f"--upsampling must be plain or fused, got {upsampling!r}")

        check_folder(output, EXPORT_FILES, overwrite=overwrite)  # before the model loads
        net = load_model(model, revision=revision)
        config = export_onnx(
            net,
            output,
            upsampling=upsampling or DEFAULT_UPSAMPLING,  # type: ignore[arg-type]
            overwrite=overwrite,
            source=model if revision is None else f"{model}@{revision}",
        )
    if not quiet:
        parity = config["parity"]
        typer.echo(
            f"{output}: opset {config['opset']}, max abs difference to the model "
            f"{parity['fp32']['max_abs']:.2g} (fp32), {parity['fp16']['max_abs']:.2g} (fp16)"
        )
