"""``stylize_video``: decode -> stylise (batched) -> encode, overlapped, in bounded memory.

The reader thread decodes frames (and mask-video frames) into batches, the caller's thread runs
the model on them, and the writer thread encodes or saves the results; two bounded queues join
them (:mod:`adain.video.threads`). Everything that can be refused is refused before the first
frame is stylised: the output path, the input, the encoder, the styles.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from adain.checks import PreserveColor
from adain.image import DEFAULT_MAX_PIXELS
from adain.model import AdaIN
from adain.outputs import check_output
from adain.video.codecs import choose_encoding, container_of
from adain.video.frame import Frame, Source
from adain.video.frames import DEFAULT_BATCH_SIZE, StyleLike, Stylizer, batches
from adain.video.masks import batch_masks, open_masks, with_masks
from adain.video.sequence import is_image_sequence, sequence_files
from adain.video.sink import FrameFolder, VideoFileWriter, write_video_file
from adain.video.source import open_source
from adain.video.temporal import DEFAULT_CUT_THRESHOLD
from adain.video.threads import Drain, Prefetch

# progress(frames done, frames expected or None)
Progress = Callable[[int, int | None], None]
Batch = list[tuple[Frame, list[np.ndarray] | None]]


def is_frame_folder(output: str | Path) -> bool:
    """Whether ``output`` names a folder of frames (no extension, or an existing folder)."""
    path = Path(output)
    return path.is_dir() or not path.suffix or str(output).endswith(("/", "\\"))


def stylize_video(
    input: str | Path,
    style: StyleLike | Sequence[StyleLike],
    output: str | Path,
    *,
    model: AdaIN | str | Path | None = None,
    alpha: float = 1.0,
    weights: Sequence[float] | None = None,
    masks: Sequence[str | Path] | None = None,
    preserve_color: PreserveColor | None = None,
    temporal: bool | float = False,
    cut_threshold: float = DEFAULT_CUT_THRESHOLD,
    content_size: int | None = None,
    max_size: int | None = None,
    style_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    fps: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    codec: str | None = None,
    crf: int | None = None,
    bitrate: str | int | None = None,
    pix_fmt: str | None = None,
    ext: str = "png",
    overwrite: bool = False,
    skip_bad_frames: bool = False,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    max_memory: int | str | None = None,
    tile: int | None = None,
    revision: str | None = None,
    transfer: str = "adain",
    progress: Progress | None = None,
    notes: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Stylise a video file or an image sequence into a video file or a folder of frames.

    Args:
        input: a video file, a folder of images, a glob (``"f/*.png"``) or ``f/%04d.png``.
        style: one style or several (images, ``.safetensors`` presets, :class:`StyleStats`).
        output: a video file (``.mp4``, ``.mkv``, ``.mov``, ``.webm``, ``.avi``) or a folder.
        masks: one mask per style: an image (the same for every frame) or a mask video.
        temporal: smooth the content statistics across frames (``True``, or the decay).
        fps: frame rate of an image sequence (default 25).
        codec, crf, bitrate, pix_fmt: encoding (:func:`adain.video.codecs.choose_encoding`).
        ext: image format of a frame folder.
        progress: called after each batch with the frames done and the frames expected.
        notes: receives one-line notes about choices made (e.g. odd frame sizes).
        Other arguments: as :func:`adain.stylize` and :class:`adain.video.frames.Stylizer`.

    Returns:
        A JSON-able record of the run (frames, sizes, timing, codec, streams copied, cuts).

    Raises:
        ValueError: one line naming the file or option at fault; nothing is left half-written.
    """
    started = time.perf_counter()
    output = Path(output)
    to_folder = is_frame_folder(output)
    if not to_folder:
        container_of(output)  # an unknown extension fails before the model loads
    styles = list(style) if isinstance(style, list | tuple) else [style]
    inputs = _inputs(input, styles, masks)
    source = open_source(
        input, size=content_size, max_size=max_size, max_pixels=max_pixels, fps=fps,
        skip_bad_frames=skip_bad_frames,
    )  # fmt: skip
    with source:
        encoding = None
        if not to_folder:  # refused before the model loads: an existing output, a bad codec
            check_output(output, inputs, overwrite)
            encoding = choose_encoding(
                output, (source.width, source.height), codec=codec, pix_fmt=pix_fmt, crf=crf,
                bitrate=bitrate,
            )  # fmt: skip
        mask_inputs = open_masks(masks, len(styles), max_pixels)
        try:
            stylizer = Stylizer(
                model, styles, alpha=alpha, weights=weights, preserve_color=preserve_color,
                temporal=temporal, cut_threshold=cut_threshold, style_size=style_size,
                max_pixels=max_pixels, device=device, precision=precision,
                max_memory=max_memory, tile=tile, revision=revision, transfer=transfer,
            )  # fmt: skip
            record: dict[str, Any] = {
                "input": str(input),
                "output": str(output),
                "width": source.width,
                "height": source.height,
            }
            if to_folder:
                folder = FrameFolder(output, ext, _resume_key(record, locals()), inputs, overwrite)
                counts = _run(source, stylizer, mask_inputs, folder.write, batch_size, progress,
                              done=folder.done)  # fmt: skip
            else:
                assert encoding is not None
                if encoding.note and notes is not None:
                    notes(encoding.note)
                counts = {}

                def encode(handle: Any) -> None:
                    writer = VideoFileWriter(
                        handle, encoding, source.time_base, source.rate,
                        None if is_image_sequence(input) else Path(input),
                        source.copy_streams, str(output),
                    )  # fmt: skip
                    try:
                        counts.update(
                            _run(source, stylizer, mask_inputs, writer.write, batch_size, progress)
                        )
                    except BaseException:
                        writer.abort()
                        raise
                    writer.close()

                write_video_file(output, encode, inputs, overwrite)
                record.update(
                    codec=encoding.codec,
                    pix_fmt=encoding.pix_fmt,
                    encoded_size=list(encoding.size),
                    copied_streams=[s.type for s in source.copy_streams],
                )
        finally:
            for mask in mask_inputs:
                if isinstance(mask, Source):
                    mask.close()
    seconds = time.perf_counter() - started
    record.update(counts)
    record.update(
        skipped_frames=source.skipped,
        style_encodings=stylizer.spec.encoded,
        temporal=stylizer.smoother is not None,
        scene_cuts=list(stylizer.smoother.cuts) if stylizer.smoother is not None else [],
        seconds=round(seconds, 3),
        frames_per_s=round(counts.get("stylized_frames", 0) / seconds, 3) if seconds else None,
    )
    return record


