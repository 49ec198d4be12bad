"""Frames in: a video file (PyAV) or an image sequence, upright RGB, with their time stamps.

A source is opened and its first frame decoded before anything is written, so a file that is
not a video, has no video stream, no frames, an unknown codec or frames over the pixel cap
fails at once, in one line that names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from adain.image import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, resized_size
from adain.video.frame import Frame, Source, require_av
from adain.video.sequence import is_image_sequence, open_images


def open_source(
    spec: str | Path,
    *,
    size: int | None = None,
    max_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    fps: float | None = None,
    skip_bad_frames: bool = False,
) -> Source:
    """Open a video file or an image sequence; sizes as :func:`adain.image.resized_size`.

    Raises:
        ValueError: one line naming the input and what to do.
    """
    if is_image_sequence(spec):
        return open_images(spec, size, max_size, max_pixels, fps)
    if fps is not None:
        raise ValueError("--fps applies to image sequences; a video file keeps its own timing")
    return _open_video(Path(spec), size, max_size, max_pixels, skip_bad_frames)


# Video files ----------------------------------------------------------------------------------


def _open_video(
    path: Path,
    size: int | None,
    max_size: int | None,
    max_pixels: int | None,
    skip_bad_frames: bool,
) -> Source:
    av = require_av()
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): not a video")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(
            f"{path} is an image: give a video, a folder of frames or a pattern (frames/*.png)"
        )
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.EOFError:
        raise ValueError(
            f"{path} ends before its first frame: an empty or truncated video"
        ) from None
    except av.FFmpegError as error:
        raise ValueError(f"{path}: not a video file FFmpeg can read ({_reason(error)})") from None
    try:
        return _video_source(av, container, path, size, max_size, max_pixels, skip_bad_frames)
    except BaseException:
        container.close()
        raise


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _video_source(
    av: Any,
    container: Any,
    path: Path,
    size: int | None,
    max_size: int | None,
    max_pixels: int | None,
    skip_bad_frames: bool,
) -> Source:
    if not container.streams:
        raise ValueError(f"{path} holds no streams: an empty or truncated video")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        raise ValueError(f"{path} has no video stream ({', '.join(kinds)}): give a video file")
    stream = container.streams.video[0]
    context = stream.codec_context
    if context is None or not context.codec or not context.name:
        raise ValueError(f"{path}: its video codec is unknown to this FFmpeg; convert it first")
    coded = (context.width, context.height)
    if max_pixels is not None and coded[0] * coded[1] > max_pixels:
        raise ValueError(
            f"{path}: {coded[0]}x{coded[1]} px frames are over the limit of {max_pixels:,} "
            "pixels; raise --max-pixels"
        )
    stream.thread_type = "AUTO"  # frame + slice threads: decoding keeps up with the model
    skipped = [0]
    decoded = _counting(_decode(av, container, stream, path, skip_bad_frames), skipped)
    first = next(decoded, None)
    if first is None:
        raise ValueError(f"{path} has no video frames")
    turns = _quarter_turns(first)
    upright = (first.height, first.width) if turns % 2 else (first.width, first.height)
    out_size = resized_size(*upright, size, max_size)
    # The decoder's size before rotation: what swscale resizes to.
    scale = (out_size[1], out_size[0]) if turns % 2 else out_size
    source = Source(
        path=path,
        width=out_size[0],
        height=out_size[1],
        time_base=Fraction(stream.time_base),
        rate=Fraction(stream.guessed_rate) if stream.guessed_rate else None,
        frame_count=stream.frames or _estimated_frames(stream, container),
        duration=_seconds(stream, container),
        copy_streams=[s for s in container.streams if s.type in ("audio", "subtitle")],
        _skipped=skipped,
        _container=container,
    )

    def frames() -> Iterator[Frame]:
        index = 0
        for frame in _chain(first, decoded):
            image = frame.to_ndarray(
                format="rgb24", width=scale[0], height=scale[1], interpolation="AREA"
            )
            turns = _quarter_turns(frame)
            image = np.ascontiguousarray(np.rot90(image, turns)) if turns else image
            pts = frame.pts
            duration = int(frame.duration or 0)
            yield Frame(index, image, pts, Fraction(stream.time_base), duration)
            index += 1

    source._frames = frames()
    return source


def _counting(frames: Iterator[Any], skipped: list[int]) -> Iterator[Any]:
    for item in frames:
        if item is None:
            skipped[0] += 1
            continue
        yield item


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _decode(
    av: Any, container: Any, stream: Any, path: Path, skip_bad_frames: bool
) -> Iterator[Any]:
    """Decoded frames of ``stream``; ``None`` for each frame dropped with ``skip_bad_frames``."""
    count = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
            frames = packet.decode()
        except StopIteration:
            return
        except av.FFmpegError as error:
            if not skip_bad_frames:
                raise ValueError(
                    f"{path}: corrupt video data at frame {count + 1} ({_reason(error)}); pass "
                    "--skip-bad-frames to drop broken frames"
                ) from None
            yield None
            continue
        for frame in frames:
            if frame.is_corrupt:
                if not skip_bad_frames:
                    raise ValueError(
                        f"{path}: corrupt video data at frame {count + 1}; pass "
                        "--skip-bad-frames to drop broken frames"
                    )
                yield None
                continue
            count += 1
            yield frame


def _quarter_turns(frame: Any) -> int:
    """Counter-clockwise quarter turns that make the frame upright (its display matrix)."""
    return round((frame.rotation or 0) / 90) % 4


def _estimated_frames(stream: Any, container: Any) -> int | None:
    seconds = _seconds(stream, container)
    rate = stream.guessed_rate
    return round(seconds * rate) if seconds and rate else None


def _seconds(stream: Any, container: Any) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None
