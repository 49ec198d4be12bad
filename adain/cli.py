"""The ``adain`` command line. Commands parse, call one library function, and report.

Torch-heavy modules are imported inside the commands so ``adain --help`` answers at once.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

import adain

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Arbitrary style transfer with AdaIN (Huang & Belongie, 2017).",
)


def _fail(message: str) -> typer.Exit:
    """Print a one-line error to stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"adain {adain.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Arbitrary style transfer with AdaIN (Huang & Belongie, 2017)."""


@app.command()
def stylize(
    content: Annotated[Path, typer.Argument(help="Content image.")],
    *,
    style: Annotated[list[Path], typer.Option("--style", "-s", help="Style image (repeatable).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image file.")],
    model: Annotated[
        str | None, typer.Option(help="Hub repository id or model folder (default: $ADAIN_MODEL).")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Content-style trade-off, >= 0.")] = 1.0,
) -> None:
    """Stylise CONTENT with one or more styles."""
    from adain.image import save_image
    from adain.stylize import stylize as run_stylize

    try:
        image = run_stylize(content, style, model=model, alpha=alpha)
        save_image(image, output)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None
    typer.echo(str(output))


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
    from adain.convert import load_original
    from adain.pretrained import save_model_dir

    try:
        model = load_original(vgg_file, decoder_file, encoder_depth=encoder_depth)
        save_model_dir(model, output, overwrite=overwrite)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None
    typer.echo(str(output))


# Sub-apps from other modules, merged at the top level when importable. train/ and hub/ exist only
# in a checkout (the wheel ships adain alone); the modules must import no torch at module level.
_OPTIONAL_APPS = ("adain.cli_gatys", "train.cli", "hub.cli")


def _mount_optional_apps() -> None:
    for module_name in _OPTIONAL_APPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):
                continue  # not in this install (e.g. train/ outside a checkout)
            raise
        app.add_typer(module.app)


_mount_optional_apps()


def main() -> None:
    app()