def _inputs(input: str | Path, styles: list[Any], masks: Sequence[Any] | None) -> list[Path]:
    """Every file the run reads: an output may never replace or hold one."""
    files = sequence_files(input) if is_image_sequence(input) else [Path(input)]
    files += [Path(s) for s in styles if isinstance(s, str | Path)]
    files += [Path(m) for m in masks or []]
    return files


def _resume_key(record: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """What a frame folder's frames were made from: a re-run continues only when it matches."""
    keys = ("alpha", "weights", "masks", "preserve_color", "temporal", "cut_threshold",
            "content_size", "max_size", "style_size", "fps", "transfer", "precision",
            "ext")  # fmt: skip
    styles = [str(s) if isinstance(s, str | Path) else repr(type(s)) for s in scope["styles"]]
    model = scope["model"]
    return {
        **record,
        "styles": styles,
        "model": str(model) if not isinstance(model, AdaIN) else "AdaIN object",
        **{key: _jsonable(scope[key]) for key in keys},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def _run(
    source: Source,
    stylizer: Stylizer,
    masks: list[Tensor | Source],
    write: Callable[[Frame, np.ndarray], None],
    batch_size: int,
    progress: Progress | None,
    done: Callable[[int], bool] | None = None,
) -> dict[str, Any]:
    """Stream every frame through the model and ``write``; the frame counts and model time."""
    total = source.frame_count
    counts: dict[str, Any] = {"frames": 0, "stylized_frames": 0, "kept_frames": 0}
    model_seconds = 0.0
    missing = _missing(with_masks(source, masks), done, counts)
    writer: Drain[tuple[Frame, np.ndarray]] = Drain(lambda item: write(*item))
    last = -1
    if progress is not None:
        progress(0, total)
    try:
        with Prefetch(batches(missing, batch_size)) as reader:
            for batch in reader:
                if stylizer.smoother is not None and batch[0][0].index != last + 1:
                    stylizer.smoother.reset()  # frames kept from a stopped run: a gap
                last = batch[-1][0].index
                frames = torch.stack([_tensor(frame.image) for frame, _ in batch])
                started = time.perf_counter()
                out = stylizer(frames.to(stylizer.device), batch_masks(masks, batch))
                model_seconds += time.perf_counter() - started
                images = out.mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
                for (frame, _), image in zip(batch, images, strict=True):
                    writer.put((frame, image))
                counts["stylized_frames"] += len(batch)
                if progress is not None:
                    progress(counts["stylized_frames"] + counts["kept_frames"], total)
    except BaseException:
        writer.abandon()
        raise
    writer.finish()
    counts["frames"] = counts["stylized_frames"] + counts["kept_frames"]
    counts["model_seconds"] = round(model_seconds, 3)  # the model's calls alone
    return counts


def _missing(
    frames: Iterator[Any], done: Callable[[int], bool] | None, counts: dict[str, int]
) -> Iterator[Any]:
    for item in frames:
        if done is not None and done(item[0].index):
            counts["kept_frames"] += 1
            continue
        yield item


def _tensor(image: np.ndarray) -> Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
