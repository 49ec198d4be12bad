"""What every command shares: option types, one-line failures, and the output report.

No torch at module level: ``adain --help`` imports this module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import typer

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


def fail(message: str) -> typer.Exit:
    """Print a one-line error to stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _out_of_memory(error: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.OutOfMemoryError)


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


@contextmanager
def reported(debug: bool) -> Iterator[None]:
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
        raise fail(_one_line(error) + hint) from None


def options(**values: Any) -> dict[str, Any]:
    """Drop unset options, so the config dataclass keeps the one home of each default."""
    return {name: value for name, value in values.items() if value is not None}


def report(records: Iterable[dict[str, Any]], total: int, quiet: bool, as_json: bool) -> None:
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
