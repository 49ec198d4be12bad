"""``adain demo`` (a Gradio page) and ``adain serve`` (an HTTP API): the model loaded once.

Both need the ``demo`` extra. The model resolves as for every command (``--model``,
``$ADAIN_MODEL``, the default; cached copies offline) and loads before the port opens, so a
wrong model fails in one line. Both listen on 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from adain.cli.common import Debug, Device, Model, Revision, fail, flag, reported

app = typer.Typer(add_completion=False)
_PANEL = "Web demo and HTTP server (pip install 'adain[demo]')"

Host = Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens it to the network.")]
Styles = Annotated[
    Path | None,
    typer.Option(
        help="Folder of style images and .safetensors presets offered by name"
        " (default: the checkout's examples/style)."
    ),
]
MaxPixels = Annotated[
    int, typer.Option(help="Refuse uploaded images with more pixels (default 4096x4096).")
]
Concurrency = Annotated[
    int, typer.Option(help="Stylisations at the same time (on a CPU one is fastest).")
]
QueueSize = Annotated[
    int, typer.Option(help="Requests that may wait; more are refused (503 + Retry-After).")
]


def _need_extra(command: str, *modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise fail(f'adain {command} needs {", ".join(missing)}: pip install "adain[demo]"')


@app.command(rich_help_panel=_PANEL)
def serve(
    *,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    styles: Styles = None,
    max_pixels: MaxPixels = 4096 * 4096,
    max_upload_mb: Annotated[
        float, typer.Option(help="Refuse request bodies larger than this many MB (413).")
    ] = 32.0,
    concurrency: Concurrency = 1,
    queue_size: QueueSize = 8,
    debug: Debug = False,
) -> None:
    """Serve the model over HTTP: POST /stylize, GET /styles, GET /health, docs at /docs."""
    _need_extra("serve", "fastapi", "uvicorn", "multipart")
    with reported(debug):
        from adain.serve.limits import MB, Limits
        from adain.serve.server import serve as run_server
        from adain.serve.service import Stylist, default_folder

        limits = Limits(
            max_upload_bytes=max(1, round(max_upload_mb * MB)),
            max_pixels=max_pixels,
            concurrency=concurrency,
            queue_size=queue_size,
        )
        folder = styles if styles is not None else default_folder("style")
        stylist = Stylist.load(model, revision, device, folder, max_pixels)
    run_server(stylist, limits, host, port)


@app.command(rich_help_panel=_PANEL)
def demo(
    *,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    share: Annotated[
        bool, flag("--share", text="Also publish a temporary public link (Gradio's tunnel).")
    ] = False,
    styles: Styles = None,
    contents: Annotated[
        Path | None,
        typer.Option(help="Folder of example content images (default: the checkout's examples)."),
    ] = None,
    max_pixels: MaxPixels = 4096 * 4096,
    max_upload_mb: Annotated[
        float, typer.Option(help="Refuse uploaded files larger than this many MB.")
    ] = 32.0,
    queue_size: QueueSize = 16,
    debug: Debug = False,
) -> None:
    """Open the web demo: content, styles from a gallery or uploads, alpha, weights, regions."""
    _need_extra("demo", "gradio")
    with reported(debug):
        from adain.serve.demo import launch
        from adain.serve.service import Stylist, default_folder, find_images

        folder = styles if styles is not None else default_folder("style")
        examples = find_images(contents if contents is not None else default_folder("content"))
        if contents is not None and not examples:
            raise ValueError(f"--contents {contents}: no image files there")
        stylist = Stylist.load(model, revision, device, folder, max_pixels)
    launch(
        stylist, examples, host=host, port=port, share=share, queue_size=queue_size,
        max_upload_mb=max_upload_mb,
    )  # fmt: skip
