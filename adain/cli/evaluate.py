"""``adain evaluate``: measure stylisations of content x style pairs, as papers do.

Registered by ``adain/cli/__init__.py``. No torch at module level, so ``adain --help`` stays
instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adain.cli.common import (
    ContentSize,
    Debug,
    Device,
    MaxPixels,
    Overwrite,
    Quiet,
    Revision,
    StyleSize,
    flag,
    options,
    reported,
)

app = typer.Typer(add_completion=False)

Contents = Annotated[
    list[str] | None,
    typer.Argument(metavar="CONTENT", help="Content images: files, folders (recursive) or globs."),
]
Styles = Annotated[
    list[str] | None,
    typer.Option("--style", "-s", help="Style images: files, folders or globs (repeatable)."),
]
Pairs = Annotated[
    Path | None,
    typer.Option(help="A list file of CONTENT STYLE lines, instead of every content x style."),
]
Models = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Hub repository id or model folder (repeatable; default: $ADAIN_MODEL, then the Hub).",
    ),
]
Transfers = Annotated[
    list[str] | None,
    typer.Option(
        help="Transfer of the model call: adain, efdm where the model has it (repeatable or"
        " comma-separated; default adain)."
    ),
]
GatysSteps = Annotated[
    int | None,
    typer.Option(help="Also run the Gram method (Gatys 2016), this many iterations (default 0)."),
]
Alpha = Annotated[
    float | None, typer.Option(help="Content-style trade-off of the model call (default 1).")
]
MetricWeights = Annotated[
    list[str] | None,
    typer.Option(
        help="Folder or Hub id (org/name, or org/name@revision) holding the LPIPS and ArtFID"
        " Inception weights (repeatable; default $ADAIN_METRIC_WEIGHTS)."
    ),
]
AsJson = Annotated[bool, flag("--json", text="Print the JSON report instead of the table.")]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the JSON report to this file.")
]


@app.command()
def evaluate(
    content: Contents = None,
    *,
    style: Styles = None,
    pairs: Pairs = None,
    model: Models = None,
    transfer: Transfers = None,
    gatys_steps: GatysSteps = None,
    alpha: Alpha = None,
    content_size: ContentSize = None,
    style_size: StyleSize = None,
    max_pixels: MaxPixels = None,
    metric_weights: MetricWeights = None,
    revision: Revision = None,
    device: Device = "auto",
    output: Output = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Measure each model and transfer on content x style pairs: losses, LPIPS, ArtFID, speed.

    Content losses (relu4_1, relu4_2) and style losses (mean/std, Gram) use each model's encoder.
    LPIPS, FID and ArtFID need their networks' weights (--metric-weights), else say unavailable.
    Prints a table (the JSON report with --json); -o also writes the JSON report.
    """
    with reported(debug):
        from adain.evaluation.harness import EvalConfig, evaluate, format_table, report_json
        from adain.outputs import check_output, write_atomically

        transfers = [t.strip() for item in transfer or ["adain"] for t in item.split(",")]
        config = EvalConfig(
            contents=list(content or []),
            styles=list(style or []),
            pairs=str(pairs) if pairs is not None else None,
            models=list(model) if model else [None],
            transfers=transfers,
            device=device,
            metric_weights=list(metric_weights) if metric_weights else None,
            **options(
                alpha=alpha,
                gatys_steps=gatys_steps,
                content_size=content_size,
                style_size=style_size,
                max_pixels=max_pixels,
                revision=revision,
            ),
        ).check()
        if output is not None:
            if output.suffix.lower() != ".json":
                raise ValueError(f"-o {output}: the report is JSON; give a file ending in .json")
            inputs = [p for p in (*config.contents, *config.styles) if Path(p).is_file()]
            check_output(output, [*inputs, *([pairs] if pairs else [])], overwrite)
        log = None if quiet else (lambda line: typer.echo(line, err=True))
        report = evaluate(config, log=log)
        text = report_json(report)
        if output is not None:
            write_atomically(output, lambda handle: handle.write(text.encode("utf-8")))
    if as_json:
        typer.echo(text, nl=False)
    elif not quiet:
        typer.echo(format_table(report))
