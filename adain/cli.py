"""The ``adain`` command line. Commands parse, call one library function, and report.

Torch-heavy modules are imported inside the commands so ``adain --help`` answers at once.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

import adain

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    # --debug tracebacks would otherwise print every local variable (tensors, whole images).
    pretty_exceptions_show_locals=False,
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


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _expected(error: BaseException) -> bool:
    """Errors that are the user's to fix (bad input, missing model, no network): no traceback."""
    if isinstance(error, ValueError | OSError):  # ImageError, most huggingface_hub errors
        return True
    hub_errors = sys.modules.get("huggingface_hub.errors")
    if hub_errors is not None and isinstance(error, hub_errors.EntryNotFoundError):
        return True
    http = sys.modules.get("httpx2")  # huggingface_hub's HTTP client: connection failures
    if http is not None and isinstance(error, http.HTTPError):
        return True
    return _out_of_memory(error)


def _out_of_memory(error: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.OutOfMemoryError)


@contextmanager
def _reported(debug: bool) -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit code 1 (tracebacks with --debug)."""
    if not debug:
        from huggingface_hub.utils import logging as hub_logging

        # huggingface_hub logs each network retry as a warning: the error line says it all.
        hub_logging.set_verbosity_error()
    try:
        yield
    except KeyboardInterrupt:
        if debug:
            raise
        typer.echo("interrupted: finished outputs are complete, none is half-written", err=True)
        raise typer.Exit(130) from None
    except Exception as error:
        if debug or not _expected(error):
            raise
        hint = " (out of memory: try a smaller --max-size)" if _out_of_memory(error) else ""
        raise _fail(_one_line(error) + hint) from None


def _options(**values: Any) -> dict[str, Any]:
    """Drop unset options, so the config dataclass keeps the one home of each default."""
    return {name: value for name, value in values.items() if value is not None}


def _report(records: Iterable[dict[str, Any]], total: int, quiet: bool, as_json: bool) -> None:
    """Print one line per output (its path, or a JSON record), with a progress bar on batches."""
    from rich.console import Console
    from rich.progress import Progress

    with Progress(
        console=Console(stderr=True),
        disable=quiet or total < 2,
        transient=True,
        # Through the bar's console only when stdout is the same terminal; never for --json pipes.
        redirect_stdout=sys.stdout.isatty(),
        redirect_stderr=False,
    ) as progress:
        task = progress.add_task("stylising", total=total)
        for record in records:
            if as_json:
                typer.echo(json.dumps(record))
            elif not quiet:
                typer.echo(record["output"])
            progress.advance(task)


# Options shared by several commands: one name and one help text per knob.
Model = Annotated[
    str | None,
    typer.Option(help="Hub repository id or model folder (default: $ADAIN_MODEL, then the Hub)."),
]
Revision = Annotated[str | None, typer.Option(help="Hub branch, tag or commit of --model.")]
Device = Annotated[
    str, typer.Option(help="auto, cpu, cuda or mps; an unavailable device is an error.")
]
StyleSize = Annotated[
    int | None, typer.Option(help="Resize styles so the shorter side is this many px (0 keeps).")
]
ContentSize = Annotated[
    int | None, typer.Option(help="Resize the content so the shorter side is this (0 keeps).")
]
MaxSize = Annotated[
    int | None, typer.Option(help="Cap the content's longer side in px (0: no cap).")
]
MaxPixels = Annotated[
    int | None, typer.Option(help="Refuse input images with more pixels (default 8192x8192).")
]
PreserveColor = Annotated[
    Literal["coral", "luminance"] | None,
    typer.Option(help="Keep the content's colours: coral (recolour styles) or luminance."),
]
Weights = Annotated[
    list[float] | None,
    typer.Option("--weight", "-w", help="Mix the styles with one weight per style (repeatable)."),
]
Overwrite = Annotated[bool, typer.Option(help="Replace existing output files.")]
Tile = Annotated[
    int | None,
    typer.Option(
        help="Process in strips (and columns) at most this many px high and wide"
        " (default: picked from --max-memory)."
    ),
]
MaxMemory = Annotated[
    str | None,
    typer.Option(
        help="Memory budget that picks the strip size, e.g. 3G (default: 2G); features that do"
        " not fit go to a temporary file in $TMPDIR."
    ),
]
Precision = Annotated[
    str, typer.Option(help="fp32, or bf16/fp16 on GPUs (faster, within 6e-2 of fp32).")
]
Quality = Annotated[int | None, typer.Option(help="JPEG/WebP quality, 1-100.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Debug = Annotated[bool, typer.Option(help="Show tracebacks instead of one-line errors.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON record per output.")]


@app.command()
def stylize(
    content: Annotated[
        list[str],
        typer.Argument(
            metavar="CONTENT", help="Content images: files, folders (recursive) or globs."
        ),
    ],
    *,
    style: Annotated[
        list[str],
        typer.Option(
            "--style", "-s", help="Style image, folder, glob or .safetensors preset (repeatable)."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Output file (one output) or folder (default: current folder)."
        ),
    ] = None,
    alpha: Annotated[
        float | None, typer.Option(help="Content-style trade-off, >= 0 (1 = full style).")
    ] = None,
    weight: Weights = None,
    mask: Annotated[
        list[Path] | None,
        typer.Option(help="Region of each style, an image file; grey = soft (one per style)."),
    ] = None,
    preserve_color: PreserveColor = None,
    content_size: ContentSize = None,
    style_size: StyleSize = None,
    max_size: MaxSize = None,
    max_pixels: MaxPixels = None,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    ext: Annotated[
        str | None, typer.Option(help="Format of the files written into a folder (png).")
    ] = None,
    overwrite: Overwrite = False,
    quality: Quality = None,
    tile: Tile = None,
    max_memory: MaxMemory = None,
    precision: Precision = "fp32",
    quiet: Quiet = False,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Stylise each CONTENT with each style, or with one mix of them (--weight) or regions (--mask).

    Outputs are named CONTENT_STYLE.png in the -o folder; each style is encoded once per batch.
    """
    with _reported(debug):
        from adain.batch import BatchConfig, plan, run
        from adain.engine.runner import tune_allocator

        tune_allocator()  # process-wide, so here at the entry point rather than in the library
        config = BatchConfig(
            contents=content,
            styles=style,
            device=device,
            overwrite=overwrite,
            precision=precision,
            **_options(
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
        _report(run(batch), len(batch.jobs), quiet, as_json)


@app.command()
def interpolate(
    content: Annotated[Path, typer.Argument(help="Content image.")],
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
        int | None, typer.Option(help="Mixes between each pair of styles, ends included (5).")
    ] = None,
    cell_size: Annotated[
        int | None, typer.Option(help="Size of each picture in the sheet, px (192).")
    ] = None,
    preserve_color: PreserveColor = None,
    content_size: ContentSize = None,
    style_size: StyleSize = None,
    max_size: Annotated[
        int | None, typer.Option(help="Cap the content's longer side in px (512; 0: no cap).")
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
    with _reported(debug):
        from adain.batch import expand_paths
        from adain.image import save_format, save_image
        from adain.sheet import SweepConfig, sweep_sheet

        sheet_file = output if output is not None else Path(f"{content.stem}_sweep.png")
        save_format(sheet_file)
        if sheet_file.exists() and not overwrite:
            raise ValueError(f"{sheet_file} already exists: pass --overwrite or choose another -o")
        if quality is not None and not 1 <= quality <= 100:
            raise ValueError(f"--quality must be between 1 and 100, got {quality}")
        config = SweepConfig(
            content=content,
            styles=expand_paths(style, "style", presets=True),
            device=device,
            **_options(
                alphas=alpha,
                steps=steps,
                tile=cell_size,
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
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Encode STYLE once into a preset usable wherever a style image is (--style x.safetensors).

    Several styles are mixed into one preset (equal weights unless --weight).
    """
    with _reported(debug):
        from adain.batch import save_preset

        record = save_preset(
            style,
            output,
            device=device,
            overwrite=overwrite,
            **_options(
                weights=weight,
                style_size=style_size,
                max_pixels=max_pixels,
                model=model,
                revision=revision,
            ),
        )
    if not quiet:
        typer.echo(record["output"])


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
    with _reported(debug):
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
    from adain.weights.convert import load_original
    from adain.weights.hub import save_model_dir

    try:
        model = load_original(vgg_file, decoder_file, encoder_depth=encoder_depth)
        save_model_dir(model, output, overwrite=overwrite)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None
    typer.echo(str(output))


# Sub-apps merged at the top level. train/ and hub/ live beside adain/ in a checkout (the wheel
# ships adain alone, STYLE.md section 2); their modules import no torch at module level.
_OPTIONAL_APPS = ("adain.cli_gatys", "train.cli", "hub.cli")
# Commands those checkout-only apps provide, so an installed wheel can say how to get them.
_CHECKOUT_COMMANDS = {"train.cli": ("train",), "hub.cli": ("push", "publish-original")}
_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def _checkout_only(name: str) -> None:
    def command() -> None:
        raise _fail(
            f"`adain {name}` needs a checkout of the adain repository (train/ and hub/ are not "
            "in the wheel): clone it, `pip install -e '.[train]'`, and run it from there"
        )

    app.command(name, help=f"(needs a checkout of the repository) {name}")(command)


def _mount_optional_apps() -> None:
    if (_CHECKOUT_ROOT / "train" / "cli.py").is_file() and str(_CHECKOUT_ROOT) not in sys.path:
        sys.path.append(str(_CHECKOUT_ROOT))  # an editable install: the checkout's train/, hub/
    for module_name in _OPTIONAL_APPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):
                for name in _CHECKOUT_COMMANDS.get(module_name, ()):
                    _checkout_only(name)
                continue
            raise
        app.add_typer(module.app)


_mount_optional_apps()


def main() -> None:
    app()
