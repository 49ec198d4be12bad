"""The ``adain`` command line: one module per command group, each a thin typer layer.

- ``stylize.py``: stylize, interpolate, style-encode; ``models.py``: info, convert;
  ``gatys.py``: gatys, compare; ``evaluate.py``: evaluate; ``serve.py``: demo, serve;
  ``video.py``: video; ``dataset.py``: stylize-dataset; ``export.py``: export;
  ``common.py``: shared options, one-line errors, the report.
- ``train``, ``push`` and ``publish-original`` come from ``train/cli.py`` and ``hub/cli.py`` of a
  checkout (the wheel ships ``adain`` alone, STYLE.md section 2), loaded when the command runs.

Torch-heavy modules are imported inside the commands so ``adain --help`` answers at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

import adain
from adain.cli import dataset, evaluate, export, gatys, models, serve, stylize, video
from adain.cli.common import fail

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    # --debug tracebacks would otherwise print every local variable (tensors, whole images).
    pretty_exceptions_show_locals=False,
    help="Arbitrary style transfer with AdaIN (Huang & Belongie, 2017).",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"adain {adain.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            callback=_version_callback,
            is_eager=True,
            help="Print the version.",
        ),
    ] = False,
) -> None:
    """Arbitrary style transfer with AdaIN (Huang & Belongie, 2017)."""


# The checkout that holds this adain/ and, beside it, train/ and hub/ (absent for a wheel).
_CHECKOUT = Path(__file__).resolve().parents[2]
_TRAIN_PANEL = "Training (from a checkout: train/)"
_HUB_PANEL = "Publishing to the Hugging Face Hub (maintainers; from a checkout: hub/)"
# Command -> (package, summary for `adain --help`, panel); `adain COMMAND --help` shows the
# command's own help.
_CHECKOUT_COMMANDS = {
    "train": (
        "train",
        "Train an AdaIN decoder (defaults < --config < --set < flags); print the model folder.",
        _TRAIN_PANEL,
    ),
    "push": (
        "hub",
        "Publish a model folder or checkpoint to the Hub, with its model card (maintainers).",
        _HUB_PANEL,
    ),
    "publish-original": (
        "hub",
        "Publish the original release weights, converted, to the Hub (maintainers).",
        _HUB_PANEL,
    ),
}


def _import_cli(package: str) -> ModuleType | None:
    """``train.cli`` or ``hub.cli``: of the checkout beside adain/, else from sys.path, else None.

    The checkout's package is loaded from its folder and registered under its own name, so its
    absolute imports (``from train.config import ...``) resolve without touching sys.path.
    """
    init = _CHECKOUT / package / "__init__.py"
    if package not in sys.modules and init.is_file():
        spec = importlib.util.spec_from_file_location(
            package, init, submodule_search_locations=[str(init.parent)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[package]
            raise
    try:
        return importlib.import_module(f"{package}.cli")
    except ModuleNotFoundError as error:
        if error.name in (package, f"{package}.cli"):
            return None
        raise


def _run_checkout_command(ctx: typer.Context, name: str, package: str) -> None:
    """Run ``adain NAME ARGS...`` as the checkout's sub-app would, help and exit code included."""
    module = _import_cli(package)
    if module is None:
        raise fail(
            f"`adain {name}` needs a checkout of the adain repository (train/ and hub/ are not "
            "in the wheel): clone it, `pip install -e '.[train]'`, and run it from there"
        )
    group = typer.Typer(add_completion=False)
    group.add_typer(module.app)  # merged without a name: `adain train`, `adain push`, ...
    command = typer.main.get_command(group)
    # Standalone: it prints its own usage errors and ends with sys.exit(its exit code).
    command([name, *ctx.args], prog_name=ctx.find_root().command_path)


def _placeholder(name: str, package: str) -> Callable[[typer.Context], None]:
    def command(ctx: typer.Context) -> None:
        _run_checkout_command(ctx, name, package)

    return command


# Placeholders resolved when the command runs, not when adain.cli is imported: train/ and hub/
# are not importable without their checkout on sys.path, which a library must not edit, and
# `adain --help` must stay fast and work from a wheel. Every argument, --help included, passes
# through to the sub-app.
_checkout_app = typer.Typer(add_completion=False)
for _name, (_package, _summary, _panel) in _CHECKOUT_COMMANDS.items():
    _checkout_app.command(
        _name,
        help=_summary,
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        rich_help_panel=_panel,
    )(_placeholder(_name, _package))

# Merged without a name, in the order `adain --help` lists them.
for _group in (
    stylize.app,
    models.app,
    gatys.app,
    evaluate.app,
    serve.app,
    video.app,
    dataset.app,
    export.app,
    _checkout_app,
):
    app.add_typer(_group)


def main() -> None:
    app()
