"""``adain video``: stylise a video file or an image sequence, frame by frame, style encoded once.

Parses the options, calls :func:`adain.video.stylize_video` and prints the output path (or a
JSON record). No torch or PyAV at module level, so ``adain --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    Quiet,
    Revision,
    StyleSize,
    Tile,
    Transfer,
    Weights,
    flag,
    options,
    reported,
)

app = typer.Typer(add_completion=False)


@app.command()
def video(
    input: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="Video file, or frames: a folder, a quoted glob or a pattern like f_%04d.png.",
        ),
    ],
    *,
    style: Annotated[
        list[str],
        typer.Option("--style", "-s", help="Style image or .safetensors preset (repeatable)."),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Video file (.mp4 .mkv .mov .webm .avi) or a folder of frames."
        ),
    ],
    alpha: Annotated[
        float | None,
        typer.Option(help="Content-style trade-off, >= 0: 0 content, 1 full style (default 1)."),
    ] = None,
    weight: Weights = None,
    mask: Annotated[
        list[Path] | None,
        typer.Option(help="Region of each style: an image, or a mask video (one per style)."),
    ] = None,
    preserve_color: PreserveColor = None,
    temporal: Annotated[
        bool,
        flag(
            "--temporal",
            text="Smooth the content statistics across frames (less flicker), reset at cuts.",
        ),
    ] = False,
    temporal_decay: Annotated[
        float | None,
        typer.Option(help="Weight of past frames in the smoothing, in [0, 1) (default 0.9)."),
    ] = None,
    cut_threshold: Annotated[
        float | None,
        typer.Option(help="Statistics jump that counts as a scene cut (default 0.15)."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Frames per model call (default 4).")
    ] = None,
    codec: Annotated[
        str | None,
        typer.Option(help="Video encoder, e.g. libx264, libx265, libvpx-vp9 (default: H.264)."),
    ] = None,
    crf: Annotated[
        int | None,
        typer.Option(help="Constant quality: 0 lossless ... 51 worst (default 23 for H.264)."),
    ] = None,
    bitrate: Annotated[
        str | None, typer.Option(help="Target bitrate instead of --crf, e.g. 4M or 800k.")
    ] = None,
    pix_fmt: Annotated[
        str | None,
        typer.Option(help="Pixel format (default yuv420p; yuv444p for odd frame sizes)."),
    ] = None,
    fps: Annotated[
        float | None, typer.Option(help="Frame rate of an image-sequence INPUT (default 25).")
    ] = None,
    ext: Annotated[
        str | None, typer.Option(help="Image format of a frame-folder output (default png).")
    ] = None,
    skip_bad_frames: Annotated[
        bool,
        flag("--skip-bad-frames", text="Drop frames that cannot be decoded instead of stopping."),
    ] = False,
    content_size: ContentSize = None,
    max_size: MaxSize = None,
    style_size: StyleSize = None,
    max_pixels: MaxPixels = None,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    transfer: Transfer = "adain",
    tile: Tile = None,
    max_memory: MaxMemory = None,
    precision: Precision = "fp32",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Stylise a video (or image sequence) frame by frame; audio and subtitles are copied.

    The style is encoded once; time stamps, rotation and duration are kept. A frame folder is
    written frame by frame, and running the same command again finishes a stopped run.
    """
    with reported(debug):
        import json

        from adain.video import stylize_video

        if temporal_decay is not None and not temporal:
            raise ValueError("--temporal-decay needs --temporal")
        with _progress(quiet) as update:
            record = stylize_video(
                input,
                style,
                output,
                masks=mask,
                temporal=temporal_decay if temporal and temporal_decay is not None else temporal,
                device=device,
                precision=precision,
                transfer=transfer,
                overwrite=overwrite,
                skip_bad_frames=skip_bad_frames,
                progress=update,
                notes=None if quiet else _note,
                **options(
                    alpha=alpha,
                    weights=weight,
                    preserve_color=preserve_color,
                    cut_threshold=cut_threshold,
                    batch_size=batch_size,
                    codec=codec,
                    crf=crf,
                    bitrate=bitrate,
                    pix_fmt=pix_fmt,
                    fps=fps,
                    ext=ext,
                    content_size=content_size,
                    max_size=max_size,
                    style_size=style_size,
                    max_pixels=max_pixels,
                    model=model,
                    revision=revision,
                    tile=tile,
                    max_memory=max_memory,
                ),
            )
    if as_json:
        typer.echo(json.dumps(record))
    elif not quiet:
        typer.echo(record["output"])


def _note(line: str) -> None:
    typer.echo(f"note: {line}", err=True)


class _progress:
    """A progress bar on stderr (terminals only) with frames, frames/s and ETA."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __enter__(self) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("stylising"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} frames/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=self.quiet or not console.is_terminal,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.bar.__enter__()
        self.task = self.bar.add_task("frames", total=None, rate="-")

        def update(done: int, total: int | None) -> None:
            speed = self.bar.tasks[0].speed
            rate = f"{speed:.1f}" if speed else "-"
            self.bar.update(self.task, completed=done, total=total, rate=rate)

        return update

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)
