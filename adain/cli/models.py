"""``adain info`` and ``adain convert``: inspect a model, convert the original released weights.

No torch at module level, so ``adain --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from adain.cli.common import Debug, Revision, fail, reported

app = typer.Typer(add_completion=False)


@app.command()
def info(
    model: Annotated[
        str | None,
        typer.Argument(help="Model folder or Hub repository id (default: $ADAIN_MODEL)."),
    ] = None,
    *,
    revision: Revision = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    debug: Debug = False,
) -> None:
    """Show a model's config, model card, parameter counts and source revision."""
    with reported(debug):
        from adain.weights.info import describe_model, format_description

        description = describe_model(model, revision=revision)
    typer.echo(json.dumps(description) if as_json else format_description(description))


@app.command()
def convert(
    vgg_file: Annotated[Path, typer.Argument(help="Released vgg_normalised.pth or .t7.")],
    decoder_file: Annotated[Path, typer.Argument(help="Released decoder.pth or .t7.")],
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write.")],
    encoder_depth: Annotated[
        str, typer.Option(help="relu5_1 (AdaIN + Gram path) or relu4_1 (AdaIN only).")
    ] = "relu5_1",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Convert the original released weights into a save_pretrained folder."""
    from adain.model import AdaIN
    from adain.weights.hub import save_model_dir

    try:
        model = AdaIN.from_original(vgg_file, decoder_file, encoder_depth=encoder_depth)
        save_model_dir(model, output, overwrite=overwrite)
    except (ValueError, OSError) as error:
        raise fail(str(error)) from None
    typer.echo(str(output))
