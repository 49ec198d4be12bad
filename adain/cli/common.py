"""What every command shares: option types, one-line failures, and the output report.

No torch at module level: ``adain --help`` imports this module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import typer


def flag(*names: str, text: str) -> Any:
    """A boolean switch: no ``--no-X`` twin and no ``<bool>`` value hint in the help.

    typer's own ``--help`` keeps its hint: replacing it with a plain switch would also drop the
    "Try 'adain COMMAND --help' for help." line under usage errors.
    """
    return typer.Option(*names, metavar="", help=text)


# Options shared by several commands: one name and one help text per knob. Help texts state the
# defaults that live in the config dataclasses (options default to None, STYLE.md section 7):
# those modules import torch, which `adain --help` must not, so the values are written here and
# tests/test_cli.py checks them against the dataclasses.
Model = Annotated[
    str | None,
    typer.Option(help="Hub repository id or model folder (default: $ADAIN_MODEL, then the Hub)."),
]
Revision = Annotated[str | None, typer.Option(help="Hub branch, tag or commit of --model.")]
Device = Annotated[
    str, typer.Option(help="auto, cpu, cuda or mps; an unavailable device is an error.")
]
StyleSize = Annotated[
    int | None,
    typer.Option(help="Resize styles so the shorter side is this many px (default 0: keep)."),
]
ContentSize = Annotated[
    int | None,
    typer.Option(help="Resize the content so the shorter side is this (default 0: keep)."),
]
MaxSize = Annotated[
    int | None, typer.Option(help="Cap the content's longer side in px (default 0: no cap).")
]
MaxPixels = Annotated[
    int | None, typer.Option(help="Refuse input images with more pixels (default 8192x8192).")
]
PreserveColor = Annotated[
    Literal["coral", "luminance"] | None,
    typer.Option(
        help="Keep the content's colours: coral (recolour styles) or luminance (default: off)."
    ),
]
Weights = Annotated[
    list[float] | None,
    typer.Option("--weight", "-w", help="Mix the styles with one weight per style (repeatable)."),
]
Overwrite = Annotated[bool, flag("--overwrite", text="Replace existing output files.")]
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
        help="Bound on the memory the stylisation adds beyond the loaded model and image, e.g."
        " 3G (default: 2G); it picks the strip size, and features that do not fit go to a"
        " temporary file in $TMPDIR."
    ),
]
Precision = Annotated[
    str, typer.Option(help="fp32, or bf16/fp16 on GPUs (faster, within 6e-2 of fp32).")
]
Transfer = Annotated[
    str,
    typer.Option(
        help="adain (match each feature channel's mean and std) or efdm (its whole"
        " distribution: sharper textures, same model)."
    ),
]
Quality = Annotated[
    int | None,
    typer.Option(help="JPEG/WebP quality, 1-100 (default: Pillow's, 75 JPEG, 80 WebP)."),
]
Quiet = Annotated[bool, flag("--quiet", "-q", text="Print nothing but errors.")]
Debug = Annotated[bool, flag("--debug", text="Show tracebacks instead of one-line errors.")]
AsJson = Annotated[bool, flag("--json", text="Print one JSON record per output.")]


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
    safetensors = sys.modules.get("safetensors")  # a corrupt weights or preset file
    if safetensors is not None and isinstance(error, safetensors.SafetensorError):
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
    """Print one line per output (its path, or a JSON record), with a progress bar on batches.

    A record with ``skipped`` true (an existing output kept by ``--skip-existing``) prints
    ``skipped PATH (exists)`` on stderr instead, so stdout lists only the files written.
    """
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(
        console=console,
        disable=quiet or total < 2 or not console.is_terminal,  # a pipe gets no bar, no blank line
        transient=True,
        # Through the bar's console only when stdout is the same terminal; never for --json pipes.
        redirect_stdout=sys.stdout.isatty(),
        redirect_stderr=False,
    ) as progress:
        task = progress.add_task("stylising", total=total)
        for record in records:
            if as_json:
                typer.echo(json.dumps(record))
            elif record.get("skipped"):
                if not quiet:
                    line = f"skipped {record['output']} (exists)"
                    if progress.live.is_started:  # above the bar, which stays at the bottom
                        progress.console.print(line, markup=False, highlight=False)
                    else:
                        typer.echo(line, err=True)
            elif not quiet:
                typer.echo(record["output"])
            progress.advance(task)


@contextmanager
def iterations(
    description: str, total: int, quiet: bool, print_every: int = 0
) -> Iterator[Callable[[int, dict[str, float]], None]]:
    """Progress of an optimisation loop; yields ``update(step, losses)`` to call per iteration.

    On a terminal: a bar on stderr with the iteration, the total loss, elapsed time and ETA.
    Everywhere: a line of losses on stderr every ``print_every`` iterations and at the last
    (0: never). ``quiet`` shows neither.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("it {task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as progress:
        task = progress.add_task(description, total=total, loss="-")

        def update(step: int, losses: dict[str, float]) -> None:
            progress.update(task, completed=step, loss=f"{losses['total']:.4g}")
            if quiet or not print_every or (step % print_every and step != total):
                return
            parts = " ".join(f"{name} {value:.4g}" for name, value in losses.items())
            line = f"step {step}/{total} {parts}"
            if progress.live.is_started:  # above the bar, which stays at the bottom
                progress.console.print(line, markup=False, highlight=False)
            else:
                typer.echo(line, err=True)

        yield update
